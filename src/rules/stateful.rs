//! Stateful predicates: a rule's `state:` block, compiled and evaluated
//! against `EngineState` on event time.
//!
//! ```yaml
//! state:
//!   principal_age: {lt: 1d}          # since the principal's creation event was seen
//!   key_idle: {gt: 30d}              # since the access key was last seen (a new key is not idle)
//!   first_seen: [access_key.id, source_ip]   # this tuple never matched this rule before
//!   count: {window: 5m, by: [access_key.id], gte: 10}          # matching events in a sliding window
//!   distinct: {field: region, window: 1h, by: [principal.id], gte: 5}
//! ```
//! Every predicate given must hold (together with `match`). Windows and
//! first-seen tuples only record events that satisfied `match`.

use serde_json::Value;

use super::condition::Comparison;
use super::diag::{FileCtx, Problem};
use super::field::Field;
use super::operations::OperationCatalog;
use super::state::{EngineState, KeySeen, count_in_window, distinct_count, state_key, with_distinct};
use super::yaml::Node;
use crate::event::model::{AuditEvent, OutcomeResult};

/// A comparison of a duration or count with a bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    pub comparison: Comparison,
    pub value: i64,
}

impl Bound {
    pub fn holds(&self, measured: i64) -> bool {
        match self.comparison {
            Comparison::Greater => measured > self.value,
            Comparison::GreaterOrEqual => measured >= self.value,
            Comparison::Less => measured < self.value,
            Comparison::LessOrEqual => measured <= self.value,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CountSpec {
    pub window_ms: i64,
    pub by: Vec<Field>,
    pub bound: Bound,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DistinctSpec {
    pub field: Field,
    pub window_ms: i64,
    pub by: Vec<Field>,
    pub bound: Bound,
    /// `new_value: true`: hold only on the event that brings a value the
    /// window did not have (the second address, not every call after it).
    pub new_value: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct NewAddressSpec {
    pub young_ms: i64,
    pub known_ms: i64,
}

/// A compiled `state:` block (or a Sigma correlation).
#[derive(Clone, Debug, Default)]
pub struct StateSpec {
    pub principal_age: Option<Bound>,
    pub key_idle: Option<Bound>,
    pub first_seen: Option<Vec<Field>>,
    pub count: Option<CountSpec>,
    pub distinct: Option<DistinctSpec>,
    /// `new_address: {young: 1d, known: 7d}`: a long-term key the engine has
    /// known for `known` calls from an address block (/24, IPv6 /48) it
    /// first used less than `young` ago.
    pub new_address: Option<NewAddressSpec>,
    /// A Sigma correlation rule's windows (`rules::sigma::correlation`).
    pub correlation: Option<std::sync::Arc<super::sigma::correlation::Correlation>>,
}

const STATE_KEYS: &[&str] = &[
    "principal_age",
    "key_idle",
    "first_seen",
    "count",
    "distinct",
    "new_address",
];

fn parse_duration(ctx: &mut FileCtx<'_>, node: &Node, what: &str) -> Option<i64> {
    let text = ctx.text(node, what)?;
    match humantime::parse_duration(&text) {
        Ok(duration) if !duration.is_zero() => i64::try_from(duration.as_millis()).ok(),
        Ok(_) => {
            ctx.error(
                node.loc,
                Problem::BadDuration,
                format!("{what} must be longer than zero"),
            );
            None
        }
        Err(error) => {
            ctx.error(
                node.loc,
                Problem::BadDuration,
                format!("{what} `{text}` is not a duration ({error}); use e.g. 30d, 12h, 5m"),
            );
            None
        }
    }
}

/// `{lt: 1d}` / `{gte: 10}`: exactly one comparison; durations or counts.
fn parse_bound(
    ctx: &mut FileCtx<'_>,
    node: &Node,
    what: &str,
    duration: bool,
    allowed_extra: &[&str],
) -> Option<Bound> {
    let map = node.as_map()?;
    let mut bound = None;
    for (key, value) in map {
        let comparison = match key.as_str() {
            Some("gt") => Comparison::Greater,
            Some("gte") => Comparison::GreaterOrEqual,
            Some("lt") => Comparison::Less,
            Some("lte") => Comparison::LessOrEqual,
            Some(other) if allowed_extra.contains(&other) => continue,
            _ => continue,
        };
        let measured = if duration {
            parse_duration(ctx, value, what)
        } else {
            match value.scalar_text().and_then(|text| text.parse::<i64>().ok()) {
                Some(count) if count >= 0 => Some(count),
                _ => {
                    ctx.error(value.loc, Problem::BadValue, format!("{what} takes a whole number"));
                    None
                }
            }
        };
        if bound.is_some() {
            ctx.error(
                key.loc,
                Problem::BadValue,
                format!("{what} takes one comparison (gt, gte, lt or lte)"),
            );
        }
        bound = measured.map(|value| Bound { comparison, value });
    }
    if bound.is_none()
        && !map
            .iter()
            .any(|(key, _)| matches!(key.as_str(), Some("gt" | "gte" | "lt" | "lte")))
    {
        ctx.error(
            node.loc,
            Problem::MissingKey,
            format!("{what} needs a comparison: gt, gte, lt or lte"),
        );
    }
    bound
}

fn parse_fields(ctx: &mut FileCtx<'_>, node: &Node, what: &str) -> Vec<Field> {
    ctx.text_list(node, what)
        .into_iter()
        .filter_map(|(name, loc)| {
            let field = Field::parse(&name);
            if field.is_none() {
                ctx.error(loc, Problem::UnknownField, format!("unknown field `{name}` in {what}"));
            }
            field
        })
        .collect()
}

/// The duration under `key` of the `predicate` block `node`, or a located
/// "needs a `key`" error (`hint` says what it is for).
fn required_duration(ctx: &mut FileCtx<'_>, node: &Node, predicate: &str, key: &str, hint: &str) -> Option<i64> {
    match node_of(node, key) {
        Some(value) => parse_duration(ctx, value, &format!("`{predicate}.{key}`")),
        None => {
            ctx.error(
                node.loc,
                Problem::MissingKey,
                format!("`{predicate}` needs a `{key}`{hint}"),
            );
            None
        }
    }
}

/// Compile a `state:` block.
pub fn compile_state(ctx: &mut FileCtx<'_>, node: &Node) -> Option<StateSpec> {
    let mut map = ctx.map(node, "`state`")?;
    let mut spec = StateSpec::default();
    if let Some(value) = map.get("principal_age") {
        check_keys(ctx, value, "`principal_age`", &["gt", "gte", "lt", "lte"]);
        spec.principal_age = parse_bound(ctx, value, "`principal_age`", true, &[]);
    }
    if let Some(value) = map.get("key_idle") {
        check_keys(ctx, value, "`key_idle`", &["gt", "gte", "lt", "lte"]);
        spec.key_idle = parse_bound(ctx, value, "`key_idle`", true, &[]);
    }
    if let Some(value) = map.get("first_seen") {
        let fields = parse_fields(ctx, value, "`first_seen`");
        if fields.is_empty() {
            ctx.error(value.loc, Problem::BadValue, "`first_seen` needs at least one field");
        }
        spec.first_seen = Some(fields);
    }
    if let Some(value) = map.get("count") {
        check_keys(ctx, value, "`count`", &["window", "by", "gt", "gte", "lt", "lte"]);
        let window_ms = required_duration(ctx, value, "count", "window", "");
        let by = node_of(value, "by")
            .map(|by| parse_fields(ctx, by, "`count.by`"))
            .unwrap_or_default();
        let bound = parse_bound(ctx, value, "`count`", false, &["window", "by"]);
        if let (Some(window_ms), Some(bound)) = (window_ms, bound) {
            spec.count = Some(CountSpec { window_ms, by, bound });
        }
    }
    if let Some(value) = map.get("distinct") {
        check_keys(
            ctx,
            value,
            "`distinct`",
            &["field", "window", "by", "new_value", "gt", "gte", "lt", "lte"],
        );
        let field = match node_of(value, "field") {
            Some(field) => parse_fields(ctx, field, "`distinct.field`").into_iter().next(),
            None => {
                ctx.error(value.loc, Problem::MissingKey, "`distinct` needs a `field`");
                None
            }
        };
        let window_ms = required_duration(ctx, value, "distinct", "window", "");
        let by = node_of(value, "by")
            .map(|by| parse_fields(ctx, by, "`distinct.by`"))
            .unwrap_or_default();
        let new_value = node_of(value, "new_value")
            .and_then(|flag| ctx.boolean(flag, "`distinct.new_value`"))
            .unwrap_or(false);
        let bound = parse_bound(ctx, value, "`distinct`", false, &["field", "window", "by", "new_value"]);
        if let (Some(field), Some(window_ms), Some(bound)) = (field, window_ms, bound) {
            spec.distinct = Some(DistinctSpec {
                field,
                window_ms,
                by,
                bound,
                new_value,
            });
        }
    }
    if let Some(value) = map.get("new_address") {
        check_keys(ctx, value, "`new_address`", &["young", "known"]);
        let young = required_duration(ctx, value, "new_address", "young", " (how new the address is)");
        let known = required_duration(
            ctx,
            value,
            "new_address",
            "known",
            " (how long the key must have been seen)",
        );
        if let (Some(young_ms), Some(known_ms)) = (young, known) {
            spec.new_address = Some(NewAddressSpec { young_ms, known_ms });
        }
    }
    map.finish(ctx, STATE_KEYS);
    let empty = spec.principal_age.is_none()
        && spec.new_address.is_none()
        && spec.key_idle.is_none()
        && spec.first_seen.is_none()
        && spec.count.is_none()
        && spec.distinct.is_none();
    (!empty).then_some(spec)
}

fn node_of<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    node.as_map()?
        .iter()
        .find(|(candidate, _)| candidate.as_str() == Some(key))
        .map(|(_, value)| value)
}

/// Report keys of a predicate mapping that are not allowed (or a non-mapping).
fn check_keys(ctx: &mut FileCtx<'_>, node: &Node, what: &str, allowed: &[&str]) {
    if let Some(mut reader) = ctx.map(node, what) {
        for key in allowed {
            reader.get(key);
        }
        reader.finish(ctx, allowed);
    }
}

/// Values of `fields` joined, for state keys.
fn tuple(fields: &[Field], event: &AuditEvent, catalog: &OperationCatalog, scratch: &mut Vec<String>) -> String {
    let mut out = String::new();
    for field in fields {
        field.collect_text(event, catalog, scratch);
        out.push_str(&scratch.join(","));
        out.push('\u{1f}');
    }
    out
}

/// When the event's principal was created, if its creation was seen.
fn principal_created(state: &EngineState, event: &AuditEvent) -> Option<i64> {
    let provider = event.provider.as_str();
    let account = event.account_id.as_deref().unwrap_or("");
    let by_name = event
        .principal
        .name
        .as_deref()
        .and_then(|name| state.principals.get(state_key(&[provider, account, "name", name])));
    let by_id = event
        .principal
        .id
        .as_deref()
        .and_then(|id| state.principals.get(state_key(&[provider, account, "id", id])));
    by_name.or(by_id).copied()
}

impl StateSpec {
    /// Whether its predicates read a `raw.` path (a Sigma correlation may).
    pub fn reads_raw(&self) -> bool {
        let any_raw = |fields: &[Field]| fields.iter().any(Field::is_raw);
        self.first_seen.as_deref().is_some_and(any_raw)
            || self.count.as_ref().is_some_and(|count| any_raw(&count.by))
            || self
                .distinct
                .as_ref()
                .is_some_and(|distinct| distinct.field.is_raw() || any_raw(&distinct.by))
            || self.correlation.is_some()
    }

    /// Evaluate the predicates for an event that satisfied the rule's `match`.
    /// Windows and first-seen tuples record the event whatever the outcome.
    pub fn evaluate(
        &self,
        rule_id: &str,
        event: &AuditEvent,
        state: &mut EngineState,
        catalog: &OperationCatalog,
        scratch: &mut Vec<String>,
    ) -> bool {
        let time = event.time.timestamp_millis();
        let mut holds = true;
        if let Some(bound) = self.principal_age {
            holds &= principal_created(state, event).is_some_and(|created| bound.holds(time - created));
        }
        if let Some(bound) = self.key_idle {
            let idle = event
                .access_key
                .as_ref()
                .filter(|key| !key.temporary)
                .and_then(|key| state.keys.get(state_key(&[event.provider.as_str(), &key.id])))
                .map(|seen| time - seen.last_ms);
            // A key never seen before is new, not idle.
            holds &= idle.is_some_and(|idle| idle >= 0 && bound.holds(idle));
        }
        if let Some(spec) = self.new_address {
            holds &= new_address(state, event).is_some_and(|(key_first, address_first)| {
                time - key_first >= spec.known_ms && address_first.is_none_or(|first| time - first < spec.young_ms)
            });
        }
        if let Some(fields) = &self.first_seen {
            let key = state_key(&[rule_id, "first_seen", &tuple(fields, event, catalog, scratch)]);
            let seen_before = state.first_seen.get(key).is_some_and(|first| *first <= time);
            match state.first_seen.get_mut(key, time) {
                Some(first) => *first = (*first).min(time),
                None => state.first_seen.put(key, time, time),
            }
            holds &= !seen_before;
        }
        if let Some(spec) = &self.count {
            let key = state_key(&[rule_id, "count", &tuple(&spec.by, event, catalog, scratch)]);
            let count = count_in_window(state, key, time, spec.window_ms);
            holds &= spec.bound.holds(count as i64);
        }
        if let Some(spec) = &self.distinct {
            let key = state_key(&[rule_id, "distinct", &tuple(&spec.by, event, catalog, scratch)]);
            spec.field.collect_text(event, catalog, scratch);
            let value = state_key(&[&scratch.join(",")]);
            let (count, was_new) = with_distinct(state, key, time, |window| {
                let was_new = !window
                    .values
                    .iter()
                    .any(|(existing, seen)| *existing == value && *seen >= time - spec.window_ms);
                (distinct_count(window, value, time, spec.window_ms), was_new)
            });
            holds &= spec.bound.holds(count as i64) && (was_new || !spec.new_value);
        }
        if let Some(correlation) = &self.correlation {
            holds &= correlation.evaluate(rule_id, event, state, catalog, scratch);
        }
        holds
    }
}

/// Paths where a creation event names the new user, per cloud.
const CREATED_NAME_PATHS: &[&[&str]] = &[
    &["requestParameters", "userName"],
    &["requestParameters", "Name"],
    &["requestParameters", "UserName"],
    &["request", "user", "name"],
];

/// Paths where a creation event reveals the new user's id.
const CREATED_ID_PATHS: &[&[&str]] = &[
    &["responseElements", "user", "userId"],
    &["responseElements", "Uid"],
    &["responseElements", "Uin"],
    &["response", "user", "id"],
];

fn path_text(value: &Value, path: &[&str]) -> Option<String> {
    let mut current = value;
    for segment in path {
        current = current.get(segment)?;
    }
    crate::event::lenient::text_of(current).map(|text| text.into_owned())
}

/// Update the global state after an event was evaluated: access-key last
/// seen, principals created. `creates_principal` says whether the event's
/// operations include a user creation.
/// The key of a long-term key's address block in the first-seen table, for
/// an event with a long-term key and a public source address.
fn address_block_key(event: &AuditEvent) -> Option<u64> {
    let key = event.access_key.as_ref().filter(|key| !key.temporary)?;
    if event.source_ip_kind() != crate::event::model::IpKind::Public {
        return None;
    }
    let block = match event.source.as_ref()?.ip? {
        std::net::IpAddr::V4(ip) => u128::from(u32::from(ip) >> 8),
        std::net::IpAddr::V6(ip) => (u128::from(ip) >> 80) | (1 << 64),
    };
    let base = state_key(&[event.provider.as_str(), "address_block", &key.id]);
    Some(crate::rules::state::mix_key(base, block))
}

/// For `new_address`: when the event's long-term key was first seen, and when
/// it was first seen from the event's address block (`None`: never before).
fn new_address(state: &EngineState, event: &AuditEvent) -> Option<(i64, Option<i64>)> {
    let block = address_block_key(event)?;
    let key = event.access_key.as_ref()?;
    let first = state.keys.get(state_key(&[event.provider.as_str(), &key.id]))?.first_ms;
    Some((first, state.addresses.get(block).copied()))
}

pub fn record_event(state: &mut EngineState, event: &AuditEvent, creates_principal: bool, track_addresses: bool) {
    let time = event.time.timestamp_millis();
    state.advance(time);
    if track_addresses && let Some(block) = address_block_key(event) {
        // Re-touched (and rewritten) at most daily: its time-to-live and
        // eviction order follow use without a store write per event.
        state.addresses.note_first_seen(block, time, 86_400_000);
    }
    if let Some(key) = &event.access_key
        && !key.temporary
    {
        let id = state_key(&[event.provider.as_str(), &key.id]);
        match state.keys.get_mut(id, time) {
            Some(seen) => {
                seen.first_ms = seen.first_ms.min(time);
                if time >= seen.last_ms {
                    seen.last_ms = time;
                    seen.from_inventory = false;
                }
            }
            None => state.keys.put(
                id,
                KeySeen {
                    first_ms: time,
                    last_ms: time,
                    from_inventory: false,
                },
                time,
            ),
        }
    }
    if creates_principal && event.outcome.result == OutcomeResult::Success {
        let provider = event.provider.as_str();
        let account = event.account_id.as_deref().unwrap_or("");
        if let Some(name) = CREATED_NAME_PATHS
            .iter()
            .find_map(|path| path_text(event.raw.value(), path))
        {
            let key = state_key(&[provider, account, "name", &name]);
            state.principals.put(key, time, time);
        }
        if let Some(id) = CREATED_ID_PATHS
            .iter()
            .find_map(|path| path_text(event.raw.value(), path))
        {
            let key = state_key(&[provider, account, "id", &id]);
            state.principals.put(key, time, time);
        }
    }
}
