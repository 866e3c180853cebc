//! Allowlist policies: validation, breadth, matching, hits, sealing.
use super::*;
use crate::event::model::*;

fn event(key: &str, ip: &str, service: &str, action: &str) -> AuditEvent {
    AuditEvent {
        provider: Provider::Tencent,
        event_id: "e".into(),
        request_id: None,
        time: DateTime::<Utc>::default(),
        time_source: TimeSource::Event,
        account_id: None,
        account_name: None,
        principal: Principal::default(),
        access_key: Some(AccessKey {
            id: key.into(),
            temporary: false,
        }),
        source: Some(SourceAddress {
            text: ip.into(),
            ip: ip.parse().ok(),
            kind: IpKind::Public,
            asset: false,
        }),
        platform_source: None,
        user_agent: None,
        service: service.into(),
        action: action.into(),
        operations: vec![],
        region: None,
        call_method: CallMethod::Api,
        outcome: Outcome::default(),
        read_only: None,
        resource: Resource::default(),
        mfa: None,
        degraded: None,
        raw: Default::default(),
        origin: Default::default(),
    }
}

fn policy(id: i64, matches: PolicyMatch, expires_at: Option<&str>) -> Policy {
    Policy {
        id,
        matches,
        created_by: "ops".into(),
        via: "api".into(),
        reason: "known".into(),
        created_at: "2026-01-01T00:00:00.000Z".into(),
        expires_at: expires_at.map(str::to_string),
        broad: None,
        approved_by: None,
        hit_count: 0,
        last_hit: None,
        high_hits: 0,
        last_high_hit: None,
    }
}

#[test]
fn fields_combine_and_absent_fields_match_anything() {
    let catalog = OperationCatalog::default();
    let (allowlist, errors) = Allowlist::compile(&[
        policy(
            1,
            PolicyMatch {
                access_key: Some("AKIDone".into()),
                api: Some("cam.*".into()),
                ..Default::default()
            },
            None,
        ),
        policy(
            2,
            PolicyMatch {
                source_ip: Some("10.0.0.0/8".into()),
                call_method: Some("api".into()),
                rule_id: Some("r1".into()),
                ..Default::default()
            },
            None,
        ),
    ]);
    assert!(errors.is_empty());
    assert_eq!(allowlist.len(), 2);
    let now = 0;
    assert_eq!(
        allowlist.allowing("any", &event("AKIDone", "1.2.3.4", "cam", "AddUser"), &catalog, now),
        Some(1)
    );
    assert_eq!(
        allowlist.allowing(
            "any",
            &event("AKIDone", "1.2.3.4", "cvm", "RunInstances"),
            &catalog,
            now
        ),
        None
    );
    assert_eq!(
        allowlist.allowing("any", &event("AKIDtwo", "1.2.3.4", "cam", "AddUser"), &catalog, now),
        None
    );
    assert_eq!(
        allowlist.allowing("r1", &event("AKIDtwo", "10.9.8.7", "cvm", "X"), &catalog, now),
        Some(2)
    );
    assert_eq!(
        allowlist.allowing("r2", &event("AKIDtwo", "10.9.8.7", "cvm", "X"), &catalog, now),
        None
    );
    // Both match: the oldest policy counts.
    assert_eq!(
        allowlist.allowing("r1", &event("AKIDone", "10.0.0.1", "cam", "AddUser"), &catalog, now),
        Some(1)
    );
}

#[test]
fn expired_policies_do_not_match() {
    let catalog = OperationCatalog::default();
    let (allowlist, _) = Allowlist::compile(&[policy(
        1,
        PolicyMatch {
            access_key: Some("AKIDone".into()),
            ..Default::default()
        },
        Some("2026-01-01T00:00:00.000Z"),
    )]);
    let expiry = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .map(|time| time.timestamp_millis())
        .unwrap_or_default();
    let sample = event("AKIDone", "1.2.3.4", "cam", "AddUser");
    assert_eq!(allowlist.allowing("r", &sample, &catalog, expiry - 1), Some(1));
    assert_eq!(allowlist.allowing("r", &sample, &catalog, expiry), None);
}

#[test]
fn validation_refuses_empty_and_bad_policies() {
    let mut empty = NewPolicy {
        reason: "b".into(),
        ..Default::default()
    };
    assert!(matches!(validate(&mut empty), Err(AllowlistError::MatchesEverything)));
    let mut bad_ip = NewPolicy {
        matches: PolicyMatch {
            source_ip: Some("10.0.0".into()),
            ..Default::default()
        },
        reason: "b".into(),
        ..Default::default()
    };
    let error = validate(&mut bad_ip).map(|_| ()).unwrap_err().to_string();
    assert!(error.contains("--ip") && error.contains("10.0.0"), "{error}");
    let mut good = NewPolicy {
        matches: PolicyMatch {
            source_ip: Some(" 10.1.2.3/8 ".into()),
            call_method: Some("API".into()),
            ..Default::default()
        },
        reason: "b".into(),
        ..Default::default()
    };
    assert!(validate(&mut good).is_ok());
    assert_eq!(good.matches.source_ip.as_deref(), Some("10.0.0.0/8"));
    assert_eq!(good.matches.call_method.as_deref(), Some("api"));
    let mut bad_glob = NewPolicy {
        matches: PolicyMatch {
            api: Some("cam.[".into()),
            ..Default::default()
        },
        reason: "b".into(),
        ..Default::default()
    };
    assert!(validate(&mut bad_glob).is_err());
}

#[test]
fn expiry_formats() {
    let now = DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z")
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_default();
    let at = |text: &str| parse_expiry(text, now).map(timestamp).ok();
    assert_eq!(at("2026-04-01").as_deref(), Some("2026-04-01T00:00:00.000Z"));
    assert_eq!(at("2026-04-01 12:30:00").as_deref(), Some("2026-04-01T12:30:00.000Z"));
    assert_eq!(
        at("2026-04-01T12:30:00+08:00").as_deref(),
        Some("2026-04-01T04:30:00.000Z")
    );
    assert_eq!(at("7d").as_deref(), Some("2026-03-09T00:00:00.000Z"));
    assert!(parse_expiry("next week", now).is_err());
}

#[test]
fn hits_accumulate_per_policy() {
    let mut counter = HitCounter::default();
    counter.record(2, "2026-01-01T00:00:02.000Z", false);
    counter.record(1, "2026-01-01T00:00:01.000Z", true);
    counter.record(2, "2026-01-01T00:00:00.000Z", true);
    assert_eq!(counter.total(), 3);
    assert_eq!(counter.high(), 2);
    let hits = counter.drain();
    assert_eq!(
        hits,
        vec![
            PolicyHit {
                id: 1,
                count: 1,
                last_hit: "2026-01-01T00:00:01.000Z".into(),
                high: 1,
                last_high_hit: Some("2026-01-01T00:00:01.000Z".into()),
            },
            PolicyHit {
                id: 2,
                count: 2,
                last_hit: "2026-01-01T00:00:02.000Z".into(),
                high: 1,
                last_high_hit: Some("2026-01-01T00:00:00.000Z".into()),
            },
        ]
    );
    assert_eq!(counter.total(), 0);
}

fn broad(matches: PolicyMatch) -> Vec<String> {
    breadth(&matches)
}

#[test]
fn policies_that_match_everything_or_whole_address_spaces_are_broad() {
    for glob in ["*", "*.*", "**", "?*", "[!z]*"] {
        let reasons = broad(PolicyMatch {
            api: Some(glob.into()),
            ..Default::default()
        });
        assert!(
            reasons.iter().any(|reason| reason.contains("matches every name")),
            "{glob}: {reasons:?}"
        );
        let reasons = broad(PolicyMatch {
            operation: Some(glob.into()),
            rule_id: Some("root-key-used".into()),
            ..Default::default()
        });
        assert!(
            reasons.iter().any(|reason| reason.contains("matches every name")),
            "{glob}: {reasons:?}"
        );
    }
    for ip in ["0.0.0.0/0", "::/0"] {
        let reasons = broad(PolicyMatch {
            source_ip: Some(ip.into()),
            ..Default::default()
        });
        assert!(
            reasons.iter().any(|reason| reason.contains("whole address space")),
            "{ip}: {reasons:?}"
        );
    }
    for ip in ["0.0.0.0/1", "10.0.0.0/7", "2000::/3"] {
        assert!(
            !broad(PolicyMatch {
                source_ip: Some(ip.into()),
                ..Default::default()
            })
            .is_empty(),
            "{ip}"
        );
    }
    // Rule or call method alone: nothing narrows it.
    let reasons = broad(PolicyMatch {
        rule_id: Some("root-key-used".into()),
        call_method: Some("api".into()),
        ..Default::default()
    });
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("every match of rule root-key-used"), "{reasons:?}");
    // Narrow policies.
    for matches in [
        PolicyMatch {
            access_key: Some("AKIDx".into()),
            ..Default::default()
        },
        PolicyMatch {
            source_ip: Some("10.0.0.0/8".into()),
            ..Default::default()
        },
        PolicyMatch {
            source_ip: Some("2001:db8::/32".into()),
            rule_id: Some("r".into()),
            ..Default::default()
        },
        PolicyMatch {
            api: Some("*.Describe*".into()),
            ..Default::default()
        },
        PolicyMatch {
            operation: Some("iam.access_key.*".into()),
            ..Default::default()
        },
        PolicyMatch {
            error_code: Some("AccessDenied".into()),
            ..Default::default()
        },
    ] {
        assert_eq!(breadth(&matches), Vec::<String>::new(), "{matches:?}");
    }
}
