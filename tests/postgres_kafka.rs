//! The daemon on a PostgreSQL store, consuming a real Kafka-protocol broker
//! (tansu): killed with SIGKILL at random moments, with a PostgreSQL restart
//! in the middle, it ends with the alarms, counts and dead letters of an
//! uninterrupted run on SQLite; once another instance claims its
//! partitions, it commits nothing more and stops; and three daemons in one
//! consumer group (killed, restarted, joined by a fourth, left by one) end
//! with the alarms of one SQLite run, their state moving with the partitions.
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
use common::webhook::Receiver;

const TOPIC: &str = "audit";

fn write_config(dir: &Path, name: &str, brokers: &str, group: &str, store: &str) -> std::path::PathBuf {
    write_config_with(dir, name, brokers, group, store, "")
}

/// `write_config` with more settings after the Kafka ones (whole sections).
fn write_config_with(
    dir: &Path,
    name: &str,
    brokers: &str,
    group: &str,
    store: &str,
    more: &str,
) -> std::path::PathBuf {
    let extra = format!(
        "batch_messages = 200\n\n[source.kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\
         \"heartbeat.interval.ms\" = \"1000\"\n{more}"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, kafka_config(brokers, TOPIC, group, Path::new(store), &extra)).expect("writing a config");
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
        let mut joined = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        let (mut seen, mut moved) = (progress(&url, "chaos"), Instant::now());
        while progress(&url, "chaos") < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            let now = progress(&url, "chaos");
            if now != seen {
                (seen, moved) = (now, Instant::now());
            } else if moved.elapsed() > Duration::from_secs(20) && joined.len() < 2 {
                // tansu 0.6 can leave a member that joins a group which just
                // lost one (killed) without partitions (see
                // `run_once_members`); another member joining gets the group
                // formed. They share the partitions, fenced in the store.
                eprintln!("round {round}: nothing stored for 20 s; another member joins the group");
                let member_log = dir.path().join(format!("chaos-joined-{round}-{}.log", joined.len()));
                joined.push(daemon(&chaos, false, &member_log));
                moved = Instant::now();
            }
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
        for mut member in joined {
            member.kill();
        }
        if progress(&url, "chaos") < total {
            kills += 1;
        }
        eprintln!("round {round}: killed at {} of {total} stored", progress(&url, "chaos"));
    }
    let _tails = run_once_members(&chaos, &log);
    assert!(restarted, "PostgreSQL was restarted mid-stream");
    assert!(kills >= 2, "the daemon was killed mid-stream {kills} times");
    assert_eq!(progress(&url, "chaos"), total);

    // The chain the daemon built on PostgreSQL, across kills and the
    // server's restart, verifies.
    let copy = copy_to_sqlite(&url, dir.path(), "chaos-copy");
    assert_same_as(
        &copy,
        &reference_db,
        poison_count,
        &format!("seed {seed}: the uninterrupted run"),
    );
}

/// Run `run --once` members of `config`'s group on its PostgreSQL store
/// until every one has ended cleanly; the tails of their logs (`log`, then
/// `log` with `-2`, `-3` appended). tansu 0.6 can leave a member that joins
/// a group which just lost members (killed, or all stopped) without an
/// assignment, and a `--once` member without partitions never ends; another
/// member joining gets the group formed. So another member is started each
/// time 45 s pass without every member ended (up to three); they share the
/// partitions, fenced in the store, and each releases what it holds at its
/// end.
fn run_once_members(config: &Path, log: &Path) -> impl Fn() -> String + use<> {
    let logs: Vec<std::path::PathBuf> = (1..=3)
        .map(|index| match index {
            1 => log.to_path_buf(),
            _ => std::path::PathBuf::from(format!("{}-{index}", log.display())),
        })
        .collect();
    let tails = {
        let logs = logs.clone();
        move || {
            logs.iter()
                .map(|log| tail(log))
                .collect::<Vec<String>>()
                .join("\n----\n")
        }
    };
    let mut members = vec![daemon(config, true, &logs[0])];
    let mut last_start = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let statuses: Vec<Option<std::process::ExitStatus>> =
            members.iter_mut().map(|member| member.exited()).collect();
        if statuses.iter().all(Option::is_some) {
            assert!(
                statuses
                    .iter()
                    .all(|status| status.is_some_and(|status| status.success())),
                "the --once members end cleanly: {statuses:?}\n{}",
                tails()
            );
            return tails;
        }
        if Instant::now() > deadline {
            for member in &mut members {
                member.kill();
            }
            panic!("the --once members did not finish: {statuses:?}\n{}", tails());
        }
        if last_start.elapsed() > Duration::from_secs(45) && members.len() < logs.len() {
            eprintln!("a --once member has not ended after 45 s; another joins");
            members.push(daemon(config, true, &logs[members.len()]));
            last_start = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A store copied from PostgreSQL holds the alarms (with their call
/// records) and match total of `reference`, each poison message once as a
/// dead letter, and a chain that verifies.
fn assert_same_as(copy: &Path, reference: &Path, poison_count: usize, what: &str) {
    let expected = alarm_fingerprint(reference);
    let got = alarm_fingerprint(copy);
    let missing: Vec<&String> = expected.iter().filter(|row| !got.contains(row)).take(5).collect();
    let extra: Vec<&String> = got.iter().filter(|row| !expected.contains(row)).take(5).collect();
    assert!(
        expected == got,
        "the alarms differ from {what}\nmissing: {missing:#?}\nextra: {extra:#?}"
    );
    assert_eq!(match_total(copy), match_total(reference));
    assert_eq!(kafka_dead_letters(copy).len(), poison_count, "each poison message once");
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

/// Rows of the PostgreSQL store's reorder buffer (events held for ordering).
fn pending(cluster: &Postgres, url: &str) -> i64 {
    cluster
        .query_texts(url, "SELECT count(*) FROM pending_events")
        .first()
        .and_then(|count| count.parse().ok())
        .unwrap_or(-1)
}

/// Like a supervisor (systemd's `Restart=on-failure`): until `until`,
/// start again every member that exited by itself (a daemon whose batch is
/// fenced off exits, and rejoins the group when started again). Returns
/// how many were started again.
fn supervise(
    members: &mut [Option<common::Daemon>],
    config: &Path,
    logs: &[std::path::PathBuf],
    until: Instant,
) -> usize {
    let mut restarted = 0;
    loop {
        for (index, member) in members.iter_mut().enumerate() {
            if let Some(status) = member.as_mut().and_then(|child| child.exited()) {
                eprintln!("member {index} exited by itself ({status}); started again");
                *member = Some(daemon(config, false, &logs[index]));
                restarted += 1;
            }
        }
        if Instant::now() >= until {
            return restarted;
        }
        std::thread::sleep(Duration::from_millis(200).min(until.saturating_duration_since(Instant::now())));
    }
}

#[test]
fn three_daemons_in_one_group_killed_joined_and_left_end_with_the_alarms_of_one_sqlite_run() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Postgres::start();
    let url = cluster.database("three");
    let broker = Broker::start("memory://tansu/", &dir.path().join("tansu.log"));
    broker.create_topic(TOPIC, 6);
    let mut messages = corpus(43, 24_000);
    let poison: Vec<Message> = poison(65_536).into_iter().map(|(message, _)| message).collect();
    let poison_count = poison.len();
    for (index, message) in poison.into_iter().enumerate() {
        messages.insert(1_000 + index * 3_000, message);
    }
    let total = messages.len() as i64;
    // The stream arrives over about 50 seconds while the group changes:
    // members killed (SIGKILL) and started again, one joining, one leaving.
    let producer = {
        let brokers = broker.address();
        let messages = messages.clone();
        std::thread::spawn(move || {
            for part in messages.chunks(500) {
                produce(&brokers, TOPIC, part);
                std::thread::sleep(Duration::from_millis(1000));
            }
        })
    };

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_nanos() as u64)
        | 1;
    eprintln!("seed: {seed}");
    let mut random = Random(seed);
    // Events leave the reorder buffer by event time only (the watermark),
    // not after a wall-clock wait: with the stream arriving over a minute,
    // a wall-clock release would make the order depend on arrival times.
    // A member killed while the group re-forms is waited for up to the
    // rebalance timeout (max.poll.interval.ms, 5 minutes by default).
    // Every medium-or-higher alarm opened is sent to a webhook: the members
    // share the outbox and each delivery goes out from one of them. A
    // member killed while sending leaves its claimed deliveries to the
    // others after the lease (5 s here).
    let hook = Receiver::start(0);
    let more = format!(
        "\"max.poll.interval.ms\" = \"15000\"\n\n[pipeline]\nmax_hold = \"1h\"\n\n\
         [notify]\npoll_interval = \"200ms\"\nbackoff_initial = \"200ms\"\nbackoff_max = \"1s\"\n\
         timeout = \"2s\"\nclaim_lease = \"5s\"\n\n[[notify.topics]]\nname = \"medium\"\n\
         min_level = \"medium\"\non = [\"opened\"]\n\n[[notify.topics.subscriptions]]\nname = \"hook\"\n\
         webhook = \"{}\"\n",
        hook.url("/hook")
    );
    let config = write_config_with(dir.path(), "member", &broker.address(), "cluster", &url, &more);
    let logs: Vec<std::path::PathBuf> = (0..4)
        .map(|index| dir.path().join(format!("member-{index}.log")))
        .collect();
    let started = Instant::now();
    let at = |seconds: u64| started + Duration::from_secs(seconds);
    let mut members: Vec<Option<common::Daemon>> =
        (0..3).map(|index| Some(daemon(&config, false, &logs[index]))).collect();
    let alive = |members: &Vec<Option<common::Daemon>>| -> Vec<usize> {
        (0..members.len()).filter(|index| members[*index].is_some()).collect()
    };
    let mut mid_stream = Vec::new();
    let mut restarts = 0;

    // A kill at a random moment; its supervisor starts it again once the
    // group has noticed (the session timeout is 6 s).
    restarts += supervise(&mut members, &config, &logs, at(6 + random.next() % 6));
    let victim = *alive(&members).get((random.next() % 3) as usize).unwrap();
    if let Some(mut child) = members[victim].take() {
        child.kill();
    }
    mid_stream.push(progress(&url, "cluster"));
    eprintln!("member {victim} killed at {} of {total}", progress(&url, "cluster"));
    restarts += supervise(&mut members, &config, &logs, at(22));
    members[victim] = Some(daemon(&config, false, &logs[victim]));
    // A fourth joins.
    restarts += supervise(&mut members, &config, &logs, at(30));
    members.push(Some(daemon(&config, false, &logs[3])));
    // One leaves (SIGTERM: it commits and hands its held events over).
    restarts += supervise(&mut members, &config, &logs, at(38));
    let living = alive(&members);
    let leaving = living[(random.next() % living.len() as u64) as usize];
    if let Some(mut child) = members[leaving].take() {
        child.terminate();
        let status = child.wait_timeout(Duration::from_secs(60));
        assert!(
            status.is_some_and(|status| status.success()),
            "a member leaving on SIGTERM exits cleanly: {status:?}\n{}",
            tail(&logs[leaving])
        );
    }
    mid_stream.push(progress(&url, "cluster"));
    eprintln!("member {leaving} left at {} of {total}", progress(&url, "cluster"));
    // Another kill, and its restart.
    restarts += supervise(&mut members, &config, &logs, at(44 + random.next() % 4));
    let living = alive(&members);
    let victim = living[(random.next() % living.len() as u64) as usize];
    if let Some(mut child) = members[victim].take() {
        child.kill();
    }
    mid_stream.push(progress(&url, "cluster"));
    eprintln!("member {victim} killed at {} of {total}", progress(&url, "cluster"));
    restarts += supervise(&mut members, &config, &logs, at(60));
    members[victim] = Some(daemon(&config, false, &logs[victim]));
    producer.join().expect("the producer finished");
    assert!(
        mid_stream.iter().all(|done| *done < total),
        "every change came while the stream was still being read: {mid_stream:?} of {total}"
    );

    // The group reads everything.
    let deadline = Instant::now() + Duration::from_secs(240);
    while progress(&url, "cluster") < total && Instant::now() < deadline {
        restarts += supervise(
            &mut members,
            &config,
            &logs,
            Instant::now() + Duration::from_millis(200),
        );
    }
    let logs_tail = || {
        let owners = cluster.query_texts(
            &url,
            "SELECT partition || ' gen ' || generation || ' ' || owner FROM kafka_partition_owners ORDER BY partition",
        );
        let offsets = cluster.query_texts(
            &url,
            "SELECT partition || '@' || next_offset FROM kafka_offsets ORDER BY partition",
        );
        format!(
            "owners {owners:?}\noffsets {offsets:?}\n{}",
            logs.iter()
                .map(|log| tail(log))
                .collect::<Vec<String>>()
                .join("\n----\n")
        )
    };
    assert_eq!(progress(&url, "cluster"), total, "{}", logs_tail());
    // Let the group settle (the last restart's rebalance, the killed
    // member's session expiring): tansu 0.6 can leave a group that loses
    // members in the middle of re-forming without a rebalance that ends.
    restarts += supervise(&mut members, &config, &logs, Instant::now() + Duration::from_secs(10));
    eprintln!("members that exited by themselves (fenced) and were started again: {restarts}");
    // All stop together, handing over the events they hold for ordering.
    for child in members.iter().flatten() {
        child.terminate();
    }
    for (index, member) in members.iter_mut().enumerate() {
        if let Some(child) = member.as_mut() {
            let status = child.wait_timeout(Duration::from_secs(60));
            assert!(
                status.is_some_and(|status| status.success()),
                "member {index} stops cleanly: {status:?}\n{}",
                tail(&logs[index])
            );
        }
    }
    assert!(pending(&cluster, &url) > 0, "the members handed held events over");
    // The input has ended: one more member takes every partition with its
    // state and held events, finds nothing new, and releases them.
    let final_tail = run_once_members(&config, &dir.path().join("member-last.log"));
    assert_eq!(pending(&cluster, &url), 0, "events still held\n{}", final_tail());
    // Every notification was delivered (a killed member's claims went to
    // another member after their lease).
    let undelivered = || {
        cluster.query_texts(
            &url,
            "SELECT status || ' ' || count(*) FROM notify_deliveries WHERE status <> 'delivered' GROUP BY status",
        )
    };
    assert!(
        undelivered().is_empty(),
        "deliveries not delivered: {:?}\n{}",
        undelivered(),
        final_tail()
    );
    // State went with the partitions: every member loaded some, and
    // partitions changed hands with state in them.
    let mut moved_with_state = 0;
    for (index, log) in logs.iter().enumerate() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(
            text.contains("engine state of the assigned partitions loaded"),
            "member {index} never took partitions\n{}",
            tail(log)
        );
        moved_with_state += text
            .lines()
            .filter(|line| line.contains("partitions loaded") && !line.contains("state_entries=0 "))
            .count();
    }
    assert!(moved_with_state > 0, "no partition came with state\n{}", logs_tail());

    // The same records replayed from a file into SQLite by one process.
    // (Not one daemon on the topic: reading six partitions unevenly, one
    // daemon's single state expires windows by the furthest partition's
    // event time; each partition's own state does not.)
    let corpus_file = dir.path().join("reference.jsonl");
    write_jsonl(&corpus_file, &messages);
    let reference_db = dir.path().join("reference.db");
    let output = Trailwarden::new()
        .config(&config)
        .command(&["replay", "--format", "jsonl", "--db"])
        .arg(&reference_db)
        .arg(&corpus_file)
        .stdout(std::process::Stdio::null())
        .output()
        .expect("replay");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(match_total(&reference_db) > 100, "the stream plants attacks");

    let copy = copy_to_sqlite(&url, dir.path(), "three-copy");
    assert_same_as(
        &copy,
        &reference_db,
        poison_count,
        &format!("seed {seed}: one SQLite run"),
    );
    // And the chain verifies on PostgreSQL itself.
    let verify = Trailwarden::new().stdout(&["store", "verify", "--db", &url]);
    assert!(verify.starts_with("chain ok"), "{verify}");

    // One notification per medium-or-higher alarm of the SQLite run (a
    // replay queues none: it is a backtest), queued once, each delivery
    // received by the webhook. A delivery a killed member sent but could not
    // record is sent again with its delivery id (at least once; receivers
    // tell repeats by the id).
    let expected = medium_alarms(&reference_db);
    assert!(!expected.is_empty(), "the stream opens medium alarms");
    assert_eq!(
        notifications(&copy),
        expected,
        "one notification per medium-or-higher alarm"
    );
    let delivered: std::collections::BTreeSet<String> = delivery_ids(&copy).into_iter().collect();
    let mut received: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for request in hook.on("/hook") {
        *received
            .entry(request.header("X-Trailwarden-Delivery").to_string())
            .or_default() += 1;
    }
    assert_eq!(
        received.keys().cloned().collect::<std::collections::BTreeSet<_>>(),
        delivered,
        "the webhook got every delivery"
    );
    let repeats: usize = received.values().map(|count| count - 1).sum();
    eprintln!("{} deliveries, {repeats} sent again after a kill", delivered.len());
    assert!(
        repeats <= 2 * 200,
        "repeats come only from the deliveries the two killed members had claimed: {repeats}"
    );
}

/// The notifications a store queued: rule and group key of each alarm, sorted.
fn notifications(db: &Path) -> Vec<String> {
    texts(
        db,
        "SELECT a.rule_id || ' [' || a.group_key || '] ' || m.kind FROM notify_messages m \
         JOIN alarms a ON a.id = m.alarm_id",
    )
}

/// What `notifications` would list for a store's medium-or-higher alarms:
/// those of rules with a fixed level (a rule with `escalate:` opens its
/// alarm lower and raises it with its count, which is an escalation).
fn medium_alarms(db: &Path) -> Vec<String> {
    let mut escalating: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(common::rules_dir())
        .expect("the rules directory")
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let mut rule: Option<&str> = None;
        for line in text.lines() {
            if let Some(id) = line.trim_start().strip_prefix("- id: ") {
                rule = Some(id.trim());
            } else if line.trim_start().starts_with("escalate:")
                && let Some(id) = rule
            {
                escalating.push(format!("'{id}'"));
            }
        }
    }
    assert!(!escalating.is_empty(), "the pack has a rule that escalates");
    texts(
        db,
        &format!(
            "SELECT rule_id || ' [' || group_key || '] opened' FROM alarms \
             WHERE level IN ('medium', 'high') AND rule_id NOT IN ({})",
            escalating.join(", ")
        ),
    )
}

/// The first column of every row of `sql`, sorted.
fn texts(db: &Path, sql: &str) -> Vec<String> {
    let connection = rusqlite::Connection::open(db).expect("opening the store");
    let mut rows: Vec<String> = connection
        .prepare(sql)
        .expect("the query")
        .query_map([], |row| row.get(0))
        .expect("reading rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.sort();
    rows
}

/// The delivery ids a store recorded as delivered.
fn delivery_ids(db: &Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(db).expect("opening the store");
    connection
        .prepare("SELECT delivery_id FROM notify_deliveries WHERE status = 'delivered'")
        .expect("the delivery query")
        .query_map([], |row| row.get(0))
        .expect("reading deliveries")
        .collect::<Result<_, _>>()
        .expect("delivery rows")
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / per_second.max(1.0)
}

/// CPU seconds of the PostgreSQL server's processes (the postmaster's children included).
fn server_cpu_seconds(postmaster: u32) -> f64 {
    let mut total = cpu_seconds(postmaster);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|field| field.parse::<u32>().ok());
        if parent == Some(postmaster) {
            total += cpu_seconds(pid);
        }
    }
    total
}

/// Benchmark, not a test (`--ignored`): 1, 2 and 3 daemons
/// (`TW_BENCH_INSTANCES`, default "1,2,3"; "1,2,3,1,2,3,1,2,3" for three
/// alternating rounds) in one consumer group draining
/// `TW_BENCH_EVENTS` (200 000) generated events from 6 partitions of a tansu
/// broker into one PostgreSQL store (a durable server: fsync on), with the
/// default configuration. Messages are keyed by account and
/// access key, so the generator's nine accounts spread over the partitions
/// (real organisations have many more accounts than partitions). Prints
/// events/s from the first stored batch to the last, and the CPU seconds of
/// the daemons and of PostgreSQL.
#[test]
#[ignore]
fn instances() {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let events: usize = env("TW_BENCH_EVENTS", "200000").parse().expect("TW_BENCH_EVENTS");
    let counts: Vec<usize> = env("TW_BENCH_INSTANCES", "1,2,3")
        .split(',')
        .map(|count| count.trim().parse().expect("TW_BENCH_INSTANCES"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start("memory://tansu/", &dir.path().join("tansu.log"));
    broker.create_topic(TOPIC, 6);
    let options = trailwarden::synth::SynthOptions {
        events,
        distinct_keys: 2000,
        distinct_ips: 3000,
        ..trailwarden::synth::SynthOptions::default()
    };
    let messages: Vec<Message> = trailwarden::synth::generate(options)
        .map(|record| {
            let key = record
                .record
                .pointer("/userIdentity/accessKeyId")
                .or_else(|| record.record.pointer("/user/access_key_id"))
                .or_else(|| record.record.pointer("/accessKeyId"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string();
            Message {
                key: format!("{}/{key}", account_of(&record.record)),
                payload: serde_json::to_vec(&record.record).expect("serializes"),
            }
        })
        .collect();
    produce_with(&broker.address(), TOPIC, &messages, 1000);
    let cluster = Postgres::start_durable();
    let postmaster: u32 = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid"))
        .ok()
        .and_then(|text| text.lines().next().and_then(|line| line.trim().parse().ok()))
        .unwrap_or(0);
    let total = events as i64;
    // A count may repeat ("1,2,3,1,2,3"): each run has its own group and database.
    for (run, count) in counts.into_iter().enumerate() {
        let group = format!("bench-{run}-{count}");
        let url = cluster.database(&group);
        let more = format!("\"fetch.wait.max.ms\" = \"5\"\n{}", env("TW_BENCH_PROPERTIES", ""));
        let config = write_config_with(dir.path(), &group, &broker.address(), &group, &url, &more);
        std::fs::write(
            &config,
            std::fs::read_to_string(&config)
                .unwrap()
                .replace("batch_messages = 200", "batch_messages = 2000"),
        )
        .unwrap();
        let server_before = server_cpu_seconds(postmaster);
        let mut members: Vec<common::Daemon> = (0..count)
            .map(|index| daemon(&config, false, &dir.path().join(format!("{group}-{index}.log"))))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut first: Option<(Instant, i64)> = None;
        loop {
            let done = progress(&url, &group);
            if first.is_none() && done > 0 {
                first = Some((Instant::now(), done));
            }
            if done >= total || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let ended = Instant::now();
        let daemons_cpu: f64 = members.iter().map(|member| cpu_seconds(member.id())).sum();
        let server_cpu = server_cpu_seconds(postmaster) - server_before;
        for member in &members {
            member.terminate();
        }
        for member in &mut members {
            member.wait_timeout(Duration::from_secs(60));
        }
        assert_eq!(
            progress(&url, &group),
            total,
            "{count} instances did not read everything"
        );
        let (started, at_start) = first.expect("some progress");
        let seconds = ended.duration_since(started).as_secs_f64();
        let rate = (total - at_start) as f64 / seconds;
        eprintln!(
            "{count} instance(s): {rate:.0} events/s ({seconds:.2} s from the first stored batch); \
             daemons {daemons_cpu:.1} CPU-s, PostgreSQL {server_cpu:.1} CPU-s: {:.0} events per CPU-second of both",
            total as f64 / (daemons_cpu + server_cpu).max(0.001)
        );
    }
}
