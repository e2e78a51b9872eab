//! Refresh sessions as a store keeps them: only digests of tokens, and a
//! compare-and-swap for rotation (see
//! [`RefreshSessions`](crate::refresh_sessions::RefreshSessions)).

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The SHA-256 of a refresh token: all a store ever holds of one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefreshDigest(pub [u8; 32]);

impl RefreshDigest {
    /// The digest of `token`.
    pub fn of_token(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Lowercase hex, as the SQL and Redis stores keep it.
    pub fn to_hex(&self) -> String {
        crate::hex::lower_hex(&self.0)
    }

    /// The digest written as [`to_hex`](Self::to_hex) wrote it; `None`
    /// for anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(index * 2..index * 2 + 2)?, 16).ok()?;
        }
        Some(Self(bytes))
    }

    /// Whether `other` is the same digest (in constant time).
    pub fn matches(&self, other: &RefreshDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for RefreshDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshDigest(..)")
    }
}

/// One refresh session, as a store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshRecord {
    /// The key: the first part of every refresh token of the session.
    pub family: String,
    /// The session id: the `sid` of its access tokens.
    pub session_id: String,
    /// Whose session.
    pub subject: String,
    /// The DPoP key it is bound to.
    pub jkt: Option<String>,
    /// The client certificate it is bound to (RFC 8705 thumbprint).
    pub certificate: Option<String>,
    /// The digest of the one refresh token that rotates it now.
    pub current: RefreshDigest,
    /// The digest of the token `current` replaced, for the grace.
    pub previous: Option<RefreshDigest>,
    /// When `current` was handed out.
    pub rotated_at: SystemTime,
    /// The login.
    pub created_at: SystemTime,
    /// When it ends unless refreshed.
    pub expires_at: SystemTime,
    /// Logged out, revoked, or ended for reuse: every token of it refused.
    pub ended: bool,
}

/// Where refresh sessions live. Rotation is a compare-and-swap:
/// [`replace`](Self::replace) writes only while the record's current
/// digest is still the one its caller read, so two uses of one token
/// cannot both rotate it. Same shape as the other stores: `Ok(None)` for
/// "no such session", `Err` for "the store failed" (a refresh then fails
/// closed, 503).
pub trait RefreshSessionStore: Clone + Send + Sync + 'static {
    /// What goes wrong in the store.
    type Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send;

    /// Stores a new session.
    fn insert(&self, record: RefreshRecord)
    -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The session of `family`.
    fn get(
        &self,
        family: &str,
    ) -> impl Future<Output = Result<Option<RefreshRecord>, Self::Error>> + Send;

    /// Replaces the session of `record.family` with `record` if its
    /// current digest is still `expected` and it has not ended: `false`
    /// when another writer got there first.
    fn replace(
        &self,
        expected: RefreshDigest,
        record: RefreshRecord,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// Refresh sessions in this process's memory: for one process and for
/// tests (they end with it). Expired sessions are dropped as new ones
/// start. Cheap to clone; clones share the sessions.
#[derive(Clone, Default)]
pub struct InMemoryRefreshSessionStore {
    records: Arc<Mutex<std::collections::HashMap<String, RefreshRecord>>>,
}

impl InMemoryRefreshSessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions it holds (ended ones until they expire).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, RefreshRecord>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for InMemoryRefreshSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryRefreshSessionStore")
            .field("sessions", &self.len())
            .finish()
    }
}

impl RefreshSessionStore for InMemoryRefreshSessionStore {
    type Error = std::convert::Infallible;

    async fn insert(&self, record: RefreshRecord) -> Result<(), Self::Error> {
        let mut records = self.lock();
        let now = record.created_at;
        records.retain(|_, kept| kept.expires_at > now);
        records.insert(record.family.clone(), record);
        Ok(())
    }

    async fn get(&self, family: &str) -> Result<Option<RefreshRecord>, Self::Error> {
        Ok(self.lock().get(family).cloned())
    }

    async fn replace(
        &self,
        expected: RefreshDigest,
        record: RefreshRecord,
    ) -> Result<bool, Self::Error> {
        let mut records = self.lock();
        match records.get_mut(&record.family) {
            Some(stored) if !stored.ended && stored.current.matches(&expected) => {
                *stored = record;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_hex() {
        let original = RefreshDigest::of_token("a.b");
        assert_eq!(RefreshDigest::from_hex(&original.to_hex()), Some(original));
        assert_eq!(RefreshDigest::from_hex("zz"), None);
        assert_eq!(RefreshDigest::from_hex(&"g".repeat(64)), None);
        assert!(original.matches(&RefreshDigest::of_token("a.b")));
        assert!(!original.matches(&RefreshDigest::of_token("a.c")));
        assert_eq!(format!("{original:?}"), "RefreshDigest(..)");
    }
}
