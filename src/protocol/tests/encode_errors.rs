//! What the encoder refuses to write (oversized packets and strings, packet id 0, AUTH before 5.0,
//! subscription identifiers out of range), and the DUP flag it drops on QoS 0.

use super::*;

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
