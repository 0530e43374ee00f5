//! The connection loop of an attached client, for any transport.
//!
//! One loop per connection: flush what deliveries encoded into the link's output buffer in a
//! single write, then wait for input or a wake-up (a delivery, a takeover, the shard's keep alive
//! sweep, shutdown), and handle every complete packet that arrived. When it ends, the link comes
//! off the session and the session's lifecycle (will, expiry) takes over.

use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use bytestring::ByteString;
use ratatosk_io::{Received, Transport};

use super::client::ClientRef;
use super::closing::{linger, write_bounded};
use super::handlers::{self, Flow};
use super::lifecycle;
use super::link::encode_disconnect;
use super::notify::Notify;
use super::shard::Shard;
use super::stats::ShardCounters;
use crate::protocol::{self, reason, ProtocolVersion};
use crate::tenant::Identity;

/// Read sizes adapt between these: an idle connection holds only a small buffer while it waits,
/// a busy one reads big batches.
const READ_MIN: usize = 512;
pub const READ_MAX: usize = 64 * 1024;

/// What the read loop needs once the session is attached.
pub struct Live {
    /// The home shard.
    pub shard: Rc<Shard>,
    /// The client.
    pub client: ClientRef,
    /// Wakes this connection's task.
    pub notify: Notify,
    /// What packet handlers need.
    pub ctx: handlers::Ctx,
    /// The connection's generation.
    pub gen: u64,
    /// Protocol version.
    pub v: ProtocolVersion,
    /// Client id, for logs.
    pub client_id: ByteString,
    /// Largest packet accepted from the client.
    pub max_packet_size: u32,
}

impl Live {
    /// What the loop of generation `gen` of `client` needs, for a client admitted as `identity`.
    pub fn new(shard: Rc<Shard>, client: ClientRef, gen: u64, identity: Identity, v: ProtocolVersion, notify: Notify, connect_expiry_zero: bool) -> Live {
        let client_id = client.borrow().session().client_id().clone();
        let max_packet_size = shard.config.limits.max_packet_size;
        let ctx = handlers::Ctx {
            shard: shard.clone(),
            client: client.clone(),
            identity,
            gen,
            connect_expiry_zero,
            now: Instant::now(),
            now_ns: crate::session::wall_ns(),
            arrived_ns: ratatosk_io::realtime_ns(),
        };
        Live { shard, client, notify, ctx, gen, v, client_id, max_packet_size }
    }
}

/// The connection's loop: flush, wait, handle packets; then detach from the session, or park.
pub async fn run<T: Transport>(live: Live, mut stream: T, mut rbuf: BytesMut) {
    let Live { shard, client, notify, mut ctx, gen, v, client_id, max_packet_size } = live;
    let mut outcome = Outcome::Lost;
    let mut spare = BytesMut::new();
    let mut chunk = READ_MIN;
    // Packets that arrived together with CONNECT are handled before waiting for more input: a
    // client may send them without waiting for CONNACK.
    let mut unread = !rbuf.is_empty();
    // The last read emptied the socket: the next wait goes straight to the readiness wait (a
    // read that could only fail with EAGAIN would cost a system call per message at low load).
    let mut drained = false;
    'conn: loop {
        // Flush everything gathered since the last write in one go.
        match next_output(&client, gen, spare) {
            Output::Kick { code, taken_over } => {
                outcome = if taken_over { Outcome::TakenOver } else { Outcome::Kicked };
                let mut out = BytesMut::new();
                encode_disconnect(&mut out, v, code, None);
                write_bounded(&mut stream, &out).await;
                break;
            }
            Output::Write(out) => {
                // A client that stops reading blocks this write; a kick (takeover, keep alive,
                // shutdown) must still close it, then without a DISCONNECT, which cannot follow a
                // partly written packet.
                let write = async { Some(stream.write_all(&out).await.is_ok()) };
                let kicked = async {
                    kicked_while_writing(&client, &notify, gen).await;
                    None
                };
                let written = match futures_lite::future::or(write, kicked).await {
                    Some(ok) => ok,
                    None => {
                        outcome = if client.borrow().generation() == gen { Outcome::Kicked } else { Outcome::TakenOver };
                        break;
                    }
                };
                if let Some(l) = client.borrow_mut().link_of(gen) {
                    l.wrote();
                }
                if !written {
                    break;
                }
                shard.release_if_drained(&client);
                spare = out;
                spare.clear();
                continue;
            }
            Output::Idle(buf) => spare = buf,
        }

        // Idle (the shard asked, or the connection is new and has nothing to do after CONNACK):
        // end this task and leave the socket to the watcher; the session stays attached (see
        // `parked`). Output and kicks were handled above, so a pending wake-up has been served.
        if !unread && rbuf.is_empty() && asked_to_park(&client, gen) {
            notify.clear();
            outcome = Outcome::Parked;
            break;
        }

        // Held back for subscribers that fell behind (see `pacing`): read nothing until they let
        // go or the pacing limit passes; output and kicks are still served meanwhile.
        let held = client.borrow().link().and_then(|l| l.pacing().held_until(shard.pace_limit()));
        if let Some(until) = held {
            let now = Instant::now();
            if now < until {
                let _ = glommio::timer::timeout(until - now, async {
                    notify.notified().await;
                    Ok(())
                })
                .await;
                continue;
            }
            let cleared = client.borrow_mut().link_of(gen).map_or(0, |l| l.pacing_mut().clear_holds());
            if cleared > 0 {
                ShardCounters::add(&shard.counters().pacing_timeouts, 1);
            }
        }

        if !unread {
            match wait(&mut stream, &mut rbuf, &notify, chunk, drained).await {
                Event::Read(Ok(Received { len: 0, .. })) | Event::Read(Err(_)) => break,
                Event::Read(Ok(Received { len, stamp_ns })) => {
                    drained = len < chunk;
                    chunk = if len == chunk { (chunk * 2).min(READ_MAX) } else if len < chunk / 4 { (chunk / 2).max(READ_MIN) } else { chunk };
                    ctx.arrived_ns = stamp_ns.unwrap_or_else(ratatosk_io::realtime_ns);
                    if let Some(l) = client.borrow_mut().link_of(gen) {
                        l.touch(Instant::now());
                    }
                }
                Event::Wake => continue,
            }
        }
        // Every complete packet buffered is handled now, without waiting for the next read. A
        // hold placed meanwhile stops the next read, and within this batch only the next QoS 1/2
        // PUBLISH (those are queued for the subscriber, and its queue is bounded): a publisher
        // stopped at every QoS 0 packet would get one through per release while the others got
        // a whole read, and fan-in became unfair.
        unread = false;
        ctx.now = Instant::now();
        ctx.now_ns = crate::session::wall_ns();
        loop {
            if next_is_acknowledged_publish(&rbuf) && client.borrow().link().is_some_and(|l| l.pacing().is_held()) {
                unread = true;
                break;
            }
            match protocol::decode(&mut rbuf, Some(v), max_packet_size) {
                Ok(Some(p)) => {
                    tracing::trace!(client = %client_id, packet = ?p, "received");
                    let work = handlers::dispatch(&mut ctx, p);
                    match handlers::finish(&mut ctx, work).await {
                    // A big batch yields between packets once its time slice is up, so that
                    // other connections (and the shard's control work) wait at most one slice.
                    Flow::Continue => glommio::yield_if_needed().await,
                    Flow::Disconnect { will } => {
                        outcome = if will { Outcome::Lost } else { Outcome::Normal };
                        break 'conn;
                    }
                    Flow::Close(code, why) => {
                        tracing::debug!(client = %client_id, code, why, "closing connection");
                        outcome = Outcome::Error;
                        close_with(&client, gen, &mut stream, code, why.to_owned()).await;
                        break 'conn;
                    }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(client = %client_id, error = %e, "malformed packet");
                    outcome = Outcome::Error;
                    close_with(&client, gen, &mut stream, e.reason_code(), e.to_string()).await;
                    break 'conn;
                }
            }
        }
        // Acknowledgements may have drained this client's queue.
        shard.release_if_drained(&client);
        if rbuf.is_empty() && rbuf.capacity() > 2 * chunk {
            rbuf = BytesMut::new();
        }
        // A client that always has input ready would never let this task return Pending. One
        // read per turn, then the other connections' turn: flooding publishers are served round
        // robin, each a read at a time, so under back-pressure none waits for the others'
        // whole time slices.
        if drained {
            glommio::yield_if_needed().await;
        } else {
            futures_lite::future::yield_now().await;
        }
    }
    let stream = if outcome == Outcome::Parked {
        match stream.detach() {
            Ok(parked) => {
                shard.park(&client, gen, parked, ctx.identity, v);
                return;
            }
            Err(e) => {
                tracing::warn!(client = %client_id, error = %e, "cannot park a connection; closing it");
                outcome = Outcome::Lost;
                None
            }
        }
    } else {
        Some(stream)
    };
    if let Some(mut stream) = stream {
        if matches!(outcome, Outcome::Error | Outcome::Kicked | Outcome::TakenOver) {
            Box::pin(linger(&mut stream)).await;
        }
        let _ = stream.close().await;
    }
    ShardCounters::sub(&shard.counters().clients_connected, 1);
    tracing::debug!(client = %client_id, ?outcome, "client disconnected");
    if outcome != Outcome::TakenOver {
        Box::pin(lifecycle::detach(&shard, &client, gen, outcome == Outcome::Normal)).await;
    }
}

/// What the connection should do with its output next.
enum Output {
    /// Close with this reason code (v5 DISCONNECT); `taken_over` when a newer connection has the
    /// session.
    Kick { code: u8, taken_over: bool },
    /// Write these bytes.
    Write(BytesMut),
    /// Nothing to write; the spare buffer back.
    Idle(BytesMut),
}

/// Takes the link's pending output, or its kick. A kicked connection drops what it had not
/// written yet: a client that is being closed gets its DISCONNECT at once, not after megabytes of
/// backlog. Nothing acknowledged is lost by that: unacknowledged QoS 1/2 messages stay in the
/// session, and the client resends what it did not see acknowledged.
fn next_output(client: &ClientRef, gen: u64, spare: BytesMut) -> Output {
    let mut c = client.borrow_mut();
    let Some(link) = c.link_of(gen) else {
        return Output::Kick { code: reason::SESSION_TAKEN_OVER, taken_over: true };
    };
    if let Some(code) = link.take_kick() {
        return Output::Kick { code, taken_over: false };
    }
    match link.take_output(spare) {
        Ok(out) => Output::Write(out),
        Err(spare) => Output::Idle(spare),
    }
}

/// Whether the next packet in `buf` is a PUBLISH at QoS 1 or 2 (fixed header type 3, QoS bits).
fn next_is_acknowledged_publish(buf: &[u8]) -> bool {
    buf.first().is_some_and(|b| b >> 4 == 3 && (b >> 1) & 3 != 0)
}

/// Whether the shard asked this connection to park, and it may: it holds no publisher back
/// (the hold's time limit needs the task).
fn asked_to_park(client: &ClientRef, gen: u64) -> bool {
    let mut c = client.borrow_mut();
    c.link_of(gen).is_some_and(|l| !l.pacing().is_held() && l.take_park_request())
}

/// Resolves once the connection is kicked or its session taken over; deliveries wake it too, and
/// then it goes on waiting.
async fn kicked_while_writing(client: &ClientRef, notify: &Notify, gen: u64) {
    loop {
        notify.notified().await;
        let mut c = client.borrow_mut();
        match c.link_of(gen) {
            None => return,
            Some(l) if l.is_kicked() => return,
            Some(_) => {}
        }
    }
}

/// Writes what is still buffered for the client and a DISCONNECT saying why it is closed (v5).
async fn close_with<T: Transport>(client: &ClientRef, gen: u64, stream: &mut T, code: u8, why: String) {
    let out = {
        let mut c = client.borrow_mut();
        let Some(l) = c.link_of(gen) else { return };
        l.send_disconnect(code, Some(why));
        l.take_all_output()
    };
    write_bounded(stream, &out).await;
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// DISCONNECT from the client.
    Normal,
    /// Network error, EOF or keep alive expiry.
    Lost,
    /// Closed by us for a protocol violation.
    Error,
    /// A new connection took the session.
    TakenOver,
    /// Closed by us on request (shutdown, administrative).
    Kicked,
    /// Idle: parked without a task, still connected.
    Parked,
}

enum Event {
    /// Bytes read, with the kernel's receive time when it gave one.
    Read(std::io::Result<Received>),
    Wake,
}

/// Waits for input or a wake-up; read bytes are appended to `rbuf`. Unless the socket was
/// `drained` by the last read, what is already there is taken first (with the kernel's receive
/// time).
///
/// The wait reads straight into `rbuf` once the socket is readable: one system call per wake-up.
/// Such a read has no kernel time stamp, so the batch is stamped when it is handled; that is
/// later than its arrival, never earlier, so a message is never taken for older than a
/// subscription it followed. An idle connection does not wait here with its buffer: it parks.
/// Losing the race to a wake-up loses nothing: glommio's reads are readiness-based, so a
/// dropped read consumed nothing.
async fn wait<T: Transport>(stream: &mut T, rbuf: &mut BytesMut, notify: &Notify, chunk: usize, drained: bool) -> Event {
    if !drained {
        if let Some(ev) = read_ready(stream, rbuf, chunk) {
            return ev;
        }
    }
    let start = rbuf.len();
    rbuf.resize(start + chunk, 0);
    let ev = {
        let into = &mut rbuf[start..];
        let read = async { Some(stream.read(into).await) };
        let wake = async {
            notify.notified().await;
            None
        };
        futures_lite::future::or(read, wake).await
    };
    let got = match &ev {
        Some(Ok(n)) => *n,
        _ => 0,
    };
    rbuf.truncate(start + got);
    match ev {
        None => Event::Wake,
        Some(Err(e)) => Event::Read(Err(e)),
        Some(Ok(len)) => Event::Read(Ok(Received { len, stamp_ns: None })),
    }
}

/// Reads what is already available into `rbuf` (up to `chunk` bytes) without waiting; `None`
/// when nothing is.
fn read_ready<T: Transport>(stream: &mut T, rbuf: &mut BytesMut, chunk: usize) -> Option<Event> {
    let start = rbuf.len();
    rbuf.resize(start + chunk, 0);
    let r = stream.try_read(&mut rbuf[start..]);
    let n = match &r {
        Ok(Some(got)) => got.len,
        _ => 0,
    };
    rbuf.truncate(start + n);
    match r {
        Ok(Some(got)) => Some(Event::Read(Ok(got))),
        Ok(None) => None,
        Err(e) => Some(Event::Read(Err(e))),
    }
}
