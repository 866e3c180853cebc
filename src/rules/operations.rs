//! The cross-cloud operation catalog (`rules/operations.yaml`).
//!
//! Maps each cloud's (service, action) to operation ids such as
//! `iam.access_key.create`, so one rule covers three clouds. Names match
//! case-insensitively (Huawei `createSecurity-group-rule`, Tencent legacy
//! `ModifySecurityGroupPolicys` …); an action may map to several operations
//! (AWS `RunInstances` is both `compute.instance.create` and
//! `cost.instance.create`). Entries whose audit-log name is not confirmed by
//! the vendor carry `unverified: true` and still match.

use std::collections::HashMap;
use std::sync::Arc;

use super::condition::{CompileEnv, Cond};
use super::diag::{Diagnostics, FileCtx, Problem};
use super::yaml::{self, Node};
use crate::event::model::{AuditEvent, Provider};
use crate::text::with_ascii_lowercase;

/// Index of an operation in its catalog.
pub type OpIndex = u16;

/// One operation and where it is defined.
#[derive(Clone, Debug)]
pub struct OperationInfo {
    pub id: String,
    pub title: String,
    /// Which clouds have at least one mapping, and whether all of a cloud's
    /// mappings are unverified.
    pub coverage: Vec<(Provider, Coverage)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    Verified,
    Unverified,
}

#[derive(Clone, Debug)]
struct Mapping {
    /// Lower-case services, or empty for "any service of this cloud".
    services: Vec<String>,
    operation: OpIndex,
    /// A condition on the record (`when:`) for names that mean this
    /// operation only with certain request parameters (AWS
    /// `ModifyInstanceAttribute` is a user-data change only with `userData`).
    when: Option<Arc<Cond>>,
}

/// The loaded catalog.
#[derive(Clone, Debug, Default)]
pub struct OperationCatalog {
    operations: Vec<OperationInfo>,
    by_id: crate::text::FastMap<String, OpIndex>,
    /// provider → lower-case action → mappings.
    by_action: [crate::text::FastMap<String, Vec<Mapping>>; 3],
    /// Hash of the catalog's text: part of the rule set's version.
    pub digest: String,
}

impl crate::event::OperationNames for OperationCatalog {
    fn operation_name(&self, index: u16) -> &str {
        self.name(index)
    }
}

impl OperationCatalog {
    /// The actions (lower-case, every cloud) that classify as any operation
    /// `selected` holds (by index), and those whose `when:` reads a `raw.`
    /// path whatever they classify as: what the normalizers must copy the
    /// rules' `raw.` paths for (`event::raw_paths`).
    pub fn actions_reading_raw(&self, selected: &[bool]) -> Vec<String> {
        let mut actions = Vec::new();
        for table in &self.by_action {
            for (action, mappings) in table {
                let needed = mappings.iter().any(|mapping| {
                    selected.get(usize::from(mapping.operation)).copied().unwrap_or(false)
                        || mapping.when.as_ref().is_some_and(|when| when.reads_raw())
                });
                if needed {
                    actions.push(action.clone());
                }
            }
        }
        actions
    }

    pub fn len(&self) -> usize {
        self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    pub fn operations(&self) -> &[OperationInfo] {
        &self.operations
    }

    pub fn info(&self, index: OpIndex) -> Option<&OperationInfo> {
        self.operations.get(usize::from(index))
    }

    pub fn name(&self, index: OpIndex) -> &str {
        self.info(index).map_or("?", |info| info.id.as_str())
    }

    pub fn index_of(&self, id: &str) -> Option<OpIndex> {
        self.by_id.get(&id.to_ascii_lowercase()).copied()
    }

    /// The operations an event's (provider, service, action) maps to.
    /// Operations of (provider, service, action). Mappings with a `when:`
    /// condition need the event: without one they are left out.
    pub fn classify(&self, provider: Provider, service: &str, action: &str, out: &mut Vec<OpIndex>) {
        self.classify_with(provider, service, action, None, out);
    }

    fn classify_with(
        &self,
        provider: Provider,
        service: &str,
        action: &str,
        event: Option<&AuditEvent>,
        out: &mut Vec<OpIndex>,
    ) {
        out.clear();
        let table = &self.by_action[provider.slot()];
        let found = with_ascii_lowercase(action, |action| {
            table.get(action).map(|mappings| (mappings, action.len()))
        });
        let mappings = match found {
            Some((mappings, _)) => Some(mappings),
            // Lambda appends an API version: `UpdateFunctionCode20150331v2`.
            None if provider == Provider::Aws => crate::text::strip_api_version(action)
                .and_then(|base| with_ascii_lowercase(base, |base| table.get(base))),
            None => None,
        };
        let Some(mappings) = mappings else { return };
        for mapping in mappings {
            let service_matches = mapping.services.is_empty()
                || mapping
                    .services
                    .iter()
                    .any(|candidate| candidate.eq_ignore_ascii_case(service));
            let condition_holds = match (&mapping.when, event) {
                (None, _) => true,
                (Some(condition), Some(event)) => condition.evaluate(event),
                (Some(_), None) => false,
            };
            if service_matches && condition_holds && !out.contains(&mapping.operation) {
                out.push(mapping.operation);
            }
        }
    }

    /// Fill `event.operations`.
    pub fn classify_event(&self, event: &mut AuditEvent) {
        let mut operations = std::mem::take(&mut event.operations);
        self.classify_with(
            event.provider,
            &event.service,
            &event.action,
            Some(event),
            &mut operations,
        );
        event.operations = operations;
    }

    /// Every (lower-case action, services, operation) mapping of a cloud
    /// (services empty: any service of the cloud).
    pub fn mappings(&self, provider: Provider) -> impl Iterator<Item = (&str, &[String], OpIndex)> {
        self.by_action[provider.slot()].iter().flat_map(|(action, mappings)| {
            mappings
                .iter()
                .map(move |mapping| (action.as_str(), mapping.services.as_slice(), mapping.operation))
        })
    }

    /// Every id matching a `*` glob (`iam.access_key.*`), for rules that name
    /// families of operations.
    pub fn matching(&self, pattern: &str) -> Vec<OpIndex> {
        let pattern = pattern.to_ascii_lowercase();
        self.operations
            .iter()
            .enumerate()
            .filter(|(_, info)| glob_match(&pattern, &info.id))
            .filter_map(|(index, _)| OpIndex::try_from(index).ok())
            .collect()
    }
}

/// Minimal `*` glob for operation ids (which contain no other metacharacters).
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (index, part) in parts.iter().enumerate() {
        if index == 0 {
            let Some(after) = rest.strip_prefix(part) else {
                return false;
            };
            rest = after;
        } else if index == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(position) = rest.find(part) else {
                return false;
            };
            rest = &rest[position + part.len()..];
        }
    }
    true
}

/// Compile a mapping's `when:` condition. It may test any field but
/// `operation` (which it helps decide); lists and macros are not available.
fn compile_when(ctx: &mut FileCtx<'_>, node: &Node) -> Cond {
    let lists = HashMap::new();
    let macros = HashMap::new();
    let no_catalog = OperationCatalog::default();
    let mut env = CompileEnv {
        lists: &lists,
        macros: &macros,
        catalog: &no_catalog,
        default_timezone: chrono_tz::UTC,
        compiled_macros: HashMap::new(),
        used: Vec::new(),
    };
    env.compile(ctx, node)
}

/// Load the catalog from YAML text; every problem goes to `diagnostics`.
pub fn load_catalog(file: &str, text: &str, diagnostics: &mut Diagnostics) -> OperationCatalog {
    let mut ctx = FileCtx {
        file: Arc::from(file),
        diagnostics,
    };
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(error) => {
            ctx.error(error.loc, Problem::Syntax, error.message);
            return OperationCatalog::default();
        }
    };
    let mut catalog = OperationCatalog {
        digest: {
            use sha2::{Digest, Sha256};
            hex::encode(&Sha256::digest(text.as_bytes())[..8])
        },
        ..OperationCatalog::default()
    };
    let Some(mut top) = ctx.map(&root, "the operations file") else {
        return catalog;
    };
    if let Some(version) = top.required(&mut ctx, "version")
        && version.scalar_text().as_deref() != Some("1")
    {
        ctx.error(
            version.loc,
            Problem::BadValue,
            "unsupported operations file version (expected 1)",
        );
    }
    let operations = top.required(&mut ctx, "operations");
    top.finish(&mut ctx, &["version", "operations"]);
    let Some(operations) = operations else {
        return catalog;
    };
    let Some(items) = operations.as_seq() else {
        ctx.error(operations.loc, Problem::WrongType, "`operations` must be a list");
        return catalog;
    };
    for item in items {
        load_operation(&mut ctx, item, &mut catalog);
    }
    catalog
}

fn load_operation(ctx: &mut FileCtx<'_>, node: &Node, catalog: &mut OperationCatalog) {
    let Some(mut map) = ctx.map(node, "an operation") else {
        return;
    };
    let id = map
        .required(ctx, "id")
        .and_then(|node| ctx.text(node, "`id`").map(|id| (id, node.loc)));
    let title = map
        .required(ctx, "title")
        .and_then(|node| ctx.text(node, "`title`"))
        .unwrap_or_default();
    let clouds: Vec<(Provider, Option<&Node>)> = Provider::ALL
        .into_iter()
        .map(|provider| (provider, map.get(provider.as_str())))
        .collect();
    map.get("note");
    map.finish(ctx, &["id", "title", "huawei", "tencent", "aws", "note"]);
    let Some((id, id_loc)) = id else { return };
    let id = id.to_ascii_lowercase();
    if catalog.by_id.contains_key(&id) {
        ctx.error(id_loc, Problem::Duplicate, format!("operation `{id}` is defined twice"));
        return;
    }
    let Ok(index) = OpIndex::try_from(catalog.operations.len()) else {
        ctx.error(id_loc, Problem::BadValue, "too many operations (the limit is 65535)");
        return;
    };
    let mut coverage = Vec::new();
    for (provider, entries) in clouds {
        let Some(entries) = entries else { continue };
        let Some(entries) = entries.as_seq() else {
            ctx.error(
                entries.loc,
                Problem::WrongType,
                format!("`{provider}` must be a list of mappings"),
            );
            continue;
        };
        let mut any_verified = false;
        let mut any = false;
        for entry in entries {
            let Some(mut entry_map) = ctx.map(entry, "a mapping entry") else {
                continue;
            };
            let services = entry_map
                .required(ctx, "service")
                .map(|node| ctx.text_list(node, "`service`"))
                .unwrap_or_default();
            let actions = entry_map
                .required(ctx, "actions")
                .map(|node| ctx.text_list(node, "`actions`"))
                .unwrap_or_default();
            entry_map.required(ctx, "ref");
            let unverified = entry_map
                .get("unverified")
                .and_then(|node| ctx.boolean(node, "`unverified`"))
                .unwrap_or(false);
            entry_map.get("note");
            let when = entry_map.get("when").map(|node| Arc::new(compile_when(ctx, node)));
            entry_map.finish(ctx, &["service", "actions", "ref", "unverified", "note", "when"]);
            if actions.is_empty() {
                ctx.error(
                    entry.loc,
                    Problem::BadValue,
                    "a mapping entry needs at least one action",
                );
                continue;
            }
            let services: Vec<String> = services
                .into_iter()
                .map(|(service, _)| service.to_ascii_lowercase())
                .filter(|service| service != "*")
                .collect();
            any = true;
            any_verified |= !unverified;
            let table = &mut catalog.by_action[provider.slot()];
            for (action, _) in actions {
                table.entry(action.to_ascii_lowercase()).or_default().push(Mapping {
                    services: services.clone(),
                    operation: index,
                    when: when.clone(),
                });
            }
        }
        if any {
            coverage.push((
                provider,
                if any_verified {
                    Coverage::Verified
                } else {
                    Coverage::Unverified
                },
            ));
        }
    }
    catalog.by_id.insert(id.clone(), index);
    catalog.operations.push(OperationInfo { id, title, coverage });
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
version: 1
operations:
  - id: compute.instance.create
    title: Create instances
    aws:
      - {service: ec2, actions: [RunInstances], ref: A1}
    tencent:
      - {service: cvm, actions: [RunInstances], ref: T4}
  - id: cost.instance.create
    title: Costly instances
    aws:
      - {service: ec2, actions: [RunInstances], ref: A1}
  - id: compute.function.code_update
    title: Update function code
    aws:
      - {service: lambda, actions: [UpdateFunctionCode], ref: A1}
  - id: net.sg.rule_add
    title: Add SG rule
    huawei:
      - {service: [vpc, ecs], actions: [createSecurity-group-rule], ref: H8, unverified: true}
"#;

    fn catalog() -> OperationCatalog {
        let mut diagnostics = Diagnostics::default();
        let catalog = load_catalog("ops.yaml", SAMPLE, &mut diagnostics);
        assert!(diagnostics.is_empty(), "{diagnostics}");
        catalog
    }

    fn names(catalog: &OperationCatalog, provider: Provider, service: &str, action: &str) -> Vec<String> {
        let mut out = Vec::new();
        catalog.classify(provider, service, action, &mut out);
        out.into_iter().map(|index| catalog.name(index).to_string()).collect()
    }

    #[test]
    fn one_action_can_be_several_operations() {
        let catalog = catalog();
        assert_eq!(
            names(&catalog, Provider::Aws, "ec2", "RunInstances"),
            ["compute.instance.create", "cost.instance.create"]
        );
        assert_eq!(
            names(&catalog, Provider::Tencent, "cvm", "RunInstances"),
            ["compute.instance.create"]
        );
    }

    #[test]
    fn names_match_case_insensitively_and_by_service() {
        let catalog = catalog();
        assert_eq!(
            names(&catalog, Provider::Huawei, "vpc", "CREATESECURITY-GROUP-RULE"),
            ["net.sg.rule_add"]
        );
        assert!(names(&catalog, Provider::Huawei, "obs", "createSecurity-group-rule").is_empty());
        assert!(names(&catalog, Provider::Aws, "ec2", "createSecurity-group-rule").is_empty());
    }

    #[test]
    fn lambda_api_versions_are_stripped() {
        let catalog = catalog();
        assert_eq!(
            names(&catalog, Provider::Aws, "lambda", "UpdateFunctionCode20150331v2"),
            ["compute.function.code_update"]
        );
        assert_eq!(crate::text::strip_api_version("GetObject"), None);
    }

    #[test]
    fn when_conditions_decide_ambiguous_names() {
        let mut diagnostics = Diagnostics::default();
        let catalog = load_catalog(
            "ops.yaml",
            "version: 1\noperations:\n  - id: compute.instance.userdata_modify\n    title: U\n    aws:\n      - {service: ec2, actions: [ModifyInstanceAttribute], ref: A1, when: {raw.requestParameters.userData: {exists: true}}}\n",
            &mut diagnostics,
        );
        assert!(diagnostics.is_empty(), "{diagnostics}");
        let event = |parameters: serde_json::Value| {
            let record = serde_json::json!({"eventSource": "ec2.amazonaws.com", "eventName": "ModifyInstanceAttribute",
                "eventTime": "2026-03-02T03:00:00Z", "awsRegion": "us-east-1", "requestParameters": parameters});
            let serde_json::Value::Object(record) = record else {
                unreachable!()
            };
            let candidate = crate::event::decode::Candidate {
                provider: Provider::Aws,
                record,
                origin: Default::default(),
                envelope_time: None,
            };
            crate::event::normalize::normalize(
                candidate,
                &crate::event::normalize::NormalizeContext::new(chrono::Utc::now()),
            )
            .unwrap()
        };
        let mut with_user_data = event(serde_json::json!({"instanceId": "i-1", "userData": "<sensitive>"}));
        catalog.classify_event(&mut with_user_data);
        assert_eq!(with_user_data.operations.len(), 1);
        let mut termination = event(serde_json::json!({"instanceId": "i-1", "disableApiTermination": {"value": true}}));
        catalog.classify_event(&mut termination);
        assert!(termination.operations.is_empty());
    }

    #[test]
    fn globs_select_families() {
        let catalog = catalog();
        assert_eq!(catalog.matching("compute.*").len(), 2);
        assert_eq!(catalog.matching("*.create").len(), 2);
        assert_eq!(catalog.matching("net.sg.rule_add").len(), 1);
    }

    #[test]
    fn mistakes_are_reported_with_locations() {
        let mut diagnostics = Diagnostics::default();
        load_catalog(
            "ops.yaml",
            "version: 1\noperations:\n  - id: a.b\n    titel: x\n    aws:\n      - {service: s3, ref: A}\n",
            &mut diagnostics,
        );
        let text = diagnostics.to_string();
        assert!(text.contains("ops.yaml:4:5: unknown key `titel`"), "{text}");
        assert!(text.contains("did you mean `title`"), "{text}");
        assert!(text.contains("missing required key `actions`"), "{text}");
    }
}
