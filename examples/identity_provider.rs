//! Tokens from an identity provider: its keys found by OpenID Connect
//! discovery, fetched, cached and rotated; the issuer, the audience and
//! the token type checked; the token's scopes deciding which messages
//! pass.
//!
//! `OIDC_ISSUER=https://login.example OIDC_AUDIENCE=chat cargo run --example identity_provider`.
use axum::extract::State;
use axum::response::Response;
use axum::{Router, routing::get};
use wsgate::oidc::{OidcProvider, OidcVerifier};
use wsgate::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let app = app(
        &std::env::var("OIDC_ISSUER")?,
        &std::env::var("OIDC_AUDIENCE")?,
    )?;
    Ok(axum::serve(listener, app).await?)
}

pub(crate) fn app(issuer: &str, audience: &str) -> Result<Router, Box<dyn std::error::Error>> {
    // Access tokens as RFC 9068 JWTs (`typ: at+jwt`) for this audience.
    let provider = OidcProvider::new(issuer)
        .audience(audience)
        .token_type("at+jwt");
    let verifier = OidcVerifier::builder().provider(provider).build()?;
    // `admin.` messages need the scope `chat:admin`, every other `chat`.
    let policy = RolePolicy::by_type()
        .prefix("admin.", Requirement::any_scope(["chat:admin"]))
        .otherwise(Requirement::any_scope(["chat"]));
    let gate = Gate::builder(verifier).policy(policy).build()?;
    let handshake = gate.handshake().transports([Transport::Bearer]).build()?;
    Ok(Router::new()
        .route("/ws", get(echo))
        .route_layer(handshake)
        .with_state(gate))
}

async fn echo(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        while let Some(message) = socket.recv().await {
            let _ = socket.send(message.into_message()).await;
        }
    })
}
