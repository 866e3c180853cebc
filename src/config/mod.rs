//! Configuration: TOML file + `TRAILWARDEN__*` environment overrides → validated `Settings`.
//!
//! The raw form mirrors the file (every key optional, unknown keys are
//! errors); `Settings` is what the program uses, with durations, zones and
//! offsets parsed. Every error names the key and the file it came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;
use chrono_tz::Tz;

use crate::event::window::TimeWindow;
pub use crate::source::kafka::{KafkaSettings, StartPosition};

/// The shipped default configuration, also used when `config/default.toml`
/// is not on disk (so `trailwarden run` works from any directory with data).
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration {origin}: {message}")]
    Invalid { origin: String, message: String },
}

mod env;
mod raw;
mod sections;
#[cfg(test)]
mod tests;

use env::{blamed_variable, environment_overrides, raw_config};
use raw::*;
use sections::{api_settings, byte_size, kafka_settings, time_window};

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the settings came from (a path, or "built-in defaults").
    pub origin: String,
    pub source: SourceKind,
    pub files: FileSourceSettings,
    pub kafka: KafkaSettings,
    /// `[source.object_store]`: buckets read when `source.kind = "object_store"`.
    pub object_store: crate::source::object::ObjectSourceSettings,
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
    /// `[events]`: the event store, for investigation.
    pub events: crate::alarm::events::EventStoreOptions,
    /// `[notify]`: topics, subscriptions, SMTP.
    pub notify: std::sync::Arc<crate::notify::NotifySettings>,
    pub api: ApiSettings,
    /// `[geoip]`: MaxMind-format databases for IP regions.
    pub geoip: crate::geoip::GeoIpSettings,
    /// `[ip_lists]`: named address lists (hosting, VPN, Tor …) read from files.
    pub ip_lists: crate::iplists::IpListSettings,
    /// `[retention]`: what the store keeps how long.
    pub retention: RetentionSettings,
}

/// `[retention]`.
#[derive(Clone, Debug)]
pub struct RetentionSettings {
    /// Whether the daemon prunes on its own (`store prune` works either way).
    pub enabled: bool,
    /// Time between two pruning runs of the daemon (the first is at start).
    pub interval: Duration,
    pub policy: crate::alarm::retention::RetentionPolicy,
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
    /// Missing or unknown tokens from one address in a minute before it is
    /// answered 429 for the rest of that minute; 0 = no limit.
    pub max_auth_failures: u32,
    /// Bearer tokens; empty = `run` makes a one-off admin token in a file.
    /// The zone the console shows times in (`api.timezone`, default `rules.timezone`).
    pub timezone: chrono_tz::Tz,
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
    /// S3, OBS or COS buckets (`[source.object_store]`).
    ObjectStore,
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
    /// Most events per transaction: what a replay fills each to, and what
    /// the daemon's grow to while the store is still busy (group commit;
    /// at least `batch_events`).
    pub max_transaction_events: usize,
    pub channel_batches: usize,
    /// Normalizer threads (default: one per core).
    pub normalizers: usize,
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
    /// `trailwarden backfill`: rules learn (state, rollups, traces) but raise
    /// no alarm. Not a configuration key.
    pub learn_only: bool,
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
    /// Directories of Sigma rules, loaded beside the pack.
    pub sigma_dirs: Vec<PathBuf>,
    /// Sigma logsource mappings (built-ins merged with the configured ones) and placeholders.
    pub sigma: crate::rules::sigma::SigmaSettings,
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
            max_document_bytes: usize::try_from(raw.source.files.max_document_bytes.unwrap_or(16 << 20))
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
            "object_store" => SourceKind::ObjectStore,
            other => {
                return Err(format!(
                    "`source.kind` = \"{other}\" must be \"files\", \"kafka\" or \"object_store\""
                ));
            }
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
        // `store.url` (a PostgreSQL store) takes the place of the file.
        let postgres = match raw
            .store
            .url
            .map(|url| url.trim().to_string())
            .filter(|url| !url.is_empty())
        {
            Some(url) if crate::db::location::is_postgres_url(&url) => Some(url),
            Some(url) => {
                return Err(format!(
                    "`store.url` = \"{}\" must be a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE); \
                     a SQLite store is set with `store.path`",
                    crate::db::postgres::redact(&url)
                ));
            }
            None => None,
        };
        let store_path = match &postgres {
            Some(url) => PathBuf::from(url),
            None => PathBuf::from(raw.store.path.unwrap_or_else(|| "data/trailwarden.db".into())),
        };
        // On by default, beside the store; "" turns them off. A PostgreSQL
        // store is backed up by PostgreSQL's own tools (pg_dump, base backups).
        let backup_dir = match raw.store.backup.dir.map(|dir| dir.trim().to_string()) {
            None if postgres.is_some() => None,
            None => Some(store_path.parent().unwrap_or(std::path::Path::new("")).join("backups")),
            Some(dir) if dir.is_empty() => None,
            Some(dir) => Some(PathBuf::from(dir)),
        };
        let backup = match backup_dir {
            Some(dir) => Some(BackupSettings {
                dir,
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
            None => None,
        };
        let store = StoreSettings {
            path: store_path,
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
        let object_store = sections::object_store_settings(
            raw.source.object_store,
            source == SourceKind::ObjectStore,
            &duration,
            &store.path,
        )?;
        let batch_events = at_least(
            "pipeline.batch_events",
            raw.pipeline.batch_events.unwrap_or(2000),
            1,
            "events per store transaction",
        )?;
        let pipeline = PipelineSettings {
            batch_events,
            max_transaction_events: at_least(
                "pipeline.max_transaction_events",
                raw.pipeline
                    .max_transaction_events
                    .unwrap_or(batch_events.saturating_mul(4)),
                batch_events,
                "no fewer than pipeline.batch_events",
            )?,
            channel_batches: at_least(
                "pipeline.channel_batches",
                raw.pipeline.channel_batches.unwrap_or(2),
                1,
                "batches queued between stages",
            )?,
            normalizers: match raw.pipeline.normalizers {
                Some(count) => at_least("pipeline.normalizers", count, 1, "normalizer threads")?,
                None => std::thread::available_parallelism().map_or(1, |cores| cores.get().min(8)),
            },
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
            learn_only: false,
        };
        let state = StateSettings {
            max_entries: at_least(
                "state.max_entries",
                raw.state
                    .max_entries
                    .unwrap_or(crate::rules::state::DEFAULT_MAX_ENTRIES),
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
            sigma_dirs: raw
                .rules
                .sigma_dirs
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            sigma: sections::sigma_settings(
                raw.rules.sigma_logsources.unwrap_or_default(),
                raw.rules.sigma_placeholders,
                raw.rules.sigma_cross_cloud_dirs.unwrap_or_default(),
            )?,
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
        let events = crate::alarm::events::EventStoreOptions {
            enabled: raw.events.enabled.unwrap_or(true),
            retention: duration("events.retention", raw.events.retention, "7d")?,
            compression_level: raw.events.compression_level.unwrap_or(1),
            // Set from `pipeline.batch_events` when the pipeline is built.
            ..Default::default()
        };
        if events.retention < Duration::from_secs(3_600) {
            return Err(format!(
                "`events.retention` = \"{}\" is too short; keep events at least 1h (e.g. \"7d\")",
                humantime::format_duration(events.retention)
            ));
        }
        if !(1..=19).contains(&events.compression_level) {
            return Err(format!(
                "`events.compression_level` = {} is out of range; zstd levels 1 (fastest) to 19 (smallest)",
                events.compression_level
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
        let api = api_settings(raw.api, rules.timezone)?;
        let geoip = crate::geoip::GeoIpSettings {
            city_db: raw
                .geoip
                .city_db
                .filter(|path| !path.trim().is_empty())
                .map(PathBuf::from),
            asn_db: raw
                .geoip
                .asn_db
                .filter(|path| !path.trim().is_empty())
                .map(PathBuf::from),
            language: raw.geoip.language.unwrap_or_else(|| "en".into()).trim().to_string(),
        };
        let retention = sections::retention_settings(raw.retention, &duration)?;
        let mut ip_lists = crate::iplists::IpListSettings::default();
        for (name, files) in raw.ip_lists {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-')
            {
                return Err(format!(
                    "`ip_lists.{name}`: a list name is lower-case letters, digits, `_` and `-` (it is what rules match on)"
                ));
            }
            let files: Vec<PathBuf> = files
                .into_iter()
                .map(|file| file.trim().to_string())
                .filter(|file| !file.is_empty())
                .map(PathBuf::from)
                .collect();
            if files.is_empty() {
                return Err(format!("`ip_lists.{name}` names no file"));
            }
            ip_lists.lists.push((name, files));
        }
        Ok(Settings {
            retention,
            notify,
            origin: origin.to_string(),
            source,
            files,
            kafka,
            object_store,
            store,
            pipeline,
            state,
            rules,
            naive_time_offset,
            time_window,
            log: LogSettings { level, json },
            activity,
            traces,
            events,
            api,
            geoip,
            ip_lists,
        })
    }
}

/// A size in bytes: `default` when unset, at least `minimum`.
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
