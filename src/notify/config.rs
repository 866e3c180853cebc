//! `[notify]` configuration: SMTP, topics with filters, subscriptions.
//!
//! The raw form mirrors the TOML (unknown keys are errors); `NotifySettings`
//! is validated: every address, URL, header, level and duration is checked
//! at start, and each error names the topic and subscription it came from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::rules::Level;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    enabled: Option<bool>,
    public_url: Option<String>,
    poll_interval: Option<String>,
    max_age: Option<String>,
    backoff_initial: Option<String>,
    backoff_max: Option<String>,
    timeout: Option<String>,
    drain_timeout: Option<String>,
    claim_lease: Option<String>,
    templates_dir: Option<String>,
    smtp: Option<RawSmtp>,
    #[serde(default)]
    topics: Vec<RawTopic>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    security: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    from: Option<String>,
    ca_file: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTopic {
    name: Option<String>,
    min_level: Option<String>,
    rules: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    accounts: Option<Vec<String>>,
    on: Option<Vec<String>>,
    escalate_counts: Option<Vec<u64>>,
    rate_limit: Option<u32>,
    rate_window: Option<String>,
    digest_interval: Option<String>,
    #[serde(default)]
    subscriptions: Vec<RawSubscription>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSubscription {
    name: Option<String>,
    email: Option<Vec<String>>,
    webhook: Option<String>,
    format: Option<String>,
    secret: Option<String>,
    secret_env: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    timeout: Option<String>,
}

/// `[notify]`, validated.
#[derive(Clone, Debug)]
pub struct NotifySettings {
    /// Off: no outbox rows are written and no worker runs.
    pub enabled: bool,
    /// The console's external URL; alarm links are `{public_url}/#/alarms/{id}`.
    pub public_url: Option<String>,
    pub poll_interval: Duration,
    /// A delivery still failing this long after it was queued is marked failed.
    pub max_age: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Default per-request timeout (SMTP conversation, webhook request).
    pub timeout: Duration,
    /// How long a stopping daemon keeps sending what is due.
    pub drain_timeout: Duration,
    /// On a PostgreSQL store, how long the daemon that claimed a delivery
    /// holds it: when it dies while sending, another daemon sends it again
    /// after this (same delivery id).
    pub claim_lease: Duration,
    /// Operator overrides of the email templates (`email.subject`, `email.txt`, `email.html`,
    /// `digest.subject`, `digest.txt`, `digest.html`).
    pub templates_dir: Option<PathBuf>,
    pub smtp: Option<SmtpSettings>,
    pub topics: Vec<TopicSettings>,
}

impl Default for NotifySettings {
    fn default() -> NotifySettings {
        NotifySettings {
            enabled: true,
            public_url: None,
            poll_interval: Duration::from_secs(1),
            max_age: Duration::from_secs(24 * 3600),
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(600),
            timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            claim_lease: Duration::from_secs(120),
            templates_dir: None,
            smtp: None,
            topics: Vec::new(),
        }
    }
}

impl NotifySettings {
    /// Whether alarms are routed anywhere.
    pub fn active(&self) -> bool {
        self.enabled && !self.topics.is_empty()
    }

    pub fn topic(&self, name: &str) -> Option<&TopicSettings> {
        self.topics.iter().find(|topic| topic.name == name)
    }
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required), usually port 587.
    StartTls,
    /// TLS from the first byte ("SMTPS"), usually port 465.
    Tls,
    /// No TLS: only for a relay on localhost or a trusted network.
    Plain,
}

#[derive(Clone, Debug)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    /// Extra trusted CA certificate (PEM) for a relay with a private CA.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// When a topic is sent an alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoticeKind {
    /// A new alarm.
    Opened,
    /// Its level was raised, or its count crossed one of `escalate_counts`.
    Escalated,
    /// An operator changed its status.
    Status,
    /// Alarms over the rate limit, folded into one message.
    Digest,
    /// `trailwarden notify test`.
    Test,
    /// An allowlist policy was added or removed (not about one alarm).
    Policy,
    /// One match of a rule (a key operation), when a topic wants each one.
    Operation,
    /// Protected configuration changed: allowlist policies, remarks, assets,
    /// the rule set (not about one alarm).
    Config,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Opened => "opened",
            NoticeKind::Escalated => "escalated",
            NoticeKind::Status => "status",
            NoticeKind::Digest => "digest",
            NoticeKind::Test => "test",
            NoticeKind::Policy => "policy",
            NoticeKind::Operation => "operation",
            NoticeKind::Config => "config",
        }
    }

    pub fn parse(text: &str) -> Option<NoticeKind> {
        match text {
            "opened" => Some(NoticeKind::Opened),
            "escalated" => Some(NoticeKind::Escalated),
            "status" => Some(NoticeKind::Status),
            "digest" => Some(NoticeKind::Digest),
            "test" => Some(NoticeKind::Test),
            "policy" => Some(NoticeKind::Policy),
            "operation" => Some(NoticeKind::Operation),
            "config" => Some(NoticeKind::Config),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct TopicSettings {
    pub name: String,
    pub min_level: Level,
    /// Rule ids (empty: every rule).
    pub rules: Vec<String>,
    /// Any of these rule tags (empty: no tag filter).
    pub tags: Vec<String>,
    /// Account ids or names (empty: every account).
    pub accounts: Vec<String>,
    pub on_opened: bool,
    pub on_escalated: bool,
    pub on_status: bool,
    /// Allowlist policy changes (sent whatever the topic's alarm filters say:
    /// a policy can silence any alarm).
    pub on_policy: bool,
    /// One message per match (per key operation) instead of per alarm: the
    /// alarm's `opened` and `escalated` messages are not sent to this topic.
    pub on_operation: bool,
    /// Every change of protected configuration (policies, remarks, assets,
    /// the rule set), whatever the topic's alarm filters say.
    pub on_config: bool,
    /// Counts whose crossing re-sends an alarm as escalated.
    pub escalate_counts: Vec<u64>,
    /// Alarm notifications per `rate_window` (0: unlimited); the rest go into digests.
    pub rate_limit: u32,
    pub rate_window: Duration,
    /// Least time between two digests of this topic.
    pub digest_interval: Duration,
    pub subscriptions: Vec<Subscription>,
}

#[derive(Clone, Debug)]
pub struct Subscription {
    pub name: String,
    pub target: Target,
}

impl Subscription {
    pub fn channel(&self) -> &'static str {
        match self.target {
            Target::Email { .. } => "email",
            Target::Webhook(_) => "webhook",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Target {
    Email { to: Vec<String> },
    Webhook(WebhookSettings),
}

/// The body a webhook receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    /// trailwarden's own JSON (documented in the README).
    Generic,
    Slack,
    DingTalk,
    WeCom,
    Feishu,
}

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Generic => "generic",
            WebhookFormat::Slack => "slack",
            WebhookFormat::DingTalk => "dingtalk",
            WebhookFormat::WeCom => "wecom",
            WebhookFormat::Feishu => "feishu",
        }
    }
}

#[derive(Clone)]
pub struct WebhookSettings {
    pub url: String,
    pub format: WebhookFormat,
    /// HMAC-SHA256 key for `X-Trailwarden-Signature` (and DingTalk / Feishu signing).
    pub secret: Option<String>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Webhook URLs of chat tools carry their access token: never log them whole.
        f.debug_struct("WebhookSettings")
            .field("url", &redact_url(&self.url))
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .field(
                "headers",
                &self.headers.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A URL without its query string (chat webhooks put their token there).
pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

type DurationParser<'a> = dyn Fn(&str, Option<String>, &str) -> Result<Duration, String> + 'a;

/// Validate `[notify]`.
pub fn validate(raw: RawNotify, duration: &DurationParser<'_>) -> Result<NotifySettings, String> {
    let public_url = raw
        .public_url
        .map(|url| url.trim().trim_end_matches('/').to_string())
        .filter(|url| !url.is_empty());
    // Normalized by the URL parser (quotes and spaces percent-encoded): the
    // HTML templates put it in attributes as is.
    let public_url = match public_url {
        Some(url) => match reqwest::Url::parse(&url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
                Some(parsed.to_string().trim_end_matches('/').to_string())
            }
            _ => {
                return Err(format!(
                    "`notify.public_url` = \"{url}\" is not an http(s) URL (e.g. https://trailwarden.example.com)"
                ));
            }
        },
        None => None,
    };
    let timeout = duration("notify.timeout", raw.timeout, "10s")?;
    let smtp = match raw.smtp {
        Some(smtp) => Some(smtp_settings(smtp, timeout, duration)?),
        None => None,
    };
    let mut settings = NotifySettings {
        enabled: raw.enabled.unwrap_or(true),
        public_url,
        poll_interval: duration("notify.poll_interval", raw.poll_interval, "1s")?,
        max_age: duration("notify.max_age", raw.max_age, "24h")?,
        backoff_initial: duration("notify.backoff_initial", raw.backoff_initial, "10s")?,
        backoff_max: duration("notify.backoff_max", raw.backoff_max, "10m")?,
        timeout,
        drain_timeout: duration("notify.drain_timeout", raw.drain_timeout, "10s")?,
        claim_lease: duration("notify.claim_lease", raw.claim_lease, "2m")?,
        templates_dir: raw
            .templates_dir
            .map(|dir| dir.trim().to_string())
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from),
        smtp,
        topics: Vec::new(),
    };
    if settings.poll_interval.is_zero() || settings.backoff_initial.is_zero() {
        return Err("`notify.poll_interval` and `notify.backoff_initial` must be more than 0".into());
    }
    if settings.claim_lease < settings.timeout {
        return Err(format!(
            "`notify.claim_lease` ({:?}) must be at least `notify.timeout` ({:?}): a delivery still being sent \
             would be claimed again",
            settings.claim_lease, settings.timeout
        ));
    }
    if settings.backoff_max < settings.backoff_initial {
        return Err("`notify.backoff_max` must be at least `notify.backoff_initial`".into());
    }
    if let Some(dir) = &settings.templates_dir
        && !dir.is_dir()
    {
        return Err(format!(
            "`notify.templates_dir` = \"{}\" is not a directory",
            dir.display()
        ));
    }
    for (index, topic) in raw.topics.into_iter().enumerate() {
        let topic = topic_settings(topic, index, &settings, duration)?;
        if settings.topic(&topic.name).is_some() {
            return Err(format!(
                "`notify.topics`: the topic name \"{}\" is used twice",
                topic.name
            ));
        }
        settings.topics.push(topic);
    }
    Ok(settings)
}

fn smtp_settings(raw: RawSmtp, timeout: Duration, duration: &DurationParser<'_>) -> Result<SmtpSettings, String> {
    let host = raw.host.unwrap_or_default().trim().to_string();
    if host.is_empty() {
        return Err("`notify.smtp.host` is required when `[notify.smtp]` is present".into());
    }
    let security = match raw.security.as_deref().unwrap_or("starttls") {
        "starttls" => SmtpSecurity::StartTls,
        "tls" => SmtpSecurity::Tls,
        "plain" => SmtpSecurity::Plain,
        other => {
            return Err(format!(
                "`notify.smtp.security` = \"{other}\" must be \"starttls\", \"tls\" or \"plain\""
            ));
        }
    };
    let port = raw.port.unwrap_or(match security {
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::Tls => 465,
        SmtpSecurity::Plain => 25,
    });
    let password = match (raw.password, raw.password_env) {
        (Some(_), Some(_)) => return Err("`notify.smtp`: set `password` or `password_env`, not both".into()),
        (Some(password), None) => Some(password),
        (None, Some(variable)) => Some(std::env::var(&variable).map_err(|_| {
            format!("`notify.smtp.password_env` names the environment variable {variable}, which is not set")
        })?),
        (None, None) => None,
    };
    let username = raw.username.filter(|name| !name.trim().is_empty());
    if password.is_some() && username.is_none() {
        return Err("`notify.smtp`: a password needs a `username`".into());
    }
    let from = raw.from.unwrap_or_else(|| "trailwarden <trailwarden@localhost>".into());
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(format!(
            "`notify.smtp.from` = \"{from}\" is not a mailbox (e.g. \"trailwarden <alerts@example.com>\")"
        ));
    }
    let ca_file = raw
        .ca_file
        .map(|file| file.trim().to_string())
        .filter(|file| !file.is_empty())
        .map(PathBuf::from);
    if let Some(file) = &ca_file
        && !file.is_file()
    {
        return Err(format!("`notify.smtp.ca_file` = \"{}\" is not a file", file.display()));
    }
    Ok(SmtpSettings {
        host,
        port,
        security,
        username,
        password,
        from,
        ca_file,
        timeout: match raw.timeout {
            Some(text) => duration("notify.smtp.timeout", Some(text), "10s")?,
            None => timeout,
        },
    })
}

fn topic_settings(
    raw: RawTopic,
    index: usize,
    settings: &NotifySettings,
    duration: &DurationParser<'_>,
) -> Result<TopicSettings, String> {
    let name = raw.name.unwrap_or_default().trim().to_string();
    if name.is_empty() {
        return Err(format!("`notify.topics[{index}]` needs a `name`"));
    }
    let key = |field: &str| format!("notify.topics[\"{name}\"].{field}");
    let min_level = match raw.min_level {
        Some(text) => Level::parse(&text).ok_or_else(|| {
            format!(
                "`{}` = \"{text}\" is not a level (info, low, medium, high)",
                key("min_level")
            )
        })?,
        None => Level::Medium,
    };
    let on = raw.on.unwrap_or_else(|| vec!["opened".into(), "escalated".into()]);
    let mut kinds = Vec::new();
    for item in &on {
        match NoticeKind::parse(item.trim()) {
            Some(
                kind @ (NoticeKind::Opened
                | NoticeKind::Escalated
                | NoticeKind::Status
                | NoticeKind::Policy
                | NoticeKind::Operation
                | NoticeKind::Config),
            ) => kinds.push(kind),
            _ => {
                return Err(format!(
                    "`{}` lists \"{item}\"; expected \"opened\", \"escalated\", \"status\", \"policy\", \"operation\" or \"config\"",
                    key("on")
                ));
            }
        }
    }
    let mut escalate_counts = raw.escalate_counts.unwrap_or_else(|| vec![10, 100, 1000]);
    escalate_counts.sort_unstable();
    escalate_counts.dedup();
    if escalate_counts.contains(&0) {
        return Err(format!("`{}` must be counts above 0", key("escalate_counts")));
    }
    let rate_window = duration(&key("rate_window"), raw.rate_window, "10m")?;
    let digest_interval = duration(&key("digest_interval"), raw.digest_interval, "10m")?;
    if rate_window.is_zero() || digest_interval.is_zero() {
        return Err(format!(
            "`{}` and `{}` must be more than 0",
            key("rate_window"),
            key("digest_interval")
        ));
    }
    let mut subscriptions: Vec<Subscription> = Vec::new();
    for (position, subscription) in raw.subscriptions.into_iter().enumerate() {
        let subscription = subscription_settings(subscription, &name, position, settings, duration)?;
        if subscriptions.iter().any(|other| other.name == subscription.name) {
            return Err(format!(
                "`{}`: the subscription name \"{}\" is used twice",
                key("subscriptions"),
                subscription.name
            ));
        }
        subscriptions.push(subscription);
    }
    if subscriptions.is_empty() {
        return Err(format!(
            "`notify.topics[\"{name}\"]` has no subscriptions; add [[notify.topics.subscriptions]] with an `email` or a `webhook`"
        ));
    }
    let trimmed = |values: Option<Vec<String>>| -> Vec<String> {
        values
            .unwrap_or_default()
            .into_iter()
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
            .collect()
    };
    Ok(TopicSettings {
        min_level,
        rules: trimmed(raw.rules),
        tags: trimmed(raw.tags),
        accounts: trimmed(raw.accounts),
        on_opened: kinds.contains(&NoticeKind::Opened),
        on_escalated: kinds.contains(&NoticeKind::Escalated),
        on_status: kinds.contains(&NoticeKind::Status),
        on_policy: kinds.contains(&NoticeKind::Policy),
        on_operation: kinds.contains(&NoticeKind::Operation),
        on_config: kinds.contains(&NoticeKind::Config),
        escalate_counts,
        rate_limit: raw.rate_limit.unwrap_or(0),
        rate_window,
        digest_interval,
        subscriptions,
        name,
    })
}

fn subscription_settings(
    raw: RawSubscription,
    topic: &str,
    position: usize,
    settings: &NotifySettings,
    duration: &DurationParser<'_>,
) -> Result<Subscription, String> {
    let name = raw.name.unwrap_or_default().trim().to_string();
    let place = if name.is_empty() {
        format!("notify.topics[\"{topic}\"].subscriptions[{position}]")
    } else {
        format!("notify.topics[\"{topic}\"].subscriptions[\"{name}\"]")
    };
    if name.is_empty() {
        return Err(format!("`{place}` needs a `name`"));
    }
    let target = match (raw.email, raw.webhook) {
        (Some(_), Some(_)) => return Err(format!("`{place}`: set `email` or `webhook`, not both")),
        (None, None) => return Err(format!("`{place}` needs an `email` list or a `webhook` URL")),
        (Some(addresses), None) => {
            if settings.smtp.is_none() {
                return Err(format!(
                    "`{place}` sends email, but there is no `[notify.smtp]` section"
                ));
            }
            if addresses.is_empty() {
                return Err(format!("`{place}.email` is empty"));
            }
            for address in &addresses {
                if address.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(format!(
                        "`{place}.email` lists \"{address}\", which is not an email address"
                    ));
                }
            }
            if raw.format.is_some() || raw.secret.is_some() || raw.secret_env.is_some() || !raw.headers.is_empty() {
                return Err(format!(
                    "`{place}`: `format`, `secret` and `headers` are for webhooks, not email"
                ));
            }
            Target::Email { to: addresses }
        }
        (None, Some(url)) => {
            let url = url.trim().to_string();
            match reqwest::Url::parse(&url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                _ => {
                    return Err(format!(
                        "`{place}.webhook` = \"{}\" is not an http(s) URL",
                        redact_url(&url)
                    ));
                }
            }
            let format = match raw.format.as_deref().unwrap_or("generic") {
                "generic" | "json" => WebhookFormat::Generic,
                "slack" => WebhookFormat::Slack,
                "dingtalk" => WebhookFormat::DingTalk,
                "wecom" => WebhookFormat::WeCom,
                "feishu" | "lark" => WebhookFormat::Feishu,
                other => {
                    return Err(format!(
                        "`{place}.format` = \"{other}\" must be generic, slack, dingtalk, wecom or feishu"
                    ));
                }
            };
            let secret = match (raw.secret, raw.secret_env) {
                (Some(_), Some(_)) => return Err(format!("`{place}`: set `secret` or `secret_env`, not both")),
                (Some(secret), None) => Some(secret),
                (None, Some(variable)) => Some(std::env::var(&variable).map_err(|_| {
                    format!("`{place}.secret_env` names the environment variable {variable}, which is not set")
                })?),
                (None, None) => None,
            }
            .filter(|secret| !secret.is_empty());
            let mut headers = Vec::new();
            for (header, value) in raw.headers {
                if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err()
                    || reqwest::header::HeaderValue::from_str(&value).is_err()
                {
                    return Err(format!("`{place}.headers` has an invalid header \"{header}\""));
                }
                headers.push((header, value));
            }
            let timeout = match raw.timeout {
                Some(text) => duration(&format!("{place}.timeout"), Some(text), "10s")?,
                None => settings.timeout,
            };
            Target::Webhook(WebhookSettings {
                url,
                format,
                secret,
                headers,
                timeout,
            })
        }
    };
    Ok(Subscription { name, target })
}
