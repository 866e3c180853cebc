//! Notifications: SMN-style topics with subscriptions (email, webhooks).
//!
//! When an alarm opens, escalates or changes status, the store calls the
//! `Router` inside the same transaction; it writes one outbox message per
//! matching topic and one delivery row per subscription (`outbox`). The
//! `worker` sends them — email through `email`, webhooks through `webhook`,
//! rendered by `render` — with backoff and jitter, folds what is over a
//! topic's rate limit into digests, and records every result. A mail server
//! or webhook outage delays alerts; it never loses them.

pub mod config;
pub mod email;
pub mod outbox;
pub mod render;
pub mod samples;
pub mod webhook;
pub mod worker;

use std::sync::Arc;

use crate::db::{Db, DbResult};
use serde_json::json;

pub use config::{NoticeKind, NotifySettings, SmtpSecurity, Subscription, Target, TopicSettings, WebhookFormat};

use crate::alarm::changes::{Change, Subject};
use crate::alarm::workflow::Transition;
use crate::rules::Level;

pub use crate::alarm::observer::AlarmFacts;
use crate::alarm::observer::AlarmObserver;

/// Topics compiled for matching alarms.
#[derive(Debug)]
pub struct Router {
    settings: Arc<NotifySettings>,
}

impl Router {
    /// A router for active settings (enabled, with topics); `None` otherwise.
    pub fn new(settings: Arc<NotifySettings>) -> Option<Arc<Router>> {
        settings.active().then(|| Arc::new(Router { settings }))
    }

    /// The router as the store's observer of alarm changes (`None` when
    /// notifications are off or no topic is configured).
    pub fn observer(settings: Arc<NotifySettings>) -> Option<Arc<dyn AlarmObserver>> {
        Router::new(settings).map(|router| router as Arc<dyn AlarmObserver>)
    }

    pub fn settings(&self) -> &Arc<NotifySettings> {
        &self.settings
    }

    fn matching<'a>(&'a self, facts: &'a AlarmFacts<'a>) -> impl Iterator<Item = &'a TopicSettings> + 'a {
        self.settings
            .topics
            .iter()
            .filter(move |topic| topic_matches(topic, facts))
    }

    /// A new alarm: queue it for every topic that wants new alarms.
    pub fn opened(&self, db: &mut dyn Db, facts: &AlarmFacts<'_>) -> DbResult<usize> {
        let mut queued = 0;
        for topic in self
            .matching(facts)
            .filter(|topic| topic.on_opened && !topic.on_operation)
        {
            outbox::enqueue(db, topic, Some(facts.alarm_id), NoticeKind::Opened, &json!({}))?;
            queued += 1;
        }
        Ok(queued)
    }

    /// New matches on an open alarm: queue an escalation where the level rose
    /// or the count crossed one of the topic's marks.
    pub fn updated(
        &self,
        db: &mut dyn Db,
        facts: &AlarmFacts<'_>,
        old_level: Option<Level>,
        old_count: u64,
        new_count: u64,
    ) -> DbResult<usize> {
        let mut queued = 0;
        for topic in self
            .matching(facts)
            .filter(|topic| topic.on_escalated && !topic.on_operation)
        {
            let reason = match old_level {
                Some(old) if facts.level > old => Some(format!("level raised from {old} to {}", facts.level)),
                _ => topic
                    .escalate_counts
                    .iter()
                    .rev()
                    .find(|mark| old_count < **mark && new_count >= **mark)
                    .map(|mark| format!("count reached {mark} (now {new_count})")),
            };
            if let Some(reason) = reason {
                outbox::enqueue(
                    db,
                    topic,
                    Some(facts.alarm_id),
                    NoticeKind::Escalated,
                    &json!({ "reason": reason }),
                )?;
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// An allowlist policy was added or removed: queue it for every topic
    /// that lists `policy` in `on` (whatever its alarm filters: a policy can
    /// silence any alarm). `detail` is the change (`notify::render::PolicyNotice`).
    pub fn policy_changed(&self, db: &mut dyn Db, detail: &serde_json::Value) -> DbResult<usize> {
        let mut queued = 0;
        for topic in self.settings.topics.iter().filter(|topic| topic.on_policy) {
            outbox::enqueue(db, topic, None, NoticeKind::Policy, &json!({ "policy": detail }))?;
            queued += 1;
        }
        Ok(queued)
    }

    /// Protected configuration changed: one message per operation (its
    /// change-log entries, at most `CONFIG_LISTED` listed) for every topic
    /// with `config` in `on`, whatever its alarm filters. A policy change
    /// goes to a topic that lists `policy` as a `policy` message instead.
    pub fn config_changed(&self, db: &mut dyn Db, changes: &[Change]) -> DbResult<usize> {
        let Some(first) = changes.first() else {
            return Ok(0);
        };
        let mut queued = 0;
        let only_policies = changes.iter().all(|change| change.subject == Subject::Policy);
        let detail = config_detail(changes, first);
        for topic in self
            .settings
            .topics
            .iter()
            .filter(|topic| topic.on_config && !(only_policies && topic.on_policy))
        {
            outbox::enqueue(db, topic, None, NoticeKind::Config, &detail)?;
            queued += 1;
        }
        Ok(queued)
    }

    /// Each match a batch added to an alarm, for topics that want every
    /// operation: one message each, rate limited and digested like others.
    pub fn operations(&self, db: &mut dyn Db, facts: &AlarmFacts<'_>, outputs: &[String]) -> DbResult<usize> {
        let mut queued = 0;
        for topic in self.matching(facts).filter(|topic| topic.on_operation) {
            for output in outputs {
                outbox::enqueue(
                    db,
                    topic,
                    Some(facts.alarm_id),
                    NoticeKind::Operation,
                    &json!({ "reason": output }),
                )?;
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// An operator changed the alarm's status.
    pub fn status_changed(&self, db: &mut dyn Db, facts: &AlarmFacts<'_>, transition: &Transition) -> DbResult<usize> {
        let mut queued = 0;
        for topic in self.matching(facts).filter(|topic| topic.on_status) {
            outbox::enqueue(
                db,
                topic,
                Some(facts.alarm_id),
                NoticeKind::Status,
                &json!({ "transition": transition }),
            )?;
            queued += 1;
        }
        Ok(queued)
    }
}

/// The store raises alarm changes through this trait; the router turns them
/// into outbox rows in the same transaction.
impl AlarmObserver for Router {
    fn opened(&self, db: &mut dyn Db, facts: &AlarmFacts<'_>) -> DbResult<usize> {
        Router::opened(self, db, facts)
    }

    fn updated(
        &self,
        db: &mut dyn Db,
        facts: &AlarmFacts<'_>,
        old_level: Option<Level>,
        old_count: u64,
        new_count: u64,
    ) -> DbResult<usize> {
        Router::updated(self, db, facts, old_level, old_count, new_count)
    }

    fn status_changed(&self, db: &mut dyn Db, facts: &AlarmFacts<'_>, transition: &Transition) -> DbResult<usize> {
        Router::status_changed(self, db, facts, transition)
    }

    fn policy_changed(&self, db: &mut dyn Db, detail: &serde_json::Value) -> DbResult<usize> {
        Router::policy_changed(self, db, detail)
    }

    fn config_changed(&self, db: &mut dyn Db, changes: &[Change]) -> DbResult<usize> {
        Router::config_changed(self, db, changes)
    }

    fn operations(&self, db: &mut dyn Db, facts: &AlarmFacts<'_>, outputs: &[String]) -> DbResult<usize> {
        Router::operations(self, db, facts, outputs)
    }
}

/// Whether an alarm passes a topic's filter (level, rules, tags, accounts).
pub fn topic_matches(topic: &TopicSettings, facts: &AlarmFacts<'_>) -> bool {
    if facts.level < topic.min_level {
        return false;
    }
    if !topic.rules.is_empty() && !topic.rules.iter().any(|rule| rule.eq_ignore_ascii_case(facts.rule_id)) {
        return false;
    }
    if !topic.tags.is_empty()
        && !topic
            .tags
            .iter()
            .any(|tag| facts.tags.iter().any(|have| have.eq_ignore_ascii_case(tag)))
    {
        return false;
    }
    if !topic.accounts.is_empty() {
        let wanted = |value: Option<&str>| value.is_some_and(|value| topic.accounts.iter().any(|a| a == value));
        if !wanted(facts.account_id) && !wanted(facts.account_name) {
            return false;
        }
    }
    true
}

/// An error with its chain of causes (transport errors keep the useful part
/// — "connection refused", "invalid peer certificate" — in their sources).
pub(crate) fn describe_error(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Errors of the notification side (setup, templates, `notify` commands).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notify: {0}")]
    Setup(String),
    #[error("notification template {name}: {message}")]
    Template { name: String, message: String },
    #[error("the store: {0}")]
    Store(#[from] rusqlite::Error),
}

impl From<crate::alarm::store::StoreError> for NotifyError {
    fn from(error: crate::alarm::store::StoreError) -> NotifyError {
        NotifyError::Setup(error.to_string())
    }
}

/// Change-log entries listed in one `config` message; the rest are counted.
const CONFIG_LISTED: usize = 20;

/// A `config` message's detail (`notify::render::ConfigNotice`).
fn config_detail(changes: &[Change], first: &Change) -> serde_json::Value {
    let subjects: std::collections::BTreeSet<&str> = changes.iter().map(|change| change.subject.as_str()).collect();
    let summary = if changes.len() == 1 {
        format!("{} {} by {}", first.subject.as_str(), first.action, first.actor)
    } else {
        format!(
            "{} changes ({}) by {}",
            changes.len(),
            subjects.into_iter().collect::<Vec<_>>().join(", "),
            first.actor
        )
    };
    json!(render::ConfigNotice {
        summary,
        actor: first.actor.clone(),
        via: first.via.clone(),
        at: first.at.clone(),
        changes: changes
            .iter()
            .take(CONFIG_LISTED)
            .map(|change| render::ConfigChange {
                change_id: change.id,
                subject: change.subject.as_str().to_string(),
                subject_id: change.subject_id,
                action: change.action.clone(),
                text: crate::mask::mask_recognisable_keys(&change.describe()),
            })
            .collect(),
        more: changes.len().saturating_sub(CONFIG_LISTED) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> TopicSettings {
        TopicSettings {
            name: "t".into(),
            min_level: Level::Medium,
            rules: vec![],
            tags: vec![],
            accounts: vec![],
            on_opened: true,
            on_escalated: true,
            on_status: false,
            on_policy: false,
            on_config: false,
            on_operation: false,
            escalate_counts: vec![10, 100],
            rate_limit: 0,
            rate_window: std::time::Duration::from_secs(60),
            digest_interval: std::time::Duration::from_secs(60),
            subscriptions: vec![],
        }
    }

    fn facts<'a>(level: Level, tags: &'a [String]) -> AlarmFacts<'a> {
        AlarmFacts {
            alarm_id: 1,
            rule_id: "root-key-used",
            level,
            tags,
            account_id: Some("1234"),
            account_name: Some("prod"),
        }
    }

    fn update(count: u64, level: Level) -> crate::alarm::store::AlarmUpdate {
        crate::alarm::store::AlarmUpdate {
            rule_id: "root-key-used".into(),
            rule_hash: "h".into(),
            level,
            title: "Root key used".into(),
            tags: vec!["sec09-03".into()],
            group_key: "access_key.id=AKIAEXAMPLE".into(),
            identity: crate::alarm::store::AlarmIdentity {
                provider: "aws".into(),
                account_id: Some("1234".into()),
                account_identity: "root".into(),
                principal_kind: "root".into(),
                ..Default::default()
            },
            first_seen: "2026-03-02T02:00:00.000Z".into(),
            last_seen: "2026-03-02T02:00:00.000Z".into(),
            count,
            escalate: Vec::new(),
            operations: Vec::new(),
            last_output: "x".into(),
            calls: vec![],
            samples: vec![],
        }
    }

    /// (kind, detail) of every queued message, oldest first.
    fn messages(store: &crate::alarm::store::Store) -> Vec<(String, String)> {
        store
            .connection()
            .unwrap()
            .prepare("SELECT kind, detail FROM notify_messages ORDER BY id")
            .and_then(|mut statement| {
                statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("messages")
    }

    #[test]
    fn the_store_queues_opened_escalated_and_status_messages_in_its_transactions() {
        let dir = tempfile::tempdir().expect("dir");
        let mut topic = topic();
        topic.on_status = true;
        topic.escalate_counts = vec![3, 10];
        topic.subscriptions = vec![
            Subscription {
                name: "a".into(),
                target: Target::Email {
                    to: vec!["soc@example.com".into()],
                },
            },
            Subscription {
                name: "b".into(),
                target: Target::Email {
                    to: vec!["oncall@example.com".into()],
                },
            },
        ];
        let settings = NotifySettings {
            topics: vec![topic],
            ..NotifySettings::default()
        };
        let options = crate::alarm::store::StoreOptions {
            notify: Router::observer(Arc::new(settings)),
            ..Default::default()
        };
        let mut store = crate::alarm::store::Store::open(&dir.path().join("s.db"), options).expect("store");
        let write = |store: &mut crate::alarm::store::Store, count, level| {
            store
                .write(&crate::alarm::store::WriteBatch {
                    alarms: vec![update(count, level)],
                    ..Default::default()
                })
                .expect("write");
        };
        write(&mut store, 1, Level::Medium);
        assert_eq!(messages(&store), vec![("opened".to_string(), "{}".to_string())]);
        // 1 → 2: no mark crossed; 2 → 5 crosses 3; 5 → 6 nothing; 6 → 40 crosses 10 (one message, the highest mark).
        write(&mut store, 1, Level::Medium);
        write(&mut store, 3, Level::Medium);
        write(&mut store, 1, Level::Medium);
        write(&mut store, 34, Level::Medium);
        let kinds = messages(&store);
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        assert_eq!(kinds[1].0, "escalated");
        assert!(kinds[1].1.contains("count reached 3 (now 5)"), "{kinds:?}");
        assert!(kinds[2].1.contains("count reached 10 (now 40)"), "{kinds:?}");
        // The rule's level is raised (an override, a reload): escalated again.
        write(&mut store, 1, Level::High);
        let kinds = messages(&store);
        assert_eq!(kinds.len(), 4);
        assert!(kinds[3].1.contains("level raised from medium to high"), "{kinds:?}");
        // A status change queues a status message with the transition.
        store
            .set_status(1, crate::alarm::workflow::Status::Processed, "alice", "done")
            .expect("status");
        let kinds = messages(&store);
        assert_eq!(kinds.len(), 5);
        assert_eq!(kinds[4].0, "status");
        assert!(kinds[4].1.contains("\"actor\":\"alice\""), "{kinds:?}");
        // Every message has one delivery per subscription, each with its own id.
        let (deliveries, distinct): (i64, i64) = store
            .connection()
            .unwrap()
            .query_row(
                "SELECT count(*), count(DISTINCT delivery_id) FROM notify_deliveries",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("count");
        assert_eq!((deliveries, distinct), (10, 10));
        // Below the topic's level nothing is queued.
        let mut low = update(1, Level::Low);
        low.group_key = "other".into();
        store
            .write(&crate::alarm::store::WriteBatch {
                alarms: vec![low],
                ..Default::default()
            })
            .expect("write");
        assert_eq!(messages(&store).len(), 5);
    }

    /// A rule's `escalate:` marks raise the alarm's level as its count grows:
    /// the stored level follows, and the rise is an escalation message.
    #[test]
    fn escalate_marks_raise_the_alarm_level_with_its_count() {
        let dir = tempfile::tempdir().expect("dir");
        let settings = NotifySettings {
            topics: vec![topic()],
            ..NotifySettings::default()
        };
        let options = crate::alarm::store::StoreOptions {
            notify: Router::observer(Arc::new(settings)),
            ..Default::default()
        };
        let mut store = crate::alarm::store::Store::open(&dir.path().join("s.db"), options).expect("store");
        let mut write = |count| {
            let mut low = update(count, Level::Low);
            low.escalate = vec![(5, Level::Medium), (20, Level::High)];
            store
                .write(&crate::alarm::store::WriteBatch {
                    alarms: vec![low],
                    ..Default::default()
                })
                .expect("write");
            let level: String = store
                .connection()
                .unwrap()
                .query_row("SELECT level FROM alarms WHERE id = 1", [], |row| row.get(0))
                .expect("level");
            (level, messages(&store))
        };
        let (level, queued) = write(1);
        assert_eq!(level, "low");
        assert!(queued.is_empty(), "a low alarm is below the topic: {queued:?}");
        let (level, _) = write(3);
        assert_eq!(level, "low", "4 matches are below the first mark");
        let (level, queued) = write(1);
        assert_eq!(level, "medium");
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert!(queued[0].1.contains("level raised from low to medium"), "{queued:?}");
        let (level, queued) = write(30);
        assert_eq!(level, "high");
        assert!(queued[1].1.contains("level raised from medium to high"), "{queued:?}");
    }

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let settings = NotifySettings {
            backoff_initial: std::time::Duration::from_secs(10),
            backoff_max: std::time::Duration::from_secs(600),
            ..NotifySettings::default()
        };
        for attempts in 1..12 {
            let delay = outbox::backoff_ms(&settings, attempts, "tw-x");
            let full = (10_000.0 * 2f64.powi(attempts as i32 - 1)).min(600_000.0) as i64;
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempts}: {delay} of {full}"
            );
        }
        let spread: std::collections::BTreeSet<i64> = (0..20)
            .map(|n| outbox::backoff_ms(&settings, 3, &format!("tw-{n}")))
            .collect();
        assert!(spread.len() > 10, "deliveries do not retry in step: {spread:?}");
    }

    #[test]
    fn level_rules_tags_and_accounts_filter() {
        let tags = vec!["sec09-03".to_string()];
        let mut topic = topic();
        assert!(topic_matches(&topic, &facts(Level::High, &tags)));
        assert!(!topic_matches(&topic, &facts(Level::Low, &tags)));
        topic.rules = vec!["other".into()];
        assert!(!topic_matches(&topic, &facts(Level::High, &tags)));
        topic.rules = vec!["ROOT-KEY-USED".into()];
        assert!(topic_matches(&topic, &facts(Level::High, &tags)));
        topic.tags = vec!["leak".into()];
        assert!(!topic_matches(&topic, &facts(Level::High, &tags)));
        topic.tags = vec!["SEC09-03".into()];
        assert!(topic_matches(&topic, &facts(Level::High, &tags)));
        topic.accounts = vec!["prod".into()];
        assert!(topic_matches(&topic, &facts(Level::High, &tags)));
        topic.accounts = vec!["5678".into()];
        assert!(!topic_matches(&topic, &facts(Level::High, &tags)));
    }
}
