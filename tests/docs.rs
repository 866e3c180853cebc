//! The documentation (`README.md` and `docs/*.md`) against the program it
//! describes, so that it cannot quietly rot:
//!
//! - every command line in a `sh`, `bash` or `console` block that runs
//!   trailwarden names a subcommand that exists and flags its `--help`
//!   lists, and a `TRAILWARDEN__…` variable set on it names a configuration
//!   key;
//! - every `toml` block holds only configuration keys trailwarden knows,
//!   with values of the right type (a fragment may leave required values
//!   out: only unknown keys, wrong types and broken TOML are failures);
//! - every `yaml` block that is a rule file loads with the shipped lists,
//!   macros and operation catalog (`rules validate`);
//! - every relative link between markdown files points at a file that
//!   exists and, with `#anchor`, at a heading of that file.
//!
//! A block that is deliberately something else is preceded by
//! `<!-- docs-test: skip: REASON -->`. Every failure names the file and line.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use common::*;
use trailwarden::config::Settings;

/// The marker, on the last non-blank line before a fence, of a block the
/// checks leave alone; a reason must follow it.
const SKIP_MARKER: &str = "<!-- docs-test: skip";

// ---------------------------------------------------------------- markdown

/// A markdown file of the documentation, by its path relative to the repository.
struct Doc {
    /// `README.md`, `docs/cli.md`: what failure messages name.
    name: String,
    path: PathBuf,
    text: String,
}

/// `README.md` and every page under `docs/`, in name order.
fn docs() -> Vec<Doc> {
    let mut paths = vec![repo().join("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ is readable")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
        .collect();
    pages.sort();
    paths.extend(pages);
    paths
        .into_iter()
        .map(|path| Doc {
            name: path
                .strip_prefix(repo())
                .expect("inside the repository")
                .display()
                .to_string(),
            text: std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display())),
            path,
        })
        .collect()
}

/// A fenced code block.
struct Block {
    /// The info string's first word, lower-cased (`sh`, `toml`; `` for none).
    lang: String,
    /// Line number (1-based) of the opening fence.
    line: usize,
    /// Its lines, with their line numbers, indentation of the fence removed.
    lines: Vec<(usize, String)>,
    /// Preceded by the skip marker.
    skipped: bool,
}

impl Block {
    fn text(&self) -> String {
        self.lines.iter().map(|(_, line)| format!("{line}\n")).collect()
    }
}

/// An opening or closing fence: its indentation, character and length, and
/// the info string. A backtick fence's info string holds no backtick
/// (CommonMark), so inline code at the start of a line is not one.
fn fence(line: &str) -> Option<(usize, char, usize, &str)> {
    // Any indentation: a fence inside a list item is indented with it.
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let mark = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let length = rest.chars().take_while(|c| *c == mark).count();
    if length < 3 {
        return None;
    }
    let info = rest[length..].trim();
    if mark == '`' && info.contains('`') {
        return None;
    }
    Some((indent, mark, length, info))
}

/// The fenced code blocks of a markdown text. An unclosed block is reported.
fn blocks(doc: &Doc, failures: &mut Vec<String>) -> Vec<Block> {
    let mut found = Vec::new();
    let (mut last_text_line, mut last_text_number) = ("", 0);
    let mut lines = doc.text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let Some((indent, mark, length, info)) = fence(line) else {
            if !line.trim().is_empty() {
                (last_text_line, last_text_number) = (line, index + 1);
            }
            continue;
        };
        let mut block = Block {
            lang: info.split_whitespace().next().unwrap_or("").to_ascii_lowercase(),
            line: index + 1,
            lines: Vec::new(),
            skipped: last_text_line.trim_start().starts_with(SKIP_MARKER),
        };
        if block.skipped {
            let reason = last_text_line
                .trim()
                .trim_start_matches(SKIP_MARKER)
                .trim_end_matches("-->");
            if reason
                .trim_matches(|c: char| c.is_whitespace() || c == ':' || c == '—' || c == '-')
                .is_empty()
            {
                failures.push(format!(
                    "{}:{}: a skipped block must say why (`{SKIP_MARKER}: REASON -->`)",
                    doc.name, last_text_number
                ));
            }
        }
        let mut closed = false;
        for (index, line) in lines.by_ref() {
            if let Some((_, close_mark, close_length, close_info)) = fence(line)
                && close_mark == mark
                && close_length >= length
                && close_info.is_empty()
            {
                closed = true;
                break;
            }
            let unindented = line
                .get(indent.min(line.len() - line.trim_start().len())..)
                .unwrap_or("");
            block.lines.push((index + 1, unindented.to_string()));
        }
        if !closed {
            failures.push(format!("{}:{}: code block never closed", doc.name, block.line));
        }
        (last_text_line, last_text_number) = ("", 0);
        found.push(block);
    }
    found
}

/// The text outside code blocks and inline code, with everything inside
/// them blanked (line breaks kept, so offsets map to the same lines).
fn prose(doc: &Doc) -> String {
    blank_code_spans(&prose_keep_spans(&doc.text))
}

/// The text outside code blocks (inline code kept), code blocks blanked
/// to empty lines.
fn prose_keep_spans(text: &str) -> String {
    let mut out = String::new();
    let mut open: Option<(char, usize)> = None;
    for line in text.lines() {
        match (open, fence(line)) {
            (None, Some((_, mark, length, _))) => open = Some((mark, length)),
            (Some((mark, length)), Some((_, close_mark, close_length, info)))
                if close_mark == mark && close_length >= length && info.is_empty() =>
            {
                open = None
            }
            (None, None) => out.push_str(line),
            _ => {}
        }
        out.push('\n');
    }
    out
}

/// Inline code spans (`` `x` ``, ``` ``x`` ```) replaced by spaces; a span
/// may cross a line break but not a blank line.
fn blank_code_spans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<char> = chars.clone();
    let mut at = 0;
    while at < chars.len() {
        if chars[at] != '`' {
            at += 1;
            continue;
        }
        let run = chars[at..].iter().take_while(|c| **c == '`').count();
        let mut search = at + run;
        let mut end = None;
        while search < chars.len() {
            if chars[search] == '\n' && chars.get(search + 1) == Some(&'\n') {
                break;
            }
            if chars[search] == '`' {
                let close = chars[search..].iter().take_while(|c| **c == '`').count();
                if close == run {
                    end = Some(search + close);
                    break;
                }
                search += close;
            } else {
                search += 1;
            }
        }
        match end {
            Some(end) => {
                for c in &mut out[at..end] {
                    if *c != '\n' {
                        *c = ' ';
                    }
                }
                at = end;
            }
            None => at += run,
        }
    }
    out.into_iter().collect()
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// GitHub's anchor for a heading: markdown links reduced to their text,
/// lower case, punctuation removed (letters, digits, `-`, `_` and spaces
/// kept), spaces turned into `-`.
fn anchor(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // [text](target) → text
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after
            .find("](")
            .and_then(|close| after[close..].find(')').map(|end| (close, close + end)))
        {
            Some((close, end)) => {
                text.push_str(&rest[..open]);
                text.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown text's ATX headings (outside code blocks);
/// repeated headings get `-1`, `-2` … as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut found = BTreeSet::new();
    // Inline code is heading text: only code blocks are left out.
    for line in prose_keep_spans(text).lines() {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let slug = anchor(line[hashes..].trim().trim_end_matches('#').trim());
        let count = seen.entry(slug.clone()).or_insert(0);
        found.insert(if *count == 0 {
            slug.clone()
        } else {
            format!("{slug}-{count}")
        });
        *count += 1;
    }
    found
}

/// Inline links and images `[text](target)` / `![alt](target "title")` of
/// the prose: (line, target).
fn links(doc: &Doc) -> Vec<(usize, String)> {
    let text = prose(doc);
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("](") {
        let start = from + at + 2;
        from = start;
        // The link text must open with `[` on the same paragraph.
        let before = &text[..start - 2];
        let Some(open) = before.rfind('[') else { continue };
        if before[open..].contains("\n\n") {
            continue;
        }
        let Some(close) = text[start..].find(')') else { continue };
        let inside = text[start..start + close].trim();
        let target = inside.split_whitespace().next().unwrap_or("");
        if !target.is_empty() {
            found.push((line_of(&text, start), target.to_string()));
        }
    }
    found
}

// ---------------------------------------------------------------- shell

/// A word or an operator of a shell command line.
#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    /// `|`, `||`, `&&`, `;`, `&`, `(`, `)`: ends a simple command.
    Separator,
    /// `<`, `>`, `>>`, `2>`, `&>`: the next word is a file.
    Redirect,
}

/// Split a shell line into words (quotes removed, backslash escapes
/// applied) and operators; `#` at the start of a word begins a comment.
fn tokenize(line: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let finish = |word: &mut String, in_word: &mut bool, tokens: &mut Vec<Token>| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(next) = chars.next() {
                                word.push(next);
                            }
                        }
                        _ => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => finish(&mut word, &mut in_word, &mut tokens),
            '|' | ';' | '(' | ')' => {
                finish(&mut word, &mut in_word, &mut tokens);
                if c == '|' && chars.peek() == Some(&'|') {
                    chars.next();
                }
                tokens.push(Token::Separator);
            }
            '&' => {
                if chars.peek() == Some(&'>') {
                    chars.next();
                    finish(&mut word, &mut in_word, &mut tokens);
                    tokens.push(Token::Redirect);
                } else {
                    finish(&mut word, &mut in_word, &mut tokens);
                    if chars.peek() == Some(&'&') {
                        chars.next();
                    }
                    tokens.push(Token::Separator);
                }
            }
            '<' | '>' => {
                // `2>`: the digits are the descriptor, not a word.
                if in_word && word.chars().all(|c| c.is_ascii_digit()) {
                    word.clear();
                    in_word = false;
                }
                finish(&mut word, &mut in_word, &mut tokens);
                if chars.peek() == Some(&'>') {
                    chars.next();
                }
                if chars.peek() == Some(&'&') {
                    // `2>&1`: a descriptor, not a file.
                    chars.next();
                    while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
                        chars.next();
                    }
                    continue;
                }
                tokens.push(Token::Redirect);
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    finish(&mut word, &mut in_word, &mut tokens);
    tokens
}

/// Programs that run the command after their own options.
const WRAPPERS: [&str; 9] = [
    "time",
    "/usr/bin/time",
    "env",
    "nohup",
    "exec",
    "sudo",
    "valgrind",
    "timeout",
    "strace",
];

/// A run of trailwarden found on a command line.
#[derive(Debug, PartialEq)]
struct Invocation {
    /// Its arguments (after `trailwarden`, or after `cargo run … --`).
    args: Vec<String>,
    /// `TRAILWARDEN__…` variables set for it (name, value).
    variables: Vec<(String, String)>,
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn is_trailwarden(word: &str) -> bool {
    word == "trailwarden" || word.ends_with("/trailwarden")
}

/// The runs of trailwarden on one (joined) command line.
fn invocations(line: &str) -> Vec<Invocation> {
    let mut found = Vec::new();
    let mut command: Vec<String> = Vec::new();
    let mut tokens = tokenize(line).into_iter().peekable();
    loop {
        let token = tokens.next();
        match token {
            Some(Token::Word(word)) => {
                command.push(word);
                continue;
            }
            Some(Token::Redirect) => {
                // The file it names is not an argument.
                if let Some(Token::Word(_)) = tokens.peek() {
                    tokens.next();
                }
                continue;
            }
            Some(Token::Separator) | None => {}
        }
        if let Some(invocation) = invocation(&command) {
            found.push(invocation);
        }
        command.clear();
        if token.is_none() {
            return found;
        }
    }
}

/// A simple command's words as a run of trailwarden, if it is one.
fn invocation(words: &[String]) -> Option<Invocation> {
    let mut variables = Vec::new();
    let mut at = 0;
    while at < words.len() && is_assignment(&words[at]) {
        let (name, value) = words[at].split_once('=').expect("an assignment");
        if name.starts_with("TRAILWARDEN__") {
            variables.push((name.to_string(), value.to_string()));
        }
        at += 1;
    }
    let program = words.get(at)?;
    if is_trailwarden(program) {
        return Some(Invocation {
            args: words[at + 1..].to_vec(),
            variables,
        });
    }
    if program == "cargo" && words.get(at + 1).is_some_and(|word| word == "run") {
        let args = match words[at + 2..].iter().position(|word| word == "--") {
            Some(dash) => words[at + 2 + dash + 1..].to_vec(),
            None => Vec::new(),
        };
        return Some(Invocation { args, variables });
    }
    if WRAPPERS.contains(&program.as_str()) {
        let inner = words[at + 1..].iter().position(|word| is_trailwarden(word))?;
        let mut rest = invocation(&words[at + 1 + inner..])?;
        variables.append(&mut rest.variables);
        rest.variables = variables;
        return Some(rest);
    }
    None
}

/// The command lines of a shell block: continuation lines (`\` at the
/// end) joined, each with the line it starts on. In a `console` block only
/// lines after a `$ ` prompt are commands (the rest is their output).
fn command_lines(block: &Block) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in &block.lines {
        let text = match &current {
            Some(_) => line.as_str(),
            None if block.lang == "console" => match line.trim_start().strip_prefix("$ ") {
                Some(command) => command,
                None => continue,
            },
            None => line.as_str(),
        };
        let (text, continues) = match text.trim_end().strip_suffix('\\') {
            Some(text) => (text, true),
            None => (text, false),
        };
        let (start, mut joined) = current.take().unwrap_or((*number, String::new()));
        joined.push_str(text);
        joined.push(' ');
        if continues {
            current = Some((start, joined));
        } else {
            found.push((start, joined));
        }
    }
    if let Some(last) = current {
        found.push(last);
    }
    found
}

/// `--help` of the binary's command paths, asked once each.
#[derive(Default)]
struct Helps {
    outputs: HashMap<Vec<String>, Result<String, String>>,
}

impl Helps {
    /// The help text of `path` (`[]`, `["alarms"]`, `["alarms", "list"]`),
    /// or why it could not be had.
    fn of(&mut self, path: &[String]) -> Result<String, String> {
        self.outputs
            .entry(path.to_vec())
            .or_insert_with(|| {
                let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
                args.push("--help");
                let output = Trailwarden::new().run(&args);
                if output.status.success() {
                    Ok(stdout(&output))
                } else {
                    Err(format!(
                        "`trailwarden {}` failed ({}): {}",
                        args.join(" "),
                        output.status,
                        stderr(&output).trim()
                    ))
                }
            })
            .clone()
    }

    /// The subcommands `path` lists under `Commands:`.
    fn subcommands(&mut self, path: &[String]) -> BTreeSet<String> {
        let Ok(help) = self.of(path) else {
            return BTreeSet::new();
        };
        help.lines()
            .skip_while(|line| line.trim() != "Commands:")
            .skip(1)
            .take_while(|line| !line.trim().is_empty())
            .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
            .filter_map(|line| line.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }
}

/// Whether a help text lists `--flag`, and if so whether the flag takes a
/// value (`--db <FILE>` somewhere; prose may mention it without one).
fn flag_in_help(help: &str, flag: &str) -> Option<bool> {
    let mut found = None;
    let mut from = 0;
    while let Some(at) = help[from..].find(flag) {
        let end = from + at + flag.len();
        let before = help[..from + at].chars().next_back();
        let after = help[end..].chars().next();
        from = end;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '-')
            || after.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
        {
            continue;
        }
        let takes_value = help[end..].starts_with(" <") || help[end..].starts_with("=<");
        found = Some(found.unwrap_or(false) || takes_value);
    }
    found
}

/// Check one run of trailwarden: the subcommand path its leading words make
/// answers `--help`, and every `--flag` is in the help of the command it was
/// given to. Problems are returned.
fn check_invocation(helps: &mut Helps, invocation: &Invocation) -> Vec<String> {
    let mut problems = Vec::new();
    let mut path: Vec<String> = Vec::new();
    // The first word after the path that is not a subcommand, once read.
    let mut after_path: Option<&String> = None;
    let mut flags: Vec<(String, Vec<String>)> = Vec::new();
    let mut args = invocation.args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if let Some(flag) = arg.strip_prefix("--") {
            let name = format!("--{}", flag.split('=').next().unwrap_or(flag));
            let takes_value = helps
                .of(&path)
                .ok()
                .and_then(|help| flag_in_help(&help, &name))
                .unwrap_or(false);
            flags.push((name, path.clone()));
            if takes_value && !arg.contains('=') {
                args.next();
            }
            continue;
        }
        if arg.starts_with('-') && arg.len() > 1 {
            continue;
        }
        if after_path.is_none() && helps.subcommands(&path).contains(arg) {
            path.push(arg.clone());
        } else {
            after_path.get_or_insert(arg);
        }
    }
    // A command group (trailwarden itself, `alarms`, `store` …) runs nothing
    // without one of its subcommands.
    let asks_help = flags.iter().any(|(flag, _)| flag == "--help" || flag == "--version");
    let group = helps.subcommands(&path);
    if !group.is_empty() && !asks_help {
        problems.push(format!(
            "`trailwarden {}`: {} (`trailwarden {}` has: {})",
            invocation.args.join(" "),
            match after_path {
                Some(word) => format!("`{word}` is not a subcommand"),
                None => "no subcommand".to_string(),
            },
            path.join(" "),
            group
                .into_iter()
                .filter(|name| name != "help")
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Err(error) = helps.of(&path) {
        problems.push(error);
        return problems;
    }
    // A flag belongs to the command it follows: the whole path, or a
    // shorter one when a subcommand comes after it (`--config x run`).
    for (flag, command) in &flags {
        let help = helps.of(command).unwrap_or_default();
        if flag_in_help(&help, flag).is_none() {
            problems.push(format!(
                "`trailwarden {}`: `{flag}` is not an option of `trailwarden {}` (see its --help)",
                invocation.args.join(" "),
                command.join(" ")
            ));
        }
    }
    for (name, value) in &invocation.variables {
        if let Err(error) = Settings::from_sources("docs", "", &[(name.clone(), value.clone())]) {
            let message = error.to_string();
            if is_key_or_type_error(&message) {
                problems.push(format!("`{name}={value}`: {message}"));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------- configuration

/// A configuration error that is the documentation's mistake whatever the
/// fragment leaves out: a key trailwarden does not have, a value of the
/// wrong type, or text that is not TOML. These come from reading the file
/// into its raw form, before any value is validated; the validation's
/// messages (a broker missing, an unset `*_env` variable, a placeholder
/// hash) name a key in backquotes and are not failures here.
fn is_key_or_type_error(message: &str) -> bool {
    [
        "unknown field `",
        "invalid type: ",
        "invalid value: ",
        "unknown variant `",
        "TOML parse error",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

// ---------------------------------------------------------------- the tests

/// Failures as one message, a line each.
fn report(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} {what}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn commands_in_the_docs_name_real_subcommands_and_flags() {
    let mut failures = Vec::new();
    let mut helps = Helps::default();
    let mut checked = 0;
    for doc in docs() {
        for block in blocks(&doc, &mut failures) {
            if block.skipped || !["sh", "bash", "console", "shell"].contains(&block.lang.as_str()) {
                continue;
            }
            for (line, command) in command_lines(&block) {
                for invocation in invocations(&command) {
                    checked += 1;
                    for problem in check_invocation(&mut helps, &invocation) {
                        failures.push(format!("{}:{line} (block at line {}): {problem}", doc.name, block.line));
                    }
                }
            }
        }
    }
    report("wrong commands in the documentation", &failures);
    assert!(
        checked >= 20,
        "only {checked} trailwarden command lines found in the documentation: is the parser broken?"
    );
}

/// The commands of a table whose first column is `command` (the command
/// line reference): each code span of a row's first cell, with the optional
/// brackets and `\|` alternatives of its synopsis taken apart, as the
/// arguments of a run. (line, arguments)
fn command_table_rows(doc: &Doc) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    let mut in_table = false;
    for (index, line) in doc.text.lines().enumerate() {
        let cells: Vec<&str> = line.split(" | ").collect();
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if cells[0].trim_start_matches('|').trim() == "command" {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        for (span, _) in cells[0].split('`').skip(1).zip(0..).filter(|(_, at)| at % 2 == 0) {
            let args = span
                .replace("\\|", " ")
                .replace(['[', ']'], " ")
                .split_whitespace()
                .map(str::to_string)
                .collect();
            found.push((index + 1, args));
        }
    }
    found
}

#[test]
fn the_command_reference_names_real_subcommands_and_flags() {
    let mut failures = Vec::new();
    let mut helps = Helps::default();
    let mut checked = 0;
    for doc in docs() {
        for (line, args) in command_table_rows(&doc) {
            checked += 1;
            let invocation = Invocation {
                args,
                variables: Vec::new(),
            };
            for problem in check_invocation(&mut helps, &invocation) {
                failures.push(format!("{}:{line} (command table): {problem}", doc.name));
            }
        }
    }
    report("wrong commands in the command reference", &failures);
    assert!(
        checked >= 30,
        "only {checked} commands found in the command table: is the parser broken?"
    );
}

#[test]
fn toml_blocks_hold_only_known_configuration_keys() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in docs() {
        for block in blocks(&doc, &mut failures) {
            if block.skipped || block.lang != "toml" {
                continue;
            }
            checked += 1;
            let origin = format!("{}:{}", doc.name, block.line);
            if let Err(error) = Settings::from_toml(&origin, &block.text(), false) {
                let message = error.to_string();
                if is_key_or_type_error(&message) {
                    failures.push(format!("{origin} (toml block): {message}"));
                }
            }
        }
    }
    report("configuration blocks with keys trailwarden does not know", &failures);
    assert!(checked >= 3, "only {checked} toml blocks found: is the parser broken?");
}

/// Whether a YAML block is a rule file: a top-level `rules:` section whose
/// entries are rules (`- id:`), not an override file (`- rule:`, `append:`).
fn is_rule_file(block: &Block) -> bool {
    let lines: Vec<&str> = block.lines.iter().map(|(_, line)| line.as_str()).collect();
    lines.contains(&"rules:")
        && lines.iter().any(|line| line.starts_with("  - id: "))
        && !lines
            .iter()
            .any(|line| line.starts_with("  - rule: ") || line.trim_start().starts_with("append:"))
}

/// The shipped `lists.yaml` without the lists and macros `defined` names (a
/// documentation block may show how a shipped one is written).
fn shipped_lists_without(defined: &BTreeSet<String>) -> String {
    let text = std::fs::read_to_string(rules_dir().join("lists.yaml")).expect("rules/lists.yaml");
    let mut out = String::new();
    let mut dropping = false;
    for line in text.lines() {
        if let Some(entry) = line
            .strip_prefix("  - list: ")
            .or_else(|| line.strip_prefix("  - macro: "))
        {
            dropping = defined.contains(entry.trim());
        } else if !line.starts_with("   ") && !line.trim().is_empty() {
            dropping = false;
        }
        if !dropping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn rule_files_in_the_docs_load() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in docs() {
        for block in blocks(&doc, &mut failures) {
            if block.skipped || !["yaml", "yml"].contains(&block.lang.as_str()) || !is_rule_file(&block) {
                continue;
            }
            checked += 1;
            let defined: BTreeSet<String> = block
                .lines
                .iter()
                .filter_map(|(_, line)| {
                    line.strip_prefix("  - list: ")
                        .or_else(|| line.strip_prefix("  - macro: "))
                })
                .map(|name| name.trim().to_string())
                .collect();
            let dir = tempfile::tempdir().expect("a temporary directory");
            std::fs::copy(rules_dir().join("operations.yaml"), dir.path().join("operations.yaml"))
                .expect("copying the operation catalog");
            std::fs::write(dir.path().join("lists.yaml"), shipped_lists_without(&defined)).unwrap();
            // Blank lines keep the block's lines where they are in the doc.
            let file = dir.path().join("doc.yaml");
            std::fs::write(&file, "\n".repeat(block.line) + &block.text()).unwrap();
            let output = Trailwarden::new().run(&["rules", "validate", &dir.path().display().to_string()]);
            if !output.status.success() {
                let problems = stdout(&output) + &stderr(&output);
                let problems = problems.replace(&file.display().to_string(), &doc.name);
                failures.push(format!(
                    "{}:{} (rule file block) does not load:\n{}",
                    doc.name,
                    block.line,
                    problems.trim()
                ));
            }
        }
    }
    report("rule blocks that do not load", &failures);
    assert!(checked >= 2, "only {checked} rule files found in the documentation");
}

#[test]
fn relative_links_point_at_files_and_headings_that_exist() {
    let mut failures = Vec::new();
    let mut headings: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let mut checked = 0;
    for doc in docs() {
        for (line, target) in links(&doc) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                doc.path.clone()
            } else {
                doc.path.parent().expect("a directory").join(file)
            };
            if !path.exists() {
                failures.push(format!(
                    "{}:{line}: link to `{target}`: {} does not exist",
                    doc.name, file
                ));
                continue;
            }
            let Some(fragment) = fragment else { continue };
            if path.extension().is_none_or(|extension| extension != "md") {
                continue;
            }
            let known = headings.entry(path.clone()).or_insert_with(|| {
                anchors(&std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display())))
            });
            if !known.contains(fragment) {
                failures.push(format!(
                    "{}:{line}: link to `{target}`: no heading with anchor `#{fragment}` in {} (it has: {})",
                    doc.name,
                    if file.is_empty() { doc.name.as_str() } else { file },
                    known.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    report("broken links in the documentation", &failures);
    assert!(
        checked >= 30,
        "only {checked} relative links found: is the parser broken?"
    );
}

#[test]
fn every_docs_page_is_linked_from_the_readme() {
    let readme = docs().into_iter().next().expect("README.md first");
    let linked: BTreeSet<String> = links(&readme)
        .into_iter()
        .map(|(_, target)| target.split('#').next().unwrap_or("").to_string())
        .collect();
    let missing: Vec<String> = docs()
        .into_iter()
        .skip(1)
        .map(|doc| doc.name)
        .filter(|name| !linked.contains(name))
        .collect();
    assert!(missing.is_empty(), "README.md links no page {missing:?}");
}

// ---------------------------------------------------------------- the checker itself

#[test]
fn anchors_follow_github() {
    assert_eq!(anchor("Remarks, assets and IP types"), "remarks-assets-and-ip-types");
    assert_eq!(anchor("Access-key masking"), "access-key-masking");
    assert_eq!(anchor("HTTP API"), "http-api");
    assert_eq!(anchor("`store.path` and [links](x.md)"), "storepath-and-links");
    let found = anchors("# A\n\n```\n# not a heading\n```\n\n## A\n### B b\n");
    assert_eq!(found, ["a", "a-1", "b-b"].into_iter().map(String::from).collect());
}

#[test]
fn command_lines_are_read_like_a_shell() {
    let words = |args: &[&str]| args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>();
    assert_eq!(
        invocations(
            "TRAILWARDEN__STORE__PATH=/tmp/x.db ./target/release/trailwarden alarms list --level high | head # --not"
        ),
        vec![Invocation {
            args: words(&["alarms", "list", "--level", "high"]),
            variables: vec![("TRAILWARDEN__STORE__PATH".into(), "/tmp/x.db".into())],
        }]
    );
    assert_eq!(
        invocations("/usr/bin/time -f \"%e s\" target/debug/trailwarden replay --format jsonl a.json > /dev/null 2>&1"),
        vec![Invocation {
            args: words(&["replay", "--format", "jsonl", "a.json"]),
            variables: vec![],
        }]
    );
    assert_eq!(
        invocations("cargo run --release -- run --once && echo trailwarden; grep trailwarden log"),
        vec![Invocation {
            args: words(&["run", "--once"]),
            variables: vec![],
        }]
    );
    assert_eq!(invocations("cargo build --release"), vec![]);
    assert_eq!(
        invocations("trailwarden alarms set-status 42 processed --reason \"a # b\""),
        vec![Invocation {
            args: words(&["alarms", "set-status", "42", "processed", "--reason", "a # b"]),
            variables: vec![],
        }]
    );
    let block = Block {
        lang: "console".into(),
        line: 1,
        lines: vec![
            (2, "$ trailwarden store verify \\".into()),
            (3, "    --head 1:ab".into()),
            (4, "chain ok".into()),
        ],
        skipped: false,
    };
    assert_eq!(
        command_lines(&block),
        vec![(2, "trailwarden store verify      --head 1:ab ".into())]
    );
}

#[test]
fn a_wrong_flag_or_subcommand_is_caught() {
    let mut helps = Helps::default();
    let check = |helps: &mut Helps, line: &str| {
        let invocation = invocations(line).pop().expect("an invocation");
        check_invocation(helps, &invocation)
    };
    assert_eq!(
        check(&mut helps, "trailwarden alarms list --level high --db x.db"),
        Vec::<String>::new()
    );
    assert_eq!(
        check(&mut helps, "trailwarden --config c.toml run --once"),
        Vec::<String>::new()
    );
    let problems = check(&mut helps, "trailwarden alarms list --levle high");
    assert!(problems.len() == 1 && problems[0].contains("--levle"), "{problems:?}");
    let problems = check(&mut helps, "trailwarden alarm list");
    assert!(
        problems.len() == 1 && problems[0].contains("`alarm` is not a subcommand"),
        "{problems:?}"
    );
    let problems = check(&mut helps, "trailwarden store verfy");
    assert!(
        problems.len() == 1 && problems[0].contains("`verfy` is not a subcommand"),
        "{problems:?}"
    );
    assert_eq!(check(&mut helps, "trailwarden store --help"), Vec::<String>::new());
    let problems = check(&mut helps, "TRAILWARDEN__STORE__PAHT=x trailwarden run --once");
    assert!(problems.len() == 1 && problems[0].contains("PAHT"), "{problems:?}");
}

#[test]
fn an_unknown_configuration_key_is_caught() {
    let error = Settings::from_toml("t", "[store]\npaht = \"x\"\n", false)
        .unwrap_err()
        .to_string();
    assert!(is_key_or_type_error(&error), "{error}");
    let error = Settings::from_toml("t", "[store]\nsamples_per_alarm = \"ten\"\n", false)
        .unwrap_err()
        .to_string();
    assert!(is_key_or_type_error(&error), "{error}");
    // A fragment that leaves a required value out is not the docs' mistake.
    let error = Settings::from_toml("t", "[source]\nkind = \"kafka\"\n", false)
        .unwrap_err()
        .to_string();
    assert!(!is_key_or_type_error(&error), "{error}");
}

#[test]
fn a_skipped_block_says_why() {
    let doc = |text: &str| Doc {
        name: "x.md".into(),
        path: PathBuf::from("x.md"),
        text: text.into(),
    };
    let mut failures = Vec::new();
    let found = blocks(
        &doc("<!-- docs-test: skip: an nginx snippet -->\n\n```toml\na = 1\n```\n\n```toml\nb = 2\n```\n"),
        &mut failures,
    );
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!(
        found.iter().map(|block| block.skipped).collect::<Vec<_>>(),
        [true, false]
    );
    assert_eq!(found[1].line, 7);
    assert_eq!(found[1].lines, vec![(8, "b = 2".to_string())]);
    blocks(&doc("<!-- docs-test: skip -->\n```toml\na = 1\n```\n"), &mut failures);
    assert!(
        failures.len() == 1 && failures[0].starts_with("x.md:1:"),
        "{failures:?}"
    );
    blocks(&doc("```sh\ntrailwarden run\n"), &mut failures);
    assert!(
        failures.len() == 2 && failures[1].contains("never closed"),
        "{failures:?}"
    );
}

#[test]
fn the_readme_example_rule_is_the_shipped_one() {
    let readme = docs().into_iter().next().expect("README.md first");
    let mut failures = Vec::new();
    let block = blocks(&readme, &mut failures)
        .into_iter()
        .find(|block| block.lang == "yaml" && is_rule_file(block))
        .expect("the README shows a rule");
    let shipped = std::fs::read_to_string(rules_dir().join("access_keys.yaml")).expect("rules/access_keys.yaml");
    let rule = block.text().replacen("rules:\n", "", 1);
    assert!(
        shipped.contains(&rule),
        "README.md:{}: the example rule is no longer the one in rules/access_keys.yaml (the README says it ships there):\n{rule}",
        block.line
    );
}
