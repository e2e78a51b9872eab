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

mod first_message;
mod handshake;
mod lifecycle;
mod messages;
mod possession;

/// The whole catalogue, in the order it runs.
pub fn catalogue() -> Vec<Case> {
    [
        handshake::cases(),
        first_message::cases(),
        messages::cases(),
        lifecycle::cases(),
        possession::cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
