//! The metrics an operator alerts on, scraped from a Prometheus listener of
//! their own while handshakes are refused, sockets close and accounts lock.
//! (A test binary of its own: the metrics recorder is global to a process.)

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use common::dpop::ClientKey;
use common::{ALICE_PASSWORD, Handshake, Keys, basic, connect, serve};
use futures_util::{SinkExt, StreamExt};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tokio_tungstenite::tungstenite::Message;
use wsgate::audit::metrics::{HANDSHAKE_DURATION, HANDSHAKE_DURATION_BUCKETS};
use wsgate::authenticate::BasicAuthenticator;
use wsgate::limit::{FailureLimits, InMemoryFailureLimiter};
use wsgate::password::{Argon2id, PasswordVerifier};
use wsgate::socket::{GatedUpgrade, Limits};
use wsgate::store::InMemoryCredentialStore;
use wsgate::{Gate, Transport};

async fn echo(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |mut socket| async move {
        while let Some(message) = socket.recv().await {
            let _ = socket.send(message.into_message()).await;
        }
    })
}

/// What the listener serves, as `(series, value)` lines.
async fn scrape(metrics: SocketAddr) -> Vec<(String, f64)> {
    let body = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(scraped: &[(String, f64)], series: &str) -> f64 {
    scraped
        .iter()
        .find(|(name, _)| name == series)
        .map_or(0.0, |(_, value)| *value)
}

#[tokio::test]
async fn counters_move_as_handshakes_are_refused_and_sockets_close() {
    let metrics = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HANDSHAKE_DURATION.to_owned()),
            HANDSHAKE_DURATION_BUCKETS,
        )
        .unwrap()
        .with_http_listener(metrics)
        .install()
        .unwrap();
    wsgate::audit::metrics::describe();

    let keys = Keys::load();
    let passwords = PasswordVerifier::with_hasher(Argon2id::new(256, 1, 1).unwrap()).unwrap();
    let users = InMemoryCredentialStore::new();
    let hash = passwords.hash(&ALICE_PASSWORD.into()).await.unwrap();
    users.insert(
        "alice",
        wsgate::store::StoredUser::new("alice", hash).with_roles(["user"]),
    );
    let gate = Gate::builder(keys.verifier())
        .passwords(BasicAuthenticator::new(users, passwords))
        .failure_limiter(InMemoryFailureLimiter::with_limits(
            FailureLimits::default().account_threshold(2).unwrap(),
        ))
        .limits(Limits::default().max_message_bytes(64).unwrap())
        .max_sockets_per_subject(1)
        .unwrap()
        .build()
        .unwrap();
    let handshake = gate
        .handshake()
        .transports([Transport::Bearer, Transport::Basic])
        .allowed_origins(["http://app.test"])
        .unwrap()
        .build()
        .unwrap();
    let addr = serve(
        Router::new()
            .route("/ws", get(echo))
            .route_layer(handshake)
            .with_state(gate.clone()),
    )
    .await;

    let before = scrape(metrics).await;
    let missing =
        r#"wsgate_handshakes_total{outcome="deny",reason="missing credentials",transport="none"}"#;
    let accepted = r#"wsgate_handshakes_total{outcome="allow",transport="bearer"}"#;
    let wrong =
        r#"wsgate_handshakes_total{outcome="deny",reason="invalid credentials",transport="basic"}"#;
    let too_big = r#"wsgate_closes_total{code="1009"}"#;
    let too_many = r#"wsgate_handshakes_total{outcome="deny",reason="too many connections",transport="bearer"}"#;
    let authenticated = r#"wsgate_live_sockets{state="authenticated"}"#;

    // Three refusals without credentials.
    for _ in 0..3 {
        assert_eq!(connect(addr, &Handshake::to("/ws")).await.status(), 401);
    }
    // Two wrong passwords lock the account; the third attempt is a lockout.
    let guess = Handshake::to("/ws")
        .origin("http://app.test")
        .header("authorization", basic("alice", "not-her-password"));
    for expected in [401, 401, 429] {
        assert_eq!(connect(addr, &guess).await.status(), expected);
    }
    // A socket opens (the gauge rises), then sends too much and is closed.
    let url = format!("ws://{addr}/ws");
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", keys.token("bob")).parse().unwrap(),
    );
    let (mut client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let open = scrape(metrics).await;
    assert_eq!(
        value(&open, authenticated) - value(&before, authenticated),
        1.0
    );
    // bob's second socket is one over his limit.
    let second = Handshake::to("/ws").bearer(&keys.token("bob"));
    assert_eq!(connect(addr, &second).await.status(), 429);
    client.send(Message::text("x".repeat(65))).await.unwrap();
    while let Some(Ok(frame)) = client.next().await {
        if let Message::Close(frame) = frame {
            assert_eq!(frame.map(|frame| u16::from(frame.code)), Some(1009));
            break;
        }
    }
    // The driver records the close before it lets the socket go.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let after = scrape(metrics).await;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved(missing), 3.0);
    assert_eq!(moved(wrong), 2.0);
    assert_eq!(moved("wsgate_lockouts_total"), 1.0);
    assert_eq!(moved(accepted), 1.0);
    assert_eq!(moved(too_big), 1.0);
    assert_eq!(moved(too_many), 1.0);
    assert_eq!(
        moved(authenticated),
        0.0,
        "the closed socket left the gauge"
    );
    assert!(
        moved("wsgate_handshake_duration_seconds_count") >= 3.0,
        "every authentication is timed"
    );
    dpop_metrics(metrics, addr, &keys).await;
    certificate_metrics(metrics).await;
    identity_provider_metrics(metrics).await;

    // No label holds a subject, a token or an address.
    let after = scrape(metrics).await;
    for (series, _) in &after {
        assert!(
            !series.contains("alice")
                && !series.contains("bob")
                && !series.contains("carol")
                && !series.contains("chat-user")
                && !series.contains("127.0.0.1"),
            "{series}"
        );
    }
}

/// DPoP refusals by their reasons: a proof for another URL, and a good
/// proof shown twice (its first use opens a socket).
async fn dpop_metrics(metrics: SocketAddr, addr: SocketAddr, keys: &Keys) {
    let invalid =
        r#"wsgate_handshakes_total{outcome="deny",reason="invalid dpop proof",transport="bearer"}"#;
    let replay =
        r#"wsgate_handshakes_total{outcome="deny",reason="dpop replay",transport="bearer"}"#;
    let before = scrape(metrics).await;
    let key = ClientKey::es256();
    let mut claims = Keys::claims("carol");
    claims["cnf"] = serde_json::json!({"jkt": key.jkt()});
    let bound = keys.sign_with(jsonwebtoken::Algorithm::HS256, &claims, |_| {});
    let with_proof = |proof: &str| {
        Handshake::to("/ws")
            .header("authorization", format!("DPoP {bound}"))
            .header("dpop", proof)
    };
    let elsewhere = key.proof("ws://elsewhere.test/ws", Some(&bound));
    assert_eq!(connect(addr, &with_proof(&elsewhere)).await.status(), 401);

    let url = format!("ws://{addr}/ws");
    let proof = key.proof(&url, Some(&bound));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("authorization", format!("DPoP {bound}").parse().unwrap());
    headers.insert("dpop", proof.parse().unwrap());
    let (first, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    drop(first);
    assert_eq!(connect(addr, &with_proof(&proof)).await.status(), 401);

    let after = scrape(metrics).await;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved(invalid), 1.0);
    assert_eq!(moved(replay), 1.0);
}

/// Client certificates refused at the TLS layer (no HTTP request, no
/// audit event: only this counter), by reason; a certificate that
/// authenticates counts as transport `certificate`.
async fn certificate_metrics(metrics: SocketAddr) {
    use common::pki::{Authority, Kind, Leaf, connect_tls, serve_mtls};
    use wsgate::authenticate::CertificateAuthenticator;
    use wsgate::certificate::ClientCertificates;

    let refused = |reason: &str| {
        format!(r#"wsgate_tls_client_certificates_refused_total{{reason="{reason}"}}"#)
    };
    let accepted = r#"wsgate_handshakes_total{outcome="allow",transport="certificate"}"#;
    let before = scrape(metrics).await;
    let ca = Authority::new("metrics CA");
    let other = Authority::new("another CA");
    let revoked = ca.leaf("dave", &[], Kind::Client);
    let trust = ClientCertificates::builder(ca.pem.as_bytes())
        .unwrap()
        .crls(ca.crl(&[&revoked]).as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let server = Leaf::server();
    let gate = Gate::builder(Keys::load().verifier())
        .authenticator(CertificateAuthenticator::new())
        .build()
        .unwrap();
    let handshake = gate
        .handshake()
        .transports([Transport::Certificate])
        .allowed_origins(["https://app.example"])
        .unwrap()
        .build()
        .unwrap();
    let router = Router::new()
        .route("/ws", get(echo))
        .route_layer(handshake)
        .with_state(gate);
    let addr = serve_mtls(router, &server, trust).await;
    let open = |client: Leaf| {
        let server = &server;
        async move {
            let handshake = Handshake::to("/ws").origin("https://app.example");
            connect_tls(addr, server, Some(&client), &handshake)
                .await
                .map(drop)
        }
    };
    assert!(open(ca.leaf("dave", &[], Kind::Client)).await.is_ok());
    for leaf in [
        other.leaf("dave", &[], Kind::Client),
        Leaf::self_signed("dave"),
        ca.leaf("dave", &[], Kind::Expired),
        revoked,
        ca.leaf("dave", &[], Kind::ServerOnly),
    ] {
        assert!(open(leaf).await.is_err());
    }
    let after = scrape(metrics).await;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved(&refused("unknown issuer")), 2.0);
    assert_eq!(moved(&refused("expired")), 1.0);
    assert_eq!(moved(&refused("revoked")), 1.0);
    assert_eq!(moved(&refused("wrong usage")), 1.0);
    assert_eq!(moved(accepted), 1.0);
}

/// Key fetches (with the keys they added) and introspections by outcome,
/// when a real provider can run here.
async fn identity_provider_metrics(metrics: SocketAddr) {
    use common::idp::{CHAT_USER, ES256, Idp, OPAQUE, Site, observed, sub_of};
    let Some(provider) = Idp::start().await else {
        return;
    };
    let before = scrape(metrics).await;
    let site = Site::start(&[&provider], |builder| builder).await;
    let token = provider.token(CHAT_USER, ES256).await;
    assert_eq!(sub_of(&site.bearer(&token).await), "chat-user");
    let opaque = provider.token(CHAT_USER, OPAQUE).await;
    assert_eq!(sub_of(&site.bearer(&opaque).await), "chat-user");
    let revoked = provider.token(CHAT_USER, OPAQUE).await;
    provider.revoke(CHAT_USER, &revoked).await;
    assert_eq!(observed(&site.bearer(&revoked).await).0, 401);
    provider.control("/control/introspection?mode=error").await;
    let failing = provider.token(CHAT_USER, OPAQUE).await;
    assert_eq!(observed(&site.bearer(&failing).await).0, 503);

    let after = scrape(metrics).await;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(
        moved(r#"wsgate_key_fetches_total{outcome="success",trigger="startup"}"#),
        1.0
    );
    assert_eq!(moved(r#"wsgate_keys_changed_total{change="added"}"#), 2.0);
    for outcome in ["active", "inactive", "error"] {
        let series = format!(r#"wsgate_introspections_total{{outcome="{outcome}"}}"#);
        assert_eq!(moved(&series), 1.0, "{series}");
    }
}
