//! `--ssl` and `--ws` against Mosquitto (Debian package `mosquitto`), which speaks both: each test
//! starts its own Mosquitto on a free loopback port with a generated config, and for TLS a
//! throwaway CA and server certificate made at test time.

// In a test, unwrap states what the test relies on; its failure is the test failing.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bench, json_num, text};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A Mosquitto process, killed when the test ends, with its scratch directory.
struct Mosquitto {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Mosquitto {
    /// Starts Mosquitto with `extra` config lines for its listener on PORT (WebSocket when `ws`).
    ///
    /// Two quirks of Debian's Mosquitto 2.0.11 (libwebsockets 4.1) shape the WebSocket config: a
    /// configuration whose only listener is a WebSocket one fails with "Unable to start any
    /// listening sockets", so a plain MQTT listener goes beside it; and libwebsockets takes the
    /// bind address as an interface name (an IP address makes it listen on every interface), so
    /// the WebSocket listener is bound to `lo`.
    fn start(name: &str, extra: &str, dir: PathBuf, ws: bool) -> Mosquitto {
        assert!(
            Path::new(MOSQUITTO).is_file(),
            "{MOSQUITTO} is missing: install the Debian package `mosquitto` (apt-get install mosquitto) to run the --ssl/--ws tests"
        );
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
        let conf = dir.join(format!("{name}.conf"));
        let listeners = if ws {
            let aux = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
            format!("listener {aux} 127.0.0.1\nlistener {port} lo\nprotocol websockets\n")
        } else {
            format!("listener {port} 127.0.0.1\n")
        };
        std::fs::write(&conf, format!("allow_anonymous true\n{listeners}{extra}")).unwrap();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut m = Mosquitto { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if m.child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(m.dir.join(format!("{name}.log"))).unwrap_or_default();
                panic!("mosquitto did not listen on port {port}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ratatosk-bench-mosq-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `ca.pem`, `server.pem` and `server.key` (for 127.0.0.1 and localhost) into `dir`.
fn make_certs(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "ratatosk-bench test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut srv = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    srv.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    srv.distinguished_name.push(DnType::CommonName, "localhost");
    let srv_cert = srv.signed_by(&key, &ca_cert, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), srv_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

fn tls_lines(dir: &Path) -> String {
    format!(
        "cafile {}\ncertfile {}\nkeyfile {}\n",
        dir.join("ca.pem").display(),
        dir.join("server.pem").display(),
        dir.join("server.key").display()
    )
}

/// A short QoS 1 pubsub run with `extra` flags; asserts it succeeded without loss.
fn clean_run(port: u16, extra: &[&str]) -> String {
    let port = port.to_string();
    let args = [
        &[
            "pubsub", "-h", "127.0.0.1", "-p", &port, "-c", "2", "-t", "t/%i", "-q", "1", "-F", "8", "--rate", "1000",
            "--duration", "1", "--cores", "1", "--json",
        ][..],
        extra,
    ]
    .concat();
    let o = bench(&args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    let sent = json_num(&out, "sent");
    assert!(sent > 200.0, "{out}");
    assert_eq!(json_num(&out, "received"), sent, "{out}");
    assert_eq!(json_num(&out, "lost"), 0.0, "{out}");
    assert!(json_num(&out, "count") > 0.0, "latency recorded: {out}");
    out
}

#[test]
fn tls_with_a_verified_server_certificate() {
    let dir = scratch("tls");
    make_certs(&dir);
    let m = Mosquitto::start("tls", &tls_lines(&dir), dir.clone(), false);
    let ca = dir.join("ca.pem").to_string_lossy().into_owned();
    clean_run(m.port, &["--ssl", "--cacertfile", &ca]);
    // Without a CA file the certificate is not checked, as with emqtt-bench.
    clean_run(m.port, &["--ssl"]);
}

#[test]
fn tls_refuses_a_server_certificate_from_another_ca() {
    let dir = scratch("tls-bad");
    make_certs(&dir);
    let m = Mosquitto::start("tls", &tls_lines(&dir), dir.clone(), false);
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    make_certs(&other);
    let o = bench(&[
        "conn", "-h", "127.0.0.1", "-p", &m.port.to_string(), "-c", "1", "--duration", "1", "--quiet", "--ssl",
        "--cacertfile", &other.join("ca.pem").to_string_lossy(),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("connect_fail=1"), "{}", text(&o));
}

#[test]
fn mqtt_over_websocket() {
    let dir = scratch("ws");
    let m = Mosquitto::start("ws", "", dir, true);
    clean_run(m.port, &["--ws"]);
}

#[test]
fn mqtt_over_websocket_over_tls() {
    let dir = scratch("wss");
    make_certs(&dir);
    let m = Mosquitto::start("wss", &tls_lines(&dir), dir.clone(), true);
    let ca = dir.join("ca.pem").to_string_lossy().into_owned();
    clean_run(m.port, &["--ws", "--ssl", "--cacertfile", &ca]);
}

#[test]
fn certificate_flags_need_ssl() {
    let o = bench(&["conn", "-c", "1", "-h", "127.0.0.1", "-p", "1", "--cacertfile", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("need --ssl"), "{}", text(&o));
    let o = bench(&["conn", "-c", "1", "-h", "127.0.0.1", "-p", "1", "--ssl", "--cacertfile", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("/nonexistent"), "{}", text(&o));
}
