//! The PostgreSQL store: several daemons share it.
//!
//! A batch commits in one PostgreSQL transaction with the same rows the
//! SQLite store writes (`write::write_in`), sealed into one chain. Kafka
//! offsets are fenced: a daemon claims each partition it is assigned
//! (`claim_partition`, which bumps the partition's generation), and every
//! batch that moves a partition's offset checks, under a share lock on the
//! partition's row, that the generation is still the one it claimed. A
//! daemon that lost the partition in a rebalance (a zombie) fails that check
//! and commits nothing; the claim itself waits for a batch in flight, so the
//! new owner reads the offsets that batch committed.
//!
//! A lost connection is opened again on the next call, so a PostgreSQL
//! restart pauses the pipeline (the store stage retries the same batch)
//! instead of stopping it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::write::{WriteBatch, WriteOutcome, write_in};
use super::{Backend, Store, StoreError, StoreOptions};
use crate::db::{CHUNKS, DbError, DbExt, DbResult, PgConnection, chunk_for, for_chunks, get, placeholder_rows};
use crate::db_params;

/// What a PostgreSQL-backed store keeps besides its options.
pub(super) struct Shared {
    url: String,
    connection: Option<PgConnection>,
    /// The generation this store claimed, per partition; shared with the
    /// Kafka consumer's `PartitionClaims`, which claims on assignment.
    fences: Fences,
}

/// Generations claimed, per (group, topic, partition).
type Fences = Arc<Mutex<HashMap<(String, String, i32), i64>>>;

fn fences_of(fences: &Fences) -> std::sync::MutexGuard<'_, HashMap<(String, String, i32), i64>> {
    // A poisoned lock still holds valid generations.
    fences.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Raise a partition's generation to claim it; the new generation.
fn claim(connection: &mut PgConnection, group: &str, topic: &str, partition: i32, owner: &str) -> DbResult<i64> {
    let at = super::timestamp(chrono::Utc::now());
    let mut transaction = connection.transaction()?;
    let generation: i64 = transaction
        .query_opt(
            "INSERT INTO kafka_partition_owners (group_id, topic, partition, generation, owner, claimed_at) \
             VALUES (?1, ?2, ?3, 1, ?4, ?5) ON CONFLICT (group_id, topic, partition) DO UPDATE SET \
             generation = kafka_partition_owners.generation + 1, owner = excluded.owner, \
             claimed_at = excluded.claimed_at RETURNING generation",
            db_params![group, topic, partition, owner, at.as_str()],
            |row| get(row, 0),
        )?
        .ok_or_else(|| DbError::Unsupported("a partition claim returned no generation".into()))?;
    transaction.commit()?;
    Ok(generation)
}

fn read_offsets<D: crate::db::Db + ?Sized>(db: &mut D, group: &str) -> DbResult<Vec<crate::source::KafkaOffset>> {
    let shared_group: Arc<str> = Arc::from(group);
    db.query_all(
        "SELECT topic, partition, next_offset FROM kafka_offsets WHERE group_id = ?1 ORDER BY topic, partition",
        db_params![group],
        |row| {
            Ok(crate::source::KafkaOffset {
                group: shared_group.clone(),
                topic: Arc::from(get::<String>(row, 0)?.as_str()),
                partition: i32::try_from(get::<i64>(row, 1)?).unwrap_or(-1),
                next_offset: get(row, 2)?,
            })
        },
    )
}

/// This machine's host name ("" when it cannot be read): the `instance`
/// of metrics on a shared store, and part of a partition owner's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// What this process is called in `kafka_partition_owners.owner`.
fn owner_name() -> String {
    format!("{}:{}", host_name(), std::process::id())
}

/// The Kafka consumer's side of fencing: on each assignment it claims the
/// partitions (waiting for a batch of their earlier owner that is
/// committing), then reads where to start. Its own connection.
pub struct PartitionClaims {
    url: String,
    connection: Option<PgConnection>,
    fences: Fences,
    owner: String,
}

impl PartitionClaims {
    /// Claim `partitions` of `group`, then read the group's stored offsets.
    /// A server that is down is waited for (up to a minute): consuming
    /// without a claim would only produce batches the store refuses.
    pub fn claim_and_read(
        &mut self,
        group: &str,
        partitions: &[(Arc<str>, i32)],
    ) -> Result<Vec<crate::source::KafkaOffset>, String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match self.try_claim_and_read(group, partitions) {
                Ok(offsets) => return Ok(offsets),
                Err(error) if error.is_transient() && std::time::Instant::now() < deadline => {
                    self.connection = None;
                    tracing::warn!(%error, "claiming kafka partitions in the PostgreSQL store; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
                Err(error) => return Err(error.to_string()),
            }
        }
    }

    fn try_claim_and_read(
        &mut self,
        group: &str,
        partitions: &[(Arc<str>, i32)],
    ) -> DbResult<Vec<crate::source::KafkaOffset>> {
        if self.connection.as_ref().is_none_or(PgConnection::is_closed) {
            self.connection = Some(PgConnection::connect(&self.url)?);
        }
        let connection = self
            .connection
            .as_mut()
            .ok_or_else(|| DbError::Unsupported("no PostgreSQL connection".into()))?;
        for (topic, partition) in partitions {
            let generation = claim(connection, group, topic, *partition, &self.owner)?;
            fences_of(&self.fences).insert((group.to_string(), topic.to_string(), *partition), generation);
            tracing::info!(topic = %topic, partition, generation, "kafka partition claimed in the store");
        }
        read_offsets(connection, group)
    }
}

impl Shared {
    /// The connection, opened again if it was lost.
    pub(super) fn connection(&mut self) -> DbResult<&mut PgConnection> {
        if self.connection.as_ref().is_none_or(PgConnection::is_closed) {
            self.connection = None;
            self.connection = Some(PgConnection::connect(&self.url)?);
        }
        self.connection
            .as_mut()
            .ok_or_else(|| DbError::Unsupported("no PostgreSQL connection".into()))
    }

    /// Run `job`; a connection failure drops the connection so the next
    /// call opens a new one.
    pub(super) fn run<T>(&mut self, job: impl FnOnce(&mut PgConnection) -> DbResult<T>) -> DbResult<T> {
        let result = job(self.connection()?);
        if let Err(error) = &result
            && error.is_transient()
        {
            self.connection = None;
        }
        result
    }
}

/// `Store::transact` on PostgreSQL.
pub(super) fn transact<T, E: From<StoreError>>(
    shared: &mut Shared,
    lock: Option<i64>,
    job: impl FnOnce(&mut dyn crate::db::Db) -> Result<T, E>,
) -> Result<T, E> {
    let failed = |error: DbError| E::from(StoreError::from(error));
    let connection = shared.connection().map_err(failed)?;
    let mut transaction = connection.transaction().map_err(failed)?;
    if let Some(lock) = lock {
        transaction
            .query_opt("SELECT pg_advisory_xact_lock(?1)", db_params![lock], |_| Ok(()))
            .map_err(failed)?;
    }
    let value = job(&mut transaction)?;
    transaction.commit().map_err(failed)?;
    Ok(value)
}

/// Insert samples `(alarm id, seq, sample)`, several per statement; their
/// new ids, in the order given (matched by the `(alarm_id, seq)` key the
/// statement returns, whatever order PostgreSQL returns rows in).
pub(super) fn insert_samples<D: crate::db::Db + ?Sized>(
    db: &mut D,
    rows: &[(i64, i64, &super::Sample)],
) -> DbResult<Vec<i64>> {
    static STATEMENTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let statements = STATEMENTS.get_or_init(|| {
        CHUNKS
            .iter()
            .map(|size| {
                format!(
                    "INSERT INTO alarm_samples (alarm_id, seq, event_id, event_time, origin, event) VALUES {} \
                     RETURNING id, alarm_id, seq",
                    placeholder_rows(*size, 6)
                )
            })
            .collect()
    });
    let mut ids: HashMap<(i64, i64), i64> = HashMap::with_capacity(rows.len());
    for_chunks(
        rows,
        6,
        |(alarm_id, seq, sample), values| {
            values.extend_from_slice(db_params![
                *alarm_id,
                *seq,
                sample.event_id.as_str(),
                sample.event_time.as_str(),
                sample.origin.as_str(),
                sample.event.as_str()
            ]);
        },
        |at, values| {
            db.query_each(&statements[at], values, &mut |row| {
                ids.insert((get(row, 1)?, get(row, 2)?), get(row, 0)?);
                Ok(())
            })
        },
    )?;
    rows.iter()
        .map(|(alarm_id, seq, _)| {
            ids.get(&(*alarm_id, *seq))
                .copied()
                .ok_or_else(|| DbError::Unsupported(format!("sample {seq} of alarm {alarm_id} was not inserted")))
        })
        .collect()
}

/// Upsert call records `(alarm id, record)` several per statement, from
/// `single` (the one-row upsert returning the sealed columns); the id and
/// row hash of each row as written. A key met twice goes in separate
/// statements (one statement may not update a row twice).
pub(super) fn upsert_calls<'r, D: crate::db::Db + ?Sized>(
    db: &mut D,
    rows: &[(i64, &'r super::CallRecord)],
    single: &str,
) -> DbResult<Vec<(i64, String)>> {
    const ONE_ROW: &str = "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    static STATEMENTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let statements = STATEMENTS.get_or_init(|| {
        CHUNKS
            .iter()
            .map(|size| single.replacen(ONE_ROW, &format!("VALUES {}", placeholder_rows(*size, 10)), 1))
            .collect()
    });
    let mut written = Vec::with_capacity(rows.len());
    let mut rest = rows;
    while !rest.is_empty() {
        let (mut size, mut at) = chunk_for(rest.len());
        // Stop a chunk before a key it already holds.
        let key = |(alarm, call): &(i64, &'r super::CallRecord)| {
            (
                *alarm,
                call.source_ip.as_str(),
                call.call_method.as_str(),
                call.service.as_str(),
                call.action.as_str(),
            )
        };
        let mut seen = std::collections::HashSet::new();
        if let Some(repeat) = rest[..size].iter().position(|row| !seen.insert(key(row))) {
            (size, at) = chunk_for(repeat);
        }
        let (chunk, after) = rest.split_at(size);
        let mut values = Vec::with_capacity(10 * chunk.len());
        for (alarm_id, call) in chunk {
            values.extend_from_slice(&super::write::call_values(*alarm_id, call));
        }
        db.query_each(&statements[at], &values, &mut |row| {
            written.push(crate::alarm::seal::hash_returned(
                row,
                crate::alarm::chain::LinkKind::Call,
            )?);
            Ok(())
        })?;
        rest = after;
    }
    Ok(written)
}

/// Connect and migrate.
pub(super) fn open(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
    let shown = crate::db::postgres::redact(url);
    let connect = |source| StoreError::Connect {
        url: shown.clone(),
        source,
    };
    let mut connection = PgConnection::connect(url).map_err(connect)?;
    let (found, now) = crate::alarm::schema_pg::migrate(&mut connection).map_err(connect)?;
    if found < now {
        tracing::info!(url = %shown, from = found, to = now, "PostgreSQL store migrated");
    }
    Ok(Store {
        backend: Backend::Postgres(Box::new(std::cell::RefCell::new(Shared {
            url: url.to_string(),
            connection: Some(connection),
            fences: Fences::default(),
        }))),
        options,
        path: PathBuf::from(url),
        checkpointer: None,
    })
}

/// `Store::write` on PostgreSQL: fenced, one transaction.
pub(super) fn write(
    shared: &mut Shared,
    batch: &WriteBatch,
    now: &str,
    samples_per_alarm: i64,
    count_on_ignored: bool,
    observer: Option<&dyn crate::alarm::observer::AlarmObserver>,
) -> Result<WriteOutcome, StoreError> {
    let fences = fences_of(&shared.fences).clone();
    let result = shared.run(|connection| {
        let mut transaction = connection.transaction()?;
        // Every partition whose offset, state or buffered rows the batch
        // moves must still be this instance's.
        let mut partitions: Vec<(&str, &str, i32)> = batch
            .kafka_offsets
            .iter()
            .map(|offset| (&*offset.group, &*offset.topic, offset.partition))
            .chain(
                batch
                    .fenced_scopes
                    .iter()
                    .map(|scope| (&*scope.group, &*scope.topic, scope.partition)),
            )
            .collect();
        partitions.sort_unstable();
        partitions.dedup();
        for (group, topic, partition) in partitions {
            let key = (group.to_string(), topic.to_string(), partition);
            let claimed = fences.get(&key).copied();
            let current: Option<i64> = transaction.query_opt(
                "SELECT generation FROM kafka_partition_owners WHERE group_id = ?1 AND topic = ?2 \
                 AND partition = ?3 FOR SHARE",
                db_params![group, topic, partition],
                |row| get(row, 0),
            )?;
            if claimed.is_none() || current != claimed {
                return Err(DbError::Fenced(format!(
                    "partition {partition} of {topic} (group {group}) is owned by generation {} but this instance \
                     holds {}; it was reassigned, and this batch is not committed",
                    current.map_or("none".to_string(), |generation| generation.to_string()),
                    claimed.map_or("none".to_string(), |generation| generation.to_string()),
                )));
            }
        }
        let outcome = write_in(
            &mut transaction,
            batch,
            now,
            samples_per_alarm,
            count_on_ignored,
            observer,
        )?;
        crate::alarm::allowlist::write_hits(&mut transaction, &batch.allowlist_hits)?;
        crate::alarm::rollup::write_db(&mut transaction, &batch.activity)?;
        transaction.commit()?;
        Ok(outcome)
    });
    Ok(result?)
}

impl Store {
    /// Claim a Kafka partition for this store's writes: its generation goes
    /// up by one, which fences out any earlier owner. Returns the new
    /// generation. Waits for a batch of the earlier owner that is committing.
    pub fn claim_partition(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        owner: &str,
    ) -> Result<i64, StoreError> {
        let Backend::Postgres(shared) = &mut self.backend else {
            // One process owns a SQLite store: nothing to fence.
            return Ok(0);
        };
        let shared = shared.get_mut();
        let generation = shared.run(|connection| claim(connection, group, topic, partition, owner))?;
        fences_of(&shared.fences).insert((group.to_string(), topic.to_string(), partition), generation);
        Ok(generation)
    }

    /// The claims the Kafka consumer makes for this store (PostgreSQL only).
    pub fn partition_claims(&self) -> Option<PartitionClaims> {
        let Backend::Postgres(shared) = &self.backend else {
            return None;
        };
        let shared = shared.borrow();
        Some(PartitionClaims {
            url: shared.url.clone(),
            connection: None,
            fences: shared.fences.clone(),
            owner: owner_name(),
        })
    }

    /// The stored next offset of each partition of `group` (either backend).
    pub fn kafka_offsets(&self, group: &str) -> Result<Vec<crate::source::KafkaOffset>, StoreError> {
        self.with_db(|db| read_offsets(db, group))
    }

    /// Bring the schema up to date; returns (the version found, the version now).
    /// Opening already migrates: this reports it (`trailwarden store migrate`).
    pub fn schema_versions(&self) -> Result<(usize, usize), StoreError> {
        match &self.backend {
            Backend::Sqlite(connection) => {
                let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
                Ok((version.max(0) as usize, crate::alarm::schema::MIGRATIONS.len()))
            }
            Backend::Postgres(_) => {
                let version: i64 = self.with_db(|db| {
                    Ok(db
                        .query_opt("SELECT COALESCE(max(version), 0) FROM schema_migrations", &[], |row| {
                            get(row, 0)
                        })?
                        .unwrap_or(0))
                })?;
                Ok((version.max(0) as usize, crate::alarm::schema_pg::MIGRATIONS.len()))
            }
        }
    }
}
