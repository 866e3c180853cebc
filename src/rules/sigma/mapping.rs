//! Which events a Sigma rule's `logsource` means, and where its field names
//! point: a processing pipeline in the manner of pySigma, built in for the
//! three clouds and extended in config (`[[rules.sigma_logsources]]`).
//!
//! A field the mapping does not name is a path into the original record
//! (`requestParameters.bucketName` reads `raw.requestParameters.bucketName`),
//! which is what Sigma's CloudTrail rules address. A mapped field reads the
//! normalized event instead where it holds the same thing: `eventName` is the
//! event's `action` on CloudTrail, which also lets the rule index skip a rule
//! whose event names an event does not have.

use crate::event::model::Provider;

/// One logsource: the `product` / `service` / `category` a rule names, the
/// cloud its events come from, and its field mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct SigmaLogsource {
    pub product: String,
    /// `None` matches a rule with any service, or none.
    pub service: Option<String>,
    pub category: Option<String>,
    pub provider: Provider,
    /// Sigma field name → trailwarden field (`action`, `raw.x.y`).
    pub fields: Vec<(String, String)>,
}

/// The built-in logsources: CloudTrail, CloudAudit and CTS.
pub fn builtin_logsources() -> Vec<SigmaLogsource> {
    let source = |product: &str, service: &str, provider, fields: &[(&str, &str)]| SigmaLogsource {
        product: product.into(),
        service: Some(service.into()),
        category: None,
        provider,
        fields: fields
            .iter()
            .map(|(from, to)| ((*from).to_string(), (*to).to_string()))
            .collect(),
    };
    vec![
        source("aws", "cloudtrail", Provider::Aws, &[("eventName", "action")]),
        source("tencentcloud", "cloudaudit", Provider::Tencent, &[]),
        source("huaweicloud", "cts", Provider::Huawei, &[]),
    ]
}

/// The built-ins, then the configured ones: a configured logsource naming
/// the same product, service and category as a built-in one replaces its
/// cloud and adds to (or overrides) its fields.
pub fn merged_logsources(configured: &[SigmaLogsource]) -> Vec<SigmaLogsource> {
    let mut all = builtin_logsources();
    for extra in configured {
        match all.iter_mut().find(|existing| {
            existing.product.eq_ignore_ascii_case(&extra.product)
                && same(&existing.service, &extra.service)
                && same(&existing.category, &extra.category)
        }) {
            Some(existing) => {
                existing.provider = extra.provider;
                for (from, to) in &extra.fields {
                    existing.fields.retain(|(name, _)| name != from);
                    existing.fields.push((from.clone(), to.clone()));
                }
            }
            None => all.push(extra.clone()),
        }
    }
    all
}

fn same(left: &Option<String>, right: &Option<String>) -> bool {
    match (left, right) {
        (Some(left), Some(right)) => left.eq_ignore_ascii_case(right),
        (None, None) => true,
        _ => false,
    }
}

/// The logsource a rule's `product` / `service` / `category` selects: the
/// product must match, and a service or category the logsource names must
/// match the rule's.
pub fn find_logsource<'a>(
    logsources: &'a [SigmaLogsource],
    product: Option<&str>,
    service: Option<&str>,
    category: Option<&str>,
) -> Option<&'a SigmaLogsource> {
    let product = product?;
    let fits = |wanted: &Option<String>, given: Option<&str>| match wanted {
        None => true,
        Some(wanted) => given.is_some_and(|given| given.eq_ignore_ascii_case(wanted)),
    };
    logsources.iter().find(|logsource| {
        logsource.product.eq_ignore_ascii_case(product)
            && fits(&logsource.service, service)
            && fits(&logsource.category, category)
    })
}

impl SigmaLogsource {
    /// The trailwarden field name a Sigma field name reads.
    pub fn field_name(&self, sigma_field: &str) -> String {
        match self.fields.iter().find(|(from, _)| from == sigma_field) {
            Some((_, to)) => to.clone(),
            None => format!("raw.{sigma_field}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudtrail_rules_read_the_record_and_event_name_is_the_action() {
        let all = builtin_logsources();
        let cloudtrail = find_logsource(&all, Some("aws"), Some("cloudtrail"), None).expect("built in");
        assert_eq!(cloudtrail.provider, Provider::Aws);
        assert_eq!(cloudtrail.field_name("eventName"), "action");
        assert_eq!(
            cloudtrail.field_name("requestParameters.bucketName"),
            "raw.requestParameters.bucketName"
        );
        assert!(find_logsource(&all, Some("windows"), Some("security"), None).is_none());
        assert!(find_logsource(&all, None, Some("cloudtrail"), None).is_none());
    }

    #[test]
    fn configured_fields_extend_a_builtin_logsource() {
        let merged = merged_logsources(&[SigmaLogsource {
            product: "AWS".into(),
            service: Some("CloudTrail".into()),
            category: None,
            provider: Provider::Aws,
            fields: vec![("userIdentity.arn".into(), "principal.arn".into())],
        }]);
        let cloudtrail = find_logsource(&merged, Some("aws"), Some("cloudtrail"), None).expect("built in");
        assert_eq!(cloudtrail.field_name("userIdentity.arn"), "principal.arn");
        assert_eq!(cloudtrail.field_name("eventName"), "action");
        assert_eq!(merged.len(), builtin_logsources().len());
    }
}
