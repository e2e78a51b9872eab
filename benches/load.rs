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

/// CPU time (user + system) this process has used, from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ")".
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the file: 11 and 12 here.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// A throughput sample: messages per second, and CPU microseconds per
/// message (client, server and kernel together, as the whole machine pays).
struct Sample {
    per_second: f64,
    cpu_per_message: f64,
}

/// Messages per second over `connections` sockets with `in_flight`
/// messages outstanding on each, for `duration`.
async fn throughput(
    addr: SocketAddr,
    token: &str,
    connections: usize,
    in_flight: usize,
    duration: Duration,
) -> Sample {
    let message =
        serde_json::json!({"type": "say", "text": "hello, world", "token": token}).to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(connect(addr, token).await);
    }
    let started = Instant::now();
    let cpu_started = cpu_time();
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
    let cpu = cpu_time() - cpu_started;
    let done = count.load(Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    Sample {
        per_second: done as f64 / elapsed.as_secs_f64(),
        cpu_per_message: cpu.as_secs_f64() * 1e6 / done.max(1) as f64,
    }
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
        (9, Duration::from_secs(2))
    };
    let servers = start_servers().await;
    // For profiling one side: `WSGATE_LOAD_PROFILE=bare|wsgate` runs only
    // that server, 64 connections, for ten seconds.
    if let Ok(side) = std::env::var("WSGATE_LOAD_PROFILE") {
        let addr = if side == "bare" {
            servers.bare
        } else {
            servers.gated
        };
        let sample = throughput(addr, &servers.token, 64, 1, Duration::from_secs(10)).await;
        println!(
            "{side}: {:.0} msg/s, {:.2} µs CPU per message",
            sample.per_second, sample.cpu_per_message
        );
        return;
    }
    println!(
        "wsgate load benchmark: {rounds} rounds of {duration:?} per shape and server, alternating bare/wsgate"
    );
    println!(
        "{:<44} {:>12} {:>12} {:>7} {:>9} {:>9}",
        "shape", "bare msg/s", "wsgate msg/s", "ratio", "bare µs", "wsgate µs"
    );
    for (name, connections, in_flight) in [
        ("64 connections, 1 message in flight each", 64, 1),
        ("1 connection, 32 messages in flight", 1, 32),
    ] {
        let mut bare = Vec::new();
        let mut gated = Vec::new();
        for _ in 0..rounds {
            let token = &servers.token;
            bare.push(throughput(servers.bare, token, connections, in_flight, duration).await);
            gated.push(throughput(servers.gated, token, connections, in_flight, duration).await);
        }
        let rate =
            |samples: &[Sample]| median(samples.iter().map(|sample| sample.per_second).collect());
        let cpu = |samples: &[Sample]| {
            median(
                samples
                    .iter()
                    .map(|sample| sample.cpu_per_message)
                    .collect(),
            )
        };
        println!(
            "{name:<44} {:>12.0} {:>12.0} {:>7.3} {:>9.2} {:>9.2}",
            rate(&bare),
            rate(&gated),
            rate(&gated) / rate(&bare),
            cpu(&bare),
            cpu(&gated)
        );
    }
    println!("(µs: CPU time per message of the whole process: client, server and kernel)");
}
