//! A wake-up that a blocking thread sends to a task through the IO reactor.
//!
//! tokio runs a task woken from outside its workers (by the blocking pool, say) only after the
//! tasks already waiting in its shared queue. While thousands of connections are being
//! written to, that queue is long: a flush that finished would wait behind every socket
//! write of the previous event, and a game could not publish its next move before all of
//! them. A task woken by the reactor instead runs next on the worker that noticed. So the log
//! writer hears of its finished commits through a socket pair: one byte per commit.
//!
//! Only when it is run matters; correctness does not depend on it.

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// The task's end: [`Wakeup::wait`] returns once a [`Nudge`] was sent.
#[derive(Debug)]
pub struct Wakeup {
    rx: tokio::net::UnixStream,
    tx: Arc<UnixStream>,
}

/// The blocking thread's end: wakes the task when dropped, however the thread's work ended.
#[derive(Debug)]
pub struct Nudge(Arc<UnixStream>);

impl Wakeup {
    /// A wake-up registered with the current runtime's reactor.
    ///
    /// # Errors
    /// No socket pair could be made (out of file descriptors).
    pub fn new() -> std::io::Result<Self> {
        let (tx, rx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        Ok(Wakeup {
            rx: tokio::net::UnixStream::from_std(rx)?,
            tx: Arc::new(tx),
        })
    }

    /// The end to hand to the blocking thread.
    pub fn nudge(&self) -> Nudge {
        Nudge(Arc::clone(&self.tx))
    }

    /// Wait for at least one nudge since the last wait: `true`. `false` if the socket failed
    /// and no nudge will ever come; the caller must wait some other way. Cancel-safe.
    pub async fn wait(&mut self) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match self.rx.try_read(&mut buf) {
                Ok(n) => return n > 0,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if self.rx.readable().await.is_err() {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }
}

impl Drop for Nudge {
    /// Wake the task.
    fn drop(&mut self) {
        // One byte in a socket buffer that the task drains: this never blocks for long.
        let _ = (&*self.0).write(&[1]);
    }
}
