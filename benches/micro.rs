//! Micro benchmarks of the per-message and per-handshake work wsgate adds:
//! a verified-token cache hit, the whole message pipeline, a role-guard
//! decision, an audit event emitted and discarded, credential extraction
//! from each transport, and a handshake's place among its subject's
//! sockets. Run with `cargo bench --bench micro`.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::{Message, Utf8Bytes};
use axum::response::Response;
use base64::Engine as _;
use criterion::{Criterion, criterion_group};
use futures_util::FutureExt as _;
use http::Request;
use tower::{Service, ServiceBuilder, ServiceExt as _};
use wsgate::audit::{AuditEvent, Auditor, EventKind, Outcome};
use wsgate::authenticate::{Authenticator, Credential};
use wsgate::handshake::HandshakeLayer;
use wsgate::jwt::{Algorithm, JwtIssuer, JwtVerifier, KeyPair};
use wsgate::pipeline::Deliver;
use wsgate::pipeline::{
    AuditLayer, MessageTokenLayer, Policy, RefreshLayer, Requirement, RoleGuardLayer, RolePolicy,
};
use wsgate::session::{BoxedPipeline, ConnectionId, Inbound, Session};
use wsgate::store::InMemoryRevocationStore;
use wsgate::ticket::Tickets;
use wsgate::{AuthMethod, Principal, Transport};

struct Fixture {
    verifier: JwtVerifier,
    token: String,
    session: Arc<Session>,
    /// The message as the socket hands it over: shared bytes, so making an
    /// `Inbound` of it costs what the driver pays (no copy of the text).
    message: Utf8Bytes,
}

fn fixture() -> Fixture {
    let (signing, verification) = KeyPair::hmac(&[42; 32], Algorithm::HS256)
        .unwrap()
        .into_parts();
    let verifier = JwtVerifier::builder().key(verification).build().unwrap();
    let principal = Principal::new("bench", AuthMethod::Password).with_roles(["user"]);
    let issued = JwtIssuer::builder(signing)
        .build()
        .issue_token(&principal)
        .unwrap();
    let token = issued.token().expose().to_owned();
    let verified = verifier.verify_token(&token).unwrap();
    let message = Utf8Bytes::from(
        serde_json::json!({"type": "say", "text": "hello, world", "token": token}).to_string(),
    );
    Fixture {
        verifier,
        token,
        session: Arc::new(Session::new(verified, None)),
        message,
    }
}

fn inbound(fixture: &Fixture) -> Inbound {
    Inbound::new(
        Message::Text(fixture.message.clone()),
        fixture.session.clone(),
    )
}

fn messages(c: &mut Criterion) {
    let fixture = fixture();
    let revocations = InMemoryRevocationStore::new();
    let mut group = c.benchmark_group("message");

    let mut token_check = ServiceBuilder::new()
        .layer(MessageTokenLayer::new(
            fixture.verifier.clone(),
            revocations.clone(),
        ))
        .service(Deliver);
    // The first call verifies and fills the cache; the rest are hits.
    token_check
        .call(inbound(&fixture))
        .now_or_never()
        .unwrap()
        .unwrap();
    group.bench_function("token_cache_hit", |bench| {
        bench.iter(|| {
            token_check
                .call(black_box(inbound(&fixture)))
                .now_or_never()
                .unwrap()
                .unwrap()
        });
    });

    let mut uncached = ServiceBuilder::new()
        .layer(
            MessageTokenLayer::new(fixture.verifier.clone(), revocations.clone()).cache_capacity(0),
        )
        .service(Deliver);
    group.bench_function("token_without_cache", |bench| {
        bench.iter(|| {
            uncached
                .call(black_box(inbound(&fixture)))
                .now_or_never()
                .unwrap()
                .unwrap()
        });
    });

    let policy = policy();
    let mut pipeline = full_pipeline(&fixture);
    group.bench_function("full_pipeline", |bench| {
        bench.iter(|| {
            pipeline
                .call(black_box(inbound(&fixture)))
                .now_or_never()
                .unwrap()
                .unwrap()
        });
    });

    group.bench_function("json_parse", |bench| {
        bench.iter(|| black_box(inbound(&fixture)).json().is_some());
    });

    let parsed = inbound(&fixture);
    parsed.json();
    let principal = fixture.session.principal();
    group.bench_function("role_guard_decision", |bench| {
        bench.iter(|| policy.check(black_box(&principal), black_box(&parsed)));
    });
    group.finish();
}

fn policy() -> RolePolicy {
    RolePolicy::by_type()
        .prefix("admin.", Requirement::any_role(["admin"]))
        .otherwise(Requirement::any_role(["user"]))
}

/// The full pipeline a `Gate` with per-message tokens runs — audit,
/// refresh, the token check with its cache, the role guard — boxed as the
/// gate boxes it, after one message that fills the token cache.
fn full_pipeline(fixture: &Fixture) -> BoxedPipeline {
    let revocations = InMemoryRevocationStore::new();
    let auditor = Auditor::new(|_: &AuditEvent| {});
    let mut pipeline = BoxedPipeline::new(
        ServiceBuilder::new()
            .layer(AuditLayer::new(auditor))
            .layer(RefreshLayer::new(
                fixture.verifier.clone(),
                revocations.clone(),
            ))
            .layer(MessageTokenLayer::new(
                fixture.verifier.clone(),
                revocations,
            ))
            .layer(RoleGuardLayer::new(policy()))
            .service(Deliver),
    );
    pipeline
        .call(inbound(fixture))
        .now_or_never()
        .unwrap()
        .unwrap();
    pipeline
}

/// `WSGATE_MICRO_COUNT=N` sends N messages through the full pipeline and
/// exits: under `valgrind --tool=callgrind`, the difference between N =
/// 20 000 and N = 0 over 20 000 is the instructions of one message, which
/// the machine's noise does not move.
fn count(times: &str) {
    let times: usize = times.parse().expect("a count");
    let fixture = fixture();
    let mut pipeline = full_pipeline(&fixture);
    for _ in 0..times {
        let verdict = pipeline
            .call(black_box(inbound(&fixture)))
            .now_or_never()
            .unwrap()
            .unwrap();
        black_box(verdict);
    }
}

fn audit(c: &mut Criterion) {
    let discard = Auditor::new(|event: &AuditEvent| {
        black_box(event);
    });
    c.bench_function("audit_event_discarded", |bench| {
        bench.iter(|| {
            let event = AuditEvent::new(EventKind::Message, Outcome::Deny)
                .with_reason("forbidden")
                .with_sub("alice")
                .with_conn(ConnectionId::from_raw(7))
                .with_action(Some("admin.kick".to_owned()));
            discard.record(black_box(&event));
        });
    });
}

/// Accepts every credential at once: what is left is the layer's own work.
#[derive(Clone)]
struct AcceptAll;

impl Authenticator for AcceptAll {
    async fn authenticate(&self, credential: &Credential) -> Result<Principal, wsgate::Error> {
        black_box(credential);
        Ok(Principal::new("bench", AuthMethod::Token))
    }
}

/// `layer` over a service that answers 200 at once: what is measured is
/// the layer's own work.
fn answering<L: tower::Layer<Answer>>(layer: L) -> L::Service {
    let answer: fn(Request<Body>) -> std::future::Ready<Result<Response, Infallible>> =
        |_request| std::future::ready(Ok(Response::new(Body::empty())));
    layer.layer(tower::service_fn(answer))
}

/// The service under a layer that [`answering`] measures.
type Answer =
    tower::util::ServiceFn<fn(Request<Body>) -> std::future::Ready<Result<Response, Infallible>>>;

/// `gate`'s handshake layer over a service that answers 200, reading
/// credentials from `Authorization` only.
fn bearer_handshakes(
    gate: &wsgate::Gate,
) -> wsgate::handshake::Handshake<
    Answer,
    wsgate::authenticate::BoxedAuthenticator,
    wsgate::limit::BoxedFailureLimiter,
> {
    let layer = gate
        .handshake()
        .transports([Transport::Bearer])
        .build()
        .unwrap();
    answering(layer)
}

/// The status `service` answers `request` with, at once.
fn status_of<S>(service: &S, request: Request<Body>) -> u16
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone,
{
    service
        .clone()
        .oneshot(request)
        .now_or_never()
        .expect("the layer answers without waiting")
        .unwrap()
        .status()
        .as_u16()
}

/// The status `service` answers `request` with, on `runtime`: for a
/// layer that waits on a store.
fn status_on<S>(runtime: &tokio::runtime::Runtime, service: &S, request: Request<Body>) -> u16
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone,
{
    let answer = runtime.block_on(service.clone().oneshot(request));
    answer.unwrap().status().as_u16()
}

fn extraction(c: &mut Criterion) {
    let fixture = fixture();
    let token = fixture.token.clone();
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:alice-password-1");
    let ticket = Tickets::in_memory()
        .issue(&Principal::new("x", AuthMethod::Token))
        .now_or_never()
        .unwrap()
        .unwrap();
    let ticket = ticket.ticket().expose().to_owned();
    let layer = HandshakeLayer::builder(AcceptAll)
        .transports([
            Transport::Bearer,
            Transport::Basic,
            Transport::Subprotocol,
            Transport::Ticket,
            Transport::Cookie,
        ])
        .allowed_origins(["https://app.example"])
        .unwrap()
        .application_protocols(["chat.v1"])
        .unwrap()
        .build()
        .unwrap();
    let service = answering(layer);
    let request = |transport: &str| {
        let builder = Request::get("/ws?room=lobby").header("origin", "https://app.example");
        let builder = match transport {
            "bearer" => builder.header("authorization", format!("Bearer {token}")),
            "basic" => builder.header("authorization", format!("Basic {basic}")),
            "subprotocol" => builder.header(
                "sec-websocket-protocol",
                format!("chat.v1, wsgate.bearer.{token}"),
            ),
            "cookie" => builder.header("cookie", format!("theme=dark; wsgate_token={token}")),
            "ticket" => Request::get(format!("/ws?room=lobby&ticket={ticket}")),
            other => panic!("{other}"),
        };
        builder.body(Body::empty()).unwrap()
    };
    let mut group = c.benchmark_group("handshake_extraction");
    for transport in ["bearer", "basic", "subprotocol", "cookie", "ticket"] {
        group.bench_function(transport, |bench| {
            bench.iter(|| {
                assert_eq!(status_of(&service, request(transport)), 200);
            });
        });
    }
    group.finish();
}

/// A gate's Bearer handshake (HS256) of a WebSocket upgrade, with and
/// without a limit of sockets per subject: the difference is taking a
/// place in the in-memory lease store and giving it back (the request,
/// and the lease with it, ends with the inner service's answer).
fn socket_limit(c: &mut Criterion) {
    let fixture = fixture();
    let handshake = |limited: bool| {
        let mut builder = wsgate::Gate::builder(fixture.verifier.clone());
        if limited {
            builder = builder.max_sockets_per_subject(1_000).unwrap();
        }
        bearer_handshakes(&builder.build().unwrap())
    };
    let request = || {
        Request::get("/ws")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("authorization", format!("Bearer {}", fixture.token))
            .body(Body::empty())
            .unwrap()
    };
    let mut group = c.benchmark_group("handshake_socket_limit");
    for (name, limited) in [("bearer_hs256", false), ("bearer_hs256_limited", true)] {
        let service = handshake(limited);
        group.bench_function(name, |bench| {
            bench.iter(|| {
                assert_eq!(status_of(&service, request()), 200);
            });
        });
    }
    group.finish();
}

/// A client's ES256 DPoP key: its thumbprint, and fresh proofs.
struct ProofMaker {
    key: jsonwebtoken::EncodingKey,
    jwk: serde_json::Value,
    jkt: String,
    next: std::cell::Cell<u64>,
}

impl ProofMaker {
    fn new() -> Self {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
        let jkt = jwk
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .unwrap();
        let jwk = serde_json::to_value(jwk).unwrap();
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": jwk["x"], "y": jwk["y"]});
        Self {
            key,
            jwk,
            jkt,
            next: std::cell::Cell::new(0),
        }
    }

    /// A proof for `GET url` with `token`, never made before.
    fn proof(&self, url: &str, token: &str) -> String {
        use sha2::Digest as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let n = self.next.get();
        self.next.set(n + 1);
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let claims = serde_json::json!({
            "htm": "GET", "htu": url, "iat": iat, "jti": format!("bench-{n}"),
            "ath": b64.encode(sha2::Sha256::digest(token.as_bytes())),
        });
        let signed = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(signed.as_bytes(), &self.key, Algorithm::ES256).unwrap();
        format!("{signed}.{signature}")
    }

    /// The public key, as a server reading the proof's `jwk` makes it.
    fn decoding_key(&self) -> jsonwebtoken::DecodingKey {
        jsonwebtoken::DecodingKey::from_ec_components(
            self.jwk["x"].as_str().unwrap(),
            self.jwk["y"].as_str().unwrap(),
        )
        .unwrap()
    }
}

/// ES256-token handshakes through a gate's layer, with a DPoP proof
/// (checked, its `jti` remembered in memory, or in Redis where
/// `redis-server` is installed) and without; beside them the yardsticks:
/// one ES256 signature check alone, and one `SET NX PX` round trip to the
/// same Redis (the target: the proof costs at most one ES256 verification
/// and 10 %).
///
/// Every variant issues one fresh token and makes one fresh proof in its
/// untimed setup, used or not, so each timed part starts with the caches
/// the same two signings left behind; and every signature checked is a
/// fresh one, never one signature again and again: aws-lc's inversion of
/// `s` runs in variable time, so one fixed signature is a biased sample of
/// what a verification costs.
fn dpop(c: &mut Criterion) {
    let pair = KeyPair::from_private_pem(wsgate_testkit::fixtures::ES256_PRIVATE).unwrap();
    let (signing, verification) = pair.into_parts();
    let issuer = JwtIssuer::builder(signing).build();
    let verifier = JwtVerifier::builder()
        .key(verification.clone())
        .build()
        .unwrap();
    let maker = ProofMaker::new();
    let principal = Principal::new("bench", AuthMethod::Token);
    // A fresh token each time, as a fresh proof: see above.
    let bearer = || {
        let issued = issuer.issue_token(&principal).unwrap();
        issued.token().expose().to_owned()
    };
    let bound = || {
        let issued = issuer.issue_bound_token(&principal, &maker.jkt).unwrap();
        issued.token().expose().to_owned()
    };
    let handshakes = |dpop: wsgate::dpop::DpopVerifier| {
        let builder = wsgate::Gate::builder(verifier.clone()).dpop_verifier(dpop);
        bearer_handshakes(&builder.build().unwrap())
    };
    let service = handshakes(wsgate::dpop::DpopVerifier::new());
    let url = "ws://bench.example/ws";
    let request = |scheme: &str, token: &str, proof: Option<String>| {
        let mut builder = Request::get("/ws")
            .header("host", "bench.example")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("authorization", format!("{scheme} {token}"));
        if let Some(proof) = proof {
            builder = builder.header("dpop", proof);
        }
        builder.body(Body::empty()).unwrap()
    };
    let bearer_request = || {
        let token = bearer();
        black_box(maker.proof(url, &token));
        request("Bearer", &token, None)
    };
    let bound_request = || {
        let token = bound();
        let proof = maker.proof(url, &token);
        request("DPoP", &token, Some(proof))
    };
    let small = criterion::BatchSize::NumBatches(1);
    let mut group = c.benchmark_group("handshake_dpop");
    group.bench_function("es256_bearer", |bench| {
        bench.iter_batched(
            bearer_request,
            |request| assert_eq!(status_of(&service, request), 200),
            small,
        );
    });
    group.bench_function("es256_dpop_in_memory", |bench| {
        bench.iter_batched(
            bound_request,
            |request| assert_eq!(status_of(&service, request), 200),
            small,
        );
    });
    let decoding = maker.decoding_key();
    group.bench_function("one_es256_verification", |bench| {
        bench.iter_batched(
            || {
                black_box(bearer());
                maker.proof(url, &bound())
            },
            |proof| {
                let (signed, signature) = proof.rsplit_once('.').unwrap();
                let valid = jsonwebtoken::crypto::verify(
                    signature,
                    signed.as_bytes(),
                    &decoding,
                    Algorithm::ES256,
                )
                .unwrap();
                assert!(valid);
            },
            small,
        );
    });

    let Some(redis) = RedisServer::start() else {
        println!("handshake_dpop in Redis: skipped (apt-get install -y redis-server)");
        group.finish();
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stores = runtime.block_on(async {
        wsgate::redis::RedisStores::builder(redis.url.clone())
            .build()
            .unwrap()
    });
    let replays = stores.proof_replays();
    let in_redis = handshakes(
        wsgate::dpop::DpopVerifier::builder()
            .replays(replays.clone())
            .build(),
    );
    group.bench_function("es256_bearer_on_runtime", |bench| {
        bench.iter_batched(
            bearer_request,
            |request| assert_eq!(status_on(&runtime, &in_redis, request), 200),
            small,
        );
    });
    group.bench_function("es256_dpop_in_redis", |bench| {
        bench.iter_batched(
            bound_request,
            |request| assert_eq!(status_on(&runtime, &in_redis, request), 200),
            small,
        );
    });
    // What the handshakes cost this process, without the waits on Redis:
    // 64 in flight at once on this one thread, so the round trips overlap,
    // timed by the CPU time of this thread (which runs the runtime, the
    // Redis client's driver included), so that neither a wait nor another
    // process on the machine counts.
    for (name, with_proof) in [
        ("es256_bearer_64_in_flight_cpu", false),
        ("es256_dpop_in_redis_64_in_flight_cpu", true),
    ] {
        group.bench_function(name, |bench| {
            use futures_util::StreamExt as _;
            bench.iter_custom(|iterations| {
                let requests: Vec<_> = (0..iterations)
                    .map(|_| {
                        if with_proof {
                            bound_request()
                        } else {
                            bearer_request()
                        }
                    })
                    .collect();
                let start = thread_cpu_time();
                runtime.block_on(
                    futures_util::stream::iter(requests)
                        .map(|request| in_redis.clone().oneshot(request))
                        .buffer_unordered(64)
                        .for_each(|answer| {
                            assert_eq!(answer.unwrap().status(), 200);
                            std::future::ready(())
                        }),
                );
                thread_cpu_time() - start
            });
        });
    }
    let next = std::cell::Cell::new(0_u64);
    group.bench_function("one_redis_set_nx_round_trip", |bench| {
        use wsgate::store::ProofReplayStore as _;
        bench.iter_batched(
            || {
                next.set(next.get() + 1);
                wsgate::store::ProofId::of("bench", &format!("round-trip-{}", next.get()))
            },
            |id| {
                let first = runtime
                    .block_on(replays.first_use(id, std::time::Duration::from_secs(60)))
                    .unwrap();
                assert!(first);
            },
            small,
        );
    });
    group.finish();
}

/// The CPU time this thread has run.
fn thread_cpu_time() -> std::time::Duration {
    use nix::time::{ClockId, clock_gettime};
    let now = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("a thread CPU clock");
    std::time::Duration::from(now)
}

/// A `redis-server` on a free loopback port, without persistence, killed
/// when dropped; `None` where none is installed. The binary is
/// `WSGATE_BENCH_REDIS_SERVER` where set (one carried to a machine with
/// nothing installed), else `redis-server` on the `PATH`.
struct RedisServer {
    child: std::process::Child,
    url: String,
}

impl RedisServer {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let binary =
            std::env::var_os("WSGATE_BENCH_REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let child = std::process::Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let server = Self {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        None
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

criterion_group!(benches, messages, audit, extraction, socket_limit, dpop);

fn main() {
    if let Ok(times) = std::env::var("WSGATE_MICRO_COUNT") {
        count(&times);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
