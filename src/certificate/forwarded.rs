//! A client certificate forwarded by a TLS-terminating proxy in a header.

use std::fmt;

use http::{HeaderMap, HeaderName};
use percent_encoding::percent_decode_str;

use crate::certificate::ClientCertificate;
#[cfg(feature = "tls")]
use crate::certificate::ClientCertificates;

/// Longest forwarded-certificate header read: a chain of a few
/// certificates, URL-encoded, fits with room to spare.
pub(crate) const MAX_FORWARDED_CERTIFICATE_BYTES: usize = 32 * 1024;

/// Most certificates taken from one forwarded chain.
const MAX_CHAIN: usize = 8;

/// The header a TLS-terminating proxy forwards the client's certificate
/// in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedCertificateHeader {
    /// Envoy's `X-Forwarded-Client-Cert` (XFCC): `;`-separated `key=value`
    /// pairs, one element per proxy, comma-separated. The element the
    /// nearest proxy appended (the last) is read; its `Chain` (or, without
    /// one, its `Cert`) holds the URL-encoded PEM. Set Envoy's
    /// `forward_client_cert_details` to `SANITIZE_SET` (or
    /// `APPEND_FORWARD`) and `set_current_client_cert_details` with
    /// `cert: true` (or `chain: true`).
    EnvoyXfcc,
    /// nginx's `X-SSL-Client-Cert`, set to `$ssl_client_escaped_cert`: the
    /// URL-encoded PEM of the end-entity certificate (empty without one).
    Nginx,
    /// Another header holding URL-encoded PEM, as nginx's does (HAProxy,
    /// a cloud load balancer).
    UrlEncodedPem(HeaderName),
}

impl ForwardedCertificateHeader {
    /// The header's name.
    pub fn name(&self) -> &str {
        match self {
            ForwardedCertificateHeader::EnvoyXfcc => "x-forwarded-client-cert",
            ForwardedCertificateHeader::Nginx => "x-ssl-client-cert",
            ForwardedCertificateHeader::UrlEncodedPem(name) => name.as_str(),
        }
    }
}

/// Where and how a handshake takes a certificate forwarded by a trusted
/// proxy: the header, and (feature `tls`) the CAs and revocation lists it
/// must also pass here.
///
/// The header is believed only from the handshake layer's trusted proxies
/// (the list that names client addresses). From any other peer a request
/// carrying it is refused (400 `untrusted certificate header`): a client
/// that sends one is forging a credential. From a trusted proxy, the
/// certificate of the connection itself (the proxy's own, if any) is never
/// taken for the client's.
#[derive(Clone)]
pub struct ForwardedCertificates {
    header: ForwardedCertificateHeader,
    #[cfg(feature = "tls")]
    trust: Option<ClientCertificates>,
}

/// Why a forwarded certificate was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForwardedError {
    /// The header came from a peer that is not a trusted proxy.
    Untrusted,
    /// The header does not hold a certificate chain, or the chain failed
    /// verification.
    Invalid,
}

impl ForwardedCertificates {
    /// Reads certificates from `header`, trusting the proxy's
    /// verification.
    pub fn new(header: ForwardedCertificateHeader) -> Self {
        Self {
            header,
            #[cfg(feature = "tls")]
            trust: None,
        }
    }

    /// Also verifies each forwarded certificate against these CAs and
    /// revocation lists, as if it had come over TLS here: for a proxy
    /// that accepts certificates of CAs this application does not.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn verify_with(mut self, trust: ClientCertificates) -> Self {
        self.trust = Some(trust);
        self
    }

    /// The header read.
    pub fn header(&self) -> &ForwardedCertificateHeader {
        &self.header
    }

    /// The certificate in `headers`: `Ok(None)` without the header (or
    /// with an empty one, nginx's way of saying "no certificate").
    pub(crate) fn read(
        &self,
        headers: &HeaderMap,
        from_trusted_proxy: bool,
    ) -> Result<Option<ClientCertificate>, ForwardedError> {
        let mut values = headers.get_all(self.header.name()).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => return Ok(None),
            (Some(value), None) => value,
            // Two headers: which one did the proxy set?
            (Some(_), Some(_)) if from_trusted_proxy => return Err(ForwardedError::Invalid),
            (Some(_), Some(_)) => return Err(ForwardedError::Untrusted),
        };
        if !from_trusted_proxy {
            return Err(ForwardedError::Untrusted);
        }
        if value.len() > MAX_FORWARDED_CERTIFICATE_BYTES {
            return Err(ForwardedError::Invalid);
        }
        let value = value.to_str().map_err(|_| ForwardedError::Invalid)?.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let encoded = match self.header {
            ForwardedCertificateHeader::EnvoyXfcc => {
                xfcc_chain(value).ok_or(ForwardedError::Invalid)?
            }
            _ => value,
        };
        let certificate = pem_chain(encoded).ok_or(ForwardedError::Invalid)?;
        #[cfg(feature = "tls")]
        if let Some(trust) = &self.trust {
            trust
                .verify(&certificate)
                .map_err(|_| ForwardedError::Invalid)?;
        }
        Ok(Some(certificate))
    }
}

impl fmt::Debug for ForwardedCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ForwardedCertificates");
        debug.field("header", &self.header);
        #[cfg(feature = "tls")]
        debug.field("verified", &self.trust.is_some());
        debug.finish()
    }
}

/// URL-encoded PEM → the chain, end-entity certificate first.
fn pem_chain(encoded: &str) -> Option<ClientCertificate> {
    let pem = percent_decode_str(encoded).decode_utf8().ok()?;
    // nginx's deprecated `$ssl_client_cert` starts each continuation line
    // with a tab; the PEM parser wants lines as they were.
    let pem = pem.replace("\n\t", "\n");
    let blocks = pem::parse_many(pem.as_bytes()).ok()?;
    if blocks.is_empty()
        || blocks.len() > MAX_CHAIN
        || blocks.iter().any(|block| block.tag() != "CERTIFICATE")
    {
        return None;
    }
    ClientCertificate::from_chain(blocks.into_iter().map(pem::Pem::into_contents))
}

/// The URL-encoded chain of the last XFCC element: its `Chain`, else its
/// `Cert`.
fn xfcc_chain(header: &str) -> Option<&str> {
    let element = split_unquoted(header, b',').last()?;
    let mut cert = None;
    let mut chain = None;
    for pair in split_unquoted(element, b';') {
        let (key, value) = pair.split_once('=')?;
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted.strip_suffix('"')?,
            None => value,
        };
        match key.trim() {
            key if key.eq_ignore_ascii_case("cert") => cert = Some(value),
            key if key.eq_ignore_ascii_case("chain") => chain = Some(value),
            _ => {}
        }
    }
    chain.or(cert).filter(|value| !value.is_empty())
}

/// `text` split at each `separator` outside double quotes (XFCC quotes
/// values holding `,`, `;` or `=`).
fn split_unquoted(text: &str, separator: u8) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    let mut cuts = Vec::new();
    for (index, &byte) in text.as_bytes().iter().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if byte == separator && !quoted => {
                cuts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    cuts.push(&text[start..]);
    cuts.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

    fn pem(contents: &[u8]) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", contents.to_vec()))
    }

    fn encoded(text: &str) -> String {
        utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
    }

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        headers
    }

    #[test]
    fn nginx_header_is_url_encoded_pem_and_believed_only_from_a_trusted_proxy() {
        let forwarded = ForwardedCertificates::new(ForwardedCertificateHeader::Nginx);
        let value = encoded(&pem(b"leaf"));
        let request = headers("x-ssl-client-cert", &value);
        let certificate = forwarded.read(&request, true).unwrap().unwrap();
        assert_eq!(certificate.der(), b"leaf");
        assert_eq!(
            forwarded.read(&request, false),
            Err(ForwardedError::Untrusted)
        );
        assert_eq!(forwarded.read(&HeaderMap::new(), false), Ok(None));
        // nginx sends an empty value when the client had no certificate.
        assert_eq!(
            forwarded.read(&headers("x-ssl-client-cert", ""), true),
            Ok(None)
        );
        // The deprecated `$ssl_client_cert`: tabs at the start of lines.
        let tabbed = pem(b"leaf").trim_end().replace('\n', "\n\t");
        let tabbed = forwarded
            .read(&headers("x-ssl-client-cert", &encoded(&tabbed)), true)
            .unwrap()
            .unwrap();
        assert_eq!(tabbed, certificate);
    }

    #[test]
    fn envoy_header_takes_the_last_element_chain_before_cert() {
        let forwarded = ForwardedCertificates::new(ForwardedCertificateHeader::EnvoyXfcc);
        let leaf = encoded(&pem(b"leaf"));
        let chain = encoded(&(pem(b"leaf") + &pem(b"intermediate")));
        let forged = encoded(&pem(b"forged"));
        let value = format!(
            "By=spiffe://a;Cert=\"{forged}\";Subject=\"CN=x,O=y\",By=spiffe://b;Hash=00;Cert=\"{leaf}\";Chain=\"{chain}\";Subject=\"CN=alice;O=a,b\";URI=spiffe://c"
        );
        let certificate = forwarded
            .read(&headers("x-forwarded-client-cert", &value), true)
            .unwrap()
            .unwrap();
        assert_eq!(certificate.der(), b"leaf");
        assert_eq!(certificate.intermediates(), [b"intermediate".to_vec()]);

        let only_cert = format!("Hash=00;Cert={leaf}");
        let certificate = forwarded
            .read(&headers("x-forwarded-client-cert", &only_cert), true)
            .unwrap()
            .unwrap();
        assert_eq!(certificate.intermediates().len(), 0);
    }

    #[test]
    fn anything_but_a_chain_of_certificates_is_refused() {
        let forwarded = ForwardedCertificates::new(ForwardedCertificateHeader::EnvoyXfcc);
        let key = encoded(&pem::encode(&pem::Pem::new("PRIVATE KEY", b"k".to_vec())));
        let too_long = encoded(&pem(b"leaf").repeat(MAX_CHAIN + 1));
        for value in [
            "Hash=00".to_owned(),
            "Hash=00;Cert=\"\"".to_owned(),
            "Cert=not-pem".to_owned(),
            format!("Cert={key}"),
            format!("Cert=\"{too_long}\""),
            "Cert=\"unterminated".to_owned(),
            "no pair".to_owned(),
            format!("Cert=%ff%fe{}", encoded(&pem(b"leaf"))),
        ] {
            assert_eq!(
                forwarded.read(&headers("x-forwarded-client-cert", &value), true),
                Err(ForwardedError::Invalid),
                "{value}"
            );
        }
        let mut twice = headers("x-forwarded-client-cert", "Cert=a");
        twice.append("x-forwarded-client-cert", "Cert=b".parse().unwrap());
        assert_eq!(forwarded.read(&twice, true), Err(ForwardedError::Invalid));
        assert_eq!(
            forwarded.read(&twice, false),
            Err(ForwardedError::Untrusted)
        );
    }
}
