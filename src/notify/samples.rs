//! Sample notices: what `notify test` sends, and what every template is
//! rendered against at start so a broken override is reported then.

use std::collections::BTreeMap;

use chrono::Utc;

use super::config::{NoticeKind, NotifySettings};
use super::render::*;
use crate::alarm::store::timestamp;

/// The sample alarm `notify test` sends (its key is fictitious and masked).
pub fn sample_notice(settings: &NotifySettings, topic: &str, delivery_id: String) -> Notice {
    let now = timestamp(Utc::now());
    Notice {
        schema: SCHEMA,
        delivery_id,
        kind: NoticeKind::Test.as_str(),
        topic: topic.to_string(),
        queued_at: now.clone(),
        sent_at: now.clone(),
        reason: None,
        transition: None,
        url: settings.public_url.as_ref().map(|base| format!("{base}/#/alarms")),
        alarm: Some(AlarmNotice {
            id: 0,
            rule: "root-access-key-used".into(),
            title: "Root account access key used (sample)".into(),
            level: "high".into(),
            status: "unprocessed".into(),
            provider: "huawei".into(),
            account_id: Some("0a1b2c3d4e5f".into()),
            account_name: Some("example-account".into()),
            account_identity: "root".into(),
            principal_kind: "root".into(),
            principal_name: Some("example-account".into()),
            access_key_id: Some(crate::mask::mask_access_key("HPUAEXAMPLEKEY000000")),
            access_key_remark: None,
            first_seen: now.clone(),
            last_seen: now.clone(),
            count: 1,
            output: "sample: root key called iam.CreateUser from 203.0.113.10".into(),
            description: Some("A sample alarm: nothing happened.".into()),
            rationale: None,
            advice: Some("Nothing to do: this is a sample.".into()),
            calls: vec![CallNotice {
                source_ip: "203.0.113.10".into(),
                ip_type: "outside".into(),
                ip_remark: None,
                asset: None,
                call_method: "api".into(),
                service: "iam".into(),
                action: "CreateUser".into(),
                success_count: 1,
                failure_count: 0,
                first_call: now.clone(),
                last_call: now,
            }],
            more_calls: 0,
        }),
        digest: None,
        policy: None,
        config: None,
    }
}

/// A policy-change sample, used to check the policy templates at start.
pub fn sample_policy(settings: &NotifySettings, topic: &str, delivery_id: String) -> Notice {
    let mut notice = sample_notice(settings, topic, delivery_id);
    notice.kind = NoticeKind::Policy.as_str();
    notice.alarm = None;
    notice.url = settings.public_url.as_ref().map(|base| format!("{base}/#/allowlist"));
    notice.policy = Some(PolicyNotice {
        action: "added".into(),
        id: 0,
        actor: "sample-admin".into(),
        via: "api".into(),
        at: notice.queued_at.clone(),
        summary: "api *".into(),
        matches: serde_json::json!({ "api": "*" }),
        reason: "sample: nothing happened".into(),
        expires_at: None,
        broad: Some("--api \"*\" matches every name".into()),
        approved_by: Some("sample-admin".into()),
        hit_count: 0,
        high_hits: 0,
    });
    notice
}

/// A configuration-change sample, used to check the config templates at start.
pub fn sample_config(settings: &NotifySettings, topic: &str, delivery_id: String) -> Notice {
    let mut notice = sample_notice(settings, topic, delivery_id);
    notice.kind = NoticeKind::Config.as_str();
    notice.alarm = None;
    notice.url = settings.public_url.as_ref().map(|base| format!("{base}/#/allowlist"));
    notice.config = Some(ConfigNotice {
        summary: "remark set by sample-admin".into(),
        actor: "sample-admin".into(),
        via: "api".into(),
        at: notice.queued_at.clone(),
        changes: vec![ConfigChange {
            change_id: 0,
            subject: "remark".into(),
            subject_id: 0,
            action: "set".into(),
            text: "remark on ip 203.0.113.7: sample".into(),
        }],
        more: 0,
    });
    notice
}

/// A digest-shaped sample, used to check digest templates at start.
pub(super) fn sample_digest(settings: &NotifySettings) -> Notice {
    let mut notice = sample_notice(settings, "sample", "tw-sample".into());
    notice.kind = NoticeKind::Digest.as_str();
    notice.alarm = None;
    notice.digest = Some(DigestNotice {
        messages: 2,
        alarms_total: 2,
        alarms: vec![],
        more: 2,
        by_level: BTreeMap::from([("high".to_string(), 2)]),
        from: notice.queued_at.clone(),
        until: notice.queued_at.clone(),
    });
    notice
}
