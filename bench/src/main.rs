//! `ratatosk-bench`: an emqtt-bench compatible MQTT load tool for ratatosk (and any other broker).
//!
//! `conn`, `sub` and `pub` take emqtt-bench's flags; `pubsub` runs both sides in one process with
//! exact loss, duplicate and order accounting; `compare` puts `.hgrm` latency distributions side by
//! side; `relay` is a minimal single-threaded MQTT relay, the floor to measure brokers against.
//! Clients run on one glommio executor per core with a hand-rolled MQTT state machine on the
//! `ratatosk` codec, over TCP (from chosen source addresses with `--ifaddr`), TLS (`--ssl`) or
//! WebSocket (`--ws`). The exit status is non-zero when a connection failed or messages were lost at
//! QoS ≥ 1, so scripts can rely on it.

mod args;
mod client;
mod clock;
mod compare;
mod hgrm;
mod payload;
mod plan;
mod relay;
mod report;
mod rng;
mod runner;
mod seq;
mod stats;
mod template;
mod transport;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, ConnOpts};
use plan::Kind;
use runner::RunOpts;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ratatosk-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(cmd: Command) -> Result<ExitCode, String> {
    match cmd {
        Command::Compare(c) => {
            print!("{}", compare::run(&c.files, c.svg.as_deref())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Relay(r) => relay::run(r.listen).map(|()| ExitCode::SUCCESS),
        Command::Conn(c) => bench(&c.conn, Kind::Conn, "conn", 0, 5.0),
        Command::Sub(s) => {
            let kind = Kind::Sub { topic: &s.topic, qos: s.qos, hdrs: &s.payload_hdrs, pubs: s.pubs, pub_limit: s.pub_limit };
            bench(&s.conn, kind, "sub", s.qos, 5.0)
        }
        Command::Pub(p) => bench(&p.conn, Kind::Pub(&p.publish), "pub", p.publish.qos, 5.0),
        Command::Pubsub(ps) => {
            let sub_qos = ps.sub_qos.unwrap_or(ps.publish.qos);
            let kind = Kind::PubSub {
                publish: &ps.publish,
                subs: ps.subs.unwrap_or(ps.conn.count),
                sub_topic: ps.sub_topic.as_deref().unwrap_or(&ps.publish.topic),
                sub_qos,
            };
            if !(ps.drain.is_finite() && ps.drain >= 0.0) {
                return Err("--drain must be a non-negative number of seconds".into());
            }
            bench(&ps.conn, kind, "pubsub", ps.publish.qos.min(sub_qos), ps.drain)
        }
    }
}

/// Plans and runs a client subcommand, prints its summary, writes the histogram, and turns the
/// verdict into the exit status.
fn bench(conn: &ConnOpts, kind: Kind<'_>, name: &'static str, qos: u8, drain_s: f64) -> Result<ExitCode, String> {
    if let Some(d) = conn.duration {
        if !(d.is_finite() && d > 0.0) {
            return Err("--duration must be a positive number of seconds".into());
        }
    }
    let mut plan = plan::build(conn, kind)?;
    plan.drain_ns = (drain_s * 1e9) as u64;
    let opts = RunOpts { kind: name, duration: conn.duration, quiet: conn.quiet || conn.json, hlog: conn.hlog.clone(), qos };
    let (summary, hist) = runner::run(plan, &opts)?;
    if let Some(path) = &conn.hgrm {
        std::fs::write(path, hgrm::render(&hist)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if conn.json {
        println!("{}", summary.json());
    } else {
        print!("{}", summary.text());
    }
    Ok(if summary.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
