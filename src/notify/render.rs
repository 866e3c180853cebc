//! What a notification says: the `Notice` (built from the stored alarm,
//! access keys masked), the email templates (shipped defaults, overridable
//! from `notify.templates_dir`) and the text used by chat webhooks.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::Utc;
use serde::Serialize;

use super::NotifyError;
use super::config::{NoticeKind, NotifySettings};
use super::outbox::Due;
use super::samples::{sample_config, sample_digest, sample_notice, sample_policy};
use crate::alarm::assets::Directory;
use crate::alarm::store::{Store, timestamp};
use crate::alarm::view::{AlarmView, detail_view};
use crate::rules::RuleSet;

/// Version tag of the generic JSON payload.
pub const SCHEMA: &str = "trailwarden.notification.v1";
/// Call records listed per alarm; the rest are counted in `more_calls`.
const MAX_CALLS: usize = 10;
/// Alarms listed per digest; the rest are counted in `more`.
const MAX_DIGEST_ALARMS: usize = 50;

/// One notification, as the generic webhook receives it and the templates see it.
#[derive(Clone, Debug, Serialize)]
pub struct Notice {
    pub schema: &'static str,
    pub delivery_id: String,
    /// `opened`, `escalated`, `status`, `digest` or `test`.
    pub kind: &'static str,
    pub topic: String,
    /// When the alarm event happened (the message was queued).
    pub queued_at: String,
    pub sent_at: String,
    /// Why an alarm was escalated.
    pub reason: Option<String>,
    /// The status change (from_status, to_status, actor, reason, at).
    pub transition: Option<serde_json::Value>,
    /// The alarm in the console (digest: the alarm list), when `notify.public_url` is set.
    pub url: Option<String>,
    pub alarm: Option<AlarmNotice>,
    pub digest: Option<DigestNotice>,
    /// An allowlist policy change (kind `policy`).
    pub policy: Option<PolicyNotice>,
    /// Protected configuration changed (kind `config`).
    pub config: Option<ConfigNotice>,
}

/// Changes of protected configuration one operation made (policies,
/// remarks, assets, the rule set), from the change log, keys masked.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ConfigNotice {
    /// "remark set by alice", "3 changes (asset) by bob".
    pub summary: String,
    pub actor: String,
    pub via: String,
    pub at: String,
    pub changes: Vec<ConfigChange>,
    /// Changes not listed.
    pub more: u64,
}

/// One change-log entry of a `config` notification.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ConfigChange {
    pub change_id: i64,
    /// `policy`, `remark`, `asset` or `rules`.
    pub subject: String,
    pub subject_id: i64,
    pub action: String,
    /// In words: "remark on ip 203.0.113.7: VPN exit".
    pub text: String,
}

/// An allowlist policy added or removed: who did it, and what it allows
/// (access key masked).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct PolicyNotice {
    /// `added` or `removed`.
    pub action: String,
    pub id: i64,
    /// The API token's name or the command line's actor.
    pub actor: String,
    pub via: String,
    pub at: String,
    /// What it matches, in words (`key AKIDz8****LPx3gnPhESA, api cam.*`).
    pub summary: String,
    pub matches: serde_json::Value,
    pub reason: String,
    pub expires_at: Option<String>,
    /// Why it is broad, when an admin allowed a broad policy.
    pub broad: Option<String>,
    pub approved_by: Option<String>,
    pub hit_count: u64,
    /// Suppressed matches of high-level rules so far.
    pub high_hits: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlarmNotice {
    pub id: i64,
    pub rule: String,
    pub title: String,
    pub level: String,
    pub status: String,
    pub provider: String,
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    pub account_identity: String,
    pub principal_kind: String,
    pub principal_name: Option<String>,
    /// Masked (first 6 and last 11 characters kept for long keys).
    pub access_key_id: Option<String>,
    pub access_key_remark: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
    pub output: String,
    pub description: Option<String>,
    /// Why the rule matters (its `rationale`).
    pub rationale: Option<String>,
    /// What to do (the rule's `remediation`).
    pub advice: Option<String>,
    pub calls: Vec<CallNotice>,
    pub more_calls: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct CallNotice {
    pub source_ip: String,
    /// IP type label (within the account / LAN / outside, with or without remark).
    pub ip_type: String,
    pub ip_remark: Option<String>,
    pub asset: Option<String>,
    pub call_method: String,
    pub service: String,
    pub action: String,
    pub success_count: u64,
    pub failure_count: u64,
    pub first_call: String,
    pub last_call: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct DigestNotice {
    /// Notifications folded into this digest.
    pub messages: u64,
    pub alarms_total: usize,
    pub alarms: Vec<AlarmBrief>,
    pub more: usize,
    pub by_level: BTreeMap<String, u64>,
    pub from: String,
    pub until: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlarmBrief {
    pub id: i64,
    pub rule: String,
    pub title: String,
    pub level: String,
    pub status: String,
    pub account: Option<String>,
    pub access_key_id: Option<String>,
    pub count: u64,
    pub last_seen: String,
    pub url: Option<String>,
}

fn alarm_url(settings: &NotifySettings, id: i64) -> Option<String> {
    settings.public_url.as_ref().map(|base| format!("{base}/#/alarms/{id}"))
}

fn account_label(alarm: &AlarmView) -> Option<String> {
    let identity = &alarm.alarm.identity;
    match (&identity.account_name, &identity.account_id) {
        (Some(name), Some(id)) if name != id => Some(format!("{name} ({id})")),
        (Some(name), _) => Some(name.clone()),
        (None, Some(id)) => Some(id.clone()),
        (None, None) => None,
    }
}

/// Build the notice for a due delivery from the store (masked like the CLI;
/// `directory` classifies the call records' IPs).
pub fn load_notice(
    store: &Store,
    directory: &Directory,
    due: &Due,
    settings: &NotifySettings,
    rules: Option<&RuleSet>,
) -> Result<Notice, NotifyError> {
    let mut notice = Notice {
        schema: SCHEMA,
        delivery_id: due.delivery_id.clone(),
        kind: due.kind.as_str(),
        topic: due.topic.clone(),
        queued_at: due.created_at.clone(),
        sent_at: timestamp(Utc::now()),
        reason: due
            .detail
            .get("reason")
            .and_then(|reason| reason.as_str())
            .map(str::to_string),
        transition: due.detail.get("transition").cloned(),
        url: None,
        alarm: None,
        digest: None,
        policy: None,
        config: None,
    };
    if due.kind == NoticeKind::Policy {
        let policy = due
            .detail
            .get("policy")
            .cloned()
            .ok_or_else(|| NotifyError::Setup("policy notification without its policy".into()))?;
        notice.policy = Some(
            serde_json::from_value(policy)
                .map_err(|error| NotifyError::Setup(format!("policy notification: {error}")))?,
        );
        notice.url = settings.public_url.as_ref().map(|base| format!("{base}/#/allowlist"));
        return Ok(notice);
    }
    if due.kind == NoticeKind::Config {
        notice.config = Some(
            serde_json::from_value(due.detail.clone())
                .map_err(|error| NotifyError::Setup(format!("configuration notification: {error}")))?,
        );
        notice.url = settings.public_url.as_ref().map(|base| format!("{base}/#/allowlist"));
        return Ok(notice);
    }
    if let Some(id) = due.alarm_id {
        let detail = store
            .get_alarm(id)
            .map_err(|error| NotifyError::Setup(error.to_string()))?
            .ok_or_else(|| NotifyError::Setup(format!("alarm {id} is not in the store")))?;
        let view = detail_view(detail, directory);
        let rule = rules.and_then(|rules| rules.rules.iter().find(|rule| rule.id == view.alarm.alarm.rule));
        let total = view.calls.len();
        let calls = view
            .calls
            .into_iter()
            .take(MAX_CALLS)
            .map(|call| CallNotice {
                source_ip: call.call.source_ip,
                ip_type: call.ip.ip_type_label,
                ip_remark: call.ip.ip_remark,
                asset: call.ip.asset,
                call_method: call.call.call_method,
                service: call.call.service,
                action: call.call.action,
                success_count: call.call.success_count,
                failure_count: call.call.failure_count,
                first_call: call.call.first_call,
                last_call: call.call.last_call,
            })
            .collect();
        notice.url = alarm_url(settings, id);
        notice.alarm = Some(alarm_notice(
            view.alarm,
            rule.map(|rule| rule.description.clone()),
            rule.and_then(|rule| rule.rationale.clone()),
            rule.and_then(|rule| rule.remediation.clone()),
            calls,
            total.saturating_sub(MAX_CALLS),
        ));
    }
    if due.kind == NoticeKind::Digest {
        let ids: Vec<i64> = due
            .detail
            .get("alarms")
            .and_then(|alarms| alarms.as_array())
            .map(|alarms| alarms.iter().filter_map(serde_json::Value::as_i64).collect())
            .unwrap_or_default();
        let mut alarms = Vec::new();
        let mut by_level: BTreeMap<String, u64> = BTreeMap::new();
        for id in &ids {
            let Some(row) = store
                .get_alarm(*id)
                .map_err(|error| NotifyError::Setup(error.to_string()))?
            else {
                continue;
            };
            let view = crate::alarm::view::alarm_view(row.alarm, directory);
            *by_level.entry(view.alarm.level.clone()).or_default() += 1;
            if alarms.len() < MAX_DIGEST_ALARMS {
                alarms.push(AlarmBrief {
                    id: *id,
                    account: account_label(&view),
                    rule: view.alarm.rule,
                    title: view.alarm.title,
                    level: view.alarm.level,
                    status: view.alarm.status,
                    access_key_id: view.alarm.identity.access_key_id,
                    count: view.alarm.count,
                    last_seen: view.alarm.last_seen,
                    url: alarm_url(settings, *id),
                });
            }
        }
        let millis = |key: &str| {
            due.detail
                .get(key)
                .and_then(serde_json::Value::as_i64)
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(timestamp)
                .unwrap_or_default()
        };
        notice.url = settings.public_url.as_ref().map(|base| format!("{base}/#/alarms"));
        notice.digest = Some(DigestNotice {
            messages: due
                .detail
                .get("messages")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0),
            alarms_total: ids.len(),
            more: ids.len().saturating_sub(alarms.len()),
            alarms,
            by_level,
            from: millis("first_ms"),
            until: millis("last_ms"),
        });
    }
    Ok(notice)
}

fn alarm_notice(
    view: AlarmView,
    description: Option<String>,
    rationale: Option<String>,
    advice: Option<String>,
    calls: Vec<CallNotice>,
    more_calls: usize,
) -> AlarmNotice {
    let alarm = view.alarm;
    AlarmNotice {
        id: alarm.id,
        rule: alarm.rule,
        title: alarm.title,
        level: alarm.level,
        status: alarm.status,
        provider: alarm.identity.provider,
        account_id: alarm.identity.account_id,
        account_name: alarm.identity.account_name,
        account_identity: alarm.identity.account_identity,
        principal_kind: alarm.identity.principal_kind,
        principal_name: alarm.identity.principal_name,
        access_key_id: alarm.identity.access_key_id,
        access_key_remark: view.access_key_remark,
        first_seen: alarm.first_seen,
        last_seen: alarm.last_seen,
        count: alarm.count,
        output: alarm.output,
        description,
        rationale,
        advice,
        calls,
        more_calls,
    }
}

/// Every template, by the file name that overrides it in `templates_dir`.
pub const TEMPLATE_NAMES: [&str; 12] = [
    "email.subject",
    "email.txt",
    "email.html",
    "digest.subject",
    "digest.txt",
    "digest.html",
    "policy.subject",
    "policy.txt",
    "policy.html",
    "config.subject",
    "config.txt",
    "config.html",
];

fn default_template(name: &str) -> &'static str {
    match name {
        "email.subject" => include_str!("templates/email.subject"),
        "email.txt" => include_str!("templates/email.txt"),
        "email.html" => include_str!("templates/email.html"),
        "digest.subject" => include_str!("templates/digest.subject"),
        "digest.txt" => include_str!("templates/digest.txt"),
        "policy.subject" => include_str!("templates/policy.subject"),
        "policy.txt" => include_str!("templates/policy.txt"),
        "policy.html" => include_str!("templates/policy.html"),
        "config.subject" => include_str!("templates/config.subject"),
        "config.txt" => include_str!("templates/config.txt"),
        "config.html" => include_str!("templates/config.html"),
        _ => include_str!("templates/digest.html"),
    }
}

/// The email templates, compiled once and checked at start.
pub struct Templates {
    environment: minijinja::Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

/// A rendered email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Templates {
    /// The shipped templates, with any file of the same name in `dir` instead.
    /// Every template is compiled and rendered against a sample, so a broken
    /// override is reported at start with its file and line.
    pub fn load(settings: &NotifySettings) -> Result<Templates, NotifyError> {
        let mut overrides = Vec::new();
        for name in TEMPLATE_NAMES {
            if let Some(path) = settings.templates_dir.as_deref().map(|dir| dir.join(name))
                && path.is_file()
            {
                overrides.push((name, read_template(&path)?));
            }
        }
        Templates::with_overrides(settings, &overrides)
    }

    /// The shipped templates with `overrides` (name, source) in their place,
    /// each compiled and rendered against samples.
    pub fn with_overrides(settings: &NotifySettings, overrides: &[(&str, String)]) -> Result<Templates, NotifyError> {
        let mut environment = minijinja::Environment::new();
        environment.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
        for name in TEMPLATE_NAMES {
            let source = overrides
                .iter()
                .find(|(overridden, _)| *overridden == name)
                .map_or_else(|| default_template(name).to_string(), |(_, source)| source.clone());
            environment
                .add_template_owned(name.to_string(), source)
                .map_err(|error| template_error(settings, name, &error))?;
        }
        let templates = Templates { environment };
        templates.render(&sample_notice(settings, "sample", "tw-sample".into()), settings)?;
        templates.render(&sample_digest(settings), settings)?;
        templates.render(&sample_policy(settings, "sample", "tw-sample".into()), settings)?;
        templates.render(&sample_config(settings, "sample", "tw-sample".into()), settings)?;
        Ok(templates)
    }

    /// Render subject, text and HTML for a notice.
    pub fn render(&self, notice: &Notice, settings: &NotifySettings) -> Result<Email, NotifyError> {
        let prefix = if notice.digest.is_some() {
            "digest"
        } else if notice.policy.is_some() {
            "policy"
        } else if notice.config.is_some() {
            "config"
        } else {
            "email"
        };
        let render = |suffix: &str| -> Result<String, NotifyError> {
            let name = format!("{prefix}.{suffix}");
            self.environment
                .get_template(&name)
                .and_then(|template| template.render(minijinja::value::Serde(notice)))
                .map_err(|error| template_error(settings, &name, &error))
        };
        let subject = render("subject")?;
        let subject: String = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Email {
            subject,
            text: render("txt")?,
            html: render("html")?,
        })
    }
}

fn read_template(path: &Path) -> Result<String, NotifyError> {
    std::fs::read_to_string(path).map_err(|error| NotifyError::Template {
        name: path.display().to_string(),
        message: error.to_string(),
    })
}

fn template_error(settings: &NotifySettings, name: &str, error: &minijinja::Error) -> NotifyError {
    let file = match settings.templates_dir.as_deref().map(|dir| dir.join(name)) {
        Some(path) if path.is_file() => path.display().to_string(),
        _ => format!("{name} (built in)"),
    };
    let line = error.line().map(|line| format!(" line {line}:")).unwrap_or_default();
    NotifyError::Template {
        name: file,
        message: format!("{line} {error}").trim().to_string(),
    }
}

/// One-line title for chat messages.
pub fn title(notice: &Notice) -> String {
    if let Some(policy) = &notice.policy {
        return policy_title(policy);
    }
    if let Some(config) = &notice.config {
        return format!("Configuration change: {}", config.summary);
    }
    if let Some(digest) = &notice.digest {
        return format!(
            "[digest] {} alarm(s) over the rate limit of topic {}",
            digest.alarms_total, notice.topic
        );
    }
    let Some(alarm) = &notice.alarm else {
        return format!("trailwarden notification ({})", notice.kind);
    };
    let prefix = match notice.kind {
        "escalated" => "Escalated: ".to_string(),
        "status" => notice
            .transition
            .as_ref()
            .and_then(|transition| transition.get("to_status"))
            .and_then(serde_json::Value::as_str)
            .map(|status| format!("{}: ", capitalize(status)))
            .unwrap_or_default(),
        "test" => "Test: ".to_string(),
        _ => String::new(),
    };
    let account = alarm
        .account_name
        .as_deref()
        .or(alarm.account_id.as_deref())
        .unwrap_or("unknown account");
    format!("{prefix}[{}] {} — {account}", alarm.level.to_uppercase(), alarm.title)
}

fn policy_title(policy: &PolicyNotice) -> String {
    format!(
        "Allowlist policy {} {} by {}{}: {}",
        policy.id,
        policy.action,
        policy.actor,
        if policy.broad.is_some() { " (BROAD)" } else { "" },
        policy.summary
    )
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The body of chat messages, in Markdown (DingTalk, WeCom, Feishu) or
/// Slack's mrkdwn (`slack`: bold is `*x*`, links are `<url|text>`).
pub fn markdown(notice: &Notice, slack: bool) -> String {
    let bold = |text: &str| {
        if slack {
            format!("*{text}*")
        } else {
            format!("**{text}**")
        }
    };
    let link = |url: &str, text: &str| {
        if slack {
            format!("<{url}|{text}>")
        } else {
            format!("[{text}]({url})")
        }
    };
    let mut lines = Vec::new();
    if let Some(policy) = &notice.policy {
        lines.push(bold(&policy_title(policy)));
        lines.push(format!("{} {}", bold("Matches:"), policy.summary));
        lines.push(format!("{} {}", bold("Reason:"), policy.reason));
        lines.push(format!("{} {} at {}", bold("Through:"), policy.via, policy.at));
        if let Some(broad) = &policy.broad {
            lines.push(format!(
                "{} {broad} (allowed by {})",
                bold("Broad:"),
                policy.approved_by.as_deref().unwrap_or("-")
            ));
        }
        if let Some(expires) = &policy.expires_at {
            lines.push(format!("{} {expires}", bold("Expires:")));
        }
        if policy.action == "removed" {
            lines.push(format!(
                "It had suppressed {} match(es), {} of high-level rules.",
                policy.hit_count, policy.high_hits
            ));
        }
    } else if let Some(config) = &notice.config {
        lines.push(bold(&format!("Configuration change: {}", config.summary)));
        lines.push(format!(
            "{} {} ({}) at {}",
            bold("By:"),
            config.actor,
            config.via,
            config.at
        ));
        for change in &config.changes {
            lines.push(format!(
                "- {} #{} {}: {}",
                change.subject, change.subject_id, change.action, change.text
            ));
        }
        if config.more > 0 {
            lines.push(format!("… and {} more (`trailwarden changes`)", config.more));
        }
    } else if let Some(digest) = &notice.digest {
        lines.push(format!(
            "{} notification(s) about {} alarm(s) went over the rate limit of topic {} between {} and {}.",
            digest.messages, digest.alarms_total, notice.topic, digest.from, digest.until
        ));
        for alarm in &digest.alarms {
            let title = match &alarm.url {
                Some(url) => link(url, &alarm.title),
                None => alarm.title.clone(),
            };
            lines.push(format!(
                "- #{} [{}] {} · {} · key {} · x{}",
                alarm.id,
                alarm.level.to_uppercase(),
                title,
                alarm.account.as_deref().unwrap_or("-"),
                alarm.access_key_id.as_deref().unwrap_or("-"),
                alarm.count
            ));
        }
        if digest.more > 0 {
            lines.push(format!("- … and {} more", digest.more));
        }
    } else if let Some(alarm) = &notice.alarm {
        if notice.kind == "test" {
            lines.push("A test notification from `trailwarden notify test`; the alarm is a sample.".into());
        }
        if let Some(reason) = &notice.reason {
            let label = if notice.kind == "operation" {
                "Operation:"
            } else {
                "Escalated:"
            };
            lines.push(format!("{} {reason}", bold(label)));
        }
        if let Some(transition) = &notice.transition {
            let field = |key: &str| transition.get(key).and_then(serde_json::Value::as_str).unwrap_or("-");
            lines.push(format!(
                "{} {} → {} by {}: {}",
                bold("Status:"),
                field("from_status"),
                field("to_status"),
                field("actor"),
                field("reason")
            ));
        }
        lines.push(format!("{} {}", bold("Rule:"), alarm.rule));
        lines.push(format!(
            "{} {} ({}), {}",
            bold("Account:"),
            alarm.account_name.as_deref().unwrap_or("-"),
            alarm.account_id.as_deref().unwrap_or("-"),
            alarm.account_identity
        ));
        let remark = alarm
            .access_key_remark
            .as_deref()
            .map(|remark| format!(" ({remark})"))
            .unwrap_or_default();
        lines.push(format!(
            "{} {}{remark}",
            bold("Access key:"),
            alarm.access_key_id.as_deref().unwrap_or("-")
        ));
        lines.push(format!(
            "{} {} (first {}, last {})",
            bold("Matches:"),
            alarm.count,
            alarm.first_seen,
            alarm.last_seen
        ));
        lines.push(alarm.output.clone());
        if let Some(advice) = &alarm.advice {
            lines.push(format!("{} {advice}", bold("What to do:")));
        }
        for call in alarm.calls.iter().take(5) {
            lines.push(format!(
                "- {} ({}) {}.{} ok {} / failed {}",
                call.source_ip, call.ip_type, call.service, call.action, call.success_count, call.failure_count
            ));
        }
    }
    if let Some(url) = &notice.url {
        lines.push(link(url, "Open in trailwarden"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_templates_render_the_sample() {
        let settings = NotifySettings {
            public_url: Some("https://tw.example.com".into()),
            ..NotifySettings::default()
        };
        let templates = Templates::load(&settings).expect("templates");
        let email = templates
            .render(&sample_notice(&settings, "soc", "tw-1".into()), &settings)
            .expect("render");
        assert_eq!(
            email.subject,
            "Test: [HIGH] Root account access key used (sample) — example-account"
        );
        assert!(email.text.contains("https://tw.example.com/#/alarms"));
        assert!(
            email
                .html
                .contains("<strong style=\"font-size: 16px;\">Root account access key used (sample)</strong>")
        );
        assert!(!email.text.contains("HPUAEXAMPLEKEY000000"));
    }

    #[test]
    fn a_broken_override_is_named_with_its_line() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("email.txt"), "line one\n{{ alarm.title \n").expect("write");
        let settings = NotifySettings {
            templates_dir: Some(dir.path().to_path_buf()),
            ..NotifySettings::default()
        };
        let error = Templates::load(&settings).expect_err("broken template").to_string();
        assert!(error.contains("email.txt"), "{error}");
        assert!(error.contains("line 2"), "{error}");
    }

    #[test]
    fn html_escapes_what_the_alarm_carries() {
        let settings = NotifySettings::default();
        let templates = Templates::load(&settings).expect("templates");
        let mut notice = sample_notice(&settings, "soc", "tw-1".into());
        if let Some(alarm) = notice.alarm.as_mut() {
            alarm.output = "<script>alert(1)</script>".into();
        }
        let email = templates.render(&notice, &settings).expect("render");
        assert!(!email.html.contains("<script>"));
        assert!(email.html.contains("&lt;script&gt;"));
        assert!(email.text.contains("<script>"));
    }
}
