//! Helpers shared by the integration tests: the broker under test, running ratatosk-bench with a
//! time limit, and picking figures out of its output.
#![allow(dead_code)] // each test file uses a different subset

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ratatosk_testkit::Launcher;

/// Longest any one tool invocation may take before the test kills it and fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The workspace's broker binary (debug preferred, as `cargo test` builds it). Cargo names a
/// binary only to its own package's tests, so the load tool's tests look in the target directory.
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

fn launcher() -> Launcher {
    Launcher::new(broker_binary(), env!("CARGO_TARGET_TMPDIR"))
}

/// The arguments every broker here runs with.
const BROKER_ARGS: &[&str] = &["--shards", "2"];

/// A broker process that is stopped when the test ends; `port` and the other process methods are
/// those of [`ratatosk_testkit::Broker`].
pub struct Broker(ratatosk_testkit::Broker);

impl Broker {
    /// Starts the broker with two shards on a free loopback port and waits until it listens.
    pub fn start() -> Broker {
        launcher()
            .start(None, BROKER_ARGS, Duration::from_secs(10))
            .map(Broker)
            .unwrap_or_else(|e| panic!("broker did not start:\n{e}"))
    }

    /// Starts the broker on `port`, which a stopped broker may only just have released: a broker
    /// that exits (cannot bind yet) is started again, for at most `limit`.
    pub fn start_on(port: u16, limit: Duration) -> Broker {
        launcher().start_on(port, BROKER_ARGS, limit).map(Broker).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Stops the broker with SIGTERM and waits (at most 5 s, then SIGKILL) for it to exit.
    pub fn terminate(&mut self) {
        self.0.stop(Duration::from_secs(5));
    }
}

impl Deref for Broker {
    type Target = ratatosk_testkit::Broker;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Broker {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
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
