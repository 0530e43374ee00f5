//! Back-pressure between subscribers and the publishers feeding them, on one shard or across.
//!
//! When a delivery finds a connected subscriber behind, the publisher of that message is held
//! (see `hold::Pacing` for the rules and their bound). A publisher at home on this shard is held
//! directly; one on another shard through a `Pace` control message to its home shard. The
//! subscriber's own connection releases its publishers when its backlog has drained (`Resume`
//! across shards), so publishers are woken by the drain, not by a timer. Nothing here waits:
//! deliveries and mesh receive tasks only record and post.

use std::time::{Duration, Instant};

use bytestring::ByteString;

use super::client::ClientRef;
use super::connection::READ_MAX;
use super::shard::Shard;
use super::shard_msg::{PaceSignal, ShardMsg};
use super::stats::ShardCounters;
use crate::session::{Message, Publisher};

impl Shard {
    /// The pacing limit (`limits.max_pace_ms`).
    pub fn pace_limit(&self) -> Duration {
        Duration::from_millis(self.config.limits.max_pace_ms)
    }

    /// A delivery of `msg` found `subscriber` behind: hold the message's publisher, if it can be
    /// held and the subscriber's episode still holds publishers.
    pub fn pace(&self, subscriber: &ClientRef, msg: &Message) {
        let origin = &msg.origin;
        if origin.uid == 0 || self.config.limits.max_pace_ms == 0 {
            return;
        }
        let sub_uid = {
            let mut s = subscriber.borrow_mut();
            let uid = s.session().uid();
            // A client's own subscription cannot drain while its connection is held.
            if origin.shard == self.id && origin.uid == uid {
                return;
            }
            let limit = self.pace_limit();
            let Some(link) = s.link_mut() else { return };
            if !link.pacing_mut().admit(origin, Instant::now(), limit) {
                return;
            }
            uid
        };
        let signal = PaceSignal { tenant: msg.tenant.clone(), publisher: origin.clone(), sub_shard: self.id, sub_uid };
        if origin.shard == self.id {
            self.hold_here(&signal);
        } else {
            self.peers.post(origin.shard, ShardMsg::Pace(Box::new(signal)));
        }
    }

    /// Applies a hold to a publisher at home on this shard.
    pub fn hold_here(&self, signal: &PaceSignal) {
        let Some(p) = self.clients.get_uid(&signal.tenant, &signal.publisher.client_id, signal.publisher.uid) else { return };
        let mut p = p.borrow_mut();
        let Some(link) = p.link_mut() else { return };
        if !link.pacing().is_held() {
            ShardCounters::add(&self.counters().publishers_paced, 1);
        }
        link.pacing_mut().hold(signal.sub_shard, signal.sub_uid, Instant::now());
    }

    /// Releases a hold on a publisher at home on this shard, waking its connection when it was
    /// the last one.
    pub fn release_here(&self, signal: &PaceSignal) {
        let Some(p) = self.clients.get_uid(&signal.tenant, &signal.publisher.client_id, signal.publisher.uid) else { return };
        let mut p = p.borrow_mut();
        let Some(link) = p.link_mut() else { return };
        if link.pacing_mut().release(signal.sub_shard, signal.sub_uid) {
            link.wake();
        }
    }

    /// Lets the subscriber's waiting publishers go in turn as it drains: once it is below its
    /// congestion mark, a share of them proportional to its free room, oldest first (see
    /// `hold`). Cheap when there is no episode: called after each write and each batch of input
    /// of the subscriber's connection.
    pub fn release_if_drained(&self, subscriber: &ClientRef) {
        let (tenant, sub_uid, released) = {
            let mut s = subscriber.borrow_mut();
            // The common case (no episode) costs one look.
            if !s.link().is_some_and(|l| l.pacing().behind()) || s.is_congested(&self.config.limits) {
                return;
            }
            let limits = &self.config.limits;
            let room = s.room(limits);
            // As many publishers as the room made takes reads of the largest size (a publisher
            // let go handles what it reads whole), so letting them go does not overshoot.
            let n = (room * (limits.max_output_buffer / 2) as f64 / READ_MAX as f64) as usize;
            let tenant = s.session().tenant().clone();
            let uid = s.session().uid();
            let Some(link) = s.link_mut() else { return };
            (tenant, uid, link.pacing_mut().release_some(n, room >= 0.5, Instant::now()))
        };
        self.release_publishers(&tenant, sub_uid, released);
    }

    /// Lets go of publishers a subscriber (`sub_uid` on this shard) held: its episode ended, or
    /// its connection went away.
    pub fn release_publishers(&self, tenant: &ByteString, sub_uid: u64, publishers: Vec<Publisher>) {
        for publisher in publishers {
            let signal = PaceSignal { tenant: tenant.clone(), sub_shard: self.id, sub_uid, publisher };
            if signal.publisher.shard == self.id {
                self.release_here(&signal);
            } else {
                let to = signal.publisher.shard;
                self.peers.post(to, ShardMsg::Resume(Box::new(signal)));
            }
        }
    }
}
