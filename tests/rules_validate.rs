//! `trailwarden rules validate` on a directory with ten different kinds of
//! mistakes reports all ten, each with file:line:col, and exits non-zero.

mod common;

use std::path::Path;

use common::*;

const RULE_HEAD: &str = "rules:\n  - id: {id}\n    title: T\n    level: low\n    description: d\n";

fn rule(id: &str, rest: &str) -> String {
    RULE_HEAD.replace("{id}", id) + rest
}

/// The rule of every match a replay of `paths` with `config` prints.
fn replayed_rules(config: &Path, paths: &[&Path]) -> Vec<String> {
    let replay = Trailwarden::new()
        .command(&["--config", config.to_str().unwrap(), "replay", "--format", "jsonl"])
        .args(paths)
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["rule"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn ten_kinds_of_mistakes_are_all_reported_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path();
    std::fs::copy(repo().join("rules/operations.yaml"), rules.join("operations.yaml")).unwrap();
    write(
        rules,
        "shared.yaml",
        "lists:\n  - list: tool_agents\n    items: [kali]\nmacros:\n  - macro: off_hours\n    condition:\n      time: {between: [\"22:00\", \"06:00\"]}\n",
    );
    // 1. YAML syntax (an unclosed flow sequence).
    write(
        rules,
        "a_syntax.yaml",
        "rules:\n  - id: x\n    tags: [a, b\n    level: low\n",
    );
    // 2. Unknown key (typo of `level`).
    write(
        rules,
        "b_unknown_key.yaml",
        "rules:\n  - id: b\n    title: T\n    levle: low\n    level: low\n    description: d\n    match: {action: A}\n",
    );
    // 3. Unknown field.
    write(
        rules,
        "c_unknown_field.yaml",
        &rule("c", "    match:\n      principle.kind: root\n"),
    );
    // 4. Bad regex.
    write(
        rules,
        "d_bad_regex.yaml",
        &rule("d", "    match:\n      user_agent: {regex: \"(unclosed\"}\n"),
    );
    // 5. Bad CIDR.
    write(
        rules,
        "e_bad_cidr.yaml",
        &rule("e", "    match:\n      source_ip: {cidr: [10.0.0.0/8, 10.0.0.0/33]}\n"),
    );
    // 6. Unknown time zone.
    write(
        rules,
        "f_bad_zone.yaml",
        &rule(
            "f",
            "    match:\n      time: {between: [\"22:00\", \"06:00\"], timezone: Mars/Olympus}\n",
        ),
    );
    // 7. Unknown list (a typo of `tool_agents`).
    write(
        rules,
        "g_unknown_list.yaml",
        &rule("g", "    match:\n      user_agent: {contains: tool_agnets}\n"),
    );
    // 8. Unknown macro.
    write(
        rules,
        "h_unknown_macro.yaml",
        &rule("h", "    match:\n      macro: of_hours\n"),
    );
    // 9. Duplicate id (the second `i` in another file).
    write(rules, "i_duplicate_1.yaml", &rule("i", "    match: {action: A}\n"));
    write(rules, "i_duplicate_2.yaml", &rule("i", "    match: {action: B}\n"));
    // 10. A failing embedded test.
    write(
        rules,
        "j_failing_test.yaml",
        &rule(
            "j",
            "    match: {action: DeleteUser}\n    tests:\n      - name: expects a match it cannot get\n        expect: match\n        events:\n          - {eventSource: iam.amazonaws.com, eventName: CreateUser, eventTime: \"2026-03-02T03:00:00Z\", awsRegion: us-east-1}\n",
        ),
    );

    let output = Trailwarden::new()
        .command(&["rules", "validate"])
        .arg(rules)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "validate must fail:\n{text}");
    let path = |name: &str| rules.join(name).display().to_string();
    let expected = [
        // Where the `[` that is never closed is, not where the parser stopped.
        (path("a_syntax.yaml"), ":3:11:", "YAML syntax: `[` is never closed"),
        (path("b_unknown_key.yaml"), ":4:5:", "unknown key `levle`"),
        (path("c_unknown_field.yaml"), ":7:7:", "unknown field `principle.kind`"),
        (path("d_bad_regex.yaml"), ":7:27:", "bad regex `(unclosed`"),
        (path("e_bad_cidr.yaml"), ":7:38:", "bad CIDR `10.0.0.0/33`"),
        (path("f_bad_zone.yaml"), ":7:", "unknown time zone `Mars/Olympus`"),
        (
            path("g_unknown_list.yaml"),
            ":7:",
            "unknown list `tool_agnets` (did you mean `tool_agents`?)",
        ),
        (
            path("h_unknown_macro.yaml"),
            ":7:14:",
            "unknown macro `of_hours` (did you mean `off_hours`?)",
        ),
        (path("i_duplicate_2.yaml"), ":2:", "rule id `i` is already defined"),
        (
            path("j_failing_test.yaml"),
            ":8:9:",
            "test `expects a match it cannot get` of rule `j` fails",
        ),
    ];
    for (file, location, message) in expected {
        let found = text
            .lines()
            .any(|line| line.starts_with(&format!("{file}{location}")) && line.contains(message));
        assert!(found, "missing `{file}{location} … {message}` in:\n{text}");
    }
    assert!(text.contains("\n10 problems"), "exactly ten problems:\n{text}");
    // A failing test lists its events one per line (escaping keeps our own line breaks).
    assert!(text.lines().any(|line| line.starts_with("      - missing ")), "{text}");
}

#[test]
fn the_shipped_pack_validates_and_its_tests_pass() {
    let output = Trailwarden::new().command(&["rules", "validate"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let output = Trailwarden::new().command(&["rules", "test"]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("test result: ok."), "{text}");
}

#[test]
fn every_shipped_rule_says_why_it_matters_and_what_to_do() {
    let output = Trailwarden::new()
        .command(&["rules", "list", "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rules: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(rules.len() >= 30, "{}", rules.len());
    for rule in &rules {
        let remediation = rule["remediation"].as_str().unwrap_or_default();
        assert!(
            remediation.split_whitespace().count() >= 10,
            "{}: a remediation of a sentence or more, not {remediation:?}",
            rule["id"]
        );
        assert_ne!(rule["remediation"], rule["rationale"], "{}", rule["id"]);
    }
}

#[test]
fn overrides_change_levels_extend_lists_add_exceptions_and_disable_rules() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = dir.path().join("overrides.yaml");
    std::fs::write(
        &overrides,
        r#"
lists:
  - list: hacker_tool_agents
    append: [mytool]
rules:
  - rule: access-key-created
    level: high
    exceptions:
      - name: onboarding_robot
        fields: [principal.name]
        values: [[ops-sync]]
  - rule: sec09-cost-sensitive-operation
    enabled: false
  - id: custom-tencent-describe
    title: Custom rule from the operator file
    level: info
    description: An operator's own rule lives in the override file too.
    match:
      all:
        - provider: tencent
        - action: DescribeInstances
"#,
    )
    .unwrap();
    let config = dir.path().join("config.toml");
    Config::new()
        .set("rules", "dir", rules_dir())
        .set("rules", "overrides", &[overrides.as_path()][..])
        .set("rules", "disabled_tags", Raw("[\"network\"]"))
        .write(&config);
    let list = Trailwarden::new()
        .command(&[
            "--config",
            config.to_str().unwrap(),
            "rules",
            "list",
            "--format",
            "jsonl",
        ])
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let rules: Vec<serde_json::Value> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let find = |id: &str| rules.iter().find(|rule| rule["id"] == id).unwrap().clone();
    assert_eq!(find("access-key-created")["level"], "high");
    assert_eq!(find("sec09-cost-sensitive-operation")["enabled"], false);
    assert_eq!(find("sec09-network-change")["enabled"], false, "disabled by tag");
    assert_eq!(find("custom-tencent-describe")["level"], "info");
    // The exception suppresses the match of the fixture's `ops-sync` key creation.
    let matched = replayed_rules(
        &config,
        &[
            Path::new("tests/fixtures/records/tencent_cos_delivery.json.gz"),
            Path::new("tests/fixtures/records/truncated.json.gz"),
        ],
    );
    assert!(!matched.iter().any(|rule| rule == "access-key-created"), "{matched:?}");
    assert!(
        !matched.iter().any(|rule| rule == "sec09-cost-sensitive-operation"),
        "{matched:?}"
    );
    assert!(
        matched.iter().any(|rule| rule == "custom-tencent-describe"),
        "{matched:?}"
    );
    // An override of a rule that does not exist is reported with its location.
    std::fs::write(&overrides, "rules:\n  - rule: acces-key-created\n    level: high\n").unwrap();
    let output = Trailwarden::new()
        .command(&["--config", config.to_str().unwrap(), "rules", "validate"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        text.contains(
            "overrides.yaml:2:11: override of unknown rule `acces-key-created` (did you mean `access-key-created`?)"
        ),
        "{text}"
    );
}

#[test]
fn syntax_errors_are_reported_where_they_are_and_limits_say_to_split_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path();
    std::fs::copy(repo().join("rules/operations.yaml"), rules.join("operations.yaml")).unwrap();
    // A tab on line 3.
    write(rules, "a_tab.yaml", "rules:\n  - id: a\n\ttitle: X\n");
    // An unclosed `[` on line 8, noticed by the parser on line 9.
    write(
        rules,
        "b_bracket.yaml",
        &rule(
            "b",
            "    tags: [a]\n    match:\n      action: [A, B\n    group_by: [principal.name]\n",
        ),
    );
    // An unclosed quote on line 3.
    write(
        rules,
        "c_quote.yaml",
        "rules:\n  - id: c\n    title: \"abc\n    level: high\n",
    );
    // Nested deeper than rule files may be.
    let deep = format!("{}{{action: A}}{}", "{all: [".repeat(20), "]}".repeat(20));
    write(rules, "d_deep.yaml", &rule("d", &format!("    match: {deep}\n")));
    let output = Trailwarden::new()
        .command(&["rules", "validate"])
        .arg(rules)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let path = |name: &str| rules.join(name).display().to_string();
    for (file, location, message) in [
        (path("a_tab.yaml"), ":3:1:", "a tab character: indent with spaces"),
        (
            path("b_bracket.yaml"),
            ":8:15:",
            "`[` is never closed (add `]`; the parser stopped at 9:",
        ),
        (
            path("c_quote.yaml"),
            ":3:12:",
            "the string opened here with `\"` is not closed",
        ),
        (path("d_deep.yaml"), ":6:", "nested deeper than 32 levels"),
    ] {
        let found = text
            .lines()
            .find(|line| line.starts_with(&format!("{file}{location}")))
            .unwrap_or_else(|| panic!("no problem at {file}{location} in:\n{text}"));
        assert!(found.contains(message), "{found}");
    }
    assert!(text.contains("split it into several files"), "{text}");
    assert!(!text.contains("Depth {") && !text.contains("budget"), "{text}");
}

/// `other_account` rules alarm on a bucket policy or a KMS key of an outside
/// account, and an operator's override that appends the account to
/// `trusted_accounts` (the organisation's own accounts) silences both.
#[test]
fn trusted_accounts_override_silences_the_foreign_account_rules() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.jsonl");
    let identity = r#""recipientAccountId": "493817265041", "userIdentity": {"type": "IAMUser", "principalId": "AIDAXEK3Q7BZ5N2W4R6TY", "arn": "arn:aws:iam::493817265041:user/deploy-bot", "accountId": "493817265041", "accessKeyId": "AKIAXEK3Q7BZ7HNM4P2L", "userName": "deploy-bot"}"#;
    let policy = format!(
        r#"{{"eventVersion": "1.11", "eventTime": "2026-03-02T03:00:00Z", "eventSource": "s3.amazonaws.com", "eventName": "PutBucketPolicy", "awsRegion": "us-east-1", "sourceIPAddress": "34.229.17.208", "eventID": "tp-1", "eventType": "AwsApiCall", "requestParameters": {{"bucketName": "finance-reports", "bucketPolicy": {{"Statement": [{{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::193672423079:root"}}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::finance-reports/*"}}]}}}}, {identity}}}"#
    );
    let copy = format!(
        r#"{{"eventVersion": "1.10", "eventTime": "2026-03-02T03:01:00Z", "eventSource": "s3.amazonaws.com", "eventName": "CopyObject", "awsRegion": "us-east-1", "sourceIPAddress": "34.229.17.208", "eventID": "tp-2", "eventType": "AwsApiCall", "requestParameters": {{"bucketName": "finance-reports", "key": "q1.xlsx", "x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:us-east-1:999999999999:key/4f1c2e8a"}}, {identity}}}"#
    );
    std::fs::write(&records, format!("{policy}\n{copy}\n")).unwrap();
    let matched = |config: &Path| replayed_rules(config, &[records.as_path()]);
    let plain = dir.path().join("plain.toml");
    Config::new().set("rules", "dir", rules_dir()).write(&plain);
    let before = matched(&plain);
    assert!(
        before.iter().any(|rule| rule == "bucket-policy-foreign-account"),
        "{before:?}"
    );
    assert!(
        before.iter().any(|rule| rule == "encryption-with-foreign-key"),
        "{before:?}"
    );

    let overrides = dir.path().join("overrides.yaml");
    std::fs::write(
        &overrides,
        "lists:\n  - list: trusted_accounts\n    append: [\"193672423079\", \"999999999999\"]\n",
    )
    .unwrap();
    let trusted = dir.path().join("trusted.toml");
    Config::new()
        .set("rules", "dir", rules_dir())
        .set("rules", "overrides", &[overrides.as_path()][..])
        .write(&trusted);
    let after = matched(&trusted);
    assert!(
        !after.iter().any(|rule| rule == "bucket-policy-foreign-account"),
        "{after:?}"
    );
    assert!(
        !after.iter().any(|rule| rule == "encryption-with-foreign-key"),
        "{after:?}"
    );
}

/// `rules cost` times every enabled rule on the examples and finds what a
/// replay of them finds (the examples arrive in time order, so the state
/// evolves the same way in both).
#[test]
fn rules_cost_times_every_rule_and_finds_what_replay_finds() {
    let tw = common::Trailwarden::new();
    let report: serde_json::Value =
        serde_json::from_slice(&tw.ok(&["rules", "cost", "--format", "json", "examples"]).stdout).unwrap();
    let replayed = tw.ok(&["replay", "--format", "jsonl", "examples"]);
    let replay_matches = String::from_utf8(replayed.stdout).unwrap().lines().count() as u64;
    let listed = tw.ok(&["rules", "list", "--format", "json"]);
    let enabled = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .filter(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["enabled"] == true)
        .count();
    let rules = report["rules"].as_array().unwrap();
    assert_eq!(rules.len(), enabled, "every enabled rule is listed");
    assert!(report["events"].as_u64().unwrap() > 1000);
    let matches: u64 = rules.iter().map(|rule| rule["matches"].as_u64().unwrap()).sum();
    assert_eq!(matches, replay_matches);
    let mut previous = u64::MAX;
    for rule in rules {
        assert!(rule["evaluations"].as_u64().unwrap() >= rule["matches"].as_u64().unwrap());
        let nanos = rule["nanos"].as_u64().unwrap();
        assert!(nanos <= previous, "most expensive first");
        previous = nanos;
    }
    assert!(report["nanos"].as_u64().unwrap() > 0);
    let table = String::from_utf8(tw.ok(&["rules", "cost", "examples"]).stdout).unwrap();
    assert!(table.starts_with("RULE"), "{table}");
    assert!(table.contains("ns per event"), "{table}");
    // A path that does not exist is named.
    let missing = tw.run(&["rules", "cost", "no/such/dir"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/dir"));
}
