//! Revocation latency with many sockets open.

use super::*;

/// Subjects revoked in turn.
const VICTIMS: usize = 3;

/// Revocation latency: `sockets` open on a gated server (another process),
/// subjects holding `revoked_per_subject` sockets each revoked in turn;
/// time from sending the revoke command to each close frame.
pub(crate) async fn revocation(plan: &Plan) {
    println!("\n## Revocation latency");
    let sockets = sockets_allowed(plan.revocation_sockets);
    let mut server = ServerChild::start("wsgate").await;
    let victims = VICTIMS;
    let others = sockets - victims * plan.revoked_per_subject;
    // A thousand other subjects, their sockets from several source
    // addresses (100 000 are more than one address has ports).
    let tokens: Vec<String> = (0..1_000)
        .map(|subject| child_token(&format!("other-{subject}")))
        .collect();
    let idle = connect_many_with(others, server.addr, "/ws", |index| {
        bearer(&tokens[index % tokens.len()])
    })
    .await;
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
        "{sockets} sockets open, {victims} subjects of {} sockets revoked in turn",
        plan.revoked_per_subject
    );
    println!("revoke command sent → close frame received: p50 {p50:?}, p99 {p99:?}");
    drop(idle);
    let _ = server.child.kill().await;
}
