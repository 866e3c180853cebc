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

#[derive(Hash, PartialEq, Eq, Clone)]
struct CallKey {
    source_ip: String,
    call_method: &'static str,
    service: String,
    action: String,
}

struct Pending {
    update: AlarmUpdate,
    calls: FastMap<CallKey, CallRecord>,
}

/// Accumulates one batch's matches.
pub struct Aggregator {
    samples_per_alarm: usize,
    /// Keep each match's output (`AlarmUpdate::operations`).
    keep_operations: bool,
    /// Largest sample in bytes of JSON (`store.max_sample_bytes`).
    max_sample_bytes: usize,
    pending: FastMap<(String, String), Pending>,
    /// Keys in first-match order, so writes are deterministic.
    order: Vec<(String, String)>,
    matches: u64,
    /// Samples made per alarm key since the store last changed under the
    /// engine (`forget_samples`): once an alarm has its `samples_per_alarm`,
    /// the store keeps no more, so none are made (on a match-heavy stream
    /// they were a third of the engine's work, every batch, then dropped).
    sampled: FastMap<(String, String), usize>,
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
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn add(&mut self, rules: &RuleSet, rule_match: &RuleMatch, event: &AuditEvent) {
        let Some(rule) = rules.rule(rule_match.rule) else {
            return;
        };
        self.matches += 1;
        let key = (rule.id.clone(), rule_match.group_key.clone());
        let sampled = self.sampled.get(&key).copied().unwrap_or(0);
        if sampled < self.samples_per_alarm {
            if self.sampled.len() >= MAX_SAMPLED_KEYS {
                self.sampled.clear();
            }
            *self.sampled.entry(key.clone()).or_insert(0) += 1;
        }
        let time = timestamp(event.time);
        let pending = match self.pending.get_mut(&key) {
            Some(pending) => pending,
            None => {
                self.order.push(key.clone());
                self.pending.entry(key).or_insert_with(|| Pending {
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
                })
            }
        };
        let update = &mut pending.update;
        update.count += 1;
        if time < update.first_seen {
            update.first_seen = time.clone();
        }
        if time >= update.last_seen {
            update.last_seen = time.clone();
            update.last_output = rule_match.output.clone();
        }
        if update.last_output.is_empty() {
            update.last_output = rule_match.output.clone();
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
        let call_key = CallKey {
            source_ip: event.source_ip_text().unwrap_or("").to_string(),
            call_method: event.call_method.as_str(),
            service: event.service.clone(),
            action: event.action.clone(),
        };
        let failed = event.outcome.result == OutcomeResult::Failure;
        let call = pending.calls.entry(call_key).or_insert_with_key(|key| CallRecord {
            source_ip: key.source_ip.clone(),
            ip_kind: event.source_ip_kind().as_str().to_string(),
            call_method: key.call_method.to_string(),
            service: key.service.clone(),
            action: key.action.clone(),
            success_count: 0,
            failure_count: 0,
            first_call: time.clone(),
            last_call: time.clone(),
        });
        if failed {
            call.failure_count += 1;
        } else {
            call.success_count += 1;
        }
        if time < call.first_call {
            call.first_call = time.clone();
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
        for key in self.order.drain(..) {
            if let Some(mut pending) = self.pending.remove(&key) {
                let mut calls: Vec<CallRecord> = pending.calls.into_values().collect();
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
