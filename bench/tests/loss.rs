//! Exact loss and duplicate accounting with `sub` and `pub` as separate processes, and with a
//! shared subscription group in `pubsub`, against the real broker.
//!
//! A `sub` told what the publishers send (`--pubs`, `--pub-limit`, the publishers' `-c` and `-L`)
//! counts as lost every message it never received; a subscriber that was absent for part of the
//! stream (its predecessor was SIGKILLed midway) must therefore report loss and fail, and one that
//! was there throughout must report none and succeed.

// In a test, unwrap states what the test relies on; its failure is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{bench, json_num, kv, text, Broker, Running};

/// Messages the publishers send in total, and how many publishers share them.
const LIMIT: &str = "4000";
const PUBS: &str = "2";

fn sub_args<'a>(port: &'a str, duration: &'a str) -> Vec<&'a str> {
    vec![
        "sub", "-h", "127.0.0.1", "-p", port, "-c", "1", "-t", "loss/#", "-q", "1", "--payload-hdrs", "cnt64",
        "--pubs", PUBS, "--pub-limit", LIMIT, "--duration", duration, "--cores", "1",
    ]
}

/// Two QoS 1 publishers, 2000 messages each, one per 2 ms: about four seconds of publishing.
fn start_publishers(port: &str) -> Running {
    Running::spawn(&[
        "pub", "-h", "127.0.0.1", "-p", port, "-c", PUBS, "-t", "loss/%i", "-q", "1", "-F", "4", "-I", "2", "-L", LIMIT,
        "--payload-hdrs", "cnt64", "--cores", "1", "--quiet",
    ])
}

#[test]
fn clean_sub_and_pub_processes_report_zero_loss_and_exit_zero() {
    let b = Broker::start();
    let port = b.port.to_string();
    let started = Instant::now();
    let mut sub = Running::spawn(&sub_args(&port, "40"));
    // The once-a-second line shows the SUBACK; publishing before it would lose messages.
    sub.wait_for("sub total=1", Duration::from_secs(10));
    let (pub_status, pub_out) = start_publishers(&port).finish();
    assert!(pub_status.success(), "{pub_out}");
    assert_eq!(kv(&pub_out, "acked"), 4000, "{pub_out}");
    let (status, out) = sub.finish();
    assert!(status.success(), "clean run must exit 0:\n{out}");
    assert_eq!(kv(&out, "expected"), 4000, "{out}");
    assert_eq!(kv(&out, "received"), 4000, "{out}");
    assert_eq!(kv(&out, "lost"), 0, "{out}");
    assert_eq!(kv(&out, "duplicated"), 0, "{out}");
    assert!(out.contains("result: OK"), "{out}");
    // It stopped because everything had arrived, not at --duration.
    assert!(started.elapsed() < Duration::from_secs(30), "{out}");
}

#[test]
fn killing_the_subscriber_midway_is_reported_as_loss_with_non_zero_exit() {
    let b = Broker::start();
    let port = b.port.to_string();
    let mut first = Running::spawn(&sub_args(&port, "40"));
    first.wait_for("sub total=1", Duration::from_secs(10));
    let publishers = start_publishers(&port);
    // Let about a quarter of the stream go to the first subscriber, then kill it without warning.
    std::thread::sleep(Duration::from_millis(1000));
    first.child.kill().unwrap(); // SIGKILL
    let (killed, _) = first.finish();
    assert!(!killed.success());
    // Its replacement comes in midway; it never sees what was sent before it subscribed.
    let mut second = Running::spawn(&sub_args(&port, "8"));
    second.wait_for("sub total=1", Duration::from_secs(10));
    let (pub_status, pub_out) = publishers.finish();
    assert!(pub_status.success(), "{pub_out}");
    assert_eq!(kv(&pub_out, "acked"), 4000, "{pub_out}");
    let (status, out) = second.finish();
    assert!(!status.success(), "loss at QoS 1 must give a non-zero exit:\n{out}");
    let (received, lost) = (kv(&out, "received"), kv(&out, "lost"));
    assert_eq!(kv(&out, "expected"), 4000, "{out}");
    assert!(lost > 0, "{out}");
    assert!(received > 0, "the replacement received the rest of the stream: {out}");
    assert_eq!(received + lost, 4000, "every message is either received or lost: {out}");
    assert!(out.contains("result: FAIL"), "{out}");
}

#[test]
fn shared_group_is_accounted_as_one_subscriber() {
    let b = Broker::start();
    let port = b.port.to_string();
    let o = bench(&[
        "pubsub", "-h", "127.0.0.1", "-p", &port, "-c", "4", "-t", "sh/%i", "--subs", "3", "--sub-topic",
        "$share/g/sh/#", "-q", "1", "-F", "8", "--rate", "2000", "--duration", "2", "--cores", "2", "--json",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    let sent = json_num(&out, "sent");
    assert!(sent > 1000.0, "{out}");
    assert_eq!(json_num(&out, "expected"), sent, "the group gets each message once: {out}");
    assert_eq!(json_num(&out, "received"), sent, "{out}");
    assert_eq!(json_num(&out, "lost"), 0.0, "{out}");
    assert_eq!(json_num(&out, "duplicated"), 0.0, "{out}");
}

#[test]
fn sub_expectation_flags_are_checked() {
    let o = bench(&["sub", "-c", "1", "-t", "x", "--pubs", "2", "-h", "127.0.0.1", "-p", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--pubs needs --pub-limit"), "{}", text(&o));
    let o = bench(&["sub", "-c", "1", "-t", "x", "--pub-limit", "10", "-h", "127.0.0.1", "-p", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cnt64"), "{}", text(&o));
}
