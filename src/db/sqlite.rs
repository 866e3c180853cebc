//! [`Db`] over a rusqlite connection or transaction: statements come from the
//! connection's prepared-statement cache.

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::{Db, DbError, DbResult, Dialect, Row, Value};

/// A SQLite connection (a `rusqlite::Transaction` derefs to one).
pub struct SqliteDb<'a>(pub &'a Connection);

fn bind<'p>(values: &'p [Value<'p>]) -> impl rusqlite::Params + 'p {
    rusqlite::params_from_iter(
        values
            .iter()
            .map(|value| rusqlite::types::ToSqlOutput::Borrowed(value.as_sqlite())),
    )
}

struct SqliteRow<'r, 's>(&'r rusqlite::Row<'s>, usize);

impl Row for SqliteRow<'_, '_> {
    fn value(&self, index: usize) -> DbResult<Value<'_>> {
        Ok(match self.0.get_ref(index)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(value) => Value::Int(value),
            ValueRef::Real(value) => Value::Real(value),
            ValueRef::Text(text) => Value::Text(
                std::str::from_utf8(text).map_err(|error| DbError::Sqlite(rusqlite::Error::Utf8Error(index, error)))?,
            ),
            ValueRef::Blob(blob) => Value::Blob(blob),
        })
    }

    fn columns(&self) -> usize {
        self.1
    }
}

impl Db for SqliteDb<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> DbResult<u64> {
        Ok(self.0.prepare_cached(sql)?.execute(bind(params))? as u64)
    }

    fn insert_id(&mut self, sql: &str, params: &[Value<'_>]) -> DbResult<i64> {
        self.0.prepare_cached(sql)?.execute(bind(params))?;
        Ok(self.0.last_insert_rowid())
    }

    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> DbResult<()>,
    ) -> DbResult<()> {
        let mut statement = self.0.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(bind(params))?;
        while let Some(row) = rows.next()? {
            each(&SqliteRow(row, columns))?;
        }
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> DbResult<()> {
        Ok(self.0.execute_batch(sql)?)
    }

    fn last_insert_rowid(&self) -> i64 {
        self.0.last_insert_rowid()
    }
}
