//! The god view (seeds/001) and key-operation traces (seeds/002).
//!
//! Every event the engine evaluates — matching a rule or not — is counted
//! into hourly rollups keyed by hour, provider, account, principal, source
//! IP, service, action, resource type, error code (empty on success) and call
//! method; the first sighting of each (access key, source IP) pair is kept
//! with its time. Events of the key operations (the operations named by the
//! rules tagged `sec09-03`) are kept whole, raw record included, for a
//! retention period.
//!
//! Cost per event is one hash of borrowed fields and a counter bump: counts
//! are aggregated in memory per batch (a row is allocated only for a key not
//! yet seen in the batch) and upserted in the batch's one transaction. Known
//! (key, IP) pairs are remembered (loaded from the store at start), so a pair
//! is written only when it is new, appended in event-time order.
//! Traces are pruned by event time (the newest event time seen, capped at
//! wall-clock now + 1 day against clock-skewed records), at most once per
//! `prune_every` of event time, inside a batch transaction.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use serde_json::Value;

use super::store::timestamp;
use crate::event::model::{AuditEvent, CallMethod, OutcomeResult, Provider};
use crate::rules::RuleSet;
use crate::rules::operations::OpIndex;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Known (key, IP) pairs remembered in memory; past this the memory starts
/// over (a pair seen again is then appended again; readers take the earliest).
const MAX_KNOWN_PAIRS: usize = 1_000_000;

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
}

impl Default for ActivityOptions {
    fn default() -> ActivityOptions {
        ActivityOptions {
            rollups: true,
            traces: true,
            trace_retention: Duration::from_secs(7 * 86_400),
            prune_every: Duration::from_secs(600),
            trace_tag: "sec09-03".to_string(),
        }
    }
}

/// The key operations: every operation a rule with the trace tag requires
/// (its `operation:` test, found the way the rule index finds it). Disabled
/// rules count too: switching an alarm off does not stop the trace.
#[derive(Clone, Debug, Default)]
pub struct KeyOperations {
    selected: Vec<bool>,
    /// The rule set version this was derived from.
    version: String,
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

/// One hourly count, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HourlyCount {
    /// Start of the hour, epoch milliseconds (UTC).
    pub hour_ms: i64,
    pub provider: Provider,
    pub account_id: String,
    pub principal: String,
    pub source_ip: String,
    pub service: String,
    pub action: String,
    pub resource_type: String,
    /// Empty for successful calls.
    pub error_code: String,
    pub call_method: CallMethod,
    pub count: u64,
    pub failures: u64,
    /// Hash of the key fields: the row's place within its hour in the table.
    pub hash: u32,
}

/// The fields of an hourly count, borrowed from an event.
#[derive(Hash)]
struct HourKey<'a> {
    hour_ms: i64,
    provider: Provider,
    account_id: &'a str,
    principal: &'a str,
    source_ip: &'a str,
    service: &'a str,
    action: &'a str,
    resource_type: &'a str,
    error_code: &'a str,
    call_method: CallMethod,
}

impl<'a> HourKey<'a> {
    fn of(event: &'a AuditEvent) -> HourKey<'a> {
        let error_code = match event.outcome.result {
            OutcomeResult::Failure => event.outcome.error_code.as_deref().unwrap_or(""),
            OutcomeResult::Success => "",
        };
        HourKey {
            hour_ms: event.time.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS,
            provider: event.provider,
            account_id: event.account_id.as_deref().unwrap_or(""),
            principal: event.principal_display(),
            source_ip: event.source_ip_text().unwrap_or(""),
            service: &event.service,
            action: &event.action,
            resource_type: event.resource.resource_type.as_deref().unwrap_or(""),
            error_code,
            call_method: event.call_method,
        }
    }

    fn matches(&self, row: &HourlyCount) -> bool {
        self.hour_ms == row.hour_ms
            && self.provider == row.provider
            && self.call_method == row.call_method
            && self.action == row.action
            && self.principal == row.principal
            && self.source_ip == row.source_ip
            && self.account_id == row.account_id
            && self.service == row.service
            && self.resource_type == row.resource_type
            && self.error_code == row.error_code
    }

    fn to_row(&self) -> HourlyCount {
        HourlyCount {
            hour_ms: self.hour_ms,
            provider: self.provider,
            account_id: self.account_id.to_string(),
            principal: self.principal.to_string(),
            source_ip: self.source_ip.to_string(),
            service: self.service.to_string(),
            action: self.action.to_string(),
            resource_type: self.resource_type.to_string(),
            error_code: self.error_code.to_string(),
            call_method: self.call_method,
            count: 0,
            failures: 0,
            hash: 0,
        }
    }
}

/// A small, fast, non-cryptographic hasher (the Fx hash) for in-batch keys.
#[derive(Default)]
struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_i64(&mut self, value: i64) {
        self.add(value as u64);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxBuild = BuildHasherDefault<FxHasher>;

const NO_ROW: u32 = u32::MAX;

/// Hourly counts of one batch: rows, and a hash index with collision chains.
#[derive(Default)]
struct HourlyCounts {
    rows: Vec<HourlyCount>,
    /// For each row, the next row with the same hash (or `NO_ROW`).
    chain: Vec<u32>,
    index: HashMap<u64, u32, FxBuild>,
}

impl HourlyCounts {
    fn add(&mut self, event: &AuditEvent) {
        let key = HourKey::of(event);
        let mut hasher = FxHasher::default();
        key.hash(&mut hasher);
        let hash = hasher.finish();
        let failed = event.outcome.result == OutcomeResult::Failure;
        let head = self.index.get(&hash).copied().unwrap_or(NO_ROW);
        let mut slot = head;
        while let Some(row) = self.rows.get_mut(slot as usize) {
            if key.matches(row) {
                row.count += 1;
                row.failures += u64::from(failed);
                return;
            }
            slot = self.chain.get(slot as usize).copied().unwrap_or(NO_ROW);
        }
        let Ok(position) = u32::try_from(self.rows.len()) else {
            return;
        };
        let mut row = key.to_row();
        row.count = 1;
        row.failures = u64::from(failed);
        row.hash = ((hash >> 32) ^ hash) as u32;
        self.rows.push(row);
        self.chain.push(head);
        self.index.insert(hash, position);
    }

    fn take(&mut self) -> Vec<HourlyCount> {
        self.index.clear();
        self.chain.clear();
        std::mem::take(&mut self.rows)
    }
}

/// A first-seen (access key, source IP) pair, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyIpPair {
    pub access_key_id: String,
    pub source_ip: String,
    pub provider: String,
    pub account_id: String,
    pub principal: String,
    pub first_seen: String,
    #[serde(skip)]
    pub first_ms: i64,
}

fn pair_hash(key: &str, ip: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    (key, ip).hash(&mut hasher);
    hasher.finish()
}

/// First sightings of (key, IP) pairs.
#[derive(Default)]
struct PairTracker {
    /// Hash of (key, IP) → the earliest time already written. A 64-bit
    /// SipHash: a collision (about one in 10^13 for a million pairs) would
    /// hide one new pair.
    known: HashMap<u64, i64, FxBuild>,
    /// Hash → position in `rows`, for this batch.
    batch: HashMap<u64, usize, FxBuild>,
    rows: Vec<KeyIpPair>,
}

impl PairTracker {
    fn add(&mut self, event: &AuditEvent) {
        let (Some(key), Some(ip)) = (
            event.access_key_id().filter(|key| !key.is_empty()),
            event.source_ip_text().filter(|ip| !ip.is_empty()),
        ) else {
            return;
        };
        let hash = pair_hash(key, ip);
        let time = event.time.timestamp_millis();
        match self.known.get_mut(&hash) {
            Some(first) if *first <= time => return,
            Some(first) => *first = time,
            None => {
                if self.known.len() >= MAX_KNOWN_PAIRS {
                    self.known.clear();
                }
                self.known.insert(hash, time);
            }
        }
        let row = KeyIpPair {
            access_key_id: key.to_string(),
            source_ip: ip.to_string(),
            provider: event.provider.as_str().to_string(),
            account_id: event.account_id.clone().unwrap_or_default(),
            principal: event.principal_display().to_string(),
            first_seen: timestamp(event.time),
            first_ms: time,
        };
        match self.batch.get(&hash).and_then(|position| self.rows.get_mut(*position)) {
            Some(existing) => *existing = row,
            None => {
                self.batch.insert(hash, self.rows.len());
                self.rows.push(row);
            }
        }
    }

    fn take(&mut self) -> Vec<KeyIpPair> {
        self.batch.clear();
        std::mem::take(&mut self.rows)
    }

    /// Remember a pair already in the store.
    fn remember(&mut self, key: &str, ip: &str, first_ms: i64) {
        if self.known.len() >= MAX_KNOWN_PAIRS {
            return;
        }
        let first = self.known.entry(pair_hash(key, ip)).or_insert(first_ms);
        *first = (*first).min(first_ms);
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

impl Trace {
    fn of(event: &AuditEvent, rules: &RuleSet) -> NewTrace {
        let trace_type_fields: &[&str] = match event.provider {
            Provider::Huawei => &["trace_type"],
            Provider::Tencent | Provider::Aws => &["eventType", "eventtype"],
        };
        let trace_type = event.raw.as_object().and_then(|record| {
            trace_type_fields
                .iter()
                .find_map(|name| record.get(*name))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
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
            raw: event.raw.to_string(),
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
}

impl ActivityBatch {
    pub fn is_empty(&self) -> bool {
        self.hourly.is_empty() && self.key_ips.is_empty() && self.traces.is_empty() && self.prune_before_ms.is_none()
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
    newest_ms: Option<i64>,
    last_prune_ms: Option<i64>,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Activity {
    pub fn new(options: ActivityOptions) -> Activity {
        Activity {
            options,
            key_operations: KeyOperations::default(),
            hourly: HourlyCounts::default(),
            pairs: PairTracker::default(),
            traces: Vec::new(),
            newest_ms: None,
            last_prune_ms: None,
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
        if self.options.traces {
            let time = event.time.timestamp_millis();
            self.newest_ms = Some(self.newest_ms.map_or(time, |newest| newest.max(time)));
            if self.key_operations.any(&event.operations) {
                self.traces.push(Trace::of(event, rules));
            }
        }
    }

    /// Everything observed since the last call; `last` forces a prune.
    pub fn take(&mut self, last: bool) -> ActivityBatch {
        ActivityBatch {
            hourly: self.hourly.take(),
            key_ips: self.pairs.take(),
            traces: std::mem::take(&mut self.traces),
            prune_before_ms: self.prune_due(last, Utc::now().timestamp_millis()),
        }
    }

    fn prune_due(&mut self, last: bool, now_ms: i64) -> Option<i64> {
        if !self.options.traces {
            return None;
        }
        let newest = self.newest_ms?.min(now_ms.saturating_add(DAY_MS));
        let every = millis(self.options.prune_every);
        let due = last
            || self
                .last_prune_ms
                .is_none_or(|previous| newest.saturating_sub(previous) >= every);
        if !due {
            return None;
        }
        self.last_prune_ms = Some(newest);
        Some(newest.saturating_sub(millis(self.options.trace_retention)))
    }
}

/// Keys tried for one hourly row before giving up (collisions need one).
const MAX_PROBES: u32 = 1024;

/// The first key of the hour holding `time_ms`.
fn hour_key(time_ms: i64) -> i64 {
    time_ms.div_euclid(HOUR_MS).saturating_mul(1 << 32)
}

/// The first key of the first hour starting at or after `time_ms`.
fn hour_key_ceil(time_ms: i64) -> i64 {
    let hour = time_ms.div_euclid(HOUR_MS) + i64::from(time_ms.rem_euclid(HOUR_MS) != 0);
    hour.saturating_mul(1 << 32)
}

/// Write a batch's rollups, pairs and traces, and prune, inside `transaction`.
pub(crate) fn write(transaction: &Transaction<'_>, batch: &ActivityBatch) -> rusqlite::Result<()> {
    if !batch.hourly.is_empty() {
        // Adds to the row with the same key columns; a different row on the
        // key (a hash collision) leaves nothing changed, and the next key is tried.
        let mut upsert = transaction.prepare_cached(
            "INSERT INTO activity_hourly (key, hour_ms, provider, account_id, principal, source_ip, service, action, \
             resource_type, error_code, call_method, count, failures) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (key) DO UPDATE SET count = count + excluded.count, failures = failures + excluded.failures \
             WHERE action = excluded.action AND principal = excluded.principal AND source_ip = excluded.source_ip \
             AND account_id = excluded.account_id AND provider = excluded.provider AND service = excluded.service \
             AND resource_type = excluded.resource_type AND error_code = excluded.error_code \
             AND call_method = excluded.call_method AND hour_ms = excluded.hour_ms",
        )?;
        for row in &batch.hourly {
            let base = hour_key(row.hour_ms);
            let mut probe = row.hash;
            let mut written = false;
            for _ in 0..MAX_PROBES {
                let changed = upsert.execute(params![
                    base + i64::from(probe),
                    row.hour_ms,
                    row.provider.as_str(),
                    row.account_id,
                    row.principal,
                    row.source_ip,
                    row.service,
                    row.action,
                    row.resource_type,
                    row.error_code,
                    row.call_method.as_str(),
                    row.count as i64,
                    row.failures as i64,
                ])?;
                if changed > 0 {
                    written = true;
                    break;
                }
                probe = probe.wrapping_add(1);
            }
            if !written {
                tracing::error!(hour_ms = row.hour_ms, principal = %row.principal, action = %row.action, count = row.count, "activity rollup: no free key in this hour after {MAX_PROBES} tries; count dropped");
            }
        }
    }
    if !batch.key_ips.is_empty() {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO activity_key_ips (access_key_id, source_ip, provider, account_id, principal, first_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for pair in &batch.key_ips {
            insert.execute(params![
                pair.access_key_id,
                pair.source_ip,
                pair.provider,
                pair.account_id,
                pair.principal,
                pair.first_ms,
            ])?;
        }
    }
    if !batch.traces.is_empty() {
        let mut insert = transaction.prepare_cached(
            "INSERT OR IGNORE INTO key_traces (provider, event_id, time, time_ms, account_id, operator, principal_id, \
             principal_kind, access_key_id, call_method, trace_type, service, resource_type, resource_names, action, \
             operations, status, error_code, source_ip, raw) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        )?;
        for NewTrace { trace, raw } in &batch.traces {
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
    if let Some(cutoff) = batch.prune_before_ms {
        let removed = transaction
            .prepare_cached("DELETE FROM key_traces WHERE time_ms < ?1")?
            .execute([cutoff])?;
        if removed > 0 {
            tracing::debug!(removed, cutoff = %timestamp(DateTime::from_timestamp_millis(cutoff).unwrap_or_default()), "key-operation traces past retention pruned");
        }
    }
    Ok(())
}

/// The range and size of an activity report.
#[derive(Clone, Debug, Default)]
pub struct ActivityQuery {
    /// Inclusive; rollups count from the start of this hour.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    /// Rows per list.
    pub top: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrincipalActivity {
    pub provider: String,
    pub account_id: String,
    pub principal: String,
    pub events: u64,
    pub failures: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceIpActivity {
    pub source_ip: String,
    pub events: u64,
    pub failures: u64,
    /// Distinct principals calling from this address.
    pub principals: u64,
}

/// Calls of one API (service and action) of one cloud.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiActivity {
    pub provider: String,
    pub service: String,
    pub action: String,
    pub events: u64,
    pub failures: u64,
    /// Distinct principals calling it.
    pub principals: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountFailures {
    pub provider: String,
    pub account_id: String,
    pub events: u64,
    pub failures: u64,
    /// failures / events.
    pub failure_rate: f64,
}

/// One hour of the range: what the console's activity chart draws.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HourActivity {
    /// Start of the hour (UTC, RFC 3339).
    pub hour: String,
    pub events: u64,
    pub failures: u64,
}

/// `trailwarden activity`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActivityReport {
    pub since: Option<String>,
    pub until: Option<String>,
    pub events: u64,
    pub failures: u64,
    /// Events and failures per hour with any activity, oldest first (hours
    /// without events are left out).
    pub hourly: Vec<HourActivity>,
    pub busiest_principals: Vec<PrincipalActivity>,
    pub busiest_source_ips: Vec<SourceIpActivity>,
    pub busiest_apis: Vec<ApiActivity>,
    pub failure_rates: Vec<AccountFailures>,
    /// Pairs first seen in the range (at most `top`), earliest first.
    pub new_key_ips: Vec<KeyIpPair>,
    pub new_key_ips_total: u64,
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub fn activity_report(connection: &Connection, query: &ActivityQuery) -> rusqlite::Result<ActivityReport> {
    // Hours that start before `until` and end after the start of `since`'s hour.
    let key_low = query.since.map_or(i64::MIN, |since| hour_key(since.timestamp_millis()));
    let key_high = query
        .until
        .map_or(i64::MAX, |until| hour_key_ceil(until.timestamp_millis()));
    let since = query.since.map(timestamp);
    let until = query.until.map(timestamp);
    let top = i64::from(query.top);
    let (events, failures) = connection.query_row(
        "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(failures), 0) FROM activity_hourly \
         WHERE key >= ?1 AND key < ?2",
        params![key_low, key_high],
        |row| Ok((count(row.get(0)?), count(row.get(1)?))),
    )?;
    let mut statement = connection.prepare(
        "SELECT hour_ms, SUM(count), SUM(failures) FROM activity_hourly WHERE key >= ?1 AND key < ?2 \
         GROUP BY hour_ms ORDER BY hour_ms",
    )?;
    let hourly = statement
        .query_map(params![key_low, key_high], |row| {
            let hour_ms: i64 = row.get(0)?;
            Ok(HourActivity {
                hour: timestamp(DateTime::from_timestamp_millis(hour_ms).unwrap_or_default()),
                events: count(row.get(1)?),
                failures: count(row.get(2)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut statement = connection.prepare(
        "SELECT provider, account_id, principal, SUM(count) AS events, SUM(failures) FROM activity_hourly \
         WHERE key >= ?1 AND key < ?2 GROUP BY provider, account_id, principal \
         ORDER BY events DESC, provider, account_id, principal LIMIT ?3",
    )?;
    let busiest_principals = statement
        .query_map(params![key_low, key_high, top], |row| {
            Ok(PrincipalActivity {
                provider: row.get(0)?,
                account_id: row.get(1)?,
                principal: row.get(2)?,
                events: count(row.get(3)?),
                failures: count(row.get(4)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut statement = connection.prepare(
        "SELECT source_ip, SUM(count) AS events, SUM(failures), COUNT(DISTINCT provider || '/' || account_id || '/' || principal) \
         FROM activity_hourly WHERE key >= ?1 AND key < ?2 AND source_ip != '' GROUP BY source_ip \
         ORDER BY events DESC, source_ip LIMIT ?3",
    )?;
    let busiest_source_ips = statement
        .query_map(params![key_low, key_high, top], |row| {
            Ok(SourceIpActivity {
                source_ip: row.get(0)?,
                events: count(row.get(1)?),
                failures: count(row.get(2)?),
                principals: count(row.get(3)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut statement = connection.prepare(
        "SELECT provider, service, action, SUM(count) AS events, SUM(failures), \
         COUNT(DISTINCT account_id || '/' || principal) FROM activity_hourly WHERE key >= ?1 AND key < ?2 \
         GROUP BY provider, service, action ORDER BY events DESC, provider, service, action LIMIT ?3",
    )?;
    let busiest_apis = statement
        .query_map(params![key_low, key_high, top], |row| {
            Ok(ApiActivity {
                provider: row.get(0)?,
                service: row.get(1)?,
                action: row.get(2)?,
                events: count(row.get(3)?),
                failures: count(row.get(4)?),
                principals: count(row.get(5)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut statement = connection.prepare(
        "SELECT provider, account_id, SUM(count) AS events, SUM(failures) AS failed FROM activity_hourly \
         WHERE key >= ?1 AND key < ?2 GROUP BY provider, account_id \
         ORDER BY CAST(failed AS REAL) / events DESC, events DESC, provider, account_id LIMIT ?3",
    )?;
    let failure_rates = statement
        .query_map(params![key_low, key_high, top], |row| {
            let events = count(row.get(2)?);
            let failures = count(row.get(3)?);
            Ok(AccountFailures {
                provider: row.get(0)?,
                account_id: row.get(1)?,
                events,
                failures,
                failure_rate: if events == 0 {
                    0.0
                } else {
                    failures as f64 / events as f64
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let low = query.since.map_or(i64::MIN, |since| since.timestamp_millis());
    let high = query.until.map_or(i64::MAX, |until| until.timestamp_millis());
    // A pair is new in the range when its earliest sighting is; SQLite takes
    // the other columns from the row holding MIN(first_ms).
    let earliest = "SELECT access_key_id, source_ip, provider, account_id, principal, MIN(first_ms) AS first_at \
                    FROM activity_key_ips WHERE first_ms < ?2 GROUP BY access_key_id, source_ip \
                    HAVING first_at >= ?1";
    let new_key_ips_total = connection.query_row(
        &format!("SELECT COUNT(*) FROM ({earliest})"),
        params![low, high],
        |row| Ok(count(row.get(0)?)),
    )?;
    let mut statement = connection.prepare(&format!(
        "{earliest} ORDER BY first_at, access_key_id, source_ip LIMIT ?3"
    ))?;
    let new_key_ips = statement
        .query_map(params![low, high, top], |row| {
            Ok(KeyIpPair {
                access_key_id: row.get(0)?,
                source_ip: row.get(1)?,
                provider: row.get(2)?,
                account_id: row.get(3)?,
                principal: row.get(4)?,
                first_seen: String::new(),
                first_ms: row.get(5)?,
            })
            .map(|mut pair| {
                pair.first_seen = timestamp(DateTime::from_timestamp_millis(pair.first_ms).unwrap_or_default());
                pair
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ActivityReport {
        since,
        until,
        events,
        failures,
        hourly,
        busiest_principals,
        busiest_source_ips,
        busiest_apis,
        failure_rates,
        new_key_ips,
        new_key_ips_total,
    })
}

/// Feed the pairs already stored (the most recent first, up to the memory's
/// size) to `remember`, so a restarted engine does not write them again.
pub fn load_pairs(connection: &Connection, remember: &mut dyn FnMut(&str, &str, i64)) -> rusqlite::Result<usize> {
    let mut statement = connection
        .prepare("SELECT access_key_id, source_ip, first_ms FROM activity_key_ips ORDER BY id DESC LIMIT ?1")?;
    let mut rows = statement.query([i64::try_from(MAX_KNOWN_PAIRS).unwrap_or(i64::MAX)])?;
    let mut loaded = 0;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let ip: String = row.get(1)?;
        remember(&key, &ip, row.get(2)?);
        loaded += 1;
    }
    Ok(loaded)
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
pub fn list_traces(connection: &Connection, filter: &TraceFilter) -> rusqlite::Result<Vec<Trace>> {
    let mut sql = String::from(
        "SELECT id, provider, event_id, time, time_ms, account_id, operator, principal_id, principal_kind, \
         access_key_id, call_method, trace_type, service, resource_type, resource_names, action, operations, status, \
         error_code, source_ip, raw FROM key_traces WHERE 1 = 1",
    );
    let mut values: Vec<SqlValue> = Vec::new();
    let mut push = |sql: &mut String, clause: &str, value: SqlValue| {
        values.push(value);
        sql.push_str(&clause.replace("?N", &format!("?{}", values.len())));
    };
    let text_filters: [(Option<&String>, &str); 4] = [
        (
            filter.call_method.as_ref(),
            " AND (call_method = ?N COLLATE NOCASE OR trace_type = ?N COLLATE NOCASE)",
        ),
        (filter.service.as_ref(), " AND service = ?N COLLATE NOCASE"),
        (filter.resource_type.as_ref(), " AND resource_type = ?N COLLATE NOCASE"),
        (
            filter.operator.as_ref(),
            " AND (operator = ?N COLLATE NOCASE OR principal_id = ?N)",
        ),
    ];
    for (value, clause) in text_filters {
        if let Some(value) = value {
            push(&mut sql, clause, SqlValue::Text(value.clone()));
        }
    }
    if let Some(status) = filter.status {
        push(
            &mut sql,
            " AND status = ?N",
            SqlValue::Text(status.as_str().to_string()),
        );
    }
    if let Some(since) = filter.since {
        push(
            &mut sql,
            " AND time_ms >= ?N",
            SqlValue::Integer(since.timestamp_millis()),
        );
    }
    if let Some(until) = filter.until {
        push(
            &mut sql,
            " AND time_ms < ?N",
            SqlValue::Integer(until.timestamp_millis()),
        );
    }
    push(
        &mut sql,
        " ORDER BY time_ms DESC, id DESC LIMIT ?N",
        SqlValue::Integer(i64::from(filter.limit)),
    );
    let mut statement = connection.prepare(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(values.iter()), |row| {
        let names: String = row.get(14)?;
        let operations: String = row.get(16)?;
        let raw: String = row.get(20)?;
        Ok(Trace {
            id: row.get(0)?,
            provider: row.get(1)?,
            event_id: row.get(2)?,
            time: row.get(3)?,
            time_ms: row.get(4)?,
            account_id: row.get(5)?,
            operator: row.get(6)?,
            principal_id: row.get(7)?,
            principal_kind: row.get(8)?,
            access_key_id: row.get(9)?,
            call_method: row.get(10)?,
            trace_type: row.get(11)?,
            service: row.get(12)?,
            resource_type: row.get(13)?,
            resource_names: serde_json::from_str(&names).unwrap_or_default(),
            action: row.get(15)?,
            operations: operations
                .split(',')
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect(),
            status: row.get(17)?,
            error_code: row.get(18)?,
            source_ip: row.get(19)?,
            raw: serde_json::from_str(&raw).unwrap_or(Value::String(raw)),
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::model::{
        AccessKey, IpKind, Outcome, Principal, PrincipalKind, Resource, SourceAddress, TimeSource,
    };
    use chrono::TimeZone;

    /// 2026-03-02T00:00:00Z.
    const START: i64 = 1_772_409_600;

    fn rules() -> RuleSet {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        crate::rules::load_rules(&dir, &crate::rules::RuleOptions::default()).expect("the shipped rules load")
    }

    struct Call<'a> {
        seconds: i64,
        service: &'a str,
        action: &'a str,
        user: &'a str,
        key: Option<&'a str>,
        ip: &'a str,
        error: Option<&'a str>,
    }

    fn event(rules: &RuleSet, call: Call<'_>) -> AuditEvent {
        let mut event = AuditEvent {
            provider: Provider::Tencent,
            event_id: format!("ev-{}-{}-{}", call.seconds, call.action, call.user),
            request_id: None,
            time: Utc.timestamp_opt(START + call.seconds, 0).unwrap(),
            time_source: TimeSource::Event,
            account_id: Some("100012345678".into()),
            account_name: None,
            principal: Principal {
                kind: PrincipalKind::User,
                id: Some(format!("id-{}", call.user)),
                name: Some(call.user.to_string()),
                arn: None,
            },
            access_key: call.key.map(|key| AccessKey {
                id: key.to_string(),
                temporary: false,
            }),
            source: Some(SourceAddress {
                text: call.ip.to_string(),
                ip: call.ip.parse().ok(),
                kind: IpKind::Public,
            }),
            platform_source: None,
            user_agent: None,
            service: call.service.to_string(),
            action: call.action.to_string(),
            operations: vec![],
            region: None,
            call_method: CallMethod::Api,
            outcome: Outcome {
                result: if call.error.is_some() {
                    OutcomeResult::Failure
                } else {
                    OutcomeResult::Success
                },
                error_code: call.error.map(str::to_string),
                error_message: None,
            },
            read_only: None,
            resource: Resource {
                resource_type: Some(call.service.to_string()),
                names: vec!["ins-1".into()],
            },
            mfa: None,
            degraded: None,
            raw: serde_json::json!({"eventName": call.action, "eventType": "ConsoleCall"}),
            origin: Default::default(),
        };
        rules.catalog.classify_event(&mut event);
        event
    }

    fn call<'a>(seconds: i64, action: &'a str, user: &'a str, ip: &'a str) -> Call<'a> {
        Call {
            seconds,
            service: "cvm",
            action,
            user,
            key: Some("AKIDexample000000000000000000000000001"),
            ip,
            error: None,
        }
    }

    #[test]
    fn events_are_counted_per_hour_and_key_with_failures() {
        let rules = rules();
        let mut activity = Activity::new(ActivityOptions::default());
        activity.use_rules(&rules);
        for seconds in [10, 20, 3599] {
            activity.observe(
                &event(&rules, call(seconds, "DescribeInstances", "ops", "1.2.3.4")),
                &rules,
            );
        }
        // Same hour, another address; next hour; a failure with its code.
        activity.observe(&event(&rules, call(30, "DescribeInstances", "ops", "5.6.7.8")), &rules);
        activity.observe(
            &event(&rules, call(3600, "DescribeInstances", "ops", "1.2.3.4")),
            &rules,
        );
        let mut failed = call(40, "DescribeInstances", "ops", "1.2.3.4");
        failed.error = Some("UnauthorizedOperation");
        activity.observe(&event(&rules, failed), &rules);
        let batch = activity.take(false);
        let mut rows: Vec<(i64, &str, &str, u64, u64)> = batch
            .hourly
            .iter()
            .map(|row| {
                (
                    (row.hour_ms / 1000 - START) / 3600,
                    row.source_ip.as_str(),
                    row.error_code.as_str(),
                    row.count,
                    row.failures,
                )
            })
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                (0, "1.2.3.4", "", 3, 0),
                (0, "1.2.3.4", "UnauthorizedOperation", 1, 1),
                (0, "5.6.7.8", "", 1, 0),
                (1, "1.2.3.4", "", 1, 0),
            ]
        );
        assert!(activity.take(false).hourly.is_empty(), "a take empties the batch");
    }

    #[test]
    fn a_key_ip_pair_is_written_when_new_or_earlier_only() {
        let rules = rules();
        let mut activity = Activity::new(ActivityOptions::default());
        activity.use_rules(&rules);
        activity.observe(&event(&rules, call(100, "DescribeInstances", "ops", "1.2.3.4")), &rules);
        activity.observe(&event(&rules, call(200, "DescribeInstances", "ops", "1.2.3.4")), &rules);
        let pairs = activity.take(false).key_ips;
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].first_seen, "2026-03-02T00:01:40.000Z");
        activity.observe(&event(&rules, call(300, "DescribeInstances", "ops", "1.2.3.4")), &rules);
        assert!(
            activity.take(false).key_ips.is_empty(),
            "a known pair is not written again"
        );
        activity.observe(&event(&rules, call(50, "DescribeInstances", "ops", "1.2.3.4")), &rules);
        activity.observe(&event(&rules, call(60, "DescribeInstances", "ops", "9.9.9.9")), &rules);
        let mut no_key = call(70, "DescribeInstances", "ops", "8.8.8.8");
        no_key.key = None;
        activity.observe(&event(&rules, no_key), &rules);
        let mut pairs: Vec<(String, String)> = activity
            .take(false)
            .key_ips
            .into_iter()
            .map(|pair| (pair.source_ip, pair.first_seen))
            .collect();
        pairs.sort();
        assert_eq!(
            pairs,
            vec![
                ("1.2.3.4".to_string(), "2026-03-02T00:00:50.000Z".to_string()),
                ("9.9.9.9".to_string(), "2026-03-02T00:01:00.000Z".to_string()),
            ]
        );
    }

    #[test]
    fn key_operations_come_from_the_sec09_rules() {
        let rules = rules();
        let key_operations = KeyOperations::from_rules(&rules, "sec09-03");
        let names = key_operations.names(&rules);
        for expected in [
            "iam.user.create",
            "net.sg.rule_delete",
            "compute.instance.reboot",
            "cost.instance.create",
            "net.eip.change",
        ] {
            assert!(names.contains(&expected), "{expected} missing from {names:?}");
        }
        for not_key in ["iam.login.console", "iam.access_key.create"] {
            assert!(!names.contains(&not_key), "{not_key} is not a SEC09-03 operation");
        }
        assert!(
            KeyOperations::from_rules(&rules, "no-such-tag")
                .names(&rules)
                .is_empty()
        );

        let mut activity = Activity::new(ActivityOptions::default());
        activity.use_rules(&rules);
        activity.observe(&event(&rules, call(10, "RebootInstances", "ops", "1.2.3.4")), &rules);
        activity.observe(&event(&rules, call(20, "DescribeInstances", "ops", "1.2.3.4")), &rules);
        let mut failed = call(30, "StopInstances", "intern", "1.2.3.4");
        failed.error = Some("UnauthorizedOperation");
        activity.observe(&event(&rules, failed), &rules);
        let traces = activity.take(false).traces;
        let summary: Vec<(&str, &str, &str)> = traces
            .iter()
            .map(|new| {
                (
                    new.trace.action.as_str(),
                    new.trace.operator.as_str(),
                    new.trace.status.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("RebootInstances", "ops", "success"),
                ("StopInstances", "intern", "failure")
            ]
        );
        assert_eq!(traces[0].trace.trace_type.as_deref(), Some("ConsoleCall"));
        let raw: Value = serde_json::from_str(&traces[0].raw).unwrap();
        assert_eq!(raw["eventName"], "RebootInstances");
        assert_eq!(traces[0].trace.operations, vec!["compute.instance.reboot".to_string()]);

        let mut off = Activity::new(ActivityOptions {
            traces: false,
            ..ActivityOptions::default()
        });
        off.use_rules(&rules);
        off.observe(&event(&rules, call(10, "RebootInstances", "ops", "1.2.3.4")), &rules);
        let batch = off.take(true);
        assert!(batch.traces.is_empty() && batch.prune_before_ms.is_none());
        assert_eq!(batch.hourly.len(), 1);
    }

    #[test]
    fn pruning_follows_event_time_at_most_once_per_interval() {
        let rules = rules();
        let options = ActivityOptions {
            trace_retention: Duration::from_secs(7 * 86_400),
            prune_every: Duration::from_secs(600),
            ..ActivityOptions::default()
        };
        let mut activity = Activity::new(options);
        activity.use_rules(&rules);
        let now = (START + 100 * 86_400) * 1000;
        assert_eq!(activity.prune_due(false, now), None, "nothing seen, nothing to prune");
        activity.observe(&event(&rules, call(0, "DescribeInstances", "ops", "1.2.3.4")), &rules);
        let week_ms = 7 * DAY_MS;
        assert_eq!(
            activity.prune_due(false, now),
            Some(START * 1000 - week_ms),
            "first batch prunes"
        );
        activity.observe(&event(&rules, call(300, "DescribeInstances", "ops", "1.2.3.4")), &rules);
        assert_eq!(
            activity.prune_due(false, now),
            None,
            "5 minutes of event time later: not yet"
        );
        assert_eq!(
            activity.prune_due(true, now),
            Some((START + 300) * 1000 - week_ms),
            "the last batch always prunes"
        );
        activity.observe(
            &event(&rules, call(1000, "DescribeInstances", "ops", "1.2.3.4")),
            &rules,
        );
        assert_eq!(activity.prune_due(false, now), Some((START + 1000) * 1000 - week_ms));
        // A record from the far future cannot push the cutoff past now + 1 day.
        activity.observe(
            &event(&rules, call(400 * 86_400, "DescribeInstances", "ops", "1.2.3.4")),
            &rules,
        );
        assert_eq!(activity.prune_due(false, now), Some(now + DAY_MS - week_ms));
    }

    #[test]
    fn hourly_rows_with_colliding_hashes_stay_apart() {
        let rules = rules();
        let mut connection = Connection::open_in_memory().unwrap();
        crate::alarm::schema::migrate(&mut connection).unwrap();
        let mut activity = Activity::new(ActivityOptions::default());
        activity.use_rules(&rules);
        activity.observe(&event(&rules, call(10, "DescribeInstances", "ops", "1.2.3.4")), &rules);
        activity.observe(&event(&rules, call(20, "DescribeInstances", "dev", "1.2.3.4")), &rules);
        activity.observe(&event(&rules, call(30, "DescribeInstances", "dev", "1.2.3.4")), &rules);
        let mut batch = activity.take(false);
        assert_eq!(batch.hourly.len(), 2);
        for row in &mut batch.hourly {
            row.hash = 7;
        }
        for _ in 0..2 {
            let transaction = connection.transaction().unwrap();
            write(&transaction, &batch).unwrap();
            transaction.commit().unwrap();
        }
        let mut statement = connection
            .prepare("SELECT key - ?1, principal, count FROM activity_hourly ORDER BY key")
            .unwrap();
        let rows: Vec<(i64, String, i64)> = statement
            .query_map([hour_key(START * 1000)], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![(7, "ops".to_string(), 2), (8, "dev".to_string(), 4)]);
        let report = activity_report(
            &connection,
            &ActivityQuery {
                since: Some(Utc.timestamp_opt(START + 1800, 0).unwrap()),
                until: Some(Utc.timestamp_opt(START + 1, 0).unwrap() + chrono::Duration::hours(1)),
                top: 10,
            },
        )
        .unwrap();
        assert_eq!(
            report.events, 6,
            "the hour holding --since counts whole; until 01:00:01 includes 01:00's hour"
        );
        let report = activity_report(
            &connection,
            &ActivityQuery {
                until: Some(Utc.timestamp_opt(START, 0).unwrap()),
                top: 10,
                ..ActivityQuery::default()
            },
        )
        .unwrap();
        assert_eq!(report.events, 0, "until is exclusive");
    }

    #[test]
    fn writes_upsert_and_queries_read_back() {
        let rules = rules();
        let mut connection = Connection::open_in_memory().unwrap();
        crate::alarm::schema::migrate(&mut connection).unwrap();
        let mut activity = Activity::new(ActivityOptions::default());
        activity.use_rules(&rules);
        // Two batches with the same key: counts add up in the store.
        for batch in 0..2 {
            activity.observe(
                &event(&rules, call(10 + batch, "DescribeInstances", "ops", "1.2.3.4")),
                &rules,
            );
            activity.observe(
                &event(&rules, call(20 + batch, "RebootInstances", "ops", "1.2.3.4")),
                &rules,
            );
            let mut failed = call(30 + batch, "DescribeInstances", "intern", "5.6.7.8");
            failed.error = Some("AuthFailure");
            activity.observe(&event(&rules, failed), &rules);
            let written = activity.take(false);
            let transaction = connection.transaction().unwrap();
            write(&transaction, &written).unwrap();
            transaction.commit().unwrap();
        }
        let report = activity_report(
            &connection,
            &ActivityQuery {
                top: 10,
                ..ActivityQuery::default()
            },
        )
        .unwrap();
        assert_eq!((report.events, report.failures), (6, 2));
        assert_eq!(report.busiest_principals[0].principal, "ops");
        assert_eq!(report.busiest_principals[0].events, 4);
        assert_eq!(report.busiest_source_ips[0].source_ip, "1.2.3.4");
        assert_eq!(report.failure_rates.len(), 1);
        assert!((report.failure_rates[0].failure_rate - 2.0 / 6.0).abs() < 1e-9);
        assert_eq!(report.new_key_ips_total, 2);
        let later = activity_report(
            &connection,
            &ActivityQuery {
                since: Some(Utc.timestamp_opt(START + 3600, 0).unwrap()),
                top: 10,
                ..ActivityQuery::default()
            },
        )
        .unwrap();
        assert_eq!((later.events, later.new_key_ips_total), (0, 0));
        // The same trace twice (a replayed event id) is stored once.
        let traces = list_traces(
            &connection,
            &TraceFilter {
                limit: 10,
                ..TraceFilter::default()
            },
        )
        .unwrap();
        assert_eq!(traces.len(), 2, "RebootInstances at 20 s and 21 s");
        assert_eq!(traces[0].time, "2026-03-02T00:00:21.000Z", "most recent first");
        let transaction = connection.transaction().unwrap();
        write(
            &transaction,
            &ActivityBatch {
                traces: vec![NewTrace {
                    trace: traces[0].clone(),
                    raw: traces[0].raw.to_string(),
                }],
                prune_before_ms: Some((START + 21) * 1000),
                ..ActivityBatch::default()
            },
        )
        .unwrap();
        transaction.commit().unwrap();
        let left = list_traces(
            &connection,
            &TraceFilter {
                limit: 10,
                ..TraceFilter::default()
            },
        )
        .unwrap();
        assert_eq!(left.len(), 1, "no duplicate, and the older trace is pruned");
        assert_eq!(left[0].raw["eventName"], "RebootInstances");

        // A restarted engine knows the stored pairs and does not append them again.
        let mut restarted = Activity::new(ActivityOptions::default());
        restarted.use_rules(&rules);
        let loaded = load_pairs(&connection, &mut |key, ip, first_ms| {
            restarted.remember_pair(key, ip, first_ms)
        })
        .unwrap();
        assert_eq!(loaded, 2);
        restarted.observe(&event(&rules, call(500, "DescribeInstances", "ops", "1.2.3.4")), &rules);
        assert!(restarted.take(false).key_ips.is_empty());
        // A late, earlier sighting is appended; readers take the earliest row of a pair.
        let mut late = call(5, "DescribeInstances", "early-bird", "1.2.3.4");
        late.key = Some("AKIDexample000000000000000000000000001");
        restarted.observe(&event(&rules, late), &rules);
        let written = restarted.take(false);
        assert_eq!(written.key_ips.len(), 1);
        let transaction = connection.transaction().unwrap();
        write(&transaction, &written).unwrap();
        transaction.commit().unwrap();
        let rows: i64 = connection
            .query_row("SELECT COUNT(*) FROM activity_key_ips", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 3);
        let report = activity_report(
            &connection,
            &ActivityQuery {
                top: 10,
                ..ActivityQuery::default()
            },
        )
        .unwrap();
        assert_eq!(report.new_key_ips_total, 2, "one pair, however many rows");
        let first = &report.new_key_ips[0];
        assert_eq!(
            (
                first.source_ip.as_str(),
                first.principal.as_str(),
                first.first_seen.as_str()
            ),
            ("1.2.3.4", "early-bird", "2026-03-02T00:00:05.000Z")
        );
        let after_early = activity_report(
            &connection,
            &ActivityQuery {
                since: Some(Utc.timestamp_opt(START + 6, 0).unwrap()),
                top: 10,
                ..ActivityQuery::default()
            },
        )
        .unwrap();
        assert_eq!(
            after_early.new_key_ips_total, 1,
            "1.2.3.4 was first seen before the range, 5.6.7.8 in it"
        );
    }
}
