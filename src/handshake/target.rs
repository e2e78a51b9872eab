//! Where a request was sent, as its client saw it: what a DPoP proof's
//! `htu` must name.

use std::net::{IpAddr, SocketAddr};

use http::{Extensions, HeaderMap, Uri};

use crate::dpop::TargetUrl;
use crate::handshake::client_address::{forwarded_host, forwarded_https};

/// Marks a request that arrived over TLS: insert it into the request
/// extensions in your TLS acceptor, for
/// [`HandshakeLayerBuilder::require_secure_transport`](crate::handshake::HandshakeLayerBuilder::require_secure_transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecureTransport;

/// What a request says about where it was sent, kept until someone
/// decides which proxies to believe (a first-message route decides after
/// the upgrade).
#[derive(Debug, Clone, Default)]
pub(crate) struct Addressed {
    /// Marked as TLS by the server, or an `https` URI.
    tls: bool,
    /// `Host`, or the URI's authority (HTTP/2).
    host: Option<String>,
    /// The path before any nesting (`Router::nest`).
    path: String,
    /// `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded`, believed
    /// from trusted proxies only.
    forwarded: HeaderMap,
}

impl Addressed {
    /// Reads a request's head.
    pub(crate) fn of(headers: &HeaderMap, uri: &Uri, extensions: &Extensions) -> Self {
        let mut forwarded = HeaderMap::new();
        for name in ["x-forwarded-proto", "x-forwarded-host", "forwarded"] {
            for value in headers.get_all(name) {
                forwarded.append(name, value.clone());
            }
        }
        let host = headers
            .get(http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .or_else(|| uri.authority().map(|authority| authority.as_str()))
            .map(str::to_owned);
        // Under `Router::nest` the URI has lost its prefix; the nest keeps
        // it (without asking every request to carry its original URI).
        let path = match extensions.get::<axum::extract::NestedPath>() {
            Some(nested) if nested.as_str() != "/" => {
                let prefix = nested.as_str().trim_end_matches('/');
                match uri.path() {
                    "/" => prefix.to_owned(),
                    rest => format!("{prefix}{rest}"),
                }
            }
            _ => uri.path().to_owned(),
        };
        Self {
            tls: extensions.get::<SecureTransport>().is_some()
                || uri.scheme() == Some(&http::uri::Scheme::HTTPS),
            host,
            path,
            forwarded,
        }
    }

    /// The URL the client sent the request to: the scheme (TLS, or what a
    /// trusted proxy says), the host (or the one a trusted proxy
    /// forwarded), the path.
    pub(crate) fn target(
        &self,
        peer: Option<SocketAddr>,
        trusted_proxies: &[IpAddr],
    ) -> Option<TargetUrl> {
        let secure = self.tls || forwarded_https(peer, &self.forwarded, trusted_proxies);
        let host =
            forwarded_host(peer, &self.forwarded, trusted_proxies).or_else(|| self.host.clone())?;
        TargetUrl::of_request(secure, &host, &self.path)
    }
}
