//! Starting brokers: each gets a scratch directory for its configuration and log, a loopback port
//! (a free one, or one the caller names), and is waited for until it accepts connections.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::broker::Broker;

/// Numbers the scratch directories of the brokers that one test process starts.
static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// Where the broker binary is and where the brokers it starts keep their files.
#[derive(Debug, Clone)]
pub struct Launcher {
    exe: PathBuf,
    scratch: PathBuf,
}

/// Everything needed to run one broker, kept so that it can be run again in the same directory.
#[derive(Debug)]
pub(crate) struct Spawn {
    bin: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) log: PathBuf,
    port: u16,
    args: Vec<String>,
    config: Option<PathBuf>,
}

impl Launcher {
    /// Runs the broker binary `exe`, with one directory per broker under `scratch`.
    pub fn new(exe: impl Into<PathBuf>, scratch: impl Into<PathBuf>) -> Launcher {
        Launcher { exe: exe.into(), scratch: scratch.into() }
    }

    /// Starts a broker on a free loopback port with `args` (and the TOML `config`, written to a
    /// file it is pointed at) and waits up to `ready_within` for it to accept TCP; on failure the
    /// process is killed and the error carries its log.
    pub fn start(&self, config: Option<&str>, args: &[&str], ready_within: Duration) -> Result<Broker, String> {
        // The port is free when we look, but another process may take it before the broker binds
        // (the broker then refuses to start, naming the address): only that case is retried.
        let mut last = String::new();
        for _ in 0..4 {
            match self.start_on_free_port(config, args, ready_within) {
                Err(e) if e.contains("Address already in use") => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    fn start_on_free_port(&self, config: Option<&str>, args: &[&str], ready_within: Duration) -> Result<Broker, String> {
        let port = free_port()?;
        let spawn = self.prepare(port, config, args)?;
        let mut b = Broker::new(spawn.run()?, spawn);
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
                b.kill_keeping_files();
                Err(msg)
            }
        }
    }

    /// Starts a broker on `port`, which a stopped broker may only just have released: a broker
    /// that exits (cannot bind yet) is started again, for at most `limit`.
    pub fn start_on(&self, port: u16, args: &[&str], limit: Duration) -> Result<Broker, String> {
        let deadline = Instant::now() + limit;
        let spawn = self.prepare(port, None, args)?;
        let mut b = Broker::new(spawn.run()?, spawn);
        loop {
            if Instant::now() >= deadline {
                let msg = format!("broker did not listen on port {port} within {limit:?}\n{}", b.log());
                b.kill_keeping_files();
                return Err(msg);
            }
            if b.has_exited() {
                b.respawn()?;
            }
            if b.accepts() {
                // Something else may hold the port for a moment (the broker then exits at once,
                // unable to bind): only a broker still running a little later is the one listening.
                sleep(Duration::from_millis(200));
                if !b.has_exited() {
                    return Ok(b);
                }
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// A fresh scratch directory holding a link to the binary and the configuration, if any.
    fn prepare(&self, port: u16, config: Option<&str>, args: &[&str]) -> Result<Spawn, String> {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = self.scratch.join(format!("it-{}-{}", std::process::id(), n));
        // Left over from an earlier process with the same id; its files would be mistaken for ours.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        // Run the binary through a hard link with a neutral name, so that a `pkill ratatosk` run by
        // someone else on a shared machine does not stop the broker under test.
        let link = dir.join("broker-under-test");
        let bin = match std::fs::hard_link(&self.exe, &link) {
            Ok(()) => link,
            Err(_) => self.exe.clone(),
        };
        let config = match config {
            Some(text) => {
                let path = dir.join("broker.toml");
                std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let log = dir.join("broker.log");
        Ok(Spawn { bin, dir, log, port, args: args.iter().map(|a| a.to_string()).collect(), config })
    }
}

impl Spawn {
    /// The port the broker is told to listen on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Runs the broker, its stderr going to a fresh log.
    pub(crate) fn run(&self) -> Result<Child, String> {
        let log = File::create(&self.log).map_err(|e| format!("create {}: {e}", self.log.display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--listen").arg(format!("127.0.0.1:{}", self.port)).args(&self.args);
        if let Some(path) = &self.config {
            cmd.arg("--config").arg(path);
        }
        cmd.current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", std::env::var("RATATOSK_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))
    }
}

/// A loopback port that nothing listens on at the moment.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory of one test, removed afterwards with what failed starts kept in it.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Scratch {
            Scratch(std::env::temp_dir().join(format!("ratatosk-testkit-{}-{test}", std::process::id())))
        }

        /// A "broker" that exits at once, as one that cannot bind or read its configuration does.
        fn exits_at_once(&self) -> Launcher {
            Launcher::new("/bin/true", &self.0)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_broker_that_exits_during_start_up_is_an_error() {
        let scratch = Scratch::new("exits");
        match scratch.exits_at_once().start(Some("shards = 1\n"), &[], Duration::from_secs(5)) {
            Err(e) => assert!(e.contains("broker exited"), "{e}"),
            Ok(b) => panic!("started a broker that exits at once, on port {}", b.port),
        }
    }

    #[test]
    fn a_binary_that_cannot_run_is_an_error() {
        let scratch = Scratch::new("missing");
        let launcher = Launcher::new("/nonexistent/ratatosk", &scratch.0);
        match launcher.start(None, &[], Duration::from_secs(5)) {
            Err(e) => assert!(e.contains("spawn /nonexistent/ratatosk"), "{e}"),
            Ok(b) => panic!("started a missing binary, on port {}", b.port),
        }
    }

    #[test]
    fn start_on_gives_up_after_its_limit() {
        let scratch = Scratch::new("start-on");
        let port = match free_port() {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let t0 = Instant::now();
        match scratch.exits_at_once().start_on(port, &[], Duration::from_millis(300)) {
            Err(e) => assert!(e.contains(&format!("did not listen on port {port}")), "{e}"),
            Ok(_) => panic!("a broker that exits at once listened on port {port}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
