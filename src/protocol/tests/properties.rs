//! 5.0 properties: where each may appear, duplicates, value ranges and malformed blocks.

use super::*;

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
