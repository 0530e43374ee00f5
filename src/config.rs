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
    /// Per-session and per-connection limits.
    pub limits: Limits,
    /// Seconds between `$SYS` updates; 0 disables `$SYS`.
    pub sys_interval: u64,
    /// Microseconds an idle shard spins before it sleeps (default 0). Spinning trades CPU for
    /// latency: a shard that is still awake when a packet arrives skips the wake-up.
    pub spin_before_park_us: u64,
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
    /// Largest packet accepted from a client, in bytes (default 1 MiB; at most 268435460).
    pub max_packet_size: u32,
    /// Outgoing QoS 1/2 messages in flight per session, unacknowledged (default 64).
    pub max_inflight: u16,
    /// Incoming QoS 2 messages a client may leave unreleased: our v5 receive maximum (default 64).
    pub receive_maximum: u16,
    /// Messages queued per session while offline or while the in-flight window is full (default
    /// 1000). From half full, publishers to a connected subscriber are paced; when full, the newest
    /// message is dropped.
    pub max_queued: usize,
    /// Subscriptions per session (default 100).
    pub max_subscriptions: usize,
    /// Topic aliases a v5 client may use towards us (default 64).
    pub topic_alias_maximum: u16,
    /// Bytes of unsent output buffered per connection before QoS 0 messages to it are dropped
    /// (default 4 MiB): a slow reader must not grow the broker's memory without bound.
    pub max_output_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1883))],
            shards: 0,
            limits: Limits::default(),
            sys_interval: 10,
            spin_before_park_us: 0,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: 10,
            max_keepalive: 3600,
            max_packet_size: 1024 * 1024,
            max_inflight: 64,
            receive_maximum: 64,
            max_queued: 1000,
            max_subscriptions: 100,
            topic_alias_maximum: 64,
            max_output_buffer: 4 * 1024 * 1024,
        }
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
