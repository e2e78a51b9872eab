//! The in-memory failure limiter.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::limit::{Admission, Attempt, FailureLimiter, FailureLimits};

/// Failed attempts per account and per address, in memory (single node).
///
/// Defaults: an account is locked after 5 failures within 15 minutes, for
/// 30 s, doubling with each further lock up to an hour; a client address
/// is refused for the rest of its 15-minute window after 50 failures
/// (password spraying across accounts). A success clears the account. At
/// most 100 000 accounts and as many addresses are tracked; past that,
/// stale entries are dropped first.
///
/// Attempts still being checked count against the thresholds too: a burst
/// of concurrent guesses cannot overshoot a limit because none of them has
/// failed yet; one more attempt is [`Busy`](Admission::Busy) and waits for
/// their outcomes. An attempt nobody reports on (its request was dropped)
/// stops counting as in flight after a minute.
#[derive(Clone, Debug)]
pub struct InMemoryFailureLimiter {
    config: Arc<FailureLimits>,
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<String, Count>,
    addresses: HashMap<IpAddr, Count>,
}

#[derive(Debug, Clone)]
struct Count {
    failures: u32,
    window_start: SystemTime,
    locked_until: Option<SystemTime>,
    locks: u32,
    /// When each attempt still being checked was admitted.
    in_flight: Vec<SystemTime>,
}

/// How long an admitted attempt counts as in flight without a report.
pub(crate) const IN_FLIGHT_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for InMemoryFailureLimiter {
    fn default() -> Self {
        Self::with_limits(FailureLimits::default())
    }
}

impl InMemoryFailureLimiter {
    /// A limiter with the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// A limiter by `limits`.
    pub fn with_limits(limits: FailureLimits) -> Self {
        Self {
            config: Arc::new(limits),
            state: Arc::default(),
        }
    }

    fn remaining(until: SystemTime, now: SystemTime) -> Duration {
        until
            .duration_since(now)
            .unwrap_or_default()
            .max(Duration::from_secs(1))
    }
}

impl Count {
    fn new(now: SystemTime) -> Self {
        Self {
            failures: 0,
            window_start: now,
            locked_until: None,
            locks: 0,
            in_flight: Vec::new(),
        }
    }

    /// Failures in the current window.
    fn failures(&self, now: SystemTime, window: Duration) -> u32 {
        if self.in_window(now, window) {
            self.failures
        } else {
            0
        }
    }

    /// Attempts admitted and not yet reported, forgetting those too old.
    fn in_flight(&mut self, now: SystemTime) -> u32 {
        self.in_flight.retain(|admitted| {
            now.duration_since(*admitted).unwrap_or_default() < IN_FLIGHT_TIMEOUT
        });
        u32::try_from(self.in_flight.len()).unwrap_or(u32::MAX)
    }

    /// One in-flight attempt reported.
    fn settle(&mut self) {
        if !self.in_flight.is_empty() {
            self.in_flight.remove(0);
        }
    }

    fn in_window(&self, now: SystemTime, window: Duration) -> bool {
        now.duration_since(self.window_start).unwrap_or_default() < window
    }

    fn stale(&self, now: SystemTime, window: Duration) -> bool {
        !self.in_window(now, window)
            && self.locked_until.is_none_or(|until| until <= now)
            && self.in_flight.iter().all(|admitted| {
                now.duration_since(*admitted).unwrap_or_default() >= IN_FLIGHT_TIMEOUT
            })
    }

    /// Counts one failure, restarting the window when it has passed.
    fn fail(&mut self, now: SystemTime, window: Duration) {
        if !self.in_window(now, window) {
            self.failures = 0;
            self.window_start = now;
        }
        self.failures += 1;
    }
}

/// Makes room for a new key: drops stale entries, then (still full) the
/// oldest window. Bounded memory beats remembering every username an
/// attacker invents.
fn make_room<K: Eq + Hash + Clone>(
    map: &mut HashMap<K, Count>,
    max: usize,
    now: SystemTime,
    window: Duration,
) {
    if map.len() < max {
        return;
    }
    map.retain(|_, count| !count.stale(now, window));
    while map.len() >= max {
        let Some(oldest) = map
            .iter()
            .filter(|(_, count)| {
                count.locked_until.is_none_or(|until| until <= now) && count.in_flight.is_empty()
            })
            .min_by_key(|(_, count)| count.window_start)
            .map(|(key, _)| key.clone())
        else {
            break;
        };
        map.remove(&oldest);
    }
}

/// The entry for `key`, made (room first) when it is new.
fn tracked<'a, K, Q>(
    map: &'a mut HashMap<K, Count>,
    key: &Q,
    config: &FailureLimits,
    now: SystemTime,
) -> &'a mut Count
where
    K: Eq + Hash + Clone + std::borrow::Borrow<Q>,
    Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
{
    if !map.contains_key(key) {
        make_room(map, config.max_entries, now, config.window);
        map.insert(key.to_owned(), Count::new(now));
    }
    map.get_mut(key).expect("just inserted")
}

impl FailureLimiter for InMemoryFailureLimiter {
    type Error = Infallible;

    async fn admit(&self, account: &str, client: Option<IpAddr>) -> Result<Admission, Self::Error> {
        let config = &self.config;
        let now = config.clock.now();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let state = &mut *state;
        if let Some(count) = state.accounts.get_mut(account) {
            if let Some(until) = count.locked_until
                && until > now
            {
                return Ok(Admission::Locked {
                    retry_after: Self::remaining(until, now),
                });
            }
            if count.failures(now, config.window) + count.in_flight(now) >= config.account_threshold
            {
                return Ok(Admission::Busy);
            }
        }
        if let Some(count) = client.and_then(|client| state.addresses.get_mut(&client)) {
            let failures = count.failures(now, config.window);
            if failures >= config.address_threshold {
                return Ok(Admission::Locked {
                    retry_after: Self::remaining(count.window_start + config.window, now),
                });
            }
            if failures + count.in_flight(now) >= config.address_threshold {
                return Ok(Admission::Busy);
            }
        }
        // Admitted: in flight until recorded.
        tracked(&mut state.accounts, account, config, now)
            .in_flight
            .push(now);
        if let Some(client) = client {
            tracked(&mut state.addresses, &client, config, now)
                .in_flight
                .push(now);
        }
        Ok(Admission::Allowed)
    }

    async fn record(
        &self,
        account: &str,
        client: Option<IpAddr>,
        attempt: Attempt,
    ) -> Result<(), Self::Error> {
        let config = &self.config;
        let now = config.clock.now();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let state = &mut *state;
        let address = client.and_then(|client| state.addresses.get_mut(&client));
        match attempt {
            Attempt::Succeeded => {
                if let Some(count) = address {
                    count.settle();
                }
                // The account is cleared; attempts still in flight on it
                // keep counting until they report.
                if let Some(count) = state.accounts.get_mut(account) {
                    count.settle();
                    *count = Count {
                        in_flight: std::mem::take(&mut count.in_flight),
                        ..Count::new(now)
                    };
                    if count.in_flight.is_empty() {
                        state.accounts.remove(account);
                    }
                }
            }
            Attempt::Undecided => {
                if let Some(count) = address {
                    count.settle();
                }
                if let Some(count) = state.accounts.get_mut(account) {
                    count.settle();
                }
            }
            Attempt::Failed => {
                if let Some(client) = client {
                    let count = tracked(&mut state.addresses, &client, config, now);
                    count.settle();
                    count.fail(now, config.window);
                }
                let count = tracked(&mut state.accounts, account, config, now);
                count.settle();
                count.fail(now, config.window);
                if count.failures >= config.account_threshold {
                    // Growing back-off: each lock twice the last, capped.
                    let factor = 2u32.saturating_pow(count.locks.min(16));
                    let lock = config
                        .lockout
                        .saturating_mul(factor)
                        .min(config.max_lockout);
                    count.locked_until = Some(now + lock);
                    count.locks += 1;
                    count.failures = 0;
                    count.window_start = now;
                }
            }
        }
        Ok(())
    }
}

// The limiter's rules are tested in `tests/it/limiter.rs`, against this
// limiter and the Redis one alike (`tests/common/limiter_cases.rs`).
#[cfg(test)]
mod tests {
    use super::*;

    async fn fail(limiter: &InMemoryFailureLimiter, account: &str, client: Option<IpAddr>) {
        limiter
            .record(account, client, Attempt::Failed)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn memory_stays_bounded() {
        let limiter =
            InMemoryFailureLimiter::with_limits(FailureLimits::default().max_entries(100).unwrap());
        for index in 0..1_000 {
            fail(&limiter, &format!("invented-{index}"), None).await;
        }
        assert!(limiter.state.lock().unwrap().accounts.len() <= 100);
    }
}
