//! The engine's persisted state: stateful-predicate tables and the events
//! waiting in the reorder buffer, loaded at start and written with each batch.

use crate::db::{Db, DbExt, DbResult, get};
use crate::db_params;

use super::{PendingRow, Store, StoreError};
use crate::rules::state::{DistinctWindow, EngineState, KeySeen, Window};

/// State entries changed (`Some`) or removed (`None`) since the last write.
#[derive(Debug, Default)]
pub struct StateChanges {
    pub keys: Vec<(u64, Option<(KeySeen, i64)>)>,
    pub principals: Vec<(u64, Option<(i64, i64)>)>,
    pub first_seen: Vec<(u64, Option<(i64, i64)>)>,
    pub addresses: Vec<(u64, Option<(i64, i64)>)>,
    pub windows: Vec<(u64, Option<(Window, i64)>)>,
    pub distinct: Vec<(u64, Option<(DistinctWindow, i64)>)>,
}

impl StateChanges {
    pub fn take(state: &mut EngineState) -> StateChanges {
        StateChanges {
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
    /// Load the persisted engine state into `state` (without marking it dirty).
    pub fn load_state(&self, state: &mut EngineState) -> Result<(), StoreError> {
        self.with_db(|db| load_state_in(db, state))?;
        if let Some(high_water) = self.meta("high_water_ms")? {
            state.high_water_ms = high_water;
        }
        Ok(())
    }

    /// Events that were waiting in the reorder buffer at the last commit.
    pub fn load_pending(&self) -> Result<Vec<PendingRow>, StoreError> {
        self.with_db(|db| {
            db.query_all(
                "SELECT seq, provider, time_ms, time_source, origin, raw FROM pending_events ORDER BY seq",
                &[],
                |row| {
                    Ok(PendingRow {
                        seq: get(row, 0)?,
                        provider: get(row, 1)?,
                        time_ms: get(row, 2)?,
                        time_source: get(row, 3)?,
                        origin: get(row, 4)?,
                        raw: get(row, 5)?,
                    })
                },
            )
        })
    }
}

fn load_state_in(db: &mut dyn Db, state: &mut EngineState) -> DbResult<()> {
    db.query_each(
        "SELECT key, first_ms, last_ms, touched_ms, from_inventory FROM state_keys",
        &[],
        &mut |row| {
            let seen = KeySeen {
                first_ms: get(row, 1)?,
                last_ms: get(row, 2)?,
                from_inventory: get(row, 4)?,
            };
            state.keys.restore(key_from_sql(get(row, 0)?), seen, get(row, 3)?);
            Ok(())
        },
    )?;
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
        db.query_each(table, &[], &mut |row| {
            target.restore(key_from_sql(get(row, 0)?), get(row, 1)?, get(row, 2)?);
            Ok(())
        })?;
    }
    db.query_each("SELECT key, times, touched_ms FROM state_windows", &[], &mut |row| {
        let window = Window {
            times: decode_times(&get::<Vec<u8>>(row, 1)?),
        };
        state.windows.restore(key_from_sql(get(row, 0)?), window, get(row, 2)?);
        Ok(())
    })?;
    db.query_each("SELECT key, entries, touched_ms FROM state_distinct", &[], &mut |row| {
        let window = DistinctWindow {
            values: decode_distinct(&get::<Vec<u8>>(row, 1)?),
        };
        state.distinct.restore(key_from_sql(get(row, 0)?), window, get(row, 2)?);
        Ok(())
    })?;
    Ok(())
}

/// Upserts of one state table: `(key, value columns…, touched_ms)`.
fn upsert_sql(table: &str, columns: &str) -> String {
    let names: Vec<&str> = columns.split(", ").collect();
    let placeholders: Vec<String> = (1..=names.len() + 2).map(|at| format!("?{at}")).collect();
    let updates: Vec<String> = names
        .iter()
        .chain(std::iter::once(&"touched_ms"))
        .map(|name| format!("{name} = excluded.{name}"))
        .collect();
    format!(
        "INSERT INTO {table} (key, {columns}, touched_ms) VALUES ({}) ON CONFLICT (key) DO UPDATE SET {}",
        placeholders.join(", "),
        updates.join(", ")
    )
}

/// The statements of each state table, built once: (upsert, delete).
fn statements() -> &'static [(String, String); 6] {
    static STATEMENTS: std::sync::OnceLock<[(String, String); 6]> = std::sync::OnceLock::new();
    STATEMENTS.get_or_init(|| {
        let pair = |table: &str, columns: &str| {
            (
                upsert_sql(table, columns),
                format!("DELETE FROM {table} WHERE key = ?1"),
            )
        };
        [
            pair("state_keys", "first_ms, last_ms, from_inventory"),
            pair("state_principals", "created_ms"),
            pair("state_first_seen", "first_ms"),
            pair("state_addresses", "first_ms"),
            pair("state_windows", "times"),
            pair("state_distinct", "entries"),
        ]
    })
}

pub(super) fn write_state<D: Db + ?Sized>(db: &mut D, changes: &StateChanges) -> DbResult<()> {
    let [keys, principals, first_seen, addresses, windows, distinct] = statements();
    for (key, change) in &changes.keys {
        match change {
            Some((seen, touched)) => {
                db.execute(
                    &keys.0,
                    db_params![
                        key_to_sql(*key),
                        seen.first_ms,
                        seen.last_ms,
                        seen.from_inventory,
                        *touched
                    ],
                )?;
            }
            None => {
                db.execute(&keys.1, db_params![key_to_sql(*key)])?;
            }
        }
    }
    for (statements, changes) in [
        (principals, &changes.principals),
        (first_seen, &changes.first_seen),
        (addresses, &changes.addresses),
    ] {
        for (key, change) in changes {
            match change {
                Some((value, touched)) => db.execute(&statements.0, db_params![key_to_sql(*key), *value, *touched])?,
                None => db.execute(&statements.1, db_params![key_to_sql(*key)])?,
            };
        }
    }
    for (key, change) in &changes.windows {
        match change {
            Some((window, touched)) => {
                let times = encode_times(&window.times);
                db.execute(&windows.0, db_params![key_to_sql(*key), times.as_slice(), *touched])?
            }
            None => db.execute(&windows.1, db_params![key_to_sql(*key)])?,
        };
    }
    for (key, change) in &changes.distinct {
        match change {
            Some((window, touched)) => {
                let entries = encode_distinct(&window.values);
                db.execute(&distinct.0, db_params![key_to_sql(*key), entries.as_slice(), *touched])?
            }
            None => db.execute(&distinct.1, db_params![key_to_sql(*key)])?,
        };
    }
    Ok(())
}
