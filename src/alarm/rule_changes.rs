//! Rule-set changes in the change log, sealed by the hash chain: the daemon
//! records the rule set it starts with and every reload that changes it —
//! which rules were added, removed, changed, enabled or disabled, by what —
//! so silencing detection by editing a rule or an override file leaves a
//! tamper-evident trace like an allowlist policy does.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::changes::{self, Actor, Subject};
use crate::db::{Db, DbExt, DbResult, get};
use crate::rules::RuleSet;

/// Each rule's hash, with `disabled` appended when it is switched off.
fn fingerprints(rules: &RuleSet) -> BTreeMap<String, String> {
    rules
        .rules
        .iter()
        .map(|rule| {
            let state = if rule.enabled { "" } else { " disabled" };
            (rule.id.clone(), format!("{}{state}", rule.hash))
        })
        .collect()
}

/// The last recorded rule-set change: its id and its detail.
fn last_change(db: &mut dyn Db) -> DbResult<Option<(i64, Value)>> {
    let last: Option<(i64, String)> = db.query_opt(
        "SELECT id, detail FROM changes WHERE subject = 'rules' ORDER BY id DESC LIMIT 1",
        &[],
        |row| Ok((get(row, 0)?, get(row, 1)?)),
    )?;
    Ok(last.and_then(|(id, detail)| Some((id, serde_json::from_str(&detail).ok()?))))
}

/// The rules of the last recorded rule-set change.
fn last_recorded(db: &mut dyn Db) -> DbResult<Option<BTreeMap<String, String>>> {
    Ok(last_change(db)?.and_then(|(_, detail)| serde_json::from_value(detail["rules"].clone()).ok()))
}

/// The last rule set recorded: its change's id and its version. On a shared
/// store the reloader of every member follows it (`reload`).
pub fn last_recorded_version(store: &super::store::Store) -> Result<Option<(i64, String)>, super::store::StoreError> {
    let last = store.with_db(last_change)?;
    Ok(last.and_then(|(id, detail)| Some((id, detail["version"].as_str()?.to_string()))))
}

/// Record `rules` unless it is what the log last recorded; returns the
/// change's id. `actor` says what loaded it (start, file watch, SIGHUP, API).
/// Runs in the caller's write transaction (on PostgreSQL under
/// `changes::CHANGES_LOCK`, so daemons starting together record a rule set once).
pub fn record(
    db: &mut dyn Db,
    rules: &RuleSet,
    actor: &Actor,
    observer: Option<&dyn super::observer::AlarmObserver>,
) -> DbResult<Option<i64>> {
    let current = fingerprints(rules);
    let previous = last_recorded(db)?;
    if previous.as_ref() == Some(&current) {
        return Ok(None);
    }
    let before = previous.clone().unwrap_or_default();
    let added: Vec<&String> = current.keys().filter(|id| !before.contains_key(*id)).collect();
    let removed: Vec<&String> = before.keys().filter(|id| !current.contains_key(*id)).collect();
    let changed: Vec<&String> = current
        .iter()
        .filter(|(id, hash)| before.get(*id).is_some_and(|old| old != *hash))
        .map(|(id, _)| id)
        .collect();
    let detail = json!({
        "version": rules.version,
        "count": current.len(),
        "added": if previous.is_some() { json!(added) } else { json!([]) },
        "removed": removed,
        "changed": changed,
        "rules": current,
    });
    let action = if previous.is_some() { "changed" } else { "loaded" };
    let at = crate::time::timestamp(chrono::Utc::now());
    let id = changes::record(db, actor, Subject::Rules, 0, action, &detail, &at)?;
    if let Some(observer) = observer {
        let recorded = changes::since(db, id - 1)?;
        observer.config_changed(db, &recorded)?;
    }
    Ok(Some(id))
}

/// Record `rules` through `connection`, logging (not failing) when it
/// cannot: detection goes on either way.
pub fn record_logged(store: &mut super::store::Store, rules: &RuleSet, actor: &Actor) {
    log_outcome(
        rules,
        store.record_rules(rules, actor).map_err(|error| error.to_string()),
    );
}

/// `record_logged` on the store at `path` (the reloader has no connection).
pub fn record_at(path: &std::path::Path, options: super::store::StoreOptions, rules: &RuleSet, actor: &Actor) {
    let result = super::store::Store::open(path, options)
        .map_err(|error| error.to_string())
        .and_then(|mut store| store.record_rules(rules, actor).map_err(|error| error.to_string()));
    log_outcome(rules, result);
}

fn log_outcome(rules: &RuleSet, result: Result<Option<i64>, String>) {
    match result {
        Ok(Some(id)) => tracing::info!(change = id, version = %rules.version, "rule set recorded in the change log"),
        Ok(None) => {}
        Err(error) => tracing::error!(%error, "cannot record the rule set in the change log"),
    }
}
