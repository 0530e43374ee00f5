//! Back-pressure between subscribers and the publishers feeding them, on one shard or across.
//!
//! When a delivery finds a connected subscriber behind, the publisher of that message is held
//! (see `session::Pacing` for the rules and their bound). A publisher at home on this shard is
//! held directly; one on another shard through a `Pace` control message to its home shard. The
//! subscriber's own connection releases its publishers when its backlog has drained (`Resume`
//! across shards), so publishers are woken by the drain, not by a timer. Nothing here waits:
//! deliveries and mesh receive tasks only record and post.

use std::time::{Duration, Instant};

use super::message::{Message, Publisher};
use super::shard::{PaceSignal, SessionRef, Shard, ShardMsg};

impl Shard {
    /// The pacing limit (`limits.max_pace_ms`).
    pub fn pace_limit(&self) -> Duration {
        Duration::from_millis(self.config.limits.max_pace_ms)
    }

    /// A delivery of `msg` found `subscriber` behind: hold the message's publisher, if it can be
    /// held and the subscriber's episode still holds publishers.
    pub fn pace(&self, subscriber: &SessionRef, msg: &Message) {
        let origin = &msg.origin;
        if origin.uid == 0 || self.config.limits.max_pace_ms == 0 {
            return;
        }
        let sub_uid = {
            let mut s = subscriber.borrow_mut();
            // A client's own subscription cannot drain while its connection is held.
            if origin.shard == self.id && origin.uid == s.uid {
                return;
            }
            if !s.pacing.admit(origin, Instant::now(), self.pace_limit()) {
                return;
            }
            s.uid
        };
        let signal = PaceSignal { tenant: msg.tenant.clone(), publisher: origin.clone(), sub_shard: self.id, sub_uid };
        if origin.shard == self.id {
            self.hold_here(&signal);
        } else {
            self.post(origin.shard, ShardMsg::Pace(Box::new(signal)));
        }
    }

    /// Applies a hold to a publisher at home on this shard.
    pub fn hold_here(&self, signal: &PaceSignal) {
        if let Some(p) = self.publisher_session(&signal.tenant, &signal.publisher) {
            let mut p = p.borrow_mut();
            if !p.pacing.is_held() {
                super::stats::ShardCounters::add(&self.counters().publishers_paced, 1);
            }
            p.pacing.hold(signal.sub_shard, signal.sub_uid, Instant::now());
        }
    }

    /// Releases a hold on a publisher at home on this shard, waking its connection when it was
    /// the last one.
    pub fn release_here(&self, signal: &PaceSignal) {
        if let Some(p) = self.publisher_session(&signal.tenant, &signal.publisher) {
            let mut p = p.borrow_mut();
            if p.pacing.release(signal.sub_shard, signal.sub_uid) {
                p.notify.notify();
            }
        }
    }

    /// Ends the subscriber's episode when it has caught up (or is no longer connected), and
    /// releases every publisher it held. Cheap when there is no episode: called after each write
    /// and each batch of input of the subscriber's connection, and when it detaches.
    pub fn release_if_caught_up(&self, subscriber: &SessionRef) {
        let (tenant, sub_uid, released) = {
            let mut s = subscriber.borrow_mut();
            if !s.pacing.behind() || !s.has_caught_up(&self.config.limits) {
                return;
            }
            (s.tenant.clone(), s.uid, s.pacing.end_episode())
        };
        for publisher in released {
            let signal = PaceSignal { tenant: tenant.clone(), sub_shard: self.id, sub_uid, publisher };
            if signal.publisher.shard == self.id {
                self.release_here(&signal);
            } else {
                let to = signal.publisher.shard;
                self.post(to, ShardMsg::Resume(Box::new(signal)));
            }
        }
    }

    fn publisher_session(&self, tenant: &bytestring::ByteString, publisher: &Publisher) -> Option<SessionRef> {
        let key = (tenant.clone(), publisher.client_id.clone());
        let s = self.sessions.borrow().get(&key).cloned()?;
        let same = s.borrow().uid == publisher.uid;
        same.then_some(s)
    }
}
