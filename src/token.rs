//! The token traits: turn a principal into a token, and a token back into a
//! principal. [`crate::jwt`] holds the built-in JWT implementations.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::BoxFuture;

use crate::boxed::clone_as;
use crate::error::Error;
use crate::principal::Principal;
use crate::secret::Secret;

/// Verifies a token and says whose it is.
///
/// Implement it to plug in another token format or an introspection
/// endpoint; [`JwtVerifier`](crate::jwt::JwtVerifier) is the built-in.
///
/// # Errors
///
/// `Err` with [`ErrorKind::Token`](crate::ErrorKind::Token) for a token that
/// is not valid (the handshake answers 401), and with
/// [`ErrorKind::Backend`](crate::ErrorKind::Backend) when the verifier could
/// not decide (503).
pub trait TokenVerifier: Clone + Send + Sync + 'static {
    /// Verifies `token` and returns the principal it names.
    fn verify(&self, token: &str) -> impl Future<Output = Result<Principal, Error>> + Send;
}

/// Issues tokens for authenticated principals.
///
/// [`JwtIssuer`](crate::jwt::JwtIssuer) is the built-in.
pub trait TokenIssuer: Clone + Send + Sync + 'static {
    /// Issues a token for `principal`.
    fn issue(
        &self,
        principal: &Principal,
    ) -> impl Future<Output = Result<IssuedToken, Error>> + Send;
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    token: Secret,
    expires_at: SystemTime,
    token_id: Option<String>,
}

impl IssuedToken {
    /// Bundles a token with its expiry and id.
    pub fn new(token: Secret, expires_at: SystemTime, token_id: Option<String>) -> Self {
        Self {
            token,
            expires_at,
            token_id,
        }
    }

    /// The token. Hand it to the client; never log it.
    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// When the token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The token id (`jti`), if the format has one.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }
}

/// Any [`TokenVerifier`] behind one pointer: what a
/// [`Gate`](crate::Gate) holds, so its type names no verifier. Cheap to
/// clone; each verification boxes its future once.
#[derive(Clone)]
pub struct BoxedVerifier {
    inner: Arc<dyn DynVerifier>,
}

trait DynVerifier: Send + Sync + 'static {
    /// The boxed type, for `Debug`.
    fn type_name(&self) -> &'static str;
    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Principal, Error>>;
}

impl<V: TokenVerifier> DynVerifier for V {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<V>()
    }

    fn verify<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Principal, Error>> {
        Box::pin(TokenVerifier::verify(self, token))
    }
}

impl BoxedVerifier {
    /// Boxes `verifier` (a verifier that is already boxed is kept as is).
    pub fn new<V: TokenVerifier>(verifier: V) -> Self {
        clone_as(&verifier).unwrap_or_else(|| Self {
            inner: Arc::new(verifier),
        })
    }
}

impl TokenVerifier for BoxedVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, Error> {
        self.inner.verify(token).await
    }
}

impl fmt::Debug for BoxedVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxedVerifier")
            .field(&self.inner.type_name())
            .finish()
    }
}
