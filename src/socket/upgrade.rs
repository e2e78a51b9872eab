//! Extractors that turn an upgrade request into a gated socket.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use http::request::Parts;
use tower_service::Service;

use crate::audit::{AuditEvent, EventKind, Outcome};
use crate::authenticate::Authenticator;
use crate::handshake::{
    HandshakeRejection, MissingHandshakeLayer, RejectionReason, SelectedProtocol,
};
use crate::limit::client::{audited_peer, forwarding_headers};
use crate::limit::{ClientAddr, client_address};
use crate::message::{Inbound, Verdict};
use crate::principal::Principal;
use crate::principal::Transport;
use crate::socket::driver::{serve, serve_deferred};
use crate::socket::gate::SocketGate;
use crate::socket::gated::GatedSocket;
use crate::socket::registry::PendingRefusal;
use crate::socket::session::Session;
use crate::store::RevocationStore;

/// Extractor for an authenticated WebSocket upgrade: axum's
/// `WebSocketUpgrade` plus the [`Principal`] the
/// [`HandshakeLayer`](crate::handshake::HandshakeLayer) put in the request.
///
/// ```
/// use axum::extract::State;
/// use axum::response::Response;
/// use wsgate::socket::{GatedUpgrade, SocketGate};
///
/// async fn ws(State(gate): State<SocketGate>, upgrade: GatedUpgrade) -> Response {
///     upgrade.on_upgrade(&gate, |mut socket| async move {
///         while let Some(message) = socket.recv().await {
///             let _ = socket.send(message.into_message()).await; // echo
///         }
///     })
/// }
/// ```
pub struct GatedUpgrade {
    upgrade: WebSocketUpgrade,
    principal: Principal,
    protocol: Option<String>,
    peer: Option<SocketAddr>,
}

/// Extractor for a first-message route: an upgrade without credentials,
/// authenticated by the first message (`{"type":"auth","token":"…"}`)
/// within the gate's deadline, else closed with 4401 `authentication
/// timeout`. Sockets waiting for authentication are capped per address
/// (429) and in total (503): see
/// [`SocketGateBuilder::max_unauthenticated`](crate::socket::SocketGateBuilder::max_unauthenticated).
pub struct DeferredUpgrade {
    upgrade: WebSocketUpgrade,
    peer: Option<SocketAddr>,
    /// `X-Forwarded-For` / `Forwarded`, for the gate's trusted proxies.
    forwarding: HeaderMap,
}

/// Rejection of [`GatedUpgrade`] and [`DeferredUpgrade`].
#[derive(Debug)]
#[non_exhaustive]
pub enum GatedUpgradeRejection {
    /// Not a valid WebSocket upgrade request.
    NotAnUpgrade(WebSocketUpgradeRejection),
    /// No principal: the route lacks the handshake layer.
    MissingHandshakeLayer(MissingHandshakeLayer),
}

impl fmt::Display for GatedUpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatedUpgradeRejection::NotAnUpgrade(rejection) => fmt::Display::fmt(rejection, f),
            GatedUpgradeRejection::MissingHandshakeLayer(missing) => fmt::Display::fmt(missing, f),
        }
    }
}

impl std::error::Error for GatedUpgradeRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GatedUpgradeRejection::NotAnUpgrade(rejection) => Some(rejection),
            GatedUpgradeRejection::MissingHandshakeLayer(missing) => Some(missing),
        }
    }
}

impl IntoResponse for GatedUpgradeRejection {
    fn into_response(self) -> Response {
        match self {
            GatedUpgradeRejection::NotAnUpgrade(rejection) => rejection.into_response(),
            GatedUpgradeRejection::MissingHandshakeLayer(missing) => missing.into_response(),
        }
    }
}

fn peer(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

impl<S: Send + Sync> FromRequestParts<S> for GatedUpgrade {
    type Rejection = GatedUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = parts.extensions.get::<Principal>().cloned().ok_or(
            GatedUpgradeRejection::MissingHandshakeLayer(MissingHandshakeLayer),
        )?;
        let protocol = parts
            .extensions
            .get::<SelectedProtocol>()
            .map(|selected| selected.0.clone());
        // The client the handshake layer found (behind a trusted proxy, the
        // one it named), else the socket peer.
        let peer = parts
            .extensions
            .get::<ClientAddr>()
            .map(|client| client.0)
            .or_else(|| peer(parts));
        let upgrade = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(GatedUpgradeRejection::NotAnUpgrade)?;
        Ok(Self {
            upgrade,
            principal,
            protocol,
            peer,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DeferredUpgrade {
    type Rejection = GatedUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let peer = peer(parts);
        let forwarding = forwarding_headers(&parts.headers);
        let upgrade = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(GatedUpgradeRejection::NotAnUpgrade)?;
        Ok(Self {
            upgrade,
            peer,
            forwarding,
        })
    }
}

fn limited(upgrade: WebSocketUpgrade, max_message_bytes: usize) -> WebSocketUpgrade {
    upgrade
        .max_message_size(max_message_bytes)
        .max_frame_size(max_message_bytes)
}

impl GatedUpgrade {
    /// The authenticated principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Completes the upgrade: `handler` gets a [`GatedSocket`] whose
    /// messages pass `gate`'s pipeline and whose lifecycle the gate
    /// enforces. The application protocol the handshake layer selected is
    /// echoed to the client.
    pub fn on_upgrade<P, R, F, Fut>(self, gate: &SocketGate<P, R>, handler: F) -> Response
    where
        P: Service<Inbound, Response = Verdict, Error = Infallible> + Clone + Send + Sync + 'static,
        P::Future: Send,
        R: RevocationStore,
        F: FnOnce(GatedSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let gate = gate.clone();
        let mut upgrade = limited(self.upgrade, gate.config.max_message_bytes);
        if let Some(protocol) = self.protocol {
            upgrade = upgrade.protocols([protocol]);
        }
        let session = Arc::new(Session::new(self.principal, self.peer));
        upgrade.on_upgrade(move |ws| serve(ws, gate, session, handler))
    }
}

impl DeferredUpgrade {
    /// Offers the client's choice among `protocols` (first match in the
    /// server's order), as axum's `WebSocketUpgrade::protocols` does.
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<std::borrow::Cow<'static, str>>,
    {
        self.upgrade = self.upgrade.protocols(protocols);
        self
    }

    /// Completes the upgrade, then waits for the first message to
    /// authenticate with `authenticator` (as a bearer token); `handler`
    /// runs once it has.
    pub fn on_upgrade<P, R, A, F, Fut>(
        self,
        gate: &SocketGate<P, R>,
        authenticator: A,
        handler: F,
    ) -> Response
    where
        P: Service<Inbound, Response = Verdict, Error = Infallible> + Clone + Send + Sync + 'static,
        P::Future: Send,
        R: RevocationStore,
        A: Authenticator,
        F: FnOnce(GatedSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let config = &gate.config;
        let client = client_address(self.peer, &self.forwarding, &config.trusted_proxies);
        let peer = audited_peer(self.peer, client);
        let slot = match config.registry.reserve_unauthenticated(
            client,
            config.max_unauthenticated,
            config.max_unauthenticated_per_address,
        ) {
            Ok(slot) => slot,
            Err(refusal) => {
                let reason = match refusal {
                    PendingRefusal::Address => RejectionReason::TooManyAttempts,
                    PendingRefusal::Total => RejectionReason::Overloaded,
                };
                let event = AuditEvent::new(EventKind::Handshake, Outcome::Deny)
                    .with_reason(reason.as_str())
                    .with_transport(Some(Transport::FirstMessage))
                    .with_peer(peer);
                config.registry.auditor().record(&event);
                return HandshakeRejection::new(reason)
                    .with_retry_after(std::time::Duration::from_secs(1))
                    .into_response();
            }
        };
        let gate = gate.clone();
        let upgrade = limited(self.upgrade, gate.config.max_message_bytes);
        upgrade.on_upgrade(move |ws| serve_deferred(ws, gate, authenticator, peer, slot, handler))
    }
}

impl fmt::Debug for GatedUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedUpgrade")
            .field("principal", &self.principal)
            .field("protocol", &self.protocol)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for DeferredUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredUpgrade")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}
