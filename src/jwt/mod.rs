//! JSON Web Tokens: verification and issuing with secure defaults.
//!
//! [`JwtVerifier`] implements [`TokenVerifier`](crate::TokenVerifier) and
//! [`JwtIssuer`] implements [`TokenIssuer`](crate::TokenIssuer). Keys are
//! [`VerificationKey`] and [`SigningKey`] (or both at once, [`KeyPair`]),
//! each pinned to one [`Algorithm`]. Signatures are checked by
//! `jsonwebtoken` on its `aws-lc-rs` backend; wsgate adds the checks around
//! them.
//!
//! Supported: HS256, HS384, HS512, ES256, ES384, EdDSA (Ed25519), RS256,
//! RS384, RS512, PS256, PS384, PS512.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use wsgate::jwt::{Algorithm, JwtIssuer, JwtVerifier, KeyPair};
//! use wsgate::{AuthMethod, Principal};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = b"a-secret-of-at-least-thirty-two-bytes";
//! let (signing, verification) = KeyPair::hmac(secret, Algorithm::HS256)?
//!     .with_kid("2026-11")
//!     .into_parts();
//! let issuer = JwtIssuer::builder(signing)
//!     .issuer("my-app")
//!     .audience("my-app-ws")
//!     .lifetime(Duration::from_secs(900))?
//!     .build();
//! let verifier = JwtVerifier::builder()
//!     .key(verification)
//!     .issuer("my-app")
//!     .audience("my-app-ws")
//!     .leeway(Duration::from_secs(5))?
//!     .build()?;
//!
//! let alice = Principal::new("alice", AuthMethod::Password).with_roles(["user"]);
//! let token = issuer.issue_token(&alice)?;
//! let verified = verifier.verify_token(token.token().expose())?;
//! assert_eq!(verified.subject(), "alice");
//! # Ok(())
//! # }
//! ```
//!
//! # Security
//!
//! See [`JwtVerifier`] for the checks and their defaults. Key rotation: give
//! each key a `kid`; a verifier holds the old and the new key while tokens
//! signed by the old one are still alive.

mod issuer;
mod key;
mod verifier;
#[cfg(test)]
mod wycheproof;

pub use jsonwebtoken::Algorithm;
pub use jsonwebtoken::jwk::Jwk;

pub use self::issuer::{DEFAULT_TOKEN_LIFETIME, JwtIssuer, JwtIssuerBuilder};
pub use self::key::{KeyPair, SigningKey, VerificationKey};
#[cfg(feature = "oidc")]
pub(crate) use self::verifier::DEFAULT_MAX_TOKEN_BYTES;
pub use self::verifier::{JwtVerifier, JwtVerifierBuilder, MAX_LEEWAY};
pub(crate) use self::verifier::{
    decode_segment, media_type_matches, numeric_date_of, split_compact,
};
#[cfg(feature = "oidc")]
pub(crate) use self::verifier::{looks_like_jwt, unverified_issuer};
