//! Client → broker QoS 2: the packet ids acknowledged with PUBREC and not yet released.
//!
//! An id is recorded before the message is routed, so that a resend (after a reconnect, or a
//! takeover during routing) is recognised as a duplicate and acknowledged again without a second
//! delivery [MQTT-4.3.3-9]; PUBREL releases it. A persistent session stores the ids, so exactly
//! once holds across a restart.

use super::Session;

impl Session {
    /// Records an incoming QoS 2 packet id; false when it is still unreleased (a duplicate).
    pub fn receive_qos2(&mut self, packet_id: u16) -> bool {
        if !self.incoming_qos2.get_or_insert_default().insert(packet_id) {
            return false;
        }
        self.persist(|store, key| {
            store.put_incoming_qos2(key, packet_id);
        });
        true
    }

    /// Whether an incoming QoS 2 packet id is recorded and not released.
    pub fn is_unreleased(&self, packet_id: u16) -> bool {
        self.incoming_qos2.as_ref().is_some_and(|ids| ids.contains(&packet_id))
    }

    /// Incoming QoS 2 messages not yet released.
    pub fn unreleased(&self) -> usize {
        self.incoming_qos2.as_ref().map_or(0, |ids| ids.len())
    }

    /// PUBREL: forgets the packet id; false when it was not known.
    pub fn release_qos2(&mut self, packet_id: u16) -> bool {
        if !self.incoming_qos2.as_mut().is_some_and(|ids| ids.remove(&packet_id)) {
            return false;
        }
        self.persist(|store, key| {
            store.remove_incoming_qos2(key, packet_id);
        });
        true
    }
}
