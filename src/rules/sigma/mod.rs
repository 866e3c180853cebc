//! Sigma rules (`[rules] sigma_dirs`), compiled into ordinary rules.
//!
//! A Sigma rule's detection becomes a `Cond` like a native rule's `match`:
//! its selections are `sigma::Item`s evaluated with Sigma's semantics
//! (`matcher.rs`), its `condition` (`expr.rs`) the `all` / `any` / `not`
//! around them, and its `logsource` (`mapping.rs`) both a `provider`
//! constraint and where its field names point. What comes out is a `Rule`
//! with the Sigma `id`, so its matches aggregate into alarms, are triaged,
//! notified and allowlisted like any other. A selection on CloudTrail's
//! `eventName` with plain names reads the event's action, so the rule index
//! skips the rule for every other action.
//!
//! Whatever the engine cannot honour (an unknown modifier, an aggregation,
//! a correlation rule, a logsource without a mapping) is refused with the
//! file, line and column, never dropped silently.

pub mod correlation;
pub mod expr;
pub mod lift;
pub mod load;
pub mod mapping;
pub mod matcher;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::condition::{Cond, Test};
use super::diag::{FileCtx, Problem};
use super::field::Field;
use super::operations::OperationCatalog;
use super::template::{DEFAULT_OUTPUT, Template};
use super::yaml::{Loc, Node, NodeValue};
use super::{Level, Rule};
use crate::event::model::Provider;
use crate::text::CaseInsensitiveSet;
use expr::Expr;
use mapping::SigmaLogsource;
use matcher::{Item, Matcher, Modifiers, Scalar, StrOp};

/// What a Sigma rule carries beyond a native rule's fields.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SigmaInfo {
    /// `stable`, `test`, `experimental`, `deprecated`, `unsupported`.
    pub status: Option<String>,
    /// `product/service` (or `/category`) of the rule's logsource.
    pub logsource: String,
    pub author: Option<String>,
    /// The rule's `name`, by which correlations may refer to it.
    pub name: Option<String>,
    /// For a correlation rule: its type (`event_count` …).
    pub correlation: Option<String>,
    /// Lifted to operations: it also fires on Tencent and Huawei actions.
    pub cross_cloud: bool,
}

/// What a Sigma compile needs from the settings.
#[derive(Clone, Debug, Default)]
pub struct SigmaSettings {
    pub logsources: Vec<SigmaLogsource>,
    /// `|expand` placeholders: name → values.
    pub placeholders: Vec<(String, Vec<String>)>,
    /// Directories whose CloudTrail rules are lifted to every cloud (`lift.rs`).
    pub cross_cloud_dirs: Vec<std::path::PathBuf>,
}

/// A Sigma rule's descriptive fields, shared by detection and correlation rules.
pub(super) struct Metadata {
    pub id: String,
    pub name: Option<String>,
    pub title: String,
    pub level: Level,
    pub description: String,
    pub tags: Vec<String>,
    pub mitre: Vec<String>,
    pub references: Vec<String>,
    pub false_positives: Vec<String>,
    pub status: Option<String>,
    pub author: Option<String>,
}

/// The value under `key` of a mapping node.
pub(super) fn get<'n>(entries: &'n [(Node, Node)], key: &str) -> Option<&'n Node> {
    entries
        .iter()
        .find(|(name, _)| name.as_str() == Some(key))
        .map(|(_, value)| value)
}

/// Read the descriptive fields (`id` is required: alarms are keyed by it).
pub(super) fn metadata(ctx: &mut FileCtx<'_>, node: &Node, entries: &[(Node, Node)]) -> Option<Metadata> {
    let text =
        |ctx: &mut FileCtx<'_>, key: &str| get(entries, key).and_then(|value| ctx.text(value, &format!("`{key}`")));
    let Some(id_node) = get(entries, "id") else {
        ctx.error(
            node.loc,
            Problem::MissingKey,
            "a Sigma rule needs an `id` (alarms are keyed by it)",
        );
        return None;
    };
    let id = ctx.text(id_node, "`id`")?;
    let title = text(ctx, "title").unwrap_or_else(|| id.clone());
    let level = match get(entries, "level") {
        None => Level::Medium,
        Some(value) => {
            let level_text = ctx.text(value, "`level`")?;
            match level_text.to_ascii_lowercase().as_str() {
                "informational" => Level::Info,
                "low" => Level::Low,
                "medium" => Level::Medium,
                "high" | "critical" => Level::High,
                _ => {
                    ctx.error(
                        value.loc,
                        Problem::BadValue,
                        format!("level `{level_text}` is not one of informational, low, medium, high, critical"),
                    );
                    return None;
                }
            }
        }
    };
    let list = |ctx: &mut FileCtx<'_>, key: &str| -> Vec<String> {
        match get(entries, key) {
            None => Vec::new(),
            Some(value) if value.as_seq().is_some() => ctx
                .text_list(value, &format!("`{key}`"))
                .into_iter()
                .map(|(item, _)| item)
                .collect(),
            Some(value) => ctx.text(value, &format!("`{key}`")).into_iter().collect(),
        }
    };
    let tags = list(ctx, "tags");
    let mitre = tags
        .iter()
        .filter_map(|tag| tag.strip_prefix("attack.t"))
        .filter(|technique| {
            technique
                .split('.')
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|technique| format!("T{technique}"))
        .collect();
    Some(Metadata {
        name: text(ctx, "name"),
        description: text(ctx, "description").unwrap_or_else(|| title.clone()),
        references: list(ctx, "references"),
        false_positives: list(ctx, "falsepositives"),
        status: text(ctx, "status"),
        author: text(ctx, "author"),
        id,
        title,
        level,
        tags,
        mitre,
    })
}

impl Metadata {
    /// The rule these fields describe, with its condition and state.
    pub(super) fn into_rule(self, ctx: &mut FileCtx<'_>, node: &Node, sigma: SigmaInfo, built: Built) -> Rule {
        Rule {
            id: self.id,
            title: self.title,
            level: self.level,
            description: self.description,
            rationale: None,
            remediation: None,
            false_positives: (!self.false_positives.is_empty()).then(|| self.false_positives.join("; ")),
            mitre: self.mitre,
            tags: self.tags,
            references: self.references,
            sigma: Some(sigma),
            enabled: true,
            condition: built.condition,
            state: built.state,
            exceptions: Vec::new(),
            tests: built.tests,
            group_by: built.group_by,
            escalate: Vec::new(),
            output: Template::compile(ctx, DEFAULT_OUTPUT, node.loc),
            clouds: built.clouds,
            file: ctx.file.clone(),
            loc: node.loc,
            hash: built.hash,
        }
    }
}

/// What a rule kind compiles to.
pub(super) struct Built {
    /// Embedded tests (trailwarden's `tests:` attribute, as in native rules).
    pub tests: Vec<super::testing::RuleTest>,
    pub condition: Cond,
    pub state: Option<super::stateful::StateSpec>,
    pub group_by: Vec<Field>,
    pub clouds: Vec<crate::event::model::Provider>,
    pub hash: String,
}

/// Compile one Sigma detection rule (its parsed YAML), with the logsource
/// it was mapped through. `None` when it is refused; the reasons are in `ctx`.
/// `catalog` lifts the rule to operations when it asks (the tag
/// `trailwarden.cross_cloud`) or `lift_dir` (its file is under one of
/// `rules.sigma_cross_cloud_dirs`) and it can be.
pub fn compile_sigma_rule(
    ctx: &mut FileCtx<'_>,
    settings: &SigmaSettings,
    catalog: &OperationCatalog,
    lift_dir: bool,
    node: &Node,
) -> Option<(Rule, SigmaLogsource)> {
    let Some(entries) = node.as_map() else {
        ctx.error(
            node.loc,
            Problem::WrongType,
            format!("a Sigma rule must be a mapping, found {}", node.kind_name()),
        );
        return None;
    };
    let meta = metadata(ctx, node, entries)?;
    let Some(logsource_node) = get(entries, "logsource") else {
        ctx.error(node.loc, Problem::MissingKey, "a Sigma rule needs a `logsource`");
        return None;
    };
    let logsource_field = |key: &str| {
        logsource_node
            .as_map()
            .and_then(|entries| get(entries, key))
            .and_then(Node::scalar_text)
    };
    let (product, service, category) = (
        logsource_field("product"),
        logsource_field("service"),
        logsource_field("category"),
    );
    let Some(logsource) = mapping::find_logsource(
        &settings.logsources,
        product.as_deref(),
        service.as_deref(),
        category.as_deref(),
    ) else {
        ctx.error(
            logsource_node.loc,
            Problem::BadValue,
            format!(
                "no mapping for logsource product `{}`, service `{}`: add one under `[[rules.sigma_logsources]]`",
                product.as_deref().unwrap_or("-"),
                service.as_deref().unwrap_or("-")
            ),
        );
        return None;
    };
    let Some(detection) = get(entries, "detection") else {
        ctx.error(node.loc, Problem::MissingKey, "a Sigma rule needs a `detection`");
        return None;
    };
    let asked = meta.tags.iter().any(|tag| tag == lift::CROSS_CLOUD_TAG);
    let aws = logsource.provider == Provider::Aws;
    if asked && !aws {
        ctx.error(
            node.loc,
            Problem::BadValue,
            format!(
                "`{}`: only CloudTrail rules are lifted to other clouds",
                lift::CROSS_CLOUD_TAG
            ),
        );
        return None;
    }
    let lift = (asked || lift_dir) && aws;
    let detection_node = detection;
    let detection = compile_detection(ctx, settings, logsource, detection_node, lift.then_some(catalog))?;
    if asked && detection.lifted.is_none() {
        ctx.error(
            detection_node.loc,
            Problem::BadValue,
            format!(
                "`{}`: a rule is lifted to other clouds only when every search tests `eventSource` and `eventName` alone",
                lift::CROSS_CLOUD_TAG
            ),
        );
        return None;
    }
    let on = |providers: &[Provider]| Cond::Test {
        field: Field::Provider,
        test: Test::In {
            texts: CaseInsensitiveSet::new(providers.iter().map(|provider| provider.as_str())),
            numbers: Vec::new(),
        },
    };
    let others: Vec<Provider> = Provider::ALL
        .into_iter()
        .filter(|provider| *provider != logsource.provider)
        .collect();
    let mut clouds = vec![logsource.provider];
    let condition = match &detection.lifted {
        Some(lifted) => {
            let operations = lifted.index_keys().map(|keys| keys.operations).unwrap_or_default();
            for provider in &others {
                let covered = operations.iter().any(|operation| {
                    catalog
                        .info(*operation)
                        .is_some_and(|info| info.coverage.iter().any(|(cloud, _)| cloud == provider))
                });
                if covered {
                    clouds.push(*provider);
                }
            }
            clouds.sort_by_key(|provider| Provider::ALL.iter().position(|each| each == provider));
            Cond::Any(vec![
                Cond::All(vec![on(&[logsource.provider]), detection.cond]),
                Cond::All(vec![on(&others), lifted.clone()]),
            ])
        }
        None => Cond::All(vec![on(&[logsource.provider]), detection.cond]),
    };
    let hash = {
        let mut hasher = Sha256::new();
        hasher.update(node.to_json().to_string().as_bytes());
        for (from, to) in &logsource.fields {
            hasher.update(from.as_bytes());
            hasher.update(to.as_bytes());
        }
        hex::encode(&hasher.finalize()[..8])
    };
    let sigma = SigmaInfo {
        status: meta.status.clone(),
        logsource: [product, service, category]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("/"),
        author: meta.author.clone(),
        name: meta.name.clone(),
        correlation: None,
        cross_cloud: detection.lifted.is_some(),
    };
    let built = Built {
        tests: get(entries, "tests")
            .map(|value| super::testing::compile_tests(ctx, value))
            .unwrap_or_default(),
        condition,
        state: None,
        group_by: Vec::new(),
        clouds,
        hash,
    };
    Some((meta.into_rule(ctx, node, sigma, built), logsource.clone()))
}

/// The `detection` section: named searches and the `condition` over them.
/// A compiled `detection`, and the same lifted to operations when asked
/// and every search tests only `eventSource` / `eventName` (`lift.rs`).
struct Detection {
    cond: Cond,
    lifted: Option<Cond>,
}

fn compile_detection(
    ctx: &mut FileCtx<'_>,
    settings: &SigmaSettings,
    logsource: &SigmaLogsource,
    detection: &Node,
    lift: Option<&OperationCatalog>,
) -> Option<Detection> {
    let Some(entries) = detection.as_map() else {
        ctx.error(detection.loc, Problem::WrongType, "`detection` must be a mapping");
        return None;
    };
    let mut searches: Vec<(String, Cond)> = Vec::new();
    let mut condition: Option<&Node> = None;
    let mut failed = false;
    let mut liftable = true;
    for (key, value) in entries {
        let Some(name) = key.as_str() else {
            ctx.error(key.loc, Problem::WrongType, "a search identifier must be a string");
            failed = true;
            continue;
        };
        match name {
            "condition" => condition = Some(value),
            "timeframe" => {
                ctx.error(
                    key.loc,
                    Problem::BadValue,
                    "`timeframe` belongs to aggregations, which are not supported: write a Sigma correlation rule",
                );
                failed = true;
            }
            _ => {
                liftable &= lift::search_is_liftable(value);
                let compiled = compile_search(ctx, settings, logsource, value);
                // A failed search is already reported; it is kept by name so
                // the condition is still checked without a second error for it.
                failed |= compiled.is_none();
                searches.push((name.to_string(), compiled.unwrap_or(Cond::Const(false))));
            }
        }
    }
    let Some(condition) = condition else {
        ctx.error(detection.loc, Problem::MissingKey, "`detection` needs a `condition`");
        return None;
    };
    let texts: Vec<(String, Loc)> = match &condition.value {
        NodeValue::Seq(items) => items
            .iter()
            .filter_map(|item| ctx.text(item, "a condition").map(|text| (text, item.loc)))
            .collect(),
        _ => vec![(ctx.text(condition, "`condition`")?, condition.loc)],
    };
    let lifted_searches: Option<Vec<(String, Cond)>> = lift.filter(|_| liftable).map(|catalog| {
        searches
            .iter()
            .map(|(name, search)| (name.clone(), lift::lift_search(search, catalog)))
            .collect()
    });
    let mut alternatives = Vec::new();
    let mut lifted = Vec::new();
    for (text, loc) in texts {
        match expr::parse(&text).and_then(|expr| {
            if let Some(searches) = &lifted_searches {
                lifted.push(resolve(&expr, searches)?);
            }
            resolve(&expr, &searches)
        }) {
            Ok(cond) => alternatives.push(cond),
            Err(message) => {
                ctx.error(loc, Problem::BadValue, format!("condition `{text}`: {message}"));
                failed = true;
            }
        }
    }
    if failed {
        return None;
    }
    let either = |mut parts: Vec<Cond>| {
        if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::Any(parts)
        }
    };
    Some(Detection {
        cond: either(alternatives),
        lifted: lifted_searches.map(|_| either(lifted)),
    })
}

/// A condition over compiled searches.
fn resolve(expr: &Expr, searches: &[(String, Cond)]) -> Result<Cond, String> {
    let matching = |pattern: &str| -> Result<Vec<Cond>, String> {
        let found: Vec<Cond> = searches
            .iter()
            .filter(|(name, _)| expr::name_matches(pattern, name))
            .map(|(_, cond)| cond.clone())
            .collect();
        if found.is_empty() {
            return Err(format!("no search identifier matches `{pattern}`"));
        }
        Ok(found)
    };
    Ok(match expr {
        Expr::And(parts) => Cond::All(
            parts
                .iter()
                .map(|part| resolve(part, searches))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Or(parts) => Cond::Any(
            parts
                .iter()
                .map(|part| resolve(part, searches))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Not(inner) => Cond::Not(Box::new(resolve(inner, searches)?)),
        Expr::Name(name) => searches
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, cond)| cond.clone())
            .ok_or_else(|| format!("`{name}` is not a search identifier of this detection"))?,
        Expr::OneOf(pattern) => Cond::Any(matching(pattern)?),
        Expr::AllOf(pattern) => Cond::All(matching(pattern)?),
    })
}

/// One named search: a map (all of its items), a list of maps (any of
/// them), or a list of keywords.
fn compile_search(
    ctx: &mut FileCtx<'_>,
    settings: &SigmaSettings,
    logsource: &SigmaLogsource,
    node: &Node,
) -> Option<Cond> {
    match &node.value {
        NodeValue::Map(entries) => {
            let mut items = Vec::new();
            let mut failed = false;
            for (key, value) in entries {
                match compile_item(ctx, settings, logsource, key, value) {
                    Some(cond) => items.push(cond),
                    None => failed = true,
                }
            }
            (!failed).then(|| Cond::All(items))
        }
        NodeValue::Seq(list) if list.iter().all(|item| item.as_map().is_some()) && !list.is_empty() => {
            let parts: Vec<Cond> = list
                .iter()
                .map(|item| compile_search(ctx, settings, logsource, item))
                .collect::<Option<_>>()?;
            Some(Cond::Any(parts))
        }
        NodeValue::Seq(list) if list.iter().all(|item| item.scalar_text().is_some()) => {
            let matcher = keyword_matcher(ctx, list.iter())?;
            Some(Cond::Sigma(Arc::new(Item::Keywords(matcher))))
        }
        NodeValue::Str(_) => {
            let matcher = keyword_matcher(ctx, std::iter::once(node))?;
            Some(Cond::Sigma(Arc::new(Item::Keywords(matcher))))
        }
        _ => {
            ctx.error(
                node.loc,
                Problem::WrongType,
                format!(
                    "a search must be a mapping of fields, a list of mappings or a list of keywords, found {}",
                    node.kind_name()
                ),
            );
            None
        }
    }
}

fn keyword_matcher<'a>(ctx: &mut FileCtx<'_>, items: impl Iterator<Item = &'a Node>) -> Option<Matcher> {
    let mut parts = Vec::new();
    for item in items {
        let text = item.scalar_text()?;
        match matcher::string_matcher(&text, StrOp::Contains, false) {
            Ok(matcher) => parts.push(matcher),
            Err(message) => {
                ctx.error(item.loc, Problem::BadValue, message);
                return None;
            }
        }
    }
    Some(Matcher::Any(parts))
}

/// One `field|modifiers: value(s)` item.
fn compile_item(
    ctx: &mut FileCtx<'_>,
    settings: &SigmaSettings,
    logsource: &SigmaLogsource,
    key: &Node,
    value: &Node,
) -> Option<Cond> {
    let Some(key_text) = key.scalar_text() else {
        ctx.error(key.loc, Problem::WrongType, "a field name must be a string");
        return None;
    };
    let mut parts = key_text.split('|');
    let sigma_field = parts.next().unwrap_or_default();
    let modifiers = match Modifiers::parse(parts) {
        Ok(modifiers) => modifiers,
        Err(message) => {
            ctx.error(key.loc, Problem::BadValue, format!("`{key_text}`: {message}"));
            return None;
        }
    };
    let values: Vec<&Node> = match &value.value {
        NodeValue::Seq(items) => items.iter().collect(),
        _ => vec![value],
    };
    if values.is_empty() {
        ctx.error(
            value.loc,
            Problem::BadValue,
            format!("`{key_text}` has an empty list of values"),
        );
        return None;
    }
    let mut scalars = Vec::new();
    for item in &values {
        scalars.push(match &item.value {
            NodeValue::Str(text) => Scalar::Str(text.clone()),
            NodeValue::Int(number) => Scalar::Int(*number),
            NodeValue::Float(number) => Scalar::Float(*number),
            NodeValue::Bool(flag) => Scalar::Bool(*flag),
            NodeValue::Null => Scalar::Null,
            _ => {
                ctx.error(
                    item.loc,
                    Problem::WrongType,
                    format!("a value of `{key_text}` must be a scalar, found {}", item.kind_name()),
                );
                return None;
            }
        });
    }
    if sigma_field.is_empty() {
        // `|contains: x` with no field: keywords with modifiers.
        let matchers = value_list(ctx, &modifiers, &scalars, settings, value.loc, &key_text)?;
        return Some(Cond::Sigma(Arc::new(Item::Keywords(matchers))));
    }
    let field_name = logsource.field_name(sigma_field);
    let Some(field) = Field::parse(&field_name) else {
        ctx.error(
            key.loc,
            Problem::UnknownField,
            format!("`{sigma_field}` maps to `{field_name}`, which is not a field"),
        );
        return None;
    };
    if modifiers.exists {
        let Some(Scalar::Bool(expected)) = scalars.first() else {
            ctx.error(
                value.loc,
                Problem::BadValue,
                format!("`{key_text}` needs `true` or `false`"),
            );
            return None;
        };
        return Some(Cond::Sigma(Arc::new(Item::Exists(field, *expected))));
    }
    if modifiers.fieldref {
        let mut refs = Vec::new();
        for scalar in &scalars {
            let Scalar::Str(other) = scalar else {
                ctx.error(value.loc, Problem::BadValue, format!("`{key_text}` needs field names"));
                return None;
            };
            let other_name = logsource.field_name(other);
            let Some(other_field) = Field::parse(&other_name) else {
                ctx.error(
                    value.loc,
                    Problem::UnknownField,
                    format!("`{other}` maps to `{other_name}`, which is not a field"),
                );
                return None;
            };
            refs.push(Cond::Sigma(Arc::new(Item::FieldRef {
                field: field.clone(),
                other: other_field,
                op: modifiers.op.unwrap_or(StrOp::Exact),
                cased: modifiers.cased,
            })));
        }
        return Some(if modifiers.all {
            Cond::All(refs)
        } else {
            Cond::Any(refs)
        });
    }
    // Nulls: the field is absent (or null), alone or among other values.
    let (nulls, scalars): (Vec<Scalar>, Vec<Scalar>) = scalars.into_iter().partition(|scalar| *scalar == Scalar::Null);
    if !nulls.is_empty() && (modifiers.op.is_some() || modifiers.re || modifiers.cidr || modifiers.number.is_some()) {
        ctx.error(
            value.loc,
            Problem::BadValue,
            format!("`{key_text}`: null cannot take modifiers"),
        );
        return None;
    }
    let null = (!nulls.is_empty()).then(|| Cond::Sigma(Arc::new(Item::Null(field.clone()))));
    if scalars.is_empty() {
        return null;
    }
    // Plain event names: the normalized action, which the rule index reads.
    if field == Field::Action
        && modifiers.op.is_none()
        && !modifiers.re
        && !modifiers.cased
        && !modifiers.expand
        && !modifiers.all
        && modifiers.number.is_none()
        && !(modifiers.base64 || modifiers.base64offset || modifiers.windash)
        && scalars
            .iter()
            .all(|scalar| matches!(scalar, Scalar::Str(text) if !text.contains(['*', '?', '\\'])))
    {
        let names: Vec<String> = scalars
            .iter()
            .filter_map(|scalar| match scalar {
                Scalar::Str(text) => Some(text.clone()),
                _ => None,
            })
            .collect();
        let in_names = |field: Field| Cond::Test {
            field,
            test: Test::In {
                texts: CaseInsensitiveSet::new(names.iter()),
                numbers: Vec::new(),
            },
        };
        // The action is what the rule index reads; the record's own key,
        // spelled as the rule spells it, is what a Sigma engine reads (the
        // normalizer also takes `eventname`).
        let test = Cond::All(vec![
            in_names(Field::Action),
            Cond::Sigma(Arc::new(Item::Field {
                field: Field::parse(&format!("raw.{sigma_field}"))?,
                matcher: Matcher::Any(
                    names
                        .iter()
                        .map(|name| Matcher::Str {
                            op: StrOp::Exact,
                            needle: name.to_lowercase(),
                            cased: false,
                        })
                        .collect(),
                ),
            })),
        ]);
        return Some(match null {
            Some(null) => Cond::Any(vec![test, null]),
            None => test,
        });
    }
    let matcher = value_list(ctx, &modifiers, &scalars, settings, value.loc, &key_text)?;
    let item = Cond::Sigma(Arc::new(Item::Field { field, matcher }));
    Some(match null {
        Some(null) => Cond::Any(vec![item, null]),
        None => item,
    })
}

/// The values of one item: any of them (all with `all`).
fn value_list(
    ctx: &mut FileCtx<'_>,
    modifiers: &Modifiers,
    scalars: &[Scalar],
    settings: &SigmaSettings,
    loc: Loc,
    key_text: &str,
) -> Option<Matcher> {
    let placeholders = |name: &str| {
        settings
            .placeholders
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, values)| values.clone())
    };
    let mut per_value = Vec::new();
    for scalar in scalars {
        match matcher::value_matchers(scalar, modifiers, &placeholders) {
            Ok(alternatives) => per_value.push(if alternatives.len() == 1 {
                alternatives.into_iter().next().unwrap_or(Matcher::Any(Vec::new()))
            } else {
                Matcher::Any(alternatives)
            }),
            Err(message) => {
                ctx.error(loc, Problem::BadValue, format!("`{key_text}`: {message}"));
                return None;
            }
        }
    }
    Some(if modifiers.all && per_value.len() > 1 {
        Matcher::All(per_value)
    } else if per_value.len() == 1 {
        per_value.remove(0)
    } else {
        Matcher::Any(per_value)
    })
}

#[cfg(test)]
mod tests;
