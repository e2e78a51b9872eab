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
//!
//! One file a part (`messages.rs`, `handshakes.rs`, `memory.rs`, …),
//! beside what they share: the servers, the clients, the measurements
//! and the server child.

mod child;
mod clients;
#[path = "../common/mod.rs"]
mod common;
mod cpus;
mod handshakes;
mod identity_providers;
mod measure;
mod memory;
mod messages;
mod reconnect;
mod revocation;
mod servers;
mod several_processes;
mod soak;
mod sql;
mod storm;
mod threads;

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

use child::*;
use clients::*;
use cpus::*;
use handshakes::*;
use identity_providers::*;
use measure::*;
use memory::*;
use messages::*;
use reconnect::*;
use revocation::*;
use servers::*;
use several_processes::*;
use sql::*;
use storm::*;
use threads::*;

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
                idle_connections: &[10_000, 50_000, 100_000],
                revocation_sockets: 100_000,
                revoked_per_subject: 100,
                storms: 5,
            }
        }
    }
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
        "threads" => threads(plan).await,
        "reconnect" => reconnect_storm(plan).await,
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
const PARTS: [&str; 12] = [
    "messages",
    "handshakes",
    "scaling",
    "threads",
    "identity-providers",
    "redis",
    "sql",
    "storm",
    "reconnect",
    "memory",
    "revocation",
    "soak",
];

/// Parts that measure a server child on CPU 0 from a client on CPU 1, each
/// with one worker thread: the two sides never compete for a core, so the
/// rounds repeat, and the server's own CPU time per message is read from
/// `/proc`.
const PINNED_PARTS: [&str; 4] = ["messages", "handshakes", "scaling", "soak"];

/// Parts whose servers take several CPUs ([`cpus::many_core_split`]): the
/// client runs on the CPUs after the largest server's.
const MANY_CORE_PARTS: [&str; 2] = ["threads", "reconnect"];

fn argument_after<'a>(arguments: &'a [String], flag: &str) -> Option<&'a str> {
    let position = arguments.iter().position(|argument| argument == flag)?;
    arguments.get(position + 1).map(String::as_str)
}

/// The CPUs this process runs on: given with `--cpus` (a server child),
/// or those of the client of the part it runs.
fn cpus_of(arguments: &[String]) -> Option<Cpus> {
    if let Some(list) = argument_after(arguments, "--cpus") {
        return Cpus::parse(list);
    }
    if std::env::var_os("WSGATE_LOAD_PROFILE").is_some() {
        return Some(client_cpu());
    }
    let part = argument_after(arguments, "--part")
        .or_else(|| argument_after(arguments, "--soak").map(|_| "soak"))?;
    if PINNED_PARTS.contains(&part) {
        Some(client_cpu())
    } else if MANY_CORE_PARTS.contains(&part) {
        Some(many_core_split().1)
    } else {
        None
    }
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(cpus) = cpus_of(&arguments) {
        // A worker thread a CPU; threads started from here on inherit the set.
        if cpus.pin_current_thread() {
            runtime.worker_threads(cpus.len());
        } else {
            eprintln!("(cannot pin to CPUs {cpus} here: running unpinned)");
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
    let mut plan = Plan::new(arguments.iter().any(|argument| argument == "--quick"));
    // Fewer rounds where the machine's time is counted (a lent quiet
    // machine): `--rounds 5`.
    if let Some(rounds) = argument_after(&arguments, "--rounds") {
        plan.rounds = rounds.parse().expect("--rounds N");
    }
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
        if let Some(rounds) = argument_after(&arguments, "--rounds") {
            command.args(["--rounds", rounds]);
        }
        let status = tokio::task::spawn_blocking(move || command.status())
            .await
            .unwrap()
            .expect("the benchmark runs itself");
        assert!(status.success(), "part {part} failed");
    }
}
