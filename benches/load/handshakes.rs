//! Handshakes per second, per credential.

use super::*;

/// Tickets issued for each second of a round: more than a server on one
/// thread redeems (about 20 000 a second on the 2-core VM).
const TICKETS_A_SECOND: f64 = 100_000.0;

pub(crate) async fn handshake_rates(plan: &Plan) {
    // A server of one route for each credential, as bare has one: axum
    // clones every route of a router for each connection it accepts.
    let bare = ServerChild::start_pinned("bare").await;
    let mut gated = ServerChild::start_pinned("wsgate:/ws").await;
    let es256_server = ServerChild::start_pinned("wsgate:/ws/es256").await;
    let mut ticket_server = ServerChild::start_pinned("wsgate:/ws/ticket").await;
    let hs256 = child_token("bench");
    let es256 = child_es256_token("bench");
    let verification = gated.ask("verify-es256 2000").await[0]
        .parse::<f64>()
        .unwrap();
    let rounds = if plan.quick { 1 } else { plan.rounds };
    let mut samples: Vec<(&str, Vec<Sample>)> = ["bare", "HS256", "ES256", "ticket"]
        .iter()
        .map(|name| (*name, Vec::new()))
        .collect();
    for _ in 0..rounds {
        // Tickets are issued before the clock starts: redemption is measured.
        // Enough for a server faster than any here, so the pool never runs
        // dry mid-round (refusals would be counted as the ticket's cost).
        let wanted = (plan.handshake_window.as_secs_f64() * TICKETS_A_SECOND) as usize;
        let pool = Arc::new(Mutex::new(
            ticket_server.ask(&format!("tickets {wanted}")).await,
        ));
        let ran_dry = Arc::new(AtomicBool::new(false));
        type Credentials = Box<dyn Fn() -> (String, Vec<(&'static str, String)>) + Send + Sync>;
        let (hs256, es256) = (hs256.clone(), es256.clone());
        let attempts: [(&ServerChild, Credentials); 4] = [
            (&bare, Box::new(|| ("/ws".to_owned(), Vec::new()))),
            (&gated, Box::new(move || ("/ws".to_owned(), bearer(&hs256)))),
            (
                &es256_server,
                Box::new(move || ("/ws/es256".to_owned(), bearer(&es256))),
            ),
            (
                &ticket_server,
                Box::new({
                    let ran_dry = ran_dry.clone();
                    move || {
                        let ticket = pool.lock().unwrap().pop().unwrap_or_else(|| {
                            ran_dry.store(true, Ordering::Relaxed);
                            String::new()
                        });
                        (format!("/ws/ticket?ticket={ticket}"), Vec::new())
                    }
                }),
            ),
        ];
        for ((server, credentials), (_, samples)) in attempts.into_iter().zip(&mut samples) {
            let sample = handshake_sample(
                server.addr,
                plan.handshake_window,
                server.child.id(),
                credentials,
            )
            .await;
            samples.push(sample);
        }
        assert!(
            !ran_dry.load(Ordering::Relaxed),
            "the ticket pool ran dry ({wanted} tickets): raise TICKETS_A_SECOND"
        );
    }
    println!(
        "\n## Handshakes per second ({HANDSHAKE_CLIENTS} concurrent clients, connect then drop; server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}; median of {rounds} alternating rounds of {:?})",
        plan.handshake_window
    );
    println!("{:<46} {TABLE_HEADER}", "credential");
    for (name, gated_samples) in &samples[1..] {
        table_row(name, &samples[0].1, gated_samples);
    }
    let (_, bare_cpu, _) = medians(&samples[0].1);
    let (_, es256_cpu, _) = medians(&samples[2].1);
    println!(
        "ES256: one signature verification costs {verification:.1} µs on the server's CPU (same run); an ES256 handshake costs the server {:.1} µs more than a bare one",
        es256_cpu - bare_cpu
    );
}
