//! Attach: an admitted client meets its session on its home shard.
//!
//! Decides whether the session is new, resumed or taken over (closing the connection that had
//! it), negotiates what this connection may do (keep alive, in-flight window, topic aliases,
//! packet size), queues CONNACK, resends what a resumed session had in flight, and then runs the
//! connection loop.

use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use ratatosk_io::Transport;

use super::closing::refuse_for_capacity;
use super::client::Client;
use super::connection::{self, Live};
use super::lifecycle;
use super::link::{ConnState, Link};
use super::shard::Shard;
use super::shard_msg::Admitted;
use super::stats::ShardCounters;
use crate::protocol::{ConnAck, Packet, Properties};
use crate::session::{wall_ns, Session, NEVER_EXPIRES};

/// Serves an admitted client on its home shard, starting with the bytes read after CONNECT.
pub async fn serve<T: Transport>(shard: Rc<Shard>, mut transport: T, admitted: Admitted, rbuf: BytesMut) {
    let limits = &shard.config.limits;
    let tenant = &admitted.identity.tenant;
    let creates_session = admitted.connect.clean_start || !shard.clients.contains(tenant, &admitted.client_id);
    if creates_session && shard.stats.total(|c| &c.sessions) >= limits.max_sessions as u64 {
        refuse_for_capacity(&shard, &mut transport, admitted.connect.protocol, "limits.max_sessions").await;
        return;
    }
    // Set-up runs in its own boxed future and is freed before the read loop starts, so an idle
    // connection carries only the loop's state.
    let live = Box::pin(attach(shard, admitted)).await;
    connection::run(live, transport, rbuf).await
}

/// Attaches the connection to its session (new, resumed or taken over) and queues CONNACK.
async fn attach(shard: Rc<Shard>, admitted: Admitted) -> Live {
    let Admitted { identity, client_id, assigned, mut connect } = admitted;
    let limits = shard.config.limits.clone();
    let tenant = identity.tenant.clone();
    let v = connect.protocol;
    let v5 = v.is_v5();
    let props = &connect.properties;
    let expiry = if v5 {
        props.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        NEVER_EXPIRES
    };
    let mut keep_alive = connect.keep_alive;
    let mut server_keep_alive = None;
    if v5 && (keep_alive > limits.max_keepalive || keep_alive == 0) {
        keep_alive = limits.max_keepalive;
        server_keep_alive = Some(keep_alive);
    }
    let conn = ConnState {
        version: v,
        max_packet_size: if v5 { props.maximum_packet_size.unwrap_or(u32::MAX) } else { u32::MAX },
        send_window: if v5 { props.receive_maximum.unwrap_or(u16::MAX).min(limits.max_inflight) } else { limits.max_inflight },
        alias_max: if v5 { props.topic_alias_maximum.unwrap_or(0) } else { 0 },
        problem_info: !v5 || props.request_problem_information != Some(0),
        // [MQTT-3.1.2-24] silence beyond 1.5 × keep alive closes the connection; the shard's
        // keep alive sweep checks it, so the read loop carries no timer.
        keep_alive: (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500)),
        connect_expiry_zero: expiry == 0,
    };

    let existing = shard.clients.get(&tenant, &client_id);
    let (client, present) = match existing {
        Some(c) if !connect.clean_start => (c, true),
        other => {
            if let Some(old) = other {
                // [MQTT-3.1.2-4] clean start discards the old session (closing its connection).
                Box::pin(lifecycle::take_over(&shard, &old)).await;
                Box::pin(lifecycle::end_session(&shard, &old)).await;
            }
            let partition = shard.placement.partition(&tenant, &client_id);
            let session = Session::new(shard.new_uid(), partition, tenant.clone(), client_id.clone(), shard.keeper.clone());
            let c = Client::shared(session);
            shard.clients.insert((tenant.clone(), client_id.clone()), c.clone());
            ShardCounters::add(&shard.counters().sessions, 1);
            (c, false)
        }
    };
    if present {
        Box::pin(lifecycle::take_over(&shard, &client)).await;
    }
    let connect_expiry_zero = expiry == 0;
    let (gen, notify) = {
        let mut c = client.borrow_mut();
        c.session_mut().connected(expiry, connect.will.take().map(Box::new));
        let mut link = Link::new(conn);
        if shard.parked.enabled() {
            // Most connections say little after CONNECT: park at once rather than keep a task
            // for each until the sweep notices (the memory of a burst of connections would
            // otherwise stay with the process).
            link.park_when_idle();
        }
        let gen = c.attach(link);
        let mut ack_props = Properties::default();
        if v5 {
            ack_props.assigned_client_identifier = assigned.then(|| client_id.clone());
            ack_props.server_keep_alive = server_keep_alive;
            ack_props.receive_maximum = Some(limits.receive_maximum);
            ack_props.maximum_packet_size = Some(limits.max_packet_size);
            ack_props.topic_alias_maximum = Some(limits.topic_alias_maximum);
        }
        // [MQTT-3.2.2-1..3] session present only when a session was resumed.
        c.send(&Packet::ConnAck(ConnAck { session_present: present, code: 0, properties: ack_props }));
        if present {
            c.resend(wall_ns());
        }
        let notify = c.link().map(|l| l.notify()).unwrap_or_default();
        (gen, notify)
    };
    // Everything needed from CONNECT has been taken; don't carry it for the connection's life.
    drop(connect);
    ShardCounters::add(&shard.counters().clients_connected, 1);
    tracing::debug!(client = %client_id, shard = shard.id, "client connected");
    Live::new(shard, client, gen, identity, v, notify, connect_expiry_zero)
}
