//! Moving a TCP connection from the shard that accepted it to the shard that owns its session.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use glommio::net::TcpStream;

/// A connection detached from its executor, safe to send to another shard.
///
/// Holds its own duplicate of the socket descriptor, so dropping it (e.g. when the target shard is
/// gone) closes the connection instead of leaking it.
#[derive(Debug)]
pub struct DetachedStream {
    fd: OwnedFd,
}

impl DetachedStream {
    /// Detaches `stream` from the current executor.
    ///
    /// The descriptor is duplicated before the glommio stream is dropped (dropping closes its own
    /// descriptor). Never pass a buffered stream: its read-ahead would be lost.
    pub fn detach(stream: TcpStream) -> std::io::Result<DetachedStream> {
        // SAFETY: dup returns a fresh descriptor that we own from here on.
        let dup = unsafe { libc::dup(stream.as_raw_fd()) };
        if dup < 0 {
            return Err(std::io::Error::last_os_error());
        }
        drop(stream);
        // SAFETY: `dup` is a valid, open descriptor owned by nobody else.
        Ok(DetachedStream { fd: unsafe { OwnedFd::from_raw_fd(dup) } })
    }

    /// The descriptor, to watch while the connection is parked.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// Adopts the connection into the current executor.
    pub fn attach(self) -> TcpStream {
        let fd = self.fd.into_raw_fd();
        // SAFETY: we transfer sole ownership of an open TCP socket descriptor.
        unsafe { TcpStream::from_raw_fd(fd) }
    }
}
