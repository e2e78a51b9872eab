//! The audit layer of the message pipeline.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::{AuditEvent, Auditor, Outcome};
use crate::session::{Decision, Inbound, Session, Verdict};

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
pub struct AuditService<S> {
    inner: S,
    auditor: Auditor,
    record_allowed: bool,
}

inner_service_accessors!(AuditService<S>);

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
    type Service = AuditService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuditService {
            inner,
            auditor: self.auditor.clone(),
            record_allowed: self.record_allowed,
        }
    }
}

pin_project! {
    /// Response future of [`AuditService`].
    pub struct AuditFuture<F> {
        #[pin]
        inner: F,
        session: Arc<Session>,
        auditor: Auditor,
        record_allowed: bool,
    }
}

fn record(auditor: &Auditor, session: &Session, decision: &Decision) {
    auditor.record(&AuditEvent::decision(session, decision));
}

impl<F> Future for AuditFuture<F>
where
    F: Future<Output = Result<Verdict, Infallible>>,
{
    type Output = Result<Verdict, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let verdict = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(verdict)) => verdict,
            Poll::Ready(Err(never)) => match never {},
        };
        match &verdict {
            Verdict::Deliver(inbound) => {
                if *this.record_allowed {
                    let decision = Decision::message(Outcome::Allow, None, inbound.action());
                    record(this.auditor, this.session, &decision);
                }
            }
            Verdict::Reply { decision, .. } | Verdict::Close { decision, .. } => {
                record(this.auditor, this.session, decision);
            }
        }
        Poll::Ready(Ok(verdict))
    }
}

impl<S> Service<Inbound> for AuditService<S>
where
    S: Service<Inbound, Response = Verdict, Error = Infallible>,
{
    type Response = Verdict;
    type Error = Infallible;
    type Future = AuditFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, inbound: Inbound) -> Self::Future {
        let session = inbound.session().clone();
        AuditFuture {
            inner: self.inner.call(inbound),
            session,
            auditor: self.auditor.clone(),
            record_allowed: self.record_allowed,
        }
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
