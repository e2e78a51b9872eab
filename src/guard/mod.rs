//! The role guard: which principal may send which message.
//!
//! A [`Policy`] looks at the principal and the message and answers
//! [`Access::Allow`] or [`Access::Deny`]. [`RolePolicy`] is the built-in: it
//! classifies a message into an action (by default its JSON `type`; by
//! room or channel with [`RolePolicy::by_field`]) and requires roles or
//! scopes for it. Any `Fn(&Principal, &Inbound) -> Access` is a policy too.
//!
//! A denied message gets an error reply and the socket stays open
//! ([`OnDeny::Reply`], the default), or the socket closes with 4403
//! `forbidden` ([`OnDeny::Close`]).
//!
//! # Example
//!
//! ```
//! use wsgate::guard::{OnDeny, Requirement, RoleGuardLayer, RolePolicy};
//!
//! // `admin.*` needs the role `admin`, everything else the role `user`.
//! let policy = RolePolicy::by_type()
//!     .prefix("admin.", Requirement::any_role(["admin"]))
//!     .otherwise(Requirement::any_role(["user"]));
//! let guard = RoleGuardLayer::new(policy).on_deny(OnDeny::Reply);
//! # let _ = guard;
//! ```

mod policy;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::ws::{Message, Utf8Bytes};
use pin_project_lite::pin_project;
use serde_json::json;
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::Outcome;
use crate::message::{Decision, Inbound, Verdict};
use crate::principal::Principal;
use crate::socket::close::{Close, CloseKind, reason};

pub use self::policy::{Requirement, RolePolicy};

/// What a policy says of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The message may pass.
    Allow,
    /// The message is refused; `action` names what was refused (the
    /// message type), for the error reply and the audit.
    Deny {
        /// The refused action.
        action: String,
    },
}

impl Access {
    /// A denial of `action`.
    pub fn deny(action: impl Into<String>) -> Self {
        Access::Deny {
            action: action.into(),
        }
    }
}

/// Decides whether a principal may send a message.
pub trait Policy: Clone + Send + Sync + 'static {
    /// The decision for `message` sent by `principal`.
    fn check(&self, principal: &Principal, message: &Inbound) -> Access;
}

impl<F> Policy for F
where
    F: Fn(&Principal, &Inbound) -> Access + Clone + Send + Sync + 'static,
{
    fn check(&self, principal: &Principal, message: &Inbound) -> Access {
        self(principal, message)
    }
}

/// What happens to a denied message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDeny {
    /// Reply `{"type":"error","code":"forbidden","ref":"<action>"}`; the
    /// socket stays open. The default.
    #[default]
    Reply,
    /// Close the socket with 4403 `forbidden`.
    Close,
}

/// Applies a [`Policy`] to every message.
#[derive(Debug, Clone)]
pub struct RoleGuardLayer<P> {
    policy: P,
    on_deny: OnDeny,
}

/// The service made by [`RoleGuardLayer`].
#[derive(Debug, Clone)]
pub struct RoleGuard<S, P> {
    inner: S,
    policy: P,
    on_deny: OnDeny,
}

impl<P: Policy> RoleGuardLayer<P> {
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

impl<S, P: Clone> Layer<S> for RoleGuardLayer<P> {
    type Service = RoleGuard<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RoleGuard {
            inner,
            policy: self.policy.clone(),
            on_deny: self.on_deny,
        }
    }
}

pin_project! {
    /// Response future of [`RoleGuard`].
    pub struct GuardFuture<F> {
        #[pin]
        state: GuardState<F>,
    }
}

pin_project! {
    #[project = GuardStateProjection]
    enum GuardState<F> {
        Allowed { #[pin] inner: F },
        Denied { verdict: Option<Verdict> },
    }
}

impl<F> Future for GuardFuture<F>
where
    F: Future<Output = Result<Verdict, Infallible>>,
{
    type Output = Result<Verdict, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            GuardStateProjection::Allowed { inner } => inner.poll(cx),
            GuardStateProjection::Denied { verdict } => match verdict.take() {
                Some(verdict) => Poll::Ready(Ok(verdict)),
                None => panic!("GuardFuture polled after completion"),
            },
        }
    }
}

impl<S, P> Service<Inbound> for RoleGuard<S, P>
where
    S: Service<Inbound, Response = Verdict, Error = Infallible>,
    P: Policy,
{
    type Response = Verdict;
    type Error = Infallible;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, inbound: Inbound) -> Self::Future {
        let principal = inbound.session().principal();
        match self.policy.check(&principal, &inbound) {
            Access::Allow => GuardFuture {
                state: GuardState::Allowed {
                    inner: self.inner.call(inbound),
                },
            },
            Access::Deny { action } => {
                let decision =
                    Decision::message(Outcome::Deny, Some(reason::FORBIDDEN), Some(action.clone()));
                let verdict = match self.on_deny {
                    OnDeny::Reply => {
                        let reply = json!({ "type": "error", "code": "forbidden", "ref": action });
                        Verdict::Reply {
                            reply: Message::Text(Utf8Bytes::from(reply.to_string())),
                            decision,
                        }
                    }
                    OnDeny::Close => Verdict::Close {
                        close: Close::new(CloseKind::Forbidden, reason::FORBIDDEN),
                        decision,
                    },
                };
                GuardFuture {
                    state: GuardState::Denied {
                        verdict: Some(verdict),
                    },
                }
            }
        }
    }
}
