//! The layout the README's architecture section promises, checked on every
//! test run so it cannot rot: no import cycle between the crate's top-level
//! modules, a thin `main.rs`, and no source file a newcomer has to scroll
//! through for long (`scripts/check-layout` runs these and prints the graph).
//!
//! Imports are read as text: every `crate::NAME` path (in `use` lines and in
//! code) of a file under `src/NAME/` or in `src/NAME.rs` is an arrow from its
//! top-level module to `NAME`. Comments are skipped; `super::` stays inside a
//! module, so it is never an arrow between top-level modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The top-level module a library file belongs to (`None` for the crate
/// roots and the binary's own modules).
fn top_module(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src()).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?.to_string();
    match first.as_str() {
        "lib.rs" | "main.rs" | "cli" => None,
        name => Some(name.trim_end_matches(".rs").to_string()),
    }
}

/// A file without the unit-test module at its end.
fn without_unit_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(start) => &text[..start],
        None => text,
    }
}

/// The code of a file without its comments and its `#[cfg(test)]` module.
fn code_of(text: &str) -> String {
    without_unit_tests(text)
        .lines()
        .map(|line| match line.find("//") {
            Some(start) => &line[..start],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules a piece of code names as `crate::NAME`, also inside grouped
/// imports (`use crate::{alarm::store, rules::Level}`).
fn named_modules(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut rest = code;
    while let Some(start) = rest.find("crate::") {
        let after = &rest[start + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            for item in top_level_items(group) {
                let name = leading_identifier(item.trim());
                if modules.contains(name) {
                    named.insert(name.to_string());
                }
            }
        } else {
            let name = leading_identifier(after);
            if modules.contains(name) {
                named.insert(name.to_string());
            }
        }
        rest = after;
    }
    named
}

/// The identifier `text` starts with.
fn leading_identifier(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The comma-separated items of a brace group whose `{` was just read, up
/// to its matching `}`; nested groups (`alarm::{store, chain}`) stay inside
/// their item.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..at]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

/// Arrows between top-level modules, each with the files that make it.
fn module_graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let files = rust_files(&src());
    let modules: BTreeSet<String> = files.iter().filter_map(|file| top_module(file)).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let Some(from) = top_module(file) else { continue };
        let text = std::fs::read_to_string(file).expect("a source file");
        for to in named_modules(&code_of(&text), &modules) {
            if to != from {
                let relative = file
                    .strip_prefix(src())
                    .map(|path| path.display().to_string())
                    .unwrap_or_default();
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .insert(relative);
            }
        }
        graph.entry(from).or_default();
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            self.index.insert(node, self.next);
            self.low.insert(node, self.next);
            self.next += 1;
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    component.push(member.to_string());
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph = module_graph();
    if std::env::var_os("TW_PRINT_LAYOUT").is_some() {
        for (from, edges) in &graph {
            let targets: Vec<&str> = edges.keys().map(String::as_str).collect();
            println!("{from} -> {}", targets.join(", "));
        }
    }
    let found = cycles(&graph);
    let described: Vec<String> = found
        .iter()
        .map(|component| {
            let arrows: Vec<String> = component
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|(to, _)| component.contains(to))
                        .map(move |(to, files)| {
                            format!(
                                "{from} -> {to} ({})",
                                files.iter().cloned().collect::<Vec<_>>().join(", ")
                            )
                        })
                })
                .collect();
            format!("cycle {}: {}", component.join(" / "), arrows.join("; "))
        })
        .collect();
    assert!(
        described.is_empty(),
        "import cycles between top-level modules:\n{}",
        described.join("\n")
    );
}

#[test]
fn main_is_thin() {
    let lines = std::fs::read_to_string(src().join("main.rs"))
        .expect("src/main.rs")
        .lines()
        .count();
    assert!(
        lines <= 150,
        "src/main.rs has {lines} lines: parse, set up logging, dispatch; the CLI lives in src/cli/"
    );
}

#[test]
fn no_source_file_over_800_lines_of_code() {
    let mut long = Vec::new();
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(&file).expect("a source file");
        // Unit tests at the end of a file do not count.
        let lines = without_unit_tests(&text).lines().count();
        if lines > 800 {
            long.push(format!(
                "{} ({lines} lines)",
                file.strip_prefix(src()).unwrap_or(&file).display()
            ));
        }
    }
    assert!(long.is_empty(), "split these by concern: {}", long.join(", "));
}

#[test]
fn the_checker_sees_cycles_and_grouped_imports() {
    let modules: BTreeSet<String> = ["alarm", "rules", "event"]
        .iter()
        .map(|name| name.to_string())
        .collect();
    let named = named_modules(
        "use crate::{alarm::store, rules::Level};\nlet x = crate::event::model::X; // crate::nothing",
        &modules,
    );
    assert_eq!(named, modules);
    let nested = named_modules(
        "use crate::{\n    alarm::{store, chain},\n    rules::Level,\n};",
        &modules,
    );
    assert_eq!(nested, ["alarm", "rules"].iter().map(|name| name.to_string()).collect());
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph
            .entry(from.into())
            .or_default()
            .entry(to.into())
            .or_default()
            .insert("f.rs".into());
        graph.entry(to.into()).or_default();
    }
    assert_eq!(cycles(&graph), vec![vec!["a".to_string(), "b".into(), "c".into()]]);
}
