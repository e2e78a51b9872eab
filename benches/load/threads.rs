//! Many cores: the server on 1, 2, 4 and 8 worker threads against a client
//! on other CPUs, bare beside wsgate, messages and handshakes.

use super::*;

/// Messages and handshakes per second as the server's worker threads grow.
/// Each server is a child with a worker thread on each of CPUs 0..n; the
/// client has the CPUs after the largest server's ([`many_core_split`]).
/// Bare is axum with wsgate's read buffer (like for like); wsgate checks
/// an HS256 token at the handshake and on every message; each serves one
/// route. The load grows
/// with the threads (64 connections and 32 connect-and-drop clients per
/// server thread), so each thread has as much to do in every row.
pub(crate) async fn threads(plan: &Plan) {
    let (counts, client) = many_core_split();
    // Five rounds of a second: a row per thread count, each with two
    // measures, keeps the part within a few minutes on 16 CPUs.
    let rounds = plan.rounds.min(5);
    let window = plan.message_window.min(Duration::from_secs(1));
    raise_file_limit(64 * 8 * 4 + 4_096);
    let token = child_token("bench");
    println!(
        "\n## Many cores: the server on {counts:?} worker threads (CPUs 0..n), the client on CPUs {client}; median of {rounds} alternating rounds of {window:?}"
    );
    let largest = SERVER_THREADS.iter().max().copied().unwrap_or(1);
    if counts.last().copied().unwrap_or(1) < largest {
        println!(
            "({} CPUs here: {largest} server threads need {} CPUs, half of them for the client)",
            Cpus::online().len(),
            2 * largest
        );
    }
    println!("{:<46} {TABLE_HEADER}", "server threads: measure");
    let mut ratios: Vec<(usize, f64, f64)> = Vec::new();
    for &count in &counts {
        let cpus = Cpus::range(SERVER_CPU, count);
        let bare = ServerChild::start_on("bare-small-buffer", cpus.clone()).await;
        let gated = ServerChild::start_on("wsgate:/ws", cpus).await;
        let mut messages: [Vec<Sample>; 2] = Default::default();
        let mut handshakes: [Vec<Sample>; 2] = Default::default();
        for _ in 0..rounds {
            for (index, (server, headers)) in [(&bare, Vec::new()), (&gated, bearer(&token))]
                .into_iter()
                .enumerate()
            {
                messages[index].push(
                    throughput(
                        server.addr,
                        "/ws",
                        &token,
                        (64 * count, 1),
                        window,
                        server.child.id(),
                    )
                    .await,
                );
                handshakes[index].push(
                    handshake_sample_of(
                        HANDSHAKE_CLIENTS * count,
                        server.addr,
                        window,
                        server.child.id(),
                        move || ("/ws".to_owned(), headers.clone()),
                    )
                    .await,
                );
            }
        }
        let ratio = |samples: &[Vec<Sample>; 2]| medians(&samples[1]).0 / medians(&samples[0]).0;
        ratios.push((count, ratio(&messages), ratio(&handshakes)));
        let [bare_messages, gated_messages] = &messages;
        let [bare_handshakes, gated_handshakes] = &handshakes;
        table_row(
            &format!("{count}: messages ({} × 1)", 64 * count),
            bare_messages,
            gated_messages,
        );
        table_row(
            &format!(
                "{count}: handshakes ({} clients)",
                HANDSHAKE_CLIENTS * count
            ),
            bare_handshakes,
            gated_handshakes,
        );
    }
    println!("(busy: CPUs' worth of the server's time over the window, up to its threads)");
    if let (Some(first), Some(last)) = (ratios.first(), ratios.last())
        && last.0 > first.0
    {
        let change = |from: f64, to: f64| (to / from - 1.0) * 100.0;
        println!(
            "ratio from {} to {} threads: messages {:+.1} %, handshakes {:+.1} %",
            first.0,
            last.0,
            change(first.1, last.1),
            change(first.2, last.2)
        );
    }
}
