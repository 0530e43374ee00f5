//! Encoding of MQTT 3.1, 3.1.1 and 5.0 packets.
//!
//! Encoding is two passes over the packet and no allocation: a measuring pass computes the remaining
//! length and property lengths (and validates everything that could make the output unparseable:
//! over-long strings, packet identifier 0, values a variable byte integer cannot hold), then the
//! output buffer is grown once to the exact size and the packet is written. Both passes walk the
//! properties through the same `visit_properties`, so the computed and written lengths cannot drift.
//!
//! Fields a version lacks are dropped: 3.x packets carry no properties or 5.0 reason codes. In 5.0
//! only the properties the packet type allows (section 2.2.2.2) are written, so the encoder never
//! produces a packet the peer has to reject because of a stray property.

use bytes::{BufMut, BytesMut};

use super::decode::{
    property_contexts, CTX_AUTH, CTX_CONNACK, CTX_CONNECT, CTX_DISCONNECT, CTX_PUBACK, CTX_PUBCOMP,
    CTX_PUBLISH, CTX_PUBREC, CTX_PUBREL, CTX_SUBACK, CTX_SUBSCRIBE, CTX_UNSUBACK, CTX_UNSUBSCRIBE,
    CTX_WILL, MAX_VBI,
};
use super::error::EncodeError;
use super::packet::*;
use super::properties::Properties;

/// Longest UTF-8 string or binary field: its length prefix is 16 bits.
const MAX_FIELD: usize = u16::MAX as usize;

/// Appends exactly one encoded `packet` to `out`, in the wire format of `version`.
///
/// The buffer is grown once to the exact size. On error nothing is appended. For CONNECT the
/// protocol name and level written are those of `version`.
///
/// # Errors
///
/// A remaining length above 268,435,455, a string or binary field above 65,535 bytes, a value that
/// cannot be put on the wire (packet identifier 0 where one is needed, subscription identifier out
/// of range, retain handling 3, SUBSCRIBE/UNSUBSCRIBE without filters), or AUTH before 5.0.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let sizes = measure(packet, version);
    if let Some(err) = sizes.err {
        return Err(err);
    }
    if sizes.remaining > MAX_VBI as usize {
        return Err(EncodeError::PacketTooLarge(sizes.remaining));
    }
    out.reserve(1 + vbi_len(sizes.remaining as u32) + sizes.remaining);
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => {
            let mut flags = 0u8;
            if c.clean_start {
                flags |= 0x02;
            }
            if let Some(w) = &c.will {
                flags |= 0x04 | (w.qos as u8) << 3;
                if w.retain {
                    flags |= 0x20;
                }
            }
            if c.password.is_some() {
                flags |= 0x40;
            }
            if c.username.is_some() {
                flags |= 0x80;
            }
            header(out, 0x10, sizes.remaining);
            put_binary(out, protocol_name(version));
            out.put_u8(version.level());
            out.put_u8(flags);
            out.put_u16(c.keep_alive);
            if v5 {
                put_properties(out, &c.properties, CTX_CONNECT, sizes.props);
            }
            put_binary(out, c.client_id.as_bytes());
            if let Some(w) = &c.will {
                if v5 {
                    put_properties(out, &w.properties, CTX_WILL, sizes.will_props);
                }
                put_binary(out, w.topic.as_bytes());
                put_binary(out, &w.payload);
            }
            if let Some(u) = &c.username {
                put_binary(out, u.as_bytes());
            }
            if let Some(p) = &c.password {
                put_binary(out, p);
            }
        }
        Packet::ConnAck(c) => {
            header(out, 0x20, sizes.remaining);
            out.put_u8(u8::from(c.session_present));
            out.put_u8(c.code);
            if v5 {
                put_properties(out, &c.properties, CTX_CONNACK, sizes.props);
            }
        }
        Packet::Publish(p) => {
            // DUP is only meaningful with QoS > 0 [MQTT-3.3.1-2]; drop it rather than emit a
            // malformed packet when a QoS 0 copy is made of a redelivered message.
            let dup = p.dup && p.qos != QoS::AtMostOnce;
            let first = 0x30 | u8::from(dup) << 3 | (p.qos as u8) << 1 | u8::from(p.retain);
            header(out, first, sizes.remaining);
            put_binary(out, p.topic.as_bytes());
            if p.qos != QoS::AtMostOnce {
                out.put_u16(p.packet_id);
            }
            if v5 {
                put_properties(out, &p.properties, CTX_PUBLISH, sizes.props);
            }
            out.put_slice(&p.payload);
        }
        Packet::PubAck(r) => put_pub_resp(out, 0x40, r, v5, CTX_PUBACK, &sizes),
        Packet::PubRec(r) => put_pub_resp(out, 0x50, r, v5, CTX_PUBREC, &sizes),
        // [MQTT-3.6.1-1] PUBREL flags are 0b0010.
        Packet::PubRel(r) => put_pub_resp(out, 0x62, r, v5, CTX_PUBREL, &sizes),
        Packet::PubComp(r) => put_pub_resp(out, 0x70, r, v5, CTX_PUBCOMP, &sizes),
        Packet::Subscribe(s) => {
            // [MQTT-3.8.1-1] SUBSCRIBE flags are 0b0010.
            header(out, 0x82, sizes.remaining);
            out.put_u16(s.packet_id);
            if v5 {
                put_properties(out, &s.properties, CTX_SUBSCRIBE, sizes.props);
            }
            for (filter, o) in &s.filters {
                put_binary(out, filter.as_bytes());
                let mut opts = o.qos as u8;
                if v5 {
                    opts |= u8::from(o.no_local) << 2
                        | u8::from(o.retain_as_published) << 3
                        | o.retain_handling << 4;
                }
                out.put_u8(opts);
            }
        }
        Packet::SubAck(s) => {
            header(out, 0x90, sizes.remaining);
            out.put_u16(s.packet_id);
            if v5 {
                put_properties(out, &s.properties, CTX_SUBACK, sizes.props);
            }
            out.put_slice(&s.reasons);
        }
        Packet::Unsubscribe(u) => {
            // [MQTT-3.10.1-1] UNSUBSCRIBE flags are 0b0010.
            header(out, 0xA2, sizes.remaining);
            out.put_u16(u.packet_id);
            if v5 {
                put_properties(out, &u.properties, CTX_UNSUBSCRIBE, sizes.props);
            }
            for filter in &u.filters {
                put_binary(out, filter.as_bytes());
            }
        }
        Packet::UnsubAck(u) => {
            header(out, 0xB0, sizes.remaining);
            out.put_u16(u.packet_id);
            // 3.x UNSUBACK carries only the packet identifier.
            if v5 {
                put_properties(out, &u.properties, CTX_UNSUBACK, sizes.props);
                out.put_slice(&u.reasons);
            }
        }
        Packet::PingReq => header(out, 0xC0, 0),
        Packet::PingResp => header(out, 0xD0, 0),
        Packet::Disconnect(d) => {
            header(out, 0xE0, sizes.remaining);
            if sizes.remaining > 0 {
                out.put_u8(d.reason);
                put_properties(out, &d.properties, CTX_DISCONNECT, sizes.props);
            }
        }
        Packet::Auth(a) => {
            header(out, 0xF0, sizes.remaining);
            if sizes.remaining > 0 {
                out.put_u8(a.reason);
                put_properties(out, &a.properties, CTX_AUTH, sizes.props);
            }
        }
    }
    Ok(())
}

/// Total encoded size of `packet` in `version` (fixed header included), as `encode` would write it.
///
/// Meaningless for a packet `encode` rejects.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let remaining = measure(packet, version).remaining;
    1 + vbi_len(remaining.min(MAX_VBI as usize) as u32) + remaining
}

/// The protocol name CONNECT carries for a version.
fn protocol_name(version: ProtocolVersion) -> &'static [u8] {
    match version {
        ProtocolVersion::V3_1 => b"MQIsdp",
        ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => b"MQTT",
    }
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP.
fn put_pub_resp(out: &mut BytesMut, first: u8, r: &PubResp, v5: bool, ctx: u16, sizes: &Sizes) {
    header(out, first, sizes.remaining);
    out.put_u16(r.packet_id);
    // 5.0 [MQTT-3.4.2-1] the reason and properties are omitted (remaining length 2) on plain success.
    if v5 && sizes.remaining > 2 {
        out.put_u8(r.reason);
        put_properties(out, &r.properties, ctx, sizes.props);
    }
}

/// Lengths computed by the measuring pass, and the first reason the packet cannot be encoded.
#[derive(Default)]
struct Sizes {
    /// Remaining length (everything after the fixed header).
    remaining: usize,
    /// Length of the packet's property list (without its own length prefix).
    props: usize,
    /// Length of the will property list in CONNECT.
    will_props: usize,
    /// Why the packet cannot be encoded, if it cannot.
    err: Option<EncodeError>,
}

impl Sizes {
    fn fail(&mut self, err: EncodeError) {
        self.err.get_or_insert(err);
    }

    /// Size of a length-prefixed string or binary field, recording a field that is too long.
    fn field(&mut self, len: usize, what: &'static str) -> usize {
        if len > MAX_FIELD {
            self.fail(EncodeError::FieldTooLong(what));
        }
        2 + len
    }

    /// Measures a property list; returns the size of the whole block (length prefix included).
    fn properties(&mut self, p: &Properties, ctx: u16) -> (usize, usize) {
        let mut c = Counter::default();
        visit_properties(p, ctx, &mut c);
        if let Some(err) = c.err {
            self.fail(err);
        }
        if c.len > MAX_VBI as usize {
            self.fail(EncodeError::PacketTooLarge(c.len));
        }
        (c.len, vbi_len(c.len.min(MAX_VBI as usize) as u32) + c.len)
    }

    fn packet_id(&mut self, id: u16) {
        // [MQTT-2.3.1-1] packets that carry an identifier need a non-zero one.
        if id == 0 {
            self.fail(EncodeError::InvalidValue("packet identifier is 0"));
        }
    }
}

/// The measuring pass.
fn measure(packet: &Packet, version: ProtocolVersion) -> Sizes {
    let v5 = version.is_v5();
    let mut s = Sizes::default();
    s.remaining = match packet {
        Packet::Connect(c) => {
            let mut n = 2 + protocol_name(version).len() + 1 + 1 + 2;
            if v5 {
                let (len, block) = s.properties(&c.properties, CTX_CONNECT);
                s.props = len;
                n += block;
            }
            n += s.field(c.client_id.len(), "client identifier");
            if let Some(w) = &c.will {
                if v5 {
                    let (len, block) = s.properties(&w.properties, CTX_WILL);
                    s.will_props = len;
                    n += block;
                }
                n += s.field(w.topic.len(), "will topic");
                n += s.field(w.payload.len(), "will payload");
            }
            if let Some(u) = &c.username {
                n += s.field(u.len(), "user name");
            }
            if let Some(p) = &c.password {
                n += s.field(p.len(), "password");
            }
            n
        }
        Packet::ConnAck(c) => {
            let mut n = 2;
            if v5 {
                let (len, block) = s.properties(&c.properties, CTX_CONNACK);
                s.props = len;
                n += block;
            }
            n
        }
        Packet::Publish(p) => {
            let mut n = s.field(p.topic.len(), "topic name");
            if p.qos != QoS::AtMostOnce {
                s.packet_id(p.packet_id);
                n += 2;
            }
            if v5 {
                let (len, block) = s.properties(&p.properties, CTX_PUBLISH);
                s.props = len;
                n += block;
            }
            n + p.payload.len()
        }
        Packet::PubAck(r) => measure_pub_resp(&mut s, r, v5, CTX_PUBACK),
        Packet::PubRec(r) => measure_pub_resp(&mut s, r, v5, CTX_PUBREC),
        Packet::PubRel(r) => measure_pub_resp(&mut s, r, v5, CTX_PUBREL),
        Packet::PubComp(r) => measure_pub_resp(&mut s, r, v5, CTX_PUBCOMP),
        Packet::Subscribe(sub) => {
            s.packet_id(sub.packet_id);
            let mut n = 2;
            if v5 {
                let (len, block) = s.properties(&sub.properties, CTX_SUBSCRIBE);
                s.props = len;
                n += block;
            }
            // [MQTT-3.8.3-3] a SUBSCRIBE without filters is a protocol violation.
            if sub.filters.is_empty() {
                s.fail(EncodeError::InvalidValue("SUBSCRIBE has no topic filters"));
            }
            for (filter, o) in &sub.filters {
                if v5 && o.retain_handling > 2 {
                    s.fail(EncodeError::InvalidValue("retain handling above 2"));
                }
                n += s.field(filter.len(), "topic filter") + 1;
            }
            n
        }
        Packet::SubAck(a) => {
            s.packet_id(a.packet_id);
            let mut n = 2;
            if v5 {
                let (len, block) = s.properties(&a.properties, CTX_SUBACK);
                s.props = len;
                n += block;
            }
            n + a.reasons.len()
        }
        Packet::Unsubscribe(u) => {
            s.packet_id(u.packet_id);
            let mut n = 2;
            if v5 {
                let (len, block) = s.properties(&u.properties, CTX_UNSUBSCRIBE);
                s.props = len;
                n += block;
            }
            // [MQTT-3.10.3-2] an UNSUBSCRIBE without filters is a protocol violation.
            if u.filters.is_empty() {
                s.fail(EncodeError::InvalidValue(
                    "UNSUBSCRIBE has no topic filters",
                ));
            }
            for filter in &u.filters {
                n += s.field(filter.len(), "topic filter");
            }
            n
        }
        Packet::UnsubAck(u) => {
            s.packet_id(u.packet_id);
            let mut n = 2;
            if v5 {
                let (len, block) = s.properties(&u.properties, CTX_UNSUBACK);
                s.props = len;
                n += block + u.reasons.len();
            }
            n
        }
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => {
            if v5 {
                measure_reason_and_props(&mut s, d.reason, &d.properties, CTX_DISCONNECT)
            } else {
                0
            }
        }
        Packet::Auth(a) => {
            if !v5 {
                s.fail(EncodeError::UnsupportedInVersion("AUTH"));
            }
            measure_reason_and_props(&mut s, a.reason, &a.properties, CTX_AUTH)
        }
    };
    s
}

/// PUBACK family: packet id, then (5.0, unless plain success) reason and properties.
fn measure_pub_resp(s: &mut Sizes, r: &PubResp, v5: bool, ctx: u16) -> usize {
    s.packet_id(r.packet_id);
    if v5 {
        2 + measure_reason_and_props(s, r.reason, &r.properties, ctx)
    } else {
        2
    }
}

/// Optional trailing reason code and properties (5.0): omitted entirely on success without
/// properties, otherwise both are written (an explicit empty property list keeps older 5.0 parsers
/// that expect the length byte happy).
fn measure_reason_and_props(s: &mut Sizes, reason: u8, p: &Properties, ctx: u16) -> usize {
    let (len, block) = s.properties(p, ctx);
    if reason == 0 && len == 0 {
        return 0;
    }
    s.props = len;
    1 + block
}

/// Writes the fixed header: first byte, then the remaining length.
fn header(out: &mut BytesMut, first: u8, remaining: usize) {
    out.put_u8(first);
    // `measure` rejected anything above MAX_VBI, so this cannot truncate.
    put_vbi(out, remaining as u32);
}

/// Number of bytes of a variable byte integer (section 1.5.5).
fn vbi_len(v: u32) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes a variable byte integer; `v` must not exceed `MAX_VBI`.
fn put_vbi(out: &mut BytesMut, mut v: u32) {
    loop {
        let mut b = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if v == 0 {
            return;
        }
    }
}

/// Writes a length-prefixed string or binary field; `measure` checked the length fits in 16 bits.
fn put_binary(out: &mut BytesMut, data: &[u8]) {
    out.put_u16(data.len() as u16);
    out.put_slice(data);
}

/// Writes a property block whose content length `len` was computed by `measure`.
fn put_properties(out: &mut BytesMut, p: &Properties, ctx: u16, len: usize) {
    put_vbi(out, len as u32);
    visit_properties(p, ctx, &mut Writer(out));
}

/// Receives each property that is present and allowed; implemented by the measuring and writing passes.
trait PropertySink {
    fn byte(&mut self, id: u8, v: u8);
    fn two(&mut self, id: u8, v: u16);
    fn four(&mut self, id: u8, v: u32);
    fn vbi(&mut self, id: u8, v: u32);
    fn field(&mut self, id: u8, v: &[u8]);
    fn pair(&mut self, id: u8, k: &str, v: &str);
}

/// Feeds every present property that packet context `ctx` allows to `s`, in identifier order.
fn visit_properties<S: PropertySink>(p: &Properties, ctx: u16, s: &mut S) {
    let ok = |id: u8| property_contexts(id) & ctx != 0;
    if let (Some(v), true) = (p.payload_format_indicator, ok(0x01)) {
        s.byte(0x01, v);
    }
    if let (Some(v), true) = (p.message_expiry_interval, ok(0x02)) {
        s.four(0x02, v);
    }
    if let (Some(v), true) = (&p.content_type, ok(0x03)) {
        s.field(0x03, v.as_bytes());
    }
    if let (Some(v), true) = (&p.response_topic, ok(0x08)) {
        s.field(0x08, v.as_bytes());
    }
    if let (Some(v), true) = (&p.correlation_data, ok(0x09)) {
        s.field(0x09, v);
    }
    if ok(0x0B) {
        for &id in &p.subscription_identifiers {
            s.vbi(0x0B, id);
        }
    }
    if let (Some(v), true) = (p.session_expiry_interval, ok(0x11)) {
        s.four(0x11, v);
    }
    if let (Some(v), true) = (&p.assigned_client_identifier, ok(0x12)) {
        s.field(0x12, v.as_bytes());
    }
    if let (Some(v), true) = (p.server_keep_alive, ok(0x13)) {
        s.two(0x13, v);
    }
    if let (Some(v), true) = (&p.authentication_method, ok(0x15)) {
        s.field(0x15, v.as_bytes());
    }
    if let (Some(v), true) = (&p.authentication_data, ok(0x16)) {
        s.field(0x16, v);
    }
    if let (Some(v), true) = (p.request_problem_information, ok(0x17)) {
        s.byte(0x17, v);
    }
    if let (Some(v), true) = (p.will_delay_interval, ok(0x18)) {
        s.four(0x18, v);
    }
    if let (Some(v), true) = (p.request_response_information, ok(0x19)) {
        s.byte(0x19, v);
    }
    if let (Some(v), true) = (&p.response_information, ok(0x1A)) {
        s.field(0x1A, v.as_bytes());
    }
    if let (Some(v), true) = (&p.server_reference, ok(0x1C)) {
        s.field(0x1C, v.as_bytes());
    }
    if let (Some(v), true) = (&p.reason_string, ok(0x1F)) {
        s.field(0x1F, v.as_bytes());
    }
    if let (Some(v), true) = (p.receive_maximum, ok(0x21)) {
        s.two(0x21, v);
    }
    if let (Some(v), true) = (p.topic_alias_maximum, ok(0x22)) {
        s.two(0x22, v);
    }
    if let (Some(v), true) = (p.topic_alias, ok(0x23)) {
        s.two(0x23, v);
    }
    if let (Some(v), true) = (p.maximum_qos, ok(0x24)) {
        s.byte(0x24, v);
    }
    if let (Some(v), true) = (p.retain_available, ok(0x25)) {
        s.byte(0x25, v);
    }
    if ok(0x26) {
        for (k, v) in &p.user_properties {
            s.pair(0x26, k, v);
        }
    }
    if let (Some(v), true) = (p.maximum_packet_size, ok(0x27)) {
        s.four(0x27, v);
    }
    if let (Some(v), true) = (p.wildcard_subscription_available, ok(0x28)) {
        s.byte(0x28, v);
    }
    if let (Some(v), true) = (p.subscription_identifier_available, ok(0x29)) {
        s.byte(0x29, v);
    }
    if let (Some(v), true) = (p.shared_subscription_available, ok(0x2A)) {
        s.byte(0x2A, v);
    }
}

/// Measuring pass over properties. Every identifier is below 128, so it takes one byte.
#[derive(Default)]
struct Counter {
    len: usize,
    err: Option<EncodeError>,
}

impl Counter {
    fn check_field(&mut self, len: usize) {
        if len > MAX_FIELD {
            self.err
                .get_or_insert(EncodeError::FieldTooLong("property value"));
        }
    }
}

impl PropertySink for Counter {
    fn byte(&mut self, _: u8, _: u8) {
        self.len += 2;
    }
    fn two(&mut self, _: u8, _: u16) {
        self.len += 3;
    }
    fn four(&mut self, _: u8, _: u32) {
        self.len += 5;
    }
    fn vbi(&mut self, _: u8, v: u32) {
        // 5.0 section 3.3.2.3.8: subscription identifiers are 1 to 268,435,455.
        if v == 0 || v > MAX_VBI {
            self.err.get_or_insert(EncodeError::InvalidValue(
                "subscription identifier out of range",
            ));
        }
        self.len += 1 + vbi_len(v);
    }
    fn field(&mut self, _: u8, v: &[u8]) {
        self.check_field(v.len());
        self.len += 3 + v.len();
    }
    fn pair(&mut self, _: u8, k: &str, v: &str) {
        self.check_field(k.len());
        self.check_field(v.len());
        self.len += 5 + k.len() + v.len();
    }
}

/// Writing pass over properties.
struct Writer<'a>(&'a mut BytesMut);

impl PropertySink for Writer<'_> {
    fn byte(&mut self, id: u8, v: u8) {
        self.0.put_u8(id);
        self.0.put_u8(v);
    }
    fn two(&mut self, id: u8, v: u16) {
        self.0.put_u8(id);
        self.0.put_u16(v);
    }
    fn four(&mut self, id: u8, v: u32) {
        self.0.put_u8(id);
        self.0.put_u32(v);
    }
    fn vbi(&mut self, id: u8, v: u32) {
        self.0.put_u8(id);
        put_vbi(self.0, v);
    }
    fn field(&mut self, id: u8, v: &[u8]) {
        self.0.put_u8(id);
        put_binary(self.0, v);
    }
    fn pair(&mut self, id: u8, k: &str, v: &str) {
        self.0.put_u8(id);
        put_binary(self.0, k.as_bytes());
        put_binary(self.0, v.as_bytes());
    }
}

/// An outgoing PUBLISH described by borrowed parts, for the broker's delivery path: it is encoded
/// straight from the routed message, without building (and cloning properties into) a `Publish`.
#[derive(Debug, Clone, Copy)]
pub struct PublishParts<'a> {
    /// DUP flag (ignored for QoS 0).
    pub dup: bool,
    /// QoS of this transmission.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name; empty when `topic_alias` names a topic the receiver already knows.
    pub topic: &'a str,
    /// Packet identifier (QoS 1/2).
    pub packet_id: u16,
    /// Payload.
    pub payload: &'a [u8],
    /// The message's own properties (5.0), if any; message expiry, topic alias and subscription
    /// identifiers in it are ignored in favour of the fields below.
    pub properties: Option<&'a Properties>,
    /// Remaining message expiry interval.
    pub message_expiry: Option<u32>,
    /// Topic alias to send.
    pub topic_alias: Option<u16>,
    /// Subscription identifiers of the matching subscriptions.
    pub subscription_ids: &'a [u32],
}

/// Appends the PUBLISH described by `p` unless its encoded size exceeds `max_size` (the receiver's
/// maximum packet size, [MQTT-3.1.2-24]); returns the encoded size.
///
/// # Errors
///
/// `PacketTooLarge` above `max_size` or the protocol limit, `FieldTooLong` for a topic above
/// 65,535 bytes, `InvalidValue` for packet identifier 0 with QoS > 0.
pub fn encode_publish(
    p: &PublishParts<'_>,
    version: ProtocolVersion,
    max_size: u32,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let v5 = version.is_v5();
    let mut s = Sizes::default();
    let mut n = s.field(p.topic.len(), "topic name");
    if p.qos != QoS::AtMostOnce {
        s.packet_id(p.packet_id);
        n += 2;
    }
    let mut props_len = 0;
    if v5 {
        let mut c = Counter::default();
        if let Some(props) = p.properties {
            visit_publish_base(props, &mut c);
        }
        if let Some(err) = c.err {
            s.fail(err);
        }
        props_len = c.len + overrides_len(p);
        n += vbi_len(props_len.min(MAX_VBI as usize) as u32) + props_len;
    }
    let remaining = n + p.payload.len();
    if let Some(err) = s.err {
        return Err(err);
    }
    if remaining > MAX_VBI as usize {
        return Err(EncodeError::PacketTooLarge(remaining));
    }
    let total = 1 + vbi_len(remaining as u32) + remaining;
    if total > max_size as usize {
        return Err(EncodeError::PacketTooLarge(total));
    }
    out.reserve(total);
    let dup = p.dup && p.qos != QoS::AtMostOnce;
    header(out, 0x30 | u8::from(dup) << 3 | (p.qos as u8) << 1 | u8::from(p.retain), remaining);
    put_binary(out, p.topic.as_bytes());
    if p.qos != QoS::AtMostOnce {
        out.put_u16(p.packet_id);
    }
    if v5 {
        put_vbi(out, props_len as u32);
        let mut w = Writer(out);
        if let Some(props) = p.properties {
            visit_publish_base(props, &mut w);
        }
        if let Some(e) = p.message_expiry {
            w.four(0x02, e);
        }
        for id in p.subscription_ids {
            w.vbi(0x0B, *id);
        }
        if let Some(a) = p.topic_alias {
            w.two(0x23, a);
        }
    }
    out.put_slice(p.payload);
    Ok(total)
}

/// The message properties a broker forwards in PUBLISH (5.0 section 3.3.2.3): payload format, content
/// type, response topic, correlation data and user properties. Expiry, alias and subscription
/// identifiers are per delivery and written by `encode_publish` itself.
fn visit_publish_base<S: PropertySink>(p: &Properties, s: &mut S) {
    if let Some(v) = p.payload_format_indicator {
        s.byte(0x01, v);
    }
    if let Some(v) = &p.content_type {
        s.field(0x03, v.as_bytes());
    }
    if let Some(v) = &p.response_topic {
        s.field(0x08, v.as_bytes());
    }
    if let Some(v) = &p.correlation_data {
        s.field(0x09, v);
    }
    for (k, v) in &p.user_properties {
        s.pair(0x26, k, v);
    }
}

fn overrides_len(p: &PublishParts<'_>) -> usize {
    let mut n = 0;
    if p.message_expiry.is_some() {
        n += 5;
    }
    for id in p.subscription_ids {
        n += 1 + vbi_len(*id);
    }
    if p.topic_alias.is_some() {
        n += 3;
    }
    n
}
