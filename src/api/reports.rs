//! Read-only reports: the god view (hourly activity rollups), key-operation
//! traces and dead letters — the same data, masked the same way, as
//! `trailwarden activity --format json`, `traces --format jsonl` and
//! `dead-letters --format json` print.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::ApiState;
use super::auth::{Operator, Viewer};
use super::error::{ApiError, Params, parse_id};
use crate::alarm::rollup::{ActivityQuery, TraceFilter};
use crate::event::model::OutcomeResult;

/// `GET /api/v1/activity?since=&until=&top=`.
pub async fn activity(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    params.only(&["since", "until", "top"])?;
    let query = ActivityQuery {
        since: params.time("since")?,
        until: params.time("until")?,
        top: params.integer("top", 10, 1..=1000)?,
    };
    let report = state
        .store
        .run(move |store| {
            let mut report = crate::service::activity_report(store, &query)?;
            crate::service::mask_activity_report(&mut report);
            Ok(report)
        })
        .await?;
    Ok(Json(json!(report)))
}

/// `GET /api/v1/traces?call_method=&service=&resource_type=&operator=&status=&since=&until=&limit=`.
pub async fn traces(Viewer(_): Viewer, State(state): State<ApiState>, params: Params) -> Result<Json<Value>, ApiError> {
    params.only(&[
        "call_method",
        "service",
        "resource_type",
        "operator",
        "status",
        "since",
        "until",
        "limit",
    ])?;
    let filter = TraceFilter {
        call_method: params.text("call_method"),
        service: params.text("service"),
        resource_type: params.text("resource_type"),
        operator: params.text("operator"),
        status: match params.choice("status", &["success", "failure"])?.as_deref() {
            Some("success") => Some(OutcomeResult::Success),
            Some(_) => Some(OutcomeResult::Failure),
            None => None,
        },
        since: params.time("since")?,
        until: params.time("until")?,
        limit: params.integer("limit", 100, 1..=1000)?,
    };
    let traces = state
        .store
        .run(move |store| {
            let mut traces = crate::service::list_traces(store, &filter)?;
            crate::service::mask_traces(&mut traces);
            Ok(traces)
        })
        .await?;
    Ok(Json(json!(traces)))
}

/// `GET /api/v1/events?key=&principal=&ip=&account=&action=&service=&resource=&id=&outcome=&cloud=&alarm=&since=&until=&limit=&cursor=`:
/// a page of the event store, newest first, keys masked, with the cursor of the next page.
pub async fn events(Viewer(_): Viewer, State(state): State<ApiState>, params: Params) -> Result<Json<Value>, ApiError> {
    params.only(&[
        "key",
        "principal",
        "ip",
        "account",
        "action",
        "service",
        "resource",
        "id",
        "outcome",
        "cloud",
        "alarm",
        "since",
        "until",
        "limit",
        "cursor",
    ])?;
    let filter =
        crate::alarm::events::EventFilter {
            key: params.text("key"),
            principal: params.text("principal"),
            ip: params.text("ip").as_deref().map(crate::alarm::events::IpMatch::parse),
            account: params.text("account"),
            action: params.text("action"),
            service: params.text("service"),
            resource: params.text("resource"),
            id: params.text("id"),
            outcome: match params.choice("outcome", &["success", "failure"])?.as_deref() {
                Some("success") => Some(OutcomeResult::Success),
                Some(_) => Some(OutcomeResult::Failure),
                None => None,
            },
            provider: params
                .choice("cloud", &["huawei", "tencent", "aws"])?
                .as_deref()
                .and_then(crate::event::model::Provider::parse),
            since: params.time("since")?,
            until: params.time("until")?,
            limit: params.integer("limit", 50, 1..=crate::alarm::events::MAX_LIMIT)?,
            cursor: params.text("cursor").map(|text| text.parse()).transpose().map_err(
                |error: crate::alarm::events::SearchError| ApiError::bad_request(format!("cursor: {error}")),
            )?,
            max_blocks: 0,
        };
    let alarm = params.text("alarm").map(|text| parse_id("alarm", &text)).transpose()?;
    let page = state
        .store
        .run(move |store| Ok(crate::service::search_events(store, filter, alarm)?))
        .await?;
    Ok(Json(json!(page)))
}

/// `GET /api/v1/dead-letters?limit=`: oldest first, recognisable keys masked.
pub async fn dead_letters(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    params.only(&["limit"])?;
    let limit = params.integer("limit", 100, 1..=1000)?;
    let letters = state
        .store
        .run(move |store| Ok(crate::service::list_dead_letters(store, limit)?))
        .await?;
    Ok(Json(json!(letters)))
}

/// `GET /api/v1/notifications/deliveries`: the notification outbox, newest first.
pub async fn deliveries(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    params.only(&["status", "topic", "alarm", "limit"])?;
    let status = params.choice("status", &crate::service::DELIVERY_STATUSES)?;
    let alarm_id = match params.text("alarm") {
        Some(text) => Some(text.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
            ApiError::bad_request(format!("alarm: {text:?} is not an alarm id (a positive integer)"))
        })?),
        None => None,
    };
    let filter = crate::service::DeliveryFilter {
        id: None,
        status,
        topic: params.text("topic"),
        alarm_id,
        limit: params.integer("limit", 100, 1..=1000)?,
    };
    let rows = state
        .store
        .run(move |store| {
            crate::service::list_deliveries(store, &filter)
                .map_err(|error| ApiError::internal("listing deliveries", error))
        })
        .await?;
    Ok(Json(json!(rows)))
}

/// `POST /api/v1/notifications/deliveries/{id}/resend`: queue a failed
/// delivery again, with its delivery id.
pub async fn resend(
    Operator(caller): Operator,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id("a delivery", &id)?;
    let row = state
        .store
        .run(move |store| {
            let (_, outcomes) = crate::service::resend_deliveries(store, &[id], false)
                .map_err(|error| ApiError::internal("resending a delivery", error))?;
            match outcomes.first().map(|(_, outcome)| outcome) {
                Some(crate::service::Resent::NotFailed(status)) => {
                    return Err(ApiError::conflict(format!(
                        "id: delivery {id} is {status}; only failed deliveries are resent"
                    )));
                }
                Some(crate::service::Resent::Missing) | None => {
                    return Err(ApiError::not_found(format!("id: delivery {id} not found")));
                }
                Some(crate::service::Resent::Queued) => {}
            }
            let rows = crate::service::list_deliveries(
                store,
                &crate::service::DeliveryFilter {
                    id: Some(id),
                    limit: 1,
                    ..Default::default()
                },
            )
            .map_err(|error| ApiError::internal("reading a delivery", error))?;
            Ok(rows.into_iter().next())
        })
        .await?;
    tracing::info!(actor = %caller.name, delivery = id, "notification delivery queued again");
    Ok(Json(json!(row)))
}
