//! Credentials in real databases: SQLite (in memory and a file) and a
//! PostgreSQL the test starts (`initdb` in a temporary folder).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::postgres::Postgres;
use crate::common::{CountingHasher, Handshake, Keys, Outcome, basic, connect, serve};
use axum::Router;
use axum::routing::get;
use wsgate::accounts::Accounts;
use wsgate::authenticate::BasicAuthenticator;
use wsgate::password::{Argon2id, PasswordPolicy, PasswordVerifier};
use wsgate::sql::SqlCredentialStore;
use wsgate::store::{AccountStore, CredentialStore};
use wsgate::{Gate, Secret, Transport};

const ORIGIN: &str = "http://app.test";
const PASSWORD: &str = "violet-Harbour-47-tundra";

/// A Basic handshake route over `store`, with `passwords`.
async fn site(
    store: SqlCredentialStore,
    passwords: PasswordVerifier<impl wsgate::password::PasswordHasher>,
) -> SocketAddr {
    let gate = Gate::builder(Keys::load().verifier())
        .passwords(BasicAuthenticator::new(store, passwords))
        .build()
        .unwrap();
    let handshake = gate
        .handshake()
        .transports([Transport::Basic])
        .allowed_origins([ORIGIN])
        .unwrap()
        .build()
        .unwrap();
    serve(
        Router::new()
            .route("/ws", get(crate::common::welcome_then_echo))
            .route_layer(handshake)
            .with_state(gate),
    )
    .await
}

async fn login(addr: SocketAddr, username: &str, password: &str) -> Outcome {
    let handshake = Handshake::to("/ws")
        .origin(ORIGIN)
        .header("authorization", basic(username, password));
    connect(addr, &handshake).await
}

fn cheap() -> PasswordVerifier<Argon2id> {
    PasswordVerifier::with_hasher(Argon2id::new(256, 1, 1).unwrap()).unwrap()
}

async fn accounts(store: &SqlCredentialStore) -> Accounts<SqlCredentialStore> {
    Accounts::new(
        store.clone(),
        cheap(),
        PasswordPolicy::default(),
        wsgate::socket::Registry::new(&wsgate::wiring::Wiring::default()),
    )
}

/// What every store must do: create, find, change, list, refuse a taken
/// name, keep hostile names as names.
async fn the_write_side_works(store: &SqlCredentialStore) {
    let accounts = accounts(store).await;
    accounts
        .create("alice", &Secret::new(PASSWORD), vec!["user".into()])
        .await
        .unwrap();
    assert!(matches!(
        accounts
            .create("alice", &Secret::new(PASSWORD), vec![])
            .await,
        Err(wsgate::accounts::AccountError::UserExists)
    ));
    let alice = store.find_user("alice").await.unwrap().unwrap();
    assert_eq!(alice.subject(), "alice");
    assert_eq!(alice.roles(), ["user"]);
    assert!(store.find_user("nobody").await.unwrap().is_none());
    assert!(
        store
            .set_roles("alice", vec!["user".into(), "admin".into()])
            .await
            .unwrap()
    );
    assert!(store.set_disabled("alice", true).await.unwrap());
    let alice = store.find_user("alice").await.unwrap().unwrap();
    assert_eq!(alice.roles(), ["user", "admin"]);
    assert!(alice.is_disabled());
    assert!(!store.set_disabled("nobody", true).await.unwrap());
    for hostile in [
        "' OR '1'='1",
        "alice'; DROP TABLE wsgate_users; --",
        "\"; DELETE FROM wsgate_users",
    ] {
        accounts
            .create(hostile, &Secret::new(PASSWORD), vec![])
            .await
            .unwrap();
        assert_eq!(
            store.find_user(hostile).await.unwrap().unwrap().subject(),
            hostile
        );
    }
    assert!(store.find_user("' OR '1'='2").await.unwrap().is_none());
    assert_eq!(
        store.list_users().await.unwrap().len(),
        4,
        "the table is intact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_keeps_accounts() {
    let store = SqlCredentialStore::connect("sqlite::memory:")
        .await
        .unwrap();
    the_write_side_works(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_survives_a_restart_and_holds_no_plaintext() {
    let dir = std::env::temp_dir().join(format!(
        "wsgate-sqlite-{}",
        crate::common::servers::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("accounts.db").display());
    {
        let store = SqlCredentialStore::connect(&url).await.unwrap();
        the_write_side_works(&store).await;
        // At the default cost, hashed the way production hashes.
        let accounts = Accounts::new(
            store.clone(),
            PasswordVerifier::new().unwrap(),
            PasswordPolicy::default(),
            wsgate::socket::Registry::new(&wsgate::wiring::Wiring::default()),
        );
        accounts
            .create("bob", &Secret::new("amber-Quarry-81-glacier"), vec![])
            .await
            .unwrap();
        store.pool().close().await;
    }
    let store = SqlCredentialStore::connect(&url).await.unwrap();
    let bob = store
        .find_user("bob")
        .await
        .unwrap()
        .expect("still there after a restart");
    assert!(
        bob.password_hash()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        bob.password_hash()
    );
    let addr = site(store.clone(), PasswordVerifier::new().unwrap()).await;
    assert_eq!(
        login(addr, "bob", "amber-Quarry-81-glacier").await.status(),
        101
    );
    store.pool().close().await;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        for password in [PASSWORD, "amber-Quarry-81-glacier"] {
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|window| window == password.as_bytes()),
                "{password} in {}",
                entry.path().display()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_logins_against_sqlite_all_succeed() {
    let dir = std::env::temp_dir().join(format!(
        "wsgate-sqlite-{}",
        crate::common::servers::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqlCredentialStore::connect(&format!("sqlite://{}", dir.join("a.db").display()))
        .await
        .unwrap();
    let accounts = accounts(&store).await;
    for n in 0..40 {
        accounts
            .create(&format!("user{n}"), &Secret::new(PASSWORD), vec![])
            .await
            .unwrap();
    }
    let addr = site(store, cheap()).await;
    let logins =
        (0..40).map(|n| async move { login(addr, &format!("user{n}"), PASSWORD).await.status() });
    let statuses = futures_util::future::join_all(logins).await;
    assert!(statuses.iter().all(|status| *status == 101), "{statuses:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_are_indistinguishable() {
    let store = SqlCredentialStore::connect("sqlite::memory:")
        .await
        .unwrap();
    accounts(&store)
        .await
        .create("alice", &Secret::new(PASSWORD), vec![])
        .await
        .unwrap();
    let hasher = CountingHasher::default();
    let verifies = hasher.verifies.clone();
    let addr = site(store, PasswordVerifier::with_hasher(hasher).unwrap()).await;
    let mut seen = Vec::new();
    for (username, password) in [
        ("alice", "wrong-Password-99"),
        ("nobody", "wrong-Password-99"),
    ] {
        let before = verifies.load(Ordering::SeqCst);
        let Outcome::Refused {
            status,
            body,
            challenges,
            ..
        } = login(addr, username, password).await
        else {
            panic!("accepted");
        };
        seen.push((
            status,
            body,
            challenges,
            verifies.load(Ordering::SeqCst) - before,
        ));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0].3, 1, "one verification each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_accounts_and_its_outage_is_503_never_401() {
    let Some(postgres) = Postgres::start() else {
        return;
    };
    let store = SqlCredentialStore::connect(&postgres.url()).await.unwrap();
    the_write_side_works(&store).await;
    assert!(store.set_disabled("alice", false).await.unwrap());
    let addr = site(store.clone(), cheap()).await;
    assert_eq!(login(addr, "alice", PASSWORD).await.status(), 101);

    postgres.stop();
    let outcome = login(addr, "alice", PASSWORD).await;
    let Outcome::Refused {
        status,
        retry_after,
        ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(*status, 503, "{outcome:?}");
    assert!(retry_after.is_some());
    assert_eq!(
        login(addr, "nobody", "x-Wrong-Password-1").await.status(),
        503
    );

    postgres.resume();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while login(addr, "alice", PASSWORD).await.status() != 101 {
        assert!(tokio::time::Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Refresh sessions in SQLite: the store's cases, then a session that
/// survives the process's restart (a new pool on the same file).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_sessions_in_sqlite_survive_a_restart() {
    use crate::common::refresh::{refresh, refresh_session_cases, sessions_over, start};
    let memory = SqlCredentialStore::connect("sqlite::memory:")
        .await
        .unwrap();
    refresh_session_cases(memory.refresh_sessions()).await;

    let folder = std::env::temp_dir().join(format!("wsgate-refresh-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join("sessions.db");
    let url = format!("sqlite://{}", path.display());
    let clock = wsgate::Clock::manual(std::time::SystemTime::now());
    let token = {
        let store = SqlCredentialStore::connect(&url).await.unwrap();
        let sessions = sessions_over(store.refresh_sessions(), &clock);
        let token = start(&sessions).await;
        store.pool().close().await;
        token
    };
    let store = SqlCredentialStore::connect(&url).await.unwrap();
    let sessions = sessions_over(store.refresh_sessions(), &clock);
    let next = refresh(&sessions, &token)
        .await
        .expect("the session outlived the restart");
    assert!(refresh(&sessions, &next).await.is_some());
    // Only digests on disk.
    store.pool().close().await;
    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(&token[23..]) && !text.contains(&next[23..]));
    let _ = std::fs::remove_dir_all(&folder);
}

/// Refresh sessions in PostgreSQL: the store's cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_sessions_in_postgres() {
    let Some(postgres) = Postgres::start() else {
        return;
    };
    let store = SqlCredentialStore::connect(&postgres.url()).await.unwrap();
    crate::common::refresh::refresh_session_cases(store.refresh_sessions()).await;
}
