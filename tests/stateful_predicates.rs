//! The stateful predicates the shipped pack does not use (`first_seen`,
//! `distinct`), compiled from YAML and evaluated through the engine.

use std::sync::Arc;

use serde_json::json;
use trailwarden::event::decode::{Decoded, decode_chunk};
use trailwarden::event::model::AuditEvent;
use trailwarden::event::normalize::{NormalizeContext, normalize};
use trailwarden::event::origin::{Origin, Position};
use trailwarden::rules::diag::Diagnostics;
use trailwarden::rules::load::compile_sources;
use trailwarden::rules::operations::load_catalog;
use trailwarden::rules::state::{EngineState, StateLimits};
use trailwarden::rules::{EvalScratch, RuleOptions, RuleSet};

fn rule_set(yaml: &str) -> RuleSet {
    let mut diagnostics = Diagnostics::default();
    let catalog_text = std::fs::read_to_string("rules/operations.yaml").unwrap();
    let catalog = load_catalog("operations.yaml", &catalog_text, &mut diagnostics);
    let sources = vec![(Arc::from("test.yaml"), yaml.to_string())];
    let set = compile_sources(&sources, &[], &[], catalog, &RuleOptions::default(), &mut diagnostics);
    assert!(diagnostics.is_empty(), "{diagnostics}");
    set.unwrap()
}

fn event(seconds: i64, key: &str, ip: &str, region: &str) -> AuditEvent {
    let record = json!({
        "eventVersion": "1.09", "eventSource": "ec2.amazonaws.com", "eventName": "DescribeInstances",
        "eventTime": chrono::DateTime::from_timestamp(1_772_409_600 + seconds, 0).unwrap().to_rfc3339(),
        "awsRegion": region, "sourceIPAddress": ip, "eventID": format!("e{seconds}"),
        "userIdentity": {"type": "IAMUser", "principalId": "AIDA1", "accountId": "123456789012", "accessKeyId": key, "userName": "u"},
    });
    let mut decoded = Decoded::default();
    decode_chunk(
        record.to_string().as_bytes(),
        &Origin::new(Arc::from("t"), Position::Line(1)),
        &mut decoded,
    );
    let candidate = decoded.candidates.pop().unwrap();
    normalize(candidate, &NormalizeContext::new(chrono::Utc::now())).unwrap()
}

fn run(set: &RuleSet, events: Vec<AuditEvent>) -> Vec<bool> {
    let mut state = EngineState::new(StateLimits::default());
    let mut scratch = EvalScratch::default();
    let mut matches = Vec::new();
    events
        .into_iter()
        .map(|mut event| {
            matches.clear();
            set.evaluate_with_state(&mut event, &mut state, &mut scratch, &mut matches);
            !matches.is_empty()
        })
        .collect()
}

const HEAD: &str =
    "rules:\n  - id: r\n    title: T\n    level: low\n    description: d\n    match: {action: DescribeInstances}\n";

#[test]
fn first_seen_fires_once_per_tuple() {
    let set = rule_set(&format!(
        "{HEAD}    state:\n      first_seen: [access_key.id, source_ip]\n"
    ));
    let hits = run(
        &set,
        vec![
            event(0, "AKIA1", "203.0.113.1", "us-east-1"),
            event(60, "AKIA1", "203.0.113.1", "us-east-1"),
            event(120, "AKIA1", "198.51.100.7", "us-east-1"),
            event(180, "AKIA2", "203.0.113.1", "us-east-1"),
            event(240, "AKIA1", "198.51.100.7", "eu-west-1"),
        ],
    );
    assert_eq!(hits, [true, false, true, true, false]);
}

#[test]
fn distinct_counts_values_per_group_within_the_window() {
    let set = rule_set(&format!(
        "{HEAD}    state:\n      distinct: {{field: region, window: 1h, by: [access_key.id], gte: 3}}\n"
    ));
    let hits = run(
        &set,
        vec![
            event(0, "AKIA1", "203.0.113.1", "us-east-1"),
            event(60, "AKIA1", "203.0.113.1", "us-east-1"),
            event(120, "AKIA1", "203.0.113.1", "eu-west-1"),
            event(180, "AKIA2", "203.0.113.1", "ap-south-1"),
            event(240, "AKIA1", "203.0.113.1", "ap-south-1"),
            // Two hours later the earlier regions have left the window.
            event(7440, "AKIA1", "203.0.113.1", "sa-east-1"),
        ],
    );
    assert_eq!(hits, [false, false, false, false, true, false]);
}

#[test]
fn stateful_rules_never_match_without_state() {
    let set = rule_set(&format!("{HEAD}    state:\n      first_seen: [access_key.id]\n"));
    let mut scratch = EvalScratch::default();
    let mut matches = Vec::new();
    let mut event = event(0, "AKIA1", "203.0.113.1", "us-east-1");
    set.evaluate(&mut event, &mut scratch, &mut matches);
    assert!(matches.is_empty());
}

/// `{key_idle}` says how long the key was unused before the event and
/// whether that last use came from the key inventory or an event.
#[test]
fn key_idle_in_an_output_names_where_the_last_use_came_from() {
    use trailwarden::rules::state::{KeySeen, state_key};
    let set = rule_set(&format!("{HEAD}    output: \"{{key_idle}}\"\n"));
    const DAY: i64 = 86_400;
    let mut state = EngineState::new(StateLimits::default());
    let mut scratch = EvalScratch::default();
    let mut output = |state: &mut EngineState, seconds: i64, key: &str| {
        let mut matches = Vec::new();
        set.evaluate_with_state(
            &mut event(seconds, key, "203.0.113.1", "us-east-1"),
            state,
            &mut scratch,
            &mut matches,
        );
        matches.pop().map(|found| found.output).unwrap_or_default()
    };
    assert_eq!(output(&mut state, 0, "AKIA1"), "first seen by trailwarden");
    assert_eq!(
        output(&mut state, DAY, "AKIA1"),
        "idle 1 day (last seen by trailwarden)"
    );
    // The inventory says AKIA2 was last used 46 days before the first event.
    state.keys.put(
        state_key(&["aws", "AKIA2"]),
        KeySeen {
            first_ms: (1_772_409_600 - 400 * DAY) * 1000,
            last_ms: (1_772_409_600 - 46 * DAY) * 1000,
            from_inventory: true,
        },
        0,
    );
    assert_eq!(output(&mut state, 0, "AKIA2"), "idle 46 days (from the key inventory)");
    assert_eq!(
        output(&mut state, 31 * DAY, "AKIA2"),
        "idle 31 days (last seen by trailwarden)",
        "an event trailwarden saw replaces the inventory's last use"
    );
}
