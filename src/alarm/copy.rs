//! Copy a whole store into an empty one: SQLite to PostgreSQL (moving to a
//! shared store), or back (a PostgreSQL store read with SQLite's tools).
//!
//! Every table is copied row for row with its ids, so the hash chain, which
//! seals the rows' values, verifies on the copy as it did on the original.
//! The destination must be empty; it is written in one transaction, so a copy
//! that fails leaves it empty.

use std::path::Path;

use super::store::{Store, StoreError, StoreOptions};
use crate::db::{Db, DbExt, DbResult, Dialect, PgConnection, SqliteDb, StoreLocation, Value, get};

/// The tables a store holds, parents before children.
const TABLES: &[&str] = &[
    "alarms",
    "alarm_transitions",
    "alarm_calls",
    "alarm_samples",
    "dead_letters",
    "source_files",
    "state_keys",
    "state_principals",
    "state_first_seen",
    "state_addresses",
    "state_windows",
    "state_distinct",
    "pending_events",
    "engine_meta",
    "kafka_offsets",
    "chain",
    "chain_checkpoints",
    "allowlist",
    "remarks",
    "assets",
    "changes",
    "activity_hourly",
    "activity_key_ips",
    "key_traces",
    "notify_messages",
    "notify_deliveries",
    "event_blocks",
    "event_block_data",
];

/// Rows copied, per table (tables with none left out).
#[derive(Debug, Default)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, u64)>,
}

impl CopyReport {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, rows)| rows).sum()
    }
}

/// A value read from one store, kept to write into the other.
#[derive(Clone, Debug)]
enum Owned {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Owned {
    fn of(value: Value<'_>) -> Owned {
        match value {
            Value::Null => Owned::Null,
            Value::Int(value) => Owned::Int(value),
            Value::Real(value) => Owned::Real(value),
            Value::Text(text) => Owned::Text(text.to_string()),
            Value::Blob(blob) => Owned::Blob(blob.to_vec()),
        }
    }

    fn value(&self) -> Value<'_> {
        match self {
            Owned::Null => Value::Null,
            Owned::Int(value) => Value::Int(*value),
            Owned::Real(value) => Value::Real(*value),
            Owned::Text(text) => Value::Text(text),
            Owned::Blob(blob) => Value::Blob(blob),
        }
    }
}

/// The columns of `table`, in the order the schema declares them.
fn columns(db: &mut dyn Db, table: &str) -> DbResult<Vec<String>> {
    match db.dialect() {
        Dialect::Sqlite => db.query_all(&format!("PRAGMA table_info({table})"), &[], |row| get(row, 1)),
        Dialect::Postgres => db.query_all(
            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() \
             AND table_name = ?1 ORDER BY ordinal_position",
            crate::db_params![table],
            |row| get(row, 0),
        ),
    }
}

/// Quote a column name (`offset` is reserved in PostgreSQL).
fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// Rows a table holds.
fn row_count(db: &mut dyn Db, table: &str) -> DbResult<i64> {
    Ok(db
        .query_opt(&format!("SELECT COUNT(*) FROM {table}"), &[], |row| get(row, 0))?
        .unwrap_or(0))
}

/// Copy `table` from `source` into `destination` (the same columns); a
/// column in `later` is written as NULL and set by a second pass (a
/// reference to a row copied after this one).
fn copy_table(source: &mut dyn Db, destination: &mut dyn Db, table: &str, later: Option<&str>) -> DbResult<u64> {
    let names = columns(destination, table)?;
    if names.is_empty() {
        return Ok(0);
    }
    let list: Vec<String> = names.iter().map(|name| quoted(name)).collect();
    let order = if names.iter().any(|name| name == "id") {
        "id".to_string()
    } else {
        quoted(&names[0])
    };
    let select = format!("SELECT {} FROM {table} ORDER BY {order}", list.join(", "));
    let placeholders: Vec<String> = (1..=names.len()).map(|at| format!("?{at}")).collect();
    let insert = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        list.join(", "),
        placeholders.join(", ")
    );
    let later_at = later.and_then(|column| names.iter().position(|name| name == column));
    let mut deferred: Vec<(Owned, Owned)> = Vec::new();
    let mut copied = 0u64;
    source.query_each(&select, &[], &mut |row| {
        let mut values: Vec<Owned> = (0..names.len())
            .map(|index| row.value(index).map(Owned::of))
            .collect::<DbResult<_>>()?;
        if let Some(at) = later_at
            && !matches!(values[at], Owned::Null)
        {
            let id = values.first().cloned().unwrap_or(Owned::Null);
            deferred.push((id, std::mem::replace(&mut values[at], Owned::Null)));
        }
        let bound: Vec<Value<'_>> = values.iter().map(Owned::value).collect();
        destination.execute(&insert, &bound)?;
        copied += 1;
        Ok(())
    })?;
    if let Some(column) = later {
        let update = format!("UPDATE {table} SET {} = ?2 WHERE id = ?1", quoted(column));
        for (id, value) in &deferred {
            destination.execute(&update, &[id.value(), value.value()])?;
        }
    }
    Ok(copied)
}

/// Copy every row of the store at `from` into the empty store at `to`
/// (created and migrated as needed). Both are brought to the current
/// schema first.
pub fn copy_store(from: &Path, to: &Path, options: StoreOptions) -> Result<CopyReport, StoreError> {
    if StoreLocation::from_path(from) == StoreLocation::from_path(to) {
        return Err(StoreError::Workflow(
            "the source and the destination are the same store".into(),
        ));
    }
    // Opening migrates both to the current schema.
    let source = Store::open(from, options.clone())?;
    drop(Store::open(to, options)?);
    let mut report = CopyReport::default();
    source.with_db(|source| {
        // A store in use keeps changing: read a PostgreSQL source in one
        // snapshot, so the copy is the store as it was at one moment and its
        // chain verifies.
        let postgres = source.dialect() == Dialect::Postgres;
        if postgres {
            source.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        }
        let copied = copy_into(source, to, &mut report);
        if postgres {
            let ended = source.batch(if copied.is_ok() { "COMMIT" } else { "ROLLBACK" });
            copied?;
            return ended;
        }
        copied
    })?;
    Ok(report)
}

/// Copy `source` into the empty store at `to`, in one transaction there.
fn copy_into(source: &mut dyn Db, to: &Path, report: &mut CopyReport) -> DbResult<()> {
    match StoreLocation::from_path(to) {
        StoreLocation::Postgres(url) => {
            let mut connection = PgConnection::connect(&url)?;
            let mut transaction = connection.transaction()?;
            copy_all(source, &mut transaction, report)?;
            // Identity columns continue after the ids copied.
            let identities: Vec<String> = transaction.query_all(
                "SELECT table_name::text FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND column_name = 'id' AND is_identity = 'YES' ORDER BY table_name",
                &[],
                |row| get(row, 0),
            )?;
            for table in &identities {
                transaction.query_opt(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                         GREATEST((SELECT COALESCE(max(id), 0) FROM {table}), 1), \
                         (SELECT COUNT(*) > 0 FROM {table}))"
                    ),
                    &[],
                    |_| Ok(()),
                )?;
            }
            transaction.commit()
        }
        StoreLocation::Sqlite(path) => {
            let mut connection = rusqlite::Connection::open(&path)?;
            let transaction = connection.transaction()?;
            copy_all(source, &mut SqliteDb(&transaction), report)?;
            Ok(transaction.commit()?)
        }
    }
}

fn copy_all(source: &mut dyn Db, destination: &mut dyn Db, report: &mut CopyReport) -> DbResult<()> {
    for table in TABLES {
        let present = row_count(destination, table)?;
        if present > 0 {
            return Err(crate::db::DbError::Unsupported(format!(
                "the destination is not empty: its table {table} has {present} rows; copy into a new store"
            )));
        }
    }
    for table in TABLES {
        // A digest message is written after the messages it folds, which
        // point at it: their link is set once every message is there.
        let later = (*table == "notify_messages").then_some("digest_id");
        let rows = copy_table(source, destination, table, later)?;
        if rows > 0 {
            report.tables.push((table, rows));
        }
    }
    Ok(())
}
