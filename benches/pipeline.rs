//! Criterion benchmarks of the per-event work, over a generated corpus of
//! realistic records (all three clouds, ~1.35 KB average, planted attacks):
//! - `normalize`: decode + normalize, one JSON line at a time;
//! - `evaluate`: operation classification + the full default rule pack with
//!   engine state, on already-normalized events;
//! - `normalize_evaluate`: both, as the pipeline does per event.
//!
//! Run: `cargo bench --bench pipeline` (throughput is reported in events/s).
//! The end-to-end figure (framing, both pipeline threads, SQLite) comes from
//! `trailwarden replay` over `trailwarden generate` output; see docs/performance.md.

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trailwarden::event::decode::{Decoded, decode_chunk};
use trailwarden::event::model::AuditEvent;
use trailwarden::event::normalize::{NormalizeContext, normalize};
use trailwarden::event::origin::{Origin, Position};
use trailwarden::rules::state::{EngineState, StateLimits};
use trailwarden::rules::{EvalScratch, RuleOptions, RuleSet, load_rules};
use trailwarden::synth::{SynthOptions, generate};

/// The same allocator as the `trailwarden` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: usize = 20_000;

fn corpus() -> Vec<Vec<u8>> {
    let options = SynthOptions {
        events: EVENTS,
        distinct_keys: 2_000,
        distinct_ips: 3_000,
        ..SynthOptions::default()
    };
    generate(options)
        .map(|record| serde_json::to_vec(&record.record).expect("serializable"))
        .collect()
}

fn rules() -> RuleSet {
    load_rules(Path::new("rules"), &RuleOptions::default()).expect("the default pack loads")
}

/// Decode and normalize every line, calling `each` per event.
fn normalize_all(lines: &[Vec<u8>], decoded: &mut Decoded, mut each: impl FnMut(AuditEvent)) {
    let source: Arc<str> = Arc::from("bench");
    let context = NormalizeContext::new(chrono::Utc::now());
    for (index, line) in lines.iter().enumerate() {
        let origin = Origin::new(source.clone(), Position::Line(index as u64 + 1));
        decode_chunk(line, &origin, decoded);
        decoded.dead_letters.clear();
        for candidate in decoded.candidates.drain(..) {
            if let Ok(event) = normalize(candidate, &context) {
                each(event);
            }
        }
    }
}

fn benchmarks(criterion: &mut Criterion) {
    let lines = corpus();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let rules = rules();
    let mut group = criterion.benchmark_group("per_event");
    group.sample_size(10);
    group.throughput(Throughput::Elements(lines.len() as u64));
    eprintln!(
        "corpus: {} events, {:.0} bytes/event, {} rules",
        lines.len(),
        bytes as f64 / lines.len() as f64,
        rules.rules.len()
    );

    let mut decoded = Decoded::default();
    group.bench_function("normalize", |bench| {
        bench.iter(|| {
            let mut count = 0usize;
            normalize_all(&lines, &mut decoded, |_| count += 1);
            count
        })
    });

    let mut events = Vec::with_capacity(lines.len());
    normalize_all(&lines, &mut decoded, |event| events.push(event));
    let mut state = EngineState::new(StateLimits::default());
    let mut scratch = EvalScratch::default();
    let mut matches = Vec::new();
    group.bench_function("evaluate", |bench| {
        bench.iter(|| {
            let mut count = 0usize;
            for event in events.iter_mut() {
                matches.clear();
                rules.evaluate_with_state(event, &mut state, &mut scratch, &mut matches);
                count += matches.len();
            }
            count
        })
    });

    group.bench_function("normalize_evaluate", |bench| {
        bench.iter(|| {
            let mut count = 0usize;
            normalize_all(&lines, &mut decoded, |mut event| {
                matches.clear();
                rules.evaluate_with_state(&mut event, &mut state, &mut scratch, &mut matches);
                count += matches.len();
            });
            count
        })
    });
    group.finish();
}

criterion_group!(benches, benchmarks);
criterion_main!(benches);
