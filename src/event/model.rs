//! The normalized event model: one `AuditEvent` for every cloud.
//!
//! This struct is the contract between the normalizers (which fill it from a
//! Huawei CTS trace, a Tencent CloudAudit event or an AWS CloudTrail record)
//! and the rule engine (which reads it through compiled field references).
//! Everything a rule may need that the model does not carry stays reachable
//! through `raw`.

use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::origin::Origin;

/// Which cloud produced an event. A closed set: adding a cloud is a code change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Huawei,
    Tencent,
    Aws,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Huawei, Provider::Tencent, Provider::Aws];

    /// Its position in `ALL`, for tables with a slot per cloud.
    pub fn slot(self) -> usize {
        match self {
            Provider::Huawei => 0,
            Provider::Tencent => 1,
            Provider::Aws => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Huawei => "huawei",
            Provider::Tencent => "tencent",
            Provider::Aws => "aws",
        }
    }

    pub fn parse(text: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|provider| provider.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of identity made the call, in one vocabulary for all clouds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// The account itself (AWS root, Tencent main account, Huawei account).
    Root,
    /// A long-lived sub-user (IAM user, CAM sub-user, Huawei IAM user).
    User,
    /// A role / agency session with temporary credentials.
    AssumedRole,
    /// A user from an external identity provider (SAML, OIDC, federation token).
    Federated,
    /// A cloud service acting on its own behalf.
    Service,
    /// The record did not say, or said something we do not recognise.
    #[default]
    Unknown,
}

impl PrincipalKind {
    pub const ALL: [PrincipalKind; 6] = [
        PrincipalKind::Root,
        PrincipalKind::User,
        PrincipalKind::AssumedRole,
        PrincipalKind::Federated,
        PrincipalKind::Service,
        PrincipalKind::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Root => "root",
            PrincipalKind::User => "user",
            PrincipalKind::AssumedRole => "assumed_role",
            PrincipalKind::Federated => "federated",
            PrincipalKind::Service => "service",
            PrincipalKind::Unknown => "unknown",
        }
    }
}

/// How the call reached the cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CallMethod {
    Console,
    Api,
    System,
    #[default]
    Other,
}

impl CallMethod {
    pub const ALL: [CallMethod; 4] = [
        CallMethod::Console,
        CallMethod::Api,
        CallMethod::System,
        CallMethod::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallMethod::Console => "console",
            CallMethod::Api => "api",
            CallMethod::System => "system",
            CallMethod::Other => "other",
        }
    }
}

/// Whether the call succeeded. Every cloud says so in its own way; the
/// normalizers turn that into this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeResult {
    #[default]
    Success,
    Failure,
}

impl OutcomeResult {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeResult::Success => "success",
            OutcomeResult::Failure => "failure",
        }
    }
}

/// A class of source address, used by rules and shown in alarm call records
/// (seeds/003 "IP type": within the account, outside, LAN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IpKind {
    /// A routable public address.
    Public,
    /// RFC 1918 / RFC 4193 / CGNAT / link-local / loopback: a LAN address.
    Private,
    /// Not an IP at all: a service name such as `ec2.amazonaws.com` or `AWS Internal`.
    Hostname,
    /// No address in the record (system-triggered traces).
    #[default]
    None,
    /// An address inside the cloud's own internal network, recorded when the
    /// platform relays a call (Tencent's 9.0.0.0/8, 11.0.0.0/8, 30.0.0.0/8).
    /// Only the normalizer of that cloud assigns it: the same address from
    /// another cloud's record is an ordinary public one.
    Platform,
}

impl IpKind {
    pub const ALL: [IpKind; 5] = [
        IpKind::Public,
        IpKind::Private,
        IpKind::Hostname,
        IpKind::None,
        IpKind::Platform,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IpKind::Public => "public",
            IpKind::Private => "private",
            IpKind::Hostname => "hostname",
            IpKind::None => "none",
            IpKind::Platform => "platform",
        }
    }

    pub fn parse(text: &str) -> Option<IpKind> {
        IpKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// The identity that made the call.
///
/// The nested parts of an event (this, `Outcome`, `Resource`) declare their
/// fields in alphabetical order: alarm samples are written from them
/// directly (`event::EventHead`), and keep the key order of a JSON tree.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Principal {
    /// ARN / URN where the cloud gives one.
    pub arn: Option<String>,
    /// The cloud's stable id for the identity (AWS principalId, Tencent sub-uin, Huawei user id).
    pub id: Option<String>,
    pub kind: PrincipalKind,
    /// The human-readable name (user name, `role/session`, `root`).
    pub name: Option<String>,
}

/// The access key the call was signed with, if any.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccessKey {
    pub id: String,
    /// Session credentials (AWS `ASIA…`, Huawei `HSTA…`, role sessions): these
    /// expire, so "idle key" logic does not apply to them.
    pub temporary: bool,
}

/// The address the call came from, kept as given and parsed where possible.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceAddress {
    /// Exactly what the record said (may be a service name or have leading zeros).
    pub text: String,
    /// The parsed address, when the text is an IP (leading zeros tolerated).
    pub ip: Option<IpAddr>,
    pub kind: IpKind,
    /// In one of the organisation's assets (`assets add`): set by the engine
    /// before the rules see the event, from the store's asset list.
    pub asset: bool,
}

/// The call's result.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Outcome {
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub result: OutcomeResult,
}

/// What the call acted on.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Resource {
    pub names: Vec<String>,
    #[serde(rename = "type")]
    pub resource_type: Option<String>,
}

/// One audit event from any cloud.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    pub provider: Provider,
    /// The cloud's event id; a deterministic `tw-<hash>` when the record has none.
    pub event_id: String,
    pub request_id: Option<String>,
    /// Event time in UTC: when the call happened, not when we read it.
    pub time: DateTime<Utc>,
    /// Set when the record had no usable event time and `time` came from a
    /// documented fallback (see `TimeSource`).
    pub time_source: TimeSource,
    /// The account (AWS account id, Tencent root uin, Huawei domain id).
    pub account_id: Option<String>,
    /// The account's display name where the record has one (Huawei domain name).
    pub account_name: Option<String>,
    pub principal: Principal,
    pub access_key: Option<AccessKey>,
    /// The caller's address. For a Tencent console call whose
    /// `sourceIPAddress` is the platform's own relay, this is the session's
    /// `userIp` and the relay address is kept in `platform_source`.
    pub source: Option<SourceAddress>,
    /// The record's own source address when `source` was taken from
    /// elsewhere because this one is inside the cloud's internal network.
    pub platform_source: Option<SourceAddress>,
    pub user_agent: Option<String>,
    /// Lower-case short service name: `iam`, `cam`, `ecs`, `cvm`, `ec2` …
    pub service: String,
    /// The API / event / trace name as the cloud spells it.
    pub action: String,
    /// Cross-cloud operation ids; filled by the rule set's operation catalog
    /// just before evaluation (indexes into that catalog).
    pub operations: Vec<u16>,
    pub region: Option<String>,
    pub call_method: CallMethod,
    pub outcome: Outcome,
    pub read_only: Option<bool>,
    pub resource: Resource,
    /// Whether the session was MFA-authenticated, where the record says.
    pub mfa: Option<bool>,
    /// Why the event was built from less than the full record (a LookUpEvents
    /// item whose `CloudAuditEvent` is empty or not valid JSON, read from its
    /// summary fields); `None` for an event read from the whole record.
    pub degraded: Option<String>,
    /// The original record, with JSON-inside-string fields expanded in place
    /// (kept as its text and parsed only when something reads it).
    pub raw: Raw,
    /// Where the record came from (file:line, topic/partition/offset …).
    pub origin: Origin,
}

/// An event's original record. Read from a record's own bytes, it is kept
/// as that text and parsed (with the cloud's JSON-inside-string fields
/// expanded, as the normalizer read them) only when a rule's `raw.` path, an
/// alarm sample or `normalize --raw` asks for it; most events never are.
#[derive(Clone, Debug, Default)]
pub struct Raw {
    text: Option<Box<str>>,
    /// Expands the parsed text the way the normalizer read the record.
    expand: Option<fn(&mut Map<String, Value>)>,
    tree: OnceLock<Value>,
    /// What the rules' `raw.` paths reach, copied by the normalizer.
    pruned: Option<super::raw_paths::Pruned>,
}

impl Raw {
    /// A record already parsed (and expanded).
    pub fn from_value(value: Value) -> Raw {
        Raw {
            text: None,
            expand: None,
            tree: OnceLock::from(value),
            pruned: None,
        }
    }

    /// A record's JSON text, which `expand` (when given) turns into what the
    /// normalizer read; without it the text is that already.
    pub fn from_text(text: Box<str>, expand: Option<fn(&mut Map<String, Value>)>) -> Raw {
        Raw {
            text: Some(text),
            expand,
            tree: OnceLock::new(),
            pruned: None,
        }
    }

    /// A record read from bytes its reader moves in next (`set_text`).
    pub(crate) fn awaiting_text(expand: Option<fn(&mut Map<String, Value>)>) -> Raw {
        Raw {
            text: None,
            expand,
            tree: OnceLock::new(),
            pruned: None,
        }
    }

    /// Made by `awaiting_text` and not given its text yet.
    pub(crate) fn awaits_text(&self) -> bool {
        self.text.is_none() && self.tree.get().is_none()
    }

    pub(crate) fn set_text(&mut self, text: Box<str>) {
        self.text = Some(text);
    }

    /// Keep what the rules' `raw.` paths reach (`raw_paths::Pruned`), so
    /// their lookups need not parse the record.
    pub fn set_pruned(&mut self, pruned: super::raw_paths::Pruned) {
        self.pruned = Some(pruned);
    }

    /// The tree a lookup of the `raw.` path `path` walks: the pruned copy
    /// when it holds all the path reads, else the whole record.
    pub fn for_path<S: AsRef<str>>(&self, path: &[S]) -> &Value {
        match self.pruned.as_ref().and_then(|pruned| pruned.for_path(path)) {
            Some(value) => value,
            None => self.value(),
        }
    }

    /// The record as JSON (parsed on first use).
    pub fn value(&self) -> &Value {
        self.tree.get_or_init(|| {
            let Some(text) = self.text.as_deref() else {
                return Value::Null;
            };
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(mut map)) => {
                    if let Some(expand) = self.expand {
                        expand(&mut map);
                    }
                    Value::Object(map)
                }
                Ok(other) => other,
                // The text was validated JSON when the event was made.
                Err(_) => Value::Null,
            }
        })
    }

    /// The record's own text when it is the record as read, nothing inside
    /// it to expand (an alarm sample embeds it without parsing it).
    pub fn verbatim(&self) -> Option<&str> {
        self.text.as_deref().filter(|_| self.expand.is_none())
    }

    /// The record's own text as read (before any expansion), when it is kept.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The record as JSON text: the original bytes when they are kept.
    pub fn to_json_string(&self) -> String {
        match &self.text {
            Some(text) => text.to_string(),
            None => self.value().to_string(),
        }
    }

    /// Whether the record has been parsed into a tree (a sample, a trace, a
    /// lookup the pruned copy does not cover, or a record read as a tree).
    pub fn is_parsed(&self) -> bool {
        self.tree.get().is_some()
    }

    /// Bytes of JSON text held (0 for a parsed record).
    pub fn text_len(&self) -> usize {
        self.text.as_ref().map_or(0, |text| text.len())
    }
}

impl PartialEq for Raw {
    fn eq(&self, other: &Raw) -> bool {
        self.value() == other.value()
    }
}

impl std::ops::Index<&str> for Raw {
    type Output = Value;

    /// A top-level field of the record (`Value::Null` when absent).
    fn index(&self, key: &str) -> &Value {
        &self.value()[key]
    }
}

impl From<Value> for Raw {
    fn from(value: Value) -> Raw {
        Raw::from_value(value)
    }
}

/// Where `AuditEvent::time` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// The record's own event-time field.
    #[default]
    Event,
    /// CTS `record_time`, when `time` is missing.
    RecordTime,
    /// `@timestamp`, which some pipelines add after dropping `eventTime`.
    Timestamp,
    /// Panther's `p_event_time` enrichment.
    EnrichmentTime,
    /// The time of the envelope the record came in (EventBridge / CloudEvents).
    Envelope,
    /// No time anywhere in the record: the time the source delivered it
    /// (file modification time, Kafka message timestamp, or reading time for stdin).
    Ingest,
}

impl TimeSource {
    pub const ALL: [TimeSource; 6] = [
        TimeSource::Event,
        TimeSource::RecordTime,
        TimeSource::Timestamp,
        TimeSource::EnrichmentTime,
        TimeSource::Envelope,
        TimeSource::Ingest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::Event => "event",
            TimeSource::RecordTime => "record_time",
            TimeSource::Timestamp => "timestamp",
            TimeSource::EnrichmentTime => "enrichment_time",
            TimeSource::Envelope => "envelope",
            TimeSource::Ingest => "ingest",
        }
    }

    pub fn parse(text: &str) -> Option<TimeSource> {
        TimeSource::ALL.into_iter().find(|source| source.as_str() == text)
    }
}

impl AuditEvent {
    /// The source address text, if any.
    pub fn source_ip_text(&self) -> Option<&str> {
        self.source.as_ref().map(|source| source.text.as_str())
    }

    pub fn source_ip_kind(&self) -> IpKind {
        self.source.as_ref().map_or(IpKind::None, |source| source.kind)
    }

    pub fn access_key_id(&self) -> Option<&str> {
        self.access_key.as_ref().map(|key| key.id.as_str())
    }

    /// "root" for the account itself, "sub_account" for anything acting inside it.
    pub fn account_identity(&self) -> &'static str {
        match self.principal.kind {
            PrincipalKind::Root => "root",
            PrincipalKind::Unknown => "unknown",
            _ => "sub_account",
        }
    }

    /// A short display name for the principal: name, else id, else kind.
    pub fn principal_display(&self) -> &str {
        self.principal
            .name
            .as_deref()
            .or(self.principal.id.as_deref())
            .unwrap_or(self.principal.kind.as_str())
    }
}
