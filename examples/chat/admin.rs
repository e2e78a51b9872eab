//! The admin routes: accounts, live sockets, revocations and the audit
//! trail as it happens. Every one takes an admin's Bearer token (role
//! `admin`, or a provider's scope `chat:admin`) and answers 403 to anyone
//! else; the admin page (`/admin`) is a client of these routes only.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::ws::{Message, Utf8Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;
use wsgate::GateHandshakeLayer;
use wsgate::Secret;
use wsgate::accounts::AccountError;
use wsgate::audit::{AuditEvent, AuditSink};
use wsgate::prelude::*;
use wsgate::store::AccountStore as _;

use crate::{App, admins, json_error, unix_seconds};

/// The application subprotocol of `GET /admin/events`.
pub(crate) const EVENTS_PROTOCOL: &str = "admin.v1";

/// How many past events a new `/admin/events` socket is sent first.
const RECENT_EVENTS: usize = 50;

/// The admin routes, each behind the gate's Bearer layer; the events socket
/// behind `events_handshake`.
pub(crate) fn routes(gate: &Gate, events_handshake: GateHandshakeLayer) -> Router<App> {
    use axum::routing::{get, post};
    let bearer = || gate.bearer_layer();
    Router::new()
        .route("/admin/revoke", post(revoke).route_layer(bearer()))
        .route("/admin/kick", post(kick).route_layer(bearer()))
        .route(
            "/admin/users",
            get(list_users).post(create_user).route_layer(bearer()),
        )
        .route(
            "/admin/users/{username}/disable",
            post(disable_user).route_layer(bearer()),
        )
        .route(
            "/admin/users/{username}/enable",
            post(enable_user).route_layer(bearer()),
        )
        .route("/admin/sockets", get(list_sockets).route_layer(bearer()))
        .route(
            "/admin/events",
            get(events_socket).route_layer(events_handshake),
        )
}

/// A request from someone who may administer; anyone else gets 403.
struct Admin(Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if admins().is_met_by(&principal) {
            Ok(Self(principal))
        } else {
            Err(json_error(StatusCode::FORBIDDEN, "forbidden"))
        }
    }
}

/// The audit trail as it happens, for `/admin/events`: the last
/// [`RECENT_EVENTS`] events and a broadcast of every new one, as JSON.
/// Events hold no secret (tokens appear as fingerprints only), so they may
/// be shown to an admin as they are.
#[derive(Clone)]
pub(crate) struct AuditFeed {
    recent: Arc<Mutex<VecDeque<Utf8Bytes>>>,
    live: broadcast::Sender<Utf8Bytes>,
}

impl AuditFeed {
    pub(crate) fn new() -> Self {
        Self {
            recent: Arc::default(),
            live: broadcast::channel(256).0,
        }
    }

    /// The recent events, then every later one. Taken under the lock that
    /// `record` holds, so no event falls between the two or comes twice.
    fn subscribe(&self) -> (Vec<Utf8Bytes>, broadcast::Receiver<Utf8Bytes>) {
        let recent = self.recent.lock().unwrap();
        (recent.iter().cloned().collect(), self.live.subscribe())
    }
}

impl AuditSink for AuditFeed {
    fn record(&self, event: &AuditEvent) {
        let frame = json!({ "type": "audit", "event": event.to_json() }).to_string();
        let frame = Utf8Bytes::from(frame);
        let mut recent = self.recent.lock().unwrap();
        if recent.len() == RECENT_EVENTS {
            recent.pop_front();
        }
        recent.push_back(frame.clone());
        // No admin watching is not an error.
        let _ = self.live.send(frame);
    }
}

/// `GET /admin/events`: a WebSocket (subprotocol `admin.v1`, credentials
/// by the Bearer or subprotocol transport) that sends the recent audit
/// events, then each new one as `{"type":"audit","event":{…}}`. The gate
/// drives it like any socket: it closes at token expiry and on revocation.
async fn events_socket(State(app): State<App>, Admin(_): Admin, upgrade: GatedUpgrade) -> Response {
    let feed = app.feed.clone();
    upgrade.on_upgrade(&app.gate, move |mut socket| async move {
        let (recent, mut live) = feed.subscribe();
        for frame in recent {
            if socket.send(Message::Text(frame)).await.is_err() {
                return;
            }
        }
        loop {
            let frame = tokio::select! {
                // The page sends nothing; the loop ends when the socket does.
                inbound = socket.recv() => match inbound {
                    Some(_) => continue,
                    None => return,
                },
                event = live.recv() => match event {
                    Ok(frame) => frame,
                    // An admin too slow to keep up is told how much it missed.
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        Utf8Bytes::from(json!({ "type": "lagged", "missed": missed }).to_string())
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if socket.send(Message::Text(frame)).await.is_err() {
                return;
            }
        }
    })
}

/// `GET /admin/sockets`: this process's live sockets.
async fn list_sockets(State(app): State<App>, Admin(_): Admin) -> Response {
    let mut sockets = app.gate.registry().list();
    sockets.sort_by_key(|socket| socket.id);
    let sockets: Vec<_> = sockets
        .iter()
        .map(|socket| {
            json!({
                "id": socket.id.get(),
                "sub": socket.subject,
                "transport": socket.transport.map(Transport::as_str),
                "opened_at": unix_seconds(socket.opened_at),
                "expires_at": socket.expires_at.map(unix_seconds),
            })
        })
        .collect();
    Json(json!({ "sockets": sockets })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectRequest {
    sub: String,
}

/// `POST /admin/kick` `{"sub"}`: closes that subject's sockets on this
/// process with 4403 `forbidden`, like the `admin.kick` message; the
/// subject may reconnect (revoke to keep it out).
async fn kick(State(app): State<App>, Admin(admin): Admin, body: axum::body::Bytes) -> Response {
    let Ok(SubjectRequest { sub }) = serde_json::from_slice(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let closed = app.gate.registry().kick(&sub);
    tracing::info!(by = admin.subject(), sub = ?sub, closed, "kicked");
    Json(json!({ "closed": closed })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    sub: Option<String>,
    jti: Option<String>,
}

/// `POST /admin/revoke` `{"sub"}` or `{"jti"}`.
async fn revoke(State(app): State<App>, Admin(_): Admin, body: axum::body::Bytes) -> Response {
    let revocation = match serde_json::from_slice::<RevokeRequest>(&body) {
        Ok(RevokeRequest {
            sub: Some(subject),
            jti: None,
        }) => Revocation::Subject {
            subject,
            issued_before: SystemTime::now(),
        },
        Ok(RevokeRequest {
            sub: None,
            jti: Some(id),
        }) => Revocation::Token(id),
        _ => return json_error(StatusCode::BAD_REQUEST, "invalid_request"),
    };
    match app.gate.registry().revoke(revocation).await {
        Ok(closed) => Json(json!({ "closed": closed })).into_response(),
        Err(_) => json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

/// The answer to a refused account change.
pub(crate) fn account_error(error: &AccountError) -> Response {
    match error {
        AccountError::InvalidUsername => json_error(StatusCode::BAD_REQUEST, "invalid_username"),
        AccountError::UserExists => json_error(StatusCode::CONFLICT, "user_exists"),
        AccountError::UnknownUser => json_error(StatusCode::NOT_FOUND, "unknown_user"),
        AccountError::WeakPassword(rule) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "weak_password", "detail": rule.to_string() })),
        )
            .into_response(),
        _ => json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

/// `GET /admin/users`: every account, in username order, without hashes.
async fn list_users(State(app): State<App>, Admin(_): Admin) -> Response {
    match app.accounts.store().list_users().await {
        Ok(users) => {
            let users: Vec<_> = users
                .iter()
                .map(|(username, user)| {
                    json!({
                        "username": username,
                        "roles": user.roles(),
                        "disabled": user.is_disabled(),
                    })
                })
                .collect();
            Json(json!({ "users": users })).into_response()
        }
        Err(_) => json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// `POST /admin/users`: an admin creates an account under the policy.
async fn create_user(
    State(app): State<App>,
    Admin(admin): Admin,
    body: axum::body::Bytes,
) -> Response {
    let Ok(NewUser {
        username,
        password,
        roles,
    }) = serde_json::from_slice(&body)
    else {
        return json_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    match app
        .accounts
        .create(&username, &Secret::new(password), roles.clone())
        .await
    {
        Ok(()) => {
            tracing::info!(by = admin.subject(), user = ?username, "account created");
            (
                StatusCode::CREATED,
                Json(json!({ "username": username, "roles": roles })),
            )
                .into_response()
        }
        Err(error) => account_error(&error),
    }
}

/// `POST /admin/users/{username}/disable`: the account's sockets close
/// with 4403 `forbidden`, its tokens and logins are refused.
async fn disable_user(
    State(app): State<App>,
    Admin(admin): Admin,
    Path(username): Path<String>,
) -> Response {
    match app.accounts.disable(&username).await {
        Ok(closed) => {
            tracing::info!(by = admin.subject(), user = ?username, closed, "account disabled");
            Json(json!({ "closed": closed })).into_response()
        }
        Err(error) => account_error(&error),
    }
}

/// `POST /admin/users/{username}/enable`: the password logs in again;
/// tokens from before the account was disabled stay refused.
async fn enable_user(
    State(app): State<App>,
    Admin(admin): Admin,
    Path(username): Path<String>,
) -> Response {
    match app.accounts.enable(&username).await {
        Ok(()) => {
            tracing::info!(by = admin.subject(), user = ?username, "account enabled");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => account_error(&error),
    }
}
