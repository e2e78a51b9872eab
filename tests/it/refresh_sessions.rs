//! Refresh sessions: rotation, the grace for two tabs, reuse as theft
//! (the session ends: its tokens refused, its sockets closed 4403),
//! expiry, logout, revocations of the subject, bound sessions.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::common::refresh::{REFRESH_SECRET, sessions_in};
use crate::common::{Handshake, Keys, connect, serve};
use axum::Router;
use axum::routing::get;
use jsonwebtoken::Algorithm;
use serde_json::json;
use wsgate::confirmation::{Confirmation, Possession};
use wsgate::refresh_sessions::RefreshSessions;
use wsgate::store::Revocation;
use wsgate::store::{InMemoryRefreshSessionStore, RefreshSessionStore as _};
use wsgate::{AuthMethod, Clock, CredentialError, ErrorKind, Gate, Principal};

struct Site {
    addr: std::net::SocketAddr,
    keys: Keys,
    gate: Gate,
    clock: Clock,
    sessions: RefreshSessions<InMemoryRefreshSessionStore>,
}

impl Site {
    async fn start() -> Self {
        let keys = Keys::load();
        let gate = Gate::builder(keys.verifier()).build().unwrap();
        let handshake = gate
            .handshake()
            .transports([wsgate::Transport::Bearer])
            .build()
            .unwrap();
        let router = Router::new()
            .route("/ws", get(crate::common::welcome_then_echo))
            .route_layer(handshake)
            .with_state(gate.clone());
        let clock = Clock::manual(SystemTime::now());
        let sessions = sessions_in(
            InMemoryRefreshSessionStore::new(),
            gate.registry().clone(),
            &clock,
        );
        Self {
            addr: serve(router).await,
            keys,
            gate,
            clock,
            sessions,
        }
    }

    /// An access token of session `sid` (issued now).
    fn access_token(&self, sid: &str) -> String {
        let mut claims = Keys::claims("alice");
        claims["sid"] = json!(sid);
        self.keys.sign_with(Algorithm::HS256, &claims, |_| {})
    }

    async fn login(&self) -> (String, String) {
        let alice = Principal::new("alice", AuthMethod::Password);
        let started = self
            .sessions
            .start(&alice, &Confirmation::default())
            .await
            .unwrap();
        (
            started.session_id,
            started.refresh_token.expose().to_owned(),
        )
    }

    async fn refresh(&self, token: &str) -> Result<String, String> {
        self.sessions
            .refresh(token, &Possession::default())
            .await
            .map(|refreshed| refreshed.refresh_token.expose().to_owned())
            .map_err(|error| error.to_string())
    }
}

fn is_invalid_grant(error: &wsgate::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Credentials(CredentialError::InvalidGrant)
    )
}

/// Each use spends the token and hands out another; the successor works,
/// the session's id stays.
#[tokio::test]
async fn every_refresh_rotates_the_token() {
    let site = Site::start().await;
    let (sid, first) = site.login().await;
    assert_eq!(first.len(), 22 + 1 + 43);
    let refreshed = site
        .sessions
        .refresh(&first, &Possession::default())
        .await
        .unwrap();
    assert_eq!(refreshed.session_id, sid);
    assert_eq!(refreshed.subject, "alice");
    let second = refreshed.refresh_token.expose().to_owned();
    assert_ne!(second, first);
    let third = site.refresh(&second).await.unwrap();
    assert_ne!(third, second);
    // Stored only as digests.
    let (family, _) = third.split_once('.').unwrap();
    let record = site.sessions.store().get(family).await.unwrap().unwrap();
    let shown = format!("{record:?}");
    assert!(!shown.contains(&third[23..]) && !shown.contains(&second[23..]));
    assert_eq!(record.session_id, sid);
}

/// Reuse is theft: a spent token presented after the grace (or any older
/// one) ends the session: its refresh tokens, its access tokens at the
/// handshake, and its live sockets (4403 `token revoked`).
#[tokio::test]
async fn a_spent_token_ends_the_whole_session() {
    let site = Site::start().await;
    let (sid, first) = site.login().await;
    let mut socket = crate::common::open_bearer(site.addr, &site.access_token(&sid)).await;
    let second = site.refresh(&first).await.unwrap();
    site.clock.advance(Duration::from_secs(11));
    assert_eq!(site.refresh(&first).await, Err("invalid grant".to_owned()));
    assert_eq!(
        crate::common::close_within(&mut socket, Duration::from_secs(5)).await,
        (4403, "token revoked".to_owned())
    );
    // The thief's successor and the owner's alike are dead now.
    assert_eq!(site.refresh(&second).await, Err("invalid grant".to_owned()));
    let outcome = connect(
        site.addr,
        &Handshake::to("/ws").bearer(&site.access_token(&sid)),
    )
    .await;
    assert_eq!(
        outcome.refusal("a token of the ended session").2,
        "token revoked"
    );

    // An older token, even within the grace of the latest rotation.
    let (_, first) = site.login().await;
    let second = site.refresh(&first).await.unwrap();
    let third = site.refresh(&second).await.unwrap();
    assert_eq!(site.refresh(&first).await, Err("invalid grant".to_owned()));
    assert_eq!(site.refresh(&third).await, Err("invalid grant".to_owned()));
}

/// Two tabs refreshing at once are not theft: the immediately previous
/// token within the grace gets the same successor; however many use one
/// token at once (on four threads, so reads and swaps interleave), exactly
/// one successor comes out and the session lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_token_get_one_successor() {
    let site = Arc::new(Site::start().await);
    let (sid, first) = site.login().await;
    let mut socket = crate::common::open_bearer(site.addr, &site.access_token(&sid)).await;
    let tabs: Vec<_> = (0..16)
        .map(|_| {
            let site = site.clone();
            let token = first.clone();
            tokio::spawn(async move { site.refresh(&token).await })
        })
        .collect();
    let mut successors = std::collections::HashSet::new();
    for tab in tabs {
        successors.insert(tab.await.unwrap().expect("no tab is taken for a thief"));
    }
    assert_eq!(successors.len(), 1, "one successor for all");
    let successor = successors.into_iter().next().unwrap();
    // Within the grace, the previous token again: the same successor.
    site.clock.advance(Duration::from_secs(9));
    assert_eq!(site.refresh(&first).await.unwrap(), successor);
    // The session lives on, and its socket is open.
    let next = site.refresh(&successor).await.unwrap();
    assert!(site.refresh(&next).await.is_ok());
    assert_eq!(
        crate::common::close_within(&mut socket, Duration::from_millis(300))
            .await
            .1,
        "still open"
    );
}

/// The lifetime slides with each use, up to the cap from the login.
#[tokio::test]
async fn sessions_expire_unused_and_at_the_cap() {
    let site = Site::start().await;
    let (_, token) = site.login().await;
    site.clock.advance(Duration::from_secs(3601));
    assert_eq!(site.refresh(&token).await, Err("invalid grant".to_owned()));

    let (_, mut token) = site.login().await;
    // Used every 50 minutes: alive past the first hour, ended at 4 hours.
    for _ in 0..4 {
        site.clock.advance(Duration::from_secs(50 * 60));
        token = site.refresh(&token).await.unwrap();
    }
    site.clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(
        site.refresh(&token).await,
        Err("invalid grant".to_owned()),
        "past the cap"
    );
}

/// Logging out by refresh token or by `sid` ends the session: its sockets
/// close 4403, its refresh token is refused.
#[tokio::test]
async fn logout_ends_the_session() {
    let site = Site::start().await;
    for by_sid in [false, true] {
        let (sid, token) = site.login().await;
        let mut socket = crate::common::open_bearer(site.addr, &site.access_token(&sid)).await;
        let ended = if by_sid {
            site.sessions.end_session(&sid).await.unwrap()
        } else {
            site.sessions.end(&token).await.unwrap()
        };
        assert!(ended);
        assert_eq!(
            crate::common::close_within(&mut socket, Duration::from_secs(5)).await,
            (4403, "token revoked".to_owned())
        );
        assert_eq!(site.refresh(&token).await, Err("invalid grant".to_owned()));
        assert!(!site.sessions.end(&token).await.unwrap(), "ends once");
    }
    assert!(!site.sessions.end_session("no-such-session").await.unwrap());
}

/// A revocation of the subject after the login (a password change, a
/// disabled account, an admin's) ends its refresh sessions too.
#[tokio::test]
async fn a_revoked_subject_cannot_refresh() {
    let site = Site::start().await;
    let (_, token) = site.login().await;
    site.gate
        .registry()
        .revoke(Revocation::subject(
            "alice",
            SystemTime::now() + Duration::from_secs(1),
        ))
        .await
        .unwrap();
    let error = site
        .sessions
        .refresh(&token, &Possession::default())
        .await
        .unwrap_err();
    assert!(is_invalid_grant(&error), "{error}");
}

/// A session bound to a DPoP key refreshes only with a proof of it; a
/// missing or wrong proof is refused and the session stays (no theft).
#[tokio::test]
async fn a_bound_session_refreshes_only_with_its_key() {
    let site = Site::start().await;
    let alice = Principal::new("alice", AuthMethod::Password);
    let started = site
        .sessions
        .start(&alice, &Confirmation::default().with_jkt("K1"))
        .await
        .unwrap();
    let token = started.refresh_token.expose().to_owned();
    for possession in [Possession::default(), Possession::dpop("K2")] {
        let error = site
            .sessions
            .refresh(&token, &possession)
            .await
            .unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::Dpop(_)), "{error}");
    }
    let refreshed = site
        .sessions
        .refresh(&token, &Possession::dpop("K1"))
        .await
        .unwrap();
    assert_eq!(refreshed.confirmation.jkt(), Some("K1"));
}

/// What is not a live refresh token of a session gets `invalid_grant`.
#[tokio::test]
async fn malformed_and_unknown_tokens_are_an_invalid_grant() {
    let site = Site::start().await;
    let (_, token) = site.login().await;
    let (family, secret) = token.split_once('.').unwrap();
    let other_secret = format!("{family}.{}", "A".repeat(secret.len()));
    for bad in [
        "",
        "no-dot",
        &token[..token.len() - 1],
        &format!("{}.{secret}", "B".repeat(22)),
        &format!("{token}x"),
        &format!("{family}.{}", "!".repeat(43)),
    ] {
        let error = site
            .sessions
            .refresh(bad, &Possession::default())
            .await
            .unwrap_err();
        assert!(is_invalid_grant(&error), "{bad:?}: {error}");
    }
    // A forged secret in a real family is a spent token as far as anyone
    // can tell: the session ends (only a holder of a real token of the
    // family learns its name).
    assert!(site.refresh(&other_secret).await.is_err());
    assert_eq!(site.refresh(&token).await, Err("invalid grant".to_owned()));
}

/// A store that lets every other task run between a read and a swap, so
/// sixteen uses of one token all read it before any swaps it: every swap
/// but one loses, looks again, and finds the token just rotated.
#[derive(Clone, Debug, Default)]
struct Yielding(InMemoryRefreshSessionStore);

impl wsgate::store::RefreshSessionStore for Yielding {
    type Error = std::convert::Infallible;

    async fn insert(&self, record: wsgate::store::RefreshRecord) -> Result<(), Self::Error> {
        self.0.insert(record).await
    }

    async fn get(&self, family: &str) -> Result<Option<wsgate::store::RefreshRecord>, Self::Error> {
        let record = self.0.get(family).await;
        tokio::task::yield_now().await;
        record
    }

    async fn replace(
        &self,
        expected: wsgate::store::RefreshDigest,
        record: wsgate::store::RefreshRecord,
    ) -> Result<bool, Self::Error> {
        tokio::task::yield_now().await;
        self.0.replace(expected, record).await
    }
}

#[tokio::test]
async fn lost_swaps_look_again_and_find_the_grace() {
    let gate = Gate::builder(Keys::load().verifier()).build().unwrap();
    let sessions =
        RefreshSessions::builder(Yielding::default(), gate.registry().clone(), REFRESH_SECRET)
            .unwrap()
            .build()
            .unwrap();
    let alice = Principal::new("alice", AuthMethod::Password);
    let started = sessions
        .start(&alice, &Confirmation::default())
        .await
        .unwrap();
    let token = started.refresh_token.expose().to_owned();
    let uses: Vec<_> = (0..16)
        .map(|_| {
            let (sessions, token) = (sessions.clone(), token.clone());
            tokio::spawn(async move {
                sessions
                    .refresh(&token, &Possession::default())
                    .await
                    .map(|refreshed| refreshed.refresh_token.expose().to_owned())
            })
        })
        .collect();
    let mut successors = std::collections::HashSet::new();
    for used in uses {
        successors.insert(used.await.unwrap().unwrap());
    }
    assert_eq!(successors.len(), 1);
    let successor = successors.into_iter().next().unwrap();
    assert!(
        sessions
            .refresh(&successor, &Possession::default())
            .await
            .is_ok()
    );
}

/// The store's cases, in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_in_memory_store_passes_the_store_cases() {
    crate::common::refresh::refresh_session_cases(InMemoryRefreshSessionStore::new()).await;
}
