//! Shared helpers for the integration tests: a broker process guard, a small hand-written MQTT
//! client (3.1, 3.1.1 and 5.0) with byte-level control, rumqttc wrappers, mosquitto command-line
//! clients and raw TCP.
//!
//! Every wait is bounded: a helper that waits for something takes a duration (or uses `WAIT`) and
//! panics with a message naming what it waited for when the time runs out.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test watches for something that should not happen.
pub const QUIET: Duration = Duration::from_millis(400);

/// Number of shards every test broker runs with.
pub const SHARDS: usize = 2;

// ---------------------------------------------------------------------------------------------
// The broker process
// ---------------------------------------------------------------------------------------------

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

static UNIQ: AtomicUsize = AtomicUsize::new(0);

/// A unique client id with the given prefix.
pub fn uniq(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id() % 10000, UNIQ.fetch_add(1, Ordering::Relaxed))
}

/// The home shard of a client id in the default tenant.
pub fn shard_of(client_id: &str) -> usize {
    ratatosk_shards::home_shard("default", client_id, SHARDS)
}

/// A unique client id whose home is `shard`.
pub fn id_on_shard(prefix: &str, shard: usize) -> String {
    for _ in 0..1000 {
        let id = uniq(prefix);
        if shard_of(&id) == shard {
            return id;
        }
    }
    panic!("no client id found for shard {shard}");
}

/// `n` unique client ids alternating between the shards, so both shards hold some.
pub fn ids_on_both_shards(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| id_on_shard(prefix, i % SHARDS)).collect()
}

// ---------------------------------------------------------------------------------------------
// Wire encoding helpers
// ---------------------------------------------------------------------------------------------

/// Encodes a variable byte integer (remaining length, property lengths, subscription ids).
pub fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// A UTF-8 string / binary field: 16-bit length then bytes.
pub fn mqtt_str(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A whole packet: first byte, remaining length, body.
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    varint(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

/// Protocol versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ver {
    /// MQTT 3.1 ("MQIsdp", level 3).
    V31,
    /// MQTT 3.1.1 (level 4).
    V311,
    /// MQTT 5.0 (level 5).
    V5,
}

impl Ver {
    pub fn is_v5(self) -> bool {
        self == Ver::V5
    }
}

/// One v5 property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    Byte(u8, u8),
    U16(u8, u16),
    U32(u8, u32),
    Var(u8, u32),
    Str(u8, String),
    Bin(u8, Vec<u8>),
    User(String, String),
}

/// Property identifiers used by the tests.
pub mod pid {
    pub const PAYLOAD_FORMAT: u8 = 0x01;
    pub const MESSAGE_EXPIRY: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_ID: u8 = 0x0B;
    pub const SESSION_EXPIRY: u8 = 0x11;
    pub const ASSIGNED_CLIENT_ID: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const WILL_DELAY: u8 = 0x18;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
}

impl Prop {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Prop::Byte(id, v) => {
                out.push(*id);
                out.push(*v);
            }
            Prop::U16(id, v) => {
                out.push(*id);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Prop::U32(id, v) => {
                out.push(*id);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Prop::Var(id, v) => {
                out.push(*id);
                varint(*v as usize, out);
            }
            Prop::Str(id, s) => {
                out.push(*id);
                mqtt_str(s.as_bytes(), out);
            }
            Prop::Bin(id, b) => {
                out.push(*id);
                mqtt_str(b, out);
            }
            Prop::User(k, v) => {
                out.push(pid::USER_PROPERTY);
                mqtt_str(k.as_bytes(), out);
                mqtt_str(v.as_bytes(), out);
            }
        }
    }
}

/// Encodes a property list with its length prefix.
pub fn props_bytes(props: &[Prop], out: &mut Vec<u8>) {
    let mut body = Vec::new();
    for p in props {
        p.encode(&mut body);
    }
    varint(body.len(), out);
    out.extend_from_slice(&body);
}

/// Decoded properties with typed getters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props(pub Vec<Prop>);

impl Props {
    pub fn byte(&self, id: u8) -> Option<u8> {
        self.0.iter().find_map(|p| match p {
            Prop::Byte(i, v) if *i == id => Some(*v),
            _ => None,
        })
    }
    pub fn u16(&self, id: u8) -> Option<u16> {
        self.0.iter().find_map(|p| match p {
            Prop::U16(i, v) if *i == id => Some(*v),
            _ => None,
        })
    }
    pub fn u32(&self, id: u8) -> Option<u32> {
        self.0.iter().find_map(|p| match p {
            Prop::U32(i, v) if *i == id => Some(*v),
            _ => None,
        })
    }
    pub fn vars(&self, id: u8) -> Vec<u32> {
        self.0
            .iter()
            .filter_map(|p| match p {
                Prop::Var(i, v) if *i == id => Some(*v),
                _ => None,
            })
            .collect()
    }
    pub fn str(&self, id: u8) -> Option<&str> {
        self.0.iter().find_map(|p| match p {
            Prop::Str(i, v) if *i == id => Some(v.as_str()),
            _ => None,
        })
    }
    pub fn bin(&self, id: u8) -> Option<&[u8]> {
        self.0.iter().find_map(|p| match p {
            Prop::Bin(i, v) if *i == id => Some(v.as_slice()),
            _ => None,
        })
    }
    pub fn users(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter_map(|p| match p {
                Prop::User(k, v) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect()
    }
}

fn take_u16(b: &mut &[u8]) -> Result<u16, String> {
    if b.len() < 2 {
        return Err("truncated u16".into());
    }
    Ok(b.get_u16())
}

fn take_bin(b: &mut &[u8]) -> Result<Vec<u8>, String> {
    let n = take_u16(b)? as usize;
    if b.len() < n {
        return Err("truncated string".into());
    }
    let v = b[..n].to_vec();
    b.advance(n);
    Ok(v)
}

fn take_str(b: &mut &[u8]) -> Result<String, String> {
    String::from_utf8(take_bin(b)?).map_err(|_| "invalid UTF-8 from broker".into())
}

fn take_varint(b: &mut &[u8]) -> Result<usize, String> {
    let mut n = 0usize;
    let mut mult = 1usize;
    for _ in 0..4 {
        if b.is_empty() {
            return Err("truncated varint".into());
        }
        let byte = b.get_u8();
        n += (byte & 0x7F) as usize * mult;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
        mult *= 128;
    }
    Err("varint too long".into())
}

fn take_props(b: &mut &[u8]) -> Result<Props, String> {
    let len = take_varint(b)?;
    if b.len() < len {
        return Err("truncated properties".into());
    }
    let mut p = &b[..len];
    b.advance(len);
    let mut out = Vec::new();
    while !p.is_empty() {
        let id = p.get_u8();
        let prop = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => {
                if p.is_empty() {
                    return Err("truncated byte property".into());
                }
                Prop::Byte(id, p.get_u8())
            }
            0x13 | 0x21 | 0x22 | 0x23 => Prop::U16(id, take_u16(&mut p)?),
            0x02 | 0x11 | 0x18 | 0x27 => {
                if p.len() < 4 {
                    return Err("truncated u32 property".into());
                }
                Prop::U32(id, p.get_u32())
            }
            0x0B => Prop::Var(id, take_varint(&mut p)? as u32),
            0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => Prop::Str(id, take_str(&mut p)?),
            0x09 | 0x16 => Prop::Bin(id, take_bin(&mut p)?),
            0x26 => Prop::User(take_str(&mut p)?, take_str(&mut p)?),
            other => return Err(format!("unknown property 0x{other:02x} from broker")),
        };
        out.push(prop);
    }
    Ok(Props(out))
}

/// An application message as received (or to send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// Topic; resolved from the topic alias when the packet carried an empty topic.
    pub topic: String,
    /// The topic as it was on the wire (empty when only a topic alias was sent).
    pub wire_topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub pid: u16,
    pub props: Props,
}

/// A packet from the broker, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pkt {
    ConnAck { session_present: bool, code: u8, props: Props },
    Publish(Msg),
    PubAck { pid: u16, code: u8 },
    PubRec { pid: u16, code: u8 },
    PubRel { pid: u16, code: u8 },
    PubComp { pid: u16, code: u8 },
    SubAck { pid: u16, codes: Vec<u8> },
    UnsubAck { pid: u16, codes: Vec<u8> },
    PingResp,
    Disconnect { code: u8, props: Props },
    /// Anything else (first byte, body): a server must not send these.
    Other(u8, Vec<u8>),
}

/// Splits one whole packet off `buf`: `Ok(None)` when more bytes are needed.
pub fn split_frame(buf: &mut BytesMut) -> Result<Option<(u8, Vec<u8>)>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let mut len = 0usize;
    let mut mult = 1usize;
    let mut i = 1;
    loop {
        if i >= buf.len() {
            return Ok(None);
        }
        if i > 4 {
            return Err("remaining length longer than 4 bytes from broker".into());
        }
        let b = buf[i];
        len += (b & 0x7F) as usize * mult;
        mult *= 128;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    if buf.len() < i + len {
        return Ok(None);
    }
    let first = buf[0];
    buf.advance(i);
    let body = buf.split_to(len).to_vec();
    Ok(Some((first, body)))
}

/// Decodes a server packet of version `v`.
pub fn decode(v: Ver, first: u8, body: &[u8]) -> Result<Pkt, String> {
    let mut b = body;
    let v5 = v.is_v5();
    let ack = |b: &mut &[u8]| -> Result<(u16, u8), String> {
        let pid = take_u16(b)?;
        let code = if v5 && !b.is_empty() { b.get_u8() } else { 0 };
        if v5 && !b.is_empty() {
            take_props(b)?;
        }
        Ok((pid, code))
    };
    Ok(match first >> 4 {
        2 => {
            if b.len() < 2 {
                return Err("short CONNACK".into());
            }
            let flags = b.get_u8();
            let code = b.get_u8();
            let props = if v5 && !b.is_empty() { take_props(&mut b)? } else { Props::default() };
            Pkt::ConnAck { session_present: flags & 1 == 1, code, props }
        }
        3 => {
            let qos = (first >> 1) & 3;
            let topic = take_str(&mut b)?;
            let pid = if qos > 0 { take_u16(&mut b)? } else { 0 };
            let props = if v5 { take_props(&mut b)? } else { Props::default() };
            Pkt::Publish(Msg { wire_topic: topic.clone(), topic, payload: b.to_vec(), qos, retain: first & 1 == 1, dup: first & 8 == 8, pid, props })
        }
        4 => {
            let (pid, code) = ack(&mut b)?;
            Pkt::PubAck { pid, code }
        }
        5 => {
            let (pid, code) = ack(&mut b)?;
            Pkt::PubRec { pid, code }
        }
        6 => {
            let (pid, code) = ack(&mut b)?;
            Pkt::PubRel { pid, code }
        }
        7 => {
            let (pid, code) = ack(&mut b)?;
            Pkt::PubComp { pid, code }
        }
        9 => {
            let pid = take_u16(&mut b)?;
            if v5 {
                take_props(&mut b)?;
            }
            Pkt::SubAck { pid, codes: b.to_vec() }
        }
        11 => {
            let pid = take_u16(&mut b)?;
            if v5 {
                take_props(&mut b)?;
            }
            Pkt::UnsubAck { pid, codes: b.to_vec() }
        }
        13 => Pkt::PingResp,
        14 => {
            let code = if b.is_empty() { 0 } else { b.get_u8() };
            let props = if !b.is_empty() { take_props(&mut b)? } else { Props::default() };
            Pkt::Disconnect { code, props }
        }
        _ => Pkt::Other(first, body.to_vec()),
    })
}

/// A will message.
#[derive(Debug, Clone)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub props: Vec<Prop>,
}

impl Will {
    pub fn new(topic: &str, payload: &[u8], qos: u8) -> Will {
        Will { topic: topic.into(), payload: payload.into(), qos, retain: false, props: Vec::new() }
    }
}

/// CONNECT options.
#[derive(Debug, Clone)]
pub struct Opts {
    pub ver: Ver,
    pub client_id: String,
    pub clean: bool,
    pub keep_alive: u16,
    pub will: Option<Will>,
    pub props: Vec<Prop>,
}

impl Opts {
    /// Clean session/start, keep alive 30 s, no will, no properties.
    pub fn new(ver: Ver, client_id: &str) -> Opts {
        Opts { ver, client_id: client_id.into(), clean: true, keep_alive: 30, will: None, props: Vec::new() }
    }
    pub fn clean(mut self, clean: bool) -> Opts {
        self.clean = clean;
        self
    }
    pub fn keep_alive(mut self, secs: u16) -> Opts {
        self.keep_alive = secs;
        self
    }
    pub fn will(mut self, w: Will) -> Opts {
        self.will = Some(w);
        self
    }
    pub fn prop(mut self, p: Prop) -> Opts {
        self.props.push(p);
        self
    }
    /// v5 session expiry interval.
    pub fn expiry(self, secs: u32) -> Opts {
        self.prop(Prop::U32(pid::SESSION_EXPIRY, secs))
    }

    /// The encoded CONNECT packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let (name, level): (&[u8], u8) = match self.ver {
            Ver::V31 => (b"MQIsdp", 3),
            Ver::V311 => (b"MQTT", 4),
            Ver::V5 => (b"MQTT", 5),
        };
        mqtt_str(name, &mut body);
        body.push(level);
        let mut flags = 0u8;
        if self.clean {
            flags |= 0x02;
        }
        if let Some(w) = &self.will {
            flags |= 0x04 | (w.qos << 3);
            if w.retain {
                flags |= 0x20;
            }
        }
        body.push(flags);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        if self.ver.is_v5() {
            props_bytes(&self.props, &mut body);
        }
        mqtt_str(self.client_id.as_bytes(), &mut body);
        if let Some(w) = &self.will {
            if self.ver.is_v5() {
                props_bytes(&w.props, &mut body);
            }
            mqtt_str(w.topic.as_bytes(), &mut body);
            mqtt_str(&w.payload, &mut body);
        }
        frame(0x10, &body)
    }
}

/// Subscription options byte for v5 (QoS, no local, retain as published, retain handling); for 3.x
/// only the QoS bits are meaningful.
pub fn sub_opts(qos: u8, no_local: bool, rap: bool, retain_handling: u8) -> u8 {
    qos | (u8::from(no_local) << 2) | (u8::from(rap) << 3) | (retain_handling << 4)
}

/// How a read ended without a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// No packet within the wait.
    Timeout,
    /// The broker closed the connection (EOF or reset).
    Closed,
}

/// A test MQTT client over a plain tokio socket, one packet at a time, with full control of what
/// is sent. Packets that arrive while a helper waits for something else are kept in order.
pub struct Client {
    pub ver: Ver,
    stream: TcpStream,
    buf: BytesMut,
    next_pid: u16,
    pending: VecDeque<Pkt>,
    aliases: HashMap<u16, String>,
    /// The CONNACK's session present flag.
    pub session_present: bool,
    /// The CONNACK's properties (v5).
    pub connack_props: Props,
    /// Whether `next_msg` acknowledges QoS 1/2 messages itself (default true).
    pub auto_ack: bool,
    closed: bool,
}

impl Client {
    /// Opens a TCP connection without sending anything.
    pub async fn open(port: u16, ver: Ver) -> Client {
        let stream = timeout(WAIT, TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("TCP connect timed out")
            .expect("TCP connect failed");
        Client::open_on(stream, ver)
    }

    /// Connects with a tiny socket receive buffer and asserts CONNACK success: a client that
    /// then stops reading backs up into the broker after a few KiB.
    pub async fn connect_small_rcvbuf(port: u16, opts: Opts) -> Client {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = timeout(WAIT, sock.connect(([127, 0, 0, 1], port).into())).await.expect("TCP connect timed out").expect("TCP connect failed");
        let mut c = Client::open_on(stream, opts.ver);
        c.send_raw(&opts.encode()).await;
        match c.recv(WAIT).await {
            Ok(Pkt::ConnAck { code: 0, .. }) => c,
            other => panic!("CONNACK for {} expected, got {other:?}", opts.client_id),
        }
    }

    fn open_on(stream: TcpStream, ver: Ver) -> Client {
        stream.set_nodelay(true).ok();
        Client {
            ver,
            stream,
            buf: BytesMut::new(),
            next_pid: 1,
            pending: VecDeque::new(),
            aliases: HashMap::new(),
            session_present: false,
            connack_props: Props::default(),
            auto_ack: true,
            closed: false,
        }
    }

    /// Writes `count` QoS 0 PUBLISHes in batches without reading anything back; returns once all
    /// are written (a paced client waits here).
    pub async fn flood_qos0(&mut self, topic: &str, payload: &[u8], count: usize) {
        let one = self.publish_bytes(topic, payload, 0, false, false, 0, &[]);
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 64).collect();
        let mut left = count;
        while left > 0 {
            let n = left.min(64);
            self.send_raw(&batch[..one.len() * n]).await;
            left -= n;
        }
    }

    /// Connects and asserts CONNACK success.
    pub async fn connect(port: u16, opts: Opts) -> Client {
        let (c, code) = Client::try_connect(port, opts.clone()).await;
        assert_eq!(code, Some(0), "CONNACK for {:?} {} refused", opts.ver, opts.client_id);
        c
    }

    /// Connects and returns the CONNACK code (`None` when the broker closed without CONNACK).
    pub async fn try_connect(port: u16, opts: Opts) -> (Client, Option<u8>) {
        let mut c = Client::open(port, opts.ver).await;
        c.send_raw(&opts.encode()).await;
        match c.recv(WAIT).await {
            Ok(Pkt::ConnAck { session_present, code, props }) => {
                c.session_present = session_present;
                c.connack_props = props;
                (c, Some(code))
            }
            Ok(other) => panic!("expected CONNACK, got {other:?}"),
            Err(End::Closed) => (c, None),
            Err(End::Timeout) => panic!("no CONNACK within {WAIT:?}"),
        }
    }

    /// The socket, for tests that drive it themselves.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Writes bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        // A write can fail when the broker already closed; reads report that.
        let _ = self.stream.write_all(bytes).await;
    }

    fn pid(&mut self) -> u16 {
        let p = self.next_pid;
        self.next_pid = if self.next_pid == u16::MAX { 1 } else { self.next_pid + 1 };
        p
    }

    /// Next packet from the broker, from the kept ones first.
    pub async fn recv(&mut self, wait: Duration) -> Result<Pkt, End> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(p);
        }
        self.read_packet(wait).await
    }

    async fn read_packet(&mut self, wait: Duration) -> Result<Pkt, End> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match split_frame(&mut self.buf) {
                Ok(Some((first, body))) => {
                    let p = decode(self.ver, first, &body).unwrap_or_else(|e| panic!("bad packet from broker: {e}"));
                    return Ok(p);
                }
                Ok(None) => {}
                Err(e) => panic!("{e}"),
            }
            if self.closed {
                return Err(End::Closed);
            }
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(End::Timeout),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.closed = true;
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Waits for a packet for which `want` returns true, keeping the others for later.
    pub async fn wait_for(&mut self, what: &str, want: impl Fn(&Pkt) -> bool) -> Pkt {
        let deadline = Instant::now() + WAIT;
        let mut skipped = VecDeque::new();
        // First look at what is already kept.
        while let Some(p) = self.pending.pop_front() {
            if want(&p) {
                skipped.extend(self.pending.drain(..));
                self.pending = skipped;
                return p;
            }
            skipped.push_back(p);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_packet(left).await {
                Ok(p) if want(&p) => {
                    self.pending = skipped;
                    return p;
                }
                Ok(p) => skipped.push_back(p),
                Err(e) => panic!("waiting for {what}: {e:?}; got meanwhile {skipped:?}"),
            }
        }
    }

    /// Sends a v5/3.x PUBLISH and returns its packet id (0 for QoS 0) without waiting for acks.
    pub async fn publish_nowait(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool, props: &[Prop]) -> u16 {
        let pid = if qos > 0 { self.pid() } else { 0 };
        let bytes = self.publish_bytes(topic, payload, qos, retain, false, pid, props);
        self.send_raw(&bytes).await;
        pid
    }

    /// The encoded PUBLISH.
    #[allow(clippy::too_many_arguments)]
    pub fn publish_bytes(&self, topic: &str, payload: &[u8], qos: u8, retain: bool, dup: bool, pid: u16, props: &[Prop]) -> Vec<u8> {
        let mut body = Vec::new();
        mqtt_str(topic.as_bytes(), &mut body);
        if qos > 0 {
            body.extend_from_slice(&pid.to_be_bytes());
        }
        if self.ver.is_v5() {
            props_bytes(props, &mut body);
        }
        body.extend_from_slice(payload);
        frame(0x30 | (qos << 1) | u8::from(retain) | (u8::from(dup) << 3), &body)
    }

    /// Publishes and completes the QoS flow (PUBACK, or PUBREC/PUBREL/PUBCOMP).
    pub async fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) {
        self.publish_with(topic, payload, qos, retain, &[]).await
    }

    /// `publish` with v5 properties.
    pub async fn publish_with(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool, props: &[Prop]) {
        let pid = self.publish_nowait(topic, payload, qos, retain, props).await;
        self.finish_publish(qos, pid).await;
    }

    /// Completes the sender side of a QoS 1/2 flow.
    pub async fn finish_publish(&mut self, qos: u8, pid: u16) {
        match qos {
            0 => {}
            1 => {
                let p = self.wait_for("PUBACK", |p| matches!(p, Pkt::PubAck { pid: x, .. } if *x == pid)).await;
                if let Pkt::PubAck { code, .. } = p {
                    assert!(code < 0x80, "PUBACK with error 0x{code:02x}");
                }
            }
            _ => {
                let p = self.wait_for("PUBREC", |p| matches!(p, Pkt::PubRec { pid: x, .. } if *x == pid)).await;
                if let Pkt::PubRec { code, .. } = p {
                    assert!(code < 0x80, "PUBREC with error 0x{code:02x}");
                }
                self.pubrel(pid).await;
                self.wait_for("PUBCOMP", |p| matches!(p, Pkt::PubComp { pid: x, .. } if *x == pid)).await;
            }
        }
    }

    async fn ack_packet(&mut self, first: u8, pid: u16) {
        let mut body = pid.to_be_bytes().to_vec();
        if self.ver.is_v5() {
            body.push(0);
        }
        let bytes = frame(first, &body);
        self.send_raw(&bytes).await;
    }
    pub async fn puback(&mut self, pid: u16) {
        self.ack_packet(0x40, pid).await
    }
    pub async fn pubrec(&mut self, pid: u16) {
        self.ack_packet(0x50, pid).await
    }
    pub async fn pubrel(&mut self, pid: u16) {
        self.ack_packet(0x62, pid).await
    }
    pub async fn pubcomp(&mut self, pid: u16) {
        self.ack_packet(0x70, pid).await
    }

    /// Subscribes to several filters with option bytes; returns the SUBACK codes.
    pub async fn subscribe(&mut self, filters: &[(&str, u8)], props: &[Prop]) -> Vec<u8> {
        let pid = self.pid();
        let mut body = pid.to_be_bytes().to_vec();
        if self.ver.is_v5() {
            props_bytes(props, &mut body);
        }
        for (f, o) in filters {
            mqtt_str(f.as_bytes(), &mut body);
            body.push(*o);
        }
        self.send_raw(&frame(0x82, &body)).await;
        match self.wait_for("SUBACK", |p| matches!(p, Pkt::SubAck { pid: x, .. } if *x == pid)).await {
            Pkt::SubAck { codes, .. } => codes,
            _ => unreachable!(),
        }
    }

    /// Subscribes to one filter and asserts the granted QoS.
    pub async fn sub(&mut self, filter: &str, qos: u8) {
        let codes = self.subscribe(&[(filter, qos)], &[]).await;
        assert_eq!(codes, vec![qos], "SUBACK for {filter}");
    }

    /// Unsubscribes; returns the UNSUBACK codes (empty for 3.x).
    pub async fn unsubscribe(&mut self, filters: &[&str]) -> Vec<u8> {
        let pid = self.pid();
        let mut body = pid.to_be_bytes().to_vec();
        if self.ver.is_v5() {
            props_bytes(&[], &mut body);
        }
        for f in filters {
            mqtt_str(f.as_bytes(), &mut body);
        }
        self.send_raw(&frame(0xA2, &body)).await;
        match self.wait_for("UNSUBACK", |p| matches!(p, Pkt::UnsubAck { pid: x, .. } if *x == pid)).await {
            Pkt::UnsubAck { codes, .. } => codes,
            _ => unreachable!(),
        }
    }

    /// Next application message within `wait`, acknowledging it when `auto_ack` is on. Other
    /// packets (acks for our own flows) are kept for later. Topic aliases are resolved.
    pub async fn next_msg(&mut self, wait: Duration) -> Option<Msg> {
        let deadline = Instant::now() + wait;
        let mut skipped = VecDeque::new();
        let got = loop {
            let p = match self.pending.iter().position(|p| matches!(p, Pkt::Publish(_) | Pkt::PubRel { .. })) {
                Some(i) => self.pending.remove(i),
                None => None,
            };
            let p = match p {
                Some(p) => Ok(p),
                None => self.read_packet(deadline.saturating_duration_since(Instant::now())).await,
            };
            match p {
                Ok(Pkt::Publish(m)) => break Some(m),
                Ok(Pkt::PubRel { pid, .. }) => {
                    if self.auto_ack {
                        self.pubcomp(pid).await;
                    } else {
                        skipped.push_back(Pkt::PubRel { pid, code: 0 });
                    }
                }
                Ok(other) => skipped.push_back(other),
                Err(End::Timeout) => break None,
                Err(End::Closed) => break None,
            }
        };
        skipped.extend(self.pending.drain(..));
        self.pending = skipped;
        let mut m = got?;
        if let Some(a) = m.props.u16(pid::TOPIC_ALIAS) {
            if m.topic.is_empty() {
                m.topic = self.aliases.get(&a).cloned().unwrap_or_else(|| panic!("broker used unknown topic alias {a}"));
            } else {
                self.aliases.insert(a, m.topic.clone());
            }
        }
        if self.auto_ack {
            match m.qos {
                1 => self.puback(m.pid).await,
                2 => self.pubrec(m.pid).await,
                _ => {}
            }
        }
        Some(m)
    }

    /// The next message, or panic after `WAIT`.
    pub async fn expect_msg(&mut self) -> Msg {
        match self.next_msg(WAIT).await {
            Some(m) => m,
            None => panic!("{:?} client: no message within {WAIT:?} (closed: {})", self.ver, self.closed),
        }
    }

    /// Asserts no message arrives within `wait`.
    pub async fn expect_no_msg(&mut self, wait: Duration) {
        if let Some(m) = self.next_msg(wait).await {
            panic!("unexpected message {m:?}");
        }
        assert!(!self.closed, "the broker closed the connection while the test expected it to stay quiet and open");
    }

    /// Collects messages until none arrives for `QUIET` (at most `max`).
    pub async fn drain_msgs(&mut self, max: usize) -> Vec<Msg> {
        let mut v = Vec::new();
        while v.len() < max {
            match self.next_msg(QUIET).await {
                Some(m) => v.push(m),
                None => break,
            }
        }
        v
    }

    /// Sends DISCONNECT (reason and properties for v5) and closes.
    pub async fn disconnect(mut self) {
        self.disconnect_with(0, &[]).await
    }

    pub async fn disconnect_with(&mut self, code: u8, props: &[Prop]) {
        let bytes = if self.ver.is_v5() {
            let mut body = vec![code];
            props_bytes(props, &mut body);
            frame(0xE0, &body)
        } else {
            vec![0xE0, 0x00]
        };
        self.send_raw(&bytes).await;
        let _ = self.stream.shutdown().await;
        // Let the broker see the DISCONNECT before the socket goes (bounded).
        let _ = self.read_until_closed(Duration::from_secs(2)).await;
    }

    /// Reads (and returns) packets until the broker closes; `Err` with what came if it did not
    /// close within `wait`.
    pub async fn read_until_closed(&mut self, wait: Duration) -> Result<Vec<Pkt>, Vec<Pkt>> {
        let deadline = Instant::now() + wait;
        let mut got: Vec<Pkt> = self.pending.drain(..).collect();
        loop {
            match self.read_packet(deadline.saturating_duration_since(Instant::now())).await {
                Ok(p) => got.push(p),
                Err(End::Closed) => return Ok(got),
                Err(End::Timeout) => return Err(got),
            }
        }
    }

    /// Asserts the broker closes the connection within `WAIT`; returns the packets sent before.
    pub async fn expect_closed(&mut self) -> Vec<Pkt> {
        match self.read_until_closed(WAIT).await {
            Ok(v) => v,
            Err(v) => panic!("broker did not close the connection within {WAIT:?}; got {v:?}"),
        }
    }

    /// Drops the socket without DISCONNECT (an abrupt close: the will applies).
    pub fn drop_abruptly(self) {
        let std = self.stream.into_std().expect("into_std");
        // SO_LINGER 0 turns the close into a reset, like a crashed client.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&std);
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt on a socket we own, with a correctly sized struct.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(std);
    }

    /// Whether the broker has closed the connection (reads pending bytes, bounded by `wait`).
    pub async fn is_closed_within(&mut self, wait: Duration) -> bool {
        self.read_until_closed(wait).await.is_ok()
    }
}

/// The DISCONNECT reason codes among `pkts`.
pub fn disconnect_codes(pkts: &[Pkt]) -> Vec<u8> {
    pkts.iter()
        .filter_map(|p| match p {
            Pkt::Disconnect { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Raw TCP
// ---------------------------------------------------------------------------------------------

/// Writes `bytes` to a fresh connection and reads until the broker closes it or `wait` passes.
/// Returns what was read and whether the connection was closed.
pub async fn raw_exchange(port: u16, bytes: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut s = timeout(WAIT, TcpStream::connect(("127.0.0.1", port))).await.expect("connect timeout").expect("connect");
    let _ = s.write_all(bytes).await;
    let deadline = tokio::time::Instant::now() + wait;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Splits raw bytes from the broker into packets of version `v`.
pub fn decode_all(v: Ver, bytes: &[u8]) -> Vec<Pkt> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Ok(Some((first, body))) = split_frame(&mut buf) {
        out.push(decode(v, first, &body).unwrap_or_else(|e| panic!("bad packet from broker: {e}")));
    }
    assert!(buf.is_empty(), "trailing partial packet from broker: {:?}", &buf[..]);
    out
}

// ---------------------------------------------------------------------------------------------
// rumqttc
// ---------------------------------------------------------------------------------------------

/// A rumqttc 3.1.1 client whose event loop runs in a task; received PUBLISH packets come through a
/// channel. The loop stops on the first connection error (no reconnects).
pub struct RumqttV4 {
    pub client: rumqttc::AsyncClient,
    rx: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Publish>,
    acks: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Packet>,
    task: tokio::task::JoinHandle<()>,
    pub session_present: bool,
}

impl RumqttV4 {
    pub async fn connect(port: u16, id: &str, clean: bool) -> RumqttV4 {
        let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(clean).set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = rumqttc::AsyncClient::new(o, 100);
        let first = timeout(WAIT, el.poll()).await.expect("rumqttc v4 connect timed out").expect("rumqttc v4 connect failed");
        let session_present = match first {
            rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(c)) => c.session_present,
            other => panic!("expected CONNACK, got {other:?}"),
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (atx, acks) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(rumqttc::Event::Incoming(p)) => {
                        let _ = atx.send(p);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        RumqttV4 { client, rx, acks, task, session_present }
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) {
        self.client.subscribe(filter, qos).await.expect("subscribe request");
        self.wait_ack("SUBACK", |p| matches!(p, rumqttc::Packet::SubAck(_))).await;
    }

    /// Publishes and, for QoS 1/2, waits for the PUBACK/PUBCOMP.
    pub async fn publish(&mut self, topic: &str, qos: rumqttc::QoS, payload: &[u8]) {
        self.client.publish(topic, qos, false, payload.to_vec()).await.expect("publish request");
        match qos {
            rumqttc::QoS::AtMostOnce => {}
            rumqttc::QoS::AtLeastOnce => self.wait_ack("PUBACK", |p| matches!(p, rumqttc::Packet::PubAck(_))).await,
            rumqttc::QoS::ExactlyOnce => self.wait_ack("PUBCOMP", |p| matches!(p, rumqttc::Packet::PubComp(_))).await,
        }
    }

    async fn wait_ack(&mut self, what: &str, want: impl Fn(&rumqttc::Packet) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.acks.recv()).await {
                Ok(Some(p)) if want(&p) => return,
                Ok(Some(_)) => {}
                Ok(None) => panic!("rumqttc v4 connection ended while waiting for {what}"),
                Err(_) => panic!("no {what} within {WAIT:?}"),
            }
        }
    }

    /// Next received PUBLISH within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<rumqttc::Publish> {
        timeout(wait, self.rx.recv()).await.ok().flatten()
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = timeout(Duration::from_secs(2), self.task).await;
    }
}

/// A rumqttc 5.0 client, like `RumqttV4`.
pub struct RumqttV5 {
    pub client: rumqttc::v5::AsyncClient,
    rx: tokio::sync::mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Publish>,
    acks: tokio::sync::mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl RumqttV5 {
    pub async fn connect(port: u16, id: &str) -> RumqttV5 {
        use rumqttc::v5::mqttbytes::v5::Packet;
        let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 100);
        let first = timeout(WAIT, el.poll()).await.expect("rumqttc v5 connect timed out").expect("rumqttc v5 connect failed");
        assert!(matches!(first, rumqttc::v5::Event::Incoming(Packet::ConnAck(_))), "expected CONNACK, got {first:?}");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (atx, acks) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::v5::Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(rumqttc::v5::Event::Incoming(p)) => {
                        let _ = atx.send(p);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        RumqttV5 { client, rx, acks, task }
    }

    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::v5::mqttbytes::QoS) {
        use rumqttc::v5::mqttbytes::v5::Packet;
        self.client.subscribe(filter, qos).await.expect("subscribe request");
        self.wait_ack("SUBACK", |p| matches!(p, Packet::SubAck(_))).await;
    }

    pub async fn publish(&mut self, topic: &str, qos: rumqttc::v5::mqttbytes::QoS, payload: &[u8]) {
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::mqttbytes::QoS;
        self.client.publish(topic, qos, false, payload.to_vec()).await.expect("publish request");
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.wait_ack("PUBACK", |p| matches!(p, Packet::PubAck(_))).await,
            QoS::ExactlyOnce => self.wait_ack("PUBCOMP", |p| matches!(p, Packet::PubComp(_))).await,
        }
    }

    async fn wait_ack(&mut self, what: &str, want: impl Fn(&rumqttc::v5::mqttbytes::v5::Packet) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.acks.recv()).await {
                Ok(Some(p)) if want(&p) => return,
                Ok(Some(_)) => {}
                Ok(None) => panic!("rumqttc v5 connection ended while waiting for {what}"),
                Err(_) => panic!("no {what} within {WAIT:?}"),
            }
        }
    }

    pub async fn next(&mut self, wait: Duration) -> Option<rumqttc::v5::mqttbytes::v5::Publish> {
        timeout(wait, self.rx.recv()).await.ok().flatten()
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = timeout(Duration::from_secs(2), self.task).await;
    }
}

// ---------------------------------------------------------------------------------------------
// mosquitto command-line clients
// ---------------------------------------------------------------------------------------------

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
