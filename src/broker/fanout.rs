//! Fan-out: executing a route plan.
//!
//! The shard that receives a PUBLISH plans it once against its route table ([`RouteTable::plan`]):
//! its own subscribers get it directly, every other shard with subscribers for a matching filter
//! gets one `Publish` over the mesh (payload shared, not copied), and each shared subscription
//! group gets exactly one delivery, to a member chosen round-robin across the shards that have
//! members. A shard that receives a forwarded message plans it again for its own subscribers only.
//!
//! [`RouteTable::plan`]: super::routes::RouteTable::plan

use std::rc::Rc;
use std::sync::Arc;

use super::client::ClientRef;
use super::routes::{RoutePlan, Scope};
use super::shard::Shard;
use super::shard_msg::{SharedPublish, ShardMsg};
use super::stats::ShardCounters;
use crate::session::{wall_ns, Delivery, Message};

impl Shard {
    /// Routes a message published by a client of this shard (or a will, or `$SYS`) to every
    /// subscriber.
    ///
    /// The common case completes without suspending: mesh sends are tried first and only a full
    /// channel (or a retained message, which waits for its owner shard) takes the slower, boxed
    /// path. That keeps the per-connection future small.
    pub async fn publish(self: &Rc<Self>, msg: Arc<Message>) {
        if msg.retain {
            Box::pin(self.retain(msg.clone())).await;
        }
        let plan = self.routes.borrow().plan(&msg, self.id, Scope::Origin);
        let RoutePlan { local, remote, shared } = plan;
        self.deliver_all(&msg, local, msg.arrived_ns);
        let mut blocked = Vec::new();
        for shard in remote.iter() {
            self.peers.try_send(shard, ShardMsg::Publish(msg.clone()), &mut blocked);
        }
        if self.n > 1 {
            self.replay.borrow_mut().remember(&msg, remote);
        }
        for pick in shared {
            let m = ShardMsg::SharedPublish(Box::new(SharedPublish { msg: msg.clone(), filter: pick.filter, group: pick.group }));
            self.peers.try_send(pick.shard, m, &mut blocked);
        }
        if !blocked.is_empty() {
            Box::pin(async {
                for (shard, m) in blocked {
                    self.peers.send_to(shard, m).await;
                }
            })
            .await;
        }
    }

    /// Delivers a message another shard forwarded (or replayed) to this shard's subscribers.
    pub fn deliver_forwarded(&self, msg: &Arc<Message>, scope: Scope) {
        let plan = self.routes.borrow().plan(msg, self.id, scope);
        self.deliver_all(msg, plan.local, msg.arrived_ns);
    }

    /// Delivers to one local member of a shared group (the origin shard picked this shard).
    pub fn deliver_shared(&self, msg: &Arc<Message>, filter: &str, group: &str) {
        let Some(d) = self.routes.borrow().pick_shared(&msg.tenant, filter, group) else { return };
        self.deliver_all(msg, vec![d], wall_ns());
    }

    /// Hands `msg` to each planned local delivery, holding its publisher when a subscriber has
    /// fallen behind. Expiry is judged at `now_ns`: the arrival time for fresh messages (a mesh
    /// hop takes microseconds, and queued messages are checked again when they leave the queue).
    fn deliver_all(&self, msg: &Arc<Message>, local: Vec<super::routes::LocalDelivery>, now_ns: u64) {
        for d in local {
            let qos = d.qos.min(msg.qos);
            // [MQTT-3.3.1-12/13]: retain flag only with retain-as-published.
            let retain = d.retain_as_published && msg.retain;
            if self.deliver_counted(&d.client, Delivery { msg, qos, retain, sub_ids: &d.sub_ids }, now_ns) {
                self.pace(&d.client, msg);
            }
        }
    }

    /// Hands a message to a client of this shard and counts it as sent or dropped; returns true
    /// when the client has fallen behind (see [`Shard::pace`]).
    pub fn deliver_counted(&self, client: &ClientRef, d: Delivery<'_>, now_ns: u64) -> bool {
        let mut c = client.borrow_mut();
        let dropped_before = c.session().dropped();
        let congested = c.deliver(d, &self.config.limits, now_ns);
        let dropped = c.session().dropped() - dropped_before;
        drop(c);
        // Drops are counted by reason in the shard's ledger.
        ShardCounters::add(&self.counters().messages_sent, 1 - dropped.min(1));
        congested
    }
}
