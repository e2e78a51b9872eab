//! Load benchmark: bare axum against wsgate, side by side in one run.
//!
//! The same WebSocket echo is served bare and behind wsgate (handshake
//! authentication plus the full message pipeline: audit, refresh,
//! per-message token validation, role guard) and driven by the same
//! `tokio-tungstenite` client, alternating A/B/A/B. It prints medians and
//! the ratio wsgate/bare for message throughput in two shapes (like for
//! like against bare axum with wsgate's read buffer, and without the token
//! cache, for reference), handshakes per second beside the cost of one
//! ES256 verification, a scaling table from 1 to 10 000 connections,
//! resident memory per idle connection, revocation latency with 10 000
//! sockets open, echo round trips during a password-hashing storm, and the
//! figures of identity providers, Redis and SQL.
//!
//! `cargo bench --bench load` runs every part, each in a process of its
//! own; `-- --part NAME` runs one (see [`PARTS`]); `-- --quick` (what CI
//! runs) does every part briefly, so the benchmark cannot rot; `-- --soak
//! SECONDS` runs the soak (`soak.rs`), never part of a quick run. The
//! parts in [`PINNED_PARTS`] measure a server child on one CPU from a
//! client on the other. Nothing here asserts a timing; the soak fails on
//! an unexpected outcome, which is not a timing.

#[path = "../common/mod.rs"]
mod common;
mod soak;

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
use wsgate::pipeline::Deliver;
use wsgate::pipeline::{Requirement, RoleGuardLayer, RolePolicy};
use wsgate::socket::{DeferredUpgrade, GatedSocket, GatedUpgrade, Registry, SocketGate};
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
    idle_connections: &'static [usize],
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
                idle_connections: &[500],
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
                idle_connections: &[10_000, 50_000],
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
    bare_router_with(live, None)
}

/// Bare axum with `read_buffer` (axum's default, 128 KiB, when `None`).
fn bare_router_with(live: Arc<AtomicUsize>, read_buffer: Option<usize>) -> Router {
    Router::new().route(
        "/ws",
        get(move |ws: WebSocketUpgrade| {
            let live = live.clone();
            let ws = match read_buffer {
                Some(bytes) => ws.read_buffer_size(bytes),
                None => ws,
            };
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
    upgrade.on_upgrade(&gate, echo)
}

/// Echoes every delivered message.
async fn echo(mut socket: GatedSocket) {
    while let Some(inbound) = socket.recv().await {
        if socket.send(inbound.into_message()).await.is_err() {
            break;
        }
    }
}

async fn deferred_echo(State(gate): State<SocketGate>, upgrade: DeferredUpgrade) -> Response {
    upgrade.on_upgrade(&gate, echo)
}

struct Gated {
    addr: SocketAddr,
    registry: Registry,
    gate: Gate,
    hs256: JwtIssuer,
}

impl Gated {
    fn token(&self, issuer: &JwtIssuer, subject: &str) -> String {
        issue(issuer, subject)
    }
}

/// A token of `issuer` for `subject` with the role `user`.
fn issue(issuer: &JwtIssuer, subject: &str) -> String {
    let principal = Principal::new(subject, AuthMethod::Password).with_roles(["user"]);
    issuer
        .issue_token(&principal)
        .unwrap()
        .token()
        .expose()
        .to_owned()
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

/// A key of the fixtures, built into the binary (it runs anywhere).
fn fixture(name: &str) -> Vec<u8> {
    wsgate_testkit::fixtures::jwt(name).to_vec()
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
    let (_, es_verification) = es256_keys();
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
    // wiring (revocations, audit).
    let es256_handshake = HandshakeLayer::builder(BearerAuthenticator::new(es_verifier))
        .transports([Transport::Bearer])
        .wiring(gate.wiring())
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
            sockets.clone(),
            transports(&[Transport::Bearer, Transport::Basic]),
        ))
        // The soak's routes: every transport on one, and a first-message one.
        .merge(route(
            "/ws/any",
            sockets.clone(),
            gate.handshake()
                .transports([
                    Transport::Bearer,
                    Transport::Subprotocol,
                    Transport::Cookie,
                    Transport::Ticket,
                ])
                .application_protocols(["bench.v1"])
                .unwrap()
                .allowed_origins([ORIGIN])
                .unwrap()
                .build()
                .unwrap(),
        ))
        .merge(
            Router::new()
                .route("/ws/deferred", get(deferred_echo))
                .with_state(sockets),
        );
    let registry = gate.registry().clone();
    Gated {
        addr: serve(router).await,
        registry,
        gate,
        hs256: JwtIssuer::builder(hs_signing).build(),
    }
}

// ---------------------------------------------------------------- clients

async fn connect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
) -> Result<Client, String> {
    connect_from(None, addr, path, headers).await
}

/// The clients' WebSocket settings: a 4 KiB read buffer instead of
/// tungstenite's 128 KiB, which it zeroes before every read. The client is
/// not what is measured; the less it costs, the more surely the server is
/// what limits a round.
fn client_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4 * 1024)
}

/// Connects from `source` (a loopback address: one source address has
/// only about 28 000 ports, so 50 000 connections use several).
async fn connect_from(
    source: Option<std::net::IpAddr>,
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
    let socket = tokio::net::TcpSocket::new_v4().map_err(|error| error.to_string())?;
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|error| error.to_string())?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|error| error.to_string())?;
    let _ = stream.set_nodelay(true);
    tokio_tungstenite::client_async_with_config(
        request,
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
        Some(client_config()),
    )
    .await
    .map(|(client, _)| client)
    .map_err(|error| error.to_string())
}

/// Opens `count` connections, 64 handshakes at a time.
async fn connect_many(
    count: usize,
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, String)],
) -> Vec<Client> {
    futures_util::stream::iter(0..count)
        .map(|index| {
            let (path, headers) = (path.to_owned(), headers.to_vec());
            // 20 000 connections per source address, from 127.0.0.2 up.
            let source = std::net::Ipv4Addr::new(127, 0, 0, 2 + (index / 20_000) as u8);
            async move {
                connect_from(Some(source.into()), addr, &path, &headers)
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await
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

/// CPU time (user + system) of process `pid` (or `self`), from /proc.
fn cpu_time_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
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

/// A throughput sample: messages (or handshakes) per second; and, when the
/// server is a child process, its own CPU microseconds per message and how
/// busy it was (1.0: a whole core the whole window).
struct Sample {
    per_second: f64,
    server: Option<ServerCpu>,
}

#[derive(Clone, Copy)]
struct ServerCpu {
    per_item: f64,
    busy: f64,
}

/// Reads a server child's CPU time around a window.
struct ServerClock {
    pid: String,
    cpu: Duration,
    started: Instant,
}

impl ServerClock {
    fn start(pid: Option<u32>) -> Option<Self> {
        let pid = pid?.to_string();
        Some(Self {
            cpu: cpu_time_of(&pid),
            pid,
            started: Instant::now(),
        })
    }

    fn stop(self, items: u64) -> ServerCpu {
        let cpu = cpu_time_of(&self.pid) - self.cpu;
        ServerCpu {
            per_item: cpu.as_secs_f64() * 1e6 / items.max(1) as f64,
            busy: cpu.as_secs_f64() / self.started.elapsed().as_secs_f64(),
        }
    }
}

/// Lets `tasks` run until `window` has passed since `started`, stops them,
/// and makes the sample of the `count` they reached.
async fn end_window(
    window: Duration,
    stop: &AtomicBool,
    count: &AtomicU64,
    started: Instant,
    server_clock: Option<ServerClock>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> Sample {
    tokio::time::sleep_until((started + window).into()).await;
    stop.store(true, Ordering::Relaxed);
    let done = count.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    let server = server_clock.map(|clock| clock.stop(done));
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    Sample {
        per_second: done as f64 / elapsed.as_secs_f64(),
        server,
    }
}

/// Echo throughput: `connections` clients keep `in_flight` messages each in
/// flight for `window`; `server` is the server's pid when it is a child.
async fn throughput(
    addr: SocketAddr,
    path: &str,
    token: &str,
    shape: (usize, usize),
    window: Duration,
    server: Option<u32>,
) -> Sample {
    let (connections, in_flight) = shape;
    let message =
        serde_json::json!({"type": "say", "text": "hello, world", "token": token}).to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let clients = connect_many(connections, addr, path, &bearer(token)).await;
    let started = Instant::now();
    let server_clock = ServerClock::start(server);
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
    end_window(window, &stop, &count, started, server_clock, tasks).await
}

/// Handshakes per second with 32 clients connecting and disconnecting in a
/// loop; `credentials` gives each attempt its headers and path. With the
/// server's pid, also its CPU per handshake.
async fn handshakes<F>(addr: SocketAddr, window: Duration, credentials: F) -> f64
where
    F: Fn() -> (String, Vec<(&'static str, String)>) + Send + Sync + 'static,
{
    handshake_sample(addr, window, None, credentials)
        .await
        .per_second
}

/// Like [`handshakes`], with the whole sample.
async fn handshake_sample<F>(
    addr: SocketAddr,
    window: Duration,
    server: Option<u32>,
    credentials: F,
) -> Sample
where
    F: Fn() -> (String, Vec<(&'static str, String)>) + Send + Sync + 'static,
{
    let credentials = Arc::new(credentials);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let server_clock = ServerClock::start(server);
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
    end_window(window, &stop, &count, started, server_clock, tasks).await
}

/// Medians of a side's samples: rate, server µs per item, server busy.
fn medians(samples: &[Sample]) -> (f64, f64, f64) {
    let of = |value: &dyn Fn(&Sample) -> f64| median(samples.iter().map(value).collect());
    (
        of(&|sample| sample.per_second),
        of(&|sample| sample.server.map_or(f64::NAN, |server| server.per_item)),
        of(&|sample| sample.server.map_or(f64::NAN, |server| server.busy)),
    )
}

/// The spread of a side's rates: (max − min) / median, in percent.
fn spread(samples: &[Sample]) -> f64 {
    let rates: Vec<f64> = samples.iter().map(|sample| sample.per_second).collect();
    let (low, high) = rates
        .iter()
        .fold((f64::MAX, f64::MIN), |(low, high), rate| {
            (low.min(*rate), high.max(*rate))
        });
    (high - low) / median(rates) * 100.0
}

const TABLE_HEADER: &str =
    "bare/s  wsgate/s  ratio  server µs: bare  wsgate  (busy: bare wsgate; spread of rates)";

fn table_row(label: &str, bare: &[Sample], gated: &[Sample]) {
    let (bare_rate, bare_cpu, bare_busy) = medians(bare);
    let (gated_rate, gated_cpu, gated_busy) = medians(gated);
    println!(
        "{label:<46} {bare_rate:>9.0} {gated_rate:>9.0} {:>6.3} {bare_cpu:>9.2} {gated_cpu:>7.2}  ({bare_busy:.2} {gated_busy:.2}; ±{:.1} % ±{:.1} %)",
        gated_rate / bare_rate,
        spread(bare) / 2.0,
        spread(gated) / 2.0,
    );
}

// ---------------------------------------------------------------- parts

/// The bare and the gated server, each a child process on CPU 0.
async fn pinned_servers() -> (ServerChild, ServerChild) {
    (
        ServerChild::start_pinned("bare").await,
        ServerChild::start_pinned("wsgate").await,
    )
}

async fn messages(plan: &Plan) {
    let (bare, gated) = pinned_servers().await;
    let like_for_like = ServerChild::start_pinned("bare-small-buffer").await;
    let token = child_token("bench");
    println!(
        "\n## Messages per second (echo; servers on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}; median of {} alternating rounds of {:?})",
        plan.rounds, plan.message_window
    );
    println!("{:<46} {TABLE_HEADER}", "shape");
    for (shape, connections, in_flight) in [
        ("64 connections, 1 message in flight each", 64, 1),
        ("1 connection, 32 messages in flight", 1, 32),
    ] {
        for (label, reference, path) in [
            ("", &bare, "/ws"),
            (" [no token cache]", &bare, "/ws/uncached"),
            (" [bare with a 16 KiB read buffer]", &like_for_like, "/ws"),
        ] {
            let mut bare_samples = Vec::new();
            let mut gated_samples = Vec::new();
            for _ in 0..plan.rounds {
                for (server, path, samples) in [
                    (reference, "/ws", &mut bare_samples),
                    (&gated, path, &mut gated_samples),
                ] {
                    samples.push(
                        throughput(
                            server.addr,
                            path,
                            &token,
                            (connections, in_flight),
                            plan.message_window,
                            server.child.id(),
                        )
                        .await,
                    );
                }
            }
            table_row(&format!("{shape}{label}"), &bare_samples, &gated_samples);
        }
    }
    println!("(server µs: the server process's CPU time per message, user and kernel)");
}

/// Messages/s and server CPU per message as the connections grow, one
/// message in flight on each.
async fn scaling(plan: &Plan) {
    let counts: &[usize] = if plan.quick {
        &[1, 64, 500]
    } else {
        &[1, 64, 1_000, 10_000]
    };
    let rounds = if plan.quick { 1 } else { 5 };
    raise_file_limit(2 * counts.iter().max().copied().unwrap_or(0) as u64 + 1_024);
    let (bare, gated) = pinned_servers().await;
    let token = child_token("bench");
    println!(
        "\n## Scaling: connections with one message in flight each (servers on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}; median of {rounds} alternating rounds of {:?})",
        plan.message_window
    );
    println!("{:<46} {TABLE_HEADER}", "connections");
    for &count in counts {
        let mut bare_samples = Vec::new();
        let mut gated_samples = Vec::new();
        for _ in 0..rounds {
            for (server, samples) in [(&bare, &mut bare_samples), (&gated, &mut gated_samples)] {
                samples.push(
                    throughput(
                        server.addr,
                        "/ws",
                        &token,
                        (count, 1),
                        plan.message_window,
                        server.child.id(),
                    )
                    .await,
                );
            }
        }
        table_row(&count.to_string(), &bare_samples, &gated_samples);
    }
}

async fn handshake_rates(plan: &Plan) {
    let (bare, mut gated) = pinned_servers().await;
    let hs256 = child_token("bench");
    let es256 = child_es256_token("bench");
    let verification = gated.ask("verify-es256 2000").await[0]
        .parse::<f64>()
        .unwrap();
    let rounds = if plan.quick { 1 } else { plan.rounds };
    let mut samples: Vec<(&str, Vec<Sample>)> = ["bare", "HS256", "ES256", "ticket"]
        .iter()
        .map(|name| (*name, Vec::new()))
        .collect();
    for _ in 0..rounds {
        // Tickets are issued before the clock starts: redemption is measured.
        let wanted = if plan.quick { 2_000 } else { 30_000 };
        let pool = Arc::new(Mutex::new(gated.ask(&format!("tickets {wanted}")).await));
        type Credentials = Box<dyn Fn() -> (String, Vec<(&'static str, String)>) + Send + Sync>;
        let (hs256, es256) = (hs256.clone(), es256.clone());
        let attempts: [(&ServerChild, Credentials); 4] = [
            (&bare, Box::new(|| ("/ws".to_owned(), Vec::new()))),
            (&gated, Box::new(move || ("/ws".to_owned(), bearer(&hs256)))),
            (
                &gated,
                Box::new(move || ("/ws/es256".to_owned(), bearer(&es256))),
            ),
            (
                &gated,
                Box::new(move || {
                    let ticket = pool.lock().unwrap().pop().unwrap_or_default();
                    (format!("/ws/ticket?ticket={ticket}"), Vec::new())
                }),
            ),
        ];
        for ((server, credentials), (_, samples)) in attempts.into_iter().zip(&mut samples) {
            let sample = handshake_sample(
                server.addr,
                plan.handshake_window,
                server.child.id(),
                credentials,
            )
            .await;
            samples.push(sample);
        }
    }
    println!(
        "\n## Handshakes per second (32 concurrent clients, connect then drop; server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}; median of {rounds} alternating rounds of {:?})",
        plan.handshake_window
    );
    println!("{:<46} {TABLE_HEADER}", "credential");
    for (name, gated_samples) in &samples[1..] {
        table_row(name, &samples[0].1, gated_samples);
    }
    let (_, bare_cpu, _) = medians(&samples[0].1);
    let (_, es256_cpu, _) = medians(&samples[2].1);
    println!(
        "ES256: one signature verification costs {verification:.1} µs on the server's CPU (same run); an ES256 handshake costs the server {:.1} µs more than a bare one",
        es256_cpu - bare_cpu
    );
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
    let (addr, gated) = if side == "bare" {
        (serve(bare_router(live.clone())).await, None)
    } else if side == "bare-small-buffer" {
        // Bare axum with wsgate's read buffer: wsgate's own cost, like for like.
        let read_buffer = Some(wsgate::socket::DEFAULT_READ_BUFFER_BYTES);
        (
            serve(bare_router_with(live.clone(), read_buffer)).await,
            None,
        )
    } else {
        // With a Redis URL, the child is one process of several sharing it.
        let redis = std::env::var("WSGATE_BENCH_REDIS_URL")
            .ok()
            .map(|url| wsgate::redis::RedisStores::builder(url).build().unwrap());
        let gated = gated_server_with(redis.as_ref()).await;
        (gated.addr, Some(gated))
    };
    let registry = gated.as_ref().map(|gated| gated.registry.clone());
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
            // Tokens the child accepts, for a client of its own (a script
            // driving the child under callgrind, say).
            (Some("token"), Some(algorithm)) => {
                let token = match algorithm {
                    "es256" => child_es256_token("bench"),
                    _ => child_token("bench"),
                };
                say(format!("TOKEN {token}")).await;
            }
            (Some("fds"), _) => {
                let open = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
                say(format!("FDS {open}")).await;
            }
            (Some("tickets"), Some(count)) => {
                let gated = gated.as_ref().expect("tickets need the gated server");
                let principal = Principal::new("bench", AuthMethod::Token).with_roles(["user"]);
                let mut tickets = Vec::new();
                for _ in 0..count.parse::<usize>().unwrap() {
                    let ticket = gated.gate.issue_ticket(&principal).await.unwrap();
                    tickets.push(ticket.ticket().expose().to_owned());
                }
                say(format!("TICKETS {}", tickets.join(" "))).await;
            }
            (Some("verify-es256"), Some(count)) => {
                // What one ES256 verification costs on this process's CPU.
                let (_, verification) = es256_keys();
                let verifier = JwtVerifier::builder().key(verification).build().unwrap();
                let token = child_es256_token("bench");
                let count = count.parse::<u32>().unwrap();
                let started = Instant::now();
                for _ in 0..count {
                    std::hint::black_box(verifier.verify_token(&token).unwrap());
                }
                let each = started.elapsed().as_secs_f64() * 1e6 / f64::from(count);
                say(format!("MICROSECONDS {each:.2}")).await;
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

    /// A child on the server's CPU, with one worker thread.
    async fn start_pinned(side: &str) -> Self {
        Self::spawn(side, &[], Some(SERVER_CPU)).await
    }

    async fn start_with(side: &str, environment: &[(&str, String)]) -> Self {
        Self::spawn(side, environment, None).await
    }

    async fn spawn(side: &str, environment: &[(&str, String)], pin: Option<usize>) -> Self {
        use tokio::io::AsyncBufReadExt;
        let pin = pin.map(|cpu| cpu.to_string());
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--server-child", side])
            .args(pin.iter().flat_map(|cpu| ["--pin", cpu.as_str()]))
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

/// The ES256 key pair of the fixtures: the children verify with it.
fn es256_keys() -> (wsgate::jwt::SigningKey, wsgate::jwt::VerificationKey) {
    KeyPair::from_private_pem(&fixture("es256-private.pem"))
        .unwrap()
        .into_parts()
}

/// An ES256 token the children's `/ws/es256` route accepts.
fn child_es256_token(subject: &str) -> String {
    issue(&JwtIssuer::builder(es256_keys().0).build(), subject)
}

/// Tokens the children accept: they sign with the same fixed test key.
fn child_token(subject: &str) -> String {
    let (signing, _) = KeyPair::hmac(&[42; 32], Algorithm::HS256)
        .unwrap()
        .into_parts();
    issue(&JwtIssuer::builder(signing).build(), subject)
}

async fn memory(plan: &Plan) {
    let most = plan.idle_connections.iter().max().copied().unwrap_or(0);
    let limit = raise_file_limit(most as u64 + 1_024) as usize;
    println!("\n## Resident memory of the server per idle connection");
    for &wanted in plan.idle_connections {
        // Each side holds one descriptor a connection, under the hard
        // limit, which only a process with CAP_SYS_RESOURCE may raise.
        let count = wanted.min(limit.saturating_sub(1_024));
        if count < wanted {
            println!(
                "({wanted} connections need {} open files a process; this machine allows {limit}: measured at {count})",
                wanted + 1_024
            );
        }
        let mut per_connection = Vec::new();
        for side in ["bare", "wsgate"] {
            let mut server = ServerChild::start(side).await;
            let token = child_token("bench");
            // Warm the server with one connection before the first reading.
            let warm = connect(server.addr, "/ws", &bearer(&token)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (before, _) = server.rss().await;
            let clients = connect_many(count, server.addr, "/ws", &bearer(&token)).await;
            loop {
                let (_, sockets) = server.rss().await;
                if sockets > count {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (after, _) = server.rss().await;
            per_connection.push(after.saturating_sub(before) as f64 / count as f64);
            drop((clients, warm));
            let _ = server.child.kill().await;
        }
        println!(
            "{count} connections: bare {:.0} B, wsgate {:.0} B: wsgate adds {:.0} B per connection",
            per_connection[0],
            per_connection[1],
            per_connection[1] - per_connection[0]
        );
    }
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
    let postgres_server = wsgate_testkit::postgres::Postgres::start();
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

async fn run_part(part: &str, plan: &Plan) {
    match part {
        "messages" => messages(plan).await,
        "handshakes" => handshake_rates(plan).await,
        "scaling" => scaling(plan).await,
        "identity-providers" => identity_providers(plan).await,
        "redis" => several_processes(plan).await,
        "sql" => accounts_in_sql(plan).await,
        "storm" => storm(plan, &gated_server().await).await,
        "memory" => memory(plan).await,
        "revocation" => revocation(plan).await,
        "soak" => soak::soak(plan, if plan.quick { 10 } else { 600 }).await,
        other => eprintln!("unknown part {other:?}; known: {}", PARTS.join(", ")),
    }
}

/// Set on the processes a whole run starts for its parts.
const PART_OF_RUN: &str = "WSGATE_LOAD_PART_OF_RUN";

fn header(plan: &Plan) {
    println!(
        "# wsgate load benchmark{}",
        if plan.quick {
            " (quick mode: figures are not meaningful)"
        } else {
            ""
        }
    );
    println!(
        "machine: CPUs {}, {} MiB memory",
        // The machine's, not this process's (a pinned part sees one).
        std::fs::read_to_string("/sys/devices/system/cpu/online")
            .unwrap_or_default()
            .trim(),
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
}

/// The parts `cargo bench --bench load` runs, in order, each in a process
/// of its own (so each part's pinning and file limits are its own).
const PARTS: [&str; 10] = [
    "messages",
    "handshakes",
    "scaling",
    "identity-providers",
    "redis",
    "sql",
    "storm",
    "memory",
    "revocation",
    "soak",
];

/// Parts that measure a server child on CPU 0 from a client on CPU 1, each
/// with one worker thread: the two sides never compete for a core, so the
/// rounds repeat, and the server's own CPU time per message is read from
/// `/proc`.
const PINNED_PARTS: [&str; 4] = ["messages", "handshakes", "scaling", "soak"];

/// The CPU the server children run on; the client takes the next one.
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;

fn argument_after<'a>(arguments: &'a [String], flag: &str) -> Option<&'a str> {
    let position = arguments.iter().position(|argument| argument == flag)?;
    arguments.get(position + 1).map(String::as_str)
}

/// Restricts this thread (and the threads it starts later: the runtime's)
/// to `cpu`; false where the machine has no such CPU.
fn pin_to(cpu: usize) -> bool {
    // The machine's CPUs, not this process's mask: a child starts with its
    // parent's mask, which holds only the client's CPU.
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let last = online
        .trim()
        .rsplit(['-', ','])
        .next()
        .and_then(|last| last.parse::<usize>().ok())
        .unwrap_or(0);
    // The client takes the higher CPU of the two.
    last >= CLIENT_CPU && core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let pin = argument_after(&arguments, "--pin")
        .and_then(|cpu| cpu.parse().ok())
        .or_else(|| {
            let part = argument_after(&arguments, "--part")
                .or_else(|| argument_after(&arguments, "--soak").map(|_| "soak"))?;
            PINNED_PARTS.contains(&part).then_some(CLIENT_CPU)
        })
        .or_else(|| {
            std::env::var_os("WSGATE_LOAD_PROFILE")
                .filter(|_| {
                    !arguments
                        .iter()
                        .any(|argument| argument == "--server-child")
                })
                .map(|_| CLIENT_CPU)
        });
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(cpu) = pin {
        if pin_to(cpu) {
            runtime.worker_threads(1);
        } else {
            eprintln!("(cannot pin to CPU {cpu} here: running unpinned)");
        }
    }
    runtime.build().unwrap().block_on(run(arguments));
}

async fn run(arguments: Vec<String>) {
    if let Some(position) = arguments
        .iter()
        .position(|argument| argument == "--server-child")
    {
        server_child(&arguments[position + 1]).await;
        return;
    }
    let plan = Plan::new(arguments.iter().any(|argument| argument == "--quick"));
    if std::env::var_os(PART_OF_RUN).is_none() {
        header(&plan);
    }
    if let Some(seconds) = argument_after(&arguments, "--soak") {
        soak::soak(&plan, seconds.parse().expect("--soak SECONDS")).await;
        return;
    }
    if let Some(part) = argument_after(&arguments, "--part") {
        run_part(part, &plan).await;
        return;
    }
    // For profiling one side alone for ten seconds: the server is a child
    // on CPU 0 (`perf record -C 0` sees only it), the client here on CPU 1.
    // WSGATE_LOAD_PROFILE=messages-bare|messages-wsgate|handshakes-bare|handshakes-hs256
    if let Ok(part) = std::env::var("WSGATE_LOAD_PROFILE") {
        let side = if part.ends_with("bare") {
            "bare"
        } else {
            "wsgate"
        };
        let server = ServerChild::start_pinned(side).await;
        let token = child_token("bench");
        let window = Duration::from_secs(10);
        let headers = if side == "bare" {
            Vec::new()
        } else {
            bearer(&token)
        };
        let sample = if part.starts_with("messages") {
            throughput(
                server.addr,
                "/ws",
                &token,
                (64, 1),
                window,
                server.child.id(),
            )
            .await
        } else {
            handshake_sample(server.addr, window, server.child.id(), move || {
                ("/ws".to_owned(), headers.clone())
            })
            .await
        };
        let cpu = sample.server.map_or(f64::NAN, |server| server.per_item);
        println!(
            "{part}: {:.0}/s, server {cpu:.2} µs CPU each",
            sample.per_second
        );
        return;
    }
    // Every part, each in a process of its own; the soak only when asked.
    for part in PARTS.iter().filter(|part| **part != "soak") {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args(["--bench", "--part", part])
            .env(PART_OF_RUN, "1");
        if plan.quick {
            command.arg("--quick");
        }
        let status = tokio::task::spawn_blocking(move || command.status())
            .await
            .unwrap()
            .expect("the benchmark runs itself");
        assert!(status.success(), "part {part} failed");
    }
}
