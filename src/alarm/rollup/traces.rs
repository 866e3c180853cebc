//! Key-operation traces (seeds/002): events of the key operations (the
//! operations named by the rules tagged `sec09-03`) kept whole, raw record
//! included, for a retention period, and the `traces` query over them.
//!
//! Traces are pruned by event time (the newest event time seen, capped at
//! wall-clock now + 1 day against clock-skewed records), at most once per
//! `prune_every` of event time, inside a batch transaction; the accumulator
//! in `rollup` decides when.

use chrono::{DateTime, Utc};
use rusqlite::{Transaction, params};

use crate::db::{Db, DbExt, DbResult, Dialect, Value as SqlValue, get};
use serde::Serialize;
use serde_json::Value;

use crate::alarm::store::timestamp;
use crate::event::model::{AuditEvent, OutcomeResult, Provider};
use crate::rules::RuleSet;
use crate::rules::operations::OpIndex;

/// The key operations: every operation a rule with the trace tag requires
/// (its `operation:` test, found the way the rule index finds it). Disabled
/// rules count too: switching an alarm off does not stop the trace.
#[derive(Clone, Debug, Default)]
pub struct KeyOperations {
    selected: Vec<bool>,
    /// The rule set version this was derived from.
    pub(super) version: String,
}

impl KeyOperations {
    pub fn from_rules(rules: &RuleSet, tag: &str) -> KeyOperations {
        let mut selected = vec![false; rules.catalog.len()];
        for rule in &rules.rules {
            if !rule.tags.iter().any(|candidate| candidate.eq_ignore_ascii_case(tag)) {
                continue;
            }
            if let Some(keys) = rule.condition.index_keys() {
                for operation in keys.operations {
                    if let Some(slot) = selected.get_mut(usize::from(operation)) {
                        *slot = true;
                    }
                }
            }
        }
        // A trace reads its record's type (a registered `raw.` path).
        crate::event::raw_paths::register_raw_actions(&[], &rules.catalog.actions_reading_raw(&selected));
        KeyOperations {
            selected,
            version: rules.version.clone(),
        }
    }

    pub fn contains(&self, operation: OpIndex) -> bool {
        self.selected.get(usize::from(operation)).copied().unwrap_or(false)
    }

    /// Whether any of an event's operations is a key operation.
    pub fn any(&self, operations: &[OpIndex]) -> bool {
        operations.iter().any(|operation| self.contains(*operation))
    }

    /// The key operations' ids, in catalog order.
    pub fn names<'a>(&self, rules: &'a RuleSet) -> Vec<&'a str> {
        self.selected
            .iter()
            .enumerate()
            .filter(|(_, selected)| **selected)
            .filter_map(|(index, _)| OpIndex::try_from(index).ok())
            .map(|index| rules.catalog.name(index))
            .collect()
    }
}

/// A key-operation event, as stored and listed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trace {
    /// Row id (0 before it is stored).
    pub id: i64,
    pub provider: String,
    pub event_id: String,
    pub time: String,
    #[serde(skip)]
    pub time_ms: i64,
    pub account_id: Option<String>,
    /// Who did it: the principal's name, else id, else kind.
    pub operator: String,
    pub principal_id: Option<String>,
    pub principal_kind: String,
    pub access_key_id: Option<String>,
    /// `console`, `api`, `system`, `other`.
    pub call_method: String,
    /// The cloud's own trace / event type (CTS `trace_type`, `eventType`).
    pub trace_type: Option<String>,
    pub service: String,
    pub resource_type: Option<String>,
    pub resource_names: Vec<String>,
    pub action: String,
    pub operations: Vec<String>,
    /// `success` or `failure`.
    pub status: String,
    pub error_code: Option<String>,
    pub source_ip: Option<String>,
    /// The original record (`Null` until read back; a batch carries it as text).
    pub raw: Value,
}

/// A trace to write: the trace and its raw record as JSON text.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTrace {
    pub trace: Trace,
    pub raw: String,
}

/// The top-level fields a trace's type is read from, by cloud.
fn trace_type_fields(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Huawei => &["trace_type"],
        Provider::Tencent | Provider::Aws => &["eventType", "eventtype"],
    }
}

/// Have the normalizers copy the trace-type fields out of each record.
pub(super) fn register_raw_paths() {
    for provider in Provider::ALL {
        for name in trace_type_fields(provider) {
            crate::event::raw_paths::register_raw_path(&[name]);
        }
    }
}

impl Trace {
    pub(super) fn of(event: &AuditEvent, rules: &RuleSet) -> NewTrace {
        // Read from the normalizer's copy (the fields are registered raw
        // paths), so a trace does not parse its record on the engine.
        let trace_type = trace_type_fields(event.provider)
            .iter()
            .find_map(|name| event.raw.for_path(&[*name]).as_object()?.get(*name))
            .and_then(Value::as_str)
            .map(str::to_string);
        let trace = Trace {
            id: 0,
            provider: event.provider.as_str().to_string(),
            event_id: event.event_id.clone(),
            time: timestamp(event.time),
            time_ms: event.time.timestamp_millis(),
            account_id: event.account_id.clone(),
            operator: event.principal_display().to_string(),
            principal_id: event.principal.id.clone(),
            principal_kind: event.principal.kind.as_str().to_string(),
            access_key_id: event.access_key_id().map(str::to_string),
            call_method: event.call_method.as_str().to_string(),
            trace_type,
            service: event.service.clone(),
            resource_type: event.resource.resource_type.clone(),
            resource_names: event.resource.names.clone(),
            action: event.action.clone(),
            operations: event
                .operations
                .iter()
                .map(|operation| rules.catalog.name(*operation).to_string())
                .collect(),
            status: event.outcome.result.as_str().to_string(),
            error_code: event.outcome.error_code.clone(),
            source_ip: event.source_ip_text().map(str::to_string),
            raw: Value::Null,
        };
        NewTrace {
            trace,
            raw: event.raw.to_json_string(),
        }
    }
}

/// Store a batch's traces (a replayed event id is stored once), inside `transaction`.
pub(super) fn write(transaction: &Transaction<'_>, traces: &[NewTrace]) -> rusqlite::Result<()> {
    if !traces.is_empty() {
        let mut insert = transaction.prepare_cached(
            "INSERT OR IGNORE INTO key_traces (provider, event_id, time, time_ms, account_id, operator, principal_id, \
             principal_kind, access_key_id, call_method, trace_type, service, resource_type, resource_names, action, \
             operations, status, error_code, source_ip, raw) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        )?;
        for NewTrace { trace, raw } in traces {
            let names = serde_json::to_string(&trace.resource_names).unwrap_or_else(|_| "[]".into());
            insert.execute(params![
                trace.provider,
                trace.event_id,
                trace.time,
                trace.time_ms,
                trace.account_id,
                trace.operator,
                trace.principal_id,
                trace.principal_kind,
                trace.access_key_id,
                trace.call_method,
                trace.trace_type,
                trace.service,
                trace.resource_type,
                names,
                trace.action,
                trace.operations.join(","),
                trace.status,
                trace.error_code,
                trace.source_ip,
                raw,
            ])?;
        }
    }
    Ok(())
}

/// Delete the traces older than `cutoff` (epoch milliseconds of event time), inside `transaction`.
pub(super) fn prune(transaction: &Transaction<'_>, cutoff: i64) -> rusqlite::Result<()> {
    let removed = transaction
        .prepare_cached("DELETE FROM key_traces WHERE time_ms < ?1")?
        .execute([cutoff])?;
    if removed > 0 {
        tracing::debug!(removed, cutoff = %timestamp(DateTime::from_timestamp_millis(cutoff).unwrap_or_default()), "key-operation traces past retention pruned");
    }
    Ok(())
}

/// Filters of `trailwarden traces`; text filters are case-insensitive.
#[derive(Clone, Debug, Default)]
pub struct TraceFilter {
    /// A call method (`console`, `api` …) or the cloud's trace type (`ConsoleAction`, `AwsApiCall` …).
    pub call_method: Option<String>,
    pub service: Option<String>,
    pub resource_type: Option<String>,
    /// The operator's name, or the principal id.
    pub operator: Option<String>,
    pub status: Option<OutcomeResult>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: u32,
}

/// Key-operation traces matching `filter`, most recent first.
pub fn list_traces(db: &mut dyn Db, filter: &TraceFilter) -> DbResult<Vec<Trace>> {
    let mut sql = String::from(
        "SELECT id, provider, event_id, time, time_ms, account_id, operator, principal_id, principal_kind, \
         access_key_id, call_method, trace_type, service, resource_type, resource_names, action, operations, status, \
         error_code, source_ip, raw FROM key_traces WHERE 1 = 1",
    );
    // Case-insensitive equality (ASCII, as SQLite's NOCASE) on either store.
    let postgres = db.dialect() == Dialect::Postgres;
    let same = |column: &str| {
        if postgres {
            format!("lower({column}) = lower(?N)")
        } else {
            format!("{column} = ?N COLLATE NOCASE")
        }
    };
    let mut clauses: Vec<(String, SqlValue<'_>)> = Vec::new();
    if let Some(value) = filter.call_method.as_deref() {
        let clause = format!(" AND ({} OR {})", same("call_method"), same("trace_type"));
        clauses.push((clause, SqlValue::Text(value)));
    }
    if let Some(value) = filter.service.as_deref() {
        clauses.push((format!(" AND {}", same("service")), SqlValue::Text(value)));
    }
    if let Some(value) = filter.resource_type.as_deref() {
        clauses.push((format!(" AND {}", same("resource_type")), SqlValue::Text(value)));
    }
    if let Some(value) = filter.operator.as_deref() {
        let clause = format!(" AND ({} OR principal_id = ?N)", same("operator"));
        clauses.push((clause, SqlValue::Text(value)));
    }
    if let Some(status) = filter.status {
        clauses.push((" AND status = ?N".into(), SqlValue::Text(status.as_str())));
    }
    if let Some(since) = filter.since {
        clauses.push((" AND time_ms >= ?N".into(), SqlValue::Int(since.timestamp_millis())));
    }
    if let Some(until) = filter.until {
        clauses.push((" AND time_ms < ?N".into(), SqlValue::Int(until.timestamp_millis())));
    }
    clauses.push((
        " ORDER BY time_ms DESC, id DESC LIMIT ?N".into(),
        SqlValue::Int(i64::from(filter.limit)),
    ));
    let mut values: Vec<SqlValue<'_>> = Vec::with_capacity(clauses.len());
    for (clause, value) in clauses {
        values.push(value);
        sql.push_str(&clause.replace("?N", &format!("?{}", values.len())));
    }
    db.query_all(&sql, &values, |row| {
        let names: String = get(row, 14)?;
        let operations: String = get(row, 16)?;
        let raw: String = get(row, 20)?;
        Ok(Trace {
            id: get(row, 0)?,
            provider: get(row, 1)?,
            event_id: get(row, 2)?,
            time: get(row, 3)?,
            time_ms: get(row, 4)?,
            account_id: get(row, 5)?,
            operator: get(row, 6)?,
            principal_id: get(row, 7)?,
            principal_kind: get(row, 8)?,
            access_key_id: get(row, 9)?,
            call_method: get(row, 10)?,
            trace_type: get(row, 11)?,
            service: get(row, 12)?,
            resource_type: get(row, 13)?,
            resource_names: serde_json::from_str(&names).unwrap_or_default(),
            action: get(row, 15)?,
            operations: operations
                .split(',')
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect(),
            status: get(row, 17)?,
            error_code: get(row, 18)?,
            source_ip: get(row, 19)?,
            raw: serde_json::from_str(&raw).unwrap_or(Value::String(raw)),
        })
    })
}
