//! Property-based round trips of generated packets, and decoding arbitrary or corrupted bytes.

use proptest::prelude::*;

use super::*;
use crate::protocol::topic::split_shared;

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
