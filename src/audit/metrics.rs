//! Metrics for operators, through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`): install any recorder (for Prometheus,
//! `metrics-exporter-prometheus`) and these appear.
//!
//! | name | kind | labels | counts |
//! |---|---|---|---|
//! | `wsgate_handshakes_total` | counter | `outcome` (`allow`/`deny`), `reason` (on `deny`), `transport` | handshakes decided, first-message logins included |
//! | `wsgate_closes_total` | counter | `code` | sockets wsgate closed (expiry, revocation, limits, refused first messages) |
//! | `wsgate_messages_denied_total` | counter | | messages the pipeline refused |
//! | `wsgate_refreshes_total` | counter | `outcome` | in-band token refreshes |
//! | `wsgate_revocations_total` | counter | | revocations made on this process |
//! | `wsgate_lockouts_total` | counter | | password attempts refused because the account or address is locked (handshakes and logins) |
//! | `wsgate_live_sockets` | gauge | `state` (`authenticated`/`unauthenticated`) | open sockets; unauthenticated ones wait for a first message |
//! | `wsgate_handshake_duration_seconds` | histogram | | time spent authenticating a handshake or a first message |
//! | `wsgate_key_fetches_total` | counter | `outcome` (`success`/`failure`), `trigger` | fetches of an identity provider's keys (feature `oidc`) |
//! | `wsgate_keys_changed_total` | counter | `change` (`added`/`removed`) | keys that entered or left a provider's set |
//! | `wsgate_introspections_total` | counter | `outcome` (`active`/`inactive`/`error`) | RFC 7662 requests to a provider (cache hits are not counted) |
//! | `wsgate_tls_client_certificates_refused_total` | counter | `reason` (`unknown issuer`, `expired`, `not yet valid`, `revoked`, `revocation status unknown`, `wrong usage`, `invalid`) | TLS handshakes [`Serving`](crate::serve::Serving) ended over a client certificate (feature `tls`): no HTTP request, so no audit event |
//!
//! Every counter but the lockouts is moved by the audit event of the same
//! decision ([`Auditor::record`](crate::audit::Auditor::record)), so the
//! metrics and the audit trail never disagree. Labels hold only fixed
//! words: never a subject, a token, an address or text a client chose.
//!
//! # Example
//!
//! With `metrics-exporter-prometheus`, histogram buckets for the handshake
//! latency and a listener of its own:
//!
//! ```text
//! PrometheusBuilder::new()
//!     .set_buckets_for_metric(Matcher::Full(HANDSHAKE_DURATION.into()), HANDSHAKE_DURATION_BUCKETS)?
//!     .with_http_listener(metrics_address)
//!     .install()?;
//! wsgate::audit::metrics::describe();
//! ```

use std::time::Duration;

use crate::audit::AuditEvent;

/// Handshakes decided, by `outcome`, `reason` and `transport`.
pub const HANDSHAKES: &str = "wsgate_handshakes_total";
/// Sockets wsgate closed, by `code`.
pub const CLOSES: &str = "wsgate_closes_total";
/// Messages the pipeline refused.
pub const MESSAGES_DENIED: &str = "wsgate_messages_denied_total";
/// In-band refreshes, by `outcome`.
pub const REFRESHES: &str = "wsgate_refreshes_total";
/// Revocations made.
pub const REVOCATIONS: &str = "wsgate_revocations_total";
/// Password attempts refused during a lockout.
pub const LOCKOUTS: &str = "wsgate_lockouts_total";
/// Open sockets, by `state`.
pub const LIVE_SOCKETS: &str = "wsgate_live_sockets";
/// Time spent authenticating, in seconds.
pub const HANDSHAKE_DURATION: &str = "wsgate_handshake_duration_seconds";

/// Fetches of a provider's keys, by `outcome` and `trigger`.
pub const KEY_FETCHES: &str = "wsgate_key_fetches_total";
/// Keys that entered or left a provider's set, by `change`.
pub const KEYS_CHANGED: &str = "wsgate_keys_changed_total";
/// Introspection requests, by `outcome`.
pub const INTROSPECTIONS: &str = "wsgate_introspections_total";

/// TLS handshakes ended over a client certificate, by `reason`.
pub const TLS_CLIENT_CERTIFICATES_REFUSED: &str = "wsgate_tls_client_certificates_refused_total";

/// Buckets for [`HANDSHAKE_DURATION`] that tell a token check (tens of
/// microseconds) from a password hash (tens of milliseconds) from a slow
/// backend (seconds).
pub const HANDSHAKE_DURATION_BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The reason of an introspection that found the token inactive.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) const INACTIVE: &str = "token inactive";

/// Whether a live socket has authenticated yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketState {
    Authenticated,
    Unauthenticated,
}

/// Gives every metric its help text in the installed recorder. Call it once
/// after installing the recorder; the metrics work without it.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        describe_counter!(HANDSHAKES, "WebSocket handshakes decided by wsgate");
        describe_counter!(CLOSES, "Sockets closed by wsgate, by close code");
        describe_counter!(MESSAGES_DENIED, "Messages refused by the message pipeline");
        describe_counter!(REFRESHES, "In-band token refreshes");
        describe_counter!(REVOCATIONS, "Revocations made");
        describe_counter!(
            LOCKOUTS,
            "Password attempts refused because the account or address is locked"
        );
        describe_gauge!(LIVE_SOCKETS, "Open WebSocket connections");
        describe_counter!(KEY_FETCHES, "Fetches of an identity provider's keys");
        describe_counter!(
            KEYS_CHANGED,
            "Keys that entered or left a provider's key set"
        );
        describe_counter!(INTROSPECTIONS, "Token introspection requests to a provider");
        describe_counter!(
            TLS_CLIENT_CERTIFICATES_REFUSED,
            "TLS handshakes ended over a client certificate"
        );
        describe_histogram!(
            HANDSHAKE_DURATION,
            Unit::Seconds,
            "Time spent authenticating a handshake or a first message"
        );
    }
}

/// Counts the decision `event` records.
pub(crate) fn record(event: &AuditEvent) {
    #[cfg(feature = "metrics")]
    {
        use crate::audit::{EventKind, Outcome};
        use metrics::counter;
        if let Some(code) = event.code {
            counter!(CLOSES, "code" => code.to_string()).increment(1);
        }
        match (event.event, event.outcome) {
            (EventKind::Handshake, Outcome::Allow) => allowed_handshake(event.transport),
            (EventKind::Handshake, Outcome::Deny) => counter!(
                HANDSHAKES,
                "outcome" => "deny",
                "reason" => event.reason.unwrap_or("unknown"),
                "transport" => event.transport.unwrap_or("none"),
            )
            .increment(1),
            (EventKind::Message, Outcome::Deny) => counter!(MESSAGES_DENIED).increment(1),
            (EventKind::Refresh, outcome) => {
                counter!(REFRESHES, "outcome" => outcome.as_str()).increment(1);
            }
            (EventKind::Revoke, _) => counter!(REVOCATIONS).increment(1),
            (EventKind::Keys, outcome) => {
                let outcome = match outcome {
                    Outcome::Allow => "success",
                    Outcome::Deny => "failure",
                };
                let trigger = event.action.clone().unwrap_or_default();
                counter!(KEY_FETCHES, "outcome" => outcome, "trigger" => trigger).increment(1);
                for (change, count) in [("added", event.added), ("removed", event.removed)] {
                    if let Some(count) = count.filter(|count| *count > 0) {
                        counter!(KEYS_CHANGED, "change" => change).increment(count as u64);
                    }
                }
            }
            (EventKind::Introspection, outcome) => {
                let outcome = match (outcome, event.reason) {
                    (Outcome::Allow, _) => "active",
                    (Outcome::Deny, Some(INACTIVE)) => "inactive",
                    (Outcome::Deny, _) => "error",
                };
                counter!(INTROSPECTIONS, "outcome" => outcome).increment(1);
            }
            (EventKind::Message | EventKind::Close, _) => {}
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = event;
}

/// An attempt refused during a lockout.
pub(crate) fn lockout() {
    #[cfg(feature = "metrics")]
    metrics::counter!(LOCKOUTS).increment(1);
}

/// A TLS handshake ended over a client certificate, for `reason` (a
/// fixed phrase).
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) fn tls_client_certificate_refused(reason: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(TLS_CLIENT_CERTIFICATES_REFUSED, "reason" => reason).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = reason;
}

/// A socket of `state` opened (`delta` 1) or went away (`delta` -1).
pub(crate) fn live_sockets(state: SocketState, delta: f64) {
    #[cfg(feature = "metrics")]
    {
        // Literal labels make a static key: nothing allocated a socket.
        match state {
            SocketState::Authenticated => {
                metrics::gauge!(LIVE_SOCKETS, "state" => "authenticated").increment(delta);
            }
            SocketState::Unauthenticated => {
                metrics::gauge!(LIVE_SOCKETS, "state" => "unauthenticated").increment(delta);
            }
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (state, delta);
}

/// Counts an allowed handshake. Every handshake passes here, so each
/// transport's key is static (literal labels): a key built from a runtime
/// label value allocates its labels, an allocation and a free a handshake
/// that several server threads contend for in the allocator.
#[cfg(feature = "metrics")]
fn allowed_handshake(transport: Option<&'static str>) {
    macro_rules! allowed {
        ($($transport:literal)*) => {
            match transport {
                $(Some($transport) => {
                    metrics::counter!(HANDSHAKES, "outcome" => "allow", "transport" => $transport)
                        .increment(1)
                })*
                Some(other) => {
                    metrics::counter!(HANDSHAKES, "outcome" => "allow", "transport" => other)
                        .increment(1)
                }
                None => metrics::counter!(HANDSHAKES, "outcome" => "allow", "transport" => "none")
                    .increment(1),
            }
        };
    }
    allowed!("bearer" "basic" "subprotocol" "cookie" "ticket" "query" "first-message" "certificate");
}

/// Authentication took `elapsed`.
pub(crate) fn handshake_duration(elapsed: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(HANDSHAKE_DURATION).record(elapsed.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = elapsed;
}
