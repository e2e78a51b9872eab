//! Handing the authenticated principal to handlers.

use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::principal::Principal;

/// Extractor for the [`Principal`] the [`HandshakeLayer`] authenticated.
///
/// Use `Option<Authenticated>` on routes where authentication is optional.
///
/// ```
/// use axum::extract::ws::WebSocketUpgrade;
/// use axum::response::Response;
/// use wsgate::handshake::Authenticated;
///
/// async fn handler(Authenticated(principal): Authenticated, ws: WebSocketUpgrade) -> Response {
///     ws.on_upgrade(move |_socket| async move {
///         println!("{} connected", principal.subject());
///     })
/// }
/// ```
///
/// [`HandshakeLayer`]: crate::handshake::HandshakeLayer
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// Rejection of [`Authenticated`]: the request carries no principal, which
/// means no [`HandshakeLayer`](crate::handshake::HandshakeLayer) ran on this
/// route. A server bug, not a client's: 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissingHandshakeLayer;

impl MissingHandshakeLayer {
    /// 500.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// What the response says.
    pub fn body_text(&self) -> &'static str {
        "no authenticated principal on this request: wrap the route with wsgate::handshake::HandshakeLayer"
    }
}

impl fmt::Display for MissingHandshakeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.body_text())
    }
}

impl std::error::Error for MissingHandshakeLayer {}

impl IntoResponse for MissingHandshakeLayer {
    fn into_response(self) -> Response {
        tracing::error!(target: "wsgate::handshake", "{}", self.body_text());
        (self.status(), self.body_text()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = MissingHandshakeLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Authenticated)
            .ok_or(MissingHandshakeLayer)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Authenticated))
    }
}
