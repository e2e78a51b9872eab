//! The hand-overs between a connection's driver and the application: the
//! messages the pipeline delivered, from the driver to the handler, and
//! the application's messages, from the handler (or any task holding a
//! [`GatedSender`](crate::socket::GatedSender)) to the driver. Each is a
//! bounded queue under one lock.
//!
//! The driver and the handler usually run in one task (`join.rs`), so the
//! lock is rarely contended on the message path, and a message moves with
//! a push, a pop and at most one wake. A tokio channel does the same with a
//! semaphore, a linked block list, two `AtomicWaker`s and a box a message:
//! for the application's messages, about 650 instructions and 6 atomic
//! operations a message more, measured in the server (BENCHMARKS.md).
//!
//! # Waiting for room
//!
//! Senders that find the queue full wait in line, first come, first
//! served, as at tokio's semaphore: a place freed by the receiver is kept
//! for the first in line, which is woken (and only it), and a new sender
//! does not pass those in line. A send given up while it waits (its
//! future dropped) leaves the line at once, and hands a place kept for it
//! to the next in line: nothing piles up, and no wake is lost.
//!
//! # Wakers
//!
//! - The receiver keeps at most one waker here, while it waits for a
//!   message; each waiting sender one, in the line. A sender polled again
//!   while in line replaces its own waker.
//! - Wakers are taken out under the lock and woken after it is released:
//!   a waker may run anything (the receiver may be any task, the senders
//!   are anybody's), and nothing it does may find the lock held. Taking
//!   the receiver's waker (instead of waking it by reference and keeping
//!   it) costs it a clone when it waits again, and no wake is lost: a side
//!   registers under the same lock in which it found nothing to do, so the
//!   other side's change either comes before (and is seen) or after (and
//!   finds the waker).
//! - Dropping the receiver wakes every sender in line (they see it gone);
//!   dropping the last sender wakes the receiver (it sees the end once the
//!   queue is empty).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::socket::sync::{Arc, Mutex, MutexGuard};

/// A bounded queue: any number of senders (clones), one receiver.
pub(crate) fn queue<T>(capacity: usize) -> (QueueSender<T>, QueueReceiver<T>) {
    let shared = Arc::new(Mutex::new(State {
        queue: VecDeque::new(),
        capacity: capacity.max(1),
        senders: 1,
        receiver_alive: true,
        receiver_waiting: None,
        line: VecDeque::new(),
        kept: Vec::new(),
        next_place: 0,
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
    /// The receiver's waker while it waits for a message.
    receiver_waiting: Option<Waker>,
    /// Senders waiting for room, in the order they came: their place in
    /// line and their waker.
    line: VecDeque<(u64, Waker)>,
    /// Senders woken with room kept for them, until they send or give up.
    kept: Vec<u64>,
    next_place: u64,
}

impl<T> State<T> {
    /// Whether a sender not in line may push now: room beyond what is kept
    /// for others, and nobody waiting before it.
    fn free_for_newcomer(&self) -> bool {
        self.line.is_empty() && self.queue.len() + self.kept.len() < self.capacity
    }

    /// Keeps the room there is for the first in line; their wakers, to
    /// wake once the lock is released (none, and no allocation, when
    /// nobody waits: the message path).
    fn keep_room_for_line(&mut self) -> Vec<Waker> {
        let mut woken = Vec::new();
        while self.queue.len() + self.kept.len() < self.capacity
            && let Some((place, waker)) = self.line.pop_front()
        {
            self.kept.push(place);
            woken.push(waker);
        }
        woken
    }

    /// Whether room was kept for `place`, forgetting it.
    fn take_kept(&mut self, place: u64) -> bool {
        match self.kept.iter().position(|kept| *kept == place) {
            Some(index) => {
                self.kept.swap_remove(index);
                true
            }
            None => false,
        }
    }

    fn push(&mut self, message: T) -> Option<Waker> {
        self.queue.push_back(message);
        self.receiver_waiting.take()
    }
}

/// Wakes `waker`, if any; called with the lock released.
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for waker in wakers {
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

/// A sending end.
pub(crate) struct QueueSender<T> {
    shared: Arc<Mutex<State<T>>>,
}

/// A send's place in line while it waits for room; [`QueueSender::leave`]
/// (or dropping the [`Send`] future that holds it) gives it up.
#[derive(Debug, Default)]
pub(crate) struct Place(Option<u64>);

/// Why [`GatedSender::try_send`](crate::socket::GatedSender::try_send)
/// sent nothing; the message comes back with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The outbound queue is full (or senders wait for room before this
    /// one): the client is slow to take what it is sent. The socket is
    /// still open; try later, or let that client miss the message.
    Full(T),
    /// The connection has ended: nothing will send the message.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(message) | Self::Closed(message) => message,
        }
    }
}

impl<T> std::fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Full(_) => "outbound queue full",
            Self::Closed(_) => "socket closed",
        })
    }
}

impl<T: std::fmt::Debug> std::error::Error for TrySendError<T> {}

/// The receiver is gone: nothing will read the message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ReceiverGone;

impl<T> QueueSender<T> {
    /// Queues `message` if there is room and nobody waits for it.
    pub(crate) fn try_send(&self, message: T) -> Result<(), TrySendError<T>> {
        let mut state = lock(&self.shared);
        if !state.receiver_alive {
            return Err(TrySendError::Closed(message));
        }
        if !state.free_for_newcomer() {
            return Err(TrySendError::Full(message));
        }
        let receiver = state.push(message);
        drop(state);
        wake(receiver);
        Ok(())
    }

    /// Moves the message in `pending` into the queue when its turn has
    /// come and there is room (leaving `None`); until then, keeps it,
    /// holds `place` in line and wakes `cx` once room is kept for it. The
    /// driver uses this to go on serving the connection's lifecycle while
    /// the handler's queue is full, so a handler that stops reading does
    /// not hold back a revocation or an expiry.
    pub(crate) fn poll_send(
        &self,
        cx: &Context<'_>,
        pending: &mut Option<T>,
        place: &mut Place,
    ) -> Poll<Result<(), ReceiverGone>> {
        let mut state = lock(&self.shared);
        if !state.receiver_alive {
            *pending = None;
            place.0 = None;
            return Poll::Ready(Err(ReceiverGone));
        }
        let Some(message) = pending.take() else {
            return Poll::Ready(Ok(()));
        };
        let turn = match place.0 {
            Some(waiting) => state.take_kept(waiting),
            None => state.free_for_newcomer(),
        };
        if turn {
            place.0 = None;
            let receiver = state.push(message);
            drop(state);
            wake(receiver);
            return Poll::Ready(Ok(()));
        }
        match place.0 {
            Some(waiting) => {
                match state.line.iter_mut().find(|(line, _)| *line == waiting) {
                    Some((_, waker)) => {
                        if !waker.will_wake(cx.waker()) {
                            *waker = cx.waker().clone();
                        }
                    }
                    // Not in line and no room kept: it never is, but a
                    // send must not wait where nobody would wake it.
                    None => state.line.push_back((waiting, cx.waker().clone())),
                }
            }
            None => {
                let waiting = state.next_place;
                state.next_place += 1;
                state.line.push_back((waiting, cx.waker().clone()));
                place.0 = Some(waiting);
            }
        }
        *pending = Some(message);
        Poll::Pending
    }

    /// Gives up `place` (the send will not be made): it leaves the line, and
    /// room kept for it goes to the next in line.
    pub(crate) fn leave(&self, place: &mut Place) {
        let Some(waiting) = place.0.take() else {
            return;
        };
        let mut state = lock(&self.shared);
        let woken = if state.take_kept(waiting) {
            state.keep_room_for_line()
        } else {
            state.line.retain(|(line, _)| *line != waiting);
            Vec::new()
        };
        drop(state);
        wake_all(woken);
    }

    /// Queues `message`, waiting in line while the queue is full.
    pub(crate) fn send(&self, message: T) -> Send<'_, T> {
        Send {
            sender: self,
            message: Some(message),
            place: Place::default(),
        }
    }

    /// Whether the receiver is gone.
    pub(crate) fn is_closed(&self) -> bool {
        !lock(&self.shared).receiver_alive
    }
}

/// The future of [`QueueSender::send`]; dropped while it waits, it leaves
/// the line.
pub(crate) struct Send<'a, T> {
    sender: &'a QueueSender<T>,
    message: Option<T>,
    place: Place,
}

impl<T: Unpin> Future for Send<'_, T> {
    type Output = Result<(), ReceiverGone>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.sender
            .poll_send(cx, &mut this.message, &mut this.place)
    }
}

impl<T> Drop for Send<'_, T> {
    fn drop(&mut self) {
        self.sender.leave(&mut self.place);
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
        let receiver = if state.senders == 0 {
            state.receiver_waiting.take()
        } else {
            None
        };
        drop(state);
        wake(receiver);
    }
}

/// The receiving end.
pub(crate) struct QueueReceiver<T> {
    shared: Arc<Mutex<State<T>>>,
}

impl<T> QueueReceiver<T> {
    /// The next message; `None` once every sender is gone and the queue is
    /// empty.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    pub(crate) fn poll_recv(&mut self, cx: &Context<'_>) -> Poll<Option<T>> {
        let mut state = lock(&self.shared);
        if let Some(message) = state.queue.pop_front() {
            let woken = state.keep_room_for_line();
            drop(state);
            wake_all(woken);
            return Poll::Ready(Some(message));
        }
        if state.senders == 0 {
            return Poll::Ready(None);
        }
        register(&mut state.receiver_waiting, cx);
        Poll::Pending
    }

    /// Moves every queued message into `batch` (empty when called) in one
    /// turn of the lock; `Ready(false)` once every sender is gone and the
    /// queue is empty. While the receiver works through a batch, the
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
            let woken = state.keep_room_for_line();
            drop(state);
            wake_all(woken);
            return Poll::Ready(true);
        }
        if state.senders == 0 {
            return Poll::Ready(false);
        }
        register(&mut state.receiver_waiting, cx);
        Poll::Pending
    }
}

/// Keeps `cx`'s waker in `slot`, cloning only when it changed.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl<T> Drop for QueueReceiver<T> {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        state.receiver_alive = false;
        // Messages nobody will read are dropped here, not when the last
        // sender goes.
        let queued = std::mem::take(&mut state.queue);
        let line = std::mem::take(&mut state.line);
        state.kept.clear();
        drop(state);
        drop(queued);
        for (_, waker) in line {
            waker.wake();
        }
    }
}

#[cfg(all(test, not(wsgate_loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    use super::*;

    /// Counts its wakes.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (std::sync::Arc<Counter>, Waker) {
        let counter = std::sync::Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        (counter, waker)
    }

    fn woken(counter: &Counter) -> usize {
        counter.0.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn messages_arrive_in_order_and_the_sender_waits_while_the_queue_is_full() {
        let (sender, mut receiver) = queue::<usize>(2);
        sender.send(0).await.unwrap();
        sender.send(1).await.unwrap();
        // Full: the third waits until the receiver takes one.
        let third = tokio::time::timeout(Duration::from_millis(50), sender.send(2));
        assert!(third.await.is_err(), "a full queue took a third message");
        let producer = async {
            for n in 2..1_000 {
                sender.send(n).await.unwrap();
            }
            drop(sender);
        };
        let consumer = async {
            let mut seen = Vec::new();
            while let Some(n) = receiver.recv().await {
                seen.push(n);
            }
            seen
        };
        let ((), seen) = tokio::join!(producer, consumer);
        assert_eq!(seen, (0..1_000).collect::<Vec<_>>());
    }

    #[test]
    fn the_receiver_leaving_drops_what_was_queued_and_refuses_more() {
        let marker = std::sync::Arc::new(());
        let (sender, receiver) = queue(4);
        sender.try_send(marker.clone()).unwrap();
        drop(receiver);
        assert_eq!(
            std::sync::Arc::strong_count(&marker),
            1,
            "dropped with the receiver"
        );
        assert!(sender.is_closed());
        let mut pending = Some(marker.clone());
        let cx = Context::from_waker(Waker::noop());
        let refused = sender.poll_send(&cx, &mut pending, &mut Place::default());
        assert_eq!(refused, Poll::Ready(Err(ReceiverGone)));
        assert!(pending.is_none(), "the refused message is dropped");
        assert!(matches!(
            sender.try_send(marker),
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
    fn senders_in_line_are_served_first_come_and_one_that_gives_up_hands_on_its_room() {
        let (sender, mut receiver) = queue::<u32>(1);
        sender.try_send(0).unwrap();
        let (first, first_waker) = counter();
        let (second, second_waker) = counter();
        let (third, third_waker) = counter();
        let mut places: Vec<(Place, Option<u32>)> =
            (1..=3).map(|n| (Place::default(), Some(n))).collect();
        for ((place, pending), waker) in
            places
                .iter_mut()
                .zip([&first_waker, &second_waker, &third_waker])
        {
            let cx = Context::from_waker(waker);
            assert!(sender.poll_send(&cx, pending, place).is_pending());
            // Polled again while in line: one waker kept, the place kept.
            assert!(sender.poll_send(&cx, pending, place).is_pending());
        }
        // A newcomer does not pass the line, even with try_send.
        assert_eq!(sender.try_send(9), Err(TrySendError::Full(9)));
        let noop = Context::from_waker(Waker::noop());
        assert_eq!(receiver.poll_recv(&noop), Poll::Ready(Some(0)));
        assert_eq!(
            (woken(&first), woken(&second), woken(&third)),
            (1, 0, 0),
            "only the first is woken"
        );
        // The first gives up: the room kept for it goes to the second.
        let (place, _) = &mut places[0];
        sender.leave(place);
        assert_eq!((woken(&first), woken(&second), woken(&third)), (1, 1, 0));
        let (place, pending) = &mut places[1];
        let cx = Context::from_waker(&second_waker);
        assert_eq!(sender.poll_send(&cx, pending, place), Poll::Ready(Ok(())));
        assert_eq!(receiver.poll_recv(&noop), Poll::Ready(Some(2)));
        let (place, pending) = &mut places[2];
        let cx = Context::from_waker(&third_waker);
        assert_eq!(woken(&third), 1);
        assert_eq!(sender.poll_send(&cx, pending, place), Poll::Ready(Ok(())));
        assert_eq!(receiver.poll_recv(&noop), Poll::Ready(Some(3)));
        // Nobody in line: the queue is free again.
        assert_eq!(sender.try_send(4), Ok(()));
        // Wakers are not kept once used: only the queue's own is left.
        assert_eq!(std::sync::Arc::strong_count(&first), 2);
    }

    #[tokio::test]
    async fn sends_given_up_under_a_timeout_leave_nothing_behind() {
        let (sender, mut receiver) = queue::<u32>(1);
        sender.try_send(0).unwrap();
        // Each given up after its first poll, as under a short timeout.
        let (_, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        for n in 0..20_000 {
            let mut send = std::pin::pin!(sender.send(n));
            assert!(send.as_mut().poll(&mut cx).is_pending());
        }
        let waiting = |sender: &QueueSender<u32>| {
            let state = lock(&sender.shared);
            state.line.len() + state.kept.len()
        };
        assert_eq!(waiting(&sender), 0, "sends given up left their places");
        assert_eq!(receiver.recv().await, Some(0));
        sender.send(1).await.unwrap();
        assert_eq!(receiver.recv().await, Some(1));
    }

    #[test]
    fn a_batch_takes_everything_queued_and_keeps_room_for_the_line() {
        let (sender, mut receiver) = queue::<u32>(2);
        sender.try_send(1).unwrap();
        sender.try_send(2).unwrap();
        let (waiter, waiter_waker) = counter();
        let (mut place, mut pending) = (Place::default(), Some(3));
        let cx = Context::from_waker(&waiter_waker);
        assert!(sender.poll_send(&cx, &mut pending, &mut place).is_pending());
        let mut batch = VecDeque::new();
        let noop = Context::from_waker(Waker::noop());
        assert_eq!(receiver.poll_recv_all(&noop, &mut batch), Poll::Ready(true));
        assert_eq!(batch, [1, 2]);
        assert_eq!(woken(&waiter), 1);
        assert_eq!(
            sender.poll_send(&cx, &mut pending, &mut place),
            Poll::Ready(Ok(()))
        );
        batch.clear();
        // The receiver waits, and a message wakes it once.
        let (receiver_woken, receiver_waker) = counter();
        let cx = Context::from_waker(&receiver_waker);
        assert_eq!(receiver.poll_recv_all(&cx, &mut batch), Poll::Ready(true));
        assert_eq!(batch, [3]);
        batch.clear();
        assert!(receiver.poll_recv_all(&cx, &mut batch).is_pending());
        sender.try_send(4).unwrap();
        assert_eq!(woken(&receiver_woken), 1);
        drop(sender);
        assert_eq!(receiver.poll_recv_all(&cx, &mut batch), Poll::Ready(true));
        batch.clear();
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
            while std::future::poll_fn(|cx| receiver.poll_recv_all(cx, &mut batch)).await {
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
