//! The outbox tables: queueing (inside alarm transactions), rate limiting
//! and digests, picking due deliveries, recording results, listing and resending.
//!
//! A message moves `queued` → `admitted` (sent to every subscription) or
//! `folded` (over the topic's rate limit; later listed in a digest message).
//! A delivery moves `pending` → `delivered`, or `failed` when it keeps
//! failing past `notify.max_age` or the receiver refuses it for good;
//! `folded` when its message was folded. Resending puts it back to
//! `pending` with the same delivery id.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::config::{NoticeKind, NotifySettings, TopicSettings};
use crate::alarm::store::timestamp;

/// Queue a message for `topic` and one pending delivery per subscription.
/// Runs inside the caller's transaction. Returns the message id.
pub fn enqueue(
    connection: &Connection,
    topic: &TopicSettings,
    alarm_id: Option<i64>,
    kind: NoticeKind,
    detail: &serde_json::Value,
) -> rusqlite::Result<i64> {
    let now = Utc::now();
    // Digests and configuration changes are never rate limited nor folded:
    // they go out as they are.
    let immediate = matches!(kind, NoticeKind::Digest | NoticeKind::Policy | NoticeKind::Config);
    let state = if immediate { "admitted" } else { "queued" };
    let admitted_ms = immediate.then_some(now.timestamp_millis());
    connection
        .prepare_cached(
            "INSERT INTO notify_messages (topic, alarm_id, kind, detail, state, created_at, created_ms, admitted_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            topic.name,
            alarm_id,
            kind.as_str(),
            detail.to_string(),
            state,
            timestamp(now),
            now.timestamp_millis(),
            admitted_ms,
        ])?;
    let message_id = connection.last_insert_rowid();
    let mut insert = connection.prepare_cached(
        "INSERT INTO notify_deliveries (message_id, topic, subscription, channel, delivery_id, status, attempts, \
         next_attempt_ms, age_from_ms, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6, ?7)",
    )?;
    for subscription in &topic.subscriptions {
        insert.execute(params![
            message_id,
            topic.name,
            subscription.name,
            subscription.channel(),
            delivery_id(message_id, &topic.name, &subscription.name, now),
            now.timestamp_millis(),
            timestamp(now),
        ])?;
    }
    Ok(message_id)
}

/// A delivery id: unique, and stable across every retry of the delivery.
fn delivery_id(message_id: i64, topic: &str, subscription: &str, now: DateTime<Utc>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(message_id.to_le_bytes());
    hasher.update(topic.as_bytes());
    hasher.update([0]);
    hasher.update(subscription.as_bytes());
    hasher.update(now.timestamp_nanos_opt().unwrap_or_default().to_le_bytes());
    let digest = hasher.finalize();
    format!("tw-{}", hex::encode(&digest[..16]))
}

/// What one admission pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    pub admitted: u64,
    pub folded: u64,
    pub digests: u64,
}

/// Admit queued messages within their topic's rate limit, fold the rest, and
/// queue a digest for every topic whose folded messages are due (`flush`:
/// due now, as when the daemon stops). One transaction.
pub fn admit(connection: &mut Connection, settings: &NotifySettings, flush: bool) -> rusqlite::Result<Admission> {
    // Most rounds have nothing to admit or fold: answer from the partial
    // indexes without taking the write lock the engine needs.
    let work: bool = connection
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM notify_messages WHERE state = 'queued') \
             OR EXISTS (SELECT 1 FROM notify_messages WHERE state = 'folded' AND digest_id IS NULL)",
        )?
        .query_row([], |row| row.get(0))?;
    if !work {
        return Ok(Admission::default());
    }
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut admission = Admission::default();
    {
        let queued: Vec<(i64, String)> = transaction
            .prepare_cached("SELECT id, topic FROM notify_messages WHERE state = 'queued' ORDER BY id")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut in_window: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        let mut count_window = transaction.prepare_cached(
            "SELECT count(*) FROM notify_messages WHERE topic = ?1 AND state = 'admitted' AND kind NOT IN ('digest', 'policy', 'config') \
             AND admitted_ms > ?2",
        )?;
        let mut set_admitted = transaction
            .prepare_cached("UPDATE notify_messages SET state = 'admitted', admitted_ms = ?2 WHERE id = ?1")?;
        let mut set_folded = transaction.prepare_cached("UPDATE notify_messages SET state = 'folded' WHERE id = ?1")?;
        let mut fold_deliveries = transaction.prepare_cached(
            "UPDATE notify_deliveries SET status = 'folded' WHERE message_id = ?1 AND status = 'pending'",
        )?;
        for (id, topic_name) in queued {
            let limit = settings
                .topic(&topic_name)
                .map(|topic| (topic.rate_limit, topic.rate_window));
            let admit = match limit {
                Some((limit, window)) if limit > 0 => {
                    let count = match in_window.get(&topic_name) {
                        Some(count) => *count,
                        None => {
                            let since = now_ms - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
                            let count: i64 = count_window.query_row(params![topic_name, since], |row| row.get(0))?;
                            count as u64
                        }
                    };
                    let admit = count < u64::from(limit);
                    in_window.insert(topic_name.clone(), count + u64::from(admit));
                    admit
                }
                // No limit, or a topic no longer configured (its deliveries fail with that reason).
                _ => true,
            };
            if admit {
                set_admitted.execute(params![id, now_ms])?;
                admission.admitted += 1;
            } else {
                set_folded.execute([id])?;
                fold_deliveries.execute([id])?;
                admission.folded += 1;
            }
        }
        for topic in &settings.topics {
            admission.digests += queue_digest(&transaction, topic, now_ms, flush)?;
        }
    }
    transaction.commit()?;
    Ok(admission)
}

/// Queue a digest of `topic`'s folded messages if one is due.
fn queue_digest(connection: &Connection, topic: &TopicSettings, now_ms: i64, flush: bool) -> rusqlite::Result<u64> {
    let folded: Vec<(i64, Option<i64>, String, i64)> = connection
        .prepare_cached(
            "SELECT id, alarm_id, kind, created_ms FROM notify_messages \
             WHERE topic = ?1 AND state = 'folded' AND digest_id IS NULL ORDER BY id",
        )?
        .query_map([&topic.name], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let Some(first) = folded.first() else {
        return Ok(0);
    };
    let last_digest: Option<i64> = connection
        .prepare_cached("SELECT max(created_ms) FROM notify_messages WHERE topic = ?1 AND kind = 'digest'")?
        .query_row([&topic.name], |row| row.get(0))
        .optional()?
        .flatten();
    // A digest collects for a whole interval: from the first fold since the last digest.
    let since = last_digest.unwrap_or(i64::MIN).max(first.3);
    let interval = i64::try_from(topic.digest_interval.as_millis()).unwrap_or(i64::MAX);
    if !flush && now_ms - since < interval {
        return Ok(0);
    }
    let mut alarms: Vec<i64> = Vec::new();
    let mut kinds: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for (_, alarm, kind, _) in &folded {
        if let Some(alarm) = alarm
            && !alarms.contains(alarm)
        {
            alarms.push(*alarm);
        }
        *kinds.entry(kind.clone()).or_default() += 1;
    }
    let detail = serde_json::json!({
        "messages": folded.len(),
        "alarms": alarms,
        "kinds": kinds,
        "first_ms": first.3,
        "last_ms": folded.last().map(|message| message.3),
    });
    let digest = enqueue(connection, topic, None, NoticeKind::Digest, &detail)?;
    let mut mark = connection.prepare_cached("UPDATE notify_messages SET digest_id = ?2 WHERE id = ?1")?;
    for (id, ..) in &folded {
        mark.execute(params![id, digest])?;
    }
    Ok(1)
}

/// A delivery to attempt now.
#[derive(Clone, Debug)]
pub struct Due {
    pub id: i64,
    pub delivery_id: String,
    pub message_id: i64,
    pub topic: String,
    pub subscription: String,
    pub kind: NoticeKind,
    pub alarm_id: Option<i64>,
    pub detail: serde_json::Value,
    pub attempts: u32,
    pub age_from_ms: i64,
    pub created_at: String,
}

/// Pending deliveries of admitted messages whose time has come, in the
/// order they were queued. Each subscription gets its messages in that
/// order: a delivery waits while an older one to the same subscription
/// waits for its retry (after an outage, the backlog goes out oldest first,
/// not behind what arrived since).
pub fn due(connection: &Connection, limit: u32) -> rusqlite::Result<Vec<Due>> {
    let now_ms = Utc::now().timestamp_millis();
    connection
        .prepare_cached(
            "SELECT d.id, d.delivery_id, d.message_id, d.topic, d.subscription, m.kind, m.alarm_id, m.detail, \
             d.attempts, d.age_from_ms, m.created_at FROM notify_deliveries d \
             JOIN notify_messages m ON m.id = d.message_id \
             WHERE d.status = 'pending' AND d.next_attempt_ms <= ?1 AND m.state = 'admitted' \
             AND NOT EXISTS (SELECT 1 FROM notify_deliveries e WHERE e.status = 'pending' AND e.id < d.id \
             AND e.topic = d.topic AND e.subscription = d.subscription AND e.next_attempt_ms > ?1) \
             ORDER BY d.id LIMIT ?2",
        )?
        .query_map(params![now_ms, limit], |row| {
            let kind: String = row.get(5)?;
            let detail: String = row.get(7)?;
            Ok(Due {
                id: row.get(0)?,
                delivery_id: row.get(1)?,
                message_id: row.get(2)?,
                topic: row.get(3)?,
                subscription: row.get(4)?,
                kind: NoticeKind::parse(&kind).unwrap_or(NoticeKind::Opened),
                alarm_id: row.get(6)?,
                detail: serde_json::from_str(&detail).unwrap_or_default(),
                attempts: row.get::<_, i64>(8)?.max(0) as u32,
                age_from_ms: row.get(9)?,
                created_at: row.get(10)?,
            })
        })?
        .collect()
}

/// The result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        status: Option<u16>,
    },
    /// Failed; `permanent` when retrying cannot help (a 4xx, an SMTP 5xx).
    Failed {
        error: String,
        status: Option<u16>,
        permanent: bool,
    },
    /// Not attempted: an earlier delivery to the same subscription just failed.
    Deferred {
        until_ms: i64,
    },
}

/// What `record` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    pub delivered: u64,
    pub retried: u64,
    pub failed: u64,
}

/// The retry delay after `attempts` failures: exponential from
/// `backoff_initial`, capped at `backoff_max`, with "equal jitter" (half fixed,
/// half spread) derived from the delivery id so deliveries do not retry in step.
pub fn backoff_ms(settings: &NotifySettings, attempts: u32, delivery_id: &str) -> i64 {
    let initial = settings.backoff_initial.as_millis() as f64;
    let max = settings.backoff_max.as_millis() as f64;
    let delay = (initial * 2f64.powi(attempts.saturating_sub(1).min(30) as i32)).min(max);
    let mut hasher = Sha256::new();
    hasher.update(delivery_id.as_bytes());
    hasher.update(attempts.to_le_bytes());
    let digest = hasher.finalize();
    let spread = f64::from(u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])) / f64::from(u32::MAX);
    (delay / 2.0 + delay / 2.0 * spread).round() as i64
}

/// Record the results of a round of attempts, in one transaction.
pub fn record(
    connection: &mut Connection,
    settings: &NotifySettings,
    results: &[(Due, Outcome)],
) -> rusqlite::Result<Recorded> {
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let now_text = timestamp(now);
    let max_age = i64::try_from(settings.max_age.as_millis()).unwrap_or(i64::MAX);
    let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut recorded = Recorded::default();
    {
        let mut delivered = transaction.prepare_cached(
            "UPDATE notify_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = ?2, \
             last_attempt_at = ?2, last_status = ?3, last_error = NULL WHERE id = ?1 AND status = 'pending'",
        )?;
        let mut retry = transaction.prepare_cached(
            "UPDATE notify_deliveries SET attempts = attempts + 1, next_attempt_ms = ?2, last_attempt_at = ?3, \
             last_error = ?4, last_status = ?5 WHERE id = ?1 AND status = 'pending'",
        )?;
        let mut failed = transaction.prepare_cached(
            "UPDATE notify_deliveries SET status = 'failed', attempts = attempts + 1, last_attempt_at = ?2, \
             last_error = ?3, last_status = ?4 WHERE id = ?1 AND status = 'pending'",
        )?;
        let mut defer = transaction
            .prepare_cached("UPDATE notify_deliveries SET next_attempt_ms = ?2 WHERE id = ?1 AND status = 'pending'")?;
        for (due, outcome) in results {
            match outcome {
                Outcome::Delivered { status } => {
                    delivered.execute(params![due.id, now_text, status])?;
                    recorded.delivered += 1;
                }
                Outcome::Failed {
                    error,
                    status,
                    permanent,
                } => {
                    let attempts = due.attempts + 1;
                    let next = now_ms + backoff_ms(settings, attempts, &due.delivery_id);
                    if *permanent || next - due.age_from_ms > max_age {
                        let error = if *permanent {
                            error.clone()
                        } else {
                            format!("{error} (gave up after {attempts} attempts; notify.max_age reached)")
                        };
                        failed.execute(params![due.id, now_text, error, status])?;
                        recorded.failed += 1;
                    } else {
                        retry.execute(params![due.id, next, now_text, error, status])?;
                        recorded.retried += 1;
                    }
                }
                Outcome::Deferred { until_ms } => {
                    defer.execute(params![due.id, until_ms])?;
                }
            }
        }
    }
    transaction.commit()?;
    Ok(recorded)
}

/// A delivery as listed by `notify deliveries` and the API.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub delivery_id: String,
    pub topic: String,
    pub subscription: String,
    pub channel: String,
    pub kind: String,
    pub alarm_id: Option<i64>,
    pub status: String,
    pub attempts: u32,
    pub created_at: String,
    pub last_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// The digest message a folded delivery's alarm went into.
    pub digest_message: Option<i64>,
}

/// Filter for `list`.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    /// One delivery row.
    pub id: Option<i64>,
    pub status: Option<String>,
    pub topic: Option<String>,
    pub alarm_id: Option<i64>,
    pub limit: u32,
}

pub const STATUSES: [&str; 4] = ["pending", "delivered", "failed", "folded"];

/// Deliveries, newest first.
pub fn list(connection: &Connection, filter: &DeliveryFilter) -> rusqlite::Result<Vec<DeliveryRow>> {
    let mut sql = String::from(
        "SELECT d.id, d.delivery_id, d.topic, d.subscription, d.channel, m.kind, m.alarm_id, d.status, d.attempts, \
         d.created_at, d.last_attempt_at, d.delivered_at, d.next_attempt_ms, d.last_status, d.last_error, m.digest_id \
         FROM notify_deliveries d JOIN notify_messages m ON m.id = d.message_id WHERE 1 = 1",
    );
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(id) = filter.id {
        values.push(id.into());
        sql.push_str(&format!(" AND d.id = ?{}", values.len()));
    }
    if let Some(status) = &filter.status {
        values.push(status.clone().into());
        sql.push_str(&format!(" AND d.status = ?{}", values.len()));
    }
    if let Some(topic) = &filter.topic {
        values.push(topic.clone().into());
        sql.push_str(&format!(" AND d.topic = ?{}", values.len()));
    }
    if let Some(alarm) = filter.alarm_id {
        values.push(alarm.into());
        sql.push_str(&format!(" AND m.alarm_id = ?{}", values.len()));
    }
    values.push(i64::from(filter.limit.max(1)).into());
    sql.push_str(&format!(" ORDER BY d.id DESC LIMIT ?{}", values.len()));
    connection
        .prepare(&sql)?
        .query_map(rusqlite::params_from_iter(values), |row| {
            let status: String = row.get(7)?;
            let next: i64 = row.get(12)?;
            Ok(DeliveryRow {
                id: row.get(0)?,
                delivery_id: row.get(1)?,
                topic: row.get(2)?,
                subscription: row.get(3)?,
                channel: row.get(4)?,
                kind: row.get(5)?,
                alarm_id: row.get(6)?,
                attempts: row.get::<_, i64>(8)?.max(0) as u32,
                created_at: row.get(9)?,
                last_attempt_at: row.get(10)?,
                delivered_at: row.get(11)?,
                next_attempt_at: (status == "pending")
                    .then(|| DateTime::from_timestamp_millis(next).map(timestamp))
                    .flatten(),
                last_status: row.get::<_, Option<i64>>(13)?.and_then(|code| u16::try_from(code).ok()),
                last_error: row.get(14)?,
                digest_message: row.get(15)?,
                status,
            })
        })?
        .collect()
}

/// Put failed deliveries back in the queue (same delivery ids): the given
/// ids, or every failed one. Returns how many were requeued.
pub fn resend(connection: &mut Connection, ids: &[i64], all_failed: bool) -> rusqlite::Result<Vec<i64>> {
    let now_ms = Utc::now().timestamp_millis();
    let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut requeued = Vec::new();
    {
        let targets: Vec<i64> = if all_failed {
            transaction
                .prepare("SELECT id FROM notify_deliveries WHERE status = 'failed' ORDER BY id")?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?
        } else {
            ids.to_vec()
        };
        let mut update = transaction.prepare(
            "UPDATE notify_deliveries SET status = 'pending', next_attempt_ms = ?2, age_from_ms = ?2, attempts = 0 \
             WHERE id = ?1 AND status = 'failed'",
        )?;
        for id in targets {
            if update.execute(params![id, now_ms])? == 1 {
                requeued.push(id);
            }
        }
    }
    transaction.commit()?;
    Ok(requeued)
}

/// The status of one delivery (to explain why a resend did nothing).
pub fn status_of(connection: &Connection, id: i64) -> rusqlite::Result<Option<String>> {
    connection
        .query_row("SELECT status FROM notify_deliveries WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .optional()
}

/// Deliveries per status, for metrics and summaries.
pub fn counts(connection: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    connection
        .prepare_cached("SELECT status, count(*) FROM notify_deliveries GROUP BY status ORDER BY status")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect()
}
