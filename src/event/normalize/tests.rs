//! Unit tests of the normalizers on small inline records; the golden tests
//! over real-shaped fixture files are in `tests/normalize_golden.rs`.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::{NormalizeContext, normalize};
use crate::event::decode::Candidate;
use crate::event::model::{AuditEvent, IpKind, OutcomeResult, PrincipalKind, Provider};
use crate::event::origin::Origin;

fn context() -> NormalizeContext {
    NormalizeContext::new(Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap())
}

fn event(provider: Provider, record: Value) -> AuditEvent {
    let Value::Object(record) = record else {
        panic!("records are objects");
    };
    let candidate = Candidate {
        provider,
        record,
        origin: Origin::default(),
        envelope_time: None,
    };
    normalize(candidate, &context()).expect("normalizes")
}

fn tencent(identity: Value, extra: Value) -> AuditEvent {
    let mut record = json!({
        "eventName": "DescribeInstances",
        "eventSource": "cvm.tencentcloudapi.com",
        "eventTime": 1772379669,
        "eventType": "ConsoleCall",
        "sourceIPAddress": "203.0.113.9",
        "userIdentity": identity,
    });
    if let (Value::Object(record), Value::Object(extra)) = (&mut record, extra) {
        record.extend(extra);
    }
    event(Provider::Tencent, record)
}

fn cts(user: Value, extra: Value) -> AuditEvent {
    let mut record = json!({
        "trace_id": "5b1b1c7e-0000-4000-8000-000000000001",
        "trace_name": "createServer",
        "trace_rating": "normal",
        "trace_type": "ConsoleAction",
        "service_type": "ECS",
        "time": 1772379669000_i64,
        "user": user,
    });
    if let (Value::Object(record), Value::Object(extra)) = (&mut record, extra) {
        record.extend(extra);
    }
    event(Provider::Huawei, record)
}

#[test]
fn cts_login_protect_on_and_off_are_mfa() {
    let login = |status: &str| {
        cts(
            json!({"name": "ops", "id": "u1", "domain": {"name": "corp", "id": "d1"}}),
            json!({"trace_name": "login", "message": format!("{{\"login\":{{\"login_protect\":{{\"status\":\"{status}\"}}}}}}")}),
        )
        .mfa
    };
    assert_eq!(login("on"), Some(true));
    assert_eq!(login("off"), Some(false));
    assert_eq!(login("sometimes"), None, "an unknown status says nothing");
    // The session's own flag, where present, is the stronger statement.
    let both = cts(
        json!({"name": "ops", "session_context": {"attributes": {"mfa_authenticated": "true"}}}),
        json!({"message": {"login": {"login_protect": {"status": "off"}}}}),
    );
    assert_eq!(both.mfa, Some(true));
}

#[test]
fn cts_op_service_is_a_service_on_system_actions_only() {
    let domain = json!({"name": "corp", "id": "d1"});
    let system = cts(
        json!({"name": "corp/op_service", "id": "u1", "domain": domain}),
        json!({"trace_type": "SystemAction"}),
    );
    assert_eq!(system.principal.kind, PrincipalKind::Service);
    let alone = cts(
        json!({"name": "op_service", "domain": domain}),
        json!({"trace_type": "SystemAction"}),
    );
    assert_eq!(alone.principal.kind, PrincipalKind::Service);
    // A console call elevated for the account itself: the account made it.
    let console = cts(
        json!({"name": "corp/op_service", "id": "u1", "domain": domain}),
        json!({}),
    );
    assert_eq!(console.principal.kind, PrincipalKind::Root);
    assert_eq!(console.principal.name.as_deref(), Some("corp/op_service"));
    // … and for a sub-user, the sub-user did.
    let user = cts(
        json!({"name": "ops/op_service", "id": "u2", "domain": domain}),
        json!({}),
    );
    assert_eq!(user.principal.kind, PrincipalKind::User);
    // A user merely named like it is not the platform.
    let named = cts(
        json!({"name": "my_op_service", "domain": domain}),
        json!({"trace_type": "SystemAction"}),
    );
    assert_eq!(named.principal.kind, PrincipalKind::User);
}

#[test]
fn cts_failure_codes_come_from_the_response_never_from_the_rating() {
    let failed = |response: Value, code: Value| {
        cts(
            json!({"name": "ops"}),
            json!({"trace_rating": "warning", "response": response, "code": code}),
        )
        .outcome
    };
    let job = failed(
        json!("{\"status\":\"FAIL\",\"error_code\":\"Ecs.0013\",\"fail_reason\":\"insufficient quota\"}"),
        json!(200),
    );
    assert_eq!(job.result, OutcomeResult::Failure);
    assert_eq!(job.error_code.as_deref(), Some("Ecs.0013"));
    assert_eq!(job.error_message.as_deref(), Some("insufficient quota"));
    let api = failed(
        json!({"error_code": "IAM.0002", "error_msg": "not authorized"}),
        json!("403"),
    );
    assert_eq!(
        (api.error_code.as_deref(), api.error_message.as_deref()),
        (Some("IAM.0002"), Some("not authorized"))
    );
    let nested = failed(
        json!({"badRequest": {"code": 400, "message": "bad flavor"}}),
        json!(400),
    );
    assert_eq!(
        (nested.error_code.as_deref(), nested.error_message.as_deref()),
        (Some("400"), Some("bad flavor"))
    );
    // Nothing in the response: an HTTP error status is the best code there is …
    assert_eq!(failed(json!(""), json!(403)).error_code.as_deref(), Some("403"));
    // … a success status is none, and the rating is never one.
    assert_eq!(failed(json!(""), json!("200")).error_code, None);
    assert_eq!(failed(json!(""), json!(302)).error_code, None);
}

#[test]
fn tencent_explicit_type_wins_over_the_id_guess() {
    let same_ids = |identity_type: Option<&str>| {
        let mut identity = json!({"principalId": "100012345678", "accountId": "100012345678", "userName": "ops"});
        if let Some(identity_type) = identity_type {
            identity["type"] = json!(identity_type);
        }
        tencent(identity, json!({})).principal.kind
    };
    assert_eq!(same_ids(Some("CAMUser")), PrincipalKind::User);
    assert_eq!(same_ids(Some("Root")), PrincipalKind::Root);
    assert_eq!(same_ids(None), PrincipalKind::Root, "no type: the id guess stands");
    assert_eq!(
        same_ids(Some("SomethingNew")),
        PrincipalKind::Root,
        "unknown type: the guess"
    );
}

#[test]
fn tencent_session_keys_are_temporary() {
    let identity = |secret_id: &str, session: Value| json!({"type": "CAMUser", "principalId": "100023456789", "accountId": "100012345678", "secretId": secret_id, "sessionContext": session});
    let permanent = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE";
    let session_key = "AKIDL9BQZXfuR43v68wvLaWdwGOVHKYZ68H6B4RkDIf-UDDfehe0_2Fq6BSF0vMCXqeo";
    let temporary = |event: AuditEvent| event.access_key.expect("key").temporary;
    assert!(!temporary(tencent(identity(permanent, json!({"mfa": 0})), json!({}))));
    assert!(temporary(tencent(
        identity(permanent, json!({"token": "abc"})),
        json!({})
    )));
    assert!(temporary(tencent(
        identity(permanent, json!({})),
        json!({"requestParameters": "{\"Token\":\"abc\"}"})
    )));
    assert!(temporary(tencent(identity(session_key, json!({})), json!({}))));
    assert!(
        !temporary(tencent(identity(permanent, json!({"token": ""})), json!({}))),
        "an empty token is none"
    );
}

#[test]
fn tencent_platform_source_is_replaced_by_the_session_address_only_when_that_is_outside_it() {
    let call = |source: &str, user_ip: Option<&str>| {
        let mut session = json!({"mfa": 0});
        if let Some(user_ip) = user_ip {
            session["userIp"] = json!(user_ip);
        }
        let identity = json!({"type": "Root", "principalId": "1", "accountId": "1", "sessionContext": session});
        tencent(identity, json!({"sourceIPAddress": source}))
    };
    let relayed = call("11.149.2.7", Some("198.51.100.20"));
    assert_eq!(
        (relayed.source_ip_text(), relayed.source_ip_kind()),
        (Some("198.51.100.20"), IpKind::Public)
    );
    assert_eq!(
        relayed.platform_source.as_ref().map(|source| source.text.as_str()),
        Some("11.149.2.7")
    );
    // No other address: the platform one stays, marked so it is not "outside".
    let alone = call("30.1.2.3", None);
    assert_eq!(
        (alone.source_ip_text(), alone.source_ip_kind()),
        (Some("30.1.2.3"), IpKind::Platform)
    );
    assert!(alone.platform_source.is_none());
    let both_inside = call("9.1.1.1", Some("9.2.2.2"));
    assert_eq!(both_inside.source_ip_text(), Some("9.1.1.1"));
    let not_an_ip = call("9.1.1.1", Some("unknown"));
    assert_eq!(not_an_ip.source_ip_text(), Some("9.1.1.1"));
    // An ordinary source is never replaced, even when the session's differs.
    let ordinary = call("203.0.113.9", Some("198.51.100.20"));
    assert_eq!(
        (ordinary.source_ip_text(), ordinary.source_ip_kind()),
        (Some("203.0.113.9"), IpKind::Public)
    );
    assert!(ordinary.platform_source.is_none());
    // The range is Tencent's: the same address from AWS is just public.
    let aws = event(
        Provider::Aws,
        json!({"eventVersion": "1.11", "eventSource": "iam.amazonaws.com", "eventName": "ListUsers", "eventTime": "2026-03-01T00:00:00Z", "sourceIPAddress": "9.1.1.1"}),
    );
    assert_eq!(aws.source_ip_kind(), IpKind::Public);
}

#[test]
fn tencent_resource_names_are_split_on_pipes() {
    let event = tencent(
        json!({"type": "Root", "principalId": "1", "accountId": "1"}),
        json!({"resourceName": "volume/*|snapshot/snap-1| snapshot/snap-1 |*", "resources": "[\"qcs::cbs:ap-guangzhou:uin/1:volume/disk-1|disk-2\"]"}),
    );
    assert_eq!(
        event.resource.names,
        [
            "volume/*",
            "snapshot/snap-1",
            "qcs::cbs:ap-guangzhou:uin/1:volume/disk-1",
            "disk-2"
        ]
    );
}

#[test]
fn tencent_summary_items_are_degraded_and_say_why() {
    let item = |audit_event: Option<Value>| {
        let mut record = json!({
            "EventName": "DeleteUser",
            "EventTime": "1772379669",
            "Username": "ops",
            "AccountID": 100012345678_u64,
            "SecretId": "AKIDL9BQZXfuR43v68wvLaWdwGOVHKYZ68H6B4RkDIf-UDDfehe0_2Fq6BSF0vMCXqeo",
            "SourceIPAddress": "9.83.55.32",
            "EventRegion": "ap-guangzhou",
            "ErrorCode": 4001,
            "Resources": [{"ResourceType": "cam", "ResourceName": "user/a|user/b"}],
            "ResourceTypeCn": "访问管理",
        });
        if let Some(audit_event) = audit_event {
            record["CloudAuditEvent"] = audit_event;
        }
        event(Provider::Tencent, record)
    };
    let missing = item(None);
    assert!(missing.degraded.as_deref().unwrap().starts_with("no `CloudAuditEvent`"));
    let empty = item(Some(json!("")));
    assert!(
        empty
            .degraded
            .as_deref()
            .unwrap()
            .starts_with("`CloudAuditEvent` is empty")
    );
    let broken = item(Some(json!("{\"eventName\":")));
    assert!(
        broken.degraded.as_deref().unwrap().contains("not valid JSON (EOF"),
        "{:?}",
        broken.degraded
    );
    for event in [missing, empty, broken] {
        assert_eq!(event.resource.resource_type.as_deref(), Some("cam"));
        assert_eq!(event.resource.names, ["user/a", "user/b"]);
        assert_eq!(event.service, "cam");
        assert!(event.access_key.as_ref().unwrap().temporary, "68-character key");
        assert_eq!(event.source_ip_kind(), IpKind::Platform);
        assert_eq!(event.outcome.error_code.as_deref(), Some("4001"));
        assert_eq!(event.principal.kind, PrincipalKind::User);
    }
}
