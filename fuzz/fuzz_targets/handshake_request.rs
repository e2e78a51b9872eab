//! Credential parsing at the handshake: Authorization (Bearer, Basic), the
//! subprotocol list, cookies, the query string, Origin, forwarded headers,
//! certificates forwarded by a proxy (Envoy's `X-Forwarded-Client-Cert`).
//!
//! Input: a request line's target on the first line, then `name: value`
//! header lines. A header `x-fuzz-peer` makes the request come from the
//! trusted proxy (127.0.0.1), so its forwarded headers are read. Whatever comes in, the layer answers with one of its
//! statuses (or lets the request through) and never panics.
#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;

use axum::body::Body;
use axum::response::Response;
use libfuzzer_sys::fuzz_target;
use tower::{ServiceBuilder, ServiceExt as _};
use wsgate::wiring::Wiring;
use wsgate::Transport;
use wsgate::authenticate::{Authenticator, BasicAuthenticator, BearerAuthenticator};
use wsgate::certificate::{ForwardedCertificateHeader, ForwardedCertificates};
use wsgate::handshake::HandshakeLayer;
use wsgate::jwt::{Algorithm, JwtVerifier, VerificationKey};
use wsgate::password::{Argon2id, PasswordVerifier};
use wsgate::store::InMemoryCredentialStore;
use wsgate::ticket::Tickets;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or("/");
    let mut builder = http::Request::get(if target.starts_with('/') { target } else { "/" });
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            builder = builder.header(name.trim(), value.trim());
        }
    }
    let Ok(mut request) = builder.body(Body::empty()) else {
        return;
    };
    if request.headers().contains_key("x-fuzz-peer") {
        let proxy = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        request.extensions_mut().insert(axum::extract::ConnectInfo(proxy));
    }
    let status = runtime().block_on(async {
        let verifier = JwtVerifier::builder()
            .key(VerificationKey::hmac(&[7; 32], Algorithm::HS256).unwrap())
            .build()
            .unwrap();
        let users = InMemoryCredentialStore::new();
        // Cheap parameters: the fuzzer is after parsing, not hashing cost.
        let passwords = PasswordVerifier::with_hasher(Argon2id::new(8, 1, 1).unwrap()).unwrap();
        let authenticator = BearerAuthenticator::new(verifier)
            .or(BasicAuthenticator::new(users, passwords))
            .or(Tickets::in_memory());
        let layer = HandshakeLayer::builder(authenticator)
            .transports([
                Transport::Bearer,
                Transport::Basic,
                Transport::Subprotocol,
                Transport::Ticket,
                Transport::Cookie,
                Transport::Certificate,
            ])
            .allowed_origins(["https://app.example", "http://127.0.0.1:3000"])
            .unwrap()
            .application_protocols(["chat.v1"])
            .unwrap()
            .wiring(
                &Wiring::default()
                    .trusted_proxies(["127.0.0.1".parse().unwrap()])
                    .forwarded_certificates(ForwardedCertificates::new(
                        ForwardedCertificateHeader::EnvoyXfcc,
                    )),
            )
            .build()
            .unwrap();
        let inner = tower::service_fn(|_request: http::Request<Body>| async {
            Ok::<Response, Infallible>(Response::new(Body::empty()))
        });
        let service = ServiceBuilder::new().layer(layer).service(inner);
        service.oneshot(request).await.unwrap().status().as_u16()
    });
    assert!(
        matches!(status, 200 | 400 | 401 | 403 | 429 | 503),
        "unexpected status {status}"
    );
});
