//! Tokens from identity providers: JWKS and introspection.

use super::*;

use common::provider::{IDP_AUDIENCE, IDP_KID, bench_provider};

/// Handshake latencies: `clients` clients connecting one after another for
/// `window`.
pub(crate) async fn handshake_latencies(
    addr: SocketAddr,
    path: &'static str,
    token: String,
    clients: usize,
    window: Duration,
) -> Vec<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, headers) = (stop.clone(), bearer(&token));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    if connect_to_drop(addr, path, &headers).await.is_ok() {
                        latencies.push(started.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// Provider tokens against the same tokens with a locally configured key;
/// the p99 while the keys are refreshed in the background against a calm
/// p99; introspected tokens with a warm cache against local HS256.
pub(crate) async fn identity_providers(plan: &Plan) {
    use wsgate::oidc::{OidcProvider, OidcVerifier};
    let (calm_issuer, _) = bench_provider(600).await;
    let (busy_issuer, busy_fetches) = bench_provider(1).await;
    let oidc = |issuer: &str, refresh: Duration| {
        OidcVerifier::builder()
            .provider(
                OidcProvider::new(issuer)
                    .audience(IDP_AUDIENCE)
                    .introspection("bench", "bench-secret"),
            )
            .key_lifetime(Duration::from_secs(600), refresh, Duration::from_secs(3600))
            .build()
            .unwrap()
    };
    let (signing, verification) =
        KeyPair::from_private_pem(wsgate_testkit::fixtures::jwt("es256-private.pem"))
            .unwrap()
            .with_kid(IDP_KID)
            .into_parts();
    let local_es256 = JwtVerifier::builder()
        .key(verification)
        .issuer(calm_issuer.clone())
        .audience(IDP_AUDIENCE)
        .build()
        .unwrap();
    let (hs_signing, hs_verification) = KeyPair::hmac(&[7; 32], Algorithm::HS256)
        .unwrap()
        .into_parts();
    let local_hs256 = JwtVerifier::builder()
        .key(hs_verification)
        .audience(IDP_AUDIENCE)
        .build()
        .unwrap();
    let gate_route = |path: &str, verifier: wsgate::BoxedVerifier| {
        let gate = Gate::builder(verifier).build().unwrap();
        let handshake = gate
            .handshake()
            .transports([Transport::Bearer])
            .build()
            .unwrap();
        route(path, gate.sockets().clone(), handshake)
    };
    let router = gate_route("/ws/local-es256", wsgate::BoxedVerifier::new(local_es256))
        .merge(gate_route(
            "/ws/oidc",
            wsgate::BoxedVerifier::new(oidc(&calm_issuer, Duration::from_secs(60))),
        ))
        .merge(gate_route(
            "/ws/oidc-refreshing",
            wsgate::BoxedVerifier::new(oidc(&busy_issuer, Duration::from_secs(1))),
        ))
        .merge(gate_route(
            "/ws/hs256",
            wsgate::BoxedVerifier::new(local_hs256),
        ));
    let addr = serve(router).await;

    let principal = Principal::new("bench", AuthMethod::Token).with_roles(["user"]);
    let issue = |issuer: &str, signing: wsgate::jwt::SigningKey| {
        JwtIssuer::builder(signing)
            .issuer(issuer)
            .audience(IDP_AUDIENCE)
            .build()
            .issue_token(&principal)
            .unwrap()
            .token()
            .expose()
            .to_owned()
    };
    let calm_token = issue(&calm_issuer, signing.clone());
    let busy_token = issue(&busy_issuer, signing.clone());
    let hs_token = issue("bench", hs_signing);
    let opaque = "opaque-bench-token-0123456789".to_owned();
    // Warm both caches (keys, and the introspection answer).
    for (path, token) in [
        ("/ws/oidc", &calm_token),
        ("/ws/oidc", &opaque),
        ("/ws/oidc-refreshing", &busy_token),
    ] {
        connect(addr, path, &bearer(token)).await.unwrap();
    }

    let kinds: [(&str, &'static str, &String); 4] = [
        ("ES256, local key", "/ws/local-es256", &calm_token),
        ("ES256, provider key (JWKS cache)", "/ws/oidc", &calm_token),
        ("HS256, local key", "/ws/hs256", &hs_token),
        ("opaque, introspected (warm cache)", "/ws/oidc", &opaque),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for _ in 0..plan.rounds.max(3) {
        for (index, (_, path, token)) in kinds.iter().enumerate() {
            let (path, token): (&'static str, String) = (path, (*token).clone());
            rates[index].push(
                handshakes(addr, plan.handshake_window, move || {
                    (path.to_owned(), bearer(&token))
                })
                .await,
            );
        }
    }
    let rates: Vec<f64> = rates.into_iter().map(median).collect();
    println!(
        "\n## Identity providers: handshakes per second (32 clients, median of {} rounds)",
        plan.rounds.max(3)
    );
    for ((name, _, _), rate) in kinds.iter().zip(&rates) {
        println!("{name:<36} {rate:>10.0}");
    }
    println!(
        "provider ES256 / local ES256: {:.3}   introspected (warm) / local HS256: {:.3}",
        rates[1] / rates[0],
        rates[3] / rates[2]
    );

    // p99 under steady load: keys that stay fresh, against keys refreshed
    // in the background about every 0.75 s (max-age 1 s).
    let window = plan.handshake_window * 4;
    let mut calm = Vec::new();
    let mut busy = Vec::new();
    let fetches_before = busy_fetches.load(Ordering::Relaxed);
    for _ in 0..plan.rounds.max(3) {
        calm.extend(handshake_latencies(addr, "/ws/oidc", calm_token.clone(), 8, window).await);
        busy.extend(
            handshake_latencies(addr, "/ws/oidc-refreshing", busy_token.clone(), 8, window).await,
        );
    }
    let refreshes = busy_fetches.load(Ordering::Relaxed) - fetches_before;
    let calm_p99 = percentile(&mut calm, 0.99);
    let busy_p99 = percentile(&mut busy, 0.99);
    println!(
        "p99 handshake (8 clients): calm {calm_p99:?}, during {refreshes} background key refreshes {busy_p99:?}, ratio {:.2}",
        busy_p99.as_secs_f64() / calm_p99.as_secs_f64()
    );
}
