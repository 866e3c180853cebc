//! Sources: where raw records come from, with their origin.
//!
//! A source produces `ChunkBatch`es: framed documents (a JSON line, a
//! pretty-printed document …) with their origin, plus a checkpoint saying how
//! far the source got, which the store persists in the same transaction as
//! the alarms the batch produced. Files, directories and stdin share one
//! reader (`file.rs`); the daemon's directory watcher lives in `watch.rs`.

pub mod file;
pub mod framer;
pub mod kafka;
pub mod merge;
pub mod watch;

use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::event::origin::Origin;

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
