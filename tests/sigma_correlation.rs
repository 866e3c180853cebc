//! Sigma correlation rules (event_count, value_count, temporal,
//! temporal_ordered) on hand-written CloudTrail sequences, replayed through
//! the CLI, including windows split across two runs on the same store (a
//! restart), and `generate` keeping the named rules quiet or not.

mod common;

use std::path::Path;

use common::*;
use serde_json::{Value, json};

const RULES: &str = "title: Console login failed
id: 11111111-0000-0000-0000-000000000001
name: failed_login
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: ConsoleLogin
        responseElements.ConsoleLogin: Failure
    condition: selection
level: low
---
title: User created
id: 11111111-0000-0000-0000-000000000002
name: user_created
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: CreateUser
    condition: selection
level: low
---
title: Policy attached to a user
id: 11111111-0000-0000-0000-000000000003
name: policy_attached
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: AttachUserPolicy
    condition: selection
level: medium
---
title: Any call
id: 11111111-0000-0000-0000-000000000004
name: any_call
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource|endswith: .amazonaws.com
    condition: selection
level: informational
---
title: Brute force on the console
id: 22222222-0000-0000-0000-000000000001
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [userIdentity.userName]
    timespan: 5m
    condition:
        gte: 3
level: high
---
title: One user from many addresses
id: 22222222-0000-0000-0000-000000000002
correlation:
    type: value_count
    rules: [any_call]
    group-by: [userIdentity.userName]
    timespan: 10m
    condition:
        field: sourceIPAddress
        gte: 3
    generate: true
level: medium
---
title: User created and given a policy
id: 22222222-0000-0000-0000-000000000003
correlation:
    type: temporal
    rules: [user_created, policy_attached]
    group-by: [target]
    aliases:
        target:
            user_created: requestParameters.userName
            policy_attached: requestParameters.userName
    timespan: 10m
level: high
---
title: User created, then given a policy
id: 22222222-0000-0000-0000-000000000004
correlation:
    type: temporal_ordered
    rules: [user_created, policy_attached]
    group-by: [userIdentity.userName]
    timespan: 10m
level: high
";

fn record(minute: u32, name: &str, user: &str, ip: &str, extra: Value) -> Value {
    let mut record = json!({
        "eventVersion": "1.08",
        "eventID": format!("{name}-{user}-{minute}-{ip}"),
        "eventTime": format!("2026-03-02T10:{minute:02}:00Z"),
        "eventSource": if name == "ConsoleLogin" { "signin.amazonaws.com" } else { "iam.amazonaws.com" },
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip,
        "userIdentity": {"type": "IAMUser", "userName": user, "arn": format!("arn:aws:iam::123456789012:user/{user}")},
        "recipientAccountId": "123456789012",
    });
    if let (Some(record), Some(extra)) = (record.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            record.insert(key.clone(), value.clone());
        }
    }
    record
}

fn failed_login(minute: u32, user: &str) -> Value {
    record(
        minute,
        "ConsoleLogin",
        user,
        "198.51.100.1",
        json!({"responseElements": {"ConsoleLogin": "Failure"}}),
    )
}

struct Setup {
    dir: tempfile::TempDir,
    cli: Trailwarden,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sigma = dir.path().join("sigma");
    std::fs::create_dir(&sigma).unwrap();
    std::fs::write(sigma.join("correlations.yml"), RULES).unwrap();
    let config = dir.path().join("config.toml");
    Config::standard(&dir.path().join("store.db"))
        .set("rules", "sigma_dirs", &[sigma.as_path()][..])
        .set("pipeline", "allowed_lateness", "0s")
        .write(&config);
    let cli = Trailwarden::new().config(&config);
    Setup { dir, cli }
}

/// Replay `records` into the store `db`; the matches of rule `rule`, by event id.
fn replay(setup: &Setup, db: &Path, records: &[Value], rule: &str) -> Vec<String> {
    let input = setup.dir.path().join("input.jsonl");
    write_jsonl(&input, records);
    let output = setup.cli.ok(&[
        "replay",
        "--format",
        "jsonl",
        "--db",
        db.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|found| found["rule"] == rule)
        .map(|found| found["event_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn event_count_fires_at_the_threshold_per_group_and_the_named_rule_stays_quiet() {
    let setup = setup();
    let db = setup.dir.path().join("a.db");
    let records = [
        failed_login(0, "alice"),
        failed_login(1, "bob"),
        failed_login(2, "alice"),
        failed_login(9, "alice"), // the first one is out of the 5m window by now
        failed_login(10, "alice"),
        failed_login(11, "alice"),
    ];
    let fired = replay(&setup, &db, &records, "22222222-0000-0000-0000-000000000001");
    assert_eq!(fired, ["ConsoleLogin-alice-11-198.51.100.1"]);
    // `generate` is false: the failed-login rule raises nothing of its own.
    assert!(
        replay(
            &setup,
            &setup.dir.path().join("b.db"),
            &records,
            "11111111-0000-0000-0000-000000000001"
        )
        .is_empty()
    );
}

#[test]
fn an_event_count_window_split_across_a_restart_still_fires() {
    let setup = setup();
    let db = setup.dir.path().join("store.db");
    let first = replay(
        &setup,
        &db,
        &[failed_login(0, "carol"), failed_login(1, "carol")],
        "22222222-0000-0000-0000-000000000001",
    );
    assert!(first.is_empty());
    let second = replay(
        &setup,
        &db,
        &[failed_login(2, "carol")],
        "22222222-0000-0000-0000-000000000001",
    );
    assert_eq!(second, ["ConsoleLogin-carol-2-198.51.100.1"]);
}

#[test]
fn value_count_counts_distinct_values_and_generate_keeps_the_named_rule() {
    let setup = setup();
    let db = setup.dir.path().join("store.db");
    let call = |minute, ip: &str| record(minute, "ListUsers", "dave", ip, json!({}));
    let records = [
        call(0, "203.0.113.1"),
        call(1, "203.0.113.1"),
        call(2, "203.0.113.2"),
        call(3, "203.0.113.3"),
    ];
    let fired = replay(&setup, &db, &records, "22222222-0000-0000-0000-000000000002");
    assert_eq!(fired, ["ListUsers-dave-3-203.0.113.3"]);
    let own = replay(
        &setup,
        &setup.dir.path().join("b.db"),
        &records,
        "11111111-0000-0000-0000-000000000004",
    );
    assert_eq!(own.len(), 4, "generate: true keeps the named rule's own matches");
}

#[test]
fn temporal_rules_need_every_rule_and_ordered_ones_their_order() {
    let setup = setup();
    let create = |minute, actor: &str, target: &str| {
        record(
            minute,
            "CreateUser",
            actor,
            "198.51.100.9",
            json!({"requestParameters": {"userName": target}}),
        )
    };
    let attach = |minute, actor: &str, target: &str| {
        record(
            minute,
            "AttachUserPolicy",
            actor,
            "198.51.100.9",
            json!({"requestParameters": {"userName": target}}),
        )
    };
    // Any order, grouped by the alias (the user acted on).
    let any_order = [
        attach(0, "erin", "mallory"),
        create(1, "frank", "mallory"),
        create(2, "erin", "trent"),
    ];
    let fired = replay(
        &setup,
        &setup.dir.path().join("a.db"),
        &any_order,
        "22222222-0000-0000-0000-000000000003",
    );
    assert_eq!(fired, ["CreateUser-frank-1-198.51.100.9"]);
    // Ordered, grouped by the actor: attach before create does not count.
    let fired = replay(
        &setup,
        &setup.dir.path().join("b.db"),
        &any_order,
        "22222222-0000-0000-0000-000000000004",
    );
    assert!(fired.is_empty(), "{fired:?}");
    let in_order = [
        create(0, "erin", "mallory"),
        attach(4, "erin", "mallory"),
        create(30, "erin", "x"),
        attach(45, "erin", "x"),
    ];
    let fired = replay(
        &setup,
        &setup.dir.path().join("c.db"),
        &in_order,
        "22222222-0000-0000-0000-000000000004",
    );
    assert_eq!(
        fired,
        ["AttachUserPolicy-erin-4-198.51.100.9"],
        "the second pair is 15 minutes apart"
    );
}

#[test]
fn correlations_are_listed_with_their_type() {
    let setup = setup();
    let listed = setup.cli.ok(&["rules", "list", "--format", "jsonl"]);
    let rules: Vec<Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let find = |id: &str| rules.iter().find(|rule| rule["id"] == id).cloned().expect(id);
    assert_eq!(
        find("22222222-0000-0000-0000-000000000001")["sigma"]["correlation"],
        "event_count"
    );
    assert_eq!(find("11111111-0000-0000-0000-000000000001")["enabled"], false);
    assert_eq!(find("11111111-0000-0000-0000-000000000004")["enabled"], true);
}
