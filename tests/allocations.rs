//! Heap allocations on the common path, counted with a counting allocator:
//! reading a record with the tape path makes no heap block but the ones the
//! event keeps (its strings, its lists, the record's text). The parse buffers
//! and tapes are reused from record to record, and no tree is built. (A kept
//! list that grows is reallocated; reallocations are reported, not counted
//! as new blocks.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use trailwarden::event::decode::Decoded;
use trailwarden::event::model::{AuditEvent, Provider};
use trailwarden::event::normalize::NormalizeContext;
use trailwarden::event::origin::{Origin, Position};
use trailwarden::event::window::TimeWindow;
use trailwarden::source::{Chunk, normalize_chunk, normalize_owned_chunk};
use trailwarden::synth::{SynthOptions, generate};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static REALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The heap blocks an event owns: each non-empty string and list.
fn owned_blocks(event: &AuditEvent) -> u64 {
    let text = |value: &Option<String>| u64::from(value.as_ref().is_some_and(|text| !text.is_empty()));
    let string = |value: &String| u64::from(!value.is_empty());
    let mut blocks = string(&event.event_id)
        + text(&event.request_id)
        + text(&event.account_id)
        + text(&event.account_name)
        + text(&event.principal.id)
        + text(&event.principal.name)
        + text(&event.principal.arn)
        + text(&event.user_agent)
        + string(&event.service)
        + string(&event.action)
        + text(&event.region)
        + text(&event.outcome.error_code)
        + text(&event.outcome.error_message)
        + text(&event.resource.resource_type)
        + text(&event.degraded);
    blocks += event.access_key.as_ref().map_or(0, |key| string(&key.id));
    blocks += event.source.as_ref().map_or(0, |source| string(&source.text));
    blocks += event.platform_source.as_ref().map_or(0, |source| string(&source.text));
    blocks += u64::from(event.resource.names.capacity() > 0);
    blocks += event.resource.names.iter().map(string).sum::<u64>();
    blocks += u64::from(event.operations.capacity() > 0);
    // The record's text.
    blocks += u64::from(event.raw.text_len() > 0);
    blocks
}

#[test]
fn the_tape_path_allocates_only_what_the_event_keeps() {
    for provider in Provider::ALL {
        check(provider);
    }
}

fn check(provider: Provider) {
    let chunks: Vec<Chunk> = generate(SynthOptions {
        events: 2_000,
        clouds: vec![provider],
        ..SynthOptions::default()
    })
    .enumerate()
    .map(|(index, record)| Chunk {
        bytes: record.record.to_string().into_bytes(),
        origin: Origin::new(Arc::from("test"), Position::Line(index as u64 + 1)),
        oversized: false,
        nodes: None,
        ingest_time: None,
    })
    .collect();
    let context = NormalizeContext::new(chrono::Utc::now());
    let bounds = TimeWindow::default().bounds(chrono::Utc::now());
    let mut decoded = Decoded::default();
    let mut events: Vec<AuditEvent> = Vec::with_capacity(chunks.len());
    // Warm up: the reused buffers grow to the largest record once.
    for chunk in &chunks {
        normalize_chunk(chunk, &context, &bounds, &mut decoded, &mut |_| true, &mut |_| {});
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let reallocations_before = REALLOCATIONS.load(Ordering::Relaxed);
    for chunk in &chunks {
        normalize_chunk(
            chunk,
            &context,
            &bounds,
            &mut decoded,
            &mut |event| {
                events.push(event);
                true
            },
            &mut |letter| panic!("{letter:?}"),
        );
    }
    let made = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let grown = REALLOCATIONS.load(Ordering::Relaxed) - reallocations_before;
    assert_eq!(events.len(), chunks.len());
    let kept: u64 = events.iter().map(owned_blocks).sum();
    let per_event = made as f64 / events.len() as f64;
    let kept_per_event = kept as f64 / events.len() as f64;
    println!(
        "{provider}: {per_event:.2} new heap blocks per event, {kept_per_event:.2} kept by the event; {:.2} reallocations",
        grown as f64 / events.len() as f64
    );
    assert!(
        made <= kept,
        "{provider}: {made} allocations for {} events ({per_event:.2} each), but the events keep only {kept} ({kept_per_event:.2} each)",
        events.len()
    );

    // The pipeline's normalizers give up their chunks: each event keeps its
    // chunk's bytes as its raw text, so the record is not copied and one
    // block fewer is made per event.
    let mut owned: Vec<Chunk> = chunks
        .iter()
        .map(|chunk| Chunk {
            bytes: chunk.bytes.clone(),
            origin: chunk.origin.clone(),
            oversized: false,
            nodes: None,
            ingest_time: None,
        })
        .collect();
    let mut owned_events: Vec<AuditEvent> = Vec::with_capacity(chunks.len());
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for chunk in &mut owned {
        normalize_owned_chunk(
            chunk,
            &context,
            &bounds,
            &mut decoded,
            &mut |event| {
                owned_events.push(event);
                true
            },
            &mut |letter| panic!("{letter:?}"),
        );
    }
    let made_owned = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(owned_events.len(), chunks.len());
    println!(
        "{provider}: {:.2} new heap blocks per event when the chunks are given up",
        made_owned as f64 / owned_events.len() as f64
    );
    assert!(
        made_owned + owned_events.len() as u64 <= kept,
        "{provider}: {made_owned} allocations with the chunks given up, the events keep {kept} blocks of which one each is the chunk's"
    );
    for ((chunk, given_up), event) in chunks.iter().zip(&owned).zip(&owned_events) {
        assert!(given_up.bytes.is_empty(), "the event took the chunk's bytes");
        assert_eq!(event.raw.text().map(str::as_bytes), Some(chunk.bytes.as_slice()));
    }
}
