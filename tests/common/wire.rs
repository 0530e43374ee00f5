//! The MQTT wire format as the tests write and read it, independent of the broker's own codec so
//! that a codec bug cannot hide itself: framing, protocol versions, the packets a server sends
//! (decoded, one at a time or from raw bytes) and subscription option bytes.

use bytes::{Buf, BytesMut};

use super::props::{take_props, Props};

/// Encodes a variable byte integer (remaining length, property lengths, subscription ids).
pub fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// A UTF-8 string / binary field: 16-bit length then bytes.
pub fn mqtt_str(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A whole packet: first byte, remaining length, body.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    varint(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// Protocol versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ver {
    /// MQTT 3.1 ("MQIsdp", level 3).
    V31,
    /// MQTT 3.1.1 (level 4).
    V311,
    /// MQTT 5.0 (level 5).
    V5,
}

impl Ver {
    pub fn is_v5(self) -> bool {
        self == Ver::V5
    }
}

pub(super) fn take_u16(b: &mut &[u8]) -> Result<u16, String> {
    if b.len() < 2 {
        return Err("truncated u16".into());
    }
    Ok(b.get_u16())
}

pub(super) fn take_bin(b: &mut &[u8]) -> Result<Vec<u8>, String> {
    let n = take_u16(b)? as usize;
    if b.len() < n {
        return Err("truncated string".into());
    }
    let v = b[..n].to_vec();
    b.advance(n);
    Ok(v)
}

pub(super) fn take_str(b: &mut &[u8]) -> Result<String, String> {
    String::from_utf8(take_bin(b)?).map_err(|_| "invalid UTF-8 from broker".into())
}

pub(super) fn take_varint(b: &mut &[u8]) -> Result<usize, String> {
    let mut n = 0usize;
    let mut mult = 1usize;
    for _ in 0..4 {
        if b.is_empty() {
            return Err("truncated varint".into());
        }
        let byte = b.get_u8();
        n += (byte & 0x7F) as usize * mult;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
        mult *= 128;
    }
    Err("varint too long".into())
}

/// An application message as received (or to send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// Topic; resolved from the topic alias when the packet carried an empty topic.
    pub topic: String,
    /// The topic as it was on the wire (empty when only a topic alias was sent).
    pub wire_topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub pid: u16,
    pub props: Props,
}

/// A packet from the broker, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pkt {
    ConnAck { session_present: bool, code: u8, props: Props },
    Publish(Msg),
    PubAck { pid: u16, code: u8 },
    PubRec { pid: u16, code: u8 },
    PubRel { pid: u16, code: u8 },
    PubComp { pid: u16, code: u8 },
    SubAck { pid: u16, codes: Vec<u8> },
    UnsubAck { pid: u16, codes: Vec<u8> },
    PingResp,
    Disconnect { code: u8, props: Props },
    /// Anything else (first byte, body): a server must not send these.
    Other(u8, Vec<u8>),
}

/// Splits one whole packet off `buf`: `Ok(None)` when more bytes are needed.
pub fn split_frame(buf: &mut BytesMut) -> Result<Option<(u8, Vec<u8>)>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let mut len = 0usize;
    let mut mult = 1usize;
    let mut i = 1;
    loop {
        if i >= buf.len() {
            return Ok(None);
        }
        if i > 4 {
            return Err("remaining length longer than 4 bytes from broker".into());
        }
        let b = buf[i];
        len += (b & 0x7F) as usize * mult;
        mult *= 128;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    if buf.len() < i + len {
        return Ok(None);
    }
    let first = buf[0];
    buf.advance(i);
    let body = buf.split_to(len).to_vec();
    Ok(Some((first, body)))
}

/// Decodes a server packet of version `v`.
pub fn decode(v: Ver, first: u8, body: &[u8]) -> Result<Pkt, String> {
    let mut b = body;
    let v5 = v.is_v5();
    let ack = |b: &mut &[u8]| -> Result<(u16, u8), String> {
        let pid = take_u16(b)?;
        let code = if v5 && !b.is_empty() { b.get_u8() } else { 0 };
        if v5 && !b.is_empty() {
            take_props(b)?;
        }
        Ok((pid, code))
    };
    Ok(match first >> 4 {
        2 => {
            if b.len() < 2 {
                return Err("short CONNACK".into());
            }
            let flags = b.get_u8();
            let code = b.get_u8();
            let props = if v5 && !b.is_empty() { take_props(&mut b)? } else { Props::default() };
            Pkt::ConnAck { session_present: flags & 1 == 1, code, props }
        }
        3 => {
            let qos = (first >> 1) & 3;
            let topic = take_str(&mut b)?;
            let pid = if qos > 0 { take_u16(&mut b)? } else { 0 };
            let props = if v5 { take_props(&mut b)? } else { Props::default() };
            Pkt::Publish(Msg { wire_topic: topic.clone(), topic, payload: b.to_vec(), qos, retain: first & 1 == 1, dup: first & 8 == 8, pid, props })
        }
        4 => {
            let (pid, code) = ack(&mut b)?;
            Pkt::PubAck { pid, code }
        }
        5 => {
            let (pid, code) = ack(&mut b)?;
            Pkt::PubRec { pid, code }
        }
        6 => {
            let (pid, code) = ack(&mut b)?;
            Pkt::PubRel { pid, code }
        }
        7 => {
            let (pid, code) = ack(&mut b)?;
            Pkt::PubComp { pid, code }
        }
        9 => {
            let pid = take_u16(&mut b)?;
            if v5 {
                take_props(&mut b)?;
            }
            Pkt::SubAck { pid, codes: b.to_vec() }
        }
        11 => {
            let pid = take_u16(&mut b)?;
            if v5 {
                take_props(&mut b)?;
            }
            Pkt::UnsubAck { pid, codes: b.to_vec() }
        }
        13 => Pkt::PingResp,
        14 => {
            let code = if b.is_empty() { 0 } else { b.get_u8() };
            let props = if !b.is_empty() { take_props(&mut b)? } else { Props::default() };
            Pkt::Disconnect { code, props }
        }
        _ => Pkt::Other(first, body.to_vec()),
    })
}

/// Subscription options byte for v5 (QoS, no local, retain as published, retain handling); for 3.x
/// only the QoS bits are meaningful.
pub fn sub_opts(qos: u8, no_local: bool, rap: bool, retain_handling: u8) -> u8 {
    qos | (u8::from(no_local) << 2) | (u8::from(rap) << 3) | (retain_handling << 4)
}

/// Splits raw bytes from the broker into packets of version `v`.
pub fn decode_all(v: Ver, bytes: &[u8]) -> Vec<Pkt> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Ok(Some((first, body))) = split_frame(&mut buf) {
        out.push(decode(v, first, &body).unwrap_or_else(|e| panic!("bad packet from broker: {e}")));
    }
    assert!(buf.is_empty(), "trailing partial packet from broker: {:?}", &buf[..]);
    out
}
