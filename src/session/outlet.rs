//! What a session needs from the live connection of its client, if it has one.
//!
//! The session decides what to send (which message, which packet id, DUP or not); the outlet
//! encodes it for this connection (its protocol version, its maximum packet size, its topic
//! aliases) and buffers it for the socket. Keeping that behind a trait lets the session's QoS
//! flows be driven and tested without a connection, and keeps the session module free of the
//! broker's connection types.

use crate::protocol::{Packet, ProtocolVersion, QoS};

use super::Message;

/// One PUBLISH for the outlet to encode.
#[derive(Debug, Clone, Copy)]
pub struct OutPublish<'a> {
    /// The message.
    pub msg: &'a Message,
    /// QoS of this delivery.
    pub qos: QoS,
    /// Retain flag to send.
    pub retain: bool,
    /// Packet identifier (0 for QoS 0).
    pub packet_id: u16,
    /// Whether this is a redelivery [MQTT-3.3.1-1].
    pub dup: bool,
    /// v5 subscription identifiers.
    pub sub_ids: &'a [u32],
    /// Wall clock (ns since the epoch), to send the remaining message expiry.
    pub now_ns: u64,
}

/// The live connection as a session sees it.
pub trait Outlet {
    /// Protocol version of the connection.
    fn version(&self) -> ProtocolVersion;
    /// How many QoS 1/2 messages may be unacknowledged towards the client (the lower of its v5
    /// receive maximum and the broker's in-flight limit).
    fn send_window(&self) -> u16;
    /// Bytes encoded for the client and not yet written to its socket.
    fn unsent(&self) -> usize;
    /// Encodes a control packet; false when it was not sent (too large for the client).
    fn send(&mut self, packet: &Packet) -> bool;
    /// Encodes a PUBLISH; false when it was not sent (too large for the client [MQTT-3.1.2-25]).
    fn send_publish(&mut self, publish: OutPublish<'_>) -> bool;
}
