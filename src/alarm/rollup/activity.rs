//! The god view's data (seeds/001): hourly rollups of every evaluated event
//! and the first sighting of each (access key, source IP) pair, and the
//! `activity` report read back from them.
//!
//! Every event the engine evaluates — matching a rule or not — is counted
//! into hourly rollups keyed by hour, provider, account, principal, source
//! IP, service, action, resource type, error code (empty on success) and call
//! method; the first sighting of each (access key, source IP) pair is kept
//! with its time.
//!
//! Cost per event is one hash of borrowed fields and a counter bump: counts
//! are aggregated in memory per batch (a row is allocated only for a key not
//! yet seen in the batch) and upserted in the batch's one transaction. Known
//! (key, IP) pairs are remembered (loaded from the store at start), so a pair
//! is written only when it is new, appended in event-time order.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use chrono::{DateTime, Utc};
use rusqlite::Transaction;
use serde::Serialize;

use crate::alarm::store::timestamp;
use crate::db::{Db, DbExt, DbResult, Dialect, get};
use crate::db_params;
use crate::event::model::{AuditEvent, CallMethod, OutcomeResult, Provider};

const HOUR_MS: i64 = 3_600_000;
/// Known (key, IP) pairs remembered in memory; past this the memory starts
/// over (a pair seen again is then appended again; readers take the earliest).
/// 7/8 of 2^20: the most a hash table of 2^20 slots holds (a million took
/// one of 2^21, 34 MB instead of 17).
const MAX_KNOWN_PAIRS: usize = 917_504;

/// One hourly count, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HourlyCount {
    /// Start of the hour, epoch milliseconds (UTC).
    pub hour_ms: i64,
    pub provider: Provider,
    pub account_id: String,
    pub principal: String,
    pub source_ip: String,
    pub service: String,
    pub action: String,
    pub resource_type: String,
    /// Empty for successful calls.
    pub error_code: String,
    pub call_method: CallMethod,
    pub count: u64,
    pub failures: u64,
    /// Hash of the key fields: the row's place within its hour in the table.
    pub hash: u32,
}

/// The fields of an hourly count, borrowed from an event.
#[derive(Hash)]
struct HourKey<'a> {
    hour_ms: i64,
    provider: Provider,
    account_id: &'a str,
    principal: &'a str,
    source_ip: &'a str,
    service: &'a str,
    action: &'a str,
    resource_type: &'a str,
    error_code: &'a str,
    call_method: CallMethod,
}

impl<'a> HourKey<'a> {
    fn of(event: &'a AuditEvent) -> HourKey<'a> {
        let error_code = match event.outcome.result {
            OutcomeResult::Failure => event.outcome.error_code.as_deref().unwrap_or(""),
            OutcomeResult::Success => "",
        };
        HourKey {
            hour_ms: event.time.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS,
            provider: event.provider,
            account_id: event.account_id.as_deref().unwrap_or(""),
            principal: event.principal_display(),
            source_ip: event.source_ip_text().unwrap_or(""),
            service: &event.service,
            action: &event.action,
            resource_type: event.resource.resource_type.as_deref().unwrap_or(""),
            error_code,
            call_method: event.call_method,
        }
    }

    fn matches(&self, row: &HourlyCount) -> bool {
        self.hour_ms == row.hour_ms
            && self.provider == row.provider
            && self.call_method == row.call_method
            && self.action == row.action
            && self.principal == row.principal
            && self.source_ip == row.source_ip
            && self.account_id == row.account_id
            && self.service == row.service
            && self.resource_type == row.resource_type
            && self.error_code == row.error_code
    }

    fn to_row(&self) -> HourlyCount {
        HourlyCount {
            hour_ms: self.hour_ms,
            provider: self.provider,
            account_id: self.account_id.to_string(),
            principal: self.principal.to_string(),
            source_ip: self.source_ip.to_string(),
            service: self.service.to_string(),
            action: self.action.to_string(),
            resource_type: self.resource_type.to_string(),
            error_code: self.error_code.to_string(),
            call_method: self.call_method,
            count: 0,
            failures: 0,
            hash: 0,
        }
    }
}

/// A small, fast, non-cryptographic hasher (the Fx hash) for in-batch keys.
#[derive(Default)]
struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_i64(&mut self, value: i64) {
        self.add(value as u64);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxBuild = BuildHasherDefault<FxHasher>;

const NO_ROW: u32 = u32::MAX;

/// Hourly counts of one batch: rows, and a hash index with collision chains.
#[derive(Default)]
pub(super) struct HourlyCounts {
    rows: Vec<HourlyCount>,
    /// For each row, the next row with the same hash (or `NO_ROW`).
    chain: Vec<u32>,
    index: HashMap<u64, u32, FxBuild>,
}

impl HourlyCounts {
    pub(super) fn add(&mut self, event: &AuditEvent) {
        let key = HourKey::of(event);
        let mut hasher = FxHasher::default();
        key.hash(&mut hasher);
        let hash = hasher.finish();
        let failed = event.outcome.result == OutcomeResult::Failure;
        let head = self.index.get(&hash).copied().unwrap_or(NO_ROW);
        let mut slot = head;
        while let Some(row) = self.rows.get_mut(slot as usize) {
            if key.matches(row) {
                row.count += 1;
                row.failures += u64::from(failed);
                return;
            }
            slot = self.chain.get(slot as usize).copied().unwrap_or(NO_ROW);
        }
        let Ok(position) = u32::try_from(self.rows.len()) else {
            return;
        };
        let mut row = key.to_row();
        row.count = 1;
        row.failures = u64::from(failed);
        row.hash = ((hash >> 32) ^ hash) as u32;
        self.rows.push(row);
        self.chain.push(head);
        self.index.insert(hash, position);
    }

    pub(super) fn take(&mut self) -> Vec<HourlyCount> {
        self.index.clear();
        self.chain.clear();
        std::mem::take(&mut self.rows)
    }

    /// Keep a taken vector's room for the next batch (`Activity::recycle`).
    pub(super) fn recycle(&mut self, mut rows: Vec<HourlyCount>) {
        rows.clear();
        if self.rows.is_empty() && rows.capacity() > self.rows.capacity() {
            self.rows = rows;
        }
    }
}

/// A first-seen (access key, source IP) pair, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyIpPair {
    pub access_key_id: String,
    pub source_ip: String,
    pub provider: String,
    pub account_id: String,
    pub principal: String,
    pub first_seen: String,
    #[serde(skip)]
    pub first_ms: i64,
}

fn pair_hash(key: &str, ip: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    (key, ip).hash(&mut hasher);
    hasher.finish()
}

/// First sightings of (key, IP) pairs.
#[derive(Default)]
pub(super) struct PairTracker {
    /// Hash of (key, IP) → the earliest time already written. A 64-bit
    /// SipHash: a collision (about one in 10^13 for a million pairs) would
    /// hide one new pair.
    known: HashMap<u64, i64, FxBuild>,
    /// Hash → position in `rows`, for this batch.
    batch: HashMap<u64, usize, FxBuild>,
    rows: Vec<KeyIpPair>,
}

impl PairTracker {
    pub(super) fn add(&mut self, event: &AuditEvent) {
        let (Some(key), Some(ip)) = (
            event.access_key_id().filter(|key| !key.is_empty()),
            event.source_ip_text().filter(|ip| !ip.is_empty()),
        ) else {
            return;
        };
        let hash = pair_hash(key, ip);
        let time = event.time.timestamp_millis();
        match self.known.get_mut(&hash) {
            Some(first) if *first <= time => return,
            Some(first) => *first = time,
            None => {
                if self.known.len() >= MAX_KNOWN_PAIRS {
                    self.known.clear();
                }
                self.known.insert(hash, time);
            }
        }
        let row = KeyIpPair {
            access_key_id: key.to_string(),
            source_ip: ip.to_string(),
            provider: event.provider.as_str().to_string(),
            account_id: event.account_id.clone().unwrap_or_default(),
            principal: event.principal_display().to_string(),
            first_seen: timestamp(event.time),
            first_ms: time,
        };
        match self.batch.get(&hash).and_then(|position| self.rows.get_mut(*position)) {
            Some(existing) => *existing = row,
            None => {
                self.batch.insert(hash, self.rows.len());
                self.rows.push(row);
            }
        }
    }

    pub(super) fn take(&mut self) -> Vec<KeyIpPair> {
        self.batch.clear();
        std::mem::take(&mut self.rows)
    }

    /// Keep a taken vector's room for the next batch (`Activity::recycle`).
    pub(super) fn recycle(&mut self, mut rows: Vec<KeyIpPair>) {
        rows.clear();
        if self.rows.is_empty() && rows.capacity() > self.rows.capacity() {
            self.rows = rows;
        }
    }

    /// Remember a pair already in the store.
    pub(super) fn remember(&mut self, key: &str, ip: &str, first_ms: i64) {
        if self.known.len() >= MAX_KNOWN_PAIRS {
            return;
        }
        let first = self.known.entry(pair_hash(key, ip)).or_insert(first_ms);
        *first = (*first).min(first_ms);
    }
}

/// Keys tried for one hourly row before giving up (collisions need one).
pub(super) const MAX_PROBES: u32 = 1024;

/// The first key of the hour holding `time_ms`.
pub(super) fn hour_key(time_ms: i64) -> i64 {
    time_ms.div_euclid(HOUR_MS).saturating_mul(1 << 32)
}

/// The first key of the first hour starting at or after `time_ms`.
fn hour_key_ceil(time_ms: i64) -> i64 {
    let hour = time_ms.div_euclid(HOUR_MS) + i64::from(time_ms.rem_euclid(HOUR_MS) != 0);
    hour.saturating_mul(1 << 32)
}

/// Add a batch's hourly counts to their rows, inside `transaction`.
pub(super) fn write_hourly(transaction: &Transaction<'_>, hourly: &[HourlyCount]) -> rusqlite::Result<()> {
    if !hourly.is_empty() {
        // Adds to the row with the same key columns; a different row on the
        // key (a hash collision) leaves nothing changed, and the next key is tried.
        let mut upsert = transaction.prepare_cached(
            "INSERT INTO activity_hourly (key, hour_ms, provider, account_id, principal, source_ip, service, action, \
             resource_type, error_code, call_method, count, failures) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (key) DO UPDATE SET count = count + excluded.count, failures = failures + excluded.failures \
             WHERE action = excluded.action AND principal = excluded.principal AND source_ip = excluded.source_ip \
             AND account_id = excluded.account_id AND provider = excluded.provider AND service = excluded.service \
             AND resource_type = excluded.resource_type AND error_code = excluded.error_code \
             AND call_method = excluded.call_method AND hour_ms = excluded.hour_ms",
        )?;
        for row in hourly {
            let base = hour_key(row.hour_ms);
            let mut probe = row.hash;
            let mut written = false;
            // Bound once; only the key changes between tries.
            upsert.raw_bind_parameter(2, row.hour_ms)?;
            upsert.raw_bind_parameter(3, row.provider.as_str())?;
            upsert.raw_bind_parameter(4, &row.account_id)?;
            upsert.raw_bind_parameter(5, &row.principal)?;
            upsert.raw_bind_parameter(6, &row.source_ip)?;
            upsert.raw_bind_parameter(7, &row.service)?;
            upsert.raw_bind_parameter(8, &row.action)?;
            upsert.raw_bind_parameter(9, &row.resource_type)?;
            upsert.raw_bind_parameter(10, &row.error_code)?;
            upsert.raw_bind_parameter(11, row.call_method.as_str())?;
            upsert.raw_bind_parameter(12, row.count as i64)?;
            upsert.raw_bind_parameter(13, row.failures as i64)?;
            for _ in 0..MAX_PROBES {
                upsert.raw_bind_parameter(1, base + i64::from(probe))?;
                if upsert.raw_execute()? > 0 {
                    written = true;
                    break;
                }
                probe = probe.wrapping_add(1);
            }
            if !written {
                tracing::error!(hour_ms = row.hour_ms, principal = %row.principal, action = %row.action, count = row.count, "activity rollup: no free key in this hour after {MAX_PROBES} tries; count dropped");
            }
        }
    }
    Ok(())
}

/// Append a batch's first-seen (key, IP) pairs, inside `transaction`.
pub(super) fn write_key_ips(transaction: &Transaction<'_>, key_ips: &[KeyIpPair]) -> rusqlite::Result<()> {
    if !key_ips.is_empty() {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO activity_key_ips (access_key_id, source_ip, provider, account_id, principal, first_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for pair in key_ips {
            insert.raw_bind_parameter(1, &pair.access_key_id)?;
            insert.raw_bind_parameter(2, &pair.source_ip)?;
            insert.raw_bind_parameter(3, &pair.provider)?;
            insert.raw_bind_parameter(4, &pair.account_id)?;
            insert.raw_bind_parameter(5, &pair.principal)?;
            insert.raw_bind_parameter(6, pair.first_ms)?;
            insert.raw_execute()?;
        }
    }
    Ok(())
}

/// The range and size of an activity report.
#[derive(Clone, Debug, Default)]
pub struct ActivityQuery {
    /// Inclusive; rollups count from the start of this hour.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    /// Rows per list.
    pub top: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrincipalActivity {
    pub provider: String,
    pub account_id: String,
    pub principal: String,
    pub events: u64,
    pub failures: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceIpActivity {
    pub source_ip: String,
    pub events: u64,
    pub failures: u64,
    /// Distinct principals calling from this address.
    pub principals: u64,
    /// `China-Beijing`, or "region unknown" (`[geoip]`).
    pub region: String,
}

/// Calls of one API (service and action) of one cloud.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiActivity {
    pub provider: String,
    pub service: String,
    pub action: String,
    pub events: u64,
    pub failures: u64,
    /// Distinct principals calling it.
    pub principals: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountFailures {
    pub provider: String,
    pub account_id: String,
    pub events: u64,
    pub failures: u64,
    /// failures / events.
    pub failure_rate: f64,
}

/// One hour of the range: what the console's activity chart draws.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HourActivity {
    /// Start of the hour (UTC, RFC 3339).
    pub hour: String,
    pub events: u64,
    pub failures: u64,
}

/// `trailwarden activity`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActivityReport {
    pub since: Option<String>,
    pub until: Option<String>,
    pub events: u64,
    pub failures: u64,
    /// Events and failures per hour with any activity, oldest first (hours
    /// without events are left out).
    pub hourly: Vec<HourActivity>,
    pub busiest_principals: Vec<PrincipalActivity>,
    pub busiest_source_ips: Vec<SourceIpActivity>,
    pub busiest_apis: Vec<ApiActivity>,
    pub failure_rates: Vec<AccountFailures>,
    /// Pairs first seen in the range (at most `top`), earliest first.
    pub new_key_ips: Vec<KeyIpPair>,
    pub new_key_ips_total: u64,
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub fn activity_report(db: &mut dyn Db, query: &ActivityQuery) -> DbResult<ActivityReport> {
    // Hours that start before `until` and end after the start of `since`'s hour.
    let key_low = query.since.map_or(i64::MIN, |since| hour_key(since.timestamp_millis()));
    let key_high = query
        .until
        .map_or(i64::MAX, |until| hour_key_ceil(until.timestamp_millis()));
    let since = query.since.map(timestamp);
    let until = query.until.map(timestamp);
    let top = i64::from(query.top);
    let range = db_params![key_low, key_high];
    let ranked = db_params![key_low, key_high, top];
    let (events, failures) = db
        .query_opt(
            "SELECT COALESCE(SUM(count), 0), COALESCE(SUM(failures), 0) FROM activity_hourly \
             WHERE key >= ?1 AND key < ?2",
            range,
            |row| Ok((count(get(row, 0)?), count(get(row, 1)?))),
        )?
        .unwrap_or_default();
    let hourly = db.query_all(
        "SELECT hour_ms, SUM(count), SUM(failures) FROM activity_hourly WHERE key >= ?1 AND key < ?2 \
         GROUP BY hour_ms ORDER BY hour_ms",
        range,
        |row| {
            let hour_ms: i64 = get(row, 0)?;
            Ok(HourActivity {
                hour: timestamp(DateTime::from_timestamp_millis(hour_ms).unwrap_or_default()),
                events: count(get(row, 1)?),
                failures: count(get(row, 2)?),
            })
        },
    )?;
    let busiest_principals = db.query_all(
        "SELECT provider, account_id, principal, SUM(count) AS events, SUM(failures) FROM activity_hourly \
         WHERE key >= ?1 AND key < ?2 GROUP BY provider, account_id, principal \
         ORDER BY events DESC, provider, account_id, principal LIMIT ?3",
        ranked,
        |row| {
            Ok(PrincipalActivity {
                provider: get(row, 0)?,
                account_id: get(row, 1)?,
                principal: get(row, 2)?,
                events: count(get(row, 3)?),
                failures: count(get(row, 4)?),
            })
        },
    )?;
    let mut busiest_source_ips = db.query_all(
        "SELECT source_ip, SUM(count) AS events, SUM(failures), COUNT(DISTINCT provider || '/' || account_id || '/' || principal) \
         FROM activity_hourly WHERE key >= ?1 AND key < ?2 AND source_ip != '' GROUP BY source_ip \
         ORDER BY events DESC, source_ip LIMIT ?3",
        ranked,
        |row| {
            Ok(SourceIpActivity {
                source_ip: get(row, 0)?,
                events: count(get(row, 1)?),
                failures: count(get(row, 2)?),
                principals: count(get(row, 3)?),
                region: String::new(),
            })
        },
    )?;
    for row in &mut busiest_source_ips {
        row.region = crate::geoip::region_of(&row.source_ip).label;
    }
    let busiest_apis = db.query_all(
        "SELECT provider, service, action, SUM(count) AS events, SUM(failures), \
         COUNT(DISTINCT account_id || '/' || principal) FROM activity_hourly WHERE key >= ?1 AND key < ?2 \
         GROUP BY provider, service, action ORDER BY events DESC, provider, service, action LIMIT ?3",
        ranked,
        |row| {
            Ok(ApiActivity {
                provider: get(row, 0)?,
                service: get(row, 1)?,
                action: get(row, 2)?,
                events: count(get(row, 3)?),
                failures: count(get(row, 4)?),
                principals: count(get(row, 5)?),
            })
        },
    )?;
    let failure_rates = db.query_all(
        "SELECT provider, account_id, SUM(count) AS events, SUM(failures) AS failed FROM activity_hourly \
         WHERE key >= ?1 AND key < ?2 GROUP BY provider, account_id \
         ORDER BY CAST(SUM(failures) AS REAL) / CAST(SUM(count) AS REAL) DESC, events DESC, provider, account_id \
         LIMIT ?3",
        ranked,
        |row| {
            let events = count(get(row, 2)?);
            let failures = count(get(row, 3)?);
            Ok(AccountFailures {
                provider: get(row, 0)?,
                account_id: get(row, 1)?,
                events,
                failures,
                failure_rate: if events == 0 {
                    0.0
                } else {
                    failures as f64 / events as f64
                },
            })
        },
    )?;
    let low = query.since.map_or(i64::MIN, |since| since.timestamp_millis());
    let high = query.until.map_or(i64::MAX, |until| until.timestamp_millis());
    // A pair is new in the range when its earliest sighting is. SQLite takes
    // the other columns from the row holding MIN(first_ms); PostgreSQL's
    // DISTINCT ON takes the first row in that order.
    let earliest = match db.dialect() {
        Dialect::Sqlite => {
            "SELECT access_key_id, source_ip, provider, account_id, principal, MIN(first_ms) AS first_at \
             FROM activity_key_ips WHERE first_ms < ?2 GROUP BY access_key_id, source_ip \
             HAVING first_at >= ?1"
        }
        Dialect::Postgres => {
            "SELECT * FROM (SELECT DISTINCT ON (access_key_id, source_ip) access_key_id, source_ip, provider, \
             account_id, principal, first_ms AS first_at FROM activity_key_ips WHERE first_ms < ?2 \
             ORDER BY access_key_id, source_ip, first_ms, id) AS earliest WHERE first_at >= ?1"
        }
    };
    let new_key_ips_total = db
        .query_opt(
            &format!("SELECT COUNT(*) FROM ({earliest}) AS pairs"),
            db_params![low, high],
            |row| Ok(count(get(row, 0)?)),
        )?
        .unwrap_or(0);
    let new_key_ips = db.query_all(
        &format!("{earliest} ORDER BY first_at, access_key_id, source_ip LIMIT ?3"),
        db_params![low, high, top],
        |row| {
            let first_ms: i64 = get(row, 5)?;
            Ok(KeyIpPair {
                access_key_id: get(row, 0)?,
                source_ip: get(row, 1)?,
                provider: get(row, 2)?,
                account_id: get(row, 3)?,
                principal: get(row, 4)?,
                first_seen: timestamp(DateTime::from_timestamp_millis(first_ms).unwrap_or_default()),
                first_ms,
            })
        },
    )?;
    Ok(ActivityReport {
        since,
        until,
        events,
        failures,
        hourly,
        busiest_principals,
        busiest_source_ips,
        busiest_apis,
        failure_rates,
        new_key_ips,
        new_key_ips_total,
    })
}

/// Feed the pairs already stored (the most recent first, up to the memory's
/// size) to `remember`, so a restarted engine does not write them again.
pub fn load_pairs(db: &mut dyn Db, remember: &mut dyn FnMut(&str, &str, i64)) -> DbResult<usize> {
    let mut loaded = 0;
    db.query_each(
        "SELECT access_key_id, source_ip, first_ms FROM activity_key_ips ORDER BY id DESC LIMIT ?1",
        db_params![i64::try_from(MAX_KNOWN_PAIRS).unwrap_or(i64::MAX)],
        &mut |row| {
            let key: String = get(row, 0)?;
            let ip: String = get(row, 1)?;
            remember(&key, &ip, get(row, 2)?);
            loaded += 1;
            Ok(())
        },
    )?;
    Ok(loaded)
}
