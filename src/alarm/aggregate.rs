//! Folding a batch's rule matches into alarm updates.
//!
//! Matches of the same rule and group key within a batch merge into one
//! `AlarmUpdate` (count, first/last seen, call records per source IP, call
//! method, service and API, the first samples), so the store does one upsert
//! per alarm per batch however many events matched.

use crate::text::FastMap;

use super::sample::event_sample;
use super::store::{AlarmIdentity, AlarmUpdate, CallRecord, Sample, timestamp};
use crate::event::model::{AuditEvent, OutcomeResult};
use crate::rules::{RuleMatch, RuleSet};

struct Pending {
    update: AlarmUpdate,
    /// Call records by a hash of (source IP, call method, service, action),
    /// each bucket compared field by field: a match of a known call
    /// allocates nothing.
    calls: FastMap<u64, Vec<CallRecord>>,
}

/// The per-group-key map of `rule_id`, made on its first match (the rule
/// id is copied only then).
fn groups_of<'m, V>(
    by_rule: &'m mut FastMap<String, FastMap<String, V>>,
    rule_id: &str,
) -> Option<&'m mut FastMap<String, V>> {
    if !by_rule.contains_key(rule_id) {
        by_rule.insert(rule_id.to_string(), FastMap::default());
    }
    by_rule.get_mut(rule_id)
}

fn call_hash(source_ip: &str, call_method: &str, service: &str, action: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x0063_616c_6c73).hash_one((source_ip, call_method, service, action))
}

/// Accumulates one batch's matches.
pub struct Aggregator {
    samples_per_alarm: usize,
    /// Keep each match's output (`AlarmUpdate::operations`).
    keep_operations: bool,
    /// Largest sample in bytes of JSON (`store.max_sample_bytes`).
    max_sample_bytes: usize,
    /// By rule id, then group key (nested, so a match looks its alarm up
    /// with borrowed text).
    pending: FastMap<String, FastMap<String, Pending>>,
    /// Keys in first-match order, so writes are deterministic.
    order: Vec<(String, String)>,
    matches: u64,
    /// Samples made per alarm key since the store last changed under the
    /// engine (`forget_samples`): once an alarm has its `samples_per_alarm`,
    /// the store keeps no more, so none are made (on a match-heavy stream
    /// they were a third of the engine's work, every batch, then dropped).
    sampled: FastMap<String, FastMap<String, usize>>,
    /// Keys in `sampled`.
    sampled_keys: usize,
}

/// Most alarm keys whose sample count is remembered; past it the memory
/// starts over (which costs only samples the store then drops).
const MAX_SAMPLED_KEYS: usize = 200_000;
/// Most match outputs kept per alarm per batch for operation notifications;
/// the rest of a burst is in the alarm's count.
pub const MAX_OPERATIONS: usize = 100;

impl Aggregator {
    pub fn new(samples_per_alarm: usize, max_sample_bytes: usize) -> Aggregator {
        Aggregator {
            samples_per_alarm,
            max_sample_bytes,
            keep_operations: false,
            pending: FastMap::default(),
            order: Vec::new(),
            matches: 0,
            sampled: FastMap::default(),
            sampled_keys: 0,
        }
    }

    /// Keep each match's output (a notification topic wants every operation).
    pub fn keep_operations(&mut self, keep: bool) {
        self.keep_operations = keep;
    }

    /// Forget which alarms have all their samples: another connection
    /// changed the store (an alarm closed, so the next match opens a new one
    /// that needs samples of its own).
    pub fn forget_samples(&mut self) {
        self.sampled.clear();
        self.sampled_keys = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn add(&mut self, rules: &RuleSet, rule_match: &RuleMatch, event: &AuditEvent) {
        let Some(rule) = rules.rule(rule_match.rule) else {
            return;
        };
        self.matches += 1;
        let group_key = rule_match.group_key.as_str();
        let sampled = self
            .sampled
            .get(rule.id.as_str())
            .and_then(|groups| groups.get(group_key))
            .copied()
            .unwrap_or(0);
        if sampled < self.samples_per_alarm {
            if self.sampled_keys >= MAX_SAMPLED_KEYS {
                self.sampled.clear();
                self.sampled_keys = 0;
            }
            let Some(groups) = groups_of(&mut self.sampled, &rule.id) else {
                return;
            };
            match groups.get_mut(group_key) {
                Some(count) => *count += 1,
                None => {
                    groups.insert(group_key.to_string(), 1);
                    self.sampled_keys += 1;
                }
            }
        }
        let time = timestamp(event.time);
        let Some(groups) = groups_of(&mut self.pending, &rule.id) else {
            return;
        };
        if !groups.contains_key(group_key) {
            self.order.push((rule.id.clone(), group_key.to_string()));
        }
        let pending = match groups.get_mut(group_key) {
            Some(pending) => pending,
            None => groups.entry(group_key.to_string()).or_insert_with(|| Pending {
                update: AlarmUpdate {
                    rule_id: rule.id.clone(),
                    rule_hash: rule.hash.clone(),
                    level: rule.level,
                    title: rule.title.clone(),
                    tags: rule.tags.clone(),
                    group_key: rule_match.group_key.clone(),
                    identity: identity_of(event),
                    first_seen: time.clone(),
                    last_seen: time.clone(),
                    count: 0,
                    escalate: rule.escalate.clone(),
                    operations: Vec::new(),
                    last_output: String::new(),
                    calls: Vec::new(),
                    samples: Vec::new(),
                },
                calls: FastMap::default(),
            }),
        };
        let update = &mut pending.update;
        update.count += 1;
        // Copied into the strings already there (`clone_from` keeps their room).
        if time < update.first_seen {
            update.first_seen.clone_from(&time);
        }
        if time >= update.last_seen {
            update.last_seen.clone_from(&time);
            update.last_output.clone_from(&rule_match.output);
        }
        if update.last_output.is_empty() {
            update.last_output.clone_from(&rule_match.output);
        }
        if self.keep_operations && update.operations.len() < MAX_OPERATIONS {
            update.operations.push(rule_match.output.clone());
        }
        if sampled < self.samples_per_alarm {
            update.samples.push(Sample {
                event_id: event.event_id.clone(),
                event_time: time.clone(),
                origin: event.origin.to_string(),
                event: event_sample(event, &rules.catalog, self.max_sample_bytes),
            });
        }
        let source_ip = event.source_ip_text().unwrap_or("");
        let call_method = event.call_method.as_str();
        let bucket = pending
            .calls
            .entry(call_hash(source_ip, call_method, &event.service, &event.action))
            .or_default();
        let position = bucket.iter().position(|call| {
            call.source_ip == source_ip
                && call.call_method == call_method
                && call.service == event.service
                && call.action == event.action
        });
        let call = match position {
            Some(position) => &mut bucket[position],
            None => {
                bucket.push(CallRecord {
                    source_ip: source_ip.to_string(),
                    ip_kind: event.source_ip_kind().as_str().to_string(),
                    call_method: call_method.to_string(),
                    service: event.service.clone(),
                    action: event.action.clone(),
                    success_count: 0,
                    failure_count: 0,
                    first_call: time.clone(),
                    last_call: time.clone(),
                });
                let last = bucket.len() - 1;
                &mut bucket[last]
            }
        };
        if event.outcome.result == OutcomeResult::Failure {
            call.failure_count += 1;
        } else {
            call.success_count += 1;
        }
        if time < call.first_call {
            call.first_call.clone_from(&time);
        }
        if time > call.last_call {
            call.last_call = time;
        }
    }

    /// Matches added since the last drain.
    pub fn match_count(&self) -> u64 {
        self.matches
    }

    /// The batch's alarm updates, in first-match order.
    pub fn drain(&mut self) -> Vec<AlarmUpdate> {
        self.matches = 0;
        let mut out = Vec::with_capacity(self.order.len());
        for (rule_id, group_key) in self.order.drain(..) {
            let taken = self
                .pending
                .get_mut(&rule_id)
                .and_then(|groups| groups.remove(&group_key));
            if let Some(mut pending) = taken {
                let mut calls: Vec<CallRecord> = pending.calls.into_values().flatten().collect();
                calls.sort_by(|a, b| {
                    (&a.source_ip, &a.call_method, &a.service, &a.action).cmp(&(
                        &b.source_ip,
                        &b.call_method,
                        &b.service,
                        &b.action,
                    ))
                });
                pending.update.calls = calls;
                out.push(pending.update);
            }
        }
        out
    }
}

/// The alarm's identity, from the first event that raised it.
pub fn identity_of(event: &AuditEvent) -> AlarmIdentity {
    AlarmIdentity {
        provider: event.provider.as_str().to_string(),
        account_id: event.account_id.clone(),
        account_name: event.account_name.clone(),
        account_identity: event.account_identity().to_string(),
        principal_kind: event.principal.kind.as_str().to_string(),
        principal_id: event.principal.id.clone(),
        principal_name: event.principal.name.clone(),
        principal_arn: event.principal.arn.clone(),
        access_key_id: event.access_key_id().map(str::to_string),
        access_key_temporary: event.access_key.as_ref().map(|key| key.temporary),
    }
}
