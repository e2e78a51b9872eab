//! A server wired from one `Gate`, with no extra call: revocations are
//! refused at the handshake, on first-message routes (by the same session
//! rule) and on HTTP routes of token holders; claims mappings reach the
//! role guard; an async policy that fails closes the socket, audited.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::common::{Handshake, Keys, Outcome, connect, now, serve};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::Message as ServerMessage;
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wsgate::audit::{self, AuditEvent, Auditor, EventKind};
use wsgate::claims::ClaimPaths;
use wsgate::jwt::{JwtVerifier, VerificationKey};
use wsgate::pipeline::{Access, Requirement, RolePolicy};
use wsgate::session::Inbound;
use wsgate::socket::{DeferredUpgrade, GatedUpgrade};
use wsgate::store::Revocation;
use wsgate::{Error, Gate, Principal, Transport};

type Client = crate::common::Client;

async fn welcome_then_echo(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, echo)
}

async fn first_message(State(gate): State<Gate>, upgrade: DeferredUpgrade) -> Response {
    upgrade.on_upgrade(&gate, echo)
}

async fn echo(mut socket: wsgate::socket::GatedSocket) {
    let principal = socket.principal();
    let welcome = json!({"sub": principal.subject(), "roles": principal.roles()});
    let _ = socket
        .send(ServerMessage::Text(welcome.to_string().into()))
        .await;
    while let Some(message) = socket.recv().await {
        if socket.send(message.into_message()).await.is_err() {
            break;
        }
    }
}

/// The routes a gate serves: sockets with the gate's own handshake, a
/// first-message route, and the ticket route of token holders.
fn routes(gate: Gate) -> Router {
    let handshake = gate
        .handshake()
        .application_protocols(["chat.v1"])
        .unwrap()
        .build()
        .unwrap();
    Router::new()
        .route("/ws", get(welcome_then_echo))
        .route_layer(handshake)
        .route("/ws/deferred", get(first_message))
        .route("/tickets", gate.ticket_route())
        .with_state(gate)
}

struct Served {
    addr: SocketAddr,
    keys: Keys,
    gate: Gate,
    events: Arc<Mutex<Vec<AuditEvent>>>,
}

impl Served {
    async fn start(build: impl FnOnce(wsgate::GateBuilder) -> Gate) -> Self {
        let keys = Keys::load();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let builder =
            Gate::builder(keys.verifier()).audit(Auditor::new(move |event: &AuditEvent| {
                seen.lock().unwrap().push(event.clone());
            }));
        let gate = build(builder);
        let addr = serve(routes(gate.clone())).await;
        Self {
            addr,
            keys,
            gate,
            events,
        }
    }

    fn token_with(&self, subject: &str, change: impl FnOnce(&mut Value)) -> String {
        let mut claims = Keys::claims(subject);
        change(&mut claims);
        self.keys.sign_with(Algorithm::HS256, &claims, |_| {})
    }

    async fn handshake(&self, token: &str) -> Outcome {
        connect(self.addr, &Handshake::to("/ws").bearer(token)).await
    }

    async fn first_message(&self, token: &str) -> (u16, String) {
        let url = format!("ws://{}/ws/deferred", self.addr);
        let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let auth = json!({"type": "auth", "token": token}).to_string();
        client.send(Message::text(auth)).await.unwrap();
        match client.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(Message::Text(_))) => (101, "welcome".to_owned()),
            other => panic!("unexpected answer to a first message: {other:?}"),
        }
    }

    fn events(&self, kind: EventKind) -> Vec<AuditEvent> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|event| event.event == kind)
            .cloned()
            .collect()
    }
}

fn status(outcome: &Outcome) -> u16 {
    outcome.status()
}

#[tokio::test]
async fn the_in_memory_socket_lease_store_keeps_the_limit_per_subject() {
    crate::common::socket_lease_cases(wsgate::store::InMemorySocketLeaseStore::new()).await;
}

#[tokio::test]
async fn the_in_memory_ticket_store_keeps_the_limit_per_subject() {
    crate::common::ticket_limit_cases(wsgate::store::InMemoryTicketStore::new()).await;
}

/// The ticket route of a gate with a limit of 2 tickets a subject: the
/// third gets 429 `too_many_tickets` with `Retry-After`; redeeming one
/// frees its place.
#[tokio::test]
async fn the_ticket_route_refuses_a_subject_past_its_limit_with_429() {
    let served =
        Served::start(|builder| builder.max_tickets_per_subject(2).unwrap().build().unwrap()).await;
    let token = served.token_with("alice", |_| {});
    let http = reqwest::Client::new();
    let url = format!("http://{}/tickets", served.addr);
    let issue = || http.post(&url).bearer_auth(&token).send();
    let first: Value = issue().await.unwrap().json().await.unwrap();
    assert_eq!(issue().await.unwrap().status(), 200);
    let refused = issue().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "30");
    assert_eq!(
        refused.json::<Value>().await.unwrap(),
        json!({"error": "too_many_tickets"})
    );
    let ticket = first["ticket"].as_str().unwrap();
    let opened = connect(served.addr, &Handshake::to(format!("/ws?ticket={ticket}"))).await;
    assert_eq!(status(&opened), 101);
    assert_eq!(
        issue().await.unwrap().status(),
        200,
        "a redeemed ticket's place"
    );
}

/// A first-message socket of `token`, past its welcome.
async fn open_first_message(addr: SocketAddr, token: &str) -> Client {
    let url = format!("ws://{addr}/ws/deferred");
    let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let auth = json!({"type": "auth", "token": token}).to_string();
    client.send(Message::text(auth)).await.unwrap();
    match client.next().await {
        Some(Ok(Message::Text(_))) => client,
        other => panic!("a first-message login was not welcomed: {other:?}"),
    }
}

/// Closes `client` as a polite client does, and waits for the server's
/// answer: the socket is gone on both ends.
async fn close_politely(mut client: Client) {
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = client.next().await {}
}

/// A gate with a limit of 3 sockets a subject: every route and transport
/// counts (Bearer, ticket, first message); one more is refused with 429
/// `too many connections` and `Retry-After` at a handshake, 4429 on a
/// first-message route, audited; another subject has its own count; a
/// ticket shown at a refused handshake is spent; a socket that closes
/// frees its place at once.
#[tokio::test]
async fn a_subject_holds_at_most_its_limit_of_sockets_on_every_route() {
    let served =
        Served::start(|builder| builder.max_sockets_per_subject(3).unwrap().build().unwrap()).await;
    let token = served.token_with("alice", |_| {});
    let alice = Principal::new("alice", wsgate::AuthMethod::Token).with_roles(["user"]);
    let ticket = |gate: Gate| {
        let alice = alice.clone();
        async move {
            let issued = gate.issue_ticket(&alice).await.unwrap();
            crate::common::remember_secret(issued.ticket().expose())
        }
    };
    let by_ticket = ticket(served.gate.clone()).await;
    let mut held = vec![
        crate::common::open_bearer(served.addr, &token).await,
        open_first_message(served.addr, &token).await,
    ];
    let ticket_path = format!("/ws?ticket={by_ticket}");
    let (mut by_ticket_socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}{ticket_path}", served.addr))
            .await
            .unwrap();
    let _welcome = by_ticket_socket.next().await.unwrap().unwrap();
    held.push(by_ticket_socket);

    assert_eq!(
        served.handshake(&token).await.refusal("a fourth socket"),
        (429, Some("5".to_owned()), "too many connections".to_owned())
    );
    assert_eq!(
        served.first_message(&token).await,
        (4429, "too many connections".to_owned()),
        "a first-message route counts too"
    );
    let bob = served.token_with("bob", |_| {});
    assert_eq!(
        status(&served.handshake(&bob).await),
        101,
        "bob's own count"
    );

    let spent = ticket(served.gate.clone()).await;
    let refused = connect(served.addr, &Handshake::to(format!("/ws?ticket={spent}"))).await;
    assert_eq!(status(&refused), 429);

    // A socket that closes frees its place before its close frame goes
    // out: the next handshake, made at once, is admitted.
    close_politely(held.pop().unwrap()).await;
    let again = connect(served.addr, &Handshake::to(format!("/ws?ticket={spent}"))).await;
    assert_eq!(
        status(&again),
        401,
        "the ticket shown at the refused handshake was spent"
    );
    let reopened = crate::common::open_bearer(served.addr, &token).await;
    held.push(reopened);

    let refusals: Vec<AuditEvent> = served
        .events(EventKind::Handshake)
        .into_iter()
        .filter(|event| event.reason == Some("too many connections"))
        .collect();
    assert_eq!(refusals.len(), 3, "each refusal audited: {refusals:?}");
    assert!(refusals.iter().all(
        |event| event.outcome == audit::Outcome::Deny && event.sub.as_deref() == Some("alice")
    ));
    assert!(refusals.iter().any(
        |event| event.transport == Some(Transport::FirstMessage.as_str())
            && event.code == Some(4429)
    ));
}

/// With `AtSocketLimit::CloseOldest`, one socket more closes the subject's
/// oldest with 4403 `too many connections` (audited) and is admitted.
#[tokio::test]
async fn at_the_limit_the_oldest_socket_can_make_room() {
    let served = Served::start(|builder| {
        builder
            .max_sockets_per_subject(2)
            .unwrap()
            .at_socket_limit(wsgate::store::AtSocketLimit::CloseOldest)
            .build()
            .unwrap()
    })
    .await;
    let token = served.token_with("alice", |_| {});
    let mut oldest = crate::common::open_bearer(served.addr, &token).await;
    let mut second = crate::common::open_bearer(served.addr, &token).await;
    let mut newest = open_first_message(served.addr, &token).await;
    assert_eq!(
        crate::common::close_within(&mut oldest, std::time::Duration::from_secs(2)).await,
        (4403, "too many connections".to_owned())
    );
    for client in [&mut second, &mut newest] {
        client.send(Message::text("still here")).await.unwrap();
        let echo = client.next().await.unwrap().unwrap();
        assert_eq!(echo, Message::text("still here"));
    }
    let closes = served.events(EventKind::Close);
    assert!(
        closes
            .iter()
            .any(|event| event.reason == Some("too many connections") && event.code == Some(4403)),
        "the eviction is audited: {closes:?}"
    );
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_the_handshake_with_no_extra_call() {
    let served = Served::start(|builder| builder.build().unwrap()).await;
    let token = served.token_with("alice", |claims| claims["jti"] = json!("jti-revoked"));
    assert_eq!(status(&served.handshake(&token).await), 101);

    served
        .gate
        .registry()
        .revoke(Revocation::token("jti-revoked"))
        .await
        .unwrap();
    match served.handshake(&token).await {
        Outcome::Refused { status, body, .. } => {
            assert_eq!((status, body.as_str()), (401, "token revoked"));
        }
        accepted => panic!("a revoked token opened a socket: {accepted:?}"),
    }
    // The HTTP routes of token holders refuse it too.
    let response = reqwest::Client::new()
        .post(format!("http://{}/tickets", served.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // And first-message routes.
    assert_eq!(
        served.first_message(&token).await,
        (4403, "token revoked".to_owned())
    );

    // Every token of a subject issued up to a moment; later ones work.
    let bob_old = served.token_with("bob", |claims| claims["iat"] = json!(now() - 60));
    served
        .gate
        .registry()
        .revoke(Revocation::subject("bob", SystemTime::now()))
        .await
        .unwrap();
    assert_eq!(status(&served.handshake(&bob_old).await), 401);
    let bob_new = served.token_with("bob", |claims| {
        claims["iat"] = json!(now() + 2);
        claims["jti"] = json!("jti-bob-new");
    });
    assert_eq!(status(&served.handshake(&bob_new).await), 101);
}

#[tokio::test]
async fn a_session_revocation_refuses_a_first_message_login() {
    let served = Served::start(|builder| builder.build().unwrap()).await;
    let in_session = |jti: &'static str| {
        served.token_with("carol", move |claims| {
            claims["sid"] = json!("session-7");
            claims["jti"] = json!(jti);
        })
    };
    assert_eq!(
        served.first_message(&in_session("before")).await,
        (101, "welcome".to_owned())
    );

    served
        .gate
        .registry()
        .revoke(Revocation::session("session-7"))
        .await
        .unwrap();
    // A new token of the same login session: refused on the first-message
    // route and at the handshake alike, by the one session rule.
    let fresh = in_session("after");
    assert_eq!(
        served.first_message(&fresh).await,
        (4403, "token revoked".to_owned())
    );
    assert_eq!(status(&served.handshake(&fresh).await), 401);
    // Another session of the same subject is untouched.
    let other = served.token_with("carol", |claims| claims["sid"] = json!("session-8"));
    assert_eq!(
        served.first_message(&other).await,
        (101, "welcome".to_owned())
    );

    let refused = served
        .events(EventKind::Handshake)
        .into_iter()
        .filter(|event| event.outcome == audit::Outcome::Deny)
        .map(|event| (event.transport, event.reason, event.code))
        .collect::<Vec<_>>();
    assert_eq!(
        refused,
        [
            (Some("first-message"), Some("token revoked"), Some(4403)),
            (Some("bearer"), Some("token revoked"), None),
        ]
    );
}

#[tokio::test]
async fn a_claims_mapping_reaches_the_role_guard() {
    // A Keycloak-style token: the role `admin` only in `realm_access`.
    let keys = Keys::load();
    let verifier = JwtVerifier::builder()
        .key(
            VerificationKey::hmac(&keys.hmac_secret, wsgate::jwt::Algorithm::HS256)
                .unwrap()
                .with_kid("hs"),
        )
        .claims_mapping(ClaimPaths::keycloak(Some("chat")))
        .build()
        .unwrap();
    let gate = Gate::builder(verifier)
        .policy(
            RolePolicy::by_type()
                .prefix("admin.", Requirement::any_role(["admin"]))
                .otherwise(Requirement::any_role(["user"])),
        )
        .build()
        .unwrap();
    let addr = serve(routes(gate)).await;
    let token = |roles: Value| {
        let mut claims = json!({"sub": "dana", "exp": now() + 300, "tenant": 42});
        claims["realm_access"] = json!({"roles": ["user"]});
        claims["resource_access"] = json!({"chat": {"roles": roles}});
        keys.sign_with(Algorithm::HS256, &claims, |_| {})
    };

    for (roles, expect) in [
        (json!(["admin"]), json!({"type": "admin.stats"})),
        (
            json!([]),
            json!({"type": "error", "code": "forbidden", "ref": "admin.stats"}),
        ),
    ] {
        let mut client = crate::common::open_with_bearer(addr, "/ws", &token(roles)).await;
        let welcome = next_json(&mut client).await;
        assert_eq!(welcome["sub"], "dana");
        send_json(&mut client, json!({"type": "admin.stats"})).await;
        assert_eq!(next_json(&mut client).await, expect);
    }
}

#[tokio::test]
async fn an_async_policy_decides_and_its_failure_closes_with_1011() {
    let served = Served::start(|builder| {
        builder
            .async_policy(|principal: Arc<Principal>, message: &Inbound| {
                let room = message.json_str("room").unwrap_or("").to_owned();
                let tenant = principal.claim::<u64>("tenant");
                async move {
                    match room.as_str() {
                        "lobby" => Ok(Access::Allow),
                        "tenant" if tenant == Some(42) => Ok(Access::Allow),
                        "down" => Err(Error::backend("permissions database unreachable")),
                        _ => Ok(Access::deny(room)),
                    }
                }
            })
            .build()
            .unwrap()
    })
    .await;
    let token = served.token_with("erin", |claims| claims["tenant"] = json!(42));
    let mut client = crate::common::open_with_bearer(served.addr, "/ws", &token).await;
    next_json(&mut client).await;
    for (room, expect) in [
        ("lobby", json!({"room": "lobby"})),
        ("tenant", json!({"room": "tenant"})),
        (
            "vault",
            json!({"type": "error", "code": "forbidden", "ref": "vault"}),
        ),
    ] {
        send_json(&mut client, json!({"room": room})).await;
        assert_eq!(next_json(&mut client).await, expect, "{room}");
    }
    send_json(&mut client, json!({"room": "down"})).await;
    assert_eq!(
        next_close(&mut client).await,
        (1011, "backend unavailable".to_owned())
    );
    let denied = served
        .events(EventKind::Message)
        .into_iter()
        .map(|event| event.reason)
        .collect::<Vec<_>>();
    assert_eq!(denied, [Some("forbidden"), Some("backend unavailable")]);
    let closes = served.events(EventKind::Close);
    assert_eq!(closes.len(), 1);
    assert_eq!(closes[0].code, Some(1011));
}

#[tokio::test]
async fn one_gate_serves_every_stage_with_the_same_parts() {
    let served = Served::start(|builder| builder.build().unwrap()).await;
    // A ticket the gate issued redeems at the gate's handshake, once.
    let principal = Principal::new("frank", wsgate::AuthMethod::Token).with_roles(["user"]);
    let ticket = served.gate.issue_ticket(&principal).await.unwrap();
    let path = format!("/ws?ticket={}", ticket.ticket().expose());
    assert_eq!(
        status(&connect(served.addr, &Handshake::to(&path)).await),
        101
    );
    assert_eq!(
        status(&connect(served.addr, &Handshake::to(&path)).await),
        401
    );

    // A revocation through the registry closes the live socket with 4403.
    let token = served.token_with("grace", |_| {});
    let mut client = crate::common::open_with_bearer(served.addr, "/ws", &token).await;
    next_json(&mut client).await;
    let closed = served
        .gate
        .registry()
        .revoke(Revocation::subject("grace", SystemTime::now()))
        .await
        .unwrap();
    assert_eq!(closed, 1);
    assert_eq!(
        next_close(&mut client).await,
        (4403, "token revoked".to_owned())
    );
    // The one auditor saw both stages.
    let transports = served
        .events(EventKind::Handshake)
        .into_iter()
        .filter_map(|event| event.transport)
        .collect::<Vec<_>>();
    assert!(transports.contains(&Transport::Ticket.as_str()));
    assert!(transports.contains(&Transport::Bearer.as_str()));
    assert_eq!(served.events(EventKind::Revoke).len(), 1);
}

async fn send_json(client: &mut Client, value: Value) {
    client.send(Message::text(value.to_string())).await.unwrap();
}

async fn next_json(client: &mut Client) -> Value {
    match client.next().await {
        Some(Ok(Message::Text(text))) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text frame: {other:?}"),
    }
}

async fn next_close(client: &mut Client) -> (u16, String) {
    close_of(client.next().await)
}

/// The code and reason of a close frame; anything else fails the test.
fn close_of(
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> (u16, String) {
    match frame {
        Some(Ok(Message::Close(Some(frame)))) => (u16::from(frame.code), frame.reason.to_string()),
        other => panic!("expected a close frame: {other:?}"),
    }
}

/// A gate's `rejection_response` answers every refusal of every route it
/// wires: its socket routes' handshake layers, its first-message routes'
/// upgrade refusals and its bearer layer (the ticket route); the status,
/// the challenge, `Retry-After` and the audit stay wsgate's.
#[tokio::test]
async fn a_gates_rejection_response_answers_on_every_route() {
    use crate::common::json_refusal;

    let served = Served::start(|builder| {
        builder
            .rejection_response(json_refusal)
            .limits(
                wsgate::socket::Limits::default()
                    .max_unauthenticated(1, 1)
                    .unwrap(),
            )
            .build()
            .unwrap()
    })
    .await;

    // A socket route's handshake layer.
    let (status, _, body) = served
        .handshake("not-a-token")
        .await
        .refusal("a forged token");
    assert_eq!(status, 401);
    assert_eq!(body, r#"{"error":"invalid token"}"#);

    // The bearer layer of the ticket route, with its challenge.
    let refused = reqwest::Client::new()
        .post(format!("http://{}/tickets", served.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(
        refused.headers()["www-authenticate"],
        "Bearer realm=\"wsgate\""
    );
    assert_eq!(refused.headers()["content-type"], "application/json");
    assert_eq!(
        refused.json::<Value>().await.unwrap(),
        json!({"error": "missing credentials"})
    );

    // A first-message route's upgrade, refused while another socket of the
    // address waits for its first message.
    let url = format!("ws://{}/ws/deferred", served.addr);
    let (_waiting, _) = tokio_tungstenite::connect_async(url.clone()).await.unwrap();
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) =
        tokio_tungstenite::connect_async(url).await
    else {
        panic!("a second pending first-message socket of one address was accepted");
    };
    let (status, retry_after, body) = crate::common::refusal(&response).refusal("the second");
    assert_eq!((status, retry_after.as_deref()), (429, Some("1")));
    assert_eq!(body, r#"{"error":"too many attempts"}"#);

    let refusals = served.events(EventKind::Handshake);
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .all(|event| event.outcome == audit::Outcome::Deny)
    );
}

/// A part wired by hand beside a gate, from the gate's wiring, agrees with
/// it: a revocation through the gate's registry is refused by the
/// hand-wired layer; a refusal there is recorded by the gate's audit and
/// answered the gate's way; the client address behind a trusted proxy is
/// the one the gate's stages take.
#[tokio::test]
async fn parts_wired_by_hand_from_a_gates_wiring_agree_with_it() {
    use axum::response::IntoResponse;
    use wsgate::authenticate::BearerAuthenticator;
    use wsgate::handshake::{HandshakeLayer, HandshakeRejection};

    let proxy: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let served = Served::start(|builder| {
        builder
            .trusted_proxies([proxy])
            .rejection_response(|rejection: HandshakeRejection| {
                (
                    rejection.status(),
                    rejection,
                    "refused by the gate's answer",
                )
                    .into_response()
            })
            .build()
            .unwrap()
    })
    .await;
    let by_hand = HandshakeLayer::builder(BearerAuthenticator::new(served.keys.verifier()))
        .transports([Transport::Bearer])
        .wiring(served.gate.wiring())
        .build()
        .unwrap();
    let addr = serve(
        Router::new()
            .route("/by-hand", get(crate::common::welcome))
            .route_layer(by_hand),
    )
    .await;
    let token = served.token_with("alice", |claims| claims["jti"] = json!("jti-by-hand"));
    let open = |token: String| async move {
        connect(addr, &Handshake::to("/by-hand").bearer(&token)).await
    };
    assert_eq!(status(&open(token.clone()).await), 101);

    served
        .gate
        .registry()
        .revoke(Revocation::token("jti-by-hand"))
        .await
        .unwrap();
    let (status, _, body) = open(token).await.refusal("a revoked token");
    assert_eq!(
        (status, body.as_str()),
        (401, "refused by the gate's answer")
    );
    let refusals: Vec<_> = served
        .events(EventKind::Handshake)
        .into_iter()
        .filter(|event| event.reason == Some("token revoked"))
        .collect();
    assert_eq!(refusals.len(), 1, "the gate's audit records the refusal");

    let mut headers = http::HeaderMap::new();
    headers.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
    let behind_proxy = served
        .gate
        .client_address("127.0.0.1:40000".parse().unwrap(), &headers);
    assert_eq!(behind_proxy.to_string(), "203.0.113.9");
    let elsewhere = served
        .gate
        .client_address("192.0.2.1:40000".parse().unwrap(), &headers);
    assert_eq!(
        elsewhere.to_string(),
        "192.0.2.1",
        "headers of an untrusted peer are ignored"
    );
}
