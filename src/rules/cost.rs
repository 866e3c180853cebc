//! What each rule costs: `trailwarden rules cost PATH…`.
//!
//! The records are read and normalized first (not timed), put in event-time
//! order, then evaluated once with engine state, as the engine would, while
//! a probe times each rule evaluation the index asked for. The clock's own
//! cost (two reads per evaluation, measured before the run) is taken off
//! each rule's total, so a rule's figure is what its condition, exceptions,
//! state predicates, group key and output cost on these records.

use std::time::{Duration, Instant};

use super::RuleSet;
use super::engine::{EvalScratch, Probe, RuleMatch};
use super::state::{EngineState, StateLimits};
use crate::event::model::AuditEvent;

/// One rule's share of the run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RuleCost {
    pub rule: String,
    /// Events the index handed the rule.
    pub evaluations: u64,
    pub matches: u64,
    /// Time in the rule, the clock's cost taken off.
    pub nanos: u64,
}

/// The run: every enabled rule, most expensive first.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CostReport {
    pub events: u64,
    /// Time in all rules together.
    pub nanos: u64,
    /// What one timed evaluation's clock reads cost, taken off each.
    pub clock_nanos: f64,
    pub rules: Vec<RuleCost>,
}

struct Timer {
    started: Instant,
    costs: Vec<(u64, u64, Duration)>,
}

impl Probe for Timer {
    fn start(&mut self) {
        self.started = Instant::now();
    }

    fn done(&mut self, position: u32, matched: bool) {
        let elapsed = self.started.elapsed();
        if let Some(cost) = self.costs.get_mut(position as usize) {
            cost.0 += 1;
            cost.1 += u64::from(matched);
            cost.2 += elapsed;
        }
    }
}

/// What reading the clock twice costs, per evaluation (median of 5 runs).
fn clock_cost() -> f64 {
    const ROUNDS: u32 = 100_000;
    let mut timer = Timer {
        started: Instant::now(),
        costs: vec![(0, 0, Duration::ZERO)],
    };
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let begun = Instant::now();
            for _ in 0..ROUNDS {
                timer.start();
                timer.done(0, false);
            }
            begun.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

/// Evaluate `events` (in any order: they are sorted by time first) against
/// `rules` with fresh engine state, timing each rule.
pub fn measure(rules: &RuleSet, mut events: Vec<AuditEvent>, limits: StateLimits) -> CostReport {
    events.sort_by(|left, right| (left.time, &left.event_id).cmp(&(right.time, &right.event_id)));
    let clock_nanos = clock_cost();
    let mut timer = Timer {
        started: Instant::now(),
        costs: vec![(0, 0, Duration::ZERO); rules.rules.len()],
    };
    let mut state = EngineState::new(limits);
    let mut scratch = EvalScratch::default();
    let mut matches: Vec<RuleMatch> = Vec::new();
    let count = events.len() as u64;
    for mut event in events {
        matches.clear();
        rules.evaluate_with_state_probed(&mut event, &mut state, &mut scratch, &mut matches, &mut timer);
    }
    let mut costs: Vec<RuleCost> = rules
        .rules
        .iter()
        .zip(&timer.costs)
        .filter(|(rule, _)| rule.enabled)
        .map(|(rule, (evaluations, matched, spent))| RuleCost {
            rule: rule.id.clone(),
            evaluations: *evaluations,
            matches: *matched,
            nanos: (spent.as_nanos() as f64 - clock_nanos * *evaluations as f64).max(0.0) as u64,
        })
        .collect();
    costs.sort_by(|left, right| right.nanos.cmp(&left.nanos).then_with(|| left.rule.cmp(&right.rule)));
    CostReport {
        events: count,
        nanos: costs.iter().map(|cost| cost.nanos).sum(),
        clock_nanos,
        rules: costs,
    }
}
