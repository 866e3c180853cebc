//! Writing a batch: alarms opened or merged with their call records and
//! samples, dead letters, source progress, state and rollups, one transaction.
//!
//! `write_in` is written against [`Db`], so the SQLite store and the
//! PostgreSQL one write the same rows and seal them into the chain alike.

use chrono::Utc;
use rusqlite::types::ValueRef;

use super::state::{StateChanges, write_state};
use super::{AlarmUpdate, PendingRow, Store, StoreError, timestamp};
use crate::alarm::chain::{self, LinkKind};
use crate::alarm::observer::{AlarmFacts, AlarmObserver};
use crate::alarm::seal;
use crate::db::{Db, DbExt, DbResult, Dialect, SqliteDb, get};
use crate::db_params;
use crate::event::decode::DeadLetter;
use crate::event::origin::Position;
use crate::rules::Level;
use crate::source::{FileCheckpoint, KafkaOffset};

/// Everything one transaction writes.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub alarms: Vec<AlarmUpdate>,
    pub dead_letters: Vec<DeadLetter>,
    pub checkpoints: Vec<FileCheckpoint>,
    /// Next offsets of the Kafka partitions whose messages this batch holds.
    pub kafka_offsets: Vec<KafkaOffset>,
    /// Engine state changes, one entry per scope.
    pub state: Vec<StateChanges>,
    pub pending_insert: Vec<PendingRow>,
    /// Reorder-buffer rows released: (scope, seq).
    pub pending_delete: Vec<(std::sync::Arc<str>, i64)>,
    /// Partitions whose engine state or buffered rows this batch changes:
    /// on a shared store their claims are checked like those of the offsets.
    pub fenced_scopes: Vec<crate::source::PartitionScope>,
    /// Engine counters that must survive restarts (high-water event time …).
    pub meta: Vec<(&'static str, i64)>,
    /// Allowlist policy hits of this batch, one entry per policy.
    pub allowlist_hits: Vec<crate::alarm::allowlist::PolicyHit>,
    /// Hourly rollups, first-seen (key, IP) pairs and key-operation traces.
    pub activity: crate::alarm::rollup::ActivityBatch,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.alarms.is_empty()
            && self.dead_letters.is_empty()
            && self.checkpoints.is_empty()
            && self.kafka_offsets.is_empty()
            && self.state.iter().all(StateChanges::is_empty)
            && self.pending_insert.is_empty()
            && self.pending_delete.is_empty()
            && self.meta.is_empty()
            && self.allowlist_hits.is_empty()
            && self.activity.is_empty()
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub alarms_created: u64,
    /// Alarms created, by level (`Level::ALL` order).
    pub created_by_level: [u64; 4],
    pub alarms_updated: u64,
    /// Matches counted on an ignored alarm (not raised again).
    pub counted_on_ignored: u64,
    pub dead_letters: u64,
}

impl Store {
    /// Write a batch in one transaction.
    pub fn write(&mut self, batch: &WriteBatch) -> Result<WriteOutcome, StoreError> {
        let now = timestamp(Utc::now());
        let samples_per_alarm = i64::from(self.options.samples_per_alarm);
        let connection = match &mut self.backend {
            super::Backend::Sqlite(connection) => connection,
            super::Backend::Postgres(shared) => {
                return super::pg::write(
                    shared.get_mut(),
                    batch,
                    &now,
                    samples_per_alarm,
                    self.options.count_on_ignored,
                    self.options.notify.as_deref(),
                );
            }
        };
        // IMMEDIATE: the chain head is read and extended in the same write lock,
        // also when the CLI changes an alarm's status at the same time.
        let transaction = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::Write)?;
        let observer = self.options.notify.as_deref();
        let written = write_in(
            &mut SqliteDb(&transaction),
            batch,
            &now,
            samples_per_alarm,
            self.options.count_on_ignored,
            observer,
        )
        .and_then(|outcome| {
            crate::alarm::allowlist::write_hits(&mut SqliteDb(&transaction), &batch.allowlist_hits)?;
            crate::alarm::rollup::write(&transaction, &batch.activity)?;
            Ok(outcome)
        });
        let outcome = written.map_err(|error| StoreError::Write(error.into()))?;
        transaction.commit().map_err(StoreError::Write)?;
        Ok(outcome)
    }
}

/// The open alarm of a rule and group key (by the partial unique index).
const FIND_OPEN: &str = "SELECT id, sample_count, status, level, count FROM alarms WHERE rule_id = ?1 \
     AND group_key = ?2 AND status = 'unprocessed'";
/// The ignored alarms of a rule and group key (the newest is taken). Not
/// `ORDER BY id DESC LIMIT 1`: SQLite 3.54 marks the keys of that cached
/// statement as plan-changing, so every new alarm re-prepared it (about 100 000
/// instructions each, 4 % of a replay's CPU); there are few such rows.
const FIND_IGNORED: &str = "SELECT id, sample_count, status, level, count FROM alarms WHERE rule_id = ?1 \
     AND group_key = ?2 AND status = 'ignored'";
const INSERT_ALARM: &str = "INSERT INTO alarms (rule_id, rule_hash, level, title, status, group_key, provider, \
     account_id, account_name, account_identity, principal_kind, principal_id, principal_name, principal_arn, \
     access_key_id, access_key_temporary, first_seen, last_seen, count, sample_count, last_output, created_at, \
     updated_at, tags) VALUES (?1, ?2, ?3, ?4, 'unprocessed', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
     ?16, ?17, ?21, ?22, ?18, ?19, ?19, ?20)";
const UPDATE_ALARM: &str = "UPDATE alarms SET count = count + ?2, first_seen = min(first_seen, ?3), \
     last_seen = max(last_seen, ?4), last_output = ?5, level = ?6, rule_hash = ?7, title = ?8, updated_at = ?9, \
     sample_count = ?10 WHERE id = ?1";
const UPSERT_CALL: &str = "INSERT INTO alarm_calls (alarm_id, source_ip, ip_kind, call_method, service, action, \
     success_count, failure_count, first_call, last_call) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
     ON CONFLICT (alarm_id, source_ip, call_method, service, action) DO UPDATE SET \
     success_count = alarm_calls.success_count + excluded.success_count, \
     failure_count = alarm_calls.failure_count + excluded.failure_count, \
     first_call = min(alarm_calls.first_call, excluded.first_call), \
     last_call = max(alarm_calls.last_call, excluded.last_call)";
const INSERT_SAMPLE: &str =
    "INSERT INTO alarm_samples (alarm_id, seq, event_id, event_time, origin, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// The two-argument `min`/`max` of SQLite as PostgreSQL's `LEAST`/`GREATEST`
/// (for statements that use no aggregate `min`/`max`).
fn scalar_min_max(sql: &str) -> String {
    sql.replace("min(", "LEAST(").replace("max(", "GREATEST(")
}

/// PostgreSQL's forms of the statements whose SQLite text uses scalar
/// `min`/`max`; the call-record upsert also returns the row's sealed columns.
struct PostgresForms {
    update_alarm: String,
    upsert_call_returning: String,
}

fn postgres_forms() -> &'static PostgresForms {
    static FORMS: std::sync::OnceLock<PostgresForms> = std::sync::OnceLock::new();
    FORMS.get_or_init(|| PostgresForms {
        update_alarm: scalar_min_max(UPDATE_ALARM),
        upsert_call_returning: format!(
            "{} RETURNING {}",
            scalar_min_max(UPSERT_CALL),
            chain::sealed_columns(LinkKind::Call)
        ),
    })
}

pub(crate) fn write_in(
    db: &mut dyn Db,
    batch: &WriteBatch,
    now: &str,
    samples_per_alarm: i64,
    count_on_ignored: bool,
    observer: Option<&dyn AlarmObserver>,
) -> DbResult<WriteOutcome> {
    let mut outcome = WriteOutcome::default();
    let postgres = db.dialect() == Dialect::Postgres;
    // The alarm a match counts on: the open (unprocessed) one, else — when
    // configured — an ignored one (counted there, not raised again); a
    // processed alarm never takes new matches: they open a new alarm.
    // The open alarm first, by the partial unique index; an ignored one only
    // when there is none (most matches find an open alarm).
    //
    // Every row written here is sealed in this transaction, as it is once the
    // batch is written. A row inserted is hashed from the values bound
    // (`chain::hash_values`); a row the database updated (count, first and
    // last seen computed in SQL) is read back (in SQLite a `RETURNING` clause
    // costs more: an ephemeral table per statement), an alarm when sealed,
    // since its last write in the batch is its final state.
    // Alarms in first-touch order, with the hash of a row inserted here
    // (`None`: updated, read back when sealed).
    let mut touched: Vec<(i64, Option<String>)> = Vec::with_capacity(batch.alarms.len());
    // Call records and samples written here are sealed with the alarms; call
    // records by id (the last write of one wins), samples as inserted.
    let mut touched_calls: std::collections::BTreeMap<i64, String> = std::collections::BTreeMap::new();
    let mut new_samples: Vec<(i64, String)> = Vec::new();
    let mut sample_rows: Vec<(i64, i64, &super::Sample)> = Vec::new();
    let mut call_rows: Vec<(i64, &super::CallRecord)> = Vec::new();
    for update in &batch.alarms {
        let read = |row: &dyn crate::db::Row| -> DbResult<(i64, i64, String, String, i64)> {
            Ok((get(row, 0)?, get(row, 1)?, get(row, 2)?, get(row, 3)?, get(row, 4)?))
        };
        let key = db_params![update.rule_id.as_str(), update.group_key.as_str()];
        let mut existing = db.query_opt(FIND_OPEN, key, read)?;
        if existing.is_none() && count_on_ignored {
            existing = db
                .query_all(FIND_IGNORED, key, read)?
                .into_iter()
                .max_by_key(|(id, ..)| *id);
        }
        // The level: the rule's, or the highest `escalate:` mark the
        // alarm's total count has reached.
        let total = existing.as_ref().map_or(0, |(.., count)| (*count).max(0) as u64) + update.count;
        let level = crate::rules::escalate::level_at(&update.escalate, update.level, total);
        let facts = |alarm_id| AlarmFacts {
            alarm_id,
            rule_id: &update.rule_id,
            level,
            tags: &update.tags,
            account_id: update.identity.account_id.as_deref(),
            account_name: update.identity.account_name.as_deref(),
        };
        // The samples this batch adds: up to the alarm's limit.
        let samples_before = existing.as_ref().map_or(0, |(_, samples, ..)| *samples);
        let room = usize::try_from(samples_per_alarm.saturating_sub(samples_before)).unwrap_or(0);
        let new_sample_count = update.samples.len().min(room);
        let samples_after = samples_before + new_sample_count as i64;
        let (alarm_id, alarm_hash) = match existing {
            Some((id, _, status, old_level, count)) => {
                if status == "ignored" {
                    outcome.counted_on_ignored += 1;
                } else {
                    outcome.alarms_updated += 1;
                    if let Some(observer) = observer {
                        let old_count = count.max(0) as u64;
                        observer.updated(
                            db,
                            &facts(id),
                            Level::parse(&old_level),
                            old_count,
                            old_count + update.count,
                        )?;
                    }
                }
                db.execute(
                    if postgres {
                        &postgres_forms().update_alarm
                    } else {
                        UPDATE_ALARM
                    },
                    db_params![
                        id,
                        update.count as i64,
                        update.first_seen.as_str(),
                        update.last_seen.as_str(),
                        update.last_output.as_str(),
                        level.as_str(),
                        update.rule_hash.as_str(),
                        update.title.as_str(),
                        now,
                        samples_after,
                    ],
                )?;
                // Read back when sealed: the database computed the row.
                (id, None)
            }
            None => {
                // Written whole: the row an insert followed by the update
                // of an existing alarm would leave.
                let identity = &update.identity;
                let tags = update.tags.join(",");
                let id = db.insert_id(
                    INSERT_ALARM,
                    db_params![
                        update.rule_id.as_str(),
                        update.rule_hash.as_str(),
                        level.as_str(),
                        update.title.as_str(),
                        update.group_key.as_str(),
                        identity.provider.as_str(),
                        identity.account_id.as_deref(),
                        identity.account_name.as_deref(),
                        identity.account_identity.as_str(),
                        identity.principal_kind.as_str(),
                        identity.principal_id.as_deref(),
                        identity.principal_name.as_deref(),
                        identity.principal_arn.as_deref(),
                        identity.access_key_id.as_deref(),
                        identity.access_key_temporary,
                        update.first_seen.as_str(),
                        update.last_seen.as_str(),
                        update.last_output.as_str(),
                        now,
                        tags.as_str(),
                        update.count as i64,
                        samples_after,
                    ],
                )?;
                // The row as inserted, in `ALARM_SEALED` order: every
                // value is bound with the type its column keeps.
                fn text(value: &str) -> ValueRef<'_> {
                    ValueRef::Text(value.as_bytes())
                }
                fn optional(value: &Option<String>) -> ValueRef<'_> {
                    value.as_deref().map_or(ValueRef::Null, text)
                }
                let inserted = (
                    id,
                    Some(chain::hash_values(&[
                        ValueRef::Integer(id),
                        text(&update.rule_id),
                        text(&update.rule_hash),
                        text(level.as_str()),
                        text(&update.title),
                        text("unprocessed"),
                        text(&update.group_key),
                        text(&identity.provider),
                        optional(&identity.account_id),
                        optional(&identity.account_name),
                        text(&identity.account_identity),
                        text(&identity.principal_kind),
                        optional(&identity.principal_id),
                        optional(&identity.principal_name),
                        optional(&identity.principal_arn),
                        optional(&identity.access_key_id),
                        identity
                            .access_key_temporary
                            .map_or(ValueRef::Null, |temporary| ValueRef::Integer(i64::from(temporary))),
                        text(&update.first_seen),
                        text(&update.last_seen),
                        ValueRef::Integer(update.count as i64),
                        ValueRef::Integer(samples_after),
                        text(&update.last_output),
                        text(now),
                        text(now),
                    ])),
                );
                outcome.alarms_created += 1;
                if let Some(at) = Level::ALL.iter().position(|level| *level == update.level) {
                    outcome.created_by_level[at] += 1;
                }
                if let Some(observer) = observer {
                    observer.opened(db, &facts(inserted.0))?;
                }
                inserted
            }
        };
        if let Some(observer) = observer
            && !update.operations.is_empty()
        {
            let key = update.identity.access_key_id.as_deref().unwrap_or("");
            let outputs: Vec<String> = update
                .operations
                .iter()
                .map(|output| {
                    if key.is_empty() {
                        output.clone()
                    } else {
                        crate::mask::mask_key_in_text(output, key)
                    }
                })
                .collect();
            observer.operations(db, &facts(alarm_id), &outputs)?;
        }
        for call in &update.calls {
            if postgres {
                // Upserted together after the loop: one round trip per 64.
                call_rows.push((alarm_id, call));
                continue;
            }
            let params = &call_values(alarm_id, call);
            let (call_id, call_hash) = {
                let before = db.last_insert_rowid();
                db.execute(UPSERT_CALL, params)?;
                let id = db.last_insert_rowid();
                // Only an insert moves the last rowid: the row is then the
                // values bound (in `CALL_SEALED` order). Otherwise (an update,
                // or an insert that happened to get the rowid the last insert
                // into another table got) the row is read back.
                if id != before {
                    (
                        id,
                        chain::hash_values(&[
                            ValueRef::Integer(id),
                            ValueRef::Integer(alarm_id),
                            ValueRef::Text(call.source_ip.as_bytes()),
                            ValueRef::Text(call.ip_kind.as_bytes()),
                            ValueRef::Text(call.call_method.as_bytes()),
                            ValueRef::Text(call.service.as_bytes()),
                            ValueRef::Text(call.action.as_bytes()),
                            ValueRef::Integer(call.success_count as i64),
                            ValueRef::Integer(call.failure_count as i64),
                            ValueRef::Text(call.first_call.as_bytes()),
                            ValueRef::Text(call.last_call.as_bytes()),
                        ]),
                    )
                } else {
                    db.query_opt(
                        FIND_CALL.get_or_init(|| {
                            format!(
                                "SELECT {} FROM alarm_calls WHERE alarm_id = ?1 AND source_ip = ?2 \
                                 AND call_method = ?3 AND service = ?4 AND action = ?5",
                                chain::sealed_columns(LinkKind::Call)
                            )
                        }),
                        db_params![
                            alarm_id,
                            call.source_ip.as_str(),
                            call.call_method.as_str(),
                            call.service.as_str(),
                            call.action.as_str()
                        ],
                        |row| seal::hash_returned(row, LinkKind::Call),
                    )?
                    .ok_or_else(|| crate::db::DbError::Unsupported("a call record upserted is gone".into()))?
                }
            };
            touched_calls.insert(call_id, call_hash);
        }
        for (seq, sample) in (samples_before..).zip(update.samples.iter().take(new_sample_count)) {
            if postgres {
                // Inserted together after the loop: one round trip per 64.
                sample_rows.push((alarm_id, seq, sample));
                continue;
            }
            let id = db.insert_id(
                INSERT_SAMPLE,
                db_params![
                    alarm_id,
                    seq,
                    sample.event_id.as_str(),
                    sample.event_time.as_str(),
                    sample.origin.as_str(),
                    sample.event.as_str(),
                ],
            )?;
            new_samples.push((id, sample_hash(id, alarm_id, seq, sample)));
        }
        match touched.iter_mut().find(|(id, _)| *id == alarm_id) {
            Some(link) => link.1 = alarm_hash,
            None => touched.push((alarm_id, alarm_hash)),
        }
    }
    if !call_rows.is_empty() {
        for (id, hash) in super::pg::upsert_calls(db, &call_rows, &postgres_forms().upsert_call_returning)? {
            touched_calls.insert(id, hash);
        }
    }
    if !sample_rows.is_empty() {
        let ids = super::pg::insert_samples(db, &sample_rows)?;
        for ((alarm_id, seq, sample), id) in sample_rows.iter().zip(ids) {
            new_samples.push((id, sample_hash(id, *alarm_id, *seq, sample)));
        }
    }
    // Seal every alarm this batch created or changed, in this transaction.
    let mut alarm_links = Vec::with_capacity(touched.len());
    for (id, hash) in touched {
        let hash = match hash {
            Some(hash) => Some(hash),
            None => seal::row_hash(db, LinkKind::Alarm, id)?,
        };
        if let Some(hash) = hash {
            alarm_links.push((id, hash));
        }
    }
    seal::append_hashed(db, LinkKind::Alarm, &alarm_links, now)?;
    let touched_calls: Vec<(i64, String)> = touched_calls.into_iter().collect();
    seal::append_hashed(db, LinkKind::Call, &touched_calls, now)?;
    seal::append_hashed(db, LinkKind::Sample, &new_samples, now)?;
    for letter in &batch.dead_letters {
        let (mut line, mut offset, mut topic, mut partition, mut kafka_offset) = (None, None, None, None, None);
        match letter.origin.position {
            Position::Line(number) => line = Some(number as i64),
            Position::Byte(byte) => offset = Some(byte as i64),
            Position::Whole => {}
            Position::Message {
                partition: number,
                offset: message,
                ..
            } => {
                topic = Some(&*letter.origin.source);
                partition = Some(number);
                kafka_offset = Some(message);
            }
        }
        let origin = letter.origin.to_string();
        db.execute(
            "INSERT INTO dead_letters (received_at, source, line, byte_offset, record_index, origin, reason, excerpt, \
             topic, partition, kafka_offset) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            db_params![
                now,
                &*letter.origin.source,
                line,
                offset,
                letter.origin.index.map(i64::from),
                origin.as_str(),
                letter.reason.as_str(),
                letter.excerpt.as_str(),
                topic,
                partition,
                kafka_offset,
            ],
        )?;
        outcome.dead_letters += 1;
    }
    for checkpoint in &batch.checkpoints {
        let container = checkpoint.container.unwrap_or_default();
        db.execute(
            "INSERT INTO source_files (path, size, mtime_ms, \"offset\", line, completed, updated_at, \
             container_depth, container_line, container_index) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms, \
             \"offset\" = excluded.\"offset\", line = excluded.line, completed = excluded.completed, \
             updated_at = excluded.updated_at, container_depth = excluded.container_depth, \
             container_line = excluded.container_line, container_index = excluded.container_index",
            db_params![
                checkpoint.path.as_str(),
                checkpoint.size as i64,
                checkpoint.mtime_ms,
                checkpoint.offset as i64,
                checkpoint.line as i64,
                checkpoint.completed,
                now,
                i64::from(container.depth),
                container.doc_line as i64,
                i64::from(container.next_index),
            ],
        )?;
    }
    for position in &batch.kafka_offsets {
        db.execute(
            "INSERT INTO kafka_offsets (group_id, topic, partition, next_offset, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (group_id, topic, partition) DO UPDATE SET \
             next_offset = excluded.next_offset, updated_at = excluded.updated_at",
            db_params![
                &*position.group,
                &*position.topic,
                position.partition,
                position.next_offset,
                now,
            ],
        )?;
    }
    for changes in &batch.state {
        write_state(db, changes)?;
    }
    let postgres = db.dialect() == crate::db::Dialect::Postgres;
    for row in &batch.pending_insert {
        db.execute(
            if postgres {
                "INSERT INTO pending_events (scope, seq, provider, time_ms, time_source, origin, raw) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (scope, seq) DO UPDATE SET provider = excluded.provider, \
                 time_ms = excluded.time_ms, time_source = excluded.time_source, origin = excluded.origin, \
                 raw = excluded.raw"
            } else {
                "INSERT INTO pending_events (scope, seq, provider, time_ms, time_source, origin, raw) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (seq) DO UPDATE SET scope = excluded.scope, \
                 provider = excluded.provider, time_ms = excluded.time_ms, time_source = excluded.time_source, \
                 origin = excluded.origin, raw = excluded.raw"
            },
            db_params![
                &*row.scope,
                row.seq,
                row.provider.as_str(),
                row.time_ms,
                row.time_source.as_str(),
                row.origin.as_str(),
                row.raw.as_str()
            ],
        )?;
    }
    for (scope, seq) in &batch.pending_delete {
        db.execute(
            "DELETE FROM pending_events WHERE scope = ?1 AND seq = ?2",
            db_params![&**scope, *seq],
        )?;
    }
    for (name, value) in &batch.meta {
        // The engine's clocks only go forward; several daemons sharing a
        // store each write theirs, and a daemon starting takes the latest.
        db.execute(
            if postgres {
                "INSERT INTO engine_meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET \
                 value = GREATEST(engine_meta.value, excluded.value)"
            } else {
                "INSERT INTO engine_meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value"
            },
            db_params![*name, *value],
        )?;
    }
    Ok(outcome)
}

/// The parameters of the call-record upsert.
pub(super) fn call_values(alarm_id: i64, call: &super::CallRecord) -> [crate::db::Value<'_>; 10] {
    [
        alarm_id.into(),
        call.source_ip.as_str().into(),
        call.ip_kind.as_str().into(),
        call.call_method.as_str().into(),
        call.service.as_str().into(),
        call.action.as_str().into(),
        (call.success_count as i64).into(),
        (call.failure_count as i64).into(),
        call.first_call.as_str().into(),
        call.last_call.as_str().into(),
    ]
}

/// The hash of a sample row as inserted, in `SAMPLE_SEALED` order.
fn sample_hash(id: i64, alarm_id: i64, seq: i64, sample: &super::Sample) -> String {
    chain::hash_values(&[
        ValueRef::Integer(id),
        ValueRef::Integer(alarm_id),
        ValueRef::Integer(seq),
        ValueRef::Text(sample.event_id.as_bytes()),
        ValueRef::Text(sample.event_time.as_bytes()),
        ValueRef::Text(sample.origin.as_bytes()),
        ValueRef::Text(sample.event.as_bytes()),
    ])
}

/// The select of a call record's sealed columns by its key.
static FIND_CALL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::store::StoreOptions;
    use crate::alarm::store::fixtures::update;

    /// Every link a write appends holds the hash of its row as stored.
    fn assert_links_match_rows(store: &Store, after_seq: i64) -> i64 {
        let connection = store.connection().unwrap();
        let links: Vec<(i64, String, i64, String)> = connection
            .prepare("SELECT seq, kind, ref_id, row_hash FROM chain WHERE seq > ?1 ORDER BY seq")
            .unwrap()
            .query_map([after_seq], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!links.is_empty());
        let mut last = after_seq;
        for (seq, kind, ref_id, sealed) in links {
            let kind = match kind.as_str() {
                "alarm" => LinkKind::Alarm,
                "call" => LinkKind::Call,
                "sample" => LinkKind::Sample,
                other => panic!("unexpected link kind {other}"),
            };
            let current = chain::row_hash(connection, kind, ref_id).unwrap();
            assert_eq!(
                current.as_deref(),
                Some(sealed.as_str()),
                "link {seq} ({kind:?} {ref_id})"
            );
            last = seq;
        }
        last
    }

    #[test]
    fn links_seal_rows_as_written_with_samples_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            samples_per_alarm: 3,
            synchronous_full: false,
            ..StoreOptions::default()
        };
        let mut store = Store::open(&dir.path().join("store.db"), options).unwrap();
        let first = WriteBatch {
            alarms: vec![
                update("a", &["1.1.1.1", "2.2.2.2"], 2, "2026-03-02T00:00:00.000Z"),
                update("b", &["3.3.3.3"], 5, "2026-03-02T00:00:01.000Z"),
            ],
            ..WriteBatch::default()
        };
        let outcome = store.write(&first).unwrap();
        assert_eq!((outcome.alarms_created, outcome.alarms_updated), (2, 0));
        let seq = assert_links_match_rows(&store, 0);
        let second = WriteBatch {
            alarms: vec![
                update("a", &["2.2.2.2", "4.4.4.4"], 2, "2026-03-01T23:00:00.000Z"),
                update("b", &["3.3.3.3"], 1, "2026-03-02T01:00:00.000Z"),
                // The same alarm twice in one batch: sealed once, as it ends.
                update("a", &["1.1.1.1"], 1, "2026-03-02T02:00:00.000Z"),
            ],
            ..WriteBatch::default()
        };
        let outcome = store.write(&second).unwrap();
        assert_eq!((outcome.alarms_created, outcome.alarms_updated), (0, 3));
        assert_links_match_rows(&store, seq);
        let connection = store.connection().unwrap();
        let kinds: Vec<(String, i64)> = connection
            .prepare("SELECT kind, ref_id FROM chain WHERE seq > ?1 ORDER BY seq")
            .unwrap()
            .query_map([seq], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let kinds: Vec<(&str, i64)> = kinds.iter().map(|(kind, id)| (kind.as_str(), *id)).collect();
        // Alarms in first-touch order, calls by id, new samples as inserted.
        assert_eq!(
            kinds,
            vec![
                ("alarm", 1),
                ("alarm", 2),
                ("call", 1),
                ("call", 2),
                ("call", 3),
                ("call", 4),
                ("sample", 6)
            ]
        );
        let alarms: Vec<(i64, i64, String, String, String)> = connection
            .prepare("SELECT count, sample_count, first_seen, last_seen, last_output FROM alarms ORDER BY id")
            .unwrap()
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            alarms,
            vec![
                (
                    12,
                    3,
                    "2026-03-01T23:00:00.000Z".to_string(),
                    "2026-03-02T02:00:00.000Z".to_string(),
                    "output at 2026-03-02T02:00:00.000Z".to_string()
                ),
                (
                    8,
                    3,
                    "2026-03-02T00:00:01.000Z".to_string(),
                    "2026-03-02T01:00:00.000Z".to_string(),
                    "output at 2026-03-02T01:00:00.000Z".to_string()
                ),
            ]
        );
        let samples: Vec<(i64, i64)> = connection
            .prepare("SELECT alarm_id, seq FROM alarm_samples ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(samples, vec![(1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (1, 2)]);
        let verification = store.verify_chain(None).unwrap();
        assert!(verification.ok(), "{:?}", verification.problems);
    }
}
