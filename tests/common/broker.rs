//! The broker under test: this package's `ratatosk` binary on a free loopback port, with its log
//! kept for failures, plus the checks that need an MQTT client ($SYS values, still serving).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::client::Client;
use super::connect::Opts;
use super::ids::uniq;
use super::wire::Ver;

/// Number of shards every test broker runs with.
pub const SHARDS: usize = 2;

/// A running `ratatosk` on a free loopback port; SIGTERM on drop (then SIGKILL after a bounded
/// wait). Its stderr goes to a log file that is printed when the test fails.
pub struct Broker {
    child: Child,
    /// The MQTT port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    log: PathBuf,
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

impl Broker {
    /// A broker with the default configuration.
    pub fn start() -> Broker {
        Broker::start_with(None)
    }

    /// A broker with the given TOML configuration (written to a temporary file).
    pub fn with_config(toml: &str) -> Broker {
        Broker::start_with(Some(toml))
    }

    fn start_with(config: Option<&str>) -> Broker {
        Broker::start_once(config, Duration::from_secs(15)).unwrap_or_else(|e| panic!("broker did not start:\n{e}"))
    }

    /// Starts one broker on a fresh port and waits up to `ready_within` for it to accept TCP; on
    /// failure the process is killed and the error carries its log.
    pub fn start_once(config: Option<&str>, ready_within: Duration) -> Result<Broker, String> {
        Broker::start_with_args(config, &["--shards", &SHARDS.to_string()], ready_within)
    }

    /// Like [`Broker::start_once`] with these command-line arguments instead of `--shards 2`.
    pub fn start_with_args(config: Option<&str>, args: &[&str], ready_within: Duration) -> Result<Broker, String> {
        // The port is free when we look, but another process may take it before the broker binds
        // (the broker then refuses to start, naming the address): only that case is retried.
        let mut last = String::new();
        for _ in 0..4 {
            match Broker::start_on_free_port(config, args, ready_within) {
                Err(e) if e.contains("Address already in use") => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    fn start_on_free_port(config: Option<&str>, args: &[&str], ready_within: Duration) -> Result<Broker, String> {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("it-{}-{}", std::process::id(), n));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        // Run the binary through a hard link with a neutral name, so that a `pkill ratatosk` run by
        // someone else on a shared machine does not stop the broker under test.
        let bin = dir.join("broker-under-test");
        let bin = match std::fs::hard_link(env!("CARGO_BIN_EXE_ratatosk"), &bin) {
            Ok(()) => bin,
            Err(_) => PathBuf::from(env!("CARGO_BIN_EXE_ratatosk")),
        };
        let cfg_path = dir.join("broker.toml");
        if let Some(text) = config {
            std::fs::write(&cfg_path, text).expect("write config");
        }
        let log = dir.join("broker.log");
        let port = free_port();
        let mut cmd = Command::new(&bin);
        cmd.arg("--listen").arg(format!("127.0.0.1:{port}")).args(args);
        if config.is_some() {
            cmd.arg("--config").arg(&cfg_path);
        }
        let logf = std::fs::File::create(&log).expect("create log file");
        cmd.current_dir(&dir)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", std::env::var("RATATOSK_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf);
        let child = cmd.spawn().expect("spawn ratatosk binary");
        let mut b = Broker { child, port, dir, log };
        let t0 = Instant::now();
        match b.wait_ready(ready_within) {
            Ok(()) => {
                if t0.elapsed() > Duration::from_secs(2) {
                    eprintln!("slow broker start: {:?}", t0.elapsed());
                }
                Ok(b)
            }
            Err(e) => {
                let msg = format!("port {port}: {e}\n{}", b.log());
                let _ = b.child.kill();
                let _ = b.child.wait();
                // Keep the directory (and log) for inspection; Drop would remove it.
                std::mem::forget(b);
                Err(msg)
            }
        }
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit; `None` if it did not (it
    /// is then killed on drop).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("broker exited with {status}"));
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("port {} not accepting after {limit:?}", self.port))
    }

    /// `127.0.0.1`
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The broker's resident memory in bytes (VmRSS).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// The latest value of a `$SYS/broker/...` topic (`name` without the prefix) that satisfies
    /// `want`, waiting up to `wait` for updates (the broker needs a small `sys_interval`).
    pub async fn sys_value(&self, name: &str, wait: Duration, want: impl Fn(u64) -> bool) -> u64 {
        let topic = format!("$SYS/broker/{name}");
        let mut c = Client::connect(self.port, Opts::new(Ver::V311, &uniq("sysmon"))).await;
        c.sub(&topic, 0).await;
        let deadline = Instant::now() + wait;
        let mut last = None;
        while Instant::now() < deadline {
            let Some(m) = c.next_msg(deadline.saturating_duration_since(Instant::now())).await else { break };
            if m.topic == topic {
                let v: u64 = String::from_utf8_lossy(&m.payload).parse().unwrap_or_else(|_| panic!("{topic} is not a number"));
                if want(v) {
                    return v;
                }
                last = Some(v);
            }
        }
        panic!("{topic}: no wanted value within {wait:?}; last seen {last:?}")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asserts the broker still serves: a fresh subscriber gets a fresh publisher's message.
    pub async fn assert_serving(&mut self) {
        assert!(self.is_running(), "broker process exited\n{}", self.log());
        let port = self.port;
        let mut sub = Client::connect(port, Opts::new(Ver::V311, &uniq("alive-sub"))).await;
        sub.sub("alive/check", 1).await;
        let mut publ = Client::connect(port, Opts::new(Ver::V5, &uniq("alive-pub"))).await;
        publ.publish("alive/check", b"ok", 1, false).await;
        let m = sub.expect_msg().await;
        assert_eq!(m.payload, b"ok");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut exited = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !exited {
            eprintln!("broker did not stop within 3 s of SIGTERM; killing it");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- broker log (last {} lines) ----", tail.len());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
