//! Accounts: creating users, changing passwords and roles, disabling —
//! with the password policy, hashing off the runtime, and the revocations
//! a change needs, so that a changed credential reaches live sockets.

use std::fmt;
use std::time::SystemTime;

use crate::error::Error;
use crate::password::{PasswordHasher, PasswordPolicy, PasswordRule, PasswordVerifier};
use crate::secret::Secret;
use crate::session::{Close, CloseKind, reason};
use crate::socket::Registry;
use crate::store::{AccountStore, Revocation, StoredUser};

/// The longest username, in bytes.
pub const MAX_USERNAME_BYTES: usize = 64;

/// Why an account change was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Empty, longer than 64 bytes, or with control characters.
    #[error("invalid username")]
    InvalidUsername,
    /// The username is taken.
    #[error("user exists")]
    UserExists,
    /// No such user.
    #[error("unknown user")]
    UnknownUser,
    /// The new password breaks a rule of the policy.
    #[error("weak password: {0}")]
    WeakPassword(PasswordRule),
    /// The store or the hasher failed (503).
    #[error(transparent)]
    Backend(#[from] Error),
}

/// Account changes over an [`AccountStore`], each with what it implies:
///
/// - [`create`](Self::create): a valid username, a password the policy
///   accepts, hashed with argon2id off the runtime;
/// - [`change_password`](Self::change_password): the policy, then every
///   token of the user issued before the change is refused, and their live
///   sockets close with 4403 `token revoked`;
/// - [`disable`](Self::disable): the account refuses logins (403), its
///   tokens are refused, and its live sockets close with 4403 `forbidden`.
///
/// The revocations go through the registry's store: with a shared store
/// (Redis) they reach every process. Verifying the *current* password of a
/// change is the caller's, under the failure limiter
/// ([`Gate::check_password`](crate::Gate::check_password)).
pub struct Accounts<S, H: PasswordHasher = crate::password::Argon2id> {
    store: S,
    passwords: PasswordVerifier<H>,
    policy: PasswordPolicy,
    registry: Registry,
}

impl<S: AccountStore, H: PasswordHasher> Accounts<S, H> {
    /// Accounts in `store`, hashed by `passwords`, checked by `policy`;
    /// changes revoke through `registry` (the gate's).
    pub fn new(
        store: S,
        passwords: PasswordVerifier<H>,
        policy: PasswordPolicy,
        registry: Registry,
    ) -> Self {
        Self {
            store,
            passwords,
            policy,
            registry,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The policy.
    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// Creates a user whose subject is its username.
    ///
    /// # Errors
    ///
    /// [`AccountError::InvalidUsername`], [`AccountError::WeakPassword`],
    /// [`AccountError::UserExists`], or a backend failure.
    pub async fn create(
        &self,
        username: &str,
        password: &Secret,
        roles: Vec<String>,
    ) -> Result<(), AccountError> {
        check_username(username)?;
        self.policy
            .check(username, password.expose())
            .map_err(AccountError::WeakPassword)?;
        let hash = self.passwords.hash(password).await?;
        let user = StoredUser::new(username, hash).with_roles(roles);
        done(
            self.store.create_user(username, user).await,
            AccountError::UserExists,
        )
    }

    /// Sets a new password (the policy applies) and revokes every token of
    /// the user issued until now; returns how many of this node's sockets
    /// closed.
    ///
    /// # Errors
    ///
    /// [`AccountError::WeakPassword`], [`AccountError::UnknownUser`], or a
    /// backend failure (the hash is then unchanged, or changed and the
    /// revocation failed: try again).
    pub async fn change_password(
        &self,
        username: &str,
        new_password: &Secret,
    ) -> Result<usize, AccountError> {
        self.policy
            .check(username, new_password.expose())
            .map_err(AccountError::WeakPassword)?;
        let hash = self.passwords.hash(new_password).await?;
        let subject = self.subject_of(username).await?;
        done(
            self.store.set_password_hash(username, hash).await,
            AccountError::UnknownUser,
        )?;
        let revocation = Revocation::subject(subject, SystemTime::now());
        Ok(self.registry.revoke(revocation).await?)
    }

    /// Disables the account: logins get 403, its tokens are refused, its
    /// live sockets close with 4403 `forbidden`. Returns how many of this
    /// node's sockets closed.
    ///
    /// # Errors
    ///
    /// [`AccountError::UnknownUser`] or a backend failure.
    pub async fn disable(&self, username: &str) -> Result<usize, AccountError> {
        let subject = self.subject_of(username).await?;
        self.set_disabled(username, true).await?;
        let revocation = Revocation::subject(subject, SystemTime::now());
        let forbidden = Close::new(CloseKind::Forbidden, reason::FORBIDDEN);
        Ok(self.registry.revoke_closing(revocation, forbidden).await?)
    }

    /// Enables a disabled account again (its earlier tokens stay revoked).
    ///
    /// # Errors
    ///
    /// [`AccountError::UnknownUser`] or a backend failure.
    pub async fn enable(&self, username: &str) -> Result<(), AccountError> {
        self.set_disabled(username, false).await
    }

    /// Replaces the roles (tokens issued before keep theirs until they
    /// expire or are revoked).
    ///
    /// # Errors
    ///
    /// [`AccountError::UnknownUser`] or a backend failure.
    pub async fn set_roles(&self, username: &str, roles: Vec<String>) -> Result<(), AccountError> {
        done(
            self.store.set_roles(username, roles).await,
            AccountError::UnknownUser,
        )
    }

    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<(), AccountError> {
        done(
            self.store.set_disabled(username, disabled).await,
            AccountError::UnknownUser,
        )
    }

    async fn subject_of(&self, username: &str) -> Result<String, AccountError> {
        match self.store.find_user(username).await {
            Ok(Some(user)) => Ok(user.subject().to_owned()),
            Ok(None) => Err(AccountError::UnknownUser),
            Err(error) => Err(Error::backend(error).into()),
        }
    }
}

/// What an [`AccountStore`] write came to: done, `otherwise` (the name was
/// taken, or unknown), or a failure of the store.
fn done<E>(written: Result<bool, E>, otherwise: AccountError) -> Result<(), AccountError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match written {
        Ok(true) => Ok(()),
        Ok(false) => Err(otherwise),
        Err(error) => Err(Error::backend(error).into()),
    }
}

/// A username may be stored and shown: 1 to 64 bytes, no control
/// characters.
///
/// # Errors
///
/// [`AccountError::InvalidUsername`].
pub fn check_username(username: &str) -> Result<(), AccountError> {
    if username.is_empty()
        || username.len() > MAX_USERNAME_BYTES
        || username.chars().any(char::is_control)
    {
        return Err(AccountError::InvalidUsername);
    }
    Ok(())
}

impl<S: fmt::Debug, H: PasswordHasher> fmt::Debug for Accounts<S, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts")
            .field("store", &self.store)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_short_printable_and_present() {
        for bad in ["", "a\u{0}b", "line\nbreak", "tab\there", &"x".repeat(65)] {
            assert!(
                matches!(check_username(bad), Err(AccountError::InvalidUsername)),
                "{bad:?}"
            );
        }
        for good in [
            "alice",
            "Ærøskøbing",
            "'; DROP TABLE users; --",
            &"x".repeat(64),
        ] {
            assert!(check_username(good).is_ok(), "{good:?}");
        }
    }
}
