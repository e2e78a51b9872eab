//! The failure limiter's behaviour, one function per rule, run against
//! every limiter (in memory, Redis): the same semantics, the same tests.
//! Each takes a limiter built by [`limits`] on a manual clock.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use wsgate::Clock;
use wsgate::limit::{Admission, Attempt, FailureLimiter, FailureLimits};

/// The rules every case assumes: 3 failures per account, 5 per address,
/// a 60 s window, locks of 10 s doubling up to 25 s.
pub fn limits(clock: &Clock) -> FailureLimits {
    FailureLimits::default()
        .account_threshold(3)
        .unwrap()
        .address_threshold(5)
        .unwrap()
        .window(Duration::from_secs(60))
        .lockout(Duration::from_secs(10), Duration::from_secs(25))
        .clock(clock.clone())
}

/// A manual clock at a fixed start.
pub fn clock() -> Clock {
    Clock::manual(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
}

async fn admit<L: FailureLimiter>(limiter: &L, account: &str, client: Option<IpAddr>) -> Admission {
    limiter.admit(account, client).await.unwrap()
}

async fn fail<L: FailureLimiter>(limiter: &L, account: &str, client: Option<IpAddr>) {
    limiter
        .record(account, client, Attempt::Failed)
        .await
        .unwrap();
}

/// Every case, in turn, each on a limiter `make` builds fresh.
pub async fn run_all<L, F, Fut>(make: F)
where
    L: FailureLimiter,
    F: Fn(Clock) -> Fut,
    Fut: std::future::Future<Output = L>,
{
    let c = clock();
    accounts_lock_with_growing_back_off(&make(c.clone()).await, &c).await;
    let c = clock();
    an_address_spraying_many_accounts_is_refused(&make(c.clone()).await, &c).await;
    let c = clock();
    attempts_in_flight_count_against_the_thresholds(&make(c.clone()).await, &c).await;
    let c = clock();
    a_success_clears_the_account_but_not_other_attempts_in_flight(&make(c.clone()).await, &c).await;
    let c = clock();
    attempts_beyond_those_in_flight_wait_for_their_outcomes(&make(c.clone()).await, &c).await;
}

pub async fn accounts_lock_with_growing_back_off<L: FailureLimiter>(limiter: &L, clock: &Clock) {
    for _ in 0..3 {
        assert_eq!(admit(limiter, "alice", None).await, Admission::Allowed);
        fail(limiter, "alice", None).await;
    }
    assert_eq!(
        admit(limiter, "alice", None).await,
        Admission::Locked {
            retry_after: Duration::from_secs(10)
        }
    );
    assert_eq!(admit(limiter, "bob", None).await, Admission::Allowed);
    clock.advance(Duration::from_secs(10));
    assert_eq!(admit(limiter, "alice", None).await, Admission::Allowed);
    for _ in 0..3 {
        fail(limiter, "alice", None).await;
    }
    assert_eq!(
        admit(limiter, "alice", None).await,
        Admission::Locked {
            retry_after: Duration::from_secs(20)
        },
        "the second lock is twice the first"
    );
    clock.advance(Duration::from_secs(20));
    for _ in 0..3 {
        fail(limiter, "alice", None).await;
    }
    assert_eq!(
        admit(limiter, "alice", None).await,
        Admission::Locked {
            retry_after: Duration::from_secs(25)
        },
        "capped"
    );
    clock.advance(Duration::from_secs(25));
    limiter
        .record("alice", None, Attempt::Succeeded)
        .await
        .unwrap();
    fail(limiter, "alice", None).await;
    assert_eq!(
        admit(limiter, "alice", None).await,
        Admission::Allowed,
        "a success clears the account"
    );
}

pub async fn an_address_spraying_many_accounts_is_refused<L: FailureLimiter>(
    limiter: &L,
    clock: &Clock,
) {
    let sprayer: IpAddr = "203.0.113.5".parse().unwrap();
    let bystander: IpAddr = "198.51.100.1".parse().unwrap();
    for index in 0..5 {
        fail(limiter, &format!("user{index}"), Some(sprayer)).await;
    }
    assert!(matches!(
        admit(limiter, "fresh", Some(sprayer)).await,
        Admission::Locked { .. }
    ));
    assert_eq!(
        admit(limiter, "fresh", Some(bystander)).await,
        Admission::Allowed
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        admit(limiter, "fresh", Some(sprayer)).await,
        Admission::Allowed,
        "the window passed"
    );
}

pub async fn attempts_in_flight_count_against_the_thresholds<L: FailureLimiter>(
    limiter: &L,
    clock: &Clock,
) {
    let busy = Admission::Busy;
    // A burst of guesses on one account: only the threshold's worth
    // get checked.
    for _ in 0..3 {
        assert_eq!(admit(limiter, "alice", None).await, Admission::Allowed);
    }
    assert_eq!(admit(limiter, "alice", None).await, busy);
    for _ in 0..3 {
        fail(limiter, "alice", None).await;
    }
    assert_eq!(
        admit(limiter, "alice", None).await,
        Admission::Locked {
            retry_after: Duration::from_secs(10)
        }
    );

    // An undecided check frees its place; one nobody reports on frees
    // it after a minute.
    assert_eq!(admit(limiter, "bob", None).await, Admission::Allowed);
    limiter
        .record("bob", None, Attempt::Undecided)
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(admit(limiter, "bob", None).await, Admission::Allowed);
    }
    assert_eq!(admit(limiter, "bob", None).await, busy);
    clock.advance(Duration::from_secs(60));
    assert_eq!(admit(limiter, "bob", None).await, Admission::Allowed);

    // The same per address, across accounts.
    let sprayer: IpAddr = "203.0.113.9".parse().unwrap();
    for index in 0..5 {
        assert_eq!(
            limiter
                .admit(&format!("user{index}"), Some(sprayer))
                .await
                .unwrap(),
            Admission::Allowed
        );
    }
    assert_eq!(admit(limiter, "user9", Some(sprayer)).await, busy);
}

pub async fn a_success_clears_the_account_but_not_other_attempts_in_flight<L: FailureLimiter>(
    limiter: &L,
    _clock: &Clock,
) {
    for _ in 0..2 {
        admit(limiter, "alice", None).await;
    }
    fail(limiter, "alice", None).await;
    admit(limiter, "alice", None).await;
    limiter
        .record("alice", None, Attempt::Succeeded)
        .await
        .unwrap();
    // Failures cleared; one attempt still in flight.
    for _ in 0..2 {
        assert_eq!(admit(limiter, "alice", None).await, Admission::Allowed);
    }
    assert_eq!(admit(limiter, "alice", None).await, Admission::Busy);
}

/// 40 simultaneous checks of one account through `check_with_limits`,
/// each taking `check_time`, correct or wrong; how many checks ran and
/// how each ended.
async fn burst<L: FailureLimiter>(
    limiter: &L,
    account: &str,
    correct: bool,
) -> (usize, std::collections::BTreeMap<&'static str, usize>) {
    let checks = std::sync::atomic::AtomicUsize::new(0);
    let attempts = (0..40).map(|_| {
        wsgate::limit::check_with_limits(limiter, account, None, async {
            checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            if correct {
                Ok(())
            } else {
                Err(wsgate::Error::from(
                    wsgate::CredentialError::InvalidCredentials,
                ))
            }
        })
    });
    let mut outcomes = std::collections::BTreeMap::new();
    for outcome in futures_util::future::join_all(attempts).await {
        let name = match outcome {
            Ok(()) => "allowed",
            Err(error) if matches!(error.kind(), wsgate::ErrorKind::TooManyAttempts { .. }) => {
                "too many attempts"
            }
            Err(_) => "refused",
        };
        *outcomes.entry(name).or_insert(0) += 1;
    }
    (checks.into_inner(), outcomes)
}

/// Correct passwords are never refused while no failure is counted:
/// attempts beyond the ones in flight wait for their outcomes; wrong ones
/// still cost at most the threshold in checks before the lock.
pub async fn attempts_beyond_those_in_flight_wait_for_their_outcomes<L: FailureLimiter>(
    limiter: &L,
    _clock: &Clock,
) {
    let (checks, outcomes) = burst(limiter, "alice", true).await;
    assert_eq!(checks, 40);
    assert_eq!(outcomes, [("allowed", 40)].into_iter().collect());
    let (checks, outcomes) = burst(limiter, "mallory", false).await;
    assert_eq!(
        checks, 3,
        "the threshold's worth of wrong passwords is checked"
    );
    assert_eq!(
        outcomes,
        [("refused", 3), ("too many attempts", 37)]
            .into_iter()
            .collect()
    );
}
