//! Conditions: the `match` tree of a rule, compiled once.
//!
//! YAML form (see docs/rules.md):
//! ```yaml
//! match:
//!   all:
//!     - principal.kind: root                  # equals (case-insensitive)
//!     - operation: [iam.user.create, high_risk_operations]   # in list (list names expand)
//!     - user_agent: {contains: [kali, pentoo]}
//!     - source_ip: {cidr: github_hook_ranges}
//!     - raw.requestParameters.ConsoleLogin: {gte: 1}
//!     - not: {call_method: console}
//!     - macro: off_hours
//!     - time: {between: ["22:00", "06:00"], weekdays: [mon, tue], timezone: Asia/Shanghai}
//! ```
//! A mapping with several entries is an implicit `all`.
//!
//! This file holds the compiled form and its evaluation; `compile.rs` turns
//! YAML nodes into it, with every problem located.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use globset::GlobSet;

use crate::text::starts_with_ignore_case as prefix_ignore_case;
use ipnet::IpNet;
use regex::RegexSet;

mod compile;
mod contains;

pub use compile::{CompileEnv, ListDef, MacroDef};

use super::field::{Field, Val};
use super::operations::OpIndex;
use crate::event::model::AuditEvent;
use crate::text::{CaseInsensitiveSet, ends_with_ignore_case, starts_with_ignore_case};

/// A compiled condition.
#[derive(Clone, Debug)]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Test {
        field: Field,
        test: Test,
    },
    Time(TimeWindow),
    Const(bool),
    /// A Sigma rule's detection item, evaluated with Sigma's semantics.
    Sigma(Arc<crate::rules::sigma::matcher::Item>),
}

/// A compiled comparison on one field's values (true when any value passes).
#[derive(Clone, Debug)]
pub enum Test {
    /// equals / in: ASCII-case-insensitive, numbers compared numerically.
    In {
        texts: CaseInsensitiveSet,
        numbers: Vec<f64>,
    },
    Contains(Arc<contains::ContainsSet>),
    StartsWith(Vec<String>),
    EndsWith(Vec<String>),
    Glob(Arc<GlobTest>),
    Regex(Arc<RegexSet>),
    Cidr(Vec<IpNet>),
    Exists(bool),
    Compare(Comparison, f64),
    /// Operation tests compile to the set of matching catalog entries.
    Operations(Vec<bool>),
    /// `other_account`: the value names an account (an ARN's account, a
    /// 12-digit AWS id, a Tencent `uin/…`, a Huawei `domain/…`) that is not the
    /// record's owner account (`owner`: CloudTrail's `recipientAccountId`,
    /// else the event's account) and not one of `trusted`.
    OtherAccount {
        trusted: CaseInsensitiveSet,
        owner: Field,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

/// A time-of-day and weekday window on the event's own time, in a zone.
#[derive(Clone, Debug)]
pub struct TimeWindow {
    pub timezone: Tz,
    /// Start inclusive, end exclusive; wraps midnight when start > end.
    pub between: Option<(NaiveTime, NaiveTime)>,
    pub weekdays: Option<Vec<Weekday>>,
}

impl TimeWindow {
    pub fn contains(&self, time: DateTime<Utc>) -> bool {
        let local = time.with_timezone(&self.timezone);
        if let Some(weekdays) = &self.weekdays
            && !weekdays.contains(&local.weekday())
        {
            return false;
        }
        if let Some((start, end)) = self.between {
            let now = NaiveTime::from_hms_opt(local.hour(), local.minute(), local.second()).unwrap_or_default();
            let inside = if start <= end {
                now >= start && now < end
            } else {
                now >= start || now < end
            };
            if !inside {
                return false;
            }
        }
        true
    }
}

/// A `glob` list. Most texts a rule's globs test share none of their
/// literal prefixes (the text before a glob's first metacharacter:
/// `arn:aws:sts::` of `arn:aws:sts::*:assumed-role/*/i-*`), and comparing
/// those costs a fraction of running the globs; an ASCII text that starts
/// with none of them cannot match. Non-ASCII texts (Unicode case folding)
/// and lists with a glob that starts with a metacharacter run the globs.
///
/// Lists whose globs have no metacharacter but `*` and are ASCII (most
/// rules' ARN and name patterns) are matched on ASCII texts without the
/// glob engine: such a glob is its literal pieces, the first at the start,
/// the last at the end and the rest in order between, each found leftmost.
#[derive(Debug)]
pub struct GlobTest {
    set: GlobSet,
    prefixes: Option<Vec<String>>,
    /// Each glob's pieces between its `*`s, when every glob is that simple.
    pieces: Option<Vec<Vec<String>>>,
}

/// Whether `text` matches a `*`-only glob given as its pieces (ASCII letters in any case).
fn star_match(text: &str, pieces: &[String]) -> bool {
    let (text, count) = (text.as_bytes(), pieces.len());
    let Some((first, rest)) = pieces.split_first() else {
        return text.is_empty();
    };
    if count == 1 {
        return text.eq_ignore_ascii_case(first.as_bytes());
    }
    let Some(last) = rest.last() else {
        return false;
    };
    let first = first.as_bytes();
    let last = last.as_bytes();
    if text.len() < first.len() + last.len()
        || !text[..first.len()].eq_ignore_ascii_case(first)
        || !text[text.len() - last.len()..].eq_ignore_ascii_case(last)
    {
        return false;
    }
    let mut middle = &text[first.len()..text.len() - last.len()];
    for piece in &rest[..rest.len() - 1] {
        match find_ignore_ascii_case(middle, piece.as_bytes()) {
            Some(end) => middle = &middle[end..],
            None => return false,
        }
    }
    true
}

/// Where the first occurrence of `needle` in `haystack` ends, ASCII letters
/// compared without case (an empty needle is found at 0): candidates are
/// found by the needle's first byte in either case, then compared.
fn find_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let Some(&first) = needle.first() else {
        return Some(0);
    };
    let last_start = haystack.len().checked_sub(needle.len())?;
    let mut from = 0;
    while from <= last_start {
        let found = memchr::memchr2(
            first.to_ascii_lowercase(),
            first.to_ascii_uppercase(),
            &haystack[from..=last_start],
        )?;
        let at = from + found;
        if haystack[at..at + needle.len()].eq_ignore_ascii_case(needle) {
            return Some(at + needle.len());
        }
        from = at + 1;
    }
    None
}

impl GlobTest {
    pub fn new(set: GlobSet, patterns: &[&str]) -> GlobTest {
        let prefixes: Vec<String> = patterns
            .iter()
            .map(|pattern| {
                let end = pattern.find(['*', '?', '[', '{', '\\']).unwrap_or(pattern.len());
                pattern[..end].to_string()
            })
            .collect();
        let usable = prefixes.iter().all(|prefix| !prefix.is_empty() && prefix.is_ascii());
        // `**` is the glob library's recursive wildcard (`**/` matches an
        // empty prefix), not two stars: such lists run the globs.
        let simple = patterns.iter().all(|pattern| {
            pattern.is_ascii() && !pattern.contains(['?', '[', ']', '{', '}', '\\']) && !pattern.contains("**")
        });
        let pieces = simple.then(|| {
            patterns
                .iter()
                .map(|pattern| pattern.split('*').map(str::to_string).collect())
                .collect()
        });
        GlobTest {
            set,
            prefixes: usable.then_some(prefixes),
            pieces,
        }
    }

    pub fn is_match(&self, text: &str) -> bool {
        if let Some(pieces) = &self.pieces
            && text.is_ascii()
        {
            return pieces.iter().any(|pieces| star_match(text, pieces));
        }
        if let Some(prefixes) = &self.prefixes
            && text.is_ascii()
            && !prefixes.iter().any(|prefix| prefix_ignore_case(text, prefix))
        {
            return false;
        }
        self.set.is_match(text)
    }
}

impl Cond {
    /// The same condition with the parts of every `all` and `any` in order
    /// of what they cost to evaluate, cheapest first (stable, so parts of one
    /// cost keep the rule's order): a part that settles the answer skips the
    /// rest, and the comparisons of a field the event already holds settle it
    /// more often, for less, than a glob, a substring search or a `raw.` path.
    /// Parts are pure tests, so the order changes no answer.
    pub fn cheapest_first(self) -> Cond {
        match self {
            Cond::All(items) => Cond::All(Self::sorted(items)),
            Cond::Any(items) => Cond::Any(Self::sorted(items)),
            Cond::Not(inner) => Cond::Not(Box::new(inner.cheapest_first())),
            other => other,
        }
    }

    fn sorted(items: Vec<Cond>) -> Vec<Cond> {
        let mut items: Vec<Cond> = items.into_iter().map(Cond::cheapest_first).collect();
        items.sort_by_key(Cond::cost_class);
        items
    }

    /// A rough cost class: 0 compares values the event holds (or reads its
    /// time in a zone), 1 searches text, 2 runs a Sigma item, 3 reads the raw
    /// record. Tests of class 0 keep the rule's order: how much of the
    /// stream each lets through weighs as much as its cost, and the rule's
    /// author knows that better (measured: `off_hours` first is twice as
    /// fast on CloudTrail as behind the `call_method` and outcome tests).
    fn cost_class(&self) -> u8 {
        match self {
            Cond::Const(_) | Cond::Time(_) => 0,
            Cond::Test { field, .. } if field.is_raw() => 3,
            Cond::Test { test, .. } => match test {
                Test::In { .. }
                | Test::Exists(_)
                | Test::Compare(..)
                | Test::Operations(_)
                | Test::StartsWith(_)
                | Test::EndsWith(_)
                | Test::Cidr(_) => 0,
                Test::Contains(_) | Test::Glob(_) | Test::Regex(_) => 1,
                Test::OtherAccount { owner, .. } => {
                    if owner.is_raw() {
                        3
                    } else {
                        1
                    }
                }
            },
            Cond::Sigma(_) => 2,
            Cond::Not(inner) => inner.cost_class(),
            Cond::All(items) | Cond::Any(items) => items.iter().map(Cond::cost_class).max().unwrap_or(0),
        }
    }

    /// Whether evaluating it can read a `raw.` path (a Sigma item may:
    /// its fields map to the record's).
    pub fn reads_raw(&self) -> bool {
        match self {
            Cond::All(items) | Cond::Any(items) => items.iter().any(Cond::reads_raw),
            Cond::Not(inner) => inner.reads_raw(),
            Cond::Test { field, test } => {
                field.is_raw() || matches!(test, Test::OtherAccount { owner, .. } if owner.is_raw())
            }
            Cond::Time(_) | Cond::Const(_) => false,
            Cond::Sigma(_) => true,
        }
    }

    /// The clouds (in `Provider::ALL` order) whose events can make
    /// evaluating it read a `raw.` path: a `provider` test earlier in an
    /// `all` narrows what follows it (`provider: huawei` then `raw.code`).
    pub fn raw_clouds(&self) -> [bool; 3] {
        self.raw_clouds_within([true; 3])
    }

    fn raw_clouds_within(&self, within: [bool; 3]) -> [bool; 3] {
        let either = |left: [bool; 3], right: [bool; 3]| std::array::from_fn(|slot| left[slot] || right[slot]);
        match self {
            Cond::All(items) => {
                let (mut within, mut clouds) = (within, [false; 3]);
                for item in items {
                    clouds = either(clouds, item.raw_clouds_within(within));
                    if let Some(only) = item.provider_clouds() {
                        within = std::array::from_fn(|slot| within[slot] && only[slot]);
                    }
                }
                clouds
            }
            Cond::Any(items) => items.iter().fold([false; 3], |clouds, item| {
                either(clouds, item.raw_clouds_within(within))
            }),
            Cond::Not(inner) => inner.raw_clouds_within(within),
            Cond::Test { .. } | Cond::Sigma(_) if self.reads_raw() => within,
            _ => [false; 3],
        }
    }

    /// The clouds a `provider` test lets through.
    fn provider_clouds(&self) -> Option<[bool; 3]> {
        match self {
            Cond::Test {
                field: Field::Provider,
                test: Test::In { texts, .. },
            } => Some(crate::event::model::Provider::ALL.map(|provider| texts.contains(provider.as_str()))),
            _ => None,
        }
    }

    pub fn evaluate(&self, event: &AuditEvent) -> bool {
        match self {
            Cond::All(items) => items.iter().all(|item| item.evaluate(event)),
            Cond::Any(items) => items.iter().any(|item| item.evaluate(event)),
            Cond::Not(inner) => !inner.evaluate(event),
            Cond::Test { field, test } => test.evaluate(field, event),
            Cond::Time(window) => window.contains(event.time),
            Cond::Const(value) => *value,
            Cond::Sigma(item) => item.evaluate(event),
        }
    }
}

impl Test {
    fn evaluate(&self, field: &Field, event: &AuditEvent) -> bool {
        match self {
            Test::Exists(expected) => {
                let present = field.any_value(event, &mut |value| !matches!(value, Val::Str("")));
                present == *expected
            }
            Test::OtherAccount { trusted, owner } => {
                let names_other = |own: &str| {
                    field.any_value(event, &mut |value| {
                        value.as_str().is_some_and(|text| {
                            account_refs(text)
                                .any(|account| !account.eq_ignore_ascii_case(own) && !trusted.contains(account))
                        })
                    })
                };
                let mut owner_given = false;
                let mut other = false;
                owner.any_value(
                    event,
                    &mut |value| match value.as_str().filter(|text| !text.is_empty()) {
                        Some(own) => {
                            owner_given = true;
                            other = names_other(own);
                            true
                        }
                        None => false,
                    },
                );
                if owner_given {
                    other
                } else {
                    event.account_id.as_deref().is_some_and(names_other)
                }
            }
            _ => field.any_value(event, &mut |value| self.check(value)),
        }
    }

    /// Whether one value passes.
    pub fn check(&self, value: Val<'_>) -> bool {
        match self {
            Test::In { texts, numbers } => match value {
                Val::Num(number) => numbers.contains(&number),
                other => other.as_str().is_some_and(|text| texts.contains(text)),
            },
            Test::Contains(automaton) => value.as_str().is_some_and(|text| automaton.is_match(text)),
            Test::StartsWith(prefixes) => value
                .as_str()
                .is_some_and(|text| prefixes.iter().any(|prefix| starts_with_ignore_case(text, prefix))),
            Test::EndsWith(suffixes) => value
                .as_str()
                .is_some_and(|text| suffixes.iter().any(|suffix| ends_with_ignore_case(text, suffix))),
            Test::Glob(globs) => value.as_str().is_some_and(|text| globs.is_match(text)),
            Test::Regex(set) => value.as_str().is_some_and(|text| set.is_match(text)),
            Test::Cidr(networks) => value
                .as_ip()
                .is_some_and(|ip| networks.iter().any(|network| network.contains(&ip))),
            Test::Exists(_) => true,
            Test::Compare(comparison, bound) => value.as_number().is_some_and(|number| match comparison {
                Comparison::Greater => number > *bound,
                Comparison::GreaterOrEqual => number >= *bound,
                Comparison::Less => number < *bound,
                Comparison::LessOrEqual => number <= *bound,
            }),
            Test::Operations(set) => match value {
                Val::Operation(index) => set.get(usize::from(index)).copied().unwrap_or(false),
                _ => false,
            },
            // Needs the event's own account: evaluated in `evaluate`.
            Test::OtherAccount { .. } => false,
        }
    }
}

/// The account identifiers a text names: the account field of an ARN
/// (`arn:aws:kms:us-east-1:111122223333:key/…`), a bare 12-digit AWS account
/// id, the owner `uin/…` of a Tencent `qcs::` resource, the `domain/…` of a
/// Huawei OBS policy principal. Anything else (`*`, a key UUID, an alias, a
/// service principal) names no account.
pub fn account_refs(text: &str) -> impl Iterator<Item = &str> {
    let text = text.trim();
    let found = if starts_with_ignore_case(text, "arn:") {
        text.split(':').nth(4).filter(|account| is_digits(account))
    } else if text.len() == 12 && is_digits(text) {
        Some(text)
    } else if let Some(at) = text.find("uin/").filter(|_| starts_with_ignore_case(text, "qcs:")) {
        let rest = &text[at + 4..];
        Some(&rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())]).filter(|id| !id.is_empty())
    } else if let Some(rest) = text.strip_prefix("domain/") {
        Some(&rest[..rest.find([':', '/']).unwrap_or(rest.len())])
            .filter(|id| !id.is_empty() && id.bytes().all(|byte| byte.is_ascii_alphanumeric()))
    } else {
        None
    };
    found.into_iter()
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// A CIDR, or a bare address as a host network.
pub fn parse_network(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// Which operations / actions an event must have for a condition to hold,
/// so the engine can skip rules that cannot match (`None` = no constraint).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IndexKeys {
    pub operations: Vec<OpIndex>,
    /// Lower-case action names.
    pub actions: Vec<String>,
}

impl Cond {
    pub fn index_keys(&self) -> Option<IndexKeys> {
        match self {
            Cond::Test {
                field: Field::Operation,
                test: Test::Operations(set),
            } => Some(IndexKeys {
                operations: set
                    .iter()
                    .enumerate()
                    .filter(|(_, selected)| **selected)
                    .filter_map(|(index, _)| OpIndex::try_from(index).ok())
                    .collect(),
                actions: Vec::new(),
            }),
            Cond::Test {
                field: Field::Action,
                test: Test::In { texts, .. },
            } => Some(IndexKeys {
                operations: Vec::new(),
                actions: texts.iter().map(str::to_string).collect(),
            }),
            // Any conjunct's keys are necessary: take the most selective.
            Cond::All(items) => items
                .iter()
                .filter_map(Cond::index_keys)
                .min_by_key(|keys| keys.operations.len() + keys.actions.len()),
            // Every disjunct must be constrained for the union to be.
            Cond::Any(items) => {
                let mut union = IndexKeys::default();
                for item in items {
                    let keys = item.index_keys()?;
                    union.operations.extend(keys.operations);
                    union.actions.extend(keys.actions);
                }
                union.operations.sort_unstable();
                union.operations.dedup();
                union.actions.sort();
                union.actions.dedup();
                Some(union)
            }
            Cond::Const(false) => Some(IndexKeys::default()),
            _ => None,
        }
    }

    /// Providers the condition can match (`provider: x` constraints), or all.
    pub fn providers(&self) -> Option<Vec<String>> {
        match self {
            Cond::Test {
                field: Field::Provider,
                test: Test::In { texts, .. },
            } => Some(texts.iter().map(str::to_string).collect()),
            Cond::All(items) => items.iter().filter_map(Cond::providers).next(),
            Cond::Any(items) => {
                let mut union = Vec::new();
                for item in items {
                    union.extend(item.providers()?);
                }
                union.sort();
                union.dedup();
                Some(union)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::account_refs;

    fn refs(text: &str) -> Vec<&str> {
        account_refs(text).collect()
    }

    #[test]
    fn account_refs_read_each_clouds_account_notation() {
        assert_eq!(refs("arn:aws:iam::193672423079:root"), ["193672423079"]);
        assert_eq!(
            refs("arn:aws:kms:us-east-1:999999999999:key/4f1c2e8a-7b3d"),
            ["999999999999"]
        );
        assert_eq!(refs("arn:aws-cn:iam::210987654321:role/x"), ["210987654321"]);
        assert_eq!(refs(" 210987654321 "), ["210987654321"]);
        assert_eq!(refs("qcs::cam::uin/100012345678:uin/100098765432"), ["100012345678"]);
        assert_eq!(refs("qcs::kms:ap-guangzhou:uin/100012345678:key/abc"), ["100012345678"]);
        assert_eq!(
            refs("domain/b4bf1b36d9ca43d984fbcb9491b6fce9:user/ops"),
            ["b4bf1b36d9ca43d984fbcb9491b6fce9"]
        );
        assert_eq!(
            refs("domain/b4bf1b36d9ca43d984fbcb9491b6fce9"),
            ["b4bf1b36d9ca43d984fbcb9491b6fce9"]
        );
    }

    #[test]
    fn account_refs_ignore_texts_that_name_no_account() {
        for text in [
            "*",
            "alias/aws/s3",
            "0d7c5a21-3e4f-4b8a-9c6d-1e2f3a4b5c6d",
            "arn:aws:s3:::finance-reports/*",
            "arn:aws:iam::aws:policy/AdministratorAccess",
            "cloudtrail.amazonaws.com",
            "12345678901",
            "1234567890123",
            "qcs::cos:ap-guangzhou:uid/1250000000:bucket-1250000000/*",
            "domain/",
            "",
            "ab中文:x",
            "qcs中::uin/",
        ] {
            assert!(refs(text).is_empty(), "{text:?} gave {:?}", refs(text));
        }
    }
}

#[cfg(test)]
mod glob_tests {
    use super::*;
    use globset::{GlobBuilder, GlobSetBuilder};

    fn both(patterns: &[&str]) -> (GlobSet, GlobTest) {
        let build = || {
            let mut builder = GlobSetBuilder::new();
            for pattern in patterns {
                builder.add(
                    GlobBuilder::new(pattern)
                        .case_insensitive(true)
                        .literal_separator(false)
                        .build()
                        .unwrap(),
                );
            }
            builder.build().unwrap()
        };
        (build(), GlobTest::new(build(), patterns))
    }

    proptest::proptest! {
        /// Star patterns matched by hand answer as the glob library does,
        /// letter case aside, on texts full of near-misses.
        #[test]
        fn star_patterns_answer_as_the_globs_do(
            pattern in "[aAb:/*]{0,8}",
            text in "[aAbB:/]{0,16}",
        ) {
            let (set, test) = both(&[pattern.as_str()]);
            proptest::prop_assert_eq!(test.is_match(&text), set.is_match(&text));
        }
    }

    #[test]
    fn glob_prefixes_answer_as_the_globs_do() {
        let texts = [
            "arn:aws:sts::493817265041:assumed-role/web-app/i-0a1b2c3d4e5f67890",
            "ARN:AWS:STS::493817265041:ASSUMED-ROLE/web-app/I-0a1b",
            "arn:aws:iam::493817265041:user/ops",
            "arn:aws:sts::1:assumed-role/x/y",
            "ar",
            "",
            "arn:aws:\u{212a}ts::1:assumed-role/x/i-1",
            "\u{212a}ali",
            "kali-linux",
            "a",
            "aa",
            "aba",
            "arn:aws:sts::1:assumed-role/a/i-",
        ];
        for patterns in [
            &["arn:aws:sts::*:assumed-role/*/i-*"][..],
            &["kali*", "*parrot*"][..],
            &["K[a]li*", "arn:aws:{sts,iam}::*"][..],
            &["\u{212a}ali*"][..],
            &["*"][..],
            &["a*a"][..],
            &["**sts**role*"][..],
            &["arn:aws:sts::*:assumed-role/*/i-*", "*:user/*"][..],
            &["ar"][..],
        ] {
            let (set, test) = both(patterns);
            for text in texts {
                assert_eq!(test.is_match(text), set.is_match(text), "{patterns:?} on {text}");
            }
        }
        assert!(both(&["arn:aws:sts::*:assumed-role/*/i-*"]).1.prefixes.is_some());
        assert!(
            both(&["kali*", "*parrot*"]).1.prefixes.is_none(),
            "a glob starting with `*` has no prefix"
        );
    }
}
