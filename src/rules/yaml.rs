//! A YAML document as a tree of nodes that remember their line and column.
//!
//! Parsing is done by serde-saphyr (a maintained, panic-free YAML parser with
//! resource budgets); this module asks it for a generic tree of `Spanned`
//! nodes, so that the rule loader can convert it field by field, collect
//! *every* problem, and report each one with `file:line:col` — including
//! problems serde cannot see, such as a bad regex or an unknown list.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A 1-based line and column in a YAML file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A YAML value with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Key order is kept; duplicate keys are reported by the loader.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// "a string", "a list" … for error messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            NodeValue::Null => "null",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Int(_) | NodeValue::Float(_) => "a number",
            NodeValue::Str(_) => "a string",
            NodeValue::Seq(_) => "a list",
            NodeValue::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(text) => Some(text),
            _ => None,
        }
    }

    /// Scalars as text (numbers and booleans printed), for values that may
    /// be written unquoted (`22:00`, `403`, `true`).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            NodeValue::Str(text) => Some(text.clone()),
            NodeValue::Int(number) => Some(number.to_string()),
            NodeValue::Float(number) => Some(number.to_string()),
            NodeValue::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            NodeValue::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The node as JSON (for inline test events and content hashes).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(flag) => Value::Bool(*flag),
            NodeValue::Int(number) => Value::from(*number),
            NodeValue::Float(number) => serde_json::Number::from_f64(*number).map_or(Value::Null, Value::Number),
            NodeValue::Str(text) => Value::String(text.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.scalar_text().unwrap_or_default(), value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A YAML syntax error, with where it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub loc: Loc,
    pub message: String,
}

/// Parse each source's text, in order, on one thread per core (each takes
/// every n-th file).
pub fn parse_sources(sources: &[(std::sync::Arc<str>, String)]) -> Vec<Result<Node, SyntaxError>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, sources.len().max(1));
    let failed = || SyntaxError {
        message: "the YAML parser failed on this file".to_string(),
        loc: Loc { line: 1, column: 1 },
    };
    let parsed: Vec<Option<Result<Node, SyntaxError>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|first| {
                scope.spawn(move || {
                    sources
                        .iter()
                        .enumerate()
                        .skip(first)
                        .step_by(threads)
                        .map(|(position, (_, text))| (position, parse(text)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut parsed: Vec<Option<Result<Node, SyntaxError>>> = sources.iter().map(|_| None).collect();
        for worker in workers {
            for (position, result) in worker.join().unwrap_or_default() {
                if let Some(slot) = parsed.get_mut(position) {
                    *slot = Some(result);
                }
            }
        }
        parsed
    });
    // A worker that panicked leaves its files unparsed: each is reported.
    parsed
        .into_iter()
        .map(|slot| slot.unwrap_or_else(|| Err(failed())))
        .collect()
}

/// Parse one YAML document into a located tree. An empty document is `Null`.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty() {
        return Ok(Node {
            value: NodeValue::Null,
            loc: Loc { line: 1, column: 1 },
        });
    }
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget());
    match serde_saphyr::from_str_with_options::<Spanned<RawNode>>(text, options) {
        Ok(spanned) => Ok(into_node(spanned)),
        Err(error) => Err(locate(text, &error)),
    }
}

/// Deepest nesting of a rule file. The parser's default (64) is deeper than
/// the stack of a thread that loads rules holds in a debug build (the
/// conversion recurses once per level); rules need about a dozen levels.
pub const MAX_DEPTH: usize = 32;

/// The parser's resource limits for rule files: its defaults, nesting lower.
fn budget() -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget
}

/// The syntax error as a person needs it: where the mistake is, which is not
/// always where the parser noticed it, and a message without parser internals.
///
/// - A tab is reported where the parser gave up on the token before it (the
///   end of the previous line): point at the tab itself.
/// - An unclosed `[` or `{` is noticed at the next line's `key:` ("illegal
///   placement of ':'"), and an unclosed quote where the next line is not
///   indented as a string continuation: point at the bracket or the quote.
/// - A breached resource limit (depth, nodes …) is named with its value and
///   the advice to split the file, instead of the parser's struct.
fn locate(text: &str, error: &serde_saphyr::Error) -> SyntaxError {
    let noticed = error
        .location()
        .map(|location| Loc {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX),
        })
        .unwrap_or(Loc { line: 1, column: 1 });
    if let serde_saphyr::Error::Budget { breach, .. } = error.without_snippet() {
        return SyntaxError {
            loc: noticed,
            message: budget_message(breach),
        };
    }
    let message = first_line(&error.to_string());
    if is_tab_error(error)
        && let Some(tab) = first_tab_from(text, noticed)
    {
        return SyntaxError {
            loc: tab,
            message: "a tab character: indent with spaces (YAML does not allow tabs here)".into(),
        };
    }
    let openings = openings(text);
    // The innermost bracket opened on an earlier line and never closed.
    let unclosed_bracket = openings
        .iter()
        .rfind(|opening| opening.is_flow() && opening.closed.is_none() && opening.at.line < noticed.line);
    if let Some(opening) = unclosed_bracket {
        return SyntaxError {
            loc: opening.at,
            message: format!(
                "`{}` is never closed (add `{}`; the parser stopped at {noticed}: {message})",
                opening.what,
                if opening.what == '[' { ']' } else { '}' }
            ),
        };
    }
    // A quoted string opened on an earlier line and still open where the
    // parser complained about a quoted scalar.
    let open_quote = openings.iter().rfind(|opening| {
        !opening.is_flow() && opening.at.line < noticed.line && opening.closed.is_none_or(|closed| closed >= noticed)
    });
    if let Some(opening) = open_quote
        && message.contains("quoted scalar")
    {
        return SyntaxError {
            loc: opening.at,
            message: format!(
                "the string opened here with `{}` is not closed on its line (the parser stopped at {noticed}: {message})",
                opening.what
            ),
        };
    }
    SyntaxError { loc: noticed, message }
}

/// Whether the parser refused a tab.
fn is_tab_error(error: &serde_saphyr::Error) -> bool {
    use serde_saphyr::granit_parser::ErrorKind;
    let serde_saphyr::Error::ExternalMessage { source, .. } = error.without_snippet() else {
        return false;
    };
    let serde_saphyr::ExternalMessageSource::Parser(scan) = source.as_ref() else {
        return false;
    };
    matches!(
        scan.kind(),
        ErrorKind::TabNotAllowed
            | ErrorKind::TabInBlockIndentation
            | ErrorKind::TabAtBlockScalarStart
            | ErrorKind::TabInIndentation
            | ErrorKind::TabInPlainScalar
    )
}

/// The first tab at or after `from`, else the first one on `from`'s line.
fn first_tab_from(text: &str, from: Loc) -> Option<Loc> {
    let mut first_on_line = None;
    for (index, line) in text.lines().enumerate() {
        let line_number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if line_number < from.line {
            continue;
        }
        for (column_index, c) in line.chars().enumerate() {
            if c != '\t' {
                continue;
            }
            let loc = Loc {
                line: line_number,
                column: u32::try_from(column_index + 1).unwrap_or(u32::MAX),
            };
            if loc >= from {
                return Some(loc);
            }
            if first_on_line.is_none() {
                first_on_line = Some(loc);
            }
        }
    }
    first_on_line
}

/// A breached parser budget, in words: which limit, its value, what to do.
fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach;
    let limits = budget();
    let split = "split it into several files in the rules directory";
    match breach {
        BudgetBreach::Depth { .. } => format!(
            "nested deeper than {} levels, the limit for one rule file; flatten it (move deep conditions into `macros`) or {split}",
            limits.max_depth
        ),
        BudgetBreach::Nodes { .. } => format!(
            "more than {} YAML values, lists and mappings, the limit for one rule file; {split}",
            limits.max_nodes
        ),
        BudgetBreach::Events { .. } => format!(
            "more than {} YAML parser events, the limit for one rule file; {split}",
            limits.max_events
        ),
        BudgetBreach::ScalarBytes { .. } => format!(
            "more than {} bytes of text in values, the limit for one rule file; {split}",
            limits.max_total_scalar_bytes
        ),
        BudgetBreach::Documents { .. } => format!(
            "more than {} YAML documents (`---`), the limit for one rule file; {split}",
            limits.max_documents
        ),
        BudgetBreach::Aliases { .. } | BudgetBreach::Anchors { .. } | BudgetBreach::AliasAnchorRatio { .. } => format!(
            "too many anchors or aliases (`&name`, `*name`; at most {} of each, and not 10 aliases per anchor), the limit for one rule file; write the values out or {split}",
            limits.max_aliases
        ),
        BudgetBreach::MergeKeys { .. } => format!(
            "more than {} merge keys (`<<`), the limit for one rule file; {split}",
            limits.max_merge_keys
        ),
        _ => format!("a YAML resource limit of the parser is exceeded; {split}"),
    }
}

/// A flow collection or quoted string as found by `openings`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Opening {
    /// `[`, `{`, `"` or `'`.
    what: char,
    at: Loc,
    /// Where it ends; `None` when it never does.
    closed: Option<Loc>,
}

impl Opening {
    fn is_flow(&self) -> bool {
        matches!(self.what, '[' | '{')
    }
}

/// Every `[`, `{` and quoted string of `text`, with where each closes, found
/// by a light scan that knows comments, quotes, block scalars and where a
/// value may start (`a: foo[1]` is text, `a: [1]` a list). It is only used to
/// explain an error the parser found, so it may be approximate.
fn openings(text: &str) -> Vec<Opening> {
    let mut found: Vec<Opening> = Vec::new();
    let mut flow: Vec<usize> = Vec::new();
    let mut quote: Option<usize> = None;
    // The indentation of the line that started a block scalar (`key: |`):
    // more indented lines are its text.
    let mut block_scalar: Option<usize> = None;
    let at = |line: usize, column: usize| Loc {
        line: u32::try_from(line + 1).unwrap_or(u32::MAX),
        column: u32::try_from(column + 1).unwrap_or(u32::MAX),
    };
    for (line_index, line) in text.lines().enumerate() {
        let indent = line.chars().take_while(|c| *c == ' ').count();
        if let Some(parent) = block_scalar {
            if quote.is_none() && (line.trim().is_empty() || indent > parent) {
                continue;
            }
            block_scalar = None;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut previous: Option<char> = None;
        let mut last_significant: Option<char> = None;
        let mut index = 0;
        while index < chars.len() {
            let c = chars[index];
            if let Some(open) = quote {
                match (found[open].what, c) {
                    ('"', '\\') => index += 1,
                    ('\'', '\'') if chars.get(index + 1) == Some(&'\'') => index += 1,
                    (what, c) if what == c => {
                        found[open].closed = Some(at(line_index, index));
                        quote = None;
                        last_significant = Some(c);
                    }
                    _ => {}
                }
                previous = Some(c);
                index += 1;
                continue;
            }
            let after_space = previous.is_none_or(char::is_whitespace);
            let value_may_start = matches!(last_significant, None | Some(':' | '-' | '?' | ',' | '[' | '{'));
            let in_flow = !flow.is_empty();
            match c {
                '#' if after_space => break,
                '"' | '\'' if value_may_start && (after_space || matches!(previous, Some('[' | '{' | ','))) => {
                    quote = Some(found.len());
                    found.push(Opening {
                        what: c,
                        at: at(line_index, index),
                        closed: None,
                    });
                }
                '[' | '{' if in_flow || (after_space && value_may_start) => {
                    flow.push(found.len());
                    found.push(Opening {
                        what: c,
                        at: at(line_index, index),
                        closed: None,
                    });
                }
                ']' | '}' if in_flow => {
                    if let Some(open) = flow.pop() {
                        found[open].closed = Some(at(line_index, index));
                    }
                }
                '|' | '>' if !in_flow && after_space && value_may_start => {
                    block_scalar = Some(indent);
                    break;
                }
                _ => {}
            }
            if !c.is_whitespace() {
                last_significant = Some(c);
            }
            previous = Some(c);
            index += 1;
        }
    }
    found
}

/// serde-saphyr renders errors with a source snippet; keep the message line.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("invalid YAML")
        .trim_start_matches("error: ");
    // The location is reported separately: drop "line 4 column 10: ".
    match line.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((position, message)) if position.contains(" column ") => message.to_string(),
        _ => line.to_string(),
    }
}

fn into_node(spanned: Spanned<RawNode>) -> Node {
    let loc = Loc {
        line: spanned.referenced.line() as u32,
        column: spanned.referenced.column() as u32,
    };
    let value = match spanned.value {
        RawNode::Null => NodeValue::Null,
        RawNode::Bool(flag) => NodeValue::Bool(flag),
        RawNode::Int(number) => NodeValue::Int(number),
        RawNode::Float(number) => NodeValue::Float(number),
        RawNode::Str(text) => NodeValue::Str(text),
        RawNode::Seq(items) => NodeValue::Seq(items.into_iter().map(into_node).collect()),
        RawNode::Map(entries) => NodeValue::Map(
            entries
                .into_iter()
                .map(|(key, value)| (into_node(key), into_node(value)))
                .collect(),
        ),
    };
    Node { value, loc }
}

/// The generic tree serde-saphyr fills; children are `Spanned`.
enum RawNode {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<RawNode>, Spanned<RawNode>)>),
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawNode, D::Error> {
        deserializer.deserialize_any(RawNodeVisitor)
    }
}

struct RawNodeVisitor;

impl<'de> Visitor<'de> for RawNodeVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<RawNode, E> {
        Ok(RawNode::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawNode, E> {
        Ok(RawNode::Int(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawNode, E> {
        Ok(match i64::try_from(value) {
            Ok(value) => RawNode::Int(value),
            Err(_) => RawNode::Str(value.to_string()),
        })
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<RawNode, E> {
        Ok(RawNode::Str(value.to_string()))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<RawNode, E> {
        Ok(RawNode::Str(value.to_string()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<RawNode, E> {
        Ok(RawNode::Float(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<RawNode, E> {
        Ok(RawNode::Str(value.to_string()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<RawNode, E> {
        Ok(RawNode::Str(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawNode>>()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<RawNode>>()? {
            let value = map.next_value::<Spanned<RawNode>>()?;
            entries.push((key, value));
        }
        Ok(RawNode::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_line_and_column() {
        let node = parse("rules:\n  - id: a\n    level: high\n").unwrap();
        let entries = node.as_map().unwrap();
        assert_eq!(entries[0].0.as_str(), Some("rules"));
        let rule = &entries[0].1.as_seq().unwrap()[0];
        let (key, value) = &rule.as_map().unwrap()[1];
        assert_eq!(key.as_str(), Some("level"));
        assert_eq!(value.loc, Loc { line: 3, column: 12 });
    }

    #[test]
    fn unquoted_times_stay_text() {
        let node = parse("between: [22:00, '06:00']\n").unwrap();
        let items = node.as_map().unwrap()[0].1.as_seq().unwrap();
        assert_eq!(items[0].scalar_text().as_deref(), Some("22:00"));
        assert_eq!(items[1].scalar_text().as_deref(), Some("06:00"));
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let error = parse("rules:\n  - id: [unclosed\n  - id: b\n").unwrap_err();
        assert_eq!(error.loc, Loc { line: 2, column: 9 }, "{error:?}");
        assert!(!error.message.is_empty());
    }

    const RULE: &str =
        "rules:\n  - id: x\n    title: X\n    level: high\n    description: d\n    tags: [a]\n    match:\n";

    #[test]
    fn a_tab_is_reported_where_it_is() {
        let error = parse("rules:\n  - id: x\n\ttitle: X\n").unwrap_err();
        assert_eq!(error.loc, Loc { line: 3, column: 1 }, "{error:?}");
        assert!(
            error.message.contains("tab") && error.message.contains("spaces"),
            "{error:?}"
        );
        let error = parse("a:\n  b: 1\n  \tc: 2\n").unwrap_err();
        assert_eq!(error.loc, Loc { line: 3, column: 3 }, "{error:?}");
    }

    #[test]
    fn an_unclosed_bracket_is_reported_where_it_opens() {
        let text = format!("{RULE}      action: [A, B\n    group_by: [x]\n");
        let error = parse(&text).unwrap_err();
        assert_eq!(error.loc, Loc { line: 8, column: 15 }, "{error:?}");
        assert!(error.message.contains("`[` is never closed"), "{error:?}");
        assert!(error.message.contains("9:13"), "where the parser stopped: {error:?}");
        let text = format!("{RULE}      action: {{any: A\n    group_by: [x]\n");
        let error = parse(&text).unwrap_err();
        assert_eq!(error.loc, Loc { line: 8, column: 15 }, "{error:?}");
        assert!(error.message.contains("`{` is never closed"), "{error:?}");
        // At the end of the file the parser already points at it.
        let error = parse("a:\n  b: [1, 2\n").unwrap_err();
        assert_eq!(error.loc, Loc { line: 2, column: 6 }, "{error:?}");
    }

    #[test]
    fn brackets_in_text_comments_and_block_scalars_are_not_blamed() {
        let text = "a: foo[1\n# [x\nd: |\n  [not a list\ne: \"[quoted\"\nb: [x\nc: 1\n";
        let error = parse(text).unwrap_err();
        assert_eq!(error.loc, Loc { line: 6, column: 4 }, "{error:?}");
        // A multi-line list that is closed is not the problem.
        let error = parse("a: [1,\n  2]\nb: c: d\n").unwrap_err();
        assert_eq!(error.loc.line, 3, "{error:?}");
        assert!(!error.message.contains("never closed"), "{error:?}");
    }

    #[test]
    fn an_unclosed_quote_is_reported_where_it_opens() {
        let error = parse("rules:\n  - id: x\n    title: \"abc\n    level: high\n").unwrap_err();
        assert_eq!(error.loc, Loc { line: 3, column: 12 }, "{error:?}");
        assert!(error.message.contains("`\"`"), "{error:?}");
    }

    #[test]
    fn resource_limits_are_named_with_their_value_and_the_advice_to_split() {
        let nested = |depth: usize| format!("a: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
        assert!(parse(&nested(MAX_DEPTH - 1)).is_ok());
        let error = parse(&nested(MAX_DEPTH + 40)).unwrap_err();
        assert!(
            error.message.contains("deeper than 32 levels") && error.message.contains("split it"),
            "{error:?}"
        );
        assert!(!error.message.contains("Depth {"), "{error:?}");
        let mut block = String::new();
        for level in 0..MAX_DEPTH + 40 {
            block.push_str(&"  ".repeat(level));
            block.push_str("k:\n");
        }
        assert!(parse(&block).unwrap_err().message.contains("deeper than 32 levels"));
        let many = format!("rules: [{}]\n", vec!["1"; 250_001].join(","));
        let error = parse(&many).unwrap_err();
        assert!(
            error.message.contains("more than 250000 YAML values")
                && error.message.contains("split it into several files"),
            "{error:?}"
        );
        assert!(!error.message.contains("Nodes {"), "{error:?}");
    }
}
