//! Taking access away from live sockets. An admin route revokes a subject
//! (its sockets close 4403 `token revoked`, and its tokens are refused
//! from then on, on every path) or kicks it (its sockets close 4403
//! `forbidden`; its tokens still open new ones).
//!
//! `JWT_SECRET=… cargo run --example revoke_and_kick`, then
//! `curl -X POST -H "Authorization: Bearer <admin's JWT>" 127.0.0.1:3000/admin/revoke/alice`.
use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use wsgate::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    Ok(axum::serve(listener, app(std::env::var("JWT_SECRET")?.as_bytes())?).await?)
}

pub(crate) fn app(secret: &[u8]) -> Result<Router, Box<dyn std::error::Error>> {
    let key = VerificationKey::hmac(secret, Algorithm::HS256)?;
    let gate = Gate::builder(JwtVerifier::builder().key(key).build()?).build()?;
    let handshake = gate.handshake().transports([Transport::Bearer]).build()?;
    Ok(Router::new()
        .route("/ws", get(echo))
        .route_layer(handshake)
        // Token holders only (`Authorization: Bearer`), revocations
        // checked; the handlers ask for the role.
        .route(
            "/admin/revoke/{subject}",
            post(revoke).route_layer(gate.bearer_layer()),
        )
        .route(
            "/admin/kick/{subject}",
            post(kick).route_layer(gate.bearer_layer()),
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
    // Every token of the subject issued until now, wherever it is used;
    // a token issued later (a new login) is not covered.
    let revocation = Revocation::subject(subject, SystemTime::now());
    match gate.registry().revoke(revocation).await {
        Ok(closed) => Json(json!({ "closed": closed })).into_response(),
        // The store is down: nothing was revoked; say so.
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn kick(
    State(gate): State<Gate>,
    Authenticated(admin): Authenticated,
    Path(subject): Path<String>,
) -> Response {
    if !admin.has_role("admin") {
        return StatusCode::FORBIDDEN.into_response();
    }
    let closed = gate.registry().kick(&subject);
    Json(json!({ "closed": closed })).into_response()
}

async fn echo(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        while let Some(message) = socket.recv().await {
            let _ = socket.send(message.into_message()).await;
        }
    })
}
