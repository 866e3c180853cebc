//! Synthetic audit corpora: realistic, deterministic records of Huawei Cloud
//! CTS, Tencent Cloud CloudAudit and AWS CloudTrail, for benchmarks, demos
//! and tests.
//!
//! The generator invents an organisation (per cloud two or three accounts,
//! each with sub-users, roles or agencies, access keys, instances, buckets
//! and databases) and produces its day-to-day activity: mostly read-only API
//! calls, console sign-ins and console reads, cloud-service events, and
//! benign writes in working hours (Monday to Friday, 09:00–19:00
//! Asia/Shanghai). That ordinary traffic is shaped so that the default rule
//! pack in `rules/` rates none of it medium or high: no high-risk,
//! sensitive or privilege-escalation operation, no write between 22:00 and
//! 06:00, no offensive or COS Browser agent, no GitHub hook address, console
//! sign-ins with MFA, no user creation, never more than two failed calls
//! from one key within ten minutes, and every long-term key used again
//! within 15 days (when the corpus has enough calls for that).
//!
//! Into that traffic it plants short attack scenarios (see [`SCENARIOS`]),
//! each written with the clouds' own action names and shapes so that the
//! rule named next to it fires. Every planted record says which scenario it
//! belongs to ([`SynthRecord::planted`]).
//!
//! Everything is derived from [`SynthOptions::seed`] with a small built-in
//! PRNG (splitmix64), so the same options always give byte-identical output.
//! Records are produced lazily in time order; only the steps of attack
//! scenarios already scheduled (a few dozen records) are held in memory, so
//! corpora of millions of records stream in constant memory.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Asia::Shanghai;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Map, Value, json};

use crate::event::model::Provider;

// ------------------------------------------------------------------ public API

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthOptions {
    /// Seed of every random choice: same options, same bytes.
    pub seed: u64,
    /// Number of records to produce (ordinary + planted).
    pub events: usize,
    /// First event time; events spread over `span`, in time order.
    pub start: DateTime<Utc>,
    /// How long the corpus lasts. Activity follows the office day (busier in
    /// working hours, quieter at night and at weekends).
    pub span: Duration,
    /// Plant one attack scenario per this many ordinary records (0 = none).
    pub attack_every: usize,
    /// Which clouds to produce (mixed, roughly equal shares). Empty means all three.
    pub clouds: Vec<Provider>,
    /// Distinct long-term access keys to spread ordinary API traffic over
    /// (lets a test stream a million distinct keys). Console and role
    /// sessions add temporary keys on top. Each key appears once the corpus
    /// holds about as many keyed calls as there are keys.
    pub distinct_keys: usize,
    /// Distinct source IPs to spread ordinary traffic over.
    pub distinct_ips: usize,
}

impl Default for SynthOptions {
    fn default() -> SynthOptions {
        SynthOptions {
            seed: 42,
            events: 10_000,
            start: Utc
                .with_ymd_and_hms(2026, 3, 2, 0, 0, 0)
                .single()
                .expect("2026-03-02T00:00:00Z is a valid time"),
            span: Duration::days(7),
            attack_every: 200,
            clouds: Provider::ALL.to_vec(),
            distinct_keys: 60,
            distinct_ips: 40,
        }
    }
}

/// One generated record.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthRecord {
    pub provider: Provider,
    /// The record's event time (what a normalizer reads from it).
    pub time: DateTime<Utc>,
    /// The raw cloud record, exactly as the cloud would send it.
    pub record: Value,
    /// Name of the planted attack scenario this record belongs to, if any
    /// (a name from [`SCENARIOS`]).
    pub planted: Option<&'static str>,
}

/// What a writer produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SynthSummary {
    /// Records written.
    pub records: usize,
    /// How many of them belong to planted attack scenarios.
    pub planted: usize,
    /// Bytes written: the JSON-lines stream, or the files of an example
    /// directory as stored (gzip where gzipped).
    pub bytes: u64,
    /// Total size of the records as compact JSON (no separators):
    /// `record_bytes / records` is the average record size.
    pub record_bytes: u64,
    /// Huawei CTS records.
    pub huawei: usize,
    /// Tencent CloudAudit records.
    pub tencent: usize,
    /// AWS CloudTrail records.
    pub aws: usize,
    /// Files written (1 for JSON lines).
    pub files: usize,
}

impl SynthSummary {
    /// Average size of a record as compact JSON, in bytes.
    pub fn average_record_bytes(&self) -> f64 {
        if self.records == 0 {
            0.0
        } else {
            self.record_bytes as f64 / self.records as f64
        }
    }

    /// Records of one cloud.
    pub fn count(&self, provider: Provider) -> usize {
        match provider {
            Provider::Huawei => self.huawei,
            Provider::Tencent => self.tencent,
            Provider::Aws => self.aws,
        }
    }

    fn add(&mut self, record: &SynthRecord, json_len: usize) {
        self.records += 1;
        if record.planted.is_some() {
            self.planted += 1;
        }
        self.record_bytes += json_len as u64;
        match record.provider {
            Provider::Huawei => self.huawei += 1,
            Provider::Tencent => self.tencent += 1,
            Provider::Aws => self.aws += 1,
        }
    }
}

/// The attack scenarios: (scenario name, id of the rule it must raise,
/// one-line description). The last three target the stateful rules
/// (`new-user-high-risk-api`, `idle-key-reused`, `denied-call-burst`), which
/// need events evaluated in time order with engine state.
pub const SCENARIOS: &[(&str, &str, &str)] = &[
    (
        "root_key_high_risk",
        "root-key-high-risk-api",
        "The root (main-account) access key, used from a script, lists access keys and creates and deletes a user.",
    ),
    (
        "sdk_high_risk_write",
        "non-console-high-risk-api",
        "A sub-user's key makes high-risk changes through the SDK: a role policy and trust policy (AWS, Tencent), instance user data (Tencent, Huawei), an agency (Huawei).",
    ),
    (
        "access_key_created",
        "access-key-created",
        "A second access key is created for an existing user (CreateAccessKey, Huawei createCredential).",
    ),
    (
        "admin_policy_attached",
        "admin-policy-attached",
        "The administrator policy is attached to a user (AWS AdministratorAccess, Tencent policy id 1).",
    ),
    (
        "off_hours_deletion",
        "off-hours-sensitive-operation",
        "Instances and a bucket are deleted between 02:00 and 04:00 Asia/Shanghai (TerminateInstances, DeleteBucket, deleteServer, deleteBucket).",
    ),
    (
        "github_hook_leaked_key",
        "github-webhook-egress-call",
        "A key leaked on GitHub is tried from GitHub's webhook egress addresses (GetCallerIdentity, DescribeInstances, listServersDetails).",
    ),
    (
        "hacker_tool_agent",
        "hacker-tool-user-agent",
        "A stolen AWS key is exercised with aws-cli on Kali Linux, or validated by TruffleHog.",
    ),
    (
        "cos_browser",
        "cos-browser-api-call",
        "A Tencent key is loaded into COS Browser, which lists buckets and objects.",
    ),
    (
        "remote_command",
        "remote-command-execution",
        "Commands are pushed to instances through Tencent TAT (RunCommand, InvokeCommand), AWS SSM SendCommand or Huawei COC ExecuteScript.",
    ),
    (
        "api_resource_created",
        "resource-created-via-api",
        "A key never seen before starts large instances or a database through the API (RunInstances, CreateDBInstance, createServer, createInstance).",
    ),
    (
        "new_user_high_risk",
        "new-user-high-risk-api",
        "A user is created and given an access key; within hours that new user's key calls high-risk APIs.",
    ),
    (
        "idle_key_reused",
        "idle-key-reused",
        "A key used once goes silent for 45 days, then calls APIs again (planted only when the span allows it).",
    ),
    (
        "denied_call_burst",
        "denied-call-burst",
        "One key makes a burst of twelve denied calls within five minutes (AccessDenied, UnauthorizedOperation, AuthFailure, CTS warning 403).",
    ),
];

/// Clouds each scenario (same order as [`SCENARIOS`]) can be planted on.
const SCENARIO_CLOUDS: &[&[Provider]] = &[
    &Provider::ALL,
    &Provider::ALL,
    &Provider::ALL,
    &[Provider::Aws, Provider::Tencent],
    &Provider::ALL,
    &Provider::ALL,
    &[Provider::Aws],
    &[Provider::Tencent],
    &Provider::ALL,
    &Provider::ALL,
    &Provider::ALL,
    &Provider::ALL,
    &Provider::ALL,
];

/// The clouds a scenario can be planted on (`None` for an unknown name).
pub fn scenario_clouds(name: &str) -> Option<&'static [Provider]> {
    SCENARIOS
        .iter()
        .position(|(scenario, _, _)| *scenario == name)
        .map(|index| SCENARIO_CLOUDS[index])
}

/// Iterator over records in time order. Lazy: records are made as they are
/// pulled, so any number of them streams in constant memory.
pub fn generate(options: SynthOptions) -> impl Iterator<Item = SynthRecord> {
    Generator::new(options)
}

/// Write the corpus as JSON lines (one raw record per line). Returns counts.
pub fn write_jsonl(options: SynthOptions, out: &mut dyn Write) -> io::Result<SynthSummary> {
    let mut out = io::BufWriter::with_capacity(256 << 10, out);
    let mut summary = SynthSummary {
        files: 1,
        ..SynthSummary::default()
    };
    let mut line = Vec::with_capacity(4096);
    for record in generate(options) {
        line.clear();
        serde_json::to_writer(&mut line, &record.record)?;
        summary.add(&record, line.len());
        line.push(b'\n');
        out.write_all(&line)?;
        summary.bytes += line.len() as u64;
    }
    out.flush()?;
    Ok(summary)
}

/// Write a demo directory in each cloud's native delivery shape:
///
/// - AWS: `<dir>/aws/CloudTrail/<account>_CloudTrail_<region>_<yyyymmddThhmmZ>_<random>.json.gz`,
///   each `{"Records":[...]}`, one file per account, region and hour of data;
/// - Tencent: `<dir>/tencent/<yyyymmddhh>/cloudaudit_<n>.json.gz`, gzipped JSON
///   lines, one file per five minutes (`n` = minute / 5; the hour is UTC+8); the
///   first of these files is written plain as `cloudaudit_<n>.jsonl`;
/// - Huawei: `<dir>/huawei/CloudTraces/<region>/<y>/<m>/<d>/system/<SERVICE>/cts_CloudTrace_<region>_<YYYY-MM-DDTHH-MM-SSZ>_<16 hex>.json.gz`,
///   a JSON array per file, one file per region, service and hour; the first
///   of these files is written plain (`.json`).
///
/// Every record goes to exactly one file. Returns counts (`bytes` = bytes on disk).
pub fn write_example_dir(options: SynthOptions, dir: &Path) -> io::Result<SynthSummary> {
    write_example_dir_with_span(options, dir, None)
}

/// Like [`write_example_dir`], with every file covering `file_span` instead
/// of the clouds' own delivery intervals (fewer, larger files: the shipped
/// `examples/` directory uses 12 hours).
pub fn write_example_dir_with_span(
    options: SynthOptions,
    dir: &Path,
    file_span: Option<Duration>,
) -> io::Result<SynthSummary> {
    let span_ms = file_span.map(|span| span.num_milliseconds().max(MINUTE_MS));
    let mut writer = ExampleDir::new(dir, options.seed, span_ms);
    let mut summary = SynthSummary::default();
    for record in generate(options) {
        let len = serde_json::to_vec(&record.record)?.len();
        summary.add(&record, len);
        writer.push(record)?;
    }
    writer.finish()?;
    summary.bytes = writer.bytes;
    summary.files = writer.files;
    Ok(summary)
}

// ------------------------------------------------------------------ PRNG

/// splitmix64: tiny, fast, good enough, and the same on every platform.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(mix(seed ^ 0x5EED_7A11_3A2D_0001))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1).max(1) as u64) as i64
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    fn chars(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| char::from(*self.pick(alphabet))).collect()
    }

    fn hex(&mut self, len: usize) -> String {
        self.chars(HEX, len)
    }

    fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            8 + (b >> 62),
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// The splitmix64 finalizer: a bijection on u64.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, then mixed: a stable hash of a text.
fn hash_text(text: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in text.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    mix(hash)
}

const HEX: &[u8] = b"0123456789abcdef";
const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B36: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `value` in base `alphabet.len()`, exactly `len` digits (injective when
/// `alphabet.len()^len` exceeds every value encoded).
fn encode(mut value: u64, alphabet: &[u8], len: usize) -> String {
    let base = alphabet.len() as u64;
    (0..len)
        .map(|_| {
            let digit = (value % base) as usize;
            value /= base;
            char::from(alphabet[digit])
        })
        .collect()
}

// ------------------------------------------------------------------ time

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// (weekday, hour, minute) in Asia/Shanghai.
fn local(ms: i64) -> (Weekday, u32, u32) {
    let time = utc(ms).with_timezone(&Shanghai);
    (time.weekday(), time.hour(), time.minute())
}

/// Monday to Friday, 09:00–19:00 Asia/Shanghai.
fn working_hours(ms: i64) -> bool {
    let (weekday, hour, _) = local(ms);
    !matches!(weekday, Weekday::Sat | Weekday::Sun) && (9..19).contains(&hour)
}

/// How busy an hour is, relative to a quiet night hour.
fn hour_weight(ms: i64) -> f64 {
    let (weekday, hour, _) = local(ms);
    let weekend = matches!(weekday, Weekday::Sat | Weekday::Sun);
    match (weekend, hour) {
        (false, 9..=18) => 8.0,
        (false, 7..=8 | 19..=21) => 3.0,
        (true, 9..=21) => 2.0,
        _ => 1.0,
    }
}

/// Spreads `events` slots over the span following `hour_weight`.
#[derive(Debug)]
struct Timeline {
    start_ms: i64,
    span_ms: i64,
    /// Weight of each hour of the span (the last one scaled if partial).
    weights: Vec<f64>,
    /// Cumulative weights, inclusive.
    cumulative: Vec<f64>,
}

impl Timeline {
    fn new(start_ms: i64, span_ms: i64) -> Timeline {
        let span_ms = span_ms.max(0);
        let hours = ((span_ms + HOUR_MS - 1) / HOUR_MS).max(1) as usize;
        let mut weights = Vec::with_capacity(hours);
        let mut cumulative = Vec::with_capacity(hours);
        let mut total = 0.0;
        for hour in 0..hours {
            let begin = hour as i64 * HOUR_MS;
            let length = (span_ms - begin).clamp(0, HOUR_MS);
            let fraction = if span_ms == 0 {
                1.0
            } else {
                length as f64 / HOUR_MS as f64
            };
            let weight = hour_weight(start_ms + begin) * fraction;
            total += weight;
            weights.push(weight);
            cumulative.push(total);
        }
        Timeline {
            start_ms,
            span_ms,
            weights,
            cumulative,
        }
    }

    fn end_ms(&self) -> i64 {
        self.start_ms + self.span_ms
    }

    /// The time at fraction `f` (0..1) of the activity.
    fn at(&self, f: f64) -> i64 {
        if self.span_ms == 0 {
            return self.start_ms;
        }
        let total = *self.cumulative.last().unwrap_or(&0.0);
        let target = f.clamp(0.0, 1.0) * total;
        let hour = self
            .cumulative
            .partition_point(|cumulative| *cumulative <= target)
            .min(self.weights.len() - 1);
        let before = if hour == 0 { 0.0 } else { self.cumulative[hour - 1] };
        let weight = self.weights[hour];
        let within = if weight > 0.0 {
            ((target - before) / weight).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let begin = hour as i64 * HOUR_MS;
        let length = (self.span_ms - begin).clamp(0, HOUR_MS);
        (self.start_ms + begin + (within * length as f64) as i64).min(self.end_ms())
    }
}

/// The first instant at or after `ms` when Shanghai's clock shows `hour`:00.
fn next_local_hour(ms: i64, hour: u32) -> i64 {
    let (_, now_hour, now_minute) = local(ms);
    let into_hour = ms.rem_euclid(MINUTE_MS) + i64::from(now_minute) * MINUTE_MS;
    let this_hour_start = ms - into_hour;
    let mut delta_hours = i64::from(hour) - i64::from(now_hour);
    if delta_hours < 0 || (delta_hours == 0 && into_hour > 0) {
        delta_hours += 24;
    }
    this_hour_start + delta_hours * HOUR_MS
}

fn aws_time(ms: i64) -> String {
    utc(ms).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `Mar 3, 2026, 2:05:11 PM`, the way IAM responses show dates.
fn aws_display_time(ms: i64) -> String {
    utc(ms).format("%b %-d, %Y, %-I:%M:%S %p").to_string()
}

fn shanghai_text(ms: i64) -> String {
    utc(ms).with_timezone(&Shanghai).format("%Y-%m-%d %H:%M:%S").to_string()
}

// ------------------------------------------------------------------ organisation

const ACCOUNT_NAMES: &[&str] = &[
    "fin-core-prod",
    "fin-core-dev",
    "data-platform",
    "web-shop-prod",
    "mobile-backend",
    "bi-analytics",
    "infra-shared",
    "payments-prod",
];

const HUMAN_NAMES: &[&str] = &[
    "li.wei",
    "zhang.min",
    "wang.fang",
    "chen.jie",
    "liu.yang",
    "zhao.lei",
    "sun.li",
    "zhou.xin",
    "wu.hao",
    "xu.jing",
    "ma.chao",
    "hu.bin",
    "guo.qiang",
    "lin.na",
    "he.ping",
    "huang.tao",
    "yang.fan",
    "zhu.hong",
    "gao.yu",
    "luo.ming",
];

const BOT_NAMES: &[&str] = &[
    "ops-deploy",
    "ci-runner",
    "backup-sync",
    "monitor-bot",
    "data-etl",
    "terraform",
    "log-shipper",
    "billing-report",
    "k8s-autoscaler",
    "net-admin",
    "cmdb-sync",
    "grafana-reader",
    "jenkins",
    "argo-cd",
    "dns-updater",
    "cert-renewer",
];

const AWS_ROLES: &[&str] = &[
    "ci-deployer",
    "ops-automation",
    "ec2-app-role",
    "lambda-exec-orders",
    "AWSReservedSSO_ReadOnlyAccess_4f2a9c1e7b3d5a60",
];

const HUAWEI_AGENCIES: &[&str] = &["ops_admin_agency", "ecs_obs_agency", "cce_admin_trust"];

const INSTANCE_NAMES: &[&str] = &[
    "web-prod-01",
    "web-prod-02",
    "app-prod-07",
    "batch-worker-11",
    "bastion-01",
    "redis-proxy-02",
    "etl-runner-03",
    "gitlab-runner-05",
];

const BUCKET_STEMS: &[&str] = &["audit-archive", "reports", "static-assets", "backups", "logs"];

/// A person, bot, role or agency.
#[derive(Clone, Debug)]
struct Person {
    name: String,
    id: String,
    /// Which SDK / CLI this identity calls with (index into the cloud's agents).
    tool: usize,
}

#[derive(Clone, Debug)]
struct Instance {
    id: String,
    name: String,
}

#[derive(Debug)]
struct Account {
    /// AWS account id, Tencent root uin, Huawei domain id.
    id: String,
    name: String,
    /// Tencent root uin as a number.
    uin: u64,
    app_id: u64,
    /// AWS: the eight characters an account's key ids share.
    key_tag: String,
    /// Huawei: the root user's id.
    root_id: String,
    /// Huawei: one project id per region.
    projects: Vec<String>,
    regions: Vec<&'static str>,
    users: Vec<Person>,
    /// Users with long-term access keys.
    programmatic: Vec<usize>,
    /// Users who sign in to the console.
    humans: Vec<usize>,
    roles: Vec<Person>,
    instances: Vec<Instance>,
    buckets: Vec<String>,
    databases: Vec<String>,
}

#[derive(Debug)]
struct Org {
    /// Indexed by `cloud_index`.
    clouds: [Vec<Account>; 3],
}

fn cloud_index(provider: Provider) -> usize {
    match provider {
        Provider::Huawei => 0,
        Provider::Tencent => 1,
        Provider::Aws => 2,
    }
}

impl Org {
    fn new(seed: u64) -> Org {
        let mut rng = Rng::new(seed ^ 0x0126_0000_0000_0000);
        let mut names: Vec<&str> = ACCOUNT_NAMES.to_vec();
        shuffle(&mut rng, &mut names);
        let mut next_name = names.into_iter().cycle();
        let clouds = Provider::ALL.map(|provider| {
            let count = 2 + rng.index(2);
            (0..count)
                .map(|_| {
                    let name = next_name.next().unwrap_or("fin-core-prod");
                    Account::new(&mut rng, provider, name)
                })
                .collect::<Vec<_>>()
        });
        Org { clouds }
    }

    fn accounts(&self, provider: Provider) -> &[Account] {
        &self.clouds[cloud_index(provider)]
    }
}

fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for index in (1..items.len()).rev() {
        let other = rng.index(index + 1);
        items.swap(index, other);
    }
}

fn digits(rng: &mut Rng, len: usize) -> String {
    let mut text = String::with_capacity(len);
    text.push(char::from(b'1' + rng.below(9) as u8));
    for _ in 1..len {
        text.push(char::from(b'0' + rng.below(10) as u8));
    }
    text
}

impl Account {
    fn new(rng: &mut Rng, provider: Provider, name: &str) -> Account {
        let uin = 100_000_000_000 + rng.below(9_000_000);
        let id = match provider {
            Provider::Aws => digits(rng, 12),
            Provider::Tencent => uin.to_string(),
            Provider::Huawei => rng.hex(32),
        };
        let regions: Vec<&'static str> = match provider {
            Provider::Aws => {
                if rng.chance(0.5) {
                    vec!["us-east-1", "ap-southeast-1"]
                } else {
                    vec!["us-east-1", "ap-northeast-1"]
                }
            }
            Provider::Tencent => {
                if rng.chance(0.5) {
                    vec!["ap-guangzhou", "ap-shanghai"]
                } else {
                    vec!["ap-guangzhou", "ap-beijing"]
                }
            }
            Provider::Huawei => {
                if rng.chance(0.5) {
                    vec!["cn-north-4", "cn-east-3"]
                } else {
                    vec!["cn-north-4", "ap-southeast-1"]
                }
            }
        };
        let key_tag = rng.chars(B32, 8);
        let mut bots: Vec<&str> = BOT_NAMES.to_vec();
        let mut humans: Vec<&str> = HUMAN_NAMES.to_vec();
        shuffle(rng, &mut bots);
        shuffle(rng, &mut humans);
        let bot_count = 6 + rng.index(4);
        let human_count = 5 + rng.index(7);
        let mut users = Vec::new();
        let mut programmatic = Vec::new();
        let mut human_indexes = Vec::new();
        for bot in &bots[..bot_count] {
            programmatic.push(users.len());
            users.push(person(rng, provider, &key_tag, bot, "AIDA"));
        }
        for human in &humans[..human_count] {
            if rng.chance(0.3) {
                programmatic.push(users.len());
            }
            human_indexes.push(users.len());
            users.push(person(rng, provider, &key_tag, human, "AIDA"));
        }
        let roles = match provider {
            Provider::Aws => AWS_ROLES
                .iter()
                .map(|role| person(rng, provider, &key_tag, role, "AROA"))
                .collect(),
            Provider::Huawei => HUAWEI_AGENCIES
                .iter()
                .map(|agency| person(rng, provider, &key_tag, agency, ""))
                .collect(),
            Provider::Tencent => Vec::new(),
        };
        let mut instance_names: Vec<&str> = INSTANCE_NAMES.to_vec();
        shuffle(rng, &mut instance_names);
        let instances = instance_names[..5]
            .iter()
            .map(|name| Instance {
                id: match provider {
                    Provider::Aws => format!("i-0{}", rng.hex(16)),
                    Provider::Tencent => format!("ins-{}", rng.chars(LOWER_ALNUM, 8)),
                    Provider::Huawei => rng.uuid(),
                },
                name: (*name).to_string(),
            })
            .collect();
        let buckets = BUCKET_STEMS
            .iter()
            .take(3 + rng.index(3))
            .map(|stem| match provider {
                Provider::Tencent => format!("{name}-{stem}-13{}", digits(rng, 8)),
                Provider::Aws => format!("{name}-{stem}-{id}"),
                Provider::Huawei => format!("{name}-{stem}"),
            })
            .collect();
        let databases = (0..2)
            .map(|index| match provider {
                Provider::Aws => format!("{name}-db-{}", index + 1),
                Provider::Tencent => format!("cdb-{}", rng.chars(LOWER_ALNUM, 8)),
                Provider::Huawei => format!("{}in01", rng.hex(32)),
            })
            .collect();
        let projects = regions.iter().map(|_| rng.hex(32)).collect();
        Account {
            id,
            name: name.to_string(),
            uin,
            app_id: 1_300_000_000 + rng.below(99_999_999),
            key_tag,
            root_id: rng.hex(32),
            projects,
            regions,
            users,
            programmatic,
            humans: human_indexes,
            roles,
            instances,
            buckets,
            databases,
        }
    }

    fn project(&self, region: &str) -> &str {
        self.regions
            .iter()
            .position(|candidate| *candidate == region)
            .and_then(|index| self.projects.get(index))
            .map_or("", String::as_str)
    }
}

fn person(rng: &mut Rng, provider: Provider, key_tag: &str, name: &str, aws_prefix: &str) -> Person {
    let id = match provider {
        Provider::Aws => format!("{aws_prefix}{key_tag}{}", rng.chars(B32, 9)),
        Provider::Tencent => format!("100{}", digits(rng, 9)),
        Provider::Huawei => rng.hex(32),
    };
    Person {
        name: name.to_string(),
        id,
        tool: rng.index(4),
    }
}

// ------------------------------------------------------------------ keys and addresses

/// A long-term key id: unique for each `index` (the index is encoded
/// bijectively), shaped like the cloud's keys.
fn long_term_key(provider: Provider, account: &Account, index: u64, salt: u64) -> String {
    let mut filler = Rng::new(mix(index ^ salt) ^ 0xF111);
    match provider {
        Provider::Aws => {
            // Since 2019 AWS key ids carry the account: 8 shared characters.
            let bijective = (index.wrapping_mul(0x9E_3779_B97F) ^ salt) & ((1 << 40) - 1);
            format!("AKIA{}{}", account.key_tag, encode(bijective, B32, 8))
        }
        Provider::Tencent => format!("AKID{}{}", encode(mix(index ^ salt), B62, 11), filler.chars(B62, 21)),
        Provider::Huawei => format!("HPUA{}{}", encode(mix(index ^ salt), B36, 13), filler.chars(B36, 3)),
    }
}

/// A temporary (session) key id, stable for one `session` text.
fn session_key(provider: Provider, account: &Account, session: &str) -> String {
    let mut rng = Rng::new(hash_text(session));
    match provider {
        Provider::Aws => format!("ASIA{}{}", account.key_tag, rng.chars(B32, 8)),
        Provider::Huawei => format!("HSTA{}", rng.chars(B36, 16)),
        // Tencent console sessions also sign with an AKID secret id.
        Provider::Tencent => format!("AKID{}", rng.chars(B62, 32)),
    }
}

/// Realistic addresses: offices first, then home and mobile lines, cloud
/// egress, VPC-internal addresses and other ISPs. None is in GitHub's
/// webhook ranges.
const FIXED_IPS: &[&str] = &[
    "116.228.71.34",
    "58.246.13.90",
    "203.0.113.24",
    "116.228.71.35",
    "58.246.13.91",
    "203.0.113.77",
    "10.20.1.15",
    "10.20.3.41",
    "3.91.44.120",
    "34.229.17.208",
    "159.75.10.22",
    "124.71.93.243",
    "117.136.12.79",
    "223.104.3.155",
    "101.36.103.77",
    "123.112.45.201",
    "221.218.140.57",
    "49.7.22.188",
    "18.206.107.29",
    "52.82.17.203",
    "129.204.87.16",
    "121.36.58.102",
    "43.135.22.61",
    "119.29.44.180",
    "10.32.8.7",
    "10.40.12.88",
    "114.80.34.17",
    "180.160.9.201",
    "183.60.15.88",
    "61.135.169.121",
    "111.206.223.43",
    "42.120.74.5",
    "36.110.236.68",
    "218.17.44.90",
    "125.88.19.222",
    "120.92.77.14",
    "106.52.30.97",
    "175.24.11.203",
    "10.20.7.203",
    "112.64.3.19",
];

/// How many of `FIXED_IPS` are office addresses (console traffic).
const OFFICE_IPS: usize = 6;

/// /16 blocks of Chinese ISPs and clouds for address pools beyond the fixed list.
const IP_BLOCKS: &[(u8, u8)] = &[
    (116, 228),
    (58, 246),
    (101, 36),
    (121, 40),
    (180, 160),
    (183, 60),
    (114, 80),
    (119, 29),
    (124, 71),
    (139, 198),
    (42, 120),
    (36, 110),
    (223, 104),
    (218, 17),
    (61, 135),
    (111, 206),
    (47, 92),
    (49, 7),
    (106, 52),
    (117, 50),
    (120, 92),
    (123, 125),
    (125, 88),
    (175, 24),
];

/// Address number `index` of the pool.
fn pool_ip(index: usize) -> String {
    if let Some(ip) = FIXED_IPS.get(index) {
        return (*ip).to_string();
    }
    let index = index - FIXED_IPS.len();
    let per_block = 254 * 256;
    let (a, b) = IP_BLOCKS[(index / per_block) % IP_BLOCKS.len()];
    let within = index % per_block;
    format!("{a}.{b}.{}.{}", within / 254, within % 254 + 1)
}

/// Attackers' addresses: VPS and Tor exits, none in GitHub's ranges.
const ATTACKER_IPS: &[&str] = &[
    "45.76.218.92",
    "185.220.101.34",
    "91.219.236.174",
    "23.94.187.12",
    "107.189.10.143",
    "198.98.51.189",
    "139.180.144.77",
];

/// GitHub webhook egress addresses (in `github_hook_ranges`).
const GITHUB_HOOK_IPS: &[&str] = &["192.30.252.87", "140.82.115.3", "192.30.253.19", "140.82.114.24"];

/// Draws pool members so that small pools are used unevenly (a few keys and
/// addresses are busy, as in life) while large pools are walked through so
/// that every member appears.
#[derive(Debug)]
struct PoolPicker {
    count: u64,
    /// Probability of taking the next member of the walk.
    walk_share: f64,
    step: u64,
    offset: u64,
    cursor: u64,
}

impl PoolPicker {
    fn new(count: usize, expected_draws: f64, salt: u64) -> PoolPicker {
        let count = count.max(1) as u64;
        let mut step = (mix(salt) % count).max(1);
        while gcd(step, count) != 1 {
            step += 1;
        }
        PoolPicker {
            count,
            walk_share: (2.0 * count as f64 / expected_draws.max(1.0)).min(1.0),
            step,
            offset: mix(salt ^ 1) % count,
            cursor: 0,
        }
    }

    fn pick(&mut self, rng: &mut Rng) -> usize {
        if rng.chance(self.walk_share) {
            let index =
                (u128::from(self.cursor) * u128::from(self.step) + u128::from(self.offset)) % u128::from(self.count);
            self.cursor += 1;
            index as usize
        } else {
            let u = rng.unit();
            ((self.count as f64 * u * u) as u64).min(self.count - 1) as usize
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

// ------------------------------------------------------------------ user agents

const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.2365.92",
];

const TENCENT_SDKS: &[&str] = &[
    "SDK_GO_1.0.374",
    "SDK_PYTHON_3.0.1100",
    "SDK_JAVA_3.1.1022",
    "SDK_GO_1.0.412",
];

/// The Tencent console's own client (as seen in console records).
const TENCENT_CONSOLE_AGENT: &str = "SDK_NODEJS_0.2.1";

const HUAWEI_SDKS: &[&str] = &[
    "huaweicloud-sdk-go/3.1.80",
    "huaweicloud-usdk-python/3.0",
    "huaweicloud-usdk-go/3.0",
    "huaweicloud-sdk-java/3.1.80",
];

/// `DescribeInstances` → `describe-instances`; API-version suffixes dropped.
fn kebab(action: &str) -> String {
    let action = action.trim_end_matches(|c: char| c.is_ascii_digit());
    let mut out = String::with_capacity(action.len() + 4);
    for (index, c) in action.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if index > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn aws_agent(tool: usize, service: &str, action: &str) -> String {
    let command = format!("{service}.{}", kebab(action));
    match tool % 5 {
        0 => format!(
            "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1017-aws exe/x86_64.ubuntu.22 prompt/off command/{command}"
        ),
        1 => format!(
            "aws-cli/2.15.21 Python/3.11.6 Darwin/23.3.0 exe/x86_64 prompt/off command/{command}"
        ),
        2 => "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.5.0-1017-aws md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69".to_string(),
        3 => format!(
            "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/{service}#1.149.3"
        ),
        _ => format!(
            "APN/1.0 HashiCorp/1.0 Terraform/1.7.4 (+https://www.terraform.io) terraform-provider-aws/5.40.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/{service}#1.149.3"
        ),
    }
}

fn agent(provider: Provider, tool: usize, service: &str, action: &str) -> String {
    match provider {
        Provider::Aws => aws_agent(tool, service, action),
        Provider::Tencent => TENCENT_SDKS[tool % TENCENT_SDKS.len()].to_string(),
        Provider::Huawei => HUAWEI_SDKS[tool % HUAWEI_SDKS.len()].to_string(),
    }
}

// ------------------------------------------------------------------ one call

/// How the call reached the cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Api,
    Console,
    System,
}

/// Who made the call.
#[derive(Clone, Debug)]
enum Who {
    Root,
    User(Person),
    /// A role (AWS) or agency (Huawei) session.
    Role {
        role: Person,
        session: String,
    },
    /// A cloud service acting on its own (AWS `invokedBy`; Huawei: no user).
    Service(String),
}

/// What the call did, before the cloud's own shape is applied.
#[derive(Clone, Debug)]
struct Op {
    /// AWS: first label of `eventSource`; Tencent: product; Huawei: lower-case `service_type`.
    service: &'static str,
    action: String,
    read_only: bool,
    request: Value,
    response: Value,
    resource_type: String,
    resource_name: String,
    resource_id: String,
    /// Extra top-level fields (AWS `resources`, `additionalEventData` …).
    extra: Vec<(&'static str, Value)>,
}

impl Op {
    fn new(service: &'static str, action: &str, read_only: bool) -> Op {
        Op {
            service,
            action: action.to_string(),
            read_only,
            request: Value::Null,
            response: Value::Null,
            resource_type: String::new(),
            resource_name: String::new(),
            resource_id: String::new(),
            extra: Vec::new(),
        }
    }

    fn request(mut self, request: Value) -> Op {
        self.request = request;
        self
    }

    fn response(mut self, response: Value) -> Op {
        self.response = response;
        self
    }

    fn resource(mut self, kind: &str, name: &str, id: &str) -> Op {
        self.resource_type = kind.to_string();
        self.resource_name = name.to_string();
        self.resource_id = id.to_string();
        self
    }

    fn extra(mut self, key: &'static str, value: Value) -> Op {
        self.extra.push((key, value));
        self
    }
}

/// One call, ready to be rendered in its cloud's shape.
#[derive(Clone, Debug)]
struct Call {
    provider: Provider,
    time_ms: i64,
    account: usize,
    who: Who,
    key: Option<String>,
    ip: String,
    agent: String,
    region: String,
    method: Method,
    op: Op,
    denied: bool,
    mfa: bool,
}

// ------------------------------------------------------------------ generator

/// A planted record waiting for its time.
#[derive(Debug)]
struct Pending {
    time_ms: i64,
    sequence: u64,
    record: SynthRecord,
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
const FAILURE_RATE: f64 = 0.03;

struct Generator {
    events: usize,
    attack_every: usize,
    salt: u64,
    clouds: Vec<Provider>,
    rng: Rng,
    org: Arc<Org>,
    timeline: Timeline,
    /// Slots used so far (each record uses one).
    emitted: usize,
    ordinary: usize,
    pending: BinaryHeap<Reverse<Pending>>,
    sequence: u64,
    /// Next scenario in the rotation, and how often each was planted.
    scenario_turn: usize,
    planted_counts: Vec<usize>,
    /// Recent failures: (time, hash of key).
    failures: VecDeque<(i64, u64)>,
    key_pickers: Vec<PoolPicker>,
    ip_picker: PoolPicker,
    distinct_keys: usize,
    distinct_ips: usize,
    /// Counter for keys made for attacks (never in the ordinary pool).
    fresh_keys: u64,
}

impl Generator {
    fn new(options: SynthOptions) -> Generator {
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

    fn slot_time(&mut self) -> i64 {
        let jitter = self.rng.unit();
        self.timeline
            .at((self.emitted as f64 + jitter) / self.events.max(1) as f64)
    }

    // ---------------------------------------------------------- identities

    /// An ordinary long-term key: (account, user, key id).
    fn pool_key(&mut self, provider: Provider) -> (usize, Person, String) {
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
    fn fresh_key(&mut self, provider: Provider, account: usize) -> String {
        self.fresh_keys += 1;
        let index = (1u64 << 39) + self.fresh_keys;
        long_term_key(provider, &self.org.accounts(provider)[account], index, self.salt)
    }

    fn pool_ip(&mut self) -> String {
        let index = self.ip_picker.pick(&mut self.rng);
        pool_ip(index.min(self.distinct_ips - 1))
    }

    fn office_ip(&mut self) -> String {
        pool_ip(self.rng.index(OFFICE_IPS.min(self.distinct_ips)))
    }

    fn region(&mut self, provider: Provider, account: usize) -> String {
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
    fn may_fail(&mut self, key: Option<&str>, time_ms: i64) -> bool {
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

    // ---------------------------------------------------------- ordinary activity

    fn ordinary_call(&mut self, provider: Provider, time_ms: i64) -> Call {
        let working = working_hours(time_ms);
        let roll = self.rng.unit();
        match provider {
            Provider::Aws => {
                // Most AWS API traffic comes from role sessions.
                if working {
                    match roll {
                        r if r < 0.19 => self.api_read(provider, time_ms),
                        r if r < 0.25 => self.ci_assume_role(time_ms),
                        r if r < 0.52 => self.role_call(provider, time_ms, false),
                        r if r < 0.62 => self.console_read(provider, time_ms),
                        r if r < 0.66 => self.console_login(provider, time_ms),
                        r if r < 0.77 => self.service_event(provider, time_ms),
                        r if r < 0.84 => self.api_write(provider, time_ms),
                        r if r < 0.93 => self.role_call(provider, time_ms, true),
                        _ => self.console_write(provider, time_ms),
                    }
                } else {
                    match roll {
                        r if r < 0.30 => self.api_read(provider, time_ms),
                        r if r < 0.36 => self.ci_assume_role(time_ms),
                        r if r < 0.76 => self.role_call(provider, time_ms, false),
                        _ => self.service_event(provider, time_ms),
                    }
                }
            }
            Provider::Tencent => {
                if working {
                    match roll {
                        r if r < 0.45 => self.api_read(provider, time_ms),
                        r if r < 0.70 => self.console_read(provider, time_ms),
                        r if r < 0.75 => self.console_login(provider, time_ms),
                        r if r < 0.87 => self.api_write(provider, time_ms),
                        _ => self.console_write(provider, time_ms),
                    }
                } else {
                    self.api_read(provider, time_ms)
                }
            }
            Provider::Huawei => {
                // CTS records few reads: mostly writes, sign-ins and system traces.
                if working {
                    match roll {
                        r if r < 0.10 => self.api_read(provider, time_ms),
                        r if r < 0.22 => self.console_login(provider, time_ms),
                        r if r < 0.32 => self.service_event(provider, time_ms),
                        r if r < 0.50 => self.role_call(provider, time_ms, true),
                        r if r < 0.75 => self.console_write(provider, time_ms),
                        _ => self.api_write(provider, time_ms),
                    }
                } else {
                    match roll {
                        r if r < 0.30 => self.api_read(provider, time_ms),
                        r if r < 0.60 => self.role_call(provider, time_ms, false),
                        _ => self.service_event(provider, time_ms),
                    }
                }
            }
        }
    }

    fn call(&self, provider: Provider, time_ms: i64, account: usize, who: Who, op: Op) -> Call {
        Call {
            provider,
            time_ms,
            account,
            who,
            key: None,
            ip: String::new(),
            agent: String::new(),
            region: String::new(),
            method: Method::Api,
            op,
            denied: false,
            mfa: false,
        }
    }

    /// A read-only SDK / CLI call by a sub-user's long-term key.
    fn api_read(&mut self, provider: Provider, time_ms: i64) -> Call {
        let (account, user, key) = self.pool_key(provider);
        let region = self.region(provider, account);
        let op = self.read_op(provider, account, &region);
        let mut call = self.call(provider, time_ms, account, Who::User(user.clone()), op);
        call.agent = agent(provider, user.tool, call.op.service, &call.op.action);
        call.ip = self.pool_ip();
        call.region = region;
        call.denied = self.rng.chance(FAILURE_RATE) && self.may_fail(Some(&key), time_ms);
        call.key = Some(key);
        call
    }

    /// A benign write by a sub-user's key, in working hours only.
    fn api_write(&mut self, provider: Provider, time_ms: i64) -> Call {
        let (account, user, key) = self.pool_key(provider);
        let region = self.region(provider, account);
        let op = self.write_op(provider, account, &region);
        let mut call = self.call(provider, time_ms, account, Who::User(user.clone()), op);
        call.agent = agent(provider, user.tool, call.op.service, &call.op.action);
        call.ip = self.pool_ip();
        call.region = region;
        call.denied = self.rng.chance(FAILURE_RATE) && self.may_fail(Some(&key), time_ms);
        call.key = Some(key);
        call
    }

    /// A role (AWS) or agency (Huawei) session: reads at any time, writes in working hours.
    fn role_call(&mut self, provider: Provider, time_ms: i64, write: bool) -> Call {
        let org = Arc::clone(&self.org);
        let account = self.rng.index(org.accounts(provider).len());
        let holder = &org.accounts(provider)[account];
        if holder.roles.is_empty() {
            return self.api_read(provider, time_ms);
        }
        let role = self.rng.pick(&holder.roles).clone();
        let session = role_session(provider, holder, &role, time_ms);
        let region = self.region(provider, account);
        let op = if write {
            self.write_op(provider, account, &region)
        } else if provider == Provider::Aws && self.rng.chance(0.3) {
            // Applications decrypt their data keys all day long.
            self.kms_op(holder, &role, &region)
        } else {
            self.read_op(provider, account, &region)
        };
        let key = role_session_key(provider, holder, &role, &session, time_ms);
        let mut call = self.call(
            provider,
            time_ms,
            account,
            Who::Role {
                role: role.clone(),
                session,
            },
            op,
        );
        call.agent = agent(provider, role.tool, call.op.service, &call.op.action);
        call.ip = if provider == Provider::Aws && self.rng.chance(0.6) {
            // From inside the VPC, through an endpoint.
            format!("10.20.{}.{}", self.rng.range(0, 15), self.rng.range(4, 250))
        } else {
            self.pool_ip()
        };
        call.region = region;
        call.denied = self.rng.chance(FAILURE_RATE) && self.may_fail(Some(&key), time_ms);
        call.key = Some(key);
        call
    }

    /// A CI job assumes its deployment role (AWS STS AssumeRole with a user key).
    fn ci_assume_role(&mut self, time_ms: i64) -> Call {
        let provider = Provider::Aws;
        let (account, user, key) = self.pool_key(provider);
        let org = Arc::clone(&self.org);
        let holder = &org.accounts(provider)[account];
        let role = holder.roles[self.rng.index(2)].clone();
        let session = role_session(provider, holder, &role, time_ms);
        let op = self.assume_role_op(holder, &role, &session, time_ms);
        let mut call = self.call(provider, time_ms, account, Who::User(user.clone()), op);
        call.agent = agent(provider, user.tool, "sts", "AssumeRole");
        call.ip = self.pool_ip();
        call.region = self.region(provider, account);
        call.denied = self.rng.chance(FAILURE_RATE) && self.may_fail(Some(&key), time_ms);
        call.key = Some(key);
        call
    }

    /// STS AssumeRole, handing out the session key that session's calls use.
    fn assume_role_op(&mut self, holder: &Account, role: &Person, session: &str, time_ms: i64) -> Op {
        let session_arn = format!("arn:aws:sts::{}:assumed-role/{}/{}", holder.id, role.name, session);
        let role_arn = format!("arn:aws:iam::{}:role/{}", holder.id, role.name);
        let temporary = role_session_key(Provider::Aws, holder, role, session, time_ms);
        Op::new("sts", "AssumeRole", true)
            .request(json!({"roleArn": role_arn, "roleSessionName": session, "durationSeconds": 3600}))
            .response(json!({
                "credentials": {
                    "accessKeyId": temporary,
                    "sessionToken": session_token(&mut self.rng),
                    "expiration": aws_display_time(time_ms + HOUR_MS),
                },
                "assumedRoleUser": {
                    "assumedRoleId": format!("{}:{}", role.id, session),
                    "arn": session_arn,
                }
            }))
            .extra(
                "resources",
                json!([{"accountId": holder.id, "type": "AWS::IAM::Role", "ARN": role_arn}]),
            )
            .extra("sharedEventID", json!(self.rng.uuid()))
    }

    fn human(&mut self, provider: Provider) -> (usize, Who) {
        let org = Arc::clone(&self.org);
        let account = self.rng.index(org.accounts(provider).len());
        let holder = &org.accounts(provider)[account];
        // Tencent main-account owners still use the console now and then.
        if provider == Provider::Tencent && self.rng.chance(0.08) {
            return (account, Who::Root);
        }
        let user = holder.users[*self.rng.pick(&holder.humans)].clone();
        (account, Who::User(user))
    }

    fn console_session_key(&mut self, provider: Provider, account: usize, who: &Who, time_ms: i64) -> String {
        let name = match who {
            Who::User(user) => user.name.as_str(),
            _ => "root",
        };
        let org = Arc::clone(&self.org);
        let holder = &org.accounts(provider)[account];
        session_key(
            provider,
            holder,
            &format!("console/{}/{name}/{}", holder.id, time_ms / (4 * HOUR_MS)),
        )
    }

    fn console_login(&mut self, provider: Provider, time_ms: i64) -> Call {
        let (account, who) = self.human(provider);
        let op = match provider {
            Provider::Aws => Op::new("signin", "ConsoleLogin", false),
            Provider::Tencent => Op::new("account", "ConsoleLogin", false),
            Provider::Huawei => {
                if self.rng.chance(0.85) {
                    Op::new("iam", "login", false)
                } else {
                    Op::new("iam", "logout", false)
                }
            }
        };
        let mut call = self.call(provider, time_ms, account, who, op);
        call.method = Method::Console;
        call.agent = self.rng.pick(BROWSERS).to_string();
        call.ip = self.office_ip();
        call.region = self.org.accounts(provider)[account].regions[0].to_string();
        // The organisation enforces MFA for console sign-in.
        call.mfa = true;
        if let Who::User(user) = &call.who {
            let name = user.name.clone();
            if provider == Provider::Huawei {
                call.op.resource_type = "user".into();
            }
            call.op.resource_name = name;
        }
        call
    }

    fn console_read(&mut self, provider: Provider, time_ms: i64) -> Call {
        self.console_call(provider, time_ms, false)
    }

    fn console_write(&mut self, provider: Provider, time_ms: i64) -> Call {
        self.console_call(provider, time_ms, true)
    }

    /// A call by a person in the console, with MFA; writes may be denied.
    fn console_call(&mut self, provider: Provider, time_ms: i64, write: bool) -> Call {
        let (account, who) = self.human(provider);
        let region = self.region(provider, account);
        let op = if write {
            self.write_op(provider, account, &region)
        } else {
            self.read_op(provider, account, &region)
        };
        let key = self.console_session_key(provider, account, &who, time_ms);
        let mut call = self.call(provider, time_ms, account, who, op);
        call.method = Method::Console;
        call.agent = match provider {
            Provider::Aws => "AWS Internal".to_string(),
            Provider::Tencent => TENCENT_CONSOLE_AGENT.to_string(),
            Provider::Huawei => self.rng.pick(BROWSERS).to_string(),
        };
        call.ip = self.office_ip();
        call.region = region;
        call.mfa = true;
        if write {
            call.denied = self.rng.chance(FAILURE_RATE) && self.may_fail(Some(&key), time_ms);
        }
        call.key = Some(key);
        call
    }

    /// A cloud service acting for the account (AWS service principals, Huawei system traces).
    fn service_event(&mut self, provider: Provider, time_ms: i64) -> Call {
        let org = Arc::clone(&self.org);
        let account = self.rng.index(org.accounts(provider).len());
        let holder = &org.accounts(provider)[account];
        let region = self.region(provider, account);
        match provider {
            Provider::Aws => {
                if self.rng.chance(0.9) {
                    let instance = self.rng.pick(&holder.instances).clone();
                    let role = holder.roles[2].clone();
                    let op = self.assume_role_op(holder, &role, &instance.id, time_ms);
                    let mut call = self.call(provider, time_ms, account, Who::Service("ec2.amazonaws.com".into()), op);
                    call.method = Method::System;
                    call.region = region;
                    call
                } else {
                    let key_id = self.rng.uuid();
                    let op = Op::new("kms", "RotateKey", false)
                        .extra(
                            "resources",
                            json!([{
                                "accountId": holder.id,
                                "type": "AWS::KMS::Key",
                                "ARN": format!("arn:aws:kms:{region}:{}:key/{key_id}", holder.id),
                            }]),
                        )
                        .extra(
                            "additionalEventData",
                            json!({"keyId": format!("arn:aws:kms:{region}:{}:key/{key_id}", holder.id)}),
                        );
                    let mut call = self.call(provider, time_ms, account, Who::Service("AWS Internal".into()), op);
                    call.method = Method::System;
                    call.region = region;
                    call
                }
            }
            _ => {
                // Huawei: CBR backup policies and auto-scaling run as system traces.
                let instance = self.rng.pick(&holder.instances).clone();
                let op = if self.rng.chance(0.7) {
                    let checkpoint = self.rng.uuid();
                    Op::new("cbr", "createBackup", false)
                        .request(json!({"checkpoint": {"parameters": {
                            "auto_trigger": true,
                            "incremental": true,
                            "name": format!("autobk_{}", &checkpoint[..8]),
                            "resources": [instance.id],
                        }}}))
                        .response(json!({"checkpoint": {
                            "id": checkpoint,
                            "status": "protecting",
                            "project_id": holder.project(&region),
                            "created_at": utc(time_ms).format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
                            "vault": {
                                "id": Rng::new(hash_text(&holder.id)).uuid(),
                                "name": format!("vault-{}-ecs", holder.name),
                                "resources": [{"id": instance.id, "name": instance.name, "type": "OS::Nova::Server", "protect_status": "available", "extra_info": "{}"}],
                                "skipped_resources": [],
                            },
                        }}))
                        .resource("backup", &format!("autobk_{}", &checkpoint[..8]), &checkpoint)
                } else {
                    Op::new("as", "executeScalingPolicy", false)
                        .request(json!({"action": "execute"}))
                        .resource("scaling_policy", "cpu-scale-out", &self.rng.uuid())
                };
                let mut call = self.call(provider, time_ms, account, Who::Service(String::new()), op);
                call.method = Method::System;
                call.region = region;
                call
            }
        }
    }

    // ---------------------------------------------------------- operations

    fn read_op(&mut self, provider: Provider, account: usize, region: &str) -> Op {
        let org = Arc::clone(&self.org);
        let holder = &org.accounts(provider)[account];
        let instance = self.rng.pick(&holder.instances).clone();
        let bucket = self.rng.pick(&holder.buckets).clone();
        match provider {
            Provider::Aws => {
                const READS: &[&str] = &[
                    "ec2:DescribeInstances",
                    "ec2:DescribeInstances",
                    "ec2:DescribeInstances",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeVolumes",
                    "ec2:DescribeSubnets",
                    "s3:ListBuckets",
                    "s3:GetBucketLocation",
                    "s3:GetBucketPolicy",
                    "iam:ListUsers",
                    "iam:GetUser",
                    "iam:ListRoles",
                    "iam:ListAttachedRolePolicies",
                    "sts:GetCallerIdentity",
                    "sts:GetCallerIdentity",
                    "rds:DescribeDBInstances",
                    "lambda:ListFunctions20150331",
                    "monitoring:DescribeAlarms",
                    "monitoring:GetMetricData",
                    "logs:DescribeLogGroups",
                    "cloudtrail:DescribeTrails",
                    "kms:ListAliases",
                    "secretsmanager:GetSecretValue",
                ];
                let (service, action) = split_op(self.rng.pick(READS));
                let op = Op::new(service, action, true);
                match action {
                    "DescribeInstances" => {
                        if self.rng.chance(0.5) {
                            let ids: Vec<Value> = holder.instances.iter().take(3).map(|instance| json!({"instanceId": instance.id})).collect();
                            op.request(json!({"instancesSet": {"items": ids}, "filterSet": {}, "includeAllInstances": false}))
                        } else {
                            op.request(json!({
                                "instancesSet": {},
                                "filterSet": {"items": [
                                    {"name": "instance-state-name", "valueSet": {"items": [{"value": "running"}]}},
                                    {"name": "tag:cost-center", "valueSet": {"items": [{"value": holder.name}]}}
                                ]},
                                "maxResults": 1000
                            }))
                        }
                    }
                    "DescribeSecurityGroups" => op.request(json!({"securityGroupSet": {}, "securityGroupIdSet": {}, "filterSet": {}})),
                    "DescribeVolumes" => op.request(json!({"volumeSet": {}, "filterSet": {"items": [{"name": "attachment.instance-id", "valueSet": {"items": [{"value": instance.id}]}}]}})),
                    "DescribeSubnets" => op.request(json!({"subnetSet": {}, "filterSet": {}})),
                    "ListBuckets" => op
                        .request(json!({"Host": "s3.amazonaws.com"}))
                        .extra("additionalEventData", s3_extra(&mut self.rng)),
                    "GetBucketLocation" | "GetBucketPolicy" => {
                        let sub = if action == "GetBucketLocation" { "location" } else { "policy" };
                        op.request(json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com"), sub: ""}))
                            .extra("additionalEventData", s3_extra(&mut self.rng))
                            .extra("resources", json!([{"accountId": holder.id, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}]))
                    }
                    "ListUsers" => op.request(json!({"maxItems": 100})),
                    "GetUser" => {
                        let user = &self.rng.pick(&holder.users).name;
                        op.request(json!({"userName": user}))
                    }
                    "ListRoles" => op.request(json!({"maxItems": 1000, "pathPrefix": "/"})),
                    "ListAttachedRolePolicies" => {
                        let role = &self.rng.pick(&holder.roles).name;
                        op.request(json!({"roleName": role}))
                    }
                    "DescribeDBInstances" => op.request(json!({"dBInstanceIdentifier": self.rng.pick(&holder.databases)})),
                    "ListFunctions20150331" => op.request(json!({"functionVersion": "ALL", "maxItems": 50})),
                    "DescribeAlarms" => op.request(json!({"stateValue": "ALARM", "maxRecords": 100})),
                    "GetMetricData" => op.request(json!({
                        "metricDataQueries": [{"id": "cpu", "metricStat": {"metric": {"namespace": "AWS/EC2", "metricName": "CPUUtilization", "dimensions": [{"name": "InstanceId", "value": instance.id}]}, "period": 300, "stat": "Average"}, "returnData": true}],
                    })),
                    "DescribeLogGroups" => op.request(json!({"limit": 50, "logGroupNamePrefix": "/aws/lambda/"})),
                    "DescribeTrails" => op.request(json!({"includeShadowTrails": false})),
                    "ListAliases" => op.request(json!({"limit": 100})),
                    "GetSecretValue" => op.request(json!({"secretId": format!("prod/{}/db", holder.name)})),
                    _ => op,
                }
            }
            Provider::Tencent => {
                const READS: &[&str] = &[
                    "cvm:DescribeInstances",
                    "cvm:DescribeInstances",
                    "cvm:DescribeInstances",
                    "cvm:DescribeInstancesStatus",
                    "cvm:DescribeImages",
                    "cdb:DescribeDBInstances",
                    "vpc:DescribeVpcs",
                    "vpc:DescribeSecurityGroups",
                    "vpc:DescribeSubnets",
                    "clb:DescribeLoadBalancers",
                    "monitor:GetMonitorData",
                    "monitor:GetMonitorData",
                    "cam:ListUsers",
                    "cam:GetUser",
                    "sts:GetCallerIdentity",
                    "cbs:DescribeDisks",
                    "tag:DescribeResourceTagsByResourceIds",
                    "cloudaudit:LookUpEvents",
                ];
                let (service, action) = split_op(self.rng.pick(READS));
                let op = Op::new(service, action, true);
                match action {
                    "DescribeInstances" => {
                        if self.rng.chance(0.5) {
                            let ids: Vec<&str> = holder.instances.iter().take(3).map(|instance| instance.id.as_str()).collect();
                            let arns: Vec<String> = ids
                                .iter()
                                .map(|id| format!("qcs::cvm:{region}:uin/{}:instance/{id}", holder.uin))
                                .collect();
                            op.request(json!({"InstanceIds": ids, "Limit": 20, "Offset": 0}))
                                .extra("resources", json!(json!(arns).to_string()))
                        } else {
                            op.request(json!({"Limit": 100, "Offset": 0, "Filters": [
                                {"Name": "zone", "Values": [format!("{region}-3"), format!("{region}-6")]},
                                {"Name": "instance-charge-type", "Values": ["PREPAID", "POSTPAID_BY_HOUR"]},
                                {"Name": "tag:cost-center", "Values": [holder.name]}
                            ]}))
                        }
                    }
                    "DescribeInstancesStatus" => op.request(json!({"InstanceIds": [instance.id], "Limit": 20})).resource("cvm", &instance.id, ""),
                    "DescribeImages" => op.request(json!({"Filters": [{"Name": "image-type", "Values": ["PRIVATE_IMAGE"]}], "Limit": 50})),
                    "DescribeDBInstances" => {
                        let database = self.rng.pick(&holder.databases).clone();
                        op.request(json!({"InstanceIds": [database], "Limit": 20, "Offset": 0}))
                            .resource("cdb", &database, "")
                            .extra("resources", json!(json!([format!("qcs::cdb:{region}:uin/{}:instanceId/{database}", holder.uin)]).to_string()))
                    }
                    "DescribeVpcs" | "DescribeSubnets" | "DescribeSecurityGroups" => op.request(json!({"Limit": "100", "Offset": "0"})),
                    "DescribeLoadBalancers" => op.request(json!({"Limit": 20, "Offset": 0, "Forward": -1})),
                    "GetMonitorData" => {
                        let dimensions: Vec<Value> = holder
                            .instances
                            .iter()
                            .take(3)
                            .map(|instance| json!({"Dimensions": [{"Name": "InstanceId", "Value": instance.id}]}))
                            .collect();
                        op.request(json!({
                            "Namespace": "QCE/CVM",
                            "MetricName": *self.rng.pick(&["CPUUsage", "MemUsage", "LanOuttraffic"]),
                            "Period": 300,
                            "Instances": dimensions,
                        }))
                    }
                    "GetUser" => op.request(json!({"Name": self.rng.pick(&holder.users).name})),
                    "ListUsers" => op.resource("cam", "", "").request(json!({})),
                    "DescribeDisks" => op.request(json!({"Filters": [{"Name": "instance-id", "Values": [instance.id]}], "Limit": 20})),
                    "DescribeResourceTagsByResourceIds" => op.request(json!({"ServiceType": "cvm", "ResourcePrefix": "instance", "ResourceIds": [instance.id], "ResourceRegion": region})),
                    "LookUpEvents" => op.request(json!({"MaxResults": 50, "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "ConsoleLogin"}]})),
                    _ => op.request(json!({})),
                }
            }
            Provider::Huawei => {
                if self.rng.chance(0.7) {
                    Op::new("ecs", "listServersDetails", true)
                        .request(json!(""))
                        .resource("ecs", "", "")
                        .extra(
                            "resource_url",
                            json!(format!(
                                "https://ecs.{region}.myhuaweicloud.com/v1/{}/cloudservers/detail?limit=50&offset=1",
                                holder.project(region)
                            )),
                        )
                } else {
                    Op::new("ecs", "showServer", true)
                        .request(json!(""))
                        .resource("ecs", &instance.name, &instance.id)
                }
            }
        }
    }

    /// KMS Decrypt / GenerateDataKey by an application role.
    fn kms_op(&mut self, holder: &Account, role: &Person, region: &str) -> Op {
        let key_arn = format!(
            "arn:aws:kms:{region}:{}:key/{}",
            holder.id,
            Rng::new(hash_text(&holder.id)).uuid()
        );
        let bucket = self.rng.pick(&holder.buckets).clone();
        let context = if role.name.starts_with("lambda") {
            json!({"aws:lambda:FunctionArn": format!("arn:aws:lambda:{region}:{}:function:{}-orders", holder.id, holder.name)})
        } else {
            json!({"aws:s3:arn": format!("arn:aws:s3:::{bucket}/exports/{}.parquet", self.rng.hex(12))})
        };
        let action = if self.rng.chance(0.7) {
            "Decrypt"
        } else {
            "GenerateDataKey"
        };
        let mut request = json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "encryptionContext": context});
        if action == "GenerateDataKey" {
            request =
                json!({"keyId": key_arn, "keySpec": "AES_256", "encryptionContext": request["encryptionContext"]});
        }
        Op::new("kms", action, true).request(request).extra(
            "resources",
            json!([{"accountId": holder.id, "type": "AWS::KMS::Key", "ARN": key_arn}]),
        )
    }

    fn write_op(&mut self, provider: Provider, account: usize, region: &str) -> Op {
        let org = Arc::clone(&self.org);
        let holder = &org.accounts(provider)[account];
        let instance = self.rng.pick(&holder.instances).clone();
        let bucket = self.rng.pick(&holder.buckets).clone();
        let owner = self.rng.pick(&holder.users).name.clone();
        match provider {
            Provider::Aws => {
                const WRITES: &[&str] = &[
                    "ec2:CreateTags",
                    "ec2:CreateTags",
                    "ec2:StartInstances",
                    "ec2:StopInstances",
                    "ec2:CreateSnapshot",
                    "s3:PutBucketTagging",
                    "monitoring:PutMetricAlarm",
                    "autoscaling:UpdateAutoScalingGroup",
                    "logs:PutRetentionPolicy",
                ];
                let (service, action) = split_op(self.rng.pick(WRITES));
                let op = Op::new(service, action, false);
                let request_id = self.rng.uuid();
                match action {
                    "CreateTags" => op
                        .request(json!({"resourcesSet": {"items": [{"resourceId": instance.id}]}, "tagSet": {"items": [{"key": "owner", "value": owner}, {"key": "cost-center", "value": holder.name}]}}))
                        .response(json!({"requestId": request_id, "_return": true})),
                    "StartInstances" | "StopInstances" => {
                        let (from, to) = if action == "StartInstances" {
                            ((80, "stopped"), (0, "pending"))
                        } else {
                            ((16, "running"), (64, "stopping"))
                        };
                        op.request(json!({"instancesSet": {"items": [{"instanceId": instance.id}]}, "force": false}))
                            .response(json!({"requestId": request_id, "instancesSet": {"items": [{
                                "instanceId": instance.id,
                                "currentState": {"code": to.0, "name": to.1},
                                "previousState": {"code": from.0, "name": from.1}
                            }]}}))
                    }
                    "CreateSnapshot" => {
                        let volume = format!("vol-0{}", self.rng.hex(16));
                        op.request(json!({"volumeId": volume, "description": format!("nightly {}", instance.name)}))
                            .response(json!({"requestId": request_id, "snapshotId": format!("snap-0{}", self.rng.hex(16)), "volumeId": volume, "status": "pending", "volumeSize": 100, "encrypted": true}))
                    }
                    "PutBucketTagging" => op
                        .request(json!({"bucketName": bucket, "Host": format!("{bucket}.s3.{region}.amazonaws.com"), "tagging": ""}))
                        .extra("additionalEventData", s3_extra(&mut self.rng))
                        .extra("resources", json!([{"accountId": holder.id, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}])),
                    "PutMetricAlarm" => op.request(json!({
                        "alarmName": format!("{}-cpu-high", instance.name),
                        "metricName": "CPUUtilization", "namespace": "AWS/EC2", "statistic": "Average",
                        "period": 300, "evaluationPeriods": 3, "threshold": 80.0,
                        "comparisonOperator": "GreaterThanThreshold",
                        "dimensions": [{"name": "InstanceId", "value": instance.id}]
                    })),
                    "UpdateAutoScalingGroup" => op.request(json!({"autoScalingGroupName": format!("{}-asg", holder.name), "minSize": 2, "maxSize": 8, "desiredCapacity": 3 + self.rng.range(0, 3)})),
                    "PutRetentionPolicy" => op.request(json!({"logGroupName": format!("/aws/lambda/{}-orders", holder.name), "retentionInDays": 90})),
                    _ => op,
                }
            }
            Provider::Tencent => {
                const WRITES: &[&str] = &[
                    "cvm:StartInstances",
                    "cvm:StopInstances",
                    "cdb:ModifyDBInstanceName",
                    "tag:AddResourceTag",
                    "tag:AddResourceTag",
                    "clb:ModifyLoadBalancerAttributes",
                    "cbs:CreateSnapshot",
                ];
                let (service, action) = split_op(self.rng.pick(WRITES));
                let op = Op::new(service, action, false);
                match action {
                    "StartInstances" => op.request(json!({"InstanceIds": [instance.id]})).resource("cvm", &instance.id, ""),
                    "StopInstances" => op.request(json!({"InstanceIds": [instance.id], "StopType": "SOFT", "StoppedMode": "KEEP_CHARGING"})).resource("cvm", &instance.id, ""),
                    "ModifyDBInstanceName" => {
                        let database = self.rng.pick(&holder.databases).clone();
                        op.request(json!({"InstanceId": database, "InstanceName": format!("{}-mysql-{}", holder.name, self.rng.range(1, 9))})).resource("cdb", &database, "")
                    }
                    "AddResourceTag" => op.request(json!({"TagKey": "owner", "TagValue": owner, "Resource": format!("qcs::cvm:{region}:uin/{}:instance/{}", holder.uin, instance.id)})),
                    "ModifyLoadBalancerAttributes" => op.request(json!({"LoadBalancerId": format!("lb-{}", self.rng.chars(LOWER_ALNUM, 8)), "LoadBalancerName": format!("{}-public", holder.name)})),
                    _ => {
                        let disk = format!("disk-{}", self.rng.chars(LOWER_ALNUM, 8));
                        op.request(json!({"DiskId": disk, "SnapshotName": format!("{}-daily", instance.name)})).resource("cbs", &disk, "")
                    }
                }
            }
            Provider::Huawei => {
                let project = holder.project(region).to_string();
                let job = self.rng.hex(32);
                match self.rng.index(7) {
                    0 => Op::new("ecs", "startServer", false)
                        .request(json!({"os-start": {"servers": [{"id": instance.id}]}}))
                        .response(json!({"job_id": job}))
                        .resource("ecs", &instance.name, &instance.id),
                    1 => Op::new("ecs", "stopServer", false)
                        .request(json!({"os-stop": {"type": "SOFT", "servers": [{"id": instance.id}]}}))
                        .response(json!({"job_id": job}))
                        .resource("ecs", &instance.name, &instance.id),
                    2 => Op::new("ecs", "updateServer", false)
                        .request(json!({"server": {"name": instance.name, "description": format!("owner {owner}")}}))
                        .response(json!({"server": {
                            "id": instance.id,
                            "name": instance.name,
                            "description": format!("owner {owner}"),
                            "status": "ACTIVE",
                            "tenant_id": project,
                            "user_id": self.rng.hex(32),
                            "hostId": self.rng.hex(56),
                            "OS-EXT-AZ:availability_zone": format!("{region}a"),
                            "flavor": {"id": "s6.large.2", "links": []},
                            "addresses": {self.rng.uuid(): [{"addr": format!("192.168.{}.{}", self.rng.range(0, 9), self.rng.range(2, 250)), "version": 4, "OS-EXT-IPS:type": "fixed"}]},
                            "created": "2025-11-20T03:14:07Z",
                        }}))
                        .resource("ecs", &instance.name, &instance.id),
                    3 => {
                        let volume = self.rng.uuid();
                        Op::new("evs", "createVolume", false)
                            .request(json!({"volume": {"name": format!("{}-data", instance.name), "size": 100, "volume_type": "SSD", "availability_zone": format!("{region}a")}}))
                            .response(json!({"job_id": job, "volume_ids": [volume]}))
                            .resource("volume", &format!("{}-data", instance.name), &volume)
                    }
                    4 => Op::new("ecs", "batchCreateServerTags", false)
                        .request(json!({"action": "create", "tags": [{"key": "owner", "value": owner}]}))
                        .resource("ecs", &instance.name, &instance.id),
                    5 => Op::new("obs", "createBucket", false)
                        .request(json!({"bucket": format!("{bucket}-{}", self.rng.range(2, 99)), "location": region, "storage_class": "STANDARD"}))
                        .resource("bucket", &bucket, &bucket),
                    _ => Op::new("iam", "updateUser", false)
                        .request(json!({"user": {"description": format!("team {}", holder.name)}}))
                        .resource("user", &owner, &self.rng.hex(32)),
                }
            }
        }
    }

    // ---------------------------------------------------------- rendering

    fn render(&mut self, call: &Call) -> Value {
        match call.provider {
            Provider::Aws => self.render_aws(call),
            Provider::Tencent => self.render_tencent(call),
            Provider::Huawei => self.render_huawei(call),
        }
    }

    fn render_aws(&mut self, call: &Call) -> Value {
        let org = Arc::clone(&self.org);
        let holder = &org.accounts(Provider::Aws)[call.account];
        let op = &call.op;
        let console = call.method == Method::Console;
        let session_created = aws_time(call.time_ms - self.rng.range(2, 50) * MINUTE_MS);
        let mfa = if call.mfa { "true" } else { "false" };
        let key = call.key.clone().unwrap_or_default();
        let identity = match &call.who {
            Who::Root => {
                let mut identity = json!({
                    "type": "Root",
                    "principalId": holder.id,
                    "arn": format!("arn:aws:iam::{}:root", holder.id),
                    "accountId": holder.id,
                    "accessKeyId": key,
                });
                if console && !key.is_empty() {
                    identity["sessionContext"] =
                        json!({"attributes": {"creationDate": session_created, "mfaAuthenticated": mfa}});
                }
                identity
            }
            Who::User(user) => {
                let mut identity = json!({
                    "type": "IAMUser",
                    "principalId": user.id,
                    "arn": format!("arn:aws:iam::{}:user/{}", holder.id, user.name),
                    "accountId": holder.id,
                    "accessKeyId": key,
                    "userName": user.name,
                });
                if console && !key.is_empty() {
                    identity["sessionContext"] = json!({
                        "sessionIssuer": {},
                        "webIdFederationData": {},
                        "attributes": {"creationDate": session_created, "mfaAuthenticated": mfa}
                    });
                }
                identity
            }
            Who::Role { role, session } => json!({
                "type": "AssumedRole",
                "principalId": format!("{}:{}", role.id, session),
                "arn": format!("arn:aws:sts::{}:assumed-role/{}/{}", holder.id, role.name, session),
                "accountId": holder.id,
                "accessKeyId": key,
                "sessionContext": {
                    "sessionIssuer": {
                        "type": "Role",
                        "principalId": role.id,
                        "arn": format!("arn:aws:iam::{}:role/{}", holder.id, role.name),
                        "accountId": holder.id,
                        "userName": role.name,
                    },
                    "webIdFederationData": {},
                    "attributes": {"creationDate": session_created, "mfaAuthenticated": mfa}
                }
            }),
            Who::Service(service) => json!({"type": "AWSService", "invokedBy": service}),
        };
        let global = matches!(op.service, "iam" | "signin");
        let region = if global { "us-east-1" } else { call.region.as_str() };
        let host = match op.service {
            "iam" => "iam.amazonaws.com".to_string(),
            "signin" => "us-east-1.signin.aws.amazon.com".to_string(),
            "s3" => match &op.request {
                Value::Object(map) => map
                    .get("Host")
                    .and_then(Value::as_str)
                    .unwrap_or("s3.amazonaws.com")
                    .to_string(),
                _ => "s3.amazonaws.com".to_string(),
            },
            service => format!("{service}.{region}.amazonaws.com"),
        };
        let (event_type, source_ip, user_agent) = match &call.who {
            Who::Service(service) => (
                if service == "AWS Internal" {
                    "AwsServiceEvent"
                } else {
                    "AwsApiCall"
                },
                service.clone(),
                service.clone(),
            ),
            _ if op.action == "ConsoleLogin" => ("AwsConsoleSignIn", call.ip.clone(), call.agent.clone()),
            _ => ("AwsApiCall", call.ip.clone(), call.agent.clone()),
        };
        let mut record = Map::new();
        record.insert(
            "eventVersion".into(),
            json!(if op.action == "ConsoleLogin" { "1.09" } else { "1.11" }),
        );
        record.insert("userIdentity".into(), identity);
        record.insert("eventTime".into(), json!(aws_time(call.time_ms)));
        record.insert("eventSource".into(), json!(format!("{}.amazonaws.com", op.service)));
        record.insert("eventName".into(), json!(op.action));
        record.insert("awsRegion".into(), json!(region));
        record.insert("sourceIPAddress".into(), json!(source_ip));
        record.insert("userAgent".into(), json!(user_agent));
        let mut response = op.response.clone();
        if call.denied {
            let (code, message) = aws_denial(holder, call);
            record.insert("errorCode".into(), json!(code));
            record.insert("errorMessage".into(), json!(message));
            response = Value::Null;
        }
        if op.action == "ConsoleLogin" {
            record.insert("requestParameters".into(), Value::Null);
            record.insert("responseElements".into(), json!({"ConsoleLogin": "Success"}));
            let mut data = json!({
                "LoginTo": format!("https://console.aws.amazon.com/console/home?region={}", call.region),
                "MobileVersion": "No",
                "MFAUsed": if call.mfa { "Yes" } else { "No" },
            });
            if let (true, Who::User(user)) = (call.mfa, &call.who) {
                data["MFAIdentifier"] = json!(format!("arn:aws:iam::{}:mfa/{}", holder.id, user.name));
            }
            record.insert("additionalEventData".into(), data);
        } else {
            record.insert("requestParameters".into(), op.request.clone());
            record.insert("responseElements".into(), response);
        }
        record.insert("requestID".into(), json!(self.rng.uuid()));
        record.insert("eventID".into(), json!(self.rng.uuid()));
        record.insert("readOnly".into(), json!(op.read_only));
        record.insert("eventType".into(), json!(event_type));
        record.insert("managementEvent".into(), json!(true));
        record.insert("recipientAccountId".into(), json!(holder.id));
        record.insert("eventCategory".into(), json!("Management"));
        if !matches!(call.who, Who::Service(_)) {
            record.insert(
                "tlsDetails".into(),
                json!({"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": host}),
            );
        }
        if console && op.action != "ConsoleLogin" {
            record.insert("sessionCredentialFromConsole".into(), json!("true"));
        }
        for (key, value) in &op.extra {
            record.insert((*key).into(), value.clone());
        }
        Value::Object(record)
    }

    fn render_tencent(&mut self, call: &Call) -> Value {
        let org = Arc::clone(&self.org);
        let holder = &org.accounts(Provider::Tencent)[call.account];
        let op = &call.op;
        let console = call.method == Method::Console;
        let seconds = call.time_ms.div_euclid(1000);
        let key = call.key.clone().unwrap_or_default();
        let mut identity = match &call.who {
            Who::User(user) => json!({
                "principalId": user.id,
                "accountId": holder.uin,
                "secretId": key,
                "type": "CAMUser",
                "userName": user.name,
            }),
            _ => json!({
                "principalId": holder.uin.to_string(),
                "accountId": holder.uin,
                "secretId": key,
                "type": "Root",
                "userName": "root",
            }),
        };
        if console {
            let uin: u64 = match &call.who {
                Who::User(user) => user.id.parse().unwrap_or(holder.uin),
                _ => holder.uin,
            };
            let session = json!({
                "expireTime": shanghai_text(call.time_ms + 2 * HOUR_MS),
                "hasPolicyFilter": 0,
                "extraInfo": "",
                "interfaceName": "",
                "ownerUin": holder.uin,
                "ua": self.rng.hex(32),
                "mfa": u8::from(call.mfa),
                "userIp": call.ip,
                "uin": uin,
                "token": self.rng.hex(46),
                "appId": holder.app_id,
                "policyFilter": "",
            });
            identity["sessionContext"] = json!(session.to_string());
        }
        let version = tencent_api_version(op.service);
        let mut parameters = match &op.request {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        if op.action != "ConsoleLogin" {
            parameters.insert("Action".into(), json!(op.action));
            parameters.insert("Version".into(), json!(version));
            parameters.insert("Region".into(), json!(call.region));
            parameters.insert("RequestClient".into(), json!(call.agent));
            parameters.insert("Timestamp".into(), json!(seconds));
            parameters.insert("Nonce".into(), json!(self.rng.range(10_000, 99_999)));
            if console {
                parameters.insert("RequestSource".into(), json!("MC"));
                parameters.insert("RequestOperator".into(), json!(holder.uin.to_string()));
                parameters.insert("SecretId".into(), json!(key));
                parameters.insert("Token".into(), json!(self.rng.hex(46)));
                parameters.insert("seqId".into(), json!(self.rng.uuid()));
            }
        }
        let event_type = match (op.action.as_str(), console) {
            ("ConsoleLogin", _) => "ConsoleLogin",
            (_, true) => "ConsoleCall",
            _ => "ApiCall",
        };
        let event_source = if console {
            format!("{}.{}.api.tencentyun.com", op.service, call.region)
        } else {
            format!("{}.tencentcloudapi.com", op.service)
        };
        let resource_type = if op.resource_type.is_empty() {
            op.service.to_string()
        } else {
            op.resource_type.clone()
        };
        let sensitive = matches!(op.service, "cam" | "tat") && !op.read_only;
        let mut record = Map::new();
        record.insert("userIdentity".into(), identity);
        record.insert("eventTime".into(), json!(seconds));
        record.insert("eventVersion".into(), json!(2));
        record.insert("eventSource".into(), json!(event_source));
        record.insert("eventName".into(), json!(op.action));
        record.insert("eventRegion".into(), json!(call.region));
        record.insert("eventType".into(), json!(event_type));
        record.insert("actionType".into(), json!(if op.read_only { "Read" } else { "Write" }));
        record.insert("sourceIPAddress".into(), json!(call.ip));
        record.insert("userAgent".into(), json!(call.agent));
        record.insert("requestParameters".into(), json!(Value::Object(parameters).to_string()));
        record.insert("resourceType".into(), json!(resource_type));
        record.insert("resourceName".into(), json!(op.resource_name));
        record.insert(
            "resources".into(),
            json!(if op.resource_name.is_empty() || op.action == "ConsoleLogin" {
                String::new()
            } else {
                json!([format!(
                    "qcs::{}:{}:uin/{}:{}/{}",
                    op.service,
                    call.region,
                    holder.uin,
                    if op.service == "cvm" { "instance" } else { "resource" },
                    op.resource_name
                )])
                .to_string()
            }),
        );
        if call.denied {
            let request_id = self.rng.uuid();
            let message = format!(
                "you are not authorized to perform operation ({}:{})\nresource (qcs::{}:{}:uin/{}:*) has no permission\n",
                op.service, op.action, op.service, call.region, holder.uin
            );
            record.insert("errorCode".into(), json!("AuthFailure.UnauthorizedOperation"));
            record.insert("errorMessage".into(), json!(message));
            record.insert("apiErrorCode".into(), json!("UnauthorizedOperation"));
            record.insert(
                "apiErrorMessage".into(),
                json!(format!(
                    "[request id:{request_id}]you are not authorized to perform operation ({}:{})",
                    op.service, op.action
                )),
            );
        } else {
            record.insert("errorCode".into(), json!(0));
            record.insert("errorMessage".into(), json!("permission verify"));
            record.insert("apiErrorCode".into(), json!(0));
            record.insert("apiErrorMessage".into(), json!(""));
        }
        record.insert("apiVersion".into(), json!(version));
        record.insert("httpMethod".into(), json!("POST"));
        record.insert("requestID".into(), json!(self.rng.uuid()));
        record.insert("eventID".into(), json!(self.rng.uuid()));
        record.insert("sensitiveAction".into(), json!(u8::from(sensitive)));
        record.insert("eventPlatform".into(), json!(0));
        for (key, value) in &op.extra {
            record.insert((*key).into(), value.clone());
        }
        Value::Object(record)
    }

    fn render_huawei(&mut self, call: &Call) -> Value {
        let org = Arc::clone(&self.org);
        let holder = &org.accounts(Provider::Huawei)[call.account];
        let op = &call.op;
        let service_type = op.service.to_ascii_uppercase();
        let project = holder.project(&call.region).to_string();
        let global = op.service == "iam";
        let endpoint = if global {
            "iam.myhuaweicloud.com".to_string()
        } else {
            format!("{}.{}.myhuaweicloud.com", op.service, call.region)
        };
        let api_version = match op.service {
            "iam" => "3.0",
            "ecs" if op.action.contains("Server") && !op.action.starts_with("list") => "v2.1",
            "evs" => "v2",
            "rds" => "v3",
            "obs" => "",
            _ => "v1",
        };
        let resource_url = match (op.service, op.resource_id.is_empty()) {
            (_, true) => String::new(),
            ("iam", false) => format!("https://{endpoint}/v3/users/{}", op.resource_id),
            ("ecs", false) => format!("https://{endpoint}/v1/{project}/cloudservers/{}", op.resource_id),
            ("obs", false) => format!("https://{}.obs.{}.myhuaweicloud.com/", op.resource_id, call.region),
            (service, false) => format!("https://{endpoint}/v1/{project}/{service}/{}", op.resource_id),
        };
        let code = if call.denied {
            "403"
        } else if op.action == "login" || op.action == "logout" {
            "302"
        } else if op.read_only {
            "200"
        } else if op.action.starts_with("create") {
            "201"
        } else if op.action.starts_with("delete") {
            "204"
        } else if op.service == "ecs" && op.response.get("job_id").is_some() {
            "202"
        } else {
            "200"
        };
        let trace_type = match call.method {
            Method::Api => "ApiCall",
            Method::Console => "ConsoleAction",
            Method::System => "SystemAction",
        };
        let time_ms = call.time_ms;
        let request = json_text(&op.request);
        let mut response = json_text(&op.response);
        let mut message = None;
        if call.denied {
            let text = format!(
                "Policy doesn't allow {}:{} to be performed.",
                op.service,
                huawei_permission(&op.action)
            );
            response = json!({"error": {"code": format!("{}.0319", service_type), "message": text}}).to_string();
            message = Some(text);
        }
        let mut record = Map::new();
        record.insert("trace_id".into(), json!(self.rng.uuid()));
        record.insert("trace_name".into(), json!(op.action));
        record.insert(
            "trace_rating".into(),
            json!(if call.denied { "warning" } else { "normal" }),
        );
        record.insert("trace_type".into(), json!(trace_type));
        record.insert("event_type".into(), json!("system"));
        record.insert("service_type".into(), json!(service_type));
        record.insert("resource_type".into(), json!(op.resource_type));
        record.insert("resource_name".into(), json!(op.resource_name));
        record.insert("resource_id".into(), json!(op.resource_id));
        record.insert("api_version".into(), json!(api_version));
        record.insert("source_ip".into(), json!(call.ip));
        record.insert("domain_id".into(), json!(holder.id));
        record.insert("project_id".into(), json!(if global { "" } else { project.as_str() }));
        record.insert("tracker_name".into(), json!("system"));
        record.insert("time".into(), json!(time_ms));
        record.insert("record_time".into(), json!(time_ms + self.rng.range(150, 950)));
        record.insert("code".into(), json!(code));
        record.insert("request".into(), json!(request));
        record.insert("response".into(), json!(response));
        record.insert("request_id".into(), json!(self.rng.hex(32)));
        if call.method != Method::System {
            record.insert("content_length".into(), json!(request.len()));
            record.insert("total_time".into(), json!(self.rng.range(8, 900)));
        }
        if let Some(message) = message {
            record.insert("message".into(), json!(message));
        }
        if call.method != Method::System {
            record.insert("endpoint".into(), json!(endpoint));
            if !resource_url.is_empty() {
                record.insert("resource_url".into(), json!(resource_url));
            }
            record.insert("user_agent".into(), json!(call.agent));
        }
        record.insert("read_only".into(), json!(op.read_only));
        record.insert("enterprise_project_id".into(), json!("0"));
        if let Some(user) = self.huawei_user(holder, call) {
            record.insert("user".into(), user);
        }
        if op.action.len() > 3 && call.method == Method::Api {
            let mut operation_id = op.action.clone();
            if let Some(first) = operation_id.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            record.insert("operation_id".into(), json!(operation_id));
        }
        for (key, value) in &op.extra {
            record.insert((*key).into(), value.clone());
        }
        Value::Object(record)
    }

    fn huawei_user(&mut self, holder: &Account, call: &Call) -> Option<Value> {
        let domain = json!({"name": holder.name, "id": holder.id});
        let mut user = match &call.who {
            Who::Service(_) => return None,
            Who::Root => json!({
                "id": holder.root_id,
                "name": holder.name,
                "user_name": holder.name,
                "domain": domain,
                "account_id": holder.id,
                "principal_urn": format!("iam::{}:user:{}", holder.id, holder.name),
                "principal_id": holder.root_id,
                "principal_is_root_user": "true",
                "type": "User",
            }),
            Who::User(person) => json!({
                "id": person.id,
                "name": person.name,
                "user_name": person.name,
                "domain": domain,
                "account_id": holder.id,
                "principal_urn": format!("iam::{}:user:{}", holder.id, person.name),
                "principal_id": person.id,
                "principal_is_root_user": "false",
                "type": "User",
            }),
            Who::Role { role, session } => json!({
                "id": role.id,
                "name": format!("{}/{}", role.name, session),
                "domain": domain,
                "account_id": holder.id,
                "principal_urn": format!("sts::{}:assumed-agency:{}/{}", holder.id, role.name, session),
                "principal_id": format!("{}:{}", role.id, session),
                "principal_is_root_user": "false",
                "type": "AssumedAgency",
                "session_context": {"attributes": {
                    "created_at": (call.time_ms - self.rng.range(2, 50) * MINUTE_MS).to_string(),
                    "mfa_authenticated": if call.mfa { "true" } else { "false" }
                }},
            }),
        };
        if let Some(key) = &call.key {
            user["access_key_id"] = json!(key);
        }
        if call.method == Method::Console {
            user["invoked_by"] = json!(["service.console"]);
            if matches!(call.who, Who::User(_) | Who::Root) {
                user["session_context"] = json!({"attributes": {
                    "created_at": (call.time_ms - self.rng.range(2, 50) * MINUTE_MS).to_string(),
                    "mfa_authenticated": if call.mfa { "true" } else { "false" }
                }});
            }
        }
        Some(user)
    }

    fn record(&mut self, call: &Call, planted: Option<&'static str>) -> SynthRecord {
        // AWS and Tencent record whole seconds; Huawei's `time` is in ms but
        // whole seconds too keep the three clouds' records in one order.
        let mut call = call.clone();
        call.time_ms = call.time_ms.div_euclid(1000) * 1000;
        let record = self.render(&call);
        SynthRecord {
            provider: call.provider,
            time: utc(call.time_ms),
            record,
            planted,
        }
    }

    fn pick_cloud(&mut self) -> Provider {
        *self.rng.pick(&self.clouds)
    }
}

fn keys_of_cloud(total: usize, clouds: usize, cloud: usize) -> usize {
    (total + clouds - 1 - cloud) / clouds
}

fn split_op(text: &&'static str) -> (&'static str, &'static str) {
    let text: &'static str = text;
    text.split_once(':').unwrap_or(("", text))
}

fn json_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The session name a role or agency is used under at a time.
fn role_session(provider: Provider, holder: &Account, role: &Person, time_ms: i64) -> String {
    let hour = (time_ms / HOUR_MS) as usize;
    match (provider, role.name.as_str()) {
        (Provider::Aws, "ci-deployer") => format!("ci-runner-{}", 88_000 + hour % 4000),
        (Provider::Aws, "ec2-app-role") => holder.instances[hour % holder.instances.len()].id.clone(),
        (Provider::Aws, "lambda-exec-orders") => "orders-sync".to_string(),
        (Provider::Aws, name) if name.starts_with("AWSReserved") => {
            let human = &holder.users[holder.humans[hour % holder.humans.len()]];
            format!("{}@{}.com", human.name, holder.name)
        }
        _ => holder.users[holder.humans[(hour / 3) % holder.humans.len()]]
            .name
            .clone(),
    }
}

/// The temporary key of a role session (one per six hours).
fn role_session_key(provider: Provider, holder: &Account, role: &Person, session: &str, time_ms: i64) -> String {
    session_key(
        provider,
        holder,
        &format!("{}/{}/{}/{}", holder.id, role.name, session, time_ms / (6 * HOUR_MS)),
    )
}

/// An STS session token as AWS shows it (base64, several hundred characters).
fn session_token(rng: &mut Rng) -> String {
    let len = 600 + rng.index(40) * 4;
    format!("IQoJb3JpZ2luX2VjE{}", rng.chars(B62, len))
}

fn s3_extra(rng: &mut Rng) -> Value {
    json!({
        "SignatureVersion": "SigV4",
        "CipherSuite": "TLS_AES_128_GCM_SHA256",
        "bytesTransferredIn": 0,
        "AuthenticationMethod": "AuthHeader",
        "x-amz-id-2": rng.chars(B62, 76),
        "bytesTransferredOut": rng.range(120, 4000),
    })
}

fn tencent_api_version(service: &str) -> &'static str {
    match service {
        "cvm" | "vpc" | "cbs" => "2017-03-12",
        "cdb" => "2017-03-20",
        "cam" => "2019-01-16",
        "sts" | "tag" => "2018-08-13",
        "clb" => "2018-03-17",
        "monitor" => "2018-07-24",
        "tat" => "2020-10-28",
        "cloudaudit" => "2019-03-19",
        "cos" => "2019-01-01",
        _ => "2.0",
    }
}

/// The IAM action a denied Huawei trace names (`createServer` → `cloudServers:create`).
fn huawei_permission(action: &str) -> String {
    let verb_end = action.find(|c: char| c.is_ascii_uppercase()).unwrap_or(action.len());
    let (verb, noun) = action.split_at(verb_end);
    let mut noun = noun.to_string();
    if let Some(first) = noun.get_mut(0..1) {
        first.make_ascii_lowercase();
    }
    format!("{noun}s:{verb}")
}

fn aws_denial(holder: &Account, call: &Call) -> (&'static str, String) {
    let principal = match &call.who {
        Who::User(user) => format!("arn:aws:iam::{}:user/{}", holder.id, user.name),
        Who::Role { role, session } => {
            format!("arn:aws:sts::{}:assumed-role/{}/{}", holder.id, role.name, session)
        }
        _ => format!("arn:aws:iam::{}:root", holder.id),
    };
    let permission = format!(
        "{}:{}",
        call.op.service,
        call.op.action.trim_end_matches(|c: char| c.is_ascii_digit())
    );
    match call.op.service {
        "ec2" => (
            "Client.UnauthorizedOperation",
            format!(
                "You are not authorized to perform this operation. User: {principal} is not authorized to perform: {permission} because no identity-based policy allows the {permission} action"
            ),
        ),
        "s3" => ("AccessDenied", "Access Denied".to_string()),
        _ => (
            "AccessDenied",
            format!(
                "User: {principal} is not authorized to perform: {permission} because no identity-based policy allows the {permission} action"
            ),
        ),
    }
}

impl Iterator for Generator {
    type Item = SynthRecord;

    fn next(&mut self) -> Option<SynthRecord> {
        if self.emitted >= self.events {
            return None;
        }
        let slot = self.slot_time();
        if let Some(Reverse(pending)) = self.pending.peek()
            && pending.time_ms <= slot
        {
            let Reverse(pending) = self.pending.pop()?;
            self.emitted += 1;
            return Some(pending.record);
        }
        self.emitted += 1;
        self.ordinary += 1;
        let provider = self.pick_cloud();
        let call = self.ordinary_call(provider, slot);
        let record = self.record(&call, None);
        if self.attack_every > 0 && self.ordinary.is_multiple_of(self.attack_every) {
            self.plant(slot);
        }
        Some(record)
    }
}

// ------------------------------------------------------------------ attacks

/// One planned step of a scenario.
struct Step {
    call: Call,
}

impl Generator {
    /// Schedule the next scenario of the rotation that fits in the span.
    fn plant(&mut self, now_ms: i64) {
        let latest = self.timeline.end_ms() - self.timeline.span_ms / 50;
        for _ in 0..SCENARIOS.len() {
            let scenario = self.scenario_turn % SCENARIOS.len();
            self.scenario_turn += 1;
            let clouds: Vec<Provider> = SCENARIO_CLOUDS[scenario]
                .iter()
                .copied()
                .filter(|provider| self.clouds.contains(provider))
                .collect();
            if clouds.is_empty() {
                continue;
            }
            let provider = clouds[self.planted_counts[scenario] % clouds.len()];
            let start = now_ms + self.rng.range(1, 10) * MINUTE_MS;
            let steps = self.scenario_steps(scenario, provider, start);
            let last = steps.iter().map(|step| step.call.time_ms).max().unwrap_or(start);
            if steps.is_empty() || last > latest {
                continue;
            }
            self.planted_counts[scenario] += 1;
            let name = SCENARIOS[scenario].0;
            for step in steps {
                let record = self.record(&step.call, Some(name));
                self.sequence += 1;
                self.pending.push(Reverse(Pending {
                    time_ms: record.time.timestamp_millis(),
                    sequence: self.sequence,
                    record,
                }));
            }
            return;
        }
    }

    /// An attack call by `who` with `key`, from `ip`.
    fn attack_call(&mut self, provider: Provider, account: usize, time_ms: i64, actor: &Actor, op: Op) -> Step {
        let region = self.org.accounts(provider)[account].regions[0].to_string();
        let agent = actor
            .agent
            .clone()
            .unwrap_or_else(|| agent(provider, actor.tool, op.service, &op.action));
        let mut call = self.call(provider, time_ms, account, actor.who.clone(), op);
        call.key = Some(actor.key.clone());
        call.ip = actor.ip.clone();
        call.agent = agent;
        call.region = region;
        Step { call }
    }

    fn scenario_steps(&mut self, scenario: usize, provider: Provider, start: i64) -> Vec<Step> {
        let org = Arc::clone(&self.org);
        let account = self.rng.index(org.accounts(provider).len());
        let holder = &org.accounts(provider)[account];
        let attacker_ip = self.rng.pick(ATTACKER_IPS).to_string();
        let victim = holder.users[*self.rng.pick(&holder.programmatic)].clone();
        let tool = self.rng.index(4);
        let user_actor = |key: String, ip: String| Actor {
            who: Who::User(victim.clone()),
            key,
            ip,
            tool,
            agent: None,
        };
        let mut t = start;
        let new_name = format!(
            "{}{}",
            self.rng
                .pick(&["sys-maint", "svc-backup", "ops-sync", "support-tmp", "devops-bak"]),
            self.rng.range(2, 99)
        );
        let other_user = holder.users[self.rng.index(holder.users.len())].clone();
        let instance = self.rng.pick(&holder.instances).clone();
        let mut steps = Vec::new();
        match SCENARIOS[scenario].0 {
            "root_key_high_risk" => {
                let key = self.fresh_key(provider, account);
                let actor = Actor {
                    who: Who::Root,
                    key,
                    ip: attacker_ip,
                    tool,
                    agent: None,
                };
                let ops = match provider {
                    Provider::Aws => vec![
                        Op::new("iam", "ListAccessKeys", true).request(json!({"maxItems": 100})),
                        Op::new("iam", "CreateUser", false)
                            .request(json!({"userName": new_name}))
                            .response(json!({"user": {"path": "/", "userName": new_name, "userId": format!("AIDA{}{}", holder.key_tag, self.rng.chars(B32, 9)), "arn": format!("arn:aws:iam::{}:user/{new_name}", holder.id), "createDate": aws_display_time(start)}})),
                        Op::new("iam", "DeleteUser", false).request(json!({"userName": other_user.name})),
                    ],
                    Provider::Tencent => vec![
                        Op::new("cam", "ListAccessKeys", true).resource("cam", "", ""),
                        Op::new("cam", "AddUser", false)
                            .request(json!({"Name": new_name, "Remark": "", "ConsoleLogin": 0, "UseApi": 1}))
                            .resource("cam", &new_name, ""),
                        Op::new("cam", "DeleteUser", false)
                            .request(json!({"Name": other_user.name, "Force": 1}))
                            .resource("cam", &other_user.name, ""),
                    ],
                    Provider::Huawei => vec![
                        Op::new("iam", "createUser", false)
                            .request(json!({"user": {"name": new_name, "domain_id": holder.id, "enabled": true, "password": "********"}}))
                            .response(json!({"user": {"id": self.rng.hex(32), "name": new_name, "domain_id": holder.id, "enabled": true}}))
                            .resource("user", &new_name, ""),
                        Op::new("iam", "deleteUser", false)
                            .resource("user", &other_user.name, &other_user.id),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 20, 120);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "sdk_high_risk_write" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let actor = user_actor(key, attacker_ip);
                let ops = match provider {
                    Provider::Aws => {
                        let role = self.rng.pick(&holder.roles[..4]).name.clone();
                        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:user/{}", holder.id, victim.name)}, "Action": "sts:AssumeRole"}]});
                        vec![
                            Op::new("iam", "AttachRolePolicy", false).request(json!({"roleName": role, "policyArn": "arn:aws:iam::aws:policy/AmazonS3FullAccess"})),
                            Op::new("iam", "UpdateAssumeRolePolicy", false).request(json!({"roleName": role, "policyDocument": trust.to_string()})),
                        ]
                    }
                    Provider::Tencent => vec![
                        Op::new("cvm", "ModifyInstancesAttribute", false)
                            .request(json!({"InstanceIds": [instance.id], "UserData": "IyEvYmluL2Jhc2gKY3VybCAtZnNTTCBodHRwOi8vNDUuNzYuMjE4LjkyL2kuc2ggfCBzaA=="}))
                            .resource("cvm", &instance.id, ""),
                        Op::new("cam", "UpdateAssumeRolePolicy", false)
                            .request(json!({"RoleName": "ops_automation", "PolicyDocument": json!({"version": "2.0", "statement": [{"action": "name/sts:AssumeRole", "effect": "allow", "principal": {"qcs": [format!("qcs::cam::uin/{}:root", 100_098_765_432u64)]}}]}).to_string()})),
                    ],
                    Provider::Huawei => vec![
                        Op::new("ecs", "updateMetadata", false)
                            .request(json!({"metadata": {"user_data": "IyEvYmluL2Jhc2gKY3VybCAtZnNTTCBodHRwOi8vNDUuNzYuMjE4LjkyL2kuc2ggfCBzaA=="}}))
                            .response(json!({"metadata": {"user_data": "IyEvYmluL2Jhc2gK..."}}))
                            .resource("ecs", &instance.name, &instance.id),
                        Op::new("iam", "updateAgency", false)
                            .request(json!({"agency": {"trust_domain_id": self.rng.hex(32), "duration": "FOREVER"}}))
                            .resource("agency", "ops_admin_agency", &self.rng.hex(32)),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 30, 240);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "access_key_created" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let actor = user_actor(key, attacker_ip);
                let target = other_user.clone();
                let new_key = self.fresh_key(provider, account);
                let op = access_key_op(provider, holder, &target, &new_key, start);
                let time = tick(&mut t, &mut self.rng, 10, 60);
                steps.push(self.attack_call(provider, account, time, &actor, op));
            }
            "admin_policy_attached" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let actor = user_actor(key, attacker_ip);
                let op = match provider {
                    Provider::Tencent => Op::new("cam", "AttachUserPolicy", false)
                        .request(json!({"AttachUin": other_user.id.parse::<u64>().unwrap_or(0), "PolicyId": 1}))
                        .resource("cam", &other_user.name, ""),
                    _ => Op::new("iam", "AttachUserPolicy", false).request(json!({"userName": other_user.name, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"})),
                };
                let time = tick(&mut t, &mut self.rng, 10, 60);
                steps.push(self.attack_call(provider, account, time, &actor, op));
            }
            "off_hours_deletion" => {
                t = next_local_hour(start, 2) + self.rng.range(0, 80) * MINUTE_MS;
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let actor = user_actor(key, attacker_ip);
                let second = holder.instances[(holder.instances.iter().position(|i| i.id == instance.id).unwrap_or(0)
                    + 1)
                    % holder.instances.len()]
                .clone();
                let bucket = self.rng.pick(&holder.buckets).clone();
                let ops = match provider {
                    Provider::Aws => vec![
                        Op::new("ec2", "TerminateInstances", false)
                            .request(json!({"instancesSet": {"items": [{"instanceId": instance.id}, {"instanceId": second.id}]}}))
                            .response(json!({"requestId": self.rng.uuid(), "instancesSet": {"items": [
                                {"instanceId": instance.id, "currentState": {"code": 32, "name": "shutting-down"}, "previousState": {"code": 16, "name": "running"}},
                                {"instanceId": second.id, "currentState": {"code": 32, "name": "shutting-down"}, "previousState": {"code": 16, "name": "running"}}
                            ]}})),
                        Op::new("s3", "DeleteBucket", false)
                            .request(json!({"bucketName": bucket, "Host": "s3.amazonaws.com"}))
                            .extra("resources", json!([{"accountId": holder.id, "type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}])),
                    ],
                    Provider::Tencent => vec![
                        Op::new("cvm", "TerminateInstances", false)
                            .request(json!({"InstanceIds": [instance.id, second.id]}))
                            .resource("cvm", &instance.id, ""),
                        Op::new("cos", "DeleteBucket", false)
                            .request(json!({"Bucket": bucket}))
                            .resource("cos", &bucket, ""),
                    ],
                    Provider::Huawei => vec![
                        Op::new("ecs", "deleteServer", false)
                            .request(json!({"servers": [{"id": instance.id}, {"id": second.id}], "delete_publicip": true, "delete_volume": true}))
                            .response(json!({"job_id": self.rng.hex(32)}))
                            .resource("ecs", &instance.name, &instance.id),
                        Op::new("obs", "deleteBucket", false).resource("bucket", &bucket, &bucket),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 40, 300);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "github_hook_leaked_key" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let ip = self.rng.pick(GITHUB_HOOK_IPS).to_string();
                let actor = user_actor(key, ip);
                let ops = match provider {
                    Provider::Aws => vec![
                        Op::new("sts", "GetCallerIdentity", true),
                        Op::new("ec2", "DescribeInstances", true).request(json!({"instancesSet": {}, "filterSet": {}})),
                    ],
                    Provider::Tencent => vec![
                        Op::new("sts", "GetCallerIdentity", true).request(json!({})),
                        Op::new("cvm", "DescribeInstances", true).request(json!({"Limit": 100, "Offset": 0})),
                    ],
                    Provider::Huawei => vec![Op::new("ecs", "listServersDetails", true).resource("ecs", "", "")],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 1, 8);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "hacker_tool_agent" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let trufflehog = self.planted_counts[scenario] % 2 == 1;
                let mut actor = user_actor(key, attacker_ip);
                if trufflehog {
                    actor.agent = Some("trufflehog/3.63.0".to_string());
                    let time = tick(&mut t, &mut self.rng, 1, 5);
                    steps.push(self.attack_call(
                        provider,
                        account,
                        time,
                        &actor,
                        Op::new("sts", "GetCallerIdentity", true),
                    ));
                } else {
                    for (service, action, request) in [
                        ("sts", "GetCallerIdentity", Value::Null),
                        ("s3", "ListBuckets", json!({"Host": "s3.amazonaws.com"})),
                        ("iam", "ListUsers", json!({"maxItems": 100})),
                        ("ec2", "DescribeInstances", json!({"instancesSet": {}, "filterSet": {}})),
                    ] {
                        actor.agent = Some(format!(
                            "aws-cli/2.15.30 Python/3.11.8 Linux/6.6.9-amd64 exe/x86_64.kali.2024 prompt/off command/{service}.{}",
                            kebab(action)
                        ));
                        let time = tick(&mut t, &mut self.rng, 5, 40);
                        steps.push(self.attack_call(
                            provider,
                            account,
                            time,
                            &actor,
                            Op::new(service, action, true).request(request),
                        ));
                    }
                }
            }
            "cos_browser" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let mut actor = user_actor(key, attacker_ip);
                actor.agent = Some("cos-browser/2.11.8 (Windows)".to_string());
                let bucket = self.rng.pick(&holder.buckets).clone();
                for op in [
                    Op::new("cos", "GetService", true),
                    Op::new("cos", "GetBucket", true)
                        .request(json!({"Bucket": bucket, "prefix": "", "max-keys": 1000}))
                        .resource("cos", &bucket, ""),
                    Op::new("cos", "GetBucketACL", true)
                        .request(json!({"Bucket": bucket}))
                        .resource("cos", &bucket, ""),
                ] {
                    let time = tick(&mut t, &mut self.rng, 2, 30);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "remote_command" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let actor = user_actor(key, attacker_ip);
                let script = "Y3VybCAtZnNTTCBodHRwOi8vNDUuNzYuMjE4LjkyL3guc2ggfCBiYXNo";
                let ops = match provider {
                    Provider::Tencent => {
                        let command = format!("cmd-{}", self.rng.chars(LOWER_ALNUM, 8));
                        vec![
                            Op::new("tat", "RunCommand", false)
                                .request(json!({"Content": script, "InstanceIds": [instance.id], "CommandType": "SHELL", "WorkingDirectory": "/root", "Timeout": 60, "SaveCommand": false}))
                                .resource("tat", &instance.id, ""),
                            Op::new("tat", "InvokeCommand", false)
                                .request(json!({"CommandId": command, "InstanceIds": [instance.id]}))
                                .resource("tat", &command, ""),
                        ]
                    }
                    Provider::Aws => vec![
                        Op::new("ssm", "SendCommand", false)
                            .request(json!({"instanceIds": [instance.id], "documentName": "AWS-RunShellScript", "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS", "interactive": false}))
                            .response(json!({"command": {"commandId": self.rng.uuid(), "documentName": "AWS-RunShellScript", "status": "Pending", "instanceIds": [instance.id]}})),
                    ],
                    Provider::Huawei => vec![
                        Op::new("coc", "ExecuteScript", false)
                            .request(json!({"execute_param": {"resources": [{"resource_id": instance.id, "region_id": holder.regions[0]}], "script_params": [], "timeout": 300, "execute_user": "root"}}))
                            .response(json!({"data": format!("SCT{}", self.rng.hex(16))}))
                            .resource("script", "cleanup-tmp", &format!("SC{}", self.rng.hex(20))),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 10, 90);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "api_resource_created" => {
                let key = self.fresh_key(provider, account);
                let actor = user_actor(key, attacker_ip);
                let ops = match provider {
                    Provider::Aws => {
                        let ids: Vec<String> = (0..4).map(|_| format!("i-0{}", self.rng.hex(16))).collect();
                        vec![Op::new("ec2", "RunInstances", false)
                            .request(json!({"instancesSet": {"items": [{"imageId": "ami-0c7217cdde317cfec", "minCount": 4, "maxCount": 4}]}, "instanceType": "p3.8xlarge", "blockDeviceMapping": {}, "monitoring": {"enabled": false}, "disableApiTermination": false, "disableApiStop": false, "clientToken": self.rng.uuid()}))
                            .response(json!({"requestId": self.rng.uuid(), "reservationId": format!("r-0{}", self.rng.hex(16)), "ownerId": holder.id, "groupSet": {}, "instancesSet": {"items": ids.iter().map(|id| json!({"instanceId": id, "instanceType": "p3.8xlarge", "instanceState": {"code": 0, "name": "pending"}})).collect::<Vec<_>>()}})),
                        Op::new("rds", "CreateDBInstance", false)
                            .request(json!({"dBInstanceIdentifier": "tmp-export", "dBInstanceClass": "db.r6g.8xlarge", "engine": "mysql", "allocatedStorage": 2000, "masterUsername": "admin", "masterUserPassword": "HIDDEN_DUE_TO_SECURITY_REASONS", "publiclyAccessible": true}))
                            .response(json!({"dBInstanceIdentifier": "tmp-export", "dBInstanceClass": "db.r6g.8xlarge", "engine": "mysql", "dBInstanceStatus": "creating", "allocatedStorage": 2000, "publiclyAccessible": true, "dbiResourceId": format!("db-{}", self.rng.chars(B32, 26))}))]
                    }
                    Provider::Tencent => vec![
                        Op::new("cvm", "RunInstances", false).request(json!({"InstanceChargeType": "POSTPAID_BY_HOUR", "Placement": {"Zone": format!("{}-3", holder.regions[0])}, "InstanceType": "GN10X.18XLARGE160", "ImageId": "img-eb30mz89", "InstanceCount": 4, "InternetAccessible": {"InternetMaxBandwidthOut": 100, "PublicIpAssigned": true}})),
                        Op::new("cdb", "CreateDBInstance", false).request(json!({"GoodsNum": 1, "Memory": 64000, "Volume": 2000, "Period": 1, "EngineVersion": "8.0", "Zone": format!("{}-3", holder.regions[0])})),
                    ],
                    Provider::Huawei => vec![
                        Op::new("ecs", "createServer", false)
                            .request(json!({"server": {"name": "ecs-miner", "flavorRef": "p2s.8xlarge.8", "count": 4, "imageRef": self.rng.uuid()}}))
                            .response(json!({"job_id": self.rng.hex(32), "serverIds": [self.rng.uuid(), self.rng.uuid(), self.rng.uuid(), self.rng.uuid()]}))
                            .resource("ecs", "ecs-miner", ""),
                        Op::new("rds", "createInstance", false)
                            .request(json!({"name": "rds-tmp", "datastore": {"type": "MySQL", "version": "8.0"}, "flavor_ref": "rds.mysql.x1.8xlarge.4"}))
                            .resource("instance", "rds-tmp", ""),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 20, 200);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "new_user_high_risk" => {
                let (_, _, key) = self.pool_key_in(provider, account, &victim);
                let admin = user_actor(key, attacker_ip.clone());
                let new_id = match provider {
                    Provider::Aws => format!("AIDA{}{}", holder.key_tag, self.rng.chars(B32, 9)),
                    Provider::Tencent => format!("100{}", digits(&mut self.rng, 9)),
                    Provider::Huawei => self.rng.hex(32),
                };
                let new_user = Person {
                    name: new_name.clone(),
                    id: new_id.clone(),
                    tool,
                };
                let new_key = self.fresh_key(provider, account);
                let create = match provider {
                    Provider::Aws => Op::new("iam", "CreateUser", false)
                        .request(json!({"userName": new_name}))
                        .response(json!({"user": {"path": "/", "userName": new_name, "userId": new_id, "arn": format!("arn:aws:iam::{}:user/{new_name}", holder.id), "createDate": aws_display_time(start)}})),
                    Provider::Tencent => Op::new("cam", "AddUser", false)
                        .request(json!({"Name": new_name, "Remark": "", "ConsoleLogin": 0, "UseApi": 1}))
                        .resource("cam", &new_name, ""),
                    Provider::Huawei => Op::new("iam", "createUser", false)
                        .request(json!({"user": {"name": new_name, "domain_id": holder.id, "enabled": true}}))
                        .response(json!({"user": {"id": new_id, "name": new_name, "domain_id": holder.id, "enabled": true}}))
                        .resource("user", &new_name, &new_id),
                };
                let time = tick(&mut t, &mut self.rng, 10, 60);
                steps.push(self.attack_call(provider, account, time, &admin, create));
                if provider != Provider::Tencent {
                    // Tencent AddUser with UseApi=1 returns the key itself.
                    let op = access_key_op(provider, holder, &new_user, &new_key, start);
                    let time = tick(&mut t, &mut self.rng, 20, 120);
                    steps.push(self.attack_call(provider, account, time, &admin, op));
                }
                let actor = Actor {
                    who: Who::User(new_user.clone()),
                    key: new_key,
                    ip: self.rng.pick(ATTACKER_IPS).to_string(),
                    tool,
                    agent: None,
                };
                t += self.rng.range(60, 180) * MINUTE_MS;
                let ops = match provider {
                    Provider::Aws => vec![
                        Op::new("iam", "ListAccessKeys", true).request(json!({"maxItems": 100})),
                        Op::new("iam", "PutUserPolicy", false).request(json!({"userName": new_name, "policyName": "maint", "policyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}"})),
                    ],
                    Provider::Tencent => vec![
                        Op::new("cam", "ListAccessKeys", true).resource("cam", "", ""),
                        Op::new("tat", "RunCommand", false)
                            .request(json!({"Content": "d2hvYW1pOyBpZA==", "InstanceIds": [instance.id], "CommandType": "SHELL"}))
                            .resource("tat", &instance.id, ""),
                    ],
                    Provider::Huawei => vec![
                        Op::new("ecs", "updateMetadata", false)
                            .request(json!({"metadata": {"user_data": "IyEvYmluL2Jhc2gKaWQ="}}))
                            .resource("ecs", &instance.name, &instance.id),
                        Op::new("iam", "createCredential", false)
                            .request(json!({"credential": {"user_id": new_id, "description": ""}}))
                            .response(json!({"credential": {"access": self.fresh_key(provider, account), "status": "active", "user_id": new_id, "create_time": utc(t).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}}))
                            .resource("credential", &new_name, ""),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 30, 300);
                    steps.push(self.attack_call(provider, account, time, &actor, op));
                }
            }
            "idle_key_reused" => {
                let key = self.fresh_key(provider, account);
                let actor = user_actor(key, self.rng.pick(FIXED_IPS).to_string());
                let read = |provider: Provider| match provider {
                    Provider::Aws => {
                        Op::new("ec2", "DescribeInstances", true).request(json!({"instancesSet": {}, "filterSet": {}}))
                    }
                    Provider::Tencent => {
                        Op::new("cvm", "DescribeInstances", true).request(json!({"Limit": 20, "Offset": 0}))
                    }
                    Provider::Huawei => Op::new("ecs", "listServersDetails", true).resource("ecs", "", ""),
                };
                let time = tick(&mut t, &mut self.rng, 1, 30);
                steps.push(self.attack_call(provider, account, time, &actor, read(provider)));
                t += 45 * DAY_MS + self.rng.range(1, 18 * 60) * MINUTE_MS;
                let late = Actor {
                    ip: attacker_ip,
                    ..actor
                };
                let ops = match provider {
                    Provider::Aws => vec![
                        Op::new("sts", "GetCallerIdentity", true),
                        read(provider),
                        Op::new("s3", "ListBuckets", true).request(json!({"Host": "s3.amazonaws.com"})),
                    ],
                    Provider::Tencent => vec![
                        Op::new("sts", "GetCallerIdentity", true).request(json!({})),
                        read(provider),
                        Op::new("cam", "ListUsers", true).request(json!({})),
                    ],
                    Provider::Huawei => vec![
                        read(provider),
                        Op::new("ecs", "showServer", true).resource("ecs", &instance.name, &instance.id),
                    ],
                };
                for op in ops {
                    let time = tick(&mut t, &mut self.rng, 5, 60);
                    steps.push(self.attack_call(provider, account, time, &late, op));
                }
            }
            "denied_call_burst" => {
                let key = self.fresh_key(provider, account);
                let actor = user_actor(key, attacker_ip);
                let aws = [
                    ("iam", "ListUsers"),
                    ("iam", "ListRoles"),
                    ("iam", "ListPolicies"),
                    ("iam", "GetAccountAuthorizationDetails"),
                    ("iam", "ListAccessKeys"),
                    ("s3", "ListBuckets"),
                    ("ec2", "DescribeInstances"),
                    ("iam", "ListGroups"),
                    ("secretsmanager", "ListSecrets"),
                    ("ec2", "DescribeSecurityGroups"),
                    ("rds", "DescribeDBInstances"),
                    ("lambda", "ListFunctions20150331"),
                ];
                let tencent = [
                    ("cam", "ListUsers"),
                    ("cam", "ListAccessKeys"),
                    ("cvm", "DescribeInstances"),
                    ("cdb", "DescribeDBInstances"),
                    ("cam", "ListPolicies"),
                    ("vpc", "DescribeSecurityGroups"),
                    ("cam", "GetUser"),
                    ("cos", "GetService"),
                    ("cbs", "DescribeDisks"),
                    ("cam", "ListGroups"),
                    ("cam", "DescribeRoleList"),
                    ("ssm", "ListSecrets"),
                ];
                let huawei = [
                    ("iam", "createUser"),
                    ("iam", "createCredential"),
                    ("ecs", "createServer"),
                    ("ecs", "updateMetadata"),
                    ("iam", "createAgency"),
                    ("ecs", "deleteServer"),
                    ("obs", "deleteBucket"),
                    ("iam", "addUserToGroup"),
                    ("ecs", "resetServerPwd"),
                    ("vpc", "createSecurity-group-rule"),
                    ("iam", "updateUser"),
                    ("ecs", "rebootServer"),
                ];
                let calls = match provider {
                    Provider::Aws => aws,
                    Provider::Tencent => tencent,
                    Provider::Huawei => huawei,
                };
                for (service, action) in calls {
                    let read_only = provider != Provider::Huawei;
                    let mut op = Op::new(service, action, read_only);
                    if provider == Provider::Huawei {
                        op = op.request(json!("")).resource(service, "", "");
                    } else if provider == Provider::Tencent {
                        op = op.request(json!({}));
                    }
                    let time = tick(&mut t, &mut self.rng, 8, 22);
                    let mut step = self.attack_call(provider, account, time, &actor, op);
                    step.call.denied = true;
                    steps.push(step);
                }
            }
            _ => {}
        }
        steps
    }

    /// The long-term key `user` holds in the ordinary pool of `account`
    /// (or a fresh one when the pool gives this user none).
    fn pool_key_in(&mut self, provider: Provider, account: usize, user: &Person) -> (usize, Person, String) {
        let cloud = self
            .clouds
            .iter()
            .position(|candidate| *candidate == provider)
            .unwrap_or(0);
        let org = Arc::clone(&self.org);
        let accounts = org.accounts(provider);
        let holder = &accounts[account];
        let slot = holder
            .programmatic
            .iter()
            .position(|index| holder.users[*index].name == user.name);
        let count = keys_of_cloud(self.distinct_keys, self.clouds.len(), cloud);
        if let Some(slot) = slot {
            // local = account + accounts * (slot + programmatic * n)
            let local = account + accounts.len() * slot;
            if local < count {
                let global = (local * self.clouds.len() + cloud) as u64;
                return (
                    account,
                    user.clone(),
                    long_term_key(provider, holder, global, self.salt),
                );
            }
        }
        let key = self.fresh_key(provider, account);
        (account, user.clone(), key)
    }
}

/// Advance a scenario's clock by `low..=high` seconds.
fn tick(clock: &mut i64, rng: &mut Rng, low: i64, high: i64) -> i64 {
    *clock += rng.range(low, high) * 1000;
    *clock
}

/// Identity, key and address of an attack step.
#[derive(Clone, Debug)]
struct Actor {
    who: Who,
    key: String,
    ip: String,
    tool: usize,
    /// Overrides the tool's usual agent.
    agent: Option<String>,
}

fn access_key_op(provider: Provider, holder: &Account, target: &Person, new_key: &str, time_ms: i64) -> Op {
    match provider {
        Provider::Aws => Op::new("iam", "CreateAccessKey", false)
            .request(json!({"userName": target.name}))
            .response(json!({"accessKey": {"accessKeyId": new_key, "status": "Active", "userName": target.name, "createDate": aws_display_time(time_ms)}})),
        Provider::Tencent => Op::new("cam", "CreateAccessKey", false)
            .request(json!({"TargetUin": target.id.parse::<u64>().unwrap_or(holder.uin)}))
            .resource("cam", &target.name, ""),
        Provider::Huawei => Op::new("iam", "createCredential", false)
            .request(json!({"credential": {"user_id": target.id, "description": ""}}))
            .response(json!({"credential": {"access": new_key, "status": "active", "user_id": target.id, "create_time": utc(time_ms).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(), "description": ""}}))
            .resource("credential", &target.name, new_key),
    }
}

// ------------------------------------------------------------------ example directory

/// Writes records into the three clouds' delivery layouts, one time bucket at a time.
struct ExampleDir {
    root: PathBuf,
    rng: Rng,
    aws_hour: Option<i64>,
    aws: BTreeMap<(String, String), Vec<Value>>,
    tencent_bucket: Option<i64>,
    tencent: Vec<Value>,
    tencent_plain_done: bool,
    huawei_hour: Option<i64>,
    huawei: BTreeMap<(String, String), Vec<Value>>,
    huawei_plain_done: bool,
    bytes: u64,
    files: usize,
    /// How much time one delivery file covers, per cloud (real deliveries:
    /// an hour for CloudTrail and CTS, five minutes for CloudAudit).
    aws_span_ms: i64,
    tencent_span_ms: i64,
    huawei_span_ms: i64,
}

impl ExampleDir {
    fn new(root: &Path, seed: u64, file_span_ms: Option<i64>) -> ExampleDir {
        ExampleDir {
            aws_span_ms: file_span_ms.unwrap_or(HOUR_MS),
            tencent_span_ms: file_span_ms.unwrap_or(5 * MINUTE_MS),
            huawei_span_ms: file_span_ms.unwrap_or(HOUR_MS),
            root: root.to_path_buf(),
            rng: Rng::new(seed ^ 0xD1_5EC7),
            aws_hour: None,
            aws: BTreeMap::new(),
            tencent_bucket: None,
            tencent: Vec::new(),
            tencent_plain_done: false,
            huawei_hour: None,
            huawei: BTreeMap::new(),
            huawei_plain_done: false,
            bytes: 0,
            files: 0,
        }
    }

    fn push(&mut self, record: SynthRecord) -> io::Result<()> {
        let ms = record.time.timestamp_millis();
        match record.provider {
            Provider::Aws => {
                let hour = ms.div_euclid(self.aws_span_ms);
                if self.aws_hour != Some(hour) {
                    self.flush_aws()?;
                    self.aws_hour = Some(hour);
                }
                let account = text_at(&record.record, &["recipientAccountId"]);
                let region = text_at(&record.record, &["awsRegion"]);
                self.aws.entry((account, region)).or_default().push(record.record);
            }
            Provider::Tencent => {
                let bucket = ms.div_euclid(self.tencent_span_ms);
                if self.tencent_bucket != Some(bucket) {
                    self.flush_tencent()?;
                    self.tencent_bucket = Some(bucket);
                }
                self.tencent.push(record.record);
            }
            Provider::Huawei => {
                let hour = ms.div_euclid(self.huawei_span_ms);
                if self.huawei_hour != Some(hour) {
                    self.flush_huawei()?;
                    self.huawei_hour = Some(hour);
                }
                let region = huawei_region(&record.record);
                let service = text_at(&record.record, &["service_type"]);
                self.huawei.entry((region, service)).or_default().push(record.record);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.flush_aws()?;
        self.flush_tencent()?;
        self.flush_huawei()
    }

    fn write_file(&mut self, path: &Path, body: &[u8], gzip: bool) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::File::create(path)?;
        let mut file = io::BufWriter::new(file);
        if gzip {
            let mut encoder = GzEncoder::new(&mut file, Compression::fast());
            encoder.write_all(body)?;
            encoder.finish()?;
        } else {
            file.write_all(body)?;
        }
        file.flush()?;
        self.bytes += file.get_ref().metadata()?.len();
        self.files += 1;
        Ok(())
    }

    fn flush_aws(&mut self) -> io::Result<()> {
        let Some(hour) = self.aws_hour else {
            return Ok(());
        };
        let groups = std::mem::take(&mut self.aws);
        for ((account, region), records) in groups {
            let stamp = utc(hour * self.aws_span_ms + self.aws_span_ms - 5 * MINUTE_MS).format("%Y%m%dT%H%MZ");
            let name = format!(
                "{account}_CloudTrail_{region}_{stamp}_{}.json.gz",
                self.rng.chars(B62, 16)
            );
            let body = serde_json::to_vec(&json!({"Records": records}))?;
            let path = self.root.join("aws").join("CloudTrail").join(name);
            self.write_file(&path, &body, true)?;
        }
        Ok(())
    }

    fn flush_tencent(&mut self) -> io::Result<()> {
        let Some(bucket) = self.tencent_bucket else {
            return Ok(());
        };
        if self.tencent.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.tencent);
        let start = bucket * self.tencent_span_ms;
        let local_time = utc(start).with_timezone(&Shanghai);
        let directory = local_time.format("%Y%m%d%H").to_string();
        let index = local_time.minute() / 5;
        let mut body = Vec::new();
        for record in &records {
            serde_json::to_writer(&mut body, record)?;
            body.push(b'\n');
        }
        let plain = !self.tencent_plain_done;
        self.tencent_plain_done = true;
        let name = if plain {
            format!("cloudaudit_{index}.jsonl")
        } else {
            format!("cloudaudit_{index}.json.gz")
        };
        let path = self.root.join("tencent").join(directory).join(name);
        self.write_file(&path, &body, !plain)
    }

    fn flush_huawei(&mut self) -> io::Result<()> {
        let Some(hour) = self.huawei_hour else {
            return Ok(());
        };
        let groups = std::mem::take(&mut self.huawei);
        for ((region, service), records) in groups {
            let delivered = utc(hour * self.huawei_span_ms + self.huawei_span_ms - 30_000);
            let plain = !self.huawei_plain_done;
            self.huawei_plain_done = true;
            let name = format!(
                "cts_CloudTrace_{region}_{}_{}.{}",
                delivered.format("%Y-%m-%dT%H-%M-%SZ"),
                self.rng.hex(16),
                if plain { "json" } else { "json.gz" }
            );
            let path = self
                .root
                .join("huawei")
                .join("CloudTraces")
                .join(&region)
                .join(delivered.format("%Y").to_string())
                .join(delivered.format("%m").to_string())
                .join(delivered.format("%d").to_string())
                .join("system")
                .join(&service)
                .join(name);
            let body = serde_json::to_vec_pretty(&Value::Array(records))?;
            self.write_file(&path, &body, !plain)?;
        }
        Ok(())
    }
}

fn text_at(record: &Value, path: &[&str]) -> String {
    let mut value = record;
    for key in path {
        match value.get(key) {
            Some(next) => value = next,
            None => return "unknown".to_string(),
        }
    }
    value.as_str().unwrap_or("unknown").to_string()
}

/// A Huawei trace's region, from its endpoint (`ecs.cn-north-4.myhuaweicloud.com`);
/// global services (IAM) and system traces file under the home region.
fn huawei_region(record: &Value) -> String {
    let endpoint = text_at(record, &["endpoint"]);
    endpoint
        .split('.')
        .find(|label| label.matches('-').count() >= 2 && label.ends_with(|c: char| c.is_ascii_digit()))
        .unwrap_or("cn-north-4")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_shaped_and_distinct() {
        let org = Org::new(7);
        for provider in Provider::ALL {
            let account = &org.accounts(provider)[0];
            let mut seen = std::collections::HashSet::new();
            for index in 0..2000 {
                let key = long_term_key(provider, account, index, 99);
                let (prefix, len) = match provider {
                    Provider::Aws => ("AKIA", 20),
                    Provider::Tencent => ("AKID", 36),
                    Provider::Huawei => ("HPUA", 20),
                };
                assert!(key.starts_with(prefix), "{key}");
                assert_eq!(key.len(), len, "{key}");
                assert!(seen.insert(key));
            }
        }
    }

    #[test]
    fn next_local_hour_finds_two_am_shanghai() {
        // 2026-03-02T00:00Z is 08:00 in Shanghai; 02:00 next day is 18:00Z.
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap().timestamp_millis();
        let two = next_local_hour(start, 2);
        assert_eq!(utc(two), Utc.with_ymd_and_hms(2026, 3, 2, 18, 0, 0).unwrap());
        assert_eq!(next_local_hour(two, 2), two);
        assert_eq!(next_local_hour(two + 1, 2), two + DAY_MS);
    }

    #[test]
    fn timeline_is_monotone_and_inside_the_span() {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap().timestamp_millis();
        let timeline = Timeline::new(start, 7 * DAY_MS + 1234);
        let mut last = i64::MIN;
        for step in 0..=10_000 {
            let time = timeline.at(step as f64 / 10_000.0);
            assert!(time >= last);
            assert!(time >= start && time <= start + 7 * DAY_MS + 1234);
            last = time;
        }
    }

    #[test]
    fn pool_picker_walks_large_pools() {
        let mut rng = Rng::new(1);
        let mut picker = PoolPicker::new(1000, 1000.0, 5);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            seen.insert(picker.pick(&mut rng));
        }
        assert_eq!(seen.len(), 1000);
    }
}
