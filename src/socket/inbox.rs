//! The hand-over of delivered messages from the connection's driver to the
//! application's handler: a bounded queue under one lock.
//!
//! The driver and the handler run in one task (`join.rs`), so the lock is
//! never contended on the message path, and a message moves from one to the
//! other with a push, a pop and at most one wake. A tokio channel does the
//! same with a semaphore, a linked block list and a box a message (its
//! blocks hold 32 slots up front, too much for an idle connection to keep
//! by value): more work than the hand-over it carries.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::session::Inbound;

/// A bounded single-producer, single-consumer queue of delivered
/// messages: the driver's end and the handler's end.
pub(crate) fn inbox(capacity: usize) -> (InboxSender, InboxReceiver) {
    let shared = Arc::new(Mutex::new(State {
        queue: VecDeque::new(),
        capacity: capacity.max(1),
        sender_alive: true,
        receiver_alive: true,
        sender: None,
        receiver: None,
        receiver_waiting: false,
    }));
    (
        InboxSender {
            shared: shared.clone(),
        },
        InboxReceiver { shared },
    )
}

struct State {
    queue: VecDeque<Inbound>,
    capacity: usize,
    sender_alive: bool,
    receiver_alive: bool,
    /// The driver, waiting for room.
    sender: Option<Waker>,
    /// The handler's waker, kept between waits: waking it by reference
    /// and keeping it spares a clone and a drop (two atomic operations)
    /// a message.
    receiver: Option<Waker>,
    /// Whether the handler waits for a message (on `receiver`).
    receiver_waiting: bool,
}

impl State {
    /// Wakes the handler if it waits. Under the lock: a waker only marks
    /// a task to be polled, it never reaches back into the queue.
    fn wake_receiver(&mut self) {
        if std::mem::take(&mut self.receiver_waiting)
            && let Some(receiver) = &self.receiver
        {
            receiver.wake_by_ref();
        }
    }
}

/// Keeps `slot` holding a waker that wakes `cx`'s task, cloning only when
/// it changed (it rarely does: both ends live in one task).
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while the lock is held leaves the queue consistent (every
    // change is one push or pop), so a poisoned lock is still usable.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The driver's end.
pub(crate) struct InboxSender {
    shared: Arc<Mutex<State>>,
}

/// The handler has dropped its end: nothing will read the message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HandlerGone;

impl InboxSender {
    /// Moves the message in `pending` into the queue when there is room
    /// (leaving `None`); while the queue is full, keeps it and wakes `cx`
    /// once the handler took one. The driver goes on serving the
    /// connection's lifecycle meanwhile, so a handler that stops reading
    /// does not hold back a revocation or an expiry.
    pub(crate) fn poll_send(
        &self,
        cx: &Context<'_>,
        pending: &mut Option<Inbound>,
    ) -> Poll<Result<(), HandlerGone>> {
        let mut state = lock(&self.shared);
        if !state.receiver_alive {
            *pending = None;
            return Poll::Ready(Err(HandlerGone));
        }
        let Some(message) = pending.take() else {
            return Poll::Ready(Ok(()));
        };
        if state.queue.len() >= state.capacity {
            register(&mut state.sender, cx);
            *pending = Some(message);
            return Poll::Pending;
        }
        state.queue.push_back(message);
        state.wake_receiver();
        Poll::Ready(Ok(()))
    }

    /// Queues `inbound`, waiting while the queue is full.
    #[cfg(test)]
    async fn send(&self, inbound: Inbound) -> Result<(), HandlerGone> {
        let mut pending = Some(inbound);
        poll_fn(|cx| self.poll_send(cx, &mut pending)).await
    }
}

impl Drop for InboxSender {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        state.sender_alive = false;
        state.wake_receiver();
    }
}

/// The handler's end.
pub(crate) struct InboxReceiver {
    shared: Arc<Mutex<State>>,
}

impl InboxReceiver {
    /// The next message; `None` once the driver is gone and the queue is
    /// empty.
    pub(crate) async fn recv(&mut self) -> Option<Inbound> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &Context<'_>) -> Poll<Option<Inbound>> {
        let mut state = lock(&self.shared);
        if let Some(message) = state.queue.pop_front() {
            // The driver waits for room only when the queue was full.
            let sender = state.sender.take();
            drop(state);
            if let Some(sender) = sender {
                sender.wake();
            }
            return Poll::Ready(Some(message));
        }
        if !state.sender_alive {
            return Poll::Ready(None);
        }
        register(&mut state.receiver, cx);
        state.receiver_waiting = true;
        Poll::Pending
    }
}

impl Drop for InboxReceiver {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        state.receiver_alive = false;
        // Messages nobody will read are dropped here, not when the driver
        // ends.
        let queued = std::mem::take(&mut state.queue);
        let sender = state.sender.take();
        drop(state);
        drop(queued);
        if let Some(sender) = sender {
            sender.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::extract::ws::Message;

    use super::*;
    use crate::principal::{AuthMethod, Principal};
    use crate::session::Session;

    fn session() -> Arc<Session> {
        Arc::new(Session::new(
            Principal::new("alice", AuthMethod::Token),
            None,
        ))
    }

    fn text(session: &Arc<Session>, n: usize) -> Inbound {
        Inbound::new(Message::Text(n.to_string().into()), session.clone())
    }

    fn number(inbound: &Inbound) -> usize {
        match inbound.message() {
            Message::Text(text) => text.as_str().parse().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn messages_arrive_in_order_and_the_sender_waits_while_the_queue_is_full() {
        let session = session();
        let (sender, mut receiver) = inbox(2);
        sender.send(text(&session, 0)).await.unwrap();
        sender.send(text(&session, 1)).await.unwrap();
        // Full: the third waits until the handler takes one.
        let third = tokio::time::timeout(Duration::from_millis(50), sender.send(text(&session, 2)));
        assert!(third.await.is_err(), "a full queue took a third message");
        let producer = async {
            for n in 2..1_000 {
                sender.send(text(&session, n)).await.unwrap();
            }
            drop(sender);
        };
        let consumer = async {
            let mut seen = Vec::new();
            while let Some(inbound) = receiver.recv().await {
                seen.push(number(&inbound));
            }
            seen
        };
        let ((), seen) = tokio::join!(producer, consumer);
        assert_eq!(seen, (0..1_000).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn the_handler_leaving_drops_what_was_queued_and_refuses_more() {
        let session = session();
        let (sender, receiver) = inbox(4);
        sender.send(text(&session, 0)).await.unwrap();
        let before = Arc::strong_count(&session);
        drop(receiver);
        // The queued message (and its hold on the session) went with it.
        assert_eq!(Arc::strong_count(&session), before - 1);
        let mut pending = Some(text(&session, 1));
        let waker = Waker::noop();
        let refused = sender.poll_send(&Context::from_waker(waker), &mut pending);
        assert_eq!(refused, Poll::Ready(Err(HandlerGone)));
        assert!(pending.is_none(), "the refused message is dropped");
    }

    #[tokio::test]
    async fn a_waiting_handler_sees_the_driver_end() {
        let (sender, mut receiver) = inbox(1);
        let waiting = tokio::spawn(async move { receiver.recv().await.is_none() });
        tokio::task::yield_now().await;
        drop(sender);
        assert!(waiting.await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sender_waiting_for_room_is_woken_from_another_thread() {
        let session = session();
        let (sender, mut receiver) = inbox(1);
        let consumer = tokio::spawn(async move {
            let mut count = 0;
            while receiver.recv().await.is_some() {
                count += 1;
            }
            count
        });
        for n in 0..10_000 {
            sender.send(text(&session, n)).await.unwrap();
        }
        drop(sender);
        assert_eq!(consumer.await.unwrap(), 10_000);
    }
}
