//! Places of live sockets, counted per subject: what caps how many sockets
//! one credential may hold (see
//! [`GateBuilder::max_sockets_per_subject`](crate::GateBuilder::max_sockets_per_subject)).

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a subject that holds its limit of sockets gets when it opens one
/// more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AtSocketLimit {
    /// The new socket is refused: 429 `too many connections` with
    /// `Retry-After` at a handshake, 4429 on a first-message route. The
    /// default: a stolen credential cannot push its owner's sockets out.
    #[default]
    RefuseNewest,
    /// The subject's oldest socket closes with 4403 `too many connections`
    /// and the new one is admitted: for applications whose users keep many
    /// tabs open, where refusing the newest locks them out.
    CloseOldest,
}

/// The answer of [`SocketLeaseStore::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Acquired {
    /// The socket has its place.
    Taken,
    /// The socket has its place, made by taking the places of these
    /// leases, the subject's oldest
    /// ([`AtSocketLimit::CloseOldest`]): their sockets must close.
    TakenEvicting(Vec<String>),
    /// The subject holds its limit already; nothing was taken.
    Full,
}

/// Leases on the places of live sockets, counted per subject, in one
/// process or across every process that shares the store.
///
/// Each authenticated socket holds one lease, named by an id that is
/// unique across processes and that sorts by the socket's opening time
/// (the smallest id is the oldest socket). A store shared between
/// processes lets leases expire, so the sockets of a process that died
/// stop counting: the holder renews its leases every
/// [`renewal_interval`](Self::renewal_interval).
pub trait SocketLeaseStore: Clone + Send + Sync + 'static {
    /// The store's failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Takes a lease for socket `lease` of `subject`, unless the subject
    /// holds `max` live leases already; then, by `at_limit`, takes nothing
    /// ([`Acquired::Full`]) or removes the subject's oldest leases to make
    /// room ([`Acquired::TakenEvicting`]). Counting and taking are one
    /// atomic step: concurrent calls cannot overshoot. A lease the subject
    /// holds already is answered [`Acquired::Taken`] (a call tried again
    /// after a lost reply must not count its socket twice).
    fn acquire(
        &self,
        subject: &str,
        lease: &str,
        max: usize,
        at_limit: AtSocketLimit,
    ) -> impl Future<Output = Result<Acquired, Self::Error>> + Send;

    /// Gives the lease back: its socket closed.
    fn release(
        &self,
        subject: &str,
        lease: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Extends `leases` (subject, lease) of this process, and answers those
    /// among them that another socket's acquisition took away
    /// ([`Acquired::TakenEvicting`]): their sockets must close. A lease
    /// the store lost otherwise (it expired, the store restarted) is taken
    /// again.
    fn renew(
        &self,
        leases: Vec<(String, String)>,
    ) -> impl Future<Output = Result<Vec<String>, Self::Error>> + Send;

    /// How often the holder renews its leases; `None` for a store whose
    /// leases never expire (one process's memory). Defaults to `None`.
    fn renewal_interval(&self) -> Option<Duration> {
        None
    }

    /// The ids of leases taken away by acquisitions on other processes,
    /// as they happen, so their holder closes their sockets at once rather
    /// than at its next [`renew`](Self::renew) (which still finds any it
    /// missed); each call gives a new receiver. Defaults to none: a store
    /// of one process tells its holder in the acquisition's answer.
    fn evictions(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }
}

/// A [`SocketLeaseStore`] in this process's memory: the count of one
/// process. Leases never expire (they live and die with the process).
/// Clones share the same leases.
#[derive(Clone, Debug, Default)]
pub struct InMemorySocketLeaseStore {
    /// Subject → its leases, oldest first.
    subjects: Arc<Mutex<HashMap<String, BTreeSet<String>>>>,
}

impl InMemorySocketLeaseStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn subjects(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeSet<String>>> {
        self.subjects
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl SocketLeaseStore for InMemorySocketLeaseStore {
    type Error = Infallible;

    async fn acquire(
        &self,
        subject: &str,
        lease: &str,
        max: usize,
        at_limit: AtSocketLimit,
    ) -> Result<Acquired, Infallible> {
        let mut subjects = self.subjects();
        let leases = subjects.entry(subject.to_owned()).or_default();
        if leases.contains(lease) {
            return Ok(Acquired::Taken);
        }
        let mut evicted = Vec::new();
        while leases.len() >= max.max(1) {
            if at_limit == AtSocketLimit::RefuseNewest {
                return Ok(Acquired::Full);
            }
            evicted.extend(leases.pop_first());
        }
        leases.insert(lease.to_owned());
        Ok(if evicted.is_empty() {
            Acquired::Taken
        } else {
            Acquired::TakenEvicting(evicted)
        })
    }

    async fn release(&self, subject: &str, lease: &str) -> Result<(), Infallible> {
        let mut subjects = self.subjects();
        if let Some(leases) = subjects.get_mut(subject) {
            leases.remove(lease);
            if leases.is_empty() {
                subjects.remove(subject);
            }
        }
        Ok(())
    }

    async fn renew(&self, leases: Vec<(String, String)>) -> Result<Vec<String>, Infallible> {
        // Nothing expires here; an evicted lease is gone from the set, and
        // its holder was told at once (the evicting acquisition runs in
        // this process).
        let subjects = self.subjects();
        Ok(leases
            .into_iter()
            .filter(|(subject, lease)| {
                !subjects
                    .get(subject)
                    .is_some_and(|held| held.contains(lease))
            })
            .map(|(_, lease)| lease)
            .collect())
    }
}
