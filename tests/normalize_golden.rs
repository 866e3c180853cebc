//! Golden tests of decoding and normalization, one per fixture file in
//! tests/fixtures/records (each exercises one cloud, container or quirk;
//! see its MANIFEST.md). The expected output — every normalized event with
//! its raw record, and every dead letter with origin and reason — is frozen
//! in tests/fixtures/golden/<file>.jsonl. Regenerate after an intended change
//! with `UPDATE_GOLDEN=1 cargo test --test normalize_golden`, and review the diff.

mod common;

use std::path::{Path, PathBuf};

use common::{GOLDEN, RECORDS, Trailwarden, shared_dataset, utc8};

use serde_json::{Value, json};
use trailwarden::event::event_json;
use trailwarden::event::model::{AuditEvent, CallMethod, IpKind, OutcomeResult, PrincipalKind, Provider};
use trailwarden::replay::normalize_files;
use trailwarden::rules::diag::Diagnostics;
use trailwarden::rules::operations::{OperationCatalog, load_catalog};
use trailwarden::source::file::ReadOptions;

fn catalog() -> OperationCatalog {
    let text = std::fs::read_to_string("rules/operations.yaml").expect("rules/operations.yaml");
    let mut diagnostics = Diagnostics::default();
    let catalog = load_catalog("rules/operations.yaml", &text, &mut diagnostics);
    assert!(diagnostics.is_empty(), "{diagnostics}");
    catalog
}

/// Events and dead letters of one path.
fn read(path: &str, catalog: &OperationCatalog) -> (Vec<AuditEvent>, Vec<trailwarden::event::decode::DeadLetter>) {
    let mut events = Vec::new();
    let mut dead = Vec::new();
    normalize_files(
        &[path.to_string()],
        &ReadOptions::default(),
        utc8(),
        catalog,
        &mut |event| {
            events.push(event);
            true
        },
        &mut |letter| dead.push(letter),
    )
    .expect("readable path");
    (events, dead)
}

fn fixture_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(RECORDS)
        .expect("fixtures directory")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().and_then(|name| name.to_str()) != Some("MANIFEST.md"))
        .collect();
    files.sort();
    files
}

/// Compare each path's events and dead letters with its golden file in
/// `golden_dir` (or rewrite the golden files under `UPDATE_GOLDEN`); returns
/// the differences found.
fn check_goldens(paths: &[PathBuf], golden_dir: &str, catalog: &OperationCatalog) -> Vec<String> {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for path in paths {
        let (events, dead) = read(&path.display().to_string(), catalog);
        let mut lines: Vec<String> = events
            .iter()
            .map(|event| {
                let mut value = event_json(event, catalog, true);
                // The ingest-time fallback is the file's mtime, which a checkout changes.
                if value["time_source"] == "ingest" {
                    value["time"] = json!("<ingest time>");
                }
                json!({ "event": value }).to_string()
            })
            .collect();
        lines.extend(dead.iter().map(|letter| {
            json!({ "dead_letter": { "origin": letter.origin.to_string(), "reason": letter.reason } }).to_string()
        }));
        let actual = lines.join("\n") + "\n";
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let golden = Path::new(golden_dir).join(format!("{name}.golden.jsonl"));
        if update {
            std::fs::create_dir_all(golden_dir).unwrap();
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_GOLDEN=1", golden.display()));
        if expected != actual {
            let first_difference = expected
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(expected.lines().count().min(actual.lines().count()));
            failures.push(format!(
                "{name}: differs at output line {}\n  expected: {}\n  actual:   {}",
                first_difference + 1,
                expected.lines().nth(first_difference).unwrap_or("<end>"),
                actual.lines().nth(first_difference).unwrap_or("<end>")
            ));
        }
    }
    failures
}

#[test]
fn every_fixture_matches_its_golden_output() {
    let failures = check_goldens(&fixture_files(), GOLDEN, &catalog());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn find<'a>(events: &'a [AuditEvent], action: &str) -> &'a AuditEvent {
    events
        .iter()
        .find(|event| event.action == action)
        .unwrap_or_else(|| panic!("no event with action {action}"))
}

#[test]
fn cts_success_is_judged_by_rating_not_http_code() {
    let (events, dead) = read("tests/fixtures/records/cts_failed_delete_eip.json", &catalog());
    assert!(dead.is_empty());
    let event = find(&events, "deleteEip");
    assert_eq!(event.provider, Provider::Huawei);
    assert_eq!(
        event.outcome.result,
        OutcomeResult::Failure,
        "code 200 with rating warning is a failure"
    );
    assert!(event.outcome.error_message.as_deref().unwrap_or("").contains("unbind"));
}

#[test]
fn cts_root_console_and_system_traces() {
    let catalog = catalog();
    let (events, _) = read("tests/fixtures/records/cts_console_delete_user.json", &catalog);
    let event = find(&events, "deleteUser");
    assert_eq!(event.principal.kind, PrincipalKind::Root);
    assert_eq!(event.call_method, CallMethod::Console);
    assert!(event.access_key.as_ref().unwrap().temporary, "HSTA keys are temporary");
    let (events, _) = read("tests/fixtures/records/cts_system_action_no_user.json", &catalog);
    assert_eq!(events[0].principal.kind, PrincipalKind::Service);
    assert_eq!(events[0].call_method, CallMethod::System);
    assert!(events[0].source.is_none(), "empty source_ip means no source");
}

#[test]
fn cts_variants_are_all_read() {
    let (events, dead) = read("tests/fixtures/records/cts_variants.jsonl", &catalog());
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(events.len(), 9);
    // (b) the old "2026/01/08 11:07:28 GMT+08:00" time.
    assert!(
        events
            .iter()
            .any(|event| event.time.to_rfc3339() == "2026-01-08T03:07:28+00:00")
    );
    // (g) leading zeros parsed as decimal, kept as given.
    let zeros = events
        .iter()
        .find(|event| event.source_ip_text() == Some("075.050.255.067"))
        .expect("leading-zero IP kept as text");
    assert_eq!(zeros.source.as_ref().unwrap().ip, Some("75.50.255.67".parse().unwrap()));
    // (d) assumed agency with a temporary key; (i) external user.
    assert!(
        events
            .iter()
            .any(|event| event.principal.kind == PrincipalKind::AssumedRole)
    );
    assert!(
        events
            .iter()
            .any(|event| event.principal.kind == PrincipalKind::Federated)
    );
}

#[test]
fn tencent_events_in_every_container() {
    let catalog = catalog();
    let (events, _) = read("tests/fixtures/records/tencent_api_add_user.json", &catalog);
    let event = find(&events, "AddUser");
    assert_eq!(event.provider, Provider::Tencent);
    assert_eq!(event.principal.kind, PrincipalKind::User);
    assert_eq!(event.call_method, CallMethod::Api);
    assert_eq!(
        event.raw["requestParameters"]["Name"],
        json!("crossfire"),
        "JSON inside strings is expanded"
    );
    let names: Vec<&str> = event.operations.iter().map(|op| catalog.name(*op)).collect();
    assert!(names.contains(&"iam.user.create"), "{names:?}");

    let (events, _) = read("tests/fixtures/records/tencent_console_root.json", &catalog);
    assert_eq!(events[0].principal.kind, PrincipalKind::Root);
    assert_eq!(
        events[0].outcome.result,
        OutcomeResult::Success,
        "'permission verify' is not a failure"
    );
    assert_eq!(events[0].call_method, CallMethod::Console);

    let (events, _) = read("tests/fixtures/records/tencent_failed_unauthorized.json", &catalog);
    assert_eq!(events[0].outcome.result, OutcomeResult::Failure);
    assert!(
        events[0]
            .outcome
            .error_code
            .as_deref()
            .unwrap()
            .contains("UnauthorizedOperation")
    );

    let (events, _) = read("tests/fixtures/records/tencent_lookup_events_response.json", &catalog);
    assert_eq!(events.len(), 3);
    assert!(events.iter().any(|event| event.service == "tat"));

    let (events, _) = read("tests/fixtures/records/tencent_eventbridge_cloudevent.json", &catalog);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].provider, Provider::Tencent);

    let (events, dead) = read("tests/fixtures/records/tencent_variants.jsonl", &catalog);
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(events.len(), 9);
    assert!(
        events
            .iter()
            .any(|event| { event.user_agent.as_deref().unwrap_or("").contains("cos-browser") })
    );
}

#[test]
fn cloudtrail_in_every_container() {
    let catalog = catalog();
    for (file, count) in [
        ("aws_records_file.json.gz", 5),
        ("aws_single_record.json", 1),
        ("aws_eventbridge.json", 1),
        ("aws_lookup_events.json", 2),
        ("aws_variants.jsonl", 11),
        ("aws_array.json", 3),
        ("aws_concatenated.json", 2),
    ] {
        let (events, dead) = read(&format!("{RECORDS}/{file}"), &catalog);
        assert!(dead.is_empty(), "{file}: {dead:?}");
        assert_eq!(events.len(), count, "{file}");
        assert!(events.iter().all(|event| event.provider == Provider::Aws), "{file}");
    }
    let (events, _) = read(&format!("{RECORDS}/aws_records_file.json.gz"), &catalog);
    let service = events
        .iter()
        .find(|event| event.principal.kind == PrincipalKind::Service)
        .unwrap();
    assert_eq!(service.source_ip_text(), Some("ec2.amazonaws.com"));
    assert_eq!(service.source_ip_kind().as_str(), "hostname");
    let login = find(&events, "ConsoleLogin");
    assert_eq!(login.principal.kind, PrincipalKind::Root);
    assert_eq!(login.mfa, Some(false));
    let (events, _) = read(&format!("{RECORDS}/aws_variants.jsonl"), &catalog);
    let lambda = events
        .iter()
        .find(|event| event.action.starts_with("UpdateFunctionCode"))
        .unwrap();
    assert_eq!(
        lambda.operations.iter().map(|op| catalog.name(*op)).collect::<Vec<_>>(),
        ["compute.function.code_update"]
    );
}

#[test]
fn malformed_lines_are_dead_letters_with_their_line_and_the_rest_is_read() {
    let (events, dead) = read(&format!("{RECORDS}/mixed_malformed.jsonl"), &catalog());
    let good_lines: Vec<u64> = events.iter().filter_map(|event| event.origin.line()).collect();
    let bad_lines: Vec<u64> = dead.iter().filter_map(|letter| letter.origin.line()).collect();
    assert_eq!(good_lines, [1, 2, 4, 7, 10, 12, 13, 16]);
    assert_eq!(bad_lines, [3, 5, 8, 9, 11, 14, 15]);
    // Line 12's eventTime is "not-a-date": it still normalizes, on the ingest time.
    let undated = events.iter().find(|event| event.origin.line() == Some(12)).unwrap();
    assert_eq!(undated.time_source, trailwarden::event::model::TimeSource::Ingest);
}

#[test]
fn a_truncated_gzip_keeps_its_complete_records() {
    let (events, dead) = read(&format!("{RECORDS}/truncated.json.gz"), &catalog());
    assert_eq!(events.len(), 4);
    assert!(dead.iter().any(|letter| letter.reason.contains("read error")));
}

#[test]
fn every_panther_cloudtrail_record_normalizes() {
    let path = &shared_dataset("cloudtrail-panther-tests.jsonl");
    if !Path::new(path).exists() {
        panic!("{path} is missing: the tests expect ../shared beside the checkout");
    }
    let (events, dead) = read(path, &catalog());
    assert!(
        dead.is_empty(),
        "{} records failed, first: {:?}",
        dead.len(),
        dead.first()
    );
    assert_eq!(events.len(), 461);
    let catalog = catalog();
    let value: Vec<Value> = events.iter().map(|event| event_json(event, &catalog, false)).collect();
    assert_eq!(value.len(), 461);
}

// ---------------------------------------------------------------------------
// Published samples (issue 13): records that Huawei, Tencent and third parties
// published, in ../shared/datasets/published-samples/ (h01–h09, t01–t07, with
// provenance in its README) and tests/fixtures/published/ (h10, t08, see its
// README). Each has a golden file reviewed against its raw text, and the
// fields the issue names are asserted below one by one.

const OWN_SAMPLES: &str = "tests/fixtures/published";
const PUBLISHED_GOLDEN: &str = "tests/fixtures/golden/published";

/// Every published sample file, shared ones first, in name order.
fn published_files() -> Vec<PathBuf> {
    let shared_samples = shared_dataset("published-samples");
    if !Path::new(&shared_samples).exists() {
        panic!("{shared_samples} is missing: the tests expect ../shared beside the checkout");
    }
    let mut files = Vec::new();
    for root in [shared_samples.as_str(), OWN_SAMPLES] {
        for cloud in ["huawei", "tencent"] {
            let mut found: Vec<PathBuf> = std::fs::read_dir(Path::new(root).join(cloud))
                .unwrap_or_else(|error| panic!("{root}/{cloud}: {error}"))
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
                .collect();
            found.sort();
            files.extend(found);
        }
    }
    files
}

/// The one published sample whose file name starts with `prefix` (`h05_`).
fn published(prefix: &str) -> String {
    let matches: Vec<PathBuf> = published_files()
        .into_iter()
        .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(matches.len(), 1, "{prefix}: {matches:?}");
    matches[0].display().to_string()
}

fn only_event(prefix: &str, catalog: &OperationCatalog) -> AuditEvent {
    let (mut events, dead) = read(&published(prefix), catalog);
    assert!(dead.is_empty(), "{prefix}: {dead:?}");
    assert_eq!(events.len(), 1, "{prefix}");
    events.remove(0)
}

#[test]
fn every_published_sample_matches_its_golden_output() {
    let files = published_files();
    assert_eq!(files.len(), 21, "{files:?}");
    let failures = check_goldens(&files, PUBLISHED_GOLDEN, &catalog());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Item 1: LookUpEvents items whose `CloudAuditEvent` is "" are read from their
/// summary (t05–t07), marked degraded with the reason.
#[test]
fn published_items_without_the_raw_event_are_read_from_their_summary() {
    let catalog = catalog();
    for (prefix, action, account, time) in [
        ("t05_", "StartInstances", "111111", "2022-08-25T12:58:03+00:00"),
        ("t06_", "RunInstances", "1000", "2022-08-26T06:32:51+00:00"),
        ("t07_", "TerminateInstances", "10000", "2022-08-24T08:45:48+00:00"),
    ] {
        let event = only_event(prefix, &catalog);
        assert_eq!(event.provider, Provider::Tencent, "{prefix}");
        assert_eq!(event.action, action, "{prefix}");
        assert_eq!(event.account_id.as_deref(), Some(account), "{prefix}");
        assert_eq!(event.time.to_rfc3339(), time, "{prefix}");
        assert_eq!(event.region.as_deref(), Some("ap-shanghai"), "{prefix}");
        assert_eq!(event.source_ip_text(), Some("10.10.10.10"), "{prefix}");
        assert_eq!(event.service, "cvm", "{prefix}");
        assert_eq!(event.outcome.result, OutcomeResult::Success, "{prefix}");
        let reason = event
            .degraded
            .as_deref()
            .unwrap_or_else(|| panic!("{prefix}: not degraded"));
        assert!(reason.contains("`CloudAuditEvent` is empty"), "{prefix}: {reason}");
    }
    // t07 is the same call as t04's full record: the summary gives its time.
    let detail = only_event("t04_", &catalog);
    assert_eq!(only_event("t07_", &catalog).time, detail.time);
    assert!(detail.degraded.is_none(), "a full record is not degraded");
}

/// Item 2: Tencent's own example (t01) has an unescaped `requestParameters`
/// inside `CloudAuditEvent`: the event comes from the summary fields, degraded,
/// with the parser's reason.
#[test]
fn published_unparseable_cloudaudit_event_falls_back_to_the_summary() {
    let event = only_event("t01_", &catalog());
    assert_eq!(event.action, "LookupEvents");
    assert_eq!(event.event_id, "e92a92fc259c4a9333d2a7ce64d1ef201");
    assert_eq!(event.time.to_rfc3339(), "2019-03-20T04:36:27+00:00", "UTC+8 wall time");
    assert_eq!(event.principal.kind, PrincipalKind::Root);
    assert_eq!(event.principal.name.as_deref(), Some("root"));
    assert_eq!(event.account_id.as_deref(), Some("1150691759"));
    assert_eq!(event.source_ip_text(), Some("59.37.125.124"));
    assert_eq!(event.region.as_deref(), Some("ap-guangzhou"));
    assert_eq!(event.resource.resource_type.as_deref(), Some("cloudaudit"));
    assert_eq!(event.access_key_id(), Some("XXX"));
    let reason = event.degraded.as_deref().expect("degraded");
    assert!(
        reason.contains("not valid JSON") && reason.contains("line 1 column 470"),
        "{reason}"
    );
    // The broken string is kept in `raw` for whoever needs to look.
    assert!(
        event.raw["CloudAuditEvent"]
            .as_str()
            .unwrap()
            .starts_with("{\"actionType\"")
    );
}

/// Item 3: the summary's resource type is `Resources.ResourceType`, not the
/// display label `ResourceTypeCn`, and its names are `Resources.ResourceName`.
#[test]
fn published_summary_resources_come_from_resources_not_the_label() {
    let catalog = catalog();
    let event = only_event("t05_", &catalog);
    assert_eq!(event.raw["ResourceTypeCn"], json!("云服务器"));
    assert_eq!(event.resource.resource_type.as_deref(), Some("cvm"));
    assert_eq!(event.resource.names, ["instance/ins-xxxx"]);
    let event = only_event("t01_", &catalog);
    assert_eq!(event.resource.resource_type.as_deref(), Some("cloudaudit"));
    assert!(event.resource.names.is_empty(), "ResourceName is empty");
}

/// Item 4: CTS error code and message come from `response`; the rating
/// `warning` is not a code (h05, two traces).
#[test]
fn published_cts_error_code_and_message_come_from_the_response() {
    let (events, dead) = read(&published("h05_"), &catalog());
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(events.len(), 2);
    for event in &events {
        assert_eq!(event.action, "deleteEip");
        assert_eq!(event.outcome.result, OutcomeResult::Failure);
        assert_eq!(event.outcome.error_code.as_deref(), Some("VPC.0514"));
        assert_eq!(event.outcome.error_message.as_deref(), Some("Update port fail."));
        assert_eq!(event.resource.resource_type.as_deref(), Some("eip"));
    }
    // Successful ECS job responses carry `error_code: null`: still success.
    let created = only_event("h03_", &catalog());
    assert_eq!(created.outcome.result, OutcomeResult::Success);
    assert_eq!(created.outcome.error_code, None);
}

/// Item 5: a Tencent session key (68 characters, with a session token) is
/// temporary (t03); so is a console session's key with a token (t02).
#[test]
fn published_tencent_session_keys_are_temporary() {
    let catalog = catalog();
    for prefix in ["t03_", "t03e_"] {
        let event = only_event(prefix, &catalog);
        let key = event.access_key.as_ref().expect("key");
        assert_eq!(key.id.len(), 68, "{prefix}");
        assert!(key.temporary, "{prefix}: an STS key is temporary");
        assert_eq!(event.mfa, Some(true), "{prefix}: mfa 1");
        assert_eq!(event.principal.kind, PrincipalKind::Root, "{prefix}");
    }
    let event = only_event("t02_", &catalog);
    assert!(
        event.access_key.as_ref().expect("key").temporary,
        "token in sessionContext"
    );
    assert_eq!(event.mfa, Some(false), "mfa 0");
}

/// Item 6: a CTS console login with `login_protect.status` "off" is a login
/// without MFA (h06), so the console-login-without-MFA rules can fire.
#[test]
fn published_cts_login_protect_off_is_no_mfa() {
    let catalog = catalog();
    let event = only_event("h06_", &catalog);
    assert_eq!(event.action, "login");
    assert_eq!(event.call_method, CallMethod::Console);
    assert_eq!(
        event.outcome.result,
        OutcomeResult::Success,
        "code 302 with rating normal"
    );
    assert_eq!(event.mfa, Some(false));
    assert_eq!(event.raw["message"]["login"]["login_protect"]["status"], json!("off"));
    assert_eq!(event.source_ip_text(), Some("62.156.151.4"));
    let names: Vec<&str> = event.operations.iter().map(|op| catalog.name(*op)).collect();
    assert_eq!(names, ["iam.login.console"]);
    // A trace without the login message says nothing about MFA.
    assert_eq!(only_event("h07_", &catalog).mfa, None);
}

/// Item 7: `type: CAMUser` wins over `principalId == accountId` (t04).
#[test]
fn published_explicit_cam_user_type_wins_over_the_id_guess() {
    let event = only_event("t04_", &catalog());
    assert_eq!(
        event.raw["userIdentity"]["principalId"],
        event.raw["userIdentity"]["accountId"]
    );
    assert_eq!(event.principal.kind, PrincipalKind::User);
    assert_eq!(event.principal.name.as_deref(), Some("xxxxx"));
    assert_eq!(event.access_key, None, "secretId is empty");
    assert_eq!(event.mfa, Some(true));
    assert_eq!(event.time.to_rfc3339(), "2022-08-24T08:45:48+00:00");
}

/// Item 8: `|`-joined resource names are one name per resource (t04, t06, t07).
#[test]
fn published_pipe_joined_resource_names_are_split() {
    let catalog = catalog();
    let event = only_event("t04_", &catalog);
    assert_eq!(
        event.resource.names[..3],
        ["instance/ins-xxxx1", "instance/ins-xxxxx2", "instance/ins-xxxx3"]
    );
    assert!(event.resource.names.iter().all(|name| !name.contains('|')));
    assert_eq!(
        only_event("t06_", &catalog).resource.names,
        [
            "instance/*",
            "image/img-xxxx1",
            "sg/sg-xxx",
            "sg/sg-xxxx",
            "subnet/subnet-xxxx",
            "systemdisk/*",
            "vpc/vpc-xxxx"
        ]
    );
    assert_eq!(
        only_event("t07_", &catalog).resource.names,
        ["instance/ins-xxxx1", "instance/ins-xxxx2", "instance/ins-xxx3"]
    );
}

/// Item 9: a console call whose `sourceIPAddress` is in Tencent's platform
/// range takes the caller's address from `sessionContext.userIp` and keeps
/// the platform address beside it (t02, t02e).
#[test]
fn published_console_call_source_is_the_callers_address() {
    let catalog = catalog();
    for prefix in ["t02_", "t02e_"] {
        let event = only_event(prefix, &catalog);
        assert_eq!(event.raw["sourceIPAddress"], json!("9.83.55.32"), "{prefix}");
        assert_eq!(event.source_ip_text(), Some("163.177.68.30"), "{prefix}");
        assert_eq!(event.source_ip_kind(), IpKind::Public, "{prefix}");
        let platform = event.platform_source.as_ref().expect("platform address kept");
        assert_eq!(
            (platform.text.as_str(), platform.kind),
            ("9.83.55.32", IpKind::Platform)
        );
        let value = event_json(&event, &catalog, false);
        assert_eq!(value["platform_source_ip"], json!("9.83.55.32"));
    }
    // Where both agree nothing moves (t03), and no platform address is invented.
    let event = only_event("t03_", &catalog);
    assert_eq!(event.source_ip_text(), Some("113.108.77.63"));
    assert!(event.platform_source.is_none());
    assert!(event_json(&event, &catalog, false).get("platform_source_ip").is_none());
}

/// Item 10: a broken pretty-printed document is one dead letter naming the
/// first error's line and column (t08: Tencent's documentation prints the
/// LookUpEvents output with an unescaped `CloudAuditEvent`; t01e: one line).
#[test]
fn a_broken_published_document_is_one_dead_letter_with_its_location() {
    let catalog = catalog();
    let path = published("t08_");
    let (events, dead) = read(&path, &catalog);
    assert!(events.is_empty());
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].origin.line(), Some(1));
    assert_eq!(dead[0].reason, "invalid JSON at line 5 column 39: expected `,` or `}`");
    let (events, dead) = read(&published("t01e_"), &catalog);
    assert!(events.is_empty());
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].reason.contains("line 1 column 470"), "{}", dead[0].reason);
}

/// Item 11: a CTS system action by `<account>/op_service` is the cloud acting
/// for itself (h01), not a user.
#[test]
fn published_op_service_system_action_is_a_service() {
    let event = only_event("h01_", &catalog());
    assert_eq!(event.call_method, CallMethod::System);
    assert_eq!(event.principal.kind, PrincipalKind::Service);
    assert_eq!(
        event.principal.name.as_deref(),
        Some("aaa/op_service"),
        "the name as given"
    );
    assert_eq!(event.account_id.as_deref(), Some("1f9b9ba51f6b4061bd5c1736b28469f8"));
    assert!(event.source.is_none(), "empty source_ip");
    assert_eq!(event.time.to_rfc3339(), "2016-12-08T03:07:28+00:00");
}

/// The other published traces: what each raw text says.
#[test]
fn published_cts_traces_give_the_fields_their_text_says() {
    let catalog = catalog();
    let h02 = only_event("h02_", &catalog);
    assert_eq!(
        (h02.principal.kind, h02.call_method, h02.source_ip_kind()),
        (PrincipalKind::Root, CallMethod::Console, IpKind::Private),
        "user name equal to the domain name, console, 10.146.230.124"
    );
    for prefix in ["h03_", "h04_"] {
        let event = only_event(prefix, &catalog);
        // The record says principal_is_root_user "true" for IAMUserA: taken at its word.
        assert_eq!(event.principal.kind, PrincipalKind::Root, "{prefix}");
        assert!(event.access_key.as_ref().unwrap().temporary, "{prefix}: HSTA key");
        assert_eq!(event.read_only, Some(false), "{prefix}");
    }
    assert_eq!(
        only_event("h04_", &catalog).request_id.as_deref(),
        Some("defe9cf7b5ca4566860edbebb181e17a")
    );
    assert_eq!(only_event("h03_", &catalog).request_id, None, "\"null\" is no id");
    let h07 = only_event("h07_", &catalog);
    assert_eq!(
        (h07.action.as_str(), h07.service.as_str()),
        ("createFunction", "functiongraph")
    );
    let h08 = only_event("h08_", &catalog);
    assert_eq!(h08.time.to_rfc3339(), "2018-06-26T06:54:07+00:00", "epoch seconds");
    let h09 = only_event("h09_", &catalog);
    assert_eq!(
        h09.account_id.as_deref(),
        Some("dc6be62ba1bc4d56a87facec4be0e416"),
        "user as a JSON string"
    );
    assert_eq!(
        h09.user_agent.as_deref(),
        Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/147.0.0.0")
    );
    let h10 = only_event("h10_", &catalog);
    assert_eq!(h10.principal.kind, PrincipalKind::Unknown, "user is text, not JSON");
    assert_eq!(h10.time.to_rfc3339(), "2018-08-20T07:09:17.969+00:00");
}

/// Item 6 end to end: with `login_protect` read, the published CTS login
/// without a second factor raises the console-login-without-MFA rule.
#[test]
fn published_cts_login_without_login_protection_raises_the_mfa_rule() {
    let output = Trailwarden::new()
        .api_on_any_port()
        .run(&["replay", "--format", "jsonl", &published("h06_")]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rules: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| line["rule"].as_str().map(str::to_string))
        .collect();
    assert!(
        rules.iter().any(|rule| rule == "console-login-without-mfa"),
        "{rules:?}"
    );
}
