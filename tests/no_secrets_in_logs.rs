//! Runs the integration suite's traffic — every handshake refusal and
//! acceptance case, the whole hostile-input catalogue, and the good flows
//! of the live stage (refresh, per-message tokens, first-message
//! authentication) — with every `tracing` target captured at TRACE and the
//! audit sink on (the `tracing` sink and a JSON-lines file), then checks
//! that no token, password, ticket or key reached either.

#[path = "common/catalogue/mod.rs"]
mod catalogue;
mod common;

use std::time::Duration;

use catalogue::{Fortress, catalogue, next_text, send_json};
use common::*;
use serde_json::json;
use tokio::time::timeout;

/// The live stage's good flows: a refresh, messages carrying their token,
/// a first-message authentication.
async fn good_live_traffic(fortress: &Fortress) {
    let mut client = fortress.open("/ws", &fortress.token("alice")).await;
    let later = fortress.token_with("alice", |claims| claims["exp"] = json!(now() + 900));
    send_json(&mut client, json!({"type": "auth.refresh", "token": later})).await;
    let refreshed = next_text(&mut client).await.unwrap();
    assert!(refreshed.contains("auth.refreshed"), "{refreshed}");

    let mut strict = fortress.open("/ws/strict", &fortress.token("alice")).await;
    let token = fortress.token("alice");
    for n in 0..3 {
        let message = json!({"type": "chat", "text": n, "token": token});
        send_json(&mut strict, message.clone()).await;
        assert_eq!(next_text(&mut strict).await.unwrap(), message.to_string());
    }

    let mut deferred = fortress.open_deferred().await;
    let first = json!({"type": "auth", "token": fortress.token("alice")});
    send_json(&mut deferred, first).await;
    let welcome = next_text(&mut deferred).await.unwrap();
    assert!(welcome.contains("welcome"), "{welcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_or_the_audit_trail() {
    let capture = capture_trace_logs();

    let server = Server::start().await;
    let refusals = refusal_cases(&server).await;
    for case in &refusals {
        assert_eq!(
            connect(server.addr, &case.handshake).await.status(),
            case.status,
            "{}",
            case.name
        );
    }
    for case in acceptance_cases(&server).await {
        assert_eq!(
            connect(server.addr, &case.handshake).await.status(),
            101,
            "{}",
            case.name
        );
    }

    let fortress = Fortress::start().await;
    let cases = catalogue();
    for case in &cases {
        // The outcomes are `tests/hostile.rs`'s business; here only the
        // traffic counts.
        let _ = timeout(Duration::from_secs(15), (case.attack)(fortress.clone())).await;
    }
    good_live_traffic(&fortress).await;
    // Let the last closes and audit events land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    fortress.flush_audit_file();
    let audit_file = std::fs::read_to_string(&fortress.audit_file).unwrap();
    let _ = std::fs::remove_file(&fortress.audit_file);

    let logs = capture.text();
    // The captures work and saw the traffic.
    assert!(
        logs.matches("handshake deny").count() >= refusals.len() + cases.len() / 2,
        "not every refusal was logged"
    );
    assert!(logs.contains("refresh allow") || logs.contains("auth.refreshed"));
    assert!(audit_file.lines().count() >= refusals.len());
    assert!(audit_file.contains("\"event\":\"refresh\""));
    assert!(
        logs.contains("Received close frame"),
        "tungstenite's DEBUG is in"
    );

    let secrets = remembered_secrets();
    assert!(
        secrets.len() > 200,
        "the harness recorded only {} secrets",
        secrets.len()
    );
    for (name, text) in [("the logs", logs.as_str()), ("the audit file", &audit_file)] {
        let leaking = leaks(text, &secrets);
        assert!(
            leaking.is_empty(),
            "{} lines of {name} hold a secret, the first: {}",
            leaking.len(),
            leaking[0].chars().take(400).collect::<String>()
        );
        // Not even a JWT-shaped fragment: every token starts with a header
        // segment `eyJ…`.
        assert!(!text.contains("eyJ"), "a token-like string reached {name}");
    }
}
