//! `encode_publish`, which writes a PUBLISH from borrowed parts without building a packet.

use super::*;

#[test]
fn encode_publish_from_parts_decodes_to_the_same_publish() {
    let props = Properties {
        content_type: Some(ByteString::from_static("text/plain")),
        user_properties: vec![(ByteString::from_static("k"), ByteString::from_static("v"))],
        ..Properties::default()
    };
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
