//! Defaults that ordinary applications do not trip over: what Mosquitto accepts out of the box
//! (hundreds of subscriptions per client, megabyte payloads) works here without configuration.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

/// A retained 1 MiB message reaches a client that subscribed to 200 topics in one SUBSCRIBE;
/// every filter is granted. Both sides are the Mosquitto command-line clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_subscriptions_and_a_one_mib_payload_work_with_the_defaults() {
    let b = Broker::start();
    let port = b.port.to_string();
    let base = uniq("defaults");
    let payload_file = std::env::temp_dir().join(format!("{base}.bin"));
    std::fs::write(&payload_file, vec![0x42u8; 1024 * 1024]).expect("write payload file");
    let last = format!("{base}/199");
    let publish = mosquitto(
        "mosquitto_pub",
        &["-h", "127.0.0.1", "-p", &port, "-V", "mqttv311", "-q", "1", "-r", "-t", &last, "-f", &payload_file.to_string_lossy()],
    )
    .finish(Duration::from_secs(10))
    .await;
    let _ = std::fs::remove_file(&payload_file);
    assert!(publish.success, "mosquitto_pub of 1 MiB failed: {publish:?}\n{}", b.log());

    let topics: Vec<String> = (0..200).map(|i| format!("{base}/{i}")).collect();
    let mut args: Vec<&str> = vec!["-h", "127.0.0.1", "-p", &port, "-V", "mqttv311", "-q", "1", "-C", "1", "-d", "-F", "%t %l"];
    for t in &topics {
        args.extend(["-t", t.as_str()]);
    }
    let out = mosquitto("mosquitto_sub", &args).finish(Duration::from_secs(10)).await;
    assert!(out.success, "mosquitto_sub did not get the retained message: {out:?}\n{}", b.log());
    let granted = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Subscribed (mid: 1): "))
        .unwrap_or_else(|| panic!("no SUBACK in mosquitto_sub's debug output: {}", out.stdout));
    let codes: Vec<&str> = granted.split(", ").collect();
    assert_eq!(codes.len(), 200, "{granted}");
    assert!(codes.iter().all(|c| *c == "1"), "every filter granted QoS 1: {granted}");
    let line = format!("{last} {}", 1024 * 1024);
    assert!(out.stdout.lines().any(|l| l == line), "expected `{line}` in {}", out.stdout);
}
