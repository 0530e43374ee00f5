//! A client connection from accept to close.
//!
//! The accepting shard reads until a whole CONNECT is buffered (or the connect timeout passes),
//! validates it, and hands the socket to the client's home shard when that is another one. On the
//! home shard the connection attaches to its session and runs one loop: flush what deliveries
//! encoded into the session's output buffer in a single write, then wait for input or a wake-up
//! (a delivery, a takeover, the shard's keep alive sweep, shutdown), and handle every complete
//! packet that arrived.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use bytestring::ByteString;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use ratatosk_io::DetachedStream;
use ratatosk_shards::home_shard;

use super::handlers::{self, Flow};
use super::shard::{Handoff, Shard, ShardMsg};
use super::stats::ShardCounters;
use super::{lifecycle, DEFAULT_TENANT};
use crate::protocol::{self, reason, ConnAck, Connect, DecodeError, Disconnect, Packet, ProtocolVersion, Properties};
use crate::session::{ConnState, Session, NEVER_EXPIRES};

/// Read sizes adapt between these: an idle connection holds only a small buffer while it waits,
/// a busy one reads big batches.
const READ_MIN: usize = 512;
const READ_MAX: usize = 64 * 1024;
/// Reads while waiting for CONNECT.
const READ_CHUNK: usize = 1024;

/// Serves a freshly accepted connection.
pub async fn accept(shard: Rc<Shard>, mut stream: TcpStream) {
    let mut buf = BytesMut::with_capacity(1024);
    let limit = Duration::from_secs(shard.config.limits.connect_timeout);
    let max = shard.config.limits.max_packet_size;
    let got = glommio::timer::timeout(limit, async {
        read_whole_packet(&mut stream, &mut buf, max).await.map_err(glommio::GlommioError::IoError)
    })
    .await;
    match got {
        Ok(()) => admit(shard, stream, buf, false).await,
        // Nothing valid within the connect timeout, or the first packet is malformed before it is
        // complete: close without a word [MQTT-3.1.0-1], but answer a v5 client with CONNACK.
        Err(_) => {
            tracing::debug!("connection closed before a valid CONNECT");
            if let Some(code) = connect_reject_code(&buf, max) {
                let _ = write_connack(&mut stream, ProtocolVersion::V5, code).await;
            }
        }
    }
}

/// Serves a connection handed over by another shard, starting from the bytes it already read.
pub async fn adopt(shard: Rc<Shard>, stream: TcpStream, bytes: Vec<u8>) {
    admit(shard, stream, BytesMut::from(&bytes[..]), true).await
}

async fn read_whole_packet(stream: &mut TcpStream, buf: &mut BytesMut, max: u32) -> std::io::Result<()> {
    loop {
        match protocol::check(buf, max) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())),
        }
        let n = read_some(stream, buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

async fn read_some(stream: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    let start = buf.len();
    buf.resize(start + READ_CHUNK, 0);
    let r = stream.read(&mut buf[start..]).await;
    let n = *r.as_ref().unwrap_or(&0);
    buf.truncate(start + n);
    r
}

/// The v5 CONNACK code for a CONNECT that could not be decoded, when the bytes show a v5 client.
fn connect_reject_code(buf: &[u8], max: u32) -> Option<u8> {
    let mut tmp = BytesMut::from(buf);
    match protocol::decode(&mut tmp, None, max) {
        Err(e) if declares_v5(buf) => Some(e.reason_code()),
        _ => None,
    }
}

/// Whether a CONNECT's variable header carries protocol level 5 (looked at without decoding).
fn declares_v5(buf: &[u8]) -> bool {
    // Fixed header: type byte + 1..4 length bytes; then 0x00 0x04 "MQTT" level.
    let mut i = 1;
    while i < buf.len() && i < 5 && buf[i] & 0x80 != 0 {
        i += 1;
    }
    let start = i + 1;
    buf.get(start..start + 7).is_some_and(|h| h == [0, 4, b'M', b'Q', b'T', b'T', 5])
}

async fn write_connack(stream: &mut TcpStream, v: ProtocolVersion, code: u8) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    let p = Packet::ConnAck(ConnAck { session_present: false, code, properties: Properties::default() });
    if protocol::encode(&p, v, &mut out).is_ok() {
        stream.write_all(&out).await?;
        stream.flush().await?;
    }
    Ok(())
}

/// Decodes and validates the CONNECT at the head of `buf`, then serves the client here or hands
/// it to its home shard.
async fn admit(shard: Rc<Shard>, mut stream: TcpStream, mut buf: BytesMut, handed_off: bool) {
    let is_v5 = declares_v5(&buf);
    // A copy of what was read, in case the connection moves to another shard.
    let raw = if shard.n > 1 && !handed_off { Some(buf.to_vec()) } else { None };
    let limits = &shard.config.limits;
    let connect = match protocol::decode(&mut buf, None, limits.max_packet_size) {
        Ok(Some(Packet::Connect(c))) => c,
        Ok(_) => return,
        Err(DecodeError::UnsupportedProtocolVersion { level, .. }) => {
            // [MQTT-3.1.2-2] answer with "unacceptable protocol version" and close.
            let (v, code) = if level == 5 { (ProtocolVersion::V5, reason::UNSUPPORTED_PROTOCOL_VERSION) } else { (ProtocolVersion::V3_1_1, reason::v3::UNACCEPTABLE_PROTOCOL_VERSION) };
            let _ = write_connack(&mut stream, v, code).await;
            return;
        }
        Err(e) => {
            tracing::debug!(error = %e, "malformed CONNECT");
            if is_v5 {
                let _ = write_connack(&mut stream, ProtocolVersion::V5, e.reason_code()).await;
            }
            return;
        }
    };
    let v = connect.protocol;
    if let Err(code) = validate_connect(&connect, limits) {
        let _ = write_connack(&mut stream, v, code).await;
        return;
    }
    if shard.stats.total(|c| &c.clients_connected) >= limits.max_connections as u64 {
        refuse_for_capacity(&shard, &mut stream, v, "limits.max_connections").await;
        return;
    }
    let tenant = ByteString::from_static(DEFAULT_TENANT);
    let mut assigned = None;
    let client_id = if connect.client_id.is_empty() {
        let id = assign_client_id(&shard, &tenant);
        assigned = Some(id.clone());
        id
    } else {
        connect.client_id.clone()
    };
    let home = home_shard(&tenant, &client_id, shard.n);
    if home != shard.id {
        match (DetachedStream::detach(stream), raw) {
            (Ok(detached), Some(bytes)) => {
                shard.send_to(home, ShardMsg::Handoff(Box::new(Handoff { stream: detached, bytes }))).await;
            }
            (Err(e), _) => tracing::warn!(error = %e, "could not hand a connection to its home shard"),
            (Ok(_), None) => tracing::error!("connection handed off twice; closing it"),
        }
        return;
    }
    drop(raw);
    let creates_session = connect.clean_start || !shard.sessions.borrow().contains_key(&(tenant.clone(), client_id.clone()));
    if creates_session && shard.stats.total(|c| &c.sessions) >= limits.max_sessions as u64 {
        refuse_for_capacity(&shard, &mut stream, v, "limits.max_sessions").await;
        return;
    }
    // Boxed so the accept-time state (the copy of CONNECT, the decoder's locals) is not carried
    // for the connection's whole life.
    Box::pin(serve(shard, stream, connect, buf, tenant, client_id, assigned)).await
}

/// Refuses a client because the broker is at a capacity limit: v5 CONNACK 0x97 (quota
/// exceeded), 3.x 0x03 (server unavailable). Counted, and logged once per shard so a storm of
/// refusals does not flood the log.
async fn refuse_for_capacity(shard: &Shard, stream: &mut TcpStream, v: ProtocolVersion, limit: &'static str) {
    let c = &shard.counters().connections_refused;
    if c.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        tracing::warn!(limit, "refusing new clients: the broker is at its limit (raise it in the config)");
    }
    ShardCounters::add(c, 1);
    let code = if v.is_v5() { reason::QUOTA_EXCEEDED } else { reason::v3::SERVER_UNAVAILABLE };
    let _ = write_connack(stream, v, code).await;
}

/// Checks CONNECT rules that need the broker's settings; `Err` carries the CONNACK code.
fn validate_connect(c: &Connect, limits: &crate::config::Limits) -> Result<(), u8> {
    let v5 = c.protocol.is_v5();
    if c.client_id.is_empty() && !v5 && (!c.clean_start || c.protocol == ProtocolVersion::V3_1) {
        // [MQTT-3.1.3-8] a zero-byte client id needs clean session (3.1 requires an id).
        return Err(reason::v3::IDENTIFIER_REJECTED);
    }
    if !v5 && c.keep_alive > limits.max_keepalive {
        // 3.x cannot be told a lower keep alive, so it is refused (as Mosquitto does).
        return Err(reason::v3::IDENTIFIER_REJECTED);
    }
    if v5 && c.properties.authentication_method.is_some() {
        // No enhanced authentication method is offered [MQTT-4.12.0-1].
        return Err(reason::BAD_AUTHENTICATION_METHOD);
    }
    if c.will.as_ref().is_some_and(|w| !limits.topic_fits(&w.topic)) {
        // The will would be published (and maybe retained) with a topic beyond the limits; 3.x
        // has no code for it, "not authorized" is the closest.
        return Err(if v5 { reason::TOPIC_NAME_INVALID } else { reason::v3::NOT_AUTHORIZED });
    }
    Ok(())
}

/// A client id for a client that sent none, chosen so that its home is this shard (a v5 client may
/// reconnect with it and must find its session here).
fn assign_client_id(shard: &Shard, tenant: &str) -> ByteString {
    let base = shard.new_uid();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mut i: u32 = 0;
    loop {
        let id = format!("ratatosk-{:x}-{:x}-{:x}", shard.id, base, nanos.wrapping_add(i));
        if home_shard(tenant, &id, shard.n) == shard.id {
            return ByteString::from(id);
        }
        i = i.wrapping_add(1);
    }
}

async fn serve(
    shard: Rc<Shard>,
    stream: TcpStream,
    connect: Box<Connect>,
    rbuf: BytesMut,
    tenant: ByteString,
    client_id: ByteString,
    assigned: Option<ByteString>,
) {
    // Set-up runs in its own boxed future and is freed before the read loop starts, so an idle
    // connection carries only the loop's state.
    let live = Box::pin(attach(shard, connect, tenant, client_id, assigned)).await;
    run(live, stream, rbuf).await
}

/// What the read loop needs once the session is attached.
struct Live {
    shard: Rc<Shard>,
    session: crate::broker::shard::SessionRef,
    notify: super::notify::Notify,
    ctx: handlers::Ctx,
    gen: u64,
    v: ProtocolVersion,
    client_id: ByteString,
    max_packet_size: u32,
}

/// Attaches the connection to its session (new, resumed or taken over) and queues CONNACK.
async fn attach(
    shard: Rc<Shard>,
    mut connect: Box<Connect>,
    tenant: ByteString,
    client_id: ByteString,
    assigned: Option<ByteString>,
) -> Live {
    let limits = shard.config.limits.clone();
    let v = connect.protocol;
    let v5 = v.is_v5();
    let props = &connect.properties;
    let expiry = if v5 {
        props.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        NEVER_EXPIRES
    };
    let mut keep_alive = connect.keep_alive;
    let mut server_keep_alive = None;
    if v5 && (keep_alive > limits.max_keepalive || keep_alive == 0) {
        keep_alive = limits.max_keepalive;
        server_keep_alive = Some(keep_alive);
    }
    let conn = ConnState {
        version: v,
        max_packet_size: if v5 { props.maximum_packet_size.unwrap_or(u32::MAX) } else { u32::MAX },
        send_window: if v5 { props.receive_maximum.unwrap_or(u16::MAX).min(limits.max_inflight) } else { limits.max_inflight },
        alias_max: if v5 { props.topic_alias_maximum.unwrap_or(0) } else { 0 },
        problem_info: !v5 || props.request_problem_information != Some(0),
    };

    let key = (tenant.clone(), client_id.clone());
    let existing = shard.sessions.borrow().get(&key).cloned();
    let (session, present) = match existing {
        Some(s) if !connect.clean_start => (s, true),
        other => {
            if let Some(old) = other {
                // [MQTT-3.1.2-4] clean start discards the old session (closing its connection).
                Box::pin(lifecycle::take_over(&shard, &old)).await;
                Box::pin(lifecycle::end_session(&shard, &old)).await;
            }
            let s = Rc::new(std::cell::RefCell::new(Session::new(shard.new_uid(), tenant.clone(), client_id.clone(), shard.ledger.clone())));
            shard.sessions.borrow_mut().insert(key.clone(), s.clone());
            ShardCounters::add(&shard.counters().sessions, 1);
            (s, false)
        }
    };
    if present {
        Box::pin(lifecycle::take_over(&shard, &session)).await;
    }
    let connect_expiry_zero = expiry == 0;
    let (gen, notify) = {
        let mut s = session.borrow_mut();
        let gen = s.attach(conn);
        s.expiry_interval = expiry;
        s.will = connect.will.take().map(Box::new);
        if !present {
            s.inflight.clear();
            s.incoming_qos2.clear();
        }
        let mut ack_props = Properties::default();
        if v5 {
            ack_props.assigned_client_identifier = assigned;
            ack_props.server_keep_alive = server_keep_alive;
            ack_props.receive_maximum = Some(limits.receive_maximum);
            ack_props.maximum_packet_size = Some(limits.max_packet_size);
            ack_props.topic_alias_maximum = Some(limits.topic_alias_maximum);
        }
        // [MQTT-3.2.2-1..3] session present only when a session was resumed.
        s.send(&Packet::ConnAck(ConnAck { session_present: present, code: 0, properties: ack_props }));
        if present {
            s.resend(Instant::now());
        }
        (gen, s.notify.clone())
    };
    // Everything needed from CONNECT has been taken; don't carry it for the connection's life.
    drop(connect);
    let counters = &shard.counters().clients_connected;
    ShardCounters::add(counters, 1);
    tracing::debug!(client = %client_id, shard = shard.id, "client connected");

    {
        // [MQTT-3.1.2-24] silence beyond 1.5 × keep alive closes the connection; the shard's
        // keep alive sweep checks `last_rx`, so the read loop carries no timer.
        let mut s = session.borrow_mut();
        s.keep_alive = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
        s.last_rx = Instant::now();
    }
    let ctx = handlers::Ctx { shard: shard.clone(), session: session.clone(), gen, connect_expiry_zero, now: Instant::now(), arrived_ns: ratatosk_io::realtime_ns() };
    Live { max_packet_size: limits.max_packet_size, shard, session, notify, ctx, gen, v, client_id }
}

/// The connection's loop: flush, wait, handle packets; then detach from the session.
async fn run(live: Live, mut stream: TcpStream, mut rbuf: BytesMut) {
    let Live { shard, session, notify, mut ctx, gen, v, client_id, max_packet_size } = live;
    let counters = &shard.counters().clients_connected;
    let mut outcome = Outcome::Lost;
    let mut spare = BytesMut::new();
    let mut chunk = READ_MIN;
    // Packets that arrived together with CONNECT are handled before waiting for more input: a
    // client may send them without waiting for CONNACK.
    let mut unread = !rbuf.is_empty();
    'conn: loop {
        // Flush everything gathered since the last write in one go.
        match next_output(&session, gen, spare) {
            Output::Kick { code, taken_over } => {
                outcome = if taken_over { Outcome::TakenOver } else { Outcome::Kicked };
                let mut out = BytesMut::new();
                let _ = send_disconnect(&mut out, v, code);
                write_bounded(&mut stream, &out).await;
                break;
            }
            Output::Write(out) => {
                // A client that stops reading blocks this write; a kick (takeover, keep alive,
                // shutdown) must still close it, then without a DISCONNECT, which cannot follow a
                // partly written packet.
                let write = async { Some(stream.write_all(&out).await.is_ok()) };
                let kicked = async {
                    kicked_while_writing(&session, &notify, gen).await;
                    None
                };
                let written = match futures_lite::future::or(write, kicked).await {
                    Some(ok) => ok,
                    None => {
                        outcome = if session.borrow().generation == gen { Outcome::Kicked } else { Outcome::TakenOver };
                        break;
                    }
                };
                {
                    let mut s = session.borrow_mut();
                    if s.generation == gen {
                        s.wrote();
                    }
                }
                if !written {
                    break;
                }
                shard.release_if_caught_up(&session);
                spare = out;
                spare.clear();
                continue;
            }
            Output::Idle(buf) => spare = buf,
        }

        // Held back for subscribers that fell behind (see `pacing`): read nothing until they let
        // go or the pacing limit passes; output and kicks are still served meanwhile.
        let held = session.borrow().pacing.held_until(shard.pace_limit());
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
            if session.borrow_mut().pacing.clear_holds() > 0 {
                ShardCounters::add(&shard.counters().pacing_timeouts, 1);
            }
        }

        if !unread {
            match wait(&mut stream, &mut rbuf, &notify, chunk).await {
                Event::Read(Ok((0, _))) | Event::Read(Err(_)) => break,
                Event::Read(Ok((n, stamp))) => {
                    chunk = if n == chunk { (chunk * 2).min(READ_MAX) } else if n < chunk / 4 { (chunk / 2).max(READ_MIN) } else { chunk };
                    ctx.arrived_ns = stamp.unwrap_or_else(ratatosk_io::realtime_ns);
                    let mut s = session.borrow_mut();
                    if s.generation == gen {
                        s.last_rx = Instant::now();
                    }
                }
                Event::Wake => continue,
            }
        }
        // Every complete packet buffered is handled now, without waiting for the next read,
        // unless the client is held back meanwhile: the rest then waits in `rbuf`.
        unread = false;
        ctx.now = Instant::now();
        loop {
            if session.borrow().pacing.is_held() {
                unread = !rbuf.is_empty();
                break;
            }
            match protocol::decode(&mut rbuf, Some(v), max_packet_size) {
                Ok(Some(p)) => match {
                    tracing::trace!(client = %client_id, packet = ?p, "received");
                    let work = handlers::dispatch(&mut ctx, p);
                    handlers::finish(&mut ctx, work).await
                } {
                    // A big batch yields between packets once its time slice is up, so that
                    // other connections (and the shard's control work) wait at most one slice.
                    Flow::Continue => glommio::yield_if_needed().await,
                    Flow::Disconnect { will } => {
                        outcome = if will { Outcome::Lost } else { Outcome::Normal };
                        break 'conn;
                    }
                    Flow::Close(code, why) => {
                        tracing::debug!(client = %client_id, code, why, "closing connection");
                        close_with(&session, gen, v, code, Some(why.to_owned()));
                        outcome = Outcome::Error;
                        flush(&session, gen, &mut stream).await;
                        break 'conn;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(client = %client_id, error = %e, "malformed packet");
                    close_with(&session, gen, v, e.reason_code(), Some(e.to_string()));
                    outcome = Outcome::Error;
                    flush(&session, gen, &mut stream).await;
                    break 'conn;
                }
            }
        }
        // Acknowledgements may have drained this client's queue.
        shard.release_if_caught_up(&session);
        if rbuf.is_empty() && rbuf.capacity() > 2 * chunk {
            rbuf = BytesMut::new();
        }
        // A client that always has input ready would never let this task return Pending;
        // give the other connections (and the accept loop) their turn.
        glommio::yield_if_needed().await;
    }
    if matches!(outcome, Outcome::Error | Outcome::Kicked | Outcome::TakenOver) {
        Box::pin(linger(&mut stream)).await;
    }
    let _ = stream.close().await;
    ShardCounters::sub(counters, 1);
    tracing::debug!(client = %client_id, ?outcome, "client disconnected");
    if outcome != Outcome::TakenOver {
        Box::pin(lifecycle::detach(&shard, &session, gen, outcome == Outcome::Normal)).await;
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

/// Takes the session's pending output, or its kick. A kicked connection drops what it had not
/// written yet: a client that is being closed gets its DISCONNECT at once, not after megabytes of
/// backlog. Nothing acknowledged is lost by that: unacknowledged QoS 1/2 messages stay in the
/// session, and the client resends what it did not see acknowledged.
fn next_output(session: &crate::broker::shard::SessionRef, gen: u64, spare: BytesMut) -> Output {
    let mut s = session.borrow_mut();
    if s.generation != gen {
        return Output::Kick { code: reason::SESSION_TAKEN_OVER, taken_over: true };
    }
    if let Some((g, code)) = s.kick {
        if g == gen {
            s.kick = None;
            s.discard_output();
            return Output::Kick { code, taken_over: false };
        }
    }
    if s.out.is_empty() {
        return Output::Idle(spare);
    }
    Output::Write(s.take_output(spare))
}

/// Resolves once the connection is kicked or its session taken over; deliveries wake it too, and
/// then it goes on waiting.
async fn kicked_while_writing(session: &crate::broker::shard::SessionRef, notify: &super::notify::Notify, gen: u64) {
    loop {
        notify.notified().await;
        let s = session.borrow();
        if s.generation != gen || s.kick.is_some_and(|(g, _)| g == gen) {
            return;
        }
    }
}

/// Longest the last words to a client that is being closed may take to write (its DISCONNECT,
/// the answer to a protocol error): one that does not read must not hold up its close, or a
/// shutdown.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

async fn write_bounded(stream: &mut TcpStream, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let _ = glommio::timer::timeout(CLOSE_WRITE_TIMEOUT, async {
        stream.write_all(bytes).await?;
        stream.flush().await?;
        Ok(())
    })
    .await;
}

/// After closing for an error, a kick or a takeover: stop sending, then read and discard what
/// the client still sends for a moment (a busy client always has some on the way). Closing a socket with unread input makes the kernel reset the connection, and a
/// reset can destroy the DISCONNECT (with its reason code) before the client reads it.
async fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write).await;
    let mut scratch = vec![0u8; 4096];
    let _ = glommio::timer::timeout(Duration::from_secs(1), async {
        // Bounded by the timeout; ends early at EOF or error.
        while let Ok(n) = stream.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
        Ok(())
    })
    .await;
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
}

enum Event {
    /// Bytes read, with the kernel's receive time when it gave one.
    Read(std::io::Result<(usize, Option<u64>)>),
    Wake,
}

/// Waits for input or a wake-up; read bytes are appended to `rbuf`.
///
/// An idle connection holds no read buffer while it waits: the wait is a one-byte read into the
/// future itself, and the buffer is allocated only once data has arrived. Losing the race to a
/// wake-up loses nothing: glommio's reads are readiness-based, so a dropped read consumed nothing.
async fn wait(stream: &mut TcpStream, rbuf: &mut BytesMut, notify: &super::notify::Notify, chunk: usize) -> Event {
    if let Some(ev) = read_ready(stream, rbuf, chunk, 0) {
        return ev;
    }
    if rbuf.is_empty() {
        *rbuf = BytesMut::new();
    }
    let mut first = [0u8; 1];
    let ev = {
        let read = async { Some(stream.read(&mut first).await) };
        let wake = async {
            notify.notified().await;
            None
        };
        futures_lite::future::or(read, wake).await
    };
    match ev {
        None => Event::Wake,
        Some(Err(e)) => Event::Read(Err(e)),
        Some(Ok(0)) => Event::Read(Ok((0, None))),
        Some(Ok(_)) => {
            rbuf.reserve(chunk);
            rbuf.extend_from_slice(&first);
            // The rest of what arrived with that byte, and the kernel's time stamp for it.
            match read_ready(stream, rbuf, chunk.saturating_sub(1).max(1), 1) {
                Some(Event::Read(Ok((n, stamp)))) => Event::Read(Ok((n, stamp))),
                Some(other) => other,
                None => Event::Read(Ok((1, None))),
            }
        }
    }
}

/// Reads what is already available into `rbuf` (up to `chunk` bytes) without waiting; `None`
/// when nothing is. `already` bytes read before are counted into the result.
fn read_ready(stream: &TcpStream, rbuf: &mut BytesMut, chunk: usize, already: usize) -> Option<Event> {
    let start = rbuf.len();
    rbuf.resize(start + chunk, 0);
    let r = ratatosk_io::try_read_stamped(stream, &mut rbuf[start..]);
    let n = match &r {
        Ok(Some((n, _))) => *n,
        _ => 0,
    };
    rbuf.truncate(start + n);
    match r {
        Ok(Some((0, _))) if already > 0 => Some(Event::Read(Ok((already, None)))),
        Ok(Some((n, stamp))) => Some(Event::Read(Ok((already + n, stamp)))),
        Ok(None) => None,
        Err(e) => Some(Event::Read(Err(e))),
    }
}

/// Queues a v5 DISCONNECT with `code` and a reason string saying what was wrong (3.x has no
/// server DISCONNECT: the socket just closes). DISCONNECT may carry a reason string whatever the
/// client's request problem information [MQTT-3.1.2-29].
fn close_with(session: &crate::broker::shard::SessionRef, gen: u64, v: ProtocolVersion, code: u8, why: Option<String>) {
    let mut s = session.borrow_mut();
    if s.generation == gen {
        let _ = send_disconnect_with(&mut s.out, v, code, why);
    }
}

fn send_disconnect(out: &mut BytesMut, v: ProtocolVersion, code: u8) -> Result<(), protocol::EncodeError> {
    send_disconnect_with(out, v, code, None)
}

fn send_disconnect_with(out: &mut BytesMut, v: ProtocolVersion, code: u8, why: Option<String>) -> Result<(), protocol::EncodeError> {
    if v.is_v5() {
        let properties = Properties { reason_string: why.map(ByteString::from), ..Properties::default() };
        protocol::encode(&Packet::Disconnect(Disconnect { reason: code, properties }), v, out)?;
    }
    Ok(())
}

async fn flush(session: &crate::broker::shard::SessionRef, gen: u64, stream: &mut TcpStream) {
    let out = {
        let mut s = session.borrow_mut();
        if s.generation != gen {
            return;
        }
        std::mem::take(&mut s.out)
    };
    write_bounded(stream, &out).await;
}
