//! The per-client session: everything the broker keeps about one client id within a tenant.
//!
//! A session lives on its home shard only and is reached through `Rc<RefCell<Session>>` by the
//! tasks of that shard, never from another thread. It outlives its connections when the client
//! asked for a persistent session: subscriptions, unacknowledged outgoing messages (in flight),
//! messages waiting for a free in-flight slot or for the client to come back (queued), and incoming
//! QoS 2 packet ids not yet released.

mod ledger;
mod outbound;
mod pacing;
mod queue;

use std::collections::{HashMap, HashSet};

use bytes::BytesMut;
use bytestring::ByteString;

use crate::broker::notify::Notify;
use crate::protocol::{encode, encoded_len, LastWill, Packet, ProtocolVersion, SubOptions};

pub use outbound::{Delivery, OutState};
pub use ledger::{DropReason, Ledger};
pub use pacing::Pacing;
pub use queue::{Inflight, QueuedMessage};

/// A subscription as the session remembers it (the filter string is the map key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Options given in SUBSCRIBE.
    pub options: SubOptions,
    /// v5 subscription identifier, if one was given.
    pub id: Option<u32>,
}

/// Session expiry meaning "never" (5.0 section 3.1.2.11.2) (0xFFFFFFFF in v5; 3.x persistent sessions).
pub const NEVER_EXPIRES: u32 = u32::MAX;

/// What the current network connection negotiated; reset on every CONNECT.
#[derive(Debug, Clone)]
pub struct ConnState {
    /// Protocol version of this connection.
    pub version: ProtocolVersion,
    /// Largest packet the client accepts (v5 maximum packet size), `u32::MAX` if unlimited.
    pub max_packet_size: u32,
    /// How many QoS 1/2 messages may be unacknowledged towards the client.
    pub send_window: u16,
    /// Topic aliases the client accepts from us (v5 topic alias maximum).
    pub alias_max: u16,
    /// Whether reason strings and user properties may be sent on errors (v5 request problem info).
    pub problem_info: bool,
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    /// Unique on this shard; distinguishes a new session from an old one with the same client id.
    pub uid: u64,
    /// Tenant namespace.
    pub tenant: ByteString,
    /// Client identifier.
    pub client_id: ByteString,
    /// Connection generation; bumps on every CONNECT so a stale connection task knows it lost.
    pub generation: u64,
    /// Whether a network connection is attached.
    pub connected: bool,
    /// Negotiated per-connection state.
    pub conn: ConnState,
    /// Bytes encoded for the client, flushed by its connection task.
    pub out: BytesMut,
    /// Bytes taken from `out` by the connection task and still being written: they count against
    /// the output limit until the write completes.
    writing: usize,
    /// Back-pressure state, as a subscriber that fell behind and as a publisher held back.
    pub pacing: Pacing,
    /// Wakes the connection task to flush `out` or to act on `kick`.
    pub notify: Notify,
    /// Set to a reason code when the connection must close (takeover, shutdown, error).
    pub kick: Option<(u64, u8)>,
    /// Filter string (including any `$share/group/` prefix) → subscription.
    pub subscriptions: HashMap<ByteString, Subscription>,
    /// Outgoing QoS 1/2 flow state.
    pub inflight: Inflight,
    /// Incoming QoS 2 packet ids received and acknowledged with PUBREC, awaiting PUBREL.
    pub incoming_qos2: HashSet<u16>,
    /// Session expiry interval in seconds after disconnect; `NEVER_EXPIRES` for never.
    pub expiry_interval: u32,
    /// Will of the current connection (boxed: most sessions have none).
    pub will: Option<Box<LastWill>>,
    /// Inbound topic aliases of the current connection.
    pub in_aliases: HashMap<u16, ByteString>,
    /// Outbound topic aliases of the current connection.
    pub out_aliases: HashMap<ByteString, u16>,
    /// Messages dropped for this session (queue full, buffer full, too large), for metrics.
    pub dropped: u64,
    /// 1.5 × the keep alive of the current connection; `None` when keep alive is off.
    pub keep_alive: Option<std::time::Duration>,
    /// When the current connection last sent anything.
    pub last_rx: std::time::Instant,
}

impl Session {
    /// A fresh, disconnected session whose queue charges the shard's `ledger`.
    pub fn new(uid: u64, tenant: ByteString, client_id: ByteString, ledger: std::rc::Rc<Ledger>) -> Session {
        Session {
            uid,
            tenant,
            client_id,
            generation: 0,
            connected: false,
            conn: ConnState {
                version: ProtocolVersion::V3_1_1,
                max_packet_size: u32::MAX,
                send_window: 1,
                alias_max: 0,
                problem_info: true,
            },
            out: BytesMut::new(),
            writing: 0,
            pacing: Pacing::default(),
            notify: Notify::default(),
            kick: None,
            subscriptions: HashMap::new(),
            inflight: Inflight::new(ledger),
            incoming_qos2: HashSet::new(),
            expiry_interval: 0,
            will: None,
            in_aliases: HashMap::new(),
            out_aliases: HashMap::new(),
            dropped: 0,
            keep_alive: None,
            last_rx: std::time::Instant::now(),
        }
    }

    /// Attaches a new connection: kicks any previous one and resets per-connection state.
    /// Returns the new generation.
    pub fn attach(&mut self, conn: ConnState) -> u64 {
        if self.connected {
            self.kick = Some((self.generation, crate::protocol::reason::SESSION_TAKEN_OVER));
            self.notify.notify();
        }
        self.generation += 1;
        self.connected = true;
        self.conn = conn;
        self.out = BytesMut::new();
        self.writing = 0;
        self.notify = Notify::default();
        self.in_aliases.clear();
        self.out_aliases.clear();
        self.generation
    }

    /// Encodes a control packet for the client. A packet larger than the client's maximum packet
    /// size is not sent [MQTT-3.1.2-24]; returns whether it was queued.
    pub fn send(&mut self, packet: &Packet) -> bool {
        if !self.connected {
            return false;
        }
        let len = encoded_len(packet, self.conn.version);
        if len > self.conn.max_packet_size as usize || encode(packet, self.conn.version, &mut self.out).is_err() {
            self.drop_message(DropReason::TooLarge);
            return false;
        }
        self.notify.notify();
        true
    }

    /// Takes what is buffered for the client to write it, leaving `spare` (an emptied buffer) in
    /// its place; the bytes count as unsent until [`Session::wrote`].
    pub fn take_output(&mut self, spare: BytesMut) -> BytesMut {
        let out = std::mem::replace(&mut self.out, spare);
        self.writing = out.len();
        out
    }

    /// The write of what [`Session::take_output`] returned has completed.
    pub fn wrote(&mut self) {
        self.writing = 0;
    }

    /// Bytes encoded for the client and not yet written to its socket.
    pub fn unsent(&self) -> usize {
        self.out.len() + self.writing
    }

    /// Drops the connection's output state (it closed or is closing).
    pub fn discard_output(&mut self) {
        self.out = BytesMut::new();
        self.writing = 0;
    }

    /// Whether the connection has been silent past its keep alive [MQTT-3.1.2-24].
    pub fn keep_alive_expired(&self, now: std::time::Instant) -> bool {
        self.connected && self.keep_alive.is_some_and(|k| now.saturating_duration_since(self.last_rx) > k)
    }

    /// Counts a message (or packet) that could not be kept or sent.
    pub fn drop_message(&mut self, reason: DropReason) {
        self.dropped += 1;
        self.inflight.ledger().count(reason);
    }

    /// Whether this session keeps state after its connection closes.
    pub fn is_persistent(&self) -> bool {
        self.expiry_interval > 0
    }
}
