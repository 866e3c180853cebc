//! What trailwarden refuses or bounds, end to end: impossible event times
//! become dead letters, big containers stream, memory is bounded by bytes,
//! alarm samples are capped.

mod common;

use common::store_dead_letters;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_trailwarden");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn trailwarden(args: &[&str]) -> Output {
    Command::new(BIN)
        .env("TRAILWARDEN__API__BIND", "127.0.0.1:0")
        .env("TRAILWARDEN__LOG__LEVEL", "error")
        .current_dir(repo())
        .args(args)
        .output()
        .expect("binary runs")
}

/// A CloudTrail record of `key` listing users at `time` (any JSON value).
fn cloudtrail(id: &str, time: Value, key: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "eventID": id,
        "eventTime": time,
        "eventName": "ListUsers",
        "eventSource": "iam.amazonaws.com",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0",
        "recipientAccountId": "111122223333",
        "userIdentity": {
            "type": "IAMUser",
            "accountId": "111122223333",
            "accessKeyId": key,
            "userName": "deploy"
        }
    })
}

fn write_lines(path: &Path, records: &[Value]) {
    let text: String = records.iter().map(|record| record.to_string() + "\n").collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn impossible_event_times_are_dead_letters_naming_the_record_and_fire_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("times.jsonl");
    write_lines(
        &file,
        &[
            cloudtrail("ordinary", json!("2026-03-02T10:00:00Z"), "AKIAIOSFODNN7EXAMPLE"),
            // i64::MAX milliseconds: 2262-04-11, which looked like a key idle for 236 years.
            cloudtrail(
                "year-2262",
                json!(9_223_372_036_854_775_807_i64),
                "AKIAIOSFODNN7EXAMPLE",
            ),
            // 123 seconds after the epoch.
            cloudtrail("year-1970", json!(123), "AKIAIOSFODNN7EXAMPLE"),
        ],
    );
    let db = dir.path().join("store.db");
    let output = trailwarden(&[
        "replay",
        "--format",
        "jsonl",
        "--db",
        db.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains("3 records, 1 events, 2 malformed"), "{summary}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("year-2262"),
        "an impossible time raised an alarm: {stdout}"
    );
    let letters = store_dead_letters(&db);
    assert_eq!(letters.len(), 2, "{letters:?}");
    let origin = file.display().to_string();
    assert_eq!(letters[0].0, format!("{origin}:2"));
    assert!(
        letters[0].1.contains("impossible event time 2262-04-11"),
        "{}",
        letters[0].1
    );
    assert!(letters[0].1.contains("max_future_skew"), "{}", letters[0].1);
    assert_eq!(letters[1].0, format!("{origin}:3"));
    assert!(
        letters[1].1.contains("impossible event time 1970-01-01T00:02:03"),
        "{}",
        letters[1].1
    );
    assert!(letters[1].1.contains("earliest_event_time"), "{}", letters[1].1);

    // `normalize` shows what rules see: the same two records refused, with their origin.
    let output = trailwarden(&["normalize", file.to_str().unwrap()]);
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_id"], "ordinary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{origin}:2: impossible event time")),
        "{stderr}"
    );
}

#[test]
fn the_time_window_is_configurable_and_bad_values_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.jsonl");
    write_lines(
        &file,
        &[cloudtrail("old", json!("2005-06-01T00:00:00Z"), "AKIAIOSFODNN7EXAMPLE")],
    );
    let replay = |environment: &[(&str, &str)]| {
        let mut command = Command::new(BIN);
        command
            .env("TRAILWARDEN__LOG__LEVEL", "error")
            .current_dir(repo())
            .args(["replay", "--format", "jsonl", file.to_str().unwrap()]);
        for (key, value) in environment {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let refused = replay(&[]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("1 records, 0 events, 1 malformed"));
    let accepted = replay(&[("TRAILWARDEN__NORMALIZE__EARLIEST_EVENT_TIME", "2000-01-01")]);
    assert!(
        String::from_utf8_lossy(&accepted.stderr).contains("1 records, 1 events, 0 malformed"),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    for (key, value, named) in [
        (
            "TRAILWARDEN__NORMALIZE__EARLIEST_EVENT_TIME",
            "last tuesday",
            "normalize.earliest_event_time",
        ),
        (
            "TRAILWARDEN__NORMALIZE__EARLIEST_EVENT_TIME",
            "2999-01-01",
            "normalize.earliest_event_time",
        ),
        (
            "TRAILWARDEN__NORMALIZE__MAX_FUTURE_SKEW",
            "soon",
            "normalize.max_future_skew",
        ),
    ] {
        let output = replay(&[(key, value)]);
        assert!(!output.status.success(), "{key}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{key}={value}: {stderr}");
    }
}

/// The fixture that raises `admin-policy-attached`, with `edit` applied.
fn admin_policy_record(edit: impl FnOnce(&mut Value)) -> Value {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/records/aws_single_record.json")).unwrap();
    let mut record: Value = serde_json::from_str(&text).unwrap();
    edit(&mut record);
    record
}

#[test]
fn a_records_document_larger_than_the_document_limit_is_read_record_by_record() {
    let dir = tempfile::tempdir().unwrap();
    // 3 000 records, about 1.3 MB in one `{"Records": [...]}` document, read
    // with a 64 KiB document limit: the document is never held whole, so
    // the limit applies to each record.
    let records: Vec<Value> = (0..3000)
        .map(|n| {
            let mut record = cloudtrail(&format!("r{n}"), json!("2026-03-02T10:00:00Z"), "AKIAIOSFODNN7EXAMPLE");
            record["requestParameters"] = json!({"note": "x".repeat(300)});
            record
        })
        .collect();
    let path = dir
        .path()
        .join("111122223333_CloudTrail_us-east-1_20260302T1005Z_x.json");
    let document = json!({ "Records": records }).to_string();
    assert!(document.len() > 1_000_000);
    std::fs::write(&path, document).unwrap();
    let db = dir.path().join("store.db");
    let output = Command::new(BIN)
        .env("TRAILWARDEN__LOG__LEVEL", "error")
        .env("TRAILWARDEN__SOURCE__FILES__MAX_DOCUMENT_BYTES", "65536")
        .current_dir(repo())
        .args([
            "replay",
            "--format",
            "jsonl",
            "--db",
            db.to_str().unwrap(),
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains("3000 records, 3000 events, 0 malformed"), "{summary}");
    assert!(store_dead_letters(&db).is_empty());
}

#[test]
fn alarm_samples_are_capped_keeping_every_field_and_saying_what_was_cut() {
    let dir = tempfile::tempdir().unwrap();
    // A matching record with a 5 MB field (a policy document, say).
    let record = admin_policy_record(|record| {
        record["requestParameters"]["policyDocument"] = json!("{".repeat(5 << 20));
    });
    let path = dir.path().join("big.json");
    std::fs::write(&path, record.to_string()).unwrap();
    let db = dir.path().join("store.db");
    let output = trailwarden(&[
        "replay",
        "--format",
        "jsonl",
        "--db",
        db.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let connection = rusqlite::Connection::open(&db).unwrap();
    let samples: Vec<String> = connection
        .prepare("SELECT event FROM alarm_samples")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!samples.is_empty(), "the record raised alarms");
    for sample in &samples {
        assert!(sample.len() <= 32 << 10, "a sample of {} bytes", sample.len());
        let sample: Value = serde_json::from_str(sample).unwrap();
        assert_eq!(sample["action"], "AttachUserPolicy");
        assert_eq!(
            sample["raw"]["requestParameters"]["policyArn"],
            "arn:aws:iam::aws:policy/AdministratorAccess"
        );
        let cut = sample["raw"]["requestParameters"]["policyDocument"].as_str().unwrap();
        assert!(
            cut.ends_with("…[truncated: 5242880 bytes in all]"),
            "{}",
            &cut[cut.len() - 60..]
        );
    }
    // What the CLI shows is the capped sample.
    let output = trailwarden(&["alarms", "show", "1", "--db", db.to_str().unwrap(), "--format", "json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.stdout.len() < 256 << 10,
        "alarms show printed {} bytes",
        output.stdout.len()
    );
}

#[test]
fn byte_limits_are_configurable_and_bad_values_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.jsonl");
    write_lines(
        &file,
        &[cloudtrail("one", json!("2026-03-02T10:00:00Z"), "AKIAIOSFODNN7EXAMPLE")],
    );
    for (key, value, accepted) in [
        ("TRAILWARDEN__PIPELINE__BATCH_BYTES", "65536", true),
        ("TRAILWARDEN__PIPELINE__MAX_BUFFERED_BYTES", "16777216", true),
        ("TRAILWARDEN__STORE__MAX_SAMPLE_BYTES", "4096", true),
        ("TRAILWARDEN__SOURCE__FILES__MAX_OPEN_FILES", "4", true),
        ("TRAILWARDEN__PIPELINE__BATCH_BYTES", "0", false),
        ("TRAILWARDEN__PIPELINE__MAX_BUFFERED_BYTES", "1000", false),
        ("TRAILWARDEN__STORE__MAX_SAMPLE_BYTES", "100", false),
        ("TRAILWARDEN__SOURCE__FILES__MAX_OPEN_FILES", "0", false),
    ] {
        let output = Command::new(BIN)
            .env("TRAILWARDEN__LOG__LEVEL", "error")
            .env(key, value)
            .current_dir(repo())
            .args(["replay", "--format", "jsonl", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(output.status.success(), accepted, "{key}={value}");
        if !accepted {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let named = key
                .trim_start_matches("TRAILWARDEN__")
                .to_ascii_lowercase()
                .replace("__", ".");
            assert!(stderr.contains(&format!("`{named}`")), "{key}={value}: {stderr}");
        }
    }
}
