//! A browser's way in: the page holds a token (from your login), buys a
//! single-use ticket with it at `POST /tickets`, and opens the socket with
//! `?ticket=`. The token never enters a URL, and the ticket is spent at
//! the handshake: a log that keeps the URL keeps nothing usable.
//!
//! `JWT_SECRET=… cargo run --example browser_ticket`, then open
//! `http://127.0.0.1:3000/#token=<a JWT signed with that secret>`.
use axum::extract::State;
use axum::response::{Html, Response};
use axum::{Router, routing::get};
use wsgate::prelude::*;

const PAGE: &str = r#"<!doctype html>
<title>wsgate: a ticket from the browser</title>
<pre id="log"></pre>
<script type="module">
  // The token your login gave the page (here, from the URL's fragment,
  // which the browser never sends).
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const answer = await fetch("/tickets", {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
  const { ticket } = await answer.json();
  const socket = new WebSocket(`ws://${location.host}/ws?ticket=${ticket}`, ["chat.v1"]);
  socket.onopen = () => socket.send(JSON.stringify({ type: "say", text: "hello" }));
  socket.onmessage = (event) => (log.textContent += `${event.data}\n`);
  socket.onclose = (event) => (log.textContent += `closed ${event.code} ${event.reason}\n`);
</script>
"#;

/// Where the page is served from: the only Origin the socket accepts.
pub(crate) const ORIGIN: &str = "http://127.0.0.1:3000";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let app = app(std::env::var("JWT_SECRET")?.as_bytes(), ORIGIN)?;
    Ok(axum::serve(listener, app).await?)
}

pub(crate) fn app(secret: &[u8], origin: &str) -> Result<Router, Box<dyn std::error::Error>> {
    let key = VerificationKey::hmac(secret, Algorithm::HS256)?;
    let gate = Gate::builder(JwtVerifier::builder().key(key).build()?).build()?;
    // Tickets only, and only from the page's own origin.
    let handshake = gate
        .handshake()
        .transports([Transport::Ticket])
        .allowed_origins([origin])?
        .application_protocols(["chat.v1"])?
        .build()?;
    Ok(Router::new()
        .route("/ws", get(echo))
        .route_layer(handshake)
        // `POST /tickets` takes `Authorization: Bearer` only: nothing a
        // browser attaches on its own, so another site cannot buy one.
        .route("/tickets", gate.ticket_route())
        .route("/", get(|| async { Html(PAGE) }))
        .with_state(gate))
}

async fn echo(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        while let Some(message) = socket.recv().await {
            let _ = socket.send(message.into_message()).await;
        }
    })
}
