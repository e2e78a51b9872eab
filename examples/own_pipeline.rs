//! A message pipeline of your own: a tower layer of the application's,
//! between the gate's audit and refresh layers and its role guard. Here it
//! answers a message in capitals with an error and keeps the socket open;
//! the audit records the refusal like any other.
//!
//! `JWT_SECRET=… cargo run --example own_pipeline`.
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::extract::State;
use axum::extract::ws::Message;
use axum::response::Response;
use axum::{Router, routing::get};
use futures_util::future::Either;
use tower::{Service, ServiceBuilder, layer::layer_fn};
use wsgate::audit::Outcome;
use wsgate::pipeline::{Deliver, RoleGuardLayer};
use wsgate::prelude::*;
use wsgate::session::{Decision, Verdict};
use wsgate::socket::SocketGate;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    Ok(axum::serve(listener, app(std::env::var("JWT_SECRET")?.as_bytes())?).await?)
}

pub(crate) fn app(secret: &[u8]) -> Result<Router, Box<dyn std::error::Error>> {
    let key = VerificationKey::hmac(secret, Algorithm::HS256)?;
    let gate = Gate::builder(JwtVerifier::builder().key(key).build()?).build()?;
    let policy = RolePolicy::by_type().otherwise(Requirement::any_role(["user"]));
    // Outermost first: what the audit wraps, it records.
    let sockets = gate.sockets_with(
        ServiceBuilder::new()
            .layer(gate.audit_layer())
            .layer(gate.refresh_layer())
            .layer(layer_fn(|inner| NoShouting { inner }))
            .layer(RoleGuardLayer::new(policy))
            .service(Deliver),
    );
    let handshake = gate.handshake().transports([Transport::Bearer]).build()?;
    Ok(Router::new()
        .route("/ws", get(echo))
        .route_layer(handshake)
        .with_state(sockets))
}

/// Refuses messages whose text is all capitals, with a reply.
#[derive(Clone)]
struct NoShouting<S> {
    inner: S,
}

impl<S> Service<Inbound> for NoShouting<S>
where
    S: Service<Inbound, Response = Verdict, Error = Infallible>,
{
    type Response = Verdict;
    type Error = Infallible;
    type Future = Either<Ready<Result<Verdict, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, inbound: Inbound) -> Self::Future {
        let text = inbound.json_str("text").unwrap_or_default();
        if !text.chars().any(char::is_uppercase) || text.chars().any(char::is_lowercase) {
            return Either::Right(self.inner.call(inbound));
        }
        let reply = Message::text(r#"{"type":"error","code":"no_shouting"}"#);
        let action = inbound.json_str("type").map(str::to_owned);
        let decision = Decision::message(Outcome::Deny, Some("shouting"), action);
        Either::Left(ready(Ok(Verdict::Reply { reply, decision })))
    }
}

async fn echo(State(sockets): State<SocketGate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&sockets, |mut socket| async move {
        while let Some(message) = socket.recv().await {
            let _ = socket.send(message.into_message()).await;
        }
    })
}
