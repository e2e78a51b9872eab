//! Asking again, while a socket is open, whether its credential still holds.
//!
//! A signed token says once, at the handshake, what it will say until it
//! expires. An introspected token (RFC 7662) can be revoked at the provider
//! at any moment, and only the provider knows: a verifier that learns a
//! principal from such a source attaches a [`Recheck`], and every live
//! socket of that principal runs it on its interval.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::error::Error;

/// What a recheck found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Standing {
    /// The credential still holds.
    Active,
    /// It no longer does (revoked or expired at the provider): the socket
    /// closes with 4403 `token revoked`.
    Inactive,
}

/// A check a live socket runs every [`every`](Self::every) for as long as
/// it is open. `Err` means nobody could say: the socket stays open and
/// asks again at the next interval; two failed checks in a row close it
/// with 1011 `backend unavailable`, since a socket whose credential cannot
/// be checked fails closed.
#[derive(Clone)]
pub struct Recheck {
    // One pointer: every principal has room for a recheck, and most never
    // hold one.
    inner: Arc<Inner>,
}

struct Inner {
    every: Duration,
    check: Box<dyn Fn() -> BoxFuture<'static, Result<Standing, Error>> + Send + Sync>,
}

impl Recheck {
    /// Runs `check` every `every` (at least one second).
    pub fn new<F, Fut>(every: Duration, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Standing, Error>> + Send + 'static,
    {
        Self {
            inner: Arc::new(Inner {
                every: every.max(Duration::from_secs(1)),
                check: Box::new(move || Box::pin(check())),
            }),
        }
    }

    /// How often the check runs.
    pub fn every(&self) -> Duration {
        self.inner.every
    }

    /// Runs the check once.
    ///
    /// # Errors
    ///
    /// Whatever the check reports when it could not decide.
    pub async fn check(&self) -> Result<Standing, Error> {
        (self.inner.check)().await
    }
}

/// Two rechecks are the same when they are clones of one.
impl PartialEq for Recheck {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Debug for Recheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recheck")
            .field("every", &self.inner.every)
            .finish_non_exhaustive()
    }
}
