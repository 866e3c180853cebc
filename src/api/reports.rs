//! Read-only reports: the god view (hourly activity rollups), key-operation
//! traces and dead letters — the same data, masked the same way, as
//! `trailwarden activity --format json`, `traces --format jsonl` and
//! `dead-letters --format json` print.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::ApiState;
use super::auth::Viewer;
use super::error::{ApiError, Params};
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
            let mut report = crate::app::activity_report(store, &query)?;
            crate::app::mask_activity_report(&mut report);
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
            let mut traces = crate::app::list_traces(store, &filter)?;
            crate::app::mask_traces(&mut traces);
            Ok(traces)
        })
        .await?;
    Ok(Json(json!(traces)))
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
        .run(move |store| Ok(crate::app::list_dead_letters(store, limit)?))
        .await?;
    Ok(Json(json!(letters)))
}
