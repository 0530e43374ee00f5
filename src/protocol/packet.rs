//! The MQTT control packets as typed values, shared by MQTT 3.1, 3.1.1 and 5.0.
//!
//! One type covers every protocol version: fields that exist only in 5.0 (properties, reason codes on
//! acknowledgements) are simply left empty or at their success value for 3.x, and the encoder drops
//! them. Strings are `ByteString` and payloads `Bytes`, so a decoded packet points into the read buffer
//! instead of copying it.

use bytes::Bytes;
use bytestring::ByteString;

use super::properties::Properties;

/// The protocol level negotiated in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1, protocol name `MQTT`, level 4.
    V3_1_1,
    /// MQTT 5.0, protocol name `MQTT`, level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte carried in CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V3_1 => 3,
            ProtocolVersion::V3_1_1 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// Whether this version carries properties and reason codes.
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

/// Quality of service of a message or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// Fire and forget.
    #[default]
    AtMostOnce = 0,
    /// Acknowledged delivery, duplicates possible.
    AtLeastOnce = 1,
    /// Exactly once, four-step handshake.
    ExactlyOnce = 2,
}

impl QoS {
    /// Parses the two QoS bits; 3 is malformed.
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// CONNECT (type 1).
    Connect(Box<Connect>),
    /// CONNACK (type 2).
    ConnAck(ConnAck),
    /// PUBLISH (type 3), boxed: it is the packet that flows most, and moving a boxed one costs a
    /// pointer instead of its several hundred bytes of properties.
    Publish(Box<Publish>),
    /// PUBACK (type 4).
    PubAck(PubResp),
    /// PUBREC (type 5).
    PubRec(PubResp),
    /// PUBREL (type 6).
    PubRel(PubResp),
    /// PUBCOMP (type 7).
    PubComp(PubResp),
    /// SUBSCRIBE (type 8).
    Subscribe(Subscribe),
    /// SUBACK (type 9).
    SubAck(SubAck),
    /// UNSUBSCRIBE (type 10).
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (type 11).
    UnsubAck(UnsubAck),
    /// PINGREQ (type 12).
    PingReq,
    /// PINGRESP (type 13).
    PingResp,
    /// DISCONNECT (type 14).
    Disconnect(Disconnect),
    /// AUTH (type 15, MQTT 5.0 only).
    Auth(Auth),
}

/// CONNECT: the first packet of every connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Connect {
    /// Protocol level from the variable header.
    pub protocol: ProtocolVersion,
    /// Clean session (3.x) or clean start (5.0).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// Client identifier; may be empty.
    pub client_id: ByteString,
    /// Will message, if the will flag was set.
    pub will: Option<LastWill>,
    /// User name, if the flag was set.
    pub username: Option<ByteString>,
    /// Password, if the flag was set.
    pub password: Option<Bytes>,
    /// CONNECT properties (5.0).
    pub properties: Properties,
}

/// The will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq)]
pub struct LastWill {
    /// Topic the will is published to.
    pub topic: ByteString,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// Will properties (5.0): delay interval, expiry, content type, ...
    pub properties: Properties,
}

/// CONNACK.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnAck {
    /// Session present flag.
    pub session_present: bool,
    /// 5.0 reason code, or the 3.x return code (0-5).
    pub code: u8,
    /// CONNACK properties (5.0).
    pub properties: Properties,
}

/// PUBLISH.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// DUP flag.
    pub dup: bool,
    /// QoS of this transmission.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name; may be empty in 5.0 when a topic alias is present.
    pub topic: ByteString,
    /// Packet identifier; 0 for QoS 0.
    pub packet_id: u16,
    /// Application payload.
    pub payload: Bytes,
    /// PUBLISH properties (5.0).
    pub properties: Properties,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share this shape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PubResp {
    /// Packet identifier being acknowledged.
    pub packet_id: u16,
    /// 5.0 reason code; 0 for success (always 0 in 3.x).
    pub reason: u8,
    /// Properties (5.0): reason string, user properties.
    pub properties: Properties,
}

/// Subscription options of one topic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// 5.0 no local: do not send the subscriber's own publishes back.
    pub no_local: bool,
    /// 5.0 retain as published.
    pub retain_as_published: bool,
    /// 5.0 retain handling: 0 send, 1 send if new subscription, 2 do not send.
    pub retain_handling: u8,
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    /// Packet identifier (non-zero).
    pub packet_id: u16,
    /// Topic filters with their options; at least one.
    pub filters: Vec<(ByteString, SubOptions)>,
    /// Properties (5.0): subscription identifier, user properties.
    pub properties: Properties,
}

/// SUBACK.
#[derive(Debug, Clone, PartialEq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: u16,
    /// One reason/return code per filter (granted QoS, or 0x80+ failure).
    pub reasons: Vec<u8>,
    /// Properties (5.0).
    pub properties: Properties,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq)]
pub struct Unsubscribe {
    /// Packet identifier (non-zero).
    pub packet_id: u16,
    /// Topic filters; at least one.
    pub filters: Vec<ByteString>,
    /// Properties (5.0).
    pub properties: Properties,
}

/// UNSUBACK.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub packet_id: u16,
    /// One reason code per filter (5.0 only; empty and not encoded in 3.x).
    pub reasons: Vec<u8>,
    /// Properties (5.0).
    pub properties: Properties,
}

/// DISCONNECT.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Disconnect {
    /// 5.0 reason code; 0 normal disconnection.
    pub reason: u8,
    /// Properties (5.0): session expiry, reason string, server reference.
    pub properties: Properties,
}

/// AUTH (5.0 enhanced authentication).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Auth {
    /// Reason code: 0x00 success, 0x18 continue, 0x19 re-authenticate.
    pub reason: u8,
    /// Properties: authentication method and data.
    pub properties: Properties,
}
