//! The fixed header: remaining length, the size limit, reserved flags and packet types.

use super::*;

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
