//! Echo round trips during a password-hashing storm.

use super::*;

/// Concurrent Basic handshakes in a storm, each for an account of its own.
pub(crate) const STORM_HANDSHAKES: usize = 50;

/// Echo round trips on open sockets while 50 Basic handshakes hash
/// passwords at once.
pub(crate) async fn storm(plan: &Plan, gated: &Gated) {
    let token = gated.token(&gated.hs256, "bench");
    let message = serde_json::json!({"type": "say", "text": "ping", "token": token}).to_string();
    let storming = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let calm = Arc::new(Mutex::new(Vec::new()));
    let stormy = Arc::new(Mutex::new(Vec::new()));
    let mut pingers = Vec::new();
    for _ in 0..8 {
        let mut client = connect(gated.addr, "/ws/basic", &bearer(&token))
            .await
            .unwrap();
        let (storming, stop, calm, stormy, message) = (
            storming.clone(),
            stop.clone(),
            calm.clone(),
            stormy.clone(),
            message.clone(),
        );
        pingers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                client
                    .send(ClientMessage::Text(message.clone().into()))
                    .await
                    .unwrap();
                while let Some(Ok(reply)) = client.next().await {
                    if reply.is_text() {
                        break;
                    }
                }
                let rtt = sent.elapsed();
                let bucket = if storming.load(Ordering::Relaxed) {
                    &stormy
                } else {
                    &calm
                };
                bucket.lock().unwrap().push(rtt);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    let basic = |account: usize| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("bench{account}:{PASSWORD}"))
        )
    };
    let mut storm_durations = Vec::new();
    for _ in 0..plan.storms {
        tokio::time::sleep(Duration::from_millis(300)).await;
        storming.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let attempts: Vec<_> = (0..STORM_HANDSHAKES)
            .map(|account| {
                let headers = vec![
                    ("authorization", basic(account)),
                    ("origin", ORIGIN.to_owned()),
                ];
                let addr = gated.addr;
                tokio::spawn(async move { connect(addr, "/ws/basic", &headers).await.is_ok() })
            })
            .collect();
        let mut accepted = 0;
        for attempt in attempts {
            accepted += usize::from(attempt.await.unwrap());
        }
        storm_durations.push(started.elapsed());
        storming.store(false, Ordering::Relaxed);
        assert_eq!(
            accepted, STORM_HANDSHAKES,
            "every Basic handshake of the storm succeeds"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for pinger in pingers {
        let _ = pinger.await;
    }
    let mut calm = calm.lock().unwrap().clone();
    let mut stormy = stormy.lock().unwrap().clone();
    println!(
        "\n## Echo round trip during a storm of 50 concurrent Basic (argon2id) handshakes, {} storms",
        plan.storms
    );
    println!(
        "calm:  p50 {:?}, p99 {:?} ({} round trips)",
        percentile(&mut calm, 0.5),
        percentile(&mut calm, 0.99),
        calm.len()
    );
    println!(
        "storm: p50 {:?}, p99 {:?} ({} round trips); a storm lasted {:?} (median)",
        percentile(&mut stormy, 0.5),
        percentile(&mut stormy, 0.99),
        stormy.len(),
        percentile(&mut storm_durations, 0.5)
    );
}
