//! The hand-overs between a connection's driver and the application: the
//! messages the pipeline delivered, from the driver to the handler, and
//! the application's messages, from the handler (or any task holding a
//! [`GatedSender`](crate::socket::GatedSender)) to the driver. Each is a
//! bounded queue under one lock.
//!
//! The driver and the handler run in one task (`join.rs`), so the lock is
//! rarely contended on the message path, and a message moves from one to
//! the other with a push, a pop and at most one wake. A tokio channel does
//! the same with a semaphore, a linked block list, two `AtomicWaker`s and
//! a box a message (its blocks hold 32 slots up front, too much for an
//! idle connection to keep by value): about 700 instructions and ten
//! atomic operations a message more than this, measured in the server.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// A bounded queue: any number of senders (clones), one receiver.
pub(crate) fn queue<T>(capacity: usize) -> (QueueSender<T>, QueueReceiver<T>) {
    let shared = Arc::new(Mutex::new(State {
        queue: VecDeque::new(),
        capacity: capacity.max(1),
        senders: 1,
        receiver_alive: true,
        receiver: None,
        receiver_waiting: false,
        waiting_for_room: Vec::new(),
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
    /// Live senders; at none, the receiver sees the end once the queue is
    /// empty.
    senders: usize,
    receiver_alive: bool,
    /// The receiver's waker, kept between waits: waking it by reference
    /// and keeping it spares a clone and a drop (two atomic operations)
    /// a message.
    receiver: Option<Waker>,
    /// Whether the receiver waits for a message (on `receiver`).
    receiver_waiting: bool,
    /// Senders waiting for room, each woken when the receiver takes a
    /// message. All are woken, and those that find no room wait again: a
    /// sender that gave up leaves at most a spurious wake behind, never a
    /// lost one.
    waiting_for_room: Vec<Waker>,
}

impl<T> State<T> {
    /// Wakes the receiver if it waits. Under the lock: the receiver is
    /// always the driver or the handler, whose wakers only mark a task to
    /// be polled and never reach back into the queue.
    fn wake_receiver(&mut self) {
        if std::mem::take(&mut self.receiver_waiting)
            && let Some(receiver) = &self.receiver
        {
            receiver.wake_by_ref();
        }
    }

    /// Takes the wakers of the senders waiting for room, to wake once the
    /// lock is released (they are anybody's tasks).
    fn take_waiting_for_room(&mut self) -> Vec<Waker> {
        if self.waiting_for_room.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut self.waiting_for_room)
        }
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

/// Keeps `slot` holding a waker that wakes `cx`'s task, cloning only when
/// it changed (it rarely does: the receiver is polled by one task).
fn keep_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn lock<T>(shared: &Mutex<State<T>>) -> MutexGuard<'_, State<T>> {
    // A panic while the lock is held leaves the queue consistent (every
    // change is one push, pop or swap), so a poisoned lock is still usable.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A sending end.
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
        state.wake_receiver();
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
            if !state
                .waiting_for_room
                .iter()
                .any(|waiting| waiting.will_wake(cx.waker()))
            {
                state.waiting_for_room.push(cx.waker().clone());
            }
            *pending = Some(message);
            return Poll::Pending;
        }
        state.queue.push_back(message);
        state.wake_receiver();
        Poll::Ready(Ok(()))
    }

    /// Queues `message`, waiting while the queue is full.
    pub(crate) async fn send(&self, message: T) -> Result<(), ReceiverGone> {
        let mut pending = Some(message);
        poll_fn(|cx| self.poll_send(cx, &mut pending)).await
    }

    /// Whether the receiver is gone.
    pub(crate) fn is_closed(&self) -> bool {
        !lock(&self.shared).receiver_alive
    }
}

impl<T> Clone for QueueSender<T> {
    fn clone(&self) -> Self {
        lock(&self.shared).senders += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for QueueSender<T> {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        state.senders -= 1;
        if state.senders == 0 {
            state.wake_receiver();
        }
    }
}

/// The receiving end.
pub(crate) struct QueueReceiver<T> {
    shared: Arc<Mutex<State<T>>>,
}

impl<T> QueueReceiver<T> {
    /// The next message; `None` once every sender is gone and the queue
    /// is empty.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &Context<'_>) -> Poll<Option<T>> {
        let mut state = lock(&self.shared);
        if let Some(message) = state.queue.pop_front() {
            let waiting = state.take_waiting_for_room();
            drop(state);
            wake_all(waiting);
            return Poll::Ready(Some(message));
        }
        if state.senders == 0 {
            return Poll::Ready(None);
        }
        keep_waker(&mut state.receiver, cx);
        state.receiver_waiting = true;
        Poll::Pending
    }

    /// Moves every queued message into `batch` (empty when called) in
    /// one turn of the lock; `Ready(false)` once every sender is gone and
    /// the queue is empty. While the receiver works through a batch, the
    /// senders have the queue's whole capacity again.
    pub(crate) fn poll_recv_all(
        &mut self,
        cx: &Context<'_>,
        batch: &mut VecDeque<T>,
    ) -> Poll<bool> {
        debug_assert!(batch.is_empty(), "the last batch was not worked through");
        let mut state = lock(&self.shared);
        if !state.queue.is_empty() {
            // The batch's (empty) buffer becomes the queue's: neither end
            // allocates once both have grown.
            std::mem::swap(&mut state.queue, batch);
            let waiting = state.take_waiting_for_room();
            drop(state);
            wake_all(waiting);
            return Poll::Ready(true);
        }
        if state.senders == 0 {
            return Poll::Ready(false);
        }
        keep_waker(&mut state.receiver, cx);
        state.receiver_waiting = true;
        Poll::Pending
    }
}

impl<T> Drop for QueueReceiver<T> {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        state.receiver_alive = false;
        // Messages nobody will read are dropped here, not when the last
        // sender goes.
        let queued = std::mem::take(&mut state.queue);
        let waiting = state.take_waiting_for_room();
        drop(state);
        drop(queued);
        wake_all(waiting);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    use axum::extract::ws::Message;

    use super::*;
    use crate::principal::{AuthMethod, Principal};
    use crate::session::{Inbound, Session};

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

    /// Counts its wakes.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
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
        let before = Arc::strong_count(&session);
        drop(receiver);
        // The queued message (and its hold on the session) went with it.
        assert_eq!(Arc::strong_count(&session), before - 1);
        assert!(sender.is_closed());
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
    async fn a_waiting_receiver_sees_the_last_sender_leave() {
        let (sender, mut receiver) = queue::<u32>(1);
        let other = sender.clone();
        let waiting = tokio::spawn(async move { receiver.recv().await.is_none() });
        tokio::task::yield_now().await;
        drop(sender);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "ended with a sender still alive");
        drop(other);
        assert!(waiting.await.unwrap());
    }

    #[test]
    fn try_send_refuses_a_full_queue_and_gives_the_message_back() {
        let (sender, mut receiver) = queue::<u32>(1);
        assert_eq!(sender.try_send(1), Ok(()));
        assert_eq!(sender.try_send(2), Err(TrySendError::Full(2)));
        let mut batch = VecDeque::new();
        let cx = Context::from_waker(Waker::noop());
        assert_eq!(receiver.poll_recv_all(&cx, &mut batch), Poll::Ready(true));
        assert_eq!(batch, [1]);
        assert_eq!(sender.try_send(2), Ok(()));
    }

    #[test]
    fn a_batch_takes_everything_queued_and_wakes_every_sender_waiting_for_room() {
        let (sender, mut receiver) = queue::<u32>(2);
        let first = sender.clone();
        let counters = [Arc::new(Counter::default()), Arc::new(Counter::default())];
        let wakers = counters.clone().map(Waker::from);
        sender.try_send(1).unwrap();
        sender.try_send(2).unwrap();
        for (n, waker) in wakers.iter().enumerate() {
            let mut pending = Some(10 + n as u32);
            let cx = Context::from_waker(waker);
            assert!(first.poll_send(&cx, &mut pending).is_pending());
            // Polled again while it waits: registered once.
            assert!(first.poll_send(&cx, &mut pending).is_pending());
            assert_eq!(
                pending,
                Some(10 + n as u32),
                "a waiting message stays with its sender"
            );
        }
        let mut batch = VecDeque::new();
        let cx = Context::from_waker(Waker::noop());
        assert_eq!(receiver.poll_recv_all(&cx, &mut batch), Poll::Ready(true));
        assert_eq!(batch, [1, 2]);
        let woken = counters
            .each_ref()
            .map(|counter| counter.0.load(Ordering::SeqCst));
        assert_eq!(woken, [1, 1]);
        batch.clear();
        // Empty, with senders alive: the receiver waits, and a message wakes it.
        let receiver_woken = Arc::new(Counter::default());
        let receiver_waker = Waker::from(receiver_woken.clone());
        let cx = Context::from_waker(&receiver_waker);
        assert!(receiver.poll_recv_all(&cx, &mut batch).is_pending());
        sender.try_send(3).unwrap();
        sender.try_send(4).unwrap();
        assert_eq!(
            receiver_woken.0.load(Ordering::SeqCst),
            1,
            "woken once, not per message"
        );
        drop((sender, first));
        assert_eq!(receiver.poll_recv_all(&cx, &mut batch), Poll::Ready(true));
        assert_eq!(batch, [3, 4]);
        batch.clear();
        // Every sender gone and nothing queued: the end.
        assert_eq!(receiver.poll_recv_all(&cx, &mut batch), Poll::Ready(false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn senders_on_other_threads_are_woken_for_room() {
        let (sender, mut receiver) = queue::<usize>(1);
        let producers: Vec<_> = (0..4)
            .map(|_| {
                let sender = sender.clone();
                tokio::spawn(async move {
                    for n in 0..2_500 {
                        sender.send(n).await.unwrap();
                    }
                })
            })
            .collect();
        drop(sender);
        let consumer = tokio::spawn(async move {
            let mut count = 0;
            let mut batch = VecDeque::new();
            while poll_fn(|cx| receiver.poll_recv_all(cx, &mut batch)).await {
                count += batch.len();
                batch.clear();
            }
            count
        });
        for producer in producers {
            producer.await.unwrap();
        }
        assert_eq!(consumer.await.unwrap(), 10_000);
    }
}
