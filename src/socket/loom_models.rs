//! The socket's hand-overs model-checked with loom: every interleaving of
//! the threads below, and every value a load may see under the memory
//! model, for the queue (`queue.rs`), the `Join` (`join.rs`) and the
//! interests (`interest.rs`). A lost wake shows as a deadlock: loom's
//! `block_on` parks until its waker is woken, and loom fails a model in
//! which every thread is parked.
//!
//! Run with `RUSTFLAGS="--cfg wsgate_loom" cargo test --lib --release
//! loom_models`. Each broken variant is expected to fail, in a process of
//! its own: a model that fails inside a test tears loom down with a panic
//! in a destructor, which aborts the whole test binary.
//! (`.ci/run` does).

use std::future::poll_fn;
use std::task::{Context, Poll};

use loom::future::{AtomicWaker, block_on};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

use crate::socket::interest::Interest;
use crate::socket::join::Join;
use crate::socket::queue::{Place, ReceiverGone, queue};

/// A one-shot signal set from another thread: registers, then checks.
#[derive(Default)]
struct Signal {
    set: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.waker.register_by_ref(cx.waker());
        if self.set.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn set(&self) {
        self.set.store(true, Ordering::Release);
        self.waker.wake();
    }
}

#[test]
fn queue_the_sender_leaving_while_the_receiver_waits() {
    loom::model(|| {
        let (sender, mut receiver) = queue::<u32>(1);
        let sending = thread::spawn(move || {
            sender.try_send(1).unwrap();
            drop(sender);
        });
        let received = block_on(async { (receiver.recv().await, receiver.recv().await) });
        assert_eq!(received, (Some(1), None));
        sending.join().unwrap();
    });
}

#[test]
fn queue_the_receiver_leaving_while_the_sender_waits_for_room() {
    loom::model(|| {
        let (sender, receiver) = queue::<u32>(1);
        sender.try_send(1).unwrap();
        let sending = thread::spawn(move || block_on(sender.send(2)));
        drop(receiver);
        assert_eq!(sending.join().unwrap(), Err(ReceiverGone));
    });
}

#[test]
fn queue_a_send_given_up_while_waiting_for_room() {
    // Two sends wait in line for one place (set up before the threads);
    // then the first gives up while the receiver frees the place: the room
    // kept for it must reach the second, whatever the interleaving.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let (sender, mut receiver) = queue::<u32>(1);
        sender.try_send(1).unwrap();
        let noop = Context::from_waker(std::task::Waker::noop());
        let (mut quitter_place, mut quitter_message) = (Place::default(), Some(9));
        assert!(
            sender
                .poll_send(&noop, &mut quitter_message, &mut quitter_place)
                .is_pending()
        );
        let (mut place, mut message) = (Place::default(), Some(2));
        assert!(
            sender
                .poll_send(&noop, &mut message, &mut place)
                .is_pending()
        );
        let quitter = sender.clone();
        let giving_up = thread::spawn(move || quitter.leave(&mut quitter_place));
        let sending = thread::spawn(move || {
            block_on(poll_fn(|cx| sender.poll_send(cx, &mut message, &mut place))).unwrap();
        });
        let received = block_on(async {
            let mut all = Vec::new();
            while let Some(message) = receiver.recv().await {
                all.push(message);
            }
            all
        });
        giving_up.join().unwrap();
        sending.join().unwrap();
        assert_eq!(received, [1, 2]);
    });
}

#[test]
fn queue_a_message_in_and_out_across_threads() {
    loom::model(|| {
        let (sender, mut receiver) = queue::<u32>(1);
        let sending = thread::spawn(move || {
            block_on(async {
                sender.send(1).await.unwrap();
                sender.send(2).await.unwrap();
            });
        });
        let received = block_on(async {
            let mut all = Vec::new();
            while let Some(message) = receiver.recv().await {
                all.push(message);
            }
            all
        });
        assert_eq!(received, [1, 2]);
        sending.join().unwrap();
    });
}

/// A half of a `Join` waits for a signal that another thread sets while
/// the pair is being polled (or not): the `Join` must finish.
fn join_woken_from_another_thread(weakened: bool) {
    loom::model(move || {
        let signal = Arc::new(Signal::default());
        let setter = signal.clone();
        let setting = thread::spawn(move || setter.set());
        let waiting = poll_fn(|cx| signal.poll(cx));
        if weakened {
            block_on(Join::weakened(waiting, async {}));
        } else {
            block_on(Join::new(waiting, async {}));
        }
        setting.join().unwrap();
    });
}

#[test]
fn join_a_wake_from_another_thread_while_the_pair_is_polled() {
    join_woken_from_another_thread(false);
}

/// Runs `broken` (a model of a deliberately broken variant) in a child
/// process of this test binary, running the test `name` alone, and
/// expects loom to report the lost wake there (a deadlock: every thread
/// parked). The child is this same test, told by the environment to run
/// the model itself.
fn expect_lost_wake(name: &str, broken: impl FnOnce()) {
    const CHILD: &str = "WSGATE_LOOM_BROKEN_VARIANT";
    if std::env::var_os(CHILD).is_some() {
        broken();
        return;
    }
    let test = format!("socket::loom_models::{name}");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "loom found nothing wrong with the broken variant {name}"
    );
    assert!(
        said.contains("deadlock"),
        "the broken variant {name} failed otherwise than by a lost wake:\n{said}"
    );
}

#[test]
fn join_without_its_fences_loses_a_wake() {
    expect_lost_wake("join_without_its_fences_loses_a_wake", || {
        join_woken_from_another_thread(true);
    });
}

/// The driver polls a source through an interest until it is ready; the
/// source is a signal another thread sets.
fn interest_woken_from_another_thread(clears_after_poll: bool) {
    loom::model(move || {
        let signal = Arc::new(Signal::default());
        let setter = signal.clone();
        let setting = thread::spawn(move || setter.set());
        let mut interest = None;
        block_on(poll_fn(|cx| {
            let interest = interest.get_or_insert_with(|| {
                if clears_after_poll {
                    Interest::clearing_after_poll(cx.waker())
                } else {
                    Interest::new(cx.waker())
                }
            });
            interest.poll_when_woken(|own| signal.poll(own))
        }));
        setting.join().unwrap();
    });
}

#[test]
fn interest_a_wake_from_another_thread_while_the_driver_polls() {
    interest_woken_from_another_thread(false);
}

#[test]
fn interest_clearing_its_flag_after_the_poll_loses_a_wake() {
    expect_lost_wake(
        "interest_clearing_its_flag_after_the_poll_loses_a_wake",
        || {
            interest_woken_from_another_thread(true);
        },
    );
}
