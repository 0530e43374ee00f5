//! SUBSCRIBE and UNSUBSCRIBE: filters, wildcards, shared subscriptions and options.

use super::*;

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
