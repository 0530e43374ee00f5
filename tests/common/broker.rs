//! The broker under test: this package's `ratatosk` binary, run by the shared process guard
//! (`ratatosk-testkit`) with the shard count the tests assume, plus the checks that need an MQTT
//! client ($SYS values, still serving).

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use ratatosk_testkit::Launcher;

use super::client::Client;
use super::connect::Opts;
use super::ids::uniq;
use super::wire::Ver;

/// Number of shards every test broker runs with.
pub const SHARDS: usize = 2;

/// A running `ratatosk` on a free loopback port; SIGTERM on drop (then SIGKILL after a bounded
/// wait). Its stderr goes to a log file that is printed when the test fails. The process methods
/// (`port`, `log`, `rss`, `terminate`, ...) are those of [`ratatosk_testkit::Broker`].
pub struct Broker(ratatosk_testkit::Broker);

/// Cargo builds the binary for this package's integration tests and names it here; the brokers'
/// scratch directories go to the target directory's space for tests.
fn launcher() -> Launcher {
    Launcher::new(env!("CARGO_BIN_EXE_ratatosk"), env!("CARGO_TARGET_TMPDIR"))
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
        launcher().start(config, args, ready_within).map(Broker)
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
