//! A client certificate → a [`Principal`], by a mapping the application
//! chooses.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer as _;

use crate::authenticate::{Authenticator, Credential, unsupported};
use crate::certificate::ClientCertificate;
use crate::clock::Clock;
use crate::error::{CredentialError, Error};
use crate::principal::{AuthMethod, Principal};

/// What names a certificate's subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CertificateSubject {
    /// The subject's Common Name (`CN`). The default.
    #[default]
    CommonName,
    /// The subject alternative name of kind URI (a SPIFFE ID:
    /// `spiffe://trust-domain/workload`).
    SanUri,
    /// The subject alternative name of kind DNS.
    SanDns,
    /// The subject alternative name of kind email (`rfc822Name`).
    SanEmail,
}

/// What a certificate says of its holder, read from the end-entity
/// certificate: what a mapping closure gets.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CertificateIdentity {
    /// The subject's Common Names (normally one).
    pub common_names: Vec<String>,
    /// Subject alternative names of kind URI.
    pub uris: Vec<String>,
    /// Subject alternative names of kind DNS.
    pub dns_names: Vec<String>,
    /// Subject alternative names of kind email.
    pub emails: Vec<String>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity: a socket the certificate opened closes then.
    pub not_after: SystemTime,
    /// The certificate itself.
    pub certificate: ClientCertificate,
}

type Mapping = Arc<dyn Fn(&CertificateIdentity) -> Option<Principal> + Send + Sync>;

/// Authenticates [`Credential::Certificate`]: the client certificate of
/// a request that carried no other credential (transport
/// [`certificate`](crate::Transport::Certificate)).
///
/// The certificate was verified before it got here (by the TLS handshake,
/// or by the trusted proxy that forwarded it); this authenticator checks
/// its validity period again (a connection may outlive its certificate),
/// then maps it to a [`Principal`]:
///
/// - by default the subject is the certificate's Common Name, with no
///   roles: certificates carry no roles unless the application gives
///   them ([`roles`](Self::roles), or a [`map`](Self::map) closure);
/// - exactly one value of the chosen kind must be there, without control
///   characters: a certificate with two Common Names, or none, is refused;
/// - the principal was issued when the certificate's validity began (so
///   revoking its subject refuses the certificates issued up to then, as
///   it refuses tokens), expires with the certificate (its socket closes
///   with 4401 then), and is bound to it (`cnf.x5t#S256`): an in-band refresh or
///   a per-message token on its socket must be bound to the same
///   certificate.
///
/// A certificate that cannot be mapped is refused (401 `invalid
/// certificate`), never passed on as anonymous.
#[derive(Clone)]
pub struct CertificateAuthenticator {
    subject: CertificateSubject,
    roles: Vec<String>,
    mapping: Option<Mapping>,
    clock: Clock,
}

impl CertificateAuthenticator {
    /// Subjects from the Common Name, no roles.
    pub fn new() -> Self {
        Self {
            subject: CertificateSubject::CommonName,
            roles: Vec::new(),
            mapping: None,
            clock: Clock::system(),
        }
    }

    /// Subjects from `CertificateSubject` instead of the Common Name.
    #[must_use]
    pub fn subject(mut self, subject: CertificateSubject) -> Self {
        self.subject = subject;
        self
    }

    /// The roles every certificate's principal gets.
    #[must_use]
    pub fn roles<I, R>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Maps certificates with `mapping` instead: `None` refuses the
    /// certificate. Its principal still expires with the certificate at
    /// the latest, and is still bound to it.
    #[must_use]
    pub fn map<F>(mut self, mapping: F) -> Self
    where
        F: Fn(&CertificateIdentity) -> Option<Principal> + Send + Sync + 'static,
    {
        self.mapping = Some(Arc::new(mapping));
        self
    }

    /// The clock validity is checked against (tests).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The principal of `certificate`.
    ///
    /// # Errors
    ///
    /// [`CredentialError::InvalidCertificate`] for a certificate that does
    /// not parse, is outside its validity, or does not map to a subject.
    pub fn principal_of(&self, certificate: &ClientCertificate) -> Result<Principal, Error> {
        let invalid = || Error::from(CredentialError::InvalidCertificate);
        let identity = identity(certificate).ok_or_else(invalid)?;
        let now = self.clock.now();
        if now < identity.not_before || now > identity.not_after {
            return Err(invalid());
        }
        let principal = match &self.mapping {
            Some(mapping) => mapping(&identity).ok_or_else(invalid)?,
            None => {
                let names = match self.subject {
                    CertificateSubject::CommonName => &identity.common_names,
                    CertificateSubject::SanUri => &identity.uris,
                    CertificateSubject::SanDns => &identity.dns_names,
                    CertificateSubject::SanEmail => &identity.emails,
                };
                let [subject] = names.as_slice() else {
                    return Err(invalid());
                };
                Principal::new(subject.as_str(), AuthMethod::Certificate)
                    .with_roles(self.roles.iter().cloned())
            }
        };
        let subject = principal.subject();
        if subject.is_empty() || subject.chars().any(char::is_control) {
            return Err(invalid());
        }
        let expires_at = match principal.expires_at() {
            Some(expires_at) => expires_at.min(identity.not_after),
            None => identity.not_after,
        };
        // Issued when the certificate's validity starts: revoking the
        // subject refuses the certificates issued up to then, as it
        // refuses tokens issued up to then.
        let issued_at = principal.issued_at().unwrap_or(identity.not_before);
        Ok(principal
            .with_method(AuthMethod::Certificate)
            .with_expires_at(expires_at)
            .with_issued_at(issued_at)
            .with_claim("cnf", json!({ "x5t#S256": certificate.thumbprint() })))
    }
}

impl Default for CertificateAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl Authenticator for CertificateAuthenticator {
    async fn authenticate(&self, credential: &Credential) -> Result<Principal, Error> {
        match credential {
            Credential::Certificate(certificate) => self.principal_of(certificate),
            _ => Err(unsupported()),
        }
    }
}

impl fmt::Debug for CertificateAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthenticator")
            .field("subject", &self.subject)
            .field("roles", &self.roles)
            .field("mapped", &self.mapping.is_some())
            .finish()
    }
}

/// Reads the names and validity of the end-entity certificate.
fn identity(certificate: &ClientCertificate) -> Option<CertificateIdentity> {
    let (rest, parsed) = X509Certificate::from_der(certificate.der()).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let common_names = parsed
        .subject()
        .iter_common_name()
        .map(|name| name.as_str().map(str::to_owned))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let mut identity = CertificateIdentity {
        common_names,
        uris: Vec::new(),
        dns_names: Vec::new(),
        emails: Vec::new(),
        not_before: time(parsed.validity().not_before.timestamp()),
        not_after: time(parsed.validity().not_after.timestamp()),
        certificate: certificate.clone(),
    };
    if let Some(names) = parsed.subject_alternative_name().ok()? {
        for name in &names.value.general_names {
            match name {
                GeneralName::URI(uri) => identity.uris.push((*uri).to_owned()),
                GeneralName::DNSName(dns) => identity.dns_names.push((*dns).to_owned()),
                GeneralName::RFC822Name(email) => identity.emails.push((*email).to_owned()),
                _ => {}
            }
        }
    }
    Some(identity)
}

fn time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(seconds) => crate::clock::from_unix_seconds(seconds),
        Err(_) => SystemTime::UNIX_EPOCH
            .checked_sub(Duration::from_secs(unix.unsigned_abs()))
            .unwrap_or(SystemTime::UNIX_EPOCH),
    }
}
