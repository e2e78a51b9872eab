//! Wiring the stages by hand: the settings every stage shares, in one
//! place.
//!
//! A [`Gate`](crate::Gate) wires the stages itself, and is the way in for
//! applications: `Gate::builder(verifier)`, then its layers, its socket
//! gate and its pipeline. Wire them yourself only when the gate does not
//! fit (an authenticator of your own without a token verifier, several
//! socket gates with different registries). The kit:
//!
//! Every part of the kit is here too (`wsgate::wiring::HandshakeLayer`,
//! …), beside the stage it belongs to.
//!
//! | stage | start with | takes |
//! |---|---|---|
//! | handshake | [`HandshakeLayer::builder`] | [`wiring`](HandshakeLayerBuilder::wiring) |
//! | registry | [`Registry::new`] | the wiring |
//! | socket | [`SocketGate::builder`] | [`wiring`](SocketGateBuilder::wiring) |
//! | pipeline | [`AuditLayer`], [`RefreshLayer`], [`MessageTokenLayer`], [`RoleGuardLayer`], [`AsyncRoleGuardLayer`], around [`Deliver`] | their own settings |
//!
//! Build one [`Wiring`] and hand it to each: the trusted proxies, the
//! clock, the audit, the revocation store, DPoP and forwarded certificates
//! then agree everywhere, as a gate's do. A gate's own is
//! [`Gate::wiring`](crate::Gate::wiring), for parts added beside it.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use wsgate::authenticate::BearerAuthenticator;
//! use wsgate::handshake::HandshakeLayer;
//! use wsgate::jwt::{Algorithm, JwtVerifier, VerificationKey};
//! use wsgate::socket::{Registry, SocketGate};
//! use wsgate::Transport;
//! use wsgate::wiring::Wiring;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = JwtVerifier::builder()
//!     .key(VerificationKey::hmac(b"a-secret-of-at-least-thirty-two-bytes", Algorithm::HS256)?)
//!     .build()?;
//! let wiring = Wiring::default().trusted_proxies([IpAddr::V4(Ipv4Addr::LOCALHOST)]);
//! let layer = HandshakeLayer::builder(BearerAuthenticator::new(verifier))
//!     .transports([Transport::Bearer])
//!     .wiring(&wiring)
//!     .build()?;
//! let sockets = SocketGate::builder(Registry::new(&wiring)).wiring(&wiring).build();
//! # let _ = (layer, sockets);
//! # Ok(())
//! # }
//! ```

pub(crate) mod settings;

pub use self::settings::Wiring;
// The kit, in one place: each part stays in the stage it belongs to.
pub use crate::handshake::{HandshakeLayer, HandshakeLayerBuilder};
pub use crate::pipeline::{
    AsyncRoleGuardLayer, AuditLayer, Deliver, MessageTokenLayer, RefreshLayer, RoleGuardLayer,
};
pub use crate::socket::{Registry, SocketGate, SocketGateBuilder};
