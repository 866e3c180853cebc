//! End to end against a real Kafka-protocol broker (tansu, started here):
//! the `trailwarden run` binary consumes a mixed three-cloud stream over
//! three partitions; killed with SIGKILL at random moments and restarted
//! several times it ends with exactly the alarms, counts and dead letters of
//! an uninterrupted run; a broker restart mid-stream loses nothing.
//!
//! `scripts/test` installs tansu (`cargo install tansu --features
//! dynostore,libsql`); set `TANSU` to use another binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Trailwarden;
use common::kafka::*;
use common::pg_cluster::{Postgres, kafka_progress};
use common::tansu::Broker;

const TOPIC: &str = "audit";

/// A daemon config for the binary; short sessions so a killed member's
/// partitions come back quickly.
fn write_config(dir: &Path, name: &str, brokers: &str, group: &str, db: &Path) -> PathBuf {
    let extra = "batch_messages = 200\n\n[source.kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\
                 \"heartbeat.interval.ms\" = \"1000\"\n";
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, kafka_config(brokers, TOPIC, group, db, extra)).expect("writing a config");
    path
}

/// Messages the store has marked consumed (sum of stored next offsets).
fn progress(db: &Path, group: &str) -> i64 {
    if !db.exists() {
        return 0;
    }
    let Ok(connection) = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return 0;
    };
    connection
        .query_row(
            "SELECT COALESCE(SUM(next_offset), 0) FROM kafka_offsets WHERE group_id = ?1",
            [group],
            |row| row.get(0),
        )
        .unwrap_or(0)
}

fn stream() -> (Vec<Message>, usize) {
    let mut messages = corpus(23, 12_000);
    let poison: Vec<Message> = poison(65_536).into_iter().map(|(message, _)| message).collect();
    let poison_count = poison.len();
    // Spread the poison through the stream.
    for (index, message) in poison.into_iter().enumerate() {
        messages.insert(1000 + index * 2500, message);
    }
    (messages, poison_count)
}

#[test]
fn killed_at_random_moments_and_restarted_it_ends_with_the_alarms_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start("memory://tansu/", &dir.path().join("tansu.log"));
    broker.create_topic(TOPIC, 3);
    let (messages, poison_count) = stream();
    produce(&broker.address(), TOPIC, &messages);
    let total = messages.len() as i64;

    // The uninterrupted run.
    let reference_db = dir.path().join("reference.db");
    let reference = write_config(dir.path(), "reference", &broker.address(), "reference", &reference_db);
    run_to_end(&reference, &dir.path().join("reference.log"));
    assert_eq!(progress(&reference_db, "reference"), total);
    assert!(match_total(&reference_db) > 50, "the stream plants attacks");

    // The same stream in another group, killed with SIGKILL at random moments.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_nanos() as u64)
        | 1;
    eprintln!("kill moments seed: {seed}");
    let mut random = Random(seed);
    let chaos_db = dir.path().join("chaos.db");
    let chaos = write_config(dir.path(), "chaos", &broker.address(), "chaos", &chaos_db);
    let log = dir.path().join("chaos.log");
    let mut kills = 0;
    for round in 0..8 {
        let done = progress(&chaos_db, "chaos");
        if done >= total {
            break;
        }
        // Kill once the store has moved past a random point of what is left.
        let target = done + 1 + (random.next() % ((total - done) as u64 / 4).max(1)) as i64;
        let mut child = daemon(&chaos, false, &log);
        let mut started = Instant::now();
        let mut looked = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(120);
        while progress(&chaos_db, "chaos") < target && Instant::now() < deadline {
            // tansu 0.6 can give a member that joins right after a kill an
            // empty assignment and never another (see `run_to_end`): such a
            // member is replaced once the killed one's session has expired.
            if looked.elapsed() > Duration::from_secs(1) {
                looked = Instant::now();
                replace_if_unassigned(&mut child, &mut started, &chaos, false, &log);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(random.next() % 150));
        child.kill();
        if progress(&chaos_db, "chaos") < total {
            kills += 1;
        }
        eprintln!(
            "round {round}: killed at {} of {total} stored",
            progress(&chaos_db, "chaos")
        );
    }
    run_to_end(&chaos, &log);
    assert!(kills >= 3, "the daemon was killed mid-stream {kills} times");
    assert_eq!(progress(&chaos_db, "chaos"), total);

    let expected = alarm_fingerprint(&reference_db);
    let got = alarm_fingerprint(&chaos_db);
    let missing: Vec<&String> = expected.iter().filter(|row| !got.contains(row)).take(5).collect();
    let extra: Vec<&String> = got.iter().filter(|row| !expected.contains(row)).take(5).collect();
    assert!(
        expected == got,
        "seed {seed}: alarms differ from the uninterrupted run\nmissing: {missing:#?}\nextra: {extra:#?}"
    );
    assert_eq!(match_total(&chaos_db), match_total(&reference_db));
    let letters = kafka_dead_letters(&chaos_db);
    assert_eq!(letters.len(), poison_count, "each poison message once: {letters:?}");
    let positions = |letters: &[(String, i32, i64, String)]| -> Vec<(i32, i64)> {
        letters
            .iter()
            .map(|(_, partition, offset, _)| (*partition, *offset))
            .collect()
    };
    assert_eq!(positions(&letters), positions(&kafka_dead_letters(&reference_db)));
    // And both equal a replay of the same records from a file.
    assert_eq!(expected, replay_file(dir.path(), &chaos, &messages));
}

/// Alarms of `replay --db` over the messages written as a JSON-lines file.
fn replay_file(dir: &Path, config: &Path, messages: &[Message]) -> Vec<String> {
    let corpus_file = dir.join("reference.jsonl");
    write_jsonl(&corpus_file, messages);
    let db = dir.join("file-replay.db");
    let output = Trailwarden::new()
        .config(config)
        .command(&["replay", "--format", "jsonl", "--db"])
        .arg(&db)
        .arg(&corpus_file)
        .stdout(Stdio::null())
        .output()
        .expect("replay");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    alarm_fingerprint(&db)
}

#[test]
fn a_broker_restart_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start("sqlite://broker.sqlite", &dir.path().join("tansu.log"));
    broker.create_topic(TOPIC, 3);
    let messages = corpus(29, 8000);
    let (first, second) = messages.split_at(4000);
    produce(&broker.address(), TOPIC, first);
    let db = dir.path().join("restart.db");
    let config = write_config(dir.path(), "restart", &broker.address(), "restart", &db);
    let log = dir.path().join("restart.log");
    let mut child = daemon(&config, false, &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    while progress(&db, "restart") < 1500 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.restart(Duration::from_secs(3));
    produce(&broker.address(), TOPIC, second);
    let deadline = Instant::now() + Duration::from_secs(180);
    while progress(&db, "restart") < messages.len() as i64 {
        if Instant::now() > deadline {
            child.kill();
            panic!(
                "stored {} of {} after the broker restart\n{}",
                progress(&db, "restart"),
                messages.len(),
                tail(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM: a clean stop.
    assert!(child.terminate(), "kill -TERM");
    let status = child.wait();
    assert!(status.success(), "{status}\n{}", tail(&log));
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("kafka unreachable") && logged.contains("kafka reachable again"),
        "the outage is logged once as it starts and once as it ends\n{}",
        tail(&log)
    );
    assert!(
        logged.matches("kafka unreachable").count() <= 2,
        "not logged per message or per retry\n{}",
        tail(&log)
    );

    // The reference: the same records replayed from a file.
    assert_eq!(alarm_fingerprint(&db), replay_file(dir.path(), &config, &messages));
}

/// The benchmarks' stream: generated records of the three clouds, keyed by account.
fn bench_messages(events: usize) -> Vec<Message> {
    let options = trailwarden::synth::SynthOptions {
        events,
        distinct_keys: 2000,
        distinct_ips: 3000,
        ..trailwarden::synth::SynthOptions::default()
    };
    trailwarden::synth::generate(options)
        .map(|record| Message {
            key: account_of(&record.record),
            payload: serde_json::to_vec(&record.record).expect("serializes"),
        })
        .collect()
}

/// The end-to-end Kafka benchmark (not a test: it asserts nothing about
/// speed). `cargo test --release --test kafka_broker -- --ignored --nocapture
/// throughput`; `TW_BENCH_EVENTS` sets the stream length (default 200 000),
/// `TW_BENCH_PROPERTIES` adds librdkafka properties (TOML lines). tansu 0.6
/// answers every fetch only after `fetch.wait.max.ms` (500 ms by default),
/// which caps a consumer at about 20 000 events/s; with
/// `"fetch.wait.max.ms" = "5"` the figure is trailwarden's own.
/// `TW_BENCH_STORE=postgres` writes into a throw-away, durable (fsync on) PostgreSQL cluster.
#[test]
#[ignore]
fn throughput() {
    let events: usize = std::env::var("TW_BENCH_EVENTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start("memory://tansu/", &dir.path().join("tansu.log"));
    broker.create_topic(TOPIC, 3);
    let messages = bench_messages(events);
    let bytes: usize = messages.iter().map(|message| message.payload.len()).sum();
    produce_with(&broker.address(), TOPIC, &messages, 1000);
    // `TW_BENCH_STORE=postgres`: into a throw-away PostgreSQL cluster instead.
    let cluster = (std::env::var("TW_BENCH_STORE").as_deref() == Ok("postgres")).then(Postgres::start_durable);
    let db = match &cluster {
        Some(cluster) => PathBuf::from(cluster.database("bench")),
        None => dir.path().join("bench.db"),
    };
    let config = write_config(dir.path(), "bench", &broker.address(), "bench", &db);
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("batch_messages = 200", "batch_messages = 2000")
            .replace(
                "[source.kafka.properties]",
                &format!(
                    "[source.kafka.properties]\n{}",
                    std::env::var("TW_BENCH_PROPERTIES").unwrap_or_default()
                ),
            ),
    )
    .unwrap();
    let log = dir.path().join("bench.log");
    let started = Instant::now();
    run_to_end(&config, &log);
    let wall = started.elapsed().as_secs_f64();
    let done = match &cluster {
        Some(_) => kafka_progress(db.to_str().unwrap_or_default(), "bench"),
        None => progress(&db, "bench"),
    };
    assert_eq!(done, events as i64);
    // Consumption proper: from the partition assignment to the last stored batch
    // (the group join before, and --once's 3 s of quiet after, are not work).
    let text = std::fs::read_to_string(&log).unwrap();
    let stamp = |needle: &str| -> f64 {
        let line = text.lines().find(|line| line.contains(needle)).expect("a log line");
        let stamp = line.split_whitespace().next().unwrap_or_default();
        let stamp: String = stamp
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '\u{1b}')
            .collect();
        let stamp = stamp.trim_start_matches("[2m").trim_end_matches("[0m");
        chrono::DateTime::parse_from_rfc3339(stamp).map_or(0.0, |time| time.timestamp_millis() as f64 / 1000.0)
    };
    let consuming = if text.contains("every assigned partition is read to its end") {
        stamp("every assigned partition is read to its end") - stamp("kafka partitions assigned")
    } else {
        stamp("nothing more to read") - 3.0 - stamp("kafka partitions assigned")
    };
    eprintln!(
        "kafka end to end: {events} events ({:.0} MB): {:.0} events/s while consuming ({consuming:.2} s); {wall:.1} s wall with group join and the quiet end",
        bytes as f64 / 1e6,
        events as f64 / consuming
    );
    // How the store stage's time went (the daemon logs it when it stops).
    for line in text.lines().filter(|line| line.contains("store write and commit")) {
        eprintln!("  {}", line.trim());
    }
}

/// Benchmark, not a test (`--ignored`): the latency from a Kafka append to
/// the commit of the transaction that evaluated its event, which is when its
/// alarm (if any) is in the store. A producer on this machine sends a
/// generated three-cloud stream at a steady `TW_BENCH_RATE` events/s
/// (20 000) for `TW_BENCH_SECONDS` (15) to 3 partitions of a tansu broker
/// while `trailwarden run` consumes; the daemon counts each event's
/// latency from the message timestamp (set when the producer sends it) and
/// logs p50, p99 and max when it stops. Reordering is what an operator
/// chooses it to be: `TW_BENCH_LATENESS` (default "0s", events evaluated as
/// they come; with a lateness every event waits for it, at most `max_hold`).
#[test]
#[ignore]
fn latency() {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let rate: usize = env("TW_BENCH_RATE", "20000").parse().expect("TW_BENCH_RATE");
    let seconds: usize = env("TW_BENCH_SECONDS", "15").parse().expect("TW_BENCH_SECONDS");
    let lateness = env("TW_BENCH_LATENESS", "0s");
    let events = rate * seconds;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start("memory://tansu/", &dir.path().join("tansu.log"));
    broker.create_topic(TOPIC, 3);
    let messages = bench_messages(events);
    let db = dir.path().join("latency.db");
    let config = write_config(dir.path(), "latency", &broker.address(), "latency", &db);
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace(
            "[source.kafka.properties]",
            // tansu answers a fetch only after fetch.wait.max.ms (see `throughput`).
            "[source.kafka.properties]\n\"fetch.wait.max.ms\" = \"5\"",
        ) + &format!("\n[pipeline]\nallowed_lateness = \"{lateness}\"\n"),
    )
    .unwrap();
    let log = dir.path().join("latency.log");
    let mut child = daemon(&config, false, &log);
    // Produce only once the group is joined: the join is not latency.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("kafka partitions assigned")
    {
        assert!(Instant::now() < deadline, "no partitions assigned\n{}", tail(&log));
        std::thread::sleep(Duration::from_millis(50));
    }
    use rdkafka::producer::Producer;
    let producer: rdkafka::producer::ThreadedProducer<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.address())
        .set("linger.ms", "1")
        .create()
        .expect("a producer");
    // Steady pacing: every 10 ms the messages due by then.
    let started = Instant::now();
    let mut sent = 0;
    while sent < messages.len() {
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as usize).min(messages.len());
        while sent < due {
            send(&producer, TOPIC, &messages[sent]);
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let produced_in = started.elapsed().as_secs_f64();
    producer
        .flush(Duration::from_secs(60))
        .expect("every message acknowledged");
    let deadline = Instant::now() + Duration::from_secs(120);
    while progress(&db, "latency") < events as i64 {
        assert!(Instant::now() < deadline, "the daemon fell behind\n{}", tail(&log));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(child.terminate(), "SIGTERM");
    assert!(
        child
            .wait_timeout(Duration::from_secs(60))
            .is_some_and(|status| status.success()),
        "the daemon did not stop cleanly\n{}",
        tail(&log)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let logged = |what: &str| {
        text.lines()
            .find(|line| line.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} line\n{}", tail(&log)))
    };
    let (line, read, store) = (
        logged("kafka append to commit"),
        logged("kafka append to read"),
        logged("store write and commit"),
    );
    eprintln!(
        "kafka append to commit, {events} events at {:.0} events/s, allowed_lateness {lateness}: {line}\n\
         of which Kafka and the producer (append to read): {read}\n\
         per transaction, the store's write and commit: {store}",
        events as f64 / produced_in
    );
}
