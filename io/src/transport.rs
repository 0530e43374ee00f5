//! The transport seam: one trait every kind of connection implements, so that the broker's
//! connection loop is written once for TCP, TLS, WebSocket and secure WebSocket.
//!
//! The trait is shaped by what the loop needs to stay cheap:
//!
//! - **One read per wake-up.** The loop takes what has already arrived with
//!   [`Transport::try_read`], which never waits and also returns the kernel's receive time; once
//!   the socket is empty it waits with [`Transport::read`] straight into its buffer. An idle
//!   connection does not wait with a buffer at all: it parks (below).
//! - **One write per wake-up.** The loop gathers everything it has to send and writes it with one
//!   [`Transport::write_all`].
//! - **Moving to the home shard.** After CONNECT the accepting shard may hand the connection to
//!   another shard: [`Transport::detach`] turns it into a [`Detached`] value that can cross
//!   threads, and the home shard attaches it into its own executor. Whatever protocol state the
//!   transport has moves with the descriptor. For TCP that is nothing (bytes already read travel
//!   beside it). A TLS transport moves its `rustls::ServerConnection` (keys, sequence numbers,
//!   buffered plaintext and records; it is `Send`) in its `Detached` variant and wraps the
//!   re-attached socket with it, so the session continues without a new handshake. A WebSocket
//!   transport moves the frame decoder's state (a partly received frame) the same way.
//! - **Parking.** A connection idle for a while is detached the same way but stays on its shard:
//!   its task ends and its descriptor waits in the `parking` watcher until input arrives, so an
//!   idle connection costs neither a suspended future nor a readiness source.
//!
//! Everything here runs on one shard's executor: futures are not `Send`, and need not be.

use std::io;
use std::net::SocketAddr;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::handoff::DetachedStream;

/// What a non-waiting read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes read; 0 at the end of the stream.
    pub len: usize,
    /// When the kernel received them (ns since the epoch), when the transport knows.
    pub stamp_ns: Option<u64>,
}

/// A connection's byte stream, as the broker's connection loop uses it.
// The futures are never Send (glommio is thread-per-core), so the lint's concern does not apply.
#[allow(async_fn_in_trait)]
pub trait Transport: Sized {
    /// Reads what is available without waiting: `Ok(None)` when nothing is.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>>;
    /// Waits until input arrives and reads some of it; 0 at the end of the stream.
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes all of `bytes`.
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Pushes out anything the transport buffers.
    async fn flush(&mut self) -> io::Result<()>;
    /// Stops sending (the peer sees end of stream) while still reading.
    async fn shutdown_write(&mut self) -> io::Result<()>;
    /// Closes the connection.
    async fn close(self) -> io::Result<()>;
    /// Takes the connection off this executor, with its protocol state, to be attached on
    /// another shard.
    fn detach(self) -> io::Result<Detached>;
    /// The peer's address, when known.
    fn peer_addr(&self) -> Option<SocketAddr>;
}

/// A connection between two shards: detached from one executor, not yet attached to another.
#[derive(Debug)]
pub enum Detached {
    /// Plain TCP.
    Tcp(DetachedStream),
}

impl Detached {
    /// The socket's descriptor (to park it; see `parking`).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Detached::Tcp(s) => s.raw_fd(),
        }
    }
}

/// Plain TCP: glommio's stream, with receive timestamps on reads that do not wait.
#[derive(Debug)]
pub struct TcpTransport {
    stream: TcpStream,
}

impl TcpTransport {
    /// Wraps an accepted stream.
    pub fn new(stream: TcpStream) -> TcpTransport {
        TcpTransport { stream }
    }

    /// Attaches a connection detached on another shard to this executor.
    pub fn attach(detached: DetachedStream) -> TcpTransport {
        TcpTransport { stream: detached.attach() }
    }
}

impl Transport for TcpTransport {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        Ok(crate::try_read_stamped(&self.stream, buf)?.map(|(len, stamp_ns)| Received { len, stamp_ns }))
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf).await
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.stream.flush().await
    }

    async fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write).await.map_err(to_io)
    }

    async fn close(mut self) -> io::Result<()> {
        self.stream.close().await
    }

    fn detach(self) -> io::Result<Detached> {
        Ok(Detached::Tcp(DetachedStream::detach(self.stream)?))
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok()
    }
}

fn to_io<T>(e: glommio::GlommioError<T>) -> io::Error {
    match e {
        glommio::GlommioError::IoError(io) => io,
        other => io::Error::other(other.to_string()),
    }
}
