//! Per-message token validation, with a bounded cache of verified tokens.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::token_fingerprint;
use crate::clock::Clock;
use crate::confirmation::same_binding;
use crate::pipeline::future::ResponseFuture;
use crate::pipeline::token_extractor::{JsonField, TokenExtractor};
use crate::principal::Principal;
use crate::session::{
    BoxedVerdict, Close, CloseKind, ConnectionId, Inbound, Session, Verdict, reason,
};
use crate::store::{RevocationStore, check_revocation, check_revocation_now};
use crate::token::TokenVerifier;

/// Default number of verified tokens remembered.
pub(crate) const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// Requires every message to carry a valid token of the session's subject.
///
/// The token is found by a [`TokenExtractor`] (default: the JSON field
/// `token`) and verified like a handshake token by the
/// [`TokenVerifier`]; it must name the session's subject and must not be
/// revoked. On failure the socket closes with 4401 (`invalid token`, `token
/// expired`), 4403 (`token revoked`) or 1011 (the revocation store failed).
///
/// Verified tokens are remembered until their `exp`, in a cache shared by
/// every connection this layer serves and bounded to `cache_capacity`
/// entries (default 10 000; 0 turns it off): a repeated token costs a hash
/// and a lookup, not a signature check. Revocation is checked on every
/// message, cached or not. The cache is keyed by SHA-256 of the token and
/// never holds a token.
#[derive(Debug)]
pub struct MessageTokenLayer<V, R, E = JsonField> {
    verifier: V,
    revocations: R,
    extractor: E,
    cache: Arc<TokenCache>,
}

/// The service made by [`MessageTokenLayer`].
#[derive(Debug)]
pub struct MessageToken<S, V, R, E = JsonField> {
    inner: S,
    // Everything but the inner service behind one Arc: tower's
    // clone-and-call pattern clones the service for every message.
    shared: Arc<Shared<V, R, E>>,
    /// The last connection's remembered token, copied out of its session:
    /// the socket's driver runs its own clone of the pipeline, so while a
    /// connection repeats its token this is read without the session's
    /// lock.
    kept: Option<KeptToken>,
}

inner_service_accessors!(MessageToken<S, V, R, E>);

/// A connection's last verified message token and what it verified as.
#[derive(Debug, Clone)]
struct KeptToken {
    connection: ConnectionId,
    token: Arc<str>,
    principal: Arc<Principal>,
}

#[derive(Debug)]
struct Shared<V, R, E> {
    verifier: V,
    revocations: R,
    extractor: E,
    cache: Arc<TokenCache>,
}

impl<V: TokenVerifier, R: RevocationStore> MessageTokenLayer<V, R> {
    /// Validates message tokens with `verifier`, checking `revocations`.
    pub fn new(verifier: V, revocations: R) -> Self {
        Self {
            verifier,
            revocations,
            extractor: JsonField::default(),
            cache: Arc::new(TokenCache::new(DEFAULT_CACHE_CAPACITY, Clock::system())),
        }
    }
}

impl<V, R, E> MessageTokenLayer<V, R, E> {
    /// Where the token is in a message. Defaults to the JSON field `token`.
    pub fn extractor<E2: TokenExtractor>(self, extractor: E2) -> MessageTokenLayer<V, R, E2> {
        MessageTokenLayer {
            verifier: self.verifier,
            revocations: self.revocations,
            extractor,
            cache: self.cache,
        }
    }

    /// How many verified tokens to remember; 0 verifies every message.
    /// Defaults to 10 000.
    pub fn cache_capacity(self, capacity: usize) -> Self {
        let clock = self.cache.clock.clone();
        Self {
            cache: Arc::new(TokenCache::new(capacity, clock)),
            ..self
        }
    }

    /// The clock cached tokens expire by. Defaults to the system clock.
    pub fn clock(self, clock: Clock) -> Self {
        let capacity = self.cache.capacity;
        Self {
            cache: Arc::new(TokenCache::new(capacity, clock)),
            ..self
        }
    }
}

impl<V: Clone, R: Clone, E: Clone> Clone for MessageTokenLayer<V, R, E> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            revocations: self.revocations.clone(),
            extractor: self.extractor.clone(),
            cache: self.cache.clone(),
        }
    }
}

impl<S, V: Clone, R: Clone, E: Clone> Layer<S> for MessageTokenLayer<V, R, E> {
    type Service = MessageToken<S, V, R, E>;

    fn layer(&self, inner: S) -> Self::Service {
        MessageToken {
            inner,
            kept: None,
            shared: Arc::new(Shared {
                verifier: self.verifier.clone(),
                revocations: self.revocations.clone(),
                extractor: self.extractor.clone(),
                cache: self.cache.clone(),
            }),
        }
    }
}

impl<S: Clone, V, R, E> Clone for MessageToken<S, V, R, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            kept: self.kept.clone(),
        }
    }
}

impl<S, V, R, E> Service<Inbound> for MessageToken<S, V, R, E>
where
    S: Service<Inbound, Response = Verdict, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    V: TokenVerifier,
    R: RevocationStore,
    E: TokenExtractor,
{
    type Response = Verdict;
    type Error = Infallible;
    /// The inner service's own future when the message passes without
    /// waiting (its token the connection's last, not revoked by a store
    /// that answers at once); a boxed one when there is work to wait for.
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut inbound: Inbound) -> Self::Future {
        inbound.find_fields();
        if self.shared.passes_now(&inbound, &mut self.kept) {
            // Nothing to wait for, so no clone of the inner service to own.
            return ResponseFuture::inner(self.inner.call(inbound));
        }
        ResponseFuture::boxed(self.check(inbound))
    }
}

impl<V, R, E> Shared<V, R, E>
where
    R: RevocationStore,
    E: TokenExtractor,
{
    /// Whether the message may go on at once: its token is the one the
    /// connection's last message carried, still alive, of the session's
    /// subject, and the store says without waiting that it is not revoked.
    /// Anything else takes the full check, which decides and explains.
    fn passes_now(&self, inbound: &Inbound, kept: &mut Option<KeptToken>) -> bool {
        let Some(token) = self.extractor.token(inbound) else {
            return false;
        };
        let session = inbound.session();
        let Some(principal) = self.cache.kept(session, token, kept) else {
            return false;
        };
        principal.subject() == session.subject()
            && matches!(
                check_revocation_now(&self.revocations, principal, Some(session)),
                Some(Ok(()))
            )
    }
}

impl<S, V, R, E> MessageToken<S, V, R, E>
where
    S: Service<Inbound, Response = Verdict, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    V: TokenVerifier,
    R: RevocationStore,
    E: TokenExtractor,
{
    /// The full check: find the token, verify it (or find it in the
    /// cache), its subject, its revocation; then the inner service.
    fn check(&mut self, inbound: Inbound) -> BoxedVerdict {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let Shared {
                verifier,
                revocations,
                extractor,
                cache,
            } = &*shared;
            let invalid = Close::new(CloseKind::Unauthenticated, reason::INVALID_TOKEN);
            let Some(token) = extractor.token(&inbound) else {
                return Ok(Verdict::close_message(invalid, &inbound, None));
            };
            let session = inbound.session();
            let principal = match cache.remembered(session, token) {
                Some(principal) => principal,
                None => {
                    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                    let principal = match cache.get(&digest) {
                        Some(principal) => principal,
                        None => match verifier.verify(token).await {
                            Ok(principal) => cache.insert(digest, principal),
                            Err(error) => {
                                let close = Close::for_failed_credential(&error);
                                let fingerprint = token_fingerprint(token, None);
                                return Ok(Verdict::close_message(
                                    close,
                                    &inbound,
                                    Some(fingerprint),
                                ));
                            }
                        },
                    };
                    cache.remember(session, token, &principal);
                    principal
                }
            };
            let fingerprint = || Some(token_fingerprint(token, principal.token_id()));
            if principal.subject() != inbound.session().subject()
                || !same_binding(&principal, &inbound.session().principal())
            {
                return Ok(Verdict::close_message(invalid, &inbound, fingerprint()));
            }
            if let Err(error) =
                check_revocation(revocations, &principal, Some(inbound.session())).await
            {
                let close = Close::for_failed_credential(&error);
                return Ok(Verdict::close_message(close, &inbound, fingerprint()));
            }
            inner.call(inbound).await
        })
    }
}

/// Verified tokens by the SHA-256 of the token, until their `exp`.
#[derive(Debug)]
struct TokenCache {
    capacity: usize,
    clock: Clock,
    entries: Mutex<HashMap<[u8; 32], Arc<Principal>>>,
}

impl TokenCache {
    fn new(capacity: usize, clock: Clock) -> Self {
        Self {
            capacity,
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn alive(principal: &Principal, now: SystemTime) -> bool {
        principal
            .expires_at()
            .is_some_and(|expires_at| expires_at > now)
    }

    /// What `token` verified as, when the connection's last message
    /// carried it and it has not expired since: no hash, no lookup.
    fn remembered(&self, session: &Session, token: &str) -> Option<Arc<Principal>> {
        if self.capacity == 0 {
            return None;
        }
        session
            .remembered_message_token()
            .filter(|(last, _)| **last == *token)
            .map(|(_, principal)| principal)
            .filter(|principal| Self::alive(principal, self.clock.now()))
    }

    /// What [`remembered`](Self::remembered) answers, from `kept` while it
    /// holds the same connection's same token, else from the session
    /// (then kept for the next message).
    fn kept<'k>(
        &self,
        session: &Session,
        token: &str,
        kept: &'k mut Option<KeptToken>,
    ) -> Option<&'k Arc<Principal>> {
        if self.capacity == 0 {
            return None;
        }
        let holds = |kept: &KeptToken| kept.connection == session.id() && *kept.token == *token;
        if !kept.as_ref().is_some_and(holds) {
            *kept = session
                .remembered_message_token()
                .map(|(token, principal)| KeptToken {
                    connection: session.id(),
                    token,
                    principal,
                })
                .filter(holds);
        }
        let principal = &kept.as_ref()?.principal;
        Self::alive(principal, self.clock.now()).then_some(principal)
    }

    /// Remembers `principal` as `token`'s on the connection, under the
    /// cache's own rule: only tokens that expire, and never with the cache
    /// off.
    fn remember(&self, session: &Session, token: &str, principal: &Arc<Principal>) {
        if self.capacity > 0 && principal.expires_at().is_some() {
            session.remember_message_token(token, principal.clone());
        }
    }

    fn get(&self, digest: &[u8; 32]) -> Option<Arc<Principal>> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        entries
            .get(digest)
            .filter(|principal| Self::alive(principal, self.clock.now()))
            .cloned()
    }

    fn insert(&self, digest: [u8; 32], principal: Principal) -> Arc<Principal> {
        let principal = Arc::new(principal);
        // Only tokens that expire are cached: "until their exp".
        if self.capacity == 0 || principal.expires_at().is_none() {
            return principal;
        }
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if entries.len() >= self.capacity {
            let now = self.clock.now();
            entries.retain(|_, cached| Self::alive(cached, now));
        }
        if entries.len() >= self.capacity {
            // Still full of live tokens: make room by dropping any one.
            if let Some(victim) = entries.keys().next().copied() {
                entries.remove(&victim);
            }
        }
        entries.insert(digest, principal.clone());
        principal
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::principal::AuthMethod;

    fn token_for(expires_in: u64, now: SystemTime) -> Principal {
        Principal::new("alice", AuthMethod::Token)
            .with_expires_at(now + Duration::from_secs(expires_in))
    }

    #[test]
    fn cache_forgets_expired_tokens_and_stays_bounded() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = Clock::manual(start);
        let cache = TokenCache::new(2, clock.clone());
        cache.insert([1; 32], token_for(10, start));
        assert!(cache.get(&[1; 32]).is_some());
        clock.advance(Duration::from_secs(10));
        assert!(
            cache.get(&[1; 32]).is_none(),
            "expired entries are not served"
        );

        cache.insert([2; 32], token_for(100, start));
        cache.insert([3; 32], token_for(100, start));
        cache.insert([4; 32], token_for(100, start));
        assert!(cache.len() <= 2);
        assert!(cache.get(&[4; 32]).is_some());
    }

    #[test]
    fn a_zero_capacity_cache_remembers_nothing() {
        let cache = TokenCache::new(0, Clock::system());
        cache.insert([1; 32], token_for(100, SystemTime::now()));
        assert!(cache.get(&[1; 32]).is_none());
    }
}
