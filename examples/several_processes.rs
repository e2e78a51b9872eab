//! Several processes behind a load balancer, one Redis between them: a
//! revocation on any process closes the subject's sockets on every one; a
//! ticket bought from one redeems once, on whichever the browser reaches;
//! failed passwords and each subject's sockets are counted across all.
//!
//! `REDIS_URL=redis://127.0.0.1/ JWT_SECRET=… PORT=3001 cargo run --example several_processes`,
//! and again with `PORT=3002`.
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use wsgate::limit::FailureLimits;
use wsgate::prelude::*;
use wsgate::redis::RedisStores;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")?.parse()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let secret = std::env::var("JWT_SECRET")?;
    Ok(axum::serve(
        listener,
        app(secret.as_bytes(), &std::env::var("REDIS_URL")?)?,
    )
    .await?)
}

pub(crate) fn app(secret: &[u8], redis_url: &str) -> Result<Router, Box<dyn std::error::Error>> {
    let key = VerificationKey::hmac(secret, Algorithm::HS256)?;
    // Until it has heard from Redis, a process refuses rather than serve
    // from a revocation list it cannot vouch for.
    let redis = RedisStores::builder(redis_url).build()?;
    let gate = Gate::builder(JwtVerifier::builder().key(key).build()?)
        .revocations(redis.revocations())
        .tickets(redis.tickets())
        .failure_limiter(redis.failure_limiter(FailureLimits::default()))
        .socket_leases(redis.socket_leases())
        .max_sockets_per_subject(20)?
        .build()?;
    let handshake = gate
        .handshake()
        .transports([Transport::Bearer, Transport::Ticket])
        .build()?;
    Ok(Router::new()
        .route("/ws", get(echo))
        .route_layer(handshake)
        .route("/tickets", gate.ticket_route())
        .route(
            "/admin/revoke/{subject}",
            post(revoke).route_layer(gate.bearer_layer()),
        )
        .with_state(gate))
}

async fn revoke(
    State(gate): State<Gate>,
    Authenticated(admin): Authenticated,
    Path(subject): Path<String>,
) -> Response {
    if !admin.has_role("admin") {
        return StatusCode::FORBIDDEN.into_response();
    }
    let revocation = Revocation::subject(subject, SystemTime::now());
    match gate.registry().revoke(revocation).await {
        // Sockets closed here; the other processes close theirs as the
        // revocation reaches them.
        Ok(closed) => closed.to_string().into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn echo(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        while let Some(message) = socket.recv().await {
            let _ = socket.send(message.into_message()).await;
        }
    })
}
