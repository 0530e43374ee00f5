//! The `ratatosk` broker binary: command line, configuration, logging and signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use ratatosk::config::Config;

/// Thread-per-core, multi-tenant MQTT broker (MQTT 3.1, 3.1.1 and 5.0).
///
/// With no options it listens on 127.0.0.1:1883 only, so an anonymous start is not reachable from
/// other machines; pass --listen 0.0.0.0:1883 to serve the network.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on for MQTT over TCP (repeatable). Default: 127.0.0.1:1883.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Number of shards (one executor per core). Default: every CPU the process may use.
    #[arg(long)]
    shards: Option<usize>,
    /// Allow more shards than CPUs (they then share cores; for testing).
    #[arg(long)]
    oversubscribe: bool,
    /// TOML configuration file; flags given on the command line override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut config = match &cli.config {
        Some(path) => match Config::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ratatosk: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if !cli.listen.is_empty() {
        config.listen = cli.listen.clone();
    }
    if let Some(n) = cli.shards {
        config.shards = n;
    }
    config.oversubscribe |= cli.oversubscribe;
    let shards = config.validate().and_then(|()| config.shard_count(ratatosk_shards::allowed_cpus().len()));
    match shards {
        Ok(n) => config.shards = n,
        Err(e) => {
            eprintln!("ratatosk: {e}");
            return ExitCode::from(2);
        }
    }
    let stop = Arc::new(ratatosk_shards::Latch::default());
    if let Err(e) = watch_signals(stop.clone()) {
        eprintln!("ratatosk: cannot install signal handling: {e}");
        return ExitCode::FAILURE;
    }
    match ratatosk::run(config, stop) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ratatosk: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Blocks SIGINT and SIGTERM in every thread (the shards inherit the mask) and waits for them on a
/// dedicated thread, which signals `stop`: every shard wakes and closes its clients cleanly.
fn watch_signals(stop: Arc<ratatosk_shards::Latch>) -> std::io::Result<()> {
    // SAFETY: plain libc signal-set manipulation on a zeroed set we own.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    std::thread::Builder::new().name("signals".into()).spawn(move || loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: waits on the set built above.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            tracing::info!(signal = sig, "shutting down");
            stop.open();
            return;
        }
    })?;
    Ok(())
}
