//! Huawei Cloud CTS trace → `AuditEvent`.
//!
//! Field facts: reference/formats.md "Huawei Cloud — Cloud Trace Service".
//! Success is judged by `trace_rating` (or the old `trace_status`), never by
//! the HTTP `code`: a documented failed `deleteEip` has code 200 and rating
//! `warning`. The rating is not an error code either: the code and message of
//! a failure are read from `response` (`code` / `message`, ECS job responses'
//! `error_code` / `fail_reason`, API error bodies' `error_code` / `error_msg`).
//! `time` is epoch milliseconds (or the very old
//! `2016/12/08 11:07:28 GMT+08:00`), falling back to `record_time`.
//! Console `login` traces carry `message.login.login_protect.status` (`on` /
//! `off`): whether the second login factor was asked, read as `mfa`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{NormalizeContext, NormalizeError, required_text, resolve_time, synthetic_event_id};
use crate::event::json::JsonObject;
use crate::event::lenient::{Obj, expand_json_fields, i64_of, source_address};
use crate::event::model::{
    AccessKey, AuditEvent, CallMethod, Outcome, OutcomeResult, Principal, PrincipalKind, Provider, Raw, Resource,
    TimeSource,
};

/// Fields that arrive as JSON inside a string. `message` holds JSON only on
/// some traces (console `login`); plain text stays as it is.
pub(super) const JSON_FIELDS: &[&str] = &["request", "response", "user", "message"];

/// The platform's own operation account. Huawei's CTS FAQ ("Why Is the user
/// Field Displayed as user_name/op_service …", cts_faq_013): when a request
/// needs more permission than the user has, the platform elevates it and the
/// trace shows `<user>/op_service`.
const OP_SERVICE: &str = "op_service";

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

/// Read an expanded trace; `tree` (when the record is one) gives a trace
/// without an id its synthetic one, else the id is left empty.
pub(super) fn read(
    record: JsonObject<'_>,
    tree: Option<&Map<String, Value>>,
    context: &NormalizeContext,
    envelope_time: Option<DateTime<Utc>>,
) -> Result<AuditEvent, NormalizeError> {
    let obj = Obj::new(record);
    let provider = Provider::Huawei;

    let action = required_text(provider, "trace_name", obj.get("trace_name"))?;
    let (time, time_source) = resolve_time(
        obj.get("time"),
        &[(
            TimeSource::RecordTime,
            obj.get("record_time"),
            context.naive_time_offset,
        )],
        context.naive_time_offset,
        envelope_time,
        context,
    );
    let service = obj
        .text("service_type")
        .map(|service| service.to_ascii_lowercase())
        .unwrap_or_default();

    let user = obj.obj("user");
    let domain = user.and_then(|user| user.obj("domain"));
    let account_id = domain
        .and_then(|domain| domain.string("id"))
        .or_else(|| user.and_then(|user| user.string("account_id")))
        .or_else(|| obj.string("domain_id"));
    let account_name = domain.and_then(|domain| domain.string("name"));
    let urn = user.and_then(|user| user.string("principal_urn"));
    let user_name = user.and_then(|user| user.string("user_name").or_else(|| user.string("name")));
    let trace_type = obj.text("trace_type");
    let kind = principal_kind(
        user,
        urn.as_deref(),
        user_name.as_deref(),
        account_name.as_deref(),
        trace_type.as_deref(),
    );
    let principal = Principal {
        kind,
        id: user.and_then(|user| user.string("principal_id").or_else(|| user.string("id"))),
        name: user_name,
        arn: urn,
    };
    let access_key = user.and_then(|user| user.string("access_key_id")).map(|id| AccessKey {
        temporary: id.starts_with("HSTA") || matches!(kind, PrincipalKind::AssumedRole | PrincipalKind::Federated),
        id,
    });

    let via_console =
        user.and_then(|user| user.get("invoked_by"))
            .is_some_and(|invoked_by| match invoked_by.as_array() {
                Some(mut items) => items.any(|item| item.as_str() == Some("service.console")),
                None => invoked_by.as_str().is_some_and(|text| text.contains("service.console")),
            });
    let call_method = match trace_type.as_deref() {
        Some("ConsoleAction") => CallMethod::Console,
        Some("SystemAction") => CallMethod::System,
        _ if via_console => CallMethod::Console,
        Some("ApiCall" | "ObsSDK" | "ObsAPI") => CallMethod::Api,
        _ => CallMethod::Other,
    };

    let rating = obj.text("trace_rating").or_else(|| obj.text("trace_status"));
    let code = obj.get("code").and_then(i64_of);
    let failed = match rating.as_deref() {
        Some(rating) if rating.eq_ignore_ascii_case("normal") => false,
        Some(rating) if rating.eq_ignore_ascii_case("warning") || rating.eq_ignore_ascii_case("incident") => true,
        _ => code.is_some_and(|code| code >= 400),
    };
    let outcome = if failed {
        let (response_code, response_message) = response_error(obj.obj("response"));
        Outcome {
            result: OutcomeResult::Failure,
            // The rating says that the call failed, not why: it is no code.
            error_code: response_code.or_else(|| {
                obj.string("code")
                    .filter(|code| code.parse::<u16>().map_or(true, |status| status >= 400))
            }),
            error_message: response_message.or_else(|| obj.string("message")),
        }
    } else {
        Outcome::default()
    };

    let mut resource = Resource {
        resource_type: obj.string("resource_type"),
        names: Vec::new(),
    };
    for key in ["resource_name", "resource_id"] {
        if let Some(name) = obj
            .text(key)
            .filter(|name| !resource.names.iter().any(|known| known == name))
        {
            resource.names.push(name.into_owned());
        }
    }

    let mfa = user
        .and_then(|user| user.obj("session_context"))
        .and_then(|session| session.obj("attributes"))
        .and_then(|attributes| attributes.boolean("mfa_authenticated"))
        .or_else(|| login_protection(&obj));

    let request_id = obj
        .text("request_id")
        .filter(|id| id != "null")
        .map(|id| id.into_owned());
    let event_id = obj
        .string("trace_id")
        .or_else(|| tree.map(synthetic_event_id))
        .unwrap_or_default();
    let region = obj
        .string("region_id")
        .or_else(|| obj.string("region"))
        .or_else(|| obj.text("endpoint").and_then(|endpoint| region_in_host(&endpoint)))
        .or_else(|| obj.text("resource_url").and_then(|url| region_in_host(&url)));
    let source = source_address(obj.text("source_ip"));
    let user_agent = obj.string("user_agent");
    let read_only = obj.boolean("read_only");

    Ok(AuditEvent {
        provider,
        event_id,
        request_id,
        time,
        time_source,
        account_id,
        account_name,
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

/// Root when the record says so; otherwise from the principal URN
/// (`iam::<account>:user:<name>`, `sts::…:assumed-agency:…`,
/// `sts::…:external-user:…`); a missing user on a system trace, or the
/// platform's `op_service` account on one, is a service.
fn principal_kind(
    user: Option<Obj<'_>>,
    urn: Option<&str>,
    user_name: Option<&str>,
    account_name: Option<&str>,
    trace_type: Option<&str>,
) -> PrincipalKind {
    let system_action = trace_type == Some("SystemAction");
    let Some(user) = user else {
        return if system_action {
            PrincipalKind::Service
        } else {
            PrincipalKind::Unknown
        };
    };
    // `<user>/op_service` (or `op_service` alone): the platform acting with
    // its own elevated account. On a system action nobody asked for the call
    // at that moment, so it is the cloud acting for itself; on a console or
    // API call the user before the slash made the request.
    let elevated_user = user_name.and_then(|name| {
        if name == OP_SERVICE {
            Some(None)
        } else {
            name.strip_suffix(OP_SERVICE)
                .and_then(|rest| rest.strip_suffix('/'))
                .map(Some)
        }
    });
    let user_name = match elevated_user {
        Some(_) if system_action => return PrincipalKind::Service,
        Some(base) => base,
        None => user_name,
    };
    if let Some(root) = user.boolean("principal_is_root_user") {
        if root {
            return PrincipalKind::Root;
        }
    } else if urn.is_none() && user_name.is_some() && user_name == account_name {
        // Without the newer fields, CTS shows the account's own operations
        // with the user name equal to the domain (account) name.
        return PrincipalKind::Root;
    }
    match urn {
        Some(urn) if urn.contains(":assumed-agency:") => PrincipalKind::AssumedRole,
        Some(urn) if urn.contains(":external-user:") => PrincipalKind::Federated,
        Some(urn) if urn.contains(":user:") => PrincipalKind::User,
        _ => match user.text("type").as_deref() {
            Some("User") => PrincipalKind::User,
            Some("AssumedAgency" | "Agency") => PrincipalKind::AssumedRole,
            Some("Root" | "Domain") => PrincipalKind::Root,
            _ if user_name.is_some() => PrincipalKind::User,
            _ => PrincipalKind::Unknown,
        },
    }
}

/// `https://ecs.cn-north-4.myhuaweicloud.com/v1/…` → `cn-north-4`.
fn region_in_host(url: &str) -> Option<String> {
    let host = url.split("://").nth(1).unwrap_or(url).split('/').next()?;
    host.split('.')
        .find(|label| {
            let mut parts = label.split('-');
            let first = parts.next().unwrap_or("");
            let (count, last) = parts.fold((1, first), |(count, _), part| (count + 1, part));
            count >= 3
                && first.len() == 2
                && first.bytes().all(|byte| byte.is_ascii_lowercase())
                && last.bytes().all(|byte| byte.is_ascii_digit())
        })
        .map(str::to_string)
}

/// The code and message of a failed call, from its `response`: `code` /
/// `message` (the documented failed `deleteEip`), an ECS job's `error_code` /
/// `fail_reason`, Huawei API error bodies' `error_code` / `error_msg`, or the
/// same one level down (`{"error": {...}}`, OpenStack's `{"badRequest": {...}}`).
fn response_error(response: Option<Obj<'_>>) -> (Option<String>, Option<String>) {
    let Some(response) = response else {
        return (None, None);
    };
    let read = |object: &Obj<'_>| {
        let code = ["code", "error_code", "errorCode"]
            .iter()
            .find_map(|key| object.string(key));
        let message = ["message", "error_msg", "fail_reason", "error_message", "errorMessage"]
            .iter()
            .find_map(|key| object.string(key));
        (code, message)
    };
    let (code, message) = read(&response);
    if code.is_some() || message.is_some() {
        return (code, message);
    }
    // One wrapping object: `{"error": {...}}`, `{"badRequest": {...}}`.
    let mut nested = response
        .map
        .members()
        .filter_map(|(_, value)| value.as_object().map(Obj::new));
    match (nested.next(), nested.next()) {
        (Some(inner), None) => read(&inner),
        _ => (None, None),
    }
}

/// Console logins: `message.login.login_protect.status` is `on` when the
/// second factor (virtual MFA, SMS or e-mail code) was required, `off` when
/// the password alone was enough.
fn login_protection(obj: &Obj<'_>) -> Option<bool> {
    let protect = obj.obj("message")?.obj("login")?.obj("login_protect")?;
    let status = protect.get("status").or_else(|| protect.get("enabled"))?;
    match crate::event::lenient::text_of(status)?.to_ascii_lowercase().as_str() {
        "on" | "enabled" => Some(true),
        "off" | "disabled" => Some(false),
        other => crate::event::lenient::bool_text(other),
    }
}
