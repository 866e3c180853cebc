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
use rusqlite::Connection;

use crate::db::{Db, DbError, DbExt, DbResult, SqliteDb, StoreLocation, get};
use serde::Serialize;

use super::chain;
use super::schema;
use crate::rules::Level;
use crate::source::{FileCheckpoint, KafkaOffset};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("cannot open the store at {path}: its filesystem is {reason}")]
    Unwritable { path: PathBuf, reason: &'static str },
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
    #[error("backup to {path} failed: {source}")]
    BackupFile { path: PathBuf, source: std::io::Error },
    /// Stored data that cannot be read back (a damaged event block).
    #[error("{0}")]
    Corrupt(String),
    #[error("cannot open the PostgreSQL store at {url}: {source}")]
    Connect { url: String, source: DbError },
    /// A PostgreSQL failure (SQLite's keep their own variants).
    #[error("store failed: {0}")]
    Database(DbError),
    /// This instance no longer owns a Kafka partition the batch consumed.
    #[error("{0}")]
    Fenced(String),
    /// A feature the PostgreSQL store does not have yet.
    #[error("{0} is not available on a PostgreSQL store yet (see docs/postgresql.md)")]
    Unsupported(&'static str),
}

impl From<DbError> for StoreError {
    fn from(error: DbError) -> StoreError {
        match error {
            DbError::Sqlite(error) => StoreError::Query(error),
            DbError::Fenced(what) => StoreError::Fenced(what),
            other => StoreError::Database(other),
        }
    }
}

impl StoreError {
    /// A failure a retry can clear (a busy SQLite file, a PostgreSQL server
    /// restarting or unreachable, a serialization conflict).
    pub fn is_transient_database(&self) -> bool {
        match self {
            StoreError::Database(error) | StoreError::Connect { source: error, .. } => error.is_transient(),
            _ => false,
        }
    }
}

mod checkpoint;
mod pg;
mod query;
mod state;
mod write;

pub use crate::time::timestamp;
pub use pg::{PartitionClaims, host_name};
pub use query::{AlarmDetail, AlarmFilter, AlarmRow, AlarmSort, DeadLetterRow};
pub use state::StateChanges;
pub use write::{WriteBatch, WriteOutcome};

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
    /// The rule's `escalate:` marks: the alarm takes a mark's level once its
    /// total count reaches it.
    pub escalate: Vec<(u64, Level)>,
    /// The output of each match (at most `MAX_OPERATIONS` per batch), kept
    /// only when a notification topic wants every operation.
    pub operations: Vec<String>,
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
    /// The scope of the event's state (`StateChanges::scope`).
    pub scope: std::sync::Arc<str>,
}

/// Store settings.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Samples kept per alarm (the first ones seen).
    pub samples_per_alarm: u32,
    /// `PRAGMA synchronous`: FULL fsyncs each batch commit; NORMAL may lose the
    /// last batch on power loss (never on a process crash).
    pub synchronous_full: bool,
    /// False for a throw-away store (a replay without `--db`): no write-ahead
    /// log and no syncing, since nothing survives the process anyway.
    pub durable: bool,
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
            durable: true,
            count_on_ignored: true,
            notify: None,
        }
    }
}

/// Prepared statements kept by the store's connection.
const STATEMENT_CACHE: usize = 64;

pub struct Store {
    backend: Backend,
    options: StoreOptions,
    /// The file, or the PostgreSQL URL as given (`location()` redacts it).
    path: PathBuf,
    /// The pipeline writer's WAL checkpoints, on their own thread
    /// (`checkpoint_in_background`). After `backend`: dropped once the
    /// writer's connection is closed.
    checkpointer: Option<checkpoint::Checkpointer>,
}

/// The database behind a store.
enum Backend {
    Sqlite(Connection),
    /// `&self` methods read through it too: one store is used by one thread.
    Postgres(Box<std::cell::RefCell<pg::Shared>>),
}

impl Store {
    /// Open (creating directories and the file as needed) and migrate. A
    /// `postgres://` URL as the path opens the PostgreSQL store instead.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        if let StoreLocation::Postgres(url) = StoreLocation::from_path(path) {
            return pg::open(&url, options);
        }
        const OPEN_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
        const OPEN_BUSY_STEP: std::time::Duration = std::time::Duration::from_millis(20);
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
            let (journal, synchronous) = match (options.durable, options.synchronous_full) {
                (false, _) => ("MEMORY", "OFF"),
                (true, true) => ("WAL", "FULL"),
                (true, false) => ("WAL", "NORMAL"),
            };
            connection.pragma_update(None, "journal_mode", journal)?;
            connection.pragma_update(None, "synchronous", synchronous)?;
            connection.pragma_update(None, "foreign_keys", "ON")?;
            // A batch's write uses some 30 cached statements (alarms, chain,
            // state, rollups, source progress …); rusqlite keeps 16 by
            // default, so each batch prepared most of them again.
            connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            Ok(())
        };
        // Switching a new file to WAL takes an exclusive lock, and SQLite
        // answers BUSY without waiting when another process is doing the
        // same (the daemon and a command opening a new store at once): try
        // again for as long as the busy timeout would have waited.
        let mut waited = std::time::Duration::ZERO;
        let configured = loop {
            match configure(&connection) {
                Err(rusqlite::Error::SqliteFailure(error, _))
                    if error.code == rusqlite::ErrorCode::DatabaseBusy && waited < OPEN_BUSY_WAIT =>
                {
                    std::thread::sleep(OPEN_BUSY_STEP);
                    waited += OPEN_BUSY_STEP;
                }
                other => break other,
            }
        };
        configured.map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        schema::migrate(&mut connection).map_err(|source| StoreError::Migrate {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Store {
            backend: Backend::Sqlite(connection),
            options,
            path: path.to_path_buf(),
            checkpointer: None,
        })
    }

    /// Run this connection's WAL checkpoints on a thread of their own
    /// (`checkpoint.rs`): for the pipeline's writer, whose commits then no
    /// longer copy the log into the database file. Nothing to do on
    /// PostgreSQL or on a throw-away store (no log); called twice, once.
    pub fn checkpoint_in_background(&mut self) -> Result<(), StoreError> {
        if self.checkpointer.is_some() || !self.options.durable {
            return Ok(());
        }
        if let Backend::Sqlite(connection) = &mut self.backend {
            let checkpointer =
                checkpoint::Checkpointer::start(connection, &self.path).map_err(|source| StoreError::Open {
                    path: self.path.clone(),
                    source,
                })?;
            self.checkpointer = Some(checkpointer);
        }
        Ok(())
    }

    /// The file, or the PostgreSQL URL as given (with its password: use
    /// `location()` in messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the store is, for messages and logs (a URL without its password).
    pub fn location(&self) -> String {
        StoreLocation::from_path(&self.path).display()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The SQLite connection, for the code that has not moved to [`Db`]
    /// yet (allowlist, remarks, assets, outbox, rollups, retention …): on a
    /// PostgreSQL store, `Unsupported` naming `what`.
    pub fn sqlite(&self, what: &'static str) -> Result<&Connection, StoreError> {
        match &self.backend {
            Backend::Sqlite(connection) => Ok(connection),
            Backend::Postgres(_) => Err(StoreError::Unsupported(what)),
        }
    }

    /// `sqlite`, mutable.
    pub fn sqlite_mut(&mut self, what: &'static str) -> Result<&mut Connection, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(connection) => Ok(connection),
            Backend::Postgres(_) => Err(StoreError::Unsupported(what)),
        }
    }

    /// The connection, for the allowlist, remark and asset tables (their SQL
    /// lives in `allowlist/` and `assets.rs`): SQLite stores only.
    pub fn connection(&self) -> Result<&Connection, StoreError> {
        self.sqlite("this operation")
    }

    pub fn connection_mut(&mut self) -> Result<&mut Connection, StoreError> {
        self.sqlite_mut("this operation")
    }

    /// Run `job` on the store's database, whichever it is.
    pub(crate) fn with_db<T>(&self, job: impl FnOnce(&mut dyn Db) -> DbResult<T>) -> Result<T, StoreError> {
        match &self.backend {
            Backend::Sqlite(connection) => Ok(job(&mut SqliteDb(connection))?),
            // A lost connection is dropped, to be opened again next time.
            Backend::Postgres(shared) => Ok(shared.borrow_mut().run(|connection| job(connection))?),
        }
    }

    /// `with_db` for jobs with their own error type (allowlist, assets …).
    pub(crate) fn read<T, E: From<StoreError>>(&self, job: impl FnOnce(&mut dyn Db) -> Result<T, E>) -> Result<T, E> {
        match &self.backend {
            Backend::Sqlite(connection) => job(&mut SqliteDb(connection)),
            Backend::Postgres(shared) => {
                let mut shared = shared.borrow_mut();
                job(shared.connection().map_err(|error| E::from(error.into()))?)
            }
        }
    }

    /// Run `job` in one write transaction, whichever the store: SQLite's
    /// immediate transaction; on PostgreSQL a transaction that first takes
    /// the advisory lock `lock` (when given), so daemons sharing the store
    /// take turns. A lost PostgreSQL connection is opened again next time.
    pub(crate) fn transact<T, E: From<StoreError>>(
        &mut self,
        lock: Option<i64>,
        job: impl FnOnce(&mut dyn Db) -> Result<T, E>,
    ) -> Result<T, E> {
        match &mut self.backend {
            Backend::Sqlite(connection) => {
                let transaction = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|error| E::from(error.into()))?;
                let value = job(&mut SqliteDb(&transaction))?;
                transaction.commit().map_err(|error| E::from(error.into()))?;
                Ok(value)
            }
            Backend::Postgres(shared) => pg::transact(shared.get_mut(), lock, job),
        }
    }

    /// Record the rule set in the change log unless it is the last one
    /// recorded (`rule_changes::record`), with its `config` notifications.
    pub fn record_rules(
        &mut self,
        rules: &crate::rules::RuleSet,
        actor: &super::changes::Actor,
    ) -> Result<Option<i64>, StoreError> {
        let observer = self.options.notify.clone();
        self.transact(Some(super::changes::CHANGES_LOCK), |db| {
            Ok(super::rule_changes::record(db, rules, actor, observer.as_deref())?)
        })
    }

    /// `PRAGMA data_version`: changes when another connection (the CLI) has
    /// committed, so the engine knows when to reload policies. One cheap call.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Sqlite(connection) => Ok(connection
                .prepare_cached("PRAGMA data_version")?
                .query_row([], |row| row.get(0))?),
            // Every change to policies, remarks and assets (by any daemon or
            // the CLI) records a change-log row: its last id is the version.
            Backend::Postgres(_) => self.with_db(super::changes::last_id),
        }
    }

    /// A persisted engine counter.
    pub fn meta(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.with_db(|db| {
            db.query_opt(
                "SELECT value FROM engine_meta WHERE name = ?1",
                crate::db_params![name],
                |row| get(row, 0),
            )
        })
    }

    /// Progress recorded for a file, if any.
    pub fn file_checkpoint(&self, path: &str) -> Result<Option<FileCheckpoint>, StoreError> {
        self.with_db(|db| file_checkpoint_in(db, path))
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
        let notify = self.options.notify.clone();
        let now = timestamp(Utc::now());
        self.transact(None, |db| {
            let transition = super::workflow::set_status_in(db, id, to, actor, reason, &now)?;
            if let Some(router) = &notify {
                type Facts = (String, String, String, Option<String>, Option<String>);
                let facts: Option<Facts> = db.query_opt(
                    "SELECT rule_id, level, tags, account_id, account_name FROM alarms WHERE id = ?1",
                    crate::db_params![id],
                    |row| Ok((get(row, 0)?, get(row, 1)?, get(row, 2)?, get(row, 3)?, get(row, 4)?)),
                )?;
                if let Some(facts) = facts {
                    let tags: Vec<String> = facts
                        .2
                        .split(',')
                        .filter(|tag| !tag.is_empty())
                        .map(str::to_string)
                        .collect();
                    router.status_changed(
                        db,
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
            }
            Ok(transition)
        })
    }

    /// Run an operator's change (a policy, remark or asset) in one immediate
    /// write transaction, with the notification router: the change, its
    /// change-log entry, its chain links and its notifications (the
    /// `config` ones of every change-log entry it recorded included) commit
    /// together.
    pub fn change<T, E: From<StoreError>>(
        &mut self,
        change: impl FnOnce(&mut dyn Db, Option<&dyn super::observer::AlarmObserver>) -> Result<T, E>,
    ) -> Result<T, E> {
        let observer = self.options.notify.clone();
        self.transact(Some(super::changes::CHANGES_LOCK), |db| {
            let observer = observer.as_deref();
            let before = match observer {
                Some(_) => Some(super::changes::last_id(db).map_err(StoreError::from)?),
                None => None,
            };
            let value = change(db, observer)?;
            if let (Some(observer), Some(before)) = (observer, before) {
                let recorded = super::changes::since(db, before).map_err(StoreError::from)?;
                if !recorded.is_empty() {
                    observer.config_changed(db, &recorded).map_err(StoreError::from)?;
                }
            }
            Ok(value)
        })
    }

    /// Check the hash chain and every sealed row (see `chain::verify`).
    pub fn verify_chain(&self, anchor: Option<(i64, &str)>) -> Result<chain::Verification, StoreError> {
        self.with_db(|db| chain::verify(db, anchor))
    }

    /// The chain's last link: (seq, hash).
    pub fn chain_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.with_db(|db| super::seal::head(db))
    }

    /// An online copy of the whole store, consistent even while daemons
    /// write: SQLite's backup API; from PostgreSQL, a SQLite file copied in
    /// one snapshot (`copy::copy_store`) whose chain is verified before the
    /// backup takes its name.
    pub fn backup_to(&self, destination: &Path) -> Result<(), StoreError> {
        if destination.exists() {
            return Err(StoreError::Workflow(format!(
                "{} already exists; a backup never overwrites a file",
                destination.display()
            )));
        }
        // Written under a name of its own and renamed once whole: a backup
        // cut short (a crash, SIGKILL, a full disk) never sits under the
        // backup's name, where it would open as an empty store.
        let partial = sibling(destination, ".partial");
        let moved = |source| StoreError::BackupFile {
            path: destination.to_path_buf(),
            source,
        };
        let remove_partial = || {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                match std::fs::remove_file(sibling(&partial, suffix)) {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(moved(error)),
                    _ => {}
                }
            }
            Ok(())
        };
        remove_partial()?;
        let Backend::Sqlite(source) = &self.backend else {
            let copied = super::copy::copy_store(&self.path, &partial, self.options.clone())
                .and_then(|_| Store::open(&partial, self.options.clone())?.verify_chain(None));
            match copied {
                Ok(verification) if verification.ok() => {}
                Ok(verification) => {
                    remove_partial()?;
                    return Err(StoreError::Workflow(format!(
                        "the copy of {} does not verify ({}); no backup was written",
                        self.location(),
                        verification.summary()
                    )));
                }
                Err(error) => {
                    remove_partial()?;
                    return Err(error);
                }
            }
            // The copy's own WAL is folded in by closing it; only the file moves.
            return std::fs::rename(&partial, destination).map_err(moved);
        };
        let failed = |source| StoreError::Backup {
            path: destination.to_path_buf(),
            source,
        };
        {
            let mut target = Connection::open(&partial).map_err(failed)?;
            let backup = rusqlite::backup::Backup::new(source, &mut target).map_err(failed)?;
            backup
                .run_to_completion(1024, std::time::Duration::from_millis(5), None)
                .map_err(failed)?;
        }
        std::fs::rename(&partial, destination).map_err(moved)?;
        Ok(())
    }

    /// Give the engine's activity accumulator the (key, IP) pairs already stored.
    pub fn load_activity(&self, activity: &mut super::rollup::Activity) -> Result<usize, StoreError> {
        self.with_db(|db| {
            super::rollup::load_pairs(db, &mut |key, ip, first_ms| activity.remember_pair(key, ip, first_ms))
        })
    }

    /// The god view over a time range (`trailwarden activity`).
    pub fn activity_report(
        &self,
        query: &super::rollup::ActivityQuery,
    ) -> Result<super::rollup::ActivityReport, StoreError> {
        self.with_db(|db| super::rollup::activity_report(db, query))
    }

    /// Key-operation traces, most recent first (`trailwarden traces`).
    pub fn list_traces(&self, filter: &super::rollup::TraceFilter) -> Result<Vec<super::rollup::Trace>, StoreError> {
        self.with_db(|db| super::rollup::list_traces(db, filter))
    }

    /// `store stats`: what the store holds, table by table, on either backend.
    pub fn stats(&self) -> Result<super::retention::stats::StoreStats, StoreError> {
        let location = self.location();
        self.with_db(|db| super::retention::stats::stats(db, &self.path, &location))
    }

    /// Row counts, for summaries and health output.
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.with_db(|db| {
            let mut count = |sql: &str| -> DbResult<u64> {
                Ok(db.query_opt(sql, &[], |row| get::<i64>(row, 0))?.unwrap_or(0).max(0) as u64)
            };
            Ok(StoreCounts {
                alarms: count("SELECT COUNT(*) FROM alarms")?,
                open_alarms: count("SELECT COUNT(*) FROM alarms WHERE status = 'unprocessed'")?,
                dead_letters: count("SELECT COUNT(*) FROM dead_letters")?,
            })
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    pub alarms: u64,
    pub open_alarms: u64,
    pub dead_letters: u64,
}

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

/// The stored next offset of each partition of `group`, read from any
/// connection (the Kafka source reads through its own read-only connection).
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
    Ok(file_checkpoint_in(&mut SqliteDb(connection), path)?)
}

/// `read_file_checkpoint` on either backend.
pub fn file_checkpoint_in<D: Db + ?Sized>(db: &mut D, path: &str) -> DbResult<Option<FileCheckpoint>> {
    db.query_opt(
        "SELECT path, size, mtime_ms, \"offset\", line, completed, container_depth, container_line, \
         container_index FROM source_files WHERE path = ?1",
        crate::db_params![path],
        |row| {
            let depth: i64 = get(row, 6)?;
            Ok(FileCheckpoint {
                path: get(row, 0)?,
                size: get::<i64>(row, 1)?.max(0) as u64,
                mtime_ms: get(row, 2)?,
                offset: get::<i64>(row, 3)?.max(0) as u64,
                line: get::<i64>(row, 4)?.max(0) as u64,
                completed: get(row, 5)?,
                container: (depth > 0).then(|| crate::source::framer::ContainerAt {
                    depth: u32::try_from(depth).unwrap_or(0),
                    doc_line: u64::try_from(get::<i64>(row, 7).unwrap_or(0)).unwrap_or(0),
                    next_index: u32::try_from(get::<i64>(row, 8).unwrap_or(0)).unwrap_or(0),
                }),
            })
        },
    )
}

/// `path` with `suffix` appended to its file name (`store.db` → `store.db-wal`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Alarm updates for tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{AlarmIdentity, AlarmUpdate, CallRecord, Sample};
    use crate::rules::Level;

    /// An update of rule `rule-a`'s alarm for `group`: one call record per
    /// address and `samples` samples, all at `at`.
    pub(crate) fn update(group: &str, ips: &[&str], samples: usize, at: &str) -> AlarmUpdate {
        AlarmUpdate {
            rule_id: "rule-a".into(),
            rule_hash: "h1".into(),
            level: Level::High,
            title: "A rule".into(),
            tags: vec!["t1".into(), "t2".into()],
            group_key: group.into(),
            identity: AlarmIdentity {
                provider: "aws".into(),
                account_id: Some("123".into()),
                account_identity: "root".into(),
                principal_kind: "user".into(),
                access_key_id: Some("AKIA1".into()),
                access_key_temporary: Some(false),
                ..AlarmIdentity::default()
            },
            first_seen: at.into(),
            last_seen: at.into(),
            count: 4,
            escalate: Vec::new(),
            operations: Vec::new(),
            last_output: format!("output at {at}"),
            calls: ips
                .iter()
                .map(|ip| CallRecord {
                    source_ip: (*ip).into(),
                    ip_kind: "public".into(),
                    call_method: "api".into(),
                    service: "iam".into(),
                    action: "CreateUser".into(),
                    success_count: 3,
                    failure_count: 1,
                    first_call: at.into(),
                    last_call: at.into(),
                })
                .collect(),
            samples: (0..samples)
                .map(|index| Sample {
                    event_id: format!("{group}-{at}-{index}"),
                    event_time: at.into(),
                    origin: "file.jsonl:1".into(),
                    event: format!("{{\"n\":{index},\"text\":\"{}\"}}", "x".repeat(100 * index)),
                })
                .collect(),
        }
    }
}
