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
//! A batch's source progress (file checkpoints, Kafka offsets) commits in the
//! same transaction as its effects; a batch can carry a flush barrier, which
//! the engine acknowledges once everything before it is committed.
//! The engine loads the current rule set once per batch (hot reload swaps it
//! between batches, so no event is evaluated twice or skipped). It also checks
//! once per batch whether another connection changed the store (`PRAGMA
//! data_version`) and then reloads the allowlist policies; a match an active
//! policy allows is counted on the policy (in the same transaction) instead
//! of reaching the aggregator or the sink.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::alarm::Aggregator;
use crate::alarm::allowlist::{Allowlist, HitCounter};
use crate::alarm::rollup::{Activity, ActivityOptions};
use crate::alarm::store::{PendingRow, StateChanges, Store, StoreError, WriteBatch};
use crate::event::decode::{DeadLetter, Decoded};
use crate::event::model::AuditEvent;
use crate::event::normalize::{NormalizeContext, normalize};
use crate::event::window::TimeWindow;
use crate::memory::{COLLECT_EVERY, Reclaimer};
use crate::metrics::Metrics;
use crate::reorder::{Held, ReorderBuffer};
use crate::rules::state::{EngineState, StateLimits};
use crate::rules::{EvalScratch, Rule, RuleMatch, RuleSet};
use crate::source::{Chunk, ChunkBatch, FileCheckpoint, KafkaOffset};

pub use crate::metrics::{Stats, StatsSnapshot};

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
    /// Largest sample in bytes of JSON; longer values are cut with a marker.
    pub max_sample_bytes: usize,
    /// Zone for Tencent's zone-less times.
    pub naive_time_offset: chrono::FixedOffset,
    /// Believable event times; records outside are dead letters.
    pub time_window: TimeWindow,
    /// How often a failing store write is retried before the pipeline stops.
    pub store_retries: u32,
    /// Events are evaluated in event-time order within this lateness.
    pub allowed_lateness: Duration,
    /// Daemon only: the longest an event waits for the watermark, in wall-clock time.
    pub max_hold: Option<Duration>,
    /// Daemon: events waiting in the reorder buffer are written with each
    /// transaction, so a restart resumes them. Replay: not needed.
    pub persist_pending: bool,
    /// Replay: a transaction waits for `batch_events` events (or the end of
    /// input) instead of committing whatever has arrived.
    pub fill_transactions: bool,
    /// Most events held for reordering; past it the oldest go early.
    pub max_buffered_events: usize,
    /// Most memory (estimated, see `memory_estimate`) held for reordering; past it the oldest go early.
    pub max_buffered_bytes: usize,
    pub state_limits: StateLimits,
    /// Daemon: log the hash chain's head this often (for anchoring elsewhere).
    pub chain_log_interval: Option<Duration>,
    /// Hourly rollups and key-operation traces.
    pub activity: ActivityOptions,
}

impl Default for PipelineOptions {
    fn default() -> PipelineOptions {
        PipelineOptions {
            batch_events: 2000,
            channel_batches: 8,
            samples_per_alarm: 10,
            max_sample_bytes: 32 << 10,
            naive_time_offset: chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset"),
            time_window: TimeWindow::default(),
            store_retries: 5,
            allowed_lateness: Duration::from_secs(300),
            max_hold: None,
            persist_pending: true,
            fill_transactions: false,
            max_buffered_events: 100_000,
            max_buffered_bytes: 256 << 20,
            state_limits: StateLimits::default(),
            chain_log_interval: None,
            activity: ActivityOptions::default(),
        }
    }
}

/// Called for each chunk that produced dead letters, with the number of
/// events it still produced (the Kafka source copies such messages to its
/// dead-letter topic).
pub type DeadLetterHook = Box<dyn FnMut(&Chunk, &[DeadLetter], usize) + Send>;

/// Optional connections between the pipeline and the rest of the daemon.
#[derive(Default)]
pub struct PipelineHooks {
    /// Where the counters go (a new registry when not given).
    pub metrics: Option<Arc<Metrics>>,
    /// Receives the Kafka offsets of every committed transaction.
    pub committed_offsets: Option<std::sync::mpsc::Sender<Vec<KafkaOffset>>>,
    pub on_dead_letters: Option<DeadLetterHook>,
}

/// Memory a parsed record costs per object member or array item, besides
/// its text: tree nodes, map entries, the normalized event's own fields.
/// Measured with every event held in the reorder buffer (peak RSS over
/// events): 9.9 KB for records of 1.4 KB with 86 members and items, 131 KB
/// for records of 13.8 KB with 1 043 — both within 10 % of text + 112 × nodes.
const NODE_BYTES: usize = 112;

/// What the events of a chunk (`bytes`, with `nodes` when the framer counted
/// them) will cost in memory once normalized, estimated from its JSON
/// without parsing it again.
fn memory_estimate(bytes: &[u8], nodes: Option<u32>) -> usize {
    let nodes = match nodes {
        Some(nodes) => nodes as usize,
        // Kafka payloads are not framed: count (a `:` or `,` inside a string
        // is counted too, which only errs on the safe side).
        None => bytes.iter().filter(|byte| matches!(byte, b':' | b',')).count() + 1,
    };
    bytes.len().saturating_add(nodes.saturating_mul(NODE_BYTES))
}

/// Run `wait` (a blocking receive), adding the time it took to `total`.
fn timed<T>(total: &mut Duration, wait: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = wait();
    *total += started.elapsed();
    result
}

/// Evaluated events handed back to the normalizer at a time (`Evaluated`).
const RETURN_EVALUATED: usize = 256;

/// How long the daemon's engine waits for more events before committing a
/// transaction that is not full: what it adds to an alarm's latency, at
/// most, against one commit (one fsync) per source batch during a backlog.
const TRANSACTION_LINGER: Duration = Duration::from_millis(20);

/// Events of one chunk batch, normalized.
struct EventBatch {
    events: Vec<AuditEvent>,
    /// Estimated memory of each event (its chunk's `memory_estimate`, shared
    /// among the chunk's events): what the reorder buffer's byte cap counts.
    sizes: Vec<u32>,
    /// The source's floors (see `ChunkBatch::floors`), by number of events
    /// instead of chunks.
    floors: Vec<(u32, i64)>,
    dead_letters: Vec<DeadLetter>,
    checkpoints: Vec<FileCheckpoint>,
    kafka_offsets: Vec<KafkaOffset>,
    flush: Option<SyncSender<()>>,
    started: Option<Instant>,
}

/// A running pipeline. Send chunk batches with `sender()`, then `finish()`.
pub struct Pipeline {
    sender: Option<SyncSender<ChunkBatch>>,
    normalizer: Option<JoinHandle<()>>,
    engine: Option<JoinHandle<Result<(), StoreError>>>,
    pub stats: Arc<Stats>,
    pub metrics: Arc<Metrics>,
    started: Instant,
    /// True while the engine thread runs (cleared when it returns or panics):
    /// the API's readiness check reads it.
    engine_alive: Arc<AtomicBool>,
}

/// Clears the engine's liveness flag when the engine thread ends, however it ends.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
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
        hooks: PipelineHooks,
    ) -> Pipeline {
        let metrics = hooks.metrics.unwrap_or_default();
        let stats = metrics.stats.clone();
        let (chunk_sender, chunk_receiver) = sync_channel::<ChunkBatch>(options.channel_batches);
        let (event_sender, event_receiver) = sync_channel::<EventBatch>(options.channel_batches);
        // Evaluated events go back to the normalizer to be dropped there (see `Evaluated`).
        let (evaluated_sender, evaluated_receiver) = std::sync::mpsc::channel::<Evaluated>();
        let normalizer = {
            let stats = stats.clone();
            let offset = options.naive_time_offset;
            let window = options.time_window;
            let hook = hooks.on_dead_letters;
            std::thread::Builder::new()
                .name("tw-normalize".into())
                .spawn(move || {
                    normalize_stage(
                        chunk_receiver,
                        event_sender,
                        evaluated_receiver,
                        stats,
                        offset,
                        window,
                        hook,
                    )
                })
                .expect("spawning a thread")
        };
        let engine_alive = Arc::new(AtomicBool::new(true));
        let engine = {
            let metrics = metrics.clone();
            let committed = hooks.committed_offsets;
            let guard = AliveGuard(engine_alive.clone());
            std::thread::Builder::new()
                .name("tw-engine".into())
                .spawn(move || {
                    let _guard = guard;
                    engine_stage(
                        event_receiver,
                        evaluated_sender,
                        rules,
                        store,
                        options,
                        sink,
                        metrics,
                        committed,
                    )
                })
                .expect("spawning a thread")
        };
        Pipeline {
            sender: Some(chunk_sender),
            normalizer: Some(normalizer),
            engine: Some(engine),
            stats,
            metrics,
            started: Instant::now(),
            engine_alive,
        }
    }

    /// A flag that is true while the engine thread runs.
    pub fn engine_alive(&self) -> Arc<AtomicBool> {
        self.engine_alive.clone()
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

pub use crate::source::normalize_chunk;

fn normalize_stage(
    receiver: Receiver<ChunkBatch>,
    sender: SyncSender<EventBatch>,
    evaluated: Receiver<Evaluated>,
    stats: Arc<Stats>,
    naive_time_offset: chrono::FixedOffset,
    time_window: TimeWindow,
    mut on_dead_letters: Option<DeadLetterHook>,
) {
    let mut log = DeadLetterLog {
        per_source: HashMap::new(),
    };
    let mut decoded = Decoded::default();
    let mut reclaimer = Reclaimer::default();
    loop {
        // The events the engine is done with are freed here, where they
        // were allocated.
        while let Ok(events) = evaluated.try_recv() {
            drop(events);
        }
        let batch = match receiver.recv_timeout(COLLECT_EVERY) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => {
                while let Ok(events) = evaluated.try_recv() {
                    drop(events);
                }
                reclaimer.idle();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut context = NormalizeContext::new(batch.ingest_time);
        context.naive_time_offset = naive_time_offset;
        let bounds = time_window.bounds(chrono::Utc::now());
        let mut out = EventBatch {
            events: Vec::with_capacity(batch.chunks.len()),
            sizes: Vec::with_capacity(batch.chunks.len()),
            floors: Vec::with_capacity(batch.floors.len()),
            dead_letters: batch.source_errors,
            checkpoints: batch.checkpoints,
            kafka_offsets: batch.kafka_offsets,
            flush: batch.flush,
            started: batch.started,
        };
        let mut bytes = 0u64;
        let mut floors = batch.floors.iter().peekable();
        for (index, chunk) in batch.chunks.iter().enumerate() {
            // Floors count chunks; the engine counts events.
            while let Some((_, floor)) = floors.next_if(|(end, _)| (*end as usize) <= index) {
                out.floors
                    .push((u32::try_from(out.events.len()).unwrap_or(u32::MAX), *floor));
            }
            bytes += chunk.bytes.len() as u64;
            let (events_before, letters_before) = (out.events.len(), out.dead_letters.len());
            context.ingest_time = chunk.ingest_time.unwrap_or(batch.ingest_time);
            normalize_chunk(
                chunk,
                &context,
                &bounds,
                &mut decoded,
                &mut |event| {
                    out.events.push(event);
                    true
                },
                &mut |letter| out.dead_letters.push(letter),
            );
            let produced = out.events.len() - events_before;
            if let Some(share) = memory_estimate(&chunk.bytes, chunk.nodes).checked_div(produced) {
                let share = u32::try_from(share).unwrap_or(u32::MAX).max(1);
                out.sizes.resize(out.events.len(), share);
            }
            if let Some(hook) = on_dead_letters.as_mut()
                && out.dead_letters.len() > letters_before
            {
                hook(
                    chunk,
                    &out.dead_letters[letters_before..],
                    out.events.len() - events_before,
                );
            }
        }
        for (_, floor) in floors {
            out.floors
                .push((u32::try_from(out.events.len()).unwrap_or(u32::MAX), *floor));
        }
        for letter in &out.dead_letters {
            log.log(letter);
        }
        reclaimer.note(bytes);
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

/// Everything the engine stage needs to evaluate released events.
struct Evaluator<'a> {
    rule_set: &'a RuleSet,
    state: &'a mut EngineState,
    scratch: &'a mut EvalScratch,
    matches: &'a mut Vec<RuleMatch>,
    sink: &'a mut dyn MatchSink,
    aggregator: &'a mut Aggregator,
    pending_delete: &'a mut Vec<i64>,
    allowlist: &'a Allowlist,
    hits: &'a mut HitCounter,
    /// Wall-clock time of this batch (policy expiry), Unix milliseconds.
    now_ms: i64,
    activity: &'a mut Activity,
    /// Events evaluated, to be handed back to the normalizer (`Evaluated`).
    evaluated: &'a mut Evaluated,
}

impl Evaluator<'_> {
    fn release(&mut self, held: Held) {
        let Held {
            mut event,
            seq,
            persisted,
            ..
        } = held;
        if persisted {
            self.pending_delete.push(seq as i64);
        }
        self.matches.clear();
        self.rule_set
            .evaluate_with_state(&mut event, self.state, self.scratch, self.matches);
        for rule_match in self.matches.iter() {
            let Some(rule) = self.rule_set.rule(rule_match.rule) else {
                continue;
            };
            if let Some(policy) = self
                .allowlist
                .allowing(&rule.id, &event, &self.rule_set.catalog, self.now_ms)
            {
                self.hits.record(
                    policy,
                    &crate::alarm::store::timestamp(event.time),
                    rule.level == crate::rules::Level::High,
                );
                continue;
            }
            self.sink.on_match(rule, rule_match, &event, self.rule_set);
            self.aggregator.add(self.rule_set, rule_match, &event);
        }
        self.activity.observe(&event, self.rule_set);
        self.evaluated.push(event);
    }
}

/// Events the engine has evaluated, sent back to the normalizer thread to
/// be dropped. An event is a tree of small allocations made by the
/// normalizer; freed by the engine, each free crosses threads (mimalloc's
/// slow path), and once events are released in time order rather than in
/// the order they were allocated (a merged directory read) those frees
/// scatter over many pages: a third of the engine's time went to dropping
/// events. The engine is the busiest stage, so it hands them back.
type Evaluated = Vec<AuditEvent>;

/// Rebuild buffered events persisted by an earlier run.
fn restore_pending(
    store: &Store,
    buffer: &mut ReorderBuffer,
    offset: chrono::FixedOffset,
) -> Result<usize, StoreError> {
    let rows = store.load_pending()?;
    let count = rows.len();
    for row in rows {
        let record = match serde_json::from_str::<serde_json::Value>(&row.raw) {
            Ok(serde_json::Value::Object(record)) => record,
            _ => {
                tracing::error!(seq = row.seq, origin = %row.origin, "a persisted buffered event is unreadable; dropped");
                continue;
            }
        };
        let Some(provider) = crate::event::model::Provider::parse(&row.provider) else {
            continue;
        };
        let time = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(row.time_ms).unwrap_or_default();
        let mut context = NormalizeContext::new(time);
        context.naive_time_offset = offset;
        let candidate = crate::event::decode::Candidate {
            provider,
            record,
            origin: crate::event::origin::Origin::new(Arc::from(row.origin.as_str()), Default::default()),
            envelope_time: None,
        };
        match normalize(candidate, &context) {
            Ok(mut event) => {
                event.time = time;
                event.time_source = crate::event::model::TimeSource::parse(&row.time_source).unwrap_or_default();
                let size = memory_estimate(row.raw.as_bytes(), None);
                buffer.push(event, size, Some(row.seq as u64));
            }
            Err(error) => {
                tracing::error!(seq = row.seq, %error, "a persisted buffered event no longer normalizes; dropped")
            }
        }
    }
    Ok(count)
}

#[allow(clippy::too_many_arguments)]
fn engine_stage(
    receiver: Receiver<EventBatch>,
    evaluated_sender: std::sync::mpsc::Sender<Evaluated>,
    rules: Arc<ArcSwap<RuleSet>>,
    mut store: Store,
    options: PipelineOptions,
    mut sink: Box<dyn MatchSink>,
    metrics: Arc<Metrics>,
    committed_offsets: Option<std::sync::mpsc::Sender<Vec<KafkaOffset>>>,
) -> Result<(), StoreError> {
    let stats = metrics.stats.clone();
    let mut scratch = EvalScratch::default();
    let mut matches: Vec<RuleMatch> = Vec::new();
    let mut aggregator = Aggregator::new(options.samples_per_alarm, options.max_sample_bytes);
    let mut activity = Activity::new(options.activity.clone());
    if options.activity.rollups {
        store.load_activity(&mut activity)?;
    }
    let mut state = EngineState::new(options.state_limits.clone());
    store.load_state(&mut state)?;
    let mut buffer = ReorderBuffer::new(
        options.allowed_lateness,
        options.max_hold,
        options.max_buffered_events,
        options.max_buffered_bytes,
    );
    if let Some(max_time) = store.meta("max_time_ms")? {
        buffer.max_time_ms = max_time;
    }
    if let Some(last) = store.meta("last_released_ms")? {
        buffer.last_released_ms = last;
    }
    let restored = restore_pending(&store, &mut buffer, options.naive_time_offset)?;
    if restored > 0 || state.entries() > 0 {
        tracing::info!(
            state_entries = state.entries(),
            buffered = restored,
            "engine state restored"
        );
    }
    // The version is read before the policies, so a change committed in
    // between is picked up at the next batch rather than missed.
    let mut data_version = store.data_version()?;
    let mut allowlist = load_allowlist(&store).unwrap_or_default();
    let mut hits = HitCounter::default();
    let mut touched: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    let mut closed = false;
    let mut reclaimer = Reclaimer::default();
    // Events written to `pending_events` (held across a commit), and time
    // spent waiting for input, for the debug log.
    let mut pending_written = 0u64;
    let mut waited = Duration::ZERO;
    let mut chain_logged = Instant::now();
    if options.chain_log_interval.is_some() {
        log_chain_head(&store);
    }
    while !closed {
        // Block for one batch (or, in the daemon, until held events are due),
        // then take whatever else is queued, up to the batch limit.
        let first = match options.max_hold {
            // Wake up at least every COLLECT_EVERY: held events come due, and
            // an idle engine returns the memory of a burst (`memory.rs`).
            Some(hold) => match receiver.recv_timeout(hold.clamp(Duration::from_millis(50), COLLECT_EVERY)) {
                Ok(batch) => Some(batch),
                Err(RecvTimeoutError::Timeout) => {
                    reclaimer.idle();
                    None
                }
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    None
                }
            },
            None => match timed(&mut waited, || receiver.recv()) {
                Ok(batch) => Some(batch),
                Err(_) => {
                    closed = true;
                    None
                }
            },
        };
        let rule_set = rules.load_full();
        let version = store.data_version()?;
        if version != data_version {
            data_version = version;
            if let Some(reloaded) = load_allowlist(&store) {
                allowlist = reloaded;
            }
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        activity.use_rules(&rule_set);
        let mut write = WriteBatch::default();
        let mut events_in_transaction = 0usize;
        let mut flush_acks: Vec<SyncSender<()>> = Vec::new();
        let mut oldest_batch: Option<Instant> = None;
        let mut next = first;
        let mut evaluated: Evaluated = Vec::new();
        {
            // The evaluator borrows the state and the write batch until the releases are done.
            let mut evaluator = Evaluator {
                rule_set: &rule_set,
                state: &mut state,
                scratch: &mut scratch,
                matches: &mut matches,
                sink: sink.as_mut(),
                aggregator: &mut aggregator,
                pending_delete: &mut write.pending_delete,
                allowlist: &allowlist,
                hits: &mut hits,
                now_ms,
                activity: &mut activity,
                evaluated: &mut evaluated,
            };
            while let Some(mut batch) = next.take() {
                events_in_transaction += batch.events.len();
                reclaimer.note(batch.sizes.iter().map(|size| u64::from(*size)).sum());
                let mut floors = batch.floors.iter().peekable();
                for (index, event) in batch.events.drain(..).enumerate() {
                    // A floor holds once the part of the batch it came with is in.
                    while let Some((_, floor)) = floors.next_if(|(end, _)| (*end as usize) <= index) {
                        buffer.set_floor(*floor);
                    }
                    let size = batch.sizes.get(index).copied().unwrap_or(0) as usize;
                    buffer.push(event, size, None);
                    // Release as we go, so memory holds only the lateness window.
                    while let Some((held, _)) = buffer.pop_ready(Instant::now()) {
                        evaluator.release(held);
                    }
                }
                for (_, floor) in floors {
                    buffer.set_floor(*floor);
                }
                while let Some((held, _)) = buffer.pop_ready(Instant::now()) {
                    evaluator.release(held);
                }
                if evaluator.evaluated.len() >= RETURN_EVALUATED {
                    // A normalizer that is gone leaves them to be dropped here.
                    let _ = evaluated_sender.send(std::mem::take(evaluator.evaluated));
                }
                write.dead_letters.append(&mut batch.dead_letters);
                for checkpoint in batch.checkpoints.drain(..) {
                    // Only the latest checkpoint per file matters.
                    write.checkpoints.retain(|existing| existing.path != checkpoint.path);
                    write.checkpoints.push(checkpoint);
                }
                for position in batch.kafka_offsets.drain(..) {
                    merge_offset(&mut write.kafka_offsets, position);
                }
                if let Some(started) = batch.started {
                    oldest_batch = Some(oldest_batch.map_or(started, |oldest| oldest.min(started)));
                }
                if let Some(ack) = batch.flush.take() {
                    // A barrier: commit now, acknowledge after the commit.
                    flush_acks.push(ack);
                } else if events_in_transaction < options.batch_events {
                    next = match receiver.try_recv() {
                        Ok(batch) => Some(batch),
                        // A replay waits for a quarter-full transaction:
                        // nobody is waiting for its alarms, and a directory
                        // of small files would otherwise commit a transaction
                        // per file or two (each rewriting the same rollup
                        // rows); past a quarter, committing while the source
                        // catches up uses time that waiting would waste.
                        Err(TryRecvError::Empty)
                            if options.fill_transactions && events_in_transaction < options.batch_events / 4 =>
                        {
                            match timed(&mut waited, || receiver.recv()) {
                                Ok(batch) => Some(batch),
                                Err(_) => {
                                    closed = true;
                                    None
                                }
                            }
                        }
                        // The daemon waits a moment for more before committing:
                        // during a backlog the next batch is a few milliseconds
                        // away, and each commit costs an fsync.
                        Err(TryRecvError::Empty) => match receiver.recv_timeout(TRANSACTION_LINGER) {
                            Ok(batch) => Some(batch),
                            Err(RecvTimeoutError::Timeout) => None,
                            Err(RecvTimeoutError::Disconnected) => {
                                closed = true;
                                None
                            }
                        },
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            None
                        }
                    };
                }
            }
            while let Some((held, _)) = buffer.pop_ready(Instant::now()) {
                evaluator.release(held);
            }
            if closed {
                for held in buffer.drain_all() {
                    evaluator.release(held);
                }
            }
        }
        if !evaluated.is_empty() {
            let _ = evaluated_sender.send(evaluated);
        }
        // Events still waiting are persisted with this transaction, so a
        // restart resumes them instead of losing or re-reading them. A
        // replay has no restart (it drains everything at its end and keeps
        // no checkpoints), and a merged read holds many events across
        // transactions: writing them would be pure cost.
        if options.persist_pending {
            for held in buffer.unpersisted() {
                pending_written += 1;
                write.pending_insert.push(PendingRow {
                    seq: held.seq as i64,
                    provider: held.event.provider.as_str().to_string(),
                    time_ms: held.event.time.timestamp_millis(),
                    time_source: held.event.time_source.as_str().to_string(),
                    origin: held.event.origin.to_string(),
                    raw: held.event.raw.to_string(),
                });
            }
        }
        write.state = StateChanges::take(&mut state);
        if !write.state.is_empty() || !write.pending_insert.is_empty() || !write.pending_delete.is_empty() {
            write.meta = vec![
                ("max_time_ms", buffer.max_time_ms),
                ("last_released_ms", buffer.last_released_ms),
                ("high_water_ms", state.high_water_ms),
            ];
        }
        stats.matches.fetch_add(aggregator.match_count(), Ordering::Relaxed);
        stats.allowlisted.fetch_add(hits.total(), Ordering::Relaxed);
        let high = hits.high();
        stats.allowlisted_high.fetch_add(high, Ordering::Relaxed);
        write.allowlist_hits = hits.drain();
        if high > 0 {
            // A policy silencing a high-level rule is never silent itself.
            let policies: Vec<String> = write
                .allowlist_hits
                .iter()
                .filter(|hit| hit.high > 0)
                .map(|hit| format!("{}×{}", hit.id, hit.high))
                .collect();
            tracing::warn!(
                matches = high,
                policies = %policies.join(", "),
                "allowlist policies suppressed matches of high-level rules (policy×matches)"
            );
        }
        stats.late_events.store(buffer.late, Ordering::Relaxed);
        stats.forced_releases.store(buffer.forced, Ordering::Relaxed);
        stats.buffered.store(buffer.len() as u64, Ordering::Relaxed);
        stats.state_entries.store(state.entries() as u64, Ordering::Relaxed);
        stats.state_evictions.store(state.evictions(), Ordering::Relaxed);
        write.alarms = aggregator.drain();
        write.activity = activity.take(closed);
        if write.is_empty() {
            for ack in flush_acks {
                let _ = ack.send(());
            }
            continue;
        }
        let outcome = write_with_retry(&mut store, &write, options.store_retries)?;
        if let Some(started) = oldest_batch {
            metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        }
        if let Some(committed) = &committed_offsets
            && !write.kafka_offsets.is_empty()
        {
            let _ = committed.send(std::mem::take(&mut write.kafka_offsets));
        }
        for ack in flush_acks {
            let _ = ack.send(());
        }
        if let Some(interval) = options.chain_log_interval
            && (chain_logged.elapsed() >= interval || closed)
        {
            chain_logged = Instant::now();
            log_chain_head(&store);
        }
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        stats
            .alarms_created
            .fetch_add(outcome.alarms_created, Ordering::Relaxed);
        for update in &write.alarms {
            touched.insert((update.rule_id.clone(), update.group_key.clone()));
        }
        stats.alarms_touched.store(touched.len() as u64, Ordering::Relaxed);
        sink.on_commit();
    }
    tracing::debug!(
        transactions = stats.transactions.load(Ordering::Relaxed),
        pending_written,
        waited_ms = waited.as_millis() as u64,
        "engine done"
    );
    Ok(())
}

/// Log the hash chain's head, so it can be anchored outside the store.
fn log_chain_head(store: &Store) {
    match store.chain_head() {
        Ok(Some((seq, hash))) => tracing::info!(head = %format!("{seq}:{hash}"), "alarm chain head"),
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "cannot read the alarm chain head"),
    }
}

/// Load the allowlist policies; on failure keep what the engine has (logged).
fn load_allowlist(store: &Store) -> Option<Allowlist> {
    match Allowlist::load(store.connection()) {
        Ok(allowlist) => {
            tracing::debug!(policies = allowlist.len(), "allowlist loaded");
            Some(allowlist)
        }
        Err(error) => {
            tracing::error!(%error, "cannot load the allowlist policies; keeping the ones loaded before");
            None
        }
    }
}

/// Keep the furthest offset per group, topic and partition.
fn merge_offset(offsets: &mut Vec<KafkaOffset>, position: KafkaOffset) {
    match offsets.iter_mut().find(|existing| {
        existing.partition == position.partition && existing.topic == position.topic && existing.group == position.group
    }) {
        Some(existing) => existing.next_offset = existing.next_offset.max(position.next_offset),
        None => offsets.push(position),
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

pub use crate::rules::{SharedRules, shared_rules};
