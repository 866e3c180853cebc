//! Reading Sigma files: each YAML document (`---` between them) is a
//! detection rule or a correlation rule; correlations are compiled once
//! every detection rule is, since they name them by `id` or `name`.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::correlation::{Correlation, CorrelationKind, Threshold};
use super::mapping::SigmaLogsource;
use super::{Built, SigmaInfo, SigmaSettings, compile_sigma_rule, get, metadata};
use crate::rules::Rule;
use crate::rules::condition::Cond;
use crate::rules::diag::{Diagnostics, FileCtx, Problem};
use crate::rules::field::Field;
use crate::rules::operations::OperationCatalog;
use crate::rules::stateful::StateSpec;
use crate::rules::yaml::{self, Loc, Node, NodeValue};

const CORRELATION_KEYS: &[&str] = &[
    "type",
    "rules",
    "group-by",
    "timespan",
    "timeframe",
    "condition",
    "aliases",
    "generate",
];

/// Compile every Sigma source (file name, text): detection rules, then
/// correlations over them. Problems go to `diagnostics`, each located.
pub fn compile_sigma_sources(
    sources: &[(Arc<str>, String)],
    settings: &SigmaSettings,
    catalog: &OperationCatalog,
    diagnostics: &mut Diagnostics,
) -> Vec<Rule> {
    let mut detections: Vec<(Rule, SigmaLogsource)> = Vec::new();
    let mut correlations: Vec<(Arc<str>, Node)> = Vec::new();
    for (name, text) in sources {
        // Compared canonical, so `./sigma` and an absolute spelling agree.
        let canonical = |path: &std::path::Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let file = canonical(std::path::Path::new(name.as_ref()));
        let lift_dir = settings
            .cross_cloud_dirs
            .iter()
            .any(|dir| file.starts_with(canonical(dir)));
        let mut ctx = FileCtx {
            file: name.clone(),
            diagnostics: &mut *diagnostics,
        };
        for (first_line, document) in documents(text) {
            let node = match yaml::parse(document) {
                Ok(node) => shifted(node, first_line),
                Err(error) => {
                    let loc = Loc {
                        line: error.loc.line + first_line,
                        column: error.loc.column,
                    };
                    ctx.error(loc, Problem::Syntax, format!("YAML syntax: {}", error.message));
                    continue;
                }
            };
            if matches!(node.value, NodeValue::Null) {
                continue;
            }
            if node
                .as_map()
                .is_some_and(|entries| get(entries, "correlation").is_some())
            {
                correlations.push((name.clone(), node));
            } else if let Some(compiled) = compile_sigma_rule(&mut ctx, settings, catalog, lift_dir, &node) {
                detections.push(compiled);
            }
        }
    }
    let mut compiled = Vec::new();
    let mut silenced: Vec<String> = Vec::new();
    let mut generated: Vec<String> = Vec::new();
    for (file, node) in &correlations {
        let mut ctx = FileCtx {
            file: file.clone(),
            diagnostics: &mut *diagnostics,
        };
        if let Some((rule, named, generate)) = compile_correlation(&mut ctx, &detections, node) {
            if generate {
                generated.extend(named);
            } else {
                silenced.extend(named);
            }
            compiled.push(rule);
        }
    }
    // A detection rule only feeds its correlations unless one of them says
    // `generate: true`; it is listed, switched off.
    let mut rules: Vec<Rule> = detections
        .into_iter()
        .map(|(mut rule, _)| {
            if silenced.contains(&rule.id) && !generated.contains(&rule.id) {
                rule.enabled = false;
            }
            rule
        })
        .collect();
    rules.extend(compiled);
    rules
}

/// The YAML documents of a file, with the line each starts after.
fn documents(text: &str) -> Vec<(u32, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut start_line = 0u32;
    let mut offset = 0;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_end() == "---" {
            out.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = number as u32 + 1;
        }
        offset += line.len();
    }
    out.push((start_line, &text[start..]));
    out.into_iter()
        .filter(|(_, document)| !document.trim().is_empty())
        .collect()
}

/// A document's node with its lines counted from the file's start.
fn shifted(mut node: Node, lines: u32) -> Node {
    node.loc.line += lines;
    node.value = match node.value {
        NodeValue::Seq(items) => NodeValue::Seq(items.into_iter().map(|item| shifted(item, lines)).collect()),
        NodeValue::Map(entries) => NodeValue::Map(
            entries
                .into_iter()
                .map(|(key, value)| (shifted(key, lines), shifted(value, lines)))
                .collect(),
        ),
        other => other,
    };
    node
}

/// A correlation rule: the rule, the ids of the rules it names, and its `generate`.
fn compile_correlation(
    ctx: &mut FileCtx<'_>,
    detections: &[(Rule, SigmaLogsource)],
    node: &Node,
) -> Option<(Rule, Vec<String>, bool)> {
    let entries = node.as_map()?;
    let meta = metadata(ctx, node, entries)?;
    let body = get(entries, "correlation")?;
    let mut map = ctx.map(body, "`correlation`")?;
    let kind_node = map.required(ctx, "type");
    let rules_node = map.required(ctx, "rules");
    let group_by_node = map.get("group-by");
    let timespan_node = map.get("timespan").or_else(|| map.get("timeframe"));
    let condition_node = map.get("condition");
    let aliases_node = map.get("aliases");
    let generate = map
        .get("generate")
        .and_then(|value| ctx.boolean(value, "`generate`"))
        .unwrap_or(false);
    map.finish(ctx, CORRELATION_KEYS);
    let kind_node = kind_node?;
    let kind_name = ctx.text(kind_node, "`type`")?;
    let Some(timespan_node) = timespan_node else {
        ctx.error(body.loc, Problem::MissingKey, "a correlation needs a `timespan`");
        return None;
    };
    let timespan_text = ctx.text(timespan_node, "`timespan`")?;
    let timespan_ms = match humantime::parse_duration(&timespan_text) {
        Ok(span) if span > Duration::ZERO => i64::try_from(span.as_millis()).unwrap_or(i64::MAX),
        _ => {
            ctx.error(
                timespan_node.loc,
                Problem::BadDuration,
                format!("timespan `{timespan_text}` is not a duration like 5m, 1h or 2d"),
            );
            return None;
        }
    };
    // The named rules, in order.
    let mut named: Vec<&(Rule, SigmaLogsource)> = Vec::new();
    for (reference, loc) in ctx.text_list(rules_node?, "`rules`") {
        let found = detections.iter().find(|(rule, _)| {
            rule.id == reference || rule.sigma.as_ref().and_then(|sigma| sigma.name.as_deref()) == Some(&reference)
        });
        match found {
            Some(found) => named.push(found),
            None => ctx.error(
                loc,
                Problem::UnknownRule,
                format!("the correlation names `{reference}`, which is not a Sigma detection rule loaded from `rules.sigma_dirs`"),
            ),
        }
    }
    if named.is_empty() {
        return None;
    }
    // Aliases: a group-by (or value_count field) name → per named rule, its field.
    let mut aliases: Vec<(String, Vec<(String, String)>)> = Vec::new();
    if let Some(aliases_node) = aliases_node {
        for (alias, per_rule) in aliases_node.as_map().unwrap_or_default() {
            let alias = alias.scalar_text().unwrap_or_default();
            let mut fields = Vec::new();
            for (rule, field) in per_rule.as_map().unwrap_or_default() {
                fields.push((
                    rule.scalar_text().unwrap_or_default(),
                    field.scalar_text().unwrap_or_default(),
                ));
            }
            aliases.push((alias, fields));
        }
    }
    let field_for =
        |ctx: &mut FileCtx<'_>, name: &str, loc: Loc, (rule, logsource): &(Rule, SigmaLogsource)| -> Option<Field> {
            let sigma_name = match aliases.iter().find(|(alias, _)| alias == name) {
                Some((_, per_rule)) => {
                    let rule_name = rule.sigma.as_ref().and_then(|sigma| sigma.name.clone());
                    let found = per_rule
                        .iter()
                        .find(|(reference, _)| *reference == rule.id || Some(reference) == rule_name.as_ref());
                    match found {
                        Some((_, field)) => field.clone(),
                        None => {
                            ctx.error(
                                loc,
                                Problem::BadValue,
                                format!("alias `{name}` names no field for rule `{}`", rule.id),
                            );
                            return None;
                        }
                    }
                }
                None => name.to_string(),
            };
            let target = logsource.field_name(&sigma_name);
            let field = Field::parse(&target);
            if field.is_none() {
                ctx.error(
                    loc,
                    Problem::UnknownField,
                    format!("`{sigma_name}` maps to `{target}`, which is not a field"),
                );
            }
            field
        };
    let group_names = group_by_node
        .map(|node| ctx.text_list(node, "`group-by`"))
        .unwrap_or_default();
    let mut group_by: Vec<Vec<Field>> = Vec::new();
    for rule in &named {
        let mut fields = Vec::new();
        for (name, loc) in &group_names {
            fields.push(field_for(ctx, name, *loc, rule)?);
        }
        group_by.push(fields);
    }
    let threshold = |ctx: &mut FileCtx<'_>| -> Option<Threshold> {
        let Some(condition) = condition_node else {
            ctx.error(
                body.loc,
                Problem::MissingKey,
                format!("a `{kind_name}` correlation needs a `condition`"),
            );
            return None;
        };
        let entries = condition.as_map().unwrap_or_default();
        let number = |key: &str| get(entries, key).and_then(|value| value.scalar_text()?.parse::<i64>().ok());
        if get(entries, "lt").is_some() || get(entries, "lte").is_some() {
            ctx.error(
                condition.loc,
                Problem::BadValue,
                "`lt` / `lte` conditions hold only when a window closes, which this engine does not evaluate yet: use `gte`, `gt`, `eq` or a range of `gte` and `lte`",
            );
            return None;
        }
        let found = match (number("gte"), number("gt"), number("eq")) {
            (Some(low), None, None) => Some(Threshold::AtLeast(low)),
            (None, Some(low), None) => Some(Threshold::AtLeast(low + 1)),
            (None, None, Some(value)) => Some(Threshold::Exactly(value)),
            _ => None,
        };
        if found.is_none() {
            ctx.error(
                condition.loc,
                Problem::BadValue,
                "the condition needs one of `gte`, `gt` or `eq` with a number",
            );
        }
        found
    };
    let kind = match kind_name.as_str() {
        "event_count" => CorrelationKind::EventCount(threshold(ctx)?),
        "value_count" => {
            let Some(field_name) = condition_node
                .and_then(|condition| get(condition.as_map().unwrap_or_default(), "field"))
                .and_then(Node::scalar_text)
            else {
                ctx.error(
                    body.loc,
                    Problem::MissingKey,
                    "a `value_count` correlation needs `condition.field`",
                );
                return None;
            };
            let mut fields = Vec::new();
            for rule in &named {
                fields.push(field_for(ctx, &field_name, body.loc, rule)?);
            }
            CorrelationKind::ValueCount {
                fields,
                threshold: threshold(ctx)?,
            }
        }
        "temporal" => CorrelationKind::Temporal,
        "temporal_ordered" => CorrelationKind::TemporalOrdered,
        other => {
            ctx.error(
                kind_node.loc,
                Problem::BadValue,
                format!(
                    "correlation type `{other}` is not one of event_count, value_count, temporal, temporal_ordered"
                ),
            );
            return None;
        }
    };
    let conditions: Vec<Cond> = named.iter().map(|(rule, _)| rule.condition.clone()).collect();
    let mut clouds: Vec<_> = named.iter().flat_map(|(rule, _)| rule.clouds.iter().copied()).collect();
    clouds.sort_by_key(|provider| {
        crate::event::model::Provider::ALL
            .iter()
            .position(|each| each == provider)
    });
    clouds.dedup();
    let hash = {
        let mut hasher = Sha256::new();
        hasher.update(node.to_json().to_string().as_bytes());
        for (rule, _) in &named {
            hasher.update(rule.hash.as_bytes());
        }
        hex::encode(&hasher.finalize()[..8])
    };
    let ids: Vec<String> = named.iter().map(|(rule, _)| rule.id.clone()).collect();
    let sigma = SigmaInfo {
        status: meta.status.clone(),
        logsource: named[0]
            .0
            .sigma
            .as_ref()
            .map(|sigma| sigma.logsource.clone())
            .unwrap_or_default(),
        author: meta.author.clone(),
        name: meta.name.clone(),
        correlation: Some(kind_name),
        cross_cloud: false,
    };
    let built = Built {
        tests: get(entries, "tests")
            .map(|value| crate::rules::testing::compile_tests(ctx, value))
            .unwrap_or_default(),
        condition: Cond::Any(conditions.clone()),
        state: Some(StateSpec {
            correlation: Some(Arc::new(Correlation {
                kind,
                rules: conditions,
                group_by: group_by.clone(),
                timespan_ms,
            })),
            ..StateSpec::default()
        }),
        group_by: group_by.into_iter().next().unwrap_or_default(),
        clouds,
        hash,
    };
    Some((meta.into_rule(ctx, node, sigma, built), ids, generate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_at_separators_and_keep_their_lines() {
        let text = "title: a\n---\ntitle: b\nid: x\n---\n";
        let parts = documents(text);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], (2, "title: b\nid: x\n"));
        let node = shifted(yaml::parse(parts[1].1).unwrap(), parts[1].0);
        let (_, id) = &node.as_map().unwrap()[1];
        assert_eq!(id.loc.line, 4);
    }
}
