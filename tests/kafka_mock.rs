//! The Kafka source against librdkafka's in-process mock cluster: a mixed
//! three-cloud stream over three partitions gives exactly the alarms a file
//! replay of the same records gives; a restart resumes from the stored
//! offsets without repeating anything; poison messages become dead letters
//! with topic, partition and offset (and copies on the dead-letter topic);
//! a second instance joining the group takes partitions over with no message
//! processed twice or skipped; a broker outage delays but loses nothing.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::kafka::*;
use common::wait_until;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message as _};
use rdkafka::mocking::MockCluster;
use trailwarden::config::Settings;
use trailwarden::daemon::Daemon;
use trailwarden::replay::{MatchFormat, ReplayRequest, replay};

const TOPIC: &str = "audit";
const MAX_MESSAGE_BYTES: usize = 65_536;
/// Longest wait for the mock cluster and the daemons on it.
const PATIENCE: Duration = Duration::from_secs(120);

/// The mock coordinator ignores LeaveGroup and holds a rejoin until the old
/// member's session expires: short sessions keep restarts quick.
const MOCK_SESSION: &str =
    "\n[source.kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n";

fn settings(brokers: &str, group: &str, db: &Path, extra: &str) -> Settings {
    let config = kafka_config(brokers, TOPIC, group, db, &format!("{extra}{MOCK_SESSION}"));
    Settings::from_toml("test", &config, false).expect("valid settings")
}

/// Run a daemon until every partition is read to its end.
fn run_once(settings: &Settings, db: &Path) -> trailwarden::pipeline::StatsSnapshot {
    let daemon = Daemon::start(settings, Some(db), true).expect("the daemon starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !daemon.source_finished() {
        assert!(Instant::now() < deadline, "the kafka source did not catch up in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    let report = daemon.shutdown();
    assert!(report.store_error.is_none(), "{:?}", report.store_error);
    report.stats
}

/// The reference: the same records replayed from a file.
fn replay_reference(dir: &Path, messages: &[Message], settings: &Settings) -> std::path::PathBuf {
    let corpus = dir.join("reference.jsonl");
    write_jsonl(&corpus, messages);
    let db = dir.join("reference.db");
    replay(
        settings,
        ReplayRequest {
            paths: vec![corpus.display().to_string()],
            format: MatchFormat::None,
            db: Some(db.clone()),
        },
    )
    .expect("the reference replay");
    db
}

fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("a mock cluster");
    cluster.create_topic(TOPIC, 3, 1).expect("the audit topic");
    cluster.create_topic("audit-dlq", 1, 1).expect("the dead-letter topic");
    cluster
}

#[test]
fn a_mixed_stream_gives_the_alarms_of_a_file_replay_and_a_restart_repeats_nothing() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kafka.db");
    let all = corpus(7, 3000);
    let (first, second) = all.split_at(2000);
    // The last five CloudTrail records of one account go in one `Records`
    // container message (keyed by that account, as a producer keeps an
    // account on one partition: across partitions, order is only kept within
    // the allowed lateness).
    let last_account = (0..first.len())
        .rev()
        .find(|&index| is_cloudtrail(&first[index]))
        .map(|index| first[index].key.clone())
        .expect("the corpus has CloudTrail records");
    let aws: Vec<usize> = (0..first.len())
        .filter(|&index| is_cloudtrail(&first[index]) && first[index].key == last_account)
        .collect();
    let in_container = &aws[aws.len() - 5..];
    let mut first_messages: Vec<Message> = (0..first.len())
        .filter(|index| !in_container.contains(index))
        .map(|index| first[index].clone())
        .collect();
    let grouped: Vec<Message> = in_container.iter().map(|&index| first[index].clone()).collect();
    first_messages.push(container(&grouped));
    let poison = poison(MAX_MESSAGE_BYTES);
    let poison_messages: Vec<Message> = poison.iter().map(|(message, _)| message.clone()).collect();
    produce(&brokers, TOPIC, &first_messages);
    produce(&brokers, TOPIC, &poison_messages);
    let settings = settings(&brokers, "g1", &db, "dead_letter_topic = \"audit-dlq\"");

    let stats = run_once(&settings, &db);
    assert_eq!(stats.events, 2000, "{stats:?}");
    assert_eq!(stats.malformed, poison.len() as u64, "{stats:?}");
    let reference = replay_reference(dir.path(), &first_messages, &settings);
    let got = alarm_fingerprint(&db);
    assert!(!got.is_empty() && match_total(&db) > 10, "the corpus plants attacks");
    assert_eq!(got, alarm_fingerprint(&reference), "kafka and file replay disagree");

    // Dead letters name topic, partition and offset, and say why.
    let letters = kafka_dead_letters(&db);
    assert_eq!(letters.len(), poison.len(), "{letters:?}");
    for (topic, partition, offset, reason) in &letters {
        assert_eq!(topic, TOPIC);
        assert!((0..3).contains(partition) && *offset >= 0, "{letters:?}");
        assert!(!reason.is_empty());
    }
    assert!(
        letters.iter().any(|(_, _, _, reason)| reason.contains("larger than")),
        "{letters:?}"
    );
    // … and each poison message was copied to the dead-letter topic with its origin.
    let copies = read_topic(&brokers, "audit-dlq", poison.len());
    assert_eq!(copies.len(), poison.len());
    for (headers, _) in &copies {
        let source = headers.get("tw-source").expect("a tw-source header");
        assert!(source.starts_with("kafka:audit/"), "{source}");
        assert!(headers.contains_key("tw-reason"));
    }

    // A restart with more messages: resumes after the stored offsets.
    let stored = stored_offsets(&db, "g1");
    assert_eq!(stored.len(), 3, "{stored:?}");
    let total_first: i64 = stored.iter().map(|(_, _, offset)| offset).sum();
    assert_eq!(total_first as usize, first_messages.len() + poison_messages.len());
    produce(&brokers, TOPIC, second);
    let stats = run_once(&settings, &db);
    assert_eq!(
        stats.events,
        second.len() as u64,
        "only the new messages are read: {stats:?}"
    );
    let reference_all = {
        let dir = dir.path().join("all");
        std::fs::create_dir_all(&dir).unwrap();
        let everything: Vec<Message> = first_messages.iter().chain(second).cloned().collect();
        replay_reference(&dir, &everything, &settings)
    };
    assert_eq!(
        alarm_fingerprint(&db),
        alarm_fingerprint(&reference_all),
        "after a restart the alarms still equal one replay of everything"
    );
    // Nothing new: a third run reads nothing and changes nothing.
    let before = alarm_fingerprint(&db);
    let stats = run_once(&settings, &db);
    assert_eq!(stats.events, 0, "{stats:?}");
    assert_eq!(alarm_fingerprint(&db), before);
}

#[test]
fn a_second_instance_takes_partitions_over_without_repeating_or_skipping() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let messages = corpus(11, 6000);
    produce(&brokers, TOPIC, &messages[..3000]);
    let db_a = dir.path().join("a.db");
    let db_b = dir.path().join("b.db");
    // Small batches so the first instance is mid-stream when the second joins.
    let extra = "";
    let settings_a = settings(&brokers, "shared", &db_a, extra);
    let settings_b = settings(&brokers, "shared", &db_b, extra);
    let a = Daemon::start(&settings_a, Some(&db_a), false).unwrap();
    wait_until("the first instance starts consuming", PATIENCE, || {
        a.stats().events >= 500
    });
    let b = Daemon::start(&settings_b, Some(&db_b), false).unwrap();
    wait_until("the second instance gets partitions", PATIENCE, || {
        b.metrics().kafka.rebalances.get() >= 1
    });
    produce(&brokers, TOPIC, &messages[3000..]);
    wait_until("both instances together read everything", PATIENCE, || {
        a.stats().events + b.stats().events >= messages.len() as u64
    });
    // The metrics registry saw it: messages, batches and (from librdkafka's
    // statistics, every 5 s) the lag of the partitions this instance holds.
    wait_until("partition lag reported", PATIENCE, || {
        a.metrics().render().contains("trailwarden_kafka_partition_lag{")
    });
    let text = a.metrics().render();
    assert!(!text.contains("trailwarden_kafka_messages_total 0\n"), "{text}");
    assert!(!text.contains("trailwarden_batch_seconds_count 0\n"), "{text}");
    assert!(text.contains("trailwarden_kafka_rebalances_total"), "{text}");
    // Let a late duplicate, if there were one, arrive before stopping.
    std::thread::sleep(Duration::from_secs(2));
    let report_a = a.shutdown();
    let report_b = b.shutdown();
    assert_eq!(
        report_a.stats.events + report_b.stats.events,
        messages.len() as u64,
        "every message processed exactly once across the group (a={}, b={})",
        report_a.stats.events,
        report_b.stats.events
    );
    assert!(
        report_b.stats.events > 0,
        "the second instance got partitions: {:?}",
        report_b.stats
    );
    // Every partition's stored offset (the furthest of the two stores) is its end.
    let mut furthest: HashMap<i32, i64> = HashMap::new();
    for db in [&db_a, &db_b] {
        for (_, partition, offset) in stored_offsets(db, "shared") {
            let entry = furthest.entry(partition).or_default();
            *entry = (*entry).max(offset);
        }
    }
    assert_eq!(furthest.values().sum::<i64>(), messages.len() as i64, "{furthest:?}");
}

#[test]
fn a_broker_outage_delays_but_loses_nothing() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outage.db");
    let messages = corpus(5, 2000);
    produce(&brokers, TOPIC, &messages[..1000]);
    let settings = settings(&brokers, "g-outage", &db, "");
    let daemon = Daemon::start(&settings, Some(&db), false).unwrap();
    wait_until("the first half is read", PATIENCE, || daemon.stats().events >= 1000);
    cluster.broker_down(1).expect("taking the broker down");
    std::thread::sleep(Duration::from_secs(3));
    cluster.broker_up(1).expect("bringing the broker back");
    produce(&brokers, TOPIC, &messages[1000..]);
    wait_until("the second half is read after the outage", PATIENCE, || {
        daemon.stats().events >= 2000
    });
    std::thread::sleep(Duration::from_secs(1));
    let report = daemon.shutdown();
    assert_eq!(report.stats.events, 2000, "{:?}", report.stats);
    let reference = replay_reference(dir.path(), &messages, &settings);
    assert_eq!(alarm_fingerprint(&db), alarm_fingerprint(&reference));
}

fn is_cloudtrail(message: &Message) -> bool {
    serde_json::from_slice::<serde_json::Value>(&message.payload)
        .ok()
        .and_then(|record| {
            record
                .get("eventSource")
                .and_then(|source| source.as_str())
                .map(|source| source.ends_with(".amazonaws.com"))
        })
        .unwrap_or(false)
}

/// Read `count` messages of a topic from the start: (headers, payload).
fn read_topic(brokers: &str, topic: &str, count: usize) -> Vec<(HashMap<String, String>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("a reader");
    consumer.subscribe(&[topic]).expect("subscribing");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < count && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let mut headers = HashMap::new();
            if let Some(list) = message.headers() {
                for header in list.iter() {
                    headers.insert(
                        header.key.to_string(),
                        String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                    );
                }
            }
            out.push((headers, message.payload().unwrap_or_default().to_vec()));
        }
    }
    out
}
