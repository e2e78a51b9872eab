//! The connection driver: owns the WebSocket, runs every inbound message
//! through the pipeline, and enforces the lifecycle.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{Sink, SinkExt as _, Stream};
use tokio::sync::futures::Notified;
use tokio::time::{Instant, Sleep, sleep_until, timeout};
use tower_service::Service;

use crate::audit::{AuditEvent, metrics};
use crate::authenticate::{Authenticator, BoxedAuthenticator, Credential};
use crate::certificate::ClientCertificate;
use crate::clock::Clock;
use crate::dpop::{self, TargetUrl};
use crate::error::Error;
use crate::limit::{SocketLease, admit};
use crate::principal::{Principal, Transport};
use crate::recheck::Standing;
use crate::secret::Secret;
use crate::session::{BoxedPipeline, Close, CloseKind, Inbound, Session, Verdict, reason};
use crate::socket::gated_socket::{GatedSender, GatedSocket};
use crate::socket::interest::Interest;
use crate::socket::join::Join;
use crate::socket::queue::{Place, QueueReceiver, QueueSender, TrySendError, queue};
use crate::socket::registry::{PendingSlot, Registration};
use crate::socket::socket_gate::{GateConfig, SocketGate};
use crate::store::check_revocation;

/// How long to wait for the client's answer to our close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A token bucket: `rate` per second, bursts of twice that.
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second);
        Self {
            rate,
            capacity: rate * 2.0,
            tokens: rate * 2.0,
            refilled: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// When the session's token expires, on tokio's clock.
fn expiry_deadline(session: &Session, clock: &Clock) -> Option<Instant> {
    let expires_at = session.principal().expires_at()?;
    let remaining = expires_at.duration_since(clock.now()).unwrap_or_default();
    Some(Instant::now() + remaining)
}

/// Runs the principal's [`Recheck`](crate::Recheck) on its interval for as
/// long as the socket is open, and returns the close once the credential no
/// longer holds: 4403 `token revoked` when the source says so, 1011 when it
/// could not say twice in a row. The principal is read anew each round, so
/// an in-band refresh takes effect (a refreshed principal without a recheck
/// is looked at again after the last interval).
async fn recheck_credential(session: Arc<Session>) -> Close {
    let mut every = Duration::from_secs(60);
    let mut failures = 0;
    loop {
        if let Some(recheck) = session.principal().recheck() {
            every = recheck.every();
        }
        tokio::time::sleep(every).await;
        let Some(recheck) = session.principal().recheck().cloned() else {
            continue;
        };
        match recheck.check().await {
            Ok(Standing::Active) => failures = 0,
            Ok(Standing::Inactive) => {
                return Close::new(CloseKind::Forbidden, reason::TOKEN_REVOKED);
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(conn = session.id().get(), %error, "credential recheck failed");
                if failures >= 2 {
                    return Close::new(CloseKind::BackendFailed, reason::BACKEND_FAILED);
                }
            }
        }
    }
}

/// Sends the answer to the client's close frame, which tungstenite has
/// queued (echoing the client's code, or 1002 for a code no one may send):
/// it goes out on the next write or flush, and there is none after the
/// socket is dropped. A client that does not read gets the grace, no more.
async fn answer_close(ws: &mut WebSocket) {
    let _ = timeout(CLOSE_GRACE, ws.flush()).await;
}

/// Sends a close frame, then waits a moment for the client's answer; the
/// whole within [`CLOSE_GRACE`], so a client that stopped reading (whose
/// receive window is full, so the frame cannot even be written) costs the
/// server one second and then its connection.
async fn send_close(ws: &mut WebSocket, code: u16, phrase: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(phrase),
    };
    let _ = timeout(CLOSE_GRACE, async {
        if ws.send(Message::Close(Some(frame))).await.is_ok() {
            while let Some(Ok(message)) = ws.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        }
    })
    .await;
}

/// Runs an authenticated connection: registers it, checks the revocation
/// store once more, hands the application a [`GatedSocket`], and drives
/// the WebSocket until either side ends. `lease`, the socket's place among
/// its subject's, is held until it leaves the registry.
pub(crate) async fn serve<F, Fut>(
    mut ws: WebSocket,
    gate: SocketGate,
    session: Arc<Session>,
    lease: Option<SocketLease>,
    handler: F,
) where
    F: FnOnce(GatedSocket) -> Fut,
    Fut: Future<Output = ()>,
{
    let config = &gate.config;
    // Registered first, then checked: a revocation writes the store before
    // it reads the registry, so one that lands between the handshake's
    // check and this registration is seen here, and one that lands after
    // this check finds the socket registered. (Each side goes through a
    // lock, which orders the two.)
    let mut registration = config.registry.register(session.clone());
    let principal = session.principal();
    // A place taken away between the handshake and now (a newer socket of
    // the subject evicted it) closes the socket before it starts.
    let standing = match &lease {
        Some(lease) if !lease.attach(&session) => Err(SocketLease::evicted_close()),
        _ => check_revocation(config.registry.revocations(), &principal, Some(&session))
            .await
            .map_err(|error| Close::for_failed_credential(&error)),
    };
    registration.hold(lease);
    if let Err(close) = standing {
        drop(registration);
        let code = config.close_codes.code(close.kind);
        config
            .registry
            .auditor()
            .record(&AuditEvent::closed(&session, close, code));
        send_close(&mut ws, code, close.reason).await;
        return;
    }
    let (inbound_sender, inbound) = queue(config.queue);
    let (outbound_sender, outbound) = queue(config.queue);
    let socket = GatedSocket {
        session: session.clone(),
        inbound,
        sender: GatedSender {
            outbound: outbound_sender,
        },
    };
    Join::new(
        handler(socket),
        drive(ws, &gate, &session, registration, inbound_sender, outbound),
    )
    .await;
}

async fn drive(
    mut ws: WebSocket,
    gate: &SocketGate,
    session: &Arc<Session>,
    registration: Registration,
    deliver: QueueSender<Inbound>,
    outbound: QueueReceiver<Message>,
) {
    let config = &gate.config;
    // Each source is polled only when it may be ready (`interest.rs`), and
    // each wakes the driver through the waker its polls come with: always
    // its half of the `Join` in `serve`.
    let driver_waker = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
    let mut driver = Driver::new(
        config,
        gate.pipeline.clone(),
        session,
        deliver,
        outbound,
        &driver_waker,
    );
    let ending = poll_fn(|cx| driver.poll(&mut ws, cx)).await;
    // The socket is no longer live: it leaves the registry now, not once
    // the close frame got through (a client that stopped reading may never
    // take it), and what was in flight goes with the driver: a pipeline
    // call still waiting (an async policy that hangs) is dropped, not
    // awaited.
    drop(registration);
    drop(driver);
    match ending {
        Ending::Close(close) => {
            let code = config.close_codes.code(close.kind);
            if close.kind != CloseKind::Normal {
                let event = AuditEvent::closed(session, close, code);
                config.registry.auditor().record(&event);
            }
            send_close(&mut ws, code, close.reason).await;
        }
        Ending::ClientClosed => answer_close(&mut ws).await,
        Ending::Gone => {}
    }
}

/// The pipeline's answer to a message, while it is being worked out.
type Deciding = <BoxedPipeline as Service<Inbound>>::Future;

/// What one source of the driver did in a turn.
enum Step {
    /// Nothing new: its future is pending (and will wake the driver).
    Idle,
    /// It did something; the turn goes round again.
    Progressed,
    /// The connection ends.
    End(Ending),
}

/// How a connection ends.
enum Ending {
    /// wsgate closes it: this close frame, audited unless normal.
    Close(Close),
    /// The client sent a close frame; tungstenite queued the answer.
    ClientClosed,
    /// The client is gone: nobody is left to tell.
    Gone,
}

impl Ending {
    fn close(kind: CloseKind, reason: &'static str) -> Step {
        Step::End(Ending::Close(Close::new(kind, reason)))
    }

    fn normal() -> Step {
        Self::close(CloseKind::Normal, "")
    }
}

/// Most frames read in one poll of the driver before it lets the other
/// half of the connection (and the worker's other tasks) run.
const READS_PER_POLL: usize = 64;

/// The connection's state between polls.
///
/// The driver never awaits one thing while others wait: every source (the
/// session's wake-ups and close requests, the credential's recheck, the
/// lifecycle timer, the write side, the application's messages, the
/// pipeline's call, the hand-over to the handler, the read side) is polled
/// in order of priority in each turn, and none of them blocks another. So
/// a client that stops reading, or a policy that never answers, holds back
/// only what depends on it; a revocation, an expiry, a kick, the idle
/// timeout and the write timeout are served all the same.
///
/// # Wakers
///
/// - The driver is always polled with the waker of its half of the
///   `Join` (`join.rs`); each interest is given that waker once, when
///   made, and wakes it (`interest.rs`). A source's future is polled only
///   with its interest's waker, never the driver's, so a wake always
///   raises the flag that lets the next turn poll it.
/// - tokio-tungstenite keeps one waker for reads and one for writes, each
///   registered by the last poll of that side (`compat.rs`); its proxy
///   wakes both on any readiness of the socket. The read interest's waker
///   goes only to `poll_next`, the write interest's only to `poll_ready`
///   and `poll_flush`, so neither replaces the other's.
/// - The session's `Notify` keeps a permit for a wake that comes while
///   nobody waits, so a close request made between two turns is not lost;
///   and the close flag is read at the top of every turn anyway.
/// - The application's queue (`queue.rs`) keeps the waker of the last
///   `poll_recv_all` while it is empty; only the driver receives from it.
/// - The handler's queue keeps the driver's waker, in line, while the
///   driver waits for room; only the driver sends on it, and it leaves the
///   line when it ends (`Drop`).
/// - The pipeline's future is polled with the driver's own waker: it is
///   polled on every turn while it is pending (there is at most one, and
///   no message is read meanwhile).
struct Driver<'a> {
    config: &'a GateConfig,
    session: &'a Arc<Session>,
    pipeline: BoxedPipeline,
    deliver: QueueSender<Inbound>,
    /// The driver's place in the handler's queue's line, while
    /// `undelivered` waits for room.
    delivery_place: Place,
    outbound: QueueReceiver<Message>,
    bucket: Option<TokenBucket>,
    last_heard: Instant,
    expiry: Option<Instant>,
    next_ping: Option<Instant>,
    /// One timer for the whole lifecycle (expiry, idle, ping, write
    /// timeout), armed at the earliest of them and re-armed only when it
    /// fires or a deadline moves earlier: per-message timer work would
    /// cost more than the rest of the turn. The idle and write deadlines
    /// are checked lazily when it fires.
    lifecycle: Pin<Box<Sleep>>,
    woken: Pin<Box<Notified<'a>>>,
    /// Only credentials that ask for it (introspected tokens) are checked
    /// again while the socket is open; the others cost nothing here, not
    /// even the memory of the recheck's timer.
    recheck: Option<Pin<Box<dyn Future<Output = Close> + Send + 'a>>>,
    reading: Interest,
    writing: Interest,
    waking: Interest,
    timing: Interest,
    replies: Interest,
    /// A message read from the client, waiting for the pipeline to be
    /// ready.
    unready: Option<Inbound>,
    /// The pipeline's call for the last message, while it is pending.
    deciding: Option<Deciding>,
    /// A message the pipeline let through that the handler's queue had no
    /// room for. While one waits, nothing more is read from the client,
    /// and the lifecycle is still served.
    undelivered: Option<Inbound>,
    /// What to write, in order: the application's messages (taken from its
    /// channel a batch at a time, and only once the last batch is
    /// written), the pipeline's replies, pings. While it holds anything,
    /// nothing more is read from the client.
    outgoing: VecDeque<Message>,
    /// Messages written to the WebSocket since its last flush.
    unflushed: bool,
    /// Since when the write side has waited for the client to take what it
    /// was sent, without progress.
    write_waiting_since: Option<Instant>,
}

impl Drop for Driver<'_> {
    fn drop(&mut self) {
        self.deliver.leave(&mut self.delivery_place);
    }
}

impl<'a> Driver<'a> {
    fn new(
        config: &'a GateConfig,
        pipeline: BoxedPipeline,
        session: &'a Arc<Session>,
        deliver: QueueSender<Inbound>,
        outbound: QueueReceiver<Message>,
        driver_waker: &Waker,
    ) -> Self {
        let limits = &config.limits;
        let last_heard = Instant::now();
        let expiry = expiry_deadline(session, &config.handshake.wiring.clock);
        let next_ping = limits.ping_interval.map(|every| last_heard + every);
        let mut driver = Self {
            config,
            session,
            pipeline,
            deliver,
            delivery_place: Place::default(),
            outbound,
            bucket: limits.message_rate.map(TokenBucket::new),
            last_heard,
            expiry,
            next_ping,
            lifecycle: Box::pin(sleep_until(last_heard)),
            woken: Box::pin(session.notified()),
            recheck: None,
            reading: Interest::new(driver_waker),
            writing: Interest::new(driver_waker),
            waking: Interest::new(driver_waker),
            timing: Interest::new(driver_waker),
            replies: Interest::new(driver_waker),
            unready: None,
            deciding: None,
            undelivered: None,
            outgoing: VecDeque::new(),
            unflushed: false,
            write_waiting_since: None,
        };
        driver.start_recheck_if_asked();
        driver.rearm();
        driver
    }

    /// The earliest deadline of the lifecycle.
    fn next_deadline(&self) -> Option<Instant> {
        let limits = &self.config.limits;
        [
            self.expiry,
            self.next_ping,
            limits.idle_timeout.map(|idle| self.last_heard + idle),
            self.write_waiting_since
                .map(|since| since + limits.write_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Arms the lifecycle timer at the earliest deadline.
    fn rearm(&mut self) {
        let never = || Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let deadline = self.next_deadline().unwrap_or_else(never);
        self.lifecycle.as_mut().reset(deadline);
        self.timing.mark();
    }

    fn start_recheck_if_asked(&mut self) {
        if self.recheck.is_none() && self.session.principal().recheck().is_some() {
            self.recheck = Some(Box::pin(recheck_credential(self.session.clone())));
        }
    }

    /// Whether reading from the client waits for something else: the
    /// pipeline, the handler, or the client itself taking what it was
    /// sent.
    fn reading_paused(&self) -> bool {
        self.unready.is_some()
            || self.deciding.is_some()
            || self.undelivered.is_some()
            || !self.outgoing.is_empty()
    }

    /// One poll: turns until every source is pending (or the connection
    /// ends).
    fn poll(&mut self, ws: &mut WebSocket, cx: &mut Context<'_>) -> Poll<Ending> {
        let mut reads = 0;
        loop {
            if let Some(close) = self.session.take_close_request() {
                return Poll::Ready(Ending::Close(close));
            }
            let mut progressed = false;
            macro_rules! step {
                ($step:expr) => {
                    match $step {
                        Step::Idle => {}
                        Step::Progressed => progressed = true,
                        Step::End(ending) => return Poll::Ready(ending),
                    }
                };
            }
            // Lifecycle first, so neither a flood of messages nor anything
            // pending below delays an expiry or a revocation.
            step!(self.poll_woken());
            step!(self.poll_recheck(cx));
            step!(self.poll_timer());
            step!(self.poll_replies());
            step!(self.poll_write(ws));
            step!(self.poll_pipeline(cx));
            step!(self.poll_delivery(cx));
            if !self.reading_paused() {
                if reads == READS_PER_POLL {
                    // More may be buffered: come back after the others ran.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                reads += 1;
                step!(self.poll_read(ws, cx));
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }

    /// The session's wake-ups: a refresh moved the expiry, or a close was
    /// requested (read at the top of the turn).
    fn poll_woken(&mut self) -> Step {
        let woken = self.woken.as_mut();
        if self
            .waking
            .poll_when_woken(|cx| woken.poll(cx))
            .is_pending()
        {
            return Step::Idle;
        }
        self.woken.set(self.session.notified());
        self.waking.mark();
        self.start_recheck_if_asked();
        self.expiry = expiry_deadline(self.session, &self.config.handshake.wiring.clock);
        self.rearm();
        Step::Progressed
    }

    fn poll_recheck(&mut self, cx: &mut Context<'_>) -> Step {
        match &mut self.recheck {
            Some(recheck) => match recheck.as_mut().poll(cx) {
                Poll::Ready(close) => Step::End(Ending::Close(close)),
                Poll::Pending => Step::Idle,
            },
            None => Step::Idle,
        }
    }

    fn poll_timer(&mut self) -> Step {
        let lifecycle = self.lifecycle.as_mut();
        if self
            .timing
            .poll_when_woken(|cx| lifecycle.poll(cx))
            .is_pending()
        {
            return Step::Idle;
        }
        let now = Instant::now();
        let limits = &self.config.limits;
        // A message waiting for the handler, the pipeline or the client's
        // reading came from the client: the client is not the silent one.
        if self.reading_paused() {
            self.last_heard = now;
        }
        if self.expiry.is_some_and(|expiry| now >= expiry) {
            return Ending::close(CloseKind::Unauthenticated, reason::TOKEN_EXPIRED);
        }
        if self
            .write_waiting_since
            .is_some_and(|since| now >= since + limits.write_timeout)
        {
            return Ending::close(CloseKind::SlowConsumer, reason::SLOW_CONSUMER);
        }
        if limits
            .idle_timeout
            .is_some_and(|idle| now >= self.last_heard + idle)
        {
            return Ending::close(CloseKind::Idle, reason::IDLE_TIMEOUT);
        }
        if let (Some(due), Some(every)) = (self.next_ping, limits.ping_interval)
            && now >= due
        {
            self.next_ping = Some(now + every);
            // A client that has not taken the last writes gets no ping on
            // top: the write timeout decides about it.
            if self.outgoing.is_empty() {
                self.outgoing.push_back(Message::Ping(Default::default()));
            }
        }
        self.rearm();
        Step::Progressed
    }

    /// Writes what is queued, then flushes once: under load one write
    /// system call carries many messages. Never waits: a client that does
    /// not take what it is sent leaves the rest queued here, and the write
    /// timeout starts.
    fn poll_write(&mut self, ws: &mut WebSocket) -> Step {
        if self.outgoing.is_empty() && !self.unflushed {
            return Step::Idle;
        }
        let outgoing = &mut self.outgoing;
        let unflushed = &mut self.unflushed;
        let mut moved = false;
        let written = self.writing.poll_when_woken(|cx| {
            loop {
                if !outgoing.is_empty() {
                    ready!(Pin::new(&mut *ws).poll_ready(cx))?;
                    let message = outgoing.pop_front().expect("not empty");
                    Pin::new(&mut *ws).start_send(message)?;
                    *unflushed = true;
                    moved = true;
                } else if *unflushed {
                    ready!(Pin::new(&mut *ws).poll_flush(cx))?;
                    *unflushed = false;
                    moved = true;
                } else {
                    return Poll::Ready(Ok::<(), axum::Error>(()));
                }
            }
        });
        match written {
            Poll::Ready(Ok(())) => {
                self.write_waiting_since = None;
                Step::Progressed
            }
            Poll::Ready(Err(_)) => Step::End(Ending::Gone),
            Poll::Pending => {
                if moved || self.write_waiting_since.is_none() {
                    let first = self.write_waiting_since.is_none();
                    self.write_waiting_since = Some(Instant::now());
                    // The write deadline may come before the armed one.
                    if first {
                        self.rearm();
                    }
                }
                if moved { Step::Progressed } else { Step::Idle }
            }
        }
    }

    /// The application's messages, a batch at a time, once the last batch
    /// is written: while the client does not take them, the application's
    /// queue fills and its senders wait.
    fn poll_replies(&mut self) -> Step {
        if !self.outgoing.is_empty() {
            return Step::Idle;
        }
        let outbound = &mut self.outbound;
        let outgoing = &mut self.outgoing;
        match self
            .replies
            .poll_when_woken(|cx| outbound.poll_recv_all(cx, outgoing))
        {
            Poll::Pending => Step::Idle,
            // The application is done with the socket.
            Poll::Ready(false) => Ending::normal(),
            Poll::Ready(true) => Step::Progressed,
        }
    }

    /// The pipeline: readiness for a message read, then its call. Polled
    /// with the driver's own waker; at most one call is in flight.
    fn poll_pipeline(&mut self, cx: &mut Context<'_>) -> Step {
        if let Some(inbound) = self.unready.take() {
            match self.pipeline.poll_ready(cx) {
                Poll::Ready(Ok(())) => self.deciding = Some(self.pipeline.call(inbound)),
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => {
                    self.unready = Some(inbound);
                    return Step::Idle;
                }
            }
        }
        let Some(deciding) = &mut self.deciding else {
            return Step::Idle;
        };
        let verdict = match deciding.as_mut().poll(cx) {
            Poll::Pending => return Step::Idle,
            Poll::Ready(Ok(verdict)) => verdict,
            Poll::Ready(Err(never)) => match never {},
        };
        self.deciding = None;
        match verdict {
            Verdict::Deliver(inbound) => {
                // Nearly always there is room: delivered in this turn.
                match self.deliver.try_send(inbound) {
                    Ok(()) => {}
                    Err(TrySendError::Full(inbound)) => self.undelivered = Some(inbound),
                    Err(TrySendError::Closed(_)) => return Ending::normal(),
                }
            }
            Verdict::Reply { reply, .. } => self.outgoing.push_back(reply),
            Verdict::Close { close, .. } => return Step::End(Ending::Close(close)),
        }
        Step::Progressed
    }

    /// The message the handler's queue had no room for. The queue keeps
    /// the driver's waker while it waits for room.
    fn poll_delivery(&mut self, cx: &mut Context<'_>) -> Step {
        if self.undelivered.is_none() {
            return Step::Idle;
        }
        match self
            .deliver
            .poll_send(cx, &mut self.undelivered, &mut self.delivery_place)
        {
            Poll::Pending => Step::Idle,
            Poll::Ready(Ok(())) => Step::Progressed,
            Poll::Ready(Err(_)) => Ending::normal(),
        }
    }

    /// One frame from the client, through the rate limit, to the pipeline.
    fn poll_read(&mut self, ws: &mut WebSocket, cx: &mut Context<'_>) -> Step {
        let incoming = match self
            .reading
            .poll_when_woken(|cx| Pin::new(&mut *ws).poll_next(cx))
        {
            Poll::Pending => return Step::Idle,
            Poll::Ready(incoming) => incoming,
        };
        self.last_heard = Instant::now();
        let message = match incoming {
            None => return Step::End(Ending::Gone),
            Some(Ok(Message::Close(_))) => return Step::End(Ending::ClientClosed),
            Some(Err(error)) => {
                return Step::End(Close::for_read_error(error).map_or(Ending::Gone, Ending::Close));
            }
            Some(Ok(message)) => message,
        };
        // Pings and pongs count too: each ping costs a pong.
        if self.bucket.as_mut().is_some_and(|bucket| !bucket.take()) {
            return Ending::close(CloseKind::RateLimited, reason::RATE_LIMITED);
        }
        if matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return Step::Progressed;
        }
        self.unready = Some(Inbound::new(message, self.session.clone()));
        // Straight into the pipeline: most verdicts are ready at once.
        match self.poll_pipeline(cx) {
            Step::End(ending) => Step::End(ending),
            Step::Idle | Step::Progressed => Step::Progressed,
        }
    }
}

/// The first message of a first-message route: `{"type":"auth","token":…}`,
/// with the DPoP proof of a bound token as `dpop` (a string, or absent).
fn auth_token(message: &Message) -> Option<(String, Option<String>)> {
    let Message::Text(text) = message else {
        return None;
    };
    let value: serde_json::Value = serde_json::from_str(text.as_str()).ok()?;
    if value.get("type")?.as_str()? != "auth" {
        return None;
    }
    let token = value.get("token")?.as_str()?.to_owned();
    let proof = match value.get("dpop") {
        None => None,
        Some(proof) => Some(proof.as_str()?.to_owned()),
    };
    Some((token, proof))
}

/// What the connection of a first-message route shows a bound token:
/// where the request was sent (a proof names it), and its client
/// certificate.
pub(crate) struct Possessed {
    pub(crate) target: Option<TargetUrl>,
    pub(crate) certificate: Option<ClientCertificate>,
}

/// Authenticates a first message's token: the gate's authenticator, then
/// the revocation check by the one session rule (the token's `sid`, as at
/// a handshake).
async fn authenticate_first_message(
    gate: &SocketGate,
    authenticator: &BoxedAuthenticator,
    (token, proof): (String, Option<String>),
    possession: &Possessed,
) -> Result<Principal, Error> {
    let started = Instant::now();
    let config = &gate.config;
    let outcome = async {
        let credential = Credential::Bearer(Secret::new(token.as_str()));
        let principal = authenticator.authenticate(&credential).await?;
        check_revocation(config.registry.revocations(), &principal, None).await?;
        // The proof names the socket's URL and `GET`, as at a handshake.
        let presented = dpop::Presented {
            token: Some(&token),
            proof: proof.as_deref(),
            target: possession.target.as_ref(),
            method: "GET",
            dpop_scheme: false,
            bearer_scheme: false,
            certificate: possession
                .certificate
                .as_ref()
                .map(ClientCertificate::thumbprint),
        };
        dpop::confirm(
            &config.handshake.wiring.dpop,
            config.handshake.wiring.dpop_mode,
            &principal,
            &presented,
        )
        .await?;
        Ok(principal)
    }
    .await;
    metrics::handshake_duration(started.elapsed());
    outcome
}

/// Runs a first-message route: waits (up to the deadline) for an
/// authentication message, then serves the connection like any other.
pub(crate) async fn serve_deferred<F, Fut>(
    mut ws: WebSocket,
    gate: SocketGate,
    authenticator: BoxedAuthenticator,
    peer: Option<SocketAddr>,
    possession: Possessed,
    slot: PendingSlot,
    handler: F,
) where
    F: FnOnce(GatedSocket) -> Fut,
    Fut: Future<Output = ()>,
{
    let config = &gate.config;
    let deadline = Instant::now() + config.limits.auth_deadline;
    let outcome: Result<Principal, Close> = loop {
        tokio::select! {
            () = sleep_until(deadline) => {
                break Err(Close::new(CloseKind::Unauthenticated, reason::AUTHENTICATION_TIMEOUT));
            }
            incoming = ws.recv() => match incoming {
                None => return,
                Some(Ok(Message::Close(_))) => return answer_close(&mut ws).await,
                Some(Err(error)) => match Close::for_read_error(error) {
                    Some(close) => break Err(close),
                    None => return,
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(message)) => {
                    let Some(token) = auth_token(&message) else {
                        break Err(Close::new(CloseKind::Unauthenticated, reason::INVALID_TOKEN));
                    };
                    break authenticate_first_message(&gate, &authenticator, token, &possession)
                        .await
                        .map_err(|error| Close::for_failed_credential(&error));
                }
            }
        }
    };
    // Authenticated or refused: no longer waiting.
    drop(slot);
    // Then the subject's place among its sockets; a refusal for the limit
    // names the subject in the audit.
    let outcome = match outcome {
        Ok(principal) => admit(config.handshake.sockets.as_ref(), principal)
            .await
            .map_err(|(error, subject)| (Close::for_failed_credential(&error), Some(subject))),
        Err(close) => Err((close, None)),
    };
    let transport = Some(Transport::FirstMessage);
    match outcome {
        Ok((principal, lease)) => {
            let principal = principal.with_transport(Transport::FirstMessage);
            let event = AuditEvent::handshake_allowed(&principal, peer);
            config.registry.auditor().record(&event);
            let session = Arc::new(Session::new(principal, peer));
            serve(ws, gate, session, lease, handler).await;
        }
        Err((close, subject)) => {
            let code = config.close_codes.code(close.kind);
            let mut event =
                AuditEvent::handshake_denied(close.reason, transport, peer).with_code(code);
            if let Some(subject) = subject {
                event = event.with_sub(subject);
            }
            config.registry.auditor().record(&event);
            send_close(&mut ws, code, close.reason).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_bursts_of_twice_the_rate_then_refills() {
        let mut bucket = TokenBucket::new(10);
        assert_eq!((0..20).filter(|_| bucket.take()).count(), 20);
        assert!(!bucket.take());
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!((0..10).filter(|_| bucket.take()).count(), 5);
    }

    #[test]
    fn only_auth_messages_carry_a_first_message_token() {
        let text = |json: &str| Message::Text(Utf8Bytes::from(json.to_owned()));
        assert_eq!(
            auth_token(&text(r#"{"type":"auth","token":"t"}"#)),
            Some(("t".to_owned(), None))
        );
        assert_eq!(
            auth_token(&text(r#"{"type":"auth","token":"t","dpop":"p"}"#)),
            Some(("t".to_owned(), Some("p".to_owned())))
        );
        assert_eq!(
            auth_token(&text(r#"{"type":"auth","token":"t","dpop":1}"#)),
            None
        );
        assert_eq!(auth_token(&text(r#"{"type":"say","token":"t"}"#)), None);
        assert_eq!(auth_token(&text(r#"{"type":"auth"}"#)), None);
        assert_eq!(auth_token(&text("not json")), None);
        assert_eq!(auth_token(&Message::Binary(Default::default())), None);
    }
}
