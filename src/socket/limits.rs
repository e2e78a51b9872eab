//! What a gated socket allows: sizes, rates, timeouts and caps.

use std::time::Duration;

use crate::error::ConfigError;

/// Default largest inbound message: 64 KiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Default write timeout: 10 s.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default most a socket reads from the network at once: 16 KiB.
pub const DEFAULT_READ_BUFFER_BYTES: usize = 16 * 1024;

/// The limits a gated socket enforces, set once on a
/// [`GateBuilder`](crate::GateBuilder) (or a
/// [`SocketGateBuilder`](crate::socket::SocketGateBuilder)) and shared by
/// every socket it opens.
///
/// Defaults: 64 KiB messages, a 16 KiB read buffer, no message rate limit,
/// a ping every 30 s, an idle timeout of 90 s, a 10 s write timeout, a
/// 5 s first-message deadline, and at most 1024 unauthenticated sockets
/// (8 per client address).
///
/// ```
/// use std::time::Duration;
/// use wsgate::socket::Limits;
///
/// # fn main() -> Result<(), wsgate::ConfigError> {
/// let limits = Limits::default()
///     .max_message_bytes(16 * 1024)?
///     .message_rate(100)
///     .idle_timeout(Some(Duration::from_secs(60)));
/// # let _ = limits;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Limits {
    pub(crate) max_message_bytes: usize,
    pub(crate) read_buffer_bytes: usize,
    pub(crate) message_rate: Option<u32>,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) write_timeout: Duration,
    pub(crate) auth_deadline: Duration,
    pub(crate) max_unauthenticated: usize,
    pub(crate) max_unauthenticated_per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            read_buffer_bytes: DEFAULT_READ_BUFFER_BYTES,
            message_rate: None,
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(90)),
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            auth_deadline: Duration::from_secs(5),
            max_unauthenticated: 1_024,
            max_unauthenticated_per_address: 8,
        }
    }
}

impl Limits {
    /// Largest inbound message; a larger one closes the socket with 1009.
    /// Defaults to 64 KiB.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn max_message_bytes(mut self, max: usize) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::ZeroLimit("max_message_bytes"));
        }
        self.max_message_bytes = max;
        Ok(self)
    }

    /// The most a socket reads from the network at once (the WebSocket
    /// read buffer, which every socket holds for its whole life). Defaults
    /// to 16 KiB, where axum's default is 128 KiB: the buffer is zeroed
    /// before each read, which at 128 KiB cost more CPU than everything
    /// else wsgate does to a message, and an idle socket keeps it resident
    /// (about 130 KB a socket; 16 KiB keeps 10 000 idle sockets in a
    /// fraction of the memory). A larger message is still read whole, in
    /// several reads; raise it for a socket that mostly carries large
    /// messages.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn read_buffer_bytes(mut self, bytes: usize) -> Result<Self, ConfigError> {
        if bytes == 0 {
            return Err(ConfigError::ZeroLimit("read_buffer_bytes"));
        }
        self.read_buffer_bytes = bytes;
        Ok(self)
    }

    /// Messages per second per connection, with bursts of twice that; more
    /// closes the socket with 4429. Pings and pongs from the client count
    /// too (a ping flood costs the server a pong each). `0` turns the limit
    /// off (the default).
    pub fn message_rate(mut self, per_second: u32) -> Self {
        self.message_rate = (per_second > 0).then_some(per_second);
        self
    }

    /// How often to ping the client; `None` never pings. Defaults to 30 s.
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.ping_interval = interval.filter(|interval| !interval.is_zero());
        self
    }

    /// Close the socket (1001 `idle timeout`) when nothing, not even a
    /// pong, came from the client for this long; `None` never does.
    /// Defaults to 90 s.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout.filter(|timeout| !timeout.is_zero());
        self
    }

    /// How long the client may leave what the server sends untaken (a
    /// write or a flush that makes no progress because the client stopped
    /// reading and its receive window is full) before wsgate drops it as
    /// a slow consumer: the close is audited with reason `slow consumer`
    /// (1008), and the connection is dropped after a one-second grace
    /// whether or not the close frame got through. Expiry, revocation,
    /// kicks and the idle timeout are served meanwhile. Defaults to 10 s.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn write_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::ZeroLimit("write_timeout"));
        }
        self.write_timeout = timeout;
        Ok(self)
    }

    /// How long a first-message route waits for authentication before
    /// closing with 4401 `authentication timeout`. Defaults to 5 s.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn auth_deadline(mut self, deadline: Duration) -> Result<Self, ConfigError> {
        if deadline.is_zero() {
            return Err(ConfigError::ZeroLimit("auth_deadline"));
        }
        self.auth_deadline = deadline;
        Ok(self)
    }

    /// Caps on sockets of first-message routes that have not authenticated
    /// yet: at most `total` on the registry and `per_address` from one
    /// client address; past them the upgrade is refused (503, 429).
    /// Defaults to 1024 and 8.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn max_unauthenticated(
        mut self,
        total: usize,
        per_address: usize,
    ) -> Result<Self, ConfigError> {
        if total == 0 || per_address == 0 {
            return Err(ConfigError::ZeroLimit("max_unauthenticated"));
        }
        self.max_unauthenticated = total;
        self.max_unauthenticated_per_address = per_address;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_sizes_are_refused_by_name() {
        let zero = |result: Result<Limits, ConfigError>| match result {
            Err(ConfigError::ZeroLimit(name)) => name,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(
            zero(Limits::default().max_message_bytes(0)),
            "max_message_bytes"
        );
        assert_eq!(
            zero(Limits::default().read_buffer_bytes(0)),
            "read_buffer_bytes"
        );
        let limits = Limits::default().read_buffer_bytes(4096).unwrap();
        assert_eq!(limits.read_buffer_bytes, 4096);
        assert_eq!(
            Limits::default().read_buffer_bytes,
            DEFAULT_READ_BUFFER_BYTES
        );
        assert_eq!(
            zero(Limits::default().write_timeout(Duration::ZERO)),
            "write_timeout"
        );
        assert_eq!(Limits::default().write_timeout, DEFAULT_WRITE_TIMEOUT);
    }
}
