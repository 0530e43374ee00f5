//! Session lifecycle around connections: takeover, disconnect, will messages and expiry.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::message::{Message, Publisher};
use super::shard::{Shard, SessionRef};
use super::stats::ShardCounters;
use crate::protocol::{reason, LastWill, Publish};
use crate::session::NEVER_EXPIRES;

/// Closes the connection currently attached to `session`, if any, with "session taken over"
/// [MQTT-3.1.4-3], publishing its will when it has no delay.
pub async fn take_over(shard: &Rc<Shard>, session: &SessionRef) {
    let will = {
        let mut s = session.borrow_mut();
        if !s.connected {
            return;
        }
        s.kick = Some((s.generation, reason::SESSION_TAKEN_OVER));
        s.notify.notify();
        s.connected = false;
        // A will with a delay is not sent if the session is resumed before the delay ends
        // [MQTT-3.1.3-9]; the new connection resumes it right now.
        s.will.take().filter(|w| w.properties.will_delay_interval.unwrap_or(0) == 0)
    };
    // Its publishers are not held for a connection that is gone.
    shard.release_if_caught_up(session);
    if let Some(w) = will {
        publish_will(shard, session, *w).await;
    }
}

/// Removes a session: its subscriptions leave the route table and its state is dropped.
pub async fn end_session(shard: &Rc<Shard>, session: &SessionRef) {
    let (key, uid, subs) = {
        let mut s = session.borrow_mut();
        s.inflight.clear();
        s.incoming_qos2.clear();
        let subs: Vec<_> = s.subscriptions.drain().map(|(f, _)| f).collect();
        ((s.tenant.clone(), s.client_id.clone()), s.uid, subs)
    };
    {
        let mut sessions = shard.sessions.borrow_mut();
        if sessions.get(&key).is_some_and(|s| s.borrow().uid == uid) {
            sessions.remove(&key);
            ShardCounters::sub(&shard.counters().sessions, 1);
        }
    }
    for filter in subs {
        let (group, real) = split(&filter);
        if let Some(route) = shard.remove_route(&key.0, &real, group.as_ref(), uid) {
            shard.announce(route, false).await;
        }
    }
}

/// Splits a stored filter into (group, filter).
pub fn split(filter: &bytestring::ByteString) -> (Option<bytestring::ByteString>, bytestring::ByteString) {
    match crate::protocol::topic::split_shared(filter) {
        Some((g, f)) => (Some(g.into()), f.into()),
        None => (None, filter.clone()),
    }
}

/// After a connection ends: publish or schedule the will, and end or schedule the end of the
/// session by its expiry interval.
pub async fn detach(shard: &Rc<Shard>, session: &SessionRef, gen: u64, normal: bool) {
    let (will, expiry) = {
        let mut s = session.borrow_mut();
        if s.generation != gen {
            return;
        }
        s.connected = false;
        s.kick = None;
        s.discard_output();
        // [MQTT-3.1.2-10] a normal DISCONNECT (without 0x04) already removed the will.
        let will = s.will.take().filter(|_| !normal);
        (will, s.expiry_interval)
    };
    shard.release_if_caught_up(session);
    if let Some(will) = will {
        // The will goes out at the earlier of its delay and the session's end [MQTT-3.1.3-9].
        let delay = will.properties.will_delay_interval.unwrap_or(0).min(expiry);
        if delay == 0 {
            publish_will(shard, session, *will).await;
        } else {
            unless_resumed(shard, session, gen, delay, |shard, session| async move {
                publish_will(&shard, &session, *will).await
            });
        }
    }
    if expiry == 0 {
        end_session(shard, session).await;
    } else if expiry != NEVER_EXPIRES {
        unless_resumed(shard, session, gen, expiry, |shard, session| async move { end_session(&shard, &session).await });
    }
}

/// Runs `action` after `secs` seconds unless the session was resumed (or replaced) meanwhile.
fn unless_resumed<F, Fut>(shard: &Rc<Shard>, session: &SessionRef, gen: u64, secs: u32, action: F)
where
    F: FnOnce(Rc<Shard>, SessionRef) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (shard, session) = (shard.clone(), session.clone());
    glommio::spawn_local(async move {
        glommio::timer::sleep(Duration::from_secs(u64::from(secs))).await;
        let still_gone = {
            let s = session.borrow();
            s.generation == gen && !s.connected
        };
        if still_gone {
            action(shard, session).await;
        }
    })
    .detach();
}

/// Publishes a will message as if its client had sent it.
pub async fn publish_will(shard: &Rc<Shard>, session: &SessionRef, will: LastWill) {
    let (tenant, client_id) = {
        let s = session.borrow();
        (s.tenant.clone(), s.client_id.clone())
    };
    let mut properties = will.properties;
    properties.will_delay_interval = None;
    let p = Box::new(Publish { dup: false, qos: will.qos, retain: will.retain, topic: will.topic.clone(), packet_id: 0, payload: will.payload, properties });
    let msg = Message::from_publish(tenant, Publisher::unpaced(client_id, shard.id), will.topic, p, std::time::Instant::now(), ratatosk_io::realtime_ns());
    shard.publish(Arc::new(msg)).await;
}
