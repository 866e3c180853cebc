//! The event store (issue 17, row 5; seeds/002's trace query for every
//! event): each evaluated event is kept, with its record, for a retention
//! window, so an operator can ask what else a key, a principal or an address
//! did, beside the key-operation traces and the alarms.
//!
//! SQLite cannot take a row and eight index entries per event at the
//! pipeline's rate, so events are kept in blocks: one block per batch
//! transaction, its events encoded (`codec`) by the engine stage as it
//! evaluates them, compressed with zstd and written by the store stage in
//! the batch's own transaction (exactly once, with the alarms, checkpoints and
//! offsets of the same events). Beside each block the store keeps its time
//! range and a Bloom filter of its searchable terms; a search (`query`) reads
//! the filters of the blocks in its time range, newest first, and opens only
//! the blocks that may hold what it asks for. Blocks past the retention
//! (behind the newest event time) are deleted whole, on the schedule of the
//! traces' pruning.

pub mod codec;
mod query;
#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::db::{Db, DbError, DbExt, DbResult, get};

use crate::event::model::AuditEvent;

pub use query::{Cursor, EventFilter, EventPage, IpMatch, MAX_LIMIT, SearchError, StoredEvent, search};

/// Settings of the event store (`[events]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventStoreOptions {
    pub enabled: bool,
    /// Blocks whose newest event is older than this (behind the newest event time) are deleted.
    pub retention: Duration,
    /// zstd level of the blocks (1 is fast; higher is smaller and slower).
    pub compression_level: i32,
    /// Most events per block: a transaction larger than this (a replay's,
    /// or the daemon's in a backlog) writes several, so a search reads and
    /// decompresses blocks of about the same size whatever the transaction
    /// size (`pipeline.batch_events`).
    pub block_events: u32,
}

impl Default for EventStoreOptions {
    fn default() -> EventStoreOptions {
        EventStoreOptions {
            enabled: true,
            retention: Duration::from_secs(7 * 86_400),
            compression_level: 1,
            block_events: 2000,
        }
    }
}

/// One transaction's events, encoded.
#[derive(Debug, Default)]
pub struct EventBlock {
    pub bytes: Vec<u8>,
    /// Hashes of the events' searchable terms.
    pub terms: Vec<u64>,
    pub count: u32,
    pub min_ms: i64,
    pub max_ms: i64,
    /// zstd level to write it with.
    pub level: i32,
    /// The compressed bytes and the Bloom filter, once `Sealer::seal` made
    /// them (off the store's thread); `write` makes them itself otherwise.
    pub sealed: Option<Sealed>,
}

/// A block's compressed bytes and Bloom filter.
#[derive(Debug)]
pub struct Sealed {
    pub data: Vec<u8>,
    pub bloom: Vec<u8>,
    /// The uncompressed size (the block's bytes are freed once sealed).
    pub raw_len: usize,
}

impl EventBlock {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.terms.clear();
        self.count = 0;
        self.min_ms = i64::MAX;
        self.max_ms = i64::MIN;
        self.sealed = None;
    }
}

/// Compresses blocks and builds their filters, keeping one zstd context for
/// all of them (a context is hundreds of kilobytes of tables to set up). The
/// pipeline runs it on a thread between the engine and the store, so the
/// store's thread spends its time in SQLite and the disk.
#[derive(Default)]
pub struct Sealer {
    compressor: Option<(i32, zstd::bulk::Compressor<'static>)>,
    /// zstd writes into room for the worst case (more than the block); kept
    /// from block to block, and the compressed bytes copied out at their size.
    scratch: Vec<u8>,
}

impl Sealer {
    /// Compress `block` and build its filter, unless that is done already.
    pub fn seal(&mut self, block: &mut EventBlock) -> std::io::Result<()> {
        if block.is_empty() || block.sealed.is_some() {
            return Ok(());
        }
        let compressor = match &mut self.compressor {
            Some((level, compressor)) if *level == block.level => compressor,
            slot => &mut slot.insert((block.level, zstd::bulk::Compressor::new(block.level)?)).1,
        };
        // zstd needs room for the worst case (the block's own size and
        // more) and fills a fraction of it: that room is kept here rather
        // than taken fresh for each block (2.7 MB of new pages each time,
        // kept by the allocator for its purge delay once freed), and only
        // what it holds waits for the store.
        self.scratch.clear();
        self.scratch.reserve(zstd::zstd_safe::compress_bound(block.bytes.len()));
        compressor.compress_to_buffer(&block.bytes, &mut self.scratch)?;
        let data = self.scratch.clone();
        block.sealed = Some(Sealed {
            data,
            bloom: codec::bloom(&block.terms),
            raw_len: block.bytes.len(),
        });
        // Only the compressed block goes on: a transaction waiting for the
        // store (and the one it writes) would otherwise hold its events
        // uncompressed too (tens of MB each at `max_transaction_events`).
        // Its buffers go back to the builder for a later block.
        spare::give(std::mem::take(&mut block.bytes), std::mem::take(&mut block.terms));
        Ok(())
    }
}

/// Buffers of sealed or written blocks, for the builder to fill again: without them
/// each block took megabytes fresh from the allocator, and the freed ones
/// stayed resident for its purge delay (about 60 MB of peak RSS on a
/// 600 000-event `replay --db`).
mod spare {
    use std::sync::Mutex;

    /// Most buffers kept: blocks go to the sealing stage as they fill and
    /// give their buffers back once compressed, so at most a few are out.
    const KEEP: usize = 2;

    static SPARE: Mutex<Vec<(Vec<u8>, Vec<u64>)>> = Mutex::new(Vec::new());

    pub(super) fn give(mut bytes: Vec<u8>, mut terms: Vec<u64>) {
        if bytes.capacity() == 0 {
            return;
        }
        bytes.clear();
        terms.clear();
        if let Ok(mut spare) = SPARE.lock()
            && spare.len() < KEEP
        {
            spare.push((bytes, terms));
        }
    }

    pub(super) fn take() -> Option<(Vec<u8>, Vec<u64>)> {
        SPARE.lock().ok()?.pop()
    }
}

/// Where a builder hands each block as soon as it is full (the pipeline's
/// sealing stage), instead of keeping it for the transaction.
pub type BlockOutlet = Box<dyn FnMut(EventBlock) + Send>;

/// The engine stage's side: encodes each evaluated event into the
/// transaction's blocks (of at most `block_events` events each).
pub struct BlockBuilder {
    block: EventBlock,
    /// Blocks of this transaction that reached `block_events` (without an outlet).
    full: Vec<EventBlock>,
    level: i32,
    block_events: u32,
    /// With an outlet, full blocks leave at once: a transaction's events are
    /// not all held uncompressed until it ends (tens of MB at a replay's
    /// `max_transaction_events`, three transactions deep in the pipeline).
    outlet: Option<BlockOutlet>,
    /// Blocks handed to the outlet since the last `take`.
    sent: usize,
}

impl std::fmt::Debug for BlockBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockBuilder")
            .field("block", &self.block)
            .field("full", &self.full)
            .field("outlet", &self.outlet.is_some())
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl BlockBuilder {
    pub fn new(options: &EventStoreOptions) -> BlockBuilder {
        let mut block = EventBlock::default();
        block.clear();
        BlockBuilder {
            block,
            full: Vec::new(),
            level: options.compression_level,
            block_events: options.block_events.max(1),
            outlet: None,
            sent: 0,
        }
    }

    /// Hand each block to `outlet` once it is full, and the last one at
    /// `take`, which then returns none: the receiver joins them to their
    /// transaction (`take` says how many left for it).
    pub fn set_outlet(&mut self, outlet: BlockOutlet) {
        self.outlet = Some(outlet);
    }

    pub fn add(&mut self, event: &AuditEvent) {
        codec::encode(event, &mut self.block.bytes, &mut self.block.terms);
        let time = event.time.timestamp_millis();
        self.block.count += 1;
        self.block.min_ms = self.block.min_ms.min(time);
        self.block.max_ms = self.block.max_ms.max(time);
        if self.block.count >= self.block_events {
            let block = self.next_block();
            self.ship(block);
        }
    }

    fn ship(&mut self, block: EventBlock) {
        match &mut self.outlet {
            Some(outlet) => {
                self.sent += 1;
                outlet(block);
            }
            None => self.full.push(block),
        }
    }

    /// The block being filled, handed over; a new one takes its place.
    fn next_block(&mut self) -> EventBlock {
        let mut next = EventBlock::default();
        if let Some((bytes, terms)) = spare::take() {
            next.bytes = bytes;
            next.terms = terms;
        }
        next.clear();
        // A sealed block comes back without its buffers: start the next one
        // with the room this one took, instead of doubling up to it.
        next.bytes.reserve(self.block.bytes.len());
        next.terms.reserve(self.block.terms.len());
        let mut block = std::mem::replace(&mut self.block, next);
        block.level = self.level;
        block
    }

    /// The blocks of the events added since the last call, in order (none
    /// when no event was, or when they went to the outlet: `take_sent`).
    pub fn take(&mut self) -> Vec<EventBlock> {
        if !self.block.is_empty() {
            let block = self.next_block();
            self.ship(block);
        }
        std::mem::take(&mut self.full)
    }

    /// How many blocks went to the outlet since the last call.
    pub fn take_sent(&mut self) -> usize {
        std::mem::take(&mut self.sent)
    }

    /// Keep written blocks' buffers for later blocks (a sealed block gave
    /// its buffers back when it was sealed).
    pub fn recycle(&mut self, blocks: Vec<EventBlock>) {
        for block in blocks {
            spare::give(block.bytes, block.terms);
        }
    }
}

/// Write a block in the caller's transaction, on either backend.
pub(crate) fn write(db: &mut dyn Db, block: &EventBlock) -> DbResult<()> {
    if block.is_empty() {
        return Ok(());
    }
    let made;
    let (data, filter) = match &block.sealed {
        Some(sealed) => (&sealed.data, &sealed.bloom),
        None => {
            made = Sealed {
                data: zstd::bulk::compress(&block.bytes, block.level)
                    .map_err(|error| DbError::Unsupported(format!("compressing an event block: {error}")))?,
                bloom: codec::bloom(&block.terms),
                raw_len: block.bytes.len(),
            };
            (&made.data, &made.bloom)
        }
    };
    let raw_len = block.sealed.as_ref().map_or(block.bytes.len(), |sealed| sealed.raw_len) as i64;
    let id = db.insert_id(
        "INSERT INTO event_blocks (min_time_ms, max_time_ms, events, raw_bytes, stored_bytes, bloom) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        crate::db_params![
            block.min_ms,
            block.max_ms,
            block.count,
            raw_len,
            data.len() as i64,
            filter.as_slice()
        ],
    )?;
    db.execute(
        "INSERT INTO event_block_data (id, data) VALUES (?1, ?2)",
        crate::db_params![id, data.as_slice()],
    )?;
    Ok(())
}

/// Delete the blocks whose newest event is older than `cutoff` (Unix ms), in
/// the caller's transaction.
pub(crate) fn prune(db: &mut dyn Db, cutoff: i64) -> DbResult<()> {
    let removed = db.execute(
        "DELETE FROM event_block_data WHERE id IN (SELECT id FROM event_blocks WHERE max_time_ms < ?1)",
        crate::db_params![cutoff],
    )?;
    if removed > 0 {
        db.execute(
            "DELETE FROM event_blocks WHERE max_time_ms < ?1",
            crate::db_params![cutoff],
        )?;
        tracing::debug!(blocks = removed, cutoff, "event blocks past retention pruned");
    }
    Ok(())
}

/// What the event store holds (`store stats`, the API).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventStoreSize {
    pub blocks: u64,
    pub events: u64,
    /// Bytes of the encoded events before and after compression.
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    /// Event time of the oldest and newest events kept (Unix ms).
    pub oldest_ms: Option<i64>,
    pub newest_ms: Option<i64>,
}

pub fn size(db: &mut dyn Db) -> DbResult<EventStoreSize> {
    let size = db.query_opt(
        "SELECT COUNT(*), COALESCE(SUM(events), 0), COALESCE(SUM(raw_bytes), 0), COALESCE(SUM(stored_bytes), 0), \
         MIN(min_time_ms), MAX(max_time_ms) FROM event_blocks",
        &[],
        |row| {
            Ok(EventStoreSize {
                blocks: get::<i64>(row, 0)?.max(0) as u64,
                events: get::<i64>(row, 1)?.max(0) as u64,
                raw_bytes: get::<i64>(row, 2)?.max(0) as u64,
                stored_bytes: get::<i64>(row, 3)?.max(0) as u64,
                oldest_ms: get(row, 4)?,
                newest_ms: get(row, 5)?,
            })
        },
    )?;
    Ok(size.unwrap_or_default())
}
