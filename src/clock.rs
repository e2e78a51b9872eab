//! The source of "now" for expiry checks, injectable so tests need not sleep.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Where wsgate reads the current time from.
///
/// Defaults to the system clock. Tests (and simulations) use
/// [`Clock::manual`] to move time by hand instead of sleeping.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Mutex<SystemTime>>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stands still at `start` until [`Clock::advance`] or
    /// [`Clock::set`] moves it. Clones share the same time.
    pub fn manual(start: SystemTime) -> Self {
        Self {
            manual: Some(Arc::new(Mutex::new(start))),
        }
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        match &self.manual {
            None => SystemTime::now(),
            Some(time) => *time.lock().unwrap_or_else(|poison| poison.into_inner()),
        }
    }

    /// Seconds since the Unix epoch, saturating at zero for times before it.
    pub fn now_unix(&self) -> u64 {
        unix_seconds(self.now())
    }

    /// Moves a manual clock forward. Does nothing on the system clock.
    pub fn advance(&self, by: Duration) {
        if let Some(time) = &self.manual {
            let mut time = time.lock().unwrap_or_else(|poison| poison.into_inner());
            *time += by;
        }
    }

    /// Sets a manual clock. Does nothing on the system clock.
    pub fn set(&self, to: SystemTime) {
        if let Some(time) = &self.manual {
            *time.lock().unwrap_or_else(|poison| poison.into_inner()) = to;
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::System"),
            Some(_) => write!(f, "Clock::Manual({:?})", self.now()),
        }
    }
}

/// Seconds since the Unix epoch, saturating at zero for times before it.
pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (0 before it).
#[cfg_attr(
    not(any(feature = "redis", feature = "sqlite", feature = "postgres")),
    allow(dead_code)
)]
pub(crate) fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The time `millis` after the Unix epoch: the inverse of [`unix_millis`].
#[cfg_attr(
    not(any(feature = "redis", feature = "sqlite", feature = "postgres")),
    allow(dead_code)
)]
pub(crate) fn from_unix_millis(millis: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
}

/// The last second of the year 9999: as late as a claim's time is taken.
const LATEST_UNIX_SECONDS: u64 = 253_402_300_799;

/// The time `seconds` after the Unix epoch, no later than the end of the
/// year 9999: a claim's time comes from outside (a token, an
/// introspection answer), and adding a larger one to the epoch would
/// panic.
pub(crate) fn from_unix_seconds(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds.min(LATEST_UNIX_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = from_unix_seconds(1_000);
        let clock = Clock::manual(start);
        let other = clock.clone();
        assert_eq!(clock.now_unix(), 1_000);
        other.advance(Duration::from_secs(5));
        assert_eq!(clock.now_unix(), 1_005);
        clock.set(from_unix_seconds(7));
        assert_eq!(other.now_unix(), 7);
    }

    #[test]
    fn system_clock_ignores_manual_moves() {
        let clock = Clock::system();
        let before = clock.now_unix();
        clock.advance(Duration::from_secs(3_600));
        assert!(clock.now_unix() < before + 60);
    }
}
