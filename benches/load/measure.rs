//! What a round measures: CPU time, memory, rates, medians, and the tables.

use super::*;

/// Raises the open-file limit to at least `wanted` (root may raise the hard
/// limit too); returns what it is now.
pub(crate) fn raise_file_limit(wanted: u64) -> u64 {
    // Never lower the hard limit: only a privileged process raises it back.
    if let Ok((_, hard)) = rlimit::getrlimit(rlimit::Resource::NOFILE)
        && hard < wanted
    {
        let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, wanted, wanted);
    }
    rlimit::increase_nofile_limit(wanted).unwrap_or(0)
}

/// Raises the file limit for `wanted` sockets in a process, and 1 024
/// files besides; returns how many sockets the limit allows, and says so
/// where that is fewer (the hard limit rises only for a process with
/// `CAP_SYS_RESOURCE`).
pub(crate) fn sockets_allowed(wanted: usize) -> usize {
    let limit = raise_file_limit(wanted as u64 + 1_024) as usize;
    let allowed = wanted.min(limit.saturating_sub(1_024));
    if allowed < wanted {
        println!(
            "({wanted} sockets need {} open files a process; this machine allows {limit}: measured at {allowed})",
            wanted + 1_024
        );
    }
    allowed
}

/// CPU time (user + system) of process `pid` (or `self`), from /proc.
pub(crate) fn cpu_time_of(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ")";
    // utime and stime are fields 14 and 15 of the file, 11 and 12 here.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Resident memory of this process, from /proc.
pub(crate) fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(crate) fn percentile(values: &mut [Duration], fraction: f64) -> Duration {
    values.sort();
    let index = ((values.len() as f64 - 1.0) * fraction).round() as usize;
    values[index.min(values.len() - 1)]
}

/// A throughput sample: messages (or handshakes) per second; and, when the
/// server is a child process, its own CPU microseconds per message and how
/// busy it was (1.0: a whole core the whole window).
pub(crate) struct Sample {
    pub(crate) per_second: f64,
    pub(crate) server: Option<ServerCpu>,
}

#[derive(Clone, Copy)]
pub(crate) struct ServerCpu {
    pub(crate) per_item: f64,
    pub(crate) busy: f64,
}

/// Reads a server child's CPU time around a window.
pub(crate) struct ServerClock {
    pub(crate) pid: String,
    pub(crate) cpu: Duration,
    pub(crate) started: Instant,
}

impl ServerClock {
    pub(crate) fn start(pid: Option<u32>) -> Option<Self> {
        let pid = pid?.to_string();
        Some(Self {
            cpu: cpu_time_of(&pid),
            pid,
            started: Instant::now(),
        })
    }

    pub(crate) fn stop(self, items: u64) -> ServerCpu {
        let cpu = cpu_time_of(&self.pid) - self.cpu;
        ServerCpu {
            per_item: cpu.as_secs_f64() * 1e6 / items.max(1) as f64,
            busy: cpu.as_secs_f64() / self.started.elapsed().as_secs_f64(),
        }
    }
}

/// Lets `tasks` run until `window` has passed since `started`, stops them,
/// and makes the sample of the `count` they reached.
pub(crate) async fn end_window(
    window: Duration,
    stop: &AtomicBool,
    count: &AtomicU64,
    started: Instant,
    server_clock: Option<ServerClock>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> Sample {
    tokio::time::sleep_until((started + window).into()).await;
    stop.store(true, Ordering::Relaxed);
    let done = count.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    let server = server_clock.map(|clock| clock.stop(done));
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    Sample {
        per_second: done as f64 / elapsed.as_secs_f64(),
        server,
    }
}

/// Echo throughput: `connections` clients keep `in_flight` messages each in
/// flight for `window`; `server` is the server's pid when it is a child.
pub(crate) async fn throughput(
    addr: SocketAddr,
    path: &str,
    token: &str,
    shape: (usize, usize),
    window: Duration,
    server: Option<u32>,
) -> Sample {
    let (connections, in_flight) = shape;
    let message =
        serde_json::json!({"type": "say", "text": "hello, world", "token": token}).to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let clients = connect_many(connections, addr, path, &bearer(token)).await;
    let started = Instant::now();
    let server_clock = ServerClock::start(server);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let (stop, count, message) = (stop.clone(), count.clone(), message.clone());
            tokio::spawn(async move {
                let (mut sink, mut stream) = client.split();
                for _ in 0..in_flight {
                    sink.send(ClientMessage::Text(message.clone().into()))
                        .await
                        .unwrap();
                }
                while let Some(Ok(reply)) = stream.next().await {
                    if !reply.is_text() {
                        continue;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if sink
                        .send(ClientMessage::Text(message.clone().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                let _ = sink.close().await;
            })
        })
        .collect();
    end_window(window, &stop, &count, started, server_clock, tasks).await
}

/// Handshakes per second with 32 clients connecting and disconnecting in a
/// loop; `credentials` gives each attempt its headers and path. With the
/// server's pid, also its CPU per handshake.
pub(crate) async fn handshakes<F>(addr: SocketAddr, window: Duration, credentials: F) -> f64
where
    F: Fn() -> (String, Vec<(&'static str, String)>) + Send + Sync + 'static,
{
    handshake_sample(addr, window, None, credentials)
        .await
        .per_second
}

/// Like [`handshakes`], with the whole sample.
pub(crate) async fn handshake_sample<F>(
    addr: SocketAddr,
    window: Duration,
    server: Option<u32>,
    credentials: F,
) -> Sample
where
    F: Fn() -> (String, Vec<(&'static str, String)>) + Send + Sync + 'static,
{
    handshake_sample_of(HANDSHAKE_CLIENTS, addr, window, server, credentials).await
}

/// Clients connecting and disconnecting at once in the handshake parts.
pub(crate) const HANDSHAKE_CLIENTS: usize = 32;

/// Like [`handshake_sample`], with `clients` connecting at once.
pub(crate) async fn handshake_sample_of<F>(
    clients: usize,
    addr: SocketAddr,
    window: Duration,
    server: Option<u32>,
    credentials: F,
) -> Sample
where
    F: Fn() -> (String, Vec<(&'static str, String)>) + Send + Sync + 'static,
{
    let credentials = Arc::new(credentials);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let server_clock = ServerClock::start(server);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, count, credentials) = (stop.clone(), count.clone(), credentials.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let (path, headers) = credentials();
                    if let Ok(client) = connect_to_drop(addr, &path, &headers).await {
                        count.fetch_add(1, Ordering::Relaxed);
                        drop(client);
                    }
                }
            })
        })
        .collect();
    end_window(window, &stop, &count, started, server_clock, tasks).await
}

/// Medians of a side's samples: rate, server µs per item, server busy.
pub(crate) fn medians(samples: &[Sample]) -> (f64, f64, f64) {
    let of = |value: &dyn Fn(&Sample) -> f64| median(samples.iter().map(value).collect());
    (
        of(&|sample| sample.per_second),
        of(&|sample| sample.server.map_or(f64::NAN, |server| server.per_item)),
        of(&|sample| sample.server.map_or(f64::NAN, |server| server.busy)),
    )
}

/// The spread of a side's rates: (max − min) / median, in percent.
pub(crate) fn spread(samples: &[Sample]) -> f64 {
    let rates: Vec<f64> = samples.iter().map(|sample| sample.per_second).collect();
    let (low, high) = rates
        .iter()
        .fold((f64::MAX, f64::MIN), |(low, high), rate| {
            (low.min(*rate), high.max(*rate))
        });
    (high - low) / median(rates) * 100.0
}

pub(crate) const TABLE_HEADER: &str =
    "bare/s  wsgate/s  ratio  server µs: bare  wsgate  (busy: bare wsgate; spread of rates)";

pub(crate) fn table_row(label: &str, bare: &[Sample], gated: &[Sample]) {
    let (bare_rate, bare_cpu, bare_busy) = medians(bare);
    let (gated_rate, gated_cpu, gated_busy) = medians(gated);
    println!(
        "{label:<46} {bare_rate:>9.0} {gated_rate:>9.0} {:>6.3} {bare_cpu:>9.2} {gated_cpu:>7.2}  ({bare_busy:.2} {gated_busy:.2}; ±{:.1} % ±{:.1} %)",
        gated_rate / bare_rate,
        spread(bare) / 2.0,
        spread(gated) / 2.0,
    );
}
