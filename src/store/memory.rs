//! In-memory stores: for tests, demos and single-node deployments.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::password::hash_password;
use crate::principal::Principal;
use crate::store::{
    AccountStore, CredentialStore, Revocation, RevocationStore, StoredUser, TicketDigest,
    TicketStore, issued_by,
};

/// A [`CredentialStore`] in a `HashMap`. Clones share the same users.
#[derive(Clone, Debug, Default)]
pub struct InMemoryCredentialStore {
    users: Arc<RwLock<HashMap<String, StoredUser>>>,
}

impl InMemoryCredentialStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a user under `username`.
    pub fn insert(&self, username: impl Into<String>, user: StoredUser) {
        self.users
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(username.into(), user);
    }

    /// Adds a user whose subject is the username, hashing `password` with
    /// argon2id. Blocking (one hash): call it at setup.
    ///
    /// # Errors
    ///
    /// When hashing fails.
    pub fn add_user<I, R>(&self, username: &str, password: &str, roles: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        let user = StoredUser::new(username, hash_password(password)?).with_roles(roles);
        self.insert(username, user);
        Ok(())
    }

    /// Removes a user.
    pub fn remove(&self, username: &str) -> Option<StoredUser> {
        self.users
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(username)
    }
}

impl CredentialStore for InMemoryCredentialStore {
    type Error = Infallible;

    async fn find_user(&self, username: &str) -> Result<Option<StoredUser>, Self::Error> {
        Ok(self
            .users
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(username)
            .cloned())
    }
}

impl InMemoryCredentialStore {
    /// Changes the user under `username` with `change`; whether there was one.
    fn update(&self, username: &str, change: impl FnOnce(&mut StoredUser)) -> bool {
        let mut users = self
            .users
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        match users.get_mut(username) {
            Some(user) => {
                change(user);
                true
            }
            None => false,
        }
    }
}

impl AccountStore for InMemoryCredentialStore {
    async fn create_user(&self, username: &str, user: StoredUser) -> Result<bool, Infallible> {
        let mut users = self
            .users
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if users.contains_key(username) {
            return Ok(false);
        }
        users.insert(username.to_owned(), user);
        Ok(true)
    }

    async fn set_password_hash(&self, username: &str, hash: String) -> Result<bool, Infallible> {
        Ok(self.update(username, |user| {
            *user = user.clone().with_password_hash(hash);
        }))
    }

    async fn set_roles(&self, username: &str, roles: Vec<String>) -> Result<bool, Infallible> {
        Ok(self.update(username, |user| *user = user.clone().with_roles(roles)))
    }

    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, Infallible> {
        Ok(self.update(username, |user| *user = user.clone().disabled(disabled)))
    }

    async fn list_users(&self) -> Result<Vec<(String, StoredUser)>, Infallible> {
        let users = self
            .users
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut listed: Vec<(String, StoredUser)> = users
            .iter()
            .map(|(name, user)| (name.clone(), user.clone()))
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(listed)
    }
}

/// A [`TicketStore`] in a `HashMap` behind a mutex. Clones share the same
/// tickets.
#[derive(Clone, Debug, Default)]
pub struct InMemoryTicketStore {
    held: Arc<Mutex<Held>>,
}

#[derive(Debug, Default)]
struct Held {
    tickets: HashMap<TicketDigest, (Principal, SystemTime)>,
    /// The tickets stored under a per-subject limit, by subject (some may
    /// be taken or expired since): what a limit counts, in time
    /// proportional to the limit rather than to every ticket held.
    by_subject: HashMap<String, Vec<(TicketDigest, SystemTime)>>,
}

impl Held {
    /// Stores a ticket, first sweeping out the expired ones whenever the
    /// map reaches a multiple of [`SWEEP_EVERY`].
    fn insert(
        &mut self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
        now: SystemTime,
    ) {
        if self.tickets.len() % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.tickets.retain(|_, (_, expires)| *expires > now);
            self.by_subject.retain(|_, held| {
                held.retain(|(_, expires)| *expires > now);
                !held.is_empty()
            });
        }
        self.tickets.insert(digest, (principal, expires_at));
    }

    /// `subject`'s tickets neither taken nor expired at `now`, forgetting
    /// the others.
    fn held_by(&mut self, subject: &str, now: SystemTime) -> usize {
        let Some(held) = self.by_subject.get_mut(subject) else {
            return 0;
        };
        let tickets = &self.tickets;
        held.retain(|(digest, expires)| *expires > now && tickets.contains_key(digest));
        held.len()
    }
}

/// Expired tickets are swept out whenever the map reaches a multiple of this.
const SWEEP_EVERY: usize = 1024;

impl InMemoryTicketStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of tickets held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .tickets
            .len()
    }

    /// Whether the store holds no tickets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TicketStore for InMemoryTicketStore {
    type Error = Infallible;

    async fn insert(
        &self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
    ) -> Result<(), Self::Error> {
        self.held
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(digest, principal, expires_at, SystemTime::now());
        Ok(())
    }

    async fn insert_within(
        &self,
        digest: TicketDigest,
        principal: Principal,
        expires_at: SystemTime,
        now: SystemTime,
        max: usize,
    ) -> Result<bool, Self::Error> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let subject = principal.subject().to_owned();
        if held.held_by(&subject, now) >= max {
            return Ok(false);
        }
        held.by_subject
            .entry(subject)
            .or_default()
            .push((digest, expires_at));
        held.insert(digest, principal, expires_at, now);
        Ok(true)
    }

    async fn take(
        &self,
        digest: &TicketDigest,
        now: SystemTime,
    ) -> Result<Option<Principal>, Self::Error> {
        // Removal under the lock is what makes redemption single-use: of two
        // concurrent takes, the second finds nothing.
        let taken = self
            .held
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .tickets
            .remove_entry(digest);
        Ok(match taken {
            // The map matched on the digest; compare once more in constant
            // time so the decision itself does not depend on a short-circuit.
            Some((stored, (principal, expires_at)))
                if stored.constant_time_eq(digest) && expires_at > now =>
            {
                Some(principal)
            }
            _ => None,
        })
    }
}

/// How long an in-memory revocation is kept by default: 24 hours, longer
/// than any access token should live (and the Redis store's default).
pub const DEFAULT_REVOCATION_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// A [`RevocationStore`] in memory (single node). Clones share the same
/// revocations.
///
/// Each revocation is kept for the retention (defaults to
/// [`DEFAULT_REVOCATION_RETENTION`], 24 h; see
/// [`with_retention`](Self::with_retention)), then forgotten: by then every
/// token it covered has expired, so a store that revokes day after day does
/// not grow without bound. Make the retention longer than the longest
/// token lifetime you accept.
#[derive(Clone, Debug)]
pub struct InMemoryRevocationStore {
    revoked: Arc<RwLock<Revoked>>,
    retention: Duration,
}

/// Each revocation with when it may be forgotten.
#[derive(Debug, Default)]
struct Revoked {
    tokens: HashMap<String, SystemTime>,
    /// The cut-off (tokens issued up to it are revoked), and when the
    /// entry may be forgotten.
    subjects: HashMap<String, (SystemTime, SystemTime)>,
    sessions: HashMap<String, SystemTime>,
    /// When the entries past their time are next swept away.
    next_sweep: Option<SystemTime>,
}

impl Revoked {
    fn len(&self) -> usize {
        self.tokens.len() + self.subjects.len() + self.sessions.len()
    }

    /// Forgets what is past its time, at most once a minute (or once a
    /// retention, when that is shorter): the sweep walks every entry.
    fn sweep(&mut self, now: SystemTime, retention: Duration) {
        if self.next_sweep.is_some_and(|next| now < next) {
            return;
        }
        self.tokens.retain(|_, forget_at| *forget_at > now);
        self.subjects.retain(|_, (_, forget_at)| *forget_at > now);
        self.sessions.retain(|_, forget_at| *forget_at > now);
        self.next_sweep = Some(now + retention.min(Duration::from_secs(60)));
    }
}

impl Default for InMemoryRevocationStore {
    fn default() -> Self {
        Self::with_retention(DEFAULT_REVOCATION_RETENTION)
    }
}

impl InMemoryRevocationStore {
    /// An empty store, keeping revocations for 24 h.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping each revocation for `retention` after it was
    /// made (a revocation made again is kept from then on).
    pub fn with_retention(retention: Duration) -> Self {
        Self {
            revoked: Arc::default(),
            retention,
        }
    }

    /// How many revocations the store holds (tokens, subjects and sessions;
    /// some may be past their retention until the next sweep).
    pub fn len(&self) -> usize {
        self.revoked
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .len()
    }

    /// Whether the store holds no revocation.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a revocation covers `principal` in `session_id`: the
    /// answer, at once. An entry past its retention still counts until it
    /// is swept: keeping a revocation a little longer is safe, and a check
    /// reads no clock.
    pub(crate) fn covers(&self, principal: &Principal, session_id: Option<&str>) -> bool {
        let revoked = self
            .revoked
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let token = principal
            .token_id()
            .is_some_and(|id| revoked.tokens.contains_key(id));
        let subject = revoked
            .subjects
            .get(principal.subject())
            .is_some_and(|(cut_off, _)| issued_by(principal, *cut_off));
        let session = session_id.is_some_and(|id| revoked.sessions.contains_key(id));
        token || subject || session
    }
}

impl RevocationStore for InMemoryRevocationStore {
    type Error = Infallible;

    async fn revoke(&self, revocation: Revocation) -> Result<(), Self::Error> {
        let now = SystemTime::now();
        let forget_at = now + self.retention;
        let mut revoked = self
            .revoked
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        revoked.sweep(now, self.retention);
        match revocation {
            Revocation::Token(id) => {
                revoked.tokens.insert(id, forget_at);
            }
            Revocation::Subject {
                subject,
                issued_before,
            } => {
                let entry = revoked
                    .subjects
                    .entry(subject)
                    .or_insert((issued_before, forget_at));
                *entry = (entry.0.max(issued_before), forget_at);
            }
            Revocation::Session(id) => {
                revoked.sessions.insert(id, forget_at);
            }
        }
        Ok(())
    }

    async fn is_revoked(
        &self,
        principal: &Principal,
        session_id: Option<&str>,
    ) -> Result<bool, Self::Error> {
        Ok(self.covers(principal, session_id))
    }

    fn revoked_now(
        &self,
        principal: &Principal,
        session_id: Option<&str>,
    ) -> Option<Result<bool, Self::Error>> {
        Some(Ok(self.covers(principal, session_id)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::principal::AuthMethod;

    #[tokio::test]
    async fn a_ticket_is_taken_once_and_not_after_expiry() {
        let store = InMemoryTicketStore::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let principal = Principal::new("alice", AuthMethod::Token);
        let once = TicketDigest::of("once");
        let late = TicketDigest::of("late");
        store
            .insert(once, principal.clone(), now + Duration::from_secs(30))
            .await
            .unwrap();
        store
            .insert(late, principal.clone(), now + Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(store.take(&once, now).await.unwrap(), Some(principal));
        assert_eq!(store.take(&once, now).await.unwrap(), None);
        assert_eq!(
            store
                .take(&late, now + Duration::from_secs(30))
                .await
                .unwrap(),
            None
        );
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn revocations_by_token_subject_and_session() {
        let store = InMemoryRevocationStore::new();
        let at = |seconds| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
        let token = |sub: &str, id: &str, issued| {
            Principal::new(sub, AuthMethod::Token)
                .with_token_id(id)
                .with_issued_at(at(issued))
        };
        store.revoke(Revocation::Token("t1".into())).await.unwrap();
        store
            .revoke(Revocation::Subject {
                subject: "bob".into(),
                issued_before: at(100),
            })
            .await
            .unwrap();
        store
            .revoke(Revocation::Session("s9".into()))
            .await
            .unwrap();
        struct Case {
            name: &'static str,
            principal: Principal,
            session: Option<&'static str>,
            revoked: bool,
        }
        let cases = [
            Case {
                name: "revoked jti",
                principal: token("alice", "t1", 50),
                session: None,
                revoked: true,
            },
            Case {
                name: "other jti",
                principal: token("alice", "t2", 50),
                session: None,
                revoked: false,
            },
            Case {
                name: "subject, issued before",
                principal: token("bob", "t3", 99),
                session: None,
                revoked: true,
            },
            Case {
                name: "subject, issued at the cut-off",
                principal: token("bob", "t4", 100),
                session: None,
                revoked: true,
            },
            Case {
                name: "subject, issued after",
                principal: token("bob", "t5", 101),
                session: None,
                revoked: false,
            },
            Case {
                name: "subject, no issue time",
                principal: Principal::new("bob", AuthMethod::Token),
                session: None,
                revoked: true,
            },
            Case {
                name: "revoked session",
                principal: token("carol", "t6", 50),
                session: Some("s9"),
                revoked: true,
            },
            Case {
                name: "other session",
                principal: token("carol", "t6", 50),
                session: Some("s8"),
                revoked: false,
            },
        ];
        for case in cases {
            let revoked = store
                .is_revoked(&case.principal, case.session)
                .await
                .unwrap();
            assert_eq!(revoked, case.revoked, "{}", case.name);
        }
    }

    #[tokio::test]
    async fn users_are_found_by_username() {
        let store = InMemoryCredentialStore::new();
        store.insert(
            "carol",
            StoredUser::new("user-17", "$argon2id$fake").with_roles(["user"]),
        );
        let found = store.find_user("carol").await.unwrap().unwrap();
        assert_eq!(found.subject(), "user-17");
        assert!(store.find_user("dave").await.unwrap().is_none());
        assert!(!format!("{found:?}").contains("argon2id"));
    }

    #[tokio::test]
    async fn revocations_are_forgotten_after_their_retention() {
        let store = InMemoryRevocationStore::with_retention(Duration::from_millis(50));
        let alice = Principal::new("alice", AuthMethod::Token).with_token_id("a");
        store.revoke(Revocation::token("a")).await.unwrap();
        store.revoke(Revocation::session("s")).await.unwrap();
        store
            .revoke(Revocation::subject("bob", SystemTime::now()))
            .await
            .unwrap();
        assert_eq!(store.len(), 3);
        assert!(store.covers(&alice, None));
        std::thread::sleep(Duration::from_millis(80));
        // The next revocation sweeps what is past its time.
        store.revoke(Revocation::token("b")).await.unwrap();
        assert_eq!(store.len(), 1, "only the new one is kept");
        assert!(!store.covers(&alice, None));
        // A flood of unique revocations within the retention is kept whole:
        // forgetting one early would let its token in.
        let kept = InMemoryRevocationStore::new();
        for n in 0..1_000 {
            kept.revoke(Revocation::token(format!("t{n}")))
                .await
                .unwrap();
        }
        assert_eq!(kept.len(), 1_000);
    }
}
