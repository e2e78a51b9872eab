//! The route that issues single-use tickets to token holders.

use axum::body::Body;
use axum::response::Response;
use axum::routing::{MethodRouter, post};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use serde_json::json;

use crate::error::ErrorKind;
use crate::gate::Gate;
use crate::handshake::Authenticated;
use crate::principal::Principal;

impl Gate {
    /// A `POST` route that issues a single-use ticket to the holder of a
    /// token (`Authorization: Bearer`, revocations checked): `200
    /// {"ticket","expires_in"}` with `Cache-Control: no-store`; a refused
    /// token gets the handshake layer's refusal (401 …), a subject at its
    /// [limit of tickets](crate::GateBuilder::max_tickets_per_subject) 429
    /// `{"error":"too_many_tickets"}` with `Retry-After`, a failed ticket
    /// store 503 `{"error":"unavailable"}`. The browser then opens the
    /// socket with `?ticket=`.
    ///
    /// ```
    /// # fn run(gate: wsgate::Gate) {
    /// let app: axum::Router = axum::Router::new().route("/tickets", gate.ticket_route());
    /// # let _ = app;
    /// # }
    /// ```
    pub fn ticket_route<S>(&self) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let gate = self.clone();
        post(move |Authenticated(principal): Authenticated| {
            let gate = gate.clone();
            async move { ticket_response(&gate, &principal).await }
        })
        .route_layer(self.bearer_layer())
    }
}

async fn ticket_response(gate: &Gate, principal: &Principal) -> Response {
    let mut retry_after = HeaderValue::from_static("1");
    let (status, body) = match gate.issue_ticket(principal).await {
        Ok(ticket) => (
            StatusCode::OK,
            json!({
                "ticket": ticket.ticket().expose(),
                "expires_in": ticket.lifetime().as_secs(),
            }),
        ),
        Err(error) if matches!(error.kind(), ErrorKind::TooManyTickets { .. }) => {
            let seconds = error.retry_after().unwrap_or_default().as_secs().max(1);
            retry_after = HeaderValue::from(seconds);
            (
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "error": "too_many_tickets" }),
            )
        }
        Err(error) => {
            tracing::warn!(target: "wsgate::ticket", %error, "ticket not issued");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "unavailable" }),
            )
        }
    };
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status != StatusCode::OK {
        headers.insert(RETRY_AFTER, retry_after);
    }
    response
}
