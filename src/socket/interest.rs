//! Polls a future of the connection's driver only when it can have become
//! ready: the read side, the session's wake-ups, the lifecycle timer, the
//! handler's replies.
//!
//! The driver's loop polls every branch each time it runs, and it runs
//! several times a message (the frame, the read that finds nothing more,
//! the handler's reply, the turn that finds nothing more). A poll that
//! finds nothing is not free:
//!
//! - a `WebSocket::recv` zeroes tungstenite's read buffer before it asks
//!   the socket, which then says "would block" (polled on every turn, that
//!   was more than everything else wsgate adds to a message);
//! - the timer, the session's `Notify` and the channel of replies
//!   register their waker again.
//!
//! So each is polled with a waker of its own, and only again once that
//! waker was woken, the last poll returned (a read that gave a frame may
//! have more buffered), or the driver replaced or reset the future
//! ([`Interest::mark`]).
//!
//! Each interest's waker wakes the driver through a waker it is given once,
//! when made: the driver is always polled with the same one (its half of
//! [`Join`](crate::socket::join::Join)), so a poll registers nothing. An
//! `AtomicWaker` registered on every poll was two compare-and-swaps each,
//! 15 polls a message: the larger part of the atomic operations the server
//! spent on a message above bare axum's.

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::socket::sync::{AtomicBool, Ordering};

/// Whether the future was woken since it last said "pending", and whom to
/// wake when it is.
struct Flag {
    woken: AtomicBool,
    outer: Waker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.outer.wake_by_ref();
    }
}

/// A future's own waker and its flag.
///
/// # Wakers
///
/// The source is always polled with this interest's waker, which raises
/// the flag before it wakes the driver. The flag is cleared before the
/// source is polled, never after: a wake that comes while the source is
/// being polled (from another thread, or from the source itself) raises
/// it again, so the next turn polls the source once more. Cleared after
/// the poll, such a wake would be erased and the source never polled
/// again (the loom model below shows it).
pub(crate) struct Interest {
    flag: Arc<Flag>,
    waker: Waker,
    /// Under loom only: the flag cleared after the poll, to show the model
    /// sees it.
    #[cfg(all(test, wsgate_loom))]
    clears_after_poll: bool,
}

impl Interest {
    /// An interest whose wakes wake `outer`: the waker every poll of the
    /// driver comes with.
    pub(crate) fn new(outer: &Waker) -> Self {
        let flag = Arc::new(Flag {
            // The first poll always happens.
            woken: AtomicBool::new(true),
            outer: outer.clone(),
        });
        let waker = Waker::from(flag.clone());
        Self {
            flag,
            waker,
            #[cfg(all(test, wsgate_loom))]
            clears_after_poll: false,
        }
    }

    /// Under loom only: an interest that clears its flag after the poll,
    /// to show the model finds the lost wake.
    #[cfg(all(test, wsgate_loom))]
    pub(crate) fn clearing_after_poll(outer: &Waker) -> Self {
        let mut interest = Self::new(outer);
        interest.clears_after_poll = true;
        interest
    }

    /// The next poll polls the future: it was replaced, or reset.
    pub(crate) fn mark(&self) {
        self.flag.woken.store(true, Ordering::Release);
    }

    /// Calls `poll` with this interest's waker if the source may be ready
    /// (its waker fired, its last poll was ready, or it was marked), else
    /// says pending without calling it.
    pub(crate) fn poll_when_woken<T>(
        &self,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let flag = &self.flag;
        #[cfg(all(test, wsgate_loom))]
        if self.clears_after_poll {
            if !flag.woken.load(Ordering::Acquire) {
                return Poll::Pending;
            }
            let result = poll(&mut Context::from_waker(&self.waker));
            flag.woken.store(result.is_ready(), Ordering::Release);
            return result;
        }
        // A plain load first: most polls find the flag down, and a wake
        // that raises it meanwhile also wakes the driver, which polls
        // again. Taken with a swap before the poll: a wake from then on
        // sets it again, so a wake that comes while the source is being
        // polled is never lost. (Checked on every poll, not once per turn:
        // a wake that comes while the driver waits elsewhere must count.)
        if !flag.woken.load(Ordering::Acquire) || !flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let mut own = Context::from_waker(&self.waker);
        let result = poll(&mut own);
        if result.is_ready() {
            // More frames may already be in the buffer; a timer or a
            // wake-up that fired is replaced or reset before it is polled
            // again.
            flag.woken.store(true, Ordering::Release);
        }
        result
    }
}

#[cfg(all(test, not(wsgate_loom)))]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::mpsc;

    use super::*;

    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_read_side_is_ready_again_only_once_its_waker_fired() {
        let (sender, mut receiver) = mpsc::channel::<u32>(4);
        let outer = Arc::new(Counting(AtomicUsize::new(0)));
        let waker = Waker::from(outer.clone());
        let interest = Interest::new(&waker);
        let mut cx = Context::from_waker(&waker);
        let polls = AtomicUsize::new(0);
        let mut read = |_: &mut Context<'_>| {
            interest.poll_when_woken(|own| {
                polls.fetch_add(1, Ordering::SeqCst);
                receiver.poll_recv(own)
            })
        };
        assert!(read(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 1, "the first poll reads");
        assert!(read(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 1, "nothing woke it: no read");
        sender.try_send(7).unwrap();
        assert_eq!(
            outer.0.load(Ordering::SeqCst),
            1,
            "the send woke the driver"
        );
        assert_eq!(read(&mut cx), Poll::Ready(Some(7)));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        sender.try_send(8).unwrap();
        assert_eq!(
            read(&mut cx),
            Poll::Ready(Some(8)),
            "read again after a frame"
        );
    }
}
