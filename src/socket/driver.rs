//! The connection driver: owns the WebSocket, runs every inbound message
//! through the pipeline, and enforces the lifecycle.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt as _;
use futures_util::future::OptionFuture;
use tokio::time::{Instant, sleep_until, timeout};
use tower_service::Service;

use crate::audit::{AuditEvent, metrics};
use crate::authenticate::{Authenticator, BoxedAuthenticator, Credential};
use crate::clock::Clock;
use crate::error::Error;
use crate::principal::{Principal, Transport};
use crate::recheck::Standing;
use crate::secret::Secret;
use crate::session::{Close, CloseKind, Inbound, Session, Verdict, reason};
use crate::socket::gated_socket::{GatedSender, GatedSocket};
use crate::socket::interest::Interest;
use crate::socket::join::Join;
use crate::socket::queue::{QueueReceiver, QueueSender, TrySendError, queue};
use crate::socket::registry::PendingSlot;
use crate::socket::socket_gate::SocketGate;
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
/// socket is dropped.
async fn answer_close(ws: &mut WebSocket) {
    let _ = ws.flush().await;
}

/// Sends a close frame, then waits a moment for the client's answer.
async fn send_close(ws: &mut WebSocket, code: u16, phrase: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(phrase),
    };
    if ws.send(Message::Close(Some(frame))).await.is_ok() {
        let _ = timeout(CLOSE_GRACE, async {
            while let Some(Ok(message)) = ws.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// Runs an authenticated connection: registers it, hands the application a
/// [`GatedSocket`], and drives the WebSocket until either side ends.
pub(crate) async fn serve<F, Fut>(
    ws: WebSocket,
    gate: SocketGate,
    session: Arc<Session>,
    handler: F,
) where
    F: FnOnce(GatedSocket) -> Fut,
    Fut: Future<Output = ()>,
{
    let _registration = gate.config.registry.register(session.clone());
    let (inbound_sender, inbound) = queue(gate.config.queue);
    let (outbound_sender, outbound) = queue(gate.config.queue);
    let socket = GatedSocket {
        session: session.clone(),
        inbound,
        sender: GatedSender {
            outbound: outbound_sender,
        },
    };
    Join::new(
        handler(socket),
        drive(ws, &gate, &session, inbound_sender, outbound),
    )
    .await;
}

async fn drive(
    mut ws: WebSocket,
    gate: &SocketGate,
    session: &Arc<Session>,
    deliver: QueueSender<Inbound>,
    mut outbound: QueueReceiver<Message>,
) {
    let config = &gate.config;
    let limits = &config.limits;
    let mut pipeline = gate.pipeline.clone();
    let mut bucket = limits.message_rate.map(TokenBucket::new);
    let mut last_heard = Instant::now();
    let mut expiry = expiry_deadline(session, &config.clock);
    let mut next_ping = limits.ping_interval.map(|every| last_heard + every);
    // One timer for the whole lifecycle (expiry, idle, ping), armed at the
    // earliest of them and re-armed only when it fires or the expiry moves:
    // per-message timer work would cost more than the rest of the loop.
    // The idle deadline is checked lazily when the timer fires.
    let next_deadline =
        |expiry: Option<Instant>, next_ping: Option<Instant>, last_heard: Instant| {
            [
                expiry,
                next_ping,
                limits.idle_timeout.map(|idle| last_heard + idle),
            ]
            .into_iter()
            .flatten()
            .min()
        };
    let never = || Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let lifecycle = sleep_until(next_deadline(expiry, next_ping, last_heard).unwrap_or_else(never));
    tokio::pin!(lifecycle);
    let woken = session.woken();
    tokio::pin!(woken);
    // Only credentials that ask for it (introspected tokens) are checked
    // again while the socket is open; the others cost nothing here, not
    // even the memory of the recheck's timer (it is boxed when needed).
    let mut rechecking = session.principal().recheck().is_some();
    let recheck: OptionFuture<_> = rechecking
        .then(|| Box::pin(recheck_credential(session.clone())))
        .into();
    tokio::pin!(recheck);
    // Each polled only when it may be ready (`interest.rs`), and each
    // wakes the driver through the waker its polls come with: always its
    // half of the `Join` in `serve`.
    let driver = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
    let reading = Interest::new(&driver);
    let waking = Interest::new(&driver);
    let timing = Interest::new(&driver);
    let replies = Interest::new(&driver);
    // A message the pipeline let through that the handler's queue had no
    // room for. While one waits, nothing more is read from the client,
    // and the lifecycle is still served.
    let mut undelivered: Option<Inbound> = None;
    // The application's messages, taken from its queue a batch at a time.
    let mut outgoing = VecDeque::new();

    let close = loop {
        if let Some(close) = session.take_close_request() {
            break Some(close);
        }
        // Biased: lifecycle events go first, so a flood of messages cannot
        // delay an expiry or a revocation.
        tokio::select! {
            biased;
            () = waking.poll(&mut woken) => {
                woken.set(session.woken());
                waking.mark();
                if !rechecking && session.principal().recheck().is_some() {
                    rechecking = true;
                    recheck.set(Some(Box::pin(recheck_credential(session.clone()))).into());
                }
                expiry = expiry_deadline(session, &config.clock);
                let deadline = next_deadline(expiry, next_ping, last_heard);
                lifecycle.as_mut().reset(deadline.unwrap_or_else(never));
                timing.mark();
            }
            Some(close) = &mut recheck, if rechecking => break Some(close),
            () = timing.poll(&mut lifecycle) => {
                let now = Instant::now();
                // A message waiting for the handler came from the client:
                // the client is not the silent one.
                if undelivered.is_some() {
                    last_heard = now;
                }
                if expiry.is_some_and(|expiry| now >= expiry) {
                    break Some(Close::new(CloseKind::Unauthenticated, reason::TOKEN_EXPIRED));
                }
                if limits.idle_timeout.is_some_and(|idle| now >= last_heard + idle) {
                    break Some(Close::new(CloseKind::Idle, reason::IDLE_TIMEOUT));
                }
                if let (Some(due), Some(every)) = (next_ping, limits.ping_interval)
                    && now >= due
                {
                    next_ping = Some(now + every);
                    if ws.send(Message::Ping(Default::default())).await.is_err() {
                        break None;
                    }
                }
                let deadline = next_deadline(expiry, next_ping, last_heard);
                lifecycle.as_mut().reset(deadline.unwrap_or_else(never));
                timing.mark();
            }
            more = replies.poll(poll_fn(|cx| outbound.poll_recv_all(cx, &mut outgoing))) => {
                // The application is done with the socket.
                if !more {
                    break Some(Close::new(CloseKind::Normal, ""));
                }
                // Write what was queued, then flush once: under load one
                // write system call carries many messages.
                let mut written = Ok(());
                while written.is_ok()
                    && let Some(message) = outgoing.pop_front()
                {
                    written = ws.feed(message).await;
                }
                if written.is_err() || ws.flush().await.is_err() {
                    break None;
                }
            }
            delivered = poll_fn(|cx| deliver.poll_send(cx, &mut undelivered)),
                if undelivered.is_some() =>
            {
                if delivered.is_err() {
                    break Some(Close::new(CloseKind::Normal, ""));
                }
            }
            incoming = reading.poll(ws.recv()), if undelivered.is_none() => {
                last_heard = Instant::now();
                let message = match incoming {
                    None => break None,
                    Some(Ok(Message::Close(_))) => {
                        answer_close(&mut ws).await;
                        break None;
                    }
                    Some(Err(error)) => break Close::for_read_error(error),
                    Some(Ok(message)) => message,
                };
                // Pings and pongs count too: each ping costs a pong.
                if bucket.as_mut().is_some_and(|bucket| !bucket.take()) {
                    break Some(Close::new(CloseKind::RateLimited, reason::RATE_LIMITED));
                }
                if matches!(message, Message::Ping(_) | Message::Pong(_)) {
                    continue;
                }
                let inbound = Inbound::new(message, session.clone());
                let verdict = match poll_fn(|cx| pipeline.poll_ready(cx)).await {
                    Ok(()) => pipeline.call(inbound).await,
                    Err(never) => match never {},
                };
                match verdict {
                    Ok(Verdict::Deliver(inbound)) => {
                        // Nearly always there is room: delivered in this
                        // turn, without another trip through the loop.
                        match deliver.try_send(inbound) {
                            Ok(()) => {}
                            Err(TrySendError::Full(inbound)) => undelivered = Some(inbound),
                            Err(TrySendError::Closed(_)) => {
                                break Some(Close::new(CloseKind::Normal, ""));
                            }
                        }
                    }
                    Ok(Verdict::Reply { reply, .. }) => {
                        if ws.send(reply).await.is_err() {
                            break None;
                        }
                    }
                    Ok(Verdict::Close { close, .. }) => break Some(close),
                    Err(never) => match never {},
                }
            }
        }
    };

    if let Some(close) = close {
        let code = config.close_codes.code(close.kind);
        if close.kind != CloseKind::Normal {
            let event = AuditEvent::closed(session, close, code);
            config.registry.auditor().record(&event);
        }
        send_close(&mut ws, code, close.reason).await;
    }
}

/// The first message of a first-message route: `{"type":"auth","token":…}`.
fn auth_token(message: &Message) -> Option<String> {
    let Message::Text(text) = message else {
        return None;
    };
    let value: serde_json::Value = serde_json::from_str(text.as_str()).ok()?;
    if value.get("type")?.as_str()? != "auth" {
        return None;
    }
    value.get("token")?.as_str().map(str::to_owned)
}

/// Authenticates a first message's token: the gate's authenticator, then
/// the revocation check by the one session rule (the token's `sid`, as at
/// a handshake).
async fn authenticate_first_message(
    gate: &SocketGate,
    authenticator: &BoxedAuthenticator,
    token: String,
) -> Result<Principal, Error> {
    let started = Instant::now();
    let credential = Credential::Bearer(Secret::new(token));
    let outcome = async {
        let principal = authenticator.authenticate(&credential).await?;
        check_revocation(gate.config.registry.revocations(), &principal, None).await?;
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
                    break authenticate_first_message(&gate, &authenticator, token)
                        .await
                        .map_err(|error| Close::for_failed_credential(&error));
                }
            }
        }
    };
    // Authenticated or refused: no longer waiting.
    drop(slot);
    let transport = Some(Transport::FirstMessage);
    match outcome {
        Ok(principal) => {
            let principal = principal.with_transport(Transport::FirstMessage);
            let event = AuditEvent::handshake_allowed(&principal, peer);
            config.registry.auditor().record(&event);
            let session = Arc::new(Session::new(principal, peer));
            serve(ws, gate, session, handler).await;
        }
        Err(close) => {
            let code = config.close_codes.code(close.kind);
            let event = AuditEvent::handshake_denied(close.reason, transport, peer).with_code(code);
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
            auth_token(&text(r#"{"type":"auth","token":"t"}"#)).as_deref(),
            Some("t")
        );
        assert_eq!(auth_token(&text(r#"{"type":"say","token":"t"}"#)), None);
        assert_eq!(auth_token(&text(r#"{"type":"auth"}"#)), None);
        assert_eq!(auth_token(&text("not json")), None);
        assert_eq!(auth_token(&Message::Binary(Default::default())), None);
    }
}
