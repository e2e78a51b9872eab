//! Refresh sessions: a person's login that outlives its short access
//! tokens, without the page holding a long-lived secret (the OAuth
//! security BCP's answer): an opaque refresh token, rotated on every use,
//! with reuse detected as theft.
//!
//! - [`start`](RefreshSessions::start) at login: a session id (`sid`, for
//!   every access token of the login) and its first refresh token (256
//!   random bits; stored only as its SHA-256).
//! - [`refresh`](RefreshSessions::refresh): the token presented is spent
//!   and its successor handed out, atomically (a compare-and-swap on the
//!   store). The lifetime slides (each rotation gets the full
//!   [`lifetime`](RefreshSessionsBuilder::lifetime) again) up to an
//!   absolute [`max_lifetime`](RefreshSessionsBuilder::max_lifetime) from
//!   the login.
//! - **Two tabs at once are not theft**: the immediately previous token,
//!   presented again within the [`grace`](RefreshSessionsBuilder::grace)
//!   (10 s) of its rotation, gets the same successor as the first use did.
//!   The successor is derived from the token it replaces by an HMAC under
//!   the sessions' secret, so it can be handed out again without being
//!   stored.
//! - **Any other spent token is theft**: an older one, or the previous one
//!   after the grace. The whole session ends: its record, its access
//!   tokens and its live sockets (4403 `token revoked`), through
//!   [`Registry::revoke`] — the revocation path every other takes, across
//!   processes with a shared store.
//! - [`end`](RefreshSessions::end) and
//!   [`end_session`](RefreshSessions::end_session) log out the same way.
//! - A revocation of the subject (a password change, a disabled account,
//!   an admin's) ends its refresh sessions too: a refresh checks the
//!   session as a principal issued at the login against the revocation
//!   store.
//! - A session bound to a DPoP key or a client certificate refreshes only
//!   with a proof of that key, or over that certificate (a missing proof
//!   is refused, and the session stays: that is no theft).
//!
//! A refresh token is `<family>.<secret>`: the family names the session's
//! record (an HMAC of its `sid` under the secret, so a `sid` seen in an
//! access token does not give it away), the secret is 256 bits.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::audit::{AuditEvent, Auditor, EventKind, Outcome};
use crate::clock::Clock;
use crate::confirmation::{Confirmation, Possession};
use crate::error::{ConfigError, CredentialError, Error};
use crate::principal::{AuthMethod, Principal};
use crate::random::random_urlsafe;
use crate::secret::Secret;
use crate::socket::Registry;
use crate::store::{
    RefreshDigest, RefreshRecord, RefreshSessionStore, Revocation, check_revocation,
};

/// How long a refresh token lives after its last use by default: 7 days.
pub const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest a session lives from its login, however often it refreshes:
/// 30 days.
pub const DEFAULT_MAX_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long the previous refresh token still gets its successor after a
/// rotation (two tabs refreshing at once): 10 s.
pub const DEFAULT_REFRESH_GRACE: Duration = Duration::from_secs(10);

/// Bytes of a family id (base64url: 22 characters).
const FAMILY_BYTES: usize = 16;
/// Bytes of a token's secret part (base64url: 43 characters).
const SECRET_BYTES: usize = 32;
/// How often a refresh retries a compare-and-swap another writer won.
const SWAP_TRIES: usize = 4;

/// A session just started: its id and its first refresh token.
#[derive(Debug)]
#[non_exhaustive]
pub struct StartedSession {
    /// The `sid` every access token of the session carries.
    pub session_id: String,
    /// The refresh token to hand the client (an HttpOnly cookie).
    pub refresh_token: Secret,
    /// When it ends unless used.
    pub expires_at: SystemTime,
}

/// A refresh that passed: whose session, and the next refresh token.
#[derive(Debug)]
#[non_exhaustive]
pub struct Refreshed {
    /// The session's `sid`.
    pub session_id: String,
    /// Whose session: issue the new access token for them (with their
    /// current roles, after checking the account may still sign in).
    pub subject: String,
    /// What the session is bound to: bind the new access token the same.
    pub confirmation: Confirmation,
    /// The successor refresh token: the one presented is spent.
    pub refresh_token: Secret,
    /// When the session ends unless used again.
    pub expires_at: SystemTime,
}

/// Refresh sessions over a [`RefreshSessionStore`]: see the [module
/// docs](self). Cheap to clone.
#[derive(Clone)]
pub struct RefreshSessions<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    store: S,
    key: hmac::Key,
    registry: Registry,
    lifetime: Duration,
    max_lifetime: Duration,
    grace: Duration,
    clock: Clock,
    auditor: Auditor,
}

/// Builds [`RefreshSessions`].
#[must_use]
pub struct RefreshSessionsBuilder<S> {
    /// What the sessions will hold, set as the builder goes.
    inner: Inner<S>,
}

impl<S: RefreshSessionStore> RefreshSessions<S> {
    /// Sessions in `store`, ending through `registry` (the gate's, so an
    /// ended session's sockets close and its tokens are refused), with
    /// successors derived under `secret` (at least 32 bytes; the same on
    /// every process that shares the store, and kept across restarts for
    /// the grace and for logging out by `sid` to keep working).
    ///
    /// # Errors
    ///
    /// [`ConfigError::WeakRefreshSecret`] for a secret under 32 bytes.
    pub fn builder(
        store: S,
        registry: Registry,
        secret: &[u8],
    ) -> Result<RefreshSessionsBuilder<S>, ConfigError> {
        if secret.len() < 32 {
            return Err(ConfigError::WeakRefreshSecret);
        }
        Ok(RefreshSessionsBuilder {
            inner: Inner {
                store,
                key: hmac::Key::new(hmac::HMAC_SHA256, secret),
                auditor: registry.auditor().clone(),
                registry,
                lifetime: DEFAULT_REFRESH_LIFETIME,
                max_lifetime: DEFAULT_MAX_SESSION_LIFETIME,
                grace: DEFAULT_REFRESH_GRACE,
                clock: Clock::system(),
            },
        })
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Starts a session for `principal` (just logged in), bound as
    /// `confirmation` says (the login's DPoP key, its client certificate).
    /// Put its `session_id` into every access token of the login (claim
    /// `sid`).
    ///
    /// # Errors
    ///
    /// A backend error when the store fails or the system has no
    /// randomness.
    pub async fn start(
        &self,
        principal: &Principal,
        confirmation: &Confirmation,
    ) -> Result<StartedSession, Error> {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let session_id = random_urlsafe::<FAMILY_BYTES>()?;
        let family = self.family(&session_id);
        let token = format!("{family}.{}", random_urlsafe::<SECRET_BYTES>()?);
        let expires_at = now + inner.lifetime.min(inner.max_lifetime);
        let record = RefreshRecord {
            family,
            session_id: session_id.clone(),
            subject: principal.subject().to_owned(),
            jkt: confirmation.jkt().map(str::to_owned),
            certificate: confirmation.certificate().map(str::to_owned),
            current: RefreshDigest::of_token(&token),
            previous: None,
            rotated_at: now,
            created_at: now,
            expires_at,
            ended: false,
        };
        inner.store.insert(record).await.map_err(Error::backend)?;
        Ok(StartedSession {
            session_id,
            refresh_token: Secret::new(token),
            expires_at,
        })
    }

    /// Spends `token` and hands out its successor. `possession` is what
    /// the request proved (a DPoP proof's key, the connection's client
    /// certificate), for a bound session.
    ///
    /// # Errors
    ///
    /// - [`CredentialError::InvalidGrant`] for a token that is unknown,
    ///   malformed, expired, of an ended or revoked session, or spent —
    ///   and a spent one (past the grace) ends the whole session first;
    /// - the binding's error (a DPoP error, `TokenError::NotConfirmed`)
    ///   for a bound session without its proof: the session stays;
    /// - a backend error when the store or the revocation store fails.
    pub async fn refresh(&self, token: &str, possession: &Possession) -> Result<Refreshed, Error> {
        let inner = &*self.inner;
        let family = family_of(token).ok_or_else(invalid_grant)?;
        let presented = RefreshDigest::of_token(token);
        for _ in 0..SWAP_TRIES {
            let now = inner.clock.now();
            let Some(record) = inner.store.get(family).await.map_err(Error::backend)? else {
                return Err(self.refused(None, "invalid grant"));
            };
            if record.ended || now >= record.expires_at {
                return Err(self.refused(Some(&record), "invalid grant"));
            }
            let confirmation = confirmation_of(&record);
            if presented.matches(&record.current) {
                confirmation.check(possession)?;
                self.check_revocation(&record).await?;
                let successor = self.successor(token);
                let expires_at = (now + inner.lifetime).min(record.created_at + inner.max_lifetime);
                let rotated = RefreshRecord {
                    current: RefreshDigest::of_token(&successor),
                    previous: Some(record.current),
                    rotated_at: now,
                    expires_at,
                    ..record.clone()
                };
                if inner
                    .store
                    .replace(record.current, rotated)
                    .await
                    .map_err(Error::backend)?
                {
                    return Ok(self.refreshed(&record, confirmation, successor, expires_at));
                }
                // Another use of this token rotated it first: look again
                // (this one is now the previous token, within the grace).
                continue;
            }
            let within_grace = record
                .previous
                .is_some_and(|previous| presented.matches(&previous))
                && now.duration_since(record.rotated_at).unwrap_or_default() <= inner.grace;
            if within_grace {
                confirmation.check(possession)?;
                self.check_revocation(&record).await?;
                let successor = self.successor(token);
                if !RefreshDigest::of_token(&successor).matches(&record.current) {
                    // Rotated under another secret (a restart with a new
                    // one): the successor cannot be made again.
                    return Err(self.refused(Some(&record), "invalid grant"));
                }
                return Ok(self.refreshed(&record, confirmation, successor, record.expires_at));
            }
            // A spent token: whoever holds it is not the one who spent it
            // (or is, and so is someone else). End the session for both.
            self.end_record(&record, "refresh token reused").await?;
            return Err(invalid_grant());
        }
        Err(Error::backend(
            "refresh session kept changing under the swap",
        ))
    }

    /// Logs out the session of refresh token `token` (its current or
    /// previous one): the session ends, its access tokens are refused and
    /// its sockets close (4403 `token revoked`). `Ok(false)` when there was
    /// no such live session.
    ///
    /// # Errors
    ///
    /// A backend error when a store fails.
    pub async fn end(&self, token: &str) -> Result<bool, Error> {
        let Some(family) = family_of(token) else {
            return Ok(false);
        };
        let presented = RefreshDigest::of_token(token);
        let record = self.inner.store.get(family).await.map_err(Error::backend)?;
        match record {
            Some(record)
                if !record.ended
                    && (presented.matches(&record.current)
                        || record
                            .previous
                            .is_some_and(|previous| presented.matches(&previous))) =>
            {
                self.end_record(&record, "logged out").await
            }
            _ => Ok(false),
        }
    }

    /// Logs out session `session_id` (the `sid` of an access token of it),
    /// as [`end`](Self::end) does.
    ///
    /// # Errors
    ///
    /// A backend error when a store fails.
    pub async fn end_session(&self, session_id: &str) -> Result<bool, Error> {
        let family = self.family(session_id);
        let record = self
            .inner
            .store
            .get(&family)
            .await
            .map_err(Error::backend)?;
        match record {
            Some(record) if !record.ended && record.session_id == session_id => {
                self.end_record(&record, "logged out").await
            }
            _ => Ok(false),
        }
    }

    /// Ends `record`: marked ended in the store, and its `sid` revoked
    /// (refusing its access tokens, closing its sockets) on every process.
    async fn end_record(
        &self,
        record: &RefreshRecord,
        reason: &'static str,
    ) -> Result<bool, Error> {
        let inner = &*self.inner;
        let mut current = record.clone();
        // Until the swap holds: a rotation racing the end must not leave
        // the session alive.
        for _ in 0..SWAP_TRIES {
            let ended = RefreshRecord {
                ended: true,
                ..current.clone()
            };
            if inner
                .store
                .replace(current.current, ended)
                .await
                .map_err(Error::backend)?
            {
                break;
            }
            match inner
                .store
                .get(&current.family)
                .await
                .map_err(Error::backend)?
            {
                Some(fresh) if !fresh.ended => current = fresh,
                _ => break,
            }
        }
        inner
            .registry
            .revoke(Revocation::session(record.session_id.clone()))
            .await?;
        inner.auditor.record(
            &AuditEvent::new(EventKind::Refresh, Outcome::Deny)
                .with_reason(reason)
                .with_sub(record.subject.clone()),
        );
        Ok(true)
    }

    /// A revoked subject (a password change, a disabled account, an
    /// admin's revocation after the login) or session ends the session.
    async fn check_revocation(&self, record: &RefreshRecord) -> Result<(), Error> {
        let principal = Principal::new(record.subject.clone(), AuthMethod::Token)
            .with_issued_at(record.created_at)
            .with_claim("sid", serde_json::Value::from(record.session_id.clone()));
        match check_revocation(self.inner.registry.revocations(), &principal, None).await {
            Ok(()) => Ok(()),
            Err(error) if matches!(error.kind(), crate::ErrorKind::Backend(_)) => Err(error),
            Err(_) => {
                self.end_record(record, "session revoked").await?;
                Err(invalid_grant())
            }
        }
    }

    fn refreshed(
        &self,
        record: &RefreshRecord,
        confirmation: Confirmation,
        successor: String,
        expires_at: SystemTime,
    ) -> Refreshed {
        self.inner.auditor.record(
            &AuditEvent::new(EventKind::Refresh, Outcome::Allow).with_sub(record.subject.clone()),
        );
        Refreshed {
            session_id: record.session_id.clone(),
            subject: record.subject.clone(),
            confirmation,
            refresh_token: Secret::new(successor),
            expires_at,
        }
    }

    fn refused(&self, record: Option<&RefreshRecord>, reason: &'static str) -> Error {
        let mut event = AuditEvent::new(EventKind::Refresh, Outcome::Deny).with_reason(reason);
        if let Some(record) = record {
            event = event.with_sub(record.subject.clone());
        }
        self.inner.auditor.record(&event);
        invalid_grant()
    }

    /// The token that replaces `token`: the same family, a secret derived
    /// from `token` under the key (so the grace can hand it out again
    /// without storing it).
    fn successor(&self, token: &str) -> String {
        let family = family_of(token).unwrap_or_default();
        let tag = hmac::sign(&self.inner.key, token.as_bytes());
        format!(
            "{family}.{}",
            URL_SAFE_NO_PAD.encode(&tag.as_ref()[..SECRET_BYTES])
        )
    }

    /// The family of session `session_id`: an HMAC of it, so a `sid` read
    /// off an access token does not name its refresh tokens.
    fn family(&self, session_id: &str) -> String {
        let mut message = b"wsgate refresh family ".to_vec();
        message.extend_from_slice(session_id.as_bytes());
        let tag = hmac::sign(&self.inner.key, &message);
        URL_SAFE_NO_PAD.encode(&tag.as_ref()[..FAMILY_BYTES])
    }
}

fn invalid_grant() -> Error {
    CredentialError::InvalidGrant.into()
}

fn confirmation_of(record: &RefreshRecord) -> Confirmation {
    let mut confirmation = Confirmation::default();
    if let Some(jkt) = &record.jkt {
        confirmation = confirmation.with_jkt(jkt.clone());
    }
    if let Some(certificate) = &record.certificate {
        confirmation = confirmation.with_certificate(certificate.clone());
    }
    confirmation
}

/// The family part of a well-formed refresh token.
fn family_of(token: &str) -> Option<&str> {
    let (family, secret) = token.split_once('.')?;
    let url_safe = |part: &str| {
        part.bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    };
    (family.len() == 22 && secret.len() == 43 && url_safe(family) && url_safe(secret))
        .then_some(family)
}

impl<S> RefreshSessionsBuilder<S> {
    /// How long a refresh token lives after its last use. Defaults to
    /// [`DEFAULT_REFRESH_LIFETIME`] (7 days).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.inner.lifetime = lifetime;
        self
    }

    /// The longest a session lives from its login. Defaults to
    /// [`DEFAULT_MAX_SESSION_LIFETIME`] (30 days).
    pub fn max_lifetime(mut self, max_lifetime: Duration) -> Self {
        self.inner.max_lifetime = max_lifetime;
        self
    }

    /// How long the previous token still gets its successor after a
    /// rotation. Defaults to [`DEFAULT_REFRESH_GRACE`] (10 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.inner.grace = grace;
        self
    }

    /// The clock (tests). Defaults to the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.inner.clock = clock;
        self
    }

    /// Where refresh decisions are recorded. Defaults to the registry's
    /// auditor.
    pub fn audit(mut self, auditor: Auditor) -> Self {
        self.inner.auditor = auditor;
        self
    }

    /// Finishes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] for a zero lifetime.
    pub fn build(self) -> Result<RefreshSessions<S>, ConfigError> {
        if self.inner.lifetime.is_zero() || self.inner.max_lifetime.is_zero() {
            return Err(ConfigError::ZeroLimit("refresh session lifetime"));
        }
        Ok(RefreshSessions {
            inner: Arc::new(self.inner),
        })
    }
}

impl<S: fmt::Debug> fmt::Debug for RefreshSessions<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshSessions")
            .field("store", &self.inner.store)
            .field("lifetime", &self.inner.lifetime)
            .field("max_lifetime", &self.inner.max_lifetime)
            .field("grace", &self.inner.grace)
            .finish_non_exhaustive()
    }
}

impl<S: fmt::Debug> fmt::Debug for RefreshSessionsBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshSessionsBuilder")
            .field("store", &self.inner.store)
            .field("lifetime", &self.inner.lifetime)
            .finish_non_exhaustive()
    }
}
