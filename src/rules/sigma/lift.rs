//! Cross-cloud Sigma: a CloudTrail rule whose searches test only
//! `eventSource` and `eventName` is lifted to trailwarden operations, so it
//! also fires on the equivalent Tencent CloudAudit and Huawei CTS actions.
//!
//! Each search is tried against every AWS mapping of the operation catalog
//! (`iam.user.create` is `CreateUser` from `iam.amazonaws.com`): the
//! operations whose mapping the search accepts are the search, lifted. The
//! rule's condition, over the lifted searches, then holds for an event of
//! another cloud whose action the catalog classifies into them. Opt-in: the
//! tag `trailwarden.cross_cloud` on the rule, or its file under one of
//! `rules.sigma_cross_cloud_dirs`.

use chrono::DateTime;

use crate::event::model::{AuditEvent, CallMethod, Outcome, Principal, Provider, Raw, Resource, TimeSource};
use crate::rules::condition::{Cond, Test};
use crate::rules::operations::OperationCatalog;
use crate::rules::yaml::{Node, NodeValue};

/// The tag that lifts one rule.
pub const CROSS_CLOUD_TAG: &str = "trailwarden.cross_cloud";

/// The Sigma fields a search may test for the rule to be lifted.
pub const LIFTABLE_FIELDS: [&str; 2] = ["eventSource", "eventName"];

/// Whether a search tests only the liftable fields.
pub fn search_is_liftable(node: &Node) -> bool {
    let map_ok = |node: &Node| {
        node.as_map().is_some_and(|entries| {
            entries.iter().all(|(key, _)| {
                key.as_str()
                    .and_then(|key| key.split('|').next())
                    .is_some_and(|field| LIFTABLE_FIELDS.contains(&field))
            })
        })
    };
    match &node.value {
        NodeValue::Map(_) => map_ok(node),
        NodeValue::Seq(items) => !items.is_empty() && items.iter().all(map_ok),
        _ => false,
    }
}

/// The operations whose AWS mappings satisfy `search`, as a condition on
/// the event's operations.
pub fn lift_search(search: &Cond, catalog: &OperationCatalog) -> Cond {
    let mut selected = vec![false; catalog.len()];
    for (action, services, operation) in catalog.mappings(Provider::Aws) {
        // A mapping for any service names no event source to try.
        for service in services {
            if search.evaluate(&aws_call(service, action)) {
                selected[usize::from(operation)] = true;
            }
        }
    }
    Cond::Test {
        field: crate::rules::field::Field::Operation,
        test: Test::Operations(selected),
    }
}

/// A CloudTrail call of `action` on `service`, with nothing else in it.
fn aws_call(service: &str, action: &str) -> AuditEvent {
    let event_source = format!("{service}.amazonaws.com");
    AuditEvent {
        provider: Provider::Aws,
        event_id: String::new(),
        request_id: None,
        time: DateTime::UNIX_EPOCH,
        time_source: TimeSource::Event,
        account_id: None,
        account_name: None,
        principal: Principal::default(),
        access_key: None,
        source: None,
        platform_source: None,
        user_agent: None,
        service: service.to_string(),
        action: action.to_string(),
        operations: Vec::new(),
        region: None,
        call_method: CallMethod::Api,
        outcome: Outcome::default(),
        read_only: None,
        resource: Resource::default(),
        mfa: None,
        degraded: None,
        raw: Raw::from_value(serde_json::json!({"eventSource": event_source, "eventName": action})),
        origin: Default::default(),
    }
}
