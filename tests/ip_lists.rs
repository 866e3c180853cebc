//! Address lists (`[ip_lists]`): read from the shapes operators download
//! (AWS ip-ranges.json, Tor's exit list, plain CIDR files), shown by
//! `trailwarden ip-lists`, and used by `sensitive-api-from-hosting-vpn-tor`
//! end to end through the daemon.

mod common;

use common::*;
use serde_json::{Value, json};

/// 2026-03-02T03:00:00Z.
const START: i64 = 1_772_420_400;
const KEY: &str = "AKIAXEK3Q7BZ7HNM4P2L";

fn call(id: &str, at: i64, action: &str, ip: &str, read_only: bool) -> Value {
    json!({
        "eventVersion": "1.11",
        "eventTime": chrono::DateTime::from_timestamp(at, 0).unwrap().to_rfc3339(),
        "eventSource": if action == "DescribeInstances" { "ec2.amazonaws.com" } else { "iam.amazonaws.com" },
        "eventName": action,
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip,
        "userAgent": "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.ubuntu.22 prompt/off",
        "requestParameters": {"userName": "sys-maint"},
        "eventID": id,
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "recipientAccountId": "493817265041",
        "userIdentity": {
            "type": "IAMUser", "principalId": "AIDAXEK3Q7BZ5N2W4R6TY",
            "arn": "arn:aws:iam::493817265041:user/deploy-bot", "accountId": "493817265041",
            "accessKeyId": KEY, "userName": "deploy-bot",
        },
    })
}

fn sandbox() -> Sandbox {
    Sandbox::with_config(|sandbox| {
        std::fs::create_dir_all(sandbox.path("in")).unwrap();
        std::fs::write(
            sandbox.path("ip-ranges.json"),
            r#"{"syncToken":"1","prefixes":[{"ip_prefix":"3.5.140.0/22","region":"ap-northeast-2","service":"AMAZON"}],"ipv6_prefixes":[]}"#,
        )
        .unwrap();
        std::fs::write(
            sandbox.path("exit-addresses"),
            "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nPublished 2026-03-01 10:00:00\nExitAddress 185.220.101.7 2026-03-01 11:02:11\n",
        )
        .unwrap();
        Config::standard(&sandbox.store)
            .files(&[&sandbox.path("in")])
            .append(&format!(
                "\n[ip_lists]\nhosting = [{:?}]\ntor = [{:?}]\n",
                sandbox.path("ip-ranges.json").display().to_string(),
                sandbox.path("exit-addresses").display().to_string()
            ))
    })
}

#[test]
fn a_known_key_writing_from_a_tor_exit_raises_the_high_rule() {
    let sandbox = sandbox();
    write_jsonl(
        &sandbox.path("in/trail.jsonl"),
        &[
            call("e1", START, "DescribeInstances", "54.173.20.11", true),
            // Ten days later: an access key created from a Tor exit, a user from an address in no list.
            call("e2", START + 10 * 86_400, "CreateAccessKey", "185.220.101.7", false),
            call("e3", START + 10 * 86_400 + 60, "CreateUser", "198.51.100.20", false),
        ],
    );
    sandbox.ok(&["run", "--once"]);
    let alarms = sandbox.json(&["alarms", "list", "--format", "json"]);
    let alarm = |rule: &str| {
        alarms
            .as_array()
            .unwrap()
            .iter()
            .find(|alarm| alarm["rule"] == rule)
            .cloned()
            .unwrap_or_else(|| panic!("no {rule} alarm in {alarms}"))
    };
    let listed = alarm("sensitive-api-from-hosting-vpn-tor");
    assert_eq!(listed["level"], "high");
    let output = listed["output"].as_str().unwrap();
    assert!(output.contains("from 185.220.101.7, a tor address"), "{output}");
    let new = alarm("sensitive-api-from-new-address");
    assert!(new["output"].as_str().unwrap().contains("198.51.100.20"), "{new}");
    assert_eq!(new["count"], 1, "the Tor call is the high rule's alone: {new}");
}

#[test]
fn ip_lists_shows_what_each_list_read_and_where_an_address_is() {
    let sandbox = sandbox();
    let output = sandbox.ok(&["ip-lists", "185.220.101.7", "3.5.143.255", "8.8.8.8"]);
    let text = stdout(&output);
    assert!(text.contains("185.220.101.7: tor"), "{text}");
    assert!(text.contains("3.5.143.255: hosting"), "{text}");
    assert!(text.contains("8.8.8.8: in no list"), "{text}");
    assert!(
        text.lines()
            .any(|line| line.starts_with("hosting") && line.contains(" 1 ")),
        "{text}"
    );
    // A line that is not an address is named with its file and line, and the status says so.
    std::fs::write(sandbox.path("exit-addresses"), "185.220.101.7\nnot-an-address\n").unwrap();
    let output = sandbox.run(&["ip-lists"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("exit-addresses:2: no address or CIDR"),
        "{}",
        stderr(&output)
    );
    // A list name rules cannot match is refused at start.
    let bad =
        Sandbox::with_config(|sandbox| Config::standard(&sandbox.store).append("\n[ip_lists]\nHosting = [\"x\"]\n"));
    let output = bad.run(&["ip-lists"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("`ip_lists.Hosting`"), "{}", stderr(&output));
}
