//! Reads that also return when the kernel received the data.
//!
//! Shards read their sockets independently, so the order in which two shards *process* packets
//! from two clients can differ from the order in which the packets *arrived* by up to a
//! scheduling delay (milliseconds on a busy machine). The kernel's receive timestamp
//! (SO_TIMESTAMPNS) restores the arrival order; the broker uses it to decide whether a message
//! published on one shard came before or after a subscription made on another.

use std::io;
use std::os::fd::AsRawFd;

use glommio::net::TcpStream;

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME, the clock of kernel receive timestamps).
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Asks the kernel to timestamp received data on this socket.
pub fn enable_rx_timestamps(stream: &TcpStream) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads an int we own, on a descriptor the stream owns.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads what is available without waiting: `Ok(None)` when nothing is, otherwise the byte
/// count (0 at end of stream) and the kernel receive time of the data in nanoseconds, when the
/// kernel gave one.
///
/// Waiting is left to the caller (glommio's readiness-based read of a single byte does it without
/// holding a buffer; glommio's `peek` would allocate a page-aligned one per call).
pub fn try_read_stamped(stream: &TcpStream, buf: &mut [u8]) -> io::Result<Option<(usize, Option<u64>)>> {
    loop {
        match recv_stamped(stream.as_raw_fd(), buf) {
            Ok(r) => return Ok(Some(r)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

fn recv_stamped(fd: i32, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // Room for one SCM_TIMESTAMPNS control message, 8-byte aligned.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; every pointer in it refers to locals that outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: as above; the kernel writes at most iov_len bytes and msg_controllen bytes.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: CMSG_* walk the control buffer the kernel filled, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}
