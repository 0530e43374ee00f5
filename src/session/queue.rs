//! Outgoing QoS 1/2 bookkeeping: the in-flight window and the queue behind it.
//!
//! Messages enter the window (and get a packet id) only while it has room; the rest wait in the
//! queue, bounded by `limits.max_queued`. When the queue is full the newest message is dropped and
//! counted: the messages already accepted keep their order and are never displaced.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::broker::message::Message;
use crate::protocol::QoS;

use super::OutState;

/// A message waiting for a free in-flight slot or for the client to reconnect.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// The message.
    pub msg: Arc<Message>,
    /// QoS granted for this delivery.
    pub qos: QoS,
    /// Retain flag to send.
    pub retain: bool,
    /// v5 subscription identifiers of the matching subscriptions.
    pub sub_ids: Vec<u32>,
}

/// A message sent with a packet id and not yet fully acknowledged.
#[derive(Debug, Clone)]
pub struct OutFlight {
    /// Packet identifier.
    pub pid: u16,
    /// What was sent.
    pub item: QueuedMessage,
    /// Where in the QoS flow it is.
    pub state: OutState,
}

/// The in-flight window and queue of one session.
#[derive(Debug, Default)]
pub struct Inflight {
    last_pid: u16,
    /// Unacknowledged messages in the order they were first sent.
    pub window: VecDeque<OutFlight>,
    /// Messages waiting, oldest first.
    pub queue: VecDeque<QueuedMessage>,
}

impl Inflight {
    /// A packet id not used by any message in the window [MQTT-2.2.1-3].
    pub fn next_pid(&mut self) -> u16 {
        loop {
            self.last_pid = self.last_pid.wrapping_add(1);
            if self.last_pid == 0 {
                continue;
            }
            let pid = self.last_pid;
            if !self.window.iter().any(|f| f.pid == pid) {
                return pid;
            }
        }
    }

    /// Index of the in-flight entry with this packet id.
    pub fn position(&self, pid: u16) -> Option<usize> {
        self.window.iter().position(|f| f.pid == pid)
    }

    /// Drops everything (clean start, session end).
    pub fn clear(&mut self) {
        self.window.clear();
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_skip_zero_and_ids_in_use_mqtt_2_2_1_3() {
        let mut f = Inflight { last_pid: u16::MAX - 1, ..Default::default() };
        let msg = Arc::new(Message {
            tenant: "t".into(),
            topic: "a".into(),
            payload: bytes::Bytes::new(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
            expires_at: None,
            origin: "c".into(),
            published_at: std::time::Instant::now(),
            arrived_ns: 0,
        });
        let item = QueuedMessage { msg, qos: QoS::AtLeastOnce, retain: false, sub_ids: vec![] };
        f.window.push_back(OutFlight { pid: 1, item, state: OutState::AwaitPubAck });
        assert_eq!(f.next_pid(), u16::MAX);
        assert_eq!(f.next_pid(), 2);
    }
}
