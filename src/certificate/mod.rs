//! Client certificates (mutual TLS, RFC 8705): the certificate a
//! connection presented, as a credential of its own and as what a token
//! can be bound to.
//!
//! A [`ClientCertificate`] reaches the handshake layer in one of two ways:
//!
//! - **Over TLS served by wsgate**: [`Serving`](crate::serve::Serving)
//!   (feature `tls`) asks each client for a certificate, verifies it
//!   against the CAs and CRLs of [`ClientCertificates`], and puts it into
//!   the extensions of every request of that connection.
//! - **Behind a TLS-terminating proxy**: the proxy verifies the
//!   certificate and forwards it in a header ([`ForwardedCertificates`]:
//!   Envoy's `X-Forwarded-Client-Cert`, nginx's `X-SSL-Client-Cert`),
//!   believed only from the handshake's trusted proxies and refused from
//!   anyone else.
//!
//! Either way the handshake then:
//!
//! - authenticates a request that carries no other credential with it
//!   (transport [`certificate`](crate::Transport::Certificate), through a
//!   [`CertificateAuthenticator`](crate::authenticate::CertificateAuthenticator)
//!   that maps the certificate to a subject, feature `tls`);
//! - accepts a token bound to a certificate (`cnf.x5t#S256`) only beside
//!   that certificate ([`Confirmation`](crate::confirmation::Confirmation));
//! - records the certificate only as its SHA-256
//!   [`fingerprint`](ClientCertificate::fingerprint), field `cert` of the
//!   audit.

mod forwarded;
#[cfg(feature = "tls")]
mod trust;

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

pub(crate) use self::forwarded::ForwardedError;
pub use self::forwarded::{ForwardedCertificateHeader, ForwardedCertificates};
#[cfg(feature = "tls")]
pub use self::trust::{ClientCertificates, ClientCertificatesBuilder};

/// The certificate chain a client presented: its end-entity certificate
/// first, then any intermediates it sent. Cheap to clone (shared).
///
/// Whoever puts one into a request's extensions vouches for it: wsgate's
/// [`Serving`](crate::serve::Serving) after rustls verified it, the
/// handshake layer for a trusted proxy's header. An application with its
/// own TLS acceptor inserts it the same way, after its own verification.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate(Arc<Inner>);

#[derive(PartialEq, Eq)]
struct Inner {
    chain: Vec<Vec<u8>>,
    digest: [u8; 32],
    thumbprint: String,
}

impl ClientCertificate {
    /// The chain `chain` (DER, end-entity certificate first), as a
    /// verifier accepted it. `None` for an empty chain.
    pub fn from_chain<I, C>(chain: I) -> Option<Self>
    where
        I: IntoIterator<Item = C>,
        C: Into<Vec<u8>>,
    {
        let chain: Vec<Vec<u8>> = chain.into_iter().map(Into::into).collect();
        let leaf = chain.first()?;
        let digest: [u8; 32] = Sha256::digest(leaf).into();
        Some(Self(Arc::new(Inner {
            thumbprint: URL_SAFE_NO_PAD.encode(digest),
            digest,
            chain,
        })))
    }

    /// The end-entity certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.0.chain[0]
    }

    /// The intermediates the client sent after it, DER.
    pub fn intermediates(&self) -> &[Vec<u8>] {
        &self.0.chain[1..]
    }

    /// The RFC 8705 thumbprint: base64url (no padding) of the SHA-256 of
    /// the end-entity certificate's DER. What a bound token's
    /// `cnf.x5t#S256` names.
    pub fn thumbprint(&self) -> &str {
        &self.0.thumbprint
    }

    /// The SHA-256 of the end-entity certificate's DER in lowercase hex:
    /// how the audit names the certificate (field `cert`), the usual form
    /// of a certificate fingerprint in tools (`openssl x509 -fingerprint
    /// -sha256`, without colons).
    pub fn fingerprint(&self) -> String {
        crate::hex::lower_hex(&self.0.digest)
    }
}

/// Only the fingerprint: a certificate is public, but a log needs no more.
impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("fingerprint", &self.fingerprint())
            .field("intermediates", &self.intermediates().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_and_fingerprint_name_the_end_entity_certificate() {
        assert!(ClientCertificate::from_chain(Vec::<Vec<u8>>::new()).is_none());
        let certificate =
            ClientCertificate::from_chain([b"leaf".to_vec(), b"ca".to_vec()]).unwrap();
        let digest = Sha256::digest(b"leaf");
        assert_eq!(certificate.thumbprint(), URL_SAFE_NO_PAD.encode(digest));
        assert_eq!(certificate.fingerprint(), crate::hex::lower_hex(&digest));
        assert_eq!(certificate.der(), b"leaf");
        assert_eq!(certificate.intermediates(), [b"ca".to_vec()]);
        assert!(!format!("{certificate:?}").contains("leaf"));
    }
}
