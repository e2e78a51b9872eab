//! Shared harness of the integration tests: a real axum server behind
//! wsgate, real `tokio-tungstenite` clients, token minting, and the table of
//! refusal cases.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod idp;
pub mod limiter_cases;
pub mod raw;
pub mod redis;
pub mod refresh;

pub use wsgate_testkit::clients::*;
pub use wsgate_testkit::{dpop, now, pki, postgres, servers};

use axum::Router;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use futures_util::StreamExt;
use http::HeaderMap;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsgate::authenticate::{Authenticator, BasicAuthenticator, BearerAuthenticator};
use wsgate::handshake::{Authenticated, HandshakeLayer};
use wsgate::jwt::{JwtVerifier, VerificationKey};
use wsgate::password::{Argon2id, PasswordHasher, PasswordVerifier};
use wsgate::store::{InMemoryCredentialStore, InMemoryTicketStore, StoredUser};
use wsgate::ticket::Tickets;
use wsgate::{AuthMethod, Clock, Principal, Transport};

pub const ISSUER: &str = "wsgate-tests-issuer";
pub const AUDIENCE: &str = "wsgate-tests-audience";
pub const TOKEN_TYPE: &str = "at+jwt";
pub const ALLOWED_ORIGIN: &str = "http://app.test:8080";
pub const ALICE_PASSWORD: &str = "alice-correct-horse-battery";
pub const BOB_PASSWORD: &str = "bob-disabled-but-correct";
pub const LEEWAY_SECS: u64 = 5;

pub use wsgate_testkit::{remember_secret, remembered_secrets};

/// How an application that answers JSON everywhere answers a refused
/// handshake: the body is its own, the status and the challenges stay
/// wsgate's.
pub fn json_refusal(rejection: wsgate::handshake::HandshakeRejection) -> Response {
    use axum::response::IntoResponse;
    let body = json!({ "error": rejection.reason().as_str() }).to_string();
    let json = [(http::header::CONTENT_TYPE, "application/json")];
    (rejection.status(), rejection, json, body).into_response()
}

/// A password hasher that counts its calls.
#[derive(Debug, Default)]
pub struct CountingHasher {
    pub inner: Argon2id,
    pub verifies: Arc<AtomicUsize>,
}

impl PasswordHasher for CountingHasher {
    fn hash(&self, password: &[u8]) -> Result<String, wsgate::Error> {
        self.inner.hash(password)
    }

    fn verify(&self, password: &[u8], hash: &str) -> Result<bool, wsgate::Error> {
        self.verifies.fetch_add(1, Ordering::SeqCst);
        self.inner.verify(password, hash)
    }
}

/// The keys the test server trusts and the tests sign with.
pub struct Keys {
    pub hmac_secret: Vec<u8>,
    pub rsa_private: Vec<u8>,
    pub rsa_public: Vec<u8>,
    pub ec_private: Vec<u8>,
    pub ec_public: Vec<u8>,
    pub ed_private: Vec<u8>,
    pub ed_public: Vec<u8>,
}

impl Keys {
    pub fn load() -> Self {
        let mut hmac_secret = [0u8; 32];
        getrandom::fill(&mut hmac_secret).unwrap();
        remember_secret(URL_SAFE_NO_PAD.encode(hmac_secret));
        let keys = Self {
            hmac_secret: hmac_secret.to_vec(),
            rsa_private: wsgate_testkit::fixtures::jwt("rs256-private.pem").to_vec(),
            rsa_public: wsgate_testkit::fixtures::jwt("rs256-public.pem").to_vec(),
            ec_private: wsgate_testkit::fixtures::jwt("es256-private.pem").to_vec(),
            ec_public: wsgate_testkit::fixtures::jwt("es256-public.pem").to_vec(),
            ed_private: wsgate_testkit::fixtures::jwt("eddsa-private.pem").to_vec(),
            ed_public: wsgate_testkit::fixtures::jwt("eddsa-public.pem").to_vec(),
        };
        // The body lines of the private keys count as secrets too.
        for pem in [&keys.rsa_private, &keys.ec_private, &keys.ed_private] {
            for line in String::from_utf8_lossy(pem)
                .lines()
                .filter(|line| !line.starts_with("-----"))
            {
                remember_secret(line);
            }
        }
        keys
    }

    pub fn encoding_key(&self, algorithm: Algorithm) -> EncodingKey {
        match algorithm {
            Algorithm::HS256 => EncodingKey::from_secret(&self.hmac_secret).unwrap(),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&self.rsa_private).unwrap(),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&self.ec_private).unwrap(),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&self.ed_private).unwrap(),
            other => panic!("no test key for {other:?}"),
        }
    }

    fn kid(algorithm: Algorithm) -> &'static str {
        match algorithm {
            Algorithm::HS256 => "hs",
            Algorithm::RS256 => "rs",
            Algorithm::ES256 => "es",
            Algorithm::EdDSA => "ed",
            other => panic!("no test key for {other:?}"),
        }
    }

    pub fn verifier(&self) -> JwtVerifier {
        JwtVerifier::builder()
            .key(
                VerificationKey::hmac(&self.hmac_secret, Algorithm::HS256)
                    .unwrap()
                    .with_kid("hs"),
            )
            .key(
                VerificationKey::from_public_pem(&self.rsa_public, Algorithm::RS256)
                    .unwrap()
                    .with_kid("rs"),
            )
            .key(
                VerificationKey::from_public_pem(&self.ec_public, Algorithm::ES256)
                    .unwrap()
                    .with_kid("es"),
            )
            .key(
                VerificationKey::from_public_pem(&self.ed_public, Algorithm::EdDSA)
                    .unwrap()
                    .with_kid("ed"),
            )
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .token_type(TOKEN_TYPE)
            .leeway(Duration::from_secs(LEEWAY_SECS))
            .unwrap()
            .build()
            .unwrap()
    }

    /// Good claims for `subject`, valid for five minutes.
    pub fn claims(subject: &str) -> Value {
        json!({
            "sub": subject, "iss": ISSUER, "aud": AUDIENCE,
            "iat": now(), "exp": now() + 300, "jti": format!("jti-{subject}"), "roles": ["user"],
        })
    }

    /// Signs `claims` with the key for `algorithm`, under its kid and the
    /// expected `typ`; `adjust` may change the header first.
    pub fn sign_with(
        &self,
        algorithm: Algorithm,
        claims: &Value,
        adjust: impl FnOnce(&mut Header),
    ) -> String {
        let mut header = Header::new(algorithm);
        header.kid = Some(Self::kid(algorithm).to_owned());
        header.typ = Some(TOKEN_TYPE.to_owned());
        adjust(&mut header);
        remember_secret(
            jsonwebtoken::encode(&header, claims, &self.encoding_key(algorithm)).unwrap(),
        )
    }

    pub fn token(&self, subject: &str) -> String {
        self.sign_with(Algorithm::HS256, &Self::claims(subject), |_| {})
    }
}

/// A token with an arbitrary header JSON, signed with HMAC over `secret`:
/// for `alg` values jsonwebtoken would never write, and key confusion.
pub fn forge(header: &Value, claims: &Value, hmac_secret: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, hmac_secret);
    let signature = hmac::sign(&key, signing_input.as_bytes());
    remember_secret(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

/// An unsigned token (`alg` as given, empty signature).
pub fn unsigned(alg: &str, claims: &Value) -> String {
    remember_secret(format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": TOKEN_TYPE}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    ))
}

pub fn basic(username: &str, password: &str) -> String {
    remember_secret(password);
    format!(
        "Basic {}",
        STANDARD.encode(format!("{username}:{password}"))
    )
}

pub struct Server {
    pub addr: SocketAddr,
    pub keys: Keys,
    pub tickets: Tickets,
    pub ticket_store: InMemoryTicketStore,
    pub password_verifies: Arc<AtomicUsize>,
}

impl Server {
    /// The gated test server: every transport, Basic against an in-memory
    /// store (alice; bob disabled), tickets, an Origin allowlist, and the
    /// application protocol `chat.v1`.
    pub async fn start() -> Self {
        Self::answering(wsgate::handshake::DefaultRejectionResponse).await
    }

    /// The same server, answering refusals with `respond`.
    pub async fn answering(respond: impl wsgate::handshake::RejectionResponse) -> Self {
        let keys = Keys::load();
        remember_secret(ALICE_PASSWORD);
        remember_secret(BOB_PASSWORD);
        let hasher = CountingHasher::default();
        let password_verifies = hasher.verifies.clone();
        let passwords = PasswordVerifier::with_hasher(hasher).unwrap();
        let users = InMemoryCredentialStore::new();
        let alice_hash = passwords.hash(&ALICE_PASSWORD.into()).await.unwrap();
        users.insert(
            "alice",
            StoredUser::new("alice", alice_hash).with_roles(["user"]),
        );
        let bob_hash = passwords.hash(&BOB_PASSWORD.into()).await.unwrap();
        users.insert(
            "bob",
            StoredUser::new("bob", bob_hash)
                .with_roles(["user"])
                .disabled(true),
        );

        let ticket_store = InMemoryTicketStore::new();
        let tickets = Tickets::new(ticket_store.clone());
        let authenticator = BearerAuthenticator::new(keys.verifier())
            .or(BasicAuthenticator::new(users, passwords))
            .or(tickets.clone());
        let gate = HandshakeLayer::builder(authenticator)
            .transports([
                Transport::Bearer,
                Transport::Basic,
                Transport::Subprotocol,
                Transport::Ticket,
                Transport::Cookie,
            ])
            .allowed_origins([ALLOWED_ORIGIN, "http://127.0.0.1:3000"])
            .unwrap()
            .application_protocols(["chat.v1"])
            .unwrap()
            .wiring(&wsgate::wiring::Wiring::default().rejection_response(respond))
            .build()
            .unwrap();
        let addr = serve(Router::new().route("/ws", get(welcome)).route_layer(gate)).await;
        Self {
            addr,
            keys,
            tickets,
            ticket_store,
            password_verifies,
        }
    }

    pub async fn ticket(&self, subject: &str) -> String {
        issue_ticket(&self.tickets, subject).await
    }

    pub async fn expired_ticket(&self, subject: &str) -> String {
        issue_expired_ticket(&self.ticket_store, subject).await
    }
}

/// A ticket for `subject` (role `user`).
pub async fn issue_ticket(tickets: &Tickets, subject: &str) -> String {
    let principal = Principal::new(subject, AuthMethod::Token).with_roles(["user"]);
    let issued = tickets.issue(&principal).await.unwrap();
    remember_secret(issued.ticket().expose())
}

/// The limit of unredeemed tickets per subject, against `store` (in
/// memory, Redis): 3 a subject, a second's lifetime. A subject at its
/// limit is refused with `TooManyTickets` (and told to come back within a
/// lifetime), another subject is not; a redeemed ticket and an expired one
/// free their places at once; 20 issued at once for one subject store
/// exactly 3.
pub async fn ticket_limit_cases<S: wsgate::store::TicketStore>(store: S) {
    let tickets = Tickets::new(store)
        .lifetime(Duration::from_secs(1))
        .unwrap()
        .max_per_subject(Some(3));
    let alice = Principal::new("alice", AuthMethod::Token).with_roles(["user"]);
    let bob = Principal::new("bob", AuthMethod::Token).with_roles(["user"]);
    let too_many = |error: wsgate::Error| match error.kind() {
        wsgate::ErrorKind::TooManyTickets { retry_after } => *retry_after == Duration::from_secs(1),
        _ => false,
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tickets.issue(&alice).await.unwrap());
    }
    assert!(
        too_many(tickets.issue(&alice).await.unwrap_err()),
        "a fourth"
    );
    tickets
        .issue(&bob)
        .await
        .expect("another subject's own limit");
    let redeemed = held.pop().unwrap();
    tickets.redeem(redeemed.ticket().expose()).await.unwrap();
    held.push(
        tickets
            .issue(&alice)
            .await
            .expect("a redeemed ticket frees its place"),
    );
    assert!(too_many(tickets.issue(&alice).await.unwrap_err()));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let at_once = futures_util::future::join_all((0..20).map(|_| tickets.issue(&alice))).await;
    let issued = at_once.iter().filter(|issued| issued.is_ok()).count();
    assert_eq!(
        issued, 3,
        "expired tickets free their places, and no more than the limit at once"
    );
}

/// What every socket lease store must do, against `store` (in memory,
/// Redis): a limit of 2 a subject refuses a third (and takes nothing for
/// it), counts subjects apart, frees a released place at once, answers a
/// repeated acquisition of a lease it holds as taken, and with
/// `CloseOldest` evicts the oldest lease (the smallest id), which the
/// next renewal reports to its holder; 20 acquisitions at once take
/// exactly the 2 places.
pub async fn socket_lease_cases<S: wsgate::store::SocketLeaseStore>(store: S) {
    use wsgate::store::{Acquired, AtSocketLimit};
    let refuse = AtSocketLimit::RefuseNewest;
    let pairs = |leases: &[&str]| -> Vec<(String, String)> {
        leases
            .iter()
            .map(|lease| ("alice".to_owned(), (*lease).to_owned()))
            .collect()
    };
    for lease in ["01", "02"] {
        assert_eq!(
            store.acquire("alice", lease, 2, refuse).await.unwrap(),
            Acquired::Taken
        );
    }
    assert_eq!(
        store.acquire("alice", "02", 2, refuse).await.unwrap(),
        Acquired::Taken,
        "a lease held already, asked for again"
    );
    assert_eq!(
        store.acquire("alice", "03", 2, refuse).await.unwrap(),
        Acquired::Full
    );
    assert_eq!(
        store.acquire("bob", "04", 2, refuse).await.unwrap(),
        Acquired::Taken
    );
    store.release("alice", "01").await.unwrap();
    assert_eq!(
        store.acquire("alice", "05", 2, refuse).await.unwrap(),
        Acquired::Taken,
        "a released place is free at once; the refused 03 took none"
    );
    let evicting = store
        .acquire("alice", "06", 2, AtSocketLimit::CloseOldest)
        .await
        .unwrap();
    assert_eq!(evicting, Acquired::TakenEvicting(vec!["02".to_owned()]));
    assert_eq!(
        store.renew(pairs(&["02", "05", "06"])).await.unwrap(),
        ["02"],
        "the renewal tells the evicted lease's holder"
    );
    for lease in ["05", "06"] {
        store.release("alice", lease).await.unwrap();
    }
    let ids: Vec<String> = (10..30).map(|n| n.to_string()).collect();
    let at_once =
        futures_util::future::join_all(ids.iter().map(|id| store.acquire("alice", id, 2, refuse)))
            .await;
    let taken = at_once
        .iter()
        .filter(|answer| matches!(answer, Ok(Acquired::Taken)))
        .count();
    assert_eq!(taken, 2, "no more than the limit at once");
}

/// A ticket that expired a second ago (issued by a clock in the past, into
/// `store`).
pub async fn issue_expired_ticket(store: &InMemoryTicketStore, subject: &str) -> String {
    let past = Clock::manual(SystemTime::now() - Duration::from_secs(31));
    let issuer = Tickets::new(store.clone()).clock(past);
    let principal = Principal::new(subject, AuthMethod::Token);
    remember_secret(issuer.issue(&principal).await.unwrap().ticket().expose())
}

/// Opens `ws://addr{path}` with `Authorization: Bearer token`; panics
/// unless upgraded.
pub async fn open_with_bearer(addr: SocketAddr, path: &str, token: &str) -> Client {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// Fails the test with every collected failure, by name.
pub fn assert_no_failures(failures: &[String], cases: usize) {
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Sends a welcome describing what the handler saw, then echoes text.
pub async fn welcome(
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    uri: http::Uri,
    ws: WebSocketUpgrade,
) -> Response {
    let offered = headers
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .map(|value| value.to_str().unwrap_or("").to_owned());
    ws.protocols(["chat.v1"])
        .on_upgrade(move |mut socket| async move {
            let welcome = json!({
                "sub": principal.subject(),
                "roles": principal.roles(),
                "transport": principal.transport().map(Transport::as_str),
                "uri": uri.to_string(),
                "offered_protocols": offered,
            });
            if socket
                .send(Message::Text(welcome.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
            while let Some(Ok(Message::Text(text))) = socket.recv().await {
                if socket.send(Message::Text(text)).await.is_err() {
                    break;
                }
            }
        })
}

pub const BASIC_CHALLENGE: &str = "Basic realm=\"wsgate\", charset=\"UTF-8\"";

/// What every 401 advertises beside `Bearer`: DPoP-bound tokens, and the
/// algorithms of their proofs.
pub const DPOP_CHALLENGE: &str = "DPoP realm=\"wsgate\", algs=\"ES256 EdDSA\"";

pub fn bearer_challenge(error: Option<(&str, &str)>) -> String {
    match error {
        None => "Bearer realm=\"wsgate\"".to_owned(),
        Some((code, description)) => {
            format!(
                "Bearer realm=\"wsgate\", error=\"{code}\", error_description=\"{description}\""
            )
        }
    }
}

/// A refusal case: the handshake, and the exact status and challenges.
pub struct Refusal {
    pub name: &'static str,
    pub handshake: Handshake,
    pub status: u16,
    /// `WWW-Authenticate` values, in order (empty for 403).
    pub challenges: Vec<String>,
}

fn unauthorized(description: Option<&str>) -> Vec<String> {
    vec![
        bearer_challenge(description.map(|text| ("invalid_token", text))),
        DPOP_CHALLENGE.to_owned(),
        BASIC_CHALLENGE.to_owned(),
    ]
}

fn bad_request(description: &str) -> Vec<String> {
    vec![bearer_challenge(Some(("invalid_request", description)))]
}

pub async fn refusal_cases(server: &Server) -> Vec<Refusal> {
    let keys = &server.keys;
    let claims = Keys::claims;
    let with = |name: &str, value: Value| {
        let mut claims = claims("alice");
        claims[name] = value;
        claims
    };
    let without = |name: &str| {
        let mut claims = claims("alice");
        claims.as_object_mut().unwrap().remove(name);
        claims
    };
    let hs = |claims: &Value| keys.sign_with(Algorithm::HS256, claims, |_| {});
    let good = keys.token("alice");
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let tampered_claims = URL_SAFE_NO_PAD.encode(claims("admin").to_string());
    let mut flipped = signature.to_owned().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let attacker_secret = b"attacker-controlled-hmac-secret-32b!";
    let used_ticket = server.ticket("alice").await;
    server.tickets.redeem(&used_ticket).await.unwrap();
    let expired_ticket = server.expired_ticket("alice").await;
    let good_cookie = format!("wsgate_token={good}");
    let invalid = |description: &str| unauthorized(Some(description));

    let bearer = |token: &str| Handshake::to("/ws").bearer(token);
    let cases = vec![
        Refusal {
            name: "no credentials",
            handshake: Handshake::to("/ws"),
            status: 401,
            challenges: unauthorized(None),
        },
        Refusal {
            name: "alg none",
            handshake: bearer(&unsigned("none", &claims("alice"))),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "alg None",
            handshake: bearer(&unsigned("None", &claims("alice"))),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "alg NONE",
            handshake: bearer(&unsigned("NONE", &claims("alice"))),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "alg nOnE",
            handshake: bearer(&unsigned("nOnE", &claims("alice"))),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "alg none with a signature",
            handshake: bearer(&forge(
                &json!({"alg": "none", "kid": "hs", "typ": TOKEN_TYPE}),
                &claims("alice"),
                &keys.hmac_secret,
            )),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "HS256 signed with the RSA public key (kid rs)",
            handshake: bearer(&forge(
                &json!({"alg": "HS256", "kid": "rs", "typ": TOKEN_TYPE}),
                &claims("alice"),
                &keys.rsa_public,
            )),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "HS256 signed with the RSA public key (no kid)",
            handshake: bearer(&forge(
                &json!({"alg": "HS256", "typ": TOKEN_TYPE}),
                &claims("alice"),
                &keys.rsa_public,
            )),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "HS256 signed with the EC public key (kid es)",
            handshake: bearer(&forge(
                &json!({"alg": "HS256", "kid": "es", "typ": TOKEN_TYPE}),
                &claims("alice"),
                &keys.ec_public,
            )),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "HS256 signed with the Ed25519 public key (kid ed)",
            handshake: bearer(&forge(
                &json!({"alg": "HS256", "kid": "ed", "typ": TOKEN_TYPE}),
                &claims("alice"),
                &keys.ed_public,
            )),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "RS256 header under the HMAC key's kid",
            handshake: bearer(
                &keys.sign_with(Algorithm::RS256, &claims("alice"), |header| {
                    header.kid = Some("hs".into())
                }),
            ),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "embedded attacker jwk",
            handshake: bearer(&forge(
                &json!({"alg": "HS256", "kid": "hs", "typ": TOKEN_TYPE, "jwk": {"kty": "oct", "k": URL_SAFE_NO_PAD.encode(attacker_secret)}}),
                &claims("alice"),
                attacker_secret,
            )),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "jku pointing elsewhere",
            handshake: bearer(&forge(
                &json!({"alg": "HS256", "kid": "hs", "typ": TOKEN_TYPE, "jku": "http://127.0.0.1:9/keys"}),
                &claims("alice"),
                attacker_secret,
            )),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "unknown kid",
            handshake: bearer(
                &keys.sign_with(Algorithm::HS256, &claims("alice"), |header| {
                    header.kid = Some("retired".into())
                }),
            ),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "crit header",
            handshake: bearer(&forge(
                &json!({"alg": "HS256", "kid": "hs", "typ": TOKEN_TYPE, "crit": ["exp"]}),
                &claims("alice"),
                &keys.hmac_secret,
            )),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "expired",
            handshake: bearer(&hs(&with("exp", json!(now() - 3_600)))),
            status: 401,
            challenges: invalid("token expired"),
        },
        Refusal {
            name: "expired just past the leeway",
            handshake: bearer(&hs(&with("exp", json!(now() - LEEWAY_SECS - 1)))),
            status: 401,
            challenges: invalid("token expired"),
        },
        Refusal {
            name: "nbf in the future",
            handshake: bearer(&hs(&with("nbf", json!(now() + 600)))),
            status: 401,
            challenges: invalid("token not yet valid"),
        },
        Refusal {
            name: "missing exp",
            handshake: bearer(&hs(&without("exp"))),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "wrong iss",
            handshake: bearer(&hs(&with("iss", json!("https://evil.example")))),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "missing iss",
            handshake: bearer(&hs(&without("iss"))),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "wrong aud",
            handshake: bearer(&hs(&with("aud", json!("another-api")))),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "missing aud",
            handshake: bearer(&hs(&without("aud"))),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "wrong typ",
            handshake: bearer(
                &keys.sign_with(Algorithm::HS256, &claims("alice"), |header| {
                    header.typ = Some("JWT".into())
                }),
            ),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "missing typ",
            handshake: bearer(
                &keys.sign_with(Algorithm::HS256, &claims("alice"), |header| {
                    header.typ = None
                }),
            ),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "tampered payload",
            handshake: bearer(&remember_secret(format!(
                "{head}.{tampered_claims}.{signature}"
            ))),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "tampered signature",
            handshake: bearer(&remember_secret(format!("{head}.{payload}.{flipped}"))),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "padded token",
            handshake: bearer(&format!("{head}==.{payload}.{signature}")),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "padded signature",
            handshake: bearer(&format!("{good}=")),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "whitespace inside the token",
            handshake: bearer(&format!("{head}. {payload}.{signature}")),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "empty bearer token",
            handshake: Handshake::to("/ws").header("authorization", "Bearer "),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "oversized token",
            handshake: bearer(&hs(&with("padding", json!("x".repeat(9 * 1024))))),
            status: 401,
            challenges: invalid("invalid token"),
        },
        Refusal {
            name: "token in the query (access_token)",
            handshake: Handshake::to(format!("/ws?access_token={good}")),
            status: 400,
            challenges: bad_request("token in query string"),
        },
        Refusal {
            name: "token in the query (token)",
            handshake: Handshake::to(format!("/ws?room=1&token={good}")),
            status: 400,
            challenges: bad_request("token in query string"),
        },
        Refusal {
            name: "two Authorization headers",
            handshake: bearer(&good).bearer(&good),
            status: 400,
            challenges: bad_request("ambiguous credentials"),
        },
        Refusal {
            name: "malformed Basic (not base64)",
            handshake: Handshake::to("/ws")
                .origin(ALLOWED_ORIGIN)
                .header("authorization", "Basic %%%not-base64"),
            status: 400,
            challenges: bad_request("malformed credentials"),
        },
        Refusal {
            name: "malformed Basic (no colon)",
            handshake: Handshake::to("/ws").origin(ALLOWED_ORIGIN).header(
                "authorization",
                format!("Basic {}", STANDARD.encode("alice")),
            ),
            status: 400,
            challenges: bad_request("malformed credentials"),
        },
        Refusal {
            name: "wrong password",
            handshake: Handshake::to("/ws")
                .origin(ALLOWED_ORIGIN)
                .header("authorization", basic("alice", "not-her-password")),
            status: 401,
            challenges: unauthorized(None),
        },
        Refusal {
            name: "unknown user",
            handshake: Handshake::to("/ws")
                .origin(ALLOWED_ORIGIN)
                .header("authorization", basic("mallory", ALICE_PASSWORD)),
            status: 401,
            challenges: unauthorized(None),
        },
        Refusal {
            name: "password over the length cap",
            handshake: Handshake::to("/ws")
                .origin(ALLOWED_ORIGIN)
                .header("authorization", basic("alice", &"p".repeat(2_000))),
            status: 401,
            challenges: unauthorized(None),
        },
        Refusal {
            name: "disabled account, right password",
            handshake: Handshake::to("/ws")
                .origin(ALLOWED_ORIGIN)
                .header("authorization", basic("bob", BOB_PASSWORD)),
            status: 403,
            challenges: vec![],
        },
        Refusal {
            name: "Basic without Origin",
            handshake: Handshake::to("/ws").header("authorization", basic("alice", ALICE_PASSWORD)),
            status: 403,
            challenges: vec![],
        },
        Refusal {
            name: "Basic from a foreign Origin",
            handshake: Handshake::to("/ws")
                .origin("http://evil.test")
                .header("authorization", basic("alice", ALICE_PASSWORD)),
            status: 403,
            challenges: vec![],
        },
        Refusal {
            name: "cookie without Origin",
            handshake: Handshake::to("/ws").header("cookie", good_cookie.clone()),
            status: 403,
            challenges: vec![],
        },
        Refusal {
            name: "cookie from a foreign Origin",
            handshake: Handshake::to("/ws")
                .origin("http://evil.test")
                .header("cookie", good_cookie.clone()),
            status: 403,
            challenges: vec![],
        },
        Refusal {
            name: "cookie from a look-alike Origin (suffix)",
            handshake: Handshake::to("/ws")
                .origin("http://app.test:8080.evil.test")
                .header("cookie", good_cookie.clone()),
            status: 403,
            challenges: vec![],
        },
        Refusal {
            name: "cookie from a look-alike Origin (prefix)",
            handshake: Handshake::to("/ws")
                .origin("http://evil-app.test:8080")
                .header("cookie", good_cookie.clone()),
            status: 403,
            challenges: vec![],
        },
        Refusal {
            name: "cookie from a look-alike Origin (other port)",
            handshake: Handshake::to("/ws")
                .origin("http://app.test:8081")
                .header("cookie", good_cookie.clone()),
            status: 403,
            challenges: vec![],
        },
        Refusal {
            name: "cookie from a look-alike Origin (https)",
            handshake: Handshake::to("/ws")
                .origin("https://app.test:8080")
                .header("cookie", good_cookie.clone()),
            status: 403,
            challenges: vec![],
        },
        Refusal {
            name: "cookie from Origin null",
            handshake: Handshake::to("/ws")
                .origin("null")
                .header("cookie", good_cookie.clone()),
            status: 403,
            challenges: vec![],
        },
        Refusal {
            name: "bearer from a foreign Origin",
            handshake: bearer(&good).origin("http://evil.test"),
            status: 403,
            challenges: vec![],
        },
        Refusal {
            name: "two Origin headers",
            handshake: bearer(&good)
                .origin(ALLOWED_ORIGIN)
                .origin("http://evil.test"),
            status: 403,
            challenges: vec![],
        },
        Refusal {
            name: "reused ticket",
            handshake: Handshake::to(format!("/ws?ticket={used_ticket}")),
            status: 401,
            challenges: invalid("invalid ticket"),
        },
        Refusal {
            name: "expired ticket",
            handshake: Handshake::to(format!("/ws?ticket={expired_ticket}")),
            status: 401,
            challenges: invalid("invalid ticket"),
        },
        Refusal {
            name: "made-up ticket",
            handshake: Handshake::to(format!("/ws?ticket={}", "A".repeat(43))),
            status: 401,
            challenges: invalid("invalid ticket"),
        },
        Refusal {
            name: "two tickets",
            handshake: Handshake::to(format!("/ws?ticket={used_ticket}&ticket={expired_ticket}")),
            status: 400,
            challenges: bad_request("ambiguous credentials"),
        },
        Refusal {
            name: "token subprotocol without an application protocol",
            handshake: Handshake::to("/ws")
                .header("sec-websocket-protocol", format!("wsgate.bearer.{good}")),
            status: 400,
            challenges: bad_request("application protocol required"),
        },
        Refusal {
            name: "token subprotocol with an unknown application protocol",
            handshake: Handshake::to("/ws").header(
                "sec-websocket-protocol",
                format!("chat.v9, wsgate.bearer.{good}"),
            ),
            status: 400,
            challenges: bad_request("application protocol required"),
        },
        Refusal {
            name: "two token subprotocols",
            handshake: Handshake::to("/ws").header(
                "sec-websocket-protocol",
                format!("chat.v1, wsgate.bearer.{good}, wsgate.bearer.{good}"),
            ),
            status: 400,
            challenges: bad_request("ambiguous credentials"),
        },
        Refusal {
            name: "expired token as a subprotocol",
            handshake: Handshake::to("/ws").header(
                "sec-websocket-protocol",
                format!(
                    "chat.v1, wsgate.bearer.{}",
                    hs(&with("exp", json!(now() - 3_600)))
                ),
            ),
            status: 401,
            challenges: invalid("token expired"),
        },
    ];
    cases
}

/// An accepted handshake: the transport that must have carried it.
pub struct Acceptance {
    pub name: &'static str,
    pub handshake: Handshake,
    pub subject: &'static str,
    pub transport: &'static str,
}

pub async fn acceptance_cases(server: &Server) -> Vec<Acceptance> {
    let keys = &server.keys;
    let token = keys.token("alice");
    let ticket = server.ticket("alice").await;
    let signed = |algorithm| keys.sign_with(algorithm, &Keys::claims("alice"), |_| {});
    vec![
        Acceptance {
            name: "bearer HS256",
            handshake: Handshake::to("/ws").bearer(&token),
            subject: "alice",
            transport: "bearer",
        },
        Acceptance {
            // `1*SP` between the scheme and the token (RFC 9110 §11.4).
            name: "two spaces after Bearer",
            handshake: Handshake::to("/ws").header("authorization", format!("Bearer  {token}")),
            subject: "alice",
            transport: "bearer",
        },
        Acceptance {
            name: "bearer RS256",
            handshake: Handshake::to("/ws").bearer(&signed(Algorithm::RS256)),
            subject: "alice",
            transport: "bearer",
        },
        Acceptance {
            name: "bearer ES256",
            handshake: Handshake::to("/ws").bearer(&signed(Algorithm::ES256)),
            subject: "alice",
            transport: "bearer",
        },
        Acceptance {
            name: "bearer EdDSA",
            handshake: Handshake::to("/ws").bearer(&signed(Algorithm::EdDSA)),
            subject: "alice",
            transport: "bearer",
        },
        Acceptance {
            name: "bearer from an allowed Origin",
            handshake: Handshake::to("/ws").bearer(&token).origin(ALLOWED_ORIGIN),
            subject: "alice",
            transport: "bearer",
        },
        Acceptance {
            name: "basic",
            handshake: Handshake::to("/ws")
                .origin(ALLOWED_ORIGIN)
                .header("authorization", basic("alice", ALICE_PASSWORD)),
            subject: "alice",
            transport: "basic",
        },
        Acceptance {
            name: "subprotocol",
            handshake: Handshake::to("/ws").header(
                "sec-websocket-protocol",
                format!("chat.v1, wsgate.bearer.{token}"),
            ),
            subject: "alice",
            transport: "subprotocol",
        },
        Acceptance {
            name: "cookie",
            handshake: Handshake::to("/ws")
                .origin(ALLOWED_ORIGIN)
                .header("cookie", format!("theme=dark; wsgate_token={token}")),
            subject: "alice",
            transport: "cookie",
        },
        Acceptance {
            name: "cookie, Origin host in capitals",
            handshake: Handshake::to("/ws")
                .origin("http://APP.test:8080")
                .header("cookie", format!("wsgate_token={token}")),
            subject: "alice",
            transport: "cookie",
        },
        Acceptance {
            name: "ticket",
            handshake: Handshake::to(format!("/ws?room=lobby&ticket={ticket}")),
            subject: "alice",
            transport: "ticket",
        },
    ]
}

/// A `tracing` writer that keeps everything written, for tests that read
/// the logs back.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

/// The lines of `text` that hold one of `secrets`.
pub fn leaks<'a>(text: &'a str, secrets: &[String]) -> Vec<&'a str> {
    text.lines()
        .filter(|line| secrets.iter().any(|secret| line.contains(secret.as_str())))
        .collect()
}

/// Fails when a line of `log` holds one of `secrets`, naming the first.
pub fn assert_no_secret_in(log: &str, secrets: &[String]) {
    let found = leaks(log, secrets);
    assert!(
        found.is_empty(),
        "{} log lines hold a secret, the first: {}",
        found.len(),
        found[0]
    );
}

/// Opens `ws://addr/ws` with a Bearer token and reads the first message
/// (the handler's welcome).
pub async fn open_bearer(addr: SocketAddr, token: &str) -> Client {
    open_with(addr, &[("authorization", &format!("Bearer {token}"))]).await
}

/// A socket on `/ws` opened with these headers, past its welcome.
pub async fn open_with(addr: SocketAddr, headers: &[(&'static str, &str)]) -> Client {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let (mut client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let _welcome = client.next().await.unwrap().unwrap();
    client
}

/// A gated socket route's handler: a welcome naming the principal
/// (`sub`, `roles`, `scopes`, `transport`, `expires_at` in Unix seconds),
/// then every message echoed.
pub async fn welcome_then_echo(
    axum::extract::State(gate): axum::extract::State<wsgate::Gate>,
    upgrade: wsgate::socket::GatedUpgrade,
) -> axum::response::Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        let principal = socket.principal();
        let welcome = json!({
            "sub": principal.subject(),
            "roles": principal.roles(),
            "scopes": principal.scopes(),
            "transport": principal.transport().map(Transport::as_str),
            "expires_at": principal.expires_at().map(|at| at.duration_since(UNIX_EPOCH).unwrap().as_secs()),
        });
        let _ = socket
            .send(axum::extract::ws::Message::Text(welcome.to_string().into()))
            .await;
        while let Some(message) = socket.recv().await {
            if socket.send(message.into_message()).await.is_err() {
                break;
            }
        }
    })
}

/// A first-message route's handler: the same welcome, then every message
/// echoed.
pub async fn welcome_then_echo_deferred(
    axum::extract::State(gate): axum::extract::State<wsgate::Gate>,
    upgrade: wsgate::socket::DeferredUpgrade,
) -> axum::response::Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        let welcome = json!({"sub": socket.principal().subject()});
        let _ = socket
            .send(axum::extract::ws::Message::Text(welcome.to_string().into()))
            .await;
        while let Some(message) = socket.recv().await {
            if socket.send(message.into_message()).await.is_err() {
                break;
            }
        }
    })
}

/// Installs the process-wide subscriber at TRACE for every target, written
/// into the returned capture (once per test binary).
pub fn capture_trace_logs() -> Capture {
    let capture = Capture::default();
    // Everything at TRACE, with two exceptions, both tungstenite's:
    // - its client handshake module logs the request the test's client
    //   sends, credentials included: the client's log, not the server's;
    // - its protocol module logs every frame written and every message
    //   read, payload and all, at TRACE, on both sides of the socket. The
    //   tokens that travel in messages (a refresh, a per-message token, a
    //   first-message authentication) are payload, so they would appear
    //   there: SECURITY.md tells deployments to keep `tungstenite` below
    //   TRACE. At DEBUG it still logs closes, which are checked here.
    tracing_subscriber::fmt()
        .with_env_filter("trace,tungstenite::handshake::client=off,tungstenite::protocol=debug")
        .with_ansi(false)
        .with_writer(capture.clone())
        .init();
    capture
}

impl Capture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// How many bytes were written so far.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// What was written from byte `start` on.
    pub fn since(&self, start: usize) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()[start..]).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
