//! [`Db`] over PostgreSQL (the `postgres` crate, TLS through rustls).
//!
//! Each statement is prepared once per connection and kept. Parameters are
//! written `?N` (SQLite's form) and rewritten to `$N`; a value binds to
//! whatever type the server inferred for its parameter, so `?1` may be a
//! `BIGINT` column in one statement and a `TEXT` one in another.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::mem::ManuallyDrop;

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Statement};

use super::{Db, DbError, DbResult, Dialect, Row, Value};

/// The error's message, with the server's detail and hint when it sent one.
pub fn describe(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("PostgreSQL: {} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(": ");
            text.push_str(detail);
        }
        if let Some(hint) = db.hint() {
            text.push_str(" (hint: ");
            text.push_str(hint);
            text.push(')');
        }
        return text;
    }
    let mut text = format!("PostgreSQL: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A connection lost or refused, the server shutting down, a serialization
/// conflict or deadlock: a retry (after reconnecting) can succeed.
pub fn is_transient(error: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => {
            let class = &code.code()[..2];
            // 08: connection exception; 40: transaction rollback
            // (serialization, deadlock); 57: operator intervention
            // (shutdown, crash recovery); 53: insufficient resources.
            matches!(class, "08" | "40" | "57" | "53") || *code == SqlState::LOCK_NOT_AVAILABLE
        }
        // No SQLSTATE: an I/O error or a closed socket.
        None => true,
    }
}

/// The URL with its password replaced, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or("");
            let masked = if credentials.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            let tail = redact_query_password(tail);
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{}", redact_query_password(tail)),
    }
}

fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// `?N` (and bare `?`) parameters as PostgreSQL's `$N`, outside quotes.
pub fn rewrite_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(open) => {
                out.push(c);
                if c == open {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                let mut digits = String::new();
                while let Some(digit) = chars.peek().filter(|digit| digit.is_ascii_digit()) {
                    digits.push(*digit);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    next += 1;
                    out.push_str(&next.to_string());
                } else {
                    out.push_str(&digits);
                }
            }
            None => out.push(c),
        }
    }
    out
}

impl ToSql for Value<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(value) => match *ty {
                Type::INT8 => value.to_sql(ty, out),
                Type::INT4 => i32::try_from(value)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(value)?.to_sql(ty, out),
                Type::BOOL => (value != 0).to_sql(ty, out),
                Type::FLOAT8 => (value as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => value.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound to a {ty} parameter").into()),
            },
            Value::Real(value) => match *ty {
                Type::FLOAT8 => value.to_sql(ty, out),
                Type::FLOAT4 => (value as f32).to_sql(ty, out),
                _ => Err(format!("a real cannot be bound to a {ty} parameter").into()),
            },
            Value::Text(text) => match *ty {
                Type::INT8 => text.parse::<i64>()?.to_sql(ty, out),
                _ => text.to_sql(ty, out),
            },
            Value::Blob(blob) => blob.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `NUMERIC` (what `sum` of a `BIGINT` gives) read as an integer: the
/// fraction, if any, is dropped.
struct Numeric(i64);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Numeric, Box<dyn StdError + Sync + Send>> {
        let word = |at: usize| -> Result<i16, Box<dyn StdError + Sync + Send>> {
            raw.get(at..at + 2)
                .map(|bytes| i16::from_be_bytes([bytes[0], bytes[1]]))
                .ok_or_else(|| "a truncated NUMERIC".into())
        };
        let digits = word(0)?.max(0) as usize;
        let weight = word(2)?;
        let sign = word(4)? as u16;
        if sign == 0xC000 {
            return Err("NUMERIC NaN".into());
        }
        let mut value: i64 = 0;
        for index in 0..digits {
            if index as i64 > i64::from(weight) {
                break;
            }
            value = value
                .checked_mul(10_000)
                .and_then(|value| value.checked_add(i64::from(word(8 + 2 * index).unwrap_or(0))))
                .ok_or("NUMERIC out of the integer range")?;
        }
        // Base-10000 digits the value has beyond those stored (trailing zeros).
        for _ in digits as i64..=i64::from(weight) {
            value = value.checked_mul(10_000).ok_or("NUMERIC out of the integer range")?;
        }
        Ok(Numeric(if sign == 0x4000 { -value } else { value }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

struct PgRow<'r>(&'r postgres::Row);

impl Row for PgRow<'_> {
    fn value(&self, index: usize) -> DbResult<Value<'_>> {
        let row = self.0;
        let ty = row
            .columns()
            .get(index)
            .map(|column| column.type_().clone())
            .ok_or(DbError::Type {
                column: index,
                expected: "a column",
                found: "none",
            })?;
        let value = match ty {
            Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(index)?
                .map(|value| Value::Int(i64::from(value))),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(index)?
                .map(|value| Value::Int(i64::from(value))),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(index)?
                .map(|value| Value::Int(i64::from(value))),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(Value::Real),
            Type::FLOAT4 => row
                .try_get::<_, Option<f32>>(index)?
                .map(|value| Value::Real(f64::from(value))),
            Type::NUMERIC => row
                .try_get::<_, Option<Numeric>>(index)?
                .map(|value| Value::Int(value.0)),
            Type::BYTEA => row.try_get::<_, Option<&[u8]>>(index)?.map(Value::Blob),
            _ => row.try_get::<_, Option<&str>>(index)?.map(Value::Text),
        };
        Ok(value.unwrap_or(Value::Null))
    }

    fn columns(&self) -> usize {
        self.0.len()
    }
}

/// Statements prepared on one connection, by their SQL as written.
#[derive(Default)]
struct Statements(HashMap<String, Statement>);

impl Statements {
    fn get<C: postgres::GenericClient>(&mut self, client: &mut C, sql: &str) -> DbResult<Statement> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(&rewrite_parameters(sql))?;
        self.0.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

fn parameters<'a>(params: &'a [Value<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|value| value as &(dyn ToSql + Sync)).collect()
}

fn execute<C: postgres::GenericClient>(
    client: &mut C,
    statements: &mut Statements,
    sql: &str,
    params: &[Value<'_>],
) -> DbResult<u64> {
    let statement = statements.get(client, sql)?;
    Ok(client.execute(&statement, &parameters(params))?)
}

fn insert_id<C: postgres::GenericClient>(
    client: &mut C,
    statements: &mut Statements,
    sql: &str,
    params: &[Value<'_>],
) -> DbResult<i64> {
    let returning = format!("{sql} RETURNING id");
    let statement = statements.get(client, &returning)?;
    let row = client.query_one(&statement, &parameters(params))?;
    Ok(row.try_get(0)?)
}

fn query_each<C: postgres::GenericClient>(
    client: &mut C,
    statements: &mut Statements,
    sql: &str,
    params: &[Value<'_>],
    each: &mut dyn FnMut(&dyn Row) -> DbResult<()>,
) -> DbResult<()> {
    let statement = statements.get(client, sql)?;
    for row in client.query(&statement, &parameters(params))? {
        each(&PgRow(&row))?;
    }
    Ok(())
}

/// A connection to PostgreSQL with its prepared statements.
pub struct PgConnection {
    /// Closed by `Drop`, off any tokio worker thread.
    client: ManuallyDrop<Client>,
    statements: Box<Statements>,
    /// The URL without its password.
    url: String,
}

impl PgConnection {
    /// Connect (TLS through rustls with the WebPKI roots when the URL's
    /// `sslmode` asks for it or the server offers it under `prefer`).
    pub fn connect(url: &str) -> DbResult<PgConnection> {
        let config: postgres::Config = url.parse()?;
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| DbError::Unsupported(format!("TLS for PostgreSQL: {error}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config);
        let client = config.connect(tls)?;
        Ok(PgConnection {
            client: ManuallyDrop::new(client),
            statements: Box::default(),
            url: redact(url),
        })
    }

    /// The URL, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Start a transaction; it rolls back unless committed.
    pub fn transaction(&mut self) -> DbResult<PgTransaction<'_>> {
        let transaction = self.client.transaction()?;
        Ok(PgTransaction {
            transaction,
            statements: &mut self.statements,
        })
    }

    /// Whether the connection is still open (a lost one is opened again).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

impl Drop for PgConnection {
    /// `postgres::Client` closes by blocking on a runtime of its own, which
    /// panics on a tokio worker thread: the API's and the notifier's stores
    /// are dropped on one when the daemon stops. There the client is closed
    /// on a short-lived thread instead.
    fn drop(&mut self) {
        // SAFETY: `client` is taken once, here, and not used after.
        let client = unsafe { ManuallyDrop::take(&mut self.client) };
        if tokio::runtime::Handle::try_current().is_err() {
            drop(client);
            return;
        }
        // Handed over once the thread runs: a thread that cannot start would
        // otherwise drop the client here, with the closure.
        let (hand_over, handed) = std::sync::mpsc::channel::<Client>();
        match std::thread::Builder::new()
            .name("tw-pg-close".into())
            .spawn(move || drop(handed.recv()))
        {
            Ok(closing) => {
                let _ = hand_over.send(client);
                let _ = closing.join();
            }
            Err(error) => {
                tracing::warn!(%error, "cannot start a thread to close a PostgreSQL connection; it closes at exit");
                std::mem::forget(client);
            }
        }
    }
}

/// The client a `Db` implementation runs its statements on: a connection's
/// own client, or a transaction.
trait AsClient {
    type Client: postgres::GenericClient;
    fn as_client(&mut self) -> &mut Self::Client;
}

impl AsClient for ManuallyDrop<Client> {
    type Client = Client;
    fn as_client(&mut self) -> &mut Client {
        self
    }
}

impl<'a> AsClient for postgres::Transaction<'a> {
    type Client = postgres::Transaction<'a>;
    fn as_client(&mut self) -> &mut Self::Client {
        self
    }
}

/// A transaction on a [`PgConnection`].
pub struct PgTransaction<'a> {
    transaction: postgres::Transaction<'a>,
    statements: &'a mut Statements,
}

impl PgTransaction<'_> {
    pub fn commit(self) -> DbResult<()> {
        Ok(self.transaction.commit()?)
    }
}

/// `Db` for a connection and a transaction alike: `$client` is the field
/// holding the `postgres` client or transaction.
macro_rules! postgres_db {
    ($type:ty, $client:ident) => {
        impl Db for $type {
            fn dialect(&self) -> Dialect {
                Dialect::Postgres
            }

            fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> DbResult<u64> {
                execute(self.$client.as_client(), &mut *self.statements, sql, params)
            }

            fn insert_id(&mut self, sql: &str, params: &[Value<'_>]) -> DbResult<i64> {
                insert_id(self.$client.as_client(), &mut *self.statements, sql, params)
            }

            fn query_each(
                &mut self,
                sql: &str,
                params: &[Value<'_>],
                each: &mut dyn FnMut(&dyn Row) -> DbResult<()>,
            ) -> DbResult<()> {
                query_each(self.$client.as_client(), &mut *self.statements, sql, params, each)
            }

            fn batch(&mut self, sql: &str) -> DbResult<()> {
                Ok(self.$client.as_client().batch_execute(sql)?)
            }
        }
    };
}

postgres_db!(PgConnection, client);
postgres_db!(PgTransaction<'_>, transaction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_rewritten_outside_quotes_only() {
        assert_eq!(
            rewrite_parameters("SELECT a FROM t WHERE b = ?2 AND c = '?' AND d = ?1 AND e = ?"),
            "SELECT a FROM t WHERE b = $2 AND c = '?' AND d = $1 AND e = $1"
        );
    }

    #[test]
    fn passwords_are_redacted_in_the_authority_and_the_query() {
        assert_eq!(
            redact("postgres://tw:secret@db.example:5432/trailwarden?sslmode=require"),
            "postgres://tw:***@db.example:5432/trailwarden?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://db.example/tw?user=tw&password=secret"),
            "postgresql://db.example/tw?user=tw&password=***"
        );
        assert_eq!(redact("postgres://tw@db.example/tw"), "postgres://tw@db.example/tw");
    }

    #[test]
    fn numeric_integers_decode_with_their_sign_and_trailing_groups() {
        // 1 2345 0000 (weight 2, two stored digits), negative.
        let raw = [0, 2, 0, 2, 0x40, 0, 0, 0, 0, 1, 0x09, 0x29];
        assert_eq!(Numeric::from_sql(&Type::NUMERIC, &raw).unwrap().0, -1_2345_0000);
        let zero = [0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Numeric::from_sql(&Type::NUMERIC, &zero).unwrap().0, 0);
    }
}
