//! Storage traits for the data wsgate reads and writes, with in-memory
//! built-ins.
//!
//! Implement them over your own database; each is `Clone + Send + Sync +
//! 'static` with an associated `Error`. `Ok(None)` means "no such entry"
//! while `Err` means "the store failed" (wsgate then refuses with 503: it
//! fails closed).

mod boxed;
mod memory;
mod refresh;
mod replay;
mod sockets;

use std::fmt;
use std::future::Future;
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, TokenError};
use crate::principal::Principal;
use crate::session::Session;

pub use self::boxed::{BoxedRevocationStore, BoxedTicketStore};
pub use self::memory::{
    DEFAULT_REVOCATION_RETENTION, InMemoryCredentialStore, InMemoryRevocationStore,
    InMemoryTicketStore,
};
pub use self::refresh::{
    InMemoryRefreshSessionStore, RefreshDigest, RefreshRecord, RefreshSessionStore,
};
pub use self::replay::{
    DEFAULT_REPLAY_CAPACITY, InMemoryProofReplayStore, ProofId, ProofReplayStore, ReplayStoreFull,
};
pub use self::sockets::{Acquired, AtSocketLimit, InMemorySocketLeaseStore, SocketLeaseStore};

/// Username → password hash, roles and status.
pub trait CredentialStore: Clone + Send + Sync + 'static {
    /// The store's failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Looks a user up by username; `Ok(None)` when there is no such user.
    fn find_user(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<StoredUser>, Self::Error>> + Send;
}

/// The write side of a credential store: what account pages are built on
/// (see [`Accounts`](crate::accounts::Accounts), which adds the password
/// policy, hashing and the revocations a change needs). Each method
/// answers `Ok(false)` when the user is taken (create) or unknown (the
/// others).
pub trait AccountStore: CredentialStore {
    /// Adds `user` under `username`, unless the username is taken.
    fn create_user(
        &self,
        username: &str,
        user: StoredUser,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Replaces the user's password hash (a PHC string).
    fn set_password_hash(
        &self,
        username: &str,
        password_hash: String,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Replaces the user's roles.
    fn set_roles(
        &self,
        username: &str,
        roles: Vec<String>,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Disables (or enables) the account.
    fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Every user, by username, in username order.
    fn list_users(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, StoredUser)>, Self::Error>> + Send;
}

/// What a [`CredentialStore`] holds for one user.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredUser {
    subject: String,
    password_hash: String,
    roles: Vec<String>,
    disabled: bool,
}

impl StoredUser {
    /// A user with `subject` (the principal's subject, often the username)
    /// and a PHC password hash, for example from
    /// [`hash_password`](crate::password::hash_password).
    pub fn new(subject: impl Into<String>, password_hash: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            password_hash: password_hash.into(),
            roles: Vec::new(),
            disabled: false,
        }
    }

    /// Sets the roles.
    pub fn with_roles<I, R>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        self.roles = crate::principal::strings(roles);
        self
    }

    /// Replaces the password hash.
    pub fn with_password_hash(mut self, password_hash: impl Into<String>) -> Self {
        self.password_hash = password_hash.into();
        self
    }

    /// Marks the account disabled: the right password then gets 403.
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The PHC password hash.
    pub fn password_hash(&self) -> &str {
        &self.password_hash
    }

    /// The roles.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether the account is disabled.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }
}

impl fmt::Debug for StoredUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredUser")
            .field("subject", &self.subject)
            .field("password_hash", &"[redacted]")
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// Single-use tickets, keyed by the SHA-256 digest of the ticket: the store
/// never sees a ticket itself, so a leaked store holds nothing redeemable.
pub trait TicketStore: Clone + Send + Sync + 'static {
    /// The store's failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores a ticket for `principal` until `expires_at`.
    fn insert(
        &self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Removes the ticket and returns its principal if it was there and had
    /// not expired at `now`, in one atomic step: of many concurrent calls
    /// for the same ticket, at most one gets `Some`.
    fn take(
        &self,
        digest: &TicketDigest,
        now: SystemTime,
    ) -> impl Future<Output = Result<Option<Principal>, Self::Error>> + Send;

    /// Stores a ticket like [`insert`](Self::insert) unless the principal's
    /// subject already holds `max` tickets that are neither taken nor
    /// expired at `now`; then stores nothing and answers `false`. Counting
    /// and storing are one atomic step: concurrent calls cannot overshoot.
    ///
    /// Defaults to [`insert`](Self::insert) without counting: a store of
    /// your own enforces
    /// [`GateBuilder::max_tickets_per_subject`](crate::GateBuilder::max_tickets_per_subject)
    /// only by implementing this. The built-in stores do.
    fn insert_within(
        &self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
        now: SystemTime,
        max: usize,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        let _ = (now, max);
        async move {
            self.insert(digest, principal, expires_at)
                .await
                .map(|()| true)
        }
    }
}

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Revocation {
    /// One token, by its `jti`.
    Token(String),
    /// Every token of `subject` issued at or before `issued_before`; tokens
    /// issued later still work.
    Subject {
        /// The subject.
        subject: String,
        /// The cut-off.
        issued_before: SystemTime,
    },
    /// One session: a token's `sid` claim, or a single connection
    /// (`conn-<id>`).
    Session(String),
}

impl Revocation {
    /// One token, by its `jti`.
    pub fn token(token_id: impl Into<String>) -> Self {
        Revocation::Token(token_id.into())
    }

    /// Every token of `subject` issued at or before `issued_before` (pass
    /// `SystemTime::now()` for "every token so far").
    pub fn subject(subject: impl Into<String>, issued_before: SystemTime) -> Self {
        Revocation::Subject {
            subject: subject.into(),
            issued_before,
        }
    }

    /// One session: a `sid`, or one connection's `conn-<id>`
    /// ([`Session::session_id`]).
    pub fn session(session_id: impl Into<String>) -> Self {
        Revocation::Session(session_id.into())
    }

    /// Whether this revocation covers `principal` in session `session_id`.
    pub fn covers(&self, principal: &Principal, session_id: Option<&str>) -> bool {
        match self {
            Revocation::Token(id) => principal.token_id() == Some(id.as_str()),
            Revocation::Subject {
                subject,
                issued_before,
            } => principal.subject() == subject && issued_by(principal, *issued_before),
            Revocation::Session(id) => session_id == Some(id.as_str()),
        }
    }
}

/// Whether `principal` was issued at or before `cut_off`. A principal without
/// an issue time cannot show it came after, so it counts as issued before.
pub(crate) fn issued_by(principal: &Principal, cut_off: SystemTime) -> bool {
    principal.issued_at().is_none_or(|issued| issued <= cut_off)
}

/// Refuses `principal` when `revocations` says it is revoked, by the one
/// session rule: on a live connection its session, before one (a handshake,
/// a first message) the `sid` its token names. Every path checks through
/// here: the handshake, first-message routes, refreshes and per-message
/// tokens.
///
/// # Errors
///
/// [`TokenError::Revoked`] when revoked, a backend error when the store
/// failed (fail closed).
pub(crate) async fn check_revocation<R: RevocationStore>(
    revocations: &R,
    principal: &Principal,
    session: Option<&Session>,
) -> Result<(), Error> {
    let answer = revocations
        .is_revoked(principal, revoked_session(principal, session))
        .await;
    revocation_verdict(answer)
}

/// [`check_revocation`] when the store answers without waiting
/// ([`RevocationStore::revoked_now`]); `None` when it cannot.
pub(crate) fn check_revocation_now<R: RevocationStore>(
    revocations: &R,
    principal: &Principal,
    session: Option<&Session>,
) -> Option<Result<(), Error>> {
    revocations
        .revoked_now(principal, revoked_session(principal, session))
        .map(revocation_verdict)
}

/// The session a revocation check asks about: the live connection's, else
/// the token's `sid`.
fn revoked_session<'a>(principal: &'a Principal, session: Option<&'a Session>) -> Option<&'a str> {
    match session {
        Some(session) => Some(session.session_id()),
        None => principal.session_id(),
    }
}

fn revocation_verdict<E: std::error::Error + Send + Sync + 'static>(
    answer: Result<bool, E>,
) -> Result<(), Error> {
    match answer {
        Ok(false) => Ok(()),
        Ok(true) => Err(TokenError::Revoked.into()),
        Err(error) => Err(Error::backend(error)),
    }
}

/// What a revocation store shared between processes tells this process's
/// [`Registry`](crate::socket::Registry), which applies it to the live
/// sockets exactly as it applies its own revocations.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreNotice {
    /// A revocation made elsewhere (another process): matching sockets
    /// close with 4403 `token revoked`.
    Revoked(Revocation),
    /// The store caught up after lost contact (a reconnect, a restart, a
    /// gap): every live socket is checked against it again.
    Resynced,
    /// Contact lost for longer than the store's bound: no socket can be
    /// checked any more, so every one closes with 1011 `backend
    /// unavailable` (fail closed).
    Stale,
}

/// Revoked tokens, subjects and sessions: consulted at every handshake,
/// refresh and per-message token check.
pub trait RevocationStore: Clone + Send + Sync + 'static {
    /// The store's failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Records a revocation.
    fn revoke(
        &self,
        revocation: Revocation,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Whether `principal` (in session `session_id`, if known) is revoked.
    fn is_revoked(
        &self,
        principal: &Principal,
        session_id: Option<&str>,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// The answer [`is_revoked`](Self::is_revoked) would give, when the
    /// store has it at hand without waiting (a map in memory, a local copy
    /// of a shared store): the per-message check then needs no future of
    /// its own. Defaults to `None`, which sends the caller to `is_revoked`;
    /// a store that answers here must answer the same as there.
    fn revoked_now(
        &self,
        principal: &Principal,
        session_id: Option<&str>,
    ) -> Option<Result<bool, Self::Error>> {
        let _ = (principal, session_id);
        None
    }

    /// Notices for the registry, from a store that other processes write
    /// to (see [`StoreNotice`]); each call gives a new receiver. Defaults
    /// to none: a store of this process alone has nothing to tell.
    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<StoreNotice>> {
        None
    }
}

/// The SHA-256 digest of a ticket.
#[derive(Clone, Copy, Hash, PartialEq, Eq)]
pub struct TicketDigest([u8; 32]);

impl TicketDigest {
    /// The digest of `ticket`.
    pub fn of(ticket: &str) -> Self {
        Self(Sha256::digest(ticket.as_bytes()).into())
    }

    /// The digest's bytes, for use as a database key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares two digests in constant time.
    pub fn constant_time_eq(&self, other: &TicketDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TicketDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first bytes are enough to tell tickets apart in a log, and a
        // digest prefix gives nothing towards the ticket.
        write!(
            f,
            "TicketDigest({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}
