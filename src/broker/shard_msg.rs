//! What shards send each other over the mesh, and the admitted client a hand-off carries.
//!
//! Every message is two words (anything larger is boxed), so the mesh's preallocated slots stay
//! small, and each knows its lane: control never queues behind data.

use std::sync::Arc;

use bytestring::ByteString;
use ratatosk_io::Detached;
use ratatosk_shards::Lane;

use super::routes::Route;
use crate::protocol::{Connect, SubOptions};
use crate::session::{Message, Publisher};
use crate::tenant::Identity;

/// A client admitted by the shard that accepted its connection.
#[derive(Debug)]
pub struct Admitted {
    /// Who the auth provider says the client is (its tenant, its principal).
    pub identity: Identity,
    /// The client id: as sent, or assigned by the broker.
    pub client_id: ByteString,
    /// Whether the broker assigned the client id (v5 CONNACK then tells the client).
    pub assigned: bool,
    /// The decoded CONNECT.
    pub connect: Box<Connect>,
}

/// What shards tell each other.
///
/// Kept to two words, so the mesh's preallocated slots stay small: anything larger is boxed.
pub enum ShardMsg {
    /// An admitted connection whose client is at home on the receiving shard.
    Handoff(Box<Handoff>),
    /// A message to match against the receiving shard's own subscribers.
    Publish(Arc<Message>),
    /// A message published before the sender learnt of the receiver's new route: deliver it only
    /// to subscriptions that were already active when it was published.
    Replay(Arc<Message>),
    /// A message for one member of a shared subscription group on the receiving shard.
    SharedPublish(Box<SharedPublish>),
    /// The sending shard now has subscribers for a filter; ack with the token.
    RouteAdd(Box<(Route, u64)>),
    /// The sending shard no longer has subscribers for a filter.
    RouteRemove(Box<Route>),
    /// Store (or clear, for an empty payload) a retained message owned by the receiver; ack with the token.
    Retain(Box<(Arc<Message>, u64)>),
    /// Send retained messages matching a filter to a session on the sending shard.
    RetainedQuery(Box<RetainedQuery>),
    /// Answer to a `RetainedQuery`.
    RetainedReply(Box<(RetainedQuery, Vec<Arc<Message>>)>),
    /// A subscriber on the sending shard fell behind on messages from a publisher at home on the
    /// receiving shard: hold that publisher until `Resume` (or the pacing limit).
    Pace(Box<PaceSignal>),
    /// The subscriber of an earlier `Pace` caught up (or went away).
    Resume(Box<PaceSignal>),
    /// The request with this token was applied.
    Ack(u64),
}

impl ShardMsg {
    /// The mesh lane this message travels on: forwarded publishes are data; everything others
    /// wait for is control, so it never queues behind a congested data channel. Replays travel
    /// with control so that they reach the subscriber's shard before the route's `Ack`.
    pub fn lane(&self) -> Lane {
        match self {
            ShardMsg::Publish(_) | ShardMsg::SharedPublish(_) => Lane::Data,
            _ => Lane::Control,
        }
    }
}

/// A connection handed to its client's home shard after admission: the connection with its
/// transport state, who the client is (decided once, on the accepting shard), and the bytes
/// that arrived after CONNECT.
pub struct Handoff {
    /// The connection.
    pub transport: Detached,
    /// The admitted client and its CONNECT.
    pub admitted: Admitted,
    /// Input read after the CONNECT packet (a client may send without waiting for CONNACK).
    pub rest: Vec<u8>,
}

/// A message for one member of a shared subscription group.
pub struct SharedPublish {
    /// The message.
    pub msg: Arc<Message>,
    /// The filter of the group (without `$share/group/`).
    pub filter: ByteString,
    /// The group name.
    pub group: ByteString,
}

/// Who holds whom for back-pressure across shards (see `pacing`).
#[derive(Debug, Clone)]
pub struct PaceSignal {
    /// Tenant of both sessions.
    pub tenant: ByteString,
    /// The publisher's session, at home on the receiving shard.
    pub publisher: Publisher,
    /// The shard of the subscriber that fell behind.
    pub sub_shard: usize,
    /// The subscriber's session uid.
    pub sub_uid: u64,
}

/// A request for retained messages on behalf of a subscription.
#[derive(Debug, Clone)]
pub struct RetainedQuery {
    /// Tenant namespace.
    pub tenant: ByteString,
    /// Filter to match.
    pub filter: ByteString,
    /// Shard of the subscribing session.
    pub reply_to: usize,
    /// Client id of the session.
    pub client_id: ByteString,
    /// Session uid, so a reply for a replaced session is dropped.
    pub uid: u64,
    /// Options of the subscription.
    pub options: SubOptions,
    /// Subscription identifier.
    pub sub_id: Option<u32>,
}
