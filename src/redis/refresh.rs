//! Refresh sessions in Redis, shared by every process: a rotation on one
//! is seen by all, and reuse detected on any ends the session everywhere.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::clock::{from_unix_millis, unix_millis};
use crate::redis::Commands;
use crate::redis::revocations::RedisStoreError;
use crate::store::{RefreshDigest, RefreshRecord, RefreshSessionStore};

/// Sessions in Redis under `<prefix>:refresh:<family>`, a JSON value that
/// holds the tokens only as SHA-256 digests, kept until the session
/// expires (`PX`). A rotation is one script that swaps the value only
/// while its current digest is the expected one and it has not ended, so
/// of racing uses on any processes exactly one rotates. Made by
/// [`RedisStores::refresh_sessions`](crate::redis::RedisStores::refresh_sessions).
#[derive(Clone)]
pub struct RedisRefreshSessionStore {
    commands: Commands,
    prefix: String,
    replace: redis::Script,
}

/// Swaps the session's value if its `current` is `ARGV[1]` and it has not
/// ended. KEYS: the session. ARGV: the expected digest (hex), the new
/// value, its life (ms). Returns 1 when swapped.
const REPLACE: &str = r"
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local record = cjson.decode(stored)
if record.ended or record.current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

#[derive(Serialize, Deserialize)]
struct Stored {
    family: String,
    session_id: String,
    subject: String,
    jkt: Option<String>,
    certificate: Option<String>,
    current: String,
    previous: Option<String>,
    rotated_ms: u64,
    created_ms: u64,
    expires_ms: u64,
    ended: bool,
}

impl Stored {
    fn of(record: &RefreshRecord) -> Self {
        Self {
            family: record.family.clone(),
            session_id: record.session_id.clone(),
            subject: record.subject.clone(),
            jkt: record.jkt.clone(),
            certificate: record.certificate.clone(),
            current: RefreshDigest::to_hex(&record.current),
            previous: record.previous.as_ref().map(RefreshDigest::to_hex),
            rotated_ms: unix_millis(record.rotated_at),
            created_ms: unix_millis(record.created_at),
            expires_ms: unix_millis(record.expires_at),
            ended: record.ended,
        }
    }

    fn record(self) -> Option<RefreshRecord> {
        Some(RefreshRecord {
            family: self.family,
            session_id: self.session_id,
            subject: self.subject,
            jkt: self.jkt,
            certificate: self.certificate,
            current: RefreshDigest::from_hex(&self.current)?,
            previous: match self.previous {
                Some(previous) => Some(RefreshDigest::from_hex(&previous)?),
                None => None,
            },
            rotated_at: from_unix_millis(self.rotated_ms),
            created_at: from_unix_millis(self.created_ms),
            expires_at: from_unix_millis(self.expires_ms),
            ended: self.ended,
        })
    }
}

/// How long Redis keeps a session that expires at `expires_at`.
fn life_ms(expires_at: SystemTime) -> u64 {
    let life = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    u64::try_from(life.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisRefreshSessionStore {
    pub(crate) fn new(commands: Commands, prefix: &str) -> Self {
        Self {
            commands,
            prefix: prefix.to_owned(),
            replace: redis::Script::new(REPLACE),
        }
    }

    fn key(&self, family: &str) -> String {
        format!("{}:refresh:{family}", self.prefix)
    }
}

impl RefreshSessionStore for RedisRefreshSessionStore {
    type Error = RedisStoreError;

    async fn insert(&self, record: RefreshRecord) -> Result<(), RedisStoreError> {
        let key = self.key(&record.family);
        let value = serde_json::to_string(&Stored::of(&record)).unwrap_or_default();
        let life = life_ms(record.expires_at);
        let _: Option<String> = self
            .commands
            .run(|mut connection| {
                let (key, value) = (&key, &value);
                async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("PX")
                        .arg(life)
                        .query_async(&mut connection)
                        .await
                }
            })
            .await?;
        Ok(())
    }

    async fn get(&self, family: &str) -> Result<Option<RefreshRecord>, RedisStoreError> {
        let key = self.key(family);
        let value: Option<String> = self
            .commands
            .run(|mut connection| {
                let key = &key;
                async move {
                    redis::cmd("GET")
                        .arg(key)
                        .query_async(&mut connection)
                        .await
                }
            })
            .await?;
        Ok(value
            .and_then(|text| serde_json::from_str::<Stored>(&text).ok())
            .and_then(Stored::record))
    }

    async fn replace(
        &self,
        expected: RefreshDigest,
        record: RefreshRecord,
    ) -> Result<bool, RedisStoreError> {
        let key = self.key(&record.family);
        let value = serde_json::to_string(&Stored::of(&record)).unwrap_or_default();
        let (expected, life) = (RefreshDigest::to_hex(&expected), life_ms(record.expires_at));
        let mut invocation = self.replace.prepare_invoke();
        invocation.key(&key).arg(&expected).arg(&value).arg(life);
        let swapped: i64 = self.commands.invoke(&invocation).await?;
        Ok(swapped == 1)
    }
}

impl std::fmt::Debug for RedisRefreshSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRefreshSessionStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}
