//! Backtests and inspection over files: `replay` (the daemon's pipeline over
//! files, directories or stdin, merged in event-time order, printing every
//! match), `normalize` (what the rules see of each record) and the summary a
//! replay prints.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::alarm::store::{Store, StoreOptions};
use crate::config::Settings;
use crate::event::decode::{DeadLetter, Decoded};
use crate::event::event_json;
use crate::event::model::AuditEvent;
use crate::event::normalize::NormalizeContext;
use crate::event::window::TimeWindow;
use crate::mask::{mask_access_key, mask_group_key, mask_key_in_text};
use crate::pipeline::{MatchSink, Pipeline, PipelineHooks, PipelineReport, normalize_chunk, shared_rules};
use crate::rules::{Rule, RuleMatch, RuleSet};
use crate::source::ChunkBatch;
use crate::source::file::{ReadOptions, StartAt, Stopped, list_files, read_file, read_stdin};
use crate::source::merge::{Finished, Input, MergeOptions, read_merged};
use crate::terminal::show;

use crate::error::AppError;
use crate::options::{merge_options, pipeline_options, read_options, store_options};
use crate::ruleset::load_rule_set;

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
    /// The line being written (reused).
    line: String,
}

impl MatchSink for PrintSink {
    fn on_match(&mut self, rule: &Rule, rule_match: &RuleMatch, event: &AuditEvent, rules: &RuleSet) {
        if self.broken {
            return;
        }
        let result = match self.format {
            MatchFormat::None => Ok(()),
            MatchFormat::Jsonl => {
                self.line.clear();
                write_match_line(&mut self.line, rule, rule_match, event, rules);
                self.line.push('\n');
                self.out.write_all(self.line.as_bytes())
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

/// Append one match as `MatchLine` serializes it (the `replay --format
/// jsonl` line, without its newline), written field by field: serde's
/// string escaping, chrono's time format and the line's own strings cost
/// more than the rules that found the match.
fn write_match_line(out: &mut String, rule: &Rule, rule_match: &RuleMatch, event: &AuditEvent, rules: &RuleSet) {
    use crate::text::{push_json_opt_str, push_json_str};
    let key = event.access_key_id();
    let masked = |text: &str| match key {
        Some(key) => mask_key_in_text(text, key),
        None => text.to_string(),
    };
    out.push_str("{\"access_key_id\":");
    push_json_opt_str(out, key.map(mask_access_key).as_deref());
    out.push_str(",\"account_id\":");
    push_json_opt_str(out, event.account_id.as_deref());
    out.push_str(",\"action\":");
    push_json_str(out, &event.action);
    out.push_str(",\"call_method\":");
    push_json_str(out, event.call_method.as_str());
    out.push_str(",\"event_id\":");
    push_json_str(out, &event.event_id);
    out.push_str(",\"group_key\":");
    push_json_str(out, &mask_group_key(&masked(&rule_match.group_key)));
    out.push_str(",\"level\":");
    push_json_str(out, rule.level.as_str());
    out.push_str(",\"operations\":[");
    for (position, operation) in event.operations.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        push_json_str(out, rules.catalog.name(*operation));
    }
    out.push_str("],\"origin\":");
    push_json_str(out, &event.origin.to_string());
    out.push_str(",\"outcome\":");
    push_json_str(out, event.outcome.result.as_str());
    out.push_str(",\"output\":");
    push_json_str(out, &masked(&rule_match.output));
    out.push_str(",\"principal\":");
    push_json_str(out, event.principal_display());
    out.push_str(",\"principal_kind\":");
    push_json_str(out, event.principal.kind.as_str());
    out.push_str(",\"provider\":");
    push_json_str(out, event.provider.as_str());
    out.push_str(",\"rule\":");
    push_json_str(out, &rule.id);
    out.push_str(",\"rule_hash\":");
    push_json_str(out, &rule.hash);
    out.push_str(",\"service\":");
    push_json_str(out, &event.service);
    out.push_str(",\"source_ip\":");
    push_json_opt_str(out, event.source_ip_text());
    out.push_str(",\"time\":\"");
    crate::time::push_timestamp(out, event.time);
    out.push_str("\",\"title\":");
    push_json_str(out, &rule.title);
    out.push('}');
}

/// One match as a JSON object (the `replay --format jsonl` line); fields in
/// alphabetical order. The access key is masked, in its field and in the
/// group key and output. What `write_match_line` writes, kept as the
/// reference its test compares with.
#[cfg(test)]
#[derive(serde::Serialize)]
struct MatchLine<'a> {
    access_key_id: Option<String>,
    account_id: Option<&'a str>,
    action: &'a str,
    call_method: crate::event::model::CallMethod,
    event_id: &'a str,
    group_key: String,
    level: crate::rules::Level,
    operations: Operations<'a>,
    origin: &'a crate::event::origin::Origin,
    outcome: crate::event::model::OutcomeResult,
    output: String,
    principal: &'a str,
    principal_kind: crate::event::model::PrincipalKind,
    provider: crate::event::model::Provider,
    rule: &'a str,
    rule_hash: &'a str,
    service: &'a str,
    source_ip: Option<&'a str>,
    time: String,
    title: &'a str,
}

/// An event's operations by name, serialized from their indexes.
#[cfg(test)]
struct Operations<'a>(&'a [u16], &'a RuleSet);

#[cfg(test)]
impl serde::Serialize for Operations<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|index| self.1.catalog.name(*index)))
    }
}

#[cfg(test)]
impl<'a> MatchLine<'a> {
    fn new(rule: &'a Rule, rule_match: &RuleMatch, event: &'a AuditEvent, rules: &'a RuleSet) -> MatchLine<'a> {
        let key = event.access_key_id();
        let masked = |text: &str| match key {
            Some(key) => mask_key_in_text(text, key),
            None => text.to_string(),
        };
        MatchLine {
            access_key_id: key.map(mask_access_key),
            account_id: event.account_id.as_deref(),
            action: &event.action,
            call_method: event.call_method,
            event_id: &event.event_id,
            group_key: mask_group_key(&masked(&rule_match.group_key)),
            level: rule.level,
            operations: Operations(&event.operations, rules),
            origin: &event.origin,
            outcome: event.outcome.result,
            output: masked(&rule_match.output),
            principal: event.principal_display(),
            principal_kind: event.principal.kind,
            provider: event.provider,
            rule: &rule.id,
            rule_hash: &rule.hash,
            service: &event.service,
            source_ip: event.source_ip_text(),
            time: crate::alarm::store::timestamp(event.time),
            title: &rule.title,
        }
    }
}

/// `trailwarden replay`.
pub struct ReplayRequest {
    pub paths: Vec<String>,
    pub format: MatchFormat,
    /// Aggregate into this store (else a throw-away in-memory one).
    pub db: Option<PathBuf>,
}

pub fn replay(settings: &Settings, mut request: ReplayRequest) -> Result<PipelineReport, AppError> {
    // Buckets (`s3://bucket/prefix`) are copied to a temporary directory first.
    let _fetched = fetch_buckets(&mut request.paths)?;
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
                durable: false,
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
        line: String::new(),
    };
    let mut pipeline_options = pipeline_options(settings, false);
    // A throw-away store's events could never be searched.
    pipeline_options.activity.events.enabled &= request.db.is_some();
    let pipeline = Pipeline::start(
        shared_rules(rules),
        store,
        pipeline_options,
        Box::new(sink),
        PipelineHooks::default(),
    );
    let sender = pipeline.sender();
    let mut send = |batch: ChunkBatch| sender.send(batch).map_err(|_| Stopped);
    let progress = {
        let stats = pipeline.stats.clone();
        crate::terminal::Progress::start(move |elapsed| progress_line("replay", &stats.snapshot(), elapsed))
    };
    read_paths_merged(&request.paths, &merge_options(settings, false), &mut send)?;
    drop(sender);
    let report = pipeline.finish();
    drop(progress);
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

/// The status line of a long run (`replay`, `backfill`) on a terminal.
pub fn progress_line(what: &str, stats: &crate::pipeline::StatsSnapshot, elapsed: std::time::Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(0.001);
    format!(
        "{what}: {} records, {} events, {} malformed, {} matches, {:.1} MB read, {:.0} s, {:.0} events/s",
        stats.records,
        stats.events,
        stats.malformed,
        stats.matches,
        stats.bytes as f64 / 1_000_000.0,
        elapsed.as_secs_f64(),
        stats.events as f64 / seconds
    )
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

/// `trailwarden rules cost`: read and normalize `paths` (unreadable
/// records are counted, not timed), then time each rule of the rule set
/// (`rules.dir`, or `dir`) on the events (`rules::cost`).
pub fn rule_costs(
    settings: &Settings,
    dir: Option<&Path>,
    paths: &[String],
) -> Result<(crate::rules::cost::CostReport, u64), AppError> {
    let rules = load_rule_set(settings, dir)?;
    let mut events = Vec::new();
    let mut malformed = 0u64;
    normalize_files_within(
        paths,
        &crate::options::read_options(settings),
        settings.naive_time_offset,
        &settings.time_window,
        &rules.catalog,
        &mut |event| {
            events.push(event);
            true
        },
        &mut |_| malformed += 1,
    )?;
    let limits = crate::options::pipeline_options(settings, false).state_limits;
    Ok((crate::rules::cost::measure(&rules, events, limits), malformed))
}

/// Fail early, before any work, when a path does not exist.
/// Copy every `s3://` path's objects into one temporary directory (removed
/// when the returned guard is dropped) and read that instead.
fn fetch_buckets(paths: &mut [String]) -> Result<Option<tempfile::TempDir>, AppError> {
    if !paths.iter().any(|path| path.starts_with("s3://")) {
        return Ok(None);
    }
    let dir = tempfile::tempdir().map_err(|source| AppError::Io {
        context: "making a directory for the bucket's objects".into(),
        source,
    })?;
    for (index, path) in paths.iter_mut().enumerate() {
        if path.starts_with("s3://") {
            let target = dir.path().join(index.to_string());
            let local = crate::source::object::fetch_url(path, &target).map_err(AppError::Usage)?;
            *path = local.display().to_string();
        }
    }
    Ok(Some(dir))
}

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

#[cfg(test)]
mod match_line_tests {
    use super::*;
    use crate::rules::EvalScratch;

    /// Every match of the shipped pack on the Panther CloudTrail records and
    /// generated records of the three clouds prints as the serde form of `MatchLine` does.
    #[test]
    fn match_lines_are_written_as_serde_writes_them() {
        let rules =
            crate::rules::load::load_rules(std::path::Path::new("rules"), &Default::default()).expect("the pack loads");
        let mut text = std::fs::read_to_string("../shared/datasets/cloudtrail-panther-tests.jsonl").unwrap_or_default();
        let options = crate::synth::SynthOptions {
            events: 2_000,
            attack_every: 5,
            ..Default::default()
        };
        for record in crate::synth::generate(options) {
            text.push('\n');
            text.push_str(&record.record.to_string());
        }
        // Read as a replay reads them, from a file whose name needs escaping.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a \"quoted\" name.jsonl");
        std::fs::write(&path, text).expect("corpus written");
        let mut events = Vec::new();
        normalize_files(
            &[path.to_string_lossy().into_owned()],
            &ReadOptions::default(),
            chrono::FixedOffset::east_opt(8 * 3600).expect("offset"),
            &rules.catalog,
            &mut |event| {
                events.push(event);
                true
            },
            &mut |_| {},
        )
        .expect("read");
        let mut scratch = EvalScratch::default();
        let (mut matches, mut compared) = (Vec::new(), 0);
        for mut event in events {
            matches.clear();
            rules.evaluate(&mut event, &mut scratch, &mut matches);
            for rule_match in &matches {
                let rule = rules.rule(rule_match.rule).expect("rule");
                let mut written = String::new();
                write_match_line(&mut written, rule, rule_match, &event, &rules);
                let reference =
                    serde_json::to_string(&MatchLine::new(rule, rule_match, &event, &rules)).expect("serializes");
                assert_eq!(written, reference);
                compared += 1;
            }
        }
        assert!(compared > 100, "only {compared} matches compared");
    }
}
