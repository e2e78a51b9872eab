//! The server child: one side, pinned to its own CPU.

use super::*;

/// Runs in a child process: serves (bare or gated) and answers commands on
/// standard input, so the server's memory is measured alone and clients
/// and server do not share one open-file limit.
///
/// Sides: `bare` (axum's 128 KiB read buffer), `bare-small-buffer`
/// (wsgate's 16 KiB), `bare-es256` (its own ES256 check), `wsgate` (every
/// route of [`gated_server_with`]), `wsgate:/ws` (one route alone).
///
/// Commands: `rss` → `RSS <resident bytes> <live sockets>`; `revoke <sub>`
/// → `REVOKED <closed>`. Prints `PORT <port>` first.
pub(crate) async fn server_child(side: &str) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    // 100 000 sockets and more (the memory and revocation parts).
    raise_file_limit(262_144);
    let live = Arc::new(AtomicUsize::new(0));
    let (addr, gated) = if side == "bare" {
        (serve(bare_router(live.clone())).await, None)
    } else if side == "bare-small-buffer" {
        // Bare axum with wsgate's read buffer: wsgate's own cost, like for like.
        let read_buffer = Some(wsgate::socket::DEFAULT_READ_BUFFER_BYTES);
        (
            serve(bare_router_with(live.clone(), read_buffer)).await,
            None,
        )
    } else if side == "bare-es256" {
        (serve(bare_es256_router(live.clone())).await, None)
    } else {
        // With a Redis URL, the child is one process of several sharing it:
        // its revocations and tickets there, or every store with
        // `WSGATE_BENCH_REDIS_EVERYTHING`.
        let redis = std::env::var("WSGATE_BENCH_REDIS_URL")
            .ok()
            .map(|url| wsgate::redis::RedisStores::builder(url).build().unwrap());
        let in_redis = match &redis {
            None => InRedis::Nothing,
            Some(redis) if std::env::var_os(REDIS_EVERYTHING).is_some() => {
                InRedis::Everything(redis)
            }
            Some(redis) => InRedis::RevocationsAndTickets(redis),
        };
        // `wsgate:/ws`: that route alone.
        let only = side.strip_prefix("wsgate:");
        let gated = gated_server_with(in_redis, only).await;
        (gated.addr, Some(gated))
    };
    let registry = gated.as_ref().map(|gated| gated.registry.clone());
    let mut stdout = tokio::io::stdout();
    let mut say = async |line: String| {
        stdout
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdout.flush().await.unwrap();
    };
    say(format!("PORT {}", addr.port())).await;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("rss"), _) => {
                let sockets = registry
                    .as_ref()
                    .map_or_else(|| live.load(Ordering::SeqCst), Registry::len);
                say(format!("RSS {} {sockets}", resident_bytes())).await;
            }
            // Tokens the child accepts, for a client of its own (a script
            // driving the child under callgrind, say).
            (Some("token"), Some(algorithm)) => {
                let token = match algorithm {
                    "es256" => child_es256_token("bench"),
                    _ => child_token("bench"),
                };
                say(format!("TOKEN {token}")).await;
            }
            (Some("fds"), _) => {
                let open = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
                say(format!("FDS {open}")).await;
            }
            (Some("tickets"), Some(count)) => {
                let gated = gated.as_ref().expect("tickets need the gated server");
                let principal = Principal::new("bench", AuthMethod::Token).with_roles(["user"]);
                let mut tickets = Vec::new();
                for _ in 0..count.parse::<usize>().unwrap() {
                    let ticket = gated.gate.issue_ticket(&principal).await.unwrap();
                    tickets.push(ticket.ticket().expose().to_owned());
                }
                say(format!("TICKETS {}", tickets.join(" "))).await;
            }
            (Some("verify-es256"), Some(count)) => {
                // What one ES256 verification costs on this process's CPU.
                let (_, verification) = es256_keys();
                let verifier = JwtVerifier::builder().key(verification).build().unwrap();
                let token = child_es256_token("bench");
                let count = count.parse::<u32>().unwrap();
                let started = Instant::now();
                for _ in 0..count {
                    std::hint::black_box(verifier.verify_token(&token).unwrap());
                }
                let each = started.elapsed().as_secs_f64() * 1e6 / f64::from(count);
                say(format!("MICROSECONDS {each:.2}")).await;
            }
            (Some("revoke"), Some(subject)) => {
                let registry = registry
                    .as_ref()
                    .expect("revocation needs the gated server");
                let revocation = Revocation::Subject {
                    subject: subject.to_owned(),
                    issued_before: SystemTime::now(),
                };
                let closed = registry.revoke(revocation).await.unwrap();
                say(format!("REVOKED {closed}")).await;
            }
            _ => say("?".to_owned()).await,
        }
    }
}

/// Set on a gated child with a Redis URL: every store in Redis.
pub(crate) const REDIS_EVERYTHING: &str = "WSGATE_BENCH_REDIS_EVERYTHING";

/// A server child process and its command pipe.
pub(crate) struct ServerChild {
    pub(crate) child: tokio::process::Child,
    pub(crate) stdin: tokio::process::ChildStdin,
    pub(crate) lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    pub(crate) addr: SocketAddr,
}

impl ServerChild {
    pub(crate) async fn start(side: &str) -> Self {
        Self::start_with(side, &[]).await
    }

    /// A child on the server's CPU, with one worker thread.
    pub(crate) async fn start_pinned(side: &str) -> Self {
        Self::spawn(side, &[], Some(server_cpu())).await
    }

    /// A child with a worker thread on each of `cpus`.
    pub(crate) async fn start_on(side: &str, cpus: Cpus) -> Self {
        Self::spawn(side, &[], Some(cpus)).await
    }

    pub(crate) async fn start_with(side: &str, environment: &[(&str, String)]) -> Self {
        Self::spawn(side, environment, None).await
    }

    pub(crate) async fn spawn(
        side: &str,
        environment: &[(&str, String)],
        cpus: Option<Cpus>,
    ) -> Self {
        use tokio::io::AsyncBufReadExt;
        let cpus = cpus.map(|cpus| cpus.to_string());
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--server-child", side])
            .args(cpus.iter().flat_map(|cpus| ["--cpus", cpus.as_str()]))
            .envs(
                environment
                    .iter()
                    .map(|(name, value)| (*name, value.as_str())),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next_line().await.unwrap().unwrap();
        let port: u16 = first.strip_prefix("PORT ").unwrap().parse().unwrap();
        Self {
            child,
            stdin,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    pub(crate) async fn ask(&mut self, command: &str) -> Vec<String> {
        use tokio::io::AsyncWriteExt;
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        let answer = self.lines.next_line().await.unwrap().unwrap();
        answer
            .split_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect()
    }

    pub(crate) async fn rss(&mut self) -> (u64, usize) {
        let answer = self.ask("rss").await;
        (answer[0].parse().unwrap(), answer[1].parse().unwrap())
    }
}

/// The ES256 key pair of the fixtures: the children verify with it.
pub(crate) fn es256_keys() -> (wsgate::jwt::SigningKey, wsgate::jwt::VerificationKey) {
    KeyPair::from_private_pem(wsgate_testkit::fixtures::jwt("es256-private.pem"))
        .unwrap()
        .into_parts()
}

/// An ES256 token the children's `/ws/es256` route accepts.
pub(crate) fn child_es256_token(subject: &str) -> String {
    issue(&JwtIssuer::builder(es256_keys().0).build(), subject)
}

/// Tokens the children accept: they sign with the same fixed test key.
pub(crate) fn child_token(subject: &str) -> String {
    let (signing, _) = KeyPair::hmac(&[42; 32], Algorithm::HS256)
        .unwrap()
        .into_parts();
    issue(&JwtIssuer::builder(signing).build(), subject)
}
