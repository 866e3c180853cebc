//! The alarm store: SQLite (bundled, WAL), one transaction per batch.
//!
//! A batch carries alarm updates (already aggregated per rule + group key),
//! dead letters and source checkpoints; all of it commits together, so a
//! crash never leaves alarms without the progress that produced them (or the
//! reverse). One open alarm exists per (rule, group key): the unique partial
//! index `alarms_open_key` enforces it; a processed or ignored alarm is closed
//! and the next match opens a new one.

use std::path::{Path, PathBuf};

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use super::chain::{self, LinkKind};
use super::schema;
use crate::event::decode::DeadLetter;
use crate::event::origin::Position;
use crate::rules::Level;
use crate::rules::state::{DistinctWindow, EngineState, KeySeen, Window};
use crate::source::{FileCheckpoint, KafkaOffset};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("cannot create the store's directory {path}: {source}")]
    Directory { path: PathBuf, source: std::io::Error },
    #[error("cannot migrate the store at {path}: {source}")]
    Migrate { path: PathBuf, source: rusqlite::Error },
    #[error("store write failed: {0}")]
    Write(rusqlite::Error),
    #[error("store query failed: {0}")]
    Query(#[from] rusqlite::Error),
    #[error("alarm {0} not found")]
    AlarmNotFound(i64),
    #[error("{0}")]
    Workflow(String),
    #[error("backup to {path} failed: {source}")]
    Backup { path: PathBuf, source: rusqlite::Error },
}

pub use crate::time::timestamp;

/// Who an alarm is about (seeds/003: account identity, AK).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AlarmIdentity {
    pub provider: String,
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    /// `root`, `sub_account` or `unknown`.
    pub account_identity: String,
    pub principal_kind: String,
    pub principal_id: Option<String>,
    pub principal_name: Option<String>,
    pub principal_arn: Option<String>,
    pub access_key_id: Option<String>,
    pub access_key_temporary: Option<bool>,
}

/// Calls from one source IP, by method, service and API (seeds/003 "Alarm Details").
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallRecord {
    pub source_ip: String,
    pub ip_kind: String,
    pub call_method: String,
    pub service: String,
    pub action: String,
    pub success_count: u64,
    pub failure_count: u64,
    pub first_call: String,
    pub last_call: String,
}

/// One event kept as evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub event_id: String,
    pub event_time: String,
    pub origin: String,
    /// The normalized event with its raw record, as JSON text.
    pub event: String,
}

/// Matches of one rule and group key within a batch, ready to merge.
#[derive(Clone, Debug)]
pub struct AlarmUpdate {
    pub rule_id: String,
    pub rule_hash: String,
    pub level: Level,
    pub title: String,
    /// The rule's tags (notification topics filter on them).
    pub tags: Vec<String>,
    pub group_key: String,
    pub identity: AlarmIdentity,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
    pub last_output: String,
    pub calls: Vec<CallRecord>,
    pub samples: Vec<Sample>,
}

/// An event waiting in the reorder buffer, persisted so a restart (or a
/// crash) resumes the buffer instead of losing or re-reading it.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingRow {
    pub seq: i64,
    pub provider: String,
    pub time_ms: i64,
    pub time_source: String,
    pub origin: String,
    /// The raw record (JSON), re-normalized on restore.
    pub raw: String,
}

/// State entries changed (`Some`) or removed (`None`) since the last write.
#[derive(Debug, Default)]
pub struct StateChanges {
    pub keys: Vec<(u64, Option<(KeySeen, i64)>)>,
    pub principals: Vec<(u64, Option<(i64, i64)>)>,
    pub first_seen: Vec<(u64, Option<(i64, i64)>)>,
    pub windows: Vec<(u64, Option<(Window, i64)>)>,
    pub distinct: Vec<(u64, Option<(DistinctWindow, i64)>)>,
}

impl StateChanges {
    pub fn take(state: &mut EngineState) -> StateChanges {
        StateChanges {
            keys: state.keys.take_changes(),
            principals: state.principals.take_changes(),
            first_seen: state.first_seen.take_changes(),
            windows: state.windows.take_changes(),
            distinct: state.distinct.take_changes(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.principals.is_empty()
            && self.first_seen.is_empty()
            && self.windows.is_empty()
            && self.distinct.is_empty()
    }
}

/// Everything one transaction writes.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub alarms: Vec<AlarmUpdate>,
    pub dead_letters: Vec<DeadLetter>,
    pub checkpoints: Vec<FileCheckpoint>,
    /// Next offsets of the Kafka partitions whose messages this batch holds.
    pub kafka_offsets: Vec<KafkaOffset>,
    pub state: StateChanges,
    pub pending_insert: Vec<PendingRow>,
    pub pending_delete: Vec<i64>,
    /// Engine counters that must survive restarts (high-water event time …).
    pub meta: Vec<(&'static str, i64)>,
    /// Allowlist policy hits of this batch, one entry per policy.
    pub allowlist_hits: Vec<super::allowlist::PolicyHit>,
    /// Hourly rollups, first-seen (key, IP) pairs and key-operation traces.
    pub activity: super::rollup::ActivityBatch,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.alarms.is_empty()
            && self.dead_letters.is_empty()
            && self.checkpoints.is_empty()
            && self.kafka_offsets.is_empty()
            && self.state.is_empty()
            && self.pending_insert.is_empty()
            && self.pending_delete.is_empty()
            && self.meta.is_empty()
            && self.allowlist_hits.is_empty()
            && self.activity.is_empty()
    }
}

/// u64 state keys are stored as SQLite integers bit for bit.
fn key_to_sql(key: u64) -> i64 {
    key as i64
}

fn key_from_sql(key: i64) -> u64 {
    key as u64
}

fn encode_times(times: &std::collections::VecDeque<i64>) -> Vec<u8> {
    times.iter().flat_map(|time| time.to_le_bytes()).collect()
}

fn decode_times(bytes: &[u8]) -> std::collections::VecDeque<i64> {
    bytes
        .chunks_exact(8)
        .map(|chunk| i64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])))
        .collect()
}

fn encode_distinct(values: &std::collections::VecDeque<(u64, i64)>) -> Vec<u8> {
    values
        .iter()
        .flat_map(|(value, time)| value.to_le_bytes().into_iter().chain(time.to_le_bytes()))
        .collect()
}

fn decode_distinct(bytes: &[u8]) -> std::collections::VecDeque<(u64, i64)> {
    bytes
        .chunks_exact(16)
        .map(|chunk| {
            let value = u64::from_le_bytes(chunk[..8].try_into().unwrap_or([0; 8]));
            let time = i64::from_le_bytes(chunk[8..].try_into().unwrap_or([0; 8]));
            (value, time)
        })
        .collect()
}

/// What a write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub alarms_created: u64,
    pub alarms_updated: u64,
    /// Matches counted on an ignored alarm (not raised again).
    pub counted_on_ignored: u64,
    pub dead_letters: u64,
}

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
    pub history: Vec<super::workflow::Transition>,
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

/// Store settings.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Samples kept per alarm (the first ones seen).
    pub samples_per_alarm: u32,
    /// `PRAGMA synchronous`: FULL fsyncs each batch commit; NORMAL may lose the
    /// last batch on power loss (never on a process crash).
    pub synchronous_full: bool,
    /// New matches for an ignored alarm are counted on it (no new alarm);
    /// when false they open a new alarm.
    pub count_on_ignored: bool,
    /// Notification topics: alarm changes queue outbox rows in the same
    /// transaction (`None`: no notifications, as in replays).
    pub notify: Option<std::sync::Arc<dyn super::observer::AlarmObserver>>,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            samples_per_alarm: 10,
            synchronous_full: true,
            count_on_ignored: true,
            notify: None,
        }
    }
}

pub struct Store {
    connection: Connection,
    options: StoreOptions,
    path: PathBuf,
}

const ALARM_COLUMNS: &str = "id, rule_id, rule_hash, level, title, status, group_key, provider, account_id, account_name, \
     account_identity, principal_kind, principal_id, principal_name, principal_arn, access_key_id, \
     access_key_temporary, first_seen, last_seen, count, last_output, created_at, updated_at";

impl Store {
    /// Open (creating directories and the file as needed) and migrate.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Directory {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let mut connection = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let configure = |connection: &Connection| -> rusqlite::Result<()> {
            connection.busy_timeout(std::time::Duration::from_secs(10))?;
            connection.pragma_update(None, "journal_mode", "WAL")?;
            connection.pragma_update(
                None,
                "synchronous",
                if options.synchronous_full { "FULL" } else { "NORMAL" },
            )?;
            connection.pragma_update(None, "foreign_keys", "ON")?;
            Ok(())
        };
        configure(&connection).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        schema::migrate(&mut connection).map_err(|source| StoreError::Migrate {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Store {
            connection,
            options,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for the allowlist, remark and asset tables (their SQL
    /// lives in `allowlist.rs` and `assets.rs`).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.connection
    }

    /// `PRAGMA data_version`: changes when another connection (the CLI) has
    /// committed, so the engine knows when to reload policies. One cheap call.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self.connection.query_row("PRAGMA data_version", [], |row| row.get(0))?)
    }

    /// Write a batch in one transaction.
    pub fn write(&mut self, batch: &WriteBatch) -> Result<WriteOutcome, StoreError> {
        let now = timestamp(Utc::now());
        let samples_per_alarm = i64::from(self.options.samples_per_alarm);
        // IMMEDIATE: the chain head is read and extended in the same write lock,
        // also when the CLI changes an alarm's status at the same time.
        let transaction = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::Write)?;
        let outcome = write_in(
            &transaction,
            batch,
            &now,
            samples_per_alarm,
            self.options.count_on_ignored,
            self.options.notify.as_deref(),
        )
        .map_err(StoreError::Write)?;
        transaction.commit().map_err(StoreError::Write)?;
        Ok(outcome)
    }

    /// Load the persisted engine state into `state` (without marking it dirty).
    pub fn load_state(&self, state: &mut EngineState) -> Result<(), StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT key, first_ms, last_ms, touched_ms FROM state_keys")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let seen = KeySeen {
                first_ms: row.get(1)?,
                last_ms: row.get(2)?,
            };
            state.keys.restore(key_from_sql(row.get(0)?), seen, row.get(3)?);
        }
        for (table, target) in [
            (
                "SELECT key, created_ms, touched_ms FROM state_principals",
                &mut state.principals,
            ),
            (
                "SELECT key, first_ms, touched_ms FROM state_first_seen",
                &mut state.first_seen,
            ),
        ] {
            let mut statement = self.connection.prepare(table)?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                target.restore(key_from_sql(row.get(0)?), row.get(1)?, row.get(2)?);
            }
        }
        let mut statement = self
            .connection
            .prepare("SELECT key, times, touched_ms FROM state_windows")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let window = Window {
                times: decode_times(&row.get::<_, Vec<u8>>(1)?),
            };
            state.windows.restore(key_from_sql(row.get(0)?), window, row.get(2)?);
        }
        let mut statement = self
            .connection
            .prepare("SELECT key, entries, touched_ms FROM state_distinct")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let window = DistinctWindow {
                values: decode_distinct(&row.get::<_, Vec<u8>>(1)?),
            };
            state.distinct.restore(key_from_sql(row.get(0)?), window, row.get(2)?);
        }
        if let Some(high_water) = self.meta("high_water_ms")? {
            state.high_water_ms = high_water;
        }
        Ok(())
    }

    /// Events that were waiting in the reorder buffer at the last commit.
    pub fn load_pending(&self) -> Result<Vec<PendingRow>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT seq, provider, time_ms, time_source, origin, raw FROM pending_events ORDER BY seq")?;
        let rows = statement.query_map([], |row| {
            Ok(PendingRow {
                seq: row.get(0)?,
                provider: row.get(1)?,
                time_ms: row.get(2)?,
                time_source: row.get(3)?,
                origin: row.get(4)?,
                raw: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// A persisted engine counter.
    pub fn meta(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .connection
            .query_row("SELECT value FROM engine_meta WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()?)
    }

    /// Progress recorded for a file, if any.
    pub fn file_checkpoint(&self, path: &str) -> Result<Option<FileCheckpoint>, StoreError> {
        Ok(read_file_checkpoint(&self.connection, path)?)
    }

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
        let history = super::workflow::history(&self.connection, id)?;
        Ok(Some(AlarmDetail {
            alarm,
            calls,
            samples,
            history,
        }))
    }

    /// Change an alarm's status (processed, ignored, back to unprocessed),
    /// recording actor, time and reason, sealed into the chain.
    pub fn set_status(
        &mut self,
        id: i64,
        to: super::workflow::Status,
        actor: &str,
        reason: &str,
    ) -> Result<super::workflow::Transition, StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let transition = super::workflow::set_status(&transaction, id, to, actor, reason, &timestamp(Utc::now()))?;
        if let Some(router) = &self.options.notify {
            let facts: (String, String, String, Option<String>, Option<String>) = transaction.query_row(
                "SELECT rule_id, level, tags, account_id, account_name FROM alarms WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )?;
            let tags: Vec<String> = facts
                .2
                .split(',')
                .filter(|tag| !tag.is_empty())
                .map(str::to_string)
                .collect();
            router.status_changed(
                &transaction,
                &super::observer::AlarmFacts {
                    alarm_id: id,
                    rule_id: &facts.0,
                    level: Level::parse(&facts.1).unwrap_or(Level::Info),
                    tags: &tags,
                    account_id: facts.3.as_deref(),
                    account_name: facts.4.as_deref(),
                },
                &transition,
            )?;
        }
        transaction.commit()?;
        Ok(transition)
    }

    /// Run an operator's change (a policy, remark or asset) in one immediate
    /// write transaction, with the notification router: the change, its
    /// change-log entry, its chain links and its notifications commit together.
    pub fn change<T, E: From<rusqlite::Error>>(
        &mut self,
        change: impl FnOnce(&Transaction<'_>, Option<&dyn super::observer::AlarmObserver>) -> Result<T, E>,
    ) -> Result<T, E> {
        let transaction = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let value = change(&transaction, self.options.notify.as_deref())?;
        transaction.commit()?;
        Ok(value)
    }

    /// Check the hash chain and every sealed row (see `chain::verify`).
    pub fn verify_chain(&self, anchor: Option<(i64, &str)>) -> Result<chain::Verification, StoreError> {
        Ok(chain::verify(&self.connection, anchor)?)
    }

    /// The chain's last link: (seq, hash).
    pub fn chain_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        Ok(chain::head(&self.connection)?)
    }

    /// An online copy of the whole store (SQLite's backup API), consistent
    /// even while the daemon writes.
    pub fn backup_to(&self, destination: &Path) -> Result<(), StoreError> {
        let failed = |source| StoreError::Backup {
            path: destination.to_path_buf(),
            source,
        };
        if destination.exists() {
            return Err(StoreError::Workflow(format!(
                "{} already exists; a backup never overwrites a file",
                destination.display()
            )));
        }
        let mut target = Connection::open(destination).map_err(failed)?;
        let backup = rusqlite::backup::Backup::new(&self.connection, &mut target).map_err(failed)?;
        backup
            .run_to_completion(1024, std::time::Duration::from_millis(5), None)
            .map_err(failed)?;
        Ok(())
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

    /// Give the engine's activity accumulator the (key, IP) pairs already stored.
    pub fn load_activity(&self, activity: &mut super::rollup::Activity) -> Result<usize, StoreError> {
        Ok(super::rollup::load_pairs(
            &self.connection,
            &mut |key, ip, first_ms| activity.remember_pair(key, ip, first_ms),
        )?)
    }

    /// The god view over a time range (`trailwarden activity`).
    pub fn activity_report(
        &self,
        query: &super::rollup::ActivityQuery,
    ) -> Result<super::rollup::ActivityReport, StoreError> {
        Ok(super::rollup::activity_report(&self.connection, query)?)
    }

    /// Key-operation traces, most recent first (`trailwarden traces`).
    pub fn list_traces(&self, filter: &super::rollup::TraceFilter) -> Result<Vec<super::rollup::Trace>, StoreError> {
        Ok(super::rollup::list_traces(&self.connection, filter)?)
    }

    /// Row counts, for summaries and health output.
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        let count = |sql: &str| -> rusqlite::Result<u64> {
            self.connection
                .query_row(sql, [], |row| row.get::<_, i64>(0))
                .map(|n| n as u64)
        };
        Ok(StoreCounts {
            alarms: count("SELECT COUNT(*) FROM alarms")?,
            open_alarms: count("SELECT COUNT(*) FROM alarms WHERE status = 'unprocessed'")?,
            dead_letters: count("SELECT COUNT(*) FROM dead_letters")?,
        })
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

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    pub alarms: u64,
    pub open_alarms: u64,
    pub dead_letters: u64,
}

/// The stored next offset of each partition of `group`, read from any
/// connection (the Kafka source reads through its own read-only connection).
/// A reader of the Kafka offsets the store holds, for the Kafka source: its
/// own read-only connection, so the source never opens the store itself.
pub fn kafka_offset_reader(
    path: &Path,
) -> Result<impl FnMut(&str) -> Result<Vec<KafkaOffset>, String> + Send + 'static, StoreError> {
    let reader = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(move |group: &str| read_kafka_offsets(&reader, group).map_err(|error| error.to_string()))
}

pub fn read_kafka_offsets(connection: &Connection, group: &str) -> rusqlite::Result<Vec<KafkaOffset>> {
    let mut statement =
        connection.prepare("SELECT topic, partition, next_offset FROM kafka_offsets WHERE group_id = ?1")?;
    let group: std::sync::Arc<str> = std::sync::Arc::from(group);
    let rows = statement.query_map([group.as_ref()], |row| {
        Ok(KafkaOffset {
            group: group.clone(),
            topic: std::sync::Arc::from(row.get::<_, String>(0)?.as_str()),
            partition: row.get(1)?,
            next_offset: row.get(2)?,
        })
    })?;
    rows.collect()
}

/// The checkpoint of a file, read from any connection to the store (the
/// daemon's file source reads through its own read-only connection).
pub fn read_file_checkpoint(connection: &Connection, path: &str) -> rusqlite::Result<Option<FileCheckpoint>> {
    connection
        .query_row(
            "SELECT path, size, mtime_ms, offset, line, completed, container_depth, container_line, container_index \
             FROM source_files WHERE path = ?1",
            [path],
            |row| {
                let depth: i64 = row.get(6)?;
                Ok(FileCheckpoint {
                    path: row.get(0)?,
                    size: row.get::<_, i64>(1)? as u64,
                    mtime_ms: row.get(2)?,
                    offset: row.get::<_, i64>(3)? as u64,
                    line: row.get::<_, i64>(4)? as u64,
                    completed: row.get(5)?,
                    container: (depth > 0).then(|| crate::source::framer::ContainerAt {
                        depth: u32::try_from(depth).unwrap_or(0),
                        doc_line: u64::try_from(row.get::<_, i64>(7).unwrap_or(0)).unwrap_or(0),
                        next_index: u32::try_from(row.get::<_, i64>(8).unwrap_or(0)).unwrap_or(0),
                    }),
                })
            },
        )
        .optional()
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

fn write_in(
    transaction: &Transaction<'_>,
    batch: &WriteBatch,
    now: &str,
    samples_per_alarm: i64,
    count_on_ignored: bool,
    notify: Option<&dyn super::observer::AlarmObserver>,
) -> rusqlite::Result<WriteOutcome> {
    let mut outcome = WriteOutcome::default();
    // The alarm a match counts on: the open (unprocessed) one, else — when
    // configured — an ignored one (counted there, not raised again); a
    // processed alarm never takes new matches: they open a new alarm.
    // The open alarm first, by the partial unique index; an ignored one only
    // when there is none (most matches find an open alarm).
    let mut find_open = transaction.prepare_cached(
        "SELECT id, sample_count, status, level, count FROM alarms WHERE rule_id = ?1 AND group_key = ?2 \
         AND status = 'unprocessed'",
    )?;
    let mut find_ignored = transaction.prepare_cached(
        "SELECT id, sample_count, status, level, count FROM alarms WHERE rule_id = ?1 AND group_key = ?2 \
         AND status = 'ignored' ORDER BY id DESC LIMIT 1",
    )?;
    let mut touched: Vec<i64> = Vec::with_capacity(batch.alarms.len());
    let mut insert_alarm = transaction.prepare_cached(
        "INSERT INTO alarms (rule_id, rule_hash, level, title, status, group_key, provider, account_id, account_name, \
         account_identity, principal_kind, principal_id, principal_name, principal_arn, access_key_id, \
         access_key_temporary, first_seen, last_seen, count, sample_count, last_output, created_at, updated_at, tags) \
         VALUES (?1, ?2, ?3, ?4, 'unprocessed', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, 0, 0, ?18, ?19, ?19, ?20)",
    )?;
    let mut update_alarm = transaction.prepare_cached(
        "UPDATE alarms SET count = count + ?2, first_seen = min(first_seen, ?3), last_seen = max(last_seen, ?4), \
         last_output = ?5, level = ?6, rule_hash = ?7, title = ?8, updated_at = ?9 WHERE id = ?1",
    )?;
    let mut upsert_call = transaction.prepare_cached(
        "INSERT INTO alarm_calls (alarm_id, source_ip, ip_kind, call_method, service, action, success_count, \
         failure_count, first_call, last_call) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (alarm_id, source_ip, call_method, service, action) DO UPDATE SET \
         success_count = success_count + excluded.success_count, failure_count = failure_count + excluded.failure_count, \
         first_call = min(first_call, excluded.first_call), last_call = max(last_call, excluded.last_call) \
         RETURNING id",
    )?;
    // Call records and samples written here are sealed with the alarms.
    let mut touched_calls: Vec<i64> = Vec::new();
    let mut new_samples: Vec<i64> = Vec::new();
    let mut insert_sample = transaction.prepare_cached(
        "INSERT INTO alarm_samples (alarm_id, seq, event_id, event_time, origin, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut set_sample_count = transaction.prepare_cached("UPDATE alarms SET sample_count = ?2 WHERE id = ?1")?;
    for update in &batch.alarms {
        let read = |row: &rusqlite::Row<'_>| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
            ))
        };
        let mut existing: Option<(i64, i64, String, String, i64)> = find_open
            .query_row(params![update.rule_id, update.group_key], read)
            .optional()?;
        if existing.is_none() && count_on_ignored {
            existing = find_ignored
                .query_row(params![update.rule_id, update.group_key], read)
                .optional()?;
        }
        let facts = |alarm_id| super::observer::AlarmFacts {
            alarm_id,
            rule_id: &update.rule_id,
            level: update.level,
            tags: &update.tags,
            account_id: update.identity.account_id.as_deref(),
            account_name: update.identity.account_name.as_deref(),
        };
        let (alarm_id, mut sample_count) = match existing {
            Some((id, samples, status, level, count)) => {
                if status == "ignored" {
                    outcome.counted_on_ignored += 1;
                } else {
                    outcome.alarms_updated += 1;
                    if let Some(router) = notify {
                        let old_count = count.max(0) as u64;
                        router.updated(
                            transaction,
                            &facts(id),
                            Level::parse(&level),
                            old_count,
                            old_count + update.count,
                        )?;
                    }
                }
                (id, samples)
            }
            None => {
                let identity = &update.identity;
                insert_alarm.execute(params![
                    update.rule_id,
                    update.rule_hash,
                    update.level.as_str(),
                    update.title,
                    update.group_key,
                    identity.provider,
                    identity.account_id,
                    identity.account_name,
                    identity.account_identity,
                    identity.principal_kind,
                    identity.principal_id,
                    identity.principal_name,
                    identity.principal_arn,
                    identity.access_key_id,
                    identity.access_key_temporary,
                    update.first_seen,
                    update.last_seen,
                    update.last_output,
                    now,
                    update.tags.join(","),
                ])?;
                outcome.alarms_created += 1;
                let id = transaction.last_insert_rowid();
                if let Some(router) = notify {
                    router.opened(transaction, &facts(id))?;
                }
                (id, 0)
            }
        };
        update_alarm.execute(params![
            alarm_id,
            update.count as i64,
            update.first_seen,
            update.last_seen,
            update.last_output,
            update.level.as_str(),
            update.rule_hash,
            update.title,
            now,
        ])?;
        for call in &update.calls {
            let call_id: i64 = upsert_call.query_row(
                params![
                    alarm_id,
                    call.source_ip,
                    call.ip_kind,
                    call.call_method,
                    call.service,
                    call.action,
                    call.success_count as i64,
                    call.failure_count as i64,
                    call.first_call,
                    call.last_call,
                ],
                |row| row.get(0),
            )?;
            touched_calls.push(call_id);
        }
        let before = sample_count;
        for sample in &update.samples {
            if sample_count >= samples_per_alarm {
                break;
            }
            insert_sample.execute(params![
                alarm_id,
                sample_count,
                sample.event_id,
                sample.event_time,
                sample.origin,
                sample.event,
            ])?;
            new_samples.push(transaction.last_insert_rowid());
            sample_count += 1;
        }
        if sample_count != before {
            set_sample_count.execute(params![alarm_id, sample_count])?;
        }
        if !touched.contains(&alarm_id) {
            touched.push(alarm_id);
        }
    }
    // Seal every alarm this batch created or changed, in this transaction.
    chain::append(transaction, LinkKind::Alarm, &touched, now)?;
    touched_calls.sort_unstable();
    touched_calls.dedup();
    chain::append(transaction, LinkKind::Call, &touched_calls, now)?;
    chain::append(transaction, LinkKind::Sample, &new_samples, now)?;
    let mut insert_dead = transaction.prepare_cached(
        "INSERT INTO dead_letters (received_at, source, line, byte_offset, record_index, origin, reason, excerpt, \
         topic, partition, kafka_offset) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for letter in &batch.dead_letters {
        let (mut line, mut offset, mut topic, mut partition, mut kafka_offset) = (None, None, None, None, None);
        match letter.origin.position {
            Position::Line(number) => line = Some(number as i64),
            Position::Byte(byte) => offset = Some(byte as i64),
            Position::Whole => {}
            Position::Message {
                partition: number,
                offset: message,
            } => {
                topic = Some(letter.origin.source.as_ref());
                partition = Some(number);
                kafka_offset = Some(message);
            }
        }
        insert_dead.execute(params![
            now,
            letter.origin.source.as_ref(),
            line,
            offset,
            letter.origin.index.map(i64::from),
            letter.origin.to_string(),
            letter.reason,
            letter.excerpt,
            topic,
            partition,
            kafka_offset,
        ])?;
        outcome.dead_letters += 1;
    }
    let mut upsert_file = transaction.prepare_cached(
        "INSERT INTO source_files (path, size, mtime_ms, offset, line, completed, updated_at, container_depth, \
         container_line, container_index) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms, offset = excluded.offset, \
         line = excluded.line, completed = excluded.completed, updated_at = excluded.updated_at, \
         container_depth = excluded.container_depth, container_line = excluded.container_line, \
         container_index = excluded.container_index",
    )?;
    for checkpoint in &batch.checkpoints {
        let container = checkpoint.container.unwrap_or_default();
        upsert_file.execute(params![
            checkpoint.path,
            checkpoint.size as i64,
            checkpoint.mtime_ms,
            checkpoint.offset as i64,
            checkpoint.line as i64,
            checkpoint.completed,
            now,
            i64::from(container.depth),
            container.doc_line as i64,
            i64::from(container.next_index),
        ])?;
    }
    let mut upsert_offset = transaction.prepare_cached(
        "INSERT INTO kafka_offsets (group_id, topic, partition, next_offset, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = excluded.next_offset, \
         updated_at = excluded.updated_at",
    )?;
    for position in &batch.kafka_offsets {
        upsert_offset.execute(params![
            position.group.as_ref(),
            position.topic.as_ref(),
            position.partition,
            position.next_offset,
            now,
        ])?;
    }
    write_state(transaction, &batch.state)?;
    let mut insert_pending = transaction.prepare_cached(
        "INSERT OR REPLACE INTO pending_events (seq, provider, time_ms, time_source, origin, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for row in &batch.pending_insert {
        insert_pending.execute(params![
            row.seq,
            row.provider,
            row.time_ms,
            row.time_source,
            row.origin,
            row.raw
        ])?;
    }
    let mut delete_pending = transaction.prepare_cached("DELETE FROM pending_events WHERE seq = ?1")?;
    for seq in &batch.pending_delete {
        delete_pending.execute([seq])?;
    }
    let mut upsert_meta = transaction.prepare_cached(
        "INSERT INTO engine_meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?;
    for (name, value) in &batch.meta {
        upsert_meta.execute(params![name, value])?;
    }
    super::allowlist::write_hits(transaction, &batch.allowlist_hits)?;
    super::rollup::write(transaction, &batch.activity)?;
    Ok(outcome)
}

fn write_state(transaction: &Transaction<'_>, changes: &StateChanges) -> rusqlite::Result<()> {
    {
        let mut upsert = transaction.prepare_cached(
            "INSERT OR REPLACE INTO state_keys (key, first_ms, last_ms, touched_ms) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut delete = transaction.prepare_cached("DELETE FROM state_keys WHERE key = ?1")?;
        for (key, change) in &changes.keys {
            match change {
                Some((seen, touched)) => {
                    upsert.execute(params![key_to_sql(*key), seen.first_ms, seen.last_ms, touched])?;
                }
                None => {
                    delete.execute([key_to_sql(*key)])?;
                }
            }
        }
    }
    for (table, column, changes) in [
        ("state_principals", "created_ms", &changes.principals),
        ("state_first_seen", "first_ms", &changes.first_seen),
    ] {
        let mut upsert = transaction.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {table} (key, {column}, touched_ms) VALUES (?1, ?2, ?3)"
        ))?;
        let mut delete = transaction.prepare_cached(&format!("DELETE FROM {table} WHERE key = ?1"))?;
        for (key, change) in changes {
            match change {
                Some((value, touched)) => {
                    upsert.execute(params![key_to_sql(*key), value, touched])?;
                }
                None => {
                    delete.execute([key_to_sql(*key)])?;
                }
            }
        }
    }
    {
        let mut upsert = transaction
            .prepare_cached("INSERT OR REPLACE INTO state_windows (key, times, touched_ms) VALUES (?1, ?2, ?3)")?;
        let mut delete = transaction.prepare_cached("DELETE FROM state_windows WHERE key = ?1")?;
        for (key, change) in &changes.windows {
            match change {
                Some((window, touched)) => {
                    upsert.execute(params![key_to_sql(*key), encode_times(&window.times), touched])?;
                }
                None => {
                    delete.execute([key_to_sql(*key)])?;
                }
            }
        }
    }
    let mut upsert = transaction
        .prepare_cached("INSERT OR REPLACE INTO state_distinct (key, entries, touched_ms) VALUES (?1, ?2, ?3)")?;
    let mut delete = transaction.prepare_cached("DELETE FROM state_distinct WHERE key = ?1")?;
    for (key, change) in &changes.distinct {
        match change {
            Some((window, touched)) => {
                upsert.execute(params![key_to_sql(*key), encode_distinct(&window.values), touched])?;
            }
            None => {
                delete.execute([key_to_sql(*key)])?;
            }
        }
    }
    Ok(())
}
