//! Embedded rule tests: sample events carried by each rule, with the
//! expected result, run by `trailwarden rules test` (and by `validate`, and
//! before a reload is installed).
//!
//! ```yaml
//! tests:
//!   - name: root key lists access keys (tencent)
//!     expect: match            # the rule matches the LAST event of the sequence
//!     events:                  # raw records in any supported shape, evaluated in order
//!       - {eventName: ListAccessKeys, ...}
//!   - name: console use is fine
//!     expect: no_match         # the rule matches none of the events
//!     file: fixtures/console.json   # or events from a file, relative to the rule file
//!   - name: burst
//!     count: 2                 # or: exactly this many matches over the sequence
//!     events: [...]
//! ```
//! Each test starts from empty state, so stateful rules are tested with short
//! sequences (a user created, then a call an hour later).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::diag::{FileCtx, Problem};
use super::state::{EngineState, StateLimits};
use super::yaml::{Loc, Node};
use super::{EvalScratch, RuleSet};
use crate::event::decode::{Decoded, decode_chunk};
use crate::event::model::AuditEvent;
use crate::event::normalize::{NormalizeContext, normalize};
use crate::event::origin::{Origin, Position};
use crate::source::framer::Framer;

/// What a test expects of its rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Expectation {
    /// The rule matches the last event.
    MatchLast,
    /// The rule matches no event.
    NoMatch,
    /// The rule matches exactly this many events.
    Count(usize),
}

#[derive(Clone, Debug)]
pub enum TestEvents {
    Inline(Vec<Value>),
    File(PathBuf),
}

/// One embedded test.
#[derive(Clone, Debug)]
pub struct RuleTest {
    pub name: String,
    pub expect: Expectation,
    pub events: TestEvents,
    /// Address lists the test brings (`ip_lists: {hosting: [203.0.113.0/24]}`),
    /// used in place of the configured ones while it runs (a test without
    /// them runs with no lists at all).
    pub ip_lists: Option<Arc<crate::iplists::IpLists>>,
    pub file: Arc<str>,
    pub loc: Loc,
}

/// Parse a rule's `tests:` list.
pub fn compile_tests(ctx: &mut FileCtx<'_>, node: &Node) -> Vec<RuleTest> {
    let Some(items) = node.as_seq() else {
        ctx.error(
            node.loc,
            Problem::WrongType,
            format!("`tests` must be a list, found {}", node.kind_name()),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(mut map) = ctx.map(item, "a rule test") else {
            continue;
        };
        let name = map.required(ctx, "name").and_then(|value| ctx.text(value, "`name`"));
        let expect_node = map.get("expect");
        let count_node = map.get("count");
        let events_node = map.get("events");
        let file_node = map.get("file");
        let lists_node = map.get("ip_lists");
        map.finish(ctx, &["name", "expect", "count", "events", "file", "ip_lists"]);
        let ip_lists = match lists_node.map(|node| test_ip_lists(ctx, node)) {
            Some(Some(lists)) => Some(Arc::new(lists)),
            Some(None) => continue,
            None => None,
        };
        let Some(name) = name else { continue };
        let expect = match (expect_node, count_node) {
            (Some(_), Some(count)) => {
                ctx.error(
                    count.loc,
                    Problem::BadValue,
                    "give either `expect` or `count`, not both",
                );
                continue;
            }
            (Some(expect), None) => match ctx.text(expect, "`expect`").as_deref() {
                Some("match") => Expectation::MatchLast,
                Some("no_match") => Expectation::NoMatch,
                Some(other) => {
                    ctx.error(
                        expect.loc,
                        Problem::BadValue,
                        format!("`expect: {other}`: use match or no_match"),
                    );
                    continue;
                }
                None => continue,
            },
            (None, Some(count)) => match count.scalar_text().and_then(|text| text.parse::<usize>().ok()) {
                Some(count) => Expectation::Count(count),
                None => {
                    ctx.error(count.loc, Problem::BadValue, "`count` takes a whole number");
                    continue;
                }
            },
            (None, None) => {
                ctx.error(
                    item.loc,
                    Problem::MissingKey,
                    format!("test `{name}` needs `expect` (match / no_match) or `count`"),
                );
                continue;
            }
        };
        let events = match (events_node, file_node) {
            (Some(events), None) => match events.as_seq() {
                Some(events) if !events.is_empty() => TestEvents::Inline(events.iter().map(Node::to_json).collect()),
                _ => {
                    ctx.error(
                        events.loc,
                        Problem::WrongType,
                        "`events` must be a non-empty list of records",
                    );
                    continue;
                }
            },
            (None, Some(file)) => {
                let Some(relative) = ctx.text(file, "`file`") else {
                    continue;
                };
                let base = Path::new(ctx.file.as_ref()).parent().unwrap_or(Path::new("."));
                let path = base.join(&relative);
                if !path.exists() {
                    ctx.error(
                        file.loc,
                        Problem::Io,
                        format!("test file `{}` does not exist", path.display()),
                    );
                    continue;
                }
                TestEvents::File(path)
            }
            _ => {
                ctx.error(
                    item.loc,
                    Problem::MissingKey,
                    format!("test `{name}` needs exactly one of `events` or `file`"),
                );
                continue;
            }
        };
        out.push(RuleTest {
            name,
            expect,
            events,
            ip_lists,
            file: ctx.file.clone(),
            loc: item.loc,
        });
    }
    out
}

/// A test's `ip_lists`: a map of list names to lists of addresses and CIDRs.
fn test_ip_lists(ctx: &mut FileCtx<'_>, node: &Node) -> Option<crate::iplists::IpLists> {
    let map = ctx.map(node, "`ip_lists`")?;
    let mut lists = Vec::new();
    for (key, value) in map.entries() {
        let name = key.scalar_text().unwrap_or_default();
        let texts: Vec<String> = match value.as_seq() {
            Some(items) => items.iter().filter_map(Node::scalar_text).collect(),
            None => {
                ctx.error(
                    value.loc,
                    Problem::WrongType,
                    format!("`ip_lists.{name}` must be a list of addresses"),
                );
                return None;
            }
        };
        lists.push((name, texts));
    }
    match crate::iplists::IpLists::from_texts(&lists) {
        Ok(lists) => Some(lists),
        Err(problem) => {
            ctx.error(node.loc, Problem::BadValue, format!("`ip_lists`: {problem}"));
            None
        }
    }
}

/// The result of one test.
#[derive(Clone, Debug)]
pub struct TestOutcome {
    pub rule: String,
    pub name: String,
    pub passed: bool,
    /// For failures: expected vs actual, event by event.
    pub detail: String,
    pub file: Arc<str>,
    pub loc: Loc,
}

/// Normalize JSON records as a test's inline events are (unit tests of rule kinds).
#[cfg(test)]
pub(crate) fn events_of(records: &[serde_json::Value]) -> Result<Vec<AuditEvent>, String> {
    let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap_or(chrono::FixedOffset::east_opt(0).expect("UTC"));
    load_events(&TestEvents::Inline(records.to_vec()), offset)
}

/// Decode and normalize test input; problems are reported as errors.
fn load_events(events: &TestEvents, naive_time_offset: chrono::FixedOffset) -> Result<Vec<AuditEvent>, String> {
    let (bytes, source): (Vec<u8>, Arc<str>) = match events {
        TestEvents::Inline(values) => (
            values
                .iter()
                .map(|value| value.to_string() + "\n")
                .collect::<String>()
                .into_bytes(),
            Arc::from("inline"),
        ),
        TestEvents::File(path) => {
            let mut reader =
                crate::source::file::open_decoded(path).map_err(|error| format!("{}: {error}", path.display()))?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut bytes)
                .map_err(|error| format!("{}: {error}", path.display()))?;
            (bytes, Arc::from(path.display().to_string()))
        }
    };
    let mut framer = Framer::new(64 << 20);
    let mut frames = Vec::new();
    framer.feed(&bytes, &mut frames);
    framer.finish(&mut frames);
    let mut context = NormalizeContext::new(chrono::DateTime::UNIX_EPOCH);
    context.naive_time_offset = naive_time_offset;
    let mut decoded = Decoded::default();
    let mut out = Vec::new();
    for frame in frames {
        decode_chunk(
            &frame.bytes,
            &Origin::new(source.clone(), Position::Line(frame.line)),
            &mut decoded,
        );
        if let Some(letter) = decoded.dead_letters.first() {
            return Err(format!("event {}: {}", letter.origin, letter.reason));
        }
        for candidate in decoded.candidates.drain(..) {
            let origin = candidate.origin.clone();
            out.push(normalize(candidate, &context).map_err(|error| format!("event {origin}: {error}"))?);
        }
    }
    if out.is_empty() {
        return Err("the test has no events".into());
    }
    Ok(out)
}

/// Run every embedded test of `set` (or of the rules whose id contains `filter`).
pub fn run_tests(set: &RuleSet, naive_time_offset: chrono::FixedOffset, filter: Option<&str>) -> Vec<TestOutcome> {
    let mut outcomes = Vec::new();
    let mut scratch = EvalScratch::default();
    let mut matches = Vec::new();
    for (position, rule) in set.rules.iter().enumerate() {
        if filter.is_some_and(|filter| !rule.id.contains(filter)) {
            continue;
        }
        for test in &rule.tests {
            let mut outcome = TestOutcome {
                rule: rule.id.clone(),
                name: test.name.clone(),
                passed: false,
                detail: String::new(),
                file: test.file.clone(),
                loc: test.loc,
            };
            let events = match load_events(&test.events, naive_time_offset) {
                Ok(events) => events,
                Err(error) => {
                    outcome.detail = format!("cannot read the test's events: {error}");
                    outcomes.push(outcome);
                    continue;
                }
            };
            // Tests are hermetic: the lists a test brings, else none (never the operator's files).
            let _lists = crate::iplists::scoped(test.ip_lists.clone().unwrap_or_default());
            let mut state = EngineState::new(StateLimits::default());
            let mut matched = Vec::with_capacity(events.len());
            for mut event in events {
                matches.clear();
                set.evaluate_with_state(&mut event, &mut state, &mut scratch, &mut matches);
                let hit = matches.iter().any(|found| found.rule as usize == position);
                matched.push((hit, event));
            }
            let count = matched.iter().filter(|(hit, _)| *hit).count();
            let last_hit = matched.last().is_some_and(|(hit, _)| *hit);
            outcome.passed = match test.expect {
                Expectation::MatchLast => last_hit,
                Expectation::NoMatch => count == 0,
                Expectation::Count(expected) => count == expected,
            };
            if !outcome.passed {
                let expected = match test.expect {
                    Expectation::MatchLast => "a match on the last event".to_string(),
                    Expectation::NoMatch => "no match".to_string(),
                    Expectation::Count(expected) => format!("{expected} matches"),
                };
                let mut detail = format!("expected {expected}, got {count} match(es):");
                let total = matched.len();
                for (index, (hit, event)) in matched.iter().enumerate() {
                    let want = match test.expect {
                        Expectation::MatchLast => Some(index + 1 == total),
                        Expectation::NoMatch => Some(false),
                        Expectation::Count(_) => None,
                    };
                    let marker = match (want, *hit) {
                        (Some(true), false) => "- missing",
                        (Some(false), true) => "+ unexpected",
                        (_, true) => "  matched",
                        (_, false) => "  no match",
                    };
                    detail.push_str(&format!(
                        "\n      {marker:<13} #{} {} {} {}.{} by {} ({}) at {}",
                        index + 1,
                        event.provider,
                        event.event_id,
                        event.service,
                        event.action,
                        event.principal_display(),
                        event.principal.kind.as_str(),
                        crate::time::timestamp(event.time),
                    ));
                }
                outcome.detail = detail;
            }
            outcomes.push(outcome);
        }
    }
    outcomes
}
