//! The event side: decoding records from bytes, normalizing them into one
//! `AuditEvent`, and presenting events as JSON.

pub mod decode;
pub mod json;
pub mod lenient;
pub mod model;
pub mod normalize;
pub mod origin;
pub mod raw_paths;
pub mod tape;
pub mod window;

use serde_json::{Value, json};

use model::AuditEvent;

/// The names of the cross-cloud operations an event carries (`operations`
/// holds indexes into the rule set's catalog, which implements this).
pub trait OperationNames {
    fn operation_name(&self, index: u16) -> &str;
}

/// The normalized event as JSON (what `trailwarden normalize` prints and what
/// alarms keep as samples). `raw` is included when asked. `platform_source_ip`
/// and `degraded` appear only on the events that have them, so the output of
/// every other event keeps its shape.
pub fn event_json(event: &AuditEvent, catalog: &impl OperationNames, include_raw: bool) -> Value {
    let operations: Vec<&str> = event
        .operations
        .iter()
        .map(|index| catalog.operation_name(*index))
        .collect();
    let mut value = json!({
        "provider": event.provider,
        "event_id": event.event_id,
        "request_id": event.request_id,
        "time": event.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "time_source": event.time_source,
        "account_id": event.account_id,
        "account_name": event.account_name,
        "principal": event.principal,
        "access_key": event.access_key,
        "source_ip": event.source_ip_text(),
        "source_ip_kind": event.source_ip_kind(),
        "user_agent": event.user_agent,
        "service": event.service,
        "action": event.action,
        "operations": operations,
        "region": event.region,
        "call_method": event.call_method,
        "outcome": event.outcome,
        "read_only": event.read_only,
        "resource": event.resource,
        "mfa": event.mfa,
        "origin": event.origin,
    });
    if let Value::Object(map) = &mut value {
        if let Some(platform) = &event.platform_source {
            map.insert("platform_source_ip".to_string(), Value::String(platform.text.clone()));
        }
        if let Some(reason) = &event.degraded {
            map.insert("degraded".to_string(), Value::String(reason.clone()));
        }
        if include_raw {
            map.insert("raw".to_string(), event.raw.value().clone());
        }
    }
    value
}
