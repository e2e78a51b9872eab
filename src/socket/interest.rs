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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use pin_project_lite::pin_project;

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
pub(crate) struct Interest {
    flag: Arc<Flag>,
    waker: Waker,
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
        Self { flag, waker }
    }

    /// The next poll polls the future: it was replaced, or reset.
    pub(crate) fn mark(&self) {
        self.flag.woken.store(true, Ordering::Release);
    }

    /// `read` polled with this interest's waker, when it may be ready.
    pub(crate) fn poll<F: Future>(&self, read: F) -> Interested<'_, F> {
        Interested {
            interest: self,
            read,
        }
    }
}

pin_project! {
    /// A future polled through [`Interest`].
    pub(crate) struct Interested<'a, F> {
        interest: &'a Interest,
        #[pin]
        read: F,
    }
}

impl<F: Future> Future for Interested<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let flag = &this.interest.flag;
        debug_assert!(
            cx.waker().will_wake(&flag.outer),
            "an interest is polled with the waker it wakes"
        );
        // A plain load first: most polls find the flag down, and a wake
        // that raises it meanwhile also wakes the driver, which polls
        // again. Taken with a swap before the poll: a wake from then on
        // sets it again. (This is checked on every poll, not as a
        // `select!` precondition, which is evaluated once per `select!` and
        // would miss a wake that comes while the `select!` waits on its
        // other branches.)
        if !flag.woken.load(Ordering::Acquire) || !flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let mut read_cx = Context::from_waker(&this.interest.waker);
        let poll = this.read.poll(&mut read_cx);
        if poll.is_ready() {
            // More frames may already be in the buffer; a timer or a
            // wake-up that fired is replaced or reset before it is polled
            // again.
            flag.woken.store(true, Ordering::Release);
        }
        poll
    }
}

#[cfg(test)]
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
        let mut read = Box::pin(interest.poll(std::future::poll_fn(|cx| {
            polls.fetch_add(1, Ordering::SeqCst);
            receiver.poll_recv(cx)
        })));
        assert!(read.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 1, "the first poll reads");
        assert!(read.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 1, "nothing woke it: no read");
        sender.try_send(7).unwrap();
        assert_eq!(
            outer.0.load(Ordering::SeqCst),
            1,
            "the send woke the driver"
        );
        assert_eq!(read.as_mut().poll(&mut cx), Poll::Ready(Some(7)));
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        sender.try_send(8).unwrap();
        assert_eq!(
            read.as_mut().poll(&mut cx),
            Poll::Ready(Some(8)),
            "read again after a frame"
        );
    }
}
