//! SIGTERM reaches every v5 client with DISCONNECT 0x8B (server shutting down), busy or idle,
//! and the broker exits within a bounded time.

// A test that unwraps reports the failure it was written to find.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;

/// Reads frames until a DISCONNECT (returns its reason code) or the end of the connection
/// (`None`); `on_publish` sees every PUBLISH (first byte, body) and may answer it.
async fn until_disconnect(rd: &mut OwnedReadHalf, mut on_publish: impl FnMut(u8, &[u8])) -> Option<u8> {
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Ok(Some((first, body))) = split_frame(&mut buf) {
            match first >> 4 {
                14 => return Some(body.first().copied().unwrap_or(0)),
                3 => on_publish(first, &body),
                _ => {}
            }
        }
        match tokio::time::timeout(Duration::from_secs(15), rd.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// A v5 client publishing QoS 1 as fast as it can; returns the DISCONNECT code it got.
async fn busy_publisher(port: u16, id: String) -> Option<u8> {
    let c = Client::connect(port, Opts::new(Ver::V5, &id)).await;
    let batch: Vec<u8> = (1..=16u16).flat_map(|pid| c.publish_bytes("load/x", &[3u8; 200], 1, false, false, pid, &[])).collect();
    let (mut rd, mut wr) = c.into_stream().into_split();
    let writer = tokio::spawn(async move {
        // Ends when the broker closes the connection (the write fails) or the test ends.
        for _ in 0..1_000_000 {
            if wr.write_all(&batch).await.is_err() {
                break;
            }
        }
    });
    let code = until_disconnect(&mut rd, |_, _| {}).await;
    writer.abort();
    code
}

/// A v5 client receiving QoS 1 and acknowledging each message; returns the DISCONNECT code.
async fn busy_subscriber(port: u16, id: String) -> Option<u8> {
    let mut c = Client::connect(port, Opts::new(Ver::V5, &id)).await;
    c.sub("load/#", 1).await;
    let (mut rd, wr) = c.into_stream().into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u16>();
    let acker = tokio::spawn(async move {
        let mut wr = wr;
        while let Some(pid) = rx.recv().await {
            let [hi, lo] = pid.to_be_bytes();
            if wr.write_all(&[0x40, 0x03, hi, lo, 0x00]).await.is_err() {
                break;
            }
        }
    });
    let code = until_disconnect(&mut rd, |first, body| {
        if (first >> 1) & 3 == 1 && body.len() >= 2 {
            let tl = usize::from(u16::from_be_bytes([body[0], body[1]]));
            if let Some(p) = body.get(2 + tl..4 + tl) {
                let _ = tx.send(u16::from_be_bytes([p[0], p[1]]));
            }
        }
    })
    .await;
    acker.abort();
    code
}

async fn idle(port: u16, id: String) -> Option<u8> {
    let c = Client::connect(port, Opts::new(Ver::V5, &id)).await;
    let (mut rd, _wr) = c.into_stream().into_split();
    until_disconnect(&mut rd, |_, _| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_sends_every_v5_client_disconnect_0x8b() {
    let mut b = Broker::start();
    let port = b.port;
    let mut clients = Vec::new();
    for id in ids_on_both_shards("busy-sub", 2) {
        clients.push(("subscriber", tokio::spawn(busy_subscriber(port, id))));
    }
    for id in ids_on_both_shards("busy-pub", 4) {
        clients.push(("publisher", tokio::spawn(busy_publisher(port, id))));
    }
    for id in ids_on_both_shards("idle", 2) {
        clients.push(("idle", tokio::spawn(idle(port, id))));
    }
    // Under load for a while before the signal.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = b.terminate(Duration::from_secs(10)).expect("the broker did not exit within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    for (role, c) in clients {
        let code = c.await.expect("client task");
        assert_eq!(code, Some(0x8B), "a {role} got {code:?} instead of DISCONNECT 0x8B");
    }
}
