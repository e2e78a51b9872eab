//! Two instances sharing a Redis that requires a password, with every
//! `tracing` target captured at TRACE (the redis crate's included):
//! tickets issued and redeemed across them, a revocation fanned out, a
//! reconnect; then no token, ticket or the Redis password in the log.
//!
//! A binary of its own: it installs the process-wide subscriber.

mod common;

use std::time::Duration;

use common::redis::RedisServer;
use common::{
    Handshake, Keys, capture_trace_logs, connect, remember_secret, remembered_secrets, serve,
};
use wsgate::redis::RedisStores;
use wsgate::socket::GatedUpgrade;
use wsgate::store::Revocation;
use wsgate::{AuthMethod, Gate, Principal, Transport};

const PASSWORD: &str = "redis-password-never-logged-0123";

async fn echo(
    axum::extract::State(gate): axum::extract::State<Gate>,
    upgrade: GatedUpgrade,
) -> axum::response::Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        let _ = socket
            .send(axum::extract::ws::Message::Text("{}".into()))
            .await;
        while socket.recv().await.is_some() {}
    })
}

async fn instance(url: &str, keys: &Keys) -> (std::net::SocketAddr, Gate) {
    let stores = RedisStores::builder(url).build().unwrap();
    let gate = Gate::builder(keys.verifier())
        .revocations(stores.revocations())
        .tickets(stores.tickets())
        .build()
        .unwrap();
    let handshake = gate
        .handshake()
        .transports([Transport::Bearer, Transport::Ticket])
        .build()
        .unwrap();
    let router = axum::Router::new()
        .route("/ws", axum::routing::get(echo))
        .route_layer(handshake)
        .with_state(gate.clone());
    (serve(router).await, gate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_ticket_or_redis_password_reaches_the_trace_log() {
    let capture = capture_trace_logs();
    let Some(mut redis) = RedisServer::start_with(Some(PASSWORD)).await else {
        return;
    };
    let keys = Keys::load();
    let (a, gate_a) = instance(&redis.url(), &keys).await;
    let (b, _gate_b) = instance(&redis.url(), &keys).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let principal = Principal::new("alice", AuthMethod::Token).with_roles(["user"]);
    for _ in 0..3 {
        let ticket = gate_a.issue_ticket(&principal).await.unwrap();
        let ticket = remember_secret(ticket.ticket().expose());
        assert_eq!(
            connect(b, &Handshake::to(format!("/ws?ticket={ticket}")))
                .await
                .status(),
            101
        );
    }
    let token = keys.token("alice");
    assert_eq!(
        connect(b, &Handshake::to("/ws").bearer(&token))
            .await
            .status(),
        101
    );
    gate_a
        .registry()
        .revoke(Revocation::token("jti-alice"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        connect(b, &Handshake::to("/ws").bearer(&token))
            .await
            .status(),
        401
    );
    // A reconnect and a resync, logged too.
    redis.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        connect(a, &Handshake::to("/ws").bearer(&keys.token("bob")))
            .await
            .status(),
        101
    );

    let log = capture.text();
    assert!(log.contains("redis"), "the Redis traffic was logged");
    let mut secrets = remembered_secrets();
    secrets.push(PASSWORD.to_owned());
    let leaks: Vec<&str> = log
        .lines()
        .filter(|line| secrets.iter().any(|secret| line.contains(secret.as_str())))
        .collect();
    assert!(
        leaks.is_empty(),
        "{} log lines hold a secret, the first: {}",
        leaks.len(),
        leaks[0]
    );
}
