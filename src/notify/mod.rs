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
pub mod webhook;
pub mod worker;

use std::sync::Arc;

use rusqlite::Connection;
use serde_json::json;

pub use config::{NoticeKind, NotifySettings, SmtpSecurity, Subscription, Target, TopicSettings, WebhookFormat};

use crate::alarm::workflow::Transition;
use crate::rules::Level;

/// What the router needs to know about an alarm.
#[derive(Clone, Copy, Debug)]
pub struct AlarmFacts<'a> {
    pub alarm_id: i64,
    pub rule_id: &'a str,
    pub level: Level,
    pub tags: &'a [String],
    pub account_id: Option<&'a str>,
    pub account_name: Option<&'a str>,
}

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
    pub fn opened(&self, connection: &Connection, facts: &AlarmFacts<'_>) -> rusqlite::Result<usize> {
        let mut queued = 0;
        for topic in self.matching(facts).filter(|topic| topic.on_opened) {
            outbox::enqueue(connection, topic, Some(facts.alarm_id), NoticeKind::Opened, &json!({}))?;
            queued += 1;
        }
        Ok(queued)
    }

    /// New matches on an open alarm: queue an escalation where the level rose
    /// or the count crossed one of the topic's marks.
    pub fn updated(
        &self,
        connection: &Connection,
        facts: &AlarmFacts<'_>,
        old_level: Option<Level>,
        old_count: u64,
        new_count: u64,
    ) -> rusqlite::Result<usize> {
        let mut queued = 0;
        for topic in self.matching(facts).filter(|topic| topic.on_escalated) {
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
                    connection,
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

    /// An operator changed the alarm's status.
    pub fn status_changed(
        &self,
        connection: &Connection,
        facts: &AlarmFacts<'_>,
        transition: &Transition,
    ) -> rusqlite::Result<usize> {
        let mut queued = 0;
        for topic in self.matching(facts).filter(|topic| topic.on_status) {
            outbox::enqueue(
                connection,
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
