//! The Kafka source: one member of a consumer group, feeding the pipeline in
//! micro-batches with exactly-once alarm effects.
//!
//! How nothing is lost or counted twice:
//! - every batch carries the next offset of each partition it holds; the
//!   engine writes those offsets in the same SQLite transaction as the
//!   alarms, rule state and buffered events the batch produced;
//! - on every assignment the consumer starts each partition at the larger of
//!   the offset in the store and the offset committed to Kafka (another
//!   instance may have gone further), and drops any message below it;
//! - offsets are committed to Kafka only after the store has them, so lag
//!   tools work and the committed offset never runs ahead of the store;
//! - before partitions are revoked, the in-flight batch is sent with a flush
//!   barrier and the revocation waits until the store has committed it.
//!
//! Poison messages (empty, oversized, undecodable) become dead letters with
//! their topic, partition and offset, and can be copied to a dead-letter
//! topic; the partition keeps moving. Broker outages are retried by
//! librdkafka with backoff; they are logged once per change of state.

use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use super::{Chunk, ChunkBatch, KafkaOffset};
use crate::event::decode::DeadLetter;
use crate::event::origin::{Origin, Position};
use crate::metrics::{KafkaMetrics, Metrics, PartitionLabels};

/// `--once` ends after this long with nothing to read.
const IDLE_END: Duration = Duration::from_secs(3);

/// Bytes of an oversized message kept for the dead letter.
const OVERSIZED_EXCERPT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    #[error("source.kafka: the Kafka client rejected the configuration: {0}")]
    Client(KafkaError),
    #[error("source.kafka: cannot subscribe to {topics:?}: {error}")]
    Subscribe { topics: Vec<String>, error: KafkaError },
    #[error("source.kafka: cannot start the consumer thread: {0}")]
    Thread(std::io::Error),
}

/// The Kafka source's settings (`[source.kafka]`, validated by `config`).
/// Where a new consumer group starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartPosition {
    Earliest,
    Latest,
}

impl StartPosition {
    /// The librdkafka `auto.offset.reset` value.
    pub fn as_str(self) -> &'static str {
        match self {
            StartPosition::Earliest => "earliest",
            StartPosition::Latest => "latest",
        }
    }
}

#[derive(Clone, Debug)]
pub struct KafkaSettings {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    /// Where a group with no stored or committed offset starts.
    pub start: StartPosition,
    /// Most messages per micro-batch.
    pub batch_messages: usize,
    /// Longest a micro-batch waits to fill up.
    pub batch_wait: Duration,
    /// Larger messages are dead letters.
    pub max_message_bytes: usize,
    /// Poison messages are also copied here when set.
    pub dead_letter_topic: Option<String>,
    /// How long a revocation waits for the in-flight batch to commit.
    pub rebalance_timeout: Duration,
    /// librdkafka properties passed through as is (security.protocol, sasl.*, ssl.* …).
    pub properties: BTreeMap<String, String>,
}

/// Reads the offsets the store committed for a consumer group; handed to the
/// source by the daemon, which owns the store (the source never opens it).
pub type StoredOffsets = Box<dyn FnMut(&str) -> Result<Vec<KafkaOffset>, String> + Send>;

/// A partition, as a map key.
type PartitionKey = (Arc<str>, i32);

/// The running source.
pub struct KafkaSource {
    handle: JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl KafkaSource {
    /// Create the consumer (configuration errors surface here), subscribe, and
    /// start consuming on a thread of its own. `committed` receives the
    /// offsets of every store commit, to be committed to Kafka in turn.
    /// With `until_caught_up` the source stops once every assigned partition
    /// has been read to its end.
    pub fn start(
        settings: &KafkaSettings,
        stored_offsets: StoredOffsets,
        sender: SyncSender<ChunkBatch>,
        committed: Receiver<Vec<KafkaOffset>>,
        metrics: Arc<Metrics>,
        until_caught_up: bool,
        batch_bytes: usize,
    ) -> Result<KafkaSource, KafkaSourceError> {
        let group: Arc<str> = Arc::from(settings.group_id.as_str());
        let context = SourceContext {
            batcher: Mutex::new(Batcher {
                group: group.clone(),
                sender,
                batch: ChunkBatch::default(),
                batch_offsets: Vec::new(),
                sent: HashMap::new(),
                next_expected: HashMap::new(),
                assigned: HashSet::new(),
                at_end: HashSet::new(),
                topics: HashMap::new(),
                stored_offsets,
                batch_messages: settings.batch_messages,
                batch_bytes,
                batch_payload_bytes: 0,
                batch_wait: settings.batch_wait,
                max_message_bytes: settings.max_message_bytes,
                metrics: metrics.kafka.clone(),
                last_activity: Instant::now(),
                stopped: false,
            }),
            metrics: metrics.kafka.clone(),
            link: Link {
                down: AtomicBool::new(false),
                commit_failing: AtomicBool::new(false),
                metrics: metrics.kafka.clone(),
            },
            rebalance_timeout: settings.rebalance_timeout,
            cooperative: settings
                .properties
                .get("partition.assignment.strategy")
                .is_some_and(|strategy| strategy.contains("cooperative")),
            closing: AtomicBool::new(false),
        };
        let mut config = client_config(settings);
        config
            .set("group.id", settings.group_id.as_str())
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", settings.start.as_str())
            .set("enable.partition.eof", if until_caught_up { "true" } else { "false" });
        if !settings.properties.contains_key("statistics.interval.ms") {
            config.set("statistics.interval.ms", "5000");
        }
        let consumer: BaseConsumer<SourceContext> =
            config.create_with_context(context).map_err(KafkaSourceError::Client)?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|error| KafkaSourceError::Subscribe {
                topics: settings.topics.clone(),
                error,
            })?;
        tracing::info!(brokers = %settings.brokers, topics = ?settings.topics, group = %settings.group_id, "kafka consumer subscribed");
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            let poll_wait = settings
                .batch_wait
                .clamp(Duration::from_millis(10), Duration::from_millis(100));
            std::thread::Builder::new()
                .name("tw-kafka".into())
                .spawn(move || consume(consumer, committed, stop, poll_wait, until_caught_up))
                .map_err(KafkaSourceError::Thread)?
        };
        Ok(KafkaSource { handle, stop })
    }

    /// Whether the consumer thread has ended (caught up, or the pipeline stopped).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stop consuming: the in-flight batch is committed, its offsets are
    /// committed to Kafka, and the consumer leaves the group.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.handle.join();
    }
}

/// The librdkafka configuration shared by the consumer and the dead-letter producer.
fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", settings.brokers.as_str());
    for (name, value) in &settings.properties {
        config.set(name.as_str(), value.as_str());
    }
    config
}

/// The poll loop.
fn consume(
    consumer: BaseConsumer<SourceContext>,
    committed: Receiver<Vec<KafkaOffset>>,
    stop: Arc<AtomicBool>,
    poll_wait: Duration,
    until_caught_up: bool,
) {
    let context = consumer.context().clone();
    // --once: partitions signal their end (not every broker does, so a quiet
    // spell of IDLE_END with nothing to read also counts as the end).
    while !stop.load(Ordering::SeqCst) {
        commit_stored_offsets(&consumer, &committed, &context);
        match consumer.poll(poll_wait) {
            None => {}
            Some(Ok(message)) => {
                context.link.reachable();
                context.lock().add(&message);
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                context.lock().reached_end(partition);
            }
            Some(Err(error)) => context.link.failed(&error.to_string()),
        }
        let mut batcher = context.lock();
        if batcher.due() && batcher.send().is_err() {
            tracing::error!("the pipeline stopped; the kafka consumer stops too");
            return;
        }
        let idle = batcher.last_activity.elapsed() >= IDLE_END;
        if until_caught_up && batcher.caught_up(idle) {
            if idle {
                tracing::info!(quiet = ?IDLE_END, "nothing more to read; stopping (--once)");
            } else {
                tracing::info!("every assigned partition is read to its end; stopping (--once)");
            }
            break;
        }
    }
    // Shutdown: commit what was consumed, tell Kafka, leave the group.
    let flushed = context.lock().flush(context.rebalance_timeout);
    if flushed {
        let offsets = context.lock().sent_offsets(None);
        commit_to_kafka(&consumer, &offsets, CommitMode::Sync, &context);
    }
    // Closing revokes the partitions once more: everything is committed
    // already, and librdkafka must not be asked to block while it closes.
    context.closing.store(true, Ordering::SeqCst);
    drop(consumer);
    commit_drain(&committed);
}

/// Commit to Kafka the offsets the store has committed (partitions still ours only).
fn commit_stored_offsets(
    consumer: &BaseConsumer<SourceContext>,
    committed: &Receiver<Vec<KafkaOffset>>,
    context: &SourceContext,
) {
    let mut latest: HashMap<PartitionKey, KafkaOffset> = HashMap::new();
    while let Ok(offsets) = committed.try_recv() {
        for position in offsets {
            let key = (position.topic.clone(), position.partition);
            match latest.get_mut(&key) {
                Some(existing) if existing.next_offset >= position.next_offset => {}
                _ => {
                    latest.insert(key, position);
                }
            }
        }
    }
    if latest.is_empty() {
        return;
    }
    let offsets: Vec<KafkaOffset> = {
        let batcher = context.lock();
        latest
            .into_iter()
            .filter(|(key, _)| batcher.assigned.contains(key))
            .map(|(_, position)| position)
            .collect()
    };
    commit_to_kafka(consumer, &offsets, CommitMode::Async, context);
}

fn commit_drain(committed: &Receiver<Vec<KafkaOffset>>) {
    while committed.try_recv().is_ok() {}
}

fn commit_to_kafka(
    consumer: &BaseConsumer<SourceContext>,
    offsets: &[KafkaOffset],
    mode: CommitMode,
    context: &SourceContext,
) {
    if offsets.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for position in offsets {
        if list
            .add_partition_offset(
                &position.topic,
                position.partition,
                Offset::Offset(position.next_offset),
            )
            .is_err()
        {
            continue;
        }
    }
    if let Err(error) = consumer.commit(&list, mode) {
        context.commit_result(Err(error));
    } else if matches!(mode, CommitMode::Sync) {
        context.commit_result(Ok(()));
    }
}

/// Builds micro-batches; shared by the poll loop and the rebalance callback
/// (both run on the consumer thread, so the lock is never contended).
struct Batcher {
    group: Arc<str>,
    sender: SyncSender<ChunkBatch>,
    batch: ChunkBatch,
    /// Next offsets of the partitions in the batch being built.
    batch_offsets: Vec<KafkaOffset>,
    /// Next offsets of everything sent to the pipeline, per partition.
    sent: HashMap<PartitionKey, KafkaOffset>,
    /// Messages below this offset were processed already (store or Kafka says so).
    next_expected: HashMap<PartitionKey, i64>,
    assigned: HashSet<PartitionKey>,
    /// Partitions read to their end (with `enable.partition.eof`).
    at_end: HashSet<PartitionKey>,
    topics: HashMap<String, Arc<str>>,
    /// The offsets the store holds for the group (read at every assignment).
    stored_offsets: StoredOffsets,
    batch_messages: usize,
    /// Most payload bytes per micro-batch (`pipeline.batch_bytes`).
    batch_bytes: usize,
    /// Payload bytes in the batch being built.
    batch_payload_bytes: usize,
    batch_wait: Duration,
    max_message_bytes: usize,
    metrics: Arc<KafkaMetrics>,
    /// The last message or assignment.
    last_activity: Instant,
    /// The pipeline is gone.
    stopped: bool,
}

/// The pipeline has stopped.
struct PipelineGone;

impl Batcher {
    fn intern(&mut self, topic: &str) -> Arc<str> {
        if let Some(interned) = self.topics.get(topic) {
            return interned.clone();
        }
        let interned: Arc<str> = Arc::from(topic);
        self.topics.insert(topic.to_string(), interned.clone());
        interned
    }

    fn add<M: Message>(&mut self, message: &M) {
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
        let origin = Origin::new(topic.clone(), Position::Message { partition, offset });
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

    fn reached_end(&mut self, partition: i32) {
        // librdkafka's EOF error names the partition only; mark every topic's.
        let keys: Vec<PartitionKey> = self
            .assigned
            .iter()
            .filter(|(_, number)| *number == partition)
            .cloned()
            .collect();
        self.at_end.extend(keys);
    }

    fn caught_up(&self, idle: bool) -> bool {
        !self.assigned.is_empty()
            && (idle || self.assigned.iter().all(|key| self.at_end.contains(key)))
            && self.batch.chunks.is_empty()
            && self.batch.source_errors.is_empty()
    }

    fn due(&self) -> bool {
        let waiting = self.batch.chunks.len() + self.batch.source_errors.len();
        waiting >= self.batch_messages
            || self.batch_payload_bytes >= self.batch_bytes
            || (waiting > 0
                && self
                    .batch
                    .started
                    .is_some_and(|started| started.elapsed() >= self.batch_wait))
    }

    /// Send the batch being built (if any) to the pipeline.
    fn send(&mut self) -> Result<(), PipelineGone> {
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

    /// Send the batch being built and a barrier; wait until the store has
    /// committed both. Returns whether everything sent is now durable.
    fn flush(&mut self, timeout: Duration) -> bool {
        if self.send().is_err() {
            return false;
        }
        let (ack, acknowledged) = sync_channel(1);
        let barrier = ChunkBatch {
            flush: Some(ack),
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
    fn sent_offsets(&self, partitions: Option<&HashSet<PartitionKey>>) -> Vec<KafkaOffset> {
        self.sent
            .iter()
            .filter(|(key, _)| partitions.is_none_or(|wanted| wanted.contains(*key)))
            .map(|(_, position)| position.clone())
            .collect()
    }

    /// Offsets in the store for this group.
    fn stored_offsets(&mut self) -> HashMap<PartitionKey, i64> {
        match (self.stored_offsets)(&self.group) {
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

/// Connection state, logged once per change.
struct Link {
    down: AtomicBool,
    commit_failing: AtomicBool,
    metrics: Arc<KafkaMetrics>,
}

impl Link {
    fn failed(&self, reason: &str) {
        if !self.down.swap(true, Ordering::SeqCst) {
            tracing::warn!(%reason, "kafka unreachable; librdkafka keeps retrying with backoff (logged again when it recovers)");
        } else {
            tracing::debug!(%reason, "kafka still unreachable");
        }
        self.metrics.connected.set(0);
    }

    fn reachable(&self) {
        if self.down.swap(false, Ordering::SeqCst) {
            tracing::info!("kafka reachable again");
        }
        self.metrics.connected.set(1);
    }
}

/// The consumer's context: rebalances, commits, errors, statistics.
struct SourceContext {
    batcher: Mutex<Batcher>,
    metrics: Arc<KafkaMetrics>,
    link: Link,
    rebalance_timeout: Duration,
    /// The cooperative (incremental) protocol is in use. Known from the
    /// configuration: asking librdkafka inside a rebalance callback while the
    /// consumer closes deadlocks.
    cooperative: bool,
    /// Set once the consumer is closing.
    closing: AtomicBool,
}

impl SourceContext {
    fn lock(&self) -> MutexGuard<'_, Batcher> {
        // Only the consumer thread locks; a poisoned lock still holds valid data.
        self.batcher.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn commit_result(&self, result: KafkaResult<()>) {
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
    fn assign(&self, consumer: &BaseConsumer<SourceContext>, assignment: &TopicPartitionList) {
        let mut list = assignment.clone();
        let committed = match consumer.committed_offsets(assignment.clone(), Duration::from_secs(10)) {
            Ok(committed) => Some(committed),
            Err(error) => {
                tracing::warn!(%error, "cannot fetch committed offsets; starting from the stored ones");
                None
            }
        };
        let mut batcher = self.lock();
        let stored = batcher.stored_offsets();
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
    fn revoke(&self, consumer: &BaseConsumer<SourceContext>, revoked: &TopicPartitionList) {
        let mut batcher = self.lock();
        let keys: HashSet<PartitionKey> = revoked
            .elements()
            .iter()
            .map(|element| (batcher.intern(element.topic()), element.partition()))
            .collect();
        let flushed = batcher.flush(self.rebalance_timeout);
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
fn log_librdkafka(level: RDKafkaLogLevel, facility: &str, message: &str) {
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

/// Copies poison messages to the dead-letter topic. Copies are made as the
/// normalizer finds them, before the store commits, so a crash can copy a
/// message twice (at least once); headers say where it came from.
pub struct DeadLetterProducer {
    producer: ThreadedProducer<DeadLetterContext>,
    topic: String,
    metrics: Arc<KafkaMetrics>,
}

impl DeadLetterProducer {
    pub fn new(settings: &KafkaSettings, topic: &str, metrics: Arc<Metrics>) -> Result<Self, KafkaSourceError> {
        let producer: ThreadedProducer<DeadLetterContext> = client_config(settings)
            .create_with_context(DeadLetterContext {
                metrics: metrics.kafka.clone(),
                failing: AtomicBool::new(false),
            })
            .map_err(KafkaSourceError::Client)?;
        Ok(DeadLetterProducer {
            producer,
            topic: topic.to_string(),
            metrics: metrics.kafka.clone(),
        })
    }

    /// Copy the message behind `chunk` (which produced `letters`) to the topic.
    pub fn copy(&mut self, chunk: &Chunk, letters: &[DeadLetter], events: usize) {
        let Position::Message { partition, offset } = chunk.origin.position else {
            return;
        };
        let origin = format!("kafka:{}/{partition}#{offset}", chunk.origin.source);
        let reason: String = letters
            .first()
            .map(|letter| letter.reason.chars().take(1000).collect())
            .unwrap_or_default();
        let (dead, decoded) = (letters.len().to_string(), events.to_string());
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "tw-source",
                value: Some(origin.as_str()),
            })
            .insert(Header {
                key: "tw-reason",
                value: Some(reason.as_str()),
            })
            .insert(Header {
                key: "tw-dead-records",
                value: Some(dead.as_str()),
            })
            .insert(Header {
                key: "tw-events-decoded",
                value: Some(decoded.as_str()),
            })
            .insert(Header {
                key: "tw-truncated",
                value: Some(if chunk.oversized { "true" } else { "false" }),
            });
        let mut record = BaseRecord::to(&self.topic)
            .key(origin.as_str())
            .payload(chunk.bytes.as_slice())
            .headers(headers);
        // A full local queue drains as deliveries complete; wait a little, then give up.
        for _ in 0..100 {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((error, _)) => {
                    self.metrics.dead_letter_produce_failures.inc();
                    tracing::warn!(%error, %origin, topic = %self.topic, "cannot copy a poison message to the dead-letter topic (it stays in the dead-letter table)");
                    return;
                }
            }
        }
        self.metrics.dead_letter_produce_failures.inc();
        tracing::warn!(%origin, "dead-letter topic queue stayed full; the message stays in the dead-letter table only");
    }
}

impl Drop for DeadLetterProducer {
    fn drop(&mut self) {
        if let Err(error) = self.producer.flush(Duration::from_secs(5)) {
            tracing::warn!(%error, "dead-letter copies still queued at shutdown");
        }
    }
}

/// Counts dead-letter deliveries.
pub struct DeadLetterContext {
    metrics: Arc<KafkaMetrics>,
    failing: AtomicBool,
}

impl ClientContext for DeadLetterContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_librdkafka(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "dead-letter producer error");
    }
}

impl ProducerContext for DeadLetterContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.metrics.dead_letters_produced.inc();
                if self.failing.swap(false, Ordering::SeqCst) {
                    tracing::info!("dead-letter topic deliveries succeed again");
                }
            }
            Err((error, _)) => {
                self.metrics.dead_letter_produce_failures.inc();
                if !self.failing.swap(true, Ordering::SeqCst) {
                    tracing::warn!(%error, "a poison message could not be delivered to the dead-letter topic (it stays in the dead-letter table)");
                }
            }
        }
    }
}
