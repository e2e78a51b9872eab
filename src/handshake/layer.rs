//! The handshake layer and its builder.

use std::sync::Arc;

use tower_layer::Layer;

use crate::authenticate::Authenticator;
use crate::error::ConfigError;
use crate::handshake::config::{Config, Settings};
use crate::handshake::origin::OriginAllowlist;
use crate::handshake::service::Handshake;
use crate::handshake::subprotocol::{strip_proof_prefix, strip_token_prefix};
use crate::limit::{FailureLimiter, InMemoryFailureLimiter};
use crate::principal::Transport;
use crate::wiring::settings::Wiring;

#[cfg(doc)]
use crate::handshake::SecureTransport;

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

impl<A: Authenticator> HandshakeLayer<A> {
    /// Starts a layer that authenticates with `authenticator`.
    ///
    /// Defaults: transports Bearer, subprotocol and ticket, in that order; no
    /// Origin allowlist; no application protocols; cookie
    /// `wsgate_token`; realm `wsgate`; failed Basic attempts limited by an
    /// [`InMemoryFailureLimiter`]; no trusted proxies.
    pub fn builder(authenticator: A) -> HandshakeLayerBuilder<A> {
        HandshakeLayerBuilder::from_settings(
            authenticator,
            InMemoryFailureLimiter::new(),
            Settings::default(),
        )
    }
}

impl<A: Authenticator, L: FailureLimiter> HandshakeLayerBuilder<A, L> {
    /// Starts a layer from a [`Gate`](crate::Gate)'s settings.
    pub(crate) fn from_settings(authenticator: A, limiter: L, settings: Settings) -> Self {
        HandshakeLayerBuilder {
            config: Config {
                authenticator,
                limiter,
                settings,
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
        self.config.settings.transports = transports.into_iter().collect();
        self.config.settings.transports.dedup();
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
        self.config.settings.origins = Some(OriginAllowlist::new(origins)?);
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
        self.config.settings.application_protocols = protocols;
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
        self.config.settings.cookie_name = name;
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
        self.config.settings.realm = realm;
        Ok(self)
    }

    /// Limits failed password attempts (Basic) per account and per client
    /// address: a locked account or address gets 429 with `Retry-After`,
    /// right password or not, before any hashing. Defaults to an
    /// [`InMemoryFailureLimiter`] with its defaults (share one with your
    /// login route by passing a clone); [`NoLimits`](crate::limit::NoLimits)
    /// turns it off.
    pub fn failure_limiter<L2: FailureLimiter>(self, limiter: L2) -> HandshakeLayerBuilder<A, L2> {
        HandshakeLayerBuilder {
            config: Config {
                authenticator: self.config.authenticator,
                limiter,
                settings: self.config.settings,
            },
            query_tokens_allowed: self.query_tokens_allowed,
        }
    }

    /// Refuses (403) handshakes that did not come over TLS. A request is
    /// secure when the server marked it with [`SecureTransport`] (your TLS
    /// acceptor does that), when its URI scheme is `https`, or when a
    /// trusted proxy says so (`X-Forwarded-Proto: https`, `Forwarded:
    /// proto=https`). Defaults to off; turn it on in production.
    pub fn require_secure_transport(mut self, required: bool) -> Self {
        self.config.settings.require_secure_transport = required;
        self
    }

    /// The settings every stage shares ([`Wiring`]): trusted proxies (the
    /// failure limiter, secure-transport checks, DPoP's URL, the audit
    /// trail), the audit, the revocation store checked after
    /// authentication on every transport, DPoP, forwarded certificates,
    /// how refusals are answered. Defaults to [`Wiring::default`]; a
    /// [`Gate`](crate::Gate)'s layers have the gate's.
    pub fn wiring(mut self, wiring: &Wiring) -> Self {
        self.config.settings.wiring = wiring.clone();
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
        self.config.settings.query_token_parameter = Some(parameter);
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
        let settings = &mut self.config.settings;
        if self.query_tokens_allowed {
            if !settings.transports.contains(&Transport::QueryToken) {
                settings.transports.push(Transport::QueryToken);
            }
        } else if settings.transports.contains(&Transport::QueryToken) {
            return Err(ConfigError::QueryTokensNotAllowed);
        }
        if settings.transports.is_empty() {
            return Err(ConfigError::NoTransports);
        }
        // The certificate is always there on a mutual-TLS connection: it is
        // the credential of last resort, after everything the request
        // carries.
        settings
            .transports
            .sort_by_key(|transport| *transport == Transport::Certificate);
        if settings.transports.contains(&Transport::Subprotocol)
            && settings.application_protocols.is_empty()
        {
            return Err(ConfigError::ApplicationProtocolsRequired);
        }
        if settings.origins.is_none()
            && let Some(ambient) = settings
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
            layer.config.settings.transports,
            [Transport::Bearer, Transport::QueryToken]
        );
    }
}
