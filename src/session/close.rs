//! Why wsgate closes a socket, and with which code.

/// The kinds of close wsgate makes; [`CloseCodes`] maps them to numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseKind {
    /// Token expired, invalid, or authentication deadline missed. 4401.
    Unauthenticated,
    /// Session revoked, subject banned, or a denied message when the policy
    /// closes. 4403.
    Forbidden,
    /// Too many messages. 4429.
    RateLimited,
    /// A message over the size limit. 1009.
    TooBig,
    /// A text message that is not valid UTF-8. 1007.
    InvalidPayload,
    /// A frame that breaks the WebSocket protocol (a continuation without
    /// a start, a reserved opcode or bit, an unmasked or oversized control
    /// frame). 1002.
    ProtocolError,
    /// A backend failed; wsgate fails closed. 1011.
    BackendFailed,
    /// Nothing heard from the client within the idle timeout. 1001.
    Idle,
    /// The client did not take what the server sent within the write
    /// timeout (it stopped reading). 1008. The frame rarely arrives: the
    /// connection is dropped after a short grace.
    SlowConsumer,
    /// The application ended the connection. 1000.
    Normal,
}

/// A close wsgate decided on: its kind and a short stable phrase (at most
/// 123 bytes, never a secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// The kind.
    pub kind: CloseKind,
    /// The phrase: `token expired`, `token revoked`, `authentication
    /// timeout`, `invalid token`, `forbidden`, `rate limited`, …
    pub reason: &'static str,
}

impl Close {
    /// A close of `kind` for `reason`.
    pub const fn new(kind: CloseKind, reason: &'static str) -> Self {
        Self { kind, reason }
    }

    /// The close a failed read calls for: 1009 for a message over the
    /// limit, 1007 for text that is not UTF-8, 1002 for a frame that breaks
    /// the protocol; `None` when the connection itself is gone (nobody is
    /// left to tell).
    pub(crate) fn for_read_error(error: axum::Error) -> Option<Self> {
        use tungstenite::error::ProtocolError;
        let error = error.into_inner();
        match error.downcast_ref::<tungstenite::Error>()? {
            tungstenite::Error::Capacity(_) => {
                Some(Self::new(CloseKind::TooBig, reason::MESSAGE_TOO_BIG))
            }
            tungstenite::Error::Utf8(_) => {
                Some(Self::new(CloseKind::InvalidPayload, reason::INVALID_UTF8))
            }
            tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
            tungstenite::Error::Protocol(_) => {
                Some(Self::new(CloseKind::ProtocolError, reason::PROTOCOL_ERROR))
            }
            _ => None,
        }
    }
}

/// The close codes wsgate sends, by kind. Defaults follow the table in the
/// crate docs; applications with their own conventions can change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseCodes {
    /// Defaults to 4401.
    pub unauthenticated: u16,
    /// Defaults to 4403.
    pub forbidden: u16,
    /// Defaults to 4429.
    pub rate_limited: u16,
    /// Defaults to 1009.
    pub too_big: u16,
    /// Defaults to 1007.
    pub invalid_payload: u16,
    /// Defaults to 1002.
    pub protocol_error: u16,
    /// Defaults to 1011.
    pub backend_failed: u16,
    /// Defaults to 1001.
    pub idle: u16,
    /// Defaults to 1008.
    pub slow_consumer: u16,
}

impl Default for CloseCodes {
    fn default() -> Self {
        Self {
            unauthenticated: 4401,
            forbidden: 4403,
            rate_limited: 4429,
            too_big: 1009,
            invalid_payload: 1007,
            protocol_error: 1002,
            backend_failed: 1011,
            idle: 1001,
            slow_consumer: 1008,
        }
    }
}

impl CloseCodes {
    /// The code for `kind`.
    pub fn code(&self, kind: CloseKind) -> u16 {
        match kind {
            CloseKind::Unauthenticated => self.unauthenticated,
            CloseKind::Forbidden => self.forbidden,
            CloseKind::RateLimited => self.rate_limited,
            CloseKind::TooBig => self.too_big,
            CloseKind::InvalidPayload => self.invalid_payload,
            CloseKind::ProtocolError => self.protocol_error,
            CloseKind::BackendFailed => self.backend_failed,
            CloseKind::Idle => self.idle,
            CloseKind::SlowConsumer => self.slow_consumer,
            CloseKind::Normal => 1000,
        }
    }
}

/// The stable close phrases.
pub mod reason {
    /// The session's token expired.
    pub const TOKEN_EXPIRED: &str = "token expired";
    /// The session (token, subject or session id) was revoked.
    pub const TOKEN_REVOKED: &str = "token revoked";
    /// First-message authentication did not come in time.
    pub const AUTHENTICATION_TIMEOUT: &str = "authentication timeout";
    /// A token (per message, refresh, first message) was not valid.
    pub const INVALID_TOKEN: &str = "invalid token";
    /// A message or the subject is not allowed.
    pub const FORBIDDEN: &str = "forbidden";
    /// Too many messages.
    pub const RATE_LIMITED: &str = "rate limited";
    /// A message over the size limit.
    pub const MESSAGE_TOO_BIG: &str = "message too big";
    /// A text message that is not valid UTF-8.
    pub const INVALID_UTF8: &str = "invalid utf-8";
    /// A frame that breaks the WebSocket protocol.
    pub const PROTOCOL_ERROR: &str = "protocol error";
    /// A backend failed.
    pub const BACKEND_FAILED: &str = "backend unavailable";
    /// Nothing heard from the client.
    pub const IDLE_TIMEOUT: &str = "idle timeout";
    /// The client did not take what the server sent within the write
    /// timeout.
    pub const SLOW_CONSUMER: &str = "slow consumer";
    /// A subject over its limit of sockets: the newest refused on a
    /// first-message route (4429), or the oldest closed to make room for
    /// it (4403).
    pub const TOO_MANY_CONNECTIONS: &str = "too many connections";
}
