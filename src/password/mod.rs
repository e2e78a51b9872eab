//! Password hashing: argon2id, run off the async runtime with bounded
//! concurrency.
//!
//! [`PasswordVerifier`] is what the Basic authenticator (and a login route)
//! uses; [`hash_password`] makes the PHC strings a credential store holds.
//!
//! # Security
//!
//! - argon2id with m = 19456 KiB, t = 2, p = 1 (the OWASP minimum), unless
//!   configured otherwise.
//! - Hashing runs on tokio's blocking pool, at most `max_concurrency` at a
//!   time, so a burst of logins never stalls the async workers serving other
//!   connections.
//! - A password longer than the cap (defaults to 1024 bytes) is refused
//!   before any hashing.
//! - Verifying for an unknown user runs the same hash against a dummy PHC
//!   string, so an unknown user and a wrong password cost the same time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

use crate::error::{ConfigError, CredentialError, Error, ErrorKind};
use crate::random::random_urlsafe;
use crate::secret::Secret;

mod policy;

pub use self::policy::{PasswordPolicy, PasswordRule};

/// Default number of hashes that may wait for a slot.
pub(crate) const DEFAULT_QUEUE: usize = 64;

/// Default cap on a password's length, in bytes.
pub(crate) const DEFAULT_MAX_PASSWORD_BYTES: usize = 1024;

/// Hashes and verifies passwords as PHC strings.
///
/// Implemented by [`Argon2id`]; implement it to wrap another scheme (for
/// example to count calls in a test, or to migrate old hashes). Both methods
/// are blocking and CPU-bound: [`PasswordVerifier`] calls them off the async
/// runtime.
pub trait PasswordHasher: Send + Sync + 'static {
    /// Hashes `password` into a PHC string with a fresh salt.
    ///
    /// # Errors
    ///
    /// When the hasher fails (out of memory, no randomness).
    fn hash(&self, password: &[u8]) -> Result<String, Error>;

    /// Whether `password` matches the PHC string `hash`.
    ///
    /// # Errors
    ///
    /// When `hash` is not a PHC string this hasher can read.
    fn verify(&self, password: &[u8], hash: &str) -> Result<bool, Error>;
}

/// argon2id (RFC 9106).
#[derive(Clone)]
pub struct Argon2id {
    params: argon2::Params,
}

impl Argon2id {
    /// argon2id with the given memory (KiB), iterations and parallelism.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] when argon2 refuses the parameters.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, ConfigError> {
        let params = argon2::Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|_| ConfigError::InvalidKey("argon2 parameters"))?;
        Ok(Self { params })
    }

    fn argon2(&self) -> argon2::Argon2<'static> {
        argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            self.params.clone(),
        )
    }
}

impl Default for Argon2id {
    /// m = 19456 KiB, t = 2, p = 1.
    fn default() -> Self {
        Self {
            params: argon2::Params::new(19_456, 2, 1, None)
                .unwrap_or_else(|_| argon2::Params::default()),
        }
    }
}

impl fmt::Debug for Argon2id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2id")
            .field("memory_kib", &self.params.m_cost())
            .field("iterations", &self.params.t_cost())
            .field("parallelism", &self.params.p_cost())
            .finish()
    }
}

impl PasswordHasher for Argon2id {
    fn hash(&self, password: &[u8]) -> Result<String, Error> {
        self.argon2()
            .hash_password(password)
            .map(|hash| hash.to_string())
            .map_err(|error| Error::backend(format!("argon2: {error}")))
    }

    fn verify(&self, password: &[u8], hash: &str) -> Result<bool, Error> {
        match self.argon2().verify_password(password, hash) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(error) => Err(Error::backend(format!("stored password hash: {error}"))),
        }
    }
}

/// Hashes a password with the default [`Argon2id`], for filling a
/// credential store. Blocking: call it at setup, or from
/// [`PasswordVerifier::hash`] on a server.
///
/// # Errors
///
/// When hashing fails.
pub fn hash_password(password: &str) -> Result<String, Error> {
    Argon2id::default().hash(password.as_bytes())
}

/// Runs a [`PasswordHasher`] on tokio's blocking pool with bounded
/// concurrency, a length cap, and a dummy verification for unknown users.
///
/// Cheap to clone; clones share the concurrency bound.
pub struct PasswordVerifier<H = Argon2id> {
    hasher: Arc<H>,
    permits: Arc<Semaphore>,
    /// Hashes running or waiting, against `max_pending`.
    pending: Arc<AtomicUsize>,
    max_pending: usize,
    dummy_hash: Arc<str>,
    max_password_bytes: usize,
}

impl PasswordVerifier<Argon2id> {
    /// A verifier with the default [`Argon2id`].
    ///
    /// # Errors
    ///
    /// When the dummy hash cannot be made.
    pub fn new() -> Result<Self, Error> {
        Self::with_hasher(Argon2id::default())
    }
}

impl<H: PasswordHasher> PasswordVerifier<H> {
    /// A verifier around `hasher`. Hashes one random password (the dummy
    /// that unknown users are checked against), so it takes as long as one
    /// hash.
    ///
    /// Concurrency defaults to the number of CPUs.
    ///
    /// # Errors
    ///
    /// When the dummy hash cannot be made.
    pub fn with_hasher(hasher: H) -> Result<Self, Error> {
        let dummy_password = random_urlsafe::<24>()?;
        let dummy_hash = hasher.hash(dummy_password.as_bytes())?;
        let cpus = std::thread::available_parallelism().map_or(1, |count| count.get());
        Ok(Self {
            hasher: Arc::new(hasher),
            permits: Arc::new(Semaphore::new(cpus)),
            pending: Arc::new(AtomicUsize::new(0)),
            max_pending: cpus + DEFAULT_QUEUE,
            dummy_hash: dummy_hash.into(),
            max_password_bytes: DEFAULT_MAX_PASSWORD_BYTES,
        })
    }

    /// At most `max` hashes at a time. Defaults to the number of CPUs.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn max_concurrency(mut self, max: usize) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::ZeroLimit("max_concurrency"));
        }
        let queue = self
            .max_pending
            .saturating_sub(self.permits.available_permits());
        self.permits = Arc::new(Semaphore::new(max));
        self.max_pending = max + queue;
        Ok(self)
    }

    /// How many hashes may wait for a free slot, on top of those running.
    /// When slots and queue are full, a verification fails at once with
    /// [`ErrorKind::Overloaded`] (the handshake
    /// answers 503) instead of waiting without end. Defaults to 64.
    pub fn max_queue(mut self, queue: usize) -> Self {
        self.max_pending = self.permits.available_permits() + queue;
        self
    }

    /// Longest password accepted, in bytes. Defaults to 1024.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn max_password_bytes(mut self, max: usize) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::ZeroLimit("max_password_bytes"));
        }
        self.max_password_bytes = max;
        Ok(self)
    }

    /// Whether `password` matches `hash`. With `hash` `None` (no such user)
    /// the dummy hash is verified instead, at the same cost, and the answer
    /// is `false`.
    ///
    /// # Errors
    ///
    /// [`CredentialError::PasswordTooLong`] over the cap (no hashing is done);
    /// a backend error when the hash cannot be read or the blocking pool is
    /// gone.
    pub async fn verify(&self, password: &Secret, hash: Option<&str>) -> Result<bool, Error> {
        if password.len() > self.max_password_bytes {
            return Err(CredentialError::PasswordTooLong.into());
        }
        let known_user = hash.is_some();
        let hash: Arc<str> = hash.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let password = password.clone();
        let matches = self
            .run_blocking(move |hasher| hasher.verify(password.expose().as_bytes(), &hash))
            .await?;
        Ok(known_user && matches)
    }

    /// Hashes `password` off the async runtime.
    ///
    /// # Errors
    ///
    /// [`CredentialError::PasswordTooLong`] over the cap; a backend error when
    /// hashing fails.
    pub async fn hash(&self, password: &Secret) -> Result<String, Error> {
        if password.len() > self.max_password_bytes {
            return Err(CredentialError::PasswordTooLong.into());
        }
        let password = password.clone();
        self.run_blocking(move |hasher| hasher.hash(password.expose().as_bytes()))
            .await
    }

    async fn run_blocking<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&H) -> Result<T, Error> + Send + 'static,
    {
        // Admission first: a storm of logins gets a quick 503 for the excess,
        // not an ever longer queue.
        let admitted = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                (pending < self.max_pending).then_some(pending + 1)
            })
            .is_ok();
        if !admitted {
            return Err(ErrorKind::Overloaded.into());
        }
        let _pending = PendingGuard(&self.pending);
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::backend("password hashing pool closed"))?;
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&hasher)
        })
        .await
        .map_err(|_| Error::backend("password hashing task failed"))?
    }
}

/// Counts a hash as pending until it is done (or its caller gave up).
struct PendingGuard<'a>(&'a AtomicUsize);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<H> Clone for PasswordVerifier<H> {
    fn clone(&self) -> Self {
        Self {
            hasher: self.hasher.clone(),
            permits: self.permits.clone(),
            pending: self.pending.clone(),
            max_pending: self.max_pending,
            dummy_hash: self.dummy_hash.clone(),
            max_password_bytes: self.max_password_bytes,
        }
    }
}

impl<H: fmt::Debug> fmt::Debug for PasswordVerifier<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordVerifier")
            .field("hasher", &self.hasher)
            .field("available_permits", &self.permits.available_permits())
            .field("max_password_bytes", &self.max_password_bytes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters: these tests check behaviour, not cost.
    fn fast() -> Argon2id {
        Argon2id::new(64, 1, 1).unwrap()
    }

    #[test]
    fn default_parameters_are_the_documented_ones() {
        let hash = hash_password("correct horse").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(Argon2id::default().verify(b"correct horse", &hash).unwrap());
        assert!(!Argon2id::default().verify(b"wrong horse", &hash).unwrap());
    }

    #[tokio::test]
    async fn verify_known_unknown_and_too_long() {
        let verifier = PasswordVerifier::with_hasher(fast()).unwrap();
        let hash = verifier.hash(&Secret::new("s3cret")).await.unwrap();
        assert!(
            verifier
                .verify(&Secret::new("s3cret"), Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !verifier
                .verify(&Secret::new("nope"), Some(&hash))
                .await
                .unwrap()
        );
        assert!(!verifier.verify(&Secret::new("s3cret"), None).await.unwrap());
        let long = Secret::new("x".repeat(DEFAULT_MAX_PASSWORD_BYTES + 1));
        let error = verifier.verify(&long, Some(&hash)).await.unwrap_err();
        assert!(matches!(
            error.kind(),
            crate::ErrorKind::Credentials(CredentialError::PasswordTooLong)
        ));
    }

    #[tokio::test]
    async fn corrupt_stored_hash_is_a_backend_error() {
        let verifier = PasswordVerifier::with_hasher(fast()).unwrap();
        let error = verifier
            .verify(&Secret::new("pw"), Some("not-a-phc-string"))
            .await
            .unwrap_err();
        assert!(matches!(error.kind(), crate::ErrorKind::Backend(_)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_answers_overloaded_at_once() {
        let verifier = PasswordVerifier::with_hasher(Argon2id::default())
            .unwrap()
            .max_concurrency(1)
            .unwrap()
            .max_queue(2);
        let hash = hash_password("pw").unwrap();
        let attempts: Vec<_> = (0..10)
            .map(|_| {
                let verifier = verifier.clone();
                let hash = hash.clone();
                tokio::spawn(async move { verifier.verify(&Secret::new("pw"), Some(&hash)).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for attempt in attempts {
            outcomes.push(attempt.await.unwrap());
        }
        let verified = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Ok(true)))
            .count();
        let overloaded = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Err(error) if matches!(error.kind(), ErrorKind::Overloaded)))
            .count();
        // One running and two queued at most at any moment: of ten at once,
        // the rest are turned away.
        assert!(verified >= 3, "{verified} verified");
        assert_eq!(verified + overloaded, 10);
        assert!(overloaded >= 1);
        // Once the storm is over, the verifier serves again.
        assert!(
            verifier
                .verify(&Secret::new("pw"), Some(&hash))
                .await
                .unwrap()
        );
    }

    #[test]
    fn zero_limits_are_refused() {
        let verifier = PasswordVerifier::with_hasher(fast()).unwrap();
        assert!(verifier.clone().max_concurrency(0).is_err());
        assert!(verifier.max_password_bytes(0).is_err());
    }
}
