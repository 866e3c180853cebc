//! Exceptions: structured allow tuples per rule, in the manner of Falco.
//!
//! ```yaml
//! exceptions:
//!   - name: ci_runners                 # a name, unique within the rule
//!     fields: [access_key.id, source_ip]
//!     comps: [in, cidr]                # optional: one operator per field, default `in`
//!     values:
//!       - [[AKIDci1, AKIDci2], [10.0.0.0/8]]   # one tuple: every field must match
//!       - [AKIDdeploy, 192.168.7.0/24]
//! ```
//! A match is suppressed when any tuple of any exception matches the event.
//! Tuple elements may be a value or a list of values (and list names expand).
//! Override files can append exceptions and tuples to shipped rules.

use super::condition::{CompileEnv, Cond};
use super::diag::{FileCtx, Problem};
use super::field::Field;
use super::yaml::{Node, NodeValue};

/// One named exception, compiled to "any tuple matches".
#[derive(Clone, Debug)]
pub struct Exception {
    pub name: String,
    pub condition: Cond,
}

const COMPARISONS: &[&str] = &[
    "in",
    "equals",
    "contains",
    "starts_with",
    "ends_with",
    "glob",
    "regex",
    "cidr",
];

/// Compile an `exceptions:` list.
pub fn compile_exceptions(ctx: &mut FileCtx<'_>, env: &mut CompileEnv<'_>, node: &Node) -> Vec<Exception> {
    let Some(items) = node.as_seq() else {
        ctx.error(
            node.loc,
            Problem::WrongType,
            format!("`exceptions` must be a list, found {}", node.kind_name()),
        );
        return Vec::new();
    };
    let mut out: Vec<Exception> = Vec::new();
    for item in items {
        let Some(mut map) = ctx.map(item, "an exception") else {
            continue;
        };
        let name = map.required(ctx, "name").and_then(|value| ctx.text(value, "`name`"));
        let fields_node = map.required(ctx, "fields");
        let comps_node = map.get("comps");
        let values_node = map.required(ctx, "values");
        map.finish(ctx, &["name", "fields", "comps", "values"]);
        let (Some(name), Some(fields_node), Some(values_node)) = (name, fields_node, values_node) else {
            continue;
        };
        if out.iter().any(|existing| existing.name == name) {
            ctx.error(
                item.loc,
                Problem::Duplicate,
                format!("exception `{name}` appears twice"),
            );
        }
        let fields: Vec<(Field, String)> = ctx
            .text_list(fields_node, "`fields`")
            .into_iter()
            .filter_map(|(field_name, loc)| match Field::parse(&field_name) {
                Some(field) => Some((field, field_name)),
                None => {
                    ctx.error(
                        loc,
                        Problem::UnknownField,
                        format!("unknown field `{field_name}` in exception `{name}`"),
                    );
                    None
                }
            })
            .collect();
        let comps: Vec<String> = match comps_node {
            Some(comps) => ctx
                .text_list(comps, "`comps`")
                .into_iter()
                .map(|(comp, _)| comp)
                .collect(),
            None => vec!["in".to_string(); fields.len()],
        };
        if let Some(comps_node) = comps_node {
            if comps.len() != fields.len() {
                ctx.error(
                    comps_node.loc,
                    Problem::BadValue,
                    format!(
                        "exception `{name}` has {} fields but {} comps",
                        fields.len(),
                        comps.len()
                    ),
                );
                continue;
            }
            for comp in &comps {
                if !COMPARISONS.contains(&comp.as_str()) {
                    ctx.error(
                        comps_node.loc,
                        Problem::BadValue,
                        format!(
                            "`{comp}` is not an exception comparison; use {}",
                            COMPARISONS.join(", ")
                        ),
                    );
                }
            }
        }
        let Some(tuples) = values_node.as_seq() else {
            ctx.error(values_node.loc, Problem::WrongType, "`values` must be a list of tuples");
            continue;
        };
        let mut alternatives = Vec::new();
        for tuple in tuples {
            // A one-field exception may list bare values.
            let elements: Vec<&Node> = match &tuple.value {
                NodeValue::Seq(elements) if fields.len() > 1 || elements.len() == 1 => elements.iter().collect(),
                _ if fields.len() == 1 => vec![tuple],
                _ => {
                    ctx.error(
                        tuple.loc,
                        Problem::WrongType,
                        "each value of an exception is a tuple (a list)",
                    );
                    continue;
                }
            };
            if elements.len() != fields.len() {
                ctx.error(
                    tuple.loc,
                    Problem::BadValue,
                    format!("tuple has {} values for {} fields", elements.len(), fields.len()),
                );
                continue;
            }
            let mut tests = Vec::new();
            for ((field, _), (element, comp)) in fields.iter().zip(elements.into_iter().zip(&comps)) {
                let operator = if comp == "equals" { "in" } else { comp.as_str() };
                if let Some(test) = env.compile_test(ctx, field, operator, element) {
                    tests.push(Cond::Test {
                        field: field.clone(),
                        test,
                    });
                }
            }
            if tests.len() == fields.len() {
                alternatives.push(Cond::All(tests));
            }
        }
        out.push(Exception {
            name,
            condition: Cond::Any(alternatives),
        });
    }
    out
}
