//! Stage one: authenticating the HTTP request that asks for a WebSocket
//! upgrade, before the upgrade happens.
//!
//! [`HandshakeLayer`] is a tower layer over `http::Request`. It refuses with
//! an HTTP response ([`HandshakeRejection`]) or puts the [`Principal`] into
//! the request extensions, where handlers take it with [`Authenticated`].
//!
//! # Order
//!
//! For each request the layer runs, in this order:
//!
//! 0. **Secure transport** (when required): a handshake that did not come
//!    over TLS gets 403.
//! 1. **Query check**: a raw token in the query string (`access_token=`,
//!    `token=`, …) is refused with 400, unless
//!    [`dangerous_allow_query_tokens`](HandshakeLayerBuilder::dangerous_allow_query_tokens)
//!    names that parameter.
//! 2. **Origin policy** (when an allowlist is set): an `Origin` not on the
//!    list, `null`, or several `Origin` headers: 403.
//! 3. **Credential extraction**, transport by transport in the configured
//!    order; the first transport that carries credentials is used. Cookie
//!    and Basic credentials without an `Origin` header: 403.
//! 4. **Subprotocol selection**: a client that sends its token as a
//!    subprotocol must also offer an application protocol the server speaks
//!    (400 otherwise).
//! 5. **Authentication** by the [`Authenticator`](crate::authenticate::Authenticator)
//!    (Basic credentials under the [failure limiter](crate::limit)), then
//!    the **revocation check** when the layer has a store (a
//!    [`Gate`](crate::Gate)'s layers always do).
//! 6. **Sockets per subject** (a [`Gate`](crate::Gate) with
//!    [`max_sockets_per_subject`](crate::GateBuilder::max_sockets_per_subject)):
//!    a WebSocket upgrade takes a place among its subject's sockets, held
//!    by the socket until it closes; a subject at its limit gets 429 `too
//!    many connections` (a ticket shown is spent by then).
//! 7. The request goes on with the [`Principal`] (and [`SelectedProtocol`])
//!    in its extensions, `Authorization` and `Cookie` marked sensitive, the
//!    token subprotocol entry and credential query parameters removed.
//!
//! Put the layer on the WebSocket routes (`route_layer`), and outside any
//! layer that logs requests, so nothing before it sees a token.
//!
//! # Transports: which to use when
//!
//! | transport | from | notes |
//! |---|---|---|
//! | [`Bearer`](Transport::Bearer) | servers, native apps, CLIs | `Authorization: Bearer <token>` |
//! | [`Subprotocol`](Transport::Subprotocol) | browsers | `new WebSocket(url, ["chat.v1", "wsgate.bearer." + token])` |
//! | [`Ticket`](Transport::Ticket) | browsers | fetch a single-use ticket first, then `?ticket=` |
//! | [`Cookie`](Transport::Cookie) | browsers, same site | needs the Origin allowlist |
//! | [`Basic`](Transport::Basic) | scripts, legacy | argon2id per handshake; needs the Origin allowlist |
//! | [`QueryToken`](Transport::QueryToken) | nothing else works | `dangerous_…`: tokens end up in logs |
//!
//! # Errors
//!
//! | status | when |
//! |---|---|
//! | 400 + `WWW-Authenticate` `invalid_request` | malformed or ambiguous credentials, token in the query, token subprotocol without an application protocol |
//! | 401 + `WWW-Authenticate` (`invalid_token` where it applies) | missing, invalid or expired credentials |
//! | 403 | Origin refused or missing for cookie/Basic, account disabled |
//! | 429 + `Retry-After` | too many attempts; too many sockets of the subject |
//! | 503 | a backend failed (wsgate fails closed) |
//!
//! The [`RejectionReason`] rides in the response extensions. The body is
//! the reason's phrase as plain text unless the application answers
//! refusals its own way ([`RejectionResponse`], set with
//! [`GateBuilder::rejection_response`](crate::GateBuilder::rejection_response)
//! or [`Wiring::rejection_response`](crate::wiring::Wiring::rejection_response)): the status, the
//! challenges and the audit stay the same.
//!
//! # Security
//!
//! Nothing the layer logs contains a credential: refusals log the reason,
//! the transport and the peer address; acceptances add the subject.
//!
//! # Example
//!
//! From a [`Gate`](crate::Gate), wired to its shared parts (revocations
//! checked, the failure limiter, trusted proxies, the audit):
//!
//! ```
//! use axum::{Router, routing::get};
//! use axum::extract::ws::WebSocketUpgrade;
//! use axum::response::Response;
//! use wsgate::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = JwtVerifier::builder()
//!     .key(VerificationKey::hmac(b"a-secret-of-at-least-thirty-two-bytes", Algorithm::HS256)?)
//!     .build()?;
//! let gate = Gate::builder(verifier).build()?;
//! let layer = gate
//!     .handshake()
//!     .transports([Transport::Bearer, Transport::Subprotocol, Transport::Cookie])
//!     .allowed_origins(["https://app.example"])?
//!     .application_protocols(["chat.v1"])?
//!     .build()?;
//!
//! // The layer works for any handler: a plain `WebSocketUpgrade` too.
//! async fn ws(Authenticated(who): Authenticated, ws: WebSocketUpgrade) -> Response {
//!     ws.protocols(["chat.v1"]).on_upgrade(move |_socket| async move {
//!         let _ = who.subject();
//!     })
//! }
//!
//! let app: Router = Router::new().route("/ws", get(ws)).route_layer(layer);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! By hand, [`HandshakeLayer::builder`] takes any
//! [`Authenticator`](crate::authenticate::Authenticator); give it the
//! revocation store, trusted proxies and the rest every stage shares with
//! [`wiring`](HandshakeLayerBuilder::wiring) (see [`crate::wiring`]).

// The files follow tower-http's split: what is configured and the checks
// that need no I/O (`config`), below the builder (`layer`) and the
// service's `call` (`service`).
mod authenticated;
mod client_address;
mod config;
mod future;
mod layer;
mod origin;
mod service;
mod subprotocol;
mod target;

pub(crate) use self::target::Addressed;
pub use self::target::SecureTransport;
mod transport;

pub use self::authenticated::{Authenticated, MissingHandshakeLayer};
pub use self::client_address::ClientAddr;
pub(crate) use self::client_address::client_address;
pub(crate) use self::client_address::{audited_peer, forwarding_headers};
pub use self::config::DEFAULT_COOKIE_NAME;
pub(crate) use self::config::Settings as HandshakeSettings;
pub use self::future::ResponseFuture;
pub use self::layer::{HandshakeLayer, HandshakeLayerBuilder};
pub use self::origin::OriginAllowlist;
pub use self::service::Handshake;
pub use self::subprotocol::{PROOF_PROTOCOL_PREFIX, SelectedProtocol, TOKEN_PROTOCOL_PREFIX};
pub use crate::refusal::RejectionReason;
pub use crate::refusal::{DefaultRejectionResponse, HandshakeRejection, RejectionResponse};

#[cfg(doc)]
use crate::principal::{Principal, Transport};
