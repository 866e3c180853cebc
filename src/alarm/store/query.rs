//! Reading alarms and dead letters: filters, sorting, one alarm with its
//! call records, samples and history.

use crate::db::{Db, DbExt, DbResult, Dialect, Row, Value, get};
use crate::db_params;

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
        self.with_db(|db| list_alarms(db, filter))
    }

    /// How many alarms match `filter` (its sort, limit and offset aside).
    pub fn count_alarms(&self, filter: &AlarmFilter) -> Result<u64, StoreError> {
        self.with_db(|db| count_alarms(db, filter))
    }

    pub fn get_alarm(&self, id: i64) -> Result<Option<AlarmDetail>, StoreError> {
        self.with_db(|db| get_alarm(db, id))
    }

    pub fn list_dead_letters(&self, limit: u32) -> Result<Vec<DeadLetterRow>, StoreError> {
        self.with_db(|db| list_dead_letters(db, limit))
    }
}

fn text_params(values: &[String]) -> Vec<Value<'_>> {
    values.iter().map(|value| Value::Text(value)).collect()
}

pub(crate) fn list_alarms<D: Db + ?Sized>(db: &mut D, filter: &AlarmFilter) -> DbResult<Vec<AlarmRow>> {
    let (conditions, values) = alarm_conditions(filter, db.dialect());
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
    let unlimited = match db.dialect() {
        Dialect::Sqlite => "-1",
        Dialect::Postgres => "ALL",
    };
    match (filter.limit, filter.offset) {
        (Some(limit), offset) => sql.push_str(&format!(" LIMIT {limit} OFFSET {}", offset.unwrap_or(0))),
        (None, Some(offset)) => sql.push_str(&format!(" LIMIT {unlimited} OFFSET {offset}")),
        (None, None) => {}
    }
    db.query_all(&sql, &text_params(&values), alarm_row)
}

pub(crate) fn count_alarms<D: Db + ?Sized>(db: &mut D, filter: &AlarmFilter) -> DbResult<u64> {
    let (conditions, values) = alarm_conditions(filter, db.dialect());
    let count: i64 = db
        .query_opt(
            &format!("SELECT COUNT(*) FROM alarms WHERE {conditions}"),
            &text_params(&values),
            |row| get(row, 0),
        )?
        .unwrap_or(0);
    Ok(count.max(0) as u64)
}

pub(crate) fn get_alarm<D: Db + ?Sized>(db: &mut D, id: i64) -> DbResult<Option<AlarmDetail>> {
    let Some(alarm) = db.query_opt(
        ALARM_BY_ID.get_or_init(|| format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE id = ?1")),
        db_params![id],
        alarm_row,
    )?
    else {
        return Ok(None);
    };
    let calls = db.query_all(
        "SELECT source_ip, ip_kind, call_method, service, action, success_count, failure_count, first_call, last_call \
         FROM alarm_calls WHERE alarm_id = ?1 ORDER BY last_call DESC, source_ip",
        db_params![id],
        |row| {
            Ok(CallRecord {
                source_ip: get(row, 0)?,
                ip_kind: get(row, 1)?,
                call_method: get(row, 2)?,
                service: get(row, 3)?,
                action: get(row, 4)?,
                success_count: get::<i64>(row, 5)?.max(0) as u64,
                failure_count: get::<i64>(row, 6)?.max(0) as u64,
                first_call: get(row, 7)?,
                last_call: get(row, 8)?,
            })
        },
    )?;
    let samples = db
        .query_all(
            "SELECT event FROM alarm_samples WHERE alarm_id = ?1 ORDER BY seq",
            db_params![id],
            |row| get::<String>(row, 0),
        )?
        .into_iter()
        .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
        .collect();
    let history = crate::alarm::workflow::history_in(db, id)?;
    Ok(Some(AlarmDetail {
        alarm,
        calls,
        samples,
        history,
    }))
}

pub(crate) fn list_dead_letters<D: Db + ?Sized>(db: &mut D, limit: u32) -> DbResult<Vec<DeadLetterRow>> {
    db.query_all(
        "SELECT id, received_at, origin, line, byte_offset, record_index, reason, excerpt, topic, partition, \
         kafka_offset FROM dead_letters ORDER BY id LIMIT ?1",
        db_params![limit],
        |row| {
            Ok(DeadLetterRow {
                id: get(row, 0)?,
                received_at: get(row, 1)?,
                origin: get(row, 2)?,
                line: get(row, 3)?,
                byte_offset: get(row, 4)?,
                record_index: get(row, 5)?,
                reason: get(row, 6)?,
                excerpt: get(row, 7)?,
                topic: get(row, 8)?,
                partition: get::<Option<i64>>(row, 9)?.and_then(|partition| i32::try_from(partition).ok()),
                kafka_offset: get(row, 10)?,
            })
        },
    )
}

static ALARM_BY_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The WHERE clause of `filter` (`1 = 1` when empty) and its parameters.
fn alarm_conditions(filter: &AlarmFilter, dialect: Dialect) -> (String, Vec<String>) {
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
                let tail_index = values.len();
                sql.push_str(&match dialect {
                    Dialect::Sqlite => format!(
                        " AND substr(access_key_id, 1, length(?{head_index})) = ?{head_index} \
                         AND substr(access_key_id, -length(?{tail_index})) = ?{tail_index} \
                         AND length(access_key_id) >= length(?{head_index}) + length(?{tail_index}) + 4"
                    ),
                    Dialect::Postgres => format!(
                        " AND left(access_key_id, length(CAST(?{head_index} AS TEXT))) = ?{head_index} \
                         AND right(access_key_id, length(CAST(?{tail_index} AS TEXT))) = ?{tail_index} \
                         AND length(access_key_id) >= length(CAST(?{head_index} AS TEXT)) \
                         + length(CAST(?{tail_index} AS TEXT)) + 4"
                    ),
                });
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
        // SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE does.
        let like = match dialect {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        };
        sql.push_str(&format!(
            " AND (rule_id {like} ?{0} ESCAPE '\\' OR title {like} ?{0} ESCAPE '\\' \
             OR account_id {like} ?{0} ESCAPE '\\' OR account_name {like} ?{0} ESCAPE '\\' \
             OR principal_name {like} ?{0} ESCAPE '\\' OR principal_id {like} ?{0} ESCAPE '\\' \
             OR principal_arn {like} ?{0} ESCAPE '\\')",
            values.len()
        ));
    }
    (sql, values)
}

fn alarm_row(row: &dyn Row) -> DbResult<AlarmRow> {
    Ok(AlarmRow {
        id: get(row, 0)?,
        rule: get(row, 1)?,
        rule_hash: get(row, 2)?,
        level: get(row, 3)?,
        title: get(row, 4)?,
        status: get(row, 5)?,
        group_key: get(row, 6)?,
        identity: AlarmIdentity {
            provider: get(row, 7)?,
            account_id: get(row, 8)?,
            account_name: get(row, 9)?,
            account_identity: get(row, 10)?,
            principal_kind: get(row, 11)?,
            principal_id: get(row, 12)?,
            principal_name: get(row, 13)?,
            principal_arn: get(row, 14)?,
            access_key_id: get(row, 15)?,
            access_key_temporary: get(row, 16)?,
        },
        first_seen: get(row, 17)?,
        last_seen: get(row, 18)?,
        count: get::<i64>(row, 19)?.max(0) as u64,
        output: get(row, 20)?,
        created_at: get(row, 21)?,
        updated_at: get(row, 22)?,
    })
}
