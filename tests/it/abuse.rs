//! Abuse resistance over real sockets: lockout per account and per
//! address, and bounded password hashing.

use std::time::{Duration, Instant};

use crate::common::{ALICE_PASSWORD, Handshake, Outcome, basic, connect, serve, welcome};
use axum::Router;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsgate::Transport;
use wsgate::authenticate::BasicAuthenticator;
use wsgate::handshake::HandshakeLayer;
use wsgate::limit::{FailureLimiter, FailureLimits, InMemoryFailureLimiter, NoLimits};
use wsgate::password::{Argon2id, PasswordVerifier};
use wsgate::store::InMemoryCredentialStore;
use wsgate::wiring::Wiring;

const ORIGIN: &str = "http://app.test:8080";

async fn basic_server<H: wsgate::password::PasswordHasher>(
    limiter: impl FailureLimiter,
    passwords: PasswordVerifier<H>,
) -> std::net::SocketAddr {
    let users = InMemoryCredentialStore::new();
    for name in ["alice", "bob", "carol"] {
        let hash = passwords.hash(&ALICE_PASSWORD.into()).await.unwrap();
        users.insert(
            name,
            wsgate::store::StoredUser::new(name, hash).with_roles(["user"]),
        );
    }
    let gate = HandshakeLayer::builder(BasicAuthenticator::new(users, passwords))
        .transports([Transport::Basic])
        .allowed_origins([ORIGIN])
        .unwrap()
        .application_protocols(["chat.v1"])
        .unwrap()
        .failure_limiter(limiter)
        .wiring(&Wiring::default().trusted_proxies(["127.0.0.1".parse().unwrap()]))
        .build()
        .unwrap();
    serve(Router::new().route("/ws", get(welcome)).route_layer(gate)).await
}

fn attempt(user: &str, password: &str) -> Handshake {
    Handshake::to("/ws")
        .origin(ORIGIN)
        .header("authorization", basic(user, password))
}

fn cheap_passwords() -> PasswordVerifier {
    PasswordVerifier::with_hasher(Argon2id::new(256, 1, 1).unwrap()).unwrap()
}

#[tokio::test]
async fn a_locked_account_gets_429_even_with_the_right_password() {
    let limiter = InMemoryFailureLimiter::with_limits(
        FailureLimits::default()
            .account_threshold(3)
            .unwrap()
            .lockout(Duration::from_secs(30), Duration::from_secs(3_600)),
    );
    let addr = basic_server(limiter, cheap_passwords()).await;
    for _ in 0..3 {
        assert_eq!(
            connect(addr, &attempt("alice", "wrong")).await.status(),
            401
        );
    }
    let locked = connect(addr, &attempt("alice", ALICE_PASSWORD)).await;
    assert_eq!(
        locked.refusal("the locked account's right password"),
        (429, Some("30".to_owned()), "too many attempts".to_owned())
    );
    // The lock is per account: bob is fine.
    assert_eq!(
        connect(addr, &attempt("bob", ALICE_PASSWORD))
            .await
            .status(),
        101
    );
}

#[tokio::test]
async fn spraying_many_accounts_from_one_address_gets_429() {
    let limiter = InMemoryFailureLimiter::with_limits(
        FailureLimits::default()
            .account_threshold(100)
            .unwrap()
            .address_threshold(4)
            .unwrap(),
    );
    let addr = basic_server(limiter, cheap_passwords()).await;
    for user in ["alice", "bob", "carol", "dave"] {
        assert_eq!(
            connect(addr, &attempt(user, "guess-1")).await.status(),
            401,
            "{user}"
        );
    }
    let outcome = connect(addr, &attempt("carol", ALICE_PASSWORD)).await;
    assert_eq!(outcome.status(), 429);
}

/// Sends numbered messages and waits for each echo until `stop`; returns
/// how many round trips it made and the slowest one.
async fn echo_until(
    mut client: Client,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (usize, Duration) {
    let (mut round_trips, mut slowest) = (0, Duration::ZERO);
    while !*stop.borrow() {
        let started = Instant::now();
        let text = format!("ping {round_trips}");
        client
            .send(Message::Text(text.clone().into()))
            .await
            .unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match client.next().await {
                    Some(Ok(Message::Text(echo))) => break echo.to_string(),
                    Some(Ok(_)) => continue,
                    other => panic!("the echo socket ended: {other:?}"),
                }
            }
        })
        .await
        .expect("an echo took over 2 s: the runtime is not responsive");
        assert_eq!(echo, text);
        round_trips += 1;
        slowest = slowest.max(started.elapsed());
    }
    (round_trips, slowest)
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a socket as alice and reads the welcome.
async fn echo_socket(addr: std::net::SocketAddr) -> Client {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", ORIGIN.parse().unwrap());
    request.headers_mut().insert(
        "authorization",
        basic("alice", ALICE_PASSWORD).parse().unwrap(),
    );
    let (mut client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    client.next().await.unwrap().unwrap();
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hashing_queue_answers_503_at_once() {
    let passwords = PasswordVerifier::with_hasher(Argon2id::default())
        .unwrap()
        .max_concurrency(1)
        .unwrap()
        .max_queue(2);
    let addr = basic_server(NoLimits, passwords).await;
    let attempts: Vec<_> = (0..30)
        .map(|index| {
            let handshake = attempt(&format!("user{index}"), "wrong-but-hashed");
            tokio::spawn(async move { connect(addr, &handshake).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        let outcome = tokio::time::timeout(Duration::from_secs(30), attempt)
            .await
            .expect("a handshake hung")
            .unwrap();
        if let Outcome::Refused {
            status: 503,
            retry_after,
            body,
            ..
        } = &outcome
        {
            assert_eq!(retry_after.as_deref(), Some("1"));
            assert_eq!(body, "server busy");
        }
        statuses.push(outcome.status());
    }
    assert!(
        statuses
            .iter()
            .all(|status| *status == 401 || *status == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "the excess is refused: {statuses:?}"
    );
    assert!(statuses.contains(&401), "some are served: {statuses:?}");
}

/// 100 wrong-password handshakes at once; how many ended with each status.
async fn storm(
    addr: std::net::SocketAddr,
    attempt: impl Fn(usize) -> Handshake,
) -> std::collections::BTreeMap<u16, usize> {
    let attempts: Vec<_> = (0..100)
        .map(|index| {
            let handshake = attempt(index);
            tokio::spawn(async move { connect(addr, &handshake).await })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for attempt in attempts {
        let outcome = tokio::time::timeout(Duration::from_secs(60), attempt)
            .await
            .expect("a handshake hung")
            .unwrap();
        if let Outcome::Refused {
            status: 503 | 429,
            retry_after,
            ..
        } = &outcome
        {
            assert!(retry_after.is_some(), "503 and 429 say when to retry");
        }
        *statuses.entry(outcome.status()).or_insert(0) += 1;
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_of_100_wrong_passwords_get_503_or_429_for_the_excess_while_sockets_echo() {
    // Production settings: argon2id at its default cost, hashing bounded
    // by the CPU count and a queue of 64, the default lockout (5 failures
    // an account, 50 an address).
    let passwords = PasswordVerifier::with_hasher(Argon2id::default()).unwrap();
    let addr = basic_server(InMemoryFailureLimiter::new(), passwords).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut echoes = Vec::new();
    for _ in 0..4 {
        let client = echo_socket(addr).await;
        echoes.push(tokio::spawn(echo_until(client, stopped.clone())));
    }
    let started = Instant::now();

    // A botnet: 100 accounts from 100 addresses, so no lockout applies;
    // the hashing bound takes what it can and refuses the rest at once.
    let botnet = storm(addr, |index| {
        attempt(&format!("user{index}"), "wrong-guess")
            .header("x-forwarded-for", format!("198.18.0.{index}"))
    })
    .await;
    let queue = std::thread::available_parallelism().unwrap().get() + 64;
    assert_eq!(
        botnet.keys().copied().collect::<Vec<_>>(),
        [401, 503],
        "{botnet:?}"
    );
    assert!(botnet[&401] >= queue, "{botnet:?}");

    // One address guessing 4 accounts: attempts in flight count against
    // the lockout, so exactly 5 guesses an account are checked.
    let guesser = storm(addr, |index| {
        attempt(
            ["alice", "bob", "carol", "mallory"][index % 4],
            "wrong-guess",
        )
    })
    .await;
    assert_eq!(guesser, [(401, 20), (429, 80)].into_iter().collect());

    let storms = started.elapsed();
    stop.send(true).unwrap();
    for echo in echoes {
        let (round_trips, slowest) = echo.await.unwrap();
        eprintln!(
            "storms {storms:?}: {round_trips} round trips, slowest {slowest:?}; {botnet:?} {guesser:?}"
        );
        assert!(
            round_trips > 0,
            "a socket made no round trip during the storms"
        );
    }
}

/// 40 simultaneous handshakes with alice's right password, the default
/// lockout (5 an account): attempts beyond the 5 in flight wait for their
/// outcomes instead of getting 429, so every one is let in; 40 wrong ones
/// cost 5 checks, then 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_correct_passwords_all_get_in_and_wrong_ones_stop_at_the_threshold() {
    let verifies = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hasher = crate::common::CountingHasher {
        inner: Argon2id::new(256, 1, 1).unwrap(),
        verifies: verifies.clone(),
    };
    let passwords = PasswordVerifier::with_hasher(hasher).unwrap();
    let addr = basic_server(InMemoryFailureLimiter::new(), passwords).await;
    let burst = |password: &'static str| async move {
        let attempts: Vec<_> = (0..40)
            .map(|_| tokio::spawn(async move { connect(addr, &attempt("alice", password)).await }))
            .collect();
        let mut statuses = std::collections::BTreeMap::new();
        for attempt in attempts {
            *statuses.entry(attempt.await.unwrap().status()).or_insert(0) += 1;
        }
        statuses
    };
    assert_eq!(
        burst(ALICE_PASSWORD).await,
        [(101, 40)].into_iter().collect(),
        "a right password refused"
    );
    let checked = verifies.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        burst("wrong-guess").await,
        [(401, 5), (429, 35)].into_iter().collect()
    );
    assert_eq!(
        verifies.load(std::sync::atomic::Ordering::SeqCst) - checked,
        5,
        "wrong passwords checked past the threshold"
    );
}

async fn secure_only_server(
    keys: &crate::common::Keys,
    trusted: &[std::net::IpAddr],
    mark_tls: bool,
) -> std::net::SocketAddr {
    use wsgate::authenticate::BearerAuthenticator;
    use wsgate::handshake::SecureTransport;
    let gate = HandshakeLayer::builder(BearerAuthenticator::new(keys.verifier()))
        .transports([Transport::Bearer])
        .require_secure_transport(true)
        .wiring(&Wiring::default().trusted_proxies(trusted.iter().copied()))
        .build()
        .unwrap();
    let router = Router::new().route("/ws", get(welcome)).route_layer(gate);
    // What a TLS acceptor does for every request of a TLS connection.
    let router = if mark_tls {
        router.layer(axum::middleware::map_request(
            |mut request: axum::extract::Request| async move {
                request.extensions_mut().insert(SecureTransport);
                request
            },
        ))
    } else {
        router
    };
    serve(router).await
}

#[tokio::test]
async fn plain_handshakes_are_refused_where_a_secure_transport_is_required() {
    let keys = crate::common::Keys::load();
    let token = keys.token("alice");
    let handshake = Handshake::to("/ws").bearer(&token);
    let https = handshake.clone().header("x-forwarded-proto", "https");

    let direct = secure_only_server(&keys, &[], false).await;
    match connect(direct, &handshake).await {
        Outcome::Refused { status, body, .. } => {
            assert_eq!((status, body.as_str()), (403, "secure transport required"));
        }
        accepted => panic!("plain ws:// accepted: {accepted:?}"),
    }
    assert_eq!(
        connect(direct, &https).await.status(),
        403,
        "the header counts only from a trusted proxy"
    );

    let proxied = secure_only_server(&keys, &["127.0.0.1".parse().unwrap()], false).await;
    assert_eq!(connect(proxied, &https).await.status(), 101);
    assert_eq!(connect(proxied, &handshake).await.status(), 403);

    let tls = secure_only_server(&keys, &[], true).await;
    assert_eq!(connect(tls, &handshake).await.status(), 101);
}
