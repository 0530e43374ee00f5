//! Decoding from a stream: a packet fed a byte at a time, and `check` before the fixed header is
//! whole.

use super::*;

#[test]
fn feeding_one_byte_at_a_time_yields_none_until_the_packet_is_complete() {
    for v in ALL_VERSIONS {
        for p in samples(v) {
            let bytes = enc(&p, v);
            let dv = if matches!(p, Packet::Connect(_)) {
                None
            } else {
                Some(v)
            };
            let mut buf = BytesMut::new();
            for (i, b) in bytes.iter().enumerate() {
                buf.extend_from_slice(&[*b]);
                let r = decode(&mut buf, dv, MAX).unwrap();
                if i + 1 < bytes.len() {
                    assert_eq!(r, None, "{p:?} after {} of {} bytes", i + 1, bytes.len());
                    assert_eq!(buf.len(), i + 1, "incomplete input is left in place");
                } else {
                    assert_eq!(r.as_ref(), Some(&p));
                    assert!(buf.is_empty());
                }
            }
        }
    }
}

#[test]
fn check_needs_the_whole_fixed_header() {
    assert_eq!(check(&[], MAX), Ok(None));
    assert_eq!(check(&[0x30], MAX), Ok(None));
    assert_eq!(check(&[0x30, 0x80], MAX), Ok(None));
    assert_eq!(check(&[0x30, 0x80, 0x01], MAX), Ok(None));
    assert_eq!(check(&[0xC0, 0x00], MAX), Ok(Some(2)));
    assert_eq!(check(&[0xC0, 0x00, 0xC0], MAX), Ok(Some(2)));
}
