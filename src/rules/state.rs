//! Engine state: what stateful predicates remember, bounded in memory and
//! persisted with the alarms it produced.
//!
//! Five tables, each a hash map from a 64-bit key (FNV-1a of the identifying
//! text, stable across versions) to a small value, all on **event time**:
//! - `keys`: when each access key was first and last seen (idle keys);
//! - `principals`: when a principal was created, by account + user name and by
//!   account + principal id (new users);
//! - `first_seen`: tuples a rule has seen (first-seen predicates);
//! - `windows`: event times per rule and group (sliding counts);
//! - `distinct`: value hashes with times per rule and group (distinct counts).
//!
//! Every table has a cap and a time-to-live; when a table grows past its cap
//! the least recently touched tenth is evicted (counted, logged). Changes are
//! tracked and written by the store in the same transaction as the alarms of
//! the batch that caused them.

use std::collections::VecDeque;

use crate::text::{FastMap, FastSet};

/// FNV-1a 64 over several parts, with a separator so ("ab","c") ≠ ("a","bc").
pub fn state_key(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes() {
            hash ^= u64::from(byte.to_ascii_lowercase());
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl BoundedTable<i64> {
    /// Note a sighting at `time_ms` in a first-seen table. An entry that
    /// already holds an earlier time, touched less than `refresh_ms` ago,
    /// is left alone: nothing changed worth writing to the store (the same
    /// key seen on every event would otherwise be rewritten every batch).
    pub fn note_first_seen(&mut self, key: u64, time_ms: i64, refresh_ms: i64) {
        match self.entries.get_mut(&key) {
            Some((first, touched)) if *first <= time_ms && time_ms - *touched < refresh_ms => {}
            Some((first, touched)) => {
                *first = (*first).min(time_ms);
                *touched = (*touched).max(time_ms);
                self.dirty.insert(key);
            }
            None => self.put(key, time_ms, time_ms),
        }
    }
}

/// A state key combined with a number (an address block): no text built.
pub fn mix_key(base: u64, value: u128) -> u64 {
    let mut hash = base;
    for byte in value.to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Default most entries per state table (`state.max_entries`): a full table
/// fits a hash table of 2^19 slots (which holds up to 458 752); the earlier
/// 500 000 took one of 2^20, twice the memory (about 20 MB more per full
/// table of access keys).
pub const DEFAULT_MAX_ENTRIES: usize = 450_000;

/// Limits of the state tables.
#[derive(Clone, Debug)]
pub struct StateLimits {
    /// Most entries per table.
    pub max_entries: usize,
    /// How long an access key's last-seen time is kept (must exceed every idle window in the rules).
    pub key_ttl_ms: i64,
    /// How long a principal's creation time is kept.
    pub principal_ttl_ms: i64,
    /// How long a first-seen tuple is remembered.
    pub first_seen_ttl_ms: i64,
}

impl Default for StateLimits {
    fn default() -> StateLimits {
        const DAY: i64 = 86_400_000;
        StateLimits {
            max_entries: DEFAULT_MAX_ENTRIES,
            key_ttl_ms: 400 * DAY,
            principal_ttl_ms: 30 * DAY,
            first_seen_ttl_ms: 90 * DAY,
        }
    }
}

/// Last and first use of an access key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySeen {
    pub first_ms: i64,
    pub last_ms: i64,
    /// The last use is the key inventory's (`state import`), not an event trailwarden saw.
    pub from_inventory: bool,
}

/// A table with a cap and eviction of the least recently touched entries.
#[derive(Debug)]
pub struct BoundedTable<V> {
    entries: FastMap<u64, (V, i64)>,
    cap: usize,
    /// Keys changed or removed since the last `take_changes`.
    dirty: FastSet<u64>,
    pub evictions: u64,
    pub expirations: u64,
    /// Entries removed in place since the table was last rebuilt (each may
    /// have left a tombstone taking room in the hash table).
    tombstones: usize,
    /// When evictions were last logged (at most once a minute).
    last_logged: Option<std::time::Instant>,
    evictions_logged: u64,
}

impl<V: Clone> BoundedTable<V> {
    pub fn new(cap: usize) -> BoundedTable<V> {
        BoundedTable {
            entries: FastMap::default(),
            cap: cap.max(16),
            dirty: FastSet::default(),
            evictions: 0,
            expirations: 0,
            tombstones: 0,
            last_logged: None,
            evictions_logged: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: u64) -> Option<&V> {
        self.entries.get(&key).map(|(value, _)| value)
    }

    pub fn get_mut(&mut self, key: u64, touched_ms: i64) -> Option<&mut V> {
        self.dirty.insert(key);
        self.entries.get_mut(&key).map(|(value, touched)| {
            *touched = (*touched).max(touched_ms);
            value
        })
    }

    /// Insert or replace; `touched_ms` orders eviction and expiry.
    pub fn put(&mut self, key: u64, value: V, touched_ms: i64) {
        self.dirty.insert(key);
        let touched = match self.entries.get(&key) {
            Some((_, old)) => (*old).max(touched_ms),
            None => {
                self.make_room();
                touched_ms
            }
        };
        self.entries.insert(key, (value, touched));
    }

    /// Load without marking dirty (restoring from the store).
    pub fn restore(&mut self, key: u64, value: V, touched_ms: i64) {
        if !self.entries.contains_key(&key) {
            self.make_room();
        }
        self.entries.insert(key, (value, touched_ms));
    }

    /// Evict before a new key would take the table past its cap: the table
    /// never holds more than `cap` entries, so a cap just under a power of
    /// two's 7/8 (the hash table's load) never doubles its memory. A table
    /// whose room was taken by the tombstones of removed entries is rebuilt
    /// rather than grown.
    fn make_room(&mut self) {
        if self.entries.len() >= self.cap {
            self.evict();
        } else if self.tombstones > 0 && self.entries.len() == self.entries.capacity() {
            self.rebuild(|_| false);
        }
    }

    /// Move the entries into a fresh table, leaving out (as removed) those
    /// `gone` picks. Removing entries in place leaves tombstones, and the
    /// hash table, finding no room for the next key while more than half
    /// full, doubles rather than clean them: the access-key and address
    /// tables went from 2^19 to 2^20 slots at their first eviction (90 MB of
    /// a 2 M-event replay's peak, heaptrack). The old table is freed before
    /// the new one is made.
    fn rebuild(&mut self, mut gone: impl FnMut(&(V, i64)) -> bool) {
        let mut kept = Vec::with_capacity(self.entries.len());
        for (key, entry) in std::mem::take(&mut self.entries) {
            if gone(&entry) {
                self.dirty.insert(key);
            } else {
                kept.push((key, entry));
            }
        }
        let room = (kept.len() + kept.len() / 8 + 1).min(self.cap).max(kept.len() + 1);
        self.entries = FastMap::with_capacity_and_hasher(room, Default::default());
        self.entries.extend(kept);
        self.tombstones = 0;
    }

    pub fn remove(&mut self, key: u64) {
        if self.entries.remove(&key).is_some() {
            self.tombstones += 1;
            self.dirty.insert(key);
        }
    }

    /// Drop the least recently touched tenth.
    fn evict(&mut self) {
        let excess = self.entries.len().saturating_sub(self.cap) + self.cap / 10;
        let mut touched: Vec<i64> = self.entries.values().map(|(_, touched)| *touched).collect();
        let nth = excess.min(touched.len().saturating_sub(1));
        let (_, threshold, _) = touched.select_nth_unstable(nth);
        let threshold = *threshold;
        drop(touched);
        let mut removed = 0usize;
        self.rebuild(|(_, touched)| {
            let gone = removed < excess && *touched <= threshold;
            removed += usize::from(gone);
            gone
        });
        self.evictions += removed as u64;
        if self
            .last_logged
            .is_none_or(|logged| logged.elapsed() >= std::time::Duration::from_secs(60))
        {
            tracing::warn!(
                evicted = self.evictions - self.evictions_logged,
                total = self.evictions,
                cap = self.cap,
                "state table full: least recently seen entries evicted (raise state.max_entries to keep more)"
            );
            self.last_logged = Some(std::time::Instant::now());
            self.evictions_logged = self.evictions;
        }
    }

    /// Remove entries not touched since `before_ms`.
    pub fn expire(&mut self, before_ms: i64) {
        let dirty = &mut self.dirty;
        let mut expired = 0u64;
        self.entries.retain(|key, (_, touched)| {
            if *touched < before_ms {
                dirty.insert(*key);
                expired += 1;
                false
            } else {
                true
            }
        });
        self.expirations += expired;
        self.tombstones += expired as usize;
    }

    /// Changed entries (`Some`) and removed ones (`None`) since the last call.
    pub fn take_changes(&mut self) -> Vec<(u64, Option<(V, i64)>)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|key| (key, self.entries.get(&key).cloned()))
            .collect()
    }
}

/// Event times of one rule's group within its window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    pub times: VecDeque<i64>,
}

/// Distinct values of one rule's group within its window: (value hash, last time).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DistinctWindow {
    pub values: VecDeque<(u64, i64)>,
}

/// Most events remembered per window (a burst counter never needs more).
pub const MAX_WINDOW_EVENTS: usize = 4096;

/// All engine state.
#[derive(Debug)]
pub struct EngineState {
    pub limits: StateLimits,
    pub keys: BoundedTable<KeySeen>,
    pub principals: BoundedTable<i64>,
    pub first_seen: BoundedTable<i64>,
    /// (long-term key, address block) → first seen, for `new_address`.
    pub addresses: BoundedTable<i64>,
    pub windows: BoundedTable<Window>,
    pub distinct: BoundedTable<DistinctWindow>,
    /// Newest event time applied; drives expiry.
    pub high_water_ms: i64,
    events_since_expiry: u64,
}

impl EngineState {
    pub fn new(limits: StateLimits) -> EngineState {
        EngineState {
            keys: BoundedTable::new(limits.max_entries),
            principals: BoundedTable::new(limits.max_entries),
            first_seen: BoundedTable::new(limits.max_entries),
            addresses: BoundedTable::new(limits.max_entries),
            windows: BoundedTable::new(limits.max_entries),
            distinct: BoundedTable::new(limits.max_entries),
            limits,
            high_water_ms: i64::MIN,
            events_since_expiry: 0,
        }
    }

    pub fn entries(&self) -> usize {
        self.keys.len()
            + self.principals.len()
            + self.first_seen.len()
            + self.addresses.len()
            + self.windows.len()
            + self.distinct.len()
    }

    pub fn evictions(&self) -> u64 {
        self.keys.evictions
            + self.principals.evictions
            + self.first_seen.evictions
            + self.windows.evictions
            + self.distinct.evictions
    }

    /// Advance the clock; every 10 000 events, drop entries past their TTL.
    pub fn advance(&mut self, time_ms: i64) {
        self.high_water_ms = self.high_water_ms.max(time_ms);
        self.events_since_expiry += 1;
        if self.events_since_expiry >= 10_000 {
            self.events_since_expiry = 0;
            let now = self.high_water_ms;
            self.keys.expire(now.saturating_sub(self.limits.key_ttl_ms));
            self.principals.expire(now.saturating_sub(self.limits.principal_ttl_ms));
            self.first_seen
                .expire(now.saturating_sub(self.limits.first_seen_ttl_ms));
            self.addresses.expire(now.saturating_sub(self.limits.first_seen_ttl_ms));
            // Windows are trimmed as they are used; drop the ones idle for a day.
            self.windows.expire(now.saturating_sub(86_400_000));
            self.distinct.expire(now.saturating_sub(86_400_000));
        }
    }
}

/// Record `time_ms` in the window under `key` (created when missing) and
/// return how many events it holds.
pub fn count_in_window(state: &mut EngineState, key: u64, time_ms: i64, window_ms: i64) -> usize {
    match state.windows.get_mut(key, time_ms) {
        Some(window) => window_count(window, time_ms, window_ms),
        None => {
            let mut window = Window::default();
            let count = window_count(&mut window, time_ms, window_ms);
            state.windows.put(key, window, time_ms);
            count
        }
    }
}

/// Apply `update` to the distinct window under `key` (created when missing).
pub fn with_distinct<R>(
    state: &mut EngineState,
    key: u64,
    time_ms: i64,
    update: impl FnOnce(&mut DistinctWindow) -> R,
) -> R {
    match state.distinct.get_mut(key, time_ms) {
        Some(window) => update(window),
        None => {
            let mut window = DistinctWindow::default();
            let result = update(&mut window);
            state.distinct.put(key, window, time_ms);
            result
        }
    }
}

/// Record `time_ms` in a window of `window_ms` and return how many events it holds.
pub fn window_count(window: &mut Window, time_ms: i64, window_ms: i64) -> usize {
    let position = window.times.partition_point(|existing| *existing <= time_ms);
    window.times.insert(position, time_ms);
    while window.times.front().is_some_and(|oldest| *oldest < time_ms - window_ms) {
        window.times.pop_front();
    }
    while window.times.len() > MAX_WINDOW_EVENTS {
        window.times.pop_front();
    }
    window.times.len()
}

/// Record a value at `time_ms` and return how many distinct values the window holds.
pub fn distinct_count(window: &mut DistinctWindow, value: u64, time_ms: i64, window_ms: i64) -> usize {
    window.values.retain(|(existing, _)| *existing != value);
    window.values.push_back((value, time_ms));
    window.values.retain(|(_, seen)| *seen >= time_ms - window_ms);
    while window.values.len() > MAX_WINDOW_EVENTS {
        window.values.pop_front();
    }
    window.values.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_separated() {
        assert_eq!(state_key(&["a", "b"]), state_key(&["A", "B"]));
        assert_ne!(state_key(&["ab", "c"]), state_key(&["a", "bc"]));
        // Pinned: persisted keys must not change between versions.
        assert_eq!(state_key(&["aws", "AKIAEXAMPLE"]), 0x7f65_e15c_8565_d926);
    }

    #[test]
    fn a_first_sighting_already_known_writes_nothing_until_its_daily_refresh() {
        let mut table: BoundedTable<i64> = BoundedTable::new(100);
        table.note_first_seen(7, 1_000, 86_400_000);
        assert_eq!(table.take_changes().len(), 1, "a new sighting is written");
        table.note_first_seen(7, 5_000, 86_400_000);
        assert!(
            table.take_changes().is_empty(),
            "a later sighting within a day changes nothing"
        );
        table.note_first_seen(7, 500, 86_400_000);
        assert_eq!(
            table.get(7),
            Some(&500),
            "an earlier sighting moves the first time back"
        );
        assert_eq!(table.take_changes().len(), 1);
        table.note_first_seen(7, 90_000_000, 86_400_000);
        assert_eq!(table.get(7), Some(&500));
        assert_eq!(table.take_changes().len(), 1, "touched again after a day");
    }

    #[test]
    fn a_full_table_keeps_its_hash_table_size_through_evictions_and_removals() {
        // 900 fits a hash table of 1 024 slots (at most 896 … 7/8 of them): 890.
        let mut table: BoundedTable<i64> = BoundedTable::new(890);
        for key in 0..890u64 {
            table.put(key, 0, key as i64);
        }
        let full = table.entries.capacity();
        assert!(full < 1024, "a table of 890 took room for {full}");
        // Many evictions, and keys removed and added one by one: removing in
        // place leaves tombstones, which made the next insert double the table.
        for key in 890..20_000u64 {
            table.put(key, 0, key as i64);
            if key % 3 == 0 {
                table.remove(key - 1);
            }
            assert!(
                table.entries.capacity() <= full,
                "the table grew to {} at key {key}",
                table.entries.capacity()
            );
        }
        assert!(table.len() <= 890);
        assert!(table.get(19_999).is_some());
    }

    #[test]
    fn tables_stay_under_their_cap_and_count_evictions() {
        let mut table: BoundedTable<i64> = BoundedTable::new(100);
        for key in 0..1000u64 {
            table.put(key, 0, key as i64);
        }
        assert!(table.len() <= 100);
        assert!(table.evictions >= 900);
        // The most recently touched survive.
        assert!(table.get(999).is_some());
        assert!(table.get(0).is_none());
    }

    #[test]
    fn windows_count_within_their_span_even_out_of_order() {
        let mut window = Window::default();
        assert_eq!(window_count(&mut window, 1000, 300), 1);
        assert_eq!(window_count(&mut window, 1200, 300), 2);
        assert_eq!(window_count(&mut window, 1100, 300), 3);
        assert_eq!(window_count(&mut window, 1500, 300), 2, "1000 and 1100 fall out");
        let mut distinct = DistinctWindow::default();
        assert_eq!(distinct_count(&mut distinct, 1, 0, 100), 1);
        assert_eq!(distinct_count(&mut distinct, 1, 10, 100), 1);
        assert_eq!(distinct_count(&mut distinct, 2, 20, 100), 2);
        assert_eq!(distinct_count(&mut distinct, 3, 200, 100), 1);
    }

    #[test]
    fn changes_are_tracked_for_persistence() {
        let mut table: BoundedTable<i64> = BoundedTable::new(100);
        table.put(1, 10, 10);
        table.put(2, 20, 20);
        table.remove(2);
        let mut changes = table.take_changes();
        changes.sort_by_key(|(key, _)| *key);
        assert_eq!(changes, vec![(1, Some((10, 10))), (2, None)]);
        assert!(table.take_changes().is_empty());
    }
}
