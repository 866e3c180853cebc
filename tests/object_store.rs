//! Trails read where the clouds deliver them, from a real S3-compatible server
//! (moto in server mode, started here): the three clouds' delivery layouts in
//! one bucket give the alarms a replay of the same files gives; new objects
//! are picked up while running; kill -9 at random moments loses and doubles
//! nothing; a server that stops answering and comes back is read on; a bucket
//! that does not exist is named in the log; `replay s3://…` reads a bucket;
//! a signed CloudTrail digest chain is verified and a log file altered or
//! deleted after delivery raises `trail-file-integrity` alarms; a bucket
//! notification on Kafka starts a pass long before `poll_interval`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A moto S3 server on a free port, stopped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// With `INITIAL_NO_AUTH_ACTION_COUNT=0` moto checks every request's
    /// credentials against its own IAM (where no user exists): all are refused.
    fn start_with(env: &[(&str, &str)]) -> Moto {
        let port = free_port();
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {program} (scripts/test installs moto[server]): {error}"));
        let moto = Moto { child, port };
        wait_until("moto to answer", Duration::from_secs(60), || {
            moto.http().get("/", None).is_ok()
        });
        moto
    }

    fn http(&self) -> Http {
        Http::new(format!("127.0.0.1:{}", self.port), Duration::from_secs(30))
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn create_bucket(&self, bucket: &str) {
        let reply = self.http().request("PUT", &format!("/{bucket}"), None, None).unwrap();
        assert!(
            reply.status < 300,
            "creating bucket {bucket}: {} {}",
            reply.status,
            reply.body
        );
    }

    fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        self.put_with(bucket, key, bytes, &[]);
    }

    /// A PUT with extra headers (`x-amz-meta-*`: the object's metadata).
    fn put_with(&self, bucket: &str, key: &str, bytes: &[u8], headers: &[(&str, &str)]) {
        let reply = self
            .http()
            .request_with(
                "PUT",
                &format!("/{bucket}/{key}"),
                headers,
                Some(("application/octet-stream", bytes)),
            )
            .unwrap();
        assert!(reply.status < 300, "putting {key}: {} {}", reply.status, reply.body);
    }

    /// SIGSTOP / SIGCONT: the server stops answering, then answers again (its objects kept).
    fn pause(&self, paused: bool) {
        let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.pause(false);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `examples/`, uploaded under its path (the three clouds'
/// delivery layouts); returns the keys.
fn upload_examples(moto: &Moto, bucket: &str, prefix: &str) -> Vec<String> {
    let root = examples_dir();
    let mut keys = Vec::new();
    for path in walk(&root) {
        let relative = path.strip_prefix(&root).unwrap().to_str().unwrap().replace('\\', "/");
        if relative == "README.md" {
            continue;
        }
        let key = format!("{prefix}{relative}");
        moto.put(bucket, &key, &std::fs::read(&path).unwrap());
        keys.push(key);
    }
    keys
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// A sandbox whose daemon reads `bucket` on `moto`.
fn sandbox(moto: &Moto, bucket: &str, poll: &str) -> Sandbox {
    let endpoint = moto.endpoint();
    let bucket = bucket.to_string();
    let poll = poll.to_string();
    Sandbox::with_config(move |sandbox| {
        Config::standard(&sandbox.store)
            .set("source", "kind", "object_store")
            .set("pipeline", "max_hold", "100ms")
            .append(&format!(
                "\n[source.object_store]\npoll_interval = \"{poll}\"\nconcurrency = 3\n\n\
                 [[source.object_store.buckets]]\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\n\
                 region = \"us-east-1\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\n"
            ))
    })
}

/// Alarms as (rule, group key) → count.
fn alarm_counts(sandbox: &Sandbox, db: &Path) -> BTreeMap<(String, String), u64> {
    sandbox
        .jsonl(&[
            "alarms",
            "list",
            "--db",
            db.to_str().unwrap(),
            "--format",
            "jsonl",
            "--limit",
            "100000",
        ])
        .iter()
        .map(|alarm: &Value| {
            (
                (
                    alarm["rule"].as_str().unwrap().to_string(),
                    alarm["group_key"].as_str().unwrap().to_string(),
                ),
                alarm["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// What a replay of `source` raises, in the store `db`.
fn replay_into(sandbox: &Sandbox, db: &Path, source: &str) -> BTreeMap<(String, String), u64> {
    sandbox.ok(&["replay", "--format", "jsonl", "--db", db.to_str().unwrap(), source]);
    alarm_counts(sandbox, db)
}

/// What a replay of the examples raises, in a store of its own.
fn replay_counts(sandbox: &Sandbox) -> BTreeMap<(String, String), u64> {
    replay_into(sandbox, &sandbox.path("replay.db"), examples_dir().to_str().unwrap())
}

#[test]
fn a_bucket_of_three_clouds_gives_the_alarms_a_replay_gives_and_new_objects_are_read() {
    let moto = Moto::start();
    moto.create_bucket("trails");
    let keys = upload_examples(&moto, "trails", "");
    // A CloudTrail digest file is not a trail file.
    moto.put(
        "trails",
        "AWSLogs/474051435025/CloudTrail-Digest/ap-northeast-1/2026/03/02/474051435025_CloudTrail-Digest_ap-northeast-1_x_20260302T1200Z.json.gz",
        b"not a trail",
    );
    // A malformed object: its records become dead letters naming bucket and key.
    moto.put(
        "trails",
        "aws/broken.json",
        b"{\"eventVersion\": \"1.08\", \"eventName\": \n",
    );
    let sandbox = sandbox(&moto, "trails", "200ms");
    sandbox.ok(&["run", "--once"]);
    let store = sandbox.store.clone();
    let expected = replay_counts(&sandbox);
    assert!(!expected.is_empty());
    assert_eq!(alarm_counts(&sandbox, &store), expected);
    let letters = sandbox.stdout(&["dead-letters", "--format", "json"]);
    assert!(!letters.contains("Digest"), "{letters}");
    assert!(letters.contains("trails/aws/broken.json"), "{letters}");
    // The spool keeps nothing read whole.
    let spool = PathBuf::from(format!("{}.spool", store.display()));
    assert!(walk_if_exists(&spool).is_empty(), "{:?}", walk_if_exists(&spool));
    // Run again: every object is known, nothing is counted twice.
    sandbox.ok(&["run", "--once"]);
    assert_eq!(alarm_counts(&sandbox, &store), expected);

    // While running: a new object is read within a few polls. The same
    // records under another key are read again (a new object), so the event
    // store holds each of its events twice.
    let mut daemon = sandbox.start(&["run"], Log::Collect);
    let (extra, local, event_id) = a_cloudtrail_example(&sandbox, &keys);
    let copies = |sandbox: &Sandbox| sandbox.jsonl(&["events", "--id", &event_id, "--format", "jsonl"]).len();
    assert_eq!(copies(&sandbox), 1);
    let bytes = std::fs::read(&local).unwrap();
    moto.put("trails", &extra.replace(".json.gz", "-again.json.gz"), &bytes);
    wait_until("the new object's events", Duration::from_secs(60), || {
        copies(&sandbox) == 2
    });
    // The server stops answering for a while, then comes back: errors are
    // logged and the next object is read all the same.
    moto.pause(true);
    std::thread::sleep(Duration::from_secs(2));
    moto.pause(false);
    moto.put("trails", &extra.replace(".json.gz", "-third.json.gz"), &bytes);
    wait_until("the object put after the outage", Duration::from_secs(90), || {
        copies(&sandbox) == 3
    });
    stop_cleanly(&mut daemon);
}

/// The first uploaded CloudTrail example: its key, its local file, and the
/// id of its first event.
fn a_cloudtrail_example(sandbox: &Sandbox, keys: &[String]) -> (String, PathBuf, String) {
    let key = keys.iter().find(|key| key.contains("CloudTrail/")).unwrap().clone();
    let local = examples_dir().join(&key);
    let event_id = sandbox.jsonl(&["normalize", local.to_str().unwrap()])[0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    (key, local, event_id)
}

/// SIGTERM, and it exits with success within a minute.
fn stop_cleanly(daemon: &mut Daemon) {
    daemon.terminate();
    assert!(
        daemon
            .wait_timeout(Duration::from_secs(60))
            .is_some_and(|status| status.success())
    );
}

fn walk_if_exists(dir: &Path) -> Vec<PathBuf> {
    if dir.is_dir() { walk(dir) } else { Vec::new() }
}

#[test]
fn kill_9_at_random_moments_loses_and_doubles_nothing() {
    let moto = Moto::start();
    moto.create_bucket("trails");
    upload_examples(&moto, "trails", "");
    let sandbox = sandbox(&moto, "trails", "100ms");
    let store = sandbox.store.clone();
    // Pseudo-random delays, the same every run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..4 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut daemon = sandbox.start(&["run"], Log::Collect);
        std::thread::sleep(Duration::from_millis(300 + seed % 1500));
        daemon.kill();
    }
    sandbox.ok(&["run", "--once"]);
    assert_eq!(alarm_counts(&sandbox, &store), replay_counts(&sandbox));
    let verified = sandbox.ok(&["store", "verify"]);
    assert!(verified.status.success());
}

#[test]
fn replay_reads_a_bucket_url_and_a_missing_bucket_is_named() {
    let moto = Moto::start();
    moto.create_bucket("delivery");
    upload_examples(&moto, "delivery", "org/");
    let sandbox = Sandbox::with_config(|sandbox| Config::standard(&sandbox.store)).with_bin(|bin| {
        bin.env("AWS_ENDPOINT_URL", &moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
    });
    let from_bucket = replay_into(&sandbox, &sandbox.path("bucket.db"), "s3://delivery/org/");
    assert_eq!(from_bucket, replay_counts(&sandbox));
    // A bucket that is not there: the error names it, nothing is made up.
    let output = sandbox.run(&["replay", "--format", "jsonl", "s3://no-such-bucket/x/"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("no-such-bucket"), "{}", stderr(&output));
    // The daemon logs it and goes on.
    let missing = sandbox_with_bucket(&moto, "no-such-bucket");
    let output = missing.ok(&["run", "--once"]);
    assert!(stderr(&output).contains("no-such-bucket"), "{}", stderr(&output));
    // Credentials refused: named with the bucket, and nothing is read.
    let strict = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let refused = sandbox_with_bucket(&strict, "locked");
    let output = refused.ok(&["run", "--once"]);
    let log = stderr(&output);
    assert!(log.contains("s3://locked/") && log.contains("403"), "{log}");
    assert!(refused.jsonl(&["events", "--format", "jsonl"]).is_empty());
}

fn sandbox_with_bucket(moto: &Moto, bucket: &str) -> Sandbox {
    sandbox(moto, bucket, "100ms")
}

/// The signed trail of `tests/fixtures/integrity/bucket` (bucket `org-trails`),
/// each digest with its `signature` metadata, as an intruder left it: the
/// log file `altered` rewritten (one record changed), `deleted` not there.
/// (moto refuses unsigned requests on objects that exist, so the bucket is
/// filled in its tampered state rather than tampered with.)
fn upload_signed_trail(moto: &Moto, altered: &str, deleted: &str) {
    let root = repo().join("tests/fixtures/integrity/bucket");
    for path in walk(&root) {
        let key = path.strip_prefix(&root).unwrap().to_str().unwrap().replace('\\', "/");
        if key.ends_with(".signature") || key == deleted {
            continue;
        }
        let mut bytes = std::fs::read(&path).unwrap();
        if key == altered {
            let text = String::from_utf8(gunzip(&bytes)).unwrap();
            bytes = gzip(text.replace("ListBuckets", "GetObject").as_bytes());
        }
        match std::fs::read_to_string(path.with_extension("gz.signature")) {
            Ok(signature) => moto.put_with(
                "org-trails",
                &key,
                &bytes,
                &[("x-amz-meta-signature", signature.trim())],
            ),
            Err(_) => moto.put("org-trails", &key, &bytes),
        }
    }
}

#[test]
fn digest_files_are_verified_and_a_log_file_altered_or_deleted_raises_alarms() {
    let logs: Vec<String> = walk(&repo().join("tests/fixtures/integrity/bucket"))
        .iter()
        .map(|path| path.to_str().unwrap().replace('\\', "/"))
        .filter_map(|path| path.split_once("/bucket/").map(|(_, key)| key.to_string()))
        .filter(|key| key.contains("/CloudTrail/"))
        .collect();
    assert_eq!(logs.len(), 6, "{logs:?}");
    let (altered, deleted) = (logs[2].clone(), logs[5].clone());
    let moto = Moto::start();
    moto.create_bucket("org-trails");
    upload_signed_trail(&moto, &altered, &deleted);

    let endpoint = moto.endpoint();
    let public_keys = repo().join("tests/fixtures/integrity/public-keys.json");
    let sandbox = Sandbox::with_config(move |sandbox| {
        Config::standard(&sandbox.store)
            .set("source", "kind", "object_store")
            .set("pipeline", "max_hold", "100ms")
            .append(&format!(
                "\n[source.object_store]\npoll_interval = \"100ms\"\ncloudtrail_public_keys = \"{}\"\n\n\
                 [[source.object_store.buckets]]\nbucket = \"org-trails\"\nprefix = \"AWSLogs/\"\nendpoint = \"{endpoint}\"\n\
                 region = \"us-east-1\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\nverify_digests = true\n",
                public_keys.display()
            ))
    });
    let output = sandbox.ok(&["run", "--once"]);
    let log = stderr(&output);
    assert!(
        log.contains("LogFileAltered") && log.contains("LogFileMissing"),
        "{log}"
    );

    // One alarm per finding, naming the object.
    let alarms: Vec<Value> = sandbox.jsonl(&["alarms", "list", "--format", "jsonl", "--rule", "trail-file-integrity"]);
    let mut found: Vec<String> = alarms
        .iter()
        .map(|alarm| alarm["output"].as_str().unwrap().to_string())
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            format!("LogFileAltered: arn:aws:s3:::org-trails/{altered} (trail of account 493817265041, us-east-1)"),
            format!("LogFileMissing: arn:aws:s3:::org-trails/{deleted} (trail of account 493817265041, us-east-1)"),
        ],
        "{alarms:?}"
    );
    // Each digest verified once, its signature checked; the log files read as trail files too.
    let verified = sandbox.jsonl(&["events", "--action", "DigestVerified", "--format", "jsonl"]);
    assert_eq!(verified.len(), 3, "{verified:?}");
    for event in &verified {
        assert_eq!(event["raw"]["serviceEventDetails"]["signature"], "valid", "{event}");
    }
    assert_eq!(
        sandbox
            .jsonl(&["events", "--action", "ListBuckets", "--format", "jsonl"])
            .len(),
        4
    );
    // Nothing is verified twice, and the spool keeps nothing read whole.
    sandbox.ok(&["run", "--once"]);
    assert_eq!(
        sandbox
            .jsonl(&["events", "--action", "DigestVerified", "--format", "jsonl"])
            .len(),
        3
    );
    let spool = PathBuf::from(format!("{}.spool", sandbox.store.display()));
    assert!(walk_if_exists(&spool).is_empty(), "{:?}", walk_if_exists(&spool));
    assert!(sandbox.ok(&["store", "verify"]).status.success());
}

#[test]
fn a_public_keys_file_that_is_not_one_is_refused_by_name() {
    let sandbox = Sandbox::with_config(|sandbox| {
        Config::standard(&sandbox.store).append("\n[source.object_store]\ncloudtrail_public_keys = \"Cargo.toml\"\n")
    });
    let output = sandbox.run(&["run", "--once"]);
    assert!(!output.status.success());
    let log = stderr(&output);
    assert!(
        log.contains("source.object_store.cloudtrail_public_keys") && log.contains("Cargo.toml"),
        "{log}"
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

#[test]
fn a_bucket_notification_on_kafka_starts_a_pass_before_the_poll_interval() {
    use common::kafka::{Message, produce};
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("a mock cluster");
    cluster
        .create_topic("bucket-events", 1, 1)
        .expect("the notification topic");
    let brokers = cluster.bootstrap_servers();
    let moto = Moto::start();
    moto.create_bucket("trails");
    let keys = upload_examples(&moto, "trails", "");
    let endpoint = moto.endpoint();
    let notified = brokers.clone();
    // Listed once at the start, then not for an hour: only a notification brings a pass.
    let sandbox = Sandbox::with_config(move |sandbox| {
        Config::standard(&sandbox.store)
            .set("source", "kind", "object_store")
            .set("pipeline", "max_hold", "100ms")
            .append(&format!(
                "\n[source.object_store]\npoll_interval = \"1h\"\n\n\
                 [[source.object_store.buckets]]\nbucket = \"trails\"\nendpoint = \"{endpoint}\"\n\
                 region = \"us-east-1\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\n\n\
                 [source.object_store.notifications]\nbrokers = \"{notified}\"\ntopics = [\"bucket-events\"]\n"
            ))
    });
    let (extra, local, event_id) = a_cloudtrail_example(&sandbox, &keys);
    // The store may not be there (or be half made) before the daemon's first pass.
    let copies = |sandbox: &Sandbox| {
        let output = sandbox.run(&["events", "--id", &event_id, "--format", "jsonl"]);
        if output.status.success() {
            stdout(&output).lines().count()
        } else {
            0
        }
    };
    let mut daemon = sandbox.start(&["run"], Log::Collect);
    wait_until("the first pass", Duration::from_secs(60), || copies(&sandbox) == 1);
    // A new object, and S3's notification of it (as an S3 → Kafka bridge delivers it).
    let again = extra.replace(".json.gz", "-again.json.gz");
    moto.put("trails", &again, &std::fs::read(&local).unwrap());
    let notification = serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "trails", "arn": "arn:aws:s3:::trails"}, "object": {"key": again, "size": 1}},
    }]});
    produce(
        &brokers,
        "bucket-events",
        &[Message {
            key: "trails".into(),
            payload: notification.to_string().into_bytes(),
        }],
    );
    wait_until("the notified object's events", Duration::from_secs(60), || {
        copies(&sandbox) == 2
    });
    stop_cleanly(&mut daemon);
}
