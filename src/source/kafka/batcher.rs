//! Micro-batches of messages for the pipeline, each carrying its partitions' next
//! offsets; poison messages become dead letters; flush barriers at revocation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::message::Message;

use super::{OVERSIZED_EXCERPT, PartitionKey, StoredOffsets};
use crate::event::decode::DeadLetter;
use crate::event::origin::{Origin, Position};
use crate::metrics::KafkaMetrics;
use crate::source::{Chunk, ChunkBatch, KafkaOffset, PartitionChange, PartitionScope};

/// Builds micro-batches; shared by the poll loop and the rebalance callback
/// (both run on the consumer thread, so the lock is never contended).
pub(super) struct Batcher {
    pub(super) group: Arc<str>,
    pub(super) sender: SyncSender<ChunkBatch>,
    pub(super) batch: ChunkBatch,
    /// Next offsets of the partitions in the batch being built.
    pub(super) batch_offsets: Vec<KafkaOffset>,
    /// Next offsets of everything sent to the pipeline, per partition.
    pub(super) sent: HashMap<PartitionKey, KafkaOffset>,
    /// Messages below this offset were processed already (store or Kafka says so).
    pub(super) next_expected: HashMap<PartitionKey, i64>,
    pub(super) assigned: HashSet<PartitionKey>,
    /// Partitions read to their end (with `enable.partition.eof`).
    pub(super) at_end: HashSet<PartitionKey>,
    pub(super) topics: HashMap<String, Arc<str>>,
    /// The offsets the store holds for the group (read at every assignment).
    pub(super) stored_offsets: StoredOffsets,
    pub(super) batch_messages: usize,
    /// Most payload bytes per micro-batch (`pipeline.batch_bytes`).
    pub(super) batch_bytes: usize,
    /// Payload bytes in the batch being built.
    pub(super) batch_payload_bytes: usize,
    pub(super) batch_wait: Duration,
    pub(super) max_message_bytes: usize,
    pub(super) metrics: Arc<KafkaMetrics>,
    /// The last message or assignment.
    pub(super) last_activity: Instant,
    /// The pipeline is gone.
    pub(super) stopped: bool,
    /// From each message's timestamp to its reading here (logged at stop
    /// beside the append-to-commit figures: the part Kafka and the producer
    /// account for).
    pub(super) read_lags: crate::metrics::LagRecorder,
}

/// The pipeline has stopped.
pub(super) struct PipelineGone;

impl Batcher {
    pub(super) fn intern(&mut self, topic: &str) -> Arc<str> {
        if let Some(interned) = self.topics.get(topic) {
            return interned.clone();
        }
        let interned: Arc<str> = Arc::from(topic);
        self.topics.insert(topic.to_string(), interned.clone());
        interned
    }

    pub(super) fn add<M: Message>(&mut self, message: &M) {
        let topic = self.intern(message.topic());
        let partition = message.partition();
        let offset = message.offset();
        let key = (topic.clone(), partition);
        self.metrics.messages.inc();
        self.last_activity = Instant::now();
        self.at_end.remove(&key);
        if let Some(&expected) = self.next_expected.get(&key) {
            if offset < expected {
                self.metrics.skipped.inc();
                return;
            }
            if offset > expected {
                // Compaction and transaction markers leave gaps; so does a broker
                // that serves a fetch from the wrong batch. Worth knowing either way.
                tracing::warn!(topic = %key.0, partition, expected, got = offset, "kafka offsets skipped by the broker");
            }
        }
        self.next_expected.insert(key, offset + 1);
        if self.batch.started.is_none() {
            self.batch.started = Some(Instant::now());
            self.batch.ingest_time = message
                .timestamp()
                .to_millis()
                .and_then(DateTime::<Utc>::from_timestamp_millis)
                .unwrap_or_else(Utc::now);
        }
        let appended_ms = message.timestamp().to_millis();
        if let Some(appended_ms) = appended_ms {
            self.read_lags
                .record(Utc::now().timestamp_millis().saturating_sub(appended_ms));
        }
        let origin = Origin::new(
            topic.clone(),
            Position::Message {
                partition,
                offset,
                appended_ms,
            },
        );
        match message.payload() {
            None | Some([]) => self
                .batch
                .source_errors
                .push(DeadLetter::new(origin, "message has no payload", b"")),
            Some(payload) => {
                self.metrics.message_bytes.inc_by(payload.len() as u64);
                let oversized = payload.len() > self.max_message_bytes;
                let bytes = if oversized {
                    payload[..OVERSIZED_EXCERPT.min(payload.len())].to_vec()
                } else {
                    payload.to_vec()
                };
                self.batch_payload_bytes += bytes.len();
                self.batch.chunks.push(Chunk {
                    bytes,
                    origin,
                    oversized,
                    nodes: None,
                    ingest_time: None,
                });
            }
        }
        let next = KafkaOffset {
            group: self.group.clone(),
            topic,
            partition,
            next_offset: offset + 1,
        };
        match self
            .batch_offsets
            .iter_mut()
            .find(|existing| existing.partition == partition && existing.topic == next.topic)
        {
            Some(existing) => existing.next_offset = next.next_offset,
            None => self.batch_offsets.push(next),
        }
    }

    pub(super) fn reached_end(&mut self, partition: i32) {
        // librdkafka's EOF error names the partition only; mark every topic's.
        let keys: Vec<PartitionKey> = self
            .assigned
            .iter()
            .filter(|(_, number)| *number == partition)
            .cloned()
            .collect();
        self.at_end.extend(keys);
    }

    pub(super) fn caught_up(&self, idle: bool) -> bool {
        !self.assigned.is_empty()
            && (idle || self.assigned.iter().all(|key| self.at_end.contains(key)))
            && !self.pending()
    }

    /// Messages or source errors wait in the batch being built.
    pub(super) fn pending(&self) -> bool {
        !self.batch.chunks.is_empty() || !self.batch.source_errors.is_empty()
    }

    pub(super) fn due(&self) -> bool {
        let waiting = self.batch.chunks.len() + self.batch.source_errors.len();
        waiting >= self.batch_messages
            || self.batch_payload_bytes >= self.batch_bytes
            || (self.pending()
                && self
                    .batch
                    .started
                    .is_some_and(|started| started.elapsed() >= self.batch_wait))
    }

    /// Send the batch being built (if any) to the pipeline.
    pub(super) fn send(&mut self) -> Result<(), PipelineGone> {
        if self.stopped {
            return Err(PipelineGone);
        }
        if self.batch.chunks.is_empty() && self.batch.source_errors.is_empty() && self.batch_offsets.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.batch);
        self.batch_payload_bytes = 0;
        if batch.started.is_none() {
            batch.started = Some(Instant::now());
        }
        for position in &self.batch_offsets {
            self.sent
                .insert((position.topic.clone(), position.partition), position.clone());
        }
        batch.kafka_offsets = std::mem::take(&mut self.batch_offsets);
        self.sender.send(batch).map_err(|_| {
            self.stopped = true;
            PipelineGone
        })
    }

    /// The partitions `keys` of this consumer's group, as state scopes.
    pub(super) fn scopes(&self, keys: &[PartitionKey]) -> Vec<PartitionScope> {
        keys.iter()
            .map(|(topic, partition)| PartitionScope {
                group: self.group.clone(),
                topic: topic.clone(),
                partition: *partition,
            })
            .collect()
    }

    /// Tell the pipeline that partitions were assigned, before any of their
    /// messages (the engine loads their state on a shared store).
    pub(super) fn announce(&mut self, change: PartitionChange) -> Result<(), PipelineGone> {
        self.send()?;
        let control = ChunkBatch {
            partitions: Some(change),
            started: Some(Instant::now()),
            ..ChunkBatch::default()
        };
        self.sender.send(control).map_err(|_| {
            self.stopped = true;
            PipelineGone
        })
    }

    /// Send the batch being built and a barrier (carrying `revoked`, the
    /// partitions being let go); wait until the store has committed both.
    /// Returns whether everything sent is now durable.
    pub(super) fn flush(&mut self, timeout: Duration, revoked: Option<PartitionChange>) -> bool {
        if self.send().is_err() {
            return false;
        }
        let (ack, acknowledged) = sync_channel(1);
        let barrier = ChunkBatch {
            flush: Some(ack),
            partitions: revoked,
            ..ChunkBatch::default()
        };
        if self.sender.send(barrier).is_err() {
            self.stopped = true;
            return false;
        }
        match acknowledged.recv_timeout(timeout) {
            Ok(()) => true,
            Err(_) => {
                tracing::error!(
                    ?timeout,
                    "the store did not commit the in-flight batch in time; its offsets are not committed to Kafka"
                );
                false
            }
        }
    }

    /// The next offsets of everything sent, for `partitions` (all when None).
    pub(super) fn sent_offsets(&self, partitions: Option<&HashSet<PartitionKey>>) -> Vec<KafkaOffset> {
        self.sent
            .iter()
            .filter(|(key, _)| partitions.is_none_or(|wanted| wanted.contains(*key)))
            .map(|(_, position)| position.clone())
            .collect()
    }

    /// Offsets in the store for this group, once `assigned` is claimed.
    pub(super) fn stored_offsets(&mut self, assigned: &[PartitionKey]) -> HashMap<PartitionKey, i64> {
        match (self.stored_offsets)(&self.group, assigned) {
            Ok(offsets) => offsets
                .into_iter()
                .map(|position| ((position.topic, position.partition), position.next_offset))
                .collect(),
            Err(error) => {
                tracing::error!(%error, "cannot read stored kafka offsets; starting from Kafka's committed offsets");
                HashMap::new()
            }
        }
    }
}
