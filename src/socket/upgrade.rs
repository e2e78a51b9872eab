//! Extractors that turn an upgrade request into a gated socket.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use http::StatusCode;
use http::request::Parts;

use crate::audit::AuditEvent;
use crate::certificate::ClientCertificate;
use crate::handshake::{
    Addressed, ClientAddr, HandshakeRejection, MissingHandshakeLayer, RejectionReason,
    SelectedProtocol, audited_peer, client_address, forwarding_headers,
};
use crate::limit::SocketLease;
use crate::principal::{Principal, Transport};
use crate::session::Session;
use crate::socket::driver::{Possessed, serve, serve_deferred};
use crate::socket::gated_socket::GatedSocket;
use crate::socket::limits::Limits;
use crate::socket::registry::PendingRefusal;
use crate::socket::socket_gate::SocketGate;

/// Extractor for an authenticated WebSocket upgrade: axum's
/// `WebSocketUpgrade` plus the [`Principal`] the
/// [`HandshakeLayer`](crate::handshake::HandshakeLayer) put in the request.
///
/// ```
/// use axum::extract::State;
/// use axum::response::Response;
/// use wsgate::Gate;
/// use wsgate::socket::GatedUpgrade;
///
/// async fn ws(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
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
    /// The socket's place among its subject's, taken by the handshake
    /// layer: held for the socket's life.
    lease: Option<SocketLease>,
}

/// Extractor for a first-message route: an upgrade without credentials,
/// authenticated by the first message (`{"type":"auth","token":"…"}`)
/// within the gate's deadline, else closed with 4401 `authentication
/// timeout`. The token is checked by the gate's first-message
/// authenticator, then against the registry's revocations by the same
/// session rule as a handshake. Sockets waiting for authentication are
/// capped per address (429) and in total (503): see
/// [`Limits::max_unauthenticated`](crate::socket::Limits::max_unauthenticated).
pub struct DeferredUpgrade {
    upgrade: WebSocketUpgrade,
    peer: Option<SocketAddr>,
    /// `X-Forwarded-For` / `Forwarded`, for the gate's trusted proxies.
    forwarding: HeaderMap,
    /// Where the request was sent, for a first message's DPoP proof.
    addressed: Addressed,
    /// The connection's client certificate, for a first message's
    /// certificate-bound token.
    certificate: Option<ClientCertificate>,
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
        let lease = parts.extensions.remove::<SocketLease>();
        let upgrade = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(GatedUpgradeRejection::NotAnUpgrade)?;
        Ok(Self {
            upgrade,
            principal,
            protocol,
            peer,
            lease,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for DeferredUpgrade {
    type Rejection = GatedUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let peer = peer(parts);
        let forwarding = forwarding_headers(&parts.headers);
        let addressed = Addressed::of(&parts.headers, &parts.uri, &parts.extensions);
        let certificate = parts.extensions.get::<ClientCertificate>().cloned();
        let upgrade = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(GatedUpgradeRejection::NotAnUpgrade)?;
        Ok(Self {
            upgrade,
            peer,
            forwarding,
            addressed,
            certificate,
        })
    }
}

fn limited(upgrade: WebSocketUpgrade, limits: &Limits) -> WebSocketUpgrade {
    upgrade
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .read_buffer_size(limits.read_buffer_bytes)
}

impl GatedUpgrade {
    /// The authenticated principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Completes the upgrade: `handler` gets a [`GatedSocket`] whose
    /// messages pass `gate`'s pipeline and whose lifecycle the gate
    /// enforces. The application protocol the handshake layer selected is
    /// echoed to the client. `gate` is a [`Gate`](crate::Gate) or a
    /// [`SocketGate`].
    #[must_use = "the upgrade happens only when this response is returned to the client"]
    pub fn on_upgrade<G, F, Fut>(self, gate: &G, handler: F) -> Response
    where
        G: AsRef<SocketGate>,
        F: FnOnce(GatedSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let gate = gate.as_ref().clone();
        let mut upgrade = limited(self.upgrade, &gate.config.limits);
        if let Some(protocol) = self.protocol {
            upgrade = upgrade.protocols([protocol]);
        }
        let session = Arc::new(Session::new(self.principal, self.peer));
        let lease = self.lease;
        upgrade.on_upgrade(move |ws| serve(ws, gate, session, lease, handler))
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
    /// authenticate with `gate`'s first-message authenticator (as a bearer
    /// token); `handler` runs once it has. `gate` is a [`Gate`](crate::Gate)
    /// or a [`SocketGate`] built with
    /// [`first_message`](crate::socket::SocketGateBuilder::first_message);
    /// without one the route answers 500.
    #[must_use = "the upgrade happens only when this response is returned to the client"]
    pub fn on_upgrade<G, F, Fut>(self, gate: &G, handler: F) -> Response
    where
        G: AsRef<SocketGate>,
        F: FnOnce(GatedSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let gate = gate.as_ref();
        let config = &gate.config;
        let Some(authenticator) = config.first_message.clone() else {
            let problem = "no first-message authenticator on this socket gate: build it from a wsgate::Gate, or call SocketGateBuilder::first_message";
            tracing::error!(target: "wsgate::socket", "{problem}");
            return (StatusCode::INTERNAL_SERVER_ERROR, problem).into_response();
        };
        let client = client_address(
            self.peer,
            &self.forwarding,
            &config.handshake.wiring.trusted_proxies,
        );
        let peer = audited_peer(self.peer, client);
        let limits = &config.limits;
        let slot = match config.registry.reserve_unauthenticated(
            client,
            limits.max_unauthenticated,
            limits.max_unauthenticated_per_address,
        ) {
            Ok(slot) => slot,
            Err(refusal) => {
                let reason = match refusal {
                    PendingRefusal::Address => RejectionReason::TooManyAttempts,
                    PendingRefusal::Total => RejectionReason::Overloaded,
                };
                let event = AuditEvent::handshake_denied(
                    reason.as_str(),
                    Some(Transport::FirstMessage),
                    peer,
                );
                config.registry.auditor().record(&event);
                let rejection = HandshakeRejection::new(reason)
                    .with_retry_after(std::time::Duration::from_secs(1));
                return config.handshake.wiring.rejections.answer(rejection);
            }
        };
        let target = self
            .addressed
            .target(self.peer, &config.handshake.wiring.trusted_proxies);
        // A trusted proxy's own certificate is not its client's.
        let from_proxy = self
            .peer
            .is_some_and(|peer| config.handshake.wiring.trusted_proxies.contains(&peer.ip()));
        let certificate = self.certificate.filter(|_| !from_proxy);
        let gate = gate.clone();
        let upgrade = limited(self.upgrade, limits);
        upgrade.on_upgrade(move |ws| {
            let possession = Possessed {
                target,
                certificate,
            };
            serve_deferred(ws, gate, authenticator, peer, possession, slot, handler)
        })
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
