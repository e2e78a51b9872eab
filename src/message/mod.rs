//! Stage two: the message pipeline. Every inbound message of a live
//! connection passes a tower `Service<Inbound, Response = Verdict>` before
//! the application sees it.
//!
//! The pipeline is built from layers, in the order you choose, around
//! [`Deliver`] (which hands the message to the application):
//!
//! | layer | does |
//! |---|---|
//! | [`AuditLayer`](crate::audit::AuditLayer) | records every refusal (and, if asked, every delivery) |
//! | [`RefreshLayer`] | takes in-band token refreshes: extends the session or closes with 4401 |
//! | [`MessageTokenLayer`] | requires a valid token of the session's subject in each message, else 4401 |
//! | [`RoleGuardLayer`](crate::guard::RoleGuardLayer) | allows a message by role or scope, else an error reply or 4403 |
//!
//! # Order
//!
//! Put the audit layer outermost (it records what the layers inside it
//! decide), then refresh (a refresh message should not need to pass the
//! guard), then the token check, then the guard.
//!
//! # Example
//!
//! A pipeline with a custom policy closure and a custom audit sink:
//!
//! ```
//! use tower::ServiceBuilder;
//! use wsgate::audit::{AuditEvent, AuditLayer, Auditor};
//! use wsgate::guard::{Access, RoleGuardLayer};
//! use wsgate::message::{Deliver, Inbound, RefreshLayer};
//! use wsgate::jwt::{Algorithm, JwtVerifier, VerificationKey};
//! use wsgate::store::InMemoryRevocationStore;
//! use wsgate::Principal;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = JwtVerifier::builder()
//!     .key(VerificationKey::hmac(b"a-secret-of-at-least-thirty-two-bytes", Algorithm::HS256)?)
//!     .build()?;
//! let auditor = Auditor::new(|event: &AuditEvent| eprintln!("{}", event.to_json()));
//! let only_moderators_delete = |principal: &Principal, message: &Inbound| {
//!     match message.json_str("type") {
//!         Some("delete") if !principal.has_role("moderator") => Access::deny("delete"),
//!         _ => Access::Allow,
//!     }
//! };
//! let pipeline = ServiceBuilder::new()
//!     .layer(AuditLayer::new(auditor))
//!     .layer(RefreshLayer::new(verifier, InMemoryRevocationStore::new()))
//!     .layer(RoleGuardLayer::new(only_moderators_delete))
//!     .service(Deliver);
//! # let _ = pipeline;
//! # Ok(())
//! # }
//! ```

mod extract;
mod refresh;
mod token;

use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::extract::ws::Message;
use serde_json::Value;
use tower_service::Service;

use crate::audit::{EventKind, Outcome};
use crate::socket::{Close, Session};

pub use self::extract::{JsonField, TokenExtractor};
pub use self::refresh::{RefreshLayer, RefreshService};
pub use self::token::{DEFAULT_CACHE_CAPACITY, MessageToken, MessageTokenLayer};

/// One inbound data message (text or binary) of a live connection, with its
/// session.
pub struct Inbound {
    message: Message,
    session: Arc<Session>,
    json: OnceLock<Option<Value>>,
}

impl Inbound {
    /// Wraps `message` of `session`.
    pub fn new(message: Message, session: Arc<Session>) -> Self {
        Self {
            message,
            session,
            json: OnceLock::new(),
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Consumes the wrapper, returning the message.
    pub fn into_message(self) -> Message {
        self.message
    }

    /// The connection's session.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The text, for a text message.
    pub fn text(&self) -> Option<&str> {
        match &self.message {
            Message::Text(text) => Some(text.as_str()),
            _ => None,
        }
    }

    /// The text parsed as JSON (once, however many layers ask), when it is
    /// a JSON object.
    pub fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| {
                self.text()
                    .and_then(|text| serde_json::from_str::<Value>(text).ok())
                    .filter(Value::is_object)
            })
            .as_ref()
    }

    /// A string field of the JSON object.
    pub fn json_str(&self, field: &str) -> Option<&str> {
        self.json()?.get(field)?.as_str()
    }
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The message may carry a token: show its size, not its content.
        let size = match &self.message {
            Message::Text(text) => text.len(),
            Message::Binary(bytes) => bytes.len(),
            _ => 0,
        };
        f.debug_struct("Inbound")
            .field("connection", &self.session.id())
            .field("bytes", &size)
            .finish_non_exhaustive()
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

/// The `type` of a JSON message, for audit events.
pub(crate) fn action_of(inbound: &Inbound) -> Option<String> {
    inbound.json_str("type").map(str::to_owned)
}
