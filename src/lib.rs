//! wsgate (work in progress)
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
mod error;
pub mod jwt;
mod principal;
mod random;
mod secret;
mod token;

pub use clock::Clock;
pub use error::{ConfigError, CredentialError, Error, ErrorKind, TokenError};
pub use principal::{AuthMethod, Principal, Transport};
pub use secret::Secret;
pub use token::{IssuedToken, TokenIssuer, TokenVerifier};
pub mod authenticate;
pub mod handshake;
pub mod password;
pub mod store;
pub mod ticket;
