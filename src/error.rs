//! The crate error: one type, with kinds grouped by cause.

use std::error::Error as StdError;
use std::fmt;

/// The error type of wsgate.
///
/// Small (one pointer) so `Result<T, Error>` stays cheap on hot paths; look at
/// [`Error::kind`] to see what went wrong. Its text is a short stable phrase
/// and never contains a secret.
pub struct Error(Box<ErrorKind>);

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A token failed verification.
    #[error(transparent)]
    Token(TokenError),
    /// Presented credentials were refused (password, ticket).
    #[error(transparent)]
    Credentials(CredentialError),
    /// A proof of possession (DPoP, RFC 9449) was missing where the token
    /// is bound to a key, or invalid, or replayed. 401 with a `DPoP`
    /// challenge.
    #[error(transparent)]
    Dpop(DpopError),
    /// The account exists and the password was right, but the account may not
    /// sign in.
    #[error("account disabled")]
    AccountDisabled,
    /// This authenticator does not handle this kind of credential; a chain
    /// moves on to its next authenticator.
    #[error("unsupported credential")]
    UnsupportedCredential,
    /// A backend (credential store, ticket store, identity provider) failed.
    /// wsgate fails closed: the request is refused with 503.
    #[error("backend unavailable")]
    Backend(#[source] Box<dyn StdError + Send + Sync>),
    /// Too many failed attempts: the account or the client address is
    /// locked for `retry_after`. The handshake answers 429 with
    /// `Retry-After`.
    #[error("too many attempts")]
    TooManyAttempts {
        /// How long until the lock lifts.
        retry_after: std::time::Duration,
    },
    /// The subject already holds as many unredeemed tickets as it may
    /// ([`GateBuilder::max_tickets_per_subject`](crate::GateBuilder::max_tickets_per_subject)):
    /// one frees its place once redeemed or expired, within `retry_after`.
    /// The ticket route answers 429 with `Retry-After`.
    #[error("too many tickets")]
    TooManyTickets {
        /// When one of the subject's tickets has expired at the latest.
        retry_after: std::time::Duration,
    },
    /// The subject already holds as many live sockets as it may
    /// ([`GateBuilder::max_sockets_per_subject`](crate::GateBuilder::max_sockets_per_subject)).
    /// A handshake answers 429 `too many connections` with `Retry-After`;
    /// a first-message route closes with 4429.
    #[error("too many connections")]
    TooManyConnections {
        /// A guess: one of the subject's sockets has to close first.
        retry_after: std::time::Duration,
    },
    /// Too much work queued (password hashing): refused at once rather
    /// than queued without end. The handshake answers 503.
    #[error("overloaded")]
    Overloaded,
    /// Invalid configuration.
    #[error(transparent)]
    Config(ConfigError),
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url segments, or a segment that does not decode to
    /// what it should.
    #[error("malformed token")]
    Malformed,
    /// Longer than the configured cap.
    #[error("token too large")]
    TooLarge,
    /// The header names an algorithm the selected key is not pinned to
    /// (`none`, or key confusion such as HS256 against an RSA key).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No configured key matches the header's `kid`.
    #[error("unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// The header carries a `crit` extension wsgate does not understand.
    #[error("unsupported header")]
    UnsupportedHeader,
    /// `exp` is past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// The token, its subject or its session was revoked.
    #[error("token revoked")]
    Revoked,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// A required claim is absent.
    #[error("missing claim `{0}`")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an impossible value.
    #[error("invalid claim `{0}`")]
    InvalidClaim(&'static str),
    /// `iss` is not the configured issuer.
    #[error("invalid issuer")]
    InvalidIssuer,
    /// The issuer (an identity provider, by introspection) says the token
    /// is not active: revoked, expired or never issued.
    #[error("token inactive")]
    Inactive,
    /// `aud` does not name a configured audience.
    #[error("invalid audience")]
    InvalidAudience,
    /// The header `typ` is not the configured type.
    #[error("invalid token type")]
    InvalidType,
    /// The token is sent as what it is not: a key-bound token (`cnf`) as
    /// a bearer token, or a bearer token under the `DPoP` scheme or where
    /// only sender-constrained tokens are taken; or it is bound to a
    /// certificate the connection did not present.
    #[error("token not confirmed")]
    NotConfirmed,
}

/// Why presented credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Unknown user or wrong password: deliberately one case, so the answer is
    /// no oracle for which usernames exist.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The password is longer than the cap; refused before any hashing.
    #[error("invalid credentials")]
    PasswordTooLong,
    /// Unknown, already used or expired ticket (indistinguishable on purpose).
    #[error("invalid ticket")]
    InvalidTicket,
    /// A client certificate that is past its validity, not yet valid, or
    /// that the certificate authenticator could not map to a subject.
    #[error("invalid certificate")]
    InvalidCertificate,
    /// A refresh token that is unknown, expired, spent or of an ended
    /// session (indistinguishable on purpose: OAuth's `invalid_grant`).
    #[error("invalid grant")]
    InvalidGrant,
}

/// Why a DPoP proof (RFC 9449) was refused. The text is a short stable
/// phrase; the audit records `invalid dpop proof` or `dpop replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// The token is bound to a key (`cnf.jkt`) and no proof came with it.
    #[error("dpop proof required")]
    Missing,
    /// Not a compact JWS, or a part that does not decode.
    #[error("malformed dpop proof")]
    Malformed,
    /// Longer than 8 KiB, or a `jti` longer than 128 bytes.
    #[error("dpop proof too large")]
    TooLarge,
    /// Two proofs (two `DPoP` headers, two subprotocol entries).
    #[error("more than one dpop proof")]
    Ambiguous,
    /// The header `typ` is not `dpop+jwt`, or it names an extension
    /// (`crit`, `b64`).
    #[error("not a dpop proof")]
    InvalidType,
    /// An `alg` outside the allowlist (never `none`, never HMAC).
    #[error("dpop algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No `jwk`, a `jwk` with private or symmetric members, or one that
    /// does not fit the `alg`.
    #[error("invalid dpop key")]
    InvalidKey,
    /// The signature does not verify with the `jwk`.
    #[error("invalid dpop signature")]
    InvalidSignature,
    /// `htm` is not the request's method.
    #[error("dpop method mismatch")]
    MethodMismatch,
    /// `htu` is not the request's URL.
    #[error("dpop url mismatch")]
    UrlMismatch,
    /// `iat` is older than the window allows, or ahead of the clock.
    #[error("dpop proof not fresh")]
    NotFresh,
    /// A required claim (`htm`, `htu`, `iat`, `jti`, `ath`) is absent or
    /// not of its type.
    #[error("invalid dpop claim `{0}`")]
    InvalidClaim(&'static str),
    /// `ath` is not the hash of the token that came with the proof.
    #[error("dpop token hash mismatch")]
    TokenHashMismatch,
    /// The proof's key is not the one the token is bound to.
    #[error("dpop key mismatch")]
    KeyMismatch,
    /// This proof's `jti` was seen before, within the window.
    #[error("dpop replay")]
    Replay,
    /// Server nonces are on and the proof carries no `nonce`, or one that
    /// is not the server's or no longer current (RFC 9449 §9): the
    /// refusal carries a fresh one in `DPoP-Nonce`.
    #[error("dpop nonce required")]
    NonceRequired,
}

/// A configuration mistake, reported by the builder that found it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An HMAC key shorter than the hash output of its algorithm (RFC 7518
    /// §3.2), and never shorter than 32 bytes.
    #[error("HMAC key for {algorithm} must be at least {min_bytes} bytes")]
    WeakHmacKey {
        /// The algorithm the key was meant for.
        algorithm: &'static str,
        /// The shortest acceptable key.
        min_bytes: usize,
    },
    /// The algorithm does not fit the kind of key given.
    #[error("algorithm {algorithm} does not fit this key")]
    AlgorithmMismatch {
        /// The algorithm that was asked for.
        algorithm: &'static str,
    },
    /// Key material could not be parsed.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A JWK that may not be used to verify signatures (`use`, `key_ops`).
    #[error("key is not meant for verifying signatures")]
    KeyUseNotSignature,
    /// A verifier or issuer without keys.
    #[error("no keys configured")]
    NoKeys,
    /// Two keys with the same `kid`.
    #[error("duplicate key id")]
    DuplicateKeyId,
    /// Several keys without a `kid`: the verifier could not tell them apart.
    #[error("more than one key without a key id")]
    AmbiguousKeys,
    /// Leeway above the 30 second ceiling.
    #[error("leeway must be at most 30 seconds")]
    LeewayTooLarge,
    /// Ticket lifetime above the 30 second ceiling, or zero.
    #[error("ticket lifetime must be between 1 and 30 seconds")]
    TicketLifetime,
    /// Token lifetime of zero.
    #[error("token lifetime must be positive")]
    TokenLifetime,
    /// A transport that a browser sends on its own (cookie, Basic) without an
    /// Origin allowlist: open to Cross-Site WebSocket Hijacking.
    #[error("the {transport} transport requires an Origin allowlist")]
    OriginAllowlistRequired {
        /// The transport that needs it.
        transport: &'static str,
    },
    /// The subprotocol transport without any application protocol: a
    /// browser could never connect with it.
    #[error("the subprotocol transport requires application protocols")]
    ApplicationProtocolsRequired,
    /// The query-token transport listed without
    /// `dangerous_allow_query_tokens`.
    #[error("the query token transport requires dangerous_allow_query_tokens")]
    QueryTokensNotAllowed,
    /// An allowlist entry that is not a `scheme://host[:port]` origin.
    #[error("invalid origin in allowlist")]
    InvalidOrigin,
    /// A handshake layer without any transport.
    #[error("no credential transports configured")]
    NoTransports,
    /// A name (cookie, query parameter, subprotocol) with characters that do
    /// not belong in it.
    #[error("invalid {0} name")]
    InvalidName(&'static str),
    /// An identity-provider verifier without any provider.
    #[error("no identity providers configured")]
    NoProviders,
    /// An issuer that is not an `https://` URL (`http://` only on
    /// loopback), or not a URL.
    #[error("issuer must be an https URL (http only on loopback)")]
    InvalidIssuer,
    /// The same issuer given twice.
    #[error("duplicate issuer")]
    DuplicateIssuer,
    /// More than one provider with introspection: an opaque token names no
    /// issuer, so it could be sent to a provider that did not issue it.
    #[error("only one provider may introspect tokens")]
    AmbiguousIntrospection,
    /// The HTTP client for identity providers could not be made (TLS
    /// setup, or no randomness for the introspection cache key).
    #[error("the HTTP client could not be built")]
    HttpClient,
    /// A Redis URL that is not one.
    #[error("invalid Redis URL")]
    InvalidRedisUrl,
    /// A limit of zero where at least one is needed.
    #[error("{0} must be at least 1")]
    ZeroLimit(&'static str),
    /// An algorithm DPoP proofs may not use (HMAC: a proof's key is
    /// public), or an empty list.
    #[error("DPoP proofs may not use {0}")]
    DpopAlgorithm(&'static str),
    /// A DPoP nonce secret shorter than 32 bytes.
    #[error("the DPoP nonce secret must be at least 32 bytes")]
    WeakNonceSecret,
    /// TLS settings that cannot be used: certificates or a key that do
    /// not parse, no CA certificates for client certificates, a CRL that
    /// does not parse. The text says which; it never holds key material.
    #[error("TLS: {0}")]
    Tls(String),
    /// A refresh sessions' secret shorter than 32 bytes.
    #[error("the refresh session secret must be at least 32 bytes")]
    WeakRefreshSecret,
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// Consumes the error, returning its kind.
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }

    /// Wraps a failure of a backend (store, identity provider). Handshakes
    /// that meet it are refused with 503. A source that already is a
    /// backend `Error` (from a boxed store, say) is returned as it is, not
    /// wrapped a second time; any other `Error` becomes a backend failure,
    /// so a store can never turn its failure into a softer answer.
    pub fn backend(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        match source.into().downcast::<Error>() {
            Ok(error) if matches!(error.kind(), ErrorKind::Backend(_)) => *error,
            Ok(error) => ErrorKind::Backend(error).into(),
            Err(source) => ErrorKind::Backend(source).into(),
        }
    }

    /// A backend failure that knows when it may be over (a provider
    /// whose next fetch is `retry_after` away): the handshake's 503 says so
    /// in `Retry-After`.
    pub fn backend_retry_after(
        source: impl Into<Box<dyn StdError + Send + Sync>>,
        retry_after: std::time::Duration,
    ) -> Self {
        ErrorKind::Backend(Box::new(Unavailable {
            retry_after,
            source: source.into(),
        }))
        .into()
    }

    /// When trying again may succeed: the lock's remaining time for
    /// [`ErrorKind::TooManyAttempts`], a ticket's lifetime for
    /// [`ErrorKind::TooManyTickets`], a guess for
    /// [`ErrorKind::TooManyConnections`], the hint of a backend failure made
    /// by [`backend_retry_after`](Self::backend_retry_after).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match &*self.0 {
            ErrorKind::TooManyAttempts { retry_after }
            | ErrorKind::TooManyTickets { retry_after }
            | ErrorKind::TooManyConnections { retry_after } => Some(*retry_after),
            ErrorKind::Backend(source) => source
                .downcast_ref::<Unavailable>()
                .map(|unavailable| unavailable.retry_after),
            _ => None,
        }
    }

    /// The token error, when this is one.
    pub fn token_error(&self) -> Option<TokenError> {
        match *self.0 {
            ErrorKind::Token(error) => Some(error),
            _ => None,
        }
    }
}

/// A backend failure with a hint of when it may be over.
#[derive(Debug)]
struct Unavailable {
    retry_after: std::time::Duration,
    source: Box<dyn StdError + Send + Sync>,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl StdError for Unavailable {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self(Box::new(kind))
    }
}

impl From<TokenError> for Error {
    fn from(error: TokenError) -> Self {
        ErrorKind::Token(error).into()
    }
}

impl From<DpopError> for Error {
    fn from(error: DpopError) -> Self {
        ErrorKind::Dpop(error).into()
    }
}

impl From<CredentialError> for Error {
    fn from(error: CredentialError) -> Self {
        ErrorKind::Credentials(error).into()
    }
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Self {
        ErrorKind::Config(error).into()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_one_pointer_wide() {
        assert_eq!(size_of::<Error>(), size_of::<usize>());
    }

    #[test]
    fn backend_error_exposes_its_source() {
        let io = std::io::Error::other("connection refused");
        let error = Error::backend(io);
        assert_eq!(error.to_string(), "backend unavailable");
        assert_eq!(error.source().unwrap().to_string(), "connection refused");
    }

    #[test]
    fn a_backend_error_is_wrapped_once() {
        let io = std::io::Error::other("connection refused");
        let twice = Error::backend(Error::backend(io));
        assert!(matches!(twice.kind(), ErrorKind::Backend(_)));
        assert_eq!(twice.source().unwrap().to_string(), "connection refused");
        // Whatever a store reports, it is a failure of the store.
        let softer = Error::backend(Error::from(TokenError::Expired));
        assert!(matches!(softer.kind(), ErrorKind::Backend(_)));
    }

    #[test]
    fn a_backend_failure_can_say_when_to_try_again() {
        let later = Error::backend_retry_after("provider down", std::time::Duration::from_secs(7));
        assert!(matches!(later.kind(), ErrorKind::Backend(_)));
        assert_eq!(later.to_string(), "backend unavailable");
        assert_eq!(later.retry_after(), Some(std::time::Duration::from_secs(7)));
        assert_eq!(Error::backend("down").retry_after(), None);
        let locked: Error = ErrorKind::TooManyAttempts {
            retry_after: std::time::Duration::from_secs(3),
        }
        .into();
        assert_eq!(
            locked.retry_after(),
            Some(std::time::Duration::from_secs(3))
        );
    }

    #[test]
    fn unknown_user_and_wrong_password_read_the_same() {
        assert_eq!(
            CredentialError::InvalidCredentials.to_string(),
            CredentialError::PasswordTooLong.to_string()
        );
    }
}
