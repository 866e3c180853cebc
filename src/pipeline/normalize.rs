//! The normalizer stage: chunk batches in, events out (decode, unwrap,
//! normalize, the window of believable times), dead letters logged and kept.
//! Several normalizer threads share the work; `ordered.rs` keeps the order.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};

use super::ordered::{NumberedReceiver, OrderedSender};
use super::{DeadLetterHook, Evaluated, EventBatch, Stats, memory_estimate};
use crate::event::decode::{DeadLetter, Decoded};
use crate::event::normalize::NormalizeContext;
use crate::event::window::TimeWindow;
use crate::memory::{COLLECT_EVERY, Reclaimer};
use crate::source::ChunkBatch;
use crate::source::normalize_owned_chunk;

/// Logs each dead letter once, at most `LOG_PER_SOURCE` per source.
#[derive(Default)]
pub(super) struct DeadLetterLog {
    per_source: HashMap<Arc<str>, u64>,
}

const LOG_PER_SOURCE: u64 = 20;

impl DeadLetterLog {
    fn log(&mut self, letter: &DeadLetter) {
        let count = self.per_source.entry(letter.origin.source.clone()).or_insert(0);
        *count += 1;
        if *count <= LOG_PER_SOURCE {
            tracing::warn!(origin = %letter.origin, reason = %letter.reason, "unreadable record kept in dead letters");
        }
        if *count == LOG_PER_SOURCE {
            tracing::warn!(source = %letter.origin.source, "more unreadable records in this source: logging stops, all are kept in dead letters");
        }
    }
}

/// What the normalizer threads share.
pub(super) struct Shared {
    pub(super) receiver: Arc<NumberedReceiver<ChunkBatch>>,
    pub(super) sender: OrderedSender<EventBatch>,
    /// Events the engine is done with, to be freed by a normalizer.
    pub(super) evaluated: Arc<Mutex<Receiver<Evaluated>>>,
    pub(super) stats: Arc<Stats>,
    pub(super) naive_time_offset: chrono::FixedOffset,
    pub(super) time_window: TimeWindow,
    pub(super) on_dead_letters: Arc<Mutex<Option<DeadLetterHook>>>,
    pub(super) log: Arc<Mutex<DeadLetterLog>>,
}

/// Free the events the engine handed back, if no other normalizer is at it.
fn free_evaluated(evaluated: &Mutex<Receiver<Evaluated>>) {
    if let Ok(receiver) = evaluated.try_lock() {
        while let Ok(events) = receiver.try_recv() {
            drop(events);
        }
    }
}

pub(super) fn normalize_stage(shared: Shared) {
    let Shared {
        receiver,
        sender,
        evaluated,
        stats,
        naive_time_offset,
        time_window,
        on_dead_letters,
        log,
    } = shared;
    let mut decoded = Decoded::default();
    let mut reclaimer = Reclaimer::default();
    loop {
        // The events the engine is done with are freed here, by a thread
        // of the stage that allocated them.
        free_evaluated(&evaluated);
        let (number, mut batch) = match receiver.recv_timeout(COLLECT_EVERY) {
            Ok(numbered) => numbered,
            Err(RecvTimeoutError::Timeout) => {
                free_evaluated(&evaluated);
                reclaimer.idle();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut context = NormalizeContext::new(batch.ingest_time);
        context.naive_time_offset = naive_time_offset;
        let bounds = time_window.bounds(chrono::Utc::now());
        let mut out = EventBatch {
            events: Vec::with_capacity(batch.chunks.len()),
            sizes: Vec::with_capacity(batch.chunks.len()),
            floors: Vec::with_capacity(batch.floors.len()),
            dead_letters: batch.source_errors,
            checkpoints: batch.checkpoints,
            kafka_offsets: batch.kafka_offsets,
            flush: batch.flush,
            partitions: batch.partitions,
            started: batch.started,
        };
        let mut bytes = 0u64;
        let mut floors = batch.floors.iter().peekable();
        for (index, chunk) in batch.chunks.iter_mut().enumerate() {
            // Floors count chunks; the engine counts events.
            while let Some((_, floor)) = floors.next_if(|(end, _)| (*end as usize) <= index) {
                out.floors
                    .push((u32::try_from(out.events.len()).unwrap_or(u32::MAX), *floor));
            }
            bytes += chunk.bytes.len() as u64;
            let estimate = memory_estimate(&chunk.bytes, chunk.nodes);
            let (events_before, letters_before) = (out.events.len(), out.dead_letters.len());
            context.ingest_time = chunk.ingest_time.unwrap_or(batch.ingest_time);
            // The chunk's bytes become the event's raw text when they are the record.
            normalize_owned_chunk(
                chunk,
                &context,
                &bounds,
                &mut decoded,
                &mut |event| {
                    out.events.push(event);
                    true
                },
                &mut |letter| out.dead_letters.push(letter),
            );
            let produced = out.events.len() - events_before;
            if let Some(share) = estimate.checked_div(produced) {
                let share = u32::try_from(share).unwrap_or(u32::MAX).max(1);
                out.sizes.resize(out.events.len(), share);
            }
            if out.dead_letters.len() > letters_before
                && let Some(hook) = on_dead_letters
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .as_mut()
            {
                hook(
                    chunk,
                    &out.dead_letters[letters_before..],
                    out.events.len() - events_before,
                );
            }
        }
        for (_, floor) in floors {
            out.floors
                .push((u32::try_from(out.events.len()).unwrap_or(u32::MAX), *floor));
        }
        if !out.dead_letters.is_empty() {
            let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for letter in &out.dead_letters {
                log.log(letter);
            }
        }
        reclaimer.note(bytes);
        stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        stats.events.fetch_add(out.events.len() as u64, Ordering::Relaxed);
        stats
            .malformed
            .fetch_add(out.dead_letters.len() as u64, Ordering::Relaxed);
        stats
            .records
            .fetch_add((out.events.len() + out.dead_letters.len()) as u64, Ordering::Relaxed);
        if sender.send((number, out)).is_err() {
            return;
        }
    }
}
