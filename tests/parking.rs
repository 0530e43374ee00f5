//! Parked connections (`park_idle_ms`): an idle connection gives up its task and is watched by
//! the broker's epoll thread, and everything still reaches it, in both directions.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

/// Parks after 300 ms idle; `$SYS` every second to see it; a short connect timeout.
const CONFIG: &str = "park_idle_ms = 300\nsys_interval = 1\n[limits]\nconnect_timeout = 1\n";

#[tokio::test]
async fn parked_clients_still_get_messages_pings_and_acknowledgements() {
    let b = Broker::with_config(CONFIG);
    // One pair per shard and protocol version, so both shards park and wake connections.
    let mut pairs = Vec::new();
    for (shard, ver) in [(0, Ver::V311), (1, Ver::V5)] {
        let mut sub = Client::connect(b.port, Opts::new(ver, &id_on_shard("park-sub", shard))).await;
        sub.sub(&format!("park/{shard}"), 1).await;
        let publ = Client::connect(b.port, Opts::new(ver, &id_on_shard("park-pub", 1 - shard))).await;
        pairs.push((shard, sub, publ));
    }
    // All four are idle long enough to park; the $SYS monitor counts itself only once it parks.
    b.sys_value("clients/parked", Duration::from_secs(6), |n| n >= 4).await;
    for (shard, sub, publ) in &mut pairs {
        // Input wakes the publisher (its PUBACK comes back), output wakes the subscriber.
        publ.publish(&format!("park/{shard}"), b"after parking", 1, false).await;
        let m = sub.expect_msg().await;
        assert_eq!(m.payload, b"after parking");
        assert_eq!(m.qos, 1);
    }
    // Parked again, and woken again: a second round after another idle spell.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for (shard, sub, publ) in &mut pairs {
        publ.publish(&format!("park/{shard}"), b"twice", 1, false).await;
        assert_eq!(sub.expect_msg().await.payload, b"twice");
        sub.send_raw(&[0xC0, 0x00]).await;
        sub.wait_for("PINGRESP", |p| matches!(p, Pkt::PingResp)).await;
    }
}

#[tokio::test]
async fn a_parked_connection_is_taken_over_with_0x8e_mqtt_3_1_4_3() {
    let b = Broker::with_config(CONFIG);
    for shard in 0..SHARDS {
        let id = id_on_shard("park-tk", shard);
        let mut old = Client::connect(b.port, Opts::new(Ver::V5, &id)).await;
        tokio::time::sleep(Duration::from_millis(900)).await;
        let _new = Client::connect(b.port, Opts::new(Ver::V5, &id)).await;
        let before_close = old.expect_closed().await;
        assert_eq!(disconnect_codes(&before_close), vec![0x8E], "a parked connection that is taken over is told so");
    }
}

#[tokio::test]
async fn a_parked_connection_that_goes_silent_is_closed_by_keep_alive_mqtt_3_1_2_24() {
    let b = Broker::with_config(CONFIG);
    let mut c = Client::connect(b.port, Opts::new(Ver::V5, &uniq("park-ka")).keep_alive(1)).await;
    // 1.5 × keep alive, plus the sweep's period and some slack.
    let closed = c.read_until_closed(Duration::from_secs(4)).await.expect("a silent parked client must be closed");
    assert_eq!(disconnect_codes(&closed), vec![0x8D], "keep alive timeout");
}

#[tokio::test]
async fn a_connection_that_never_sends_connect_is_closed_after_the_connect_timeout() {
    let b = Broker::with_config(CONFIG);
    let (got, closed) = raw_exchange(b.port, &[], Duration::from_secs(5)).await;
    assert!(closed, "a connection that sent nothing was left open past limits.connect_timeout");
    assert!(got.is_empty(), "nothing is sent before CONNECT");
}
