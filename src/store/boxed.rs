//! Stores behind one pointer, so the types that hold them (a
//! [`Registry`](crate::socket::Registry), a [`Gate`](crate::Gate)) name no
//! store.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::BoxFuture;

use crate::boxed::already_boxed;
use crate::error::Error;
use crate::principal::Principal;
use crate::store::{Revocation, RevocationStore, TicketDigest, TicketStore};

/// Any [`RevocationStore`], boxed. Cheap to clone; clones share the store.
/// Its errors are backend [`Error`]s.
#[derive(Clone)]
pub struct BoxedRevocationStore {
    inner: Arc<dyn DynRevocationStore>,
    name: &'static str,
}

trait DynRevocationStore: Send + Sync + 'static {
    fn revoke(&self, revocation: Revocation) -> BoxFuture<'_, Result<(), Error>>;
    fn is_revoked<'a>(
        &'a self,
        principal: &'a Principal,
        session_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, Error>>;
}

impl<R: RevocationStore> DynRevocationStore for R {
    fn revoke(&self, revocation: Revocation) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            RevocationStore::revoke(self, revocation)
                .await
                .map_err(Error::backend)
        })
    }

    fn is_revoked<'a>(
        &'a self,
        principal: &'a Principal,
        session_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            RevocationStore::is_revoked(self, principal, session_id)
                .await
                .map_err(Error::backend)
        })
    }
}

impl BoxedRevocationStore {
    /// Boxes `store` (a store that is already boxed is kept as is).
    pub fn new<R: RevocationStore>(store: R) -> Self {
        already_boxed(&store).unwrap_or_else(|| Self {
            inner: Arc::new(store),
            name: std::any::type_name::<R>(),
        })
    }
}

impl RevocationStore for BoxedRevocationStore {
    type Error = Error;

    async fn revoke(&self, revocation: Revocation) -> Result<(), Error> {
        self.inner.revoke(revocation).await
    }

    async fn is_revoked(
        &self,
        principal: &Principal,
        session_id: Option<&str>,
    ) -> Result<bool, Error> {
        self.inner.is_revoked(principal, session_id).await
    }
}

impl fmt::Debug for BoxedRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxedRevocationStore")
            .field(&self.name)
            .finish()
    }
}

/// Any [`TicketStore`], boxed. Cheap to clone; clones share the store. Its
/// errors are backend [`Error`]s.
#[derive(Clone)]
pub struct BoxedTicketStore {
    inner: Arc<dyn DynTicketStore>,
    name: &'static str,
}

trait DynTicketStore: Send + Sync + 'static {
    fn insert(
        &self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
    ) -> BoxFuture<'_, Result<(), Error>>;
    fn take<'a>(
        &'a self,
        digest: &'a TicketDigest,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<Principal>, Error>>;
}

impl<S: TicketStore> DynTicketStore for S {
    fn insert(
        &self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
    ) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            TicketStore::insert(self, digest, principal, expires_at)
                .await
                .map_err(Error::backend)
        })
    }

    fn take<'a>(
        &'a self,
        digest: &'a TicketDigest,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<Principal>, Error>> {
        Box::pin(async move {
            TicketStore::take(self, digest, now)
                .await
                .map_err(Error::backend)
        })
    }
}

impl BoxedTicketStore {
    /// Boxes `store` (a store that is already boxed is kept as is).
    pub fn new<S: TicketStore>(store: S) -> Self {
        already_boxed(&store).unwrap_or_else(|| Self {
            inner: Arc::new(store),
            name: std::any::type_name::<S>(),
        })
    }
}

impl TicketStore for BoxedTicketStore {
    type Error = Error;

    async fn insert(
        &self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
    ) -> Result<(), Error> {
        self.inner.insert(digest, principal, expires_at).await
    }

    async fn take(
        &self,
        digest: &TicketDigest,
        now: SystemTime,
    ) -> Result<Option<Principal>, Error> {
        self.inner.take(digest, now).await
    }
}

impl fmt::Debug for BoxedTicketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxedTicketStore").field(&self.name).finish()
    }
}
