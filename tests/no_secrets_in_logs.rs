//! Runs the whole handshake suite's traffic (every refusal case and every
//! transport) with all `tracing` output captured at TRACE level, then checks
//! that no token, password, ticket or key reached it.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs() {
    let capture = Capture::default();
    // Everything at TRACE, except the test client's own handshake module,
    // which logs the request it sends (credentials included) from the
    // client's side of the socket: that is the client's log, not the
    // server's.
    tracing_subscriber::fmt()
        .with_env_filter("trace,tungstenite::handshake::client=off")
        .with_ansi(false)
        .with_writer(capture.clone())
        .init();

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

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    // The capture works and saw every decision.
    assert!(
        logs.matches("handshake deny").count() >= refusals.len(),
        "not every refusal was logged"
    );
    assert!(logs.contains("handshake allow"));

    let secrets = remembered_secrets();
    assert!(
        secrets.len() > 60,
        "the harness recorded only {} secrets",
        secrets.len()
    );
    let leaking_lines: Vec<&str> = logs
        .lines()
        .filter(|line| secrets.iter().any(|secret| line.contains(secret.as_str())))
        .collect();
    assert!(
        leaking_lines.is_empty(),
        "{} log lines hold a secret, the first: {}",
        leaking_lines.len(),
        leaking_lines[0].chars().take(400).collect::<String>()
    );
    // Not even a JWT-shaped fragment: every token starts with a header
    // segment `eyJ…`.
    assert!(
        !logs.contains("eyJ"),
        "a token-like string reached the logs"
    );
}
