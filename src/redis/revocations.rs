//! Revocations shared by every process through Redis, with none lost: a
//! durable record and a stream entry written in one atomic step, a tail of
//! the stream on every process, a resynchronisation after any gap, and a
//! local copy that answers every check without a round trip.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands as _, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::clock::unix_millis;
use crate::principal::Principal;
use crate::redis::Commands;
use crate::redis::RedisSettings;
use crate::store::{InMemoryRevocationStore, Revocation, RevocationStore, StoreNotice};

/// How long the tail blocks on the stream: also the heartbeat, since a
/// blocked read that does not come back in time means a stalled link.
const BLOCK: Duration = Duration::from_secs(1);

/// Records the revocation (a sorted set scored by when it may be
/// forgotten), numbers it, and appends it to the stream, trimmed to its
/// length exactly (revocations are rare; a process further behind sees the
/// gap in the numbering and resynchronises): one step, so no process can
/// see the record without the entry or the entry without the record.
const REVOKE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local seq = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], '*', 'rev', ARGV[1], 'until', ARGV[2], 'seq', seq, 'origin', ARGV[4])
return seq
";

/// A revocation as Redis holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Token { id: String },
    Subject { sub: String, before_ms: u64 },
    Session { id: String },
}

impl Record {
    fn of(revocation: &Revocation) -> Self {
        match revocation {
            Revocation::Token(id) => Record::Token { id: id.clone() },
            Revocation::Subject {
                subject,
                issued_before,
            } => Record::Subject {
                sub: subject.clone(),
                before_ms: unix_millis(*issued_before),
            },
            Revocation::Session(id) => Record::Session { id: id.clone() },
        }
    }

    fn revocation(&self) -> Revocation {
        match self {
            Record::Token { id } => Revocation::token(id.clone()),
            Record::Subject { sub, before_ms } => Revocation::subject(
                sub.clone(),
                SystemTime::UNIX_EPOCH + Duration::from_millis(*before_ms),
            ),
            Record::Session { id } => Revocation::session(id.clone()),
        }
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn decode(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// Revocations in Redis, shared by every process with the same Redis and
/// key prefix. Made by [`RedisStores::revocations`](crate::redis::RedisStores::revocations).
///
/// - [`revoke`](RevocationStore::revoke) writes the durable record and the
///   stream entry atomically (a Lua script), then applies it locally.
/// - Every process tails the stream and applies every entry to its local
///   copy and its live sockets (through its registry's [`StoreNotice`]s,
///   the path of its own revocations), its own entries included: a
///   revocation whose reply was lost still closes the revoking process's
///   sockets.
/// - After a reconnect, a Redis restart or a gap in the stream's numbering
///   it resynchronises: reads every record, republishes those of its own
///   copy that Redis lost (a restart without persistence), and has every
///   live socket checked again.
/// - [`is_revoked`](RevocationStore::is_revoked) answers from the local
///   copy, with no round trip; while contact has been lost for longer than
///   the staleness bound it fails (503 at handshakes), and live sockets
///   close with 1011 `backend unavailable`.
///
/// Applying a revocation twice is harmless.
#[derive(Clone)]
pub struct RedisRevocationStore {
    shared: Arc<Shared>,
}

struct Shared {
    commands: Commands,
    client: redis::Client,
    keys: Keys,
    /// Names this process in the stream entries it writes, for whoever
    /// reads the stream; every process applies every entry alike.
    origin: String,
    script: Script,
    settings: RedisSettings,
    local: InMemoryRevocationStore,
    /// Every revocation this process knows, encoded, with when it may be
    /// forgotten (ms): what it republishes after Redis lost its records.
    known: Mutex<HashMap<String, u64>>,
    notices: broadcast::Sender<StoreNotice>,
    /// Milliseconds since `epoch` at the last answer from Redis on the
    /// tail; `u64::MAX` before the first.
    last_contact: AtomicU64,
    epoch: Instant,
    stale: AtomicBool,
}

struct Keys {
    records: String,
    stream: String,
    sequence: String,
}

impl RedisRevocationStore {
    pub(crate) fn start(
        client: redis::Client,
        commands: Commands,
        prefix: &str,
        settings: RedisSettings,
    ) -> Self {
        let (notices, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            commands,
            client,
            keys: Keys {
                records: format!("{prefix}:revocations"),
                stream: format!("{prefix}:revocations:stream"),
                sequence: format!("{prefix}:revocations:seq"),
            },
            origin: crate::random::random_urlsafe::<12>().unwrap_or_default(),
            script: Script::new(REVOKE),
            settings,
            local: InMemoryRevocationStore::with_retention(settings.retention),
            known: Mutex::default(),
            notices,
            last_contact: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            stale: AtomicBool::new(false),
        });
        tokio::spawn(tail(Arc::downgrade(&shared)));
        tokio::spawn(watch_staleness(Arc::downgrade(&shared)));
        Self { shared }
    }

    /// Whether the process is in contact with Redis: resynchronised since it
    /// started and answered within the staleness bound. For readiness
    /// checks: until the first resynchronisation (milliseconds with Redis
    /// up) it is false and handshakes get 503.
    pub fn is_current(&self) -> bool {
        !self.shared.is_stale()
    }
}

impl Shared {
    fn known(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.known
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_contact.store(now, Ordering::Release);
        if self.stale.swap(false, Ordering::AcqRel) {
            tracing::info!(target: "wsgate::redis", "in contact with Redis again");
        }
    }

    /// Whether checks must fail: before the first resynchronisation (the
    /// local copy does not yet hold what was revoked before this process
    /// started, so answering from it would let those tokens in), or once
    /// contact has been lost for longer than the bound.
    fn is_stale(&self) -> bool {
        self.last_contact.load(Ordering::Acquire) == u64::MAX || self.lost_contact()
    }

    /// Whether contact has been lost for longer than the bound (or never
    /// made within it since the start): when live sockets must close.
    fn lost_contact(&self) -> bool {
        let bound = self.settings.max_staleness.as_millis() as u64;
        let now = self.epoch.elapsed().as_millis() as u64;
        match self.last_contact.load(Ordering::Acquire) {
            u64::MAX => now > bound,
            last => now.saturating_sub(last) > bound,
        }
    }

    /// Applies a record to the local copy; `notify` to close the live
    /// sockets it covers (every stream entry; not the records a resync
    /// reads, after which every socket is checked anyway).
    async fn apply(&self, encoded: &str, forget_at_ms: u64, notify: bool) {
        let Some(record) = Record::decode(encoded) else {
            tracing::warn!(target: "wsgate::redis", "a revocation record that cannot be read was skipped");
            return;
        };
        self.known().insert(encoded.to_owned(), forget_at_ms);
        let revocation = record.revocation();
        let _ = self.local.revoke(revocation.clone()).await;
        if notify {
            let _ = self.notices.send(StoreNotice::Revoked(revocation));
        }
    }

    fn forget_at_ms(&self) -> u64 {
        unix_millis(SystemTime::now()) + self.settings.retention.as_millis() as u64
    }

    async fn publish(&self, encoded: &str, forget_at_ms: u64) -> Result<(), redis::RedisError> {
        let mut invocation = self.script.key(&self.keys.records);
        invocation
            .key(&self.keys.stream)
            .key(&self.keys.sequence)
            .arg(encoded)
            .arg(forget_at_ms)
            .arg(unix_millis(SystemTime::now()))
            .arg(&self.origin)
            .arg(self.settings.stream_length);
        let _: i64 = self.commands.invoke(&invocation).await?;
        Ok(())
    }

    /// Catches up from the durable records: the stream position to tail
    /// from (read first, so nothing between is missed; entries seen twice
    /// are harmless), every record applied, the records Redis lost
    /// republished, and every live socket checked again.
    async fn resync(
        &self,
        connection: &mut MultiplexedConnection,
    ) -> Result<(String, u64), redis::RedisError> {
        let latest: redis::streams::StreamRangeReply = connection
            .xrevrange_count(&self.keys.stream, "+", "-", 1)
            .await?;
        let (position, sequence) = latest
            .ids
            .first()
            .map(|entry| {
                let sequence = entry.get::<u64>("seq").unwrap_or(0);
                (entry.id.clone(), sequence)
            })
            .unwrap_or_else(|| ("0-0".to_owned(), 0));
        let now = unix_millis(SystemTime::now());
        let records: Vec<(String, u64)> = connection
            .zrangebyscore_withscores(&self.keys.records, format!("({now}"), "+inf")
            .await?;
        let in_redis: std::collections::HashSet<&str> = records
            .iter()
            .map(|(encoded, _)| encoded.as_str())
            .collect();
        for (encoded, forget_at) in &records {
            self.apply(encoded, *forget_at, false).await;
        }
        let missing: Vec<(String, u64)> = self
            .known()
            .iter()
            .filter(|(encoded, forget_at)| {
                **forget_at > now && !in_redis.contains(encoded.as_str())
            })
            .map(|(encoded, forget_at)| (encoded.clone(), *forget_at))
            .collect();
        for (encoded, forget_at) in &missing {
            self.publish(encoded, *forget_at).await?;
        }
        if !missing.is_empty() {
            tracing::info!(target: "wsgate::redis", republished = missing.len(), "revocations Redis had lost were written back");
        }
        self.known().retain(|_, forget_at| *forget_at > now);
        self.touch();
        let _ = self.notices.send(StoreNotice::Resynced);
        Ok((position, sequence))
    }
}

/// Tails the stream for as long as the store lives: connect, resync, read
/// with a heartbeat; any failure or gap starts over.
async fn tail(shared: Weak<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(store) = shared.upgrade() else {
            return;
        };
        let outcome = follow(&store).await;
        drop(store);
        if let Err(reason) = outcome {
            tracing::warn!(target: "wsgate::redis", %reason, "revocation stream interrupted; reconnecting");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// One connection's life of the tail. Returns why it ended.
async fn follow(store: &Shared) -> Result<(), String> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(store.settings.connect_timeout))
        .set_response_timeout(Some(BLOCK + store.settings.heartbeat_grace));
    let mut connection = store
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|error| format!("connecting: {error}"))?;
    let (mut position, mut sequence) = store
        .resync(&mut connection)
        .await
        .map_err(|error| format!("resynchronising: {error}"))?;
    let options = StreamReadOptions::default()
        .block(BLOCK.as_millis() as usize)
        .count(512);
    loop {
        // The response timeout ends a read that a stalled link never
        // answers: a missed heartbeat, not a kernel timeout minutes later.
        let reply: Option<StreamReadReply> = connection
            .xread_options(&[&store.keys.stream], &[&position], &options)
            .await
            .map_err(|error| format!("reading: {error}"))?;
        store.touch();
        let Some(reply) = reply else { continue };
        for key in reply.keys {
            for entry in key.ids {
                let number = entry.get::<u64>("seq").unwrap_or(0);
                if number != sequence + 1 {
                    // Entries were trimmed away, or Redis restarted and
                    // numbers anew: the stream alone cannot be trusted.
                    return Err(format!(
                        "gap in the revocation stream ({sequence} then {number})"
                    ));
                }
                sequence = number;
                position = entry.id.clone();
                let Some(encoded) = entry.get::<String>("rev") else {
                    continue;
                };
                let until = entry
                    .get::<u64>("until")
                    .unwrap_or_else(|| store.forget_at_ms());
                // This process's own entries notify too: when a revocation's
                // reply was lost (a command timeout), `revoke` failed and
                // closed nothing here, and this is where its sockets close.
                // Otherwise they were closed already, and closing twice is
                // harmless (model/revocations.pml, OWN_NO_NOTICE).
                store.apply(&encoded, until, true).await;
            }
        }
    }
}

/// Tells the registry once when contact has been lost for longer than the
/// bound.
async fn watch_staleness(shared: Weak<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(store) = shared.upgrade() else {
            return;
        };
        if store.lost_contact() && !store.stale.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                target: "wsgate::redis",
                bound_secs = store.settings.max_staleness.as_secs(),
                "no contact with Redis within the staleness bound: live sockets close, handshakes get 503"
            );
            let _ = store.notices.send(StoreNotice::Stale);
        }
    }
}

/// Why a revocation check or write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// Not in contact with Redis: not yet resynchronised since the start,
    /// or no answer within the staleness bound.
    #[error(
        "not in contact with Redis (not yet resynchronised, or silent past the staleness bound)"
    )]
    Stale,
    /// Redis refused or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl RedisRevocationStore {
    /// Every check's answer: from the local copy, unless it is past the
    /// staleness bound (then the store fails, and the caller fails closed).
    fn answer(
        &self,
        principal: &Principal,
        session_id: Option<&str>,
    ) -> Result<bool, RedisStoreError> {
        if self.shared.is_stale() {
            return Err(RedisStoreError::Stale);
        }
        Ok(self.shared.local.covers(principal, session_id))
    }
}

impl RevocationStore for RedisRevocationStore {
    type Error = RedisStoreError;

    async fn revoke(&self, revocation: Revocation) -> Result<(), RedisStoreError> {
        let shared = &self.shared;
        let encoded = Record::of(&revocation).encode();
        let forget_at = shared.forget_at_ms();
        shared.publish(&encoded, forget_at).await?;
        shared.apply(&encoded, forget_at, false).await;
        Ok(())
    }

    async fn is_revoked(
        &self,
        principal: &Principal,
        session_id: Option<&str>,
    ) -> Result<bool, RedisStoreError> {
        self.answer(principal, session_id)
    }

    fn revoked_now(
        &self,
        principal: &Principal,
        session_id: Option<&str>,
    ) -> Option<Result<bool, RedisStoreError>> {
        Some(self.answer(principal, session_id))
    }

    fn notices(&self) -> Option<broadcast::Receiver<StoreNotice>> {
        Some(self.shared.notices.subscribe())
    }
}

impl std::fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRevocationStore")
            .field("stream", &self.shared.keys.stream)
            .field("current", &self.is_current())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_what_they_cannot_read() {
        let cut_off = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        for revocation in [
            Revocation::token("jti-1"),
            Revocation::subject("alice\r\n", cut_off),
            Revocation::session("sid-1"),
        ] {
            let encoded = Record::of(&revocation).encode();
            assert_eq!(Record::decode(&encoded).unwrap().revocation(), revocation);
        }
        assert!(Record::decode("{\"kind\":\"everyone\"}").is_none());
        assert!(Record::decode("not json").is_none());
    }
}
