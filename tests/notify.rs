//! End-to-end tests of notifications, through the `trailwarden` binary
//! against a real SMTP server (aiosmtpd, `tests/support/smtp_sink.py`) and a
//! real HTTP server on loopback: mail and payload content, signatures,
//! an outage with a crash followed by recovery, rate limit → digest,
//! failed deliveries resent by hand, `notify test`, STARTTLS with a private
//! CA, and configuration errors.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use common::smtp::SmtpSink;
use common::webhook::{Received, Receiver};
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

// ---------------------------------------------------------------- the daemon

/// The bundled examples read once into a store, with notification settings;
/// the binary runs in the test's directory.
struct Fixture {
    sandbox: Sandbox,
    db: PathBuf,
}

impl Fixture {
    /// A config over the bundled examples with `notify` appended.
    fn new(notify: &str) -> Fixture {
        let sandbox = Sandbox::new().in_its_dir();
        sandbox.write_config(
            &Config::standard(&sandbox.store)
                .files(&[&examples_dir()])
                .set("source.files", "watch", false)
                .append("\n")
                .append(notify),
        );
        let db = sandbox.store.clone();
        Fixture { sandbox, db }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.sandbox.command(args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.sandbox.run(args)
    }

    /// Run; it must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        self.sandbox.stdout(args)
    }

    fn json(&self, args: &[&str]) -> Value {
        self.sandbox.json(args)
    }

    fn deliveries(&self, status: Option<&str>) -> Vec<Value> {
        // Until the daemon has made its store there is nothing to list (and
        // `notify deliveries` refuses a store that does not exist).
        if !Path::new(&self.db).exists() {
            return Vec::new();
        }
        let mut args = vec!["notify", "deliveries", "--format", "json", "--limit", "100000"];
        if let Some(status) = status {
            args.extend(["--status", status]);
        }
        self.json(&args).as_array().cloned().unwrap_or_default()
    }

    /// Alarms at `level` and above.
    fn alarms(&self, level: &str) -> Vec<Value> {
        self.json(&[
            "alarms", "list", "--level", level, "--format", "json", "--limit", "100000",
        ])
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    /// Every full access key in the store.
    fn full_keys(&self) -> Vec<String> {
        let connection = rusqlite::Connection::open(&self.db).expect("open store");
        let mut statement = connection
            .prepare("SELECT DISTINCT access_key_id FROM alarms WHERE access_key_id IS NOT NULL")
            .expect("prepare");
        statement
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }
}

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn query_param(target: &str, name: &str) -> Option<String> {
    let query = target.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| {
            // Percent-decoding of what the DingTalk signer encodes (base64 characters).
            value.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")
        })
    })
}

fn no_full_key(text: &str, keys: &[String], place: &str) {
    for key in keys {
        assert!(!text.contains(key.as_str()), "{place} quotes the full access key {key}");
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn alarms_reach_email_and_every_webhook_format_signed_and_masked() {
    let smtp = SmtpSink::start(free_port(), &["--auth", "tw-alerts:mail-pass"]);
    let http = Receiver::start(0);
    let fixture = Fixture::new(&format!(
        r#"[notify]
public_url = "https://tw.example.com/"
poll_interval = "200ms"

[notify.smtp]
host = "127.0.0.1"
port = {smtp}
security = "plain"
username = "tw-alerts"
password = "mail-pass"
from = "trailwarden <alerts@example.com>"

[[notify.topics]]
name = "high"
min_level = "high"
on = ["opened", "status"]

[[notify.topics.subscriptions]]
name = "soc-mail"
email = ["soc@example.com", "oncall@example.com"]

[[notify.topics.subscriptions]]
name = "siem"
webhook = "{generic}"
secret = "s3cret-signing-key"
headers = {{ "X-Team" = "soc" }}

[[notify.topics.subscriptions]]
name = "slack"
webhook = "{slack}"
format = "slack"

[[notify.topics]]
name = "chat"
min_level = "high"
rules = ["root-key-high-risk-api"]
on = ["opened"]

[[notify.topics.subscriptions]]
name = "dingtalk"
webhook = "{dingtalk}"
format = "dingtalk"
secret = "SECding"

[[notify.topics.subscriptions]]
name = "wecom"
webhook = "{wecom}"
format = "wecom"

[[notify.topics.subscriptions]]
name = "feishu"
webhook = "{feishu}"
format = "feishu"
secret = "feishu-secret"
"#,
        smtp = smtp.port,
        generic = http.url("/generic"),
        slack = http.url("/slack"),
        dingtalk = http.url("/dingtalk?access_token=robot-token"),
        wecom = http.url("/wecom?key=robot-key"),
        feishu = http.url("/feishu"),
    ));
    fixture.ok(&["run", "--once"]);

    let high = fixture.alarms("high");
    assert!(
        high.len() >= 3,
        "the examples raise several high alarms: {}",
        high.len()
    );
    let root: Vec<&Value> = high
        .iter()
        .filter(|alarm| alarm["rule"] == "root-key-high-risk-api")
        .collect();
    assert!(!root.is_empty(), "the examples raise root-key-high-risk-api");
    let keys = fixture.full_keys();
    let high_ids: BTreeSet<i64> = high.iter().map(|alarm| alarm["id"].as_i64().expect("id")).collect();

    // Email: one per high alarm, authenticated, subject with level, rule title and account.
    let mails = smtp.messages();
    assert_eq!(mails.len(), high.len(), "one mail per high alarm");
    let mut mailed: BTreeSet<i64> = BTreeSet::new();
    for mail in &mails {
        assert_eq!(mail["auth_user"], "tw-alerts");
        assert_eq!(mail["mail_from"], "alerts@example.com");
        assert_eq!(
            mail["rcpt_tos"],
            serde_json::json!(["soc@example.com", "oncall@example.com"])
        );
        let text = mail["text"].as_str().expect("a plain-text part");
        let html = mail["html"].as_str().expect("an HTML part");
        let url = text
            .lines()
            .find_map(|line| line.strip_prefix("Open in the console: "))
            .expect("a console link");
        let id: i64 = url
            .strip_prefix("https://tw.example.com/#/alarms/")
            .and_then(|id| id.parse().ok())
            .expect("a link to the alarm");
        let alarm = high.iter().find(|alarm| alarm["id"] == id).expect("a high alarm");
        let subject = mail["subject"].as_str().expect("subject");
        let account = alarm["account_name"]
            .as_str()
            .or(alarm["account_id"].as_str())
            .expect("account");
        assert_eq!(
            subject,
            format!("[HIGH] {} — {account}", alarm["title"].as_str().expect("title")),
            "subject"
        );
        assert!(text.contains(&format!("Rule:         {}", alarm["rule"].as_str().expect("rule"))));
        if let Some(masked) = alarm["access_key_id"].as_str() {
            assert!(text.contains(masked), "the mail shows the masked key {masked}");
            assert!(html.contains(masked));
        }
        assert!(html.contains(&format!("href=\"https://tw.example.com/#/alarms/{id}\"")));
        assert!(mail["message_id"].as_str().expect("message id").starts_with("<tw-"));
        no_full_key(&mail["data"].to_string(), &keys, "a mail");
        mailed.insert(id);
    }
    assert_eq!(mailed, high_ids, "every high alarm was mailed once");

    // Generic webhook: signed over timestamp and body, delivery id, custom header.
    let generic = http.on("/generic");
    assert_eq!(generic.len(), high.len());
    let mut delivery_ids = BTreeSet::new();
    for request in &generic {
        let body = request.json();
        let timestamp = request.header("X-Trailwarden-Timestamp");
        let mut signed = timestamp.as_bytes().to_vec();
        signed.push(b'.');
        signed.extend_from_slice(&request.body);
        assert_eq!(
            request.header("X-Trailwarden-Signature"),
            format!("v1={}", hmac_hex(b"s3cret-signing-key", &signed)),
            "the signature verifies"
        );
        assert_eq!(request.header("X-Team"), "soc");
        assert_eq!(request.header("Content-Type"), "application/json");
        assert_eq!(
            request.header("X-Trailwarden-Delivery"),
            body["delivery_id"].as_str().expect("id")
        );
        assert!(delivery_ids.insert(body["delivery_id"].as_str().expect("id").to_string()));
        assert_eq!(body["schema"], "trailwarden.notification.v1");
        assert_eq!(body["kind"], "opened");
        assert_eq!(body["topic"], "high");
        assert_eq!(body["alarm"]["level"], "high");
        let id = body["alarm"]["id"].as_i64().expect("alarm id");
        assert!(high_ids.contains(&id));
        assert_eq!(body["url"], format!("https://tw.example.com/#/alarms/{id}"));
        assert!(body["alarm"]["calls"].as_array().is_some_and(|calls| !calls.is_empty()));
        assert!(body["alarm"]["calls"][0]["ip_type"].is_string());
        no_full_key(&String::from_utf8_lossy(&request.body), &keys, "a webhook body");
    }

    // Slack: text + blocks.
    let slack = http.on("/slack");
    assert_eq!(slack.len(), high.len());
    for request in &slack {
        let body = request.json();
        assert!(body["text"].as_str().expect("text").starts_with("[HIGH] "));
        assert_eq!(body["blocks"][0]["type"], "header");
        assert!(
            body["blocks"][1]["text"]["text"]
                .as_str()
                .expect("mrkdwn")
                .contains("*Rule:*")
        );
        assert!(
            request.header("X-Trailwarden-Signature").is_empty(),
            "no secret, no signature"
        );
    }

    // DingTalk, WeCom, Feishu: only the root-key rule, each signed its own way.
    let dingtalk = http.on("/dingtalk");
    assert_eq!(dingtalk.len(), root.len());
    for request in &dingtalk {
        assert_eq!(
            query_param(&request.target, "access_token").as_deref(),
            Some("robot-token")
        );
        let timestamp = query_param(&request.target, "timestamp").expect("timestamp");
        let sign = query_param(&request.target, "sign").expect("sign");
        assert_eq!(
            sign,
            hmac_base64(b"SECding", format!("{timestamp}\nSECding").as_bytes())
        );
        let body = request.json();
        assert_eq!(body["msgtype"], "markdown");
        assert!(
            body["markdown"]["text"]
                .as_str()
                .expect("text")
                .contains("root-key-high-risk-api")
        );
    }
    let wecom = http.on("/wecom");
    assert_eq!(wecom.len(), root.len());
    for request in &wecom {
        let body = request.json();
        assert_eq!(body["msgtype"], "markdown");
        assert!(
            body["markdown"]["content"]
                .as_str()
                .expect("content")
                .contains("**Rule:**")
        );
    }
    let feishu = http.on("/feishu");
    assert_eq!(feishu.len(), root.len());
    for request in &feishu {
        let body = request.json();
        assert_eq!(body["msg_type"], "interactive");
        assert_eq!(body["card"]["header"]["template"], "red");
        let timestamp = body["timestamp"].as_str().expect("timestamp");
        assert_eq!(
            body["sign"].as_str().expect("sign"),
            hmac_base64(format!("{timestamp}\nfeishu-secret").as_bytes(), b"")
        );
    }

    let deliveries = fixture.deliveries(None);
    assert_eq!(deliveries.len(), 3 * high.len() + 3 * root.len());
    assert!(deliveries.iter().all(|delivery| delivery["status"] == "delivered"));

    // A status change queues a "status" notification for the topics that want one.
    let target = high_ids.iter().next().copied().expect("an alarm");
    fixture.ok(&[
        "alarms",
        "set-status",
        &target.to_string(),
        "processed",
        "--actor",
        "alice",
        "--reason",
        "key rotated",
    ]);
    fixture.ok(&["run", "--once"]);
    let status: Vec<Value> = http
        .on("/generic")
        .iter()
        .map(Received::json)
        .filter(|body| body["kind"] == "status")
        .collect();
    assert_eq!(status.len(), 1, "one status notification on the generic webhook");
    assert_eq!(status[0]["alarm"]["id"], target);
    assert_eq!(status[0]["alarm"]["status"], "processed");
    assert_eq!(status[0]["transition"]["actor"], "alice");
    assert_eq!(status[0]["transition"]["to_status"], "processed");
    let mails = smtp.messages();
    let last = mails.last().expect("a status mail");
    assert!(
        last["subject"]
            .as_str()
            .expect("subject")
            .starts_with("Processed: [HIGH] "),
        "{}",
        last["subject"]
    );
    assert_eq!(
        http.on("/dingtalk").len(),
        root.len(),
        "the chat topic does not want status changes"
    );
}

#[test]
fn an_outage_and_a_crash_delay_notifications_but_each_arrives_once_per_subscription() {
    let http_port = free_port();
    let smtp_port = free_port();
    let fixture = Fixture::new(&format!(
        r#"[notify]
poll_interval = "100ms"
backoff_initial = "200ms"
backoff_max = "1s"
timeout = "2s"

[notify.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"

[[notify.topics]]
name = "medium"
min_level = "medium"
on = ["opened"]

[[notify.topics.subscriptions]]
name = "hook"
webhook = "http://127.0.0.1:{http_port}/hook"
secret = "k"

[[notify.topics.subscriptions]]
name = "mail"
email = ["soc@example.com"]
"#
    ));
    // Both receivers are down: the daemon retries with backoff.
    let mut daemon = fixture.sandbox.start(&["run"], Log::Discard);
    wait_until("retries during the outage", Duration::from_secs(60), || {
        let pending = fixture.deliveries(Some("pending"));
        !pending.is_empty()
            && pending
                .iter()
                .any(|delivery| delivery["subscription"] == "hook" && delivery["attempts"].as_u64() >= Some(2))
            && pending
                .iter()
                .any(|delivery| delivery["subscription"] == "mail" && delivery["attempts"].as_u64() >= Some(1))
    });
    let pending = fixture.deliveries(Some("pending"));
    assert!(
        pending
            .iter()
            .filter_map(|delivery| delivery["last_error"].as_str())
            .any(|error| error.contains("/hook")),
        "the error names the endpoint: {pending:?}"
    );
    // A crash in the middle of the outage (and, likely, of reading the examples).
    daemon.kill();
    assert!(
        fixture
            .deliveries(None)
            .iter()
            .all(|delivery| delivery["status"] == "pending"),
        "nothing was delivered during the outage"
    );

    // Restart, then the receivers come back.
    let mut daemon = fixture.sandbox.start(&["run"], Log::Discard);
    std::thread::sleep(Duration::from_millis(500));
    let http = Receiver::start(http_port);
    let smtp = SmtpSink::start(smtp_port, &[]);
    wait_until("every delivery after recovery", Duration::from_secs(90), || {
        fixture.deliveries(Some("pending")).is_empty()
    });
    // SIGTERM: a clean stop.
    daemon.terminate();
    let status = daemon.wait();
    assert!(status.success(), "clean exit on SIGTERM");

    let medium = fixture.alarms("medium");
    let expected = fixture.deliveries(None);
    assert_eq!(
        expected.len(),
        2 * medium.len(),
        "one delivery per alarm and subscription"
    );
    let delivered = fixture.deliveries(Some("delivered"));
    assert_eq!(delivered.len(), expected.len(), "every delivery is delivered");
    let hook_ids: BTreeSet<String> = delivered
        .iter()
        .filter(|delivery| delivery["subscription"] == "hook")
        .map(|delivery| delivery["delivery_id"].as_str().expect("id").to_string())
        .collect();
    let mut received: BTreeMap<String, usize> = BTreeMap::new();
    for request in http.on("/hook") {
        *received
            .entry(request.header("X-Trailwarden-Delivery").to_string())
            .or_default() += 1;
    }
    assert_eq!(
        received.keys().cloned().collect::<BTreeSet<_>>(),
        hook_ids,
        "the webhook got every delivery id"
    );
    assert!(received.values().all(|count| *count == 1), "and each exactly once");
    let alarms: BTreeSet<i64> = http
        .on("/hook")
        .iter()
        .map(|request| request.json()["alarm"]["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(alarms.len(), medium.len(), "one webhook per medium-or-higher alarm");
    // In order per subscription: the webhook got them in the order they
    // were queued (delivery ids carry the message's number).
    let order: Vec<i64> = http
        .on("/hook")
        .iter()
        .map(|request| request.json()["alarm"]["id"].as_i64().expect("id"))
        .collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    eprintln!("webhook order after the outage: {order:?}");
    assert_eq!(order, sorted, "the webhook got them in the order they were queued");

    let mails = smtp.messages();
    let mut message_ids: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &mails {
        *message_ids
            .entry(mail["message_id"].as_str().expect("message id").to_string())
            .or_default() += 1;
    }
    assert_eq!(mails.len(), medium.len(), "one mail per medium-or-higher alarm");
    assert!(message_ids.values().all(|count| *count == 1), "each mail once");
}

#[test]
fn over_the_rate_limit_alarms_are_folded_into_a_digest() {
    let http = Receiver::start(0);
    let fixture = Fixture::new(&format!(
        r#"[notify]
poll_interval = "100ms"
public_url = "https://tw.example.com"

[[notify.topics]]
name = "burst"
min_level = "medium"
on = ["opened"]
rate_limit = 3
rate_window = "1h"
digest_interval = "1h"

[[notify.topics.subscriptions]]
name = "hook"
webhook = "{}"
"#,
        http.url("/hook")
    ));
    fixture.ok(&["run", "--once"]);
    let medium: BTreeSet<i64> = fixture
        .alarms("medium")
        .iter()
        .map(|alarm| alarm["id"].as_i64().expect("id"))
        .collect();
    assert!(medium.len() > 10, "the examples raise many medium alarms");
    let bodies: Vec<Value> = http.on("/hook").iter().map(Received::json).collect();
    let single: BTreeSet<i64> = bodies
        .iter()
        .filter(|body| body["kind"] == "opened")
        .map(|body| body["alarm"]["id"].as_i64().expect("id"))
        .collect();
    let digests: Vec<&Value> = bodies.iter().filter(|body| body["kind"] == "digest").collect();
    assert_eq!(single.len(), 3, "the first three alarms are sent on their own");
    assert_eq!(digests.len(), 1, "the rest is one digest (sent when the daemon stops)");
    let digest = &digests[0]["digest"];
    assert_eq!(digest["alarms_total"].as_u64(), Some((medium.len() - 3) as u64));
    assert_eq!(digest["messages"].as_u64(), Some((medium.len() - 3) as u64));
    let listed: BTreeSet<i64> = digest["alarms"]
        .as_array()
        .expect("alarms")
        .iter()
        .map(|alarm| alarm["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(listed.len(), (medium.len() - 3).min(50));
    assert!(listed.is_disjoint(&single));
    assert!(listed.iter().chain(single.iter()).all(|id| medium.contains(id)));
    assert_eq!(digests[0]["url"], "https://tw.example.com/#/alarms");
    let by_level: u64 = digest["by_level"]
        .as_object()
        .expect("by level")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(by_level, (medium.len() - 3) as u64);
    let folded = fixture.deliveries(Some("folded"));
    assert_eq!(folded.len(), medium.len() - 3);
    assert!(folded.iter().all(|delivery| delivery["digest_message"].is_i64()));
}

#[test]
fn refused_deliveries_are_listed_as_failed_and_resent_with_the_same_ids() {
    let http = Receiver::start(0);
    http.status.store(400, Ordering::SeqCst);
    let fixture = Fixture::new(&format!(
        r#"[notify]
poll_interval = "100ms"

[[notify.topics]]
name = "high"
min_level = "high"
on = ["opened"]

[[notify.topics.subscriptions]]
name = "hook"
webhook = "{}"
"#,
        http.url("/hook")
    ));
    fixture.ok(&["run", "--once"]);
    let high = fixture.alarms("high");
    let failed = fixture.deliveries(Some("failed"));
    assert_eq!(failed.len(), high.len(), "a 400 is a permanent failure");
    for delivery in &failed {
        assert_eq!(delivery["last_status"], 400);
        assert!(
            delivery["last_error"]
                .as_str()
                .is_some_and(|error| error.contains("HTTP 400") && error.contains("refused by the test")),
            "{delivery}"
        );
    }
    let table = fixture.ok(&["notify", "deliveries", "--failed"]);
    assert!(table.contains("HTTP 400"), "{table}");
    assert_eq!(http.on("/hook").len(), high.len(), "each tried once, no retries");

    // Resending a delivered or unknown id is refused, and says why.
    let output = fixture.run(&["notify", "resend", "999999"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("delivery 999999 does not exist"));

    http.status.store(200, Ordering::SeqCst);
    let out = fixture.ok(&["notify", "resend", "--all-failed"]);
    assert!(out.starts_with(&format!("{} deliver", high.len())), "{out}");
    fixture.ok(&["run", "--once"]);
    assert!(fixture.deliveries(Some("failed")).is_empty());
    let failed_ids: BTreeSet<String> = failed
        .iter()
        .map(|delivery| delivery["delivery_id"].as_str().expect("id").to_string())
        .collect();
    let requests = http.on("/hook");
    assert_eq!(requests.len(), 2 * high.len());
    let resent: BTreeSet<String> = requests[high.len()..]
        .iter()
        .map(|request| request.header("X-Trailwarden-Delivery").to_string())
        .collect();
    assert_eq!(resent, failed_ids, "the resend used the same delivery ids");
    let delivered = fixture.deliveries(Some("delivered"));
    let id = delivered[0]["id"].as_i64().expect("id").to_string();
    let output = fixture.run(&["notify", "resend", &id]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is delivered, not failed"));
}

#[test]
fn notify_test_sends_a_sample_through_every_subscription_and_reports_each() {
    let http = Receiver::start(0);
    let smtp = SmtpSink::start(free_port(), &[]);
    let down = free_port();
    let fixture = Fixture::new(&format!(
        r#"[notify]
timeout = "2s"

[notify.smtp]
host = "127.0.0.1"
port = {}
security = "plain"

[[notify.topics]]
name = "soc"

[[notify.topics.subscriptions]]
name = "hook-ok"
webhook = "{}"

[[notify.topics.subscriptions]]
name = "hook-down"
webhook = "http://127.0.0.1:{down}/x?token=robot-secret-token"

[[notify.topics.subscriptions]]
name = "mail"
email = ["soc@example.com"]
"#,
        smtp.port,
        http.url("/ok")
    ));
    let output = fixture.run(&["notify", "test", "soc"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "one subscription failed: {stdout}");
    assert!(stdout.contains("ok      hook-ok (200)"), "{stdout}");
    assert!(stdout.contains("ok      mail (250)"), "{stdout}");
    assert!(stdout.contains("FAILED  hook-down: POST http://127.0.0.1:"), "{stdout}");
    assert!(
        !stdout.contains("robot-secret-token"),
        "the URL's token is not shown: {stdout}"
    );
    assert!(stdout.contains("2 of 3 subscription(s) of topic soc"), "{stdout}");
    let body = http.on("/ok")[0].json();
    assert_eq!(body["kind"], "test");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0]["subject"]
            .as_str()
            .expect("subject")
            .starts_with("Test: [HIGH] ")
    );
    let output = fixture.run(&["notify", "test", "nope"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("there is no topic \"nope\" (configured: soc)"));
    let topics = fixture.ok(&["notify", "topics"]);
    assert!(
        topics.contains("hook-down  webhook  generic  http://127.0.0.1:"),
        "{topics}"
    );
    assert!(!topics.contains("robot-secret-token"), "{topics}");
}

/// A private CA and a server certificate for `localhost` signed by it:
/// (CA certificate, server certificate, server key).
fn openssl_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let path = |name: &str| dir.join(name).display().to_string();
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write extensions");
    let steps: [Vec<String>; 3] = [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=trailwarden test CA",
            "-keyout",
            &path("ca.key"),
            "-out",
            &path("ca.pem"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &path("server.key"),
            "-out",
            &path("server.csr"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "x509",
            "-req",
            "-in",
            &path("server.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &path("server.ext"),
            "-out",
            &path("server.pem"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    ];
    for step in steps {
        let status = Command::new("openssl")
            .args(&step)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {step:?}");
    }
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

#[test]
fn starttls_with_a_private_ca_and_authentication() {
    let certificates = tempfile::tempdir().expect("dir");
    let (ca, cert, key) = openssl_certificates(certificates.path());
    let port = free_port();
    let smtp = SmtpSink::start(
        port,
        &[
            "--cert",
            cert.to_str().expect("path"),
            "--key",
            key.to_str().expect("path"),
            "--auth",
            "tw:tls-pass",
        ],
    );
    let config = |ca: &str| {
        format!(
            r#"[notify]
timeout = "3s"

[notify.smtp]
host = "localhost"
port = {port}
security = "starttls"
username = "tw"
password_env = "TW_TEST_SMTP_PASSWORD"
{ca}

[[notify.topics]]
name = "mail"

[[notify.topics.subscriptions]]
name = "mail"
email = ["soc@example.com"]
"#
        )
    };
    // Without the private CA the certificate is refused.
    let untrusted = Fixture::new(&config(""));
    let output = untrusted
        .command(&["notify", "test", "mail"])
        .env("TW_TEST_SMTP_PASSWORD", "tls-pass")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED  mail: SMTP localhost:"), "{stdout}");
    let trusted = Fixture::new(&config(&format!("ca_file = {:?}", ca.display().to_string())));
    let output = trusted
        .command(&["notify", "test", "mail"])
        .env("TW_TEST_SMTP_PASSWORD", "tls-pass")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0]["tls"], true, "the session was upgraded with STARTTLS");
    assert_eq!(mails[0]["auth_user"], "tw");
    // With a wrong password this server never answers the AUTH command:
    // the whole conversation is cut off at `notify.smtp.timeout`.
    let started = Instant::now();
    let output = trusted
        .command(&["notify", "test", "mail"])
        .env("TW_TEST_SMTP_PASSWORD", "wrong")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains("FAILED  mail: SMTP localhost:") && stdout.contains("no answer within 3s"),
        "{stdout}"
    );
    assert!(started.elapsed() < Duration::from_secs(60), "the deadline held");
    assert_eq!(smtp.messages().len(), 1, "nothing more was accepted");
}

#[test]
fn bad_notification_config_is_named_at_start() {
    let cases: [(&str, &str); 8] = [
        (
            "[[notify.topics]]\nname = \"a\"\n[[notify.topics.subscriptions]]\nname = \"m\"\nemail = [\"soc@example.com\"]\n",
            "`notify.topics[\"a\"].subscriptions[\"m\"]` sends email, but there is no `[notify.smtp]` section",
        ),
        (
            "[[notify.topics]]\nname = \"a\"\n[[notify.topics.subscriptions]]\nname = \"h\"\nwebhook = \"http://x/\"\nformat = \"teams\"\n",
            "`notify.topics[\"a\"].subscriptions[\"h\"].format` = \"teams\" must be generic, slack, dingtalk, wecom or feishu",
        ),
        (
            "[[notify.topics]]\nname = \"a\"\n[[notify.topics.subscriptions]]\nname = \"h\"\nwebhook = \"ftp://x/?token=t0ken\"\n",
            "`notify.topics[\"a\"].subscriptions[\"h\"].webhook` = \"ftp://x/?…\" is not an http(s) URL",
        ),
        (
            "[[notify.topics]]\nname = \"a\"\nmin_level = \"critical\"\n[[notify.topics.subscriptions]]\nname = \"h\"\nwebhook = \"http://x/\"\n",
            "`notify.topics[\"a\"].min_level` = \"critical\" is not a level (info, low, medium, high)",
        ),
        (
            "[[notify.topics]]\nname = \"a\"\n",
            "`notify.topics[\"a\"]` has no subscriptions",
        ),
        (
            "[notify.smtp]\nhost = \"mail\"\nsecurity = \"ssl\"\n",
            "`notify.smtp.security` = \"ssl\" must be \"starttls\", \"tls\" or \"plain\"",
        ),
        (
            "[notify]\nbackoff_initial = \"soon\"\n",
            "`notify.backoff_initial` = \"soon\" is not a duration",
        ),
        (
            "[[notify.topics]]\nname = \"a\"\non = [\"closed\"]\n[[notify.topics.subscriptions]]\nname = \"h\"\nwebhook = \"http://x/\"\n",
            "`notify.topics[\"a\"].on` lists \"closed\"; expected \"opened\", \"escalated\", \"status\", \"policy\", \"operation\" or \"config\"",
        ),
    ];
    for (config, expected) in cases {
        let fixture = Fixture::new(config);
        let output = fixture.run(&["notify", "topics"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{config} was accepted");
        assert!(
            stderr.contains(expected),
            "{config}\nexpected: {expected}\ngot: {stderr}"
        );
        assert!(!stderr.contains("t0ken"), "the URL's token is not echoed: {stderr}");
    }
}

#[test]
fn allowlist_policy_changes_are_notified_with_their_actor_and_broad_ones_flagged() {
    let http = Receiver::start(0);
    let fixture = Fixture::new(&format!(
        r#"[notify]
poll_interval = "100ms"
public_url = "https://tw.example.com"

[[notify.topics]]
name = "policies"
min_level = "high"
on = ["policy"]

[[notify.topics.subscriptions]]
name = "hook"
webhook = "{}"
"#,
        http.url("/hook")
    ));
    // A broad policy is refused without the override, and the refusal queues nothing.
    let refused = fixture.run(&["allowlist", "add", "--api", "*", "--reason", "silence everything"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("broad"));
    fixture.ok(&[
        "allowlist",
        "add",
        "--api",
        "*",
        "--allow-broad",
        "--actor",
        "alice",
        "--reason",
        "maintenance window",
    ]);
    fixture.ok(&[
        "allowlist",
        "add",
        "--api",
        "cam.List*",
        "--actor",
        "bob",
        "--reason",
        "inventory",
    ]);
    fixture.ok(&["allowlist", "remove", "2", "--actor", "carol"]);
    fixture.ok(&["run", "--once"]);
    let bodies: Vec<Value> = http.on("/hook").iter().map(Received::json).collect();
    let kinds: Vec<&str> = bodies.iter().filter_map(|body| body["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["policy", "policy", "policy"],
        "only the policy changes: {bodies:?}"
    );
    let policy = |index: usize| &bodies[index]["policy"];
    assert_eq!(
        (
            policy(0)["action"].as_str(),
            policy(0)["actor"].as_str(),
            policy(0)["approved_by"].as_str()
        ),
        (Some("added"), Some("alice"), Some("alice"))
    );
    assert!(
        policy(0)["broad"]
            .as_str()
            .is_some_and(|why| why.contains("matches every name")),
        "{}",
        policy(0)
    );
    assert!(
        policy(0)["via"]
            .as_str()
            .is_some_and(|via| via.starts_with("cli (unix user "))
    );
    assert_eq!(
        (policy(1)["actor"].as_str(), policy(1)["broad"].is_null()),
        (Some("bob"), true)
    );
    assert_eq!(
        (
            policy(2)["action"].as_str(),
            policy(2)["actor"].as_str(),
            policy(2)["id"].as_i64()
        ),
        (Some("removed"), Some("carol"), Some(2))
    );
    assert_eq!(bodies[0]["url"], "https://tw.example.com/#/allowlist");
    // The broad policy swallowed every match, high ones included: counted, never silent.
    assert!(fixture.alarms("info").is_empty(), "every match was allowlisted");
    let policies = fixture.json(&["allowlist", "list", "--format", "json"]);
    let broad = &policies.as_array().expect("policies")[0];
    let high = broad["high_hits"].as_u64().expect("high_hits");
    assert!(high > 0, "the examples' high matches are counted as such: {broad}");
    assert!(broad["hit_count"].as_u64().expect("hit_count") > high);
}

/// A topic with `on = ["operation"]` (SEC09-03's real-time notification of
/// key operations) sends one message per match of its rules, not one per
/// alarm, each naming its alarm and the operation, keys masked.
#[test]
fn a_topic_can_send_one_message_per_key_operation() {
    let http = Receiver::start(0);
    let fixture = Fixture::new(&format!(
        r#"[notify]
poll_interval = "100ms"

[[notify.topics]]
name = "key-operations"
min_level = "low"
tags = ["sec09-03"]
on = ["operation"]

[[notify.topics.subscriptions]]
name = "hook"
webhook = "{}"
"#,
        http.url("/ops")
    ));
    fixture.ok(&["run", "--once"]);
    let bodies: Vec<Value> = http.on("/ops").iter().map(Received::json).collect();
    assert!(!bodies.is_empty(), "the examples hold key operations");
    assert!(
        bodies.iter().all(|body| body["kind"] == "operation"),
        "no per-alarm messages on this topic"
    );
    // As many messages per alarm as the alarm has matches.
    let mut per_alarm: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
    for body in &bodies {
        *per_alarm
            .entry(body["alarm"]["id"].as_i64().expect("an alarm id"))
            .or_default() += 1;
        assert!(!body["reason"].as_str().unwrap_or("").is_empty(), "{body}");
    }
    let alarms = fixture.alarms("low");
    for (id, messages) in &per_alarm {
        let alarm = alarms
            .iter()
            .find(|alarm| alarm["id"] == *id)
            .expect("the alarm is listed");
        assert_eq!(alarm["count"].as_u64(), Some(*messages), "alarm {id}");
    }
    no_full_key(
        &serde_json::to_string(&bodies).unwrap(),
        &fixture.full_keys(),
        "operation messages",
    );
}

/// Protected configuration (remarks, assets, policies, the rule set) changes
/// reach the topics with `config` in `on`, one message per operation with its
/// actor and what changed, keys masked; a `policy` topic keeps its own
/// policy messages.
#[test]
fn configuration_changes_are_notified_with_their_actor() {
    let http = Receiver::start(0);
    let fixture = Fixture::new(&format!(
        r#"[notify]
poll_interval = "100ms"
public_url = "https://tw.example.com"

[[notify.topics]]
name = "config"
min_level = "high"
on = ["config"]

[[notify.topics.subscriptions]]
name = "hook"
webhook = "{}"

[[notify.topics]]
name = "policies"
on = ["policy"]

[[notify.topics.subscriptions]]
name = "hook"
webhook = "{}"
"#,
        http.url("/config"),
        http.url("/policy")
    ));
    let key = "AKIAXEK3Q7BZ7HNM4P2L";
    fixture.ok(&["remark", "set", "key", key, "ops laptop", "--actor", "alice"]);
    fixture.ok(&["assets", "add", "10.0.0.0/8", "office", "--actor", "bob"]);
    fixture.ok(&[
        "allowlist",
        "add",
        "--api",
        "cam.List*",
        "--actor",
        "carol",
        "--reason",
        "inventory",
    ]);
    let assets = fixture.sandbox.path("assets.csv");
    std::fs::write(&assets, "192.0.2.0/24,lab\n198.51.100.0/24,vpn\n203.0.113.0/24,dc\n").unwrap();
    fixture.ok(&["assets", "import", assets.to_str().unwrap(), "--actor", "dave"]);
    fixture.ok(&["run", "--once"]);
    let bodies: Vec<Value> = http.on("/config").iter().map(Received::json).collect();
    let summaries: Vec<&str> = bodies
        .iter()
        .filter_map(|body| body["config"]["summary"].as_str())
        .collect();
    assert_eq!(
        summaries,
        [
            "remark set by alice",
            "asset set by bob",
            "policy added by carol",
            "3 changes (asset) by dave",
            "rules loaded by daemon start",
        ],
        "{bodies:?}"
    );
    assert!(bodies.iter().all(|body| body["kind"] == "config"));
    let text = bodies[0]["config"]["changes"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("remark on key ") && text.ends_with(": ops laptop"),
        "{text}"
    );
    assert!(!bodies[0].to_string().contains(key), "a full key in {}", bodies[0]);
    assert_eq!(
        bodies[3]["config"]["changes"][2]["text"], "asset 203.0.113.0/24 (dc)",
        "{}",
        bodies[3]
    );
    let rules = bodies[4]["config"]["changes"][0]["text"].as_str().unwrap();
    assert!(
        rules.starts_with("rule set ") && rules.contains(" rules; added: "),
        "{rules}"
    );
    // The policy topic got the policy change as its own kind, and nothing else.
    let kinds: Vec<String> = http
        .on("/policy")
        .iter()
        .map(|request| request.json()["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(kinds, ["policy"]);
}
