//! The command line: emqtt-bench's subcommands and flags, plus our additions.
//!
//! An emqtt-bench command line must work unchanged, so short flags follow emqtt-bench even where they
//! clash with clap's conventions: `-h` is the host (help is `--help` only) and `-V` the protocol
//! version (there is no version flag).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// emqtt-bench compatible MQTT load tool with thread-per-core clients and HdrHistogram latency output.
#[derive(Debug, Parser)]
#[command(name = "ratatosk-bench", disable_help_flag = true, disable_version_flag = true)]
pub struct Cli {
    /// Print help.
    #[arg(long, action = ArgAction::Help, global = true)]
    pub help: Option<bool>,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open connections and keep them open (idle load).
    #[command(disable_help_flag = true)]
    Conn(ConnCmd),
    /// Subscribe and count (and time) what arrives.
    #[command(disable_help_flag = true)]
    Sub(SubCmd),
    /// Publish.
    #[command(disable_help_flag = true)]
    Pub(PubCmd),
    /// Publishers and subscribers in one process, with loss, duplicate, order and latency accounting.
    #[command(disable_help_flag = true)]
    Pubsub(PubSubCmd),
    /// Compare .hgrm percentile distributions side by side (and plot them as SVG).
    #[command(disable_help_flag = true)]
    Compare(CompareCmd),
    /// Relay PUBLISH bytes between subscribed clients without a broker: the floor to compare with.
    #[command(disable_help_flag = true)]
    Relay(RelayCmd),
}

/// Connection flags shared by every client-running subcommand (emqtt-bench's names and defaults).
#[derive(Debug, Clone, Args)]
pub struct ConnOpts {
    /// Broker host name or address; a comma-separated list spreads clients over hosts.
    #[arg(short = 'h', long = "host", default_value = "localhost")]
    pub host: String,
    /// Broker port.
    #[arg(short = 'p', long = "port", default_value_t = 1883)]
    pub port: u16,
    /// MQTT protocol version: 3 (3.1), 4 (3.1.1) or 5.
    #[arg(short = 'V', long = "version", default_value_t = 5, value_parser = clap::value_parser!(u8).range(3..=5))]
    pub version: u8,
    /// Number of clients.
    #[arg(short = 'c', long = "count")]
    pub count: u64,
    /// First client sequence number (`%i` runs from startnumber+1).
    #[arg(short = 'n', long = "startnumber", default_value_t = 0)]
    pub startnumber: u64,
    /// Milliseconds between two connects (over all clients).
    #[arg(short = 'i', long = "interval", default_value_t = 10.0)]
    pub interval: f64,
    /// Connections per second; overrides --interval when set.
    #[arg(short = 'R', long = "connrate", default_value_t = 0)]
    pub connrate: u64,
    /// Client id prefix (default: the host name).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Use the sequence number alone as client id.
    #[arg(long, default_value_t = false)]
    pub shortids: bool,
    /// User name.
    #[arg(short = 'u', long = "username")]
    pub username: Option<String>,
    /// Password.
    #[arg(short = 'P', long = "password")]
    pub password: Option<String>,
    /// Keep alive in seconds.
    #[arg(short = 'k', long = "keepalive", default_value_t = 300)]
    pub keepalive: u16,
    /// Clean session / clean start.
    #[arg(short = 'C', long = "clean", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub clean: bool,
    /// Session expiry interval in seconds (MQTT 5).
    #[arg(short = 'x', long = "session-expiry", default_value_t = 0)]
    pub session_expiry: u32,
    /// TLS; without --cacertfile the broker's certificate is not verified (as with emqtt-bench).
    #[arg(short = 'S', long = "ssl", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub ssl: bool,
    /// CA certificate file (PEM) to verify the broker's certificate with.
    #[arg(long)]
    pub cacertfile: Option<PathBuf>,
    /// Client certificate file (PEM), with --keyfile.
    #[arg(long)]
    pub certfile: Option<PathBuf>,
    /// Client private key file (PEM), with --certfile.
    #[arg(long)]
    pub keyfile: Option<PathBuf>,
    /// MQTT over WebSocket (subprotocol `mqtt`, path `/mqtt`); with --ssl, over TLS.
    #[arg(long, default_value_t = false)]
    pub ws: bool,
    /// Local source addresses, comma separated: clients bind to them in turn before connecting, so
    /// more connections can be opened than one source address has ephemeral ports.
    #[arg(long)]
    pub ifaddr: Option<String>,
    /// Reconnect attempts per client after an established connection is lost (0 = never): the client
    /// waits briefly (100 ms, doubling up to 1 s between failed attempts), connects again with the
    /// same client id, re-subscribes or resumes publishing, and counts a `reconnect`. Messages due
    /// while disconnected are not sent; messages a subscriber missed still count as lost. A lost
    /// connection that is re-established does not by itself fail the run.
    #[arg(long, default_value_t = 0)]
    pub reconnect: u32,
    /// Retries (100 ms apart) of a failed initial connect before it counts as connect_fail.
    #[arg(long = "num-retry-connect", default_value_t = 0)]
    pub num_retry_connect: u32,
    /// Stop after this many seconds (default: run until done or interrupted).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Client executors, one per core (default: every CPU this process may use).
    #[arg(long)]
    pub cores: Option<usize>,
    /// Write the latency histogram as HdrHistogram percentile-distribution text.
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write an HdrHistogram interval log (one histogram per second).
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,
    /// Print the final summary as one JSON object on stdout.
    #[arg(long, default_value_t = false)]
    pub json: bool,
    /// Do not print the once-a-second rate lines.
    #[arg(long, default_value_t = false)]
    pub quiet: bool,
}

/// Publishing flags.
#[derive(Debug, Clone, Args)]
pub struct PubOpts {
    /// Topic to publish to; `%i` sequence number, `%c` client id, `%u` user name, `%rand_N` a random
    /// number in 1..=N.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// QoS of the messages.
    #[arg(short = 'q', long = "qos", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Milliseconds between two messages of one client (fractions allowed; 0 = as fast as flow
    /// control allows).
    #[arg(short = 'I', long = "interval_of_msg", default_value_t = 1000.0)]
    pub interval_of_msg: f64,
    /// Payload size in bytes (headers included).
    #[arg(short = 's', long = "size", default_value_t = 256)]
    pub size: usize,
    /// Fixed payload (payload headers, if any, are put in front of it).
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    /// Retain flag.
    #[arg(short = 'r', long = "retain", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub retain: bool,
    /// Total number of messages over all publishers (0 = unlimited); spread evenly over clients.
    #[arg(short = 'L', long = "limit", default_value_t = 0)]
    pub limit: u64,
    /// Most unacknowledged QoS 1/2 messages per client.
    #[arg(short = 'F', long = "inflight", default_value_t = 1)]
    pub inflight: u16,
    /// Payload headers, comma separated: `ts` (send time, ns) and `cnt64` (publisher id and sequence).
    #[arg(long = "payload-hdrs", default_value = "")]
    pub payload_hdrs: String,
    /// Least random wait before a client starts publishing, ms.
    #[arg(long = "min-random-wait", default_value_t = 0)]
    pub min_random_wait: u64,
    /// Most random wait before a client starts publishing, ms.
    #[arg(long = "max-random-wait", default_value_t = 0)]
    pub max_random_wait: u64,
    /// Keep connections open after the --limit is reached, until the run ends.
    #[arg(long = "keep-connected", default_value_t = false)]
    pub keep_connected: bool,
    /// Target total message rate over all publishers (msg/s); overrides -I. Latency is measured from
    /// the intended send time, so a stalled broker shows up in the percentiles.
    #[arg(long)]
    pub rate: Option<f64>,
}

/// `conn`.
#[derive(Debug, Clone, Args)]
pub struct ConnCmd {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnOpts,
}

/// `sub`.
#[derive(Debug, Clone, Args)]
pub struct SubCmd {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnOpts,
    /// Topic filter; the same placeholders as for publishing.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// Subscription QoS.
    #[arg(short = 'q', long = "qos", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload headers the publishers put in front of each message, as for `pub`.
    #[arg(long = "payload-hdrs", default_value = "")]
    pub payload_hdrs: String,
    /// Number of publishers (the publishers' `-c`) whose `cnt64` messages every subscriber should
    /// receive; with `--pub-limit`, loss is counted exactly instead of from sequence gaps.
    #[arg(long = "pubs")]
    pub pubs: Option<u64>,
    /// Total messages those publishers send (their `-L`): every subscriber expects all of them, and
    /// the run ends as soon as they have arrived.
    #[arg(long = "pub-limit")]
    pub pub_limit: Option<u64>,
}

/// `pub`.
#[derive(Debug, Clone, Args)]
pub struct PubCmd {
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnOpts,
    /// Publishing flags.
    #[command(flatten)]
    pub publish: PubOpts,
}

/// `pubsub`: `-c` publishers and `--subs` subscribers (default one per publisher, same topic).
#[derive(Debug, Clone, Args)]
pub struct PubSubCmd {
    /// Connection flags (`-c` is the number of publishers).
    #[command(flatten)]
    pub conn: ConnOpts,
    /// Publishing flags (payload headers default to `ts,cnt64`).
    #[command(flatten)]
    pub publish: PubOpts,
    /// Number of subscribers (default: as many as publishers).
    #[arg(long)]
    pub subs: Option<u64>,
    /// Subscribers' topic filter (default: the publish topic, expanded with each subscriber's `%i`).
    #[arg(long = "sub-topic")]
    pub sub_topic: Option<String>,
    /// Subscription QoS (default: the publish QoS).
    #[arg(long = "sub-qos", value_parser = clap::value_parser!(u8).range(0..=2))]
    pub sub_qos: Option<u8>,
    /// Seconds to wait for stragglers after publishing stops.
    #[arg(long = "drain", default_value_t = 5.0)]
    pub drain: f64,
}

/// `compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareCmd {
    /// Two or more .hgrm files written by --hgrm (or any HdrHistogram percentile distribution).
    #[arg(required = true, num_args = 2..)]
    pub files: Vec<PathBuf>,
    /// Also draw the latency-by-percentile curves into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// `relay`.
#[derive(Debug, Clone, Args)]
pub struct RelayCmd {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub listen: std::net::SocketAddr,
}
