//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`.

use axum::Json;
use serde_json::{Value, json};

use super::auth::Viewer;

/// `GET /api/v1/openapi.json`.
pub async fn document(Viewer(_): Viewer) -> Json<Value> {
    Json(spec())
}

pub fn spec() -> Value {
    json!({"openapi": "3.1.0"})
}
