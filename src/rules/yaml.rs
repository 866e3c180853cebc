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

/// Parse one YAML document into a located tree. An empty document is `Null`.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty() {
        return Ok(Node {
            value: NodeValue::Null,
            loc: Loc { line: 1, column: 1 },
        });
    }
    match serde_saphyr::from_str::<Spanned<RawNode>>(text) {
        Ok(spanned) => Ok(into_node(spanned)),
        Err(error) => {
            let loc = error
                .location()
                .map(|location| Loc {
                    line: location.line() as u32,
                    column: location.column() as u32,
                })
                .unwrap_or(Loc { line: 1, column: 1 });
            Err(SyntaxError {
                loc,
                message: first_line(&error.to_string()),
            })
        }
    }
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
        assert!(error.loc.line >= 2, "{error:?}");
        assert!(!error.message.is_empty());
    }
}
