//! TLS 1.3 for [`Serving`](crate::serve::Serving), with client
//! certificates.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{CertificateError, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::audit::metrics;
use crate::certificate::{ClientCertificate, ClientCertificates};
use crate::error::ConfigError;
use crate::serve::Connection;

/// The server's TLS: TLS 1.3 only, ALPN `http/1.1` (WebSocket upgrades
/// need it), rustls with aws-lc-rs. Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    client_certificates: Option<ClientCertificates>,
}

/// Builds a [`ServerTls`].
#[must_use]
pub struct ServerTlsBuilder {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_certificates: Option<ClientCertificates>,
}

impl ServerTls {
    /// Starts with the server's certificate chain and private key, PEM.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Tls`] when `chain` holds no certificate or `key` no
    /// private key.
    pub fn builder(chain: &[u8], key: &[u8]) -> Result<ServerTlsBuilder, ConfigError> {
        let chain = CertificateDer::pem_slice_iter(chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| ConfigError::Tls(format!("server certificate: {error}")))?;
        if chain.is_empty() {
            return Err(ConfigError::Tls("no server certificate".to_owned()));
        }
        // The parser's error names the PEM problem, never the key's bytes.
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|error| ConfigError::Tls(format!("server key: {error}")))?;
        Ok(ServerTlsBuilder {
            chain,
            key,
            client_certificates: None,
        })
    }

    /// Accepts a TLS connection within `timeout`; `None` when it fails
    /// (counted, when a client certificate was the cause).
    pub(super) async fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        timeout: Duration,
    ) -> Option<(TlsStream<TcpStream>, Connection)> {
        let stream = match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                let refused = error
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .and_then(certificate_refusal);
                match refused {
                    Some(reason) => {
                        metrics::tls_client_certificate_refused(reason);
                        tracing::info!(target: "wsgate::serve", %peer, reason, "client certificate refused");
                    }
                    None => {
                        tracing::debug!(target: "wsgate::serve", %peer, %error, "TLS handshake failed")
                    }
                }
                return None;
            }
            Err(_) => {
                tracing::debug!(target: "wsgate::serve", %peer, "TLS handshake timed out");
                return None;
            }
        };
        let certificate = self
            .client_certificates
            .as_ref()
            .and_then(|_| stream.get_ref().1.peer_certificates())
            .and_then(|chain| ClientCertificate::from_chain(chain.iter().map(|der| der.to_vec())));
        let connection = Connection {
            peer,
            secure: true,
            certificate,
        };
        Some((stream, connection))
    }
}

/// The fixed phrase of a TLS failure caused by the client's certificate.
fn certificate_refusal(error: &rustls::Error) -> Option<&'static str> {
    let rustls::Error::InvalidCertificate(error) = error else {
        return None;
    };
    Some(match error {
        CertificateError::UnknownIssuer => "unknown issuer",
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not yet valid"
        }
        CertificateError::Revoked => "revoked",
        CertificateError::UnknownRevocationStatus | CertificateError::ExpiredRevocationList => {
            "revocation status unknown"
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "wrong usage"
        }
        _ => "invalid",
    })
}

impl ServerTlsBuilder {
    /// Asks every client for a certificate and believes those
    /// `certificates` accept; a client without one goes on (it
    /// authenticates by another transport), a client with any other ends
    /// its TLS handshake. The verified certificate is put into each
    /// request of the connection as a
    /// [`ClientCertificate`].
    pub fn client_certificates(mut self, certificates: ClientCertificates) -> Self {
        self.client_certificates = Some(certificates);
        self
    }

    /// Finishes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Tls`] when the key does not fit the certificate or
    /// rustls cannot use it.
    pub fn build(self) -> Result<ServerTls, ConfigError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|error| ConfigError::Tls(error.to_string()))?;
        let builder = match &self.client_certificates {
            Some(certificates) => builder.with_client_cert_verifier(certificates.verifier()),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(self.chain, self.key)
            .map_err(|error| ConfigError::Tls(format!("server certificate and key: {error}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            client_certificates: self.client_certificates,
        })
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_certificates", &self.client_certificates)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ServerTlsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsBuilder")
            .field("chain", &self.chain.len())
            .field("client_certificates", &self.client_certificates)
            .finish_non_exhaustive()
    }
}
