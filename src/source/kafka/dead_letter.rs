//! The dead-letter topic: poison messages copied with headers saying where
//! they came from.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use super::{KafkaSettings, KafkaSourceError, client_config};
use crate::event::decode::DeadLetter;
use crate::event::origin::Position;
use crate::metrics::{KafkaMetrics, Metrics};
use crate::source::Chunk;

use super::context::log_librdkafka;

/// Copies poison messages to the dead-letter topic. Copies are made as the
/// normalizer finds them, before the store commits, so a crash can copy a
/// message twice (at least once); headers say where it came from.
pub struct DeadLetterProducer {
    pub(super) producer: ThreadedProducer<DeadLetterContext>,
    pub(super) topic: String,
    pub(super) metrics: Arc<KafkaMetrics>,
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
        let Position::Message { partition, offset, .. } = chunk.origin.position else {
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
    pub(super) metrics: Arc<KafkaMetrics>,
    pub(super) failing: AtomicBool,
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
