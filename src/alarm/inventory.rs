//! Access-key inventory import (`trailwarden state import FILE`): what the
//! clouds' consoles know about keys — created, last used — put into the
//! engine's key table before trailwarden has seen a single event, so a key
//! dormant since before the deployment is idle on day one, not "new".
//!
//! The file is CSV with a header naming its columns, in any order and any
//! case: `provider` (`aws`, `tencent`, `huawei`), `key_id` (also
//! `access_key_id`, `secret_id`, `ak`), `created` (also `created_at`,
//! `create_time`, `creation_date`), `last_used` (also `last_used_at`,
//! `last_used_date`, `last_used_time`), and any other column (an owner, a
//! status) ignored. Times are RFC 3339, `YYYY-MM-DD HH:MM:SS` or
//! `YYYY-MM-DD` (UTC); an empty cell, `N/A`, `-` or `never` is unknown. A
//! key needs at least one of the two times. Bad lines are reported with
//! their number and skipped.

use crate::db::{Db, DbResult, Dialect};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::Serialize;

use crate::event::model::Provider;
use crate::rules::state::state_key;

/// One key of the inventory.
#[derive(Clone, Debug, PartialEq)]
pub struct InventoryKey {
    pub provider: Provider,
    pub key_id: String,
    /// Earliest time known (creation, else last use), Unix milliseconds.
    pub first_ms: i64,
    /// Last use known (else creation).
    pub last_ms: i64,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InventoryReport {
    pub imported: usize,
    /// `file:line: problem` per skipped line.
    pub problems: Vec<String>,
}

const KEY_COLUMNS: &[&str] = &["key_id", "access_key_id", "accesskeyid", "secret_id", "secretid", "ak"];
const CREATED_COLUMNS: &[&str] = &["created", "created_at", "create_time", "creation_date", "createtime"];
const LAST_USED_COLUMNS: &[&str] = &[
    "last_used",
    "last_used_at",
    "last_used_date",
    "last_used_time",
    "lastuseddate",
    "lastusedtime",
];

/// Parse an inventory; `label` names the file in problems.
pub fn parse(label: &str, text: &str) -> (Vec<InventoryKey>, Vec<String>) {
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    let mut lines = text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        problems.push(format!(
            "{label}: empty file (expected a header: provider,key_id,created,last_used)"
        ));
        return (keys, problems);
    };
    let header: Vec<String> = cells(header).iter().map(|cell| cell.to_ascii_lowercase()).collect();
    let find = |names: &[&str]| header.iter().position(|cell| names.contains(&cell.as_str()));
    let (Some(provider_at), Some(key_at)) = (find(&["provider", "cloud"]), find(KEY_COLUMNS)) else {
        problems.push(format!(
            "{label}:1: the header must name `provider` and `key_id` columns (found: {})",
            header.join(", ")
        ));
        return (keys, problems);
    };
    let created_at = find(CREATED_COLUMNS);
    let last_used_at = find(LAST_USED_COLUMNS);
    if created_at.is_none() && last_used_at.is_none() {
        problems.push(format!(
            "{label}:1: the header names neither a `created` nor a `last_used` column"
        ));
        return (keys, problems);
    }
    for (index, line) in lines {
        let number = index + 1;
        let row = cells(line);
        let cell = |at: Option<usize>| at.and_then(|at| row.get(at)).map(String::as_str).unwrap_or("");
        let Some(provider) = Provider::parse(cell(Some(provider_at)).trim()) else {
            problems.push(format!(
                "{label}:{number}: provider `{}` is not one of aws, tencent, huawei",
                cell(Some(provider_at))
            ));
            continue;
        };
        let key_id = cell(Some(key_at)).trim();
        if key_id.is_empty() || key_id.len() > 128 || !key_id.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
            problems.push(format!("{label}:{number}: `{key_id}` is not an access key id"));
            continue;
        }
        let mut time = |at: Option<usize>, what: &str| match parse_time(cell(at)) {
            Ok(time) => Some(time),
            Err(text) => {
                problems.push(format!("{label}:{number}: {what} `{text}` is not a time (2026-03-02T10:00:00Z, 2026-03-02 10:00:00 or 2026-03-02)"));
                None
            }
        };
        let (Some(created), Some(last_used)) = (time(created_at, "created"), time(last_used_at, "last_used")) else {
            continue;
        };
        let (first_ms, last_ms) = match (created, last_used) {
            (Some(created), Some(used)) => (created.min(used), used.max(created)),
            (Some(only), None) | (None, Some(only)) => (only, only),
            (None, None) => {
                problems.push(format!(
                    "{label}:{number}: key {key_id} has neither a creation nor a last-use time"
                ));
                continue;
            }
        };
        keys.push(InventoryKey {
            provider,
            key_id: key_id.to_string(),
            first_ms,
            last_ms,
        });
    }
    (keys, problems)
}

/// The cells of a CSV line: split on commas, surrounding quotes removed
/// (inventories hold ids and times, never commas).
fn cells(line: &str) -> Vec<String> {
    line.split(',')
        .map(|cell| cell.trim().trim_matches('"').trim().to_string())
        .collect()
}

/// `Ok(None)` for an unknown time, `Err(text)` for one that cannot be read.
fn parse_time(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() || ["n/a", "-", "never", "none", "null"].contains(&text.to_ascii_lowercase().as_str()) {
        return Ok(None);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(time.timestamp_millis()));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Some(time.and_utc().timestamp_millis()));
        }
    }
    for format in ["%Y-%m-%d", "%Y/%m/%d"] {
        if let Ok(date) = NaiveDate::parse_from_str(text, format) {
            return Ok(date.and_hms_opt(0, 0, 0).map(|time| time.and_utc().timestamp_millis()));
        }
    }
    Err(text.to_string())
}

/// Merge the keys into the engine's key table, in the caller's transaction
/// (`Store::transact`): a key already known keeps the earlier first and the
/// later last time. The daemon reads the table when it starts: import before
/// starting it (or restart it after).
///
/// The rows go to the scope `''`: a SQLite store's only one; on a PostgreSQL
/// store, where each Kafka partition keeps its engine state apart, every
/// partition reads them with its own when it is assigned (`store::state`).
pub fn import(db: &mut dyn Db, keys: &[InventoryKey], now_ms: i64) -> DbResult<usize> {
    let upsert = match db.dialect() {
        Dialect::Sqlite => {
            "INSERT INTO state_keys (key, first_ms, last_ms, touched_ms, from_inventory) VALUES (?1, ?2, ?3, ?4, 1) \
             ON CONFLICT (key) DO UPDATE SET first_ms = min(first_ms, excluded.first_ms), \
             last_ms = max(last_ms, excluded.last_ms), touched_ms = max(touched_ms, excluded.touched_ms), \
             from_inventory = CASE WHEN excluded.last_ms > last_ms THEN 1 ELSE from_inventory END"
        }
        Dialect::Postgres => {
            "INSERT INTO state_keys AS known (scope, key, first_ms, last_ms, touched_ms, from_inventory) \
             VALUES ('', ?1, ?2, ?3, ?4, 1) \
             ON CONFLICT (scope, key) DO UPDATE SET first_ms = LEAST(known.first_ms, excluded.first_ms), \
             last_ms = GREATEST(known.last_ms, excluded.last_ms), \
             touched_ms = GREATEST(known.touched_ms, excluded.touched_ms), \
             from_inventory = CASE WHEN excluded.last_ms > known.last_ms THEN 1 ELSE known.from_inventory END"
        }
    };
    for key in keys {
        let id = state_key(&[key.provider.as_str(), &key.key_id]) as i64;
        db.execute(upsert, crate::db_params![id, key.first_ms, key.last_ms, now_ms])?;
    }
    Ok(keys.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_in_any_order_and_times_in_three_shapes() {
        let text = "Owner,Last_Used,Key_ID,Provider,Created\n\
                    alice,2026-01-15T08:00:00Z,AKIAXEK3Q7BZ7HNM4P2L,aws,2025-06-01\n\
                    bob,N/A,AKIDq3LtR9xW2vN8mB5kH7jF4gD6sA1zC0eY,tencent,2025-07-01 09:30:00\n";
        let (keys, problems) = parse("keys.csv", text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].provider, Provider::Aws);
        assert_eq!(keys[0].last_ms, 1_768_464_000_000);
        assert_eq!(keys[0].first_ms, 1_748_736_000_000);
        // Never used: both times are the creation.
        assert_eq!(keys[1].first_ms, keys[1].last_ms);
    }

    #[test]
    fn bad_lines_are_named_and_skipped() {
        let text = "provider,key_id,last_used\n\
                    gcp,AKIA1,2026-01-01\n\
                    aws,AKIA/1,2026-01-01\n\
                    aws,AKIA2,yesterday\n\
                    aws,AKIA3,\n\
                    aws,AKIA4,2026-01-01\n";
        let (keys, problems) = parse("keys.csv", text);
        assert_eq!(keys.len(), 1, "{problems:?}");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("keys.csv:2: provider `gcp`"), "{problems:?}");
        assert!(
            problems[2].contains("keys.csv:4: last_used `yesterday`"),
            "{problems:?}"
        );
        assert!(
            problems[3].contains("keys.csv:5: key AKIA3 has neither"),
            "{problems:?}"
        );
        let (_, problems) = parse("keys.csv", "user,arn\nx,y\n");
        assert!(
            problems[0].contains("must name `provider` and `key_id`"),
            "{problems:?}"
        );
    }
}
