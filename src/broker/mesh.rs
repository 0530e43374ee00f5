//! The receiving side of the mesh: two tasks per peer shard, one per lane.
//!
//! Neither task ever waits for a client: a forwarded message is handed to each subscriber's
//! session, whose queue and output limits decide (queue, drop and count), and a subscriber that
//! falls behind holds the publisher through `Pace` instead of holding up this channel. Replies
//! are posted, never awaited. So a congested subscriber costs only itself and, briefly, its
//! publishers; and control (hand-offs, route updates, acks) never queues behind data.

use std::rc::Rc;

use bytes::BytesMut;
use glommio::channels::shared_channel::ConnectedReceiver;
use ratatosk_io::{Detached, TcpTransport};
use ratatosk_shards::PeerReceivers;

use super::attach;
use super::routes::Scope;
use super::shard::Shard;
use super::shard_msg::{Handoff, ShardMsg};

/// Spawns the receive tasks for every peer, and the shard's outbox.
pub fn spawn_receivers(shard: &Rc<Shard>, receivers: Vec<PeerReceivers<ShardMsg>>) {
    for r in receivers {
        spawn_lane(shard, r.peer, r.control);
        spawn_lane(shard, r.peer, r.data);
    }
    let outbox = shard.clone();
    glommio::spawn_local(async move { outbox.peers.run_outbox().await }).detach();
}

fn spawn_lane(shard: &Rc<Shard>, peer: usize, rx: ConnectedReceiver<ShardMsg>) {
    let shard = shard.clone();
    glommio::spawn_local(async move {
        while let Some(msg) = rx.recv().await {
            handle(&shard, peer, msg);
            glommio::yield_if_needed().await;
        }
    })
    .detach();
}

/// Serves a connection handed over by the shard that admitted it.
fn adopt(shard: &Rc<Shard>, h: Handoff) {
    let Handoff { transport, admitted, rest } = h;
    let rbuf = BytesMut::from(&rest[..]);
    match transport {
        Detached::Tcp(stream) => {
            glommio::spawn_local(attach::serve(shard.clone(), TcpTransport::attach(stream), admitted, rbuf)).detach();
        }
    }
}

/// Handles one message without waiting.
fn handle(shard: &Rc<Shard>, from: usize, msg: ShardMsg) {
    match msg {
        ShardMsg::Handoff(h) => adopt(shard, *h),
        ShardMsg::Publish(m) => shard.deliver_forwarded(&m, Scope::Forwarded),
        ShardMsg::Replay(m) => shard.deliver_forwarded(&m, Scope::Replay),
        ShardMsg::SharedPublish(p) => shard.deliver_shared(&p.msg, &p.filter, &p.group),
        ShardMsg::RouteAdd(add) => {
            let (route, token) = *add;
            shard.apply_remote_route(&route, true);
            // Replays go out before the ack, on the same lane, so they precede anything the
            // subscriber's shard sees after its SUBACK.
            let replays = shard.replay.borrow_mut().replays_for(&route);
            for m in replays {
                shard.peers.post(from, ShardMsg::Replay(m));
            }
            shard.peers.post(from, ShardMsg::Ack(token));
        }
        ShardMsg::RouteRemove(route) => shard.apply_remote_route(&route, false),
        ShardMsg::Retain(r) => {
            let (m, token) = *r;
            shard.store_retained(m);
            shard.peers.post(from, ShardMsg::Ack(token));
        }
        ShardMsg::RetainedQuery(q) => {
            let msgs = shard.matching_retained(&q.tenant, &q.filter);
            if !msgs.is_empty() {
                let to = q.reply_to;
                shard.peers.post(to, ShardMsg::RetainedReply(Box::new((*q, msgs))));
            }
        }
        ShardMsg::RetainedReply(r) => shard.deliver_retained(&r.0, &r.1),
        ShardMsg::Pace(signal) => shard.hold_here(&signal),
        ShardMsg::Resume(signal) => shard.release_here(&signal),
        ShardMsg::Ack(token) => shard.peers.on_ack(token),
    }
}
