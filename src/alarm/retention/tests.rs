use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::*;
use crate::alarm::store::fixtures::update;
use crate::alarm::store::{Store, StoreOptions, WriteBatch};
use crate::alarm::workflow::Status;

const DAY_SECS: u64 = 86_400;

fn open(dir: &tempfile::TempDir) -> Store {
    let options = StoreOptions {
        synchronous_full: false,
        ..StoreOptions::default()
    };
    Store::open(&dir.path().join("store.db"), options).unwrap()
}

/// Alarms 1 (processed), 2 (ignored) and 3 (unprocessed), each with two
/// call records and three samples from 2026-03-02.
fn three_alarms(store: &mut Store) {
    let batch = WriteBatch {
        alarms: vec![
            update("a", &["1.1.1.1", "2.2.2.2"], 3, "2026-03-02T00:00:00.000Z"),
            update("b", &["3.3.3.3", "4.4.4.4"], 3, "2026-03-02T00:00:01.000Z"),
            update("c", &["5.5.5.5", "6.6.6.6"], 3, "2026-03-02T00:00:02.000Z"),
        ],
        ..WriteBatch::default()
    };
    store.write(&batch).unwrap();
    store.set_status(1, Status::Processed, "alice", "handled").unwrap();
    store.set_status(2, Status::Ignored, "alice", "known scanner").unwrap();
}

fn count(store: &Store, sql: &str) -> i64 {
    store
        .connection()
        .unwrap()
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

fn days_from_now(days: u64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds((days * DAY_SECS) as i64)
}

fn only(policy: impl FnOnce(&mut RetentionPolicy)) -> RetentionPolicy {
    let mut kept = RetentionPolicy {
        processed_alarms: None,
        samples: None,
        call_records: None,
        dead_letters: None,
        notifications: None,
        rollups: None,
        chain: None,
        batch_rows: 500,
    };
    policy(&mut kept);
    kept
}

fn prune_at(store: &mut Store, policy: &RetentionPolicy, now: DateTime<Utc>) -> PruneReport {
    prune(store, policy, now, &|| false).unwrap()
}

#[test]
fn processed_alarms_go_with_their_evidence_and_the_chain_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    three_alarms(&mut store);
    let policy = only(|policy| policy.processed_alarms = Some(Duration::from_secs(365 * DAY_SECS)));
    // A day later nothing is a year old.
    let report = prune_at(&mut store, &policy, days_from_now(1));
    assert!(!report.removed_anything(), "{report}");
    let report = prune_at(&mut store, &policy, days_from_now(366));
    assert_eq!(
        (report.alarms, report.transitions, report.calls, report.samples),
        (1, 1, 2, 3),
        "{report}"
    );
    assert_eq!(count(&store, "SELECT count(*) FROM alarms WHERE id = 1"), 0);
    assert_eq!(
        count(&store, "SELECT count(*) FROM alarms"),
        2,
        "ignored and unprocessed alarms stay"
    );
    assert_eq!(count(&store, "SELECT count(*) FROM alarm_calls WHERE alarm_id = 1"), 0);
    assert_eq!(
        count(&store, "SELECT count(*) FROM alarm_samples WHERE alarm_id = 1"),
        0
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM alarm_transitions WHERE alarm_id = 1"),
        0
    );
    assert_eq!(count(&store, "SELECT count(*) FROM alarm_samples"), 6);
    let verification = store.verify_chain(None).unwrap();
    assert!(verification.ok(), "{:?}", verification.problems);
    // The removal is sealed: putting the alarm back is caught.
    store
        .connection()
        .unwrap()
        .execute(
            "INSERT INTO alarm_transitions (id, alarm_id, from_status, to_status, actor, reason, at) \
             VALUES (1, 1, 'unprocessed', 'processed', 'alice', 'handled', '2026-03-02T00:00:00.000Z')",
            [],
        )
        .unwrap();
    let verification = store.verify_chain(None).unwrap();
    assert!(
        verification
            .problems
            .iter()
            .any(|problem| problem.message.contains("is back")),
        "{:?}",
        verification.problems
    );
}

#[test]
fn evidence_of_triaged_alarms_goes_by_age_and_an_untriaged_alarm_keeps_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    three_alarms(&mut store);
    let policy = only(|policy| {
        policy.samples = Some(Duration::from_secs(30 * DAY_SECS));
        policy.call_records = Some(Duration::from_secs(30 * DAY_SECS));
    });
    // Samples and calls are from 2026-03-02: 30 days after is 2026-04-01.
    let before = DateTime::parse_from_rfc3339("2026-03-31T00:00:00Z").unwrap().to_utc();
    assert!(!prune_at(&mut store, &policy, before).removed_anything());
    let after = DateTime::parse_from_rfc3339("2026-04-02T00:00:00Z").unwrap().to_utc();
    let report = prune_at(&mut store, &policy, after);
    assert_eq!((report.samples, report.calls, report.alarms), (6, 4, 0), "{report}");
    assert_eq!(
        count(&store, "SELECT count(*) FROM alarm_samples WHERE alarm_id = 3"),
        3
    );
    assert_eq!(count(&store, "SELECT count(*) FROM alarm_calls WHERE alarm_id = 3"), 2);
    assert_eq!(count(&store, "SELECT count(*) FROM alarm_samples"), 3);
    assert_eq!(count(&store, "SELECT count(*) FROM alarms"), 3);
    assert!(store.verify_chain(None).unwrap().ok());
}

#[test]
fn a_cut_chain_verifies_goes_on_and_still_catches_edits() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    three_alarms(&mut store);
    let (head_seq, head_hash) = store.chain_head().unwrap().unwrap();
    let links_before = count(&store, "SELECT count(*) FROM chain");
    let policy = only(|policy| {
        policy.chain = Some(Duration::from_secs(400 * DAY_SECS));
        policy.batch_rows = 4;
    });
    assert!(!prune_at(&mut store, &policy, days_from_now(10)).removed_anything());
    let report = prune_at(&mut store, &policy, days_from_now(401));
    assert_eq!(report.links_cut as i64, links_before, "{report}");
    assert!(report.transactions > 1, "cut in batches of 4 links: {report}");
    // Every row is still sealed, by exactly one carried link.
    let rows = count(
        &store,
        "SELECT (SELECT count(*) FROM alarms) + (SELECT count(*) FROM alarm_transitions) \
         + (SELECT count(*) FROM alarm_calls) + (SELECT count(*) FROM alarm_samples) + (SELECT count(*) FROM changes)",
    );
    assert_eq!(count(&store, "SELECT count(*) FROM chain"), rows);
    assert!(count(&store, "SELECT min(seq) FROM chain") > head_seq);
    let verification = store.verify_chain(None).unwrap();
    assert!(verification.ok(), "{:?}", verification.problems);
    assert!(
        verification.summary().contains("cut by retention"),
        "{}",
        verification.summary()
    );
    // The old head is the last cut link: its checkpoint is compared with an
    // anchor; an anchor between two checkpoints can only be noted.
    let verification = store.verify_chain(Some((head_seq, &head_hash))).unwrap();
    assert!(verification.ok() && verification.notes.is_empty(), "{verification:?}");
    let wrong = store.verify_chain(Some((head_seq, "0000"))).unwrap();
    assert!(!wrong.ok(), "a checkpoint that disagrees with the anchor is named");
    let between = store.verify_chain(Some((2, "0000"))).unwrap();
    assert!(between.ok() && between.notes.len() == 1, "{between:?}");
    // The chain goes on from its new head.
    store.set_status(3, Status::Processed, "bob", "done").unwrap();
    assert!(store.verify_chain(None).unwrap().ok());
    // An edit behind trailwarden's back is still caught after the cut.
    store
        .connection()
        .unwrap()
        .execute("UPDATE alarm_samples SET event = '{}' WHERE alarm_id = 2", [])
        .unwrap();
    let verification = store.verify_chain(None).unwrap();
    assert_eq!(verification.problems.len(), 3, "{:?}", verification.problems);
    assert!(verification.problems[0].message.contains("changed after"));
}

#[test]
fn a_damaged_link_is_never_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    three_alarms(&mut store);
    store
        .connection()
        .unwrap()
        .execute("UPDATE chain SET row_hash = 'forged' WHERE seq = 3", [])
        .unwrap();
    let links = count(&store, "SELECT count(*) FROM chain");
    let policy = only(|policy| policy.chain = Some(Duration::from_secs(DAY_SECS)));
    let report = prune_at(&mut store, &policy, days_from_now(2));
    assert_eq!(report.links_cut, 0);
    let error = report.chain_error.expect("the cut is refused");
    assert!(error.contains("link 3"), "{error}");
    assert_eq!(count(&store, "SELECT count(*) FROM chain"), links);
    assert!(!store.verify_chain(None).unwrap().ok());
}

#[test]
fn when_every_link_is_cut_the_next_link_follows_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    three_alarms(&mut store);
    // Remove every row through retention, then cut the whole chain.
    store.set_status(2, Status::Processed, "bob", "done").unwrap();
    store.set_status(3, Status::Processed, "bob", "done").unwrap();
    let policy = only(|policy| policy.processed_alarms = Some(Duration::from_secs(DAY_SECS)));
    prune_at(&mut store, &policy, days_from_now(2));
    let rows = count(&store, "SELECT count(*) FROM changes");
    let policy = only(|policy| policy.chain = Some(Duration::from_secs(DAY_SECS)));
    prune_at(&mut store, &policy, days_from_now(4));
    assert_eq!(count(&store, "SELECT count(*) FROM chain"), rows);
    let checkpoint = store
        .connection()
        .unwrap()
        .query_row("SELECT max(seq) FROM chain_checkpoints", [], |row| row.get::<_, i64>(0))
        .unwrap();
    store
        .write(&WriteBatch {
            alarms: vec![update("d", &["7.7.7.7"], 1, "2026-03-03T00:00:00.000Z")],
            ..WriteBatch::default()
        })
        .unwrap();
    assert_eq!(
        count(&store, "SELECT min(seq) FROM chain WHERE kind = 'alarm'"),
        checkpoint + 1 + rows,
        "numbering goes on after the checkpoint"
    );
    let verification = store.verify_chain(None).unwrap();
    assert!(verification.ok(), "{:?}", verification.problems);
}

#[test]
fn dead_letters_settled_notifications_and_old_rollups_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let connection = store.connection().unwrap();
    for (index, received) in [
        "2026-01-01T00:00:00.000Z",
        "2026-01-02T00:00:00.000Z",
        "2026-06-01T00:00:00.000Z",
    ]
    .iter()
    .enumerate()
    {
        connection
            .execute(
                "INSERT INTO dead_letters (received_at, source, origin, reason, excerpt) VALUES (?1, 'f', ?2, 'bad', 'x')",
                params![received, format!("f:{index}")],
            )
            .unwrap();
    }
    let old_ms = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    // 1: admitted and delivered (settled); 2: admitted, one delivery pending;
    // 3: queued; 4, 5: folded into digest 6 (settled); 7: folded, no digest yet.
    let messages = [
        (1, "admitted", None),
        (2, "admitted", None),
        (3, "queued", None),
        (6, "admitted", None),
        (4, "folded", Some(6)),
        (5, "folded", Some(6)),
        (7, "folded", None),
    ];
    for (id, state, digest) in messages {
        connection
            .execute(
                "INSERT INTO notify_messages (id, topic, kind, state, digest_id, created_at, created_ms) \
                 VALUES (?1, 'ops', 'config', ?2, ?3, '2026-01-01T00:00:00.000Z', ?4)",
                params![id, state, digest, old_ms],
            )
            .unwrap();
    }
    for (message, status) in [(1, "delivered"), (2, "pending"), (2, "delivered"), (6, "failed")] {
        connection
            .execute(
                "INSERT INTO notify_deliveries (message_id, topic, subscription, channel, delivery_id, status, \
                 next_attempt_ms, age_from_ms, created_at) VALUES (?1, 'ops', 's', 'webhook', ?2, ?3, 0, 0, 'x')",
                params![message, format!("{message}-{status}"), status],
            )
            .unwrap();
    }
    // Rollups: hours 0, 1 000 and 10 000 of the epoch; first-seen pairs at those hours.
    for (index, hour) in [0i64, 1_000, 10_000].iter().enumerate() {
        connection
            .execute(
                "INSERT INTO activity_hourly (key, hour_ms, provider, account_id, principal, source_ip, service, action, \
                 resource_type, error_code, call_method, count, failures) \
                 VALUES (?1, ?2, 'aws', '1', 'p', 'ip', 's', 'a', 'r', '', 'api', 1, 0)",
                params![(hour << 32) + index as i64, hour * 3_600_000],
            )
            .unwrap();
        connection
            .execute(
                "INSERT INTO activity_key_ips (access_key_id, source_ip, provider, account_id, principal, first_ms) \
                 VALUES ('AKIA', ?1, 'aws', '1', 'p', ?2)",
                params![format!("10.0.0.{index}"), hour * 3_600_000],
            )
            .unwrap();
    }
    let policy = only(|policy| {
        policy.dead_letters = Some(Duration::from_secs(90 * DAY_SECS));
        policy.notifications = Some(Duration::from_secs(30 * DAY_SECS));
        // 5 000 hours behind the newest (10 000): hour 1 000 and 0 go.
        policy.rollups = Some(Duration::from_secs(5_000 * 3_600));
        policy.batch_rows = 1;
    });
    let now = DateTime::parse_from_rfc3339("2026-06-02T00:00:00Z").unwrap().to_utc();
    let report = prune_at(&mut store, &policy, now);
    assert_eq!(report.dead_letters, 2, "{report}");
    assert_eq!((report.notify_messages, report.notify_deliveries), (4, 2), "{report}");
    assert_eq!((report.rollup_rows, report.key_ip_rows), (2, 2), "{report}");
    let left: Vec<i64> = store
        .connection()
        .unwrap()
        .prepare("SELECT id FROM notify_messages ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left, vec![2, 3, 7], "pending, queued and undigested messages stay");
    assert_eq!(count(&store, "SELECT count(*) FROM dead_letters"), 1);
    assert_eq!(count(&store, "SELECT min(key) >> 32 FROM activity_hourly"), 10_000);
    assert_eq!(report.transactions, 2 + 4 + 2 + 2, "one row per transaction: {report}");
}

#[test]
fn a_stop_request_ends_the_run_between_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    for index in 0..10 {
        store
            .connection()
            .unwrap()
            .execute(
                "INSERT INTO dead_letters (received_at, source, origin, reason, excerpt) \
                 VALUES ('2020-01-01T00:00:00.000Z', 'f', ?1, 'bad', 'x')",
                [format!("f:{index}")],
            )
            .unwrap();
    }
    let policy = only(|policy| {
        policy.dead_letters = Some(Duration::from_secs(DAY_SECS));
        policy.batch_rows = 3;
    });
    let runs = std::cell::Cell::new(0);
    let stop = || {
        runs.set(runs.get() + 1);
        runs.get() > 2
    };
    let report = prune(&mut store, &policy, Utc::now(), &stop).unwrap();
    assert_eq!((report.dead_letters, report.transactions), (6, 2));
    assert_eq!(count(&store, "SELECT count(*) FROM dead_letters"), 4);
}

#[test]
fn the_report_counts_the_kinds_the_metrics_show() {
    let kinds: Vec<&str> = PruneReport::default().counts().iter().map(|(kind, _)| *kind).collect();
    assert_eq!(kinds, crate::metrics::RETENTION_KINDS);
}
