//! Live connections against a real axum server and real WebSocket clients:
//! expiry, refresh, revocation, kick, first-message authentication, size
//! and rate limits, idle timeout, the role guard, per-message tokens and
//! the audit trail.
//!
//! Time-dependent rules run under tokio's paused clock: the runtime jumps
//! to the next timer whenever everything is waiting, so an expiry 10 s
//! away takes no real time and is measured exactly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::raw::{RawFrame, RawSocket, TEXT, server_side_open};
use crate::common::{Keys, now, remember_secret, serve};
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message as ClientMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsgate::audit::{AuditEvent, Auditor, JsonLinesAudit};
use wsgate::jwt::JwtVerifier;
use wsgate::pipeline::{OnDeny, Requirement, RoleGuardLayer, RolePolicy};
use wsgate::socket::{DeferredUpgrade, GatedUpgrade, Limits, Registry};
use wsgate::store::Revocation;
use wsgate::{Gate, Principal, TokenVerifier, Transport};

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A token verifier that counts how often it runs.
#[derive(Clone)]
struct CountingVerifier {
    inner: JwtVerifier,
    calls: Arc<AtomicUsize>,
}

impl TokenVerifier for CountingVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, wsgate::Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.verify_token(token)
    }
}

struct Options {
    message_tokens: bool,
    on_deny: OnDeny,
    message_rate: u32,
    max_message_bytes: usize,
    ping: Option<Duration>,
    idle: Option<Duration>,
    unauthenticated: (usize, usize),
    write_timeout: Duration,
    auditor: Auditor,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            message_tokens: false,
            on_deny: OnDeny::Reply,
            message_rate: 0,
            max_message_bytes: 1024,
            ping: None,
            idle: None,
            unauthenticated: (1_024, 8),
            write_timeout: wsgate::socket::DEFAULT_WRITE_TIMEOUT,
            auditor: Auditor::tracing(),
        }
    }
}

struct Live {
    addr: SocketAddr,
    keys: Keys,
    registry: Registry,
    verifications: Arc<AtomicUsize>,
}

async fn echo(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        let hello = json!({"type": "welcome", "sub": socket.principal().subject(), "conn": socket.id().get()});
        let _ = socket.send(axum::extract::ws::Message::Text(hello.to_string().into())).await;
        while let Some(inbound) = socket.recv().await {
            if socket.send(inbound.into_message()).await.is_err() {
                break;
            }
        }
    })
}

/// A handler busy with something else: it greets, then does not read for
/// an hour.
async fn stalled(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        let hello = json!({"type": "welcome", "sub": socket.principal().subject()});
        let _ = socket
            .send(axum::extract::ws::Message::Text(hello.to_string().into()))
            .await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        while socket.recv().await.is_some() {}
    })
}

async fn deferred(State(gate): State<Gate>, upgrade: DeferredUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |socket| async move {
        let hello = json!({"type": "welcome", "sub": socket.principal().subject()});
        let _ = socket
            .send(axum::extract::ws::Message::Text(hello.to_string().into()))
            .await;
        let mut socket = socket;
        while socket.recv().await.is_some() {}
    })
}

/// `routes` behind `gate`'s handshake layer, with the Bearer transport
/// alone.
fn behind_bearer_handshake(gate: &Gate, routes: Router<Gate>) -> Router<Gate> {
    let handshake = gate
        .handshake()
        .transports([Transport::Bearer])
        .build()
        .unwrap();
    routes.route_layer(handshake)
}

impl Live {
    /// A server made from one gate: every stage shares its parts, and its
    /// verifier counts how often it runs.
    async fn start(options: Options) -> Self {
        let keys = Keys::load();
        let verifications = Arc::new(AtomicUsize::new(0));
        let counting = CountingVerifier {
            inner: keys.verifier(),
            calls: verifications.clone(),
        };
        let policy = RolePolicy::by_type()
            .prefix("admin.", Requirement::any_role(["admin"]))
            .otherwise(Requirement::any_role(["user"]));
        let limits = Limits::default()
            .max_message_bytes(options.max_message_bytes)
            .unwrap()
            .message_rate(options.message_rate)
            .ping_interval(options.ping)
            .idle_timeout(options.idle)
            .max_unauthenticated(options.unauthenticated.0, options.unauthenticated.1)
            .unwrap()
            .write_timeout(options.write_timeout)
            .unwrap();
        let gate = Gate::builder(counting)
            .audit(options.auditor.clone())
            .limits(limits)
            .message_tokens(options.message_tokens)
            .guard(RoleGuardLayer::new(policy).on_deny(options.on_deny))
            .build()
            .unwrap();
        let registry = gate.registry().clone();
        let routes = Router::new()
            .route("/ws", get(echo))
            .route("/ws/stalled", get(stalled));
        let router = behind_bearer_handshake(&gate, routes)
            .route("/ws/deferred", get(deferred))
            .with_state(gate);
        let addr = serve(router).await;
        Self {
            addr,
            keys,
            registry,
            verifications,
        }
    }

    /// A token for `subject` with `roles`, expiring in `expires_in` seconds.
    fn token(&self, subject: &str, roles: &[&str], expires_in: u64, jti: &str) -> String {
        let mut claims = Keys::claims(subject);
        claims["roles"] = json!(roles);
        claims["exp"] = json!(now() + expires_in);
        claims["jti"] = json!(jti);
        self.keys.sign_with(Algorithm::HS256, &claims, |_| {})
    }

    async fn connect(&self, token: &str) -> (Client, Value) {
        let mut client = crate::common::open_with_bearer(self.addr, "/ws", token).await;
        let welcome = next_json(&mut client).await;
        (client, welcome)
    }

    async fn connect_deferred(&self) -> Client {
        let url = format!("ws://{}/ws/deferred", self.addr);
        tokio_tungstenite::connect_async(url).await.unwrap().0
    }
}

async fn send_json(client: &mut Client, value: Value) {
    client
        .send(ClientMessage::Text(value.to_string().into()))
        .await
        .unwrap();
}

async fn next_json(client: &mut Client) -> Value {
    loop {
        match client
            .next()
            .await
            .expect("socket ended")
            .expect("read failed")
        {
            ClientMessage::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            ClientMessage::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads until the close frame; returns its code and reason.
async fn next_close(client: &mut Client) -> (u16, String) {
    while let Some(message) = client.next().await {
        if let Ok(ClientMessage::Close(Some(frame))) = message {
            return (frame.code.into(), frame.reason.to_string());
        }
        if message.is_err() {
            break;
        }
    }
    panic!("socket ended without a close frame");
}

#[tokio::test(start_paused = true)]
async fn a_silent_socket_closes_with_4401_when_its_token_expires() {
    let live = Live::start(Options::default()).await;
    let token = live.token("alice", &["user"], 10, "expiring");
    let start = Instant::now();
    let (mut client, welcome) = live.connect(&token).await;
    assert_eq!(welcome["sub"], "alice");
    let (code, reason) = next_close(&mut client).await;
    assert_eq!((code, reason.as_str()), (4401, "token expired"));
    let elapsed = start.elapsed();
    // `exp` has whole seconds: the close comes within a second of it.
    assert!(
        elapsed >= Duration::from_secs(9) && elapsed <= Duration::from_secs(11),
        "closed after {elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_extends_the_session() {
    let live = Live::start(Options::default()).await;
    let start = Instant::now();
    let (mut client, _) = live
        .connect(&live.token("alice", &["user"], 10, "first"))
        .await;
    let later = live.token("alice", &["user"], 60, "second");
    send_json(&mut client, json!({"type": "auth.refresh", "token": later})).await;
    let reply = next_json(&mut client).await;
    assert_eq!(reply["type"], "auth.refreshed");
    assert_eq!(reply["expires_at"], json!(now() + 60));
    // Still open past the first token's expiry: it echoes.
    tokio::time::sleep(Duration::from_secs(20)).await;
    send_json(&mut client, json!({"type": "say", "text": "still here"})).await;
    assert_eq!(next_json(&mut client).await["text"], "still here");
    let (code, reason) = next_close(&mut client).await;
    assert_eq!((code, reason.as_str()), (4401, "token expired"));
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(59) && elapsed <= Duration::from_secs(61),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn refused_refreshes_close_with_4401() {
    let live = Live::start(Options::default()).await;
    let foreign_key = b"not-the-server-key-but-32-bytes-long!!";
    let bad_signature = {
        let mut claims = Keys::claims("alice");
        claims["exp"] = json!(now() + 600);
        crate::common::forge(
            &json!({"alg": "HS256", "kid": "hs", "typ": "at+jwt"}),
            &claims,
            foreign_key,
        )
    };
    struct Case {
        name: &'static str,
        token: String,
        reason: &'static str,
    }
    let cases = [
        Case {
            name: "another subject",
            token: live.token("mallory", &["user"], 600, "m1"),
            reason: "invalid token",
        },
        Case {
            name: "bad signature",
            token: bad_signature,
            reason: "invalid token",
        },
        Case {
            name: "earlier exp",
            token: live.token("alice", &["user"], 60, "e1"),
            reason: "invalid token",
        },
        Case {
            name: "same exp",
            token: live.token("alice", &["user"], 300, "s1"),
            reason: "invalid token",
        },
        Case {
            name: "not a token",
            token: remember_secret("garbage"),
            reason: "invalid token",
        },
    ];
    for case in cases {
        let (mut client, _) = live
            .connect(&live.token("alice", &["user"], 300, "current"))
            .await;
        send_json(
            &mut client,
            json!({"type": "auth.refresh", "token": case.token}),
        )
        .await;
        let (code, reason) = next_close(&mut client).await;
        assert_eq!(
            (code, reason.as_str()),
            (4401, case.reason),
            "{}",
            case.name
        );
    }
}

/// Opens 100 sockets: subjects user0..user9, ten sockets each, every token
/// with its own jti, `sid` naming one of ten sessions.
async fn hundred_sockets(live: &Live) -> Vec<(String, String, String, Client)> {
    let mut sockets = Vec::new();
    for index in 0..100 {
        let subject = format!("user{}", index % 10);
        let jti = format!("jti-{index}");
        let sid = format!("sid-{}", index / 10);
        let mut claims = Keys::claims(&subject);
        claims["jti"] = json!(jti);
        claims["sid"] = json!(sid);
        let token = live.keys.sign_with(Algorithm::HS256, &claims, |_| {});
        let (client, _) = live.connect(&token).await;
        sockets.push((subject, jti, sid, client));
    }
    sockets
}

#[tokio::test(start_paused = true)]
async fn revocation_closes_exactly_the_matching_sockets() {
    struct Case {
        name: &'static str,
        revocation: fn() -> Revocation,
        matches: fn(&str, &str, &str) -> bool,
    }
    let cases = [
        Case {
            name: "ten token ids",
            revocation: || Revocation::Token("unused".into()),
            matches: |_, jti, _| jti.trim_start_matches("jti-").parse::<u32>().unwrap() % 10 == 3,
        },
        Case {
            name: "subject",
            revocation: || Revocation::Subject {
                subject: "user7".into(),
                issued_before: std::time::SystemTime::now() + Duration::from_secs(1),
            },
            matches: |subject, _, _| subject == "user7",
        },
        Case {
            name: "session",
            revocation: || Revocation::Session("sid-4".into()),
            matches: |_, _, sid| sid == "sid-4",
        },
    ];
    for case in cases {
        let live = Live::start(Options::default()).await;
        let mut sockets = hundred_sockets(&live).await;
        assert_eq!(live.registry.len(), 100);
        let mut closed = 0;
        if case.name == "ten token ids" {
            for (_, jti, _, _) in sockets
                .iter()
                .filter(|(s, j, i, _)| (case.matches)(s, j, i))
            {
                closed += live
                    .registry
                    .revoke(Revocation::Token(jti.clone()))
                    .await
                    .unwrap();
            }
        } else {
            closed = live.registry.revoke((case.revocation)()).await.unwrap();
        }
        assert_eq!(closed, 10, "{}", case.name);
        // The ten close without any timer having to fire: the paused clock
        // may not move more than 100 ms while they arrive.
        let started = Instant::now();
        for (subject, jti, sid, client) in sockets.iter_mut() {
            if (case.matches)(subject, jti, sid) {
                let (code, reason) = timeout(Duration::from_millis(100), next_close(client))
                    .await
                    .unwrap_or_else(|_| panic!("{}: {subject}/{jti} not closed", case.name));
                assert_eq!(
                    (code, reason.as_str()),
                    (4403, "token revoked"),
                    "{}",
                    case.name
                );
            }
        }
        assert!(started.elapsed() <= Duration::from_millis(100));
        // The other ninety still echo.
        let mut untouched = 0;
        for (subject, jti, sid, client) in sockets.iter_mut() {
            if !(case.matches)(subject, jti, sid) {
                send_json(client, json!({"type": "ping", "n": 1})).await;
                assert_eq!(
                    next_json(client).await["n"],
                    1,
                    "{}: {subject}/{jti}",
                    case.name
                );
                untouched += 1;
            }
        }
        assert_eq!(untouched, 90, "{}", case.name);
        // Closed connections leave the registry once their close handshake
        // is over (at most the one-second grace).
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(live.registry.len(), 90, "{}", case.name);
    }
}

#[tokio::test]
async fn revoked_tokens_are_refused_at_the_handshake_and_later_ones_work() {
    let live = Live::start(Options::default()).await;
    let old = live.token("alice", &["user"], 300, "old");
    live.registry
        .revoke(Revocation::Subject {
            subject: "alice".into(),
            issued_before: std::time::SystemTime::now(),
        })
        .await
        .unwrap();
    let mut request = format!("ws://{}/ws", live.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {old}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            assert!(
                response.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .contains("token revoked")
            );
        }
        other => panic!("revoked token accepted: {:?}", other.map(|_| ())),
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut claims = Keys::claims("alice");
    claims["iat"] = json!(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    );
    claims["jti"] = json!("new");
    let fresh = live.keys.sign_with(Algorithm::HS256, &claims, |_| {});
    let (_client, welcome) = live.connect(&fresh).await;
    assert_eq!(welcome["sub"], "alice");
}

#[tokio::test]
async fn a_handler_that_stops_reading_does_not_hold_back_a_kick() {
    let live = Live::start(Options {
        idle: Some(Duration::from_millis(300)),
        ..Options::default()
    })
    .await;
    let token = live.token("alice", &["user"], 300, "a");
    let mut client = crate::common::open_with_bearer(live.addr, "/ws/stalled", &token).await;
    assert_eq!(next_json(&mut client).await["type"], "welcome");
    // Far more than the handler's queue holds: the driver stops reading
    // and waits for room.
    for n in 0..200 {
        send_json(&mut client, json!({"type": "say", "n": n})).await;
    }
    // Longer than the idle timeout: the client is not the silent one, so
    // the socket stays open.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(live.registry.kick("alice"), 1);
    let closed = timeout(Duration::from_secs(5), next_close(&mut client)).await;
    assert_eq!(
        closed.expect("the kick waited for the handler"),
        (4403, "forbidden".to_owned())
    );
}

#[tokio::test]
async fn the_registry_lists_and_kicks_connections() {
    let live = Live::start(Options::default()).await;
    let (mut alice, _) = live
        .connect(&live.token("alice", &["user"], 300, "a"))
        .await;
    let (mut bob, welcome) = live.connect(&live.token("bob", &["user"], 300, "b")).await;
    let mut listed: Vec<String> = live
        .registry
        .list()
        .into_iter()
        .map(|info| info.subject)
        .collect();
    listed.sort();
    assert_eq!(listed, ["alice", "bob"]);
    assert_eq!(live.registry.kick("alice"), 1);
    assert_eq!(next_close(&mut alice).await, (4403, "forbidden".to_owned()));
    send_json(&mut bob, json!({"type": "still", "conn": welcome["conn"]})).await;
    assert_eq!(next_json(&mut bob).await["type"], "still");
}

#[tokio::test(start_paused = true)]
async fn first_message_authentication() {
    let live = Live::start(Options::default()).await;
    let token = live.token("alice", &["user"], 300, "deferred");

    let mut client = live.connect_deferred().await;
    send_json(&mut client, json!({"type": "auth", "token": token})).await;
    assert_eq!(next_json(&mut client).await["sub"], "alice");

    let start = Instant::now();
    let mut silent = live.connect_deferred().await;
    assert_eq!(
        next_close(&mut silent).await,
        (4401, "authentication timeout".to_owned())
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(6),
        "{elapsed:?}"
    );

    let mut early = live.connect_deferred().await;
    send_json(&mut early, json!({"type": "say", "text": "before auth"})).await;
    assert_eq!(
        next_close(&mut early).await,
        (4401, "invalid token".to_owned())
    );

    let mut forged = live.connect_deferred().await;
    send_json(
        &mut forged,
        json!({"type": "auth", "token": remember_secret("a.b.c")}),
    )
    .await;
    assert_eq!(
        next_close(&mut forged).await,
        (4401, "invalid token".to_owned())
    );
}

async fn deferred_status(live: &Live) -> Result<Client, u16> {
    let url = format!("ws://{}/ws/deferred", live.addr);
    match tokio_tungstenite::connect_async(url).await {
        Ok((client, _)) => Ok(client),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("{error}"),
    }
}

#[tokio::test]
async fn unauthenticated_sockets_are_capped_per_address_and_in_total() {
    let live = Live::start(Options {
        unauthenticated: (10, 2),
        ..Options::default()
    })
    .await;
    let mut first = deferred_status(&live).await.unwrap();
    let _second = deferred_status(&live).await.unwrap();
    assert_eq!(
        deferred_status(&live).await.err(),
        Some(429),
        "a third from the same address"
    );
    // Authenticating frees the place.
    send_json(
        &mut first,
        json!({"type": "auth", "token": live.token("alice", &["user"], 300, "cap")}),
    )
    .await;
    assert_eq!(next_json(&mut first).await["sub"], "alice");
    assert!(deferred_status(&live).await.is_ok());

    let live = Live::start(Options {
        unauthenticated: (2, 10),
        ..Options::default()
    })
    .await;
    let _one = deferred_status(&live).await.unwrap();
    let _two = deferred_status(&live).await.unwrap();
    assert_eq!(
        deferred_status(&live).await.err(),
        Some(503),
        "a third on the node"
    );
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_1009() {
    let live = Live::start(Options {
        max_message_bytes: 1024,
        ..Options::default()
    })
    .await;
    let (mut client, _) = live
        .connect(&live.token("alice", &["user"], 300, "big"))
        .await;
    send_json(&mut client, json!({"type": "fits", "pad": "x".repeat(900)})).await;
    assert_eq!(next_json(&mut client).await["type"], "fits");
    client
        .send(ClientMessage::Text("x".repeat(1025).into()))
        .await
        .unwrap();
    assert_eq!(
        next_close(&mut client).await,
        (1009, "message too big".to_owned())
    );
}

#[tokio::test]
async fn messages_larger_than_the_read_buffer_arrive_whole() {
    // The default read buffer is 16 KiB: a 60 KiB message takes several
    // reads, and a burst of small ones shares one.
    let live = Live::start(Options {
        max_message_bytes: wsgate::socket::DEFAULT_MAX_MESSAGE_BYTES,
        ..Options::default()
    })
    .await;
    let (mut client, _) = live
        .connect(&live.token("alice", &["user"], 300, "large"))
        .await;
    let large = "y".repeat(60 * 1024);
    send_json(&mut client, json!({"type": "large", "pad": large})).await;
    let echo = next_json(&mut client).await;
    assert_eq!(echo["pad"].as_str().map(str::len), Some(60 * 1024));
    assert!(
        echo["pad"]
            .as_str()
            .unwrap()
            .bytes()
            .all(|byte| byte == b'y')
    );
    for index in 0..200 {
        send_json(&mut client, json!({"type": "small", "n": index})).await;
    }
    for index in 0..200 {
        assert_eq!(next_json(&mut client).await["n"], index);
    }
}

#[tokio::test]
async fn a_message_flood_closes_with_4429() {
    // Ten a second with bursts of twenty: forty messages sent at once
    // cannot all pass. (The refill itself is unit-tested under a paused
    // clock.)
    let live = Live::start(Options {
        message_rate: 10,
        ..Options::default()
    })
    .await;
    let (mut client, _) = live
        .connect(&live.token("alice", &["user"], 300, "flood"))
        .await;
    for n in 0..40 {
        // The server may close while the last ones are on their way.
        let message = json!({"type": "say", "n": n}).to_string();
        let _ = client.send(ClientMessage::Text(message.into())).await;
    }
    assert_eq!(
        next_close(&mut client).await,
        (4429, "rate limited".to_owned())
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_as_idle_but_pongs_keep_it_alive() {
    // Without pings, a client that sends nothing is idle.
    let live = Live::start(Options {
        idle: Some(Duration::from_secs(90)),
        ..Options::default()
    })
    .await;
    let start = Instant::now();
    let (mut client, _) = live
        .connect(&live.token("alice", &["user"], 3_600, "idle"))
        .await;
    assert_eq!(
        next_close(&mut client).await,
        (1001, "idle timeout".to_owned())
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(90) && elapsed < Duration::from_secs(91),
        "{elapsed:?}"
    );

    // With pings every 30 s, the client's automatic pongs count as heard.
    let options = Options {
        ping: Some(Duration::from_secs(30)),
        idle: Some(Duration::from_secs(90)),
        ..Options::default()
    };
    let live = Live::start(options).await;
    let (mut client, _) = live
        .connect(&live.token("alice", &["user"], 3_600, "pong"))
        .await;
    let quiet = timeout(Duration::from_secs(300), next_close(&mut client)).await;
    assert!(
        quiet.is_err(),
        "closed although it answered pings: {quiet:?}"
    );
}

#[tokio::test]
async fn the_role_guard_replies_or_closes() {
    let live = Live::start(Options::default()).await;
    let (mut user, _) = live
        .connect(&live.token("alice", &["user"], 300, "u"))
        .await;
    send_json(&mut user, json!({"type": "admin.kick", "sub": "bob"})).await;
    assert_eq!(
        next_json(&mut user).await,
        json!({"type": "error", "code": "forbidden", "ref": "admin.kick"})
    );
    send_json(
        &mut user,
        json!({"type": "say", "text": "socket stays open"}),
    )
    .await;
    assert_eq!(next_json(&mut user).await["text"], "socket stays open");
    let (mut admin, _) = live
        .connect(&live.token("root", &["user", "admin"], 300, "r"))
        .await;
    send_json(&mut admin, json!({"type": "admin.kick", "sub": "bob"})).await;
    assert_eq!(next_json(&mut admin).await["type"], "admin.kick");
    let (mut guest, _) = live.connect(&live.token("guest", &[], 300, "g")).await;
    send_json(&mut guest, json!({"type": "say"})).await;
    assert_eq!(next_json(&mut guest).await["code"], "forbidden");

    let closing = Live::start(Options {
        on_deny: OnDeny::Close,
        ..Options::default()
    })
    .await;
    let (mut user, _) = closing
        .connect(&closing.token("alice", &["user"], 300, "c"))
        .await;
    send_json(&mut user, json!({"type": "admin.kick", "sub": "bob"})).await;
    assert_eq!(next_close(&mut user).await, (4403, "forbidden".to_owned()));
}

#[tokio::test]
async fn per_message_tokens_are_required_and_cached() {
    let live = Live::start(Options {
        message_tokens: true,
        ..Options::default()
    })
    .await;
    let token = live.token("alice", &["user"], 300, "msg");
    let (mut client, _) = live.connect(&token).await;
    for n in 0..5 {
        send_json(&mut client, json!({"type": "say", "n": n, "token": token})).await;
        assert_eq!(next_json(&mut client).await["n"], n);
    }
    assert_eq!(
        live.verifications.load(Ordering::SeqCst),
        2,
        "one verification at the handshake, one for the first message: four of five messages hit the cache"
    );

    struct Case {
        name: &'static str,
        message: Value,
        close: (u16, &'static str),
    }
    let expired = {
        let mut claims = Keys::claims("alice");
        claims["exp"] = json!(now() - 60);
        live.keys.sign_with(Algorithm::HS256, &claims, |_| {})
    };
    let cases = [
        Case {
            name: "no token",
            message: json!({"type": "say"}),
            close: (4401, "invalid token"),
        },
        Case {
            name: "another subject",
            message: json!({"type": "say", "token": live.token("mallory", &["user"], 300, "m")}),
            close: (4401, "invalid token"),
        },
        Case {
            name: "expired",
            message: json!({"type": "say", "token": expired}),
            close: (4401, "token expired"),
        },
        Case {
            name: "garbage",
            message: json!({"type": "say", "token": remember_secret("x.y.z")}),
            close: (4401, "invalid token"),
        },
    ];
    for case in cases {
        let (mut client, _) = live.connect(&token).await;
        send_json(&mut client, case.message).await;
        let (code, reason) = next_close(&mut client).await;
        assert_eq!((code, reason.as_str()), case.close, "{}", case.name);
    }

    // A revoked token is refused even from the cache.
    let (mut client, _) = live.connect(&token).await;
    live.registry
        .revoke(Revocation::Token("msg".into()))
        .await
        .unwrap();
    let (code, reason) = next_close(&mut client).await;
    assert_eq!((code, reason.as_str()), (4403, "token revoked"));
}

/// A connection that repeats its message token skips the hash and the
/// shared cache; what it remembers must still expire and be revoked. The
/// socket is opened with one token and the messages carry another, so no
/// revocation of the socket's own token closes it first.
#[tokio::test]
async fn a_repeated_message_token_still_expires_and_is_still_revoked() {
    let live = Live::start(Options {
        message_tokens: true,
        ..Options::default()
    })
    .await;
    let socket_token = live.token("alice", &["user"], 300, "socket");

    let short = live.token("alice", &["user"], 1, "short");
    let (mut client, _) = live.connect(&socket_token).await;
    for n in 0..3 {
        send_json(&mut client, json!({"type": "say", "n": n, "token": short})).await;
        assert_eq!(next_json(&mut client).await["n"], n);
    }
    // Past `exp` and the verifier's leeway (real time: the cache reads the
    // system clock).
    tokio::time::sleep(Duration::from_secs(crate::common::LEEWAY_SECS + 2)).await;
    send_json(&mut client, json!({"type": "say", "token": short})).await;
    let (code, reason) = next_close(&mut client).await;
    assert_eq!(
        (code, reason.as_str()),
        (4401, "token expired"),
        "the remembered token expired"
    );

    let repeated = live.token("alice", &["user"], 300, "repeated");
    let (mut client, _) = live.connect(&socket_token).await;
    for n in 0..3 {
        send_json(
            &mut client,
            json!({"type": "say", "n": n, "token": repeated}),
        )
        .await;
        assert_eq!(next_json(&mut client).await["n"], n);
    }
    let closed = live
        .registry
        .revoke(Revocation::Token("repeated".into()))
        .await
        .unwrap();
    assert_eq!(closed, 0, "the socket's own token is another");
    send_json(&mut client, json!({"type": "say", "token": repeated})).await;
    let (code, reason) = next_close(&mut client).await;
    assert_eq!(
        (code, reason.as_str()),
        (4403, "token revoked"),
        "the remembered token was revoked"
    );
}

#[tokio::test(start_paused = true)]
async fn every_denial_and_close_is_in_the_json_lines_audit_without_tokens() {
    let path = std::env::temp_dir().join(format!("wsgate-live-audit-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let file = Arc::new(JsonLinesAudit::open(&path).unwrap());
    let sink = file.clone();
    let auditor = Auditor::new(move |event: &AuditEvent| {
        use wsgate::audit::AuditSink;
        sink.record(event);
    });
    let live = Live::start(Options {
        message_rate: 5,
        max_message_bytes: 512,
        auditor,
        ..Options::default()
    })
    .await;
    let mut tokens = Vec::new();
    let mut mint = |subject: &str, roles: &[&str], expires_in: u64, jti: &str| {
        let token = live.token(subject, roles, expires_in, jti);
        tokens.push(token.clone());
        token
    };

    // handshake deny
    let mut request = format!("ws://{}/ws", live.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer nope.nope.nope".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
    // message deny, refresh allow, refresh deny + close
    let (mut client, _) = live.connect(&mint("alice", &["user"], 100, "a1")).await;
    send_json(&mut client, json!({"type": "admin.stats"})).await;
    next_json(&mut client).await;
    let later = mint("alice", &["user"], 200, "a2");
    send_json(&mut client, json!({"type": "auth.refresh", "token": later})).await;
    next_json(&mut client).await;
    let foreign = mint("bob", &["user"], 300, "b1");
    send_json(
        &mut client,
        json!({"type": "auth.refresh", "token": foreign}),
    )
    .await;
    next_close(&mut client).await;
    // expiry close
    let (mut client, _) = live.connect(&mint("carol", &["user"], 3, "c1")).await;
    next_close(&mut client).await;
    // 1009 and 4429
    let (mut client, _) = live.connect(&mint("dave", &["user"], 300, "d1")).await;
    client
        .send(ClientMessage::Text("x".repeat(600).into()))
        .await
        .unwrap();
    next_close(&mut client).await;
    let (mut client, _) = live.connect(&mint("erin", &["user"], 300, "e1")).await;
    for _ in 0..12 {
        let _ = client.send(ClientMessage::Text("{}".into())).await;
    }
    next_close(&mut client).await;
    // revoke
    let (mut client, _) = live.connect(&mint("frank", &["user"], 300, "f1")).await;
    live.registry
        .revoke(Revocation::Token("f1".into()))
        .await
        .unwrap();
    next_close(&mut client).await;

    tokio::time::sleep(Duration::from_millis(50)).await;
    file.flush();
    let text = std::fs::read_to_string(&path).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let find = |event: &str, outcome: &str, reason: Option<&str>| {
        events
            .iter()
            .find(|line| {
                line["event"] == event
                    && line["outcome"] == outcome
                    && reason.is_none_or(|reason| line["reason"] == reason)
            })
            .unwrap_or_else(|| panic!("no {event}/{outcome}/{reason:?} event in:\n{text}"))
            .clone()
    };
    for line in &events {
        assert!(
            line["ts"].as_str().is_some_and(|ts| ts.ends_with('Z')),
            "{line}"
        );
        assert!(
            line["event"].is_string() && line["outcome"].is_string(),
            "{line}"
        );
        if line["outcome"] == "deny" || line["event"] == "close" {
            assert!(line["reason"].is_string(), "deny without a reason: {line}");
        }
        if line["event"] == "handshake" {
            assert!(
                line["transport"].is_string() && line["peer"].is_string(),
                "{line}"
            );
        }
        if matches!(
            line["event"].as_str(),
            Some("message" | "refresh" | "close")
        ) {
            assert!(
                line["conn"].is_u64() && line["sub"].is_string() && line["peer"].is_string(),
                "{line}"
            );
        }
    }
    find("handshake", "deny", Some("invalid token"));
    find("handshake", "allow", None);
    assert_eq!(
        find("message", "deny", Some("forbidden"))["action"],
        "admin.stats"
    );
    find("refresh", "allow", None);
    find("refresh", "deny", Some("invalid token"));
    assert_eq!(find("close", "deny", Some("token expired"))["code"], 4401);
    assert_eq!(find("close", "deny", Some("message too big"))["code"], 1009);
    assert_eq!(find("close", "deny", Some("rate limited"))["code"], 4429);
    assert_eq!(find("close", "deny", Some("token revoked"))["code"], 4403);
    assert_eq!(find("revoke", "allow", None)["closed"], 1);
    for token in &tokens {
        assert!(
            !text.contains(token.as_str()),
            "a token reached the audit file"
        );
    }
    assert!(
        !text.contains("eyJ"),
        "something token-shaped reached the audit file"
    );
    let _ = std::fs::remove_file(&path);
}

/// Serves `gate`'s echo route (Bearer tokens) on its own; returns its
/// address and the gate's registry.
async fn serve_echo(gate: Gate) -> (SocketAddr, Registry) {
    let registry = gate.registry().clone();
    let router =
        behind_bearer_handshake(&gate, Router::new().route("/ws", get(echo))).with_state(gate);
    (serve(router).await, registry)
}

/// A token of alice's with the token id `jti`.
fn alice_with_jti(keys: &Keys, jti: &str) -> String {
    let mut claims = Keys::claims("alice");
    claims["jti"] = json!(jti);
    keys.sign_with(Algorithm::HS256, &claims, |_| {})
}

/// An auditor that keeps the reasons of the closes it records.
fn close_reasons() -> (Auditor, Arc<std::sync::Mutex<Vec<String>>>) {
    let reasons = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = reasons.clone();
    let auditor = Auditor::new(move |event: &AuditEvent| {
        let event = event.to_json();
        if event["event"] == "close" {
            kept.lock()
                .unwrap()
                .push(event["reason"].as_str().unwrap_or_default().to_owned());
        }
    });
    (auditor, reasons)
}

/// Waits (in real time, up to `within`) until `done` holds; says how long
/// it took, or fails with `what`.
async fn real_wait(within: Duration, what: &str, done: impl Fn() -> bool) -> Duration {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{what} after {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// A client of `/ws` (which echoes) that sends 30 KB messages and never
/// reads: once its receive window and the server's send buffer are full,
/// the server's write waits, and so does its reading.
async fn stalled_reader(live: &Live, token: &str) -> RawSocket {
    let mut raw = RawSocket::open_with_receive_buffer(
        live.addr,
        "/ws",
        &[("Authorization", format!("Bearer {token}"))],
        4_096,
    )
    .await;
    let frame = RawFrame::new(
        TEXT,
        json!({"type": "say", "text": "x".repeat(30_000)}).to_string(),
    );
    let sent = raw
        .flood_until_stalled(&frame, Duration::from_millis(500))
        .await;
    assert!(sent > 0, "no message went out");
    assert!(server_side_open(live.addr, raw.local_addr()));
    raw
}

/// A server for stalled readers: 30 KB messages, close reasons kept.
async fn for_stalled_readers(
    write_timeout: Duration,
) -> (Live, Arc<std::sync::Mutex<Vec<String>>>) {
    let (auditor, reasons) = close_reasons();
    let live = Live::start(Options {
        auditor,
        write_timeout,
        max_message_bytes: 64 * 1024,
        ..Options::default()
    })
    .await;
    (live, reasons)
}

#[tokio::test]
async fn a_client_that_stops_reading_is_revoked_at_once() {
    let (live, reasons) = for_stalled_readers(wsgate::socket::DEFAULT_WRITE_TIMEOUT).await;
    let token = live.token("alice", &["user"], 300, "a");
    let raw = stalled_reader(&live, &token).await;
    let revocation = Revocation::Subject {
        subject: "alice".into(),
        issued_before: std::time::SystemTime::now() + Duration::from_secs(1),
    };
    assert_eq!(live.registry.revoke(revocation).await.unwrap(), 1);
    assert!(
        live.registry.list().is_empty(),
        "a revoked socket is still listed"
    );
    // Its close frame cannot be delivered: the connection is dropped
    // after the one-second grace.
    let took = real_wait(
        Duration::from_secs(2),
        "the connection is still open",
        || !server_side_open(live.addr, raw.local_addr()),
    )
    .await;
    assert!(took >= Duration::from_millis(900), "no grace: {took:?}");
    assert_eq!(*reasons.lock().unwrap(), ["token revoked"]);
}

#[tokio::test]
async fn a_client_that_stops_reading_still_expires() {
    let (live, reasons) = for_stalled_readers(wsgate::socket::DEFAULT_WRITE_TIMEOUT).await;
    let token = live.token("alice", &["user"], 2, "a");
    let raw = stalled_reader(&live, &token).await;
    real_wait(
        Duration::from_secs(4),
        "the expired socket is still listed",
        || live.registry.is_empty(),
    )
    .await;
    real_wait(
        Duration::from_secs(2),
        "the connection is still open",
        || !server_side_open(live.addr, raw.local_addr()),
    )
    .await;
    assert_eq!(*reasons.lock().unwrap(), ["token expired"]);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let (live, reasons) = for_stalled_readers(Duration::from_secs(1)).await;
    let token = live.token("alice", &["user"], 300, "a");
    let raw = stalled_reader(&live, &token).await;
    // The stall began before the flood gave up (its last write waited
    // half a second): gone within the timeout and the close's grace.
    real_wait(
        Duration::from_secs(3),
        "the slow consumer is still open",
        || !server_side_open(live.addr, raw.local_addr()),
    )
    .await;
    assert!(live.registry.is_empty());
    assert_eq!(*reasons.lock().unwrap(), ["slow consumer"]);
}

#[tokio::test]
async fn a_policy_that_never_answers_does_not_hold_back_a_revocation() {
    let keys = Keys::load();
    let (auditor, reasons) = close_reasons();
    // Answers every message but `hang`, which it never answers.
    let policy = |_principal: Arc<Principal>, message: &wsgate::session::Inbound| {
        let hang = message.json_str("type") == Some("hang");
        async move {
            if hang {
                std::future::pending::<()>().await;
            }
            Ok(wsgate::pipeline::Access::Allow)
        }
    };
    let gate = Gate::builder(keys.verifier())
        .audit(auditor)
        .async_policy(policy)
        .build()
        .unwrap();
    let (addr, registry) = serve_echo(gate).await;
    let token = alice_with_jti(&keys, "a");
    let mut client = crate::common::open_with_bearer(addr, "/ws", &token).await;
    assert_eq!(next_json(&mut client).await["type"], "welcome");
    send_json(&mut client, json!({"type": "say", "n": 1})).await;
    assert_eq!(next_json(&mut client).await["n"], 1);
    send_json(&mut client, json!({"type": "hang"})).await;
    send_json(&mut client, json!({"type": "say", "n": 2})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        registry
            .revoke(Revocation::Token("a".into()))
            .await
            .unwrap(),
        1
    );
    let closed = timeout(Duration::from_secs(2), next_close(&mut client)).await;
    assert_eq!(
        closed.expect("the revocation waited for the policy"),
        (4403, "token revoked".to_owned())
    );
    assert!(registry.is_empty());
    assert_eq!(*reasons.lock().unwrap(), ["token revoked"]);
}

/// A revocation store whose first check (the handshake's) is followed at
/// once by a revocation of the token it was asked about, through the
/// registry, before the handshake goes on: the revocation lands between
/// the handshake's check and the socket's registration, the window a
/// revocation used to miss.
#[derive(Clone)]
struct RevokedRightAfterTheHandshakeCheck {
    inner: wsgate::store::InMemoryRevocationStore,
    registry: Arc<std::sync::OnceLock<Registry>>,
    checks: Arc<AtomicUsize>,
}

impl wsgate::store::RevocationStore for RevokedRightAfterTheHandshakeCheck {
    type Error = std::convert::Infallible;

    async fn revoke(&self, revocation: Revocation) -> Result<(), Self::Error> {
        self.inner.revoke(revocation).await
    }

    async fn is_revoked(
        &self,
        principal: &Principal,
        session_id: Option<&str>,
    ) -> Result<bool, Self::Error> {
        let answer = self.inner.is_revoked(principal, session_id).await;
        if self.checks.fetch_add(1, Ordering::SeqCst) == 0 {
            let registry = self.registry.get().expect("set at start").clone();
            let token_id = principal.token_id().expect("a jti").to_owned();
            let closed = registry.revoke(Revocation::token(token_id)).await.unwrap();
            assert_eq!(closed, 0, "nothing is registered yet");
        }
        answer
    }
}

#[tokio::test]
async fn a_revocation_between_the_handshake_and_the_registration_closes_the_socket() {
    let keys = Keys::load();
    let store = RevokedRightAfterTheHandshakeCheck {
        inner: wsgate::store::InMemoryRevocationStore::new(),
        registry: Arc::default(),
        checks: Arc::default(),
    };
    let gate = Gate::builder(keys.verifier())
        .revocations(store.clone())
        .build()
        .unwrap();
    store.registry.set(gate.registry().clone()).unwrap();
    let (addr, registry) = serve_echo(gate).await;
    let token = alice_with_jti(&keys, "between");
    let mut client = crate::common::open_with_bearer(addr, "/ws", &token).await;
    let closed = timeout(Duration::from_secs(2), next_close(&mut client)).await;
    assert_eq!(
        closed.expect("the socket runs on a revoked token"),
        (4403, "token revoked".to_owned())
    );
    assert!(registry.is_empty());
    assert!(
        store.checks.load(Ordering::SeqCst) >= 2,
        "checked again once registered"
    );
}
