//! Handshake refusals: HTTP responses sent before any upgrade.

use std::fmt;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

use crate::error::{CredentialError, Error, ErrorKind, TokenError};

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
            | InvalidCredentials => StatusCode::UNAUTHORIZED,
            MalformedCredentials
            | AmbiguousCredentials
            | TokenInQuery
            | ApplicationProtocolRequired => StatusCode::BAD_REQUEST,
            OriginNotAllowed | OriginRequired | AccountDisabled | InsecureTransport => {
                StatusCode::FORBIDDEN
            }
            TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
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
            MalformedCredentials => "malformed credentials",
            AmbiguousCredentials => "ambiguous credentials",
            TokenInQuery => "token in query string",
            ApplicationProtocolRequired => "application protocol required",
            OriginNotAllowed => "origin not allowed",
            OriginRequired => "origin required",
            AccountDisabled => "account disabled",
            InsecureTransport => "secure transport required",
            TooManyAttempts => "too many attempts",
            BackendUnavailable => "backend unavailable",
            Overloaded => "server busy",
        }
    }

    /// The RFC 6750 `error` code of the Bearer challenge, if any.
    fn bearer_error(self) -> Option<&'static str> {
        use RejectionReason::*;
        match self {
            InvalidToken | TokenExpired | TokenNotYetValid | TokenRevoked | InvalidTicket => {
                Some("invalid_token")
            }
            MalformedCredentials
            | AmbiguousCredentials
            | TokenInQuery
            | ApplicationProtocolRequired => Some("invalid_request"),
            _ => None,
        }
    }

    /// The reason for an authenticator's error.
    pub fn from_error(error: &Error) -> Self {
        match error.kind() {
            ErrorKind::Token(TokenError::Expired) => RejectionReason::TokenExpired,
            ErrorKind::Token(TokenError::NotYetValid) => RejectionReason::TokenNotYetValid,
            ErrorKind::Token(TokenError::Revoked) => RejectionReason::TokenRevoked,
            ErrorKind::Token(_) => RejectionReason::InvalidToken,
            ErrorKind::Credentials(CredentialError::InvalidTicket) => {
                RejectionReason::InvalidTicket
            }
            ErrorKind::Credentials(_) => RejectionReason::InvalidCredentials,
            ErrorKind::AccountDisabled => RejectionReason::AccountDisabled,
            ErrorKind::UnsupportedCredential => RejectionReason::UnsupportedCredential,
            ErrorKind::Backend(_) | ErrorKind::Config(_) => RejectionReason::BackendUnavailable,
            ErrorKind::Overloaded => RejectionReason::Overloaded,
            ErrorKind::TooManyAttempts { .. } => RejectionReason::TooManyAttempts,
        }
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused handshake, as an HTTP response.
///
/// - 401 carries `WWW-Authenticate: Bearer realm="…"` with an RFC 6750
///   `error` where one applies, and a `Basic` challenge too when the Basic
///   transport is on;
/// - 400 carries the Bearer challenge with `error="invalid_request"`;
/// - 429 carries `Retry-After`;
/// - the body is the reason's stable phrase, never a secret;
/// - the [`RejectionReason`] rides in the response extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeRejection {
    reason: RejectionReason,
    realm: &'static str,
    basic_challenge: bool,
    retry_after: Option<Duration>,
}

impl HandshakeRejection {
    /// A refusal for `reason`, in realm `wsgate`.
    pub fn new(reason: RejectionReason) -> Self {
        Self {
            reason,
            realm: "wsgate",
            basic_challenge: false,
            retry_after: None,
        }
    }

    pub(crate) fn with_challenge(mut self, realm: &'static str, basic: bool) -> Self {
        self.realm = realm;
        self.basic_challenge = basic;
        self
    }

    /// Sets `Retry-After` (rounded up to whole seconds, at least 1).
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// Why.
    pub fn reason(&self) -> RejectionReason {
        self.reason
    }

    /// The status sent.
    pub fn status(&self) -> StatusCode {
        self.reason.status()
    }

    /// The body sent.
    pub fn body_text(&self) -> &'static str {
        self.reason.as_str()
    }
}

impl fmt::Display for HandshakeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handshake refused: {}", self.reason)
    }
}

impl std::error::Error for HandshakeRejection {}

impl IntoResponse for HandshakeRejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, self.body_text()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST {
            let mut challenge = format!("Bearer realm=\"{}\"", self.realm);
            if let Some(error) = self.reason.bearer_error() {
                challenge.push_str(&format!(
                    ", error=\"{error}\", error_description=\"{}\"",
                    self.reason.as_str()
                ));
            }
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.append(WWW_AUTHENTICATE, value);
            }
            if self.basic_challenge && status == StatusCode::UNAUTHORIZED {
                let basic = format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm);
                if let Ok(value) = HeaderValue::from_str(&basic) {
                    headers.append(WWW_AUTHENTICATE, value);
                }
            }
        }
        // Busy now, likely free in a second.
        let retry_after = self
            .retry_after
            .or((self.reason == RejectionReason::Overloaded).then_some(Duration::from_secs(1)));
        if let Some(retry_after) = retry_after {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response.extensions_mut().insert(self.reason);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_carry_status_challenge_and_reason() {
        struct Case {
            reason: RejectionReason,
            basic: bool,
            status: u16,
            challenges: &'static [&'static str],
        }
        let cases = [
            Case {
                reason: RejectionReason::MissingCredentials,
                basic: false,
                status: 401,
                challenges: &["Bearer realm=\"wsgate\""],
            },
            Case {
                reason: RejectionReason::MissingCredentials,
                basic: true,
                status: 401,
                challenges: &[
                    "Bearer realm=\"wsgate\"",
                    "Basic realm=\"wsgate\", charset=\"UTF-8\"",
                ],
            },
            Case {
                reason: RejectionReason::TokenExpired,
                basic: false,
                status: 401,
                challenges: &[
                    "Bearer realm=\"wsgate\", error=\"invalid_token\", error_description=\"token expired\"",
                ],
            },
            Case {
                reason: RejectionReason::AmbiguousCredentials,
                basic: true,
                status: 400,
                challenges: &[
                    "Bearer realm=\"wsgate\", error=\"invalid_request\", error_description=\"ambiguous credentials\"",
                ],
            },
            Case {
                reason: RejectionReason::OriginNotAllowed,
                basic: true,
                status: 403,
                challenges: &[],
            },
            Case {
                reason: RejectionReason::BackendUnavailable,
                basic: false,
                status: 503,
                challenges: &[],
            },
        ];
        for case in cases {
            let response = HandshakeRejection::new(case.reason)
                .with_challenge("wsgate", case.basic)
                .into_response();
            assert_eq!(response.status().as_u16(), case.status, "{:?}", case.reason);
            let challenges: Vec<_> = response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .map(|value| value.to_str().unwrap())
                .collect();
            assert_eq!(challenges, case.challenges, "{:?}", case.reason);
            assert_eq!(
                response.extensions().get::<RejectionReason>(),
                Some(&case.reason)
            );
        }
    }

    #[test]
    fn too_many_attempts_says_when_to_retry() {
        let response = HandshakeRejection::new(RejectionReason::TooManyAttempts)
            .with_retry_after(Duration::from_millis(1_500))
            .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
    }
}
