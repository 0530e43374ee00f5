//! The live link: what one network connection of a client holds while it is attached to its
//! session.
//!
//! A [`Link`] owns the connection's output buffer (deliveries encode into it from any task of
//! the shard; the connection task writes it out in one go), the wake-up of that task, its topic
//! aliases in both directions, its keep alive clock, its back-pressure state and the one way to
//! close it, [`Link::kick`]. It implements the session's [`Outlet`], so the session's QoS flows
//! send through it without knowing about sockets. A link lives exactly as long as one connection
//! is attached; the session outlives it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use bytestring::ByteString;

use super::hold::Pacing;
use super::notify::Notify;
use crate::protocol::{encode, encode_publish, encoded_len, Packet, ProtocolVersion, PublishParts};
use crate::session::{OutPublish, Outlet};

/// What a connection negotiated in CONNECT.
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
    /// 1.5 × the keep alive; `None` when keep alive is off [MQTT-3.1.2-24].
    pub keep_alive: Option<Duration>,
    /// Whether CONNECT set a session expiry of 0 (a DISCONNECT may not raise it [MQTT-3.14.2-2]).
    pub connect_expiry_zero: bool,
}

/// A connection's topic aliases.
#[derive(Debug, Default)]
struct Aliases {
    /// Client to us: alias → topic.
    inbound: HashMap<u16, ByteString>,
    /// Us to client: topic → alias.
    outbound: HashMap<ByteString, u16>,
}

/// Where a connection is in parking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Park {
    Running,
    Asked,
    Parked,
}

/// One attached connection.
#[derive(Debug)]
pub struct Link {
    conn: ConnState,
    /// Bytes encoded for the client, flushed by its connection task.
    out: BytesMut,
    /// Bytes taken from `out` by the connection task and still being written: they count against
    /// the output limit until the write completes.
    writing: usize,
    /// Wakes the connection task to flush `out` or to act on `kick`.
    notify: Notify,
    /// Set to a reason code when the connection must close (shutdown, keep alive, error).
    kick: Option<u8>,
    /// Topic aliases in both directions (5.0 section 3.3.2.3.4); boxed on first use, since most
    /// connections never use one.
    aliases: Option<Box<Aliases>>,
    /// When the connection last sent anything.
    last_rx: Instant,
    /// When we last wrote to the connection.
    last_tx: Instant,
    /// Whether the connection was asked to park, or is parked (see `parked`).
    park: Park,
    /// Back-pressure state, as a subscriber that fell behind and as a publisher held back.
    pacing: Pacing,
}

impl Link {
    /// A link for a connection that negotiated `conn`.
    pub fn new(conn: ConnState) -> Link {
        Link {
            conn,
            out: BytesMut::new(),
            writing: 0,
            notify: Notify::default(),
            kick: None,
            aliases: None,
            last_rx: Instant::now(),
            last_tx: Instant::now(),
            park: Park::Running,
            pacing: Pacing::default(),
        }
    }

    /// What the connection negotiated.
    pub fn conn(&self) -> &ConnState {
        &self.conn
    }

    /// The wake-up of the connection task (a handle to the same flag).
    pub fn notify(&self) -> Notify {
        self.notify.clone()
    }

    /// Asks the connection to close with `reason` (a v5 DISCONNECT reason code): it drops what
    /// it had not written yet and says goodbye. The first kick wins.
    pub fn kick(&mut self, reason: u8) {
        if self.kick.is_none() {
            self.kick = Some(reason);
        }
        self.notify.notify();
    }

    /// Whether the connection has been asked to close.
    pub fn is_kicked(&self) -> bool {
        self.kick.is_some()
    }

    /// The kick, taken by the connection task, with the output it will no longer write dropped.
    pub fn take_kick(&mut self) -> Option<u8> {
        let k = self.kick.take()?;
        self.discard_output();
        Some(k)
    }

    /// Takes what is buffered for the client to write it, leaving `spare` (an emptied buffer) in
    /// its place; the bytes count as unsent until [`Link::wrote`]. `Err(spare)` when there is
    /// nothing to write.
    pub fn take_output(&mut self, spare: BytesMut) -> Result<BytesMut, BytesMut> {
        if self.out.is_empty() {
            return Err(spare);
        }
        let out = std::mem::replace(&mut self.out, spare);
        self.writing = out.len();
        Ok(out)
    }

    /// Takes everything buffered, for a last write before closing.
    pub fn take_all_output(&mut self) -> BytesMut {
        std::mem::take(&mut self.out)
    }

    /// The write of what [`Link::take_output`] returned has completed.
    pub fn wrote(&mut self) {
        self.writing = 0;
        self.last_tx = Instant::now();
    }

    /// Drops the output not yet written (the connection is closing).
    pub fn discard_output(&mut self) {
        self.out = BytesMut::new();
        self.writing = 0;
    }

    /// The connection sent something now.
    pub fn touch(&mut self, now: Instant) {
        self.last_rx = now;
    }

    /// Whether nothing went either way on the connection since `since`.
    pub fn idle_since(&self, since: Instant) -> bool {
        self.last_rx < since && self.last_tx < since
    }

    /// Asks the connection task to park the connection (it has been idle), unless it is
    /// parked already.
    pub fn ask_park(&mut self) {
        if self.park == Park::Running {
            self.park = Park::Asked;
            self.notify.notify();
        }
    }

    /// Lets the connection park as soon as it has nothing to do (a new connection, after
    /// CONNACK and whatever came with CONNECT).
    pub fn park_when_idle(&mut self) {
        if self.park == Park::Running {
            self.park = Park::Asked;
        }
    }

    /// Whether the shard asked the connection to park; the request is taken.
    pub fn take_park_request(&mut self) -> bool {
        let asked = self.park == Park::Asked;
        if asked {
            self.park = Park::Running;
        }
        asked
    }

    /// The connection is parked now, or runs again.
    pub fn set_parked(&mut self, parked: bool) {
        self.park = if parked { Park::Parked } else { Park::Running };
    }

    /// Whether the connection has been silent past its keep alive [MQTT-3.1.2-24].
    pub fn keep_alive_expired(&self, now: Instant) -> bool {
        self.conn.keep_alive.is_some_and(|k| now.saturating_duration_since(self.last_rx) > k)
    }

    /// The topic an inbound topic alias stands for.
    pub fn inbound_alias(&self, alias: u16) -> Option<&ByteString> {
        self.aliases.as_ref()?.inbound.get(&alias)
    }

    /// Records (or re-points) an inbound topic alias.
    pub fn set_inbound_alias(&mut self, alias: u16, topic: ByteString) {
        self.aliases.get_or_insert_default().inbound.insert(alias, topic);
    }

    /// Back-pressure state.
    pub fn pacing(&self) -> &Pacing {
        &self.pacing
    }

    /// Back-pressure state, to change.
    pub fn pacing_mut(&mut self) -> &mut Pacing {
        &mut self.pacing
    }

    /// Wakes the connection task (a hold on it was lifted).
    pub fn wake(&self) {
        self.notify.notify();
    }

    /// Encodes a v5 DISCONNECT with `code` and an explanation for the client (3.x has no server
    /// DISCONNECT: the socket just closes). DISCONNECT may carry a reason string whatever the
    /// client's request problem information [MQTT-3.1.2-29].
    pub fn send_disconnect(&mut self, code: u8, why: Option<String>) {
        encode_disconnect(&mut self.out, self.conn.version, code, why);
    }
}

/// Appends a v5 DISCONNECT with `code` and an optional reason string to `out` (nothing for 3.x).
pub fn encode_disconnect(out: &mut BytesMut, v: ProtocolVersion, code: u8, why: Option<String>) {
    if v.is_v5() {
        let properties = crate::protocol::Properties { reason_string: why.map(ByteString::from), ..Default::default() };
        let p = Packet::Disconnect(crate::protocol::Disconnect { reason: code, properties });
        // A DISCONNECT with a short reason cannot fail to encode; if it ever did, the socket
        // still closes, which is all a 3.x client gets anyway.
        let _ = encode(&p, v, out);
    }
}

impl Outlet for Link {
    fn version(&self) -> ProtocolVersion {
        self.conn.version
    }

    fn send_window(&self) -> u16 {
        self.conn.send_window
    }

    fn unsent(&self) -> usize {
        self.out.len() + self.writing
    }

    fn send(&mut self, packet: &Packet) -> bool {
        let len = encoded_len(packet, self.conn.version);
        if len > self.conn.max_packet_size as usize || encode(packet, self.conn.version, &mut self.out).is_err() {
            return false;
        }
        self.notify.notify();
        true
    }

    fn send_publish(&mut self, p: OutPublish<'_>) -> bool {
        let v5 = self.conn.version.is_v5();
        let msg = p.msg;
        let mut topic: &str = &msg.topic;
        let mut topic_alias = None;
        let mut new_alias = false;
        if v5 && self.conn.alias_max > 0 {
            let out = &mut self.aliases.get_or_insert_default().outbound;
            if let Some(a) = out.get(&msg.topic) {
                topic_alias = Some(*a);
                topic = "";
            } else if out.len() < usize::from(self.conn.alias_max) {
                let a = out.len() as u16 + 1;
                out.insert(msg.topic.clone(), a);
                topic_alias = Some(a);
                new_alias = true;
            }
        }
        let parts = PublishParts {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic,
            packet_id: p.packet_id,
            payload: &msg.payload,
            properties: msg.properties.as_deref(),
            message_expiry: if v5 { msg.remaining_expiry(p.now_ns).unwrap_or(None) } else { None },
            topic_alias,
            subscription_ids: if v5 { p.sub_ids } else { &[] },
        };
        match encode_publish(&parts, self.conn.version, self.conn.max_packet_size, &mut self.out) {
            Ok(_) => {
                self.notify.notify();
                true
            }
            Err(_) => {
                // Too large for the client [MQTT-3.1.2-25]: not sent, and the alias it would have
                // introduced is forgotten so a later message establishes it.
                if let (true, Some(a)) = (new_alias, self.aliases.as_mut()) {
                    a.outbound.remove(&msg.topic);
                }
                false
            }
        }
    }
}
