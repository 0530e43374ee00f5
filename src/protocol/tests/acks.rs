//! PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.

use super::*;

#[test]
fn puback_with_packet_id_0_is_protocol_error_mqtt_2_3_1_1() {
    assert_code(&dec_err(&[0x40, 0x02, 0x00, 0x00], Some(V311)), 0x82);
    assert_code(&dec_err(&[0x62, 0x02, 0x00, 0x00], Some(V5)), 0x82);
}

#[test]
fn v5_puback_with_remaining_length_2_is_success_without_properties_mqtt_3_4_2_1() {
    let p = dec_ok(&[0x40, 0x02, 0x00, 0x05], Some(V5));
    assert_eq!(
        p,
        Packet::PubAck(PubResp {
            packet_id: 5,
            ..PubResp::default()
        })
    );
}

#[test]
fn v5_puback_with_remaining_length_3_has_a_reason_and_no_properties_mqtt_3_4_2_1() {
    let p = dec_ok(&[0x50, 0x03, 0x00, 0x05, 0x10], Some(V5));
    assert_eq!(
        p,
        Packet::PubRec(PubResp {
            packet_id: 5,
            reason: 0x10,
            properties: Properties::default(),
        })
    );
}

#[test]
fn v5_pubrel_with_undefined_reason_code_is_protocol_error() {
    assert_code(&dec_err(&[0x62, 0x03, 0x00, 0x05, 0x10], Some(V5)), 0x82);
}

#[test]
fn puback_with_extra_bytes_in_3_1_1_is_malformed() {
    assert_code(&dec_err(&[0x40, 0x03, 0x00, 0x05, 0x00], Some(V311)), 0x81);
}

#[test]
fn unsuback_in_3_x_has_no_reason_codes() {
    assert_code(&dec_err(&[0xB0, 0x03, 0x00, 0x05, 0x00], Some(V311)), 0x81);
    assert_eq!(
        dec_ok(&[0xB0, 0x02, 0x00, 0x05], Some(V31)),
        Packet::UnsubAck(UnsubAck {
            packet_id: 5,
            reasons: Vec::new(),
            properties: Properties::default(),
        })
    );
}

#[test]
fn suback_with_undefined_return_code_is_protocol_error() {
    assert_code(&dec_err(&[0x90, 0x03, 0x00, 0x05, 0x03], Some(V311)), 0x82);
    assert_code(
        &dec_err(&[0x90, 0x04, 0x00, 0x05, 0x00, 0x81], Some(V5)),
        0x82,
    );
}
