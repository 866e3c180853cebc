//! Sigma correlation rules (specification v2): `event_count`, `value_count`,
//! `temporal` and `temporal_ordered` over the rules they name, per
//! `group-by` tuple, in a sliding `timespan` of event time.
//!
//! A correlation becomes a rule whose condition is any of its rules'
//! detections and whose state is a `Correlation`: on each event that one of
//! them matches, the group's window in the engine state (the same tables as
//! the native `count` and `distinct` predicates, so persisted with every
//! transaction and restored after a restart) is updated, and the
//! correlation fires when its condition holds. `aliases` give a group-by
//! name a different field per rule; `generate: false` (the default) keeps
//! the named rules from raising alarms of their own.

use crate::event::model::AuditEvent;
use crate::rules::condition::Cond;
use crate::rules::field::Field;
use crate::rules::operations::OperationCatalog;
use crate::rules::state::{DistinctWindow, EngineState, count_in_window, distinct_count, state_key, with_distinct};

/// How many events (or values) a window must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threshold {
    AtLeast(i64),
    Exactly(i64),
    Between(i64, i64),
}

impl Threshold {
    fn holds(self, count: i64) -> bool {
        match self {
            Threshold::AtLeast(low) => count >= low,
            Threshold::Exactly(value) => count == value,
            Threshold::Between(low, high) => (low..=high).contains(&count),
        }
    }
}

#[derive(Clone, Debug)]
pub enum CorrelationKind {
    EventCount(Threshold),
    /// Distinct values of the field (per named rule, after aliases).
    ValueCount {
        fields: Vec<Field>,
        threshold: Threshold,
    },
    Temporal,
    TemporalOrdered,
}

/// A compiled correlation.
#[derive(Clone, Debug)]
pub struct Correlation {
    pub kind: CorrelationKind,
    /// The named rules' detections, in the order given.
    pub rules: Vec<Cond>,
    /// Per named rule, the fields of its group-by tuple.
    pub group_by: Vec<Vec<Field>>,
    pub timespan_ms: i64,
}

impl Correlation {
    /// Update the windows of the groups this event belongs to; whether the
    /// correlation holds now.
    pub fn evaluate(
        &self,
        rule_id: &str,
        event: &AuditEvent,
        state: &mut EngineState,
        catalog: &OperationCatalog,
        scratch: &mut Vec<String>,
    ) -> bool {
        let time = event.time.timestamp_millis();
        let mut fired = false;
        for (index, detection) in self.rules.iter().enumerate() {
            if !detection.evaluate(event) {
                continue;
            }
            let group = group_text(&self.group_by[index], event, catalog, scratch);
            let key = state_key(&[rule_id, "correlation", &group]);
            fired |= match &self.kind {
                CorrelationKind::EventCount(threshold) => {
                    threshold.holds(count_in_window(state, key, time, self.timespan_ms) as i64)
                }
                CorrelationKind::ValueCount { fields, threshold } => {
                    fields[index].collect_text(event, catalog, scratch);
                    if scratch.is_empty() {
                        // An event without the field adds no value.
                        false
                    } else {
                        let value = state_key(&[&scratch.join(",")]);
                        let count = with_distinct(state, key, time, |window| {
                            distinct_count(window, value, time, self.timespan_ms)
                        });
                        threshold.holds(count as i64)
                    }
                }
                CorrelationKind::Temporal => {
                    let count = with_distinct(state, key, time, |window| {
                        distinct_count(window, index as u64, time, self.timespan_ms)
                    });
                    count == self.rules.len()
                }
                CorrelationKind::TemporalOrdered => with_distinct(state, key, time, |window| {
                    advance_sequence(window, index, time, self.timespan_ms, self.rules.len())
                }),
            };
        }
        fired
    }
}

/// The group-by tuple of an event, as text (empty fields count as empty).
fn group_text(fields: &[Field], event: &AuditEvent, catalog: &OperationCatalog, scratch: &mut Vec<String>) -> String {
    let mut parts = Vec::with_capacity(fields.len());
    for field in fields {
        field.collect_text(event, catalog, scratch);
        parts.push(scratch.join(","));
    }
    parts.join("\u{1f}")
}

/// `temporal_ordered`: the window holds, per step reached, the start time
/// (the first rule's event) of the latest sequence that reached it. The
/// first rule starts a sequence; rule `step` extends one that reached the
/// step before, if it started within the timespan. Returns whether this
/// event completed a sequence (which then starts over).
fn advance_sequence(window: &mut DistinctWindow, step: usize, time: i64, timespan_ms: i64, steps: usize) -> bool {
    window.values.retain(|(_, start)| *start >= time - timespan_ms);
    let reached = |window: &DistinctWindow, step: u64| {
        window
            .values
            .iter()
            .find(|(existing, _)| *existing == step)
            .map(|(_, start)| *start)
    };
    let start = if step == 0 {
        Some(time)
    } else {
        reached(window, step as u64 - 1).filter(|start| *start <= time)
    };
    let Some(start) = start else { return false };
    if step + 1 == steps {
        window.values.clear();
        return true;
    }
    let current = reached(window, step as u64);
    window.values.retain(|(existing, _)| *existing != step as u64);
    window
        .values
        .push_back((step as u64, current.map_or(start, |current| current.max(start))));
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordered_sequence_completes_only_in_order_and_in_time() {
        let mut window = DistinctWindow::default();
        // b before a does not count; a then b then c within 10 does.
        assert!(!advance_sequence(&mut window, 1, 0, 10, 3));
        assert!(!advance_sequence(&mut window, 0, 1, 10, 3));
        assert!(!advance_sequence(&mut window, 2, 2, 10, 3));
        assert!(!advance_sequence(&mut window, 1, 3, 10, 3));
        assert!(advance_sequence(&mut window, 2, 4, 10, 3));
        // Too slow: the start falls out of the timespan.
        assert!(!advance_sequence(&mut window, 0, 100, 10, 3));
        assert!(!advance_sequence(&mut window, 1, 105, 10, 3));
        assert!(!advance_sequence(&mut window, 2, 120, 10, 3));
    }

    #[test]
    fn thresholds() {
        assert!(Threshold::AtLeast(3).holds(3));
        assert!(!Threshold::AtLeast(3).holds(2));
        assert!(Threshold::Exactly(2).holds(2) && !Threshold::Exactly(2).holds(3));
        assert!(Threshold::Between(2, 4).holds(4) && !Threshold::Between(2, 4).holds(5));
    }
}
