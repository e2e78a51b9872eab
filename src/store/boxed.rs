//! Stores behind one pointer, so the types that hold them (a
//! [`Registry`](crate::socket::Registry), a [`Gate`](crate::Gate)) name no
//! store.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::BoxFuture;

use crate::boxed::clone_as;
use crate::error::Error;
use crate::principal::Principal;
use crate::store::{Revocation, RevocationStore, StoreNotice, TicketDigest, TicketStore};

/// Any [`RevocationStore`], boxed. Cheap to clone; clones share the store.
/// Its errors are backend [`Error`]s.
#[derive(Clone)]
pub struct BoxedRevocationStore {
    inner: Arc<dyn DynRevocationStore>,
}

trait DynRevocationStore: Send + Sync + 'static {
    /// The boxed type, for `Debug`.
    fn type_name(&self) -> &'static str;
    fn revoke(&self, revocation: Revocation) -> BoxFuture<'_, Result<(), Error>>;
    fn is_revoked<'a>(
        &'a self,
        principal: &'a Principal,
        session_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, Error>>;
    fn revoked_now(
        &self,
        principal: &Principal,
        session_id: Option<&str>,
    ) -> Option<Result<bool, Error>>;
    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<StoreNotice>>;
}

impl<R: RevocationStore> DynRevocationStore for R {
    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<StoreNotice>> {
        RevocationStore::notices(self)
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<R>()
    }

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

    fn revoked_now(
        &self,
        principal: &Principal,
        session_id: Option<&str>,
    ) -> Option<Result<bool, Error>> {
        RevocationStore::revoked_now(self, principal, session_id)
            .map(|answer| answer.map_err(Error::backend))
    }
}

impl BoxedRevocationStore {
    /// Boxes `store` (a store that is already boxed is kept as is).
    pub fn new<R: RevocationStore>(store: R) -> Self {
        clone_as(&store).unwrap_or_else(|| Self {
            inner: Arc::new(store),
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
        // A store that answers at once (the built-in ones) is asked
        // directly rather than through a boxed future.
        match self.inner.revoked_now(principal, session_id) {
            Some(answer) => answer,
            None => self.inner.is_revoked(principal, session_id).await,
        }
    }

    fn revoked_now(
        &self,
        principal: &Principal,
        session_id: Option<&str>,
    ) -> Option<Result<bool, Error>> {
        self.inner.revoked_now(principal, session_id)
    }

    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<StoreNotice>> {
        self.inner.notices()
    }
}

impl fmt::Debug for BoxedRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxedRevocationStore")
            .field(&self.inner.type_name())
            .finish()
    }
}

/// Any [`TicketStore`], boxed. Cheap to clone; clones share the store. Its
/// errors are backend [`Error`]s.
#[derive(Clone)]
pub struct BoxedTicketStore {
    inner: Arc<dyn DynTicketStore>,
}

trait DynTicketStore: Send + Sync + 'static {
    /// The boxed type, for `Debug`.
    fn type_name(&self) -> &'static str;
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
    fn insert_within(
        &self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
        now: SystemTime,
        max: usize,
    ) -> BoxFuture<'_, Result<bool, Error>>;
}

impl<S: TicketStore> DynTicketStore for S {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<S>()
    }

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

    fn insert_within(
        &self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
        now: SystemTime,
        max: usize,
    ) -> BoxFuture<'_, Result<bool, Error>> {
        Box::pin(async move {
            TicketStore::insert_within(self, digest, principal, expires_at, now, max)
                .await
                .map_err(Error::backend)
        })
    }
}

impl BoxedTicketStore {
    /// Boxes `store` (a store that is already boxed is kept as is).
    pub fn new<S: TicketStore>(store: S) -> Self {
        clone_as(&store).unwrap_or_else(|| Self {
            inner: Arc::new(store),
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

    async fn insert_within(
        &self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
        now: SystemTime,
        max: usize,
    ) -> Result<bool, Error> {
        self.inner
            .insert_within(digest, principal, expires_at, now, max)
            .await
    }
}

impl fmt::Debug for BoxedTicketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxedTicketStore")
            .field(&self.inner.type_name())
            .finish()
    }
}
