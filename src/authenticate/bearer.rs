//! Bearer tokens, checked by a [`TokenVerifier`].

use crate::authenticate::{Authenticator, Credential, unsupported};
use crate::error::Error;
use crate::principal::Principal;
use crate::token::TokenVerifier;

/// Authenticates [`Credential::Bearer`] with a [`TokenVerifier`] (for
/// example [`JwtVerifier`](crate::jwt::JwtVerifier)).
#[derive(Clone, Debug)]
pub struct BearerAuthenticator<V> {
    verifier: V,
}

impl<V: TokenVerifier> BearerAuthenticator<V> {
    /// Bearer authentication with `verifier`.
    pub fn new(verifier: V) -> Self {
        Self { verifier }
    }

    /// The verifier.
    pub fn verifier(&self) -> &V {
        &self.verifier
    }
}

impl<V: TokenVerifier> Authenticator for BearerAuthenticator<V> {
    async fn authenticate(&self, credential: &Credential) -> Result<Principal, Error> {
        match credential {
            Credential::Bearer(token) => self.verifier.verify(token.expose()).await,
            _ => Err(unsupported()),
        }
    }
}
