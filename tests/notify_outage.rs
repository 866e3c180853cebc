//! The notification outage drill: the SMTP server and the webhook receiver
//! are down for ten minutes while alarms keep coming, then come back.
//!
//! Ten minutes of real time is shortened by configuration, not simulated: every
//! notification duration is the shipped default divided by 60 (retries from
//! 10 s to 10 min become 170 ms to 10 s; the 24-hour give-up age 24 min; a
//! topic's 5-minute rate window and digest interval 5 s), so the ten-second
//! outage here sees the retries, rate windows and digests a ten-minute one
//! sees at that pace: about six attempts at the head of each subscription's
//! queue, two rate windows. Real servers on
//! loopback: aiosmtpd and an HTTP server, started only when the outage ends.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::smtp::SmtpSink;
use common::webhook::Receiver;
use common::*;
use serde_json::Value;

/// The outage, in real seconds: ten minutes at the defaults' pace.
const OUTAGE: Duration = Duration::from_secs(10);
/// Corpora moved into the watched directory during the outage, one per second.
const CORPORA: usize = 8;

fn deliveries(sandbox: &Sandbox, status: Option<&str>) -> Vec<Value> {
    if !sandbox.store.exists() {
        return Vec::new();
    }
    let mut args = vec!["notify", "deliveries", "--format", "json", "--limit", "1000000"];
    if let Some(status) = status {
        args.extend(["--status", status]);
    }
    sandbox.json(&args).as_array().cloned().unwrap_or_default()
}

fn medium_alarms(sandbox: &Sandbox) -> BTreeSet<i64> {
    sandbox
        .json(&[
            "alarms", "list", "--level", "medium", "--format", "json", "--limit", "1000000",
        ])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|alarm| alarm["id"].as_i64().expect("id"))
        .collect()
}

/// The row id (queue order) of each delivery id of `subscription`.
fn queue_positions(all: &[Value], subscription: &str) -> BTreeMap<String, i64> {
    all.iter()
        .filter(|delivery| delivery["subscription"] == subscription)
        .map(|delivery| {
            (
                delivery["delivery_id"].as_str().expect("delivery id").to_string(),
                delivery["id"].as_i64().expect("row id"),
            )
        })
        .collect()
}

fn generate(sandbox: &Sandbox, path: &Path, seed: usize) {
    sandbox.stdout(&[
        "generate",
        "--events",
        "2500",
        "--seed",
        &seed.to_string(),
        "--start",
        &format!("2026-03-{:02}", seed + 1),
        "--days",
        "1",
        "--out",
        path.to_str().unwrap(),
    ]);
}

#[test]
fn a_ten_minute_outage_at_one_sixtieth_scale_delivers_everything_once_in_order_with_digests() {
    let http_port = free_port();
    let smtp_port = free_port();
    let sandbox = Sandbox::new();
    let watch = sandbox.path("watch");
    std::fs::create_dir_all(&watch).unwrap();
    sandbox.write_config(
        &Config::standard(&sandbox.store)
            .files(&[&watch])
            .set("source.files", "poll_interval", "100ms")
            .set("source.files", "settle", "0s")
            .set("store.backup", "dir", "")
            .append(&format!(
                r#"
[notify]
poll_interval = "100ms"
backoff_initial = "170ms"
backoff_max = "10s"
max_age = "24m"
timeout = "2s"

[notify.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"

[[notify.topics]]
name = "medium"
min_level = "medium"
on = ["opened"]
rate_limit = 10
rate_window = "5s"
digest_interval = "5s"

[[notify.topics.subscriptions]]
name = "hook"
webhook = "http://127.0.0.1:{http_port}/hook"
secret = "k"

[[notify.topics.subscriptions]]
name = "mail"
email = ["soc@example.com"]
"#
            )),
    );
    let staged: Vec<_> = (0..CORPORA)
        .map(|index| {
            let path = sandbox.path(&format!("staged-{index}.jsonl"));
            generate(&sandbox, &path, index + 1);
            path
        })
        .collect();

    // Both receivers are down from the start; alarms keep coming through it.
    let mut daemon = sandbox.start(&["run"], Log::Collect);
    let outage_began = Instant::now();
    for (index, path) in staged.iter().enumerate() {
        std::fs::rename(path, watch.join(format!("corpus-{index}.jsonl"))).unwrap();
        std::thread::sleep(OUTAGE / CORPORA as u32);
    }
    if let Some(left) = OUTAGE.checked_sub(outage_began.elapsed()) {
        std::thread::sleep(left);
    }
    let during = deliveries(&sandbox, None);
    assert!(
        during.iter().all(|delivery| delivery["status"] != "delivered"),
        "nothing is delivered while both receivers are down"
    );
    let retried = during
        .iter()
        .filter(|delivery| delivery["attempts"].as_u64() >= Some(3))
        .count();
    let attempts: u64 = during.iter().filter_map(|delivery| delivery["attempts"].as_u64()).sum();
    assert!(
        retried > 0,
        "deliveries were retried through the outage: {during:?}; alarms: {:?}; {}",
        medium_alarms(&sandbox),
        daemon.stderr()
    );
    assert!(daemon.exited().is_none(), "{}", daemon.stderr());

    // The receivers come back.
    let recovered = Instant::now();
    let http = Receiver::start(http_port);
    let smtp = SmtpSink::start(smtp_port, &[]);
    let medium = medium_alarms(&sandbox);
    wait_until("every delivery after recovery", Duration::from_secs(120), || {
        let all = deliveries(&sandbox, None);
        let opened = all.iter().filter(|delivery| delivery["kind"] != "digest").count();
        opened == 2 * medium_alarms(&sandbox).len()
            && all.iter().all(|delivery| {
                delivery["status"] == "delivered"
                    || (delivery["status"] == "folded" && delivery["digest_message"].is_i64())
            })
    });
    let drained = recovered.elapsed();
    assert!(daemon.terminate());
    assert!(daemon.wait().success(), "{}", daemon.stderr());

    let medium = medium_alarms(&sandbox).len().max(medium.len());
    let all = deliveries(&sandbox, None);
    assert!(all.iter().all(|delivery| delivery["status"] != "failed"));

    // The webhook: every delivery id exactly once, in the order queued.
    let hook_queue = queue_positions(&all, "hook");
    let received = http.on("/hook");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut hook_order = Vec::new();
    for request in &received {
        let id = request.header("X-Trailwarden-Delivery").to_string();
        *seen.entry(id.clone()).or_default() += 1;
        hook_order.push(*hook_queue.get(&id).unwrap_or_else(|| panic!("unknown delivery {id}")));
    }
    let delivered_hook: BTreeSet<String> = all
        .iter()
        .filter(|delivery| delivery["subscription"] == "hook" && delivery["status"] == "delivered")
        .map(|delivery| delivery["delivery_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), delivered_hook);
    assert!(seen.values().all(|count| *count == 1), "each webhook delivery once");
    assert!(
        hook_order.is_sorted(),
        "the webhook got them in queue order: {hook_order:?}"
    );

    // Every medium alarm reached the webhook: on its own or counted in a digest.
    let bodies: Vec<Value> = received.iter().map(|request| request.json()).collect();
    let single = bodies.iter().filter(|body| body["kind"] == "opened").count();
    let digests: Vec<&Value> = bodies.iter().filter(|body| body["kind"] == "digest").collect();
    let in_digests: u64 = digests
        .iter()
        .map(|body| body["digest"]["alarms_total"].as_u64().expect("alarms_total"))
        .sum();
    assert!(!digests.is_empty(), "the rate limit folded the burst into digests");
    assert_eq!(
        single as u64 + in_digests,
        medium as u64,
        "each alarm once, alone or in a digest"
    );

    // Mail: every message once, in the order queued, the same split.
    let mail_queue = queue_positions(&all, "mail");
    let mails = smtp.messages();
    let mail_order: Vec<i64> = mails
        .iter()
        .map(|mail| {
            let id = mail["message_id"].as_str().expect("message id");
            let id = id.trim_start_matches('<').trim_end_matches("@trailwarden>");
            *mail_queue.get(id).unwrap_or_else(|| panic!("unknown mail {id}"))
        })
        .collect();
    assert_eq!(
        mail_order.iter().collect::<BTreeSet<_>>().len(),
        mails.len(),
        "each mail once"
    );
    assert!(mail_order.is_sorted(), "mails in queue order: {mail_order:?}");
    let delivered_mail = all
        .iter()
        .filter(|delivery| delivery["subscription"] == "mail" && delivery["status"] == "delivered")
        .count();
    assert_eq!(mails.len(), delivered_mail);
    assert_eq!(
        mails.len(),
        hook_order.len(),
        "both subscriptions got the same messages"
    );

    eprintln!(
        "outage drill: {medium} medium alarms over {corpora} corpora during a {outage} s outage; \
         {attempts} attempts failed during it ({retried} deliveries tried 3 times or more); \
         after recovery, per subscription: {single} alarms on their own + {in_digests} in {digests} digests, \
         drained in {drained:.1} s; 0 lost, 0 repeated",
        corpora = CORPORA,
        outage = OUTAGE.as_secs(),
        digests = digests.len(),
        drained = drained.as_secs_f64(),
    );
}
