//! An application served over an [`OidcVerifier`] for the OpenID provider
//! tests; the provider itself is the test kit's.

pub use wsgate_testkit::idp::*;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

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

/// The sites' refetch cooldown: short, so that a test waits it out in a
/// fraction of a second.
pub const COOLDOWN: Duration = Duration::from_millis(200);

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
            .refetch_cooldown(COOLDOWN);
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

    /// Shows `token` until a socket opens (its keys fetched once the
    /// cooldown allows), within 10 s; the subject it opened as.
    pub async fn eventually_accepts(&self, token: &str) -> String {
        super::eventually("the token accepted", Duration::from_secs(10), || async {
            match self.bearer(token).await {
                Outcome::Accepted { welcome, .. } => Some(welcome["sub"].as_str()?.to_owned()),
                Outcome::Refused { .. } => None,
            }
        })
        .await
    }

    /// Waits out the refetch cooldown: an unknown `kid` shown after it
    /// starts a refetch.
    pub async fn past_cooldown(&self) {
        tokio::time::sleep(COOLDOWN + Duration::from_millis(50)).await;
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
    let pem = pem::parse(wsgate_testkit::fixtures::jwt("es256-private.pem")).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pem.contents()).unwrap();
    let point = pair.public_key().as_ref();
    json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    })
}
