//! Authenticators: turn a [`Credential`] taken from the handshake into a
//! [`Principal`]. A [`Gate`](crate::Gate) chains them for you (the token
//! verifier, yours, passwords, tickets); build chains by hand for a
//! [`HandshakeLayer`](crate::handshake::HandshakeLayer) of your own.
//!
//! | authenticator | handles |
//! |---|---|
//! | [`BearerAuthenticator`] over any [`TokenVerifier`](crate::TokenVerifier) | [`Credential::Bearer`] |
//! | [`BasicAuthenticator`] over any [`CredentialStore`](crate::store::CredentialStore) | [`Credential::Basic`] |
//! | [`Tickets`] | [`Credential::Ticket`] |
//! | `CertificateAuthenticator` (feature `tls`) | [`Credential::Certificate`] |
//! | [`Chain`], from [`Authenticator::or`] | whatever its members handle, in order |
//! | [`BoxedAuthenticator`] | any of these, behind one type |
//!
//! Revoked tokens are refused by the stage that asks (the handshake layer,
//! a first-message route), not by the authenticator: see
//! [`Wiring::revocations`](crate::wiring::Wiring::revocations).
//!
//! # Example
//!
//! ```
//! use wsgate::authenticate::{Authenticator, BasicAuthenticator, BearerAuthenticator};
//! use wsgate::jwt::{Algorithm, JwtVerifier, VerificationKey};
//! use wsgate::password::PasswordVerifier;
//! use wsgate::store::InMemoryCredentialStore;
//! use wsgate::ticket::Tickets;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = JwtVerifier::builder()
//!     .key(VerificationKey::hmac(b"a-secret-of-at-least-thirty-two-bytes", Algorithm::HS256)?)
//!     .build()?;
//! let users = InMemoryCredentialStore::new();
//! // Keep a handle on the tickets: the route that issues them needs it
//! // (clones share the store). A `Gate` does this for you.
//! let tickets = Tickets::in_memory();
//! let authenticator = BearerAuthenticator::new(verifier)
//!     .or(BasicAuthenticator::new(users, PasswordVerifier::new()?))
//!     .or(tickets.clone());
//! # let _ = (authenticator, tickets);
//! # Ok(())
//! # }
//! ```

mod basic;
mod bearer;
mod boxed;
#[cfg(feature = "tls")]
mod certificate;
mod chain;

use std::future::Future;

use crate::certificate::ClientCertificate;
use crate::error::{Error, ErrorKind};
use crate::principal::Principal;
use crate::secret::Secret;
use crate::store::TicketStore;
use crate::ticket::Tickets;

pub use self::basic::BasicAuthenticator;
pub use self::bearer::BearerAuthenticator;
pub use self::boxed::BoxedAuthenticator;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use self::certificate::{CertificateAuthenticator, CertificateIdentity, CertificateSubject};
pub use self::chain::Chain;

/// Credentials as they came in the handshake, before anyone has checked
/// them. `Debug` never shows the secret parts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Credential {
    /// A bearer token (from `Authorization`, the subprotocol, a cookie, or
    /// the query behind the dangerous opt-in).
    Bearer(Secret),
    /// A username and password (from `Authorization: Basic`).
    Basic {
        /// The username.
        username: String,
        /// The password.
        password: Secret,
    },
    /// A single-use ticket (from `?ticket=`).
    Ticket(Secret),
    /// The client certificate of the connection, or one a trusted proxy
    /// forwarded (transport [`certificate`](crate::Transport::Certificate)).
    Certificate(ClientCertificate),
}

impl Credential {
    /// A short stable name of the kind of credential, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Bearer(_) => "bearer",
            Credential::Basic { .. } => "basic",
            Credential::Ticket(_) => "ticket",
            Credential::Certificate(_) => "certificate",
        }
    }
}

/// Decides whose a credential is.
///
/// # Errors
///
/// An authenticator answers:
/// - `Ok(principal)` when the credential is good;
/// - [`ErrorKind::UnsupportedCredential`] when it does not handle this kind
///   of credential (a [`Chain`] then asks the next one);
/// - [`ErrorKind::Token`] or [`ErrorKind::Credentials`] when the credential
///   is bad (401), [`ErrorKind::AccountDisabled`] when it is good but the
///   account may not sign in (403);
/// - [`ErrorKind::Backend`] when it could not decide (503).
pub trait Authenticator: Clone + Send + Sync + 'static {
    /// Authenticates `credential`.
    fn authenticate(
        &self,
        credential: &Credential,
    ) -> impl Future<Output = Result<Principal, Error>> + Send;

    /// Tries `self` first, then `next`.
    fn or<B>(self, next: B) -> Chain<Self, B>
    where
        Self: Sized,
        B: Authenticator,
    {
        Chain::new(self, next)
    }
}

pub(crate) fn unsupported() -> Error {
    ErrorKind::UnsupportedCredential.into()
}

impl<S: TicketStore> Authenticator for Tickets<S> {
    async fn authenticate(&self, credential: &Credential) -> Result<Principal, Error> {
        match credential {
            Credential::Ticket(ticket) => self.redeem(ticket.expose()).await,
            _ => Err(unsupported()),
        }
    }
}
