//! The broker: shards, connections, sessions and routing wired together.
//!
//! `run` starts one shard per configured core. Each shard binds every listener (SO_REUSEPORT),
//! accepts connections, hands each to its client's home shard, and routes messages over the mesh.

mod connection;
mod handlers;
mod lifecycle;
mod mesh;
pub mod message;
pub mod notify;
mod pacing;
mod retained;
mod routing;
pub mod shard;
pub mod stats;
mod sys;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ratatosk_io::Listener;
use ratatosk_shards::{run_shards, ShardConfig, ShardContext, Latch};

use crate::config::Config;
use shard::{Shard, ShardMsg};
use stats::Stats;

/// The tenant every connection belongs to until authentication assigns others.
pub const DEFAULT_TENANT: &str = "default";

/// Why the broker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The shards could not start.
    #[error(transparent)]
    Runtime(#[from] ratatosk_shards::RuntimeError),
    /// A listener could not be bound.
    #[error(transparent)]
    Listen(#[from] ratatosk_io::ListenerError),
}

/// Runs the broker until `stop` is signalled; returns once every shard has closed its clients.
pub fn run(config: Config, stop: Arc<Latch>) -> Result<(), BrokerError> {
    let shards = if config.shards == 0 { ratatosk_shards::allowed_cpus().len().max(1) } else { config.shards };
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
    for a in &addrs {
        tracing::info!(address = %a, shards, "listening for MQTT");
    }
    run_shards(shard_config, move |ctx: ShardContext<ShardMsg>| {
        let config = config.clone();
        let stats = stats.clone();
        let stop = stop.clone();
        let bind_failed = bf.clone();
        async move { shard_main(ctx, config, stats, stop, bind_failed).await }
    })?;
    if bind_failed.load(Ordering::Relaxed) {
        return Err(BrokerError::Runtime(ratatosk_shards::RuntimeError::Panicked(0)));
    }
    Ok(())
}

async fn shard_main(mut ctx: ShardContext<ShardMsg>, config: Arc<Config>, stats: Stats, stop: Arc<Latch>, bind_failed: Arc<AtomicBool>) {
    let mut mesh = ctx.mesh.take();
    let receivers = mesh.as_mut().map(|m| m.take_receivers()).unwrap_or_default();
    let shard = Rc::new(Shard::new(ctx.id, ctx.shards, config.clone(), mesh, stats));
    mesh::spawn_receivers(&shard, receivers);
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
                    Some(stream) => {
                        glommio::spawn_local(connection::accept(shard.clone(), stream)).detach();
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
    if shard.id == 0 && config.sys_interval > 0 {
        glommio::spawn_local(sys::publish_loop(shard.clone())).detach();
    }
    stop.opened().await;
    shutdown(&shard).await;
}

/// Closes connections that stayed silent past 1.5 × their keep alive [MQTT-3.1.2-24]: one sweep
/// per shard every 250 ms instead of a timer per connection on the read path.
async fn keep_alive_sweep(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(Duration::from_millis(250)).await;
        shard.counters().sync(&shard.ledger);
        let now = std::time::Instant::now();
        for s in shard.sessions.borrow().values() {
            let mut s = s.borrow_mut();
            if s.kick.is_none() && s.keep_alive_expired(now) {
                s.kick = Some((s.generation, crate::protocol::reason::KEEP_ALIVE_TIMEOUT));
                s.notify.notify();
            }
        }
    }
}

/// Longest a shard waits at shutdown for its connections to say goodbye: each writes its
/// DISCONNECT within 1 s and then lingers at most 1 s, so this only bounds stragglers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Tells every connected client the server is going away (v5 DISCONNECT 0x8B), busy or not, and
/// waits (bounded) until their connections have closed.
async fn shutdown(shard: &Rc<Shard>) {
    let sessions: Vec<_> = shard.sessions.borrow().values().cloned().collect();
    for s in sessions {
        let mut s = s.borrow_mut();
        if s.connected {
            s.kick = Some((s.generation, crate::protocol::reason::SERVER_SHUTTING_DOWN));
            s.notify.notify();
        }
    }
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    while shard.counters().clients_connected.load(Ordering::Relaxed) > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}
