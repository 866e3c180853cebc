//! End-to-end tests of allowlist policies, remarks, assets, IP types and
//! access-key masking, through the `trailwarden` binary as an operator runs it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// 2026-03-02T02:00:00Z: 10:00 in Shanghai, a Monday (no off-hours alarms).
const START: i64 = 1_772_416_800;
/// Two Tencent keys (36 characters, like real `AKID…` keys).
const KEY_A: &str = "AKIDa1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6";
const KEY_B: &str = "AKIDzyxwvutsrqponmlkjihgfedcba987654";
const RULE: &str = "access-key-created";

/// A test directory with a config (the repository's rules) and the corpus.
struct Fixture {
    sandbox: Sandbox,
    corpus: PathBuf,
    db: PathBuf,
}

impl Fixture {
    /// Key A creates keys three times from one public IP; key B twice, from a
    /// LAN address and from an address of the organisation.
    fn new() -> Fixture {
        Fixture::with_config("")
    }

    /// `extra` is appended to the config (TOML).
    fn with_config(extra: &str) -> Fixture {
        let sandbox = Sandbox::with_config(|sandbox| Config::standard(&sandbox.store).append(extra));
        let records = [
            tencent_create_key("a1", START, KEY_A, "45.76.218.92"),
            tencent_create_key("a2", START + 60, KEY_A, "45.76.218.92"),
            tencent_create_key("a3", START + 120, KEY_A, "45.76.218.92"),
            tencent_create_key("b1", START + 180, KEY_B, "10.1.2.3"),
            tencent_create_key("b2", START + 240, KEY_B, "203.0.113.7"),
        ];
        let corpus = sandbox.path("corpus.jsonl");
        write_jsonl(&corpus, &records);
        let db = sandbox.store.clone();
        Fixture { sandbox, corpus, db }
    }

    /// `args`, with `--db` the store for the commands that take it.
    fn with_db<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut args = args.to_vec();
        if args
            .first()
            .is_some_and(|first| ["allowlist", "alarms", "remark", "assets"].contains(first))
        {
            args.extend(["--db", self.sandbox.store_arg()]);
        }
        args
    }

    fn run(&self, args: &[&str]) -> Output {
        self.sandbox.run(&self.with_db(args))
    }

    fn ok(&self, args: &[&str]) -> Output {
        self.sandbox.ok(&self.with_db(args))
    }

    /// Replay the corpus into the store; returns the match lines and stderr.
    fn replay(&self) -> (Vec<Value>, String) {
        let output = self.ok(&[
            "replay",
            "--format",
            "jsonl",
            "--db",
            self.db.to_str().unwrap(),
            self.corpus.to_str().unwrap(),
        ]);
        let matches = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        (matches, String::from_utf8_lossy(&output.stderr).into_owned())
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        self.sandbox.json(&self.with_db(&args))
    }

    fn alarms(&self) -> Vec<Value> {
        self.json(&["alarms", "list"]).as_array().unwrap().clone()
    }

    /// The open alarm of `rule` for `key`, found by its masked key.
    fn alarm(&self, rule: &str, key: &str) -> Option<Value> {
        let masked = trailwarden::mask::mask_access_key(key);
        self.alarms()
            .into_iter()
            .find(|alarm| alarm["rule"] == rule && alarm["access_key_id"] == masked.as_str())
    }

    fn policies(&self) -> Vec<Value> {
        self.json(&["allowlist", "list"]).as_array().unwrap().clone()
    }

    fn policy(&self, id: i64) -> Value {
        self.policies()
            .into_iter()
            .find(|policy| policy["id"] == id)
            .unwrap_or_else(|| panic!("policy {id} not listed"))
    }

    /// `allowlist add … --format json`; returns the policy.
    fn add_policy(&self, fields: &[&str]) -> Value {
        let mut args = vec!["allowlist", "add", "--actor", "secops", "--reason", "known automation"];
        args.extend(fields);
        self.json(&args)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.sandbox.path(name)
    }
}

/// Matches of the allowlisted pattern (rule RULE, key A) in replay output.
fn pattern_matches(matches: &[Value]) -> usize {
    let masked = trailwarden::mask::mask_access_key(KEY_A);
    matches
        .iter()
        .filter(|line| line["rule"] == RULE && line["access_key_id"] == masked.as_str())
        .count()
}

#[test]
fn an_allowlisted_pattern_stops_alarms_and_counts_its_hits() {
    // Control: without a policy the pattern raises an alarm of 3 matches.
    let control = Fixture::new();
    let (matches, _) = control.replay();
    let suppressible = pattern_matches(&matches);
    assert_eq!(suppressible, 3);
    assert_eq!(control.alarm(RULE, KEY_A).unwrap()["count"], 3);

    let fixture = Fixture::new();
    let policy = fixture.add_policy(&["--key", KEY_A, "--rule", RULE]);
    let id = policy["id"].as_i64().unwrap();
    assert_eq!(policy["hit_count"], 0);
    let (matches, summary) = fixture.replay();
    assert_eq!(pattern_matches(&matches), 0, "suppressed matches are not printed");
    assert!(summary.contains(" 3 allowlisted"), "{summary}");
    assert!(fixture.alarm(RULE, KEY_A).is_none(), "{:#?}", fixture.alarms());
    // Other rules on the same key, and the same rule on another key, still alarm.
    assert!(fixture.alarm(RULE, KEY_B).is_some());
    assert!(
        fixture.alarms().iter().any(|alarm| alarm["rule"] != RULE
            && alarm["access_key_id"] == trailwarden::mask::mask_access_key(KEY_A).as_str())
    );
    let policy = fixture.policy(id);
    assert_eq!(policy["hit_count"], suppressible as u64);
    assert_eq!(policy["last_hit"], "2026-03-02T02:02:00.000Z");
    assert_eq!(policy["state"], "active");
    // A second replay counts again, still without an alarm.
    fixture.replay();
    assert_eq!(fixture.policy(id)["hit_count"], 2 * suppressible as u64);
    assert!(fixture.alarm(RULE, KEY_A).is_none());
    // Removed: the pattern alarms again.
    fixture.ok(&["allowlist", "remove", &id.to_string()]);
    assert!(fixture.policies().is_empty());
    fixture.replay();
    assert_eq!(fixture.alarm(RULE, KEY_A).unwrap()["count"], 3);
    let output = fixture.run(&["allowlist", "remove", &id.to_string()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains(&format!("allowlist policy {id} not found")));
}

#[test]
fn broad_policies_need_an_override_and_a_policy_changed_behind_the_stores_back_is_not_applied() {
    let fixture = Fixture::new();
    for (flags, why) in [
        (&["--api", "*"][..], "--api \"*\" matches every name"),
        (
            &["--operation", "*.*", "--rule", RULE][..],
            "--operation \"*.*\" matches every name",
        ),
        (&["--ip", "0.0.0.0/0"][..], "whole address space"),
        (&["--ip", "::/0", "--rule", RULE][..], "whole address space"),
        (
            &["--rule", RULE][..],
            "it allows every match of rule access-key-created",
        ),
    ] {
        let mut args = vec!["allowlist", "add", "--reason", "r"];
        args.extend(flags);
        let output = fixture.run(&args);
        assert!(!output.status.success(), "{flags:?} was accepted");
        assert!(
            stderr(&output).contains("refused: it is broad") && stderr(&output).contains(why),
            "{flags:?}: {}",
            stderr(&output)
        );
    }
    assert!(fixture.policies().is_empty(), "nothing refused was stored");
    // The override is explicit and recorded: who allowed it, and why it is broad.
    let broad = fixture.add_policy(&["--rule", RULE, "--allow-broad"]);
    assert_eq!(broad["approved_by"], "secops");
    assert!(
        broad["broad"].as_str().unwrap().contains("every match of rule"),
        "{broad}"
    );
    let (_, summary) = fixture.replay();
    assert!(summary.contains(" allowlisted (0 high)"), "{summary}");
    fixture.ok(&["allowlist", "remove", &broad["id"].to_string()]);
    // A narrow policy edited in the store behind trailwarden's back stops applying.
    let narrow = fixture.add_policy(&["--key", KEY_A, "--rule", RULE]);
    let id = narrow["id"].as_i64().unwrap();
    let status = Command::new("sqlite3")
        .arg(&fixture.db)
        .arg(format!("UPDATE allowlist SET access_key = NULL WHERE id = {id}"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fixture.policy(id)["state"], "unsealed");
    fixture.replay();
    assert_eq!(
        fixture.policy(id)["hit_count"],
        0,
        "an unsealed policy suppresses nothing"
    );
    assert_eq!(fixture.alarm(RULE, KEY_A).unwrap()["count"], 3);
    assert_eq!(fixture.alarm(RULE, KEY_B).unwrap()["count"], 2);
    let verify = fixture.run(&["store", "verify"]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verify.stdout).contains(&format!("allowlist policy {id} was changed")));
}

#[test]
fn policies_by_ip_api_and_method_combine() {
    let fixture = Fixture::new();
    // Key B's calls from its LAN address only, by API glob and call method.
    let lan = fixture.add_policy(&["--ip", "10.0.0.0/8", "--api", "cam.create*", "--method", "api"]);
    // Does not match: wrong call method.
    let console = fixture.add_policy(&["--ip", "45.76.218.0/24", "--method", "console"]);
    fixture.replay();
    assert_eq!(lan["source_ip"], "10.0.0.0/8");
    let lan_hits = fixture.policy(lan["id"].as_i64().unwrap())["hit_count"]
        .as_u64()
        .unwrap();
    assert!(lan_hits >= 1, "every rule matching b1 counts: {lan_hits}");
    assert_eq!(fixture.policy(console["id"].as_i64().unwrap())["hit_count"], 0);
    let alarm = fixture.alarm(RULE, KEY_B).unwrap();
    assert_eq!(alarm["count"], 1, "b1 (from the LAN) is allowed, b2 is not");
}

#[test]
fn a_policy_stops_matching_after_its_expiry() {
    let fixture = Fixture::new();
    let policy = fixture.add_policy(&["--key", KEY_A, "--rule", RULE, "--expires", "3s"]);
    let id = policy["id"].as_i64().unwrap();
    let added = std::time::Instant::now();
    fixture.replay();
    assert!(fixture.alarm(RULE, KEY_A).is_none());
    assert_eq!(fixture.policy(id)["hit_count"], 3);
    // Expiry is by the wall clock: once it has passed, the same events alarm again.
    std::thread::sleep(std::time::Duration::from_secs(4).saturating_sub(added.elapsed()));
    assert_eq!(fixture.policy(id)["state"], "expired");
    let (matches, _) = fixture.replay();
    assert_eq!(pattern_matches(&matches), 3);
    assert_eq!(fixture.alarm(RULE, KEY_A).unwrap()["count"], 3);
    assert_eq!(fixture.policy(id)["hit_count"], 3, "an expired policy counts nothing");

    // A policy added with an expiry in the past is accepted with a warning and never matches.
    let output = fixture.run(&[
        "allowlist",
        "add",
        "--key",
        KEY_B,
        "--actor",
        "secops",
        "--reason",
        "old exception",
        "--expires",
        "2020-01-01T00:00:00Z",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("expired already"), "{}", stderr(&output));
    let before = fixture.alarm(RULE, KEY_B).unwrap()["count"].as_u64().unwrap();
    fixture.replay();
    assert_eq!(
        fixture.alarm(RULE, KEY_B).unwrap()["count"].as_u64().unwrap(),
        before + 2
    );
    let past = fixture
        .policies()
        .into_iter()
        .find(|policy| policy["id"] != id)
        .unwrap();
    assert_eq!(past["hit_count"], 0);
    assert_eq!(past["state"], "expired");
}

#[test]
fn from_alarm_prefills_rule_key_and_the_single_ip() {
    let fixture = Fixture::new();
    fixture.replay();
    let alarm_a = fixture.alarm(RULE, KEY_A).unwrap();
    let id_a = alarm_a["id"].as_i64().unwrap().to_string();
    let policy = fixture.add_policy(&["--from-alarm", &id_a]);
    assert_eq!(policy["rule_id"], RULE);
    assert_eq!(policy["access_key"], trailwarden::mask::mask_access_key(KEY_A));
    assert_eq!(policy["source_ip"], "45.76.218.92/32");
    assert_eq!(policy["api"], Value::Null);
    // Key B's calls came from two IPs: no IP is prefilled; an explicit flag overrides.
    let alarm_b = fixture.alarm(RULE, KEY_B).unwrap();
    let id_b = alarm_b["id"].as_i64().unwrap().to_string();
    let policy_b = fixture.add_policy(&["--from-alarm", &id_b, "--rule", "some-other-rule"]);
    assert_eq!(policy_b["source_ip"], Value::Null);
    assert_eq!(policy_b["rule_id"], "some-other-rule");
    assert_eq!(policy_b["access_key"], trailwarden::mask::mask_access_key(KEY_B));
    // The prefilled policy holds the full key: the pattern stops alarming.
    fixture.replay();
    assert_eq!(fixture.alarm(RULE, KEY_A).unwrap()["count"], 3, "unchanged");
    assert_eq!(fixture.policy(policy["id"].as_i64().unwrap())["hit_count"], 3);
    let output = fixture.run(&[
        "allowlist",
        "add",
        "--from-alarm",
        "999",
        "--actor",
        "a",
        "--reason",
        "b",
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("alarm 999 not found"), "{}", stderr(&output));
}

#[test]
fn the_report_lists_never_hit_and_expired_policies() {
    let fixture = Fixture::new();
    let hit = fixture.add_policy(&["--key", KEY_A])["id"].as_i64().unwrap();
    let never = fixture.add_policy(&["--key", "AKIDnever0000000000000000000000000000"])["id"]
        .as_i64()
        .unwrap();
    let expired = fixture.add_policy(&["--api", "cvm.*", "--expires", "2021-06-01"])["id"]
        .as_i64()
        .unwrap();
    fixture.replay();
    let report = fixture.json(&["allowlist", "report"]);
    let ids = |list: &str| -> Vec<i64> {
        report[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|policy| policy["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids("never_hit"), vec![never, expired]);
    assert_eq!(ids("expired"), vec![expired]);
    assert!(!ids("never_hit").contains(&hit));
    let table = String::from_utf8_lossy(&fixture.ok(&["allowlist", "report"]).stdout).into_owned();
    assert!(
        table.contains("never hit (2):") && table.contains("expired (1):"),
        "{table}"
    );
}

#[test]
fn a_policy_must_match_something() {
    let fixture = Fixture::new();
    let output = fixture.run(&["allowlist", "add", "--actor", "a", "--reason", "b"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("at least one of --key"), "{}", stderr(&output));
    let output = fixture.run(&["allowlist", "add", "--ip", "10.0.0", "--actor", "a", "--reason", "b"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--ip \"10.0.0\""), "{}", stderr(&output));
    let output = fixture.run(&["allowlist", "add", "--method", "phone", "--actor", "a", "--reason", "b"]);
    assert!(
        stderr(&output).contains("use console, api, system or other"),
        "{}",
        stderr(&output)
    );
    assert!(fixture.policies().is_empty());
}

#[test]
fn remarks_are_at_most_20_characters_and_list_masked_keys() {
    let fixture = Fixture::new();
    let output = fixture.run(&["remark", "set", "key", KEY_A, "123456789012345678901"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("21 characters long; at most 20"),
        "{}",
        stderr(&output)
    );
    fixture.ok(&["remark", "set", "key", KEY_A, "财务部门的自动化同步密钥一号"]);
    fixture.ok(&["remark", "set", "ip", "45.76.218.92", "vendor scanner"]);
    let output = fixture.run(&["remark", "set", "ip", "not-an-ip", "x"]);
    assert!(stderr(&output).contains("not an IP address"), "{}", stderr(&output));
    let remarks = fixture.json(&["remark", "list"]);
    let text = remarks.to_string();
    assert!(!text.contains(KEY_A), "{text}");
    assert!(text.contains(&trailwarden::mask::mask_access_key(KEY_A)), "{text}");
    assert_eq!(remarks.as_array().unwrap().len(), 2);
    fixture.ok(&["remark", "remove", "ip", "45.76.218.92"]);
    assert!(
        !fixture
            .run(&["remark", "remove", "ip", "45.76.218.92"])
            .status
            .success()
    );
    assert_eq!(fixture.json(&["remark", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn assets_import_reports_bad_lines_with_their_numbers() {
    let fixture = Fixture::new();
    let file = fixture.path("assets.csv");
    std::fs::write(
        &file,
        "# the organisation's egress ranges\n203.0.113.0/24,office egress\n300.1.1.0/24,typo\n\n198.51.100.7,build server\nno comma\n",
    )
    .unwrap();
    let output = fixture.run(&["assets", "import", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "bad lines make the exit non-zero");
    let errors = stderr(&output);
    assert!(errors.contains("assets.csv:3: asset \"300.1.1.0/24\""), "{errors}");
    assert!(errors.contains("assets.csv:6: expected `cidr,name`"), "{errors}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("2 imported, 2 bad lines"));
    let assets = fixture.json(&["assets", "list"]);
    let cidrs: Vec<&str> = assets
        .as_array()
        .unwrap()
        .iter()
        .map(|asset| asset["cidr"].as_str().unwrap())
        .collect();
    assert_eq!(cidrs, vec!["198.51.100.7/32", "203.0.113.0/24"]);
    fixture.ok(&["assets", "add", "192.0.2.0/24", "lab"]);
    assert!(!fixture.run(&["assets", "add", "192.0.2.0/33", "lab"]).status.success());
    assert_eq!(fixture.json(&["assets", "list"]).as_array().unwrap().len(), 3);
}

#[test]
fn alarm_calls_carry_their_ip_types() {
    let fixture = Fixture::new();
    fixture.ok(&["assets", "add", "203.0.113.0/24", "office egress"]);
    fixture.ok(&["remark", "set", "ip", "10.1.2.3", "jump host"]);
    fixture.replay();
    let show = |key: &str| {
        let id = fixture.alarm(RULE, key).unwrap()["id"].as_i64().unwrap().to_string();
        fixture.json(&["alarms", "show", &id])
    };
    let detail = show(KEY_B);
    let calls = detail["calls"].as_array().unwrap();
    let call = |ip: &str| calls.iter().find(|call| call["source_ip"] == ip).unwrap().clone();
    let office = call("203.0.113.7");
    assert_eq!(office["ip_type"], "within_account");
    assert_eq!(office["asset"], "office egress");
    assert_eq!(office["ip_remark"], Value::Null);
    assert_eq!(office["ip_type_label"], "within the account (no remark)");
    let lan = call("10.1.2.3");
    assert_eq!(lan["ip_type"], "lan");
    assert_eq!(lan["ip_remark"], "jump host");
    assert_eq!(lan["ip_type_label"], "LAN (with remark)");
    let outside = show(KEY_A)["calls"][0].clone();
    assert_eq!(outside["ip_type"], "outside");
    assert_eq!(outside["ip_type_label"], "outside the account (no remark)");
    // Computed when reading: a remark and an asset added later show at once.
    fixture.ok(&["remark", "set", "ip", "45.76.218.92", "pentest vendor"]);
    fixture.ok(&["remark", "set", "key", KEY_A, "Department 1 AK"]);
    let detail = show(KEY_A);
    assert_eq!(detail["calls"][0]["ip_type_label"], "outside the account (with remark)");
    assert_eq!(detail["calls"][0]["ip_remark"], "pentest vendor");
    assert_eq!(detail["access_key_remark"], "Department 1 AK");
    fixture.ok(&["assets", "add", "45.76.218.0/24", "cloud nat"]);
    assert_eq!(show(KEY_A)["calls"][0]["ip_type"], "within_account");
    // The table shows the seed's wording.
    let id = fixture.alarm(RULE, KEY_B).unwrap()["id"].as_i64().unwrap().to_string();
    let table = String::from_utf8_lossy(&fixture.ok(&["alarms", "show", &id]).stdout).into_owned();
    assert!(
        table.contains("LAN (with remark)") && table.contains("jump host"),
        "{table}"
    );
    assert!(table.contains("203.0.113.7 (office egress)"), "{table}");
}

#[test]
fn access_keys_are_masked_wherever_they_leave_the_store() {
    let fixture = Fixture::new();
    let (matches, _) = fixture.replay();
    let masked_a = "AKIDa1****1l2m3n4o5p6";
    assert_eq!(trailwarden::mask::mask_access_key(KEY_A), masked_a);
    // replay --format jsonl
    let text = serde_json::to_string(&matches).unwrap();
    assert!(!text.contains(KEY_A) && !text.contains(KEY_B), "{text}");
    assert!(matches.iter().any(|line| line["access_key_id"] == masked_a));
    // alarms list, table and JSON
    let table = String::from_utf8_lossy(&fixture.ok(&["alarms", "list"]).stdout).into_owned();
    assert!(!table.contains(KEY_A) && !table.contains(KEY_B), "{table}");
    assert!(table.contains(&format!("access_key.id={masked_a}")), "{table}");
    let json = fixture.ok(&["alarms", "list", "--format", "json"]);
    let json_text = String::from_utf8_lossy(&json.stdout).into_owned();
    assert!(!json_text.contains(KEY_A) && !json_text.contains(KEY_B), "{json_text}");
    let alarm = fixture.alarm(RULE, KEY_A).unwrap();
    assert_eq!(alarm["access_key_id"], masked_a);
    assert_eq!(alarm["group_key"], format!("access_key.id={masked_a}"));
    // alarms show: identity, output and the sample events (normalized and raw)
    let id = alarm["id"].as_i64().unwrap().to_string();
    for format in ["json", "table"] {
        let output = fixture.ok(&["alarms", "show", &id, "--format", format]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(!text.contains(KEY_A), "{format}: {text}");
        assert!(text.contains(masked_a), "{format}: {text}");
    }
    // allowlist list shows the policy's key masked; the store keeps it whole.
    fixture.add_policy(&["--key", KEY_A]);
    let listing = String::from_utf8_lossy(&fixture.ok(&["allowlist", "list"]).stdout).into_owned();
    assert!(!listing.contains(KEY_A) && listing.contains(masked_a), "{listing}");
    let stored: String = rusqlite::Connection::open(&fixture.db)
        .unwrap()
        .query_row("SELECT access_key FROM allowlist", [], |row| row.get(0))
        .unwrap();
    assert_eq!(stored, KEY_A);
    assert!(!Path::new(&fixture.corpus).as_os_str().is_empty());
}

/// The daemon picks up a policy added while it runs, at its next batch.
#[cfg(unix)]
#[test]
fn the_running_daemon_picks_up_a_new_policy() {
    let watch_dir = tempfile::tempdir().unwrap();
    let fixture = Fixture::with_config(&format!(
        "\n[source.files]\npaths = [{:?}]\npoll_interval = \"200ms\"\nsettle = \"0s\"\n\n[pipeline]\nmax_hold = \"100ms\"\n",
        watch_dir.path().display().to_string()
    ));
    let query = |sql: &str| -> i64 {
        rusqlite::Connection::open(&fixture.db)
            .and_then(|connection| connection.query_row(sql, [], |row| row.get(0)))
            .unwrap_or(-1)
    };
    let alarm_count =
        format!("SELECT COALESCE(SUM(count), 0) FROM alarms WHERE rule_id = '{RULE}' AND access_key_id = '{KEY_A}'");
    let wait_for = |what: &str, sql: &str, expected: i64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while query(sql) != expected {
            assert!(
                Instant::now() < deadline,
                "{what}: {} instead of {expected}",
                query(sql)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut child = fixture
        .sandbox
        .bin
        .clone()
        .api_on_any_port()
        .start(&["run"], Log::Discard);
    let write = |name: &str, records: &[Value]| {
        let temporary = fixture.path(name);
        write_jsonl(&temporary, records);
        std::fs::rename(&temporary, watch_dir.path().join(name)).unwrap();
    };
    write(
        "first.jsonl",
        &[
            tencent_create_key("d1", START, KEY_A, "45.76.218.92"),
            tencent_create_key("d2", START + 60, KEY_A, "45.76.218.92"),
        ],
    );
    wait_for("alarm before the policy", &alarm_count, 2);
    let policy = fixture.add_policy(&["--key", KEY_A, "--rule", RULE]);
    let hits = format!("SELECT hit_count FROM allowlist WHERE id = {}", policy["id"]);
    write(
        "second.jsonl",
        &[
            tencent_create_key("d3", START + 120, KEY_A, "45.76.218.92"),
            tencent_create_key("d4", START + 180, KEY_A, "45.76.218.92"),
            tencent_create_key("d5", START + 240, KEY_A, "45.76.218.92"),
        ],
    );
    wait_for("hits of the policy added while the daemon runs", &hits, 3);
    assert_eq!(query(&alarm_count), 2, "matches after the policy are not alarmed");
    assert!(child.terminate());
    assert!(
        child.wait_timeout(Duration::from_secs(20)).is_some(),
        "daemon did not stop on SIGTERM"
    );
}

/// The engine marks calls from the organisation's assets (`source_ip.asset`,
/// from the store's asset list): a key known for ten days that creates keys
/// from an asset it never used is not "a new address", from elsewhere it is.
#[test]
fn a_call_from_an_asset_is_not_a_new_address() {
    let fixture = Fixture::new();
    let ten_days = 10 * 86_400;
    let records = [
        tencent_create_key("n1", START, KEY_A, "198.51.100.7"),
        tencent_create_key("n2", START + ten_days, KEY_A, "203.0.113.7"),
        tencent_create_key("n3", START + ten_days + 60, KEY_A, "45.76.218.92"),
    ];
    write_jsonl(&fixture.corpus, &records);
    let new_addresses = |matches: &[Value]| -> Vec<String> {
        matches
            .iter()
            .filter(|found| found["rule"] == "sensitive-api-from-new-address")
            .map(|found| found["source_ip"].as_str().unwrap().to_string())
            .collect()
    };
    // Without assets both new addresses alarm.
    let (matches, _) = fixture.replay();
    assert_eq!(new_addresses(&matches), ["203.0.113.7", "45.76.218.92"]);
    // With the office as an asset, only the outside one (a fresh store: the
    // engine state of the first replay would know both addresses).
    let fixture = Fixture::new();
    write_jsonl(&fixture.corpus, &records);
    fixture.ok(&["assets", "add", "203.0.113.0/24", "office egress"]);
    let (matches, _) = fixture.replay();
    assert_eq!(new_addresses(&matches), ["45.76.218.92"]);
}

/// With `[geoip]` databases configured, each call record carries its
/// address's region (seeds/003's "China-Beijing") and AS, in the API's and
/// the CLI's alarm detail; an address the databases do not know, or a store
/// read without them, says "region unknown". Rules read `source_ip.country`
/// and `source_ip.asn`.
#[test]
fn call_records_carry_their_region_and_rules_read_the_country() {
    let dir = tempfile::tempdir().unwrap();
    let (city, asn) = write_test_databases(dir.path());
    let overrides = dir.path().join("geo_rules.yaml");
    std::fs::write(
        &overrides,
        "rules:\n  - id: key-created-from-germany\n    title: Key created from Germany\n    level: medium\n    description: d\n    match:\n      all:\n        - action: CreateAccessKey\n        - source_ip.country: DE\n        - source_ip.asn: {gte: 60000}\n",
    )
    .unwrap();
    let extra = format!(
        "\n[geoip]\ncity_db = {:?}\nasn_db = {:?}\n",
        city.to_str().unwrap(),
        asn.to_str().unwrap()
    );
    let fixture = Fixture::with_config(&extra);
    let records = [
        tencent_create_key("g1", START, KEY_A, "123.112.45.201"),
        tencent_create_key("g2", START + 60, KEY_A, "185.220.101.34"),
        tencent_create_key("g3", START + 120, KEY_A, "198.51.100.7"),
    ];
    write_jsonl(&fixture.corpus, &records);
    // The rule file is an override; the config names it.
    let config = std::fs::read_to_string(&fixture.sandbox.config).unwrap();
    let config = config.replacen(
        "[rules]\n",
        &format!("[rules]\noverrides = [{:?}]\n", overrides.to_str().unwrap()),
        1,
    );
    std::fs::write(&fixture.sandbox.config, config).unwrap();
    let (matches, _) = fixture.replay();
    let from_germany: Vec<&str> = matches
        .iter()
        .filter(|found| found["rule"] == "key-created-from-germany")
        .map(|found| found["source_ip"].as_str().unwrap())
        .collect();
    assert_eq!(from_germany, ["185.220.101.34"]);
    let id = fixture.alarm(RULE, KEY_A).unwrap()["id"].as_i64().unwrap().to_string();
    let detail = fixture.json(&["alarms", "show", &id]);
    let region = |ip: &str| {
        detail["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|call| call["source_ip"] == ip)
            .unwrap()["region"]
            .clone()
    };
    assert_eq!(region("123.112.45.201")["label"], "China-Beijing");
    assert_eq!(region("123.112.45.201")["asn"], 4808);
    assert_eq!(region("185.220.101.34")["country_code"], "DE");
    assert_eq!(region("198.51.100.7")["label"], "region unknown");
    let table = String::from_utf8_lossy(&fixture.ok(&["alarms", "show", &id]).stdout).into_owned();
    assert!(table.contains("China-Beijing"), "{table}");
    // The god view's busiest source IPs carry their region too.
    let activity = fixture.json(&[
        "activity",
        "--since",
        "2026-03-01T00:00:00Z",
        "--until",
        "2026-03-03T00:00:00Z",
    ]);
    let beijing = activity["busiest_source_ips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["source_ip"] == "123.112.45.201")
        .unwrap()
        .clone();
    assert_eq!(beijing["region"], "China-Beijing");
    // Names in the configured language.
    let config = std::fs::read_to_string(&fixture.sandbox.config).unwrap();
    std::fs::write(
        &fixture.sandbox.config,
        config.replace("[geoip]\n", "[geoip]\nlanguage = \"zh-CN\"\n"),
    )
    .unwrap();
    let detail = fixture.json(&["alarms", "show", &id]);
    let beijing = detail["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|call| call["source_ip"] == "123.112.45.201")
        .unwrap();
    assert_eq!(beijing["region"]["country"], "中国");
    // A database that cannot be read: a warning, and regions unknown.
    std::fs::write(&city, b"not a database").unwrap();
    let output = fixture.ok(&["alarms", "show", &id, "--format", "json"]);
    let detail: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(detail["calls"][0]["region"]["label"], "region unknown");
    assert!(String::from_utf8_lossy(&output.stderr).contains("GeoIP database not read"));
}

/// An alarm's detail answers the next questions (seeds/003): the key's other
/// alarms and addresses (AK association risk) and what its principal used
/// and was refused, with a least-privilege policy; `alarms list --identity`
/// filters by account identity.
#[test]
fn alarm_detail_shows_key_association_and_permission_convergence() {
    let fixture = Fixture::new();
    let mut records: Vec<Value> = (0..2)
        .map(|index| tencent_create_key(&format!("p{index}"), START + index * 60, KEY_A, "45.76.218.92"))
        .collect();
    let mut denied = tencent_create_key("p9", START + 300, KEY_A, "45.76.218.92");
    denied["eventName"] = json!("RunInstances");
    denied["eventSource"] = json!("cvm.tencentcloudapi.com");
    denied["resourceType"] = json!("cvm");
    denied["errorCode"] = json!("AuthFailure.UnauthorizedOperation");
    denied["errorMessage"] = json!("you are not authorized to perform operation (cvm:RunInstances)");
    records.push(denied);
    write_jsonl(&fixture.corpus, &records);
    fixture.replay();
    let id = fixture.alarm(RULE, KEY_A).unwrap()["id"].as_i64().unwrap().to_string();
    let detail = fixture.json(&["alarms", "show", &id]);
    let association = &detail["key_association"];
    let others: Vec<&str> = association["other_alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alarm| alarm["rule"].as_str().unwrap())
        .collect();
    assert!(others.contains(&"denied-call"), "{others:?}");
    assert_eq!(association["source_ips"][0]["source_ip"], "45.76.218.92");
    assert_eq!(association["accounts"], json!(["100012345678"]));
    let permissions = &detail["permissions"];
    assert_eq!(permissions["used"][0]["action"], "CreateAccessKey");
    assert_eq!(permissions["used"][0]["calls"], 2);
    assert_eq!(permissions["denied"][0]["action"], "RunInstances");
    assert_eq!(
        permissions["least_privilege_policy"]["statement"][0]["action"],
        json!(["cam:CreateAccessKey"])
    );
    let table = String::from_utf8_lossy(&fixture.ok(&["alarms", "show", &id]).stdout).into_owned();
    assert!(
        table.contains("refused cvm.RunInstances (AuthFailure.UnauthorizedOperation) ×1"),
        "{table}"
    );
    assert!(table.contains("least-privilege policy:"), "{table}");
    // Account identity: ops-sync is a sub-account user.
    let subs = fixture.json(&["alarms", "list", "--identity", "sub_account"]);
    assert!(!subs.as_array().unwrap().is_empty());
    let roots = fixture.json(&["alarms", "list", "--identity", "root"]);
    assert!(roots.as_array().unwrap().is_empty(), "{roots}");
}
