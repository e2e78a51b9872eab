//! Proof of possession (DPoP, RFC 9449): tokens that work only for the
//! holder of their key.
//!
//! A bearer token works for whoever copies it. A DPoP-bound token carries
//! `cnf.jkt`, the RFC 7638 thumbprint of a public key, and each request
//! that shows it carries a fresh *proof*: a JWT signed by the matching
//! private key, naming the request's method (`htm`) and URL (`htu`), the
//! time (`iat`), a unique id (`jti`) and the token's hash (`ath`). The key
//! never leaves the client, so a copied token (or a copied proof, which
//! is for one request, once) opens nothing.
//!
//! [`DpopVerifier`] checks one proof:
//!
//! - header `typ` `dpop+jwt`, `alg` from an allowlist (ES256 and EdDSA by
//!   default; never `none`, never HMAC), `jwk` a public key of that kind
//!   (one with private members is refused), the signature;
//! - `htm` the request's method, `htu` its URL ([`TargetUrl`]: `ws` is
//!   `http` and `wss` is `https`, no query, default ports dropped);
//! - `iat` at most 60 s old and at most 5 s ahead; `ath` the hash of the
//!   token that came with it;
//! - `jti` never seen before within that window, in a
//!   [`ProofReplayStore`] (in memory,
//!   bounded, or in Redis across processes).
//!
//! What the proof's key must be is the token's business: see
//! [`Confirmation`].

mod nonce;
mod proof;
mod target;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use jsonwebtoken::Algorithm;

use crate::clock::Clock;
use crate::confirmation::{Confirmation, Possession};
use crate::error::{ConfigError, DpopError, Error, TokenError};
use crate::principal::Principal;
use crate::store::{InMemoryProofReplayStore, ProofId, ProofReplayStore};

pub use self::nonce::DpopNonces;

pub use self::proof::{CheckedProof, ProofRequest};
pub use self::target::TargetUrl;

/// Whether a gate takes DPoP-bound tokens, and whether it takes anything
/// else. In every mode a token bound to a key (`cnf.jkt`) needs a valid
/// proof of that key: a bound token never passes as a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpopMode {
    /// Bound tokens with their proofs, and bearer tokens. The default.
    #[default]
    Allowed,
    /// Only sender-constrained tokens: a bearer token is refused (401
    /// `invalid_token`). Passwords (Basic) are unaffected.
    Required,
    /// Proofs are not read: a bearer token passes, a bound one is refused.
    Off,
}

/// How old a proof may be: 60 s.
pub(crate) const DEFAULT_MAX_PROOF_AGE: Duration = Duration::from_secs(60);

/// How far ahead of the server's clock a proof may be dated: 5 s.
pub(crate) const MAX_PROOF_AHEAD: Duration = Duration::from_secs(5);

/// Checks DPoP proofs. Cheap to clone; clones share the replay store.
#[derive(Clone)]
pub struct DpopVerifier {
    rules: Arc<proof::Rules>,
    clock: Clock,
    replays: AnyReplayStore,
}

/// Builds a [`DpopVerifier`].
#[must_use]
pub struct DpopVerifierBuilder {
    rules: proof::Rules,
    clock: Clock,
    replays: AnyReplayStore,
}

impl DpopVerifier {
    /// A verifier with the defaults: ES256 and EdDSA, proofs at most 60 s
    /// old and 5 s ahead, an [`InMemoryProofReplayStore`], the system
    /// clock.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts a verifier with the defaults of [`new`](Self::new).
    pub fn builder() -> DpopVerifierBuilder {
        DpopVerifierBuilder {
            rules: proof::Rules {
                algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
                max_age: DEFAULT_MAX_PROOF_AGE,
                max_ahead: MAX_PROOF_AHEAD,
                nonces: None,
            },
            clock: Clock::system(),
            replays: AnyReplayStore::new(InMemoryProofReplayStore::new()),
        }
    }

    /// The algorithms proofs may use, for the `algs` of a challenge.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.rules.algorithms
    }

    /// The nonce proofs must carry now, when server nonces are on (see
    /// [`DpopVerifierBuilder::nonces`]): what a `DPoP-Nonce` header hands
    /// out. A handshake refused for want of it carries it; so does a
    /// handshake accepted with a proof, and the ticket route's answers.
    /// Browsers cannot read a WebSocket handshake's headers, so a page
    /// gets it from an HTTP answer of the application's (its login, its
    /// ticket route).
    pub fn nonce(&self) -> Option<String> {
        let nonces = self.rules.nonces.as_ref()?;
        Some(nonces.current(self.clock.now()))
    }

    /// Checks `proof` against `request`, then that it was never used
    /// before (remembering it for its window).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Dpop`](crate::ErrorKind::Dpop) with the defect
    /// ([`DpopError::Replay`] for a proof seen before); a backend error
    /// when the replay store failed (fail closed).
    pub async fn verify(
        &self,
        proof: &str,
        request: &ProofRequest<'_>,
    ) -> Result<CheckedProof, Error> {
        let checked = proof::check(proof, request, self.clock.now(), &self.rules)?;
        let window = self.rules.max_age + self.rules.max_ahead;
        let id = ProofId::of(&checked.jkt, &checked.jti);
        if self.replays.first_use(id, window).await? {
            Ok(checked)
        } else {
            Err(DpopError::Replay.into())
        }
    }
}

impl Default for DpopVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl DpopVerifierBuilder {
    /// The algorithms proofs may use. Defaults to ES256 and EdDSA.
    ///
    /// # Errors
    ///
    /// [`ConfigError::DpopAlgorithm`] for an HMAC algorithm (a proof's key
    /// is public, so anyone could sign with it) or an empty list.
    pub fn algorithms<I: IntoIterator<Item = Algorithm>>(
        mut self,
        algorithms: I,
    ) -> Result<Self, ConfigError> {
        let algorithms: Vec<Algorithm> = algorithms.into_iter().collect();
        if algorithms.is_empty() {
            return Err(ConfigError::DpopAlgorithm("an empty list"));
        }
        for algorithm in &algorithms {
            if matches!(
                algorithm,
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
            ) {
                return Err(ConfigError::DpopAlgorithm("HMAC"));
            }
        }
        self.rules.algorithms = algorithms;
        Ok(self)
    }

    /// How old a proof may be (its `iat`). Defaults to 60 s; at most 5
    /// minutes.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.rules.max_age = age.min(Duration::from_secs(300));
        self
    }

    /// Where proofs seen lately are remembered. Defaults to an
    /// [`InMemoryProofReplayStore`] (one process); with the `redis`
    /// feature, `RedisStores::proof_replays` remembers them across
    /// processes.
    pub fn replays<S: ProofReplayStore>(mut self, store: S) -> Self {
        self.replays = AnyReplayStore::new(store);
        self
    }

    /// Server nonces (RFC 9449 §9): every proof must carry a `nonce`
    /// handed out lately ([`DpopVerifier::nonce`]), else it is refused
    /// (401 `use_dpop_nonce` with a fresh one in `DPoP-Nonce`). Off by
    /// default: a client's first proof then always fails, which costs a
    /// round trip, and browsers must fetch a nonce over HTTP first. Worth
    /// it where a client's clock cannot be trusted to date proofs, or a
    /// key may be briefly lent (a proof made ahead cannot outlive the
    /// nonce's period).
    pub fn nonces(mut self, nonces: DpopNonces) -> Self {
        self.rules.nonces = Some(nonces);
        self
    }

    /// The clock `iat` is read against. Defaults to the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Finishes the verifier.
    pub fn build(self) -> DpopVerifier {
        DpopVerifier {
            rules: Arc::new(self.rules),
            clock: self.clock,
            replays: self.replays,
        }
    }
}

impl fmt::Debug for DpopVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopVerifier")
            .field("algorithms", &self.rules.algorithms)
            .field("max_age", &self.rules.max_age)
            .field("nonces", &self.rules.nonces)
            .field("replays", &self.replays.0.type_name())
            .finish()
    }
}

impl fmt::Debug for DpopVerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopVerifierBuilder")
            .field("algorithms", &self.rules.algorithms)
            .field("max_age", &self.rules.max_age)
            .finish_non_exhaustive()
    }
}

/// What came with a principal's credential, for [`confirm`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Presented<'a> {
    /// The access token, or `None` for a ticket (a ticket's redemption
    /// proof names no token). Passwords are not confirmed at all.
    pub(crate) token: Option<&'a str>,
    /// The proof, unless proofs are off.
    pub(crate) proof: Option<&'a str>,
    /// Where the request was sent.
    pub(crate) target: Option<&'a TargetUrl>,
    /// The request's method (`GET` for a WebSocket).
    pub(crate) method: &'a str,
    /// The token came as `Authorization: DPoP`.
    pub(crate) dpop_scheme: bool,
    /// The token came as `Authorization: Bearer`.
    pub(crate) bearer_scheme: bool,
    /// The thumbprint of the client certificate the connection presented
    /// (RFC 8705 `x5t#S256`).
    pub(crate) certificate: Option<&'a str>,
}

/// Checks that `principal`'s token is sent as what it is: a key-bound one
/// (`cnf.jkt`) with a valid proof of its key, never under the `Bearer`
/// scheme; a certificate-bound one (`cnf.x5t#S256`) over a connection
/// that presented that certificate; a bearer one not under the `DPoP` scheme, and not at all under
/// [`DpopMode::Required`]. The one check of the handshake and of
/// first-message routes.
pub(crate) async fn confirm(
    verifier: &DpopVerifier,
    mode: DpopMode,
    principal: &Principal,
    presented: &Presented<'_>,
) -> Result<(), Error> {
    let confirmation = Confirmation::of(principal)?;
    if !confirmation.is_bound() {
        let token = presented.token.is_some();
        if token && (presented.dpop_scheme || mode == DpopMode::Required) {
            return Err(TokenError::NotConfirmed.into());
        }
        return Ok(());
    }
    let mut possession = Possession {
        certificate: presented.certificate.map(str::to_owned),
        ..Possession::default()
    };
    if confirmation.jkt().is_some() {
        // A bound token under `Bearer`: the client does not know what it
        // holds (RFC 9449 §7.2).
        if presented.bearer_scheme {
            return Err(TokenError::NotConfirmed.into());
        }
        if let (Some(proof), Some(target), false) =
            (presented.proof, presented.target, mode == DpopMode::Off)
        {
            let request = ProofRequest {
                method: presented.method,
                target,
                access_token: presented.token,
            };
            // Boxed: only a request with a proof pays for its future, and
            // every handshake's future stays as small as it was.
            let checked = Box::pin(verifier.verify(proof, &request)).await?;
            possession.dpop_jkt = Some(checked.jkt);
        }
    }
    confirmation.check(&possession)
}

/// Any [`ProofReplayStore`], boxed, with backend errors.
#[derive(Clone)]
struct AnyReplayStore(Arc<dyn DynReplayStore>);

trait DynReplayStore: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    fn first_use(&self, proof: ProofId, window: Duration) -> BoxFuture<'_, Result<bool, Error>>;
}

impl<S: ProofReplayStore> DynReplayStore for S {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<S>()
    }

    fn first_use(&self, proof: ProofId, window: Duration) -> BoxFuture<'_, Result<bool, Error>> {
        Box::pin(async move {
            ProofReplayStore::first_use(self, proof, window)
                .await
                .map_err(Error::backend)
        })
    }
}

impl AnyReplayStore {
    fn new<S: ProofReplayStore>(store: S) -> Self {
        Self(Arc::new(store))
    }

    async fn first_use(&self, proof: ProofId, window: Duration) -> Result<bool, Error> {
        self.0.first_use(proof, window).await
    }
}

#[cfg(test)]
mod tests;
