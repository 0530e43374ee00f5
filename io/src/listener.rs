//! A TCP listener whose accept loop survives descriptor exhaustion.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use std::os::fd::{FromRawFd, IntoRawFd};

use glommio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

/// Pending-connection queue per shard; large enough for connection storms from load tools.
const BACKLOG: i32 = 4096;
use glommio::GlommioError;

/// Why a listener could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// bind/listen failed.
    #[error("cannot listen on {addr}: {source}; pick a free address with --listen")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
}

/// One shard's listening socket.
#[derive(Debug)]
pub struct Listener {
    inner: TcpListener,
    emfile_logged: Cell<bool>,
    /// Accept failures for lack of descriptors, for metrics.
    emfile_count: Cell<u64>,
}

impl Listener {
    /// Binds `addr` with SO_REUSEPORT, so every shard binds the same port and the kernel spreads
    /// connections, and SO_REUSEADDR, so a restart is not refused while old connections linger in
    /// TIME_WAIT.
    pub fn bind(addr: SocketAddr) -> Result<Listener, ListenerError> {
        let err = |source| ListenerError::Bind { addr, source };
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
        sock.set_reuse_address(true).map_err(err)?;
        sock.set_reuse_port(true).map_err(err)?;
        sock.bind(&addr.into()).map_err(err)?;
        sock.listen(BACKLOG).map_err(err)?;
        // SAFETY: we hand glommio sole ownership of a bound, listening TCP socket.
        let inner = unsafe { TcpListener::from_raw_fd(sock.into_raw_fd()) };
        Ok(Listener { inner, emfile_logged: Cell::new(false), emfile_count: Cell::new(0) })
    }

    /// Fails if another process already listens on `addr` (a second broker would silently take
    /// half of the connections through SO_REUSEPORT). Returns the address with the real port when
    /// port 0 was given.
    pub fn probe_free(addr: SocketAddr) -> Result<SocketAddr, ListenerError> {
        let err = |source| ListenerError::Bind { addr, source };
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
        sock.set_reuse_address(true).map_err(err)?;
        // Bound but never listening: a client that connects meanwhile is refused rather than
        // accepted by this probe and then reset when it closes (before the shards listen).
        sock.bind(&addr.into()).map_err(err)?;
        let local = sock.local_addr().map_err(err)?;
        Ok(local.as_socket().unwrap_or(addr))
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr().map_err(to_io)
    }

    /// Accept failures because the process ran out of descriptors.
    pub fn descriptor_exhaustion_count(&self) -> u64 {
        self.emfile_count.get()
    }

    /// Accepts the next connection, with TCP_NODELAY set.
    ///
    /// Running out of descriptors (EMFILE/ENFILE) is logged once, counted, and retried after a short
    /// pause, so the listener resumes by itself once descriptors free up. Other transient errors
    /// (a peer that reset before accept) are skipped.
    pub async fn accept(&self) -> crate::TcpTransport {
        loop {
            match self.inner.accept().await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    if let Err(e) = crate::enable_rx_timestamps(&s) {
                        tracing::debug!(error = %e, "no receive timestamps on this socket");
                    }
                    return crate::TcpTransport::new(s);
                }
                Err(e) => {
                    let err = to_io(e);
                    match err.raw_os_error() {
                        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM) => {
                            self.emfile_count.set(self.emfile_count.get() + 1);
                            if !self.emfile_logged.replace(true) {
                                tracing::error!(error = %err, "out of file descriptors: new connections wait until some close (raise `ulimit -n`)");
                            }
                            glommio::timer::sleep(Duration::from_millis(50)).await;
                        }
                        _ => {
                            tracing::debug!(error = %err, "accept failed");
                            glommio::timer::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
            }
        }
    }
}

fn to_io<T>(e: GlommioError<T>) -> std::io::Error {
    match e {
        GlommioError::IoError(io) => io,
        other => std::io::Error::other(other.to_string()),
    }
}
