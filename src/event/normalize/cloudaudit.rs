//! Tencent Cloud CloudAudit event → `AuditEvent`.
//!
//! Field facts: reference/formats.md "Tencent Cloud — CloudAudit event".
//! `eventTime` is epoch seconds or a zone-less `YYYY-MM-DD HH:MM:SS` read in
//! the configured offset (UTC+8 by default). `errorCode` 0 is success, even
//! when `errorMessage` says "permission verify".
//!
//! Published records showed what else must be read:
//! - an explicit `userIdentity.type` (`CAMUser`) wins over guessing root from
//!   `principalId == accountId`;
//! - `resourceName` may join several resources with `|`
//!   (`instance/ins-1|instance/ins-2`): one name per resource;
//! - a session token (`sessionContext.token`, the request's `Token`) or a
//!   `secretId` of a session key's length (68, against 36 for a permanent
//!   `AKID…` key) marks a temporary (STS / console session) key;
//! - a console call may record the platform's own relay address
//!   (9.0.0.0/8 …) as `sourceIPAddress` while `sessionContext.userIp` holds
//!   the caller's: see `caller_and_platform_source`.
//!
//! Items of a LookUpEvents response whose `CloudAuditEvent` is missing, empty
//! or not valid JSON are read from their PascalCase summary fields and marked
//! `degraded` with the reason.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use std::net::IpAddr;

use super::{NormalizeContext, NormalizeError, required_text, resolve_time, synthetic_event_id};
use crate::event::json::{Json, JsonObject};
use crate::event::lenient::{Obj, expand_json_fields, expand_json_string, source_address, text_of};
use crate::event::model::{
    AccessKey, AuditEvent, CallMethod, IpKind, Outcome, OutcomeResult, Principal, PrincipalKind, Provider, Raw,
    Resource, SourceAddress,
};

/// Shortest `SecretId` read as a session (STS) key by its shape alone. A
/// permanent key is `AKID` and 32 letters or digits, 36 characters (the
/// documented example `AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE`); the session
/// keys seen published are 68 characters, with `-` and `_` (the CreateAuditTrack
/// record's, which also carries a session token, and STS credentials in public
/// test fixtures). Older session keys (2017) had 36 characters like permanent
/// ones: only their token tells them apart. The margin keeps a permanent key
/// copied with a character or three too many from passing for a session key.
const SESSION_SECRET_ID_MIN_LEN: usize = 60;

pub(super) const JSON_FIELDS: &[&str] = &["requestParameters", "responseElements", "resources", "userIdentity"];

pub(super) fn normalize(
    mut record: Map<String, Value>,
    context: &NormalizeContext,
    envelope_time: Option<DateTime<Utc>>,
) -> Result<AuditEvent, NormalizeError> {
    if is_summary_item(JsonObject::Tree(&record)) {
        return normalize_summary(record, context, envelope_time);
    }
    expand(&mut record);
    let mut event = read(JsonObject::Tree(&record), Some(&record), context, envelope_time)?;
    event.raw = Raw::from_value(Value::Object(record));
    Ok(event)
}

/// A LookUpEvents item read from its summary fields (no `eventName`).
pub(super) fn is_summary_item(record: JsonObject<'_>) -> bool {
    !record.contains_key("eventName") && record.contains_key("EventName")
}

/// Parse the record's JSON-inside-string fields in place (the session
/// context inside the identity too).
pub(super) fn expand(record: &mut Map<String, Value>) {
    expand_json_fields(record, JSON_FIELDS);
    if let Some(Value::Object(identity)) = record.get_mut("userIdentity")
        && let Some(session) = identity.get_mut("sessionContext")
    {
        expand_json_string(session);
    }
}

/// Read an expanded event (not a summary item); `tree` (when the record is
/// one) gives an event without an id its synthetic one, else the id is left empty.
pub(super) fn read(
    record: JsonObject<'_>,
    tree: Option<&Map<String, Value>>,
    context: &NormalizeContext,
    envelope_time: Option<DateTime<Utc>>,
) -> Result<AuditEvent, NormalizeError> {
    let obj = Obj::new(record);
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
        .and_then(|identity| identity.text("roleName"))
        .or_else(|| session.and_then(|session| session.text("roleName")));
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
        name: user_name.or_else(|| role_name.map(|name| name.into_owned())),
        arn: identity.and_then(|identity| identity.string("arn")),
    };
    // "Token used for temporary credentials. It must be used with a temporary
    // key … No token is required for a long-term key." (Tencent API common
    // parameters, `Token` / `X-TC-Token`.) The session context repeats the
    // request's token.
    let session_token = session.and_then(|session| session.text("token")).or_else(|| {
        obj.obj("requestParameters")
            .and_then(|parameters| parameters.text("Token"))
    });
    let access_key = identity
        .and_then(|identity| identity.string("secretId"))
        .map(|id| AccessKey {
            temporary: matches!(kind, PrincipalKind::AssumedRole | PrincipalKind::Federated)
                || session_token.is_some()
                || is_session_key_shape(&id),
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
    if let Some(name) = obj.text("resourceName") {
        push_resource_names(&name, &mut resource.names);
    }
    if let Some(items) = obj.get("resources").and_then(Json::as_array) {
        for item in items {
            let name = match item.as_object() {
                Some(map) => Obj::new(map)
                    .text("resourceName")
                    .or_else(|| Obj::new(map).text("ResourceName")),
                None => text_of(item),
            };
            if let Some(name) = name {
                push_resource_names(&name, &mut resource.names);
            }
        }
    }

    let mfa = session.and_then(|session| session.boolean("mfa").or_else(|| session.boolean("mfaAuthenticated")));
    let event_id = obj
        .string("eventID")
        .or_else(|| tree.map(synthetic_event_id))
        .unwrap_or_default();
    let request_id = obj.string("requestID");
    let (source, platform_source) = caller_and_platform_source(tencent_address(obj.text("sourceIPAddress")), || {
        tencent_address(session.and_then(|session| session.text("userIp")))
    });
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
        platform_source,
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

/// The kind from an explicit `userIdentity.type` when it is one we know;
/// otherwise guessed: `userName: root` or `principalId == accountId` is the
/// root account, a role name a role session, any other principal a sub-user.
/// The explicit type wins: a published `CAMUser` record has `principalId`
/// equal to `accountId` (both redacted to the same text).
fn principal_kind(
    identity_type: Option<&str>,
    user_name: Option<&str>,
    principal_id: Option<&str>,
    account_id: Option<&str>,
    has_role: bool,
    has_identity: bool,
) -> PrincipalKind {
    if let Some(kind) = identity_type.and_then(kind_of_identity_type) {
        return kind;
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
    if has_identity && principal_id.is_some() {
        PrincipalKind::User
    } else {
        PrincipalKind::Unknown
    }
}

/// `Root`, `CAMUser` and the other spellings of `userIdentity.type`.
fn kind_of_identity_type(identity_type: &str) -> Option<PrincipalKind> {
    // Lower-cased on the stack: identity types are short words.
    let mut buffer = [0u8; 32];
    let lower: std::borrow::Cow<'_, str> = match buffer.get_mut(..identity_type.len()) {
        Some(slot) => {
            slot.copy_from_slice(identity_type.as_bytes());
            slot.make_ascii_lowercase();
            std::str::from_utf8(slot).map_or(std::borrow::Cow::Borrowed(""), std::borrow::Cow::Borrowed)
        }
        None => std::borrow::Cow::Owned(identity_type.to_ascii_lowercase()),
    };
    Some(match lower.as_ref() {
        "root" => PrincipalKind::Root,
        "camuser" | "subuser" | "subaccount" | "cam_user" | "user" => PrincipalKind::User,
        kind if kind.contains("federat") || kind.contains("saml") || kind.contains("oidc") => PrincipalKind::Federated,
        kind if kind.contains("role") || kind.contains("assumed") => PrincipalKind::AssumedRole,
        kind if kind.contains("service") => PrincipalKind::Service,
        _ => return None,
    })
}

/// Whether a `SecretId` has the shape of a session (STS) key: `AKID…` far
/// longer than a permanent key. A redacted id (`xxx`) says nothing either way.
fn is_session_key_shape(secret_id: &str) -> bool {
    secret_id.starts_with("AKID") && secret_id.len() >= SESSION_SECRET_ID_MIN_LEN
}

/// Tencent's internal network, from which its own services (the console's
/// backend among them) reach the APIs. Tencent's API Gateway documentation
/// lists the platform's private ranges as 9.0.0.0/8, 10.0.0.0/8,
/// 100.64.0.0/10, 11.0.0.0/8 and 30.0.0.0/8 in every region
/// (cloud.tencent.com/document/product/628/39963), and Tencent's own
/// open-source code treats 9/8, 11/8 and 30/8 as private in its network
/// (Tencent/flare `flare/base/net/endpoint.h`, `IsPrivateIpv4AddressCorp`).
/// 10/8 and 100.64/10 are private (LAN) anyway; the other three are public
/// allocations elsewhere, so only Tencent records get this reading.
fn in_platform_range(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[0], 9 | 11 | 30),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| in_platform_range(&IpAddr::V4(v4))),
    }
}

/// An address read from a Tencent record, with the platform range marked.
fn tencent_address(text: Option<std::borrow::Cow<'_, str>>) -> Option<SourceAddress> {
    let mut address = source_address(text)?;
    if address.ip.as_ref().is_some_and(in_platform_range) {
        address.kind = IpKind::Platform;
    }
    Some(address)
}

/// The caller's address and, when it had to be taken from elsewhere, the
/// platform address the record gave.
///
/// A published console call (tccli DescribeEvents example, 2021) records
/// `sourceIPAddress` 9.83.55.32 while `sessionContext.userIp` is
/// 163.177.68.30; other console calls carry the same address in both.
/// Tencent's documentation describes `sourceIPAddress` only as "source IP
/// address" and does not describe `userIp` (CloudAudit "Viewing Event
/// Details"), so which one is the caller is not confirmed. The conservative
/// reading: when `sourceIPAddress` is in the platform range and `userIp` is
/// an address outside it, the caller is `userIp` and the platform address is
/// kept beside it; in every other case `sourceIPAddress` stays the source
/// (a platform address then has kind `platform`, never an outside IP).
fn caller_and_platform_source(
    recorded: Option<SourceAddress>,
    session_ip: impl FnOnce() -> Option<SourceAddress>,
) -> (Option<SourceAddress>, Option<SourceAddress>) {
    // The session's address is read only when the recorded one is the platform's.
    match recorded {
        Some(recorded) if recorded.kind == IpKind::Platform => match session_ip() {
            Some(caller) if caller.ip.is_some() && caller.kind != IpKind::Platform => (Some(caller), Some(recorded)),
            _ => (Some(recorded), None),
        },
        recorded => (recorded, None),
    }
}

/// Resource names as given, one per resource: `resourceName` joins several
/// with `|` (`instance/ins-1|instance/ins-2`, `volume/*|snapshot/snap-1`);
/// `*` alone names nothing.
fn push_resource_names(text: &str, names: &mut Vec<String>) {
    for name in text.split('|').map(str::trim) {
        if !name.is_empty() && name != "*" && !names.iter().any(|known| known == name) {
            names.push(name.to_string());
        }
    }
}

/// `errorCode` 0 / "0" / empty is success; `apiErrorCode` can still say failure.
fn outcome(obj: &Obj<'_>) -> Outcome {
    let is_error = |code: &str| !(code.is_empty() || code == "0" || code.eq_ignore_ascii_case("success"));
    // Numeric codes are the common case; 0 is success, read without text.
    let code_of = |key: &str| {
        let value = obj.get(key)?;
        match value.as_i64() {
            Some(0) => None,
            _ => text_of(value).filter(|code| is_error(code)),
        }
    };
    let error_code = code_of("errorCode");
    let api_error_code = code_of("apiErrorCode");
    match error_code.or(api_error_code) {
        Some(code) => Outcome {
            result: OutcomeResult::Failure,
            error_code: Some(code.into_owned()),
            error_message: obj.string("apiErrorMessage").or_else(|| obj.string("errorMessage")),
        },
        None => Outcome::default(),
    }
}

/// A LookUpEvents item without a readable `CloudAuditEvent`: read its
/// summary fields (`EventName`, `EventTime`, `Username`, `AccountID`,
/// `SecretId`, `SourceIPAddress`, `EventRegion`, `ErrorCode`, `Resources`
/// {`ResourceType`, `ResourceName`}). The event is marked degraded: the
/// summary has no identity type, call method, read/write type, session or
/// request detail. `ResourceTypeCn` is a display label (云服务器), not a type.
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
    let mut resource = Resource::default();
    let resources: Vec<Obj<'_>> = match obj.get("Resources") {
        Some(value) => match value.as_array() {
            Some(items) => items.filter_map(Json::as_object).map(Obj::new).collect(),
            None => value.as_object().map(Obj::new).into_iter().collect(),
        },
        None => Vec::new(),
    };
    for item in &resources {
        if resource.resource_type.is_none() {
            resource.resource_type = item.string("ResourceType");
        }
        if let Some(names) = item.text("ResourceName") {
            push_resource_names(&names, &mut resource.names);
        }
    }
    let service = resource
        .resource_type
        .as_deref()
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            obj.text("EventSource")
                .and_then(|source| source.split('.').next().map(str::to_ascii_lowercase))
        })
        .unwrap_or_default();
    let user_name = obj.string("Username");
    let account_id = obj.string("AccountID");
    let is_root = user_name
        .as_deref()
        .is_some_and(|name| name.eq_ignore_ascii_case("root"));
    // The summary's `Username` is a sub-user's or a role's name (CloudAudit
    // "Viewing Event Details"); without `userIdentity` they cannot be told
    // apart, and a sub-user is the more common.
    let kind = if is_root {
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
    let degraded = Some(summary_reason(&record));
    Ok(AuditEvent {
        provider,
        event_id,
        request_id: obj.string("RequestID"),
        time,
        time_source,
        // The root account's principal is the account itself.
        principal: Principal {
            kind,
            id: if is_root { account_id.clone() } else { None },
            name: user_name,
            arn: None,
        },
        account_id,
        account_name: None,
        // No session context here: only the key's shape can tell a session key.
        access_key: obj.string("SecretId").map(|id| AccessKey {
            temporary: is_session_key_shape(&id),
            id,
        }),
        source: tencent_address(obj.text("SourceIPAddress")),
        platform_source: None,
        user_agent: None,
        service,
        action,
        operations: Vec::new(),
        region: obj.string("EventRegion").or_else(|| obj.string("ResourceRegion")),
        call_method: CallMethod::Other,
        outcome,
        read_only: None,
        resource,
        mfa: None,
        degraded,
        raw: Raw::from_value(Value::Object(record)),
        origin: Default::default(),
    })
}

/// Why an item was read from its summary: its `CloudAuditEvent` is missing,
/// empty, or not valid JSON (with the parser's reason).
fn summary_reason(record: &Map<String, Value>) -> String {
    const READ_FROM: &str = "event read from the LookUpEvents summary fields";
    match record.get("CloudAuditEvent") {
        Some(Value::String(text)) if !text.trim().is_empty() => match serde_json::from_str::<Value>(text) {
            Err(error) => format!("`CloudAuditEvent` is not valid JSON ({error}): {READ_FROM}"),
            Ok(_) => format!("`CloudAuditEvent` is not an event record: {READ_FROM}"),
        },
        Some(Value::String(_)) => format!("`CloudAuditEvent` is empty: {READ_FROM}"),
        Some(Value::Null) | None => format!("no `CloudAuditEvent`: {READ_FROM}"),
        Some(_) => format!("`CloudAuditEvent` is not a JSON document: {READ_FROM}"),
    }
}
