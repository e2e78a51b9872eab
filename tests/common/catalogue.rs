//! The hostile-input catalogue: named attacks on every stage of a wsgate
//! server, each with the exact outcome it must meet (status and body, or
//! close code and reason, or reply) and the audit event it must leave.
//!
//! One server (the [`Fortress`]) takes every attack in turn, so each case
//! also shows that what came before did not break it; `tests/it/hostile.rs`
//! checks the outcomes, `tests/no_secrets_in_logs.rs` replays the same
//! traffic and searches the logs for secrets.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::Message as ServerMessage;
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower::ServiceBuilder;
use wsgate::audit::{
    self, AuditEvent, AuditSink, Auditor, EventKind, JsonLinesAudit, TracingAudit,
};
use wsgate::authenticate::BasicAuthenticator;
use wsgate::limit::{FailureLimits, InMemoryFailureLimiter};
use wsgate::password::{Argon2id, PasswordVerifier};
use wsgate::pipeline::Deliver;
use wsgate::pipeline::{OnDeny, Requirement, RoleGuardLayer, RolePolicy};
use wsgate::socket::{DeferredUpgrade, GatedUpgrade, Limits, Registry, SocketGate};
use wsgate::store::{
    InMemoryCredentialStore, InMemoryRevocationStore, InMemoryTicketStore, Revocation,
    RevocationStore, StoredUser,
};
use wsgate::ticket::Tickets;
use wsgate::{Gate, Transport};

pub use crate::common::Client;
use crate::common::dpop::ClientKey;
use crate::common::raw::{self, RawFrame, RawSocket};
use crate::common::{
    ALICE_PASSWORD, ALLOWED_ORIGIN, BOB_PASSWORD, Handshake, Keys, Outcome, TOKEN_TYPE, basic,
    connect, forge, issue_expired_ticket, issue_ticket, now, open_with_bearer, refusal,
    remember_secret, serve, unsigned,
};

/// The largest message the fortress accepts.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Messages a second per socket (bursts of twice that).
pub const MESSAGE_RATE: u32 = 20;
/// How long a first-message socket may stay silent.
pub const AUTH_DEADLINE: Duration = Duration::from_secs(1);
/// Unauthenticated first-message sockets: in total, and per address.
pub const UNAUTHENTICATED: (usize, usize) = (4, 2);
/// Failed passwords before an account locks, and per address.
pub const ACCOUNT_THRESHOLD: u32 = 3;
pub const ADDRESS_THRESHOLD: u32 = 5;
/// Live sockets one subject may hold at once.
pub const SOCKETS_PER_SUBJECT: usize = 8;

/// A server with every stage of wsgate switched on, and a record of every
/// audit event it made.
pub struct Fortress {
    pub addr: SocketAddr,
    pub keys: Keys,
    pub tickets: Tickets,
    pub ticket_store: InMemoryTicketStore,
    pub registry: Registry,
    pub revocations: InMemoryRevocationStore,
    pub events: Arc<Mutex<Vec<AuditEvent>>>,
    pub audit_file: PathBuf,
    json_lines: Arc<JsonLinesAudit>,
    serial: AtomicUsize,
}

#[derive(Clone)]
struct AppState {
    gate: Gate,
    strict: SocketGate,
    bulk: SocketGate,
}

async fn echo_with(gate: &SocketGate, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(gate, |mut socket| async move {
        let welcome = json!({"type": "welcome", "sub": socket.principal().subject()});
        let _ = socket
            .send(ServerMessage::Text(welcome.to_string().into()))
            .await;
        while let Some(inbound) = socket.recv().await {
            if socket.send(inbound.into_message()).await.is_err() {
                break;
            }
        }
    })
}

async fn echo(State(state): State<AppState>, upgrade: GatedUpgrade) -> Response {
    echo_with(state.gate.sockets(), upgrade).await
}

async fn strict_echo(State(state): State<AppState>, upgrade: GatedUpgrade) -> Response {
    echo_with(&state.strict, upgrade).await
}

/// Echoes messages up to 64 KiB with no rate limit: the route where a
/// client can ask for more than it reads.
async fn bulk_echo(State(state): State<AppState>, upgrade: GatedUpgrade) -> Response {
    echo_with(&state.bulk, upgrade).await
}

async fn deferred(State(state): State<AppState>, upgrade: DeferredUpgrade) -> Response {
    upgrade.on_upgrade(&state.gate, |mut socket| async move {
        let welcome = json!({"type": "welcome", "sub": socket.principal().subject()});
        let _ = socket
            .send(ServerMessage::Text(welcome.to_string().into()))
            .await;
        while let Some(inbound) = socket.recv().await {
            if socket.send(inbound.into_message()).await.is_err() {
                break;
            }
        }
    })
}

/// The accounts Basic knows, all with Alice's password except Bob's.
const ACCOUNTS: [&str; 6] = ["alice", "carol", "dave", "erin", "frank", "grace"];

impl Fortress {
    pub async fn start() -> Arc<Self> {
        let keys = Keys::load();
        remember_secret(ALICE_PASSWORD);
        remember_secret(BOB_PASSWORD);
        let verifier = keys.verifier();
        let revocations = InMemoryRevocationStore::new();

        let events = Arc::new(Mutex::new(Vec::new()));
        let audit_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "hostile-audit-{}-{}.jsonl",
            std::process::id(),
            now()
        ));
        let json_lines = Arc::new(JsonLinesAudit::open(&audit_file).unwrap());
        let sink = {
            let events = events.clone();
            let json_lines = json_lines.clone();
            move |event: &AuditEvent| {
                events.lock().unwrap().push(event.clone());
                TracingAudit.record(event);
                json_lines.record(event);
            }
        };
        let auditor = Auditor::new(sink);

        // Cheap argon2id parameters: the catalogue is about outcomes, and
        // hashes many passwords.
        let passwords = PasswordVerifier::with_hasher(Argon2id::new(256, 1, 1).unwrap()).unwrap();
        let users = InMemoryCredentialStore::new();
        for name in ACCOUNTS {
            let hash = passwords.hash(&ALICE_PASSWORD.into()).await.unwrap();
            users.insert(name, StoredUser::new(name, hash).with_roles(["user"]));
        }
        let bob = passwords.hash(&BOB_PASSWORD.into()).await.unwrap();
        users.insert(
            "bob",
            StoredUser::new("bob", bob)
                .with_roles(["user"])
                .disabled(true),
        );

        let ticket_store = InMemoryTicketStore::new();
        let tickets = Tickets::new(ticket_store.clone());
        let limiter = InMemoryFailureLimiter::with_limits(
            FailureLimits::default()
                .account_threshold(ACCOUNT_THRESHOLD)
                .unwrap()
                .address_threshold(ADDRESS_THRESHOLD)
                .unwrap()
                .lockout(Duration::from_secs(30), Duration::from_secs(3_600)),
        );
        let policy = || {
            RolePolicy::by_type()
                .prefix("admin.", Requirement::any_role(["admin"]))
                .otherwise(Requirement::any_role(["user"]))
        };
        // One gate: every stage shares its stores, limiter, proxies and
        // audit. The loopback peer plays a reverse proxy, so cases can speak
        // for many client addresses; 127.0.0.2 is a client that is not.
        let gate = Gate::builder(verifier)
            .passwords(BasicAuthenticator::new(users, passwords))
            .revocations(revocations.clone())
            .tickets(ticket_store.clone())
            .failure_limiter(limiter)
            .trusted_proxies([LOOPBACK])
            .max_sockets_per_subject(SOCKETS_PER_SUBJECT)
            .unwrap()
            .audit(auditor)
            .limits(
                Limits::default()
                    .max_message_bytes(MAX_MESSAGE_BYTES)
                    .unwrap()
                    .message_rate(MESSAGE_RATE)
                    .auth_deadline(AUTH_DEADLINE)
                    .unwrap()
                    .max_unauthenticated(UNAUTHENTICATED.0, UNAUTHENTICATED.1)
                    .unwrap(),
            )
            .guard(RoleGuardLayer::new(policy()).on_deny(OnDeny::Reply))
            .build()
            .unwrap();
        let handshake = gate
            .handshake()
            .transports([
                Transport::Bearer,
                Transport::Basic,
                Transport::Subprotocol,
                Transport::Cookie,
                Transport::Ticket,
            ])
            .allowed_origins([ALLOWED_ORIGIN])
            .unwrap()
            .application_protocols(["chat.v1"])
            .unwrap()
            .build()
            .unwrap();
        let strict = gate.sockets_with(
            ServiceBuilder::new()
                .layer(gate.audit_layer())
                .layer(gate.message_token_layer())
                .layer(RoleGuardLayer::new(policy()).on_deny(OnDeny::Close))
                .service(Deliver),
        );
        let registry = gate.registry().clone();
        // The gate's registry and audit, the default limits.
        let bulk = SocketGate::builder(registry.clone())
            .pipeline(
                ServiceBuilder::new()
                    .layer(gate.audit_layer())
                    .layer(RoleGuardLayer::new(policy()).on_deny(OnDeny::Reply))
                    .service(Deliver),
            )
            .build();
        let router = Router::new()
            .route("/ws", get(echo))
            .route("/ws/strict", get(strict_echo))
            .route("/ws/bulk", get(bulk_echo))
            .route_layer(handshake)
            .route("/ws/deferred", get(deferred))
            .with_state(AppState { gate, strict, bulk });
        let addr = serve(router).await;
        Arc::new(Self {
            addr,
            keys,
            tickets,
            ticket_store,
            registry,
            revocations,
            events,
            audit_file,
            json_lines,
            serial: AtomicUsize::new(0),
        })
    }

    /// Claims for `subject` with a jti of their own, valid five minutes.
    pub fn claims(&self, subject: &str) -> Value {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let mut claims = Keys::claims(subject);
        claims["jti"] = json!(format!("jti-{subject}-{serial}"));
        claims
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.keys.sign_with(Algorithm::HS256, claims, |_| {})
    }

    /// A good token for `subject`.
    pub fn token(&self, subject: &str) -> String {
        self.sign(&self.claims(subject))
    }

    /// A good token for `subject` after `change` edits its claims.
    pub fn token_with(&self, subject: &str, change: impl FnOnce(&mut Value)) -> String {
        let mut claims = self.claims(subject);
        change(&mut claims);
        self.sign(&claims)
    }

    /// A token for `subject` whose jti is revoked.
    pub async fn revoked_token(&self, subject: &str) -> String {
        let claims = self.claims(subject);
        let jti = claims["jti"].as_str().unwrap().to_owned();
        self.revocations
            .revoke(Revocation::Token(jti))
            .await
            .unwrap();
        self.sign(&claims)
    }

    pub fn expired_token(&self, subject: &str) -> String {
        self.token_with(subject, |claims| claims["exp"] = json!(now() - 3_600))
    }

    /// A token signed with a key the server does not trust.
    pub fn forged_token(&self, subject: &str) -> String {
        forge(
            &json!({"alg": "HS256", "kid": "hs", "typ": TOKEN_TYPE}),
            &self.claims(subject),
            b"an-attacker-made-this-hmac-key-32b",
        )
    }

    pub async fn ticket(&self, subject: &str) -> String {
        issue_ticket(&self.tickets, subject).await
    }

    pub async fn expired_ticket(&self, subject: &str) -> String {
        issue_expired_ticket(&self.ticket_store, subject).await
    }

    /// Every audit event so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until the JSON-lines file holds every event recorded so far.
    pub fn flush_audit_file(&self) {
        self.json_lines.flush();
    }

    /// Opens a socket on `path` with a bearer token; returns it after the
    /// welcome.
    pub async fn open(&self, path: &str, token: &str) -> Client {
        let mut client = open_with_bearer(self.addr, path, token).await;
        let welcome = next_text(&mut client).await.expect("no welcome");
        assert!(welcome.contains("welcome"), "{welcome}");
        client
    }

    /// Opens a first-message socket (nothing sent yet), from `local`.
    pub async fn open_deferred_from(&self, local: IpAddr) -> Result<Client, Observed> {
        self.open_deferred_with(local, None).await
    }

    /// Opens a first-message socket through the trusted proxy (the
    /// loopback) for client 203.0.113.`client`.
    pub async fn open_deferred_behind_proxy(&self, client: u8) -> Result<Client, Observed> {
        self.open_deferred_with(LOOPBACK, Some(client)).await
    }

    async fn open_deferred_with(
        &self,
        local: IpAddr,
        forwarded_client: Option<u8>,
    ) -> Result<Client, Observed> {
        let mut request = format!("ws://{}/ws/deferred", self.addr)
            .into_client_request()
            .unwrap();
        if let Some(client) = forwarded_client {
            let (name, value) = forwarded_for(client);
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        connect_from(local, self.addr, request).await
    }

    /// The peer of the latest event of `kind`.
    pub fn last_peer(&self, kind: EventKind) -> Option<SocketAddr> {
        self.events()
            .iter()
            .rev()
            .find(|event| event.event == kind)
            .and_then(|event| event.peer)
    }

    pub async fn open_deferred(&self) -> Client {
        self.open_deferred_from(LOOPBACK).await.unwrap()
    }

    /// A raw frame-level socket on `/ws`, authenticated.
    pub async fn open_raw(&self) -> RawSocket {
        let token = self.token("alice");
        let mut socket = RawSocket::open(
            self.addr,
            "/ws",
            &[("Authorization", format!("Bearer {token}"))],
        )
        .await;
        socket.next_text().await.expect("no welcome");
        socket
    }

    /// A handshake: its status and body, or acceptance.
    pub async fn handshake(&self, handshake: Handshake) -> Observed {
        Observed::from(connect(self.addr, &handshake).await)
    }
}

pub const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Connects from the loopback address `local` (any 127.x.y.z), so the
/// server sees a client address of the test's choosing.
pub async fn connect_from(
    local: IpAddr,
    addr: SocketAddr,
    request: http::Request<()>,
) -> Result<Client, Observed> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    match tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
    {
        Ok((client, _)) => Ok(client),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(Observed::from(refusal(&response)))
        }
        Err(error) => panic!("handshake failed below HTTP: {error}"),
    }
}

/// A handshake from `local` with `headers`.
pub async fn handshake_from(
    local: IpAddr,
    addr: SocketAddr,
    headers: &[(&'static str, String)],
) -> Observed {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .append(*name, http::HeaderValue::from_str(value).unwrap());
    }
    match connect_from(local, addr, request).await {
        Ok(mut client) => {
            let welcome: Value =
                serde_json::from_str(&next_text(&mut client).await.unwrap()).unwrap();
            Observed::Accepted {
                sub: welcome["sub"].as_str().unwrap().to_owned(),
            }
        }
        Err(refused) => refused,
    }
}

/// The next text message, skipping control frames; `None` at a close.
pub async fn next_text(client: &mut Client) -> Option<String> {
    while let Some(message) = client.next().await {
        match message {
            Ok(Message::Text(text)) => return Some(text.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
}

/// Reads until the socket ends: the close frame's code and reason, or what
/// else came first.
pub async fn outcome_of(client: &mut Client) -> Observed {
    while let Some(message) = client.next().await {
        match message {
            Ok(Message::Close(Some(frame))) => {
                return Observed::Closed {
                    code: frame.code.into(),
                    reason: frame.reason.to_string(),
                };
            }
            Ok(Message::Close(None)) | Err(_) => return Observed::Dropped,
            Ok(Message::Text(text)) => {
                return match serde_json::from_str::<Value>(text.as_str()) {
                    Ok(value) if value["type"] == "error" => Observed::Replied(value),
                    _ => Observed::Echoed(text.to_string()),
                };
            }
            Ok(_) => {}
        }
    }
    Observed::Dropped
}

/// Closes `clients` and waits until the server has let each go, so the
/// next case starts with their places free.
async fn close_all(clients: Vec<Client>) {
    for mut client in clients {
        let _ = client.close(None).await;
        while client.next().await.is_some() {}
    }
}

/// Sends `value` as text.
pub async fn send_json(client: &mut Client, value: Value) {
    client
        .send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

/// What a case saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The upgrade was refused.
    Refused { status: u16, body: String },
    /// The upgrade went through; the welcome named this subject.
    Accepted { sub: String },
    /// The server closed the socket.
    Closed { code: u16, reason: String },
    /// The server answered with an error message and kept the socket.
    Replied(Value),
    /// The server echoed the message: it was let through.
    Echoed(String),
    /// Many attempts at once: how many ended with each status (101 for an
    /// accepted upgrade).
    Tally(BTreeMap<u16, usize>),
    /// The connection ended without a close frame.
    Dropped,
}

impl From<Outcome> for Observed {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Accepted { welcome, .. } => Observed::Accepted {
                sub: welcome["sub"].as_str().unwrap_or_default().to_owned(),
            },
            Outcome::Refused { status, body, .. } => Observed::Refused { status, body },
        }
    }
}

pub fn refused(status: u16, body: &str) -> Observed {
    Observed::Refused {
        status,
        body: body.to_owned(),
    }
}

pub fn closed(code: u16, reason: &str) -> Observed {
    Observed::Closed {
        code,
        reason: reason.to_owned(),
    }
}

pub fn accepted(sub: &str) -> Observed {
    Observed::Accepted {
        sub: sub.to_owned(),
    }
}

fn forbidden_reply(action: &str) -> Observed {
    Observed::Replied(json!({"type": "error", "code": "forbidden", "ref": action}))
}

pub fn tally(counts: &[(u16, usize)]) -> Observed {
    Observed::Tally(counts.iter().copied().collect())
}

/// The audit event a case must leave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Audit {
    /// An event of this kind and outcome, with this reason (and close code,
    /// when given).
    Event {
        kind: EventKind,
        outcome: audit::Outcome,
        reason: Option<&'static str>,
        code: Option<u16>,
    },
    /// No denial, no close: the input was let through or the client ended
    /// the connection itself.
    NoDenial,
}

impl Audit {
    /// Whether `event` is the one this expects.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        match *self {
            Audit::Event {
                kind,
                outcome,
                reason,
                code,
            } => {
                event.event == kind
                    && event.outcome == outcome
                    && event.reason == reason
                    && (code.is_none() || event.code == code)
            }
            Audit::NoDenial => false,
        }
    }
}

fn handshake_denied(reason: &'static str) -> Audit {
    Audit::Event {
        kind: EventKind::Handshake,
        outcome: audit::Outcome::Deny,
        reason: Some(reason),
        code: None,
    }
}

fn handshake_allowed() -> Audit {
    Audit::Event {
        kind: EventKind::Handshake,
        outcome: audit::Outcome::Allow,
        reason: None,
        code: None,
    }
}

/// A first-message socket refused after the upgrade: the handshake event
/// carries the close code.
fn first_message_denied(code: u16, reason: &'static str) -> Audit {
    Audit::Event {
        kind: EventKind::Handshake,
        outcome: audit::Outcome::Deny,
        reason: Some(reason),
        code: Some(code),
    }
}

fn socket_closed(code: u16, reason: &'static str) -> Audit {
    Audit::Event {
        kind: EventKind::Close,
        outcome: audit::Outcome::Deny,
        reason: Some(reason),
        code: Some(code),
    }
}

fn message_denied(reason: &'static str) -> Audit {
    Audit::Event {
        kind: EventKind::Message,
        outcome: audit::Outcome::Deny,
        reason: Some(reason),
        code: None,
    }
}

fn refresh_denied(reason: &'static str) -> Audit {
    Audit::Event {
        kind: EventKind::Refresh,
        outcome: audit::Outcome::Deny,
        reason: Some(reason),
        code: None,
    }
}

/// An attack: runs against the fortress, reports what it saw.
pub type Attack = fn(Arc<Fortress>) -> BoxFuture<'static, Observed>;

/// One named case of the catalogue.
pub struct Case {
    pub name: &'static str,
    pub attack: Attack,
    pub expect: Observed,
    pub audit: Audit,
    /// Client text that must reach the log escaped, on one line.
    pub logged_escaped: Option<&'static str>,
}

macro_rules! attack {
    (|$fortress:ident| $body:expr) => {{
        let attack: Attack = |$fortress: Arc<Fortress>| Box::pin(async move { $body });
        attack
    }};
}

fn case(name: &'static str, attack: Attack, expect: Observed, audit: Audit) -> Case {
    Case {
        name,
        attack,
        expect,
        audit,
        logged_escaped: None,
    }
}

/// Text meant to forge log lines or drive a terminal: CR/LF, an escape
/// sequence that clears the screen and turns red, a fake log entry.
pub const INJECTION: &str =
    "\r\n2026-01-01T00:00:00Z INFO wsgate::audit: handshake allow sub=\"root\"\u{1b}[2J\u{1b}[31m";

/// `X-Forwarded-For` from the trusted proxy: the client is 203.0.113.`n`.
fn forwarded_for(n: u8) -> (&'static str, String) {
    ("x-forwarded-for", format!("203.0.113.{n}"))
}

fn basic_attempt(user: &str, password: &str, client: u8) -> Handshake {
    let (name, value) = forwarded_for(client);
    Handshake::to("/ws")
        .origin(ALLOWED_ORIGIN)
        .header("authorization", basic(user, password))
        .header(name, value)
}

/// Opens `/ws` for alice, sends `message`, reports what came back.
async fn after_message(fortress: &Fortress, path: &str, message: Message) -> Observed {
    let mut client = fortress.open(path, &fortress.token("alice")).await;
    // The server may close before a large message is all written.
    let _ = client.send(message).await;
    outcome_of(&mut client).await
}

async fn after_json(fortress: &Fortress, path: &str, value: Value) -> Observed {
    after_message(fortress, path, Message::Text(value.to_string().into())).await
}

/// Opens `/ws` raw, sends `frames`, reports the close (or echo).
async fn after_frames(fortress: &Fortress, frames: &[RawFrame]) -> Observed {
    let mut socket = fortress.open_raw().await;
    for frame in frames {
        socket.send(frame).await;
    }
    raw_outcome(&mut socket).await
}

async fn raw_outcome(socket: &mut RawSocket) -> Observed {
    loop {
        match socket.next_frame().await {
            None => return Observed::Dropped,
            Some((raw::CLOSE, payload)) => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                return closed(code, &String::from_utf8_lossy(&payload[2..]));
            }
            Some((raw::TEXT, payload)) => {
                return Observed::Echoed(String::from_utf8(payload).unwrap());
            }
            Some(_) => {}
        }
    }
}

/// Sends a refresh carrying `token` (or none) on a fresh alice socket.
async fn after_refresh(fortress: &Fortress, token: Option<String>) -> Observed {
    let mut message = json!({"type": "auth.refresh"});
    if let Some(token) = token {
        message["token"] = json!(token);
    }
    after_json(fortress, "/ws", message).await
}

/// Sends a chat message carrying `token` (or none) on a fresh alice socket
/// of the per-message-token route.
async fn after_message_token(fortress: &Fortress, token: Option<String>, kind: &str) -> Observed {
    let mut message = json!({"type": kind, "text": "hello"});
    if let Some(token) = token {
        message["token"] = json!(token);
    }
    after_json(fortress, "/ws/strict", message).await
}

/// Sends `message` as the first message of a first-message socket.
async fn first_message(fortress: &Fortress, message: Message) -> Observed {
    let mut client = fortress.open_deferred().await;
    client.send(message).await.unwrap();
    outcome_of(&mut client).await
}

async fn first_token(fortress: &Fortress, token: String) -> Observed {
    let message = json!({"type": "auth", "token": token}).to_string();
    first_message(fortress, Message::Text(message.into())).await
}

/// `count` handshakes at once; how each ended.
async fn at_once(fortress: &Fortress, handshakes: Vec<Handshake>) -> Observed {
    let addr = fortress.addr;
    let tasks: Vec<_> = handshakes
        .into_iter()
        .map(|handshake| tokio::spawn(async move { connect(addr, &handshake).await.status() }))
        .collect();
    let mut counts = BTreeMap::new();
    for task in tasks {
        *counts.entry(task.await.unwrap()).or_insert(0) += 1;
    }
    Observed::Tally(counts)
}

/// Locks `account` with failed passwords from distinct clients.
async fn lock(fortress: &Fortress, account: &str, first_client: u8) {
    for client in 0..ACCOUNT_THRESHOLD as u8 {
        let outcome = fortress
            .handshake(basic_attempt(
                account,
                "not-the-password",
                first_client + client,
            ))
            .await;
        assert_eq!(outcome, refused(401, "invalid credentials"));
    }
}

/// A key, and a token of a fresh subject bound to it.
fn bound_token(fortress: &Fortress) -> (ClientKey, String) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let key = ClientKey::es256();
    let subject = format!("holder-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut claims = fortress.claims(&subject);
    claims["cnf"] = json!({"jkt": key.jkt()});
    (key, fortress.sign(&claims))
}

/// The URL a proof for the fortress's `/ws` names.
fn socket_url(fortress: &Fortress) -> String {
    format!("ws://{}/ws", fortress.addr)
}

/// Good claims of a proof for `GET url` with `token`.
fn proof_claims(url: &str, token: &str) -> Value {
    use sha2::Digest as _;
    json!({
        "htm": "GET",
        "htu": url,
        "iat": crate::common::now(),
        "jti": format!("hostile-{}", crate::common::now()),
        "ath": URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token.as_bytes())),
    })
}

fn dpop_handshake(token: &str, proof: &str) -> Handshake {
    Handshake::to("/ws")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
}

fn bearer(token: &str) -> Handshake {
    Handshake::to("/ws").bearer(token)
}

fn with_protocols(offer: String) -> Handshake {
    Handshake::to("/ws").header("sec-websocket-protocol", offer)
}

fn cookie(origin: Option<&str>, value: String) -> Handshake {
    let handshake = Handshake::to("/ws").header("cookie", value);
    match origin {
        Some(origin) => handshake.origin(origin),
        None => handshake,
    }
}

/// The whole catalogue, in the order it runs.
pub fn catalogue() -> Vec<Case> {
    use raw::{CLOSE, CONTINUATION, PING, TEXT};
    vec![
        // ---- Handshake: Authorization: Bearer ----
        case(
            "bearer: alg none",
            attack!(|f| f
                .handshake(bearer(&unsigned("none", &f.claims("alice"))))
                .await),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "bearer: HS256 signed with the RSA public key",
            attack!(|f| {
                let token = forge(
                    &json!({"alg": "HS256", "kid": "rs", "typ": TOKEN_TYPE}),
                    &f.claims("alice"),
                    &f.keys.rsa_public,
                );
                f.handshake(bearer(&token)).await
            }),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "bearer: kid holding CR/LF and terminal escapes",
            attack!(|f| {
                let token = forge(
                    &json!({"alg": "HS256", "kid": format!("hs{INJECTION}"), "typ": TOKEN_TYPE}),
                    &f.claims("alice"),
                    &f.keys.hmac_secret,
                );
                f.handshake(bearer(&token)).await
            }),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "bearer: 64 KiB token",
            attack!(|f| {
                let token = f.token_with("alice", |claims| {
                    claims["padding"] = json!("x".repeat(64 * 1024))
                });
                f.handshake(bearer(&token)).await
            }),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "bearer: expired token",
            attack!(|f| f.handshake(bearer(&f.expired_token("alice"))).await),
            refused(401, "token expired"),
            handshake_denied("token expired"),
        ),
        case(
            "bearer: revoked token",
            attack!(|f| {
                let token = f.revoked_token("alice").await;
                f.handshake(bearer(&token)).await
            }),
            refused(401, "token revoked"),
            handshake_denied("token revoked"),
        ),
        case(
            "bearer: signed by an untrusted key",
            attack!(|f| f.handshake(bearer(&f.forged_token("alice"))).await),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "authorization: a scheme no transport reads is no credential",
            attack!(|f| {
                f.handshake(Handshake::to("/ws").header(
                    "authorization",
                    "Digest username=\"alice\", response=\"6629fae49393a05397450978507c4ef1\"",
                ))
                .await
            }),
            refused(401, "missing credentials"),
            handshake_denied("missing credentials"),
        ),
        case(
            "bearer and someone else's ticket: the first transport in order decides",
            attack!(|f| {
                let ticket = f.ticket("mallory").await;
                let token = f.token("alice");
                let outcome = f
                    .handshake(Handshake::to(format!("/ws?ticket={ticket}")).bearer(&token))
                    .await;
                // The ticket was not looked at, so not spent either.
                assert_eq!(
                    f.handshake(Handshake::to(format!("/ws?ticket={ticket}")))
                        .await,
                    accepted("mallory")
                );
                outcome
            }),
            accepted("alice"),
            handshake_allowed(),
        ),
        // ---- Handshake: Authorization: Basic ----
        case(
            "basic: wrong password",
            attack!(|f| f
                .handshake(basic_attempt("alice", "not-her-password", 11))
                .await),
            refused(401, "invalid credentials"),
            handshake_denied("invalid credentials"),
        ),
        case(
            "basic: unknown user",
            attack!(|f| f
                .handshake(basic_attempt("mallory", ALICE_PASSWORD, 12))
                .await),
            refused(401, "invalid credentials"),
            handshake_denied("invalid credentials"),
        ),
        case(
            "basic: user name holding CR/LF and terminal escapes",
            attack!(|f| {
                let user = format!("eve{INJECTION}");
                f.handshake(basic_attempt(&user, ALICE_PASSWORD, 13)).await
            }),
            refused(401, "invalid credentials"),
            handshake_denied("invalid credentials"),
        ),
        case(
            "basic: 4 KiB password",
            attack!(|f| f
                .handshake(basic_attempt("alice", &"p".repeat(4096), 14))
                .await),
            refused(401, "invalid credentials"),
            handshake_denied("invalid credentials"),
        ),
        case(
            "basic: not base64",
            attack!(|f| {
                f.handshake(
                    Handshake::to("/ws")
                        .origin(ALLOWED_ORIGIN)
                        .header("authorization", "Basic %%%not-base64"),
                )
                .await
            }),
            refused(400, "malformed credentials"),
            handshake_denied("malformed credentials"),
        ),
        case(
            "basic: credentials that are not UTF-8",
            attack!(|f| {
                let value = format!("Basic {}", STANDARD.encode(b"alice:\xff\xfe\xc0"));
                f.handshake(
                    Handshake::to("/ws")
                        .origin(ALLOWED_ORIGIN)
                        .header("authorization", value),
                )
                .await
            }),
            refused(400, "malformed credentials"),
            handshake_denied("malformed credentials"),
        ),
        case(
            "basic: disabled account with its right password",
            attack!(|f| f.handshake(basic_attempt("bob", BOB_PASSWORD, 15)).await),
            refused(403, "account disabled"),
            handshake_denied("account disabled"),
        ),
        case(
            "basic: no Origin",
            attack!(|f| {
                f.handshake(
                    Handshake::to("/ws").header("authorization", basic("alice", ALICE_PASSWORD)),
                )
                .await
            }),
            refused(403, "origin required"),
            handshake_denied("origin required"),
        ),
        case(
            "basic: foreign Origin",
            attack!(|f| {
                f.handshake(
                    Handshake::to("/ws")
                        .origin("http://evil.test")
                        .header("authorization", basic("alice", ALICE_PASSWORD)),
                )
                .await
            }),
            refused(403, "origin not allowed"),
            handshake_denied("origin not allowed"),
        ),
        // ---- Handshake: token subprotocol ----
        case(
            "subprotocol: token without an application protocol",
            attack!(|f| {
                f.handshake(with_protocols(format!(
                    "wsgate.bearer.{}",
                    f.token("alice")
                )))
                .await
            }),
            refused(400, "application protocol required"),
            handshake_denied("application protocol required"),
        ),
        case(
            "subprotocol: two token entries",
            attack!(|f| {
                let (one, two) = (f.token("alice"), f.token("alice"));
                f.handshake(with_protocols(format!(
                    "chat.v1, wsgate.bearer.{one}, wsgate.bearer.{two}"
                )))
                .await
            }),
            refused(400, "ambiguous credentials"),
            handshake_denied("ambiguous credentials"),
        ),
        case(
            "subprotocol: token signed by an untrusted key",
            attack!(|f| {
                f.handshake(with_protocols(format!(
                    "chat.v1, wsgate.bearer.{}",
                    f.forged_token("alice")
                )))
                .await
            }),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "subprotocol: 200 decoy offers around the token",
            attack!(|f| {
                let decoys: Vec<String> = (0..200).map(|n| format!("decoy.{n}")).collect();
                f.handshake(with_protocols(format!(
                    "{}, chat.v1, wsgate.bearer.{}",
                    decoys.join(", "),
                    f.token("alice")
                )))
                .await
            }),
            accepted("alice"),
            handshake_allowed(),
        ),
        // ---- Handshake: cookie ----
        case(
            "cookie: no Origin",
            attack!(|f| f
                .handshake(cookie(None, format!("wsgate_token={}", f.token("alice"))))
                .await),
            refused(403, "origin required"),
            handshake_denied("origin required"),
        ),
        case(
            "cookie: Origin null",
            attack!(|f| {
                f.handshake(cookie(
                    Some("null"),
                    format!("wsgate_token={}", f.token("alice")),
                ))
                .await
            }),
            refused(403, "origin not allowed"),
            handshake_denied("origin not allowed"),
        ),
        case(
            "cookie: look-alike Origin",
            attack!(|f| {
                f.handshake(cookie(
                    Some("http://app.test:8080.evil.test"),
                    format!("wsgate_token={}", f.token("alice")),
                ))
                .await
            }),
            refused(403, "origin not allowed"),
            handshake_denied("origin not allowed"),
        ),
        case(
            "cookie: two token cookies",
            attack!(|f| {
                f.handshake(cookie(
                    Some(ALLOWED_ORIGIN),
                    format!(
                        "wsgate_token={}; wsgate_token={}",
                        f.token("alice"),
                        f.forged_token("admin")
                    ),
                ))
                .await
            }),
            refused(400, "ambiguous credentials"),
            handshake_denied("ambiguous credentials"),
        ),
        case(
            "cookie: token signed by an untrusted key",
            attack!(|f| {
                f.handshake(cookie(
                    Some(ALLOWED_ORIGIN),
                    format!("wsgate_token={}", f.forged_token("alice")),
                ))
                .await
            }),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        // ---- Handshake: query string and tickets ----
        case(
            "query: raw access token",
            attack!(|f| {
                f.handshake(Handshake::to(format!(
                    "/ws?access_token={}",
                    f.token("alice")
                )))
                .await
            }),
            refused(400, "token in query string"),
            handshake_denied("token in query string"),
        ),
        case(
            "ticket: replayed",
            attack!(|f| {
                let ticket = f.ticket("alice").await;
                let handshake = Handshake::to(format!("/ws?ticket={ticket}"));
                assert_eq!(f.handshake(handshake.clone()).await, accepted("alice"));
                f.handshake(handshake).await
            }),
            refused(401, "invalid ticket"),
            handshake_denied("invalid ticket"),
        ),
        case(
            "ticket: expired",
            attack!(|f| {
                let ticket = f.expired_ticket("alice").await;
                f.handshake(Handshake::to(format!("/ws?ticket={ticket}")))
                    .await
            }),
            refused(401, "invalid ticket"),
            handshake_denied("invalid ticket"),
        ),
        case(
            "ticket: made up",
            attack!(|f| f
                .handshake(Handshake::to(format!("/ws?ticket={}", "A".repeat(43))))
                .await),
            refused(401, "invalid ticket"),
            handshake_denied("invalid ticket"),
        ),
        case(
            "ticket: two tickets",
            attack!(|f| {
                let (one, two) = (f.ticket("alice").await, f.ticket("alice").await);
                f.handshake(Handshake::to(format!("/ws?ticket={one}&ticket={two}")))
                    .await
            }),
            refused(400, "ambiguous credentials"),
            handshake_denied("ambiguous credentials"),
        ),
        case(
            "ticket: 10 000 characters",
            attack!(|f| f
                .handshake(Handshake::to(format!("/ws?ticket={}", "Z".repeat(10_000))))
                .await),
            refused(401, "invalid ticket"),
            handshake_denied("invalid ticket"),
        ),
        case(
            "ticket: percent-escapes of bytes that are not UTF-8",
            attack!(|f| f
                .handshake(Handshake::to("/ws?ticket=%ff%fe%00%c0%af"))
                .await),
            refused(401, "invalid ticket"),
            handshake_denied("invalid ticket"),
        ),
        case(
            "ticket: 16 clients race to redeem one ticket",
            attack!(|f| {
                let ticket = f.ticket("alice").await;
                let handshakes = (0..16)
                    .map(|_| Handshake::to(format!("/ws?ticket={ticket}")))
                    .collect();
                at_once(&f, handshakes).await
            }),
            tally(&[(101, 1), (401, 15)]),
            handshake_denied("invalid ticket"),
        ),
        // ---- Lockout ----
        case(
            "lockout: a locked account refuses its right password",
            attack!(|f| {
                lock(&f, "carol", 21).await;
                f.handshake(basic_attempt("carol", ALICE_PASSWORD, 24))
                    .await
            }),
            refused(429, "too many attempts"),
            handshake_denied("too many attempts"),
        ),
        case(
            "lockout: right and wrong password look the same while locked",
            attack!(|f| {
                lock(&f, "dave", 31).await;
                let addr = f.addr;
                let right = connect(addr, &basic_attempt("dave", ALICE_PASSWORD, 34)).await;
                let wrong = connect(addr, &basic_attempt("dave", "still-wrong", 35)).await;
                assert_eq!(format!("{right:?}"), format!("{wrong:?}"));
                Observed::from(right)
            }),
            refused(429, "too many attempts"),
            handshake_denied("too many attempts"),
        ),
        case(
            "lockout: 20 concurrent guesses on one account",
            attack!(|f| {
                let guesses = (0..20)
                    .map(|n| basic_attempt("judy", &format!("burst-guess-{n}"), 70 + n))
                    .collect();
                at_once(&f, guesses).await
            }),
            tally(&[
                (401, ACCOUNT_THRESHOLD as usize),
                (429, 20 - ACCOUNT_THRESHOLD as usize),
            ]),
            handshake_denied("too many attempts"),
        ),
        case(
            "lockout: spraying many accounts from one address",
            attack!(|f| {
                for (index, account) in ["erin", "frank", "grace", "henry", "ivan"]
                    .iter()
                    .enumerate()
                {
                    assert_eq!(
                        f.handshake(basic_attempt(account, &format!("guess-{index}"), 40))
                            .await,
                        refused(401, "invalid credentials")
                    );
                }
                f.handshake(basic_attempt("alice", ALICE_PASSWORD, 40))
                    .await
            }),
            refused(429, "too many attempts"),
            handshake_denied("too many attempts"),
        ),
        case(
            "lockout: the sprayed account still opens from elsewhere",
            attack!(|f| f
                .handshake(basic_attempt("alice", ALICE_PASSWORD, 41))
                .await),
            accepted("alice"),
            handshake_allowed(),
        ),
        case(
            "lockout: X-Forwarded-For from an untrusted client is ignored",
            attack!(|f| {
                let untrusted: IpAddr = "127.0.0.2".parse().unwrap();
                for n in 0..ADDRESS_THRESHOLD as u8 {
                    let headers = [
                        ("origin", ALLOWED_ORIGIN.to_owned()),
                        ("authorization", basic(&format!("nobody-{n}"), "guess")),
                        forwarded_for(50 + n),
                    ];
                    assert_eq!(
                        handshake_from(untrusted, f.addr, &headers).await,
                        refused(401, "invalid credentials")
                    );
                }
                let headers = [
                    ("origin", ALLOWED_ORIGIN.to_owned()),
                    ("authorization", basic("alice", ALICE_PASSWORD)),
                    forwarded_for(60),
                ];
                handshake_from(untrusted, f.addr, &headers).await
            }),
            refused(429, "too many attempts"),
            handshake_denied("too many attempts"),
        ),
        // ---- First-message authentication and idle unauthenticated sockets ----
        case(
            "first message: silence past the deadline",
            attack!(|f| outcome_of(&mut f.open_deferred().await).await),
            closed(4401, "authentication timeout"),
            first_message_denied(4401, "authentication timeout"),
        ),
        case(
            "first message: pings only, past the deadline",
            attack!(|f| {
                let mut client = f.open_deferred().await;
                for _ in 0..8 {
                    if client
                        .send(Message::Ping(Default::default()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    tokio::time::sleep(AUTH_DEADLINE / 5).await;
                }
                outcome_of(&mut client).await
            }),
            closed(4401, "authentication timeout"),
            first_message_denied(4401, "authentication timeout"),
        ),
        case(
            "first message: not JSON",
            attack!(|f| first_message(&f, Message::Text("hello?".into())).await),
            closed(4401, "invalid token"),
            first_message_denied(4401, "invalid token"),
        ),
        case(
            "first message: binary",
            attack!(|f| first_message(&f, Message::Binary(vec![0x7b, 0x7d].into())).await),
            closed(4401, "invalid token"),
            first_message_denied(4401, "invalid token"),
        ),
        case(
            "first message: token signed by an untrusted key",
            attack!(|f| first_token(&f, f.forged_token("alice")).await),
            closed(4401, "invalid token"),
            first_message_denied(4401, "invalid token"),
        ),
        case(
            "first message: expired token",
            attack!(|f| first_token(&f, f.expired_token("alice")).await),
            closed(4401, "token expired"),
            first_message_denied(4401, "token expired"),
        ),
        case(
            "first message: revoked token",
            attack!(|f| {
                let token = f.revoked_token("alice").await;
                first_token(&f, token).await
            }),
            closed(4403, "token revoked"),
            first_message_denied(4403, "token revoked"),
        ),
        case(
            "first message: over the size limit",
            attack!(|f| {
                let message = json!({"type": "auth", "token": "x".repeat(MAX_MESSAGE_BYTES)});
                first_message(&f, Message::Text(message.to_string().into())).await
            }),
            closed(1009, "message too big"),
            first_message_denied(1009, "message too big"),
        ),
        case(
            "first message: text that is not UTF-8",
            attack!(|f| {
                let mut socket = RawSocket::open(f.addr, "/ws/deferred", &[]).await;
                socket
                    .send(&RawFrame::new(
                        TEXT,
                        &b"{\"type\":\"auth\",\"token\":\"\xff\xfe\"}"[..],
                    ))
                    .await;
                raw_outcome(&mut socket).await
            }),
            closed(1007, "invalid utf-8"),
            first_message_denied(1007, "invalid utf-8"),
        ),
        case(
            "unauthenticated sockets: over the cap for one address",
            attack!(|f| {
                let client: IpAddr = "127.0.0.3".parse().unwrap();
                let mut held = Vec::new();
                for _ in 0..UNAUTHENTICATED.1 {
                    held.push(f.open_deferred_from(client).await.unwrap());
                }
                let outcome = f.open_deferred_from(client).await;
                close_all(held).await;
                outcome.err().unwrap_or(Observed::Dropped)
            }),
            refused(429, "too many attempts"),
            handshake_denied("too many attempts"),
        ),
        case(
            "unauthenticated sockets: behind the trusted proxy the cap counts clients",
            attack!(|f| {
                let mut held = Vec::new();
                for _ in 0..UNAUTHENTICATED.1 {
                    held.push(f.open_deferred_behind_proxy(90).await.unwrap());
                }
                // Another client behind the same proxy still gets in.
                held.push(f.open_deferred_behind_proxy(91).await.unwrap());
                let outcome = f.open_deferred_behind_proxy(90).await;
                assert_eq!(
                    f.last_peer(EventKind::Handshake),
                    Some("203.0.113.90:0".parse().unwrap()),
                    "the refusal names the client, not the proxy"
                );
                close_all(held).await;
                outcome.err().unwrap_or(Observed::Dropped)
            }),
            refused(429, "too many attempts"),
            handshake_denied("too many attempts"),
        ),
        case(
            "unauthenticated sockets: over the cap in total",
            attack!(|f| {
                let mut held = Vec::new();
                for client in ["127.0.0.4", "127.0.0.5"] {
                    for _ in 0..UNAUTHENTICATED.1 {
                        held.push(f.open_deferred_from(client.parse().unwrap()).await.unwrap());
                    }
                }
                let outcome = f.open_deferred_from("127.0.0.6".parse().unwrap()).await;
                close_all(held).await;
                outcome.err().unwrap_or(Observed::Dropped)
            }),
            refused(503, "server busy"),
            handshake_denied("server busy"),
        ),
        // ---- Messages: size, fragments, UTF-8, protocol ----
        case(
            "message: text over the size limit",
            attack!(|f| after_message(
                &f,
                "/ws",
                Message::Text("x".repeat(MAX_MESSAGE_BYTES + 1).into())
            )
            .await),
            closed(1009, "message too big"),
            socket_closed(1009, "message too big"),
        ),
        case(
            "message: a client behind the proxy is named in its socket's events",
            attack!(|f| {
                let token = f.token("alice");
                let (name, value) = forwarded_for(99);
                let mut request = format!("ws://{}/ws", f.addr).into_client_request().unwrap();
                let headers = request.headers_mut();
                headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
                headers.insert(name, value.parse().unwrap());
                let mut client = connect_from(LOOPBACK, f.addr, request).await.unwrap();
                next_text(&mut client).await.expect("no welcome");
                let big = Message::Text("x".repeat(MAX_MESSAGE_BYTES + 1).into());
                let _ = client.send(big).await;
                let outcome = outcome_of(&mut client).await;
                assert_eq!(
                    f.last_peer(EventKind::Close),
                    Some("203.0.113.99:0".parse().unwrap()),
                    "the close event names the client, not the proxy"
                );
                outcome
            }),
            closed(1009, "message too big"),
            socket_closed(1009, "message too big"),
        ),
        case(
            "message: binary over the size limit",
            attack!(
                |f| after_message(&f, "/ws", Message::Binary(vec![0u8; 64 * 1024].into())).await
            ),
            closed(1009, "message too big"),
            socket_closed(1009, "message too big"),
        ),
        case(
            "message: small fragments adding up past the limit",
            attack!(|f| {
                let mut frames = vec![RawFrame::new(TEXT, vec![b'a'; 100]).not_final()];
                frames.extend(
                    (0..20).map(|_| RawFrame::new(CONTINUATION, vec![b'a'; 100]).not_final()),
                );
                frames.push(RawFrame::new(CONTINUATION, vec![b'a'; 100]));
                after_frames(&f, &frames).await
            }),
            closed(1009, "message too big"),
            socket_closed(1009, "message too big"),
        ),
        case(
            "message: fragments with a ping between them are one message",
            attack!(|f| {
                after_frames(
                    &f,
                    &[
                        RawFrame::new(TEXT, &b"{\"type\":\"chat\","[..]).not_final(),
                        RawFrame::new(PING, &b"between"[..]),
                        RawFrame::new(CONTINUATION, &b"\"text\":\"joined\"}"[..]),
                    ],
                )
                .await
            }),
            Observed::Echoed(r#"{"type":"chat","text":"joined"}"#.to_owned()),
            Audit::NoDenial,
        ),
        case(
            "message: continuation without a start",
            attack!(|f| after_frames(&f, &[RawFrame::new(CONTINUATION, &b"orphan"[..])]).await),
            closed(1002, "protocol error"),
            socket_closed(1002, "protocol error"),
        ),
        case(
            "message: text that is not UTF-8",
            attack!(|f| after_frames(&f, &[RawFrame::new(TEXT, &b"caf\xc3\x28 \xff"[..])]).await),
            closed(1007, "invalid utf-8"),
            socket_closed(1007, "invalid utf-8"),
        ),
        case(
            "message: a UTF-8 sequence broken across fragments",
            attack!(|f| {
                after_frames(
                    &f,
                    &[
                        RawFrame::new(TEXT, &b"snow \xe2\x98"[..]).not_final(),
                        RawFrame::new(CONTINUATION, &b"\x28 man"[..]),
                    ],
                )
                .await
            }),
            closed(1007, "invalid utf-8"),
            socket_closed(1007, "invalid utf-8"),
        ),
        case(
            "message: unmasked client frame",
            attack!(|f| after_frames(&f, &[RawFrame::new(TEXT, &b"{}"[..]).unmasked()]).await),
            closed(1002, "protocol error"),
            socket_closed(1002, "protocol error"),
        ),
        case(
            "message: reserved opcode",
            attack!(|f| after_frames(&f, &[RawFrame::new(0x3, &b"{}"[..])]).await),
            closed(1002, "protocol error"),
            socket_closed(1002, "protocol error"),
        ),
        case(
            "message: reserved bit without an extension",
            attack!(|f| after_frames(&f, &[RawFrame::new(TEXT, &b"{}"[..]).rsv(0b100)]).await),
            closed(1002, "protocol error"),
            socket_closed(1002, "protocol error"),
        ),
        case(
            "message: ping over 125 bytes",
            attack!(|f| after_frames(&f, &[RawFrame::new(PING, vec![0u8; 126])]).await),
            closed(1002, "protocol error"),
            socket_closed(1002, "protocol error"),
        ),
        case(
            "message: fragmented ping",
            attack!(|f| after_frames(&f, &[RawFrame::new(PING, &b"ping"[..]).not_final()]).await),
            closed(1002, "protocol error"),
            socket_closed(1002, "protocol error"),
        ),
        case(
            "message: close frame with a reserved code",
            attack!(|f| {
                let mut payload = 999u16.to_be_bytes().to_vec();
                payload.extend_from_slice(b"bye");
                after_frames(&f, &[RawFrame::new(CLOSE, payload)]).await
            }),
            closed(1002, "Protocol violation"),
            Audit::NoDenial,
        ),
        case(
            "message: flood past the rate limit",
            attack!(|f| {
                let mut client = f.open("/ws", &f.token("alice")).await;
                let message =
                    Message::Text(json!({"type": "chat", "text": "spam"}).to_string().into());
                for _ in 0..MESSAGE_RATE * 10 {
                    if client.feed(message.clone()).await.is_err() {
                        break;
                    }
                }
                let _ = client.flush().await;
                // Echoes of the burst come first; the close ends it.
                loop {
                    match outcome_of(&mut client).await {
                        Observed::Echoed(_) => continue,
                        other => break other,
                    }
                }
            }),
            closed(4429, "rate limited"),
            socket_closed(4429, "rate limited"),
        ),
        case(
            "message: ping flood past the rate limit",
            attack!(|f| {
                let mut socket = f.open_raw().await;
                for _ in 0..MESSAGE_RATE * 10 {
                    socket.send(&RawFrame::new(PING, &b"flood"[..])).await;
                }
                raw_outcome(&mut socket).await
            }),
            closed(4429, "rate limited"),
            socket_closed(4429, "rate limited"),
        ),
        case(
            "message: admin action from a user",
            attack!(|f| after_json(&f, "/ws", json!({"type": "admin.kick", "sub": "bob"})).await),
            forbidden_reply("admin.kick"),
            message_denied("forbidden"),
        ),
        Case {
            logged_escaped: Some("admin.\\r\\n"),
            ..case(
                "message: action holding CR/LF and terminal escapes",
                attack!(
                    |f| after_json(&f, "/ws", json!({"type": format!("admin.{INJECTION}")})).await
                ),
                forbidden_reply(&format!("admin.{INJECTION}")),
                message_denied("forbidden"),
            )
        },
        case(
            "message: duplicate type keys, the last one counts",
            attack!(|f| {
                after_message(
                    &f,
                    "/ws",
                    Message::Text(r#"{"type":"chat","type":"admin.kick"}"#.into()),
                )
                .await
            }),
            forbidden_reply("admin.kick"),
            message_denied("forbidden"),
        ),
        case(
            "message: JSON nested 500 deep",
            attack!(|f| {
                let nested = format!("{}{}", "[".repeat(500), "]".repeat(500));
                after_message(&f, "/ws", Message::Text(nested.into())).await
            }),
            Observed::Echoed(format!("{}{}", "[".repeat(500), "]".repeat(500))),
            Audit::NoDenial,
        ),
        case(
            "message: type that is not a string",
            attack!(|f| after_json(&f, "/ws", json!({"type": {"$ne": "chat"}})).await),
            Observed::Echoed(json!({"type": {"$ne": "chat"}}).to_string()),
            Audit::NoDenial,
        ),
        // ---- In-band refresh ----
        case(
            "refresh: another subject's token",
            attack!(|f| after_refresh(
                &f,
                Some(f.token_with("mallory", |c| c["exp"] = json!(now() + 3_600)))
            )
            .await),
            closed(4401, "invalid token"),
            refresh_denied("invalid token"),
        ),
        case(
            "refresh: token signed by an untrusted key",
            attack!(|f| after_refresh(&f, Some(f.forged_token("alice"))).await),
            closed(4401, "invalid token"),
            refresh_denied("invalid token"),
        ),
        case(
            "refresh: a token expiring earlier",
            attack!(|f| after_refresh(
                &f,
                Some(f.token_with("alice", |c| c["exp"] = json!(now() + 60)))
            )
            .await),
            closed(4401, "invalid token"),
            refresh_denied("invalid token"),
        ),
        case(
            "refresh: no token",
            attack!(|f| after_refresh(&f, None).await),
            closed(4401, "invalid token"),
            refresh_denied("invalid token"),
        ),
        case(
            "refresh: revoked token",
            attack!(|f| {
                let mut claims = f.claims("alice");
                claims["exp"] = json!(now() + 3_600);
                let jti = claims["jti"].as_str().unwrap().to_owned();
                f.revocations.revoke(Revocation::Token(jti)).await.unwrap();
                let token = f.sign(&claims);
                after_refresh(&f, Some(token)).await
            }),
            closed(4403, "token revoked"),
            refresh_denied("token revoked"),
        ),
        case(
            "refresh: expired token",
            attack!(|f| after_refresh(&f, Some(f.expired_token("alice"))).await),
            closed(4401, "token expired"),
            refresh_denied("token expired"),
        ),
        // ---- Per-message tokens ----
        case(
            "message token: missing",
            attack!(|f| after_message_token(&f, None, "chat").await),
            closed(4401, "invalid token"),
            message_denied("invalid token"),
        ),
        case(
            "message token: another subject's",
            attack!(|f| after_message_token(&f, Some(f.token("mallory")), "chat").await),
            closed(4401, "invalid token"),
            message_denied("invalid token"),
        ),
        case(
            "message token: signed by an untrusted key",
            attack!(|f| after_message_token(&f, Some(f.forged_token("alice")), "chat").await),
            closed(4401, "invalid token"),
            message_denied("invalid token"),
        ),
        case(
            "message token: expired",
            attack!(|f| after_message_token(&f, Some(f.expired_token("alice")), "chat").await),
            closed(4401, "token expired"),
            message_denied("token expired"),
        ),
        case(
            "message token: revoked",
            attack!(|f| {
                let token = f.revoked_token("alice").await;
                after_message_token(&f, Some(token), "chat").await
            }),
            closed(4403, "token revoked"),
            message_denied("token revoked"),
        ),
        case(
            "message token: valid, but the action needs a role it lacks",
            attack!(|f| after_message_token(&f, Some(f.token("alice")), "admin.kick").await),
            closed(4403, "forbidden"),
            message_denied("forbidden"),
        ),
        // ---- Live sockets and log injection through claims ----
        case(
            "revocation: a live socket of a revoked subject",
            attack!(|f| {
                let mut client = f.open("/ws", &f.token("victim")).await;
                let revocation = Revocation::Subject {
                    subject: "victim".into(),
                    issued_before: SystemTime::now() + Duration::from_secs(1),
                };
                assert_eq!(f.registry.revoke(revocation).await.unwrap(), 1);
                outcome_of(&mut client).await
            }),
            closed(4403, "token revoked"),
            socket_closed(4403, "token revoked"),
        ),
        Case {
            logged_escaped: Some("mallory\\r\\n"),
            ..case(
                "log injection: sub holding CR/LF and terminal escapes",
                attack!(|f| f
                    .handshake(bearer(&f.token(&format!("mallory{INJECTION}"))))
                    .await),
                accepted(&format!("mallory{INJECTION}")),
                handshake_allowed(),
            )
        },
        Case {
            logged_escaped: Some("jti-\\r\\n"),
            ..case(
                "log injection: jti holding CR/LF and terminal escapes",
                attack!(|f| {
                    let token = f.token_with("alice", |claims| {
                        claims["jti"] = json!(format!("jti-{INJECTION}"))
                    });
                    f.handshake(bearer(&token)).await
                }),
                accepted("alice"),
                handshake_allowed(),
            )
        },
        // ---- A client that stops reading ----
        case(
            "a client that stops reading: dropped after the write timeout",
            attack!(|f| {
                // Echoes of 30 KB messages fill a small receive window and
                // the server's send buffer; then the client reads nothing
                // until the server must have given up on it.
                let token = f.token("alice");
                let mut socket = RawSocket::open_with_receive_buffer(
                    f.addr,
                    "/ws/bulk",
                    &[("Authorization", format!("Bearer {token}"))],
                    4_096,
                )
                .await;
                socket.next_text().await.expect("no welcome");
                let say = json!({"type": "say", "text": "x".repeat(30_000)}).to_string();
                socket
                    .flood_until_stalled(&RawFrame::new(raw::TEXT, say), Duration::from_millis(300))
                    .await;
                let gone_by = wsgate::socket::DEFAULT_WRITE_TIMEOUT + Duration::from_millis(1_500);
                tokio::time::sleep(gone_by).await;
                // What the kernel still held comes, then the end: the close
                // frame never got out of the server's buffer.
                loop {
                    match socket.next_frame().await {
                        None => break Observed::Dropped,
                        Some((raw::CLOSE, payload)) => {
                            let code = u16::from_be_bytes([payload[0], payload[1]]);
                            break closed(code, &String::from_utf8_lossy(&payload[2..]));
                        }
                        Some(_) => {}
                    }
                }
            }),
            Observed::Dropped,
            socket_closed(1008, "slow consumer"),
        ),
        // ---- Floods of handshakes ----
        case(
            "flood: 100 garbage bearer tokens at once",
            attack!(|f| {
                let handshakes = (0..100)
                    .map(|n| Handshake::to("/ws").bearer(&format!("eyJnb3QiOiJ5b3UifQ.{n}.x")))
                    .collect();
                at_once(&f, handshakes).await
            }),
            tally(&[(401, 100)]),
            handshake_denied("invalid token"),
        ),
        // ---- Proofs of possession (DPoP) ----
        case(
            "dpop: a bound token without its proof",
            attack!(|f| {
                let (_, token) = bound_token(&f);
                f.handshake(Handshake::to("/ws").header("authorization", format!("DPoP {token}")))
                    .await
            }),
            refused(401, "invalid dpop proof"),
            handshake_denied("invalid dpop proof"),
        ),
        case(
            "dpop: a bound token shown as a Bearer token with a good proof",
            attack!(|f| {
                let (key, token) = bound_token(&f);
                let proof = key.proof(&socket_url(&f), Some(&token));
                f.handshake(Handshake::to("/ws").bearer(&token).header("dpop", proof))
                    .await
            }),
            refused(401, "invalid token"),
            handshake_denied("invalid token"),
        ),
        case(
            "dpop: a proof replayed",
            attack!(|f| {
                let (key, token) = bound_token(&f);
                let proof = key.proof(&socket_url(&f), Some(&token));
                let first = f.handshake(dpop_handshake(&token, &proof)).await;
                assert!(matches!(first, Observed::Accepted { .. }), "{first:?}");
                f.handshake(dpop_handshake(&token, &proof)).await
            }),
            refused(401, "dpop replay"),
            handshake_denied("dpop replay"),
        ),
        case(
            "dpop: a proof whose jwk carries its private key",
            attack!(|f| {
                let (key, token) = bound_token(&f);
                let mut header = key.header();
                header["jwk"]["d"] = json!("c2VjcmV0LWtleQ");
                let claims = proof_claims(&socket_url(&f), &token);
                let proof = key.sign_raw(&header, &claims);
                f.handshake(dpop_handshake(&token, &proof)).await
            }),
            refused(401, "invalid dpop proof"),
            handshake_denied("invalid dpop proof"),
        ),
        case(
            "dpop: a proof with alg none",
            attack!(|f| {
                let (key, token) = bound_token(&f);
                let mut header = key.header();
                header["alg"] = json!("none");
                let claims = proof_claims(&socket_url(&f), &token);
                let unsigned = format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                );
                f.handshake(dpop_handshake(&token, &unsigned)).await
            }),
            refused(401, "invalid dpop proof"),
            handshake_denied("invalid dpop proof"),
        ),
        case(
            "dpop: a proof of another key",
            attack!(|f| {
                let (_, token) = bound_token(&f);
                let thief = ClientKey::es256();
                let proof = thief.proof(&socket_url(&f), Some(&token));
                f.handshake(dpop_handshake(&token, &proof)).await
            }),
            refused(401, "invalid dpop proof"),
            handshake_denied("invalid dpop proof"),
        ),
        case(
            "dpop: two DPoP headers",
            attack!(|f| {
                let (key, token) = bound_token(&f);
                let url = socket_url(&f);
                let handshake = dpop_handshake(&token, &key.proof(&url, Some(&token)))
                    .header("dpop", key.proof(&url, Some(&token)));
                f.handshake(handshake).await
            }),
            refused(401, "invalid dpop proof"),
            handshake_denied("invalid dpop proof"),
        ),
        case(
            // Signed with the client's own key, so anyone can send one.
            "dpop: a proof dated past the end of time",
            attack!(|f| {
                let (key, token) = bound_token(&f);
                let proof = key.proof_with(&socket_url(&f), Some(&token), |claims| {
                    claims["iat"] = serde_json::json!(u64::MAX);
                });
                f.handshake(dpop_handshake(&token, &proof)).await
            }),
            refused(401, "invalid dpop proof"),
            handshake_denied("invalid dpop proof"),
        ),
        case(
            "flood: one token opens sockets past its subject's limit",
            attack!(|f| {
                let token = f.token("flooder");
                let mut held = Vec::new();
                for _ in 0..SOCKETS_PER_SUBJECT {
                    held.push(f.open("/ws", &token).await);
                }
                let more = (0..20).map(|_| bearer(&token)).collect();
                let observed = at_once(&f, more).await;
                close_all(held).await;
                observed
            }),
            tally(&[(429, 20)]),
            handshake_denied("too many connections"),
        ),
        case(
            "flood: first-message logins past the subject's limit",
            attack!(|f| {
                let token = f.token("flooder-first");
                let mut held = Vec::new();
                for _ in 0..SOCKETS_PER_SUBJECT {
                    held.push(f.open("/ws", &token).await);
                }
                let observed = first_token(&f, token).await;
                close_all(held).await;
                observed
            }),
            closed(4429, "too many connections"),
            first_message_denied(4429, "too many connections"),
        ),
    ]
}
