//! The per-route configuration of live connections.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::ConfigError;
use crate::message::Deliver;
use crate::socket::close::CloseCodes;
use crate::socket::registry::Registry;
use crate::store::InMemoryRevocationStore;

/// Default largest inbound message: 64 KiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Everything a gated socket enforces: the message pipeline, limits,
/// timeouts and close codes, and the [`Registry`] it belongs to.
///
/// Cheap to clone. Build one per kind of route with
/// [`SocketGate::builder`] and hand it to
/// [`GatedUpgrade::on_upgrade`](crate::socket::GatedUpgrade::on_upgrade).
#[derive(Debug)]
pub struct SocketGate<P = Deliver, R = InMemoryRevocationStore> {
    pub(crate) config: Arc<GateConfig<R>>,
    pub(crate) pipeline: P,
}

#[derive(Debug)]
pub(crate) struct GateConfig<R> {
    pub(crate) registry: Registry<R>,
    pub(crate) max_message_bytes: usize,
    pub(crate) message_rate: Option<u32>,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) auth_deadline: Duration,
    pub(crate) max_unauthenticated: usize,
    pub(crate) max_unauthenticated_per_address: usize,
    pub(crate) close_codes: CloseCodes,
    pub(crate) clock: Clock,
    pub(crate) queue: usize,
    pub(crate) trusted_proxies: Vec<IpAddr>,
}

/// Builds a [`SocketGate`].
#[derive(Debug)]
#[must_use]
pub struct SocketGateBuilder<P, R> {
    config: GateConfig<R>,
    pipeline: P,
}

impl<R> SocketGate<Deliver, R> {
    /// Starts a gate in `registry`, with a pipeline that delivers every
    /// message, a 64 KiB message limit, no rate limit, pings every 30 s,
    /// an idle timeout of 90 s, a 5 s first-message deadline, at most 1024
    /// unauthenticated sockets (8 per address), and the default close
    /// codes.
    pub fn builder(registry: Registry<R>) -> SocketGateBuilder<Deliver, R> {
        SocketGateBuilder {
            config: GateConfig {
                registry,
                max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
                message_rate: None,
                ping_interval: Some(Duration::from_secs(30)),
                idle_timeout: Some(Duration::from_secs(90)),
                auth_deadline: Duration::from_secs(5),
                max_unauthenticated: 1_024,
                max_unauthenticated_per_address: 8,
                close_codes: CloseCodes::default(),
                clock: Clock::system(),
                queue: 32,
                trusted_proxies: Vec::new(),
            },
            pipeline: Deliver,
        }
    }
}

impl<P, R> SocketGate<P, R> {
    /// The registry the gate's sockets belong to.
    pub fn registry(&self) -> &Registry<R> {
        &self.config.registry
    }
}

impl<P: Clone, R> Clone for SocketGate<P, R> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            pipeline: self.pipeline.clone(),
        }
    }
}

impl<P, R> SocketGateBuilder<P, R> {
    /// The message pipeline (see [`crate::message`]). Each connection gets
    /// its own clone.
    pub fn pipeline<P2>(self, pipeline: P2) -> SocketGateBuilder<P2, R> {
        SocketGateBuilder {
            config: self.config,
            pipeline,
        }
    }

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
        self.config.max_message_bytes = max;
        Ok(self)
    }

    /// Messages per second per connection, with bursts of twice that; more
    /// closes the socket with 4429. Pings and pongs from the client count
    /// too (a ping flood costs the server a pong each). `0` turns the limit
    /// off (the default).
    pub fn message_rate(mut self, per_second: u32) -> Self {
        self.config.message_rate = (per_second > 0).then_some(per_second);
        self
    }

    /// How often to ping the client; `None` never pings. Defaults to 30 s.
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.ping_interval = interval.filter(|interval| !interval.is_zero());
        self
    }

    /// Close the socket (1001 `idle timeout`) when nothing, not even a
    /// pong, came from the client for this long; `None` never does.
    /// Defaults to 90 s.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout.filter(|timeout| !timeout.is_zero());
        self
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
        self.config.auth_deadline = deadline;
        Ok(self)
    }

    /// Caps on sockets of first-message routes that have not authenticated
    /// yet: at most `total` on this gate's registry and `per_address` from
    /// one client address; past them the upgrade is refused (503, 429).
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
        self.config.max_unauthenticated = total;
        self.config.max_unauthenticated_per_address = per_address;
        Ok(self)
    }

    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` name the
    /// client of a first-message route, for the per-address cap and the
    /// audit trail; list exactly your proxies. Other peers are taken at
    /// their socket address. Defaults to none. (Routes behind the
    /// [`HandshakeLayer`](crate::handshake::HandshakeLayer) get their
    /// client from the layer's own
    /// [`trusted_proxies`](crate::handshake::HandshakeLayerBuilder::trusted_proxies).)
    pub fn trusted_proxies<I: IntoIterator<Item = IpAddr>>(mut self, proxies: I) -> Self {
        self.config.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// The close codes. Defaults to [`CloseCodes::default`].
    pub fn close_codes(mut self, codes: CloseCodes) -> Self {
        self.config.close_codes = codes;
        self
    }

    /// The clock token expiry is read against. Defaults to the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.config.clock = clock;
        self
    }

    /// Finishes the gate.
    pub fn build(self) -> SocketGate<P, R> {
        SocketGate {
            config: Arc::new(self.config),
            pipeline: self.pipeline,
        }
    }
}
