//! The state of one live connection, shared by its driver, the message
//! pipeline, the registry and the application.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use tokio::sync::Notify;

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
    close: Mutex<Option<Close>>,
    wake: Notify,
    /// The token the last checked message carried, and what it verified
    /// as: a connection repeats its token from message to message, and
    /// comparing the bytes costs less than hashing them for the shared
    /// cache. (The comparison's timing could only tell this client about a
    /// token it sent itself.)
    message_token: Mutex<Option<(Box<str>, Arc<Principal>)>>,
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
            close: Mutex::new(None),
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
        *self
            .principal
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(principal);
        self.wake.notify_one();
    }

    /// What `token` verified as, when it is the token the last checked
    /// message of this connection carried.
    pub(crate) fn remembered_message_token(&self, token: &str) -> Option<Arc<Principal>> {
        let remembered = self
            .message_token
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match &*remembered {
            Some((last, principal)) if **last == *token => Some(principal.clone()),
            _ => None,
        }
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
        drop(slot);
        self.wake.notify_one();
        true
    }

    pub(crate) fn take_close_request(&self) -> Option<Close> {
        *self
            .close
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
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
