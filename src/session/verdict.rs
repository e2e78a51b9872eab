//! What the message pipeline decides about a message.

use std::convert::Infallible;

use axum::extract::ws::Message;
use tower::util::BoxCloneSyncService;
use tower_service::Service;

use crate::audit::kind::{EventKind, Outcome};
use crate::boxed::clone_as;
use crate::session::close::Close;
use crate::session::inbound::Inbound;

/// Any message pipeline, behind one type: what a
/// [`SocketGate`](crate::socket::SocketGate) holds, so neither the gate
/// nor the application's state names the layers inside.
pub type BoxedPipeline = BoxCloneSyncService<Inbound, Verdict, Infallible>;

/// A verdict that must be waited for, boxed: what a layer returns when its
/// work awaits the user's verifier or store, whose futures are their types.
pub(crate) type BoxedVerdict =
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
