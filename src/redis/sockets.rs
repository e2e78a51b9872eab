//! Each subject's live sockets, counted across processes: leases in Redis
//! that expire unless their process renews them.

use std::time::Duration;

use redis::AsyncCommands as _;

use crate::redis::Commands;
use crate::redis::revocations::RedisStoreError;
use crate::store::{Acquired, AtSocketLimit, SocketLeaseStore};

/// Socket leases in Redis, shared by every process with the same Redis and
/// key prefix. Made by
/// [`RedisStores::socket_leases`](crate::redis::RedisStores::socket_leases).
///
/// A subject's leases are the sorted set `<prefix>:sockets-of:<subject>`,
/// each scored by when it expires on Redis's clock (no process's clock
/// counts). Acquiring forgets the expired leases, counts, and takes (or
/// evicts the oldest) in one script. Every process renews its leases every
/// third of the lease time (default 30 s, so every 10 s): the sockets of a
/// process that died stop counting within the lease time. An evicted
/// lease leaves a marker for a lease time, which is how its process learns
/// at its next renewal that its socket must close; a lease lost otherwise
/// (Redis restarted) is taken again by the renewal.
#[derive(Clone)]
pub struct RedisSocketLeaseStore {
    commands: Commands,
    prefix: String,
    lease: Duration,
    acquire: redis::Script,
    renew: redis::Script,
}

/// Takes a lease unless the subject holds `max` live ones; then takes
/// nothing, or evicts the oldest (the smallest id) until there is room.
/// Returns `{1, evicted…}` when taken, `{0}` when full. A lease taken
/// already (the script ran, its reply was lost, and it is tried again) is
/// answered taken.
///
/// KEYS: the subject's set. ARGV: the lease, the limit, the lease time
/// (ms), 1 to evict, the prefix of eviction markers.
const ACQUIRE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return {1}
end
local answer = {1}
while redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) do
  if ARGV[4] ~= '1' then
    return {0}
  end
  local oldest = nil
  for _, lease in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if oldest == nil or lease < oldest then
      oldest = lease
    end
  end
  redis.call('ZREM', KEYS[1], oldest)
  redis.call('SET', ARGV[5] .. oldest, 1, 'PX', ARGV[3])
  table.insert(answer, oldest)
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return answer
";

/// Renews leases: the evicted ones (their marker is there) are answered,
/// every other is extended, or taken again when Redis lost it.
///
/// KEYS: each lease's subject set. ARGV: the lease time (ms), the prefix
/// of eviction markers, then the leases, in the order of KEYS.
const RENEW: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local evicted = {}
for i, set in ipairs(KEYS) do
  local lease = ARGV[i + 2]
  if redis.call('EXISTS', ARGV[2] .. lease) == 1 then
    table.insert(evicted, lease)
  else
    redis.call('ZADD', set, now + tonumber(ARGV[1]), lease)
    redis.call('PEXPIRE', set, ARGV[1])
  end
end
return evicted
";

impl RedisSocketLeaseStore {
    pub(crate) fn new(commands: Commands, prefix: &str, lease: Duration) -> Self {
        Self {
            commands,
            prefix: prefix.to_owned(),
            lease,
            acquire: redis::Script::new(ACQUIRE),
            renew: redis::Script::new(RENEW),
        }
    }

    fn set(&self, subject: &str) -> String {
        format!("{}:sockets-of:{subject}", self.prefix)
    }

    fn marker_prefix(&self) -> String {
        format!("{}:evicted-socket:", self.prefix)
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }
}

impl SocketLeaseStore for RedisSocketLeaseStore {
    type Error = RedisStoreError;

    async fn acquire(
        &self,
        subject: &str,
        lease: &str,
        max: usize,
        at_limit: AtSocketLimit,
    ) -> Result<Acquired, RedisStoreError> {
        let mut invocation = self.acquire.key(self.set(subject));
        invocation
            .arg(lease)
            .arg(max)
            .arg(self.lease_ms())
            .arg(u8::from(at_limit == AtSocketLimit::CloseOldest))
            .arg(self.marker_prefix());
        let answer: Vec<redis::Value> = self
            .commands
            .invoke(&invocation)
            .await
            .map_err(RedisStoreError::from)?;
        let taken = matches!(answer.first(), Some(redis::Value::Int(1)));
        if !taken {
            return Ok(Acquired::Full);
        }
        let evicted: Vec<String> = answer
            .iter()
            .skip(1)
            .filter_map(|value| redis::from_redis_value::<String>(value.clone()).ok())
            .collect();
        Ok(if evicted.is_empty() {
            Acquired::Taken
        } else {
            Acquired::TakenEvicting(evicted)
        })
    }

    async fn release(&self, subject: &str, lease: &str) -> Result<(), RedisStoreError> {
        let set = self.set(subject);
        self.commands
            .run(|mut connection| {
                let set = set.clone();
                async move { connection.zrem::<_, _, ()>(set, lease).await }
            })
            .await
            .map_err(RedisStoreError::from)
    }

    async fn renew(&self, leases: Vec<(String, String)>) -> Result<Vec<String>, RedisStoreError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.renew.prepare_invoke();
        invocation.arg(self.lease_ms()).arg(self.marker_prefix());
        for (subject, lease) in &leases {
            invocation.key(self.set(subject)).arg(lease);
        }
        self.commands
            .invoke(&invocation)
            .await
            .map_err(RedisStoreError::from)
    }

    fn renewal_interval(&self) -> Option<Duration> {
        Some(self.lease / 3)
    }
}

impl std::fmt::Debug for RedisSocketLeaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSocketLeaseStore")
            .field("prefix", &self.prefix)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}
