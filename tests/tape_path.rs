//! The tape path (simd-json, no tree; `src/event/tape.rs`) must read every
//! record exactly as the tree path does: the same events, field for field,
//! the same raw record once parsed, the same dead letters. Compared here on
//! every fixture, the published samples, the Panther corpus, a generated
//! corpus of all three clouds, and records altered in the ways real
//! pipelines alter them.

mod common;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use trailwarden::event::decode::{DeadLetter, Decoded};
use trailwarden::event::model::AuditEvent;
use trailwarden::event::normalize::NormalizeContext;
use trailwarden::event::origin::{Origin, Position};
use trailwarden::event::window::TimeWindow;
use trailwarden::rules::field::Field;
use trailwarden::source::{Chunk, normalize_chunk};
use trailwarden::synth::{SynthOptions, generate};

fn chunk(bytes: &[u8], line: u64) -> Chunk {
    Chunk {
        bytes: bytes.to_vec(),
        origin: Origin::new(Arc::from("test"), Position::Line(line)),
        oversized: false,
        nodes: None,
        ingest_time: None,
    }
}

/// Events and dead letters of one chunk, read by one path.
fn read(chunk: &Chunk, tree_only: bool) -> (Vec<AuditEvent>, Vec<DeadLetter>) {
    let context = NormalizeContext::new(chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap());
    let bounds = TimeWindow::default().bounds(chrono::Utc::now());
    let mut decoded = Decoded {
        tree_only,
        ..Decoded::default()
    };
    let (mut events, mut letters) = (Vec::new(), Vec::new());
    normalize_chunk(
        chunk,
        &context,
        &bounds,
        &mut decoded,
        &mut |event| {
            events.push(event);
            true
        },
        &mut |letter| letters.push(letter),
    );
    (events, letters)
}

/// `raw.` fields read on both paths' events: the tape path answers them
/// from the normalizer's pruned copy (`event::raw_paths`), the tree path
/// from the whole record. Paths the rules use, in other letter cases,
/// through arrays and JSON-inside-strings, whole top-level values, and ones
/// no record has. Parsing them registers them before any record is read.
static RAW_FIELDS: std::sync::LazyLock<Vec<Field>> = std::sync::LazyLock::new(|| {
    [
        "raw.requestParameters.userData",
        "raw.requestParameters.UserData",
        "raw.REQUESTPARAMETERS.USERDATA",
        "raw.requestParameters.groupSet.items.groupId",
        "raw.requestParameters.bucketName",
        "raw.requestParameters.policyArn",
        "raw.requestParameters.policyDocument.Statement.Effect",
        "raw.requestParameters",
        "raw.responseElements.ConsoleLogin",
        "raw.additionalEventData.MFAUsed",
        "raw.userIdentity.sessionContext.attributes.mfaAuthenticated",
        "raw.userIdentity.type",
        "raw.resources.0.ARN",
        "raw.resources.ARN",
        "raw.request.status",
        "raw.request.Action",
        "raw.code",
        "raw.eventType",
        "raw.trace_type",
        "raw.CloudAuditEvent.userIdentity.secretId",
        "raw.nothing.here",
    ]
    .iter()
    .map(|name| Field::parse(name).unwrap_or_else(|| panic!("{name}")))
    .collect()
});

/// Every value each `raw.` field has in an event.
fn raw_values(event: &AuditEvent) -> Vec<Vec<String>> {
    RAW_FIELDS
        .iter()
        .map(|field| {
            let mut values = Vec::new();
            field.any_value(event, &mut |value| {
                values.push(format!("{value:?}"));
                false
            });
            values
        })
        .collect()
}

/// Compare the two paths on each chunk; returns how many events were compared.
fn compare(chunks: &[Chunk], what: &str) -> usize {
    std::sync::LazyLock::force(&RAW_FIELDS);
    let mut events = 0;
    for chunk in chunks {
        let tape = read(chunk, false);
        let tree = read(chunk, true);
        let text = String::from_utf8_lossy(&chunk.bytes);
        assert_eq!(tape.0.len(), tree.0.len(), "{what}: event count of {text}");
        for (left, right) in tape.0.iter().zip(&tree.0) {
            let kept_text = left.raw.text_len() > 0;
            assert_eq!(raw_values(left), raw_values(right), "{what}: raw. fields of {text}");
            if kept_text {
                // Answered from the pruned copy, without parsing the record.
                assert!(!left.raw.is_parsed(), "{what}: raw parsed for a rule's path: {text}");
            }
            assert_eq!(left, right, "{what}: {text}");
            assert_eq!(left.raw.value(), right.raw.value(), "{what}: raw of {text}");
        }
        assert_eq!(tape.1, tree.1, "{what}: dead letters of {text}");
        events += tape.0.len();
    }
    events
}

/// A file's chunks: its lines for JSON lines, else the whole document.
fn file_chunks(path: &Path) -> Vec<Chunk> {
    let mut bytes = std::fs::read(path).unwrap();
    let mut name = path.file_name().unwrap().to_string_lossy().to_string();
    if let Some(stem) = name.strip_suffix(".gz") {
        let mut plain = Vec::new();
        // A truncated fixture keeps what it can.
        let _ = flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut plain);
        bytes = plain;
        name = stem.to_string();
    }
    if name.ends_with(".jsonl") {
        bytes
            .split(|byte| *byte == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.is_empty())
            .map(|(index, line)| chunk(line, index as u64 + 1))
            .collect()
    } else {
        vec![chunk(&bytes, 1)]
    }
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path.extension().is_some_and(|ext| ext != "md") {
            out.push(path);
        }
    }
}

#[test]
fn fixtures_published_samples_and_examples_read_the_same_by_both_paths() {
    let mut files = Vec::new();
    for dir in [common::RECORDS, "tests/fixtures/published", "examples"] {
        files_under(Path::new(dir), &mut files);
    }
    files.sort();
    let mut events = 0;
    for path in &files {
        events += compare(&file_chunks(path), &path.display().to_string());
    }
    assert!(events > 2_000, "{events} events compared");
}

#[test]
fn the_panther_corpus_reads_the_same_by_both_paths() {
    let path = common::shared_dataset("cloudtrail-panther-tests.jsonl");
    let events = compare(&file_chunks(Path::new(&path)), "panther");
    assert_eq!(events, 461);
}

#[test]
fn a_generated_corpus_of_three_clouds_reads_the_same_by_both_paths() {
    let options = SynthOptions {
        events: 3_000,
        attack_every: 20,
        ..SynthOptions::default()
    };
    let chunks: Vec<Chunk> = generate(options)
        .enumerate()
        .map(|(index, record)| chunk(record.record.to_string().as_bytes(), index as u64 + 1))
        .collect();
    assert_eq!(compare(&chunks, "generated"), 3_000);
    // Every generated record takes the tape path: its event keeps the text.
    for chunk in &chunks {
        let (events, _) = read(chunk, false);
        assert!(
            events[0].raw.text_len() > 0,
            "{}",
            String::from_utf8_lossy(&chunk.bytes)
        );
    }
}

/// Every way real pipelines alter a record, applied to one record of each cloud.
fn variants(record: &Value) -> Vec<String> {
    let map = record.as_object().unwrap();
    let mut out = vec![
        record.to_string(),
        serde_json::to_string_pretty(record).unwrap(),
        format!("\u{feff}  {record}  \n"),
    ];
    // Every object field as JSON inside a string, and every string field as an object's text.
    for (key, value) in map {
        let mut changed = map.clone();
        match value {
            Value::Object(_) | Value::Array(_) => changed.insert(key.clone(), Value::String(value.to_string())),
            Value::String(text) => changed.insert(key.clone(), json!({ "text": text })),
            other => changed.insert(key.clone(), Value::String(other.to_string())),
        };
        out.push(Value::Object(changed.clone()).to_string());
        // The same key twice: the last one is read.
        let text = Value::Object(changed).to_string();
        out.push(format!("{{\"{key}\": null, {}", &text[1..]));
        // Without the field.
        let mut removed = map.clone();
        removed.remove(key);
        out.push(Value::Object(removed).to_string());
    }
    // Lower-cased keys, escaped strings, a string that is JSON but not an object.
    let lowered: serde_json::Map<String, Value> = map
        .iter()
        .map(|(key, value)| (key.to_lowercase(), value.clone()))
        .collect();
    out.push(Value::Object(lowered).to_string());
    out.push(record.to_string().replace("a", "\\u0061"));
    let mut numbers = map.clone();
    for key in ["requestParameters", "request", "resources"] {
        numbers.insert(key.to_string(), Value::String("[1, 2.50, \"x\"]".to_string()));
    }
    out.push(Value::Object(numbers).to_string());
    // Broken: truncated, trailing garbage, two values.
    let text = record.to_string();
    out.push(text[..text.len() / 2].to_string());
    out.push(format!("{text} x"));
    out.push(format!("{text}{text}"));
    out
}

#[test]
fn altered_records_read_the_same_by_both_paths() {
    let mut seen = std::collections::HashSet::new();
    let mut chunks = Vec::new();
    for record in generate(SynthOptions {
        events: 400,
        attack_every: 10,
        ..SynthOptions::default()
    }) {
        // One of each shape: cloud and field set.
        let keys: Vec<String> = record.record.as_object().unwrap().keys().cloned().collect();
        if !seen.insert((record.provider, keys)) {
            continue;
        }
        for variant in variants(&record.record) {
            chunks.push(chunk(variant.as_bytes(), 1));
        }
    }
    // Tencent's session context as a string inside an identity that is a string.
    chunks.push(chunk(
        json!({
            "eventName": "RunInstances", "eventSource": "cvm.tencentcloudapi.com", "eventID": "e1",
            "eventTime": "2026-03-02 10:00:00",
            "userIdentity": json!({"secretId": "AKID1", "sessionContext": json!({"userIp": "1.2.3.4", "mfa": "true"}).to_string()}).to_string()
        })
        .to_string()
        .as_bytes(),
        1,
    ));
    assert!(chunks.len() > 300, "{}", chunks.len());
    compare(&chunks, "altered");
}

/// The matches of a replay of `examples/` (JSON lines, in order).
fn replay_examples(normalizers: &str) -> String {
    let output = common::Trailwarden::new()
        .env("TRAILWARDEN__PIPELINE__NORMALIZERS", normalizers)
        .ok(&["replay", "--format", "jsonl", "examples"]);
    String::from_utf8(output.stdout).unwrap()
}

/// Detection is unchanged by the tape path and by parallel normalizers: a
/// replay of the examples gives, match for match and in the same order, what
/// the binary before them gave (`examples_replay.jsonl` was written by commit
/// 7f458e8, the last one reading every record into a tree with one normalizer),
/// for the rules the pack had then, naming the catalog operations it knew then.
#[test]
fn a_replay_of_the_examples_matches_what_the_tree_path_found() {
    let golden_text = std::fs::read_to_string(format!("{}/examples_replay.jsonl", common::GOLDEN)).unwrap();
    let golden: Vec<serde_json::Value> = golden_text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(golden.len() > 200);
    // Rules and catalog operations added since then are left out: what is
    // compared is that the rules it had still match exactly as they did.
    let known_rules: std::collections::BTreeSet<String> = golden
        .iter()
        .filter_map(|found| found["rule"].as_str().map(str::to_string))
        .collect();
    let known_operations: std::collections::BTreeSet<String> = golden
        .iter()
        .flat_map(|found| found["operations"].as_array().cloned().unwrap_or_default())
        .filter_map(|operation| operation.as_str().map(str::to_string))
        .collect();
    for normalizers in ["1", "2", "3"] {
        let actual: Vec<serde_json::Value> = replay_examples(normalizers)
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|found| found["rule"].as_str().is_some_and(|rule| known_rules.contains(rule)))
            .map(|mut found| {
                if let Some(operations) = found["operations"].as_array_mut() {
                    operations.retain(|operation| operation.as_str().is_some_and(|id| known_operations.contains(id)));
                }
                found
            })
            .collect();
        let difference = golden.iter().zip(&actual).position(|(a, b)| a != b);
        assert!(
            difference.is_none() && golden.len() == actual.len(),
            "normalizers = {normalizers}: first difference at match {difference:?} ({} golden, {} now)",
            golden.len(),
            actual.len()
        );
    }
}
