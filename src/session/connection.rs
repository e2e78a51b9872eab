//! The state of one live connection, shared by its driver, the message
//! pipeline, the registry and the application.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::principal::{Principal, Transport};
use crate::session::close::Close;

/// Identifies a live connection (unique within the process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

impl ConnectionId {
    pub(crate) fn next() -> Self {
        Self(NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed))
    }

    /// A connection id from its number (for tests and stores).
    pub fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The principal of the last session a layer looked at, kept while it is
/// the session's current one: reading it again takes no lock and no
/// reference (each of those is two atomic operations a message). A layer
/// keeps one per clone, and the socket's driver runs its own clone of the
/// pipeline, so it is the connection's.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeptPrincipal {
    kept: Option<(ConnectionId, u64, Arc<Principal>)>,
}

impl KeptPrincipal {
    /// `session`'s current principal.
    pub(crate) fn of(&mut self, session: &Session) -> &Arc<Principal> {
        // The version is read before the principal: a refresh in between
        // leaves the new principal under the old number, read again next
        // time, never the old one under the new.
        let version = session.principal_version.load(Ordering::Acquire);
        let current = matches!(
            &self.kept,
            Some((id, kept_version, _)) if *id == session.id() && *kept_version == version
        );
        if !current {
            self.kept = None;
        }
        let (_, _, principal) = self
            .kept
            .get_or_insert_with(|| (session.id(), version, session.principal()));
        principal
    }
}

/// One authenticated connection.
///
/// The subject never changes; the rest of the principal (expiry, token id,
/// roles) may, when the client refreshes its token in-band.
pub struct Session {
    id: ConnectionId,
    session_id: String,
    subject: String,
    peer: Option<SocketAddr>,
    opened_at: SystemTime,
    principal: RwLock<Arc<Principal>>,
    /// Counts the principal's replacements: what [`KeptPrincipal`] checks
    /// instead of taking the lock.
    principal_version: AtomicU64,
    close: Mutex<Option<Close>>,
    /// Whether `close` holds a request: what the driver reads on every
    /// turn of its loop, without the lock.
    close_requested: AtomicBool,
    wake: Notify,
    /// The token the last checked message carried, and what it verified
    /// as: a connection repeats its token from message to message, and
    /// comparing the bytes costs less than hashing them for the shared
    /// cache. (The comparison's timing could only tell this client about a
    /// token it sent itself.)
    message_token: Mutex<Option<(Arc<str>, Arc<Principal>)>>,
}

impl Session {
    /// A session for `principal`, with a fresh connection id. wsgate makes
    /// one per upgraded connection; make your own to test a pipeline or a
    /// policy without a socket.
    pub fn new(principal: Principal, peer: Option<SocketAddr>) -> Self {
        let id = ConnectionId::next();
        // A `sid` claim names the login session several sockets may share;
        // without one, each connection is its own session.
        let session_id = principal
            .session_id()
            .map_or_else(|| format!("conn-{id}"), str::to_owned);
        Self {
            id,
            session_id,
            subject: principal.subject().to_owned(),
            peer,
            opened_at: SystemTime::now(),
            principal: RwLock::new(Arc::new(principal)),
            principal_version: AtomicU64::new(0),
            close: Mutex::new(None),
            close_requested: AtomicBool::new(false),
            wake: Notify::new(),
            message_token: Mutex::new(None),
        }
    }

    /// The connection id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The session id: the token's `sid` claim, or `conn-<id>`.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The subject; fixed for the life of the connection.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The client's address, when known.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// When the connection was authenticated (its upgrade, or its first
    /// message on a first-message route).
    pub fn opened_at(&self) -> SystemTime {
        self.opened_at
    }

    /// How the connection authenticated.
    pub fn transport(&self) -> Option<Transport> {
        self.principal().transport()
    }

    /// The current principal (after any refresh).
    pub fn principal(&self) -> Arc<Principal> {
        self.principal
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Replaces the principal after a refresh and wakes the driver to re-arm
    /// its expiry timer.
    pub(crate) fn refresh(&self, principal: Principal) {
        let transport = self.transport();
        let mut principal = principal;
        if let Some(transport) = transport {
            principal = principal.with_transport(transport);
        }
        let mut current = self
            .principal
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        *current = Arc::new(principal);
        self.principal_version.fetch_add(1, Ordering::Release);
        drop(current);
        self.wake.notify_one();
    }

    /// The token the last checked message of this connection carried, and
    /// what it verified as.
    pub(crate) fn remembered_message_token(&self) -> Option<(Arc<str>, Arc<Principal>)> {
        self.message_token
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Remembers what `token` verified as, for the next message.
    pub(crate) fn remember_message_token(&self, token: &str, principal: Arc<Principal>) {
        *self
            .message_token
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some((token.into(), principal));
    }

    /// Asks the driver to close the socket. The first request wins.
    pub(crate) fn request_close(&self, close: Close) -> bool {
        let mut slot = self
            .close
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if slot.is_some() {
            return false;
        }
        *slot = Some(close);
        self.close_requested.store(true, Ordering::Release);
        drop(slot);
        self.wake.notify_one();
        true
    }

    /// The close a request asked for, if any. A request made while this
    /// reads is seen on the driver's next turn: the request wakes it.
    pub(crate) fn take_close_request(&self) -> Option<Close> {
        if !self.close_requested.load(Ordering::Acquire) {
            return None;
        }
        *self
            .close
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Completes at the next wake-up of the driver (a refresh, a close
    /// request); one that came while nobody waited is kept for the next.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.wake.notified()
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("session_id", &self.session_id)
            .field("subject", &self.subject)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::AuthMethod;

    fn session(subject: &str, role: &str) -> Session {
        Session::new(
            Principal::new(subject, AuthMethod::Token).with_roles([role]),
            None,
        )
    }

    #[test]
    fn a_kept_principal_follows_refreshes_and_sessions() {
        let alice = session("alice", "user");
        let bob = session("bob", "admin");
        let mut kept = KeptPrincipal::default();
        assert_eq!(kept.of(&alice).roles(), ["user"]);
        assert!(Arc::ptr_eq(kept.of(&alice), &alice.principal()));
        alice.refresh(Principal::new("alice", AuthMethod::Token).with_roles(["moderator"]));
        assert_eq!(kept.of(&alice).roles(), ["moderator"], "a refresh is seen");
        assert_eq!(kept.of(&bob).subject(), "bob", "another session's own");
        assert_eq!(kept.of(&alice).roles(), ["moderator"]);
    }
}
