//! ratatosk-bench against the real ratatosk broker: every subcommand runs, a clean QoS 1 run loses
//! nothing, `.hgrm` output agrees with the summary, and emqtt-bench command lines are accepted.
//!
//! The broker binary is the workspace's `target/{debug,release}/ratatosk` (build it with
//! `cargo build -p ratatosk`); each test starts its own on a free loopback port with two shards.

// In a test, unwrap states what the test relies on; its failure is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;

use common::{bench, json_num, temp_path, text, Broker};

#[test]
fn every_subcommand_runs_against_the_broker() {
    let b = Broker::start();
    let port = b.port.to_string();
    let common = ["-h", "127.0.0.1", "-p", &port, "--cores", "2", "--quiet"];

    let o = bench(&[&["conn", "-c", "20", "-i", "1", "--duration", "1"][..], &common].concat());
    assert!(o.status.success(), "conn: {}", text(&o));
    assert!(text(&o).contains("connect_succ=20"), "{}", text(&o));

    let o = bench(&[&["sub", "-c", "3", "-t", "s/%i", "--duration", "1"][..], &common].concat());
    assert!(o.status.success(), "sub: {}", text(&o));
    assert!(text(&o).contains("sub=3"), "{}", text(&o));

    let o = bench(&[&["pub", "-c", "4", "-t", "p/%i", "-q", "1", "-I", "0", "-F", "8", "-L", "400"][..], &common].concat());
    assert!(o.status.success(), "pub: {}", text(&o));
    assert!(text(&o).contains("sent=400 acked=400"), "{}", text(&o));

    let a = temp_path("a.hgrm");
    let bb = temp_path("b.hgrm");
    for h in [&a, &bb] {
        let hs = h.to_string_lossy().into_owned();
        let args = ["pubsub", "-c", "2", "-t", "ps/%i", "--rate", "1000", "--duration", "1", "--hgrm", &hs];
        let o = bench(&[&args[..], &common].concat());
        assert!(o.status.success(), "pubsub: {}", text(&o));
    }
    let svg = temp_path("cmp.svg");
    let o = bench(&["compare", &a.to_string_lossy(), &bb.to_string_lossy(), "--svg", &svg.to_string_lossy()]);
    assert!(o.status.success(), "compare: {}", text(&o));
    assert!(text(&o).contains("p99"), "{}", text(&o));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<polyline"));
    for p in [a, bb, svg] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn clean_qos1_pubsub_run_reports_zero_loss() {
    let b = Broker::start();
    let port = b.port.to_string();
    let o = bench(&[
        "pubsub", "-h", "127.0.0.1", "-p", &port, "-c", "4", "-t", "q1/%i", "-q", "1", "-F", "16", "--rate", "4000",
        "--duration", "2", "--cores", "2", "--json",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    let sent = json_num(&out, "sent");
    assert!(sent > 1000.0, "{out}");
    assert_eq!(json_num(&out, "acked"), sent, "{out}");
    assert_eq!(json_num(&out, "expected"), sent, "one subscriber per publisher: {out}");
    assert_eq!(json_num(&out, "received"), sent, "{out}");
    assert_eq!(json_num(&out, "lost"), 0.0, "{out}");
    assert_eq!(json_num(&out, "duplicated"), 0.0, "{out}");
    assert_eq!(json_num(&out, "out_of_order"), 0.0, "{out}");
}

#[test]
fn hgrm_output_parses_and_its_p99_matches_the_summary() {
    let b = Broker::start();
    let port = b.port.to_string();
    let path = temp_path("p99.hgrm");
    let o = bench(&[
        "pubsub", "-h", "127.0.0.1", "-p", &port, "-c", "4", "-t", "h/%i", "--rate", "4000", "--duration", "2",
        "--cores", "2", "--json", "--hgrm", &path.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let hgrm = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    // Data rows: value (µs), percentile (fraction), total count, and 1/(1-p) except on the last row.
    let rows: Vec<(f64, f64, u64)> = hgrm
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("Value"))
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            assert!(c.len() == 3 || c.len() == 4, "bad row `{l}`");
            (c[0].parse().unwrap(), c[1].parse().unwrap(), c[2].parse().unwrap())
        })
        .collect();
    assert!(rows.len() > 10, "{hgrm}");
    assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "rows ascend");
    let count = json_num(&out, "count");
    assert_eq!(rows.last().unwrap().2 as f64, count, "last row's total count is the sample count");
    assert!(hgrm.contains(&format!("Total count    = {:>12}", count as u64)), "{hgrm}");
    // The summary's p99 lies between the rows that bracket the 99th percentile.
    let p99 = json_num(&out, "p99");
    let at = rows.iter().position(|r| r.1 >= 0.99).unwrap();
    let below = if at > 0 { rows[at - 1].0 } else { 0.0 };
    assert!(below <= p99 + 0.001 && p99 <= rows[at].0 + 0.001, "p99 {p99} not within [{below}, {}]", rows[at].0);
    let max = json_num(&out, "max");
    assert!((rows.last().unwrap().0 - max).abs() < 0.01, "max {max} vs {:?}", rows.last());
}

#[test]
fn emqtt_bench_command_line_is_accepted() {
    let b = Broker::start();
    let port = b.port.to_string();
    let o = bench(&[
        "pub", "-c", "10", "-I", "5", "-s", "16", "-q", "0", "-V", "4", "-t", "bench/%i", "-h", "127.0.0.1", "-p", &port,
        "--duration", "1",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("connect_succ=10"), "{t}");
    assert!(t.contains("s pub total="), "once-a-second rate lines: {t}");
    // 10 clients × one message per 5 ms for a second ≈ 2000.
    let sent: u64 = t.split("sent=").nth(1).and_then(|s| s.split_whitespace().next()).unwrap().parse().unwrap();
    assert!((1000..=2600).contains(&sent), "{t}");
}

#[test]
fn unreachable_broker_fails_with_non_zero_exit() {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
    let o = bench(&["conn", "-h", "127.0.0.1", "-p", &port.to_string(), "-c", "2", "--duration", "1", "--quiet"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("connect_fail=2"), "{}", text(&o));
}
