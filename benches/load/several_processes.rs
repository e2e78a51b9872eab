//! Several processes through Redis.

use super::*;

/// A `redis-server` on a free loopback port, without persistence; `None`
/// when it is not installed.
pub(crate) async fn redis_server() -> Option<(tokio::process::Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(child) = child else {
        return None;
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some((child, format!("redis://127.0.0.1:{port}/")));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// Revocations and tickets in Redis: handshakes against in-memory stores
/// in one run, a revocation on this process reaching a server child's
/// sockets, and one made across the child's reconnect.
pub(crate) async fn several_processes(plan: &Plan) {
    use wsgate::store::RevocationStore as _;
    let Some((_server, url)) = redis_server().await else {
        println!("\n## Several processes: skipped (apt-get install -y redis-server)");
        return;
    };
    let here = wsgate::redis::RedisStores::builder(url.clone())
        .build()
        .unwrap();
    let memory = gated_server_with(InRedis::Nothing, None).await;
    let redis = gated_server_with(InRedis::RevocationsAndTickets(&here), None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut rates = vec![Vec::new(); 4];
    let principal = Principal::new("bench", AuthMethod::Token).with_roles(["user"]);
    for _ in 0..plan.rounds.clamp(3, 5) {
        for (index, gated) in [&memory, &redis].into_iter().enumerate() {
            let token = gated.token(&gated.hs256, "bench");
            rates[index].push(
                handshakes(gated.addr, plan.handshake_window, move || {
                    ("/ws".to_owned(), bearer(&token))
                })
                .await,
            );
            let mut pool = Vec::new();
            for _ in 0..if plan.quick { 3_000 } else { 20_000 } {
                let ticket = gated.gate.issue_ticket(&principal).await.unwrap();
                pool.push(ticket.ticket().expose().to_owned());
            }
            let pool = Arc::new(Mutex::new(pool));
            rates[2 + index].push(
                handshakes(gated.addr, plan.handshake_window, move || {
                    let ticket = pool.lock().unwrap().pop().unwrap_or_default();
                    (format!("/ws/ticket?ticket={ticket}"), Vec::new())
                })
                .await,
            );
        }
    }
    let rates: Vec<f64> = rates.into_iter().map(median).collect();
    println!("\n## Several processes: handshakes per second with stores in memory and in Redis");
    println!(
        "HS256 (revocations checked): memory {:.0}, Redis {:.0}, ratio {:.3}",
        rates[0],
        rates[1],
        rates[1] / rates[0]
    );
    println!(
        "ticket (redeemed): memory {:.0}, Redis {:.0}, ratio {:.3}",
        rates[2],
        rates[3],
        rates[3] / rates[2]
    );

    // Another process holds the sockets; this one revokes.
    raise_file_limit(2 * plan.revocation_sockets as u64 + 1_024);
    let mut child =
        ServerChild::start_with("wsgate", &[("WSGATE_BENCH_REDIS_URL", url.clone())]).await;
    let victims = 100.min(plan.revocation_sockets / 10);
    let others = plan.revocation_sockets - victims;
    let mut idle = Vec::with_capacity(others);
    for index in 0..others {
        let token = child_token(&format!("other-{}", index % 1_000));
        idle.push(connect(child.addr, "/ws", &bearer(&token)).await.unwrap());
    }
    let revoke_and_time = async |subject: &str, child: &mut ServerChild, across_reconnect: bool| {
        let token = child_token(subject);
        let start = Arc::new(Mutex::new(None::<Instant>));
        let mut readers = Vec::new();
        for _ in 0..victims {
            let mut socket = connect(child.addr, "/ws", &bearer(&token)).await.unwrap();
            let start = start.clone();
            readers.push(tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    if let ClientMessage::Close(_) = message {
                        break;
                    }
                }
                start
                    .lock()
                    .unwrap()
                    .expect("closed before the revocation")
                    .elapsed()
            }));
        }
        while child.rss().await.1 < others + victims {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        *start.lock().unwrap() = Some(Instant::now());
        if across_reconnect {
            // Every connection but the killer's: the child's and ours.
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut killer = client.get_multiplexed_async_connection().await.unwrap();
            let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
                .query_async(&mut killer)
                .await;
        }
        let revocation = Revocation::Subject {
            subject: subject.to_owned(),
            issued_before: SystemTime::now(),
        };
        while here.revocations().revoke(revocation.clone()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut latencies = Vec::new();
        for reader in readers {
            latencies.push(reader.await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        latencies
    };
    let mut direct = Vec::new();
    for round in 0..3 {
        direct.extend(revoke_and_time(&format!("victim-{round}"), &mut child, false).await);
    }
    let mut reconnecting = revoke_and_time("victim-reconnect", &mut child, true).await;
    println!(
        "revoke here → close frame on another process ({} sockets open there, {victims} of a subject, 3 rounds): p50 {:?}, p99 {:?}",
        plan.revocation_sockets,
        percentile(&mut direct, 0.5),
        percentile(&mut direct, 0.99)
    );
    println!(
        "the same across a reconnect (CLIENT KILL, then the revocation; the other process reconnects, resyncs and checks its {} sockets): p50 {:?}, p99 {:?}",
        plan.revocation_sockets,
        percentile(&mut reconnecting, 0.5),
        percentile(&mut reconnecting, 0.99)
    );
    drop(idle);
    let _ = child.child.kill().await;
}
