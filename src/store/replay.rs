//! The proofs of possession seen lately, so none is accepted twice.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// What makes a DPoP proof one of a kind: the SHA-256 of its key's
/// thumbprint and its `jti` (two keys may well pick the same `jti`). A
/// fixed size, whatever the client sent.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProofId([u8; 32]);

impl ProofId {
    /// The id of the proof with `jti` signed by the key of thumbprint
    /// `jkt`.
    pub fn of(jkt: &str, jti: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(jkt.as_bytes());
        hash.update([0]);
        hash.update(jti.as_bytes());
        Self(hash.finalize().into())
    }

    /// The id's bytes, for use as a database key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ProofId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ProofId({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// The proofs seen within their window, in one process or across every
/// process that shares the store.
pub trait ProofReplayStore: Clone + Send + Sync + 'static {
    /// The store's failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Remembers `proof` for `window` and answers whether it is new:
    /// `false` when it was seen within its window (a replay). Checking and
    /// remembering are one atomic step: of two racing uses of one proof,
    /// on any processes, one is new.
    fn first_use(
        &self,
        proof: ProofId,
        window: Duration,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// How many proofs an [`InMemoryProofReplayStore`] remembers at most by
/// default.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// A [`ProofReplayStore`] in this process's memory, bounded: it forgets
/// each proof when its window ends, and holds at most its capacity
/// (100 000 by default, a few MiB). Full of proofs whose windows are still
/// open, it fails (503 at a handshake: closed, never open) rather than
/// forget one early. Clones share the proofs.
#[derive(Clone)]
pub struct InMemoryProofReplayStore {
    seen: Arc<Mutex<Seen>>,
    capacity: usize,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<ProofId>,
    /// Ids with when they may be forgotten, in that order (every window
    /// is the verifier's same window, so they are added in order).
    expiries: VecDeque<(Instant, ProofId)>,
}

/// The failure of a full [`InMemoryProofReplayStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the replay store is full of proofs whose windows are open")]
pub struct ReplayStoreFull;

impl InMemoryProofReplayStore {
    /// A store of [`DEFAULT_REPLAY_CAPACITY`] proofs.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_REPLAY_CAPACITY)
    }

    /// A store of at most `capacity` proofs (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            seen: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    /// How many proofs it remembers now.
    pub fn len(&self) -> usize {
        self.lock().ids.len()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Default for InMemoryProofReplayStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InMemoryProofReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryProofReplayStore")
            .field("remembered", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl ProofReplayStore for InMemoryProofReplayStore {
    type Error = ReplayStoreFull;

    async fn first_use(&self, proof: ProofId, window: Duration) -> Result<bool, ReplayStoreFull> {
        let now = Instant::now();
        let mut seen = self.lock();
        while let Some(&(expiry, id)) = seen.expiries.front() {
            if expiry > now {
                break;
            }
            seen.expiries.pop_front();
            seen.ids.remove(&id);
        }
        if seen.ids.contains(&proof) {
            return Ok(false);
        }
        if seen.ids.len() >= self.capacity {
            return Err(ReplayStoreFull);
        }
        seen.ids.insert(proof);
        seen.expiries.push_back((now + window, proof));
        Ok(true)
    }
}
