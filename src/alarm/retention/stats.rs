//! `store stats`: what the store holds, table by table, and how old it is.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

/// One table with its indexes.
#[derive(Clone, Debug, Serialize)]
pub struct TableStats {
    pub table: String,
    pub rows: u64,
    /// Pages of the table and its indexes, in bytes.
    pub bytes: u64,
    /// The oldest row's time, for the tables retention prunes by time.
    pub oldest: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StoreStats {
    pub path: String,
    pub file_bytes: u64,
    pub wal_bytes: u64,
    /// Pages freed (by retention) and reused before the file grows again.
    pub free_bytes: u64,
    /// Where the kept chain starts, when retention has cut older links.
    pub chain_checkpoint: Option<i64>,
    pub tables: Vec<TableStats>,
}

/// The oldest time of the tables pruned by time, as SQL.
fn oldest_sql(table: &str) -> Option<&'static str> {
    Some(match table {
        "alarms" => "SELECT min(updated_at) FROM alarms WHERE status = 'processed'",
        "alarm_samples" => "SELECT min(event_time) FROM alarm_samples",
        "alarm_calls" => "SELECT min(last_call) FROM alarm_calls",
        "dead_letters" => "SELECT min(received_at) FROM dead_letters",
        "notify_messages" => "SELECT min(created_at) FROM notify_messages",
        "chain" => "SELECT min(at) FROM chain",
        "key_traces" => "SELECT min(time) FROM key_traces",
        "activity_hourly" => {
            "SELECT strftime('%Y-%m-%dT%H:00:00Z', (min(key) >> 32) * 3600, 'unixepoch') FROM activity_hourly"
        }
        "event_blocks" => {
            "SELECT strftime('%Y-%m-%dT%H:%M:%SZ', min(max_time_ms) / 1000, 'unixepoch') FROM event_blocks"
        }
        _ => return None,
    })
}

pub fn stats(connection: &Connection, path: &Path) -> rusqlite::Result<StoreStats> {
    let page_size = connection
        .query_row("PRAGMA page_size", [], |row| row.get::<_, i64>(0))?
        .max(0) as u64;
    let free_pages = connection
        .query_row("PRAGMA freelist_count", [], |row| row.get::<_, i64>(0))?
        .max(0) as u64;
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    // Bytes per b-tree (tables and indexes), summed per table.
    let mut bytes: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut trees = connection.prepare(
        "SELECT s.tbl_name, d.pgsize FROM dbstat AS d JOIN sqlite_schema AS s ON s.name = d.name \
         WHERE d.aggregate = TRUE",
    )?;
    let mut rows = trees.query([])?;
    while let Some(row) = rows.next()? {
        *bytes.entry(row.get::<_, String>(0)?).or_default() += row.get::<_, i64>(1)?.max(0) as u64;
    }
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let rows = connection.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |row| {
            row.get::<_, i64>(0)
        })?;
        let oldest = match oldest_sql(&table) {
            Some(sql) => connection.query_row(sql, [], |row| row.get::<_, Option<String>>(0))?,
            None => None,
        };
        out.push(TableStats {
            bytes: bytes.get(&table).copied().unwrap_or(0),
            table,
            rows: rows.max(0) as u64,
            oldest,
        });
    }
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.table.cmp(&b.table)));
    let size = |path: &Path| std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0);
    Ok(StoreStats {
        path: path.display().to_string(),
        file_bytes: size(path),
        wal_bytes: size(&crate::alarm::store::sibling(path, "-wal")),
        free_bytes: free_pages * page_size,
        chain_checkpoint: connection
            .query_row("SELECT max(seq) FROM chain_checkpoints", [], |row| row.get(0))
            .optional()?
            .flatten(),
        tables: out,
    })
}
