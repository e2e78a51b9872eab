//! Single-use tickets in Redis: issued on one process, redeemed exactly
//! once on any.

use std::time::{Duration, SystemTime};

use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::clock::{from_unix_millis, unix_millis};
use crate::principal::{AuthMethod, Principal};
use crate::redis::Commands;
use crate::redis::revocations::RedisStoreError;
use crate::store::{TicketDigest, TicketStore};

/// Tickets in Redis under `<prefix>:ticket:<hex SHA-256 of the ticket>`:
/// a leaked Redis holds nothing redeemable. Redemption is one `GETDEL`,
/// so of any number of racing redemptions on any processes at most one
/// gets the principal; expiry is enforced by Redis (`PX`) and again by the
/// value's own deadline. Made by
/// [`RedisStores::tickets`](crate::redis::RedisStores::tickets).
///
/// A per-subject limit counts in `<prefix>:tickets-of:<subject>`, a sorted
/// set of the subject's ticket keys scored by their expiry: counting
/// forgets the expired and the taken ones, then stores, in one script.
#[derive(Clone)]
pub struct RedisTicketStore {
    commands: Commands,
    prefix: String,
    insert_within: redis::Script,
}

/// Stores a ticket unless its subject holds `max` already: forgets the
/// subject's expired tickets and those taken since (their keys are gone),
/// counts, then stores the ticket and remembers it. Returns 1 when stored,
/// 0 when the subject was at its limit.
///
/// KEYS: the ticket, the subject's set. ARGV: the stored value, its life
/// (ms), now (ms), its expiry (ms), the limit.
const INSERT_WITHIN: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
for _, ticket in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('EXISTS', ticket) == 0 then
    redis.call('ZREM', KEYS[2], ticket)
  end
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
";

/// What a ticket stands for, as Redis holds it.
#[derive(Serialize, Deserialize)]
struct Stored {
    sub: String,
    roles: Vec<String>,
    scopes: Vec<String>,
    method: String,
    expires_ms: Option<u64>,
    issued_ms: Option<u64>,
    jti: Option<String>,
    claims: Map<String, Value>,
    until_ms: u64,
}

impl Stored {
    fn of(principal: &Principal, until: SystemTime) -> Self {
        Self {
            sub: principal.subject().to_owned(),
            roles: principal.roles().to_vec(),
            scopes: principal.scopes().to_vec(),
            method: match principal.method() {
                AuthMethod::Password => "password",
                AuthMethod::Ticket => "ticket",
                AuthMethod::Certificate => "certificate",
                _ => "token",
            }
            .to_owned(),
            expires_ms: principal.expires_at().map(unix_millis),
            issued_ms: principal.issued_at().map(unix_millis),
            jti: principal.token_id().map(str::to_owned),
            claims: principal.claims().clone(),
            until_ms: unix_millis(until),
        }
    }

    fn principal(self) -> Principal {
        let method = match self.method.as_str() {
            "password" => AuthMethod::Password,
            "ticket" => AuthMethod::Ticket,
            "certificate" => AuthMethod::Certificate,
            _ => AuthMethod::Token,
        };
        let mut principal = Principal::new(self.sub, method)
            .with_roles(self.roles)
            .with_scopes(self.scopes)
            .with_claims(self.claims);
        if let Some(ms) = self.expires_ms {
            principal = principal.with_expires_at(from_unix_millis(ms));
        }
        if let Some(ms) = self.issued_ms {
            principal = principal.with_issued_at(from_unix_millis(ms));
        }
        if let Some(jti) = self.jti {
            principal = principal.with_token_id(jti);
        }
        principal
    }
}

impl RedisTicketStore {
    pub(crate) fn new(commands: Commands, prefix: &str) -> Self {
        Self {
            commands,
            prefix: prefix.to_owned(),
            insert_within: redis::Script::new(INSERT_WITHIN),
        }
    }

    /// The set that counts `subject`'s tickets under a limit.
    fn held_key(&self, subject: &str) -> String {
        format!("{}:tickets-of:{subject}", self.prefix)
    }

    fn key(&self, digest: &TicketDigest) -> String {
        let mut key = format!("{}:ticket:", self.prefix);
        crate::hex::push_lower_hex(&mut key, digest.as_bytes());
        key
    }
}

/// How long Redis keeps a ticket that expires at `expires_at`.
fn life_of(expires_at: SystemTime) -> Duration {
    expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .max(Duration::from_millis(1))
}

fn stored_value(principal: &Principal, expires_at: SystemTime) -> String {
    serde_json::to_string(&Stored::of(principal, expires_at)).unwrap_or_default()
}

impl TicketStore for RedisTicketStore {
    type Error = RedisStoreError;

    async fn insert(
        &self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
    ) -> Result<(), RedisStoreError> {
        let (life, value) = (life_of(expires_at), stored_value(&principal, expires_at));
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(life.as_millis() as u64));
        let key = self.key(&digest);
        let _: Option<String> = self
            .commands
            .run(|mut connection| {
                let (key, value, options) = (&key, &value, options.clone());
                async move { connection.set_options(key, value, options).await }
            })
            .await?;
        Ok(())
    }

    async fn take(
        &self,
        digest: &TicketDigest,
        now: SystemTime,
    ) -> Result<Option<Principal>, RedisStoreError> {
        let key = self.key(digest);
        let value: Option<String> = self
            .commands
            .run(|mut connection| {
                let key = &key;
                async move { connection.get_del(key).await }
            })
            .await?;
        let Some(stored) = value.and_then(|text| serde_json::from_str::<Stored>(&text).ok()) else {
            return Ok(None);
        };
        if unix_millis(now) >= stored.until_ms {
            return Ok(None);
        }
        Ok(Some(stored.principal()))
    }

    async fn insert_within(
        &self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
        now: SystemTime,
        max: usize,
    ) -> Result<bool, RedisStoreError> {
        let mut invocation = self.insert_within.key(self.key(&digest));
        invocation
            .key(self.held_key(principal.subject()))
            .arg(stored_value(&principal, expires_at))
            .arg(life_of(expires_at).as_millis() as u64)
            .arg(unix_millis(now))
            .arg(unix_millis(expires_at))
            .arg(max);
        let stored: i64 = self.commands.invoke(&invocation).await?;
        Ok(stored == 1)
    }
}

impl std::fmt::Debug for RedisTicketStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTicketStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}
