//! Sections whose validation is more than a default and a bound: the API's
//! tokens, the Kafka source, the window of believable event times, byte sizes.

use std::collections::BTreeMap;
use std::time::Duration;

use super::raw::*;
use super::{ApiSettings, ApiToken, KafkaSettings, RetentionSettings, Role, StartPosition, at_least, not_zero};
use crate::event::window::TimeWindow;

pub(super) fn byte_size(key: &str, value: Option<u64>, default: usize, minimum: usize) -> Result<usize, String> {
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
pub(super) fn time_window(raw: &RawNormalize, duration: &DurationParser<'_>) -> Result<TimeWindow, String> {
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
pub(super) fn api_settings(raw: RawApi, rules_zone: chrono_tz::Tz) -> Result<ApiSettings, String> {
    let timezone = match raw.timezone.as_deref().map(str::trim).filter(|zone| !zone.is_empty()) {
        Some(zone) => zone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| format!("`api.timezone` = \"{zone}\" is not an IANA time zone (e.g. Asia/Shanghai, UTC)"))?,
        None => rules_zone,
    };
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
        max_auth_failures: raw.max_auth_failures.unwrap_or(20),
        timezone,
        tokens,
    })
}

pub(super) type DurationParser<'a> = dyn Fn(&str, Option<String>, &str) -> Result<Duration, String> + 'a;

/// Validate `[source.kafka]`; the required keys only when Kafka is the source.
pub(super) fn kafka_settings(
    raw: RawKafka,
    required: bool,
    duration: &DurationParser<'_>,
) -> Result<KafkaSettings, String> {
    let brokers = raw.brokers.unwrap_or_default().trim().to_string();
    let topics = topic_list(raw.topics);
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

/// Topic names as given, trimmed, the empty ones left out.
fn topic_list(topics: Option<Vec<String>>) -> Vec<String> {
    topics
        .unwrap_or_default()
        .into_iter()
        .map(|topic| topic.trim().to_string())
        .filter(|topic| !topic.is_empty())
        .collect()
}

/// `[source.object_store.notifications]`: a Kafka topic of bucket notifications.
fn notification_settings(
    raw: super::raw::RawNotifications,
) -> Result<crate::source::notifications::NotificationSettings, String> {
    const SECTION: &str = "source.object_store.notifications";
    let brokers = raw
        .brokers
        .map(|brokers| brokers.trim().to_string())
        .filter(|brokers| !brokers.is_empty())
        .ok_or_else(|| format!("`{SECTION}` needs `brokers` (host:port[,host:port…])"))?;
    let topics = topic_list(raw.topics);
    if topics.is_empty() {
        return Err(format!(
            "`{SECTION}` needs `topics` (the topics the bucket notifications arrive on)"
        ));
    }
    for reserved in ["bootstrap.servers", "group.id", "enable.auto.commit"] {
        if raw.properties.contains_key(reserved) {
            return Err(format!(
                "`{SECTION}.properties` sets \"{reserved}\", which trailwarden manages (use brokers / group_id)"
            ));
        }
    }
    Ok(crate::source::notifications::NotificationSettings {
        brokers,
        topics,
        group_id: raw
            .group_id
            .map(|group| group.trim().to_string())
            .filter(|group| !group.is_empty())
            .unwrap_or_else(|| "trailwarden-bucket-notifications".into()),
        properties: raw.properties,
    })
}

/// `rules.sigma_logsources` and `rules.sigma_placeholders`, checked.
pub(super) fn sigma_settings(
    logsources: Vec<RawSigmaLogsource>,
    placeholders: Option<std::collections::BTreeMap<String, Vec<String>>>,
    cross_cloud_dirs: Vec<String>,
) -> Result<crate::rules::sigma::SigmaSettings, String> {
    let mut configured = Vec::new();
    for (index, logsource) in logsources.into_iter().enumerate() {
        let place = format!("`rules.sigma_logsources[{index}]` (product `{}`)", logsource.product);
        let provider = crate::event::model::Provider::parse(&logsource.provider).ok_or_else(|| {
            format!(
                "{place}: provider `{}` is not aws, tencent or huawei",
                logsource.provider
            )
        })?;
        let mut fields = Vec::new();
        for (from, to) in logsource.fields.unwrap_or_default() {
            if crate::rules::field::Field::parse(&to).is_none() {
                return Err(format!(
                    "{place}: field `{from}` maps to `{to}`, which is neither a normalized field nor a `raw.` path"
                ));
            }
            fields.push((from, to));
        }
        configured.push(crate::rules::sigma::mapping::SigmaLogsource {
            product: logsource.product,
            service: logsource.service,
            category: logsource.category,
            provider,
            fields,
        });
    }
    Ok(crate::rules::sigma::SigmaSettings {
        logsources: crate::rules::sigma::mapping::merged_logsources(&configured),
        placeholders: placeholders.unwrap_or_default().into_iter().collect(),
        cross_cloud_dirs: cross_cloud_dirs.into_iter().map(std::path::PathBuf::from).collect(),
    })
}

/// `[source.object_store]` and its `[[source.object_store.buckets]]`.
pub(super) fn object_store_settings(
    raw: RawObjectStore,
    required: bool,
    duration: &DurationParser<'_>,
    store_path: &std::path::Path,
) -> Result<crate::source::object::ObjectSourceSettings, String> {
    use crate::source::object::{BucketSettings, ObjectSourceSettings};
    let text = |value: Option<String>| {
        value
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    };
    let mut buckets = Vec::new();
    for (index, bucket) in raw.buckets.into_iter().enumerate() {
        let name =
            text(bucket.bucket).ok_or_else(|| format!("`source.object_store.buckets[{index}]` names no `bucket`"))?;
        if name.contains('/') {
            return Err(format!(
                "`source.object_store.buckets[{index}].bucket` = \"{name}\": a bucket name has no `/` (put the rest in `prefix`)"
            ));
        }
        let endpoint = text(bucket.endpoint);
        if let Some(endpoint) = &endpoint
            && !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        {
            return Err(format!(
                "`source.object_store.buckets[{index}].endpoint` = \"{endpoint}\" must start with https:// (or http:// for a local server)"
            ));
        }
        let access_key_id = text(bucket.access_key_id);
        let secret_access_key = text(bucket.secret_access_key);
        if access_key_id.is_some() != secret_access_key.is_some() {
            return Err(format!(
                "`source.object_store.buckets[{index}]` gives one of `access_key_id` and `secret_access_key` without the other"
            ));
        }
        buckets.push(BucketSettings {
            bucket: name,
            prefix: bucket
                .prefix
                .unwrap_or_default()
                .trim()
                .trim_start_matches('/')
                .to_string(),
            endpoint,
            region: text(bucket.region),
            access_key_id,
            secret_access_key,
            session_token: text(bucket.session_token),
            virtual_hosted_style: bucket.virtual_hosted_style.unwrap_or(false),
            verify_digests: bucket.verify_digests.unwrap_or(false),
        });
    }
    if required && buckets.is_empty() {
        return Err(
            "`source.kind` = \"object_store\" needs at least one [[source.object_store.buckets]] with a `bucket`"
                .into(),
        );
    }
    let spool_dir = match text(raw.spool_dir) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            let mut spool = store_path.as_os_str().to_owned();
            spool.push(".spool");
            std::path::PathBuf::from(spool)
        }
    };
    let public_keys = match text(raw.cloudtrail_public_keys) {
        Some(path) => Some(std::sync::Arc::new(
            crate::source::integrity::PublicKeys::load(std::path::Path::new(&path))
                .map_err(|error| format!("`source.object_store.cloudtrail_public_keys`: {error}"))?,
        )),
        None => None,
    };
    let notifications = match raw.notifications {
        Some(raw) => Some(notification_settings(raw)?),
        None => None,
    };
    Ok(ObjectSourceSettings {
        buckets,
        public_keys,
        notifications,
        poll_interval: duration("source.object_store.poll_interval", raw.poll_interval, "60s")?,
        spool_dir,
        max_pass_bytes: raw.max_pass_bytes.unwrap_or(256 << 20).max(1),
        concurrency: raw.concurrency.unwrap_or(4).clamp(1, 64),
    })
}

/// `[retention]`: what is kept how long, and how often the daemon prunes.
pub(super) fn retention_settings(
    raw: RawRetention,
    duration: &DurationParser<'_>,
) -> Result<RetentionSettings, String> {
    use crate::alarm::retention::RetentionPolicy;
    let shipped = RetentionPolicy::default();
    let keep = |name: &str, value: Option<String>, default: Option<Duration>| -> Result<Option<Duration>, String> {
        let key = format!("retention.{name}");
        match value.as_deref().map(str::trim) {
            None => Ok(default),
            Some("off") => Ok(None),
            Some(_) => {
                let kept = duration(&key, value, "")?;
                if kept < Duration::from_secs(3_600) {
                    return Err(format!(
                        "`{key}` = \"{}\" is too short: keep rows at least 1h, or say \"off\" to keep them forever",
                        humantime::format_duration(kept)
                    ));
                }
                Ok(Some(kept))
            }
        }
    };
    let policy = RetentionPolicy {
        processed_alarms: keep("processed_alarms", raw.processed_alarms, shipped.processed_alarms)?,
        samples: keep("samples", raw.samples, shipped.samples)?,
        call_records: keep("call_records", raw.call_records, shipped.call_records)?,
        dead_letters: keep("dead_letters", raw.dead_letters, shipped.dead_letters)?,
        notifications: keep("notifications", raw.notifications, shipped.notifications)?,
        rollups: keep("rollups", raw.rollups, shipped.rollups)?,
        chain: keep("chain", raw.chain, shipped.chain)?,
        batch_rows: match raw.batch_rows {
            None => shipped.batch_rows,
            Some(rows) if (10..=100_000).contains(&rows) => rows,
            Some(rows) => return Err(format!("`retention.batch_rows` = {rows} must be from 10 to 100000")),
        },
    };
    let interval = duration("retention.interval", raw.interval, "1h")?;
    if interval < Duration::from_secs(1) {
        return Err("`retention.interval` must be at least 1s (e.g. \"1h\")".into());
    }
    Ok(RetentionSettings {
        enabled: raw.enabled.unwrap_or(true),
        interval,
        policy,
    })
}
