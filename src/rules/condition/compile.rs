//! Compiling `match` conditions: YAML nodes → `Cond`, against the files'
//! lists and macros and the operation catalog. Every problem is reported with
//! its file, line and column, and a failed part compiles to `Const(false)` so
//! the rest of the rule is still checked.

use std::collections::HashMap;
use std::sync::Arc;

use aho_corasick::{AhoCorasickBuilder, MatchKind};
use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;
use globset::{GlobBuilder, GlobSetBuilder};
use regex::RegexSet;

use super::{Comparison, Cond, Test, TimeWindow, parse_network};
use crate::rules::diag::{FileCtx, Problem, suggest};
use crate::rules::field::{FIELD_NAMES, Field};
use crate::rules::operations::OperationCatalog;
use crate::rules::yaml::{Loc, Node, NodeValue};
use crate::text::CaseInsensitiveSet;

/// A named list as defined in a rules file.
#[derive(Clone, Debug)]
pub struct ListDef {
    pub name: String,
    pub items: Vec<(String, Loc)>,
    pub file: Arc<str>,
    pub loc: Loc,
}

/// A named macro (a reusable condition) as defined in a rules file.
#[derive(Clone, Debug)]
pub struct MacroDef {
    pub name: String,
    pub condition: Node,
    pub file: Arc<str>,
    pub loc: Loc,
}

/// What conditions are compiled against: lists, macros, the catalog, the default zone.
pub struct CompileEnv<'a> {
    pub lists: &'a HashMap<String, ListDef>,
    pub macros: &'a HashMap<String, MacroDef>,
    pub catalog: &'a OperationCatalog,
    pub default_timezone: Tz,
    /// Macros compiled so far (`None` while in progress: a cycle).
    pub compiled_macros: HashMap<String, Option<Cond>>,
    /// Names of lists and macros a compile used (for rule content hashes).
    pub used: Vec<String>,
}

const OPERATORS: &[&str] = &[
    "equals",
    "in",
    "contains",
    "starts_with",
    "ends_with",
    "glob",
    "regex",
    "cidr",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "other_account",
];

const CONDITION_KEYS: &[&str] = &["all", "any", "not", "macro", "time"];

impl<'a> CompileEnv<'a> {
    /// Compile a condition node; problems go to `ctx`, and a failed part
    /// compiles to `Const(false)` so the rest is still checked.
    pub fn compile(&mut self, ctx: &mut FileCtx<'_>, node: &Node) -> Cond {
        match &node.value {
            NodeValue::Map(entries) => {
                let mut parts: Vec<Cond> = entries
                    .iter()
                    .map(|(key, value)| self.compile_entry(ctx, key, value))
                    .collect();
                if entries.is_empty() {
                    ctx.error(node.loc, Problem::BadValue, "an empty condition");
                    return Cond::Const(false);
                }
                if parts.len() == 1 {
                    parts.pop().unwrap_or(Cond::Const(false))
                } else {
                    Cond::All(parts)
                }
            }
            NodeValue::Str(name) => {
                // A bare string is a macro reference.
                self.compile_macro_ref(ctx, name, node.loc)
            }
            _ => {
                ctx.error(
                    node.loc,
                    Problem::WrongType,
                    format!(
                        "a condition must be a mapping (field: value, all, any, not, macro, time), found {}",
                        node.kind_name()
                    ),
                );
                Cond::Const(false)
            }
        }
    }

    fn compile_list(&mut self, ctx: &mut FileCtx<'_>, node: &Node, what: &str) -> Vec<Cond> {
        match &node.value {
            NodeValue::Seq(items) if !items.is_empty() => items.iter().map(|item| self.compile(ctx, item)).collect(),
            _ => {
                ctx.error(
                    node.loc,
                    Problem::WrongType,
                    format!(
                        "`{what}` takes a non-empty list of conditions, found {}",
                        node.kind_name()
                    ),
                );
                Vec::new()
            }
        }
    }

    fn compile_entry(&mut self, ctx: &mut FileCtx<'_>, key: &Node, value: &Node) -> Cond {
        let Some(name) = key.as_str() else {
            ctx.error(key.loc, Problem::WrongType, "a condition key must be a string");
            return Cond::Const(false);
        };
        match name {
            "all" => Cond::All(self.compile_list(ctx, value, "all")),
            "any" => Cond::Any(self.compile_list(ctx, value, "any")),
            "not" => Cond::Not(Box::new(self.compile(ctx, value))),
            "macro" => match value.as_str() {
                Some(macro_name) => self.compile_macro_ref(ctx, macro_name, value.loc),
                None => {
                    ctx.error(value.loc, Problem::WrongType, "`macro` takes a macro name");
                    Cond::Const(false)
                }
            },
            "time" => self.compile_time(ctx, value),
            field_name => match Field::parse(field_name) {
                Some(field) => self.compile_field(ctx, field, value),
                None => {
                    let hint = suggest(
                        field_name,
                        FIELD_NAMES.iter().copied().chain(CONDITION_KEYS.iter().copied()),
                    )
                    .map(|best| format!(" (did you mean `{best}`?)"))
                    .unwrap_or_default();
                    ctx.error(
                        key.loc,
                        Problem::UnknownField,
                        format!("unknown field `{field_name}`{hint}; fields are {}, raw.<path>, or one of all/any/not/macro/time",
                            FIELD_NAMES.join(", ")),
                    );
                    Cond::Const(false)
                }
            },
        }
    }

    fn compile_macro_ref(&mut self, ctx: &mut FileCtx<'_>, name: &str, loc: Loc) -> Cond {
        if let Some(state) = self.compiled_macros.get(name) {
            return match state {
                Some(cond) => {
                    self.used.push(format!("macro:{name}"));
                    cond.clone()
                }
                None => {
                    ctx.error(loc, Problem::MacroCycle, format!("macro `{name}` refers to itself"));
                    Cond::Const(false)
                }
            };
        }
        let Some(definition) = self.macros.get(name) else {
            let hint = suggest(name, self.macros.keys().map(String::as_str))
                .map(|best| format!(" (did you mean `{best}`?)"))
                .unwrap_or_default();
            ctx.error(loc, Problem::UnknownMacro, format!("unknown macro `{name}`{hint}"));
            return Cond::Const(false);
        };
        let definition = definition.clone();
        self.compiled_macros.insert(name.to_string(), None);
        // Problems inside the macro are reported at the macro's own file.
        let mut macro_ctx = FileCtx {
            file: definition.file.clone(),
            diagnostics: &mut *ctx.diagnostics,
        };
        let cond = self.compile(&mut macro_ctx, &definition.condition);
        self.compiled_macros.insert(name.to_string(), Some(cond.clone()));
        self.used.push(format!("macro:{name}"));
        cond
    }

    /// Values of an operator: a scalar, a list, or list names that expand.
    /// `list_check`: report a bare, list-name-shaped value that names no list
    /// (a typo would otherwise silently become a literal).
    fn values(
        &mut self,
        ctx: &mut FileCtx<'_>,
        node: &Node,
        operator: &str,
        list_check: bool,
    ) -> Option<Vec<(String, Loc)>> {
        if list_check
            && let NodeValue::Str(text) = &node.value
            && looks_like_list_name(text)
            && !self.lists.contains_key(text)
        {
            let hint = suggest(text, self.lists.keys().map(String::as_str))
                .map(|best| format!(" (did you mean `{best}`?)"))
                .unwrap_or_default();
            ctx.error(
                node.loc,
                Problem::UnknownList,
                format!("unknown list `{text}`{hint}; to match this literal text, write it as a list: [{text}]"),
            );
            return None;
        }
        let raw: Vec<(String, Loc)> = match &node.value {
            NodeValue::Seq(items) => items
                .iter()
                .filter_map(|item| match item.scalar_text() {
                    Some(text) => Some((text, item.loc)),
                    None => {
                        ctx.error(
                            item.loc,
                            Problem::WrongType,
                            format!("`{operator}` values must be scalars, found {}", item.kind_name()),
                        );
                        None
                    }
                })
                .collect(),
            _ => match node.scalar_text() {
                Some(text) => vec![(text, node.loc)],
                None => {
                    ctx.error(
                        node.loc,
                        Problem::WrongType,
                        format!(
                            "`{operator}` takes a value or a list of values, found {}",
                            node.kind_name()
                        ),
                    );
                    Vec::new()
                }
            },
        };
        let mut out = Vec::new();
        for (text, loc) in raw {
            self.expand_list_item(text, loc, &mut out, 0);
        }
        Some(out)
    }

    fn expand_list_item(&mut self, text: String, loc: Loc, out: &mut Vec<(String, Loc)>, depth: usize) {
        match self.lists.get(&text) {
            Some(list) if depth < 16 => {
                self.used.push(format!("list:{text}"));
                for (item, item_loc) in list.items.clone() {
                    self.expand_list_item(item, item_loc, out, depth + 1);
                }
            }
            _ => out.push((text, loc)),
        }
    }

    fn compile_field(&mut self, ctx: &mut FileCtx<'_>, field: Field, value: &Node) -> Cond {
        let tests: Vec<Test> = match &value.value {
            NodeValue::Map(entries) => {
                let mut tests = Vec::new();
                for (key, operand) in entries {
                    let Some(operator) = key.as_str() else {
                        ctx.error(key.loc, Problem::WrongType, "an operator must be a string");
                        continue;
                    };
                    if !OPERATORS.contains(&operator) {
                        let hint = suggest(operator, OPERATORS.iter().copied())
                            .map(|best| format!(" (did you mean `{best}`?)"))
                            .unwrap_or_default();
                        ctx.error(
                            key.loc,
                            Problem::UnknownKey,
                            format!(
                                "unknown operator `{operator}`{hint}; operators are {}",
                                OPERATORS.join(", ")
                            ),
                        );
                        continue;
                    }
                    if let Some(test) = self.compile_test(ctx, &field, operator, operand) {
                        tests.push(test);
                    }
                }
                tests
            }
            NodeValue::Null => {
                ctx.error(
                    value.loc,
                    Problem::BadValue,
                    format!("no value given for `{}`", field.name()),
                );
                Vec::new()
            }
            _ => self.compile_test(ctx, &field, "in", value).into_iter().collect(),
        };
        let mut conds: Vec<Cond> = tests
            .into_iter()
            .map(|test| Cond::Test {
                field: field.clone(),
                test,
            })
            .collect();
        match conds.len() {
            0 => Cond::Const(false),
            1 => conds.pop().unwrap_or(Cond::Const(false)),
            _ => Cond::All(conds),
        }
    }

    pub(crate) fn compile_test(
        &mut self,
        ctx: &mut FileCtx<'_>,
        field: &Field,
        operator: &str,
        operand: &Node,
    ) -> Option<Test> {
        if operator == "exists" {
            return ctx.boolean(operand, "`exists`").map(Test::Exists);
        }
        if operator == "other_account" {
            return self.compile_other_account(ctx, operand);
        }
        if let Some(comparison) = match operator {
            "gt" => Some(Comparison::Greater),
            "gte" => Some(Comparison::GreaterOrEqual),
            "lt" => Some(Comparison::Less),
            "lte" => Some(Comparison::LessOrEqual),
            _ => None,
        } {
            return match &operand.value {
                NodeValue::Int(number) => Some(Test::Compare(comparison, *number as f64)),
                NodeValue::Float(number) => Some(Test::Compare(comparison, *number)),
                NodeValue::Str(text) => match text.trim().parse::<f64>() {
                    Ok(number) => Some(Test::Compare(comparison, number)),
                    Err(_) => {
                        ctx.error(
                            operand.loc,
                            Problem::BadValue,
                            format!("`{operator}` takes a number, found `{text}`"),
                        );
                        None
                    }
                },
                _ => {
                    ctx.error(
                        operand.loc,
                        Problem::WrongType,
                        format!("`{operator}` takes a number, found {}", operand.kind_name()),
                    );
                    None
                }
            };
        }
        let list_check = *field != Field::Operation && field.allowed_values().is_none();
        let values = self.values(ctx, operand, operator, list_check)?;
        if values.is_empty() {
            ctx.error(
                operand.loc,
                Problem::BadValue,
                format!("`{operator}` needs at least one value"),
            );
            return None;
        }
        if *field == Field::Operation {
            return self.compile_operation_test(ctx, operator, &values);
        }
        if matches!(operator, "equals" | "in")
            && let Some(allowed) = field.allowed_values()
        {
            for (value, loc) in &values {
                if !allowed.iter().any(|candidate| candidate.eq_ignore_ascii_case(value)) {
                    let hint = suggest(value, allowed.iter().copied())
                        .map(|best| format!(" (did you mean `{best}`?)"))
                        .unwrap_or_default();
                    ctx.error(
                        *loc,
                        Problem::BadValue,
                        format!(
                            "`{value}` is not a value of `{}`{hint}; its values are {}",
                            field.name(),
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        let texts: Vec<String> = values.iter().map(|(text, _)| text.clone()).collect();
        match operator {
            "equals" | "in" => Some(Test::In {
                numbers: texts
                    .iter()
                    .filter_map(|text| text.trim().parse::<f64>().ok())
                    .collect(),
                texts: CaseInsensitiveSet::new(&texts),
            }),
            "contains" => match AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostFirst)
                .build(&texts)
            {
                Ok(automaton) => Some(Test::Contains(Arc::new(super::contains::ContainsSet::new(automaton)))),
                Err(error) => {
                    ctx.error(
                        operand.loc,
                        Problem::BadValue,
                        format!("cannot build `contains` matcher: {error}"),
                    );
                    None
                }
            },
            "starts_with" => Some(Test::StartsWith(texts)),
            "ends_with" => Some(Test::EndsWith(texts)),
            "glob" => {
                let mut builder = GlobSetBuilder::new();
                let mut ok = true;
                for (pattern, loc) in &values {
                    match GlobBuilder::new(pattern)
                        .case_insensitive(true)
                        .literal_separator(false)
                        .build()
                    {
                        Ok(glob) => {
                            builder.add(glob);
                        }
                        Err(error) => {
                            ok = false;
                            ctx.error(
                                *loc,
                                Problem::BadGlob,
                                format!("bad glob `{pattern}`: {}", error.kind()),
                            );
                        }
                    }
                }
                match builder.build() {
                    Ok(set) if ok => {
                        let patterns: Vec<&str> = values.iter().map(|(pattern, _)| pattern.as_str()).collect();
                        Some(Test::Glob(Arc::new(super::GlobTest::new(set, &patterns))))
                    }
                    Ok(_) => None,
                    Err(error) => {
                        ctx.error(operand.loc, Problem::BadGlob, format!("bad glob set: {error}"));
                        None
                    }
                }
            }
            "regex" => {
                let mut ok = true;
                for (pattern, loc) in &values {
                    if let Err(error) = regex::Regex::new(pattern) {
                        ok = false;
                        let detail = error
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("invalid")
                            .trim()
                            .trim_start_matches("error: ")
                            .to_string();
                        ctx.error(*loc, Problem::BadRegex, format!("bad regex `{pattern}`: {detail}"));
                    }
                }
                if !ok {
                    return None;
                }
                match RegexSet::new(&texts) {
                    Ok(set) => Some(Test::Regex(Arc::new(set))),
                    Err(error) => {
                        ctx.error(operand.loc, Problem::BadRegex, format!("bad regex set: {error}"));
                        None
                    }
                }
            }
            "cidr" => {
                let mut networks = Vec::new();
                for (text, loc) in &values {
                    match parse_network(text) {
                        Some(network) => networks.push(network),
                        None => ctx.error(
                            *loc,
                            Problem::BadCidr,
                            format!("bad CIDR `{text}` (expected e.g. 192.30.252.0/22 or 2606:50c0::/32)"),
                        ),
                    }
                }
                (networks.len() == values.len()).then_some(Test::Cidr(networks))
            }
            _ => None,
        }
    }

    /// `other_account: true`, or `other_account: <accounts or list names>`:
    /// the accounts given are trusted like the record's own (an empty list is
    /// fine: the organisation's accounts are filled in by the operator).
    fn compile_other_account(&mut self, ctx: &mut FileCtx<'_>, operand: &Node) -> Option<Test> {
        let owner = Field::parse("raw.recipientAccountId")?;
        let trusted = match &operand.value {
            NodeValue::Bool(true) => Vec::new(),
            NodeValue::Bool(false) => {
                ctx.error(
                    operand.loc,
                    Problem::BadValue,
                    "`other_account: false` is not a test; write `not: {field: {other_account: true}}`".to_string(),
                );
                return None;
            }
            _ => self
                .values(ctx, operand, "other_account", true)?
                .into_iter()
                .map(|(text, _)| text)
                .collect(),
        };
        Some(Test::OtherAccount {
            trusted: CaseInsensitiveSet::new(&trusted),
            owner,
        })
    }

    /// Operation names are checked against the catalog; string operators
    /// select catalog entries at compile time.
    fn compile_operation_test(
        &mut self,
        ctx: &mut FileCtx<'_>,
        operator: &str,
        values: &[(String, Loc)],
    ) -> Option<Test> {
        let mut set = vec![false; self.catalog.len()];
        let names: Vec<&str> = self.catalog.operations().iter().map(|info| info.id.as_str()).collect();
        for (value, loc) in values {
            let lower = value.to_ascii_lowercase();
            let selected: Vec<usize> = match operator {
                "equals" | "in" | "glob" => {
                    if lower.contains('*') {
                        self.catalog.matching(&lower).into_iter().map(usize::from).collect()
                    } else {
                        self.catalog.index_of(&lower).map(usize::from).into_iter().collect()
                    }
                }
                "contains" => select(&names, |name| name.contains(&lower)),
                "starts_with" => select(&names, |name| name.starts_with(&lower)),
                "ends_with" => select(&names, |name| name.ends_with(&lower)),
                "regex" => match regex::Regex::new(value) {
                    Ok(pattern) => select(&names, |name| pattern.is_match(name)),
                    Err(error) => {
                        ctx.error(*loc, Problem::BadRegex, format!("bad regex `{value}`: {error}"));
                        continue;
                    }
                },
                _ => {
                    ctx.error(
                        *loc,
                        Problem::BadValue,
                        format!("`{operator}` does not apply to `operation`"),
                    );
                    continue;
                }
            };
            if selected.is_empty() {
                let hint = suggest(value, names.iter().copied())
                    .map(|best| format!(" (did you mean `{best}`?)"))
                    .unwrap_or_else(|| {
                        if self.lists.is_empty() {
                            String::new()
                        } else {
                            " (lists are expanded by `in`; is the list defined?)".to_string()
                        }
                    });
                ctx.error(
                    *loc,
                    Problem::UnknownOperation,
                    format!("`{value}` matches no operation in the catalog{hint}"),
                );
            }
            for index in selected {
                set[index] = true;
            }
        }
        Some(Test::Operations(set))
    }

    fn compile_time(&mut self, ctx: &mut FileCtx<'_>, node: &Node) -> Cond {
        let Some(mut map) = ctx.map(node, "`time`") else {
            return Cond::Const(false);
        };
        let mut window = TimeWindow {
            timezone: self.default_timezone,
            between: None,
            weekdays: None,
        };
        if let Some(zone) = map.get("timezone")
            && let Some(name) = ctx.text(zone, "`timezone`")
        {
            match name.parse::<Tz>() {
                Ok(timezone) => window.timezone = timezone,
                Err(_) => ctx.error(
                    zone.loc,
                    Problem::BadTimeZone,
                    format!("unknown time zone `{name}` (use an IANA name such as Asia/Shanghai or UTC)"),
                ),
            }
        }
        if let Some(between) = map.get("between") {
            let bounds = ctx.text_list(between, "`between`");
            if bounds.len() != 2 {
                ctx.error(
                    between.loc,
                    Problem::BadTime,
                    "`between` takes two times: [\"22:00\", \"06:00\"]",
                );
            } else {
                let parsed: Vec<Option<NaiveTime>> = bounds
                    .iter()
                    .map(|(text, loc)| {
                        let time = NaiveTime::parse_from_str(text, "%H:%M")
                            .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
                            .ok();
                        if time.is_none() {
                            ctx.error(*loc, Problem::BadTime, format!("`{text}` is not a time of day (HH:MM)"));
                        }
                        time
                    })
                    .collect();
                if let [Some(start), Some(end)] = parsed[..] {
                    window.between = Some((start, end));
                }
            }
        }
        if let Some(days) = map.get("weekdays") {
            let mut weekdays = Vec::new();
            for (text, loc) in ctx.text_list(days, "`weekdays`") {
                match text.parse::<Weekday>() {
                    Ok(day) => weekdays.push(day),
                    Err(_) => ctx.error(loc, Problem::BadValue, format!("`{text}` is not a weekday (mon … sun)")),
                }
            }
            window.weekdays = Some(weekdays);
        }
        map.finish(ctx, &["between", "weekdays", "timezone"]);
        if window.between.is_none() && window.weekdays.is_none() {
            ctx.error(
                node.loc,
                Problem::BadValue,
                "`time` needs `between`, `weekdays`, or both",
            );
            return Cond::Const(false);
        }
        Cond::Time(window)
    }
}

/// `snake_case_with_underscore`: the shape of a list name.
fn looks_like_list_name(text: &str) -> bool {
    text.contains('_')
        && text.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && text
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

fn select(names: &[&str], predicate: impl Fn(&str) -> bool) -> Vec<usize> {
    names
        .iter()
        .enumerate()
        .filter(|(_, name)| predicate(name))
        .map(|(index, _)| index)
        .collect()
}
