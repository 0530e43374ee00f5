//! Outgoing QoS 1/2 bookkeeping: the in-flight window and the queue behind it.
//!
//! Messages enter the window (and get a packet id) only while it has room; the rest wait in the
//! queue, bounded by `limits.max_queued` messages and `limits.max_queued_bytes` bytes per session
//! and by the shard's share of `limits.max_queued_bytes_total`. When a limit is reached the newest
//! message is dropped and counted: the messages already accepted keep their order and are never
//! displaced.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use crate::broker::message::Message;
use crate::protocol::QoS;

use super::ledger::{DropReason, Ledger};
use super::OutState;
use crate::config::Limits;

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
#[derive(Debug)]
pub struct Inflight {
    last_pid: u16,
    /// Unacknowledged messages in the order they were first sent.
    pub window: VecDeque<OutFlight>,
    /// Messages waiting, oldest first.
    queue: VecDeque<QueuedMessage>,
    /// What the queued messages cost (see [`QueuedMessage::cost`]).
    queued_bytes: usize,
    /// The shard's account, charged for every queued byte.
    ledger: Rc<Ledger>,
}

impl Default for Inflight {
    fn default() -> Self {
        Inflight::new(Rc::new(Ledger::default()))
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.ledger.release(self.queued_bytes);
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

impl Inflight {
    /// An empty window and queue charging `ledger`.
    pub fn new(ledger: Rc<Ledger>) -> Inflight {
        Inflight { last_pid: 0, window: VecDeque::new(), queue: VecDeque::new(), queued_bytes: 0, ledger }
    }

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

    /// Queues a message behind the others, unless that would pass the session's message or byte
    /// limit or the shard's byte budget (checked before anything is kept).
    pub fn enqueue(&mut self, mut item: QueuedMessage, limits: &Limits) -> Result<(), DropReason> {
        let cost = item.cost();
        if self.queue.len() >= limits.max_queued {
            return Err(DropReason::QueueFull);
        }
        if self.queued_bytes + cost > limits.max_queued_bytes {
            return Err(DropReason::SessionBytes);
        }
        if !self.ledger.reserve(cost) {
            return Err(DropReason::BrokerBytes);
        }
        // What is counted is what is held: the queued message gets buffers of its own.
        item.msg = item.msg.for_keeping();
        self.queued_bytes += cost;
        self.queue.push_back(item);
        Ok(())
    }

    /// Takes the oldest queued message.
    pub fn dequeue(&mut self) -> Option<QueuedMessage> {
        let item = self.queue.pop_front()?;
        let cost = item.cost();
        self.queued_bytes -= cost;
        self.ledger.release(cost);
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

    /// The shard's account.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Drops everything (clean start, session end).
    pub fn clear(&mut self) {
        self.window.clear();
        self.queue.clear();
        self.ledger.release(self.queued_bytes);
        self.queued_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_skip_zero_and_ids_in_use_mqtt_2_2_1_3() {
        let mut f = Inflight::default();
        f.last_pid = u16::MAX - 1;
        let item = item(0);
        f.window.push_back(OutFlight { pid: 1, item, state: OutState::AwaitPubAck });
        assert_eq!(f.next_pid(), u16::MAX);
        assert_eq!(f.next_pid(), 2);
    }

    fn item(payload: usize) -> QueuedMessage {
        let msg = Arc::new(Message {
            tenant: "t".into(),
            topic: "a".into(),
            payload: bytes::Bytes::from(vec![0u8; payload]),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
            expires_at: None,
            origin: crate::broker::message::Publisher::unpaced("c".into(), 0),
            published_at: std::time::Instant::now(),
            arrived_ns: 0,
            kept: Default::default(),
        });
        QueuedMessage { msg, qos: QoS::AtLeastOnce, retain: false, sub_ids: vec![] }
    }

    #[test]
    fn queue_refuses_past_the_message_count_the_session_bytes_and_the_shard_bytes() {
        let limits = Limits { max_queued: 3, max_queued_bytes: 10_000, ..Limits::default() };
        let ledger = Rc::new(Ledger::new(25_000));
        let mut a = Inflight::new(ledger.clone());
        for _ in 0..3 {
            a.enqueue(item(10), &limits).unwrap();
        }
        assert_eq!(a.enqueue(item(10), &limits), Err(DropReason::QueueFull));
        let mut b = Inflight::new(ledger.clone());
        b.enqueue(item(9_000), &limits).unwrap();
        assert_eq!(b.enqueue(item(2_000), &limits), Err(DropReason::SessionBytes));
        let mut c = Inflight::new(ledger.clone());
        c.enqueue(item(9_000), &limits).unwrap();
        assert_eq!(c.enqueue(item(9_000), &limits), Err(DropReason::SessionBytes));
        let mut d = Inflight::new(ledger.clone());
        assert_eq!(d.enqueue(item(9_000), &limits), Err(DropReason::BrokerBytes), "shard budget spent by b and c");
        let before = ledger.queued_bytes();
        drop(b);
        assert_eq!(ledger.queued_bytes(), before - item(9_000).cost(), "a dropped session gives its bytes back");
        d.enqueue(item(9_000), &limits).unwrap();
        assert!(d.dequeue().is_some());
        c.clear();
        assert_eq!(ledger.queued_bytes(), a.queued_bytes(), "only a still queues");
    }
}
