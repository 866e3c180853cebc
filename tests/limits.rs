//! What trailwarden refuses or bounds, end to end: impossible event times
//! become dead letters, big containers stream, memory is bounded by bytes,
//! alarm samples are capped.

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

fn dead_letters(db: &Path) -> Vec<(String, String)> {
    let connection = rusqlite::Connection::open(db).unwrap();
    let mut statement = connection
        .prepare("SELECT origin, reason FROM dead_letters ORDER BY id")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
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
    let letters = dead_letters(&db);
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
