//! The DPoP proofs seen lately, across processes: one `SET NX PX` a proof.

use std::time::Duration;

use crate::redis::Commands;
use crate::redis::revocations::RedisStoreError;
use crate::store::{ProofId, ProofReplayStore};

/// Proofs seen lately, in Redis under `<prefix>:dpop-proof:<hex of the
/// proof's id>` until their window closes: of two uses of one proof, on
/// any processes, one sets the key and the other finds it. Made by
/// [`RedisStores::proof_replays`](crate::redis::RedisStores::proof_replays).
///
/// A `SET` whose reply was lost and that is tried again finds its own
/// key and calls the proof a replay: the request fails closed (the client
/// makes a new proof).
#[derive(Clone)]
pub struct RedisProofReplayStore {
    commands: Commands,
    prefix: String,
}

impl RedisProofReplayStore {
    pub(crate) fn new(commands: Commands, prefix: &str) -> Self {
        Self {
            commands,
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, proof: &ProofId) -> String {
        let mut key = format!("{}:dpop-proof:", self.prefix);
        crate::hex::push_lower_hex(&mut key, proof.as_bytes());
        key
    }
}

impl ProofReplayStore for RedisProofReplayStore {
    type Error = RedisStoreError;

    async fn first_use(&self, proof: ProofId, window: Duration) -> Result<bool, RedisStoreError> {
        let key = self.key(&proof);
        let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = self
            .commands
            .run(|mut connection| {
                let key = &key;
                async move {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(1)
                        .arg("NX")
                        .arg("PX")
                        .arg(millis)
                        .query_async(&mut connection)
                        .await
                }
            })
            .await?;
        Ok(set.is_some())
    }
}

impl std::fmt::Debug for RedisProofReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisProofReplayStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}
