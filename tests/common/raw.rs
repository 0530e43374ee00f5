//! Raw TCP: bytes in, bytes out, for what no well-behaved client would send.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::timing::WAIT;

/// Writes `bytes` to a fresh connection and reads until the broker closes it or `wait` passes.
/// Returns what was read and whether the connection was closed.
pub async fn raw_exchange(port: u16, bytes: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut s = timeout(WAIT, TcpStream::connect(("127.0.0.1", port))).await.expect("connect timeout").expect("connect");
    let _ = s.write_all(bytes).await;
    let deadline = tokio::time::Instant::now() + wait;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}
