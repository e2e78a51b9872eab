//! One provider's discovery document and keys, cached: readers never wait
//! on a refresh, one refetch at a time, stale keys served up to a bound.
//!
//! The cache of a provider is its own: keys are found by (issuer, JWKS URL,
//! `kid`), since each issuer has one cache holding the keys of the one JWKS
//! URL its discovery document named, and a new URL replaces the set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use reqwest::Url;
use tokio::time::Instant;

use crate::audit::{AuditEvent, Auditor};
use crate::jwt::VerificationKey;
use crate::oidc::discovery::{Endpoints, parse_discovery};
use crate::oidc::fetch::{FetchError, Fetcher};
use crate::oidc::jwks::parse_key_set;

/// How long keys live and how often the provider may be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// A refetch for an unknown `kid` (or for keys not had yet) at most
    /// this often.
    pub(crate) cooldown: Duration,
    /// How long keys are fresh when the answer has no `max-age`.
    pub(crate) default_max_age: Duration,
    /// `max-age` is clamped to these bounds.
    pub(crate) min_max_age: Duration,
    pub(crate) max_max_age: Duration,
    /// After the last successful fetch, keys serve this long while every
    /// refresh fails; then the provider's tokens are refused with 503.
    pub(crate) serve_stale_for: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            cooldown: Duration::from_secs(10),
            default_max_age: Duration::from_secs(600),
            min_max_age: Duration::from_secs(60),
            max_max_age: Duration::from_secs(24 * 3600),
            serve_stale_for: Duration::from_secs(24 * 3600),
        }
    }
}

/// What started a fetch: the `action` of its audit event and the
/// `trigger` label of its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// The first fetch, started with the verifier.
    Startup,
    /// The background refresh before the keys go stale.
    Refresh,
    /// A token named a `kid` the cache does not hold.
    UnknownKid,
    /// A token came while no keys could be had.
    NoKeys,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Refresh => "refresh",
            Trigger::UnknownKid => "unknown-kid",
            Trigger::NoKeys => "no-keys",
        }
    }
}

/// The cache's content at one moment; replaced whole, never changed.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) endpoints: Option<Endpoints>,
    pub(crate) keys: Vec<VerificationKey>,
    /// When the keys were last fetched successfully.
    fetched: Option<Instant>,
    max_age: Duration,
}

struct Refetch {
    in_flight: Option<Shared<BoxFuture<'static, ()>>>,
    last_attempt: Option<Instant>,
    /// Failed attempts since the last success.
    failures: u32,
}

/// One provider's cache.
pub(crate) struct KeyCache {
    issuer: String,
    discovery_url: Url,
    fetcher: Fetcher,
    timing: Timing,
    auditor: Auditor,
    /// Read on every check: the lock is held only to clone the `Arc`, and
    /// taken for writing only to swap in a finished snapshot.
    snapshot: RwLock<Arc<Snapshot>>,
    refetch: Mutex<Refetch>,
    background: AtomicBool,
}

impl KeyCache {
    pub(crate) fn new(
        issuer: String,
        discovery_url: Url,
        fetcher: Fetcher,
        timing: Timing,
        auditor: Auditor,
    ) -> Arc<Self> {
        Arc::new(Self {
            issuer,
            discovery_url,
            fetcher,
            timing,
            auditor,
            snapshot: RwLock::default(),
            refetch: Mutex::new(Refetch {
                in_flight: None,
                last_attempt: None,
                failures: 0,
            }),
            background: AtomicBool::new(false),
        })
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(crate) fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    pub(crate) fn auditor(&self) -> &Auditor {
        &self.auditor
    }

    /// The keys now. Never waits on a fetch.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Whether `snapshot` may verify: fetched once, and not longer ago than
    /// the stale bound.
    pub(crate) fn usable(&self, snapshot: &Snapshot) -> bool {
        snapshot
            .fetched
            .is_some_and(|at| at.elapsed() < self.timing.serve_stale_for)
    }

    /// How long until the next fetch may start: the `Retry-After` of a 503.
    pub(crate) fn retry_after(&self) -> Duration {
        let refetch = self.lock_refetch();
        let remaining = refetch
            .last_attempt
            .map(|at| (at + self.timing.cooldown).saturating_duration_since(Instant::now()))
            .unwrap_or_default();
        remaining.max(Duration::from_secs(1))
    }

    fn lock_refetch(&self) -> MutexGuard<'_, Refetch> {
        self.refetch
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Joins the fetch in flight, or starts one unless the last attempt was
    /// less than the cooldown ago. `None`: nothing to wait for, the caller
    /// answers with what the cache holds. The fetch runs on a task of its
    /// own, so a caller that goes away does not cancel it.
    pub(crate) fn refetch(
        self: &Arc<Self>,
        trigger: Trigger,
    ) -> Option<Shared<BoxFuture<'static, ()>>> {
        let mut refetch = self.lock_refetch();
        if let Some(in_flight) = &refetch.in_flight {
            return Some(in_flight.clone());
        }
        let now = Instant::now();
        let cooling = refetch
            .last_attempt
            .is_some_and(|at| now < at + self.timing.cooldown);
        if cooling && trigger != Trigger::Refresh {
            return None;
        }
        refetch.last_attempt = Some(now);
        let cache = self.clone();
        let task = tokio::spawn(async move { cache.fetch(trigger).await });
        let shared = task.map(|_| ()).boxed().shared();
        refetch.in_flight = Some(shared.clone());
        Some(shared)
    }

    /// Starts the background refresh, once: a first fetch at once (the
    /// caller never waits for it), then one before the keys go stale.
    pub(crate) fn start(self: &Arc<Self>) {
        // A load first: every check calls this, and a load costs less than
        // a swap on a contended line.
        if self.background.load(Ordering::Acquire) || self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let cache = Arc::downgrade(self);
        tokio::spawn(refresh_loop(cache));
    }

    /// One fetch: discovery (unless only a `kid` is missing and the
    /// endpoints are known), then the key set; the snapshot is swapped on
    /// success and kept on failure.
    async fn fetch(&self, trigger: Trigger) {
        let outcome = self.fetch_snapshot(trigger).await;
        let mut refetch = self.lock_refetch();
        refetch.in_flight = None;
        match outcome {
            Ok((snapshot, added, removed)) => {
                refetch.failures = 0;
                drop(refetch);
                *self
                    .snapshot
                    .write()
                    .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(snapshot);
                let event =
                    AuditEvent::keys_fetched(&self.issuer, trigger.as_str(), added, removed);
                self.auditor.record(&event);
            }
            Err(error) => {
                refetch.failures = refetch.failures.saturating_add(1);
                drop(refetch);
                let event = AuditEvent::keys_failed(&self.issuer, trigger.as_str(), error.as_str());
                self.auditor.record(&event);
            }
        }
    }

    async fn fetch_snapshot(
        &self,
        trigger: Trigger,
    ) -> Result<(Snapshot, usize, usize), FetchError> {
        let current = self.snapshot();
        let endpoints = match (&current.endpoints, trigger) {
            (Some(endpoints), Trigger::UnknownKid) => endpoints.clone(),
            _ => {
                let document = self.fetcher.get(&self.discovery_url).await?;
                parse_discovery(&document.body, &self.issuer)?
            }
        };
        let answer = self.fetcher.get(&endpoints.jwks_uri).await?;
        let set = parse_key_set(&answer.body).map_err(|_| FetchError::Malformed)?;
        if set.skipped > 0 {
            tracing::debug!(issuer = %self.issuer, skipped = set.skipped, "keys skipped in a provider's key set");
        }
        let same_source = current
            .endpoints
            .as_ref()
            .is_some_and(|old| old.jwks_uri == endpoints.jwks_uri);
        let old_keys: &[VerificationKey] = if same_source { &current.keys } else { &[] };
        let held = |keys: &[VerificationKey], key: &VerificationKey| {
            keys.iter()
                .any(|other| other.kid() == key.kid() && other.algorithm() == key.algorithm())
        };
        let added = set.keys.iter().filter(|key| !held(old_keys, key)).count();
        let removed = current
            .keys
            .iter()
            .filter(|key| !held(&set.keys, key))
            .count();
        let max_age = answer
            .max_age
            .unwrap_or(self.timing.default_max_age)
            .clamp(self.timing.min_max_age, self.timing.max_max_age);
        let snapshot = Snapshot {
            endpoints: Some(endpoints),
            keys: set.keys,
            fetched: Some(Instant::now()),
            max_age,
        };
        Ok((snapshot, added, removed))
    }

    /// How long the background loop sleeps: until shortly before the keys
    /// go stale after a success (a quarter of their life early, at most a
    /// minute), or a back-off from the cooldown after failures (doubling,
    /// at most five minutes).
    fn next_refresh_in(&self) -> Duration {
        let snapshot = self.snapshot();
        let refetch = self.lock_refetch();
        let now = Instant::now();
        let wait = match (refetch.failures, snapshot.fetched) {
            (0, Some(fetched)) => {
                let early = (snapshot.max_age / 4).min(Duration::from_secs(60));
                (fetched + snapshot.max_age - early).saturating_duration_since(now)
            }
            (failures, _) => {
                let doubled = self
                    .timing
                    .cooldown
                    .saturating_mul(1 << failures.saturating_sub(1).min(16));
                let back_off = doubled.min(Duration::from_secs(300));
                let since = refetch
                    .last_attempt
                    .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
                back_off.saturating_sub(since)
            }
        };
        wait.max(self.timing.cooldown.min(Duration::from_secs(1)))
    }
}

/// The background refresh of one cache; ends once the verifier is gone.
async fn refresh_loop(cache: Weak<KeyCache>) {
    let mut trigger = Trigger::Startup;
    loop {
        let wait = {
            let Some(cache) = cache.upgrade() else { return };
            if let Some(fetch) = cache.refetch(trigger) {
                fetch.await;
            }
            cache.next_refresh_in()
        };
        tokio::time::sleep(wait).await;
        trigger = Trigger::Refresh;
    }
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("issuer", &self.issuer)
            .field("keys", &self.snapshot().keys.len())
            .finish_non_exhaustive()
    }
}
