//! The mosquitto command-line clients, `mosquitto_pub` and `mosquitto_sub`, run as processes.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running mosquitto_pub/mosquitto_sub; killed on drop.
pub struct Mosquitto {
    child: Child,
    name: &'static str,
}

/// Starts `mosquitto_pub` or `mosquitto_sub` with `args`. A missing binary fails the test.
pub fn mosquitto(name: &'static str, args: &[&str]) -> Mosquitto {
    let child = match Command::new(name).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{name}` not found: install mosquitto-clients (e.g. `apt-get install mosquitto-clients`) to run these tests")
        }
        Err(e) => panic!("cannot run {name}: {e}"),
    };
    Mosquitto { child, name }
}

/// What a mosquitto client printed and how it ended.
#[derive(Debug)]
pub struct MosqOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Mosquitto {
    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits (bounded) for it to exit; kills it after `wait`.
    pub async fn finish(mut self, wait: Duration) -> MosqOutput {
        let deadline = Instant::now() + wait;
        let mut status = None;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut stdout);
        }
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        MosqOutput { success: status.is_some_and(|s| s.success()), stdout, stderr }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = self.name;
    }
}
