//! The wsgate demo: a chat server whose every route is gated.
//!
//! Run with `cargo run --example chat`, then open http://127.0.0.1:3000 and
//! log in as `alice` / `alice-password-1` or `admin` / `admin-password-1`.
//! The contract this demo keeps (routes, messages, settings) is in the
//! README; other clients are written against it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use wsgate::authenticate::{Authenticator, BasicAuthenticator, BearerAuthenticator};
use wsgate::handshake::{Authenticated, HandshakeLayer};
use wsgate::jwt::{Algorithm, JwtIssuer, JwtVerifier, KeyPair};
use wsgate::password::PasswordVerifier;
use wsgate::store::InMemoryCredentialStore;
use wsgate::ticket::Tickets;
use wsgate::{ErrorKind, Principal, Secret, Transport};

const ISSUER: &str = "wsgate-demo";
const AUDIENCE: &str = "wsgate-chat";
const TOKEN_TYPE: &str = "at+jwt";
const APPLICATION_PROTOCOL: &str = "chat.v1";
const COOKIE_NAME: &str = "wsgate_token";
const MAX_ROOM_NAME: usize = 64;
/// Messages queued for one slow client before further ones are dropped.
const OUTBOX: usize = 256;

/// Settings from `WSGATE_*` environment variables.
struct Settings {
    address: SocketAddr,
    keys: KeyPair,
    token_lifetime: Duration,
    allowed_origins: Vec<String>,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let address = var("WSGATE_ADDR")
            .unwrap_or_else(|| "127.0.0.1:3000".to_owned())
            .parse()
            .map_err(|error| format!("WSGATE_ADDR: {error}"))?;
        let keys = match (var("WSGATE_JWT_KEY_FILE"), var("WSGATE_JWT_SECRET")) {
            (Some(path), _) => {
                let pem = std::fs::read(&path)
                    .map_err(|error| format!("WSGATE_JWT_KEY_FILE {path}: {error}"))?;
                KeyPair::from_private_pem(&pem)
                    .map_err(|error| format!("WSGATE_JWT_KEY_FILE {path}: {error}"))?
            }
            (None, Some(secret)) => KeyPair::hmac(secret.as_bytes(), Algorithm::HS256)
                .map_err(|error| format!("WSGATE_JWT_SECRET: {error}"))?,
            (None, None) => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).map_err(|error| error.to_string())?;
                KeyPair::hmac(&secret, Algorithm::HS256).map_err(|error| error.to_string())?
            }
        }
        .with_kid("demo-1");
        let token_lifetime = Duration::from_secs(
            var("WSGATE_TOKEN_TTL_SECS")
                .map_or(Ok(900), |ttl| ttl.parse())
                .map_err(|error| format!("WSGATE_TOKEN_TTL_SECS: {error}"))?,
        );
        let allowed_origins = var("WSGATE_ALLOWED_ORIGINS")
            .unwrap_or_else(|| "http://127.0.0.1:3000,http://localhost:3000".to_owned())
            .split(',')
            .map(|origin| origin.trim().to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        Ok(Self {
            address,
            keys,
            token_lifetime,
            allowed_origins,
        })
    }
}

type Outbox = mpsc::Sender<Message>;

/// Who is connected and which rooms they are in.
#[derive(Default)]
struct Rooms {
    members: HashMap<String, HashSet<u64>>,
    connections: HashMap<u64, Outbox>,
}

#[derive(Clone)]
struct App {
    passwords: BasicAuthenticator<InMemoryCredentialStore>,
    issuer: JwtIssuer,
    tickets: Tickets,
    rooms: Arc<Mutex<Rooms>>,
    next_connection: Arc<AtomicU64>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wsgate=debug".into()),
        )
        .init();
    if let Err(error) = run().await {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    let (signing, verification) = settings.keys.clone().into_parts();
    let algorithm = settings.keys.algorithm();

    let users = InMemoryCredentialStore::new();
    users.add_user("alice", "alice-password-1", ["user"])?;
    users.add_user("admin", "admin-password-1", ["user", "admin"])?;
    let passwords = BasicAuthenticator::new(users, PasswordVerifier::new()?);

    let verifier = JwtVerifier::builder()
        .key(verification)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .token_type(TOKEN_TYPE)
        .leeway(Duration::from_secs(5))?
        .build()?;
    let issuer = JwtIssuer::builder(signing)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .token_type(TOKEN_TYPE)
        .lifetime(settings.token_lifetime)?
        .build();
    let tickets = Tickets::in_memory();

    // Sockets: every transport. Explicit credentials come before the cookie a
    // browser attaches on its own.
    let socket_gate = HandshakeLayer::builder(
        BearerAuthenticator::new(verifier.clone())
            .or(passwords.clone())
            .or(tickets.clone()),
    )
    .transports([
        Transport::Bearer,
        Transport::Basic,
        Transport::Subprotocol,
        Transport::Ticket,
        Transport::Cookie,
    ])
    .allowed_origins(&settings.allowed_origins)?
    .application_protocols([APPLICATION_PROTOCOL])?
    .cookie_name(COOKIE_NAME)?
    .build()?;
    // Tickets are handed out only to a holder of a token.
    let ticket_gate = HandshakeLayer::builder(BearerAuthenticator::new(verifier))
        .transports([Transport::Bearer])
        .build()?;

    let app = App {
        passwords,
        issuer,
        tickets,
        rooms: Arc::default(),
        next_connection: Arc::new(AtomicU64::new(1)),
    };
    let router = Router::new()
        .route("/ws", get(chat_socket))
        .route("/ws/echo", get(echo_socket))
        .route_layer(socket_gate)
        .route("/tickets", post(issue_ticket).route_layer(ticket_gate))
        .route("/", get(page))
        .route("/login", post(login))
        .with_state(app);

    let listener = tokio::net::TcpListener::bind(settings.address).await?;
    tracing::info!(
        "wsgate demo on http://{} (tokens signed with {algorithm:?})",
        listener.local_addr()?
    );
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

async fn page() -> Html<&'static str> {
    Html(include_str!("chat.html"))
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

fn json_error(status: StatusCode, error: &'static str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

async fn login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(Login { username, password }) = serde_json::from_slice(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let password = Secret::new(password);
    let principal = match app.passwords.check_password(&username, &password).await {
        Ok(principal) => principal,
        Err(error) => {
            let (status, code) = match error.kind() {
                ErrorKind::AccountDisabled => (StatusCode::FORBIDDEN, "account_disabled"),
                ErrorKind::Backend(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                _ => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            };
            tracing::info!(%peer, reason = %error, "login refused");
            return json_error(status, code);
        }
    };
    let issued = match app.issuer.issue_token(&principal) {
        Ok(issued) => issued,
        Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let expires_in = app.issuer.lifetime().as_secs();
    let cookie = format!(
        "{COOKIE_NAME}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={expires_in}",
        issued.token().expose()
    );
    let mut response = Json(json!({
        "access_token": issued.token().expose(),
        "token_type": "Bearer",
        "expires_in": expires_in,
    }))
    .into_response();
    if let Ok(mut value) = HeaderValue::from_str(&cookie) {
        value.set_sensitive(true);
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    tracing::info!(%peer, sub = principal.subject(), "login accepted");
    response
}

async fn issue_ticket(State(app): State<App>, Authenticated(principal): Authenticated) -> Response {
    match app.tickets.issue(&principal).await {
        Ok(ticket) => {
            let mut response = Json(json!({
                "ticket": ticket.ticket().expose(),
                "expires_in": ticket.lifetime().as_secs(),
            }))
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

async fn chat_socket(
    State(app): State<App>,
    Authenticated(principal): Authenticated,
    ws: WebSocketUpgrade,
) -> Response {
    ws.protocols([APPLICATION_PROTOCOL])
        .on_upgrade(move |socket| chat(socket, app, principal))
}

async fn echo_socket(Authenticated(_): Authenticated, ws: WebSocketUpgrade) -> Response {
    ws.protocols([APPLICATION_PROTOCOL]).on_upgrade(echo)
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            Message::Text(text) => Message::Text(text),
            Message::Close(_) => break,
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn frame(value: &Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

async fn chat(mut socket: WebSocket, app: App, principal: Principal) {
    let connection = app.next_connection.fetch_add(1, Ordering::Relaxed);
    let (outbox, mut inbox) = mpsc::channel(OUTBOX);
    app.rooms
        .lock()
        .unwrap()
        .connections
        .insert(connection, outbox.clone());

    let welcome = json!({
        "type": "welcome",
        "sub": principal.subject(),
        "roles": principal.roles(),
        "expires_at": principal.expires_at().map(unix_seconds),
    });
    if socket.send(frame(&welcome)).await.is_ok() {
        loop {
            tokio::select! {
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(reply) = handle(&app, connection, &principal, &text)
                            && socket.send(frame(&reply)).await.is_err()
                        {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                Some(outgoing) = inbox.recv() => {
                    if socket.send(outgoing).await.is_err() {
                        break;
                    }
                }
            }
        }
    }

    let mut rooms = app.rooms.lock().unwrap();
    rooms.connections.remove(&connection);
    rooms.members.retain(|_, members| {
        members.remove(&connection);
        !members.is_empty()
    });
}

fn error_reply(code: &str, reference: &str) -> Value {
    json!({ "type": "error", "code": code, "ref": reference })
}

/// Handles one inbound frame; returns the reply to the sender, if any.
fn handle(app: &App, connection: u64, principal: &Principal, text: &str) -> Option<Value> {
    let Ok(message) = serde_json::from_str::<Value>(text) else {
        return Some(error_reply("invalid_message", ""));
    };
    let kind = message.get("type").and_then(Value::as_str).unwrap_or("");
    // Role policy: `admin.*` needs `admin`; everything else needs `user`.
    let needed = if kind.starts_with("admin.") {
        "admin"
    } else {
        "user"
    };
    if !principal.has_role(needed) {
        return Some(error_reply("forbidden", kind));
    }
    let room = message
        .get("room")
        .and_then(Value::as_str)
        .filter(|room| !room.is_empty() && room.len() <= MAX_ROOM_NAME);
    match (kind, room) {
        ("join", Some(room)) => {
            let mut rooms = app.rooms.lock().unwrap();
            rooms
                .members
                .entry(room.to_owned())
                .or_default()
                .insert(connection);
            None
        }
        ("say", Some(room)) => {
            let text = message.get("text").and_then(Value::as_str).unwrap_or("");
            let out = frame(&json!({
                "type": "message", "room": room, "from": principal.subject(), "text": text,
            }));
            let rooms = app.rooms.lock().unwrap();
            for member in rooms.members.get(room).into_iter().flatten() {
                if let Some(outbox) = rooms.connections.get(member) {
                    // A client too slow to drain its queue misses messages
                    // rather than stalling the room.
                    let _ = outbox.try_send(out.clone());
                }
            }
            None
        }
        ("join" | "say", None) => Some(error_reply("invalid_room", kind)),
        _ => Some(error_reply("unknown_type", kind)),
    }
}
