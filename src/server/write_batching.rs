//! Responses written in batches: a connection wrapper that has HTTP/2 copy small frames into
//! its write buffer instead of writing each one on its own.
//!
//! h2 (`codec::FramedWrite`) copies a DATA frame into its 16 KiB write buffer only when the
//! payload is at most its chain threshold: 256 bytes on a connection with vectored writes,
//! 1,024 without. A larger payload is written, together with what is buffered, by a vectored
//! write of its own before the next frame can be buffered. A Check's response (its
//! `dynamic_metadata` alone is about 400 bytes) is above 256 bytes, so on a TCP or TLS
//! connection every response cost a `writev` system call — 1.4 per Check under load, against
//! 0.4 for an allow-all server whose responses are buffered — and a wake-up of Envoy's reading
//! side. Declaring the connection without vectored writes raises the threshold to 1,024 bytes:
//! the frames of the responses ready at once go out in one write.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection (TCP, TLS or Unix socket) whose writes are never vectored: see the module
/// documentation. Reads, flushes, shutdown and the connection's info pass through unchanged.
#[derive(Debug)]
pub(super) struct BatchedWrites<IO>(pub(super) IO);

impl<IO: AsyncRead + Unpin> AsyncRead for BatchedWrites<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for BatchedWrites<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    /// `false`, whatever the connection supports: that is the point of this wrapper.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected
    for BatchedWrites<IO>
{
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn bytes_pass_through_both_ways_and_writes_are_not_vectored() {
        let (a, b) = tokio::io::duplex(64);
        let (mut a, mut b) = (BatchedWrites(a), BatchedWrites(b));
        assert!(!a.is_write_vectored());
        a.write_all(b"check").await.expect("write");
        a.flush().await.expect("flush");
        let mut got = [0u8; 5];
        b.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"check");
        b.write_all(b"ok").await.expect("write");
        b.shutdown().await.expect("shutdown");
        let mut rest = Vec::new();
        a.read_to_end(&mut rest).await.expect("read");
        assert_eq!(rest, b"ok");
    }
}
