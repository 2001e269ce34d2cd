//! `gateway`: the API gateway binary. See `gateway --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gateway_bin::{logging, Config, Gateway};

/// mimalloc: fewer instructions per allocation than glibc's malloc on the request path
/// (thread-local free lists, no consolidation passes); see gw-alloc.
#[global_allocator]
static GLOBAL: gw_alloc::MiMalloc = gw_alloc::MiMalloc;

/// API gateway: routing, load balancing, retries, metrics and an admin API in front of your services.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
struct Args {
    /// Configuration file (TOML). Default: config/gateway.toml when it exists, else the embedded default.
    #[arg(long, env = "GW_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate FILE, print `configuration OK` or every error with its path, and exit 0 / 1.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Freed memory is kept for a second before it goes back to the system (see gw-alloc).
    gw_alloc::set_purge_delay(1000);
    let args = Args::parse();
    if let Some(file) = args.check_config {
        return match Config::load(Some(&file)) {
            Ok(_) => {
                println!("configuration OK");
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in &errors.0 {
                    println!("{e}");
                }
                ExitCode::FAILURE
            }
        };
    }
    let path = args.config.or_else(|| {
        let default = PathBuf::from("config/gateway.toml");
        default.is_file().then_some(default)
    });
    let config = match Config::load(path.as_deref()) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("invalid configuration:");
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    logging::init(&config.log.level);
    let runtime = match config.server.workers {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, path))
}

async fn run(config: Config, path: Option<PathBuf>) -> ExitCode {
    let gateway = match Gateway::start(config, path).await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    wait_for_signals(&gateway).await;
    tracing::info!("shutting down: draining requests in flight");
    gateway.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

#[cfg(unix)]
async fn wait_for_signals(gateway: &Gateway) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => match gateway.reload_from_file().await {
                Ok(()) => tracing::info!("configuration reloaded"),
                Err(errors) => {
                    for e in &errors.0 {
                        tracing::error!("reload refused: {e}");
                    }
                    tracing::error!("reload refused; the running configuration stays");
                }
            },
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_gateway: &Gateway) {
    let _ = tokio::signal::ctrl_c().await;
}
