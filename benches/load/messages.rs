//! Messages per second, bare against wsgate, and how they scale with connections.

use super::*;

/// The bare and the gated server, each a child process on CPU 0.
pub(crate) async fn pinned_servers() -> (ServerChild, ServerChild) {
    (
        ServerChild::start_pinned("bare").await,
        ServerChild::start_pinned("wsgate").await,
    )
}

pub(crate) async fn messages(plan: &Plan) {
    let (bare, gated) = pinned_servers().await;
    let like_for_like = ServerChild::start_pinned("bare-small-buffer").await;
    let token = child_token("bench");
    println!(
        "\n## Messages per second (echo; servers on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}; median of {} alternating rounds of {:?})",
        plan.rounds, plan.message_window
    );
    println!("{:<46} {TABLE_HEADER}", "shape");
    for (shape, connections, in_flight) in [
        ("64 connections, 1 message in flight each", 64, 1),
        ("1 connection, 32 messages in flight", 1, 32),
    ] {
        for (label, reference, path) in [
            ("", &bare, "/ws"),
            (" [no token cache]", &bare, "/ws/uncached"),
            (" [bare with a 16 KiB read buffer]", &like_for_like, "/ws"),
        ] {
            let mut bare_samples = Vec::new();
            let mut gated_samples = Vec::new();
            for _ in 0..plan.rounds {
                for (server, path, samples) in [
                    (reference, "/ws", &mut bare_samples),
                    (&gated, path, &mut gated_samples),
                ] {
                    samples.push(
                        throughput(
                            server.addr,
                            path,
                            &token,
                            (connections, in_flight),
                            plan.message_window,
                            server.child.id(),
                        )
                        .await,
                    );
                }
            }
            table_row(&format!("{shape}{label}"), &bare_samples, &gated_samples);
        }
    }
    println!("(server µs: the server process's CPU time per message, user and kernel)");
}

/// Messages/s and server CPU per message as the connections grow, one
/// message in flight on each.
pub(crate) async fn scaling(plan: &Plan) {
    let counts: &[usize] = if plan.quick {
        &[1, 64, 500]
    } else {
        &[1, 64, 1_000, 10_000]
    };
    let rounds = if plan.quick { 1 } else { 5 };
    raise_file_limit(2 * counts.iter().max().copied().unwrap_or(0) as u64 + 1_024);
    let (bare, gated) = pinned_servers().await;
    let token = child_token("bench");
    println!(
        "\n## Scaling: connections with one message in flight each (servers on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}; median of {rounds} alternating rounds of {:?})",
        plan.message_window
    );
    println!("{:<46} {TABLE_HEADER}", "connections");
    for &count in counts {
        let mut bare_samples = Vec::new();
        let mut gated_samples = Vec::new();
        for _ in 0..rounds {
            for (server, samples) in [(&bare, &mut bare_samples), (&gated, &mut gated_samples)] {
                samples.push(
                    throughput(
                        server.addr,
                        "/ws",
                        &token,
                        (count, 1),
                        plan.message_window,
                        server.child.id(),
                    )
                    .await,
                );
            }
        }
        table_row(&count.to_string(), &bare_samples, &gated_samples);
    }
}
