//! Why a credential or a request was refused: one classification for
//! every stage, and how a refused handshake is answered.

mod response;

use std::fmt;

use http::StatusCode;

use crate::error::{CredentialError, DpopError, Error, ErrorKind, TokenError};
use crate::session::{Close, CloseKind, reason};

pub(crate) use self::response::{DPOP_NONCE, Rejections};
pub use self::response::{DefaultRejectionResponse, HandshakeRejection, RejectionResponse};

/// Why a handshake was refused. Rides in the response extensions, so outer
/// layers (logging, metrics) can see it without parsing the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionReason {
    /// No credentials in any configured transport. 401.
    MissingCredentials,
    /// Credentials of a kind no authenticator handles. 401.
    UnsupportedCredential,
    /// A token that failed verification. 401 `invalid_token`.
    InvalidToken,
    /// An expired token. 401 `invalid_token`.
    TokenExpired,
    /// A token whose `nbf` is in the future. 401 `invalid_token`.
    TokenNotYetValid,
    /// A revoked token (or subject, or session). 401 `invalid_token`.
    TokenRevoked,
    /// An unknown, used or expired ticket. 401 `invalid_token`.
    InvalidTicket,
    /// Unknown user or wrong password (deliberately one case). 401.
    InvalidCredentials,
    /// Credentials that cannot be parsed (Basic that is not base64 of
    /// `user:password`). 400 `invalid_request`.
    MalformedCredentials,
    /// Credentials given twice (two `Authorization` headers, two token
    /// subprotocols, two tickets, two cookies). 400 `invalid_request`.
    AmbiguousCredentials,
    /// A raw token in the query string, where it would be written to access
    /// logs. 400 `invalid_request`.
    TokenInQuery,
    /// A token subprotocol without an application protocol the server
    /// speaks. 400 `invalid_request`.
    ApplicationProtocolRequired,
    /// An `Origin` not on the allowlist, or `null`. 403.
    OriginNotAllowed,
    /// A cookie or Basic handshake without an `Origin` header. 403.
    OriginRequired,
    /// Right password, disabled account. 403.
    AccountDisabled,
    /// A plain `ws://` handshake where a secure transport is required. 403.
    InsecureTransport,
    /// Too many attempts; `Retry-After` says when to try again. 429.
    TooManyAttempts,
    /// A DPoP proof missing for a bound token, or invalid. 401 with
    /// `WWW-Authenticate: DPoP error="invalid_dpop_proof"`.
    InvalidDpopProof,
    /// A DPoP proof whose `jti` was seen before. 401 like
    /// [`InvalidDpopProof`](Self::InvalidDpopProof).
    DpopReplay,
    /// Server nonces are on and the proof has none, or a stale one. 401
    /// with `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a fresh
    /// nonce in `DPoP-Nonce`: the client's next proof carries it.
    DpopNonceRequired,
    /// The subject holds its limit of live sockets; `Retry-After` says
    /// when to try again. 429.
    TooManyConnections,
    /// A client certificate past its validity, one the certificate
    /// authenticator could not map to a subject, or a forwarded one that
    /// does not parse or verify. 401.
    InvalidCertificate,
    /// A forwarded-certificate header from a peer that is not a trusted
    /// proxy: a forged credential. 400 `invalid_request`.
    UntrustedCertificateHeader,
    /// A backend failed; wsgate fails closed. 503.
    BackendUnavailable,
    /// Too much work queued (password hashing); `Retry-After` says when to
    /// try again. 503.
    Overloaded,
}

impl RejectionReason {
    /// The HTTP status sent for this reason.
    pub fn status(self) -> StatusCode {
        use RejectionReason::*;
        match self {
            MissingCredentials
            | UnsupportedCredential
            | InvalidToken
            | TokenExpired
            | TokenNotYetValid
            | TokenRevoked
            | InvalidTicket
            | InvalidCredentials
            | InvalidDpopProof
            | DpopReplay
            | DpopNonceRequired
            | InvalidCertificate => StatusCode::UNAUTHORIZED,
            MalformedCredentials
            | AmbiguousCredentials
            | TokenInQuery
            | ApplicationProtocolRequired
            | UntrustedCertificateHeader => StatusCode::BAD_REQUEST,
            OriginNotAllowed | OriginRequired | AccountDisabled | InsecureTransport => {
                StatusCode::FORBIDDEN
            }
            TooManyAttempts | TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
            BackendUnavailable | Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short stable phrase: the response body, and the `reason` of log and
    /// audit events.
    pub fn as_str(self) -> &'static str {
        use RejectionReason::*;
        match self {
            MissingCredentials => "missing credentials",
            UnsupportedCredential => "unsupported credential",
            InvalidToken => "invalid token",
            TokenExpired => "token expired",
            TokenNotYetValid => "token not yet valid",
            TokenRevoked => "token revoked",
            InvalidTicket => "invalid ticket",
            InvalidCredentials => "invalid credentials",
            InvalidDpopProof => "invalid dpop proof",
            DpopReplay => "dpop replay",
            DpopNonceRequired => "dpop nonce required",
            InvalidCertificate => "invalid certificate",
            UntrustedCertificateHeader => "untrusted certificate header",
            MalformedCredentials => "malformed credentials",
            AmbiguousCredentials => "ambiguous credentials",
            TokenInQuery => "token in query string",
            ApplicationProtocolRequired => "application protocol required",
            OriginNotAllowed => "origin not allowed",
            OriginRequired => "origin required",
            AccountDisabled => "account disabled",
            InsecureTransport => "secure transport required",
            TooManyAttempts => "too many attempts",
            TooManyConnections => "too many connections",
            BackendUnavailable => "backend unavailable",
            Overloaded => "server busy",
        }
    }

    /// The RFC 9449 `error` code of the DPoP challenge where the proof of
    /// possession was refused: `use_dpop_nonce` for want of a server
    /// nonce, `invalid_dpop_proof` otherwise.
    pub(crate) fn dpop_error(self) -> Option<&'static str> {
        match self {
            RejectionReason::DpopNonceRequired => Some("use_dpop_nonce"),
            RejectionReason::InvalidDpopProof | RejectionReason::DpopReplay => {
                Some("invalid_dpop_proof")
            }
            _ => None,
        }
    }

    /// The RFC 6750 `error` code of the Bearer challenge, if any.
    pub(crate) fn bearer_error(self) -> Option<&'static str> {
        use RejectionReason::*;
        match self {
            InvalidToken | TokenExpired | TokenNotYetValid | TokenRevoked | InvalidTicket => {
                Some("invalid_token")
            }
            MalformedCredentials
            | AmbiguousCredentials
            | TokenInQuery
            | ApplicationProtocolRequired
            | UntrustedCertificateHeader => Some("invalid_request"),
            _ => None,
        }
    }

    /// The reason for an error: the one classification of failures. The
    /// handshake's refusal, the close after the upgrade ([`close`](Self::close)),
    /// the audit reason, the order of a chain's refusals and what the
    /// failure limiter counts all derive from it.
    pub fn from_error(error: &Error) -> Self {
        match error.kind() {
            ErrorKind::Token(TokenError::Expired) => RejectionReason::TokenExpired,
            ErrorKind::Token(TokenError::NotYetValid) => RejectionReason::TokenNotYetValid,
            ErrorKind::Token(TokenError::Revoked) => RejectionReason::TokenRevoked,
            ErrorKind::Token(_) => RejectionReason::InvalidToken,
            ErrorKind::Credentials(CredentialError::InvalidTicket) => {
                RejectionReason::InvalidTicket
            }
            ErrorKind::Credentials(CredentialError::InvalidCertificate) => {
                RejectionReason::InvalidCertificate
            }
            ErrorKind::Credentials(_) => RejectionReason::InvalidCredentials,
            ErrorKind::Dpop(DpopError::Replay) => RejectionReason::DpopReplay,
            ErrorKind::Dpop(DpopError::NonceRequired) => RejectionReason::DpopNonceRequired,
            ErrorKind::Dpop(_) => RejectionReason::InvalidDpopProof,
            ErrorKind::AccountDisabled => RejectionReason::AccountDisabled,
            ErrorKind::UnsupportedCredential => RejectionReason::UnsupportedCredential,
            ErrorKind::Backend(_) | ErrorKind::Config(_) => RejectionReason::BackendUnavailable,
            ErrorKind::Overloaded => RejectionReason::Overloaded,
            ErrorKind::TooManyAttempts { .. } | ErrorKind::TooManyTickets { .. } => {
                RejectionReason::TooManyAttempts
            }
            ErrorKind::TooManyConnections { .. } => RejectionReason::TooManyConnections,
        }
    }

    /// The close for a credential refused after the upgrade (a first
    /// message, a refresh, a per-message token): 4401 `token expired` or
    /// `invalid token`, 4403 `token revoked` (`forbidden` for a disabled
    /// account), 4429 while locked, 1011 when nobody could decide.
    pub fn close(self) -> Close {
        use RejectionReason::*;
        match self {
            TokenExpired => Close::new(CloseKind::Unauthenticated, reason::TOKEN_EXPIRED),
            TokenRevoked => Close::new(CloseKind::Forbidden, reason::TOKEN_REVOKED),
            AccountDisabled | OriginNotAllowed | OriginRequired | InsecureTransport => {
                Close::new(CloseKind::Forbidden, reason::FORBIDDEN)
            }
            TooManyAttempts => Close::new(CloseKind::RateLimited, reason::RATE_LIMITED),
            TooManyConnections => Close::new(CloseKind::RateLimited, reason::TOO_MANY_CONNECTIONS),
            BackendUnavailable | Overloaded => {
                Close::new(CloseKind::BackendFailed, reason::BACKEND_FAILED)
            }
            _ => Close::new(CloseKind::Unauthenticated, reason::INVALID_TOKEN),
        }
    }

    /// Whether the credential itself was bad (401): what a failure limiter
    /// counts as a failed attempt.
    pub fn is_bad_credential(self) -> bool {
        self.precedence() == Precedence::BadCredential
    }

    /// Which of two refusals a chain of authenticators reports: a final
    /// answer (a disabled account, a lock) before a backend failure (503)
    /// before a bad credential (401) before "unsupported" — so a chain fails
    /// closed, never open.
    pub(crate) fn precedence(self) -> Precedence {
        use RejectionReason::*;
        match self {
            MissingCredentials | UnsupportedCredential => Precedence::Unsupported,
            BackendUnavailable | Overloaded => Precedence::Backend,
            AccountDisabled | TooManyAttempts | TooManyConnections => Precedence::Final,
            _ => Precedence::BadCredential,
        }
    }
}

impl Close {
    /// The close for a credential that failed after the upgrade (a message
    /// token, a refresh, a first message): see [`RejectionReason::close`].
    pub(crate) fn for_failed_credential(error: &Error) -> Self {
        RejectionReason::from_error(error).close()
    }
}

/// The order of refusals in a chain; later variants win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Precedence {
    Unsupported,
    BadCredential,
    Backend,
    Final,
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_classification_feeds_status_close_and_precedence() {
        struct Case {
            name: &'static str,
            error: Error,
            status: u16,
            close: (CloseKind, &'static str),
            bad_credential: bool,
        }
        let cases = [
            Case {
                name: "expired token",
                error: TokenError::Expired.into(),
                status: 401,
                close: (CloseKind::Unauthenticated, reason::TOKEN_EXPIRED),
                bad_credential: true,
            },
            Case {
                name: "forged token",
                error: TokenError::InvalidSignature.into(),
                status: 401,
                close: (CloseKind::Unauthenticated, reason::INVALID_TOKEN),
                bad_credential: true,
            },
            Case {
                name: "revoked token",
                error: TokenError::Revoked.into(),
                status: 401,
                close: (CloseKind::Forbidden, reason::TOKEN_REVOKED),
                bad_credential: true,
            },
            Case {
                name: "wrong password",
                error: CredentialError::InvalidCredentials.into(),
                status: 401,
                close: (CloseKind::Unauthenticated, reason::INVALID_TOKEN),
                bad_credential: true,
            },
            Case {
                name: "store down",
                error: Error::backend("down"),
                status: 503,
                close: (CloseKind::BackendFailed, reason::BACKEND_FAILED),
                bad_credential: false,
            },
            Case {
                name: "disabled account",
                error: ErrorKind::AccountDisabled.into(),
                status: 403,
                close: (CloseKind::Forbidden, reason::FORBIDDEN),
                bad_credential: false,
            },
            Case {
                name: "locked",
                error: ErrorKind::TooManyAttempts {
                    retry_after: std::time::Duration::from_secs(1),
                }
                .into(),
                status: 429,
                close: (CloseKind::RateLimited, reason::RATE_LIMITED),
                bad_credential: false,
            },
            Case {
                name: "a bound token without its proof",
                error: DpopError::Missing.into(),
                status: 401,
                close: (CloseKind::Unauthenticated, reason::INVALID_TOKEN),
                bad_credential: true,
            },
            Case {
                name: "a replayed proof",
                error: DpopError::Replay.into(),
                status: 401,
                close: (CloseKind::Unauthenticated, reason::INVALID_TOKEN),
                bad_credential: true,
            },
            Case {
                name: "a subject at its limit of sockets",
                error: ErrorKind::TooManyConnections {
                    retry_after: std::time::Duration::from_secs(5),
                }
                .into(),
                status: 429,
                close: (CloseKind::RateLimited, reason::TOO_MANY_CONNECTIONS),
                bad_credential: false,
            },
            Case {
                name: "unsupported",
                error: ErrorKind::UnsupportedCredential.into(),
                status: 401,
                close: (CloseKind::Unauthenticated, reason::INVALID_TOKEN),
                bad_credential: false,
            },
        ];
        for case in cases {
            let reason = RejectionReason::from_error(&case.error);
            assert_eq!(reason.status().as_u16(), case.status, "{}", case.name);
            let close = reason.close();
            assert_eq!((close.kind, close.reason), case.close, "{}", case.name);
            assert_eq!(
                reason.is_bad_credential(),
                case.bad_credential,
                "{}",
                case.name
            );
        }
        assert!(Precedence::Final > Precedence::Backend);
        assert!(Precedence::Backend > Precedence::BadCredential);
        assert!(Precedence::BadCredential > Precedence::Unsupported);
    }
}
