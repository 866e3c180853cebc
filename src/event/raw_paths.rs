//! The `raw.` paths loaded rules read, and the part of a record they reach.
//!
//! A rule's `raw.requestParameters.userData` used to make the engine (one
//! thread) parse the whole record into a tree, or the normalizer parse it
//! ahead; either way a 1 KB record became a few hundred heap nodes to build
//! and free. Instead the normalizer, which has the record parsed into a tape
//! already, copies out only what the registered paths can reach: for each
//! top-level member a path names, the members its second segments name (the
//! whole value when it is not an object). Lookups on a path the copy covers
//! read the copy; anything else (a sample, a trace, a path registered after
//! the event was read) parses the record as before.
//!
//! The rules also say which events they can read a path of: a rule that
//! reads `raw.requestParameters.bucketPolicy` is only evaluated for the
//! actions its index names (`PutBucketPolicy`). Once a rule set has
//! registered those actions (`register_raw_actions`), only events of them
//! get a copy; any other lookup (an allowlist policy, a path read where no
//! rule said it would be) parses the record, as for an unregistered path.
//! Until a rule set registers its actions, every record gets its copy.
//!
//! Most records hold nothing a path reaches, so the copy is usually empty and
//! costs no allocation: keys are compared by length first, then in any
//! letter case, without lower-casing or hashing them; members that cannot
//! lead anywhere (numbers, booleans, null, objects without a reached member)
//! are not copied. Each set of registered paths is kept for the life of the
//! process (paths are only added, so there are at most as many sets as
//! paths), which lets every copy point at the set it was cut for without a
//! shared reference count.

use crate::text::{FastMap, FastSet};
use std::sync::{Arc, LazyLock, Mutex};

use arc_swap::ArcSwap;
use serde_json::{Map, Value};

use super::json::{Json, JsonObject};
use super::model::Provider;

static RAW_PATHS: LazyLock<ArcSwap<&'static RawPaths>> =
    LazyLock::new(|| ArcSwap::from_pointee(&*Box::leak(Box::default())));

/// Serializes registrations, so each new set is made (and kept) once.
static REGISTER: Mutex<()> = Mutex::new(());

/// Registered `raw.` paths by their first segment. Paths are only added: a
/// rule set loaded later may read more.
#[derive(Clone, Debug, Default)]
pub struct RawPaths {
    firsts: FastMap<String, Reach>,
    /// The same reaches by first segment in any letter case, merged, with
    /// their second segments likewise: what `prune` looks a record's keys up in.
    folded: FoldedNames<FoldedReach>,
    /// The actions whose events are copied, once a rule set has said.
    actions: Option<ActionGate>,
}

/// Which events need the copy (`register_raw_actions`).
#[derive(Clone, Debug, Default)]
struct ActionGate {
    /// Every event of these clouds (`Provider::ALL` order).
    every: [bool; 3],
    actions: FoldedNames<()>,
}

/// What paths under one first segment need.
#[derive(Clone, Debug, Default)]
struct Reach {
    /// A one-segment path (`raw.code`): the whole value.
    whole: bool,
    /// Second segments of longer paths (`raw.requestParameters.userData`).
    seconds: FastSet<String>,
}

/// `Reach`, its second segments compared in any letter case.
#[derive(Clone, Debug, Default)]
struct FoldedReach {
    whole: bool,
    seconds: FoldedNames<()>,
}

/// Names compared in any ASCII letter case, bucketed by length: a key of a
/// length no name has is refused by one index, the rest by comparing bytes.
#[derive(Clone, Debug)]
struct FoldedNames<T> {
    by_len: Vec<Vec<(Box<str>, T)>>,
}

impl<T> Default for FoldedNames<T> {
    fn default() -> Self {
        FoldedNames { by_len: Vec::new() }
    }
}

impl<T: Default> FoldedNames<T> {
    fn get(&self, key: &str) -> Option<&T> {
        self.by_len
            .get(key.len())?
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    }

    fn entry(&mut self, name: &str) -> &mut T {
        if self.by_len.len() <= name.len() {
            self.by_len.resize_with(name.len() + 1, Vec::new);
        }
        let bucket = &mut self.by_len[name.len()];
        let position = match bucket.iter().position(|(known, _)| known.eq_ignore_ascii_case(name)) {
            Some(position) => position,
            None => {
                bucket.push((name.into(), T::default()));
                bucket.len() - 1
            }
        };
        &mut bucket[position].1
    }
}

impl Reach {
    fn add(&mut self, second: Option<&str>) {
        match second {
            Some(second) => {
                self.seconds.insert(second.to_owned());
            }
            None => self.whole = true,
        }
    }
}

impl FoldedReach {
    fn add(&mut self, second: Option<&str>) {
        match second {
            Some(second) => {
                self.seconds.entry(second);
            }
            None => self.whole = true,
        }
    }

    /// What of `value` the second segments can reach; `None` when nothing.
    fn copy(&self, value: Json<'_>) -> Option<Value> {
        if self.whole {
            return Some(value.to_value());
        }
        if let Some(object) = value.as_object() {
            let members: Map<String, Value> = object
                .members()
                .filter(|(member, _)| self.seconds.get(member).is_some())
                .map(|(member, value)| (member.to_owned(), value.to_value()))
                .collect();
            return (!members.is_empty()).then_some(Value::Object(members));
        }
        // A lookup fans out into an array's items and parses a string that
        // holds JSON; anything else ends it.
        let keep = value.as_array().is_some()
            || value
                .as_str()
                .is_some_and(|text| text.trim_start().starts_with(['{', '[']));
        keep.then(|| value.to_value())
    }
}

/// Note a `raw.` path (its segments after `raw.`) a rule, or something
/// else on the engine's thread, reads.
pub fn register_raw_path<S: AsRef<str>>(path: &[S]) {
    let Some(first) = path.first() else {
        return;
    };
    if raw_paths().covers(path) {
        return;
    }
    let _registering = REGISTER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let current = raw_paths();
    if current.covers(path) {
        return;
    }
    RAW_PATHS.store(Arc::new(Box::leak(Box::new(
        current.with_path(first.as_ref(), path.get(1).map(AsRef::as_ref)),
    ))));
}

/// Note the events a loaded rule set (or a trace) can read a registered
/// path of: every event of the clouds in `every`, and events of `actions`
/// (any letter case). Only added to.
pub fn register_raw_actions(every: &[Provider], actions: &[String]) {
    let known = |gate: &ActionGate| {
        every.iter().all(|provider| gate.every[provider.slot()])
            && actions.iter().all(|action| gate.actions.get(action).is_some())
    };
    if raw_paths().actions.as_ref().is_some_and(known) {
        return;
    }
    let _registering = REGISTER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let current = raw_paths();
    if current.actions.as_ref().is_some_and(known) {
        return;
    }
    RAW_PATHS.store(Arc::new(Box::leak(Box::new(current.with_actions(every, actions)))));
}

/// The paths registered so far.
pub fn raw_paths() -> &'static RawPaths {
    **RAW_PATHS.load()
}

impl RawPaths {
    pub fn is_empty(&self) -> bool {
        self.firsts.is_empty()
    }

    /// These paths and `first.second` (or `first` alone).
    fn with_path(&self, first: &str, second: Option<&str>) -> RawPaths {
        let mut paths = self.clone();
        paths.firsts.entry(first.to_owned()).or_default().add(second);
        paths.folded.entry(first).add(second);
        paths
    }

    /// These paths, copied for the events of `every` cloud and of `actions` too.
    fn with_actions(&self, every: &[Provider], actions: &[String]) -> RawPaths {
        let mut paths = self.clone();
        let gate = paths.actions.get_or_insert_with(ActionGate::default);
        for provider in every {
            gate.every[provider.slot()] = true;
        }
        for action in actions {
            gate.actions.entry(action);
        }
        paths
    }

    /// Whether an event of `action` gets a copy: some path is registered
    /// and no rule set has said, or one said it may read this action's.
    pub fn copies_for(&self, provider: Provider, action: &str) -> bool {
        if self.firsts.is_empty() {
            return false;
        }
        match &self.actions {
            None => true,
            Some(gate) => {
                gate.every[provider.slot()]
                    || gate.actions.get(action).is_some()
                    || crate::text::strip_api_version(action).is_some_and(|base| gate.actions.get(base).is_some())
            }
        }
    }

    /// Whether `prune` keeps everything a lookup of `path` reads.
    pub fn covers<S: AsRef<str>>(&self, path: &[S]) -> bool {
        let Some(reach) = path.first().and_then(|first| self.firsts.get(first.as_ref())) else {
            return false;
        };
        match path.get(1) {
            None => reach.whole,
            Some(second) => reach.whole || reach.seconds.contains(second.as_ref()),
        }
    }

    /// The part of a record the registered paths reach, as a tree: every
    /// top-level member whose key equals a registered first segment in any
    /// ASCII letter case (lookups fall back to case-insensitive keys), its
    /// value whole when a one-segment path names it, else only the members
    /// whose keys equal, in any letter case, a second segment registered
    /// under it (arrays and strings holding JSON whole: lookups walk into
    /// them). A member none of whose contents a path can reach is left out,
    /// or kept as `null` where leaving it out would change what a lookup
    /// finds: when a member of the same name in another letter case is kept
    /// (a lookup takes the exact name first), or when it repeats an earlier
    /// member that was kept (duplicate keys keep their last value, as in the
    /// parsed record).
    pub fn prune(&self, record: JsonObject<'_>) -> Map<String, Value> {
        const SKIPPED: usize = 4;
        let mut kept = Map::new();
        let mut skipped: [&str; SKIPPED] = [""; SKIPPED];
        let mut skipped_count = 0;
        for (key, value) in record.members() {
            let Some(reach) = self.folded.get(key) else {
                continue;
            };
            match reach.copy(value) {
                Some(copied) => {
                    kept.insert(key.to_owned(), copied);
                }
                None if kept.contains_key(key) || skipped_count == SKIPPED => {
                    kept.insert(key.to_owned(), Value::Null);
                }
                None => {
                    skipped[skipped_count] = key;
                    skipped_count += 1;
                }
            }
        }
        if !kept.is_empty() {
            for key in &skipped[..skipped_count] {
                let shadowed = kept
                    .keys()
                    .any(|kept_key| kept_key != key && kept_key.eq_ignore_ascii_case(key));
                if shadowed && !kept.contains_key(*key) {
                    kept.insert((*key).to_owned(), Value::Null);
                }
            }
        }
        kept
    }
}

/// What a record's registered paths reach (`RawPaths::prune`), with the
/// paths it was cut for.
#[derive(Clone, Debug)]
pub struct Pruned {
    paths: &'static RawPaths,
    value: Value,
}

impl Pruned {
    pub fn new(paths: &'static RawPaths, record: JsonObject<'_>) -> Pruned {
        let value = Value::Object(paths.prune(record));
        Pruned { paths, value }
    }

    /// The tree to walk for `path`, if this copy holds all it reads.
    pub fn for_path<S: AsRef<str>>(&self, path: &[S]) -> Option<&Value> {
        self.paths.covers(path).then_some(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_made_for_the_events_rules_said_they_read() {
        let none = RawPaths::default();
        assert!(!none.copies_for(Provider::Aws, "PutBucketPolicy"), "no path, no copy");
        let paths = none.with_path("requestParameters", Some("bucketPolicy"));
        // No rule set has said: every event.
        assert!(paths.copies_for(Provider::Aws, "GetObject"));
        let gated = paths.with_actions(
            &[Provider::Huawei],
            &["putbucketpolicy".to_string(), "updatefunctioncode".to_string()],
        );
        assert!(gated.copies_for(Provider::Aws, "PutBucketPolicy"));
        assert!(
            gated.copies_for(Provider::Aws, "UpdateFunctionCode20150331v2"),
            "Lambda's versioned name"
        );
        assert!(!gated.copies_for(Provider::Aws, "GetObject"));
        assert!(!gated.copies_for(Provider::Tencent, "DescribeInstances"));
        assert!(gated.copies_for(Provider::Huawei, "listUsers"), "every Huawei event");
        // Only ever widened.
        let wider = gated.with_actions(&[], &["GetObject".to_string()]);
        assert!(wider.copies_for(Provider::Aws, "getobject") && wider.copies_for(Provider::Aws, "PutBucketPolicy"));
    }

    #[test]
    fn an_event_without_a_copy_reads_its_paths_from_the_whole_record() {
        let text = r#"{"eventName":"GetObject","requestParameters":{"bucketName":"b"}}"#;
        let raw = crate::event::model::Raw::from_text(text.into(), None);
        let path = ["requestParameters".to_string(), "bucketName".to_string()];
        assert_eq!(raw.for_path(&path)["requestParameters"]["bucketName"], "b");
    }
}
