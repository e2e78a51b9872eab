//! Resident memory per idle connection.

use super::*;

pub(crate) async fn memory(plan: &Plan) {
    let most = plan.idle_connections.iter().max().copied().unwrap_or(0);
    let limit = raise_file_limit(most as u64 + 1_024) as usize;
    println!("\n## Resident memory of the server per idle connection");
    for &wanted in plan.idle_connections {
        // Each side holds one descriptor a connection, under the hard
        // limit, which only a process with CAP_SYS_RESOURCE may raise.
        let count = wanted.min(limit.saturating_sub(1_024));
        if count < wanted {
            println!(
                "({wanted} connections need {} open files a process; this machine allows {limit}: measured at {count})",
                wanted + 1_024
            );
        }
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
            "{count} connections: bare {:.0} B, wsgate {:.0} B: wsgate adds {:.0} B per connection",
            per_connection[0],
            per_connection[1],
            per_connection[1] - per_connection[0]
        );
    }
}
