//! The kit wsgate's tests, benchmarks and fuzz targets share: the keys
//! (built in), the servers they start (Redis, PostgreSQL, the OpenID
//! provider), certificates made on the spot, and the clients that talk to
//! a served router. Not published.
//!
//! A server that cannot run here makes the test say so and skip
//! ([`servers::missing`]), unless `WSGATE_TEST_REQUIRE_SERVERS=1` (CI),
//! where it fails.
//!
//! Without its default feature `servers` it is the keys, DPoP client keys
//! and the secrets registry alone: what the fuzz targets take, without a
//! runtime or an HTTP client in their builds.

pub mod dpop;
pub mod fixtures;

#[cfg(feature = "servers")]
pub mod clients;
#[cfg(feature = "servers")]
pub mod idp;
#[cfg(feature = "servers")]
pub mod pki;
#[cfg(feature = "servers")]
pub mod postgres;
#[cfg(feature = "servers")]
pub mod redis;
#[cfg(feature = "servers")]
pub mod servers;

/// Now, in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs()
}

/// Every secret the kit and the tests made or used, for the tests that
/// check none of them reached a log.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Keeps `secret` for [`remembered_secrets`]; gives it back.
pub fn remember_secret(secret: impl Into<String>) -> String {
    let secret = secret.into();
    SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(secret.clone());
    secret
}

/// Every secret remembered so far.
pub fn remembered_secrets() -> Vec<String> {
    SECRETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}
