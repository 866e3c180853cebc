//! Configuration: TOML file + `TRAILWARDEN_*` environment overrides → validated `Settings`.
//!
//! The raw form mirrors the file (every key optional, unknown keys are
//! errors); `Settings` is what the program uses, with durations, zones and
//! offsets parsed. Every error names the key and the file it came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;
use chrono_tz::Tz;
use serde::Deserialize;

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
    sources: RawSources,
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
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSources {
    #[serde(default)]
    files: RawFiles,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    paths: Option<Vec<String>>,
    watch: Option<bool>,
    poll_interval: Option<String>,
    settle: Option<String>,
    max_document_bytes: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<String>,
    samples_per_alarm: Option<u32>,
    synchronous: Option<String>,
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
    pub files: FileSourceSettings,
    pub store: StoreSettings,
    pub pipeline: PipelineSettings,
    pub state: StateSettings,
    pub rules: RuleSettings,
    pub naive_time_offset: FixedOffset,
    pub log: LogSettings,
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
}

#[derive(Clone, Debug)]
pub struct StoreSettings {
    pub path: PathBuf,
    pub samples_per_alarm: u32,
    pub synchronous_full: bool,
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
    /// else the built-in default; then `TRAILWARDEN_<SECTION>__<KEY>` overrides.
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

    /// Parse settings from TOML text (with or without environment overrides).
    pub fn from_toml(origin: &str, text: &str, environment: bool) -> Result<Settings, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let mut builder = config::Config::builder().add_source(config::File::from_str(text, config::FileFormat::Toml));
        if environment {
            builder = builder.add_source(
                config::Environment::with_prefix("TRAILWARDEN")
                    .prefix_separator("_")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("sources.files.paths")
                    .with_list_parse_key("rules.disabled")
                    .with_list_parse_key("rules.disabled_tags")
                    .with_list_parse_key("rules.enabled")
                    .with_list_parse_key("rules.overrides")
                    .try_parsing(true),
            );
        }
        let raw: RawConfig = builder
            .build()
            .and_then(|built| built.try_deserialize())
            .map_err(|error| invalid(error.to_string()))?;
        Settings::validate(origin, raw).map_err(invalid)
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
                .sources
                .files
                .paths
                .unwrap_or_else(|| vec!["examples".to_string()])
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            watch: raw.sources.files.watch.unwrap_or(true),
            poll_interval: duration("sources.files.poll_interval", raw.sources.files.poll_interval, "2s")?,
            settle: duration("sources.files.settle", raw.sources.files.settle, "1s")?,
            max_document_bytes: usize::try_from(raw.sources.files.max_document_bytes.unwrap_or(256 << 20))
                .map_err(|_| "`sources.files.max_document_bytes` is too large".to_string())?,
        };
        if files.max_document_bytes < 1024 {
            return Err("`sources.files.max_document_bytes` must be at least 1024".into());
        }
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
        let store = StoreSettings {
            path: PathBuf::from(raw.store.path.unwrap_or_else(|| "data/trailwarden.db".into())),
            samples_per_alarm: raw.store.samples_per_alarm.unwrap_or(10),
            synchronous_full,
        };
        let pipeline = PipelineSettings {
            batch_events: raw.pipeline.batch_events.unwrap_or(2000).max(1),
            channel_batches: raw.pipeline.channel_batches.unwrap_or(8).max(1),
            store_retries: raw.pipeline.store_retries.unwrap_or(5),
            allowed_lateness: duration("pipeline.allowed_lateness", raw.pipeline.allowed_lateness, "5m")?,
            max_hold: duration("pipeline.max_hold", raw.pipeline.max_hold, "30s")?,
            max_buffered_events: raw.pipeline.max_buffered_events.unwrap_or(100_000).max(1),
        };
        let state = StateSettings {
            max_entries: raw.state.max_entries.unwrap_or(500_000).max(100),
            key_ttl: duration("state.key_ttl", raw.state.key_ttl, "400d")?,
            principal_ttl: duration("state.principal_ttl", raw.state.principal_ttl, "30d")?,
            first_seen_ttl: duration("state.first_seen_ttl", raw.state.first_seen_ttl, "90d")?,
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
        let offset_text = raw.normalize.naive_time_offset.unwrap_or_else(|| "+08:00".into());
        let naive_time_offset = parse_offset(&offset_text)
            .ok_or_else(|| format!("`normalize.naive_time_offset` = \"{offset_text}\" is not an offset like +08:00"))?;
        let format = raw.log.format.unwrap_or_else(|| "text".into());
        let json = match format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(format!("`log.format` = \"{other}\" must be \"text\" or \"json\""));
            }
        };
        let level = raw.log.level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            return Err(format!(
                "`log.level` = \"{level}\" is not a log filter (e.g. info, debug, trailwarden=debug)"
            ));
        }
        Ok(Settings {
            origin: origin.to_string(),
            files,
            store,
            pipeline,
            state,
            rules,
            naive_time_offset,
            log: LogSettings { level, json },
        })
    }
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
        let error = Settings::from_toml("x.toml", "[sources.files]\npoll_interval = \"soon\"\n", false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("poll_interval"), "{error}");
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+08:00"), FixedOffset::east_opt(8 * 3600));
        assert_eq!(parse_offset("-05:30"), FixedOffset::east_opt(-(5 * 3600 + 1800)));
        assert_eq!(parse_offset("8"), None);
    }
}
