//! A reconnect storm: every client of a server that just started (after a
//! deploy, say) reconnects at once.

use super::*;

/// How many times a client tries before it gives up, and its first pause
/// (doubled each time, up to 2 s, with jitter), as the browser client
/// retries a 1006.
const ATTEMPTS: u32 = 8;
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// What one storm did.
struct Storm {
    /// From the go to the last client admitted.
    all_admitted: Duration,
    /// From the go to each client's admission.
    admitted: Vec<Duration>,
    /// Each successful handshake, from its attempt's start.
    handshakes: Vec<Duration>,
    failed_attempts: usize,
    never_admitted: usize,
    /// The server's CPU time a client admitted, and how busy it was.
    server: ServerCpu,
}

/// `clients` clients, each with an ES256 token of a subject of its own,
/// connect at the same moment to a server child started just before: bare
/// axum with its own ES256 check, wsgate, and wsgate with every store in
/// Redis. A client whose attempt fails pauses and tries again. Each side
/// gets a fresh server a round, the rounds alternate.
pub(crate) async fn reconnect_storm(plan: &Plan) {
    // Under the 28 000 ports of one source address: see `storm_once`.
    let clients = if plan.quick { 1_000 } else { 20_000 };
    let rounds = if plan.quick { 1 } else { 3 };
    // The server on half as many CPUs as the client has, so that the
    // server, not the client's handshakes, sets the pace: 4 and 8 on 16
    // CPUs, 1 and 1 on 2.
    let (_, client_cpus) = many_core_split();
    let server_cpus = Cpus::range(SERVER_CPU, (client_cpus.len() / 2).max(1));
    println!("\n## Reconnect storm");
    let clients = sockets_allowed(clients);
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..clients)
            .map(|client| child_es256_token(&format!("user-{client}")))
            .collect(),
    );
    let redis = redis_server().await;
    // The row's name, the child's side, the route, the child's environment.
    type Side<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, String)>);
    let mut sides: Vec<Side<'_>> = vec![
        ("bare, its own ES256 check", "bare-es256", "/ws", Vec::new()),
        ("wsgate", "wsgate:/ws/es256", "/ws/es256", Vec::new()),
    ];
    if let Some((_, url)) = &redis {
        sides.push((
            "wsgate, every store in Redis",
            "wsgate:/ws/es256",
            "/ws/es256",
            vec![
                ("WSGATE_BENCH_REDIS_URL", url.clone()),
                (REDIS_EVERYTHING, "1".to_owned()),
            ],
        ));
    }
    let mut storms: Vec<Vec<Storm>> = sides.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for ((_, side, path, environment), storms) in sides.iter().zip(&mut storms) {
            let mut server = ServerChild::spawn(side, environment, Some(server_cpus.clone())).await;
            storms.push(storm_once(&server, path, &tokens).await);
            let _ = server.child.kill().await;
        }
    }
    println!(
        "{clients} clients with ES256 tokens connect at once to a server that just started (server on CPUs {server_cpus}, client on CPUs {client_cpus}; median of {rounds} rounds, a fresh server each)"
    );
    println!(
        "(each client retries a failed attempt up to {ATTEMPTS} times, pausing {FIRST_PAUSE:?} doubled each time up to 2 s, with jitter; listen backlog {LISTEN_BACKLOG}, the kernel's cap net.core.somaxconn {})",
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "{:<32} {:>12} {:>7} {:>22} {:>22} {:>7} {:>8} {:>7} {:>5}",
        "server",
        "all admitted",
        "× bare",
        "admitted p50 / p99",
        "handshake p50 / p99",
        "retries",
        "left out",
        "server µs",
        "busy"
    );
    let all_admitted = |storms: &[Storm]| {
        median(
            storms
                .iter()
                .map(|storm| storm.all_admitted.as_secs_f64())
                .collect(),
        )
    };
    let bare = all_admitted(&storms[0]);
    for ((name, ..), storms) in sides.iter().zip(&storms) {
        let percentiles = |of: &dyn Fn(&Storm) -> &Vec<Duration>, fraction| {
            let values = storms
                .iter()
                .map(|storm| percentile(&mut of(storm).clone(), fraction).as_secs_f64() * 1e3)
                .collect();
            median(values)
        };
        let of = |value: &dyn Fn(&Storm) -> f64| median(storms.iter().map(value).collect());
        let time = all_admitted(storms);
        println!(
            "{name:<32} {:>9.0} ms {:>7.3} {:>9.0} / {:>6.0} ms {:>9.1} / {:>6.1} ms {:>7} {:>8} {:>9.1} {:>5.2}",
            time * 1e3,
            time / bare,
            percentiles(&|storm| &storm.admitted, 0.5),
            percentiles(&|storm| &storm.admitted, 0.99),
            percentiles(&|storm| &storm.handshakes, 0.5),
            percentiles(&|storm| &storm.handshakes, 0.99),
            of(&|storm| storm.failed_attempts as f64),
            of(&|storm| storm.never_admitted as f64),
            of(&|storm| storm.server.per_item),
            of(&|storm| storm.server.busy),
        );
    }
    println!(
        "(server µs: the server's CPU time, user and kernel, a client admitted; busy: CPUs' worth of it over the storm)"
    );
    if redis.is_none() {
        println!("(wsgate with its stores in Redis: skipped; apt-get install -y redis-server)");
    }
}

/// One storm against the server at `addr`: every client waits for the go,
/// then connects until admitted (or out of attempts) and holds its socket
/// until the storm is over.
async fn storm_once(server: &ServerChild, path: &str, tokens: &Arc<Vec<String>>) -> Storm {
    let addr = server.addr;
    let (go, ready) = tokio::sync::watch::channel(None::<Instant>);
    let tasks: Vec<_> = (0..tokens.len())
        .map(|index| {
            let (mut ready, tokens, path) = (ready.clone(), tokens.clone(), path.to_owned());
            tokio::spawn(async move {
                let started = ready
                    .wait_for(Option::is_some)
                    .await
                    .map(|started| started.unwrap())
                    .unwrap();
                let headers = bearer(&tokens[index]);
                let mut failed = 0;
                let mut pause = FIRST_PAUSE;
                loop {
                    let attempt = Instant::now();
                    // No source address bound: `bind` with port 0 searches
                    // the port range under a lock for every socket (seconds
                    // of kernel time at 20 000), `connect` picks a port by
                    // the destination at once. Held open until the storm is
                    // over; dropped with a reset, so the next round finds
                    // its ports free.
                    match connect_lingerless(None, addr, &path, &headers).await {
                        Ok(client) => {
                            return (Some((client, started.elapsed(), attempt.elapsed())), failed);
                        }
                        Err(_) if failed + 1 < ATTEMPTS => {
                            failed += 1;
                            let jitter = pause.mul_f64(jitter_fraction(index, failed));
                            tokio::time::sleep(pause / 2 + jitter).await;
                            pause = (pause * 2).min(Duration::from_secs(2));
                        }
                        Err(_) => return (None, failed + 1),
                    }
                }
            })
        })
        .collect();
    drop(ready);
    let clock = ServerClock::start(server.child.id()).expect("a server child");
    go.send(Some(Instant::now())).unwrap();
    let mut admissions = Vec::with_capacity(tokens.len());
    for task in tasks {
        admissions.push(task.await.unwrap());
    }
    let mut storm = Storm {
        all_admitted: Duration::ZERO,
        admitted: Vec::with_capacity(tokens.len()),
        handshakes: Vec::with_capacity(tokens.len()),
        failed_attempts: 0,
        never_admitted: 0,
        server: clock.stop(tokens.len() as u64),
    };
    let mut open = Vec::with_capacity(tokens.len());
    for (admission, failed) in admissions {
        storm.failed_attempts += failed as usize;
        match admission {
            Some((client, admitted, handshake)) => {
                storm.all_admitted = storm.all_admitted.max(admitted);
                storm.admitted.push(admitted);
                storm.handshakes.push(handshake);
                open.push(client);
            }
            None => storm.never_admitted += 1,
        }
    }
    if storm.admitted.is_empty() {
        storm.admitted.push(Duration::ZERO);
        storm.handshakes.push(Duration::ZERO);
    }
    drop(open);
    storm
}

/// A fraction in [0, 1) of a pause, the same for the same client and
/// attempt in every round and on every side (no randomness between them).
fn jitter_fraction(client: usize, attempt: u32) -> f64 {
    let mixed = (client as u64 ^ (u64::from(attempt) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}
