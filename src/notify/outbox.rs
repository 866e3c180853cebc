//! The outbox tables: queueing (inside alarm transactions), rate limiting
//! and digests, picking due deliveries, recording results, listing and resending.
//!
//! A message moves `queued` → `admitted` (sent to every subscription) or
//! `folded` (over the topic's rate limit; later listed in a digest message).
//! A delivery moves `pending` → `delivered`, or `failed` when it keeps
//! failing past `notify.max_age` or the receiver refuses it for good;
//! `folded` when its message was folded. Resending puts it back to
//! `pending` with the same delivery id.
//!
//! Every function runs on either store ([`Db`]) inside the caller's
//! transaction. On a PostgreSQL store several daemons share the outbox: each
//! round's admission and claim run under one advisory lock
//! ([`OUTBOX_LOCK`]), and `due` claims what it returns (`FOR UPDATE SKIP
//! LOCKED`, then a lease on `next_attempt_ms`), so each delivery is
//! attempted by one daemon at a time, and each subscription's deliveries
//! still go out in order across the cluster.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::config::{NoticeKind, NotifySettings, TopicSettings};
use crate::alarm::store::timestamp;
use crate::db::{Db, DbExt, DbResult, Dialect, Value, get};
use crate::db_params;

/// The advisory lock key the outbox's rounds hold on PostgreSQL ("tw-notif" in ASCII).
pub const OUTBOX_LOCK: i64 = 0x7477_2d6e_6f74_6966;

/// Queue a message for `topic` and one pending delivery per subscription.
/// Runs inside the caller's transaction. Returns the message id.
pub fn enqueue(
    db: &mut dyn Db,
    topic: &TopicSettings,
    alarm_id: Option<i64>,
    kind: NoticeKind,
    detail: &serde_json::Value,
) -> DbResult<i64> {
    let now = Utc::now();
    // Digests and configuration changes are never rate limited nor folded:
    // they go out as they are.
    let immediate = matches!(kind, NoticeKind::Digest | NoticeKind::Policy | NoticeKind::Config);
    let state = if immediate { "admitted" } else { "queued" };
    let admitted_ms = immediate.then_some(now.timestamp_millis());
    let created_at = timestamp(now);
    let detail = detail.to_string();
    let message_id = db.insert_id(
        "INSERT INTO notify_messages (topic, alarm_id, kind, detail, state, created_at, created_ms, admitted_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        db_params![
            &topic.name,
            alarm_id,
            kind.as_str(),
            &detail,
            state,
            &created_at,
            now.timestamp_millis(),
            admitted_ms,
        ],
    )?;
    for subscription in &topic.subscriptions {
        let delivery = delivery_id(message_id, &topic.name, &subscription.name, now);
        db.execute(
            "INSERT INTO notify_deliveries (message_id, topic, subscription, channel, delivery_id, status, attempts, \
             next_attempt_ms, age_from_ms, created_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6, ?7)",
            db_params![
                message_id,
                &topic.name,
                &subscription.name,
                subscription.channel(),
                &delivery,
                now.timestamp_millis(),
                &created_at,
            ],
        )?;
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

/// Whether `admit` has anything to do: answered from the partial indexes,
/// so most rounds need not take the write lock the engine needs.
pub fn admission_due(db: &mut dyn Db) -> DbResult<bool> {
    let work: Option<i64> = db.query_opt(
        "SELECT 1 FROM notify_messages WHERE state = 'queued' \
         UNION ALL SELECT 1 FROM notify_messages WHERE state = 'folded' AND digest_id IS NULL LIMIT 1",
        &[],
        |row| get(row, 0),
    )?;
    Ok(work.is_some())
}

/// Admit queued messages within their topic's rate limit, fold the rest, and
/// queue a digest for every topic whose folded messages are due (`flush`:
/// due now, as when the daemon stops). Inside the caller's transaction.
pub fn admit(db: &mut dyn Db, settings: &NotifySettings, flush: bool) -> DbResult<Admission> {
    let now_ms = Utc::now().timestamp_millis();
    let mut admission = Admission::default();
    let queued: Vec<(i64, String)> = db.query_all(
        "SELECT id, topic FROM notify_messages WHERE state = 'queued' ORDER BY id",
        &[],
        |row| Ok((get(row, 0)?, get(row, 1)?)),
    )?;
    let mut in_window: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
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
                        let count: Option<i64> = db.query_opt(
                            "SELECT count(*) FROM notify_messages WHERE topic = ?1 AND state = 'admitted' \
                             AND kind NOT IN ('digest', 'policy', 'config') AND admitted_ms > ?2",
                            db_params![&topic_name, since],
                            |row| get(row, 0),
                        )?;
                        count.unwrap_or(0).max(0) as u64
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
            db.execute(
                "UPDATE notify_messages SET state = 'admitted', admitted_ms = ?2 WHERE id = ?1",
                db_params![id, now_ms],
            )?;
            admission.admitted += 1;
        } else {
            db.execute(
                "UPDATE notify_messages SET state = 'folded' WHERE id = ?1",
                db_params![id],
            )?;
            db.execute(
                "UPDATE notify_deliveries SET status = 'folded' WHERE message_id = ?1 AND status = 'pending'",
                db_params![id],
            )?;
            admission.folded += 1;
        }
    }
    for topic in &settings.topics {
        admission.digests += queue_digest(db, topic, now_ms, flush)?;
    }
    Ok(admission)
}

/// Queue a digest of `topic`'s folded messages if one is due.
fn queue_digest(db: &mut dyn Db, topic: &TopicSettings, now_ms: i64, flush: bool) -> DbResult<u64> {
    let folded: Vec<(i64, Option<i64>, String, i64)> = db.query_all(
        "SELECT id, alarm_id, kind, created_ms FROM notify_messages \
         WHERE topic = ?1 AND state = 'folded' AND digest_id IS NULL ORDER BY id",
        db_params![&topic.name],
        |row| Ok((get(row, 0)?, get(row, 1)?, get(row, 2)?, get(row, 3)?)),
    )?;
    let Some(first) = folded.first() else {
        return Ok(0);
    };
    let last_digest: Option<i64> = db
        .query_opt(
            "SELECT max(created_ms) FROM notify_messages WHERE topic = ?1 AND kind = 'digest'",
            db_params![&topic.name],
            |row| get::<Option<i64>>(row, 0),
        )?
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
    let digest = enqueue(db, topic, None, NoticeKind::Digest, &detail)?;
    for (id, ..) in &folded {
        db.execute(
            "UPDATE notify_messages SET digest_id = ?2 WHERE id = ?1",
            db_params![*id, digest],
        )?;
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
///
/// On PostgreSQL the deliveries returned are claimed: locked (skipping rows
/// another daemon holds) and leased for `lease_ms` (`notify.claim_lease`:
/// a daemon that dies while sending leaves them to another after it), which also
/// holds back younger deliveries to the same subscription on every daemon
/// until the result is recorded. Run it under [`OUTBOX_LOCK`].
pub fn due(db: &mut dyn Db, limit: u32, lease_ms: i64) -> DbResult<Vec<Due>> {
    let now_ms = Utc::now().timestamp_millis();
    let postgres = db.dialect() == Dialect::Postgres;
    const SELECT: &str = "SELECT d.id, d.delivery_id, d.message_id, d.topic, d.subscription, m.kind, m.alarm_id, \
         m.detail, d.attempts, d.age_from_ms, m.created_at FROM notify_deliveries d \
         JOIN notify_messages m ON m.id = d.message_id \
         WHERE d.status = 'pending' AND d.next_attempt_ms <= ?1 AND m.state = 'admitted' \
         AND NOT EXISTS (SELECT 1 FROM notify_deliveries e WHERE e.status = 'pending' AND e.id < d.id \
         AND e.topic = d.topic AND e.subscription = d.subscription AND e.next_attempt_ms > ?1) \
         ORDER BY d.id LIMIT ?2";
    static CLAIMING: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = if postgres {
        CLAIMING.get_or_init(|| format!("{SELECT} FOR UPDATE OF d SKIP LOCKED"))
    } else {
        SELECT
    };
    let due: Vec<Due> = db.query_all(sql, db_params![now_ms, limit], |row| {
        let kind: String = get(row, 5)?;
        let detail: String = get(row, 7)?;
        Ok(Due {
            id: get(row, 0)?,
            delivery_id: get(row, 1)?,
            message_id: get(row, 2)?,
            topic: get(row, 3)?,
            subscription: get(row, 4)?,
            kind: NoticeKind::parse(&kind).unwrap_or(NoticeKind::Opened),
            alarm_id: get(row, 6)?,
            detail: serde_json::from_str(&detail).unwrap_or_default(),
            attempts: get::<i64>(row, 8)?.max(0) as u32,
            age_from_ms: get(row, 9)?,
            created_at: get(row, 10)?,
        })
    })?;
    if postgres {
        for claimed in &due {
            db.execute(
                "UPDATE notify_deliveries SET next_attempt_ms = ?2 WHERE id = ?1",
                db_params![claimed.id, now_ms + lease_ms],
            )?;
        }
    }
    Ok(due)
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

/// Record the results of a round of attempts, inside the caller's transaction.
pub fn record(db: &mut dyn Db, settings: &NotifySettings, results: &[(Due, Outcome)]) -> DbResult<Recorded> {
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let now_text = timestamp(now);
    let max_age = i64::try_from(settings.max_age.as_millis()).unwrap_or(i64::MAX);
    let mut recorded = Recorded::default();
    for (due, outcome) in results {
        match outcome {
            Outcome::Delivered { status } => {
                db.execute(
                    "UPDATE notify_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = ?2, \
                     last_attempt_at = ?2, last_status = ?3, last_error = NULL WHERE id = ?1 AND status = 'pending'",
                    db_params![due.id, &now_text, status.map(i64::from)],
                )?;
                recorded.delivered += 1;
            }
            Outcome::Failed {
                error,
                status,
                permanent,
            } => {
                let attempts = due.attempts + 1;
                let next = now_ms + backoff_ms(settings, attempts, &due.delivery_id);
                let status = status.map(i64::from);
                if *permanent || next - due.age_from_ms > max_age {
                    let error = if *permanent {
                        error.clone()
                    } else {
                        format!("{error} (gave up after {attempts} attempts; notify.max_age reached)")
                    };
                    db.execute(
                        "UPDATE notify_deliveries SET status = 'failed', attempts = attempts + 1, last_attempt_at = ?2, \
                         last_error = ?3, last_status = ?4 WHERE id = ?1 AND status = 'pending'",
                        db_params![due.id, &now_text, &error, status],
                    )?;
                    recorded.failed += 1;
                } else {
                    db.execute(
                        "UPDATE notify_deliveries SET attempts = attempts + 1, next_attempt_ms = ?2, last_attempt_at = ?3, \
                         last_error = ?4, last_status = ?5 WHERE id = ?1 AND status = 'pending'",
                        db_params![due.id, next, &now_text, error, status],
                    )?;
                    recorded.retried += 1;
                }
            }
            Outcome::Deferred { until_ms } => {
                db.execute(
                    "UPDATE notify_deliveries SET next_attempt_ms = ?2 WHERE id = ?1 AND status = 'pending'",
                    db_params![due.id, *until_ms],
                )?;
            }
        }
    }
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
pub fn list(db: &mut dyn Db, filter: &DeliveryFilter) -> DbResult<Vec<DeliveryRow>> {
    let mut sql = String::from(
        "SELECT d.id, d.delivery_id, d.topic, d.subscription, d.channel, m.kind, m.alarm_id, d.status, d.attempts, \
         d.created_at, d.last_attempt_at, d.delivered_at, d.next_attempt_ms, d.last_status, d.last_error, m.digest_id \
         FROM notify_deliveries d JOIN notify_messages m ON m.id = d.message_id WHERE 1 = 1",
    );
    let mut values: Vec<Value<'_>> = Vec::new();
    if let Some(id) = filter.id {
        values.push(id.into());
        sql.push_str(&format!(" AND d.id = ?{}", values.len()));
    }
    if let Some(status) = &filter.status {
        values.push(status.into());
        sql.push_str(&format!(" AND d.status = ?{}", values.len()));
    }
    if let Some(topic) = &filter.topic {
        values.push(topic.into());
        sql.push_str(&format!(" AND d.topic = ?{}", values.len()));
    }
    if let Some(alarm) = filter.alarm_id {
        values.push(alarm.into());
        sql.push_str(&format!(" AND m.alarm_id = ?{}", values.len()));
    }
    values.push(filter.limit.max(1).into());
    sql.push_str(&format!(" ORDER BY d.id DESC LIMIT ?{}", values.len()));
    db.query_all(&sql, &values, |row| {
        let status: String = get(row, 7)?;
        let next: i64 = get(row, 12)?;
        Ok(DeliveryRow {
            id: get(row, 0)?,
            delivery_id: get(row, 1)?,
            topic: get(row, 2)?,
            subscription: get(row, 3)?,
            channel: get(row, 4)?,
            kind: get(row, 5)?,
            alarm_id: get(row, 6)?,
            attempts: get::<i64>(row, 8)?.max(0) as u32,
            created_at: get(row, 9)?,
            last_attempt_at: get(row, 10)?,
            delivered_at: get(row, 11)?,
            next_attempt_at: (status == "pending")
                .then(|| DateTime::from_timestamp_millis(next).map(timestamp))
                .flatten(),
            last_status: get::<Option<i64>>(row, 13)?.and_then(|code| u16::try_from(code).ok()),
            last_error: get(row, 14)?,
            digest_message: get(row, 15)?,
            status,
        })
    })
}

/// Put failed deliveries back in the queue (same delivery ids): the given
/// ids, or every failed one, inside the caller's transaction. Returns the
/// ids requeued.
pub fn resend(db: &mut dyn Db, ids: &[i64], all_failed: bool) -> DbResult<Vec<i64>> {
    let now_ms = Utc::now().timestamp_millis();
    let targets: Vec<i64> = if all_failed {
        db.query_all(
            "SELECT id FROM notify_deliveries WHERE status = 'failed' ORDER BY id",
            &[],
            |row| get(row, 0),
        )?
    } else {
        ids.to_vec()
    };
    let mut requeued = Vec::new();
    for id in targets {
        let changed = db.execute(
            "UPDATE notify_deliveries SET status = 'pending', next_attempt_ms = ?2, age_from_ms = ?2, attempts = 0 \
             WHERE id = ?1 AND status = 'failed'",
            db_params![id, now_ms],
        )?;
        if changed == 1 {
            requeued.push(id);
        }
    }
    Ok(requeued)
}

/// The status of one delivery (to explain why a resend did nothing).
pub fn status_of(db: &mut dyn Db, id: i64) -> DbResult<Option<String>> {
    db.query_opt(
        "SELECT status FROM notify_deliveries WHERE id = ?1",
        db_params![id],
        |row| get(row, 0),
    )
}

/// Deliveries per status, for metrics and summaries.
pub fn counts(db: &mut dyn Db) -> DbResult<Vec<(String, i64)>> {
    db.query_all(
        "SELECT status, count(*) FROM notify_deliveries GROUP BY status ORDER BY status",
        &[],
        |row| Ok((get(row, 0)?, get(row, 1)?)),
    )
}
