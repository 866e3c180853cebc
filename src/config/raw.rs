//! The file as written: every key optional, unknown keys refused (serde's
//! `deny_unknown_fields`), validated into `Settings` by `mod.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) source: RawSource,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) pipeline: RawPipeline,
    #[serde(default)]
    pub(super) rules: RawRules,
    #[serde(default)]
    pub(super) normalize: RawNormalize,
    #[serde(default)]
    pub(super) state: RawState,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) alarms: RawAlarms,
    #[serde(default)]
    pub(super) activity: RawActivity,
    #[serde(default)]
    pub(super) traces: RawTraces,
    #[serde(default)]
    pub(super) events: RawEvents,
    #[serde(default)]
    pub(super) notify: crate::notify::config::RawNotify,
    #[serde(default)]
    pub(super) api: RawApi,
    #[serde(default)]
    pub(super) geoip: RawGeoip,
    #[serde(default)]
    pub(super) retention: RawRetention,
    /// `[ip_lists]`: list name → files.
    #[serde(default)]
    pub(super) ip_lists: std::collections::BTreeMap<String, Vec<String>>,
}

/// `[retention]`: durations, or "off" to keep forever.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    pub(super) enabled: Option<bool>,
    pub(super) interval: Option<String>,
    pub(super) batch_rows: Option<usize>,
    pub(super) processed_alarms: Option<String>,
    pub(super) samples: Option<String>,
    pub(super) call_records: Option<String>,
    pub(super) dead_letters: Option<String>,
    pub(super) notifications: Option<String>,
    pub(super) rollups: Option<String>,
    pub(super) chain: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGeoip {
    pub(super) city_db: Option<String>,
    pub(super) asn_db: Option<String>,
    pub(super) language: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub(super) enabled: Option<bool>,
    pub(super) bind: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) body_limit: Option<usize>,
    pub(super) max_auth_failures: Option<u32>,
    pub(super) timezone: Option<String>,
    #[serde(default)]
    pub(super) tokens: Vec<RawToken>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    pub(super) name: Option<String>,
    pub(super) role: Option<String>,
    pub(super) sha256: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlarms {
    pub(super) count_on_ignored: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawActivity {
    pub(super) enabled: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    pub(super) dir: Option<String>,
    pub(super) interval: Option<String>,
    pub(super) keep: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTraces {
    pub(super) enabled: Option<bool>,
    pub(super) retention: Option<String>,
    pub(super) prune_every: Option<String>,
    pub(super) rule_tag: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    pub(super) enabled: Option<bool>,
    pub(super) retention: Option<String>,
    pub(super) compression_level: Option<i32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) files: RawFiles,
    #[serde(default)]
    pub(super) kafka: RawKafka,
    #[serde(default)]
    pub(super) object_store: RawObjectStore,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawObjectStore {
    pub(super) poll_interval: Option<String>,
    pub(super) spool_dir: Option<String>,
    pub(super) max_pass_bytes: Option<u64>,
    pub(super) concurrency: Option<usize>,
    pub(super) cloudtrail_public_keys: Option<String>,
    #[serde(default)]
    pub(super) buckets: Vec<RawBucket>,
    pub(super) notifications: Option<RawNotifications>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotifications {
    pub(super) brokers: Option<String>,
    pub(super) topics: Option<Vec<String>>,
    pub(super) group_id: Option<String>,
    #[serde(default)]
    pub(super) properties: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBucket {
    pub(super) bucket: Option<String>,
    pub(super) prefix: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) region: Option<String>,
    pub(super) access_key_id: Option<String>,
    pub(super) secret_access_key: Option<String>,
    pub(super) session_token: Option<String>,
    pub(super) virtual_hosted_style: Option<bool>,
    pub(super) verify_digests: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKafka {
    pub(super) brokers: Option<String>,
    pub(super) topics: Option<Vec<String>>,
    pub(super) group_id: Option<String>,
    pub(super) start: Option<String>,
    pub(super) batch_messages: Option<usize>,
    pub(super) batch_wait: Option<String>,
    pub(super) max_message_bytes: Option<u64>,
    pub(super) dead_letter_topic: Option<String>,
    pub(super) rebalance_timeout: Option<String>,
    #[serde(default)]
    pub(super) properties: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFiles {
    pub(super) paths: Option<Vec<String>>,
    pub(super) watch: Option<bool>,
    pub(super) poll_interval: Option<String>,
    pub(super) settle: Option<String>,
    pub(super) max_document_bytes: Option<u64>,
    pub(super) max_open_files: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) path: Option<String>,
    /// A PostgreSQL store (`postgres://…`) instead of the SQLite file.
    pub(super) url: Option<String>,
    pub(super) samples_per_alarm: Option<u32>,
    pub(super) max_sample_bytes: Option<u64>,
    pub(super) synchronous: Option<String>,
    pub(super) chain_log_interval: Option<String>,
    #[serde(default)]
    pub(super) backup: RawBackup,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPipeline {
    pub(super) batch_events: Option<usize>,
    pub(super) max_transaction_events: Option<usize>,
    pub(super) channel_batches: Option<usize>,
    pub(super) normalizers: Option<usize>,
    pub(super) store_retries: Option<u32>,
    pub(super) allowed_lateness: Option<String>,
    pub(super) max_hold: Option<String>,
    pub(super) max_buffered_events: Option<usize>,
    pub(super) max_buffered_bytes: Option<u64>,
    pub(super) batch_bytes: Option<u64>,
    pub(super) shutdown_deadline: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    pub(super) max_entries: Option<usize>,
    pub(super) key_ttl: Option<String>,
    pub(super) principal_ttl: Option<String>,
    pub(super) first_seen_ttl: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRules {
    pub(super) dir: Option<String>,
    pub(super) timezone: Option<String>,
    pub(super) disabled: Option<Vec<String>>,
    pub(super) disabled_tags: Option<Vec<String>>,
    pub(super) enabled: Option<Vec<String>>,
    pub(super) overrides: Option<Vec<String>>,
    pub(super) watch: Option<bool>,
    pub(super) sigma_dirs: Option<Vec<String>>,
    pub(super) sigma_cross_cloud_dirs: Option<Vec<String>>,
    pub(super) sigma_placeholders: Option<std::collections::BTreeMap<String, Vec<String>>>,
    pub(super) sigma_logsources: Option<Vec<RawSigmaLogsource>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSigmaLogsource {
    pub(super) product: String,
    pub(super) service: Option<String>,
    pub(super) category: Option<String>,
    /// `aws`, `tencent` or `huawei`.
    pub(super) provider: String,
    pub(super) fields: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNormalize {
    pub(super) naive_time_offset: Option<String>,
    pub(super) earliest_event_time: Option<String>,
    pub(super) max_future_skew: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) level: Option<String>,
    pub(super) format: Option<String>,
}
