//! Reading alarms and dead letters: filters, sorting, one alarm with its
//! call records, samples and history.

use rusqlite::OptionalExtension;

use super::{AlarmIdentity, CallRecord, Store, StoreError};
use crate::rules::Level;
use serde::Serialize;

/// An alarm as listed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlarmRow {
    pub id: i64,
    pub rule: String,
    pub rule_hash: String,
    pub level: String,
    pub title: String,
    pub status: String,
    pub group_key: String,
    #[serde(flatten)]
    pub identity: AlarmIdentity,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
    pub output: String,
    pub created_at: String,
    pub updated_at: String,
}

/// An alarm with its call records and samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlarmDetail {
    #[serde(flatten)]
    pub alarm: AlarmRow,
    pub calls: Vec<CallRecord>,
    pub samples: Vec<serde_json::Value>,
    /// Status transitions, oldest first.
    pub history: Vec<crate::alarm::workflow::Transition>,
}

/// A stored dead letter.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetterRow {
    pub id: i64,
    pub received_at: String,
    pub origin: String,
    pub line: Option<i64>,
    pub byte_offset: Option<i64>,
    pub record_index: Option<i64>,
    /// Kafka dead letters: where the message is.
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub kafka_offset: Option<i64>,
    pub reason: String,
    pub excerpt: String,
}

/// Filters for `list_alarms`.
#[derive(Clone, Debug, Default)]
pub struct AlarmFilter {
    pub status: Option<String>,
    pub min_level: Option<Level>,
    pub rule: Option<String>,
    pub account: Option<String>,
    /// `root`, `sub_account` or `unknown`: who the account identity is.
    pub identity: Option<String>,
    pub access_key: Option<String>,
    /// Alarms active at or after this time (last seen ≥ since), RFC 3339.
    pub since: Option<String>,
    /// Alarms that started before this time (first seen < until), RFC 3339.
    pub until: Option<String>,
    pub sort: AlarmSort,
    /// Oldest / lowest first instead of most recent / highest first.
    pub ascending: bool,
    pub limit: Option<u32>,
    /// Rows skipped (pagination).
    pub offset: Option<u32>,
    /// Free text searched in the rule id, title, account and principal (case-insensitive).
    pub text: Option<String>,
}

/// Order of `list_alarms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AlarmSort {
    /// Most recent activity first.
    #[default]
    Time,
    /// Highest level first, then most recent.
    Level,
    /// Most matches first, then most recent.
    Count,
}

const ALARM_COLUMNS: &str = "id, rule_id, rule_hash, level, title, status, group_key, provider, account_id, account_name, \
     account_identity, principal_kind, principal_id, principal_name, principal_arn, access_key_id, \
     access_key_temporary, first_seen, last_seen, count, last_output, created_at, updated_at";

impl Store {
    pub fn list_alarms(&self, filter: &AlarmFilter) -> Result<Vec<AlarmRow>, StoreError> {
        let (conditions, values) = alarm_conditions(filter);
        let direction = if filter.ascending { "ASC" } else { "DESC" };
        let order = match filter.sort {
            AlarmSort::Time => format!("last_seen {direction}, id {direction}"),
            AlarmSort::Level => format!(
                "CASE level WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END {direction}, \
                 last_seen {direction}, id {direction}"
            ),
            AlarmSort::Count => format!("count {direction}, last_seen {direction}, id {direction}"),
        };
        let mut sql = format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE {conditions} ORDER BY {order}");
        match (filter.limit, filter.offset) {
            (Some(limit), offset) => sql.push_str(&format!(" LIMIT {limit} OFFSET {}", offset.unwrap_or(0))),
            (None, Some(offset)) => sql.push_str(&format!(" LIMIT -1 OFFSET {offset}")),
            (None, None) => {}
        }
        let mut statement = self.connection.prepare(&sql)?;
        let rows = statement.query_map(rusqlite::params_from_iter(values.iter()), alarm_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// How many alarms match `filter` (its sort, limit and offset aside).
    pub fn count_alarms(&self, filter: &AlarmFilter) -> Result<u64, StoreError> {
        let (conditions, values) = alarm_conditions(filter);
        let count: i64 = self.connection.query_row(
            &format!("SELECT COUNT(*) FROM alarms WHERE {conditions}"),
            rusqlite::params_from_iter(values.iter()),
            |row| row.get(0),
        )?;
        Ok(count.max(0) as u64)
    }

    pub fn get_alarm(&self, id: i64) -> Result<Option<AlarmDetail>, StoreError> {
        let alarm = self
            .connection
            .query_row(
                &format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE id = ?1"),
                [id],
                alarm_row,
            )
            .optional()?;
        let Some(alarm) = alarm else { return Ok(None) };
        let mut statement = self.connection.prepare(
            "SELECT source_ip, ip_kind, call_method, service, action, success_count, failure_count, first_call, last_call \
             FROM alarm_calls WHERE alarm_id = ?1 ORDER BY last_call DESC, source_ip",
        )?;
        let calls = statement
            .query_map([id], |row| {
                Ok(CallRecord {
                    source_ip: row.get(0)?,
                    ip_kind: row.get(1)?,
                    call_method: row.get(2)?,
                    service: row.get(3)?,
                    action: row.get(4)?,
                    success_count: row.get::<_, i64>(5)? as u64,
                    failure_count: row.get::<_, i64>(6)? as u64,
                    first_call: row.get(7)?,
                    last_call: row.get(8)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut statement = self
            .connection
            .prepare("SELECT event FROM alarm_samples WHERE alarm_id = ?1 ORDER BY seq")?;
        let samples = statement
            .query_map([id], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
            .collect();
        let history = crate::alarm::workflow::history(&self.connection, id)?;
        Ok(Some(AlarmDetail {
            alarm,
            calls,
            samples,
            history,
        }))
    }
    pub fn list_dead_letters(&self, limit: u32) -> Result<Vec<DeadLetterRow>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT id, received_at, origin, line, byte_offset, record_index, reason, excerpt, topic, partition, \
             kafka_offset FROM dead_letters ORDER BY id LIMIT ?1",
        )?;
        let rows = statement.query_map([limit], |row| {
            Ok(DeadLetterRow {
                id: row.get(0)?,
                received_at: row.get(1)?,
                origin: row.get(2)?,
                line: row.get(3)?,
                byte_offset: row.get(4)?,
                record_index: row.get(5)?,
                reason: row.get(6)?,
                excerpt: row.get(7)?,
                topic: row.get(8)?,
                partition: row.get(9)?,
                kafka_offset: row.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// The WHERE clause of `filter` (`1 = 1` when empty) and its parameters.
fn alarm_conditions(filter: &AlarmFilter) -> (String, Vec<String>) {
    let mut sql = String::from("1 = 1");
    let mut values: Vec<String> = Vec::new();
    if let Some(status) = &filter.status {
        values.push(status.clone());
        sql.push_str(&format!(" AND status = ?{}", values.len()));
    }
    if let Some(rule) = &filter.rule {
        values.push(rule.clone());
        sql.push_str(&format!(" AND rule_id = ?{}", values.len()));
    }
    if let Some(account) = &filter.account {
        values.push(account.clone());
        sql.push_str(&format!(
            " AND (account_id = ?{0} OR account_name = ?{0})",
            values.len()
        ));
    }
    if let Some(identity) = &filter.identity {
        values.push(identity.clone());
        sql.push_str(&format!(" AND account_identity = ?{}", values.len()));
    }
    if let Some(key) = &filter.access_key {
        // A masked key as printed (`AKIDz8****LPx3gnPhESA`) matches by its two ends.
        match key.split_once("****") {
            Some((head, tail)) => {
                values.push(head.to_string());
                let head_index = values.len();
                values.push(tail.to_string());
                sql.push_str(&format!(
                    " AND substr(access_key_id, 1, length(?{head_index})) = ?{head_index} \
                     AND substr(access_key_id, -length(?{0})) = ?{0} \
                     AND length(access_key_id) >= length(?{head_index}) + length(?{0}) + 4",
                    values.len()
                ));
            }
            None => {
                values.push(key.clone());
                sql.push_str(&format!(" AND access_key_id = ?{}", values.len()));
            }
        }
    }
    if let Some(since) = &filter.since {
        values.push(since.clone());
        sql.push_str(&format!(" AND last_seen >= ?{}", values.len()));
    }
    if let Some(until) = &filter.until {
        values.push(until.clone());
        sql.push_str(&format!(" AND first_seen < ?{}", values.len()));
    }
    if let Some(min_level) = filter.min_level {
        let levels: Vec<String> = Level::ALL
            .iter()
            .filter(|level| **level >= min_level)
            .map(|level| format!("'{}'", level.as_str()))
            .collect();
        sql.push_str(&format!(" AND level IN ({})", levels.join(", ")));
    }
    if let Some(text) = filter.text.as_deref().map(str::trim).filter(|text| !text.is_empty()) {
        // Case-insensitive (ASCII) substring search; `%`, `_` and `\` are literal.
        let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        values.push(format!("%{escaped}%"));
        sql.push_str(&format!(
            " AND (rule_id LIKE ?{0} ESCAPE '\\' OR title LIKE ?{0} ESCAPE '\\' OR account_id LIKE ?{0} ESCAPE '\\' \
             OR account_name LIKE ?{0} ESCAPE '\\' OR principal_name LIKE ?{0} ESCAPE '\\' \
             OR principal_id LIKE ?{0} ESCAPE '\\' OR principal_arn LIKE ?{0} ESCAPE '\\')",
            values.len()
        ));
    }
    (sql, values)
}

fn alarm_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AlarmRow> {
    Ok(AlarmRow {
        id: row.get(0)?,
        rule: row.get(1)?,
        rule_hash: row.get(2)?,
        level: row.get(3)?,
        title: row.get(4)?,
        status: row.get(5)?,
        group_key: row.get(6)?,
        identity: AlarmIdentity {
            provider: row.get(7)?,
            account_id: row.get(8)?,
            account_name: row.get(9)?,
            account_identity: row.get(10)?,
            principal_kind: row.get(11)?,
            principal_id: row.get(12)?,
            principal_name: row.get(13)?,
            principal_arn: row.get(14)?,
            access_key_id: row.get(15)?,
            access_key_temporary: row.get(16)?,
        },
        first_seen: row.get(17)?,
        last_seen: row.get(18)?,
        count: row.get::<_, i64>(19)? as u64,
        output: row.get(20)?,
        created_at: row.get(21)?,
        updated_at: row.get(22)?,
    })
}
