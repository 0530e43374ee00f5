//! Broker configuration: typed sections with defaults and validation in one place.
//!
//! Values come from built-in defaults, then an optional TOML file (`--config`), then command-line
//! flags. Every limit has a documented default; `ratatosk --help` and `ratatosk.sample.toml` agree
//! with this file.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or a key has the wrong type or is unknown.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The path given.
        path: String,
        /// What the TOML parser said, naming the key.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid value for `{key}`: {problem}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// What is wrong and what is allowed.
        problem: String,
    },
}

/// The whole broker configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// TCP listeners. Default: `127.0.0.1:1883` only, safe for an anonymous start.
    pub listen: Vec<SocketAddr>,
    /// Number of shards (executors); 0 means one per CPU the process may use.
    pub shards: usize,
    /// Allow more shards than CPUs (default false): they then share cores, which only helps to
    /// test. Even so at most `MAX_OVERSUBSCRIBED_SHARDS` (or the CPU count, if larger).
    pub oversubscribe: bool,
    /// Per-session and per-connection limits.
    pub limits: Limits,
    /// Seconds between `$SYS` updates; 0 disables `$SYS`.
    pub sys_interval: u64,
    /// Microseconds an idle shard spins before it sleeps (default 0). Spinning trades CPU for
    /// latency: a shard that is still awake when a packet arrives skips the wake-up.
    pub spin_before_park_us: u64,
    /// Milliseconds without traffic either way after which a connection is parked (default
    /// 2000): its task ends and its socket is watched by one epoll thread until it has input or
    /// output again, so an idle connection costs well under 1 KiB. 0 keeps a task per connection.
    pub park_idle_ms: u64,
}

/// Limits against abuse, each with a default an operator can rely on.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Seconds a new connection may take to send CONNECT (default 10).
    pub connect_timeout: u64,
    /// Largest keep alive accepted, in seconds; larger requests are lowered to this and announced
    /// as the v5 server keep alive (default 3600). 3.x clients asking for more are refused.
    pub max_keepalive: u16,
    /// Largest packet accepted from a client, in bytes (default 16 MiB, so a 1 MiB or even a
    /// 15 MiB payload is accepted as Mosquitto accepts it; at most 268435460).
    pub max_packet_size: u32,
    /// Outgoing QoS 1/2 messages in flight per session, unacknowledged (default 64).
    pub max_inflight: u16,
    /// Incoming QoS 2 messages a client may leave unreleased: our v5 receive maximum (default 64).
    pub receive_maximum: u16,
    /// Hard cap on unreleased incoming QoS 2 messages of a v5 client (default 4096). Widely used
    /// clients ignore the receive maximum, so going past it is counted but tolerated up to this;
    /// beyond it the client is disconnected with 0x93. 3.x clients have no receive maximum and
    /// are bounded only by the packet identifier space.
    pub max_unreleased_qos2: u16,
    /// Messages queued per session while offline or while the in-flight window is full (default
    /// 1000). From half full, publishers to a connected subscriber are paced; when full, the newest
    /// message is dropped.
    pub max_queued: usize,
    /// Bytes queued per session (default 64 MiB, room for several messages of the largest
    /// packet size), counting payload, topic and a fixed overhead per message; past it the newest
    /// message is dropped and counted.
    pub max_queued_bytes: usize,
    /// Bytes queued by all sessions of the broker together (default 1 GiB), split evenly across
    /// the shards; past a shard's share the newest message is dropped and counted.
    pub max_queued_bytes_total: usize,
    /// Longest a publisher is held back, in milliseconds, for subscribers that fell behind
    /// (default 500): its connection reads no more input until they let it go in turn as they
    /// drain, or this passed. A subscriber that has not drained for this long holds nobody new
    /// and pays alone (QoS 0 dropped, QoS 1/2 queued up to `max_queued`) until it drains.
    pub max_pace_ms: u64,
    /// Subscriptions per session (default 10000: gateways and dashboards subscribe to hundreds
    /// of topics; the bound keeps one session's index within `max_topic_length` × this).
    pub max_subscriptions: usize,
    /// Topic aliases a v5 client may use towards us (default 64).
    pub topic_alias_maximum: u16,
    /// Network connections with an accepted CONNECT, in the whole broker (default 100000); more
    /// are refused with CONNACK 0x97 (v5) / 0x03 (3.x).
    pub max_connections: usize,
    /// Sessions, connected or not, in the whole broker (default 100000); a CONNECT that would
    /// create one more is refused like one over `max_connections`.
    pub max_sessions: usize,
    /// Levels a topic name or filter may have (default 128, as EMQX): each filter level costs
    /// a node of the subscription index, so this bounds what one SUBSCRIBE can make the broker
    /// hold. Longer filters get SUBACK 0x8F; longer PUBLISH topics 0x90 (v5) and are dropped.
    pub max_topic_levels: usize,
    /// Bytes a topic name or filter may have (default 4096; the protocol allows 65,535).
    pub max_topic_length: usize,
    /// Bytes of unsent output buffered per connection before QoS 0 messages to it are dropped
    /// (default 4 MiB): a slow reader must not grow the broker's memory without bound.
    pub max_output_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1883))],
            shards: 0,
            oversubscribe: false,
            limits: Limits::default(),
            sys_interval: 10,
            spin_before_park_us: 0,
            park_idle_ms: 2000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: 10,
            max_keepalive: 3600,
            max_packet_size: 16 * 1024 * 1024,
            max_inflight: 64,
            receive_maximum: 64,
            max_unreleased_qos2: 4096,
            max_queued: 1000,
            max_queued_bytes: 64 * 1024 * 1024,
            max_queued_bytes_total: 1024 * 1024 * 1024,
            max_pace_ms: 500,
            max_subscriptions: 10_000,
            topic_alias_maximum: 64,
            max_output_buffer: 4 * 1024 * 1024,
            max_connections: 100_000,
            max_sessions: 100_000,
            max_topic_levels: 128,
            max_topic_length: 4096,
        }
    }
}

/// Most shards one process runs when oversubscribing: start-up and shutdown stay within a few
/// seconds on a small host (about 5 s for 256 shards on 2 cores).
pub const MAX_OVERSUBSCRIBED_SHARDS: usize = 256;

/// Most shards one process runs at all (each shard's mesh ends grow with the shard count).
pub const MAX_SHARDS: usize = 1024;

impl Config {
    /// The number of shards to run on a host whose process may use `cpus` CPUs: `shards`, or one
    /// per CPU when 0; refused (naming the key and what to do) when the host cannot serve it.
    pub fn shard_count(&self, cpus: usize) -> Result<usize, ConfigError> {
        let cpus = cpus.clamp(1, MAX_SHARDS);
        let n = if self.shards == 0 { cpus } else { self.shards };
        if n > cpus && !self.oversubscribe {
            return Err(ConfigError::Invalid {
                key: "shards",
                problem: format!("{n} shards but this process may use only {cpus} CPUs; run at most {cpus}, or pass --oversubscribe to share cores"),
            });
        }
        let max = cpus.clamp(MAX_OVERSUBSCRIBED_SHARDS, MAX_SHARDS);
        if n > max {
            return Err(ConfigError::Invalid { key: "shards", problem: format!("{n} shards is more than the {max} one process runs on this host") });
        }
        Ok(n)
    }
}

impl Limits {
    /// Whether a topic name or filter is within `max_topic_length` and `max_topic_levels`; a
    /// shared subscription's `$share/{group}/` prefix is not counted.
    pub fn topic_fits(&self, topic: &str) -> bool {
        let topic = crate::protocol::topic::split_shared(topic).map_or(topic, |(_, f)| f);
        topic.len() <= self.max_topic_length && crate::protocol::topic::levels(topic) <= self.max_topic_levels
    }
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: name.clone(), source })?;
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse { path: name, message: e.to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value against its allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if self.listen.is_empty() {
            return Err(ConfigError::Invalid { key: "listen", problem: "at least one address is needed".into() });
        }
        if l.connect_timeout == 0 {
            return Err(ConfigError::Invalid { key: "limits.connect_timeout", problem: "must be at least 1 second".into() });
        }
        if !(64..=268_435_460).contains(&l.max_packet_size) {
            return Err(ConfigError::Invalid { key: "limits.max_packet_size", problem: "must be between 64 and 268435460 bytes".into() });
        }
        if l.max_inflight == 0 {
            return Err(ConfigError::Invalid { key: "limits.max_inflight", problem: "must be at least 1".into() });
        }
        if l.receive_maximum == 0 {
            return Err(ConfigError::Invalid { key: "limits.receive_maximum", problem: "must be at least 1 [MQTT-3.2.2.3.3]".into() });
        }
        if l.max_unreleased_qos2 < l.receive_maximum {
            return Err(ConfigError::Invalid { key: "limits.max_unreleased_qos2", problem: "must be at least limits.receive_maximum".into() });
        }
        if l.max_pace_ms > 10_000 {
            return Err(ConfigError::Invalid { key: "limits.max_pace_ms", problem: "must be at most 10000 (10 s); 0 turns pacing off".into() });
        }
        if l.max_queued_bytes == 0 || l.max_queued_bytes_total == 0 {
            let key = if l.max_queued_bytes == 0 { "limits.max_queued_bytes" } else { "limits.max_queued_bytes_total" };
            return Err(ConfigError::Invalid { key, problem: "must be at least 1 byte".into() });
        }
        if l.max_topic_levels == 0 {
            return Err(ConfigError::Invalid { key: "limits.max_topic_levels", problem: "must be at least 1".into() });
        }
        if !(1..=65_535).contains(&l.max_topic_length) {
            return Err(ConfigError::Invalid { key: "limits.max_topic_length", problem: "must be between 1 and 65535 bytes".into() });
        }
        if self.spin_before_park_us > 10_000 {
            return Err(ConfigError::Invalid { key: "spin_before_park_us", problem: "must be at most 10000 (10 ms)".into() });
        }
        if l.max_keepalive == 0 {
            return Err(ConfigError::Invalid { key: "limits.max_keepalive", problem: "must be at least 1 second".into() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_listens_on_loopback_only() {
        let c = Config::default();
        assert!(c.listen.iter().all(|a| a.ip().is_loopback()));
        c.validate().unwrap();
    }

    #[test]
    fn sample_config_matches_the_defaults() {
        let text = include_str!("../ratatosk.sample.toml");
        let sample: Config = toml::from_str(text).unwrap();
        sample.validate().unwrap();
        assert_eq!(format!("{sample:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn shard_count_is_bounded_by_the_cpus_unless_oversubscribing() {
        let mut c = Config::default();
        assert_eq!(c.shard_count(4).unwrap(), 4, "0 means one per CPU");
        c.shards = 3;
        assert_eq!(c.shard_count(4).unwrap(), 3);
        c.shards = 5;
        let err = c.shard_count(4).unwrap_err().to_string();
        assert!(err.contains("shards") && err.contains("--oversubscribe"), "{err}");
        c.oversubscribe = true;
        assert_eq!(c.shard_count(4).unwrap(), 5);
        c.shards = MAX_OVERSUBSCRIBED_SHARDS + 1;
        assert!(c.shard_count(4).is_err());
        c.shards = MAX_SHARDS + 1;
        assert!(c.shard_count(4096).is_err());
        c.shards = 0;
        assert_eq!(c.shard_count(4096).unwrap(), MAX_SHARDS);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = toml::from_str::<Config>("[limits]\nmax_inflihgt = 3\n").unwrap_err().to_string();
        assert!(err.contains("max_inflihgt"), "{err}");
    }

    #[test]
    fn out_of_range_value_names_the_key() {
        let c: Config = toml::from_str("[limits]\nmax_packet_size = 10\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("limits.max_packet_size"), "{err}");
    }
}
