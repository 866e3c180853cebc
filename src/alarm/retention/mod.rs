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
//! connection beside ingestion, and `store prune` on demand.

pub mod cut;
pub mod stats;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::chain::{self, LinkKind};
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

/// Run every retention step until nothing is past its time, or `stop()`
/// says to stop (checked between transactions).
pub fn prune(
    connection: &mut Connection,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    stop: &dyn Fn() -> bool,
) -> rusqlite::Result<PruneReport> {
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
        batches(connection, &mut report, stop, |tx, report| {
            processed_alarms(tx, &cutoff, limit, &at, report)
        })?;
    }
    if let Some(cutoff) = before(policy.samples) {
        let cutoff = timestamp(cutoff);
        batches(connection, &mut report, stop, |tx, report| {
            let removed = evidence(tx, LinkKind::Sample, &cutoff, limit, &at)?;
            report.samples += removed;
            Ok(removed)
        })?;
    }
    if let Some(cutoff) = before(policy.call_records) {
        let cutoff = timestamp(cutoff);
        batches(connection, &mut report, stop, |tx, report| {
            let removed = evidence(tx, LinkKind::Call, &cutoff, limit, &at)?;
            report.calls += removed;
            Ok(removed)
        })?;
    }
    if let Some(cutoff) = before(policy.dead_letters) {
        let cutoff = timestamp(cutoff);
        batches(connection, &mut report, stop, |tx, report| {
            let removed = tx
                .prepare_cached(
                    "DELETE FROM dead_letters WHERE id IN \
                     (SELECT id FROM dead_letters WHERE received_at < ?1 ORDER BY received_at LIMIT ?2)",
                )?
                .execute(params![cutoff, limit as i64])? as u64;
            report.dead_letters += removed;
            Ok(removed)
        })?;
    }
    if let Some(cutoff) = before(policy.notifications) {
        let cutoff_ms = cutoff.timestamp_millis();
        batches(connection, &mut report, stop, |tx, report| {
            notifications(tx, cutoff_ms, limit, report)
        })?;
    }
    if let Some(retention) = policy.rollups {
        rollups(connection, retention, limit, &mut report, stop)?;
    }
    if let Some(cutoff) = before(policy.chain) {
        let cutoff = timestamp(cutoff);
        batches(connection, &mut report, stop, |tx, report| {
            match cut::cut_oldest(tx, &cutoff, limit, &at) {
                Ok(Some(cut)) => {
                    report.links_cut += cut.links_cut;
                    report.links_carried += cut.links_carried;
                    Ok(cut.links_cut)
                }
                Ok(None) => Ok(0),
                Err(cut::CutError::Sqlite(error)) => Err(error),
                Err(error @ cut::CutError::Broken { .. }) => {
                    report.chain_error = Some(error.to_string());
                    Ok(0)
                }
            }
        })?;
    }
    Ok(report)
}

/// Run `step` in immediate transactions until it removes nothing.
fn batches(
    connection: &mut Connection,
    report: &mut PruneReport,
    stop: &dyn Fn() -> bool,
    mut step: impl FnMut(&Transaction<'_>, &mut PruneReport) -> rusqlite::Result<u64>,
) -> rusqlite::Result<()> {
    while !stop() {
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed = step(&transaction, report)?;
        if removed == 0 {
            return Ok(());
        }
        transaction.commit()?;
        report.transactions += 1;
        // Let the daemon's writer take the lock between two batches.
        std::thread::yield_now();
    }
    Ok(())
}

fn ids(connection: &Connection, sql: &str, values: impl rusqlite::Params) -> rusqlite::Result<Vec<i64>> {
    connection
        .prepare_cached(sql)?
        .query_map(values, |row| row.get(0))?
        .collect()
}

/// Delete rows of `kind` by id and seal their removal.
fn remove(connection: &Connection, kind: LinkKind, ids: &[i64], at: &str) -> rusqlite::Result<u64> {
    let mut delete = connection.prepare_cached(&format!("DELETE FROM {} WHERE id = ?1", kind.table()))?;
    for id in ids {
        delete.execute([id])?;
    }
    chain::append_removals(connection, kind, ids, at)?;
    Ok(ids.len() as u64)
}

fn processed_alarms(
    connection: &Connection,
    cutoff: &str,
    limit: usize,
    at: &str,
    report: &mut PruneReport,
) -> rusqlite::Result<u64> {
    let alarms = ids(
        connection,
        &format!(
            "SELECT id FROM alarms a WHERE status = 'processed' AND updated_at < ?1 AND NOT EXISTS \
             (SELECT 1 FROM notify_messages m WHERE m.alarm_id = a.id AND NOT ({SETTLED})) ORDER BY id LIMIT ?2"
        ),
        // An alarm goes with some ten rows of evidence.
        params![cutoff, (limit / 10).max(1) as i64],
    )?;
    for &alarm in &alarms {
        for message in ids(
            connection,
            "SELECT id FROM notify_messages WHERE alarm_id = ?1",
            [alarm],
        )? {
            remove_message(connection, message, report)?;
        }
        for kind in [LinkKind::Transition, LinkKind::Call, LinkKind::Sample] {
            let rows = ids(
                connection,
                &format!("SELECT id FROM {} WHERE alarm_id = ?1 ORDER BY id", kind.table()),
                [alarm],
            )?;
            let removed = remove(connection, kind, &rows, at)?;
            match kind {
                LinkKind::Transition => report.transitions += removed,
                LinkKind::Call => report.calls += removed,
                _ => report.samples += removed,
            }
        }
    }
    report.alarms += remove(connection, LinkKind::Alarm, &alarms, at)?;
    Ok(alarms.len() as u64)
}

/// Samples (by event time) or call records (by last call) of alarms not
/// waiting for triage.
fn evidence(connection: &Connection, kind: LinkKind, cutoff: &str, limit: usize, at: &str) -> rusqlite::Result<u64> {
    let table = kind.table();
    let time = if kind == LinkKind::Sample {
        "event_time"
    } else {
        "last_call"
    };
    let rows = ids(
        connection,
        &format!(
            "SELECT e.id FROM alarms a JOIN {table} e ON e.alarm_id = a.id \
             WHERE a.status IN ('processed', 'ignored') AND e.{time} < ?1 ORDER BY e.id LIMIT ?2"
        ),
        params![cutoff, limit as i64],
    )?;
    remove(connection, kind, &rows, at)
}

/// Settled messages queued before the cutoff, with their deliveries; a
/// digest only once no message names it.
fn notifications(
    connection: &Connection,
    cutoff_ms: i64,
    limit: usize,
    report: &mut PruneReport,
) -> rusqlite::Result<u64> {
    let messages = ids(
        connection,
        &format!(
            "SELECT id FROM notify_messages m WHERE created_ms < ?1 AND {SETTLED} \
             AND NOT EXISTS (SELECT 1 FROM notify_messages f WHERE f.digest_id = m.id) ORDER BY id LIMIT ?2"
        ),
        params![cutoff_ms, limit as i64],
    )?;
    for &message in &messages {
        remove_message(connection, message, report)?;
    }
    Ok(messages.len() as u64)
}

/// A notification message and its deliveries.
fn remove_message(connection: &Connection, message: i64, report: &mut PruneReport) -> rusqlite::Result<()> {
    report.notify_deliveries += connection
        .prepare_cached("DELETE FROM notify_deliveries WHERE message_id = ?1")?
        .execute([message])? as u64;
    report.notify_messages += connection
        .prepare_cached("DELETE FROM notify_messages WHERE id = ?1")?
        .execute([message])? as u64;
    Ok(())
}

const HOUR_MS: i64 = 3_600_000;

/// Hourly rollups and first-seen pairs older than `retention` behind the
/// newest hour rolled up (a replay of old records keeps its god view).
fn rollups(
    connection: &mut Connection,
    retention: Duration,
    limit: usize,
    report: &mut PruneReport,
    stop: &dyn Fn() -> bool,
) -> rusqlite::Result<()> {
    let newest: Option<i64> = connection.query_row("SELECT max(key) FROM activity_hourly", [], |row| row.get(0))?;
    let Some(newest) = newest else {
        return Ok(());
    };
    let newest_hour = newest >> 32;
    let hours = i64::try_from(retention.as_secs() / 3_600).unwrap_or(i64::MAX);
    let first_kept_hour = newest_hour.saturating_sub(hours);
    let key_cutoff = first_kept_hour.checked_mul(1 << 32).unwrap_or(i64::MIN);
    let ms_cutoff = first_kept_hour.saturating_mul(HOUR_MS);
    batches(connection, report, stop, |tx, report| {
        let removed = tx
            .prepare_cached(
                "DELETE FROM activity_hourly WHERE key IN \
                 (SELECT key FROM activity_hourly WHERE key < ?1 ORDER BY key LIMIT ?2)",
            )?
            .execute(params![key_cutoff, limit as i64])? as u64;
        report.rollup_rows += removed;
        Ok(removed)
    })?;
    batches(connection, report, stop, |tx, report| {
        let removed = tx
            .prepare_cached(
                "DELETE FROM activity_key_ips WHERE id IN \
                 (SELECT id FROM activity_key_ips WHERE first_ms < ?1 ORDER BY id LIMIT ?2)",
            )?
            .execute(params![ms_cutoff, limit as i64])? as u64;
        report.key_ip_rows += removed;
        Ok(removed)
    })
}

#[cfg(test)]
mod tests;
