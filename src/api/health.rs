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
            store
                .connection()
                .query_row("SELECT COUNT(*) FROM alarms", [], |row| row.get::<_, i64>(0))
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
    let text = state.daemon.metrics.render();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The caller's token name and role.
pub async fn me(Viewer(caller): Viewer) -> Json<Value> {
    Json(json!({"name": caller.name, "role": caller.role}))
}
