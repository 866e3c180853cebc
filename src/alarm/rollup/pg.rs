//! Rollups and key-operation traces on a PostgreSQL store, shared by several
//! daemons: the same rows the SQLite store writes (`activity.rs`,
//! `traces.rs`), several per statement, because each statement is a round
//! trip.
//!
//! An hourly count goes to the row of its key (the hour and a hash of its
//! fields); a row of other fields already holding the key (a hash collision)
//! leaves the statement's `WHERE` false, the row is not returned, and it is
//! tried again on the next key, as on SQLite. Rows are sent in key order, so
//! two daemons adding to the same hours lock them in the same order; a
//! deadlock that still happens rolls the batch back, and the store stage
//! retries it (a transient error).

use std::collections::HashSet;

use super::activity::{HourlyCount, KeyIpPair, MAX_PROBES, hour_key};
use super::traces::NewTrace;
use crate::db::{CHUNKS, Db, DbExt, DbResult, for_chunks, get, placeholder_rows};

/// Statements of `size` rows, one per size in `CHUNKS`, built once.
fn statements(cache: &'static std::sync::OnceLock<Vec<String>>, build: impl Fn(usize) -> String) -> &'static [String] {
    cache.get_or_init(|| CHUNKS.iter().map(|size| build(*size)).collect())
}

const HOURLY_WIDTH: usize = 13;

/// A row of the batch (its index) and how many keys it has tried.
type Try = (usize, u32);

fn upsert_hourly(rows: usize) -> String {
    format!(
        "INSERT INTO activity_hourly (key, hour_ms, provider, account_id, principal, source_ip, service, action, \
         resource_type, error_code, call_method, count, failures) VALUES {} \
         ON CONFLICT (key) DO UPDATE SET count = activity_hourly.count + excluded.count, \
         failures = activity_hourly.failures + excluded.failures \
         WHERE activity_hourly.action = excluded.action AND activity_hourly.principal = excluded.principal \
         AND activity_hourly.source_ip = excluded.source_ip AND activity_hourly.account_id = excluded.account_id \
         AND activity_hourly.provider = excluded.provider AND activity_hourly.service = excluded.service \
         AND activity_hourly.resource_type = excluded.resource_type \
         AND activity_hourly.error_code = excluded.error_code \
         AND activity_hourly.call_method = excluded.call_method AND activity_hourly.hour_ms = excluded.hour_ms \
         RETURNING key",
        placeholder_rows(rows, HOURLY_WIDTH)
    )
}

/// Add a batch's hourly counts to their rows.
pub(super) fn write_hourly(db: &mut dyn Db, hourly: &[HourlyCount]) -> DbResult<()> {
    static UPSERTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let upserts = statements(&UPSERTS, upsert_hourly);
    // The key of a (row, tries so far): the hour's base plus the row's hash
    // plus the tries.
    let key = |row: &HourlyCount, tries: u32| hour_key(row.hour_ms) + i64::from(row.hash.wrapping_add(tries));
    let mut pending: Vec<Try> = (0..hourly.len()).map(|index| (index, 0)).collect();
    while !pending.is_empty() {
        pending.sort_unstable_by_key(|(index, tries)| key(&hourly[*index], *tries));
        // One statement may not touch a key twice: a second row on a key
        // (a collision inside the batch) waits for the next round.
        let mut keys: HashSet<i64> = HashSet::with_capacity(pending.len());
        let (now, later): (Vec<Try>, Vec<Try>) = pending
            .iter()
            .copied()
            .partition(|(index, tries)| keys.insert(key(&hourly[*index], *tries)));
        let mut written: HashSet<i64> = HashSet::with_capacity(now.len());
        for_chunks(
            &now,
            HOURLY_WIDTH,
            |(index, tries), values| {
                let row = &hourly[*index];
                values.extend_from_slice(crate::db_params![
                    key(row, *tries),
                    row.hour_ms,
                    row.provider.as_str(),
                    row.account_id.as_str(),
                    row.principal.as_str(),
                    row.source_ip.as_str(),
                    row.service.as_str(),
                    row.action.as_str(),
                    row.resource_type.as_str(),
                    row.error_code.as_str(),
                    row.call_method.as_str(),
                    row.count as i64,
                    row.failures as i64,
                ]);
            },
            |statement, values| {
                written.extend(db.query_all(&upserts[statement], values, |row| get::<i64>(row, 0))?);
                Ok(())
            },
        )?;
        let mut next = later;
        for (index, tries) in now {
            let row = &hourly[index];
            if written.contains(&key(row, tries)) {
                continue;
            }
            if tries + 1 >= MAX_PROBES {
                tracing::error!(hour_ms = row.hour_ms, principal = %row.principal, action = %row.action, count = row.count, "activity rollup: no free key in this hour after {MAX_PROBES} tries; count dropped");
            } else {
                next.push((index, tries + 1));
            }
        }
        pending = next;
    }
    Ok(())
}

const PAIR_WIDTH: usize = 6;

/// Append a batch's first-seen (key, IP) pairs.
pub(super) fn write_key_ips(db: &mut dyn Db, key_ips: &[KeyIpPair]) -> DbResult<()> {
    static INSERTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let inserts = statements(&INSERTS, |rows| {
        format!(
            "INSERT INTO activity_key_ips (access_key_id, source_ip, provider, account_id, principal, first_ms) \
             VALUES {}",
            placeholder_rows(rows, PAIR_WIDTH)
        )
    });
    for_chunks(
        key_ips,
        PAIR_WIDTH,
        |pair, values| {
            values.extend_from_slice(crate::db_params![
                &pair.access_key_id,
                &pair.source_ip,
                &pair.provider,
                &pair.account_id,
                &pair.principal,
                pair.first_ms,
            ]);
        },
        |statement, values| db.execute(&inserts[statement], values).map(drop),
    )
}

const TRACE_WIDTH: usize = 20;

/// Store a batch's traces (an event id already stored is skipped).
pub(super) fn write_traces(db: &mut dyn Db, traces: &[NewTrace]) -> DbResult<()> {
    static INSERTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let inserts = statements(&INSERTS, |rows| {
        format!(
            "INSERT INTO key_traces (provider, event_id, time, time_ms, account_id, operator, principal_id, \
             principal_kind, access_key_id, call_method, trace_type, service, resource_type, resource_names, action, \
             operations, status, error_code, source_ip, raw) VALUES {} ON CONFLICT DO NOTHING",
            placeholder_rows(rows, TRACE_WIDTH)
        )
    });
    // Text built for the statement: resource names and operations.
    let texts: Vec<(String, String)> = traces
        .iter()
        .map(|NewTrace { trace, .. }| {
            (
                serde_json::to_string(&trace.resource_names).unwrap_or_else(|_| "[]".into()),
                trace.operations.join(","),
            )
        })
        .collect();
    let rows: Vec<(&NewTrace, &(String, String))> = traces.iter().zip(&texts).collect();
    for_chunks(
        &rows,
        TRACE_WIDTH,
        |(NewTrace { trace, raw }, (names, operations)), values| {
            values.extend_from_slice(crate::db_params![
                &trace.provider,
                &trace.event_id,
                &trace.time,
                trace.time_ms,
                trace.account_id.as_deref(),
                &trace.operator,
                trace.principal_id.as_deref(),
                &trace.principal_kind,
                trace.access_key_id.as_deref(),
                &trace.call_method,
                trace.trace_type.as_deref(),
                &trace.service,
                trace.resource_type.as_deref(),
                names.as_str(),
                &trace.action,
                operations.as_str(),
                &trace.status,
                trace.error_code.as_deref(),
                trace.source_ip.as_deref(),
                raw.as_str(),
            ]);
        },
        |statement, values| db.execute(&inserts[statement], values).map(drop),
    )
}
