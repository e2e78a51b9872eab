//! Stage two: the live connection.
//!
//! A handler takes a [`GatedUpgrade`] (or, on a first-message route, a
//! [`DeferredUpgrade`]) and completes it with a [`SocketGate`]. The
//! application then reads messages that passed the gate's message pipeline
//! (see [`crate::pipeline`]) from a [`GatedSocket`] and writes replies; wsgate
//! owns the lifecycle underneath:
//!
//! - the socket closes with 4401 `token expired` when the session's token
//!   expires — also a socket that never sends anything — unless the client
//!   refreshed in-band ([`RefreshLayer`](crate::pipeline::RefreshLayer));
//! - [`Registry::revoke`] closes every matching socket with 4403 `token
//!   revoked`, and the [`RevocationStore`](crate::store::RevocationStore)
//!   refuses the revoked tokens afterwards; [`Registry::kick`],
//!   [`Registry::close`] and [`Registry::list`] manage connections by hand;
//! - a message over the size limit closes with 1009, text that is not
//!   UTF-8 with 1007, a frame that breaks the protocol with 1002, too many
//!   messages with 4429, a silent client (no frame, not even a pong) with
//!   1001; each of these is an audit event;
//! - a first-message route closes with 4401 `authentication timeout` when
//!   no authentication message came within the deadline;
//! - a client that takes nothing the server sends for the write timeout
//!   closes with 1008 `slow consumer`;
//! - with a limit of sockets per subject
//!   ([`GateBuilder::max_sockets_per_subject`](crate::GateBuilder::max_sockets_per_subject)),
//!   a first-message login over the limit closes with 4429 `too many
//!   connections`, and under
//!   [`AtSocketLimit::CloseOldest`](crate::store::AtSocketLimit::CloseOldest)
//!   the subject's oldest socket closes with 4403 `too many connections`
//!   to make room. A socket gives its place back as it leaves the
//!   [`Registry`].
//!
//! None of these waits on anything else: the driver serves the lifecycle
//! while a write waits for a client that stopped reading, while the
//! handler is busy and while the pipeline works out a verdict. A closing
//! socket leaves the [`Registry`] at once, and its connection is dropped
//! after a one-second grace for the close frame, delivered or not.
//!
//! The close codes and phrases are in [`crate::session`]; the limits in
//! [`Limits`].
//!
//! # Example
//!
//! A [`Gate`](crate::Gate) makes the socket gate from its shared parts; a
//! handler completes the upgrade with it:
//!
//! ```
//! use axum::extract::State;
//! use axum::response::Response;
//! use wsgate::Gate;
//! use wsgate::socket::GatedUpgrade;
//!
//! async fn ws(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
//!     upgrade.on_upgrade(&gate, |mut socket| async move {
//!         while let Some(message) = socket.recv().await {
//!             // Only messages the pipeline allowed arrive here.
//!             let _ = socket.send(message.into_message()).await;
//!         }
//!     })
//! }
//! ```
//!
//! For wiring by hand, [`SocketGate::builder`] takes a [`Registry`], a
//! pipeline and [`Limits`].

mod driver;
mod gated_socket;
mod interest;
mod join;
mod limits;
#[cfg(all(test, wsgate_loom))]
mod loom_models;
mod queue;
mod registry;
mod socket_gate;
mod sync;
mod upgrade;

pub use self::gated_socket::{GatedSender, GatedSocket, SocketClosed};
pub use self::limits::{
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_READ_BUFFER_BYTES, DEFAULT_WRITE_TIMEOUT, Limits,
};
pub use self::queue::TrySendError;
pub use self::registry::{ConnectionInfo, Registry};
pub use self::socket_gate::{SocketGate, SocketGateBuilder};
pub use self::upgrade::{DeferredUpgrade, GatedUpgrade, GatedUpgradeRejection};
