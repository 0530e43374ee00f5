//! A running broker: its port, log, memory and exit, and stopping it when the test is done.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ExitStatus};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::launcher::Spawn;

/// How long a broker dropped at the end of a test has to exit after SIGTERM before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// A running broker on a loopback port; SIGTERM on drop (then SIGKILL after a bounded wait). Its
/// stderr goes to a log file that is printed when the test fails.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    /// The MQTT port on 127.0.0.1.
    pub port: u16,
    spawn: Spawn,
}

impl Broker {
    pub(crate) fn new(child: Child, spawn: Spawn) -> Broker {
        Broker { child, port: spawn.port(), spawn }
    }

    /// Runs the broker again in the same directory, on the same port, after it exited.
    pub(crate) fn respawn(&mut self) -> Result<(), String> {
        self.child = self.spawn.run()?;
        Ok(())
    }

    /// Waits up to `limit` for the broker to accept TCP.
    pub(crate) fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("broker exited with {status}"));
            }
            if self.accepts() {
                return Ok(());
            }
            sleep(Duration::from_millis(20));
        }
        Err(format!("port {} not accepting after {limit:?}", self.port))
    }

    /// Whether something accepts TCP on the port. A probe can connect to itself when its source
    /// port happens to be the port (nothing listening): that is no broker.
    pub(crate) fn accepts(&self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
    }

    /// Kills a broker that failed to start, keeping its directory (and log) for inspection.
    pub(crate) fn kill_keeping_files(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Drop would remove the directory.
        std::mem::forget(self);
    }

    /// Whether the process has exited (and been reaped).
    pub(crate) fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// `127.0.0.1`
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.spawn.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The broker's resident memory in bytes (VmRSS); 0 when it cannot be read.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit; `None` if it did not (it
    /// is then killed on drop).
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        // Once reaped, the pid may belong to another process: never signal it again.
        if let Ok(Some(s)) = self.child.try_wait() {
            return Some(s);
        }
        // SAFETY: plain kill(2) on our own child's pid, which has not been reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            sleep(Duration::from_millis(10));
        }
        None
    }

    /// Stops the broker with SIGTERM, and with SIGKILL when it has not exited within `within`.
    pub fn stop(&mut self, within: Duration) {
        if self.terminate(within).is_none() {
            eprintln!("broker did not stop within {within:?} of SIGTERM; killing it");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop(STOP_WITHIN);
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- broker log (last {} lines) ----", tail.len());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.spawn.dir);
        }
    }
}
