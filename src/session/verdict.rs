//! What the message pipeline decides about a message, and the innermost
//! service of every pipeline.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::extract::ws::Message;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

use crate::boxed::clone_as;
use crate::session::close::Close;
use crate::session::inbound::Inbound;

/// Any message pipeline, behind one type: what a
/// [`SocketGate`](crate::socket::SocketGate) holds, so neither the gate
/// nor the application's state names the layers inside.
pub type BoxedPipeline = BoxCloneSyncService<Inbound, Verdict, Infallible>;

/// A verdict that must be waited for, boxed: what a layer returns when its
/// work awaits the user's verifier or store, whose futures are their types.
pub type BoxedVerdict =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Verdict, Infallible>> + Send>>;

/// Boxes `pipeline` once: one that is already a [`BoxedPipeline`] is kept
/// as it is rather than boxed again.
pub(crate) fn boxed_pipeline<P>(pipeline: P) -> BoxedPipeline
where
    P: Service<Inbound, Response = Verdict, Error = Infallible> + Clone + Send + Sync + 'static,
    P::Future: Send + 'static,
{
    clone_as(&pipeline).unwrap_or_else(|| BoxedPipeline::new(pipeline))
}

/// What a decision is about: the `event` of its audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A handshake was accepted or refused.
    Handshake,
    /// A message was refused (or, when asked for, allowed).
    Message,
    /// An in-band token refresh was accepted or refused.
    Refresh,
    /// Tokens, a subject or a session were revoked.
    Revoke,
    /// wsgate closed a socket.
    Close,
    /// An identity provider's keys were fetched (or the fetch failed).
    Keys,
    /// An identity provider was asked whether a token is active (RFC 7662).
    Introspection,
}

impl EventKind {
    /// The stable name: `handshake`, `message`, `refresh`, `revoke`,
    /// `close`, `keys`, `introspection`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Handshake => "handshake",
            EventKind::Message => "message",
            EventKind::Refresh => "refresh",
            EventKind::Revoke => "revoke",
            EventKind::Close => "close",
            EventKind::Keys => "keys",
            EventKind::Introspection => "introspection",
        }
    }
}

/// Whether a decision let the thing through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Let through.
    Allow,
    /// Refused.
    Deny,
}

impl Outcome {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
        }
    }
}

/// What the pipeline decided about a message.
#[derive(Debug)]
#[non_exhaustive]
pub enum Verdict {
    /// Hand the message to the application.
    Deliver(Inbound),
    /// Do not deliver; answer with `reply` and keep the socket open (a
    /// refused message, or an accepted refresh).
    Reply {
        /// The answer to send.
        reply: Message,
        /// For the audit.
        decision: Decision,
    },
    /// Close the socket.
    Close {
        /// Kind and phrase.
        close: Close,
        /// For the audit.
        decision: Decision,
    },
}

/// A decision taken by a layer, as the audit will record it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// `message` or `refresh`.
    pub event: EventKind,
    /// Allowed or denied.
    pub outcome: Outcome,
    /// A stable phrase.
    pub reason: Option<&'static str>,
    /// The message's action (type), when known.
    pub action: Option<String>,
    /// The fingerprint of the token involved, when there is one.
    pub token: Option<String>,
}

impl Decision {
    /// A decision about a message.
    pub fn message(outcome: Outcome, reason: Option<&'static str>, action: Option<String>) -> Self {
        Self {
            event: EventKind::Message,
            outcome,
            reason,
            action,
            token: None,
        }
    }

    /// A decision about a refresh.
    pub fn refresh(outcome: Outcome, reason: Option<&'static str>) -> Self {
        Self {
            event: EventKind::Refresh,
            outcome,
            reason,
            action: None,
            token: None,
        }
    }

    /// Sets the token fingerprint.
    pub fn with_token(mut self, fingerprint: Option<String>) -> Self {
        self.token = fingerprint;
        self
    }
}

impl Verdict {
    /// Refuses `inbound` by closing the socket with `close`, recording the
    /// close's phrase as the reason of a denied message.
    pub fn close_message(close: Close, inbound: &Inbound, token: Option<String>) -> Self {
        Verdict::Close {
            close,
            decision: Decision::message(Outcome::Deny, Some(close.reason), inbound.action())
                .with_token(token),
        }
    }
}

/// The innermost service of a pipeline: delivers every message to the
/// application.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deliver;

impl Service<Inbound> for Deliver {
    type Response = Verdict;
    type Error = Infallible;
    type Future = Ready<Result<Verdict, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, inbound: Inbound) -> Self::Future {
        ready(Ok(Verdict::Deliver(inbound)))
    }
}
