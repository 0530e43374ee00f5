//! Back-pressure: a live QoS 1 subscriber that reads more slowly than its publisher writes must
//! get every message. The broker paces the publisher (it acknowledges later and reads on later)
//! instead of letting the subscriber's queue overflow and drop acknowledged messages.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

const MESSAGES: u32 = 200;

async fn slow_subscriber_gets_everything(port: u16, sub_shard: usize, pub_shard: usize) {
    let topic = format!("bp/{}", uniq("t"));
    let mut sub = Client::connect(port, Opts::new(Ver::V311, &id_on_shard("slow", sub_shard))).await;
    sub.sub(&topic, 1).await;
    let t = topic.clone();
    let publisher = tokio::spawn(async move {
        let mut p = Client::connect(port, Opts::new(Ver::V311, &id_on_shard("fast", pub_shard))).await;
        for i in 0..MESSAGES {
            p.publish(&t, &i.to_be_bytes(), 1, false).await;
        }
        p.disconnect().await;
    });
    let mut got = Vec::new();
    for _ in 0..MESSAGES {
        match sub.next_msg(WAIT).await {
            Some(m) => got.push(u32::from_be_bytes(m.payload[..4].try_into().expect("4-byte payload"))),
            None => break,
        }
        // Much slower than the publisher: without back-pressure a queue of 20 overflows at once.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    publisher.await.expect("publisher task");
    let want: Vec<u32> = (0..MESSAGES).collect();
    assert_eq!(got, want, "subscriber on shard {sub_shard}, publisher on shard {pub_shard}: messages lost or out of order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_qos1_subscriber_paces_the_publisher_instead_of_dropping_messages_same_shard() {
    let b = Broker::with_config("[limits]\nmax_queued = 20\nmax_inflight = 4\n");
    slow_subscriber_gets_everything(b.port, 0, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_qos1_subscriber_paces_the_publisher_instead_of_dropping_messages_across_shards() {
    // Across shards the hold reaches the publisher one mesh round trip after the subscriber fell
    // behind (the shard that delivers never waits for a subscriber), so the queue needs room for
    // what is on its way then: its upper half, 50 messages here.
    let b = Broker::with_config("[limits]\nmax_queued = 100\nmax_inflight = 4\n");
    slow_subscriber_gets_everything(b.port, 1, 0).await;
}
