//! Retention: removing what is past its keeping time, in small
//! transactions, without breaking the hash chain.
//!
//! What goes, and when (each setting `None` keeps its rows forever):
//! - **processed alarms** this long after their last change, with their
//!   status changes, call records, samples and settled notifications. An
//!   unprocessed alarm is never removed, nor an ignored one (it keeps
//!   suppressing its key), nor an alarm with a notification still due;
//! - **samples** and **call records** of alarms that are not waiting for
//!   triage (processed or ignored), by event time and last call;
//! - **dead letters** by the time they were received;
//! - **notifications** delivered or given up (with their deliveries), by
//!   the time they were queued; a digest after the messages it folds;
//! - **rollups** (hourly activity and first-seen key/address pairs) behind
//!   the newest hour rolled up, as traces are pruned by event time;
//! - **chain links** older than their retention, cut from the chain's start
//!   (`cut.rs`).
//!
//! Every sealed row removed gets a removal link in the same transaction, so
//! `verify` expects it gone. Each transaction removes at most `batch_rows`
//! rows (a tenth as many alarms, with their evidence), then lets the
//! writer in: the daemon runs this on its own
//! connection beside ingestion, and `store prune` on demand. On a shared
//! PostgreSQL store each transaction takes `RETENTION_LOCK`, so daemons
//! prune in turns; removal links take the chain's lock as every writer does.

pub mod cut;
pub mod stats;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::chain::LinkKind;
use super::seal;
use super::store::{Store, StoreError};
use crate::db::{Db, DbExt, DbResult, Value, get};
use crate::db_params;
use crate::time::timestamp;

/// How long each kind of row is kept (`[retention]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub processed_alarms: Option<Duration>,
    pub samples: Option<Duration>,
    pub call_records: Option<Duration>,
    pub dead_letters: Option<Duration>,
    pub notifications: Option<Duration>,
    pub rollups: Option<Duration>,
    pub chain: Option<Duration>,
    /// Most rows removed (or links cut) per transaction.
    pub batch_rows: usize,
}

const DAY: u64 = 86_400;

impl Default for RetentionPolicy {
    /// The shipped defaults.
    fn default() -> RetentionPolicy {
        RetentionPolicy {
            processed_alarms: Some(Duration::from_secs(365 * DAY)),
            samples: Some(Duration::from_secs(365 * DAY)),
            call_records: Some(Duration::from_secs(365 * DAY)),
            dead_letters: Some(Duration::from_secs(90 * DAY)),
            notifications: Some(Duration::from_secs(30 * DAY)),
            rollups: Some(Duration::from_secs(400 * DAY)),
            chain: Some(Duration::from_secs(400 * DAY)),
            batch_rows: 500,
        }
    }
}

/// Rows removed by one run, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub alarms: u64,
    pub transitions: u64,
    pub calls: u64,
    pub samples: u64,
    pub dead_letters: u64,
    pub notify_messages: u64,
    pub notify_deliveries: u64,
    pub rollup_rows: u64,
    pub key_ip_rows: u64,
    pub links_cut: u64,
    pub links_carried: u64,
    pub transactions: u64,
    /// Why the chain was not cut (a damaged chain is left for `verify`).
    pub chain_error: Option<String>,
}

impl PruneReport {
    /// (kind, rows) for every kind, as the metrics label them.
    pub fn counts(&self) -> [(&'static str, u64); 11] {
        [
            ("alarms", self.alarms),
            ("transitions", self.transitions),
            ("call_records", self.calls),
            ("samples", self.samples),
            ("dead_letters", self.dead_letters),
            ("notify_messages", self.notify_messages),
            ("notify_deliveries", self.notify_deliveries),
            ("rollup_rows", self.rollup_rows),
            ("key_ip_rows", self.key_ip_rows),
            ("chain_links_cut", self.links_cut),
            ("chain_links_carried", self.links_carried),
        ]
    }

    pub fn removed_anything(&self) -> bool {
        self.counts().iter().any(|(_, count)| *count > 0)
    }
}

impl fmt::Display for PruneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .counts()
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        write!(f, "{} ({} transactions)", parts.join(", "), self.transactions)
    }
}

/// A settled notification message (`m`): nothing left to send for it.
const SETTLED: &str = "m.state != 'queued' AND NOT (m.state = 'folded' AND m.digest_id IS NULL) \
     AND NOT EXISTS (SELECT 1 FROM notify_deliveries d WHERE d.message_id = m.id AND d.status = 'pending')";

/// The advisory lock key retention's transactions take on PostgreSQL
/// ("tw-prune" in ASCII): daemons sharing a store prune in turns, so no two
/// remove the same rows or cut the same links.
pub const RETENTION_LOCK: i64 = 0x7477_2d70_7275_6e65;

/// Run every retention step until nothing is past its time, or `stop()`
/// says to stop (checked between transactions). On either backend; each
/// step in transactions of at most `batch_rows` rows.
pub fn prune(
    store: &mut Store,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    stop: &dyn Fn() -> bool,
) -> Result<PruneReport, StoreError> {
    let mut report = PruneReport::default();
    let limit = policy.batch_rows.max(1);
    let at = timestamp(now);
    let before = |retention: Option<Duration>| {
        retention.map(|retention| {
            let age = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
            now.checked_sub_signed(age).unwrap_or(DateTime::<Utc>::MIN_UTC)
        })
    };
    if let Some(cutoff) = before(policy.processed_alarms) {
        let cutoff = timestamp(cutoff);
        batches(store, &mut report, stop, |db, report| {
            processed_alarms(db, &cutoff, limit, &at, report)
        })?;
    }
    if let Some(cutoff) = before(policy.samples) {
        let cutoff = timestamp(cutoff);
        batches(store, &mut report, stop, |db, report| {
            let removed = evidence(db, LinkKind::Sample, &cutoff, limit, &at)?;
            report.samples += removed;
            Ok(removed)
        })?;
    }
    if let Some(cutoff) = before(policy.call_records) {
        let cutoff = timestamp(cutoff);
        batches(store, &mut report, stop, |db, report| {
            let removed = evidence(db, LinkKind::Call, &cutoff, limit, &at)?;
            report.calls += removed;
            Ok(removed)
        })?;
    }
    if let Some(cutoff) = before(policy.dead_letters) {
        let cutoff = timestamp(cutoff);
        batches(store, &mut report, stop, |db, report| {
            let removed = db.execute(
                "DELETE FROM dead_letters WHERE id IN \
                 (SELECT id FROM dead_letters WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)",
                db_params![&cutoff, limit as i64],
            )?;
            report.dead_letters += removed;
            Ok(removed)
        })?;
    }
    if let Some(cutoff) = before(policy.notifications) {
        let cutoff_ms = cutoff.timestamp_millis();
        batches(store, &mut report, stop, |db, report| {
            notifications(db, cutoff_ms, limit, report)
        })?;
    }
    if let Some(retention) = policy.rollups {
        rollups(store, retention, limit, &mut report, stop)?;
    }
    if let Some(cutoff) = before(policy.chain) {
        let cutoff = timestamp(cutoff);
        batches(store, &mut report, stop, |db, report| {
            match cut::cut_oldest(db, &cutoff, limit, &at) {
                Ok(Some(cut)) => {
                    report.links_cut += cut.links_cut;
                    report.links_carried += cut.links_carried;
                    Ok(cut.links_cut)
                }
                Ok(None) => Ok(0),
                Err(cut::CutError::Db(error)) => Err(error),
                Err(error @ cut::CutError::Broken { .. }) => {
                    report.chain_error = Some(error.to_string());
                    Ok(0)
                }
            }
        })?;
    }
    Ok(report)
}

/// Run `step` in write transactions until it removes nothing.
fn batches(
    store: &mut Store,
    report: &mut PruneReport,
    stop: &dyn Fn() -> bool,
    mut step: impl FnMut(&mut dyn Db, &mut PruneReport) -> DbResult<u64>,
) -> Result<(), StoreError> {
    while !stop() {
        let removed = store.transact(Some(RETENTION_LOCK), |db| -> Result<u64, StoreError> {
            Ok(step(db, report)?)
        })?;
        if removed == 0 {
            return Ok(());
        }
        report.transactions += 1;
        // Let the daemon's writer take the lock between two batches.
        std::thread::yield_now();
    }
    Ok(())
}

fn ids(db: &mut dyn Db, sql: &str, values: &[Value<'_>]) -> DbResult<Vec<i64>> {
    db.query_all(sql, values, |row| get(row, 0))
}

/// Delete rows of `kind` by id and seal their removal.
fn remove(db: &mut dyn Db, kind: LinkKind, ids: &[i64], at: &str) -> DbResult<u64> {
    let delete = format!("DELETE FROM {} WHERE id = ?1", kind.table());
    for id in ids {
        db.execute(&delete, db_params![*id])?;
    }
    seal::append_removals(db, kind, ids, at)?;
    Ok(ids.len() as u64)
}

fn processed_alarms(db: &mut dyn Db, cutoff: &str, limit: usize, at: &str, report: &mut PruneReport) -> DbResult<u64> {
    let alarms = ids(
        db,
        &format!(
            "SELECT id FROM alarms a WHERE status = 'processed' AND updated_at < ?1 AND NOT EXISTS \
             (SELECT 1 FROM notify_messages m WHERE m.alarm_id = a.id AND NOT ({SETTLED})) ORDER BY id LIMIT ?2"
        ),
        // An alarm goes with some ten rows of evidence.
        db_params![cutoff, (limit / 10).max(1) as i64],
    )?;
    for &alarm in &alarms {
        for message in ids(
            db,
            "SELECT id FROM notify_messages WHERE alarm_id = ?1",
            db_params![alarm],
        )? {
            remove_message(db, message, report)?;
        }
        for kind in [LinkKind::Transition, LinkKind::Call, LinkKind::Sample] {
            let rows = ids(
                db,
                &format!("SELECT id FROM {} WHERE alarm_id = ?1 ORDER BY id", kind.table()),
                db_params![alarm],
            )?;
            let removed = remove(db, kind, &rows, at)?;
            match kind {
                LinkKind::Transition => report.transitions += removed,
                LinkKind::Call => report.calls += removed,
                _ => report.samples += removed,
            }
        }
    }
    report.alarms += remove(db, LinkKind::Alarm, &alarms, at)?;
    Ok(alarms.len() as u64)
}

/// Samples (by event time) or call records (by last call) of alarms not
/// waiting for triage.
fn evidence(db: &mut dyn Db, kind: LinkKind, cutoff: &str, limit: usize, at: &str) -> DbResult<u64> {
    let table = kind.table();
    let time = if kind == LinkKind::Sample {
        "event_time"
    } else {
        "last_call"
    };
    let rows = ids(
        db,
        &format!(
            "SELECT e.id FROM alarms a JOIN {table} e ON e.alarm_id = a.id \
             WHERE a.status IN ('processed', 'ignored') AND e.{time} < ?1 ORDER BY e.id LIMIT ?2"
        ),
        db_params![cutoff, limit as i64],
    )?;
    remove(db, kind, &rows, at)
}

/// Settled messages queued before the cutoff, with their deliveries; a
/// digest only once no message names it.
fn notifications(db: &mut dyn Db, cutoff_ms: i64, limit: usize, report: &mut PruneReport) -> DbResult<u64> {
    let messages = ids(
        db,
        &format!(
            "SELECT id FROM notify_messages m WHERE created_ms < ?1 AND {SETTLED} \
             AND NOT EXISTS (SELECT 1 FROM notify_messages f WHERE f.digest_id = m.id) ORDER BY id LIMIT ?2"
        ),
        db_params![cutoff_ms, limit as i64],
    )?;
    for &message in &messages {
        remove_message(db, message, report)?;
    }
    Ok(messages.len() as u64)
}

/// A notification message and its deliveries.
fn remove_message(db: &mut dyn Db, message: i64, report: &mut PruneReport) -> DbResult<()> {
    report.notify_deliveries += db.execute(
        "DELETE FROM notify_deliveries WHERE message_id = ?1",
        db_params![message],
    )?;
    report.notify_messages += db.execute("DELETE FROM notify_messages WHERE id = ?1", db_params![message])?;
    Ok(())
}

const HOUR_MS: i64 = 3_600_000;

/// Hourly rollups and first-seen pairs older than `retention` behind the
/// newest hour rolled up (a replay of old records keeps its god view).
fn rollups(
    store: &mut Store,
    retention: Duration,
    limit: usize,
    report: &mut PruneReport,
    stop: &dyn Fn() -> bool,
) -> Result<(), StoreError> {
    let newest: Option<i64> = store
        .with_db(|db| db.query_opt("SELECT max(key) FROM activity_hourly", &[], |row| get(row, 0)))?
        .flatten();
    let Some(newest) = newest else {
        return Ok(());
    };
    let newest_hour = newest >> 32;
    let hours = i64::try_from(retention.as_secs() / 3_600).unwrap_or(i64::MAX);
    let first_kept_hour = newest_hour.saturating_sub(hours);
    let key_cutoff = first_kept_hour.checked_mul(1 << 32).unwrap_or(i64::MIN);
    let ms_cutoff = first_kept_hour.saturating_mul(HOUR_MS);
    // (table, its key, the column compared, the cutoff, the report's count)
    type Counted = fn(&mut PruneReport) -> &mut u64;
    let steps: [(&str, &str, &str, i64, Counted); 2] = [
        ("activity_hourly", "key", "key", key_cutoff, |report| {
            &mut report.rollup_rows
        }),
        ("activity_key_ips", "id", "first_ms", ms_cutoff, |report| {
            &mut report.key_ip_rows
        }),
    ];
    for (table, key, column, cutoff, counted) in steps {
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN \
             (SELECT {key} FROM {table} WHERE {column} < ?1 ORDER BY {key} LIMIT ?2)"
        );
        batches(store, report, stop, |db, report| {
            let removed = db.execute(&sql, db_params![cutoff, limit as i64])?;
            *counted(report) += removed;
            Ok(removed)
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
