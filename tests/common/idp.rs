//! A real OpenID provider for the tests: npm's `oidc-provider` in
//! `tests/idp/`, started on a free loopback port, killed and restarted at
//! will.
//!
//! Needs Node.js and `npm ci` in `tests/idp`. Without them a test prints
//! what to install and skips, unless `WSGATE_TEST_REQUIRE_SERVERS=1` (CI),
//! which turns the absence into a failure.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Resource indicators: the provider's choice of token format.
pub const ES256: &str = "urn:wsgate:es256";
pub const RS256: &str = "urn:wsgate:rs256";
pub const OPAQUE: &str = "urn:wsgate:opaque";
pub const AUDIENCE: &str = "wsgate-chat";

/// The provider's clients: (client id, secret, scopes).
pub const CHAT_USER: (&str, &str, &str) = ("chat-user", "chat-user-secret-0123456789", "chat");
pub const CHAT_ADMIN: (&str, &str, &str) = (
    "chat-admin",
    "chat-admin-secret-0123456789",
    "chat chat:admin",
);
/// A client whose tokens the provider binds to its certificate.
pub const CHAT_DEVICE: (&str, &str, &str) =
    ("chat-device", "chat-device-secret-0123456789", "chat");
pub const NO_SCOPE: (&str, &str, &str) = ("no-scope", "no-scope-secret-0123456789", "");
/// wsgate's own credentials, for introspection.
pub const INTROSPECTOR: (&str, &str) = ("wsgate", "wsgate-introspection-secret-0123456789");

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

/// Whether the provider can run here; prints what is missing, and panics
/// instead when the servers are required.
pub fn available() -> bool {
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if node && installed() {
        return true;
    }
    super::servers::missing(
        "the OpenID provider tests need Node.js 20 and npm (they run `npm ci` in tests/idp themselves)",
    )
}

/// Whether `oidc-provider` is installed in tests/idp, after installing it
/// from the lock file (`npm ci`) when npm is there and it is not yet: once
/// per test binary, whichever test asks first.
fn installed() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let present = || folder().join("node_modules/oidc-provider").is_dir();
    *INSTALLED.get_or_init(|| {
        if present() {
            return true;
        }
        let installing = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(folder())
            .status();
        match installing {
            Ok(status) if status.success() => present(),
            _ => false,
        }
    })
}

/// One running provider.
pub struct Idp {
    pub port: u16,
    pub issuer: String,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Idp {
    /// Starts a provider on a port the system picks; `None` when it cannot
    /// run here.
    pub async fn start() -> Option<Self> {
        if !available() {
            return None;
        }
        Some(Self::launch().await)
    }

    /// Starts a provider on a port the system picks (where [`available`]
    /// was already asked); its issuer is `http://127.0.0.1:PORT`.
    pub async fn launch() -> Self {
        let mut idp = Self {
            port: 0,
            issuer: String::new(),
            child: None,
            http: reqwest::Client::new(),
        };
        idp.spawn().await;
        idp
    }

    /// Starts the provider on `self.port` (0: the system's choice, so two
    /// providers started at once never meet on one port) and learns its
    /// port and issuer.
    async fn spawn(&mut self) {
        // A provider's start is CPU-bound (module load, two keys), and a
        // test binary starts a dozen at once on two cores: the deadline is
        // generous, and a failure says what the provider printed.
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg("--port")
            .arg(self.port.to_string())
            .current_dir(folder())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let started = Instant::now();
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr_text.clone();
        let stderr_read = tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let listening = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(port) = line.strip_prefix("listening ") {
                    return port.trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await;
        if let Ok(Some(port)) = listening {
            // Keep reading its output, so it never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            self.child = Some(child);
            self.port = port;
            self.issuer = format!("http://127.0.0.1:{port}");
            return;
        }
        let _ = child.kill().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), stderr_read).await;
        panic!(
            "the OpenID provider (port {}) {} after {:?}; its stderr:\n{}",
            self.port,
            if listening.is_err() {
                "did not listen"
            } else {
                "ended before it listened"
            },
            started.elapsed(),
            stderr_text.lock().unwrap()
        );
    }

    /// Stops the provider (its port stays free for a restart).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port, with new keys.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// An access token by the client credentials grant, for `resource`
    /// (which picks JWT ES256, JWT RS256 or opaque).
    pub async fn token(&self, client: (&str, &str, &str), resource: &str) -> String {
        self.grant(client, resource, None).await.0
    }

    /// An access token bound to `key` (RFC 9449 §5): the client
    /// credentials grant with a DPoP proof for `POST <issuer>/token`. The
    /// token and the `token_type` the provider answered.
    pub async fn dpop_token(
        &self,
        client: (&str, &str, &str),
        resource: &str,
        key: &super::dpop::ClientKey,
    ) -> (String, String) {
        self.grant(client, resource, Some(key)).await
    }

    /// An access token bound to the client certificate `pem` (RFC 8705):
    /// the client credentials grant with the certificate handed to the
    /// provider as a TLS-terminating proxy would (`X-SSL-Client-Cert`, URL-
    /// encoded PEM, which its `getCertificate` reads). The token and the
    /// `token_type` the provider answered.
    pub async fn certificate_token(
        &self,
        client: (&str, &str, &str),
        resource: &str,
        pem: &str,
    ) -> (String, String) {
        self.grant_with(client, resource, None, Some(pem)).await
    }

    /// The client credentials grant, with a proof of `key` where given:
    /// the token and its `token_type`.
    async fn grant(
        &self,
        client: (&str, &str, &str),
        resource: &str,
        key: Option<&super::dpop::ClientKey>,
    ) -> (String, String) {
        self.grant_with(client, resource, key, None).await
    }

    async fn grant_with(
        &self,
        client: (&str, &str, &str),
        resource: &str,
        key: Option<&super::dpop::ClientKey>,
        certificate: Option<&str>,
    ) -> (String, String) {
        let endpoint = self.url("/token");
        let mut form = vec![("grant_type", "client_credentials"), ("resource", resource)];
        if !client.2.is_empty() {
            form.push(("scope", client.2));
        }
        let mut request = self
            .http
            .post(&endpoint)
            .basic_auth(client.0, Some(client.1));
        if let Some(key) = key {
            let proof = key.proof_with(&endpoint, None, |claims| claims["htm"] = json!("POST"));
            request = request.header("dpop", proof);
        }
        if let Some(pem) = certificate {
            let encoded =
                percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC);
            request = request.header("x-ssl-client-cert", encoded.to_string());
        }
        let answer: Value = request
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {answer}"))
            .to_owned();
        let token_type = answer["token_type"].as_str().unwrap_or_default().to_owned();
        (super::remember_secret(token), token_type)
    }

    /// Revokes `token` at the provider (RFC 7009), as its client.
    pub async fn revoke(&self, client: (&str, &str, &str), token: &str) {
        let status = self
            .http
            .post(self.url("/token/revocation"))
            .basic_auth(client.0, Some(client.1))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }

    /// A control request (`/control/...`): changes what the provider
    /// serves.
    pub async fn control(&self, path_and_query: &str) -> Value {
        self.http
            .post(self.url(path_and_query))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Publishes `jwk` (public) in the provider's key set.
    pub async fn publish(&self, jwk: &Value) {
        let status = self
            .http
            .post(self.url("/control/publish"))
            .body(jwk.to_string())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }

    /// How many requests of each kind wsgate made: `discovery`, `jwks`,
    /// `introspection`.
    pub async fn stats(&self) -> Value {
        self.control("/control/stats").await
    }

    /// The `kid`s the provider signs with now: `[ec, rsa]`.
    pub async fn kids(&self) -> Vec<String> {
        let answer = self.control("/control/kids").await;
        answer["kids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kid| kid.as_str().unwrap().to_owned())
            .collect()
    }
}

// ---------------------------------------------------------------------
// A site that trusts the provider: one gate over an `OidcVerifier`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::Algorithm;
use tokio_tungstenite::tungstenite::Message;
use wsgate::Gate;
use wsgate::audit::{AuditEvent, Auditor, EventKind};
use wsgate::oidc::{OidcProvider, OidcVerifier, OidcVerifierBuilder};
use wsgate::pipeline::{Requirement, RolePolicy};

use super::{Handshake, Keys, Outcome, connect, now, serve};

type Client = super::Client;

/// The scope policy of the demo: `admin.` messages need `chat:admin`,
/// every other needs `chat`.
pub fn scope_policy() -> RolePolicy {
    RolePolicy::by_type()
        .prefix("admin.", Requirement::any_scope(["chat:admin"]))
        .otherwise(Requirement::any_scope(["chat"]))
}

/// An application served by one gate over an [`OidcVerifier`], with local
/// tokens as the fallback and every audit event kept.
pub struct Site {
    pub addr: SocketAddr,
    pub keys: Keys,
    pub events: Arc<Mutex<Vec<AuditEvent>>>,
}

impl Site {
    pub async fn start(
        providers: &[&Idp],
        tune: impl FnOnce(OidcVerifierBuilder) -> OidcVerifierBuilder,
    ) -> Self {
        Self::start_with(providers, tune, |gate| gate).await
    }

    /// With the gate's settings changed by `tune_gate` too.
    pub async fn start_with(
        providers: &[&Idp],
        tune: impl FnOnce(OidcVerifierBuilder) -> OidcVerifierBuilder,
        tune_gate: impl FnOnce(wsgate::GateBuilder) -> wsgate::GateBuilder,
    ) -> Self {
        let keys = Keys::load();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let auditor = Auditor::new(move |event: &AuditEvent| {
            seen.lock().unwrap().push(event.clone());
        });
        let mut builder = OidcVerifier::builder()
            .fallback(keys.verifier())
            .audit(auditor.clone())
            .refetch_cooldown(Duration::from_secs(1));
        for provider in providers {
            builder = builder.provider(provider_of(provider));
        }
        let verifier = tune(builder).build().unwrap();
        let gate = tune_gate(Gate::builder(verifier).audit(auditor))
            .policy(scope_policy())
            .build()
            .unwrap();
        let handshake = gate
            .handshake()
            .application_protocols(["chat.v1"])
            .unwrap()
            .build()
            .unwrap();
        let router = Router::new()
            .route("/ws", get(super::welcome_then_echo))
            .route_layer(handshake)
            .with_state(gate);
        let addr = serve(router).await;
        Self { addr, keys, events }
    }

    pub async fn bearer(&self, token: &str) -> Outcome {
        connect(self.addr, &Handshake::to("/ws").bearer(token)).await
    }

    pub async fn subprotocol(&self, token: &str) -> Outcome {
        let offer = format!("chat.v1, wsgate.bearer.{token}");
        connect(
            self.addr,
            &Handshake::to("/ws").header("sec-websocket-protocol", offer),
        )
        .await
    }

    pub async fn open(&self, token: &str) -> Client {
        super::open_bearer(self.addr, token).await
    }

    /// A token of the provider's issuer signed by a key of the test's
    /// (never in the provider's set), under `kid` and `algorithm`.
    pub fn forged(&self, issuer: &str, algorithm: Algorithm, kid: &str) -> String {
        let claims = json!({
            "iss": issuer, "aud": AUDIENCE, "sub": "mallory",
            "iat": now(), "exp": now() + 300, "scope": "chat chat:admin",
        });
        self.keys.sign_with(algorithm, &claims, |header| {
            header.kid = Some(kid.to_owned());
        })
    }

    pub fn events(&self, kind: EventKind) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event.event == kind)
            .cloned()
            .collect()
    }

    /// Waits until a `keys` event satisfies `matches`.
    pub async fn wait_for_keys_event(&self, matches: impl Fn(&AuditEvent) -> bool) -> AuditEvent {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(event) = self.events(EventKind::Keys).into_iter().find(&matches) {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "no such keys event: {:?}",
                self.events(EventKind::Keys)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn provider_of(idp: &Idp) -> OidcProvider {
    OidcProvider::new(idp.issuer.clone())
        .audience(AUDIENCE)
        .token_type("at+jwt")
        .introspection(INTROSPECTOR.0, INTROSPECTOR.1)
}

/// A provider without introspection (one verifier may have only one that
/// introspects).
pub fn jwt_provider_of(idp: &Idp) -> OidcProvider {
    OidcProvider::new(idp.issuer.clone())
        .audience(AUDIENCE)
        .token_type("at+jwt")
}

pub fn sub_of(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Accepted { welcome, .. } => welcome["sub"].as_str().unwrap(),
        refused => panic!("refused: {refused:?}"),
    }
}

/// Status and body of a refusal (101 and the subject when accepted).
pub fn observed(outcome: &Outcome) -> (u16, String) {
    match outcome {
        Outcome::Accepted { welcome, .. } => (101, welcome["sub"].as_str().unwrap().to_owned()),
        Outcome::Refused { status, body, .. } => (*status, body.clone()),
    }
}

pub fn retry_after(outcome: &Outcome) -> Option<u64> {
    match outcome {
        Outcome::Refused { retry_after, .. } => {
            retry_after.as_deref().map(|value| value.parse().unwrap())
        }
        Outcome::Accepted { .. } => None,
    }
}

pub async fn send_json(client: &mut Client, value: Value) {
    client.send(Message::text(value.to_string())).await.unwrap();
}

pub async fn next_text(client: &mut Client) -> String {
    loop {
        match client.next().await {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

pub async fn close_of(client: &mut Client, within: Duration) -> (u16, String) {
    let closed = super::close_within(client, within).await;
    assert_ne!(closed.1, "still open", "closed in time");
    closed
}

/// The public JWK of the test's ES256 key, under `kid`: what an attacker
/// who runs a provider of their own publishes.
pub fn test_es256_jwk(kid: &str) -> Value {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let pem = pem::parse(super::fixture("es256-private.pem")).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pem.contents()).unwrap();
    let point = pair.public_key().as_ref();
    json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    })
}
