//! Abuse resistance: limits on failed password attempts, per account and
//! per client address, with lockout.
//!
//! A [`FailureLimiter`] is asked before a password is checked and told how
//! the check went. While an account (or a client address) is locked, every
//! attempt is refused with 429 and `Retry-After` — the right password too,
//! so a lock tells an attacker nothing. [`InMemoryFailureLimiter`] is the
//! built-in; the handshake layer applies it to Basic credentials
//! ([`HandshakeLayerBuilder::failure_limiter`]), and a login route calls it
//! the same way.
//!
//! The client address is the socket's peer, or — only when that peer is a
//! configured trusted proxy — the client named by `X-Forwarded-For` or
//! `Forwarded` ([`client_address`]).
//!
//! [`HandshakeLayerBuilder::failure_limiter`]: crate::handshake::HandshakeLayerBuilder::failure_limiter

pub(crate) mod client;
mod memory;

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

pub use self::client::client_address;
pub use self::memory::{InMemoryFailureLimiter, InMemoryFailureLimiterBuilder};

/// Whether an attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Locked: refuse, and say when to try again.
    Locked {
        /// How long until the lock lifts.
        retry_after: Duration,
    },
}

/// How a password check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Wrong password or unknown user.
    Failed,
    /// The right password.
    Succeeded,
}

/// Counts failed password attempts and locks accounts and addresses.
pub trait FailureLimiter: Clone + Send + Sync + 'static {
    /// The limiter's failure (its store). wsgate fails closed: 503.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Whether an attempt on `account` from `client` may go ahead now.
    fn admit(
        &self,
        account: &str,
        client: Option<IpAddr>,
    ) -> impl Future<Output = Result<Admission, Self::Error>> + Send;

    /// Records how an admitted attempt went.
    fn record(
        &self,
        account: &str,
        client: Option<IpAddr>,
        attempt: Attempt,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// No limits, for routes that apply their own.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLimits;

impl FailureLimiter for NoLimits {
    type Error = std::convert::Infallible;

    async fn admit(&self, _: &str, _: Option<IpAddr>) -> Result<Admission, Self::Error> {
        Ok(Admission::Allowed)
    }

    async fn record(&self, _: &str, _: Option<IpAddr>, _: Attempt) -> Result<(), Self::Error> {
        Ok(())
    }
}
