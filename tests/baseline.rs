//! A fresh deployment's baseline: `backfill` learns history without raising
//! alarms (and resumes instead of learning a file twice), and `state import`
//! of a key inventory makes a key dormant since before the deployment idle on
//! day one. Both end to end through the binary.

mod common;

use common::*;
use serde_json::{Value, json};

/// 2026-01-05T02:00:00Z (10:00 in Shanghai, a Monday).
const HISTORY: i64 = 1_767_578_400;
/// 40 days later, also 10:00 in Shanghai.
const LIVE: i64 = HISTORY + 40 * 86_400;
const KEY: &str = "AKIAXEK3Q7BZ7HNM4P2L";

/// An AWS call by `KEY` (a long-term key) at `at`.
fn call(id: &str, at: i64, action: &str) -> Value {
    json!({
        "eventVersion": "1.09",
        "eventTime": chrono::DateTime::from_timestamp(at, 0).unwrap().to_rfc3339(),
        "eventSource": "ec2.amazonaws.com",
        "eventName": action,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "54.173.20.11",
        "userAgent": "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.ubuntu.22 prompt/off",
        "eventID": id,
        "eventType": "AwsApiCall",
        "readOnly": true,
        "recipientAccountId": "493817265041",
        "userIdentity": {
            "type": "IAMUser", "principalId": "AIDAXEK3Q7BZ5N2W4R6TY",
            "arn": "arn:aws:iam::493817265041:user/deploy-bot", "accountId": "493817265041",
            "accessKeyId": KEY, "userName": "deploy-bot",
        },
    })
}

/// A sandbox whose daemon reads `live/`; `history.jsonl` and `live/now.jsonl` written.
fn sandbox() -> Sandbox {
    let sandbox = Sandbox::with_config(|sandbox| {
        std::fs::create_dir_all(sandbox.path("live")).unwrap();
        Config::standard(&sandbox.store).files(&[&sandbox.path("live")])
    });
    write_jsonl(
        &sandbox.path("history.jsonl"),
        &[
            call("h1", HISTORY, "DescribeInstances"),
            call("h2", HISTORY + 60, "DescribeVolumes"),
        ],
    );
    write_jsonl(
        &sandbox.path("live/now.jsonl"),
        &[call("l1", LIVE, "DescribeInstances")],
    );
    sandbox
}

/// The output of the one alarm of `rule`.
fn alarm_output(sandbox: &Sandbox, rule: &str) -> String {
    sandbox
        .json(&["alarms", "list", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|alarm| alarm["rule"] == rule)
        .and_then(|alarm| alarm["output"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn alarm_rules(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .json(&["alarms", "list", "--format", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|alarm| alarm["rule"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn without_a_baseline_the_dormant_key_is_new() {
    let sandbox = sandbox();
    sandbox.ok(&["run", "--once"]);
    assert!(!alarm_rules(&sandbox).contains(&"idle-key-reused".to_string()));
}

#[test]
fn backfill_learns_history_silently_and_resumes() {
    let sandbox = sandbox();
    let history = sandbox.path("history.jsonl");
    let output = sandbox.ok(&["backfill", history.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("backfill: 2 records, 2 events"), "{stderr}");
    assert!(alarm_rules(&sandbox).is_empty(), "backfill raised alarms");
    // Run again: the file is checkpointed, nothing is learnt twice.
    let output = sandbox.ok(&["backfill", history.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("backfill: 0 records, 0 events"), "{stderr}");
    // Live: the key last used 40 days ago is idle, and the alarm says who saw it last.
    sandbox.ok(&["run", "--once"]);
    assert_eq!(alarm_rules(&sandbox), ["idle-key-reused"]);
    let output = alarm_output(&sandbox, "idle-key-reused");
    assert!(output.contains("idle 39 days (last seen by trailwarden)"), "{output}");
    // A path that does not exist is refused, not learnt as nothing.
    let missing = sandbox.run(&["backfill", sandbox.path("nope").to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such file or directory"));
}

#[test]
fn an_inventory_import_makes_a_dormant_key_idle_on_day_one() {
    let sandbox = sandbox();
    let inventory = sandbox.path("keys.csv");
    std::fs::write(
        &inventory,
        "Provider,Key_ID,Owner,Created,Last_Used\n\
         aws,AKIAXEK3Q7BZ7HNM4P2L,deploy-bot,2025-06-01,2026-01-05 02:00:00\n\
         aws,AKIA/BAD,x,2025-06-01,2026-01-05\n",
    )
    .unwrap();
    let output = sandbox.run(&["state", "import", inventory.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "a bad line makes the exit status 1");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("1 keys imported, 1 bad line"), "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("keys.csv:3:"));
    sandbox.ok(&["run", "--once"]);
    assert_eq!(alarm_rules(&sandbox), ["idle-key-reused"]);
    // 40 days between the inventory's last use and the call, and the alarm names its source.
    let output = alarm_output(&sandbox, "idle-key-reused");
    assert!(output.contains("idle 40 days (from the key inventory)"), "{output}");
}
