//! Packets whose body must be empty (PINGREQ, 3.x DISCONNECT) or may be shortened (v5 DISCONNECT).

use super::*;

#[test]
fn pingreq_with_a_body_is_malformed() {
    assert_code(&dec_err(&[0xC0, 0x01, 0x00], Some(V311)), 0x81);
    assert_code(&dec_err(&[0xD0, 0x01, 0x00], Some(V5)), 0x81);
}

#[test]
fn disconnect_with_a_body_in_3_1_1_is_malformed() {
    assert_code(&dec_err(&[0xE0, 0x01, 0x00], Some(V311)), 0x81);
}

#[test]
fn v5_disconnect_may_omit_reason_and_properties_3_14_2() {
    assert_eq!(
        dec_ok(&[0xE0, 0x00], Some(V5)),
        Packet::Disconnect(Disconnect::default())
    );
    assert_eq!(
        dec_ok(&[0xE0, 0x01, 0x04], Some(V5)),
        Packet::Disconnect(Disconnect {
            reason: 0x04,
            properties: Properties::default()
        })
    );
    assert_code(&dec_err(&[0xE0, 0x01, 0x05], Some(V5)), 0x82);
}
