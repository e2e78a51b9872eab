//! Audit: one structured event per decision, at both stages.
//!
//! Every handshake accepted or refused, every message refused, every refresh,
//! every revocation and every socket wsgate closes becomes one
//! [`AuditEvent`], handed to an [`AuditSink`]. Allowed messages are not
//! recorded one by one unless asked for
//! ([`AuditLayer::record_allowed`](crate::pipeline::AuditLayer::record_allowed)).
//! The stage that decides makes the event; an application recording
//! events of its own starts from [`AuditEvent::new`].
//!
//! With the `metrics` feature, every event also moves the counters listed
//! in [`metrics`], so the audit trail and the dashboards always agree.
//!
//! Built-in sinks: [`TracingAudit`] (the default: a `tracing` event per
//! decision, target `wsgate::audit`) and [`JsonLinesAudit`] (one JSON object
//! a line in a file). Any `Fn(&AuditEvent)` is a sink too.
//!
//! # Example
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use wsgate::audit::{AuditEvent, Auditor};
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let store = seen.clone();
//! let auditor = Auditor::new(move |event: &AuditEvent| {
//!     store.lock().unwrap().push(event.to_json().to_string());
//! });
//! # let _ = auditor;
//! ```
//!
//! # Security
//!
//! An event never holds a token, only its fingerprint (its `jti`, or the
//! first 8 bytes of its SHA-256 in hex). Text fields are escaped by the
//! sinks: a `sub` holding CR/LF or terminal escapes stays on one line.

mod json_lines;
pub mod metrics;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::confirmation::Confirmation;
use crate::principal::{Principal, Transport};
use crate::session::{Close, ConnectionId, Decision, Session};
use crate::store::Revocation;

pub use self::json_lines::JsonLinesAudit;

pub(crate) mod kind;

pub use self::kind::{EventKind, Outcome};

/// One decision.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AuditEvent {
    /// When.
    pub ts: SystemTime,
    /// What about.
    pub event: EventKind,
    /// Allowed or denied.
    pub outcome: Outcome,
    /// A stable phrase saying why (on `deny` and `close`).
    pub reason: Option<&'static str>,
    /// The subject, when known.
    pub sub: Option<String>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The connection, after the upgrade.
    pub conn: Option<ConnectionId>,
    /// How credentials came (on `handshake`).
    pub transport: Option<&'static str>,
    /// The token's fingerprint: its `jti`, or a short hash. Never the token.
    pub token: Option<String>,
    /// The message's action (its type), on `message`; what started the
    /// fetch (`startup`, `refresh`, `unknown-kid`, `no-keys`), on `keys`.
    pub action: Option<String>,
    /// The close code, on `close`.
    pub code: Option<u16>,
    /// How many sockets a revocation closed, on `revoke`.
    pub closed: Option<usize>,
    /// The identity provider, on `keys` and `introspection`.
    pub issuer: Option<String>,
    /// Keys that entered the provider's set, on `keys`.
    pub added: Option<usize>,
    /// Keys that left it, on `keys`.
    pub removed: Option<usize>,
    /// What the token is bound to, on `handshake`: `dpop` for a token
    /// bound to a key whose proof came with it.
    pub binding: Option<&'static str>,
    /// The thumbprint of the DPoP key (public), with `binding: dpop`.
    pub jkt: Option<String>,
    /// The client certificate of the connection, on `handshake`: the
    /// SHA-256 of its DER in lowercase hex, never the certificate.
    pub cert: Option<String>,
}

impl AuditEvent {
    /// An event of `kind` with `outcome`, now, and nothing else known yet.
    pub fn new(event: EventKind, outcome: Outcome) -> Self {
        Self {
            ts: SystemTime::now(),
            event,
            outcome,
            reason: None,
            sub: None,
            peer: None,
            conn: None,
            transport: None,
            token: None,
            action: None,
            code: None,
            closed: None,
            issuer: None,
            added: None,
            removed: None,
            binding: None,
            jkt: None,
            cert: None,
        }
    }

    /// A handshake refused for `reason` (a stable phrase), with the
    /// transport its credentials came by when known.
    pub(crate) fn handshake_denied(
        reason: &'static str,
        transport: Option<Transport>,
        peer: Option<SocketAddr>,
    ) -> Self {
        Self::new(EventKind::Handshake, Outcome::Deny)
            .with_reason(reason)
            .with_transport(transport)
            .with_peer(peer)
    }

    /// A handshake accepted for `principal`, by the transport it came by,
    /// with the binding of its token (its proof was checked by then).
    pub(crate) fn handshake_allowed(principal: &Principal, peer: Option<SocketAddr>) -> Self {
        let mut event = Self::new(EventKind::Handshake, Outcome::Allow)
            .with_sub(principal.subject())
            .with_transport(principal.transport())
            .with_peer(peer)
            .with_token(principal.token_id().map(str::to_owned));
        if let Ok(confirmation) = Confirmation::of(principal) {
            if let Some(jkt) = confirmation.jkt() {
                event.binding = Some("dpop");
                event.jkt = Some(jkt.to_owned());
            } else if confirmation.certificate().is_some() {
                event.binding = Some("certificate");
            }
        }
        event
    }

    /// wsgate closed `session`'s socket with `close`, sending `code`.
    pub(crate) fn closed(session: &Session, close: Close, code: u16) -> Self {
        let principal = session.principal();
        Self::new(EventKind::Close, Outcome::Deny)
            .with_reason(close.reason)
            .with_code(code)
            .with_sub(session.subject())
            .with_peer(session.peer())
            .with_conn(session.id())
            .with_token(principal.token_id().map(str::to_owned))
    }

    /// A layer of the message pipeline decided about a message of
    /// `session`.
    pub(crate) fn decision(session: &Session, decision: &Decision) -> Self {
        let mut event = Self::new(decision.event, decision.outcome)
            .with_sub(session.subject())
            .with_peer(session.peer())
            .with_conn(session.id())
            .with_action(decision.action.clone())
            .with_token(decision.token.clone());
        event.reason = decision.reason;
        event
    }

    /// `revocation` was recorded and closed `closed` live sockets.
    pub(crate) fn revoked(revocation: &Revocation, closed: usize) -> Self {
        let event = Self::new(EventKind::Revoke, Outcome::Allow).with_closed(closed);
        match revocation {
            Revocation::Token(id) => event.with_token(Some(id.clone())),
            Revocation::Subject { subject, .. } => event.with_sub(subject.clone()),
            Revocation::Session(_) => event,
        }
    }

    /// `issuer`'s key set was fetched because of `trigger`: `added` keys
    /// came in, `removed` left.
    #[cfg_attr(not(feature = "oidc"), allow(dead_code))]
    pub(crate) fn keys_fetched(
        issuer: &str,
        trigger: &'static str,
        added: usize,
        removed: usize,
    ) -> Self {
        let mut event = Self::new(EventKind::Keys, Outcome::Allow)
            .with_action(Some(trigger.to_owned()))
            .with_issuer(issuer);
        event.added = Some(added);
        event.removed = Some(removed);
        event
    }

    /// Fetching `issuer`'s keys (or its discovery document) failed for
    /// `reason`.
    #[cfg_attr(not(feature = "oidc"), allow(dead_code))]
    pub(crate) fn keys_failed(issuer: &str, trigger: &'static str, reason: &'static str) -> Self {
        Self::new(EventKind::Keys, Outcome::Deny)
            .with_action(Some(trigger.to_owned()))
            .with_issuer(issuer)
            .with_reason(reason)
    }

    /// `issuer` answered an introspection request: active (`Allow`, with
    /// the subject), inactive (`Deny`, `token inactive`), or no usable
    /// answer (`Deny` with the reason).
    #[cfg_attr(not(feature = "oidc"), allow(dead_code))]
    pub(crate) fn introspected(
        issuer: &str,
        outcome: Outcome,
        reason: Option<&'static str>,
        sub: Option<&str>,
        fingerprint: String,
    ) -> Self {
        let mut event = Self::new(EventKind::Introspection, outcome)
            .with_issuer(issuer)
            .with_token(Some(fingerprint));
        event.reason = reason;
        event.sub = sub.map(str::to_owned);
        event
    }

    /// Sets the identity provider.
    pub fn with_issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.to_owned());
        self
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Sets the subject.
    pub fn with_sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }

    /// Sets the peer address.
    pub fn with_peer(mut self, peer: Option<SocketAddr>) -> Self {
        self.peer = peer;
        self
    }

    /// Sets the connection.
    pub fn with_conn(mut self, conn: ConnectionId) -> Self {
        self.conn = Some(conn);
        self
    }

    /// Sets the transport.
    pub fn with_transport(mut self, transport: Option<Transport>) -> Self {
        self.transport = transport.map(Transport::as_str);
        self
    }

    /// Sets the client certificate's fingerprint (lowercase hex SHA-256).
    pub fn with_cert(mut self, fingerprint: Option<String>) -> Self {
        self.cert = fingerprint;
        self
    }

    /// With the token's fingerprint.
    pub fn with_token(mut self, fingerprint: Option<String>) -> Self {
        self.token = fingerprint;
        self
    }

    /// Sets the action.
    pub fn with_action(mut self, action: Option<String>) -> Self {
        self.action = action;
        self
    }

    /// Sets the close code.
    pub fn with_code(mut self, code: u16) -> Self {
        self.code = Some(code);
        self
    }

    /// Sets the number of sockets closed.
    pub fn with_closed(mut self, closed: usize) -> Self {
        self.closed = Some(closed);
        self
    }

    /// The event as a JSON object: `ts` (RFC 3339), `event`, `outcome`, and
    /// every other field that is known.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert(
            "ts".into(),
            json!(humantime::format_rfc3339_millis(self.ts).to_string()),
        );
        object.insert("event".into(), json!(self.event.as_str()));
        object.insert("outcome".into(), json!(self.outcome.as_str()));
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                object.insert(name.into(), value);
            }
        };
        put("reason", self.reason.map(Value::from));
        put("sub", self.sub.clone().map(Value::from));
        put("peer", self.peer.map(|peer| Value::from(peer.to_string())));
        put("conn", self.conn.map(|conn| Value::from(conn.get())));
        put("transport", self.transport.map(Value::from));
        put("token", self.token.clone().map(Value::from));
        put("action", self.action.clone().map(Value::from));
        put("code", self.code.map(Value::from));
        put("closed", self.closed.map(Value::from));
        put("issuer", self.issuer.clone().map(Value::from));
        put("added", self.added.map(Value::from));
        put("removed", self.removed.map(Value::from));
        put("binding", self.binding.map(Value::from));
        put("jkt", self.jkt.clone().map(Value::from));
        put("cert", self.cert.clone().map(Value::from));
        Value::Object(object)
    }
}

/// Where audit events go. Called on the async runtime for every decision:
/// keep it fast and non-blocking (hand slow work to a thread, as
/// [`JsonLinesAudit`] does).
pub trait AuditSink: Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: &AuditEvent);
}

impl<F> AuditSink for F
where
    F: Fn(&AuditEvent) + Send + Sync + 'static,
{
    fn record(&self, event: &AuditEvent) {
        self(event)
    }
}

/// Both sinks, in order: `(JsonLinesAudit::open(path)?, TracingAudit)`
/// writes the file and the log.
impl<A: AuditSink, B: AuditSink> AuditSink for (A, B) {
    fn record(&self, event: &AuditEvent) {
        self.0.record(event);
        self.1.record(event);
    }
}

/// The default sink: one `tracing` event per decision, target
/// `wsgate::audit`, at INFO (allowed messages at DEBUG).
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAudit;

impl AuditSink for TracingAudit {
    fn record(&self, event: &AuditEvent) {
        // Text that came from a client (sub, action) is recorded with Debug
        // formatting, so control characters are escaped and stay on one line.
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "wsgate::audit",
                    $level,
                    event = event.event.as_str(),
                    outcome = event.outcome.as_str(),
                    reason = event.reason,
                    sub = event.sub.as_deref().map(tracing::field::debug),
                    peer = event.peer.map(tracing::field::display),
                    conn = event.conn.map(|conn| conn.get()),
                    transport = event.transport,
                    token = event.token.as_deref().map(tracing::field::debug),
                    action = event.action.as_deref().map(tracing::field::debug),
                    code = event.code,
                    closed = event.closed,
                    issuer = event.issuer.as_deref().map(tracing::field::debug),
                    added = event.added,
                    removed = event.removed,
                    binding = event.binding,
                    jkt = event.jkt.as_deref().map(tracing::field::debug),
                    cert = event.cert.as_deref(),
                    "{} {}",
                    event.event.as_str(),
                    event.outcome.as_str()
                )
            };
        }
        if event.outcome == Outcome::Allow && event.event == EventKind::Message {
            emit!(tracing::Level::DEBUG);
        } else if event.outcome == Outcome::Deny && event.event == EventKind::Keys {
            // The provider's keys cannot be had: operators must see it.
            emit!(tracing::Level::WARN);
        } else {
            emit!(tracing::Level::INFO);
        }
    }
}

/// A cheap, cloneable handle on an [`AuditSink`].
#[derive(Clone)]
pub struct Auditor(Arc<dyn AuditSink>);

impl Auditor {
    /// Records to `sink`.
    pub fn new(sink: impl AuditSink) -> Self {
        Self(Arc::new(sink))
    }

    /// Records to [`TracingAudit`].
    pub fn tracing() -> Self {
        Self::new(TracingAudit)
    }

    /// Records one event (and, with the `metrics` feature, counts it).
    pub fn record(&self, event: &AuditEvent) {
        metrics::record(event);
        self.0.record(event);
    }
}

impl Default for Auditor {
    fn default() -> Self {
        Self::tracing()
    }
}

impl fmt::Debug for Auditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Auditor(<sink>)")
    }
}

/// The fingerprint of a token for logs: its `jti` when it has one, else the
/// first 8 bytes of its SHA-256 in hex. Never the token itself.
pub(crate) fn token_fingerprint(token: &str, token_id: Option<&str>) -> String {
    match token_id {
        Some(id) => id.to_owned(),
        None => {
            let digest = Sha256::digest(token.as_bytes());
            crate::hex::lower_hex(&digest[..8])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_required_fields_and_escapes_hostile_text() {
        let event = AuditEvent::new(EventKind::Message, Outcome::Deny)
            .with_reason("forbidden")
            .with_sub("eve\r\n\u{1b}[31mroot")
            .with_conn(ConnectionId::from_raw(7))
            .with_action(Some("admin.kick".into()));
        let line = event.to_json().to_string();
        assert!(!line.contains('\n') && !line.contains('\r') && !line.contains('\u{1b}'));
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["event"], "message");
        assert_eq!(parsed["outcome"], "deny");
        assert_eq!(parsed["reason"], "forbidden");
        assert_eq!(parsed["sub"], "eve\r\n\u{1b}[31mroot");
        assert_eq!(parsed["conn"], 7);
        assert!(parsed["ts"].as_str().unwrap().ends_with('Z'));
        assert!(parsed.get("peer").is_none());
    }

    #[test]
    fn fingerprints_never_hold_the_token() {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        assert_eq!(token_fingerprint(token, Some("jti-1")), "jti-1");
        let hashed = token_fingerprint(token, None);
        assert_eq!(hashed.len(), 16);
        assert!(!token.contains(&hashed));
    }
}
