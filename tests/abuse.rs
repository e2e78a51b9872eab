//! Abuse resistance over real sockets: lockout per account and per
//! address, and bounded password hashing.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::{ALICE_PASSWORD, Handshake, Outcome, basic, connect, serve, welcome};
use wsgate::Transport;
use wsgate::authenticate::BasicAuthenticator;
use wsgate::handshake::HandshakeLayer;
use wsgate::limit::InMemoryFailureLimiter;
use wsgate::password::{Argon2id, PasswordVerifier};
use wsgate::store::InMemoryCredentialStore;

const ORIGIN: &str = "http://app.test:8080";

async fn basic_server(
    limiter: InMemoryFailureLimiter,
    passwords: PasswordVerifier,
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
    let limiter = InMemoryFailureLimiter::builder()
        .account_threshold(3)
        .unwrap()
        .lockout(Duration::from_secs(30), Duration::from_secs(3_600))
        .build();
    let addr = basic_server(limiter, cheap_passwords()).await;
    for _ in 0..3 {
        assert_eq!(
            connect(addr, &attempt("alice", "wrong")).await.status(),
            401
        );
    }
    match connect(addr, &attempt("alice", ALICE_PASSWORD)).await {
        Outcome::Refused {
            status,
            retry_after,
            body,
            ..
        } => {
            assert_eq!(status, 429);
            assert_eq!(retry_after.as_deref(), Some("30"));
            assert_eq!(body, "too many attempts");
        }
        accepted => panic!("locked account accepted: {accepted:?}"),
    }
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
    let limiter = InMemoryFailureLimiter::builder()
        .account_threshold(100)
        .unwrap()
        .address_threshold(4)
        .unwrap()
        .build();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hashing_storm_gets_503_for_the_excess_not_a_hang() {
    let passwords = PasswordVerifier::with_hasher(Argon2id::default())
        .unwrap()
        .max_concurrency(1)
        .unwrap()
        .max_queue(2);
    let addr = basic_server(InMemoryFailureLimiter::new(), passwords).await;
    let attempts: Vec<_> = (0..30)
        .map(|index| {
            let handshake = attempt(["alice", "bob", "carol"][index % 3], "wrong-but-hashed");
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
            ..
        } = &outcome
        {
            assert_eq!(retry_after.as_deref(), Some("1"));
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

async fn secure_only_server(
    keys: &common::Keys,
    trusted: &[std::net::IpAddr],
    mark_tls: bool,
) -> std::net::SocketAddr {
    use wsgate::authenticate::BearerAuthenticator;
    use wsgate::handshake::SecureTransport;
    let gate = HandshakeLayer::builder(BearerAuthenticator::new(keys.verifier()))
        .transports([Transport::Bearer])
        .require_secure_transport(true)
        .trusted_proxies(trusted.iter().copied())
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
    let keys = common::Keys::load();
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
