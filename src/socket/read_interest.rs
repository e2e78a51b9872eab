//! Polls the WebSocket's read side only when there can be something to
//! read.
//!
//! The driver's loop polls every branch each time it runs, and it runs for
//! each reply the handler queues as well as for each inbound frame. A
//! `WebSocket::recv` that finds nothing is not free: tungstenite zeroes its
//! read buffer (up to 128 KiB) before it asks the socket, which then says
//! "would block". Polled on every turn, that was one memset of the whole
//! buffer for each reply: more than everything else wsgate adds to a
//! message. So the read side is polled with a waker of its own, and only
//! again once that waker was woken (or the last poll returned a frame, as
//! more may be buffered).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use pin_project_lite::pin_project;

/// Whether the read side was woken since it last said "pending", and whom
/// to wake when it is.
struct Flag {
    woken: AtomicBool,
    outer: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.outer.wake();
    }
}

/// The read side's own waker and its flag; one per connection.
pub(crate) struct ReadInterest {
    flag: Arc<Flag>,
    waker: Waker,
}

impl ReadInterest {
    pub(crate) fn new() -> Self {
        let flag = Arc::new(Flag {
            // The first poll always happens.
            woken: AtomicBool::new(true),
            outer: AtomicWaker::new(),
        });
        let waker = Waker::from(flag.clone());
        Self { flag, waker }
    }

    /// `read` (a read of the socket), polled with the read side's waker.
    pub(crate) fn poll<F: Future>(&self, read: F) -> Interested<'_, F> {
        Interested {
            interest: self,
            read,
        }
    }
}

pin_project! {
    /// A read polled through [`ReadInterest`].
    pub(crate) struct Interested<'a, F> {
        interest: &'a ReadInterest,
        #[pin]
        read: F,
    }
}

impl<F: Future> Future for Interested<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let flag = &this.interest.flag;
        flag.outer.register(cx.waker());
        // Taken before the poll: a wake from here on sets it again. (This
        // is checked on every poll, not as a `select!` precondition, which
        // is evaluated once per `select!` and would miss a wake that comes
        // while the `select!` waits on its other branches.)
        if !flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let mut read_cx = Context::from_waker(&this.interest.waker);
        let poll = this.read.poll(&mut read_cx);
        if poll.is_ready() {
            // More frames may already be in the buffer.
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
        let interest = ReadInterest::new();
        let (sender, mut receiver) = mpsc::channel::<u32>(4);
        let outer = Arc::new(Counting(AtomicUsize::new(0)));
        let waker = Waker::from(outer.clone());
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
