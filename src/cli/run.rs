//! `run`, `replay` and `normalize`: the daemon, a backtest over files, and
//! what the rules see of each record.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use trailwarden::app::{self, MatchFormat, ReplayRequest};
use trailwarden::config::Settings;

use super::Format;

#[derive(Args)]
pub struct RunArgs {
    /// Store file, overriding `store.path`.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Read the sources once and exit instead of watching.
    #[arg(long)]
    pub once: bool,
}

#[derive(Args)]
pub struct ReplayArgs {
    /// Files, directories, or `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Aggregate into this store file.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
}

#[derive(Args)]
pub struct NormalizeArgs {
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Include the original record under `raw`.
    #[arg(long)]
    pub raw: bool,
}

/// `run`: the daemon until a signal (or, with `--once`, until its sources
/// are read).
pub fn run(settings: Settings, args: RunArgs) -> Result<ExitCode> {
    let RunArgs { db, once } = args;
    run_daemon(settings, db, once)
}

fn run_daemon(settings: Settings, db: Option<PathBuf>, once: bool) -> Result<ExitCode> {
    let deadline = settings.pipeline.shutdown_deadline;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        tracing::info!(config = %settings.origin, "trailwarden starting");
        let mut signals = Signals::install();
        let daemon = app::Daemon::start(&settings, db.as_deref(), once)?;
        let api = if settings.api.enabled {
            match trailwarden::api::ApiServer::start(&settings, daemon.api_handle()).await {
                Ok(api) => {
                    tracing::info!(url = api.url(), address = %api.local_addr(), "HTTP API listening");
                    eprintln!("console: {}", api.url());
                    if let Some(path) = api.token_file() {
                        eprintln!(
                            "console: no [[api.tokens]] configured; an admin token is in {} (owner-only); \
                             `trailwarden api new-token` makes named ones",
                            path.display()
                        );
                    }
                    Some(api)
                }
                Err(error) => {
                    let _ = tokio::task::spawn_blocking(move || daemon.shutdown()).await;
                    return Err(anyhow::Error::from(error).context("starting the HTTP API"));
                }
            }
        } else {
            None
        };
        let notifier = match daemon.start_notifier(&settings) {
            Ok(notifier) => notifier,
            Err(error) => {
                let _ = tokio::task::spawn_blocking(move || daemon.shutdown()).await;
                if let Some(api) = api {
                    api.stop(std::time::Duration::from_secs(5)).await;
                }
                return Err(error.into());
            }
        };
        if once {
            let finished = async {
                while !daemon.source_finished() {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            };
            tokio::select! {
                _ = finished => {}
                _ = signals.wait(&daemon) => tracing::info!("shutting down: stopping intake, draining, committing"),
            }
        } else {
            signals.wait(&daemon).await;
            tracing::info!("shutting down: stopping intake, draining, committing");
        }
        // The API goes first: readiness turns 503, requests in flight finish.
        if let Some(api) = api {
            api.stop(std::time::Duration::from_secs(5)).await;
        }
        let shutdown = async move {
            let report = tokio::task::spawn_blocking(move || daemon.shutdown()).await;
            // The last batch is committed: its notifications are in the outbox; send what is due.
            if let Some(notifier) = notifier {
                notifier.stop().await;
            }
            report
        };
        match tokio::time::timeout(deadline, shutdown).await {
            Ok(Ok(report)) => {
                let stats = report.stats;
                tracing::info!(
                    records = stats.records,
                    events = stats.events,
                    malformed = stats.malformed,
                    matches = stats.matches,
                    alarms_new = stats.alarms_created,
                    alarms = stats.alarms_touched,
                    "stopped"
                );
                if let Some(error) = report.store_error {
                    return Err(anyhow::Error::from(error).context("the store failed"));
                }
                Ok(ExitCode::SUCCESS)
            }
            Ok(Err(join_error)) => Err(anyhow::anyhow!("shutdown failed: {join_error}")),
            Err(_) => {
                tracing::error!(
                    ?deadline,
                    "shutdown did not finish in time; exiting (uncommitted batches will be re-read on restart)"
                );
                Ok(ExitCode::from(1))
            }
        }
    });
    // A shutdown past its deadline is still running: do not wait for it.
    runtime.shutdown_background();
    result
}

/// The daemon's signal handlers, installed before anything starts: a SIGHUP
/// or SIGTERM that arrives while the daemon is still starting is then
/// handled, not fatal (the default action of both is to end the process).
pub struct Signals {
    #[cfg(unix)]
    streams: Option<(
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
    )>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(terminate), Ok(hangup), Ok(interrupt)) => Some((terminate, hangup, interrupt)),
                _ => {
                    tracing::warn!("cannot listen for SIGTERM / SIGHUP; only Ctrl-C stops the daemon");
                    None
                }
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Wait for Ctrl-C or SIGTERM; SIGHUP reloads the rules and keeps waiting.
    async fn wait(&mut self, daemon: &app::Daemon) {
        #[cfg(unix)]
        if let Some((terminate, hangup, interrupt)) = &mut self.streams {
            loop {
                tokio::select! {
                    _ = interrupt.recv() => return,
                    _ = terminate.recv() => return,
                    _ = hangup.recv() => {
                        tracing::info!("SIGHUP: reloading rules");
                        daemon.reload();
                    }
                }
            }
        }
        let _ = daemon;
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub fn replay(settings: &Settings, args: ReplayArgs) -> Result<ExitCode> {
    let ReplayArgs { paths, format, db } = args;
    let format = match format {
        Format::Table => MatchFormat::Table,
        Format::Json | Format::Jsonl => MatchFormat::Jsonl,
    };
    let report = app::replay(settings, ReplayRequest { paths, format, db })?;
    eprintln!("{}", app::summary_line(&report));
    Ok(ExitCode::SUCCESS)
}

pub fn normalize(settings: &Settings, args: NormalizeArgs) -> Result<ExitCode> {
    let NormalizeArgs { paths, raw } = args;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (events, malformed) = app::normalize_paths(settings, &paths, raw, &mut out)?;
    let _ = out.flush();
    eprintln!("normalize: {events} events, {malformed} malformed");
    Ok(ExitCode::SUCCESS)
}
