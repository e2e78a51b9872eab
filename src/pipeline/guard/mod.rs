//! The role guard: which principal may send which message (see the
//! [pipeline docs](crate::pipeline#the-role-guard)).

mod async_guard;
mod role_policy;

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::ws::{Message, Utf8Bytes};
use serde_json::json;
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::Outcome;
use crate::pipeline::future::ResponseFuture;
use crate::principal::Principal;
use crate::session::{Close, CloseKind, Decision, Inbound, KeptPrincipal, Verdict, reason};

pub use self::async_guard::{AsyncPolicy, AsyncRoleGuard, AsyncRoleGuardLayer};
pub use self::role_policy::{Requirement, RolePolicy};

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

impl OnDeny {
    /// The verdict for a denied `action`: the error reply, or the close.
    fn verdict(self, action: String) -> Verdict {
        let decision =
            Decision::message(Outcome::Deny, Some(reason::FORBIDDEN), Some(action.clone()));
        match self {
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
        }
    }
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
    principal: KeptPrincipal,
}

inner_service_accessors!(RoleGuard<S, P>);

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
            principal: KeptPrincipal::default(),
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
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut inbound: Inbound) -> Self::Future {
        inbound.find_fields();
        let principal = self.principal.of(inbound.session());
        match self.policy.check(principal, &inbound) {
            Access::Allow => ResponseFuture::inner(self.inner.call(inbound)),
            Access::Deny { action } => ResponseFuture::answered(self.on_deny.verdict(action)),
        }
    }
}
