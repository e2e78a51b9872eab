//! The role guard with a policy that has to wait: permissions that live in
//! a database or another service.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::error::Error;
use crate::pipeline::future::ResponseFuture;
use crate::pipeline::guard::{Access, OnDeny};
use crate::principal::Principal;
use crate::session::{Close, CloseKind, Inbound, Verdict, reason};

/// Decides, asynchronously, whether a principal may send a message: the
/// async twin of [`Policy`](crate::pipeline::Policy), as tower's
/// `AsyncPredicate` is of its `Predicate`.
///
/// The future must not borrow the message: take what the decision needs
/// (the action, a room name) before it. Any
/// `Fn(Arc<Principal>, &Inbound) -> impl Future<Output = Result<Access, Error>>`
/// is an async policy too.
///
/// # Errors
///
/// `Err` when the policy could not decide (its database is down): the
/// socket closes with 1011 `backend unavailable` and the refusal is
/// audited. A failed check never lets a message through.
pub trait AsyncPolicy: Clone + Send + Sync + 'static {
    /// The decision for `message` sent by `principal`.
    fn check(
        &self,
        principal: Arc<Principal>,
        message: &Inbound,
    ) -> impl Future<Output = Result<Access, Error>> + Send + 'static;
}

impl<F, Fut> AsyncPolicy for F
where
    F: Fn(Arc<Principal>, &Inbound) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Access, Error>> + Send + 'static,
{
    fn check(
        &self,
        principal: Arc<Principal>,
        message: &Inbound,
    ) -> impl Future<Output = Result<Access, Error>> + Send + 'static {
        self(principal, message)
    }
}

/// Applies an [`AsyncPolicy`] to every message.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use wsgate::pipeline::{Access, AsyncRoleGuardLayer};
/// use wsgate::session::Inbound;
/// use wsgate::Principal;
///
/// // Who may post in which room is kept in a database.
/// async fn may_post(subject: &str, room: &str) -> Result<bool, wsgate::Error> {
///     Ok(subject == "alice" || room == "lobby")
/// }
///
/// let guard = AsyncRoleGuardLayer::new(|principal: Arc<Principal>, message: &Inbound| {
///     let room = message.json_str("room").unwrap_or("").to_owned();
///     async move {
///         if may_post(principal.subject(), &room).await? {
///             Ok(Access::Allow)
///         } else {
///             Ok(Access::deny(room))
///         }
///     }
/// });
/// # let _ = guard;
/// ```
#[derive(Debug, Clone)]
pub struct AsyncRoleGuardLayer<P> {
    policy: P,
    on_deny: OnDeny,
}

/// The service made by [`AsyncRoleGuardLayer`].
#[derive(Debug, Clone)]
pub struct AsyncRoleGuard<S, P> {
    inner: S,
    policy: P,
    on_deny: OnDeny,
}

inner_service_accessors!(AsyncRoleGuard<S, P>);

impl<P: AsyncPolicy> AsyncRoleGuardLayer<P> {
    /// Guards messages with `policy`; denied messages get a reply.
    pub fn new(policy: P) -> Self {
        Self {
            policy,
            on_deny: OnDeny::Reply,
        }
    }

    /// What happens to a denied message. Defaults to [`OnDeny::Reply`].
    pub fn on_deny(mut self, on_deny: OnDeny) -> Self {
        self.on_deny = on_deny;
        self
    }
}

impl<S, P: Clone> Layer<S> for AsyncRoleGuardLayer<P> {
    type Service = AsyncRoleGuard<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        AsyncRoleGuard {
            inner,
            policy: self.policy.clone(),
            on_deny: self.on_deny,
        }
    }
}

impl<S, P> Service<Inbound> for AsyncRoleGuard<S, P>
where
    S: Service<Inbound, Response = Verdict, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    P: AsyncPolicy,
{
    type Response = Verdict;
    type Error = Infallible;
    // Boxed once: the policy's future is the user's and has no name.
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, inbound: Inbound) -> Self::Future {
        let check = self.policy.check(inbound.session().principal(), &inbound);
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let on_deny = self.on_deny;
        ResponseFuture::boxed(Box::pin(async move {
            match check.await {
                Ok(Access::Allow) => inner.call(inbound).await,
                Ok(Access::Deny { action }) => Ok(on_deny.verdict(action)),
                Err(error) => {
                    tracing::warn!(
                        target: "wsgate::pipeline",
                        error = %error,
                        source = std::error::Error::source(&error).map(tracing::field::display),
                        "the guard's policy could not decide; closing"
                    );
                    let close = Close::new(CloseKind::BackendFailed, reason::BACKEND_FAILED);
                    Ok(Verdict::close_message(close, &inbound, None))
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;
    use crate::pipeline::Deliver;
    use crate::principal::AuthMethod;
    use crate::session::Session;

    fn inbound(text: &str) -> Inbound {
        let principal = Principal::new("alice", AuthMethod::Token).with_roles(["user"]);
        let session = Arc::new(Session::new(principal, None));
        Inbound::new(
            axum::extract::ws::Message::Text(text.to_owned().into()),
            session,
        )
    }

    #[tokio::test]
    async fn allows_denies_and_fails_closed() {
        struct Case {
            name: &'static str,
            room: &'static str,
            expect: &'static str,
        }
        let policy = |_: Arc<Principal>, message: &Inbound| {
            let room = message.json_str("room").unwrap_or("").to_owned();
            async move {
                match room.as_str() {
                    "lobby" => Ok(Access::Allow),
                    "vault" => Ok(Access::deny("vault")),
                    _ => Err(Error::backend("permissions database down")),
                }
            }
        };
        let cases = [
            Case {
                name: "allowed",
                room: "lobby",
                expect: "deliver",
            },
            Case {
                name: "denied",
                room: "vault",
                expect: "reply",
            },
            Case {
                name: "the policy failed",
                room: "elsewhere",
                expect: "close 1011",
            },
        ];
        for case in cases {
            let mut guard = AsyncRoleGuardLayer::new(policy).layer(Deliver);
            let message = inbound(&format!(r#"{{"type":"say","room":"{}"}}"#, case.room));
            let verdict = guard.call(message).now_or_never().unwrap().unwrap();
            let outcome = match verdict {
                Verdict::Deliver(_) => "deliver".to_owned(),
                Verdict::Reply { .. } => "reply".to_owned(),
                Verdict::Close { close, decision } => {
                    assert_eq!(decision.reason, Some(reason::BACKEND_FAILED));
                    format!(
                        "close {}",
                        crate::session::CloseCodes::default().code(close.kind)
                    )
                }
            };
            assert_eq!(outcome, case.expect, "{}", case.name);
        }
    }
}
