//! The query service: what the command line and the HTTP API both ask of the
//! store — alarms, allowlist policies, remarks, assets, the change log, the
//! god view, traces and dead letters — with access keys masked on the way
//! out. Neither the CLI nor an API handler reaches into the store's tables
//! directly; both come here.

use std::path::Path;

use crate::alarm::allowlist::{self, NewPolicy, Policy, PolicyMatch};
use crate::alarm::assets::{self, Directory};
use crate::alarm::changes::{Actor, Change, ChangeFilter};
use crate::alarm::rollup::{ActivityQuery, ActivityReport, Trace, TraceFilter};
use crate::alarm::store::{AlarmFilter, Store};
use crate::alarm::view::{AlarmDetailView, AlarmView, alarm_view, detail_view};
use crate::config::Settings;
use crate::error::AppError;
use crate::mask::mask_access_key;
use crate::options::store_options;

/// Open the store a command writes (`--db` or the configured one), creating
/// it when it does not exist.
pub fn open_store(settings: &Settings, db: Option<&Path>) -> Result<Store, AppError> {
    let path = db.unwrap_or(&settings.store.path);
    Ok(Store::open(path, store_options(settings))?)
}

/// Open the store a command reads, or whose existing rows it changes. One
/// that does not exist is refused and not created: opening a mistyped path
/// would make an empty store and report "nothing found" (or "chain ok").
pub fn open_existing_store(settings: &Settings, db: Option<&Path>) -> Result<Store, AppError> {
    let path = db.unwrap_or(&settings.store.path);
    if !crate::db::StoreLocation::from_path(path).is_postgres() && !path.is_file() {
        return Err(AppError::NoStore {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            given: match db {
                Some(_) => "from --db".to_string(),
                None => format!("from `store.path` in {}", settings.origin),
            },
        });
    }
    open_store(settings, Some(path))
}

/// Alarms for output: keys masked, key remarks attached.
pub fn list_alarms(store: &Store, filter: &AlarmFilter) -> Result<Vec<AlarmView>, AppError> {
    let directory = directory(store)?;
    Ok(store
        .list_alarms(filter)?
        .into_iter()
        .map(|alarm| alarm_view(alarm, &directory))
        .collect())
}

/// Remarks and assets for output.
fn directory(store: &Store) -> Result<Directory, AppError> {
    store.read(|db| -> Result<Directory, AppError> { Ok(Directory::load(db)?) })
}

/// One alarm for output: keys masked, call records with their IP types.
pub fn show_alarm(store: &Store, id: i64) -> Result<AlarmDetailView, AppError> {
    use crate::alarm::investigate;
    let detail = store.get_alarm(id)?.ok_or(AppError::AlarmNotFound(id))?;
    let directory = directory(store)?;
    let identity = detail.alarm.identity.clone();
    let last_seen_ms = chrono::DateTime::parse_from_rfc3339(&detail.alarm.last_seen)
        .map(|time| time.timestamp_millis())
        .unwrap_or_else(|_| chrono::Utc::now().timestamp_millis());
    let principal = identity.principal_name.as_deref().or(identity.principal_id.as_deref());
    // From the alarms and the god view's rollups, on either backend.
    let (key_association, permissions) = store.with_db(|db| {
        let key_association = identity
            .access_key_id
            .as_deref()
            .map(|key| investigate::key_association(db, key, id))
            .transpose()?;
        let permissions = match (identity.account_id.as_deref(), principal) {
            (Some(account), Some(principal)) => Some(investigate::permissions(
                db,
                &identity.provider,
                account,
                principal,
                last_seen_ms,
            )?),
            _ => None,
        };
        Ok((key_association, permissions))
    })?;
    let mut view = detail_view(detail, &directory);
    view.key_association = key_association;
    view.permissions = permissions;
    Ok(view)
}

/// `allowlist add`: the fields given, else (with `from_alarm`) the alarm's
/// rule, access key and — when all its calls came from one IP — that IP.
pub struct AllowlistAdd {
    pub matches: PolicyMatch,
    pub from_alarm: Option<i64>,
    pub reason: String,
    pub expires: Option<String>,
    /// An explicit override for a broad policy (admins only; recorded).
    pub allow_broad: bool,
}

/// Add a policy as `actor`. Returns it, and a warning when it is already
/// expired. The policy, its change-log entry, its chain links and the
/// `policy` notifications commit in one transaction.
pub fn allowlist_add(
    store: &mut Store,
    request: AllowlistAdd,
    actor: &Actor,
) -> Result<(Policy, Option<String>), AppError> {
    let now = chrono::Utc::now();
    let mut matches = request.matches;
    if let Some(id) = request.from_alarm {
        let detail = store.get_alarm(id)?.ok_or(AppError::AlarmNotFound(id))?;
        let ips: std::collections::BTreeSet<&str> = detail
            .calls
            .iter()
            .map(|call| call.source_ip.as_str())
            .filter(|ip| crate::event::lenient::parse_ip(ip).is_some())
            .collect();
        let only_ip = (ips.len() == 1 && detail.calls.iter().all(|call| ips.contains(call.source_ip.as_str())))
            .then(|| ips.iter().next().map(|ip| ip.to_string()))
            .flatten();
        matches.rule_id = matches.rule_id.or(Some(detail.alarm.rule.clone()));
        matches.access_key = matches.access_key.or(detail.alarm.identity.access_key_id.clone());
        matches.source_ip = matches.source_ip.or(only_ip);
    }
    let expires_at = request
        .expires
        .as_deref()
        .map(|text| allowlist::parse_expiry(text, now))
        .transpose()?;
    let warning = expires_at.filter(|expires| *expires <= now).map(|expires| {
        format!(
            "the policy expired already ({}): it will not match anything",
            crate::alarm::store::timestamp(expires)
        )
    });
    let policy = store.change(|db, router| -> Result<Policy, AppError> {
        let policy = allowlist::add(
            db,
            NewPolicy {
                matches,
                reason: request.reason,
                expires_at,
                allow_broad: request.allow_broad,
            },
            actor,
            now,
        )?;
        if let Some(router) = router {
            router
                .policy_changed(db, &policy_notice(&policy, "added", actor, now))
                .map_err(crate::alarm::store::StoreError::from)?;
        }
        Ok(policy)
    })?;
    if let Some(broad) = &policy.broad {
        tracing::warn!(policy = policy.id, actor = %actor.name, via = %actor.via, %broad, "broad allowlist policy added by override");
    }
    Ok((policy, warning))
}

/// The notification detail of a policy change (key masked).
fn policy_notice(
    policy: &Policy,
    action: &str,
    actor: &Actor,
    now: chrono::DateTime<chrono::Utc>,
) -> serde_json::Value {
    let matches = &policy.matches;
    let mut parts = Vec::new();
    let masked = matches.access_key.as_deref().map(mask_access_key);
    for (label, value) in [
        ("key", &masked),
        ("ip", &matches.source_ip),
        ("api", &matches.api),
        ("operation", &matches.operation),
        ("method", &matches.call_method),
        ("error code", &matches.error_code),
        ("rule", &matches.rule_id),
    ] {
        if let Some(value) = value {
            parts.push(format!("{label} {value}"));
        }
    }
    let mut masked_matches = matches.clone();
    masked_matches.access_key = masked;
    serde_json::json!(crate::notify::render::PolicyNotice {
        action: action.to_string(),
        id: policy.id,
        actor: actor.name.clone(),
        via: actor.via.clone(),
        at: crate::alarm::store::timestamp(now),
        summary: parts.join(", "),
        matches: serde_json::json!(masked_matches),
        reason: policy.reason.clone(),
        expires_at: policy.expires_at.clone(),
        broad: policy.broad.clone(),
        approved_by: policy.approved_by.clone(),
        hit_count: policy.hit_count,
        high_hits: policy.high_hits,
    })
}

/// A policy for output: key masked, and whether it is in force.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PolicyView {
    #[serde(flatten)]
    pub policy: Policy,
    /// `active` or `expired` (by the wall clock), or `unsealed`: changed
    /// behind trailwarden's back, so the engine does not apply it.
    pub state: &'static str,
}

pub fn policy_view(mut policy: Policy, now: chrono::DateTime<chrono::Utc>) -> PolicyView {
    let state = if policy.expired_at(now) { "expired" } else { "active" };
    policy.matches.access_key = policy.matches.access_key.as_deref().map(mask_access_key);
    PolicyView { policy, state }
}

pub fn allowlist_list(store: &Store) -> Result<Vec<PolicyView>, AppError> {
    let now = chrono::Utc::now();
    let mut views = Vec::new();
    store.read(|db| -> Result<Vec<PolicyView>, AppError> {
        for policy in allowlist::list(db)? {
            let sealed =
                crate::alarm::seal::policy_is_sealed(db, policy.id).map_err(crate::alarm::store::StoreError::from)?;
            let mut view = policy_view(policy, now);
            if !sealed {
                view.state = "unsealed";
            }
            views.push(view);
        }
        Ok(views)
    })
}

/// `allowlist report`: policies never hit, and policies expired.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AllowlistReport {
    pub never_hit: Vec<PolicyView>,
    pub expired: Vec<PolicyView>,
}

pub fn allowlist_report(store: &Store) -> Result<AllowlistReport, AppError> {
    let now = chrono::Utc::now();
    let mut report = AllowlistReport {
        never_hit: Vec::new(),
        expired: Vec::new(),
    };
    for policy in store.read(|db| -> Result<_, AppError> { Ok(allowlist::list(db)?) })? {
        if policy.expired_at(now) {
            report.expired.push(policy_view(policy.clone(), now));
        }
        if policy.hit_count == 0 {
            report.never_hit.push(policy_view(policy, now));
        }
    }
    Ok(report)
}

/// Remove a policy as `actor` (change log, chain and `policy`
/// notifications in the same transaction). Returns it as it was.
pub fn allowlist_remove(store: &mut Store, id: i64, actor: &Actor) -> Result<Policy, AppError> {
    let now = chrono::Utc::now();
    store.change(|db, router| -> Result<Policy, AppError> {
        let policy = allowlist::remove(db, id, actor, now)?;
        if let Some(router) = router {
            router
                .policy_changed(db, &policy_notice(&policy, "removed", actor, now))
                .map_err(crate::alarm::store::StoreError::from)?;
        }
        Ok(policy)
    })
}

/// Change a policy's expiry as `actor` (`expires`: a time, a duration from
/// now, or `never`); the change log, the new seal and the notifications in
/// the same transaction. Returns the policy, and a warning when the new
/// expiry has passed already.
pub fn allowlist_set_expiry(
    store: &mut Store,
    id: i64,
    expires: &str,
    actor: &Actor,
) -> Result<(Policy, Option<String>), AppError> {
    let now = chrono::Utc::now();
    let expires_at = match expires.trim() {
        "never" | "" => None,
        text => Some(allowlist::parse_expiry(text, now)?),
    };
    let warning = expires_at
        .filter(|expires| *expires <= now)
        .map(|_| "the policy has expired: it no longer matches anything".to_string());
    let policy = store.change(|db, router| -> Result<Policy, AppError> {
        let policy = allowlist::set_expiry(db, id, expires_at, actor, now)?;
        if let Some(router) = router {
            router
                .policy_changed(db, &policy_notice(&policy, "changed", actor, now))
                .map_err(crate::alarm::store::StoreError::from)?;
        }
        Ok(policy)
    })?;
    Ok((policy, warning))
}

/// Set a remark as `actor` (change log and chain in the same transaction).
pub fn remark_set(
    store: &mut Store,
    kind: assets::RemarkKind,
    value: &str,
    text: &str,
    actor: &Actor,
) -> Result<assets::Remark, AppError> {
    store.change(|db, _| -> Result<assets::Remark, AppError> {
        Ok(assets::set_remark(db, kind, value, text, actor, chrono::Utc::now())?)
    })
}

/// Remove a remark as `actor`.
pub fn remark_remove(store: &mut Store, kind: assets::RemarkKind, value: &str, actor: &Actor) -> Result<(), AppError> {
    store.change(|db, _| -> Result<(), AppError> {
        Ok(assets::remove_remark(db, kind, value, actor, chrono::Utc::now())?)
    })
}

/// Add (or rename) an asset as `actor`.
pub fn asset_add(store: &mut Store, cidr: &str, name: &str, actor: &Actor) -> Result<assets::Asset, AppError> {
    store.change(|db, _| -> Result<assets::Asset, AppError> {
        Ok(assets::add_asset(db, cidr, name, actor, chrono::Utc::now())?)
    })
}

/// Import assets from a file as `actor` (one transaction for the good lines).
pub fn assets_import(store: &mut Store, path: &Path, actor: &Actor) -> Result<assets::ImportReport, AppError> {
    store.change(|db, _| -> Result<assets::ImportReport, AppError> {
        Ok(assets::import_assets(db, path, actor, chrono::Utc::now())?)
    })
}

/// The change log, most recent first.
pub fn list_changes(store: &Store, filter: &ChangeFilter) -> Result<Vec<Change>, AppError> {
    Ok(store.with_db(|db| crate::alarm::changes::list(db, filter))?)
}

/// A remark for output (access keys masked).
pub fn remark_list(store: &Store) -> Result<Vec<assets::Remark>, AppError> {
    Ok(store
        .read(|db| -> Result<_, AppError> { Ok(assets::list_remarks(db)?) })?
        .into_iter()
        .map(|mut remark| {
            if remark.kind == assets::RemarkKind::Key {
                remark.value = mask_access_key(&remark.value);
            }
            remark
        })
        .collect())
}

/// `trailwarden activity`: the god view over a time range.
pub fn activity_report(store: &Store, query: &ActivityQuery) -> Result<ActivityReport, AppError> {
    Ok(store.activity_report(query)?)
}

/// `trailwarden traces`: key-operation traces, most recent first.
pub fn list_traces(store: &Store, filter: &TraceFilter) -> Result<Vec<Trace>, AppError> {
    Ok(store.list_traces(filter)?)
}

/// `trailwarden events`, `GET /api/v1/events`: a page of the event store,
/// newest first, keys masked. With `alarm`, the search is scoped to the
/// alarm's identity (its access key, else its principal) in its cloud and
/// account, from its first to its last event; the filters given narrow it
/// further (a call record's address and action, say).
pub fn search_events(
    store: &Store,
    mut filter: crate::alarm::events::EventFilter,
    alarm: Option<i64>,
) -> Result<crate::alarm::events::EventPage, AppError> {
    use crate::alarm::events::{SearchError, search};
    if let Some(id) = alarm {
        let detail = store.get_alarm(id)?.ok_or(AppError::AlarmNotFound(id))?;
        let identity = detail.alarm.identity;
        if filter.key.is_none() && filter.principal.is_none() {
            match identity.access_key_id {
                Some(key) => filter.key = Some(key),
                None => filter.principal = identity.principal_id.or(identity.principal_name),
            }
        }
        filter.account = filter.account.or(identity.account_id);
        filter.provider = filter
            .provider
            .or(crate::event::model::Provider::parse(&identity.provider));
        let time = |text: &str| {
            chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|time| time.with_timezone(&chrono::Utc))
        };
        if let Some(first) = time(&detail.alarm.first_seen) {
            filter.since = Some(filter.since.map_or(first, |since| since.max(first)));
        }
        if let Some(last) = time(&detail.alarm.last_seen) {
            let end = last + chrono::Duration::milliseconds(1);
            filter.until = Some(filter.until.map_or(end, |until| until.min(end)));
        }
    }
    let mut page = store.read(|db| {
        search(db, &filter).map_err(|error| match error {
            SearchError::BadCursor(_) => AppError::Usage(error.to_string()),
            SearchError::Store(error) => AppError::Store(error.into()),
            SearchError::Damaged { .. } => AppError::Store(crate::alarm::store::StoreError::Corrupt(error.to_string())),
        })
    })?;
    for event in &mut page.events {
        if let Some(key) = event.access_key_id.take() {
            crate::mask::mask_keys_in_json(&mut event.raw, &[key.as_str()]);
            event.access_key_id = Some(mask_access_key(&key));
        }
        crate::mask::mask_unknown_keys_in_json(&mut event.raw);
    }
    Ok(page)
}

/// A time argument: RFC 3339 (`2026-03-02T10:00:00Z`, `2026-03-02T18:00:00+08:00`),
/// a UTC date (`2026-03-02`), or a duration before `now` (`24h`, `7d`, `90m`).
pub fn parse_time_arg(
    flag: &str,
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, AppError> {
    let text = text.trim();
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&chrono::Utc));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    let ago = humantime::parse_duration(text)
        .ok()
        .and_then(|duration| chrono::Duration::from_std(duration).ok())
        .and_then(|duration| now.checked_sub_signed(duration));
    ago.ok_or_else(|| {
        AppError::Usage(format!(
            "{flag} {text}: not a time; use RFC 3339 (2026-03-02T10:00:00Z), a date (2026-03-02) or a duration ago (24h, 7d)"
        ))
    })
}

/// Dead letters for output: access keys recognisable by their prefix masked
/// (unreadable records can quote them).
pub fn list_dead_letters(store: &Store, limit: u32) -> Result<Vec<crate::alarm::store::DeadLetterRow>, AppError> {
    let mut letters = store.list_dead_letters(limit)?;
    for letter in &mut letters {
        letter.excerpt = crate::mask::mask_recognisable_keys(&letter.excerpt);
        letter.reason = crate::mask::mask_recognisable_keys(&letter.reason);
    }
    Ok(letters)
}

/// Mask the access keys of an activity report (new key/IP pairs).
pub fn mask_activity_report(report: &mut ActivityReport) {
    for pair in &mut report.new_key_ips {
        pair.access_key_id = mask_access_key(&pair.access_key_id);
    }
}

/// Mask the access key of traces, in the trace and in its raw record.
pub fn mask_traces(traces: &mut [Trace]) {
    for trace in traces {
        if let Some(key) = trace.access_key_id.take() {
            crate::mask::mask_keys_in_json(&mut trace.raw, &[key.as_str()]);
            trace.access_key_id = Some(mask_access_key(&key));
        }
        // Keys the record quotes besides its own (one it created, in its response).
        crate::mask::mask_unknown_keys_in_json(&mut trace.raw);
    }
}

/// Every asset, most specific last (`assets list`, `GET /api/v1/assets`).
pub fn asset_list(store: &Store) -> Result<Vec<assets::Asset>, AppError> {
    store.read(|db| -> Result<_, AppError> { Ok(assets::list_assets(db)?) })
}

pub use crate::notify::outbox::{DeliveryFilter, DeliveryRow, STATUSES as DELIVERY_STATUSES};

/// Notification deliveries, newest first.
pub fn list_deliveries(store: &Store, filter: &DeliveryFilter) -> Result<Vec<DeliveryRow>, AppError> {
    Ok(store.with_db(|db| crate::notify::outbox::list(db, filter))?)
}

/// What became of one delivery a resend asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Resent {
    /// Queued again, under its delivery id.
    Queued,
    /// Not failed: left as it is (its status).
    NotFailed(String),
    Missing,
}

/// What a resend did: every delivery queued again, and what became of each id asked for.
pub type Resend = (Vec<i64>, Vec<(i64, Resent)>);

/// Queue failed deliveries again (the ids given, and with `all_failed`
/// every failed one). Returns what became of each id given.
pub fn resend_deliveries(store: &mut Store, ids: &[i64], all_failed: bool) -> Result<Resend, AppError> {
    let requeued = store.transact(Some(crate::notify::outbox::OUTBOX_LOCK), |db| {
        crate::notify::outbox::resend(db, ids, all_failed).map_err(crate::alarm::store::StoreError::from)
    })?;
    let mut outcomes = Vec::with_capacity(ids.len());
    for &id in ids {
        let outcome = if requeued.contains(&id) {
            Resent::Queued
        } else {
            match store.with_db(|db| crate::notify::outbox::status_of(db, id))? {
                Some(status) => Resent::NotFailed(status),
                None => Resent::Missing,
            }
        };
        outcomes.push((id, outcome));
    }
    Ok((requeued, outcomes))
}
