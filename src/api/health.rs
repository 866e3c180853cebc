//! Health, readiness, Prometheus metrics and `/api/v1/me`.
//!
//! `/healthz` says the process answers; `/readyz` says the pipeline's engine
//! thread runs, the daemon is not stopping, and the store answers a query.
//! Both are unauthenticated (load balancers and probes); nothing else is.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use super::auth::Viewer;
use super::error::ApiError;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<ApiState>) -> Response {
    let pipeline = state.daemon.engine_alive.load(Ordering::SeqCst);
    let stopping = state.shutting_down.load(Ordering::SeqCst);
    let store = state
        .store
        .run(|store| {
            // A query on either backend: the store answers.
            store
                .counts()
                .map_err(|error| ApiError::internal("the readiness query", error))
        })
        .await;
    let ready = pipeline && !stopping && store.is_ok();
    let body = json!({
        "ready": ready,
        "pipeline": if pipeline { "running" } else { "stopped" },
        "stopping": stopping,
        "store": if store.is_ok() { "ok" } else { "failing" },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus text exposition: ingestion, pipeline, store, Kafka and API metrics.
pub async fn metrics(Viewer(_): Viewer, State(state): State<ApiState>) -> Response {
    // The allowlist gauges come from the store (policies change through any
    // connection); a store that cannot answer leaves them as they were.
    if let Ok(policies) = state
        .store
        .run(|store| Ok(crate::service::allowlist_list(store)?))
        .await
    {
        let allowlist = &state.daemon.metrics.allowlist;
        allowlist.policies.clear();
        let mut high_hits = 0u64;
        for view in &policies {
            let labels = crate::metrics::PolicyLabels {
                state: view.state.to_string(),
                broad: view.policy.broad.is_some().to_string(),
            };
            allowlist.policies.get_or_create(&labels).inc();
            high_hits += view.policy.high_hits;
        }
        allowlist.high_hits.set(i64::try_from(high_hits).unwrap_or(i64::MAX));
    }
    if let Ok(status) = state.daemon.reload_status.lock() {
        state.daemon.metrics.rules.sync(
            status.rules,
            status.reloads,
            status.failures,
            status.last_error.is_some(),
        );
    }
    let text = state.daemon.metrics.render();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The caller's token name and role.
pub async fn me(Viewer(caller): Viewer, State(state): State<ApiState>) -> Json<Value> {
    Json(json!({"name": caller.name, "role": caller.role, "timezone": state.settings.api.timezone.name()}))
}
