//! The relay's connections and what each packet does to them.
//!
//! The loop tells the hub which sockets became readable or writable; the hub reads each readable
//! connection once per turn (a connection whose read filled the buffer is read again next turn, so a
//! flooding publisher cannot starve the others), handles every whole packet in what it read, and
//! appends replies and relayed messages to the output buffers of the connections concerned. After all
//! reads, every connection with output is flushed once: one write per connection per turn however
//! many messages it received.
//!
//! A subscriber whose output is more than `HOLD_AT` bytes behind holds the publishers that feed it:
//! they are not read until its output has drained below `RELEASE_AT`. So the relay never drops a
//! message (a QoS 1 publisher is acknowledged by the relay itself, so its in-flight window would not
//! bound anything) and never buffers more than about `HOLD_AT` plus one read per publisher.

use std::io;

use bytes::{Buf, BytesMut};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use ratatosk::protocol::{decode, encode, topic, ConnAck, Packet, ProtocolVersion, SubAck, UnsubAck};

use super::conn::{Conn, Input};
use super::frame::{self, MAX_PACKET};
use super::routes::Routes;

/// Output bytes behind which a subscriber holds its publishers.
const HOLD_AT: usize = 256 * 1024;
/// Output bytes below which it releases them.
const RELEASE_AT: usize = 64 * 1024;

/// SUBACK code for a shared subscription, which the relay does not do: 5.0 "shared subscriptions
/// not supported"; 3.x has only "failure".
const SHARED_REFUSED_V5: u8 = 0x9E;
const FAILURE_V3: u8 = 0x80;
/// UNSUBACK (5.0) for a filter the client was not subscribed to.
const NO_SUBSCRIPTION: u8 = 0x11;

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// DISCONNECT, or the peer closed its socket.
    Normal,
    /// Malformed input or a packet the relay does not take.
    Bad(String),
}

impl From<&str> for End {
    fn from(s: &str) -> End {
        End::Bad(s.to_owned())
    }
}

/// Every connection, the subscriptions, and the connections with work for this turn.
pub struct Hub {
    registry: Registry,
    /// Connections by slot; the slot is the poller token.
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    routes: Routes,
    to_read: Vec<usize>,
    to_flush: Vec<usize>,
    /// Messages relayed so far; numbers each one for the overlapping-subscription check.
    messages: u64,
}

impl Hub {
    /// An empty hub whose connections register with `registry`.
    pub fn new(registry: Registry) -> Hub {
        Hub {
            registry,
            conns: Vec::new(),
            free: Vec::new(),
            routes: Routes::default(),
            to_read: Vec::new(),
            to_flush: Vec::new(),
            messages: 0,
        }
    }

    /// Takes an accepted connection into the loop.
    ///
    /// # Errors
    ///
    /// Registration with the poller failed (the connection is then dropped).
    pub fn add(&mut self, stream: TcpStream) -> io::Result<()> {
        // Replies and relayed messages are written once per turn already; Nagle would only delay them.
        stream.set_nodelay(true)?;
        let mut conn = Conn::new(stream);
        let slot = self.free.pop().unwrap_or(self.conns.len());
        self.registry.register(conn.stream_mut(), Token(slot), Interest::READABLE | Interest::WRITABLE)?;
        match self.conns.get_mut(slot) {
            Some(s) => *s = Some(conn),
            None => self.conns.push(Some(conn)),
        }
        Ok(())
    }

    /// Whether a connection still has input to read this turn (so the loop must not sleep).
    pub fn has_input(&self) -> bool {
        !self.to_read.is_empty()
    }

    /// The socket of `token` became readable (or closed, or failed: a read will tell).
    pub fn on_readable(&mut self, token: Token) {
        if let Some(c) = self.conns.get_mut(token.0).and_then(Option::as_mut) {
            c.readable = true;
            if c.held_by.is_none() && !c.queued_read {
                c.queued_read = true;
                self.to_read.push(token.0);
            }
        }
    }

    /// The socket of `token` takes writes again.
    pub fn on_writable(&mut self, token: Token) {
        if let Some(c) = self.conns.get_mut(token.0).and_then(Option::as_mut) {
            if c.pending() > 0 && !c.queued_flush {
                c.queued_flush = true;
                self.to_flush.push(token.0);
            }
        }
    }

    /// Reads every connection queued for reading once, and handles what arrived.
    pub fn read_all(&mut self, scratch: &mut [u8]) {
        let mut batch = std::mem::take(&mut self.to_read);
        for &i in &batch {
            self.read_one(i, scratch);
        }
        batch.clear();
        // Connections queued again while reading (a full read) are kept; the batch's allocation is
        // reused for the next turn.
        batch.append(&mut self.to_read);
        self.to_read = batch;
    }

    fn read_one(&mut self, i: usize, scratch: &mut [u8]) {
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        c.queued_read = false;
        if c.held_by.is_some() {
            return;
        }
        let n = match c.read(scratch) {
            Ok(Input::Bytes(n)) => n,
            Ok(Input::Drained) => {
                c.readable = false;
                return;
            }
            Ok(Input::Eof) => return self.close(i, End::Normal),
            Err(e) => return self.close(i, End::Bad(format!("read: {e}"))),
        };
        // A short read took everything the socket held; a new arrival raises a new event.
        let more = n == scratch.len();
        c.readable = more;
        let mut buf = c.take_partial();
        let data = scratch.get(..n).unwrap_or_default();
        let handled = if buf.is_empty() {
            // The common case: whole packets straight from the read buffer, no copy.
            let r = self.handle(i, data);
            if let Ok(used) = r {
                buf.extend_from_slice(data.get(used..).unwrap_or_default());
            }
            r
        } else {
            buf.extend_from_slice(data);
            let r = self.handle(i, &buf);
            if let Ok(used) = r {
                buf.advance(used);
            }
            r
        };
        if let Err(end) = handled {
            return self.close(i, end);
        }
        if let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) {
            c.put_partial(buf);
            if more && c.held_by.is_none() && !c.queued_read {
                c.queued_read = true;
                self.to_read.push(i);
            }
        }
    }

    /// Writes out every connection with output once; releases the publishers of those that drained.
    pub fn flush_all(&mut self) {
        let mut batch = std::mem::take(&mut self.to_flush);
        for &i in &batch {
            let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            c.queued_flush = false;
            if let Err(e) = c.flush() {
                self.close(i, End::Bad(format!("write: {e}")));
                continue;
            }
            // What is left waits for the socket's writable event.
            if c.pending() < RELEASE_AT && !c.holding.is_empty() {
                self.release(i);
            }
        }
        batch.clear();
        self.to_flush = batch;
    }

    /// Closes connection `i`, drops its subscriptions and releases the publishers it held.
    fn close(&mut self, i: usize, end: End) {
        let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) else {
            return;
        };
        if let End::Bad(why) = end {
            eprintln!("relay: closing connection {i}: {why}");
        }
        let _ = self.registry.deregister(c.stream_mut());
        for f in &c.filters {
            self.routes.remove(f, i);
        }
        self.release_all(i, std::mem::take(&mut c.holding));
        self.free.push(i);
    }

    /// Lets the publishers held by `i` be read again.
    fn release(&mut self, i: usize) {
        let held = self.conns.get_mut(i).and_then(Option::as_mut).map(|c| std::mem::take(&mut c.holding));
        self.release_all(i, held.unwrap_or_default());
    }

    fn release_all(&mut self, holder: usize, held: Vec<usize>) {
        for p in held {
            let Some(c) = self.conns.get_mut(p).and_then(Option::as_mut) else {
                continue;
            };
            if c.held_by != Some(holder) {
                continue;
            }
            c.held_by = None;
            // Edges that came while it was held were not lost: `readable` remembers them.
            if c.readable && !c.queued_read {
                c.queued_read = true;
                self.to_read.push(p);
            }
        }
    }

    /// Handles every whole packet at the front of `data`; returns how many bytes they took.
    fn handle(&mut self, i: usize, data: &[u8]) -> Result<usize, End> {
        let mut at = 0;
        while let Some(rest) = data.get(at..) {
            let Some(f) = frame::split(rest).map_err(End::Bad)? else {
                break;
            };
            let packet = rest.get(..f.total).ok_or("truncated packet")?;
            self.packet(i, packet, f.header)?;
            at += f.total;
        }
        Ok(at)
    }

    /// Handles one whole packet from connection `i`.
    fn packet(&mut self, i: usize, packet: &[u8], header: usize) -> Result<(), End> {
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Err(End::Normal);
        };
        let Some(version) = c.version else {
            return self.connect(i, packet);
        };
        let kind = packet.first().copied().unwrap_or(0) >> 4;
        match kind {
            3 => return self.publish(i, packet, header, version),
            // The relay acknowledged the publisher itself; a subscriber's acknowledgement ends the
            // message's journey here.
            4 | 7 => {
                frame::ack_id(packet, header, 0)?;
                return Ok(());
            }
            5 => c.push(&frame::pubrel(frame::ack_id(packet, header, 0)?)),
            6 => c.push(&frame::pubcomp(frame::ack_id(packet, header, 0b0010)?)),
            8 | 10 => return self.subscription(i, packet, version),
            12 => {
                if packet != [0xC0, 0] {
                    return Err("malformed PINGREQ".into());
                }
                c.push(&frame::PINGRESP);
            }
            14 => return Err(End::Normal),
            _ => return Err(End::Bad(format!("packet type {kind} is not taken by the relay"))),
        }
        self.queue_flush(i);
        Ok(())
    }

    /// CONNECT: answered with a success CONNACK in the client's version (5.0: no properties).
    fn connect(&mut self, i: usize, packet: &[u8]) -> Result<(), End> {
        let mut buf = BytesMut::from(packet);
        let c = match decode(&mut buf, None, MAX_PACKET) {
            Ok(Some(Packet::Connect(c))) => c,
            Ok(_) => return Err("incomplete CONNECT".into()),
            Err(e) => return Err(End::Bad(format!("CONNECT: {e}"))),
        };
        let ack = Packet::ConnAck(ConnAck { session_present: false, code: 0, properties: Default::default() });
        self.reply(i, &ack, c.protocol)?;
        if let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) {
            conn.version = Some(c.protocol);
        }
        Ok(())
    }

    /// SUBSCRIBE (granting each filter the QoS it asks for) or UNSUBSCRIBE.
    fn subscription(&mut self, i: usize, packet: &[u8], version: ProtocolVersion) -> Result<(), End> {
        let mut buf = BytesMut::from(packet);
        let reply = match decode(&mut buf, Some(version), MAX_PACKET) {
            Ok(Some(Packet::Subscribe(s))) => {
                let mut reasons = Vec::with_capacity(s.filters.len());
                for (filter, opts) in &s.filters {
                    if topic::split_shared(filter).is_some() {
                        reasons.push(if version.is_v5() { SHARED_REFUSED_V5 } else { FAILURE_V3 });
                        continue;
                    }
                    self.routes.add(filter, i);
                    if let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) {
                        if !c.filters.iter().any(|f| **f == **filter) {
                            c.filters.push((&**filter).into());
                        }
                    }
                    reasons.push(opts.qos as u8);
                }
                Packet::SubAck(SubAck { packet_id: s.packet_id, reasons, properties: Default::default() })
            }
            Ok(Some(Packet::Unsubscribe(u))) => {
                let mut reasons = Vec::with_capacity(u.filters.len());
                for filter in &u.filters {
                    let had = self.routes.remove(filter, i);
                    if let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) {
                        c.filters.retain(|f| **f != **filter);
                    }
                    reasons.push(if had { 0 } else { NO_SUBSCRIPTION });
                }
                if !version.is_v5() {
                    reasons.clear();
                }
                Packet::UnsubAck(UnsubAck { packet_id: u.packet_id, reasons, properties: Default::default() })
            }
            Ok(_) => return Err("incomplete packet".into()),
            Err(e) => return Err(End::Bad(e.to_string())),
        };
        self.reply(i, &reply, version)
    }

    /// PUBLISH: its bytes, unchanged, to every subscriber whose filter matches its topic (once per
    /// subscriber however many of its filters match), then PUBACK / PUBREC to the publisher.
    fn publish(&mut self, i: usize, packet: &[u8], header: usize, version: ProtocolVersion) -> Result<(), End> {
        let head = frame::publish_head(packet, header, version.is_v5())?;
        self.messages += 1;
        let message = self.messages;
        let (conns, to_flush) = (&mut self.conns, &mut self.to_flush);
        let mut behind = None;
        self.routes.for_each_match(head.topic, |s| {
            let Some(sub) = conns.get_mut(s).and_then(Option::as_mut) else {
                return;
            };
            if sub.last_message == message {
                return;
            }
            sub.last_message = message;
            sub.push(packet);
            if !sub.queued_flush {
                sub.queued_flush = true;
                to_flush.push(s);
            }
            if sub.pending() > HOLD_AT && behind.is_none() {
                behind = Some(s);
            }
        });
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Err(End::Normal);
        };
        match head.qos {
            1 => c.push(&frame::puback(head.packet_id)),
            2 => c.push(&frame::pubrec(head.packet_id)),
            _ => {}
        }
        // One holder is enough: once it releases this publisher, the next message to a subscriber
        // still behind holds it again.
        let hold = behind.filter(|_| c.held_by.is_none());
        if hold.is_some() {
            c.held_by = hold;
        }
        if head.qos > 0 {
            self.queue_flush(i);
        }
        if let Some(sub) = hold.and_then(|s| self.conns.get_mut(s)).and_then(Option::as_mut) {
            sub.holding.push(i);
        }
        Ok(())
    }

    /// Encodes `packet` into connection `i`'s output.
    fn reply(&mut self, i: usize, packet: &Packet, version: ProtocolVersion) -> Result<(), End> {
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return Err(End::Normal);
        };
        encode(packet, version, c.out_mut()).map_err(|e| End::Bad(format!("cannot encode reply: {e}")))?;
        self.queue_flush(i);
        Ok(())
    }

    fn queue_flush(&mut self, i: usize) {
        if let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) {
            if !c.queued_flush {
                c.queued_flush = true;
                self.to_flush.push(i);
            }
        }
    }
}
