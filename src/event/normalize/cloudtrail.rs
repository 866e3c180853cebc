//! AWS CloudTrail record → `AuditEvent`.
//!
//! Field facts: reference/formats.md "AWS — CloudTrail record". Keys are read
//! case-insensitively when a pipeline has lower-cased them; `eventTime` falls
//! back to `@timestamp`, then Panther's `p_event_time`, then the envelope.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value};

use super::{NormalizeContext, NormalizeError, required_text, resolve_time, synthetic_event_id};
use crate::event::json::{Json, JsonObject};
use crate::event::lenient::{Obj, expand_json_fields, source_address, text_of};
use crate::event::model::{
    AccessKey, AuditEvent, CallMethod, Outcome, OutcomeResult, Principal, PrincipalKind, Provider, Raw, Resource,
    TimeSource,
};

/// Fields that some shippers send as JSON inside a string.
pub(super) const JSON_FIELDS: &[&str] = &[
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "serviceEventDetails",
    "resources",
];

/// Parse the record's JSON-inside-string fields in place.
pub(super) fn expand(record: &mut Map<String, Value>) {
    expand_json_fields(record, JSON_FIELDS);
}

pub(super) fn normalize(
    mut record: Map<String, Value>,
    context: &NormalizeContext,
    envelope_time: Option<DateTime<Utc>>,
) -> Result<AuditEvent, NormalizeError> {
    expand(&mut record);
    let mut event = read(JsonObject::Tree(&record), Some(&record), context, envelope_time)?;
    event.raw = Raw::from_value(Value::Object(record));
    Ok(event)
}

/// Read an expanded record; `tree` (when the record is one) gives a record
/// without an id its synthetic one, else the id is left empty.
pub(super) fn read(
    record: JsonObject<'_>,
    tree: Option<&Map<String, Value>>,
    context: &NormalizeContext,
    envelope_time: Option<DateTime<Utc>>,
) -> Result<AuditEvent, NormalizeError> {
    let lower_cased = !record.contains_key("eventName") && record.contains_key("eventname");
    let obj = Obj::with_case_insensitive(record, lower_cased);
    let provider = Provider::Aws;
    let utc = FixedOffset::east_opt(0).expect("zero offset");

    let action = required_text(provider, "eventName", obj.get("eventName"))?;
    let (time, time_source) = resolve_time(
        obj.get("eventTime"),
        &[
            (TimeSource::Timestamp, obj.get("@timestamp"), utc),
            (TimeSource::EnrichmentTime, obj.get("p_event_time"), utc),
        ],
        utc,
        envelope_time,
        context,
    );

    let event_source = obj.text("eventSource");
    let service = event_source
        .as_deref()
        .map(|source| source.split('.').next().unwrap_or(source).to_ascii_lowercase())
        .unwrap_or_default();

    let identity = obj.obj("userIdentity");
    // The identity's members, walked once (`Obj::pick`).
    let [
        identity_type,
        arn,
        user_name,
        principal_id,
        access_key_id,
        identity_account,
        invoked_by,
        session,
    ] = identity
        .map(|identity| {
            identity.pick([
                "type",
                "arn",
                "userName",
                "principalId",
                "accessKeyId",
                "accountId",
                "invokedBy",
                "sessionContext",
            ])
        })
        .unwrap_or_default();
    let string = |value: Option<Json<'_>>| value.and_then(text_of).map(Cow::into_owned);
    let identity_type = identity_type.and_then(text_of);
    let session = session.and_then(|session| identity.and_then(|identity| identity.child(session)));
    let kind = match identity_type.as_deref() {
        Some("Root") => PrincipalKind::Root,
        Some("IAMUser") => PrincipalKind::User,
        Some("AssumedRole") => PrincipalKind::AssumedRole,
        Some("FederatedUser" | "SAMLUser" | "WebIdentityUser" | "IdentityCenterUser") => PrincipalKind::Federated,
        Some("AWSService") => PrincipalKind::Service,
        _ => PrincipalKind::Unknown,
    };
    let arn = string(arn);
    let name = string(user_name).or_else(|| match kind {
        // `arn:aws:sts::123:assumed-role/Role/session` → `Role/session`.
        PrincipalKind::AssumedRole | PrincipalKind::Federated => arn.as_deref().and_then(arn_resource_name),
        PrincipalKind::Root => Some("root".to_string()),
        PrincipalKind::Service => string(invoked_by),
        _ => None,
    });
    let principal = Principal {
        kind,
        id: string(principal_id),
        name,
        arn,
    };

    let access_key = string(access_key_id).map(|id| AccessKey {
        temporary: id.starts_with("ASIA") || matches!(kind, PrincipalKind::AssumedRole | PrincipalKind::Federated),
        id,
    });

    let account_id = string(identity_account).or_else(|| obj.string("recipientAccountId"));

    let user_agent = obj.string("userAgent");
    let event_type = obj.text("eventType");
    let from_console = obj.boolean("sessionCredentialFromConsole") == Some(true)
        || matches!(
            user_agent.as_deref(),
            Some("console.amazonaws.com" | "signin.amazonaws.com")
        );
    let call_method = match event_type.as_deref() {
        Some("AwsConsoleAction" | "AwsConsoleSignIn") => CallMethod::Console,
        Some("AwsServiceEvent") => CallMethod::System,
        _ if kind == PrincipalKind::Service => CallMethod::System,
        _ if from_console => CallMethod::Console,
        Some("AwsApiCall") => CallMethod::Api,
        _ => CallMethod::Other,
    };

    let error_code = obj.string("errorCode");
    let console_login_failed = obj
        .obj("responseElements")
        .and_then(|response| response.text("ConsoleLogin"))
        .is_some_and(|result| result.eq_ignore_ascii_case("Failure"));
    let outcome = Outcome {
        result: if error_code.is_some() || console_login_failed {
            OutcomeResult::Failure
        } else {
            OutcomeResult::Success
        },
        error_message: obj.string("errorMessage"),
        error_code,
    };

    let mut resource = Resource::default();
    if let Some(resources) = obj.get("resources").and_then(Json::as_array) {
        for item in resources {
            if let Some(item) = item.as_object() {
                let item = Obj::with_case_insensitive(item, true);
                if resource.resource_type.is_none() {
                    resource.resource_type = item.string("type");
                }
                if let Some(name) = item.string("ARN") {
                    resource.names.push(name);
                }
            }
        }
    }

    let mfa = session
        .and_then(|session| session.obj("attributes"))
        .and_then(|attributes| attributes.boolean("mfaAuthenticated"))
        .or_else(|| {
            obj.obj("additionalEventData")
                .and_then(|data| data.text("MFAUsed"))
                .map(|used| used.eq_ignore_ascii_case("yes"))
        });

    let event_id = obj
        .string("eventID")
        .or_else(|| tree.map(synthetic_event_id))
        .unwrap_or_default();
    let request_id = obj.string("requestID");
    let source = source_address(obj.text("sourceIPAddress"));
    let region = obj.string("awsRegion");
    let read_only = obj.boolean("readOnly");

    Ok(AuditEvent {
        provider,
        event_id,
        request_id,
        time,
        time_source,
        account_id,
        account_name: None,
        principal,
        access_key,
        source,
        platform_source: None,
        user_agent,
        service,
        action,
        operations: Vec::new(),
        region,
        call_method,
        outcome,
        read_only,
        resource,
        mfa,
        degraded: None,
        raw: Raw::default(),
        origin: Default::default(),
    })
}

/// The name part of an ARN's resource: `arn:aws:sts::1:assumed-role/Role/session`
/// → `Role/session`; `arn:aws:sts::1:federated-user/bob` → `bob`.
fn arn_resource_name(arn: &str) -> Option<String> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let (_, name) = resource.split_once('/')?;
    (!name.is_empty()).then(|| name.to_string())
}
