//! Helpers shared by the Kafka tests: a mixed three-cloud corpus keyed by
//! account, poison messages, and a fingerprint of a store's alarms that
//! leaves out what legitimately depends on arrival order (sample choice,
//! row ids, wall-clock times).

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use serde_json::Value;
use trailwarden::synth::{SynthOptions, generate};

use super::binary::{Daemon, Log, Trailwarden};
use super::paths::rules_dir;

/// One message to produce.
#[derive(Clone, Debug)]
pub struct Message {
    pub key: String,
    pub payload: Vec<u8>,
}

/// The account a raw record belongs to (the producer's message key), for
/// all three clouds.
pub fn account_of(record: &Value) -> String {
    for pointer in [
        "/recipientAccountId",
        "/userIdentity/accountId",
        "/user/domain/id",
        "/user/account_id",
    ] {
        match record.pointer(pointer) {
            Some(Value::String(text)) if !text.is_empty() => return text.clone(),
            Some(Value::Number(number)) => return number.to_string(),
            _ => {}
        }
    }
    "unknown".to_string()
}

/// A generated mixed corpus: one record per message, keyed by account.
pub fn corpus(seed: u64, events: usize) -> Vec<Message> {
    let options = SynthOptions {
        seed,
        events,
        span: chrono::Duration::days(3),
        attack_every: 40,
        ..SynthOptions::default()
    };
    generate(options)
        .map(|record| Message {
            key: account_of(&record.record),
            payload: serde_json::to_vec(&record.record).expect("a JSON value serializes"),
        })
        .collect()
}

/// A CloudTrail `Records` container of several events, as S3 delivery
/// notifications forwarded to Kafka often look.
pub fn container(messages: &[Message]) -> Message {
    let records: Vec<Value> = messages
        .iter()
        .map(|message| serde_json::from_slice(&message.payload).expect("corpus payloads are JSON"))
        .collect();
    Message {
        key: messages.first().map_or_else(String::new, |message| message.key.clone()),
        payload: serde_json::to_vec(&serde_json::json!({ "Records": records })).expect("serializes"),
    }
}

/// Messages no decoder can read, each with what the dead letter must say.
pub fn poison(max_message_bytes: usize) -> Vec<(Message, &'static str)> {
    let message = |payload: Vec<u8>| Message {
        key: "poison".into(),
        payload,
    };
    vec![
        (
            message(b"{\"eventName\": \"DeleteTrail\", \"eventTime\": ".to_vec()),
            "broken JSON",
        ),
        (
            message(vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']),
            "invalid UTF-8",
        ),
        (message(b"{\"hello\": \"world\", \"n\": 1}".to_vec()), "unknown format"),
        (
            message({
                let mut big = b"{\"padding\": \"".to_vec();
                big.extend(std::iter::repeat_n(b'x', max_message_bytes + 10));
                big.extend_from_slice(b"\"}");
                big
            }),
            "oversized",
        ),
    ]
}

/// Produce messages (keyed, so each account stays on one partition) and wait
/// until every one is acknowledged. One message per record batch: tansu
/// 0.6 answers a fetch from an offset inside a batch with the next batch,
/// skipping the rest of the one asked for (trailwarden logs such gaps as
/// "kafka offsets skipped by the broker"); real Kafka does not.
pub fn produce(brokers: &str, topic: &str, messages: &[Message]) {
    produce_with(brokers, topic, messages, 1);
}

/// Produce with up to `per_batch` messages per record batch.
pub fn produce_with(brokers: &str, topic: &str, messages: &[Message], per_batch: usize) {
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", per_batch.to_string())
        .set("message.max.bytes", "10000000")
        .create()
        .expect("a producer");
    for message in messages {
        send(&producer, topic, message);
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("every message acknowledged");
}

/// Queue one message, waiting while the producer's queue is full.
pub fn send(producer: &ThreadedProducer<rdkafka::producer::DefaultProducerContext>, topic: &str, message: &Message) {
    let mut record = BaseRecord::to(topic).key(&message.key).payload(&message.payload);
    while let Err((_, returned)) = producer.send(record) {
        record = returned;
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Write the messages' payloads as JSON lines (the file-replay reference).
pub fn write_jsonl(path: &Path, messages: &[Message]) {
    let mut text = Vec::new();
    for message in messages {
        text.extend_from_slice(&message.payload);
        text.push(b'\n');
    }
    std::fs::write(path, text).expect("writing the reference corpus");
}

/// Every alarm with its count, time span and call records per source IP —
/// everything but what depends on arrival order (which events became
/// samples) or on the wall clock.
pub fn alarm_fingerprint(db: &Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(db).expect("opening the store");
    let mut alarms = connection
        .prepare(
            "SELECT a.rule_id, a.group_key, a.count, a.first_seen, a.last_seen, a.account_id, a.access_key_id, \
             (SELECT group_concat(c.source_ip || ' ' || c.ip_kind || ' ' || c.call_method || ' ' || c.service || '.' || \
             c.action || ' ok=' || c.success_count || ' failed=' || c.failure_count || ' ' || c.first_call || ' ' || \
             c.last_call, ' | ') FROM (SELECT * FROM alarm_calls WHERE alarm_id = a.id ORDER BY source_ip, call_method, \
             service, action) c) FROM alarms a",
        )
        .expect("the alarm query");
    let mut rows: Vec<String> = alarms
        .query_map([], |row| {
            Ok(format!(
                "{} [{}] count={} {}..{} account={:?} key={:?} calls: {}",
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, Option<String>>(5)?,
                row.get::<_, Option<String>>(6)?,
                row.get::<_, Option<String>>(7)?.unwrap_or_default(),
            ))
        })
        .expect("reading alarms")
        .collect::<Result<_, _>>()
        .expect("alarm rows");
    rows.sort();
    rows
}

/// Sum of alarm counts (matches) in a store.
pub fn match_total(db: &Path) -> i64 {
    let connection = rusqlite::Connection::open(db).expect("opening the store");
    connection
        .query_row("SELECT COALESCE(SUM(count), 0) FROM alarms", [], |row| row.get(0))
        .expect("summing counts")
}

/// Dead letters as (topic, partition, offset, reason).
pub fn kafka_dead_letters(db: &Path) -> Vec<(String, i32, i64, String)> {
    let connection = rusqlite::Connection::open(db).expect("opening the store");
    let mut statement = connection
        .prepare(
            "SELECT topic, partition, kafka_offset, reason FROM dead_letters WHERE topic IS NOT NULL \
             ORDER BY partition, kafka_offset",
        )
        .expect("the dead-letter query");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .expect("reading dead letters")
        .collect::<Result<_, _>>()
        .expect("dead-letter rows")
}

/// The stored next offset per partition.
pub fn stored_offsets(db: &Path, group: &str) -> Vec<(String, i32, i64)> {
    let connection = rusqlite::Connection::open(db).expect("opening the store");
    let mut statement = connection
        .prepare(
            "SELECT topic, partition, next_offset FROM kafka_offsets WHERE group_id = ?1 ORDER BY topic, partition",
        )
        .expect("the offset query");
    statement
        .query_map([group], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("reading offsets")
        .collect::<Result<_, _>>()
        .expect("offset rows")
}

/// Settings for a daemon reading `topic` from `brokers` into `db`.
pub fn kafka_config(brokers: &str, topic: &str, group: &str, db: &Path, extra: &str) -> String {
    format!(
        "[source]\nkind = \"kafka\"\n\n[source.kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\n\
         group_id = \"{group}\"\nbatch_wait = \"50ms\"\nmax_message_bytes = 65536\n{extra}\n\n\
         [store]\npath = \"{db}\"\nsynchronous = \"normal\"\n\n[rules]\ndir = \"{rules}\"\nwatch = false\n\n\
         [log]\nlevel = \"warn\"\n\n[api]\nbind = \"127.0.0.1:0\"\n",
        db = db.display(),
        rules = rules_dir().display(),
    )
}

/// The daemon with its log appended to `log` (kept across restarts).
pub fn daemon(config: &Path, once: bool, log: &Path) -> Daemon {
    let args: &[&str] = if once { &["run", "--once"] } else { &["run"] };
    Trailwarden::new()
        .config(config)
        // The API on a free port: tests run daemons side by side.
        .api_on_any_port()
        .env("TRAILWARDEN_LOG", "info")
        .start(args, Log::File(log.to_path_buf()))
}

/// Run `run --once` of `config` until it ends cleanly. tansu 0.6 can give a
/// member that joins a group which just lost one (killed) an empty
/// assignment and never another, and a `--once` member without partitions
/// never ends (see `postgres_kafka.rs`'s `run_once_members`). Such a member
/// — its last assignment empty for 20 s — is stopped, and another starts
/// once the lost members' sessions have expired (tests set
/// `session.timeout.ms` to 6 s), up to three times.
pub fn run_to_end(config: &Path, log: &Path) {
    let mut child = daemon(config, true, log);
    let mut started = Instant::now();
    let mut restarts = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.exited() {
            assert!(status.success(), "run --once failed: {status}\n{}", tail(log));
            return;
        }
        if Instant::now() > deadline {
            child.kill();
            panic!("run --once did not finish\n{}", tail(log));
        }
        if restarts < 3 && replace_if_unassigned(&mut child, &mut started, config, true, log) {
            restarts += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Replace `child` (started at `started`) with another member when its
/// assignment has been empty for 20 s, once the lost members' sessions have
/// expired (tansu 0.6's quirk, see `run_to_end`); whether it did.
pub fn replace_if_unassigned(child: &mut Daemon, started: &mut Instant, config: &Path, once: bool, log: &Path) -> bool {
    if started.elapsed() <= Duration::from_secs(20) || !assigned_nothing(log) {
        return false;
    }
    eprintln!("a member was assigned no partitions for 20 s; another member joins");
    child.kill();
    std::thread::sleep(Duration::from_secs(8));
    *child = daemon(config, once, log);
    *started = Instant::now();
    true
}

/// Whether the last assignment `log` records is empty.
fn assigned_nothing(log: &Path) -> bool {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|line| line.contains("kafka partitions assigned"))
        .is_some_and(|line| line.trim_end().ends_with("partitions="))
}

pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A small deterministic generator for kill moments (seed printed on failure).
pub struct Random(pub u64);

impl Random {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
