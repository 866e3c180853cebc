//! The generator's state — its random stream, the organisation, the
//! timeline, the key and address pools, the failure cap, the queue of
//! planted records — and the helpers that ordinary traffic (`traffic`) and
//! attacks (`attacks`) share: picking keys, addresses and regions, and
//! turning a call into a record. The `impl Generator` blocks in those files
//! add the two kinds of calls; `mod.rs` drives them.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use crate::event::model::Provider;

use super::call::Call;
use super::organisation::{OFFICE_IPS, Org, Person, PoolPicker, long_term_key, pool_ip};
use super::random::{Rng, hash_text, mix};
use super::render::render;
use super::scenarios::SCENARIOS;
use super::timeline::{DAY_MS, MINUTE_MS, Timeline, utc};
use super::{SynthOptions, SynthRecord};

/// A planted record waiting for its time.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) time_ms: i64,
    pub(super) sequence: u64,
    pub(super) record: SynthRecord,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Pending) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Pending) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Pending) -> Ordering {
        (self.time_ms, self.sequence).cmp(&(other.time_ms, other.sequence))
    }
}

/// Lower bound of the share of a cloud's ordinary records signed with a
/// long-term pool key (AWS and Huawei use role sessions and the console a lot).
fn keyed_share(provider: Provider) -> f64 {
    match provider {
        Provider::Tencent => 0.55,
        Provider::Aws | Provider::Huawei => 0.28,
    }
}

/// Every pool key is used again within this time (when the corpus is dense
/// enough), so ordinary keys never look idle to the `idle-key-reused` rule.
const KEY_REVISIT_MS: i64 = 15 * DAY_MS;
/// Failures allowed per key within `FAILURE_WINDOW_MS`.
const MAX_FAILURES_PER_WINDOW: usize = 2;
const FAILURE_WINDOW_MS: i64 = 10 * MINUTE_MS;
/// Share of ordinary calls that are denied (before the per-key cap).
pub(super) const FAILURE_RATE: f64 = 0.03;

/// The corpus being generated: an iterator of records (see `mod.rs`).
pub(super) struct Generator {
    /// Records to produce in all.
    pub(super) events: usize,
    /// Plant a scenario after every this many ordinary records (0 = never).
    pub(super) attack_every: usize,
    /// Mixed into key ids so that two seeds give unrelated keys.
    pub(super) salt: u64,
    /// The clouds asked for, each once, in the order given.
    pub(super) clouds: Vec<Provider>,
    /// The one random stream every choice draws from, in record order:
    /// that order is what makes the output byte-identical for a seed.
    pub(super) rng: Rng,
    /// Shared so that a method can hold an account while it draws from `rng`.
    pub(super) org: Arc<Org>,
    pub(super) timeline: Timeline,
    /// Slots used so far (each record uses one).
    pub(super) emitted: usize,
    /// Ordinary records so far: the clock of planting.
    pub(super) ordinary: usize,
    /// Planted records waiting for their time, earliest first.
    pub(super) pending: BinaryHeap<Reverse<Pending>>,
    /// Order of planting: keeps records of the same second in step order.
    pub(super) sequence: u64,
    /// Next scenario in the rotation, and how often each was planted.
    pub(super) scenario_turn: usize,
    pub(super) planted_counts: Vec<usize>,
    /// Recent failures: (time, hash of key).
    failures: VecDeque<(i64, u64)>,
    /// Per cloud (in `clouds` order), which of its pool keys signs next.
    key_pickers: Vec<PoolPicker>,
    ip_picker: PoolPicker,
    /// Sizes of the key and address pools (at least 1).
    pub(super) distinct_keys: usize,
    distinct_ips: usize,
    /// Counter for keys made for attacks (never in the ordinary pool).
    fresh_keys: u64,
}

impl Generator {
    pub(super) fn new(options: SynthOptions) -> Generator {
        let mut clouds: Vec<Provider> = Vec::new();
        for provider in if options.clouds.is_empty() {
            Provider::ALL.to_vec()
        } else {
            options.clouds.clone()
        } {
            if !clouds.contains(&provider) {
                clouds.push(provider);
            }
        }
        let seed = options.seed;
        let start_ms = options.start.timestamp_millis();
        let span_ms = options.span.num_milliseconds().max(0);
        let distinct_keys = options.distinct_keys.max(1);
        let distinct_ips = options.distinct_ips.max(1);
        let per_cloud_events = options.events as f64 / clouds.len() as f64;
        let key_pickers = clouds
            .iter()
            .enumerate()
            .map(|(index, provider)| {
                let count = keys_of_cloud(distinct_keys, clouds.len(), index);
                let draws = per_cloud_events * keyed_share(*provider);
                let mut picker = PoolPicker::new(count, draws, seed ^ index as u64);
                // Walk fast enough to come back to every key within KEY_REVISIT_MS.
                let revisit = count as f64 * span_ms as f64 / (draws.max(1.0) * KEY_REVISIT_MS as f64);
                picker.walk_share = picker.walk_share.max(revisit).min(1.0);
                picker
            })
            .collect();
        Generator {
            events: options.events,
            attack_every: options.attack_every,
            salt: mix(seed ^ 0xACCE55),
            rng: Rng::new(seed),
            org: Arc::new(Org::new(seed)),
            timeline: Timeline::new(start_ms, span_ms),
            emitted: 0,
            ordinary: 0,
            pending: BinaryHeap::new(),
            sequence: 0,
            scenario_turn: 0,
            planted_counts: vec![0; SCENARIOS.len()],
            failures: VecDeque::new(),
            key_pickers,
            ip_picker: PoolPicker::new(distinct_ips, options.events as f64, seed ^ 0x1F),
            distinct_keys,
            distinct_ips,
            fresh_keys: 0,
            clouds,
        }
    }

    /// The time of the next slot: its share of the timeline, jittered.
    pub(super) fn slot_time(&mut self) -> i64 {
        let jitter = self.rng.unit();
        self.timeline
            .at((self.emitted as f64 + jitter) / self.events.max(1) as f64)
    }

    /// An ordinary long-term key: (account, user, key id).
    pub(super) fn pool_key(&mut self, provider: Provider) -> (usize, Person, String) {
        let cloud = self
            .clouds
            .iter()
            .position(|candidate| *candidate == provider)
            .unwrap_or(0);
        let local = self.key_pickers[cloud].pick(&mut self.rng);
        let global = (local * self.clouds.len() + cloud).min(self.distinct_keys - 1) as u64;
        let org = Arc::clone(&self.org);
        let accounts = org.accounts(provider);
        let account = local % accounts.len();
        let holder = &accounts[account];
        let user = holder.programmatic[(local / accounts.len()) % holder.programmatic.len()];
        let key = long_term_key(provider, holder, global, self.salt);
        (account, holder.users[user].clone(), key)
    }

    /// A key made for an attack: shaped like the pool's, never in it.
    pub(super) fn fresh_key(&mut self, provider: Provider, account: usize) -> String {
        self.fresh_keys += 1;
        let index = (1u64 << 39) + self.fresh_keys;
        long_term_key(provider, &self.org.accounts(provider)[account], index, self.salt)
    }

    /// Where a long-term key's program runs: one pool address per key, the
    /// source of all its writes (reads also come from people's laptops).
    pub(super) fn key_home_ip(&self, key: &str) -> String {
        pool_ip((super::random::hash_text(key) % self.distinct_ips.max(1) as u64) as usize)
    }

    /// An ordinary source address from the pool.
    pub(super) fn pool_ip(&mut self) -> String {
        let index = self.ip_picker.pick(&mut self.rng);
        pool_ip(index.min(self.distinct_ips - 1))
    }

    /// One of the office addresses (console traffic comes from the office).
    pub(super) fn office_ip(&mut self) -> String {
        pool_ip(self.rng.index(OFFICE_IPS.min(self.distinct_ips)))
    }

    /// A region of the account for a call.
    pub(super) fn region(&mut self, provider: Provider, account: usize) -> String {
        let org = Arc::clone(&self.org);
        let regions = &org.accounts(provider)[account].regions;
        // Most work happens in the home region.
        if self.rng.chance(0.8) {
            regions[0].to_string()
        } else {
            self.rng.pick(regions).to_string()
        }
    }

    /// Whether this key may fail now (at most two failures per ten minutes).
    pub(super) fn may_fail(&mut self, key: Option<&str>, time_ms: i64) -> bool {
        while let Some((time, _)) = self.failures.front() {
            if time_ms - time > FAILURE_WINDOW_MS {
                self.failures.pop_front();
            } else {
                break;
            }
        }
        let hash = hash_text(key.unwrap_or(""));
        let recent = self.failures.iter().filter(|(_, key)| *key == hash).count();
        if recent >= MAX_FAILURES_PER_WINDOW {
            return false;
        }
        self.failures.push_back((time_ms, hash));
        true
    }

    /// `call` rendered in its cloud's shape, as the record the corpus yields.
    pub(super) fn record(&mut self, call: &Call, planted: Option<&'static str>) -> SynthRecord {
        // AWS and Tencent record whole seconds; Huawei's `time` is in ms but
        // whole seconds too keep the three clouds' records in one order.
        let mut call = call.clone();
        call.time_ms = call.time_ms.div_euclid(1000) * 1000;
        let record = render(&self.org, &mut self.rng, &call);
        SynthRecord {
            provider: call.provider,
            time: utc(call.time_ms),
            record,
            planted,
        }
    }

    /// The cloud of the next ordinary record (roughly equal shares).
    pub(super) fn pick_cloud(&mut self) -> Provider {
        *self.rng.pick(&self.clouds)
    }
}

/// How many of `total` pool keys belong to cloud number `cloud`: global key
/// `n` is the cloud's key `n / clouds`, so the pool is dealt round-robin.
pub(super) fn keys_of_cloud(total: usize, clouds: usize, cloud: usize) -> usize {
    (total + clouds - 1 - cloud) / clouds
}
