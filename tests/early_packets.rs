//! Packets that arrive together with CONNECT are handled at once, not when more bytes arrive:
//! clients may send further packets right after CONNECT without waiting for CONNACK (3.1.1 and
//! 5.0 section 3.1.4), and a fire-and-forget client writes CONNECT, PUBLISH and DISCONNECT at once
//! and closes.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

async fn fire_and_forget(port: u16, ver: Ver, id: &str, topic: &str) {
    let mut c = Client::open(port, ver).await;
    let mut bytes = Opts::new(ver, id).encode();
    bytes.extend(c.publish_bytes(topic, b"sent with CONNECT", 0, false, false, 0, &[]));
    bytes.extend(c.publish_bytes(topic, b"and QoS 1", 1, false, false, 7, &[]));
    bytes.extend(if ver.is_v5() { vec![0xE0, 0x01, 0x00] } else { vec![0xE0, 0x00] });
    c.send_raw(&bytes).await;
    // Closes after the broker closes (it does on DISCONNECT), without reading anything.
    let _ = c.read_until_closed(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_publish_disconnect_in_one_write_delivers_mqtt_3_1_4() {
    let b = Broker::start();
    let mut watcher = Client::connect(b.port, Opts::new(Ver::V311, &uniq("watcher"))).await;
    watcher.sub("early/#", 1).await;
    let mut expected = Vec::new();
    for ver in [Ver::V311, Ver::V5] {
        for shard in 0..SHARDS {
            // Both the accepting shard and the home shard must handle the carried bytes.
            let id = id_on_shard("ff", shard);
            let topic = format!("early/{id}");
            fire_and_forget(b.port, ver, &id, &topic).await;
            expected.push((topic.clone(), b"sent with CONNECT".to_vec()));
            expected.push((topic, b"and QoS 1".to_vec()));
        }
    }
    let mut got = Vec::new();
    for _ in 0..expected.len() {
        let m = watcher.expect_msg().await;
        got.push((m.topic, m.payload));
    }
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_sent_with_connect_is_answered_without_further_input_mqtt_3_1_4() {
    let b = Broker::start();
    for shard in 0..SHARDS {
        let id = id_on_shard("early-sub", shard);
        let mut c = Client::open(b.port, Ver::V5).await;
        let mut bytes = Opts::new(Ver::V5, &id).encode();
        let mut body = 9u16.to_be_bytes().to_vec();
        props_bytes(&[], &mut body);
        mqtt_str(b"early/sub", &mut body);
        body.push(1);
        bytes.extend(frame(0x82, &body));
        c.send_raw(&bytes).await;
        // Nothing more is sent: CONNACK and SUBACK must come from the bytes already sent.
        assert!(matches!(c.recv(WAIT).await, Ok(Pkt::ConnAck { code: 0, .. })), "CONNACK");
        match c.recv(WAIT).await {
            Ok(Pkt::SubAck { pid: 9, codes, .. }) => assert_eq!(codes, vec![1]),
            other => panic!("SUBACK expected for a SUBSCRIBE sent with CONNECT on shard {shard}, got {other:?}"),
        }
    }
}
