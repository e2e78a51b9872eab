//! Sockets per subject: each authenticated socket holds a lease in a
//! [`SocketLeaseStore`] from its handshake until it closes, so one
//! credential cannot open sockets without end (on one process, or across
//! every process that shares the store).
//!
//! - A socket takes its place after authentication, before the 101 (on a
//!   first-message route, after its first message); a subject at its limit
//!   is refused ([`ErrorKind::TooManyConnections`]) or, by
//!   [`AtSocketLimit::CloseOldest`], has its oldest socket closed with 4403
//!   `too many connections`.
//! - The lease is given back the moment its socket stops being live (with
//!   its registration, before the close frame), so the place is free at
//!   once.
//! - A shared store's leases expire unless renewed: this process renews
//!   its own every [`SocketLeaseStore::renewal_interval`], and learns then
//!   which of them another process's acquisition took away.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use tokio::sync::broadcast;

use crate::clock::unix_millis;
use crate::error::{Error, ErrorKind};
use crate::principal::Principal;
use crate::random::random_urlsafe;
use crate::session::{Close, CloseKind, Session, reason};
use crate::store::{Acquired, AtSocketLimit, SocketLeaseStore};

/// What a subject at its limit is told to wait: a socket of its own has to
/// close first, which nothing here can predict.
const RETRY_WHEN_FULL: Duration = Duration::from_secs(5);

/// How many leases one renewal sends at once.
const RENEWAL_BATCH: usize = 1000;

/// The cap on each subject's sockets, and the leases this process holds.
/// Cheap to clone; clones share the leases.
#[derive(Clone)]
pub(crate) struct SocketLimit {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn DynLeaseStore>,
    max: usize,
    at_limit: AtSocketLimit,
    /// Names this process in its lease ids.
    origin: String,
    serial: AtomicU64,
    /// This process's leases, by id.
    held: Mutex<HashMap<String, Held>>,
    /// Whether the renewal and the eviction listener run.
    started: AtomicBool,
}

/// One lease of this process.
struct Held {
    subject: String,
    /// The socket, once it runs.
    session: Weak<Session>,
    /// Taken away by another socket's acquisition: the socket must close
    /// (at once if it runs, when it starts otherwise).
    evicted: bool,
}

/// A socket's place among its subject's, held until the last clone is
/// dropped. Rides in the request extensions from the handshake to the
/// socket.
#[derive(Clone)]
pub(crate) struct SocketLease {
    guard: Arc<LeaseGuard>,
}

struct LeaseGuard {
    limit: Arc<Inner>,
    subject: String,
    id: String,
}

/// The close of a socket whose place a newer one of its subject took.
fn evicted() -> Close {
    Close::new(CloseKind::Forbidden, reason::TOO_MANY_CONNECTIONS)
}

impl SocketLimit {
    /// At most `max` sockets per subject, counted in `store`.
    pub(crate) fn new(store: AnyLeaseStore, max: usize, at_limit: AtSocketLimit) -> Self {
        let origin = random_urlsafe::<9>().unwrap_or_else(|_| format!("p{}", std::process::id()));
        Self {
            inner: Arc::new(Inner {
                store: store.0,
                max,
                at_limit,
                origin,
                serial: AtomicU64::new(0),
                held: Mutex::new(HashMap::new()),
                started: AtomicBool::new(false),
            }),
        }
    }

    /// Takes a place for one more socket of `subject`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TooManyConnections`] when the subject holds its limit
    /// (and the limit refuses the newest); a backend error when the store
    /// failed (fail closed).
    pub(crate) async fn acquire(&self, subject: &str) -> Result<SocketLease, Error> {
        let inner = &self.inner;
        inner.start_renewal();
        // The id sorts by opening time: the smallest is the oldest socket.
        let serial = inner.serial.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{:013}.{}.{serial:016x}",
            unix_millis(SystemTime::now()),
            inner.origin
        );
        // Held before the store is asked, so an eviction racing this
        // acquisition finds the lease here. The guard gives it back on
        // every way out, the store's refusal and a dropped future included.
        inner.held().insert(
            id.clone(),
            Held {
                subject: subject.to_owned(),
                session: Weak::new(),
                evicted: false,
            },
        );
        let lease = SocketLease {
            guard: Arc::new(LeaseGuard {
                limit: inner.clone(),
                subject: subject.to_owned(),
                id,
            }),
        };
        let acquired = inner
            .store
            .acquire(subject, &lease.guard.id, inner.max, inner.at_limit)
            .await?;
        match acquired {
            Acquired::Taken => {}
            Acquired::TakenEvicting(ids) => {
                for id in ids {
                    inner.evict(&id);
                }
            }
            Acquired::Full => {
                // Nothing was taken: nothing to give back.
                inner.held().remove(&lease.guard.id);
                return Err(ErrorKind::TooManyConnections {
                    retry_after: RETRY_WHEN_FULL,
                }
                .into());
            }
        }
        Ok(lease)
    }
}

/// Takes `principal`'s place among its subject's sockets under `limit`,
/// if there is one: the principal with its lease, or the refusal with the
/// subject it names (for the audit).
pub(crate) async fn admit(
    limit: Option<&SocketLimit>,
    principal: Principal,
) -> Result<(Principal, Option<SocketLease>), (Error, String)> {
    let Some(limit) = limit else {
        return Ok((principal, None));
    };
    match limit.acquire(principal.subject()).await {
        Ok(lease) => Ok((principal, Some(lease))),
        Err(error) => Err((error, principal.subject().to_owned())),
    }
}

impl SocketLease {
    /// Ties the lease to its running socket, so an eviction closes it.
    /// `false` when the lease was taken away before the socket started: it
    /// must close at once.
    pub(crate) fn attach(&self, session: &Arc<Session>) -> bool {
        let mut held = self.guard.limit.held();
        match held.get_mut(&self.guard.id) {
            Some(entry) if !entry.evicted => {
                entry.session = Arc::downgrade(session);
                true
            }
            _ => false,
        }
    }

    /// The close of a socket whose lease was taken away.
    pub(crate) fn evicted_close() -> Close {
        evicted()
    }
}

impl Inner {
    fn held(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.held
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Closes the socket of lease `id`, when it is one of this process's
    /// (another process learns of its own at its next renewal).
    fn evict(&self, id: &str) {
        let session = {
            let mut held = self.held();
            let Some(entry) = held.get_mut(id) else {
                return;
            };
            entry.evicted = true;
            entry.session.upgrade()
        };
        if let Some(session) = session {
            session.request_close(evicted());
        }
    }

    /// Starts, once, the renewal of this process's leases (for a store
    /// whose leases expire) and the listener of evictions made elsewhere
    /// (for a store that tells of them).
    fn start_renewal(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(every) = self.store.renewal_interval() {
            tokio::spawn(renew(Arc::downgrade(self), every));
        }
        if let Some(evictions) = self.store.evictions() {
            tokio::spawn(listen_for_evictions(Arc::downgrade(self), evictions));
        }
    }
}

/// Closes this process's sockets whose leases another process's
/// acquisition took, as the store tells of them, until the limit is gone.
/// Missed notices (a lagging receiver, a lost link) are found by the next
/// renewal.
async fn listen_for_evictions(limit: Weak<Inner>, mut evictions: broadcast::Receiver<String>) {
    loop {
        let evicted = evictions.recv().await;
        let Some(inner) = limit.upgrade() else {
            return;
        };
        match evicted {
            Ok(id) => inner.evict(&id),
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Renews this process's leases every `every` until the limit is gone,
/// and closes the sockets whose leases another process took away.
async fn renew(limit: Weak<Inner>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let Some(inner) = limit.upgrade() else {
            return;
        };
        let leases: Vec<(String, String)> = inner
            .held()
            .iter()
            .filter(|(_, held)| !held.evicted)
            .map(|(id, held)| (held.subject.clone(), id.clone()))
            .collect();
        for batch in leases.chunks(RENEWAL_BATCH) {
            match inner.store.renew(batch.to_vec()).await {
                Ok(lost) => {
                    for id in lost {
                        inner.evict(&id);
                    }
                }
                // The leases last a while longer than the interval; a
                // store that stays down fails the handshakes, closed.
                Err(error) => {
                    tracing::warn!(target: "wsgate::limit", %error, "renewing socket leases failed");
                }
            }
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let limit = &self.limit;
        if limit.held().remove(&self.id).is_none() {
            // Refused by the store: it holds nothing to give back.
            return;
        }
        run_soon(limit.store.release(self.subject.clone(), self.id.clone()));
    }
}

/// Runs `work` as far as it goes now (a store in memory finishes here, so
/// the place is free before the caller moves on), and the rest on the
/// runtime. Without a runtime the rest is dropped: a shared store's lease
/// then expires.
fn run_soon(mut work: BoxFuture<'static, Result<(), Error>>) {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut work).poll(&mut cx) {
        Poll::Ready(Err(error)) => {
            tracing::warn!(target: "wsgate::limit", %error, "giving back a socket lease failed; it expires instead");
        }
        Poll::Ready(Ok(())) => {}
        Poll::Pending => {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(error) = work.await {
                        tracing::warn!(target: "wsgate::limit", %error, "giving back a socket lease failed; it expires instead");
                    }
                });
            }
        }
    }
}

/// Any [`SocketLeaseStore`], boxed: what a builder keeps until it makes
/// the limit.
#[derive(Clone)]
pub(crate) struct AnyLeaseStore(Arc<dyn DynLeaseStore>);

impl AnyLeaseStore {
    pub(crate) fn new<S: SocketLeaseStore>(store: S) -> Self {
        Self(Arc::new(store))
    }
}

impl fmt::Debug for AnyLeaseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnyLeaseStore")
            .field(&self.0.type_name())
            .finish()
    }
}

/// A [`SocketLeaseStore`] behind one pointer, with backend errors.
trait DynLeaseStore: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    fn acquire<'a>(
        &'a self,
        subject: &'a str,
        lease: &'a str,
        max: usize,
        at_limit: AtSocketLimit,
    ) -> BoxFuture<'a, Result<Acquired, Error>>;
    /// Owns what it needs: it may outlive the lease it gives back.
    fn release(&self, subject: String, lease: String) -> BoxFuture<'static, Result<(), Error>>;
    fn renew(&self, leases: Vec<(String, String)>) -> BoxFuture<'_, Result<Vec<String>, Error>>;
    fn renewal_interval(&self) -> Option<Duration>;
    fn evictions(&self) -> Option<broadcast::Receiver<String>>;
}

impl<S: SocketLeaseStore> DynLeaseStore for S {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<S>()
    }

    fn acquire<'a>(
        &'a self,
        subject: &'a str,
        lease: &'a str,
        max: usize,
        at_limit: AtSocketLimit,
    ) -> BoxFuture<'a, Result<Acquired, Error>> {
        Box::pin(async move {
            SocketLeaseStore::acquire(self, subject, lease, max, at_limit)
                .await
                .map_err(Error::backend)
        })
    }

    fn release(&self, subject: String, lease: String) -> BoxFuture<'static, Result<(), Error>> {
        let store = self.clone();
        Box::pin(async move {
            SocketLeaseStore::release(&store, &subject, &lease)
                .await
                .map_err(Error::backend)
        })
    }

    fn renew(&self, leases: Vec<(String, String)>) -> BoxFuture<'_, Result<Vec<String>, Error>> {
        Box::pin(async move {
            SocketLeaseStore::renew(self, leases)
                .await
                .map_err(Error::backend)
        })
    }

    fn renewal_interval(&self) -> Option<Duration> {
        SocketLeaseStore::renewal_interval(self)
    }

    fn evictions(&self) -> Option<broadcast::Receiver<String>> {
        SocketLeaseStore::evictions(self)
    }
}

impl fmt::Debug for SocketLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketLimit")
            .field("store", &self.inner.store.type_name())
            .field("max", &self.inner.max)
            .field("at_limit", &self.inner.at_limit)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SocketLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketLease")
            .field("id", &self.guard.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::AuthMethod;
    use crate::store::InMemorySocketLeaseStore;

    fn session(subject: &str) -> Arc<Session> {
        Arc::new(Session::new(
            Principal::new(subject, AuthMethod::Token),
            None,
        ))
    }

    #[tokio::test]
    async fn a_closed_socket_frees_its_place_at_once() {
        let limit = SocketLimit::new(
            AnyLeaseStore::new(InMemorySocketLeaseStore::new()),
            2,
            AtSocketLimit::RefuseNewest,
        );
        let first = limit.acquire("alice").await.unwrap();
        let _second = limit.acquire("alice").await.unwrap();
        let refused = limit.acquire("alice").await.unwrap_err();
        assert!(matches!(
            refused.kind(),
            ErrorKind::TooManyConnections { .. }
        ));
        assert_eq!(refused.retry_after(), Some(RETRY_WHEN_FULL));
        assert!(limit.acquire("bob").await.is_ok(), "subjects count apart");
        drop(first);
        assert!(limit.acquire("alice").await.is_ok());
    }

    #[tokio::test]
    async fn the_oldest_socket_closes_to_make_room() {
        let limit = SocketLimit::new(
            AnyLeaseStore::new(InMemorySocketLeaseStore::new()),
            2,
            AtSocketLimit::CloseOldest,
        );
        let (oldest, middle) = (session("alice"), session("alice"));
        let first = limit.acquire("alice").await.unwrap();
        assert!(first.attach(&oldest));
        let second = limit.acquire("alice").await.unwrap();
        assert!(second.attach(&middle));
        // Between its handshake and its start: taken away before it runs.
        let third = limit.acquire("alice").await.unwrap();
        let close = oldest.take_close_request();
        assert_eq!(close, Some(evicted()), "the oldest closes");
        assert_eq!(middle.take_close_request(), None);
        let _fourth = limit.acquire("alice").await.unwrap();
        assert_eq!(middle.take_close_request(), Some(evicted()));
        let _fifth = limit.acquire("alice").await.unwrap();
        assert!(!third.attach(&session("alice")), "taken away before it ran");
        let _ = (first, second);
    }
}
