//! The servers: bare axum, and wsgate's gated echo.

use super::*;

pub(crate) async fn serve(router: Router) -> SocketAddr {
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A loopback listener with room for a reconnect storm in its queue:
/// `TcpListener::bind` asks for 1 024 connections waiting to be accepted,
/// and 20 000 clients reconnecting at once overflow that within
/// milliseconds, after which the kernel drops their packets and each
/// waits out TCP's retransmission timer (1 s, then 3 s, …), whatever the
/// server does. The kernel caps the queue at `net.core.somaxconn`.
pub(crate) fn listener() -> tokio::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    socket.listen(LISTEN_BACKLOG).unwrap()
}

/// The accept queue every server here asks for (see [`listener`]).
pub(crate) const LISTEN_BACKLOG: u32 = 65_535;

/// Bare axum: echo text frames, counting live sockets.
pub(crate) fn bare_router(live: Arc<AtomicUsize>) -> Router {
    bare_router_with(live, None)
}

/// Bare axum with `read_buffer` (axum's default, 128 KiB, when `None`).
pub(crate) fn bare_router_with(live: Arc<AtomicUsize>, read_buffer: Option<usize>) -> Router {
    Router::new().route(
        "/ws",
        get(move |ws: WebSocketUpgrade| {
            let live = live.clone();
            let ws = match read_buffer {
                Some(bytes) => ws.read_buffer_size(bytes),
                None => ws,
            };
            async move { ws.on_upgrade(move |socket| echo_bare(socket, live)) }
        }),
    )
}

/// Bare axum with an ES256 check of its own, as a naive application
/// writes it: the `Authorization` header's token decoded with
/// jsonwebtoken (aws-lc-rs) in the handler, on the async runtime, before
/// the upgrade; 401 without a valid one.
pub(crate) fn bare_es256_router(live: Arc<AtomicUsize>) -> Router {
    use axum::response::IntoResponse as _;
    use jsonwebtoken::{DecodingKey, Validation, decode};
    let key = Arc::new(
        DecodingKey::from_ec_pem(wsgate_testkit::fixtures::jwt("es256-public.pem")).unwrap(),
    );
    let validation = Arc::new(Validation::new(jsonwebtoken::Algorithm::ES256));
    Router::new().route(
        "/ws",
        get(move |headers: http::HeaderMap, ws: WebSocketUpgrade| {
            let (live, key, validation) = (live.clone(), key.clone(), validation.clone());
            async move {
                let token = headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.strip_prefix("Bearer "));
                let valid = token.is_some_and(|token| {
                    decode::<serde_json::Value>(token, &key, &validation).is_ok()
                });
                if !valid {
                    return http::StatusCode::UNAUTHORIZED.into_response();
                }
                ws.on_upgrade(move |socket| echo_bare(socket, live))
            }
        }),
    )
}

/// The bare echo: text frames back, counting live sockets.
async fn echo_bare(mut socket: axum::extract::ws::WebSocket, live: Arc<AtomicUsize>) {
    live.fetch_add(1, Ordering::SeqCst);
    while let Some(Ok(message)) = socket.recv().await {
        if let Message::Text(_) = message
            && socket.send(message).await.is_err()
        {
            break;
        }
    }
    live.fetch_sub(1, Ordering::SeqCst);
}

pub(crate) async fn gated_echo(State(gate): State<SocketGate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, echo)
}

/// Echoes every delivered message.
pub(crate) async fn echo(mut socket: GatedSocket) {
    while let Some(inbound) = socket.recv().await {
        if socket.send(inbound.into_message()).await.is_err() {
            break;
        }
    }
}

pub(crate) async fn deferred_echo(
    State(gate): State<SocketGate>,
    upgrade: DeferredUpgrade,
) -> Response {
    upgrade.on_upgrade(&gate, echo)
}

pub(crate) struct Gated {
    pub(crate) addr: SocketAddr,
    pub(crate) registry: Registry,
    pub(crate) gate: Gate,
    pub(crate) hs256: JwtIssuer,
}

impl Gated {
    pub(crate) fn token(&self, issuer: &JwtIssuer, subject: &str) -> String {
        issue(issuer, subject)
    }
}

/// A token of `issuer` for `subject` with the role `user`.
pub(crate) fn issue(issuer: &JwtIssuer, subject: &str) -> String {
    let principal = Principal::new(subject, AuthMethod::Password).with_roles(["user"]);
    issuer
        .issue_token(&principal)
        .unwrap()
        .token()
        .expose()
        .to_owned()
}

pub(crate) fn route<A: Authenticator, L: wsgate::limit::FailureLimiter>(
    path: &str,
    gate: SocketGate,
    handshake: HandshakeLayer<A, L>,
) -> Router {
    Router::new()
        .route(path, get(gated_echo))
        .route_layer(handshake)
        .with_state(gate)
}

/// One gated server with a route per variant: `/ws` (HS256, token cache),
/// `/ws/uncached` (HS256, no token cache), `/ws/es256`, `/ws/ticket`,
/// `/ws/basic` (Basic with argon2id, or Bearer).
pub(crate) async fn gated_server() -> Gated {
    gated_server_with(InRedis::Nothing, None).await
}

/// What a gated server keeps in Redis.
#[derive(Clone, Copy)]
pub(crate) enum InRedis<'a> {
    Nothing,
    /// Revocations and tickets: what crosses processes.
    RevocationsAndTickets(&'a wsgate::redis::RedisStores),
    /// Also the failure limiter and a lease a socket, at most 8 sockets a
    /// subject across processes: every store a scaled-out gate has.
    Everything(&'a wsgate::redis::RedisStores),
}

/// The gated server, with what `redis` says in Redis; with only the route
/// `only` when it is given.
pub(crate) async fn gated_server_with(redis: InRedis<'_>, only: Option<&str>) -> Gated {
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
    if let InRedis::RevocationsAndTickets(redis) | InRedis::Everything(redis) = redis {
        builder = builder
            .revocations(redis.revocations())
            .tickets(redis.tickets());
    }
    if let InRedis::Everything(redis) = redis {
        builder = builder
            .failure_limiter(redis.failure_limiter(wsgate::limit::FailureLimits::default()))
            .socket_leases(redis.socket_leases())
            .max_sockets_per_subject(8)
            .unwrap();
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
    let routes = [
        (
            "/ws",
            route("/ws", sockets.clone(), transports(&[Transport::Bearer])),
        ),
        (
            "/ws/uncached",
            route("/ws/uncached", uncached, transports(&[Transport::Bearer])),
        ),
        (
            "/ws/es256",
            route("/ws/es256", sockets.clone(), es256_handshake),
        ),
        (
            "/ws/ticket",
            route(
                "/ws/ticket",
                sockets.clone(),
                transports(&[Transport::Ticket]),
            ),
        ),
        (
            "/ws/basic",
            route(
                "/ws/basic",
                sockets.clone(),
                transports(&[Transport::Bearer, Transport::Basic]),
            ),
        ),
        // The soak's routes: every transport on one, and a first-message one.
        (
            "/ws/any",
            route(
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
            ),
        ),
        (
            "/ws/deferred",
            Router::new()
                .route("/ws/deferred", get(deferred_echo))
                .with_state(sockets),
        ),
    ];
    // axum clones every route of a router for each connection it accepts
    // (`Router::with_state`, eagerly, per connection): a server of one
    // route is what bare axum is measured against where only one is used.
    let router = routes
        .into_iter()
        .filter(|(path, _)| only.is_none_or(|only| only == *path))
        .fold(Router::new(), |router, (_, route)| router.merge(route));
    let registry = gate.registry().clone();
    Gated {
        addr: serve(router).await,
        registry,
        gate,
        hs256: JwtIssuer::builder(hs_signing).build(),
    }
}
