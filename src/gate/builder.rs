//! Building a [`Gate`]: the shared parts, each set once.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use tower::layer::util::Identity;
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::Auditor;
use crate::authenticate::{Authenticator, BoxedAuthenticator};
use crate::certificate::ForwardedCertificates;
use crate::clock::Clock;
use crate::dpop::{DpopMode, DpopVerifier};
use crate::error::ConfigError;
use crate::gate::{Gate, Shared, handshake_builder};
use crate::handshake::{HandshakeSettings, RejectionResponse};
use crate::limit::{
    AnyLeaseStore, BoxedFailureLimiter, FailureLimiter, FailureLimits, InMemoryFailureLimiter,
    SocketLimit,
};
use crate::pipeline::{
    AsyncPolicy, AsyncRoleGuardLayer, AuditLayer, Deliver, MessageTokenLayer, Policy, RefreshLayer,
    RoleGuardLayer,
};
use crate::principal::Transport;
use crate::session::{CloseCodes, Inbound, Verdict};
use crate::socket::{Limits, Registry, SocketGate};
use crate::store::{
    AtSocketLimit, BoxedTicketStore, InMemorySocketLeaseStore, InMemoryTicketStore,
    RevocationStore, SocketLeaseStore, TicketStore,
};
use crate::ticket::{MAX_TICKET_LIFETIME, Tickets, check_lifetime};
use crate::token::BoxedVerifier;
use crate::wiring::settings::Wiring;

/// Builds a [`Gate`]. Start with [`Gate::builder`].
///
/// `G` is the role guard of the standard pipeline, set by
/// [`policy`](Self::policy), [`async_policy`](Self::async_policy) or
/// [`guard`](Self::guard); nobody needs to name it.
#[must_use]
pub struct GateBuilder<G = Identity> {
    parts: Parts,
    guard: G,
}

/// Everything but the guard, so changing the guard's type moves one value.
struct Parts {
    /// What every stage shares.
    wiring: Wiring,
    verifier: BoxedVerifier,
    /// Bearer credentials checked by the verifier.
    bearer: BoxedAuthenticator,
    authenticators: Vec<BoxedAuthenticator>,
    passwords: Option<BoxedAuthenticator>,
    tickets: BoxedTicketStore,
    ticket_lifetime: Duration,
    max_tickets_per_subject: Option<usize>,
    socket_leases: AnyLeaseStore,
    max_sockets_per_subject: Option<usize>,
    at_socket_limit: AtSocketLimit,
    limiter: Option<BoxedFailureLimiter>,
    close_codes: CloseCodes,
    limits: Limits,
    message_tokens: bool,
    record_allowed: bool,
}

impl GateBuilder {
    pub(super) fn new(verifier: BoxedVerifier, bearer: BoxedAuthenticator) -> Self {
        let parts = Parts {
            wiring: Wiring::default(),
            verifier,
            bearer,
            authenticators: Vec::new(),
            passwords: None,
            tickets: BoxedTicketStore::new(InMemoryTicketStore::new()),
            ticket_lifetime: MAX_TICKET_LIFETIME,
            max_tickets_per_subject: None,
            socket_leases: AnyLeaseStore::new(InMemorySocketLeaseStore::new()),
            max_sockets_per_subject: None,
            at_socket_limit: AtSocketLimit::RefuseNewest,
            limiter: None,
            close_codes: CloseCodes::default(),
            limits: Limits::default(),
            message_tokens: false,
            record_allowed: false,
        };
        Self {
            parts,
            guard: Identity::new(),
        }
    }
}

impl<G> GateBuilder<G> {
    /// Another authenticator for handshakes, tried after the token
    /// verifier and before passwords and tickets (an identity provider's
    /// tokens, an API key). Call again to add more, in order.
    pub fn authenticator<A: Authenticator>(mut self, authenticator: A) -> Self {
        self.parts
            .authenticators
            .push(BoxedAuthenticator::new(authenticator));
        self
    }

    /// Username and password checks — a
    /// [`BasicAuthenticator`](crate::authenticate::BasicAuthenticator) —
    /// for the Basic transport (list it in the handshake's transports, with
    /// an Origin allowlist) and for [`Gate::check_password`] (a login
    /// route). Both go through the failure limiter. Defaults to none.
    pub fn passwords<A: Authenticator>(mut self, passwords: A) -> Self {
        self.parts.passwords = Some(BoxedAuthenticator::new(passwords));
        self
    }

    /// Where revocations are kept; checked on every path (handshake,
    /// first message, refresh, per-message token). Defaults to an
    /// [`InMemoryRevocationStore`](crate::store::InMemoryRevocationStore) (one process).
    pub fn revocations<R: RevocationStore>(mut self, revocations: R) -> Self {
        self.parts.wiring = self.parts.wiring.revocations(revocations);
        self
    }

    /// Where single-use tickets are kept. Defaults to an
    /// [`InMemoryTicketStore`] (one process).
    pub fn tickets<S: TicketStore>(mut self, tickets: S) -> Self {
        self.parts.tickets = BoxedTicketStore::new(tickets);
        self
    }

    /// How long a ticket stays redeemable. Defaults to 30 s.
    ///
    /// # Errors
    ///
    /// [`ConfigError::TicketLifetime`] outside 1 to 30 seconds.
    pub fn ticket_lifetime(mut self, lifetime: Duration) -> Result<Self, ConfigError> {
        check_lifetime(lifetime)?;
        self.parts.ticket_lifetime = lifetime;
        Ok(self)
    }

    /// At most `max` unredeemed tickets per subject at once (across every
    /// process sharing the ticket store): [`Gate::issue_ticket`] and the
    /// [ticket route](Gate::ticket_route) refuse one more with
    /// [`ErrorKind::TooManyTickets`](crate::ErrorKind::TooManyTickets)
    /// (429 with `Retry-After`). A redeemed or expired ticket frees its
    /// place at once. Defaults to no limit.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn max_tickets_per_subject(mut self, max: usize) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::ZeroLimit("max_tickets_per_subject"));
        }
        self.parts.max_tickets_per_subject = Some(max);
        Ok(self)
    }

    /// At most `max` live sockets per subject at once, on every route and
    /// transport, counted in the [`socket_leases`](Self::socket_leases)
    /// store (across every process that shares it). One handshake more is
    /// refused with 429 `too many connections` and `Retry-After`, after
    /// its credential was checked (a ticket shown there is spent); on a
    /// first-message route the socket closes with 4429 `too many
    /// connections`. A socket frees its place the moment it closes; see
    /// [`at_socket_limit`](Self::at_socket_limit) to close the oldest
    /// instead. Defaults to no limit.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for zero.
    pub fn max_sockets_per_subject(mut self, max: usize) -> Result<Self, ConfigError> {
        if max == 0 {
            return Err(ConfigError::ZeroLimit("max_sockets_per_subject"));
        }
        self.parts.max_sockets_per_subject = Some(max);
        Ok(self)
    }

    /// What a subject at its [limit of
    /// sockets](Self::max_sockets_per_subject) gets for one more: refused
    /// (the default), or its oldest socket closed with 4403 `too many
    /// connections` to make room ([`AtSocketLimit::CloseOldest`]; on
    /// another process sharing the store, the oldest closes when that
    /// process hears of it: at once with Redis, or at its next lease
    /// renewal if the notice was lost).
    pub fn at_socket_limit(mut self, at_limit: AtSocketLimit) -> Self {
        self.parts.at_socket_limit = at_limit;
        self
    }

    /// Where each subject's sockets are counted for
    /// [`max_sockets_per_subject`](Self::max_sockets_per_subject). Defaults
    /// to an [`InMemorySocketLeaseStore`] (one process); with the `redis`
    /// feature, `RedisStores::socket_leases` counts across processes.
    pub fn socket_leases<S: SocketLeaseStore>(mut self, store: S) -> Self {
        self.parts.socket_leases = AnyLeaseStore::new(store);
        self
    }

    /// Whether DPoP-bound tokens (RFC 9449) are taken, and only they
    /// ([`DpopMode`]): on every handshake layer the gate makes. Defaults
    /// to [`DpopMode::Allowed`]. In every mode, a token bound to a key
    /// (`cnf.jkt`) needs a fresh proof of that key; it never passes as a
    /// bearer token.
    pub fn dpop(mut self, mode: DpopMode) -> Self {
        self.parts.wiring = self.parts.wiring.dpop(mode);
        self
    }

    /// How DPoP proofs are checked: algorithms, age, and where proofs seen
    /// lately are remembered (with the `redis` feature,
    /// `RedisStores::proof_replays` across processes). Defaults to
    /// [`DpopVerifier::new`]: ES256 and EdDSA, 60 s, in memory.
    pub fn dpop_verifier(mut self, verifier: DpopVerifier) -> Self {
        self.parts.wiring = self.parts.wiring.dpop_verifier(verifier);
        self
    }

    /// Limits failed password attempts per account and per client address
    /// (Basic handshakes and [`Gate::check_password`] alike). Defaults to an
    /// [`InMemoryFailureLimiter`] with its defaults, on the gate's clock.
    pub fn failure_limiter<L: FailureLimiter>(mut self, limiter: L) -> Self {
        self.parts.limiter = Some(BoxedFailureLimiter::new(limiter));
        self
    }

    /// Where every decision is recorded. Defaults to [`Auditor::tracing`].
    pub fn audit(mut self, auditor: Auditor) -> Self {
        self.parts.wiring = self.parts.wiring.audit(auditor);
        self
    }

    /// Also records every delivered message (one event per message: mind
    /// the volume). Defaults to off.
    pub fn audit_allowed_messages(mut self, record: bool) -> Self {
        self.parts.record_allowed = record;
        self
    }

    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` name the
    /// client, for every stage: the failure limiter, the caps on
    /// unauthenticated sockets, secure-transport checks and the audit
    /// trail. List exactly your proxies. Defaults to none.
    pub fn trusted_proxies<I: IntoIterator<Item = IpAddr>>(mut self, proxies: I) -> Self {
        self.parts.wiring = self.parts.wiring.trusted_proxies(proxies);
        self
    }

    /// Client certificates forwarded by a TLS-terminating proxy, for every
    /// handshake layer the gate makes: see
    /// [`Wiring::forwarded_certificates`](crate::wiring::Wiring::forwarded_certificates).
    /// Believed only from [`trusted_proxies`](Self::trusted_proxies).
    /// Defaults to none.
    pub fn forwarded_certificates(mut self, forwarded: ForwardedCertificates) -> Self {
        self.parts.wiring = self.parts.wiring.forwarded_certificates(forwarded);
        self
    }

    /// How refused handshakes are answered, on every route of the gate
    /// (socket routes, first-message routes, the bearer layer):
    /// [`DefaultRejectionResponse`](crate::handshake::DefaultRejectionResponse)
    /// (a plain-text reason) unless set. See
    /// [`RejectionResponse`](crate::handshake::RejectionResponse).
    pub fn rejection_response<R: RejectionResponse>(mut self, respond: R) -> Self {
        self.parts.wiring = self.parts.wiring.rejection_response(respond);
        self
    }

    /// The clock for socket expiry, tickets, the token cache and the
    /// default failure limiter (the token verifier keeps its own). Defaults
    /// to the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.parts.wiring = self.parts.wiring.clock(clock);
        self
    }

    /// The close codes. Defaults to [`CloseCodes::default`].
    pub fn close_codes(mut self, codes: CloseCodes) -> Self {
        self.parts.close_codes = codes;
        self
    }

    /// Sizes, rates, timeouts and caps of the sockets. Defaults to
    /// [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.parts.limits = limits;
        self
    }

    /// Requires every message to carry a valid token of the session's
    /// subject in its `token` field
    /// ([`MessageTokenLayer`](crate::pipeline::MessageTokenLayer)).
    /// Defaults to off.
    pub fn message_tokens(mut self, required: bool) -> Self {
        self.parts.message_tokens = required;
        self
    }

    /// The role guard of the standard pipeline: `policy` decides each
    /// message; a denied one gets an error reply and the socket stays open.
    /// Defaults to none: every message of an authenticated session passes.
    pub fn policy<P: Policy>(self, policy: P) -> GateBuilder<RoleGuardLayer<P>> {
        self.guard(RoleGuardLayer::new(policy))
    }

    /// The role guard with a policy that has to wait (permissions in a
    /// database); if it fails, the socket closes with 1011.
    pub fn async_policy<P: AsyncPolicy>(self, policy: P) -> GateBuilder<AsyncRoleGuardLayer<P>> {
        self.guard(AsyncRoleGuardLayer::new(policy))
    }

    /// The innermost layer of the standard pipeline, in place of the role
    /// guard: a [`RoleGuardLayer`] that closes on denial, say, or a layer
    /// of your own.
    pub fn guard<G2>(self, guard: G2) -> GateBuilder<G2> {
        GateBuilder {
            parts: self.parts,
            guard,
        }
    }
}

impl<G> GateBuilder<G>
where
    G: Layer<Deliver>,
    G::Service:
        Service<Inbound, Response = Verdict, Error = Infallible> + Clone + Send + Sync + 'static,
    <G::Service as Service<Inbound>>::Future: Send + 'static,
{
    /// Finishes the gate.
    ///
    /// # Errors
    ///
    /// None today with the built-in parts; a [`ConfigError`] from the
    /// layers it makes otherwise.
    pub fn build(self) -> Result<Gate, ConfigError> {
        let guard = self.guard;
        let parts = self.parts;
        let wiring = parts.wiring;
        let clock = wiring.clock.clone();
        let revocations = wiring.revocations.clone();
        let auditor = wiring.auditor.clone();
        let registry = Registry::new(&wiring);
        let tickets = Tickets::new(parts.tickets)
            .lifetime(parts.ticket_lifetime)?
            .max_per_subject(parts.max_tickets_per_subject)
            .clock(clock.clone());
        let limiter = parts.limiter.unwrap_or_else(|| {
            BoxedFailureLimiter::new(InMemoryFailureLimiter::with_limits(
                FailureLimits::default().clock(clock.clone()),
            ))
        });

        // Tokens first, then what the application added, then passwords,
        // then tickets: the order a chain reports its refusals in does not
        // depend on it (see `Chain`), only the cost of the tries does.
        let mut authenticator = parts.bearer;
        for next in parts.authenticators {
            authenticator = BoxedAuthenticator::new(authenticator.or(next));
        }
        if let Some(passwords) = &parts.passwords {
            authenticator = BoxedAuthenticator::new(authenticator.or(passwords.clone()));
        }
        authenticator = BoxedAuthenticator::new(authenticator.or(tickets.clone()));

        let audit = AuditLayer::new(auditor.clone()).record_allowed(parts.record_allowed);
        let refresh = RefreshLayer::new(parts.verifier.clone(), revocations.clone());
        let message_tokens = MessageTokenLayer::new(parts.verifier.clone(), revocations.clone())
            .clock(clock.clone());
        let pipeline = ServiceBuilder::new()
            .layer(audit.clone())
            .layer(refresh.clone())
            .option_layer(parts.message_tokens.then(|| message_tokens.clone()))
            .layer(guard)
            .service(Deliver);
        let socket_limit = parts
            .max_sockets_per_subject
            .map(|max| SocketLimit::new(parts.socket_leases, max, parts.at_socket_limit));
        let handshake = HandshakeSettings::new(wiring, socket_limit);
        let sockets = SocketGate::builder(registry.clone())
            .pipeline(pipeline)
            .limits(parts.limits)
            .close_codes(parts.close_codes)
            .first_message(authenticator.clone())
            .handshake(&handshake)
            .build();

        // HTTP routes (tickets, admin) take a token from `Authorization`
        // only: nothing a browser attaches on its own, so no Origin rule;
        // and they hold no socket.
        let bearer = HandshakeSettings {
            sockets: None,
            ..handshake.clone()
        };
        let bearer_layer = handshake_builder(&authenticator, &limiter, &bearer)
            .transports([Transport::Bearer])
            .build()?;
        Ok(Gate {
            shared: Arc::new(Shared {
                verifier: parts.verifier,
                authenticator,
                passwords: parts.passwords,
                tickets,
                limiter,
                sockets,
                handshake,
                audit,
                refresh,
                message_tokens,
                bearer_layer,
            }),
        })
    }
}

impl<G> std::fmt::Debug for GateBuilder<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = &self.parts;
        f.debug_struct("GateBuilder")
            .field("verifier", &parts.verifier)
            .field("authenticators", &parts.authenticators)
            .field("passwords", &parts.passwords)
            .field("wiring", &parts.wiring)
            .field("tickets", &parts.tickets)
            .field("limits", &parts.limits)
            .field("message_tokens", &parts.message_tokens)
            .finish_non_exhaustive()
    }
}
