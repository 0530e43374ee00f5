//! The route plan: which local sessions, which shards and which shared-group members a message
//! goes to, decided without sending anything.

use std::rc::Rc;

use bytes::Bytes;
use ratatosk_shards::Partition;

use super::*;
use crate::broker::client::Client;
use crate::session::{Keeper, Ledger, MessageIds, Publisher, Session};
use crate::store::memory::MemoryStore;

fn client(uid: u64, id: &str) -> ClientRef {
    let keeper = Rc::new(Keeper::new(Ledger::default(), Rc::new(MemoryStore::new())));
    Client::shared(Session::new(uid, Partition(0), "t".into(), id.into(), keeper))
}

fn sub(c: &ClientRef, qos: QoS, id: Option<u32>, no_local: bool, since_ns: u64) -> LocalSub {
    let (uid, client_id) = {
        let c = c.borrow();
        (c.session().uid(), c.session().client_id().clone())
    };
    LocalSub { client: c.clone(), uid, client_id, options: SubOptions { qos, no_local, ..SubOptions::default() }, id, since_ns }
}

fn msg(topic: &str, from: &str, arrived_ns: u64) -> Message {
    Message {
        id: MessageIds::new(0).next(),
        tenant: "t".into(),
        topic: topic.into(),
        payload: Bytes::from_static(b"x"),
        qos: QoS::ExactlyOnce,
        retain: false,
        properties: None,
        expires_ns: None,
        origin: Publisher::unpaced(from.into(), 0),
        arrived_ns,
        kept: Default::default(),
    }
}

fn bs(s: &str) -> ByteString {
    ByteString::from(s)
}

#[test]
fn overlapping_subscriptions_of_one_session_become_one_delivery_mqtt_3_3_4_2() {
    let mut t = RouteTable::default();
    let a = client(1, "a");
    assert!(t.add_local(&bs("t"), &bs("x/#"), None, sub(&a, QoS::AtMostOnce, Some(1), false, 0), 0).is_some(), "first subscriber: announced");
    assert!(t.add_local(&bs("t"), &bs("x/+"), None, sub(&a, QoS::AtLeastOnce, Some(2), false, 0), 0).is_some());
    let plan = t.plan(&msg("x/y", "p", 10), 0, Scope::Origin);
    assert_eq!(plan.local.len(), 1);
    let d = &plan.local[0];
    assert_eq!(d.qos, QoS::AtLeastOnce, "the highest QoS");
    let mut ids = d.sub_ids.clone();
    ids.sort();
    assert_eq!(ids, vec![1, 2], "every subscription identifier [MQTT-3.3.4-3]");
    assert!(plan.remote.is_empty() && plan.shared.is_empty());
}

#[test]
fn no_local_keeps_a_message_from_its_publisher_mqtt_3_8_3_3() {
    let mut t = RouteTable::default();
    let a = client(1, "a");
    let b = client(2, "b");
    t.add_local(&bs("t"), &bs("x"), None, sub(&a, QoS::AtMostOnce, None, true, 0), 0);
    t.add_local(&bs("t"), &bs("x"), None, sub(&b, QoS::AtMostOnce, None, false, 0), 0);
    let plan = t.plan(&msg("x", "a", 10), 0, Scope::Origin);
    assert_eq!(plan.local.iter().map(|d| d.uid).collect::<Vec<_>>(), vec![2]);
}

#[test]
fn other_shards_with_subscribers_are_planned_only_where_the_message_was_published() {
    let mut t = RouteTable::default();
    for shard in [3, 70, 1000] {
        t.apply_remote(&Route { tenant: bs("t"), filter: bs("x/#"), group: None, shard }, true);
    }
    let plan = t.plan(&msg("x/1", "p", 10), 0, Scope::Origin);
    assert_eq!(plan.remote.iter().collect::<Vec<_>>(), vec![3, 70, 1000], "shards past 64 included");
    assert!(t.plan(&msg("x/1", "p", 10), 0, Scope::Forwarded).remote.is_empty(), "a forwarded message is not forwarded again");
    t.apply_remote(&Route { tenant: bs("t"), filter: bs("x/#"), group: None, shard: 70 }, false);
    assert_eq!(t.plan(&msg("x/1", "p", 10), 0, Scope::Origin).remote.iter().collect::<Vec<_>>(), vec![3, 1000]);
    assert!(t.plan(&Message { tenant: bs("other"), ..msg("x/1", "p", 10) }, 0, Scope::Origin).remote.is_empty(), "tenants do not meet");
}

#[test]
fn a_shared_group_takes_turns_between_this_shard_and_the_others_mqtt_4_8_2() {
    let mut t = RouteTable::default();
    let a = client(1, "a");
    let b = client(2, "b");
    let g = bs("g");
    assert!(t.add_local(&bs("t"), &bs("s/#"), Some(&g), sub(&a, QoS::AtLeastOnce, None, false, 0), 0).is_some());
    assert!(t.add_local(&bs("t"), &bs("s/#"), Some(&g), sub(&b, QoS::AtLeastOnce, None, false, 0), 0).is_none(), "second member: nothing to announce");
    t.apply_remote(&Route { tenant: bs("t"), filter: bs("s/#"), group: Some(g.clone()), shard: 5 }, true);
    let mut local = Vec::new();
    let mut remote = 0;
    for _ in 0..4 {
        let plan = t.plan(&msg("s/1", "p", 10), 0, Scope::Origin);
        assert_eq!(plan.local.len() + plan.shared.len(), 1, "exactly one member per message");
        local.extend(plan.local.iter().map(|d| d.uid));
        for p in &plan.shared {
            assert_eq!((p.shard, &*p.group, &*p.filter), (5, "g", "s/#"));
            remote += 1;
        }
    }
    assert_eq!(remote, 2);
    assert_eq!(local, vec![1, 2], "local members in turn");
    assert!(t.plan(&msg("s/1", "p", 10), 0, Scope::Forwarded).local.is_empty(), "the origin shard picks, not the receiver");
    assert!(t.pick_shared("t", "s/#", "g").is_some());
    assert!(t.remove_local(&bs("t"), &bs("s/#"), Some(&g), 1, 0).is_none());
    assert!(t.remove_local(&bs("t"), &bs("s/#"), Some(&g), 2, 0).is_some(), "last member: withdrawn");
}

#[test]
fn a_message_from_another_shard_reaches_only_subscriptions_older_than_it() {
    let mut t = RouteTable::default();
    let old = client(1, "old");
    let new = client(2, "new");
    t.add_local(&bs("t"), &bs("x"), None, sub(&old, QoS::AtMostOnce, None, false, 100), 0);
    t.add_local(&bs("t"), &bs("x"), None, sub(&new, QoS::AtMostOnce, None, false, 300), 0);
    for scope in [Scope::Replay, Scope::Forwarded] {
        let plan = t.plan(&msg("x", "p", 200), 0, scope);
        assert_eq!(plan.local.iter().map(|d| d.uid).collect::<Vec<_>>(), vec![1], "{scope:?}");
    }
    assert_eq!(t.plan(&msg("x", "p", 300), 0, Scope::Forwarded).local.len(), 2, "same time: delivered");
    assert_eq!(t.plan(&msg("x", "p", 200), 0, Scope::Origin).local.len(), 2, "published here: ordered by processing");
}

#[test]
fn the_last_local_subscriber_withdraws_the_route_and_a_repeat_replaces_mqtt_3_8_4_3() {
    let mut t = RouteTable::default();
    let a = client(1, "a");
    let b = client(2, "b");
    assert!(t.add_local(&bs("t"), &bs("x"), None, sub(&a, QoS::AtMostOnce, None, false, 0), 4).is_some_and(|r| r.shard == 4));
    assert!(t.add_local(&bs("t"), &bs("x"), None, sub(&a, QoS::ExactlyOnce, None, false, 0), 4).is_none());
    assert_eq!(t.plan(&msg("x", "p", 1), 4, Scope::Origin).local[0].qos, QoS::ExactlyOnce, "replaced, not added");
    t.add_local(&bs("t"), &bs("x"), None, sub(&b, QoS::AtMostOnce, None, false, 0), 4);
    assert!(t.remove_local(&bs("t"), &bs("x"), None, 1, 4).is_none());
    assert!(t.remove_local(&bs("t"), &bs("x"), None, 2, 4).is_some());
    assert!(t.remove_local(&bs("t"), &bs("x"), None, 2, 4).is_none(), "nothing left to remove");
    assert!(t.plan(&msg("x", "p", 1), 4, Scope::Origin).local.is_empty());
}
