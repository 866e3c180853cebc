//! The metrics registry: what ingestion, the pipeline and the store did, kept
//! as Prometheus counters, gauges and histograms and rendered in the text
//! exposition format (served at `/metrics` by the API).
//!
//! The pipeline's own counters (`pipeline::Stats`, also used for summaries)
//! are read at scrape time by a collector, so they are counted once. Kafka
//! has its own family of metrics, filled by the Kafka source.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use std::sync::atomic::AtomicU64;

use serde::Serialize;

/// Counters of a run, shared by the stages.
#[derive(Debug, Default)]
pub struct Stats {
    pub records: AtomicU64,
    pub events: AtomicU64,
    pub malformed: AtomicU64,
    pub matches: AtomicU64,
    /// Rule matches an allowlist policy suppressed (counted on the policy).
    pub allowlisted: AtomicU64,
    /// Of those, matches of high-level rules (never silent: logged, exported).
    pub allowlisted_high: AtomicU64,
    pub alarms_created: AtomicU64,
    /// Backfill: matches that raised nothing (the rules only learnt).
    pub learned: AtomicU64,
    /// Distinct alarms (rule + group key) this run raised or updated.
    pub alarms_touched: AtomicU64,
    pub transactions: AtomicU64,
    pub bytes: AtomicU64,
    /// Events that arrived after a later event had already been evaluated.
    pub late_events: AtomicU64,
    /// Events released before the watermark because the buffer was full.
    pub forced_releases: AtomicU64,
    /// Events waiting in the reorder buffer.
    pub buffered: AtomicU64,
    pub state_entries: AtomicU64,
    pub state_evictions: AtomicU64,
}

/// A snapshot of `Stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub records: u64,
    pub events: u64,
    pub malformed: u64,
    pub matches: u64,
    pub allowlisted: u64,
    pub allowlisted_high: u64,
    pub alarms_created: u64,
    pub learned: u64,
    pub alarms_touched: u64,
    pub transactions: u64,
    pub bytes: u64,
    pub late_events: u64,
    pub forced_releases: u64,
    pub buffered: u64,
    pub state_entries: u64,
    pub state_evictions: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            records: self.records.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
            matches: self.matches.load(Ordering::Relaxed),
            allowlisted: self.allowlisted.load(Ordering::Relaxed),
            allowlisted_high: self.allowlisted_high.load(Ordering::Relaxed),
            alarms_created: self.alarms_created.load(Ordering::Relaxed),
            learned: self.learned.load(Ordering::Relaxed),
            alarms_touched: self.alarms_touched.load(Ordering::Relaxed),
            transactions: self.transactions.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            late_events: self.late_events.load(Ordering::Relaxed),
            forced_releases: self.forced_releases.load(Ordering::Relaxed),
            buffered: self.buffered.load(Ordering::Relaxed),
            state_entries: self.state_entries.load(Ordering::Relaxed),
            state_evictions: self.state_evictions.load(Ordering::Relaxed),
        }
    }
}

/// Labels of a per-partition metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: i32,
}

/// Labels of an API request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    pub method: String,
    /// The route's pattern (`/api/v1/alarms/{id}`), never the concrete path.
    pub route: String,
    pub status: u16,
}

/// What the Kafka source counts.
#[derive(Debug, Default)]
pub struct KafkaMetrics {
    /// Messages taken from Kafka (including poison and skipped ones).
    pub messages: Counter,
    pub message_bytes: Counter,
    /// Messages below a partition's stored offset (already processed before a restart).
    pub skipped: Counter,
    /// Messages that went to the dead-letter topic.
    pub dead_letters_produced: Counter,
    pub dead_letter_produce_failures: Counter,
    pub rebalances: Counter,
    pub commit_failures: Counter,
    /// 1 while the brokers answer, 0 during an outage.
    pub connected: Gauge,
    /// Messages in each partition not yet committed by this group.
    pub lag: Family<PartitionLabels, Gauge>,
}

/// Labels of a notification delivery attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// `email` or `webhook`.
    pub channel: String,
    /// `delivered`, `retry` or `failed`.
    pub result: String,
}

/// What the notification worker counts.
#[derive(Debug, Default)]
pub struct NotifyMetrics {
    pub attempts: Family<DeliveryLabels, Counter>,
    /// Notifications over a topic's rate limit, folded into digests.
    pub folded: Counter,
    pub digests: Counter,
    /// Deliveries waiting (pending), and given up (failed), at the last round.
    pub pending: Gauge,
    pub failed: Gauge,
}

/// Labels of the allowlist policy gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// `active` or `expired`.
    pub state: String,
    /// `true` for a broad policy an admin allowed by override.
    pub broad: String,
}

/// What the store says about allowlist policies, read at scrape time.
#[derive(Debug, Default)]
pub struct AllowlistMetrics {
    pub policies: Family<PolicyLabels, Gauge>,
    /// Matches of high-level rules all stored policies have suppressed
    /// (survives restarts, unlike `allowlisted_high_matches`).
    pub high_hits: Gauge,
}

/// The kinds of row retention counts (`PruneReport::counts`, in order).
pub const RETENTION_KINDS: [&str; 11] = [
    "alarms",
    "transitions",
    "call_records",
    "samples",
    "dead_letters",
    "notify_messages",
    "notify_deliveries",
    "rollup_rows",
    "key_ip_rows",
    "chain_links_cut",
    "chain_links_carried",
];

/// What retention removed, by kind of row, and its failed runs.
#[derive(Debug, Default)]
pub struct RetentionMetrics {
    pub removed: Family<Vec<(&'static str, &'static str)>, Counter>,
    pub runs: Counter,
    pub failures: Counter,
}

impl RetentionMetrics {
    /// One run's rows removed, by kind (`PruneReport::counts`).
    pub fn record(&self, counts: impl IntoIterator<Item = (&'static str, u64)>) {
        self.runs.inc();
        for (kind, count) in counts {
            self.removed.get_or_create(&vec![("kind", kind)]).inc_by(count);
        }
    }
}

/// The running rule set and its reloads, brought up to date at scrape time
/// from the reloader's status.
#[derive(Debug, Default)]
pub struct RuleMetrics {
    pub loaded: Gauge,
    pub reloads: Counter,
    pub reload_failures: Counter,
    /// 1 while the last reload attempt failed (the running rules stay).
    pub reload_failing: Gauge,
}

impl RuleMetrics {
    /// Bring the counters up to the totals the reloader keeps.
    pub fn sync(&self, rules: usize, reloads: u64, failures: u64, failing: bool) {
        self.loaded.set(i64::try_from(rules).unwrap_or(i64::MAX));
        self.reloads.inc_by(reloads.saturating_sub(self.reloads.get()));
        self.reload_failures
            .inc_by(failures.saturating_sub(self.reload_failures.get()));
        self.reload_failing.set(i64::from(failing));
    }
}

/// All metrics of one daemon.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub stats: Arc<Stats>,
    pub kafka: Arc<KafkaMetrics>,
    pub notify: Arc<NotifyMetrics>,
    pub allowlist: Arc<AllowlistMetrics>,
    pub retention: Arc<RetentionMetrics>,
    pub rules: Arc<RuleMetrics>,
    /// Alarms opened, by level.
    pub alarms_opened: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// Seconds from a source starting a batch to its store commit.
    pub batch_seconds: Histogram,
    /// Seconds from a Kafka message's timestamp to the commit of the
    /// transaction that evaluated its event (the reordering hold included).
    pub append_to_commit_seconds: Histogram,
    /// Seconds the store stage took to write and commit one transaction.
    pub store_write_seconds: Histogram,
    /// 1 while the store cannot be written (disk full, read-only, locked)
    /// and intake waits for it.
    pub store_stalled: Gauge,
    /// Store writes that failed (each retry counts).
    pub store_write_failures: Counter,
    /// HTTP API requests by method, route and status.
    pub api_requests: Family<ApiRequestLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::with_instance(None)
    }

    /// Every series labelled `instance="NAME"`: daemons sharing a
    /// PostgreSQL store are told apart in one Prometheus query.
    pub fn with_instance(instance: Option<String>) -> Metrics {
        let stats = Arc::new(Stats::default());
        let kafka = Arc::new(KafkaMetrics::default());
        let notify = Arc::new(NotifyMetrics::default());
        let allowlist = Arc::new(AllowlistMetrics::default());
        let retention = Arc::new(RetentionMetrics::default());
        let rules = Arc::new(RuleMetrics::default());
        // Counters a dashboard rates show from the start, at 0.
        for kind in RETENTION_KINDS {
            let _ = retention.removed.get_or_create(&vec![("kind", kind)]);
        }
        for channel in ["email", "webhook"] {
            for result in ["delivered", "retry", "failed", "deferred"] {
                let _ = notify.attempts.get_or_create(&DeliveryLabels {
                    channel: channel.into(),
                    result: result.into(),
                });
            }
        }
        let batch_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let append_to_commit_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        let store_write_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        let mut registry = match instance {
            Some(name) => Registry::with_prefix_and_labels(
                "trailwarden",
                [(std::borrow::Cow::Borrowed("instance"), std::borrow::Cow::Owned(name))].into_iter(),
            ),
            None => Registry::with_prefix("trailwarden"),
        };
        registry.register_collector(Box::new(StatsCollector(stats.clone())));
        registry.register(
            "batch_seconds",
            "Seconds from a source starting a batch to the store committing it",
            batch_seconds.clone(),
        );
        registry.register(
            "append_to_commit_seconds",
            "Seconds from a Kafka message's timestamp to the commit of the transaction that evaluated its \
             event (reordering hold included)",
            append_to_commit_seconds.clone(),
        );
        registry.register(
            "store_write_seconds",
            "Seconds the store took to write and commit one transaction (a slow disk or a \
             checkpoint shows here first)",
            store_write_seconds.clone(),
        );
        let store_stalled = Gauge::default();
        registry.register(
            "store_stalled",
            "1 while the store cannot be written (disk full, read-only, locked): intake is paused and the \
             same transaction is retried until it commits",
            store_stalled.clone(),
        );
        let store_write_failures = Counter::default();
        registry.register(
            "store_write_failures",
            "Store transactions that failed to commit (each retry counts)",
            store_write_failures.clone(),
        );
        let kafka_registry = registry.sub_registry_with_prefix("kafka");
        let counters: [(&str, &str, &Counter); 7] = [
            ("messages", "Kafka messages consumed", &kafka.messages),
            (
                "message_bytes",
                "Bytes of Kafka message payloads consumed",
                &kafka.message_bytes,
            ),
            (
                "skipped_messages",
                "Messages below the stored offset of their partition (already processed)",
                &kafka.skipped,
            ),
            (
                "dead_letter_messages",
                "Poison messages copied to the dead-letter topic",
                &kafka.dead_letters_produced,
            ),
            (
                "dead_letter_failures",
                "Poison messages that could not be copied to the dead-letter topic",
                &kafka.dead_letter_produce_failures,
            ),
            ("rebalances", "Partition assignments and revocations", &kafka.rebalances),
            (
                "commit_failures",
                "Offset commits to Kafka that failed (the store keeps the offsets regardless)",
                &kafka.commit_failures,
            ),
        ];
        for (name, help, counter) in counters {
            kafka_registry.register(name, help, counter.clone());
        }
        kafka_registry.register("connected", "1 while the brokers answer", kafka.connected.clone());
        kafka_registry.register(
            "partition_lag",
            "Messages in a partition after the group's committed offset",
            kafka.lag.clone(),
        );
        let notify_registry = registry.sub_registry_with_prefix("notify");
        notify_registry.register(
            "attempts",
            "Notification delivery attempts by channel and result",
            notify.attempts.clone(),
        );
        notify_registry.register(
            "folded",
            "Notifications over a topic's rate limit, folded into a digest",
            notify.folded.clone(),
        );
        notify_registry.register("digests", "Digest messages queued", notify.digests.clone());
        notify_registry.register("pending", "Deliveries waiting to be sent", notify.pending.clone());
        notify_registry.register(
            "failed",
            "Deliveries given up (see `notify deliveries --failed`)",
            notify.failed.clone(),
        );
        let allowlist_registry = registry.sub_registry_with_prefix("allowlist");
        allowlist_registry.register(
            "policies",
            "Allowlist policies in the store by state and breadth",
            allowlist.policies.clone(),
        );
        allowlist_registry.register(
            "high_hits",
            "Matches of high-level rules suppressed by the stored allowlist policies",
            allowlist.high_hits.clone(),
        );
        let retention_registry = registry.sub_registry_with_prefix("retention");
        retention_registry.register(
            "removed_rows",
            "Rows removed by retention (chain links cut and carried included), by kind",
            retention.removed.clone(),
        );
        retention_registry.register("runs", "Retention runs completed", retention.runs.clone());
        retention_registry.register(
            "failures",
            "Retention runs that failed, or left the hash chain uncut because it is damaged",
            retention.failures.clone(),
        );
        let alarms_opened = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
        // Every level shows from the start, at 0.
        for level in ["info", "low", "medium", "high"] {
            let _ = alarms_opened.get_or_create(&vec![("level", level)]);
        }
        registry.register("alarms_opened", "Alarms opened, by level", alarms_opened.clone());
        registry.register("rules_loaded", "Rules in the running set", rules.loaded.clone());
        registry.register(
            "rule_reloads",
            "Reloads that installed a new rule set",
            rules.reloads.clone(),
        );
        registry.register(
            "rule_reload_failures",
            "Reloads refused (the running rules stayed in place)",
            rules.reload_failures.clone(),
        );
        registry.register(
            "rule_reload_failing",
            "1 while the last reload attempt failed",
            rules.reload_failing.clone(),
        );
        let api_requests = Family::<ApiRequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "HTTP API requests by method, route and status",
            api_requests.clone(),
        );
        Metrics {
            registry,
            stats,
            kafka,
            notify,
            allowlist,
            retention,
            rules,
            alarms_opened,
            batch_seconds,
            append_to_commit_seconds,
            store_write_seconds,
            store_stalled,
            store_write_failures,
            api_requests,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Reads the pipeline counters at scrape time.
#[derive(Debug)]
struct StatsCollector(Arc<Stats>);

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = &self.0;
        let counters: [(&str, &str, u64); 12] = [
            (
                "records",
                "Records read from sources",
                stats.records.load(Ordering::Relaxed),
            ),
            (
                "events",
                "Events decoded and normalized",
                stats.events.load(Ordering::Relaxed),
            ),
            (
                "malformed",
                "Records that could not be read (kept in dead letters)",
                stats.malformed.load(Ordering::Relaxed),
            ),
            (
                "input_bytes",
                "Bytes of input read",
                stats.bytes.load(Ordering::Relaxed),
            ),
            ("rule_matches", "Rule matches", stats.matches.load(Ordering::Relaxed)),
            (
                "allowlisted_matches",
                "Rule matches suppressed by an allowlist policy (counted on the policy)",
                stats.allowlisted.load(Ordering::Relaxed),
            ),
            (
                "allowlisted_high_matches",
                "Matches of high-level rules suppressed by an allowlist policy (see allowlist list: high_hits)",
                stats.allowlisted_high.load(Ordering::Relaxed),
            ),
            (
                "alarms_created",
                "Alarms opened",
                stats.alarms_created.load(Ordering::Relaxed),
            ),
            (
                "batches",
                "Store transactions (one per micro-batch)",
                stats.transactions.load(Ordering::Relaxed),
            ),
            (
                "late_events",
                "Events that arrived after a later event was evaluated",
                stats.late_events.load(Ordering::Relaxed),
            ),
            (
                "forced_releases",
                "Events evaluated early because the reorder buffer was full",
                stats.forced_releases.load(Ordering::Relaxed),
            ),
            (
                "state_evictions",
                "Rule-state entries evicted to stay within state.max_entries",
                stats.state_evictions.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        let gauges: [(&str, &str, u64); 2] = [
            (
                "buffered_events",
                "Events waiting in the event-time reorder buffer",
                stats.buffered.load(Ordering::Relaxed),
            ),
            (
                "state_entries",
                "Entries in the rule-state tables",
                stats.state_entries.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// Latencies (append to read, append to commit, store writes) counted
/// exactly, by millisecond (up to `LagRecorder::SPAN_MS`, the rest in one
/// overflow count), for the percentiles the daemon logs when it stops; the
/// metrics' histograms have only doubling buckets.
#[derive(Debug, Default)]
pub struct LagRecorder {
    counts: Vec<u32>,
    total: u64,
    max_ms: i64,
}

impl LagRecorder {
    /// Latencies counted one by one up to two minutes.
    pub const SPAN_MS: usize = 120_000;

    pub fn record(&mut self, lag_ms: i64) {
        let lag_ms = lag_ms.max(0);
        if self.counts.is_empty() {
            self.counts = vec![0; Self::SPAN_MS + 1];
        }
        let slot = (lag_ms as usize).min(Self::SPAN_MS);
        self.counts[slot] = self.counts[slot].saturating_add(1);
        self.total += 1;
        self.max_ms = self.max_ms.max(lag_ms);
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Log the count, p50, p99 and max under `what`, if anything was recorded.
    pub fn log(&self, what: &str) {
        if self.total > 0 {
            tracing::info!(
                count = self.total,
                p50_ms = self.quantile_ms(0.5).unwrap_or_default(),
                p99_ms = self.quantile_ms(0.99).unwrap_or_default(),
                max_ms = self.max_ms,
                "{what}"
            );
        }
    }

    pub fn max_ms(&self) -> i64 {
        self.max_ms
    }

    /// The smallest latency at or under which a `quantile` share of the
    /// events fall (`None` before any); the overflow slot reads as the maximum.
    pub fn quantile_ms(&self, quantile: f64) -> Option<i64> {
        if self.total == 0 {
            return None;
        }
        let wanted = ((quantile.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (ms, count) in self.counts.iter().enumerate() {
            seen += u64::from(*count);
            if seen >= wanted {
                return Some(if ms == Self::SPAN_MS { self.max_ms } else { ms as i64 });
            }
        }
        Some(self.max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_name_labels_every_series_including_the_collected_ones() {
        let metrics = Metrics::with_instance(Some("tw-a".into()));
        metrics.stats.events.fetch_add(3, Ordering::Relaxed);
        let text = metrics.render();
        let series: Vec<&str> = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .collect();
        assert!(series.len() > 10, "{text}");
        for line in series {
            assert!(line.contains("instance=\"tw-a\""), "{line}");
        }
        assert!(!Metrics::new().render().contains("instance="));
    }

    #[test]
    fn pipeline_counters_and_kafka_metrics_are_rendered_with_their_values() {
        let metrics = Metrics::new();
        metrics.stats.events.fetch_add(42, Ordering::Relaxed);
        metrics.stats.buffered.store(7, Ordering::Relaxed);
        metrics.kafka.messages.inc_by(5);
        metrics
            .kafka
            .lag
            .get_or_create(&PartitionLabels {
                topic: "audit".into(),
                partition: 2,
            })
            .set(13);
        metrics.batch_seconds.observe(0.02);
        let text = metrics.render();
        assert!(text.contains("trailwarden_append_to_commit_seconds_count 0"), "{text}");
        assert!(text.contains("trailwarden_store_write_seconds_count 0"), "{text}");
        assert!(text.contains("trailwarden_events_total 42"), "{text}");
        assert!(text.contains("trailwarden_buffered_events 7"), "{text}");
        assert!(text.contains("trailwarden_kafka_messages_total 5"), "{text}");
        assert!(
            text.contains("trailwarden_kafka_partition_lag{topic=\"audit\",partition=\"2\"} 13"),
            "{text}"
        );
        assert!(text.contains("trailwarden_batch_seconds_count 1"), "{text}");
    }

    #[test]
    fn lag_percentiles_are_exact_to_the_millisecond() {
        let mut lags = LagRecorder::default();
        assert_eq!(lags.quantile_ms(0.5), None);
        for lag in 1..=100 {
            lags.record(lag);
        }
        lags.record(-5);
        lags.record(500_000);
        assert_eq!(lags.total(), 102);
        assert_eq!(lags.quantile_ms(0.5), Some(50));
        assert_eq!(lags.quantile_ms(0.99), Some(100));
        assert_eq!(lags.quantile_ms(1.0), Some(500_000));
        assert_eq!(lags.quantile_ms(0.0), Some(0));
        assert_eq!(lags.max_ms(), 500_000);
    }
}
