//! The soak: `cargo bench --bench load -- --soak SECONDS`.
//!
//! A gated server (a child process on its own CPU) and 1 000 clients that
//! live and die for the whole run. Each client, in a loop, opens a
//! connection on one of the five transports (Bearer, subprotocol, cookie,
//! ticket, first message) and lives one of these lives:
//!
//! - **talk**: a few dozen messages, each answered, then a clean close;
//! - **refresh**: the same with an in-band `auth.refresh` in the middle,
//!   after which its messages carry the new token;
//! - **expire**: a token of two seconds, messages until the server closes
//!   with 4401 `token expired`;
//! - **revoked**: its subject is revoked through the server's registry;
//!   the socket must close with 4403, and the same token must then be
//!   refused at the handshake;
//! - **refused**: a token signed with another key, or an expired one: the
//!   handshake must answer 401.
//!
//! Anything else is an unexpected outcome and is counted and shown: a
//! failed connect, a missing or wrong answer, another close code, a read
//! error. The server's resident memory and open file descriptors are read
//! every ten seconds; growth is measured from the end of the first minute
//! (or of the first sixth of a shorter run). After the clients stop, the
//! server must be back to no sockets and to the descriptors it had before.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message as ClientMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wsgate::jwt::{Algorithm, JwtIssuer, KeyPair};

use super::{Client, ORIGIN, Plan, ServerChild, bearer, connect, issue as token};

/// How long a client waits for any one answer.
const ANSWER: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
enum Via {
    Bearer,
    Subprotocol,
    Cookie,
    Ticket,
    FirstMessage,
}

impl Via {
    /// A ticket's principal is the server's `bench`, with no token of its
    /// own to expire or revoke: those lives go over Bearer instead.
    fn with_own_token(self) -> Self {
        match self {
            Via::Ticket => Via::Bearer,
            other => other,
        }
    }
}

const VIAS: [Via; 5] = [
    Via::Bearer,
    Via::Subprotocol,
    Via::Cookie,
    Via::Ticket,
    Via::FirstMessage,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Life {
    Talk,
    Refresh,
    Expire,
    Revoked,
    Refused,
}

/// Of every 20 lives: 10 talk, 5 refresh, 2 expire, 1 revoked, 2 refused.
const LIVES: [Life; 20] = [
    Life::Talk,
    Life::Refresh,
    Life::Talk,
    Life::Refused,
    Life::Talk,
    Life::Refresh,
    Life::Expire,
    Life::Talk,
    Life::Talk,
    Life::Refresh,
    Life::Revoked,
    Life::Talk,
    Life::Refresh,
    Life::Talk,
    Life::Expire,
    Life::Talk,
    Life::Refused,
    Life::Refresh,
    Life::Talk,
    Life::Talk,
];

/// A small generator for pauses and counts (not for anything secret).
struct Steps(u64);

impl Steps {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// What the clients share: the server, its tickets, the signing keys, the
/// tallies.
struct Shared {
    server: Mutex<ServerChild>,
    addr: std::net::SocketAddr,
    tickets: Mutex<Vec<String>>,
    signing: JwtIssuerSet,
    stop: AtomicBool,
    lives: std::sync::Mutex<BTreeMap<Life, u64>>,
    messages: AtomicU64,
    unexpected: AtomicU64,
    examples: std::sync::Mutex<Vec<String>>,
}

/// Issuers of the server's key for the lifetimes the lives need, and one of
/// a key the server does not know.
struct JwtIssuerSet {
    long: JwtIssuer,
    /// For refreshes: a later `exp` than `long` gives, whenever issued.
    later: JwtIssuer,
    short: JwtIssuer,
    foreign: JwtIssuer,
}

impl JwtIssuerSet {
    fn new() -> Self {
        let issuer = |key: &[u8], lifetime: u64| {
            let (signing, _) = KeyPair::hmac(key, Algorithm::HS256).unwrap().into_parts();
            JwtIssuer::builder(signing)
                .lifetime(Duration::from_secs(lifetime))
                .unwrap()
                .build()
        };
        Self {
            long: issuer(&[42; 32], 600),
            later: issuer(&[42; 32], 900),
            short: issuer(&[42; 32], 2),
            foreign: issuer(&[7; 32], 600),
        }
    }
}

fn say(token: &str, index: u64) -> ClientMessage {
    let text =
        serde_json::json!({"type": "say", "text": format!("message {index}"), "token": token});
    ClientMessage::Text(text.to_string().into())
}

impl Shared {
    fn unexpected(&self, what: String) {
        self.unexpected.fetch_add(1, Ordering::Relaxed);
        let mut examples = self.examples.lock().unwrap();
        if examples.len() < 20 {
            examples.push(what);
        }
    }

    async fn ticket(&self) -> String {
        let mut tickets = self.tickets.lock().await;
        if tickets.is_empty() {
            *tickets = self.server.lock().await.ask("tickets 500").await;
        }
        tickets.pop().unwrap()
    }

    /// Opens a connection on `via` with `token` (the ticket's principal is
    /// `bench`).
    async fn open(&self, via: Via, token: &str) -> Result<Client, String> {
        let (path, headers) = match via {
            Via::Bearer => ("/ws/any".to_owned(), bearer(token)),
            Via::Subprotocol => (
                "/ws/any".to_owned(),
                vec![(
                    "sec-websocket-protocol",
                    format!("bench.v1, wsgate.bearer.{token}"),
                )],
            ),
            Via::Cookie => (
                "/ws/any".to_owned(),
                vec![
                    ("cookie", format!("wsgate_token={token}")),
                    ("origin", ORIGIN.to_owned()),
                ],
            ),
            Via::Ticket => (
                format!("/ws/any?ticket={}", self.ticket().await),
                Vec::new(),
            ),
            Via::FirstMessage => ("/ws/deferred".to_owned(), Vec::new()),
        };
        let mut client = connect(self.addr, &path, &headers).await?;
        if let Via::FirstMessage = via {
            let auth = serde_json::json!({"type": "auth", "token": token});
            client
                .send(ClientMessage::Text(auth.to_string().into()))
                .await
                .map_err(|error| error.to_string())?;
        }
        Ok(client)
    }
}

/// What the server sent next that matters: a text or a close frame.
enum Event {
    Text(String),
    Close(u16),
}

async fn next_event(client: &mut Client) -> Result<Event, String> {
    loop {
        match tokio::time::timeout(ANSWER, client.next()).await {
            Err(_) => return Err("nothing within 10 s".to_owned()),
            Ok(None) => return Err("the stream ended without a close frame".to_owned()),
            Ok(Some(Err(error))) => return Err(format!("read error: {error}")),
            Ok(Some(Ok(ClientMessage::Text(text)))) => return Ok(Event::Text(text.to_string())),
            Ok(Some(Ok(ClientMessage::Close(frame)))) => {
                return Ok(Event::Close(frame.map_or(0, |frame| u16::from(frame.code))));
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The next text answer; a close instead is an error naming its code.
async fn answer(client: &mut Client) -> Result<serde_json::Value, String> {
    match next_event(client).await? {
        Event::Text(text) => serde_json::from_str(&text).map_err(|error| error.to_string()),
        Event::Close(code) => Err(format!("closed {code}")),
    }
}

/// Waits for the server's close frame (past any texts still coming); its
/// code.
async fn close_code(client: &mut Client) -> Result<u16, String> {
    loop {
        if let Event::Close(code) = next_event(client).await? {
            return Ok(code);
        }
    }
}

/// Sends a message and checks its echo.
async fn round_trip(client: &mut Client, token: &str, index: u64) -> Result<(), String> {
    client
        .send(say(token, index))
        .await
        .map_err(|error| error.to_string())?;
    let echo = answer(client).await?;
    if echo["text"] != format!("message {index}") {
        return Err(format!("wrong echo: {echo}"));
    }
    Ok(())
}

/// A clean close from the client: the server must answer it.
async fn leave(mut client: Client) -> Result<(), String> {
    client
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
        .await
        .map_err(|error| error.to_string())?;
    match close_code(&mut client).await? {
        1000 => Ok(()),
        code => Err(format!("answered our close with {code}")),
    }
}

/// One life; `Err` says what was unexpected.
async fn live(
    shared: &Shared,
    life: Life,
    via: Via,
    name: &str,
    steps: &mut Steps,
) -> Result<(), String> {
    let issuers = &shared.signing;
    // A ticket's principal is `bench`; its messages carry `bench`'s tokens.
    let subject = if let Via::Ticket = via { "bench" } else { name };
    match life {
        Life::Talk | Life::Refresh => {
            let mut current = token(&issuers.long, subject);
            let mut client = shared.open(via, &current).await?;
            let count = 5 + steps.next(30);
            for index in 0..count {
                if life == Life::Refresh && index == count / 2 {
                    current = token(&issuers.later, subject);
                    let refresh = serde_json::json!({"type": "auth.refresh", "token": current});
                    client
                        .send(ClientMessage::Text(refresh.to_string().into()))
                        .await
                        .map_err(|error| error.to_string())?;
                    let reply = answer(&mut client).await?;
                    if reply["type"] != "auth.refreshed" {
                        return Err(format!("refresh answered {reply}"));
                    }
                }
                round_trip(&mut client, &current, index).await?;
                shared.messages.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20 + steps.next(180))).await;
            }
            leave(client).await
        }
        Life::Expire => {
            let via = via.with_own_token();
            let current = token(&issuers.short, name);
            let mut client = shared.open(via, &current).await?;
            let started = Instant::now();
            let mut index = 0;
            loop {
                if started.elapsed() > Duration::from_secs(15) {
                    return Err("a two-second token still open after 15 s".to_owned());
                }
                match round_trip(&mut client, &current, index).await {
                    Ok(()) => shared.messages.fetch_add(1, Ordering::Relaxed),
                    Err(error) if error == "closed 4401" => return Ok(()),
                    Err(error) => return Err(format!("expiring: {error}")),
                };
                index += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Life::Revoked => {
            let via = via.with_own_token();
            let current = token(&issuers.long, name);
            let mut client = shared.open(via, &current).await?;
            round_trip(&mut client, &current, 0).await?;
            shared.messages.fetch_add(1, Ordering::Relaxed);
            let closed = shared
                .server
                .lock()
                .await
                .ask(&format!("revoke {name}"))
                .await;
            if closed.first().map(String::as_str) != Some("1") {
                return Err(format!("revoke closed {closed:?}"));
            }
            match close_code(&mut client).await? {
                4403 => {}
                code => return Err(format!("revoked, closed with {code}")),
            }
            match shared.open(Via::Bearer, &current).await {
                Err(error) if error.contains("401") => Ok(()),
                Err(error) => Err(format!("revoked token: {error}")),
                Ok(_) => Err("a revoked token was let in".to_owned()),
            }
        }
        Life::Refused => {
            // Bearer or subprotocol: the others cannot carry a bad token
            // to a 401 (a ticket is redeemed, a first message is answered
            // with a close).
            let via = if steps.next(2) == 0 {
                Via::Bearer
            } else {
                Via::Subprotocol
            };
            let bad = if steps.next(2) == 0 {
                token(&issuers.foreign, name)
            } else {
                // Expired: a lifetime of two seconds, shown after three.
                let stale = token(&issuers.short, name);
                tokio::time::sleep(Duration::from_secs(3)).await;
                stale
            };
            match shared.open(via, &bad).await {
                Err(error) if error.contains("401") => Ok(()),
                Err(error) => Err(format!("refused: {error}")),
                Ok(_) => Err("a bad token was let in".to_owned()),
            }
        }
    }
}

fn percent(later: u64, earlier: u64) -> f64 {
    (later as f64 - earlier as f64) / earlier.max(1) as f64 * 100.0
}

pub(super) async fn soak(plan: &Plan, seconds: u64) {
    let clients = if plan.quick { 100 } else { 1_000 };
    super::raise_file_limit(4 * clients as u64 + 1_024);
    let mut server = ServerChild::start_pinned("wsgate").await;
    let (rss_before, _) = server.rss().await;
    let fds_before: u64 = server.ask("fds").await[0].parse().unwrap();
    let shared = Arc::new(Shared {
        addr: server.addr,
        server: Mutex::new(server),
        tickets: Mutex::new(Vec::new()),
        signing: JwtIssuerSet::new(),
        stop: AtomicBool::new(false),
        lives: std::sync::Mutex::new(BTreeMap::new()),
        messages: AtomicU64::new(0),
        unexpected: AtomicU64::new(0),
        examples: std::sync::Mutex::new(Vec::new()),
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut steps = Steps(0x9E37_79B9_7F4A_7C15 ^ (client as u64 + 1));
                let mut turn = client;
                while !shared.stop.load(Ordering::Relaxed) {
                    let life = LIVES[turn % LIVES.len()];
                    let via = VIAS[(turn / LIVES.len() + client) % VIAS.len()];
                    let name = format!("soak-{client}-{turn}");
                    if let Err(error) = live(&shared, life, via, &name, &mut steps).await {
                        shared.unexpected(format!("{life:?} over {via:?}: {error}"));
                    }
                    *shared.lives.lock().unwrap().entry(life).or_default() += 1;
                    turn += 1;
                }
            })
        })
        .collect();
    // Readings every ten seconds; the baseline at the end of the warm-up.
    let warm_up = Duration::from_secs((seconds / 6).clamp(1, 60));
    let mut baseline = None;
    let mut readings = Vec::new();
    let deadline = started + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(10).min(deadline - Instant::now())).await;
        let mut server = shared.server.lock().await;
        let (rss, sockets) = server.rss().await;
        let fds: u64 = server.ask("fds").await[0].parse().unwrap();
        drop(server);
        let at = started.elapsed().as_secs();
        readings.push((at, rss, fds, sockets));
        if baseline.is_none() && started.elapsed() >= warm_up {
            baseline = Some((rss, fds));
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    // Every socket gone, and the descriptors back where they were.
    let mut server = shared.server.lock().await;
    let settle = Instant::now();
    let (rss_after, sockets_after) = loop {
        let (rss, sockets) = server.rss().await;
        if sockets == 0 || settle.elapsed() > Duration::from_secs(10) {
            break (rss, sockets);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let fds_after: u64 = server.ask("fds").await[0].parse().unwrap();
    drop(server);

    let (baseline_rss, baseline_fds) = baseline.unwrap_or((rss_before, fds_before));
    let peak_rss = readings.iter().map(|reading| reading.1).max().unwrap_or(0);
    let last = readings.last().copied().unwrap_or_default();
    let lives = shared.lives.lock().unwrap().clone();
    let unexpected = shared.unexpected.load(Ordering::Relaxed);
    println!(
        "\n## Soak: {clients} clients for {seconds} s (server on CPU {}, clients on CPU {})",
        super::SERVER_CPU,
        super::CLIENT_CPU
    );
    println!(
        "lives: {} ({lives:?}); messages answered: {}",
        lives.values().sum::<u64>(),
        shared.messages.load(Ordering::Relaxed)
    );
    println!("unexpected outcomes: {unexpected}");
    for example in shared.examples.lock().unwrap().iter() {
        println!("  {example}");
    }
    println!("readings (s, RSS MiB, fds, sockets):");
    for (at, rss, fds, sockets) in &readings {
        println!(
            "  {at:>5} {:>8.1} {fds:>6} {sockets:>6}",
            *rss as f64 / 1_048_576.0
        );
    }
    println!(
        "RSS: before {:.1} MiB, after warm-up {:.1} MiB, last reading {:.1} MiB ({:+.1} % since warm-up), peak {:.1} MiB, after the clients left {:.1} MiB",
        rss_before as f64 / 1_048_576.0,
        baseline_rss as f64 / 1_048_576.0,
        last.1 as f64 / 1_048_576.0,
        percent(last.1, baseline_rss),
        peak_rss as f64 / 1_048_576.0,
        rss_after as f64 / 1_048_576.0,
    );
    println!(
        "open fds: before {fds_before}, after warm-up {baseline_fds}, last reading {}, after the clients left {fds_after}; sockets left {sockets_after}",
        last.2
    );
    let _ = shared.server.lock().await.child.kill().await;
    if unexpected > 0 || sockets_after > 0 || fds_after > fds_before {
        eprintln!("the soak saw something unexpected (above)");
        std::process::exit(1);
    }
}
