//! Two application instances sharing one real Redis (`redis-server`,
//! started by the tests): revocations across processes with none lost
//! through reconnects, restarts and stalled links; tickets redeemed once
//! across both; the staleness bound. The fault cases run as a catalogue
//! with exact outcomes.

use std::time::{Duration, Instant};

use crate::common::redis::{Instance, Proxy, RedisServer, SOCKET_LEASE, STALENESS};
use crate::common::{Handshake, Keys, Outcome, connect};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use wsgate::Secret;
use wsgate::accounts::Accounts;
use wsgate::authenticate::BasicAuthenticator;
use wsgate::password::{Argon2id, PasswordPolicy, PasswordVerifier};
use wsgate::redis::RedisStores;
use wsgate::sql::SqlCredentialStore;
use wsgate::store::{AtSocketLimit, Revocation};

type Client = crate::common::Client;

/// Whether the socket is still open and echoing.
async fn still_open(client: &mut Client) -> bool {
    use futures_util::SinkExt as _;
    if client.send(Message::text("ping?")).await.is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(Duration::from_secs(2), client.next()).await,
        Ok(Some(Ok(Message::Text(_))))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_instance_closes_the_other_instances_sockets() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let keys = Keys::load();
    let a = Instance::start(&redis.url(), &keys).await;
    let b = Instance::start(&redis.url(), &keys).await;
    let token = keys.token("alice");
    let mut on_b = b.open(&token).await;
    let mut bystander = b.open(&keys.token("bob")).await;

    let started = Instant::now();
    let closed_on_a = a
        .gate
        .registry()
        .revoke(Revocation::subject("alice", std::time::SystemTime::now()))
        .await
        .unwrap();
    assert_eq!(
        closed_on_a, 0,
        "{{\"closed\"}} counts the serving instance's sockets"
    );
    assert_eq!(
        crate::common::close_within(&mut on_b, Duration::from_secs(1)).await,
        (4403, "token revoked".to_owned())
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(b.status(&token).await, 401);
    assert_eq!(a.status(&token).await, 401);
    assert!(
        still_open(&mut bystander).await,
        "a socket no revocation matches stays open"
    );
}

/// A process that starts while its link to Redis is stalled holds an empty
/// copy of the revocations: until its first resync it refuses with 503
/// rather than let in a token revoked before it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_refuses_until_its_first_resync() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let keys = Keys::load();
    let a = Instance::start(&redis.url(), &keys).await;
    a.gate
        .registry()
        .revoke(Revocation::token("jti-erin"))
        .await
        .unwrap();
    let token = keys.token("erin");

    let proxy = Proxy::start(redis.port, "127.0.0.4").await;
    proxy.stall(true);
    let started = Instant::now();
    let b = Instance::start_unsynced(&proxy.url(), &keys).await;
    // Well inside the staleness bound, where the copy used to answer.
    for _ in 0..5 {
        assert_eq!(
            b.status(&token).await,
            503,
            "a token revoked before the start"
        );
        assert_eq!(
            b.status(&keys.token("frank")).await,
            503,
            "a token nobody revoked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() < STALENESS);

    proxy.stall(false);
    b.wait_current().await;
    assert_eq!(b.status(&token).await, 401);
    assert_eq!(b.status(&keys.token("frank")).await, 101);
}

/// A revocation whose script ran in Redis but whose reply was lost (a
/// command timeout): `revoke` fails, and the revoking process's own socket
/// still closes, from its tail of the stream, as every other process's do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_reply_is_lost_still_closes_the_revoking_process_sockets() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let keys = Keys::load();
    let proxy = Proxy::start(redis.port, "127.0.0.5").await;
    let a = Instance::start(&proxy.url(), &keys).await;
    let b = Instance::start(&redis.url(), &keys).await;
    // One revocation first, so the script is loaded: the lost reply is
    // then the one of the call that runs it.
    a.gate
        .registry()
        .revoke(Revocation::token("jti-nobody"))
        .await
        .unwrap();
    let token = keys.token("grace");
    let mut on_a = a.open(&token).await;
    let mut on_b = b.open(&token).await;
    proxy.lose_next_script_reply();
    let revoked = a
        .gate
        .registry()
        .revoke(Revocation::token("jti-grace"))
        .await;
    assert!(revoked.is_err(), "the reply was lost, yet revoke succeeded");
    for (name, socket) in [("B's", &mut on_b), ("A's own", &mut on_a)] {
        assert_eq!(
            crate::common::close_within(socket, Duration::from_secs(3)).await,
            (4403, "token revoked".to_owned()),
            "{name} socket"
        );
    }
    assert_eq!(a.status(&token).await, 401);
}

/// The link to Redis dropped (`CLIENT KILL`) or Redis restarted: the
/// first request of each kind made a second after Redis answers again
/// succeeds (a ticket issued, a ticket handshake, a login, a Basic
/// handshake), with no 503 for a connection that was lost while nobody
/// used it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_dropped_link_the_first_request_of_each_kind_succeeds() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let keys = Keys::load();
    // The instance's links leave from 127.0.0.6, so `CLIENT KILL` finds them.
    let proxy = Proxy::start(redis.port, "127.0.0.6").await;
    let users = wsgate::store::InMemoryCredentialStore::new();
    let passwords = PasswordVerifier::with_hasher(Argon2id::new(256, 1, 1).unwrap()).unwrap();
    let hash = passwords
        .hash(&Secret::new(crate::common::ALICE_PASSWORD))
        .await
        .unwrap();
    users.insert(
        "alice",
        wsgate::store::StoredUser::new("alice", hash).with_roles(["user"]),
    );
    let a = Instance::start_with_users(
        &proxy.url(),
        &keys,
        BasicAuthenticator::new(users, passwords),
    )
    .await;
    let login = || {
        wsgate::limit::check_with_limits(&a.limiter, "alice", None, async {
            Ok::<_, wsgate::Error>(())
        })
    };
    let ticket_handshake = |ticket: String| async move {
        connect(a.addr, &Handshake::to(format!("/ws?ticket={ticket}")))
            .await
            .status()
    };
    // Every kind once first, so each connection is in use before.
    let ticket = a.ticket("alice").await.unwrap();
    assert_eq!(ticket_handshake(ticket).await, 101);
    login().await.unwrap();
    assert_eq!(a.basic("alice", crate::common::ALICE_PASSWORD).await, 101);

    // A quiet second once Redis answers again (the tail's own link is
    // back), as the requests of a quiet process come.
    async fn settle(a: &Instance) {
        a.wait_current().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for round in 0..2 {
        assert!(redis.kill_clients_from("127.0.0.6").await >= 1);
        settle(&a).await;
        let ticket = a.ticket("alice").await;
        assert!(
            ticket.is_ok(),
            "round {round}: the first ticket: {ticket:?}"
        );
        assert!(redis.kill_clients_from("127.0.0.6").await >= 1);
        settle(&a).await;
        assert_eq!(
            ticket_handshake(ticket.unwrap()).await,
            101,
            "round {round}: the first ticket handshake"
        );
        redis.restart().await;
        settle(&a).await;
        let logged_in = login().await;
        assert!(
            logged_in.is_ok(),
            "round {round}: the first login: {logged_in:?}"
        );
        redis.restart().await;
        settle(&a).await;
        assert_eq!(
            a.basic("alice", crate::common::ALICE_PASSWORD).await,
            101,
            "round {round}: the first Basic handshake"
        );
    }
}

/// Two instances over one Redis and one SQLite file, as two processes of
/// one application: a password change and a disabled account made on A
/// reach B's live sockets and B's handshakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_change_on_one_instance_reaches_the_others_sockets() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "wsgate-accounts-{}",
        crate::common::servers::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let database = format!("sqlite://{}", dir.join("accounts.db").display());
    // A cheap hash keeps the test quick; the cost is not what it checks.
    let passwords = PasswordVerifier::with_hasher(Argon2id::new(256, 1, 1).unwrap()).unwrap();
    let keys = Keys::load();
    let mut instances = Vec::new();
    for _ in 0..2 {
        // Each instance connects to the database on its own.
        let users = SqlCredentialStore::connect(&database).await.unwrap();
        let instance = Instance::start_with_users(
            &redis.url(),
            &keys,
            BasicAuthenticator::new(users.clone(), passwords.clone()),
        )
        .await;
        instances.push((instance, users));
    }
    let (a, a_users) = &instances[0];
    let (b, _) = &instances[1];
    let accounts = Accounts::new(
        a_users.clone(),
        passwords.clone(),
        PasswordPolicy::default(),
        a.gate.registry().clone(),
    );
    let (first, second) = ("violet-Harbour-47-tundra", "amber-Quarry-81-glacier");
    accounts
        .create("carol", &Secret::new(first), vec!["user".into()])
        .await
        .unwrap();
    assert_eq!(
        b.basic("carol", first).await,
        101,
        "B reads A's new account"
    );

    let token = keys.token("carol");
    let mut on_b = b.open(&token).await;
    let started = Instant::now();
    let closed_on_a = accounts
        .change_password("carol", &Secret::new(second))
        .await
        .unwrap();
    assert_eq!(closed_on_a, 0, "A held none of carol's sockets");
    assert_eq!(
        crate::common::close_within(&mut on_b, Duration::from_secs(1)).await,
        (4403, "token revoked".to_owned()),
        "A's password change closes B's socket"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(b.status(&token).await, 401, "B refuses the earlier token");
    assert_eq!(
        b.basic("carol", first).await,
        401,
        "the old password fails on B"
    );
    assert_eq!(
        b.basic("carol", second).await,
        101,
        "the new one works on B"
    );

    let mut on_b = b.open_basic("carol", second).await;
    accounts.disable("carol").await.unwrap();
    // Other processes learn of the revocation, not of its cause: their
    // sockets close with the revocation's phrase.
    assert_eq!(
        crate::common::close_within(&mut on_b, Duration::from_secs(1)).await,
        (4403, "token revoked".to_owned()),
        "A's disable closes B's socket"
    );
    assert_eq!(
        b.basic("carol", second).await,
        403,
        "B refuses the disabled account"
    );
    accounts.enable("carol").await.unwrap();
    assert_eq!(
        b.basic("carol", second).await,
        101,
        "and takes it again once enabled"
    );
    drop(instances);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_from_one_instance_is_redeemed_once_on_either() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let keys = Keys::load();
    let a = Instance::start(&redis.url(), &keys).await;
    let b = Instance::start(&redis.url(), &keys).await;
    let ticket = a.ticket("alice").await.unwrap();
    let path = format!("/ws?ticket={ticket}");
    assert_eq!(
        connect(b.addr, &Handshake::to(path.clone())).await.status(),
        101
    );
    assert_eq!(
        connect(a.addr, &Handshake::to(path.clone())).await.status(),
        401
    );
    assert_eq!(connect(b.addr, &Handshake::to(path)).await.status(), 401);

    // Sixteen racing redemptions of one ticket, across both instances.
    for round in 0..3 {
        let ticket = a.ticket("alice").await.unwrap();
        let path = format!("/ws?ticket={ticket}");
        let attempts = (0..16).map(|n| {
            let addr = if n % 2 == 0 { a.addr } else { b.addr };
            let handshake = Handshake::to(path.clone());
            async move { connect(addr, &handshake).await.status() }
        });
        let statuses = futures_util::future::join_all(attempts).await;
        assert_eq!(
            statuses.iter().filter(|status| **status == 101).count(),
            1,
            "round {round}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|status| **status == 401).count(),
            15,
            "round {round}: {statuses:?}"
        );
    }
}

/// A fault injected into one instance's link to Redis, and what must come
/// of it.
struct Fault {
    name: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_catalogue() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let keys = Keys::load();
    let mut failures = Vec::new();
    let mut record = |name: &str, ok: bool, detail: String| {
        if !ok {
            failures.push(format!("{name}: {detail}"));
        }
    };

    // B reaches Redis through a proxy whose links leave from 127.0.0.3.
    let proxy = Proxy::start(redis.port, "127.0.0.3").await;
    let a = Instance::start(&redis.url(), &keys).await;
    let b = Instance::start(&proxy.url(), &keys).await;

    // 1. B's connections killed (CLIENT KILL); a revocation made meanwhile
    //    on A reaches B's sockets once B is back.
    let case = Fault {
        name: "B's connections killed, revocation made meanwhile",
    };
    let token = keys.token("carol");
    let mut socket = b.open(&token).await;
    proxy.stall(true);
    let killed = redis.kill_clients_from("127.0.0.3").await;
    a.gate
        .registry()
        .revoke(Revocation::token("jti-carol"))
        .await
        .unwrap();
    proxy.stall(false);
    let outcome = crate::common::close_within(&mut socket, Duration::from_secs(5)).await;
    record(
        case.name,
        killed >= 1 && outcome == (4403, "token revoked".to_owned()),
        format!("killed {killed}, socket {outcome:?}"),
    );
    record(
        case.name,
        b.status(&token).await == 401,
        "B still accepts the token".into(),
    );

    // 2. Redis restarted (empty, new run id) while B was cut off: A writes
    //    its revocations back, and B's resync closes what must close.
    let case = Fault {
        name: "Redis restarted while a revocation was in flight to B",
    };
    b.wait_current().await;
    let token = keys.token("dave");
    let mut socket = b.open(&token).await;
    proxy.stall(true);
    a.gate
        .registry()
        .revoke(Revocation::token("jti-dave"))
        .await
        .unwrap();
    redis.restart().await;
    proxy.stall(false);
    let outcome = crate::common::close_within(&mut socket, Duration::from_secs(6)).await;
    record(
        case.name,
        outcome == (4403, "token revoked".to_owned()),
        format!("socket {outcome:?}"),
    );
    b.wait_current().await;
    record(
        case.name,
        b.status(&token).await == 401,
        "B still accepts the token".into(),
    );
    let earlier = keys.token("carol");
    record(
        case.name,
        b.status(&earlier).await == 401,
        "the revocation from before the restart was lost".into(),
    );

    // 3. A link that stalls without closing: noticed by the heartbeat,
    //    sockets closed 1011 within the staleness bound, handshakes 503;
    //    recovered when the link moves again.
    let case = Fault {
        name: "B's link stalls without closing",
    };
    b.wait_current().await;
    let mut socket = b.open(&keys.token("erin")).await;
    let stalled_at = Instant::now();
    proxy.stall(true);
    let outcome =
        crate::common::close_within(&mut socket, STALENESS + Duration::from_secs(3)).await;
    let took = stalled_at.elapsed();
    record(
        case.name,
        outcome == (1011, "backend unavailable".to_owned())
            && took <= STALENESS + Duration::from_secs(2),
        format!("socket {outcome:?} after {took:?}"),
    );
    let refused = connect(b.addr, &Handshake::to("/ws").bearer(&keys.token("erin"))).await;
    record(
        case.name,
        matches!(
            &refused,
            Outcome::Refused {
                status: 503,
                retry_after: Some(_),
                ..
            }
        ),
        format!("handshake {refused:?}"),
    );
    proxy.stall(false);
    b.wait_current().await;
    record(
        case.name,
        b.status(&keys.token("erin")).await == 101,
        "no recovery".into(),
    );

    // 4. The stream trimmed past B's position while B stayed connected:
    //    B sees the gap in the numbering and resynchronises.
    let case = Fault {
        name: "stream trimmed past B's position",
    };
    b.wait_current().await;
    let mut sockets = Vec::new();
    for n in 0..10 {
        sockets.push(b.open(&keys.token(&format!("t{n}"))).await);
    }
    // Shorter than the heartbeat: B's link is slow, not lost.
    proxy.stall(true);
    for n in 0..10 {
        a.gate
            .registry()
            .revoke(Revocation::token(format!("jti-t{n}")))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.stall(false);
    for (n, socket) in sockets.iter_mut().enumerate() {
        let outcome = crate::common::close_within(socket, Duration::from_secs(3)).await;
        record(
            case.name,
            outcome == (4403, "token revoked".to_owned()),
            format!("socket t{n}: {outcome:?}"),
        );
    }

    // 5. Redis stopped: revoking and issuing tickets fail (503 at the
    //    routes), live sockets close 1011 after the bound, handshakes 503;
    //    all back when Redis returns.
    let case = Fault {
        name: "Redis stopped",
    };
    a.wait_current().await;
    let mut socket = a.open(&keys.token("frank")).await;
    redis.stop().await;
    let revoke = a.gate.registry().revoke(Revocation::token("jti-x")).await;
    record(
        case.name,
        revoke.is_err(),
        "revoke succeeded without Redis".into(),
    );
    let ticket = a.ticket("frank").await;
    record(
        case.name,
        ticket.is_err(),
        "a ticket was issued without Redis".into(),
    );
    let outcome =
        crate::common::close_within(&mut socket, STALENESS + Duration::from_secs(3)).await;
    record(
        case.name,
        outcome == (1011, "backend unavailable".to_owned()),
        format!("socket {outcome:?}"),
    );
    record(
        case.name,
        a.status(&keys.token("frank")).await == 503,
        "handshake not 503".into(),
    );
    redis.restart().await;
    a.wait_current().await;
    record(
        case.name,
        a.status(&keys.token("frank")).await == 101,
        "no recovery".into(),
    );
    record(
        case.name,
        a.ticket("frank").await.is_ok(),
        "no ticket after recovery".into(),
    );

    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_limiter_keeps_every_rule_of_the_in_memory_one() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let url = redis.url();
    let round = std::sync::atomic::AtomicUsize::new(0);
    crate::common::limiter_cases::run_all(|clock| {
        // A prefix per case: each starts from nothing.
        let prefix = format!(
            "case{}",
            round.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let stores = RedisStores::builder(url.clone())
            .prefix(prefix)
            .build()
            .unwrap();
        async move { stores.failure_limiter(crate::common::limiter_cases::limits(&clock)) }
    })
    .await;
}

/// The ACL that SECURITY.md gives wsgate's Redis user, read from there and
/// set up as written, is enough for every store: tickets, socket leases
/// (their scripts read Redis's clock), DPoP proofs, the failure limiter, revocations
/// (stream, tail and resync) and the evictions published to the other
/// instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_in_security_md_is_enough_for_every_store() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let security = include_str!("../../SECURITY.md");
    let command = security
        .split("```text\n")
        .find_map(|block| block.strip_prefix("  ACL SETUSER "))
        .and_then(|block| block.split("```").next())
        .expect("SECURITY.md gives the ACL")
        .replace('\\', " ");
    let mut setuser = redis::cmd("ACL");
    setuser.arg("SETUSER");
    for word in command.split_whitespace() {
        setuser.arg(word.replace(">long-random-password", ">acl-test-password"));
    }
    let mut admin = redis.connection().await;
    let _: () = setuser.query_async(&mut admin).await.unwrap();
    let url = redis
        .url()
        .replace("redis://", "redis://wsgate:acl-test-password@");

    let stores = RedisStores::builder(url.clone())
        .socket_lease(SOCKET_LEASE)
        .build()
        .unwrap();
    crate::common::ticket_limit_cases(stores.tickets()).await;
    crate::common::socket_lease_cases(stores.socket_leases()).await;
    let proof = wsgate::store::ProofId::of("key", "jti");
    let replays = stores.proof_replays();
    let window = Duration::from_secs(65);
    assert!(
        wsgate::store::ProofReplayStore::first_use(&replays, proof, window)
            .await
            .unwrap()
    );
    let clock = crate::common::limiter_cases::clock();
    let limiter = stores.failure_limiter(crate::common::limiter_cases::limits(&clock));
    crate::common::limiter_cases::accounts_lock_with_growing_back_off(&limiter, &clock).await;

    let keys = Keys::load();
    let evict = AtSocketLimit::CloseOldest;
    let long = Duration::from_secs(30);
    let a = Instance::start_with_socket_limit(&url, &keys, 1, evict, long).await;
    let b = Instance::start_with_socket_limit(&url, &keys, 1, evict, long).await;
    let token = keys.token("erin");
    let mut on_a = a.open(&token).await;
    let _on_b = b.open(&token).await;
    assert_eq!(
        crate::common::close_within(&mut on_a, Duration::from_secs(3)).await,
        (4403, "too many connections".to_owned()),
        "the eviction reached the other instance"
    );
    a.gate
        .registry()
        .revoke(Revocation::subject("erin", std::time::SystemTime::now()))
        .await
        .unwrap();
    assert_eq!(b.status(&token).await, 401, "the revocation reached b");
}

/// A DPoP proof used on one process is a replay on another; another
/// key's proof with the same `jti` is not; after its window a proof's id
/// is forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_is_accepted_once_across_processes() {
    use wsgate::store::{ProofId, ProofReplayStore};
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = RedisStores::builder(redis.url())
        .build()
        .unwrap()
        .proof_replays();
    let b = RedisStores::builder(redis.url())
        .build()
        .unwrap()
        .proof_replays();
    let window = Duration::from_millis(300);
    let proof = ProofId::of("key-1", "jti-1");
    assert!(a.first_use(proof, window).await.unwrap());
    assert!(!b.first_use(proof, window).await.unwrap(), "a replay on b");
    assert!(!a.first_use(proof, window).await.unwrap(), "and on a");
    let other_key = ProofId::of("key-2", "jti-1");
    assert!(b.first_use(other_key, window).await.unwrap());
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    assert!(
        b.first_use(proof, window).await.unwrap(),
        "forgotten after its window"
    );
    let at_once = futures_util::future::join_all(
        (0..20).map(|_| a.first_use(ProofId::of("key-3", "jti-3"), window)),
    )
    .await;
    let new = at_once
        .iter()
        .filter(|answer| matches!(answer, Ok(true)))
        .count();
    assert_eq!(new, 1, "of 20 racing uses, one is new");
}

/// Behind a load balancer two processes serve one URL: a proof accepted
/// by one is a replay on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_proof_replayed_on_another_process_is_refused() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let keys = Keys::load();
    let a = Instance::start(&redis.url(), &keys).await;
    let b = Instance::start(&redis.url(), &keys).await;
    let key = crate::common::dpop::ClientKey::es256();
    let mut claims = Keys::claims("alice");
    claims["cnf"] = serde_json::json!({"jkt": key.jkt()});
    let token = keys.sign_with(jsonwebtoken::Algorithm::HS256, &claims, |_| {});
    let proof = key.proof("ws://chat.example/ws", Some(&token));
    let handshake = Handshake::to("/ws")
        .header("host", "chat.example")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof.as_str());
    assert_eq!(connect(a.addr, &handshake).await.status(), 101);
    let (status, _, body) = connect(b.addr, &handshake).await.refusal("a replay on b");
    assert_eq!((status, body.as_str()), (401, "dpop replay"));
    let fresh = Handshake::to("/ws")
        .header("host", "chat.example")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", key.proof("ws://chat.example/ws", Some(&token)));
    assert_eq!(connect(b.addr, &fresh).await.status(), 101, "a fresh proof");
}

/// The socket lease store in Redis: the same cases as in memory; then a
/// lease Redis lost (its set deleted, as by a restart without
/// persistence) is taken again by its holder's renewal, and an expired
/// one stops counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_socket_lease_store_keeps_the_rules_of_the_in_memory_one() {
    use redis::AsyncCommands as _;
    use wsgate::store::{Acquired, AtSocketLimit, SocketLeaseStore};
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let stores = RedisStores::builder(redis.url())
        .socket_lease(SOCKET_LEASE)
        .build()
        .unwrap();
    crate::common::socket_lease_cases(stores.socket_leases()).await;

    let store = stores.socket_leases();
    let refuse = AtSocketLimit::RefuseNewest;
    assert_eq!(
        store.acquire("dave", "1", 1, refuse).await.unwrap(),
        Acquired::Taken
    );
    let mut connection = redis.connection().await;
    let _: () = connection.del("wsgate:sockets-of:dave").await.unwrap();
    assert_eq!(
        store.acquire("dave", "2", 1, refuse).await.unwrap(),
        Acquired::Taken,
        "a lost lease no longer counts"
    );
    store.release("dave", "2").await.unwrap();
    let lost = store
        .renew(vec![("dave".to_owned(), "1".to_owned())])
        .await
        .unwrap();
    assert!(lost.is_empty(), "a lease lost, not evicted, is kept");
    assert_eq!(
        store.acquire("dave", "3", 1, refuse).await.unwrap(),
        Acquired::Full,
        "the renewal took it again"
    );
    tokio::time::sleep(SOCKET_LEASE + Duration::from_millis(200)).await;
    assert_eq!(
        store.acquire("dave", "4", 1, refuse).await.unwrap(),
        Acquired::Taken,
        "a lease nobody renewed expired"
    );
}

/// The per-subject ticket limit, counted in Redis: the same cases as in
/// memory, then across two processes (a subject's tickets on A count on B).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_ticket_store_keeps_the_limit_per_subject_across_processes() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let stores = || RedisStores::builder(redis.url()).build().unwrap();
    crate::common::ticket_limit_cases(stores().tickets()).await;
    let limited = |store| wsgate::ticket::Tickets::new(store).max_per_subject(Some(2));
    let (a, b) = (limited(stores().tickets()), limited(stores().tickets()));
    let carol = wsgate::Principal::new("carol", wsgate::AuthMethod::Token);
    a.issue(&carol).await.unwrap();
    b.issue(&carol).await.unwrap();
    for tickets in [&a, &b] {
        assert!(matches!(
            tickets.issue(&carol).await.unwrap_err().kind(),
            wsgate::ErrorKind::TooManyTickets { .. }
        ));
    }
}

/// Sockets per subject across two instances: a limit of 2 counts the
/// sockets of both; one that closes frees its place on the other at once;
/// with `CloseOldest`, the oldest socket closes on whichever instance holds
/// it (within a renewal, a second here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subjects_sockets_are_counted_across_instances() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let keys = Keys::load();
    let refuse = AtSocketLimit::RefuseNewest;
    let a = Instance::start_with_socket_limit(&redis.url(), &keys, 2, refuse, SOCKET_LEASE).await;
    let b = Instance::start_with_socket_limit(&redis.url(), &keys, 2, refuse, SOCKET_LEASE).await;
    let token = keys.token("alice");
    let _on_a = a.open(&token).await;
    let on_b = b.open(&token).await;
    for (name, instance) in [("a", &a), ("b", &b)] {
        let third = connect(instance.addr, &Handshake::to("/ws").bearer(&token)).await;
        let (status, _, body) = third.refusal(&format!("a third socket on {name}"));
        assert_eq!((status, body.as_str()), (429, "too many connections"));
    }
    let ticket = a.ticket("alice").await.unwrap();
    let path = format!("/ws?ticket={ticket}");
    let spent = connect(b.addr, &Handshake::to(path.as_str())).await;
    assert_eq!(spent.status(), 429, "a ticket counts as any transport");
    assert_eq!(a.status(&keys.token("bob")).await, 101, "bob's own count");

    close_politely(on_b).await;
    assert_eq!(
        connect(b.addr, &Handshake::to(path.as_str()))
            .await
            .status(),
        401,
        "the ticket shown at the refused handshake was spent"
    );
    let _again = a.open(&token).await;

    // Leases of 30 s, renewed every 10 s: the oldest closes long before a
    // renewal, on the eviction's notice.
    let evict = AtSocketLimit::CloseOldest;
    let long = Duration::from_secs(30);
    let c = Instance::start_with_socket_limit(&redis.url(), &keys, 2, evict, long).await;
    let d = Instance::start_with_socket_limit(&redis.url(), &keys, 2, evict, long).await;
    let carol = keys.token("carol");
    let mut oldest = c.open(&carol).await;
    let mut second = d.open(&carol).await;
    let started = Instant::now();
    let mut newest = d.open(&carol).await;
    assert_eq!(
        crate::common::close_within(&mut oldest, Duration::from_secs(3)).await,
        (4403, "too many connections".to_owned()),
        "the oldest, on the other instance, closes on the eviction's notice"
    );
    let took = started.elapsed();
    assert!(still_open(&mut second).await && still_open(&mut newest).await);
    println!("the oldest socket, on another instance, closed after {took:?}");
}

/// A process that dies without giving its leases back: its subject's
/// sockets stop counting once the leases expire (3 s here, 30 s by
/// default), not before. The process is this test binary, started again
/// as a child that serves until it is killed (`SIGKILL`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_processes_sockets_stop_counting_when_their_leases_expire() {
    const HOLDER: &str = "WSGATE_TEST_LEASE_HOLDER";
    // Its name in the one test binary: the module, then the function.
    const NAME: &str = "redis::a_killed_processes_sockets_stop_counting_when_their_leases_expire";
    let mut keys = Keys::load();
    let refuse = AtSocketLimit::RefuseNewest;
    if let Ok(url) = std::env::var(HOLDER) {
        // The child: serve with the parent's key, say where, and wait to
        // be killed.
        let secret = std::env::var(format!("{HOLDER}_KEY")).unwrap();
        keys.hmac_secret = secret
            .bytes()
            .collect::<Vec<u8>>()
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect();
        let holder = Instance::start_with_socket_limit(&url, &keys, 2, refuse, SOCKET_LEASE).await;
        println!("holder listening on {}", holder.addr);
        std::future::pending::<()>().await;
    }
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let a = Instance::start_with_socket_limit(&redis.url(), &keys, 2, refuse, SOCKET_LEASE).await;
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(HOLDER, redis.url())
        .env(format!("{HOLDER}_KEY"), hex(&keys.hmac_secret))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let holder_addr: std::net::SocketAddr = tokio::time::timeout(Duration::from_secs(20), async {
        use tokio::io::AsyncBufReadExt as _;
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                lines.read_line(&mut line).await.unwrap() > 0,
                "the child ended"
            );
            // libtest's own `test … ...` may start the line.
            if let Some((_, addr)) = line.trim().split_once("holder listening on ") {
                return addr.parse().unwrap();
            }
        }
    })
    .await
    .expect("the child did not start");

    let token = keys.token("alice");
    let held = [
        crate::common::open_bearer(holder_addr, &token).await,
        crate::common::open_bearer(holder_addr, &token).await,
    ];
    assert_eq!(
        a.status(&token).await,
        429,
        "the child's sockets count here"
    );
    tokio::time::sleep(SOCKET_LEASE + Duration::from_secs(1)).await;
    assert_eq!(
        a.status(&token).await,
        429,
        "a live process renews its leases: they outlast the lease time"
    );
    child.kill().await.unwrap();
    let killed = Instant::now();
    drop(held);
    assert_eq!(
        a.status(&token).await,
        429,
        "a dead process's leases count until they expire"
    );
    loop {
        if a.status(&token).await == 101 {
            break;
        }
        assert!(
            killed.elapsed() < SOCKET_LEASE + Duration::from_secs(2),
            "the dead process's sockets still count"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "a killed process's sockets stopped counting after {:?}",
        killed.elapsed()
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Closes `client` as a polite client does, and waits for the server's
/// answer.
async fn close_politely(mut client: Client) {
    client.close(None).await.unwrap();
    while let Some(Ok(_)) = client.next().await {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_counts_failures_on_every_instance() {
    use wsgate::limit::{Admission, Attempt, FailureLimiter, FailureLimits};
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let limiter = |url: String| {
        RedisStores::builder(url)
            .build()
            .unwrap()
            .failure_limiter(FailureLimits::default().account_threshold(3).unwrap())
    };
    let (a, b) = (limiter(redis.url()), limiter(redis.url()));
    let client = Some("203.0.113.7".parse().unwrap());
    for limiter in [&a, &b, &a] {
        assert_eq!(
            limiter.admit("alice", client).await.unwrap(),
            Admission::Allowed
        );
        limiter
            .record("alice", client, Attempt::Failed)
            .await
            .unwrap();
    }
    for limiter in [&a, &b] {
        assert!(matches!(
            limiter.admit("alice", client).await.unwrap(),
            Admission::Locked { retry_after } if retry_after.as_secs() == 30
        ));
    }
    assert_eq!(b.admit("bob", client).await.unwrap(), Admission::Allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_carries_revocations_and_tickets_over_tls() {
    let Some(redis) = RedisServer::start_tls().await else {
        return;
    };
    let certificate = redis.certificate.clone().unwrap();
    let keys = Keys::load();
    let stores = |url: String| {
        RedisStores::builder(url)
            .tls_root_certificate(certificate.clone().into_bytes())
            .build()
            .unwrap()
    };
    let (a, b) = (stores(redis.url()), stores(redis.url()));
    let principal = wsgate::Principal::new("alice", wsgate::AuthMethod::Token);
    use wsgate::store::{RevocationStore as _, TicketDigest, TicketStore as _};
    let digest = TicketDigest::of("a-ticket");
    let until = std::time::SystemTime::now() + Duration::from_secs(30);
    a.tickets()
        .insert(digest, principal.clone(), until)
        .await
        .unwrap();
    assert!(
        b.tickets()
            .take(&digest, std::time::SystemTime::now())
            .await
            .unwrap()
            .is_some()
    );
    let mut notices = b.revocations().notices().unwrap();
    a.revocations()
        .revoke(Revocation::token("jti-tls"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let notice = tokio::time::timeout_at(deadline, notices.recv())
            .await
            .unwrap()
            .unwrap();
        if notice == wsgate::store::StoreNotice::Revoked(Revocation::token("jti-tls")) {
            break;
        }
    }
    let revoked =
        wsgate::Principal::new("alice", wsgate::AuthMethod::Token).with_token_id("jti-tls");
    assert!(b.revocations().is_revoked(&revoked, None).await.unwrap());
    // Without the CA, the self-signed certificate is refused: no contact.
    let untrusted = RedisStores::builder(redis.url()).build().unwrap();
    assert!(
        untrusted
            .tickets()
            .insert(digest, principal, until)
            .await
            .is_err()
    );
    let _ = keys;
}

/// Refresh sessions in Redis: the store's cases, and reuse detected on one
/// process ends the session on every one: the other's sockets of the
/// session close 4403 and its refresh token is dead there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_reused_on_one_process_ends_the_session_on_every_one() {
    use crate::common::refresh::{REFRESH_SECRET, refresh_session_cases};
    use wsgate::confirmation::{Confirmation, Possession};
    use wsgate::refresh_sessions::RefreshSessions;
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let stores = wsgate::redis::RedisStores::builder(redis.url())
        .build()
        .unwrap();
    refresh_session_cases(stores.refresh_sessions()).await;

    let keys = Keys::load();
    let a = Instance::start(&redis.url(), &keys).await;
    let b = Instance::start(&redis.url(), &keys).await;
    let sessions_on = |instance: &Instance, clock: &wsgate::Clock| {
        RefreshSessions::builder(
            stores.refresh_sessions(),
            instance.gate.registry().clone(),
            REFRESH_SECRET,
        )
        .unwrap()
        .clock(clock.clone())
        .build()
        .unwrap()
    };
    let now = std::time::SystemTime::now();
    let on_a = sessions_on(&a, &wsgate::Clock::manual(now));
    // Process b's clock runs 11 s ahead: past the grace of a's rotation.
    let on_b = sessions_on(&b, &wsgate::Clock::manual(now + Duration::from_secs(11)));
    let alice = wsgate::Principal::new("alice", wsgate::AuthMethod::Password);
    let started = on_a.start(&alice, &Confirmation::default()).await.unwrap();
    let first = started.refresh_token.expose().to_owned();
    let mut claims = Keys::claims("alice");
    claims["sid"] = serde_json::json!(started.session_id);
    let access = keys.sign_with(jsonwebtoken::Algorithm::HS256, &claims, |_| {});
    let mut socket_on_a = a.open(&access).await;

    let second = on_a.refresh(&first, &Possession::default()).await.unwrap();
    let second = second.refresh_token.expose().to_owned();
    assert!(
        on_b.refresh(&first, &Possession::default()).await.is_err(),
        "reuse"
    );
    assert_eq!(
        crate::common::close_within(&mut socket_on_a, Duration::from_secs(2)).await,
        (4403, "token revoked".to_owned()),
        "the session's socket on the other process"
    );
    assert!(on_a.refresh(&second, &Possession::default()).await.is_err());
    assert_eq!(a.status(&access).await, 401);
    assert_eq!(b.status(&access).await, 401);
}
