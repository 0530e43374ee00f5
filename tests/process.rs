//! The broker process itself: start-up and shutdown on SIGTERM.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

/// Several brokers started at once (as a CI runner or a test suite does) each accept
/// connections, and each stops on SIGTERM. No retries here: a broker that logs "listening" but
/// never accepts is a start-up bug (glommio's mesh join once left one in a hundred without
/// listeners for seconds). Starts take ~60 ms; the 15 s bound only tells a hang from a slow CI.
#[test]
fn brokers_started_in_parallel_all_accept_connections_and_stop_on_sigterm() {
    for round in 0..3 {
        let handles: Vec<_> = (0..4).map(|_| std::thread::spawn(|| Broker::start_once(None, Duration::from_secs(15)))).collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let mut failures = Vec::new();
        let mut brokers = Vec::new();
        for r in results {
            match r {
                Ok(b) => brokers.push(b),
                Err(e) => failures.push(e),
            }
        }
        for b in brokers.iter_mut() {
            if b.terminate(Duration::from_secs(10)).is_none() {
                failures.push(format!("port {}: still running 10 s after SIGTERM\n{}", b.port, b.log()));
            }
        }
        assert!(failures.is_empty(), "round {round}: {} of 4 brokers failed:\n{}", failures.len(), failures.join("\n---\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_sends_v5_clients_disconnect_0x8b_and_exits_cleanly_mqtt_3_14_2_1() {
    let mut b = Broker::start();
    let mut v5 = Vec::new();
    for id in ids_on_both_shards("v5", 2) {
        v5.push(Client::connect(b.port, Opts::new(Ver::V5, &id)).await);
    }
    let mut v3 = Client::connect(b.port, Opts::new(Ver::V311, &id_on_shard("v3", 1))).await;
    let status = tokio::task::block_in_place(|| b.terminate(Duration::from_secs(10)));
    let status = status.unwrap_or_else(|| panic!("broker still running 10 s after SIGTERM\n{}", b.log()));
    assert!(status.success(), "exit status after SIGTERM: {status}\n{}", b.log());
    for c in v5.iter_mut() {
        let got = c.expect_closed().await;
        assert_eq!(disconnect_codes(&got), vec![0x8B], "v5 client should get DISCONNECT 0x8B (server shutting down): {got:?}");
    }
    let got = v3.expect_closed().await;
    assert!(disconnect_codes(&got).is_empty());
}
