//! What operators maintain: allowlist policies, remarks on access keys and
//! IPs, and the organisation's own addresses (assets).
//!
//! Access keys only ever leave the API masked, so wherever a request names a
//! key (`key` of a policy, `value` of a key remark) it may give the masked
//! form it was shown (`AKIDz8****LPx3gnPhESA`); it is resolved against the
//! keys the store knows, and must name exactly one.

use crate::alarm::store::Store;
use crate::db::DbExt;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use super::auth::{Caller, Operator, Role, Viewer};
use super::error::{ApiError, JsonBody, Params, parse_id};
use crate::alarm::allowlist::PolicyMatch;
use crate::alarm::assets::RemarkKind;
use crate::alarm::changes::{Actor, ChangeFilter, Subject};
use crate::mask::{MASK, mask_access_key};

/// `GET /api/v1/allowlist`.
pub async fn allowlist_list(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    params.only(&[])?;
    let policies = state
        .store
        .run(|store| Ok(crate::service::allowlist_list(store)?))
        .await?;
    Ok(Json(json!(policies)))
}

/// `GET /api/v1/allowlist/report`.
pub async fn allowlist_report(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    params.only(&[])?;
    let report = state
        .store
        .run(|store| Ok(crate::service::allowlist_report(store)?))
        .await?;
    Ok(Json(json!(report)))
}

const POLICY_FIELDS: &[&str] = &[
    "key",
    "ip",
    "api",
    "operation",
    "call_method",
    "error_code",
    "rule",
    "reason",
    "expires",
    "from_alarm",
    "allow_broad",
];

/// The actor of a change made with this token: the token's name.
fn actor(caller: &Caller) -> Result<Actor, ApiError> {
    Actor::api(&caller.name).map_err(|error| ApiError::bad_request(format!("token name: {error}")))
}

/// `POST /api/v1/allowlist`: 201 with the policy (key masked).
pub async fn allowlist_add(
    Operator(caller): Operator,
    State(state): State<ApiState>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    if body.has("owner") {
        return Err(ApiError::bad_request(format!(
            "owner: not accepted: a policy records the token that adds it ({:?}) as its creator",
            caller.name
        )));
    }
    body.only(POLICY_FIELDS)?;
    let allow_broad = body.boolean("allow_broad")?.unwrap_or(false);
    if allow_broad && caller.role < Role::Admin {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "allow_broad: only an admin token may allow a broad policy",
        ));
    }
    let actor = actor(&caller)?;
    let key = body.string("key")?;
    let matches = PolicyMatch {
        access_key: None,
        source_ip: body.string("ip")?,
        api: body.string("api")?,
        operation: body.string("operation")?,
        call_method: body.string("call_method")?,
        error_code: body.string("error_code")?,
        rule_id: body.string("rule")?,
    };
    let from_alarm = body.id("from_alarm")?;
    let reason = body.required_string("reason")?;
    let expires = body.string("expires")?;
    let (policy, warning) = state
        .store
        .run(move |store| {
            let access_key = match key {
                Some(key) => Some(resolve_key(store, "key", &key)?),
                None => None,
            };
            if let Some(id) = from_alarm
                && store.get_alarm(id)?.is_none()
            {
                return Err(ApiError::not_found(format!("from_alarm: alarm {id} not found")));
            }
            let request = crate::service::AllowlistAdd {
                matches: PolicyMatch { access_key, ..matches },
                from_alarm,
                reason,
                expires,
                allow_broad,
            };
            Ok(crate::service::allowlist_add(store, request, &actor)?)
        })
        .await?;
    tracing::info!(policy = policy.id, actor = %caller.name, "allowlist policy added through the API");
    let mut value = json!(crate::service::policy_view(policy, chrono::Utc::now()));
    if let (Some(warning), Value::Object(fields)) = (warning, &mut value) {
        fields.insert("warning".into(), Value::String(warning));
    }
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

/// `PATCH /api/v1/allowlist/{id}` `{"expires": TIME | DURATION | "never" | null}`:
/// the policy with its new expiry (recorded, sealed and notified).
pub async fn allowlist_set_expiry(
    Operator(caller): Operator,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id("a policy", &id)?;
    body.only(&["expires"])?;
    if !body.has("expires") {
        return Err(ApiError::bad_request(
            "expires: required (a time, a duration from now such as \"30d\", or \"never\" / null)",
        ));
    }
    let expires = body.string("expires")?.unwrap_or_else(|| "never".to_string());
    let actor = actor(&caller)?;
    let (policy, warning) = state
        .store
        .run(move |store| Ok(crate::service::allowlist_set_expiry(store, id, &expires, &actor)?))
        .await?;
    tracing::info!(policy = id, actor = %caller.name, "allowlist policy expiry changed through the API");
    let mut value = json!(crate::service::policy_view(policy, chrono::Utc::now()));
    if let (Some(warning), Value::Object(fields)) = (warning, &mut value) {
        fields.insert("warning".into(), Value::String(warning));
    }
    Ok(Json(value))
}

/// `DELETE /api/v1/allowlist/{id}`: 204.
pub async fn allowlist_remove(
    Operator(caller): Operator,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id("a policy", &id)?;
    let actor = actor(&caller)?;
    state
        .store
        .run(move |store| Ok(crate::service::allowlist_remove(store, id, &actor)?))
        .await?;
    tracing::info!(policy = id, actor = %caller.name, "allowlist policy removed through the API");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/remarks` (key remarks with the key masked).
pub async fn remark_list(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    params.only(&[])?;
    let remarks = state.store.run(|store| Ok(crate::service::remark_list(store)?)).await?;
    Ok(Json(json!(remarks)))
}

fn remark_kind(text: &str) -> Result<RemarkKind, ApiError> {
    RemarkKind::parse(text.trim())
        .ok_or_else(|| ApiError::bad_request(format!("kind: unknown kind {text:?} (expected key or ip)")))
}

/// `PUT /api/v1/remarks` `{"kind", "value", "remark"}`: the remark, key masked.
pub async fn remark_set(
    Operator(caller): Operator,
    State(state): State<ApiState>,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    body.only(&["kind", "value", "remark"])?;
    let kind = remark_kind(&body.required_string("kind")?)?;
    let value = body.required_string("value")?;
    let text = body.required_string("remark")?;
    let actor = actor(&caller)?;
    let mut remark = state
        .store
        .run(move |store| {
            let value = match kind {
                RemarkKind::Key => resolve_key(store, "value", &value)?,
                RemarkKind::Ip => value,
            };
            Ok(crate::service::remark_set(store, kind, &value, &text, &actor)?)
        })
        .await?;
    if remark.kind == RemarkKind::Key {
        remark.value = mask_access_key(&remark.value);
    }
    tracing::info!(kind = remark.kind.as_str(), actor = %caller.name, "remark set through the API");
    Ok(Json(json!(remark)))
}

/// `DELETE /api/v1/remarks?kind=&value=`: 204.
pub async fn remark_remove(
    Operator(caller): Operator,
    State(state): State<ApiState>,
    params: Params,
) -> Result<StatusCode, ApiError> {
    params.only(&["kind", "value"])?;
    let kind = remark_kind(
        &params
            .text("kind")
            .ok_or_else(|| ApiError::bad_request("kind: required"))?,
    )?;
    let value = params
        .text("value")
        .ok_or_else(|| ApiError::bad_request("value: required"))?;
    let actor = actor(&caller)?;
    state
        .store
        .run(move |store| {
            let value = match kind {
                RemarkKind::Key => resolve_key(store, "value", &value)?,
                RemarkKind::Ip => value,
            };
            Ok(crate::service::remark_remove(store, kind, &value, &actor)?)
        })
        .await?;
    tracing::info!(kind = kind.as_str(), actor = %caller.name, "remark removed through the API");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/assets`.
pub async fn asset_list(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    params.only(&[])?;
    let list = state.store.run(|store| Ok(crate::service::asset_list(store)?)).await?;
    Ok(Json(json!(list)))
}

/// `POST /api/v1/assets` `{"cidr", "name"}`: 201 with the asset.
pub async fn asset_add(
    Operator(caller): Operator,
    State(state): State<ApiState>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    body.only(&["cidr", "name"])?;
    let cidr = body.required_string("cidr")?;
    let name = body.required_string("name")?;
    let actor = actor(&caller)?;
    let asset = state
        .store
        .run(move |store| Ok(crate::service::asset_add(store, &cidr, &name, &actor)?))
        .await?;
    tracing::info!(cidr = %asset.cidr, actor = %caller.name, "asset added through the API");
    Ok((StatusCode::CREATED, Json(json!(asset))).into_response())
}

/// `GET /api/v1/changes?subject=&id=&actor=&limit=`: the change log (who
/// added or removed a policy, set a remark, added an asset), most recent first.
pub async fn change_list(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    params.only(&["subject", "id", "actor", "limit"])?;
    let subject = params
        .choice("subject", &["policy", "remark", "asset", "rules"])?
        .and_then(|text| Subject::parse(&text));
    let subject_id = params.text("id").map(|text| parse_id("a subject", &text)).transpose()?;
    let filter = ChangeFilter {
        subject,
        subject_id,
        actor: params.text("actor"),
        limit: params.integer("limit", 100, 1..=1000)?,
    };
    let changes = state
        .store
        .run(move |store| Ok(crate::service::list_changes(store, &filter)?))
        .await?;
    Ok(Json(json!(changes)))
}

/// A key as given, or the one stored key a masked form stands for. `field`
/// names the request field in errors; the full key never appears in them.
pub fn resolve_key(store: &Store, field: &str, text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    let Some((head, tail)) = text.split_once(MASK) else {
        return Ok(text.to_string());
    };
    let (head, tail) = (format!("{}%", like_escape(head)), format!("%{}", like_escape(tail)));
    let mut candidates = store
        .with_db(|db| {
            let mut keys: Vec<String> = Vec::new();
            for sql in [
                "SELECT DISTINCT access_key_id FROM alarms WHERE access_key_id LIKE ?1 ESCAPE '\\' \
                 AND access_key_id LIKE ?2 ESCAPE '\\'",
                "SELECT value FROM remarks WHERE kind = 'key' AND value LIKE ?1 ESCAPE '\\' AND value LIKE ?2 ESCAPE '\\'",
                "SELECT DISTINCT access_key FROM allowlist WHERE access_key LIKE ?1 ESCAPE '\\' \
                 AND access_key LIKE ?2 ESCAPE '\\'",
            ] {
                keys.extend(db.query_all(sql, crate::db_params![&head, &tail], |row| crate::db::get::<String>(row, 0))?);
            }
            Ok(keys)
        })
        .map_err(|error| ApiError::internal("looking up a masked key", error))?;
    candidates.retain(|key| mask_access_key(key) == text);
    candidates.sort();
    candidates.dedup();
    match candidates.len() {
        1 => Ok(candidates.remove(0)),
        0 => Err(ApiError::bad_request(format!(
            "{field}: {text:?} is masked and matches no access key in the store; give the full key"
        ))),
        count => Err(ApiError::conflict(format!(
            "{field}: {text:?} matches {count} different access keys; give the full key"
        ))),
    }
}

fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
