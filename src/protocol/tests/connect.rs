//! CONNECT as the first and only connect packet, its variable header and payload, and CONNACK.

use super::*;

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
