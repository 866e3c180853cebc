//! The triage workflow of seeds/003: unprocessed → processed | ignored, and
//! back to unprocessed. Every transition records actor, time and reason,
//! is kept as history, and is sealed into the hash chain together with the
//! alarm's new state, in one transaction.
//!
//! What new matches do afterwards is decided in the store's write path: a
//! processed alarm takes no more matches (they open a new alarm); an ignored
//! one keeps counting them without being raised again (`alarms.count_on_ignored`).

use rusqlite::Connection;
use serde::Serialize;

use super::chain::LinkKind;
use super::store::StoreError;

/// An alarm's processing status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Unprocessed,
    Processed,
    Ignored,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Unprocessed, Status::Processed, Status::Ignored];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unprocessed => "unprocessed",
            Status::Processed => "processed",
            Status::Ignored => "ignored",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// One recorded transition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub id: i64,
    pub alarm_id: i64,
    pub from_status: String,
    pub to_status: String,
    pub actor: String,
    pub reason: String,
    pub at: String,
}

/// Longest actor name and reason accepted.
const MAX_ACTOR: usize = 100;
const MAX_REASON: usize = 2000;

/// Change an alarm's status inside `connection`'s current (immediate) transaction.
pub fn set_status(
    connection: &Connection,
    alarm_id: i64,
    to: Status,
    actor: &str,
    reason: &str,
    now: &str,
) -> Result<Transition, StoreError> {
    set_status_in(&mut crate::db::SqliteDb(connection), alarm_id, to, actor, reason, now)
}

/// `set_status` on either backend, inside the caller's transaction.
pub fn set_status_in<D: crate::db::Db + ?Sized>(
    db: &mut D,
    alarm_id: i64,
    to: Status,
    actor: &str,
    reason: &str,
    now: &str,
) -> Result<Transition, StoreError> {
    use crate::db::{DbExt, get};
    use crate::db_params;
    let actor = actor.trim();
    let reason = reason.trim();
    if actor.is_empty() || actor.chars().count() > MAX_ACTOR {
        return Err(StoreError::Workflow(format!(
            "the actor must be a name of 1 to {MAX_ACTOR} characters"
        )));
    }
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(StoreError::Workflow(format!(
            "a reason of 1 to {MAX_REASON} characters is required for every status change"
        )));
    }
    let found: Option<(String, String, String)> = db.query_opt(
        "SELECT status, rule_id, group_key FROM alarms WHERE id = ?1",
        db_params![alarm_id],
        |row| Ok((get(row, 0)?, get(row, 1)?, get(row, 2)?)),
    )?;
    let Some((from, rule_id, group_key)) = found else {
        return Err(StoreError::AlarmNotFound(alarm_id));
    };
    if from == to.as_str() {
        return Err(StoreError::Workflow(format!("alarm {alarm_id} is already {from}")));
    }
    if to == Status::Unprocessed {
        // One open alarm per rule and key: reopening must not make a second.
        let open: Option<i64> = db.query_opt(
            "SELECT id FROM alarms WHERE rule_id = ?1 AND group_key = ?2 AND status = 'unprocessed' AND id != ?3",
            db_params![rule_id.as_str(), group_key.as_str(), alarm_id],
            |row| get(row, 0),
        )?;
        if let Some(open) = open {
            return Err(StoreError::Workflow(format!(
                "alarm {open} is already open for the same rule and key; process or ignore it before reopening {alarm_id}"
            )));
        }
    }
    db.execute(
        "UPDATE alarms SET status = ?2, updated_at = ?3 WHERE id = ?1",
        db_params![alarm_id, to.as_str(), now],
    )?;
    let transition_id = db.insert_id(
        "INSERT INTO alarm_transitions (alarm_id, from_status, to_status, actor, reason, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        db_params![alarm_id, from.as_str(), to.as_str(), actor, reason, now],
    )?;
    for (kind, id) in [(LinkKind::Transition, transition_id), (LinkKind::Alarm, alarm_id)] {
        if let Some(hash) = crate::alarm::seal::row_hash(db, kind, id)? {
            crate::alarm::seal::append_hashed(db, kind, &[(id, hash)], now)?;
        }
    }
    Ok(Transition {
        id: transition_id,
        alarm_id,
        from_status: from,
        to_status: to.as_str().to_string(),
        actor: actor.to_string(),
        reason: reason.to_string(),
        at: now.to_string(),
    })
}

/// An alarm's transitions, oldest first.
pub fn history(connection: &Connection, alarm_id: i64) -> rusqlite::Result<Vec<Transition>> {
    Ok(history_in(&mut crate::db::SqliteDb(connection), alarm_id)?)
}

/// `history` on either backend.
pub fn history_in<D: crate::db::Db + ?Sized>(db: &mut D, alarm_id: i64) -> crate::db::DbResult<Vec<Transition>> {
    use crate::db::{DbExt, get};
    db.query_all(
        "SELECT id, alarm_id, from_status, to_status, actor, reason, at FROM alarm_transitions \
         WHERE alarm_id = ?1 ORDER BY id",
        crate::db_params![alarm_id],
        |row| {
            Ok(Transition {
                id: get(row, 0)?,
                alarm_id: get(row, 1)?,
                from_status: get(row, 2)?,
                to_status: get(row, 3)?,
                actor: get(row, 4)?,
                reason: get(row, 5)?,
                at: get(row, 6)?,
            })
        },
    )
}
