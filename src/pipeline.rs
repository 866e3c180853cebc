//! The processing pipeline shared by the daemon and `replay`.
//!
//! ```text
//! sources ──ChunkBatch──▶ normalizer thread ──EventBatch──▶ engine+store thread
//!  (files, stdin)          decode, unwrap,        evaluate rules, aggregate alarms,
//!                          normalize, dead        one SQLite transaction per batch
//!                          letters                (alarms + dead letters + checkpoints)
//! ```
//! Both hops are bounded channels, so a slow store slows the sources instead
//! of growing memory. The two stages use the two cores of a small machine.
//! The engine loads the current rule set once per batch (hot reload swaps it
//! between batches, so no event is evaluated twice or skipped).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::alarm::Aggregator;
use crate::alarm::store::{Store, StoreError, WriteBatch};
use crate::event::decode::{DeadLetter, Decoded, decode_chunk};
use crate::event::model::AuditEvent;
use crate::event::normalize::{NormalizeContext, normalize};
use crate::rules::{EvalScratch, Rule, RuleMatch, RuleSet};
use crate::source::{ChunkBatch, FileCheckpoint};

/// Counters of a run, shared by the stages.
#[derive(Debug, Default)]
pub struct Stats {
    pub records: AtomicU64,
    pub events: AtomicU64,
    pub malformed: AtomicU64,
    pub matches: AtomicU64,
    pub alarms_created: AtomicU64,
    pub alarms_updated: AtomicU64,
    pub transactions: AtomicU64,
    pub bytes: AtomicU64,
}

/// A snapshot of `Stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub records: u64,
    pub events: u64,
    pub malformed: u64,
    pub matches: u64,
    pub alarms_created: u64,
    pub alarms_updated: u64,
    pub transactions: u64,
    pub bytes: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            records: self.records.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            matches: self.matches.load(Ordering::Relaxed),
            alarms_created: self.alarms_created.load(Ordering::Relaxed),
            alarms_updated: self.alarms_updated.load(Ordering::Relaxed),
            transactions: self.transactions.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// Receives every match as it is found (replay prints them; the daemon logs).
pub trait MatchSink: Send {
    fn on_match(&mut self, rule: &Rule, rule_match: &RuleMatch, event: &AuditEvent, rules: &RuleSet);
    /// Called after each committed transaction.
    fn on_commit(&mut self) {}
}

/// A sink that does nothing.
pub struct NoSink;

impl MatchSink for NoSink {
    fn on_match(&mut self, _: &Rule, _: &RuleMatch, _: &AuditEvent, _: &RuleSet) {}
}

/// Pipeline settings.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Most events per store transaction.
    pub batch_events: usize,
    /// Capacity of each inter-stage channel, in batches.
    pub channel_batches: usize,
    pub samples_per_alarm: usize,
    /// Zone for Tencent's zone-less times.
    pub naive_time_offset: chrono::FixedOffset,
    /// How often a failing store write is retried before the pipeline stops.
    pub store_retries: u32,
}

impl Default for PipelineOptions {
    fn default() -> PipelineOptions {
        PipelineOptions {
            batch_events: 2000,
            channel_batches: 8,
            samples_per_alarm: 10,
            naive_time_offset: chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset"),
            store_retries: 5,
        }
    }
}

/// Events of one chunk batch, normalized.
struct EventBatch {
    events: Vec<AuditEvent>,
    dead_letters: Vec<DeadLetter>,
    checkpoint: Option<FileCheckpoint>,
}

/// A running pipeline. Send chunk batches with `sender()`, then `finish()`.
pub struct Pipeline {
    sender: Option<SyncSender<ChunkBatch>>,
    normalizer: Option<JoinHandle<()>>,
    engine: Option<JoinHandle<Result<(), StoreError>>>,
    pub stats: Arc<Stats>,
    started: Instant,
}

/// The outcome of a finished pipeline.
#[derive(Debug)]
pub struct PipelineReport {
    pub stats: StatsSnapshot,
    pub elapsed: Duration,
    /// Set when the store failed and the pipeline stopped early.
    pub store_error: Option<StoreError>,
}

impl PipelineReport {
    pub fn events_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.stats.events as f64 / seconds
        } else {
            0.0
        }
    }
}

impl Pipeline {
    pub fn start(
        rules: Arc<ArcSwap<RuleSet>>,
        store: Store,
        options: PipelineOptions,
        sink: Box<dyn MatchSink>,
    ) -> Pipeline {
        let stats = Arc::new(Stats::default());
        let (chunk_sender, chunk_receiver) = sync_channel::<ChunkBatch>(options.channel_batches);
        let (event_sender, event_receiver) = sync_channel::<EventBatch>(options.channel_batches);
        let normalizer = {
            let stats = stats.clone();
            let offset = options.naive_time_offset;
            std::thread::Builder::new()
                .name("tw-normalize".into())
                .spawn(move || normalize_stage(chunk_receiver, event_sender, stats, offset))
                .expect("spawning a thread")
        };
        let engine = {
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("tw-engine".into())
                .spawn(move || engine_stage(event_receiver, rules, store, options, sink, stats))
                .expect("spawning a thread")
        };
        Pipeline {
            sender: Some(chunk_sender),
            normalizer: Some(normalizer),
            engine: Some(engine),
            stats,
            started: Instant::now(),
        }
    }

    /// A handle for sources. Sending fails once the pipeline has stopped.
    pub fn sender(&self) -> SyncSender<ChunkBatch> {
        self.sender.clone().expect("sender exists until finish")
    }

    /// Close intake, drain everything in flight, commit, and report.
    pub fn finish(mut self) -> PipelineReport {
        self.sender.take();
        if let Some(handle) = self.normalizer.take() {
            let _ = handle.join();
        }
        let store_error = match self.engine.take().map(JoinHandle::join) {
            Some(Ok(Ok(()))) | None => None,
            Some(Ok(Err(error))) => Some(error),
            Some(Err(_)) => Some(StoreError::Write(rusqlite::Error::InvalidQuery)),
        };
        PipelineReport {
            stats: self.stats.snapshot(),
            elapsed: self.started.elapsed(),
            store_error,
        }
    }
}

/// Logs each dead letter once, at most `LOG_PER_SOURCE` per source.
struct DeadLetterLog {
    per_source: HashMap<Arc<str>, u64>,
}

const LOG_PER_SOURCE: u64 = 20;

impl DeadLetterLog {
    fn log(&mut self, letter: &DeadLetter) {
        let count = self.per_source.entry(letter.origin.source.clone()).or_insert(0);
        *count += 1;
        if *count <= LOG_PER_SOURCE {
            tracing::warn!(origin = %letter.origin, reason = %letter.reason, "unreadable record kept in dead letters");
        }
        if *count == LOG_PER_SOURCE {
            tracing::warn!(source = %letter.origin.source, "more unreadable records in this source: logging stops, all are kept in dead letters");
        }
    }
}

fn normalize_stage(
    receiver: Receiver<ChunkBatch>,
    sender: SyncSender<EventBatch>,
    stats: Arc<Stats>,
    naive_time_offset: chrono::FixedOffset,
) {
    let mut log = DeadLetterLog {
        per_source: HashMap::new(),
    };
    let mut decoded = Decoded::default();
    while let Ok(batch) = receiver.recv() {
        let mut context = NormalizeContext::new(batch.ingest_time);
        context.naive_time_offset = naive_time_offset;
        let mut out = EventBatch {
            events: Vec::with_capacity(batch.chunks.len()),
            dead_letters: batch.source_errors,
            checkpoint: batch.checkpoint,
        };
        let mut bytes = 0u64;
        for chunk in batch.chunks {
            bytes += chunk.bytes.len() as u64;
            if chunk.oversized {
                out.dead_letters.push(DeadLetter::new(
                    chunk.origin,
                    "document larger than the configured max_document_bytes",
                    &chunk.bytes,
                ));
                continue;
            }
            decode_chunk(&chunk.bytes, &chunk.origin, &mut decoded);
            for candidate in decoded.candidates.drain(..) {
                let origin = candidate.origin.clone();
                match normalize(candidate, &context) {
                    Ok(event) => out.events.push(event),
                    Err(error) => out
                        .dead_letters
                        .push(DeadLetter::new(origin, error.to_string(), &chunk.bytes)),
                }
            }
            out.dead_letters.append(&mut decoded.dead_letters);
        }
        for letter in &out.dead_letters {
            log.log(letter);
        }
        stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        stats.events.fetch_add(out.events.len() as u64, Ordering::Relaxed);
        stats
            .malformed
            .fetch_add(out.dead_letters.len() as u64, Ordering::Relaxed);
        stats
            .records
            .fetch_add((out.events.len() + out.dead_letters.len()) as u64, Ordering::Relaxed);
        if sender.send(out).is_err() {
            return;
        }
    }
}

fn engine_stage(
    receiver: Receiver<EventBatch>,
    rules: Arc<ArcSwap<RuleSet>>,
    mut store: Store,
    options: PipelineOptions,
    mut sink: Box<dyn MatchSink>,
    stats: Arc<Stats>,
) -> Result<(), StoreError> {
    let mut scratch = EvalScratch::default();
    let mut matches: Vec<RuleMatch> = Vec::new();
    let mut aggregator = Aggregator::new(options.samples_per_alarm);
    loop {
        // Block for one batch, then take whatever else is queued, up to the limit.
        let Ok(first) = receiver.recv() else {
            return Ok(());
        };
        let rule_set = rules.load_full();
        let mut write = WriteBatch::default();
        let mut events_in_transaction = 0usize;
        let mut next = Some(first);
        while let Some(mut batch) = next.take() {
            for event in &mut batch.events {
                matches.clear();
                rule_set.evaluate(event, &mut scratch, &mut matches);
                for rule_match in &matches {
                    if let Some(rule) = rule_set.rule(rule_match.rule) {
                        sink.on_match(rule, rule_match, event, &rule_set);
                    }
                    aggregator.add(&rule_set, rule_match, event);
                }
            }
            events_in_transaction += batch.events.len();
            write.dead_letters.append(&mut batch.dead_letters);
            if let Some(checkpoint) = batch.checkpoint {
                // Only the latest checkpoint per file matters.
                write.checkpoints.retain(|existing| existing.path != checkpoint.path);
                write.checkpoints.push(checkpoint);
            }
            if events_in_transaction < options.batch_events {
                next = receiver.try_recv().ok();
            }
        }
        stats.matches.fetch_add(aggregator.match_count(), Ordering::Relaxed);
        write.alarms = aggregator.drain();
        if write.is_empty() {
            continue;
        }
        let outcome = write_with_retry(&mut store, &write, options.store_retries)?;
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        stats
            .alarms_created
            .fetch_add(outcome.alarms_created, Ordering::Relaxed);
        stats
            .alarms_updated
            .fetch_add(outcome.alarms_updated, Ordering::Relaxed);
        sink.on_commit();
    }
}

fn write_with_retry(
    store: &mut Store,
    write: &WriteBatch,
    retries: u32,
) -> Result<crate::alarm::store::WriteOutcome, StoreError> {
    let mut attempt = 0;
    loop {
        match store.write(write) {
            Ok(outcome) => return Ok(outcome),
            Err(error) if attempt < retries => {
                attempt += 1;
                let wait = Duration::from_millis(200 * 2u64.pow(attempt.min(6)));
                tracing::error!(%error, attempt, ?wait, "store write failed; retrying the same batch");
                std::thread::sleep(wait);
            }
            Err(error) => {
                tracing::error!(%error, "store write failed for good; stopping the pipeline (nothing past the last commit is marked done)");
                return Err(error);
            }
        }
    }
}

/// A shared, swappable rule set.
pub type SharedRules = Arc<ArcSwap<RuleSet>>;

/// Wrap a rule set for the pipeline.
pub fn shared_rules(rules: RuleSet) -> SharedRules {
    Arc::new(ArcSwap::from_pointee(rules))
}

/// A sink collecting matches in memory (tests and `rules test`).
#[derive(Clone, Default)]
pub struct CollectingSink {
    pub matches: Arc<Mutex<Vec<(String, String)>>>,
}

impl MatchSink for CollectingSink {
    fn on_match(&mut self, rule: &Rule, rule_match: &RuleMatch, event: &AuditEvent, _: &RuleSet) {
        if let Ok(mut matches) = self.matches.lock() {
            matches.push((rule.id.clone(), event.event_id.clone()));
        }
        let _ = rule_match;
    }
}
