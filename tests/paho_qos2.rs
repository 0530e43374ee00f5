//! QoS 2 the way clients in the field use it, with paho-mqtt (Python): many messages in flight,
//! more than our receive maximum, without being disconnected, and each message delivered exactly
//! once [MQTT-4.3.3].
//!
//! Needs Python with paho-mqtt: `scripts/test.sh` installs it into `target/pyenv`;
//! `RATATOSK_PYTHON` names another interpreter.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use common::*;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("RATATOSK_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Runs the paho script (bounded: every wait in it is) and returns its `key=value` lines.
fn paho(mode: &str, port: u16, version: &str) -> HashMap<String, u64> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/paho/qos2_in_flight.py");
    let out = Command::new(python())
        .arg(&script)
        .args([mode, &port.to_string(), version])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/test.sh, which installs Python with paho-mqtt", python().display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "paho script failed ({}): {stderr}\nif paho-mqtt is missing, run scripts/test.sh (it installs it into target/pyenv)",
        out.status
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim().parse().unwrap_or_else(|_| panic!("bad value in {l:?}", l = (k, v)))))
        .collect()
}

#[test]
fn paho_with_100_qos2_in_flight_completes_all_without_disconnects_v311_and_v5() {
    let b = Broker::start();
    for version in ["4", "5"] {
        let r = paho("publish", b.port, version);
        assert_eq!(r["disconnects"], 0, "MQTT {version}: {r:?}");
        assert_eq!(r["completed"], 200, "MQTT {version}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v5_client_past_the_receive_maximum_is_counted_and_past_the_hard_cap_disconnected_0x93() {
    let b = Broker::with_config("sys_interval = 1\n[limits]\nreceive_maximum = 4\nmax_unreleased_qos2 = 8\n");
    let mut c = Client::connect(b.port, Opts::new(Ver::V5, &uniq("greedy"))).await;
    for pid in 1..=8u16 {
        let bytes = c.publish_bytes("q2/cap", b"x", 2, false, false, pid, &[]);
        c.send_raw(&bytes).await;
        let p = c.wait_for("PUBREC", |p| matches!(p, Pkt::PubRec { .. })).await;
        assert!(matches!(p, Pkt::PubRec { pid: got, code: 0 } if got == pid), "{p:?}");
    }
    let bytes = c.publish_bytes("q2/cap", b"x", 2, false, false, 9, &[]);
    c.send_raw(&bytes).await;
    assert_eq!(disconnect_codes(&c.expect_closed().await), vec![0x93]);
    // The fifth to the eighth went past the receive maximum of 4, and so did the ninth.
    b.sys_value("qos2/receive_maximum_exceeded", WAIT, |v| v == 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v311_client_is_never_disconnected_for_unreleased_qos2() {
    let b = Broker::with_config("[limits]\nreceive_maximum = 4\nmax_unreleased_qos2 = 8\n");
    let mut c = Client::connect(b.port, Opts::new(Ver::V311, &uniq("many"))).await;
    for pid in 1..=100u16 {
        let bytes = c.publish_bytes("q2/many", b"x", 2, false, false, pid, &[]);
        c.send_raw(&bytes).await;
        c.wait_for("PUBREC", |p| matches!(p, Pkt::PubRec { pid: got, .. } if *got == pid)).await;
    }
    for pid in 1..=100u16 {
        c.pubrel(pid).await;
        c.wait_for("PUBCOMP", |p| matches!(p, Pkt::PubComp { pid: got, .. } if *got == pid)).await;
    }
}

#[test]
fn paho_mixed_qos1_and_qos2_delivers_each_qos2_message_exactly_once_mqtt_4_3_3() {
    let b = Broker::start();
    for version in ["4", "5"] {
        let r = paho("mixed", b.port, version);
        assert_eq!(r["disconnects"], 0, "MQTT {version}: {r:?}");
        assert_eq!(r["completed"], 200, "MQTT {version}: {r:?}");
        assert_eq!(r["q1_distinct"], 100, "MQTT {version}: {r:?}");
        assert_eq!((r["q2_distinct"], r["q2_deliveries"]), (100, 100), "MQTT {version}: {r:?}");
        assert_eq!(r["max_repeats"], 1, "MQTT {version}: {r:?}");
    }
}
