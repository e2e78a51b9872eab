//! Tokens from identity providers (feature `oidc`): OpenID Connect
//! discovery, JWKS with rotation, RFC 7662 introspection.
//!
//! [`OidcVerifier`] is a [`TokenVerifier`](crate::TokenVerifier): give it
//! to a [`Gate`](crate::Gate) and provider tokens work on every transport
//! and on live sockets (refresh, per-message tokens), next to your own
//! tokens through [`fallback`](OidcVerifierBuilder::fallback).
//!
//! ```no_run
//! use wsgate::oidc::{OidcProvider, OidcVerifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = OidcVerifier::builder()
//!     .provider(OidcProvider::new("https://sso.example.com/realms/app").audience("chat-api"))
//!     .build()?;
//! let gate = wsgate::Gate::builder(verifier).build()?;
//! # let _ = gate;
//! # Ok(())
//! # }
//! ```
//!
//! # What it does
//!
//! - **Discovery**: `<issuer>/.well-known/openid-configuration`, whose
//!   `issuer` must equal the configured one exactly (else the provider's
//!   tokens get 503 and a `keys` audit event says `issuer mismatch`); keys
//!   from its `jwks_uri`, introspection at its `introspection_endpoint`.
//! - **Which keys**: a JWT's `iss` picks the provider; only that
//!   provider's keys verify it, and its `iss` is checked again after the
//!   signature. Each provider caches the keys of its one JWKS URL by
//!   `kid`.
//! - **Readers never wait** on a refresh: a check reads the current key
//!   set (an `Arc` swapped whole when a fetch finishes). Keys are
//!   refreshed in the background before they go stale, after
//!   `Cache-Control: max-age` clamped to 1 min–24 h (10 min without one).
//! - **Rotation**: a `kid` the cache does not hold starts one shared
//!   refetch, at most once per 10 s; every check that needs it waits for
//!   that one fetch. Inside the cooldown, an unknown `kid` is refused at
//!   once (401).
//! - **Outages**: startup never waits for the provider. While no keys can
//!   be had, its tokens get 503 with `Retry-After` (your own tokens keep
//!   working); after a failed refresh the last good keys serve for up to
//!   24 h after they were fetched, then 503.
//! - **Keys**: parsed with `jsonwebtoken`'s JWK module; each pinned to the
//!   one algorithm its type and curve allow (`alg` must agree); `oct`
//!   (HMAC) keys of a remote set are never used; a key that cannot be
//!   parsed is skipped, the rest still serve.
//! - **HTTP**: 2 s to connect, 5 s in all (body included), no redirects,
//!   bodies up to 256 KiB, status 200 only, `https://` except on loopback;
//!   rustls with aws-lc-rs and the platform's roots.
//! - **Introspection** (RFC 7662), for tokens that are not JWTs, when a
//!   provider has client credentials: `active: false` → 401; a malformed
//!   answer or a provider failure → 503, never 401. The active answer's
//!   members are checked like a JWT's claims (`exp` required, `aud` when
//!   configured); a client-credentials answer without `sub` names its
//!   `client_id`. Answers are cached under an HMAC of the token (a key of
//!   this process; never the token), at most 60 s and never past `exp`,
//!   with one request in flight per token however many handshakes ask.
//!   Sockets opened with an introspected token ask again every 60 s and
//!   close with 4403 `token revoked` once the answer is inactive (1011
//!   `backend unavailable` after two failed rechecks in a row).
//! - **Audit and metrics**: every fetch is a `keys` event (trigger, keys
//!   added and removed, or the failure) and every request an
//!   `introspection` event (active, inactive, or the failure); with the
//!   `metrics` feature, `wsgate_key_fetches_total`,
//!   `wsgate_keys_changed_total`, `wsgate_introspections_total`. Never a
//!   token (only a fingerprint) or the client secret.

mod discovery;
mod fetch;
mod introspection;
mod jwks;
mod key_cache;
mod verifier;

pub use self::verifier::{OidcProvider, OidcVerifier, OidcVerifierBuilder};
