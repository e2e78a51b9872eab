//! Runs the application's handler and the connection driver in one task,
//! polling each only when it was woken, and both in the same turn when one
//! wakes the other.
//!
//! The two talk through queues (`queue.rs`): the driver hands a message to
//! the handler, the handler (or another task) hands the driver what to
//! send. With a plain `join!` each hand-over costs another trip through
//! the scheduler; here a wake that happens while the pair is being polled
//! is served in the same turn, so a message in and its answer out cost one
//! scheduling, as with a bare socket.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use pin_project_lite::pin_project;

use crate::socket::sync::{AtomicBool, AtomicWaker, Ordering, fence};

/// Wake-up flags shared by the two halves' wakers.
///
/// # Wakers
///
/// A half's waker raises its flag, then wakes the task that polls the
/// `Join` (`outer`) unless the `Join` is being polled, in which case the
/// loop in [`Join::poll`] sees the flag. The two sides form a Dekker
/// pattern: the waker writes its flag and reads `polling`; the poll, as
/// it ends, writes `polling` and reads the flags. A `SeqCst` fence between
/// the write and the read on each side guarantees that at least one of
/// them sees the other's write: either the waker sees `polling` down and
/// wakes the task, or the poll sees the flag and wakes itself. Without the
/// fences (acquire and release alone), both may read the old values and
/// the wake is lost; the loom model below shows it.
///
/// `outer` is registered on every poll, so a `Join` moved to another task
/// wakes the new one.
struct Shared {
    woken: [AtomicBool; 2],
    polling: AtomicBool,
    outer: AtomicWaker,
    /// Under loom only: the fences left out, to show the model sees it.
    #[cfg(all(test, wsgate_loom))]
    weakened: bool,
}

impl Shared {
    /// Both halves to be polled first.
    fn new() -> Self {
        Self {
            woken: [AtomicBool::new(true), AtomicBool::new(true)],
            polling: AtomicBool::new(false),
            outer: AtomicWaker::default(),
            #[cfg(all(test, wsgate_loom))]
            weakened: false,
        }
    }

    /// Whether `half` was woken, clearing it. A plain load first: most
    /// checks find it down, and a wake that lands after it is caught by
    /// the check after the loop in `poll`.
    fn take_wake(&self, half: usize) -> bool {
        self.woken[half].load(Ordering::Acquire) && self.woken[half].swap(false, Ordering::AcqRel)
    }

    /// The fence of the Dekker pattern above.
    fn fence(&self) {
        #[cfg(all(test, wsgate_loom))]
        if self.weakened {
            return;
        }
        fence(Ordering::SeqCst);
    }
}

struct HalfWaker {
    shared: Arc<Shared>,
    half: usize,
}

impl Wake for HalfWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let shared = &self.shared;
        shared.woken[self.half].store(true, Ordering::Release);
        shared.fence();
        // While the pair is being polled, the loop below sees the flag; only
        // a wake from outside needs the scheduler.
        if !shared.polling.load(Ordering::Relaxed) {
            shared.outer.wake();
        }
    }
}

pin_project! {
    /// Polls `first` and `second` until both are done.
    pub(crate) struct Join<A, B> {
        #[pin]
        first: A,
        #[pin]
        second: B,
        done: [bool; 2],
        shared: Arc<Shared>,
        wakers: [Waker; 2],
    }
}

impl<A, B> Join<A, B> {
    pub(crate) fn new(first: A, second: B) -> Self {
        Self::with_shared(first, second, Shared::new())
    }

    /// Under loom only: the pair without the fences, to show the model
    /// finds the lost wake.
    #[cfg(all(test, wsgate_loom))]
    pub(crate) fn weakened(first: A, second: B) -> Self {
        let mut shared = Shared::new();
        shared.weakened = true;
        Self::with_shared(first, second, shared)
    }

    fn with_shared(first: A, second: B, shared: Shared) -> Self {
        let shared = Arc::new(shared);
        let waker = |half| {
            Waker::from(Arc::new(HalfWaker {
                shared: shared.clone(),
                half,
            }))
        };
        let wakers = [waker(0), waker(1)];
        Self {
            first,
            second,
            done: [false, false],
            shared,
            wakers,
        }
    }
}

impl<A, B> Future for Join<A, B>
where
    A: Future<Output = ()>,
    B: Future<Output = ()>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        this.shared.outer.register(cx.waker());
        // Relaxed: a waker that sees it up leaves the flag to the loop,
        // which reads the flags after this store in program order, and
        // the check after the loop is fenced.
        this.shared.polling.store(true, Ordering::Relaxed);
        // Bounded, so one connection cannot hold the worker forever.
        for _ in 0..16 {
            let mut progressed = false;
            if !this.done[0] && this.shared.take_wake(0) {
                progressed = true;
                let mut half = Context::from_waker(&this.wakers[0]);
                this.done[0] = this.first.as_mut().poll(&mut half).is_ready();
            }
            if !this.done[1] && this.shared.take_wake(1) {
                progressed = true;
                let mut half = Context::from_waker(&this.wakers[1]);
                this.done[1] = this.second.as_mut().poll(&mut half).is_ready();
            }
            if this.done[0] && this.done[1] {
                this.shared.polling.store(false, Ordering::Relaxed);
                return Poll::Ready(());
            }
            if !progressed {
                break;
            }
        }
        this.shared.polling.store(false, Ordering::Relaxed);
        this.shared.fence();
        // A wake that landed after its half was checked, while `polling` was
        // still set, did not reach the scheduler: take it from here.
        let pending =
            (0..2).any(|half| !this.done[half] && this.shared.woken[half].load(Ordering::Relaxed));
        if pending {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[cfg(all(test, not(wsgate_loom)))]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    #[tokio::test]
    async fn both_halves_run_to_completion_through_channels() {
        let (to_second, mut from_first) = mpsc::channel::<u32>(1);
        let (to_first, mut from_second) = mpsc::channel::<u32>(1);
        let first = async move {
            let mut total = 0;
            for n in 0..1_000 {
                to_second.send(n).await.unwrap();
                total += from_second.recv().await.unwrap();
            }
            assert_eq!(total, (0..1_000).map(|n| n * 2).sum::<u32>());
        };
        let second = async move {
            while let Some(n) = from_first.recv().await {
                to_first.send(n * 2).await.unwrap();
            }
        };
        Join::new(first, second).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_from_other_threads_are_not_lost() {
        let (sender, mut receiver) = mpsc::channel::<u32>(1);
        let producer = tokio::spawn(async move {
            for n in 0..10_000 {
                sender.send(n).await.unwrap();
            }
        });
        let consumer = async move {
            let mut count = 0;
            while receiver.recv().await.is_some() {
                count += 1;
            }
            assert_eq!(count, 10_000);
        };
        Join::new(consumer, async {}).await;
        producer.await.unwrap();
    }
}
