//! The daemon's start and shutdown order, in one place: signals, the daemon,
//! the HTTP API, the notification worker, and the deadline that bounds a stop.

use std::path::Path;

use super::Daemon;
use crate::config::Settings;
use crate::error::AppError;

/// How the daemon stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Intake stopped, everything read was committed, notifications due were sent.
    Cleanly,
    /// The shutdown did not finish within `pipeline.shutdown_deadline`:
    /// uncommitted batches are read again on restart.
    PastDeadline,
}

/// Run the daemon until SIGTERM or Ctrl-C (SIGHUP reloads the rules), or with
/// `once` until its sources are read. The order is the point:
///
/// 1. signal handlers first, so a signal during start-up is handled, not fatal;
/// 2. the daemon (store, pipeline, source, reloads, backups);
/// 3. the HTTP API beside it (a failure stops the daemon again);
/// 4. the notification worker;
/// 5. on a stop: the API first (readiness turns 503, requests in flight
///    finish within 5 s), then intake stops, the pipeline drains and
///    commits, and the notification worker sends what the last batch queued —
///    all of it within the shutdown deadline.
pub fn run(settings: Settings, db: Option<&Path>, once: bool) -> Result<Stopped, AppError> {
    let deadline = settings.pipeline.shutdown_deadline;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| AppError::Io {
            context: "starting the async runtime".into(),
            source,
        })?;
    let result = runtime.block_on(async move {
        tracing::info!(config = %settings.origin, "trailwarden starting");
        let mut signals = Signals::install();
        // Outside the async context: opening a PostgreSQL store runs that
        // client's own blocking calls, which refuse to run on a runtime thread.
        let daemon = tokio::task::block_in_place(|| Daemon::start(&settings, db, once))?;
        let api = if settings.api.enabled {
            match crate::api::ApiServer::start(&settings, daemon.api_handle()).await {
                Ok(api) => {
                    tracing::info!(url = api.url(), address = %api.local_addr(), "HTTP API listening");
                    // For a person at a terminal; JSON logs get every line as JSON.
                    if settings.log.json {
                        if let Some(path) = api.token_file() {
                            tracing::warn!(
                                path = %path.display(),
                                "no [[api.tokens]] configured; an admin token is in this file (owner-only); \
                                 `trailwarden api new-token` makes named ones"
                            );
                        }
                    } else {
                        eprintln!("console: {}", api.url());
                        if let Some(path) = api.token_file() {
                            eprintln!(
                                "console: no [[api.tokens]] configured; an admin token is in {} (owner-only); \
                                 `trailwarden api new-token` makes named ones",
                                path.display()
                            );
                        }
                    }
                    Some(api)
                }
                Err(error) => {
                    let _ = tokio::task::spawn_blocking(move || daemon.shutdown()).await;
                    return Err(AppError::Api(error.to_string()));
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
                return Err(error);
            }
        };
        let _watchdog = super::systemd::watchdog(daemon.api_handle().engine_alive.clone());
        super::systemd::ready(&match &api {
            Some(api) => format!("running; console {}", api.url()),
            None => "running".to_string(),
        });
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
        // Whether the pipeline was still running when the stop began (a
        // signal, or `--once` at its end), rather than what stopped it.
        let running_at_stop = daemon
            .api_handle()
            .engine_alive
            .load(std::sync::atomic::Ordering::Acquire);
        // The watchdog keeps pinging through the drain (the runtime's end stops it).
        super::systemd::stopping();
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
                match report.store_error {
                    // Leaving a shared store's group, the rebalance gave this
                    // daemon's partitions to another before its last batch
                    // committed: the new owner reads that batch again from
                    // the committed offsets (the events it held included).
                    Some(crate::alarm::store::StoreError::Fenced(reason)) if running_at_stop => {
                        tracing::warn!(%reason, "partitions were taken over while stopping; their last batch is left to the new owner");
                    }
                    Some(error) => return Err(AppError::StoreFailed(error)),
                    None => {}
                }
                Ok(Stopped::Cleanly)
            }
            Ok(Err(join_error)) => Err(AppError::Shutdown(join_error.to_string())),
            Err(_) => {
                tracing::error!(
                    ?deadline,
                    "shutdown did not finish in time; exiting (uncommitted batches will be re-read on restart)"
                );
                Ok(Stopped::PastDeadline)
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
struct Signals {
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

    /// Wait for Ctrl-C or SIGTERM, or for the pipeline to stop by itself (a
    /// store failure past its retries, a batch fenced off by another
    /// instance): then the daemon shuts down and exits with the error.
    /// SIGHUP reloads the rules and keeps waiting.
    async fn wait(&mut self, daemon: &Daemon) {
        let alive = daemon.api_handle().engine_alive.clone();
        let stopped = async move {
            while alive.load(std::sync::atomic::Ordering::Acquire) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            tracing::error!("the pipeline stopped; shutting down");
        };
        tokio::pin!(stopped);
        #[cfg(unix)]
        if let Some((terminate, hangup, interrupt)) = &mut self.streams {
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
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
        tokio::select! {
            _ = &mut stopped => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
}
