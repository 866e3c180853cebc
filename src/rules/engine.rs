//! Evaluation: one event against the rule set, meeting only the rules that
//! can match it.
//!
//! Rules whose condition requires certain operations or actions are indexed
//! under them; an event is checked against the rules of its operations, of
//! its action, and the unindexed rest. Evaluation is pure and synchronous:
//! it reads the event (after classifying its operations) and returns matches.

use super::field::Field;
use super::state::EngineState;
use super::stateful::record_event;
use super::{Rule, RuleSet};
use crate::event::model::{AuditEvent, Provider};
use crate::text::with_ascii_lowercase;

/// Rule indexes by operation and action.
#[derive(Debug, Default)]
pub struct RuleIndex {
    by_operation: Vec<Vec<u32>>,
    by_action: crate::text::FastMap<String, Vec<u32>>,
    /// Rules with no operation/action constraint: checked for every event.
    always: Vec<u32>,
}

impl RuleIndex {
    pub fn build(rules: &[Rule], operation_count: usize) -> RuleIndex {
        let mut index = RuleIndex {
            by_operation: vec![Vec::new(); operation_count],
            ..RuleIndex::default()
        };
        for (position, rule) in rules.iter().enumerate() {
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            if !rule.enabled {
                continue;
            }
            match rule.condition.index_keys() {
                Some(keys) => {
                    for operation in keys.operations {
                        if let Some(slot) = index.by_operation.get_mut(usize::from(operation)) {
                            slot.push(position);
                        }
                    }
                    for action in keys.actions {
                        index.by_action.entry(action).or_default().push(position);
                    }
                }
                None => index.always.push(position),
            }
        }
        index
    }

    /// Which events a rule can read a `raw.` path of (its condition,
    /// exceptions, state, grouping or output name one): of the actions the
    /// index gives such rules, and of every action of the clouds where such
    /// a rule is checked for every event. The normalizers copy the rules'
    /// `raw.` paths out of those events only (`event::raw_paths`).
    pub fn raw_readers(rules: &[Rule], catalog: &super::operations::OperationCatalog) -> (Vec<Provider>, Vec<String>) {
        let mut every = [false; 3];
        let mut operations = vec![false; catalog.len()];
        let mut actions = Vec::new();
        for rule in rules.iter().filter(|rule| rule.enabled) {
            let elsewhere = rule.state.as_ref().is_some_and(|state| state.reads_raw())
                || rule.group_by.iter().any(|field| field.is_raw())
                || rule.output.reads_raw();
            let mut clouds = if elsewhere {
                [true; 3]
            } else {
                rule.condition.raw_clouds()
            };
            for exception in &rule.exceptions {
                let more = exception.condition.raw_clouds();
                clouds = std::array::from_fn(|slot| clouds[slot] || more[slot]);
            }
            if !clouds.contains(&true) {
                continue;
            }
            match rule.condition.index_keys() {
                None => every = std::array::from_fn(|slot| every[slot] || clouds[slot]),
                Some(keys) => {
                    for operation in keys.operations {
                        if let Some(slot) = operations.get_mut(usize::from(operation)) {
                            *slot = true;
                        }
                    }
                    actions.extend(keys.actions);
                }
            }
        }
        actions.extend(catalog.actions_reading_raw(&operations));
        let every = Provider::ALL
            .into_iter()
            .zip(every)
            .filter_map(|(provider, all)| all.then_some(provider))
            .collect();
        (every, actions)
    }

    /// How many rules are indexed vs checked for every event (for `rules list`).
    pub fn summary(&self) -> (usize, usize) {
        let mut indexed: Vec<u32> = self
            .by_operation
            .iter()
            .flatten()
            .chain(self.by_action.values().flatten())
            .copied()
            .collect();
        indexed.sort_unstable();
        indexed.dedup();
        (indexed.len(), self.always.len())
    }
}

/// Told about each rule an event is evaluated against (`rules cost`).
pub trait Probe {
    /// A candidate rule is about to be evaluated.
    fn start(&mut self) {}
    /// It was, and matched or not.
    fn done(&mut self, _position: u32, _matched: bool) {}
}

/// The engine's probe: nothing.
pub struct NoProbe;

impl Probe for NoProbe {}

/// Buffers reused across evaluations so the hot path does not allocate.
#[derive(Debug, Default)]
pub struct EvalScratch {
    candidates: Vec<u32>,
    values: Vec<String>,
}

/// One rule matching one event.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleMatch {
    /// Position of the rule in `RuleSet::rules`.
    pub rule: u32,
    /// The alarm aggregation key (rule + this key = one open alarm).
    pub group_key: String,
    /// The rendered output template.
    pub output: String,
}

impl RuleSet {
    /// Classify the event's operations with this set's catalog and evaluate
    /// the stateless rules only (rules with a `state:` block never match here).
    pub fn evaluate(&self, event: &mut AuditEvent, scratch: &mut EvalScratch, out: &mut Vec<RuleMatch>) {
        self.catalog.classify_event(event);
        self.evaluate_classified(event, None, scratch, out, &mut NoProbe);
    }

    /// Classify and evaluate every rule, stateful ones against `state`, then
    /// record the event in the state (key last seen, principals created).
    /// Events must come in event-time order for stateful results to be exact.
    pub fn evaluate_with_state(
        &self,
        event: &mut AuditEvent,
        state: &mut EngineState,
        scratch: &mut EvalScratch,
        out: &mut Vec<RuleMatch>,
    ) {
        self.evaluate_with_state_probed(event, state, scratch, out, &mut NoProbe);
    }

    /// `evaluate_with_state`, telling `probe` about each rule evaluated.
    pub fn evaluate_with_state_probed(
        &self,
        event: &mut AuditEvent,
        state: &mut EngineState,
        scratch: &mut EvalScratch,
        out: &mut Vec<RuleMatch>,
        probe: &mut impl Probe,
    ) {
        self.catalog.classify_event(event);
        self.evaluate_classified(event, Some(&mut *state), scratch, out, probe);
        let creates_principal = self
            .user_create_operation
            .is_some_and(|operation| event.operations.contains(&operation));
        record_event(state, event, creates_principal, self.tracks_addresses);
    }

    /// Evaluate an event whose operations are already classified.
    fn evaluate_classified(
        &self,
        event: &AuditEvent,
        mut state: Option<&mut EngineState>,
        scratch: &mut EvalScratch,
        out: &mut Vec<RuleMatch>,
        probe: &mut impl Probe,
    ) {
        let EvalScratch { candidates, values } = scratch;
        candidates.clear();
        candidates.extend_from_slice(&self.index.always);
        for operation in &event.operations {
            if let Some(rules) = self.index.by_operation.get(usize::from(*operation)) {
                candidates.extend_from_slice(rules);
            }
        }
        with_ascii_lowercase(&event.action, |action| {
            if let Some(rules) = self.index.by_action.get(action) {
                candidates.extend_from_slice(rules);
            }
        });
        candidates.sort_unstable();
        candidates.dedup();
        for position in candidates.iter().copied() {
            probe.start();
            let found = self.evaluate_rule(position, event, state.as_deref_mut(), values);
            probe.done(position, found.is_some());
            out.extend(found);
        }
    }

    /// One candidate rule on one event.
    fn evaluate_rule(
        &self,
        position: u32,
        event: &AuditEvent,
        state: Option<&mut EngineState>,
        values: &mut Vec<String>,
    ) -> Option<RuleMatch> {
        let rule = self.rules.get(position as usize)?;
        if !rule.condition.evaluate(event) {
            return None;
        }
        if rule
            .exceptions
            .iter()
            .any(|exception| exception.condition.evaluate(event))
        {
            return None;
        }
        let mut state = state;
        if let Some(spec) = &rule.state
            && !spec.evaluate(&rule.id, event, state.as_deref_mut()?, &self.catalog, values)
        {
            return None;
        }
        let group_key = group_key(rule, event, self, values);
        let output = rule
            .output
            .render(&rule.title, event, state.as_deref(), &self.catalog, values);
        Some(RuleMatch {
            rule: position,
            group_key,
            output,
        })
    }

    pub fn rule(&self, position: u32) -> Option<&Rule> {
        self.rules.get(position as usize)
    }

    pub fn rule_by_id(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.id == id)
    }

    pub fn index_summary(&self) -> (usize, usize) {
        self.index.summary()
    }
}

/// `access_key.id=AKID…` by default; `principal=<account>/<name>` without a
/// key; `field=v1,v2|field=…` for an explicit `group_by`.
fn group_key(rule: &Rule, event: &AuditEvent, set: &RuleSet, values: &mut Vec<String>) -> String {
    if rule.group_by.is_empty() {
        return default_group_key(event);
    }
    let mut key = String::new();
    for (position, field) in rule.group_by.iter().enumerate() {
        if position > 0 {
            key.push('|');
        }
        field.collect_text(event, &set.catalog, values);
        key.push_str(&field.name());
        key.push('=');
        if values.is_empty() {
            key.push('-');
        } else {
            key.push_str(&values.join(","));
        }
    }
    key
}

pub fn default_group_key(event: &AuditEvent) -> String {
    match event.access_key_id() {
        Some(key) => format!("{}={key}", Field::AccessKeyId.name()),
        None => format!(
            "principal={}/{}",
            event.account_id.as_deref().unwrap_or("-"),
            event.principal.id.as_deref().unwrap_or(event.principal_display())
        ),
    }
}

#[cfg(test)]
mod raw_reader_tests {
    use super::*;

    /// The shipped pack reads `raw.` paths of a few actions' events, and of
    /// every Huawei event (the denial rules read `raw.code` behind
    /// `provider: huawei`): the normalizers copy nothing out of the rest.
    #[test]
    fn the_pack_reads_raw_paths_of_few_actions() {
        let rules =
            crate::rules::load::load_rules(std::path::Path::new("rules"), &Default::default()).expect("the pack loads");
        let (every, actions) = RuleIndex::raw_readers(&rules.rules, &rules.catalog);
        assert_eq!(every, [Provider::Huawei]);
        for needed in ["putbucketpolicy", "runinstances", "attachuserpolicy"] {
            assert!(actions.iter().any(|action| action == needed), "{needed} missing");
        }
        for not_needed in ["getobject", "describeinstances", "listbuckets"] {
            assert!(
                !actions.iter().any(|action| action == not_needed),
                "{not_needed} listed"
            );
        }
    }
}
