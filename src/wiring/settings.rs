//! The settings every stage shares. Below the stages (the layering rule
//! lists this file on its own): the handshake and the socket stage take
//! it; the rest of `wiring` gathers the kit above them.

use std::net::IpAddr;
use std::sync::Arc;

use crate::audit::Auditor;
use crate::certificate::ForwardedCertificates;
use crate::clock::Clock;
use crate::dpop::{DpopMode, DpopVerifier};
use crate::refusal::{RejectionResponse, Rejections};
use crate::store::{BoxedRevocationStore, InMemoryRevocationStore, RevocationStore};

/// The settings every stage shares; cheap to clone.
///
/// Defaults: no trusted proxies, the system clock, [`Auditor::tracing`],
/// an in-memory revocation store, DPoP allowed with
/// [`DpopVerifier::new`], no forwarded certificates, refusals answered in
/// plain text.
#[derive(Clone, Debug)]
#[must_use]
pub struct Wiring {
    pub(crate) trusted_proxies: Arc<[IpAddr]>,
    pub(crate) clock: Clock,
    pub(crate) auditor: Auditor,
    pub(crate) revocations: BoxedRevocationStore,
    pub(crate) dpop: DpopVerifier,
    pub(crate) dpop_mode: DpopMode,
    pub(crate) forwarded_certificates: Option<ForwardedCertificates>,
    pub(crate) rejections: Rejections,
}

impl Default for Wiring {
    fn default() -> Self {
        Self {
            trusted_proxies: Arc::new([]),
            clock: Clock::system(),
            auditor: Auditor::tracing(),
            revocations: BoxedRevocationStore::new(InMemoryRevocationStore::new()),
            dpop: DpopVerifier::new(),
            dpop_mode: DpopMode::Allowed,
            forwarded_certificates: None,
            rejections: Rejections::default(),
        }
    }
}

impl Wiring {
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` name the
    /// client, for every stage: the failure limiter, the caps on
    /// unauthenticated sockets, secure-transport checks, DPoP's URL and
    /// the audit trail. Requests from any other peer are taken at their
    /// socket address. List exactly your proxies. Defaults to none.
    pub fn trusted_proxies<I: IntoIterator<Item = IpAddr>>(mut self, proxies: I) -> Self {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// The clock socket expiry is read against. Defaults to the system
    /// clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Where every decision is recorded. Defaults to [`Auditor::tracing`].
    pub fn audit(mut self, auditor: Auditor) -> Self {
        self.auditor = auditor;
        self
    }

    /// The revocation store every stage checks, by token id, subject, or
    /// the session a token's `sid` names (with the `redis` feature,
    /// `RedisStores::revocations` across processes). Defaults to one in
    /// memory.
    pub fn revocations<R: RevocationStore>(mut self, revocations: R) -> Self {
        self.revocations = BoxedRevocationStore::new(revocations);
        self
    }

    /// Whether DPoP-bound tokens are taken, and only they
    /// ([`DpopMode`]). Defaults to [`DpopMode::Allowed`]. In every mode a
    /// token bound to a key needs a proof of it: `Authorization: DPoP
    /// <token>` with a `DPoP` header, or the `wsgate.dpop.<proof>`
    /// subprotocol entry beside `wsgate.bearer.<token>`.
    pub fn dpop(mut self, mode: DpopMode) -> Self {
        self.dpop_mode = mode;
        self
    }

    /// How DPoP proofs are checked: algorithms, age, and where proofs seen
    /// lately are remembered (with the `redis` feature,
    /// `RedisStores::proof_replays` across processes). Defaults to
    /// [`DpopVerifier::new`]: ES256 and EdDSA, 60 s, in memory.
    pub fn dpop_verifier(mut self, verifier: DpopVerifier) -> Self {
        self.dpop = verifier;
        self
    }

    /// Takes client certificates from the header a TLS-terminating proxy
    /// sets ([`ForwardedCertificates`]), believed only from
    /// [`trusted_proxies`](Self::trusted_proxies); from any other peer a
    /// request carrying the header is refused (400 `untrusted certificate
    /// header`). A request from a trusted proxy never uses the
    /// certificate of the proxy's own connection. Defaults to none: only
    /// the connection's certificate (put into the request by `Serving` or
    /// your TLS acceptor) counts.
    pub fn forwarded_certificates(mut self, forwarded: ForwardedCertificates) -> Self {
        self.forwarded_certificates = Some(forwarded);
        self
    }

    /// How refused handshakes are answered:
    /// [`DefaultRejectionResponse`](crate::handshake::DefaultRejectionResponse)
    /// (a plain-text reason) unless set; any `Fn(HandshakeRejection) ->
    /// Response` will do (see [`RejectionResponse`]). The status, the
    /// challenges, the audit and the metrics stay wsgate's.
    pub fn rejection_response<R: RejectionResponse>(mut self, respond: R) -> Self {
        self.rejections = Rejections::new(respond);
        self
    }
}
