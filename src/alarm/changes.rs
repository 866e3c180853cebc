//! Who changed what: the actor of every policy, remark and asset change, and
//! the append-only change log that records it.
//!
//! Detection can be switched off quietly by an allowlist policy, and an alarm
//! can be made to look harmless by a remark or an asset; so every such change
//! names its actor — the API token's name, or on the command line `--actor`
//! (by default the Unix user running it) — and the channel it came through,
//! and lands in `changes`, sealed by the hash chain in the same transaction as
//! the change itself. Access keys in a change's detail are masked: the log
//! says who did what without spreading keys.

use serde::Serialize;

use super::chain::LinkKind;
use super::seal;
use crate::db::{Db, DbExt, DbResult, Row, Value, get};
use crate::db_params;

/// The advisory lock key of operator changes and rule-set records on
/// PostgreSQL ("tw-chngs" in ASCII): daemons sharing a store record and
/// notify them one at a time.
pub const CHANGES_LOCK: i64 = 0x7477_2d63_686e_6773;

/// The longest actor name accepted (as for status changes).
pub const MAX_ACTOR: usize = 64;

/// Who makes a change, and through what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// The API token's name, or the command line's `--actor`.
    pub name: String,
    /// `api`, or `cli (unix user NAME)`: where the change came from.
    pub via: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the actor must be a name of 1 to {MAX_ACTOR} characters without control characters")]
pub struct BadActor;

impl Actor {
    /// A change made with an API token (the token's name is the actor).
    pub fn api(token_name: &str) -> Result<Actor, BadActor> {
        Actor::checked(token_name, "api".to_string())
    }

    /// A change made on the command line: `--actor` if given, else the Unix
    /// user; the channel records the Unix user either way.
    pub fn cli(name: Option<&str>) -> Result<Actor, BadActor> {
        let user = unix_user();
        let name = name.map_or_else(|| user.clone(), str::to_string);
        Actor::checked(&name, format!("cli (unix user {user})"))
    }

    fn checked(name: &str, via: String) -> Result<Actor, BadActor> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_ACTOR || name.chars().any(char::is_control) {
            return Err(BadActor);
        }
        Ok(Actor {
            name: name.to_string(),
            via,
        })
    }
}

/// The login name of the user running this process: the password
/// database's entry for the real uid (what `id -un` prints), else `USER` /
/// `LOGNAME`, else the numeric uid.
fn unix_user() -> String {
    #[cfg(unix)]
    {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        if let Some(name) = passwd_name(uid) {
            return name;
        }
        environment_user().unwrap_or_else(|| format!("uid {uid}"))
    }
    #[cfg(not(unix))]
    {
        environment_user().unwrap_or_else(|| "unknown".to_string())
    }
}

fn environment_user() -> Option<String> {
    ["USER", "LOGNAME"].into_iter().find_map(|variable| {
        let name = std::env::var(variable).ok()?;
        let name = name.trim();
        (!name.is_empty() && !name.chars().any(char::is_control)).then(|| name.chars().take(MAX_ACTOR).collect())
    })
}

#[cfg(unix)]
fn passwd_name(uid: libc::uid_t) -> Option<String> {
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; getpwuid_r writes the
    // entry's strings into `buffer`, which outlives their use below.
    let status = unsafe { libc::getpwuid_r(uid, &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found) };
    if status != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points to a NUL-terminated string inside `buffer`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    let name = name.to_str().ok()?.trim();
    (!name.is_empty() && !name.chars().any(char::is_control)).then(|| name.chars().take(MAX_ACTOR).collect())
}

/// What a change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Policy,
    Remark,
    Asset,
    /// The rule set the daemon runs (`alarm::rule_changes`).
    Rules,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Policy => "policy",
            Subject::Remark => "remark",
            Subject::Asset => "asset",
            Subject::Rules => "rules",
        }
    }

    pub fn parse(text: &str) -> Option<Subject> {
        [Subject::Policy, Subject::Remark, Subject::Asset, Subject::Rules]
            .into_iter()
            .find(|subject| subject.as_str() == text)
    }

    /// The chain kind of the row the change is about (none for the rule
    /// set: its change entry holds it whole).
    pub fn link_kind(self) -> Option<LinkKind> {
        match self {
            Subject::Policy => Some(LinkKind::Policy),
            Subject::Remark => Some(LinkKind::Remark),
            Subject::Asset => Some(LinkKind::Asset),
            Subject::Rules => None,
        }
    }
}

/// One entry of the change log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub via: String,
    pub subject: Subject,
    pub subject_id: i64,
    /// `added`, `removed`, `set`.
    pub action: String,
    /// The change's content (access keys masked).
    pub detail: serde_json::Value,
}

/// Record a change made in the caller's transaction, after the row it
/// concerns was written (or deleted): the row is sealed (or its removal
/// recorded) and the log entry is written and sealed.
pub fn record(
    db: &mut dyn Db,
    actor: &Actor,
    subject: Subject,
    subject_id: i64,
    action: &str,
    detail: &serde_json::Value,
    at: &str,
) -> DbResult<i64> {
    match subject.link_kind() {
        Some(kind) if action == "removed" => seal::append_removals(db, kind, &[subject_id], at)?,
        Some(kind) => seal::append_rows(db, kind, &[subject_id], at)?,
        None => {}
    }
    let detail = detail.to_string();
    let id = db.insert_id(
        "INSERT INTO changes (at, actor, via, subject, subject_id, action, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        db_params![
            at,
            &actor.name,
            &actor.via,
            subject.as_str(),
            subject_id,
            action,
            &detail
        ],
    )?;
    seal::append_rows(db, LinkKind::Change, &[id], at)?;
    Ok(id)
}

/// Which changes to list.
#[derive(Clone, Debug, Default)]
pub struct ChangeFilter {
    pub subject: Option<Subject>,
    pub subject_id: Option<i64>,
    pub actor: Option<String>,
    pub limit: u32,
}

/// The id of the last change recorded (0 when none). Every change to
/// policies, remarks, assets and the rule set records one, so on a shared
/// store it tells a daemon that another one changed what it applies.
pub fn last_id(db: &mut dyn Db) -> DbResult<i64> {
    Ok(db
        .query_opt("SELECT COALESCE(MAX(id), 0) FROM changes", &[], |row| get(row, 0))?
        .unwrap_or(0))
}

const CHANGE_COLUMNS: &str = "SELECT id, at, actor, via, subject, subject_id, action, detail FROM changes";

/// The changes recorded after `after`, oldest first.
pub fn since(db: &mut dyn Db, after: i64) -> DbResult<Vec<Change>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| format!("{CHANGE_COLUMNS} WHERE id > ?1 ORDER BY id"));
    db.query_all(sql, db_params![after], change_row)
}

impl Change {
    /// The change in a few words, for notifications ("remark on ip 203.0.113.7: VPN exit").
    pub fn describe(&self) -> String {
        let text = |name: &str| self.detail.get(name).and_then(serde_json::Value::as_str).unwrap_or("-");
        let names = |name: &str| {
            self.detail
                .get(name)
                .and_then(serde_json::Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(serde_json::Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|joined| !joined.is_empty())
                .unwrap_or_else(|| "none".into())
        };
        match self.subject {
            Subject::Remark => format!("remark on {} {}: {}", text("kind"), text("value"), text("remark")),
            Subject::Asset => format!("asset {} ({})", text("cidr"), text("name")),
            Subject::Policy => {
                let matches = self
                    .detail
                    .get("matches")
                    .and_then(serde_json::Value::as_object)
                    .map(|matches| {
                        matches
                            .iter()
                            .filter_map(|(name, value)| Some(format!("{name} {}", value.as_str()?)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                let expiry = match self.detail.get("expires_at").and_then(serde_json::Value::as_str) {
                    Some(expires) => format!(", expires {expires}"),
                    None if self.action == "changed" => ", never expires".to_string(),
                    None => String::new(),
                };
                format!("allowlist policy {matches} (reason: {}){expiry}", text("reason"))
            }
            Subject::Rules => format!(
                "rule set {} of {} rules; added: {}; removed: {}; changed: {}",
                self.detail
                    .get("version")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("-"),
                self.detail
                    .get("count")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0),
                names("added"),
                names("removed"),
                names("changed"),
            ),
        }
    }
}

/// Changes, most recent first.
pub fn list(db: &mut dyn Db, filter: &ChangeFilter) -> DbResult<Vec<Change>> {
    let mut sql = format!("{CHANGE_COLUMNS} WHERE 1 = 1");
    let mut values: Vec<Value<'_>> = Vec::new();
    if let Some(subject) = filter.subject {
        values.push(subject.as_str().into());
        sql.push_str(&format!(" AND subject = ?{}", values.len()));
    }
    if let Some(id) = filter.subject_id {
        values.push(id.into());
        sql.push_str(&format!(" AND subject_id = ?{}", values.len()));
    }
    if let Some(actor) = &filter.actor {
        values.push(actor.into());
        sql.push_str(&format!(" AND actor = ?{}", values.len()));
    }
    values.push(if filter.limit == 0 { 100 } else { filter.limit }.into());
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", values.len()));
    db.query_all(&sql, &values, change_row)
}

/// A `changes` row (id, at, actor, via, subject, subject_id, action, detail).
fn change_row(row: &dyn Row) -> DbResult<Change> {
    let subject: String = get(row, 4)?;
    let detail: String = get(row, 7)?;
    Ok(Change {
        id: get(row, 0)?,
        at: get(row, 1)?,
        actor: get(row, 2)?,
        via: get(row, 3)?,
        subject: Subject::parse(&subject).unwrap_or(Subject::Policy),
        subject_id: get(row, 5)?,
        action: get(row, 6)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_are_checked_and_the_cli_channel_names_the_unix_user() {
        assert!(Actor::api("").is_err());
        assert!(Actor::api("a\u{1b}[2Jb").is_err());
        assert!(Actor::api(&"x".repeat(MAX_ACTOR + 1)).is_err());
        let api = Actor::api(" ci-bot ").unwrap();
        assert_eq!((api.name.as_str(), api.via.as_str()), ("ci-bot", "api"));
        let cli = Actor::cli(Some("alice")).unwrap();
        assert_eq!(cli.name, "alice");
        assert!(cli.via.starts_with("cli (unix user "), "{}", cli.via);
        let default = Actor::cli(None).unwrap();
        assert!(!default.name.is_empty());
    }
}
