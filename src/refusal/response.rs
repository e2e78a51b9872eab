//! Refused handshakes as HTTP responses, sent before any upgrade, and the
//! application's hook to answer them its own way.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

use crate::refusal::RejectionReason;

/// The header a server hands out its DPoP nonce in (RFC 9449 §8.1).
pub(crate) static DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// A refused handshake, as an HTTP response.
///
/// - 401 carries `WWW-Authenticate: Bearer realm="…"` with an RFC 6750
///   `error` where one applies, and a `Basic` challenge too when the Basic
///   transport is on;
/// - 400 carries the Bearer challenge with `error="invalid_request"`;
/// - 429 and 503 carry `Retry-After` (1 s for a 503 unless the cause
///   knows better);
/// - the body is the reason's stable phrase, never a secret;
/// - the [`RejectionReason`] rides in the response extensions.
///
/// As [`IntoResponseParts`] it is everything but the status and the body
/// (the challenges, `Retry-After`, `Cache-Control: no-store`, the reason in
/// the extensions), for an answer of your own:
/// `(rejection.status(), rejection, your_body)`. See
/// [`RejectionResponse`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeRejection {
    reason: RejectionReason,
    realm: &'static str,
    basic_challenge: bool,
    retry_after: Option<Duration>,
    /// `algs` of a `DPoP` challenge, and whether it is the only one.
    dpop: Option<(String, bool)>,
    /// The server nonce a 401 hands out in `DPoP-Nonce`.
    dpop_nonce: Option<String>,
}

impl HandshakeRejection {
    /// A refusal for `reason`, in realm `wsgate`.
    pub(crate) fn new(reason: RejectionReason) -> Self {
        Self {
            reason,
            realm: "wsgate",
            basic_challenge: false,
            retry_after: None,
            dpop: None,
            dpop_nonce: None,
        }
    }

    /// Hands out `nonce` in `DPoP-Nonce` (RFC 9449 §9) on a 401.
    pub(crate) fn with_dpop_nonce(mut self, nonce: Option<String>) -> Self {
        self.dpop_nonce = nonce;
        self
    }

    /// Adds a `DPoP` challenge naming `algorithms` (RFC 9449 §7.1); with
    /// `only`, in place of the `Bearer` one.
    pub(crate) fn with_dpop_challenge(mut self, algorithms: String, only: bool) -> Self {
        self.dpop = Some((algorithms, only));
        self
    }

    pub(crate) fn with_challenge(mut self, realm: &'static str, basic: bool) -> Self {
        self.realm = realm;
        self.basic_challenge = basic;
        self
    }

    /// Sets `Retry-After` (rounded up to whole seconds, at least 1).
    pub(crate) fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// How long the client should wait before it tries again, when the
    /// refusal says (429, 503).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
            .or((self.status() == StatusCode::SERVICE_UNAVAILABLE)
                .then_some(Duration::from_secs(1)))
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
        let (status, body) = (self.status(), self.body_text());
        let plain_text = [(CONTENT_TYPE, "text/plain; charset=utf-8")];
        (status, self, plain_text, body).into_response()
    }
}

impl IntoResponseParts for HandshakeRejection {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut parts: ResponseParts) -> Result<ResponseParts, Self::Error> {
        let status = self.status();
        let headers = parts.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST {
            let error = |code: &str| {
                format!(
                    ", error=\"{code}\", error_description=\"{}\"",
                    self.reason.as_str()
                )
            };
            // DPoP is advertised on a 401 (RFC 9449 §7.1), never on a 400.
            let dpop = self
                .dpop
                .as_ref()
                .filter(|_| status == StatusCode::UNAUTHORIZED);
            let dpop_only = matches!(dpop, Some((_, true)));
            if !dpop_only {
                let mut challenge = format!("Bearer realm=\"{}\"", self.realm);
                if let Some(code) = self.reason.bearer_error() {
                    challenge.push_str(&error(code));
                }
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.append(WWW_AUTHENTICATE, value);
                }
            }
            if let Some((algorithms, _)) = dpop {
                let mut challenge = format!("DPoP realm=\"{}\"", self.realm);
                // In place of the Bearer challenge, it also carries the
                // token's error.
                let code = self
                    .reason
                    .dpop_error()
                    .or_else(|| dpop_only.then(|| self.reason.bearer_error()).flatten());
                if let Some(code) = code {
                    challenge.push_str(&error(code));
                }
                challenge.push_str(&format!(", algs=\"{algorithms}\""));
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.append(WWW_AUTHENTICATE, value);
                }
            }
            if let Some(nonce) = self
                .dpop_nonce
                .as_deref()
                .filter(|_| status == StatusCode::UNAUTHORIZED)
                .and_then(|nonce| HeaderValue::from_str(nonce).ok())
            {
                headers.insert(&DPOP_NONCE, nonce);
            }
            if self.basic_challenge && status == StatusCode::UNAUTHORIZED {
                let basic = format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm);
                if let Ok(value) = HeaderValue::from_str(&basic) {
                    headers.append(WWW_AUTHENTICATE, value);
                }
            }
        }
        // Busy or down now: a client should wait before it tries again.
        if let Some(retry_after) = self.retry_after() {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        parts.extensions_mut().insert(self.reason);
        Ok(parts)
    }
}

/// How refused handshakes are answered: [`DefaultRejectionResponse`]
/// unless the application sets its own, with
/// [`GateBuilder::rejection_response`](crate::GateBuilder::rejection_response)
/// or
/// [`Wiring::rejection_response`](crate::wiring::Wiring::rejection_response).
///
/// Any `Fn(HandshakeRejection) -> Response` is one. Whatever it answers,
/// the [`RejectionReason`] is put into the response's extensions; the
/// audit and the metrics do not depend on it.
///
/// # Example
///
/// An application that answers JSON everywhere, keeping the status and
/// the challenges (`WWW-Authenticate`, `Retry-After`):
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use http::header::CONTENT_TYPE;
/// use wsgate::handshake::HandshakeRejection;
///
/// fn json_refusal(rejection: HandshakeRejection) -> Response {
///     let body = format!(r#"{{"error":"{}"}}"#, rejection.reason());
///     let json = [(CONTENT_TYPE, "application/json")];
///     (rejection.status(), rejection, json, body).into_response()
/// }
/// # let _: fn(HandshakeRejection) -> Response = json_refusal;
/// ```
///
/// Then `Gate::builder(verifier).rejection_response(json_refusal)`.
pub trait RejectionResponse: Send + Sync + 'static {
    /// The response to `rejection`.
    fn respond(&self, rejection: HandshakeRejection) -> Response;
}

impl<F> RejectionResponse for F
where
    F: Fn(HandshakeRejection) -> Response + Send + Sync + 'static,
{
    fn respond(&self, rejection: HandshakeRejection) -> Response {
        self(rejection)
    }
}

/// The answer wsgate gives by default: the rejection's own response, a
/// plain-text reason (see [`HandshakeRejection`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejectionResponse;

impl RejectionResponse for DefaultRejectionResponse {
    fn respond(&self, rejection: HandshakeRejection) -> Response {
        rejection.into_response()
    }
}

/// The configured [`RejectionResponse`], shared by every layer and socket
/// gate of one configuration.
#[derive(Clone)]
pub(crate) struct Rejections(Arc<dyn RejectionResponse>);

impl Rejections {
    pub(crate) fn new<R: RejectionResponse>(respond: R) -> Self {
        Self(Arc::new(respond))
    }

    /// The application's answer, with the reason in its extensions.
    pub(crate) fn answer(&self, rejection: HandshakeRejection) -> Response {
        let reason = rejection.reason();
        let mut response = self.0.respond(rejection);
        response.extensions_mut().insert(reason);
        response
    }
}

impl Default for Rejections {
    fn default() -> Self {
        Self::new(DefaultRejectionResponse)
    }
}

impl fmt::Debug for Rejections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejections").finish_non_exhaustive()
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
