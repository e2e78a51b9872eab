//! The audit layer of the message pipeline.

use std::convert::Infallible;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::audit::Auditor;
use crate::pipeline::future::{Recording, ResponseFuture};
use crate::session::{Inbound, Verdict};

/// Records the decisions of the layers inside it: every refused message,
/// every refresh, and — only when [`record_allowed`](Self::record_allowed)
/// is on — every delivered message.
///
/// Put it outermost in the pipeline: it sees what the layers it wraps
/// decide.
#[derive(Debug, Clone)]
pub struct AuditLayer {
    auditor: Auditor,
    record_allowed: bool,
}

/// The service made by [`AuditLayer`].
#[derive(Debug, Clone)]
pub struct Audit<S> {
    inner: S,
    auditor: Auditor,
    record_allowed: bool,
}

inner_service_accessors!(Audit<S>);

impl AuditLayer {
    /// Records to `auditor`.
    pub fn new(auditor: Auditor) -> Self {
        Self {
            auditor,
            record_allowed: false,
        }
    }

    /// Also records every delivered message (one event per message: mind
    /// the volume). Defaults to off.
    pub fn record_allowed(mut self, record_allowed: bool) -> Self {
        self.record_allowed = record_allowed;
        self
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = Audit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Audit {
            inner,
            auditor: self.auditor.clone(),
            record_allowed: self.record_allowed,
        }
    }
}

impl<S> Service<Inbound> for Audit<S>
where
    S: Service<Inbound, Response = Verdict, Error = Infallible>,
{
    type Response = Verdict;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future, Recording>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, inbound: Inbound) -> Self::Future {
        let audit = Recording {
            session: inbound.session().clone(),
            auditor: self.auditor.clone(),
            record_allowed: self.record_allowed,
        };
        ResponseFuture::audited(self.inner.call(inbound), audit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapped_service_can_be_reached_and_taken_out() {
        let mut service = AuditLayer::new(Auditor::tracing()).layer(7_u32);
        assert_eq!(*service.get_ref(), 7);
        *service.get_mut() = 8;
        assert_eq!(service.into_inner(), 8);
    }
}
