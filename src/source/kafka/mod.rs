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
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{ChunkBatch, KafkaOffset};
use crate::metrics::Metrics;

mod batcher;
mod context;
mod dead_letter;

use batcher::Batcher;
use context::{Link, SourceContext};
pub use dead_letter::{DeadLetterContext, DeadLetterProducer};

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
/// Called on each assignment with the partitions newly assigned: a shared
/// (PostgreSQL) store claims them first, fencing out their earlier owner.
pub type StoredOffsets = Box<dyn FnMut(&str, &[(Arc<str>, i32)]) -> Result<Vec<KafkaOffset>, String> + Send>;

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
                read_lags: crate::metrics::LagRecorder::default(),
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
        // With a batch under way, look without waiting: nothing there means
        // everything fetched so far is in the batch, and it goes now rather
        // than after `batch_wait` (waiting would add latency, not events).
        let pending = context.lock().pending();
        let polled = consumer.poll(if pending { Duration::ZERO } else { poll_wait });
        let drained = pending && polled.is_none();
        match polled {
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
        if (drained || batcher.due()) && batcher.send().is_err() {
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
    context.lock().read_lags.log("kafka append to read");
    let flushed = context.lock().flush(context.rebalance_timeout, None);
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
