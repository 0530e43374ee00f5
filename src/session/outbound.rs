//! Broker → client message flow: delivery, QoS 1/2 acknowledgements, redelivery and aliases.

use std::sync::Arc;
use std::time::Instant;

use crate::broker::message::Message;
use crate::config::Limits;
use crate::protocol::{encode_publish, Packet, PubResp, PublishParts, QoS};

use super::ledger::DropReason;
use super::queue::{OutFlight, QueuedMessage};
use super::Session;

/// Where an outgoing QoS 1/2 message is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutState {
    /// QoS 1 sent, waiting for PUBACK.
    AwaitPubAck,
    /// QoS 2 sent, waiting for PUBREC.
    AwaitPubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    AwaitPubComp,
}

/// One message to hand to a session.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The message.
    pub msg: &'a Arc<Message>,
    /// Granted QoS: the lower of the message's and the subscription's.
    pub qos: QoS,
    /// Retain flag to send (retain-as-published, or set for retained replays).
    pub retain: bool,
    /// v5 subscription identifiers of every matching subscription [MQTT-3.3.4-3].
    pub sub_ids: &'a [u32],
}

impl Session {
    /// Delivers a message: sends it now when connected and the window allows, queues QoS 1/2
    /// otherwise, and drops (counting) what cannot be kept. Returns true when a connected client
    /// has fallen behind (its queue is half full): publishers should then slow down rather than
    /// let the queue overflow.
    pub fn deliver(&mut self, d: Delivery<'_>, limits: &Limits, now: Instant) -> bool {
        if d.msg.remaining_expiry(now).is_err() {
            self.drop_message(DropReason::Expired);
            return false;
        }
        if d.qos == QoS::AtMostOnce {
            // QoS 0 is neither queued offline nor kept beyond the output buffer for a slow reader;
            // from half a buffer on, publishers are paced (briefly) so that it rarely comes to that.
            if self.connected && self.unsent() < limits.max_output_buffer {
                self.write_publish(d.msg, QoS::AtMostOnce, d.retain, 0, false, d.sub_ids, now);
            } else if self.connected {
                self.drop_message(DropReason::SlowReader);
            } else {
                self.drop_message(DropReason::Offline);
            }
            return self.is_congested(limits);
        }
        let item = QueuedMessage { msg: d.msg.clone(), qos: d.qos, retain: d.retain, sub_ids: d.sub_ids.to_vec() };
        if self.connected && self.inflight.queued() == 0 && self.window_has_room() {
            self.send_new(item, now);
        } else if let Err(reason) = self.inflight.enqueue(item, limits) {
            self.drop_message(reason);
        }
        self.is_congested(limits)
    }

    /// Whether a connected client has fallen behind: its queue or its unsent output has reached
    /// the back-pressure mark (half of `max_queued` / `max_output_buffer`).
    pub fn is_congested(&self, limits: &Limits) -> bool {
        self.connected
            && (self.inflight.queued() >= (limits.max_queued / 2).max(1)
                || self.inflight.queued_bytes() >= limits.max_queued_bytes / 2
                || self.unsent() >= limits.max_output_buffer / 2)
    }

    /// Whether a congested client has caught up (queue and unsent output below a quarter of their
    /// limits), or is gone (an offline session just queues, up to the limit).
    pub fn has_caught_up(&self, limits: &Limits) -> bool {
        !self.connected
            || (self.inflight.queued() < (limits.max_queued / 4).max(1)
                && self.inflight.queued_bytes() < limits.max_queued_bytes / 4
                && self.unsent() < limits.max_output_buffer / 4)
    }

    fn window_has_room(&self) -> bool {
        self.inflight.window.len() < usize::from(self.conn.send_window)
    }

    fn send_new(&mut self, item: QueuedMessage, now: Instant) {
        let pid = self.inflight.next_pid();
        let state = if item.qos == QoS::ExactlyOnce { OutState::AwaitPubRec } else { OutState::AwaitPubAck };
        if self.write_publish(&item.msg, item.qos, item.retain, pid, false, &item.sub_ids, now) {
            self.inflight.window.push_back(OutFlight { pid, item, state });
        }
    }

    /// Moves queued messages into the window while it has room.
    pub fn pump(&mut self, now: Instant) {
        while self.connected && self.window_has_room() {
            let Some(item) = self.inflight.dequeue() else { break };
            if item.msg.remaining_expiry(now).is_err() {
                self.drop_message(DropReason::Expired);
                continue;
            }
            self.send_new(item, now);
        }
    }

    /// Resends every unacknowledged message after a reconnect with a kept session, in the original
    /// order: PUBLISH with DUP for those not yet acknowledged, PUBREL for those past PUBREC
    /// [MQTT-4.4.0-1].
    pub fn resend(&mut self, now: Instant) {
        let window: Vec<OutFlight> = self.inflight.window.iter().cloned().collect();
        for f in window {
            match f.state {
                OutState::AwaitPubAck | OutState::AwaitPubRec => {
                    // An expired message already in flight is still sent: the client may hold a
                    // partial flow for it.
                    self.write_publish(&f.item.msg, f.item.qos, f.item.retain, f.pid, true, &f.item.sub_ids, now);
                }
                OutState::AwaitPubComp => {
                    self.send(&Packet::PubRel(PubResp { packet_id: f.pid, ..Default::default() }));
                }
            }
        }
        self.pump(now);
    }

    /// PUBACK from the client; returns false for an unknown packet id.
    pub fn on_puback(&mut self, pid: u16, now: Instant) -> bool {
        match self.inflight.position(pid) {
            Some(i) if self.inflight.window[i].state == OutState::AwaitPubAck => {
                self.inflight.window.remove(i);
                self.pump(now);
                true
            }
            _ => false,
        }
    }

    /// PUBREC from the client: answer PUBREL, or end the flow on an error reason code.
    pub fn on_pubrec(&mut self, pid: u16, reason: u8, now: Instant) -> bool {
        let Some(i) = self.inflight.position(pid) else {
            // (section 4.3.3) answer an unknown id with PUBREL "packet identifier not found" so the
            // client can finish its side.
            let reason = if self.conn.version.is_v5() { crate::protocol::reason::PACKET_IDENTIFIER_NOT_FOUND } else { 0 };
            self.send(&Packet::PubRel(PubResp { packet_id: pid, reason, ..Default::default() }));
            return false;
        };
        if reason >= 0x80 {
            self.inflight.window.remove(i);
            self.pump(now);
            return true;
        }
        self.inflight.window[i].state = OutState::AwaitPubComp;
        self.send(&Packet::PubRel(PubResp { packet_id: pid, ..Default::default() }));
        true
    }

    /// PUBCOMP from the client.
    pub fn on_pubcomp(&mut self, pid: u16, now: Instant) -> bool {
        match self.inflight.position(pid) {
            Some(i) if self.inflight.window[i].state == OutState::AwaitPubComp => {
                self.inflight.window.remove(i);
                self.pump(now);
                true
            }
            _ => false,
        }
    }

    /// Encodes one PUBLISH, choosing an outbound topic alias when the client allows them.
    #[allow(clippy::too_many_arguments)]
    fn write_publish(
        &mut self,
        msg: &Message,
        qos: QoS,
        retain: bool,
        pid: u16,
        dup: bool,
        sub_ids: &[u32],
        now: Instant,
    ) -> bool {
        if !self.connected {
            return false;
        }
        let v5 = self.conn.version.is_v5();
        let mut topic: &str = &msg.topic;
        let mut topic_alias = None;
        let mut new_alias = false;
        if v5 && self.conn.alias_max > 0 {
            if let Some(a) = self.out_aliases.get(&msg.topic) {
                topic_alias = Some(*a);
                topic = "";
            } else if self.out_aliases.len() < usize::from(self.conn.alias_max) {
                let a = self.out_aliases.len() as u16 + 1;
                self.out_aliases.insert(msg.topic.clone(), a);
                topic_alias = Some(a);
                new_alias = true;
            }
        }
        let parts = PublishParts {
            dup,
            qos,
            retain,
            topic,
            packet_id: pid,
            payload: &msg.payload,
            properties: msg.properties.as_deref(),
            message_expiry: if v5 { msg.remaining_expiry(now).unwrap_or(None) } else { None },
            topic_alias,
            subscription_ids: if v5 { sub_ids } else { &[] },
        };
        match encode_publish(&parts, self.conn.version, self.conn.max_packet_size, &mut self.out) {
            Ok(_) => {
                self.notify.notify();
                true
            }
            Err(_) => {
                // Too large for the client [MQTT-3.1.2-25]: not sent, and the alias it would have
                // introduced is forgotten so a later message establishes it.
                self.drop_message(DropReason::TooLarge);
                if new_alias {
                    self.out_aliases.remove(&msg.topic);
                }
                false
            }
        }
    }
}
