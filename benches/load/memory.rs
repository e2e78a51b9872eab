//! Resident memory per idle connection.

use super::*;

pub(crate) async fn memory(plan: &Plan) {
    println!("\n## Resident memory of the server per idle connection");
    let mut measured = Vec::new();
    for &wanted in plan.idle_connections {
        // Each side holds one descriptor a connection.
        let count = sockets_allowed(wanted);
        if measured.contains(&count) {
            continue;
        }
        measured.push(count);
        let mut per_connection = Vec::new();
        for side in ["bare", "wsgate"] {
            let mut server = ServerChild::start(side).await;
            let token = child_token("bench");
            // Warm the server with one connection before the first reading.
            let warm = connect(server.addr, "/ws", &bearer(&token)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (before, _) = server.rss().await;
            let clients = connect_many(count, server.addr, "/ws", &bearer(&token)).await;
            loop {
                let (_, sockets) = server.rss().await;
                if sockets > count {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (after, _) = server.rss().await;
            per_connection.push(after.saturating_sub(before) as f64 / count as f64);
            drop((clients, warm));
            let _ = server.child.kill().await;
        }
        println!(
            "{count} connections: bare {:.0} B, wsgate {:.0} B a connection: wsgate ÷ bare {:.3}",
            per_connection[0],
            per_connection[1],
            per_connection[1] / per_connection[0]
        );
    }
}
