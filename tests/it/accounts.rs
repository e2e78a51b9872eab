//! Accounts over a credential store: creation under the password policy,
//! and credential changes that reach live sockets — a password change
//! closes them with 4403 `token revoked` and refuses earlier tokens, a
//! disabled account closes them with 4403 `forbidden` and refuses logins.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{Handshake, Keys, basic, close_within, connect, open_bearer, serve};
use axum::Router;
use axum::routing::get;
use jsonwebtoken::Algorithm;
use serde_json::json;
use wsgate::accounts::{AccountError, Accounts};
use wsgate::authenticate::BasicAuthenticator;
use wsgate::password::{Argon2id, PasswordPolicy, PasswordRule, PasswordVerifier};
use wsgate::store::{AccountStore, CredentialStore, InMemoryCredentialStore};
use wsgate::{Gate, Secret, Transport};

const ORIGIN: &str = "http://app.test";
const FIRST: &str = "violet-Harbour-47-tundra";
const SECOND: &str = "amber-Quarry-81-glacier";

struct Site {
    addr: SocketAddr,
    keys: Keys,
    accounts: Accounts<InMemoryCredentialStore>,
}

impl Site {
    async fn start() -> Self {
        let keys = Keys::load();
        let store = InMemoryCredentialStore::new();
        // A cheap hash keeps the test quick; the cost is not what it checks.
        let passwords = PasswordVerifier::with_hasher(Argon2id::new(256, 1, 1).unwrap()).unwrap();
        let gate = Gate::builder(keys.verifier())
            .passwords(BasicAuthenticator::new(store.clone(), passwords.clone()))
            .build()
            .unwrap();
        let handshake = gate
            .handshake()
            .transports([Transport::Bearer, Transport::Basic])
            .allowed_origins([ORIGIN])
            .unwrap()
            .build()
            .unwrap();
        let router = Router::new()
            .route("/ws", get(crate::common::welcome_then_echo))
            .route_layer(handshake)
            .with_state(gate.clone());
        let accounts = Accounts::new(
            store,
            passwords,
            PasswordPolicy::default(),
            gate.registry().clone(),
        );
        Self {
            addr: serve(router).await,
            keys,
            accounts,
        }
    }

    /// A token for `subject` issued now, to the microsecond (so a token
    /// issued right after a change is told apart from one right before).
    fn token(&self, subject: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let mut claims = Keys::claims(subject);
        claims["iat"] = json!(now);
        claims["jti"] = json!(format!("jti-{subject}-{now}"));
        self.keys.sign_with(Algorithm::HS256, &claims, |_| {})
    }

    async fn basic(&self, username: &str, password: &str) -> u16 {
        let handshake = Handshake::to("/ws")
            .origin(ORIGIN)
            .header("authorization", basic(username, password));
        connect(self.addr, &handshake).await.status()
    }

    async fn bearer(&self, token: &str) -> u16 {
        connect(self.addr, &Handshake::to("/ws").bearer(token))
            .await
            .status()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_under_the_policy() {
    let site = Site::start().await;
    let accounts = &site.accounts;
    accounts
        .create("alice", &Secret::new(FIRST), vec!["user".into()])
        .await
        .unwrap();
    assert_eq!(site.basic("alice", FIRST).await, 101);
    assert!(matches!(
        accounts.create("alice", &Secret::new(SECOND), vec![]).await,
        Err(AccountError::UserExists)
    ));
    for (password, rule) in [
        ("short-1A!", PasswordRule::TooShort(12)),
        ("correcthorsebatterystaple", PasswordRule::TooFewClasses(3)),
        ("my-Bobby-is-42-years", PasswordRule::ContainsUsername),
        ("Password123!", PasswordRule::Guessable),
    ] {
        match accounts
            .create("bobby", &Secret::new(password), vec![])
            .await
        {
            Err(AccountError::WeakPassword(broken)) => assert_eq!(broken, rule, "{password}"),
            other => panic!("{password}: {other:?}"),
        }
    }
    for username in ["", "line\nbreak", &"x".repeat(65)] {
        assert!(matches!(
            accounts
                .create(username, &Secret::new(SECOND), vec![])
                .await,
            Err(AccountError::InvalidUsername)
        ));
    }
    // Names that would be SQL elsewhere are names here: stored, and
    // matched only exactly.
    let injection = "' OR '1'='1";
    accounts
        .create(injection, &Secret::new(SECOND), vec![])
        .await
        .unwrap();
    assert_eq!(site.basic(injection, SECOND).await, 101);
    assert_eq!(site.basic("' OR '1'='2", SECOND).await, 401);
    // The hash is argon2id PHC; the password is nowhere in the store.
    let stored = accounts.store().find_user("alice").await.unwrap().unwrap();
    assert!(stored.password_hash().starts_with("$argon2id$"));
    let listed = accounts.store().list_users().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(!format!("{listed:?}").contains(FIRST));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_closes_live_sockets_and_refuses_earlier_tokens() {
    let site = Site::start().await;
    site.accounts
        .create("alice", &Secret::new(FIRST), vec!["user".into()])
        .await
        .unwrap();
    let before = site.token("alice");
    let mut socket = open_bearer(site.addr, &before).await;
    let mut bystander = open_bearer(site.addr, &site.token("bob")).await;
    tokio::time::sleep(Duration::from_millis(10)).await;

    let closed = site
        .accounts
        .change_password("alice", &Secret::new(SECOND))
        .await
        .unwrap();
    assert_eq!(closed, 1);
    assert_eq!(
        close_within(&mut socket, Duration::from_secs(2)).await,
        (4403, "token revoked".to_owned())
    );
    assert_eq!(
        close_within(&mut bystander, Duration::from_millis(300)).await,
        (0, "still open".to_owned())
    );
    assert_eq!(site.bearer(&before).await, 401);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        site.bearer(&site.token("alice")).await,
        101,
        "a token issued after the change works"
    );
    assert_eq!(site.basic("alice", FIRST).await, 401);
    assert_eq!(site.basic("alice", SECOND).await, 101);
    // The new password passes the policy too.
    assert!(matches!(
        site.accounts
            .change_password("alice", &Secret::new("Password123!"))
            .await,
        Err(AccountError::WeakPassword(PasswordRule::Guessable))
    ));
    assert!(matches!(
        site.accounts
            .change_password("nobody", &Secret::new(SECOND))
            .await,
        Err(AccountError::UnknownUser)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_is_closed_refused_and_can_come_back() {
    let site = Site::start().await;
    site.accounts
        .create("alice", &Secret::new(FIRST), vec!["user".into()])
        .await
        .unwrap();
    let token = site.token("alice");
    let mut socket = open_bearer(site.addr, &token).await;
    tokio::time::sleep(Duration::from_millis(10)).await;

    assert_eq!(site.accounts.disable("alice").await.unwrap(), 1);
    assert_eq!(
        close_within(&mut socket, Duration::from_secs(2)).await,
        (4403, "forbidden".to_owned())
    );
    assert_eq!(site.bearer(&token).await, 401);
    assert_eq!(
        site.basic("alice", FIRST).await,
        403,
        "the right password of a disabled account"
    );
    assert_eq!(
        site.basic("alice", SECOND).await,
        401,
        "a wrong one says nothing more"
    );

    site.accounts.enable("alice").await.unwrap();
    assert_eq!(site.basic("alice", FIRST).await, 101);
    assert_eq!(
        site.bearer(&token).await,
        401,
        "tokens from before stay revoked"
    );
}
