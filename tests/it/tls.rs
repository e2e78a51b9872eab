//! A gated WebSocket over TLS 1.3 with a certificate made at test time:
//! `require_secure_transport` accepts it, and a TLS 1.2 client is refused.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::common::{Keys, welcome};
use axum::Router;
use axum::routing::get;
use futures_util::StreamExt;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsgate::Transport;
use wsgate::authenticate::BearerAuthenticator;
use wsgate::handshake::{HandshakeLayer, SecureTransport};

struct Certificate {
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn certificate() -> Certificate {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Certificate {
        der: generated.cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der()).into(),
    }
}

/// Serves `router` over TLS 1.3 only, marking every request as secure.
async fn serve_tls(router: Router, certificate: &Certificate) -> SocketAddr {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt as _;

    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut config =
        rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
            .with_no_client_auth()
            .with_single_cert(vec![certificate.der.clone()], certificate.key.clone_key())
            .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = router.map_request(
                    move |mut request: axum::http::Request<hyper::body::Incoming>| {
                        request
                            .extensions_mut()
                            .insert(axum::extract::ConnectInfo(peer));
                        request.extensions_mut().insert(SecureTransport);
                        request
                    },
                );
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(
                        TokioIo::new(stream),
                        TowerToHyperService::new(service),
                    )
                    .await;
            });
        }
    });
    addr
}

fn client_config(
    certificate: &Certificate,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Connector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots)
        .with_no_client_auth();
    Connector::Rustls(Arc::new(config))
}

#[tokio::test]
async fn wss_with_a_certificate_made_at_test_time() {
    let certificate = certificate();
    let keys = Keys::load();
    let gate = HandshakeLayer::builder(BearerAuthenticator::new(keys.verifier()))
        .transports([Transport::Bearer, Transport::Subprotocol])
        .application_protocols(["chat.v1"])
        .unwrap()
        .require_secure_transport(true)
        .build()
        .unwrap();
    let addr = serve_tls(
        Router::new().route("/ws", get(welcome)).route_layer(gate),
        &certificate,
    )
    .await;
    let token = keys.token("alice");

    let mut request = format!("wss://localhost:{}/ws", addr.port())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("chat.v1, wsgate.bearer.{token}").parse().unwrap(),
    );
    let tls13 = client_config(&certificate, &[&rustls::version::TLS13]);
    let (mut client, response) =
        tokio_tungstenite::connect_async_tls_with_config(request.clone(), None, false, Some(tls13))
            .await
            .unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v1");
    let welcome: serde_json::Value =
        serde_json::from_str(client.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(welcome["sub"], "alice");
    assert_eq!(welcome["transport"], "subprotocol");

    // TLS 1.2 is not offered by the server.
    let tls12 = client_config(&certificate, &[&rustls::version::TLS12]);
    let refused =
        tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(tls12)).await;
    assert!(refused.is_err(), "a TLS 1.2 client was served");
}
