//! `--reconnect` against a broker that is restarted on the same port mid-run: with reconnects
//! allowed, every subscriber connects again, re-subscribes and receives what is published after
//! the restart, and the run succeeds; without, the lost connections fail the run.

// In a test, unwrap states what the test relies on; its failure is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{bench, kv, Broker, Running};

fn sub_args<'a>(port: &'a str, reconnect: &'a str, duration: &'a str) -> Vec<&'a str> {
    vec![
        "sub", "-h", "127.0.0.1", "-p", port, "-c", "2", "-t", "x/%i", "--reconnect", reconnect, "--duration", duration,
        "--cores", "1",
    ]
}

#[test]
fn subscribers_reconnect_and_resubscribe_after_a_broker_restart() {
    let started = Instant::now();
    let mut broker = Broker::start();
    let port = broker.port.to_string();
    // Five attempts (100 ms apart, doubling to 1 s) span 2.5 s: ample for the restart, which can
    // take a few hundred ms while the old broker's port is still held.
    let mut sub = Running::spawn(&sub_args(&port, "5", "5"));
    sub.wait_for("sub total=2", Duration::from_secs(15));
    broker.terminate();
    let _broker = Broker::start_on(broker.port, Duration::from_secs(3));
    // Both clients reconnect (and re-subscribe) on their own.
    sub.wait_for("reconnect total=2", Duration::from_secs(3));
    // What is published after the restart reaches them: each publisher's topic x/%i matches one
    // subscriber's filter.
    let pub_out = bench(&["pub", "-h", "127.0.0.1", "-p", &port, "-c", "2", "-t", "x/%i", "-q", "1", "-L", "2", "--cores", "1"]);
    assert!(pub_out.status.success(), "{}", common::text(&pub_out));
    let (status, out) = sub.finish();
    assert_eq!(kv(&out, "conn_lost"), 2, "{out}");
    assert_eq!(kv(&out, "reconnect"), 2, "{out}");
    // Two first connects and two reconnects; no attempt that failed for good.
    assert_eq!(kv(&out, "connect_succ"), 4, "{out}");
    assert_eq!(kv(&out, "connect_fail"), 0, "{out}");
    assert_eq!(kv(&out, "sub"), 2, "{out}");
    assert_eq!(kv(&out, "sub_fail"), 0, "{out}");
    assert_eq!(kv(&out, "received"), 2, "{out}");
    assert!(out.contains("result: OK"), "{out}");
    assert!(status.success(), "lost connections that were re-established must not fail the run:\n{out}");
    assert!(started.elapsed() < Duration::from_secs(10), "{out}");
}

#[test]
fn without_reconnect_lost_connections_fail_the_run() {
    let mut broker = Broker::start();
    let port = broker.port.to_string();
    let mut sub = Running::spawn(&sub_args(&port, "0", "3"));
    sub.wait_for("sub total=2", Duration::from_secs(15));
    broker.terminate();
    let _broker = Broker::start_on(broker.port, Duration::from_secs(3));
    let (status, out) = sub.finish();
    assert_eq!(kv(&out, "conn_lost"), 2, "{out}");
    assert_eq!(kv(&out, "reconnect"), 0, "{out}");
    assert_eq!(kv(&out, "connect_succ"), 2, "{out}");
    assert!(out.contains("result: FAIL"), "{out}");
    assert!(!status.success(), "lost connections must fail the run:\n{out}");
}
