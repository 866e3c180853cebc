//! The PostgreSQL store against a real server: a throw-away cluster
//! (`initdb` + `pg_ctl` on a free port, `common::pg_cluster`).
//!
//! - a replay into PostgreSQL keeps the alarms, counts, call records,
//!   samples and chain links a replay into SQLite keeps;
//! - `store migrate` and concurrent opens of a new database;
//! - a Kafka partition's earlier owner is fenced: its batch commits nothing;
//! - a key inventory imported reaches every partition, merged with its state;
//! - a server restart between batches loses nothing: the store reconnects;
//!   an idle daemon goes on through one;
//! - retention prunes PostgreSQL as it prunes SQLite, and both chains verify;
//! - a rule set one member reloads reaches every member;
//! - `store backup` of a PostgreSQL store is a verified SQLite file, and
//!   `store restore` puts it into an empty database.

mod common;

use std::sync::Arc;

use common::pg_cluster::Postgres;
use common::webhook::Receiver;
use common::*;
use serde_json::{Value, json};
use trailwarden::alarm::chain::LinkKind;
use trailwarden::alarm::store::StateChanges;
use trailwarden::alarm::store::{AlarmIdentity, AlarmUpdate, CallRecord, Store, StoreError, StoreOptions, WriteBatch};
use trailwarden::rules::Level;
use trailwarden::rules::state::{EngineState, StateLimits};
use trailwarden::source::{KafkaOffset, PartitionScope};

fn options() -> StoreOptions {
    StoreOptions {
        synchronous_full: false,
        ..StoreOptions::default()
    }
}

fn update(rule: &str, group: &str, count: u64, at: &str) -> AlarmUpdate {
    AlarmUpdate {
        rule_id: rule.to_string(),
        rule_hash: "h".to_string(),
        level: Level::High,
        title: format!("{rule} title"),
        tags: vec![],
        group_key: group.to_string(),
        identity: AlarmIdentity {
            provider: "aws".to_string(),
            account_id: Some("111122223333".to_string()),
            account_identity: "root".to_string(),
            principal_kind: "root".to_string(),
            ..AlarmIdentity::default()
        },
        first_seen: at.to_string(),
        last_seen: at.to_string(),
        count,
        escalate: vec![],
        operations: vec![],
        last_output: "out".to_string(),
        calls: vec![CallRecord {
            source_ip: "203.0.113.9".to_string(),
            ip_kind: "public".to_string(),
            call_method: "api".to_string(),
            service: "iam".to_string(),
            action: "CreateUser".to_string(),
            success_count: count,
            failure_count: 0,
            first_call: at.to_string(),
            last_call: at.to_string(),
        }],
        samples: vec![],
    }
}

fn offset(partition: i32, next: i64) -> KafkaOffset {
    KafkaOffset {
        group: Arc::from("tw"),
        topic: Arc::from("audit"),
        partition,
        next_offset: next,
    }
}

/// A generated corpus of `events` records from `seed` (with `more` of the
/// generator's arguments) in `dir`.
fn generated(bin: &Trailwarden, dir: &std::path::Path, events: &str, seed: &str, more: &[&str]) -> std::path::PathBuf {
    let corpus = dir.join("corpus.jsonl");
    let mut args = vec![
        "generate",
        "--events",
        events,
        "--seed",
        seed,
        "--out",
        corpus.to_str().unwrap(),
    ];
    args.extend(more);
    bin.ok(&args);
    corpus
}

/// The alarms a store holds, without what differs between two stores
/// (ids, creation times), each with its call records and sample count.
fn fingerprint(bin: &Trailwarden, db: &str) -> Vec<Value> {
    let alarms: Vec<Value> =
        serde_json::from_str(&bin.stdout(&["alarms", "list", "--format", "json", "--db", db])).expect("alarms JSON");
    let mut rows: Vec<Value> = alarms
        .iter()
        .map(|alarm| {
            let id = alarm["id"].as_i64().expect("an id").to_string();
            let detail: Value =
                serde_json::from_str(&bin.stdout(&["alarms", "show", &id, "--format", "json", "--db", db]))
                    .expect("alarm JSON");
            let mut kept = alarm.clone();
            for field in ["id", "created_at", "updated_at"] {
                kept.as_object_mut().unwrap().remove(field);
            }
            kept["calls"] = detail["calls"].clone();
            kept["samples"] = Value::from(detail["samples"].as_array().map_or(0, Vec::len));
            // What the key did elsewhere and the principal's permissions,
            // read from the alarms and the rollups (other alarms by content).
            let mut association = detail["key_association"].clone();
            if let Some(others) = association["other_alarms"].as_array_mut() {
                for other in others.iter_mut() {
                    other.as_object_mut().unwrap().remove("id");
                }
                others.sort_by_key(|other| other.to_string());
            }
            kept["key_association"] = association;
            kept["permissions"] = detail["permissions"].clone();
            kept
        })
        .collect();
    rows.sort_by_key(|row| row.to_string());
    rows
}

#[test]
fn a_replay_into_postgresql_keeps_what_a_replay_into_sqlite_keeps() {
    let cluster = Postgres::start();
    let url = cluster.database("replay");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("store.db");
    let bin = Trailwarden::new();
    let corpus = generated(&bin, dir.path(), "4000", "19", &[]);
    let corpus = corpus.to_str().unwrap();
    // Rollups, key-operation traces and the event store are kept by both.
    for db in [sqlite.to_str().unwrap(), url.as_str()] {
        bin.ok(&["replay", "--format", "jsonl", "--db", db, corpus]);
    }
    // The event store answers the same searches alike: every event, a
    // key's, an address's, a failed call's, page by page.
    let events = |db: &str, filter: &[&str]| -> Vec<Value> {
        let mut args = vec!["events", "--db", db, "--format", "jsonl", "--limit", "1000"];
        args.extend(filter);
        let mut events = bin.jsonl(&args);
        for event in &mut events {
            // Where each is kept differs with how the batches fell.
            event.as_object_mut().unwrap().remove("position");
        }
        events
    };
    let everything = events(sqlite.to_str().unwrap(), &[]);
    assert_eq!(everything.len(), 1000, "a page of events");
    let ip = everything
        .iter()
        .find_map(|event| event["source_ip"].as_str())
        .expect("an event with an address")
        .to_string();
    let failure = ["--outcome", "failure"];
    for filter in [
        &[][..],
        &["--ip", ip.as_str()][..],
        &failure[..],
        &["--cloud", "tencent"][..],
    ] {
        let on_sqlite = events(sqlite.to_str().unwrap(), filter);
        assert!(!on_sqlite.is_empty(), "{filter:?} finds events");
        assert_eq!(events(&url, filter), on_sqlite, "events {filter:?}");
    }
    // A masked key (as the output shows it) is no search term; the key
    // comes from the store's own rows.
    let full_key = cluster.query_texts(
        &url,
        "SELECT access_key_id FROM activity_key_ips ORDER BY access_key_id LIMIT 1",
    );
    let by_key = events(&url, &["--key", full_key[0].as_str()]);
    assert!(!by_key.is_empty(), "a key's events");
    assert_eq!(
        by_key,
        events(sqlite.to_str().unwrap(), &["--key", full_key[0].as_str()])
    );
    // The god view and the traces read the same from both.
    let activity = |db: &str| bin.json(&["activity", "--db", db, "--format", "json", "--top", "50"]);
    let on_sqlite = activity(sqlite.to_str().unwrap());
    assert!(on_sqlite["events"].as_u64() > Some(3000), "{on_sqlite}");
    assert!(
        on_sqlite["new_key_ips_total"].as_u64() > Some(0),
        "the corpus has key-IP pairs: {on_sqlite}"
    );
    assert_eq!(activity(&url), on_sqlite, "the activity report");
    let traces = |db: &str| -> Vec<Value> {
        let mut traces = bin.jsonl(&["traces", "--db", db, "--format", "jsonl", "--limit", "1000"]);
        for trace in &mut traces {
            trace.as_object_mut().unwrap().remove("id");
        }
        traces
    };
    let sqlite_traces = traces(sqlite.to_str().unwrap());
    assert!(!sqlite_traces.is_empty(), "the corpus has key operations");
    assert_eq!(traces(&url), sqlite_traces, "the key-operation traces");
    let from_sqlite = fingerprint(&bin, sqlite.to_str().unwrap());
    let from_postgres = fingerprint(&bin, &url);
    assert!(
        from_sqlite.len() >= 10,
        "the corpus raises alarms: {}",
        from_sqlite.len()
    );
    assert_eq!(from_postgres.len(), from_sqlite.len(), "alarm count");
    for (postgres, sqlite) in from_postgres.iter().zip(&from_sqlite) {
        assert_eq!(postgres, sqlite);
    }
    // Every alarm, call record and sample written is sealed (how many times
    // depends on how the batches fell, so the rows sealed are compared) ...
    let sealed = "SELECT count(*) FROM (SELECT DISTINCT kind, ref_id FROM chain \
                  WHERE kind IN ('alarm', 'call', 'sample')) AS rows";
    let postgres_rows = cluster.query_texts(&url, sealed)[0].parse::<usize>().unwrap();
    let sqlite_rows = std::process::Command::new("sqlite3")
        .arg(&sqlite)
        .arg(sealed)
        .output()
        .unwrap();
    let sqlite_rows: usize = String::from_utf8_lossy(&sqlite_rows.stdout).trim().parse().unwrap();
    assert_eq!(postgres_rows, sqlite_rows, "rows sealed");
    // ... each row's last link holds the hash of the row as stored ...
    let mut db = trailwarden::db::PgConnection::connect(&url).unwrap();
    let last_links = cluster.query_texts(
        &url,
        "SELECT kind || ' ' || ref_id || ' ' || row_hash FROM chain c WHERE seq = \
         (SELECT max(seq) FROM chain d WHERE d.kind = c.kind AND d.ref_id = c.ref_id)",
    );
    assert_eq!(last_links.len(), postgres_rows);
    for link in last_links {
        let mut parts = link.split(' ');
        let kind = match parts.next().unwrap() {
            "alarm" => LinkKind::Alarm,
            "call" => LinkKind::Call,
            "sample" => LinkKind::Sample,
            other => panic!("a link of kind {other}"),
        };
        let id: i64 = parts.next().unwrap().parse().unwrap();
        let current = trailwarden::alarm::seal::row_hash(&mut db, kind, id).unwrap();
        assert_eq!(current.as_deref(), parts.next(), "{link}");
    }
    // ... and the links form one chain: consecutive, each on the last.
    let broken = cluster.query_texts(
        &url,
        "SELECT count(*) FROM chain c LEFT JOIN chain p ON p.seq = c.seq - 1 \
         WHERE c.seq > 1 AND (p.seq IS NULL OR c.prev_hash <> p.hash)",
    );
    assert_eq!(broken, vec!["0"]);
    // Replaying the same records again goes on from the stored engine state
    // (first-seen keys, windows …) on both backends alike.
    for db in [sqlite.to_str().unwrap(), url.as_str()] {
        bin.ok(&["replay", "--format", "jsonl", "--db", db, corpus]);
    }
    let again = fingerprint(&bin, &url);
    assert!(again != from_postgres, "the second replay counted");
    assert_eq!(again, fingerprint(&bin, sqlite.to_str().unwrap()));
    // `store stats` reads the database's and each table's size.
    let stats = bin.json(&["store", "stats", "--db", &url, "--format", "json"]);
    assert!(stats["file_bytes"].as_u64() > Some(0), "{stats}");
    assert!(stats["path"].as_str().unwrap().starts_with("postgres://"), "{stats}");
    let alarms = stats["tables"]
        .as_array()
        .and_then(|tables| tables.iter().find(|table| table["table"] == "alarms"))
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(alarms["rows"].as_u64(), Some(again.len() as u64), "{stats}");
    assert!(alarms["bytes"].as_u64() > Some(0), "{stats}");
    assert!(
        stats["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|table| table["table"] == "activity_hourly" && table["oldest"].is_string()),
        "{stats}"
    );
    // `store verify` checks the chain and every sealed row on PostgreSQL,
    // and an edit behind trailwarden's back is caught there.
    let verify = bin.stdout(&["store", "verify", "--db", &url]);
    assert!(verify.starts_with("chain ok"), "{verify}");
    cluster.query_texts(
        &url,
        "UPDATE alarms SET count = count + 1 WHERE id = (SELECT min(id) FROM alarms)",
    );
    let tampered = bin.run(&["store", "verify", "--db", &url]);
    let report = String::from_utf8_lossy(&tampered.stdout);
    assert!(!tampered.status.success(), "{report}");
    assert!(report.contains("was changed after this link sealed it"), "{report}");
}

#[test]
fn migrate_creates_the_schema_once_when_daemons_open_a_new_database_together() {
    let cluster = Postgres::start();
    let url = cluster.database("migrate");
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Store::open(std::path::Path::new(&url), options()).map(|_| ()))
        })
        .collect();
    for opener in openers {
        opener.join().unwrap().expect("a concurrent open migrates or waits");
    }
    let out = Trailwarden::new().stdout(&["store", "migrate", "--db", &url]);
    assert!(out.contains("PostgreSQL store"), "{out}");
    assert!(out.contains("schema version 2 of 2"), "{out}");
    assert_eq!(
        cluster.query_texts(&url, "SELECT count(*) FROM schema_migrations"),
        vec!["2"]
    );
    // The URL's password never reaches the output.
    let bad = Trailwarden::new().run(&[
        "store",
        "migrate",
        "--db",
        &format!("postgres://postgres:hunter2@127.0.0.1:{}/nonexistent", cluster.port),
    ]);
    assert!(!bad.status.success());
    let text = stderr(&bad);
    assert!(text.contains("nonexistent"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn an_earlier_owner_of_a_partition_commits_nothing() {
    let cluster = Postgres::start();
    let url = cluster.database("fencing");
    let path = std::path::Path::new(&url);
    let mut old_owner = Store::open(path, options()).unwrap();
    let mut new_owner = Store::open(path, options()).unwrap();
    assert_eq!(old_owner.claim_partition("tw", "audit", 0, "a").unwrap(), 1);
    let first = WriteBatch {
        alarms: vec![update("r1", "k", 2, "2026-03-02T00:00:00.000Z")],
        kafka_offsets: vec![offset(0, 10)],
        ..WriteBatch::default()
    };
    old_owner.write(&first).unwrap();
    // A rebalance gives partition 0 to another instance.
    assert_eq!(new_owner.claim_partition("tw", "audit", 0, "b").unwrap(), 2);
    let zombie = WriteBatch {
        alarms: vec![update("r1", "k", 5, "2026-03-02T00:00:05.000Z")],
        kafka_offsets: vec![offset(0, 20)],
        ..WriteBatch::default()
    };
    match old_owner.write(&zombie) {
        Err(StoreError::Fenced(message)) => assert!(message.contains("partition 0 of audit"), "{message}"),
        other => panic!("a fenced write must fail: {other:?}"),
    }
    // Nothing of the zombie's batch is there: not its count, not its offset.
    let counts = cluster.query_texts(&url, "SELECT count FROM alarms");
    assert_eq!(counts, vec!["2"]);
    assert_eq!(new_owner.kafka_offsets("tw").unwrap()[0].next_offset, 10);
    // The new owner goes on from the committed offset.
    let next = WriteBatch {
        alarms: vec![update("r1", "k", 5, "2026-03-02T00:00:05.000Z")],
        kafka_offsets: vec![offset(0, 20)],
        ..WriteBatch::default()
    };
    new_owner.write(&next).unwrap();
    assert_eq!(cluster.query_texts(&url, "SELECT count FROM alarms"), vec!["7"]);
    assert_eq!(new_owner.kafka_offsets("tw").unwrap()[0].next_offset, 20);
    // A store that never claimed the partition cannot move it either.
    let mut stranger = Store::open(path, options()).unwrap();
    assert!(matches!(stranger.write(&next), Err(StoreError::Fenced(_))));
}

/// One state change under a partition's scope (a first-seen tuple).
fn scoped_state(scope: &PartitionScope, key: u64, first_ms: i64) -> StateChanges {
    StateChanges {
        scope: Arc::from(scope.name()),
        first_seen: vec![(key, Some((first_ms, first_ms)))],
        ..StateChanges::default()
    }
}

fn partition(number: i32) -> PartitionScope {
    PartitionScope {
        group: Arc::from("tw"),
        topic: Arc::from("audit"),
        partition: number,
    }
}

/// State changes of partitions 0 and 1 with an offset of each, as one batch.
fn two_partitions(state: Vec<StateChanges>) -> WriteBatch {
    WriteBatch {
        state,
        fenced_scopes: vec![partition(0), partition(1)],
        kafka_offsets: vec![offset(0, 5), offset(1, 5)],
        ..WriteBatch::default()
    }
}

/// The engine state a store holds for `scope`.
fn loaded(store: &Store, scope: &str) -> EngineState {
    let mut state = EngineState::new(StateLimits::default());
    store.load_state(&mut state, Some(scope)).unwrap();
    state
}

#[test]
fn engine_state_is_kept_per_partition_and_an_earlier_owner_cannot_change_it() {
    let cluster = Postgres::start();
    let url = cluster.database("scopes");
    let path = std::path::Path::new(&url);
    let mut old_owner = Store::open(path, options()).unwrap();
    let mut new_owner = Store::open(path, options()).unwrap();
    old_owner.claim_partition("tw", "audit", 0, "a").unwrap();
    old_owner.claim_partition("tw", "audit", 1, "a").unwrap();
    // The same key in two partitions is two rows, each loaded with its own.
    old_owner
        .write(&two_partitions(vec![
            scoped_state(&partition(0), 7, 1_000),
            scoped_state(&partition(1), 7, 2_000),
        ]))
        .unwrap();
    let loaded = |store: &Store, scope: &str| loaded(store, scope).first_seen.get(7).copied();
    assert_eq!(loaded(&new_owner, &partition(0).name()), Some(1_000));
    assert_eq!(loaded(&new_owner, &partition(1).name()), Some(2_000));
    assert_eq!(loaded(&new_owner, ""), None, "nothing unscoped was written");
    // Partition 0 moves. A batch of the old owner that changes only its
    // state (events held across commits, released later) moves no offset
    // of it, and is fenced all the same.
    new_owner.claim_partition("tw", "audit", 0, "b").unwrap();
    let zombie = WriteBatch {
        state: vec![scoped_state(&partition(0), 7, 500)],
        fenced_scopes: vec![partition(0)],
        kafka_offsets: vec![offset(1, 9)],
        ..WriteBatch::default()
    };
    match old_owner.write(&zombie) {
        Err(StoreError::Fenced(message)) => assert!(message.contains("partition 0 of audit"), "{message}"),
        other => panic!("a change to a partition's state by its earlier owner must fail: {other:?}"),
    }
    assert_eq!(loaded(&new_owner, &partition(0).name()), Some(1_000));
    assert_eq!(
        new_owner
            .kafka_offsets("tw")
            .unwrap()
            .iter()
            .find(|stored| stored.partition == 1)
            .map(|stored| stored.next_offset),
        Some(5),
        "the fenced batch's other offsets are not committed either"
    );
}

/// `state import` on PostgreSQL: the inventory is read by every partition
/// with its own state, the earlier first use and the later last use kept,
/// and `from_inventory` only where the inventory's last use is the later.
#[test]
fn a_key_inventory_imported_into_postgresql_reaches_every_partition_merged_with_its_state() {
    use trailwarden::rules::state::{KeySeen, state_key};
    let cluster = Postgres::start();
    let url = cluster.database("inventory");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("keys.csv");
    std::fs::write(
        &csv,
        "provider,key_id,created,last_used\n\
         aws,AKIAINVENTORYKEY0001,2025-01-01,2025-06-01\n\
         aws,AKIAINVENTORYKEY0002,2025-01-01,2025-06-01\n",
    )
    .unwrap();
    let bin = Trailwarden::new();
    let out = bin.stdout(&["state", "import", csv.to_str().unwrap(), "--db", &url]);
    assert!(out.contains("2 keys imported"), "{out}");
    let ms = |day: &str| {
        chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    };
    let key = |id: &str| state_key(&["aws", id]);
    // Partition 0 saw the second key after the inventory's last use;
    // partition 1 saw it before, and first earlier than the inventory.
    let mut store = Store::open(std::path::Path::new(&url), options()).unwrap();
    store.claim_partition("tw", "audit", 0, "a").unwrap();
    store.claim_partition("tw", "audit", 1, "a").unwrap();
    let seen = |scope: &PartitionScope, first: &str, last: &str| StateChanges {
        scope: Arc::from(scope.name()),
        keys: vec![(
            key("AKIAINVENTORYKEY0002"),
            Some((
                KeySeen {
                    first_ms: ms(first),
                    last_ms: ms(last),
                    from_inventory: false,
                },
                ms(last),
            )),
        )],
        ..StateChanges::default()
    };
    store
        .write(&two_partitions(vec![
            seen(&partition(0), "2025-02-01", "2025-09-01"),
            seen(&partition(1), "2024-12-01", "2025-03-01"),
        ]))
        .unwrap();
    let loaded = |scope: &str, id: &str| loaded(&store, scope).keys.get(key(id)).copied();
    for number in [0, 1, 2] {
        assert_eq!(
            loaded(&partition(number).name(), "AKIAINVENTORYKEY0001"),
            Some(KeySeen {
                first_ms: ms("2025-01-01"),
                last_ms: ms("2025-06-01"),
                from_inventory: true,
            }),
            "partition {number} reads the inventory"
        );
    }
    assert_eq!(
        loaded(&partition(0).name(), "AKIAINVENTORYKEY0002"),
        Some(KeySeen {
            first_ms: ms("2025-01-01"),
            last_ms: ms("2025-09-01"),
            from_inventory: false,
        }),
        "the partition saw the key last"
    );
    assert_eq!(
        loaded(&partition(1).name(), "AKIAINVENTORYKEY0002"),
        Some(KeySeen {
            first_ms: ms("2024-12-01"),
            last_ms: ms("2025-06-01"),
            from_inventory: true,
        }),
        "the inventory saw the key last"
    );
    // Importing again merges, as on SQLite: the later last use stays.
    std::fs::write(&csv, "provider,key_id,last_used\naws,AKIAINVENTORYKEY0001,2025-04-01\n").unwrap();
    bin.ok(&["state", "import", csv.to_str().unwrap(), "--db", &url]);
    assert_eq!(
        loaded(&partition(2).name(), "AKIAINVENTORYKEY0001").map(|seen| seen.last_ms),
        Some(ms("2025-06-01"))
    );
}

#[test]
fn a_server_restart_between_batches_loses_nothing() {
    let cluster = Postgres::start();
    let url = cluster.database("restart");
    let mut store = Store::open(std::path::Path::new(&url), options()).unwrap();
    store
        .write(&WriteBatch {
            alarms: vec![update("r1", "k", 3, "2026-03-02T00:00:00.000Z")],
            ..WriteBatch::default()
        })
        .unwrap();
    cluster.restart_immediately();
    let second = WriteBatch {
        alarms: vec![update("r1", "k", 4, "2026-03-02T00:00:09.000Z")],
        ..WriteBatch::default()
    };
    // The first attempt may meet the dead connection; it is transient, and
    // the next attempt reconnects (the store stage retries so).
    let mut attempts = 0;
    loop {
        attempts += 1;
        match store.write(&second) {
            Ok(_) => break,
            Err(error) if error.is_transient_database() && attempts < 20 => {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(error) => panic!("after {attempts} attempts: {error}"),
        }
    }
    assert_eq!(cluster.query_texts(&url, "SELECT count FROM alarms"), vec!["7"]);
    assert_eq!(
        cluster.query_texts(&url, "SELECT count(*) FROM chain WHERE kind = 'alarm'"),
        vec!["2"]
    );
}

#[test]
fn an_idle_daemon_goes_on_after_its_postgresql_server_restarts() {
    const KEY: &str = "AKIDpg0b1c2d3e4f5g6h7i8j9k0l1m2n3o4p6";
    let cluster = Postgres::start();
    let url = cluster.database("idle_restart");
    let (sandbox, mut daemon, _http) = daemon_with_api(&url, "");
    // No events come: the store stage still asks the server every second
    // whether another connection changed the policies. The first question
    // after the restart meets the dead connection.
    cluster.restart_immediately();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        daemon.exited().is_none(),
        "the daemon stopped on the restart:\n{}",
        daemon.stderr()
    );
    let records: Vec<Value> = (0..2)
        .map(|index| {
            tencent_create_key(
                &format!("after-{index}"),
                1_772_416_800 + index * 60,
                KEY,
                "45.76.218.92",
            )
        })
        .collect();
    let temporary = sandbox.path("after.jsonl");
    write_jsonl(&temporary, &records);
    std::fs::rename(&temporary, sandbox.path("watch").join("after.jsonl")).unwrap();
    let stored = || {
        cluster.query_texts(
            &url,
            "SELECT coalesce(sum(count), 0) FROM alarms WHERE rule_id = 'access-key-created'",
        ) == vec!["2"]
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !stored() {
        assert!(
            std::time::Instant::now() < deadline && daemon.exited().is_none(),
            "the events after the restart were not stored:\n{}",
            daemon.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // It stops cleanly: its API's PostgreSQL connections, dropped on the
    // async runtime's threads, close without a panic.
    assert!(daemon.terminate(), "SIGTERM");
    let status = daemon
        .wait_timeout(std::time::Duration::from_secs(60))
        .expect("the daemon stops on SIGTERM");
    let stderr = daemon.stderr();
    assert!(status.success() && !stderr.contains("panicked"), "{status}\n{stderr}");
}

/// Rows per table of a SQLite store, as `table rows` lines.
fn table_rows(db: &std::path::Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .iter()
        .map(|table| {
            let rows: i64 = connection
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get(0))
                .unwrap();
            format!("{table} {rows}")
        })
        .collect()
}

#[test]
fn a_sqlite_store_moves_to_postgresql_and_back_with_every_row_and_a_chain_that_verifies() {
    let cluster = Postgres::start();
    let url = cluster.database("moved");
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.db");
    let back = dir.path().join("back.db");
    let bin = Trailwarden::new();
    let corpus = generated(&bin, dir.path(), "3000", "5", &[]);
    // A SQLite store with everything in it: alarms, rollups, traces, the
    // event store, state, and an operator's status change.
    bin.ok(&[
        "replay",
        "--format",
        "jsonl",
        "--db",
        original.to_str().unwrap(),
        corpus.to_str().unwrap(),
    ]);
    bin.ok(&[
        "alarms",
        "set-status",
        "1",
        "ignored",
        "--actor",
        "secops",
        "--reason",
        "known",
        "--db",
        original.to_str().unwrap(),
    ]);
    let out = bin.stdout(&["store", "migrate", "--from", original.to_str().unwrap(), "--db", &url]);
    assert!(out.contains("copied"), "{out}");
    assert!(out.contains("schema version 2 of 2"), "{out}");
    // The moved store answers like the original.
    assert_eq!(fingerprint(&bin, &url), fingerprint(&bin, original.to_str().unwrap()));
    // New alarms get new ids after the copied ones.
    let mut store = Store::open(std::path::Path::new(&url), options()).unwrap();
    store
        .write(&WriteBatch {
            alarms: vec![update("moved-rule", "k", 1, "2026-03-09T00:00:00.000Z")],
            ..WriteBatch::default()
        })
        .unwrap();
    drop(store);
    // Back into a new SQLite file: every table holds what it held, plus
    // that alarm, and the chain verifies.
    bin.ok(&["store", "migrate", "--from", &url, "--db", back.to_str().unwrap()]);
    let verify = bin.stdout(&["store", "verify", "--db", back.to_str().unwrap()]);
    assert!(verify.starts_with("chain ok"), "{verify}");
    let before = table_rows(&original);
    let after = table_rows(&back);
    assert!(
        before
            .iter()
            .any(|line| line.starts_with("event_blocks ") && !line.ends_with(" 0"))
    );
    for (was, is) in before.iter().zip(&after) {
        if was.starts_with("alarms ") || was.starts_with("chain ") || was.starts_with("alarm_calls ") {
            assert_ne!(was, is, "the new alarm is there");
        } else {
            assert_eq!(was, is);
        }
    }
    // A store that is not empty is never copied into.
    let again = bin.run(&["store", "migrate", "--from", original.to_str().unwrap(), "--db", &url]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
}

const ADMIN_TOKEN: &str = "tw_test_admin_token_0123456789abcdef0123456789a";

/// A daemon on the PostgreSQL store at `url` with its API and `more`
/// configuration; `(daemon, base URL)`.
fn daemon_with_api(url: &str, more: &str) -> (Sandbox, Daemon, Http) {
    daemon_with_config(url, more, |config| config)
}

/// `daemon_with_api` with more of its configuration set by `adjust`.
fn daemon_with_config(url: &str, more: &str, adjust: impl FnOnce(Config) -> Config) -> (Sandbox, Daemon, Http) {
    let sandbox = Sandbox::new();
    let watch = sandbox.path("watch");
    std::fs::create_dir_all(&watch).unwrap();
    let token = hex::encode(trailwarden::api::auth::hash_token(ADMIN_TOKEN));
    sandbox.write_config(
        &adjust(
            Config::standard(&sandbox.store)
                .set("store", "url", url)
                .files(&[&watch])
                .set("source.files", "poll_interval", "100ms")
                .set("source.files", "settle", "0s")
                .set("pipeline", "max_hold", "100ms"),
        )
        .append(&format!(
            "\n[[api.tokens]]\nname = \"ada\"\nrole = \"admin\"\nsha256 = \"{token}\"\n{more}"
        )),
    );
    let daemon = sandbox.start(&["run"], Log::Collect);
    let printed = daemon.read_lines_until(std::time::Duration::from_secs(60), |line| {
        line.starts_with("console: http://")
    });
    let address = printed
        .lines()
        .find_map(|line| line.strip_prefix("console: http://"))
        .map(|base| base.trim_end_matches('/').to_string())
        .unwrap_or_else(|| panic!("no console URL printed: {}", daemon.stderr()));
    let http = Http::new(address, std::time::Duration::from_secs(30));
    wait_until("the API to be ready", std::time::Duration::from_secs(30), || {
        http.get("/readyz", None).is_ok_and(|reply| reply.status == 200)
    });
    (sandbox, daemon, http)
}

#[test]
fn two_daemons_on_one_postgresql_store_serve_the_same_alarms_and_see_each_others_changes() {
    let cluster = Postgres::start();
    let url = cluster.database("view");
    Trailwarden::new().ok(&["replay", "--format", "jsonl", "--db", &url, "examples"]);
    // Both send status notifications to one webhook from the shared outbox.
    let hook = Receiver::start(0);
    let notify = format!(
        "\n[notify]\npoll_interval = \"50ms\"\n\n[[notify.topics]]\nname = \"triage\"\nmin_level = \"info\"\non = [\"status\"]\n\n\
         [[notify.topics.subscriptions]]\nname = \"hook\"\nwebhook = \"{}\"\n",
        hook.url("/hook")
    );
    let (a_box, a_daemon, a) = daemon_with_api(&url, &notify);
    let (_b_box, b_daemon, b) = daemon_with_api(&url, &notify);
    let list = |http: &Http| -> Value {
        let reply = http
            .get("/api/v1/alarms?status=unprocessed", Some(ADMIN_TOKEN))
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    };
    let ids = |alarms: &Value| -> Vec<i64> {
        alarms["items"]
            .as_array()
            .expect("a list of alarms")
            .iter()
            .map(|alarm| alarm["id"].as_i64().unwrap())
            .collect()
    };
    let from_a = ids(&list(&a));
    assert!(!from_a.is_empty());
    assert_eq!(from_a, ids(&list(&b)));
    // A status change through one daemon is what the other serves.
    let id = from_a[0];
    let body = json!({"status": "processed", "reason": "handled in the ticket"}).to_string();
    let reply = a
        .request(
            "POST",
            &format!("/api/v1/alarms/{id}/status"),
            Some(ADMIN_TOKEN),
            Some(("application/json", body.as_bytes())),
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let shown = b
        .get(&format!("/api/v1/alarms/{id}"), Some(ADMIN_TOKEN))
        .unwrap()
        .json();
    assert_eq!(shown["status"], "processed", "{shown}");
    assert_eq!(shown["history"][0]["reason"], "handled in the ticket", "{shown}");
    assert!(!ids(&list(&b)).contains(&id));
    // More changes, through both: each is notified once, by one of the two
    // daemons whose workers poll the same outbox.
    for (index, other) in from_a.iter().skip(1).take(8).enumerate() {
        let through = if index % 2 == 0 { &a } else { &b };
        let body = json!({"status": "ignored", "reason": format!("noise {index}")}).to_string();
        let reply = through
            .request(
                "POST",
                &format!("/api/v1/alarms/{other}/status"),
                Some(ADMIN_TOKEN),
                Some(("application/json", body.as_bytes())),
            )
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let changes = 1 + (from_a.len() - 1).min(8);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while hook.on("/hook").len() < changes {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {changes} status notifications\n{}\n{}\n----\n{}",
            hook.on("/hook").len(),
            b.get("/api/v1/notifications/deliveries", Some(ADMIN_TOKEN))
                .unwrap()
                .body,
            a_daemon.stderr(),
            b_daemon.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let received: Vec<String> = hook
        .on("/hook")
        .iter()
        .map(|request| request.header("X-Trailwarden-Delivery").to_string())
        .collect();
    let distinct: std::collections::BTreeSet<&String> = received.iter().collect();
    assert_eq!(
        received.len(),
        changes,
        "one delivery per change, cluster-wide: {received:?}"
    );
    assert_eq!(distinct.len(), changes, "each delivery once: {received:?}");
    // The API lists them as delivered, from either daemon.
    let deliveries = b
        .get("/api/v1/notifications/deliveries?status=delivered", Some(ADMIN_TOKEN))
        .unwrap();
    assert_eq!(deliveries.status, 200, "{}", deliveries.body);
    assert_eq!(
        deliveries.json().as_array().map(Vec::len),
        Some(changes),
        "{}",
        deliveries.body
    );
    // Operator data is shared too. A policy, a remark and an asset added
    // through B are what A lists, and A's engine applies the policy at once
    // (the change log's last id tells it another daemon changed them).
    const KEY: &str = "AKIDpg0b1c2d3e4f5g6h7i8j9k0l1m2n3o4p5";
    let send = |http: &Http, method: &str, path: &str, body: Value| {
        let body = body.to_string();
        let reply = http
            .request(
                method,
                path,
                Some(ADMIN_TOKEN),
                Some(("application/json", body.as_bytes())),
            )
            .unwrap();
        assert!(reply.status < 300, "{method} {path}: {} {}", reply.status, reply.body);
        reply.json()
    };
    let write_events = |name: &str, first: i64, count: i64| {
        let records: Vec<Value> = (0..count)
            .map(|index| tencent_create_key(&format!("{name}-{index}"), first + index * 60, KEY, "45.76.218.92"))
            .collect();
        let temporary = a_box.path(name);
        write_jsonl(&temporary, &records);
        std::fs::rename(&temporary, a_box.path("watch").join(name)).unwrap();
    };
    let key_alarms = || -> i64 {
        a.get("/api/v1/alarms?limit=500", Some(ADMIN_TOKEN)).unwrap().json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|alarm| {
                alarm["rule"] == "access-key-created"
                    && alarm["access_key_id"] == trailwarden::mask::mask_access_key(KEY).as_str()
            })
            .map(|alarm| alarm["count"].as_i64().unwrap_or(0))
            .sum()
    };
    write_events("before.jsonl", 1_772_416_800, 2);
    let explain = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}\nkey alarm count {}; policies {}\n{}\n----\n{}",
                key_alarms(),
                a.get("/api/v1/allowlist", Some(ADMIN_TOKEN)).unwrap().body,
                a_daemon.stderr(),
                b_daemon.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    explain("A counts the key's first calls", &|| key_alarms() == 2);
    let policy = send(
        &b,
        "POST",
        "/api/v1/allowlist",
        json!({"key": KEY, "rule": "access-key-created", "reason": "the rotation job"}),
    );
    send(
        &b,
        "PUT",
        "/api/v1/remarks",
        json!({"kind": "ip", "value": "45.76.218.92", "remark": "rotation host"}),
    );
    send(
        &b,
        "POST",
        "/api/v1/assets",
        json!({"cidr": "45.76.218.0/24", "name": "build network"}),
    );
    let listed = a.get("/api/v1/allowlist", Some(ADMIN_TOKEN)).unwrap();
    assert_eq!(listed.status, 200, "{}", listed.body);
    let listed = listed.json();
    let shown = listed
        .as_array()
        .and_then(|policies| policies.iter().find(|each| each["id"] == policy["id"]))
        .unwrap_or_else(|| panic!("A lists the policy added through B: {listed}"));
    assert_eq!(shown["state"], "active", "sealed on PostgreSQL: {shown}");
    let remarks = a.get("/api/v1/remarks", Some(ADMIN_TOKEN)).unwrap().body;
    assert!(remarks.contains("rotation host"), "{remarks}");
    let assets = a.get("/api/v1/assets", Some(ADMIN_TOKEN)).unwrap().body;
    assert!(assets.contains("build network"), "{assets}");
    let changes = a.get("/api/v1/changes", Some(ADMIN_TOKEN)).unwrap().json();
    let subjects: Vec<&str> = changes
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|change| change["subject"].as_str())
        .collect();
    for subject in ["policy", "remark", "asset"] {
        assert!(
            subjects.contains(&subject),
            "the change log has the {subject}: {changes}"
        );
    }
    // A's store stage looks at the change log's last id after each batch
    // and every second while idle; the engine applies what it reloaded from
    // its next batch on.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    write_events("after.jsonl", 1_772_416_800 + 600, 3);
    let hits_now = || -> i64 {
        a.get("/api/v1/allowlist", Some(ADMIN_TOKEN)).unwrap().json()[0]["hit_count"]
            .as_i64()
            .unwrap_or(0)
    };
    explain("A's engine applies the policy added through B", &|| hits_now() == 3);
    assert_eq!(key_alarms(), 2, "the allowed calls are not counted on the alarm");
    // The chain sealed the change: a copy verifies.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    Trailwarden::new().ok(&["store", "migrate", "--from", &url, "--db", copy.to_str().unwrap()]);
    let verify = Trailwarden::new().stdout(&["store", "verify", "--db", copy.to_str().unwrap()]);
    assert!(verify.starts_with("chain ok"), "{verify}");
}

#[test]
fn retention_prunes_a_postgresql_store_as_it_prunes_sqlite_and_both_chains_still_verify() {
    use trailwarden::alarm::retention::{PruneReport, RetentionPolicy, prune};
    use trailwarden::alarm::workflow::Status;

    let cluster = Postgres::start();
    let url = cluster.database("retention");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("store.db");
    let bin = Trailwarden::new();
    let corpus = generated(&bin, dir.path(), "3000", "23", &["--days", "3"]);
    let stores = [sqlite.to_str().unwrap(), url.as_str()];
    for db in stores {
        bin.ok(&["replay", "--format", "jsonl", "--db", db, corpus.to_str().unwrap()]);
    }
    // Hourly rollups are kept an hour behind the newest; everything else at
    // the shipped defaults, pruned as if 500 days had passed: processed
    // alarms (365 days) go with their evidence, and every chain link (400
    // days) is cut, the live rows' seals carried to the head.
    let policy = RetentionPolicy {
        rollups: Some(std::time::Duration::from_secs(3_600)),
        batch_rows: 200,
        ..RetentionPolicy::default()
    };
    let later = chrono::Utc::now() + chrono::Duration::days(500);
    let mut reports: Vec<PruneReport> = Vec::new();
    for db in stores {
        let mut store = Store::open(std::path::Path::new(db), options()).unwrap();
        let alarms = bin.json(&["alarms", "list", "--format", "json", "--limit", "100000", "--db", db]);
        for alarm in alarms.as_array().unwrap() {
            if alarm["level"] == "medium" {
                let id = alarm["id"].as_i64().unwrap();
                store
                    .set_status(id, Status::Processed, "retention-test", "handled")
                    .unwrap();
            }
        }
        reports.push(prune(&mut store, &policy, later, &|| false).unwrap());
    }
    let (on_sqlite, on_postgres) = (&reports[0], &reports[1]);
    eprintln!("retention: SQLite {on_sqlite}; PostgreSQL {on_postgres}");
    assert!(
        on_postgres.alarms > 0 && on_postgres.samples > 0 && on_postgres.calls > 0,
        "{on_postgres}"
    );
    assert!(
        on_postgres.rollup_rows > 0 && on_postgres.links_cut > 0,
        "{on_postgres}"
    );
    assert!(on_postgres.transactions > 1, "in small transactions: {on_postgres}");
    assert_eq!(on_postgres.chain_error, None);
    // The same rows go from both; how many links the chain had depends on how
    // the batches fell, so links cut and transactions may differ.
    let rows = |report: &PruneReport| {
        let mut counts = report.counts().to_vec();
        counts.retain(|(kind, _)| *kind != "chain_links_cut");
        counts
    };
    assert_eq!(rows(on_postgres), rows(on_sqlite));
    assert_eq!(fingerprint(&bin, &url), fingerprint(&bin, stores[0]), "the alarms kept");
    for db in stores {
        let verify = bin.stdout(&["store", "verify", "--db", db]);
        assert!(verify.starts_with("chain ok"), "{db}: {verify}");
    }
    let checkpoints = cluster.query_texts(&url, "SELECT count(*) FROM chain_checkpoints");
    assert_ne!(checkpoints, vec!["0"], "the cut left checkpoints");
    // The chain goes on from the checkpoint, and `store prune` runs on
    // PostgreSQL from the command line (nothing is past its time today).
    bin.ok(&["replay", "--format", "jsonl", "--db", &url, corpus.to_str().unwrap()]);
    let verify = bin.stdout(&["store", "verify", "--db", &url]);
    assert!(verify.starts_with("chain ok"), "{verify}");
    let pruned = bin.stdout(&["store", "prune", "--db", &url]);
    assert!(pruned.starts_with("removed: alarms 0"), "{pruned}");
}

/// A copy of the rule pack in its own directory.
fn rules_copy() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(rules_dir()).unwrap().flatten() {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
    }
    copy
}

/// Give the first rule of tampering.yaml another title (a new rule set).
fn retitle(rules: &std::path::Path, title: &str) {
    let path = rules.join("tampering.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let (before, after) = text.split_once("    title: ").unwrap();
    let rest = after.split_once('\n').unwrap().1;
    std::fs::write(&path, format!("{before}    title: {title}\n{rest}")).unwrap();
}

#[test]
fn a_rule_set_one_member_reloads_reaches_every_member_and_different_files_are_named() {
    let cluster = Postgres::start();
    let url = cluster.database("reload");
    let copies = [rules_copy(), rules_copy()];
    let start = |rules: &std::path::Path| daemon_with_config(&url, "", |config| config.set("rules", "dir", rules));
    let (_a_dir, mut a, http_a) = start(copies[0].path());
    let (_b_dir, mut b, http_b) = start(copies[1].path());
    let version = |http: &Http| {
        let reply = http.get("/api/v1/rules", Some(ADMIN_TOKEN)).expect("/api/v1/rules");
        reply.json()["version"].as_str().expect("a version").to_string()
    };
    let before = version(&http_a);
    assert_eq!(version(&http_b), before);
    // The same edit in both members' files (as a shared volume or
    // configuration management gives), reloaded through A's API only.
    for copy in &copies {
        retitle(copy.path(), "Audit logging stopped (cluster reload drill)");
    }
    let reply = http_a
        .request("POST", "/api/v1/rules/reload", Some(ADMIN_TOKEN), None)
        .expect("reload");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let after = version(&http_a);
    assert_ne!(after, before, "A runs the new rule set");
    wait_until(
        "B to reload the rule set A recorded",
        std::time::Duration::from_secs(30),
        || version(&http_b) == after,
    );
    // Files that differ: only A's change. B reloads, keeps its own set and says so.
    retitle(copies[0].path(), "Audit logging stopped (only on A)");
    let reply = http_a
        .request("POST", "/api/v1/rules/reload", Some(ADMIN_TOKEN), None)
        .expect("reload");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let on_a = version(&http_a);
    assert_ne!(on_a, after);
    wait_until("B to name the difference", std::time::Duration::from_secs(30), || {
        b.stderr()
            .contains("another member runs a rule set this member's rule files do not give")
    });
    assert_eq!(version(&http_b), after, "B keeps the set its files give");
    for daemon in [&mut a, &mut b] {
        assert!(daemon.terminate());
        assert!(daemon.wait().success(), "{}", daemon.stderr());
    }
}

#[test]
fn a_postgresql_store_backs_up_to_a_verified_file_and_restores_into_an_empty_database() {
    let cluster = Postgres::start();
    let url = cluster.database("live");
    let dir = tempfile::tempdir().unwrap();
    let bin = Trailwarden::new();
    let corpus = generated(&bin, dir.path(), "2000", "29", &[]);
    bin.ok(&["replay", "--format", "jsonl", "--db", &url, corpus.to_str().unwrap()]);
    let backup = dir.path().join("backup.db");
    let backup_arg = backup.to_str().unwrap();
    let said = bin.stdout(&["store", "backup", backup_arg, "--db", &url]);
    assert!(said.starts_with("backup written to"), "{said}");
    assert!(!dir.path().join("backup.db.partial").exists());
    // A SQLite file: every command reads it, its chain verifies, it holds the store.
    let verify = bin.stdout(&["store", "verify", "--db", backup_arg]);
    assert!(verify.starts_with("chain ok"), "{verify}");
    let live = fingerprint(&bin, &url);
    assert!(!live.is_empty());
    assert_eq!(fingerprint(&bin, backup_arg), live);
    // A backup never overwrites a file.
    let again = bin.run(&["store", "backup", backup_arg, "--db", &url]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // Restored into a new database: the same alarms, a chain that verifies,
    // and the password of the URL is not printed.
    let fresh = cluster.database("restored");
    let said = bin.stdout(&["store", "restore", backup_arg, "--db", &fresh]);
    assert!(said.starts_with("backup verified: chain ok"), "{said}");
    assert!(said.contains("restored into postgres://"), "{said}");
    assert_eq!(fingerprint(&bin, &fresh), live);
    let verify = bin.stdout(&["store", "verify", "--db", &fresh]);
    assert!(verify.starts_with("chain ok"), "{verify}");
    // The store goes on there: ids continue after the restored ones.
    bin.ok(&["replay", "--format", "jsonl", "--db", &fresh, corpus.to_str().unwrap()]);
    let verify = bin.stdout(&["store", "verify", "--db", &fresh]);
    assert!(verify.starts_with("chain ok"), "{verify}");

    // A database that holds a store is never replaced: refused, unchanged.
    let refused = bin.run(&["store", "restore", backup_arg, "--db", &url]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("the destination is not empty"), "{message}");
    assert_eq!(fingerprint(&bin, &url), live);
    // A backup edited behind trailwarden's back is refused before anything is written.
    let edited = std::process::Command::new("sqlite3")
        .arg(&backup)
        .arg("UPDATE alarms SET count = count + 1 WHERE id = (SELECT min(id) FROM alarms)")
        .status()
        .unwrap();
    assert!(edited.success());
    let other = cluster.database("tampered");
    let refused = bin.run(&["store", "restore", backup_arg, "--db", &other]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("fails verification"), "{message}");
    let rows = cluster.query_texts(
        &other,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'alarms'",
    );
    if rows == vec!["1"] {
        assert_eq!(cluster.query_texts(&other, "SELECT count(*) FROM alarms"), vec!["0"]);
    }
}
