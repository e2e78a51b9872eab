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
//! `Forwarded` (see [`Wiring::trusted_proxies`](crate::wiring::Wiring::trusted_proxies)). The
//! handshake layer hands the address it found on as
//! [`ClientAddr`](crate::handshake::ClientAddr), so the socket stage and its
//! audit events name the same client.
//!
//! Attempts still being checked count against the limits (the built-ins
//! do so), so concurrent guesses cannot race past a threshold. An attempt
//! beyond the ones in flight is not refused for that: it waits (up to
//! [`IN_FLIGHT_WAIT`], 2 s) for their outcomes ([`check_with_limits`]). So
//! 40 simultaneous correct logins of one account all go through, one
//! threshold's worth at a time, while 40 simultaneous wrong ones still
//! cost at most the threshold in password checks before the lock.
//!
//! [`HandshakeLayerBuilder::failure_limiter`]: crate::handshake::HandshakeLayerBuilder::failure_limiter

mod boxed;
mod limits;
mod memory;
mod sockets;

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use crate::audit::metrics;
use crate::error::{Error, ErrorKind};
use crate::refusal::RejectionReason;

pub use self::boxed::BoxedFailureLimiter;
pub use self::limits::FailureLimits;
#[cfg(feature = "redis")]
pub(crate) use self::memory::IN_FLIGHT_TIMEOUT;
pub use self::memory::InMemoryFailureLimiter;
pub(crate) use self::sockets::{AnyLeaseStore, SocketLease, SocketLimit, admit};

/// How long an attempt waits for the attempts in flight before it
/// ([`Admission::Busy`]): 2 s. Past it, it is refused with 429 and a
/// `Retry-After` of a second.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(2);

/// What to say to an attempt that waited [`IN_FLIGHT_WAIT`] in vain: the
/// attempts in flight settle within a hash's time.
const IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

/// Whether an attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Locked: refuse, and say when to try again.
    Locked {
        /// How long until the lock lifts.
        retry_after: Duration,
    },
    /// Not locked, but the attempts already in flight (admitted and not
    /// yet recorded) fill the threshold with the failures counted: ask
    /// again once some of them have been recorded. [`check_with_limits`]
    /// waits for them.
    Busy,
}

/// How a password check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Wrong password or unknown user.
    Failed,
    /// The right password.
    Succeeded,
    /// The check could not decide (the hasher was overloaded, the store
    /// failed): the attempt is neither a failure nor a success.
    Undecided,
}

/// Counts failed password attempts and locks accounts and addresses.
pub trait FailureLimiter: Clone + Send + Sync + 'static {
    /// The limiter's failure (its store). wsgate fails closed: 503.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Whether an attempt on `account` from `client` may go ahead now.
    ///
    /// An admitted attempt is reported once with [`record`](Self::record)
    /// — unless its request is dropped midway, so a limiter that counts
    /// attempts in flight (as it should: a burst of concurrent guesses
    /// must not overshoot the threshold) lets such counts expire.
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

/// Runs a password `check` for `account` from `client` under `limiter`:
/// a locked account or address is refused before the check (no hashing),
/// and the check's outcome is recorded. The handshake layer uses it for
/// Basic credentials; a login route uses it the same way.
///
/// # Errors
///
/// [`ErrorKind::TooManyAttempts`] while locked (the right password too), a
/// backend error when the limiter cannot say, and otherwise whatever the
/// check returned.
pub async fn check_with_limits<L, T, F>(
    limiter: &L,
    account: &str,
    client: Option<IpAddr>,
    check: F,
) -> Result<T, Error>
where
    L: FailureLimiter,
    F: Future<Output = Result<T, Error>>,
{
    admit_waiting(limiter, account, client).await?;
    let checked = check.await;
    let attempt = match &checked {
        Ok(_) => Attempt::Succeeded,
        Err(error) if RejectionReason::from_error(error).is_bad_credential() => Attempt::Failed,
        Err(_) => Attempt::Undecided,
    };
    if limiter.record(account, client, attempt).await.is_err() {
        tracing::warn!(target: "wsgate::limit", "the failure limiter failed to record an attempt");
    }
    checked
}

/// Asks `limiter` to admit an attempt, waiting while the attempts in flight
/// fill the threshold ([`Admission::Busy`]) for up to [`IN_FLIGHT_WAIT`]:
/// their outcomes decide, so a correct password is not refused while no
/// failure is counted. Asked again at growing intervals (10 ms to 100 ms),
/// which serves a limiter shared by several processes as well as one in
/// memory.
async fn admit_waiting<L: FailureLimiter>(
    limiter: &L,
    account: &str,
    client: Option<IpAddr>,
) -> Result<(), Error> {
    let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
    let mut interval = Duration::from_millis(10);
    loop {
        let admission = limiter
            .admit(account, client)
            .await
            .map_err(Error::backend)?;
        let retry_after = match admission {
            Admission::Allowed => return Ok(()),
            Admission::Locked { retry_after } => retry_after,
            Admission::Busy => {
                let now = tokio::time::Instant::now();
                if now < deadline {
                    tokio::time::sleep(interval.min(deadline - now)).await;
                    interval = (interval * 2).min(Duration::from_millis(100));
                    continue;
                }
                IN_FLIGHT_RETRY
            }
        };
        metrics::lockout();
        return Err(ErrorKind::TooManyAttempts { retry_after }.into());
    }
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
