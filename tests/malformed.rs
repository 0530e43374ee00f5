//! Hand-built bad input over raw TCP. Each case must close only the offending connection (a v5
//! connection first gets a DISCONNECT with the matching reason code), and the broker must keep
//! serving other clients afterwards.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

/// Reason codes.
const MALFORMED: u8 = 0x81;
const PROTOCOL_ERROR: u8 = 0x82;
const TOPIC_NAME_INVALID: u8 = 0x90;
const PACKET_TOO_LARGE: u8 = 0x95;

/// Connects a client of `ver`, sends `bytes`, and asserts the broker closes the connection. For v5
/// it asserts exactly one DISCONNECT whose code is in `v5_codes`; for 3.x that no DISCONNECT came.
/// Then checks the broker still serves.
async fn closes_after(b: &mut Broker, ver: Ver, bytes: &[u8], v5_codes: &[u8], what: &str) {
    let mut c = Client::connect(b.port, Opts::new(ver, &uniq("bad"))).await;
    c.send_raw(bytes).await;
    let got = match c.read_until_closed(WAIT).await {
        Ok(v) => v,
        Err(v) => panic!("{what} ({ver:?}): connection not closed within {WAIT:?}; got {v:?}"),
    };
    let codes = disconnect_codes(&got);
    if ver.is_v5() {
        assert_eq!(codes.len(), 1, "{what}: v5 client must get one DISCONNECT before the close, got {got:?}");
        assert!(v5_codes.contains(&codes[0]), "{what}: DISCONNECT reason 0x{:02x}, expected one of {v5_codes:02x?}", codes[0]);
    } else {
        assert!(codes.is_empty(), "{what}: DISCONNECT sent to a 3.1.1 client: {got:?}");
    }
    b.assert_serving().await;
}

fn publish_packet(topic: &[u8], payload: &[u8], v5: bool) -> Vec<u8> {
    let mut body = Vec::new();
    mqtt_str(topic, &mut body);
    if v5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    frame(0x30, &body)
}

fn subscribe_body(filter: &str, v5: bool) -> Vec<u8> {
    let mut body = vec![0, 1];
    if v5 {
        body.push(0);
    }
    mqtt_str(filter.as_bytes(), &mut body);
    body.push(1);
    body
}

#[tokio::test]
async fn remaining_length_of_five_bytes_is_malformed_mqtt_1_5_5_1() {
    let mut b = Broker::start();
    let bad = [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
    closes_after(&mut b, Ver::V311, &bad, &[], "5-byte remaining length").await;
    closes_after(&mut b, Ver::V5, &bad, &[MALFORMED], "5-byte remaining length").await;
    // As the very first packet too: closed without an answer.
    let (got, closed) = raw_exchange(b.port, &[0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], WAIT).await;
    assert!(closed, "5-byte remaining length in the first packet: not closed");
    assert!(got.is_empty(), "nothing may be answered to a malformed first packet: {got:?}");
    b.assert_serving().await;
}

#[tokio::test]
async fn subscribe_with_reserved_flags_zero_is_malformed_mqtt_3_8_1_1() {
    let mut b = Broker::start();
    closes_after(&mut b, Ver::V311, &frame(0x80, &subscribe_body("ok/t", false)), &[], "SUBSCRIBE flags 0").await;
    closes_after(&mut b, Ver::V5, &frame(0x80, &subscribe_body("ok/t", true)), &[MALFORMED], "SUBSCRIBE flags 0").await;
}

#[tokio::test]
async fn publish_with_qos_3_is_malformed_mqtt_3_3_1_4() {
    let mut b = Broker::start();
    let mut body = Vec::new();
    mqtt_str(b"q/t", &mut body);
    body.extend_from_slice(&[0, 1]);
    let v3 = frame(0x36, &[body.clone(), b"x".to_vec()].concat());
    let v5 = frame(0x36, &[body, vec![0], b"x".to_vec()].concat());
    closes_after(&mut b, Ver::V311, &v3, &[], "PUBLISH QoS 3").await;
    closes_after(&mut b, Ver::V5, &v5, &[MALFORMED], "PUBLISH QoS 3").await;
}

#[tokio::test]
async fn invalid_utf8_in_topic_is_malformed_mqtt_1_5_4_1() {
    let mut b = Broker::start();
    let bad = b"a/\xFF\xFE";
    closes_after(&mut b, Ver::V311, &publish_packet(bad, b"x", false), &[], "invalid UTF-8 topic").await;
    closes_after(&mut b, Ver::V5, &publish_packet(bad, b"x", true), &[MALFORMED], "invalid UTF-8 topic").await;
    // U+0000 is not allowed in a UTF-8 string either [MQTT-1.5.4-2].
    let nul = b"a/\x00/b";
    closes_after(&mut b, Ver::V311, &publish_packet(nul, b"x", false), &[], "U+0000 in topic").await;
    closes_after(&mut b, Ver::V5, &publish_packet(nul, b"x", true), &[MALFORMED], "U+0000 in topic").await;
    // In a SUBSCRIBE topic filter.
    let mut body = vec![0, 1, 0];
    mqtt_str(b"f/\xC3", &mut body);
    body.push(0);
    closes_after(&mut b, Ver::V5, &frame(0x82, &body), &[MALFORMED], "invalid UTF-8 filter").await;
}

#[tokio::test]
async fn second_connect_is_a_protocol_error_mqtt_3_1_0_2() {
    let mut b = Broker::start();
    let again3 = Opts::new(Ver::V311, "again").encode();
    let again5 = Opts::new(Ver::V5, "again").encode();
    closes_after(&mut b, Ver::V311, &again3, &[], "second CONNECT").await;
    closes_after(&mut b, Ver::V5, &again5, &[PROTOCOL_ERROR], "second CONNECT").await;
}

#[tokio::test]
async fn packet_before_connect_closes_without_answer_mqtt_3_1_0_1() {
    let mut b = Broker::start();
    for first in [publish_packet(b"early/t", b"x", false), frame(0x82, &subscribe_body("early/t", false)), vec![0xC0, 0x00]] {
        let (got, closed) = raw_exchange(b.port, &first, WAIT).await;
        assert!(closed, "first packet 0x{:02x} instead of CONNECT: connection not closed", first[0]);
        assert!(got.is_empty(), "answer to a packet before CONNECT: {got:?}");
    }
    b.assert_serving().await;
}

#[tokio::test]
async fn packet_over_maximum_packet_size_closes_with_0x95_mqtt_3_2_2_3_6() {
    let mut b = Broker::with_config("[limits]\nmax_packet_size = 1024\n");
    let c = Client::connect(b.port, Opts::new(Ver::V5, "announce")).await;
    assert_eq!(c.connack_props.u32(pid::MAXIMUM_PACKET_SIZE), Some(1024), "CONNACK announces the maximum packet size");
    drop(c);
    // Just under the limit still works.
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &uniq("s"))).await;
    s.sub("big/t", 0).await;
    s.publish("big/t", &[b'x'; 1000], 0, false).await;
    assert_eq!(s.expect_msg().await.payload.len(), 1000);
    let big = vec![b'y'; 2000];
    closes_after(&mut b, Ver::V311, &publish_packet(b"big/t", &big, false), &[], "oversize PUBLISH").await;
    closes_after(&mut b, Ver::V5, &publish_packet(b"big/t", &big, true), &[PACKET_TOO_LARGE], "oversize PUBLISH").await;
    s.expect_no_msg(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn wildcard_in_publish_topic_closes_connection_mqtt_3_3_2_2() {
    let mut b = Broker::start();
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &uniq("s"))).await;
    s.sub("#", 0).await;
    for topic in [&b"wild/+/t"[..], b"wild/#"] {
        closes_after(&mut b, Ver::V311, &publish_packet(topic, b"x", false), &[], "wildcard in topic name").await;
        // The spec does not pin one code for this; any of these says what went wrong.
        closes_after(&mut b, Ver::V5, &publish_packet(topic, b"x", true), &[MALFORMED, PROTOCOL_ERROR, TOPIC_NAME_INVALID], "wildcard in topic name").await;
    }
    // Only the liveness probes were delivered, never the wildcard publishes.
    for m in s.drain_msgs(50).await {
        assert_eq!(m.topic, "alive/check", "a PUBLISH with a wildcard topic was routed");
    }
}

#[tokio::test]
async fn subscribe_without_filters_is_a_protocol_violation_mqtt_3_8_3_3() {
    let mut b = Broker::start();
    closes_after(&mut b, Ver::V311, &frame(0x82, &[0, 1]), &[], "SUBSCRIBE with no filters").await;
    closes_after(&mut b, Ver::V5, &frame(0x82, &[0, 1, 0]), &[MALFORMED, PROTOCOL_ERROR], "SUBSCRIBE with no filters").await;
}

#[tokio::test]
async fn reserved_packet_type_and_server_only_packets_close_the_connection_mqtt_4_8_0_1() {
    let mut b = Broker::start();
    // Packet type 0 is reserved.
    closes_after(&mut b, Ver::V311, &[0x00, 0x00], &[], "packet type 0").await;
    closes_after(&mut b, Ver::V5, &[0x00, 0x00], &[MALFORMED, PROTOCOL_ERROR], "packet type 0").await;
    // CONNACK comes from servers only.
    closes_after(&mut b, Ver::V311, &[0x20, 0x02, 0x00, 0x00], &[], "CONNACK from a client").await;
    closes_after(&mut b, Ver::V5, &[0x20, 0x03, 0x00, 0x00, 0x00], &[MALFORMED, PROTOCOL_ERROR], "CONNACK from a client").await;
}

fn connect_with_level(level: u8) -> Vec<u8> {
    let mut body = Vec::new();
    mqtt_str(b"MQTT", &mut body);
    body.push(level);
    body.push(0x02);
    body.extend_from_slice(&30u16.to_be_bytes());
    mqtt_str(b"level-test", &mut body);
    frame(0x10, &body)
}

#[tokio::test]
async fn unsupported_protocol_level_gets_connack_refusal_and_close_mqtt_3_1_2_2() {
    let mut b = Broker::start();
    for level in [6u8, 2, 0, 255] {
        let (got, closed) = raw_exchange(b.port, &connect_with_level(level), WAIT).await;
        assert!(closed, "level {level}: connection not closed");
        // 3.1.1: CONNACK 0x01 (unacceptable protocol version); 5.0: CONNACK 0x84.
        let v311 = [0x20, 0x02, 0x00, 0x01];
        let v5 = [0x20, 0x03, 0x00, 0x84, 0x00];
        assert!(got == v311 || got == v5, "level {level}: expected CONNACK 0x01 or 0x84, got {got:02x?}");
    }
    b.assert_serving().await;
}

#[tokio::test]
async fn connect_with_reserved_flag_bit_is_refused_mqtt_3_1_2_3() {
    let mut b = Broker::start();
    for ver in [Ver::V311, Ver::V5] {
        let mut bytes = Opts::new(ver, "reserved-bit").encode();
        // Fixed header (2 bytes) + protocol name (6) + level (1): the flags byte follows.
        bytes[9] |= 0x01;
        let (got, closed) = raw_exchange(b.port, &bytes, WAIT).await;
        assert!(closed, "{ver:?}: CONNECT with reserved flag 1 not closed");
        let pkts = decode_all(ver, &got);
        match pkts.as_slice() {
            [] => {}
            [Pkt::ConnAck { code, .. }] if ver.is_v5() && *code >= 0x80 => {}
            other => panic!("{ver:?}: CONNECT with reserved flag answered with {other:?}"),
        }
    }
    b.assert_serving().await;
}

#[tokio::test]
async fn v5_disconnect_for_a_malformed_packet_explains_itself_in_a_reason_string_mqtt_3_14_2_2() {
    let mut b = Broker::start();
    let mut c = Client::connect(b.port, Opts::new(Ver::V5, &uniq("why"))).await;
    // PUBLISH with QoS 3.
    c.send_raw(&frame(0x36, &publish_packet(b"t", b"x", true)[2..])).await;
    let got = c.read_until_closed(WAIT).await.unwrap_or_else(|v| panic!("not closed: {v:?}"));
    let reason = got.iter().find_map(|p| match p {
        Pkt::Disconnect { props, .. } => props.str(pid::REASON_STRING).map(str::to_owned),
        _ => None,
    });
    let reason = reason.unwrap_or_else(|| panic!("DISCONNECT without a reason string: {got:?}"));
    assert!(reason.contains("QoS"), "reason string should name the problem: {reason:?}");
    b.assert_serving().await;
}
