//! One SQL interface over the two store backends: SQLite (embedded, the
//! default) and PostgreSQL (shared by several daemons).
//!
//! Store code written against [`Db`] runs on both. Statements are written in
//! SQLite's dialect with numbered parameters (`?1`); the PostgreSQL side
//! rewrites the parameters (`$1`) and prepares each statement once per
//! connection. Where the dialects differ (scalar `min`/`max`, `INSERT OR …`)
//! the caller asks [`Db::dialect`] and writes each form.
//!
//! Values are typed as SQLite keeps them (integer, real, text, blob, null):
//! the PostgreSQL schema stores integers as `BIGINT`, text as `TEXT`, blobs as
//! `BYTEA` and reals as `DOUBLE PRECISION`, so a row reads back the same
//! values — and hashes alike in the chain — on either backend.

pub mod location;
pub mod postgres;
mod sqlite;

pub use location::StoreLocation;
pub use postgres::{PgConnection, PgTransaction};
pub use sqlite::SqliteDb;

/// Rows per multi-row statement, largest first: one round trip for up to
/// 64 rows on PostgreSQL, and a few statement texts, each prepared once.
pub const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// The chunk for `available` rows (the largest of `CHUNKS` not above it, at
/// least 1) and its index in `CHUNKS`.
pub fn chunk_for(available: usize) -> (usize, usize) {
    let at = CHUNKS
        .iter()
        .position(|size| *size <= available)
        .unwrap_or(CHUNKS.len() - 1);
    (CHUNKS[at], at)
}

/// Run a statement of several rows over `rows`, a chunk at a time: for each
/// chunk (its size one of `CHUNKS`), `push` adds every row's `width`
/// parameters and `run(at, values)` runs the statement made for `CHUNKS[at]`
/// rows. One round trip per chunk instead of per row.
pub fn for_chunks<'a, T>(
    rows: &'a [T],
    width: usize,
    mut push: impl FnMut(&'a T, &mut Vec<Value<'a>>),
    mut run: impl FnMut(usize, &[Value<'a>]) -> DbResult<()>,
) -> DbResult<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let (size, at) = chunk_for(rest.len());
        let (chunk, after) = rest.split_at(size);
        let mut values = Vec::with_capacity(width * size);
        for row in chunk {
            push(row, &mut values);
        }
        run(at, &values)?;
        rest = after;
    }
    Ok(())
}

/// `rows` tuples of `width` numbered parameters: `(?1, ?2), (?3, ?4)`.
pub fn placeholder_rows(rows: usize, width: usize) -> String {
    let tuples: Vec<String> = (0..rows)
        .map(|row| {
            let places: Vec<String> = (1..=width).map(|at| format!("?{}", row * width + at)).collect();
            format!("({})", places.join(", "))
        })
        .collect();
    tuples.join(", ")
}

/// Which SQL the connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A parameter or a column value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> Value<'a> {
    /// The value as rusqlite's borrowed value (the chain hashes those).
    pub fn as_sqlite(self) -> rusqlite::types::ValueRef<'a> {
        match self {
            Value::Null => rusqlite::types::ValueRef::Null,
            Value::Int(value) => rusqlite::types::ValueRef::Integer(value),
            Value::Real(value) => rusqlite::types::ValueRef::Real(value),
            Value::Text(text) => rusqlite::types::ValueRef::Text(text.as_bytes()),
            Value::Blob(blob) => rusqlite::types::ValueRef::Blob(blob),
        }
    }
}

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}
impl From<i32> for Value<'_> {
    fn from(value: i32) -> Self {
        Value::Int(i64::from(value))
    }
}
impl From<u32> for Value<'_> {
    fn from(value: u32) -> Self {
        Value::Int(i64::from(value))
    }
}
impl From<bool> for Value<'_> {
    fn from(value: bool) -> Self {
        Value::Int(i64::from(value))
    }
}
impl From<f64> for Value<'_> {
    fn from(value: f64) -> Self {
        Value::Real(value)
    }
}
impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Self {
        Value::Text(value)
    }
}
impl<'a> From<&'a String> for Value<'a> {
    fn from(value: &'a String) -> Self {
        Value::Text(value)
    }
}
impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(value: &'a [u8]) -> Self {
        Value::Blob(value)
    }
}
impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// Parameters: `db_params![a, b, c]` converts each into a [`Value`].
#[macro_export]
macro_rules! db_params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::db::Value::from($value)),*]
    };
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres::describe(.0))]
    Postgres(#[from] ::postgres::Error),
    /// A column read as a type it does not hold.
    #[error("column {column}: expected {expected}, found {found}")]
    Type {
        column: usize,
        expected: &'static str,
        found: &'static str,
    },
    /// The batch's Kafka partitions are owned by a newer generation: this
    /// instance lost them in a rebalance and must not commit.
    #[error("fenced: {0}")]
    Fenced(String),
    #[error("{0}")]
    Unsupported(String),
}

impl DbError {
    /// A failure a retry can clear: the server restarting or unreachable,
    /// a serialization conflict, a lock wait — not a bad statement.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(error, _)) => matches!(
                error.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            DbError::Postgres(error) => postgres::is_transient(error),
            _ => false,
        }
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// One row of a result.
pub trait Row {
    /// The value of column `index` (0-based).
    fn value(&self, index: usize) -> DbResult<Value<'_>>;
    fn columns(&self) -> usize;
}

/// Read a column as `T`.
pub fn get<T: FromValue>(row: &dyn Row, index: usize) -> DbResult<T> {
    T::from_value(row.value(index)?, index)
}

/// A column's value as a Rust type.
pub trait FromValue: Sized {
    fn from_value(value: Value<'_>, column: usize) -> DbResult<Self>;
}

fn kind(value: &Value<'_>) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Int(_) => "integer",
        Value::Real(_) => "real",
        Value::Text(_) => "text",
        Value::Blob(_) => "blob",
    }
}

impl FromValue for i64 {
    fn from_value(value: Value<'_>, column: usize) -> DbResult<i64> {
        match value {
            Value::Int(value) => Ok(value),
            other => Err(DbError::Type {
                column,
                expected: "integer",
                found: kind(&other),
            }),
        }
    }
}
impl FromValue for bool {
    fn from_value(value: Value<'_>, column: usize) -> DbResult<bool> {
        i64::from_value(value, column).map(|value| value != 0)
    }
}
impl FromValue for f64 {
    fn from_value(value: Value<'_>, column: usize) -> DbResult<f64> {
        match value {
            Value::Real(value) => Ok(value),
            Value::Int(value) => Ok(value as f64),
            other => Err(DbError::Type {
                column,
                expected: "real",
                found: kind(&other),
            }),
        }
    }
}
impl FromValue for String {
    fn from_value(value: Value<'_>, column: usize) -> DbResult<String> {
        match value {
            Value::Text(text) => Ok(text.to_string()),
            other => Err(DbError::Type {
                column,
                expected: "text",
                found: kind(&other),
            }),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: Value<'_>, column: usize) -> DbResult<Vec<u8>> {
        match value {
            Value::Blob(blob) => Ok(blob.to_vec()),
            Value::Text(text) => Ok(text.as_bytes().to_vec()),
            other => Err(DbError::Type {
                column,
                expected: "blob",
                found: kind(&other),
            }),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value<'_>, column: usize) -> DbResult<Option<T>> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other, column).map(Some),
        }
    }
}

/// A connection or transaction of either backend.
pub trait Db {
    fn dialect(&self) -> Dialect;
    /// Run a statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> DbResult<u64>;
    /// Run an `INSERT` into a table with an `id` key; the new row's id.
    fn insert_id(&mut self, sql: &str, params: &[Value<'_>]) -> DbResult<i64>;
    /// Run a query, calling `each` for every row.
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> DbResult<()>,
    ) -> DbResult<()>;
    /// Run several statements (no parameters): schema changes.
    fn batch(&mut self, sql: &str) -> DbResult<()>;
    /// SQLite's last inserted rowid (0 on PostgreSQL, which returns ids
    /// from the statement instead).
    fn last_insert_rowid(&self) -> i64 {
        0
    }
}

/// Helpers over [`Db`] that take closures returning values.
pub trait DbExt: Db {
    /// The first row, if any.
    fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnOnce(&dyn Row) -> DbResult<T>,
    ) -> DbResult<Option<T>> {
        let mut read = Some(read);
        let mut result = None;
        self.query_each(sql, params, &mut |row| {
            if let Some(read) = read.take() {
                result = Some(read(row)?);
            }
            Ok(())
        })?;
        Ok(result)
    }

    /// Every row.
    fn query_all<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        mut read: impl FnMut(&dyn Row) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        let mut rows = Vec::new();
        self.query_each(sql, params, &mut |row| {
            rows.push(read(row)?);
            Ok(())
        })?;
        Ok(rows)
    }
}

impl<D: Db + ?Sized> DbExt for D {}

/// Back to rusqlite's error, for SQLite code that calls shared code: a
/// SQLite failure as it was, anything else as a conversion failure.
impl From<DbError> for rusqlite::Error {
    fn from(error: DbError) -> rusqlite::Error {
        match error {
            DbError::Sqlite(error) => error,
            other => rusqlite::Error::ToSqlConversionFailure(Box::new(other)),
        }
    }
}
