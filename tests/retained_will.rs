//! Retained messages (set, replace, clear, retain handling, retain as published, across shards)
//! and will messages (abrupt close, normal DISCONNECT, will delay, DISCONNECT 0x04).

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

async fn retained_set_replace_clear(ver: Ver) {
    let b = Broker::start();
    for (pub_shard, sub_shard) in [(0, 1), (1, 0), (1, 1)] {
        let topic = format!("ret/{}", uniq("t"));
        let mut live = Client::connect(b.port, Opts::new(ver, &id_on_shard("live", sub_shard))).await;
        live.sub(&topic, 1).await;
        let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", pub_shard))).await;
        p.publish(&topic, b"one", 1, true).await;
        // A live subscriber gets it as a normal message: retain 0 [MQTT-3.3.1-9] (v5: no RAP).
        let m = live.expect_msg().await;
        assert_eq!((m.payload.as_slice(), m.retain), (&b"one"[..], false));

        let mut s = Client::connect(b.port, Opts::new(ver, &id_on_shard("s", sub_shard))).await;
        s.sub(&topic, 1).await;
        let m = s.expect_msg().await;
        assert_eq!(m.payload, b"one");
        assert!(m.retain, "a retained message sent on subscribe has retain 1 [MQTT-3.3.1-8]");
        s.disconnect().await;

        p.publish(&topic, b"two", 1, true).await;
        let mut s = Client::connect(b.port, Opts::new(ver, &id_on_shard("s", sub_shard))).await;
        s.sub(&topic, 1).await;
        let msgs = s.drain_msgs(5).await;
        assert_eq!(msgs.len(), 1, "only the latest retained message is kept [MQTT-3.3.1-5]: {msgs:?}");
        assert_eq!(msgs[0].payload, b"two");
        s.disconnect().await;

        // An empty retained payload removes the retained message [MQTT-3.3.1-10/11].
        p.publish(&topic, b"", 1, true).await;
        let mut s = Client::connect(b.port, Opts::new(ver, &id_on_shard("s", sub_shard))).await;
        s.sub(&topic, 1).await;
        s.expect_no_msg(QUIET).await;
    }
}

#[tokio::test]
async fn retained_message_is_set_replaced_and_cleared_v311_mqtt_3_3_1_10() {
    retained_set_replace_clear(Ver::V311).await;
}

#[tokio::test]
async fn retained_message_is_set_replaced_and_cleared_v5_mqtt_3_3_1_6() {
    retained_set_replace_clear(Ver::V5).await;
}

/// Retained messages published by clients of either shard (so owned by either shard) are found by
/// exact and wildcard subscribers whose home is the other shard.
async fn retained_across_shards(ver: Ver) {
    let b = Broker::start();
    let base = uniq("rx");
    let mut expected = BTreeSet::new();
    for i in 0..8 {
        let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", i % 2))).await;
        let topic = format!("{base}/{i}");
        p.publish(&topic, topic.as_bytes(), 1, true).await;
        p.disconnect().await;
        expected.insert(topic);
    }
    for shard in 0..SHARDS {
        let mut s = Client::connect(b.port, Opts::new(ver, &id_on_shard("w", shard))).await;
        s.sub(&format!("{base}/#"), 1).await;
        let msgs = s.drain_msgs(20).await;
        for m in &msgs {
            assert!(m.retain, "message sent because of a new subscription without retain 1 [MQTT-3.3.1-8]: {m:?}");
        }
        assert_eq!(msgs.len(), expected.len(), "one copy per retained topic expected, got {msgs:?}");
        let got: BTreeSet<String> = msgs.into_iter().map(|m| m.topic).collect();
        assert_eq!(got, expected, "wildcard subscriber on shard {shard}");
        for i in 0..8 {
            let mut e = Client::connect(b.port, Opts::new(ver, &id_on_shard("e", shard))).await;
            let topic = format!("{base}/{i}");
            e.sub(&topic, 0).await;
            let m = e.expect_msg().await;
            assert_eq!(m.topic, topic, "exact subscriber on shard {shard}");
            assert!(m.retain, "retained message on subscribe without retain 1 [MQTT-3.3.1-8]: {m:?}");
            e.expect_no_msg(Duration::from_millis(50)).await;
            e.disconnect().await;
        }
    }
}

#[tokio::test]
async fn retained_messages_reach_subscribers_on_the_other_shard_v311_mqtt_3_3_1_6() {
    retained_across_shards(Ver::V311).await;
}

#[tokio::test]
async fn retained_messages_reach_subscribers_on_the_other_shard_v5_mqtt_3_3_1_9() {
    retained_across_shards(Ver::V5).await;
}

/// The next message is the retained "kept", flagged retain 1 [MQTT-3.3.1-8], and only one copy.
async fn expect_retained(s: &mut Client, when: &str) {
    let m = s.expect_msg().await;
    assert_eq!(m.payload, b"kept", "{when}");
    assert!(m.retain, "{when}: message sent for a new subscription without retain 1 (a live copy of an old message?) {m:?}");
    s.expect_no_msg(Duration::from_millis(150)).await;
}

#[tokio::test]
async fn retain_handling_0_1_2_controls_retained_on_subscribe_v5_mqtt_3_3_1_9_to_11() {
    let b = Broker::start();
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 0))).await;
    p.publish("rh/t", b"kept", 1, true).await;
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("s", 1))).await;

    // 0: at every subscribe, even a repeated one [MQTT-3.3.1-9].
    assert_eq!(s.subscribe(&[("rh/t", sub_opts(1, false, false, 0))], &[]).await, vec![1]);
    expect_retained(&mut s, "first subscribe").await;
    assert_eq!(s.subscribe(&[("rh/t", sub_opts(1, false, false, 0))], &[]).await, vec![1]);
    expect_retained(&mut s, "retain handling 0, repeated subscribe").await;
    s.expect_no_msg(QUIET).await;

    // 1: only when the subscription is new [MQTT-3.3.1-10].
    assert_eq!(s.subscribe(&[("rh/+", sub_opts(1, false, false, 1))], &[]).await, vec![1]);
    expect_retained(&mut s, "retain handling 1, new subscription").await;
    assert_eq!(s.subscribe(&[("rh/+", sub_opts(1, false, false, 1))], &[]).await, vec![1]);
    s.expect_no_msg(QUIET).await;

    // 2: never [MQTT-3.3.1-11].
    assert_eq!(s.subscribe(&[("rh/#", sub_opts(1, false, false, 2))], &[]).await, vec![1]);
    s.expect_no_msg(QUIET).await;
}

#[tokio::test]
async fn retain_as_published_keeps_retain_flag_on_live_delivery_v5_mqtt_3_3_1_12() {
    let b = Broker::start();
    let mut rap = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("rap", 0))).await;
    rap.subscribe(&[("rap/t", sub_opts(1, false, true, 0))], &[]).await;
    let mut plain = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("plain", 1))).await;
    plain.subscribe(&[("rap/t", sub_opts(1, false, false, 0))], &[]).await;
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 1))).await;
    p.publish("rap/t", b"r", 1, true).await;
    p.publish("rap/t", b"n", 1, false).await;
    let m = rap.expect_msg().await;
    assert_eq!((m.payload.as_slice(), m.retain), (&b"r"[..], true), "retain as published [MQTT-3.3.1-13]");
    let m = rap.expect_msg().await;
    assert_eq!((m.payload.as_slice(), m.retain), (&b"n"[..], false));
    let m = plain.expect_msg().await;
    assert_eq!((m.payload.as_slice(), m.retain), (&b"r"[..], false), "without RAP the retain flag is cleared [MQTT-3.3.1-12]");
    let m = plain.expect_msg().await;
    assert_eq!((m.payload.as_slice(), m.retain), (&b"n"[..], false));
}

// --- wills -------------------------------------------------------------------------------------

async fn will_on_abrupt_close(ver: Ver) {
    let b = Broker::start();
    for (will_shard, sub_shard) in [(0, 1), (1, 0)] {
        let topic = format!("will/{}", uniq("t"));
        let mut s = Client::connect(b.port, Opts::new(ver, &id_on_shard("s", sub_shard))).await;
        s.sub(&topic, 1).await;
        let mut w = Will::new(&topic, b"gone", 1);
        w.retain = true;
        let c = Client::connect(b.port, Opts::new(ver, &id_on_shard("w", will_shard)).will(w)).await;
        s.expect_no_msg(Duration::from_millis(100)).await;
        c.drop_abruptly();
        let m = s.expect_msg().await;
        assert_eq!((m.topic.as_str(), m.payload.as_slice(), m.qos), (topic.as_str(), &b"gone"[..], 1));
        // Will retain 1: the will is kept as a retained message [MQTT-3.1.2-17].
        let mut late = Client::connect(b.port, Opts::new(ver, &id_on_shard("late", will_shard))).await;
        late.sub(&topic, 1).await;
        let m = late.expect_msg().await;
        assert_eq!(m.payload, b"gone");
        assert!(m.retain);
    }
}

#[tokio::test]
async fn will_is_published_when_connection_drops_v311_mqtt_3_1_2_8() {
    will_on_abrupt_close(Ver::V311).await;
}

#[tokio::test]
async fn will_is_published_when_connection_drops_v5_mqtt_3_1_2_8() {
    will_on_abrupt_close(Ver::V5).await;
}

async fn no_will_after_disconnect(ver: Ver) {
    let b = Broker::start();
    let topic = format!("nowill/{}", uniq("t"));
    let mut s = Client::connect(b.port, Opts::new(ver, &id_on_shard("s", 0))).await;
    s.sub(&topic, 1).await;
    let c = Client::connect(b.port, Opts::new(ver, &id_on_shard("w", 1)).will(Will::new(&topic, b"gone", 1))).await;
    c.disconnect().await;
    s.expect_no_msg(Duration::from_millis(600)).await;
}

#[tokio::test]
async fn no_will_after_normal_disconnect_v311_mqtt_3_14_4_3() {
    no_will_after_disconnect(Ver::V311).await;
}

#[tokio::test]
async fn no_will_after_normal_disconnect_v5_mqtt_3_1_2_10() {
    no_will_after_disconnect(Ver::V5).await;
}

fn delayed_will(topic: &str, delay: u32) -> Will {
    let mut w = Will::new(topic, b"late", 1);
    w.props.push(Prop::U32(pid::WILL_DELAY, delay));
    w
}

#[tokio::test]
async fn will_waits_for_will_delay_interval_v5_mqtt_3_1_3_9() {
    let b = Broker::start();
    let topic = format!("wd/{}", uniq("t"));
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("s", 1))).await;
    s.sub(&topic, 1).await;
    let c = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("w", 0)).expiry(30).will(delayed_will(&topic, 2))).await;
    let start = Instant::now();
    c.drop_abruptly();
    s.expect_no_msg(Duration::from_millis(1300)).await;
    let m = s.next_msg(Duration::from_secs(3)).await.expect("delayed will never arrived");
    let took = start.elapsed();
    assert_eq!(m.payload, b"late");
    assert!(took >= Duration::from_millis(1500), "will after {took:?}, delay is 2 s");
    assert!(m.props.u32(pid::WILL_DELAY).is_none());
}

#[tokio::test]
async fn will_is_not_sent_when_client_reconnects_within_will_delay_v5_mqtt_3_1_3_9() {
    let b = Broker::start();
    let topic = format!("wdr/{}", uniq("t"));
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("s", 0))).await;
    s.sub(&topic, 1).await;
    let id = id_on_shard("w", 1);
    let c = Client::connect(b.port, Opts::new(Ver::V5, &id).clean(false).expiry(30).will(delayed_will(&topic, 1))).await;
    c.drop_abruptly();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let back = Client::connect(b.port, Opts::new(Ver::V5, &id).clean(false).expiry(30)).await;
    assert!(back.session_present);
    s.expect_no_msg(Duration::from_millis(1800)).await;
    drop(back);
}

#[tokio::test]
async fn will_is_sent_when_session_ends_before_will_delay_v5_mqtt_3_1_3_9() {
    let b = Broker::start();
    let topic = format!("wde/{}", uniq("t"));
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("s", 1))).await;
    s.sub(&topic, 1).await;
    let c = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("w", 1)).expiry(1).will(delayed_will(&topic, 30))).await;
    let start = Instant::now();
    c.drop_abruptly();
    let m = s.next_msg(Duration::from_secs(4)).await.expect("will not sent when the session ended (expiry 1 s, will delay 30 s)");
    assert_eq!(m.payload, b"late");
    assert!(start.elapsed() >= Duration::from_millis(700), "will before the session ended");
}

#[tokio::test]
async fn disconnect_with_will_message_0x04_publishes_the_will_v5_mqtt_3_14_2_1() {
    let b = Broker::start();
    let topic = format!("w04/{}", uniq("t"));
    let mut s = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("s", 0))).await;
    s.sub(&topic, 1).await;
    let mut c = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("w", 1)).will(Will::new(&topic, b"asked", 1))).await;
    c.disconnect_with(0x04, &[]).await;
    assert_eq!(s.expect_msg().await.payload, b"asked");
}
