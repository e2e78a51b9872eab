//! Several processes behind a load balancer (feature `redis`):
//! revocations, tickets, the failure limiter and each subject's count of
//! sockets shared through Redis.
//!
//! ```no_run
//! use wsgate::redis::RedisStores;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # let verifier = wsgate::jwt::JwtVerifier::builder()
//! #     .key(wsgate::jwt::VerificationKey::hmac(&[7; 32], wsgate::jwt::Algorithm::HS256)?)
//! #     .build()?;
//! let redis = RedisStores::builder("redis://127.0.0.1:6379/").build()?;
//! let gate = wsgate::Gate::builder(verifier)
//!     .revocations(redis.revocations())
//!     .tickets(redis.tickets())
//!     .socket_leases(redis.socket_leases())
//!     .max_sockets_per_subject(20)?
//!     .build()?;
//! # let _ = gate;
//! # Ok(())
//! # }
//! ```
//!
//! - **Revocations** ([`RedisRevocationStore`]): written durably (kept for
//!   the retention, default 24 h: longer than any token lives) and appended
//!   to a stream in one atomic step; every process tails the stream and
//!   closes its matching sockets through its registry, the path of its own
//!   revocations; after a reconnect, a Redis restart or a gap it
//!   resynchronises and checks every live socket again. Checks read a local
//!   copy: a handshake costs no round trip.
//! - **Staleness**: while a process has had no answer from Redis for longer
//!   than `max_staleness` (default 30 s; the tail's heartbeat answers every
//!   second, so a stalled link is noticed in seconds), its live sockets
//!   close with 1011 `backend unavailable` and handshakes get 503 with
//!   `Retry-After`; contact back, it resynchronises and serves again. A
//!   process that has not yet resynchronised since it started answers
//!   handshakes the same way: its copy cannot yet hold what was revoked
//!   before it started.
//!   [`is_current`](RedisRevocationStore::is_current) is the readiness
//!   check.
//! - **Tickets** ([`RedisTicketStore`]): redeemed exactly once across
//!   processes.
//! - **DPoP proofs** ([`RedisProofReplayStore`]): each accepted once across
//!   processes (`SET NX PX` for the proof's window).
//! - **Sockets per subject** ([`RedisSocketLeaseStore`]): each socket
//!   holds a lease that its process renews; a process that dies stops
//!   counting within the lease time (30 s).
//!
//! Connections: `redis://` and `rediss://` (TLS with rustls and aws-lc-rs,
//! the platform's roots, or a private CA through
//! [`tls_root_certificate`](RedisStoresBuilder::tls_root_certificate)),
//! `AUTH` from the URL
//! (`redis://user:password@host/`); see SECURITY.md for the ACL to give
//! wsgate's user. Commands time out after 2 s, so a Redis that is down
//! answers 503 rather than holding a request.

mod commands;
mod limiter;
mod refresh;
mod replay;
mod revocations;
mod sockets;
mod tickets;

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub(crate) use self::commands::Commands;

use crate::error::ConfigError;

pub use self::limiter::RedisFailureLimiter;
pub use self::refresh::RedisRefreshSessionStore;
pub use self::replay::RedisProofReplayStore;
pub use self::revocations::{RedisRevocationStore, RedisStoreError};
pub use self::sockets::RedisSocketLeaseStore;
pub use self::tickets::RedisTicketStore;

/// Timings of the stores.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RedisSettings {
    pub(crate) max_staleness: Duration,
    pub(crate) retention: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    /// How much longer than the stream's block a heartbeat may take.
    pub(crate) heartbeat_grace: Duration,
    /// Entries the revocation stream keeps.
    pub(crate) stream_length: usize,
    /// How long a socket lease lasts unless renewed.
    pub(crate) socket_lease: Duration,
}

/// The stores of one Redis (and key prefix), shared by every process that
/// uses the same. Cheap to clone.
#[derive(Clone)]
pub struct RedisStores {
    revocations: RedisRevocationStore,
    tickets: RedisTicketStore,
    socket_leases: RedisSocketLeaseStore,
    commands: Commands,
    prefix: String,
}

/// Builds [`RedisStores`].
#[derive(Debug)]
#[must_use]
pub struct RedisStoresBuilder {
    url: String,
    prefix: String,
    settings: RedisSettings,
    root_certificate: Option<Vec<u8>>,
}

impl RedisStores {
    /// Stores on the Redis at `url` (`redis://[user:password@]host[:port][/db]`
    /// or `rediss://…`), under the key prefix `wsgate`.
    pub fn builder(url: impl Into<String>) -> RedisStoresBuilder {
        RedisStoresBuilder {
            url: url.into(),
            prefix: "wsgate".to_owned(),
            settings: RedisSettings {
                max_staleness: Duration::from_secs(30),
                retention: Duration::from_secs(24 * 3600),
                connect_timeout: Duration::from_secs(2),
                command_timeout: Duration::from_secs(2),
                heartbeat_grace: Duration::from_secs(1),
                stream_length: 10_000,
                socket_lease: Duration::from_secs(30),
            },
            root_certificate: None,
        }
    }

    /// The shared revocation store.
    pub fn revocations(&self) -> RedisRevocationStore {
        self.revocations.clone()
    }

    /// The shared ticket store.
    pub fn tickets(&self) -> RedisTicketStore {
        self.tickets.clone()
    }

    /// The DPoP proofs seen lately, shared, for
    /// [`DpopVerifierBuilder::replays`](crate::dpop::DpopVerifierBuilder::replays):
    /// a proof used on one process is a replay on every other.
    pub fn proof_replays(&self) -> RedisProofReplayStore {
        RedisProofReplayStore::new(self.commands.clone(), &self.prefix)
    }

    /// Refresh sessions, shared: a token rotated on one process is spent
    /// on every other, and reuse on any ends the session everywhere (with
    /// [`revocations`](Self::revocations) as the gate's store, its sockets
    /// on every process close).
    pub fn refresh_sessions(&self) -> RedisRefreshSessionStore {
        RedisRefreshSessionStore::new(self.commands.clone(), &self.prefix)
    }

    /// The shared count of each subject's live sockets, for
    /// [`GateBuilder::socket_leases`](crate::GateBuilder::socket_leases).
    pub fn socket_leases(&self) -> RedisSocketLeaseStore {
        self.socket_leases.clone()
    }

    /// A failure limiter that counts across every process by `limits`
    /// (`max_entries` aside: Redis keys expire on their own).
    pub fn failure_limiter(&self, limits: crate::limit::FailureLimits) -> RedisFailureLimiter {
        RedisFailureLimiter::new(self.commands.clone(), &self.prefix, limits)
    }
}

impl RedisStoresBuilder {
    /// The prefix of every key (default `wsgate`): applications sharing a
    /// Redis keep theirs apart with it.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long live sockets stay open, and handshakes are served, without
    /// contact with Redis. Defaults to 30 s.
    pub fn max_staleness(mut self, bound: Duration) -> Self {
        self.settings.max_staleness = bound.max(Duration::from_secs(1));
        self
    }

    /// How long a revocation is kept: at least as long as the longest
    /// token lifetime, since a token issued before it may be shown until it
    /// expires. Defaults to 24 h.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.settings.retention = retention;
        self
    }

    /// How long a socket's lease lasts unless its process renews it (every
    /// third of this): the sockets of a process that died stop counting
    /// toward their subject's limit within it. Defaults to 30 s; at least
    /// 3 s.
    pub fn socket_lease(mut self, lease: Duration) -> Self {
        self.settings.socket_lease = lease.max(Duration::from_secs(3));
        self
    }

    /// For `rediss://` to a server whose certificate a private CA signed:
    /// trust that CA (PEM) instead of the platform's roots.
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// How many entries the revocation stream keeps (default 10 000): a
    /// process further behind resynchronises from the durable records.
    pub fn stream_length(mut self, entries: usize) -> Self {
        self.settings.stream_length = entries.max(1);
        self
    }

    /// How long a command (and a connection attempt) may take before it
    /// fails: 503 rather than a held request. Defaults to 2 s.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.settings.command_timeout = timeout;
        self.settings.connect_timeout = timeout;
        self
    }

    /// Starts the stores: connects lazily (the app starts while Redis is
    /// down; its handshakes get 503 until contact), and starts the
    /// revocation stream's tail. Call it inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidRedisUrl`] for a URL that is not one.
    pub fn build(self) -> Result<RedisStores, ConfigError> {
        let client = match self.root_certificate {
            None => redis::Client::open(self.url.as_str()),
            Some(root_cert) => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            ),
        }
        .map_err(|_| ConfigError::InvalidRedisUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let commands = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|_| ConfigError::InvalidRedisUrl)?;
        let commands = Commands::new(commands);
        let socket_leases = RedisSocketLeaseStore::new(
            client.clone(),
            commands.clone(),
            &self.prefix,
            &self.settings,
        );
        Ok(RedisStores {
            revocations: RedisRevocationStore::start(
                client,
                commands.clone(),
                &self.prefix,
                self.settings,
            ),
            tickets: RedisTicketStore::new(commands.clone(), &self.prefix),
            socket_leases,
            commands,
            prefix: self.prefix,
        })
    }
}

impl fmt::Debug for RedisStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStores")
            .field("revocations", &self.revocations)
            .finish_non_exhaustive()
    }
}
