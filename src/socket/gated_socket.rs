//! What the application holds: the gated socket and its sender.

use std::fmt;
use std::sync::Arc;

use axum::extract::ws::Message;

use crate::principal::Principal;
use crate::session::{Close, ConnectionId, Inbound, Session};
use crate::socket::queue::{QueueReceiver, QueueSender, TrySendError};

/// A WebSocket whose every inbound message has passed the pipeline, and
/// whose lifecycle (expiry, revocation, limits, pings) wsgate enforces.
///
/// [`recv`](Self::recv) yields delivered messages until the connection
/// ends, for whatever reason; then it returns `None`. Messages wait in a
/// bounded queue (32) while the handler is busy; once it is full, wsgate
/// reads nothing more from the client until the handler takes one.
/// Expiry, revocation and kicks still close the socket meanwhile; the idle
/// timeout does not (the client is not the one that is silent). Send with
/// [`send`](Self::send), or hand a [`GatedSender`] to other tasks (a chat
/// room, a broadcaster).
pub struct GatedSocket {
    pub(crate) session: Arc<Session>,
    pub(crate) inbound: QueueReceiver<Inbound>,
    pub(crate) sender: GatedSender,
}

/// Sends messages on a gated socket; cheap to clone.
#[derive(Clone)]
pub struct GatedSender {
    /// Senders that wait for room are served first come, first served, and
    /// a send given up leaves nothing behind (`queue.rs`).
    pub(crate) outbound: QueueSender<Message>,
}

/// The socket is closed: the message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketClosed;

impl fmt::Display for SocketClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("socket closed")
    }
}

impl std::error::Error for SocketClosed {}

impl GatedSocket {
    /// The connection's session.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The connection id.
    pub fn id(&self) -> ConnectionId {
        self.session.id()
    }

    /// The current principal (refreshes update it).
    pub fn principal(&self) -> Arc<Principal> {
        self.session.principal()
    }

    /// The next delivered message; `None` once the connection has ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future (a `tokio::select!` branch that
    /// lost) loses no message; the next call gets it.
    pub async fn recv(&mut self) -> Option<Inbound> {
        self.inbound.recv().await
    }

    /// Sends a message.
    ///
    /// # Errors
    ///
    /// [`SocketClosed`] when the connection has ended.
    pub async fn send(&self, message: Message) -> Result<(), SocketClosed> {
        self.sender.send(message).await
    }

    /// A sender for other tasks.
    pub fn sender(&self) -> GatedSender {
        self.sender.clone()
    }

    /// Closes the connection with `close`.
    pub fn close(&self, close: Close) {
        self.session.request_close(close);
    }
}

impl GatedSender {
    /// Sends a message, waiting while the outbound queue is full (the
    /// client is not taking what it is sent; senders are served in the
    /// order they came). A client that takes nothing for the write
    /// timeout is dropped, and the wait ends with [`SocketClosed`].
    ///
    /// # Errors
    ///
    /// [`SocketClosed`] when the connection has ended.
    pub async fn send(&self, message: Message) -> Result<(), SocketClosed> {
        self.outbound.send(message).await.map_err(|_| SocketClosed)
    }

    /// Sends a message if there is room in the outbound queue; a slow
    /// client misses it rather than stalling the sender (a broadcast to a
    /// room).
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] when the queue is full (the socket is still
    /// open), [`TrySendError::Closed`] when the connection has ended; the
    /// message comes back in both.
    pub fn try_send(&self, message: Message) -> Result<(), TrySendError<Message>> {
        self.outbound.try_send(message)
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.outbound.is_closed()
    }
}

impl fmt::Debug for GatedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedSocket")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for GatedSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedSender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::queue::queue;

    #[test]
    fn try_send_tells_a_full_queue_from_a_closed_socket_and_gives_the_message_back() {
        let (outbound, receiver) = queue(1);
        let sender = GatedSender { outbound };
        sender.try_send(Message::text("first")).unwrap();
        let full = sender.try_send(Message::text("second")).unwrap_err();
        assert_eq!(full.to_string(), "outbound queue full");
        assert_eq!(full.into_inner(), Message::text("second"));
        assert!(!sender.is_closed());

        drop(receiver);
        let closed = sender.try_send(Message::text("third")).unwrap_err();
        assert_eq!(closed, TrySendError::Closed(Message::text("third")));
    }
}
