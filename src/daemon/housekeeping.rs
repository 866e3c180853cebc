//! Housekeeping beside the pipeline, each on its own thread and connection:
//! scheduled online backups and retention. Neither touches the hot path:
//! SQLite's WAL lets them read beside the writer, and retention's small
//! transactions take the write lock in turn with the store stage.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::alarm::retention;
use crate::alarm::store::{Store, StoreOptions};
use crate::config::{BackupSettings, RetentionSettings, Settings};
use crate::error::AppError;
use crate::metrics::Metrics;
use crate::options::store_options;

/// A job run every `interval` on a thread of its own until stopped.
pub struct Periodic {
    thread: std::thread::JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl Periodic {
    /// Run `job` every `interval` (first right away when `at_start`); the
    /// job gets the stop flag, to end a long run early.
    pub fn start(
        name: &str,
        interval: Duration,
        at_start: bool,
        mut job: impl FnMut(&AtomicBool) + Send + 'static,
    ) -> Result<Periodic, AppError> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let mut last: Option<Instant> = if at_start { None } else { Some(Instant::now()) };
                    while !stop.load(Ordering::SeqCst) {
                        if last.is_none_or(|last| last.elapsed() >= interval) {
                            last = Some(Instant::now());
                            job(&stop);
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                })
                .map_err(|source| AppError::Io {
                    context: format!("starting the {name} thread"),
                    source,
                })?
        };
        Ok(Periodic { thread, stop })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// The daemon's housekeeping jobs, as configured.
pub fn start(settings: &Settings, store_path: &Path, metrics: &Arc<Metrics>) -> Result<Vec<Periodic>, AppError> {
    let mut jobs = Vec::new();
    // Backups of a shared store are PostgreSQL's (pg_dump, base backups;
    // docs/postgresql.md); retention runs on either backend.
    let postgres = crate::db::StoreLocation::from_path(store_path).is_postgres();
    if let Some(backup) = settings.store.backup.as_ref().filter(|_| !postgres) {
        jobs.push(backups(
            store_path.to_path_buf(),
            store_options(settings),
            backup.clone(),
        )?);
    }
    if settings.retention.enabled {
        let retention = settings.retention.clone();
        let (path, options, metrics) = (store_path.to_path_buf(), store_options(settings), metrics.clone());
        jobs.push(Periodic::start(
            "tw-retention",
            retention.interval,
            true,
            move |stop| prune_once(&path, options.clone(), &retention, &metrics, stop),
        )?);
    }
    Ok(jobs)
}

/// Scheduled online backups: every `interval`, a copy named
/// `trailwarden-<UTC time>.db` in `dir`; the newest `keep` are kept.
fn backups(store_path: PathBuf, options: StoreOptions, backup: BackupSettings) -> Result<Periodic, AppError> {
    std::fs::create_dir_all(&backup.dir).map_err(|source| AppError::Io {
        context: format!("creating the backup directory {}", backup.dir.display()),
        source,
    })?;
    // A daemon restarted more often than `interval` still backs up.
    let due = newest_backup_age(&backup.dir).is_none_or(|age| age >= backup.interval);
    Periodic::start("tw-backup", backup.interval, due, move |_| {
        match backup_once(&store_path, options.clone(), &backup) {
            Ok(path) => tracing::info!(path = %path.display(), "store backed up"),
            Err(error) => tracing::error!(%error, "scheduled backup failed; retried at the next interval"),
        }
    })
}

/// One retention run on a connection of its own, logged and counted.
fn prune_once(path: &Path, options: StoreOptions, settings: &RetentionSettings, metrics: &Metrics, stop: &AtomicBool) {
    let started = Instant::now();
    let outcome = Store::open(path, options)
        .map_err(|error| error.to_string())
        .and_then(|mut store| {
            retention::prune(&mut store, &settings.policy, chrono::Utc::now(), &|| {
                stop.load(Ordering::SeqCst)
            })
            .map_err(|error| error.to_string())
        });
    match outcome {
        Ok(report) => {
            metrics.retention.record(report.counts());
            if let Some(error) = &report.chain_error {
                metrics.retention.failures.inc();
                tracing::error!(%error, "retention: the hash chain was not cut; run `trailwarden store verify`");
            }
            if report.removed_anything() {
                tracing::info!(removed = %report, seconds = started.elapsed().as_secs_f64(), "retention: store pruned");
            } else {
                tracing::debug!("retention: nothing past its time");
            }
        }
        Err(error) => {
            metrics.retention.failures.inc();
            tracing::error!(%error, "retention run failed; retried at the next interval");
        }
    }
}

/// The scheduled backups in `dir`, oldest first.
fn backups_in(dir: &Path) -> Result<Vec<PathBuf>, AppError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| AppError::Io {
            context: format!("listing {}", dir.display()),
            source,
        })?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("trailwarden-") && name.ends_with(".db"))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// How long ago the newest scheduled backup in `dir` was written.
fn newest_backup_age(dir: &Path) -> Option<Duration> {
    let newest = backups_in(dir).ok()?.pop()?;
    std::fs::metadata(newest).ok()?.modified().ok()?.elapsed().ok()
}

/// One backup into `backup.dir`, then prune beyond `backup.keep`.
pub fn backup_once(store_path: &Path, options: StoreOptions, backup: &BackupSettings) -> Result<PathBuf, AppError> {
    // What a backup cut short (a crash mid-copy) left under its temporary name.
    if let Ok(entries) = std::fs::read_dir(&backup.dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("trailwarden-") && name.ends_with(".db.partial") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let store = Store::open(store_path, options)?;
    let name = format!("trailwarden-{}.db", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
    let path = backup.dir.join(name);
    store.backup_to(&path)?;
    let existing = backups_in(&backup.dir)?;
    let excess = existing.len().saturating_sub(backup.keep);
    for old in existing.into_iter().take(excess) {
        if let Err(error) = std::fs::remove_file(&old) {
            tracing::warn!(path = %old.display(), %error, "cannot remove an old backup");
        }
    }
    Ok(path)
}
