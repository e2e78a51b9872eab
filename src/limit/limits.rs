//! The rules of a failure limiter, whichever keeps its counts.

use std::time::Duration;

use crate::clock::Clock;
use crate::error::ConfigError;

/// The rules of a failure limiter: thresholds, window, back-off, how much
/// it tracks, and its clock. The same rules make an
/// [`InMemoryFailureLimiter`](crate::limit::InMemoryFailureLimiter) (one
/// process) or, with the `redis` feature, a limiter that counts across
/// processes (`RedisStores::failure_limiter`).
///
/// Defaults: an account is locked after 5 failures within 15 minutes, for
/// 30 s, doubling with each further lock up to an hour; a client address
/// is refused for the rest of its 15-minute window after 50 failures; at
/// most 100 000 accounts and as many addresses tracked in memory.
///
/// ```
/// use std::time::Duration;
/// use wsgate::limit::{FailureLimits, InMemoryFailureLimiter};
///
/// # fn main() -> Result<(), wsgate::ConfigError> {
/// let limits = FailureLimits::default()
///     .account_threshold(3)?
///     .lockout(Duration::from_secs(60), Duration::from_secs(3_600));
/// let limiter = InMemoryFailureLimiter::with_limits(limits);
/// # let _ = limiter;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct FailureLimits {
    pub(crate) account_threshold: u32,
    pub(crate) address_threshold: u32,
    pub(crate) window: Duration,
    pub(crate) lockout: Duration,
    pub(crate) max_lockout: Duration,
    pub(crate) max_entries: usize,
    pub(crate) clock: Clock,
}

impl Default for FailureLimits {
    fn default() -> Self {
        Self {
            account_threshold: 5,
            address_threshold: 50,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(30),
            max_lockout: Duration::from_secs(3_600),
            max_entries: 100_000,
            clock: Clock::system(),
        }
    }
}

impl FailureLimits {
    /// Failures per account within the window before it is locked.
    /// Defaults to 5.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn account_threshold(mut self, failures: u32) -> Result<Self, ConfigError> {
        if failures == 0 {
            return Err(ConfigError::ZeroLimit("account_threshold"));
        }
        self.account_threshold = failures;
        Ok(self)
    }

    /// Failures per client address within the window before it is
    /// refused. Defaults to 50.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn address_threshold(mut self, failures: u32) -> Result<Self, ConfigError> {
        if failures == 0 {
            return Err(ConfigError::ZeroLimit("address_threshold"));
        }
        self.address_threshold = failures;
        Ok(self)
    }

    /// The window failures are counted in. Defaults to 15 minutes.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The first lock's length, doubled for each further lock up to
    /// `max`. Defaults to 30 s and one hour.
    pub fn lockout(mut self, first: Duration, max: Duration) -> Self {
        self.lockout = first;
        self.max_lockout = max.max(first);
        self
    }

    /// How many accounts (and, separately, addresses) to track at most.
    /// Defaults to 100 000.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn max_entries(mut self, max: usize) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::ZeroLimit("max_entries"));
        }
        self.max_entries = max;
        Ok(self)
    }

    /// The clock. Defaults to the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}
