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

use crate::text::{FastMap, FastSet, with_ascii_lowercase};
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use serde_json::{Map, Value};

use super::json::JsonObject;

static RAW_PATHS: LazyLock<ArcSwap<RawPaths>> = LazyLock::new(|| ArcSwap::from_pointee(RawPaths::default()));

/// Registered `raw.` paths by their first segment. Paths are only added: a
/// rule set loaded later may read more.
#[derive(Clone, Debug, Default)]
pub struct RawPaths {
    firsts: FastMap<String, Reach>,
    /// The same reaches by lower-cased first segment, merged, with their
    /// second segments lower-cased: what `prune` looks a record's keys up in.
    folded: FastMap<String, Reach>,
}

/// What paths under one first segment need.
#[derive(Clone, Debug, Default)]
struct Reach {
    /// A one-segment path (`raw.code`): the whole value.
    whole: bool,
    /// Second segments of longer paths (`raw.requestParameters.userData`).
    seconds: FastSet<String>,
}

impl Reach {
    fn add(&mut self, second: Option<&str>, fold: bool) {
        match second {
            Some(second) if fold => {
                self.seconds.insert(second.to_ascii_lowercase());
            }
            Some(second) => {
                self.seconds.insert(second.to_owned());
            }
            None => self.whole = true,
        }
    }
}

/// Note a `raw.` path (its segments after `raw.`) a rule, or something
/// else on the engine's thread, reads.
pub fn register_raw_path<S: AsRef<str>>(path: &[S]) {
    let Some(first) = path.first() else {
        return;
    };
    if RAW_PATHS.load().covers(path) {
        return;
    }
    RAW_PATHS.rcu(|paths| {
        let mut paths = RawPaths::clone(paths);
        let first = first.as_ref();
        let second = path.get(1).map(AsRef::as_ref);
        paths.firsts.entry(first.to_owned()).or_default().add(second, false);
        paths
            .folded
            .entry(first.to_ascii_lowercase())
            .or_default()
            .add(second, true);
        paths
    });
}

/// The paths registered so far.
pub fn raw_paths() -> Arc<RawPaths> {
    RAW_PATHS.load_full()
}

impl RawPaths {
    pub fn is_empty(&self) -> bool {
        self.firsts.is_empty()
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
    /// value whole when a one-segment path names it or it is not an object,
    /// else only the members whose keys equal, in any letter case, a second
    /// segment registered under it. Duplicate keys keep their last value,
    /// as in the parsed record.
    pub fn prune(&self, record: JsonObject<'_>) -> Map<String, Value> {
        let mut kept = Map::new();
        for (key, value) in record.members() {
            let Some(reach) = with_ascii_lowercase(key, |lower| self.folded.get(lower)) else {
                continue;
            };
            let copied = match value.as_object().filter(|_| !reach.whole) {
                Some(object) => Value::Object(
                    object
                        .members()
                        .filter(|(member, _)| with_ascii_lowercase(member, |lower| reach.seconds.contains(lower)))
                        .map(|(member, value)| (member.to_owned(), value.to_value()))
                        .collect(),
                ),
                None => value.to_value(),
            };
            kept.insert(key.to_owned(), copied);
        }
        kept
    }
}

/// What a record's registered paths reach (`RawPaths::prune`), with the
/// paths it was cut for.
#[derive(Clone, Debug)]
pub struct Pruned {
    paths: Arc<RawPaths>,
    value: Value,
}

impl Pruned {
    pub fn new(paths: Arc<RawPaths>, record: JsonObject<'_>) -> Pruned {
        let value = Value::Object(paths.prune(record));
        Pruned { paths, value }
    }

    /// The tree to walk for `path`, if this copy holds all it reads.
    pub fn for_path<S: AsRef<str>>(&self, path: &[S]) -> Option<&Value> {
        self.paths.covers(path).then_some(&self.value)
    }
}
