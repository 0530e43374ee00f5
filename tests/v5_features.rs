//! MQTT 5.0 features: shared subscriptions, no local, subscription identifiers, topic aliases in
//! both directions, message expiry, properties passed through, the client's maximum packet size
//! and receive maximum.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;

#[tokio::test]
async fn shared_subscription_gives_each_message_to_exactly_one_member_mqtt_4_8_2_2() {
    let b = Broker::start();
    let topic = format!("sh/{}", uniq("t"));
    let mut g = Vec::new();
    for id in ids_on_both_shards("g", 4) {
        let mut c = Client::connect(b.port, Opts::new(Ver::V5, &id)).await;
        c.sub(&format!("$share/g/{topic}"), 1).await;
        g.push((id, c));
    }
    let mut h = Vec::new();
    for id in ids_on_both_shards("h", 2) {
        let mut c = Client::connect(b.port, Opts::new(Ver::V5, &id)).await;
        c.sub(&format!("$share/h/{topic}"), 1).await;
        h.push((id, c));
    }
    let mut plain = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("plain", 1))).await;
    plain.sub(&topic, 1).await;

    const N: usize = 40;
    let mut pubs = Vec::new();
    for id in ids_on_both_shards("p", 2) {
        pubs.push(Client::connect(b.port, Opts::new(Ver::V5, &id)).await);
    }
    let mut expected = BTreeSet::new();
    for i in 0..N {
        let payload = format!("m{i:03}");
        pubs[i % 2].publish(&topic, payload.as_bytes(), 1, false).await;
        expected.insert(payload);
    }
    for (name, group) in [("g", &mut g), ("h", &mut h)] {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut per_shard = [0usize; SHARDS];
        for (id, c) in group.iter_mut() {
            for m in c.drain_msgs(N + 1).await {
                *seen.entry(String::from_utf8(m.payload).unwrap()).or_default() += 1;
                per_shard[shard_of(id)] += 1;
            }
        }
        let total: usize = seen.values().sum();
        assert_eq!(total, N, "group {name}: {N} messages must be delivered {N} times in total, seen {seen:?}");
        assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), expected, "group {name}: every message once");
        assert!(per_shard.iter().all(|n| *n > 0), "group {name}: members on both shards should share the load: {per_shard:?}");
    }
    let all: BTreeSet<String> = plain.drain_msgs(N + 1).await.into_iter().map(|m| String::from_utf8(m.payload).unwrap()).collect();
    assert_eq!(all, expected, "a non-shared subscriber gets every message");
}

#[tokio::test]
async fn no_local_on_shared_subscription_is_a_protocol_error_mqtt_3_8_3_4() {
    let b = Broker::start();
    let mut c = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("c", 0))).await;
    let pid = 3u16;
    let mut body = pid.to_be_bytes().to_vec();
    props_bytes(&[], &mut body);
    mqtt_str(b"$share/g/nl/t", &mut body);
    body.push(sub_opts(1, true, false, 0));
    c.send_raw(&frame(0x82, &body)).await;
    let got = c.expect_closed().await;
    assert_eq!(disconnect_codes(&got), vec![0x82], "DISCONNECT 0x82 (protocol error) expected, got {got:?}");
}

#[tokio::test]
async fn no_local_subscription_skips_own_messages_mqtt_3_8_3_3() {
    let b = Broker::start();
    let mut me = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("me", 0))).await;
    me.subscribe(&[("nl/t", sub_opts(1, true, false, 0))], &[]).await;
    let mut other = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("other", 1))).await;
    other.subscribe(&[("nl/t", sub_opts(1, true, false, 0))], &[]).await;
    me.publish("nl/t", b"from me", 1, false).await;
    other.publish("nl/t", b"from other", 1, false).await;
    let m = me.expect_msg().await;
    assert_eq!(m.payload, b"from other", "no local: own message delivered back");
    me.expect_no_msg(QUIET).await;
    let m = other.expect_msg().await;
    assert_eq!(m.payload, b"from me");
    other.expect_no_msg(QUIET).await;
}

#[tokio::test]
async fn subscription_identifiers_are_sent_with_matching_messages_mqtt_3_3_4_3() {
    let b = Broker::start();
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("s", 0))).await;
    assert_eq!(s.subscribe(&[("si/+", 1)], &[Prop::Var(pid::SUBSCRIPTION_ID, 7)]).await, vec![1]);
    assert_eq!(s.subscribe(&[("si/#", 1)], &[Prop::Var(pid::SUBSCRIPTION_ID, 268_435_455)]).await, vec![1]);
    assert_eq!(s.subscribe(&[("si/a/b", 1)], &[]).await, vec![1]);
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 1))).await;
    p.publish("si/a", b"both", 1, false).await;
    p.publish("si/a/b", b"hash-and-none", 1, false).await;
    let mut got = BTreeMap::new();
    for m in s.drain_msgs(5).await {
        let mut ids = m.props.vars(pid::SUBSCRIPTION_ID);
        ids.sort();
        got.entry(String::from_utf8(m.payload).unwrap()).or_insert_with(Vec::new).push(ids);
    }
    // One copy carrying every matching identifier [MQTT-3.3.4-4], or one copy per subscription
    // each carrying its own [MQTT-3.3.4-3].
    let both = got.get("both").expect("message to si/a missing");
    let flat: BTreeSet<u32> = both.iter().flatten().copied().collect();
    assert_eq!(flat, BTreeSet::from([7, 268_435_455]), "identifiers for si/a: {both:?}");
    let other = got.get("hash-and-none").expect("message to si/a/b missing");
    let flat: BTreeSet<u32> = other.iter().flatten().copied().collect();
    assert_eq!(flat, BTreeSet::from([268_435_455]), "identifiers for si/a/b: {other:?}");
}

#[tokio::test]
async fn topic_alias_from_client_is_resolved_for_subscribers_mqtt_3_3_2_12() {
    let b = Broker::start();
    let mut s5 = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("s5", 0))).await;
    s5.sub("ta/full/topic", 1).await;
    let mut s3 = Client::connect(b.port, Opts::new(Ver::V311, &id_on_shard("s3", 1))).await;
    s3.sub("ta/full/topic", 1).await;
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 1))).await;
    let max = p.connack_props.u16(pid::TOPIC_ALIAS_MAXIMUM).unwrap_or(0);
    assert!(max >= 1, "broker announces no topic alias maximum; cannot test aliases");
    p.publish_with("ta/full/topic", b"first", 1, false, &[Prop::U16(pid::TOPIC_ALIAS, 1)]).await;
    p.publish_with("", b"second", 1, false, &[Prop::U16(pid::TOPIC_ALIAS, 1)]).await;
    p.publish_with("", b"third", 0, false, &[Prop::U16(pid::TOPIC_ALIAS, 1)]).await;
    for s in [&mut s5, &mut s3] {
        for payload in [&b"first"[..], b"second", b"third"] {
            let m = s.expect_msg().await;
            assert_eq!((m.wire_topic.as_str(), m.payload.as_slice()), ("ta/full/topic", payload));
            assert!(m.props.u16(pid::TOPIC_ALIAS).is_none(), "client's alias leaked to a subscriber");
        }
    }
}

#[tokio::test]
async fn topic_alias_above_maximum_closes_with_0x94_mqtt_3_3_2_10() {
    let b = Broker::start();
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 0))).await;
    let max = p.connack_props.u16(pid::TOPIC_ALIAS_MAXIMUM).unwrap_or(0);
    p.publish_nowait("ta/x", b"x", 0, false, &[Prop::U16(pid::TOPIC_ALIAS, max + 1)]).await;
    let got = p.expect_closed().await;
    assert_eq!(disconnect_codes(&got), vec![0x94], "DISCONNECT 0x94 (topic alias invalid) expected: {got:?}");
}

#[tokio::test]
async fn empty_topic_with_unknown_alias_closes_with_0x82_mqtt_3_3_2_3_4() {
    let b = Broker::start();
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 1))).await;
    p.publish_nowait("", b"x", 0, false, &[Prop::U16(pid::TOPIC_ALIAS, 1)]).await;
    let got = p.expect_closed().await;
    assert_eq!(disconnect_codes(&got), vec![0x82], "DISCONNECT 0x82 (protocol error) expected: {got:?}");
}

#[tokio::test]
async fn broker_uses_topic_aliases_only_within_client_maximum_mqtt_3_3_2_11() {
    let b = Broker::start();
    let mut with = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("with", 0)).prop(Prop::U16(pid::TOPIC_ALIAS_MAXIMUM, 2))).await;
    with.sub("alias/#", 1).await;
    let mut without = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("without", 1))).await;
    without.sub("alias/#", 1).await;
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 1))).await;
    let topics = ["alias/a/long/topic/name", "alias/b", "alias/c", "alias/a/long/topic/name", "alias/b", "alias/c", "alias/a/long/topic/name"];
    for (i, t) in topics.iter().enumerate() {
        p.publish(t, format!("{i}").as_bytes(), (i % 2) as u8, false).await;
    }
    let mut used_alias_only = 0;
    for (i, t) in topics.iter().enumerate() {
        let m = with.expect_msg().await;
        assert_eq!(m.topic, *t, "message {i}: alias resolved to the wrong topic");
        assert_eq!(m.payload, format!("{i}").as_bytes());
        if let Some(a) = m.props.u16(pid::TOPIC_ALIAS) {
            assert!((1..=2).contains(&a), "alias {a} outside 1..=2 [MQTT-3.3.2-9]");
            if m.wire_topic.is_empty() {
                used_alias_only += 1;
            }
        }
    }
    assert!(used_alias_only > 0, "broker never sent a topic alias alone although the client allowed 2 (feature check)");
    for (i, t) in topics.iter().enumerate() {
        let m = without.expect_msg().await;
        assert_eq!((m.wire_topic.as_str(), m.payload.clone()), (*t, format!("{i}").into_bytes()));
        assert!(m.props.u16(pid::TOPIC_ALIAS).is_none(), "topic alias sent to a client that allows none [MQTT-3.3.2-8]");
    }
}

#[tokio::test]
async fn expired_messages_are_not_delivered_and_expiry_counts_down_mqtt_3_3_2_5() {
    let b = Broker::start();
    let id = id_on_shard("exp", 0);
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &id).clean(false).expiry(300)).await;
    s.sub("mexp/t", 1).await;
    s.disconnect().await;
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 1))).await;
    p.publish_with("mexp/t", b"short", 1, false, &[Prop::U32(pid::MESSAGE_EXPIRY, 1)]).await;
    p.publish_with("mexp/t", b"long", 1, false, &[Prop::U32(pid::MESSAGE_EXPIRY, 100)]).await;
    p.publish("mexp/t", b"forever", 1, false).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &id).clean(false).expiry(300)).await;
    assert!(s.session_present);
    let msgs = s.drain_msgs(5).await;
    let payloads: Vec<&[u8]> = msgs.iter().map(|m| m.payload.as_slice()).collect();
    assert_eq!(payloads, vec![&b"long"[..], b"forever"], "the message with a 1 s expiry must not be delivered after 2 s [MQTT-3.3.2-5]");
    let left = msgs[0].props.u32(pid::MESSAGE_EXPIRY).expect("expiry interval dropped");
    assert!((1..=98).contains(&left), "expiry must be lowered by the time waited [MQTT-3.3.2-6]: {left}");
    assert_eq!(msgs[1].props.u32(pid::MESSAGE_EXPIRY), None);
}

#[tokio::test]
async fn publish_properties_are_passed_through_unchanged_mqtt_3_3_2_4() {
    let b = Broker::start();
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("s", 1))).await;
    s.sub("props/t", 1).await;
    let mut s3 = Client::connect(b.port, Opts::new(Ver::V311, &id_on_shard("s3", 0))).await;
    s3.sub("props/t", 1).await;
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 0))).await;
    let props = [
        Prop::Byte(pid::PAYLOAD_FORMAT, 1),
        Prop::Str(pid::CONTENT_TYPE, "text/plain; charset=utf-8".into()),
        Prop::Str(pid::RESPONSE_TOPIC, "props/reply".into()),
        Prop::Bin(pid::CORRELATION_DATA, vec![0, 1, 2, 0xFF]),
        Prop::User("k".into(), "v1".into()),
        Prop::User("a".into(), "b".into()),
        Prop::User("k".into(), "v2".into()),
    ];
    p.publish_with("props/t", "päyload".as_bytes(), 1, false, &props).await;
    let m = s.expect_msg().await;
    assert_eq!(m.payload, "päyload".as_bytes());
    assert_eq!(m.props.byte(pid::PAYLOAD_FORMAT), Some(1), "payload format indicator [MQTT-3.3.2-4]");
    assert_eq!(m.props.str(pid::CONTENT_TYPE), Some("text/plain; charset=utf-8"), "content type [MQTT-3.3.2-20]");
    assert_eq!(m.props.str(pid::RESPONSE_TOPIC), Some("props/reply"), "response topic [MQTT-3.3.2-15]");
    assert_eq!(m.props.bin(pid::CORRELATION_DATA), Some(&[0u8, 1, 2, 0xFF][..]), "correlation data [MQTT-3.3.2-16]");
    let users = vec![("k".to_string(), "v1".to_string()), ("a".into(), "b".into()), ("k".into(), "v2".into())];
    assert_eq!(m.props.users(), users, "user properties in order [MQTT-3.3.2-17/18]");
    let m = s3.expect_msg().await;
    assert_eq!(m.payload, "päyload".as_bytes());
}

#[tokio::test]
async fn messages_larger_than_client_maximum_packet_size_are_not_sent_mqtt_3_1_2_25() {
    let b = Broker::start();
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("s", 0)).prop(Prop::U32(pid::MAXIMUM_PACKET_SIZE, 200))).await;
    s.sub("mps/t", 1).await;
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 1))).await;
    p.publish("mps/t", &[b'a'; 50], 1, false).await;
    p.publish("mps/t", &[b'b'; 500], 1, false).await;
    p.publish("mps/t", &[b'c'; 500], 0, false).await;
    p.publish("mps/t", &[b'd'; 60], 1, false).await;
    p.publish("mps/t", &[b'e'; 60], 0, false).await;
    let msgs = s.drain_msgs(10).await;
    let firsts: Vec<u8> = msgs.iter().map(|m| m.payload[0]).collect();
    assert_eq!(firsts, b"ade".to_vec(), "only the messages that fit in 200 bytes, in order");
}

#[tokio::test]
async fn broker_keeps_at_most_receive_maximum_unacknowledged_mqtt_3_3_4_7() {
    let b = Broker::start();
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("s", 1)).prop(Prop::U16(pid::RECEIVE_MAXIMUM, 1))).await;
    s.sub("rm/t", 2).await;
    s.auto_ack = false;
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 0))).await;
    for i in 0..5u8 {
        p.publish("rm/t", &[i], if i % 2 == 0 { 1 } else { 2 }, false).await;
    }
    for i in 0..5u8 {
        let m = s.expect_msg().await;
        assert_eq!(m.payload, vec![i], "in order");
        // While this one is unacknowledged nothing else may come.
        s.expect_no_msg(Duration::from_millis(250)).await;
        if m.qos == 1 {
            s.puback(m.pid).await;
        } else {
            s.pubrec(m.pid).await;
            let rel = s.wait_for("PUBREL", |p| matches!(p, Pkt::PubRel { .. })).await;
            // Still in flight until PUBCOMP.
            s.expect_no_msg(Duration::from_millis(250)).await;
            if let Pkt::PubRel { pid, .. } = rel {
                s.pubcomp(pid).await;
            }
        }
    }
    s.expect_no_msg(QUIET).await;
}
