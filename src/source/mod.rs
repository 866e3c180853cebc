//! Sources: where raw records come from, with their origin.
//!
//! A source produces `ChunkBatch`es: framed documents (a JSON line, a
//! pretty-printed document …) with their origin, plus a checkpoint saying how
//! far the source got, which the store persists in the same transaction as
//! the alarms the batch produced. Files, directories and stdin share one
//! reader (`file.rs`); the daemon's directory watcher lives in `watch.rs`.

pub mod file;
pub mod framer;
pub mod integrity;
pub mod kafka;
pub mod merge;
pub mod notifications;
pub mod object;
pub mod watch;

use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::event::decode::{DeadLetter, Decoded, decode_chunk};
use crate::event::model::AuditEvent;
use crate::event::normalize::{NormalizeContext, normalize};
use crate::event::origin::Origin;
use crate::event::tape::{read_owned_record, read_record};
use crate::event::window::TimeBounds;

/// One framed document from a source.
#[derive(Debug)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    pub origin: Origin,
    /// The document exceeded the size limit; `bytes` is only its start.
    pub oversized: bool,
    /// Object members and array items, when the source counted them while
    /// framing (file sources; see `Frame::nodes`); else counted when needed.
    pub nodes: Option<u32>,
    /// The chunk's own last-resort event time, when its batch gathers
    /// several files (see `ChunkBatch::ingest_time`).
    pub ingest_time: Option<DateTime<Utc>>,
}

/// Progress of a file source, stored with the batch that reached it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileCheckpoint {
    pub path: String,
    /// File size and modification time (ms) when reading started: the file's identity.
    pub size: u64,
    pub mtime_ms: i64,
    /// Decoded byte offset and line just after the last chunk of the batch.
    pub offset: u64,
    pub line: u64,
    /// Set when that position is between two records of a container
    /// document being split (a CloudTrail `Records` array, a JSON array).
    pub container: Option<framer::ContainerAt>,
    /// The whole file has been read.
    pub completed: bool,
}

/// Progress of a Kafka partition: the next offset to consume, stored with the
/// batch holding the messages before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaOffset {
    pub group: Arc<str>,
    pub topic: Arc<str>,
    pub partition: i32,
    pub next_offset: i64,
}

/// A Kafka partition of a consumer group: on a shared (PostgreSQL) store the
/// scope engine state is placed by, so it moves with the partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionScope {
    pub group: Arc<str>,
    pub topic: Arc<str>,
    pub partition: i32,
}

impl PartitionScope {
    /// The scope's name in the store's state tables (`''` is unscoped).
    pub fn name(&self) -> String {
        format!("kafka/{}/{}/{}", self.group, self.topic, self.partition)
    }
}

/// Partitions this consumer was given or lost, in stream order: everything
/// before a revocation belongs to the old assignment, everything after an
/// assignment may come from the new partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionChange {
    Assigned(Vec<PartitionScope>),
    Revoked(Vec<PartitionScope>),
}

/// A batch of chunks from one source.
#[derive(Debug, Default)]
pub struct ChunkBatch {
    pub chunks: Vec<Chunk>,
    /// Last-resort event time for records with none (file mtime, read time).
    pub ingest_time: DateTime<Utc>,
    /// Where the source will resume after this batch, per file (file sources
    /// in the daemon; a merged read's batch may hold parts of several files,
    /// and of one file twice: the last one counts).
    pub checkpoints: Vec<FileCheckpoint>,
    /// Problems reading the source itself (gzip corruption, I/O errors).
    pub source_errors: Vec<crate::event::decode::DeadLetter>,
    /// Kafka sources: where each partition resumes after this batch.
    pub kafka_offsets: Vec<KafkaOffset>,
    /// A barrier: the engine commits everything up to and including this
    /// batch, then sends `()` here (rebalances and shutdown wait for it).
    pub flush: Option<SyncSender<()>>,
    /// Kafka: partitions assigned (sent before their first message) or
    /// revoked (with the flush barrier of the revocation).
    pub partitions: Option<PartitionChange>,
    /// When the source started the batch (for the batch latency metric).
    pub started: Option<Instant>,
    /// A source merging several streams by event time: `(n, floor)` says
    /// that once the first `n` chunks of this batch are in, no record it
    /// sends later is older than `floor` (Unix ms), give or take the allowed
    /// lateness; `i64::MAX` once it has nothing more (see `merge.rs`). A
    /// batch gathering several streams' parts carries one per part, so how
    /// parts are gathered never changes what is released when.
    pub floors: Vec<(u32, i64)>,
}

/// Decode and normalize one chunk: every event goes to `on_event` (which
/// returns false to stop), every unreadable record to `on_dead_letter`, and
/// so does every event whose time is outside `bounds` (the one place that
/// check is made, whatever the cloud). Returns false when `on_event` asked to stop.
pub fn normalize_chunk(
    chunk: &Chunk,
    context: &NormalizeContext,
    bounds: &TimeBounds,
    decoded: &mut Decoded,
    on_event: &mut dyn FnMut(AuditEvent) -> bool,
    on_dead_letter: &mut dyn FnMut(DeadLetter),
) -> bool {
    if chunk.oversized {
        on_dead_letter(DeadLetter::new(
            chunk.origin.clone(),
            "document larger than the configured max_document_bytes",
            &chunk.bytes,
        ));
        return true;
    }
    // One record, the common case: read without a tree.
    let outcome = match decoded.tree_only {
        false => read_record(&chunk.bytes, &chunk.origin, context, None, &mut decoded.tape),
        true => None,
    };
    match outcome {
        Some(read) => tape_outcome(read, &chunk.bytes, bounds, on_event, on_dead_letter),
        None => normalize_tree(chunk, context, bounds, decoded, on_event, on_dead_letter),
    }
}

/// `normalize_chunk` for a chunk the caller is done with: an event read
/// from all of its bytes keeps them as its `raw` text (no copy), and the
/// chunk is left without them.
pub fn normalize_owned_chunk(
    chunk: &mut Chunk,
    context: &NormalizeContext,
    bounds: &TimeBounds,
    decoded: &mut Decoded,
    on_event: &mut dyn FnMut(AuditEvent) -> bool,
    on_dead_letter: &mut dyn FnMut(DeadLetter),
) -> bool {
    if chunk.oversized || decoded.tree_only {
        return normalize_chunk(chunk, context, bounds, decoded, on_event, on_dead_letter);
    }
    match read_owned_record(&mut chunk.bytes, &chunk.origin, context, None, &mut decoded.tape) {
        Some((origin, Ok(event))) if chunk.bytes.is_empty() => match bounds.reject(&event) {
            None => on_event(event),
            Some(reason) => {
                // The event took the chunk's bytes: give them back (a
                // dead-letter hook copies the chunk as it came).
                chunk.bytes = event.raw.text().unwrap_or_default().as_bytes().to_vec();
                on_dead_letter(DeadLetter::new(origin, reason, &chunk.bytes));
                true
            }
        },
        Some(read) => tape_outcome(read, &chunk.bytes, bounds, on_event, on_dead_letter),
        None => normalize_tree(chunk, context, bounds, decoded, on_event, on_dead_letter),
    }
}

/// Hand on what the tape path read from a chunk of `bytes`.
fn tape_outcome(
    (origin, result): (Origin, Result<AuditEvent, crate::event::normalize::NormalizeError>),
    bytes: &[u8],
    bounds: &TimeBounds,
    on_event: &mut dyn FnMut(AuditEvent) -> bool,
    on_dead_letter: &mut dyn FnMut(DeadLetter),
) -> bool {
    match result {
        Ok(event) => match bounds.reject(&event) {
            None => on_event(event),
            Some(reason) => {
                on_dead_letter(DeadLetter::new(origin, reason, bytes));
                true
            }
        },
        Err(error) => {
            on_dead_letter(DeadLetter::new(origin, error.to_string(), bytes));
            true
        }
    }
}

/// The tree path of `normalize_chunk`: anything but one plain record.
fn normalize_tree(
    chunk: &Chunk,
    context: &NormalizeContext,
    bounds: &TimeBounds,
    decoded: &mut Decoded,
    on_event: &mut dyn FnMut(AuditEvent) -> bool,
    on_dead_letter: &mut dyn FnMut(DeadLetter),
) -> bool {
    decode_chunk(&chunk.bytes, &chunk.origin, decoded);
    let mut keep_going = true;
    for candidate in decoded.candidates.drain(..) {
        if !keep_going {
            continue;
        }
        let origin = candidate.origin.clone();
        match normalize(candidate, context) {
            Ok(event) => match bounds.reject(&event) {
                None => keep_going = on_event(event),
                Some(reason) => on_dead_letter(DeadLetter::new(origin, reason, &chunk.bytes)),
            },
            Err(error) => on_dead_letter(DeadLetter::new(origin, error.to_string(), &chunk.bytes)),
        }
    }
    for letter in decoded.dead_letters.drain(..) {
        on_dead_letter(letter);
    }
    keep_going
}
