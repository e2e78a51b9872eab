//! Username and password, checked against a [`CredentialStore`].

use crate::authenticate::{Authenticator, Credential, unsupported};
use crate::error::{CredentialError, Error, ErrorKind};
use crate::password::{Argon2id, PasswordHasher, PasswordVerifier};
use crate::principal::{AuthMethod, Principal};
use crate::store::CredentialStore;

/// Authenticates [`Credential::Basic`] against a [`CredentialStore`].
///
/// # Security
///
/// An unknown user and a wrong password take the same path: one password
/// verification (against a dummy hash for the unknown user) and the same
/// [`CredentialError::InvalidCredentials`]. A disabled account is reported
/// only after its right password was given. Hashing runs off the async
/// runtime; see [`PasswordVerifier`].
#[derive(Debug)]
pub struct BasicAuthenticator<S, H = Argon2id> {
    store: S,
    passwords: PasswordVerifier<H>,
}

impl<S: CredentialStore, H: PasswordHasher> BasicAuthenticator<S, H> {
    /// Basic authentication against `store`, verifying with `passwords`.
    pub fn new(store: S, passwords: PasswordVerifier<H>) -> Self {
        Self { store, passwords }
    }

    /// Checks a username and password; what `/login` routes call too.
    ///
    /// # Errors
    ///
    /// [`CredentialError::InvalidCredentials`] for an unknown user or a wrong
    /// password, [`ErrorKind::AccountDisabled`] for a disabled account (right
    /// password), a backend error when the store fails.
    pub async fn check_password(
        &self,
        username: &str,
        password: &crate::Secret,
    ) -> Result<Principal, Error> {
        let user = self
            .store
            .find_user(username)
            .await
            .map_err(Error::backend)?;
        let matches = match self
            .passwords
            .verify(password, user.as_ref().map(|user| user.password_hash()))
            .await
        {
            Ok(matches) => matches,
            // Same answer as a wrong password: the cap is no oracle either.
            Err(error) if matches!(error.kind(), ErrorKind::Credentials(_)) => {
                return Err(CredentialError::InvalidCredentials.into());
            }
            Err(error) => return Err(error),
        };
        match user {
            Some(user) if matches => {
                if user.is_disabled() {
                    return Err(ErrorKind::AccountDisabled.into());
                }
                // The issue time lets a revocation of the subject cover this
                // login and not the ones after it.
                Ok(Principal::new(user.subject(), AuthMethod::Password)
                    .with_roles(user.roles().iter().cloned())
                    .with_issued_at(std::time::SystemTime::now()))
            }
            _ => Err(CredentialError::InvalidCredentials.into()),
        }
    }
}

impl<S: Clone, H> Clone for BasicAuthenticator<S, H> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            passwords: self.passwords.clone(),
        }
    }
}

impl<S: CredentialStore, H: PasswordHasher> Authenticator for BasicAuthenticator<S, H> {
    async fn authenticate(&self, credential: &Credential) -> Result<Principal, Error> {
        match credential {
            Credential::Basic { username, password } => {
                self.check_password(username, password).await
            }
            _ => Err(unsupported()),
        }
    }
}
