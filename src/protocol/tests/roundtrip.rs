//! Round trips of the sample packets in every version; what encoding leaves out for older
//! versions or packet types that may not carry it; several packets in one buffer.

use super::*;

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
