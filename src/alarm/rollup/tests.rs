//! Tests of the accumulator, the writes and the queries of both features,
//! together because they share one event builder and one store.

use super::activity::hour_key;
use super::*;
use crate::event::model::{
    AccessKey, CallMethod, IpKind, Outcome, OutcomeResult, Principal, PrincipalKind, Provider, Resource, SourceAddress,
    TimeSource,
};
use chrono::TimeZone;
use rusqlite::Connection;
use serde_json::Value;

/// 2026-03-02T00:00:00Z.
const START: i64 = 1_772_409_600;

fn rules() -> RuleSet {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    crate::rules::load_rules(&dir, &crate::rules::RuleOptions::default()).expect("the shipped rules load")
}

struct Call<'a> {
    seconds: i64,
    service: &'a str,
    action: &'a str,
    user: &'a str,
    key: Option<&'a str>,
    ip: &'a str,
    error: Option<&'a str>,
}

fn event(rules: &RuleSet, call: Call<'_>) -> AuditEvent {
    let mut event = AuditEvent {
        provider: Provider::Tencent,
        event_id: format!("ev-{}-{}-{}", call.seconds, call.action, call.user),
        request_id: None,
        time: Utc.timestamp_opt(START + call.seconds, 0).unwrap(),
        time_source: TimeSource::Event,
        account_id: Some("100012345678".into()),
        account_name: None,
        principal: Principal {
            kind: PrincipalKind::User,
            id: Some(format!("id-{}", call.user)),
            name: Some(call.user.to_string()),
            arn: None,
        },
        access_key: call.key.map(|key| AccessKey {
            id: key.to_string(),
            temporary: false,
        }),
        source: Some(SourceAddress {
            text: call.ip.to_string(),
            ip: call.ip.parse().ok(),
            kind: IpKind::Public,
            asset: false,
        }),
        platform_source: None,
        user_agent: None,
        service: call.service.to_string(),
        action: call.action.to_string(),
        operations: vec![],
        region: None,
        call_method: CallMethod::Api,
        outcome: Outcome {
            result: if call.error.is_some() {
                OutcomeResult::Failure
            } else {
                OutcomeResult::Success
            },
            error_code: call.error.map(str::to_string),
            error_message: None,
        },
        read_only: None,
        resource: Resource {
            resource_type: Some(call.service.to_string()),
            names: vec!["ins-1".into()],
        },
        mfa: None,
        degraded: None,
        raw: serde_json::json!({"eventName": call.action, "eventType": "ConsoleCall"}).into(),
        origin: Default::default(),
    };
    rules.catalog.classify_event(&mut event);
    event
}

fn call<'a>(seconds: i64, action: &'a str, user: &'a str, ip: &'a str) -> Call<'a> {
    Call {
        seconds,
        service: "cvm",
        action,
        user,
        key: Some("AKIDexample000000000000000000000000001"),
        ip,
        error: None,
    }
}

#[test]
fn events_are_counted_per_hour_and_key_with_failures() {
    let rules = rules();
    let mut activity = Activity::new(ActivityOptions::default());
    activity.use_rules(&rules);
    for seconds in [10, 20, 3599] {
        activity.observe(
            &event(&rules, call(seconds, "DescribeInstances", "ops", "1.2.3.4")),
            &rules,
        );
    }
    // Same hour, another address; next hour; a failure with its code.
    activity.observe(&event(&rules, call(30, "DescribeInstances", "ops", "5.6.7.8")), &rules);
    activity.observe(
        &event(&rules, call(3600, "DescribeInstances", "ops", "1.2.3.4")),
        &rules,
    );
    let mut failed = call(40, "DescribeInstances", "ops", "1.2.3.4");
    failed.error = Some("UnauthorizedOperation");
    activity.observe(&event(&rules, failed), &rules);
    let batch = activity.take(false);
    let mut rows: Vec<(i64, &str, &str, u64, u64)> = batch
        .hourly
        .iter()
        .map(|row| {
            (
                (row.hour_ms / 1000 - START) / 3600,
                row.source_ip.as_str(),
                row.error_code.as_str(),
                row.count,
                row.failures,
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            (0, "1.2.3.4", "", 3, 0),
            (0, "1.2.3.4", "UnauthorizedOperation", 1, 1),
            (0, "5.6.7.8", "", 1, 0),
            (1, "1.2.3.4", "", 1, 0),
        ]
    );
    assert!(activity.take(false).hourly.is_empty(), "a take empties the batch");
}

#[test]
fn a_recycled_batch_lends_its_room_and_nothing_else_to_the_next() {
    let rules = rules();
    let mut activity = Activity::new(ActivityOptions::default());
    activity.use_rules(&rules);
    for (seconds, ip) in [(10, "1.2.3.4"), (20, "5.6.7.8"), (30, "9.9.9.9")] {
        activity.observe(&event(&rules, call(seconds, "DescribeInstances", "ops", ip)), &rules);
    }
    let mut batch = activity.take(false);
    assert_eq!((batch.hourly.len(), batch.key_ips.len()), (3, 3));
    let room = (batch.hourly.capacity(), batch.key_ips.capacity());
    activity.recycle(&mut batch);
    assert!(batch.is_empty() || batch.prune_before_ms.is_some());
    activity.observe(&event(&rules, call(40, "DescribeInstances", "dev", "7.7.7.7")), &rules);
    let next = activity.take(false);
    assert_eq!((next.hourly.capacity(), next.key_ips.capacity()), room);
    let rows: Vec<(&str, &str, u64)> = next
        .hourly
        .iter()
        .map(|row| (row.principal.as_str(), row.source_ip.as_str(), row.count))
        .collect();
    assert_eq!(rows, vec![("dev", "7.7.7.7", 1)]);
    let pairs: Vec<&str> = next.key_ips.iter().map(|pair| pair.source_ip.as_str()).collect();
    assert_eq!(pairs, vec!["7.7.7.7"]);
}

#[test]
fn a_key_ip_pair_is_written_when_new_or_earlier_only() {
    let rules = rules();
    let mut activity = Activity::new(ActivityOptions::default());
    activity.use_rules(&rules);
    activity.observe(&event(&rules, call(100, "DescribeInstances", "ops", "1.2.3.4")), &rules);
    activity.observe(&event(&rules, call(200, "DescribeInstances", "ops", "1.2.3.4")), &rules);
    let pairs = activity.take(false).key_ips;
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].first_seen, "2026-03-02T00:01:40.000Z");
    activity.observe(&event(&rules, call(300, "DescribeInstances", "ops", "1.2.3.4")), &rules);
    assert!(
        activity.take(false).key_ips.is_empty(),
        "a known pair is not written again"
    );
    activity.observe(&event(&rules, call(50, "DescribeInstances", "ops", "1.2.3.4")), &rules);
    activity.observe(&event(&rules, call(60, "DescribeInstances", "ops", "9.9.9.9")), &rules);
    let mut no_key = call(70, "DescribeInstances", "ops", "8.8.8.8");
    no_key.key = None;
    activity.observe(&event(&rules, no_key), &rules);
    let mut pairs: Vec<(String, String)> = activity
        .take(false)
        .key_ips
        .into_iter()
        .map(|pair| (pair.source_ip, pair.first_seen))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("1.2.3.4".to_string(), "2026-03-02T00:00:50.000Z".to_string()),
            ("9.9.9.9".to_string(), "2026-03-02T00:01:00.000Z".to_string()),
        ]
    );
}

#[test]
fn key_operations_come_from_the_sec09_rules() {
    let rules = rules();
    let key_operations = KeyOperations::from_rules(&rules, "sec09-03");
    let names = key_operations.names(&rules);
    for expected in [
        "iam.user.create",
        "net.sg.rule_delete",
        "compute.instance.reboot",
        "cost.instance.create",
        "net.eip.change",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    for not_key in ["iam.login.console", "iam.access_key.create"] {
        assert!(!names.contains(&not_key), "{not_key} is not a SEC09-03 operation");
    }
    assert!(
        KeyOperations::from_rules(&rules, "no-such-tag")
            .names(&rules)
            .is_empty()
    );

    let mut activity = Activity::new(ActivityOptions::default());
    activity.use_rules(&rules);
    activity.observe(&event(&rules, call(10, "RebootInstances", "ops", "1.2.3.4")), &rules);
    activity.observe(&event(&rules, call(20, "DescribeInstances", "ops", "1.2.3.4")), &rules);
    let mut failed = call(30, "StopInstances", "intern", "1.2.3.4");
    failed.error = Some("UnauthorizedOperation");
    activity.observe(&event(&rules, failed), &rules);
    let traces = activity.take(false).traces;
    let summary: Vec<(&str, &str, &str)> = traces
        .iter()
        .map(|new| {
            (
                new.trace.action.as_str(),
                new.trace.operator.as_str(),
                new.trace.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("RebootInstances", "ops", "success"),
            ("StopInstances", "intern", "failure")
        ]
    );
    assert_eq!(traces[0].trace.trace_type.as_deref(), Some("ConsoleCall"));
    let raw: Value = serde_json::from_str(&traces[0].raw).unwrap();
    assert_eq!(raw["eventName"], "RebootInstances");
    assert_eq!(traces[0].trace.operations, vec!["compute.instance.reboot".to_string()]);

    let mut off = Activity::new(ActivityOptions {
        traces: false,
        ..ActivityOptions::default()
    });
    off.use_rules(&rules);
    off.observe(&event(&rules, call(10, "RebootInstances", "ops", "1.2.3.4")), &rules);
    let batch = off.take(true);
    assert!(batch.traces.is_empty() && batch.prune_before_ms.is_none());
    assert_eq!(batch.hourly.len(), 1);
}

#[test]
fn key_operations_already_past_retention_are_not_traced() {
    let rules = rules();
    let mut activity = Activity::new(ActivityOptions {
        trace_retention: Duration::from_secs(7 * 86_400),
        ..ActivityOptions::default()
    });
    activity.use_rules(&rules);
    activity.observe(
        &event(&rules, call(30 * 86_400, "DescribeInstances", "ops", "1.2.3.4")),
        &rules,
    );
    // Eight days behind the newest event: pruned as soon as written, so not kept.
    activity.observe(
        &event(&rules, call(22 * 86_400, "RebootInstances", "old", "1.2.3.4")),
        &rules,
    );
    // Six days behind: inside the retention.
    activity.observe(
        &event(&rules, call(24 * 86_400, "RebootInstances", "recent", "1.2.3.4")),
        &rules,
    );
    let operators: Vec<String> = activity
        .take(false)
        .traces
        .iter()
        .map(|new| new.trace.operator.clone())
        .collect();
    assert_eq!(operators, ["recent"]);
}

#[test]
fn pruning_follows_event_time_at_most_once_per_interval() {
    let rules = rules();
    let options = ActivityOptions {
        trace_retention: Duration::from_secs(7 * 86_400),
        prune_every: Duration::from_secs(600),
        events: crate::alarm::events::EventStoreOptions {
            retention: Duration::from_secs(86_400),
            ..Default::default()
        },
        ..ActivityOptions::default()
    };
    let mut activity = Activity::new(options);
    activity.use_rules(&rules);
    let now = (START + 100 * 86_400) * 1000;
    assert_eq!(activity.prune_due(false, now).0, None, "nothing seen, nothing to prune");
    activity.observe(&event(&rules, call(0, "DescribeInstances", "ops", "1.2.3.4")), &rules);
    let week_ms = 7 * DAY_MS;
    assert_eq!(
        activity.prune_due(false, now),
        (Some(START * 1000 - week_ms), Some(START * 1000 - DAY_MS)),
        "first batch prunes traces and event blocks, each by its own retention"
    );
    activity.observe(&event(&rules, call(300, "DescribeInstances", "ops", "1.2.3.4")), &rules);
    assert_eq!(
        activity.prune_due(false, now).0,
        None,
        "5 minutes of event time later: not yet"
    );
    assert_eq!(
        activity.prune_due(true, now).0,
        Some((START + 300) * 1000 - week_ms),
        "the last batch always prunes"
    );
    activity.observe(
        &event(&rules, call(1000, "DescribeInstances", "ops", "1.2.3.4")),
        &rules,
    );
    assert_eq!(activity.prune_due(false, now).0, Some((START + 1000) * 1000 - week_ms));
    // A record from the far future cannot push the cutoff past now + 1 day.
    activity.observe(
        &event(&rules, call(400 * 86_400, "DescribeInstances", "ops", "1.2.3.4")),
        &rules,
    );
    assert_eq!(activity.prune_due(false, now).0, Some(now + DAY_MS - week_ms));
}

#[test]
fn hourly_rows_with_colliding_hashes_stay_apart() {
    let rules = rules();
    let mut connection = Connection::open_in_memory().unwrap();
    crate::alarm::schema::migrate(&mut connection).unwrap();
    let mut activity = Activity::new(ActivityOptions::default());
    activity.use_rules(&rules);
    activity.observe(&event(&rules, call(10, "DescribeInstances", "ops", "1.2.3.4")), &rules);
    activity.observe(&event(&rules, call(20, "DescribeInstances", "dev", "1.2.3.4")), &rules);
    activity.observe(&event(&rules, call(30, "DescribeInstances", "dev", "1.2.3.4")), &rules);
    let mut batch = activity.take(false);
    assert_eq!(batch.hourly.len(), 2);
    for row in &mut batch.hourly {
        row.hash = 7;
    }
    for _ in 0..2 {
        let transaction = connection.transaction().unwrap();
        write(&transaction, &batch).unwrap();
        transaction.commit().unwrap();
    }
    let mut statement = connection
        .prepare("SELECT key - ?1, principal, count FROM activity_hourly ORDER BY key")
        .unwrap();
    let rows: Vec<(i64, String, i64)> = statement
        .query_map([hour_key(START * 1000)], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, vec![(7, "ops".to_string(), 2), (8, "dev".to_string(), 4)]);
    let report = activity_report(
        &mut crate::db::SqliteDb(&connection),
        &ActivityQuery {
            since: Some(Utc.timestamp_opt(START + 1800, 0).unwrap()),
            until: Some(Utc.timestamp_opt(START + 1, 0).unwrap() + chrono::Duration::hours(1)),
            top: 10,
        },
    )
    .unwrap();
    assert_eq!(
        report.events, 6,
        "the hour holding --since counts whole; until 01:00:01 includes 01:00's hour"
    );
    let report = activity_report(
        &mut crate::db::SqliteDb(&connection),
        &ActivityQuery {
            until: Some(Utc.timestamp_opt(START, 0).unwrap()),
            top: 10,
            ..ActivityQuery::default()
        },
    )
    .unwrap();
    assert_eq!(report.events, 0, "until is exclusive");
}

#[test]
fn writes_upsert_and_queries_read_back() {
    let rules = rules();
    let mut connection = Connection::open_in_memory().unwrap();
    crate::alarm::schema::migrate(&mut connection).unwrap();
    let mut activity = Activity::new(ActivityOptions::default());
    activity.use_rules(&rules);
    // Two batches with the same key: counts add up in the store.
    for batch in 0..2 {
        activity.observe(
            &event(&rules, call(10 + batch, "DescribeInstances", "ops", "1.2.3.4")),
            &rules,
        );
        activity.observe(
            &event(&rules, call(20 + batch, "RebootInstances", "ops", "1.2.3.4")),
            &rules,
        );
        let mut failed = call(30 + batch, "DescribeInstances", "intern", "5.6.7.8");
        failed.error = Some("AuthFailure");
        activity.observe(&event(&rules, failed), &rules);
        let written = activity.take(false);
        let transaction = connection.transaction().unwrap();
        write(&transaction, &written).unwrap();
        transaction.commit().unwrap();
    }
    let report = activity_report(
        &mut crate::db::SqliteDb(&connection),
        &ActivityQuery {
            top: 10,
            ..ActivityQuery::default()
        },
    )
    .unwrap();
    assert_eq!((report.events, report.failures), (6, 2));
    assert_eq!(report.busiest_principals[0].principal, "ops");
    assert_eq!(report.busiest_principals[0].events, 4);
    assert_eq!(report.busiest_source_ips[0].source_ip, "1.2.3.4");
    assert_eq!(report.failure_rates.len(), 1);
    assert!((report.failure_rates[0].failure_rate - 2.0 / 6.0).abs() < 1e-9);
    assert_eq!(report.new_key_ips_total, 2);
    let later = activity_report(
        &mut crate::db::SqliteDb(&connection),
        &ActivityQuery {
            since: Some(Utc.timestamp_opt(START + 3600, 0).unwrap()),
            top: 10,
            ..ActivityQuery::default()
        },
    )
    .unwrap();
    assert_eq!((later.events, later.new_key_ips_total), (0, 0));
    // The same trace twice (a replayed event id) is stored once.
    let traces = list_traces(
        &mut crate::db::SqliteDb(&connection),
        &TraceFilter {
            limit: 10,
            ..TraceFilter::default()
        },
    )
    .unwrap();
    assert_eq!(traces.len(), 2, "RebootInstances at 20 s and 21 s");
    assert_eq!(traces[0].time, "2026-03-02T00:00:21.000Z", "most recent first");
    let transaction = connection.transaction().unwrap();
    write(
        &transaction,
        &ActivityBatch {
            traces: vec![NewTrace {
                trace: traces[0].clone(),
                raw: traces[0].raw.to_string(),
            }],
            prune_before_ms: Some((START + 21) * 1000),
            ..ActivityBatch::default()
        },
    )
    .unwrap();
    transaction.commit().unwrap();
    let left = list_traces(
        &mut crate::db::SqliteDb(&connection),
        &TraceFilter {
            limit: 10,
            ..TraceFilter::default()
        },
    )
    .unwrap();
    assert_eq!(left.len(), 1, "no duplicate, and the older trace is pruned");
    assert_eq!(left[0].raw["eventName"], "RebootInstances");

    // A restarted engine knows the stored pairs and does not append them again.
    let mut restarted = Activity::new(ActivityOptions::default());
    restarted.use_rules(&rules);
    let loaded = load_pairs(&mut crate::db::SqliteDb(&connection), &mut |key, ip, first_ms| {
        restarted.remember_pair(key, ip, first_ms)
    })
    .unwrap();
    assert_eq!(loaded, 2);
    restarted.observe(&event(&rules, call(500, "DescribeInstances", "ops", "1.2.3.4")), &rules);
    assert!(restarted.take(false).key_ips.is_empty());
    // A late, earlier sighting is appended; readers take the earliest row of a pair.
    let mut late = call(5, "DescribeInstances", "early-bird", "1.2.3.4");
    late.key = Some("AKIDexample000000000000000000000000001");
    restarted.observe(&event(&rules, late), &rules);
    let written = restarted.take(false);
    assert_eq!(written.key_ips.len(), 1);
    let transaction = connection.transaction().unwrap();
    write(&transaction, &written).unwrap();
    transaction.commit().unwrap();
    let rows: i64 = connection
        .query_row("SELECT COUNT(*) FROM activity_key_ips", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 3);
    let report = activity_report(
        &mut crate::db::SqliteDb(&connection),
        &ActivityQuery {
            top: 10,
            ..ActivityQuery::default()
        },
    )
    .unwrap();
    assert_eq!(report.new_key_ips_total, 2, "one pair, however many rows");
    let first = &report.new_key_ips[0];
    assert_eq!(
        (
            first.source_ip.as_str(),
            first.principal.as_str(),
            first.first_seen.as_str()
        ),
        ("1.2.3.4", "early-bird", "2026-03-02T00:00:05.000Z")
    );
    let after_early = activity_report(
        &mut crate::db::SqliteDb(&connection),
        &ActivityQuery {
            since: Some(Utc.timestamp_opt(START + 6, 0).unwrap()),
            top: 10,
            ..ActivityQuery::default()
        },
    )
    .unwrap();
    assert_eq!(
        after_early.new_key_ips_total, 1,
        "1.2.3.4 was first seen before the range, 5.6.7.8 in it"
    );
}
