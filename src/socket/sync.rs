//! The synchronisation types of the socket's hand-overs (`queue.rs`,
//! `join.rs`, `interest.rs`): std's, or loom's when they are
//! model-checked (`RUSTFLAGS="--cfg wsgate_loom" cargo test --lib
//! --release loom_models`), so the same code is what loom explores.
//!
//! Only this crate's own unit tests switch (`all(test, wsgate_loom)`, as
//! tokio's `all(test, loom)`): the library the tests' harness links as a
//! dependency stays on std. The switch is `wsgate_loom`, not tokio's usual
//! `loom`: `RUSTFLAGS`
//! reaches every crate of the build, and this crate's tests build the
//! Redis and SQL features, whose dependency `event-listener` reads
//! `cfg(loom)` too and does not build with it.
//!
//! Wakers are made from std's `Arc` whatever the build
//! (`std::task::Wake` takes one); the flags they set are loom's atomics
//! under loom.

#[cfg(all(test, wsgate_loom))]
pub(crate) use loom::sync::atomic::{AtomicBool, Ordering, fence};
#[cfg(all(test, wsgate_loom))]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(all(test, wsgate_loom)))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering, fence};
#[cfg(not(all(test, wsgate_loom)))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// A waker slot that one side registers in and any thread wakes:
/// futures' `AtomicWaker`, or loom's.
#[derive(Default)]
pub(crate) struct AtomicWaker {
    #[cfg(not(all(test, wsgate_loom)))]
    inner: futures_util::task::AtomicWaker,
    #[cfg(all(test, wsgate_loom))]
    inner: loom::future::AtomicWaker,
}

impl AtomicWaker {
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        #[cfg(not(all(test, wsgate_loom)))]
        self.inner.register(waker);
        #[cfg(all(test, wsgate_loom))]
        self.inner.register_by_ref(waker);
    }

    pub(crate) fn wake(&self) {
        self.inner.wake();
    }
}
