//! The consumer's librdkafka context: rebalances (start positions from the store
//! and Kafka, a flush barrier before revocation), errors, statistics, logging.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use super::batcher::Batcher;
use super::{PartitionKey, commit_to_kafka};
use crate::metrics::{KafkaMetrics, PartitionLabels};
use crate::source::PartitionChange;

/// Connection state, logged once per change.
pub(super) struct Link {
    pub(super) down: AtomicBool,
    pub(super) commit_failing: AtomicBool,
    pub(super) metrics: Arc<KafkaMetrics>,
}

impl Link {
    pub(super) fn failed(&self, reason: &str) {
        if !self.down.swap(true, Ordering::SeqCst) {
            tracing::warn!(%reason, "kafka unreachable; librdkafka keeps retrying with backoff (logged again when it recovers)");
        } else {
            tracing::debug!(%reason, "kafka still unreachable");
        }
        self.metrics.connected.set(0);
    }

    pub(super) fn reachable(&self) {
        if self.down.swap(false, Ordering::SeqCst) {
            tracing::info!("kafka reachable again");
        }
        self.metrics.connected.set(1);
    }
}

/// The consumer's context: rebalances, commits, errors, statistics.
pub(super) struct SourceContext {
    pub(super) batcher: Mutex<Batcher>,
    pub(super) metrics: Arc<KafkaMetrics>,
    pub(super) link: Link,
    pub(super) rebalance_timeout: Duration,
    /// The cooperative (incremental) protocol is in use. Known from the
    /// configuration: asking librdkafka inside a rebalance callback while the
    /// consumer closes deadlocks.
    pub(super) cooperative: bool,
    /// Set once the consumer is closing.
    pub(super) closing: AtomicBool,
}

impl SourceContext {
    pub(super) fn lock(&self) -> MutexGuard<'_, Batcher> {
        // Only the consumer thread locks; a poisoned lock still holds valid data.
        self.batcher.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn commit_result(&self, result: KafkaResult<()>) {
        match result {
            Ok(()) => {
                if self.link.commit_failing.swap(false, Ordering::SeqCst) {
                    tracing::info!("offset commits to kafka succeed again");
                }
            }
            Err(error) => {
                self.metrics.commit_failures.inc();
                if !self.link.commit_failing.swap(true, Ordering::SeqCst) {
                    tracing::warn!(%error, "offset commit to kafka failed (the store keeps the offsets; retried with the next batch)");
                }
            }
        }
    }

    /// Start each newly assigned partition at max(stored, committed).
    pub(super) fn assign(&self, consumer: &BaseConsumer<SourceContext>, assignment: &TopicPartitionList) {
        let mut list = assignment.clone();
        let committed = match consumer.committed_offsets(assignment.clone(), Duration::from_secs(10)) {
            Ok(committed) => Some(committed),
            Err(error) => {
                tracing::warn!(%error, "cannot fetch committed offsets; starting from the stored ones");
                None
            }
        };
        let mut batcher = self.lock();
        let keys: Vec<PartitionKey> = assignment
            .elements()
            .iter()
            .map(|element| (batcher.intern(element.topic()), element.partition()))
            .collect();
        let stored = batcher.stored_offsets(&keys);
        let mut starts = Vec::new();
        for element in assignment.elements() {
            let topic = batcher.intern(element.topic());
            let key = (topic, element.partition());
            let from_kafka = committed
                .as_ref()
                .and_then(|list| list.find_partition(element.topic(), element.partition()))
                .and_then(|found| match found.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                });
            let start = match (stored.get(&key).copied(), from_kafka) {
                (Some(stored), Some(committed)) => Some(stored.max(committed)),
                (stored, committed) => stored.or(committed),
            };
            if let Some(start) = start {
                let _ = list.set_partition_offset(element.topic(), element.partition(), Offset::Offset(start));
                batcher.next_expected.insert(key.clone(), start);
            } else {
                batcher.next_expected.remove(&key);
            }
            starts.push(format!(
                "{}/{}@{}",
                key.0,
                key.1,
                start.map_or_else(|| "start".to_string(), |offset| offset.to_string())
            ));
            batcher.at_end.remove(&key);
            batcher.assigned.insert(key);
        }
        batcher.last_activity = Instant::now();
        let scopes = batcher.scopes(&keys);
        if batcher.announce(PartitionChange::Assigned(scopes)).is_err() {
            tracing::error!("the pipeline stopped; the assignment is not taken up");
        }
        drop(batcher);
        tracing::info!(partitions = %starts.join(" "), "kafka partitions assigned");
        let result = if self.cooperative {
            consumer.incremental_assign(&list)
        } else {
            consumer.assign(&list)
        };
        if let Err(error) = result {
            tracing::error!(%error, "assigning partitions failed");
        }
    }

    /// Commit the in-flight batch to the store, then its offsets to Kafka,
    /// then let the partitions go.
    pub(super) fn revoke(&self, consumer: &BaseConsumer<SourceContext>, revoked: &TopicPartitionList) {
        let mut batcher = self.lock();
        let keys: HashSet<PartitionKey> = revoked
            .elements()
            .iter()
            .map(|element| (batcher.intern(element.topic()), element.partition()))
            .collect();
        let revoked_keys: Vec<PartitionKey> = keys.iter().cloned().collect();
        let scopes = batcher.scopes(&revoked_keys);
        // Closing is not a handover: the engine releases what it holds as
        // the input ends, as it does with one daemon.
        let change = (!self.closing.load(Ordering::SeqCst)).then_some(PartitionChange::Revoked(scopes));
        let flushed = batcher.flush(self.rebalance_timeout, change);
        let offsets = if flushed {
            batcher.sent_offsets(Some(&keys))
        } else {
            Vec::new()
        };
        for key in &keys {
            batcher.assigned.remove(key);
            batcher.at_end.remove(key);
            batcher.next_expected.remove(key);
            batcher.sent.remove(key);
        }
        drop(batcher);
        if self.closing.load(Ordering::SeqCst) {
            // Shutdown committed these already, before closing.
        } else if consumer.assignment_lost() {
            tracing::warn!(
                "kafka partitions were lost (session timed out); the store has their effects, Kafka may not"
            );
        } else {
            commit_to_kafka(consumer, &offsets, CommitMode::Sync, self);
        }
        tracing::info!(partitions = keys.len(), flushed, "kafka partitions revoked");
        let result = if self.cooperative {
            consumer.incremental_unassign(revoked)
        } else {
            consumer.unassign()
        };
        if let Err(error) = result {
            tracing::error!(%error, "releasing partitions failed");
        }
    }
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(level, facility, message);
    }

    fn stats(&self, statistics: Statistics) {
        let mut any_up = false;
        for broker in statistics.brokers.values() {
            if broker.nodeid >= 0 && broker.state == "UP" {
                any_up = true;
            }
        }
        if any_up {
            self.link.reachable();
        }
        for (topic, entry) in &statistics.topics {
            for (partition, stats) in &entry.partitions {
                if *partition < 0 || !stats.desired || stats.hi_offset < 0 {
                    continue;
                }
                let done = if stats.committed_offset >= 0 {
                    stats.committed_offset
                } else {
                    stats.app_offset
                };
                if done < 0 {
                    continue;
                }
                self.metrics
                    .lag
                    .get_or_create(&PartitionLabels {
                        topic: topic.clone(),
                        partition: *partition,
                    })
                    .set((stats.hi_offset - done).max(0));
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Some brokers report "no more messages" as a global error: not an outage.
        if matches!(
            error,
            KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::debug!(reason, "partition end reported as a global error");
            return;
        }
        self.link.failed(&format!("{error}: {reason}"));
    }
}

impl ConsumerContext for SourceContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        self.metrics.rebalances.inc();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                tracing::error!(error = ?other, "kafka rebalance failed; releasing all partitions");
                let _ = consumer.unassign();
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        self.commit_result(result);
    }
}

/// librdkafka's own log lines: configuration warnings are shown; connection
/// chatter is debug output (outages are logged once by the error callback).
pub(super) fn log_librdkafka(level: RDKafkaLogLevel, facility: &str, message: &str) {
    let important = matches!(
        level,
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Warning
    ) && facility.contains("CONF");
    if important {
        tracing::warn!(target: "librdkafka", facility, "{message}");
    } else {
        tracing::debug!(target: "librdkafka", facility, "{message}");
    }
}
