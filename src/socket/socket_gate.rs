//! The per-route configuration of live connections.

use std::convert::Infallible;
use std::sync::Arc;

use tower_service::Service;

use crate::authenticate::{Authenticator, BoxedAuthenticator};
use crate::handshake::HandshakeSettings;
use crate::pipeline::deliver::Deliver;
use crate::session::{BoxedPipeline, CloseCodes, Inbound, Verdict, boxed_pipeline};
use crate::socket::limits::Limits;
use crate::socket::registry::Registry;
use crate::wiring::settings::Wiring;

/// Everything a gated socket enforces: the message pipeline, limits,
/// timeouts and close codes, and the [`Registry`] it belongs to.
///
/// Cheap to clone, and one type whatever its pipeline: keep it in your
/// application's state as it is. A [`Gate`](crate::Gate) makes one from its
/// shared parts ([`Gate::sockets`](crate::Gate::sockets)); build your own
/// with [`SocketGate::builder`] for advanced wiring.
#[derive(Clone, Debug)]
pub struct SocketGate {
    pub(crate) config: Arc<GateConfig>,
    pub(crate) pipeline: BoxedPipeline,
}

#[derive(Debug)]
pub(crate) struct GateConfig {
    pub(crate) registry: Registry,
    pub(crate) limits: Limits,
    pub(crate) close_codes: CloseCodes,
    pub(crate) queue: usize,
    pub(crate) first_message: Option<BoxedAuthenticator>,
    /// What first-message routes share with the handshake layers: trusted
    /// proxies, the limit of sockets per subject, the checks of DPoP
    /// proofs, how refusals are answered.
    pub(crate) handshake: HandshakeSettings,
}

/// Builds a [`SocketGate`].
#[derive(Debug)]
#[must_use]
pub struct SocketGateBuilder {
    config: GateConfig,
    pipeline: BoxedPipeline,
}

impl SocketGate {
    /// Starts a gate in `registry`, with a pipeline that delivers every
    /// message, the default [`Limits`] and close codes, the system clock,
    /// no trusted proxies and no first-message authenticator.
    pub fn builder(registry: Registry) -> SocketGateBuilder {
        SocketGateBuilder {
            config: GateConfig {
                registry,
                limits: Limits::default(),
                close_codes: CloseCodes::default(),
                queue: 32,
                first_message: None,
                handshake: HandshakeSettings::default(),
            },
            pipeline: boxed_pipeline(Deliver),
        }
    }

    /// The registry the gate's sockets belong to.
    pub fn registry(&self) -> &Registry {
        &self.config.registry
    }

    /// This gate with another message pipeline: same registry, limits and
    /// close codes.
    pub fn with_pipeline<P>(&self, pipeline: P) -> SocketGate
    where
        P: Service<Inbound, Response = Verdict, Error = Infallible> + Clone + Send + Sync + 'static,
        P::Future: Send + 'static,
    {
        SocketGate {
            config: self.config.clone(),
            pipeline: boxed_pipeline(pipeline),
        }
    }
}

/// A gate is its own socket configuration; a [`Gate`](crate::Gate) holds
/// one too, so either can be handed to an upgrade.
impl AsRef<SocketGate> for SocketGate {
    fn as_ref(&self) -> &SocketGate {
        self
    }
}

impl SocketGateBuilder {
    /// The message pipeline (see [`crate::pipeline`]): any tower service of
    /// [`Inbound`] messages, boxed here so the gate's type does not name
    /// it. Each connection gets its own clone.
    pub fn pipeline<P>(mut self, pipeline: P) -> Self
    where
        P: Service<Inbound, Response = Verdict, Error = Infallible> + Clone + Send + Sync + 'static,
        P::Future: Send + 'static,
    {
        self.pipeline = boxed_pipeline(pipeline);
        self
    }

    /// The sizes, rates, timeouts and caps. Defaults to
    /// [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// How first-message routes
    /// ([`DeferredUpgrade`](crate::socket::DeferredUpgrade)) authenticate
    /// the token of `{"type":"auth","token":…}`; revocations are checked
    /// after it with the registry's store. Defaults to none: such a route
    /// then answers 500 (a server bug, not a client's).
    pub fn first_message<A: Authenticator>(mut self, authenticator: A) -> Self {
        self.config.first_message = Some(BoxedAuthenticator::new(authenticator));
        self
    }

    /// The settings every stage shares ([`Wiring`]): here, the clock
    /// token expiry is read against, and for first-message routes the
    /// trusted proxies (the per-address cap, the audit trail), DPoP and
    /// how refusals are answered. Defaults to [`Wiring::default`]; give
    /// the one your handshake layers and registry have.
    pub fn wiring(mut self, wiring: &Wiring) -> Self {
        self.config.handshake.wiring = wiring.clone();
        self
    }

    /// What first-message routes share with a [`Gate`](crate::Gate)'s
    /// handshake layers: trusted proxies, the limit of sockets per subject
    /// ([`max_sockets_per_subject`](crate::GateBuilder::max_sockets_per_subject)),
    /// the DPoP verifier and mode, how refusals are answered.
    pub(crate) fn handshake(mut self, settings: &HandshakeSettings) -> Self {
        self.config.handshake = settings.clone();
        self
    }

    /// The close codes. Defaults to [`CloseCodes::default`].
    pub fn close_codes(mut self, codes: CloseCodes) -> Self {
        self.config.close_codes = codes;
        self
    }

    /// Finishes the gate.
    pub fn build(self) -> SocketGate {
        SocketGate {
            config: Arc::new(self.config),
            pipeline: self.pipeline,
        }
    }
}
