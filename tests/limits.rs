//! Limits a single client could otherwise push the broker's memory past: topic depth and length,
//! queued bytes per session and per broker, connections and sessions per broker. Each refusal
//! comes before the memory is spent, with the reason code that fits, and is counted in `$SYS`.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

fn deep(levels: usize) -> String {
    vec!["a"; levels].join("/")
}

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_of_30000_levels_are_refused_before_they_cost_memory_v5_0x8f() {
    let mut b = Broker::with_config("sys_interval = 1\n");
    let before = b.rss();
    let filter = deep(30_000);
    for ver in [Ver::V5, Ver::V311] {
        let mut c = Client::connect(b.port, Opts::new(ver, &uniq("deep"))).await;
        // Ten such filters in one SUBSCRIBE: 586 KiB, under the 1 MiB packet limit.
        let filters: Vec<(&str, u8)> = (0..10).map(|_| (filter.as_str(), 1)).collect();
        let codes = c.subscribe(&filters, &[]).await;
        let refused = if ver.is_v5() { 0x8F } else { 0x80 };
        assert_eq!(codes, vec![refused; 10], "{ver:?}");
        c.disconnect().await;
    }
    let grown = b.rss().saturating_sub(before);
    assert!(grown < 64 * MIB, "the broker grew by {} MiB", grown / MIB);
    b.sys_value("topics/refused", WAIT, |v| v == 20).await;
    b.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_at_the_level_limit_works_and_one_level_more_is_refused() {
    let b = Broker::with_config("[limits]\nmax_topic_levels = 8\n");
    let mut c = Client::connect(b.port, Opts::new(Ver::V5, &uniq("levels"))).await;
    assert_eq!(c.subscribe(&[(&deep(9), 1), ("$share/g/a/a/a/a/a/a/a/+", 1)], &[]).await, vec![0x8F, 1], "the $share prefix does not count");
    c.sub(&deep(8), 1).await;
    c.publish(&deep(8), b"eight levels", 1, false).await;
    assert_eq!(c.expect_msg().await.payload, b"eight levels");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_to_a_topic_beyond_the_limits_is_refused_v5_0x90_and_dropped_v3() {
    let b = Broker::with_config("sys_interval = 1\n[limits]\nmax_topic_levels = 8\nmax_topic_length = 100\n");
    let mut watcher = Client::connect(b.port, Opts::new(Ver::V311, &uniq("watch"))).await;
    watcher.sub("#", 1).await;
    let long = "x".repeat(101);
    let mut v5 = Client::connect(b.port, Opts::new(Ver::V5, &uniq("pub5"))).await;
    for topic in [deep(9), long.clone()] {
        let pid = v5.publish_nowait(&topic, b"no", 1, false, &[]).await;
        match v5.wait_for("PUBACK", |p| matches!(p, Pkt::PubAck { .. })).await {
            Pkt::PubAck { pid: got, code } => assert_eq!((got, code), (pid, 0x90)),
            _ => unreachable!(),
        }
    }
    let mut v3 = Client::connect(b.port, Opts::new(Ver::V311, &uniq("pub3"))).await;
    // 3.x cannot be told [MQTT-3.3.5-2]: acknowledged as usual, and not delivered.
    v3.publish(&deep(9), b"no", 1, false).await;
    v3.publish(&deep(9), b"no", 2, false).await;
    v3.publish("fine/topic", b"yes", 1, false).await;
    assert_eq!(watcher.expect_msg().await.payload, b"yes");
    watcher.expect_no_msg(QUIET).await;
    b.sys_value("topics/refused", WAIT, |v| v == 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_will_topic_beyond_the_limits_is_refused_at_connect_v5_0x90() {
    let b = Broker::with_config("[limits]\nmax_topic_levels = 8\n");
    let (_, code) = Client::try_connect(b.port, Opts::new(Ver::V5, &uniq("will")).will(Will::new(&deep(9), b"bye", 0))).await;
    assert_eq!(code, Some(0x90));
    let (_, code) = Client::try_connect(b.port, Opts::new(Ver::V311, &uniq("will")).will(Will::new(&deep(9), b"bye", 0))).await;
    assert_eq!(code, Some(0x05));
}

/// Four persistent sessions subscribe and go offline; `count` messages of `size` bytes follow.
async fn fill_offline_sessions(b: &Broker, prefix: &str, count: usize, size: usize) -> Vec<String> {
    let ids = ids_on_both_shards(prefix, 4);
    for id in &ids {
        let mut c = Client::connect(b.port, Opts::new(Ver::V311, id).clean(false)).await;
        c.sub("queued/#", 1).await;
        c.disconnect().await;
    }
    let mut p = Client::connect(b.port, Opts::new(Ver::V311, &uniq("filler"))).await;
    let payload = vec![0x5Au8; size];
    for _ in 0..count {
        p.publish("queued/big", &payload, 1, false).await;
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_queues_are_bounded_in_bytes_per_session() {
    let mut b = Broker::with_config("sys_interval = 1\n[limits]\nmax_queued_bytes = 16777216\n");
    let before = b.rss();
    // 4 sessions × 1,000 × 128 KiB would be 500 MiB; each session keeps 16 MiB.
    let ids = fill_offline_sessions(&b, "offline", 1000, 128 * 1024).await;
    let grown = b.rss().saturating_sub(before);
    assert!(grown < 256 * MIB, "the broker grew by {} MiB", grown / MIB);
    b.assert_serving().await;
    let mut c = Client::connect(b.port, Opts::new(Ver::V311, &ids[0]).clean(false)).await;
    let kept = c.drain_msgs(1000).await.len();
    assert!((100..=128).contains(&kept), "a session kept {kept} messages of 128 KiB under a 16 MiB limit");
    let dropped = b.sys_value("messages/dropped/queue_bytes", WAIT, |v| v >= 4 * (1000 - 128)).await;
    assert!(dropped <= 4 * 1000, "{dropped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_queues_together_stay_within_the_broker_total() {
    // 8 MiB for the whole broker (4 MiB per shard), far below the per-session limit.
    let b = Broker::with_config("sys_interval = 1\n[limits]\nmax_queued_bytes_total = 8388608\n");
    fill_offline_sessions(&b, "total", 200, 64 * 1024).await;
    let queued = b.sys_value("messages/queued/bytes", WAIT, |v| v > 0).await;
    assert!(queued <= 8 * MIB, "{queued} bytes queued");
    b.sys_value("messages/dropped/broker_queue_bytes", WAIT, |v| v > 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_broker_limit_are_refused_v5_0x97_v3_0x03() {
    let b = Broker::with_config("sys_interval = 1\n[limits]\nmax_connections = 3\n");
    let mut kept = Vec::new();
    for id in ids_on_both_shards("conn", 3) {
        kept.push(Client::connect(b.port, Opts::new(Ver::V311, &id)).await);
    }
    assert_eq!(Client::try_connect(b.port, Opts::new(Ver::V5, &uniq("extra"))).await.1, Some(0x97));
    assert_eq!(Client::try_connect(b.port, Opts::new(Ver::V311, &uniq("extra"))).await.1, Some(0x03));
    kept.pop().expect("three clients").disconnect().await;
    // A freed place can be taken again (the count follows disconnects).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, code) = Client::try_connect(b.port, Opts::new(Ver::V5, &uniq("again"))).await;
        if code == Some(0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no place after a disconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_beyond_the_broker_limit_are_refused_but_existing_ones_resume() {
    let b = Broker::with_config("[limits]\nmax_sessions = 2\n");
    let ids = ids_on_both_shards("sess", 2);
    for id in &ids {
        Client::connect(b.port, Opts::new(Ver::V311, id).clean(false)).await.disconnect().await;
    }
    assert_eq!(Client::try_connect(b.port, Opts::new(Ver::V5, &uniq("third"))).await.1, Some(0x97));
    let c = Client::connect(b.port, Opts::new(Ver::V311, &ids[1]).clean(false)).await;
    assert!(c.session_present, "an existing session resumes at the limit");
}
