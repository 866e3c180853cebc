//! Synthetic audit corpora: realistic, deterministic records of Huawei Cloud
//! CTS, Tencent Cloud CloudAudit and AWS CloudTrail, for benchmarks, demos
//! and tests.
//!
//! The generator invents an organisation (per cloud two or three accounts,
//! each with sub-users, roles or agencies, access keys, instances, buckets
//! and databases) and produces its day-to-day activity: mostly read-only API
//! calls, console sign-ins and console reads, cloud-service events, and
//! benign writes in working hours (Monday to Friday, 09:00–19:00
//! Asia/Shanghai). That ordinary traffic is shaped so that the default rule
//! pack in `rules/` rates none of it medium or high: no high-risk,
//! sensitive or privilege-escalation operation, no write between 22:00 and
//! 06:00, no offensive or COS Browser agent, no GitHub hook address, console
//! sign-ins with MFA, no user creation, never more than two failed calls
//! from one key within ten minutes, and every long-term key used again
//! within 15 days (when the corpus has enough calls for that).
//!
//! Into that traffic it plants short attack scenarios (see [`SCENARIOS`]),
//! each written with the clouds' own action names and shapes so that the
//! rule named next to it fires. Every planted record says which scenario it
//! belongs to ([`SynthRecord::planted`]).
//!
//! Everything is derived from [`SynthOptions::seed`] with a small built-in
//! PRNG (splitmix64), so the same options always give byte-identical output.
//! Records are produced lazily in time order; only the steps of attack
//! scenarios already scheduled (a few dozen records) are held in memory, so
//! corpora of millions of records stream in constant memory.
//!
//! The folder, from the bottom up: `random` (the PRNG and text encodings),
//! `timeline` (the office day, the spread of records over the span, the
//! clouds' time formats), `organisation` (accounts, users, roles, keys and
//! addresses), `agents` (user agents), `call` (one call before its
//! cloud's shape), `render` (one renderer per cloud), `generator` (the
//! generator's state and what ordinary and planted calls share),
//! `traffic` and `traffic_ops` (ordinary activity), `scenarios` and
//! `attacks` (planted attacks), and `delivery` (the `--dir` layout).
//! This file holds the public API and the loop that merges ordinary and
//! planted records in time order.

mod agents;
mod attacks;
mod call;
mod delivery;
mod generator;
mod organisation;
mod random;
mod render;
mod scenarios;
mod timeline;
mod traffic;
mod traffic_ops;

use std::cmp::Reverse;
use std::io::{self, Write};
use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;

use crate::event::model::Provider;
use delivery::ExampleDir;
use generator::Generator;
use timeline::MINUTE_MS;

pub use scenarios::{SCENARIOS, scenario_clouds};

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOptions {
    /// Seed of every random choice: same options, same bytes.
    pub seed: u64,
    /// Number of records to produce (ordinary + planted).
    pub events: usize,
    /// First event time; events spread over `span`, in time order.
    pub start: DateTime<Utc>,
    /// How long the corpus lasts. Activity follows the office day (busier in
    /// working hours, quieter at night and at weekends).
    pub span: Duration,
    /// Plant one attack scenario per this many ordinary records (0 = none).
    pub attack_every: usize,
    /// Which clouds to produce (mixed, roughly equal shares). Empty means all three.
    pub clouds: Vec<Provider>,
    /// Distinct long-term access keys to spread ordinary API traffic over
    /// (lets a test stream a million distinct keys). Console and role
    /// sessions add temporary keys on top. Each key appears once the corpus
    /// holds about as many keyed calls as there are keys.
    pub distinct_keys: usize,
    /// Distinct source IPs to spread ordinary traffic over.
    pub distinct_ips: usize,
}

impl Default for SynthOptions {
    fn default() -> SynthOptions {
        SynthOptions {
            seed: 42,
            events: 10_000,
            start: Utc
                .with_ymd_and_hms(2026, 3, 2, 0, 0, 0)
                .single()
                .expect("2026-03-02T00:00:00Z is a valid time"),
            span: Duration::days(7),
            attack_every: 200,
            clouds: Provider::ALL.to_vec(),
            distinct_keys: 60,
            distinct_ips: 40,
        }
    }
}

/// One generated record.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthRecord {
    pub provider: Provider,
    /// The record's event time (what a normalizer reads from it).
    pub time: DateTime<Utc>,
    /// The raw cloud record, exactly as the cloud would send it.
    pub record: Value,
    /// Name of the planted attack scenario this record belongs to, if any
    /// (a name from [`SCENARIOS`]).
    pub planted: Option<&'static str>,
}

/// What a writer produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SynthSummary {
    /// Records written.
    pub records: usize,
    /// How many of them belong to planted attack scenarios.
    pub planted: usize,
    /// Bytes written: the JSON-lines stream, or the files of an example
    /// directory as stored (gzip where gzipped).
    pub bytes: u64,
    /// Total size of the records as compact JSON (no separators):
    /// `record_bytes / records` is the average record size.
    pub record_bytes: u64,
    /// Huawei CTS records.
    pub huawei: usize,
    /// Tencent CloudAudit records.
    pub tencent: usize,
    /// AWS CloudTrail records.
    pub aws: usize,
    /// Files written (1 for JSON lines).
    pub files: usize,
}

impl SynthSummary {
    /// Average size of a record as compact JSON, in bytes.
    pub fn average_record_bytes(&self) -> f64 {
        if self.records == 0 {
            0.0
        } else {
            self.record_bytes as f64 / self.records as f64
        }
    }

    /// Records of one cloud.
    pub fn count(&self, provider: Provider) -> usize {
        match provider {
            Provider::Huawei => self.huawei,
            Provider::Tencent => self.tencent,
            Provider::Aws => self.aws,
        }
    }

    fn add(&mut self, record: &SynthRecord, json_len: usize) {
        self.records += 1;
        if record.planted.is_some() {
            self.planted += 1;
        }
        self.record_bytes += json_len as u64;
        match record.provider {
            Provider::Huawei => self.huawei += 1,
            Provider::Tencent => self.tencent += 1,
            Provider::Aws => self.aws += 1,
        }
    }
}

/// Iterator over records in time order. Lazy: records are made as they are
/// pulled, so any number of them streams in constant memory.
pub fn generate(options: SynthOptions) -> impl Iterator<Item = SynthRecord> {
    Generator::new(options)
}

/// Write the corpus as JSON lines (one raw record per line). Returns counts.
pub fn write_jsonl(options: SynthOptions, out: &mut dyn Write) -> io::Result<SynthSummary> {
    let mut out = io::BufWriter::with_capacity(256 << 10, out);
    let mut summary = SynthSummary {
        files: 1,
        ..SynthSummary::default()
    };
    let mut line = Vec::with_capacity(4096);
    for record in generate(options) {
        line.clear();
        serde_json::to_writer(&mut line, &record.record)?;
        summary.add(&record, line.len());
        line.push(b'\n');
        out.write_all(&line)?;
        summary.bytes += line.len() as u64;
    }
    out.flush()?;
    Ok(summary)
}

/// Write a demo directory in each cloud's native delivery shape:
///
/// - AWS: `<dir>/aws/CloudTrail/<account>_CloudTrail_<region>_<yyyymmddThhmmZ>_<random>.json.gz`,
///   each `{"Records":[...]}`, one file per account, region and hour of data;
/// - Tencent: `<dir>/tencent/<yyyymmddhh>/cloudaudit_<n>.json.gz`, gzipped JSON
///   lines, one file per five minutes (`n` = minute / 5; the hour is UTC+8); the
///   first of these files is written plain as `cloudaudit_<n>.jsonl`;
/// - Huawei: `<dir>/huawei/CloudTraces/<region>/<y>/<m>/<d>/system/<SERVICE>/cts_CloudTrace_<region>_<YYYY-MM-DDTHH-MM-SSZ>_<16 hex>.json.gz`,
///   a JSON array per file, one file per region, service and hour; the first
///   of these files is written plain (`.json`).
///
/// Every record goes to exactly one file. Returns counts (`bytes` = bytes on disk).
pub fn write_example_dir(options: SynthOptions, dir: &Path) -> io::Result<SynthSummary> {
    write_example_dir_with_span(options, dir, None)
}

/// Like [`write_example_dir`], with every file covering `file_span` instead
/// of the clouds' own delivery intervals (fewer, larger files: the shipped
/// `examples/` directory uses 12 hours).
pub fn write_example_dir_with_span(
    options: SynthOptions,
    dir: &Path,
    file_span: Option<Duration>,
) -> io::Result<SynthSummary> {
    let span_ms = file_span.map(|span| span.num_milliseconds().max(MINUTE_MS));
    let mut writer = ExampleDir::new(dir, options.seed, span_ms);
    let mut summary = SynthSummary::default();
    for record in generate(options) {
        let len = serde_json::to_vec(&record.record)?.len();
        summary.add(&record, len);
        writer.push(record)?;
    }
    writer.finish()?;
    summary.bytes = writer.bytes;
    summary.files = writer.files;
    Ok(summary)
}

/// The merge: each slot of the timeline takes the earliest planted record
/// already due, else makes an ordinary call; every `attack_every` ordinary
/// records a scenario is scheduled ahead of the clock.
impl Iterator for Generator {
    type Item = SynthRecord;

    fn next(&mut self) -> Option<SynthRecord> {
        if self.emitted >= self.events {
            return None;
        }
        let slot = self.slot_time();
        if let Some(Reverse(pending)) = self.pending.peek()
            && pending.time_ms <= slot
        {
            let Reverse(pending) = self.pending.pop()?;
            self.emitted += 1;
            return Some(pending.record);
        }
        self.emitted += 1;
        self.ordinary += 1;
        let provider = self.pick_cloud();
        let call = self.ordinary_call(provider, slot);
        let record = self.record(&call, None);
        if self.attack_every > 0 && self.ordinary.is_multiple_of(self.attack_every) {
            self.plant(slot);
        }
        Some(record)
    }
}
