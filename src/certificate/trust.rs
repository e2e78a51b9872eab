//! Which client certificates are believed: CAs and revocation lists,
//! checked by rustls's WebPKI verifier.

use std::fmt;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use crate::certificate::ClientCertificate;
use crate::error::ConfigError;

/// The CAs whose client certificates authenticate, and the revocation
/// lists (CRLs) that withdraw some of them. Cheap to clone.
///
/// A certificate is believed when it chains to one of the CAs, is within
/// its validity, allows client authentication (an extended key usage, if
/// it has one, must name `clientAuth`) and is on no CRL. Clients without
/// a certificate are let through the TLS handshake: they authenticate by
/// another transport. Any other certificate ends the TLS handshake.
///
/// The same checks serve certificates that came over TLS
/// ([`ServerTlsBuilder::client_certificates`](crate::serve::ServerTlsBuilder::client_certificates))
/// and, if asked, those a proxy forwarded
/// ([`ForwardedCertificates::verify_with`](crate::certificate::ForwardedCertificates::verify_with)).
#[derive(Clone)]
pub struct ClientCertificates {
    verifier: Arc<dyn ClientCertVerifier>,
    authorities: usize,
    crls: usize,
}

/// Builds [`ClientCertificates`].
#[must_use]
pub struct ClientCertificatesBuilder {
    roots: RootCertStore,
    crls: Vec<CertificateRevocationListDer<'static>>,
    unknown_status_allowed: bool,
}

impl ClientCertificates {
    /// Starts with the CA certificates in `pem` (one or more `CERTIFICATE`
    /// blocks).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Tls`] when `pem` holds no certificate, or one that
    /// is not a CA certificate rustls can use.
    pub fn builder(pem: &[u8]) -> Result<ClientCertificatesBuilder, ConfigError> {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate
                .map_err(|error| ConfigError::Tls(format!("CA certificates: {error}")))?;
            roots
                .add(certificate)
                .map_err(|error| ConfigError::Tls(format!("CA certificate: {error}")))?;
        }
        if roots.is_empty() {
            return Err(ConfigError::Tls("no CA certificates".to_owned()));
        }
        Ok(ClientCertificatesBuilder {
            roots,
            crls: Vec::new(),
            unknown_status_allowed: false,
        })
    }

    /// Checks `certificate` as a TLS handshake would, now.
    ///
    /// # Errors
    ///
    /// rustls's reason: unknown issuer, expired, revoked, a usage other
    /// than client authentication, a revocation status no CRL knows (unless
    /// allowed).
    pub fn verify(&self, certificate: &ClientCertificate) -> Result<(), rustls::Error> {
        let intermediates: Vec<CertificateDer<'_>> = certificate
            .intermediates()
            .iter()
            .map(|der| CertificateDer::from(der.as_slice()))
            .collect();
        self.verifier
            .verify_client_cert(
                &CertificateDer::from(certificate.der()),
                &intermediates,
                UnixTime::now(),
            )
            .map(drop)
    }

    /// The verifier, for a rustls `ServerConfig` of your own.
    pub fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.verifier.clone()
    }
}

impl ClientCertificatesBuilder {
    /// Adds the revocation lists in `pem` (one or more `X509 CRL` blocks).
    /// Lists are read once: to take a new one, build again (the demo
    /// reads its file at start).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Tls`] when `pem` holds no CRL or one that does not
    /// parse.
    pub fn crls(mut self, pem: &[u8]) -> Result<Self, ConfigError> {
        let before = self.crls.len();
        for crl in CertificateRevocationListDer::pem_slice_iter(pem) {
            self.crls
                .push(crl.map_err(|error| ConfigError::Tls(format!("CRL: {error}")))?);
        }
        if self.crls.len() == before {
            return Err(ConfigError::Tls(
                "no CRL in the revocation list file".to_owned(),
            ));
        }
        Ok(self)
    }

    /// Believes a certificate whose issuer has no list among the CRLs
    /// given. By default, once any CRL is given, every certificate's
    /// issuer must have one (rustls's default): a CA whose list was
    /// forgotten would otherwise never revoke anything.
    pub fn allow_unknown_revocation_status(mut self) -> Self {
        self.unknown_status_allowed = true;
        self
    }

    /// Finishes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Tls`] when a CRL cannot be used.
    pub fn build(self) -> Result<ClientCertificates, ConfigError> {
        let authorities = self.roots.len();
        let crls = self.crls.len();
        let mut builder = WebPkiClientVerifier::builder_with_provider(
            Arc::new(self.roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .with_crls(self.crls)
        .allow_unauthenticated();
        if self.unknown_status_allowed {
            builder = builder.allow_unknown_revocation_status();
        }
        let verifier = builder
            .build()
            .map_err(|error| ConfigError::Tls(error.to_string()))?;
        Ok(ClientCertificates {
            verifier,
            authorities,
            crls,
        })
    }
}

impl fmt::Debug for ClientCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificates")
            .field("authorities", &self.authorities)
            .field("crls", &self.crls)
            .finish()
    }
}

impl fmt::Debug for ClientCertificatesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificatesBuilder")
            .field("authorities", &self.roots.len())
            .field("crls", &self.crls.len())
            .finish()
    }
}
