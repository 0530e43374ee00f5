//! MQTT 5.0 properties: the ones the tests send, encoded, and the ones the broker sends, decoded
//! with typed getters.

use bytes::Buf;

use super::wire::{mqtt_str, take_bin, take_str, take_u16, take_varint, varint};

/// One v5 property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    Byte(u8, u8),
    U16(u8, u16),
    U32(u8, u32),
    Var(u8, u32),
    Str(u8, String),
    Bin(u8, Vec<u8>),
    User(String, String),
}

/// Property identifiers used by the tests.
pub mod pid {
    pub const PAYLOAD_FORMAT: u8 = 0x01;
    pub const MESSAGE_EXPIRY: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_ID: u8 = 0x0B;
    pub const SESSION_EXPIRY: u8 = 0x11;
    pub const ASSIGNED_CLIENT_ID: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const WILL_DELAY: u8 = 0x18;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
}

impl Prop {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Prop::Byte(id, v) => {
                out.push(*id);
                out.push(*v);
            }
            Prop::U16(id, v) => {
                out.push(*id);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Prop::U32(id, v) => {
                out.push(*id);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Prop::Var(id, v) => {
                out.push(*id);
                varint(*v as usize, out);
            }
            Prop::Str(id, s) => {
                out.push(*id);
                mqtt_str(s.as_bytes(), out);
            }
            Prop::Bin(id, b) => {
                out.push(*id);
                mqtt_str(b, out);
            }
            Prop::User(k, v) => {
                out.push(pid::USER_PROPERTY);
                mqtt_str(k.as_bytes(), out);
                mqtt_str(v.as_bytes(), out);
            }
        }
    }
}

/// Encodes a property list with its length prefix.
pub fn props_bytes(props: &[Prop], out: &mut Vec<u8>) {
    let mut body = Vec::new();
    for p in props {
        p.encode(&mut body);
    }
    varint(body.len(), out);
    out.extend_from_slice(&body);
}

/// Decoded properties with typed getters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props(pub Vec<Prop>);

impl Props {
    pub fn byte(&self, id: u8) -> Option<u8> {
        self.0.iter().find_map(|p| match p {
            Prop::Byte(i, v) if *i == id => Some(*v),
            _ => None,
        })
    }
    pub fn u16(&self, id: u8) -> Option<u16> {
        self.0.iter().find_map(|p| match p {
            Prop::U16(i, v) if *i == id => Some(*v),
            _ => None,
        })
    }
    pub fn u32(&self, id: u8) -> Option<u32> {
        self.0.iter().find_map(|p| match p {
            Prop::U32(i, v) if *i == id => Some(*v),
            _ => None,
        })
    }
    pub fn vars(&self, id: u8) -> Vec<u32> {
        self.0
            .iter()
            .filter_map(|p| match p {
                Prop::Var(i, v) if *i == id => Some(*v),
                _ => None,
            })
            .collect()
    }
    pub fn str(&self, id: u8) -> Option<&str> {
        self.0.iter().find_map(|p| match p {
            Prop::Str(i, v) if *i == id => Some(v.as_str()),
            _ => None,
        })
    }
    pub fn bin(&self, id: u8) -> Option<&[u8]> {
        self.0.iter().find_map(|p| match p {
            Prop::Bin(i, v) if *i == id => Some(v.as_slice()),
            _ => None,
        })
    }
    pub fn users(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter_map(|p| match p {
                Prop::User(k, v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }
}

pub(super) fn take_props(b: &mut &[u8]) -> Result<Props, String> {
    let len = take_varint(b)?;
    if b.len() < len {
        return Err("truncated properties".into());
    }
    let mut p = &b[..len];
    b.advance(len);
    let mut out = Vec::new();
    while !p.is_empty() {
        let id = p.get_u8();
        let prop = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => {
                if p.is_empty() {
                    return Err("truncated byte property".into());
                }
                Prop::Byte(id, p.get_u8())
            }
            0x13 | 0x21 | 0x22 | 0x23 => Prop::U16(id, take_u16(&mut p)?),
            0x02 | 0x11 | 0x18 | 0x27 => {
                if p.len() < 4 {
                    return Err("truncated u32 property".into());
                }
                Prop::U32(id, p.get_u32())
            }
            0x0B => Prop::Var(id, take_varint(&mut p)? as u32),
            0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => Prop::Str(id, take_str(&mut p)?),
            0x09 | 0x16 => Prop::Bin(id, take_bin(&mut p)?),
            0x26 => Prop::User(take_str(&mut p)?, take_str(&mut p)?),
            other => return Err(format!("unknown property 0x{other:02x} from broker")),
        };
        out.push(prop);
    }
    Ok(Props(out))
}
