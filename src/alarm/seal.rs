//! The hash chain's writing side over either backend ([`Db`]): row hashes
//! and new links. `chain` keeps the canonical hashing and verification; its
//! SQLite entry points call these.
//!
//! On PostgreSQL several daemons extend one chain: a transaction takes an
//! advisory lock before reading the head, so links are appended one
//! transaction at a time and the sequence has no gaps or forks.

use super::chain::{self, GENESIS, LinkKind};
use crate::db::{CHUNKS, Db, DbExt, DbResult, Dialect, Row, for_chunks, get, placeholder_rows};

/// The advisory lock key of the chain's head ("tw-chain" in ASCII).
const CHAIN_LOCK: i64 = 0x7477_2d63_6861_696e;

/// The `INSERT` of `CHUNKS[at]` links.
fn insert_links(at: usize) -> &'static str {
    static STATEMENTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let statements = STATEMENTS.get_or_init(|| {
        CHUNKS
            .iter()
            .map(|size| {
                format!(
                    "INSERT INTO chain (seq, at, kind, ref_id, row_hash, prev_hash, hash) VALUES {}",
                    placeholder_rows(*size, 7)
                )
            })
            .collect()
    });
    &statements[at]
}

/// The canonical hash (`chain::hash_values`) of a row read through [`Db`].
pub fn hash_row(row: &dyn Row, columns: usize) -> DbResult<String> {
    let mut values = Vec::with_capacity(columns);
    for index in 0..columns {
        values.push(row.value(index)?.as_sqlite());
    }
    Ok(chain::hash_values(&values))
}

/// The id and the row hash of a row returned with `chain::sealed_columns(kind)`.
pub fn hash_returned(row: &dyn Row, kind: LinkKind) -> DbResult<(i64, String)> {
    Ok((get(row, 0)?, hash_row(row, kind.sealed_column_count())?))
}

/// The current hash of a row, if it exists.
pub fn row_hash<D: Db + ?Sized>(db: &mut D, kind: LinkKind, id: i64) -> DbResult<Option<String>> {
    let columns = kind.sealed_column_count();
    db.query_opt(chain::select_sealed(kind), crate::db_params![id], |row| {
        hash_row(row, columns)
    })
}

/// The last link: (seq, hash); when retention has cut every link, the last
/// cut one (its checkpoint), so the chain goes on from there.
pub fn head<D: Db + ?Sized>(db: &mut D) -> DbResult<Option<(i64, String)>> {
    let last = db.query_opt("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1", &[], |row| {
        Ok((get(row, 0)?, get(row, 1)?))
    })?;
    match last {
        Some(last) => Ok(Some(last)),
        None => checkpoint(db),
    }
}

/// The last checkpoint: the (seq, hash) of the newest link retention cut.
pub fn checkpoint<D: Db + ?Sized>(db: &mut D) -> DbResult<Option<(i64, String)>> {
    // SQLite migrations older than retention seal rows before the table
    // exists; PostgreSQL's schema starts with it.
    if db.dialect() == Dialect::Sqlite
        && db
            .query_opt(
                "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'chain_checkpoints'",
                &[],
                |_| Ok(()),
            )?
            .is_none()
    {
        return Ok(None);
    }
    db.query_opt(
        "SELECT seq, hash FROM chain_checkpoints ORDER BY seq DESC LIMIT 1",
        &[],
        |row| Ok((get(row, 0)?, get(row, 1)?)),
    )
}

/// Seal the current state of rows (one link each, in order), in the
/// caller's write transaction.
pub fn append_rows<D: Db + ?Sized>(db: &mut D, kind: LinkKind, ids: &[i64], at: &str) -> DbResult<()> {
    let mut links = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(row_hash) = row_hash(db, kind, id)? {
            links.push((id, row_hash));
        }
    }
    append_hashed(db, kind, &links, at)
}

/// Record that rows were removed through trailwarden (after the `DELETE`):
/// their last links then say `removed`, and `verify` expects them gone.
pub fn append_removals<D: Db + ?Sized>(db: &mut D, kind: LinkKind, ids: &[i64], at: &str) -> DbResult<()> {
    let links: Vec<(i64, String)> = ids.iter().map(|&id| (id, chain::REMOVED.to_string())).collect();
    append_hashed(db, kind, &links, at)
}

/// Whether a policy's row is what the chain last sealed (its definition was
/// not edited, nor the row inserted, behind trailwarden's back).
pub fn policy_is_sealed<D: Db + ?Sized>(db: &mut D, id: i64) -> DbResult<bool> {
    let sealed: Option<String> = db.query_opt(
        "SELECT row_hash FROM chain WHERE kind = 'policy' AND ref_id = ?1 ORDER BY seq DESC LIMIT 1",
        crate::db_params![id],
        |row| get(row, 0),
    )?;
    let Some(sealed) = sealed else {
        return Ok(false);
    };
    Ok(row_hash(db, LinkKind::Policy, id)?.is_some_and(|current| current == sealed))
}

/// Seal rows whose hashes the caller already has: one link each, in order.
pub fn append_hashed<D: Db + ?Sized>(db: &mut D, kind: LinkKind, links: &[(i64, String)], at: &str) -> DbResult<()> {
    if links.is_empty() {
        return Ok(());
    }
    if db.dialect() == Dialect::Postgres {
        // Held to the transaction's end: the next writer reads this head.
        db.query_opt(
            "SELECT pg_advisory_xact_lock(?1)",
            crate::db_params![CHAIN_LOCK],
            |_| Ok(()),
        )?;
    }
    let (mut seq, mut prev) = head(db)?.unwrap_or((0, GENESIS.to_string()));
    let mut rows: Vec<(i64, i64, &str, String, String)> = Vec::with_capacity(links.len());
    for (id, row_hash) in links {
        seq += 1;
        let hash = chain::link_hash(&prev, seq, kind.as_str(), *id, row_hash, at);
        rows.push((seq, *id, row_hash, std::mem::replace(&mut prev, hash.clone()), hash));
    }
    // Several links per statement: one round trip for up to 64 on
    // PostgreSQL (a few statement sizes, each prepared once).
    for_chunks(
        &rows,
        7,
        |(seq, id, row_hash, prev, hash), values| {
            values.extend_from_slice(crate::db_params![
                *seq,
                at,
                kind.as_str(),
                *id,
                *row_hash,
                prev.as_str(),
                hash.as_str()
            ]);
        },
        |statement, values| db.execute(insert_links(statement), values).map(drop),
    )?;
    Ok(())
}
