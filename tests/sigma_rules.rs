//! Sigma rules as an operator uses them: a directory in `rules.sigma_dirs`,
//! listed and validated by the CLI, raising alarms in a replay, refused with
//! their place when they cannot be honoured, and hot-reloaded by the daemon.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(20);

const CREATE_KEY: &str = "title: Access key created by an IAM user
id: 0c6e52a4-7a55-4b7e-9d0e-3f1d2a6b8c01
status: experimental
description: A user created an access key.
references:
    - https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateAccessKey.html
tags:
    - attack.persistence
    - attack.t1098.001
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: iam.amazonaws.com
        eventName: CreateAccessKey
    filter_service:
        userIdentity.type: AWSService
    condition: selection and not filter_service
falsepositives:
    - Key rotation
level: high
tests:
    - name: a user creates a key
      expect: match
      events:
          - {eventVersion: '1.08', eventID: k-1, eventTime: '2026-03-02T10:00:00Z', eventSource: iam.amazonaws.com, eventName: CreateAccessKey, awsRegion: us-east-1, userIdentity: {type: IAMUser, userName: alice}}
    - name: the service rotating a key is not flagged
      expect: no_match
      events:
          - {eventVersion: '1.08', eventID: k-2, eventTime: '2026-03-02T10:00:00Z', eventSource: iam.amazonaws.com, eventName: CreateAccessKey, awsRegion: us-east-1, userIdentity: {type: AWSService}}
";

fn config(dir: &Path, sigma: &Path, watched: Option<&Path>) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let mut config = Config::standard(&dir.join("store.db")).set("rules", "sigma_dirs", &[sigma][..]);
    if let Some(watched) = watched {
        config = config
            .files(&[watched])
            .set("source.files", "poll_interval", "200ms")
            .set("source.files", "settle", "0s")
            .set("rules", "watch", true)
            .set("pipeline", "max_hold", "100ms")
            .set("log", "level", "info")
            .unset("api", "bind");
    }
    config.write(&path);
    path
}

fn alarms_of(db: &Path, rule: &str) -> Vec<Value> {
    let output = Trailwarden::new().run(&[
        "alarms",
        "list",
        "--db",
        db.to_str().unwrap(),
        "--rule",
        rule,
        "--format",
        "json",
    ]);
    serde_json::from_slice(&output.stdout).unwrap_or_default()
}

/// Rule `id` as `rules list --format jsonl` shows it.
fn listed_rule(cli: &Trailwarden, id: &str) -> Value {
    let listed = cli.ok(&["rules", "list", "--format", "jsonl"]);
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|rule| rule["id"] == id)
        .unwrap_or_else(|| panic!("rule {id} is not listed"))
}

#[test]
fn a_sigma_rule_is_listed_and_raises_alarms_like_a_native_one() {
    let dir = tempfile::tempdir().unwrap();
    let sigma = dir.path().join("sigma");
    std::fs::create_dir(&sigma).unwrap();
    std::fs::write(sigma.join("create_key.yml"), CREATE_KEY).unwrap();
    let config = config(dir.path(), &sigma, None);
    let cli = Trailwarden::new().config(&config);

    let rule = listed_rule(&cli, "0c6e52a4-7a55-4b7e-9d0e-3f1d2a6b8c01");
    assert_eq!(rule["level"], "high");
    assert_eq!(rule["mitre"], serde_json::json!(["T1098.001"]));
    assert_eq!(rule["sigma"]["status"], "experimental");
    assert_eq!(rule["sigma"]["logsource"], "aws/cloudtrail");
    assert_eq!(rule["false_positives"], "Key rotation");
    assert_eq!(rule["clouds"], serde_json::json!(["aws"]));

    // Its embedded tests run with `rules test`, and a failing one fails `rules validate`.
    let tested = cli.ok(&["rules", "test"]);
    let report = String::from_utf8_lossy(&tested.stdout);
    assert!(report.contains("0c6e52a4-7a55-4b7e-9d0e-3f1d2a6b8c01"), "{report}");
    std::fs::write(
        sigma.join("create_key.yml"),
        CREATE_KEY.replace("expect: no_match", "expect: match"),
    )
    .unwrap();
    let failing = cli.run(&["rules", "validate"]);
    assert!(!failing.status.success());
    let problems = String::from_utf8_lossy(&failing.stderr).to_string() + &String::from_utf8_lossy(&failing.stdout);
    assert!(problems.contains("the service rotating a key"), "{problems}");
    std::fs::write(sigma.join("create_key.yml"), CREATE_KEY).unwrap();

    let db = dir.path().join("alarms.db");
    cli.ok(&[
        "replay",
        "--db",
        db.to_str().unwrap(),
        &format!("{RECORDS}/aws_records_file.json.gz"),
    ]);
    let alarms = alarms_of(&db, "0c6e52a4-7a55-4b7e-9d0e-3f1d2a6b8c01");
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["level"], "high");
    assert_eq!(alarms[0]["status"], "unprocessed");
}

#[test]
fn a_sigma_rule_that_cannot_be_honoured_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let sigma = dir.path().join("sigma");
    std::fs::create_dir(&sigma).unwrap();
    std::fs::write(
        sigma.join("bad.yml"),
        CREATE_KEY.replace(
            "        eventName: CreateAccessKey",
            "        eventName|sounds_like: CreateAccessKey",
        ),
    )
    .unwrap();
    let config = config(dir.path(), &sigma, None);
    let output = Trailwarden::new().config(&config).run(&["rules", "validate"]);
    assert!(!output.status.success());
    let errors = String::from_utf8_lossy(&output.stderr).to_string() + &String::from_utf8_lossy(&output.stdout);
    assert!(errors.contains("bad.yml:16:9"), "{errors}");
    assert!(errors.contains("sounds_like"), "{errors}");
    assert!(
        errors.contains("1 problem"),
        "one error, not one per use of the search: {errors}"
    );
}

#[test]
fn the_daemon_picks_up_a_new_sigma_rule_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sigma = dir.path().join("sigma");
    std::fs::create_dir(&sigma).unwrap();
    let watched = dir.path().join("incoming");
    std::fs::create_dir(&watched).unwrap();
    let config = config(dir.path(), &sigma, Some(&watched));
    let log = dir.path().join("daemon.log");
    let mut child = Trailwarden::new()
        .config(&config)
        .start(&["run"], Log::File(log.clone()));
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("the rules are watched", PATIENCE, || {
        log_text().contains("watching the rules for changes")
    });

    std::fs::write(sigma.join("create_key.yml"), CREATE_KEY).unwrap();
    wait_until("the new Sigma rule is loaded", PATIENCE, || {
        log_text().contains("rules reloaded")
    });
    std::fs::copy(
        format!("{RECORDS}/aws_records_file.json.gz"),
        watched.join("one.json.gz"),
    )
    .unwrap();
    let db = dir.path().join("store.db");
    wait_until("an alarm of the Sigma rule", PATIENCE, || {
        !alarms_of(&db, "0c6e52a4-7a55-4b7e-9d0e-3f1d2a6b8c01").is_empty()
    });
    assert!(child.terminate());
    child.wait();
}

#[test]
fn a_directory_of_cloudtrail_rules_lifted_to_every_cloud_fires_on_tencent_actions() {
    let dir = tempfile::tempdir().unwrap();
    let sigma = dir.path().join("sigma");
    std::fs::create_dir(&sigma).unwrap();
    let create_user = "title: IAM user created
id: 0c6e52a4-7a55-4b7e-9d0e-3f1d2a6b8c02
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: iam.amazonaws.com
        eventName: CreateUser
    condition: selection
level: medium
";
    std::fs::write(sigma.join("create_user.yml"), create_user).unwrap();
    let config = dir.path().join("config.toml");
    Config::standard(&dir.path().join("store.db"))
        .set("rules", "sigma_dirs", &[sigma.as_path()][..])
        .set("rules", "sigma_cross_cloud_dirs", &[sigma.as_path()][..])
        .write(&config);
    let cli = Trailwarden::new().config(&config);
    let rule = listed_rule(&cli, "0c6e52a4-7a55-4b7e-9d0e-3f1d2a6b8c02");
    assert_eq!(rule["sigma"]["cross_cloud"], true);
    assert!(
        rule["clouds"]
            .as_array()
            .is_some_and(|clouds| clouds.contains(&Value::from("tencent")))
    );
    let db = dir.path().join("alarms.db");
    cli.ok(&[
        "replay",
        "--db",
        db.to_str().unwrap(),
        &format!("{RECORDS}/tencent_api_add_user.json"),
    ]);
    let alarms = alarms_of(&db, "0c6e52a4-7a55-4b7e-9d0e-3f1d2a6b8c02");
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["provider"], "tencent");
}
