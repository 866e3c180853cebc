//! End-to-end tests of the `trailwarden` binary: replay, normalize, alarms,
//! dead letters and the daemon, as an operator would run them.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Longest wait for the daemon to do something.
const PATIENCE: Duration = Duration::from_secs(20);

/// The binary, its API on a free port whatever a configuration says.
fn cli() -> Trailwarden {
    Trailwarden::new().api_on_any_port()
}

/// A config file in `dir` using the repository's rules (times in
/// Asia/Shanghai, `rules.watch` left to its default) and a store in `dir`,
/// reading `watch_paths`.
fn config(dir: &Path, watch_paths: &[&Path], extra: &str) -> PathBuf {
    let path = dir.join("config.toml");
    Config::standard(&dir.join("store.db"))
        .files(watch_paths)
        .set("source.files", "poll_interval", "200ms")
        .set("source.files", "settle", "0s")
        .unset("rules", "watch")
        .set("rules", "timezone", "Asia/Shanghai")
        .append(extra)
        .write(&path);
    path
}

fn rules_of(matches: &[Value]) -> BTreeSet<String> {
    matches
        .iter()
        .map(|line| line["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn replay_jsonl_raises_the_expected_rules_per_cloud() {
    // Documented sample records (see tests/fixtures/records/MANIFEST.md) and what they must raise.
    let expectations: &[(&str, &[&str])] = &[
        (
            "tencent_lookup_events_response.json",
            &["root-key-high-risk-api", "remote-command-execution"],
        ),
        (
            "tencent_console_root.json",
            &["admin-policy-attached", "privilege-escalation"],
        ),
        (
            "tencent_api_add_user.json",
            &["non-console-high-risk-api", "sec09-high-risk-operation"],
        ),
        (
            "tencent_cos_delivery.json.gz",
            &[
                "access-key-created",
                "off-hours-sensitive-operation",
                "resource-created-via-api",
            ],
        ),
        (
            "tencent_variants.jsonl",
            &["github-webhook-egress-call", "cos-browser-api-call"],
        ),
        (
            "cts_obs_delivery.json.gz",
            &["access-key-created", "sec09-high-risk-operation"],
        ),
        ("cts_console_delete_user.json", &["sec09-high-risk-operation"]),
        (
            "aws_records_file.json.gz",
            &["access-key-created", "resource-created-via-api"],
        ),
        ("aws_single_record.json", &["admin-policy-attached"]),
        ("aws_variants.jsonl", &["remote-command-execution"]),
    ];
    for (file, expected) in expectations {
        let path = format!("{RECORDS}/{file}");
        let output = cli().run(&["replay", "--format", "jsonl", &path]);
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let matches = jsonl(&stdout(&output));
        let raised = rules_of(&matches);
        for rule in *expected {
            assert!(raised.contains(*rule), "{file} should raise {rule}; raised {raised:?}");
        }
        for line in &matches {
            for key in [
                "rule",
                "level",
                "event_id",
                "provider",
                "time",
                "account_id",
                "principal",
                "action",
                "source_ip",
            ] {
                assert!(line.get(key).is_some(), "{file}: match lacks `{key}`: {line}");
            }
        }
    }
}

#[test]
fn ordinary_reads_raise_nothing_at_medium_or_above() {
    // Read-only calls by ordinary users in working hours (Asia/Shanghai).
    let output = cli().run(&[
        "replay",
        "--format",
        "jsonl",
        &format!("{RECORDS}/tencent_failed_unauthorized.json"),
    ]);
    assert!(output.status.success());
    let serious: Vec<Value> = jsonl(&stdout(&output))
        .into_iter()
        .filter(|line| matches!(line["level"].as_str(), Some("medium" | "high")))
        .collect();
    assert!(serious.is_empty(), "{serious:?}");
}

#[test]
fn malformed_input_is_kept_in_dead_letters_with_its_line_and_good_records_are_processed() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &[], "");
    let db = dir.path().join("replay.db");
    let output = cli()
        .command(&[
            "--config",
            config.to_str().unwrap(),
            "replay",
            "--format",
            "jsonl",
            "--db",
        ])
        .arg(&db)
        .arg(format!("{RECORDS}/mixed_malformed.jsonl"))
        .output()
        .unwrap();
    assert!(output.status.success(), "malformed records are not a failed run");
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(summary.contains("15 records, 8 events, 7 malformed"), "{summary}");
    let connection = rusqlite::Connection::open(&db).unwrap();
    let mut statement = connection
        .prepare("SELECT line, reason, origin FROM dead_letters ORDER BY line")
        .unwrap();
    let rows: Vec<(i64, String, String)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let lines: Vec<i64> = rows.iter().map(|row| row.0).collect();
    assert_eq!(lines, [3, 5, 8, 9, 11, 14, 15]);
    assert!(rows.iter().all(|row| row.2.contains("mixed_malformed.jsonl:")));
    assert!(rows[0].1.contains("truncated JSON"), "{}", rows[0].1);
    // The good records raised their alarms.
    let alarms: i64 = connection
        .query_row("SELECT COUNT(*) FROM alarms", [], |row| row.get(0))
        .unwrap();
    assert!(alarms > 0);
}

#[test]
fn replay_without_db_leaves_the_configured_store_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &[], "");
    let output = cli()
        .command(&["--config", config.to_str().unwrap(), "replay", RECORDS])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        !dir.path().join("store.db").exists(),
        "replay without --db must not create the configured store"
    );
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.starts_with("TIME"), "table output has a header: {table}");
}

#[test]
fn replay_reads_stdin() {
    let data = std::fs::read(format!("{RECORDS}/aws_single_record.json")).unwrap();
    let mut child = cli()
        .command(&["replay", "--format", "jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let matches = jsonl(&stdout(&output));
    assert!(rules_of(&matches).contains("admin-policy-attached"));
    assert!(matches[0]["origin"].as_str().unwrap().starts_with("stdin:"));
}

#[test]
fn environment_overrides_any_key_and_bad_kafka_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &[], "");
    let run_with = |environment: &[(&str, &str)]| -> Output {
        cli()
            .command(&["--config", config.to_str().unwrap(), "run", "--once"])
            .envs(environment.iter().copied())
            .output()
            .expect("binary runs")
    };
    // TRAILWARDEN__<SECTION>__<KEY> overrides the file: the store goes where the environment says.
    let elsewhere = dir.path().join("from-env.db");
    let output = run_with(&[
        ("TRAILWARDEN__STORE__PATH", elsewhere.to_str().unwrap()),
        ("TRAILWARDEN__SOURCE__FILES__PATHS", RECORDS),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(elsewhere.exists(), "the store path came from the environment");
    assert!(!dir.path().join("store.db").exists());

    // A Kafka source without brokers, an unknown source kind, a librdkafka
    // property librdkafka does not know: each refused at start, named.
    type Environment<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Environment<'_>, &[&str]); 3] = [
        (
            &[
                ("TRAILWARDEN__SOURCE__KIND", "kafka"),
                ("TRAILWARDEN__SOURCE__KAFKA__BROKERS", ""),
            ],
            &["source.kafka.brokers"],
        ),
        (&[("TRAILWARDEN__SOURCE__KIND", "kinesis")], &["source.kind", "kinesis"]),
        (
            &[
                ("TRAILWARDEN__SOURCE__KIND", "kafka"),
                ("TRAILWARDEN__SOURCE__KAFKA__BROKERS", "127.0.0.1:1"),
                ("TRAILWARDEN__SOURCE__KAFKA__TOPICS", "audit"),
                ("TRAILWARDEN__SOURCE__KAFKA__PROPERTIES__NOT_A_PROPERTY", "1"),
            ],
            &["source.kafka", "not.a.property"],
        ),
    ];
    for (environment, expected) in cases {
        let output = run_with(environment);
        assert!(!output.status.success(), "{environment:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        for text in expected {
            assert!(stderr.contains(text), "{environment:?}: {stderr}");
        }
    }
}

#[test]
fn replay_fails_only_when_it_cannot_run() {
    let output = cli().run(&["replay", "does/not/exist.json"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does/not/exist.json"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[store]\npaht = \"x\"\n").unwrap();
    let output = cli().run(&["--config", bad.to_str().unwrap(), "replay", RECORDS]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml") && stderr.contains("paht"), "{stderr}");

    // Rules that do not load: the error names the file, line and column.
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::copy(repo().join("rules/operations.yaml"), rules.join("operations.yaml")).unwrap();
    std::fs::write(
        rules.join("broken.yaml"),
        "rules:\n  - id: x\n    title: X\n    level: severe\n    description: d\n    match: {action: A}\n",
    )
    .unwrap();
    let config = dir.path().join("rules.toml");
    std::fs::write(&config, format!("[rules]\ndir = {:?}\n", rules.display().to_string())).unwrap();
    let output = cli().run(&["--config", config.to_str().unwrap(), "replay", RECORDS]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("broken.yaml:4:12") && stderr.contains("severe"),
        "{stderr}"
    );
}

#[test]
fn alarms_are_aggregated_and_listed_with_call_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &[], "");
    let db = dir.path().join("alarms.db");
    let config_arg = config.to_str().unwrap();
    let db_arg = db.to_str().unwrap();
    // Replaying the same file twice aggregates into the same open alarms.
    for _ in 0..2 {
        let output = cli().run(&[
            "--config",
            config_arg,
            "replay",
            "--db",
            db_arg,
            &format!("{RECORDS}/tencent_cos_delivery.json.gz"),
        ]);
        assert!(output.status.success());
    }
    let output = cli().run(&[
        "--config", config_arg, "alarms", "list", "--db", db_arg, "--format", "json",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let alarms: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(!alarms.is_empty());
    for alarm in &alarms {
        for key in [
            "id",
            "rule",
            "level",
            "status",
            "count",
            "group_key",
            "first_seen",
            "last_seen",
        ] {
            assert!(alarm.get(key).is_some(), "alarm lacks {key}: {alarm}");
        }
        assert_eq!(alarm["status"], "unprocessed");
        assert_eq!(
            alarm["count"].as_u64().unwrap() % 2,
            0,
            "each match counted once per replay: {alarm}"
        );
    }
    let key_alarm = alarms
        .iter()
        .find(|alarm| alarm["rule"] == "access-key-created")
        .unwrap();
    assert_eq!(key_alarm["account_identity"], "sub_account");
    assert!(
        key_alarm["group_key"]
            .as_str()
            .unwrap()
            .starts_with("access_key.id=AKID")
    );
    let id = key_alarm["id"].as_i64().unwrap().to_string();
    let output = cli().run(&[
        "--config", config_arg, "alarms", "show", &id, "--db", db_arg, "--format", "json",
    ]);
    let detail: Value = serde_json::from_slice(&output.stdout).unwrap();
    let calls = detail["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["action"], "CreateAccessKey");
    assert_eq!(calls[0]["success_count"], 2);
    assert_eq!(calls[0]["call_method"], "api");
    assert!(!detail["samples"].as_array().unwrap().is_empty());
    // The table view works too.
    let output = cli().run(&["--config", config_arg, "alarms", "show", &id, "--db", db_arg]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("CreateAccessKey"));
    let output = cli().run(&[
        "--config", config_arg, "alarms", "list", "--db", db_arg, "--level", "high",
    ]);
    assert!(output.status.success());
}

#[test]
fn normalize_prints_events_and_reports_bad_records() {
    let output = cli().run(&["normalize", &format!("{RECORDS}/mixed_malformed.jsonl")]);
    assert!(output.status.success());
    let events = jsonl(&stdout(&output));
    assert_eq!(events.len(), 8);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mixed_malformed.jsonl:5:"), "{stderr}");
    assert!(stderr.contains("8 events, 7 malformed"), "{stderr}");
}

fn alarm_count(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|connection| connection.query_row("SELECT COALESCE(SUM(count), 0) FROM alarms", [], |row| row.get(0)))
        .unwrap_or(0)
}

#[test]
fn the_daemon_resumes_from_checkpoints_and_does_not_double_count() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("incoming");
    std::fs::create_dir(&watched).unwrap();
    std::fs::copy(
        format!("{RECORDS}/tencent_cos_delivery.json.gz"),
        watched.join("a.json.gz"),
    )
    .unwrap();
    let config = config(dir.path(), &[&watched], "");
    let db = dir.path().join("store.db");
    let once = |expect_ok: bool| {
        let output = cli().run(&["--config", config.to_str().unwrap(), "run", "--once"]);
        assert_eq!(
            output.status.success(),
            expect_ok,
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    once(true);
    let first = alarm_count(&db);
    assert!(first > 0);
    once(true);
    assert_eq!(alarm_count(&db), first, "a finished file is not read again");
    // A JSON-lines file that grows: only the new tail is read.
    let lines = std::fs::read_to_string(format!("{RECORDS}/tencent_variants.jsonl")).unwrap();
    let mut parts = lines.lines();
    let head: Vec<&str> = parts.by_ref().take(4).collect();
    std::fs::write(watched.join("b.jsonl"), head.join("\n") + "\n").unwrap();
    once(true);
    let after_head = alarm_count(&db);
    let rest: Vec<&str> = parts.collect();
    let mut grown = head.join("\n") + "\n";
    grown.push_str(&(rest.join("\n") + "\n"));
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(watched.join("b.jsonl"), grown).unwrap();
    once(true);
    let after_tail = alarm_count(&db);
    // Compare with reading the whole grown file in one go.
    let reference = dir.path().join("reference.db");
    let output = cli().run(&[
        "--config",
        config.to_str().unwrap(),
        "replay",
        "--db",
        reference.to_str().unwrap(),
        watched.join("a.json.gz").to_str().unwrap(),
        watched.join("b.jsonl").to_str().unwrap(),
    ]);
    assert!(output.status.success());
    assert!(after_tail > after_head);
    assert_eq!(
        after_tail,
        alarm_count(&reference),
        "incremental reads equal one full read"
    );
}

#[cfg(unix)]
#[test]
fn the_daemon_watches_for_new_files_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("incoming");
    std::fs::create_dir(&watched).unwrap();
    let config = config(dir.path(), &[&watched], "");
    let db = dir.path().join("store.db");
    let mut child = cli().config(&config).start(&["run"], Log::Collect);
    std::thread::sleep(Duration::from_millis(500));
    std::fs::copy(
        format!("{RECORDS}/aws_records_file.json.gz"),
        watched.join("new.json.gz"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while alarm_count(&db) == 0 {
        assert!(Instant::now() < deadline, "the new file was not processed");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(child.terminate());
    let status = child
        .wait_timeout(Duration::from_secs(20))
        .expect("daemon did not stop on SIGTERM");
    assert!(status.success(), "clean exit on SIGTERM");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn alarms_of(db: &Path, rule: &str) -> Vec<(i64, String)> {
    let Ok(connection) = rusqlite::Connection::open(db) else {
        return Vec::new();
    };
    let Ok(mut statement) = connection.prepare("SELECT count, rule_hash FROM alarms WHERE rule_id = ?1") else {
        return Vec::new();
    };
    statement
        .query_map([rule], |row| Ok((row.get(0)?, row.get(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

#[cfg(unix)]
#[test]
fn rules_reload_on_sighup_and_a_broken_set_never_replaces_the_running_one() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    copy_dir(&rules_dir(), &rules);
    let watched = dir.path().join("incoming");
    std::fs::create_dir(&watched).unwrap();
    let db = dir.path().join("store.db");
    let config = dir.path().join("config.toml");
    // The copied rules, logging at info; the API where the environment says.
    Config::standard(&db)
        .files(&[&watched])
        .set("source.files", "poll_interval", "200ms")
        .set("source.files", "settle", "0s")
        .set("rules", "dir", &rules)
        .set("pipeline", "max_hold", "100ms")
        .set("log", "level", "info")
        .unset("api", "bind")
        .write(&config);
    let log = dir.path().join("daemon.log");
    let mut child = cli().config(&config).start(&["run"], Log::File(log.clone()));
    let hup = |child: &Daemon| {
        assert!(child.hangup());
    };
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("daemon start", PATIENCE, || log_text().contains("rules loaded"));

    // 1. A broken rule file: the reload fails with a located error, the running set stays.
    std::fs::write(
        rules.join("custom.yaml"),
        "rules:\n  - id: custom-describe\n    title: Describe\n    level: hihg\n    description: d\n    match: {action: DescribeInstances}\n",
    )
    .unwrap();
    hup(&child);
    wait_until("the failed reload is logged", PATIENCE, || {
        log_text().contains("rule reload failed")
    });
    assert!(log_text().contains("custom.yaml:4:12"), "{}", log_text());
    std::fs::copy(
        format!("{RECORDS}/aws_records_file.json.gz"),
        watched.join("one.json.gz"),
    )
    .unwrap();
    wait_until("alarms from the running rules", PATIENCE, || {
        !alarms_of(&db, "access-key-created").is_empty()
    });
    assert!(alarms_of(&db, "custom-describe").is_empty());

    // 2. Fixed: the new rule is compiled, tested and swapped in.
    std::fs::write(
        rules.join("custom.yaml"),
        "rules:\n  - id: custom-describe\n    title: Describe\n    level: low\n    description: d\n    match: {action: DescribeInstances}\n",
    )
    .unwrap();
    hup(&child);
    wait_until("the reload succeeds", PATIENCE, || {
        log_text().contains("rules reloaded")
    });
    std::fs::copy(format!("{RECORDS}/truncated.json.gz"), watched.join("two.json.gz")).unwrap();
    wait_until("an alarm of the new rule", PATIENCE, || {
        !alarms_of(&db, "custom-describe").is_empty()
    });
    let (count, hash) = alarms_of(&db, "custom-describe").remove(0);
    assert_eq!(
        count, 1,
        "DescribeInstances of the second file only: the first file is not evaluated again"
    );
    assert_eq!(hash.len(), 16, "alarms record the rule version");
    assert!(child.terminate());
    let status = child.wait();
    assert!(status.success());
}

#[test]
fn run_once_waits_for_a_file_still_being_written_instead_of_skipping_it() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("incoming");
    std::fs::create_dir(&watched).unwrap();
    let config = dir.path().join("config.toml");
    Config::standard(&dir.path().join("store.db"))
        .files(&[&watched])
        .set("source.files", "settle", "3s")
        .unset("rules", "watch")
        .write(&config);
    // Written just now: it changed within `settle` when the run starts.
    std::fs::copy(
        format!("{RECORDS}/tencent_cos_delivery.json.gz"),
        watched.join("a.json.gz"),
    )
    .unwrap();
    let output = cli().run(&["--config", config.to_str().unwrap(), "run", "--once"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        alarm_count(&dir.path().join("store.db")) > 0,
        "the settling file was read"
    );
}
