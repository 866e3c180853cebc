//! Alarm samples across many transactions: each alarm keeps the first
//! `store.samples_per_alarm` matching events as samples, in order, however
//! many batches its matches span, and the engine stops making samples for an
//! alarm that has them all.

mod common;

use std::collections::HashMap;

use serde_json::Value;

#[test]
fn every_alarm_keeps_its_first_matches_as_samples_across_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("samples.db");
    let db = db.to_str().unwrap();
    // The Panther corpus twice, in transactions of 40 events: alarms gather
    // matches over dozens of transactions.
    let corpus = dir.path().join("twice.jsonl");
    let panther = std::fs::read_to_string(common::shared_dataset("cloudtrail-panther-tests.jsonl")).unwrap();
    std::fs::write(&corpus, format!("{panther}{panther}")).unwrap();
    let tw = common::Trailwarden::new()
        .env("TRAILWARDEN__PIPELINE__BATCH_EVENTS", "40")
        .env("TRAILWARDEN__STORE__SAMPLES_PER_ALARM", "3");
    let output = tw.ok(&["replay", "--db", db, "--format", "jsonl", corpus.to_str().unwrap()]);
    // Matches in the order the engine found them, per alarm (rule, group key).
    let mut matches: HashMap<(String, String), Vec<String>> = HashMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let found: Value = serde_json::from_str(line).unwrap();
        matches
            .entry((
                found["rule"].as_str().unwrap().to_string(),
                found["group_key"].as_str().unwrap().to_string(),
            ))
            .or_default()
            .push(found["origin"].as_str().unwrap().to_string());
    }
    let list = tw.ok(&["alarms", "list", "--db", db, "--format", "jsonl", "--limit", "10000"]);
    let alarms: Vec<Value> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // Keys are printed masked, and two keys can mask alike (AKIAI****AMPLE):
    // only alarms whose masked key is theirs alone are compared.
    let mut alike: HashMap<(String, String), usize> = HashMap::new();
    for alarm in &alarms {
        *alike
            .entry((
                alarm["rule"].as_str().unwrap().to_string(),
                alarm["group_key"].as_str().unwrap().to_string(),
            ))
            .or_default() += 1;
    }
    let mut checked = 0;
    let mut many = 0;
    for alarm in &alarms {
        let id = alarm["id"].to_string();
        let shown: Value =
            serde_json::from_slice(&tw.ok(&["alarms", "show", "--db", db, "--format", "json", &id]).stdout).unwrap();
        let key = (
            alarm["rule"].as_str().unwrap().to_string(),
            alarm["group_key"].as_str().unwrap().to_string(),
        );
        if alike[&key] > 1 {
            continue;
        }
        let found = &matches[&key];
        let samples: Vec<&str> = shown["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sample| sample["origin"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = found.iter().take(3).map(String::as_str).collect();
        assert_eq!(samples, expected, "alarm {id} {key:?}");
        checked += 1;
        // More matches than samples, in both copies of the corpus (461
        // records apart, so in different transactions).
        many += usize::from(found.len() > 3);
    }
    assert!(checked > 20, "{checked} alarms");
    assert!(many > 3, "{many} alarms with more matches than samples");
}
