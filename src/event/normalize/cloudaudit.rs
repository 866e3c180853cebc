//! Tencent Cloud CloudAudit event → `AuditEvent`.
//!
//! Field facts: reference/formats.md "Tencent Cloud — CloudAudit event".
//! `eventTime` is epoch seconds or a zone-less `YYYY-MM-DD HH:MM:SS` read in
//! the configured offset (UTC+8 by default). `errorCode` 0 is success, even
//! when `errorMessage` says "permission verify". Items of a LookUpEvents
//! response without the raw event are read from their PascalCase summary.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{NormalizeContext, NormalizeError, required_text, resolve_time, synthetic_event_id};
use crate::event::lenient::{Obj, expand_json_fields, expand_json_string, source_address, text_of};
use crate::event::model::{
    AccessKey, AuditEvent, CallMethod, Outcome, OutcomeResult, Principal, PrincipalKind, Provider, Resource,
};

const JSON_FIELDS: &[&str] = &["requestParameters", "responseElements", "resources", "userIdentity"];

pub(super) fn normalize(
    mut record: Map<String, Value>,
    context: &NormalizeContext,
    envelope_time: Option<DateTime<Utc>>,
) -> Result<AuditEvent, NormalizeError> {
    if !record.contains_key("eventName") && record.contains_key("EventName") {
        return normalize_summary(record, context, envelope_time);
    }
    expand_json_fields(&mut record, JSON_FIELDS);
    if let Some(Value::Object(identity)) = record.get_mut("userIdentity")
        && let Some(session) = identity.get_mut("sessionContext")
    {
        expand_json_string(session);
    }
    let obj = Obj::new(&record);
    let provider = Provider::Tencent;

    let action = required_text(provider, "eventName", obj.get("eventName"))?;
    let (time, time_source) = resolve_time(
        obj.get("eventTime"),
        &[],
        context.naive_time_offset,
        envelope_time,
        context,
    );

    let service = obj
        .text("resourceType")
        .map(|resource_type| resource_type.to_ascii_lowercase())
        .or_else(|| {
            obj.text("eventSource")
                .and_then(|source| source.split('.').next().map(str::to_ascii_lowercase))
        })
        .unwrap_or_default();

    let identity = obj.obj("userIdentity");
    let session = identity.and_then(|identity| identity.obj("sessionContext"));
    let account_id = identity.and_then(|identity| identity.string("accountId"));
    let principal_id = identity.and_then(|identity| identity.string("principalId"));
    let user_name = identity.and_then(|identity| identity.string("userName"));
    let identity_type = identity.and_then(|identity| identity.text("type"));
    let role_name = identity
        .and_then(|identity| identity.string("roleName"))
        .or_else(|| session.and_then(|session| session.string("roleName")));
    let kind = principal_kind(
        identity_type.as_deref(),
        user_name.as_deref(),
        principal_id.as_deref(),
        account_id.as_deref(),
        role_name.is_some(),
        identity.is_some(),
    );
    let principal = Principal {
        kind,
        id: principal_id,
        name: user_name.or(role_name),
        arn: identity.and_then(|identity| identity.string("arn")),
    };
    let access_key = identity
        .and_then(|identity| identity.string("secretId"))
        .map(|id| AccessKey {
            temporary: matches!(kind, PrincipalKind::AssumedRole | PrincipalKind::Federated),
            id,
        });

    let call_method = match obj.text("eventType").as_deref() {
        Some("ConsoleCall" | "ConsoleLogin") => CallMethod::Console,
        Some("ApiCall") => CallMethod::Api,
        Some("SystemCall" | "ServiceCall") => CallMethod::System,
        _ => CallMethod::Other,
    };

    let outcome = outcome(&obj);
    let read_only = obj.text("actionType").and_then(|action_type| {
        if action_type.eq_ignore_ascii_case("read") {
            Some(true)
        } else if action_type.eq_ignore_ascii_case("write") {
            Some(false)
        } else {
            None
        }
    });

    let mut resource = Resource {
        resource_type: obj.string("resourceType"),
        names: Vec::new(),
    };
    if let Some(name) = obj.string("resourceName") {
        resource.names.push(name);
    }
    if let Some(Value::Array(items)) = obj.get("resources") {
        for item in items {
            let name = match item {
                Value::Object(map) => Obj::new(map)
                    .string("resourceName")
                    .or_else(|| Obj::new(map).string("ResourceName")),
                other => text_of(other).map(|text| text.into_owned()),
            };
            if let Some(name) = name.filter(|name| name != "*" && !resource.names.contains(name)) {
                resource.names.push(name);
            }
        }
    }

    let mfa = session.and_then(|session| session.boolean("mfa").or_else(|| session.boolean("mfaAuthenticated")));
    let event_id = obj.string("eventID").unwrap_or_else(|| synthetic_event_id(&record));
    let request_id = obj.string("requestID");
    let source = source_address(obj.text("sourceIPAddress"));
    let user_agent = obj.string("userAgent");
    let region = obj.string("eventRegion");

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
        raw: Value::Object(record),
        origin: Default::default(),
    })
}

/// Root: `type: Root`, `userName: root`, or the principal is the account itself.
fn principal_kind(
    identity_type: Option<&str>,
    user_name: Option<&str>,
    principal_id: Option<&str>,
    account_id: Option<&str>,
    has_role: bool,
    has_identity: bool,
) -> PrincipalKind {
    let lower = identity_type.map(str::to_ascii_lowercase);
    match lower.as_deref() {
        Some("root") => return PrincipalKind::Root,
        Some(kind) if kind.contains("federat") || kind.contains("saml") || kind.contains("oidc") => {
            return PrincipalKind::Federated;
        }
        Some(kind) if kind.contains("role") || kind.contains("assumed") => {
            return PrincipalKind::AssumedRole;
        }
        Some(kind) if kind.contains("service") => return PrincipalKind::Service,
        _ => {}
    }
    if user_name.is_some_and(|name| name.eq_ignore_ascii_case("root")) {
        return PrincipalKind::Root;
    }
    if principal_id.is_some() && principal_id == account_id {
        return PrincipalKind::Root;
    }
    if has_role {
        return PrincipalKind::AssumedRole;
    }
    match lower.as_deref() {
        Some("camuser" | "subuser" | "subaccount" | "cam_user" | "user") => PrincipalKind::User,
        _ if has_identity && principal_id.is_some() => PrincipalKind::User,
        _ => PrincipalKind::Unknown,
    }
}

/// `errorCode` 0 / "0" / empty is success; `apiErrorCode` can still say failure.
fn outcome(obj: &Obj<'_>) -> Outcome {
    let is_error = |code: &str| !(code.is_empty() || code == "0" || code.eq_ignore_ascii_case("success"));
    let error_code = obj.text("errorCode").filter(|code| is_error(code));
    let api_error_code = obj.text("apiErrorCode").filter(|code| is_error(code));
    match error_code.or(api_error_code) {
        Some(code) => Outcome {
            result: OutcomeResult::Failure,
            error_code: Some(code.into_owned()),
            error_message: obj.string("apiErrorMessage").or_else(|| obj.string("errorMessage")),
        },
        None => Outcome::default(),
    }
}

/// A LookUpEvents item without `CloudAuditEvent`: read its summary fields.
fn normalize_summary(
    record: Map<String, Value>,
    context: &NormalizeContext,
    envelope_time: Option<DateTime<Utc>>,
) -> Result<AuditEvent, NormalizeError> {
    let obj = Obj::new(&record);
    let provider = Provider::Tencent;
    let action = required_text(provider, "EventName", obj.get("EventName"))?;
    let (time, time_source) = resolve_time(
        obj.get("EventTime"),
        &[],
        context.naive_time_offset,
        envelope_time,
        context,
    );
    let service = obj
        .text("EventSource")
        .and_then(|source| source.split('.').next().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let user_name = obj.string("Username");
    let kind = if user_name
        .as_deref()
        .is_some_and(|name| name.eq_ignore_ascii_case("root"))
    {
        PrincipalKind::Root
    } else if user_name.is_some() {
        PrincipalKind::User
    } else {
        PrincipalKind::Unknown
    };
    let outcome = match obj.text("ErrorCode").filter(|code| code != "0") {
        Some(code) => Outcome {
            result: OutcomeResult::Failure,
            error_code: Some(code.into_owned()),
            error_message: None,
        },
        None => Outcome::default(),
    };
    let event_id = obj.string("EventId").unwrap_or_else(|| synthetic_event_id(&record));
    Ok(AuditEvent {
        provider,
        event_id,
        request_id: obj.string("RequestID"),
        time,
        time_source,
        account_id: obj.string("AccountID"),
        account_name: None,
        principal: Principal {
            kind,
            id: None,
            name: user_name,
            arn: None,
        },
        access_key: obj.string("SecretId").map(|id| AccessKey { id, temporary: false }),
        source: source_address(obj.text("SourceIPAddress")),
        user_agent: None,
        service,
        action,
        operations: Vec::new(),
        region: obj.string("EventRegion").or_else(|| obj.string("ResourceRegion")),
        call_method: CallMethod::Other,
        outcome,
        read_only: None,
        resource: Resource {
            resource_type: obj.string("ResourceTypeCn"),
            names: Vec::new(),
        },
        mfa: None,
        raw: Value::Object(record),
        origin: Default::default(),
    })
}
