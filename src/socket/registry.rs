//! The registry of live connections: list them, close them, revoke them.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use crate::audit::metrics::{self, SocketState};
use crate::audit::{AuditEvent, Auditor};
use crate::error::Error;
use crate::limit::SocketLease;
use crate::principal::Transport;
use crate::session::{Close, CloseKind, ConnectionId, Session, reason};
use crate::store::{
    BoxedRevocationStore, Revocation, RevocationStore, StoreNotice, check_revocation,
};
use crate::wiring::settings::Wiring;
use tokio::sync::broadcast;

/// The live connections of this node, with the revocation store and the
/// audit sink they share.
///
/// Cheap to clone; clones share the same connections. Give every
/// [`SocketGate`](crate::socket::SocketGate) of an application the same
/// registry so that a revocation reaches all its sockets.
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    connections: Mutex<HashMap<ConnectionId, Arc<Session>>>,
    unauthenticated: Mutex<Unauthenticated>,
    revocations: BoxedRevocationStore,
    auditor: Auditor,
    /// The store's notices, until a task listens to them (started at once
    /// inside a runtime, else with the first connection).
    notices: Mutex<Option<broadcast::Receiver<StoreNotice>>>,
}

/// A snapshot of one live connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The connection id.
    pub id: ConnectionId,
    /// The subject.
    pub subject: String,
    /// The session id (`sid`, or `conn-<id>`).
    pub session_id: String,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// How it authenticated.
    pub transport: Option<Transport>,
    /// When it was authenticated.
    pub opened_at: SystemTime,
    /// When its token expires.
    pub expires_at: Option<SystemTime>,
}

impl Registry {
    /// A registry over the wiring's revocation store, recording to its
    /// audit.
    ///
    /// When the store is shared with other processes (it gives
    /// [`StoreNotice`]s), their revocations close this registry's sockets
    /// through the same path as its own ([`Registry::revoke`]).
    pub fn new(wiring: &Wiring) -> Self {
        let revocations = wiring.revocations.clone();
        let auditor = wiring.auditor.clone();
        let registry = Self {
            inner: Arc::new(Inner {
                connections: Mutex::new(HashMap::new()),
                unauthenticated: Mutex::default(),
                notices: Mutex::new(revocations.notices()),
                revocations,
                auditor,
            }),
        };
        registry.listen();
        registry
    }

    /// Starts the task that applies the store's notices, once, when there
    /// are any and a runtime to run it.
    fn listen(&self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let taken = self
            .inner
            .notices
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if let Some(notices) = taken {
            tokio::spawn(apply_notices(Arc::downgrade(&self.inner), notices));
        }
    }

    /// Closes the live sockets `revocation` covers with `close`: the one
    /// path by which revocations reach sockets, made here
    /// ([`revoke_closing`](Self::revoke_closing)) or on another process
    /// (the store's notices).
    fn apply(&self, revocation: &Revocation, close: Close) -> usize {
        self.close_where(
            |session| revocation.covers(&session.principal(), Some(session.session_id())),
            close,
        )
    }

    /// Asks the store again about every live socket, and closes the ones
    /// it now says are revoked (after the store caught up).
    async fn recheck_all(&self) {
        let sessions: Vec<Arc<Session>> = self.connections().values().cloned().collect();
        for session in sessions {
            let principal = session.principal();
            match check_revocation(&self.inner.revocations, &principal, Some(&session)).await {
                Ok(()) => {}
                Err(error) => {
                    session.request_close(Close::for_failed_credential(&error));
                }
            }
        }
    }

    /// The revocation store.
    pub fn revocations(&self) -> &BoxedRevocationStore {
        &self.inner.revocations
    }

    /// The audit sink.
    pub(crate) fn auditor(&self) -> &Auditor {
        &self.inner.auditor
    }

    /// Revokes, then closes every live socket the revocation covers with
    /// 4403 `token revoked`. Returns how many were asked to close.
    ///
    /// # Errors
    ///
    /// A backend error when the store fails; nothing is closed then.
    pub async fn revoke(&self, revocation: Revocation) -> Result<usize, Error> {
        self.revoke_closing(revocation, revoked()).await
    }

    /// Revokes like [`revoke`](Self::revoke), but closes this node's
    /// matching sockets with `close` (a disabled account closes with 4403
    /// `forbidden`). Other processes close theirs with `token revoked`.
    ///
    /// # Errors
    ///
    /// A backend error when the store fails; nothing is closed then.
    pub async fn revoke_closing(
        &self,
        revocation: Revocation,
        close: Close,
    ) -> Result<usize, Error> {
        self.inner.revocations.revoke(revocation.clone()).await?;
        let closed = self.apply(&revocation, close);
        self.inner
            .auditor
            .record(&AuditEvent::revoked(&revocation, closed));
        Ok(closed)
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Arc<Session>>> {
        self.inner
            .connections
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    pub(crate) fn register(&self, session: Arc<Session>) -> Registration {
        self.listen();
        self.connections().insert(session.id(), session.clone());
        metrics::live_sockets(SocketState::Authenticated, 1.0);
        Registration {
            registry: Self {
                inner: self.inner.clone(),
            },
            id: session.id(),
            _lease: None,
        }
    }

    /// How many connections are live.
    pub fn len(&self) -> usize {
        self.connections().len()
    }

    /// Whether no connection is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the live connections.
    pub fn list(&self) -> Vec<ConnectionInfo> {
        self.connections()
            .values()
            .map(|session| {
                let principal = session.principal();
                ConnectionInfo {
                    id: session.id(),
                    subject: session.subject().to_owned(),
                    session_id: session.session_id().to_owned(),
                    peer: session.peer(),
                    transport: principal.transport(),
                    opened_at: session.opened_at(),
                    expires_at: principal.expires_at(),
                }
            })
            .collect()
    }

    /// Closes one connection. Returns whether it was live.
    ///
    /// The connection leaves the registry at once (it is no longer
    /// [listed](Self::list)), even while its close frame waits for a
    /// client that stopped reading.
    pub fn close(&self, id: ConnectionId, close: Close) -> bool {
        let session = self.connections().remove(&id);
        session.is_some_and(|session| session.request_close(close))
    }

    /// Closes every connection for which `matches` holds; returns how many.
    /// They leave the registry at once, as with [`close`](Self::close).
    pub fn close_where(&self, matches: impl Fn(&Session) -> bool, close: Close) -> usize {
        let matching: Vec<Arc<Session>> = {
            let mut connections = self.connections();
            let ids: Vec<ConnectionId> = connections
                .values()
                .filter(|session| matches(session))
                .map(|session| session.id())
                .collect();
            ids.iter().filter_map(|id| connections.remove(id)).collect()
        };
        matching
            .iter()
            .filter(|session| session.request_close(close))
            .count()
    }

    /// Closes every connection of `subject` with 4403 `forbidden` (a kick;
    /// the subject may reconnect: revoke to keep it out).
    pub fn kick(&self, subject: &str) -> usize {
        self.close_where(
            |session| session.subject() == subject,
            Close::new(CloseKind::Forbidden, reason::FORBIDDEN),
        )
    }
}

impl Clone for Registry {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("connections", &self.len())
            .field("revocations", &self.inner.revocations)
            .finish_non_exhaustive()
    }
}

/// The close of a socket whose token was revoked.
fn revoked() -> Close {
    Close::new(CloseKind::Forbidden, reason::TOKEN_REVOKED)
}

/// Applies a shared store's notices to the registry's sockets until the
/// registry or the store is gone. A receiver that fell behind (notices
/// were dropped) checks every socket again, so nothing is missed.
async fn apply_notices(registry: Weak<Inner>, mut notices: broadcast::Receiver<StoreNotice>) {
    loop {
        let notice = notices.recv().await;
        let Some(inner) = registry.upgrade() else {
            return;
        };
        let registry = Registry { inner };
        match notice {
            Ok(StoreNotice::Revoked(revocation)) => {
                registry.apply(&revocation, revoked());
            }
            Ok(StoreNotice::Resynced) | Err(broadcast::error::RecvError::Lagged(_)) => {
                registry.recheck_all().await;
            }
            Ok(StoreNotice::Stale) => {
                registry.close_where(
                    |_| true,
                    Close::new(CloseKind::BackendFailed, reason::BACKEND_FAILED),
                );
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Sockets upgraded but not yet authenticated (first-message routes).
#[derive(Debug, Default)]
struct Unauthenticated {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Why an unauthenticated socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PendingRefusal {
    /// This address holds its share already.
    Address,
    /// The node holds its share already.
    Total,
}

/// Holds one place among the unauthenticated sockets until dropped.
pub(crate) struct PendingSlot {
    inner: Arc<Inner>,
    address: Option<IpAddr>,
}

impl Inner {
    fn release(&self, address: Option<IpAddr>) {
        metrics::live_sockets(SocketState::Unauthenticated, -1.0);
        let mut pending = self
            .unauthenticated
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        pending.total = pending.total.saturating_sub(1);
        if let Some(address) = address
            && let Some(count) = pending.per_address.get_mut(&address)
        {
            *count -= 1;
            if *count == 0 {
                pending.per_address.remove(&address);
            }
        }
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.inner.release(self.address);
    }
}

impl Registry {
    /// Takes a place for an unauthenticated socket from `address`, if the
    /// caps allow.
    pub(crate) fn reserve_unauthenticated(
        &self,
        address: Option<IpAddr>,
        max_total: usize,
        max_per_address: usize,
    ) -> Result<PendingSlot, PendingRefusal> {
        let mut pending = self
            .inner
            .unauthenticated
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(address) = address
            && pending.per_address.get(&address).copied().unwrap_or(0) >= max_per_address
        {
            return Err(PendingRefusal::Address);
        }
        if pending.total >= max_total {
            return Err(PendingRefusal::Total);
        }
        pending.total += 1;
        if let Some(address) = address {
            *pending.per_address.entry(address).or_insert(0) += 1;
        }
        drop(pending);
        metrics::live_sockets(SocketState::Unauthenticated, 1.0);
        Ok(PendingSlot {
            inner: self.inner.clone(),
            address,
        })
    }
}

/// Removes a connection from the registry when dropped, and gives its
/// place among its subject's sockets back with it.
pub(crate) struct Registration {
    registry: Registry,
    id: ConnectionId,
    _lease: Option<SocketLease>,
}

impl Registration {
    /// Holds `lease` until the connection leaves the registry.
    pub(crate) fn hold(&mut self, lease: Option<SocketLease>) {
        self._lease = lease;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.connections().remove(&self.id);
        metrics::live_sockets(SocketState::Authenticated, -1.0);
    }
}
