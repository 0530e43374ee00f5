//! The few bytes of the wire format the relay reads itself: packet boundaries, the head of a
//! PUBLISH, the packet identifier of an acknowledgement, and the fixed four-byte replies.
//!
//! Everything on the message path is read here without building packet values, so that relaying a
//! PUBLISH costs a bounds-checked look at its topic and nothing more; the rare control packets
//! (CONNECT, SUBSCRIBE, UNSUBSCRIBE) go through the `ratatosk` codec instead.

use ratatosk::protocol::{check, topic};

/// Largest packet the relay accepts, as ratatosk's default `limits.max_packet_size`: anything a
/// benchmark sends fits, and a garbage length cannot make it buffer gigabytes.
pub const MAX_PACKET: u32 = 16 * 1024 * 1024;

/// Where one whole packet lies at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Length of the fixed header (type byte and remaining length).
    pub header: usize,
    /// Length of the whole packet.
    pub total: usize,
}

/// The first whole packet in `buf`; `None` while it is incomplete.
///
/// # Errors
///
/// A malformed remaining length or a packet larger than [`MAX_PACKET`].
pub fn split(buf: &[u8]) -> Result<Option<Frame>, String> {
    let Some(total) = check(buf, MAX_PACKET).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    // `check` has seen a complete remaining length, so its last byte (no continuation bit) is there.
    let vbi = buf.get(1..).and_then(|b| b.iter().position(|b| b & 0x80 == 0)).ok_or("bad remaining length")?;
    Ok(Some(Frame { header: 2 + vbi, total }))
}

/// What the relay needs of a PUBLISH to route and acknowledge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishHead<'a> {
    /// QoS of this transmission (0, 1 or 2).
    pub qos: u8,
    /// Topic name.
    pub topic: &'a str,
    /// Packet identifier; 0 for QoS 0.
    pub packet_id: u16,
}

/// Reads the head of the PUBLISH `packet` (fixed header `header` bytes long).
///
/// # Errors
///
/// QoS 3, DUP on QoS 0, a topic that is empty (the relay grants no topic aliases), not UTF-8 or holds
/// a wildcard, packet identifier 0 at QoS > 0, or (5.0) a property length that runs past the packet.
pub fn publish_head(packet: &[u8], header: usize, v5: bool) -> Result<PublishHead<'_>, &'static str> {
    let flags = packet.first().copied().unwrap_or(0) & 0x0F;
    let qos = (flags >> 1) & 0x03;
    if qos == 3 {
        return Err("PUBLISH with QoS 3");
    }
    if qos == 0 && flags & 0x08 != 0 {
        return Err("PUBLISH with DUP at QoS 0");
    }
    let body = packet.get(header..).ok_or("truncated PUBLISH")?;
    let len = usize::from(u16_at(body, 0).ok_or("truncated PUBLISH topic")?);
    let name = body.get(2..2 + len).ok_or("truncated PUBLISH topic")?;
    let topic = std::str::from_utf8(name).map_err(|_| "PUBLISH topic is not UTF-8")?;
    if !topic::is_valid_topic_name(topic) {
        return Err("PUBLISH topic is empty or holds a wildcard");
    }
    let mut at = 2 + len;
    let mut packet_id = 0;
    if qos > 0 {
        packet_id = u16_at(body, at).ok_or("truncated PUBLISH packet identifier")?;
        if packet_id == 0 {
            return Err("PUBLISH packet identifier 0");
        }
        at += 2;
    }
    if v5 {
        let (props, n) = vbi_at(body, at).ok_or("bad PUBLISH property length")?;
        if at + n + props > body.len() {
            return Err("PUBLISH properties run past the packet");
        }
    }
    Ok(PublishHead { qos, topic, packet_id })
}

/// The packet identifier of a PUBACK, PUBREC, PUBREL or PUBCOMP, whose fixed-header flags must be
/// `flags` (0b0010 for PUBREL, 0 for the others).
///
/// # Errors
///
/// Wrong flags or a body shorter than a packet identifier.
pub fn ack_id(packet: &[u8], header: usize, flags: u8) -> Result<u16, &'static str> {
    if packet.first().copied().unwrap_or(0) & 0x0F != flags {
        return Err("acknowledgement with wrong fixed-header flags");
    }
    packet.get(header..).and_then(|b| u16_at(b, 0)).ok_or("truncated acknowledgement")
}

/// PUBACK (type 4) to a QoS 1 publisher. Identifier only: 5.0 reads a missing reason as success.
pub fn puback(id: u16) -> [u8; 4] {
    ack(0x40, id)
}

/// PUBREC (type 5) to a QoS 2 publisher.
pub fn pubrec(id: u16) -> [u8; 4] {
    ack(0x50, id)
}

/// PUBREL (type 6, flags 0b0010) to a QoS 2 subscriber that sent PUBREC.
pub fn pubrel(id: u16) -> [u8; 4] {
    ack(0x62, id)
}

/// PUBCOMP (type 7) to a QoS 2 publisher that sent PUBREL.
pub fn pubcomp(id: u16) -> [u8; 4] {
    ack(0x70, id)
}

/// PINGRESP.
pub const PINGRESP: [u8; 2] = [0xD0, 0];

fn ack(first: u8, id: u16) -> [u8; 4] {
    let [hi, lo] = id.to_be_bytes();
    [first, 2, hi, lo]
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

/// A variable byte integer at `at`: its value and length in bytes.
fn vbi_at(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut v = 0usize;
    for i in 0..4 {
        let byte = *b.get(at + i)?;
        v |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A QoS 1 PUBLISH to `a/b`, identifier 7, payload `hi`; with an empty property block for 5.0.
    fn publish(v5: bool) -> Vec<u8> {
        let mut body = vec![0, 3, b'a', b'/', b'b', 0, 7];
        if v5 {
            body.push(0);
        }
        body.extend_from_slice(b"hi");
        let mut p = vec![0x32, body.len() as u8];
        p.extend(body);
        p
    }

    #[test]
    fn split_waits_for_the_whole_packet_and_measures_the_header() {
        let p = publish(false);
        assert_eq!(split(&p[..4]).unwrap(), None);
        assert_eq!(split(&p).unwrap(), Some(Frame { header: 2, total: p.len() }));
        let mut long = vec![0x30, 0x80, 0x01];
        long.resize(3 + 128, 0);
        assert_eq!(split(&long).unwrap(), Some(Frame { header: 3, total: 131 }));
        assert!(split(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
    }

    #[test]
    fn publish_head_reads_qos_topic_and_identifier_of_both_versions() {
        for v5 in [false, true] {
            let p = publish(v5);
            let head = publish_head(&p, 2, v5).unwrap();
            assert_eq!(head, PublishHead { qos: 1, topic: "a/b", packet_id: 7 });
        }
    }

    #[test]
    fn malformed_publishes_are_refused_mqtt_3_3_1_4_and_3_3_2_2() {
        let mut p = publish(false);
        p[0] = 0x36; // QoS 3 [MQTT-3.3.1-4]
        assert!(publish_head(&p, 2, false).is_err());
        let mut p = publish(false);
        p[4] = b'+'; // a wildcard in a topic name [MQTT-3.3.2-2]
        assert!(publish_head(&p, 2, false).is_err());
        let mut p = publish(false);
        p[8] = 0; // packet identifier 0
        assert!(publish_head(&p, 2, false).is_err());
        let p = [0x30, 2, 0, 9]; // topic longer than the packet
        assert!(publish_head(&p, 2, false).is_err());
        let p = [0x30, 2, 0, 0]; // empty topic (a topic alias the relay never granted)
        assert!(publish_head(&p, 2, false).is_err());
        let mut p = publish(true);
        p[9] = 0x7F; // property length past the end
        assert!(publish_head(&p, 2, true).is_err());
    }

    #[test]
    fn acknowledgements_round_trip_their_identifier() {
        assert_eq!(ack_id(&puback(0x1234), 2, 0).unwrap(), 0x1234);
        assert_eq!(ack_id(&pubrel(9), 2, 0b0010).unwrap(), 9);
        assert!(ack_id(&pubrel(9), 2, 0).is_err());
        assert!(ack_id(&[0x40, 1, 0], 2, 0).is_err());
    }
}
