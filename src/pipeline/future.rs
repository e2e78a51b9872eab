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
    ///
    /// `A` is what happens to the verdict once it comes: nothing (`()`,
    /// which takes no room, so the futures nested by a pipeline grow by no
    /// more than their states), or the audit's record.
    pub struct ResponseFuture<F, A = ()> {
        #[pin]
        state: State<F, A>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F, A> {
        // The inner service's future; `after` sees its verdict.
        Inner { #[pin] inner: F, after: A },
        // Answered without the inner service.
        Answered { verdict: Option<Verdict> },
        // Work of the service's own first (a token check, a policy): boxed
        // once, as the verifier's, the store's and the policy's futures are
        // the application's types.
        Boxed { future: BoxedVerdict },
    }
}

mod sealed {
    use crate::session::Verdict;

    /// What a [`ResponseFuture`](super::ResponseFuture) does with the
    /// verdict of its inner future. Sealed: `()` or the audit's record.
    pub trait After {
        /// Whether there is anything to do: without, the inner future's
        /// poll is handed back as it is.
        const ACTS: bool = true;

        fn after(&self, verdict: &Verdict);
    }

    impl After for () {
        const ACTS: bool = false;

        fn after(&self, _verdict: &Verdict) {}
    }
}

use self::sealed::After;

/// What the audit service records once the verdict comes. (Named in
/// [`Audit`](super::Audit)'s future type; nothing to do with it outside.)
#[derive(Debug)]
pub struct Recording {
    pub(super) session: Arc<Session>,
    pub(super) auditor: Auditor,
    pub(super) record_allowed: bool,
}

impl After for Recording {
    fn after(&self, verdict: &Verdict) {
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
            state: State::Inner { inner, after: () },
        }
    }
}

impl<F> ResponseFuture<F, Recording> {
    /// The inner service's future, its verdict recorded.
    pub(super) fn audited(inner: F, audit: Recording) -> Self {
        Self {
            state: State::Inner {
                inner,
                after: audit,
            },
        }
    }
}

impl<F, A> ResponseFuture<F, A> {
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

impl<F, A> Future for ResponseFuture<F, A>
where
    F: Future<Output = Result<Verdict, Infallible>>,
    A: After,
{
    type Output = Result<Verdict, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Inner { inner, .. } if !A::ACTS => inner.poll(cx),
            StateProjection::Inner { inner, after } => {
                let Poll::Ready(Ok(verdict)) = inner.poll(cx) else {
                    return Poll::Pending;
                };
                after.after(&verdict);
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

impl<F, A> std::fmt::Debug for ResponseFuture<F, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
