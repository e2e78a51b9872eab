//! What a whole connection costs over mutual TLS beside plain TLS: TCP
//! connect, the TLS 1.3 handshake, the WebSocket upgrade through a gate's
//! handshake layer, the `101`, and the close, client and server on one
//! runtime in this process (so each figure is both sides' work). Run with
//! `cargo bench --bench tls`.
//!
//! - `tls_bearer`: the server asks for no certificate; the client sends
//!   a fresh ES256 token in `Authorization: Bearer`.
//! - `mtls_bearer`: the server asks for certificates; the client has none
//!   and sends the token (what asking costs the clients that decline).
//! - `mtls_certificate`: the client presents a certificate (ECDSA P-256,
//!   from a CA of the server's) and nothing else: transport `certificate`.
//! - `mtls_bound`: the certificate and a fresh ES256 token bound to it
//!   (`cnf.x5t#S256`).
//!
//! Each in two groups: `handshake_tls_full` (no resumption: every
//! certificate checked, every handshake signature made) and
//! `handshake_tls_resumed` (TLS 1.3 resumption, clients' default).
//!
//! Every certificate, key and token is made here, at start (rcgen) or in
//! the untimed setup of each connection (the tokens), so the binary needs
//! nothing from the source tree.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use criterion::{BatchSize, Criterion, criterion_group};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use wsgate::authenticate::CertificateAuthenticator;
use wsgate::certificate::{ClientCertificate, ClientCertificates};
use wsgate::confirmation::Confirmation;
use wsgate::jwt::{JwtIssuer, KeyPair as JwtKeyPair};
use wsgate::serve::{ServerTls, Serving};
use wsgate::socket::GatedUpgrade;
use wsgate::{AuthMethod, Gate, Principal, Transport};

const ORIGIN: &str = "https://app.example";

/// A CA, the server's certificate, a client's certificate (all ECDSA
/// P-256), and the PEM a server needs.
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_pem: String,
    server_key_pem: String,
    client_der: CertificateDer<'static>,
    client_key: PrivatePkcs8KeyDer<'static>,
}

fn pki() -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "bench CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_certificate = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().unwrap();
    let server_certificate = server.signed_by(&server_key, &issuer).unwrap();

    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, "device-1");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().unwrap();
    let client_certificate = client.signed_by(&client_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_certificate.pem(),
        ca_der: ca_certificate.der().clone(),
        server_pem: server_certificate.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_der: client_certificate.der().clone(),
        client_key: PrivatePkcs8KeyDer::from(client_key.serialize_der()),
    }
}

async fn accept(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
    upgrade.on_upgrade(&gate, |_socket| async {})
}

/// Serves a gate over TLS (asking for client certificates when
/// `mutual`): ES256 tokens of `verification`, certificates of the CA.
async fn server(pki: &Pki, verification: wsgate::jwt::VerificationKey, mutual: bool) -> SocketAddr {
    let verifier = wsgate::jwt::JwtVerifier::builder()
        .key(verification)
        .build()
        .unwrap();
    let gate = Gate::builder(verifier)
        .authenticator(CertificateAuthenticator::new())
        .build()
        .unwrap();
    let handshake = gate
        .handshake()
        .transports([Transport::Bearer, Transport::Certificate])
        .allowed_origins([ORIGIN])
        .unwrap()
        .build()
        .unwrap();
    let router = Router::new()
        .route("/ws", get(accept))
        .route_layer(handshake)
        .with_state(gate);
    let mut tls =
        ServerTls::builder(pki.server_pem.as_bytes(), pki.server_key_pem.as_bytes()).unwrap();
    if mutual {
        let trust = ClientCertificates::builder(pki.ca_pem.as_bytes())
            .unwrap()
            .build()
            .unwrap();
        tls = tls.client_certificates(trust);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Serving::new().tls(tls.build().unwrap()).serve(
        listener,
        router,
        std::future::pending(),
    ));
    addr
}

/// A client's TLS settings; `resume`: keep sessions for resumption (as
/// clients do by default), else every connection is a full handshake.
fn connector(pki: &Pki, certificate: bool, resume: bool) -> Connector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_root_certificates(roots);
    let mut config = if certificate {
        builder
            .with_client_auth_cert(
                vec![pki.client_der.clone()],
                PrivateKeyDer::Pkcs8(pki.client_key.clone_key()),
            )
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Connector::Rustls(Arc::new(config))
}

/// One connection: TCP, TLS, the upgrade (with `token` as Bearer, if
/// any), the `101`, then gone without a TIME_WAIT (linger 0), so a long
/// run never runs out of ports.
async fn connect(addr: SocketAddr, connector: Connector, token: Option<String>) {
    let mut request = format!("wss://localhost:{}/ws", addr.port())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", ORIGIN.parse().unwrap());
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_zero_linger().unwrap();
    let (socket, response) =
        tokio_tungstenite::client_async_tls_with_config(request, stream, None, Some(connector))
            .await
            .unwrap();
    assert_eq!(response.status(), 101);
    drop(black_box(socket));
}

/// What a connection's request carries besides its certificate.
#[derive(Clone, Copy)]
enum Credential {
    Bearer,
    Bound,
    None,
}

fn tls(c: &mut Criterion) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pki = pki();
    let thumbprint = ClientCertificate::from_chain([pki.client_der.to_vec()])
        .unwrap()
        .thumbprint()
        .to_owned();
    // The token signing key, made here (ES256).
    let signing_key = KeyPair::generate().unwrap();
    let pair = JwtKeyPair::from_private_pem(signing_key.serialize_pem().as_bytes()).unwrap();
    let (signing, verification) = pair.into_parts();
    let issuer = JwtIssuer::builder(signing).build();
    let principal = Principal::new("device-1", AuthMethod::Token);
    let bearer = || {
        let issued = issuer.issue_token(&principal).unwrap();
        Some(issued.token().expose().to_owned())
    };
    let bound = || {
        let confirmation = Confirmation::default().with_certificate(thumbprint.clone());
        let issued = issuer
            .issue_confirmed_token(&principal, &confirmation)
            .unwrap();
        Some(issued.token().expose().to_owned())
    };
    let (plain, mutual) = runtime.block_on(async {
        (
            server(&pki, verification.clone(), false).await,
            server(&pki, verification, true).await,
        )
    });
    // Full handshakes first (every certificate checked, every signature
    // made), then resumed ones (TLS 1.3 PSK: no certificate crosses the
    // wire again; the server keeps the verified one of the first).
    for (group, resume) in [
        ("handshake_tls_full", false),
        ("handshake_tls_resumed", true),
    ] {
        let without = connector(&pki, false, resume);
        let with = connector(&pki, true, resume);
        let mut group = c.benchmark_group(group);
        // (name, server, client settings, the credential in the request)
        let variants = [
            ("tls_bearer", plain, &without, Credential::Bearer),
            ("mtls_bearer", mutual, &without, Credential::Bearer),
            ("mtls_certificate", mutual, &with, Credential::None),
            ("mtls_bound", mutual, &with, Credential::Bound),
        ];
        for (name, addr, client, credential) in variants {
            group.bench_function(name, |bench| {
                bench.iter_batched(
                    // Every variant makes a token in its untimed setup,
                    // used or not.
                    || match credential {
                        Credential::Bearer => bearer(),
                        Credential::Bound => bound(),
                        Credential::None => black_box(bearer()).and(None),
                    },
                    |token| runtime.block_on(connect(addr, client.clone(), token)),
                    BatchSize::SmallInput,
                );
            });
        }
        group.finish();
    }
}

criterion_group!(benches, tls);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
