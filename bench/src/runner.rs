//! Running a plan: client executors on their own threads, and the controlling thread that moves the
//! run through its phases, prints the once-a-second lines and gathers the summary.
//!
//! The executors (one pinned glommio executor per `--cores`) only run clients; everything that may
//! block or print lives on the calling thread, which never touches a socket. Every wait below is
//! bounded: by `--duration`, by the drain time, or by a fixed grace period.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use ratatosk_shards::{run_shards, ShardConfig, ShardContext};

use crate::client::{run_client, Ctx};
use crate::clock::mono_ns;
use crate::plan::{Plan, Role};
use crate::report::{Latency, RateLines, Summary};
use crate::stats::{self, get, Stats, PHASE_CONNECTING, PHASE_DRAINING, PHASE_RUNNING, PHASE_STOP};

/// How often the controller looks at the counters between report lines.
const POLL: Duration = Duration::from_millis(20);
/// How long executors get to close their connections after the run stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the drain waits without a single new message before giving up on stragglers.
const QUIET_DRAIN_NS: u64 = 1_000_000_000;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// How to run (beyond the plan).
#[derive(Debug, Clone)]
pub struct RunOpts {
    /// Subcommand name for the summary.
    pub kind: &'static str,
    /// Seconds of publishing (or of holding connections when there are no publishers).
    pub duration: Option<f64>,
    /// No once-a-second lines.
    pub quiet: bool,
    /// Interval log to write.
    pub hlog: Option<PathBuf>,
    /// Delivery QoS the loss verdict is judged against.
    pub qos: u8,
}

/// Runs the plan to the end and returns its summary with the merged latency histogram.
///
/// # Errors
///
/// The executors could not start (e.g. the memlock limit), or the interval log cannot be written.
pub fn run(plan: Plan, opts: &RunOpts) -> Result<(Summary, hdrhistogram::Histogram<u64>), String> {
    // SAFETY: installing a handler that only stores to an atomic is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let cores = plan.cores;
    let total_clients = plan.clients.len() as u64;
    let pub_clients = plan.clients.iter().filter(|c| matches!(c.role, Role::Pub { .. })).count() as u64;
    let sub_clients = plan.subs as u64;
    let waits_for_subs = plan.clients.iter().any(|c| c.after_subscribers);
    let drain_ns = plan.drain_ns;
    let fanout = plan.fanout.clone();
    let exact = plan.exact;
    let expect_per_pub = plan.expect_per_pub.clone();
    // Receptions all subscribers together should have once publishing is over.
    let expected_total = |stats: &Stats| -> u64 {
        match &expect_per_pub {
            Some(e) => e.iter().zip(&fanout).map(|(s, f)| s * f).sum(),
            None => stats.sent_per_pub.iter().zip(&fanout).map(|(s, f)| get(s) * f).sum(),
        }
    };
    let plan = Arc::new(plan);
    let stats = Arc::new(Stats::new(plan.pubs, cores));
    let start = mono_ns();
    stats.start_ns.store(start, Ordering::Release);
    if !waits_for_subs {
        stats.run_start_ns.store(start, Ordering::Release);
        stats.advance(PHASE_RUNNING);
    }

    let mut hlog = match &opts.hlog {
        Some(p) => Some(BufWriter::new(File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?)),
        None => None,
    };
    let mut hlog_ser = V2DeflateSerializer::new();
    let mut hlog_writer = match hlog.as_mut() {
        Some(w) => Some(
            IntervalLogWriterBuilder::new()
                .add_comment("ratatosk-bench latency, nanoseconds")
                .with_start_time(std::time::SystemTime::now())
                .with_max_value_divisor(1000.0)
                .begin_log_with(w, &mut hlog_ser)
                .map_err(|e| format!("cannot write the interval log: {e}"))?,
        ),
        None => None,
    };

    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let thread_plan = plan.clone();
    let thread_stats = stats.clone();
    std::thread::Builder::new()
        .name("bench-shards".into())
        .spawn(move || {
            let config = ShardConfig { shards: cores, mesh_capacity: 0, ..ShardConfig::default() };
            let result = run_shards::<(), _, _>(config, move |ctx: ShardContext<()>| {
                let plan = thread_plan.clone();
                let stats = thread_stats.clone();
                async move { shard_main(ctx.id, plan, stats).await }
            });
            let _ = done_tx.send(result.map_err(|e| e.to_string()));
        })
        .map_err(|e| format!("cannot start the client thread: {e}"))?;

    let mut rates = RateLines::new(stats.counters().len(), start);
    let mut total = stats::new_histogram();
    let mut next_tick = start + 1_000_000_000;
    let mut pub_end: Option<u64> = None;
    let mut drain_start = 0u64;
    let mut last_recv = (0u64, 0u64);
    let mut shard_result = None;
    loop {
        if let Ok(r) = done_rx.try_recv() {
            shard_result = Some(r);
            break;
        }
        let now = mono_ns();
        let phase = stats.phase();
        if phase == PHASE_CONNECTING && get(&stats.subs_settled) >= sub_clients {
            stats.run_start_ns.store(now, Ordering::Release);
            stats.advance(PHASE_RUNNING);
        }
        let run_start = stats.run_start_ns.load(Ordering::Acquire);
        let timed_out = opts.duration.is_some_and(|d| phase >= PHASE_RUNNING && now.saturating_sub(run_start) as f64 >= d * 1e9);
        let pubs_finished = pub_clients > 0 && get(&stats.pubs_done) >= pub_clients;
        let keep = plan.publish.as_ref().is_some_and(|p| p.keep_connected) && opts.duration.is_some();
        // `sub --pub-limit` is done once everything the publishers send has arrived.
        let subs_complete = expect_per_pub.is_some() && phase >= PHASE_RUNNING && get(&stats.fresh) >= expected_total(&stats);
        if phase < PHASE_DRAINING
            && (timed_out || INTERRUPTED.load(Ordering::Relaxed) || (pubs_finished && !keep) || subs_complete)
        {
            stats.advance(PHASE_DRAINING);
            pub_end = Some(now);
            drain_start = now;
        }
        // Everyone is gone, or the drain outlived its limit (a publisher stuck writing to a broker
        // that stopped reading must not hold the run forever).
        if get(&stats.clients_ended) >= total_clients
            || (stats.phase() == PHASE_DRAINING && now.saturating_sub(drain_start) > drain_ns + QUIET_DRAIN_NS)
        {
            stats.advance(PHASE_STOP);
        }
        if stats.phase() == PHASE_DRAINING && (pub_clients == 0 || pubs_finished) {
            let recv = get(&stats.recv);
            if recv != last_recv.0 {
                last_recv = (recv, now);
            }
            // First receptions, so a duplicate cannot stand in for a message still on its way.
            let all_in = !exact || get(&stats.fresh) >= expected_total(&stats);
            let quiet = now.saturating_sub(last_recv.1.max(drain_start)) > QUIET_DRAIN_NS;
            if sub_clients == 0 || all_in || quiet || now.saturating_sub(drain_start) > drain_ns {
                stats.advance(PHASE_STOP);
            }
        }
        if now >= next_tick {
            let interval = stats.take_histogram();
            if !opts.quiet {
                let secs = (now - start + 500_000_000) / 1_000_000_000;
                print!("{}", rates.lines(secs, now, &stats.counters(), &interval));
                let _ = std::io::stdout().flush();
            }
            if let Some(w) = hlog_writer.as_mut() {
                let at = Duration::from_nanos(next_tick - 1_000_000_000 - start);
                w.write_histogram(&interval, at, Duration::from_secs(1), None)
                    .map_err(|e| format!("cannot write the interval log: {e}"))?;
            }
            let _ = total.add(&interval);
            next_tick += 1_000_000_000;
        }
        if stats.phase() == PHASE_STOP {
            break;
        }
        std::thread::sleep(POLL);
    }
    let result = match shard_result {
        Some(r) => r,
        None => match done_rx.recv_timeout(SHUTDOWN_GRACE) {
            Ok(r) => r,
            Err(_) => {
                eprintln!("ratatosk-bench: clients did not close within {SHUTDOWN_GRACE:?}; reporting what was counted");
                Ok(())
            }
        },
    };
    result?;
    let end = mono_ns();
    let last = stats.take_histogram();
    if let Some(w) = hlog_writer.as_mut() {
        let at = Duration::from_nanos(next_tick.saturating_sub(1_000_000_000 + start));
        w.write_histogram(&last, at, Duration::from_nanos(end.saturating_sub(next_tick - 1_000_000_000)), None)
            .map_err(|e| format!("cannot write the interval log: {e}"))?;
    }
    drop(hlog_writer);
    if let Some(mut w) = hlog {
        w.flush().map_err(|e| format!("cannot write the interval log: {e}"))?;
    }
    let _ = total.add(&last);
    if plan.pooled {
        account_pool(&stats, &fanout);
    }

    let run_start = stats.run_start_ns.load(Ordering::Acquire);
    let elapsed_end = if pub_clients > 0 { pub_end.unwrap_or(end) } else { end };
    let summary = Summary {
        kind: opts.kind,
        elapsed_s: elapsed_end.saturating_sub(if run_start > 0 { run_start } else { start }) as f64 / 1e9,
        connect_succ: get(&stats.connect_succ),
        connect_fail: get(&stats.connect_fail),
        conn_lost: get(&stats.conn_lost),
        reconnect: get(&stats.reconnect),
        sub: get(&stats.sub),
        sub_fail: get(&stats.sub_fail),
        sent: get(&stats.publish),
        acked: get(&stats.pub_succ),
        pub_fail: get(&stats.pub_fail),
        received: get(&stats.recv),
        expected: exact.then(|| get(&stats.expected)),
        lost: get(&stats.lost),
        duplicated: get(&stats.duplicated),
        out_of_order: get(&stats.out_of_order),
        qos: opts.qos,
        latency: Latency::of(&total),
    };
    Ok((summary, total))
}

/// Accounts a shared group as one subscriber: a message is lost when a matching publisher sent it
/// and no member received it.
fn account_pool(stats: &Stats, fanout: &[u64]) {
    let pool = stats.pool.lock().unwrap_or_else(|p| p.into_inner());
    let (mut expected, mut lost) = (0, 0);
    for (p, f) in fanout.iter().enumerate() {
        if *f == 0 {
            continue;
        }
        let sent = stats.sent_per_pub.get(p).map_or(0, get);
        let got = pool.get(&(p as u32)).map_or(0, |t| t.distinct);
        expected += sent;
        lost += sent.saturating_sub(got);
    }
    stats::bump(&stats.expected, expected);
    stats::bump(&stats.lost, lost);
}

/// One executor: starts a task for each of its clients (`index % cores == shard`) and waits for all.
async fn shard_main(shard: usize, plan: Arc<Plan>, stats: Arc<Stats>) {
    let cores = plan.cores;
    let ctx = Rc::new(Ctx { plan: plan.clone(), stats, shard });
    let tasks: Vec<_> = plan
        .clients
        .iter()
        .filter(|c| c.index % cores == shard)
        .map(|c| glommio::spawn_local(run_client(ctx.clone(), c.index)))
        .collect();
    for t in tasks {
        t.await;
    }
}
