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
//! connection committed (checked once per batch); on a PostgreSQL store,
//! shared by several daemons, when the change log's last id moved.
//!
//! Expiry is by **wall clock**: a policy whose `expires_at` has passed no
//! longer matches anything, whatever the event's own time (a replay of last
//! month's logs is filtered by the policies in force now). The engine reads
//! the clock once per batch. A match suppressed by several policies counts on
//! the oldest (lowest id) only, so the policies' hits add up to the number of
//! suppressed matches; `last_hit` is the event time of the last suppressed call.
//!
//! A policy can switch detection off, so it is guarded: one that matches
//! every API or operation, covers a whole address space, or narrows nothing
//! (no key, address, API, operation or error code) is **broad**, refused
//! unless an admin overrides it explicitly — the override is recorded with
//! the policy (`broad`, `approved_by`). Every policy records its actor and
//! channel (`created_by`, `via`), every change goes to the sealed change log
//! (`changes.rs`), and high-level matches a policy suppresses are counted on
//! their own (`high_hits`), shown in the console and exported as a metric.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::db::{Db, DbError, DbExt, Row, get as column};
use crate::db_params;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use globset::{GlobBuilder, GlobMatcher};
use ipnet::IpNet;
use serde::Serialize;

use super::changes::{self, Actor, Subject};
use super::store::timestamp;
use crate::event::model::{AuditEvent, CallMethod};
use crate::mask::mask_access_key;
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
    #[error(
        "allowlist policy refused: it is broad ({}); narrow it, or have an admin allow it explicitly \
         (`allowlist add --allow-broad`, API `\"allow_broad\": true` with an admin token) — the override is recorded",
        reasons.join("; ")
    )]
    Broad { reasons: Vec<String> },
    #[error("allowlist policy: {0}")]
    Actor(#[from] changes::BadActor),
    #[error("allowlist policy {0} not found")]
    NotFound(i64),
    #[error("allowlist policy {id} (stored) is invalid: {reason}")]
    Stored { id: i64, reason: String },
    #[error("allowlist table: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("allowlist table: {0}")]
    Db(#[from] DbError),
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
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// An admin's explicit permission to store a broad policy.
    pub allow_broad: bool,
}

/// A stored policy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Policy {
    pub id: i64,
    #[serde(flatten)]
    pub matches: PolicyMatch,
    /// Who added it: the API token's name or the command line's `--actor`.
    pub created_by: String,
    /// The channel it was added through (`api`, `cli (unix user …)`).
    pub via: String,
    pub reason: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    /// Why the policy is broad, when an admin allowed it anyway.
    pub broad: Option<String>,
    /// The admin who allowed a broad policy.
    pub approved_by: Option<String>,
    pub hit_count: u64,
    /// Event time of the last call the policy suppressed.
    pub last_hit: Option<String>,
    /// Suppressed matches of high-level rules (never silent: shown and exported).
    pub high_hits: u64,
    pub last_high_hit: Option<String>,
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
    /// Of `count`, matches of high-level rules.
    pub high: u64,
    pub last_high_hit: Option<String>,
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
    policy.reason = policy.reason.trim().to_string();
    if policy.reason.is_empty() {
        return Err(AllowlistError::Empty { field: "--reason" });
    }
    Ok(())
}

/// The narrowest IPv4 and IPv6 prefixes a policy may give without an
/// override: a shorter one covers a sizeable part of the whole address space.
pub const MIN_PREFIX_V4: u8 = 8;
pub const MIN_PREFIX_V6: u8 = 16;

/// Names no narrow glob matches all of: service.action names (`api`) and
/// operation ids (`operation`) of different shapes. A glob matching every
/// one of them (`*`, `*.*`, `?*`, `[!z]*`) is taken to match everything.
const API_PROBES: &[&str] = &[
    "iam.CreateUser",
    "ec2.RunInstances",
    "q.z",
    "trailwarden-probe-7f3a.NoSuchAction9",
];
const OPERATION_PROBES: &[&str] = &[
    "iam.user.create",
    "compute.instance.delete",
    "q.z",
    "trailwarden.probe.none",
];

fn matches_every(glob: &str, probes: &[&str]) -> bool {
    compile_glob(glob).is_ok_and(|glob| probes.iter().all(|probe| glob.is_match(probe)))
}

/// Why a (validated) policy is broad; empty when it is not. A broad policy
/// matches every API or operation, covers a whole address space (a prefix
/// shorter than /8 for IPv4, /16 for IPv6), or narrows nothing: without a
/// key, an address, an API, an operation or an error code it allows every
/// match of its rule (or of every rule).
pub fn breadth(matches: &PolicyMatch) -> Vec<String> {
    let mut reasons = Vec::new();
    let mut narrows = matches.access_key.is_some() || matches.error_code.is_some();
    for (field, glob, probes) in [
        ("--api", &matches.api, API_PROBES),
        ("--operation", &matches.operation, OPERATION_PROBES),
    ] {
        if let Some(glob) = glob {
            if matches_every(glob, probes) {
                reasons.push(format!("{field} {glob:?} matches every name"));
            } else {
                narrows = true;
            }
        }
    }
    if let Some(ip) = &matches.source_ip
        && let Ok(net) = parse_net(ip)
    {
        let (prefix, minimum) = match net {
            IpNet::V4(net) => (net.prefix_len(), MIN_PREFIX_V4),
            IpNet::V6(net) => (net.prefix_len(), MIN_PREFIX_V6),
        };
        if prefix == 0 {
            reasons.push(format!("--ip {ip} is the whole address space"));
        } else if prefix < minimum {
            reasons.push(format!(
                "--ip {ip} covers a whole region of the address space (shorter than /{minimum})"
            ));
        } else {
            narrows = true;
        }
    }
    if !narrows {
        let scope = match &matches.rule_id {
            Some(rule) => format!("every match of rule {rule}"),
            None => "every match of every rule".to_string(),
        };
        let scope = match &matches.call_method {
            Some(method) => format!("{scope} by the {method} call method"),
            None => scope,
        };
        reasons.push(format!(
            "no key, address, API, operation or error code narrows it: it allows {scope}{}",
            if matches.rule_id.is_some() {
                " (to stop a rule, switch it off in a rule override file)"
            } else {
                ""
            }
        ));
    }
    reasons
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

const POLICY_COLUMNS: &str = "id, access_key, source_ip, api, operation, call_method, error_code, rule_id, created_by, \
     via, reason, created_at, expires_at, broad, approved_by, hit_count, last_hit, high_hits, last_high_hit";

fn policy_row(row: &dyn Row) -> Result<Policy, DbError> {
    Ok(Policy {
        id: column(row, 0)?,
        matches: PolicyMatch {
            access_key: column(row, 1)?,
            source_ip: column(row, 2)?,
            api: column(row, 3)?,
            operation: column(row, 4)?,
            call_method: column(row, 5)?,
            error_code: column(row, 6)?,
            rule_id: column(row, 7)?,
        },
        created_by: column(row, 8)?,
        via: column(row, 9)?,
        reason: column(row, 10)?,
        created_at: column(row, 11)?,
        expires_at: column(row, 12)?,
        broad: column(row, 13)?,
        approved_by: column(row, 14)?,
        hit_count: column::<i64>(row, 15)?.max(0) as u64,
        last_hit: column(row, 16)?,
        high_hits: column::<i64>(row, 17)?.max(0) as u64,
        last_high_hit: column(row, 18)?,
    })
}

/// A policy as the change log and notifications show it (key masked).
pub fn policy_detail(policy: &Policy) -> serde_json::Value {
    let mut matches = policy.matches.clone();
    matches.access_key = matches.access_key.as_deref().map(mask_access_key);
    serde_json::json!({
        "matches": matches,
        "reason": policy.reason,
        "expires_at": policy.expires_at,
        "broad": policy.broad,
        "approved_by": policy.approved_by,
    })
}

/// Validate and store a policy in the caller's transaction, with its change-
/// log entry and chain links; returns it as stored. A broad policy needs
/// `allow_broad` (the caller checks the actor may give it).
pub fn add(
    db: &mut dyn Db,
    mut policy: NewPolicy,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Policy, AllowlistError> {
    validate(&mut policy)?;
    let reasons = breadth(&policy.matches);
    if !reasons.is_empty() && !policy.allow_broad {
        return Err(AllowlistError::Broad { reasons });
    }
    let (broad, approved_by) = if reasons.is_empty() {
        (None, None)
    } else {
        (Some(reasons.join("; ")), Some(actor.name.clone()))
    };
    let matches = &policy.matches;
    let at = timestamp(now);
    let expires_at = policy.expires_at.map(timestamp);
    let id = db.insert_id(
        "INSERT INTO allowlist (access_key, source_ip, api, operation, call_method, error_code, rule_id, created_by, \
         via, reason, created_at, expires_at, broad, approved_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        db_params![
            matches.access_key.as_deref(),
            matches.source_ip.as_deref(),
            matches.api.as_deref(),
            matches.operation.as_deref(),
            matches.call_method.as_deref(),
            matches.error_code.as_deref(),
            matches.rule_id.as_deref(),
            &actor.name,
            &actor.via,
            &policy.reason,
            &at,
            expires_at.as_deref(),
            broad.as_deref(),
            approved_by.as_deref(),
        ],
    )?;
    let stored = get(db, id)?.ok_or(AllowlistError::NotFound(id))?;
    changes::record(db, actor, Subject::Policy, id, "added", &policy_detail(&stored), &at)?;
    Ok(stored)
}

pub fn get(db: &mut dyn Db, id: i64) -> Result<Option<Policy>, AllowlistError> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| format!("SELECT {POLICY_COLUMNS} FROM allowlist WHERE id = ?1"));
    Ok(db.query_opt(sql, db_params![id], policy_row)?)
}

/// Every policy, oldest first.
pub fn list(db: &mut dyn Db) -> Result<Vec<Policy>, AllowlistError> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| format!("SELECT {POLICY_COLUMNS} FROM allowlist ORDER BY id"));
    Ok(db.query_all(sql, &[], policy_row)?)
}

/// Remove a policy in the caller's transaction, with its change-log entry
/// and removal link; returns the policy as it was.
pub fn remove(db: &mut dyn Db, id: i64, actor: &Actor, now: DateTime<Utc>) -> Result<Policy, AllowlistError> {
    let policy = get(db, id)?.ok_or(AllowlistError::NotFound(id))?;
    db.execute("DELETE FROM allowlist WHERE id = ?1", db_params![id])?;
    changes::record(
        db,
        actor,
        Subject::Policy,
        id,
        "removed",
        &policy_detail(&policy),
        &timestamp(now),
    )?;
    Ok(policy)
}

/// Change a policy's expiry (`None`: never) in the caller's transaction, with
/// its change-log entry and a new seal; returns the policy as it is now.
pub fn set_expiry(
    db: &mut dyn Db,
    id: i64,
    expires_at: Option<DateTime<Utc>>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Policy, AllowlistError> {
    let before = get(db, id)?.ok_or(AllowlistError::NotFound(id))?;
    let expires = expires_at.map(timestamp);
    db.execute(
        "UPDATE allowlist SET expires_at = ?2 WHERE id = ?1",
        db_params![id, expires.as_deref()],
    )?;
    let policy = get(db, id)?.ok_or(AllowlistError::NotFound(id))?;
    let mut detail = policy_detail(&policy);
    detail["previous_expires_at"] = serde_json::json!(before.expires_at);
    changes::record(db, actor, Subject::Policy, id, "changed", &detail, &timestamp(now))?;
    Ok(policy)
}

/// Add a batch's hits (inside the batch transaction): one UPDATE per policy.
pub fn write_hits<D: crate::db::Db + ?Sized>(db: &mut D, hits: &[PolicyHit]) -> crate::db::DbResult<()> {
    for hit in hits {
        db.execute(
            "UPDATE allowlist SET hit_count = hit_count + ?2, \
             last_hit = CASE WHEN last_hit IS NULL OR last_hit < ?3 THEN ?3 ELSE last_hit END, \
             high_hits = high_hits + ?4, \
             last_high_hit = CASE WHEN CAST(?5 AS TEXT) IS NOT NULL AND (last_high_hit IS NULL OR last_high_hit < ?5) THEN ?5 \
             ELSE last_high_hit END WHERE id = ?1",
            crate::db_params![hit.id, hit.count as i64, hit.last_hit.as_str(), hit.high as i64, hit.last_high_hit.as_deref()],
        )?;
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

    /// Load and compile the store's policies (problems are logged, not
    /// fatal). A policy whose row is not what the hash chain last sealed —
    /// inserted or edited behind trailwarden's back — is not applied.
    pub fn load(db: &mut dyn Db) -> Result<Allowlist, AllowlistError> {
        let mut policies = list(db)?;
        let mut unsealed = Vec::new();
        for policy in &policies {
            if !super::seal::policy_is_sealed(db, policy.id)? {
                unsealed.push(policy.id);
            }
        }
        if !unsealed.is_empty() {
            for id in &unsealed {
                tracing::error!(
                    policy = id,
                    "allowlist policy not applied: it is not what the hash chain sealed (inserted or changed \
                     behind trailwarden's back; see `store verify`)"
                );
            }
            policies.retain(|policy| !unsealed.contains(&policy.id));
        }
        let (allowlist, errors) = Allowlist::compile(&policies);
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
    /// Count one suppressed match on policy `id`; `high` when its rule's
    /// level is high.
    pub fn record(&mut self, id: i64, event_time: &str, high: bool) {
        let hit = self.hits.entry(id).or_insert_with(|| PolicyHit {
            id,
            count: 0,
            last_hit: event_time.to_string(),
            high: 0,
            last_high_hit: None,
        });
        hit.count += 1;
        if event_time > hit.last_hit.as_str() {
            hit.last_hit = event_time.to_string();
        }
        if high {
            hit.high += 1;
            if hit.last_high_hit.as_deref().is_none_or(|last| event_time > last) {
                hit.last_high_hit = Some(event_time.to_string());
            }
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

    /// Suppressed matches of high-level rules so far in the batch.
    pub fn high(&self) -> u64 {
        self.hits.values().map(|hit| hit.high).sum()
    }
}

#[cfg(test)]
mod tests;
