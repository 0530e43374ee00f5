//! The broker: shards, connections, sessions and routing wired together.
//!
//! `run` starts one shard per configured core. Each shard restores what its stores kept, binds
//! every listener (SO_REUSEPORT), admits the connections it accepts, hands each to its client's
//! home shard, and routes messages over the mesh. The path of a connection is
//! `admission` → (hand-off) → `attach` → `connection`; the path of a message is `handlers` →
//! `fanout` (a plan from `routes`) → sessions, here and on other shards (`mesh`).

mod admission;
mod announce;
mod attach;
mod client;
mod clients;
mod closing;
mod connection;
mod fanout;
mod handlers;
mod hold;
mod lifecycle;
mod link;
mod mesh;
mod notify;
mod pacing;
mod parked;
mod peers;
mod replay;
mod restore;
mod retained;
mod retained_set;
mod routes;
mod shard;
mod shard_msg;
mod stats;
mod sys;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ratatosk_io::{Listener, ParkingLot, ParkingSpot};
use ratatosk_shards::{run_shards, Latch, Placement, ShardConfig, ShardContext, DEFAULT_PARTITIONS};

use crate::config::Config;
use crate::store::memory::MemoryStore;
use crate::tenant::AllowAll;
use shard::{Shard, ShardParts};
use shard_msg::ShardMsg;
use stats::Stats;

/// Why the broker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The shards could not start.
    #[error(transparent)]
    Runtime(#[from] ratatosk_shards::RuntimeError),
    /// A listener could not be bound.
    #[error(transparent)]
    Listen(#[from] ratatosk_io::ListenerError),
    /// The idle-connection watcher could not start.
    #[error(transparent)]
    Parking(#[from] ratatosk_io::ParkingError),
    /// The shards cannot be placed over the partitions.
    #[error("cannot place {shards} shards: {source}")]
    Placement {
        /// Shards asked for.
        shards: usize,
        /// Why not.
        source: ratatosk_shards::PlacementError,
    },
}

/// Runs the broker until `stop` is signalled; returns once every shard has closed its clients.
pub fn run(config: Config, stop: Arc<Latch>) -> Result<(), BrokerError> {
    let shards = if config.shards == 0 { ratatosk_shards::allowed_cpus().len().max(1) } else { config.shards };
    let placement = Placement::even(DEFAULT_PARTITIONS, shards).map_err(|source| BrokerError::Placement { shards, source })?;
    // Bind once up front so that a port in use is reported before any shard starts; each shard
    // then binds its own socket on the same address.
    let mut addrs = Vec::new();
    for a in &config.listen {
        addrs.push(Listener::probe_free(*a)?);
    }
    let config = Arc::new(Config { listen: addrs.clone(), ..config });
    let stats = Stats::new(shards);
    let bind_failed = Arc::new(AtomicBool::new(false));
    let bf = bind_failed.clone();
    let spin = (config.spin_before_park_us > 0).then(|| Duration::from_micros(config.spin_before_park_us));
    let shard_config = ShardConfig { shards, spin_before_park: spin, ..ShardConfig::default() };
    // Outlives the shards (dropped after `run_shards` returns), so no parked socket is left
    // unwatched while a shard runs.
    let parking = if config.park_idle_ms > 0 { Some(ParkingLot::start(shards)?) } else { None };
    let spots: Arc<Vec<ParkingSpot>> = Arc::new(parking.as_ref().map(|p| (0..shards).filter_map(|s| p.spot(s)).collect()).unwrap_or_default());
    for a in &addrs {
        tracing::info!(address = %a, shards, "listening for MQTT");
    }
    run_shards(shard_config, move |ctx: ShardContext<ShardMsg>| {
        let config = config.clone();
        let stats = stats.clone();
        let stop = stop.clone();
        let bind_failed = bf.clone();
        let placement = placement.clone();
        let spot = spots.get(ctx.id).cloned();
        async move { shard_main(ctx, config, placement, stats, stop, bind_failed, spot).await }
    })?;
    drop(parking);
    if bind_failed.load(Ordering::Relaxed) {
        return Err(BrokerError::Runtime(ratatosk_shards::RuntimeError::Panicked(0)));
    }
    Ok(())
}

async fn shard_main(mut ctx: ShardContext<ShardMsg>, config: Arc<Config>, placement: Placement, stats: Stats, stop: Arc<Latch>, bind_failed: Arc<AtomicBool>, parking: Option<ParkingSpot>) {
    let mut mesh = ctx.mesh.take();
    let receivers = mesh.as_mut().map(|m| m.take_receivers()).unwrap_or_default();
    // The in-memory store: what `durability = "none"` keeps. The storage issue puts a per-shard
    // fjall database behind the same traits.
    let store = Rc::new(MemoryStore::new());
    let parts = ShardParts { id: ctx.id, config: config.clone(), placement, senders: mesh, stats, sessions: store.clone(), retained: store, auth: Rc::new(AllowAll), parking };
    let shard = Rc::new(Shard::new(parts));
    mesh::spawn_receivers(&shard, receivers);
    if let Err(e) = restore::restore(&shard).await {
        tracing::error!(error = %e, shard = shard.id, "cannot restore the shard's state");
        bind_failed.store(true, Ordering::Relaxed);
        stop.open();
        return;
    }
    for addr in &config.listen {
        let listener = match Listener::bind(*addr) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, shard = shard.id, "listener failed");
                bind_failed.store(true, Ordering::Relaxed);
                stop.open();
                return;
            }
        };
        let shard = shard.clone();
        let stop = stop.clone();
        glommio::spawn_local(async move {
            loop {
                let next = futures_lite::future::or(async { Some(listener.accept().await) }, async {
                    stop.opened().await;
                    None
                });
                match next.await {
                    Some(transport) => {
                        // Until it sends something, a new connection waits parked (see `parked`).
                        if let Err(transport) = shard.park_new(transport) {
                            glommio::spawn_local(admission::accept(shard.clone(), transport)).detach();
                        }
                    }
                    // Stopping: the listener closes here, so clients that reconnect while the
                    // connections say goodbye are refused instead of accepted and kicked again.
                    None => break,
                }
            }
        })
        .detach();
    }
    glommio::spawn_local(keep_alive_sweep(shard.clone())).detach();
    glommio::spawn_local(shard.clone().run_parked()).detach();
    if shard.id == 0 && config.sys_interval > 0 {
        glommio::spawn_local(sys::publish_loop(shard.clone())).detach();
    }
    stop.opened().await;
    shutdown(&shard).await;
}

/// Closes connections that stayed silent past 1.5 × their keep alive [MQTT-3.1.2-24], and asks
/// connections idle for `park_idle_ms` to park: one sweep per shard every 250 ms instead of a
/// timer per connection on the read path.
async fn keep_alive_sweep(shard: Rc<Shard>) {
    let park_after = Duration::from_millis(shard.config.park_idle_ms);
    loop {
        glommio::timer::sleep(Duration::from_millis(250)).await;
        shard.sync_counters();
        let now = std::time::Instant::now();
        if let Some(since) = now.checked_sub(park_after) {
            shard.ask_idle_to_park(since);
        }
        if let Some(cutoff) = now.checked_sub(Duration::from_secs(shard.config.limits.connect_timeout)) {
            shard.close_silent_new(cutoff);
        }
        shard.clients.for_each(|c| {
            let mut c = c.borrow_mut();
            if c.keep_alive_expired(now) {
                c.kick(crate::protocol::reason::KEEP_ALIVE_TIMEOUT);
            }
        });
    }
}

/// Longest a shard waits at shutdown for its connections to say goodbye: each writes its
/// DISCONNECT within 1 s and then lingers at most 1 s, so this only bounds stragglers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Tells every connected client the server is going away (v5 DISCONNECT 0x8B), busy or not, and
/// waits (bounded) until their connections have closed.
async fn shutdown(shard: &Rc<Shard>) {
    shard.clients.for_each(|c| c.borrow_mut().kick(crate::protocol::reason::SERVER_SHUTTING_DOWN));
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    while shard.counters().clients_connected.load(Ordering::Relaxed) > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}
