//! A subscriber that reads slowly, or not at all, costs only itself: other clients on every shard
//! keep connecting, subscribing and receiving, other subscribers of the same topic keep their
//! rate, and what the slow one cannot take is dropped and counted, not held against the
//! publishers beyond the pacing limit.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// These tests load the CPUs on purpose (floods against a broker that is never slowed down by
/// the test's own clients): one at a time, so that each measures its own broker, not its
/// neighbour's flood.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Counts the PUBLISH packets arriving on `stream` until it has been quiet for `quiet` (or `max`
/// arrived), walking the fixed headers in place: a reader that costs as little as possible, so
/// that what is measured is the broker.
async fn count_publishes(stream: &mut tokio::net::TcpStream, quiet: Duration, max: usize) -> usize {
    let mut buf = vec![0u8; 256 * 1024];
    let (mut start, mut end, mut n) = (0usize, 0usize, 0usize);
    while n < max {
        // Whole packets at the front of the buffer.
        loop {
            let avail = &buf[start..end];
            let (mut len, mut mult, mut i) = (0usize, 1usize, 1usize);
            let mut complete = false;
            while i < avail.len() && i <= 4 {
                len += usize::from(avail[i] & 0x7F) * mult;
                mult *= 128;
                i += 1;
                if avail[i - 1] & 0x80 == 0 {
                    complete = true;
                    break;
                }
            }
            if !complete || avail.len() < i + len {
                break;
            }
            if avail[0] >> 4 == 3 {
                n += 1;
            }
            start += i + len;
        }
        if start == end {
            start = 0;
            end = 0;
        } else if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        match tokio::time::timeout(quiet, stream.read(&mut buf[end..])).await {
            Ok(Ok(k)) if k > 0 => end += k,
            _ => break,
        }
    }
    n
}

/// Publishes 1 KiB messages to `topic`, 32 every 5 ms (6,400/s, each subscriber's output limit
/// is full within a second) until `stop`, reading (and discarding) whatever the broker sends
/// back; returns how many it wrote. The rate is bounded so that four of them and the broker fit
/// on a 2-core machine: past that the kernel, not the broker, decides the probes' latency.
async fn flood(port: u16, id: String, topic: String, qos: u8, stop: Arc<AtomicBool>) -> u64 {
    let c = Client::connect(port, Opts::new(Ver::V311, &id)).await;
    let one = c.publish_bytes(&topic, &[7u8; 1024], qos, false, false, 1, &[]);
    let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 32).collect();
    let (mut rd, mut wr) = c.into_stream().into_split();
    let drain = tokio::spawn(async move {
        let mut sink = vec![0u8; 64 * 1024];
        while let Ok(n) = rd.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    let sent = AtomicU64::new(0);
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        // Bounded by `stop`; a write that blocks (the publisher is paced) is given up after a while.
        match tokio::time::timeout(Duration::from_millis(200), wr.write_all(&batch)).await {
            Ok(Ok(())) => {
                sent.fetch_add(32, Ordering::Relaxed);
            }
            Ok(Err(_)) => break,
            Err(_) => {}
        }
    }
    drop(wr);
    drain.abort();
    sent.load(Ordering::Relaxed)
}

/// A fresh client on `shard` connects, subscribes and gets its own QoS 1 message; returns how
/// long that took.
async fn probe(port: u16, prefix: &str, shard: usize) -> Duration {
    let t0 = Instant::now();
    let id = id_on_shard(prefix, shard);
    let topic = format!("probe/{id}");
    let mut c = Client::connect(port, Opts::new(Ver::V5, &id)).await;
    c.sub(&topic, 1).await;
    c.publish(&topic, b"mine", 1, false).await;
    let m = c.expect_msg().await;
    assert_eq!(m.payload, b"mine");
    c.disconnect().await;
    t0.elapsed()
}

async fn stalled_subscribers_do_not_stall_other_clients(qos: u8) {
    let _serial = SERIAL.lock().await;
    let b = Broker::start();
    // One subscriber per shard that never reads (keep alive off, so it is never closed).
    let mut stuck = Vec::new();
    for shard in 0..SHARDS {
        let mut c = Client::connect_small_rcvbuf(b.port, Opts::new(Ver::V311, &id_on_shard("stuck", shard)).keep_alive(0)).await;
        c.sub("flood/#", qos).await;
        stuck.push(c);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = ids_on_both_shards("flooder", 4)
        .into_iter()
        .enumerate()
        .map(|(i, id)| tokio::spawn(flood(b.port, id, format!("flood/{i}"), qos, stop.clone())))
        .collect();
    // Let the stuck subscribers fall far behind first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for round in 0..3 {
        for shard in 0..SHARDS {
            let took = probe(b.port, &format!("probe{round}-"), shard).await;
            assert!(took < Duration::from_secs(1), "QoS {qos}: a fresh client on shard {shard} took {took:?} to connect, subscribe and get its message");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let sent = f.await.expect("flooder");
        assert!(sent > 0, "a flooder could not publish at all");
    }
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_never_read_qos0_do_not_stall_clients_on_any_shard() {
    stalled_subscribers_do_not_stall_other_clients(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_never_read_qos1_do_not_stall_clients_on_any_shard() {
    stalled_subscribers_do_not_stall_other_clients(1).await;
}

const FLOOD: usize = 20_000;

/// A QoS 0 flood to one reading and one non-reading subscriber: the reader gets at least 80 %,
/// and every message that reached neither is counted as dropped.
async fn reader_keeps_its_rate_beside_a_non_reader(pub_shard: usize, slow_shard: usize, good_shard: usize) {
    let _serial = SERIAL.lock().await;
    let b = Broker::with_config("sys_interval = 1\n[limits]\nmax_output_buffer = 262144\n");
    let mut slow = Client::connect_small_rcvbuf(b.port, Opts::new(Ver::V311, &id_on_shard("nonreader", slow_shard)).keep_alive(0)).await;
    slow.sub("drop/#", 0).await;
    let mut good = Client::connect(b.port, Opts::new(Ver::V5, &id_on_shard("reader", good_shard))).await;
    good.sub("drop/#", 0).await;
    let mut good = good.into_stream();
    let reader = tokio::spawn(async move { count_publishes(&mut good, Duration::from_secs(1), FLOOD).await });
    let mut publisher = Client::connect(b.port, Opts::new(Ver::V311, &id_on_shard("flood-pub", pub_shard))).await;
    tokio::time::timeout(Duration::from_secs(30), publisher.flood_qos0("drop/x", &[1u8; 1024], FLOOD))
        .await
        .expect("the publisher was held back by the non-reading subscriber: 20,000 QoS 0 messages not taken within 30 s");
    let good_got = reader.await.expect("reader");
    assert!(good_got * 5 >= FLOOD * 4, "the reading subscriber got {good_got} of {FLOOD} (less than 80 %)");
    // What the non-reader's buffers held still reaches it once it reads.
    let slow_got = slow.drain_msgs(FLOOD).await.len();
    assert!(slow_got < FLOOD / 2, "the non-reading subscriber got {slow_got}: its output limit did not apply");
    let expected = (FLOOD - good_got + FLOOD - slow_got) as u64;
    b.sys_value("messages/dropped/slow_reader", WAIT, |v| v == expected).await;
    b.sys_value("messages/dropped", WAIT, |v| v == expected).await;
    b.sys_value("publishers/paced", WAIT, |v| v >= 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_reader_beside_a_non_reader_on_another_shard_gets_its_messages_and_drops_are_counted() {
    reader_keeps_its_rate_beside_a_non_reader(0, 1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_reader_beside_a_non_reader_on_the_publishers_shard_gets_its_messages_and_drops_are_counted() {
    reader_keeps_its_rate_beside_a_non_reader(0, 0, 1).await;
}
