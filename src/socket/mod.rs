//! Stage two: the live connection.
//!
//! A handler takes a [`GatedUpgrade`] (or, on a first-message route, a
//! [`DeferredUpgrade`]) and completes it with a [`SocketGate`]. The
//! application then reads messages that passed the gate's message pipeline
//! (see [`crate::message`]) from a [`GatedSocket`] and writes replies; wsgate
//! owns the lifecycle underneath:
//!
//! - the socket closes with 4401 `token expired` when the session's token
//!   expires — also a socket that never sends anything — unless the client
//!   refreshed in-band ([`RefreshLayer`](crate::message::RefreshLayer));
//! - [`Registry::revoke`] closes every matching socket with 4403 `token
//!   revoked`, and the [`RevocationStore`](crate::store::RevocationStore)
//!   refuses the revoked tokens afterwards; [`Registry::kick`],
//!   [`Registry::close`] and [`Registry::list`] manage connections by hand;
//! - a message over the size limit closes with 1009, text that is not
//!   UTF-8 with 1007, a frame that breaks the protocol with 1002, too many
//!   messages with 4429, a silent client (no frame, not even a pong) with
//!   1001; each of these is an audit event;
//! - a first-message route closes with 4401 `authentication timeout` when
//!   no authentication message came within the deadline.
//!
//! # Close codes
//!
//! | code | meaning | client should |
//! |---|---|---|
//! | 4401 | unauthenticated: token expired, invalid, or authentication deadline missed | get a fresh token, then reconnect |
//! | 4403 | forbidden: session revoked, subject banned, or a denied message when the policy closes | not reconnect automatically |
//! | 4429 | too many messages | back off, then reconnect |
//! | 1009 | message too big | fix the client |
//! | 1007 | a text message that is not UTF-8 | fix the client |
//! | 1002 | a frame that breaks the WebSocket protocol | fix the client |
//! | 1011 | a backend failed; wsgate fails closed | retry later |
//! | 1001 | idle timeout | reconnect when needed |
//!
//! The close reason is a short stable phrase ([`close::reason`]). Codes are
//! configurable with [`CloseCodes`].
//!
//! # Example
//!
//! ```
//! use axum::extract::State;
//! use axum::response::Response;
//! use axum::{Router, routing::get};
//! use tower::ServiceBuilder;
//! use wsgate::audit::{AuditLayer, Auditor};
//! use wsgate::guard::{Requirement, RoleGuardLayer, RolePolicy};
//! use wsgate::message::{Deliver, RefreshLayer};
//! use wsgate::jwt::{Algorithm, JwtVerifier, VerificationKey};
//! use wsgate::socket::{GatedUpgrade, Registry, SocketGate};
//! use wsgate::store::InMemoryRevocationStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = JwtVerifier::builder()
//!     .key(VerificationKey::hmac(b"a-secret-of-at-least-thirty-two-bytes", Algorithm::HS256)?)
//!     .build()?;
//! let registry = Registry::new(InMemoryRevocationStore::new(), Auditor::tracing());
//! let pipeline = ServiceBuilder::new()
//!     .layer(AuditLayer::new(registry.auditor().clone()))
//!     .layer(RefreshLayer::new(verifier, registry.revocations().clone()))
//!     .layer(RoleGuardLayer::new(RolePolicy::by_type().otherwise(Requirement::any_role(["user"]))))
//!     .service(Deliver);
//! let gate = SocketGate::builder(registry)
//!     .pipeline(pipeline)
//!     .message_rate(100)
//!     .build();
//!
//! async fn ws<P>(State(gate): State<SocketGate<P>>, upgrade: GatedUpgrade) -> Response
//! where
//!     P: tower::Service<wsgate::message::Inbound, Response = wsgate::message::Verdict, Error = std::convert::Infallible>
//!         + Clone + Send + Sync + 'static,
//!     P::Future: Send,
//! {
//!     upgrade.on_upgrade(&gate, |mut socket| async move {
//!         while let Some(message) = socket.recv().await {
//!             let _ = socket.send(message.into_message()).await;
//!         }
//!     })
//! }
//! # let _ = gate;
//! # Ok(())
//! # }
//! ```

pub mod close;
mod driver;
mod gate;
mod gated;
mod join;
mod registry;
mod session;
mod upgrade;

pub use self::close::{Close, CloseCodes, CloseKind};
pub use self::gate::{DEFAULT_MAX_MESSAGE_BYTES, SocketGate, SocketGateBuilder};
pub use self::gated::{GatedSender, GatedSocket, SocketClosed};
pub use self::registry::{ConnectionInfo, Registry};
pub use self::session::{ConnectionId, Session};
pub use self::upgrade::{DeferredUpgrade, GatedUpgrade, GatedUpgradeRejection};
