//! CONNECT as the tests build it: protocol version, session flags, keep alive, will and
//! properties.

use super::props::{pid, props_bytes, Prop};
use super::wire::{frame, mqtt_str, Ver};

/// A will message.
#[derive(Debug, Clone)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub props: Vec<Prop>,
}

impl Will {
    pub fn new(topic: &str, payload: &[u8], qos: u8) -> Will {
        Will { topic: topic.into(), payload: payload.into(), qos, retain: false, props: Vec::new() }
    }
}

/// CONNECT options.
#[derive(Debug, Clone)]
pub struct Opts {
    pub ver: Ver,
    pub client_id: String,
    pub clean: bool,
    pub keep_alive: u16,
    pub will: Option<Will>,
    pub props: Vec<Prop>,
}

impl Opts {
    /// Clean session/start, keep alive 30 s, no will, no properties.
    pub fn new(ver: Ver, client_id: &str) -> Opts {
        Opts { ver, client_id: client_id.into(), clean: true, keep_alive: 30, will: None, props: Vec::new() }
    }
    pub fn clean(mut self, clean: bool) -> Opts {
        self.clean = clean;
        self
    }
    pub fn keep_alive(mut self, secs: u16) -> Opts {
        self.keep_alive = secs;
        self
    }
    pub fn will(mut self, w: Will) -> Opts {
        self.will = Some(w);
        self
    }
    pub fn prop(mut self, p: Prop) -> Opts {
        self.props.push(p);
        self
    }
    /// v5 session expiry interval.
    pub fn expiry(self, secs: u32) -> Opts {
        self.prop(Prop::U32(pid::SESSION_EXPIRY, secs))
    }

    /// The encoded CONNECT packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let (name, level): (&[u8], u8) = match self.ver {
            Ver::V31 => (b"MQIsdp", 3),
            Ver::V311 => (b"MQTT", 4),
            Ver::V5 => (b"MQTT", 5),
        };
        mqtt_str(name, &mut body);
        body.push(level);
        let mut flags = 0u8;
        if self.clean {
            flags |= 0x02;
        }
        if let Some(w) = &self.will {
            flags |= 0x04 | (w.qos << 3);
            if w.retain {
                flags |= 0x20;
            }
        }
        body.push(flags);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        if self.ver.is_v5() {
            props_bytes(&self.props, &mut body);
        }
        mqtt_str(self.client_id.as_bytes(), &mut body);
        if let Some(w) = &self.will {
            if self.ver.is_v5() {
                props_bytes(&w.props, &mut body);
            }
            mqtt_str(w.topic.as_bytes(), &mut body);
            mqtt_str(&w.payload, &mut body);
        }
        frame(0x10, &body)
    }
}
