//! DPoP-bound tokens (RFC 9449) at the handshake, from outside: a real
//! server, real WebSocket clients, proofs signed by the client's own key.
//! A bound token opens a socket only with a fresh proof of its key, for
//! that URL, once; on every transport that carries tokens; in every mode.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::common::dpop::ClientKey;
use crate::common::{DPOP_CHALLENGE, Handshake, Keys, Outcome, connect, serve};
use axum::Router;
use axum::routing::get;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use wsgate::Transport;
use wsgate::audit::{self, AuditEvent, Auditor};
use wsgate::dpop::{DpopMode, DpopNonces, DpopVerifier};
use wsgate::{Gate, GateBuilder};

struct Server {
    addr: SocketAddr,
    keys: Keys,
    events: Arc<Mutex<Vec<AuditEvent>>>,
}

impl Server {
    async fn start(mode: DpopMode) -> Self {
        Self::start_with(mode, |gate| gate).await
    }

    /// With the gate's settings changed by `tune`.
    async fn start_with(mode: DpopMode, tune: impl FnOnce(GateBuilder) -> GateBuilder) -> Self {
        let keys = Keys::load();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let auditor =
            Auditor::new(move |event: &AuditEvent| seen.lock().unwrap().push(event.clone()));
        let gate = tune(Gate::builder(keys.verifier()).dpop(mode).audit(auditor));
        let gate = gate.build().unwrap();
        let handshake = gate
            .handshake()
            .transports([Transport::Bearer, Transport::Subprotocol, Transport::Ticket])
            .application_protocols(["chat.v1"])
            .unwrap()
            .build()
            .unwrap();
        let router = Router::new()
            .route("/ws", get(crate::common::welcome_then_echo))
            .route_layer(handshake)
            .route(
                "/ws/deferred",
                get(crate::common::welcome_then_echo_deferred),
            )
            .route("/tickets", gate.ticket_route())
            .with_state(gate);
        Self {
            addr: serve(router).await,
            keys,
            events,
        }
    }

    /// The URL a proof for this server's socket names.
    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// A token for alice, bound to `key` (or a bearer token).
    fn token(&self, key: Option<&ClientKey>) -> String {
        let mut claims = Keys::claims("alice");
        if let Some(key) = key {
            claims["cnf"] = json!({"jkt": key.jkt()});
        }
        self.keys.sign_with(Algorithm::HS256, &claims, |_| {})
    }

    async fn connect(&self, handshake: Handshake) -> Outcome {
        connect(self.addr, &handshake).await
    }
}

fn dpop(token: &str, proof: &str) -> Handshake {
    Handshake::to("/ws")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
}

fn subprotocol(entries: &[String]) -> Handshake {
    Handshake::to("/ws").header("sec-websocket-protocol", entries.join(", "))
}

/// The status, the body and the challenges of a refusal.
type Refusal = (u16, String, Vec<String>);

fn refused(outcome: Outcome) -> Refusal {
    match outcome {
        Outcome::Refused {
            status,
            body,
            challenges,
            ..
        } => (status, body, challenges),
        accepted => panic!("accepted: {accepted:?}"),
    }
}

fn proof_refused(description: &str) -> Vec<String> {
    vec![
        "Bearer realm=\"wsgate\"".to_owned(),
        format!(
            "DPoP realm=\"wsgate\", error=\"invalid_dpop_proof\", error_description=\"{description}\", algs=\"ES256 EdDSA\""
        ),
    ]
}

fn token_refused() -> Vec<String> {
    vec![
        crate::common::bearer_challenge(Some(("invalid_token", "invalid token"))),
        DPOP_CHALLENGE.to_owned(),
    ]
}

#[tokio::test]
async fn a_bound_token_opens_a_socket_with_a_fresh_proof_of_its_key_once() {
    let server = Server::start(DpopMode::Allowed).await;
    for key in [ClientKey::es256(), ClientKey::ed25519()] {
        let token = server.token(Some(&key));
        let proof = key.proof(&server.url(), Some(&token));
        match server.connect(dpop(&token, &proof)).await {
            Outcome::Accepted { welcome, .. } => assert_eq!(welcome["sub"], "alice"),
            refused => panic!("a good proof was refused: {refused:?}"),
        }
        let replayed = refused(server.connect(dpop(&token, &proof)).await);
        assert_eq!(
            replayed,
            (401, "dpop replay".to_owned(), proof_refused("dpop replay"))
        );
        // The audit: the binding and the key's (public) thumbprint on the
        // accepted handshake, the replay under its own reason; never the
        // proof or the token.
        let events = server.events.lock().unwrap().clone();
        let allowed = events
            .iter()
            .rev()
            .find(|event| event.outcome == audit::Outcome::Allow)
            .unwrap();
        assert_eq!(allowed.binding, Some("dpop"));
        assert_eq!(allowed.jkt.as_deref(), Some(key.jkt().as_str()));
        assert_eq!(allowed.transport, Some("bearer"));
        assert_eq!(events.last().unwrap().reason, Some("dpop replay"));
        let logged: String = events
            .iter()
            .map(|event| event.to_json().to_string())
            .collect();
        assert!(!logged.contains(&proof) && !logged.contains(&token));
    }
}

#[tokio::test]
async fn a_bound_token_without_its_proof_opens_nothing() {
    let server = Server::start(DpopMode::Allowed).await;
    let key = ClientKey::es256();
    let thief = ClientKey::es256();
    let token = server.token(Some(&key));
    let url = server.url();
    let proof_refused_401 = |description: &str| {
        (
            401,
            "invalid dpop proof".to_owned(),
            proof_refused(description),
        )
    };
    let cases: Vec<(&str, Handshake, Refusal)> = vec![
        (
            "no proof",
            Handshake::to("/ws").header("authorization", format!("DPoP {token}")),
            proof_refused_401("invalid dpop proof"),
        ),
        (
            "a proof of the thief's key",
            dpop(&token, &thief.proof(&url, Some(&token))),
            proof_refused_401("invalid dpop proof"),
        ),
        (
            "a proof for another path",
            dpop(&token, &key.proof(&format!("{url}/other"), Some(&token))),
            proof_refused_401("invalid dpop proof"),
        ),
        (
            "a proof for another scheme",
            dpop(
                &token,
                &key.proof(&url.replace("ws://", "wss://"), Some(&token)),
            ),
            proof_refused_401("invalid dpop proof"),
        ),
        (
            "a proof for a POST",
            dpop(
                &token,
                &key.proof_with(&url, Some(&token), |claims| claims["htm"] = json!("POST")),
            ),
            proof_refused_401("invalid dpop proof"),
        ),
        (
            "a proof for another token",
            dpop(&token, &key.proof(&url, Some("another.token.value"))),
            proof_refused_401("invalid dpop proof"),
        ),
        (
            "a proof two minutes old",
            dpop(
                &token,
                &key.proof_with(&url, Some(&token), |claims| {
                    claims["iat"] = json!(crate::common::now() - 120);
                }),
            ),
            proof_refused_401("invalid dpop proof"),
        ),
        (
            "two DPoP headers",
            dpop(&token, &key.proof(&url, Some(&token)))
                .header("dpop", key.proof(&url, Some(&token))),
            proof_refused_401("invalid dpop proof"),
        ),
        (
            "the bound token as a Bearer token",
            Handshake::to("/ws").bearer(&token),
            (401, "invalid token".to_owned(), token_refused()),
        ),
        (
            "the bound token as a Bearer token, with a good proof",
            Handshake::to("/ws")
                .bearer(&token)
                .header("dpop", key.proof(&url, Some(&token))),
            (401, "invalid token".to_owned(), token_refused()),
        ),
        (
            "a bearer token under the DPoP scheme",
            dpop(&server.token(None), &key.proof(&url, None)),
            (401, "invalid token".to_owned(), token_refused()),
        ),
        (
            "the bound token in the subprotocol without a proof entry",
            subprotocol(&["chat.v1".to_owned(), format!("wsgate.bearer.{token}")]),
            proof_refused_401("invalid dpop proof"),
        ),
    ];
    for (name, handshake, expected) in cases {
        assert_eq!(refused(server.connect(handshake).await), expected, "{name}");
    }
    // After all of that, the key's own proof still opens the socket.
    let proof = key.proof(&url, Some(&token));
    assert_eq!(server.connect(dpop(&token, &proof)).await.status(), 101);
}

#[tokio::test]
async fn a_browser_sends_its_proof_as_a_subprotocol_entry_never_echoed() {
    let server = Server::start(DpopMode::Allowed).await;
    let key = ClientKey::ed25519();
    let token = server.token(Some(&key));
    let proof = key.proof(&server.url(), Some(&token));
    let entries = [
        "chat.v1".to_owned(),
        format!("wsgate.bearer.{token}"),
        format!("wsgate.dpop.{proof}"),
    ];
    match server.connect(subprotocol(&entries)).await {
        Outcome::Accepted { welcome, protocol } => {
            assert_eq!(welcome["sub"], "alice");
            assert_eq!(
                protocol.as_deref(),
                Some("chat.v1"),
                "only the application protocol"
            );
        }
        refused => panic!("refused: {refused:?}"),
    }
    let replayed = refused(server.connect(subprotocol(&entries)).await);
    assert_eq!(replayed.0, 401);
    assert_eq!(replayed.1, "dpop replay");
}

#[tokio::test]
async fn required_takes_only_bound_tokens_and_off_takes_none() {
    let required = Server::start(DpopMode::Required).await;
    let key = ClientKey::es256();
    let bearer = required.token(None);
    let (status, body, challenges) =
        refused(required.connect(Handshake::to("/ws").bearer(&bearer)).await);
    assert_eq!((status, body.as_str()), (401, "invalid token"));
    assert_eq!(
        challenges,
        [
            "DPoP realm=\"wsgate\", error=\"invalid_token\", error_description=\"invalid token\", algs=\"ES256 EdDSA\""
        ],
        "only DPoP is advertised"
    );
    let bound = required.token(Some(&key));
    let proof = key.proof(&required.url(), Some(&bound));
    assert_eq!(required.connect(dpop(&bound, &proof)).await.status(), 101);

    let off = Server::start(DpopMode::Off).await;
    let bearer = off.token(None);
    assert_eq!(
        off.connect(Handshake::to("/ws").bearer(&bearer))
            .await
            .status(),
        101
    );
    let bound = off.token(Some(&key));
    let proof = key.proof(&off.url(), Some(&bound));
    let (status, _, challenges) = refused(off.connect(dpop(&bound, &proof)).await);
    assert_eq!(status, 401, "a bound token never passes as a bearer token");
    assert!(
        challenges
            .iter()
            .all(|challenge| !challenge.starts_with("DPoP")),
        "off advertises no DPoP: {challenges:?}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_scheme_and_host_are_the_url() {
    let key = ClientKey::es256();
    let forwarded = |token: &str| {
        dpop(token, &key.proof("wss://chat.example/ws", Some(token)))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "chat.example")
    };
    let behind = Server::start_with(DpopMode::Allowed, |gate| {
        gate.trusted_proxies([std::net::IpAddr::from([127, 0, 0, 1])])
    })
    .await;
    let token = behind.token(Some(&key));
    assert_eq!(behind.connect(forwarded(&token)).await.status(), 101);

    // From a peer that is no proxy of ours, the same headers name nothing.
    let direct = Server::start(DpopMode::Allowed).await;
    let token = direct.token(Some(&key));
    let (status, body, _) = refused(direct.connect(forwarded(&token)).await);
    assert_eq!((status, body.as_str()), (401, "invalid dpop proof"));
}

/// The token's `cnf` may carry members wsgate does not judge; they do not
/// make a bound token unusable.
#[tokio::test]
async fn other_members_of_cnf_are_left_alone() {
    let server = Server::start(DpopMode::Allowed).await;
    let key = ClientKey::es256();
    let mut claims: Value = Keys::claims("alice");
    claims["cnf"] = json!({"jkt": key.jkt(), "kid": "device-7"});
    let token = server.keys.sign_with(Algorithm::HS256, &claims, |_| {});
    let proof = key.proof(&server.url(), Some(&token));
    assert_eq!(server.connect(dpop(&token, &proof)).await.status(), 101);
}

/// A ticket bought with a bound token (and a proof for the `POST`) is
/// bound to the same key: its redemption needs a proof of that key, and a
/// redemption refused for its proof spends the ticket all the same. A
/// bound token shown as Bearer buys nothing.
#[tokio::test]
async fn a_ticket_bought_with_a_bound_token_is_bound_to_its_key() {
    let server = Server::start(DpopMode::Allowed).await;
    let key = ClientKey::es256();
    let token = server.token(Some(&key));
    let tickets = format!("http://{}/tickets", server.addr);
    let http = reqwest::Client::new();
    let buy = || async {
        let proof = key.proof_with(&tickets, Some(&token), |claims| {
            claims["htm"] = json!("POST")
        });
        let response = http
            .post(&tickets)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["ticket"].as_str().unwrap().to_owned()
    };
    let as_bearer = http
        .post(&tickets)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        as_bearer.status(),
        401,
        "a bound token as Bearer buys no ticket"
    );

    let redeem = |ticket: &str, proof: Option<String>| {
        let mut entries = vec!["chat.v1".to_owned()];
        entries.extend(proof.map(|proof| format!("wsgate.dpop.{proof}")));
        subprotocol(&entries).path(format!("/ws?ticket={ticket}"))
    };
    let ticket = buy().await;
    let proof = key.proof(&server.url(), None);
    match server.connect(redeem(&ticket, Some(proof))).await {
        Outcome::Accepted { welcome, protocol } => {
            assert_eq!(welcome["sub"], "alice");
            assert_eq!(protocol.as_deref(), Some("chat.v1"));
        }
        refused => panic!("a bound ticket with its proof was refused: {refused:?}"),
    }

    let ticket = buy().await;
    let (status, body, _) = refused(server.connect(redeem(&ticket, None)).await);
    assert_eq!((status, body.as_str()), (401, "invalid dpop proof"));
    let late = key.proof(&server.url(), None);
    let (status, body, _) = refused(server.connect(redeem(&ticket, Some(late))).await);
    assert_eq!(
        (status, body.as_str()),
        (401, "invalid ticket"),
        "spent by the refused redemption"
    );

    let ticket = buy().await;
    let thief = ClientKey::es256().proof(&server.url(), None);
    let (status, body, _) = refused(server.connect(redeem(&ticket, Some(thief))).await);
    assert_eq!((status, body.as_str()), (401, "invalid dpop proof"));
}

/// A live socket of a bound session takes an in-band refresh, or a
/// message carrying a token, only with a token bound to the same key; an
/// unbound session stays unbound.
#[tokio::test]
async fn a_bound_session_refreshes_only_to_a_token_of_its_key() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let server = Server::start_with(DpopMode::Allowed, |gate| gate.message_tokens(true)).await;
    let key = ClientKey::es256();
    let later = |key: Option<&ClientKey>| {
        let mut claims = Keys::claims("alice");
        claims["exp"] = json!(crate::common::now() + 600);
        if let Some(key) = key {
            claims["cnf"] = json!({"jkt": key.jkt()});
        }
        server.keys.sign_with(Algorithm::HS256, &claims, |_| {})
    };
    let open = || async {
        let token = server.token(Some(&key));
        let proof = key.proof(&server.url(), Some(&token));
        let headers = [("authorization", format!("DPoP {token}")), ("dpop", proof)];
        let headers: Vec<(&'static str, &str)> = headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        crate::common::open_with(server.addr, &headers).await
    };
    let refresh =
        |token: String| Message::text(json!({"type": "auth.refresh", "token": token}).to_string());

    let mut same_key = open().await;
    same_key.send(refresh(later(Some(&key)))).await.unwrap();
    let reply = same_key.next().await.unwrap().unwrap();
    assert!(
        reply.to_text().unwrap().contains("auth.refreshed"),
        "{reply:?}"
    );

    for (name, token) in [
        ("a bearer token", later(None)),
        ("a token of another key", later(Some(&ClientKey::es256()))),
    ] {
        let mut socket = open().await;
        socket.send(refresh(token)).await.unwrap();
        assert_eq!(
            crate::common::close_within(&mut socket, std::time::Duration::from_secs(2)).await,
            (4401, "invalid token".to_owned()),
            "{name}"
        );
    }

    // Per-message tokens: the same rule, message by message.
    let say = |token: String| {
        Message::text(json!({"type": "say", "text": "hi", "token": token}).to_string())
    };
    let mut socket = open().await;
    socket.send(say(later(Some(&key)))).await.unwrap();
    let echoed = socket.next().await.unwrap().unwrap();
    assert!(echoed.to_text().unwrap().contains("\"hi\""), "{echoed:?}");
    for (name, token) in [
        ("a bearer token", later(None)),
        ("a token of another key", later(Some(&ClientKey::es256()))),
    ] {
        let mut socket = open().await;
        socket.send(say(token)).await.unwrap();
        assert_eq!(
            crate::common::close_within(&mut socket, std::time::Duration::from_secs(2)).await,
            (4401, "invalid token".to_owned()),
            "a message with {name}"
        );
    }

    let mut unbound = crate::common::open_bearer(server.addr, &server.token(None)).await;
    unbound.send(refresh(later(Some(&key)))).await.unwrap();
    assert_eq!(
        crate::common::close_within(&mut unbound, std::time::Duration::from_secs(2)).await,
        (4401, "invalid token".to_owned()),
        "an unbound session stays unbound"
    );
}

/// A first-message route: `{"type":"auth","token","dpop"}`, the proof for
/// `GET` and the socket's URL.
#[tokio::test]
async fn a_first_message_carries_the_proof_of_a_bound_token() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let server = Server::start(DpopMode::Allowed).await;
    let key = ClientKey::ed25519();
    let token = server.token(Some(&key));
    let url = format!("ws://{}/ws/deferred", server.addr);
    let first = |auth: Value| {
        let url = url.clone();
        async move {
            let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            socket.send(Message::text(auth.to_string())).await.unwrap();
            match socket.next().await {
                Some(Ok(Message::Text(text))) => (101, text.to_string()),
                Some(Ok(Message::Close(Some(frame)))) => {
                    (u16::from(frame.code), frame.reason.to_string())
                }
                other => panic!("{other:?}"),
            }
        }
    };
    let proof = key.proof(&url, Some(&token));
    let (status, welcome) = first(json!({"type": "auth", "token": token, "dpop": proof})).await;
    assert_eq!(status, 101);
    assert!(welcome.contains("alice"), "{welcome}");
    for (name, auth) in [
        ("no proof", json!({"type": "auth", "token": token})),
        (
            "the same proof again",
            json!({"type": "auth", "token": token, "dpop": proof}),
        ),
        (
            "a proof for the handshake route",
            json!({"type": "auth", "token": token, "dpop": key.proof(&server.url(), Some(&token))}),
        ),
        (
            "a proof that is not a string",
            json!({"type": "auth", "token": token, "dpop": 7}),
        ),
    ] {
        assert_eq!(
            first(auth).await,
            (4401, "invalid token".to_owned()),
            "{name}"
        );
    }
}

/// Under `Router::nest`, the proof names the URL the client used, prefix
/// and all.
#[tokio::test]
async fn a_nested_route_is_named_by_its_whole_path() {
    let keys = Keys::load();
    let gate = Gate::builder(keys.verifier()).build().unwrap();
    let handshake = gate
        .handshake()
        .transports([Transport::Bearer])
        .build()
        .unwrap();
    let inner = Router::new()
        .route("/ws", get(crate::common::welcome_then_echo))
        .route_layer(handshake)
        .with_state(gate);
    let addr = serve(Router::new().nest("/v1", inner)).await;
    let key = ClientKey::es256();
    let mut claims = Keys::claims("alice");
    claims["cnf"] = json!({"jkt": key.jkt()});
    let token = keys.sign_with(Algorithm::HS256, &claims, |_| {});
    let whole = key.proof(&format!("ws://{addr}/v1/ws"), Some(&token));
    let handshake = dpop(&token, &whole).path("/v1/ws");
    assert_eq!(connect(addr, &handshake).await.status(), 101);
    let stripped = key.proof(&format!("ws://{addr}/ws"), Some(&token));
    let handshake = dpop(&token, &stripped).path("/v1/ws");
    assert_eq!(connect(addr, &handshake).await.status(), 401);
}

/// The answer to a handshake with `headers`: its status and headers,
/// whether accepted or refused.
async fn raw_handshake(
    addr: SocketAddr,
    headers: &[(&'static str, String)],
) -> (u16, http::HeaderMap) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_socket, response)) => (response.status().as_u16(), response.headers().clone()),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            (response.status().as_u16(), response.headers().clone())
        }
        Err(error) => panic!("{error}"),
    }
}

/// With server nonces on, a proof without the server's nonce is refused
/// with `use_dpop_nonce` and a nonce to use; the retry with it opens the
/// socket and hands out the nonce for next time; a nonce of another
/// secret, or one of an old period, is refused the same way.
#[tokio::test]
async fn with_server_nonces_a_proof_carries_a_nonce_handed_out_lately() {
    let secret = [9_u8; 32];
    let verifier = DpopVerifier::builder()
        .nonces(DpopNonces::new(&secret).unwrap())
        .build();
    let server = Server::start_with(DpopMode::Allowed, |gate| gate.dpop_verifier(verifier)).await;
    let key = ClientKey::es256();
    let token = server.token(Some(&key));
    let url = server.url();
    let attempt = |nonce: Option<&str>| {
        let proof = key.proof_with(&url, Some(&token), |claims| {
            if let Some(nonce) = nonce {
                claims["nonce"] = json!(nonce);
            }
        });
        vec![("authorization", format!("DPoP {token}")), ("dpop", proof)]
    };
    let use_nonce = "DPoP realm=\"wsgate\", error=\"use_dpop_nonce\", error_description=\"dpop nonce required\", algs=\"ES256 EdDSA\"".to_owned();
    let (status, headers) = raw_handshake(server.addr, &attempt(None)).await;
    assert_eq!(status, 401);
    let challenges: Vec<_> = headers
        .get_all("www-authenticate")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    assert!(challenges.contains(&use_nonce), "{challenges:?}");
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();

    let (status, headers) = raw_handshake(server.addr, &attempt(Some(&nonce))).await;
    assert_eq!(status, 101, "the retry with the nonce opens the socket");
    assert!(headers.contains_key("dpop-nonce"), "the next nonce");

    let other = DpopVerifier::builder()
        .nonces(DpopNonces::new(&[1_u8; 32]).unwrap())
        .build()
        .nonce()
        .unwrap();
    let old = DpopVerifier::builder()
        .nonces(DpopNonces::new(&secret).unwrap())
        .clock(wsgate::Clock::manual(
            std::time::SystemTime::now() - std::time::Duration::from_secs(700),
        ))
        .build()
        .nonce()
        .unwrap();
    for (what, nonce) in [("another secret's", other), ("an old period's", old)] {
        let (status, headers) = raw_handshake(server.addr, &attempt(Some(&nonce))).await;
        assert_eq!(status, 401, "{what} nonce");
        assert!(headers.contains_key("dpop-nonce"), "{what} nonce");
    }
    // A page learns the nonce over HTTP, where it can read headers: the
    // ticket route hands it out on its 401 and with each ticket.
    let tickets = format!("http://{}/tickets", server.addr);
    let buy = |nonce: Option<String>| {
        let proof = key.proof_with(&tickets, Some(&token), |claims| {
            claims["htm"] = json!("POST");
            if let Some(nonce) = nonce {
                claims["nonce"] = json!(nonce);
            }
        });
        reqwest::Client::new()
            .post(&tickets)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .send()
    };
    let refused = buy(None).await.unwrap();
    assert_eq!(refused.status(), 401);
    let nonce = refused.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let bought = buy(Some(nonce)).await.unwrap();
    assert_eq!(bought.status(), 200);
    assert!(bought.headers().contains_key("dpop-nonce"));

    let refusals: Vec<_> = server
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|event| event.reason)
        .collect();
    assert_eq!(refusals, ["dpop nonce required"; 4]);
}
