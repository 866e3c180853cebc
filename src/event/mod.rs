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

use serde_json::Value;

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
    let mut value = serde_json::to_value(EventHead::new(event, catalog)).unwrap_or(Value::Null);
    if include_raw && let Value::Object(map) = &mut value {
        map.insert("raw".to_string(), event.raw.value().clone());
    }
    value
}

/// The normalized fields of an event, borrowed, serialized in the order of
/// `event_json`'s keys (alphabetical): written straight to text without
/// building a JSON tree (alarm samples), or turned into one (`event_json`).
#[derive(serde::Serialize)]
pub struct EventHead<'a> {
    access_key: &'a Option<model::AccessKey>,
    account_id: Option<&'a str>,
    account_name: Option<&'a str>,
    action: &'a str,
    call_method: model::CallMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    degraded: Option<&'a str>,
    event_id: &'a str,
    mfa: Option<bool>,
    operations: Names<'a>,
    origin: &'a origin::Origin,
    outcome: &'a model::Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform_source_ip: Option<&'a str>,
    principal: &'a model::Principal,
    provider: model::Provider,
    read_only: Option<bool>,
    region: Option<&'a str>,
    request_id: Option<&'a str>,
    resource: &'a model::Resource,
    service: &'a str,
    source_ip: Option<&'a str>,
    source_ip_kind: model::IpKind,
    time: String,
    time_source: model::TimeSource,
    user_agent: Option<&'a str>,
}

impl<'a> EventHead<'a> {
    pub fn new(event: &'a AuditEvent, catalog: &'a dyn OperationNames) -> EventHead<'a> {
        EventHead {
            access_key: &event.access_key,
            account_id: event.account_id.as_deref(),
            account_name: event.account_name.as_deref(),
            action: &event.action,
            call_method: event.call_method,
            degraded: event.degraded.as_deref(),
            event_id: &event.event_id,
            mfa: event.mfa,
            operations: Names(&event.operations, catalog),
            origin: &event.origin,
            outcome: &event.outcome,
            platform_source_ip: event.platform_source.as_ref().map(|platform| platform.text.as_str()),
            principal: &event.principal,
            provider: event.provider,
            read_only: event.read_only,
            region: event.region.as_deref(),
            request_id: event.request_id.as_deref(),
            resource: &event.resource,
            service: &event.service,
            source_ip: event.source_ip_text(),
            source_ip_kind: event.source_ip_kind(),
            time: event.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            time_source: event.time_source,
            user_agent: event.user_agent.as_deref(),
        }
    }
}

/// An event's operations by name.
struct Names<'a>(&'a [u16], &'a dyn OperationNames);

impl serde::Serialize for Names<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|index| self.1.operation_name(*index)))
    }
}
