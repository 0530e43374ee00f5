//! Session lifecycle around connections: takeover, disconnect, will messages and expiry.
//!
//! A will waits in its session while its delay runs, so that a session resumed in time replaces
//! it (and it is never sent [MQTT-3.1.3-9]), and so that a store keeps it with the session.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::client::ClientRef;
use super::routes::split_filter;
use super::shard::Shard;
use super::stats::ShardCounters;
use crate::protocol::{reason, LastWill, Publish};
use crate::session::{wall_ns, Message, Publisher, NEVER_EXPIRES};

/// Closes the connection currently attached to `client`, if any, with "session taken over"
/// [MQTT-3.1.4-3], publishing its will when it has no delay.
pub async fn take_over(shard: &Rc<Shard>, client: &ClientRef) {
    let (will, mut link, tenant, uid) = {
        let mut c = client.borrow_mut();
        let Some(mut link) = c.take_link() else { return };
        link.kick(reason::SESSION_TAKEN_OVER);
        // A will with a delay is not sent if the session is resumed before the delay ends
        // [MQTT-3.1.3-9]; the new connection resumes it right now.
        let will = c.session_mut().take_will().filter(|w| w.properties.will_delay_interval.unwrap_or(0) == 0);
        let s = c.session();
        (will, link, s.tenant().clone(), s.uid())
    };
    // Its publishers are not held for a connection that is gone.
    shard.release_publishers(&tenant, uid, link.pacing_mut().end_episode());
    if let Some(w) = will {
        publish_will(shard, client, *w).await;
    }
}

/// Removes a session: its subscriptions leave the route table and its state is dropped (and
/// removed from the store).
pub async fn end_session(shard: &Rc<Shard>, client: &ClientRef) {
    let (tenant, client_id, uid, subs) = {
        let mut c = client.borrow_mut();
        let subs = c.session_mut().end();
        let s = c.session();
        (s.tenant().clone(), s.client_id().clone(), s.uid(), subs)
    };
    if shard.clients.remove_uid(&tenant, &client_id, uid) {
        ShardCounters::sub(&shard.counters().sessions, 1);
    }
    for filter in subs {
        let (group, real) = split_filter(&filter);
        let route = shard.routes.borrow_mut().remove_local(&tenant, &real, group.as_ref(), uid, shard.id);
        if let Some(route) = route {
            shard.announce(route, false).await;
        }
    }
}

/// After a connection ends: publish or schedule the will, and end or schedule the end of the
/// session by its expiry interval.
pub async fn detach(shard: &Rc<Shard>, client: &ClientRef, gen: u64, normal: bool) {
    let (mut link, tenant, uid) = {
        let mut c = client.borrow_mut();
        let Some(link) = c.detach(gen) else { return };
        let s = c.session_mut();
        s.disconnected(wall_ns());
        if normal {
            // [MQTT-3.1.2-10] a normal DISCONNECT (without 0x04) already removed the will.
            s.take_will();
        }
        let s = c.session();
        (link, s.tenant().clone(), s.uid())
    };
    shard.release_publishers(&tenant, uid, link.pacing_mut().end_episode());
    drop(link);
    after_disconnect(shard, client, 0).await;
}

/// For a session whose connection ended `elapsed` seconds ago (0 just now; more for one restored
/// after a restart): publishes its will or schedules it, and ends the session or schedules its
/// end, counting both from that moment.
pub async fn after_disconnect(shard: &Rc<Shard>, client: &ClientRef, elapsed: u32) {
    let (will_delay, expiry) = {
        let c = client.borrow();
        (c.session().will_delay(), c.session().expiry_interval())
    };
    if let Some(delay) = will_delay {
        // The will goes out at the earlier of its delay and the session's end [MQTT-3.1.3-9].
        match delay.min(expiry).checked_sub(elapsed) {
            Some(left) if left > 0 => unless_resumed(shard, client, left, |shard, client| async move { publish_pending_will(&shard, &client).await }),
            _ => publish_pending_will(shard, client).await,
        }
    }
    if expiry != NEVER_EXPIRES {
        match expiry.checked_sub(elapsed) {
            Some(left) if left > 0 => unless_resumed(shard, client, left, |shard, client| async move {
                publish_pending_will(&shard, &client).await;
                end_session(&shard, &client).await
            }),
            _ => end_session(shard, client).await,
        }
    }
}

/// Runs `action` after `secs` seconds unless the session was resumed (or replaced) meanwhile.
fn unless_resumed<F, Fut>(shard: &Rc<Shard>, client: &ClientRef, secs: u32, action: F)
where
    F: FnOnce(Rc<Shard>, ClientRef) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (shard, client) = (shard.clone(), client.clone());
    let gen = client.borrow().generation();
    glommio::spawn_local(async move {
        glommio::timer::sleep(Duration::from_secs(u64::from(secs))).await;
        let still_gone = {
            let c = client.borrow();
            c.generation() == gen && !c.is_connected()
        };
        if still_gone {
            action(shard, client).await;
        }
    })
    .detach();
}

/// Publishes the will waiting in the session, if there still is one.
async fn publish_pending_will(shard: &Rc<Shard>, client: &ClientRef) {
    let will = client.borrow_mut().session_mut().take_will();
    if let Some(w) = will {
        publish_will(shard, client, *w).await;
    }
}

/// Publishes a will message as if its client had sent it.
pub async fn publish_will(shard: &Rc<Shard>, client: &ClientRef, will: LastWill) {
    let (tenant, client_id) = {
        let c = client.borrow();
        (c.session().tenant().clone(), c.session().client_id().clone())
    };
    let mut properties = will.properties;
    properties.will_delay_interval = None;
    let p = Box::new(Publish { dup: false, qos: will.qos, retain: will.retain, topic: will.topic.clone(), packet_id: 0, payload: will.payload, properties });
    let now = wall_ns();
    let msg = Message::from_publish(shard.ids.next(), tenant, Publisher::unpaced(client_id, shard.id), will.topic, p, now, now);
    shard.publish(Arc::new(msg)).await;
}
