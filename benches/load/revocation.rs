//! Revocation latency with many sockets open.

use super::*;

/// Revocation latency: `sockets` open on a gated server (another process),
/// subjects holding `revoked_per_subject` sockets each revoked in turn;
/// time from sending the revoke command to each close frame.
pub(crate) async fn revocation(plan: &Plan) {
    raise_file_limit(2 * plan.revocation_sockets as u64 + 1_024);
    let mut server = ServerChild::start("wsgate").await;
    let victims = 3;
    let others = plan.revocation_sockets - victims * plan.revoked_per_subject;
    let mut idle = Vec::with_capacity(others);
    for index in 0..others {
        let token = child_token(&format!("other-{}", index % 1_000));
        idle.push(connect(server.addr, "/ws", &bearer(&token)).await.unwrap());
    }
    let mut latencies = Vec::new();
    for victim in 0..victims {
        let subject = format!("victim-{victim}");
        let token = child_token(&subject);
        let start = Arc::new(Mutex::new(None::<Instant>));
        let mut readers = Vec::new();
        for _ in 0..plan.revoked_per_subject {
            let mut socket = connect(server.addr, "/ws", &bearer(&token)).await.unwrap();
            let start = start.clone();
            readers.push(tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    if let ClientMessage::Close(_) = message {
                        break;
                    }
                }
                let began = start.lock().unwrap().expect("closed before the revocation");
                began.elapsed()
            }));
        }
        loop {
            let (_, sockets) = server.rss().await;
            if sockets >= others + plan.revoked_per_subject {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        *start.lock().unwrap() = Some(Instant::now());
        let answer = server.ask(&format!("revoke {subject}")).await;
        assert_eq!(
            answer[0].parse::<usize>().unwrap(),
            plan.revoked_per_subject
        );
        for reader in readers {
            latencies.push(reader.await.unwrap());
        }
        // Let the closed ones leave the registry.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    let p50 = percentile(&mut latencies, 0.5);
    let p99 = percentile(&mut latencies, 0.99);
    println!(
        "\n## Revocation latency ({} sockets open, {victims} subjects of {} sockets revoked in turn)",
        plan.revocation_sockets, plan.revoked_per_subject
    );
    println!("revoke command sent → close frame received: p50 {p50:?}, p99 {p99:?}");
    drop(idle);
    let _ = server.child.kill().await;
}
