//! PUBLISH: QoS and DUP flags, topic names, strings and the payload.

use super::*;

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
