//! Errors of the codec.
//!
//! A `DecodeError` means the connection cannot continue: the peer sent something that is not a valid
//! MQTT packet for the negotiated version. Each error knows the MQTT 5.0 reason code the server should
//! put in its DISCONNECT (or CONNACK, before the session exists), so callers never have to map
//! errors themselves. Messages are `&'static str` so that reporting an error never allocates.

use super::packet::ProtocolVersion;
use super::reason;

/// Why a byte stream could not be decoded into a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The remaining length's variable byte integer did not end within 4 bytes [MQTT-1.5.5].
    #[error("remaining length exceeds 4 bytes")]
    RemainingLengthTooLong,
    /// The whole packet (fixed header included) is larger than the allowed maximum.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// Total size announced by the fixed header.
        size: usize,
        /// The limit in force.
        max: u32,
    },
    /// The packet body ended before a field that must be present.
    #[error("malformed packet: body ends before the {0}")]
    Truncated(&'static str),
    /// A UTF-8 encoded string field is not valid UTF-8 [MQTT-1.5.4-1].
    #[error("malformed packet: {0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// The packet cannot be parsed according to the specification.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet parsed but violates a rule of the protocol.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// CONNECT named a known protocol but a level this server does not speak.
    #[error("unsupported protocol version: {name} level {level}")]
    UnsupportedProtocolVersion {
        /// Protocol name from CONNECT (`MQTT` or `MQIsdp`).
        name: &'static str,
        /// Protocol level byte from CONNECT.
        level: u8,
    },
    /// A property identifier that MQTT 5.0 does not define (its length cannot be known).
    #[error("malformed packet: unknown property identifier 0x{0:02X}")]
    UnknownProperty(u32),
    /// A property that is not allowed in this packet type (MQTT 5.0 section 2.2.2.2).
    #[error("protocol error: property 0x{0:02X} is not allowed in this packet")]
    PropertyNotAllowed(u8),
    /// A single-valued property appeared more than once.
    #[error("protocol error: property 0x{0:02X} appears more than once")]
    DuplicateProperty(u8),
    /// A property carries a value the specification forbids (e.g. Receive Maximum 0).
    #[error("protocol error: property 0x{0:02X} has an invalid value")]
    InvalidPropertyValue(u8),
    /// A reason code that is not defined for this packet type.
    #[error("protocol error: reason code 0x{0:02X} is not valid in this packet")]
    InvalidReasonCode(u8),
    /// A PUBLISH (or will) topic name is empty where not allowed or contains wildcards.
    #[error("invalid topic name: {0}")]
    InvalidTopicName(&'static str),
    /// A SUBSCRIBE/UNSUBSCRIBE topic filter is not a valid filter.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(&'static str),
}

impl DecodeError {
    /// The MQTT 5.0 reason code the connection should be closed with.
    pub fn reason_code(&self) -> u8 {
        match self {
            DecodeError::RemainingLengthTooLong
            | DecodeError::Truncated(_)
            | DecodeError::InvalidUtf8(_)
            | DecodeError::Malformed(_)
            | DecodeError::UnknownProperty(_) => reason::MALFORMED_PACKET,
            DecodeError::PacketTooLarge { .. } => reason::PACKET_TOO_LARGE,
            DecodeError::Protocol(_)
            | DecodeError::PropertyNotAllowed(_)
            | DecodeError::DuplicateProperty(_)
            | DecodeError::InvalidPropertyValue(_)
            | DecodeError::InvalidReasonCode(_) => reason::PROTOCOL_ERROR,
            DecodeError::UnsupportedProtocolVersion { .. } => reason::UNSUPPORTED_PROTOCOL_VERSION,
            DecodeError::InvalidTopicName(_) => reason::TOPIC_NAME_INVALID,
            DecodeError::InvalidTopicFilter(_) => reason::TOPIC_FILTER_INVALID,
        }
    }

    /// For an unsupported protocol version: the version whose CONNACK format to answer in and the
    /// code to send (3.x: return code 0x01 [MQTT-3.1.2-2]; 5.0 and later levels: reason 0x84).
    /// `None` for every other error, which gets no CONNACK.
    pub fn unsupported_version_connack(&self) -> Option<(ProtocolVersion, u8)> {
        match self {
            DecodeError::UnsupportedProtocolVersion { level, .. } if *level >= 5 => {
                Some((ProtocolVersion::V5, reason::UNSUPPORTED_PROTOCOL_VERSION))
            }
            DecodeError::UnsupportedProtocolVersion { .. } => Some((
                ProtocolVersion::V3_1_1,
                reason::v3::UNACCEPTABLE_PROTOCOL_VERSION,
            )),
            _ => None,
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The remaining length would exceed the 4-byte variable byte integer maximum.
    #[error("remaining length {0} exceeds the maximum of 268,435,455 bytes")]
    PacketTooLarge(usize),
    /// A UTF-8 string or binary field is longer than its 16-bit length prefix allows.
    #[error("{0} is longer than 65,535 bytes")]
    FieldTooLong(&'static str),
    /// A field holds a value that cannot be put on the wire (e.g. packet identifier 0 with QoS 1).
    #[error("invalid value: {0}")]
    InvalidValue(&'static str),
    /// The packet type does not exist in the requested protocol version (AUTH before 5.0).
    #[error("{0} does not exist in this protocol version")]
    UnsupportedInVersion(&'static str),
}
