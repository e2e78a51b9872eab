//! The verifier for tokens from identity providers.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::Auditor;
use crate::claims::ClaimsMapping;
use crate::clock::Clock;
use crate::error::{ConfigError, Error, TokenError};
use crate::jwt::{JwtVerifier, JwtVerifierBuilder, unverified_issuer};
use crate::oidc::discovery::discovery_url;
use crate::oidc::fetch::{FetchLimits, Fetcher};
use crate::oidc::introspection::Introspector;
use crate::oidc::key_cache::{KeyCache, Snapshot, Timing, Trigger};
use crate::principal::Principal;
use crate::secret::Secret;
use crate::token::{BoxedVerifier, TokenVerifier};

/// The default cap on a token's length, as for [`JwtVerifier`].
const MAX_TOKEN_BYTES: usize = crate::jwt::DEFAULT_MAX_TOKEN_BYTES;

/// One identity provider: its issuer URL, the checks its tokens must pass,
/// and (for opaque tokens) the client credentials to introspect them with.
///
/// ```
/// use wsgate::claims::ClaimPaths;
/// use wsgate::oidc::OidcProvider;
///
/// let keycloak = OidcProvider::new("https://sso.example.com/realms/app")
///     .audience("chat-api")
///     .claims_mapping(ClaimPaths::keycloak(Some("chat-api")));
/// # let _ = keycloak;
/// ```
#[derive(Debug)]
#[must_use]
pub struct OidcProvider {
    issuer: String,
    checks: JwtVerifierBuilder,
    introspection: Option<(String, Secret)>,
}

impl OidcProvider {
    /// The provider whose discovery document is at
    /// `<issuer>/.well-known/openid-configuration`. Its tokens must carry
    /// exactly this `iss`, and so must the document.
    pub fn new(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        Self {
            checks: JwtVerifier::builder().issuer(issuer.clone()),
            issuer,
            introspection: None,
        }
    }

    /// Requires `aud` to name `audience` (call again to accept several).
    /// Set one: an access token for another API of the same provider must
    /// not open your sockets.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.checks = self.checks.audience(audience);
        self
    }

    /// Requires the JWT header `typ` to be `token_type` (`at+jwt` for
    /// RFC 9068 access tokens). Defaults to no check, since several
    /// providers send `JWT`.
    pub fn token_type(mut self, token_type: impl Into<String>) -> Self {
        self.checks = self.checks.token_type(token_type);
        self
    }

    /// Clock skew tolerated on `exp` and `nbf`. Defaults to zero.
    ///
    /// # Errors
    ///
    /// [`ConfigError::LeewayTooLarge`] above 30 seconds.
    pub fn leeway(mut self, leeway: Duration) -> Result<Self, ConfigError> {
        self.checks = self.checks.leeway(leeway)?;
        Ok(self)
    }

    /// Reads roles and scopes from this provider's claim layout (see
    /// [`crate::claims`]); applied to JWTs and introspection answers alike.
    pub fn claims_mapping(mut self, mapping: impl ClaimsMapping) -> Self {
        self.checks = self.checks.claims_mapping(mapping);
        self
    }

    /// Checks tokens that are not JWTs by RFC 7662 introspection at the
    /// provider's `introspection_endpoint`, authenticated with these client
    /// credentials (HTTP Basic). Only one provider of a verifier may
    /// introspect: an opaque token names no issuer, and must never be sent
    /// to a provider that did not issue it.
    pub fn introspection(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        self.introspection = Some((client_id.into(), client_secret.into()));
        self
    }
}

/// Verifies access tokens from one or more OpenID Connect providers: JWTs
/// with the keys of the provider their `iss` names, opaque tokens by
/// introspection.
///
/// Cheap to clone. Build it with [`OidcVerifier::builder`]; see the
/// [module documentation](crate::oidc) for what it fetches, caches and
/// refuses.
#[derive(Clone, Debug)]
pub struct OidcVerifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    providers: Vec<ProviderChecks>,
    fallback: Option<BoxedVerifier>,
    max_token_bytes: usize,
}

#[derive(Debug)]
struct ProviderChecks {
    cache: Arc<KeyCache>,
    claims: JwtVerifier,
    introspector: Option<Arc<Introspector>>,
}

/// Builds an [`OidcVerifier`].
#[derive(Debug)]
#[must_use]
pub struct OidcVerifierBuilder {
    providers: Vec<OidcProvider>,
    fallback: Option<BoxedVerifier>,
    auditor: Auditor,
    clock: Clock,
    timing: Timing,
    limits: FetchLimits,
    introspection_max_age: Duration,
    recheck_every: Duration,
}

impl OidcVerifier {
    /// Starts a verifier with no providers and the defaults of
    /// [`crate::oidc`].
    pub fn builder() -> OidcVerifierBuilder {
        OidcVerifierBuilder {
            providers: Vec::new(),
            fallback: None,
            auditor: Auditor::tracing(),
            clock: Clock::system(),
            timing: Timing::default(),
            limits: FetchLimits::default(),
            introspection_max_age: Duration::from_secs(60),
            recheck_every: Duration::from_secs(60),
        }
    }

    /// Starts fetching every provider's keys in the background, if not
    /// started yet. Never waits for the provider. [`build`] calls it when
    /// it runs inside a tokio runtime; otherwise the first verification
    /// does.
    ///
    /// [`build`]: OidcVerifierBuilder::build
    pub fn start(&self) {
        for provider in &self.inner.providers {
            provider.cache.start();
        }
    }

    /// How many keys of `issuer`'s set are cached now (`None` for an
    /// issuer this verifier does not know): for health checks and tests.
    pub fn cached_keys(&self, issuer: &str) -> Option<usize> {
        self.provider(issuer)
            .map(|provider| provider.cache.snapshot().keys.len())
    }

    fn provider(&self, issuer: &str) -> Option<&ProviderChecks> {
        self.inner
            .providers
            .iter()
            .find(|provider| provider.cache.issuer() == issuer)
    }

    async fn verify_token(&self, token: &str) -> Result<Principal, Error> {
        let inner = &self.inner;
        if token.len() > inner.max_token_bytes {
            return Err(TokenError::TooLarge.into());
        }
        if crate::jwt::looks_like_jwt(token) {
            let provider = unverified_issuer(token)
                .as_deref()
                .and_then(|issuer| self.provider(issuer));
            return match (provider, &inner.fallback) {
                (Some(provider), _) => provider.verify_jwt(token).await,
                (None, Some(fallback)) => fallback.verify(token).await,
                (None, None) => Err(TokenError::InvalidIssuer.into()),
            };
        }
        let introspecting = inner
            .providers
            .iter()
            .find_map(|provider| Some((provider, provider.introspector.as_ref()?)));
        match (introspecting, &inner.fallback) {
            (Some((provider, introspector)), _) => {
                // RFC 6750 b64token characters only: nothing else is sent.
                if !is_b64token(token) {
                    return Err(TokenError::Malformed.into());
                }
                provider.cache.start();
                introspector.verify(&provider.cache, token).await
            }
            (None, Some(fallback)) => fallback.verify(token).await,
            (None, None) => Err(TokenError::Malformed.into()),
        }
    }
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte))
}

impl ProviderChecks {
    /// A JWT of this provider: the cached keys, a shared fetch when there
    /// are none (or the token's `kid` is not among them and the cooldown
    /// allows), 503 while no keys can be had.
    async fn verify_jwt(&self, token: &str) -> Result<Principal, Error> {
        let cache = &self.cache;
        cache.start();
        let mut snapshot = cache.snapshot();
        if !cache.usable(&snapshot) {
            snapshot = match self.refetched(Trigger::NoKeys).await {
                Some(refetched) => refetched?,
                None => self.usable_snapshot()?,
            };
        }
        match self.claims.verify_with_keys(token, &snapshot.keys) {
            Err(error) if error.token_error() == Some(TokenError::UnknownKey) => {
                match self.refetched(Trigger::UnknownKid).await {
                    // Inside the cooldown: refused at once.
                    None => Err(error),
                    Some(snapshot) => self.claims.verify_with_keys(token, &snapshot?.keys),
                }
            }
            outcome => outcome,
        }
    }

    /// The keys after the refetch `trigger` asks for (joined or started);
    /// `None` when none may start (the cooldown).
    async fn refetched(&self, trigger: Trigger) -> Option<Result<Arc<Snapshot>, Error>> {
        self.cache.refetch(trigger)?.await;
        Some(self.usable_snapshot())
    }

    /// The keys now, or 503 while none can be had.
    fn usable_snapshot(&self) -> Result<Arc<Snapshot>, Error> {
        let snapshot = self.cache.snapshot();
        if self.cache.usable(&snapshot) {
            Ok(snapshot)
        } else {
            Err(self.unavailable())
        }
    }

    fn unavailable(&self) -> Error {
        Error::backend_retry_after(
            "identity provider keys unavailable",
            self.cache.retry_after(),
        )
    }
}

impl TokenVerifier for OidcVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, Error> {
        self.verify_token(token).await
    }
}

impl OidcVerifierBuilder {
    /// Adds a provider. A token's `iss` picks the provider whose keys
    /// verify it; keys are never shared between providers.
    pub fn provider(mut self, provider: OidcProvider) -> Self {
        self.providers.push(provider);
        self
    }

    /// Tokens no provider claims (a JWT whose `iss` is none of theirs, an
    /// opaque token when none introspects) go to `verifier`: how local
    /// tokens keep working next to a provider's. Defaults to none (such
    /// tokens are refused, 401).
    pub fn fallback(mut self, verifier: impl TokenVerifier) -> Self {
        self.fallback = Some(BoxedVerifier::new(verifier));
        self
    }

    /// Where key fetches and introspections are recorded. Defaults to the
    /// `tracing` sink; give it the gate's auditor to see them with the
    /// handshakes.
    pub fn audit(mut self, auditor: Auditor) -> Self {
        self.auditor = auditor;
        self
    }

    /// The clock `exp` and `nbf` are checked against. Defaults to the
    /// system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A token whose `kid` is unknown (or a token while no keys are had)
    /// starts a refetch at most this often; in between it is refused at
    /// once (401, or 503 without keys). Defaults to 10 s.
    pub fn refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.timing.cooldown = cooldown.max(Duration::from_millis(100));
        self
    }

    /// Keys are fresh for the answer's `Cache-Control: max-age`, clamped to
    /// `min..=max` (defaults: 1 min to 24 h), and refreshed in the
    /// background before that; without `max-age`, for `default`
    /// (defaults to 10 min).
    pub fn key_lifetime(mut self, default: Duration, min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_secs(1));
        let max = max.max(min);
        self.timing.min_max_age = min;
        self.timing.max_max_age = max;
        self.timing.default_max_age = default.clamp(min, max);
        self
    }

    /// While every refresh fails, the last good keys serve this long after
    /// they were fetched; then the provider's tokens are refused with 503.
    /// Defaults to 24 h.
    pub fn serve_stale_keys_for(mut self, bound: Duration) -> Self {
        self.timing.serve_stale_for = bound;
        self
    }

    /// Timeouts of every request to a provider: to connect, and in all
    /// (body included). Defaults to 2 s and 5 s.
    pub fn timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.limits.connect_timeout = connect;
        self.limits.total_timeout = total.max(connect);
        self
    }

    /// The largest answer read from a provider. Defaults to 256 KiB.
    pub fn max_response_bytes(mut self, max: usize) -> Self {
        self.limits.max_body_bytes = max.max(1024);
        self
    }

    /// Introspection answers are cached at most this long, and never past
    /// the token's `exp`. Defaults to 60 s.
    pub fn introspection_cache(mut self, max_age: Duration) -> Self {
        self.introspection_max_age = max_age;
        self
    }

    /// A live socket opened with an introspected token asks the provider
    /// again this often, and closes with 4403 `token revoked` once the
    /// answer is `active: false`. Defaults to 60 s (at least 1 s).
    pub fn recheck_every(mut self, every: Duration) -> Self {
        self.recheck_every = every;
        self
    }

    /// Finishes the verifier. Never contacts a provider: inside a tokio
    /// runtime, the first fetches start in the background.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoProviders`] without a provider,
    /// [`ConfigError::InvalidIssuer`] for an issuer that is not an
    /// `https://` URL (or `http://` on loopback),
    /// [`ConfigError::DuplicateIssuer`] for an issuer given twice,
    /// [`ConfigError::AmbiguousIntrospection`] when more than one provider
    /// introspects, [`ConfigError::HttpClient`] when the HTTP client
    /// cannot be made.
    pub fn build(self) -> Result<OidcVerifier, ConfigError> {
        if self.providers.is_empty() {
            return Err(ConfigError::NoProviders);
        }
        if self
            .providers
            .iter()
            .filter(|provider| provider.introspection.is_some())
            .count()
            > 1
        {
            return Err(ConfigError::AmbiguousIntrospection);
        }
        let fetcher = Fetcher::new(self.limits)?;
        let mut providers: Vec<ProviderChecks> = Vec::with_capacity(self.providers.len());
        for provider in self.providers {
            if providers
                .iter()
                .any(|known| known.cache.issuer() == provider.issuer)
            {
                return Err(ConfigError::DuplicateIssuer);
            }
            let url = discovery_url(&provider.issuer).map_err(|_| ConfigError::InvalidIssuer)?;
            let claims = provider
                .checks
                .clock(self.clock.clone())
                .build_without_keys();
            let introspector = provider
                .introspection
                .map(|(client_id, client_secret)| {
                    Introspector::new(
                        client_id,
                        client_secret,
                        claims.clone(),
                        self.clock.clone(),
                        self.introspection_max_age,
                        self.recheck_every,
                    )
                    .map(Arc::new)
                })
                .transpose()?;
            let cache = KeyCache::new(
                provider.issuer,
                url,
                fetcher.clone(),
                self.timing,
                self.auditor.clone(),
            );
            providers.push(ProviderChecks {
                cache,
                claims,
                introspector,
            });
        }
        let verifier = OidcVerifier {
            inner: Arc::new(Inner {
                providers,
                fallback: self.fallback,
                max_token_bytes: MAX_TOKEN_BYTES,
            }),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            verifier.start();
        }
        Ok(verifier)
    }
}
