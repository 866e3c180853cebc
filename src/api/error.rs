//! The API's one error shape, and the request parsers that produce it.
//!
//! Every 4xx and 5xx answer is `{"error": {"status", "code", "message"}}`,
//! and the message names the parameter or body field that is wrong. Query
//! strings, paths and JSON bodies are parsed here by hand (not by serde
//! derive) precisely so that every complaint can name its field; unknown
//! parameters and fields are errors, not silently ignored.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::alarm::allowlist::AllowlistError;
use crate::alarm::assets::AssetsError;
use crate::alarm::store::StoreError;
use crate::error::AppError;
use crate::mask::mask_recognisable_keys;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable, machine-readable name (`bad_request`, `not_found` …).
    pub code: &'static str,
    /// What is wrong, naming the parameter or field.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code_of(status),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// A server-side failure: logged in full, answered with a generic message.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "api: {context}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{context} failed; see the daemon's log"),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {"status": self.status.as_u16(), "code": self.code, "message": self.message}})
    }
}

/// The `code` of a status.
pub fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::NOT_IMPLEMENTED => "not_implemented",
        status if status.is_server_error() => "internal",
        _ => "error",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"trailwarden\""),
            );
        }
        response
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> ApiError {
        match error {
            AppError::AlarmNotFound(id) | AppError::Store(StoreError::AlarmNotFound(id)) => {
                ApiError::not_found(format!("id: alarm {id} not found"))
            }
            AppError::Store(StoreError::Workflow(message)) => ApiError::conflict(message),
            // A feature the PostgreSQL store does not have yet: said as it is.
            AppError::Store(error @ StoreError::Unsupported(_)) => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, error.to_string())
            }
            AppError::Allowlist(error) => allowlist_error(error),
            AppError::Assets(error) => assets_error(error),
            AppError::Usage(message) => ApiError::bad_request(message),
            AppError::Forbidden(message) => ApiError::new(StatusCode::FORBIDDEN, message),
            other => ApiError::internal("the store", other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::from(AppError::Store(error))
    }
}

/// The JSON field a CLI flag of `allowlist add` corresponds to.
fn allowlist_field(flag: &str) -> &str {
    match flag {
        "--method" => "call_method",
        "--error-code" => "error_code",
        other => other.trim_start_matches("--"),
    }
}

fn allowlist_error(error: AllowlistError) -> ApiError {
    match error {
        AllowlistError::InvalidField { field, value, reason } => ApiError::bad_request(format!(
            "{}: {:?}: {reason}",
            allowlist_field(field),
            mask_recognisable_keys(&value)
        )),
        AllowlistError::MatchesEverything => ApiError::bad_request(
            "body: at least one of key, ip, api, operation, call_method, error_code or rule is required \
             (a policy with none would allow everything)",
        ),
        AllowlistError::Empty { field } => {
            ApiError::bad_request(format!("{}: must not be empty", allowlist_field(field)))
        }
        AllowlistError::NotFound(id) => ApiError::not_found(format!("id: allowlist policy {id} not found")),
        AllowlistError::Broad { reasons } => ApiError::bad_request(format!(
            "body: the policy is broad ({}); narrow it, or send \"allow_broad\": true with an admin token \
             (the override is recorded and notified)",
            reasons
                .iter()
                .map(|reason| reason
                    .replace("--method", "call_method")
                    .replace("--error-code", "error_code")
                    .replace("--", ""))
                .collect::<Vec<_>>()
                .join("; ")
        )),
        other => ApiError::internal("the allowlist", other),
    }
}

fn assets_error(error: AssetsError) -> ApiError {
    match error {
        error @ (AssetsError::RemarkTooLong { .. } | AssetsError::EmptyRemark | AssetsError::RemarkControl { .. }) => {
            ApiError::bad_request(format!("remark: {error}"))
        }
        AssetsError::BadTarget { value, reason } => {
            ApiError::bad_request(format!("value: {:?}: {reason}", mask_recognisable_keys(&value)))
        }
        AssetsError::NoRemark { kind, value } => {
            let value = if kind == "key" {
                crate::mask::mask_access_key(&value)
            } else {
                value
            };
            ApiError::not_found(format!("value: no remark on {kind} {value:?}"))
        }
        error @ AssetsError::BadCidr { .. } => ApiError::bad_request(format!("cidr: {error}")),
        error @ AssetsError::EmptyName { .. } => ApiError::bad_request(format!("name: {error}")),
        other => ApiError::internal("the remarks / assets tables", other),
    }
}

/// Query parameters, checked against the names a route accepts.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Params, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|query| query.0)
            .map_err(|_| ApiError::bad_request(format!("query: cannot decode {query:?}")))?;
        Ok(Params { pairs })
    }
}

impl Params {
    /// Fail on a parameter not in `allowed`, or given twice.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for (index, (name, _)) in self.pairs.iter().enumerate() {
            if !allowed.contains(&name.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "{name}: unknown parameter (expected {})",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                )));
            }
            if self.pairs[..index].iter().any(|(other, _)| other == name) {
                return Err(ApiError::bad_request(format!("{name}: given more than once")));
            }
        }
        Ok(())
    }

    /// A parameter's text; an empty value counts as absent.
    pub fn text(&self, name: &str) -> Option<String> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim().to_string())
            .filter(|value| !value.is_empty())
    }

    /// An integer parameter within `range`, else `default`.
    pub fn integer(&self, name: &str, default: u32, range: std::ops::RangeInclusive<u32>) -> Result<u32, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(default);
        };
        text.parse::<u32>()
            .ok()
            .filter(|value| range.contains(value))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name}: {text:?} is not an integer from {} to {}",
                    range.start(),
                    range.end()
                ))
            })
    }

    /// A time parameter: RFC 3339, a date, or a duration ago (`24h`).
    pub fn time(&self, name: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        crate::service::parse_time_arg(name, &text, chrono::Utc::now())
            .map(Some)
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "{name}: {text:?} is not a time; use RFC 3339 (2026-03-02T10:00:00Z), a date (2026-03-02) \
                     or a duration ago (24h, 7d)"
                ))
            })
    }

    /// One of `choices`, else `None` when absent.
    pub fn choice(&self, name: &str, choices: &[&str]) -> Result<Option<String>, ApiError> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        let lower = text.to_ascii_lowercase();
        if choices.contains(&lower.as_str()) {
            Ok(Some(lower))
        } else {
            Err(ApiError::bad_request(format!(
                "{name}: unknown {name} {text:?} (expected {})",
                choices.join(", ")
            )))
        }
    }
}

/// A path id (`/alarms/{id}`): a positive integer, named in errors.
pub fn parse_id(what: &str, text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("id: {text:?} is not {what} id (a positive integer)")))
}

/// A JSON object body: content type and size checked, fields read by name.
#[derive(Debug)]
pub struct JsonBody {
    fields: Map<String, Value>,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<JsonBody, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if essence != "application/json" {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content-type: expected application/json, got {}",
                    if content_type.is_empty() {
                        "none".to_string()
                    } else {
                        format!("{content_type:?}")
                    }
                ),
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(status, "body: larger than the limit (`api.body_limit`)")
                } else {
                    ApiError::new(status, format!("body: {}", rejection.body_text()))
                }
            })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|error| ApiError::bad_request(format!("body: malformed JSON: {error}")))?;
        match value {
            Value::Object(fields) => Ok(JsonBody { fields }),
            _ => Err(ApiError::bad_request("body: expected a JSON object")),
        }
    }
}

impl JsonBody {
    /// Fail on a field not in `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.fields.keys().find(|name| !allowed.contains(&name.as_str())) {
            Some(name) => Err(ApiError::bad_request(format!(
                "{name}: unknown field (expected {})",
                allowed.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// An optional string field (null counts as absent).
    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(ApiError::bad_request(format!(
                "{name}: expected a string, got {}",
                kind_of(other)
            ))),
        }
    }

    /// A required string field.
    pub fn required_string(&self, name: &str) -> Result<String, ApiError> {
        self.string(name)?
            .ok_or_else(|| ApiError::bad_request(format!("{name}: required")))
    }

    /// Whether the body has the field at all.
    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    /// An optional boolean field (null counts as absent).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(other) => Err(ApiError::bad_request(format!(
                "{name}: expected true or false, got {}",
                kind_of(other)
            ))),
        }
    }

    /// An optional positive integer field (ids).
    pub fn id(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => number
                .as_i64()
                .filter(|id| *id > 0)
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("{name}: {number} is not an id (a positive integer)"))),
            Some(other) => Err(ApiError::bad_request(format!(
                "{name}: expected an integer, got {}",
                kind_of(other)
            ))),
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
