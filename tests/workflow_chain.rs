//! The triage workflow and tamper evidence, through the binary:
//! status changes with actor, time and reason kept as history; what new
//! matches do to processed and ignored alarms; the list filters; and the
//! hash chain — editing, deleting or inserting any alarm or transition row
//! with the sqlite3 shell makes `store verify` fail and name it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::kafka::alarm_fingerprint;
use common::*;
use serde_json::Value;

const CORPUS: &str = "tests/fixtures/records/tencent_cos_delivery.json.gz";

/// A store (`alarms.db`) and a configuration reading nothing, in a test's directory.
struct Env {
    sandbox: Sandbox,
    root: PathBuf,
    config: PathBuf,
}

impl Env {
    fn new(extra: &str) -> Env {
        let sandbox = Sandbox::named("alarms.db", "config.toml").with_bin(Trailwarden::api_on_any_port);
        sandbox.write_config(&Config::standard(&sandbox.store).files(&[]).append(extra));
        Env {
            root: sandbox.dir().to_path_buf(),
            config: sandbox.config.clone(),
            sandbox,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.sandbox.run(args)
    }

    /// Run; it must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        self.sandbox.stdout(args)
    }

    fn replay(&self) {
        self.ok(&["replay", "--format", "jsonl", "--db", self.sandbox.store_arg(), CORPUS]);
    }

    fn alarms(&self, filters: &[&str]) -> Vec<Value> {
        let mut args = vec!["alarms", "list", "--format", "json"];
        args.extend_from_slice(filters);
        serde_json::from_str(&self.ok(&args)).expect("alarms as JSON")
    }

    fn alarm(&self, id: i64) -> Value {
        serde_json::from_str(&self.ok(&["alarms", "show", &id.to_string(), "--format", "json"])).expect("alarm JSON")
    }
}

fn sqlite(db: &Path, sql: &str) {
    let output = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 shell (scripts/test installs it)");
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn id_of(alarm: &Value) -> i64 {
    alarm["id"].as_i64().unwrap()
}

#[test]
fn status_changes_are_recorded_and_decide_what_new_matches_do() {
    let env = Env::new("");
    env.replay();
    let alarms = env.alarms(&[]);
    assert!(alarms.len() >= 3, "{alarms:?}");
    let (processed, ignored) = (&alarms[0], &alarms[1]);
    let (processed_id, ignored_id) = (id_of(processed), id_of(ignored));
    let ignored_count = ignored["count"].as_i64().unwrap();

    let said = env.ok(&[
        "alarms",
        "set-status",
        &processed_id.to_string(),
        "processed",
        "--actor",
        "alice",
        "--reason",
        "key rotated",
    ]);
    assert!(said.contains("unprocessed → processed by alice"), "{said}");
    env.ok(&[
        "alarms",
        "set-status",
        &ignored_id.to_string(),
        "ignored",
        "--actor",
        "bob",
        "--reason",
        "known scanner",
    ]);

    // The history is kept, with actor, time and reason.
    let detail = env.alarm(processed_id);
    assert_eq!(detail["status"], "processed");
    let history = detail["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["actor"], "alice");
    assert_eq!(history[0]["reason"], "key rotated");
    assert_eq!(history[0]["from_status"], "unprocessed");
    assert!(history[0]["at"].as_str().unwrap().ends_with('Z'));

    // Refused changes say why and change nothing.
    let processed_text = processed_id.to_string();
    for (args, expected) in [
        (
            vec!["processed", "--actor", "alice", "--reason", "again"],
            "already processed",
        ),
        (
            vec!["unknown", "--actor", "alice", "--reason", "x"],
            "unprocessed, processed or ignored",
        ),
        (vec!["ignored", "--actor", "alice", "--reason", " "], "reason"),
    ] {
        let mut full = vec!["alarms", "set-status", processed_text.as_str()];
        full.extend(args);
        let output = env.run(&full);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{full:?}: {stderr}");
    }
    let output = env.run(&[
        "alarms",
        "set-status",
        "999999",
        "processed",
        "--actor",
        "a",
        "--reason",
        "b",
    ]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("999999"));

    // The same matches again: the processed alarm stays closed and a new one
    // opens; the ignored alarm counts them without a new alarm.
    env.replay();
    let detail = env.alarm(processed_id);
    assert_eq!(
        detail["count"], processed["count"],
        "a processed alarm takes no new matches"
    );
    let reopened: Vec<Value> = env
        .alarms(&["--rule", processed["rule"].as_str().unwrap()])
        .into_iter()
        .filter(|alarm| alarm["group_key"] == processed["group_key"] && id_of(alarm) != processed_id)
        .collect();
    assert_eq!(reopened.len(), 1, "a new alarm opened for the processed one");
    assert_eq!(reopened[0]["status"], "unprocessed");
    let detail = env.alarm(ignored_id);
    assert_eq!(
        detail["count"].as_i64().unwrap(),
        ignored_count * 2,
        "counted on the ignored alarm"
    );
    let same_key: Vec<Value> = env
        .alarms(&["--rule", ignored["rule"].as_str().unwrap()])
        .into_iter()
        .filter(|alarm| alarm["group_key"] == ignored["group_key"])
        .collect();
    assert_eq!(same_key.len(), 1, "no new alarm for an ignored one");

    // Reopening the processed alarm while its successor is open is refused.
    let output = env.run(&[
        "alarms",
        "set-status",
        &processed_id.to_string(),
        "unprocessed",
        "--actor",
        "alice",
        "--reason",
        "again",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("already open") && stderr.contains(&id_of(&reopened[0]).to_string()),
        "{stderr}"
    );
    // Back to unprocessed is allowed for the ignored one.
    env.ok(&[
        "alarms",
        "set-status",
        &ignored_id.to_string(),
        "unprocessed",
        "--actor",
        "bob",
        "--reason",
        "not a scanner",
    ]);
    assert_eq!(env.alarm(ignored_id)["history"].as_array().unwrap().len(), 2);
}

#[test]
fn counting_on_ignored_alarms_can_be_switched_off() {
    let env = Env::new("\n[alarms]\ncount_on_ignored = false\n");
    env.replay();
    let alarm = env.alarms(&[]).remove(0);
    let id = id_of(&alarm);
    env.ok(&[
        "alarms",
        "set-status",
        &id.to_string(),
        "ignored",
        "--actor",
        "bob",
        "--reason",
        "noise",
    ]);
    env.replay();
    assert_eq!(env.alarm(id)["count"], alarm["count"]);
    let same_key = || {
        env.alarms(&["--rule", alarm["rule"].as_str().unwrap()])
            .into_iter()
            .filter(|other| other["group_key"] == alarm["group_key"])
            .collect::<Vec<Value>>()
    };
    assert_eq!(same_key().len(), 2, "a new alarm opened beside the ignored one");

    // Both ignored, and counting on ignored alarms switched back on: the
    // newest of the two takes the matches, the older keeps its count.
    let second = same_key()
        .into_iter()
        .find(|other| id_of(other) != id)
        .expect("the second alarm");
    let second_id = id_of(&second);
    assert!(second_id > id);
    env.ok(&[
        "alarms",
        "set-status",
        &second_id.to_string(),
        "ignored",
        "--actor",
        "bob",
        "--reason",
        "noise again",
    ]);
    env.sandbox.write_config(
        &Config::standard(&env.sandbox.store)
            .files(&[])
            .append("\n[alarms]\ncount_on_ignored = true\n"),
    );
    env.replay();
    assert_eq!(
        env.alarm(id)["count"],
        alarm["count"],
        "the older ignored alarm is left alone"
    );
    assert_eq!(
        env.alarm(second_id)["count"].as_i64().unwrap(),
        second["count"].as_i64().unwrap() * 2,
        "the newest ignored alarm counts the matches"
    );
    assert_eq!(same_key().len(), 2, "no third alarm");
}

#[test]
fn the_list_filters_and_sorts() {
    let env = Env::new("");
    env.replay();
    let all = env.alarms(&[]);
    let first = &all[0];
    let id = id_of(first);
    env.ok(&[
        "alarms",
        "set-status",
        &id.to_string(),
        "processed",
        "--actor",
        "a",
        "--reason",
        "done",
    ]);
    let processed = env.alarms(&["--status", "processed"]);
    assert_eq!(processed.iter().map(id_of).collect::<Vec<_>>(), vec![id]);
    assert_eq!(env.alarms(&["--status", "unprocessed"]).len(), all.len() - 1);
    let rule = first["rule"].as_str().unwrap();
    assert!(env.alarms(&["--rule", rule]).iter().all(|alarm| alarm["rule"] == rule));
    let account = first["account_id"].as_str().unwrap();
    let by_account = env.alarms(&["--account", account]);
    assert!(!by_account.is_empty() && by_account.iter().all(|alarm| alarm["account_id"] == account));
    assert!(env.alarms(&["--account", "no-such-account"]).is_empty());
    if let Some(key) = all.iter().find_map(|alarm| alarm["access_key_id"].as_str()) {
        let by_key = env.alarms(&["--key", key]);
        assert!(!by_key.is_empty() && by_key.iter().all(|alarm| alarm["access_key_id"] == key));
    }
    // Time range: the fixture's events are all in the past.
    assert!(env.alarms(&["--since", "1h"]).is_empty());
    assert_eq!(env.alarms(&["--since", "2000-01-01T00:00:00Z"]).len(), all.len());
    assert!(env.alarms(&["--until", "2000-01-01T00:00:00Z"]).is_empty());
    let output = env.run(&["alarms", "list", "--since", "yesterday-ish"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("--since"));
    // By level: highest first.
    let rank = |alarm: &Value| match alarm["level"].as_str().unwrap() {
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    };
    let by_level: Vec<i32> = env.alarms(&["--sort", "level"]).iter().map(rank).collect();
    let mut sorted = by_level.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(by_level, sorted);
}

#[test]
fn any_edit_delete_or_insert_behind_the_stores_back_fails_verification_and_is_named() {
    let env = Env::new("");
    env.replay();
    let alarms = env.alarms(&[]);
    let (a, b) = (id_of(&alarms[0]), id_of(&alarms[1]));
    env.ok(&[
        "alarms",
        "set-status",
        &a.to_string(),
        "processed",
        "--actor",
        "alice",
        "--reason",
        "ok",
    ]);
    env.ok(&[
        "alarms",
        "set-status",
        &b.to_string(),
        "ignored",
        "--actor",
        "bob",
        "--reason",
        "noise",
    ]);
    env.replay();
    // What an operator maintains is sealed too: a policy, a removed policy,
    // a remark and an asset, each with its change-log entry.
    env.ok(&[
        "allowlist",
        "add",
        "--api",
        "cam.List*",
        "--actor",
        "carol",
        "--reason",
        "inventory job",
    ]);
    env.ok(&[
        "allowlist",
        "add",
        "--api",
        "cvm.Describe*",
        "--actor",
        "carol",
        "--reason",
        "monitoring",
    ]);
    env.ok(&["allowlist", "remove", "2", "--actor", "dave"]);
    env.ok(&["remark", "set", "ip", "203.0.113.9", "vpn exit", "--actor", "erin"]);
    env.ok(&["assets", "add", "198.51.100.0/24", "office", "--actor", "erin"]);
    let said = env.ok(&["store", "verify"]);
    assert!(said.starts_with("chain ok"), "{said}");
    for sealed in [
        "call records",
        "samples",
        "1 allowlist policies",
        "1 remarks",
        "1 assets",
        "5 change-log entries",
    ] {
        assert!(said.contains(sealed), "{sealed:?} in {said}");
    }
    let head = env.ok(&["store", "head"]).trim().to_string();
    assert!(env.ok(&["store", "verify", "--head", &head]).starts_with("chain ok"));

    let transition: i64 = 1;
    let cases: Vec<(&str, String, String)> = vec![
        (
            "edited alarm",
            format!("UPDATE alarms SET count = count + 1 WHERE id = {a}"),
            format!("alarm {a} was changed"),
        ),
        (
            "edited status",
            format!("UPDATE alarms SET status = 'unprocessed' WHERE id = {b}"),
            format!("alarm {b} was changed"),
        ),
        (
            "deleted alarm",
            format!("DELETE FROM alarms WHERE id = {a}"),
            format!("alarm {a} was deleted"),
        ),
        (
            "inserted alarm",
            format!(
                "INSERT INTO alarms (rule_id, rule_hash, level, title, status, group_key, provider, account_identity, \
                 principal_kind, first_seen, last_seen, count, last_output, created_at, updated_at) SELECT rule_id, \
                 rule_hash, level, title, 'processed', group_key || 'x', provider, account_identity, principal_kind, \
                 first_seen, last_seen, count, last_output, created_at, updated_at FROM alarms WHERE id = {a}"
            ),
            "is not in the chain".to_string(),
        ),
        (
            "edited transition",
            format!("UPDATE alarm_transitions SET actor = 'mallory' WHERE id = {transition}"),
            format!("transition {transition} was changed"),
        ),
        (
            "deleted transition",
            format!("DELETE FROM alarm_transitions WHERE id = {transition}"),
            format!("transition {transition} was deleted"),
        ),
        (
            "inserted transition",
            format!(
                "INSERT INTO alarm_transitions (alarm_id, from_status, to_status, actor, reason, at) \
                 VALUES ({a}, 'processed', 'unprocessed', 'mallory', 'x', '2026-01-01T00:00:00.000Z')"
            ),
            "is not in the chain".to_string(),
        ),
        (
            "deleted call record",
            format!("DELETE FROM alarm_calls WHERE id = (SELECT MIN(id) FROM alarm_calls WHERE alarm_id = {a})"),
            "call record".to_string(),
        ),
        (
            "edited call record",
            "UPDATE alarm_calls SET failure_count = failure_count + 1 WHERE id = 1".to_string(),
            "call record 1 was changed".to_string(),
        ),
        (
            "deleted sample",
            "DELETE FROM alarm_samples WHERE id = 1".to_string(),
            "sample event 1 was deleted".to_string(),
        ),
        (
            "edited sample",
            "UPDATE alarm_samples SET event = event || ' ' WHERE id = 1".to_string(),
            "sample event 1 was changed".to_string(),
        ),
        (
            "edited policy",
            "UPDATE allowlist SET api = '*' WHERE id = 1".to_string(),
            "allowlist policy 1 was changed".to_string(),
        ),
        (
            "deleted policy",
            "DELETE FROM allowlist WHERE id = 1".to_string(),
            "allowlist policy 1 was deleted".to_string(),
        ),
        (
            "inserted policy",
            "INSERT INTO allowlist (id, api, created_by, reason, created_at) VALUES (2, '*', 'x', 'y', 'z')"
                .to_string(),
            "allowlist policy 2 was removed through trailwarden at this link and is back".to_string(),
        ),
        (
            "edited remark",
            "UPDATE remarks SET remark = 'our office' WHERE id = 1".to_string(),
            "remark 1 was changed".to_string(),
        ),
        (
            "edited asset",
            "UPDATE assets SET cidr = '0.0.0.0/0' WHERE id = 1".to_string(),
            "asset 1 was changed".to_string(),
        ),
        (
            "edited change log",
            "UPDATE changes SET actor = 'someone else' WHERE id = 1".to_string(),
            "change-log entry 1 was changed".to_string(),
        ),
        (
            "deleted change log",
            "DELETE FROM changes WHERE id = 3".to_string(),
            "change-log entry 3 was deleted".to_string(),
        ),
        (
            "edited link",
            "UPDATE chain SET ref_id = ref_id + 1000 WHERE seq = 2".to_string(),
            "link 2: the chain is broken".to_string(),
        ),
    ];
    for (name, sql, expected) in cases {
        let copy = env.root.join(format!("{}.db", name.replace(' ', "-")));
        env.ok(&["store", "backup", copy.to_str().unwrap()]);
        let output = env.run(&["store", "verify", "--db", copy.to_str().unwrap()]);
        assert!(output.status.success(), "{name}: the backup verifies before tampering");
        sqlite(&copy, &sql);
        let output = env.run(&["store", "verify", "--db", copy.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{name}: {stdout}");
        assert!(
            stdout.contains("first bad link") && stdout.contains(&expected),
            "{name}: expected {expected:?} in\n{stdout}"
        );
    }

    // A whole rewritten chain still fails against an anchored head.
    let copy = env.root.join("rewritten.db");
    env.ok(&["store", "backup", copy.to_str().unwrap()]);
    sqlite(&copy, "DELETE FROM chain WHERE seq = (SELECT MAX(seq) FROM chain)");
    let output = env.run(&["store", "verify", "--db", copy.to_str().unwrap(), "--head", &head]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("anchored head"));
    // The untouched store still verifies; a backup never overwrites.
    assert!(env.ok(&["store", "verify"]).starts_with("chain ok"));
    let output = env.run(&["store", "backup", copy.to_str().unwrap()]);
    assert!(!output.status.success());
}

#[test]
fn the_daemon_backs_up_on_schedule_keeps_the_newest_and_logs_the_chain_head() {
    let sandbox = Sandbox::named("daemon.db", "daemon.toml").with_bin(Trailwarden::api_on_any_port);
    let backups = sandbox.path("backups");
    sandbox.write_config(
        &Config::standard(&sandbox.store)
            .files(&[&repo().join(CORPUS)])
            .set("source.files", "watch", true)
            .set("source.files", "poll_interval", "200ms")
            .set("source.files", "settle", "0s")
            .set("store", "chain_log_interval", "1s")
            .set("store.backup", "dir", &backups)
            .set("store.backup", "interval", "700ms")
            .set("store.backup", "keep", 2)
            .set("log", "level", "info"),
    );
    // Read the log as it comes, and stop the daemon once it has made three
    // backups (so pruning to the newest two has happened), however slowly a
    // loaded machine starts it.
    let mut child = sandbox.start(&["run"], Log::Collect);
    let start = std::time::Instant::now();
    while child.stderr().matches("store backed up").count() < 3 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "no three backups: {}",
            child.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(child.terminate());
    assert!(child.wait().success());
    let log = child.stderr();
    assert!(log.contains("alarm chain head"), "{log}");
    let kept: Vec<PathBuf> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 2, "the newest two are kept: {kept:?}");
    for backup in kept {
        let output = sandbox
            .command(&["store", "verify", "--db"])
            .arg(&backup)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && stdout.starts_with("chain ok"), "{stdout}");
    }
}

#[test]
fn a_listing_piped_into_a_reader_that_stops_early_ends_quietly() {
    let env = Env::new("");
    env.replay();
    let output = Command::new("sh")
        .current_dir(repo())
        .arg("-c")
        // `true` exits without reading: every write meets a closed pipe.
        .arg(format!(
            "for i in 1 2 3; do {BIN} --config {} alarms list --format jsonl | true; done",
            env.config.display()
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
}

/// The rule set the daemon runs is in the change log, sealed by the chain:
/// the first start records it, a start with an override that disables a rule
/// records what changed, an unchanged start records nothing, and `store
/// verify` holds over it.
#[test]
fn rule_set_changes_are_recorded_and_sealed() {
    let env = Env::new("");
    let recorded = |env: &Env| -> Vec<Value> {
        serde_json::from_str::<Value>(&env.ok(&["changes", "--subject", "rules", "--format", "json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    env.ok(&["run", "--once"]);
    let first = recorded(&env);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["action"], "loaded");
    assert_eq!(first[0]["actor"], "daemon start");
    assert!(first[0]["detail"]["count"].as_u64().unwrap() > 40);
    // An unchanged start records nothing.
    env.ok(&["run", "--once"]);
    assert_eq!(recorded(&env).len(), 1);
    // An override disabling a rule is a recorded change.
    let overrides = env.root.join("overrides.yaml");
    std::fs::write(&overrides, "rules:\n  - rule: denied-call\n    enabled: false\n").unwrap();
    env.sandbox
        .write_config(&Config::standard(&env.sandbox.store).files(&[]).set(
            "rules",
            "overrides",
            &[overrides.as_path()][..],
        ));
    env.ok(&["run", "--once"]);
    let changes = recorded(&env);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0]["action"], "changed");
    assert_eq!(changes[0]["detail"]["changed"], serde_json::json!(["denied-call"]));
    let verify = env.run(&["store", "verify"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
}

/// Rows of the activity rollups, and the span of their hours.
fn rollup_hours(db: &Path) -> (i64, i64, i64) {
    let connection = rusqlite::Connection::open(db).unwrap();
    connection
        .query_row(
            "SELECT count(*), coalesce(min(key >> 32), 0), coalesce(max(key >> 32), 0) FROM activity_hourly",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap()
}

const OLD_DEAD_LETTER: &str = "INSERT INTO dead_letters (received_at, source, origin, reason, excerpt) \
     VALUES ('2020-01-01T00:00:00.000Z', 'old.json', 'old.json:1', 'not JSON', 'x')";

#[test]
fn store_prune_removes_what_retention_no_longer_keeps_and_the_chain_stays_valid() {
    let env = Env::new("[retention]\ndead_letters = \"1h\"\nrollups = \"1h\"\n");
    let examples = examples_dir();
    env.ok(&[
        "replay",
        "--format",
        "jsonl",
        "--db",
        env.sandbox.store_arg(),
        examples.to_str().unwrap(),
    ]);
    sqlite(&env.sandbox.store, OLD_DEAD_LETTER);
    let (rows, first, last) = rollup_hours(&env.sandbox.store);
    assert!(rows > 0 && last - first >= 2, "the corpus spans hours: {first}..{last}");
    let report: Value = serde_json::from_str(&env.ok(&["store", "prune", "--format", "json"])).unwrap();
    assert_eq!(report["dead_letters"], 1, "{report}");
    assert!(report["rollup_rows"].as_u64().unwrap() > 0, "{report}");
    let (_, first_kept, last_kept) = rollup_hours(&env.sandbox.store);
    assert_eq!(
        (last_kept, first_kept),
        (last, last - 1),
        "the newest hour and the one before stay"
    );
    assert!(env.ok(&["store", "verify"]).starts_with("chain ok"));
    // A second run finds nothing.
    let again: Value = serde_json::from_str(&env.ok(&["store", "prune", "--format", "json"])).unwrap();
    assert_eq!(again["transactions"], 0, "{again}");
    let stats: Value = serde_json::from_str(&env.ok(&["store", "stats", "--format", "json"])).unwrap();
    let table = |name: &str| {
        stats["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|table| table["table"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {stats}"))
    };
    assert_eq!(table("dead_letters")["rows"], 0);
    assert!(table("alarms")["rows"].as_u64().unwrap() > 0);
    assert!(table("alarm_samples")["bytes"].as_u64().unwrap() > 0);
    assert!(stats["file_bytes"].as_u64().unwrap() > 0);
    let text = env.ok(&["store", "stats"]);
    assert!(text.contains("TABLE") && text.contains("alarm_samples"), "{text}");
}

#[test]
fn the_daemon_prunes_at_start_and_on_schedule() {
    let sandbox = Sandbox::named("daemon.db", "daemon.toml").with_bin(Trailwarden::api_on_any_port);
    sandbox.write_config(
        &Config::standard(&sandbox.store)
            .files(&[&examples_dir()])
            .set("log", "level", "info")
            .append("[retention]\ninterval = \"1s\"\ndead_letters = \"1h\"\nrollups = \"1h\"\n"),
    );
    let examples = examples_dir();
    let replay = sandbox.run(&[
        "replay",
        "--format",
        "jsonl",
        "--db",
        sandbox.store_arg(),
        examples.to_str().unwrap(),
    ]);
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    sqlite(&sandbox.store, OLD_DEAD_LETTER);
    let mut child = sandbox.start(&["run"], Log::Collect);
    let start = std::time::Instant::now();
    while !child.stderr().contains("retention: store pruned") {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "no retention run: {}",
            child.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A dead letter written while it runs goes at the next run, a second later.
    sqlite(&sandbox.store, OLD_DEAD_LETTER);
    while child.stderr().matches("retention: store pruned").count() < 2 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "no second retention run: {}",
            child.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(child.terminate());
    assert!(child.wait().success());
    let connection = rusqlite::Connection::open(&sandbox.store).unwrap();
    let old: i64 = connection
        .query_row(
            "SELECT count(*) FROM dead_letters WHERE received_at < '2021'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(old, 0);
    let (_, first, last) = rollup_hours(&sandbox.store);
    assert!(
        last - first <= 1,
        "rollups within an hour of the newest: {first}..{last}"
    );
    let verify = sandbox.run(&["store", "verify"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

fn restore(sandbox: &Sandbox, backup: &Path) -> Output {
    sandbox
        .command(&["store", "restore", "--db", sandbox.store_arg()])
        .arg(backup)
        .output()
        .unwrap()
}

#[test]
fn a_backup_taken_mid_ingest_restores_verified_and_the_daemon_resumes_to_the_same_alarms() {
    let sandbox = Sandbox::named("daemon.db", "daemon.toml").with_bin(Trailwarden::api_on_any_port);
    let corpus = sandbox.path("corpus.jsonl");
    sandbox.write_config(
        &Config::standard(&sandbox.store)
            .files(&[&corpus])
            .set("pipeline", "batch_events", 50)
            .set("store", "synchronous", "full"),
    );
    sandbox.stdout(&[
        "generate",
        "--events",
        "40000",
        "--days",
        "2",
        "--out",
        corpus.to_str().unwrap(),
    ]);
    let mut daemon = sandbox.start(&["run"], Log::Collect);
    // Once the first transactions are in, back up while it goes on.
    let total = std::fs::metadata(&corpus).unwrap().len() as i64;
    let progress = || -> i64 {
        rusqlite::Connection::open(&sandbox.store)
            .and_then(|db| {
                db.query_row("SELECT coalesce(max(\"offset\"), 0) FROM source_files", [], |row| {
                    row.get(0)
                })
            })
            .unwrap_or(0)
    };
    wait_until("the first commits", std::time::Duration::from_secs(120), || {
        progress() > 0
    });
    let backup = sandbox.path("mid-ingest.db");
    let made = sandbox.run(&["store", "backup", backup.to_str().unwrap()]);
    assert!(made.status.success(), "{}", stderr(&made));
    let backed_up: i64 = rusqlite::Connection::open(&backup)
        .unwrap()
        .query_row("SELECT coalesce(max(\"offset\"), 0) FROM source_files", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert!(
        backed_up > 0 && backed_up < total,
        "taken mid-ingest: {backed_up} of {total} bytes"
    );
    wait_until("the whole corpus", std::time::Duration::from_secs(300), || {
        progress() >= total
    });
    // While the daemon runs, the store is in use: refused.
    let refused = restore(&sandbox, &backup);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("in use"), "{}", stderr(&refused));
    assert!(daemon.terminate());
    assert!(daemon.wait().success());
    let straight = alarm_fingerprint(&sandbox.store);
    assert!(!straight.is_empty());
    // Restored: verified, the old store kept; then the daemon picks up from
    // the backup's checkpoints and ends where the straight run ended.
    let restored = restore(&sandbox, &backup);
    assert!(restored.status.success(), "{}", stderr(&restored));
    let said = stdout(&restored);
    assert!(
        said.contains("backup verified: chain ok") && said.contains("kept at"),
        "{said}"
    );
    assert_eq!(progress(), backed_up);
    let resumed = sandbox.run(&["run", "--once"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(alarm_fingerprint(&sandbox.store), straight);
    let verify = sandbox.run(&["store", "verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[test]
fn restore_refuses_a_backup_that_fails_verification_and_leaves_the_store_alone() {
    let env = Env::new("");
    env.replay();
    let backup = env.root.join("copy.db");
    env.ok(&["store", "backup", backup.to_str().unwrap()]);
    let before = env.ok(&["store", "head"]);
    sqlite(&backup, "UPDATE alarms SET count = count + 1 WHERE id = 1");
    let refused = restore(&env.sandbox, &backup);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("fails verification") && message.contains("alarm 1"),
        "{message}"
    );
    assert_eq!(env.ok(&["store", "head"]), before, "the store is untouched");
    let not_a_store = env.root.join("config.toml");
    let refused = restore(&env.sandbox, &not_a_store);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not a trailwarden store"),
        "{}",
        stderr(&refused)
    );
    let leftovers: Vec<String> = std::fs::read_dir(&env.root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("restoring") || name.contains("before-restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
