//! One MQTT client on a glommio executor: connect, then idle, subscribe-and-receive, or publish.
//!
//! The state machine is hand-rolled on the `ratatosk` codec, with no client library, so that the
//! tool is cheap per message: a publisher encodes a batch of PUBLISH packets into one buffer, stamps
//! the payload headers in place (no per-message allocation) and writes the batch with one call; a
//! receiver decodes everything one read brought in, records all latencies under one histogram lock
//! and answers all acknowledgements with one write.
//!
//! Each connection has a reader task and, for publishers, a driver task; both write through an
//! async lock so acknowledgements (PUBREL, PUBACK) and pings never interleave with a publish batch.
//! Reads time out every `READ_TICK` so that a quiet connection still notices the run ending and
//! sends its keep-alive pings; every wait in here is bounded by that or by the run's phase.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use bytestring::ByteString;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use glommio::net::TcpStream;
use glommio::sync::{RwLock, Semaphore};
use glommio::timer::sleep;
use ratatosk::protocol::{
    decode, encode, Connect, Disconnect, Packet, Properties, PubResp, Publish, QoS, SubOptions, Subscribe,
};

use crate::clock::mono_ns;
use crate::plan::{ClientPlan, Plan, Role};
use crate::seq::SeqTracker;
use crate::stats::{bump, get, Stats, PHASE_DRAINING, PHASE_RUNNING, PHASE_STOP};
use crate::transport::{Base, Transport};

/// How often a blocked read gives up to look at the run's phase and the keep-alive timer.
const READ_TICK: Duration = Duration::from_millis(100);
/// Longest a write may wait for the broker to read.
const WRITE_STALL: Duration = Duration::from_secs(10);
/// Limit for TCP connect and for the CONNACK to arrive.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest packet accepted from the broker.
const MAX_PACKET: u32 = 256 * 1024 * 1024;
/// Bytes asked for per read; large enough that a busy subscriber reads many messages per call.
const READ_CHUNK: usize = 64 * 1024;
/// Target size of one publish batch when sending as fast as possible: big enough to amortize the
/// write call, small enough to stay in cache and not starve the connection's other tasks.
const BATCH_BYTES: usize = 32 * 1024;
/// First pause before a reconnect attempt (`--reconnect`); it doubles after each failed attempt.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between two reconnect attempts.
const RECONNECT_PAUSE_MAX: Duration = Duration::from_secs(1);
/// Connection errors printed before further ones are only counted.
const MAX_ERRORS_SHOWN: u64 = 5;

static ERRORS_SHOWN: AtomicU64 = AtomicU64::new(0);

fn report_error(what: &str, client: &str, e: &dyn std::fmt::Display) {
    let n = ERRORS_SHOWN.fetch_add(1, Ordering::Relaxed);
    if n < MAX_ERRORS_SHOWN {
        eprintln!("ratatosk-bench: {client}: {what}: {e}");
    } else if n == MAX_ERRORS_SHOWN {
        eprintln!("ratatosk-bench: further connection errors are counted but not shown");
    }
}

/// What every client task on one executor shares.
pub struct Ctx {
    /// The run plan.
    pub plan: Arc<Plan>,
    /// Shared counters.
    pub stats: Arc<Stats>,
    /// This executor's index (its histogram slot).
    pub shard: usize,
}

/// Runs client `idx` of the plan to completion: waits for its connect slot, connects (with the
/// planned retries), does its role until the run stops (reconnecting after a lost connection as
/// `--reconnect` allows), and disconnects.
pub async fn run_client(ctx: Rc<Ctx>, idx: usize) {
    let c = &ctx.plan.clients[idx];
    let stats = &ctx.stats;
    if wait_for_slot(&ctx, c).await {
        match connect_with_retries(&ctx.plan, c, stats).await {
            Ok((stream, rbuf)) => {
                bump(&stats.connect_succ, 1);
                run_role(&ctx, c, stream, rbuf).await;
            }
            Err(e) => {
                bump(&stats.connect_fail, 1);
                report_error("connect failed", &c.client_id, &e);
                settle_without_connection(&ctx, c).await;
            }
        }
    } else {
        settle_without_connection(&ctx, c).await;
    }
    bump(&stats.clients_ended, 1);
}

/// Sleeps until the client's connect time; false when the run stopped first.
async fn wait_for_slot(ctx: &Ctx, c: &ClientPlan) -> bool {
    let stats = &ctx.stats;
    let base = if c.after_subscribers {
        loop {
            match stats.phase() {
                PHASE_STOP => return false,
                p if p >= PHASE_RUNNING => break stats.run_start_ns.load(Ordering::Acquire),
                _ => sleep(Duration::from_millis(2)).await,
            }
        }
    } else {
        stats.start_ns.load(Ordering::Acquire)
    };
    let at = base.saturating_add(c.slot.saturating_mul(ctx.plan.connect_interval_ns));
    loop {
        if stats.phase() >= PHASE_DRAINING {
            return false;
        }
        let now = mono_ns();
        if now >= at {
            return true;
        }
        sleep(Duration::from_nanos((at - now).min(100_000_000))).await;
    }
}

/// Settles the bookkeeping of a client that never got to do its role, so the run does not wait for
/// it: a subscriber counts as settled (and its expected messages as lost), a publisher as done.
async fn settle_without_connection(ctx: &Ctx, c: &ClientPlan) {
    match &c.role {
        Role::Sub { sources, .. } => {
            bump(&ctx.stats.sub_fail, 1);
            bump(&ctx.stats.subs_settled, 1);
            wait_for_stop(&ctx.stats).await;
            account_subscriber(ctx, &HashMap::new(), sources.as_deref());
        }
        Role::Pub { .. } => bump(&ctx.stats.pubs_done, 1),
        Role::Conn => {}
    }
}

async fn wait_for_stop(stats: &Stats) {
    while stats.phase() < PHASE_STOP {
        sleep(Duration::from_millis(10)).await;
    }
}

/// After a lost connection: pauses (100 ms, doubling up to 1 s after each failed attempt) and
/// connects again with the same client id, spending the client's remaining `--reconnect` attempts,
/// as long as the run has not reached phase `until`. A success counts as connect_succ and reconnect.
async fn reconnect(ctx: &Ctx, c: &ClientPlan, left: &mut u32, until: u8) -> Option<(Transport, BytesMut)> {
    let stats = &ctx.stats;
    let mut pause = RECONNECT_PAUSE;
    while *left > 0 {
        let wake = mono_ns() + pause.as_nanos() as u64;
        loop {
            if stats.phase() >= until {
                return None;
            }
            let now = mono_ns();
            if now >= wake {
                break;
            }
            sleep(Duration::from_nanos((wake - now).min(10_000_000))).await;
        }
        *left -= 1;
        match handshake(&ctx.plan, c).await {
            Ok(r) => {
                bump(&stats.connect_succ, 1);
                bump(&stats.reconnect, 1);
                return Some(r);
            }
            Err(e) => {
                report_error("reconnect failed", &c.client_id, &e);
                pause = (pause * 2).min(RECONNECT_PAUSE_MAX);
            }
        }
    }
    None
}

async fn connect_with_retries(plan: &Plan, c: &ClientPlan, stats: &Stats) -> io::Result<(Transport, BytesMut)> {
    let mut attempt = 0;
    loop {
        match handshake(plan, c).await {
            Ok(r) => return Ok(r),
            Err(e) if attempt >= plan.retries || stats.phase() >= PHASE_DRAINING => return Err(e),
            Err(_) => {
                attempt += 1;
                sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// TCP connect, TLS and WebSocket handshakes when asked for, CONNECT, and wait for a successful
/// CONNACK; returns the stream and any bytes that arrived after the CONNACK.
async fn handshake(plan: &Plan, c: &ClientPlan) -> io::Result<(Transport, BytesMut)> {
    let deadline = mono_ns() + HANDSHAKE_TIMEOUT.as_nanos() as u64;
    let tcp = match c.local {
        Some(local) => connect_from(local, c.addr).await?,
        None => connect_tcp(c.addr).await?,
    };
    tcp.set_nodelay(true).map_err(gio)?;
    // A broker that has not taken a single byte for this long is stalled: count the connection as
    // lost instead of waiting on it forever.
    tcp.set_write_timeout(Some(WRITE_STALL)).map_err(gio)?;
    let mut stream = if plan.wrap.is_plain() {
        // The socket's read timeout is the read loop's tick (see `transport`).
        tcp.set_read_timeout(Some(READ_TICK)).map_err(gio)?;
        Transport::Base { inner: Base::Tcp(tcp), tick: None }
    } else {
        let wrap = plan.wrap.wrap(tcp, &c.host, c.addr.port(), READ_TICK);
        futures_lite::future::or(wrap, async {
            sleep(HANDSHAKE_TIMEOUT).await;
            Err(io::Error::new(io::ErrorKind::TimedOut, "TLS/WebSocket handshake timed out"))
        })
        .await?
    };
    let mut properties = Properties::default();
    if plan.session_expiry > 0 {
        properties.session_expiry_interval = Some(plan.session_expiry);
    }
    let connect = Packet::Connect(Box::new(Connect {
        protocol: plan.version,
        clean_start: plan.clean,
        keep_alive: plan.keepalive,
        client_id: c.client_id.clone(),
        will: None,
        username: plan.username.clone(),
        password: plan.password.clone(),
        properties,
    }));
    let mut out = BytesMut::with_capacity(128);
    encode(&connect, plan.version, &mut out).map_err(io::Error::other)?;
    stream.write_all(&out).await?;
    stream.flush().await?;
    let mut rbuf = BytesMut::with_capacity(1024);
    let mut tmp = [0u8; 1024];
    loop {
        // Bounded in time even against a broker that trickles bytes but never completes a CONNACK.
        if mono_ns() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no CONNACK within the handshake limit"));
        }
        match decode(&mut rbuf, Some(plan.version), MAX_PACKET) {
            Ok(Some(Packet::ConnAck(ack))) if ack.code == 0 => return Ok((stream, rbuf)),
            Ok(Some(Packet::ConnAck(ack))) => {
                return Err(io::Error::other(format!("broker refused the connection (code 0x{:02X})", ack.code)))
            }
            Ok(Some(other)) => return Err(io::Error::other(format!("expected CONNACK, got {other:?}"))),
            Ok(None) => {}
            Err(e) => return Err(io::Error::other(e)),
        }
        let n = match stream.read(&mut tmp).await {
            Ok(n) => n,
            // The read tick: only give up once the handshake's own limit has passed.
            Err(e) if e.kind() == io::ErrorKind::TimedOut && mono_ns() < deadline => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "broker closed the connection before CONNACK"));
        }
        rbuf.extend_from_slice(&tmp[..n]);
    }
}

async fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    TcpStream::connect_timeout(addr, HANDSHAKE_TIMEOUT).await.map_err(gio)
}

/// Connects from a chosen local address (`--ifaddr`). glommio's connect cannot bind first, so the
/// socket is made with socket2, bound, connected without blocking the executor (polling for
/// completion between short sleeps, bounded by `HANDSHAKE_TIMEOUT`), and then handed to glommio.
async fn connect_from(local: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Port 0: every client on this source address gets its own ephemeral port.
    sock.bind(&SockAddr::from(SocketAddr::new(local, 0)))
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind to --ifaddr {local}: {e}")))?;
    sock.set_nonblocking(true)?;
    match sock.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            let deadline = mono_ns() + HANDSHAKE_TIMEOUT.as_nanos() as u64;
            loop {
                let mut pfd = libc::pollfd { fd: std::os::fd::AsRawFd::as_raw_fd(&sock), events: libc::POLLOUT, revents: 0 };
                // SAFETY: one valid pollfd, zero timeout: poll only looks, it never blocks here.
                let n = unsafe { libc::poll(&mut pfd, 1, 0) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                if n > 0 {
                    break;
                }
                if mono_ns() >= deadline {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "connection timed out"));
                }
                sleep(Duration::from_millis(1)).await;
            }
            if let Some(e) = sock.take_error()? {
                return Err(e);
            }
        }
        Err(e) => return Err(e),
    }
    // glommio drives the socket with io_uring and MSG_DONTWAIT itself; a non-blocking descriptor
    // would make its reads fail with EAGAIN instead of waiting.
    sock.set_nonblocking(false)?;
    // SAFETY: the descriptor is a connected TCP socket that `into_raw_fd` gave up; the stream now
    // owns (and will close) it.
    Ok(unsafe { TcpStream::from_raw_fd(sock.into_raw_fd()) })
}

/// State shared by a connection's reader and driver.
struct Conn {
    writer: RwLock<WriteHalf<Transport>>,
    last_write_ns: Cell<u64>,
    /// Set before we send DISCONNECT: an end of stream after it is expected, not a lost connection.
    closing: Cell<bool>,
    /// Set (and counted as conn_lost) by whichever task first sees the connection fail.
    lost: Cell<bool>,
    /// Unacknowledged QoS 1/2 publishes allowed (`-F`).
    inflight: Semaphore,
    /// Packet identifiers in use, one bit each.
    ids: RefCell<PacketIds>,
}

impl Conn {
    /// Wraps a freshly connected stream; returns the shared state and the read half.
    fn open(ctx: &Ctx, stream: Transport) -> (Rc<Conn>, ReadHalf<Transport>) {
        let (reader, writer) = futures_lite::io::split(stream);
        let inflight = ctx.plan.publish.as_ref().map_or(1, |p| p.inflight);
        let conn = Rc::new(Conn {
            writer: RwLock::new(writer),
            last_write_ns: Cell::new(mono_ns()),
            closing: Cell::new(false),
            lost: Cell::new(false),
            inflight: Semaphore::new(u64::from(inflight)),
            ids: RefCell::new(PacketIds::new()),
        });
        (conn, reader)
    }

    /// Whether the connection is over: we are closing it, or it was lost.
    fn ended(&self) -> bool {
        self.closing.get() || self.lost.get()
    }

    /// Marks the connection lost, unless it already ended: counts conn_lost once and reports why.
    fn lose(&self, stats: &Stats, client: &str, what: &str, e: &dyn std::fmt::Display) {
        if !self.ended() {
            self.lost.set(true);
            report_error(what, client, e);
            bump(&stats.conn_lost, 1);
        }
    }

    async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let mut w = self.writer.write().await.map_err(|e| io::Error::other(e.to_string()))?;
        w.write_all(bytes).await?;
        // A no-op on TCP; TLS and WebSocket buffer until flushed.
        w.flush().await?;
        self.last_write_ns.set(mono_ns());
        Ok(())
    }

    async fn disconnect(&self, plan: &Plan) {
        self.closing.set(true);
        let mut out = BytesMut::with_capacity(4);
        if encode(&Packet::Disconnect(Disconnect::default()), plan.version, &mut out).is_ok() {
            // The connection is being dropped anyway; a failed goodbye changes nothing.
            let _ = self.send(&out).await;
        }
        if let Ok(mut w) = self.writer.write().await {
            let _ = w.close().await;
        }
    }
}

/// Allocator of packet identifiers 1..=65535.
struct PacketIds {
    bits: Vec<u64>,
    next: u16,
}

impl PacketIds {
    fn new() -> PacketIds {
        PacketIds { bits: vec![0; 1024], next: 1 }
    }

    /// A free identifier; the caller holds an inflight permit, and inflight ≤ 65535, so one exists.
    fn alloc(&mut self) -> u16 {
        for _ in 0..=u16::MAX as u32 {
            let id = self.next;
            self.next = if self.next == u16::MAX { 1 } else { self.next + 1 };
            let (w, b) = ((id / 64) as usize, 1u64 << (id % 64));
            if self.bits[w] & b == 0 {
                self.bits[w] |= b;
                return id;
            }
        }
        0
    }

    /// Frees `id`; false when it was not in use (a stray acknowledgement).
    fn release(&mut self, id: u16) -> bool {
        let (w, b) = ((id / 64) as usize, 1u64 << (id % 64));
        let used = self.bits[w] & b != 0;
        self.bits[w] &= !b;
        used
    }
}

/// Does the client's role on a connected stream; after a lost connection, reconnects while
/// `--reconnect` attempts are left and the role still has something to do. A subscriber keeps its
/// receive state across connections, so what it missed meanwhile still counts as lost; a publisher
/// keeps its sequence numbers and does not send what fell due while it was disconnected.
async fn run_role(ctx: &Rc<Ctx>, c: &ClientPlan, stream: Transport, rbuf: BytesMut) {
    let mut left = ctx.plan.reconnects;
    let mut next = Some((stream, rbuf));
    match &c.role {
        Role::Conn => {
            while let Some((stream, rbuf)) = next.take() {
                let (conn, reader) = Conn::open(ctx, stream);
                read_loop(ctx, &conn, c, reader, rbuf, None).await;
                if conn.lost.get() {
                    next = reconnect(ctx, c, &mut left, PHASE_STOP).await;
                }
            }
        }
        Role::Sub { filter, sources } => {
            let mut rx = Receiver::default();
            while let Some((stream, rbuf)) = next.take() {
                let (conn, reader) = Conn::open(ctx, stream);
                match subscribe(ctx, &conn, filter).await {
                    Err(e) => conn.lose(&ctx.stats, &c.client_id, "subscribe failed", &e),
                    Ok(()) => read_loop(ctx, &conn, c, reader, rbuf, Some(&mut rx)).await,
                }
                if conn.lost.get() {
                    next = reconnect(ctx, c, &mut left, PHASE_STOP).await;
                }
            }
            if !rx.settled {
                bump(&ctx.stats.sub_fail, 1);
                bump(&ctx.stats.subs_settled, 1);
            }
            wait_for_stop(&ctx.stats).await;
            account_subscriber(ctx, &rx.trackers, sources.as_deref());
        }
        Role::Pub { topic, id, limit, start_wait_ms } => {
            let mut st = PubState { seq: 0, done: false, start_wait_ms: *start_wait_ms };
            let keep = ctx.plan.publish.as_ref().is_some_and(|p| p.keep_connected);
            while let Some((stream, rbuf)) = next.take() {
                let (conn, reader) = Conn::open(ctx, stream);
                let reader_task = glommio::spawn_local({
                    let ctx = ctx.clone();
                    let conn = conn.clone();
                    let c = c.clone();
                    async move { read_loop(&ctx, &conn, &c, reader, rbuf, None).await }
                });
                publish_loop(ctx, &conn, c, topic, *id, *limit, &mut st).await;
                reader_task.await;
                // Publishing resumes until the run drains; a finished publisher with
                // --keep-connected holds its connection until the run stops.
                if conn.lost.get() && (!st.done || keep) {
                    let until = if st.done { PHASE_STOP } else { PHASE_DRAINING };
                    next = reconnect(ctx, c, &mut left, until).await;
                }
            }
            if !st.done {
                bump(&ctx.stats.pubs_done, 1);
            }
        }
    }
}

/// A publisher's progress, kept across reconnects.
struct PubState {
    /// Messages written so far (the next sequence number).
    seq: u64,
    /// Publishing is over (limit reached, run draining, or failed) and pubs_done was counted.
    done: bool,
    /// Random wait before the first message; zero once waited.
    start_wait_ms: u64,
}

async fn subscribe(ctx: &Ctx, conn: &Conn, filter: &ByteString) -> io::Result<()> {
    let sub = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![(filter.clone(), SubOptions { qos: ctx.plan.sub_qos, ..SubOptions::default() })],
        properties: Properties::default(),
    });
    let mut out = BytesMut::with_capacity(64);
    encode(&sub, ctx.plan.version, &mut out).map_err(io::Error::other)?;
    conn.send(&out).await
}

/// A subscriber's receive-side state: per-publisher sequence trackers and whether its SUBACK came.
#[derive(Default)]
struct Receiver {
    trackers: HashMap<u32, SeqTracker>,
    settled: bool,
}

/// Adds a finished subscriber's loss, duplicate and order counts to the totals. With known sources
/// (exact accounting) a message is lost when a source sent it and it never arrived; otherwise only
/// the gaps below each publisher's highest received sequence number are known.
///
/// Members of a shared group only add their seen-sets to the group's pool; the runner accounts the
/// pool once everyone has ended.
fn account_subscriber(ctx: &Ctx, trackers: &HashMap<u32, SeqTracker>, sources: Option<&[u32]>) {
    let stats = &ctx.stats;
    let mut lost = 0;
    for t in trackers.values() {
        bump(&stats.duplicated, t.duplicates);
        bump(&stats.out_of_order, t.out_of_order);
    }
    if ctx.plan.pooled {
        let mut pool = stats.pool.lock().unwrap_or_else(|p| p.into_inner());
        for (id, t) in trackers {
            // Within-member duplicates were counted above; the pool adds only cross-member ones.
            let overlap = pool.entry(*id).or_default().merge(t);
            bump(&stats.duplicated, overlap);
        }
        return;
    }
    match sources {
        Some(src) => {
            let mut expected = 0;
            for &p in src {
                // `sub --pub-limit` is told what was sent; `pubsub` counted it itself.
                let sent = match &ctx.plan.expect_per_pub {
                    Some(e) => e.get(p as usize).copied().unwrap_or(0),
                    None => stats.sent_per_pub.get(p as usize).map_or(0, get),
                };
                let got = trackers.get(&p).map_or(0, |t| t.distinct);
                expected += sent;
                lost += sent.saturating_sub(got);
            }
            bump(&stats.expected, expected);
        }
        None => lost = trackers.values().map(SeqTracker::gaps).sum(),
    }
    bump(&stats.lost, lost);
}

/// Reads and handles packets until the run stops (subscribers and idle connections) or the driver
/// closes the connection (publishers).
async fn read_loop(
    ctx: &Ctx,
    conn: &Conn,
    c: &ClientPlan,
    mut reader: ReadHalf<Transport>,
    mut rbuf: BytesMut,
    mut rx: Option<&mut Receiver>,
) {
    let plan = &ctx.plan;
    let stats = &ctx.stats;
    let mut tmp = vec![0u8; READ_CHUNK];
    let mut out = BytesMut::with_capacity(1024);
    let keepalive_ns = u64::from(plan.keepalive) * 1_000_000_000;
    let owns_end = !matches!(c.role, Role::Pub { .. });
    loop {
        if let Err(e) = handle_buffered(ctx, conn, &mut rbuf, &mut out, rx.as_deref_mut()) {
            conn.lose(stats, &c.client_id, "bad packet from broker", &e);
            return;
        }
        if !out.is_empty() {
            if let Err(e) = conn.send(&out).await {
                conn.lose(stats, &c.client_id, "connection lost", &e);
                return;
            }
            out.clear();
        }
        if conn.ended() {
            return;
        }
        if owns_end && stats.phase() >= PHASE_STOP {
            conn.disconnect(plan).await;
            return;
        }
        match reader.read(&mut tmp).await {
            Ok(0) => {
                conn.lose(stats, &c.client_id, "connection lost", &"broker closed it");
                return;
            }
            Ok(n) => rbuf.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                // Half the keep alive without sending anything: ping so the broker keeps us.
                if keepalive_ns > 0 && mono_ns().saturating_sub(conn.last_write_ns.get()) > keepalive_ns / 2 {
                    let _ = encode(&Packet::PingReq, plan.version, &mut out);
                }
            }
            Err(e) => {
                conn.lose(stats, &c.client_id, "connection lost", &e);
                return;
            }
        }
    }
}

/// Decodes and handles every whole packet in `rbuf`, appending responses to `out`. Counters are
/// added once per call and latencies recorded under one lock, not per message.
fn handle_buffered(
    ctx: &Ctx,
    conn: &Conn,
    rbuf: &mut BytesMut,
    out: &mut BytesMut,
    mut rx: Option<&mut Receiver>,
) -> Result<(), String> {
    let plan = &ctx.plan;
    let stats = &ctx.stats;
    let version = plan.version;
    let (mut recv, mut fresh, mut acked, mut failed, mut released) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut hist = None;
    let result = loop {
        let packet = match decode(rbuf, Some(version), MAX_PACKET) {
            Ok(Some(p)) => p,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e.to_string()),
        };
        match packet {
            Packet::Publish(p) => {
                recv += 1;
                let stamp = plan.layout.read(&p.payload);
                if let Some(ts) = stamp.ts {
                    let h = hist.get_or_insert_with(|| stats.hist[ctx.shard].lock().unwrap_or_else(|e| e.into_inner()));
                    h.saturating_record(mono_ns().saturating_sub(ts).max(1));
                }
                if let (Some((id, seq)), Some(rx)) = (stamp.seq, rx.as_deref_mut()) {
                    fresh += u64::from(rx.trackers.entry(id).or_default().record(seq));
                }
                let resp = PubResp { packet_id: p.packet_id, ..PubResp::default() };
                let ack = match p.qos {
                    QoS::AtMostOnce => None,
                    QoS::AtLeastOnce => Some(Packet::PubAck(resp)),
                    QoS::ExactlyOnce => Some(Packet::PubRec(resp)),
                };
                if let Some(ack) = ack {
                    encode(&ack, version, out).map_err(|e| e.to_string())?;
                }
            }
            Packet::PubRel(r) => {
                let resp = Packet::PubComp(PubResp { packet_id: r.packet_id, ..PubResp::default() });
                encode(&resp, version, out).map_err(|e| e.to_string())?;
            }
            // A stray acknowledgement (identifier not in use) fails the guard and is ignored below.
            Packet::PubAck(r) | Packet::PubComp(r) if conn.ids.borrow_mut().release(r.packet_id) => {
                released += 1;
                if r.reason < 0x80 {
                    acked += 1;
                } else {
                    failed += 1;
                }
            }
            Packet::PubRec(r) => {
                if r.reason >= 0x80 {
                    if conn.ids.borrow_mut().release(r.packet_id) {
                        released += 1;
                        failed += 1;
                    }
                } else {
                    let rel = Packet::PubRel(PubResp { packet_id: r.packet_id, ..PubResp::default() });
                    encode(&rel, version, out).map_err(|e| e.to_string())?;
                }
            }
            Packet::SubAck(a) => {
                if let Some(rx) = rx.as_deref_mut() {
                    let ok = a.reasons.iter().all(|r| *r < 0x80);
                    if !rx.settled {
                        rx.settled = true;
                        bump(if ok { &stats.sub } else { &stats.sub_fail }, 1);
                        bump(&stats.subs_settled, 1);
                    } else if !ok {
                        // A re-subscription after a reconnect was refused.
                        bump(&stats.sub_fail, 1);
                    }
                }
            }
            Packet::Disconnect(d) => break Err(format!("broker sent DISCONNECT (reason 0x{:02X})", d.reason)),
            // PINGRESP, UNSUBACK, AUTH: nothing to do.
            _ => {}
        }
    };
    drop(hist);
    if recv > 0 {
        bump(&stats.recv, recv);
        bump(&stats.fresh, fresh);
    }
    if released > 0 {
        bump(&stats.pub_succ, acked);
        bump(&stats.pub_fail, failed);
        conn.inflight.signal(released);
    }
    result
}

/// Publishes until the limit, or until the run leaves the running phase; then waits (bounded) for
/// outstanding acknowledgements and disconnects. Returns early, with `st.done` still false, when
/// the connection is lost while publishing, so the caller may reconnect and resume at `st.seq`.
async fn publish_loop(
    ctx: &Ctx,
    conn: &Conn,
    c: &ClientPlan,
    topic: &ByteString,
    id: u32,
    limit: u64,
    st: &mut PubState,
) {
    let plan = &ctx.plan;
    let stats = &ctx.stats;
    let Some(pp) = plan.publish.as_ref() else {
        if !st.done {
            st.done = true;
            bump(&stats.pubs_done, 1);
        }
        return;
    };
    let start_wait_ms = std::mem::take(&mut st.start_wait_ms);
    let wait_until = mono_ns() + start_wait_ms * 1_000_000;
    while mono_ns() < wait_until && stats.phase() < PHASE_DRAINING && !conn.ended() {
        sleep(Duration::from_millis(start_wait_ms.min(100))).await;
    }
    let mut packet = Packet::Publish(Box::new(Publish {
        dup: false,
        qos: pp.qos,
        retain: pp.retain,
        topic: topic.clone(),
        packet_id: 0,
        payload: pp.payload.clone(),
        properties: Properties::default(),
    }));
    let plen = pp.payload.len();
    let per_msg = plen + topic.len() + 8;
    let interval = pp.interval_ns;
    let batch_max = if interval == 0 { (BATCH_BYTES / per_msg).clamp(1, 512) as u64 } else { 512 };
    let mut wbuf = BytesMut::with_capacity(BATCH_BYTES + per_msg);
    let sent_counter = stats.sent_per_pub.get(id as usize);
    let mut seq = st.seq;
    // The schedule starts afresh on every connection: what fell due while disconnected is not sent.
    let mut next = mono_ns();
    let mut failed = false;
    'run: loop {
        if stats.phase() >= PHASE_DRAINING || (limit > 0 && seq >= limit) || conn.ended() {
            break;
        }
        let now = mono_ns();
        let mut due = if interval == 0 {
            batch_max
        } else if now < next {
            sleep(Duration::from_nanos((next - now).min(100_000_000))).await;
            continue;
        } else {
            // Behind schedule (the broker or the socket held us up): send everything that is due
            // now, stamped with the time it was meant to go, so the stall shows up as latency.
            ((now - next) / interval + 1).min(batch_max)
        };
        if limit > 0 {
            due = due.min(limit - seq);
        }
        let mut n = 0;
        while n < due {
            let packet_id = if pp.qos == QoS::AtMostOnce {
                0
            } else {
                if !conn.inflight.try_acquire(1).unwrap_or(false) {
                    if n > 0 {
                        break; // send what is encoded; acknowledgements come back meanwhile
                    }
                    let got = futures_lite::future::or(async { conn.inflight.acquire(1).await.is_ok() }, async {
                        sleep(READ_TICK).await;
                        false
                    })
                    .await;
                    if !got {
                        continue 'run; // look at the phase again
                    }
                }
                conn.ids.borrow_mut().alloc()
            };
            if let Packet::Publish(p) = &mut packet {
                p.packet_id = packet_id;
            }
            if let Err(e) = encode(&packet, plan.version, &mut wbuf) {
                report_error("cannot encode PUBLISH", &c.client_id, &e);
                failed = true;
                break 'run;
            }
            let end = wbuf.len();
            let ts = if interval == 0 { mono_ns() } else { next };
            plan.layout.stamp(&mut wbuf[end - plen..end], ts, id, seq);
            seq += 1;
            n += 1;
            if interval > 0 {
                next += interval;
            }
        }
        if n > 0 {
            if let Err(e) = conn.send(&wbuf).await {
                // The reader will see the same end of stream; `lose` counts it only once.
                conn.lose(stats, &c.client_id, "publish failed", &e);
                // The batch was not (wholly) sent and is not counted: after a reconnect the same
                // sequence numbers go out again (a part that did arrive shows up as duplicates).
                seq -= n;
                break;
            }
            wbuf.clear();
            bump(&stats.publish, n);
            if let Some(s) = sent_counter {
                bump(s, n);
            }
        }
        glommio::yield_if_needed().await;
    }
    st.seq = seq;
    if conn.lost.get() && !st.done {
        return;
    }
    if !failed && pp.qos != QoS::AtMostOnce {
        // Wait for the broker to acknowledge what is in flight, bounded by the drain time.
        let deadline = mono_ns() + plan.drain_ns;
        while conn.inflight.available() < u64::from(pp.inflight) && mono_ns() < deadline && !conn.ended() {
            sleep(Duration::from_millis(1)).await;
        }
    }
    if !st.done {
        st.done = true;
        bump(&stats.pubs_done, 1);
    }
    if pp.keep_connected && !failed {
        while stats.phase() < PHASE_STOP && !conn.ended() {
            sleep(Duration::from_millis(10)).await;
        }
    }
    if !conn.ended() {
        conn.disconnect(plan).await;
    }
}

/// glommio's error as an `io::Error` (its payload is not `Sync`, so keep only the message).
fn gio(e: glommio::GlommioError<()>) -> io::Error {
    io::Error::other(e.to_string())
}
