//! Wiring: what each CLI command does, built from settings.
//!
//! `main.rs` parses arguments and calls into here. Shutdown order for the
//! daemon: stop intake (the source stops at a batch boundary), drain the
//! pipeline, commit, then exit — within a deadline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::time::Duration;

use crate::alarm::rollup::ActivityOptions;
use crate::alarm::store::{Store, StoreError, StoreOptions};
use crate::config::Settings;
use crate::event::decode::{DeadLetter, Decoded};
use crate::event::event_json;
use crate::event::model::AuditEvent;
use crate::event::normalize::NormalizeContext;
use crate::event::window::TimeWindow;
use crate::mask::{mask_access_key, mask_group_key, mask_key_in_text};
use crate::pipeline::{
    MatchSink, Pipeline, PipelineHooks, PipelineOptions, PipelineReport, normalize_chunk, shared_rules,
};
use crate::rules::state::StateLimits;
use crate::rules::{Rule, RuleMatch, RuleSet};
use crate::source::file::{ReadOptions, StartAt, Stopped, list_files, read_file, read_stdin};
use crate::source::merge::{Finished, Input, MergeOptions, STREAM_BATCH_RECORDS, read_merged};
use crate::source::watch::{WatchMessage, WatchOptions, run_file_source};
use crate::source::{ChunkBatch, FileCheckpoint};
use crate::terminal::show;

pub use crate::error::AppError;
pub use crate::ruleset::{check_rule_set, load_rule_set, rule_options, test_rules};

pub fn store_options(settings: &Settings) -> StoreOptions {
    StoreOptions {
        samples_per_alarm: settings.store.samples_per_alarm,
        synchronous_full: settings.store.synchronous_full,
        count_on_ignored: settings.store.count_on_ignored,
        notify: crate::notify::Router::observer(settings.notify.clone()),
    }
}

/// Pipeline settings; `daemon` adds the wall-clock bound on reordering.
fn pipeline_options(settings: &Settings, daemon: bool) -> PipelineOptions {
    let max_hold = settings.pipeline.max_hold;
    PipelineOptions {
        batch_events: settings.pipeline.batch_events,
        channel_batches: settings.pipeline.channel_batches,
        samples_per_alarm: settings.store.samples_per_alarm as usize,
        max_sample_bytes: settings.store.max_sample_bytes,
        naive_time_offset: settings.naive_time_offset,
        time_window: settings.time_window,
        store_retries: settings.pipeline.store_retries,
        allowed_lateness: settings.pipeline.allowed_lateness,
        max_hold: (daemon && !max_hold.is_zero()).then_some(max_hold),
        persist_pending: daemon,
        fill_transactions: !daemon,
        max_buffered_events: settings.pipeline.max_buffered_events,
        max_buffered_bytes: settings.pipeline.max_buffered_bytes,
        state_limits: StateLimits {
            max_entries: settings.state.max_entries,
            key_ttl_ms: millis(settings.state.key_ttl),
            principal_ttl_ms: millis(settings.state.principal_ttl),
            first_seen_ttl_ms: millis(settings.state.first_seen_ttl),
        },
        chain_log_interval: daemon.then_some(settings.store.chain_log_interval),
        activity: ActivityOptions {
            rollups: settings.activity.enabled,
            traces: settings.traces.enabled,
            trace_retention: settings.traces.retention,
            prune_every: settings.traces.prune_every,
            trace_tag: settings.traces.rule_tag.clone(),
        },
    }
}

/// Scheduled online backups: every `interval`, a copy named
/// `trailwarden-<UTC time>.db` in `dir`; the newest `keep` are kept.
pub struct BackupScheduler {
    thread: std::thread::JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl BackupScheduler {
    pub fn start(
        store_path: PathBuf,
        options: StoreOptions,
        backup: crate::config::BackupSettings,
    ) -> Result<BackupScheduler, AppError> {
        std::fs::create_dir_all(&backup.dir).map_err(|source| AppError::Io {
            context: format!("creating the backup directory {}", backup.dir.display()),
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("tw-backup".into())
                .spawn(move || {
                    let mut last = std::time::Instant::now();
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(200));
                        if last.elapsed() < backup.interval {
                            continue;
                        }
                        last = std::time::Instant::now();
                        match backup_once(&store_path, options.clone(), &backup) {
                            Ok(path) => tracing::info!(path = %path.display(), "store backed up"),
                            Err(error) => {
                                tracing::error!(%error, "scheduled backup failed; retried at the next interval")
                            }
                        }
                    }
                })
                .map_err(|source| AppError::Io {
                    context: "starting the backup thread".into(),
                    source,
                })?
        };
        Ok(BackupScheduler { thread, stop })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// One backup into `backup.dir`, then prune beyond `backup.keep`.
pub fn backup_once(
    store_path: &Path,
    options: StoreOptions,
    backup: &crate::config::BackupSettings,
) -> Result<PathBuf, AppError> {
    let store = Store::open(store_path, options)?;
    let name = format!("trailwarden-{}.db", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
    let path = backup.dir.join(name);
    store.backup_to(&path)?;
    let mut existing: Vec<PathBuf> = std::fs::read_dir(&backup.dir)
        .map_err(|source| AppError::Io {
            context: format!("listing {}", backup.dir.display()),
            source,
        })?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("trailwarden-") && name.ends_with(".db"))
        })
        .collect();
    existing.sort();
    let excess = existing.len().saturating_sub(backup.keep);
    for old in existing.into_iter().take(excess) {
        if let Err(error) = std::fs::remove_file(&old) {
            tracing::warn!(path = %old.display(), %error, "cannot remove an old backup");
        }
    }
    Ok(path)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn read_options(settings: &Settings) -> ReadOptions {
    ReadOptions {
        max_document_bytes: settings.files.max_document_bytes,
        batch_bytes: settings.pipeline.batch_bytes,
        ..ReadOptions::default()
    }
}

/// How file sources read many files: merged in event-time order.
fn merge_options(settings: &Settings, with_checkpoints: bool) -> MergeOptions {
    MergeOptions {
        read: read_options(settings),
        max_open_files: settings.files.max_open_files,
        naive_time_offset: settings.naive_time_offset,
        time_window: settings.time_window,
        with_checkpoints,
        batch_records: STREAM_BATCH_RECORDS,
    }
}

/// Output format of `replay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchFormat {
    Jsonl,
    Table,
    /// Print nothing but the summary (`--db` runs that only fill a store).
    None,
}

/// Prints matches to stdout.
struct PrintSink {
    format: MatchFormat,
    out: std::io::BufWriter<std::io::Stdout>,
    broken: bool,
    header_done: bool,
}

impl MatchSink for PrintSink {
    fn on_match(&mut self, rule: &Rule, rule_match: &RuleMatch, event: &AuditEvent, rules: &RuleSet) {
        if self.broken {
            return;
        }
        let result = match self.format {
            MatchFormat::None => Ok(()),
            MatchFormat::Jsonl => {
                let line = match_json(rule, rule_match, event, rules);
                writeln!(self.out, "{line}")
            }
            MatchFormat::Table => {
                let header = if self.header_done {
                    Ok(())
                } else {
                    self.header_done = true;
                    writeln!(
                        self.out,
                        "{:<24} {:<6} {:<34} {:<7} {:<28} {:<22} {:<34} SOURCE IP",
                        "TIME", "LEVEL", "RULE", "CLOUD", "PRINCIPAL", "ACCESS KEY", "ACTION"
                    )
                };
                // Matches are printed as they come, so the columns have fixed
                // widths: longer values are cut with `…`, and event text is
                // escaped (it is whatever the caller put in the record).
                let key = event.access_key_id().map_or_else(|| "-".to_string(), mask_access_key);
                header.and_then(|_| {
                    writeln!(
                        self.out,
                        "{:<24} {:<6} {:<34.34} {:<7} {:<28.28} {:<22.22} {:<34.34} {}",
                        crate::alarm::store::timestamp(event.time),
                        rule.level.as_str(),
                        show(&rule.id),
                        event.provider.as_str(),
                        show(event.principal_display()),
                        show(&key),
                        show(&format!("{}.{}", event.service, event.action)),
                        show(event.source_ip_text().unwrap_or("-"))
                    )
                })
            }
        };
        if result.is_err() {
            self.broken = true;
        }
    }

    fn on_commit(&mut self) {
        if self.out.flush().is_err() {
            self.broken = true;
        }
    }
}

impl Drop for PrintSink {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

/// One match as a JSON object (the `replay --format jsonl` line). The
/// access key is masked, in its field and in the group key and output.
pub fn match_json(rule: &Rule, rule_match: &RuleMatch, event: &AuditEvent, rules: &RuleSet) -> serde_json::Value {
    let operations: Vec<&str> = event
        .operations
        .iter()
        .map(|index| rules.catalog.name(*index))
        .collect();
    let key = event.access_key_id();
    let masked = |text: &str| match key {
        Some(key) => mask_key_in_text(text, key),
        None => text.to_string(),
    };
    serde_json::json!({
        "rule": rule.id,
        "rule_hash": rule.hash,
        "level": rule.level,
        "title": rule.title,
        "event_id": event.event_id,
        "provider": event.provider,
        "time": crate::alarm::store::timestamp(event.time),
        "account_id": event.account_id,
        "principal": event.principal_display(),
        "principal_kind": event.principal.kind,
        "access_key_id": key.map(mask_access_key),
        "service": event.service,
        "action": event.action,
        "operations": operations,
        "source_ip": event.source_ip_text(),
        "call_method": event.call_method,
        "outcome": event.outcome.result,
        "group_key": mask_group_key(&masked(&rule_match.group_key)),
        "output": masked(&rule_match.output),
        "origin": event.origin,
    })
}

/// `trailwarden replay`.
pub struct ReplayRequest {
    pub paths: Vec<String>,
    pub format: MatchFormat,
    /// Aggregate into this store (else a throw-away in-memory one).
    pub db: Option<PathBuf>,
}

pub fn replay(settings: &Settings, request: ReplayRequest) -> Result<PipelineReport, AppError> {
    check_paths(&request.paths)?;
    let rules = load_rule_set(settings, None)?;
    // Without --db: a throw-away store in a temporary file (not in memory, so
    // a replay of any size keeps memory bounded), removed at the end.
    let scratch = request.db.is_none().then(ScratchStore::new);
    let (store_path, options) = match (&request.db, &scratch) {
        // A replay is a backtest: it never notifies anyone.
        (Some(db), _) => (
            db.clone(),
            StoreOptions {
                notify: None,
                ..store_options(settings)
            },
        ),
        (None, Some(scratch)) => (
            scratch.path.clone(),
            StoreOptions {
                synchronous_full: false,
                notify: None,
                ..store_options(settings)
            },
        ),
        (None, None) => unreachable!("scratch exists without --db"),
    };
    let store = Store::open(&store_path, options)?;
    let sink = PrintSink {
        format: request.format,
        out: std::io::BufWriter::new(std::io::stdout()),
        broken: false,
        header_done: false,
    };
    let pipeline = Pipeline::start(
        shared_rules(rules),
        store,
        pipeline_options(settings, false),
        Box::new(sink),
        PipelineHooks::default(),
    );
    let sender = pipeline.sender();
    let mut send = |batch: ChunkBatch| sender.send(batch).map_err(|_| Stopped);
    read_paths_merged(&request.paths, &merge_options(settings, false), &mut send)?;
    drop(sender);
    let report = pipeline.finish();
    if let Some(error) = report.store_error {
        return Err(AppError::Store(error));
    }
    Ok(report)
}

/// A temporary store file for `replay` without `--db`; removed on drop.
struct ScratchStore {
    path: PathBuf,
}

impl ScratchStore {
    fn new() -> ScratchStore {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let name = format!("trailwarden-replay-{}-{nanos}.db", std::process::id());
        ScratchStore {
            path: std::env::temp_dir().join(name),
        }
    }
}

impl Drop for ScratchStore {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The one-line summary printed to stderr after a replay.
pub fn summary_line(report: &PipelineReport) -> String {
    let stats = report.stats;
    format!(
        "replay: {} records, {} events, {} malformed, {} matches, {} allowlisted ({} high), {} alarms ({} new), state {} entries ({} evicted), {} late, {:.2} s, {:.0} events/s",
        stats.records,
        stats.events,
        stats.malformed,
        stats.matches,
        stats.allowlisted,
        stats.allowlisted_high,
        stats.alarms_touched,
        stats.alarms_created,
        stats.state_entries,
        stats.state_evictions,
        stats.late_events,
        report.elapsed.as_secs_f64(),
        report.events_per_second()
    )
}

/// Read, decode and normalize `paths` (files, directories or `-`), calling
/// `on_event` for each event (operations classified with `catalog`) and
/// `on_dead_letter` for each unreadable record. `on_event` returns false to
/// stop. Event times are checked against the default `TimeWindow`.
pub fn normalize_files(
    paths: &[String],
    read_options: &ReadOptions,
    naive_time_offset: chrono::FixedOffset,
    catalog: &crate::rules::OperationCatalog,
    on_event: &mut dyn FnMut(AuditEvent) -> bool,
    on_dead_letter: &mut dyn FnMut(DeadLetter),
) -> Result<(), AppError> {
    normalize_files_within(
        paths,
        read_options,
        naive_time_offset,
        &TimeWindow::default(),
        catalog,
        on_event,
        on_dead_letter,
    )
}

/// `normalize_files` with the configured window of believable event times.
pub fn normalize_files_within(
    paths: &[String],
    read_options: &ReadOptions,
    naive_time_offset: chrono::FixedOffset,
    time_window: &TimeWindow,
    catalog: &crate::rules::OperationCatalog,
    on_event: &mut dyn FnMut(AuditEvent) -> bool,
    on_dead_letter: &mut dyn FnMut(DeadLetter),
) -> Result<(), AppError> {
    check_paths(paths)?;
    let mut decoded = Decoded::default();
    let mut handle = |batch: ChunkBatch| -> Result<(), Stopped> {
        let mut context = NormalizeContext::new(batch.ingest_time);
        context.naive_time_offset = naive_time_offset;
        let bounds = time_window.bounds(chrono::Utc::now());
        for letter in batch.source_errors {
            on_dead_letter(letter);
        }
        for chunk in &batch.chunks {
            context.ingest_time = chunk.ingest_time.unwrap_or(batch.ingest_time);
            let keep_going = normalize_chunk(
                chunk,
                &context,
                &bounds,
                &mut decoded,
                &mut |mut event| {
                    catalog.classify_event(&mut event);
                    on_event(event)
                },
                on_dead_letter,
            );
            if !keep_going {
                return Err(Stopped);
            }
        }
        Ok(())
    };
    read_paths(paths, read_options, &mut handle)
}

/// Fail early, before any work, when a path does not exist.
fn check_paths(paths: &[String]) -> Result<(), AppError> {
    match paths.iter().find(|path| *path != "-" && !Path::new(path).exists()) {
        Some(missing) => Err(AppError::MissingPath {
            path: PathBuf::from(missing),
        }),
        None => Ok(()),
    }
}

/// Every file of `paths` (directories recursively) and stdin (`-`), read
/// as one stream merged in event-time order (`source::merge`), handing
/// batches to `send` until it stops. Unreadable files are reported and skipped.
fn read_paths_merged(
    paths: &[String],
    options: &MergeOptions,
    send: &mut dyn FnMut(ChunkBatch) -> Result<(), Stopped>,
) -> Result<(), AppError> {
    let mut inputs = Vec::new();
    for path in paths {
        if path == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let files = list_files(Path::new(path)).map_err(|source| AppError::Io {
            context: path.clone(),
            source,
        })?;
        inputs.extend(files.into_iter().map(|path| Input::File {
            path,
            start: StartAt::default(),
        }));
    }
    let mut on_finished = |finished: Finished| {
        if let Err(error) = finished.result {
            tracing::warn!(%error, "cannot read");
        }
    };
    // Stopped: the pipeline is gone; its report says why.
    let _ = read_merged(&inputs, options, send, &mut on_finished);
    Ok(())
}

/// Read files, directories (recursively, in path order) and stdin (`-`) in
/// order, handing batches to `send` until it stops (`normalize`, which
/// prints records in the order they are found).
fn read_paths(
    paths: &[String],
    options: &ReadOptions,
    send: &mut dyn FnMut(ChunkBatch) -> Result<(), Stopped>,
) -> Result<(), AppError> {
    for path in paths {
        if path == "-" {
            if read_stdin(options, send).is_err() {
                return Ok(());
            }
            continue;
        }
        let files = list_files(Path::new(path)).map_err(|source| AppError::Io {
            context: path.clone(),
            source,
        })?;
        for file in files {
            match read_file(&file, StartAt::default(), options, false, send) {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "cannot read"),
                Err(Stopped) => return Ok(()),
            }
        }
    }
    Ok(())
}

/// `trailwarden normalize`: normalized events as JSON lines to `out`;
/// unreadable records are reported on stderr. Returns (events, malformed).
pub fn normalize_paths(
    settings: &Settings,
    paths: &[String],
    include_raw: bool,
    out: &mut dyn Write,
) -> Result<(u64, u64), AppError> {
    // The catalog names operations; without loadable rules they stay empty.
    let catalog = match load_rule_set(settings, None) {
        Ok(rules) => rules.catalog,
        Err(error) => {
            tracing::warn!("operations will be empty: {error}");
            Default::default()
        }
    };
    let mut events = 0u64;
    let mut malformed = 0u64;
    let mut write_error = None;
    normalize_files_within(
        paths,
        &read_options(settings),
        settings.naive_time_offset,
        &settings.time_window,
        &catalog,
        &mut |event| match writeln!(out, "{}", event_json(&event, &catalog, include_raw)) {
            Ok(()) => {
                events += 1;
                true
            }
            Err(error) => {
                write_error = Some(error);
                false
            }
        },
        &mut |letter| {
            malformed += 1;
            eprintln!("{}: {}", show(&letter.origin.to_string()), show(&letter.reason));
        },
    )?;
    match write_error {
        Some(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(AppError::Io {
            context: "stdout".into(),
            source: error,
        }),
        _ => Ok((events, malformed)),
    }
}

/// A running daemon.
pub struct Daemon {
    pipeline: Pipeline,
    source: DaemonSource,
    reloader: crate::reload::Reloader,
    backups: Option<BackupScheduler>,
    /// The running rule set (the reloader swaps it), for the API's rule list.
    rules: crate::rules::SharedRules,
    /// The store the daemon writes, for the API's own connections.
    store_path: PathBuf,
}

/// What the HTTP API needs from a running daemon; cheap to clone, safe to
/// share between tasks, and it does not keep the daemon from shutting down.
#[derive(Clone)]
pub struct DaemonHandle {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub rules: crate::rules::SharedRules,
    pub reload_status: Arc<std::sync::Mutex<crate::reload::ReloadStatus>>,
    pub reload: crate::reload::ReloadRequester,
    /// True while the engine thread runs.
    pub engine_alive: Arc<AtomicBool>,
    pub store_path: PathBuf,
}

/// The daemon's source: watched files or a Kafka consumer.
enum DaemonSource {
    Files {
        thread: std::thread::JoinHandle<()>,
        wake: std::sync::mpsc::Sender<WatchMessage>,
        stop: Arc<AtomicBool>,
    },
    Kafka(crate::source::kafka::KafkaSource),
}

impl Daemon {
    /// Start the daemon. With `once`, the file source reads what is there
    /// and stops; the Kafka source stops when every partition is read to its end.
    pub fn start(settings: &Settings, db: Option<&Path>, once: bool) -> Result<Daemon, AppError> {
        let rules = check_rule_set(settings, None)?;
        tracing::info!(
            rules = rules.rules.len(),
            operations = rules.catalog.len(),
            version = %rules.version,
            dir = %settings.rules.dir.display(),
            "rules loaded"
        );
        let store_path = db.unwrap_or(&settings.store.path).to_path_buf();
        let store = Store::open(&store_path, store_options(settings))?;
        tracing::info!(path = %store_path.display(), "alarm store open");
        let rules = shared_rules(rules);
        let reloader = crate::reload::Reloader::start(settings.clone(), rules.clone());
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let backups = match &settings.store.backup {
            Some(backup) if !once => Some(BackupScheduler::start(
                store_path.clone(),
                store_options(settings),
                backup.clone(),
            )?),
            _ => None,
        };
        if settings.source == crate::config::SourceKind::Kafka {
            let mut daemon = Daemon::start_kafka(settings, &store_path, store, rules, reloader, metrics, once)?;
            daemon.backups = backups;
            return Ok(daemon);
        }
        let reader = rusqlite::Connection::open_with_flags(
            &store_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: store_path.clone(),
            source,
        })?;
        let reader = std::sync::Mutex::new(reader);
        let checkpoints = Box::new(move |path: &str| -> Option<FileCheckpoint> {
            let connection = reader.lock().ok()?;
            crate::alarm::store::read_file_checkpoint(&connection, path)
                .ok()
                .flatten()
        });
        let hooks = PipelineHooks {
            metrics: Some(metrics),
            ..PipelineHooks::default()
        };
        let pipeline = Pipeline::start(
            rules.clone(),
            store,
            pipeline_options(settings, true),
            Box::new(LogSink),
            hooks,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_sender, wake_receiver) = channel();
        let options = WatchOptions {
            paths: settings.files.paths.clone(),
            watch: settings.files.watch && !once,
            poll_interval: settings.files.poll_interval,
            settle: settings.files.settle,
            merge: merge_options(settings, true),
        };
        for path in &options.paths {
            if !path.exists() {
                tracing::warn!(path = %path.display(), "source path does not exist (yet); it will be picked up when it appears");
            }
        }
        let source = {
            let sender = pipeline.sender();
            let stop = stop.clone();
            let wake_sender = wake_sender.clone();
            std::thread::Builder::new()
                .name("tw-files".into())
                .spawn(move || run_file_source(options, sender, checkpoints, wake_sender, wake_receiver, stop))
                .map_err(|source| AppError::Io {
                    context: "starting the file source".into(),
                    source,
                })?
        };
        Ok(Daemon {
            pipeline,
            source: DaemonSource::Files {
                thread: source,
                wake: wake_sender,
                stop,
            },
            reloader,
            backups,
            rules,
            store_path,
        })
    }

    fn start_kafka(
        settings: &Settings,
        store_path: &Path,
        store: Store,
        rules: crate::rules::SharedRules,
        reloader: crate::reload::Reloader,
        metrics: Arc<crate::metrics::Metrics>,
        once: bool,
    ) -> Result<Daemon, AppError> {
        use crate::source::kafka::{DeadLetterProducer, KafkaSource};
        let kafka = &settings.kafka;
        let on_dead_letters: Option<crate::pipeline::DeadLetterHook> = match &kafka.dead_letter_topic {
            Some(topic) => {
                let mut producer = DeadLetterProducer::new(kafka, topic, metrics.clone())?;
                Some(Box::new(move |chunk, letters, events| {
                    producer.copy(chunk, letters, events)
                }))
            }
            None => None,
        };
        let (committed_sender, committed_receiver) = channel();
        let hooks = PipelineHooks {
            metrics: Some(metrics.clone()),
            committed_offsets: Some(committed_sender),
            on_dead_letters,
        };
        let pipeline = Pipeline::start(
            rules.clone(),
            store,
            pipeline_options(settings, true),
            Box::new(LogSink),
            hooks,
        );
        let stored_offsets = match crate::alarm::store::kafka_offset_reader(store_path) {
            Ok(reader) => Box::new(reader) as crate::source::kafka::StoredOffsets,
            Err(error) => {
                reloader.stop();
                pipeline.finish();
                return Err(error.into());
            }
        };
        let source = match KafkaSource::start(
            kafka,
            stored_offsets,
            pipeline.sender(),
            committed_receiver,
            metrics,
            once,
            settings.pipeline.batch_bytes,
        ) {
            Ok(source) => source,
            Err(error) => {
                reloader.stop();
                pipeline.finish();
                return Err(error.into());
            }
        };
        Ok(Daemon {
            pipeline,
            source: DaemonSource::Kafka(source),
            reloader,
            backups: None,
            rules,
            store_path: store_path.to_path_buf(),
        })
    }

    /// Start the notification worker on the current tokio runtime, when
    /// `[notify]` has topics.
    pub fn start_notifier(&self, settings: &Settings) -> Result<Option<crate::notify::worker::Notifier>, AppError> {
        if !settings.notify.active() {
            return Ok(None);
        }
        let subscriptions: usize = settings
            .notify
            .topics
            .iter()
            .map(|topic| topic.subscriptions.len())
            .sum();
        let notifier = crate::notify::worker::Notifier::start(
            settings.notify.clone(),
            self.store_path.clone(),
            store_options(settings),
            Some(self.rules.clone()),
            self.metrics(),
        )
        .map_err(|error| AppError::Notify(error.to_string()))?;
        tracing::info!(topics = settings.notify.topics.len(), subscriptions, "notifications on");
        Ok(Some(notifier))
    }

    /// A handle for the HTTP API.
    pub fn api_handle(&self) -> DaemonHandle {
        DaemonHandle {
            metrics: self.pipeline.metrics.clone(),
            rules: self.rules.clone(),
            reload_status: self.reloader.status.clone(),
            reload: self.reloader.requester(),
            engine_alive: self.pipeline.engine_alive(),
            store_path: self.store_path.clone(),
        }
    }

    pub fn stats(&self) -> crate::pipeline::StatsSnapshot {
        self.pipeline.stats.snapshot()
    }

    /// The daemon's metrics registry.
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.pipeline.metrics.clone()
    }

    /// Whether the source has finished (`once`, or the pipeline stopped).
    pub fn source_finished(&self) -> bool {
        match &self.source {
            DaemonSource::Files { thread, .. } => thread.is_finished(),
            DaemonSource::Kafka(source) => source.is_finished(),
        }
    }

    /// Reload the rules now (SIGHUP).
    pub fn reload(&self) {
        self.reloader.request();
    }

    /// The rule set's reload status.
    pub fn reload_status(&self) -> crate::reload::ReloadStatus {
        self.reloader
            .status
            .lock()
            .map(|status| status.clone())
            .unwrap_or_default()
    }

    /// Stop intake, drain and commit. Blocking: call from a blocking context.
    pub fn shutdown(self) -> PipelineReport {
        self.reloader.stop();
        if let Some(backups) = self.backups {
            backups.stop();
        }
        match self.source {
            DaemonSource::Files { thread, wake, stop } => {
                stop.store(true, Ordering::SeqCst);
                let _ = wake.send(WatchMessage::Shutdown);
                let _ = thread.join();
            }
            DaemonSource::Kafka(source) => source.stop(),
        }
        self.pipeline.finish()
    }
}

/// The daemon's sink: matches are logged at debug level (alarms are in the
/// store), with the access key masked in the output text.
struct LogSink;

impl MatchSink for LogSink {
    fn on_match(&mut self, rule: &Rule, rule_match: &RuleMatch, event: &AuditEvent, _: &RuleSet) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let output = match event.access_key_id() {
            Some(key) => mask_key_in_text(&rule_match.output, key),
            None => rule_match.output.clone(),
        };
        tracing::debug!(rule = %rule.id, level = %rule.level, event = %event.event_id, origin = %event.origin, "{output}");
    }
}
