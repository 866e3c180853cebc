//! Alarms: the filtered, sorted, paginated list; one alarm's details (call
//! records grouped per source IP, masked samples, status history, its rule);
//! and status changes, recorded with the token's name as the actor.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::ApiState;
use super::auth::{Operator, Viewer};
use super::error::{ApiError, JsonBody, Params, parse_id};
use crate::alarm::store::{AlarmFilter, AlarmSort, timestamp};
use crate::alarm::view::{AlarmDetailView, CallView};
use crate::alarm::workflow::Status;
use crate::rules::Level;

/// Most alarms one page may hold.
pub const MAX_LIMIT: u32 = 500;
pub const DEFAULT_LIMIT: u32 = 50;

const LIST_PARAMS: &[&str] = &[
    "status", "level", "rule", "account", "identity", "key", "since", "until", "q", "sort", "order", "limit", "offset",
];

/// `GET /api/v1/alarms`.
pub async fn list(Viewer(_): Viewer, State(state): State<ApiState>, params: Params) -> Result<Json<Value>, ApiError> {
    let filter = list_filter(&params)?;
    let (limit, offset) = (filter.limit.unwrap_or(DEFAULT_LIMIT), filter.offset.unwrap_or(0));
    let (total, items) = state
        .store
        .run(move |store| {
            let total = store.count_alarms(&filter)?;
            let items = crate::service::list_alarms(store, &filter)?;
            Ok((total, items))
        })
        .await?;
    Ok(Json(
        json!({"total": total, "offset": offset, "limit": limit, "items": items}),
    ))
}

/// The store filter of a list request; every bad parameter is named.
pub fn list_filter(params: &Params) -> Result<AlarmFilter, ApiError> {
    params.only(LIST_PARAMS)?;
    let statuses: Vec<&str> = Status::ALL.iter().map(|status| status.as_str()).collect();
    let status = params.choice("status", &statuses)?;
    let min_level = match params.text("level") {
        Some(text) => Some(Level::parse(&text).ok_or_else(|| {
            let levels: Vec<&str> = Level::ALL.iter().map(|level| level.as_str()).collect();
            ApiError::bad_request(format!(
                "level: unknown level {text:?} (expected {})",
                levels.join(", ")
            ))
        })?),
        None => None,
    };
    let sort = match params.choice("sort", &["time", "level", "count"])?.as_deref() {
        Some("level") => AlarmSort::Level,
        Some("count") => AlarmSort::Count,
        _ => AlarmSort::Time,
    };
    let ascending = params.choice("order", &["desc", "asc"])?.as_deref() == Some("asc");
    Ok(AlarmFilter {
        status,
        min_level,
        rule: params.text("rule"),
        account: params.text("account"),
        identity: params.choice("identity", &["root", "sub_account", "unknown"])?,
        access_key: params.text("key"),
        since: params.time("since")?.map(timestamp),
        until: params.time("until")?.map(timestamp),
        sort,
        ascending,
        limit: Some(params.integer("limit", DEFAULT_LIMIT, 1..=MAX_LIMIT)?),
        offset: Some(params.integer("offset", 0, 0..=u32::MAX)?),
        text: params.text("q"),
    })
}

/// `GET /api/v1/alarms/{id}`.
pub async fn detail(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    params.only(&[])?;
    let id = parse_id("an alarm", &id)?;
    let detail = state
        .store
        .run(move |store| Ok(crate::service::show_alarm(store, id)?))
        .await?;
    Ok(Json(detail_json(&state, detail)?))
}

/// `POST /api/v1/alarms/{id}/status` `{"status", "reason"}`.
pub async fn set_status(
    Operator(caller): Operator,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id("an alarm", &id)?;
    body.only(&["status", "reason"])?;
    let status_text = body.required_string("status")?;
    let to = Status::parse(status_text.trim()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "status: unknown status {status_text:?} (expected unprocessed, processed or ignored)"
        ))
    })?;
    let reason = body.required_string("reason")?;
    let reason_chars = reason.trim().chars().count();
    if reason_chars == 0 || reason_chars > 2000 {
        return Err(ApiError::bad_request(
            "reason: 1 to 2000 characters are required for every status change",
        ));
    }
    let detail = state
        .store
        .run(move |store| {
            store.set_status(id, to, &caller.name, &reason)?;
            Ok(crate::service::show_alarm(store, id)?)
        })
        .await?;
    Ok(Json(detail_json(&state, detail)?))
}

/// The detail view as JSON, with the alarm's rule (from the running set)
/// and its call records grouped per source IP.
fn detail_json(state: &ApiState, detail: AlarmDetailView) -> Result<Value, ApiError> {
    let ip_groups = ip_groups(&detail.calls);
    let rule_id = detail.alarm.alarm.rule.clone();
    let mut value = serde_json::to_value(&detail).map_err(|error| ApiError::internal("encoding an alarm", error))?;
    let rules = state.daemon.rules.load();
    let rule = rules.rules.iter().find(|rule| rule.id == rule_id).map(|rule| {
        json!({
            "id": rule.id,
            "title": rule.title,
            "description": rule.description,
            "advice": rule.remediation,
                "rationale": rule.rationale,
            "false_positives": rule.false_positives,
            "level": rule.level,
            "tags": rule.tags,
            "mitre": rule.mitre,
            "references": rule.references,
            "sigma": rule.sigma,
            "enabled": rule.enabled,
            "hash": rule.hash,
        })
    });
    if let Value::Object(fields) = &mut value {
        fields.insert("rule".into(), rule.unwrap_or(Value::Null));
        fields.insert("ip_groups".into(), ip_groups);
    }
    Ok(value)
}

/// Call records grouped per source IP, most recent activity first.
fn ip_groups(calls: &[CallView]) -> Value {
    let mut groups: Vec<(String, Vec<&CallView>)> = Vec::new();
    for call in calls {
        match groups.iter_mut().find(|(ip, _)| *ip == call.call.source_ip) {
            Some((_, members)) => members.push(call),
            None => groups.push((call.call.source_ip.clone(), vec![call])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(source_ip, members)| {
            let first = members[0];
            let success: u64 = members.iter().map(|call| call.call.success_count).sum();
            let failure: u64 = members.iter().map(|call| call.call.failure_count).sum();
            let first_call = members.iter().map(|call| call.call.first_call.as_str()).min();
            let last_call = members.iter().map(|call| call.call.last_call.as_str()).max();
            json!({
                "source_ip": source_ip,
                "ip_type": first.ip.ip_type,
                "ip_label": first.ip.ip_type_label,
                "ip_remark": first.ip.ip_remark,
                "asset": first.ip.asset,
                "region": first.ip.region,
                "success_count": success,
                "failure_count": failure,
                "first_call": first_call,
                "last_call": last_call,
                "calls": members,
            })
        })
        .collect();
    Value::Array(groups)
}
