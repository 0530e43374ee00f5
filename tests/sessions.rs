//! Sessions: clean session / clean start, persistent sessions with queued messages, session
//! expiry, client id takeover, empty client ids, keep alive and the connect timeout.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Opts for a persistent session: clean session 0 (3.1.1) or clean start 0 with a long expiry (v5).
fn persistent(ver: Ver, id: &str) -> Opts {
    let o = Opts::new(ver, id).clean(false);
    if ver.is_v5() {
        o.expiry(300)
    } else {
        o
    }
}

async fn session_present_flags(ver: Ver) {
    let b = Broker::start();
    let id = id_on_shard("sp", 1);
    // A new client id: no session, whatever clean says [MQTT-3.2.2-3].
    let c = Client::connect(b.port, persistent(ver, &id)).await;
    assert!(!c.session_present, "session present for a brand-new client id");
    c.disconnect().await;
    // Resuming: session present [MQTT-3.2.2-2].
    let c = Client::connect(b.port, persistent(ver, &id)).await;
    assert!(c.session_present, "session present not set when resuming a persistent session");
    c.disconnect().await;
    // Clean: never session present [MQTT-3.2.2-1].
    let c = Client::connect(b.port, Opts::new(ver, &id)).await;
    assert!(!c.session_present, "session present set on a clean session/clean start");
    c.disconnect().await;
    // The clean session ended with its connection (3.1.1) / had expiry 0 (v5): nothing to resume.
    let c = Client::connect(b.port, persistent(ver, &id)).await;
    assert!(!c.session_present, "a clean session survived its connection");
}

#[tokio::test]
async fn session_present_reflects_resumed_session_v311_mqtt_3_2_2_1() {
    session_present_flags(Ver::V311).await;
}

#[tokio::test]
async fn session_present_reflects_resumed_session_v5_mqtt_3_2_2_2() {
    session_present_flags(Ver::V5).await;
}

async fn clean_discards_subscriptions(ver: Ver) {
    let b = Broker::start();
    let id = id_on_shard("cs", 0);
    let mut c = Client::connect(b.port, persistent(ver, &id)).await;
    c.sub("cs/t", 1).await;
    c.disconnect().await;
    let mut c = Client::connect(b.port, Opts::new(ver, &id)).await;
    assert!(!c.session_present);
    let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", 1))).await;
    p.publish("cs/t", b"to the old session", 1, false).await;
    c.expect_no_msg(QUIET).await;
}

#[tokio::test]
async fn clean_session_discards_previous_subscriptions_v311_mqtt_3_1_2_6() {
    clean_discards_subscriptions(Ver::V311).await;
}

#[tokio::test]
async fn clean_start_discards_previous_subscriptions_v5_mqtt_3_1_2_4() {
    clean_discards_subscriptions(Ver::V5).await;
}

async fn persistent_session_queues(ver: Ver) {
    let b = Broker::start();
    for (sub_shard, pub_shard) in [(0, 1), (1, 1)] {
        let id = id_on_shard("ps", sub_shard);
        let topic = format!("ps/{id}");
        let mut c = Client::connect(b.port, persistent(ver, &id)).await;
        c.sub(&topic, 1).await;
        c.disconnect().await;
        let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", pub_shard))).await;
        for i in 0..3 {
            p.publish(&topic, format!("m{i}").as_bytes(), 1, false).await;
        }
        p.disconnect().await;
        let mut c = Client::connect(b.port, persistent(ver, &id)).await;
        assert!(c.session_present, "session present after reconnect");
        for i in 0..3 {
            let m = c.expect_msg().await;
            assert_eq!(m.payload, format!("m{i}").as_bytes(), "queued messages in order [MQTT-4.6.0-6]");
            assert_eq!(m.qos, 1);
        }
        // The subscription itself was kept: live messages flow without subscribing again.
        let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", 1 - pub_shard))).await;
        p.publish(&topic, b"live", 1, false).await;
        assert_eq!(c.expect_msg().await.payload, b"live");
    }
}

#[tokio::test]
async fn persistent_session_keeps_subscriptions_and_queued_qos1_v311_mqtt_3_1_2_4() {
    persistent_session_queues(Ver::V311).await;
}

#[tokio::test]
async fn persistent_session_keeps_subscriptions_and_queued_qos1_v5_mqtt_3_1_2_23() {
    persistent_session_queues(Ver::V5).await;
}

/// An unacknowledged QoS 1 message is sent again, with DUP, when the session resumes.
async fn unacked_resent(ver: Ver) {
    let b = Broker::start();
    let id = id_on_shard("ua", 1);
    let mut c = Client::connect(b.port, persistent(ver, &id)).await;
    c.sub("ua/t", 1).await;
    let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", 0))).await;
    p.publish("ua/t", b"unacked", 1, false).await;
    c.auto_ack = false;
    let m = c.expect_msg().await;
    assert!(!m.dup);
    c.drop_abruptly();
    let mut c = Client::connect(b.port, persistent(ver, &id)).await;
    assert!(c.session_present);
    let m = c.expect_msg().await;
    assert_eq!(m.payload, b"unacked");
    assert!(m.dup, "a resent PUBLISH must have DUP set [MQTT-4.4.0-1]");
    c.expect_no_msg(QUIET).await;
}

#[tokio::test]
async fn unacknowledged_qos1_is_resent_with_dup_on_resume_v311_mqtt_4_4_0_1() {
    unacked_resent(Ver::V311).await;
}

#[tokio::test]
async fn unacknowledged_qos1_is_resent_with_dup_on_resume_v5_mqtt_4_4_0_1() {
    unacked_resent(Ver::V5).await;
}

#[tokio::test]
async fn session_expires_after_its_interval_v5_mqtt_3_1_2_23() {
    let b = Broker::start();
    let id = id_on_shard("exp", 0);
    let mut c = Client::connect(b.port, Opts::new(Ver::V5, &id).clean(false).expiry(1)).await;
    c.sub("exp/t", 1).await;
    c.disconnect().await;
    // Within the interval the session is there.
    let c = Client::connect(b.port, Opts::new(Ver::V5, &id).clean(false).expiry(1)).await;
    assert!(c.session_present, "session gone before its expiry interval");
    c.disconnect().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let mut p = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("p", 1))).await;
    p.publish("exp/t", b"after expiry", 1, false).await;
    let mut c = Client::connect(b.port, Opts::new(Ver::V5, &id).clean(false).expiry(1)).await;
    assert!(!c.session_present, "session still present 2.2 s after a 1 s expiry");
    c.expect_no_msg(QUIET).await;
}

#[tokio::test]
async fn session_with_expiry_zero_ends_at_disconnect_v5_mqtt_3_1_2_23() {
    let b = Broker::start();
    let id = id_on_shard("exp0", 1);
    let mut c = Client::connect(b.port, Opts::new(Ver::V5, &id).clean(false)).await;
    c.sub("exp0/t", 1).await;
    c.disconnect().await;
    let c = Client::connect(b.port, Opts::new(Ver::V5, &id).clean(false)).await;
    assert!(!c.session_present, "a session with no expiry interval outlived its connection");
}

#[tokio::test]
async fn disconnect_may_shorten_session_expiry_v5_mqtt_3_14_2_2() {
    let b = Broker::start();
    let id = id_on_shard("dexp", 0);
    let mut c = Client::connect(b.port, Opts::new(Ver::V5, &id).clean(false).expiry(300)).await;
    c.sub("dexp/t", 1).await;
    // DISCONNECT with session expiry 0 ends the session now.
    c.disconnect_with(0, &[Prop::U32(pid::SESSION_EXPIRY, 0)]).await;
    let c = Client::connect(b.port, Opts::new(Ver::V5, &id).clean(false).expiry(300)).await;
    assert!(!c.session_present, "DISCONNECT with session expiry 0 did not end the session");
}

async fn takeover(ver: Ver) {
    let b = Broker::start();
    for shard in 0..SHARDS {
        let id = id_on_shard("tk", shard);
        let mut old = Client::connect(b.port, Opts::new(ver, &id)).await;
        old.sub("tk/t", 0).await;
        let mut new = Client::connect(b.port, Opts::new(ver, &id)).await;
        let before_close = old.expect_closed().await;
        if ver.is_v5() {
            assert_eq!(disconnect_codes(&before_close), vec![0x8E], "old connection should get DISCONNECT 0x8E (session taken over) [MQTT-3.1.4-3]");
        } else {
            assert_eq!(disconnect_codes(&before_close), Vec::<u8>::new());
        }
        new.sub("tk/t", 0).await;
        let mut p = Client::connect(b.port, Opts::new(ver, &id_on_shard("p", 1 - shard))).await;
        p.publish("tk/t", b"to the new one", 0, false).await;
        assert_eq!(new.expect_msg().await.payload, b"to the new one");
        new.disconnect().await;
    }
}

#[tokio::test]
async fn same_client_id_takes_over_and_closes_old_connection_v311_mqtt_3_1_4_2() {
    takeover(Ver::V311).await;
}

#[tokio::test]
async fn same_client_id_takes_over_with_disconnect_0x8e_v5_mqtt_3_1_4_3() {
    takeover(Ver::V5).await;
}

#[tokio::test]
async fn takeover_of_persistent_session_keeps_its_subscriptions_v311_mqtt_3_1_4_3() {
    let b = Broker::start();
    let id = id_on_shard("tkp", 1);
    let mut old = Client::connect(b.port, persistent(Ver::V311, &id)).await;
    old.sub("tkp/t", 1).await;
    let mut new = Client::connect(b.port, persistent(Ver::V311, &id)).await;
    assert!(new.session_present);
    old.expect_closed().await;
    let mut p = Client::connect(b.port, Opts::new(Ver::V311, &id_on_shard("p", 0))).await;
    p.publish("tkp/t", b"kept", 1, false).await;
    assert_eq!(new.expect_msg().await.payload, b"kept");
}

#[tokio::test]
async fn empty_client_id_with_clean_session_is_accepted_v311_mqtt_3_1_3_6() {
    let b = Broker::start();
    let mut c = Client::connect(b.port, Opts::new(Ver::V311, "")).await;
    c.sub("anon/t", 1).await;
    c.publish("anon/t", b"self", 1, false).await;
    assert_eq!(c.expect_msg().await.payload, b"self");
}

#[tokio::test]
async fn empty_client_id_without_clean_session_is_rejected_with_code_2_v311_mqtt_3_1_3_8() {
    let b = Broker::start();
    let (mut c, code) = Client::try_connect(b.port, Opts::new(Ver::V311, "").clean(false)).await;
    assert_eq!(code, Some(0x02), "CONNACK return code 0x02 (identifier rejected) expected");
    c.expect_closed().await;
}

#[tokio::test]
async fn empty_client_id_gets_assigned_client_identifier_v5_mqtt_3_2_2_16() {
    let b = Broker::start();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let mut c = Client::connect(b.port, Opts::new(Ver::V5, "").clean(false).expiry(60)).await;
        let id = c.connack_props.str(pid::ASSIGNED_CLIENT_ID).expect("CONNACK without Assigned Client Identifier").to_string();
        assert!(!id.is_empty());
        c.sub("assigned/t", 1).await;
        c.disconnect().await;
        ids.push(id);
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "assigned identifiers must be unique: {ids:?}");
    // The assigned id names a real session: resuming it finds the session [MQTT-3.1.3-7].
    for id in &ids {
        let c = Client::connect(b.port, Opts::new(Ver::V5, id).clean(false).expiry(60)).await;
        assert!(c.session_present, "session of assigned id {id} (home shard {}) not found", shard_of(id));
        c.disconnect().await;
    }
}

async fn keep_alive_expiry(ver: Ver) {
    let mut b = Broker::start();
    let mut c = Client::connect(b.port, Opts::new(ver, &id_on_shard("ka", 1)).keep_alive(1)).await;
    let start = Instant::now();
    let got = match c.read_until_closed(Duration::from_secs(4)).await {
        Ok(v) => v,
        Err(v) => panic!("silent client with keep alive 1 s still connected after 4 s; got {v:?}"),
    };
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1000), "closed after {took:?}, before the keep alive itself");
    assert!(took <= Duration::from_millis(3000), "closed only after {took:?} (1.5 × keep alive is 1.5 s)");
    let codes = disconnect_codes(&got);
    if ver.is_v5() {
        assert!(codes.is_empty() || codes == [0x8D], "v5 close may carry DISCONNECT 0x8D only, got {got:?}");
    } else {
        assert!(codes.is_empty(), "no DISCONNECT to a 3.1.1 client: {got:?}");
    }
    b.assert_serving().await;
}

#[tokio::test]
async fn silent_client_is_disconnected_after_one_and_a_half_keep_alive_v311_mqtt_3_1_2_24() {
    keep_alive_expiry(Ver::V311).await;
}

#[tokio::test]
async fn silent_client_is_disconnected_after_one_and_a_half_keep_alive_v5_mqtt_3_1_2_24() {
    keep_alive_expiry(Ver::V5).await;
}

async fn pings_keep_alive(ver: Ver) {
    let b = Broker::start();
    let mut c = Client::connect(b.port, Opts::new(ver, &id_on_shard("ping", 0)).keep_alive(1)).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.send_raw(&[0xC0, 0x00]).await;
        let p = c.recv(WAIT).await;
        assert_eq!(p, Ok(Pkt::PingResp), "PINGREQ must be answered with PINGRESP [MQTT-3.12.4-1]");
    }
    c.sub("ping/t", 0).await;
}

#[tokio::test]
async fn pingreq_within_keep_alive_keeps_connection_open_v311_mqtt_3_12_4_1() {
    pings_keep_alive(Ver::V311).await;
}

#[tokio::test]
async fn pingreq_within_keep_alive_keeps_connection_open_v5_mqtt_3_12_4_1() {
    pings_keep_alive(Ver::V5).await;
}

#[tokio::test]
async fn connection_without_connect_is_closed_after_connect_timeout() {
    let mut b = Broker::with_config("[limits]\nconnect_timeout = 1\n");
    let start = Instant::now();
    let (got, closed) = raw_exchange(b.port, &[], Duration::from_secs(4)).await;
    let took = start.elapsed();
    assert!(closed, "connection with no CONNECT still open after 4 s (connect_timeout = 1)");
    assert!(got.is_empty(), "nothing may be sent before CONNECT: {got:?}");
    assert!(took >= Duration::from_millis(800) && took <= Duration::from_millis(3000), "closed after {took:?}");
    // A partial CONNECT that never completes is closed too.
    let start = Instant::now();
    let (_, closed) = raw_exchange(b.port, &[0x10, 0x20, 0x00, 0x04, b'M'], Duration::from_secs(4)).await;
    assert!(closed, "connection with a partial CONNECT still open after 4 s");
    assert!(start.elapsed() <= Duration::from_millis(3000));
    b.assert_serving().await;
}
