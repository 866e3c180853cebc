//! The running rule set, its embedded test results, and reloads.
//!
//! The list comes from the set the engine runs now (hot reloads swap it).
//! Test results come from running the embedded tests of the rule files on
//! disk (every rule enabled, as `trailwarden rules test` does); they are
//! cached until the next reload attempt. `POST /rules/reload` asks the
//! reloader thread (as SIGHUP does) and waits for its attempt to finish.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use super::auth::{Admin, Viewer};
use super::error::{ApiError, Params};
use crate::reload::Trigger;

/// Test results per rule id, for one reload attempt.
#[derive(Clone, Debug, Default)]
pub struct TestSummary {
    /// `ReloadStatus::attempts` when the tests ran.
    pub attempts: u64,
    /// Rule id → (passed, failed).
    pub per_rule: HashMap<String, (u64, u64)>,
    /// Why the tests could not run (rule files that do not load).
    pub error: Option<String>,
}

/// How long `POST /rules/reload` waits for the reload to finish.
const RELOAD_WAIT: Duration = Duration::from_secs(20);

/// `GET /api/v1/rules`.
pub async fn list(Viewer(_): Viewer, State(state): State<ApiState>, params: Params) -> Result<Json<Value>, ApiError> {
    params.only(&[])?;
    let status = reload_status(&state);
    let tests = test_summary(&state, status.attempts).await?;
    let rules = state.daemon.rules.load();
    let items: Vec<Value> = rules
        .rules
        .iter()
        .map(|rule| {
            let (passed, failed) = tests.per_rule.get(&rule.id).copied().unwrap_or((0, 0));
            json!({
                "id": rule.id,
                "title": rule.title,
                "level": rule.level,
                "enabled": rule.enabled,
                "tags": rule.tags,
                "description": rule.description,
                "advice": rule.remediation,
                "rationale": rule.rationale,
                "false_positives": rule.false_positives,
                "mitre": rule.mitre,
            "references": rule.references,
            "sigma": rule.sigma,
                "clouds": rule.clouds,
                "escalate": crate::rules::escalate::to_json(&rule.escalate),
                "hash": rule.hash,
                "file": rule.file.as_ref(),
                "tests": {"passed": passed, "failed": failed},
            })
        })
        .collect();
    Ok(Json(json!({
        "version": rules.version,
        "rules": items,
        "reload": status,
        "tests_error": tests.error,
    })))
}

/// `POST /api/v1/rules/reload` (admin): 200 with the reload status once the
/// attempt finished, 202 with the current one if it is still running.
pub async fn reload(Admin(caller): Admin, State(state): State<ApiState>) -> Response {
    let before = reload_status(&state).attempts;
    tracing::info!(actor = %caller.name, "rule reload requested through the API");
    if !state.daemon.reload.request(Trigger::Api(caller.name.clone())) {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "reload: the reloader has stopped").into_response();
    }
    let started = Instant::now();
    loop {
        let status = reload_status(&state);
        if status.attempts > before {
            return (StatusCode::OK, Json(json!(status))).into_response();
        }
        if started.elapsed() > RELOAD_WAIT {
            return (StatusCode::ACCEPTED, Json(json!(status))).into_response();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reload_status(state: &ApiState) -> crate::reload::ReloadStatus {
    state
        .daemon
        .reload_status
        .lock()
        .map(|status| status.clone())
        .unwrap_or_default()
}

/// The cached test results, run again after each reload attempt.
async fn test_summary(state: &ApiState, attempts: u64) -> Result<TestSummary, ApiError> {
    if let Ok(cache) = state.rule_tests.lock()
        && let Some(summary) = cache.as_ref().filter(|summary| summary.attempts == attempts)
    {
        return Ok(summary.clone());
    }
    let settings = state.settings.clone();
    let summary = tokio::task::spawn_blocking(move || {
        let mut summary = TestSummary {
            attempts,
            ..TestSummary::default()
        };
        match crate::ruleset::test_rules(&settings, None, None) {
            Ok(outcomes) => {
                for outcome in outcomes {
                    let entry = summary.per_rule.entry(outcome.rule).or_insert((0, 0));
                    if outcome.passed {
                        entry.0 += 1;
                    } else {
                        entry.1 += 1;
                    }
                }
            }
            Err(error) => summary.error = Some(error.to_string()),
        }
        summary
    })
    .await
    .map_err(|error| ApiError::internal("running the rule tests", error))?;
    if let Ok(mut cache) = state.rule_tests.lock() {
        *cache = Some(summary.clone());
    }
    Ok(summary)
}
