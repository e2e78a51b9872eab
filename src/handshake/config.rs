//! What a handshake layer is configured with, and the checks that need no
//! I/O: the transport, the query, the Origin, the credential's extraction
//! and the subprotocol. The [layer](super::layer) builds a [`Config`]; the
//! [service](super::service) runs its checks, then authenticates.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::response::Response;
use http::Request;

use crate::authenticate::Credential;
use crate::certificate::{ClientCertificate, ForwardedError};
use crate::dpop::{DpopMode, TargetUrl};
use crate::handshake::client_address::forwarded_https;
use crate::handshake::origin::{OriginAllowlist, OriginCheck};
use crate::handshake::subprotocol::Offer;
use crate::handshake::target::{Addressed, SecureTransport};
use crate::handshake::transport::RequestCredentials;
use crate::limit::SocketLimit;
use crate::principal::Transport;
use crate::refusal::HandshakeRejection;
use crate::refusal::RejectionReason;
use crate::secret::Secret;
use crate::wiring::settings::Wiring;

/// Default name of the cookie transport's cookie.
pub const DEFAULT_COOKIE_NAME: &str = "wsgate_token";

/// A layer's configuration: the authenticator and the failure limiter,
/// which give the layer its type, and the settings, which do not.
pub(super) struct Config<A, L> {
    pub(super) authenticator: A,
    pub(super) limiter: L,
    pub(super) settings: Settings,
}

/// Everything a handshake layer is set with besides its authenticator and
/// failure limiter. A [`Gate`](crate::Gate) keeps one and starts every
/// layer it makes from it.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) require_secure_transport: bool,
    pub(crate) transports: Vec<Transport>,
    pub(crate) origins: Option<OriginAllowlist>,
    pub(crate) application_protocols: Vec<String>,
    pub(crate) cookie_name: String,
    pub(crate) query_token_parameter: Option<String>,
    pub(crate) realm: &'static str,
    /// Each upgrade takes its subject's place here, after the checks.
    pub(crate) sockets: Option<SocketLimit>,
    /// What every stage shares: trusted proxies, the audit, revocations,
    /// DPoP, forwarded certificates, how refusals are answered.
    pub(crate) wiring: Wiring,
}

impl Settings {
    /// A layer's defaults over `wiring`, and at most `sockets` a subject:
    /// transports Bearer, subprotocol and ticket; cookie `wsgate_token`;
    /// realm `wsgate`; no Origin allowlist, application protocols or query
    /// tokens.
    pub(crate) fn new(wiring: Wiring, sockets: Option<SocketLimit>) -> Self {
        Self {
            require_secure_transport: false,
            transports: vec![Transport::Bearer, Transport::Subprotocol, Transport::Ticket],
            origins: None,
            application_protocols: Vec::new(),
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            query_token_parameter: None,
            realm: "wsgate",
            sockets,
            wiring,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::new(Wiring::default(), None)
    }
}

/// Whether `request` asks for a WebSocket (an HTTP/1.1 upgrade, or an
/// HTTP/2 extended CONNECT): only those take a place among their subject's
/// sockets, not the HTTP routes behind the same layer.
pub(super) fn is_websocket_request<B>(request: &Request<B>) -> bool {
    request.method() == http::Method::CONNECT
        || request
            .headers()
            .get_all(http::header::UPGRADE)
            .iter()
            .any(|value| {
                value
                    .as_bytes()
                    .split(|&byte| byte == b',')
                    .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"websocket"))
            })
}

/// A request that passed the synchronous checks, with its credential.
pub(super) struct Prepared {
    pub(super) credential: Credential,
    pub(super) transport: Transport,
    pub(super) selected_protocol: Option<String>,
    pub(super) offer: Offer,
    /// The DPoP proof that came with it, unless proofs are off.
    pub(super) proof: Option<Secret>,
    /// Whether the token came as `Authorization: DPoP`.
    pub(super) dpop_scheme: bool,
    /// The URL the request was sent to, as a proof must name it.
    pub(super) target: Option<TargetUrl>,
    /// The request's method.
    pub(super) method: http::Method,
    /// Whether it asks for a WebSocket.
    pub(super) opens_socket: bool,
    /// The client certificate of the connection, or the one a trusted
    /// proxy forwarded.
    pub(super) certificate: Option<ClientCertificate>,
}

impl Settings {
    /// Whether the request came over TLS (or a trusted proxy says so).
    pub(super) fn is_secure<B>(&self, request: &Request<B>) -> bool {
        request.extensions().get::<SecureTransport>().is_some()
            || request.uri().scheme() == Some(&http::uri::Scheme::HTTPS)
            || forwarded_https(
                peer(request),
                request.headers(),
                &self.wiring.trusted_proxies,
            )
    }

    /// The refusal for `reason`, with this layer's challenges.
    pub(super) fn refuse(&self, reason: RejectionReason) -> HandshakeRejection {
        let rejection = HandshakeRejection::new(reason)
            .with_challenge(self.realm, self.transports.contains(&Transport::Basic));
        if self.wiring.dpop_mode == DpopMode::Off {
            return rejection;
        }
        let algorithms: Vec<String> = self
            .wiring
            .dpop
            .algorithms()
            .iter()
            .map(|algorithm| format!("{algorithm:?}"))
            .collect();
        rejection
            .with_dpop_challenge(
                algorithms.join(" "),
                self.wiring.dpop_mode == DpopMode::Required,
            )
            // Only a 401 hands a nonce out: no HMAC for other refusals.
            .with_dpop_nonce(
                (reason.status() == http::StatusCode::UNAUTHORIZED)
                    .then(|| self.wiring.dpop.nonce())
                    .flatten(),
            )
    }

    /// Everything that needs no I/O: query, Origin, extraction, subprotocol.
    pub(super) fn prepare<B>(
        &self,
        request: &Request<B>,
    ) -> Result<Prepared, (RejectionReason, Option<Transport>)> {
        let headers = request.headers();
        let offer = Offer::parse(headers).map_err(|reason| (reason, None))?;
        let certificate = self
            .client_certificate(request)
            .map_err(|reason| (reason, None))?;
        let credentials = RequestCredentials {
            headers,
            query: request.uri().query(),
            offer: &offer,
            cookie_name: &self.cookie_name,
            query_token_parameter: self.query_token_parameter.as_deref(),
            certificate: certificate.as_ref(),
        };
        credentials.check_query().map_err(|reason| (reason, None))?;

        let origin = match &self.origins {
            Some(allowlist) => allowlist.check(headers),
            None => OriginCheck::Absent,
        };
        if origin == OriginCheck::Refused {
            return Err((RejectionReason::OriginNotAllowed, None));
        }

        let mut found = None;
        for &transport in &self.transports {
            if let Some(credential) = credentials
                .extract(transport)
                .map_err(|reason| (reason, Some(transport)))?
            {
                found = Some((credential, transport));
                break;
            }
        }
        let (credential, transport) = found.ok_or((RejectionReason::MissingCredentials, None))?;
        if transport.is_ambient() && origin != OriginCheck::Allowed {
            return Err((RejectionReason::OriginRequired, Some(transport)));
        }

        let selected_protocol = offer.select(&self.application_protocols);
        // A browser fails the connection unless the server selects one of
        // the protocols it offered; the token and proof entries must never
        // be that one.
        if (offer.token.is_some() || offer.proof.is_some()) && selected_protocol.is_none() {
            return Err((
                RejectionReason::ApplicationProtocolRequired,
                Some(transport),
            ));
        }
        let proof = if self.wiring.dpop_mode == DpopMode::Off {
            None
        } else {
            credentials
                .dpop_proof()
                .map_err(|reason| (reason, Some(transport)))?
        };
        // Only a proof names a URL to compare.
        let target = proof.as_ref().and_then(|_| {
            Addressed::of(request.headers(), request.uri(), request.extensions())
                .target(peer(request), &self.wiring.trusted_proxies)
        });
        let dpop_scheme = transport == Transport::Bearer && credentials.uses_dpop_scheme();
        Ok(Prepared {
            credential,
            transport,
            selected_protocol,
            offer,
            proof,
            dpop_scheme,
            target,
            method: request.method().clone(),
            opens_socket: is_websocket_request(request),
            certificate,
        })
    }

    /// The client's certificate: the one a trusted proxy forwarded, or the
    /// connection's own when the peer is no proxy.
    fn client_certificate<B>(
        &self,
        request: &Request<B>,
    ) -> Result<Option<ClientCertificate>, RejectionReason> {
        let from_proxy =
            peer(request).is_some_and(|peer| self.wiring.trusted_proxies.contains(&peer.ip()));
        if let Some(forwarded) = &self.wiring.forwarded_certificates {
            match forwarded.read(request.headers(), from_proxy) {
                Ok(Some(certificate)) => return Ok(Some(certificate)),
                Ok(None) => {}
                Err(ForwardedError::Untrusted) => {
                    return Err(RejectionReason::UntrustedCertificateHeader);
                }
                Err(ForwardedError::Invalid) => return Err(RejectionReason::InvalidCertificate),
            }
        }
        if from_proxy {
            // The proxy's own certificate, if it has one, is not the client's.
            return Ok(None);
        }
        Ok(request.extensions().get::<ClientCertificate>().cloned())
    }

    /// The answer to a refused handshake: the application's, through
    /// [`rejection_response`](crate::wiring::Wiring::rejection_response).
    pub(super) fn answer(&self, rejection: HandshakeRejection) -> Response {
        self.wiring.rejections.answer(rejection)
    }
}

/// The socket peer, when the server recorded it (`ConnectInfo`).
pub(super) fn peer<B>(request: &Request<B>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeSettings")
            .field("transports", &self.transports)
            .field("origins", &self.origins)
            .field("application_protocols", &self.application_protocols)
            .field("cookie_name", &self.cookie_name)
            .field("query_token_parameter", &self.query_token_parameter)
            .field("realm", &self.realm)
            .field("require_secure_transport", &self.require_secure_transport)
            .field("sockets", &self.sockets)
            .field("wiring", &self.wiring)
            .finish()
    }
}

impl<A: std::fmt::Debug, L: std::fmt::Debug> std::fmt::Debug for Config<A, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("authenticator", &self.authenticator)
            .field("limiter", &self.limiter)
            .field("settings", &self.settings)
            .finish()
    }
}
