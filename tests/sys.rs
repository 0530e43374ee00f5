//! `$SYS/broker/...` status topics.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;

/// Collects `$SYS` messages until `done` holds for the latest value per topic (bounded).
async fn watch_sys(c: &mut Client, limit: Duration, done: impl Fn(&BTreeMap<String, String>) -> bool) -> BTreeMap<String, String> {
    let deadline = Instant::now() + limit;
    let mut latest = BTreeMap::new();
    while Instant::now() < deadline {
        let Some(m) = c.next_msg(deadline.saturating_duration_since(Instant::now())).await else { break };
        assert!(m.topic.starts_with("$SYS/"), "unexpected topic {}", m.topic);
        latest.insert(m.topic, String::from_utf8_lossy(&m.payload).into_owned());
        if done(&latest) {
            break;
        }
    }
    latest
}

async fn sys_topics(ver: Ver) {
    let b = Broker::with_config("sys_interval = 1\n");
    // Clients on both shards, so the count has to add up over shards.
    let mut others = Vec::new();
    for id in ids_on_both_shards("other", 3) {
        others.push(Client::connect(b.port, Opts::new(ver, &id)).await);
    }
    let mut s = Client::connect(b.port, Opts::new(ver, &id_on_shard("sys", 1))).await;
    s.sub("$SYS/#", 0).await;
    // 4 clients are connected now; allow an update interval for the count to catch up.
    let latest = watch_sys(&mut s, Duration::from_secs(4), |l| {
        l.contains_key("$SYS/broker/version") && l.get("$SYS/broker/clients/connected").map(String::as_str) == Some("4")
    })
    .await;
    let version = latest.get("$SYS/broker/version").unwrap_or_else(|| panic!("no $SYS/broker/version; got {latest:?}"));
    assert!(!version.is_empty());
    assert_eq!(latest.get("$SYS/broker/clients/connected").map(String::as_str), Some("4"), "clients connected; got {latest:?}");
    // The count follows disconnects.
    for c in others.drain(..) {
        c.disconnect().await;
    }
    let latest = watch_sys(&mut s, Duration::from_secs(4), |l| l.get("$SYS/broker/clients/connected").map(String::as_str) == Some("1")).await;
    assert_eq!(latest.get("$SYS/broker/clients/connected").map(String::as_str), Some("1"), "after 3 disconnects; got {latest:?}");
}

#[tokio::test]
async fn sys_topics_report_version_and_connected_clients_v311() {
    sys_topics(Ver::V311).await;
}

#[tokio::test]
async fn sys_topics_report_version_and_connected_clients_v5() {
    sys_topics(Ver::V5).await;
}

#[tokio::test]
async fn sys_version_is_retained_for_late_subscribers() {
    let b = Broker::with_config("sys_interval = 1\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut s = Client::connect(b.port, Opts::new(Ver::V311, &id_on_shard("late", 0))).await;
    s.sub("$SYS/broker/version", 0).await;
    let m = s.next_msg(Duration::from_millis(900)).await.expect("no retained $SYS/broker/version on subscribe");
    assert!(m.retain, "$SYS/broker/version should arrive as a retained message");
}
