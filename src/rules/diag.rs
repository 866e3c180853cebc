//! Load diagnostics: every problem in rule files, with `file:line:col`.
//!
//! Loaders never stop at the first problem; they push a `Diagnostic` and go
//! on, so `trailwarden rules validate` can report everything at once. A rule
//! set is only installed when the collection is empty.

use std::fmt;
use std::sync::Arc;

use super::yaml::{Loc, Node, NodeValue};

/// What kind of mistake a diagnostic reports (stable names, for tests and JSON output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    Syntax,
    UnknownKey,
    MissingKey,
    WrongType,
    BadValue,
    UnknownField,
    BadRegex,
    BadGlob,
    BadCidr,
    BadTimeZone,
    BadTime,
    BadDuration,
    UnknownList,
    UnknownMacro,
    UnknownOperation,
    UnknownRule,
    Duplicate,
    MacroCycle,
    Io,
    FailingTest,
}

/// One problem, located.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Diagnostic {
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
    pub problem: Problem,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: the problem is the whole file or directory (it cannot be read).
        if self.line == 0 {
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// A collection of diagnostics for one load.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, file: &Arc<str>, loc: Loc, problem: Problem, message: impl Into<String>) {
        self.items.push(Diagnostic {
            file: file.clone(),
            line: loc.line,
            column: loc.column,
            problem,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    /// Sorted by file, line, column, for stable output.
    pub fn sorted(mut self) -> Vec<Diagnostic> {
        self.items
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        self.items
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, item) in self.items.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

/// A file being read: its name and the diagnostics sink.
pub struct FileCtx<'a> {
    pub file: Arc<str>,
    pub diagnostics: &'a mut Diagnostics,
}

impl FileCtx<'_> {
    pub fn error(&mut self, loc: Loc, problem: Problem, message: impl Into<String>) {
        self.diagnostics.push(&self.file, loc, problem, message);
    }

    /// A required string scalar (numbers and booleans accepted as text).
    pub fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.scalar_text() {
            Some(text) => Some(text),
            None => {
                self.error(
                    node.loc,
                    Problem::WrongType,
                    format!("{what} must be a string, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    /// A list of strings; a single scalar is accepted as a one-item list.
    pub fn text_list(&mut self, node: &Node, what: &str) -> Vec<(String, Loc)> {
        match &node.value {
            NodeValue::Seq(items) => items
                .iter()
                .filter_map(|item| {
                    self.text(item, &format!("each item of {what}"))
                        .map(|text| (text, item.loc))
                })
                .collect(),
            NodeValue::Null => Vec::new(),
            _ => self
                .text(node, what)
                .map(|text| vec![(text, node.loc)])
                .unwrap_or_default(),
        }
    }

    pub fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.value {
            NodeValue::Bool(flag) => Some(*flag),
            _ => {
                self.error(
                    node.loc,
                    Problem::WrongType,
                    format!("{what} must be true or false, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    /// Open a mapping for strict reading; reports and returns `None` if the
    /// node is not a mapping.
    pub fn map<'n>(&mut self, node: &'n Node, what: &str) -> Option<MapReader<'n>> {
        match &node.value {
            NodeValue::Map(entries) => Some(MapReader::new(entries, node.loc, what)),
            _ => {
                self.error(
                    node.loc,
                    Problem::WrongType,
                    format!("{what} must be a mapping, found {}", node.kind_name()),
                );
                None
            }
        }
    }
}

/// Reads a YAML mapping key by key, then reports keys nobody asked for
/// (with a "did you mean" hint) and keys given twice.
pub struct MapReader<'n> {
    entries: &'n [(Node, Node)],
    used: Vec<bool>,
    pub loc: Loc,
    what: String,
}

impl<'n> MapReader<'n> {
    pub fn new(entries: &'n [(Node, Node)], loc: Loc, what: &str) -> MapReader<'n> {
        MapReader {
            entries,
            used: vec![false; entries.len()],
            loc,
            what: what.to_string(),
        }
    }

    /// The value of `key`, marking it used.
    pub fn get(&mut self, key: &str) -> Option<&'n Node> {
        let mut found = None;
        for (index, (candidate, value)) in self.entries.iter().enumerate() {
            if candidate.as_str() == Some(key) {
                self.used[index] = true;
                if found.is_none() {
                    found = Some(value);
                }
            }
        }
        found
    }

    /// The value of a required key; reports its absence.
    pub fn required(&mut self, ctx: &mut FileCtx<'_>, key: &str) -> Option<&'n Node> {
        let value = self.get(key);
        if value.is_none() {
            ctx.error(
                self.loc,
                Problem::MissingKey,
                format!("{} is missing required key `{key}`", self.what),
            );
        }
        value
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries
            .iter()
            .any(|(candidate, _)| candidate.as_str() == Some(key))
    }

    /// All entries, for readers that treat keys as data (field conditions).
    pub fn entries(&self) -> &'n [(Node, Node)] {
        self.entries
    }

    /// Report unused (unknown) and repeated keys.
    pub fn finish(self, ctx: &mut FileCtx<'_>, allowed: &[&str]) {
        let mut seen: Vec<&str> = Vec::new();
        for (index, (key, _)) in self.entries.iter().enumerate() {
            let name = key.scalar_text().unwrap_or_default();
            if seen.contains(&name.as_str()) {
                ctx.error(
                    key.loc,
                    Problem::Duplicate,
                    format!("key `{name}` appears twice in {}", self.what),
                );
            } else if let Some(text) = key.as_str() {
                seen.push(text);
            }
            if !self.used[index] {
                let hint = suggest(&name, allowed.iter().copied())
                    .map(|best| format!(" (did you mean `{best}`?)"))
                    .unwrap_or_default();
                ctx.error(
                    key.loc,
                    Problem::UnknownKey,
                    format!(
                        "unknown key `{name}` in {}{hint}; allowed: {}",
                        self.what,
                        allowed.join(", ")
                    ),
                );
            }
        }
    }
}

/// The closest candidate by edit distance, if it is close enough to be a typo.
pub fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(&word, &candidate.to_ascii_lowercase()), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, char_a) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, char_b) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(char_a != *char_b);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(suggest("levle", ["level", "title", "match"]), Some("level"));
        assert_eq!(suggest("zzzzzz", ["level", "title"]), None);
    }
}
