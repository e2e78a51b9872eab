//! Client certificates (mutual TLS) over real TLS, served by
//! `wsgate::serve::Serving`: certificates as credentials, the TLS layer's
//! refusals, certificate-bound tokens (RFC 8705) on every path, and
//! certificates forwarded by a proxy.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::pki::{Authority, Kind, Leaf, TlsClient, connect_tls, connector, serve_mtls};
use crate::common::{Handshake, Keys, Outcome, handshake_request, outcome};
use axum::Router;
use axum::routing::get;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite;
use wsgate::audit::{self, AuditEvent, Auditor, EventKind};
use wsgate::authenticate::{CertificateAuthenticator, CertificateSubject};
use wsgate::certificate::{ClientCertificates, ForwardedCertificateHeader, ForwardedCertificates};
use wsgate::{Gate, GateBuilder, Transport};

const ORIGIN: &str = "https://app.example";

/// A gated server over mutual TLS: certificates of `ca` authenticate
/// (subject from the Common Name, roles `["user"]`), tokens of `keys`
/// too; `crl` revokes.
struct Site {
    addr: SocketAddr,
    server: Leaf,
    keys: Keys,
    events: Arc<Mutex<Vec<AuditEvent>>>,
    gate: Gate,
}

struct Options {
    crl: Option<String>,
    authenticator: CertificateAuthenticator,
    tune: Box<dyn FnOnce(GateBuilder) -> GateBuilder>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            crl: None,
            authenticator: CertificateAuthenticator::new().roles(["user"]),
            tune: Box::new(|gate| gate),
        }
    }
}

/// The router every server here serves: the gate's socket route (a
/// welcome naming the principal and its transport, then an echo), its
/// ticket route, a first-message route.
fn router(keys: &Keys, options: Options, events: &Arc<Mutex<Vec<AuditEvent>>>) -> (Router, Gate) {
    let seen = events.clone();
    let auditor = Auditor::new(move |event: &AuditEvent| seen.lock().unwrap().push(event.clone()));
    let gate = (options.tune)(
        Gate::builder(keys.verifier())
            .authenticator(options.authenticator)
            .audit(auditor),
    )
    .build()
    .unwrap();
    let handshake = gate
        .handshake()
        .transports([
            Transport::Certificate,
            Transport::Bearer,
            Transport::Subprotocol,
            Transport::Ticket,
        ])
        .application_protocols(["chat.v1"])
        .unwrap()
        .allowed_origins([ORIGIN])
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
        .with_state(gate.clone());
    (router, gate)
}

impl Site {
    async fn start(ca: &Authority, options: Options) -> Self {
        let keys = Keys::load();
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut trust = ClientCertificates::builder(ca.pem.as_bytes()).unwrap();
        if let Some(crl) = &options.crl {
            trust = trust.crls(crl.as_bytes()).unwrap();
        }
        let server = Leaf::server();
        let (router, gate) = router(&keys, options, &events);
        let addr = serve_mtls(router, &server, trust.build().unwrap()).await;
        Self {
            addr,
            server,
            keys,
            events,
            gate,
        }
    }

    /// `handshake` over TLS, presenting `client`: `Err` when the TLS
    /// handshake failed (no HTTP answer at all).
    async fn connect(
        &self,
        client: Option<&Leaf>,
        handshake: &Handshake,
    ) -> Result<Outcome, tungstenite::Error> {
        outcome(connect_tls(self.addr, &self.server, client, handshake).await).await
    }

    /// A token for `subject`, bound to `certificate` when there is one.
    fn token(&self, subject: &str, certificate: Option<&Leaf>) -> String {
        let mut claims = Keys::claims(subject);
        if let Some(certificate) = certificate {
            claims["cnf"] = json!({"x5t#S256": certificate.thumbprint()});
        }
        self.keys.sign_with(Algorithm::HS256, &claims, |_| {})
    }

    fn handshakes(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event.event == EventKind::Handshake)
            .cloned()
            .collect()
    }

    /// Opens a socket presenting `client`, past its welcome.
    async fn open(&self, client: &Leaf, handshake: &Handshake) -> TlsClient {
        use futures_util::StreamExt as _;
        let (mut socket, _) = connect_tls(self.addr, &self.server, Some(client), handshake)
            .await
            .unwrap();
        let welcome = socket.next().await.unwrap().unwrap();
        assert!(
            welcome.to_text().unwrap().contains("\"sub\""),
            "{welcome:?}"
        );
        socket
    }

    /// Opens the first-message route presenting `client` and
    /// authenticates with `token`: the welcome's `sub`, or the close.
    async fn first_message(&self, client: Option<&Leaf>, token: &str) -> String {
        use futures_util::{SinkExt as _, StreamExt as _};
        let deferred = Handshake::to("/ws/deferred");
        let (mut socket, _) = connect_tls(self.addr, &self.server, client, &deferred)
            .await
            .unwrap();
        let auth = json!({"type": "auth", "token": token}).to_string();
        socket.send(tungstenite::Message::text(auth)).await.unwrap();
        match socket.next().await.unwrap().unwrap() {
            tungstenite::Message::Text(text) => {
                serde_json::from_str::<Value>(&text).unwrap()["sub"].to_string()
            }
            tungstenite::Message::Close(Some(frame)) => {
                format!("{} {}", u16::from(frame.code), frame.reason)
            }
            other => format!("{other:?}"),
        }
    }

    /// `POST path` over TLS presenting `client`, with `authorization`.
    async fn post(&self, client: Option<&Leaf>, path: &str, authorization: &str) -> (u16, Value) {
        let tokio_tungstenite::Connector::Rustls(config) = connector(&self.server, client) else {
            unreachable!()
        };
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(config)
            .connect("localhost".try_into().unwrap(), stream)
            .await
            .unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: {authorization}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let response = String::from_utf8_lossy(&response);
        let status = response[9..12].parse().unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

fn accepted(outcome: Result<Outcome, tungstenite::Error>, what: &str) -> Value {
    match outcome {
        Ok(Outcome::Accepted { welcome, .. }) => welcome,
        other => panic!("{what}: not accepted: {other:?}"),
    }
}

fn status(outcome: Result<Outcome, tungstenite::Error>, what: &str) -> u16 {
    match outcome {
        Ok(outcome) => outcome.status(),
        Err(error) => panic!("{what}: no HTTP answer: {error}"),
    }
}

fn body(outcome: Result<Outcome, tungstenite::Error>, what: &str) -> (u16, String) {
    match outcome {
        Ok(Outcome::Refused { status, body, .. }) => (status, body),
        other => panic!("{what}: not refused over HTTP: {other:?}"),
    }
}

fn socket() -> Handshake {
    Handshake::to("/ws").origin(ORIGIN)
}

/// A certificate of the CA authenticates a handshake that carries nothing
/// else: subject its Common Name, roles `["user"]` (never from the
/// certificate: `admin` is just a name), transport `certificate`, expiry
/// the certificate's. The audit names the certificate by its fingerprint
/// only.
#[tokio::test]
async fn a_certificate_of_the_ca_authenticates_a_handshake_that_carries_nothing_else() {
    let ca = Authority::new("wsgate test CA");
    let site = Site::start(&ca, Options::default()).await;
    let alice = ca.leaf("alice", &[], Kind::Client);
    let welcome = accepted(site.connect(Some(&alice), &socket()).await, "alice");
    assert_eq!(welcome["sub"], "alice");
    assert_eq!(welcome["roles"], json!(["user"]));
    assert_eq!(welcome["transport"], "certificate");
    let not_after = x509_not_after(&alice);
    assert_eq!(welcome["expires_at"], json!(not_after));

    let admin = ca.leaf("admin", &[], Kind::Client);
    let welcome = accepted(site.connect(Some(&admin), &socket()).await, "admin");
    assert_eq!(
        (welcome["sub"].clone(), welcome["roles"].clone()),
        (json!("admin"), json!(["user"]))
    );

    let events = site.handshakes();
    let allowed = events
        .iter()
        .find(|event| event.sub.as_deref() == Some("alice"))
        .unwrap();
    assert_eq!(allowed.outcome, audit::Outcome::Allow);
    assert_eq!(allowed.transport, Some("certificate"));
    assert_eq!(allowed.cert.as_deref(), Some(alice.fingerprint().as_str()));
    assert_eq!(allowed.binding, Some("certificate"));
    let json = allowed.to_json().to_string();
    assert!(
        json.contains(&format!("\"cert\":\"{}\"", alice.fingerprint())),
        "{json}"
    );
    // The certificate itself (its base64 body) appears nowhere.
    let body_line = alice.pem.lines().nth(1).unwrap();
    assert!(!json.contains(body_line));
    assert_eq!(alice.fingerprint().len(), 64);
    assert!(
        alice
            .fingerprint()
            .bytes()
            .all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase())
    );
}

/// `notAfter` of `leaf`, in Unix seconds, as rcgen wrote it.
fn x509_not_after(leaf: &Leaf) -> u64 {
    use x509_parser::prelude::FromDer as _;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&leaf.der).unwrap();
    u64::try_from(parsed.validity().not_after.timestamp()).unwrap()
}

/// Any other certificate ends the TLS handshake: no HTTP response at all.
#[tokio::test]
async fn certificates_the_server_does_not_believe_end_the_tls_handshake() {
    let ca = Authority::new("wsgate test CA");
    let other = Authority::new("another CA");
    let revoked = ca.leaf("mallory", &[], Kind::Client);
    let options = Options {
        crl: Some(ca.crl(&[&revoked])),
        ..Options::default()
    };
    let site = Site::start(&ca, options).await;
    let cases = [
        ("another CA", other.leaf("alice", &[], Kind::Client)),
        ("expired", ca.leaf("alice", &[], Kind::Expired)),
        ("not yet valid", ca.leaf("alice", &[], Kind::NotYetValid)),
        ("revoked", revoked.clone()),
        ("self-signed", Leaf::self_signed("alice")),
        (
            "server authentication only",
            ca.leaf("alice", &[], Kind::ServerOnly),
        ),
    ];
    for (name, leaf) in &cases {
        let outcome = site
            .connect(Some(leaf), &socket().bearer(&site.token("alice", None)))
            .await;
        assert!(outcome.is_err(), "{name}: served: {outcome:?}");
    }
    // Still on the CRL's CA, a certificate not on the list is fine.
    let alice = ca.leaf("alice", &[], Kind::Client);
    accepted(site.connect(Some(&alice), &socket()).await, "unrevoked");
    assert!(
        site.handshakes()
            .iter()
            .all(|event| event.sub.as_deref() != Some("mallory"))
    );
}

/// Optional client authentication: a client without a certificate goes on
/// with another transport, and is refused (401) with none.
#[tokio::test]
async fn a_client_without_a_certificate_uses_the_other_transports() {
    let ca = Authority::new("wsgate test CA");
    let site = Site::start(&ca, Options::default()).await;
    let token = site.token("bob", None);
    let welcome = accepted(site.connect(None, &socket().bearer(&token)).await, "bearer");
    assert_eq!(
        (welcome["sub"].clone(), welcome["transport"].clone()),
        (json!("bob"), json!("bearer"))
    );
    let (code, body) = body(site.connect(None, &socket()).await, "nothing");
    assert_eq!((code, body.as_str()), (401, "missing credentials"));
}

/// Any other credential on the request wins over the certificate, and a
/// bad one is refused, never rescued by the certificate. The certificate
/// transport needs the Origin allowlist, as cookies and Basic do.
#[tokio::test]
async fn request_credentials_win_over_the_certificate_and_a_bad_one_is_not_rescued() {
    let ca = Authority::new("wsgate test CA");
    let site = Site::start(&ca, Options::default()).await;
    let alice = ca.leaf("alice", &[], Kind::Client);

    let bob = site.token("bob", None);
    let welcome = accepted(
        site.connect(Some(&alice), &socket().bearer(&bob)).await,
        "bob's token",
    );
    assert_eq!(
        (welcome["sub"].clone(), welcome["transport"].clone()),
        (json!("bob"), json!("bearer"))
    );
    let subprotocol = socket().header(
        "sec-websocket-protocol",
        format!("chat.v1, wsgate.bearer.{bob}"),
    );
    let welcome = accepted(
        site.connect(Some(&alice), &subprotocol).await,
        "bob's subprotocol",
    );
    assert_eq!(welcome["transport"], "subprotocol");

    for (name, handshake) in [
        (
            "forged token",
            socket().bearer("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA"),
        ),
        (
            "expired token",
            socket().bearer(&site.keys.sign_with(
                Algorithm::HS256,
                &json!({"sub": "alice", "exp": 1}),
                |_| {},
            )),
        ),
        (
            "unknown ticket",
            socket().path("/ws?ticket=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
    ] {
        assert_eq!(
            status(site.connect(Some(&alice), &handshake).await, name),
            401,
            "{name}"
        );
    }

    let (code, body) = body(
        site.connect(Some(&alice), &Handshake::to("/ws")).await,
        "no Origin",
    );
    assert_eq!((code, body.as_str()), (403, "origin required"));
    let (code, _) = body_of(
        site.connect(
            Some(&alice),
            &Handshake::to("/ws").origin("https://evil.example"),
        )
        .await,
    );
    assert_eq!(code, 403);
}

fn body_of(outcome: Result<Outcome, tungstenite::Error>) -> (u16, String) {
    body(outcome, "handshake")
}

/// RFC 8705: a token bound to a certificate (`cnf.x5t#S256`) opens a
/// socket only over a connection presenting that certificate; never as a
/// plain bearer token, on every path (handshake, first message, tickets
/// bought with it).
#[tokio::test]
async fn a_certificate_bound_token_works_only_beside_its_certificate() {
    let ca = Authority::new("wsgate test CA");
    let site = Site::start(&ca, Options::default()).await;
    let alice = ca.leaf("alice", &[], Kind::Client);
    let other = ca.leaf("alice", &[], Kind::Client);
    let bound = site.token("alice", Some(&alice));

    let welcome = accepted(
        site.connect(Some(&alice), &socket().bearer(&bound)).await,
        "its certificate",
    );
    assert_eq!(welcome["transport"], "bearer");
    let allowed = site.handshakes().pop().unwrap();
    assert_eq!(allowed.binding, Some("certificate"));
    for (name, client) in [
        ("another certificate", Some(&other)),
        ("no certificate", None),
    ] {
        let (code, body) = body(site.connect(client, &socket().bearer(&bound)).await, name);
        assert_eq!((code, body.as_str()), (401, "invalid token"), "{name}");
    }

    // First message: the same rule.
    assert_eq!(site.first_message(Some(&alice), &bound).await, "\"alice\"");
    assert_eq!(
        site.first_message(Some(&other), &bound).await,
        "4401 invalid token"
    );
    assert_eq!(site.first_message(None, &bound).await, "4401 invalid token");

    // A ticket bought with the bound token (over its certificate) is
    // redeemable only over that certificate.
    let (code, _) = site
        .post(None, "/tickets", &format!("Bearer {bound}"))
        .await;
    assert_eq!(code, 401, "a ticket bought without the certificate");
    let authorization = format!("Bearer {bound}");
    let buy = || site.post(Some(&alice), "/tickets", &authorization);
    let (code, ticket) = buy().await;
    assert_eq!(code, 200);
    let redeem = |ticket: &Value| {
        socket().path(format!("/ws?ticket={}", ticket["ticket"].as_str().unwrap()))
    };
    accepted(
        site.connect(Some(&alice), &redeem(&ticket)).await,
        "ticket over its certificate",
    );
    let (_, ticket) = buy().await;
    assert_eq!(
        status(
            site.connect(Some(&other), &redeem(&ticket)).await,
            "ticket over another"
        ),
        401
    );
    let (_, ticket) = buy().await;
    assert_eq!(
        status(
            site.connect(None, &redeem(&ticket)).await,
            "ticket without one"
        ),
        401
    );
}

/// The mapping is the application's: a SAN URI (SPIFFE), DNS name or
/// email, or a closure; a certificate that does not map is refused (401),
/// never let in anonymous.
#[tokio::test]
async fn the_application_chooses_how_a_certificate_names_its_subject() {
    let ca = Authority::new("wsgate test CA");
    let leaf = ca.leaf(
        "ignored",
        &[
            "spiffe://example.org/ns/chat/worker",
            "worker.example.org",
            "ops@example.org",
        ],
        Kind::Client,
    );
    let bare = ca.leaf("only-a-cn", &[], Kind::Client);
    for (subject, expected) in [
        (
            CertificateSubject::SanUri,
            "spiffe://example.org/ns/chat/worker",
        ),
        (CertificateSubject::SanDns, "worker.example.org"),
        (CertificateSubject::SanEmail, "ops@example.org"),
        (CertificateSubject::CommonName, "ignored"),
    ] {
        let options = Options {
            authenticator: CertificateAuthenticator::new().subject(subject),
            ..Options::default()
        };
        let site = Site::start(&ca, options).await;
        let welcome = accepted(site.connect(Some(&leaf), &socket()).await, expected);
        assert_eq!(welcome["sub"], expected);
        assert_eq!(welcome["roles"], json!([]));
        if subject != CertificateSubject::CommonName {
            let (code, body) = body(site.connect(Some(&bare), &socket()).await, "no such SAN");
            assert_eq!((code, body.as_str()), (401, "invalid certificate"));
        }
    }

    let options = Options {
        authenticator: CertificateAuthenticator::new().map(|identity| {
            let uri = identity.uris.first()?;
            let workload = uri.strip_prefix("spiffe://example.org/ns/chat/")?;
            Some(
                wsgate::Principal::new(workload, wsgate::AuthMethod::Certificate)
                    .with_roles(["service"]),
            )
        }),
        ..Options::default()
    };
    let site = Site::start(&ca, options).await;
    let welcome = accepted(site.connect(Some(&leaf), &socket()).await, "closure");
    assert_eq!(
        (welcome["sub"].clone(), welcome["roles"].clone()),
        (json!("worker"), json!(["service"]))
    );
    assert_eq!(
        status(
            site.connect(Some(&bare), &socket()).await,
            "closure says no"
        ),
        401
    );
}

/// A socket opened by a certificate closes with 4401 when the certificate
/// expires. Real time: the TLS layer checks the certificate's validity
/// against the system clock, so the certificate is made to end in 3 s.
#[tokio::test]
async fn a_socket_opened_by_a_certificate_closes_when_the_certificate_expires() {
    let ca = Authority::new("wsgate test CA");
    let site = Site::start(&ca, Options::default()).await;
    let short = ca.leaf("alice", &[], Kind::EndsIn(3));
    let started = tokio::time::Instant::now();
    let mut client = site.open(&short, &socket()).await;
    let (code, reason) = crate::common::close_within(&mut client, Duration::from_secs(10)).await;
    assert_eq!((code, reason.as_str()), (4401, "token expired"));
    let elapsed = started.elapsed();
    assert!(
        elapsed > Duration::from_secs(1) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
}

/// A session bound to a certificate (opened by it, or by a token bound to
/// it) takes a per-message token, and (opened by a token) an in-band
/// refresh, only bound to the same certificate; anything else closes it
/// 4401. A session opened by the certificate lives as long as the
/// certificate: no token refreshes it.
#[tokio::test]
async fn a_certificate_session_refreshes_only_to_a_token_bound_to_its_certificate() {
    use futures_util::{SinkExt as _, StreamExt as _};
    let ca = Authority::new("wsgate test CA");
    let options = Options {
        tune: Box::new(|gate| gate.message_tokens(true)),
        ..Options::default()
    };
    let site = Site::start(&ca, options).await;
    let alice = ca.leaf("alice", &[], Kind::Client);
    let other = ca.leaf("alice", &[], Kind::Client);
    let later = |certificate: Option<&Leaf>| {
        let mut claims = Keys::claims("alice");
        claims["exp"] = json!(crate::common::now() + 600);
        if let Some(certificate) = certificate {
            claims["cnf"] = json!({"x5t#S256": certificate.thumbprint()});
        }
        site.keys.sign_with(Algorithm::HS256, &claims, |_| {})
    };
    let refresh = |token: String| {
        tungstenite::Message::text(json!({"type": "auth.refresh", "token": token}).to_string())
    };
    let say = |token: String| {
        tungstenite::Message::text(json!({"type": "say", "text": "hi", "token": token}).to_string())
    };
    // Opened with a token that expires before the refreshing ones.
    let bound = site.token("alice", Some(&alice));
    for (opened_by, handshake) in [
        ("the certificate", socket()),
        ("a bound token", socket().bearer(&bound)),
    ] {
        let mut client = site.open(&alice, &handshake).await;
        client.send(refresh(later(Some(&alice)))).await.unwrap();
        if opened_by == "the certificate" {
            assert_eq!(
                crate::common::close_within(&mut client, Duration::from_secs(2)).await,
                (4401, "invalid token".to_owned()),
                "a certificate's session is not refreshed by a token"
            );
            client = site.open(&alice, &handshake).await;
        } else {
            let reply = client.next().await.unwrap().unwrap();
            assert!(
                reply.to_text().unwrap().contains("auth.refreshed"),
                "{reply:?}"
            );
        }
        client.send(say(later(Some(&alice)))).await.unwrap();
        let echoed = client.next().await.unwrap().unwrap();
        assert!(
            echoed.to_text().unwrap().contains("\"hi\""),
            "{opened_by}: {echoed:?}"
        );
        for (name, token) in [
            ("a bearer token", later(None)),
            ("a token of another certificate", later(Some(&other))),
        ] {
            for message in [refresh(token.clone()), say(token.clone())] {
                let mut client = site.open(&alice, &handshake).await;
                client.send(message).await.unwrap();
                assert_eq!(
                    crate::common::close_within(&mut client, Duration::from_secs(2)).await,
                    (4401, "invalid token".to_owned()),
                    "opened by {opened_by}, then {name}"
                );
            }
        }
    }
}

/// Revoking a certificate's subject closes its live sockets (4403) and
/// refuses the certificates issued up to then, as it does tokens.
#[tokio::test]
async fn revoking_the_subject_closes_its_certificate_sockets() {
    let ca = Authority::new("wsgate test CA");
    let site = Site::start(&ca, Options::default()).await;
    let alice = ca.leaf("alice", &[], Kind::Client);
    let mut client = site.open(&alice, &socket()).await;
    let closed = site
        .gate
        .registry()
        .revoke(wsgate::store::Revocation::subject(
            "alice",
            std::time::SystemTime::now(),
        ))
        .await
        .unwrap();
    assert_eq!(closed, 1);
    let (code, reason) = crate::common::close_within(&mut client, Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (4403, "token revoked"));
    let (code, body) = body(site.connect(Some(&alice), &socket()).await, "after");
    assert_eq!((code, body.as_str()), (401, "token revoked"));
    let bob = ca.leaf("bob", &[], Kind::Client);
    accepted(site.connect(Some(&bob), &socket()).await, "another subject");
}

/// Behind a TLS-terminating proxy: the certificate comes in the proxy's
/// header, believed only from a trusted proxy (and then the proxy's own
/// connection certificate never counts); from anyone else the header is
/// refused. `verify_with` checks forwarded certificates against the CAs
/// here too.
#[tokio::test]
async fn a_forwarded_certificate_is_believed_only_from_a_trusted_proxy() {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let ca = Authority::new("wsgate test CA");
    let other = Authority::new("another CA");
    let keys = Keys::load();
    let events = Arc::new(Mutex::new(Vec::new()));
    let proxy: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let tune = move |gate: GateBuilder| {
        gate.trusted_proxies([proxy])
            .forwarded_certificates(ForwardedCertificates::new(
                ForwardedCertificateHeader::EnvoyXfcc,
            ))
    };
    let options = Options {
        tune: Box::new(tune),
        ..Options::default()
    };
    let addr = crate::common::serve(router(&keys, options, &events).0).await;

    let alice = ca.leaf("alice", &[], Kind::Client);
    let encoded = |leaf: &Leaf| utf8_percent_encode(&leaf.pem, NON_ALPHANUMERIC).to_string();
    let xfcc = |leaf: &Leaf| {
        format!(
            "By=spiffe://proxy;Hash={};Cert=\"{}\";Subject=\"CN=alice\"",
            leaf.fingerprint(),
            encoded(leaf)
        )
    };
    let forwarded = socket().header("x-forwarded-client-cert", xfcc(&alice));

    // From the trusted proxy (127.0.0.1).
    let welcome = match crate::common::connect(addr, &forwarded).await {
        Outcome::Accepted { welcome, .. } => welcome,
        refused => panic!("{refused:?}"),
    };
    assert_eq!(
        (welcome["sub"].clone(), welcome["transport"].clone()),
        (json!("alice"), json!("certificate"))
    );
    let bound = {
        let mut claims = Keys::claims("alice");
        claims["cnf"] = json!({"x5t#S256": alice.thumbprint()});
        keys.sign_with(Algorithm::HS256, &claims, |_| {})
    };
    assert_eq!(
        crate::common::connect(addr, &forwarded.clone().bearer(&bound))
            .await
            .status(),
        101
    );
    let bob = ca.leaf("bob", &[], Kind::Client);
    let wrong = socket()
        .header("x-forwarded-client-cert", xfcc(&bob))
        .bearer(&bound);
    assert_eq!(crate::common::connect(addr, &wrong).await.status(), 401);
    assert_eq!(
        crate::common::connect(addr, &socket().bearer(&bound))
            .await
            .status(),
        401
    );
    let garbage = socket().header("x-forwarded-client-cert", "Cert=\"not a certificate\"");
    let (code, _, body) = crate::common::connect(addr, &garbage)
        .await
        .refusal("garbage");
    assert_eq!((code, body.as_str()), (401, "invalid certificate"));

    // From a peer that is no proxy (127.0.0.2): refused, whatever it says.
    let untrusted = connect_from("127.0.0.2", addr, &forwarded).await;
    let (code, _, body) = untrusted.refusal("untrusted header");
    assert_eq!((code, body.as_str()), (400, "untrusted certificate header"));
    let token = keys.token("carol");
    assert_eq!(
        connect_from("127.0.0.2", addr, &socket().bearer(&token))
            .await
            .status(),
        101
    );

    // Verified here too: a certificate of another CA is refused even from
    // the proxy.
    let trust = ClientCertificates::builder(ca.pem.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let verified = move |gate: GateBuilder| {
        gate.trusted_proxies([proxy]).forwarded_certificates(
            ForwardedCertificates::new(ForwardedCertificateHeader::Nginx).verify_with(trust),
        )
    };
    let options = Options {
        tune: Box::new(verified),
        ..Options::default()
    };
    let addr = crate::common::serve(router(&keys, options, &events).0).await;
    let nginx = |leaf: &Leaf| socket().header("x-ssl-client-cert", encoded(leaf));
    assert_eq!(
        crate::common::connect(addr, &nginx(&alice)).await.status(),
        101
    );
    let stranger = other.leaf("alice", &[], Kind::Client);
    let (code, _, body) = crate::common::connect(addr, &nginx(&stranger))
        .await
        .refusal("another CA");
    assert_eq!((code, body.as_str()), (401, "invalid certificate"));
    let expired = ca.leaf("alice", &[], Kind::Expired);
    assert_eq!(
        crate::common::connect(addr, &nginx(&expired))
            .await
            .status(),
        401
    );
}

/// `handshake` from local address `source` (loopback has them all).
async fn connect_from(source: &str, addr: SocketAddr, handshake: &Handshake) -> Outcome {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let request = handshake_request(&format!("ws://{addr}"), handshake);
    outcome(tokio_tungstenite::client_async(request, stream).await)
        .await
        .unwrap()
}
