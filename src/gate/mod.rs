//! The context above the stages: [`Gate`] and its builder.

mod builder;
mod ticket_route;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tower_service::Service;

use crate::authenticate::{Authenticator, BearerAuthenticator, BoxedAuthenticator, Credential};
use crate::dpop::{DpopMode, DpopVerifier};
use crate::error::{Error, ErrorKind};
use crate::handshake::{HandshakeLayer, HandshakeLayerBuilder, HandshakeSettings, client_address};
use crate::limit::{BoxedFailureLimiter, check_with_limits};
use crate::pipeline::{AuditLayer, MessageTokenLayer, RefreshLayer};
use crate::principal::Principal;
use crate::secret::Secret;
use crate::session::{Inbound, Verdict};
use crate::socket::{Registry, SocketGate};
use crate::store::{BoxedRevocationStore, BoxedTicketStore};
use crate::ticket::{IssuedTicket, Tickets};
use crate::token::{BoxedVerifier, TokenVerifier};
use crate::wiring::settings::Wiring;

pub use self::builder::GateBuilder;

/// The handshake layer a gate makes.
pub type GateHandshakeLayer = HandshakeLayer<BoxedAuthenticator, BoxedFailureLimiter>;

/// The handshake layer builder a gate starts.
pub type GateHandshakeLayerBuilder = HandshakeLayerBuilder<BoxedAuthenticator, BoxedFailureLimiter>;

/// One gate for the whole connection: the shared parts set once, every
/// stage made from them.
///
/// A [`Gate`] owns what the stages share — the token verifier and the
/// authenticators, revocations, tickets, the failure limiter, the audit
/// sink, the registry of live sockets, trusted proxies, the clock, close
/// codes and limits — and makes the handshake layer, the socket gate and
/// the message pipeline's layers from them, so the same instance serves
/// every stage. Revocations are checked on every path (handshake,
/// first-message, refresh, per-message tokens) by one session rule.
///
/// # Presets
///
/// What a gate makes, unless told otherwise:
///
/// | made by | what |
/// |---|---|
/// | [`Gate::handshake`] | browsers and servers: `Authorization: Bearer`, the `wsgate.bearer.` subprotocol, `?ticket=`; the token verifier, then your authenticators, then passwords, then tickets; the failure limiter; revocations |
/// | [`Gate::bearer_layer`] | HTTP routes of token holders (ticket issuing, admin): `Authorization: Bearer` only |
/// | [`Gate::ticket_route`] | `POST` → `{"ticket","expires_in"}` for the holder of a token |
/// | [`Gate::sockets`] (the gate itself, for an upgrade) | audit, in-band refresh, per-message tokens when asked for, the role guard; expiry, revocation and limits |
///
/// # Example
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::{Router, extract::State, response::Response, routing::get};
/// use wsgate::jwt::{Algorithm, JwtVerifier, VerificationKey};
/// use wsgate::pipeline::{Requirement, RolePolicy};
/// use wsgate::socket::GatedUpgrade;
/// use wsgate::Gate;
///
/// let verifier = JwtVerifier::builder()
///     .key(VerificationKey::hmac(b"a-secret-of-at-least-thirty-two-bytes", Algorithm::HS256)?)
///     .build()?;
/// let gate = Gate::builder(verifier)
///     .policy(RolePolicy::by_type().otherwise(Requirement::any_role(["user"])))
///     .build()?;
/// let app: Router = Router::new()
///     .route("/ws", get(echo))
///     .route_layer(gate.handshake().application_protocols(["chat.v1"])?.build()?)
///     .route("/tickets", gate.ticket_route())
///     .with_state(gate);
///
/// async fn echo(State(gate): State<Gate>, upgrade: GatedUpgrade) -> Response {
///     upgrade.on_upgrade(&gate, |mut socket| async move {
///         while let Some(message) = socket.recv().await {
///             let _ = socket.send(message.into_message()).await;
///         }
///     })
/// }
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
///
/// An application with a state of its own keeps the gate in it and
/// implements `axum::extract::FromRef` for `Gate`.
///
/// Cheap to clone, and the type of your state whatever is inside: hand it
/// to `Router::with_state` and take it back with `State<Gate>`.
#[derive(Clone, Debug)]
pub struct Gate {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    verifier: BoxedVerifier,
    authenticator: BoxedAuthenticator,
    passwords: Option<BoxedAuthenticator>,
    tickets: Tickets<BoxedTicketStore>,
    limiter: BoxedFailureLimiter,
    sockets: SocketGate,
    /// What every socket route's handshake layer starts from: trusted
    /// proxies, revocations, DPoP, forwarded certificates, the limit of
    /// sockets per subject, the audit, how refusals are answered.
    handshake: HandshakeSettings,
    audit: AuditLayer,
    refresh: RefreshLayer<BoxedVerifier, BoxedRevocationStore>,
    message_tokens: MessageTokenLayer<BoxedVerifier, BoxedRevocationStore>,
    bearer_layer: GateHandshakeLayer,
}

/// A handshake layer builder wired to the shared parts.
fn handshake_builder(
    authenticator: &BoxedAuthenticator,
    limiter: &BoxedFailureLimiter,
    settings: &HandshakeSettings,
) -> GateHandshakeLayerBuilder {
    HandshakeLayerBuilder::from_settings(authenticator.clone(), limiter.clone(), settings.clone())
}

impl Gate {
    /// Starts a gate whose tokens `verifier` checks (at the handshake, on
    /// refresh, in messages). Everything else has a secure default: see
    /// [`GateBuilder`].
    pub fn builder(verifier: impl TokenVerifier) -> GateBuilder {
        // Bearer credentials go to the verifier as it is, not through its
        // box: one indirection fewer on every handshake.
        let bearer = BoxedAuthenticator::new(BearerAuthenticator::new(verifier.clone()));
        GateBuilder::new(BoxedVerifier::new(verifier), bearer)
    }

    /// A handshake layer for socket routes, wired to the gate's parts (the
    /// authenticators, the failure limiter, revocations, the limit of
    /// sockets per subject, DPoP, trusted proxies, the audit): finish it
    /// with the route's own settings. Its transports
    /// default to Bearer, the subprotocol and tickets, which need
    /// [`application_protocols`](HandshakeLayerBuilder::application_protocols).
    pub fn handshake(&self) -> GateHandshakeLayerBuilder {
        let shared = &*self.shared;
        handshake_builder(&shared.authenticator, &shared.limiter, &shared.handshake)
    }

    /// A handshake layer for HTTP routes of token holders (issuing
    /// tickets, admin actions): `Authorization: Bearer` only, revocations
    /// checked, the [`Principal`] in the request for
    /// [`Authenticated`](crate::handshake::Authenticated).
    pub fn bearer_layer(&self) -> GateHandshakeLayer {
        self.shared.bearer_layer.clone()
    }

    /// The socket gate: hand the gate itself to
    /// [`GatedUpgrade::on_upgrade`](crate::socket::GatedUpgrade::on_upgrade).
    pub fn sockets(&self) -> &SocketGate {
        &self.shared.sockets
    }

    /// A socket gate like the gate's own, with another pipeline: build it
    /// from [`audit_layer`](Self::audit_layer),
    /// [`refresh_layer`](Self::refresh_layer),
    /// [`message_token_layer`](Self::message_token_layer) and the layers of
    /// [`crate::pipeline`].
    pub fn sockets_with<P>(&self, pipeline: P) -> SocketGate
    where
        P: Service<Inbound, Response = Verdict, Error = Infallible> + Clone + Send + Sync + 'static,
        P::Future: Send + 'static,
    {
        self.shared.sockets.with_pipeline(pipeline)
    }

    /// The audit layer, recording to the gate's auditor.
    pub fn audit_layer(&self) -> AuditLayer {
        self.shared.audit.clone()
    }

    /// The refresh layer, with the gate's verifier and revocations.
    pub fn refresh_layer(&self) -> RefreshLayer<BoxedVerifier, BoxedRevocationStore> {
        self.shared.refresh.clone()
    }

    /// The per-message token layer, with the gate's verifier, revocations
    /// and one token cache for every pipeline made from it.
    pub fn message_token_layer(&self) -> MessageTokenLayer<BoxedVerifier, BoxedRevocationStore> {
        self.shared.message_tokens.clone()
    }

    /// The registry of live sockets: list, close, kick, and
    /// [`revoke`](Registry::revoke) — which closes matching sockets and
    /// refuses the revoked tokens on every path from then on.
    pub fn registry(&self) -> &Registry {
        self.shared.sockets.registry()
    }

    /// The token verifier.
    pub fn verifier(&self) -> &BoxedVerifier {
        &self.shared.verifier
    }

    /// How DPoP proofs are checked: a login route that issues bound tokens
    /// checks its request's proof with it (`htm` `POST`, no `ath`), so a
    /// proof used there is a replay everywhere else.
    pub fn dpop_verifier(&self) -> &DpopVerifier {
        &self.shared.handshake.wiring.dpop
    }

    /// Whether bound tokens are taken, and only they.
    pub fn dpop_mode(&self) -> DpopMode {
        self.shared.handshake.wiring.dpop_mode
    }

    /// The settings the gate's stages share, for parts wired by hand
    /// beside it (a [`SocketGate`] with [`Registry::new`], a
    /// [`HandshakeLayer`] of its own): see [`crate::wiring`].
    pub fn wiring(&self) -> &Wiring {
        &self.shared.handshake.wiring
    }

    /// Issues a single-use ticket that redeems to `principal` (at a
    /// handshake with `?ticket=`), in the gate's ticket store.
    ///
    /// # Errors
    ///
    /// A backend error when the store fails.
    pub async fn issue_ticket(&self, principal: &Principal) -> Result<IssuedTicket, Error> {
        self.shared.tickets.issue(principal).await
    }

    /// The address of the client behind a request from `peer`, as every
    /// stage of the gate takes it: `peer` itself, unless it is one of the
    /// [trusted proxies](GateBuilder::trusted_proxies); then the
    /// right-most address in `X-Forwarded-For` (or `Forwarded: for=`) that
    /// is not itself a trusted proxy. Headers from any other peer are
    /// ignored: anyone can send them. For routes of your own (a login
    /// route's [`check_password`](Self::check_password)); routes behind a
    /// handshake layer have it as [`ClientAddr`](crate::handshake::ClientAddr).
    pub fn client_address(&self, peer: SocketAddr, headers: &http::HeaderMap) -> IpAddr {
        client_address(
            Some(peer),
            headers,
            &self.shared.handshake.wiring.trusted_proxies,
        )
        .unwrap_or(peer.ip())
    }

    /// Checks a username and password (a login route), under the failure
    /// limiter: `client` is the caller's address
    /// ([`client_address`](Self::client_address)).
    ///
    /// # Errors
    ///
    /// [`CredentialError::InvalidCredentials`](crate::CredentialError::InvalidCredentials)
    /// for an unknown user or a wrong password alike,
    /// [`ErrorKind::AccountDisabled`], [`ErrorKind::TooManyAttempts`] while
    /// locked (the right password too), a backend error, and
    /// [`ErrorKind::UnsupportedCredential`] when the gate has no
    /// [`passwords`](GateBuilder::passwords).
    pub async fn check_password(
        &self,
        username: &str,
        password: &Secret,
        client: Option<IpAddr>,
    ) -> Result<Principal, Error> {
        let Some(passwords) = &self.shared.passwords else {
            return Err(ErrorKind::UnsupportedCredential.into());
        };
        let credential = Credential::Basic {
            username: username.to_owned(),
            password: password.clone(),
        };
        let check = passwords.authenticate(&credential);
        check_with_limits(&self.shared.limiter, username, client, check).await
    }
}

/// The gate hands its socket gate to upgrades.
impl AsRef<SocketGate> for Gate {
    fn as_ref(&self) -> &SocketGate {
        self.sockets()
    }
}
