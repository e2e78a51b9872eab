//! RFC 7662 token introspection for opaque tokens: asked with client
//! credentials, cached under an HMAC of the token, one request in flight
//! per token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::hmac;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::audit::{AuditEvent, Outcome, metrics::INACTIVE, token_fingerprint};
use crate::clock::Clock;
use crate::error::{ConfigError, Error, TokenError};
use crate::jwt::JwtVerifier;
use crate::oidc::fetch::FetchError;
use crate::oidc::key_cache::{KeyCache, Trigger};
use crate::principal::Principal;
use crate::recheck::{Recheck, Standing};
use crate::secret::Secret;

/// The most answers kept; beyond it, answers are used but not cached.
const MAX_ENTRIES: usize = 10_000;

/// What the provider said about one token.
#[derive(Debug, Clone)]
enum Answer {
    Active(Arc<Principal>),
    /// `active: false`.
    Inactive,
    /// Active, but its claims fail a check (another audience, expired).
    Refused(TokenError),
}

type Pending = Shared<BoxFuture<'static, Result<Answer, FetchError>>>;

enum Entry {
    Ready { answer: Answer, until: Instant },
    Pending(Pending),
}

/// The introspection side of one provider.
pub(crate) struct Introspector {
    client_id: String,
    client_secret: Secret,
    /// A key of this process only: the cache holds HMACs of tokens, never
    /// tokens, and nobody without the key can tell which tokens they are.
    cache_key: hmac::Key,
    max_age: Duration,
    recheck_every: Duration,
    /// The claim checks of the provider's JWTs (issuer, audience, expiry,
    /// the claims mapping), applied to the answers.
    claims: JwtVerifier,
    clock: Clock,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl Introspector {
    pub(crate) fn new(
        client_id: String,
        client_secret: Secret,
        claims: JwtVerifier,
        clock: Clock,
        max_age: Duration,
        recheck_every: Duration,
    ) -> Result<Self, ConfigError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|_| ConfigError::HttpClient)?;
        Ok(Self {
            client_id,
            client_secret,
            cache_key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            max_age,
            recheck_every,
            claims,
            clock,
            entries: Mutex::default(),
        })
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn cache_key(&self, token: &str) -> [u8; 32] {
        let tag = hmac::sign(&self.cache_key, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(tag.as_ref());
        key
    }

    /// Verifies an opaque token: a cached answer, the request in flight
    /// for the same token, or a new request. The principal comes with a
    /// [`Recheck`] that asks the provider again while its sockets live.
    pub(crate) async fn verify(
        self: &Arc<Self>,
        cache: &Arc<KeyCache>,
        token: &str,
    ) -> Result<Principal, Error> {
        let answer = self.answer(cache, token, false).await?;
        match answer {
            Answer::Active(principal) => {
                let me = self.clone();
                let cache = cache.clone();
                let token = Secret::new(token);
                let recheck = Recheck::new(self.recheck_every, move || {
                    let (me, cache, token) = (me.clone(), cache.clone(), token.clone());
                    async move {
                        match me.answer(&cache, token.expose(), true).await? {
                            Answer::Active(_) => Ok(Standing::Active),
                            Answer::Inactive | Answer::Refused(_) => Ok(Standing::Inactive),
                        }
                    }
                });
                Ok(Principal::clone(&principal).with_recheck(recheck))
            }
            Answer::Inactive => Err(TokenError::Inactive.into()),
            Answer::Refused(error) => Err(error.into()),
        }
    }

    /// The provider's answer for `token`; `fresh` skips a cached answer
    /// (a live socket's recheck) but still joins a request in flight.
    async fn answer(
        self: &Arc<Self>,
        cache: &Arc<KeyCache>,
        token: &str,
        fresh: bool,
    ) -> Result<Answer, Error> {
        let key = self.cache_key(token);
        let pending = {
            let mut entries = self.entries();
            match entries.get(&key) {
                Some(Entry::Ready { answer, until }) if !fresh && Instant::now() < *until => {
                    return Ok(answer.clone());
                }
                Some(Entry::Pending(pending)) => pending.clone(),
                _ => {
                    if entries.len() >= MAX_ENTRIES {
                        let now = Instant::now();
                        entries.retain(|_, entry| match entry {
                            Entry::Ready { until, .. } => now < *until,
                            Entry::Pending(_) => true,
                        });
                    }
                    let me = self.clone();
                    let cache = cache.clone();
                    let token = Secret::new(token);
                    let task = tokio::spawn(async move {
                        let outcome = me.ask(&cache, &token).await;
                        me.settle(key, &outcome);
                        outcome
                    });
                    let pending: Pending = task
                        .map(|joined| joined.unwrap_or(Err(FetchError::Unreachable)))
                        .boxed()
                        .shared();
                    entries.insert(key, Entry::Pending(pending.clone()));
                    pending
                }
            }
        };
        pending
            .await
            .map_err(|error| Error::backend_retry_after(error, Duration::from_secs(1)))
    }

    /// Replaces the request in flight by its answer (kept at most the
    /// maximum age and never past the token's `exp`), or drops it after a
    /// failure so that the next check asks again.
    fn settle(&self, key: [u8; 32], outcome: &Result<Answer, FetchError>) {
        let mut entries = self.entries();
        match outcome {
            Ok(answer) if entries.len() <= MAX_ENTRIES => {
                let mut life = self.max_age;
                if let Answer::Active(principal) = answer
                    && let Some(expires_at) = principal.expires_at()
                {
                    life = life.min(
                        expires_at
                            .duration_since(self.clock.now())
                            .unwrap_or_default(),
                    );
                }
                let until = Instant::now() + life;
                entries.insert(
                    key,
                    Entry::Ready {
                        answer: answer.clone(),
                        until,
                    },
                );
            }
            _ => {
                entries.remove(&key);
            }
        }
    }

    /// One request to the provider, audited.
    async fn ask(&self, cache: &Arc<KeyCache>, token: &Secret) -> Result<Answer, FetchError> {
        let outcome = self.request(cache, token).await;
        let (outcome_of_event, reason, sub) = match &outcome {
            Ok(Answer::Active(principal)) => (Outcome::Allow, None, Some(principal.subject())),
            Ok(Answer::Inactive) => (Outcome::Deny, Some(INACTIVE), None),
            Ok(Answer::Refused(error)) => (
                Outcome::Deny,
                Some(crate::RejectionReason::from_error(&(*error).into()).as_str()),
                None,
            ),
            Err(error) => (Outcome::Deny, Some(error.as_str()), None),
        };
        let fingerprint = token_fingerprint(token.expose(), None);
        let event =
            AuditEvent::introspected(cache.issuer(), outcome_of_event, reason, sub, fingerprint);
        cache.auditor().record(&event);
        outcome
    }

    async fn request(&self, cache: &Arc<KeyCache>, token: &Secret) -> Result<Answer, FetchError> {
        let mut snapshot = cache.snapshot();
        if snapshot.endpoints.is_none() {
            // Discovery has not succeeded yet: take part in the next try.
            if let Some(fetch) = cache.refetch(Trigger::NoKeys) {
                fetch.await;
            }
            snapshot = cache.snapshot();
        }
        let endpoints = snapshot.endpoints.as_ref().ok_or(FetchError::Unreachable)?;
        let url = endpoints
            .introspection
            .as_ref()
            .ok_or(FetchError::NoIntrospectionEndpoint)?;
        let form = [
            ("token", token.expose()),
            ("token_type_hint", "access_token"),
        ];
        let answer = cache
            .fetcher()
            .post_form(url, &form, &self.client_id, &self.client_secret)
            .await?;
        self.read_answer(&answer.body, cache.issuer())
    }

    /// RFC 7662 §2.2: `active` must be a boolean; the other members are
    /// JWT claims and pass the same checks as a JWT's. A member that is not
    /// what it should be makes the answer malformed (503), never a refusal.
    fn read_answer(&self, body: &[u8], issuer: &str) -> Result<Answer, FetchError> {
        let mut claims: Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| FetchError::Malformed)?;
        match claims.remove("active") {
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => return Ok(Answer::Inactive),
            _ => return Err(FetchError::Malformed),
        }
        // The answer came from the issuer itself: it may leave `iss` out.
        claims
            .entry("iss")
            .or_insert_with(|| Value::String(issuer.to_owned()));
        // A client-credentials token names its client, not a user.
        if !claims.contains_key("sub")
            && let Some(client) = claims.get("client_id").cloned()
        {
            claims.insert("sub".into(), client);
        }
        match self.claims.principal_from_claims(claims) {
            Ok(principal) => Ok(Answer::Active(Arc::new(principal))),
            Err(TokenError::InvalidClaim(_)) => Err(FetchError::Malformed),
            Err(error) => Ok(Answer::Refused(error)),
        }
    }
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("client_id", &self.client_id)
            .field("max_age", &self.max_age)
            .field("recheck_every", &self.recheck_every)
            .finish_non_exhaustive()
    }
}
