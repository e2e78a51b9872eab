//! What every refresh session store must do, through `RefreshSessions`:
//! rotate, hand the grace its successor, end a session on reuse, expire,
//! and let exactly one of many concurrent uses rotate a token.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use wsgate::confirmation::{Confirmation, Possession};
use wsgate::refresh_sessions::RefreshSessions;
use wsgate::socket::Registry;
use wsgate::store::RefreshSessionStore;
use wsgate::{AuthMethod, Clock, Principal};

pub const REFRESH_SECRET: &[u8] = b"a refresh secret of at least thirty-two bytes";

/// Sessions over `store` with a manual clock, a 1 h lifetime and a 4 h cap.
pub fn sessions_over<S: RefreshSessionStore>(store: S, clock: &Clock) -> RefreshSessions<S> {
    sessions_in(
        store,
        Registry::new(&wsgate::wiring::Wiring::default()),
        clock,
    )
}

/// The same, ending sessions through `registry` (a gate's, say).
pub fn sessions_in<S: RefreshSessionStore>(
    store: S,
    registry: Registry,
    clock: &Clock,
) -> RefreshSessions<S> {
    RefreshSessions::builder(store, registry, REFRESH_SECRET)
        .unwrap()
        .lifetime(Duration::from_secs(3600))
        .max_lifetime(Duration::from_secs(4 * 3600))
        .clock(clock.clone())
        .build()
        .unwrap()
}

pub async fn start<S: RefreshSessionStore>(sessions: &RefreshSessions<S>) -> String {
    let alice = Principal::new("alice", AuthMethod::Password);
    let started = sessions
        .start(&alice, &Confirmation::default().with_certificate("C1"))
        .await
        .unwrap();
    started.refresh_token.expose().to_owned()
}

pub async fn refresh<S: RefreshSessionStore>(
    sessions: &RefreshSessions<S>,
    token: &str,
) -> Option<String> {
    let possession = Possession::default().with_certificate("C1");
    sessions
        .refresh(token, &possession)
        .await
        .ok()
        .map(|refreshed| refreshed.refresh_token.expose().to_owned())
}

pub async fn refresh_session_cases<S: RefreshSessionStore>(store: S) {
    let clock = Clock::manual(SystemTime::now());
    let sessions = sessions_over(store, &clock);

    // Rotation, and the binding kept.
    let first = start(&sessions).await;
    let second = refresh(&sessions, &first).await.expect("rotates");
    assert_ne!(first, second);
    assert!(
        sessions
            .refresh(&second, &Possession::default())
            .await
            .is_err(),
        "a certificate-bound session needs its certificate"
    );
    // The grace: the previous token gets the same successor.
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        refresh(&sessions, &first).await.as_deref(),
        Some(second.as_str())
    );
    // After it: theft, and the session ends for everyone.
    clock.advance(Duration::from_secs(6));
    assert_eq!(
        refresh(&sessions, &first).await,
        None,
        "reuse after the grace"
    );
    assert_eq!(refresh(&sessions, &second).await, None, "the session ended");

    // Expiry: unused for longer than the lifetime.
    let token = start(&sessions).await;
    clock.advance(Duration::from_secs(3601));
    assert_eq!(refresh(&sessions, &token).await, None, "expired");

    // Logout.
    let token = start(&sessions).await;
    assert!(sessions.end(&token).await.unwrap());
    assert_eq!(refresh(&sessions, &token).await, None, "logged out");

    // Sixteen uses of one token at once: one successor, no theft.
    let token = start(&sessions).await;
    let uses: Vec<_> = (0..16)
        .map(|_| {
            let (sessions, token) = (sessions.clone(), token.clone());
            tokio::spawn(async move { refresh(&sessions, &token).await })
        })
        .collect();
    let mut successors = HashSet::new();
    for used in uses {
        successors.insert(used.await.unwrap().expect("never taken for theft"));
    }
    assert_eq!(successors.len(), 1);
    let successor = successors.into_iter().next().unwrap();
    assert!(refresh(&sessions, &successor).await.is_some());
}
