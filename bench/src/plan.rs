//! The run plan: every client's id, role, topic, broker address and schedule, worked out once from
//! the command line before any executor starts.
//!
//! Planning up front keeps the executors free of parsing and lets `pubsub` know, before the first
//! message, which subscribers each publisher's messages must reach, so loss is counted exactly.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use bytes::Bytes;
use bytestring::ByteString;
use ratatosk::protocol::{topic, ProtocolVersion, QoS};

use crate::args::{ConnOpts, PubOpts};
use crate::payload::Layout;
use crate::rng::Rng;
use crate::template::{self, Vars};
use crate::transport::{self, Wrap};

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
    /// Broker host as given to `-h` (TLS server name, WebSocket `Host`).
    pub host: ByteString,
    /// Local address to connect from (`--ifaddr`), else the kernel's choice.
    pub local: Option<IpAddr>,
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
    /// Reconnect attempts per client after an established connection was lost (0 = never).
    pub reconnects: u32,
    /// TLS and WebSocket layers over TCP.
    pub wrap: Wrap,
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
    /// Whether the number of messages subscribers should receive is known: `pubsub` (each subscriber
    /// knows its sources, or the shared group is accounted as a whole) and `sub --pub-limit`.
    pub exact: bool,
    /// `pubsub` whose subscribers are all members of one shared subscription group: each member
    /// adds its seen-sets to a pool and loss is counted for the group (`fanout` is 1 per matching
    /// publisher).
    pub pooled: bool,
    /// For `sub --pub-limit`: how many messages each publisher id sends, in place of the counts the
    /// publishers of a `pubsub` run keep.
    pub expect_per_pub: Option<Vec<u64>>,
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
        /// Publishers every subscriber hears from (`--pubs`).
        pubs: Option<u64>,
        /// Their total message count (`--pub-limit`).
        pub_limit: Option<u64>,
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

/// Resolves the comma-separated host list into (name, address) pairs.
fn resolve(hosts: &str, port: u16) -> Result<Vec<(ByteString, SocketAddr)>, String> {
    let mut out = Vec::new();
    for h in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let addr = (h, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve host `{h}`: {e}"))?
            // Prefer IPv4: brokers in benchmarks usually listen on 127.0.0.1 only.
            .min_by_key(|a| a.is_ipv6())
            .ok_or_else(|| format!("host `{h}` has no address"))?;
        out.push((ByteString::from(h), addr));
    }
    if out.is_empty() {
        return Err("no host given (-h)".into());
    }
    Ok(out)
}

/// TLS and WebSocket settings from `--ssl`, the certificate flags and `--ws`.
fn wrap_of(c: &ConnOpts) -> Result<Wrap, String> {
    let certs = c.cacertfile.is_some() || c.certfile.is_some() || c.keyfile.is_some();
    if certs && !c.ssl {
        return Err("--cacertfile/--certfile/--keyfile need --ssl".into());
    }
    let tls = if c.ssl {
        Some(transport::tls_config(c.cacertfile.as_deref(), c.certfile.as_deref(), c.keyfile.as_deref())?)
    } else {
        None
    };
    Ok(Wrap { tls, ws: c.ws })
}

/// Parses `--ifaddr`: a comma-separated list of local IP addresses.
fn parse_ifaddrs(list: Option<&str>) -> Result<Vec<IpAddr>, String> {
    let Some(list) = list else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for a in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        out.push(a.parse::<IpAddr>().map_err(|_| format!("--ifaddr: `{a}` is not an IP address"))?);
    }
    if out.is_empty() {
        return Err("--ifaddr needs at least one address".into());
    }
    Ok(out)
}

/// Messages each of `pubs` publishers sends out of `limit` in total: the split `pub -L` makes.
fn split_limit(limit: u64, pubs: u64) -> Vec<u64> {
    (0..pubs).map(|k| limit / pubs + u64::from(k < limit % pubs)).collect()
}

/// Builds the plan.
///
/// # Errors
///
/// A message naming the flag to fix.
pub fn build(c: &ConnOpts, kind: Kind<'_>) -> Result<Plan, String> {
    let wrap = wrap_of(c)?;
    if c.count == 0 {
        return Err("-c/--count must be at least 1".into());
    }
    if !(c.interval.is_finite() && c.interval >= 0.0) {
        return Err("-i/--interval must be a non-negative number of milliseconds".into());
    }
    let addrs = resolve(&c.host, c.port)?;
    let ifaddrs = parse_ifaddrs(c.ifaddr.as_deref())?;
    if let Some(bad) = ifaddrs.iter().find(|a| a.is_ipv6() != addrs[0].1.is_ipv6()) {
        return Err(format!("--ifaddr {bad} is not of the broker address's family ({})", addrs[0].1));
    }
    let cores = match c.cores {
        Some(0) => return Err("--cores must be at least 1".into()),
        Some(n) => n,
        None => ratatosk_shards::allowed_cpus().len().max(1),
    };
    let connect_interval_ns = 1_000_000_000u64.checked_div(c.connrate).unwrap_or((c.interval * 1e6) as u64);
    let prefix = c.prefix.clone().unwrap_or_else(hostname);
    let username = c.username.clone().unwrap_or_default();
    let mut rng = Rng::from_entropy();
    let run_tag = rng.next_u64() % 1_000_000;

    let (n_subs, n_pubs, sub_tpl, sub_qos, hdrs, publish) = match &kind {
        Kind::Conn => (0, 0, None, 0, "", None),
        Kind::Sub { topic, qos, hdrs, .. } => (c.count, 0, Some(*topic), *qos, *hdrs, None),
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
            host: addrs[index % addrs.len()].0.clone(),
            addr: addrs[index % addrs.len()].1,
            local: None,
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
        cl.host = addrs[i % addrs.len()].0.clone();
        cl.addr = addrs[i % addrs.len()].1;
        // Round-robin over the source addresses, so each one carries an equal share of ports.
        cl.local = (!ifaddrs.is_empty()).then(|| ifaddrs[i % ifaddrs.len()]);
    }

    let is_pubsub = matches!(kind, Kind::PubSub { .. });
    let shared = sub_filters.iter().any(|f| topic::split_shared(f).is_some());
    let per_sub_exact =
        is_pubsub && !shared && layout.has_seq() && sub_filters.len().saturating_mul(pub_topics.len()) <= MAX_EXACT_PAIRS;
    // One shared group (every subscriber has the same `$share/...` filter): the group as a whole
    // should get each matching message once.
    let pooled = is_pubsub
        && layout.has_seq()
        && !sub_filters.is_empty()
        && sub_filters.iter().all(|f| f == &sub_filters[0])
        && topic::split_shared(&sub_filters[0]).is_some();
    let mut fanout = vec![0u64; pub_topics.len()];
    if pooled {
        if let Some((_, inner)) = topic::split_shared(&sub_filters[0]) {
            for (p, t) in pub_topics.iter().enumerate() {
                fanout[p] = u64::from(topic::matches(inner, t));
            }
        }
    }
    let mut expect_per_pub = None;
    if let Kind::Sub { pubs, pub_limit, .. } = &kind {
        match (pubs, pub_limit) {
            (Some(0), _) => return Err("--pubs must be at least 1".into()),
            (_, Some(limit)) => {
                if !layout.has_seq() {
                    return Err("--pub-limit needs --payload-hdrs with cnt64 (as the publishers send)".into());
                }
                let pubs = pubs.unwrap_or(1);
                let per_pub = split_limit(*limit, pubs);
                fanout = vec![n_subs; per_pub.len()];
                let all: Vec<u32> = (0..pubs as u32).collect();
                for cl in clients.iter_mut() {
                    if let Role::Sub { sources, .. } = &mut cl.role {
                        *sources = Some(all.clone());
                    }
                }
                expect_per_pub = Some(per_pub);
            }
            (Some(_), None) => return Err("--pubs needs --pub-limit (the publishers' -L)".into()),
            (None, None) => {}
        }
    }
    let exact = per_sub_exact || pooled || expect_per_pub.is_some();
    if per_sub_exact {
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
        reconnects: c.reconnect,
        wrap,
        connect_interval_ns,
        cores,
        layout,
        sub_qos: qos_of(sub_qos),
        publish: publish_plan,
        subs: n_subs as usize,
        pubs: pub_topics.len(),
        exact,
        pooled,
        expect_per_pub,
        fanout,
        clients,
        drain_ns: 5_000_000_000,
    })
}
