//! The wsgate demo: a chat server whose every route is gated.
//!
//! Run with `cargo run --example chat`, then open http://127.0.0.1:3000 and
//! log in as `alice` / `alice-password-1` or `admin` / `admin-password-1`.
//! The contract this demo keeps (routes, messages, settings) is in the
//! README; other clients are written against it.

mod admin;
mod pages;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::ws::{Message, Utf8Bytes};
use axum::extract::{ConnectInfo, FromRef, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use wsgate::accounts::Accounts;
use wsgate::audit::{JsonLinesAudit, TracingAudit};
use wsgate::authenticate::BasicAuthenticator;
use wsgate::authenticate::CertificateAuthenticator;
use wsgate::certificate::{ClientCertificate, ClientCertificates};
use wsgate::confirmation::{Confirmation, Possession};
use wsgate::dpop::{DpopMode, ProofRequest, TargetUrl};
use wsgate::handshake::OriginAllowlist;
use wsgate::limit::{FailureLimits, InMemoryFailureLimiter};
use wsgate::oidc::{OidcProvider, OidcVerifier};
use wsgate::password::{PasswordPolicy, PasswordVerifier};
use wsgate::prelude::*;
use wsgate::redis::RedisStores;
use wsgate::refresh_sessions::RefreshSessions;
use wsgate::serve::{ServerTls, Serving};
use wsgate::session::ConnectionId;
use wsgate::socket::{GatedSender, TrySendError};
use wsgate::sql::{SqlCredentialStore, SqlRefreshSessionStore};
use wsgate::store::{AccountStore as _, CredentialStore as _, StoredUser};
use wsgate::{AuthMethod, BoxedVerifier, ErrorKind, Secret, TokenVerifier as _};

const ISSUER: &str = "wsgate-demo";
const AUDIENCE: &str = "wsgate-chat";
const TOKEN_TYPE: &str = "at+jwt";
const APPLICATION_PROTOCOL: &str = "chat.v1";
const COOKIE_NAME: &str = "wsgate_token";
/// The refresh token's cookie: HttpOnly, sent only to `/token`.
const REFRESH_COOKIE: &str = "wsgate_refresh";
const MAX_ROOM_NAME: usize = 64;

/// Settings from `WSGATE_*` environment variables.
struct Settings {
    address: SocketAddr,
    keys: KeyPair,
    token_lifetime: Duration,
    /// How long a refresh token lives after its last use.
    refresh_lifetime: Duration,
    allowed_origins: Vec<String>,
    audit_log: Option<String>,
    auth_timeout: Duration,
    message_tokens: bool,
    /// Sender-constrained tokens: `allowed`, `required` or `off`.
    dpop: DpopMode,
    message_rate: u32,
    max_message_bytes: usize,
    lockout_threshold: u32,
    address_failure_limit: u32,
    /// Unredeemed tickets one subject may hold at once; 0 sets no limit.
    max_tickets_per_subject: usize,
    /// Live sockets one subject may hold at once; 0 sets no limit.
    max_sockets_per_subject: usize,
    /// Certificate chain and private key (PEM paths) for HTTPS and `wss://`.
    tls: Option<(String, String)>,
    /// CA certificates (PEM path) whose client certificates authenticate,
    /// and revocation lists (PEM path) for them.
    client_certificates: Option<(String, Option<String>)>,
    /// Where to serve `GET /metrics` (Prometheus text), on a listener of its own.
    metrics: Option<SocketAddr>,
    oidc: Option<OidcSettings>,
    /// Redis for revocations, tickets and the failure limiter, shared by
    /// every demo process with the same URL.
    redis: Option<(String, Duration)>,
    /// The credential store: `sqlite://PATH`, `sqlite::memory:` or
    /// `postgres://…`.
    database_url: String,
}

/// An OpenID provider whose access tokens the demo accepts next to its own.
struct OidcSettings {
    issuer: String,
    audience: String,
    /// Client credentials for RFC 7662 introspection of opaque tokens.
    introspection: Option<(String, Secret)>,
    recheck: Duration,
}

fn setting<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name).ok().filter(|value| !value.is_empty()) {
        None => Ok(default),
        Some(value) => value.parse().map_err(|error| format!("{name}: {error}")),
    }
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
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
        Ok(Self {
            address: setting("WSGATE_ADDR", SocketAddr::from(([127, 0, 0, 1], 3000)))?,
            keys,
            token_lifetime: Duration::from_secs(setting("WSGATE_TOKEN_TTL_SECS", 900)?),
            refresh_lifetime: Duration::from_secs(setting("WSGATE_REFRESH_TTL_SECS", 604_800)?),
            allowed_origins: setting(
                "WSGATE_ALLOWED_ORIGINS",
                "http://127.0.0.1:3000,http://localhost:3000".to_owned(),
            )?
            .split(',')
            .map(|origin| origin.trim().to_owned())
            .filter(|origin| !origin.is_empty())
            .collect(),
            audit_log: var("WSGATE_AUDIT_LOG"),
            auth_timeout: Duration::from_secs(setting("WSGATE_AUTH_TIMEOUT_SECS", 5)?),
            message_tokens: setting("WSGATE_MESSAGE_TOKENS", 0u8)? == 1,
            dpop: match var("WSGATE_DPOP").as_deref() {
                None | Some("allowed") => DpopMode::Allowed,
                Some("required") => DpopMode::Required,
                Some("off") => DpopMode::Off,
                Some(other) => {
                    return Err(format!(
                        "WSGATE_DPOP: {other:?} is not one of allowed, required, off"
                    ));
                }
            },
            message_rate: setting("WSGATE_MESSAGE_RATE", 100)?,
            max_message_bytes: setting("WSGATE_MAX_MESSAGE_BYTES", 65_536)?,
            lockout_threshold: setting("WSGATE_LOCKOUT_THRESHOLD", 5)?,
            address_failure_limit: setting("WSGATE_ADDRESS_FAILURE_LIMIT", 50)?,
            max_tickets_per_subject: setting("WSGATE_MAX_TICKETS_PER_SUBJECT", 10)?,
            max_sockets_per_subject: setting("WSGATE_MAX_SOCKETS_PER_SUBJECT", 20)?,
            tls: match (var("WSGATE_TLS_CERT"), var("WSGATE_TLS_KEY")) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => return Err("set both WSGATE_TLS_CERT and WSGATE_TLS_KEY, or neither".into()),
            },
            client_certificates: match (var("WSGATE_TLS_CLIENT_CA"), var("WSGATE_TLS_CLIENT_CRL")) {
                (None, None) => None,
                (None, Some(_)) => {
                    return Err("WSGATE_TLS_CLIENT_CRL needs WSGATE_TLS_CLIENT_CA: \
                         revocation lists of which CAs?"
                        .into());
                }
                (Some(_), _) if var("WSGATE_TLS_CERT").is_none() => {
                    return Err("WSGATE_TLS_CLIENT_CA needs WSGATE_TLS_CERT and \
                         WSGATE_TLS_KEY: client certificates come over TLS"
                        .into());
                }
                (Some(ca), crl) => Some((ca, crl)),
            },
            metrics: var("WSGATE_METRICS_ADDR")
                .map(|address| {
                    address
                        .parse()
                        .map_err(|error| format!("WSGATE_METRICS_ADDR: {error}"))
                })
                .transpose()?,
            database_url: setting("WSGATE_DATABASE_URL", "sqlite://wsgate-demo.db".to_owned())?,
            redis: match var("WSGATE_REDIS_URL") {
                None => None,
                Some(url) => Some((
                    url,
                    Duration::from_secs(setting("WSGATE_REDIS_MAX_STALENESS_SECS", 30)?),
                )),
            },
            oidc: match var("WSGATE_OIDC_ISSUER") {
                None => None,
                Some(issuer) => Some(OidcSettings {
                    issuer,
                    audience: setting("WSGATE_OIDC_AUDIENCE", AUDIENCE.to_owned())?,
                    introspection: match (
                        var("WSGATE_OIDC_CLIENT_ID"),
                        var("WSGATE_OIDC_CLIENT_SECRET"),
                    ) {
                        (Some(id), Some(secret)) => Some((id, Secret::new(secret))),
                        (None, None) => None,
                        _ => {
                            return Err("set both WSGATE_OIDC_CLIENT_ID and \
                                 WSGATE_OIDC_CLIENT_SECRET, or neither"
                                .into());
                        }
                    },
                    recheck: Duration::from_secs(setting("WSGATE_INTROSPECTION_RECHECK_SECS", 60)?),
                }),
            },
        })
    }
}

/// Who may use `admin.*` messages and `/admin/revoke`: the demo's admins,
/// and a provider's tokens with scope `chat:admin`.
fn admins() -> Requirement {
    Requirement::any_role(["admin"]).or(Requirement::any_scope(["chat:admin"]))
}

/// Who may send every other message: the demo's users, and a provider's
/// tokens with scope `chat`.
fn members() -> Requirement {
    Requirement::any_role(["user"]).or(Requirement::any_scope(["chat"]))
}

/// Which connections are in which room, with a sender for each.
type Rooms = Arc<Mutex<HashMap<String, HashMap<ConnectionId, GatedSender>>>>;

#[derive(Clone)]
struct App {
    /// Whether the demo serves HTTPS: its cookie is then `Secure`.
    tls: bool,
    issuer: JwtIssuer,
    gate: Gate,
    rooms: Rooms,
    feed: admin::AuditFeed,
    accounts: Arc<Accounts<SqlCredentialStore>>,
    /// Logins that outlive their access tokens (the refresh cookie).
    sessions: RefreshSessions<SqlRefreshSessionStore>,
    /// The Origins a cookie route takes.
    origins: OriginAllowlist,
}

impl FromRef<App> for Gate {
    fn from_ref(app: &App) -> Gate {
        app.gate.clone()
    }
}

#[tokio::main]
async fn main() {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Colours for a terminal only: in a file they are escape sequences.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    if let Err(error) = run().await {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    if let Some(address) = settings.metrics {
        serve_metrics(address)?;
    }
    let (signing, verification) = settings.keys.clone().into_parts();
    let algorithm = settings.keys.algorithm();
    let local = JwtVerifier::builder()
        .key(verification)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .token_type(TOKEN_TYPE)
        .leeway(Duration::from_secs(5))?
        .build()?;
    // Every decision goes to the log (and the file, when asked) and to the
    // admin page's live feed.
    let feed = admin::AuditFeed::new();
    let auditor = match &settings.audit_log {
        Some(path) => Auditor::new((feed.clone(), (JsonLinesAudit::open(path)?, TracingAudit))),
        None => Auditor::new((feed.clone(), TracingAudit)),
    };
    // With a provider configured, its tokens are accepted next to the
    // demo's own (a token's `iss` says whose keys verify it), on every
    // transport; tokens that are not JWTs go to introspection.
    let verifier = match &settings.oidc {
        None => BoxedVerifier::new(local),
        Some(oidc) => {
            let mut provider = OidcProvider::new(oidc.issuer.clone())
                .audience(oidc.audience.clone())
                .leeway(Duration::from_secs(5))?;
            if let Some((id, secret)) = &oidc.introspection {
                provider = provider.introspection(id.clone(), secret.clone());
            }
            tracing::info!(issuer = %oidc.issuer, introspection = oidc.introspection.is_some(), "accepting the provider's tokens");
            BoxedVerifier::new(
                OidcVerifier::builder()
                    .provider(provider)
                    .fallback(local)
                    .audit(auditor.clone())
                    .recheck_every(oidc.recheck)
                    .build()?,
            )
        }
    };
    let issuer = JwtIssuer::builder(signing)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .token_type(TOKEN_TYPE)
        .lifetime(settings.token_lifetime)?
        .build();
    // The credential store: SQLite by default (a file in the working
    // directory), PostgreSQL by URL. The demo's two users are added when
    // absent (their passwords predate the policy, which applies to every
    // account made or changed through the routes).
    let users = SqlCredentialStore::connect(&settings.database_url).await?;
    let passwords = PasswordVerifier::new()?;
    for (name, password, roles) in [
        ("alice", "alice-password-1", vec!["user"]),
        ("admin", "admin-password-1", vec!["user", "admin"]),
    ] {
        if users.find_user(name).await?.is_none() {
            let hash = passwords.hash(&Secret::new(password)).await?;
            let user = StoredUser::new(name, hash).with_roles(roles);
            users.create_user(name, user).await?;
        }
    }

    // One gate for every route: revocations, tickets, the failure limiter
    // (/login and Basic handshakes count towards the same lock) and the
    // audit trail are shared by every stage; with Redis, by every process.
    let limits = FailureLimits::default()
        .account_threshold(settings.lockout_threshold)?
        .address_threshold(settings.address_failure_limit)?;
    let client_certificates = settings
        .client_certificates
        .as_ref()
        .map(|(ca, crl)| client_certificates(ca, crl.as_deref()))
        .transpose()?;
    let mut gate = Gate::builder(verifier)
        .passwords(BasicAuthenticator::new(users.clone(), passwords.clone()));
    if client_certificates.is_some() {
        // A certificate's subject is its Common Name; certificates never
        // carry roles here, so an `admin` certificate is just a user.
        gate = gate.authenticator(CertificateAuthenticator::new().roles(["user"]));
    }
    gate = match &settings.redis {
        None => gate.failure_limiter(InMemoryFailureLimiter::with_limits(limits)),
        Some((url, max_staleness)) => {
            let redis = RedisStores::builder(url.clone())
                .max_staleness(*max_staleness)
                .build()?;
            tracing::info!(
                max_staleness_secs = max_staleness.as_secs(),
                "revocations, tickets, lockouts, sockets per subject and DPoP proofs shared through Redis"
            );
            let dpop = wsgate::dpop::DpopVerifier::builder()
                .replays(redis.proof_replays())
                .build();
            gate.revocations(redis.revocations())
                .tickets(redis.tickets())
                .socket_leases(redis.socket_leases())
                .dpop_verifier(dpop)
                .failure_limiter(redis.failure_limiter(limits))
        }
    };
    if settings.max_tickets_per_subject > 0 {
        gate = gate.max_tickets_per_subject(settings.max_tickets_per_subject)?;
    }
    if settings.max_sockets_per_subject > 0 {
        gate = gate.max_sockets_per_subject(settings.max_sockets_per_subject)?;
    }
    let gate = gate
        .audit(auditor)
        .limits(
            Limits::default()
                .max_message_bytes(settings.max_message_bytes)?
                .message_rate(settings.message_rate)
                .auth_deadline(settings.auth_timeout)?,
        )
        .message_tokens(settings.message_tokens)
        .dpop(settings.dpop)
        // `admin.*` needs the role admin (or a provider's scope
        // chat:admin); every other message the role user (or scope chat).
        .policy(
            RolePolicy::by_type()
                .prefix("admin.", admins())
                .otherwise(members()),
        )
        .build()?;
    // Refresh sessions in the credential database (they survive a
    // restart), ending through the gate's registry.
    let sessions = RefreshSessions::builder(
        users.refresh_sessions(),
        gate.registry().clone(),
        &refresh_secret(&users).await?,
    )?
    .lifetime(settings.refresh_lifetime)
    .build()?;
    // Sockets take every transport; explicit credentials come before the
    // cookie a browser attaches on its own, and the client certificate
    // (when asked for) comes after everything the request carries.
    let mut transports = vec![
        Transport::Bearer,
        Transport::Basic,
        Transport::Subprotocol,
        Transport::Ticket,
        Transport::Cookie,
    ];
    if client_certificates.is_some() {
        transports.push(Transport::Certificate);
    }
    let socket_handshake = gate
        .handshake()
        .transports(transports)
        .allowed_origins(&settings.allowed_origins)?
        .application_protocols([APPLICATION_PROTOCOL])?
        .cookie_name(COOKIE_NAME)?
        .require_secure_transport(settings.tls.is_some())
        .build()?;

    // The admin page's event feed: a socket of its own protocol, opened
    // from a page that holds the token in memory (never a cookie, so no
    // other site can open it in the admin's name).
    let events_handshake = gate
        .handshake()
        .transports([Transport::Bearer, Transport::Subprotocol])
        .application_protocols([admin::EVENTS_PROTOCOL])?
        .require_secure_transport(settings.tls.is_some())
        .build()?;

    let router = Router::new()
        .route("/ws", get(chat_socket))
        .route("/ws/echo", get(echo_socket))
        .route_layer(socket_handshake)
        .route("/ws/deferred", get(deferred_socket))
        .route("/tickets", gate.ticket_route())
        .merge(admin::routes(&gate, events_handshake))
        .route(
            "/account/password",
            post(change_password).route_layer(gate.bearer_layer()),
        )
        .merge(pages::routes())
        .route("/login", post(login))
        .route("/token", post(refresh_token))
        .route("/logout", post(logout))
        .with_state(App {
            tls: settings.tls.is_some(),
            issuer,
            sessions,
            origins: OriginAllowlist::new(&settings.allowed_origins)?,
            rooms: Rooms::default(),
            feed,
            accounts: Arc::new(Accounts::new(
                users,
                passwords,
                PasswordPolicy::default(),
                gate.registry().clone(),
            )),
            gate,
        });

    let tls = settings
        .tls
        .as_ref()
        .map(|(cert, key)| server_tls(cert, key, client_certificates.clone()))
        .transpose()?;
    let listener = tokio::net::TcpListener::bind(settings.address).await?;
    tracing::info!(
        "wsgate demo on {}://{} (tokens signed with {algorithm:?}{})",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?,
        if client_certificates.is_some() {
            "; client certificates asked for"
        } else {
            ""
        }
    );
    // Served with hyper directly (wsgate's `Serving`), not `axum::serve`:
    // a deadline for request headers and the TLS handshake cuts off
    // slow clients, and each request carries its peer, the TLS mark and
    // the verified client certificate.
    let mut serving = Serving::new().header_read_timeout(HEADER_READ_TIMEOUT);
    if let Some(tls) = tls {
        serving = serving.tls(tls);
    }
    serving
        .serve(listener, router, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The CAs (and revocation lists) whose client certificates authenticate.
/// A certificate whose CA has no list in the CRL file is "not on" it, as
/// DESIGN.md has it, so unknown revocation status is allowed.
fn client_certificates(
    ca: &str,
    crl: Option<&str>,
) -> Result<ClientCertificates, Box<dyn std::error::Error>> {
    let read = |name: &str, path: &str| {
        std::fs::read(path).map_err(|error| format!("{name} {path}: {error}"))
    };
    let mut builder = ClientCertificates::builder(&read("WSGATE_TLS_CLIENT_CA", ca)?)
        .map_err(|error| format!("WSGATE_TLS_CLIENT_CA {ca}: {error}"))?;
    if let Some(crl) = crl {
        builder = builder
            .crls(&read("WSGATE_TLS_CLIENT_CRL", crl)?)
            .map_err(|error| format!("WSGATE_TLS_CLIENT_CRL {crl}: {error}"))?
            .allow_unknown_revocation_status();
    }
    Ok(builder.build()?)
}

/// TLS 1.3 only, HTTP/1.1 (WebSocket upgrades need it), from PEM files;
/// client certificates asked for when CAs are given.
fn server_tls(
    cert: &str,
    key: &str,
    client_certificates: Option<ClientCertificates>,
) -> Result<ServerTls, Box<dyn std::error::Error>> {
    let chain = std::fs::read(cert).map_err(|error| format!("WSGATE_TLS_CERT {cert}: {error}"))?;
    let key_pem = std::fs::read(key).map_err(|error| format!("WSGATE_TLS_KEY {key}: {error}"))?;
    let mut builder = ServerTls::builder(&chain, &key_pem)
        .map_err(|error| format!("WSGATE_TLS_CERT/WSGATE_TLS_KEY: {error}"))?;
    if let Some(certificates) = client_certificates {
        builder = builder.client_certificates(certificates);
    }
    Ok(builder.build()?)
}

/// How long a client may take to send its request headers (and finish its
/// TLS handshake). A client that trickles them a byte at a time
/// (slowloris) is cut off after this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the metrics in the Prometheus text format on `address` (its own
/// listener, so the chat's port never exposes them).
fn serve_metrics(address: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    use wsgate::audit::metrics::{HANDSHAKE_DURATION, HANDSHAKE_DURATION_BUCKETS, describe};
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HANDSHAKE_DURATION.to_owned()),
            HANDSHAKE_DURATION_BUCKETS,
        )?
        .with_http_listener(address)
        .install()?;
    describe();
    tracing::info!("metrics on http://{address}/metrics");
    Ok(())
}

fn json_error(status: StatusCode, error: &'static str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

/// The answer to a password the gate refused, on `/login` and for the
/// current password of a change: 429 with `Retry-After` while locked (the
/// right password too), 403 for a disabled account, 503 when the store or
/// the hashing pool cannot answer, otherwise 401 alike for an unknown user
/// and a wrong password.
fn password_refused(error: &wsgate::Error) -> Response {
    let (status, code) = match error.kind() {
        ErrorKind::TooManyAttempts { retry_after } => {
            let mut response = json_error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
            let seconds = retry_after.as_secs().max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return response;
        }
        ErrorKind::AccountDisabled => (StatusCode::FORBIDDEN, "account_disabled"),
        ErrorKind::Backend(_) | ErrorKind::Overloaded => {
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        _ => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
    };
    json_error(status, code)
}

async fn login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    certificate: Option<axum::Extension<ClientCertificate>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(Login { username, password }) = serde_json::from_slice(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    // A DPoP proof for this request binds the token to its key; checked
    // before the password, so a bad proof costs no hashing.
    let jkt = match request_proof(&app, &headers, "/login").await {
        Ok(jkt) => jkt,
        Err(()) => return json_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof"),
    };
    let password = Secret::new(password);
    // The same limits as Basic handshakes: while locked, every attempt gets
    // 429 — the right password too.
    let checked = app
        .gate
        .check_password(
            &username,
            &password,
            Some(app.gate.client_address(peer, &headers)),
        )
        .await;
    let principal = match checked {
        Ok(principal) => principal,
        Err(error) => {
            tracing::info!(%peer, reason = %error, "login refused");
            return password_refused(&error);
        }
    };
    // Bound to the proof's key, and to the client certificate of the
    // connection (RFC 8705) when it presented one: such a token works
    // only beside that certificate. The refresh session is bound alike.
    let mut confirmation = Confirmation::default();
    if let Some(jkt) = &jkt {
        confirmation = confirmation.with_jkt(jkt.clone());
    }
    if let Some(axum::Extension(certificate)) = &certificate {
        confirmation = confirmation.with_certificate(certificate.thumbprint());
    }
    let Ok(started) = app.sessions.start(&principal, &confirmation).await else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    };
    let principal = principal.with_claim("sid", started.session_id.clone().into());
    tracing::info!(%peer, sub = principal.subject(), bound = confirmation.is_bound(), "login accepted");
    tokens_response(
        &app,
        &principal,
        &confirmation,
        &started.refresh_token,
        started.expires_at,
    )
}

/// The answer that hands out tokens (`/login`, `/token`): the access
/// token in the body (and, unless bound to a key, as the cookie the
/// cookie transport reads), the refresh token as an HttpOnly cookie that
/// only `/token` ever receives.
fn tokens_response(
    app: &App,
    principal: &Principal,
    confirmation: &Confirmation,
    refresh_token: &Secret,
    refresh_expires_at: SystemTime,
) -> Response {
    let Ok(issued) = app.issuer.issue_confirmed_token(principal, confirmation) else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    };
    let expires_in = app.issuer.lifetime().as_secs();
    // RFC 8705 keeps `Bearer` for certificate-bound tokens.
    let bound_to_key = confirmation.jkt().is_some();
    let mut response = Json(json!({
        "access_token": issued.token().expose(),
        "token_type": if bound_to_key { "DPoP" } else { "Bearer" },
        "expires_in": expires_in,
    }))
    .into_response();
    let secure = if app.tls { "; Secure" } else { "" };
    let refresh_max_age = refresh_expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs();
    let mut cookies = vec![format!(
        "{REFRESH_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/token; Max-Age={refresh_max_age}{secure}",
        refresh_token.expose()
    )];
    // A cookie cannot carry a proof: a key-bound token is never set as one.
    if !bound_to_key {
        cookies.push(format!(
            "{COOKIE_NAME}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={expires_in}{secure}",
            issued.token().expose()
        ));
    }
    set_cookies(&mut response, cookies);
    no_store(response)
}

fn set_cookies(response: &mut Response, cookies: Vec<String>) {
    for cookie in cookies {
        if let Ok(mut value) = HeaderValue::from_str(&cookie) {
            value.set_sensitive(true);
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

/// The value of cookie `name` in the request, if exactly one.
fn request_cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value.to_owned());
    let value = found.next()?;
    found.next().is_none().then_some(value)
}

/// Whether a cookie route's request comes from an allowed Origin: a
/// browser attaches the cookie to cross-site requests on its own.
fn origin_allowed(app: &App, headers: &axum::http::HeaderMap) -> bool {
    let mut origins = headers.get_all(header::ORIGIN).iter();
    match (origins.next(), origins.next()) {
        (Some(origin), None) => origin
            .to_str()
            .is_ok_and(|origin| app.origins.allows(origin)),
        _ => false,
    }
}

/// `POST /token`: the refresh cookie (from an allowed Origin) for a new
/// access token and the next refresh token; a spent one ends the session.
async fn refresh_token(
    State(app): State<App>,
    certificate: Option<axum::Extension<ClientCertificate>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if !origin_allowed(&app, &headers) {
        return json_error(StatusCode::FORBIDDEN, "origin_not_allowed");
    }
    let Some(token) = request_cookie(&headers, REFRESH_COOKIE) else {
        return json_error(StatusCode::UNAUTHORIZED, "invalid_grant");
    };
    let mut possession = Possession::default();
    match request_proof(&app, &headers, "/token").await {
        Ok(Some(jkt)) => possession = Possession::dpop(jkt),
        Ok(None) => {}
        Err(()) => return json_error(StatusCode::UNAUTHORIZED, "invalid_dpop_proof"),
    }
    if let Some(axum::Extension(certificate)) = &certificate {
        possession = possession.with_certificate(certificate.thumbprint());
    }
    let refreshed = match app.sessions.refresh(&token, &possession).await {
        Ok(refreshed) => refreshed,
        Err(error) => {
            let (status, code) = match error.kind() {
                ErrorKind::Dpop(_) => (StatusCode::UNAUTHORIZED, "invalid_dpop_proof"),
                ErrorKind::Backend(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                _ => (StatusCode::UNAUTHORIZED, "invalid_grant"),
            };
            tracing::info!(reason = %error, "refresh refused");
            return json_error(status, code);
        }
    };
    // The account as it is now: its current roles, and still allowed in.
    let user = match app.accounts.store().find_user(&refreshed.subject).await {
        Ok(Some(user)) if !user.is_disabled() => user,
        Ok(_) => return json_error(StatusCode::UNAUTHORIZED, "invalid_grant"),
        Err(_) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let principal = Principal::new(refreshed.subject.clone(), AuthMethod::Token)
        .with_roles(user.roles().iter().cloned())
        .with_claim("sid", refreshed.session_id.clone().into());
    tokens_response(
        &app,
        &principal,
        &refreshed.confirmation,
        &refreshed.refresh_token,
        refreshed.expires_at,
    )
}

/// `POST /logout`: a Bearer token of the session (what a page sends: the
/// refresh cookie's path keeps it from here), or the refresh cookie from
/// an allowed Origin. The session ends (its tokens refused, its sockets
/// closed 4403) and the cookies are cleared: 204.
async fn logout(State(app): State<App>, headers: axum::http::HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let ended = if let Some(token) = bearer {
        let principal = match app.gate.verifier().verify(token.trim()).await {
            Ok(principal) => principal,
            Err(_) => return json_error(StatusCode::UNAUTHORIZED, "invalid_token"),
        };
        // A key-bound token works only beside a proof: a copy of one must
        // not end its owner's session. Such a page logs out by cookie.
        if Confirmation::of(&principal).map_or(true, |binding| binding.is_bound()) {
            return json_error(StatusCode::UNAUTHORIZED, "invalid_token");
        }
        match principal.session_id() {
            Some(sid) => app.sessions.end_session(sid).await,
            None => Ok(false),
        }
    } else if let Some(token) = request_cookie(&headers, REFRESH_COOKIE) {
        if !origin_allowed(&app, &headers) {
            return json_error(StatusCode::FORBIDDEN, "origin_not_allowed");
        }
        app.sessions.end(&token).await
    } else {
        return json_error(StatusCode::UNAUTHORIZED, "invalid_request");
    };
    if ended.is_err() {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
    let secure = if app.tls { "; Secure" } else { "" };
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_cookies(
        &mut response,
        vec![
            format!("{REFRESH_COOKIE}=; HttpOnly; SameSite=Strict; Path=/token; Max-Age=0{secure}"),
            format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
        ],
    );
    response
}

/// The refresh sessions' secret: made once and kept in the credential
/// database, so the grace and logging out by `sid` go on working across
/// restarts and across processes that share the database.
async fn refresh_secret(users: &SqlCredentialStore) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use base64::Engine as _;
    let pool = users.pool();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS wsgate_demo_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )
    .execute(pool)
    .await?;
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(|error| error.to_string())?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(fresh);
    sqlx::query(
        "INSERT INTO wsgate_demo_secrets (name, value) VALUES ('refresh', $1) ON CONFLICT (name) DO NOTHING",
    )
    .bind(encoded)
    .execute(pool)
    .await?;
    let row = sqlx::query("SELECT value FROM wsgate_demo_secrets WHERE name = 'refresh'")
        .fetch_one(pool)
        .await?;
    let value: String = sqlx::Row::try_get(&row, "value")?;
    Ok(base64::engine::general_purpose::STANDARD.decode(value)?)
}

/// The key thumbprint of the DPoP proof of a `POST` to `path` (`/login`,
/// `/token`; no access token): `Ok(None)` without one (refused under
/// `required`), `Err` for a proof that fails, or more than one.
async fn request_proof(
    app: &App,
    headers: &axum::http::HeaderMap,
    path: &str,
) -> Result<Option<String>, ()> {
    let gate = &app.gate;
    let mut proofs = headers.get_all("dpop").iter();
    let proof = match (proofs.next(), proofs.next()) {
        (None, _) if gate.dpop_mode() == DpopMode::Required => return Err(()),
        (None, _) => return Ok(None),
        (Some(proof), None) => proof.to_str().map_err(|_| ())?,
        (Some(_), Some(_)) => return Err(()),
    };
    if gate.dpop_mode() == DpopMode::Off {
        return Ok(None);
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .ok_or(())?;
    let target = TargetUrl::of_request(app.tls, host, path).ok_or(())?;
    let request = ProofRequest {
        method: "POST",
        target: &target,
        access_token: None,
    };
    match gate.dpop_verifier().verify(proof, &request).await {
        Ok(checked) => Ok(Some(checked.jkt)),
        Err(error) => {
            tracing::info!(reason = %error, "login proof refused");
            Err(())
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /account/password`: the current password (under the lockout),
/// then the new one under the policy; the user's earlier tokens are
/// refused and their sockets close with 4403 `token revoked`.
async fn change_password(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Authenticated(principal): Authenticated,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(PasswordChange {
        current_password,
        new_password,
    }) = serde_json::from_slice(&body)
    else {
        return json_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let username = principal.subject().to_owned();
    let current = Secret::new(current_password);
    if let Err(error) = app
        .gate
        .check_password(
            &username,
            &current,
            Some(app.gate.client_address(peer, &headers)),
        )
        .await
    {
        return password_refused(&error);
    }
    match app
        .accounts
        .change_password(&username, &Secret::new(new_password))
        .await
    {
        Ok(closed) => {
            tracing::info!(user = ?username, closed, "password changed");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => admin::account_error(&error),
    }
}

async fn chat_socket(State(app): State<App>, upgrade: GatedUpgrade) -> Response {
    let gate = app.gate.clone();
    upgrade.on_upgrade(&gate, move |socket| chat(socket, app))
}

async fn deferred_socket(State(app): State<App>, upgrade: DeferredUpgrade) -> Response {
    let gate = app.gate.clone();
    upgrade
        .protocols([APPLICATION_PROTOCOL])
        .on_upgrade(&gate, move |socket| chat(socket, app))
}

async fn echo_socket(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        while let Some(inbound) = socket.recv().await {
            if let Message::Text(text) = inbound.into_message()
                && socket.send(Message::Text(text)).await.is_err()
            {
                break;
            }
        }
    })
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn frame(value: &Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

fn welcome(principal: &Principal) -> Message {
    frame(&json!({
        "type": "welcome",
        "sub": principal.subject(),
        "roles": principal.roles(),
        "expires_at": principal.expires_at().map(unix_seconds),
    }))
}

async fn chat(mut socket: GatedSocket, app: App) {
    let id = socket.id();
    if socket.send(welcome(&socket.principal())).await.is_err() {
        return;
    }
    while let Some(inbound) = socket.recv().await {
        if let Some(reply) = handle(&app, &socket, &inbound)
            && socket.send(frame(&reply)).await.is_err()
        {
            break;
        }
    }
    app.rooms.lock().unwrap().retain(|_, members| {
        members.remove(&id);
        !members.is_empty()
    });
}

fn error_reply(code: &str, reference: &str) -> Value {
    json!({ "type": "error", "code": code, "ref": reference })
}

/// Handles one message the pipeline delivered (the role guard has already
/// allowed its type); returns the reply to the sender, if any.
fn handle(app: &App, socket: &GatedSocket, inbound: &Inbound) -> Option<Value> {
    let Some(kind) = inbound.json_str("type") else {
        return Some(error_reply("invalid_message", ""));
    };
    let room = inbound
        .json_str("room")
        .filter(|room| !room.is_empty() && room.len() <= MAX_ROOM_NAME);
    match (kind, room) {
        ("join", Some(room)) => {
            let mut rooms = app.rooms.lock().unwrap();
            rooms
                .entry(room.to_owned())
                .or_default()
                .insert(socket.id(), socket.sender());
            None
        }
        ("say", Some(room)) => {
            let text = inbound.json_str("text").unwrap_or("");
            let out = frame(&json!({
                "type": "message", "room": room, "from": socket.principal().subject(), "text": text,
            }));
            let mut rooms = app.rooms.lock().unwrap();
            if let Some(members) = rooms.get_mut(room) {
                // A client too slow to drain its queue misses messages
                // rather than stalling the room; a closed one leaves it.
                members.retain(|_, member| match member.try_send(out.clone()) {
                    Err(TrySendError::Closed(_)) => false,
                    Ok(()) | Err(TrySendError::Full(_)) => true,
                });
            }
            None
        }
        ("join" | "say", None) => Some(error_reply("invalid_room", kind)),
        ("admin.kick", _) => match inbound.json_str("sub") {
            Some(subject) => {
                app.gate.registry().kick(subject);
                None
            }
            None => Some(error_reply("invalid_request", kind)),
        },
        _ => Some(error_reply("unknown_type", kind)),
    }
}
