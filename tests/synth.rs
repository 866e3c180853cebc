//! Tests of the synthetic corpus generator (`trailwarden::synth`): it is
//! deterministic, every record it writes normalizes, records are about the
//! size of real ones, ordinary traffic raises nothing at medium or high with
//! the shipped rule pack, every planted scenario raises the rule it targets,
//! and the example directory reads back in full.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Duration, TimeZone, Timelike, Utc};
use common::utc8;
use serde_json::Value;
use trailwarden::event::decode::{Decoded, decode_chunk};
use trailwarden::event::model::{AuditEvent, CallMethod, OutcomeResult, Provider};
use trailwarden::event::normalize::{NormalizeContext, normalize};
use trailwarden::event::origin::{Origin, Position};
use trailwarden::replay::normalize_files;
use trailwarden::rules::state::{EngineState, StateLimits};
use trailwarden::rules::{EvalScratch, Level, RuleOptions, RuleSet, load_rules};
use trailwarden::source::file::ReadOptions;
use trailwarden::synth::{
    SCENARIOS, SynthOptions, SynthRecord, generate, scenario_clouds, write_example_dir, write_jsonl,
};

fn rules() -> RuleSet {
    load_rules(Path::new("rules"), &RuleOptions::default())
        .unwrap_or_else(|diagnostics| panic!("rule pack does not load:\n{diagnostics}"))
}

fn small(seed: u64, events: usize) -> SynthOptions {
    SynthOptions {
        seed,
        events,
        span: Duration::days(3),
        attack_every: 50,
        ..SynthOptions::default()
    }
}

/// Decode and normalize one raw record, in memory.
fn normalize_record(record: &Value) -> AuditEvent {
    let bytes = serde_json::to_vec(record).unwrap();
    let origin = Origin::new(Arc::from("synth"), Position::Line(1));
    let mut decoded = Decoded::default();
    decode_chunk(&bytes, &origin, &mut decoded);
    assert!(
        decoded.dead_letters.is_empty(),
        "dead letter {:?} for {record}",
        decoded.dead_letters
    );
    assert_eq!(decoded.candidates.len(), 1, "{record}");
    let candidate = decoded.candidates.pop().unwrap();
    normalize(candidate, &NormalizeContext::new(Utc::now())).unwrap_or_else(|error| panic!("{error}: {record}"))
}

/// Every file under `path`, read with the daemon's own reader.
fn read_back(path: &Path, rules: &RuleSet) -> (Vec<AuditEvent>, Vec<String>) {
    let mut events = Vec::new();
    let mut dead = Vec::new();
    normalize_files(
        &[path.display().to_string()],
        &ReadOptions::default(),
        utc8(),
        &rules.catalog,
        &mut |event| {
            events.push(event);
            true
        },
        &mut |letter| dead.push(format!("{}: {}", letter.origin, letter.reason)),
    )
    .expect("readable path");
    (events, dead)
}

/// Normalize and evaluate every record in order, stateful rules included:
/// per record, the ids and levels of the rules it raised.
fn evaluate_all(rules: &RuleSet, records: &[SynthRecord]) -> Vec<Vec<(String, Level)>> {
    let mut state = EngineState::new(StateLimits::default());
    let mut scratch = EvalScratch::default();
    let mut out = Vec::new();
    records
        .iter()
        .map(|record| {
            let mut event = normalize_record(&record.record);
            out.clear();
            rules.evaluate_with_state(&mut event, &mut state, &mut scratch, &mut out);
            out.iter()
                .map(|found| {
                    let rule = rules.rule(found.rule).unwrap();
                    (rule.id.clone(), rule.level)
                })
                .collect()
        })
        .collect()
}

/// Matches at medium or above, as (rule id, record index).
fn serious(matches: &[Vec<(String, Level)>]) -> Vec<(String, usize)> {
    matches
        .iter()
        .enumerate()
        .flat_map(|(index, found)| {
            found
                .iter()
                .filter(|(_, level)| *level >= Level::Medium)
                .map(move |(rule, _)| (rule.clone(), index))
        })
        .collect()
}

/// Assert that every scenario planted in `records` raised the rule it targets
/// (when the rule set has it) on every cloud it was planted on; returns how
/// many (scenario, cloud) pairs were checked.
fn assert_scenarios_raise_their_rules(
    rules: &RuleSet,
    records: &[SynthRecord],
    matches: &[Vec<(String, Level)>],
    only: &[&str],
) -> usize {
    let mut planted: BTreeMap<(&str, Provider), Vec<usize>> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        if let Some(name) = record.planted {
            planted.entry((name, record.provider)).or_default().push(index);
        }
    }
    let mut checked = 0;
    for (scenario, rule_id, _) in SCENARIOS {
        if !only.contains(scenario) {
            continue;
        }
        for provider in scenario_clouds(scenario).unwrap() {
            let indexes = planted
                .get(&(*scenario, *provider))
                .unwrap_or_else(|| panic!("{scenario} never planted on {provider}"));
            if rules.rule_by_id(rule_id).is_none() {
                continue; // a rule still to be written
            }
            checked += 1;
            let hit = indexes
                .iter()
                .any(|index| matches[*index].iter().any(|(rule, _)| rule == rule_id));
            let steps: Vec<String> = indexes
                .iter()
                .take(8)
                .map(|index| describe(&normalize_record(&records[*index].record)))
                .collect();
            assert!(
                hit,
                "{scenario} on {provider} never raised {rule_id}:\n{}",
                steps.join("\n")
            );
        }
    }
    checked
}

fn describe(event: &AuditEvent) -> String {
    format!(
        "{} {} {}.{} by {} ({:?}, key {:?}) from {:?} ua {:?} method {:?} outcome {:?} ro {:?}",
        event.provider,
        event.time,
        event.service,
        event.action,
        event.principal_display(),
        event.principal.kind,
        event.access_key_id(),
        event.source_ip_text(),
        event.user_agent,
        event.call_method,
        event.outcome.result,
        event.read_only,
    )
}

#[test]
fn same_options_give_identical_bytes_and_seeds_differ() {
    let mut first = Vec::new();
    let mut second = Vec::new();
    let mut other = Vec::new();
    let summary = write_jsonl(small(7, 3000), &mut first).unwrap();
    write_jsonl(small(7, 3000), &mut second).unwrap();
    write_jsonl(small(8, 3000), &mut other).unwrap();
    assert_eq!(summary.records, 3000);
    assert_eq!(summary.bytes, first.len() as u64);
    assert!(first == second, "same options gave different output");
    assert!(first != other, "different seeds gave the same output");
    assert_eq!(first.iter().filter(|byte| **byte == b'\n').count(), 3000);
    // The iterator and the writer agree.
    let lines: Vec<Value> = first
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    let records: Vec<Value> = generate(small(7, 3000)).map(|record| record.record).collect();
    assert_eq!(lines, records);
}

#[test]
fn every_record_normalizes_in_time_order_with_the_right_time() {
    let options = SynthOptions {
        events: 6000,
        ..small(11, 0)
    };
    let records: Vec<SynthRecord> = generate(options.clone()).collect();
    assert_eq!(records.len(), 6000);
    let end = options.start + options.span;
    for pair in records.windows(2) {
        assert!(pair[0].time <= pair[1].time, "out of order at {}", pair[1].time);
    }
    assert!(
        records
            .iter()
            .all(|record| record.time >= options.start && record.time <= end)
    );
    for provider in Provider::ALL {
        let share = records.iter().filter(|record| record.provider == provider).count();
        assert!((1500..=2500).contains(&share), "{provider}: {share} of 6000");
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corpus.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    let summary = write_jsonl(options, &mut file).unwrap();
    drop(file);
    let rules = rules();
    let (events, dead) = read_back(&path, &rules);
    assert!(dead.is_empty(), "dead letters: {dead:?}");
    assert_eq!(events.len(), summary.records);
    assert_eq!(
        summary.planted,
        records.iter().filter(|record| record.planted.is_some()).count()
    );
    assert!(summary.planted > 0);
    for (event, record) in events.iter().zip(&records) {
        assert_eq!(event.provider, record.provider);
        assert_eq!(event.time, record.time, "{}", describe(event));
        assert!(!event.action.is_empty() && !event.service.is_empty());
        assert!(event.account_id.is_some(), "{}", describe(event));
    }
}

#[test]
fn records_are_about_the_size_of_real_ones() {
    let mut sink = std::io::sink();
    let summary = write_jsonl(small(3, 6000), &mut sink).unwrap();
    let average = summary.average_record_bytes();
    assert!(
        (1000.0..=2200.0).contains(&average),
        "average record is {average:.0} bytes"
    );
    for provider in Provider::ALL {
        let records: Vec<SynthRecord> = generate(SynthOptions {
            clouds: vec![provider],
            ..small(3, 1000)
        })
        .collect();
        assert!(records.iter().all(|record| record.provider == provider));
        let bytes: usize = records
            .iter()
            .map(|record| serde_json::to_vec(&record.record).unwrap().len())
            .sum();
        let average = bytes as f64 / records.len() as f64;
        assert!((700.0..=2600.0).contains(&average), "{provider}: {average:.0} bytes");
    }
}

#[test]
fn ordinary_traffic_raises_nothing_at_medium_or_high() {
    let rules = rules();
    for options in [
        SynthOptions {
            seed: 1234,
            events: 20_000,
            attack_every: 0,
            ..SynthOptions::default()
        },
        // Long and sparse: keys must not look idle, logins keep MFA.
        SynthOptions {
            seed: 77,
            events: 6000,
            span: Duration::days(90),
            attack_every: 0,
            distinct_keys: 150,
            ..SynthOptions::default()
        },
    ] {
        let records: Vec<SynthRecord> = generate(options).collect();
        assert!(records.iter().all(|record| record.planted.is_none()));
        let matches = serious(&evaluate_all(&rules, &records));
        let shown: Vec<String> = matches
            .iter()
            .take(10)
            .map(|(rule, index)| format!("{rule}: {}", describe(&normalize_record(&records[*index].record))))
            .collect();
        assert!(
            matches.is_empty(),
            "{} medium/high matches, e.g.\n{}",
            matches.len(),
            shown.join("\n")
        );
    }
}

#[test]
fn ordinary_traffic_keeps_its_promises() {
    // Dense traffic over few keys, so that the failure cap is put to work.
    let records: Vec<SynthRecord> = generate(SynthOptions {
        seed: 99,
        events: 15_000,
        span: Duration::days(2),
        attack_every: 0,
        distinct_keys: 9,
        ..SynthOptions::default()
    })
    .collect();
    let events: Vec<AuditEvent> = records.iter().map(|record| normalize_record(&record.record)).collect();
    let mut failures_by_key: HashMap<String, Vec<i64>> = HashMap::new();
    let mut failures = 0;
    let mut writes = 0;
    for event in &events {
        let local = event.time.with_timezone(&chrono_tz::Asia::Shanghai);
        let write = event.read_only == Some(false)
            && matches!(
                event.call_method,
                CallMethod::Api | CallMethod::Console | CallMethod::Other
            )
            && !event.action.eq_ignore_ascii_case("login")
            && !event.action.eq_ignore_ascii_case("logout")
            && event.action != "ConsoleLogin";
        if write {
            writes += 1;
            assert!(
                (9..19).contains(&local.hour()),
                "write outside working hours: {}",
                describe(event)
            );
        }
        if event.outcome.result == OutcomeResult::Failure {
            failures += 1;
            let key = event.access_key_id().unwrap_or("-").to_string();
            failures_by_key.entry(key).or_default().push(event.time.timestamp());
        }
        let agent = event.user_agent.as_deref().unwrap_or("").to_ascii_lowercase();
        for bad in ["kali", "parrot", "pentoo", "trufflehog", "cos-browser", "pacu"] {
            assert!(!agent.contains(bad), "{}", describe(event));
        }
    }
    assert!(writes > 500, "only {writes} writes");
    let rate = failures as f64 / events.len() as f64;
    assert!((0.005..0.06).contains(&rate), "failure rate {rate}");
    for (key, times) in failures_by_key {
        for (index, time) in times.iter().enumerate() {
            let within = times[index..].iter().take_while(|later| **later - time < 600).count();
            assert!(within <= 2, "key {key} failed {within} times within 10 minutes");
        }
    }
}

#[test]
fn every_scenario_raises_its_rule_on_every_cloud() {
    let rules = rules();
    let records: Vec<SynthRecord> = generate(SynthOptions {
        seed: 5,
        events: 12_000,
        attack_every: 60,
        ..SynthOptions::default()
    })
    .collect();
    let matches = evaluate_all(&rules, &records);
    for (rule, index) in serious(&matches) {
        assert!(
            records[index].planted.is_some(),
            "{rule} raised by ordinary record: {}",
            describe(&normalize_record(&records[index].record))
        );
    }
    // All but idle_key_reused, which needs a span of 46 days.
    let names: Vec<&str> = SCENARIOS
        .iter()
        .map(|(name, _, _)| *name)
        .filter(|name| *name != "idle_key_reused")
        .collect();
    let checked = assert_scenarios_raise_their_rules(&rules, &records, &matches, &names);
    assert!(checked >= 20, "only {checked} scenario/cloud pairs checked");
}

#[test]
fn future_rule_scenarios_have_their_shape() {
    let options = SynthOptions {
        seed: 17,
        events: 8000,
        span: Duration::days(60),
        attack_every: 40,
        ..SynthOptions::default()
    };
    let records: Vec<SynthRecord> = generate(options).collect();
    let rules = rules();
    let matches = evaluate_all(&rules, &records);
    for (rule, index) in serious(&matches) {
        assert!(records[index].planted.is_some(), "{rule} raised by an ordinary record");
    }
    assert_scenarios_raise_their_rules(
        &rules,
        &records,
        &matches,
        &["idle_key_reused", "new_user_high_risk", "denied_call_burst"],
    );
    let events: Vec<(Option<&str>, AuditEvent)> = records
        .iter()
        .map(|record| (record.planted, normalize_record(&record.record)))
        .collect();
    let of = |name: &str| -> Vec<&AuditEvent> {
        events
            .iter()
            .filter(|(planted, _)| *planted == Some(name))
            .map(|(_, event)| event)
            .collect()
    };

    // Idle key: seen once, then again after at least 45 days.
    let idle = of("idle_key_reused");
    let mut by_key: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for event in &idle {
        by_key
            .entry(event.access_key_id().unwrap())
            .or_default()
            .push(event.time.timestamp());
    }
    let clouds: BTreeSet<Provider> = idle.iter().map(|event| event.provider).collect();
    assert_eq!(clouds.len(), 3, "idle key planted on {clouds:?}");
    for (key, times) in &by_key {
        assert!(times.len() >= 3, "{key}: {times:?}");
        let gap = times[1] - times[0];
        assert!(gap >= 45 * 86_400, "{key} idle only {gap} s");
        assert!(times[2..].iter().all(|time| time - times[1] < 3600));
    }
    // Nothing else uses those keys.
    for (planted, event) in &events {
        if let Some(key) = event.access_key_id()
            && by_key.contains_key(key)
        {
            assert_eq!(*planted, Some("idle_key_reused"));
        }
    }

    // Denied burst: >= 10 failures from one key within 5 minutes.
    let burst = of("denied_call_burst");
    let mut bursts: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for event in &burst {
        assert_eq!(event.outcome.result, OutcomeResult::Failure, "{}", describe(event));
        let code = event.outcome.error_code.as_deref().unwrap_or("");
        // CTS: `error_code` is the service's code from the response; the
        // HTTP status that says "denied" stays in the trace's `code`.
        let http_status = event.raw["code"]
            .as_str()
            .map(str::to_string)
            .or_else(|| event.raw["code"].as_i64().map(|status| status.to_string()));
        assert!(
            ["AccessDenied", "UnauthorizedOperation", "AuthFailure"]
                .iter()
                .any(|fragment| code.contains(fragment))
                || (event.provider == Provider::Huawei && http_status.as_deref() == Some("403")),
            "error code {code}, HTTP status {http_status:?}"
        );
        bursts
            .entry(event.access_key_id().unwrap())
            .or_default()
            .push(event.time.timestamp());
    }
    assert!(!bursts.is_empty());
    for (key, times) in &bursts {
        assert!(times.len() >= 10, "{key}");
        assert!(times[times.len() - 1] - times[0] <= 300, "{key}: {times:?}");
    }

    // New user: created, then the new user's own key calls within hours.
    let new_user = of("new_user_high_risk");
    let clouds: BTreeSet<Provider> = new_user.iter().map(|event| event.provider).collect();
    assert_eq!(clouds.len(), 3);
    let created: Vec<(&AuditEvent, String)> = new_user
        .iter()
        .filter(|event| ["CreateUser", "AddUser", "createUser"].contains(&event.action.as_str()))
        .map(|event| {
            let request = &event.raw;
            let name = request["requestParameters"]["userName"]
                .as_str()
                .or(request["requestParameters"]["Name"].as_str())
                .or(request["request"]["user"]["name"].as_str())
                .unwrap()
                .to_string();
            (*event, name)
        })
        .collect();
    assert!(!created.is_empty());
    for (creation, name) in &created {
        // Names are drawn from a short list: another scenario may create the
        // same name later; its events belong to that creation.
        let next = created
            .iter()
            .filter(|(other, other_name)| {
                other_name == name && other.provider == creation.provider && other.time > creation.time
            })
            .map(|(other, _)| other.time)
            .min();
        let later: Vec<&&AuditEvent> = new_user
            .iter()
            .filter(|event| event.principal.name.as_deref() == Some(name.as_str()))
            .filter(|event| event.provider == creation.provider)
            .filter(|event| event.time >= creation.time && next.is_none_or(|time| event.time < time))
            .filter(|event| !std::ptr::eq(**event, *creation))
            .collect();
        assert!(!later.is_empty(), "{name} never acted");
        for event in later {
            let after = event.time - creation.time;
            assert!(after > Duration::zero() && after < Duration::hours(6), "{after}");
            assert!(event.access_key_id().is_some());
        }
    }
}

#[test]
fn large_key_and_ip_pools_are_all_used() {
    let options = SynthOptions {
        seed: 3,
        events: 20_000,
        attack_every: 0,
        distinct_keys: 4000,
        distinct_ips: 6000,
        ..SynthOptions::default()
    };
    let mut keys = BTreeSet::new();
    let mut ips = BTreeSet::new();
    for record in generate(options) {
        let event = normalize_record(&record.record);
        if let Some(key) = event.access_key_id()
            && !event.access_key.as_ref().unwrap().temporary
            && matches!(&key[..4], "AKIA" | "HPUA")
        {
            keys.insert(key.to_string());
        }
        if let Some(ip) = event.source_ip_text() {
            ips.insert(ip.to_string());
        }
    }
    // AWS and Huawei long-term keys: two thirds of the pool.
    assert!(keys.len() >= 2500, "{} distinct long-term keys", keys.len());
    assert!(keys.len() <= 2667, "{} distinct long-term keys", keys.len());
    assert!(ips.len() >= 5500, "{} distinct addresses", ips.len());
}

#[test]
fn example_directory_reads_back_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let options = SynthOptions {
        seed: 21,
        events: 3000,
        start: Utc.with_ymd_and_hms(2026, 3, 4, 0, 0, 0).unwrap(),
        span: Duration::days(2),
        attack_every: 100,
        ..SynthOptions::default()
    };
    let summary = write_example_dir(options, dir.path()).unwrap();
    assert_eq!(summary.records, 3000);
    assert!(summary.planted > 0);
    assert_eq!(summary.huawei + summary.tencent + summary.aws, 3000);

    let mut files = Vec::new();
    walk(dir.path(), &mut files);
    assert_eq!(files.len(), summary.files);
    let on_disk: u64 = files.iter().map(|file| file.metadata().unwrap().len()).sum();
    assert_eq!(on_disk, summary.bytes);
    let names: Vec<String> = files
        .iter()
        .map(|file| file.strip_prefix(dir.path()).unwrap().display().to_string())
        .collect();
    let aws = regex::Regex::new(
        r"^aws/CloudTrail/\d{12}_CloudTrail_[a-z]{2}-[a-z]+-\d_\d{8}T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$",
    )
    .unwrap();
    let tencent = regex::Regex::new(r"^tencent/\d{10}/cloudaudit_\d{1,2}\.(json\.gz|jsonl)$").unwrap();
    let huawei = regex::Regex::new(
        r"^huawei/CloudTraces/[a-z]{2}-[a-z]+-\d/\d{4}/\d{2}/\d{2}/system/[A-Z]+/cts_CloudTrace_[a-z]{2}-[a-z]+-\d_\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z_[0-9a-f]{16}\.(json\.gz|json)$",
    )
    .unwrap();
    for name in &names {
        assert!(
            aws.is_match(name) || tencent.is_match(name) || huawei.is_match(name),
            "unexpected file {name}"
        );
    }
    assert!(names.iter().any(|name| aws.is_match(name)));
    assert_eq!(names.iter().filter(|name| name.ends_with(".jsonl")).count(), 1);
    assert_eq!(names.iter().filter(|name| name.ends_with(".json")).count(), 1);
    assert!(names.iter().filter(|name| tencent.is_match(name)).count() > 10);
    assert!(names.iter().filter(|name| huawei.is_match(name)).count() > 10);

    // AWS files hold {"Records": [...]}; Huawei files a JSON array.
    let gz = files
        .iter()
        .find(|file| file.to_string_lossy().contains("CloudTrail_"))
        .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap()),
        &mut text,
    )
    .unwrap();
    let document: Value = serde_json::from_str(&text).unwrap();
    assert!(
        document["Records"]
            .as_array()
            .is_some_and(|records| !records.is_empty())
    );
    let plain = files
        .iter()
        .find(|file| file.extension().is_some_and(|ext| ext == "json"))
        .unwrap();
    let document: Value = serde_json::from_slice(&std::fs::read(plain).unwrap()).unwrap();
    assert!(document.as_array().is_some_and(|traces| !traces.is_empty()));

    let rules = rules();
    let (events, dead) = read_back(dir.path(), &rules);
    assert!(dead.is_empty(), "dead letters: {dead:?}");
    assert_eq!(events.len(), summary.records);
    for provider in Provider::ALL {
        let count = events.iter().filter(|event| event.provider == provider).count();
        assert_eq!(count, summary.count(provider), "{provider}");
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn degenerate_options_still_work() {
    assert_eq!(
        generate(SynthOptions {
            events: 0,
            ..SynthOptions::default()
        })
        .count(),
        0
    );
    let options = SynthOptions {
        events: 50,
        span: Duration::zero(),
        attack_every: 1,
        distinct_keys: 0,
        distinct_ips: 0,
        clouds: vec![Provider::Tencent, Provider::Tencent],
        ..SynthOptions::default()
    };
    let records: Vec<SynthRecord> = generate(options.clone()).collect();
    assert_eq!(records.len(), 50);
    assert!(records.iter().all(|record| record.time == options.start));
    assert!(records.iter().all(|record| record.provider == Provider::Tencent));
    // No room for any scenario in an empty span.
    assert!(records.iter().all(|record| record.planted.is_none()));
    for record in &records {
        normalize_record(&record.record);
    }
}

/// A replay fills every transaction to `pipeline.max_transaction_events`
/// (nobody waits for its alarms), and the size of its transactions changes
/// no alarm: the same stream replayed with transactions of 300 and of 1 200
/// events ends with the same alarms, counts and call records.
#[test]
fn replay_fills_transactions_to_the_largest_size_and_alarms_do_not_depend_on_it() {
    use trailwarden::config::Settings;
    use trailwarden::replay::{MatchFormat, ReplayRequest, replay};
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    write_jsonl(small(11, 6000), &mut std::fs::File::create(&corpus).unwrap()).unwrap();
    let run = |max: usize| {
        let db = dir.path().join(format!("max-{max}.db"));
        let text = format!(
            "[rules]\ndir = \"rules\"\n[store]\npath = {:?}\n[pipeline]\nbatch_events = 300\nmax_transaction_events = {max}\nbatch_bytes = 32768\n",
            db.to_str().unwrap()
        );
        let settings = Settings::from_toml("test.toml", &text, false).unwrap();
        let report = replay(
            &settings,
            ReplayRequest {
                paths: vec![corpus.to_str().unwrap().to_string()],
                format: MatchFormat::None,
                db: Some(db.clone()),
            },
        )
        .unwrap();
        assert_eq!(report.stats.events, 6000);
        let connection = rusqlite::Connection::open(&db).unwrap();
        let mut statement = connection
            .prepare(
                "SELECT a.rule_id, a.group_key, a.count, a.first_seen, a.last_seen, \
                 (SELECT group_concat(c.source_ip || c.action || c.success_count || c.failure_count, ';') \
                  FROM (SELECT * FROM alarm_calls WHERE alarm_id = a.id ORDER BY source_ip, action) c) \
                 FROM alarms a ORDER BY a.rule_id, a.group_key",
            )
            .unwrap();
        let alarms: Vec<String> = statement
            .query_map([], |row| {
                Ok(format!(
                    "{} {} {} {} {} {}",
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, Option<String>>(5)?.unwrap_or_default()
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        (report.stats.transactions, alarms)
    };
    let (small_transactions, small_alarms) = run(300);
    let (large_transactions, large_alarms) = run(1200);
    assert!(!small_alarms.is_empty(), "the planted attacks raise alarms");
    assert_eq!(small_alarms, large_alarms);
    // 6 000 events: 20 transactions of 300 (or a few more where the
    // source's batches end short); of 1 200, at least 5, and each at least a
    // quarter full but the last (a replay commits past a quarter when the
    // store is idle, so how many depends on how fast the store is).
    assert!(
        small_transactions >= 20,
        "{small_transactions} transactions of at most 300 events"
    );
    assert!(
        (5..=21).contains(&large_transactions) && large_transactions < small_transactions,
        "{large_transactions} transactions of up to 1 200 events (against {small_transactions} of 300)"
    );
}
