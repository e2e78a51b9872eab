//! Any failure limiter behind one pointer.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::boxed::clone_as;
use crate::error::Error;
use crate::limit::{Admission, Attempt, FailureLimiter};

/// Any [`FailureLimiter`], boxed: what a [`Gate`](crate::Gate) holds. Cheap
/// to clone; clones share the limiter. Its errors are backend [`Error`]s.
#[derive(Clone)]
pub struct BoxedFailureLimiter {
    inner: Arc<dyn DynFailureLimiter>,
}

trait DynFailureLimiter: Send + Sync + 'static {
    /// The boxed type, for `Debug`.
    fn type_name(&self) -> &'static str;
    fn admit<'a>(
        &'a self,
        account: &'a str,
        client: Option<IpAddr>,
    ) -> BoxFuture<'a, Result<Admission, Error>>;
    fn record<'a>(
        &'a self,
        account: &'a str,
        client: Option<IpAddr>,
        attempt: Attempt,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

impl<L: FailureLimiter> DynFailureLimiter for L {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<L>()
    }

    fn admit<'a>(
        &'a self,
        account: &'a str,
        client: Option<IpAddr>,
    ) -> BoxFuture<'a, Result<Admission, Error>> {
        Box::pin(async move {
            FailureLimiter::admit(self, account, client)
                .await
                .map_err(Error::backend)
        })
    }

    fn record<'a>(
        &'a self,
        account: &'a str,
        client: Option<IpAddr>,
        attempt: Attempt,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            FailureLimiter::record(self, account, client, attempt)
                .await
                .map_err(Error::backend)
        })
    }
}

impl BoxedFailureLimiter {
    /// Boxes `limiter` (one that is already boxed is kept as is).
    pub fn new<L: FailureLimiter>(limiter: L) -> Self {
        clone_as(&limiter).unwrap_or_else(|| Self {
            inner: Arc::new(limiter),
        })
    }
}

impl FailureLimiter for BoxedFailureLimiter {
    type Error = Error;

    async fn admit(&self, account: &str, client: Option<IpAddr>) -> Result<Admission, Error> {
        self.inner.admit(account, client).await
    }

    async fn record(
        &self,
        account: &str,
        client: Option<IpAddr>,
        attempt: Attempt,
    ) -> Result<(), Error> {
        self.inner.record(account, client, attempt).await
    }
}

impl fmt::Debug for BoxedFailureLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxedFailureLimiter")
            .field(&self.inner.type_name())
            .finish()
    }
}
