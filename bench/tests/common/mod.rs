//! Helpers shared by the integration tests: the broker under test, running ratatosk-bench with a
//! time limit, and picking figures out of its output.
#![allow(dead_code)] // each test file uses a different subset

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest any one tool invocation may take before the test kills it and fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The workspace's broker binary (debug preferred, as `cargo test` builds it).
pub fn broker_binary() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(target);
    for profile in ["debug", "release"] {
        let p = target.join(profile).join("ratatosk");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the ratatosk broker binary is missing from {}/{{debug,release}}; build it first with `cargo build -p ratatosk`",
        target.display()
    );
}

/// A broker process that is killed when the test ends.
pub struct Broker {
    /// The broker process.
    pub child: Child,
    /// Its loopback port.
    pub port: u16,
}

impl Broker {
    /// Starts the broker with two shards on a free loopback port and waits until it listens.
    pub fn start() -> Broker {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
        let mut b = Broker { child: Broker::spawn(port), port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(b.child.try_wait().unwrap().is_none(), "broker exited during start-up");
            assert!(Instant::now() < deadline, "broker did not listen on port {port} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    /// Starts the broker on `port`, which a stopped broker may only just have released: a broker
    /// that exits (cannot bind yet) is started again, for at most `limit`.
    pub fn start_on(port: u16, limit: Duration) -> Broker {
        let deadline = Instant::now() + limit;
        let mut b = Broker { child: Broker::spawn(port), port };
        loop {
            assert!(Instant::now() < deadline, "broker did not listen on port {port} within {limit:?}");
            if b.child.try_wait().unwrap().is_some() {
                b.child = Broker::spawn(port);
            }
            // A probe that connected to itself (source port == the free port) is no broker.
            let listening = TcpStream::connect(("127.0.0.1", port))
                .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok());
            if listening {
                // Something else may hold the port for a moment (the broker then exits at once,
                // unable to bind): only a broker still running a little later is the one listening.
                std::thread::sleep(Duration::from_millis(200));
                if b.child.try_wait().unwrap().is_none() {
                    return b;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker with SIGTERM and waits (at most 5 s, then SIGKILL) for it to exit.
    pub fn terminate(&mut self) {
        // SAFETY: signalling our own child process, which has not been waited for yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn spawn(port: u16) -> Child {
        Command::new(broker_binary())
            .args(["--listen", &format!("127.0.0.1:{port}"), "--shards", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs ratatosk-bench with `args`, killing it after `RUN_LIMIT`.
pub fn bench(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ratatosk-bench"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + RUN_LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ratatosk-bench {args:?} ran longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// stdout and stderr together.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A number from the flat JSON summary (`"key":123.4`).
pub fn json_num(json: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\":");
    let at = json.find(&pat).unwrap_or_else(|| panic!("no {key} in {json}")) + pat.len();
    let end = json[at..].find([',', '}']).map_or(json.len(), |e| at + e);
    json[at..end].parse().unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

/// A per-process scratch file name.
pub fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ratatosk-bench-test-{}-{name}", std::process::id()))
}


/// A ratatosk-bench process whose output is collected line by line while it runs, so a test can
/// wait for a line (e.g. the subscription being confirmed) and still read everything at the end.
pub struct Running {
    /// The process.
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl Running {
    /// Starts ratatosk-bench with `args`, stdout and stderr merged into one line stream.
    pub fn spawn(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ratatosk-bench"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for r in [Box::new(out) as Box<dyn std::io::Read + Send>, Box::new(err)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Running { child, lines: rx, seen: Vec::new() }
    }

    /// Waits (at most `limit`) for a line containing `needle`.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.seen.iter().any(|l| l.contains(needle)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("no line with `{needle}` within {limit:?}; output so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits (at most `RUN_LIMIT`) for the process to exit; returns its status and whole output.
    pub fn finish(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("ratatosk-bench ran longer than {RUN_LIMIT:?}:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The pipes close with the process; the reader threads then end the stream.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        (status, self.seen.join("\n"))
    }
}

/// The number after `key=` in the text summary (`lost=3`).
pub fn kv(text: &str, key: &str) -> u64 {
    let pat = format!(" {key}=");
    let at = text.rfind(&pat).unwrap_or_else(|| panic!("no {key}= in {text}")) + pat.len();
    text[at..].split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{key}= is not a number in {text}"))
}
