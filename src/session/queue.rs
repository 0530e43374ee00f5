//! Outgoing QoS 1/2 bookkeeping: the in-flight window and the queue behind it.
//!
//! Messages enter the window (and get a packet id) only while it has room; the rest wait in the
//! queue, bounded by `limits.max_queued` messages and `limits.max_queued_bytes` bytes per session
//! and by the shard's share of `limits.max_queued_bytes_total`. When a limit is reached the newest
//! message is dropped and counted: the messages already accepted keep their order and are never
//! displaced.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::config::Limits;
use crate::protocol::QoS;
use crate::store::FlightState;

use super::ledger::{DropReason, Ledger};
use super::Message;

/// Where an outgoing QoS 1/2 message is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Named for the packet each state waits for, as the spec's flow diagrams do.
#[allow(clippy::enum_variant_names)]
pub enum OutState {
    /// QoS 1 sent, waiting for PUBACK.
    AwaitPubAck,
    /// QoS 2 sent, waiting for PUBREC.
    AwaitPubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    AwaitPubComp,
}

/// A message waiting for a free in-flight slot or for the client to reconnect.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    /// Position in the session's delivery order (the message's key in a store).
    pub order: u64,
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

impl OutFlight {
    /// The state as a store records it.
    pub fn stored_state(&self) -> FlightState {
        match self.state {
            OutState::AwaitPubAck => FlightState::AwaitPubAck(self.pid),
            OutState::AwaitPubRec => FlightState::AwaitPubRec(self.pid),
            OutState::AwaitPubComp => FlightState::AwaitPubComp(self.pid),
        }
    }
}

impl QueuedMessage {
    /// Bytes this queued copy is charged: payload, topic and properties, plus a fixed overhead
    /// for the entry and the message header. The payload is shared between the sessions that
    /// queue the same message, so real memory is at most this.
    pub fn cost(&self) -> usize {
        const OVERHEAD: usize = 160;
        let props = self.msg.properties.as_ref().map_or(0, |_| 256);
        OVERHEAD + self.msg.payload.len() + self.msg.topic.len() + props + 4 * self.sub_ids.len()
    }
}

/// The in-flight window and queue of one session. Queued bytes are charged to the shard's
/// [`Ledger`], which every method that changes the queue is given.
#[derive(Debug, Default)]
pub struct Inflight {
    last_pid: u16,
    /// Next delivery order number.
    next_order: u64,
    /// Unacknowledged messages in the order they were first sent.
    window: VecDeque<OutFlight>,
    /// Messages waiting, oldest first.
    queue: VecDeque<QueuedMessage>,
    /// What the queued messages cost (see [`QueuedMessage::cost`]).
    queued_bytes: usize,
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

    /// The next delivery order number.
    pub fn next_order(&mut self) -> u64 {
        let o = self.next_order;
        self.next_order += 1;
        o
    }

    /// Index of the in-flight entry with this packet id.
    pub fn position(&self, pid: u16) -> Option<usize> {
        self.window.iter().position(|f| f.pid == pid)
    }

    /// Messages in flight.
    pub fn in_flight(&self) -> usize {
        self.window.len()
    }

    /// The in-flight entry at `i`.
    pub fn get(&self, i: usize) -> Option<&OutFlight> {
        self.window.get(i)
    }

    /// Moves the in-flight entry at `i` to `state`.
    pub fn set_state(&mut self, i: usize, state: OutState) -> Option<&OutFlight> {
        let f = self.window.get_mut(i)?;
        f.state = state;
        Some(f)
    }

    /// Takes the in-flight entry at `i` out of the window (its flow ended).
    pub fn remove(&mut self, i: usize) -> Option<OutFlight> {
        self.window.remove(i)
    }

    /// Adds a sent message to the window.
    pub fn push_sent(&mut self, f: OutFlight) {
        self.window.push_back(f);
    }

    /// The in-flight entries, oldest first.
    pub fn window(&self) -> impl Iterator<Item = &OutFlight> {
        self.window.iter()
    }

    /// The queued messages, oldest first.
    pub fn queue(&self) -> impl Iterator<Item = &QueuedMessage> {
        self.queue.iter()
    }

    /// Queues a message behind the others, unless that would pass the session's message or byte
    /// limit or the shard's byte budget (checked before anything is kept).
    pub fn enqueue(&mut self, mut item: QueuedMessage, limits: &Limits, ledger: &Ledger) -> Result<(), DropReason> {
        let cost = item.cost();
        if self.queue.len() >= limits.max_queued {
            return Err(DropReason::QueueFull);
        }
        if self.queued_bytes + cost > limits.max_queued_bytes {
            return Err(DropReason::SessionBytes);
        }
        if !ledger.reserve(cost) {
            return Err(DropReason::BrokerBytes);
        }
        // What is counted is what is held: the queued message gets buffers of its own.
        item.msg = item.msg.for_keeping();
        self.queued_bytes += cost;
        self.queue.push_back(item);
        Ok(())
    }

    /// Puts back what a store kept, whatever the limits: it was accepted before the restart.
    pub fn restore(&mut self, window: Vec<OutFlight>, queue: Vec<QueuedMessage>, ledger: &Ledger) {
        for item in queue {
            let cost = item.cost();
            ledger.force_reserve(cost);
            self.queued_bytes += cost;
            self.next_order = self.next_order.max(item.order + 1);
            self.queue.push_back(item);
        }
        for f in window {
            self.next_order = self.next_order.max(f.item.order + 1);
            self.last_pid = self.last_pid.max(f.pid);
            self.window.push_back(f);
        }
    }

    /// Takes the oldest queued message.
    pub fn dequeue(&mut self, ledger: &Ledger) -> Option<QueuedMessage> {
        let item = self.queue.pop_front()?;
        let cost = item.cost();
        self.queued_bytes -= cost;
        ledger.release(cost);
        Some(item)
    }

    /// Messages waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Bytes the queued messages are charged.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Drops everything (clean start, session end).
    pub fn clear(&mut self, ledger: &Ledger) {
        self.window.clear();
        self.queue.clear();
        ledger.release(self.queued_bytes);
        self.queued_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{MessageIds, Publisher};

    #[test]
    fn packet_ids_skip_zero_and_ids_in_use_mqtt_2_2_1_3() {
        let mut f = Inflight { last_pid: u16::MAX - 1, ..Inflight::default() };
        f.push_sent(OutFlight { pid: 1, item: item(0), state: OutState::AwaitPubAck });
        assert_eq!(f.next_pid(), u16::MAX);
        assert_eq!(f.next_pid(), 2);
    }

    fn item(payload: usize) -> QueuedMessage {
        let msg = Arc::new(Message {
            id: MessageIds::new(0).next(),
            tenant: "t".into(),
            topic: "a".into(),
            payload: bytes::Bytes::from(vec![0u8; payload]),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
            expires_ns: None,
            origin: Publisher::unpaced("c".into(), 0),
            arrived_ns: 0,
            kept: Default::default(),
        });
        QueuedMessage { order: 0, msg, qos: QoS::AtLeastOnce, retain: false, sub_ids: vec![] }
    }

    #[test]
    fn queue_refuses_past_the_message_count_the_session_bytes_and_the_shard_bytes() {
        let limits = Limits { max_queued: 3, max_queued_bytes: 10_000, ..Limits::default() };
        let ledger = Ledger::new(25_000);
        let mut a = Inflight::default();
        for _ in 0..3 {
            a.enqueue(item(10), &limits, &ledger).unwrap();
        }
        assert_eq!(a.enqueue(item(10), &limits, &ledger), Err(DropReason::QueueFull));
        let mut b = Inflight::default();
        b.enqueue(item(9_000), &limits, &ledger).unwrap();
        assert_eq!(b.enqueue(item(2_000), &limits, &ledger), Err(DropReason::SessionBytes));
        let mut c = Inflight::default();
        c.enqueue(item(9_000), &limits, &ledger).unwrap();
        assert_eq!(c.enqueue(item(9_000), &limits, &ledger), Err(DropReason::SessionBytes));
        let mut d = Inflight::default();
        assert_eq!(d.enqueue(item(9_000), &limits, &ledger), Err(DropReason::BrokerBytes), "shard budget spent by b and c");
        let before = ledger.queued_bytes();
        b.clear(&ledger);
        assert_eq!(ledger.queued_bytes(), before - item(9_000).cost(), "a cleared session gives its bytes back");
        d.enqueue(item(9_000), &limits, &ledger).unwrap();
        assert!(d.dequeue(&ledger).is_some());
        c.clear(&ledger);
        assert_eq!(ledger.queued_bytes(), a.queued_bytes(), "only a still queues");
    }
}
