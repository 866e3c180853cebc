//! `store stats`: what the store holds, table by table, and how old it is.

use std::path::Path;

use serde::Serialize;

use crate::db::{Db, DbExt, DbResult, Dialect, get};

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
fn oldest_sql(table: &str, dialect: Dialect) -> Option<&'static str> {
    if dialect == Dialect::Postgres {
        match table {
            "activity_hourly" => {
                return Some(
                    "SELECT to_char(to_timestamp((min(key) >> 32) * 3600) AT TIME ZONE 'UTC', \
                     'YYYY-MM-DD\"T\"HH24:00:00\"Z\"') FROM activity_hourly",
                );
            }
            "event_blocks" => {
                return Some(
                    "SELECT to_char(to_timestamp(min(max_time_ms) / 1000) AT TIME ZONE 'UTC', \
                     'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM event_blocks",
                );
            }
            _ => {}
        }
    }
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

/// What the store holds. On SQLite: the file, its WAL and free pages, and
/// each table's pages (`dbstat`); on PostgreSQL (`location` is the URL
/// without its password): the database's size and each table's with its
/// indexes and TOAST (no WAL or free-page figures: the server's own).
pub fn stats(db: &mut dyn Db, path: &Path, location: &str) -> DbResult<StoreStats> {
    let dialect = db.dialect();
    let number = |value: Option<i64>| value.unwrap_or(0).max(0) as u64;
    let mut bytes: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let (tables, free_bytes): (Vec<String>, u64) = match dialect {
        Dialect::Sqlite => {
            let page_size = number(db.query_opt("PRAGMA page_size", &[], |row| get(row, 0))?);
            let free_pages = number(db.query_opt("PRAGMA freelist_count", &[], |row| get(row, 0))?);
            let tables = db.query_all(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                &[],
                |row| get(row, 0),
            )?;
            // Bytes per b-tree (tables and indexes), summed per table.
            db.query_each(
                "SELECT s.tbl_name, d.pgsize FROM dbstat AS d JOIN sqlite_schema AS s ON s.name = d.name \
                 WHERE d.aggregate = TRUE",
                &[],
                &mut |row| {
                    *bytes.entry(get::<String>(row, 0)?).or_default() += get::<i64>(row, 1)?.max(0) as u64;
                    Ok(())
                },
            )?;
            (tables, free_pages * page_size)
        }
        Dialect::Postgres => {
            let tables: Vec<(String, i64)> = db.query_all(
                "SELECT tablename, pg_total_relation_size(quote_ident(tablename)) FROM pg_tables \
                 WHERE schemaname = current_schema() ORDER BY tablename",
                &[],
                |row| Ok((get(row, 0)?, get(row, 1)?)),
            )?;
            for (table, size) in &tables {
                bytes.insert(table.clone(), (*size).max(0) as u64);
            }
            (tables.into_iter().map(|(table, _)| table).collect(), 0)
        }
    };
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let rows = number(db.query_opt(&format!("SELECT count(*) FROM \"{table}\""), &[], |row| get(row, 0))?);
        let oldest = match oldest_sql(&table, dialect) {
            Some(sql) => db.query_opt(sql, &[], |row| get::<Option<String>>(row, 0))?.flatten(),
            None => None,
        };
        out.push(TableStats {
            bytes: bytes.get(&table).copied().unwrap_or(0),
            table,
            rows,
            oldest,
        });
    }
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.table.cmp(&b.table)));
    let chain_checkpoint = db
        .query_opt("SELECT max(seq) FROM chain_checkpoints", &[], |row| {
            get::<Option<i64>>(row, 0)
        })?
        .flatten();
    let size = |path: &Path| std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0);
    Ok(match dialect {
        Dialect::Sqlite => StoreStats {
            path: path.display().to_string(),
            file_bytes: size(path),
            wal_bytes: size(&crate::alarm::store::sibling(path, "-wal")),
            free_bytes,
            chain_checkpoint,
            tables: out,
        },
        Dialect::Postgres => StoreStats {
            path: location.to_string(),
            file_bytes: number(db.query_opt("SELECT pg_database_size(current_database())", &[], |row| get(row, 0))?),
            wal_bytes: 0,
            free_bytes,
            chain_checkpoint,
            tables: out,
        },
    })
}
