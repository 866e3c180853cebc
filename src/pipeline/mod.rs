//! The processing pipeline shared by the daemon and `replay`.
//!
//! ```text
//! sources ──ChunkBatch──▶ normalizer threads ──EventBatch──▶ engine+store thread
//!  (files, stdin)          decode, unwrap,         evaluate rules, aggregate alarms,
//!                          normalize, dead         one SQLite transaction per batch
//!                          letters (in parallel,   (alarms + dead letters + checkpoints)
//!                          batches numbered and
//!                          received in order)
//! ```
//! Both hops are bounded channels, so a slow store slows the sources instead
//! of growing memory. The two stages use the two cores of a small machine.
//! A batch's source progress (file checkpoints, Kafka offsets) commits in the
//! same transaction as its effects; a batch can carry a flush barrier, which
//! the engine acknowledges once everything before it is committed.
//! The engine loads the current rule set once per batch (hot reload swaps it
//! between batches, so no event is evaluated twice or skipped). It also checks
//! once per batch (and every second while idle) whether another connection
//! changed the store (`PRAGMA data_version`; on PostgreSQL the change log's
//! last id, which every policy, remark and asset change moves) and then
//! reloads the allowlist policies and assets; a match an active
//! policy allows is counted on the policy (in the same transaction) instead
//! of reaching the aggregator or the sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::alarm::rollup::ActivityOptions;
use crate::alarm::store::{Store, StoreError};
use crate::event::decode::DeadLetter;
use crate::event::model::AuditEvent;
use crate::event::window::TimeWindow;
use crate::metrics::Metrics;
use crate::rules::state::StateLimits;
use crate::rules::{Rule, RuleMatch, RuleSet};
use crate::source::{Chunk, ChunkBatch, FileCheckpoint, KafkaOffset};

mod engine;
mod normalize;
mod ordered;
mod retry;
mod scopes;
mod seal;

use engine::engine_stage;
use normalize::normalize_stage;

pub use crate::metrics::{Stats, StatsSnapshot};

/// One transaction for the store stage (from the engine, through the
/// sealing stage when the event store is on).
struct StoreJob {
    write: crate::alarm::store::WriteBatch,
    /// Flush barriers to acknowledge once it is committed.
    flush_acks: Vec<SyncSender<()>>,
    /// When the oldest batch in it was read.
    oldest_batch: Option<Instant>,
    /// Timestamps (Unix ms) of the Kafka messages whose events it evaluated.
    appended: Vec<i64>,
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
    /// Events per store transaction: one is committed once it holds this
    /// many (or sooner, see `engine_stage`).
    pub batch_events: usize,
    /// Most events per transaction: a replay fills each to it, and in the
    /// daemon a transaction past `batch_events` keeps growing while the
    /// store stage still writes the previous one, so a backlog is written
    /// in fewer, larger transactions.
    pub max_transaction_events: usize,
    /// Capacity of each inter-stage channel, in batches.
    pub channel_batches: usize,
    /// Normalizer threads (decode and normalize in parallel; the engine
    /// receives their batches in the sources' order).
    pub normalizers: usize,
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
    /// A daemon on a shared store that stops leaves the events it holds
    /// for reordering persisted, for its partitions' next owner, instead of
    /// releasing them at once.
    pub hand_over_at_close: bool,
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
    /// Backfill: rules are evaluated (state learns) but matches raise no
    /// alarm and are only counted (`Stats::learned`).
    pub learn_only: bool,
    /// Keep each match's output for topics that notify every operation.
    pub keep_operations: bool,
}

impl Default for PipelineOptions {
    fn default() -> PipelineOptions {
        PipelineOptions {
            batch_events: 2000,
            max_transaction_events: 8000,
            channel_batches: 2,
            normalizers: 2,
            samples_per_alarm: 10,
            max_sample_bytes: 32 << 10,
            naive_time_offset: chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset"),
            time_window: TimeWindow::default(),
            store_retries: 5,
            allowed_lateness: Duration::from_secs(300),
            max_hold: None,
            persist_pending: true,
            hand_over_at_close: false,
            fill_transactions: false,
            max_buffered_events: 100_000,
            max_buffered_bytes: 256 << 20,
            state_limits: StateLimits::default(),
            chain_log_interval: None,
            activity: ActivityOptions::default(),
            learn_only: false,
            keep_operations: false,
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

/// Events the engine has evaluated, sent back to the normalizer thread to
/// be dropped. An event is a tree of small allocations made by the
/// normalizer; freed by the engine, each free crosses threads (mimalloc's
/// slow path), and once events are released in time order rather than in
/// the order they were allocated (a merged directory read) those frees
/// scatter over many pages: a third of the engine's time went to dropping
/// events. The engine is the busiest stage, so it hands them back.
type Evaluated = Vec<AuditEvent>;

/// Evaluated events handed back to the normalizer at a time (`Evaluated`).
const RETURN_EVALUATED: usize = 256;

/// How long, from its first batch, the daemon's engine waits for more events
/// before committing a transaction that is not full: what it adds to an
/// alarm's latency, at most, against one commit (one fsync) per source
/// batch during a backlog.
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
    partitions: Option<crate::source::PartitionChange>,
    started: Option<Instant>,
}

/// A running pipeline. Send chunk batches with `sender()`, then `finish()`.
pub struct Pipeline {
    sender: Option<SyncSender<ChunkBatch>>,
    normalizers: Vec<JoinHandle<()>>,
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
        let (event_sender, event_receiver) = sync_channel::<(u64, EventBatch)>(options.channel_batches);
        // Evaluated events go back to the normalizers to be dropped there (see `Evaluated`).
        let (evaluated_sender, evaluated_receiver) = std::sync::mpsc::channel::<Evaluated>();
        let chunk_receiver = ordered::NumberedReceiver::new(chunk_receiver);
        let evaluated_receiver = Arc::new(std::sync::Mutex::new(evaluated_receiver));
        let on_dead_letters = Arc::new(std::sync::Mutex::new(hooks.on_dead_letters));
        let log = Arc::new(std::sync::Mutex::new(normalize::DeadLetterLog::default()));
        let normalizers = (0..options.normalizers.max(1))
            .map(|index| {
                let shared = normalize::Shared {
                    receiver: chunk_receiver.clone(),
                    sender: event_sender.clone(),
                    evaluated: evaluated_receiver.clone(),
                    stats: stats.clone(),
                    naive_time_offset: options.naive_time_offset,
                    time_window: options.time_window,
                    on_dead_letters: on_dead_letters.clone(),
                    log: log.clone(),
                };
                std::thread::Builder::new()
                    .name(format!("tw-normalize-{index}"))
                    .spawn(move || normalize_stage(shared))
                    .expect("spawning a thread")
            })
            .collect();
        drop(event_sender);
        let event_receiver = ordered::OrderedReceiver::new(event_receiver);
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
            normalizers,
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
        for handle in self.normalizers.drain(..) {
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
pub use crate::rules::{SharedRules, shared_rules};
pub use crate::source::normalize_chunk;
