//! Golden tests of decoding and normalization, one per fixture file in
//! tests/fixtures/records (each exercises one cloud, container or quirk;
//! see its MANIFEST.md). The expected output — every normalized event with
//! its raw record, and every dead letter with origin and reason — is frozen
//! in tests/fixtures/golden/<file>.jsonl. Regenerate after an intended change
//! with `UPDATE_GOLDEN=1 cargo test --test normalize_golden`, and review the diff.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use trailwarden::app::normalize_files;
use trailwarden::event::event_json;
use trailwarden::event::model::{AuditEvent, CallMethod, OutcomeResult, PrincipalKind, Provider};
use trailwarden::rules::diag::Diagnostics;
use trailwarden::rules::operations::{OperationCatalog, load_catalog};
use trailwarden::source::file::ReadOptions;

const RECORDS: &str = "tests/fixtures/records";
const GOLDEN: &str = "tests/fixtures/golden";

fn catalog() -> OperationCatalog {
    let text = std::fs::read_to_string("rules/operations.yaml").expect("rules/operations.yaml");
    let mut diagnostics = Diagnostics::default();
    let catalog = load_catalog("rules/operations.yaml", &text, &mut diagnostics);
    assert!(diagnostics.is_empty(), "{diagnostics}");
    catalog
}

fn utc8() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).unwrap()
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

#[test]
fn every_fixture_matches_its_golden_output() {
    let catalog = catalog();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for path in fixture_files() {
        let (events, dead) = read(&path.display().to_string(), &catalog);
        let mut lines: Vec<String> = events
            .iter()
            .map(|event| {
                let mut value = event_json(event, &catalog, true);
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
        let golden = Path::new(GOLDEN).join(format!("{name}.golden.jsonl"));
        if update {
            std::fs::create_dir_all(GOLDEN).unwrap();
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
    let path = "../shared/datasets/cloudtrail-panther-tests.jsonl";
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
