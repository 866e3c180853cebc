//! What an operator asks next about an alarm (seeds/003's alarm detail):
//! what else its access key set off and where it has been used from (AK
//! association risk), and which actions its principal really uses and which
//! were refused — the input for converging its permissions, with a
//! least-privilege policy built from the successful calls.
//!
//! Both are read from the store when an alarm is shown: the alarms table and
//! the god view's rollups (`activity_key_ips`, `activity_hourly`).

use std::collections::BTreeMap;

use crate::db::{Db, DbExt, DbResult, get};
use serde::Serialize;
use serde_json::{Value, json};

/// How far back `permissions` looks, before the alarm's last match.
pub const PERMISSION_WINDOW_DAYS: i64 = 30;

/// Error codes that mean "not allowed" (as `denied-call` reads them).
const DENIED: &[&str] = &[
    "accessdenied",
    "unauthorizedoperation",
    "authfailure",
    "unauthorized",
    "forbidden",
    "notauthorized",
];

/// The alarm's access key across the store.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KeyAssociation {
    /// Other alarms of the same key, most recent first (at most 50).
    pub other_alarms: Vec<RelatedAlarm>,
    /// Addresses the key was first seen from, oldest first (at most 100).
    pub source_ips: Vec<KeyAddress>,
    /// Accounts the key was used in.
    pub accounts: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RelatedAlarm {
    pub id: i64,
    pub rule: String,
    pub level: String,
    pub status: String,
    pub count: i64,
    pub last_seen: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyAddress {
    pub source_ip: String,
    pub account_id: String,
    pub first_seen: String,
}

/// One action and how often it was called.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActionUse {
    pub service: String,
    pub action: String,
    pub calls: i64,
}

/// One refused action, by error code.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeniedAction {
    pub service: String,
    pub action: String,
    pub error_code: String,
    pub calls: i64,
}

/// The principal's use of permissions in the window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Permissions {
    pub window_days: i64,
    /// Actions that succeeded at least once.
    pub used: Vec<ActionUse>,
    pub denied: Vec<DeniedAction>,
    /// A policy granting exactly `used` (AWS IAM, Tencent CAM); `None` for
    /// Huawei, whose CTS trace names are not IAM action names.
    pub least_privilege_policy: Option<Value>,
    pub note: String,
}

/// Other alarms, addresses and accounts of `access_key` (stored in full).
pub fn key_association(db: &mut dyn Db, access_key: &str, alarm_id: i64) -> DbResult<KeyAssociation> {
    let other_alarms = db.query_all(
        "SELECT id, rule_id, level, status, count, last_seen FROM alarms \
         WHERE access_key_id = ?1 AND id != ?2 ORDER BY id DESC LIMIT 50",
        crate::db_params![access_key, alarm_id],
        |row| {
            Ok(RelatedAlarm {
                id: get(row, 0)?,
                rule: get(row, 1)?,
                level: get(row, 2)?,
                status: get(row, 3)?,
                count: get(row, 4)?,
                last_seen: get(row, 5)?,
            })
        },
    )?;
    // Ordered by the pair as well, so both backends list ties alike.
    let source_ips = db.query_all(
        "SELECT source_ip, account_id, MIN(first_ms) FROM activity_key_ips WHERE access_key_id = ?1 \
         GROUP BY source_ip, account_id ORDER BY MIN(first_ms), source_ip, account_id LIMIT 100",
        crate::db_params![access_key],
        |row| {
            Ok(KeyAddress {
                source_ip: get(row, 0)?,
                account_id: get(row, 1)?,
                first_seen: crate::time::timestamp(
                    chrono::DateTime::from_timestamp_millis(get(row, 2)?).unwrap_or_default(),
                ),
            })
        },
    )?;
    let mut accounts: Vec<String> = source_ips
        .iter()
        .map(|address| address.account_id.clone())
        .filter(|account| !account.is_empty())
        .collect();
    accounts.sort();
    accounts.dedup();
    Ok(KeyAssociation {
        other_alarms,
        source_ips,
        accounts,
    })
}

/// What `principal` (a name, else id, as the rollups keep it) of `account`
/// on `provider` called in the `PERMISSION_WINDOW_DAYS` before `until_ms`.
pub fn permissions(
    db: &mut dyn Db,
    provider: &str,
    account: &str,
    principal: &str,
    until_ms: i64,
) -> DbResult<Permissions> {
    let since_ms = until_ms - PERMISSION_WINDOW_DAYS * 86_400_000;
    let mut used: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut denied = Vec::new();
    let rows = db.query_all(
        "SELECT service, action, error_code, SUM(count), SUM(failures) FROM activity_hourly \
         WHERE provider = ?1 AND account_id = ?2 AND principal = ?3 AND hour_ms >= ?4 AND hour_ms <= ?5 \
         GROUP BY service, action, error_code",
        crate::db_params![provider, account, principal, since_ms, until_ms],
        |row| {
            Ok((
                get::<String>(row, 0)?,
                get::<String>(row, 1)?,
                get::<String>(row, 2)?,
                get::<i64>(row, 3)?,
                get::<i64>(row, 4)?,
            ))
        },
    )?;
    for (service, action, error_code, count, failures) in rows {
        let successes = count - failures;
        if successes > 0 {
            *used.entry((service.clone(), action.clone())).or_default() += successes;
        }
        let lower = error_code.to_ascii_lowercase();
        if failures > 0 && (DENIED.iter().any(|fragment| lower.contains(fragment)) || lower == "403" || lower == "401")
        {
            denied.push(DeniedAction {
                service,
                action,
                error_code,
                calls: failures,
            });
        }
    }
    denied.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then_with(|| (&a.service, &a.action).cmp(&(&b.service, &b.action)))
    });
    let used: Vec<ActionUse> = used
        .into_iter()
        .map(|((service, action), calls)| ActionUse { service, action, calls })
        .collect();
    let (least_privilege_policy, note) = policy(provider, &used);
    Ok(Permissions {
        window_days: PERMISSION_WINDOW_DAYS,
        used,
        denied,
        least_privilege_policy,
        note,
    })
}

/// A policy allowing exactly the used actions, in the cloud's own grammar.
fn policy(provider: &str, used: &[ActionUse]) -> (Option<Value>, String) {
    if used.is_empty() {
        return (None, "no successful call in the window: nothing to grant".into());
    }
    let actions: Vec<String> = used
        .iter()
        .map(|entry| format!("{}:{}", entry.service, entry.action))
        .collect();
    match provider {
        "aws" => (
            Some(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]})),
            "CloudTrail event names are IAM action names for most APIs (a few differ, e.g. lambda's versioned names): review, then narrow `Resource`".into(),
        ),
        "tencent" => (
            Some(json!({"version": "2.0", "statement": [{"effect": "allow", "action": actions, "resource": ["*"]}]})),
            "CloudAudit event names are CAM action names: review, then narrow `resource`".into(),
        ),
        _ => (
            None,
            "CTS trace names are not IAM action names: grant the actions these operations need by hand".into(),
        ),
    }
}
