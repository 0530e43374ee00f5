//! Codec tests: round trips of every packet in every version, property-based round trips, streaming,
//! and one test per malformed-input rule, named after the behaviour and the spec statement it checks
//! (3.1.1 numbering unless the name says `v5`).

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use proptest::prelude::*;

use super::reason;
use super::topic::{
    has_wildcards, is_valid_topic_filter, is_valid_topic_name, matches, split_shared,
};
use super::*;

const MAX: u32 = 268_435_460;
const V31: ProtocolVersion = ProtocolVersion::V3_1;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;
const ALL_VERSIONS: [ProtocolVersion; 3] = [V31, V311, V5];

// ---------------------------------------------------------------------------------------------
// Helpers

fn bs(s: &str) -> ByteString {
    ByteString::from(s)
}

fn user_props() -> Vec<(ByteString, ByteString)> {
    vec![
        (bs("k"), bs("v1")),
        (bs("k"), bs("v2")),
        (bs("ünï"), bs("ćødé")),
    ]
}

/// Frames a body with a fixed header.
fn raw(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut b = (len & 0x7F) as u8;
        len >>= 7;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A length-prefixed string/binary field.
fn field(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn enc(p: &Packet, v: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    encode(p, v, &mut buf).expect("encodes");
    buf
}

fn dec(bytes: &[u8], v: Option<ProtocolVersion>) -> Result<Option<Packet>, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let r = decode(&mut buf, v, MAX);
    if let Ok(Some(_)) = r {
        assert!(buf.is_empty(), "decode consumed exactly one packet");
    }
    r
}

fn dec_ok(bytes: &[u8], v: Option<ProtocolVersion>) -> Packet {
    dec(bytes, v).expect("decodes").expect("complete")
}

/// Asserts decoding fails and returns the error.
fn dec_err(bytes: &[u8], v: Option<ProtocolVersion>) -> DecodeError {
    match dec(bytes, v) {
        Err(e) => e,
        Ok(p) => panic!("expected an error, decoded {p:?}"),
    }
}

fn roundtrip(p: &Packet, v: ProtocolVersion) {
    let mut buf = enc(p, v);
    assert_eq!(
        buf.len(),
        encoded_len(p, v),
        "encoded_len of {p:?} in {v:?}"
    );
    assert_eq!(check(&buf, MAX), Ok(Some(buf.len())));
    let dv = if matches!(p, Packet::Connect(_)) {
        None
    } else {
        Some(v)
    };
    let got = decode(&mut buf, dv, MAX)
        .expect("decodes")
        .expect("complete");
    assert_eq!(&got, p, "round trip in {v:?}");
    assert!(buf.is_empty());
}

/// A minimal valid 3.1.1 CONNECT body after the protocol name/level, with the given flags.
fn connect_v311(flags: u8, payload: &[u8]) -> Vec<u8> {
    raw(0x10, &cat(&[&field(b"MQTT"), &[4, flags, 0, 60], payload]))
}

fn connect_v5(flags: u8, props: &[u8], payload: &[u8]) -> Vec<u8> {
    raw(
        0x10,
        &cat(&[&field(b"MQTT"), &[5, flags, 0, 60], props, payload]),
    )
}

/// A v5 PUBLISH (QoS 0, topic `t`) with the given property bytes (length prefix included).
fn publish_v5(props: &[u8]) -> Vec<u8> {
    raw(0x30, &cat(&[&field(b"t"), props, b"x"]))
}

/// Property block: VBI length (short) plus contents.
fn props(contents: &[u8]) -> Vec<u8> {
    assert!(contents.len() < 128);
    cat(&[&[contents.len() as u8], contents])
}

fn assert_code(e: &DecodeError, code: u8) {
    assert_eq!(e.reason_code(), code, "reason code of {e:?} ({e})");
}

// ---------------------------------------------------------------------------------------------
// Sample packets: every type, every version, all properties populated for 5.0.

fn connect(v: ProtocolVersion) -> Packet {
    let v5 = v.is_v5();
    Packet::Connect(Box::new(Connect {
        protocol: v,
        clean_start: true,
        keep_alive: 30,
        client_id: bs("client-1"),
        will: Some(LastWill {
            topic: bs("will/topic"),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: if v5 {
                Properties {
                    payload_format_indicator: Some(1),
                    message_expiry_interval: Some(3600),
                    content_type: Some(bs("text/plain")),
                    response_topic: Some(bs("reply/here")),
                    correlation_data: Some(Bytes::from_static(&[0, 1, 2])),
                    will_delay_interval: Some(10),
                    user_properties: user_props(),
                    ..Properties::default()
                }
            } else {
                Properties::default()
            },
        }),
        username: Some(bs("user")),
        password: Some(Bytes::from_static(&[0xFF, 0x00, 0x7F])),
        properties: if v5 {
            Properties {
                session_expiry_interval: Some(120),
                authentication_method: Some(bs("SCRAM-SHA-1")),
                authentication_data: Some(Bytes::from_static(b"data")),
                request_problem_information: Some(0),
                request_response_information: Some(1),
                receive_maximum: Some(100),
                topic_alias_maximum: Some(10),
                user_properties: user_props(),
                maximum_packet_size: Some(1 << 20),
                ..Properties::default()
            }
        } else {
            Properties::default()
        },
    }))
}

fn connack_props() -> Properties {
    Properties {
        session_expiry_interval: Some(7),
        assigned_client_identifier: Some(bs("auto-123")),
        server_keep_alive: Some(45),
        authentication_method: Some(bs("m")),
        authentication_data: Some(Bytes::from_static(b"d")),
        response_information: Some(bs("resp/")),
        server_reference: Some(bs("other:1883")),
        reason_string: Some(bs("welcome")),
        receive_maximum: Some(65535),
        topic_alias_maximum: Some(5),
        maximum_qos: Some(1),
        retain_available: Some(0),
        user_properties: user_props(),
        maximum_packet_size: Some(65536),
        wildcard_subscription_available: Some(1),
        subscription_identifier_available: Some(0),
        shared_subscription_available: Some(1),
        ..Properties::default()
    }
}

fn ack_props() -> Properties {
    Properties {
        reason_string: Some(bs("because")),
        user_properties: user_props(),
        ..Properties::default()
    }
}

fn samples(v: ProtocolVersion) -> Vec<Packet> {
    let v5 = v.is_v5();
    let p5 = |p: Properties| if v5 { p } else { Properties::default() };
    let code5 = |c: u8| if v5 { c } else { 0 };
    let mut out = vec![
        connect(v),
        // Minimal CONNECT: empty client id, no will, no credentials.
        Packet::Connect(Box::new(Connect {
            protocol: v,
            clean_start: false,
            keep_alive: 0,
            client_id: bs(""),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        })),
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: 0,
            properties: p5(connack_props()),
        }),
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: if v5 {
                reason::NOT_AUTHORIZED
            } else {
                reason::v3::NOT_AUTHORIZED
            },
            properties: Properties::default(),
        }),
        Packet::Publish(Box::new(Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: bs("a/b/c"),
            packet_id: 7,
            payload: Bytes::from(vec![0xAB; 300]),
            properties: p5(Properties {
                payload_format_indicator: Some(0),
                message_expiry_interval: Some(99),
                content_type: Some(bs("application/json")),
                response_topic: Some(bs("r/t")),
                correlation_data: Some(Bytes::from_static(b"corr")),
                subscription_identifiers: vec![1, 127, 128, 16_384, 268_435_455],
                topic_alias: Some(3),
                user_properties: user_props(),
                ..Properties::default()
            }),
        })),
        Packet::Publish(Box::new(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: bs("x"),
            packet_id: 0,
            payload: Bytes::new(),
            properties: Properties::default(),
        })),
        Packet::Publish(Box::new(Publish {
            dup: false,
            qos: QoS::ExactlyOnce,
            retain: false,
            topic: bs("ü/$x"),
            packet_id: 65535,
            payload: Bytes::from_static(b"hello"),
            properties: Properties::default(),
        })),
    ];
    for (make, code) in [
        (Packet::PubAck as fn(PubResp) -> Packet, 0x10),
        (Packet::PubRec, 0x97),
        (Packet::PubRel, 0x92),
        (Packet::PubComp, 0x92),
    ] {
        out.push(make(PubResp {
            packet_id: 1,
            reason: 0,
            properties: Properties::default(),
        }));
        out.push(make(PubResp {
            packet_id: 2,
            reason: code5(code),
            properties: Properties::default(),
        }));
        out.push(make(PubResp {
            packet_id: 3,
            reason: 0,
            properties: p5(ack_props()),
        }));
        out.push(make(PubResp {
            packet_id: 4,
            reason: code5(code),
            properties: p5(ack_props()),
        }));
    }
    let opts = |qos, nl, rap, rh| {
        if v5 {
            SubOptions {
                qos,
                no_local: nl,
                retain_as_published: rap,
                retain_handling: rh,
            }
        } else {
            SubOptions {
                qos,
                ..SubOptions::default()
            }
        }
    };
    out.extend([
        Packet::Subscribe(Subscribe {
            packet_id: 10,
            filters: vec![
                (bs("a/+/c"), opts(QoS::AtMostOnce, true, false, 0)),
                (bs("#"), opts(QoS::AtLeastOnce, false, true, 1)),
                (
                    bs("$share/group/s/#"),
                    opts(QoS::ExactlyOnce, false, false, 2),
                ),
            ],
            properties: p5(Properties {
                subscription_identifiers: vec![42],
                user_properties: user_props(),
                ..Properties::default()
            }),
        }),
        Packet::SubAck(SubAck {
            packet_id: 10,
            reasons: if v5 {
                vec![0, 1, 2, 0x80, 0x8F, 0xA2]
            } else {
                vec![0, 1, 2, 0x80]
            },
            properties: p5(ack_props()),
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 11,
            filters: vec![bs("a/+/c"), bs("$share/g/x")],
            properties: p5(Properties {
                user_properties: user_props(),
                ..Properties::default()
            }),
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: 11,
            reasons: if v5 { vec![0x00, 0x11] } else { Vec::new() },
            properties: p5(ack_props()),
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Disconnect::default()),
    ]);
    if v5 {
        out.extend([
            Packet::Disconnect(Disconnect {
                reason: reason::DISCONNECT_WITH_WILL,
                properties: Properties::default(),
            }),
            Packet::Disconnect(Disconnect {
                reason: reason::SERVER_MOVED,
                properties: Properties {
                    session_expiry_interval: Some(0),
                    reason_string: Some(bs("moved")),
                    server_reference: Some(bs("elsewhere")),
                    user_properties: user_props(),
                    ..Properties::default()
                },
            }),
            Packet::Auth(Auth::default()),
            Packet::Auth(Auth {
                reason: reason::CONTINUE_AUTHENTICATION,
                properties: Properties {
                    authentication_method: Some(bs("SCRAM-SHA-1")),
                    authentication_data: Some(Bytes::from_static(b"challenge")),
                    reason_string: Some(bs("more")),
                    user_properties: user_props(),
                    ..Properties::default()
                },
            }),
        ]);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[test]
fn every_packet_round_trips_in_mqtt_3_1() {
    for p in samples(V31) {
        roundtrip(&p, V31);
    }
}

#[test]
fn every_packet_round_trips_in_mqtt_3_1_1() {
    for p in samples(V311) {
        roundtrip(&p, V311);
    }
}

#[test]
fn every_packet_round_trips_in_mqtt_5_with_all_properties() {
    for p in samples(V5) {
        roundtrip(&p, V5);
    }
}

#[test]
fn mqtt_3_1_connect_uses_protocol_name_mqisdp_level_3() {
    let buf = enc(&connect(V31), V31);
    assert_eq!(&buf[2..11], b"\x00\x06MQIsdp\x03");
    let buf = enc(&connect(V311), V311);
    assert_eq!(&buf[2..9], b"\x00\x04MQTT\x04");
}

#[test]
fn encoding_for_3_x_drops_properties_and_reason_codes() {
    let p = Packet::PubAck(PubResp {
        packet_id: 9,
        reason: 0x10,
        properties: ack_props(),
    });
    assert_eq!(&enc(&p, V311)[..], &[0x40, 0x02, 0x00, 0x09]);
    let d = Packet::Disconnect(Disconnect {
        reason: 0x04,
        properties: ack_props(),
    });
    assert_eq!(&enc(&d, V311)[..], &[0xE0, 0x00]);
    let u = Packet::UnsubAck(UnsubAck {
        packet_id: 9,
        reasons: vec![0x11],
        properties: ack_props(),
    });
    assert_eq!(&enc(&u, V31)[..], &[0xB0, 0x02, 0x00, 0x09]);
}

#[test]
fn v5_puback_success_without_properties_uses_short_form_mqtt_3_4_2_1() {
    let p = Packet::PubAck(PubResp {
        packet_id: 0x0102,
        ..PubResp::default()
    });
    assert_eq!(&enc(&p, V5)[..], &[0x40, 0x02, 0x01, 0x02]);
    let p = Packet::PubRel(PubResp {
        packet_id: 1,
        ..PubResp::default()
    });
    assert_eq!(&enc(&p, V5)[..], &[0x62, 0x02, 0x00, 0x01]);
}

#[test]
fn v5_normal_disconnect_and_success_auth_have_remaining_length_0() {
    assert_eq!(
        &enc(&Packet::Disconnect(Disconnect::default()), V5)[..],
        &[0xE0, 0x00]
    );
    assert_eq!(&enc(&Packet::Auth(Auth::default()), V5)[..], &[0xF0, 0x00]);
    assert_eq!(&enc(&Packet::PingReq, V5)[..], &[0xC0, 0x00]);
}

#[test]
fn encoder_drops_properties_not_allowed_in_the_packet_type() {
    // Every property set; a PUBACK may only carry reason string and user properties (2.2.2.2).
    let all = Properties {
        topic_alias: Some(1),
        subscription_identifiers: vec![5],
        will_delay_interval: Some(1),
        payload_format_indicator: Some(1),
        ..connack_props()
    };
    let p = Packet::PubAck(PubResp {
        packet_id: 1,
        reason: 0,
        properties: all,
    });
    let mut buf = enc(&p, V5);
    assert_eq!(buf.len(), encoded_len(&p, V5));
    let Some(Packet::PubAck(got)) = decode(&mut buf, Some(V5), MAX).unwrap() else {
        panic!("not a PUBACK");
    };
    assert_eq!(
        got.properties,
        Properties {
            reason_string: Some(bs("welcome")),
            user_properties: user_props(),
            ..Properties::default()
        }
    );
}

#[test]
fn encode_appends_after_existing_bytes_and_decode_reads_back_to_back_packets() {
    let mut buf = BytesMut::from(&b""[..]);
    let pkts = samples(V5);
    for p in pkts.iter().skip(2) {
        encode(p, V5, &mut buf).unwrap();
    }
    for p in pkts.iter().skip(2) {
        assert_eq!(decode(&mut buf, Some(V5), MAX).unwrap().as_ref(), Some(p));
    }
    assert!(buf.is_empty());
    assert_eq!(decode(&mut buf, Some(V5), MAX), Ok(None));
}

#[test]
fn decoded_payload_and_strings_share_the_read_buffer() {
    let p = &samples(V5)[4];
    let mut buf = enc(p, V5);
    let range = buf.as_ptr_range();
    let Some(Packet::Publish(got)) = decode(&mut buf, Some(V5), MAX).unwrap() else {
        panic!("not a PUBLISH");
    };
    assert!(range.contains(&got.payload.as_ptr()));
    assert!(range.contains(&got.topic.as_bytes().as_ptr()));
}

// ---------------------------------------------------------------------------------------------
// Streaming

#[test]
fn feeding_one_byte_at_a_time_yields_none_until_the_packet_is_complete() {
    for v in ALL_VERSIONS {
        for p in samples(v) {
            let bytes = enc(&p, v);
            let dv = if matches!(p, Packet::Connect(_)) {
                None
            } else {
                Some(v)
            };
            let mut buf = BytesMut::new();
            for (i, b) in bytes.iter().enumerate() {
                buf.extend_from_slice(&[*b]);
                let r = decode(&mut buf, dv, MAX).unwrap();
                if i + 1 < bytes.len() {
                    assert_eq!(r, None, "{p:?} after {} of {} bytes", i + 1, bytes.len());
                    assert_eq!(buf.len(), i + 1, "incomplete input is left in place");
                } else {
                    assert_eq!(r.as_ref(), Some(&p));
                    assert!(buf.is_empty());
                }
            }
        }
    }
}

#[test]
fn check_needs_the_whole_fixed_header() {
    assert_eq!(check(&[], MAX), Ok(None));
    assert_eq!(check(&[0x30], MAX), Ok(None));
    assert_eq!(check(&[0x30, 0x80], MAX), Ok(None));
    assert_eq!(check(&[0x30, 0x80, 0x01], MAX), Ok(None));
    assert_eq!(check(&[0xC0, 0x00], MAX), Ok(Some(2)));
    assert_eq!(check(&[0xC0, 0x00, 0xC0], MAX), Ok(Some(2)));
}

// ---------------------------------------------------------------------------------------------
// Fixed header and framing

#[test]
fn remaining_length_of_five_bytes_is_malformed_mqtt_1_5_5() {
    // The fourth byte still has the continuation bit: an error before any fifth byte arrives.
    let e = check(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF], MAX).unwrap_err();
    assert_eq!(e, DecodeError::RemainingLengthTooLong);
    assert_eq!(e.to_string(), "remaining length exceeds 4 bytes");
    assert_code(&e, reason::MALFORMED_PACKET);
    assert_code(
        &dec_err(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], Some(V5)),
        0x81,
    );
}

#[test]
fn non_minimal_remaining_length_is_malformed_v5_mqtt_1_5_5_1() {
    assert_code(
        &dec_err(&[0xC0, 0x80, 0x00], Some(V311)),
        reason::MALFORMED_PACKET,
    );
}

#[test]
fn packet_larger_than_maximum_is_refused_from_its_header_alone() {
    // PUBLISH announcing 16,384 bytes; only the fixed header is buffered.
    let e = check(&[0x30, 0x80, 0x80, 0x01], 1000).unwrap_err();
    assert_eq!(
        e,
        DecodeError::PacketTooLarge {
            size: 16_388,
            max: 1000
        }
    );
    assert_code(&e, reason::PACKET_TOO_LARGE);
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x01][..]);
    assert_code(&decode(&mut buf, Some(V5), 1000).unwrap_err(), 0x95);
    // The limit counts the fixed header: a 4-byte PUBACK fits in 4, not in 3.
    assert_eq!(check(&[0x40, 0x02, 0x00, 0x01], 4), Ok(Some(4)));
    assert!(check(&[0x40, 0x02], 3).is_err());
}

#[test]
fn reserved_flags_on_pubrel_are_malformed_mqtt_3_6_1_1() {
    assert_code(&dec_err(&[0x60, 0x02, 0x00, 0x01], Some(V311)), 0x81);
    assert_code(&dec_err(&[0x63, 0x02, 0x00, 0x01], Some(V5)), 0x81);
}

#[test]
fn reserved_flags_on_subscribe_are_malformed_mqtt_3_8_1_1() {
    let body = cat(&[&[0, 1], &field(b"a"), &[0]]);
    assert_code(&dec_err(&raw(0x80, &body), Some(V311)), 0x81);
    assert!(dec(&raw(0x82, &body), Some(V311)).is_ok());
}

#[test]
fn reserved_flags_on_unsubscribe_are_malformed_mqtt_3_10_1_1() {
    let body = cat(&[&[0, 1], &field(b"a")]);
    assert_code(&dec_err(&raw(0xA0, &body), Some(V311)), 0x81);
    assert!(dec(&raw(0xA2, &body), Some(V311)).is_ok());
}

#[test]
fn reserved_flags_on_other_packets_are_malformed_mqtt_2_2_2_2() {
    assert_code(&dec_err(&[0x41, 0x02, 0x00, 0x01], Some(V5)), 0x81);
    assert_code(&dec_err(&[0xC8, 0x00], Some(V5)), 0x81);
    assert_code(&dec_err(&[0xE1, 0x00], Some(V311)), 0x81);
    let mut c = enc(&connect(V311), V311);
    c[0] |= 0x01;
    assert_code(&dec_err(&c, None), 0x81);
}

#[test]
fn mqtt_3_1_dup_flag_on_pubrel_is_accepted() {
    // 3.1 set DUP on retransmitted PUBREL/SUBSCRIBE/UNSUBSCRIBE.
    assert!(dec(&[0x6A, 0x02, 0x00, 0x01], Some(V31)).is_ok());
    assert_code(&dec_err(&[0x6A, 0x02, 0x00, 0x01], Some(V311)), 0x81);
}

#[test]
fn reserved_packet_type_0_is_malformed_mqtt_2_2_1() {
    assert_code(&dec_err(&[0x00, 0x00], Some(V5)), 0x81);
}

#[test]
fn auth_before_v5_is_a_reserved_packet_type_mqtt_2_2_1() {
    assert_code(&dec_err(&[0xF0, 0x00], Some(V311)), 0x81);
}

// ---------------------------------------------------------------------------------------------
// Connection state

#[test]
fn first_packet_other_than_connect_is_protocol_error_mqtt_3_1_0_1() {
    assert_code(&dec_err(&[0xC0, 0x00], None), reason::PROTOCOL_ERROR);
}

#[test]
fn second_connect_is_protocol_error_mqtt_3_1_0_2() {
    let c = enc(&connect(V5), V5);
    assert_code(&dec_err(&c, Some(V5)), reason::PROTOCOL_ERROR);
}

// ---------------------------------------------------------------------------------------------
// CONNECT

#[test]
fn connect_determines_the_protocol_version() {
    for v in ALL_VERSIONS {
        let Packet::Connect(c) = dec_ok(&enc(&connect(v), v), None) else {
            panic!("not CONNECT");
        };
        assert_eq!(c.protocol, v);
    }
}

#[test]
fn unsupported_protocol_level_is_reported_for_connack_mqtt_3_1_2_2() {
    let e = dec_err(
        &raw(0x10, &cat(&[&field(b"MQTT"), &[6, 2, 0, 0], &field(b"")])),
        None,
    );
    assert_eq!(
        e,
        DecodeError::UnsupportedProtocolVersion {
            name: "MQTT",
            level: 6
        }
    );
    assert_code(&e, reason::UNSUPPORTED_PROTOCOL_VERSION);
    assert_eq!(e.unsupported_version_connack(), Some((V5, 0x84)));

    let e = dec_err(
        &raw(0x10, &cat(&[&field(b"MQTT"), &[3, 2, 0, 0], &field(b"")])),
        None,
    );
    assert_eq!(e.unsupported_version_connack(), Some((V311, 0x01)));
    let e = dec_err(
        &raw(0x10, &cat(&[&field(b"MQIsdp"), &[4, 2, 0, 0], &field(b"")])),
        None,
    );
    assert_eq!(
        e,
        DecodeError::UnsupportedProtocolVersion {
            name: "MQIsdp",
            level: 4
        }
    );
    assert_eq!(
        DecodeError::Malformed("x").unsupported_version_connack(),
        None
    );
}

#[test]
fn unknown_protocol_name_is_protocol_error_mqtt_3_1_2_1() {
    let e = dec_err(
        &raw(0x10, &cat(&[&field(b"HTTP"), &[4, 2, 0, 0], &field(b"")])),
        None,
    );
    assert_code(&e, reason::PROTOCOL_ERROR);
}

#[test]
fn connect_reserved_flag_is_malformed_mqtt_3_1_2_3() {
    assert_code(&dec_err(&connect_v311(0x03, &field(b"c")), None), 0x81);
}

#[test]
fn will_qos_3_is_malformed_mqtt_3_1_2_14() {
    let payload = cat(&[&field(b"c"), &field(b"w"), &field(b"p")]);
    assert_code(&dec_err(&connect_v311(0x04 | 0x18, &payload), None), 0x81);
    assert!(dec(&connect_v311(0x04 | 0x10, &payload), None).is_ok());
}

#[test]
fn will_qos_without_will_flag_is_malformed_mqtt_3_1_2_13() {
    // 5.0 numbering: [MQTT-3.1.2-11].
    assert_code(&dec_err(&connect_v311(0x08, &field(b"c")), None), 0x81);
    assert_code(&dec_err(&connect_v5(0x10, &[0], &field(b"c")), None), 0x81);
}

#[test]
fn will_retain_without_will_flag_is_malformed_mqtt_3_1_2_15() {
    // 5.0 numbering: [MQTT-3.1.2-13].
    assert_code(&dec_err(&connect_v311(0x20, &field(b"c")), None), 0x81);
    assert_code(&dec_err(&connect_v5(0x20, &[0], &field(b"c")), None), 0x81);
}

#[test]
fn password_without_username_is_malformed_in_3_1_1_mqtt_3_1_2_22() {
    let payload = cat(&[&field(b"c"), &field(b"pw")]);
    assert_code(&dec_err(&connect_v311(0x40, &payload), None), 0x81);
}

#[test]
fn password_without_username_is_allowed_in_v5() {
    let payload = cat(&[&field(b"c"), &field(b"pw")]);
    let Packet::Connect(c) = dec_ok(&connect_v5(0x40, &[0], &payload), None) else {
        panic!("not CONNECT");
    };
    assert_eq!(c.username, None);
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
}

#[test]
fn mqtt_3_1_client_id_longer_than_23_bytes_is_accepted() {
    let id = "a-client-identifier-longer-than-23-bytes";
    let body = cat(&[&field(b"MQIsdp"), &[3, 2, 0, 10], &field(id.as_bytes())]);
    let Packet::Connect(c) = dec_ok(&raw(0x10, &body), None) else {
        panic!("not CONNECT");
    };
    assert_eq!(c.protocol, V31);
    assert_eq!(&*c.client_id, id);
}

#[test]
fn will_topic_with_wildcard_is_invalid_mqtt_3_3_2_2() {
    let payload = cat(&[&field(b"c"), &field(b"w/#"), &field(b"p")]);
    assert_code(
        &dec_err(&connect_v311(0x04, &payload), None),
        reason::TOPIC_NAME_INVALID,
    );
}

#[test]
fn connect_with_missing_payload_field_is_malformed_mqtt_3_1_3() {
    // Username flag set but no user name follows.
    assert_code(&dec_err(&connect_v311(0x80, &field(b"c")), None), 0x81);
}

#[test]
fn bytes_left_over_after_connect_are_malformed() {
    let payload = cat(&[&field(b"c"), &[0xAA]]);
    assert_code(&dec_err(&connect_v311(0x02, &payload), None), 0x81);
}

// ---------------------------------------------------------------------------------------------
// CONNACK

#[test]
fn connack_reserved_flags_are_malformed_mqtt_3_2_2_1() {
    assert_code(&dec_err(&[0x20, 0x02, 0x02, 0x00], Some(V311)), 0x81);
}

#[test]
fn connack_undefined_return_code_is_protocol_error() {
    assert_code(&dec_err(&[0x20, 0x02, 0x00, 0x06], Some(V311)), 0x82);
    assert_code(&dec_err(&[0x20, 0x03, 0x00, 0x01, 0x00], Some(V5)), 0x82);
}

// ---------------------------------------------------------------------------------------------
// PUBLISH

#[test]
fn publish_qos_3_is_malformed_mqtt_3_3_1_4() {
    assert_code(
        &dec_err(&raw(0x36, &cat(&[&field(b"t"), &[0, 1]])), Some(V311)),
        0x81,
    );
}

#[test]
fn publish_dup_with_qos_0_is_malformed_mqtt_3_3_1_2() {
    assert_code(&dec_err(&raw(0x38, &field(b"t")), Some(V311)), 0x81);
}

#[test]
fn publish_qos_1_with_packet_id_0_is_protocol_error_mqtt_2_3_1_1() {
    assert_code(
        &dec_err(&raw(0x32, &cat(&[&field(b"t"), &[0, 0]])), Some(V311)),
        0x82,
    );
}

#[test]
fn publish_topic_with_wildcards_is_invalid_mqtt_3_3_2_2() {
    assert_code(&dec_err(&raw(0x30, &field(b"a/+")), Some(V311)), 0x90);
    assert_code(&dec_err(&raw(0x30, &field(b"a/#")), Some(V311)), 0x90);
    assert_code(
        &dec_err(&raw(0x30, &cat(&[&field(b"#"), &[0]])), Some(V5)),
        0x90,
    );
}

#[test]
fn publish_topic_with_null_character_is_malformed_mqtt_1_5_4_2() {
    assert_code(&dec_err(&raw(0x30, &field(b"a\0b")), Some(V311)), 0x81);
}

#[test]
fn empty_topic_without_topic_alias_is_protocol_error_v5_mqtt_3_3_2_1() {
    assert_code(
        &dec_err(&raw(0x30, &cat(&[&field(b""), &[0]])), Some(V5)),
        0x82,
    );
}

#[test]
fn empty_topic_with_topic_alias_is_allowed_v5() {
    let Packet::Publish(p) = dec_ok(
        &raw(0x30, &cat(&[&field(b""), &props(&[0x23, 0, 4])])),
        Some(V5),
    ) else {
        panic!("not PUBLISH");
    };
    assert_eq!(p.topic, "");
    assert_eq!(p.properties.topic_alias, Some(4));
}

#[test]
fn empty_topic_is_invalid_in_3_x_mqtt_4_7_3_1() {
    assert_code(&dec_err(&raw(0x30, &field(b"")), Some(V311)), 0x90);
}

#[test]
fn string_length_overrunning_the_packet_is_malformed_mqtt_1_5_4() {
    assert_code(&dec_err(&raw(0x30, &[0x00, 0x05, b'a']), Some(V311)), 0x81);
    assert_code(&dec_err(&raw(0x30, &[0x00]), Some(V311)), 0x81);
}

#[test]
fn invalid_utf8_string_is_malformed_mqtt_1_5_4_1() {
    assert_code(
        &dec_err(&raw(0x30, &field(&[0xC3, 0x28])), Some(V311)),
        0x81,
    );
    // UTF-16 surrogate halves are ill-formed UTF-8 as well.
    assert_code(
        &dec_err(&raw(0x30, &field(&[0xED, 0xA0, 0x80])), Some(V311)),
        0x81,
    );
}

#[test]
fn null_character_in_any_utf8_string_is_malformed_mqtt_1_5_4_2() {
    let payload = cat(&[&field(b"c"), &field(b"us\0er")]);
    assert_code(&dec_err(&connect_v311(0x80, &payload), None), 0x81);
}

#[test]
fn publish_payload_may_be_empty_or_binary() {
    let Packet::Publish(p) = dec_ok(&raw(0x30, &cat(&[&field(b"t"), &[0, 0xFF]])), Some(V311))
    else {
        panic!("not PUBLISH");
    };
    assert_eq!(&p.payload[..], &[0, 0xFF]);
}

// ---------------------------------------------------------------------------------------------
// Acknowledgements

#[test]
fn puback_with_packet_id_0_is_protocol_error_mqtt_2_3_1_1() {
    assert_code(&dec_err(&[0x40, 0x02, 0x00, 0x00], Some(V311)), 0x82);
    assert_code(&dec_err(&[0x62, 0x02, 0x00, 0x00], Some(V5)), 0x82);
}

#[test]
fn v5_puback_with_remaining_length_2_is_success_without_properties_mqtt_3_4_2_1() {
    let p = dec_ok(&[0x40, 0x02, 0x00, 0x05], Some(V5));
    assert_eq!(
        p,
        Packet::PubAck(PubResp {
            packet_id: 5,
            ..PubResp::default()
        })
    );
}

#[test]
fn v5_puback_with_remaining_length_3_has_a_reason_and_no_properties_mqtt_3_4_2_1() {
    let p = dec_ok(&[0x50, 0x03, 0x00, 0x05, 0x10], Some(V5));
    assert_eq!(
        p,
        Packet::PubRec(PubResp {
            packet_id: 5,
            reason: 0x10,
            properties: Properties::default(),
        })
    );
}

#[test]
fn v5_pubrel_with_undefined_reason_code_is_protocol_error() {
    assert_code(&dec_err(&[0x62, 0x03, 0x00, 0x05, 0x10], Some(V5)), 0x82);
}

#[test]
fn puback_with_extra_bytes_in_3_1_1_is_malformed() {
    assert_code(&dec_err(&[0x40, 0x03, 0x00, 0x05, 0x00], Some(V311)), 0x81);
}

#[test]
fn unsuback_in_3_x_has_no_reason_codes() {
    assert_code(&dec_err(&[0xB0, 0x03, 0x00, 0x05, 0x00], Some(V311)), 0x81);
    assert_eq!(
        dec_ok(&[0xB0, 0x02, 0x00, 0x05], Some(V31)),
        Packet::UnsubAck(UnsubAck {
            packet_id: 5,
            reasons: Vec::new(),
            properties: Properties::default(),
        })
    );
}

#[test]
fn suback_with_undefined_return_code_is_protocol_error() {
    assert_code(&dec_err(&[0x90, 0x03, 0x00, 0x05, 0x03], Some(V311)), 0x82);
    assert_code(
        &dec_err(&[0x90, 0x04, 0x00, 0x05, 0x00, 0x81], Some(V5)),
        0x82,
    );
}

// ---------------------------------------------------------------------------------------------
// SUBSCRIBE / UNSUBSCRIBE

fn subscribe(v: ProtocolVersion, filter: &[u8], opts: u8) -> Vec<u8> {
    let p: &[u8] = if v.is_v5() { &[0] } else { &[] };
    raw(0x82, &cat(&[&[0, 1], p, &field(filter), &[opts]]))
}

fn unsubscribe(v: ProtocolVersion, filter: &[u8]) -> Vec<u8> {
    let p: &[u8] = if v.is_v5() { &[0] } else { &[] };
    raw(0xA2, &cat(&[&[0, 1], p, &field(filter)]))
}

#[test]
fn subscribe_without_filters_is_protocol_error_mqtt_3_8_3_3() {
    assert_code(&dec_err(&raw(0x82, &[0, 1]), Some(V311)), 0x82);
    assert_code(&dec_err(&raw(0x82, &[0, 1, 0]), Some(V5)), 0x82);
}

#[test]
fn unsubscribe_without_filters_is_protocol_error_mqtt_3_10_3_2() {
    assert_code(&dec_err(&raw(0xA2, &[0, 1]), Some(V311)), 0x82);
    assert_code(&dec_err(&raw(0xA2, &[0, 1, 0]), Some(V5)), 0x82);
}

#[test]
fn subscribe_with_packet_id_0_is_protocol_error_mqtt_2_3_1_1() {
    assert_code(
        &dec_err(&raw(0x82, &cat(&[&[0, 0], &field(b"a"), &[0]])), Some(V311)),
        0x82,
    );
    assert_code(
        &dec_err(&raw(0xA2, &cat(&[&[0, 0], &field(b"a")])), Some(V311)),
        0x82,
    );
}

#[test]
fn multi_level_wildcard_not_last_or_not_alone_is_invalid_mqtt_4_7_1_2() {
    for f in [&b"a/#/b"[..], b"a#", b"a/b#", b"##"] {
        assert_code(
            &dec_err(&subscribe(V311, f, 0), Some(V311)),
            reason::TOPIC_FILTER_INVALID,
        );
        assert_code(
            &dec_err(&unsubscribe(V5, f), Some(V5)),
            reason::TOPIC_FILTER_INVALID,
        );
    }
}

#[test]
fn single_level_wildcard_not_alone_in_level_is_invalid_mqtt_4_7_1_3() {
    for f in [&b"a+/b"[..], b"a/+b", b"++"] {
        assert_code(
            &dec_err(&subscribe(V5, f, 0), Some(V5)),
            reason::TOPIC_FILTER_INVALID,
        );
    }
    assert!(dec(&subscribe(V5, b"+/+/#", 0), Some(V5)).is_ok());
}

#[test]
fn empty_topic_filter_is_invalid_mqtt_4_7_3_1() {
    assert_code(
        &dec_err(&subscribe(V311, b"", 0), Some(V311)),
        reason::TOPIC_FILTER_INVALID,
    );
}

#[test]
fn malformed_shared_subscription_filter_is_invalid_mqtt_4_8_2_1() {
    for f in [
        &b"$share//a"[..],
        b"$share/g+/a",
        b"$share/g#/a",
        b"$share/g/",
        b"$share/g",
    ] {
        assert_code(
            &dec_err(&subscribe(V5, f, 0), Some(V5)),
            reason::TOPIC_FILTER_INVALID,
        );
    }
    assert!(dec(&subscribe(V5, b"$share/g/a/+", 0), Some(V5)).is_ok());
}

#[test]
fn subscription_qos_3_is_malformed_mqtt_3_8_3_4() {
    assert_code(&dec_err(&subscribe(V311, b"a", 3), Some(V311)), 0x81);
    assert_code(&dec_err(&subscribe(V5, b"a", 3), Some(V5)), 0x81);
}

#[test]
fn reserved_subscription_option_bits_in_3_1_1_are_malformed_mqtt_3_8_3_4() {
    // No Local in a 3.1.1 SUBSCRIBE is a reserved bit there.
    assert_code(&dec_err(&subscribe(V311, b"a", 0x04), Some(V311)), 0x81);
}

#[test]
fn reserved_subscription_option_bits_in_v5_are_malformed_mqtt_3_8_3_5() {
    assert_code(&dec_err(&subscribe(V5, b"a", 0x40), Some(V5)), 0x81);
    assert_code(&dec_err(&subscribe(V5, b"a", 0x80), Some(V5)), 0x81);
}

#[test]
fn retain_handling_3_is_protocol_error_v5_3_8_3_1() {
    assert_code(&dec_err(&subscribe(V5, b"a", 0x30), Some(V5)), 0x82);
}

#[test]
fn no_local_on_shared_subscription_is_protocol_error_v5_mqtt_3_8_3_4() {
    assert_code(
        &dec_err(&subscribe(V5, b"$share/g/a", 0x04), Some(V5)),
        0x82,
    );
}

#[test]
fn subscribe_filter_missing_its_options_byte_is_malformed() {
    assert_code(
        &dec_err(&raw(0x82, &cat(&[&[0, 1], &field(b"a")])), Some(V311)),
        0x81,
    );
}

// ---------------------------------------------------------------------------------------------
// Bodies that must be empty

#[test]
fn pingreq_with_a_body_is_malformed() {
    assert_code(&dec_err(&[0xC0, 0x01, 0x00], Some(V311)), 0x81);
    assert_code(&dec_err(&[0xD0, 0x01, 0x00], Some(V5)), 0x81);
}

#[test]
fn disconnect_with_a_body_in_3_1_1_is_malformed() {
    assert_code(&dec_err(&[0xE0, 0x01, 0x00], Some(V311)), 0x81);
}

#[test]
fn v5_disconnect_may_omit_reason_and_properties_3_14_2() {
    assert_eq!(
        dec_ok(&[0xE0, 0x00], Some(V5)),
        Packet::Disconnect(Disconnect::default())
    );
    assert_eq!(
        dec_ok(&[0xE0, 0x01, 0x04], Some(V5)),
        Packet::Disconnect(Disconnect {
            reason: 0x04,
            properties: Properties::default()
        })
    );
    assert_code(&dec_err(&[0xE0, 0x01, 0x05], Some(V5)), 0x82);
}

// ---------------------------------------------------------------------------------------------
// 5.0 properties

#[test]
fn property_not_allowed_in_the_packet_type_is_protocol_error_v5_2_2_2_2() {
    // Topic Alias (0x23) in CONNECT.
    let e = dec_err(&connect_v5(0x02, &props(&[0x23, 0, 1]), &field(b"c")), None);
    assert_eq!(e, DecodeError::PropertyNotAllowed(0x23));
    assert_code(&e, 0x82);
    // Will Delay Interval (0x18) in PUBLISH, Reason String in PUBLISH.
    assert_code(
        &dec_err(&publish_v5(&props(&[0x18, 0, 0, 0, 1])), Some(V5)),
        0x82,
    );
    assert_code(
        &dec_err(&publish_v5(&props(&[0x1F, 0, 1, b'x'])), Some(V5)),
        0x82,
    );
    // Any property in a PUBACK but reason string / user property.
    assert_code(
        &dec_err(&raw(0x40, &[0, 1, 0, 3, 0x11, 0, 0]), Some(V5)),
        0x82,
    );
}

#[test]
fn duplicate_single_valued_property_is_protocol_error_v5_2_2_2_2() {
    let e = dec_err(
        &publish_v5(&props(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2])),
        Some(V5),
    );
    assert_eq!(e, DecodeError::DuplicateProperty(0x02));
    assert_code(&e, 0x82);
    let two_types = cat(&[&[0x03], &field(b"a"), &[0x03], &field(b"b")]);
    assert_code(&dec_err(&publish_v5(&props(&two_types)), Some(V5)), 0x82);
}

#[test]
fn user_properties_may_repeat_and_keep_their_order_v5_3_3_2_3_7() {
    let contents = cat(&[
        &[0x26],
        &field(b"k"),
        &field(b"1"),
        &[0x26],
        &field(b"k"),
        &field(b"2"),
    ]);
    let Packet::Publish(p) = dec_ok(&publish_v5(&props(&contents)), Some(V5)) else {
        panic!("not PUBLISH");
    };
    assert_eq!(
        p.properties.user_properties,
        vec![(bs("k"), bs("1")), (bs("k"), bs("2"))]
    );
}

#[test]
fn subscription_identifier_0_is_protocol_error_v5_3_3_2_3_8() {
    assert_code(&dec_err(&publish_v5(&props(&[0x0B, 0x00])), Some(V5)), 0x82);
    let sub = raw(
        0x82,
        &cat(&[&[0, 1], &props(&[0x0B, 0x00]), &field(b"a"), &[0]]),
    );
    assert_code(&dec_err(&sub, Some(V5)), 0x82);
}

#[test]
fn two_subscription_identifiers_in_subscribe_are_protocol_error_v5_3_8_2_1_2() {
    let sub = raw(
        0x82,
        &cat(&[
            &[0, 1],
            &props(&[0x0B, 0x01, 0x0B, 0x02]),
            &field(b"a"),
            &[0],
        ]),
    );
    assert_code(&dec_err(&sub, Some(V5)), 0x82);
    // ...while PUBLISH may carry several.
    let Packet::Publish(p) = dec_ok(
        &publish_v5(&props(&[0x0B, 0x01, 0x0B, 0x80, 0x01])),
        Some(V5),
    ) else {
        panic!("not PUBLISH");
    };
    assert_eq!(p.properties.subscription_identifiers, vec![1, 128]);
}

#[test]
fn non_minimal_variable_byte_integer_property_is_malformed_v5_mqtt_1_5_5_1() {
    assert_code(
        &dec_err(&publish_v5(&props(&[0x0B, 0x81, 0x00])), Some(V5)),
        0x81,
    );
}

#[test]
fn receive_maximum_0_is_protocol_error_v5_3_1_2_11_3() {
    assert_code(
        &dec_err(&connect_v5(0x02, &props(&[0x21, 0, 0]), &field(b"c")), None),
        0x82,
    );
}

#[test]
fn maximum_packet_size_0_is_protocol_error_v5_3_1_2_11_4() {
    let p = props(&[0x27, 0, 0, 0, 0]);
    assert_code(&dec_err(&connect_v5(0x02, &p, &field(b"c")), None), 0x82);
}

#[test]
fn topic_alias_0_is_protocol_error_v5_mqtt_3_3_2_8() {
    assert_code(&dec_err(&publish_v5(&props(&[0x23, 0, 0])), Some(V5)), 0x82);
}

#[test]
fn payload_format_indicator_other_than_0_or_1_is_protocol_error_v5_3_3_2_3_2() {
    assert_code(&dec_err(&publish_v5(&props(&[0x01, 2])), Some(V5)), 0x82);
}

#[test]
fn response_topic_with_wildcards_is_invalid_v5_mqtt_3_3_2_14() {
    let p = cat(&[&[0x08], &field(b"r/#")]);
    assert_code(
        &dec_err(&publish_v5(&props(&p)), Some(V5)),
        reason::TOPIC_NAME_INVALID,
    );
}

#[test]
fn authentication_data_without_method_is_protocol_error_v5_3_1_2_11_10() {
    let p = cat(&[&[0x16], &field(b"d")]);
    assert_code(
        &dec_err(&connect_v5(0x02, &props(&p), &field(b"c")), None),
        0x82,
    );
}

#[test]
fn property_length_overrunning_the_packet_is_malformed_v5_2_2_2_1() {
    assert_code(&dec_err(&publish_v5(&[0x05, 0x01, 0x00]), Some(V5)), 0x81);
    // A property value cut short by its own property length.
    assert_code(&dec_err(&publish_v5(&props(&[0x02, 0, 0])), Some(V5)), 0x81);
}

#[test]
fn unknown_property_identifier_is_malformed_v5_2_2_2_2() {
    let e = dec_err(&publish_v5(&props(&[0x04, 0])), Some(V5));
    assert_eq!(e, DecodeError::UnknownProperty(0x04));
    assert_code(&e, 0x81);
}

// ---------------------------------------------------------------------------------------------
// Encode errors

#[test]
fn encode_rejects_remaining_length_above_268_435_455() {
    // calloc'd zero pages: large but never touched because encode fails before writing.
    let p = Packet::Publish(Box::new(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: bs("t"),
        packet_id: 0,
        payload: Bytes::from(vec![0u8; 268_435_455]),
        properties: Properties::default(),
    }));
    let mut out = BytesMut::from(&b"keep"[..]);
    assert!(matches!(
        encode(&p, V311, &mut out),
        Err(EncodeError::PacketTooLarge(_))
    ));
    assert_eq!(&out[..], b"keep", "nothing appended on error");
}

#[test]
fn encode_rejects_string_longer_than_65535_bytes() {
    let p = Packet::Unsubscribe(Unsubscribe {
        packet_id: 1,
        filters: vec![ByteString::from("a".repeat(65_536))],
        properties: Properties::default(),
    });
    let mut out = BytesMut::new();
    assert_eq!(
        encode(&p, V5, &mut out),
        Err(EncodeError::FieldTooLong("topic filter"))
    );
    assert!(out.is_empty());
}

#[test]
fn encode_rejects_qos_1_publish_with_packet_id_0() {
    let p = Packet::Publish(Box::new(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: bs("t"),
        packet_id: 0,
        payload: Bytes::new(),
        properties: Properties::default(),
    }));
    assert!(matches!(
        encode(&p, V5, &mut BytesMut::new()),
        Err(EncodeError::InvalidValue(_))
    ));
}

#[test]
fn encode_rejects_auth_before_v5() {
    let mut out = BytesMut::new();
    assert_eq!(
        encode(&Packet::Auth(Auth::default()), V311, &mut out),
        Err(EncodeError::UnsupportedInVersion("AUTH"))
    );
}

#[test]
fn encode_rejects_subscription_identifier_out_of_range() {
    let p = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![(bs("a"), SubOptions::default())],
        properties: Properties {
            subscription_identifiers: vec![268_435_456],
            ..Properties::default()
        },
    });
    assert!(matches!(
        encode(&p, V5, &mut BytesMut::new()),
        Err(EncodeError::InvalidValue(_))
    ));
}

#[test]
fn encode_drops_dup_on_qos_0_publish() {
    let p = Packet::Publish(Box::new(Publish {
        dup: true,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: bs("t"),
        packet_id: 0,
        payload: Bytes::new(),
        properties: Properties::default(),
    }));
    assert_eq!(enc(&p, V311)[0], 0x30);
}

// ---------------------------------------------------------------------------------------------
// Topic helpers

#[test]
fn topic_name_validity() {
    assert!(is_valid_topic_name("a/b"));
    assert!(is_valid_topic_name("/"));
    assert!(is_valid_topic_name("$SYS/x"));
    assert!(!is_valid_topic_name(""));
    assert!(!is_valid_topic_name("a/+"));
    assert!(!is_valid_topic_name("#"));
    assert!(!is_valid_topic_name("a\0"));
}

#[test]
fn topic_filter_validity() {
    for ok in [
        "#",
        "+",
        "a/#",
        "+/+",
        "/+",
        "a//b",
        "sport/tennis/#",
        "$share/g/#",
        "$SYS/#",
        "$share",
    ] {
        assert!(is_valid_topic_filter(ok), "{ok}");
    }
    for bad in [
        "",
        "a/#/b",
        "a#",
        "a+",
        "+a/b",
        "$share/",
        "$share//x",
        "$share/g",
        "$share/g/",
        "$share/+/x",
    ] {
        assert!(!is_valid_topic_filter(bad), "{bad}");
    }
}

#[test]
fn split_shared_returns_group_and_filter() {
    assert_eq!(split_shared("$share/g/a/b"), Some(("g", "a/b")));
    assert_eq!(split_shared("$share/g/#"), Some(("g", "#")));
    assert_eq!(split_shared("$share/g"), None);
    assert_eq!(split_shared("a/b"), None);
}

#[test]
fn has_wildcards_detects_plus_and_hash() {
    assert!(has_wildcards("a/+"));
    assert!(has_wildcards("#"));
    assert!(!has_wildcards("a/b"));
}

#[test]
fn topic_matching_follows_section_4_7() {
    let cases = [
        ("sport/#", "sport", true),
        ("sport/#", "sport/tennis/player1", true),
        ("sport/tennis/#", "sport/tennis", true),
        ("#", "a/b/c", true),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("sport/+/player1", "sport/tennis/player1", true),
        ("sport/+/player1", "sport/tennis/x/player1", false),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("a/b", "a/b", true),
        ("a/b", "a/b/c", false),
        ("a/b/c", "a/b", false),
        ("A", "a", false),
    ];
    for (f, t, want) in cases {
        assert_eq!(matches(f, t), want, "{f} vs {t}");
    }
}

#[test]
fn wildcard_first_filters_do_not_match_dollar_topics_mqtt_4_7_2_1() {
    assert!(!matches("#", "$SYS/uptime"));
    assert!(!matches("+/uptime", "$SYS/uptime"));
    assert!(matches("$SYS/#", "$SYS/uptime"));
    assert!(matches("$SYS/+", "$SYS/uptime"));
}

// ---------------------------------------------------------------------------------------------
// Property-based round trips

fn arb_string() -> impl Strategy<Value = ByteString> {
    "\\PC{0,12}".prop_map(ByteString::from)
}

fn arb_topic() -> impl Strategy<Value = ByteString> {
    "[a-z0-9$ü]{1,6}(/[a-z0-9]{0,6}){0,4}".prop_map(ByteString::from)
}

fn arb_filter() -> impl Strategy<Value = ByteString> {
    prop_oneof![
        arb_topic(),
        "([a-z]{1,4}|\\+)(/([a-z]{1,4}|\\+)){0,3}(/#)?".prop_map(ByteString::from),
        Just(ByteString::from("#")),
        "\\$share/[a-z]{1,5}/[a-z+]{1,1}(/#)?".prop_map(ByteString::from),
    ]
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn arb_user_props() -> impl Strategy<Value = Vec<(ByteString, ByteString)>> {
    proptest::collection::vec((arb_string(), arb_string()), 0..3)
}

fn arb_qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn arb_bool_byte() -> impl Strategy<Value = Option<u8>> {
    proptest::option::of(0u8..=1)
}

/// Properties a PUBLISH or will may carry.
fn arb_message_props(publish: bool) -> impl Strategy<Value = Properties> {
    (
        arb_bool_byte(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(arb_string()),
        proptest::option::of(arb_topic()),
        proptest::option::of(arb_bytes(16)),
        proptest::collection::vec(1u32..=268_435_455, 0..3),
        proptest::option::of(1u16..),
        proptest::option::of(any::<u32>()),
        arb_user_props(),
    )
        .prop_map(
            move |(pfi, exp, ct, rt, cd, sids, alias, delay, up)| Properties {
                payload_format_indicator: pfi,
                message_expiry_interval: exp,
                content_type: ct,
                response_topic: rt,
                correlation_data: cd,
                subscription_identifiers: if publish { sids } else { Vec::new() },
                topic_alias: if publish { alias } else { None },
                will_delay_interval: if publish { None } else { delay },
                user_properties: up,
                ..Properties::default()
            },
        )
}

/// Properties a CONNACK may carry: the largest set of any packet.
fn arb_connack_props() -> impl Strategy<Value = Properties> {
    (
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(arb_string()),
            proptest::option::of(any::<u16>()),
            proptest::option::of(arb_string()),
            proptest::option::of(arb_bytes(8)),
            proptest::option::of(arb_string()),
            proptest::option::of(arb_string()),
            proptest::option::of(arb_string()),
        ),
        (
            proptest::option::of(1u16..),
            proptest::option::of(any::<u16>()),
            arb_bool_byte(),
            arb_bool_byte(),
            arb_user_props(),
            proptest::option::of(1u32..),
            arb_bool_byte(),
            arb_bool_byte(),
            arb_bool_byte(),
        ),
    )
        .prop_map(
            |((sei, aci, ska, am, ad, ri, sr, rs), (rm, tam, mq, ra, up, mps, wsa, sia, ssa))| {
                Properties {
                    session_expiry_interval: sei,
                    assigned_client_identifier: aci,
                    server_keep_alive: ska,
                    // Authentication data needs a method to be valid.
                    authentication_method: am.or_else(|| ad.as_ref().map(|_| bs("m"))),
                    authentication_data: ad,
                    response_information: ri,
                    server_reference: sr,
                    reason_string: rs,
                    receive_maximum: rm,
                    topic_alias_maximum: tam,
                    maximum_qos: mq,
                    retain_available: ra,
                    user_properties: up,
                    maximum_packet_size: mps,
                    wildcard_subscription_available: wsa,
                    subscription_identifier_available: sia,
                    shared_subscription_available: ssa,
                    ..Properties::default()
                }
            },
        )
}

fn arb_connect_props() -> impl Strategy<Value = Properties> {
    (
        proptest::option::of(any::<u32>()),
        proptest::option::of(arb_string()),
        proptest::option::of(arb_bytes(8)),
        arb_bool_byte(),
        arb_bool_byte(),
        proptest::option::of(1u16..),
        proptest::option::of(any::<u16>()),
        arb_user_props(),
        proptest::option::of(1u32..),
    )
        .prop_map(|(sei, am, ad, rpi, rri, rm, tam, up, mps)| Properties {
            session_expiry_interval: sei,
            authentication_method: am.or_else(|| ad.as_ref().map(|_| bs("m"))),
            authentication_data: ad,
            request_problem_information: rpi,
            request_response_information: rri,
            receive_maximum: rm,
            topic_alias_maximum: tam,
            user_properties: up,
            maximum_packet_size: mps,
            ..Properties::default()
        })
}

fn arb_version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![Just(V31), Just(V311), Just(V5)]
}

fn arb_publish(v: ProtocolVersion) -> impl Strategy<Value = Publish> {
    (
        arb_qos(),
        any::<bool>(),
        any::<bool>(),
        arb_topic(),
        1u16..,
        arb_bytes(512),
        arb_message_props(true),
    )
        .prop_map(move |(qos, dup, retain, topic, id, payload, props)| {
            let q0 = qos == QoS::AtMostOnce;
            Publish {
                dup: dup && !q0,
                qos,
                retain,
                topic,
                packet_id: if q0 { 0 } else { id },
                payload,
                properties: if v.is_v5() {
                    props
                } else {
                    Properties::default()
                },
            }
        })
}

fn arb_subscribe(v: ProtocolVersion) -> impl Strategy<Value = Subscribe> {
    let opts = (arb_qos(), any::<bool>(), any::<bool>(), 0u8..=2);
    (
        1u16..,
        proptest::collection::vec((arb_filter(), opts), 1..5),
        proptest::option::of(1u32..=268_435_455),
        arb_user_props(),
    )
        .prop_map(move |(packet_id, filters, sid, up)| Subscribe {
            packet_id,
            filters: filters
                .into_iter()
                .map(|(f, (qos, nl, rap, rh))| {
                    let o = if v.is_v5() {
                        SubOptions {
                            qos,
                            // No Local is forbidden on shared subscriptions.
                            no_local: nl && split_shared(&f).is_none(),
                            retain_as_published: rap,
                            retain_handling: rh,
                        }
                    } else {
                        SubOptions {
                            qos,
                            ..SubOptions::default()
                        }
                    };
                    (f, o)
                })
                .collect(),
            properties: if v.is_v5() {
                Properties {
                    subscription_identifiers: sid.into_iter().collect(),
                    user_properties: up,
                    ..Properties::default()
                }
            } else {
                Properties::default()
            },
        })
}

fn arb_connect(v: ProtocolVersion) -> impl Strategy<Value = Connect> {
    let will = (
        arb_topic(),
        arb_bytes(64),
        arb_qos(),
        any::<bool>(),
        arb_message_props(false),
    );
    (
        any::<bool>(),
        any::<u16>(),
        "[a-zA-Z0-9-]{0,40}",
        proptest::option::of(will),
        proptest::option::of(arb_string()),
        proptest::option::of(arb_bytes(16)),
        arb_connect_props(),
    )
        .prop_map(move |(clean, ka, id, will, user, pass, props)| {
            let v5 = v.is_v5();
            Connect {
                protocol: v,
                clean_start: clean,
                keep_alive: ka,
                client_id: ByteString::from(id),
                will: will.map(|(topic, payload, qos, retain, wp)| LastWill {
                    topic,
                    payload,
                    qos,
                    retain,
                    properties: if v5 { wp } else { Properties::default() },
                }),
                // Before 5.0 a password needs a user name [MQTT-3.1.2-22].
                username: if v5 || pass.is_none() {
                    user
                } else {
                    user.or_else(|| Some(bs("u")))
                },
                password: pass,
                properties: if v5 { props } else { Properties::default() },
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn publish_round_trips((v, p) in arb_version().prop_flat_map(|v| (Just(v), arb_publish(v)))) {
        roundtrip(&Packet::Publish(Box::new(p)), v);
    }

    #[test]
    fn subscribe_round_trips((v, s) in arb_version().prop_flat_map(|v| (Just(v), arb_subscribe(v)))) {
        roundtrip(&Packet::Subscribe(s), v);
    }

    #[test]
    fn connect_round_trips((v, c) in arb_version().prop_flat_map(|v| (Just(v), arb_connect(v)))) {
        roundtrip(&Packet::Connect(Box::new(c)), v);
    }

    #[test]
    fn connack_properties_round_trip(props in arb_connack_props(), present in any::<bool>()) {
        roundtrip(&Packet::ConnAck(ConnAck { session_present: present, code: 0, properties: props }), V5);
    }

    #[test]
    fn ack_properties_round_trip(
        id in 1u16..,
        reason_string in proptest::option::of(arb_string()),
        up in arb_user_props(),
        reason in prop_oneof![Just(0u8), Just(0x10), Just(0x80), Just(0x97)],
    ) {
        let properties = Properties { reason_string, user_properties: up, ..Properties::default() };
        roundtrip(&Packet::PubAck(PubResp { packet_id: id, reason, properties }), V5);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        v in proptest::option::of(arb_version()),
    ) {
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = decode(&mut buf, v, MAX);
    }

    #[test]
    fn decode_never_panics_on_corrupted_valid_packets(
        (v, p) in arb_version().prop_flat_map(|v| (Just(v), arb_publish(v))),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = enc(&Packet::Publish(Box::new(p)), v).to_vec();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = decode(&mut buf, Some(v), MAX);
    }
}

#[test]
fn encode_publish_from_parts_decodes_to_the_same_publish() {
    let mut props = Properties::default();
    props.content_type = Some(ByteString::from_static("text/plain"));
    props.user_properties = vec![(ByteString::from_static("k"), ByteString::from_static("v"))];
    for v in [V31, V311, V5] {
        let parts = PublishParts {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: "a/b",
            packet_id: 7,
            payload: b"hello",
            properties: Some(&props),
            message_expiry: Some(30),
            topic_alias: Some(3),
            subscription_ids: &[1, 300],
        };
        let mut out = BytesMut::new();
        let n = encode_publish(&parts, v, u32::MAX, &mut out).unwrap();
        assert_eq!(n, out.len());
        let Some(Packet::Publish(p)) = decode(&mut out, Some(v), MAX).unwrap() else { panic!("not a publish") };
        assert_eq!((p.dup, p.qos, p.retain, p.packet_id), (true, QoS::AtLeastOnce, true, 7));
        assert_eq!((&p.topic[..], &p.payload[..]), ("a/b", &b"hello"[..]));
        if v == V5 {
            assert_eq!(p.properties.content_type, props.content_type);
            assert_eq!(p.properties.user_properties, props.user_properties);
            assert_eq!(p.properties.message_expiry_interval, Some(30));
            assert_eq!(p.properties.topic_alias, Some(3));
            assert_eq!(p.properties.subscription_identifiers, vec![1, 300]);
        } else {
            assert_eq!(p.properties, Properties::default());
        }
    }
}

#[test]
fn encode_publish_refuses_a_packet_above_the_receivers_maximum_mqtt_3_1_2_24() {
    let parts = PublishParts {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t",
        packet_id: 0,
        payload: &[0u8; 100],
        properties: None,
        message_expiry: None,
        topic_alias: None,
        subscription_ids: &[],
    };
    let mut out = BytesMut::new();
    assert!(matches!(encode_publish(&parts, V5, 64, &mut out), Err(EncodeError::PacketTooLarge(_))));
    assert!(out.is_empty());
    assert!(encode_publish(&parts, V5, 200, &mut out).is_ok());
}
