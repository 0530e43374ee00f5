//! The raw async test client: one packet at a time over a plain tokio socket, with full control of
//! what is sent and every wait bounded.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::connect::Opts;
use super::props::{pid, props_bytes, Prop, Props};
use super::timing::{QUIET, WAIT};
use super::wire::{decode, frame, mqtt_str, split_frame, Msg, Pkt, Ver};

/// How a read ended without a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// No packet within the wait.
    Timeout,
    /// The broker closed the connection (EOF or reset).
    Closed,
}

/// A test MQTT client over a plain tokio socket, one packet at a time, with full control of what
/// is sent. Packets that arrive while a helper waits for something else are kept in order.
pub struct Client {
    pub ver: Ver,
    stream: TcpStream,
    buf: BytesMut,
    next_pid: u16,
    pending: VecDeque<Pkt>,
    aliases: HashMap<u16, String>,
    /// The CONNACK's session present flag.
    pub session_present: bool,
    /// The CONNACK's properties (v5).
    pub connack_props: Props,
    /// Whether `next_msg` acknowledges QoS 1/2 messages itself (default true).
    pub auto_ack: bool,
    closed: bool,
}

impl Client {
    /// Opens a TCP connection without sending anything.
    pub async fn open(port: u16, ver: Ver) -> Client {
        let stream = timeout(WAIT, TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("TCP connect timed out")
            .expect("TCP connect failed");
        Client::open_on(stream, ver)
    }

    /// Connects with a tiny socket receive buffer and asserts CONNACK success: a client that
    /// then stops reading backs up into the broker after a few KiB.
    pub async fn connect_small_rcvbuf(port: u16, opts: Opts) -> Client {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = timeout(WAIT, sock.connect(([127, 0, 0, 1], port).into())).await.expect("TCP connect timed out").expect("TCP connect failed");
        let mut c = Client::open_on(stream, opts.ver);
        c.send_raw(&opts.encode()).await;
        match c.recv(WAIT).await {
            Ok(Pkt::ConnAck { code: 0, .. }) => c,
            other => panic!("CONNACK for {} expected, got {other:?}", opts.client_id),
        }
    }

    fn open_on(stream: TcpStream, ver: Ver) -> Client {
        stream.set_nodelay(true).ok();
        Client {
            ver,
            stream,
            buf: BytesMut::new(),
            next_pid: 1,
            pending: VecDeque::new(),
            aliases: HashMap::new(),
            session_present: false,
            connack_props: Props::default(),
            auto_ack: true,
            closed: false,
        }
    }

    /// Writes `count` QoS 0 PUBLISHes in batches without reading anything back; returns once all
    /// are written (a paced client waits here).
    pub async fn flood_qos0(&mut self, topic: &str, payload: &[u8], count: usize) {
        let one = self.publish_bytes(topic, payload, 0, false, false, 0, &[]);
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 64).collect();
        let mut left = count;
        while left > 0 {
            let n = left.min(64);
            self.send_raw(&batch[..one.len() * n]).await;
            left -= n;
        }
    }

    /// Connects and asserts CONNACK success.
    pub async fn connect(port: u16, opts: Opts) -> Client {
        let (c, code) = Client::try_connect(port, opts.clone()).await;
        assert_eq!(code, Some(0), "CONNACK for {:?} {} refused", opts.ver, opts.client_id);
        c
    }

    /// Connects and returns the CONNACK code (`None` when the broker closed without CONNACK).
    pub async fn try_connect(port: u16, opts: Opts) -> (Client, Option<u8>) {
        let mut c = Client::open(port, opts.ver).await;
        c.send_raw(&opts.encode()).await;
        match c.recv(WAIT).await {
            Ok(Pkt::ConnAck { session_present, code, props }) => {
                c.session_present = session_present;
                c.connack_props = props;
                (c, Some(code))
            }
            Ok(other) => panic!("expected CONNACK, got {other:?}"),
            Err(End::Closed) => (c, None),
            Err(End::Timeout) => panic!("no CONNACK within {WAIT:?}"),
        }
    }

    /// The socket, for tests that drive it themselves.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Writes bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // A write can fail when the broker already closed; reads report that.
        let _ = self.stream.write_all(bytes).await;
    }

    fn pid(&mut self) -> u16 {
        let p = self.next_pid;
        self.next_pid = if self.next_pid == u16::MAX { 1 } else { self.next_pid + 1 };
        p
    }

    /// Next packet from the broker, from the kept ones first.
    pub async fn recv(&mut self, wait: Duration) -> Result<Pkt, End> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(p);
        }
        self.read_packet(wait).await
    }

    async fn read_packet(&mut self, wait: Duration) -> Result<Pkt, End> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match split_frame(&mut self.buf) {
                Ok(Some((first, body))) => {
                    let p = decode(self.ver, first, &body).unwrap_or_else(|e| panic!("bad packet from broker: {e}"));
                    return Ok(p);
                }
                Ok(None) => {}
                Err(e) => panic!("{e}"),
            }
            if self.closed {
                return Err(End::Closed);
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(End::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.closed = true;
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Waits for a packet for which `want` returns true, keeping the others for later.
    pub async fn wait_for(&mut self, what: &str, want: impl Fn(&Pkt) -> bool) -> Pkt {
        let deadline = Instant::now() + WAIT;
        let mut skipped = VecDeque::new();
        // First look at what is already kept.
        while let Some(p) = self.pending.pop_front() {
            if want(&p) {
                skipped.extend(self.pending.drain(..));
                self.pending = skipped;
                return p;
            }
            skipped.push_back(p);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_packet(left).await {
                Ok(p) if want(&p) => {
                    self.pending = skipped;
                    return p;
                }
                Ok(p) => skipped.push_back(p),
                Err(e) => panic!("waiting for {what}: {e:?}; got meanwhile {skipped:?}"),
            }
        }
    }

    /// Sends a v5/3.x PUBLISH and returns its packet id (0 for QoS 0) without waiting for acks.
    pub async fn publish_nowait(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool, props: &[Prop]) -> u16 {
        let pid = if qos > 0 { self.pid() } else { 0 };
        let bytes = self.publish_bytes(topic, payload, qos, retain, false, pid, props);
        self.send_raw(&bytes).await;
        pid
    }

    /// The encoded PUBLISH.
    #[allow(clippy::too_many_arguments)]
    pub fn publish_bytes(&self, topic: &str, payload: &[u8], qos: u8, retain: bool, dup: bool, pid: u16, props: &[Prop]) -> Vec<u8> {
        let mut body = Vec::new();
        mqtt_str(topic.as_bytes(), &mut body);
        if qos > 0 {
            body.extend_from_slice(&pid.to_be_bytes());
        }
        if self.ver.is_v5() {
            props_bytes(props, &mut body);
        }
        body.extend_from_slice(payload);
        frame(0x30 | (qos << 1) | u8::from(retain) | (u8::from(dup) << 3), &body)
    }

    /// Publishes and completes the QoS flow (PUBACK, or PUBREC/PUBREL/PUBCOMP).
    pub async fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) {
        self.publish_with(topic, payload, qos, retain, &[]).await
    }

    /// `publish` with v5 properties.
    pub async fn publish_with(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool, props: &[Prop]) {
        let pid = self.publish_nowait(topic, payload, qos, retain, props).await;
        self.finish_publish(qos, pid).await;
    }

    /// Completes the sender side of a QoS 1/2 flow.
    pub async fn finish_publish(&mut self, qos: u8, pid: u16) {
        match qos {
            0 => {}
            1 => {
                let p = self.wait_for("PUBACK", |p| matches!(p, Pkt::PubAck { pid: x, .. } if *x == pid)).await;
                if let Pkt::PubAck { code, .. } = p {
                    assert!(code < 0x80, "PUBACK with error 0x{code:02x}");
                }
            }
            _ => {
                let p = self.wait_for("PUBREC", |p| matches!(p, Pkt::PubRec { pid: x, .. } if *x == pid)).await;
                if let Pkt::PubRec { code, .. } = p {
                    assert!(code < 0x80, "PUBREC with error 0x{code:02x}");
                }
                self.pubrel(pid).await;
                self.wait_for("PUBCOMP", |p| matches!(p, Pkt::PubComp { pid: x, .. } if *x == pid)).await;
            }
        }
    }

    async fn ack_packet(&mut self, first: u8, pid: u16) {
        let mut body = pid.to_be_bytes().to_vec();
        if self.ver.is_v5() {
            body.push(0);
        }
        let bytes = frame(first, &body);
        self.send_raw(&bytes).await;
    }
    pub async fn puback(&mut self, pid: u16) {
        self.ack_packet(0x40, pid).await
    }
    pub async fn pubrec(&mut self, pid: u16) {
        self.ack_packet(0x50, pid).await
    }
    pub async fn pubrel(&mut self, pid: u16) {
        self.ack_packet(0x62, pid).await
    }
    pub async fn pubcomp(&mut self, pid: u16) {
        self.ack_packet(0x70, pid).await
    }

    /// Subscribes to several filters with option bytes; returns the SUBACK codes.
    pub async fn subscribe(&mut self, filters: &[(&str, u8)], props: &[Prop]) -> Vec<u8> {
        let pid = self.pid();
        let mut body = pid.to_be_bytes().to_vec();
        if self.ver.is_v5() {
            props_bytes(props, &mut body);
        }
        for (f, o) in filters {
            mqtt_str(f.as_bytes(), &mut body);
            body.push(*o);
        }
        self.send_raw(&frame(0x82, &body)).await;
        match self.wait_for("SUBACK", |p| matches!(p, Pkt::SubAck { pid: x, .. } if *x == pid)).await {
            Pkt::SubAck { codes, .. } => codes,
            _ => unreachable!(),
        }
    }

    /// Subscribes to one filter and asserts the granted QoS.
    pub async fn sub(&mut self, filter: &str, qos: u8) {
        let codes = self.subscribe(&[(filter, qos)], &[]).await;
        assert_eq!(codes, vec![qos], "SUBACK for {filter}");
    }

    /// Unsubscribes; returns the UNSUBACK codes (empty for 3.x).
    pub async fn unsubscribe(&mut self, filters: &[&str]) -> Vec<u8> {
        let pid = self.pid();
        let mut body = pid.to_be_bytes().to_vec();
        if self.ver.is_v5() {
            props_bytes(&[], &mut body);
        }
        for f in filters {
            mqtt_str(f.as_bytes(), &mut body);
        }
        self.send_raw(&frame(0xA2, &body)).await;
        match self.wait_for("UNSUBACK", |p| matches!(p, Pkt::UnsubAck { pid: x, .. } if *x == pid)).await {
            Pkt::UnsubAck { codes, .. } => codes,
            _ => unreachable!(),
        }
    }

    /// Next application message within `wait`, acknowledging it when `auto_ack` is on. Other
    /// packets (acks for our own flows) are kept for later. Topic aliases are resolved.
    pub async fn next_msg(&mut self, wait: Duration) -> Option<Msg> {
        let deadline = Instant::now() + wait;
        let mut skipped = VecDeque::new();
        let got = loop {
            let p = match self.pending.iter().position(|p| matches!(p, Pkt::Publish(_) | Pkt::PubRel { .. })) {
                Some(i) => self.pending.remove(i),
                None => None,
            };
            let p = match p {
                Some(p) => Ok(p),
                None => self.read_packet(deadline.saturating_duration_since(Instant::now())).await,
            };
            match p {
                Ok(Pkt::Publish(m)) => break Some(m),
                Ok(Pkt::PubRel { pid, .. }) => {
                    if self.auto_ack {
                        self.pubcomp(pid).await;
                    } else {
                        skipped.push_back(Pkt::PubRel { pid, code: 0 });
                    }
                }
                Ok(other) => skipped.push_back(other),
                Err(End::Timeout) => break None,
                Err(End::Closed) => break None,
            }
        };
        skipped.extend(self.pending.drain(..));
        self.pending = skipped;
        let mut m = got?;
        if let Some(a) = m.props.u16(pid::TOPIC_ALIAS) {
            if m.topic.is_empty() {
                m.topic = self.aliases.get(&a).cloned().unwrap_or_else(|| panic!("broker used unknown topic alias {a}"));
            } else {
                self.aliases.insert(a, m.topic.clone());
            }
        }
        if self.auto_ack {
            match m.qos {
                1 => self.puback(m.pid).await,
                2 => self.pubrec(m.pid).await,
                _ => {}
            }
        }
        Some(m)
    }

    /// The next message, or panic after `WAIT`.
    pub async fn expect_msg(&mut self) -> Msg {
        match self.next_msg(WAIT).await {
            Some(m) => m,
            None => panic!("{:?} client: no message within {WAIT:?} (closed: {})", self.ver, self.closed),
        }
    }

    /// Asserts no message arrives within `wait`.
    pub async fn expect_no_msg(&mut self, wait: Duration) {
        if let Some(m) = self.next_msg(wait).await {
            panic!("unexpected message {m:?}");
        }
        assert!(!self.closed, "the broker closed the connection while the test expected it to stay quiet and open");
    }

    /// Collects messages until none arrives for `QUIET` (at most `max`).
    pub async fn drain_msgs(&mut self, max: usize) -> Vec<Msg> {
        let mut v = Vec::new();
        while v.len() < max {
            match self.next_msg(QUIET).await {
                Some(m) => v.push(m),
                None => break,
            }
        }
        v
    }

    /// Sends DISCONNECT (reason and properties for v5) and closes.
    pub async fn disconnect(mut self) {
        self.disconnect_with(0, &[]).await
    }

    pub async fn disconnect_with(&mut self, code: u8, props: &[Prop]) {
        let bytes = if self.ver.is_v5() {
            let mut body = vec![code];
            props_bytes(props, &mut body);
            frame(0xE0, &body)
        } else {
            vec![0xE0, 0x00]
        };
        self.send_raw(&bytes).await;
        let _ = self.stream.shutdown().await;
        // Let the broker see the DISCONNECT before the socket goes (bounded).
        let _ = self.read_until_closed(Duration::from_secs(2)).await;
    }

    /// Reads (and returns) packets until the broker closes; `Err` with what came if it did not
    /// close within `wait`.
    pub async fn read_until_closed(&mut self, wait: Duration) -> Result<Vec<Pkt>, Vec<Pkt>> {
        let deadline = Instant::now() + wait;
        let mut got: Vec<Pkt> = self.pending.drain(..).collect();
        loop {
            match self.read_packet(deadline.saturating_duration_since(Instant::now())).await {
                Ok(p) => got.push(p),
                Err(End::Closed) => return Ok(got),
                Err(End::Timeout) => return Err(got),
            }
        }
    }

    /// Asserts the broker closes the connection within `WAIT`; returns the packets sent before.
    pub async fn expect_closed(&mut self) -> Vec<Pkt> {
        match self.read_until_closed(WAIT).await {
            Ok(v) => v,
            Err(v) => panic!("broker did not close the connection within {WAIT:?}; got {v:?}"),
        }
    }

    /// Drops the socket without DISCONNECT (an abrupt close: the will applies).
    pub fn drop_abruptly(self) {
        let std = self.stream.into_std().expect("into_std");
        // SO_LINGER 0 turns the close into a reset, like a crashed client.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&std);
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt on a socket we own, with a correctly sized struct.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(std);
    }

    /// Whether the broker has closed the connection (reads pending bytes, bounded by `wait`).
    pub async fn is_closed_within(&mut self, wait: Duration) -> bool {
        self.read_until_closed(wait).await.is_ok()
    }
}

/// The DISCONNECT reason codes among `pkts`.
pub fn disconnect_codes(pkts: &[Pkt]) -> Vec<u8> {
    pkts.iter()
        .filter_map(|p| match p {
            Pkt::Disconnect { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}
