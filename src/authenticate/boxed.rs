//! Any authenticator behind one pointer.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::authenticate::{Authenticator, Credential};
use crate::boxed::clone_as;
use crate::error::Error;
use crate::principal::Principal;

/// Any [`Authenticator`] (a chain included), boxed: what a
/// [`Gate`](crate::Gate) holds, so neither it nor the layers it makes name
/// the authenticators inside. Cheap to clone; each authentication boxes its
/// future once.
#[derive(Clone)]
pub struct BoxedAuthenticator {
    inner: Arc<dyn DynAuthenticator>,
}

trait DynAuthenticator: Send + Sync + 'static {
    /// The boxed type, for `Debug`.
    fn type_name(&self) -> &'static str;
    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Principal, Error>>;
}

impl<A: Authenticator> DynAuthenticator for A {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<A>()
    }

    fn authenticate<'a>(
        &'a self,
        credential: &'a Credential,
    ) -> BoxFuture<'a, Result<Principal, Error>> {
        Box::pin(Authenticator::authenticate(self, credential))
    }
}

impl BoxedAuthenticator {
    /// Boxes `authenticator` (one that is already boxed is kept as is).
    pub fn new<A: Authenticator>(authenticator: A) -> Self {
        clone_as(&authenticator).unwrap_or_else(|| Self {
            inner: Arc::new(authenticator),
        })
    }
}

impl Authenticator for BoxedAuthenticator {
    async fn authenticate(&self, credential: &Credential) -> Result<Principal, Error> {
        self.inner.authenticate(credential).await
    }
}

impl fmt::Debug for BoxedAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxedAuthenticator")
            .field(&self.inner.type_name())
            .finish()
    }
}
