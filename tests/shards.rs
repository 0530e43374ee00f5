//! How many shards one process runs: no more than the CPUs unless asked to oversubscribe, a
//! small idle footprint per shard, and a start and a stop that stay fast at the maximum.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const MIB: u64 = 1024 * 1024;

/// The oversubscribed brokers here put up to 256 shard threads on a 2-core machine; two at once
/// (320 threads) is a test of the kernel's scheduler, not of start-up: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[test]
fn more_shards_than_cpus_are_refused_without_oversubscribe() {
    let cpus = ratatosk_shards::allowed_cpus().len();
    let out = Command::new(env!("CARGO_BIN_EXE_ratatosk"))
        .args(["--listen", "127.0.0.1:0", "--shards", &(cpus + 1).to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run ratatosk");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`shards`") && err.contains("--oversubscribe"), "the refusal should name the key and the way out: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_idle_shards_stay_under_128_mib_and_stop_at_once() {
    let _serial = SERIAL.lock().await;
    let mut b = Broker::start_with_args(None, &["--shards", "64", "--oversubscribe"], Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    // Clients on several shards, then idle again.
    b.assert_serving().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = b.rss();
    assert!(rss < 128 * MIB, "64 idle shards use {} MiB", rss / MIB);
    let t0 = Instant::now();
    let status = b.terminate(Duration::from_secs(5)).expect("64 shards did not stop within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status} after {:?}", t0.elapsed());
}

/// Whether this process may lock what `shards` shards need (root is not charged).
fn memlock_allows(shards: u64) -> bool {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/geteuid fill or return plain values.
    let (ok, root) = unsafe { (libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) == 0, libc::geteuid() == 0) };
    // The broker raises its soft limit to the hard one.
    root || !ok || lim.rlim_max == libc::RLIM_INFINITY || lim.rlim_max >= shards * 128 * 1024
}

#[test]
fn the_most_shards_allowed_start_and_stop_or_are_refused_for_locked_memory() {
    let _serial = SERIAL.blocking_lock();
    let max = ratatosk::config::MAX_OVERSUBSCRIBED_SHARDS.max(ratatosk_shards::allowed_cpus().len());
    let args = ["--shards", &max.to_string(), "--oversubscribe"];
    if memlock_allows(max as u64) {
        let mut b = Broker::start_with_args(None, &args, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
        let status = b.terminate(Duration::from_secs(10)).expect("did not stop within 10 s of SIGTERM");
        assert!(status.success(), "exit status {status}");
    } else {
        let out = Command::new(env!("CARGO_BIN_EXE_ratatosk")).args(["--listen", "127.0.0.1:0"]).args(args).output().expect("run ratatosk");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("ulimit -l"), "{err}");
    }
}

#[test]
fn one_shard_past_the_maximum_is_refused() {
    let max = ratatosk::config::MAX_OVERSUBSCRIBED_SHARDS.max(ratatosk_shards::allowed_cpus().len());
    let out = Command::new(env!("CARGO_BIN_EXE_ratatosk"))
        .args(["--listen", "127.0.0.1:0", "--oversubscribe", "--shards", &(max + 1).to_string()])
        .output()
        .expect("run ratatosk");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// A unique client id (or topic) whose home is `shard` of `shards`.
fn key_on_shard(prefix: &str, shard: usize, shards: usize) -> String {
    (0..100_000).map(|_| uniq(prefix)).find(|k| ratatosk_shards::home_shard("default", k, shards) == shard).unwrap_or_else(|| panic!("no key for shard {shard}"))
}

/// The replay window's shard sets were once a `u64` mask, which silently dropped shards past 64
/// (`replay::tests` covers that directly). With 80 shards, subscribers at home on shards 70 and 79 get what publishers on shards 0, 65 and 72
/// send, and a retained message owned by a shard past 64 reaches a subscriber on shard 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eighty_shards_route_and_retain_across_shards_past_sixty_four() {
    const N: usize = 80;
    let _serial = SERIAL.lock().await;
    assert!(memlock_allows(N as u64), "80 shards need about 10 MiB of locked memory: raise `ulimit -l`");
    let b = Broker::start_with_args(None, &["--shards", &N.to_string(), "--oversubscribe"], Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    let base = uniq("wide");
    let mut subs = Vec::new();
    for shard in [70, 79] {
        let mut c = Client::connect(b.port, Opts::new(Ver::V5, &key_on_shard("sub", shard, N))).await;
        c.sub(&format!("{base}/#"), 1).await;
        subs.push(c);
    }
    for shard in [0, 65, 72] {
        let mut p = Client::connect(b.port, Opts::new(Ver::V311, &key_on_shard("pub", shard, N))).await;
        p.publish(&format!("{base}/{shard}"), format!("from {shard}").as_bytes(), 1, false).await;
        p.disconnect().await;
    }
    for c in subs.iter_mut() {
        let mut got: Vec<String> = Vec::new();
        for _ in 0..3 {
            got.push(c.expect_msg().await.topic);
        }
        got.sort();
        assert_eq!(got, vec![format!("{base}/0"), format!("{base}/65"), format!("{base}/72")]);
    }
    // A retained topic whose owner shard is past 64.
    let placement = ratatosk_shards::Placement::even(ratatosk_shards::DEFAULT_PARTITIONS, N).unwrap();
    let topic = (0..100_000).map(|i| format!("{base}/kept/{i}")).find(|t| placement.shard_of("default", t) >= 64).unwrap();
    let mut p = Client::connect(b.port, Opts::new(Ver::V311, &key_on_shard("retainer", 1, N))).await;
    p.publish(&topic, b"kept", 1, true).await;
    let mut late = Client::connect(b.port, Opts::new(Ver::V311, &key_on_shard("late", 3, N))).await;
    late.sub(&topic, 1).await;
    let m = late.expect_msg().await;
    assert!(m.retain && m.payload == b"kept", "{m:?}");
}
