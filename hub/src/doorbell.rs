//! A doorbell: how a producer on any thread tells one waiting task "look again", with no
//! wake-up lost and none sent twice for the same ring.

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use atomic_waker::AtomicWaker;

/// Rung by producers, waited on by one task.
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    /// Raised by every ring, lowered by the task before it looks: a ring that comes between
    /// the look and the wait is never missed.
    rung: AtomicBool,
    /// The task, while it waits.
    waker: AtomicWaker,
}

impl Doorbell {
    /// Ring: wake the task if it waits, or make its next wait return at once.
    pub(crate) fn ring(&self) {
        self.rung.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Forget rings so far: the task is about to look at everything they announced.
    pub(crate) fn reset(&self) {
        self.rung.store(false, Ordering::Release);
    }

    /// Wait until rung since the last `reset` (or the last wait).
    pub(crate) async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.rung.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // Rung between the check and the registration: do not sleep on it.
            if self.rung.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}
