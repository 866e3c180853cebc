//! What the store tells the rest of the system about alarm changes, inside
//! the transaction that makes them.
//!
//! When the store opens or updates an alarm, when an operator changes an
//! alarm's status, and when an allowlist policy is added or removed, it calls
//! an `AlarmObserver` with the write transaction still open, so whatever the
//! observer writes (the notification outbox) commits or rolls back with the
//! change. The store knows only this trait; `notify::Router` implements it.

use crate::db::{Db, DbResult};

use super::workflow::Transition;
use crate::rules::Level;

/// What an observer needs to know about an alarm.
#[derive(Clone, Copy, Debug)]
pub struct AlarmFacts<'a> {
    pub alarm_id: i64,
    pub rule_id: &'a str,
    pub level: Level,
    pub tags: &'a [String],
    pub account_id: Option<&'a str>,
    pub account_name: Option<&'a str>,
}

/// Told of alarm changes inside the store's write transaction (`db`).
/// Each call returns how many messages it queued.
pub trait AlarmObserver: Send + Sync + std::fmt::Debug {
    /// A new alarm.
    fn opened(&self, db: &mut dyn Db, facts: &AlarmFacts<'_>) -> DbResult<usize>;

    /// New matches on an open alarm: its level may have risen, its count did.
    fn updated(
        &self,
        db: &mut dyn Db,
        facts: &AlarmFacts<'_>,
        old_level: Option<Level>,
        old_count: u64,
        new_count: u64,
    ) -> DbResult<usize>;

    /// An operator changed the alarm's status.
    fn status_changed(&self, db: &mut dyn Db, facts: &AlarmFacts<'_>, transition: &Transition) -> DbResult<usize>;

    /// An allowlist policy was added or removed (`detail` describes it, keys masked).
    fn policy_changed(&self, db: &mut dyn Db, detail: &serde_json::Value) -> DbResult<usize>;

    /// Protected configuration changed (policies, remarks, assets, the rule
    /// set): the change-log entries one operation recorded, oldest first.
    fn config_changed(&self, db: &mut dyn Db, changes: &[crate::alarm::changes::Change]) -> DbResult<usize>;

    /// The matches a batch added to an alarm, one output text each (keys
    /// masked), for topics that want each operation.
    fn operations(&self, db: &mut dyn Db, facts: &AlarmFacts<'_>, outputs: &[String]) -> DbResult<usize>;
}
