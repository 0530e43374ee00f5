//! One client connection of the relay: its socket, the bytes read but not yet a whole packet, the
//! bytes waiting to be written, and its place in the loop's bookkeeping.

use std::io::{self, Read, Write};

use bytes::{Buf, BytesMut};
use mio::net::TcpStream;
use ratatosk::protocol::ProtocolVersion;

/// A buffer this much larger than what it holds is given back when it empties, so that a
/// connection that once carried a burst costs nothing while idle.
const KEEP_CAPACITY: usize = 64 * 1024;

/// What a read from the socket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// This many bytes; the socket may hold more when the read filled the buffer.
    Bytes(usize),
    /// Nothing until the next readiness event.
    Drained,
    /// The peer closed its side.
    Eof,
}

/// A client connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// The start of a packet that is not whole yet (usually empty: packets are handled straight
    /// from the loop's read buffer, and only a packet cut by a read is copied here).
    partial: BytesMut,
    out: BytesMut,
    /// The protocol version of its CONNECT; `None` until then.
    pub version: Option<ProtocolVersion>,
    /// Its subscriptions, to remove them from the routes when it closes.
    pub filters: Vec<Box<str>>,
    /// The socket may have unread input (it reported readable and no read has drained it since).
    pub readable: bool,
    /// It is in the loop's list of connections to read.
    pub queued_read: bool,
    /// It is in the loop's list of connections to flush.
    pub queued_flush: bool,
    /// Reading is held until this connection's output has drained: a subscriber this one publishes
    /// to is that far behind.
    pub held_by: Option<usize>,
    /// Publishers held until this connection's output drains.
    pub holding: Vec<usize>,
    /// The last message delivered to it, so that overlapping subscriptions deliver it once.
    pub last_message: u64,
}

impl Conn {
    /// A freshly accepted connection.
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            partial: BytesMut::new(),
            out: BytesMut::new(),
            version: None,
            filters: Vec::new(),
            readable: false,
            queued_read: false,
            queued_flush: false,
            held_by: None,
            holding: Vec::new(),
            last_message: 0,
        }
    }

    /// The socket, to register it with the poller.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// One read into `buf`.
    ///
    /// # Errors
    ///
    /// The socket's error (reset, ...); the connection is then closed.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<Input> {
        loop {
            return match self.stream.read(buf) {
                Ok(0) => Ok(Input::Eof),
                Ok(n) => Ok(Input::Bytes(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Input::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Queues bytes for the next flush.
    pub fn push(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// The output buffer, for the codec to encode a reply into.
    pub fn out_mut(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Writes as much of the output as the socket takes now; the rest waits for writability.
    ///
    /// # Errors
    ///
    /// The socket's error (broken pipe, reset); the connection is then closed.
    pub fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = BytesMut::new();
        }
        Ok(())
    }

    /// Takes the unfinished packet kept from earlier reads, to append to it and handle it.
    pub fn take_partial(&mut self) -> BytesMut {
        std::mem::take(&mut self.partial)
    }

    /// Keeps `rest`, the unfinished packet at the end of what was handled, for the next read.
    pub fn put_partial(&mut self, rest: BytesMut) {
        self.partial = if rest.is_empty() && rest.capacity() > KEEP_CAPACITY { BytesMut::new() } else { rest };
    }
}
