use serde_json::json;

use super::*;
use crate::rules::diag::Diagnostics;
use crate::rules::testing::events_of;

fn settings() -> SigmaSettings {
    SigmaSettings {
        logsources: mapping::builtin_logsources(),
        placeholders: vec![("admins".into(), vec!["alice".into(), "bob".into()])],
        cross_cloud_dirs: Vec::new(),
    }
}

/// The shipped operation catalog.
fn catalog() -> OperationCatalog {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/operations.yaml");
    let text = std::fs::read_to_string(path).expect("the catalog");
    let mut diagnostics = Diagnostics::default();
    let catalog = crate::rules::operations::load_catalog(path, &text, &mut diagnostics);
    assert!(diagnostics.is_empty(), "{diagnostics}");
    catalog
}

/// Compile `text` as a Sigma rule: the rule, or the diagnostics as text.
fn compile(text: &str) -> Result<Rule, String> {
    compile_with(text, &OperationCatalog::default(), false)
}

fn compile_with(text: &str, catalog: &OperationCatalog, lift_dir: bool) -> Result<Rule, String> {
    let node = crate::rules::yaml::parse(text).map_err(|error| error.message)?;
    let mut diagnostics = Diagnostics::default();
    let mut ctx = FileCtx {
        file: Arc::from("rule.yml"),
        diagnostics: &mut diagnostics,
    };
    let rule = compile_sigma_rule(&mut ctx, &settings(), catalog, lift_dir, &node).map(|(rule, _)| rule);
    match rule {
        Some(rule) if diagnostics.is_empty() => Ok(rule),
        _ => Err(diagnostics.to_string()),
    }
}

fn rule(detection: &str) -> Rule {
    compile(&format!(
        "title: t\nid: 11111111-2222-3333-4444-555555555555\nlevel: high\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n{detection}"
    ))
    .unwrap_or_else(|error| panic!("{error}"))
}

fn cloudtrail(fields: serde_json::Value) -> serde_json::Value {
    let mut record = json!({
        "eventVersion": "1.08",
        "eventID": "e-1",
        "eventTime": "2026-03-02T10:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutBucketPolicy",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userIdentity": {"type": "IAMUser", "userName": "alice", "arn": "arn:aws:iam::123456789012:user/alice"},
        "recipientAccountId": "123456789012",
    });
    if let (Some(record), Some(fields)) = (record.as_object_mut(), fields.as_object()) {
        for (key, value) in fields {
            record.insert(key.clone(), value.clone());
        }
    }
    record
}

fn fires(rule: &Rule, record: serde_json::Value) -> bool {
    let events = events_of(&[record]).expect("the record normalizes");
    rule.condition.evaluate(&events[0])
}

#[test]
fn a_sigmahq_style_rule_becomes_a_rule_with_its_metadata() {
    let rule = compile(
        r#"title: AWS S3 Bucket Policy Changed
id: 6e61ee20-ce00-4f8d-8aee-bedd8216f7e3
status: test
description: A bucket policy was replaced.
references:
    - https://example.com/s3
author: someone
tags:
    - attack.defense-impairment
    - attack.t1562.008
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: s3.amazonaws.com
        eventName:
            - PutBucketPolicy
            - DeleteBucketPolicy
    condition: selection
falsepositives:
    - Administrators
level: critical
"#,
    )
    .unwrap();
    assert_eq!(rule.id, "6e61ee20-ce00-4f8d-8aee-bedd8216f7e3");
    assert_eq!(rule.level, Level::High);
    assert_eq!(rule.mitre, ["T1562.008"]);
    assert_eq!(rule.references, ["https://example.com/s3"]);
    assert_eq!(rule.false_positives.as_deref(), Some("Administrators"));
    assert_eq!(rule.clouds, [crate::event::model::Provider::Aws]);
    let sigma = rule.sigma.as_ref().expect("a Sigma rule");
    assert_eq!(sigma.status.as_deref(), Some("test"));
    assert_eq!(sigma.logsource, "aws/cloudtrail");
    // Plain event names are indexed by action.
    let mut actions = rule.condition.index_keys().expect("indexed").actions;
    actions.sort();
    assert_eq!(actions, ["deletebucketpolicy", "putbucketpolicy"]);
    assert!(fires(&rule, cloudtrail(json!({}))));
    assert!(fires(&rule, cloudtrail(json!({"eventName": "deletebucketpolicy"}))));
    assert!(!fires(&rule, cloudtrail(json!({"eventName": "GetBucketPolicy"}))));
    assert!(!fires(&rule, cloudtrail(json!({"eventSource": "iam.amazonaws.com"}))));
}

#[test]
fn conditions_combine_selections_and_filters() {
    let rule = rule(
        "  selection:\n    eventName: PutBucketPolicy\n  filter_main_admin:\n    userIdentity.userName: admin\n  filter_main_svc:\n    userIdentity.type: AWSService\n  condition: selection and not 1 of filter_main_*\n",
    );
    assert!(fires(&rule, cloudtrail(json!({}))));
    assert!(!fires(
        &rule,
        cloudtrail(json!({"userIdentity": {"type": "IAMUser", "userName": "ADMIN"}}))
    ));
    assert!(!fires(
        &rule,
        cloudtrail(json!({"userIdentity": {"type": "AWSService"}}))
    ));
}

#[test]
fn modifiers_match_as_sigma_defines_them() {
    let contains_all = rule(
        "  sel:\n    requestParameters.policy|contains|all:\n      - Allow\n      - '\"\\*\"'\n  condition: sel\n",
    );
    assert!(fires(
        &contains_all,
        cloudtrail(json!({"requestParameters": {"policy": "{\"Effect\":\"ALLOW\",\"Principal\":\"*\"}"}}))
    ));
    assert!(!fires(
        &contains_all,
        cloudtrail(json!({"requestParameters": {"policy": "{\"Effect\":\"Allow\"}"}}))
    ));
    let wildcard = rule("  sel:\n    userIdentity.arn: 'arn:aws:iam::*:user/al?ce'\n  condition: sel\n");
    assert!(fires(&wildcard, cloudtrail(json!({}))));
    let cased = rule("  sel:\n    userIdentity.userName|cased: Alice\n  condition: sel\n");
    assert!(!fires(&cased, cloudtrail(json!({}))));
    let regex = rule("  sel:\n    userIdentity.userName|re: '^a.+e$'\n  condition: sel\n");
    assert!(fires(&regex, cloudtrail(json!({}))));
    let regex_cased = rule("  sel:\n    userIdentity.userName|re: '^A'\n  condition: sel\n");
    assert!(!fires(&regex_cased, cloudtrail(json!({}))));
    let regex_i = rule("  sel:\n    userIdentity.userName|re|i: '^A'\n  condition: sel\n");
    assert!(fires(&regex_i, cloudtrail(json!({}))));
    let cidr = rule("  sel:\n    sourceIPAddress|cidr: 198.51.100.0/24\n  condition: sel\n");
    assert!(fires(&cidr, cloudtrail(json!({}))));
    assert!(!fires(&cidr, cloudtrail(json!({"sourceIPAddress": "203.0.113.9"}))));
    let exists = rule("  sel:\n    errorCode|exists: false\n  condition: sel\n");
    assert!(fires(&exists, cloudtrail(json!({}))));
    assert!(!fires(&exists, cloudtrail(json!({"errorCode": "AccessDenied"}))));
    let null = rule("  sel:\n    errorCode: null\n  condition: sel\n");
    assert!(fires(&null, cloudtrail(json!({}))));
    let greater = rule("  sel:\n    requestParameters.maxResults|gte: 1000\n  condition: sel\n");
    assert!(fires(
        &greater,
        cloudtrail(json!({"requestParameters": {"maxResults": 1000}}))
    ));
    assert!(!fires(
        &greater,
        cloudtrail(json!({"requestParameters": {"maxResults": 50}}))
    ));
    let fieldref = rule("  sel:\n    userIdentity.userName|fieldref: requestParameters.userName\n  condition: sel\n");
    assert!(fires(
        &fieldref,
        cloudtrail(json!({"requestParameters": {"userName": "Alice"}}))
    ));
    assert!(!fires(
        &fieldref,
        cloudtrail(json!({"requestParameters": {"userName": "bob"}}))
    ));
    let expand = rule("  sel:\n    userIdentity.arn|expand|endswith: 'user/%admins%'\n  condition: sel\n");
    assert!(fires(&expand, cloudtrail(json!({}))));
    let keywords = rule("  keywords:\n    - '*UnauthorizedOperation*'\n  condition: keywords\n");
    assert!(fires(
        &keywords,
        cloudtrail(json!({"errorCode": "Client.UnauthorizedOperation"}))
    ));
    assert!(!fires(&keywords, cloudtrail(json!({}))));
}

#[test]
fn record_keys_are_read_as_the_rule_spells_them() {
    // Native rules accept `eventname`; a Sigma engine reads `eventName` only.
    let rule = rule("  sel:\n    eventName: CreateIPSet\n  condition: sel\n");
    let mut record = cloudtrail(json!({}));
    if let Some(map) = record.as_object_mut() {
        map.remove("eventName");
        map.insert("eventname".into(), json!("CreateIPSet"));
    }
    assert!(!fires(&rule, record));
    assert!(fires(&rule, cloudtrail(json!({"eventName": "CreateIPSet"}))));
}

#[test]
fn what_cannot_be_honoured_is_refused_with_its_place() {
    let refused = |detection: &str| {
        compile(&format!(
            "title: t\nid: x\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n{detection}"
        ))
        .unwrap_err()
    };
    let error = refused("  sel:\n    eventName|sounds_like: x\n  condition: sel\n");
    assert!(
        error.contains("rule.yml:8:5") && error.contains("sounds_like"),
        "{error}"
    );
    let error = refused("  sel:\n    eventName: x\n  condition: sel | count() > 5\n");
    assert!(error.contains("correlation"), "{error}");
    let error = refused("  sel:\n    eventName: x\n  condition: sel and other\n");
    assert!(error.contains("`other`"), "{error}");
    let error = refused("  sel:\n    eventName|expand: '%nobody%'\n  condition: sel\n");
    assert!(error.contains("nobody"), "{error}");
    let error = compile(
        "title: t\nid: x\nlogsource:\n  product: windows\n  service: security\ndetection:\n  sel:\n    EventID: 4624\n  condition: sel\n",
    )
    .unwrap_err();
    assert!(error.contains("rule.yml:4:3") && error.contains("windows"), "{error}");
}

const CREATE_USER: &str = "title: IAM user created
id: 33333333-0000-0000-0000-000000000001
tags: [attack.persistence, attack.t1136.003, trailwarden.cross_cloud]
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventSource: iam.amazonaws.com
        eventName: CreateUser
    condition: selection
level: medium
";

fn tencent_add_user() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/records/tencent_api_add_user.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture")).expect("JSON")
}

fn fires_classified(rule: &Rule, catalog: &OperationCatalog, record: serde_json::Value) -> bool {
    let mut events = events_of(&[record]).expect("the record normalizes");
    catalog.classify_event(&mut events[0]);
    rule.condition.evaluate(&events[0])
}

#[test]
fn a_cloudtrail_rule_on_event_names_is_lifted_to_the_other_clouds_when_asked() {
    let catalog = catalog();
    let rule = compile_with(CREATE_USER, &catalog, false).unwrap();
    assert!(rule.sigma.as_ref().is_some_and(|sigma| sigma.cross_cloud));
    assert!(rule.clouds.len() > 1, "{:?}", rule.clouds);
    assert!(fires_classified(&rule, &catalog, tencent_add_user()));
    assert!(fires_classified(
        &rule,
        &catalog,
        cloudtrail(json!({"eventSource": "iam.amazonaws.com", "eventName": "CreateUser"}))
    ));
    let mut other = tencent_add_user();
    other["eventName"] = json!("DescribeInstances");
    other["eventSource"] = json!("cvm.tencentcloudapi.com");
    assert!(!fires_classified(&rule, &catalog, other));
    // Not asked: CloudTrail only.
    let plain = compile_with(&CREATE_USER.replace(", trailwarden.cross_cloud", ""), &catalog, false).unwrap();
    assert!(!fires_classified(&plain, &catalog, tencent_add_user()));
    // Asked by directory.
    let by_dir = compile_with(&CREATE_USER.replace(", trailwarden.cross_cloud", ""), &catalog, true).unwrap();
    assert!(fires_classified(&by_dir, &catalog, tencent_add_user()));
}

#[test]
fn a_rule_testing_other_fields_is_not_lifted_and_asking_says_why() {
    let catalog = catalog();
    let with_user_type = CREATE_USER.replace(
        "        eventName: CreateUser\n",
        "        eventName: CreateUser\n        userIdentity.type: Root\n",
    );
    let error = compile_with(&with_user_type, &catalog, false).unwrap_err();
    assert!(
        error.contains("eventSource") && error.contains("rule.yml:8:5"),
        "{error}"
    );
    let by_dir = compile_with(&with_user_type.replace(", trailwarden.cross_cloud", ""), &catalog, true).unwrap();
    assert!(!by_dir.sigma.as_ref().is_some_and(|sigma| sigma.cross_cloud));
}
