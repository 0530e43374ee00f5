//! `--ifaddr`: clients connect from the given local addresses in turn.
//!
//! Loopback is 127.0.0.0/8, so 127.0.0.2 and 127.0.0.3 are local source addresses on any Linux host
//! while the broker listens on 127.0.0.1.

// In a test, unwrap states what the test relies on; its failure is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{bench, text, Broker};

#[test]
fn clients_connect_to_the_broker_from_each_ifaddr() {
    let b = Broker::start();
    let port = b.port.to_string();
    let o = bench(&[
        "pubsub", "-h", "127.0.0.1", "-p", &port, "-c", "4", "-t", "if/%i", "-q", "1", "--rate", "2000", "--duration",
        "1", "--ifaddr", "127.0.0.2,127.0.0.3", "--cores", "2", "--quiet",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("connect_succ=8"), "4 publishers and 4 subscribers: {t}");
    assert!(t.contains(" lost=0 "), "{t}");
}

/// A stand-in broker that records where each connection comes from and answers CONNECT (3.1.1)
/// with a successful CONNACK, so the source addresses can be checked exactly.
#[test]
fn source_addresses_are_used_round_robin() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let acceptor = std::thread::spawn(move || {
        let mut peers = Vec::new();
        let mut open: Vec<TcpStream> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while peers.len() < 4 && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, peer)) => {
                    peers.push(peer.ip());
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut buf = [0u8; 256];
                    let n = s.read(&mut buf).unwrap_or(0);
                    assert!(n > 0 && buf[0] == 0x10, "expected CONNECT, got {:?}", &buf[..n]);
                    s.write_all(&[0x20, 0x02, 0x00, 0x00]).unwrap();
                    open.push(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        // Hold the connections until the tool hangs up, so it sees no lost connection.
        for mut s in open {
            let mut buf = [0u8; 64];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
        peers
    });
    let o = bench(&[
        "conn", "-V", "4", "-h", "127.0.0.1", "-p", &port.to_string(), "-c", "4", "-i", "1", "--duration", "1",
        "--ifaddr", "127.0.0.2, 127.0.0.3", "--cores", "1", "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let peers = acceptor.join().unwrap();
    let mut by_addr: HashMap<IpAddr, usize> = HashMap::new();
    for p in peers {
        *by_addr.entry(p).or_default() += 1;
    }
    let want: HashMap<IpAddr, usize> =
        [("127.0.0.2".parse().unwrap(), 2), ("127.0.0.3".parse().unwrap(), 2)].into_iter().collect();
    assert_eq!(by_addr, want);
}

#[test]
fn bad_ifaddr_is_refused_or_fails_the_connect() {
    let o = bench(&["conn", "-c", "1", "-h", "127.0.0.1", "-p", "1", "--ifaddr", "not-an-address"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not-an-address"), "{}", text(&o));
    // TEST-NET-1 is never a local address: binding to it fails, which is a failed connect.
    let b = Broker::start();
    let o = bench(&[
        "conn", "-c", "1", "-h", "127.0.0.1", "-p", &b.port.to_string(), "--ifaddr", "192.0.2.1", "--duration", "1",
        "--quiet",
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("connect_fail=1"), "{}", text(&o));
    assert!(text(&o).contains("cannot bind"), "{}", text(&o));
}
