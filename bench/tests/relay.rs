//! `ratatosk-bench relay`, the floor relay, carries `pubsub` runs without loss: QoS 0, 1 and 2 in
//! MQTT 5.0 and 3.1.1, to exact and wildcard subscribers, and closes a connection that sends garbage
//! without disturbing the others.

// In a test, unwrap states what the test relies on; its failure is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{bench, json_num, text, Running};

/// A relay on a free loopback port, killed when the test ends.
struct Relay {
    run: Option<Running>,
    port: String,
}

impl Relay {
    fn start() -> Relay {
        let mut run = Running::spawn(&["relay", "--listen", "127.0.0.1:0"]);
        run.wait_for("relay listening on", Duration::from_secs(10));
        let line = run.seen.iter().find(|l| l.contains("relay listening on")).unwrap();
        let port = line.rsplit(':').next().unwrap().trim().to_owned();
        Relay { run: Some(run), port }
    }

    /// Still running (it must survive whatever a test sent it).
    fn is_running(&mut self) -> bool {
        self.run.as_mut().unwrap().child.try_wait().unwrap().is_none()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut run) = self.run.take() {
            let _ = run.child.kill();
            let (_, out) = run.finish();
            if std::thread::panicking() {
                eprintln!("---- relay output ----\n{out}");
            }
        }
    }
}

/// Runs a two-second `pubsub` against the relay and checks that every message sent arrived
/// (`per_message` times: the number of subscribers each message goes to) and the exit status is 0.
fn pubsub_loses_nothing(r: &Relay, qos: &str, extra: &[&str], per_message: f64) {
    let args = [
        &["pubsub", "-h", "127.0.0.1", "-p", &r.port, "-q", qos, "--rate", "2000", "--duration", "2", "--cores", "1", "--json"][..],
        extra,
    ]
    .concat();
    let o = bench(&args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    let sent = json_num(&out, "sent");
    assert!(sent > 1000.0, "{out}");
    assert_eq!(json_num(&out, "connect_fail"), 0.0, "{out}");
    assert_eq!(json_num(&out, "conn_lost"), 0.0, "{out}");
    assert_eq!(json_num(&out, "expected"), sent * per_message, "{out}");
    assert_eq!(json_num(&out, "received"), sent * per_message, "{out}");
    assert_eq!(json_num(&out, "lost"), 0.0, "{out}");
    assert_eq!(json_num(&out, "duplicated"), 0.0, "{out}");
    // QoS 1 and 2 publishers are acknowledged by the relay itself.
    let acked = if qos == "0" { 0.0 } else { sent };
    assert_eq!(json_num(&out, "acked"), acked, "{out}");
}

#[test]
fn qos0_pairs_arrive_through_the_relay() {
    let r = Relay::start();
    pubsub_loses_nothing(&r, "0", &["-c", "4", "-t", "relay/%i"], 1.0);
}

#[test]
fn qos1_pairs_arrive_through_the_relay_in_v5_and_v311() {
    let r = Relay::start();
    pubsub_loses_nothing(&r, "1", &["-c", "4", "-t", "relay/%i", "-F", "8"], 1.0);
    pubsub_loses_nothing(&r, "1", &["-c", "4", "-t", "relay/%i", "-F", "8", "-V", "4"], 1.0);
}

#[test]
fn qos2_is_completed_by_the_relay_on_both_sides() {
    let r = Relay::start();
    pubsub_loses_nothing(&r, "2", &["-c", "2", "-t", "relay/%i", "-F", "8"], 1.0);
}

#[test]
fn wildcard_subscribers_get_every_matching_message_once() {
    let r = Relay::start();
    // Fan-in to one `#` subscriber, then every message to each of three `+` subscribers.
    pubsub_loses_nothing(&r, "1", &["-c", "4", "-t", "wild/%i", "--subs", "1", "--sub-topic", "wild/#"], 1.0);
    pubsub_loses_nothing(&r, "0", &["-c", "4", "-t", "wild/%i", "--subs", "3", "--sub-topic", "wild/+"], 3.0);
}

#[test]
fn garbage_closes_only_that_connection() {
    let mut r = Relay::start();
    let mut s = TcpStream::connect(("127.0.0.1", r.port.parse::<u16>().unwrap())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Not a CONNECT: [MQTT-3.1.0-1] the first packet must be one.
    s.write_all(&[0x30, 0x03, 0x00, 0x01, b'x']).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "the relay must close the connection");
    assert!(r.is_running());
    pubsub_loses_nothing(&r, "1", &["-c", "2", "-t", "after/%i"], 1.0);
}
