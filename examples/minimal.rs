//! A gated WebSocket route: the README's five-minute start.
use axum::{Router, extract::State, response::Response, routing::get};
use wsgate::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    Ok(axum::serve(listener, app(std::env::var("JWT_SECRET")?.as_bytes())?).await?)
}

pub(crate) fn app(secret: &[u8]) -> Result<Router, Box<dyn std::error::Error>> {
    let key = VerificationKey::hmac(secret, Algorithm::HS256)?;
    let gate = Gate::builder(JwtVerifier::builder().key(key).build()?)
        .policy(RolePolicy::by_type().otherwise(Requirement::any_role(["user"])))
        .build()?;
    let handshake = gate.handshake().application_protocols(["chat.v1"])?;
    Ok(Router::new()
        .route("/ws", get(chat))
        .route_layer(handshake.build()?)
        .route("/tickets", gate.ticket_route())
        .with_state(gate))
}

async fn chat(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        while let Some(message) = socket.recv().await {
            let _ = socket.send(message.into_message()).await;
        }
    })
}
