//! Server nonces for DPoP proofs (RFC 9449 §9): a proof must carry a
//! `nonce` the server handed out lately, which caps how far ahead of its
//! use a client (or a thief who briefly held the client's key) can make a
//! proof, whatever the client's clock says.
//!
//! Stateless, so every process that shares the secret accepts every
//! other's nonces with no store: a nonce is the number of its period and
//! an HMAC-SHA-256 (aws-lc-rs) of that number under the secret. One is
//! accepted during its own period and the next, so a nonce handed out
//! just before a period ends still works for one whole period.

use std::time::{Duration, SystemTime};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ConfigError;

/// How long a nonce is handed out before the next one: 5 minutes. Each
/// is accepted for up to twice that.
pub(crate) const DEFAULT_NONCE_PERIOD: Duration = Duration::from_secs(300);

/// The shortest secret accepted: 32 bytes, as for HS256 keys.
const MIN_SECRET_BYTES: usize = 32;

/// What the HMAC signs besides the period, so the secret's tags are of no
/// use anywhere else.
const CONTEXT: &[u8] = b"wsgate dpop nonce v1\0";

/// Server nonces for DPoP proofs: set with
/// [`DpopVerifierBuilder::nonces`](crate::dpop::DpopVerifierBuilder::nonces).
/// Off unless set.
#[derive(Clone)]
pub struct DpopNonces {
    key: hmac::Key,
    period: Duration,
}

impl DpopNonces {
    /// Nonces made and checked with `secret`: at least 32 random bytes,
    /// the same on every process that must accept each other's nonces.
    ///
    /// # Errors
    ///
    /// [`ConfigError::WeakNonceSecret`] for a secret under 32 bytes.
    pub fn new(secret: &[u8]) -> Result<Self, ConfigError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::WeakNonceSecret);
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            period: DEFAULT_NONCE_PERIOD,
        })
    }

    /// How long each nonce is handed out; accepted for up to twice as
    /// long. Defaults to 5 minutes; at least 10 seconds.
    #[must_use]
    pub fn period(mut self, period: Duration) -> Self {
        self.period = period.max(Duration::from_secs(10));
        self
    }

    /// The nonce to hand out at `now`.
    pub(crate) fn current(&self, now: SystemTime) -> String {
        self.nonce_of(self.period_of(now))
    }

    /// Whether `nonce` was handed out during the period of `now` or the
    /// one before.
    pub(crate) fn accepts(&self, nonce: &str, now: SystemTime) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Some((number, tag)) = bytes.split_first_chunk::<8>() else {
            return false;
        };
        let number = u64::from_be_bytes(*number);
        let current = self.period_of(now);
        let recent = number == current || number.checked_add(1) == Some(current);
        recent && hmac::verify(&self.key, &Self::message(number), tag).is_ok()
    }

    fn period_of(&self, now: SystemTime) -> u64 {
        let since_epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        since_epoch.as_secs() / self.period.as_secs().max(1)
    }

    fn message(number: u64) -> Vec<u8> {
        let mut message = CONTEXT.to_vec();
        message.extend_from_slice(&number.to_be_bytes());
        message
    }

    fn nonce_of(&self, number: u64) -> String {
        let tag = hmac::sign(&self.key, &Self::message(number));
        let mut bytes = number.to_be_bytes().to_vec();
        bytes.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

impl std::fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopNonces")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn a_nonce_is_accepted_in_its_period_and_the_next_only() {
        let nonces = DpopNonces::new(&[7; 32])
            .unwrap()
            .period(Duration::from_secs(60));
        let nonce = nonces.current(at(6_000));
        assert_eq!(nonces.current(at(6_059)), nonce, "one nonce a period");
        assert_ne!(nonces.current(at(6_060)), nonce);
        for (when, accepted) in [
            (6_000, true),
            (6_059, true),
            (6_060, true),
            (6_119, true),
            (6_120, false),
            (5_999, false),
        ] {
            assert_eq!(nonces.accepts(&nonce, at(when)), accepted, "at {when}");
        }
    }

    #[test]
    fn only_the_secrets_own_nonces_pass() {
        let nonces = DpopNonces::new(&[7; 32]).unwrap();
        let other = DpopNonces::new(&[8; 32]).unwrap();
        let now = at(1_800_000_000);
        assert!(nonces.accepts(&nonces.current(now), now));
        assert!(!nonces.accepts(&other.current(now), now));
        let mut forged = URL_SAFE_NO_PAD.decode(nonces.current(now)).unwrap();
        forged[20] ^= 1;
        assert!(!nonces.accepts(&URL_SAFE_NO_PAD.encode(forged), now));
        for junk in ["", "not base64!", "AAAA", &"A".repeat(400)] {
            assert!(!nonces.accepts(junk, now), "{junk:?}");
        }
        assert_eq!(
            DpopNonces::new(&[7; 31]).err(),
            Some(ConfigError::WeakNonceSecret)
        );
    }
}
