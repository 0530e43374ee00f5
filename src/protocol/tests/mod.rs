//! Codec tests: round trips of every packet in every version, property-based round trips, streaming,
//! and one test per malformed-input rule, named after the behaviour and the spec statement it checks
//! (3.1.1 numbering unless the name says `v5`). One file per packet family or concern; the helpers
//! and the sample packets they share are here.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use super::reason;
use super::*;

mod roundtrip;
mod streaming;
mod framing;
mod connect;
mod publish;
mod acks;
mod subscribe;
mod empty_bodies;
mod properties;
mod encode_errors;
mod topic;
mod proptests;
mod encode_publish;

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
