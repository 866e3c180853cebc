//! Allowlist policies (seeds/003 "Allowlist policy"): known-good patterns
//! whose rule matches are counted on the policy instead of raising alarms.
//!
//! A policy is any combination of access key (exact), source IP or CIDR, API
//! (`service.action`, glob, case-insensitive), operation id (glob, against
//! each of the event's cross-cloud operations), call method, error code
//! (case-insensitive) and rule id; an absent field matches anything, and at
//! least one field must be present. Policies live in the store (table
//! `allowlist`); the CLI writes them while the daemon runs, and the engine
//! reloads them when the store's `PRAGMA data_version` says another
//! connection committed (checked once per batch).
//!
//! Expiry is by **wall clock**: a policy whose `expires_at` has passed no
//! longer matches anything, whatever the event's own time (a replay of last
//! month's logs is filtered by the policies in force now). The engine reads
//! the clock once per batch. A match suppressed by several policies counts on
//! the oldest (lowest id) only, so the policies' hits add up to the number of
//! suppressed matches; `last_hit` is the event time of the last suppressed call.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use globset::{GlobBuilder, GlobMatcher};
use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::store::timestamp;
use crate::event::model::{AuditEvent, CallMethod};
use crate::rules::OperationCatalog;

#[derive(Debug, thiserror::Error)]
pub enum AllowlistError {
    #[error("allowlist policy: {field} {value:?}: {reason}")]
    InvalidField {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "allowlist policy: at least one of --key, --ip, --api, --operation, --method, --error-code or --rule is required (a policy with none would allow everything)"
    )]
    MatchesEverything,
    #[error("allowlist policy: {field} must not be empty")]
    Empty { field: &'static str },
    #[error("allowlist policy {0} not found")]
    NotFound(i64),
    #[error("allowlist policy {id} (stored) is invalid: {reason}")]
    Stored { id: i64, reason: String },
    #[error("allowlist table: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// What a policy matches (every absent field matches anything).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PolicyMatch {
    /// The full access key (masked on output).
    pub access_key: Option<String>,
    /// An IP or a CIDR, normalized (`10.0.0.0/8`, `203.0.113.7/32`).
    pub source_ip: Option<String>,
    /// Glob over `service.action` (`cam.*`, `*.DescribeInstances`).
    pub api: Option<String>,
    /// Glob over operation ids (`iam.access_key.*`).
    pub operation: Option<String>,
    /// `console`, `api`, `system` or `other`.
    pub call_method: Option<String>,
    pub error_code: Option<String>,
    pub rule_id: Option<String>,
}

/// A policy to add.
#[derive(Clone, Debug, Default)]
pub struct NewPolicy {
    pub matches: PolicyMatch,
    pub owner: String,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored policy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Policy {
    pub id: i64,
    #[serde(flatten)]
    pub matches: PolicyMatch,
    pub owner: String,
    pub reason: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub hit_count: u64,
    /// Event time of the last call the policy suppressed.
    pub last_hit: Option<String>,
}

impl Policy {
    /// Whether the policy has expired at `now` (wall clock).
    pub fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at
            .as_deref()
            .is_some_and(|expires| expires <= timestamp(now).as_str())
    }
}

/// Hits of one policy within a batch, written in the batch transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyHit {
    pub id: i64,
    pub count: u64,
    pub last_hit: String,
}

/// Check and normalize the fields of a policy to add.
pub fn validate(policy: &mut NewPolicy) -> Result<(), AllowlistError> {
    let matches = &mut policy.matches;
    for (field, value) in [
        ("--key", &mut matches.access_key),
        ("--ip", &mut matches.source_ip),
        ("--api", &mut matches.api),
        ("--operation", &mut matches.operation),
        ("--method", &mut matches.call_method),
        ("--error-code", &mut matches.error_code),
        ("--rule", &mut matches.rule_id),
    ] {
        if let Some(text) = value {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return Err(AllowlistError::Empty { field });
            }
            *text = trimmed.to_string();
        }
    }
    if *matches == PolicyMatch::default() {
        return Err(AllowlistError::MatchesEverything);
    }
    if let Some(ip) = &mut matches.source_ip {
        *ip = parse_net(ip)
            .map_err(|reason| AllowlistError::InvalidField {
                field: "--ip",
                value: ip.clone(),
                reason,
            })?
            .to_string();
    }
    for (field, glob) in [("--api", &matches.api), ("--operation", &matches.operation)] {
        if let Some(glob) = glob {
            compile_glob(glob).map_err(|reason| AllowlistError::InvalidField {
                field,
                value: glob.clone(),
                reason,
            })?;
        }
    }
    if let Some(method) = &mut matches.call_method {
        let parsed = parse_method(method).ok_or_else(|| AllowlistError::InvalidField {
            field: "--method",
            value: method.clone(),
            reason: "use console, api, system or other".into(),
        })?;
        *method = parsed.as_str().to_string();
    }
    for (field, value) in [("--owner", &mut policy.owner), ("--reason", &mut policy.reason)] {
        *value = value.trim().to_string();
        if value.is_empty() {
            return Err(AllowlistError::Empty { field });
        }
    }
    Ok(())
}

fn parse_net(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| "not an IP address or CIDR".to_string())
}

fn parse_method(text: &str) -> Option<CallMethod> {
    CallMethod::ALL
        .into_iter()
        .find(|method| method.as_str().eq_ignore_ascii_case(text))
}

fn compile_glob(glob: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(glob)
        .case_insensitive(true)
        .literal_separator(false)
        .build()
        .map(|glob| glob.compile_matcher())
        .map_err(|error| error.kind().to_string())
}

/// Parse `--expires`: an RFC 3339 time, `YYYY-MM-DD[ HH:MM:SS]` (UTC), or a
/// duration from `now` (`12h`, `30d`).
pub fn parse_expiry(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, AllowlistError> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(time.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    let invalid = |reason: String| AllowlistError::InvalidField {
        field: "--expires",
        value: text.to_string(),
        reason,
    };
    let duration = humantime::parse_duration(text)
        .map_err(|_| invalid("use an RFC 3339 time, YYYY-MM-DD[ HH:MM:SS] (UTC) or a duration such as 30d".into()))?;
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|duration| now.checked_add_signed(duration))
        .ok_or_else(|| invalid("too far in the future".into()))
}

const POLICY_COLUMNS: &str = "id, access_key, source_ip, api, operation, call_method, error_code, rule_id, owner, reason, \
     created_at, expires_at, hit_count, last_hit";

fn policy_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Policy> {
    Ok(Policy {
        id: row.get(0)?,
        matches: PolicyMatch {
            access_key: row.get(1)?,
            source_ip: row.get(2)?,
            api: row.get(3)?,
            operation: row.get(4)?,
            call_method: row.get(5)?,
            error_code: row.get(6)?,
            rule_id: row.get(7)?,
        },
        owner: row.get(8)?,
        reason: row.get(9)?,
        created_at: row.get(10)?,
        expires_at: row.get(11)?,
        hit_count: row.get::<_, i64>(12)?.max(0) as u64,
        last_hit: row.get(13)?,
    })
}

/// Validate and store a policy; returns it as stored.
pub fn add(connection: &Connection, mut policy: NewPolicy, now: DateTime<Utc>) -> Result<Policy, AllowlistError> {
    validate(&mut policy)?;
    let matches = &policy.matches;
    connection.execute(
        "INSERT INTO allowlist (access_key, source_ip, api, operation, call_method, error_code, rule_id, owner, \
         reason, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            matches.access_key,
            matches.source_ip,
            matches.api,
            matches.operation,
            matches.call_method,
            matches.error_code,
            matches.rule_id,
            policy.owner,
            policy.reason,
            timestamp(now),
            policy.expires_at.map(timestamp),
        ],
    )?;
    let id = connection.last_insert_rowid();
    get(connection, id)?.ok_or(AllowlistError::NotFound(id))
}

pub fn get(connection: &Connection, id: i64) -> Result<Option<Policy>, AllowlistError> {
    Ok(connection
        .query_row(
            &format!("SELECT {POLICY_COLUMNS} FROM allowlist WHERE id = ?1"),
            [id],
            policy_row,
        )
        .optional()?)
}

/// Every policy, oldest first.
pub fn list(connection: &Connection) -> Result<Vec<Policy>, AllowlistError> {
    let mut statement = connection.prepare(&format!("SELECT {POLICY_COLUMNS} FROM allowlist ORDER BY id"))?;
    let rows = statement.query_map([], policy_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn remove(connection: &Connection, id: i64) -> Result<(), AllowlistError> {
    match connection.execute("DELETE FROM allowlist WHERE id = ?1", [id])? {
        0 => Err(AllowlistError::NotFound(id)),
        _ => Ok(()),
    }
}

/// Add a batch's hits (inside the batch transaction): one UPDATE per policy.
pub fn write_hits(connection: &Connection, hits: &[PolicyHit]) -> rusqlite::Result<()> {
    if hits.is_empty() {
        return Ok(());
    }
    let mut update = connection.prepare_cached(
        "UPDATE allowlist SET hit_count = hit_count + ?2, \
         last_hit = CASE WHEN last_hit IS NULL OR last_hit < ?3 THEN ?3 ELSE last_hit END WHERE id = ?1",
    )?;
    for hit in hits {
        update.execute(params![hit.id, hit.count as i64, hit.last_hit])?;
    }
    Ok(())
}

/// One policy, compiled.
#[derive(Debug)]
struct Compiled {
    id: i64,
    /// Wall-clock expiry in Unix milliseconds.
    expires_ms: Option<i64>,
    source: Option<IpNet>,
    api: Option<GlobMatcher>,
    operation: Option<GlobMatcher>,
    call_method: Option<CallMethod>,
    error_code: Option<String>,
    rule_id: Option<String>,
}

impl Compiled {
    fn new(policy: &Policy) -> Result<Compiled, AllowlistError> {
        let stored = |reason: String| AllowlistError::Stored { id: policy.id, reason };
        let matches = &policy.matches;
        let glob = |glob: &Option<String>, field: &str| -> Result<Option<GlobMatcher>, AllowlistError> {
            glob.as_deref()
                .map(|glob| compile_glob(glob).map_err(|reason| stored(format!("{field} {glob:?}: {reason}"))))
                .transpose()
        };
        let expires_ms = match &policy.expires_at {
            Some(text) => Some(
                DateTime::parse_from_rfc3339(text)
                    .map_err(|_| stored(format!("expires_at {text:?} is not an RFC 3339 time")))?
                    .timestamp_millis(),
            ),
            None => None,
        };
        Ok(Compiled {
            id: policy.id,
            expires_ms,
            source: matches
                .source_ip
                .as_deref()
                .map(|ip| parse_net(ip).map_err(|reason| stored(format!("source_ip {ip:?}: {reason}"))))
                .transpose()?,
            api: glob(&matches.api, "api")?,
            operation: glob(&matches.operation, "operation")?,
            call_method: matches
                .call_method
                .as_deref()
                .map(|method| parse_method(method).ok_or_else(|| stored(format!("call_method {method:?} is unknown"))))
                .transpose()?,
            error_code: matches.error_code.clone(),
            rule_id: matches.rule_id.clone(),
        })
    }

    fn matches(&self, rule_id: &str, event: &AuditEvent, catalog: &OperationCatalog, now_ms: i64) -> bool {
        if self.expires_ms.is_some_and(|expires| expires <= now_ms) {
            return false;
        }
        if self.rule_id.as_deref().is_some_and(|id| id != rule_id) {
            return false;
        }
        if self.call_method.is_some_and(|method| method != event.call_method) {
            return false;
        }
        if let Some(code) = &self.error_code
            && !event
                .outcome
                .error_code
                .as_deref()
                .is_some_and(|actual| actual.eq_ignore_ascii_case(code))
        {
            return false;
        }
        if let Some(net) = &self.source {
            let ip = event.source.as_ref().and_then(|source| source.ip);
            if !ip.is_some_and(|ip| net.contains(&ip)) {
                return false;
            }
        }
        if let Some(api) = &self.api {
            let name = format!("{}.{}", event.service, event.action);
            if !api.is_match(name) {
                return false;
            }
        }
        if let Some(operation) = &self.operation
            && !event
                .operations
                .iter()
                .any(|index| operation.is_match(catalog.name(*index)))
        {
            return false;
        }
        true
    }
}

/// The compiled policies the engine checks every rule match against.
/// Policies with an access key are indexed by it, so a match looks at the
/// policies of its own key plus the keyless ones.
#[derive(Debug, Default)]
pub struct Allowlist {
    by_key: HashMap<String, Vec<Compiled>>,
    keyless: Vec<Compiled>,
}

impl Allowlist {
    /// Compile stored policies. A policy that does not compile (edited by hand
    /// into something invalid) is skipped and reported in the second value.
    pub fn compile(policies: &[Policy]) -> (Allowlist, Vec<AllowlistError>) {
        let mut allowlist = Allowlist::default();
        let mut errors = Vec::new();
        for policy in policies {
            match Compiled::new(policy) {
                Ok(compiled) => match &policy.matches.access_key {
                    Some(key) => allowlist.by_key.entry(key.clone()).or_default().push(compiled),
                    None => allowlist.keyless.push(compiled),
                },
                Err(error) => errors.push(error),
            }
        }
        (allowlist, errors)
    }

    /// Load and compile the store's policies (problems are logged, not fatal).
    pub fn load(connection: &Connection) -> Result<Allowlist, AllowlistError> {
        let (allowlist, errors) = Allowlist::compile(&list(connection)?);
        for error in errors {
            tracing::error!(%error, "allowlist policy skipped");
        }
        Ok(allowlist)
    }

    pub fn is_empty(&self) -> bool {
        self.keyless.is_empty() && self.by_key.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keyless.len() + self.by_key.values().map(Vec::len).sum::<usize>()
    }

    /// The id of the oldest active policy that allows this match, if any.
    pub fn allowing(&self, rule_id: &str, event: &AuditEvent, catalog: &OperationCatalog, now_ms: i64) -> Option<i64> {
        if self.is_empty() {
            return None;
        }
        let keyed = event
            .access_key_id()
            .and_then(|key| self.by_key.get(key))
            .map_or(&[][..], Vec::as_slice);
        keyed
            .iter()
            .chain(&self.keyless)
            .filter(|policy| policy.matches(rule_id, event, catalog, now_ms))
            .map(|policy| policy.id)
            .min()
    }
}

/// Hits accumulated over one batch: one entry per policy.
#[derive(Debug, Default)]
pub struct HitCounter {
    hits: HashMap<i64, PolicyHit>,
}

impl HitCounter {
    pub fn record(&mut self, id: i64, event_time: &str) {
        let hit = self.hits.entry(id).or_insert_with(|| PolicyHit {
            id,
            count: 0,
            last_hit: event_time.to_string(),
        });
        hit.count += 1;
        if event_time > hit.last_hit.as_str() {
            hit.last_hit = event_time.to_string();
        }
    }

    /// The batch's hits, by policy id, and a fresh counter.
    pub fn drain(&mut self) -> Vec<PolicyHit> {
        let mut hits: Vec<PolicyHit> = self.hits.drain().map(|(_, hit)| hit).collect();
        hits.sort_by_key(|hit| hit.id);
        hits
    }

    pub fn total(&self) -> u64 {
        self.hits.values().map(|hit| hit.count).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::model::*;

    fn event(key: &str, ip: &str, service: &str, action: &str) -> AuditEvent {
        AuditEvent {
            provider: Provider::Tencent,
            event_id: "e".into(),
            request_id: None,
            time: DateTime::<Utc>::default(),
            time_source: TimeSource::Event,
            account_id: None,
            account_name: None,
            principal: Principal::default(),
            access_key: Some(AccessKey {
                id: key.into(),
                temporary: false,
            }),
            source: Some(SourceAddress {
                text: ip.into(),
                ip: ip.parse().ok(),
                kind: IpKind::Public,
            }),
            platform_source: None,
            user_agent: None,
            service: service.into(),
            action: action.into(),
            operations: vec![],
            region: None,
            call_method: CallMethod::Api,
            outcome: Outcome::default(),
            read_only: None,
            resource: Resource::default(),
            mfa: None,
            degraded: None,
            raw: serde_json::Value::Null,
            origin: Default::default(),
        }
    }

    fn policy(id: i64, matches: PolicyMatch, expires_at: Option<&str>) -> Policy {
        Policy {
            id,
            matches,
            owner: "ops".into(),
            reason: "known".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: expires_at.map(str::to_string),
            hit_count: 0,
            last_hit: None,
        }
    }

    #[test]
    fn fields_combine_and_absent_fields_match_anything() {
        let catalog = OperationCatalog::default();
        let (allowlist, errors) = Allowlist::compile(&[
            policy(
                1,
                PolicyMatch {
                    access_key: Some("AKIDone".into()),
                    api: Some("cam.*".into()),
                    ..Default::default()
                },
                None,
            ),
            policy(
                2,
                PolicyMatch {
                    source_ip: Some("10.0.0.0/8".into()),
                    call_method: Some("api".into()),
                    rule_id: Some("r1".into()),
                    ..Default::default()
                },
                None,
            ),
        ]);
        assert!(errors.is_empty());
        assert_eq!(allowlist.len(), 2);
        let now = 0;
        assert_eq!(
            allowlist.allowing("any", &event("AKIDone", "1.2.3.4", "cam", "AddUser"), &catalog, now),
            Some(1)
        );
        assert_eq!(
            allowlist.allowing(
                "any",
                &event("AKIDone", "1.2.3.4", "cvm", "RunInstances"),
                &catalog,
                now
            ),
            None
        );
        assert_eq!(
            allowlist.allowing("any", &event("AKIDtwo", "1.2.3.4", "cam", "AddUser"), &catalog, now),
            None
        );
        assert_eq!(
            allowlist.allowing("r1", &event("AKIDtwo", "10.9.8.7", "cvm", "X"), &catalog, now),
            Some(2)
        );
        assert_eq!(
            allowlist.allowing("r2", &event("AKIDtwo", "10.9.8.7", "cvm", "X"), &catalog, now),
            None
        );
        // Both match: the oldest policy counts.
        assert_eq!(
            allowlist.allowing("r1", &event("AKIDone", "10.0.0.1", "cam", "AddUser"), &catalog, now),
            Some(1)
        );
    }

    #[test]
    fn expired_policies_do_not_match() {
        let catalog = OperationCatalog::default();
        let (allowlist, _) = Allowlist::compile(&[policy(
            1,
            PolicyMatch {
                access_key: Some("AKIDone".into()),
                ..Default::default()
            },
            Some("2026-01-01T00:00:00.000Z"),
        )]);
        let expiry = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|time| time.timestamp_millis())
            .unwrap_or_default();
        let sample = event("AKIDone", "1.2.3.4", "cam", "AddUser");
        assert_eq!(allowlist.allowing("r", &sample, &catalog, expiry - 1), Some(1));
        assert_eq!(allowlist.allowing("r", &sample, &catalog, expiry), None);
    }

    #[test]
    fn validation_refuses_empty_and_bad_policies() {
        let mut empty = NewPolicy {
            owner: "a".into(),
            reason: "b".into(),
            ..Default::default()
        };
        assert!(matches!(validate(&mut empty), Err(AllowlistError::MatchesEverything)));
        let mut bad_ip = NewPolicy {
            matches: PolicyMatch {
                source_ip: Some("10.0.0".into()),
                ..Default::default()
            },
            owner: "a".into(),
            reason: "b".into(),
            ..Default::default()
        };
        let error = validate(&mut bad_ip).map(|_| ()).unwrap_err().to_string();
        assert!(error.contains("--ip") && error.contains("10.0.0"), "{error}");
        let mut good = NewPolicy {
            matches: PolicyMatch {
                source_ip: Some(" 10.1.2.3/8 ".into()),
                call_method: Some("API".into()),
                ..Default::default()
            },
            owner: "a".into(),
            reason: "b".into(),
            ..Default::default()
        };
        assert!(validate(&mut good).is_ok());
        assert_eq!(good.matches.source_ip.as_deref(), Some("10.0.0.0/8"));
        assert_eq!(good.matches.call_method.as_deref(), Some("api"));
        let mut bad_glob = NewPolicy {
            matches: PolicyMatch {
                api: Some("cam.[".into()),
                ..Default::default()
            },
            owner: "a".into(),
            reason: "b".into(),
            ..Default::default()
        };
        assert!(validate(&mut bad_glob).is_err());
    }

    #[test]
    fn expiry_formats() {
        let now = DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z")
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_default();
        let at = |text: &str| parse_expiry(text, now).map(timestamp).ok();
        assert_eq!(at("2026-04-01").as_deref(), Some("2026-04-01T00:00:00.000Z"));
        assert_eq!(at("2026-04-01 12:30:00").as_deref(), Some("2026-04-01T12:30:00.000Z"));
        assert_eq!(
            at("2026-04-01T12:30:00+08:00").as_deref(),
            Some("2026-04-01T04:30:00.000Z")
        );
        assert_eq!(at("7d").as_deref(), Some("2026-03-09T00:00:00.000Z"));
        assert!(parse_expiry("next week", now).is_err());
    }

    #[test]
    fn hits_accumulate_per_policy() {
        let mut counter = HitCounter::default();
        counter.record(2, "2026-01-01T00:00:02.000Z");
        counter.record(1, "2026-01-01T00:00:01.000Z");
        counter.record(2, "2026-01-01T00:00:00.000Z");
        assert_eq!(counter.total(), 3);
        let hits = counter.drain();
        assert_eq!(
            hits,
            vec![
                PolicyHit {
                    id: 1,
                    count: 1,
                    last_hit: "2026-01-01T00:00:01.000Z".into()
                },
                PolicyHit {
                    id: 2,
                    count: 2,
                    last_hit: "2026-01-01T00:00:02.000Z".into()
                },
            ]
        );
        assert_eq!(counter.total(), 0);
    }
}
