//! Publish/subscribe behaviour: QoS flows across shards, wildcards, `$` topics, overlapping
//! subscriptions, unsubscribe, and interoperability with rumqttc and the mosquitto clients.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

/// Six subscribers and six publishers with homes on both shards: every subscriber receives every
/// publisher's message, at the subscribed QoS.
async fn all_publishers_reach_all_subscribers(ver: Ver, qos: u8) {
    let b = Broker::start();
    let topic = format!("fan/{}", uniq("t"));
    let sub_ids = ids_on_both_shards("fsub", 6);
    let pub_ids = ids_on_both_shards("fpub", 6);
    let mut subs = Vec::new();
    for id in &sub_ids {
        let mut c = Client::connect(b.port, Opts::new(ver, id)).await;
        c.sub(&topic, qos).await;
        subs.push(c);
    }
    let mut expected = BTreeSet::new();
    for id in &pub_ids {
        let mut c = Client::connect(b.port, Opts::new(ver, id)).await;
        let payload = format!("from {id} (shard {})", shard_of(id));
        c.publish(&topic, payload.as_bytes(), qos, false).await;
        expected.insert(payload);
        c.disconnect().await;
    }
    for (i, s) in subs.iter_mut().enumerate() {
        let mut got = BTreeSet::new();
        for _ in 0..expected.len() {
            let m = s.expect_msg().await;
            assert_eq!(m.topic, topic);
            assert_eq!(m.qos, qos, "delivered QoS");
            got.insert(String::from_utf8(m.payload).unwrap());
        }
        assert_eq!(got, expected, "subscriber {} (shard {})", sub_ids[i], shard_of(&sub_ids[i]));
        s.expect_no_msg(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn qos0_reaches_subscribers_on_both_shards_v311_mqtt_4_3_1() {
    all_publishers_reach_all_subscribers(Ver::V311, 0).await;
}

#[tokio::test]
async fn qos0_reaches_subscribers_on_both_shards_v5_mqtt_4_3_1() {
    all_publishers_reach_all_subscribers(Ver::V5, 0).await;
}

#[tokio::test]
async fn qos1_reaches_subscribers_on_both_shards_v311_mqtt_4_3_2() {
    all_publishers_reach_all_subscribers(Ver::V311, 1).await;
}

#[tokio::test]
async fn qos1_reaches_subscribers_on_both_shards_v5_mqtt_4_3_2() {
    all_publishers_reach_all_subscribers(Ver::V5, 1).await;
}

#[tokio::test]
async fn qos2_reaches_subscribers_on_both_shards_v311_mqtt_4_3_3() {
    all_publishers_reach_all_subscribers(Ver::V311, 2).await;
}

#[tokio::test]
async fn qos2_reaches_subscribers_on_both_shards_v5_mqtt_4_3_3() {
    all_publishers_reach_all_subscribers(Ver::V5, 2).await;
}

/// rumqttc clients of both versions, spread over both shards, at QoS 1.
#[tokio::test]
async fn rumqttc_v4_and_v5_clients_exchange_qos1_across_shards_mqtt_4_3_2() {
    let b = Broker::start();
    let topic = format!("rq/{}", uniq("t"));
    let mut v4subs = Vec::new();
    let mut v5subs = Vec::new();
    for (i, id) in ids_on_both_shards("rsub", 6).iter().enumerate() {
        if i < 3 {
            let mut c = RumqttV4::connect(b.port, id, true).await;
            c.subscribe(&topic, rumqttc::QoS::AtLeastOnce).await;
            v4subs.push(c);
        } else {
            let mut c = RumqttV5::connect(b.port, id).await;
            c.subscribe(&topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await;
            v5subs.push(c);
        }
    }
    let mut expected = BTreeSet::new();
    for (i, id) in ids_on_both_shards("rpub", 6).iter().enumerate() {
        let payload = format!("p-{id}");
        if i % 2 == 0 {
            let mut c = RumqttV4::connect(b.port, id, true).await;
            c.publish(&topic, rumqttc::QoS::AtLeastOnce, payload.as_bytes()).await;
            c.disconnect().await;
        } else {
            let mut c = RumqttV5::connect(b.port, id).await;
            c.publish(&topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, payload.as_bytes()).await;
            c.disconnect().await;
        }
        expected.insert(payload);
    }
    for s in v4subs.iter_mut() {
        let mut got = BTreeSet::new();
        for _ in 0..expected.len() {
            let p = s.next(WAIT).await.expect("v4 subscriber: message missing");
            assert_eq!(p.topic, topic);
            assert_eq!(p.qos, rumqttc::QoS::AtLeastOnce);
            got.insert(String::from_utf8(p.payload.to_vec()).unwrap());
        }
        assert_eq!(got, expected);
    }
    for s in v5subs.iter_mut() {
        let mut got = BTreeSet::new();
        for _ in 0..expected.len() {
            let p = s.next(WAIT).await.expect("v5 subscriber: message missing");
            assert_eq!(&p.topic[..], topic.as_bytes());
            got.insert(String::from_utf8(p.payload.to_vec()).unwrap());
        }
        assert_eq!(got, expected);
    }
}

/// A message goes out at the lower of its own QoS and the subscription's.
async fn delivered_qos_is_the_minimum(ver: Ver) {
    let b = Broker::start();
    let mut s0 = Client::connect(b.port, Opts::new(ver, &id_on_shard("s0", 0))).await;
    let mut s1 = Client::connect(b.port, Opts::new(ver, &id_on_shard("s1", 1))).await;
    s0.sub("min/q", 1).await;
    s1.sub("min/q", 2).await;
    let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", 1))).await;
    p.publish("min/q", b"two", 2, false).await;
    p.publish("min/q", b"zero", 0, false).await;
    let a = s0.expect_msg().await;
    assert_eq!((a.payload.as_slice(), a.qos), (&b"two"[..], 1));
    let a = s0.expect_msg().await;
    assert_eq!((a.payload.as_slice(), a.qos), (&b"zero"[..], 0));
    let c = s1.expect_msg().await;
    assert_eq!((c.payload.as_slice(), c.qos), (&b"two"[..], 2));
    let c = s1.expect_msg().await;
    assert_eq!((c.payload.as_slice(), c.qos), (&b"zero"[..], 0));
}

#[tokio::test]
async fn delivered_qos_is_minimum_of_message_and_subscription_v311_mqtt_3_8_4_6() {
    delivered_qos_is_the_minimum(Ver::V311).await;
}

#[tokio::test]
async fn delivered_qos_is_minimum_of_message_and_subscription_v5_mqtt_3_8_4_8() {
    delivered_qos_is_the_minimum(Ver::V5).await;
}

/// A QoS 2 PUBLISH sent again (DUP) before PUBREL is acknowledged again but delivered once.
async fn qos2_duplicate_once(ver: Ver) {
    let b = Broker::start();
    let mut s = Client::connect(b.port, Opts::new(ver, &id_on_shard("s", 0))).await;
    s.sub("dup/t", 2).await;
    let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", 1))).await;
    let first = p.publish_bytes("dup/t", b"once", 2, false, false, 7, &[]);
    let again = p.publish_bytes("dup/t", b"once", 2, false, true, 7, &[]);
    p.send_raw(&first).await;
    p.wait_for("PUBREC", |x| matches!(x, Pkt::PubRec { pid: 7, .. })).await;
    p.send_raw(&again).await;
    p.wait_for("second PUBREC", |x| matches!(x, Pkt::PubRec { pid: 7, .. })).await;
    p.pubrel(7).await;
    p.wait_for("PUBCOMP", |x| matches!(x, Pkt::PubComp { pid: 7, .. })).await;
    let m = s.expect_msg().await;
    assert_eq!(m.payload, b"once");
    s.expect_no_msg(QUIET).await;
}

#[tokio::test]
async fn qos2_duplicate_publish_is_delivered_once_v311_mqtt_4_3_3() {
    qos2_duplicate_once(Ver::V311).await;
}

#[tokio::test]
async fn qos2_duplicate_publish_is_delivered_once_v5_mqtt_4_3_3() {
    qos2_duplicate_once(Ver::V5).await;
}

async fn wildcards(ver: Ver) {
    let b = Broker::start();
    let mut plus = Client::connect(b.port, Opts::new(ver, &id_on_shard("plus", 0))).await;
    let mut hash = Client::connect(b.port, Opts::new(ver, &id_on_shard("hash", 1))).await;
    let mut both = Client::connect(b.port, Opts::new(ver, &id_on_shard("both", 1))).await;
    plus.sub("w/+/c", 1).await;
    hash.sub("w/#", 1).await;
    both.sub("+/+/+", 1).await;
    let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", 0))).await;
    for t in ["w/b/c", "w/b/d", "w/x/y/c", "w", "x/b/c", "w//c"] {
        p.publish(t, t.as_bytes(), 1, false).await;
    }
    let topics = |v: Vec<Msg>| v.into_iter().map(|m| m.topic).collect::<BTreeSet<_>>();
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    // [MQTT-4.7.1-3] `+` matches exactly one level, an empty one included.
    assert_eq!(topics(plus.drain_msgs(10).await), set(&["w/b/c", "w//c"]));
    // [MQTT-4.7.1-2] `#` matches the parent level and any number of children.
    assert_eq!(topics(hash.drain_msgs(10).await), set(&["w/b/c", "w/b/d", "w/x/y/c", "w", "w//c"]));
    assert_eq!(topics(both.drain_msgs(10).await), set(&["w/b/c", "w/b/d", "x/b/c", "w//c"]));
}

#[tokio::test]
async fn plus_and_hash_wildcards_match_per_level_v311_mqtt_4_7_1() {
    wildcards(Ver::V311).await;
}

#[tokio::test]
async fn plus_and_hash_wildcards_match_per_level_v5_mqtt_4_7_1() {
    wildcards(Ver::V5).await;
}

async fn dollar_topics(ver: Ver) {
    let b = Broker::start();
    let mut all = Client::connect(b.port, Opts::new(ver, &id_on_shard("all", 0))).await;
    all.sub("#", 0).await;
    let mut plus = Client::connect(b.port, Opts::new(ver, &id_on_shard("plus", 1))).await;
    plus.sub("+/x", 0).await;
    let mut dollar = Client::connect(b.port, Opts::new(ver, &id_on_shard("dollar", 1))).await;
    dollar.sub("$app/#", 0).await;
    let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", 0))).await;
    p.publish("$app/x", b"hidden", 1, false).await;
    p.publish("marker/x", b"marker", 1, false).await;
    // Messages from one publisher arrive in order, so the first one seen must be the marker.
    let m = all.expect_msg().await;
    assert_eq!(m.topic, "marker/x", "`#` matched a `$` topic");
    let m = plus.expect_msg().await;
    assert_eq!(m.topic, "marker/x", "`+/x` matched a `$` topic");
    let m = dollar.expect_msg().await;
    assert_eq!(m.topic, "$app/x", "an explicit `$app/#` subscription gets `$app` topics");
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_leading_wildcards_v311_mqtt_4_7_2_1() {
    dollar_topics(Ver::V311).await;
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_leading_wildcards_v5_mqtt_4_7_2_1() {
    dollar_topics(Ver::V5).await;
}

/// v5: overlapping subscriptions of one client give one delivery at the highest granted QoS.
#[tokio::test]
async fn overlapping_subscriptions_deliver_once_at_max_qos_v5_mqtt_3_3_4_2() {
    let b = Broker::start();
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("s", 0))).await;
    assert_eq!(s.subscribe(&[("ov/#", 0), ("ov/+", 2), ("ov/a", 1)], &[]).await, vec![0, 2, 1]);
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 1))).await;
    p.publish("ov/a", b"x", 2, false).await;
    let msgs = s.drain_msgs(5).await;
    assert_eq!(msgs.len(), 1, "one delivery expected, got {msgs:?}");
    assert_eq!(msgs[0].qos, 2);
}

/// 3.1.1: overlapping subscriptions deliver at least once, at the highest matching QoS.
#[tokio::test]
async fn overlapping_subscriptions_deliver_at_max_qos_v311_mqtt_3_3_5_1() {
    let b = Broker::start();
    let mut s = Client::connect(b.port, Opts::new(Ver::V311, &id_on_shard("s", 1))).await;
    assert_eq!(s.subscribe(&[("ov/#", 0), ("ov/+", 2)], &[]).await, vec![0, 2]);
    let mut p = Client::connect(b.port, Opts::new(Ver::V311, &id_on_shard("p", 0))).await;
    p.publish("ov/a", b"x", 2, false).await;
    let msgs = s.drain_msgs(5).await;
    assert!(!msgs.is_empty(), "no delivery");
    assert!(msgs.iter().all(|m| m.payload == b"x"));
    assert_eq!(msgs.iter().map(|m| m.qos).max(), Some(2), "{msgs:?}");
}

async fn unsubscribe_stops(ver: Ver) {
    let b = Broker::start();
    let mut s = Client::connect(b.port, Opts::new(ver, &id_on_shard("s", 0))).await;
    s.sub("uns/t", 1).await;
    s.sub("uns/keep", 1).await;
    let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", 1))).await;
    p.publish("uns/t", b"before", 1, false).await;
    assert_eq!(s.expect_msg().await.payload, b"before");
    let codes = s.unsubscribe(&["uns/t"]).await;
    if ver.is_v5() {
        assert_eq!(codes, vec![0x00]);
        assert_eq!(s.unsubscribe(&["uns/never"]).await, vec![0x11], "no subscription existed");
    }
    p.publish("uns/t", b"after", 1, false).await;
    p.publish("uns/keep", b"kept", 1, false).await;
    let m = s.expect_msg().await;
    assert_eq!(m.payload, b"kept", "a message for the removed subscription arrived first");
    s.expect_no_msg(QUIET).await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery_v311_mqtt_3_10_4_2() {
    unsubscribe_stops(Ver::V311).await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery_v5_mqtt_3_10_4_2() {
    unsubscribe_stops(Ver::V5).await;
}

/// A subscription receives what is published after it, not what was published (and acknowledged)
/// before it was made: only retained messages reach back in time. The publisher has its PUBACK
/// and has disconnected before the subscriber even connects, so nothing is concurrent here.
async fn nothing_from_before_subscribe(ver: Ver) {
    let b = Broker::start();
    for round in 0..6 {
        let (pub_shard, sub_shard) = (round % 2, 1 - round % 2);
        let topic = format!("past/{}", uniq("t"));
        let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", pub_shard))).await;
        p.publish(&topic, b"published before the subscription", 1, false).await;
        p.disconnect().await;
        let mut s = Client::connect(b.port, Opts::new(ver, &id_on_shard("s", sub_shard))).await;
        s.sub(&topic, 1).await;
        if let Some(m) = s.next_msg(Duration::from_millis(200)).await {
            panic!("round {round} (publisher shard {pub_shard}, subscriber shard {sub_shard}): got a non-retained message published before the subscription existed: {m:?}");
        }
    }
}

#[tokio::test]
async fn message_published_before_subscribe_is_not_delivered_v311_mqtt_3_8_4() {
    nothing_from_before_subscribe(Ver::V311).await;
}

#[tokio::test]
async fn message_published_before_subscribe_is_not_delivered_v5_mqtt_3_8_4() {
    nothing_from_before_subscribe(Ver::V5).await;
}

// --- mosquitto clients -------------------------------------------------------------------------

async fn mosquitto_pub_to_rumqttc(version: &str) {
    let b = Broker::start();
    let port = b.port.to_string();
    let topic = format!("mq/{}", uniq("in"));
    let payload = format!("hello from mosquitto_pub {version}");
    if version == "mqttv5" {
        let mut s = RumqttV5::connect(b.port, &id_on_shard("rs", 1)).await;
        s.subscribe(&topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await;
        let out = mosquitto("mosquitto_pub", &["-h", "127.0.0.1", "-p", &port, "-V", version, "-q", "1", "-t", &topic, "-m", &payload])
            .finish(WAIT)
            .await;
        assert!(out.success, "mosquitto_pub failed: {out:?}");
        let m = s.next(WAIT).await.expect("message from mosquitto_pub");
        assert_eq!(&m.topic[..], topic.as_bytes());
        assert_eq!(&m.payload[..], payload.as_bytes());
    } else {
        let mut s = RumqttV4::connect(b.port, &id_on_shard("rs", 0), true).await;
        s.subscribe(&topic, rumqttc::QoS::AtLeastOnce).await;
        let out = mosquitto("mosquitto_pub", &["-h", "127.0.0.1", "-p", &port, "-V", version, "-q", "1", "-t", &topic, "-m", &payload])
            .finish(WAIT)
            .await;
        assert!(out.success, "mosquitto_pub failed: {out:?}");
        let m = s.next(WAIT).await.expect("message from mosquitto_pub");
        assert_eq!(m.topic, topic);
        assert_eq!(&m.payload[..], payload.as_bytes());
    }
}

#[tokio::test]
async fn mosquitto_pub_v311_reaches_rumqttc_subscriber() {
    mosquitto_pub_to_rumqttc("mqttv311").await;
}

#[tokio::test]
async fn mosquitto_pub_v5_reaches_rumqttc_subscriber() {
    mosquitto_pub_to_rumqttc("mqttv5").await;
}

#[tokio::test]
async fn mosquitto_pub_v31_reaches_rumqttc_subscriber() {
    mosquitto_pub_to_rumqttc("mqttv31").await;
}

async fn rumqttc_to_mosquitto_sub(version: &str) {
    let b = Broker::start();
    let port = b.port.to_string();
    let topic = format!("mq/{}", uniq("out"));
    let payload = format!("hello to mosquitto_sub {version}");
    let mut sub = mosquitto(
        "mosquitto_sub",
        &["-h", "127.0.0.1", "-p", &port, "-V", version, "-q", "1", "-t", &topic, "-C", "1", "-v", "-W", "8"],
    );
    let mut p = RumqttV4::connect(b.port, &id_on_shard("rp", 1), true).await;
    // mosquitto_sub gives no sign when its SUBACK arrived, so publish until it has one message.
    for _ in 0..40 {
        p.publish(&topic, rumqttc::QoS::AtLeastOnce, payload.as_bytes()).await;
        if sub.exited() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let out = sub.finish(Duration::from_secs(2)).await;
    assert!(out.success, "mosquitto_sub did not receive the message: {out:?}");
    assert_eq!(out.stdout.trim_end(), format!("{topic} {payload}"));
}

#[tokio::test]
async fn rumqttc_publish_reaches_mosquitto_sub_v311() {
    rumqttc_to_mosquitto_sub("mqttv311").await;
}

#[tokio::test]
async fn rumqttc_publish_reaches_mosquitto_sub_v5() {
    rumqttc_to_mosquitto_sub("mqttv5").await;
}

#[tokio::test]
async fn rumqttc_publish_reaches_mosquitto_sub_v31() {
    rumqttc_to_mosquitto_sub("mqttv31").await;
}
