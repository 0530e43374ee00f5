//! The run plan: every client's id, role, topic, broker address and schedule, worked out once from
//! the command line before any executor starts.
//!
//! Planning up front keeps the executors free of parsing and lets `pubsub` know, before the first
//! message, which subscribers each publisher's messages must reach, so loss is counted exactly.

use std::net::{SocketAddr, ToSocketAddrs};

use bytes::Bytes;
use bytestring::ByteString;
use ratatosk::protocol::{topic, ProtocolVersion, QoS};

use crate::args::{ConnOpts, PubOpts};
use crate::payload::Layout;
use crate::rng::Rng;
use crate::template::{self, Vars};

/// Above this many (subscriber, publisher) pairs, exact per-pair accounting is not planned (the
/// topic matching alone would take too long); loss is then counted from sequence gaps.
const MAX_EXACT_PAIRS: usize = 10_000_000;

/// What one client does.
#[derive(Debug, Clone)]
pub enum Role {
    /// Connects and stays idle.
    Conn,
    /// Subscribes to `filter`.
    Sub {
        /// Topic filter.
        filter: ByteString,
        /// Publisher ids whose topic the filter matches, when loss is accounted exactly.
        sources: Option<Vec<u32>>,
    },
    /// Publishes to `topic`.
    Pub {
        /// Topic name.
        topic: ByteString,
        /// Publisher id (index into the per-publisher counters and the `cnt64` header).
        id: u32,
        /// Messages to send (0 = until told to stop).
        limit: u64,
        /// Wait before the first message, ms.
        start_wait_ms: u64,
    },
}

/// One client.
#[derive(Debug, Clone)]
pub struct ClientPlan {
    /// Index over all clients; picks the executor (`index % cores`).
    pub index: usize,
    /// Connects once publishing is allowed (publishers in `pubsub`) rather than at start.
    pub after_subscribers: bool,
    /// Position in its connect schedule (connect time = schedule start + slot × interval).
    pub slot: u64,
    /// Client id.
    pub client_id: ByteString,
    /// Broker address.
    pub addr: SocketAddr,
    /// What it does.
    pub role: Role,
}

/// Publishing parameters common to all publishers.
#[derive(Debug, Clone)]
pub struct PubPlan {
    /// QoS of the messages.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Unacknowledged messages allowed per client (QoS > 0).
    pub inflight: u16,
    /// Nanoseconds between two messages of one client; 0 = as fast as flow control allows.
    pub interval_ns: u64,
    /// Payload before headers are stamped.
    pub payload: Bytes,
    /// Keep the connection after the limit is reached.
    pub keep_connected: bool,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Protocol version.
    pub version: ProtocolVersion,
    /// Keep alive, seconds.
    pub keepalive: u16,
    /// Clean session / clean start.
    pub clean: bool,
    /// User name.
    pub username: Option<ByteString>,
    /// Password.
    pub password: Option<Bytes>,
    /// Session expiry interval (5.0), seconds.
    pub session_expiry: u32,
    /// Retries of a failed connect.
    pub retries: u32,
    /// Nanoseconds between two connects.
    pub connect_interval_ns: u64,
    /// Client executors.
    pub cores: usize,
    /// Payload header layout.
    pub layout: Layout,
    /// Subscription QoS.
    pub sub_qos: QoS,
    /// Publishing parameters, when there are publishers.
    pub publish: Option<PubPlan>,
    /// Every client, subscribers first.
    pub clients: Vec<ClientPlan>,
    /// Number of subscribers.
    pub subs: usize,
    /// Number of publishers.
    pub pubs: usize,
    /// Whether subscribers know their exact sources (pubsub without shared subscriptions).
    pub exact: bool,
    /// For each publisher, how many subscribers should receive each of its messages.
    pub fanout: Vec<u64>,
    /// How long publishers wait for outstanding acknowledgements (and the run for stragglers) once
    /// publishing stops, in nanoseconds.
    pub drain_ns: u64,
}

/// What kind of run to plan.
#[derive(Debug, Clone)]
pub enum Kind<'a> {
    /// `conn`.
    Conn,
    /// `sub`.
    Sub {
        /// Filter template.
        topic: &'a str,
        /// QoS.
        qos: u8,
        /// Header spec.
        hdrs: &'a str,
    },
    /// `pub`.
    Pub(&'a PubOpts),
    /// `pubsub`.
    PubSub {
        /// Publishing flags.
        publish: &'a PubOpts,
        /// Subscribers.
        subs: u64,
        /// Filter template.
        sub_topic: &'a str,
        /// Subscription QoS.
        sub_qos: u8,
    },
}

fn version_of(v: u8) -> ProtocolVersion {
    match v {
        3 => ProtocolVersion::V3_1,
        4 => ProtocolVersion::V3_1_1,
        _ => ProtocolVersion::V5,
    }
}

fn qos_of(q: u8) -> QoS {
    QoS::from_u8(q).unwrap_or(QoS::AtMostOnce)
}

/// The host name, emqtt-bench's default client id prefix.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "bench".to_string())
}

/// Resolves the comma-separated host list.
fn resolve(hosts: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::new();
    for h in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let addr = (h, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve host `{h}`: {e}"))?
            // Prefer IPv4: brokers in benchmarks usually listen on 127.0.0.1 only.
            .min_by_key(|a| a.is_ipv6())
            .ok_or_else(|| format!("host `{h}` has no address"))?;
        out.push(addr);
    }
    if out.is_empty() {
        return Err("no host given (-h)".into());
    }
    Ok(out)
}

/// Refuses flags that are accepted for compatibility but not implemented.
fn refuse_unimplemented(c: &ConnOpts) -> Result<(), String> {
    if c.ssl || c.cacertfile.is_some() || c.certfile.is_some() || c.keyfile.is_some() {
        return Err("--ssl is not implemented yet; benchmark over plain TCP".into());
    }
    if c.ws {
        return Err("--ws is not implemented yet; benchmark over plain TCP".into());
    }
    if c.ifaddr.is_some() {
        return Err("--ifaddr is not implemented yet".into());
    }
    Ok(())
}

/// Builds the plan.
///
/// # Errors
///
/// A message naming the flag to fix.
pub fn build(c: &ConnOpts, kind: Kind<'_>) -> Result<Plan, String> {
    refuse_unimplemented(c)?;
    if c.count == 0 {
        return Err("-c/--count must be at least 1".into());
    }
    if !(c.interval.is_finite() && c.interval >= 0.0) {
        return Err("-i/--interval must be a non-negative number of milliseconds".into());
    }
    let addrs = resolve(&c.host, c.port)?;
    let cores = match c.cores {
        Some(0) => return Err("--cores must be at least 1".into()),
        Some(n) => n,
        None => ratatosk_shards::allowed_cpus().len().max(1),
    };
    let connect_interval_ns = if c.connrate > 0 { 1_000_000_000 / c.connrate } else { (c.interval * 1e6) as u64 };
    let prefix = c.prefix.clone().unwrap_or_else(hostname);
    let username = c.username.clone().unwrap_or_default();
    let mut rng = Rng::from_entropy();
    let run_tag = rng.next_u64() % 1_000_000;

    let (n_subs, n_pubs, sub_tpl, sub_qos, hdrs, publish) = match &kind {
        Kind::Conn => (0, 0, None, 0, "", None),
        Kind::Sub { topic, qos, hdrs } => (c.count, 0, Some(*topic), *qos, *hdrs, None),
        Kind::Pub(p) => (0, c.count, None, 0, p.payload_hdrs.as_str(), Some(*p)),
        Kind::PubSub { publish, subs, sub_topic, sub_qos } => {
            let hdrs = if publish.payload_hdrs.is_empty() { "ts,cnt64" } else { publish.payload_hdrs.as_str() };
            (*subs, c.count, Some(*sub_topic), *sub_qos, hdrs, Some(*publish))
        }
    };
    let layout = Layout::parse(hdrs)?;
    let conn_count = if matches!(kind, Kind::Conn) { c.count } else { 0 };
    let mut clients = Vec::new();
    let client_id = |role: &str, seq: u64| -> String {
        if c.shortids {
            seq.to_string()
        } else {
            format!("{prefix}_bench_{role}_{seq}_{run_tag}")
        }
    };
    let make = |role: Role, after: bool, slot: u64, id: String, clients: &mut Vec<ClientPlan>| {
        let index = clients.len();
        clients.push(ClientPlan {
            index,
            after_subscribers: after,
            slot,
            client_id: ByteString::from(id),
            addr: addrs[index % addrs.len()],
            role,
        });
    };
    for k in 0..conn_count {
        let seq = c.startnumber + k + 1;
        make(Role::Conn, false, k, client_id("conn", seq), &mut clients);
    }
    let mut pub_topics = Vec::new();
    let mut publish_plan = None;
    if let Some(p) = publish {
        if !(p.interval_of_msg.is_finite() && p.interval_of_msg >= 0.0) {
            return Err("-I/--interval_of_msg must be a non-negative number of milliseconds".into());
        }
        if p.inflight == 0 {
            return Err("-F/--inflight must be at least 1".into());
        }
        let interval_ns = match p.rate {
            Some(r) if r > 0.0 && r.is_finite() => (n_pubs as f64 * 1e9 / r) as u64,
            Some(_) => return Err("--rate must be a positive number of messages per second".into()),
            None => (p.interval_of_msg * 1e6) as u64,
        };
        let mut rng_wait = Rng::from_entropy();
        let after = matches!(kind, Kind::PubSub { .. });
        for k in 0..n_pubs {
            let seq = c.startnumber + k + 1;
            let id = client_id("pub", seq);
            let t = template::expand(&p.topic, Vars { seq, client_id: &id, username: &username }, &mut rng);
            if !topic::is_valid_topic_name(&t) {
                return Err(format!("`{t}` is not a valid topic name to publish to (-t)"));
            }
            pub_topics.push(t.clone());
            let limit = if p.limit == 0 { 0 } else { p.limit / n_pubs + u64::from(k < p.limit % n_pubs) };
            if p.limit > 0 && limit == 0 {
                // More clients than messages: this one has nothing to send but must not run forever.
                continue;
            }
            let role = Role::Pub {
                topic: ByteString::from(t),
                id: k as u32,
                limit,
                start_wait_ms: rng_wait.range(p.min_random_wait, p.max_random_wait),
            };
            make(role, after, k, id, &mut clients);
        }
        publish_plan = Some(PubPlan {
            qos: qos_of(p.qos),
            retain: p.retain,
            inflight: p.inflight,
            interval_ns,
            payload: layout.template(p.size, p.message.as_deref()),
            keep_connected: p.keep_connected,
        });
    }
    let mut sub_filters = Vec::new();
    if let Some(tpl) = sub_tpl {
        for k in 0..n_subs {
            let seq = c.startnumber + k + 1;
            let id = client_id("sub", seq);
            let f = template::expand(tpl, Vars { seq, client_id: &id, username: &username }, &mut rng);
            if !topic::is_valid_topic_filter(&f) {
                return Err(format!("`{f}` is not a valid topic filter (-t)"));
            }
            sub_filters.push(f.clone());
            let role = Role::Sub { filter: ByteString::from(f), sources: None };
            // Subscribers go first so that they are subscribed before anyone publishes.
            make(role, false, k, id, &mut clients);
        }
    }
    // Subscribers first in the client list; re-number indexes so executors get a fair mix.
    clients.sort_by_key(|cl| !matches!(cl.role, Role::Sub { .. }));
    for (i, cl) in clients.iter_mut().enumerate() {
        cl.index = i;
    }

    let is_pubsub = matches!(kind, Kind::PubSub { .. });
    let shared = sub_filters.iter().any(|f| topic::split_shared(f).is_some());
    let exact = is_pubsub && !shared && layout.has_seq() && sub_filters.len().saturating_mul(pub_topics.len()) <= MAX_EXACT_PAIRS;
    let mut fanout = vec![0u64; pub_topics.len()];
    if exact {
        for cl in clients.iter_mut() {
            if let Role::Sub { filter, sources } = &mut cl.role {
                let mut src = Vec::new();
                for (p, t) in pub_topics.iter().enumerate() {
                    if topic::matches(filter, t) {
                        src.push(p as u32);
                        fanout[p] += 1;
                    }
                }
                *sources = Some(src);
            }
        }
    }
    Ok(Plan {
        version: version_of(c.version),
        keepalive: c.keepalive,
        clean: c.clean,
        username: c.username.clone().map(ByteString::from),
        password: c.password.clone().map(Bytes::from),
        session_expiry: c.session_expiry,
        retries: c.num_retry_connect,
        connect_interval_ns,
        cores,
        layout,
        sub_qos: qos_of(sub_qos),
        publish: publish_plan,
        subs: n_subs as usize,
        pubs: pub_topics.len(),
        exact,
        fanout,
        clients,
        drain_ns: 5_000_000_000,
    })
}
