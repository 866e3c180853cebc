//! The god view (`trailwarden activity`) and key-operation traces
//! (`trailwarden traces`) end to end: a small crafted corpus of all three
//! clouds is replayed into a store in two runs (an older week first), then
//! the commands' output is checked figure by figure.

mod common;

use common::*;
use serde_json::{Value, json};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// 2026-03-02T00:00:00Z.
const START: i64 = 1_772_409_600;
const START_TEXT: &str = "2026-03-02T00:00:00Z";

const TENCENT_ACCOUNT: &str = "100012345678";
const HUAWEI_DOMAIN: &str = "6d4e2f1a8b9c40d7a5e3f21c0b9d8e7f";
const AWS_ACCOUNT: &str = "493817265041";

const KEY_OPS_SYNC: &str = "AKIDq3LtR9xW2vN8mB5kH7jF4gD6sA1zC0eY";
const KEY_INTERN: &str = "AKIDintern7xW2vN8mB5kH7jF4gD6sA1zC0eZ";
const KEY_OPS_DEPLOY: &str = "HPUAQ7KZ3M9XWD2LTR5V";
const KEY_NET_ADMIN: &str = "HSTAM2K7QX9WZ4N8D3RB";
const KEY_DEPLOY_BOT: &str = "AKIAXEK3Q7BZ7HNM4P2L";
const KEY_ANALYST: &str = "AKIAXEK3Q7BZUF6TR2WQ";

/// The parts of a call shared by the three record shapes.
struct Call<'a> {
    id: &'a str,
    at: i64,
    action: &'a str,
    service: &'a str,
    key: &'a str,
    user: &'a str,
    ip: &'a str,
}

fn tencent(call: Call<'_>, event_type: &str, error: Option<&str>) -> Value {
    json!({
        "eventVersion": 2,
        "eventID": call.id,
        "eventTime": call.at,
        "eventName": call.action,
        "eventSource": format!("{}.tencentcloudapi.com", call.service),
        "resourceType": call.service,
        "eventType": event_type,
        "eventRegion": "ap-guangzhou",
        "actionType": "Write",
        "errorCode": error.map_or(json!(0), |code| json!(code)),
        "errorMessage": error.unwrap_or(""),
        "sourceIPAddress": call.ip,
        "userAgent": "SDK_GO_1.0.374",
        "resourceName": "ins-9x2kq4mt",
        "requestParameters": json!({"InstanceIds": ["ins-9x2kq4mt"], "Action": call.action}).to_string(),
        "userIdentity": {
            "type": "CAMUser",
            "principalId": format!("1000{}", call.user.len() * 1111),
            "accountId": 100012345678_i64,
            "secretId": call.key,
            "userName": call.user,
        },
    })
}

fn huawei(call: Call<'_>, trace_type: &str, resource_type: &str, rating: &str, code: &str) -> Value {
    json!({
        "trace_id": call.id,
        "trace_name": call.action,
        "trace_rating": rating,
        "trace_type": trace_type,
        "service_type": call.service,
        "resource_type": resource_type,
        "resource_name": "res-1",
        "time": call.at * 1000,
        "code": code,
        "source_ip": call.ip,
        "request": json!({"user": {"name": "sys-maint"}}).to_string(),
        "user_agent": "huaweicloud-usdk-go/3.0",
        "read_only": false,
        "user": {
            "id": format!("id-{}", call.user),
            "name": call.user,
            "domain": {"id": HUAWEI_DOMAIN, "name": "fin-core-prod"},
            "access_key_id": call.key,
            "principal_urn": format!("iam::{HUAWEI_DOMAIN}:user:{}", call.user),
            "principal_is_root_user": "false",
        },
    })
}

fn aws(call: Call<'_>, error: Option<&str>) -> Value {
    let time = chrono::DateTime::from_timestamp(call.at, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut record = json!({
        "eventVersion": "1.11",
        "eventTime": time,
        "eventSource": format!("{}.amazonaws.com", call.service),
        "eventName": call.action,
        "awsRegion": "us-east-1",
        "sourceIPAddress": call.ip,
        "userAgent": "aws-cli/2.15.30",
        "requestParameters": {"instancesSet": {"items": [{"instanceId": "i-0a1b2c3d4e5f67890"}]}},
        "responseElements": null,
        "eventID": call.id,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": AWS_ACCOUNT,
        "userIdentity": {
            "type": "IAMUser",
            "principalId": format!("AIDA{}", call.user.to_uppercase()),
            "arn": format!("arn:aws:iam::{AWS_ACCOUNT}:user/{}", call.user),
            "accountId": AWS_ACCOUNT,
            "accessKeyId": call.key,
            "userName": call.user,
        },
    });
    if let Some(code) = error {
        record["errorCode"] = json!(code);
        record["errorMessage"] = json!("You are not authorized to perform this operation.");
    }
    record
}

/// An older week: two AWS reboots (8 and 6 days before START) and one
/// Tencent read, which make (deploy-bot, 34.229.17.208) and
/// (ops-sync, 45.76.218.92) known before the range.
fn old_week() -> Vec<Value> {
    vec![
        aws(
            Call {
                id: "old-reboot-8d",
                at: START - 8 * DAY,
                action: "RebootInstances",
                service: "ec2",
                key: KEY_DEPLOY_BOT,
                user: "deploy-bot",
                ip: "34.229.17.208",
            },
            None,
        ),
        aws(
            Call {
                id: "old-reboot-6d",
                at: START - 6 * DAY,
                action: "RebootInstances",
                service: "ec2",
                key: KEY_DEPLOY_BOT,
                user: "deploy-bot",
                ip: "34.229.17.208",
            },
            None,
        ),
        tencent(
            Call {
                id: "old-describe",
                at: START - 6 * DAY + HOUR,
                action: "DescribeInstances",
                service: "cvm",
                key: KEY_OPS_SYNC,
                user: "ops-sync",
                ip: "45.76.218.92",
            },
            "ApiCall",
            None,
        ),
    ]
}

/// The day in question: 10 Tencent, 5 Huawei and 10 AWS events.
fn today() -> Vec<Value> {
    let mut records = Vec::new();
    // Tencent: ops-sync reads five times, then reboots in the console; the
    // intern fails to stop instances three times, then reads once.
    for minute in 1..=5 {
        records.push(tencent(
            Call {
                id: &format!("t-describe-{minute}"),
                at: START + HOUR + minute * 60,
                action: "DescribeInstances",
                service: "cvm",
                key: KEY_OPS_SYNC,
                user: "ops-sync",
                ip: "45.76.218.92",
            },
            "ApiCall",
            None,
        ));
    }
    records.push(tencent(
        Call {
            id: "t-reboot",
            at: START + 2 * HOUR,
            action: "RebootInstances",
            service: "cvm",
            key: KEY_OPS_SYNC,
            user: "ops-sync",
            ip: "45.76.218.92",
        },
        "ConsoleCall",
        None,
    ));
    for minute in 10..=12 {
        records.push(tencent(
            Call {
                id: &format!("t-stop-{minute}"),
                at: START + 2 * HOUR + minute * 60,
                action: "StopInstances",
                service: "cvm",
                key: KEY_INTERN,
                user: "intern",
                ip: "101.33.1.9",
            },
            "ApiCall",
            Some("AuthFailure.UnauthorizedOperation"),
        ));
    }
    records.push(tencent(
        Call {
            id: "t-intern-describe",
            at: START + 2 * HOUR + 13 * 60,
            action: "DescribeInstances",
            service: "cvm",
            key: KEY_INTERN,
            user: "intern",
            ip: "101.33.1.9",
        },
        "ApiCall",
        None,
    ));
    // Huawei: two starts, a user created, the same user rejected as a
    // duplicate, and a security group rule deleted in the console.
    for minute in 0..2 {
        records.push(huawei(
            Call {
                id: &format!("h-start-{minute}"),
                at: START + 3 * HOUR + minute * 60,
                action: "startServer",
                service: "ECS",
                key: KEY_OPS_DEPLOY,
                user: "ops-deploy",
                ip: "116.228.71.34",
            },
            "ApiCall",
            "ecs",
            "normal",
            "200",
        ));
    }
    for (minute, rating, code) in [(5, "normal", "201"), (6, "warning", "409")] {
        records.push(huawei(
            Call {
                id: &format!("h-create-user-{minute}"),
                at: START + 3 * HOUR + minute * 60,
                action: "createUser",
                service: "IAM",
                key: KEY_OPS_DEPLOY,
                user: "ops-deploy",
                ip: "116.228.71.34",
            },
            "ApiCall",
            "user",
            rating,
            code,
        ));
    }
    records.push(huawei(
        Call {
            id: "h-delete-sg-rule",
            at: START + 3 * HOUR + 20 * 60,
            action: "deleteSecurity-group-rule",
            service: "VPC",
            key: KEY_NET_ADMIN,
            user: "net-admin",
            ip: "221.218.140.57",
        },
        "ConsoleAction",
        "security-group-rules",
        "normal",
        "204",
    ));
    // AWS: deploy-bot reads seven times and stops an instance from a new
    // address; an analyst is denied opening a security group twice.
    for minute in 0..7 {
        records.push(aws(
            Call {
                id: &format!("a-describe-{minute}"),
                at: START + 4 * HOUR + minute * 60,
                action: "DescribeInstances",
                service: "ec2",
                key: KEY_DEPLOY_BOT,
                user: "deploy-bot",
                ip: "34.229.17.208",
            },
            None,
        ));
    }
    records.push(aws(
        Call {
            id: "a-stop",
            at: START + 4 * HOUR + 30 * 60,
            action: "StopInstances",
            service: "ec2",
            key: KEY_DEPLOY_BOT,
            user: "deploy-bot",
            ip: "3.91.44.120",
        },
        None,
    ));
    for minute in [40, 41] {
        records.push(aws(
            Call {
                id: &format!("a-sg-{minute}"),
                at: START + 4 * HOUR + minute * 60,
                action: "AuthorizeSecurityGroupIngress",
                service: "ec2",
                key: KEY_ANALYST,
                user: "analyst-jwu",
                ip: "91.219.236.174",
            },
            Some("Client.UnauthorizedOperation"),
        ));
    }
    records
}

/// A store filled with the old week, then (when `today` is set) the day.
struct Fixture {
    _dir: tempfile::TempDir,
    db: String,
}

fn fixture(with_today: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.jsonl");
    let now = dir.path().join("today.jsonl");
    write_jsonl(&old, &old_week());
    write_jsonl(&now, &today());
    let db = dir.path().join("tw.db").display().to_string();
    Trailwarden::new().stdout(&["replay", "--format", "jsonl", "--db", &db, old.to_str().unwrap()]);
    if with_today {
        Trailwarden::new().stdout(&["replay", "--format", "jsonl", "--db", &db, now.to_str().unwrap()]);
    }
    Fixture { _dir: dir, db }
}

fn activity(db: &str, extra: &[&str]) -> Value {
    let mut args = vec!["activity", "--db", db, "--format", "json"];
    args.extend_from_slice(extra);
    Trailwarden::new().json(&args)
}

fn traces(db: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["traces", "--db", db, "--format", "jsonl"];
    args.extend_from_slice(extra);
    Trailwarden::new().jsonl(&args)
}

fn ids(traces: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = traces
        .iter()
        .map(|trace| trace["event_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// (principal, events, failures) of a list.
fn principals(report: &Value) -> Vec<(String, u64, u64)> {
    report["busiest_principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["principal"].as_str().unwrap().to_string(),
                row["events"].as_u64().unwrap(),
                row["failures"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn activity_counts_every_event_by_principal_ip_and_account() {
    let fixture = fixture(true);
    let report = activity(&fixture.db, &["--since", START_TEXT]);
    assert_eq!(report["since"], "2026-03-02T00:00:00.000Z");
    assert_eq!(
        report["events"], 25,
        "10 tencent + 5 huawei + 10 aws, the old week left out"
    );
    assert_eq!(report["failures"], 6);
    assert_eq!(
        principals(&report),
        vec![
            ("deploy-bot".to_string(), 8, 0),
            ("ops-sync".to_string(), 6, 0),
            ("ops-deploy".to_string(), 4, 1),
            ("intern".to_string(), 4, 3),
            ("analyst-jwu".to_string(), 2, 2),
            ("net-admin".to_string(), 1, 0),
        ]
    );
    // Busiest APIs: every event counted once under its cloud, service and action.
    let apis = report["busiest_apis"].as_array().unwrap();
    assert!(!apis.is_empty());
    let api_events: u64 = apis.iter().map(|row| row["events"].as_u64().unwrap()).sum();
    assert!(api_events <= report["events"].as_u64().unwrap());
    assert!(
        apis.windows(2)
            .all(|pair| pair[0]["events"].as_u64() >= pair[1]["events"].as_u64()),
        "busiest first: {apis:?}"
    );
    assert!(
        apis.iter().all(|row| row["service"].is_string()
            && row["action"].is_string()
            && row["principals"].as_u64() >= Some(1))
    );
    let ips: Vec<(String, u64)> = report["busiest_source_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["source_ip"].as_str().unwrap().to_string(),
                row["events"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ips[..4],
        [
            ("34.229.17.208".to_string(), 7),
            ("45.76.218.92".to_string(), 6),
            ("101.33.1.9".to_string(), 4),
            ("116.228.71.34".to_string(), 4),
        ]
    );
    let rates: Vec<(String, String, u64, u64, f64)> = report["failure_rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["provider"].as_str().unwrap().to_string(),
                row["account_id"].as_str().unwrap().to_string(),
                row["events"].as_u64().unwrap(),
                row["failures"].as_u64().unwrap(),
                row["failure_rate"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rates,
        vec![
            ("tencent".to_string(), TENCENT_ACCOUNT.to_string(), 10, 3, 0.3),
            ("aws".to_string(), AWS_ACCOUNT.to_string(), 10, 2, 0.2),
            ("huawei".to_string(), HUAWEI_DOMAIN.to_string(), 5, 1, 0.2),
        ]
    );

    // Without a range the old week counts too; --top cuts the lists.
    let everything = activity(&fixture.db, &["--top", "2"]);
    assert_eq!(everything["events"], 28);
    assert_eq!(
        principals(&everything),
        vec![("deploy-bot".to_string(), 10, 0), ("ops-sync".to_string(), 7, 0)]
    );
    // A relative start a year back includes everything; an hour-wide range only its hour.
    assert_eq!(activity(&fixture.db, &["--since", "365d"])["events"], 28);
    let hour = activity(
        &fixture.db,
        &["--since", "2026-03-02T03:00:00Z", "--until", "2026-03-02T04:00:00Z"],
    );
    assert_eq!(hour["events"], 5, "the Huawei hour");
    assert_eq!(principals(&hour)[0], ("ops-deploy".to_string(), 4, 1));
    // The hourly series (the console's chart) is that one hour.
    assert_eq!(
        hour["hourly"],
        serde_json::json!([{"hour": "2026-03-02T03:00:00.000Z", "events": 5, "failures": 1}])
    );
    // Over everything, the hours add up to the totals, oldest first.
    let hours = everything["hourly"].as_array().unwrap();
    let sum = |field: &str| hours.iter().map(|row| row[field].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        (sum("events"), sum("failures")),
        (28, everything["failures"].as_u64().unwrap())
    );
    let starts: Vec<&str> = hours.iter().map(|row| row["hour"].as_str().unwrap()).collect();
    assert!(starts.windows(2).all(|pair| pair[0] < pair[1]), "{starts:?}");
}

#[test]
fn activity_lists_key_ip_pairs_first_seen_in_the_range() {
    let fixture = fixture(true);
    let report = activity(&fixture.db, &["--since", START_TEXT]);
    let pairs = report["new_key_ips"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = pairs
        .iter()
        .map(|pair| {
            (
                pair["source_ip"].as_str().unwrap(),
                pair["principal"].as_str().unwrap(),
                pair["first_seen"].as_str().unwrap(),
            )
        })
        .collect();
    // (ops-sync, 45.76.218.92) and (deploy-bot, 34.229.17.208) were seen the week before.
    assert_eq!(
        seen,
        vec![
            ("101.33.1.9", "intern", "2026-03-02T02:10:00.000Z"),
            ("116.228.71.34", "ops-deploy", "2026-03-02T03:00:00.000Z"),
            ("221.218.140.57", "net-admin", "2026-03-02T03:20:00.000Z"),
            ("3.91.44.120", "deploy-bot", "2026-03-02T04:30:00.000Z"),
            ("91.219.236.174", "analyst-jwu", "2026-03-02T04:40:00.000Z"),
        ]
    );
    assert_eq!(report["new_key_ips_total"], 5);
    // The key is in the pair, masked as everywhere keys leave the store.
    let stop_pair = pairs[3]["access_key_id"].as_str().unwrap();
    assert_eq!(stop_pair, trailwarden::mask::mask_access_key(KEY_DEPLOY_BOT));
    for (pair, key) in pairs.iter().zip([KEY_INTERN, KEY_OPS_DEPLOY, KEY_NET_ADMIN]) {
        assert_eq!(
            pair["access_key_id"].as_str().unwrap(),
            trailwarden::mask::mask_access_key(key)
        );
    }
    // Over all time, the old week's pairs are new too; --top caps the list, not the total.
    let all = activity(&fixture.db, &["--top", "1"]);
    assert_eq!(all["new_key_ips_total"], 7);
    assert_eq!(all["new_key_ips"][0]["source_ip"], "34.229.17.208");
    assert_eq!(all["new_key_ips"].as_array().unwrap().len(), 1);
    // A range after the last event has nothing.
    let after = activity(&fixture.db, &["--since", "2026-03-03T00:00:00Z"]);
    assert_eq!(
        (after["events"].as_u64(), after["new_key_ips_total"].as_u64()),
        (Some(0), Some(0))
    );

    // The table form names the sections.
    let table = Trailwarden::new().stdout(&["activity", "--db", &fixture.db, "--since", START_TEXT]);
    for heading in [
        "busiest principals",
        "busiest source IPs",
        "failure rates by account",
        "new (access key, source IP) pairs: 5",
        "deploy-bot",
        "30.0%",
    ] {
        assert!(table.contains(heading), "{heading} missing:\n{table}");
    }
}

#[test]
fn traces_keep_key_operations_with_raw_records_and_filter() {
    let fixture = fixture(true);
    let all = traces(&fixture.db, &[]);
    // No full access key leaves the store, not even inside the raw records.
    let text = serde_json::to_string(&all).unwrap();
    for key in [
        KEY_OPS_SYNC,
        KEY_INTERN,
        KEY_OPS_DEPLOY,
        KEY_NET_ADMIN,
        KEY_DEPLOY_BOT,
        KEY_ANALYST,
    ] {
        assert!(!text.contains(key), "{key} left the store unmasked");
    }
    assert_eq!(
        ids(&all),
        [
            "a-sg-40",
            "a-sg-41",
            "a-stop",
            "h-create-user-5",
            "h-create-user-6",
            "h-delete-sg-rule",
            "old-reboot-6d",
            "t-reboot",
            "t-stop-10",
            "t-stop-11",
            "t-stop-12",
        ],
        "key operations only (no reads, no starts), failures included"
    );
    assert_eq!(all[0]["event_id"], "a-sg-41", "most recent first");
    let rule = all
        .iter()
        .find(|trace| trace["event_id"] == "h-delete-sg-rule")
        .unwrap();
    assert_eq!(
        rule["raw"]["trace_name"], "deleteSecurity-group-rule",
        "the raw record is kept"
    );
    assert_eq!(rule["raw"]["user"]["name"], "net-admin");
    assert_eq!(rule["trace_type"], "ConsoleAction");
    assert_eq!(rule["call_method"], "console");
    assert_eq!(rule["operator"], "net-admin");
    assert_eq!(rule["status"], "success");
    assert!(
        rule["operations"]
            .as_array()
            .unwrap()
            .contains(&json!("net.sg.rule_delete"))
    );
    let aws_stop = all.iter().find(|trace| trace["event_id"] == "a-stop").unwrap();
    assert_eq!(aws_stop["raw"]["eventName"], "StopInstances");
    assert_eq!(aws_stop["trace_type"], "AwsApiCall");

    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--service", "CVM"],
            &["t-reboot", "t-stop-10", "t-stop-11", "t-stop-12"],
        ),
        (&["--call-method", "console"], &["h-delete-sg-rule", "t-reboot"]),
        (&["--call-method", "ConsoleAction"], &["h-delete-sg-rule"]),
        (&["--resource-type", "security-group-rules"], &["h-delete-sg-rule"]),
        (&["--operator", "intern"], &["t-stop-10", "t-stop-11", "t-stop-12"]),
        (
            &["--status", "failure"],
            &[
                "a-sg-40",
                "a-sg-41",
                "h-create-user-6",
                "t-stop-10",
                "t-stop-11",
                "t-stop-12",
            ],
        ),
        (
            &["--since", "2026-03-02T03:00:00Z", "--until", "2026-03-02T04:00:00Z"],
            &["h-create-user-5", "h-create-user-6", "h-delete-sg-rule"],
        ),
        (
            &["--operator", "deploy-bot", "--status", "success"],
            &["a-stop", "old-reboot-6d"],
        ),
        (&["--service", "iam", "--status", "success"], &["h-create-user-5"]),
        (&["--since", "2026-03-03"], &[]),
    ];
    for (args, expected) in cases {
        assert_eq!(ids(&traces(&fixture.db, args)), *expected, "traces {args:?}");
    }
    assert_eq!(traces(&fixture.db, &["--limit", "3"]).len(), 3);

    let table = Trailwarden::new().stdout(&["traces", "--db", &fixture.db, "--operator", "net-admin"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[1].contains("vpc.deleteSecurity-group-rule") && lines[1].contains("221.218.140.57"));

    let output = Trailwarden::new().run(&["traces", "--db", &fixture.db, "--since", "yesterday-ish"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--since yesterday-ish"));
}

#[test]
fn traces_past_retention_are_pruned_by_event_time() {
    let fixture = fixture(false);
    // After the old week alone, both of its reboots are within 7 days of its newest event.
    assert_eq!(
        ids(&traces(&fixture.db, &["--operator", "deploy-bot"])),
        ["old-reboot-6d", "old-reboot-8d"]
    );
    // The day's events move the newest event time: the reboot 8 days back goes, 6 days stays.
    let dir = tempfile::tempdir().unwrap();
    let now = dir.path().join("today.jsonl");
    write_jsonl(&now, &today());
    Trailwarden::new().stdout(&[
        "replay",
        "--format",
        "jsonl",
        "--db",
        &fixture.db,
        now.to_str().unwrap(),
    ]);
    assert_eq!(
        ids(&traces(&fixture.db, &["--operator", "deploy-bot"])),
        ["a-stop", "old-reboot-6d"]
    );
    // Rollups are not subject to trace retention.
    assert_eq!(activity(&fixture.db, &[])["events"], 28);

    // A shorter retention from the configuration prunes more.
    let config = dir.path().join("short.toml");
    std::fs::write(&config, "[traces]\nretention = \"1d\"\n").unwrap();
    let db = dir.path().join("short.db").display().to_string();
    let all = dir.path().join("all.jsonl");
    let mut records = old_week();
    records.extend(today());
    write_jsonl(&all, &records);
    Trailwarden::new().stdout(&[
        "--config",
        config.to_str().unwrap(),
        "replay",
        "--format",
        "jsonl",
        "--db",
        &db,
        all.to_str().unwrap(),
    ]);
    let kept = traces(&db, &[]);
    assert_eq!(kept.len(), 10, "the day's ten key operations, neither old reboot");
    assert!(ids(&kept).iter().all(|id| !id.starts_with("old-")));
}

#[test]
fn bad_trace_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[traces]\nretention = \"a week\"\n").unwrap();
    let db = dir.path().join("unused.db").display().to_string();
    let output = Trailwarden::new().run(&["--config", config.to_str().unwrap(), "traces", "--db", &db]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("traces.retention"),
        "{stderr}"
    );
    std::fs::write(&config, "[activity]\nenabled = \"maybe\"\n").unwrap();
    let output = Trailwarden::new().run(&["--config", config.to_str().unwrap(), "activity", "--db", &db]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("enabled"));
}
