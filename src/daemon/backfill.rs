//! `trailwarden backfill`: history read into the engine's memory without
//! raising alarms.
//!
//! A fresh deployment knows no key, address or principal: `idle-key-reused`
//! would call every key new for 30 days, `sensitive-api-from-new-address`
//! would wait a week. Backfill reads past trails (files, directories, the
//! clouds' delivery layouts) through the daemon's own file source, in event
//! time order, with the rules evaluated so their state learns, the god
//! view's rollups and the key-operation traces written, and every match only
//! counted. Files are checkpointed in the store like the daemon's, in the
//! transaction of the state they produced, so an interrupted backfill run
//! again resumes where it stopped and a file is never learnt twice; the
//! daemon later skips the files backfill read.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Daemon;
use crate::config::{Settings, SourceKind};
use crate::error::AppError;
use crate::pipeline::{PipelineReport, StatsSnapshot};

/// How often progress is reported while the files are read.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Read `paths` into the store's engine state (`db`, else `store.path`),
/// calling `progress` every `every` (a log line: [`PROGRESS_EVERY`]; a
/// terminal's status line: more often) with the counts so far.
pub fn backfill(
    settings: &Settings,
    db: Option<&Path>,
    paths: &[PathBuf],
    every: Duration,
    progress: &mut dyn FnMut(&StatsSnapshot, Duration),
) -> Result<PipelineReport, AppError> {
    let mut settings = settings.clone();
    let urls: Vec<&str> = paths
        .iter()
        .filter_map(|path| path.to_str())
        .filter(|path| path.starts_with("s3://"))
        .collect();
    if urls.is_empty() {
        settings.source = SourceKind::Files;
    } else if urls.len() == paths.len() {
        // Buckets, read through the object-store source (resumable: its
        // spool and checkpoints are the store's), with `AWS_*` from the environment.
        settings.source = SourceKind::ObjectStore;
        settings.object_store.buckets = urls
            .iter()
            .map(|url| crate::source::object::bucket_of_url(url))
            .collect::<Result<_, _>>()
            .map_err(AppError::Usage)?;
    } else {
        return Err(AppError::Usage(
            "give either local paths or s3:// URLs to one backfill, not both".into(),
        ));
    }
    settings.files.paths = paths.to_vec();
    settings.files.watch = false;
    settings.pipeline.learn_only = true;
    settings.store.backup = None;
    let started = Instant::now();
    let daemon = Daemon::start(&settings, db, true)?;
    let mut reported = Instant::now();
    while !daemon.source_finished() {
        std::thread::sleep(Duration::from_millis(100));
        if reported.elapsed() >= every {
            reported = Instant::now();
            progress(&daemon.stats(), started.elapsed());
        }
    }
    let report = daemon.shutdown();
    if let Some(error) = report.store_error {
        return Err(AppError::StoreFailed(error));
    }
    Ok(report)
}

/// One line of progress or summary.
pub fn progress_line(stats: &StatsSnapshot, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    format!(
        "backfill: {} records, {} events, {} malformed, {} matches learnt (no alarms), state {} entries, {:.1} s, {:.0} events/s",
        stats.records,
        stats.events,
        stats.malformed,
        stats.learned,
        stats.state_entries,
        seconds,
        if seconds > 0.0 {
            stats.events as f64 / seconds
        } else {
            0.0
        }
    )
}
