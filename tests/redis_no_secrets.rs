//! Two instances sharing a Redis that requires a password, with every
//! `tracing` target captured at TRACE (the redis crate's included):
//! tickets issued and redeemed across them, a revocation fanned out, a
//! reconnect; then no token, ticket or the Redis password in the log.
//!
//! A binary of its own: it installs the process-wide subscriber.

mod common;

use std::time::Duration;

use common::redis::{Instance, RedisServer};
use common::{Handshake, Keys, capture_trace_logs, connect, remember_secret, remembered_secrets};
use wsgate::store::Revocation;
use wsgate::{AuthMethod, Principal};

const PASSWORD: &str = "redis-password-never-logged-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_ticket_or_redis_password_reaches_the_trace_log() {
    let capture = capture_trace_logs();
    let Some(mut redis) = RedisServer::start_with(Some(PASSWORD)).await else {
        return;
    };
    let keys = Keys::load();
    let a = Instance::start(&redis.url(), &keys).await;
    let b = Instance::start(&redis.url(), &keys).await;
    let (gate_a, a, b) = (a.gate.clone(), a.addr, b.addr);

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
    common::assert_no_secret_in(&log, &secrets);
}
