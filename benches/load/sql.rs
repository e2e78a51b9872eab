//! Accounts in SQL.

use super::*;

/// Basic handshakes (argon2id at the default cost) with the users in
/// memory, in SQLite and in PostgreSQL, and the lookup alone.
pub(crate) async fn accounts_in_sql(plan: &Plan) {
    use wsgate::store::{AccountStore as _, CredentialStore, InMemoryCredentialStore, StoredUser};
    pub(crate) const USERS: usize = 32;
    let passwords = PasswordVerifier::new().unwrap();
    let hash = passwords
        .hash(&wsgate::Secret::new(PASSWORD))
        .await
        .unwrap();
    let folder = std::env::temp_dir().join(format!("wsgate-bench-sql-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let sqlite = wsgate::sql::SqlCredentialStore::connect(&format!(
        "sqlite://{}",
        folder.join("bench.db").display()
    ))
    .await
    .unwrap();
    let postgres_server = wsgate_testkit::postgres::Postgres::start();
    let postgres = match &postgres_server {
        Some(server) => Some(
            wsgate::sql::SqlCredentialStore::connect(&server.url())
                .await
                .unwrap(),
        ),
        None => None,
    };
    let memory = InMemoryCredentialStore::new();
    for n in 0..USERS {
        let name = format!("bench{n}");
        let user = StoredUser::new(name.clone(), hash.clone()).with_roles(["user"]);
        memory.insert(name.clone(), user.clone());
        sqlite.create_user(&name, user.clone()).await.unwrap();
        if let Some(postgres) = &postgres {
            postgres.create_user(&name, user).await.unwrap();
        }
    }
    pub(crate) async fn basic_route<S: CredentialStore>(
        store: S,
        passwords: PasswordVerifier,
    ) -> SocketAddr {
        let gate = Gate::builder(
            JwtVerifier::builder()
                .key(
                    KeyPair::hmac(&[1; 32], Algorithm::HS256)
                        .unwrap()
                        .into_parts()
                        .1,
                )
                .build()
                .unwrap(),
        )
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
        serve(route("/ws", gate.sockets().clone(), handshake)).await
    }
    let mut sides = vec![
        (
            "in memory",
            basic_route(memory.clone(), passwords.clone()).await,
        ),
        (
            "SQLite",
            basic_route(sqlite.clone(), passwords.clone()).await,
        ),
    ];
    if let Some(postgres) = &postgres {
        sides.push((
            "PostgreSQL",
            basic_route(postgres.clone(), passwords.clone()).await,
        ));
    }
    let mut rates = vec![Vec::new(); sides.len()];
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..plan.rounds.clamp(3, 5) {
        for (index, (_, addr)) in sides.iter().enumerate() {
            let next = next.clone();
            rates[index].push(
                handshakes(*addr, plan.handshake_window * 2, move || {
                    let n = next.fetch_add(1, Ordering::Relaxed) % USERS;
                    let credentials = base64::engine::general_purpose::STANDARD
                        .encode(format!("bench{n}:{PASSWORD}"));
                    (
                        "/ws".to_owned(),
                        vec![
                            ("authorization", format!("Basic {credentials}")),
                            ("origin", ORIGIN.to_owned()),
                        ],
                    )
                })
                .await,
            );
        }
    }
    println!(
        "\n## Accounts in SQL: Basic handshakes per second (argon2id at the default cost, 32 clients)"
    );
    let memory_rate = median(rates[0].clone());
    for ((name, _), samples) in sides.iter().zip(rates) {
        let rate = median(samples);
        println!(
            "{name:<12} {rate:>8.1}/s  ratio to in memory {:.3}",
            rate / memory_rate
        );
    }
    if postgres.is_none() {
        println!("PostgreSQL: skipped (no initdb here)");
    }
    let lookups = if plan.quick { 500 } else { 10_000 };
    let mut line = String::from("user lookup (find_user), ");
    pub(crate) async fn timed<S: CredentialStore>(
        store: &S,
        lookups: usize,
    ) -> (Duration, Duration) {
        let mut latencies = Vec::with_capacity(lookups);
        for n in 0..lookups {
            let started = Instant::now();
            let _ = store.find_user(&format!("bench{}", n % USERS)).await;
            latencies.push(started.elapsed());
        }
        (
            percentile(&mut latencies, 0.5),
            percentile(&mut latencies, 0.99),
        )
    }
    let (p50, p99) = timed(&memory, lookups).await;
    line.push_str(&format!("in memory p50 {p50:?} p99 {p99:?}; "));
    let (p50, p99) = timed(&sqlite, lookups).await;
    line.push_str(&format!("SQLite p50 {p50:?} p99 {p99:?}"));
    if let Some(postgres) = &postgres {
        let (p50, p99) = timed(postgres, lookups).await;
        line.push_str(&format!("; PostgreSQL p50 {p50:?} p99 {p99:?}"));
    }
    println!("{line} ({lookups} lookups each)");
    let _ = std::fs::remove_dir_all(&folder);
}
