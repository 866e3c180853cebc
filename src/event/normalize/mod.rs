//! Normalize: one recognised record → one `AuditEvent`.
//!
//! Each cloud has its own module; this one holds what they share: the
//! context (fallback time, zone of naive timestamps), the error type, and the
//! rules for ids and times that apply to every cloud.

mod cloudaudit;
mod cloudtrail;
mod cts;

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::decode::Candidate;
use super::json::{Json, JsonObject};
use super::model::{AuditEvent, Provider};

/// Settings and per-source facts the normalizers need.
#[derive(Clone, Copy, Debug)]
pub struct NormalizeContext {
    /// Last-resort event time for records that carry none anywhere: the time
    /// the source delivered them (file mtime, Kafka timestamp, read time).
    pub ingest_time: DateTime<Utc>,
    /// Zone of Tencent `"YYYY-MM-DD HH:MM:SS"` times, which carry none
    /// (the console shows UTC+8).
    pub naive_time_offset: FixedOffset,
}

impl NormalizeContext {
    pub fn new(ingest_time: DateTime<Utc>) -> NormalizeContext {
        NormalizeContext {
            ingest_time,
            naive_time_offset: FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset"),
        }
    }
}

/// Why a recognised record still could not become an event.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NormalizeError {
    #[error("{provider} record has no `{field}`")]
    MissingField { provider: Provider, field: &'static str },
    #[error("{provider} record: `{field}` is a JSON {found}, expected {expected}")]
    WrongType {
        provider: Provider,
        field: &'static str,
        found: &'static str,
        expected: &'static str,
    },
}

/// Normalize a decoded candidate.
pub fn normalize(candidate: Candidate, context: &NormalizeContext) -> Result<AuditEvent, NormalizeError> {
    let Candidate {
        provider,
        record,
        origin,
        envelope_time,
    } = candidate;
    let mut event = match provider {
        Provider::Aws => cloudtrail::normalize(record, context, envelope_time)?,
        Provider::Tencent => cloudaudit::normalize(record, context, envelope_time)?,
        Provider::Huawei => cts::normalize(record, context, envelope_time)?,
    };
    event.origin = origin;
    Ok(event)
}

/// How a cloud's normalizer expands a record's JSON-inside-string fields.
pub(crate) fn expander(provider: Provider) -> fn(&mut Map<String, Value>) {
    match provider {
        Provider::Aws => cloudtrail::expand,
        Provider::Tencent => cloudaudit::expand,
        Provider::Huawei => cts::expand,
    }
}

/// The JSON-inside-string fields each cloud's normalizer expands: top-level
/// keys, and (Tencent) the session context inside the identity.
pub(crate) fn json_string_fields(
    provider: Provider,
) -> (&'static [&'static str], Option<(&'static str, &'static str)>) {
    match provider {
        Provider::Aws => (cloudtrail::JSON_FIELDS, None),
        Provider::Tencent => (cloudaudit::JSON_FIELDS, Some(("userIdentity", "sessionContext"))),
        Provider::Huawei => (cts::JSON_FIELDS, None),
    }
}

/// Normalize a record read without a tree (its JSON-inside-string fields
/// already expanded in the view). `None` when the record needs its tree: a
/// record without an id (its synthetic id hashes the tree) or a LookUpEvents
/// summary item.
pub(crate) fn normalize_view(
    provider: Provider,
    record: JsonObject<'_>,
    context: &NormalizeContext,
    envelope_time: Option<DateTime<Utc>>,
) -> Option<Result<AuditEvent, NormalizeError>> {
    let result = match provider {
        Provider::Aws => cloudtrail::read(record, None, context, envelope_time),
        Provider::Tencent if cloudaudit::is_summary_item(record) => return None,
        Provider::Tencent => cloudaudit::read(record, None, context, envelope_time),
        Provider::Huawei => cts::read(record, None, context, envelope_time),
    };
    match result {
        Ok(event) if event.event_id.is_empty() => None,
        other => Some(other),
    }
}

/// A deterministic id for a record that has none: the same record always gets
/// the same id, so replays agree.
pub(crate) fn synthetic_event_id(record: &Map<String, Value>) -> String {
    let text = serde_json::to_string(record).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    format!("tw-{}", hex::encode(&digest[..12]))
}

/// The required action name, reporting a clear error when absent or not text.
pub(crate) fn required_text(
    provider: Provider,
    field: &'static str,
    value: Option<Json<'_>>,
) -> Result<String, NormalizeError> {
    match value {
        None => Err(NormalizeError::MissingField { provider, field }),
        Some(value) if value.is_null() => Err(NormalizeError::MissingField { provider, field }),
        Some(value) if value.as_object().is_some() || value.as_array().is_some() => Err(NormalizeError::WrongType {
            provider,
            field,
            found: value.type_name(),
            expected: "a string",
        }),
        Some(value) => super::lenient::text_of(value)
            .map(|text| text.into_owned())
            .ok_or(NormalizeError::MissingField { provider, field }),
    }
}

#[cfg(test)]
mod tests;

/// Pick the event time: the record's own field, else the documented
/// fallbacks in order, else the envelope's time, else the ingest time. A time
/// field that is present but unreadable (placeholders such as "redacted" are
/// common in shared samples) is treated like a missing one: the event still
/// normalizes, marked with the `TimeSource` that was used.
pub(crate) fn resolve_time(
    primary: Option<Json<'_>>,
    fallbacks: &[(super::model::TimeSource, Option<Json<'_>>, FixedOffset)],
    naive_offset: FixedOffset,
    envelope_time: Option<DateTime<Utc>>,
    context: &NormalizeContext,
) -> (DateTime<Utc>, super::model::TimeSource) {
    use super::lenient::time_of;
    use super::model::TimeSource;
    if let Some(time) = primary.and_then(|value| time_of(value, naive_offset)) {
        return (time, TimeSource::Event);
    }
    for (source, value, offset) in fallbacks {
        if let Some(time) = value.and_then(|value| time_of(value, *offset)) {
            return (time, *source);
        }
    }
    match envelope_time {
        Some(time) => (time, TimeSource::Envelope),
        None => (context.ingest_time, TimeSource::Ingest),
    }
}
