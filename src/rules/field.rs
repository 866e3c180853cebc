//! Field references: a rule's `principal.kind` or `raw.requestParameters.Name`,
//! resolved once at compile time to an enum, read at evaluation time without
//! string lookups or allocation.

use std::net::IpAddr;

use serde_json::Value;

use crate::event::lenient::parse_ip;
use crate::event::model::{AuditEvent, CallMethod, IpKind, PrincipalKind, Provider};

/// A readable field of `AuditEvent`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Provider,
    EventId,
    RequestId,
    AccountId,
    AccountName,
    PrincipalKind,
    PrincipalId,
    PrincipalName,
    PrincipalArn,
    AccessKeyId,
    AccessKeyTemporary,
    SourceIp,
    SourceIpKind,
    SourceIpAsset,
    SourceIpCountry,
    SourceIpAsn,
    /// The names of the `[ip_lists]` holding the address.
    SourceIpList,
    UserAgent,
    Service,
    Action,
    Operation,
    Region,
    CallMethod,
    Outcome,
    ErrorCode,
    ErrorMessage,
    ReadOnly,
    ResourceType,
    ResourceNames,
    Mfa,
    /// A path into the original record: `raw.requestParameters.Name`.
    Raw(Vec<String>),
}

/// Every normalized field name, for documentation, validation and suggestions.
pub const FIELD_NAMES: &[&str] = &[
    "provider",
    "event_id",
    "request_id",
    "account_id",
    "account_name",
    "principal.kind",
    "principal.id",
    "principal.name",
    "principal.arn",
    "access_key.id",
    "access_key.temporary",
    "source_ip",
    "source_ip.kind",
    "user_agent",
    "service",
    "action",
    "operation",
    "region",
    "call_method",
    "outcome",
    "error_code",
    "error_message",
    "read_only",
    "resource.type",
    "resource.names",
    "mfa",
    "source_ip.asset",
    "source_ip.country",
    "source_ip.asn",
    "source_ip.list",
];

impl Field {
    /// A `raw.` path.
    pub fn is_raw(&self) -> bool {
        matches!(self, Field::Raw(_))
    }

    /// Resolve a field name. `raw.` paths are split on dots.
    pub fn parse(name: &str) -> Option<Field> {
        if let Some(path) = name.strip_prefix("raw.") {
            let segments: Vec<String> = path.split('.').map(str::to_string).collect();
            if segments.iter().any(String::is_empty) {
                return None;
            }
            // The normalizers copy what the path reaches out of each record
            // (`event::raw_paths`), so evaluating it parses nothing.
            crate::event::raw_paths::register_raw_path(&segments);
            return Some(Field::Raw(segments));
        }
        Some(match name {
            "provider" => Field::Provider,
            "event_id" => Field::EventId,
            "request_id" => Field::RequestId,
            "account_id" => Field::AccountId,
            "account_name" => Field::AccountName,
            "principal.kind" => Field::PrincipalKind,
            "principal.id" => Field::PrincipalId,
            "principal.name" => Field::PrincipalName,
            "principal.arn" => Field::PrincipalArn,
            "access_key.id" | "access_key" => Field::AccessKeyId,
            "access_key.temporary" => Field::AccessKeyTemporary,
            "source_ip" => Field::SourceIp,
            "source_ip.kind" => Field::SourceIpKind,
            "source_ip.asset" => Field::SourceIpAsset,
            "source_ip.country" => Field::SourceIpCountry,
            "source_ip.asn" => Field::SourceIpAsn,
            "source_ip.list" => Field::SourceIpList,
            "user_agent" => Field::UserAgent,
            "service" => Field::Service,
            "action" => Field::Action,
            "operation" => Field::Operation,
            "region" => Field::Region,
            "call_method" => Field::CallMethod,
            "outcome" => Field::Outcome,
            "error_code" => Field::ErrorCode,
            "error_message" => Field::ErrorMessage,
            "read_only" => Field::ReadOnly,
            "resource.type" => Field::ResourceType,
            "resource.names" | "resource.name" => Field::ResourceNames,
            "mfa" => Field::Mfa,
            _ => return None,
        })
    }

    pub fn name(&self) -> String {
        match self {
            Field::Raw(path) => format!("raw.{}", path.join(".")),
            other => {
                let index = match other {
                    Field::Provider => 0,
                    Field::EventId => 1,
                    Field::RequestId => 2,
                    Field::AccountId => 3,
                    Field::AccountName => 4,
                    Field::PrincipalKind => 5,
                    Field::PrincipalId => 6,
                    Field::PrincipalName => 7,
                    Field::PrincipalArn => 8,
                    Field::AccessKeyId => 9,
                    Field::AccessKeyTemporary => 10,
                    Field::SourceIp => 11,
                    Field::SourceIpKind => 12,
                    Field::UserAgent => 13,
                    Field::Service => 14,
                    Field::Action => 15,
                    Field::Operation => 16,
                    Field::Region => 17,
                    Field::CallMethod => 18,
                    Field::Outcome => 19,
                    Field::ErrorCode => 20,
                    Field::ErrorMessage => 21,
                    Field::ReadOnly => 22,
                    Field::ResourceType => 23,
                    Field::ResourceNames => 24,
                    Field::Mfa => 25,
                    Field::SourceIpAsset => 26,
                    Field::SourceIpCountry => 27,
                    Field::SourceIpAsn => 28,
                    Field::SourceIpList => 29,
                    Field::Raw(_) => unreachable!("handled above"),
                };
                FIELD_NAMES[index].to_string()
            }
        }
    }

    /// The closed set of values of an enum-valued field, for validation.
    pub fn allowed_values(&self) -> Option<Vec<&'static str>> {
        Some(match self {
            Field::Provider => Provider::ALL.iter().map(|value| value.as_str()).collect(),
            Field::PrincipalKind => PrincipalKind::ALL.iter().map(|value| value.as_str()).collect(),
            Field::CallMethod => CallMethod::ALL.iter().map(|value| value.as_str()).collect(),
            Field::SourceIpKind => IpKind::ALL.iter().map(|value| value.as_str()).collect(),
            Field::Outcome => vec!["success", "failure"],
            Field::AccessKeyTemporary | Field::ReadOnly | Field::Mfa | Field::SourceIpAsset => vec!["true", "false"],
            _ => return None,
        })
    }

    /// Call `test` on each value of the field until it returns true.
    /// Returns whether any value passed. Missing fields have no values.
    pub fn any_value(&self, event: &AuditEvent, test: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
        let text =
            |value: Option<&str>, test: &mut dyn FnMut(Val<'_>) -> bool| value.is_some_and(|text| test(Val::Str(text)));
        match self {
            Field::Provider => test(Val::Str(event.provider.as_str())),
            Field::EventId => test(Val::Str(&event.event_id)),
            Field::RequestId => text(event.request_id.as_deref(), test),
            Field::AccountId => text(event.account_id.as_deref(), test),
            Field::AccountName => text(event.account_name.as_deref(), test),
            Field::PrincipalKind => test(Val::Str(event.principal.kind.as_str())),
            Field::PrincipalId => text(event.principal.id.as_deref(), test),
            Field::PrincipalName => text(event.principal.name.as_deref(), test),
            Field::PrincipalArn => text(event.principal.arn.as_deref(), test),
            Field::AccessKeyId => text(event.access_key_id(), test),
            Field::AccessKeyTemporary => event
                .access_key
                .as_ref()
                .is_some_and(|key| test(Val::Bool(key.temporary))),
            Field::SourceIp => event.source.as_ref().is_some_and(|source| {
                test(Val::Addr {
                    text: &source.text,
                    ip: source.ip,
                })
            }),
            Field::SourceIpKind => test(Val::Str(event.source_ip_kind().as_str())),
            Field::SourceIpAsset => event
                .source
                .as_ref()
                .is_some_and(|source| test(Val::Bool(source.asset))),
            // Looked up when a rule reads them (`[geoip]`; nothing without a database).
            Field::SourceIpCountry => event.source.as_ref().and_then(|source| source.ip).is_some_and(|ip| {
                let geo = crate::geoip::current();
                geo.country_code(ip).is_some_and(|code| test(Val::Str(code)))
            }),
            Field::SourceIpList => event.source.as_ref().and_then(|source| source.ip).is_some_and(|ip| {
                let lists = crate::iplists::current();
                lists.lists_of(ip).any(|name| test(Val::Str(name)))
            }),
            Field::SourceIpAsn => event
                .source
                .as_ref()
                .and_then(|source| source.ip)
                .and_then(|ip| crate::geoip::current().asn(ip))
                .is_some_and(|asn| test(Val::Num(f64::from(asn)))),
            Field::UserAgent => text(event.user_agent.as_deref(), test),
            Field::Service => (!event.service.is_empty()) && test(Val::Str(&event.service)),
            Field::Action => test(Val::Str(&event.action)),
            Field::Operation => event
                .operations
                .iter()
                .any(|operation| test(Val::Operation(*operation))),
            Field::Region => text(event.region.as_deref(), test),
            Field::CallMethod => test(Val::Str(event.call_method.as_str())),
            Field::Outcome => test(Val::Str(event.outcome.result.as_str())),
            Field::ErrorCode => text(event.outcome.error_code.as_deref(), test),
            Field::ErrorMessage => text(event.outcome.error_message.as_deref(), test),
            Field::ReadOnly => event.read_only.is_some_and(|flag| test(Val::Bool(flag))),
            Field::ResourceType => text(event.resource.resource_type.as_deref(), test),
            Field::ResourceNames => event.resource.names.iter().any(|name| test(Val::Str(name))),
            Field::Mfa => event.mfa.is_some_and(|flag| test(Val::Bool(flag))),
            Field::Raw(path) => raw_any(event.raw.for_path(path), path, test),
        }
    }

    /// The field's values as text, for group keys and output templates.
    pub fn collect_text(
        &self,
        event: &AuditEvent,
        catalog: &crate::rules::operations::OperationCatalog,
        out: &mut Vec<String>,
    ) {
        out.clear();
        self.any_value(event, &mut |value| {
            out.push(match value {
                Val::Str(text) => text.to_string(),
                Val::Addr { text, .. } => text.to_string(),
                Val::Bool(flag) => flag.to_string(),
                Val::Num(number) => format_number(number),
                Val::Operation(index) => catalog.name(index).to_string(),
                Val::Composite => return false,
            });
            false
        });
    }
}

fn format_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        number.to_string()
    }
}

/// One value of a field.
#[derive(Clone, Copy, Debug)]
pub enum Val<'a> {
    Str(&'a str),
    Bool(bool),
    Num(f64),
    /// A source address: the text as given and the parsed IP.
    Addr {
        text: &'a str,
        ip: Option<IpAddr>,
    },
    Operation(u16),
    /// A non-empty object or array under a `raw.` path: present, but not a
    /// scalar to compare.
    Composite,
}

impl<'a> Val<'a> {
    /// The value as text, where it has a borrowed textual form.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Val::Str(text) | Val::Addr { text, .. } => Some(text),
            Val::Bool(true) => Some("true"),
            Val::Bool(false) => Some("false"),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Val::Num(number) => Some(*number),
            Val::Str(text) => text.trim().parse::<f64>().ok(),
            _ => None,
        }
    }

    pub fn as_ip(&self) -> Option<IpAddr> {
        match self {
            Val::Addr { ip, .. } => *ip,
            Val::Str(text) => parse_ip(text),
            _ => None,
        }
    }
}

/// Walk a `raw.` path. Arrays fan out (any element may match); a string
/// holding JSON is parsed on the way; keys fall back to case-insensitive.
fn raw_any(value: &Value, path: &[String], test: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
    let Some((head, rest)) = path.split_first() else {
        return leaf_any(value, test);
    };
    match value {
        Value::Object(map) => {
            let child = map.get(head.as_str()).or_else(|| {
                map.iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(head))
                    .map(|(_, child)| child)
            });
            child.is_some_and(|child| raw_any(child, rest, test))
        }
        Value::Array(items) => match head.parse::<usize>() {
            Ok(index) => items.get(index).is_some_and(|item| raw_any(item, rest, test)),
            Err(_) => items.iter().any(|item| raw_any(item, path, test)),
        },
        Value::String(text) if text.trim_start().starts_with(['{', '[']) => match serde_json::from_str::<Value>(text) {
            Ok(parsed) => raw_any(&parsed, path, test),
            Err(_) => false,
        },
        _ => false,
    }
}

fn leaf_any(value: &Value, test: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => test(Val::Bool(*flag)),
        Value::Number(number) => number.as_f64().is_some_and(|number| test(Val::Num(number))),
        Value::String(text) => test(Val::Str(text)),
        Value::Array(items) if items.is_empty() => false,
        Value::Array(items) => items.iter().any(|item| leaf_any(item, test)),
        // An object exists, but has no scalar value to compare.
        Value::Object(map) => !map.is_empty() && test(Val::Composite),
    }
}
