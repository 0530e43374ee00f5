//! The receiving side of the mesh: one task per peer shard, so a full channel towards one peer
//! never stops this shard from draining the others (which could otherwise deadlock).

use std::rc::Rc;

use glommio::channels::shared_channel::ConnectedReceiver;

use super::connection;
use super::shard::{Shard, ShardMsg};

/// Spawns a receive task for every peer.
pub fn spawn_receivers(shard: &Rc<Shard>, receivers: Vec<(usize, ConnectedReceiver<ShardMsg>)>) {
    for (peer, rx) in receivers {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                handle(&shard, peer, msg);
                // Not taking the next message while a subscriber catches up fills this channel,
                // which holds back the publishers on the sending shard.
                shard.relieve_congestion(None).await;
                glommio::yield_if_needed().await;
            }
        })
        .detach();
    }
}

/// Handles one message without waiting; anything that must send a reply does so from its own task
/// so that this receive loop never blocks on a full channel.
fn handle(shard: &Rc<Shard>, from: usize, msg: ShardMsg) {
    match msg {
        ShardMsg::Handoff { stream, bytes } => {
            let stream = stream.attach();
            glommio::spawn_local(connection::adopt(shard.clone(), stream, bytes)).detach();
        }
        ShardMsg::Publish(m) => shard.deliver_local(&m, None, false),
        ShardMsg::Replay(m) => shard.deliver_local(&m, None, true),
        ShardMsg::SharedPublish { msg, filter, group } => shard.deliver_shared(&msg, &filter, &group),
        ShardMsg::RouteAdd(route, token) => {
            shard.apply_remote_route(&route, true);
            let replays = shard.replays_for(&route);
            let shard2 = shard.clone();
            // Replays go out before the ack, on the same channel, so they precede anything the
            // subscriber's shard sees after its SUBACK.
            glommio::spawn_local(async move {
                for m in replays {
                    shard2.send_to(from, ShardMsg::Replay(m)).await;
                }
                shard2.send_to(from, ShardMsg::Ack(token)).await;
            })
            .detach();
        }
        ShardMsg::RouteRemove(route) => shard.apply_remote_route(&route, false),
        ShardMsg::Retain(m, token) => {
            shard.store_retained(m);
            reply(shard, from, ShardMsg::Ack(token));
        }
        ShardMsg::RetainedQuery(q) => {
            let msgs = shard.matching_retained(&q.tenant, &q.filter);
            if !msgs.is_empty() {
                let to = q.reply_to;
                reply(shard, to, ShardMsg::RetainedReply(q, msgs));
            }
        }
        ShardMsg::RetainedReply(q, msgs) => shard.deliver_retained(&q, &msgs),
        ShardMsg::Ack(token) => shard.on_ack(token),
    }
}

fn reply(shard: &Rc<Shard>, to: usize, msg: ShardMsg) {
    let shard = shard.clone();
    glommio::spawn_local(async move { shard.send_to(to, msg).await }).detach();
}
