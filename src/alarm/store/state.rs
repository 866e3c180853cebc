//! The engine's persisted state: stateful-predicate tables and the events
//! waiting in the reorder buffer, loaded at start and written with each batch.

use rusqlite::{Transaction, params};

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
        let mut statement = self
            .connection
            .prepare("SELECT key, first_ms, last_ms, touched_ms, from_inventory FROM state_keys")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let seen = KeySeen {
                first_ms: row.get(1)?,
                last_ms: row.get(2)?,
                from_inventory: row.get(4)?,
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
            (
                "SELECT key, first_ms, touched_ms FROM state_addresses",
                &mut state.addresses,
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
}

pub(super) fn write_state(transaction: &Transaction<'_>, changes: &StateChanges) -> rusqlite::Result<()> {
    {
        let mut upsert = transaction.prepare_cached(
            "INSERT OR REPLACE INTO state_keys (key, first_ms, last_ms, touched_ms, from_inventory) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut delete = transaction.prepare_cached("DELETE FROM state_keys WHERE key = ?1")?;
        for (key, change) in &changes.keys {
            match change {
                Some((seen, touched)) => {
                    upsert.execute(params![
                        key_to_sql(*key),
                        seen.first_ms,
                        seen.last_ms,
                        touched,
                        seen.from_inventory
                    ])?;
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
        ("state_addresses", "first_ms", &changes.addresses),
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
