//! Starting the shards: executors, pinning and the channel mesh.

use std::future::Future;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::mesh::{full_mesh, LaneCapacity, Mesh, MeshEnds};
use crate::nudge::Nudger;
use glommio::{LocalExecutorBuilder, Placement};

/// Below this soft memlock limit glommio refuses to start its rings.
const MIN_MEMLOCK: u64 = 512 * 1024;

/// How often the starting thread wakes the shards while they join the mesh.
const NUDGE_EVERY: Duration = Duration::from_millis(2);
/// How often running shards are nudged (see `nudge`): bounds how long a shard that parked with
/// work queued sleeps, at the cost of one trivial wake-up per shard this often.
const NUDGE_RUNNING_EVERY: Duration = Duration::from_millis(50);

/// Registered I/O memory per shard: glommio's minimum.
const IO_MEMORY: usize = 64 * 1024;

/// Locked memory charged per shard for a process without CAP_IPC_LOCK: the registered I/O
/// memory, and as much again for the rings (which older kernels charge to the same limit).
const LOCKED_PER_SHARD: u64 = 2 * IO_MEMORY as u64;

/// Why the shards could not start or ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The locked-memory limit is too low for io_uring.
    #[error("locked-memory limit is {0} bytes, below the 512 KiB io_uring needs; raise it with `ulimit -l` (e.g. `ulimit -l unlimited`) and start again")]
    Memlock(u64),
    /// The locked-memory limit is too low for this many shards.
    #[error("{shards} shards need about {need} KiB of locked memory, but the limit is {have} KiB; raise it with `ulimit -l` or run fewer shards (--shards)")]
    MemlockForShards {
        /// Shards asked for.
        shards: usize,
        /// KiB they need.
        need: u64,
        /// KiB allowed.
        have: u64,
    },
    /// An executor could not be created.
    #[error("could not start shard {shard}: {source}")]
    Spawn {
        /// Index of the shard.
        shard: usize,
        /// The glommio error.
        source: glommio::GlommioError<()>,
    },
    /// A shard thread panicked.
    #[error("shard {0} stopped with a panic")]
    Panicked(usize),
}

/// How to start the shards.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// Number of shards (executors).
    pub shards: usize,
    /// Largest capacity of each data channel of the mesh; ≥ 1024 keeps cross-shard throughput
    /// high, and it shrinks with many shards (see [`LaneCapacity::for_shards`]). 0 builds no mesh
    /// (shards that never talk to each other, such as the load tool's clients).
    pub mesh_capacity: usize,
    /// Pin each shard to one CPU of the process's affinity mask.
    pub pin: bool,
    /// Spin this long before parking an idle reactor (latency for CPU).
    pub spin_before_park: Option<Duration>,
    /// Preemption timer: how long a task may run before others get a turn.
    pub preempt_timer: Duration,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            shards: allowed_cpus().len().max(1),
            mesh_capacity: 1024,
            pin: true,
            spin_before_park: None,
            preempt_timer: Duration::from_millis(2),
        }
    }
}

/// What a shard's future is given.
pub struct ShardContext<T: Send + 'static> {
    /// This shard's index, `0..shards`.
    pub id: usize,
    /// Total number of shards.
    pub shards: usize,
    /// This shard's ends of the mesh; `None` when there is a single shard.
    pub mesh: Option<Mesh<T>>,
}

/// The CPUs this process may run on (its affinity mask), in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    if !ok {
        return (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect();
    }
    (0..libc::CPU_SETSIZE as usize).filter(|c| unsafe { libc::CPU_ISSET(*c, &set) }).collect()
}

/// Starts `config.shards` executors, runs `make(ctx)`'s future on each, and waits for all of them.
///
/// Each executor is pinned to one CPU of the affinity mask (round robin when there are more shards
/// than CPUs), uses 64 KiB of registered io_uring memory so many shards start under a small memlock limit,
/// and joins a full mesh of bounded channels.
pub fn run_shards<T, G, F>(config: ShardConfig, make: G) -> Result<(), RuntimeError>
where
    T: Send + 'static,
    G: Fn(ShardContext<T>) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    let memlock = raise_memlock_limit_checked()?;
    tracing::debug!(memlock, "memlock limit");
    let n = config.shards.max(1);
    // root is not charged for locked memory (CAP_IPC_LOCK); anyone else is, per shard.
    // SAFETY: geteuid has no preconditions.
    let charged = unsafe { libc::geteuid() } != 0;
    let need = MIN_MEMLOCK.max(n as u64 * LOCKED_PER_SHARD);
    if charged && memlock < need {
        return Err(RuntimeError::MemlockForShards { shards: n, need: need / 1024, have: memlock / 1024 });
    }
    let cpus = allowed_cpus();
    // Each shard takes its own ends out of this slot list once, on its own thread.
    let ends: Vec<Mutex<Option<MeshEnds<T>>>> =
        if n > 1 && config.mesh_capacity > 0 {
            full_mesh(n, LaneCapacity::for_shards(n, config.mesh_capacity)).into_iter().map(|e| Mutex::new(Some(e))).collect()
        } else {
            Vec::new()
        };
    let ends = std::sync::Arc::new(ends);
    let connected = std::sync::Arc::new(AtomicUsize::new(0));
    let all_connected = std::sync::Arc::new(crate::Latch::default());
    let nudger = std::sync::Arc::new(Nudger::new(n));
    let ended = std::sync::Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(n);
    for id in 0..n {
        let placement = match (config.pin, cpus.is_empty()) {
            (true, false) => Placement::Fixed(cpus[id % cpus.len()]),
            _ => Placement::Unbound,
        };
        let mut builder = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{id}"))
            // glommio's registered I/O memory serves only its own DMA file I/O, which the broker
            // does not use (sockets read into heap buffers): its minimum keeps each idle shard
            // small and the memlock charge per shard low.
            .io_memory(IO_MEMORY)
            .preempt_timer(config.preempt_timer);
        if let Some(spin) = config.spin_before_park {
            builder = builder.spin_before_park(spin);
        }
        let make = make.clone();
        let ends = ends.clone();
        let connected = connected.clone();
        let all_connected = all_connected.clone();
        let nudger = nudger.clone();
        let ended = Ended(ended.clone());
        let handle = builder
            .spawn(move || async move {
                let _ended = ended;
                let mine = ends.get(id).and_then(|slot| slot.lock().ok().and_then(|mut e| e.take()));
                // For the shard's whole life a task waits for the starting thread's nudges, so that
                // each nudge gets this executor polling again (see `nudge`).
                let awake = nudger.clone();
                let nudged = glommio::spawn_local(async move {
                    loop {
                        awake.nudged(id).await;
                    }
                });
                let mesh = match mine {
                    Some(e) => Some(e.connect().await),
                    None => None,
                };
                // No shard starts (and so none can stop and drop its ends) before every shard has
                // connected: a peer that went away mid-handshake would leave the others waiting
                // for it forever.
                if connected.fetch_add(1, Ordering::AcqRel) + 1 == n {
                    all_connected.open();
                }
                all_connected.opened().await;
                make(ShardContext { id, shards: n, mesh }).await;
                drop(nudged);
                nudger.forget(id);
            })
            .map_err(|e| RuntimeError::Spawn { shard: id, source: map_err(e) })?;
        handles.push(handle);
    }
    // Bounded by the shards' progress: every shard connects, or one ends (a panic) and start-up
    // has failed.
    while !all_connected.is_open() && ended.load(Ordering::Acquire) == 0 {
        std::thread::sleep(NUDGE_EVERY);
        nudger.nudge_all();
    }
    // Then, more slowly, until every shard has ended: a shard can park with work queued at any
    // time, and at shutdown nothing else may wake it.
    while ended.load(Ordering::Acquire) < n {
        std::thread::sleep(NUDGE_RUNNING_EVERY);
        nudger.nudge_all();
    }
    let mut result = Ok(());
    for (id, h) in handles.into_iter().enumerate() {
        if h.join().is_err() && result.is_ok() {
            result = Err(RuntimeError::Panicked(id));
        }
    }
    result
}

/// Counts a shard's future as ended when dropped, also when it panics.
struct Ended(std::sync::Arc<AtomicUsize>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

fn raise_memlock_limit_checked() -> Result<u64, RuntimeError> {
    match crate::raise_memlock_limit() {
        Ok(l) if l < MIN_MEMLOCK => Err(RuntimeError::Memlock(l)),
        Ok(l) => Ok(l),
        // Unknown limit: let glommio try and report its own error.
        Err(_) => Ok(u64::MAX),
    }
}

fn map_err<E: std::fmt::Debug>(e: glommio::GlommioError<E>) -> glommio::GlommioError<()> {
    glommio::GlommioError::IoError(std::io::Error::other(format!("{e:?}")))
}
