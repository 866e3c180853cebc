//! The event store end to end through the binary: every event a replay or
//! the daemon evaluates is kept, and `trailwarden events` finds exactly the
//! events `normalize` says match each filter, a page at a time, keys masked;
//! `--alarm` scopes a search to an alarm; the daemon keeps each event once
//! across restarts; `events.enabled = false` keeps none.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

/// A generated three-cloud corpus in `corpus.jsonl` and its normalized events.
fn corpus(sandbox: &Sandbox) -> (String, Vec<Value>) {
    let path = sandbox.path("corpus.jsonl");
    let path = path.to_str().unwrap().to_string();
    sandbox.ok(&[
        "generate",
        "--events",
        "3000",
        "--distinct-keys",
        "20",
        "--distinct-ips",
        "30",
        "--out",
        &path,
    ]);
    let normalized = sandbox.jsonl(&["normalize", &path]);
    assert_eq!(normalized.len(), 3000);
    (path, normalized)
}

/// Every page of `events` with `args`, following the cursors it prints.
fn all_pages(sandbox: &Sandbox, args: &[&str], limit: usize) -> (Vec<Value>, usize) {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let limit = limit.to_string();
        let mut command = vec!["events", "--format", "jsonl", "--limit", &limit];
        command.extend_from_slice(args);
        if let Some(cursor) = &cursor {
            command.extend_from_slice(&["--cursor", cursor]);
        }
        let output = sandbox.ok(&command);
        pages += 1;
        events.extend(
            stdout(&output)
                .lines()
                .map(|line| serde_json::from_str::<Value>(line).unwrap()),
        );
        match stderr(&output)
            .lines()
            .find_map(|line| line.strip_prefix("more: --cursor "))
        {
            Some(next) => cursor = Some(next.trim().to_string()),
            None => return (events, pages),
        }
    }
}

fn ids(events: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = events
        .iter()
        .map(|event| event["event_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn expected(normalized: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    ids(&normalized
        .iter()
        .filter(|event| keep(event))
        .cloned()
        .collect::<Vec<_>>())
}

#[test]
fn a_replay_keeps_every_event_and_each_filter_finds_exactly_its_own() {
    let sandbox = Sandbox::with_config(|sandbox| Config::standard(&sandbox.store));
    let (path, normalized) = corpus(&sandbox);
    sandbox.ok(&["replay", "--format", "jsonl", "--db", sandbox.store_arg(), &path]);
    let (everything, _) = all_pages(&sandbox, &[], 1000);
    assert_eq!(ids(&everything), expected(&normalized, |_| true));
    // Newest first.
    let times: Vec<&str> = everything.iter().map(|event| event["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);

    // The busiest key, page by page.
    let mut by_key: BTreeMap<&str, usize> = BTreeMap::new();
    for event in &normalized {
        if let Some(key) = event["access_key"]["id"].as_str() {
            *by_key.entry(key).or_default() += 1;
        }
    }
    let (key, count) = by_key.iter().max_by_key(|(_, count)| **count).unwrap();
    assert!(*count > 20, "{count}");
    let (found, pages) = all_pages(&sandbox, &["--key", key], 7);
    assert_eq!(pages, count.div_ceil(7));
    assert_eq!(
        ids(&found),
        expected(&normalized, |event| event["access_key"]["id"] == *key)
    );
    // Keys leave masked, in the fields and in the record.
    for event in &found {
        let text = event.to_string();
        assert!(!text.contains(key), "full key in {text}");
        assert!(event["access_key_id"].as_str().unwrap().contains("****"));
        assert!(event["raw"].is_object());
    }

    // An address's /24, failures only, of one cloud.
    let ip = normalized
        .iter()
        .filter_map(|event| event["source_ip"].as_str())
        .find(|ip| ip.starts_with("203.0.113.") || ip.starts_with("116.228.71."))
        .unwrap();
    let prefix = &ip[..ip.rfind('.').unwrap() + 1];
    let network = format!("{prefix}0/24");
    let (found, _) = all_pages(
        &sandbox,
        &["--ip", &network, "--outcome", "failure", "--cloud", "tencent"],
        1000,
    );
    let wanted = expected(&normalized, |event| {
        event["source_ip"].as_str().is_some_and(|ip| ip.starts_with(prefix))
            && event["outcome"]["result"] == "failure"
            && event["provider"] == "tencent"
    });
    assert_eq!(ids(&found), wanted);

    // An action and a principal, in any letter case; a request id.
    let sample = normalized
        .iter()
        .find(|event| event["principal"]["name"].is_string() && event["request_id"].is_string())
        .unwrap();
    let action = sample["action"].as_str().unwrap();
    let principal = sample["principal"]["name"].as_str().unwrap();
    let (found, _) = all_pages(
        &sandbox,
        &[
            "--action",
            &action.to_uppercase(),
            "--principal",
            &principal.to_lowercase(),
        ],
        1000,
    );
    let wanted = expected(&normalized, |event| {
        event["action"].as_str().unwrap().eq_ignore_ascii_case(action)
            && ["name", "id", "arn"].iter().any(|field| {
                event["principal"][field]
                    .as_str()
                    .is_some_and(|value| value.eq_ignore_ascii_case(principal))
            })
    });
    assert!(!wanted.is_empty());
    assert_eq!(ids(&found), wanted);
    let (found, _) = all_pages(&sandbox, &["--id", sample["request_id"].as_str().unwrap()], 10);
    assert!(ids(&found).contains(&sample["event_id"].as_str().unwrap().to_string()));

    // A time range.
    let (found, _) = all_pages(
        &sandbox,
        &["--since", "2026-03-03T00:00:00Z", "--until", "2026-03-04T00:00:00Z"],
        1000,
    );
    let wanted = expected(&normalized, |event| {
        let time = event["time"].as_str().unwrap();
        ("2026-03-03T00:00:00".."2026-03-04T00:00:00").contains(&time)
    });
    assert!(!wanted.is_empty());
    assert_eq!(ids(&found), wanted);

    // An alarm's events: its key from its first to its last match.
    let alarms = sandbox.json(&["alarms", "list", "--format", "json", "--limit", "1000"]);
    let alarm = alarms
        .as_array()
        .unwrap()
        .iter()
        .filter(|alarm| alarm["access_key_id"].is_string())
        .max_by_key(|alarm| alarm["count"].as_u64())
        .unwrap();
    let (found, _) = all_pages(&sandbox, &["--alarm", &alarm["id"].to_string()], 1000);
    assert!(found.len() as u64 >= alarm["count"].as_u64().unwrap().min(1));
    for event in &found {
        assert_eq!(event["access_key_id"], alarm["access_key_id"]);
        let time = event["time"].as_str().unwrap();
        assert!(time >= alarm["first_seen"].as_str().unwrap() && time <= alarm["last_seen"].as_str().unwrap());
    }

    // Mistakes are named.
    let output = sandbox.run(&["events", "--cursor", "nonsense"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("bad cursor"), "{}", stderr(&output));
    let output = sandbox.run(&["events", "--alarm", "987654"]);
    assert!(
        stderr(&output).contains("alarm 987654 not found"),
        "{}",
        stderr(&output)
    );
    let table = sandbox.stdout(&["events", "--key", key, "--limit", "3"]);
    assert!(table.starts_with("TIME"), "{table}");
    assert!(table.contains("3 events;"), "{table}");
}

#[test]
fn the_daemon_keeps_each_event_once_across_restarts_and_none_when_off() {
    let sandbox = Sandbox::with_config(|sandbox| {
        std::fs::create_dir_all(sandbox.path("in")).unwrap();
        Config::standard(&sandbox.store).files(&[&sandbox.path("in")])
    });
    let path = sandbox.path("in/a.jsonl");
    sandbox.ok(&["generate", "--events", "500", "--out", path.to_str().unwrap()]);
    sandbox.ok(&["run", "--once"]);
    let (first, _) = all_pages(&sandbox, &[], 1000);
    assert_eq!(first.len(), 500);
    // A second run reads nothing new (checkpoints) and keeps nothing twice.
    sandbox.ok(&["run", "--once"]);
    let (second, _) = all_pages(&sandbox, &[], 1000);
    assert_eq!(ids(&second), ids(&first));

    let off = Sandbox::with_config(|sandbox| {
        std::fs::create_dir_all(sandbox.path("in")).unwrap();
        Config::standard(&sandbox.store)
            .files(&[&sandbox.path("in")])
            .set("events", "enabled", false)
    });
    std::fs::copy(&path, off.path("in/a.jsonl")).unwrap();
    off.ok(&["run", "--once"]);
    let (none, _) = all_pages(&off, &[], 1000);
    assert!(none.is_empty());
    assert!(!off.jsonl(&["alarms", "list", "--format", "jsonl"]).is_empty());
}
