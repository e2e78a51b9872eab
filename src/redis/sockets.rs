//! Each subject's live sockets, counted across processes: leases in Redis
//! that expire unless their process renews them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::AsyncCommands as _;
use tokio::sync::broadcast;

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
/// lease is published on `<prefix>:socket-evictions`, which every process
/// using the limit subscribes to, so its holder closes its socket at once;
/// it also leaves a marker for a lease time, which is how a holder that
/// missed the notice learns at its next renewal. A lease lost otherwise
/// (Redis restarted without persistence) is taken again by the renewal.
#[derive(Clone)]
pub struct RedisSocketLeaseStore {
    commands: Commands,
    prefix: String,
    lease: Duration,
    acquire: redis::Script,
    renew: redis::Script,
    evictions: Arc<Evictions>,
}

/// The evictions every process publishes, heard on a subscription of this
/// process's own (opened at the first [`SocketLeaseStore::evictions`]).
struct Evictions {
    client: redis::Client,
    channel: String,
    connect_timeout: Duration,
    heard: broadcast::Sender<String>,
    listening: AtomicBool,
}

/// Takes a lease unless the subject holds `max` live ones; then takes
/// nothing, or evicts the oldest (the smallest id) until there is room.
/// Returns `{1, evicted…}` when taken, `{0}` when full. A lease taken
/// already (the script ran, its reply was lost, and it is tried again) is
/// answered taken. Each evicted lease is marked (for its holder's next
/// renewal) and published (for its holder to close its socket at once).
///
/// KEYS: the subject's set. ARGV: the lease, the limit, the lease time
/// (ms), 1 to evict, the prefix of eviction markers, the eviction
/// channel.
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
  redis.call('PUBLISH', ARGV[6], oldest)
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

/// How long the subscription waits for a message before it checks that
/// the store is still there.
const LISTEN_ROUND: Duration = Duration::from_secs(5);

impl RedisSocketLeaseStore {
    pub(crate) fn new(
        client: redis::Client,
        commands: Commands,
        prefix: &str,
        settings: &crate::redis::RedisSettings,
    ) -> Self {
        Self {
            commands,
            prefix: prefix.to_owned(),
            lease: settings.socket_lease,
            acquire: redis::Script::new(ACQUIRE),
            renew: redis::Script::new(RENEW),
            evictions: Arc::new(Evictions {
                client,
                channel: format!("{prefix}:socket-evictions"),
                connect_timeout: settings.connect_timeout,
                heard: broadcast::channel(1024).0,
                listening: AtomicBool::new(false),
            }),
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
            .arg(self.marker_prefix())
            .arg(&self.evictions.channel);
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

    fn evictions(&self) -> Option<broadcast::Receiver<String>> {
        let heard = self.evictions.heard.subscribe();
        if !self.evictions.listening.swap(true, Ordering::AcqRel) {
            tokio::spawn(listen(Arc::downgrade(&self.evictions)));
        }
        Some(heard)
    }
}

/// Subscribes to the eviction channel and hands on what it hears, opening
/// the subscription again a second after it fails, until the store is
/// gone. What is published while it is down is found by the renewals.
async fn listen(evictions: Weak<Evictions>) {
    loop {
        let Some(shared) = evictions.upgrade() else {
            return;
        };
        let (client, channel) = (shared.client.clone(), shared.channel.clone());
        let subscribed = tokio::time::timeout(shared.connect_timeout, async {
            let mut subscription = client.get_async_pubsub().await?;
            subscription.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(subscription)
        })
        .await;
        drop(shared);
        if let Ok(Ok(subscription)) = subscribed {
            let mut messages = subscription.into_on_message();
            loop {
                let heard = tokio::time::timeout(LISTEN_ROUND, messages.next()).await;
                let Some(shared) = evictions.upgrade() else {
                    return;
                };
                match heard {
                    Ok(Some(message)) => {
                        if let Ok(lease) = message.get_payload::<String>() {
                            let _ = shared.heard.send(lease);
                        }
                    }
                    Ok(None) => break,
                    Err(_quiet) => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
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
