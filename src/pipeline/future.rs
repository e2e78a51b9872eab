//! The response future of every service of the pipeline.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::audit::{AuditEvent, Auditor, Outcome};
use crate::session::{BoxedVerdict, Decision, Session, Verdict};

pin_project! {
    /// Response future of the pipeline's services ([`Audit`](super::Audit),
    /// [`Refresh`](super::Refresh), [`MessageToken`](super::MessageToken),
    /// [`RoleGuard`](super::RoleGuard), [`AsyncRoleGuard`](super::AsyncRoleGuard)):
    /// the inner service's own future where a message passes through
    /// untouched, so the common path allocates nothing.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F> {
        // The inner service's future, as it is.
        Inner { #[pin] inner: F },
        // The inner service's future, its verdict recorded when it comes.
        Audited { #[pin] inner: F, audit: Recording },
        // Answered without the inner service.
        Answered { verdict: Option<Verdict> },
        // Work of the service's own first (a token check, a policy): boxed
        // once, as the verifier's, the store's and the policy's futures are
        // the application's types.
        Boxed { future: BoxedVerdict },
    }
}

/// What the audit service records once the verdict comes.
pub(super) struct Recording {
    pub(super) session: Arc<Session>,
    pub(super) auditor: Auditor,
    pub(super) record_allowed: bool,
}

impl Recording {
    fn record(&self, verdict: &Verdict) {
        let record = |decision: &Decision| {
            self.auditor
                .record(&AuditEvent::decision(&self.session, decision));
        };
        match verdict {
            Verdict::Deliver(inbound) => {
                if self.record_allowed {
                    record(&Decision::message(Outcome::Allow, None, inbound.action()));
                }
            }
            Verdict::Reply { decision, .. } | Verdict::Close { decision, .. } => record(decision),
        }
    }
}

impl<F> ResponseFuture<F> {
    /// The inner service's future.
    pub(super) fn inner(inner: F) -> Self {
        Self {
            state: State::Inner { inner },
        }
    }

    /// The inner service's future, its verdict recorded.
    pub(super) fn audited(inner: F, audit: Recording) -> Self {
        Self {
            state: State::Audited { inner, audit },
        }
    }

    /// A verdict reached without the inner service.
    pub(super) fn answered(verdict: Verdict) -> Self {
        Self {
            state: State::Answered {
                verdict: Some(verdict),
            },
        }
    }

    /// Work of the service's own.
    pub(super) fn boxed(future: BoxedVerdict) -> Self {
        Self {
            state: State::Boxed { future },
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Verdict, Infallible>>,
{
    type Output = Result<Verdict, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Inner { inner } => inner.poll(cx),
            StateProjection::Audited { inner, audit } => {
                let Poll::Ready(Ok(verdict)) = inner.poll(cx) else {
                    return Poll::Pending;
                };
                audit.record(&verdict);
                Poll::Ready(Ok(verdict))
            }
            StateProjection::Answered { verdict } => match verdict.take() {
                Some(verdict) => Poll::Ready(Ok(verdict)),
                None => panic!("ResponseFuture polled after completion"),
            },
            StateProjection::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
