//! The handshake layer and its builder.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use http::Request;
use tower_layer::Layer;

use crate::audit::Auditor;
use crate::authenticate::{Authenticator, Credential};
use crate::certificate::{ClientCertificate, ForwardedCertificates, ForwardedError};
use crate::dpop::{DpopMode, DpopVerifier, TargetUrl};
use crate::error::ConfigError;
use crate::handshake::client_address::forwarded_https;
use crate::handshake::origin::{OriginAllowlist, OriginCheck};
use crate::handshake::rejection::HandshakeRejection;
use crate::handshake::service::Handshake;
use crate::handshake::subprotocol::{Offer, strip_proof_prefix, strip_token_prefix};
use crate::handshake::target::Addressed;
use crate::handshake::transport::RequestCredentials;
use crate::limit::{FailureLimiter, InMemoryFailureLimiter, SocketLimit};
use crate::principal::Transport;
use crate::refusal::RejectionReason;
use crate::secret::Secret;
use crate::store::{BoxedRevocationStore, RevocationStore};

/// Default name of the cookie transport's cookie.
pub const DEFAULT_COOKIE_NAME: &str = "wsgate_token";

/// Authenticates requests and puts the [`Principal`](crate::Principal) into their extensions.
///
/// Build it with [`HandshakeLayer::builder`]; see the [module
/// docs](crate::handshake) for the order of checks.
pub struct HandshakeLayer<A, L = InMemoryFailureLimiter> {
    config: Arc<Config<A, L>>,
}

/// Builds a [`HandshakeLayer`].
#[must_use]
pub struct HandshakeLayerBuilder<A, L = InMemoryFailureLimiter> {
    config: Config<A, L>,
    query_tokens_allowed: bool,
}

pub(super) struct Config<A, L> {
    pub(super) authenticator: A,
    pub(super) limiter: L,
    pub(super) trusted_proxies: Vec<IpAddr>,
    pub(super) require_secure_transport: bool,
    pub(super) transports: Vec<Transport>,
    pub(super) origins: Option<OriginAllowlist>,
    pub(super) application_protocols: Vec<String>,
    pub(super) cookie_name: String,
    pub(super) query_token_parameter: Option<String>,
    pub(super) realm: &'static str,
    pub(super) auditor: Auditor,
    /// Checked after authentication, by the one session rule.
    pub(super) revocations: Option<BoxedRevocationStore>,
    /// Each upgrade takes its subject's place here, after the checks.
    pub(super) sockets: Option<SocketLimit>,
    /// Checks the proofs of key-bound tokens.
    pub(super) dpop: DpopVerifier,
    pub(super) dpop_mode: DpopMode,
    /// Where a trusted proxy forwards client certificates.
    pub(super) forwarded_certificates: Option<ForwardedCertificates>,
}

impl<A: Authenticator> HandshakeLayer<A> {
    /// Starts a layer that authenticates with `authenticator`.
    ///
    /// Defaults: transports Bearer, subprotocol and ticket, in that order; no
    /// Origin allowlist; no application protocols; cookie
    /// `wsgate_token`; realm `wsgate`; failed Basic attempts limited by an
    /// [`InMemoryFailureLimiter`]; no trusted proxies.
    pub fn builder(authenticator: A) -> HandshakeLayerBuilder<A> {
        HandshakeLayerBuilder {
            config: Config {
                authenticator,
                limiter: InMemoryFailureLimiter::new(),
                trusted_proxies: Vec::new(),
                require_secure_transport: false,
                transports: vec![Transport::Bearer, Transport::Subprotocol, Transport::Ticket],
                origins: None,
                application_protocols: Vec::new(),
                cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
                query_token_parameter: None,
                realm: "wsgate",
                auditor: Auditor::tracing(),
                revocations: None,
                sockets: None,
                dpop: DpopVerifier::new(),
                dpop_mode: DpopMode::Allowed,
                forwarded_certificates: None,
            },
            query_tokens_allowed: false,
        }
    }
}

fn is_token_char(byte: u8) -> bool {
    // RFC 9110 §5.6.2 tchar: what a cookie name, parameter name or
    // subprotocol may be made of.
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn check_name(name: &str, what: &'static str) -> Result<(), ConfigError> {
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(ConfigError::InvalidName(what));
    }
    Ok(())
}

impl<A: Authenticator, L: FailureLimiter> HandshakeLayerBuilder<A, L> {
    /// The transports to read credentials from, in order: the first that
    /// carries credentials is the one used. [`Transport::Certificate`],
    /// wherever it is listed, comes last: a credential in the request wins
    /// over the connection's certificate (and a bad one is refused, never
    /// rescued by it).
    pub fn transports<I>(mut self, transports: I) -> Self
    where
        I: IntoIterator<Item = Transport>,
    {
        self.config.transports = transports.into_iter().collect();
        self.config.transports.dedup();
        self
    }

    /// Origins allowed to connect (`scheme://host[:port]`). With a list, a
    /// request whose `Origin` is not on it is refused with 403, whatever the
    /// transport. Required by the cookie and Basic transports.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidOrigin`] for an entry that is not an origin.
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.config.origins = Some(OriginAllowlist::new(origins)?);
        Ok(self)
    }

    /// The application protocols the server speaks, in preference order. A
    /// client that sends its token as a subprotocol must offer one of them;
    /// the chosen one is put into the request extensions as
    /// [`SelectedProtocol`](crate::handshake::SelectedProtocol).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidName`] for a name that is not a valid
    /// subprotocol, or that starts with `wsgate.bearer.` or `wsgate.dpop.`.
    pub fn application_protocols<I, S>(mut self, protocols: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let protocols: Vec<String> = protocols.into_iter().map(Into::into).collect();
        for protocol in &protocols {
            check_name(protocol, "subprotocol")?;
            if strip_token_prefix(protocol).is_some() || strip_proof_prefix(protocol).is_some() {
                return Err(ConfigError::InvalidName("subprotocol"));
            }
        }
        self.config.application_protocols = protocols;
        Ok(self)
    }

    /// The cookie the cookie transport reads. Defaults to `wsgate_token`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidName`] for a name that is not a cookie name.
    pub fn cookie_name(mut self, name: impl Into<String>) -> Result<Self, ConfigError> {
        let name = name.into();
        check_name(&name, "cookie")?;
        self.config.cookie_name = name;
        Ok(self)
    }

    /// The realm of `WWW-Authenticate` challenges. Defaults to `wsgate`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidName`] for a realm with quotes, backslashes or
    /// control characters.
    pub fn realm(mut self, realm: &'static str) -> Result<Self, ConfigError> {
        if realm
            .bytes()
            .any(|byte| byte == b'"' || byte == b'\\' || byte.is_ascii_control())
        {
            return Err(ConfigError::InvalidName("realm"));
        }
        self.config.realm = realm;
        Ok(self)
    }

    /// Limits failed password attempts (Basic) per account and per client
    /// address: a locked account or address gets 429 with `Retry-After`,
    /// right password or not, before any hashing. Defaults to an
    /// [`InMemoryFailureLimiter`] with its defaults (share one with your
    /// login route by passing a clone); [`NoLimits`](crate::limit::NoLimits)
    /// turns it off.
    pub fn failure_limiter<L2: FailureLimiter>(self, limiter: L2) -> HandshakeLayerBuilder<A, L2> {
        let config = self.config;
        HandshakeLayerBuilder {
            config: Config {
                authenticator: config.authenticator,
                limiter,
                trusted_proxies: config.trusted_proxies,
                require_secure_transport: config.require_secure_transport,
                transports: config.transports,
                origins: config.origins,
                application_protocols: config.application_protocols,
                cookie_name: config.cookie_name,
                query_token_parameter: config.query_token_parameter,
                realm: config.realm,
                auditor: config.auditor,
                revocations: config.revocations,
                sockets: config.sockets,
                dpop: config.dpop,
                dpop_mode: config.dpop_mode,
                forwarded_certificates: config.forwarded_certificates,
            },
            query_tokens_allowed: self.query_tokens_allowed,
        }
    }

    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers name the
    /// client (for the failure limiter and the audit). Requests from any
    /// other peer are taken at their socket address. Defaults to none.
    pub fn trusted_proxies<I: IntoIterator<Item = IpAddr>>(mut self, proxies: I) -> Self {
        self.config.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// Refuses (403) handshakes that did not come over TLS. A request is
    /// secure when the server marked it with [`SecureTransport`] (your TLS
    /// acceptor does that), when its URI scheme is `https`, or when a
    /// trusted proxy says so (`X-Forwarded-Proto: https`, `Forwarded:
    /// proto=https`). Defaults to off; turn it on in production.
    pub fn require_secure_transport(mut self, required: bool) -> Self {
        self.config.require_secure_transport = required;
        self
    }

    /// Where handshake decisions are recorded: one audit event per accepted
    /// or refused handshake. Defaults to [`Auditor::tracing`].
    pub fn audit(mut self, auditor: Auditor) -> Self {
        self.config.auditor = auditor;
        self
    }

    /// Refuses (401 `token revoked`) principals that `revocations` says
    /// are revoked, by token id, subject, or the session their token's
    /// `sid` names — checked after authentication, on every transport. A
    /// [`Gate`](crate::Gate) sets this to its own store; without one, a
    /// layer built here checks nothing. Defaults to none.
    pub fn revocations<R: RevocationStore>(mut self, revocations: R) -> Self {
        self.config.revocations = Some(BoxedRevocationStore::new(revocations));
        self
    }

    /// Whether DPoP-bound tokens are taken, and only they
    /// ([`DpopMode`]). Defaults to [`DpopMode::Allowed`]. In every mode a
    /// token bound to a key needs a proof of it: `Authorization: DPoP
    /// <token>` with a `DPoP` header, or the `wsgate.dpop.<proof>`
    /// subprotocol entry beside `wsgate.bearer.<token>`.
    pub fn dpop(mut self, mode: DpopMode) -> Self {
        self.config.dpop_mode = mode;
        self
    }

    /// The checks of DPoP proofs (algorithms, age, the replay store).
    /// Defaults to [`DpopVerifier::new`], which remembers proofs in this
    /// process; a [`Gate`](crate::Gate) hands its own to every layer it
    /// makes.
    pub fn dpop_verifier(mut self, verifier: DpopVerifier) -> Self {
        self.config.dpop = verifier;
        self
    }

    /// Takes client certificates from the header a TLS-terminating proxy
    /// sets ([`ForwardedCertificates`]), believed only from
    /// [`trusted_proxies`](Self::trusted_proxies); from any other peer a
    /// request carrying the header is refused (400 `untrusted certificate
    /// header`). A request from a trusted proxy never uses the
    /// certificate of the proxy's own connection. Defaults to none: only
    /// the connection's certificate (put into the request by
    /// [`Serving`](https://docs.rs/wsgate/latest/wsgate/serve/struct.Serving.html)
    /// or your TLS acceptor) counts.
    pub fn forwarded_certificates(mut self, forwarded: ForwardedCertificates) -> Self {
        self.config.forwarded_certificates = Some(forwarded);
        self
    }

    /// Caps each subject's sockets: a [`Gate`](crate::Gate)'s
    /// [`max_sockets_per_subject`](crate::GateBuilder::max_sockets_per_subject).
    pub(crate) fn socket_limit(mut self, limit: Option<SocketLimit>) -> Self {
        self.config.sockets = limit;
        self
    }

    /// **Dangerous.** Accepts a raw bearer token in the query parameter
    /// `parameter` (for clients that can do nothing else), as the last
    /// transport. The token will be written to access logs, proxy logs and
    /// browser history: prefer tickets.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidName`] for a name that is not a parameter name.
    pub fn dangerous_allow_query_tokens(
        mut self,
        parameter: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let parameter = parameter.into();
        check_name(&parameter, "query parameter")?;
        self.config.query_token_parameter = Some(parameter);
        self.query_tokens_allowed = true;
        Ok(self)
    }

    /// Finishes the layer.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoTransports`] without transports;
    /// [`ConfigError::QueryTokensNotAllowed`] for the query-token transport
    /// without the dangerous opt-in;
    /// [`ConfigError::ApplicationProtocolsRequired`] for the subprotocol
    /// transport without application protocols;
    /// [`ConfigError::OriginAllowlistRequired`] for the cookie or Basic
    /// transport without an Origin allowlist.
    pub fn build(mut self) -> Result<HandshakeLayer<A, L>, ConfigError> {
        let config = &mut self.config;
        if self.query_tokens_allowed {
            if !config.transports.contains(&Transport::QueryToken) {
                config.transports.push(Transport::QueryToken);
            }
        } else if config.transports.contains(&Transport::QueryToken) {
            return Err(ConfigError::QueryTokensNotAllowed);
        }
        if config.transports.is_empty() {
            return Err(ConfigError::NoTransports);
        }
        // The certificate is always there on a mutual-TLS connection: it is
        // the credential of last resort, after everything the request
        // carries.
        config
            .transports
            .sort_by_key(|transport| *transport == Transport::Certificate);
        if config.transports.contains(&Transport::Subprotocol)
            && config.application_protocols.is_empty()
        {
            return Err(ConfigError::ApplicationProtocolsRequired);
        }
        if config.origins.is_none()
            && let Some(ambient) = config
                .transports
                .iter()
                .find(|transport| transport.is_ambient())
        {
            return Err(ConfigError::OriginAllowlistRequired {
                transport: ambient.as_str(),
            });
        }
        Ok(HandshakeLayer {
            config: Arc::new(self.config),
        })
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

/// Marks a request that arrived over TLS: insert it into the request
/// extensions in your TLS acceptor, for
/// [`HandshakeLayerBuilder::require_secure_transport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecureTransport;

impl<A, L> Config<A, L> {
    pub(super) fn is_secure<B>(&self, request: &Request<B>) -> bool {
        request.extensions().get::<SecureTransport>().is_some()
            || request.uri().scheme() == Some(&http::uri::Scheme::HTTPS)
            || forwarded_https(peer(request), request.headers(), &self.trusted_proxies)
    }

    pub(super) fn refuse(&self, reason: RejectionReason) -> HandshakeRejection {
        let rejection = HandshakeRejection::new(reason)
            .with_challenge(self.realm, self.transports.contains(&Transport::Basic));
        if self.dpop_mode == DpopMode::Off {
            return rejection;
        }
        let algorithms: Vec<String> = self
            .dpop
            .algorithms()
            .iter()
            .map(|algorithm| format!("{algorithm:?}"))
            .collect();
        rejection
            .with_dpop_challenge(algorithms.join(" "), self.dpop_mode == DpopMode::Required)
            // Only a 401 hands a nonce out: no HMAC for other refusals.
            .with_dpop_nonce(
                (reason.status() == http::StatusCode::UNAUTHORIZED)
                    .then(|| self.dpop.nonce())
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
        let proof = if self.dpop_mode == DpopMode::Off {
            None
        } else {
            credentials
                .dpop_proof()
                .map_err(|reason| (reason, Some(transport)))?
        };
        // Only a proof names a URL to compare.
        let target = proof.as_ref().and_then(|_| {
            Addressed::of(request.headers(), request.uri(), request.extensions())
                .target(peer(request), &self.trusted_proxies)
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
            peer(request).is_some_and(|peer| self.trusted_proxies.contains(&peer.ip()));
        if let Some(forwarded) = &self.forwarded_certificates {
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
}

impl<A, L> Clone for HandshakeLayer<A, L> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
        }
    }
}

impl<S, A, L> Layer<S> for HandshakeLayer<A, L> {
    type Service = Handshake<S, A, L>;

    fn layer(&self, inner: S) -> Self::Service {
        Handshake::new(inner, self.config.clone())
    }
}

/// The socket peer, when the server recorded it (`ConnectInfo`).
pub(super) fn peer<B>(request: &Request<B>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

impl<A: std::fmt::Debug, L: std::fmt::Debug> std::fmt::Debug for Config<A, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("authenticator", &self.authenticator)
            .field("transports", &self.transports)
            .field("origins", &self.origins)
            .field("application_protocols", &self.application_protocols)
            .field("cookie_name", &self.cookie_name)
            .field("query_token_parameter", &self.query_token_parameter)
            .field("realm", &self.realm)
            .field("auditor", &self.auditor)
            .field("limiter", &self.limiter)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("require_secure_transport", &self.require_secure_transport)
            .field("revocations", &self.revocations)
            .field("sockets", &self.sockets)
            .field("dpop", &self.dpop)
            .field("dpop_mode", &self.dpop_mode)
            .field("forwarded_certificates", &self.forwarded_certificates)
            .finish()
    }
}

impl<A: std::fmt::Debug, L: std::fmt::Debug> std::fmt::Debug for HandshakeLayer<A, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeLayer")
            .field("config", &self.config)
            .finish()
    }
}

impl<A: std::fmt::Debug, L: std::fmt::Debug> std::fmt::Debug for HandshakeLayerBuilder<A, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeLayerBuilder")
            .field("config", &self.config)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticate::BearerAuthenticator;
    use crate::jwt::{Algorithm, JwtVerifier, VerificationKey};

    fn builder() -> HandshakeLayerBuilder<BearerAuthenticator<JwtVerifier>> {
        let verifier = JwtVerifier::builder()
            .key(VerificationKey::hmac(&[1; 32], Algorithm::HS256).unwrap())
            .build()
            .unwrap();
        HandshakeLayer::builder(BearerAuthenticator::new(verifier))
    }

    #[test]
    fn builder_refuses_bad_names() {
        struct Case {
            name: &'static str,
            result: Result<(), ConfigError>,
            expect: ConfigError,
        }
        let cases = [
            Case {
                name: "cookie name with a space",
                result: builder().cookie_name("my cookie").map(drop),
                expect: ConfigError::InvalidName("cookie"),
            },
            Case {
                name: "empty cookie name",
                result: builder().cookie_name("").map(drop),
                expect: ConfigError::InvalidName("cookie"),
            },
            Case {
                name: "realm with a quote",
                result: builder().realm("a\"b").map(drop),
                expect: ConfigError::InvalidName("realm"),
            },
            Case {
                name: "application protocol with a comma",
                result: builder().application_protocols(["a,b"]).map(drop),
                expect: ConfigError::InvalidName("subprotocol"),
            },
            Case {
                name: "application protocol that looks like a token entry",
                result: builder()
                    .application_protocols(["WSGATE.bearer.x"])
                    .map(drop),
                expect: ConfigError::InvalidName("subprotocol"),
            },
            Case {
                name: "query parameter with an equals sign",
                result: builder().dangerous_allow_query_tokens("a=b").map(drop),
                expect: ConfigError::InvalidName("query parameter"),
            },
            Case {
                name: "allowlist entry with a path",
                result: builder().allowed_origins(["https://a.example/x"]).map(drop),
                expect: ConfigError::InvalidOrigin,
            },
        ];
        for case in cases {
            assert_eq!(case.result, Err(case.expect), "{}", case.name);
        }
    }

    #[test]
    fn query_token_transport_needs_the_dangerous_opt_in() {
        let refused = builder()
            .transports([Transport::Bearer, Transport::QueryToken])
            .build();
        assert_eq!(refused.unwrap_err(), ConfigError::QueryTokensNotAllowed);
        let layer = builder()
            .transports([Transport::Bearer])
            .dangerous_allow_query_tokens("access_token")
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            layer.config.transports,
            [Transport::Bearer, Transport::QueryToken]
        );
    }
}
