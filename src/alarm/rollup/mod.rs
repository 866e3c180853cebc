//! The god view (seeds/001) and key-operation traces (seeds/002): what the
//! engine stage records about every event beside the alarms.
//!
//! Two features share one accumulator, [`Activity`], because both see every
//! evaluated event and both are written in the batch's one transaction:
//! `activity` holds the hourly rollups, the first-seen (access key, source
//! IP) pairs and the `activity` report; `traces` holds the key-operation
//! traces, their retention and the `traces` query. This module holds what
//! they share: the settings, the per-batch accumulator and the write of a
//! batch. Callers name everything through this module. The event store
//! (`alarm::events`) rides along: its block is built here, event by event,
//! and written and pruned with the rest.

mod activity;
mod pg;
#[cfg(test)]
mod tests;
mod traces;

use std::time::Duration;

use chrono::Utc;
use rusqlite::Transaction;

use crate::alarm::events::{self, BlockBuilder, BlockOutlet, EventBlock, EventStoreOptions};
use crate::event::model::AuditEvent;
use crate::rules::RuleSet;
use activity::{HourlyCounts, PairTracker};

pub use activity::{
    AccountFailures, ActivityQuery, ActivityReport, ApiActivity, HourActivity, HourlyCount, KeyIpPair,
    PrincipalActivity, SourceIpActivity, activity_report, load_pairs,
};
pub use traces::{KeyOperations, NewTrace, Trace, TraceFilter, list_traces};

/// How far past wall-clock now the newest event time may carry pruning
/// (against clock-skewed records).
const DAY_MS: i64 = 86_400_000;

/// Settings of the god view and the key-operation traces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityOptions {
    /// Hourly rollups and first-seen (key, IP) pairs.
    pub rollups: bool,
    /// Key-operation traces.
    pub traces: bool,
    /// Traces older than this (behind the newest event time) are pruned.
    pub trace_retention: Duration,
    /// Pruning runs at most once per this much event time.
    pub prune_every: Duration,
    /// Rules with this tag name the key operations.
    pub trace_tag: String,
    /// The event store (every event, for investigation).
    pub events: EventStoreOptions,
}

impl Default for ActivityOptions {
    fn default() -> ActivityOptions {
        ActivityOptions {
            rollups: true,
            traces: true,
            trace_retention: Duration::from_secs(7 * 86_400),
            prune_every: Duration::from_secs(600),
            trace_tag: "sec09-03".to_string(),
            events: EventStoreOptions::default(),
        }
    }
}

/// What one batch adds to the god view and the traces.
#[derive(Debug, Default)]
pub struct ActivityBatch {
    pub hourly: Vec<HourlyCount>,
    pub key_ips: Vec<KeyIpPair>,
    pub traces: Vec<NewTrace>,
    /// Delete traces older than this (epoch milliseconds of event time).
    pub prune_before_ms: Option<i64>,
    /// The batch's events, for the event store.
    pub events: Vec<EventBlock>,
    /// Blocks of the batch's events that went ahead to the sealing stage
    /// (`BlockBuilder::set_outlet`), which adds them to `events`.
    pub events_ahead: usize,
    /// Delete event blocks older than this (epoch milliseconds of event time).
    pub prune_events_before_ms: Option<i64>,
}

impl ActivityBatch {
    pub fn is_empty(&self) -> bool {
        self.hourly.is_empty()
            && self.key_ips.is_empty()
            && self.traces.is_empty()
            && self.prune_before_ms.is_none()
            && self.events.iter().all(EventBlock::is_empty)
            && self.events_ahead == 0
            && self.prune_events_before_ms.is_none()
    }
}

/// The engine stage's accumulator: `observe` each evaluated event, `take`
/// once per transaction.
pub struct Activity {
    options: ActivityOptions,
    key_operations: KeyOperations,
    hourly: HourlyCounts,
    pairs: PairTracker,
    traces: Vec<NewTrace>,
    /// The event store's block; `None` when it is off.
    events: Option<BlockBuilder>,
    newest_ms: Option<i64>,
    last_prune_ms: Option<i64>,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Activity {
    pub fn new(options: ActivityOptions) -> Activity {
        traces::register_raw_paths();
        Activity {
            key_operations: KeyOperations::default(),
            hourly: HourlyCounts::default(),
            pairs: PairTracker::default(),
            traces: Vec::new(),
            events: options.events.enabled.then(|| BlockBuilder::new(&options.events)),
            newest_ms: None,
            last_prune_ms: None,
            options,
        }
    }

    /// Remember a (key, IP) pair already stored (read at start).
    pub fn remember_pair(&mut self, key: &str, ip: &str, first_ms: i64) {
        self.pairs.remember(key, ip, first_ms);
    }

    /// Derive the key operations from `rules` (again only when the set changed).
    pub fn use_rules(&mut self, rules: &RuleSet) {
        if self.options.traces && self.key_operations.version != rules.version {
            self.key_operations = KeyOperations::from_rules(rules, &self.options.trace_tag);
            tracing::debug!(
                operations = ?self.key_operations.names(rules),
                "key operations for traces"
            );
        }
    }

    /// Count one evaluated event (operations already classified by `rules`).
    pub fn observe(&mut self, event: &AuditEvent, rules: &RuleSet) {
        if self.options.rollups {
            self.hourly.add(event);
            self.pairs.add(event);
        }
        if let Some(events) = &mut self.events {
            events.add(event);
        }
        if !self.options.traces && self.events.is_none() {
            return;
        }
        let time = event.time.timestamp_millis();
        let newest = self.newest_ms.map_or(time, |newest| newest.max(time));
        self.newest_ms = Some(newest);
        if self.options.traces {
            // A trace already past its retention behind the newest event (a
            // late or replayed old record) would only be written to be
            // pruned: it is not kept. The newest time counts no further than
            // a day past the clock, as for pruning; the clock is read only
            // for an event old enough to be in question.
            let retention = millis(self.options.trace_retention);
            let expired = time < newest.saturating_sub(retention)
                && time
                    < newest
                        .min(Utc::now().timestamp_millis().saturating_add(DAY_MS))
                        .saturating_sub(retention);
            if !expired && self.key_operations.any(&event.operations) {
                self.traces.push(Trace::of(event, rules));
            }
        }
    }

    /// Everything observed since the last call; `last` forces a prune.
    pub fn take(&mut self, last: bool) -> ActivityBatch {
        let (prune_before_ms, prune_events_before_ms) = self.prune_due(last, Utc::now().timestamp_millis());
        let (events, events_ahead) = match &mut self.events {
            Some(builder) => (builder.take(), builder.take_sent()),
            None => (Vec::new(), 0),
        };
        ActivityBatch {
            hourly: self.hourly.take(),
            key_ips: self.pairs.take(),
            traces: std::mem::take(&mut self.traces),
            prune_before_ms,
            events,
            events_ahead,
            prune_events_before_ms,
        }
    }

    /// Send the event store's blocks to `outlet` as they fill (see
    /// `BlockBuilder::set_outlet`); nothing when the event store is off.
    pub fn set_block_outlet(&mut self, outlet: BlockOutlet) {
        if let Some(events) = &mut self.events {
            events.set_outlet(outlet);
        }
    }

    /// Take back a written batch's rows, emptied, to hold the next batch's:
    /// a vector grown anew for every batch took fresh pages from the kernel
    /// at each doubling.
    pub fn recycle(&mut self, batch: &mut ActivityBatch) {
        self.hourly.recycle(std::mem::take(&mut batch.hourly));
        self.pairs.recycle(std::mem::take(&mut batch.key_ips));
        let mut traces = std::mem::take(&mut batch.traces);
        traces.clear();
        if self.traces.is_empty() && traces.capacity() > self.traces.capacity() {
            self.traces = traces;
        }
        if let Some(events) = &mut self.events {
            events.recycle(std::mem::take(&mut batch.events));
        }
    }

    /// The cutoffs of the traces and of the event store, when pruning is due.
    fn prune_due(&mut self, last: bool, now_ms: i64) -> (Option<i64>, Option<i64>) {
        let Some(newest) = self.newest_ms else {
            return (None, None);
        };
        let newest = newest.min(now_ms.saturating_add(DAY_MS));
        let every = millis(self.options.prune_every);
        let due = last
            || self
                .last_prune_ms
                .is_none_or(|previous| newest.saturating_sub(previous) >= every);
        if !due {
            return (None, None);
        }
        self.last_prune_ms = Some(newest);
        (
            self.options
                .traces
                .then(|| newest.saturating_sub(millis(self.options.trace_retention))),
            self.events
                .is_some()
                .then(|| newest.saturating_sub(millis(self.options.events.retention))),
        )
    }
}

/// Write a batch's rollups, pairs and traces, and prune, inside `transaction`.
pub(crate) fn write(transaction: &Transaction<'_>, batch: &ActivityBatch) -> rusqlite::Result<()> {
    activity::write_hourly(transaction, &batch.hourly)?;
    activity::write_key_ips(transaction, &batch.key_ips)?;
    traces::write(transaction, &batch.traces)?;
    if let Some(cutoff) = batch.prune_before_ms {
        traces::prune(transaction, cutoff)?;
    }
    write_events(&mut crate::db::SqliteDb(transaction), batch)?;
    Ok(())
}

/// The batch's event blocks, and the event store's pruning when due.
fn write_events(db: &mut dyn crate::db::Db, batch: &ActivityBatch) -> crate::db::DbResult<()> {
    for block in &batch.events {
        events::write(db, block)?;
    }
    if let Some(cutoff) = batch.prune_events_before_ms {
        events::prune(db, cutoff)?;
    }
    Ok(())
}

/// `write` on a PostgreSQL store (the same rows, several per statement).
pub(crate) fn write_db(db: &mut dyn crate::db::Db, batch: &ActivityBatch) -> crate::db::DbResult<()> {
    write_events(db, batch)?;
    pg::write_hourly(db, &batch.hourly)?;
    pg::write_key_ips(db, &batch.key_ips)?;
    pg::write_traces(db, &batch.traces)?;
    if let Some(cutoff) = batch.prune_before_ms {
        db.execute("DELETE FROM key_traces WHERE time_ms < ?1", crate::db_params![cutoff])?;
    }
    Ok(())
}
