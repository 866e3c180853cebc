//! Detection rules: YAML files in `rules/`, compiled into an indexed `RuleSet`.
//!
//! Loading follows Falco's shape: read every file (reader), gather lists,
//! macros and rules across files (collector), then compile and index them
//! (compiler). Every problem is a `Diagnostic` with `file:line:col`; a rule
//! set is built only when there are none, so a bad edit never replaces a
//! working set.

pub mod condition;
pub mod cost;
pub mod diag;
pub mod engine;
pub mod escalate;
pub mod exceptions;
pub mod field;
pub mod load;
pub mod operations;
pub mod overrides;
pub mod sigma;
pub mod state;
pub mod stateful;
pub mod template;
pub mod testing;
pub mod yaml;

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use serde::Serialize;

use crate::event::model::Provider;
use condition::Cond;
use field::Field;
use template::Template;
use yaml::Loc;

pub use engine::{EvalScratch, RuleMatch};
pub use load::{RuleOptions, load_rules};
pub use operations::OperationCatalog;

/// Alarm level, lowest to highest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Low,
    Medium,
    High,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Info, Level::Low, Level::Medium, Level::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub level: Level,
    /// What the rule detects.
    pub description: String,
    /// Why it matters to an operator.
    pub rationale: Option<String>,
    /// What the operator should do about an alarm (shown as the advice).
    pub remediation: Option<String>,
    /// Known benign causes.
    pub false_positives: Option<String>,
    /// MITRE ATT&CK technique ids (`T1078.004`).
    pub mitre: Vec<String>,
    pub tags: Vec<String>,
    /// Where the rule's reasoning is documented.
    pub references: Vec<String>,
    /// Set for a rule loaded from a Sigma file (`rules.sigma_dirs`).
    pub sigma: Option<sigma::SigmaInfo>,
    pub enabled: bool,
    pub condition: Cond,
    /// Stateful predicates (`state:`), evaluated after `condition` holds.
    pub state: Option<stateful::StateSpec>,
    /// Allow tuples: a match is dropped when any of them matches.
    pub exceptions: Vec<exceptions::Exception>,
    /// Embedded tests (`trailwarden rules test`).
    pub tests: Vec<testing::RuleTest>,
    /// Fields forming the alarm aggregation key; empty = access key, else principal.
    pub group_by: Vec<Field>,
    /// `escalate:` marks: an alarm whose count reaches a mark takes its level
    /// (ascending by count; the rule's own level is the floor).
    pub escalate: Vec<(u64, Level)>,
    pub output: Template,
    /// Clouds the rule can fire on (from its provider and operation constraints).
    pub clouds: Vec<Provider>,
    pub file: Arc<str>,
    pub loc: Loc,
    /// SHA-256 (hex, 16 chars) of the rule's source and the lists and macros it uses:
    /// alarms record it, so an operator knows which version of a rule fired.
    pub hash: String,
}

/// A compiled, indexed rule set, with the operation catalog it was compiled against.
#[derive(Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub catalog: OperationCatalog,
    index: engine::RuleIndex,
    /// Hash over every rule hash: changes whenever any rule changes.
    pub version: String,
    /// The catalog's user-creation operation, which feeds principal ages.
    pub(crate) user_create_operation: Option<operations::OpIndex>,
    /// Some rule uses `new_address`: every event's (key, address block) is recorded.
    pub(crate) tracks_addresses: bool,
}

/// A shared, swappable rule set.
pub type SharedRules = Arc<ArcSwap<RuleSet>>;

/// Wrap a rule set for the pipeline.
pub fn shared_rules(rules: RuleSet) -> SharedRules {
    Arc::new(ArcSwap::from_pointee(rules))
}
