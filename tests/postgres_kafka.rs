//! The daemon on a PostgreSQL store, consuming a real Kafka-protocol broker
//! (tansu): killed with SIGKILL at random moments, with a PostgreSQL restart
//! in the middle, it ends with the alarms, counts and dead letters of an
//! uninterrupted run on SQLite; and once another instance claims its
//! partitions, it commits nothing more and stops.
//!
//! A throw-away PostgreSQL cluster (`common::pg_cluster`) and a tansu broker
//! (`common::tansu`) are started here; `scripts/test` installs both.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Trailwarden;
use common::kafka::*;
use common::pg_cluster::{Postgres, kafka_progress as progress};
use common::tansu::Broker;

const TOPIC: &str = "audit";

fn write_config(dir: &Path, name: &str, brokers: &str, group: &str, store: &str) -> std::path::PathBuf {
    let extra = "batch_messages = 200\n\n[source.kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\
                 \"heartbeat.interval.ms\" = \"1000\"\n";
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, kafka_config(brokers, TOPIC, group, Path::new(store), extra)).expect("writing a config");
    path
}

/// The PostgreSQL store copied into a SQLite file (`store migrate --from`),
/// where the shared helpers and `store verify` read it.
fn copy_to_sqlite(url: &str, dir: &Path, name: &str) -> std::path::PathBuf {
    let copy = dir.join(format!("{name}.db"));
    Trailwarden::new().ok(&["store", "migrate", "--from", url, "--db", copy.to_str().unwrap()]);
    copy
}

#[test]
fn killed_at_random_moments_with_a_postgresql_restart_it_ends_with_the_alarms_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Postgres::start();
    let url = cluster.database("chaos");
    let broker = Broker::start("memory://tansu/", &dir.path().join("tansu.log"));
    broker.create_topic(TOPIC, 3);
    let mut messages = corpus(31, 20_000);
    let poison: Vec<Message> = poison(65_536).into_iter().map(|(message, _)| message).collect();
    let poison_count = poison.len();
    for (index, message) in poison.into_iter().enumerate() {
        messages.insert(800 + index * 2000, message);
    }
    produce(&broker.address(), TOPIC, &messages);
    let total = messages.len() as i64;

    // The uninterrupted run, on SQLite.
    let reference_db = dir.path().join("reference.db");
    let reference = write_config(
        dir.path(),
        "reference",
        &broker.address(),
        "reference",
        reference_db.to_str().unwrap(),
    );
    run_to_end(&reference, &dir.path().join("reference.log"));
    assert!(match_total(&reference_db) > 50, "the stream plants attacks");

    // The same stream in another group on PostgreSQL, killed at random moments.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_nanos() as u64)
        | 1;
    eprintln!("kill moments seed: {seed}");
    let mut random = Random(seed);
    let chaos = write_config(dir.path(), "chaos", &broker.address(), "chaos", &url);
    let log = dir.path().join("chaos.log");
    let mut kills = 0;
    let mut restarted = false;
    for round in 0..5 {
        let done = progress(&url, "chaos");
        if done >= total {
            break;
        }
        let target = done + 1 + (random.next() % ((total - done) as u64 / 4).max(1)) as i64;
        let mut child = daemon(&chaos, false, &log);
        let deadline = Instant::now() + Duration::from_secs(120);
        while progress(&url, "chaos") < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !restarted && round >= 1 {
            // PostgreSQL goes away under the running daemon and comes back.
            cluster.stop_immediately();
            std::thread::sleep(Duration::from_millis(1500));
            cluster.start_again();
            restarted = true;
            let resumed = progress(&url, "chaos");
            // Generous: the store stage's retries back off up to 5 s, and CI
            // runs this beside other tests.
            let deadline = Instant::now() + Duration::from_secs(180);
            while progress(&url, "chaos") <= resumed && progress(&url, "chaos") < total && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(
                progress(&url, "chaos") > resumed || progress(&url, "chaos") >= total,
                "the daemon did not go on after the PostgreSQL restart (exited: {:?})\n{}",
                child.exited(),
                tail(&log)
            );
        }
        // A short random pause: the daemon drains thousands of events in
        // a tenth of a second, and a kill after the end proves nothing.
        std::thread::sleep(Duration::from_millis(random.next() % 25));
        child.kill();
        if progress(&url, "chaos") < total {
            kills += 1;
        }
        eprintln!("round {round}: killed at {} of {total} stored", progress(&url, "chaos"));
    }
    run_to_end(&chaos, &log);
    assert!(restarted, "PostgreSQL was restarted mid-stream");
    assert!(kills >= 2, "the daemon was killed mid-stream {kills} times");
    assert_eq!(progress(&url, "chaos"), total);

    let copy = copy_to_sqlite(&url, dir.path(), "chaos-copy");
    let expected = alarm_fingerprint(&reference_db);
    let got = alarm_fingerprint(&copy);
    let missing: Vec<&String> = expected.iter().filter(|row| !got.contains(row)).take(5).collect();
    let extra: Vec<&String> = got.iter().filter(|row| !expected.contains(row)).take(5).collect();
    assert!(
        expected == got,
        "seed {seed}: alarms differ from the uninterrupted run\nmissing: {missing:#?}\nextra: {extra:#?}"
    );
    assert_eq!(match_total(&copy), match_total(&reference_db));
    assert_eq!(
        kafka_dead_letters(&copy).len(),
        poison_count,
        "each poison message once"
    );
    // The chain the daemon built on PostgreSQL, across kills and the
    // server's restart, verifies.
    let verify = Trailwarden::new().stdout(&["store", "verify", "--db", copy.to_str().unwrap()]);
    assert!(verify.starts_with("chain ok"), "{verify}");
}

#[test]
fn once_another_instance_claims_its_partitions_the_daemon_commits_nothing_more_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Postgres::start();
    let url = cluster.database("fenced");
    let broker = Broker::start("memory://tansu/", &dir.path().join("tansu.log"));
    broker.create_topic(TOPIC, 3);
    let messages = corpus(37, 3_000);
    let (first, second) = messages.split_at(1_500);
    produce(&broker.address(), TOPIC, first);
    let config = write_config(dir.path(), "fenced", &broker.address(), "fenced", &url);
    let log = dir.path().join("fenced.log");
    let mut child = daemon(&config, false, &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    while progress(&url, "fenced") < first.len() as i64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(progress(&url, "fenced"), first.len() as i64, "{}", tail(&log));
    let alarms_before = cluster.query_texts(&url, "SELECT COALESCE(SUM(count), 0) FROM alarms");

    // Another instance takes every partition (as after a rebalance the old
    // owner missed), then more records arrive.
    let mut other =
        trailwarden::alarm::store::Store::open(Path::new(&url), trailwarden::alarm::store::StoreOptions::default())
            .unwrap();
    for partition in 0..3 {
        other.claim_partition("fenced", TOPIC, partition, "other").unwrap();
    }
    produce(&broker.address(), TOPIC, second);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.exited() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill();
            panic!("the fenced daemon did not stop\n{}", tail(&log));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "a fenced daemon exits with an error");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("fenced"), "{}", tail(&log));
    // Nothing of the second half was committed by the old owner.
    assert_eq!(progress(&url, "fenced"), first.len() as i64);
    assert_eq!(
        cluster.query_texts(&url, "SELECT COALESCE(SUM(count), 0) FROM alarms"),
        alarms_before
    );
}
