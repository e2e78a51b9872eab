//! Certificates made at test time with rcgen: a CA, client certificates
//! of every kind a server must tell apart, a revocation list, and TLS
//! client settings that present them.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};
use tokio_tungstenite::Connector;

/// A certificate authority.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
    pub der: CertificateDer<'static>,
    next_serial: std::sync::atomic::AtomicU64,
}

/// A certificate with its key.
#[derive(Clone)]
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub key_pem: String,
    key: Arc<PrivatePkcs8KeyDer<'static>>,
    serial: u64,
}

/// What kind of client certificate to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Valid now, for client authentication.
    Client,
    /// Ended yesterday.
    Expired,
    /// Starts tomorrow.
    NotYetValid,
    /// Only for server authentication.
    ServerOnly,
    /// Valid until `seconds` from now.
    EndsIn(i64),
}

impl Authority {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = OffsetDateTime::now_utc() - Duration::days(30);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(365);
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        Self {
            pem: certificate.pem(),
            der: certificate.der().clone(),
            issuer: Issuer::new(params, key),
            next_serial: std::sync::atomic::AtomicU64::new(100),
        }
    }

    /// A certificate for Common Name `common_name` (and `sans`, URIs
    /// when they start with `spiffe:`, emails with an `@`, else DNS names).
    pub fn leaf(&self, common_name: &str, sans: &[&str], kind: Kind) -> Leaf {
        let serial = self
            .next_serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let params = leaf_params(common_name, sans, kind, serial);
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        Leaf::new(certificate.der().clone(), certificate.pem(), &key, serial)
    }

    /// A revocation list naming `revoked`.
    pub fn crl(&self, revoked: &[&Leaf]) -> String {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::hours(1),
            next_update: now + Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|leaf| RevokedCertParams {
                    serial_number: SerialNumber::from(leaf.serial),
                    revocation_time: now - Duration::minutes(5),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().pem().unwrap()
    }
}

fn leaf_params(common_name: &str, sans: &[&str], kind: Kind, serial: u64) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    for san in sans {
        params
            .subject_alt_names
            .push(if san.starts_with("spiffe:") {
                SanType::URI(san.to_string().try_into().unwrap())
            } else if san.contains('@') {
                SanType::Rfc822Name(san.to_string().try_into().unwrap())
            } else {
                SanType::DnsName(san.to_string().try_into().unwrap())
            });
    }
    params.serial_number = Some(SerialNumber::from(serial));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(30);
    match kind {
        Kind::Client => {}
        Kind::Expired => {
            params.not_before = now - Duration::days(10);
            params.not_after = now - Duration::days(1);
        }
        Kind::NotYetValid => {
            params.not_before = now + Duration::days(1);
            params.not_after = now + Duration::days(10);
        }
        Kind::ServerOnly => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        Kind::EndsIn(seconds) => params.not_after = now + Duration::seconds(seconds),
    }
    params
}

impl Leaf {
    fn new(der: CertificateDer<'static>, pem: String, key: &KeyPair, serial: u64) -> Self {
        Self {
            der,
            pem,
            key_pem: key.serialize_pem(),
            key: Arc::new(PrivatePkcs8KeyDer::from(key.serialize_der())),
            serial,
        }
    }

    /// A self-signed client certificate: no CA vouches for it.
    pub fn self_signed(common_name: &str) -> Self {
        let params = leaf_params(common_name, &[], Kind::Client, 1);
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        Leaf::new(certificate.der().clone(), certificate.pem(), &key, 1)
    }

    /// A server certificate for `localhost`, self-signed.
    pub fn server() -> Self {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        Leaf::new(
            generated.cert.der().clone(),
            generated.cert.pem(),
            &generated.signing_key,
            2,
        )
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.as_ref().clone_key())
    }

    /// The RFC 8705 thumbprint: base64url SHA-256 of the DER.
    pub fn thumbprint(&self) -> String {
        wsgate::certificate::ClientCertificate::from_chain([self.der.to_vec()])
            .unwrap()
            .thumbprint()
            .to_owned()
    }

    /// The fingerprint the audit writes: lowercase hex SHA-256 of the DER.
    pub fn fingerprint(&self) -> String {
        wsgate::certificate::ClientCertificate::from_chain([self.der.to_vec()])
            .unwrap()
            .fingerprint()
    }
}

/// TLS 1.3 client settings trusting `server`, presenting `client` if any.
pub fn connector(server: &Leaf, client: Option<&Leaf>) -> Connector {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.der.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_root_certificates(roots);
    let config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(vec![leaf.der.clone()], leaf.key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Connector::Rustls(Arc::new(config))
}

/// Serves `router` over TLS 1.3 with `server`'s certificate through
/// wsgate's `Serving`, asking for the client certificates `trust`
/// believes.
pub async fn serve_mtls(
    router: axum::Router,
    server: &Leaf,
    trust: wsgate::certificate::ClientCertificates,
) -> std::net::SocketAddr {
    use wsgate::serve::{ServerTls, Serving};
    let tls = ServerTls::builder(server.pem.as_bytes(), server.key_pem.as_bytes())
        .unwrap()
        .client_certificates(trust)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Serving::new()
            .tls(tls)
            .serve(listener, router, std::future::pending()),
    );
    addr
}

/// A client socket over TLS.
pub type TlsClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `handshake` to a server of [`serve_mtls`] at `addr`, trusting `server`
/// and presenting `client`: the socket and the answer, or the error (a
/// refusal over HTTP, or a TLS handshake the server ended).
pub async fn connect_tls(
    addr: std::net::SocketAddr,
    server: &Leaf,
    client: Option<&Leaf>,
    handshake: &crate::clients::Handshake,
) -> Result<
    (
        TlsClient,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let base = format!("wss://localhost:{}", addr.port());
    let request = crate::clients::handshake_request(&base, handshake);
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async_tls_with_config(
        request,
        stream,
        None,
        Some(connector(server, client)),
    )
    .await
}
