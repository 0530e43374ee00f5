//! Streaming, zero-copy decoding of MQTT 3.1, 3.1.1 and 5.0 packets.
//!
//! `check` looks only at the fixed header to learn whether a whole packet is buffered; `decode` then
//! splits that packet off the read buffer, freezes it, and parses it so that every string and payload
//! in the result is a slice of the same allocation. Validation is strict: anything the specification
//! calls malformed or a protocol error is rejected with the matching reason code, and comments cite
//! the normative statement (`[MQTT-x.y.z-n]`; 3.1.1 numbering unless "5.0" is said).

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;

use super::error::DecodeError;
use super::packet::*;
use super::properties::Properties;
use super::topic;

/// Largest value a variable byte integer can hold (4 bytes of 7 bits).
pub(super) const MAX_VBI: u32 = 268_435_455;

// Packet contexts a property may appear in, as bits, for the MQTT 5.0 section 2.2.2.2 table.
pub(super) const CTX_CONNECT: u16 = 1 << 0;
pub(super) const CTX_CONNACK: u16 = 1 << 1;
pub(super) const CTX_PUBLISH: u16 = 1 << 2;
pub(super) const CTX_WILL: u16 = 1 << 3;
pub(super) const CTX_PUBACK: u16 = 1 << 4;
pub(super) const CTX_PUBREC: u16 = 1 << 5;
pub(super) const CTX_PUBREL: u16 = 1 << 6;
pub(super) const CTX_PUBCOMP: u16 = 1 << 7;
pub(super) const CTX_SUBSCRIBE: u16 = 1 << 8;
pub(super) const CTX_SUBACK: u16 = 1 << 9;
pub(super) const CTX_UNSUBSCRIBE: u16 = 1 << 10;
pub(super) const CTX_UNSUBACK: u16 = 1 << 11;
pub(super) const CTX_DISCONNECT: u16 = 1 << 12;
pub(super) const CTX_AUTH: u16 = 1 << 13;

const CTX_ACKS: u16 = CTX_PUBACK | CTX_PUBREC | CTX_PUBREL | CTX_PUBCOMP;
const CTX_ALL: u16 = (1 << 14) - 1;

/// The packet contexts property `id` may appear in; 0 for an undefined identifier.
pub(super) fn property_contexts(id: u8) -> u16 {
    match id {
        // Payload Format Indicator, Message Expiry, Content Type, Response Topic, Correlation Data.
        0x01 | 0x02 | 0x03 | 0x08 | 0x09 => CTX_PUBLISH | CTX_WILL,
        0x0B => CTX_PUBLISH | CTX_SUBSCRIBE,
        0x11 => CTX_CONNECT | CTX_CONNACK | CTX_DISCONNECT,
        0x12 | 0x13 | 0x1A | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => CTX_CONNACK,
        0x15 | 0x16 => CTX_CONNECT | CTX_CONNACK | CTX_AUTH,
        0x17 | 0x19 => CTX_CONNECT,
        0x18 => CTX_WILL,
        0x1C => CTX_CONNACK | CTX_DISCONNECT,
        0x1F => CTX_CONNACK | CTX_ACKS | CTX_SUBACK | CTX_UNSUBACK | CTX_DISCONNECT | CTX_AUTH,
        0x21 | 0x22 | 0x27 => CTX_CONNECT | CTX_CONNACK,
        0x23 => CTX_PUBLISH,
        0x26 => CTX_ALL,
        _ => 0,
    }
}

/// Cheap framing pass over buffered bytes.
///
/// Returns `Ok(None)` while the fixed header or body is still incomplete, `Ok(Some(len))` with the
/// total packet length (fixed header included) once a whole packet is buffered, and an error for a
/// remaining length that does not end within 4 bytes or a packet larger than `max_packet_size`. The
/// size limit is enforced as soon as the remaining length is known, so an oversized packet is refused
/// without waiting for (or buffering) its body.
///
/// # Errors
///
/// `RemainingLengthTooLong` or a non-minimal remaining length (both malformed), `PacketTooLarge`.
pub fn check(buf: &[u8], max_packet_size: u32) -> Result<Option<usize>, DecodeError> {
    Ok(frame(buf, max_packet_size)?.map(|(_, total)| total))
}

/// Like `check`, but also returns the fixed header length.
fn frame(buf: &[u8], max_packet_size: u32) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut remaining: usize = 0;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            // [MQTT-1.5.5-1] (5.0) the minimum number of bytes must be used: a trailing 0x00 after a
            // continuation byte is an over-long encoding.
            if b == 0 && i > 0 {
                return Err(DecodeError::Malformed(
                    "remaining length is not minimally encoded",
                ));
            }
            let header = 2 + i;
            let total = header + remaining;
            if total > max_packet_size as usize {
                return Err(DecodeError::PacketTooLarge {
                    size: total,
                    max: max_packet_size,
                });
            }
            return Ok((buf.len() >= total).then_some((header, total)));
        }
    }
    // [MQTT-1.5.5] (5.0 section 1.5.5) a variable byte integer is at most four bytes.
    Err(DecodeError::RemainingLengthTooLong)
}

/// Decodes one packet from the front of `buf`, removing its bytes.
///
/// `version` is the protocol negotiated on this connection, or `None` before CONNECT: then only a
/// CONNECT is accepted [MQTT-3.1.0-1] and its protocol name/level pick the version. Once a version is
/// known, a CONNECT is a protocol error [MQTT-3.1.0-2]; every other packet type, including those only
/// a server sends, is decoded (the load generator decodes CONNACK, SUBACK, ... with this too).
/// Returns `Ok(None)` and leaves `buf` untouched while the packet is incomplete. The returned packet's
/// strings and payloads share the split-off buffer; nothing is copied.
///
/// # Errors
///
/// Any malformed packet or protocol violation; `DecodeError::reason_code` gives the code to close the
/// connection with. After an error the connection cannot be resynchronised and must be closed.
pub fn decode(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
) -> Result<Option<Packet>, DecodeError> {
    let Some((header_len, total)) = frame(buf, max_packet_size)? else {
        return Ok(None);
    };
    let mut bytes = buf.split_to(total).freeze();
    let first = bytes.first().copied().unwrap_or(0);
    bytes.advance(header_len);
    parse(first >> 4, first & 0x0F, Reader { buf: bytes }, version).map(Some)
}

/// Parses a packet body given the fixed header's type and flags.
fn parse(
    kind: u8,
    flags: u8,
    mut r: Reader,
    version: Option<ProtocolVersion>,
) -> Result<Packet, DecodeError> {
    let v = match version {
        None if kind == 1 => {
            check_flags(flags, 0, None)?;
            return parse_connect(&mut r).map(|c| Packet::Connect(Box::new(c)));
        }
        // [MQTT-3.1.0-1] the first packet from the client must be CONNECT.
        None => return Err(DecodeError::Protocol("first packet is not CONNECT")),
        // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
        Some(_) if kind == 1 => return Err(DecodeError::Protocol("second CONNECT")),
        Some(v) => v,
    };
    let packet = match kind {
        2 => {
            check_flags(flags, 0, Some(v))?;
            Packet::ConnAck(parse_connack(&mut r, v)?)
        }
        3 => Packet::Publish(parse_publish(flags, &mut r, v)?),
        4 => {
            check_flags(flags, 0, Some(v))?;
            Packet::PubAck(parse_pub_resp(&mut r, v, CTX_PUBACK)?)
        }
        5 => {
            check_flags(flags, 0, Some(v))?;
            Packet::PubRec(parse_pub_resp(&mut r, v, CTX_PUBREC)?)
        }
        6 => {
            // [MQTT-3.6.1-1] PUBREL flags are 0b0010.
            check_flags(flags, 0b0010, Some(v))?;
            Packet::PubRel(parse_pub_resp(&mut r, v, CTX_PUBREL)?)
        }
        7 => {
            check_flags(flags, 0, Some(v))?;
            Packet::PubComp(parse_pub_resp(&mut r, v, CTX_PUBCOMP)?)
        }
        8 => {
            // [MQTT-3.8.1-1] SUBSCRIBE flags are 0b0010.
            check_flags(flags, 0b0010, Some(v))?;
            Packet::Subscribe(parse_subscribe(&mut r, v)?)
        }
        9 => {
            check_flags(flags, 0, Some(v))?;
            Packet::SubAck(parse_suback(&mut r, v)?)
        }
        10 => {
            // [MQTT-3.10.1-1] UNSUBSCRIBE flags are 0b0010.
            check_flags(flags, 0b0010, Some(v))?;
            Packet::Unsubscribe(parse_unsubscribe(&mut r, v)?)
        }
        11 => {
            check_flags(flags, 0, Some(v))?;
            Packet::UnsubAck(parse_unsuback(&mut r, v)?)
        }
        12 => {
            check_flags(flags, 0, Some(v))?;
            Packet::PingReq
        }
        13 => {
            check_flags(flags, 0, Some(v))?;
            Packet::PingResp
        }
        14 => {
            check_flags(flags, 0, Some(v))?;
            Packet::Disconnect(parse_disconnect(&mut r, v)?)
        }
        15 if v.is_v5() => {
            check_flags(flags, 0, Some(v))?;
            Packet::Auth(parse_auth(&mut r)?)
        }
        // Type 15 is "reserved, forbidden" before 5.0, and type 0 always is (section 2.2.1).
        _ => return Err(DecodeError::Malformed("reserved packet type")),
    };
    // Whatever the body parser did not consume makes the packet malformed.
    r.finish()?;
    Ok(packet)
}

/// [MQTT-2.2.2-1]/[MQTT-2.2.2-2] fixed header flags other than PUBLISH's must be exactly `expected`.
fn check_flags(flags: u8, expected: u8, v: Option<ProtocolVersion>) -> Result<(), DecodeError> {
    // MQTT 3.1 put DUP (bit 3) on retransmitted PUBREL/SUBSCRIBE/UNSUBSCRIBE; accept it there only.
    let flags = if v == Some(ProtocolVersion::V3_1) && expected == 0b0010 {
        flags & 0b0111
    } else {
        flags
    };
    if flags == expected {
        Ok(())
    } else {
        Err(DecodeError::Malformed(
            "reserved fixed header flags are invalid",
        ))
    }
}

/// Reads the (validated) reason code, or `InvalidReasonCode`.
fn reason(r: &mut Reader, valid: fn(u8) -> bool) -> Result<u8, DecodeError> {
    let code = r.u8("reason code")?;
    if valid(code) {
        Ok(code)
    } else {
        Err(DecodeError::InvalidReasonCode(code))
    }
}

/// Reads a non-zero packet identifier [MQTT-2.3.1-1].
fn packet_id(r: &mut Reader) -> Result<u16, DecodeError> {
    match r.u16("packet identifier")? {
        0 => Err(DecodeError::Protocol("packet identifier is 0")),
        id => Ok(id),
    }
}

fn parse_connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.binary("protocol name")?;
    let level = r.u8("protocol level")?;
    let protocol = match (name.as_ref(), level) {
        (b"MQIsdp", 3) => ProtocolVersion::V3_1,
        (b"MQTT", 4) => ProtocolVersion::V3_1_1,
        (b"MQTT", 5) => ProtocolVersion::V5,
        // [MQTT-3.1.2-2] a known name with a level we do not speak: answer CONNACK 0x01 / 0x84.
        (b"MQIsdp", level) => {
            return Err(DecodeError::UnsupportedProtocolVersion {
                name: "MQIsdp",
                level,
            })
        }
        (b"MQTT", level) => {
            return Err(DecodeError::UnsupportedProtocolVersion {
                name: "MQTT",
                level,
            })
        }
        // [MQTT-3.1.2-1] not MQTT at all: no CONNACK, just close.
        _ => return Err(DecodeError::Protocol("unknown protocol name")),
    };
    let v5 = protocol.is_v5();
    let flags = r.u8("connect flags")?;
    // [MQTT-3.1.2-3] the reserved flag must be 0.
    if flags & 0x01 != 0 {
        return Err(DecodeError::Malformed("reserved CONNECT flag is set"));
    }
    let clean_start = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos_bits = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    // [MQTT-3.1.2-14] (5.0 section 3.1.2.6) will QoS 3 is malformed.
    let will_qos = QoS::from_u8(will_qos_bits).ok_or(DecodeError::Malformed("will QoS is 3"))?;
    if !will_flag {
        // [MQTT-3.1.2-13] (5.0 [MQTT-3.1.2-11]) no will means will QoS 0.
        if will_qos_bits != 0 {
            return Err(DecodeError::Malformed("will QoS set without will flag"));
        }
        // [MQTT-3.1.2-15] (5.0 [MQTT-3.1.2-13]) no will means will retain 0.
        if will_retain {
            return Err(DecodeError::Malformed("will retain set without will flag"));
        }
    }
    // [MQTT-3.1.2-22] before 5.0 a password requires a user name; 5.0 allows it alone.
    if password_flag && !username_flag && !v5 {
        return Err(DecodeError::Malformed(
            "password flag set without user name flag",
        ));
    }
    let keep_alive = r.u16("keep alive")?;
    let properties = if v5 {
        let p = read_properties(r, CTX_CONNECT)?;
        check_auth_method(&p)?;
        p
    } else {
        Properties::default()
    };
    // Client identifiers are not length-checked: 3.1 servers were told to cap them at 23 bytes, but
    // every modern client expects longer ones to be accepted.
    let client_id = r.string("client identifier")?;
    let will = if will_flag {
        let properties = if v5 {
            read_properties(r, CTX_WILL)?
        } else {
            Properties::default()
        };
        let topic = r.string("will topic")?;
        // [MQTT-3.1.3-11]/[MQTT-3.3.2-2] the will is published to it, so it must be a topic name.
        if !topic::is_valid_topic_name(&topic) {
            return Err(DecodeError::InvalidTopicName(
                "will topic is empty or has wildcards",
            ));
        }
        let payload = r.binary("will payload")?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string("user name")?)
    } else {
        None
    };
    let password = if password_flag {
        Some(r.binary("password")?)
    } else {
        None
    };
    r.finish()?;
    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn parse_connack(r: &mut Reader, v: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let flags = r.u8("connect acknowledge flags")?;
    // [MQTT-3.2.2-1] (5.0 section 3.2.2.1) bits 7-1 are reserved and must be 0.
    if flags & 0xFE != 0 {
        return Err(DecodeError::Malformed("reserved CONNACK flags are set"));
    }
    let (code, properties) = if v.is_v5() {
        let code = reason(r, valid_connack_reason)?;
        let p = read_properties(r, CTX_CONNACK)?;
        check_auth_method(&p)?;
        (code, p)
    } else {
        // 3.x return codes 0-5 (3.1.1 section 3.2.2.3); the rest are reserved.
        (reason(r, |c| c <= 5)?, Properties::default())
    };
    Ok(ConnAck {
        session_present: flags & 0x01 != 0,
        code,
        properties,
    })
}

fn parse_publish(flags: u8, r: &mut Reader, v: ProtocolVersion) -> Result<Box<Publish>, DecodeError> {
    let dup = flags & 0x08 != 0;
    let retain = flags & 0x01 != 0;
    // [MQTT-3.3.1-4] both QoS bits set is malformed.
    let qos =
        QoS::from_u8((flags >> 1) & 0x03).ok_or(DecodeError::Malformed("PUBLISH QoS is 3"))?;
    // [MQTT-3.3.1-2] DUP must be 0 for QoS 0.
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::Malformed("DUP set on a QoS 0 PUBLISH"));
    }
    let topic = r.string("topic name")?;
    let packet_id = if qos == QoS::AtMostOnce {
        0
    } else {
        packet_id(r)?
    };
    // Built in its box up front, properties read in place: PUBLISH is the hot packet.
    let mut publish = Box::new(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        payload: Bytes::new(),
        properties: Properties::default(),
    });
    if v.is_v5() {
        read_properties_into(r, CTX_PUBLISH, &mut publish.properties)?;
    }
    let topic = &publish.topic;
    if topic.is_empty() {
        // 5.0 section 3.3.2.1: an empty topic name is only allowed with a Topic Alias.
        if v.is_v5() {
            if publish.properties.topic_alias.is_none() {
                return Err(DecodeError::Protocol(
                    "empty topic name without a topic alias",
                ));
            }
        } else {
            // [MQTT-4.7.3-1] topics are at least one character long.
            return Err(DecodeError::InvalidTopicName("empty topic name"));
        }
    } else if !topic::is_valid_topic_name(topic) {
        // [MQTT-3.3.2-2] no wildcards in a topic name (U+0000 was rejected with the string).
        return Err(DecodeError::InvalidTopicName(
            "topic name contains a wildcard",
        ));
    }
    // Several Subscription Identifiers are allowed in PUBLISH; that a client must not send any
    // [MQTT-3.3.4-6] is a direction rule left to the session layer, since this decoder serves both ends.
    publish.payload = r.rest();
    Ok(publish)
}

fn parse_pub_resp(r: &mut Reader, v: ProtocolVersion, ctx: u16) -> Result<PubResp, DecodeError> {
    let packet_id = packet_id(r)?;
    if !v.is_v5() || r.is_empty() {
        // 5.0 [MQTT-3.4.2-1]: remaining length 2 means reason 0x00 and no properties.
        return Ok(PubResp {
            packet_id,
            reason: 0,
            properties: Properties::default(),
        });
    }
    let valid: fn(u8) -> bool = if ctx == CTX_PUBREL || ctx == CTX_PUBCOMP {
        valid_pubrel_reason
    } else {
        valid_puback_reason
    };
    let reason = reason(r, valid)?;
    // Remaining length below 4: the property length is omitted and 0 (5.0 section 3.4.2.2).
    let properties = if r.is_empty() {
        Properties::default()
    } else {
        read_properties(r, ctx)?
    };
    Ok(PubResp {
        packet_id,
        reason,
        properties,
    })
}

fn parse_subscribe(r: &mut Reader, v: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = if v.is_v5() {
        let p = read_properties(r, CTX_SUBSCRIBE)?;
        // 5.0 section 3.8.2.1.2: at most one Subscription Identifier in SUBSCRIBE.
        if p.subscription_identifiers.len() > 1 {
            return Err(DecodeError::DuplicateProperty(0x0B));
        }
        p
    } else {
        Properties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string("topic filter")?;
        if !topic::is_valid_topic_filter(&filter) {
            return Err(DecodeError::InvalidTopicFilter(
                "SUBSCRIBE topic filter is invalid",
            ));
        }
        let opts = r.u8("subscription options")?;
        // [MQTT-3.8.3-4] (5.0 section 3.8.3.1) QoS 3 is malformed.
        let qos =
            QoS::from_u8(opts & 0x03).ok_or(DecodeError::Malformed("subscription QoS is 3"))?;
        let options = if v.is_v5() {
            // [MQTT-3.8.3-5] (5.0) bits 6 and 7 are reserved.
            if opts & 0xC0 != 0 {
                return Err(DecodeError::Malformed(
                    "reserved subscription option bits are set",
                ));
            }
            let retain_handling = (opts >> 4) & 0x03;
            // 5.0 section 3.8.3.1: retain handling 3 is a protocol error.
            if retain_handling == 3 {
                return Err(DecodeError::Protocol("retain handling is 3"));
            }
            let no_local = opts & 0x04 != 0;
            // 5.0 [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error.
            if no_local && topic::split_shared(&filter).is_some() {
                return Err(DecodeError::Protocol(
                    "no local set on a shared subscription",
                ));
            }
            SubOptions {
                qos,
                no_local,
                retain_as_published: opts & 0x08 != 0,
                retain_handling,
            }
        } else {
            // [MQTT-3.8.3-4] before 5.0 the upper six bits are reserved.
            if opts & 0xFC != 0 {
                return Err(DecodeError::Malformed(
                    "reserved subscription option bits are set",
                ));
            }
            SubOptions {
                qos,
                ..SubOptions::default()
            }
        };
        filters.push((filter, options));
    }
    // [MQTT-3.8.3-3] at least one topic filter.
    if filters.is_empty() {
        return Err(DecodeError::Protocol("SUBSCRIBE has no topic filters"));
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

fn parse_suback(r: &mut Reader, v: ProtocolVersion) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = if v.is_v5() {
        read_properties(r, CTX_SUBACK)?
    } else {
        Properties::default()
    };
    let reasons = r.rest();
    let valid: fn(u8) -> bool = if v.is_v5() {
        valid_suback_reason
    } else {
        // 3.1.1 section 3.9.3: granted QoS 0-2 or 0x80 failure.
        |c: u8| c <= 2 || c == 0x80
    };
    if let Some(&bad) = reasons.iter().find(|&&c| !valid(c)) {
        return Err(DecodeError::InvalidReasonCode(bad));
    }
    // One code per filter, and SUBSCRIBE had at least one.
    if reasons.is_empty() {
        return Err(DecodeError::Protocol("SUBACK has no reason codes"));
    }
    Ok(SubAck {
        packet_id,
        reasons: reasons.to_vec(),
        properties,
    })
}

fn parse_unsubscribe(r: &mut Reader, v: ProtocolVersion) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = if v.is_v5() {
        read_properties(r, CTX_UNSUBSCRIBE)?
    } else {
        Properties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string("topic filter")?;
        if !topic::is_valid_topic_filter(&filter) {
            return Err(DecodeError::InvalidTopicFilter(
                "UNSUBSCRIBE topic filter is invalid",
            ));
        }
        filters.push(filter);
    }
    // [MQTT-3.10.3-2] at least one topic filter.
    if filters.is_empty() {
        return Err(DecodeError::Protocol("UNSUBSCRIBE has no topic filters"));
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

fn parse_unsuback(r: &mut Reader, v: ProtocolVersion) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    if !v.is_v5() {
        // 3.x UNSUBACK is only the packet identifier; `parse` rejects anything after it.
        return Ok(UnsubAck {
            packet_id,
            reasons: Vec::new(),
            properties: Properties::default(),
        });
    }
    let properties = read_properties(r, CTX_UNSUBACK)?;
    let reasons = r.rest();
    if let Some(&bad) = reasons.iter().find(|&&c| !valid_unsuback_reason(c)) {
        return Err(DecodeError::InvalidReasonCode(bad));
    }
    if reasons.is_empty() {
        return Err(DecodeError::Protocol("UNSUBACK has no reason codes"));
    }
    Ok(UnsubAck {
        packet_id,
        reasons: reasons.to_vec(),
        properties,
    })
}

fn parse_disconnect(r: &mut Reader, v: ProtocolVersion) -> Result<Disconnect, DecodeError> {
    // 3.x DISCONNECT has no body; 5.0 omits reason and properties when the remaining length is 0
    // (reason 0x00), and the property length when it is 1 (section 3.14.2).
    if !v.is_v5() || r.is_empty() {
        return Ok(Disconnect::default());
    }
    let reason = reason(r, valid_disconnect_reason)?;
    let properties = if r.is_empty() {
        Properties::default()
    } else {
        read_properties(r, CTX_DISCONNECT)?
    };
    Ok(Disconnect { reason, properties })
}

fn parse_auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    // 5.0 section 3.15.2.1: remaining length 0 means success with no properties.
    if r.is_empty() {
        return Ok(Auth::default());
    }
    let reason = reason(r, |c| matches!(c, 0x00 | 0x18 | 0x19))?;
    let properties = if r.is_empty() {
        Properties::default()
    } else {
        read_properties(r, CTX_AUTH)?
    };
    check_auth_method(&properties)?;
    Ok(Auth { reason, properties })
}

/// 5.0 section 3.1.2.11.10: Authentication Data without an Authentication Method is a protocol error.
fn check_auth_method(p: &Properties) -> Result<(), DecodeError> {
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return Err(DecodeError::Protocol(
            "authentication data without authentication method",
        ));
    }
    Ok(())
}

fn valid_connack_reason(c: u8) -> bool {
    matches!(
        c,
        0x00 | 0x80..=0x89 | 0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..=0x9D | 0x9F
    )
}

fn valid_puback_reason(c: u8) -> bool {
    matches!(
        c,
        0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
    )
}

fn valid_pubrel_reason(c: u8) -> bool {
    matches!(c, 0x00 | 0x92)
}

fn valid_suback_reason(c: u8) -> bool {
    matches!(
        c,
        0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
    )
}

fn valid_unsuback_reason(c: u8) -> bool {
    matches!(c, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91)
}

fn valid_disconnect_reason(c: u8) -> bool {
    matches!(
        c,
        0x00 | 0x04 | 0x80..=0x83 | 0x87 | 0x89 | 0x8B | 0x8D..=0x90 | 0x93..=0xA2
    )
}

/// Stores a single-valued property, rejecting a second occurrence (section 2.2.2.2).
fn set_once<T>(slot: &mut Option<T>, id: u8, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(id));
    }
    *slot = Some(value);
    Ok(())
}

/// Rejects a byte property whose value must be 0 or 1.
fn boolean(id: u8, v: u8) -> Result<u8, DecodeError> {
    if v <= 1 {
        Ok(v)
    } else {
        Err(DecodeError::InvalidPropertyValue(id))
    }
}

/// Rejects a numeric property whose value must not be 0.
fn non_zero<T: Default + PartialEq>(id: u8, v: T) -> Result<T, DecodeError> {
    if v == T::default() {
        Err(DecodeError::InvalidPropertyValue(id))
    } else {
        Ok(v)
    }
}

/// Reads a 5.0 property block (length + properties) allowed in packet context `ctx`.
fn read_properties(r: &mut Reader, ctx: u16) -> Result<Properties, DecodeError> {
    let mut p = Properties::default();
    read_properties_into(r, ctx, &mut p)?;
    Ok(p)
}

/// Reads a property block into `p` in place (the PUBLISH path: no 400-byte `Properties` moves).
fn read_properties_into(r: &mut Reader, ctx: u16, p: &mut Properties) -> Result<(), DecodeError> {
    let len = r.vbi("property length")? as usize;
    let mut pr = r.take(len, "properties")?;
    while !pr.is_empty() {
        let raw_id = pr.vbi("property identifier")?;
        let id = u8::try_from(raw_id).map_err(|_| DecodeError::UnknownProperty(raw_id))?;
        let contexts = property_contexts(id);
        if contexts == 0 {
            return Err(DecodeError::UnknownProperty(raw_id));
        }
        if contexts & ctx == 0 {
            return Err(DecodeError::PropertyNotAllowed(id));
        }
        match id {
            0x01 => {
                // 5.0 section 3.3.2.3.2: 0 unspecified bytes, 1 UTF-8.
                let v = boolean(id, pr.u8("property value")?)?;
                set_once(&mut p.payload_format_indicator, id, v)?;
            }
            0x02 => set_once(
                &mut p.message_expiry_interval,
                id,
                pr.u32("property value")?,
            )?,
            0x03 => set_once(&mut p.content_type, id, pr.string("content type")?)?,
            0x08 => {
                let t = pr.string("response topic")?;
                // [MQTT-3.3.2-14] (5.0) the response topic is a topic name: no wildcards.
                if !topic::is_valid_topic_name(&t) {
                    return Err(DecodeError::InvalidTopicName("response topic is invalid"));
                }
                set_once(&mut p.response_topic, id, t)?;
            }
            0x09 => set_once(&mut p.correlation_data, id, pr.binary("correlation data")?)?,
            0x0B => {
                // 5.0 section 3.3.2.3.8: 1 to 268,435,455; 0 is a protocol error.
                let v = non_zero(id, pr.vbi("subscription identifier")?)?;
                p.subscription_identifiers.push(v);
            }
            0x11 => set_once(
                &mut p.session_expiry_interval,
                id,
                pr.u32("property value")?,
            )?,
            0x12 => set_once(
                &mut p.assigned_client_identifier,
                id,
                pr.string("assigned client identifier")?,
            )?,
            0x13 => set_once(&mut p.server_keep_alive, id, pr.u16("property value")?)?,
            0x15 => set_once(
                &mut p.authentication_method,
                id,
                pr.string("authentication method")?,
            )?,
            0x16 => set_once(
                &mut p.authentication_data,
                id,
                pr.binary("authentication data")?,
            )?,
            0x17 => {
                let v = boolean(id, pr.u8("property value")?)?;
                set_once(&mut p.request_problem_information, id, v)?;
            }
            0x18 => set_once(&mut p.will_delay_interval, id, pr.u32("property value")?)?,
            0x19 => {
                let v = boolean(id, pr.u8("property value")?)?;
                set_once(&mut p.request_response_information, id, v)?;
            }
            0x1A => set_once(
                &mut p.response_information,
                id,
                pr.string("response information")?,
            )?,
            0x1C => set_once(&mut p.server_reference, id, pr.string("server reference")?)?,
            0x1F => set_once(&mut p.reason_string, id, pr.string("reason string")?)?,
            0x21 => {
                // 5.0 section 3.1.2.11.3: Receive Maximum 0 is a protocol error.
                let v = non_zero(id, pr.u16("property value")?)?;
                set_once(&mut p.receive_maximum, id, v)?;
            }
            0x22 => set_once(&mut p.topic_alias_maximum, id, pr.u16("property value")?)?,
            0x23 => {
                // [MQTT-3.3.2-8] (5.0) topic alias 0 is not permitted.
                let v = non_zero(id, pr.u16("property value")?)?;
                set_once(&mut p.topic_alias, id, v)?;
            }
            0x24 => {
                // 5.0 section 3.2.2.3.4: Maximum QoS is 0 or 1.
                let v = boolean(id, pr.u8("property value")?)?;
                set_once(&mut p.maximum_qos, id, v)?;
            }
            0x25 => {
                let v = boolean(id, pr.u8("property value")?)?;
                set_once(&mut p.retain_available, id, v)?;
            }
            0x26 => {
                // User properties may repeat, and order is significant (section 3.1.2.11.8).
                let k = pr.string("user property name")?;
                let v = pr.string("user property value")?;
                p.user_properties.push((k, v));
            }
            0x27 => {
                // 5.0 section 3.1.2.11.4: Maximum Packet Size 0 is a protocol error.
                let v = non_zero(id, pr.u32("property value")?)?;
                set_once(&mut p.maximum_packet_size, id, v)?;
            }
            0x28 => {
                let v = boolean(id, pr.u8("property value")?)?;
                set_once(&mut p.wildcard_subscription_available, id, v)?;
            }
            0x29 => {
                let v = boolean(id, pr.u8("property value")?)?;
                set_once(&mut p.subscription_identifier_available, id, v)?;
            }
            0x2A => {
                let v = boolean(id, pr.u8("property value")?)?;
                set_once(&mut p.shared_subscription_available, id, v)?;
            }
            _ => return Err(DecodeError::UnknownProperty(raw_id)),
        }
    }
    Ok(())
}

/// Bounds-checked cursor over a frozen packet; every read either succeeds or returns `Truncated`,
/// and strings/binary data come out as slices sharing the packet's allocation.
struct Reader {
    /// Bytes not yet consumed.
    buf: Bytes,
}

impl Reader {
    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Errors unless every byte was consumed: leftovers mean the lengths did not add up.
    fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed(
                "bytes left over after the packet body",
            ))
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let arr = self
            .buf
            .get(..N)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(DecodeError::Truncated(what))?;
        self.buf.advance(N);
        Ok(arr)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let [b] = self.array::<1>(what)?;
        Ok(b)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.array::<2>(what).map(u16::from_be_bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.array::<4>(what).map(u32::from_be_bytes)
    }

    /// Variable byte integer (section 1.5.5): at most 4 bytes, minimally encoded.
    fn vbi(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let mut value: u32 = 0;
        for i in 0..4 {
            let b = self.u8(what)?;
            value |= u32::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(DecodeError::Malformed(
                        "variable byte integer is not minimally encoded",
                    ));
                }
                return Ok(value);
            }
        }
        Err(DecodeError::Malformed(
            "variable byte integer exceeds 4 bytes",
        ))
    }

    /// Splits off the next `n` bytes.
    fn take_bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated(what));
        }
        Ok(self.buf.split_to(n))
    }

    /// A sub-reader over the next `n` bytes.
    fn take(&mut self, n: usize, what: &'static str) -> Result<Reader, DecodeError> {
        self.take_bytes(n, what).map(|buf| Reader { buf })
    }

    /// Binary data: 16-bit length then bytes (section 1.5.6).
    fn binary(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u16(what)?;
        self.take_bytes(usize::from(len), what)
    }

    /// UTF-8 encoded string (section 1.5.4): well-formed [MQTT-1.5.4-1], no U+0000 [MQTT-1.5.4-2].
    fn string(&mut self, what: &'static str) -> Result<ByteString, DecodeError> {
        let raw = self.binary(what)?;
        if raw.contains(&0) {
            return Err(DecodeError::Malformed("UTF-8 string contains U+0000"));
        }
        ByteString::try_from(raw).map_err(|_| DecodeError::InvalidUtf8(what))
    }

    /// Everything that is left (a payload).
    fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }
}
