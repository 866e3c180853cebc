//! Configuration: TOML file + `TRAILWARDEN__*` environment overrides → validated `Settings`.
//!
//! The raw form mirrors the file (every key optional, unknown keys are
//! errors); `Settings` is what the program uses, with durations, zones and
//! offsets parsed. Every error names the key and the file it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;
use chrono_tz::Tz;
use serde::Deserialize;

use crate::event::window::TimeWindow;
pub use crate::source::kafka::{KafkaSettings, StartPosition};

/// The shipped default configuration, also used when `config/default.toml`
/// is not on disk (so `trailwarden run` works from any directory with data).
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration {origin}: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    source: RawSource,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    pipeline: RawPipeline,
    #[serde(default)]
    rules: RawRules,
    #[serde(default)]
    normalize: RawNormalize,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    alarms: RawAlarms,
    #[serde(default)]
    activity: RawActivity,
    #[serde(default)]
    traces: RawTraces,
    #[serde(default)]
    notify: crate::notify::config::RawNotify,
    #[serde(default)]
    api: RawApi,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApi {
    enabled: Option<bool>,
    bind: Option<String>,
    public_url: Option<String>,
    body_limit: Option<usize>,
    #[serde(default)]
    tokens: Vec<RawToken>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Option<String>,
    role: Option<String>,
    sha256: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAlarms {
    count_on_ignored: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawActivity {
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    dir: Option<String>,
    interval: Option<String>,
    keep: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTraces {
    enabled: Option<bool>,
    retention: Option<String>,
    prune_every: Option<String>,
    rule_tag: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: Option<String>,
    #[serde(default)]
    files: RawFiles,
    #[serde(default)]
    kafka: RawKafka,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    brokers: Option<String>,
    topics: Option<Vec<String>>,
    group_id: Option<String>,
    start: Option<String>,
    batch_messages: Option<usize>,
    batch_wait: Option<String>,
    max_message_bytes: Option<u64>,
    dead_letter_topic: Option<String>,
    rebalance_timeout: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    paths: Option<Vec<String>>,
    watch: Option<bool>,
    poll_interval: Option<String>,
    settle: Option<String>,
    max_document_bytes: Option<u64>,
    max_open_files: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<String>,
    samples_per_alarm: Option<u32>,
    max_sample_bytes: Option<u64>,
    synchronous: Option<String>,
    chain_log_interval: Option<String>,
    #[serde(default)]
    backup: RawBackup,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    batch_events: Option<usize>,
    channel_batches: Option<usize>,
    store_retries: Option<u32>,
    allowed_lateness: Option<String>,
    max_hold: Option<String>,
    max_buffered_events: Option<usize>,
    max_buffered_bytes: Option<u64>,
    batch_bytes: Option<u64>,
    shutdown_deadline: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    max_entries: Option<usize>,
    key_ttl: Option<String>,
    principal_ttl: Option<String>,
    first_seen_ttl: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRules {
    dir: Option<String>,
    timezone: Option<String>,
    disabled: Option<Vec<String>>,
    disabled_tags: Option<Vec<String>>,
    enabled: Option<Vec<String>>,
    overrides: Option<Vec<String>>,
    watch: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNormalize {
    naive_time_offset: Option<String>,
    earliest_event_time: Option<String>,
    max_future_skew: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the settings came from (a path, or "built-in defaults").
    pub origin: String,
    pub source: SourceKind,
    pub files: FileSourceSettings,
    pub kafka: KafkaSettings,
    pub store: StoreSettings,
    pub pipeline: PipelineSettings,
    pub state: StateSettings,
    pub rules: RuleSettings,
    pub naive_time_offset: FixedOffset,
    /// Believable event times (`normalize.earliest_event_time`, `normalize.max_future_skew`).
    pub time_window: TimeWindow,
    pub log: LogSettings,
    pub activity: ActivitySettings,
    pub traces: TraceSettings,
    /// `[notify]`: topics, subscriptions, SMTP.
    pub notify: std::sync::Arc<crate::notify::NotifySettings>,
    pub api: ApiSettings,
}

/// `[api]`: the operator HTTP API (and the console it serves).
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// Whether `run` starts the HTTP server at all.
    pub enabled: bool,
    /// Where it listens (127.0.0.1:8080 by default: local only).
    pub bind: std::net::SocketAddr,
    /// The external URL printed in links (behind a proxy), else built from `bind`.
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes (larger ones get 413).
    pub body_limit: usize,
    /// Bearer tokens; empty = `run` makes a one-off admin token in a file.
    pub tokens: Vec<ApiToken>,
}

/// A role of an API token: each includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every GET.
    Viewer,
    /// + status changes, allowlist, remarks and assets changes, notification resends.
    Operator,
    /// + rule reloads.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text.trim())
    }
}

/// A configured API token: only the SHA-256 of the secret is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    /// Shown by `/api/v1/me` and recorded as the actor of every change made with it.
    pub name: String,
    pub role: Role,
    /// SHA-256 of the token text.
    pub sha256: [u8; 32],
}

/// `[activity]`: the god view.
#[derive(Clone, Debug)]
pub struct ActivitySettings {
    /// Hourly rollups of every event and first-seen (access key, source IP) pairs.
    pub enabled: bool,
}

/// `[traces]`: key-operation traces.
#[derive(Clone, Debug)]
pub struct TraceSettings {
    pub enabled: bool,
    /// Traces older than this, behind the newest event time seen, are deleted.
    pub retention: Duration,
    /// Pruning runs at most once per this much event time.
    pub prune_every: Duration,
    /// Rules with this tag name the key operations.
    pub rule_tag: String,
}

/// Which source the daemon reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Files,
    Kafka,
}

#[derive(Clone, Debug)]
pub struct FileSourceSettings {
    /// Files or directories read by the daemon.
    pub paths: Vec<PathBuf>,
    /// Keep watching directories for new files after the first pass.
    pub watch: bool,
    /// Rescan interval (a fallback to filesystem notifications).
    pub poll_interval: Duration,
    /// A changed file must stay unchanged this long before it is read.
    pub settle: Duration,
    pub max_document_bytes: usize,
    /// Most files open at once while reading many merged in event-time order.
    pub max_open_files: usize,
}

#[derive(Clone, Debug)]
pub struct StoreSettings {
    pub path: PathBuf,
    pub samples_per_alarm: u32,
    /// Largest sample (an event kept as evidence) in bytes of JSON; longer values are cut.
    pub max_sample_bytes: usize,
    pub synchronous_full: bool,
    /// The daemon logs the hash chain's head this often (for anchoring elsewhere).
    pub chain_log_interval: Duration,
    /// Scheduled online backups, when a directory is set.
    pub backup: Option<BackupSettings>,
    /// New matches for an ignored alarm are counted on it instead of opening a new one.
    pub count_on_ignored: bool,
}

#[derive(Clone, Debug)]
pub struct BackupSettings {
    pub dir: PathBuf,
    pub interval: Duration,
    /// Backups kept; older ones are deleted.
    pub keep: usize,
}

#[derive(Clone, Debug)]
pub struct PipelineSettings {
    pub batch_events: usize,
    pub channel_batches: usize,
    pub store_retries: u32,
    /// Events are evaluated in event-time order within this lateness.
    pub allowed_lateness: Duration,
    /// Daemon: the longest an event waits for reordering (0 = event time only).
    pub max_hold: Duration,
    pub max_buffered_events: usize,
    /// Most memory (estimated from the records' JSON) held for reordering.
    pub max_buffered_bytes: usize,
    /// Most bytes of records per batch read from a source.
    pub batch_bytes: usize,
    /// Shutdown (stop intake, drain, commit) must finish within this.
    pub shutdown_deadline: Duration,
}

#[derive(Clone, Debug)]
pub struct StateSettings {
    pub max_entries: usize,
    pub key_ttl: Duration,
    pub principal_ttl: Duration,
    pub first_seen_ttl: Duration,
}

#[derive(Clone, Debug)]
pub struct RuleSettings {
    pub dir: PathBuf,
    pub timezone: Tz,
    /// Rule ids switched off.
    pub disabled: Vec<String>,
    /// Rules with any of these tags switched off.
    pub disabled_tags: Vec<String>,
    /// Rule ids switched on even if disabled by the pack, a tag or an override.
    pub enabled: Vec<String>,
    /// Operator override files, applied in order after the rule directory.
    pub overrides: Vec<PathBuf>,
    /// Reload when the rule directory or an override file changes (SIGHUP always reloads).
    pub watch: bool,
}

#[derive(Clone, Debug)]
pub struct LogSettings {
    pub level: String,
    pub json: bool,
}

impl Settings {
    /// Load settings: the given file, else `config/default.toml` if present,
    /// else the built-in default; then `TRAILWARDEN__<SECTION>__<KEY>` overrides.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let (origin, text) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Invalid {
                    origin: path.display().to_string(),
                    message: format!("cannot read: {error}"),
                })?;
                (path.display().to_string(), text)
            }
            None => match std::fs::read_to_string(DEFAULT_CONFIG_PATH) {
                Ok(text) => (DEFAULT_CONFIG_PATH.to_string(), text),
                Err(_) => ("built-in defaults".to_string(), DEFAULT_CONFIG.to_string()),
            },
        };
        Settings::from_toml(&origin, &text, true)
    }

    /// Parse settings from TOML text (with or without the process's
    /// `TRAILWARDEN__*` environment overrides).
    pub fn from_toml(origin: &str, text: &str, environment: bool) -> Result<Settings, ConfigError> {
        let variables = if environment {
            environment_overrides(std::env::vars_os())?
        } else {
            Vec::new()
        };
        Settings::from_sources(origin, text, &variables)
    }

    /// Parse settings from TOML text and `TRAILWARDEN__*` variables (name, value).
    /// A mistake is blamed on where it is: the file's own keys on the file, an
    /// unknown key or a value of the wrong type on the variable that set it,
    /// and a bad value on the variable whose key it names, else on the file.
    pub fn from_sources(origin: &str, text: &str, variables: &[(String, String)]) -> Result<Settings, ConfigError> {
        let invalid = |origin: &str, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        };
        raw_config(text, &[]).map_err(|message| invalid(origin, message))?;
        for variable in variables {
            raw_config("", std::slice::from_ref(variable))
                .map_err(|message| invalid(&format!("environment variable {}", variable.0), message))?;
        }
        let raw = raw_config(text, variables)
            .map_err(|message| invalid(&format!("{origin} with its TRAILWARDEN__* overrides"), message))?;
        Settings::validate(origin, raw).map_err(|message| {
            let blamed = blamed_variable(variables, &message)
                .map_or_else(|| origin.to_string(), |name| format!("environment variable {name}"));
            invalid(&blamed, message)
        })
    }

    fn validate(origin: &str, raw: RawConfig) -> Result<Settings, String> {
        let duration = |key: &str, value: Option<String>, default: &str| -> Result<Duration, String> {
            let text = value.unwrap_or_else(|| default.to_string());
            humantime::parse_duration(&text).map_err(|error| {
                format!("`{key}` = \"{text}\" is not a duration ({error}); use e.g. \"2s\", \"500ms\"")
            })
        };
        let files = FileSourceSettings {
            paths: raw
                .source
                .files
                .paths
                .unwrap_or_else(|| vec!["examples".to_string()])
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            watch: raw.source.files.watch.unwrap_or(true),
            poll_interval: not_zero(
                "source.files.poll_interval",
                duration("source.files.poll_interval", raw.source.files.poll_interval, "2s")?,
                "how often watched directories are rescanned",
            )?,
            settle: duration("source.files.settle", raw.source.files.settle, "1s")?,
            max_document_bytes: usize::try_from(raw.source.files.max_document_bytes.unwrap_or(256 << 20))
                .map_err(|_| "`source.files.max_document_bytes` is too large".to_string())?,
            max_open_files: match raw.source.files.max_open_files {
                None => 256,
                Some(0) => return Err("`source.files.max_open_files` = 0: at least one file must be open".into()),
                Some(count) => count,
            },
        };
        if files.max_document_bytes < 1024 {
            return Err("`source.files.max_document_bytes` must be at least 1024".into());
        }
        let source = match raw.source.kind.as_deref().unwrap_or("files") {
            "files" => SourceKind::Files,
            "kafka" => SourceKind::Kafka,
            other => return Err(format!("`source.kind` = \"{other}\" must be \"files\" or \"kafka\"")),
        };
        let kafka = kafka_settings(raw.source.kafka, source == SourceKind::Kafka, &duration)?;
        let synchronous = raw.store.synchronous.unwrap_or_else(|| "full".into());
        let synchronous_full = match synchronous.to_ascii_lowercase().as_str() {
            "full" => true,
            "normal" => false,
            other => {
                return Err(format!(
                    "`store.synchronous` = \"{other}\" must be \"full\" or \"normal\""
                ));
            }
        };
        let backup = match raw.store.backup.dir.map(|dir| dir.trim().to_string()) {
            Some(dir) if !dir.is_empty() => Some(BackupSettings {
                dir: PathBuf::from(dir),
                interval: not_zero(
                    "store.backup.interval",
                    duration("store.backup.interval", raw.store.backup.interval, "24h")?,
                    "the time between two scheduled backups",
                )?,
                keep: at_least(
                    "store.backup.keep",
                    raw.store.backup.keep.unwrap_or(7),
                    1,
                    "backups kept; set `store.backup.dir` = \"\" to make none",
                )?,
            }),
            _ => None,
        };
        let store = StoreSettings {
            path: PathBuf::from(raw.store.path.unwrap_or_else(|| "data/trailwarden.db".into())),
            samples_per_alarm: raw.store.samples_per_alarm.unwrap_or(10),
            max_sample_bytes: byte_size("store.max_sample_bytes", raw.store.max_sample_bytes, 32 << 10, 1024)?,
            synchronous_full,
            chain_log_interval: not_zero(
                "store.chain_log_interval",
                duration("store.chain_log_interval", raw.store.chain_log_interval, "1h")?,
                "how often the chain head is logged",
            )?,
            backup,
            count_on_ignored: raw.alarms.count_on_ignored.unwrap_or(true),
        };
        let pipeline = PipelineSettings {
            batch_events: at_least(
                "pipeline.batch_events",
                raw.pipeline.batch_events.unwrap_or(2000),
                1,
                "events per store transaction",
            )?,
            channel_batches: at_least(
                "pipeline.channel_batches",
                raw.pipeline.channel_batches.unwrap_or(8),
                1,
                "batches queued between stages",
            )?,
            store_retries: raw.pipeline.store_retries.unwrap_or(5),
            allowed_lateness: duration("pipeline.allowed_lateness", raw.pipeline.allowed_lateness, "5m")?,
            max_hold: duration("pipeline.max_hold", raw.pipeline.max_hold, "30s")?,
            max_buffered_events: at_least(
                "pipeline.max_buffered_events",
                raw.pipeline.max_buffered_events.unwrap_or(100_000),
                1,
                "events held for reordering",
            )?,
            max_buffered_bytes: byte_size(
                "pipeline.max_buffered_bytes",
                raw.pipeline.max_buffered_bytes,
                256 << 20,
                1 << 20,
            )?,
            batch_bytes: byte_size("pipeline.batch_bytes", raw.pipeline.batch_bytes, 1 << 20, 4096)?,
            shutdown_deadline: not_zero(
                "pipeline.shutdown_deadline",
                duration("pipeline.shutdown_deadline", raw.pipeline.shutdown_deadline, "30s")?,
                "the time a stopping daemon has to commit what it read",
            )?,
        };
        let state = StateSettings {
            max_entries: at_least(
                "state.max_entries",
                raw.state.max_entries.unwrap_or(500_000),
                100,
                "entries per state table; fewer would forget keys and principals within minutes",
            )?,
            key_ttl: not_zero(
                "state.key_ttl",
                duration("state.key_ttl", raw.state.key_ttl, "400d")?,
                "how long a key's last use is remembered",
            )?,
            principal_ttl: not_zero(
                "state.principal_ttl",
                duration("state.principal_ttl", raw.state.principal_ttl, "30d")?,
                "how long a principal's creation is remembered",
            )?,
            first_seen_ttl: not_zero(
                "state.first_seen_ttl",
                duration("state.first_seen_ttl", raw.state.first_seen_ttl, "90d")?,
                "how long a first-seen tuple is remembered",
            )?,
        };
        let zone_name = raw.rules.timezone.unwrap_or_else(|| "Asia/Shanghai".into());
        let timezone = zone_name.parse::<Tz>().map_err(|_| {
            format!("`rules.timezone` = \"{zone_name}\" is not an IANA time zone (e.g. Asia/Shanghai, UTC)")
        })?;
        let rules = RuleSettings {
            dir: PathBuf::from(raw.rules.dir.unwrap_or_else(|| "rules".into())),
            timezone,
            disabled: raw.rules.disabled.unwrap_or_default(),
            disabled_tags: raw.rules.disabled_tags.unwrap_or_default(),
            enabled: raw.rules.enabled.unwrap_or_default(),
            overrides: raw
                .rules
                .overrides
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            watch: raw.rules.watch.unwrap_or(true),
        };
        let offset_text = raw
            .normalize
            .naive_time_offset
            .clone()
            .unwrap_or_else(|| "+08:00".into());
        let naive_time_offset = parse_offset(&offset_text)
            .ok_or_else(|| format!("`normalize.naive_time_offset` = \"{offset_text}\" is not an offset like +08:00"))?;
        let time_window = time_window(&raw.normalize, &duration)?;
        let format = raw.log.format.unwrap_or_else(|| "text".into());
        let json = match format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(format!("`log.format` = \"{other}\" must be \"text\" or \"json\""));
            }
        };
        let level = raw.log.level.unwrap_or_else(|| "info".into());
        check_log_filter(&level).map_err(|problem| format!("`log.level` = \"{level}\": {problem}"))?;
        let activity = ActivitySettings {
            enabled: raw.activity.enabled.unwrap_or(true),
        };
        let traces = TraceSettings {
            enabled: raw.traces.enabled.unwrap_or(true),
            retention: duration("traces.retention", raw.traces.retention, "7d")?,
            prune_every: duration("traces.prune_every", raw.traces.prune_every, "10m")?,
            rule_tag: raw
                .traces
                .rule_tag
                .unwrap_or_else(|| "sec09-03".into())
                .trim()
                .to_string(),
        };
        if traces.retention < Duration::from_secs(60) {
            return Err(format!(
                "`traces.retention` = \"{}\" is too short; keep traces at least 1m (e.g. \"7d\")",
                humantime::format_duration(traces.retention)
            ));
        }
        if traces.prune_every.is_zero() || traces.prune_every > traces.retention {
            return Err(format!(
                "`traces.prune_every` = \"{}\" must be more than 0 and at most `traces.retention` (\"{}\")",
                humantime::format_duration(traces.prune_every),
                humantime::format_duration(traces.retention)
            ));
        }
        if traces.rule_tag.is_empty() {
            return Err(
                "`traces.rule_tag` must not be empty (the shipped key-operation rules carry \"sec09-03\")".into(),
            );
        }
        let notify = std::sync::Arc::new(crate::notify::config::validate(raw.notify, &duration)?);
        let api = api_settings(raw.api)?;
        Ok(Settings {
            notify,
            origin: origin.to_string(),
            source,
            files,
            kafka,
            store,
            pipeline,
            state,
            rules,
            naive_time_offset,
            time_window,
            log: LogSettings { level, json },
            activity,
            traces,
            api,
        })
    }
}

/// A size in bytes: `default` when unset, at least `minimum`.
fn byte_size(key: &str, value: Option<u64>, default: usize, minimum: usize) -> Result<usize, String> {
    let Some(value) = value else {
        return Ok(default);
    };
    match usize::try_from(value) {
        Ok(bytes) if bytes >= minimum => Ok(bytes),
        Ok(_) => Err(format!("`{key}` = {value} is too small: at least {minimum} bytes")),
        Err(_) => Err(format!("`{key}` = {value} is too large for this machine")),
    }
}

/// `normalize.earliest_event_time` and `normalize.max_future_skew`.
fn time_window(raw: &RawNormalize, duration: &DurationParser<'_>) -> Result<TimeWindow, String> {
    let earliest = match raw.earliest_event_time.as_deref().map(str::trim) {
        None => TimeWindow::default().earliest,
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&chrono::Utc))
            .or_else(|_| {
                chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map(|date| date.and_time(chrono::NaiveTime::MIN).and_utc())
            })
            .map_err(|_| {
                format!(
                    "`normalize.earliest_event_time` = \"{text}\" is not a date or an RFC 3339 time \
                     (e.g. \"2006-01-01\", \"2006-01-01T00:00:00Z\")"
                )
            })?,
    };
    if earliest > chrono::Utc::now() {
        return Err(format!(
            "`normalize.earliest_event_time` = \"{}\" is in the future: every record would be refused",
            earliest.to_rfc3339()
        ));
    }
    let max_future_skew = duration("normalize.max_future_skew", raw.max_future_skew.clone(), "1h")?;
    Ok(TimeWindow {
        earliest,
        max_future_skew,
    })
}

/// Longest token name (it becomes the actor of changes, at most 100 characters there).
const MAX_TOKEN_NAME: usize = 64;

/// Validate `[api]` and its `[[api.tokens]]`.
fn api_settings(raw: RawApi) -> Result<ApiSettings, String> {
    let bind_text = raw.bind.unwrap_or_else(|| "127.0.0.1:8080".into());
    let bind = bind_text.trim().parse::<std::net::SocketAddr>().map_err(|_| {
        format!("`api.bind` = \"{bind_text}\" is not an address:port (e.g. \"127.0.0.1:8080\", \"[::1]:8080\")")
    })?;
    let public_url = raw
        .public_url
        .map(|url| url.trim().trim_end_matches('/').to_string())
        .filter(|url| !url.is_empty());
    if let Some(url) = &public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(format!(
            "`api.public_url` = \"{url}\" must start with http:// or https://"
        ));
    }
    let body_limit = raw.body_limit.unwrap_or(65536);
    if !(1024..=64 << 20).contains(&body_limit) {
        return Err(format!(
            "`api.body_limit` = {body_limit} must be between 1024 and 67108864 bytes"
        ));
    }
    let mut tokens: Vec<ApiToken> = Vec::new();
    for (index, token) in raw.tokens.into_iter().enumerate() {
        let key = |field: &str| format!("`api.tokens[{index}].{field}`");
        let name = token.name.unwrap_or_default().trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME || name.chars().any(char::is_control) {
            return Err(format!(
                "{} = \"{name}\" must be a name of 1 to {MAX_TOKEN_NAME} characters (it is the actor of changes)",
                key("name")
            ));
        }
        if tokens.iter().any(|other| other.name == name) {
            return Err(format!(
                "{} = \"{name}\" is used by two tokens; names must be unique",
                key("name")
            ));
        }
        let role_text = token.role.unwrap_or_default();
        let role = Role::parse(&role_text).ok_or_else(|| {
            format!(
                "{} = \"{role_text}\" is not a role (expected viewer, operator or admin)",
                key("role")
            )
        })?;
        let hash_text = token.sha256.unwrap_or_default().trim().to_ascii_lowercase();
        let sha256: [u8; 32] = hex::decode(&hash_text)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                format!(
                    "{} must be 64 hex characters (the SHA-256 of the token; `trailwarden api hash-token` prints it), not {} characters",
                    key("sha256"),
                    hash_text.chars().count()
                )
            })?;
        if tokens.iter().any(|other| other.sha256 == sha256) {
            return Err(format!("{} is the hash of another token too", key("sha256")));
        }
        tokens.push(ApiToken { name, role, sha256 });
    }
    Ok(ApiSettings {
        enabled: raw.enabled.unwrap_or(true),
        bind,
        public_url,
        body_limit,
        tokens,
    })
}

type DurationParser<'a> = dyn Fn(&str, Option<String>, &str) -> Result<Duration, String> + 'a;

/// Validate `[source.kafka]`; the required keys only when Kafka is the source.
fn kafka_settings(raw: RawKafka, required: bool, duration: &DurationParser<'_>) -> Result<KafkaSettings, String> {
    let brokers = raw.brokers.unwrap_or_default().trim().to_string();
    let topics: Vec<String> = raw
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|topic| topic.trim().to_string())
        .filter(|topic| !topic.is_empty())
        .collect();
    let group_id = raw.group_id.unwrap_or_else(|| "trailwarden".into()).trim().to_string();
    if required {
        if brokers.is_empty() {
            return Err(
                "`source.kafka.brokers` is required when `source.kind` = \"kafka\" (e.g. \"kafka1:9092,kafka2:9092\")"
                    .into(),
            );
        }
        if topics.is_empty() {
            return Err(
                "`source.kafka.topics` is required when `source.kind` = \"kafka\" (a list of topic names)".into(),
            );
        }
        if group_id.is_empty() {
            return Err("`source.kafka.group_id` must not be empty".into());
        }
    }
    let start = match raw.start.as_deref().unwrap_or("earliest") {
        "earliest" => StartPosition::Earliest,
        "latest" => StartPosition::Latest,
        other => {
            return Err(format!(
                "`source.kafka.start` = \"{other}\" must be \"earliest\" or \"latest\""
            ));
        }
    };
    let max_message_bytes = usize::try_from(raw.max_message_bytes.unwrap_or(8 << 20))
        .map_err(|_| "`source.kafka.max_message_bytes` is too large".to_string())?;
    if max_message_bytes < 1024 {
        return Err("`source.kafka.max_message_bytes` must be at least 1024".into());
    }
    // Environment overrides cannot carry dots in names: `sasl_password` means `sasl.password`
    // (librdkafka property names have no underscores). They win over the file's.
    let mut properties = BTreeMap::new();
    let (from_environment, from_file): (Vec<_>, Vec<_>) = raw
        .properties
        .into_iter()
        .partition(|(name, _)| name.contains('_') && !name.contains('.'));
    for (name, value) in from_file {
        properties.insert(name, value);
    }
    for (name, value) in from_environment {
        properties.insert(name.replace('_', "."), value);
    }
    for reserved in [
        "bootstrap.servers",
        "group.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
    ] {
        if properties.contains_key(reserved) {
            return Err(format!(
                "`source.kafka.properties` sets \"{reserved}\", which trailwarden manages (use brokers / group_id; offsets are committed after the store)"
            ));
        }
    }
    Ok(KafkaSettings {
        brokers,
        topics,
        group_id,
        start,
        batch_messages: at_least(
            "source.kafka.batch_messages",
            raw.batch_messages.unwrap_or(2000),
            1,
            "messages per micro-batch",
        )?,
        batch_wait: not_zero(
            "source.kafka.batch_wait",
            duration("source.kafka.batch_wait", raw.batch_wait, "500ms")?,
            "the longest a micro-batch waits to fill up",
        )?,
        max_message_bytes,
        dead_letter_topic: raw
            .dead_letter_topic
            .map(|topic| topic.trim().to_string())
            .filter(|topic| !topic.is_empty()),
        rebalance_timeout: not_zero(
            "source.kafka.rebalance_timeout",
            duration("source.kafka.rebalance_timeout", raw.rebalance_timeout, "60s")?,
            "the time a revoked partition's batch has to commit",
        )?,
        properties,
    })
}

/// Prefix of environment overrides (matched ignoring case, like the `config` crate does).
const ENVIRONMENT_PREFIX: &str = "trailwarden__";

/// The `TRAILWARDEN__*` variables of the process, sorted by name. A value that
/// is not UTF-8 is refused here, by name.
fn environment_overrides(
    variables: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut found = Vec::new();
    for (name, value) in variables {
        let Some(name) = name.to_str() else { continue };
        if !name.to_ascii_lowercase().starts_with(ENVIRONMENT_PREFIX) {
            continue;
        }
        let value = value.into_string().map_err(|_| ConfigError::Invalid {
            origin: format!("environment variable {name}"),
            message: "the value is not valid UTF-8".into(),
        })?;
        found.push((name.to_string(), value));
    }
    found.sort();
    Ok(found)
}

/// The dotted key a `TRAILWARDEN__SECTION__KEY` variable sets (`section.key`).
fn variable_key(name: &str) -> String {
    name.to_ascii_lowercase()
        .get(ENVIRONMENT_PREFIX.len()..)
        .unwrap_or_default()
        .replace("__", ".")
}

/// Deserialize the file text with `variables` over it.
fn raw_config(text: &str, variables: &[(String, String)]) -> Result<RawConfig, String> {
    let mut builder = config::Config::builder().add_source(config::File::from_str(text, config::FileFormat::Toml));
    if !variables.is_empty() {
        builder = builder.add_source(
            config::Environment::with_prefix("TRAILWARDEN")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("source.files.paths")
                .with_list_parse_key("source.kafka.topics")
                .with_list_parse_key("rules.disabled")
                .with_list_parse_key("rules.disabled_tags")
                .with_list_parse_key("rules.enabled")
                .with_list_parse_key("rules.overrides")
                .try_parsing(true)
                .source(Some(variables.iter().cloned().collect())),
        );
    }
    builder
        .build()
        .and_then(|built| built.try_deserialize())
        .map_err(|error| error.to_string())
}

/// The variable that set the key a validation message names in backquotes
/// (`pipeline.batch_events`, or a section such as `source.kafka.properties`).
fn blamed_variable<'v>(variables: &'v [(String, String)], message: &str) -> Option<&'v str> {
    let named: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let sets = |key: &str, name: &str| key == name || key.starts_with(&format!("{name}."));
    variables
        .iter()
        .find(|(variable, _)| named.iter().any(|name| sets(&variable_key(variable), name)))
        .map(|(variable, _)| variable.as_str())
}

/// Log levels, most to least severe.
pub const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Check a log filter (`log.level`, `TRAILWARDEN_LOG`): comma-separated
/// directives, each a level or `target=level`. tracing's own syntax also reads
/// a bare word as a target with every level on, so a misspelt level
/// (`warnn`) would switch all other logging off without a word: refused here.
pub fn check_log_filter(text: &str) -> Result<(), String> {
    let is_level = |word: &str| LOG_LEVELS.iter().any(|level| level.eq_ignore_ascii_case(word.trim()));
    let syntax = format!(
        "use a level ({}) or target=level directives separated by commas, e.g. \"info,trailwarden::pipeline=debug\"",
        LOG_LEVELS.join(", ")
    );
    if text.trim().is_empty() {
        return Err(format!("is empty; {syntax} (\"off\" silences logging)"));
    }
    for directive in text.split(',').map(str::trim).filter(|directive| !directive.is_empty()) {
        // The level follows the last `=` outside a span filter (`target[span{field=value}]=debug`).
        let tail_start = directive.rfind(']').map_or(0, |at| at + 1);
        match directive[tail_start..].rfind('=') {
            Some(at) => {
                let level = &directive[tail_start + at + 1..];
                if !is_level(level) {
                    return Err(format!("`{directive}`: `{level}` is not a level; {syntax}"));
                }
            }
            None if tail_start == 0 && !is_level(directive) => {
                return Err(format!("`{directive}` is not a level; {syntax}"));
            }
            None => {}
        }
    }
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| ())
        .map_err(|error| format!("is not a log filter ({error}); {syntax}"))
}

/// `value` when it is at least `min`; else an error naming `key` and saying
/// what the value is for (`purpose`).
fn at_least<T: PartialOrd + std::fmt::Display>(key: &str, value: T, min: T, purpose: &str) -> Result<T, String> {
    if value < min {
        return Err(format!("`{key}` = {value} must be at least {min} ({purpose})"));
    }
    Ok(value)
}

/// `value` when it is more than zero; else an error naming `key` and saying
/// what the duration is for.
fn not_zero(key: &str, value: Duration, purpose: &str) -> Result<Duration, String> {
    if value.is_zero() {
        return Err(format!("`{key}` = \"0s\" must be more than 0 ({purpose})"));
    }
    Ok(value)
}

fn parse_offset(text: &str) -> Option<FixedOffset> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("utc") || text == "Z" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':').unwrap_or((rest, "0"));
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_default_is_valid() {
        let settings = Settings::from_toml("default", DEFAULT_CONFIG, false).unwrap();
        assert_eq!(settings.rules.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(settings.files.paths, vec![PathBuf::from("examples")]);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let error = Settings::from_toml("x.toml", "[store]\npaht = \"a\"\n", false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("x.toml") && error.contains("paht"), "{error}");
        let error = Settings::from_toml("x.toml", "[rules]\ntimezone = \"Mars/Base\"\n", false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("rules.timezone") && error.contains("Mars/Base"),
            "{error}"
        );
        let error = Settings::from_toml("x.toml", "[source.files]\npoll_interval = \"soon\"\n", false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("poll_interval"), "{error}");
    }

    #[test]
    fn kafka_settings_are_validated_and_properties_pass_through() {
        let text = "[source]\nkind = \"kafka\"\n[source.kafka]\nbrokers = \"k1:9092\"\ntopics = [\"audit\"]\n\
                    [source.kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\nsasl_mechanism = \"SCRAM-SHA-512\"\n";
        let settings = Settings::from_toml("k.toml", text, false).unwrap();
        assert_eq!(settings.source, SourceKind::Kafka);
        assert_eq!(settings.kafka.topics, vec!["audit".to_string()]);
        assert_eq!(settings.kafka.start, StartPosition::Earliest);
        assert_eq!(
            settings.kafka.properties.get("security.protocol").map(String::as_str),
            Some("SASL_SSL")
        );
        assert_eq!(
            settings.kafka.properties.get("sasl.mechanism").map(String::as_str),
            Some("SCRAM-SHA-512")
        );
        let error = Settings::from_toml("k.toml", "[source]\nkind = \"kafka\"\n", false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("k.toml") && error.contains("source.kafka.brokers"),
            "{error}"
        );
        let error = Settings::from_toml("k.toml", "[source]\nkind = \"kinesis\"\n", false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("source.kind") && error.contains("kinesis"), "{error}");
        let error = Settings::from_toml("k.toml", "[source.kafka.properties]\n\"group.id\" = \"x\"\n", false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("group.id"), "{error}");
    }

    #[test]
    fn activity_and_trace_settings_are_validated() {
        let settings = Settings::from_toml("default", DEFAULT_CONFIG, false).unwrap();
        assert!(settings.activity.enabled && settings.traces.enabled);
        assert_eq!(settings.traces.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(settings.traces.rule_tag, "sec09-03");
        let settings = Settings::from_toml(
            "t.toml",
            "[traces]\nretention = \"2d\"\n[activity]\nenabled = false\n",
            false,
        )
        .unwrap();
        assert_eq!(settings.traces.retention, Duration::from_secs(2 * 86_400));
        assert!(!settings.activity.enabled);
        for (text, key) in [
            ("[traces]\nretention = \"forever\"\n", "traces.retention"),
            ("[traces]\nretention = \"10s\"\n", "traces.retention"),
            ("[traces]\nprune_every = \"8d\"\n", "traces.prune_every"),
            ("[traces]\nrule_tag = \" \"\n", "traces.rule_tag"),
            ("[traces]\nretension = \"7d\"\n", "retension"),
            ("[activity]\nenable = true\n", "enable"),
        ] {
            let error = Settings::from_toml("t.toml", text, false).unwrap_err().to_string();
            assert!(error.contains("t.toml") && error.contains(key), "{text}: {error}");
        }
    }

    #[test]
    fn api_settings_are_validated_with_named_keys() {
        let settings = Settings::from_toml("default", DEFAULT_CONFIG, false).unwrap();
        assert!(settings.api.enabled);
        assert_eq!(settings.api.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.api.body_limit, 65536);
        assert!(settings.api.tokens.is_empty());
        let hash = "a".repeat(64);
        let text = format!(
            "[api]\nbind = \"0.0.0.0:9000\"\npublic_url = \"https://tw.example.com/\"\n[[api.tokens]]\nname = \"alice\"\nrole = \"operator\"\nsha256 = \"{hash}\"\n"
        );
        let settings = Settings::from_toml("a.toml", &text, false).unwrap();
        assert_eq!(settings.api.public_url.as_deref(), Some("https://tw.example.com"));
        assert_eq!(settings.api.tokens.len(), 1);
        assert_eq!(settings.api.tokens[0].role, Role::Operator);
        assert_eq!(settings.api.tokens[0].sha256, [0xaa; 32]);
        for (text, key) in [
            ("[api]\nbind = \"localhost\"\n".to_string(), "api.bind"),
            ("[api]\nbody_limit = 10\n".to_string(), "api.body_limit"),
            ("[api]\npublic_url = \"tw.example.com\"\n".to_string(), "api.public_url"),
            (
                format!("[[api.tokens]]\nname = \"a\"\nrole = \"root\"\nsha256 = \"{hash}\"\n"),
                "api.tokens[0].role",
            ),
            (
                "[[api.tokens]]\nname = \"a\"\nrole = \"admin\"\nsha256 = \"abc\"\n".to_string(),
                "api.tokens[0].sha256",
            ),
            (
                format!("[[api.tokens]]\nrole = \"admin\"\nsha256 = \"{hash}\"\n"),
                "api.tokens[0].name",
            ),
            ("[api]\nbnid = \"x\"\n".to_string(), "bnid"),
        ] {
            let error = Settings::from_toml("a.toml", &text, false).unwrap_err().to_string();
            assert!(error.contains("a.toml") && error.contains(key), "{text}: {error}");
        }
    }

    #[test]
    fn a_misspelt_log_level_is_refused_with_the_levels_and_the_syntax() {
        for level in ["warnn", "inof", "trailwarden=verbose", ""] {
            let text = format!("[log]\nlevel = \"{level}\"\n");
            let error = Settings::from_toml("l.toml", &text, false).unwrap_err().to_string();
            assert!(
                error.contains("l.toml") && error.contains("log.level") && error.contains(&format!("\"{level}\"")),
                "{level}: {error}"
            );
            assert!(
                error.contains("off, error, warn, info, debug, trace") && error.contains("target=level"),
                "{level}: {error}"
            );
        }
        for level in [
            "warn",
            "INFO",
            "info,trailwarden::pipeline=debug",
            "off",
            "trailwarden=trace",
        ] {
            let text = format!("[log]\nlevel = \"{level}\"\n");
            assert!(Settings::from_toml("l.toml", &text, false).is_ok(), "{level}");
        }
        assert!(check_log_filter("warn,trailwarden[batch{id=1}]=debug").is_ok());
    }

    fn variables(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn environment_mistakes_are_blamed_on_the_variable_not_the_file() {
        let error = |pairs: &[(&str, &str)]| {
            Settings::from_sources("c.toml", "[store]\npath = \"a.db\"\n", &variables(pairs))
                .unwrap_err()
                .to_string()
        };
        let unknown = error(&[("TRAILWARDEN__STORE__PAHT", "x")]);
        assert!(
            unknown.contains("environment variable TRAILWARDEN__STORE__PAHT") && unknown.contains("paht"),
            "{unknown}"
        );
        assert!(!unknown.contains("c.toml"), "{unknown}");
        let section = error(&[("TRAILWARDEN__STOR__PATH", "x")]);
        assert!(section.contains("TRAILWARDEN__STOR__PATH"), "{section}");
        let wrong_type = error(&[("TRAILWARDEN__PIPELINE__BATCH_EVENTS", "many")]);
        assert!(
            wrong_type.contains("TRAILWARDEN__PIPELINE__BATCH_EVENTS"),
            "{wrong_type}"
        );
        let zero = error(&[
            ("TRAILWARDEN__LOG__LEVEL", "info"),
            ("TRAILWARDEN__PIPELINE__BATCH_EVENTS", "0"),
        ]);
        assert!(
            zero.contains("environment variable TRAILWARDEN__PIPELINE__BATCH_EVENTS")
                && zero.contains("`pipeline.batch_events` = 0"),
            "{zero}"
        );
        let level = error(&[("trailwarden__log__level", "warnn")]);
        assert!(
            level.contains("environment variable trailwarden__log__level"),
            "{level}"
        );
        // The file's own mistakes stay the file's, even with variables set.
        let error = Settings::from_sources(
            "c.toml",
            "[pipeline]\nbatch_events = 0\n",
            &variables(&[("TRAILWARDEN__STORE__PATH", "b.db")]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("configuration c.toml:"), "{error}");
        let settings = Settings::from_sources(
            "c.toml",
            "",
            &variables(&[
                ("TRAILWARDEN__STORE__PATH", "b.db"),
                ("TRAILWARDEN__RULES__DISABLED", "a,b"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.store.path, PathBuf::from("b.db"));
        assert_eq!(settings.rules.disabled, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn zero_and_too_small_numbers_are_refused_by_key() {
        for (text, key) in [
            ("[pipeline]\nbatch_events = 0\n", "pipeline.batch_events"),
            ("[pipeline]\nchannel_batches = 0\n", "pipeline.channel_batches"),
            ("[pipeline]\nmax_buffered_events = 0\n", "pipeline.max_buffered_events"),
            ("[pipeline]\nshutdown_deadline = \"0s\"\n", "pipeline.shutdown_deadline"),
            ("[state]\nmax_entries = 5\n", "state.max_entries"),
            ("[state]\nkey_ttl = \"0s\"\n", "state.key_ttl"),
            ("[state]\nprincipal_ttl = \"0s\"\n", "state.principal_ttl"),
            ("[state]\nfirst_seen_ttl = \"0s\"\n", "state.first_seen_ttl"),
            ("[source.files]\npoll_interval = \"0s\"\n", "source.files.poll_interval"),
            ("[source.kafka]\nbatch_messages = 0\n", "source.kafka.batch_messages"),
            ("[source.kafka]\nbatch_wait = \"0ms\"\n", "source.kafka.batch_wait"),
            (
                "[source.kafka]\nrebalance_timeout = \"0s\"\n",
                "source.kafka.rebalance_timeout",
            ),
            ("[store]\nchain_log_interval = \"0s\"\n", "store.chain_log_interval"),
            ("[store.backup]\ndir = \"b\"\nkeep = 0\n", "store.backup.keep"),
            (
                "[store.backup]\ndir = \"b\"\ninterval = \"0s\"\n",
                "store.backup.interval",
            ),
        ] {
            let error = Settings::from_toml("n.toml", text, false).unwrap_err().to_string();
            assert!(
                error.contains("n.toml") && error.contains(&format!("`{key}`")) && error.contains("must be"),
                "{text}: {error}"
            );
        }
        // Zero stays valid where it means something.
        let settings = Settings::from_toml(
            "n.toml",
            "[pipeline]\nstore_retries = 0\nmax_hold = \"0s\"\nallowed_lateness = \"0s\"\n[source.files]\nsettle = \"0s\"\n[store]\nsamples_per_alarm = 0\n",
            false,
        )
        .unwrap();
        assert_eq!(settings.pipeline.store_retries, 0);
        assert_eq!(settings.store.samples_per_alarm, 0);
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+08:00"), FixedOffset::east_opt(8 * 3600));
        assert_eq!(parse_offset("-05:30"), FixedOffset::east_opt(-(5 * 3600 + 1800)));
        assert_eq!(parse_offset("8"), None);
    }
}
