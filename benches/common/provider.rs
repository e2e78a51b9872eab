//! A provider on loopback for the benchmarks: discovery, a JWKS, and an
//! introspection endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use axum::Router;
use axum::routing::get;
use wsgate::jwt::Algorithm;

pub const IDP_KID: &str = "idp-es256";
pub const IDP_AUDIENCE: &str = "bench";

/// A provider on loopback for the benchmark: discovery, a JWKS holding the
/// ES256 fixture key with `Cache-Control: max-age=<max_age>`, and an
/// introspection endpoint that answers `active` for every token. (The
/// tests use a real provider; here the provider's own speed must not be
/// part of what is measured, only wsgate's cache in front of it.)
pub async fn bench_provider(max_age: u64) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let signing =
        jsonwebtoken::EncodingKey::from_ec_pem(wsgate_testkit::fixtures::jwt("es256-private.pem"))
            .unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(IDP_KID.to_owned());
    let jwks = serde_json::json!({ "keys": [jwk] }).to_string();
    let fetches = Arc::new(AtomicU64::new(0));
    let counted = fetches.clone();
    let discovery = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "introspection_endpoint": format!("{issuer}/introspect"),
    })
    .to_string();
    let router = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || std::future::ready(discovery.clone())),
        )
        .route(
            "/jwks",
            get(move || {
                counted.fetch_add(1, Ordering::Relaxed);
                std::future::ready((
                    [(http::header::CACHE_CONTROL, format!("max-age={max_age}"))],
                    jwks.clone(),
                ))
            }),
        )
        .route(
            "/introspect",
            axum::routing::post(|| async {
                let exp = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
                    + 600;
                serde_json::json!({
                    "active": true, "sub": "bench", "scope": "chat", "exp": exp, "aud": IDP_AUDIENCE,
                })
                .to_string()
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (issuer, fetches)
}
