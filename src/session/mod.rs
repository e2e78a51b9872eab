//! What the socket stage and the message pipeline share: the session of a
//! live connection, the inbound message, the pipeline's verdict, and why a
//! socket closes.
//!
//! These types sit below both stages, so neither has to reach into the
//! other: the [socket stage](crate::socket) drives a [`BoxedPipeline`] of
//! [`Inbound`] messages, and the layers of the
//! [message pipeline](crate::pipeline) answer with a [`Verdict`].
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
//! | 1008 | slow consumer: took nothing the server sent for the write timeout | read what you are sent |
//!
//! The close reason is a short stable phrase ([`reason`]). Codes are
//! configurable with [`CloseCodes`].
//!
//! # Sessions
//!
//! A connection's session id is the `sid` claim of the token that opened
//! it, else the connection itself (`conn-<id>`): the one rule every
//! revocation check uses, at the handshake, on first-message routes, on
//! refresh and on per-message tokens.

mod close;
mod connection;
mod envelope;
mod inbound;
mod verdict;

pub use self::close::{Close, CloseCodes, CloseKind, reason};
pub(crate) use self::connection::KeptPrincipal;
pub use self::connection::{ConnectionId, Session};
pub use self::inbound::Inbound;
pub use self::verdict::{BoxedPipeline, Decision, Verdict};
pub(crate) use self::verdict::{BoxedVerdict, boxed_pipeline};
