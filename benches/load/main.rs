//! Load benchmark: bare axum against wsgate, side by side in one run.
//!
//! The same WebSocket echo is served bare and behind wsgate (handshake
//! authentication plus the full message pipeline: audit, refresh,
//! per-message token validation, role guard) and driven by the same
//! `tokio-tungstenite` client, alternating A/B/A/B. It prints medians and
//! the ratio wsgate/bare for message throughput in two shapes (and without
//! the token cache, for reference), handshakes per second, resident memory
//! per idle connection at 10 000 connections, revocation latency with
//! 10 000 sockets open, and echo round trips during a password-hashing
//! storm.
//!
//! `cargo bench --bench load` runs it all; `-- --quick` (what CI runs) does
//! every part briefly, so the benchmark cannot rot; `-- --part
//! identity-providers` runs only the provider-token figures (JWKS cache,
//! background refresh, introspection cache), `-- --part memory` only the
//! idle-connection memory. Nothing here asserts a
//! timing.

#[path = "common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as ClientMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower::ServiceBuilder;
use wsgate::audit::{AuditEvent, Auditor};
use wsgate::authenticate::{Authenticator, BasicAuthenticator, BearerAuthenticator};
use wsgate::handshake::HandshakeLayer;
use wsgate::jwt::{Algorithm, JwtIssuer, JwtVerifier, KeyPair};
use wsgate::password::PasswordVerifier;
use wsgate::pipeline::{Requirement, RoleGuardLayer, RolePolicy};
use wsgate::session::Deliver;
use wsgate::socket::{GatedUpgrade, Registry, SocketGate};
use wsgate::store::{InMemoryCredentialStore, Revocation};
use wsgate::{AuthMethod, Gate, Principal, Transport};

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const ORIGIN: &str = "http://bench.local";
const PASSWORD: &str = "bench-password-1";

/// How long and how often; `--quick` shrinks everything.
struct Plan {
    quick: bool,
    rounds: usize,
    message_window: Duration,
    handshake_window: Duration,
    idle_connections: usize,
    revocation_sockets: usize,
    revoked_per_subject: usize,
    storms: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                rounds: 1,
                message_window: Duration::from_millis(300),
                handshake_window: Duration::from_millis(300),
                idle_connections: 500,
                revocation_sockets: 1_000,
                revoked_per_subject: 10,
                storms: 1,
            }
        } else {
            Self {
                quick,
                rounds: 9,
                message_window: Duration::from_secs(2),
                handshake_window: Duration::from_secs(2),
                idle_connections: 10_000,
                revocation_sockets: 10_000,
                revoked_per_subject: 100,
                storms: 5,
            }
        }
    }
}

// ---------------------------------------------------------------- servers

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Bare axum: echo text frames, counting live sockets.
fn bare_router(live: Arc<AtomicUsize>) -> Router {
    Router::new().route(
        "/ws",
        get(move |ws: WebSocketUpgrade| {
            let live = live.clone();
            async move {
                ws.on_upgrade(move |mut socket| async move {
                    live.fetch_add(1, Ordering::SeqCst);
                    while let Some(Ok(message)) = socket.recv().await {
                        if let Message::Text(_) = message
                            && socket.send(message).await.is_err()
                        {
                            break;
                        }
                    }
                    live.fetch_sub(1, Ordering::SeqCst);
                })
            }
        }),
    )
}

async fn gated_echo(State(gate): State<SocketGate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        while let Some(inbound) = socket.recv().await {
            if socket.send(inbound.into_message()).await.is_err() {
                break;
            }
        }
    })
}

struct Gated {
    addr: SocketAddr,
    registry: Registry,
    gate: Gate,
    hs256: JwtIssuer,
    es256: JwtIssuer,
}

impl Gated {
    fn token(&self, issuer: &JwtIssuer, subject: &str) -> String {
        let principal = Principal::new(subject, AuthMethod::Password).with_roles(["user"]);
        issuer
            .issue_token(&principal)
            .unwrap()
            .token()
            .expose()
            .to_owned()
    }
}

fn route<A: Authenticator, L: wsgate::limit::FailureLimiter>(
    path: &str,
    gate: SocketGate,
    handshake: HandshakeLayer<A, L>,
) -> Router {
    Router::new()
        .route(path, get(gated_echo))
        .route_layer(handshake)
        .with_state(gate)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// One gated server with a route per variant: `/ws` (HS256, token cache),
/// `/ws/uncached` (HS256, no token cache), `/ws/es256`, `/ws/ticket`,
/// `/ws/basic` (Basic with argon2id, or Bearer).
async fn gated_server() -> Gated {
    gated_server_with(None).await
}

/// The gated server, with its revocations and tickets in Redis when
/// `redis` is given.
async fn gated_server_with(redis: Option<&wsgate::redis::RedisStores>) -> Gated {
    let (hs_signing, hs_verification) = KeyPair::hmac(&[42; 32], Algorithm::HS256)
        .unwrap()
        .into_parts();
    let (es_signing, es_verification) = KeyPair::from_private_pem(&fixture("es256-private.pem"))
        .unwrap()
        .into_parts();
    let hs_verifier = JwtVerifier::builder().key(hs_verification).build().unwrap();
    let es_verifier = JwtVerifier::builder().key(es_verification).build().unwrap();

    // The audit sees every decision; allowed messages are not recorded one
    // by one (the default), so the sink only counts what would be written.
    let recorded = Arc::new(AtomicU64::new(0));
    let auditor = Auditor::new(move |_: &AuditEvent| {
        recorded.fetch_add(1, Ordering::Relaxed);
    });
    // One account per concurrent handshake of a storm: the lockout caps
    // attempts in flight per account, as it should for guesses.
    let users = InMemoryCredentialStore::new();
    for account in 0..STORM_HANDSHAKES {
        users
            .add_user(&format!("bench{account}"), PASSWORD, ["user"])
            .unwrap();
    }
    // The gate as the README builds it, with per-message tokens on: every
    // message passes audit, refresh, the token check and the role guard.
    let mut builder = Gate::builder(hs_verifier.clone());
    if let Some(redis) = redis {
        builder = builder
            .revocations(redis.revocations())
            .tickets(redis.tickets());
    }
    let gate = builder
        .audit(auditor.clone())
        .passwords(BasicAuthenticator::new(
            users,
            PasswordVerifier::new().unwrap(),
        ))
        .message_tokens(true)
        .policy(RolePolicy::by_type().otherwise(Requirement::any_role(["user"])))
        .build()
        .unwrap();
    let uncached = gate.sockets_with(
        ServiceBuilder::new()
            .layer(gate.audit_layer())
            .layer(gate.refresh_layer())
            .layer(gate.message_token_layer().cache_capacity(0))
            .layer(RoleGuardLayer::new(
                RolePolicy::by_type().otherwise(Requirement::any_role(["user"])),
            ))
            .service(Deliver),
    );
    let transports = |transports: &[Transport]| {
        gate.handshake()
            .transports(transports.iter().copied())
            .allowed_origins([ORIGIN])
            .unwrap()
            .build()
            .unwrap()
    };
    // ES256 tokens at the handshake: a layer of its own over the gate's
    // revocations and audit.
    let es256_handshake = HandshakeLayer::builder(BearerAuthenticator::new(es_verifier))
        .transports([Transport::Bearer])
        .revocations(gate.registry().revocations().clone())
        .audit(auditor.clone())
        .build()
        .unwrap();
    let sockets = gate.sockets().clone();
    let router = route("/ws", sockets.clone(), transports(&[Transport::Bearer]))
        .merge(route(
            "/ws/uncached",
            uncached,
            transports(&[Transport::Bearer]),
        ))
        .merge(route("/ws/es256", sockets.clone(), es256_handshake))
        .merge(route(
            "/ws/ticket",
            sockets.clone(),
            transports(&[Transport::Ticket]),
        ))
        .merge(route(
            "/ws/basic",
            sockets,
            transports(&[Transport::Bearer, Transport::Basic]),
        ));
    let registry = gate.registry().clone();
    Gated {
        addr: serve(router).await,
        registry,
        gate,
        hs256: JwtIssuer::builder(hs_signing).build(),
        es256: JwtIssuer::builder(es_signing).build(),
    }
}

// ---------------------------------------------------------------- clients

async fn connect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
) -> Result<Client, String> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(client, _)| client)
        .map_err(|error| error.to_string())
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

/// Raises the open-file limit to at least `wanted` (root may raise the hard
/// limit too); returns what it is now.
fn raise_file_limit(wanted: u64) -> u64 {
    let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, wanted, wanted);
    rlimit::increase_nofile_limit(wanted).unwrap_or(0)
}

/// CPU time (user + system) this process has used, from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ")";
    // utime and stime are fields 14 and 15 of the file, 11 and 12 here.
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
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Resident memory of this process, from /proc.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(values: &mut [Duration], fraction: f64) -> Duration {
    values.sort();
    let index = ((values.len() as f64 - 1.0) * fraction).round() as usize;
    values[index.min(values.len() - 1)]
}

/// A throughput sample: messages per second, and CPU microseconds per
/// message (client, server and kernel together, as the machine pays).
struct Sample {
    per_second: f64,
    cpu_per_message: f64,
}

async fn throughput(
    addr: SocketAddr,
    path: &str,
    token: &str,
    connections: usize,
    in_flight: usize,
    window: Duration,
) -> Sample {
    let message =
        serde_json::json!({"type": "say", "text": "hello, world", "token": token}).to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(connect(addr, path, &bearer(token)).await.unwrap());
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
                    if sink
                        .send(ClientMessage::Text(message.clone().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                let _ = sink.close().await;
            })
        })
        .collect();
    tokio::time::sleep(window).await;
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

/// Handshakes per second with 32 clients connecting and disconnecting in a
/// loop; `credentials` gives each attempt its headers and path.
async fn handshakes<F>(addr: SocketAddr, window: Duration, credentials: F) -> f64
where
    F: Fn() -> (String, Vec<(&'static str, String)>) + Send + Sync + 'static,
{
    let credentials = Arc::new(credentials);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (stop, count, credentials) = (stop.clone(), count.clone(), credentials.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let (path, headers) = credentials();
                    if let Ok(client) = connect(addr, &path, &headers).await {
                        count.fetch_add(1, Ordering::Relaxed);
                        drop(client);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let done = count.load(Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    done as f64 / elapsed.as_secs_f64()
}

// ---------------------------------------------------------------- parts

async fn messages(plan: &Plan, bare: SocketAddr, gated: &Gated) {
    let token = gated.token(&gated.hs256, "bench");
    println!(
        "\n## Messages per second (echo, median of {} rounds of {:?})",
        plan.rounds, plan.message_window
    );
    println!(
        "{:<62} {:>11} {:>11} {:>7} {:>8} {:>8}",
        "shape", "bare", "wsgate", "ratio", "bare µs", "gate µs"
    );
    for (shape, connections, in_flight) in [
        ("64 connections, 1 message in flight each", 64, 1),
        ("1 connection, 32 messages in flight", 1, 32),
    ] {
        for (label, path) in [("", "/ws"), (" [no token cache]", "/ws/uncached")] {
            let mut bare_samples = Vec::new();
            let mut gated_samples = Vec::new();
            for _ in 0..plan.rounds {
                bare_samples.push(
                    throughput(
                        bare,
                        "/ws",
                        &token,
                        connections,
                        in_flight,
                        plan.message_window,
                    )
                    .await,
                );
                gated_samples.push(
                    throughput(
                        gated.addr,
                        path,
                        &token,
                        connections,
                        in_flight,
                        plan.message_window,
                    )
                    .await,
                );
            }
            let rate = |samples: &[Sample]| {
                median(samples.iter().map(|sample| sample.per_second).collect())
            };
            let cpu = |samples: &[Sample]| {
                median(
                    samples
                        .iter()
                        .map(|sample| sample.cpu_per_message)
                        .collect(),
                )
            };
            println!(
                "{:<62} {:>11.0} {:>11.0} {:>7.3} {:>8.2} {:>8.2}",
                format!("{shape}{label}"),
                rate(&bare_samples),
                rate(&gated_samples),
                rate(&gated_samples) / rate(&bare_samples),
                cpu(&bare_samples),
                cpu(&gated_samples)
            );
        }
    }
    println!("(µs: CPU time per message of the whole process: client, server and kernel)");
}

async fn handshake_rates(plan: &Plan, bare: SocketAddr, gated: &Gated) {
    let hs256 = gated.token(&gated.hs256, "bench");
    let es256 = gated.token(&gated.es256, "bench");
    // Tickets are issued before the clock starts: redemption is measured.
    let pool = Arc::new(Mutex::new(Vec::new()));
    let principal = Principal::new("bench", AuthMethod::Token).with_roles(["user"]);
    let mut medians: Vec<(&str, Vec<f64>)> = ["bare", "HS256", "ES256", "ticket"]
        .iter()
        .map(|name| (*name, Vec::new()))
        .collect();
    for _ in 0..plan.rounds.min(3) {
        let mut fresh = Vec::new();
        for _ in 0..if plan.quick { 5_000 } else { 40_000 } {
            fresh.push(
                gated
                    .gate
                    .issue_ticket(&principal)
                    .await
                    .unwrap()
                    .ticket()
                    .expose()
                    .to_owned(),
            );
        }
        *pool.lock().unwrap() = fresh;
        medians[0].1.push(
            handshakes(bare, plan.handshake_window, || {
                ("/ws".to_owned(), Vec::new())
            })
            .await,
        );
        let token = hs256.clone();
        medians[1].1.push(
            handshakes(gated.addr, plan.handshake_window, move || {
                ("/ws".to_owned(), bearer(&token))
            })
            .await,
        );
        let token = es256.clone();
        medians[2].1.push(
            handshakes(gated.addr, plan.handshake_window, move || {
                ("/ws/es256".to_owned(), bearer(&token))
            })
            .await,
        );
        let tickets = pool.clone();
        medians[3].1.push(
            handshakes(gated.addr, plan.handshake_window, move || {
                let ticket = tickets.lock().unwrap().pop().unwrap_or_default();
                (format!("/ws/ticket?ticket={ticket}"), Vec::new())
            })
            .await,
        );
    }
    println!("\n## Handshakes per second (32 concurrent clients, connect then drop)");
    let bare_rate = median(medians[0].1.clone());
    for (name, samples) in medians {
        let rate = median(samples);
        println!(
            "{name:<8} {rate:>10.0}  ratio to bare {:.3}",
            rate / bare_rate
        );
    }
}

// ------------------------------------------------------ identity providers

use common::provider::{IDP_AUDIENCE, IDP_KID, bench_provider};

/// Handshake latencies: `clients` clients connecting one after another for
/// `window`.
async fn handshake_latencies(
    addr: SocketAddr,
    path: &'static str,
    token: String,
    clients: usize,
    window: Duration,
) -> Vec<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, headers) = (stop.clone(), bearer(&token));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    if connect(addr, path, &headers).await.is_ok() {
                        latencies.push(started.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// Provider tokens against the same tokens with a locally configured key;
/// the p99 while the keys are refreshed in the background against a calm
/// p99; introspected tokens with a warm cache against local HS256.
async fn identity_providers(plan: &Plan) {
    use wsgate::oidc::{OidcProvider, OidcVerifier};
    let (calm_issuer, _) = bench_provider(600).await;
    let (busy_issuer, busy_fetches) = bench_provider(1).await;
    let oidc = |issuer: &str, refresh: Duration| {
        OidcVerifier::builder()
            .provider(
                OidcProvider::new(issuer)
                    .audience(IDP_AUDIENCE)
                    .introspection("bench", "bench-secret"),
            )
            .key_lifetime(Duration::from_secs(600), refresh, Duration::from_secs(3600))
            .build()
            .unwrap()
    };
    let (signing, verification) = KeyPair::from_private_pem(&fixture("es256-private.pem"))
        .unwrap()
        .with_kid(IDP_KID)
        .into_parts();
    let local_es256 = JwtVerifier::builder()
        .key(verification)
        .issuer(calm_issuer.clone())
        .audience(IDP_AUDIENCE)
        .build()
        .unwrap();
    let (hs_signing, hs_verification) = KeyPair::hmac(&[7; 32], Algorithm::HS256)
        .unwrap()
        .into_parts();
    let local_hs256 = JwtVerifier::builder()
        .key(hs_verification)
        .audience(IDP_AUDIENCE)
        .build()
        .unwrap();
    let gate_route = |path: &str, verifier: wsgate::BoxedVerifier| {
        let gate = Gate::builder(verifier).build().unwrap();
        let handshake = gate
            .handshake()
            .transports([Transport::Bearer])
            .build()
            .unwrap();
        route(path, gate.sockets().clone(), handshake)
    };
    let router = gate_route("/ws/local-es256", wsgate::BoxedVerifier::new(local_es256))
        .merge(gate_route(
            "/ws/oidc",
            wsgate::BoxedVerifier::new(oidc(&calm_issuer, Duration::from_secs(60))),
        ))
        .merge(gate_route(
            "/ws/oidc-refreshing",
            wsgate::BoxedVerifier::new(oidc(&busy_issuer, Duration::from_secs(1))),
        ))
        .merge(gate_route(
            "/ws/hs256",
            wsgate::BoxedVerifier::new(local_hs256),
        ));
    let addr = serve(router).await;

    let principal = Principal::new("bench", AuthMethod::Token).with_roles(["user"]);
    let issue = |issuer: &str, signing: wsgate::jwt::SigningKey| {
        JwtIssuer::builder(signing)
            .issuer(issuer)
            .audience(IDP_AUDIENCE)
            .build()
            .issue_token(&principal)
            .unwrap()
            .token()
            .expose()
            .to_owned()
    };
    let calm_token = issue(&calm_issuer, signing.clone());
    let busy_token = issue(&busy_issuer, signing.clone());
    let hs_token = issue("bench", hs_signing);
    let opaque = "opaque-bench-token-0123456789".to_owned();
    // Warm both caches (keys, and the introspection answer).
    for (path, token) in [
        ("/ws/oidc", &calm_token),
        ("/ws/oidc", &opaque),
        ("/ws/oidc-refreshing", &busy_token),
    ] {
        connect(addr, path, &bearer(token)).await.unwrap();
    }

    let kinds: [(&str, &'static str, &String); 4] = [
        ("ES256, local key", "/ws/local-es256", &calm_token),
        ("ES256, provider key (JWKS cache)", "/ws/oidc", &calm_token),
        ("HS256, local key", "/ws/hs256", &hs_token),
        ("opaque, introspected (warm cache)", "/ws/oidc", &opaque),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for _ in 0..plan.rounds.max(3) {
        for (index, (_, path, token)) in kinds.iter().enumerate() {
            let (path, token): (&'static str, String) = (path, (*token).clone());
            rates[index].push(
                handshakes(addr, plan.handshake_window, move || {
                    (path.to_owned(), bearer(&token))
                })
                .await,
            );
        }
    }
    let rates: Vec<f64> = rates.into_iter().map(median).collect();
    println!(
        "\n## Identity providers: handshakes per second (32 clients, median of {} rounds)",
        plan.rounds.max(3)
    );
    for ((name, _, _), rate) in kinds.iter().zip(&rates) {
        println!("{name:<36} {rate:>10.0}");
    }
    println!(
        "provider ES256 / local ES256: {:.3}   introspected (warm) / local HS256: {:.3}",
        rates[1] / rates[0],
        rates[3] / rates[2]
    );

    // p99 under steady load: keys that stay fresh, against keys refreshed
    // in the background about every 0.75 s (max-age 1 s).
    let window = plan.handshake_window * 4;
    let mut calm = Vec::new();
    let mut busy = Vec::new();
    let fetches_before = busy_fetches.load(Ordering::Relaxed);
    for _ in 0..plan.rounds.max(3) {
        calm.extend(handshake_latencies(addr, "/ws/oidc", calm_token.clone(), 8, window).await);
        busy.extend(
            handshake_latencies(addr, "/ws/oidc-refreshing", busy_token.clone(), 8, window).await,
        );
    }
    let refreshes = busy_fetches.load(Ordering::Relaxed) - fetches_before;
    let calm_p99 = percentile(&mut calm, 0.99);
    let busy_p99 = percentile(&mut busy, 0.99);
    println!(
        "p99 handshake (8 clients): calm {calm_p99:?}, during {refreshes} background key refreshes {busy_p99:?}, ratio {:.2}",
        busy_p99.as_secs_f64() / calm_p99.as_secs_f64()
    );
}

/// Runs in a child process: serves (bare or gated) and answers commands on
/// standard input, so the server's memory is measured alone and clients
/// and server do not share one open-file limit.
///
/// Commands: `rss` → `RSS <resident bytes> <live sockets>`; `revoke <sub>`
/// → `REVOKED <closed>`. Prints `PORT <port>` first.
async fn server_child(side: &str) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    raise_file_limit(65_536);
    let live = Arc::new(AtomicUsize::new(0));
    let (addr, registry) = if side == "bare" {
        (serve(bare_router(live.clone())).await, None)
    } else {
        // With a Redis URL, the child is one process of several sharing it.
        let redis = std::env::var("WSGATE_BENCH_REDIS_URL")
            .ok()
            .map(|url| wsgate::redis::RedisStores::builder(url).build().unwrap());
        let gated = gated_server_with(redis.as_ref()).await;
        (gated.addr, Some(gated.registry))
    };
    let mut stdout = tokio::io::stdout();
    let mut say = async |line: String| {
        stdout
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdout.flush().await.unwrap();
    };
    say(format!("PORT {}", addr.port())).await;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("rss"), _) => {
                let sockets = registry
                    .as_ref()
                    .map_or_else(|| live.load(Ordering::SeqCst), Registry::len);
                say(format!("RSS {} {sockets}", resident_bytes())).await;
            }
            (Some("revoke"), Some(subject)) => {
                let registry = registry
                    .as_ref()
                    .expect("revocation needs the gated server");
                let revocation = Revocation::Subject {
                    subject: subject.to_owned(),
                    issued_before: SystemTime::now(),
                };
                let closed = registry.revoke(revocation).await.unwrap();
                say(format!("REVOKED {closed}")).await;
            }
            _ => say("?".to_owned()).await,
        }
    }
}

/// A server child process and its command pipe.
struct ServerChild {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    addr: SocketAddr,
}

impl ServerChild {
    async fn start(side: &str) -> Self {
        Self::start_with(side, &[]).await
    }

    async fn start_with(side: &str, environment: &[(&str, String)]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--server-child", side])
            .envs(
                environment
                    .iter()
                    .map(|(name, value)| (*name, value.as_str())),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next_line().await.unwrap().unwrap();
        let port: u16 = first.strip_prefix("PORT ").unwrap().parse().unwrap();
        Self {
            child,
            stdin,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    async fn ask(&mut self, command: &str) -> Vec<String> {
        use tokio::io::AsyncWriteExt;
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        let answer = self.lines.next_line().await.unwrap().unwrap();
        answer
            .split_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect()
    }

    async fn rss(&mut self) -> (u64, usize) {
        let answer = self.ask("rss").await;
        (answer[0].parse().unwrap(), answer[1].parse().unwrap())
    }
}

/// Tokens the children accept: they sign with the same fixed test key.
fn child_token(subject: &str) -> String {
    let (signing, _) = KeyPair::hmac(&[42; 32], Algorithm::HS256)
        .unwrap()
        .into_parts();
    let principal = Principal::new(subject, AuthMethod::Password).with_roles(["user"]);
    JwtIssuer::builder(signing)
        .build()
        .issue_token(&principal)
        .unwrap()
        .token()
        .expose()
        .to_owned()
}

async fn memory(plan: &Plan) {
    raise_file_limit(4 * plan.idle_connections as u64 + 1_024);
    let mut per_connection = Vec::new();
    for side in ["bare", "wsgate"] {
        let mut server = ServerChild::start(side).await;
        let token = child_token("bench");
        // Warm the server with one connection before the first reading.
        let warm = connect(server.addr, "/ws", &bearer(&token)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (before, _) = server.rss().await;
        let mut clients = Vec::with_capacity(plan.idle_connections);
        for _ in 0..plan.idle_connections {
            clients.push(connect(server.addr, "/ws", &bearer(&token)).await.unwrap());
        }
        loop {
            let (_, sockets) = server.rss().await;
            if sockets > plan.idle_connections {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (after, _) = server.rss().await;
        per_connection.push(after.saturating_sub(before) as f64 / plan.idle_connections as f64);
        drop((clients, warm));
        let _ = server.child.kill().await;
    }
    println!(
        "\n## Resident memory of the server per idle connection ({} connections)",
        plan.idle_connections
    );
    println!(
        "bare {:.0} B, wsgate {:.0} B: wsgate adds {:.0} B per connection",
        per_connection[0],
        per_connection[1],
        per_connection[1] - per_connection[0]
    );
}

/// Revocation latency: `sockets` open on a gated server (another process),
/// subjects holding `revoked_per_subject` sockets each revoked in turn;
/// time from sending the revoke command to each close frame.
async fn revocation(plan: &Plan) {
    raise_file_limit(2 * plan.revocation_sockets as u64 + 1_024);
    let mut server = ServerChild::start("wsgate").await;
    let victims = 3;
    let others = plan.revocation_sockets - victims * plan.revoked_per_subject;
    let mut idle = Vec::with_capacity(others);
    for index in 0..others {
        let token = child_token(&format!("other-{}", index % 1_000));
        idle.push(connect(server.addr, "/ws", &bearer(&token)).await.unwrap());
    }
    let mut latencies = Vec::new();
    for victim in 0..victims {
        let subject = format!("victim-{victim}");
        let token = child_token(&subject);
        let start = Arc::new(Mutex::new(None::<Instant>));
        let mut readers = Vec::new();
        for _ in 0..plan.revoked_per_subject {
            let mut socket = connect(server.addr, "/ws", &bearer(&token)).await.unwrap();
            let start = start.clone();
            readers.push(tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    if let ClientMessage::Close(_) = message {
                        break;
                    }
                }
                let began = start.lock().unwrap().expect("closed before the revocation");
                began.elapsed()
            }));
        }
        loop {
            let (_, sockets) = server.rss().await;
            if sockets >= others + plan.revoked_per_subject {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        *start.lock().unwrap() = Some(Instant::now());
        let answer = server.ask(&format!("revoke {subject}")).await;
        assert_eq!(
            answer[0].parse::<usize>().unwrap(),
            plan.revoked_per_subject
        );
        for reader in readers {
            latencies.push(reader.await.unwrap());
        }
        // Let the closed ones leave the registry.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    let p50 = percentile(&mut latencies, 0.5);
    let p99 = percentile(&mut latencies, 0.99);
    println!(
        "\n## Revocation latency ({} sockets open, {victims} subjects of {} sockets revoked in turn)",
        plan.revocation_sockets, plan.revoked_per_subject
    );
    println!("revoke command sent → close frame received: p50 {p50:?}, p99 {p99:?}");
    drop(idle);
    let _ = server.child.kill().await;
}

// ------------------------------------------------------ several processes

/// A `redis-server` on a free loopback port, without persistence; `None`
/// (and a note) when it is not installed.
async fn redis_server() -> Option<(tokio::process::Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(child) = child else {
        println!("\n## Several processes: skipped (apt-get install -y redis-server)");
        return None;
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some((child, format!("redis://127.0.0.1:{port}/")));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Revocations and tickets in Redis: handshakes against in-memory stores
/// in one run, a revocation on this process reaching a server child's
/// sockets, and one made across the child's reconnect.
async fn several_processes(plan: &Plan) {
    use wsgate::store::RevocationStore as _;
    let Some((_server, url)) = redis_server().await else {
        return;
    };
    let here = wsgate::redis::RedisStores::builder(url.clone())
        .build()
        .unwrap();
    let memory = gated_server_with(None).await;
    let redis = gated_server_with(Some(&here)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut rates = vec![Vec::new(); 4];
    let principal = Principal::new("bench", AuthMethod::Token).with_roles(["user"]);
    for _ in 0..plan.rounds.clamp(3, 5) {
        for (index, gated) in [&memory, &redis].into_iter().enumerate() {
            let token = gated.token(&gated.hs256, "bench");
            rates[index].push(
                handshakes(gated.addr, plan.handshake_window, move || {
                    ("/ws".to_owned(), bearer(&token))
                })
                .await,
            );
            let mut pool = Vec::new();
            for _ in 0..if plan.quick { 3_000 } else { 20_000 } {
                let ticket = gated.gate.issue_ticket(&principal).await.unwrap();
                pool.push(ticket.ticket().expose().to_owned());
            }
            let pool = Arc::new(Mutex::new(pool));
            rates[2 + index].push(
                handshakes(gated.addr, plan.handshake_window, move || {
                    let ticket = pool.lock().unwrap().pop().unwrap_or_default();
                    (format!("/ws/ticket?ticket={ticket}"), Vec::new())
                })
                .await,
            );
        }
    }
    let rates: Vec<f64> = rates.into_iter().map(median).collect();
    println!("\n## Several processes: handshakes per second with stores in memory and in Redis");
    println!(
        "HS256 (revocations checked): memory {:.0}, Redis {:.0}, ratio {:.3}",
        rates[0],
        rates[1],
        rates[1] / rates[0]
    );
    println!(
        "ticket (redeemed): memory {:.0}, Redis {:.0}, ratio {:.3}",
        rates[2],
        rates[3],
        rates[3] / rates[2]
    );

    // Another process holds the sockets; this one revokes.
    raise_file_limit(2 * plan.revocation_sockets as u64 + 1_024);
    let mut child =
        ServerChild::start_with("wsgate", &[("WSGATE_BENCH_REDIS_URL", url.clone())]).await;
    let victims = 100.min(plan.revocation_sockets / 10);
    let others = plan.revocation_sockets - victims;
    let mut idle = Vec::with_capacity(others);
    for index in 0..others {
        let token = child_token(&format!("other-{}", index % 1_000));
        idle.push(connect(child.addr, "/ws", &bearer(&token)).await.unwrap());
    }
    let revoke_and_time = async |subject: &str, child: &mut ServerChild, across_reconnect: bool| {
        let token = child_token(subject);
        let start = Arc::new(Mutex::new(None::<Instant>));
        let mut readers = Vec::new();
        for _ in 0..victims {
            let mut socket = connect(child.addr, "/ws", &bearer(&token)).await.unwrap();
            let start = start.clone();
            readers.push(tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    if let ClientMessage::Close(_) = message {
                        break;
                    }
                }
                start
                    .lock()
                    .unwrap()
                    .expect("closed before the revocation")
                    .elapsed()
            }));
        }
        while child.rss().await.1 < others + victims {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        *start.lock().unwrap() = Some(Instant::now());
        if across_reconnect {
            // Every connection but the killer's: the child's and ours.
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut killer = client.get_multiplexed_async_connection().await.unwrap();
            let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
                .query_async(&mut killer)
                .await;
        }
        let revocation = Revocation::Subject {
            subject: subject.to_owned(),
            issued_before: SystemTime::now(),
        };
        while here.revocations().revoke(revocation.clone()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut latencies = Vec::new();
        for reader in readers {
            latencies.push(reader.await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        latencies
    };
    let mut direct = Vec::new();
    for round in 0..3 {
        direct.extend(revoke_and_time(&format!("victim-{round}"), &mut child, false).await);
    }
    let mut reconnecting = revoke_and_time("victim-reconnect", &mut child, true).await;
    println!(
        "revoke here → close frame on another process ({} sockets open there, {victims} of a subject, 3 rounds): p50 {:?}, p99 {:?}",
        plan.revocation_sockets,
        percentile(&mut direct, 0.5),
        percentile(&mut direct, 0.99)
    );
    println!(
        "the same across a reconnect (CLIENT KILL, then the revocation; the other process reconnects, resyncs and checks its {} sockets): p50 {:?}, p99 {:?}",
        plan.revocation_sockets,
        percentile(&mut reconnecting, 0.5),
        percentile(&mut reconnecting, 0.99)
    );
    drop(idle);
    let _ = child.child.kill().await;
}

// ------------------------------------------------------ accounts in SQL

/// Basic handshakes (argon2id at the default cost) with the users in
/// memory, in SQLite and in PostgreSQL, and the lookup alone.
async fn accounts_in_sql(plan: &Plan) {
    use wsgate::store::{AccountStore as _, CredentialStore, InMemoryCredentialStore, StoredUser};
    const USERS: usize = 32;
    let passwords = PasswordVerifier::new().unwrap();
    let hash = passwords
        .hash(&wsgate::Secret::new(PASSWORD))
        .await
        .unwrap();
    let folder = std::env::temp_dir().join(format!("wsgate-bench-sql-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let sqlite = wsgate::sql::SqlCredentialStore::connect(&format!(
        "sqlite://{}",
        folder.join("bench.db").display()
    ))
    .await
    .unwrap();
    let postgres_server = common::postgres::Postgres::start();
    let postgres = match &postgres_server {
        Some(server) => Some(
            wsgate::sql::SqlCredentialStore::connect(&server.url())
                .await
                .unwrap(),
        ),
        None => None,
    };
    let memory = InMemoryCredentialStore::new();
    for n in 0..USERS {
        let name = format!("bench{n}");
        let user = StoredUser::new(name.clone(), hash.clone()).with_roles(["user"]);
        memory.insert(name.clone(), user.clone());
        sqlite.create_user(&name, user.clone()).await.unwrap();
        if let Some(postgres) = &postgres {
            postgres.create_user(&name, user).await.unwrap();
        }
    }
    async fn basic_route<S: CredentialStore>(store: S, passwords: PasswordVerifier) -> SocketAddr {
        let gate = Gate::builder(
            JwtVerifier::builder()
                .key(
                    KeyPair::hmac(&[1; 32], Algorithm::HS256)
                        .unwrap()
                        .into_parts()
                        .1,
                )
                .build()
                .unwrap(),
        )
        .passwords(BasicAuthenticator::new(store, passwords))
        .build()
        .unwrap();
        let handshake = gate
            .handshake()
            .transports([Transport::Basic])
            .allowed_origins([ORIGIN])
            .unwrap()
            .build()
            .unwrap();
        serve(route("/ws", gate.sockets().clone(), handshake)).await
    }
    let mut sides = vec![
        (
            "in memory",
            basic_route(memory.clone(), passwords.clone()).await,
        ),
        (
            "SQLite",
            basic_route(sqlite.clone(), passwords.clone()).await,
        ),
    ];
    if let Some(postgres) = &postgres {
        sides.push((
            "PostgreSQL",
            basic_route(postgres.clone(), passwords.clone()).await,
        ));
    }
    let mut rates = vec![Vec::new(); sides.len()];
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..plan.rounds.clamp(3, 5) {
        for (index, (_, addr)) in sides.iter().enumerate() {
            let next = next.clone();
            rates[index].push(
                handshakes(*addr, plan.handshake_window * 2, move || {
                    let n = next.fetch_add(1, Ordering::Relaxed) % USERS;
                    let credentials = base64::engine::general_purpose::STANDARD
                        .encode(format!("bench{n}:{PASSWORD}"));
                    (
                        "/ws".to_owned(),
                        vec![
                            ("authorization", format!("Basic {credentials}")),
                            ("origin", ORIGIN.to_owned()),
                        ],
                    )
                })
                .await,
            );
        }
    }
    println!(
        "\n## Accounts in SQL: Basic handshakes per second (argon2id at the default cost, 32 clients)"
    );
    let memory_rate = median(rates[0].clone());
    for ((name, _), samples) in sides.iter().zip(rates) {
        let rate = median(samples);
        println!(
            "{name:<12} {rate:>8.1}/s  ratio to in memory {:.3}",
            rate / memory_rate
        );
    }
    if postgres.is_none() {
        println!("PostgreSQL: skipped (no initdb here)");
    }
    let lookups = if plan.quick { 500 } else { 10_000 };
    let mut line = String::from("user lookup (find_user), ");
    async fn timed<S: CredentialStore>(store: &S, lookups: usize) -> (Duration, Duration) {
        let mut latencies = Vec::with_capacity(lookups);
        for n in 0..lookups {
            let started = Instant::now();
            let _ = store.find_user(&format!("bench{}", n % USERS)).await;
            latencies.push(started.elapsed());
        }
        (
            percentile(&mut latencies, 0.5),
            percentile(&mut latencies, 0.99),
        )
    }
    let (p50, p99) = timed(&memory, lookups).await;
    line.push_str(&format!("in memory p50 {p50:?} p99 {p99:?}; "));
    let (p50, p99) = timed(&sqlite, lookups).await;
    line.push_str(&format!("SQLite p50 {p50:?} p99 {p99:?}"));
    if let Some(postgres) = &postgres {
        let (p50, p99) = timed(postgres, lookups).await;
        line.push_str(&format!("; PostgreSQL p50 {p50:?} p99 {p99:?}"));
    }
    println!("{line} ({lookups} lookups each)");
    let _ = std::fs::remove_dir_all(&folder);
}

/// Concurrent Basic handshakes in a storm, each for an account of its own.
const STORM_HANDSHAKES: usize = 50;

/// Echo round trips on open sockets while 50 Basic handshakes hash
/// passwords at once.
async fn storm(plan: &Plan, gated: &Gated) {
    let token = gated.token(&gated.hs256, "bench");
    let message = serde_json::json!({"type": "say", "text": "ping", "token": token}).to_string();
    let storming = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let calm = Arc::new(Mutex::new(Vec::new()));
    let stormy = Arc::new(Mutex::new(Vec::new()));
    let mut pingers = Vec::new();
    for _ in 0..8 {
        let mut client = connect(gated.addr, "/ws/basic", &bearer(&token))
            .await
            .unwrap();
        let (storming, stop, calm, stormy, message) = (
            storming.clone(),
            stop.clone(),
            calm.clone(),
            stormy.clone(),
            message.clone(),
        );
        pingers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                client
                    .send(ClientMessage::Text(message.clone().into()))
                    .await
                    .unwrap();
                while let Some(Ok(reply)) = client.next().await {
                    if reply.is_text() {
                        break;
                    }
                }
                let rtt = sent.elapsed();
                let bucket = if storming.load(Ordering::Relaxed) {
                    &stormy
                } else {
                    &calm
                };
                bucket.lock().unwrap().push(rtt);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    let basic = |account: usize| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("bench{account}:{PASSWORD}"))
        )
    };
    let mut storm_durations = Vec::new();
    for _ in 0..plan.storms {
        tokio::time::sleep(Duration::from_millis(300)).await;
        storming.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let attempts: Vec<_> = (0..STORM_HANDSHAKES)
            .map(|account| {
                let headers = vec![
                    ("authorization", basic(account)),
                    ("origin", ORIGIN.to_owned()),
                ];
                let addr = gated.addr;
                tokio::spawn(async move { connect(addr, "/ws/basic", &headers).await.is_ok() })
            })
            .collect();
        let mut accepted = 0;
        for attempt in attempts {
            accepted += usize::from(attempt.await.unwrap());
        }
        storm_durations.push(started.elapsed());
        storming.store(false, Ordering::Relaxed);
        assert_eq!(
            accepted, STORM_HANDSHAKES,
            "every Basic handshake of the storm succeeds"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for pinger in pingers {
        let _ = pinger.await;
    }
    let mut calm = calm.lock().unwrap().clone();
    let mut stormy = stormy.lock().unwrap().clone();
    println!(
        "\n## Echo round trip during a storm of 50 concurrent Basic (argon2id) handshakes, {} storms",
        plan.storms
    );
    println!(
        "calm:  p50 {:?}, p99 {:?} ({} round trips)",
        percentile(&mut calm, 0.5),
        percentile(&mut calm, 0.99),
        calm.len()
    );
    println!(
        "storm: p50 {:?}, p99 {:?} ({} round trips); a storm lasted {:?} (median)",
        percentile(&mut stormy, 0.5),
        percentile(&mut stormy, 0.99),
        stormy.len(),
        percentile(&mut storm_durations, 0.5)
    );
}

#[tokio::main]
async fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if let Some(position) = arguments
        .iter()
        .position(|argument| argument == "--server-child")
    {
        server_child(&arguments[position + 1]).await;
        return;
    }
    let plan = Plan::new(arguments.iter().any(|argument| argument == "--quick"));
    println!(
        "# wsgate load benchmark{}",
        if plan.quick {
            " (quick mode: figures are not meaningful)"
        } else {
            ""
        }
    );
    println!(
        "machine: {} CPUs, {} MiB memory",
        std::thread::available_parallelism().map_or(0, |count| count.get()),
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| info.lines().next().and_then(|line| line
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()))
            .unwrap_or(0)
            / 1024
    );
    // `-- --part identity-providers` runs that part alone.
    if let Some(position) = arguments.iter().position(|argument| argument == "--part") {
        match arguments.get(position + 1).map(String::as_str) {
            Some(part @ ("messages" | "handshakes")) => {
                let bare = serve(bare_router(Arc::new(AtomicUsize::new(0)))).await;
                let gated = gated_server().await;
                if part == "messages" {
                    messages(&plan, bare, &gated).await;
                } else {
                    handshake_rates(&plan, bare, &gated).await;
                }
            }
            Some("identity-providers") => identity_providers(&plan).await,
            Some("memory") => memory(&plan).await,
            Some("redis") => several_processes(&plan).await,
            Some("sql") => accounts_in_sql(&plan).await,
            other => {
                eprintln!(
                    "unknown part {other:?}; known: messages, handshakes, identity-providers, memory, redis, sql"
                )
            }
        }
        return;
    }
    let bare = serve(bare_router(Arc::new(AtomicUsize::new(0)))).await;
    let gated = gated_server().await;
    // For profiling one side alone for ten seconds:
    // WSGATE_LOAD_PROFILE=messages-bare|messages-wsgate|handshakes-bare|handshakes-hs256
    if let Ok(part) = std::env::var("WSGATE_LOAD_PROFILE") {
        let token = gated.token(&gated.hs256, "bench");
        let window = Duration::from_secs(10);
        match part.as_str() {
            "messages-bare" | "messages-wsgate" => {
                let addr = if part == "messages-bare" {
                    bare
                } else {
                    gated.addr
                };
                let sample = throughput(addr, "/ws", &token, 64, 1, window).await;
                println!(
                    "{part}: {:.0}/s, {:.2} µs CPU each",
                    sample.per_second, sample.cpu_per_message
                );
            }
            "handshakes-bare" => println!(
                "{part}: {:.0}/s",
                handshakes(bare, window, || ("/ws".to_owned(), Vec::new())).await
            ),
            _ => println!(
                "{part}: {:.0}/s",
                handshakes(gated.addr, window, move || (
                    "/ws".to_owned(),
                    bearer(&token)
                ))
                .await
            ),
        }
        return;
    }
    messages(&plan, bare, &gated).await;
    handshake_rates(&plan, bare, &gated).await;
    identity_providers(&plan).await;
    several_processes(&plan).await;
    accounts_in_sql(&plan).await;
    storm(&plan, &gated).await;
    memory(&plan).await;
    revocation(&plan).await;
}
