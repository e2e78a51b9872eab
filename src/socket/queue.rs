//! The hand-over of delivered messages from a connection's driver to the
//! application's handler: a bounded queue under one lock, with one sender
//! (the driver) and one receiver (the [`GatedSocket`]
//! (crate::socket::GatedSocket), which any task may own and poll).
//!
//! The driver and the handler usually run in one task (`join.rs`), so the
//! lock is rarely contended, and a message moves with a push, a pop and
//! at most one wake. A tokio channel does the same with a semaphore, a
//! linked block list, two `AtomicWaker`s and a box a message (its blocks
//! hold 32 slots up front, too much for an idle connection to keep by
//! value). The application's messages to the driver go the other way
//! through tokio's channel, whose many senders need what this queue does
//! not have: first-come order among senders waiting for room, and nothing
//! left behind by a send that was given up.
//!
//! # Wakers
//!
//! - Each side keeps at most one waker here: the receiver's while it waits
//!   for a message, the sender's while it waits for room. A new wait
//!   replaces the old waker, so a wait that was given up (its future
//!   dropped) leaves at most one stale waker, woken once, spuriously.
//! - A waker is taken out under the lock and woken after it is released:
//!   a waker may run anything (the receiver may be any task), and nothing
//!   it does may find the lock held. Taking it (instead of waking it by
//!   reference and keeping it) costs the waiting side a clone when it
//!   waits again, and no wake is lost: the waiting side registers under
//!   the same lock in which it found nothing, so a push either comes
//!   before that (and the side finds it) or after (and finds the waker).
//! - Dropping either end wakes the other, so a receiver waiting when the
//!   sender goes sees the end, and a sender waiting for room when the
//!   receiver goes sees it gone.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

use crate::socket::sync::{Arc, Mutex, MutexGuard};

/// A bounded queue: one sender, one receiver.
pub(crate) fn queue<T>(capacity: usize) -> (QueueSender<T>, QueueReceiver<T>) {
    let shared = Arc::new(Mutex::new(State {
        queue: VecDeque::new(),
        capacity: capacity.max(1),
        sender_alive: true,
        receiver_alive: true,
        receiver_waiting: None,
        sender_waiting: None,
    }));
    (
        QueueSender {
            shared: shared.clone(),
        },
        QueueReceiver { shared },
    )
}

struct State<T> {
    queue: VecDeque<T>,
    capacity: usize,
    /// Once the sender is gone, the receiver sees the end when the queue
    /// is empty.
    sender_alive: bool,
    receiver_alive: bool,
    /// The receiver's waker while it waits for a message.
    receiver_waiting: Option<Waker>,
    /// The sender's waker while it waits for room.
    sender_waiting: Option<Waker>,
}

/// Wakes `waker`, if any; called with the lock released.
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

fn lock<T>(shared: &Mutex<State<T>>) -> MutexGuard<'_, State<T>> {
    // A panic while the lock is held leaves the queue consistent (every
    // change is one push, pop or swap), so a poisoned lock is still usable.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The sending end.
pub(crate) struct QueueSender<T> {
    shared: Arc<Mutex<State<T>>>,
}

/// Why a message was not queued; it comes back with the error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError<T> {
    /// The queue is full.
    Full(T),
    /// The receiver is gone: nothing will read the message.
    Closed(T),
}

/// The receiver is gone: nothing will read the message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ReceiverGone;

impl<T> QueueSender<T> {
    /// Queues `message` if there is room.
    pub(crate) fn try_send(&self, message: T) -> Result<(), TrySendError<T>> {
        let mut state = lock(&self.shared);
        if !state.receiver_alive {
            return Err(TrySendError::Closed(message));
        }
        if state.queue.len() >= state.capacity {
            return Err(TrySendError::Full(message));
        }
        state.queue.push_back(message);
        let receiver = state.receiver_waiting.take();
        drop(state);
        wake(receiver);
        Ok(())
    }

    /// Moves the message in `pending` into the queue when there is room
    /// (leaving `None`); while the queue is full, keeps it and wakes `cx`
    /// once the receiver took one. The driver uses this to go on serving
    /// the connection's lifecycle while the handler's queue is full, so a
    /// handler that stops reading does not hold back a revocation or an
    /// expiry.
    pub(crate) fn poll_send(
        &self,
        cx: &Context<'_>,
        pending: &mut Option<T>,
    ) -> Poll<Result<(), ReceiverGone>> {
        let mut state = lock(&self.shared);
        if !state.receiver_alive {
            *pending = None;
            return Poll::Ready(Err(ReceiverGone));
        }
        let Some(message) = pending.take() else {
            return Poll::Ready(Ok(()));
        };
        if state.queue.len() >= state.capacity {
            state.sender_waiting = Some(cx.waker().clone());
            *pending = Some(message);
            return Poll::Pending;
        }
        state.queue.push_back(message);
        let receiver = state.receiver_waiting.take();
        drop(state);
        wake(receiver);
        Poll::Ready(Ok(()))
    }

    /// Queues `message`, waiting while the queue is full.
    #[cfg(test)]
    pub(crate) async fn send(&self, message: T) -> Result<(), ReceiverGone> {
        let mut pending = Some(message);
        poll_fn(|cx| self.poll_send(cx, &mut pending)).await
    }
}

impl<T> Drop for QueueSender<T> {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        state.sender_alive = false;
        state.sender_waiting = None;
        let receiver = state.receiver_waiting.take();
        drop(state);
        wake(receiver);
    }
}

/// The receiving end.
pub(crate) struct QueueReceiver<T> {
    shared: Arc<Mutex<State<T>>>,
}

impl<T> QueueReceiver<T> {
    /// The next message; `None` once the sender is gone and the queue is
    /// empty.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    pub(crate) fn poll_recv(&mut self, cx: &Context<'_>) -> Poll<Option<T>> {
        let mut state = lock(&self.shared);
        if let Some(message) = state.queue.pop_front() {
            let sender = state.sender_waiting.take();
            drop(state);
            wake(sender);
            return Poll::Ready(Some(message));
        }
        if !state.sender_alive {
            return Poll::Ready(None);
        }
        match &state.receiver_waiting {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.receiver_waiting = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for QueueReceiver<T> {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        state.receiver_alive = false;
        // Messages nobody will read are dropped here, not when the sender
        // goes.
        let queued = std::mem::take(&mut state.queue);
        let sender = state.sender_waiting.take();
        drop(state);
        drop(queued);
        wake(sender);
    }
}

#[cfg(all(test, not(wsgate_loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    use axum::extract::ws::Message;

    use super::*;
    use crate::principal::{AuthMethod, Principal};
    use crate::session::{Inbound, Session};

    fn session() -> std::sync::Arc<Session> {
        std::sync::Arc::new(Session::new(
            Principal::new("alice", AuthMethod::Token),
            None,
        ))
    }

    fn text(session: &std::sync::Arc<Session>, n: usize) -> Inbound {
        Inbound::new(Message::Text(n.to_string().into()), session.clone())
    }

    fn number(inbound: &Inbound) -> usize {
        match inbound.message() {
            Message::Text(text) => text.as_str().parse().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    /// Counts its wakes.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn messages_arrive_in_order_and_the_sender_waits_while_the_queue_is_full() {
        let session = session();
        let (sender, mut receiver) = queue(2);
        sender.send(text(&session, 0)).await.unwrap();
        sender.send(text(&session, 1)).await.unwrap();
        // Full: the third waits until the receiver takes one.
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
    async fn the_receiver_leaving_drops_what_was_queued_and_refuses_more() {
        let session = session();
        let (sender, receiver) = queue(4);
        sender.send(text(&session, 0)).await.unwrap();
        let before = std::sync::Arc::strong_count(&session);
        drop(receiver);
        // The queued message (and its hold on the session) went with it.
        assert_eq!(std::sync::Arc::strong_count(&session), before - 1);
        let mut pending = Some(text(&session, 1));
        let refused = sender.poll_send(&Context::from_waker(Waker::noop()), &mut pending);
        assert_eq!(refused, Poll::Ready(Err(ReceiverGone)));
        assert!(pending.is_none(), "the refused message is dropped");
        assert!(matches!(
            sender.try_send(text(&session, 2)),
            Err(TrySendError::Closed(_))
        ));
    }

    #[tokio::test]
    async fn a_waiting_receiver_sees_the_sender_leave() {
        let (sender, mut receiver) = queue::<u32>(1);
        let waiting = tokio::spawn(async move { receiver.recv().await.is_none() });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "ended with the sender alive");
        drop(sender);
        assert!(waiting.await.unwrap());
    }

    #[test]
    fn try_send_refuses_a_full_queue_and_gives_the_message_back() {
        let (sender, mut receiver) = queue::<u32>(1);
        assert_eq!(sender.try_send(1), Ok(()));
        assert_eq!(sender.try_send(2), Err(TrySendError::Full(2)));
        let cx = Context::from_waker(Waker::noop());
        assert_eq!(receiver.poll_recv(&cx), Poll::Ready(Some(1)));
        assert_eq!(sender.try_send(2), Ok(()));
    }

    #[test]
    fn a_sender_waiting_for_room_is_woken_once_and_keeps_one_waker() {
        let (sender, mut receiver) = queue::<u32>(1);
        let counter = std::sync::Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        sender.try_send(1).unwrap();
        let cx = Context::from_waker(&waker);
        // Waiting, given up and waiting again many times: one waker kept,
        // not one per wait.
        for _ in 0..1_000 {
            let mut pending = Some(2);
            assert!(sender.poll_send(&cx, &mut pending).is_pending());
            assert_eq!(pending, Some(2), "a waiting message stays with its sender");
        }
        // Held here, by `waker`, and by the queue: one waker kept.
        assert_eq!(std::sync::Arc::strong_count(&counter), 3, "one waker kept");
        let noop = Context::from_waker(Waker::noop());
        assert_eq!(receiver.poll_recv(&noop), Poll::Ready(Some(1)));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            std::sync::Arc::strong_count(&counter),
            2,
            "the waker was taken"
        );
        // Empty, with the sender alive: the receiver waits, and a message
        // wakes it.
        let receiver_woken = std::sync::Arc::new(Counter::default());
        let receiver_waker = Waker::from(receiver_woken.clone());
        let cx = Context::from_waker(&receiver_waker);
        assert!(receiver.poll_recv(&cx).is_pending());
        sender.try_send(3).unwrap();
        assert_eq!(receiver_woken.0.load(Ordering::SeqCst), 1);
        drop(sender);
        assert_eq!(receiver.poll_recv(&cx), Poll::Ready(Some(3)));
        // The sender gone and nothing queued: the end.
        assert_eq!(receiver.poll_recv(&cx), Poll::Ready(None));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sender_on_another_thread_is_woken_for_room() {
        let (sender, mut receiver) = queue::<usize>(1);
        let producer = tokio::spawn(async move {
            for n in 0..10_000 {
                sender.send(n).await.unwrap();
            }
        });
        let consumer = tokio::spawn(async move {
            let mut count = 0;
            while receiver.recv().await.is_some() {
                count += 1;
            }
            count
        });
        producer.await.unwrap();
        assert_eq!(consumer.await.unwrap(), 10_000);
    }
}
