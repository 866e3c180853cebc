//! Bucket notifications through Kafka: the object-store source's early wake-up.
//!
//! S3, OBS and COS can each send a message per new object (S3 event
//! notifications, OBS event notifications, COS event notifications), and
//! each cloud can bring those messages into a Kafka topic (a connector, a
//! function, or the cloud's own event bus). With
//! `[source.object_store.notifications]` set, a consumer reads that topic
//! and starts the next listing pass as soon as a message names a configured
//! bucket (or cannot be read: better a listing too many than an object
//! late), instead of waiting for `poll_interval`.
//!
//! The listing stays the source of truth: a message only says "look now".
//! Lost, duplicated or reordered notifications therefore change when an
//! object is read, never whether or how often; polling goes on at
//! `poll_interval` as the safety net. Offsets are committed automatically
//! (there is nothing to make exactly-once about a wake-up).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use rdkafka::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

use super::watch::WatchMessage;

/// `[source.object_store.notifications]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationSettings {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    /// librdkafka properties passed through as is (security.protocol, sasl.* …).
    pub properties: BTreeMap<String, String>,
}

/// The buckets a notification message names: S3's and OBS's
/// `Records[].s3.bucket.name` (OBS also under `obs`), COS's
/// `Records[].cos.cosBucket.name` (with its `-APPID`), and EventBridge-style
/// `detail.bucket.name`. `None` when the message is not one of those.
pub fn buckets_named(payload: &[u8]) -> Option<BTreeSet<String>> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    let text = |value: &Value, path: &[&str]| {
        path.iter()
            .try_fold(value, |value, name| value.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut names = BTreeSet::new();
    if let Some(records) = value.get("Records").and_then(Value::as_array) {
        for record in records {
            for path in [
                &["s3", "bucket", "name"][..],
                &["obs", "bucket", "name"],
                &["cos", "cosBucket", "name"],
            ] {
                if let Some(name) = text(record, path) {
                    names.insert(name);
                }
            }
        }
    }
    if let Some(name) = text(&value, &["detail", "bucket", "name"]) {
        names.insert(name);
    }
    (!names.is_empty()).then_some(names)
}

/// Whether a notification naming `named` is about one of `buckets`. COS
/// messages may name the bucket without its `-APPID` suffix.
fn concerns(named: &BTreeSet<String>, buckets: &[String]) -> bool {
    named.iter().any(|name| {
        buckets
            .iter()
            .any(|bucket| bucket == name || appid_of(bucket, name).is_some())
    })
}

/// `bucket` is `name-APPID` (COS's full bucket name): the APPID.
fn appid_of<'a>(bucket: &'a str, name: &str) -> Option<&'a str> {
    let appid = bucket.strip_prefix(name)?.strip_prefix('-')?;
    (!appid.is_empty() && appid.bytes().all(|byte| byte.is_ascii_digit())).then_some(appid)
}

/// Start the consumer on a thread of its own: it sends `Changed` on `wake`
/// (at most once a second) for each notification about one of `buckets`,
/// until `stop` is set. Configuration errors surface here.
pub fn start(
    settings: &NotificationSettings,
    buckets: Vec<String>,
    wake: Sender<WatchMessage>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, String> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", settings.brokers.as_str());
    for (name, value) in &settings.properties {
        config.set(name.as_str(), value.as_str());
    }
    config
        .set("group.id", settings.group_id.as_str())
        .set("enable.auto.commit", "true")
        // A new group looks at what is there: one listing, whatever it finds.
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = config
        .create()
        .map_err(|error| format!("bucket notifications: {error}"))?;
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|error| format!("bucket notifications: subscribing to {topics:?}: {error}"))?;
    tracing::info!(brokers = %settings.brokers, topics = ?settings.topics, group = %settings.group_id, "reading bucket notifications");
    std::thread::Builder::new()
        .name("tw-notices".into())
        .spawn(move || listen(consumer, buckets, wake, stop))
        .map_err(|error| format!("bucket notifications: {error}"))
}

fn listen(consumer: BaseConsumer, buckets: Vec<String>, wake: Sender<WatchMessage>, stop: Arc<AtomicBool>) {
    let mut due = false;
    let mut last_wake: Option<Instant> = None;
    let mut failing = false;
    while !stop.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => {
                failing = false;
                let payload = message.payload().unwrap_or_default();
                match buckets_named(payload) {
                    Some(named) if concerns(&named, &buckets) => {
                        tracing::debug!(buckets = ?named, "bucket notification");
                        due = true;
                    }
                    Some(named) => tracing::debug!(buckets = ?named, "a notification about another bucket"),
                    None => {
                        tracing::warn!(
                            topic = message.topic(),
                            partition = message.partition(),
                            offset = message.offset(),
                            "a bucket notification that is not S3, OBS or COS event JSON; listing all the same"
                        );
                        due = true;
                    }
                }
            }
            Some(Err(error)) => {
                if !failing {
                    tracing::warn!(%error, "bucket notifications: the broker is not answering; polling goes on");
                }
                failing = true;
            }
        }
        if due && last_wake.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            if wake.send(WatchMessage::Changed).is_err() {
                return;
            }
            due = false;
            last_wake = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_clouds_notifications_name_their_buckets() {
        let s3 = br#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"org-trails","arn":"arn:aws:s3:::org-trails"},"object":{"key":"AWSLogs/1/CloudTrail/x.json.gz","size":1024}}}]}"#;
        let obs = br#"{"Records":[{"eventVersion":"3.0","eventSource":"aws:s3","eventName":"ObjectCreated:Post","obs":{"bucket":{"name":"cts-traces"},"object":{"key":"CloudTraces/a.json.gz"}}}]}"#;
        let cos = br#"{"Records":[{"event":{"eventName":"cos:ObjectCreated:Put"},"cos":{"cosBucket":{"name":"cloudaudit","appid":"1250000000","region":"ap-guangzhou"},"cosObject":{"key":"/1250000000/cloudaudit/a.json.gz"}}}]}"#;
        let bridge = br#"{"detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"org-trails"},"object":{"key":"k"}}}"#;
        let one = |name: &str| Some(BTreeSet::from([name.to_string()]));
        assert_eq!(buckets_named(s3), one("org-trails"));
        assert_eq!(buckets_named(obs), one("cts-traces"));
        assert_eq!(buckets_named(cos), one("cloudaudit"));
        assert_eq!(buckets_named(bridge), one("org-trails"));
        assert_eq!(buckets_named(b"not json"), None);
        assert_eq!(buckets_named(br#"{"Records":[]}"#), None);
        let configured = vec!["org-trails".to_string(), "cloudaudit-1250000000".to_string()];
        assert!(concerns(&buckets_named(s3).unwrap(), &configured));
        assert!(concerns(&buckets_named(cos).unwrap(), &configured));
        assert!(!concerns(&buckets_named(obs).unwrap(), &configured));
        assert!(!concerns(&one("org").unwrap(), &configured));
    }
}
