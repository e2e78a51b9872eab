//! Load benchmark: the same WebSocket echo served bare by axum and behind
//! wsgate (handshake authentication plus the full message pipeline: audit,
//! refresh, per-message token validation, role guard), driven by the same
//! client, alternating A/B/A/B; prints medians and the ratio wsgate/bare.
//!
//! `cargo bench --bench load` runs the full measurement; `-- --quick` (what
//! CI runs) does one short round of each so the benchmark cannot rot.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as ClientMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;
use wsgate::audit::{AuditEvent, AuditLayer, Auditor};
use wsgate::authenticate::{Authenticator, BearerAuthenticator};
use wsgate::guard::{Requirement, RoleGuardLayer, RolePolicy};
use wsgate::handshake::HandshakeLayer;
use wsgate::jwt::{Algorithm, JwtIssuer, JwtVerifier, KeyPair};
use wsgate::message::{Deliver, Inbound, MessageTokenLayer, RefreshLayer, Verdict};
use wsgate::socket::{GatedUpgrade, Registry, SocketGate};
use wsgate::store::InMemoryRevocationStore;
use wsgate::{AuthMethod, Principal, Transport};

type Pipeline = BoxCloneSyncService<Inbound, Verdict, Infallible>;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn bare_echo(ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(|mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Text(_) = message
                && socket.send(message).await.is_err()
            {
                break;
            }
        }
    })
}

async fn gated_echo(State(gate): State<SocketGate<Pipeline>>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        while let Some(inbound) = socket.recv().await {
            if socket.send(inbound.into_message()).await.is_err() {
                break;
            }
        }
    })
}

struct Servers {
    bare: SocketAddr,
    gated: SocketAddr,
    token: String,
}

async fn start_servers() -> Servers {
    let (signing, verification) = KeyPair::hmac(&[42; 32], Algorithm::HS256)
        .unwrap()
        .into_parts();
    let verifier = JwtVerifier::builder().key(verification).build().unwrap();
    let issuer = JwtIssuer::builder(signing).build();
    let principal = Principal::new("bench", AuthMethod::Password).with_roles(["user"]);
    let token = issuer
        .issue_token(&principal)
        .unwrap()
        .token()
        .expose()
        .to_owned();

    // The audit sees every decision; allowed messages are not recorded one
    // by one (the default), so the sink only counts what would be written.
    let recorded = Arc::new(AtomicU64::new(0));
    let auditor = Auditor::new(move |_: &AuditEvent| {
        recorded.fetch_add(1, Ordering::Relaxed);
    });
    let revocations = InMemoryRevocationStore::new();
    let registry = Registry::new(revocations.clone(), auditor.clone());
    let pipeline = ServiceBuilder::new()
        .layer(AuditLayer::new(auditor.clone()))
        .layer(RefreshLayer::new(verifier.clone(), revocations.clone()))
        .layer(MessageTokenLayer::new(
            verifier.clone(),
            revocations.clone(),
        ))
        .layer(RoleGuardLayer::new(
            RolePolicy::by_type().otherwise(Requirement::any_role(["user"])),
        ))
        .service(Deliver);
    let gate = SocketGate::builder(registry)
        .pipeline(Pipeline::new(pipeline))
        .build();
    let handshake =
        HandshakeLayer::builder(BearerAuthenticator::new(verifier).check_revocations(revocations))
            .transports([Transport::Bearer])
            .audit(auditor)
            .build()
            .unwrap();
    let gated = Router::new()
        .route("/ws", get(gated_echo))
        .route_layer(handshake)
        .with_state(gate);
    let bare = Router::new().route("/ws", get(bare_echo));
    Servers {
        bare: serve(bare).await,
        gated: serve(gated).await,
        token,
    }
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: SocketAddr, token: &str) -> Client {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// Messages per second over `connections` sockets with `in_flight`
/// messages outstanding on each, for `duration`.
async fn throughput(
    addr: SocketAddr,
    token: &str,
    connections: usize,
    in_flight: usize,
    duration: Duration,
) -> f64 {
    let message =
        serde_json::json!({"type": "say", "text": "hello, world", "token": token}).to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(connect(addr, token).await);
    }
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let (stop, count, message) = (stop.clone(), count.clone(), message.clone());
            tokio::spawn(async move {
                let (mut sink, mut stream) = client.split();
                for _ in 0..in_flight {
                    sink.send(ClientMessage::Text(message.clone().into()))
                        .await
                        .unwrap();
                }
                while let Some(Ok(reply)) = stream.next().await {
                    if !reply.is_text() {
                        continue;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    sink.send(ClientMessage::Text(message.clone().into()))
                        .await
                        .unwrap();
                }
                let _ = sink.close().await;
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let done = count.load(Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    done as f64 / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|argument| argument == "--quick");
    let (rounds, duration) = if quick {
        (1, Duration::from_millis(300))
    } else {
        (5, Duration::from_secs(3))
    };
    let servers = start_servers().await;
    println!(
        "wsgate load benchmark: {rounds} rounds of {duration:?} per shape and server, alternating bare/wsgate"
    );
    println!(
        "{:<44} {:>14} {:>14} {:>8}",
        "shape", "bare msg/s", "wsgate msg/s", "ratio"
    );
    for (name, connections, in_flight) in [
        ("64 connections, 1 message in flight each", 64, 1),
        ("1 connection, 32 messages in flight", 1, 32),
    ] {
        let mut bare = Vec::new();
        let mut gated = Vec::new();
        for _ in 0..rounds {
            bare.push(
                throughput(
                    servers.bare,
                    &servers.token,
                    connections,
                    in_flight,
                    duration,
                )
                .await,
            );
            gated.push(
                throughput(
                    servers.gated,
                    &servers.token,
                    connections,
                    in_flight,
                    duration,
                )
                .await,
            );
        }
        let (bare, gated) = (median(bare), median(gated));
        println!(
            "{name:<44} {bare:>14.0} {gated:>14.0} {:>8.3}",
            gated / bare
        );
    }
}
