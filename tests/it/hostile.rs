//! Runs the hostile-input catalogue (`tests/common/catalogue/`) against
//! one server, case after case. For every case it checks:
//!
//! - the exact outcome: status and body, close code and reason, or reply;
//! - the audit event the decision must leave;
//! - that the log stays one event a line, with client text escaped;
//! - that the server still serves: a socket opened before the first case
//!   still echoes, and a new client still gets in.
//!
//! Failures are collected and reported together, by case name.

#[path = "../common/catalogue/mod.rs"]
mod catalogue;

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{Capture, Handshake, connect};
use catalogue::{Audit, Fortress, catalogue, next_text, send_json};
use futures_util::future::FutureExt;
use serde_json::json;
use tokio::time::{Instant, sleep, timeout};
use wsgate::audit::{AuditEvent, EventKind, Outcome};

/// How long a case may take to reach its outcome.
const CASE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the audit event of a decision may take to be recorded.
const AUDIT_WAIT: Duration = Duration::from_secs(2);

/// Waits for `expected` among the events recorded from `first` on.
async fn audit_problem(fortress: &Fortress, first: usize, expected: Audit) -> Option<String> {
    let new_events = || -> Vec<AuditEvent> { fortress.events()[first..].to_vec() };
    match expected {
        Audit::Event { .. } => {
            let deadline = Instant::now() + AUDIT_WAIT;
            while Instant::now() < deadline {
                if new_events().iter().any(|event| expected.matches(event)) {
                    return None;
                }
                sleep(Duration::from_millis(10)).await;
            }
            Some(format!(
                "no audit event {expected:?}; recorded: {:?}",
                summary(&new_events())
            ))
        }
        Audit::NoDenial => {
            sleep(Duration::from_millis(200)).await;
            let denials: Vec<AuditEvent> = new_events()
                .into_iter()
                .filter(|event| event.outcome == Outcome::Deny || event.event == EventKind::Close)
                .collect();
            (!denials.is_empty()).then(|| format!("unexpected denials: {:?}", summary(&denials)))
        }
    }
}

fn summary(events: &[AuditEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| {
            format!(
                "{} {} {:?} {:?}",
                event.event.as_str(),
                event.outcome.as_str(),
                event.reason,
                event.code
            )
        })
        .collect()
}

/// The log written during a case: one event a line (every line starts with
/// its timestamp), no raw CR or escape character, and `escaped` (client
/// text in its escaped form) present when given.
fn log_problem(log: &str, escaped: Option<&str>) -> Option<String> {
    if let Some(line) = log
        .lines()
        .find(|line| !line.starts_with(|first: char| first.is_ascii_digit()))
    {
        return Some(format!("a log line that is not an event: {line:?}"));
    }
    if log.contains('\r') || log.contains('\u{1b}') {
        return Some("a raw CR or escape character in the log".into());
    }
    match escaped {
        Some(text) if !log.contains(text) => {
            Some(format!("the log does not hold {text:?} escaped: {log}"))
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_input_catalogue() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_env_filter("wsgate=trace")
        .with_ansi(false)
        .with_writer(capture.clone())
        .init();

    let fortress = Fortress::start().await;
    let cases = catalogue();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let names: HashSet<&str> = cases.iter().map(|case| case.name).collect();
    assert_eq!(names.len(), cases.len(), "case names must be unique");

    // Opened before the first case; must echo after every one.
    let mut canary = fortress.open("/ws", &fortress.token("canary")).await;
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let first_event = fortress.events().len();
        let log_start = capture.len();
        let started = Instant::now();
        let attack = std::panic::AssertUnwindSafe((case.attack)(fortress.clone()));
        let observed = match timeout(CASE_TIMEOUT, attack.catch_unwind()).await {
            Ok(Ok(observed)) => observed,
            Ok(Err(_)) => {
                failures.push(format!("{}: the attack's own checks failed", case.name));
                continue;
            }
            Err(_) => {
                failures.push(format!("{}: no outcome within {CASE_TIMEOUT:?}", case.name));
                continue;
            }
        };
        let mut problems = Vec::new();
        if observed != case.expect {
            problems.push(format!("expected {:?}, saw {observed:?}", case.expect));
        }
        problems.extend(audit_problem(&fortress, first_event, case.audit).await);
        problems.extend(log_problem(&capture.since(log_start), case.logged_escaped));

        // Still serving: the old socket echoes, a new client gets in.
        let probe = json!({"type": "chat", "text": format!("after case {index}")});
        let expected_echo = probe.to_string();
        send_json(&mut canary, probe).await;
        match timeout(Duration::from_secs(5), next_text(&mut canary)).await {
            Ok(Some(echo)) if echo == expected_echo => {}
            other => problems.push(format!("the canary socket stopped echoing: {other:?}")),
        }
        let newcomer = Handshake::to("/ws").bearer(&fortress.token("newcomer"));
        let status = connect(fortress.addr, &newcomer).await.status();
        if status != 101 {
            problems.push(format!("a new client got {status}"));
        }

        eprintln!(
            "{:>2} {:<64} {:>6} ms {}",
            index + 1,
            case.name,
            started.elapsed().as_millis(),
            if problems.is_empty() { "ok" } else { "FAILED" }
        );
        failures.extend(
            problems
                .into_iter()
                .map(|problem| format!("{}: {problem}", case.name)),
        );
    }

    // The JSON-lines file holds every event, one parseable object a line.
    fortress.flush_audit_file();
    let file = std::fs::read_to_string(&fortress.audit_file).unwrap();
    let recorded = fortress.events().len();
    let lines: Vec<&str> = file.lines().collect();
    if lines.len() < recorded {
        failures.push(format!(
            "the audit file has {} lines for {recorded} events",
            lines.len()
        ));
    }
    for line in &lines {
        if serde_json::from_str::<serde_json::Value>(line).is_err() || line.contains('\u{1b}') {
            failures.push(format!(
                "an audit file line is not one clean JSON object: {line:?}"
            ));
        }
    }
    let _ = std::fs::remove_file(&fortress.audit_file);

    crate::common::assert_no_failures(&failures, cases.len());
}
