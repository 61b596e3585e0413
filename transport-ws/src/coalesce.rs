//! A write buffer that exists only while there is something to write.
//!
//! tungstenite keeps its own write buffer for the life of a connection, at the largest size it
//! ever reached: a spectator that was sent a replay once holds kilobytes it will not need
//! again. Under it, umpire gives tungstenite a write buffer of size 0 (each frame is handed
//! down at once) and this wrapper gathers the frames instead: every write is copied into a
//! buffer, the flush at the end of a batch writes them to the socket together (one `send` for
//! the batch, as before) and frees the buffer. An idle connection holds none.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Past this many buffered bytes, a write waits until some of them reach the socket: a client
/// that does not read holds at most this much here (and its writes time out above).
const LIMIT: usize = 64 * 1024;

/// `S` with its writes gathered until the next flush. Reads pass through.
#[derive(Debug)]
pub(crate) struct Coalesce<S> {
    inner: S,
    buf: Vec<u8>,
    /// How much of `buf` has reached `inner`.
    sent: usize,
}

impl<S> Coalesce<S> {
    pub(crate) fn new(inner: S) -> Self {
        Coalesce {
            inner,
            buf: Vec::new(),
            sent: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    /// Write what is buffered to `inner`; once all of it is, free the buffer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.buf.len() >= LIMIT {
            ready!(self.poll_drain(cx))?;
        }
        self.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_reach_the_socket_at_the_flush_together_and_the_buffer_is_freed() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut c = Coalesce::new(near);
        c.write_all(b"hello ").await.expect("buffered");
        c.write_all(b"world").await.expect("buffered");
        assert_eq!(c.buf.len(), 11, "nothing written before the flush");
        c.flush().await.expect("flushed");
        assert_eq!(c.buf.capacity(), 0, "an idle connection holds no buffer");
        let mut got = [0u8; 11];
        far.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hello world");
    }

    #[tokio::test]
    async fn a_reader_that_does_not_read_holds_at_most_the_limit() {
        // The far end never reads: the pipe takes 1 KiB, then writes must wait.
        let (near, _far) = tokio::io::duplex(1024);
        let mut c = Coalesce::new(near);
        let chunk = vec![7u8; 4096];
        let mut written = 0;
        let stuck = tokio::time::timeout(std::time::Duration::from_millis(200), async {
            loop {
                c.write_all(&chunk).await.expect("write");
                written += chunk.len();
            }
        })
        .await;
        assert!(stuck.is_err(), "writes went on without a reader");
        assert!(
            written <= LIMIT + chunk.len(),
            "buffered {written} bytes for a client that reads nothing"
        );
    }
}
