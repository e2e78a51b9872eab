//! The failure limiter in Redis: the in-memory limiter's rules, counted
//! across every process by atomic server-side scripts.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use crate::clock::unix_millis;
use crate::limit::{Admission, Attempt, FailureLimiter, FailureLimits, IN_FLIGHT_TIMEOUT};
use crate::redis::Commands;
use crate::redis::revocations::RedisStoreError;

/// Is the attempt admitted? The account's lock, then failures plus
/// attempts in flight against the thresholds, per account then per
/// address; admitted, it counts as in flight (a sorted set of admission
/// times) until recorded. Returns `{0}` (admitted), `{1, retry_after_ms}`
/// (locked) or `{2}` (busy: the attempts in flight fill the threshold).
///
/// KEYS: account hash, account in flight, address hash, address in flight.
/// ARGV: now, window, account threshold, address threshold, in-flight
/// timeout, attempt id, has address (0/1), key lifetime.
const ADMIT: &str = r"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local function failures(key)
  local start = tonumber(redis.call('HGET', key, 'start') or '0')
  if now - start < window then
    return tonumber(redis.call('HGET', key, 'failures') or '0'), start
  end
  return 0, start
end
local function in_flight(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(ARGV[5]))
  return redis.call('ZCARD', key)
end
local locked = tonumber(redis.call('HGET', KEYS[1], 'locked_until') or '0')
if locked > now then
  return {1, locked - now}
end
local account_failures = failures(KEYS[1])
if account_failures + in_flight(KEYS[2]) >= tonumber(ARGV[3]) then
  return {2}
end
if ARGV[7] == '1' then
  local address_failures, start = failures(KEYS[3])
  if address_failures >= tonumber(ARGV[4]) then
    return {1, start + window - now}
  end
  if address_failures + in_flight(KEYS[4]) >= tonumber(ARGV[4]) then
    return {2}
  end
end
redis.call('ZADD', KEYS[2], now, ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
if ARGV[7] == '1' then
  redis.call('ZADD', KEYS[4], now, ARGV[6])
  redis.call('PEXPIRE', KEYS[4], ARGV[8])
end
return {0}
";

/// Records how an admitted attempt ended: its place in flight freed; a
/// success clears the account; a failure counts (restarting a passed
/// window) and, at the threshold, locks the account for the back-off
/// (each lock twice the last, capped).
///
/// KEYS as for ADMIT. ARGV: now, window, account threshold, first lock,
/// longest lock, outcome (s/u/f), has address (0/1), key lifetime.
const RECORD: &str = r"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local has_address = ARGV[7] == '1'
local function fail(key)
  local start = tonumber(redis.call('HGET', key, 'start') or '0')
  if now - start >= window then
    redis.call('HSET', key, 'failures', 0, 'start', now)
  end
  local failures = redis.call('HINCRBY', key, 'failures', 1)
  redis.call('PEXPIRE', key, ARGV[8])
  return failures
end
redis.call('ZPOPMIN', KEYS[2])
if has_address then
  redis.call('ZPOPMIN', KEYS[4])
end
if ARGV[6] == 's' then
  redis.call('DEL', KEYS[1])
elseif ARGV[6] == 'f' then
  if has_address then
    fail(KEYS[3])
  end
  if fail(KEYS[1]) >= tonumber(ARGV[3]) then
    local locks = tonumber(redis.call('HGET', KEYS[1], 'locks') or '0')
    local lock = tonumber(ARGV[4]) * (2 ^ math.min(locks, 16))
    lock = math.min(lock, tonumber(ARGV[5]))
    redis.call('HSET', KEYS[1], 'locked_until', now + lock, 'locks', locks + 1, 'failures', 0, 'start', now)
    redis.call('PEXPIRE', KEYS[1], ARGV[8])
  end
end
return 0
";

/// Failed attempts per account and per address, counted in Redis across
/// every process: the rules and semantics of
/// [`InMemoryFailureLimiter`](crate::limit::InMemoryFailureLimiter) (the
/// same tests run against both), each decision one atomic script. Keys
/// expire on their own once their window and lock have passed. Made by
/// [`RedisStores::failure_limiter`](crate::redis::RedisStores::failure_limiter).
#[derive(Clone)]
pub struct RedisFailureLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    commands: Commands,
    prefix: String,
    rules: FailureLimits,
    admit: Script,
    record: Script,
}

impl RedisFailureLimiter {
    pub(crate) fn new(commands: Commands, prefix: &str, rules: FailureLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                commands,
                prefix: prefix.to_owned(),
                rules,
                admit: Script::new(ADMIT),
                record: Script::new(RECORD),
            }),
        }
    }

    fn keys(&self, account: &str, client: Option<IpAddr>) -> [String; 4] {
        let prefix = &self.inner.prefix;
        // Hashed: an account name is client text, and a key should not be.
        let account = crate::store::TicketDigest::of(account);
        let account = crate::hex::lower_hex(&account.as_bytes()[..16]);
        let address = client.map_or_else(|| "none".to_owned(), |ip| ip.to_string());
        [
            format!("{prefix}:limit:account:{account}"),
            format!("{prefix}:limit:account:{account}:in-flight"),
            format!("{prefix}:limit:address:{address}"),
            format!("{prefix}:limit:address:{address}:in-flight"),
        ]
    }

    fn lifetime(&self) -> Duration {
        let rules = &self.inner.rules;
        rules.window.max(rules.max_lockout) + IN_FLIGHT_TIMEOUT
    }
}

/// `script` with the account's and the address's keys, in the order both
/// scripts take them.
fn with_keys<'a>(script: &'a Script, keys: &[String; 4]) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(key);
    }
    invocation
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl FailureLimiter for RedisFailureLimiter {
    type Error = RedisStoreError;

    async fn admit(
        &self,
        account: &str,
        client: Option<IpAddr>,
    ) -> Result<Admission, RedisStoreError> {
        let inner = &self.inner;
        let rules = &inner.rules;
        let keys = self.keys(account, client);
        let attempt = crate::random::random_urlsafe::<12>().unwrap_or_default();
        let mut admit = with_keys(&inner.admit, &keys);
        admit
            .arg(unix_millis(rules.clock.now()))
            .arg(millis(rules.window))
            .arg(rules.account_threshold)
            .arg(rules.address_threshold)
            .arg(millis(IN_FLIGHT_TIMEOUT))
            .arg(attempt)
            .arg(u8::from(client.is_some()))
            .arg(millis(self.lifetime()));
        let answer: Vec<u64> = inner.commands.invoke(&admit).await?;
        Ok(match answer.as_slice() {
            [1, retry_after_ms, ..] => Admission::Locked {
                // Whole seconds, at least one, as the in-memory limiter says.
                retry_after: Duration::from_secs(retry_after_ms.div_ceil(1000).max(1)),
            },
            [2, ..] => Admission::Busy,
            _ => Admission::Allowed,
        })
    }

    async fn record(
        &self,
        account: &str,
        client: Option<IpAddr>,
        attempt: Attempt,
    ) -> Result<(), RedisStoreError> {
        let inner = &self.inner;
        let rules = &inner.rules;
        let keys = self.keys(account, client);
        let outcome = match attempt {
            Attempt::Succeeded => "s",
            Attempt::Failed => "f",
            _ => "u",
        };
        let mut record = with_keys(&inner.record, &keys);
        record
            .arg(unix_millis(rules.clock.now()))
            .arg(millis(rules.window))
            .arg(rules.account_threshold)
            .arg(millis(rules.lockout))
            .arg(millis(rules.max_lockout))
            .arg(outcome)
            .arg(u8::from(client.is_some()))
            .arg(millis(self.lifetime()));
        let _: i64 = inner.commands.invoke(&record).await?;
        Ok(())
    }
}

impl std::fmt::Debug for RedisFailureLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFailureLimiter")
            .field("prefix", &self.inner.prefix)
            .field("rules", &self.inner.rules)
            .finish_non_exhaustive()
    }
}
