//! The handshake layer against a real axum server and real WebSocket
//! clients: every transport, and the refusal table.

use std::sync::atomic::Ordering;

use crate::common::*;
use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsgate::authenticate::BearerAuthenticator;
use wsgate::handshake::{Authenticated, HandshakeLayer};
use wsgate::{ConfigError, Transport};

#[tokio::test]
async fn every_refusal_gets_its_exact_status_and_challenge() {
    let server = Server::start().await;
    let cases = refusal_cases(&server).await;
    assert!(cases.len() >= 30, "only {} refusal cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        match connect(server.addr, &case.handshake).await {
            Outcome::Refused {
                status, challenges, ..
            } => {
                if status != case.status || challenges != case.challenges {
                    failures.push(format!(
                        "{}: got {status} {challenges:?}, want {} {:?}",
                        case.name, case.status, case.challenges
                    ));
                }
            }
            Outcome::Accepted { welcome, .. } => {
                failures.push(format!("{}: accepted as {welcome}", case.name));
            }
        }
    }
    crate::common::assert_no_failures(&failures, cases.len());

    // The server still serves after all of that.
    let outcome = connect(
        server.addr,
        &Handshake::to("/ws").bearer(&server.keys.token("alice")),
    )
    .await;
    assert_eq!(outcome.status(), 101);
}

#[tokio::test]
async fn refusals_can_be_answered_in_the_applications_own_format() {
    let plain = Server::start().await;
    let json = Server::answering(crate::common::json_refusal).await;
    let cases = refusal_cases(&json).await;
    // The same catalogue for the plain server: tokens and tickets are each
    // server's own.
    let plain_cases = refusal_cases(&plain).await;
    let mut failures = Vec::new();
    for (case, plain_case) in cases.iter().zip(&plain_cases) {
        let Outcome::Refused {
            status,
            challenges,
            retry_after,
            body,
        } = connect(json.addr, &case.handshake).await
        else {
            failures.push(format!("{}: accepted", case.name));
            continue;
        };
        if status != case.status || challenges != case.challenges {
            failures.push(format!("{}: got {status} {challenges:?}", case.name));
        }
        // The plain server names the same reason, with the same
        // Retry-After.
        let Ok(answer) = serde_json::from_str::<serde_json::Value>(&body) else {
            failures.push(format!("{}: body {body:?} is not JSON", case.name));
            continue;
        };
        if let Outcome::Refused {
            body: phrase,
            retry_after: plain_retry,
            ..
        } = connect(plain.addr, &plain_case.handshake).await
            && (answer["error"] != phrase.as_str() || plain_retry != retry_after)
        {
            failures.push(format!(
                "{}: {answer} / {retry_after:?} where plain says {phrase:?} / {plain_retry:?}",
                case.name
            ));
        }
    }
    crate::common::assert_no_failures(&failures, cases.len());
}

#[tokio::test]
async fn every_transport_authenticates() {
    let server = Server::start().await;
    for case in acceptance_cases(&server).await {
        match connect(server.addr, &case.handshake).await {
            Outcome::Accepted { welcome, .. } => {
                assert_eq!(welcome["sub"], case.subject, "{}", case.name);
                assert_eq!(welcome["transport"], case.transport, "{}", case.name);
            }
            refused => panic!("{}: {refused:?}", case.name),
        }
    }
}

#[tokio::test]
async fn subprotocol_selects_the_application_protocol_and_hides_the_token() {
    let server = Server::start().await;
    let token = server.keys.token("alice");
    let handshake = Handshake::to("/ws").header(
        "sec-websocket-protocol",
        format!("chat.v1, wsgate.bearer.{token}"),
    );
    let Outcome::Accepted { welcome, protocol } = connect(server.addr, &handshake).await else {
        panic!("refused");
    };
    assert_eq!(protocol.as_deref(), Some("chat.v1"));
    // What the handler saw: the application protocol only.
    assert_eq!(welcome["offered_protocols"], "chat.v1");
}

#[tokio::test]
async fn ticket_is_removed_from_the_uri_the_handler_sees() {
    let server = Server::start().await;
    let ticket = server.ticket("alice").await;
    let handshake = Handshake::to(format!("/ws?room=lobby&ticket={ticket}"));
    let Outcome::Accepted { welcome, .. } = connect(server.addr, &handshake).await else {
        panic!("refused");
    };
    assert_eq!(welcome["uri"], "/ws?room=lobby");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_many_concurrent_redemptions_of_one_ticket_exactly_one_wins() {
    let server = Server::start().await;
    for _round in 0..5 {
        let ticket = server.ticket("alice").await;
        let handshake = Handshake::to(format!("/ws?ticket={ticket}"));
        let attempts: Vec<_> = (0..32)
            .map(|_| {
                let handshake = handshake.clone();
                let addr = server.addr;
                tokio::spawn(async move { connect(addr, &handshake).await.status() })
            })
            .collect();
        let mut statuses = Vec::new();
        for attempt in attempts {
            statuses.push(attempt.await.unwrap());
        }
        assert_eq!(
            statuses.iter().filter(|status| **status == 101).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|status| **status == 401).count(),
            31,
            "{statuses:?}"
        );
    }
}

/// Sends a raw HTTP/1.1 handshake and returns the response bytes without the
/// `date` header (the only part allowed to differ between two responses).
async fn raw_response(addr: std::net::SocketAddr, authorization: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Origin: {ALLOWED_ORIGIN}\r\nAuthorization: {authorization}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8(response)
        .unwrap()
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("date:"))
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[tokio::test]
async fn unknown_user_and_wrong_password_answer_the_same_and_hash_once_each() {
    let server = Server::start().await;
    let calls = || server.password_verifies.load(Ordering::SeqCst);

    let before = calls();
    let unknown = raw_response(server.addr, &basic("mallory", "whatever-password")).await;
    assert_eq!(
        calls() - before,
        1,
        "unknown user: one verification against the dummy hash"
    );

    let before = calls();
    let wrong = raw_response(server.addr, &basic("alice", "whatever-password")).await;
    assert_eq!(calls() - before, 1, "wrong password: one verification");

    assert!(unknown.starts_with("HTTP/1.1 401"), "{unknown}");
    assert_eq!(unknown, wrong);

    let before = calls();
    let too_long = raw_response(server.addr, &basic("alice", &"x".repeat(5_000))).await;
    assert_eq!(
        calls() - before,
        0,
        "the length cap is checked before hashing"
    );
    assert_eq!(too_long, wrong);
}

#[tokio::test]
async fn query_tokens_work_only_behind_the_dangerous_opt_in() {
    let keys = Keys::load();
    let token = keys.token("alice");
    let gate = HandshakeLayer::builder(BearerAuthenticator::new(keys.verifier()))
        .transports([Transport::Bearer])
        .dangerous_allow_query_tokens("access_token")
        .unwrap()
        .application_protocols(["chat.v1"])
        .unwrap()
        .build()
        .unwrap();
    let addr = serve(Router::new().route("/ws", get(welcome)).route_layer(gate)).await;
    let Outcome::Accepted { welcome, .. } = connect(
        addr,
        &Handshake::to(format!("/ws?access_token={token}&room=1")),
    )
    .await
    else {
        panic!("refused");
    };
    assert_eq!(welcome["transport"], "query");
    assert_eq!(welcome["uri"], "/ws?room=1");
    // Other raw-token parameters are still refused.
    let outcome = connect(addr, &Handshake::to(format!("/ws?token={token}"))).await;
    assert_eq!(outcome.status(), 400);
}

#[tokio::test]
async fn a_handler_without_the_layer_fails_loudly() {
    async fn handler(Authenticated(principal): Authenticated) -> String {
        principal.subject().to_owned()
    }
    let addr = serve(Router::new().route("/", get(handler))).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 500"), "{response}");
    assert!(response.contains("HandshakeLayer"), "{response}");
}

#[test]
fn configuration_mistakes_are_refused_at_build() {
    let verifier = Keys::load().verifier();
    for transport in [Transport::Cookie, Transport::Basic] {
        let error = HandshakeLayer::builder(BearerAuthenticator::new(verifier.clone()))
            .transports([Transport::Bearer, transport])
            .build()
            .unwrap_err();
        assert_eq!(
            error,
            ConfigError::OriginAllowlistRequired {
                transport: transport.as_str()
            }
        );
    }
    let none = HandshakeLayer::builder(BearerAuthenticator::new(verifier))
        .transports([])
        .build();
    assert_eq!(none.unwrap_err(), ConfigError::NoTransports);
}
