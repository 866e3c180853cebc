//! The engine stage: the reorder buffer, rule evaluation with state, the
//! allowlist and aggregation; and behind it the store stage, its own thread,
//! which writes one transaction per batch (with its source progress, state
//! changes and rollups) while the engine evaluates the next, and
//! acknowledges flush barriers once everything before them is committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::scopes::{ScopedStates, pending_row};
use super::seal::Outbox;
use super::{Evaluated, EventBatch, MatchSink, PipelineOptions, RETURN_EVALUATED, StoreJob, TRANSACTION_LINGER, timed};
use crate::alarm::Aggregator;
use crate::alarm::allowlist::{Allowlist, HitCounter};
use crate::alarm::assets::AssetNetworks;
use crate::alarm::rollup::Activity;
use crate::alarm::store::{Store, StoreError, WriteBatch};
use crate::memory::{COLLECT_EVERY, Reclaimer};
use crate::metrics::Metrics;
use crate::reorder::{Held, ReorderBuffer};
use crate::rules::{EvalScratch, RuleMatch, RuleSet};
use crate::source::{KafkaOffset, PartitionChange, PartitionScope};

/// Everything the engine stage needs to evaluate released events.
struct Evaluator<'a> {
    rule_set: &'a RuleSet,
    states: &'a mut ScopedStates,
    scratch: &'a mut EvalScratch,
    matches: &'a mut Vec<RuleMatch>,
    sink: &'a mut dyn MatchSink,
    aggregator: &'a mut Aggregator,
    pending_delete: &'a mut Vec<(Arc<str>, i64)>,
    allowlist: &'a Allowlist,
    assets: &'a AssetNetworks,
    /// Backfill: count matches, raise nothing.
    learn_only: bool,
    learned: &'a mut u64,
    hits: &'a mut HitCounter,
    /// Wall-clock time of this batch (policy expiry), Unix milliseconds.
    now_ms: i64,
    activity: &'a mut Activity,
    /// Events evaluated, to be handed back to the normalizer (`Evaluated`).
    evaluated: &'a mut Evaluated,
    evaluated_sender: &'a std::sync::mpsc::Sender<Evaluated>,
    /// Timestamps of the Kafka messages whose events this transaction evaluates.
    appended: &'a mut Vec<i64>,
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
            self.pending_delete
                .push((self.states.scope_of(&event.origin), seq as i64));
        }
        if let crate::event::origin::Position::Message {
            appended_ms: Some(appended_ms),
            ..
        } = event.origin.position
        {
            self.appended.push(appended_ms);
        }
        self.matches.clear();
        self.assets.mark(&mut event);
        let state = self.states.state_for(&event);
        self.rule_set
            .evaluate_with_state(&mut event, state, self.scratch, self.matches);
        if self.learn_only {
            *self.learned += self.matches.len() as u64;
            self.matches.clear();
        }
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
        if self.evaluated.len() >= RETURN_EVALUATED {
            // Handed back as soon as there are enough: a vector that grew
            // with a whole batch of events took fresh pages from the kernel
            // at every doubling (a quarter of the engine's time, zeroing
            // them). A normalizer that is gone leaves them to be dropped here.
            let full = std::mem::replace(self.evaluated, Vec::with_capacity(RETURN_EVALUATED));
            let _ = self.evaluated_sender.send(full);
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn engine_stage(
    mut receiver: super::ordered::OrderedReceiver<EventBatch>,
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
    aggregator.keep_operations(options.keep_operations);
    let mut activity = Activity::new(options.activity.clone());
    if options.activity.rollups {
        store.load_activity(&mut activity)?;
    }
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
    let mut states = ScopedStates::open(
        &store,
        options.state_limits.clone(),
        &mut buffer,
        options.naive_time_offset,
    )?;
    let store_path = store.path().to_path_buf();
    // The version is read before the policies, so a change committed in
    // between is picked up at the next batch rather than missed.
    let data_version = store.data_version()?;
    let mut allowlist = load_allowlist(&store).unwrap_or_default();
    let mut assets = load_assets(&store).unwrap_or_default();
    let mut hits = HitCounter::default();
    let mut learned = 0u64;
    let mut closed = false;
    let mut reclaimer = Reclaimer::default();
    // Events written to `pending_events` (held across a commit), and time
    // spent waiting for input, for the debug log.
    let mut pending_written = 0u64;
    let mut waited = Duration::ZERO;
    if options.chain_log_interval.is_some() {
        log_chain_head(&store);
    }
    // The store stage: at most one transaction queued behind the one being
    // written, so a slow disk holds the engine back rather than memory growing.
    let (job_sender, job_receiver) = std::sync::mpsc::sync_channel::<StoreJob>(1);
    // With the event store on, a sealing stage between the two compresses
    // each event block as it fills (`seal.rs`), so the store's thread spends
    // its time in SQLite and on the disk.
    let (outbox, sealer_thread) = if options.activity.events.enabled {
        let (outbox, thread) = super::seal::spawn(job_sender);
        (outbox, Some(thread))
    } else {
        (Outbox::Direct(job_sender), None)
    };
    if let Some(outlet) = outbox.block_outlet() {
        activity.set_block_outlet(outlet);
    }
    let (reply_sender, replies) = std::sync::mpsc::channel::<StoreReply>();
    // Transactions handed to the store stage and not yet written: while it
    // is busy, the engine lingers for more events (group commit).
    let store_busy = Arc::new(AtomicUsize::new(0));
    if let Err(error) = store.checkpoint_in_background() {
        tracing::warn!(%error, "the store's checkpoints stay on its writer (no background checkpointer)");
    }
    let store_thread = {
        let stage = StoreStage {
            store,
            data_version,
            retries: options.store_retries,
            chain_log_interval: options.chain_log_interval,
            metrics: metrics.clone(),
            committed_offsets,
            replies: reply_sender,
            busy: store_busy.clone(),
        };
        std::thread::Builder::new()
            .name("tw-store".into())
            .spawn(move || stage.run(job_receiver))
            .expect("spawning a thread")
    };
    let stopped = |thread: std::thread::JoinHandle<Result<(), StoreError>>| {
        if let Some(sealer) = sealer_thread
            && let Err(panic) = sealer.join()
        {
            std::panic::resume_unwind(panic);
        }
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    };
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
        while let Ok(reply) = replies.try_recv() {
            match reply {
                StoreReply::Written(mut batch) => activity.recycle(&mut batch),
                StoreReply::Changed(reloaded, reloaded_assets) => {
                    aggregator.forget_samples();
                    if let Some(reloaded) = reloaded {
                        allowlist = reloaded;
                    }
                    if let Some(reloaded) = reloaded_assets {
                        assets = reloaded;
                    }
                }
            }
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        activity.use_rules(&rule_set);
        let mut write = WriteBatch::default();
        let mut events_in_transaction = 0usize;
        let mut flush_acks: Vec<SyncSender<()>> = Vec::new();
        let mut revoked: Vec<PartitionScope> = Vec::new();
        let mut oldest_batch: Option<Instant> = None;
        let mut next = first;
        let mut evaluated: Evaluated = Vec::with_capacity(RETURN_EVALUATED);
        let mut appended = Vec::new();
        let linger_until = Instant::now() + TRANSACTION_LINGER;
        // A replay fills its transactions to the largest size at once:
        // nobody waits for its alarms, and every alarm, call record and
        // rollup row a transaction touches is written and sealed once.
        let transaction_size = match options.fill_transactions {
            true => options.max_transaction_events,
            false => options.batch_events,
        };
        {
            // The evaluator borrows the state and the write batch until the releases are done.
            let mut evaluator = Evaluator {
                rule_set: &rule_set,
                states: &mut states,
                scratch: &mut scratch,
                matches: &mut matches,
                sink: sink.as_mut(),
                aggregator: &mut aggregator,
                pending_delete: &mut write.pending_delete,
                allowlist: &allowlist,
                assets: &assets,
                learn_only: options.learn_only,
                learned: &mut learned,
                hits: &mut hits,
                now_ms,
                activity: &mut activity,
                evaluated: &mut evaluated,
                evaluated_sender: &evaluated_sender,
                appended: &mut appended,
            };
            while let Some(mut batch) = next.take() {
                events_in_transaction += batch.events.len();
                reclaimer.note(batch.sizes.iter().map(|size| u64::from(*size)).sum());
                let mut floors = batch.floors.iter().peekable();
                // One clock read per batch: `max_hold` is seconds, a batch milliseconds.
                let batch_now = Instant::now();
                for (index, event) in batch.events.drain(..).enumerate() {
                    // A floor holds once the part of the batch it came with is in.
                    while let Some((_, floor)) = floors.next_if(|(end, _)| (*end as usize) <= index) {
                        buffer.set_floor(*floor);
                    }
                    let size = batch.sizes.get(index).copied().unwrap_or(0) as usize;
                    if let Some(held) = buffer.push_or_pass(event, size) {
                        evaluator.release(held);
                    }
                    // Release as we go, so memory holds only the lateness window.
                    while let Some((held, _)) = buffer.pop_ready(batch_now) {
                        evaluator.release(held);
                    }
                }
                for (_, floor) in floors {
                    buffer.set_floor(*floor);
                }
                while let Some((held, _)) = buffer.pop_ready(Instant::now()) {
                    evaluator.release(held);
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
                match batch.partitions.take() {
                    Some(PartitionChange::Assigned(scopes)) => {
                        // What the store stage is writing must be in before
                        // the partitions' rows are read.
                        while store_busy.load(Ordering::Acquire) > 0 && !store_thread.is_finished() {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        if let Err(error) =
                            evaluator
                                .states
                                .assign(&scopes, &store_path, &mut buffer, options.naive_time_offset)
                        {
                            tracing::error!(%error, "cannot load the engine state of the assigned partitions; stopping");
                            outbox.close();
                            let _ = stopped(store_thread);
                            return Err(error);
                        }
                    }
                    Some(PartitionChange::Revoked(scopes)) => revoked.extend(scopes),
                    None => {}
                }
                if let Some(ack) = batch.flush.take() {
                    // A barrier: commit now, acknowledge after the commit.
                    flush_acks.push(ack);
                } else if events_in_transaction < transaction_size {
                    next = match receiver.try_recv() {
                        Ok(batch) => Some(batch),
                        // A replay waits for a quarter-full transaction:
                        // nobody is waiting for its alarms, and a directory
                        // of small files would otherwise commit a transaction
                        // per file or two (each rewriting the same rollup
                        // rows); past a quarter, committing while the source
                        // catches up uses time that waiting would waste.
                        Err(TryRecvError::Empty)
                            if options.fill_transactions && events_in_transaction < transaction_size / 4 =>
                        {
                            match timed(&mut waited, || receiver.recv()) {
                                Ok(batch) => Some(batch),
                                Err(_) => {
                                    closed = true;
                                    None
                                }
                            }
                        }
                        // The daemon commits at once when the store stage is
                        // idle, and otherwise waits for more events until the
                        // store is free again, or for TRANSACTION_LINGER from
                        // the transaction's first batch (group commit): during
                        // a backlog each commit, an fsync, covers many batches,
                        // and a quiet stream is not held back.
                        Err(TryRecvError::Empty) => linger(&mut receiver, &store_busy, Some(linger_until), &mut closed),
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            None
                        }
                    };
                } else if events_in_transaction < options.max_transaction_events
                    && store_busy.load(Ordering::Acquire) > 0
                {
                    // Full, but the store stage is still writing the
                    // previous transaction: sending this one would only
                    // queue it. Grow it instead until the store is free (a
                    // backlog is then written in fewer, larger transactions:
                    // each alarm, call record and rollup row a transaction
                    // touches is written and sealed once).
                    next = linger(&mut receiver, &store_busy, None, &mut closed);
                }
            }
            while let Some((held, _)) = buffer.pop_ready(Instant::now()) {
                evaluator.release(held);
            }
            if closed && !options.hand_over_at_close {
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
                write
                    .pending_insert
                    .push(pending_row(held, states.scope_of(&held.event.origin)));
            }
        }
        states.take_changes(&mut write);
        if !write.state.is_empty() || !write.pending_insert.is_empty() || !write.pending_delete.is_empty() {
            write.meta = vec![
                ("max_time_ms", buffer.max_time_ms),
                ("last_released_ms", buffer.last_released_ms),
                ("high_water_ms", states.high_water_ms()),
            ];
        }
        if !revoked.is_empty() {
            // Their changes and held events are in this transaction, the
            // revocation's barrier: the partitions' next owner loads them.
            states.revoke(&revoked, &mut buffer);
            revoked.clear();
        }
        stats.matches.fetch_add(aggregator.match_count(), Ordering::Relaxed);
        stats.learned.fetch_add(std::mem::take(&mut learned), Ordering::Relaxed);
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
        stats.state_entries.store(states.entries() as u64, Ordering::Relaxed);
        stats.state_evictions.store(states.evictions(), Ordering::Relaxed);
        write.alarms = aggregator.drain();
        write.activity = activity.take(closed);
        if write.is_empty() && flush_acks.is_empty() && appended.is_empty() {
            continue;
        }
        // A barrier with nothing to write still waits for the transactions
        // queued before it.
        let job = StoreJob {
            write,
            flush_acks,
            oldest_batch,
            appended,
        };
        store_busy.fetch_add(1, Ordering::AcqRel);
        if !outbox.send(job) {
            // The store stage stopped on an error it has logged.
            outbox.close();
            return stopped(store_thread);
        }
        sink.on_commit();
    }
    outbox.close();
    stopped(store_thread)?;
    tracing::debug!(
        transactions = stats.transactions.load(Ordering::Relaxed),
        pending_written,
        waited_ms = waited.as_millis() as u64,
        "engine done"
    );
    Ok(())
}

/// The next batch of a transaction in the daemon, waiting while the store
/// stage is busy and until `linger_until` (without it: for as long as the
/// store is busy); `None` when it is time to commit.
fn linger(
    receiver: &mut super::ordered::OrderedReceiver<EventBatch>,
    store_busy: &AtomicUsize,
    linger_until: Option<Instant>,
    closed: &mut bool,
) -> Option<EventBatch> {
    // How often a lingering engine looks whether the store became free.
    const LOOK_EVERY: Duration = Duration::from_millis(1);
    loop {
        let left = linger_until.map_or(LOOK_EVERY, |until| until.saturating_duration_since(Instant::now()));
        if store_busy.load(Ordering::Acquire) == 0 || left.is_zero() {
            return None;
        }
        match receiver.recv_timeout(left.min(LOOK_EVERY)) {
            Ok(batch) => return Some(batch),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                *closed = true;
                return None;
            }
        }
    }
}

/// What the store stage tells the engine.
enum StoreReply {
    /// A written batch's rollup rows, emptied, to hold the next batch's.
    Written(crate::alarm::rollup::ActivityBatch),
    /// Another connection (the CLI, the API) committed: samples may be
    /// missing again and the policies may have changed (the allowlist as
    /// it is now; `None` when it could not be read: keep the one loaded).
    Changed(Option<Allowlist>, Option<AssetNetworks>),
}

/// The store stage: owns the store's write connection.
struct StoreStage {
    store: Store,
    /// `PRAGMA data_version` when the engine last loaded the policies.
    data_version: i64,
    retries: u32,
    chain_log_interval: Option<Duration>,
    metrics: Arc<Metrics>,
    committed_offsets: Option<std::sync::mpsc::Sender<Vec<KafkaOffset>>>,
    replies: std::sync::mpsc::Sender<StoreReply>,
    /// Jobs the engine sent and this stage has not finished.
    busy: Arc<AtomicUsize>,
}

impl StoreStage {
    fn run(mut self, jobs: std::sync::mpsc::Receiver<StoreJob>) -> Result<(), StoreError> {
        let stats = self.metrics.stats.clone();
        let mut touched: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
        let mut chain_logged = Instant::now();
        let mut lags = crate::metrics::LagRecorder::default();
        let mut writes = crate::metrics::LagRecorder::default();
        let mut unreachable_logged: Option<Instant> = None;
        loop {
            // Woken at least every COLLECT_EVERY, to notice other connections'
            // commits while no events come.
            let job = match jobs.recv_timeout(COLLECT_EVERY) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Some(StoreJob {
                mut write,
                flush_acks,
                oldest_batch,
                appended,
            }) = job
            {
                if !write.is_empty() {
                    let writing = Instant::now();
                    let outcome = super::retry::write_with_retry(&mut self.store, &write, self.retries, &self.metrics)?;
                    let took = writing.elapsed();
                    self.metrics.store_write_seconds.observe(took.as_secs_f64());
                    writes.record(took.as_millis() as i64);
                    if let Some(started) = oldest_batch {
                        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
                    }
                    if let Some(committed) = &self.committed_offsets
                        && !write.kafka_offsets.is_empty()
                    {
                        let _ = committed.send(std::mem::take(&mut write.kafka_offsets));
                    }
                    stats.transactions.fetch_add(1, Ordering::Relaxed);
                    stats
                        .alarms_created
                        .fetch_add(outcome.alarms_created, Ordering::Relaxed);
                    for (level, created) in crate::rules::Level::ALL.iter().zip(outcome.created_by_level) {
                        if created > 0 {
                            self.metrics
                                .alarms_opened
                                .get_or_create(&vec![("level", level.as_str())])
                                .inc_by(created);
                        }
                    }
                    for update in &write.alarms {
                        touched.insert((update.rule_id.clone(), update.group_key.clone()));
                    }
                    stats.alarms_touched.store(touched.len() as u64, Ordering::Relaxed);
                    if let Some(interval) = self.chain_log_interval
                        && chain_logged.elapsed() >= interval
                    {
                        chain_logged = Instant::now();
                        log_chain_head(&self.store);
                    }
                    let _ = self
                        .replies
                        .send(StoreReply::Written(std::mem::take(&mut write.activity)));
                }
                if !appended.is_empty() {
                    // Committed (or had nothing to write): each event's alarm, if
                    // any, is in the store now.
                    let now_ms = chrono::Utc::now().timestamp_millis();
                    for appended_ms in appended {
                        let lag_ms = now_ms.saturating_sub(appended_ms).max(0);
                        lags.record(lag_ms);
                        self.metrics.append_to_commit_seconds.observe(lag_ms as f64 / 1000.0);
                    }
                }
                for ack in flush_acks {
                    let _ = ack.send(());
                }
                self.busy.fetch_sub(1, Ordering::AcqRel);
            }
            // Another connection's changes. A shared server restarting or out
            // of reach is not a reason to stop: it is asked again next round
            // (the write above waits for it the same way).
            let version = match self.store.data_version() {
                Ok(version) => version,
                Err(error) if error.is_transient_database() => {
                    if unreachable_logged.is_none_or(|at: Instant| at.elapsed() >= Duration::from_secs(30)) {
                        unreachable_logged = Some(Instant::now());
                        tracing::warn!(%error, "cannot check the store for other connections' changes; trying again");
                    }
                    continue;
                }
                Err(error) => return Err(error),
            };
            if version != self.data_version {
                self.data_version = version;
                let _ = self.replies.send(StoreReply::Changed(
                    load_allowlist(&self.store),
                    load_assets(&self.store),
                ));
            }
        }
        if self.chain_log_interval.is_some() {
            log_chain_head(&self.store);
        }
        lags.log("kafka append to commit");
        // Beside the Kafka figures: how much of them the store accounts for.
        if lags.total() > 0 {
            writes.log("store write and commit");
        }
        Ok(())
    }
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
/// Read what the engine applies from the store (`what` names it in logs);
/// `None` when it cannot be read: the caller keeps what it loaded before.
fn load_logged<T, E: std::fmt::Display>(what: &str, loaded: Result<T, E>, size: impl Fn(&T) -> usize) -> Option<T> {
    match loaded {
        Ok(value) => {
            tracing::debug!(entries = size(&value), "{what} loaded");
            Some(value)
        }
        Err(error) => {
            tracing::error!(%error, "cannot load the {what}; keeping the ones loaded before");
            None
        }
    }
}

fn load_assets(store: &Store) -> Option<AssetNetworks> {
    load_logged("assets", read_with(store, AssetNetworks::load), AssetNetworks::len)
}

fn load_allowlist(store: &Store) -> Option<Allowlist> {
    load_logged("allowlist policies", read_with(store, Allowlist::load), Allowlist::len)
}

/// Read through `load` on the store's database; either failure as text.
fn read_with<T, E: std::fmt::Display>(
    store: &Store,
    load: impl FnOnce(&mut dyn crate::db::Db) -> Result<T, E>,
) -> Result<T, String> {
    store
        .read(|db| Ok::<_, crate::alarm::store::StoreError>(load(db).map_err(|error| error.to_string())))
        .map_err(|error| error.to_string())
        .and_then(|loaded| loaded)
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
