//! Refusing revoked principals at authentication.

use crate::authenticate::{Authenticator, Credential};
use crate::error::{Error, TokenError};
use crate::principal::Principal;
use crate::store::RevocationStore;

/// Wraps an authenticator and refuses the principals a
/// [`RevocationStore`] says are revoked. Built by
/// [`Authenticator::check_revocations`].
///
/// # Errors
///
/// [`TokenError::Revoked`] for a revoked principal (the handshake answers
/// 401 `token revoked`), a backend error when the store fails (503).
#[derive(Debug, Clone)]
pub struct RevocationCheck<A, R> {
    inner: A,
    revocations: R,
}

impl<A, R> RevocationCheck<A, R> {
    /// `inner`, checked against `revocations`.
    pub fn new(inner: A, revocations: R) -> Self {
        Self { inner, revocations }
    }
}

impl<A: Authenticator, R: RevocationStore> Authenticator for RevocationCheck<A, R> {
    async fn authenticate(&self, credential: &Credential) -> Result<Principal, Error> {
        let principal = self.inner.authenticate(credential).await?;
        let session = principal.claims().get("sid").and_then(|sid| sid.as_str());
        match self.revocations.is_revoked(&principal, session).await {
            Ok(false) => Ok(principal),
            Ok(true) => Err(TokenError::Revoked.into()),
            Err(error) => Err(Error::backend(error)),
        }
    }
}
