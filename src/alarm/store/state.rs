//! The engine's persisted state: stateful-predicate tables and the events
//! waiting in the reorder buffer, loaded at start and written with each batch.

use std::sync::Arc;

use crate::db::{CHUNKS, Db, DbExt, DbResult, Dialect, Value, chunk_for, get, placeholder_rows};

use super::{PendingRow, Store, StoreError};
use crate::rules::state::{DistinctWindow, EngineState, KeySeen, Window};

/// State entries changed (`Some`) or removed (`None`) since the last write,
/// of one scope: `''`, or on a shared store the Kafka partition the state
/// belongs to (`PartitionScope::name`).
#[derive(Debug, Default)]
pub struct StateChanges {
    pub scope: Arc<str>,
    pub keys: Vec<(u64, Option<(KeySeen, i64)>)>,
    pub principals: Vec<(u64, Option<(i64, i64)>)>,
    pub first_seen: Vec<(u64, Option<(i64, i64)>)>,
    pub addresses: Vec<(u64, Option<(i64, i64)>)>,
    pub windows: Vec<(u64, Option<(Window, i64)>)>,
    pub distinct: Vec<(u64, Option<(DistinctWindow, i64)>)>,
}

impl StateChanges {
    pub fn take(state: &mut EngineState, scope: Arc<str>) -> StateChanges {
        StateChanges {
            scope,
            keys: state.keys.take_changes(),
            principals: state.principals.take_changes(),
            first_seen: state.first_seen.take_changes(),
            addresses: state.addresses.take_changes(),
            windows: state.windows.take_changes(),
            distinct: state.distinct.take_changes(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.principals.is_empty()
            && self.first_seen.is_empty()
            && self.addresses.is_empty()
            && self.windows.is_empty()
            && self.distinct.is_empty()
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

impl Store {
    /// `state import`: merge an access-key inventory into the engine's key
    /// table in one transaction, on either backend (`inventory::import`).
    pub fn import_key_inventory(
        &mut self,
        keys: &[crate::alarm::inventory::InventoryKey],
        now_ms: i64,
    ) -> Result<usize, StoreError> {
        self.transact(None, |db| Ok(crate::alarm::inventory::import(db, keys, now_ms)?))
    }

    /// Load the persisted engine state of `scope` (every scope when None)
    /// into `state`, without marking it dirty.
    pub fn load_state(&self, state: &mut EngineState, scope: Option<&str>) -> Result<(), StoreError> {
        self.with_db(|db| load_state_in(db, state, scope))?;
        if let Some(high_water) = self.meta("high_water_ms")? {
            state.high_water_ms = high_water;
        }
        Ok(())
    }

    /// Events of `scope` (every scope when None) that were waiting in the
    /// reorder buffer at the last commit.
    pub fn load_pending(&self, scope: Option<&str>) -> Result<Vec<PendingRow>, StoreError> {
        let (sql, params) = match scope {
            None => (
                "SELECT seq, provider, time_ms, time_source, origin, raw, scope FROM pending_events ORDER BY seq",
                Vec::new(),
            ),
            Some(scope) => (
                "SELECT seq, provider, time_ms, time_source, origin, raw, scope FROM pending_events \
                 WHERE scope = ?1 ORDER BY seq",
                vec![Value::Text(scope)],
            ),
        };
        self.with_db(|db| {
            db.query_all(sql, &params, |row| {
                Ok(PendingRow {
                    seq: get(row, 0)?,
                    provider: get(row, 1)?,
                    time_ms: get(row, 2)?,
                    time_source: get(row, 3)?,
                    origin: get(row, 4)?,
                    raw: get(row, 5)?,
                    scope: Arc::from(get::<String>(row, 6)?),
                })
            })
        })
    }
}

/// `sql` (a SELECT without WHERE) limited to `scope` when given.
fn scoped(sql: &str, scope: Option<&str>) -> String {
    match scope {
        Some(_) => format!("{sql} WHERE scope = ?1"),
        None => sql.to_string(),
    }
}

/// A partition's keys on PostgreSQL, with the key inventory's (scope `''`,
/// `state import`) merged in: the earlier first use, the later last use and
/// whether that last use is the inventory's (the partition's own row wins a
/// tie).
const PARTITION_KEYS: &str = "SELECT DISTINCT ON (key) key, min(first_ms) OVER (PARTITION BY key), last_ms, \
     max(touched_ms) OVER (PARTITION BY key), from_inventory FROM state_keys WHERE scope = ?1 OR scope = '' \
     ORDER BY key, last_ms DESC, scope = '' ASC";

fn load_state_in(db: &mut dyn Db, state: &mut EngineState, scope: Option<&str>) -> DbResult<()> {
    let params: Vec<Value<'_>> = scope.map(Value::Text).into_iter().collect();
    let keys = match scope {
        Some(scope) if !scope.is_empty() && db.dialect() == Dialect::Postgres => PARTITION_KEYS.to_string(),
        _ => scoped(
            "SELECT key, first_ms, last_ms, touched_ms, from_inventory FROM state_keys",
            scope,
        ),
    };
    db.query_each(&keys, &params, &mut |row| {
        let seen = KeySeen {
            first_ms: get(row, 1)?,
            last_ms: get(row, 2)?,
            from_inventory: get(row, 4)?,
        };
        state.keys.restore(key_from_sql(get(row, 0)?), seen, get(row, 3)?);
        Ok(())
    })?;
    for (table, target) in [
        (
            "SELECT key, created_ms, touched_ms FROM state_principals",
            &mut state.principals,
        ),
        (
            "SELECT key, first_ms, touched_ms FROM state_first_seen",
            &mut state.first_seen,
        ),
        (
            "SELECT key, first_ms, touched_ms FROM state_addresses",
            &mut state.addresses,
        ),
    ] {
        db.query_each(&scoped(table, scope), &params, &mut |row| {
            target.restore(key_from_sql(get(row, 0)?), get(row, 1)?, get(row, 2)?);
            Ok(())
        })?;
    }
    db.query_each(
        &scoped("SELECT key, times, touched_ms FROM state_windows", scope),
        &params,
        &mut |row| {
            let window = Window {
                times: decode_times(&get::<Vec<u8>>(row, 1)?),
            };
            state.windows.restore(key_from_sql(get(row, 0)?), window, get(row, 2)?);
            Ok(())
        },
    )?;
    db.query_each(
        &scoped("SELECT key, entries, touched_ms FROM state_distinct", scope),
        &params,
        &mut |row| {
            let window = DistinctWindow {
                values: decode_distinct(&get::<Vec<u8>>(row, 1)?),
            };
            state.distinct.restore(key_from_sql(get(row, 0)?), window, get(row, 2)?);
            Ok(())
        },
    )?;
    Ok(())
}

/// The state tables and their value columns (each row is `key`, these,
/// `touched_ms`).
const TABLES: [(&str, &[&str]); 6] = [
    ("state_keys", &["first_ms", "last_ms", "from_inventory"]),
    ("state_principals", &["created_ms"]),
    ("state_first_seen", &["first_ms"]),
    ("state_addresses", &["first_ms"]),
    ("state_windows", &["times"]),
    ("state_distinct", &["entries"]),
];

/// `(upsert, delete)` of `table` for `CHUNKS[at]` rows. Each upserted row
/// is `scope, key, columns…, touched_ms`; a delete's first parameter is the
/// scope, then the keys. A SQLite store (one daemon) keys its rows by `key`;
/// PostgreSQL by `(scope, key)`, each partition's state apart.
fn statements(dialect: Dialect, table: usize, at: usize) -> (&'static str, &'static str) {
    type Statements = Vec<Vec<(String, String)>>;
    static STATEMENTS: std::sync::OnceLock<[Statements; 2]> = std::sync::OnceLock::new();
    let all = STATEMENTS.get_or_init(|| {
        [Dialect::Sqlite, Dialect::Postgres].map(|dialect| {
            let conflict = match dialect {
                Dialect::Sqlite => "key",
                Dialect::Postgres => "scope, key",
            };
            TABLES
                .iter()
                .map(|(name, columns)| {
                    let width = columns.len() + 3;
                    CHUNKS
                        .iter()
                        .map(|rows| {
                            let updates: Vec<String> = ["scope"]
                                .iter()
                                .chain(columns.iter())
                                .chain(std::iter::once(&"touched_ms"))
                                .map(|column| format!("{column} = excluded.{column}"))
                                .collect();
                            let keys: Vec<String> = (2..=*rows + 1).map(|at| format!("?{at}")).collect();
                            (
                                format!(
                                    "INSERT INTO {name} (scope, key, {}, touched_ms) VALUES {} \
                                     ON CONFLICT ({conflict}) DO UPDATE SET {}",
                                    columns.join(", "),
                                    placeholder_rows(*rows, width),
                                    updates.join(", ")
                                ),
                                format!("DELETE FROM {name} WHERE scope = ?1 AND key IN ({})", keys.join(", ")),
                            )
                        })
                        .collect()
                })
                .collect()
        })
    });
    let index = usize::from(dialect == Dialect::Postgres);
    let (upsert, delete) = &all[index][table][at];
    (upsert, delete)
}

/// Write `values` (`width` per row) to `table`: upserts, or with `delete`
/// the keys (`width` 1) of `scope` removed.
fn write_chunked<'v, D: Db + ?Sized>(
    db: &mut D,
    table: usize,
    width: usize,
    values: &[Value<'v>],
    delete: Option<&'v str>,
) -> DbResult<()> {
    let dialect = db.dialect();
    let mut rest = values;
    let mut parameters: Vec<Value<'v>> = Vec::new();
    while !rest.is_empty() {
        let (chunk, at) = chunk_for(rest.len() / width);
        let (now, after) = rest.split_at(chunk * width);
        let (upsert, remove) = statements(dialect, table, at);
        match delete {
            Some(scope) => {
                parameters.clear();
                parameters.push(Value::Text(scope));
                parameters.extend_from_slice(now);
                db.execute(remove, &parameters)?;
            }
            None => {
                db.execute(upsert, now)?;
            }
        }
        rest = after;
    }
    Ok(())
}

/// One table's changes: rows to upsert (flattened) and keys to delete.
fn write_table<'v, V>(
    db: &mut (impl Db + ?Sized),
    table: usize,
    scope: &'v str,
    changes: &'v [(u64, Option<(V, i64)>)],
    row: impl Fn(&'v V) -> Vec<Value<'v>>,
) -> DbResult<()> {
    let width = TABLES[table].1.len() + 3;
    let mut upserts: Vec<Value<'v>> = Vec::new();
    let mut deletes: Vec<Value<'v>> = Vec::new();
    for (key, change) in changes {
        match change {
            Some((value, touched)) => {
                upserts.push(Value::Text(scope));
                upserts.push(Value::Int(key_to_sql(*key)));
                upserts.extend(row(value));
                upserts.push(Value::Int(*touched));
            }
            None => deletes.push(Value::Int(key_to_sql(*key))),
        }
    }
    write_chunked(db, table, width, &upserts, None)?;
    write_chunked(db, table, 1, &deletes, Some(scope))
}

/// A blob-valued table's changes, encoded.
type EncodedChanges = Vec<(u64, Option<(Vec<u8>, i64)>)>;

pub(super) fn write_state<D: Db + ?Sized>(db: &mut D, changes: &StateChanges) -> DbResult<()> {
    let scope: &str = &changes.scope;
    write_table(db, 0, scope, &changes.keys, |seen| {
        vec![
            Value::Int(seen.first_ms),
            Value::Int(seen.last_ms),
            Value::from(seen.from_inventory),
        ]
    })?;
    write_table(db, 1, scope, &changes.principals, |value| vec![Value::Int(*value)])?;
    write_table(db, 2, scope, &changes.first_seen, |value| vec![Value::Int(*value)])?;
    write_table(db, 3, scope, &changes.addresses, |value| vec![Value::Int(*value)])?;
    // Blobs are encoded first, then bound by reference.
    let times: EncodedChanges = changes
        .windows
        .iter()
        .map(|(key, change)| {
            (
                *key,
                change
                    .as_ref()
                    .map(|(window, touched)| (encode_times(&window.times), *touched)),
            )
        })
        .collect();
    write_table(db, 4, scope, &times, |blob| vec![Value::Blob(blob)])?;
    let entries: EncodedChanges = changes
        .distinct
        .iter()
        .map(|(key, change)| {
            (
                *key,
                change
                    .as_ref()
                    .map(|(window, touched)| (encode_distinct(&window.values), *touched)),
            )
        })
        .collect();
    write_table(db, 5, scope, &entries, |blob| vec![Value::Blob(blob)])
}
