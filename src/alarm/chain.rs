//! Tamper evidence: everything an operator or an auditor relies on is linked
//! in a hash chain.
//!
//! Every transaction that creates or changes a sealed row appends a link to
//! the `chain` table: the SHA-256 of the row's canonical content
//! (`row_hash`), chained to the link before it
//! (`hash = SHA-256(prev_hash, seq, kind, ref_id, row_hash, at)`). The links
//! are written in the same transaction as the rows they seal. Sealed are
//! alarms and their status changes, each alarm's evidence (its call records
//! and its sample events), the allowlist policies (their definitions; hit
//! counts change with every batch and are not evidence), remarks, assets and
//! the change log that says who changed a policy, remark or asset. A row
//! removed through trailwarden gets a removal link (`row_hash` = `removed`).
//!
//! `verify` walks the chain, then compares every sealed row with the last
//! link that sealed it: a row edited, deleted or inserted behind
//! trailwarden's back, or a link altered, is named. Rewriting the whole chain
//! after an edit is only caught against a head anchored elsewhere — the
//! daemon logs the head periodically for that, and `verify` accepts an
//! anchored head to check.

use std::collections::HashMap;
use std::fmt;

use crate::db::{Db, DbExt, DbResult, SqliteDb, get};
use rusqlite::Connection;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hash before the first link.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The `row_hash` of a link that records a row's removal through trailwarden.
pub const REMOVED: &str = "removed";

/// What a link seals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    Alarm,
    Transition,
    /// An alarm's call record (per source IP, method, service and API).
    Call,
    /// An event kept as an alarm's evidence.
    Sample,
    /// An allowlist policy's definition.
    Policy,
    Remark,
    Asset,
    /// An entry of the change log (who changed a policy, remark or asset).
    Change,
}

impl LinkKind {
    /// Every kind, in the order `verify` reports them.
    pub const ALL: [LinkKind; 8] = [
        LinkKind::Alarm,
        LinkKind::Transition,
        LinkKind::Call,
        LinkKind::Sample,
        LinkKind::Policy,
        LinkKind::Remark,
        LinkKind::Asset,
        LinkKind::Change,
    ];

    /// The kinds sealed since the first chain migration.
    pub const FIRST: [LinkKind; 2] = [LinkKind::Alarm, LinkKind::Transition];

    /// The kinds added by the evidence migration.
    pub const EVIDENCE: [LinkKind; 6] = [
        LinkKind::Call,
        LinkKind::Sample,
        LinkKind::Policy,
        LinkKind::Remark,
        LinkKind::Asset,
        LinkKind::Change,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Alarm => "alarm",
            LinkKind::Transition => "transition",
            LinkKind::Call => "call",
            LinkKind::Sample => "sample",
            LinkKind::Policy => "policy",
            LinkKind::Remark => "remark",
            LinkKind::Asset => "asset",
            LinkKind::Change => "change",
        }
    }

    /// How a problem names a row of this kind.
    fn noun(self) -> &'static str {
        match self {
            LinkKind::Alarm => "alarm",
            LinkKind::Transition => "transition",
            LinkKind::Call => "call record",
            LinkKind::Sample => "sample event",
            LinkKind::Policy => "allowlist policy",
            LinkKind::Remark => "remark",
            LinkKind::Asset => "asset",
            LinkKind::Change => "change-log entry",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<LinkKind> {
        LinkKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The table rows of this kind live in.
    pub(crate) fn table(self) -> &'static str {
        self.sealed().0
    }

    /// How many columns the chain seals (the first is `id`).
    pub(crate) fn sealed_column_count(self) -> usize {
        self.sealed().1.len()
    }

    /// The table and the sealed columns (the first is always `id`).
    fn sealed(self) -> (&'static str, &'static [&'static str]) {
        match self {
            LinkKind::Alarm => ("alarms", ALARM_SEALED),
            LinkKind::Transition => ("alarm_transitions", TRANSITION_SEALED),
            LinkKind::Call => ("alarm_calls", CALL_SEALED),
            LinkKind::Sample => ("alarm_samples", SAMPLE_SEALED),
            LinkKind::Policy => ("allowlist", POLICY_SEALED),
            LinkKind::Remark => ("remarks", REMARK_SEALED),
            LinkKind::Asset => ("assets", ASSET_SEALED),
            LinkKind::Change => ("changes", CHANGE_SEALED),
        }
    }
}

/// The columns of an alarm that the chain seals (its evidence rows are
/// sealed on their own: `Call` and `Sample`).
const ALARM_SEALED: &[&str] = &[
    "id",
    "rule_id",
    "rule_hash",
    "level",
    "title",
    "status",
    "group_key",
    "provider",
    "account_id",
    "account_name",
    "account_identity",
    "principal_kind",
    "principal_id",
    "principal_name",
    "principal_arn",
    "access_key_id",
    "access_key_temporary",
    "first_seen",
    "last_seen",
    "count",
    "sample_count",
    "last_output",
    "created_at",
    "updated_at",
];
const TRANSITION_SEALED: &[&str] = &["id", "alarm_id", "from_status", "to_status", "actor", "reason", "at"];
const CALL_SEALED: &[&str] = &[
    "id",
    "alarm_id",
    "source_ip",
    "ip_kind",
    "call_method",
    "service",
    "action",
    "success_count",
    "failure_count",
    "first_call",
    "last_call",
];
const SAMPLE_SEALED: &[&str] = &["id", "alarm_id", "seq", "event_id", "event_time", "origin", "event"];
/// A policy's definition; `hit_count`, `last_hit`, `high_hits` and
/// `last_high_hit` change with every batch and are left out.
const POLICY_SEALED: &[&str] = &[
    "id",
    "access_key",
    "source_ip",
    "api",
    "operation",
    "call_method",
    "error_code",
    "rule_id",
    "created_by",
    "via",
    "reason",
    "created_at",
    "expires_at",
    "broad",
    "approved_by",
];
const REMARK_SEALED: &[&str] = &["id", "kind", "value", "remark", "updated_at", "updated_by"];
const ASSET_SEALED: &[&str] = &["id", "cidr", "name", "updated_at", "updated_by"];
const CHANGE_SEALED: &[&str] = &["id", "at", "actor", "via", "subject", "subject_id", "action", "detail"];

/// Canonical hash of one row, from its values: each tagged with its type
/// and length, so no two different rows hash alike (`seal::hash_row` reads
/// them from a row); for a row just inserted with them
/// (each bound with the type its column's affinity keeps), without reading
/// it back.
pub(crate) fn hash_values(values: &[rusqlite::types::ValueRef<'_>]) -> String {
    let mut hasher = Sha256::new();
    let mut digits = Digits::default();
    for value in values {
        feed(&mut hasher, &mut digits, *value);
    }
    hex::encode(hasher.finalize())
}

/// One value of a row hash: tagged with its type and length.
fn feed(hasher: &mut Sha256, digits: &mut Digits, value: rusqlite::types::ValueRef<'_>) {
    match value {
        rusqlite::types::ValueRef::Null => hasher.update(b"N;"),
        rusqlite::types::ValueRef::Integer(value) => {
            hasher.update(b"I");
            hasher.update(digits.of(value));
            hasher.update(b";");
        }
        rusqlite::types::ValueRef::Real(value) => hasher.update(format!("R{value};").as_bytes()),
        rusqlite::types::ValueRef::Text(text) => {
            hasher.update(b"T");
            hasher.update(digits.of(text.len() as i64));
            hasher.update(b":");
            hasher.update(text);
            hasher.update(b";");
        }
        rusqlite::types::ValueRef::Blob(blob) => {
            hasher.update(b"B");
            hasher.update(digits.of(blob.len() as i64));
            hasher.update(b":");
            hasher.update(blob);
            hasher.update(b";");
        }
    }
}

/// An integer's decimal digits, as `format!("{value}")` writes them, without
/// allocating.
#[derive(Default)]
struct Digits {
    buffer: [u8; 20],
}

impl Digits {
    fn of(&mut self, value: i64) -> &[u8] {
        let mut magnitude = value.unsigned_abs();
        let mut start = self.buffer.len();
        loop {
            start -= 1;
            self.buffer[start] = b'0' + (magnitude % 10) as u8;
            magnitude /= 10;
            if magnitude == 0 {
                break;
            }
        }
        if value < 0 {
            start -= 1;
            self.buffer[start] = b'-';
        }
        &self.buffer[start..]
    }
}

/// The columns `kind` seals, comma-separated: a `RETURNING` clause whose row
/// `hash_returned` seals (the row as written, without reading it back).
pub(crate) fn sealed_columns(kind: LinkKind) -> &'static str {
    static LISTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let lists = LISTS.get_or_init(|| LinkKind::ALL.iter().map(|kind| kind.sealed().1.join(", ")).collect());
    let index = LinkKind::ALL.iter().position(|each| *each == kind).unwrap_or(0);
    &lists[index]
}

/// `SELECT` of the sealed columns of one row of `kind`, by id (`?1`).
pub(crate) fn select_sealed(kind: LinkKind) -> &'static str {
    static SELECTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let selects = SELECTS.get_or_init(|| {
        LinkKind::ALL
            .iter()
            .map(|kind| {
                let (table, columns) = kind.sealed();
                format!("SELECT {} FROM {table} WHERE id = ?1", columns.join(", "))
            })
            .collect()
    });
    let index = LinkKind::ALL.iter().position(|each| *each == kind).unwrap_or(0);
    &selects[index]
}

/// The current hash of a row, if it exists.
pub fn row_hash(connection: &Connection, kind: LinkKind, id: i64) -> rusqlite::Result<Option<String>> {
    Ok(super::seal::row_hash(&mut SqliteDb(connection), kind, id)?)
}

pub(crate) fn link_hash(prev_hash: &str, seq: i64, kind: &str, ref_id: i64, row_hash: &str, at: &str) -> String {
    // SHA-256 of "{prev_hash}|{seq}|{kind}|{ref_id}|{row_hash}|{at}", fed in parts.
    let mut hasher = Sha256::new();
    let mut digits = Digits::default();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"|");
    hasher.update(digits.of(seq));
    hasher.update(b"|");
    hasher.update(kind.as_bytes());
    hasher.update(b"|");
    hasher.update(digits.of(ref_id));
    hasher.update(b"|");
    hasher.update(row_hash.as_bytes());
    hasher.update(b"|");
    hasher.update(at.as_bytes());
    hex::encode(hasher.finalize())
}

/// The last link: (seq, hash); when retention has cut every link, the
/// last cut one (its checkpoint), so the chain goes on from there.
pub fn head(connection: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    Ok(super::seal::head(&mut SqliteDb(connection))?)
}

/// The last checkpoint: the (seq, hash) of the newest link retention cut.
/// The chain's first link follows it.
pub fn checkpoint(connection: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    Ok(super::seal::checkpoint(&mut SqliteDb(connection))?)
}

/// Seal the current state of rows in a write transaction (one link each).
pub fn append(connection: &Connection, kind: LinkKind, ids: &[i64], at: &str) -> rusqlite::Result<()> {
    Ok(super::seal::append_rows(&mut SqliteDb(connection), kind, ids, at)?)
}

/// Record, in a write transaction, that a row was removed through
/// trailwarden (after the `DELETE`): its last link then says `removed`, and
/// `verify` expects it gone.
pub fn append_removal(connection: &Connection, kind: LinkKind, id: i64, at: &str) -> rusqlite::Result<()> {
    append_removals(connection, kind, &[id], at)
}

/// `append_removal` for several rows of one kind, one link each, in order.
pub fn append_removals(connection: &Connection, kind: LinkKind, ids: &[i64], at: &str) -> rusqlite::Result<()> {
    Ok(super::seal::append_removals(&mut SqliteDb(connection), kind, ids, at)?)
}

/// Seal rows of `kinds` that predate their sealing (a store created before
/// the chain, or before it covered these kinds). Called once, when the
/// migration that starts sealing them runs.
pub fn seal_existing(connection: &Connection, kinds: &[LinkKind], at: &str) -> rusqlite::Result<usize> {
    let mut sealed_rows = 0;
    for &kind in kinds {
        let (table, _) = kind.sealed();
        let ids: Vec<i64> = connection
            .prepare(&format!("SELECT id FROM {table} ORDER BY id"))?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        sealed_rows += ids.len();
        append(connection, kind, &ids, at)?;
    }
    Ok(sealed_rows)
}

/// One problem `verify` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The link it concerns (the first link after the damage for a broken chain).
    pub seq: Option<i64>,
    pub kind: Option<LinkKind>,
    pub ref_id: Option<i64>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(seq) = self.seq {
            write!(f, "link {seq}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The outcome of `verify`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    pub links: u64,
    pub alarms: u64,
    pub transitions: u64,
    pub calls: u64,
    pub samples: u64,
    pub policies: u64,
    pub remarks: u64,
    pub assets: u64,
    pub changes: u64,
    pub head: Option<(i64, String)>,
    /// Where the kept chain starts, when retention has cut older links.
    pub checkpoint: Option<(i64, String)>,
    /// Ordered by link: the first is the first bad link.
    pub problems: Vec<Problem>,
    /// What could not be checked, and why (not evidence of tampering).
    pub notes: Vec<String>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn count_of(&mut self, kind: LinkKind) -> &mut u64 {
        match kind {
            LinkKind::Alarm => &mut self.alarms,
            LinkKind::Transition => &mut self.transitions,
            LinkKind::Call => &mut self.calls,
            LinkKind::Sample => &mut self.samples,
            LinkKind::Policy => &mut self.policies,
            LinkKind::Remark => &mut self.remarks,
            LinkKind::Asset => &mut self.assets,
            LinkKind::Change => &mut self.changes,
        }
    }

    /// What the chain seals, for a summary line.
    pub fn summary(&self) -> String {
        format!(
            "{} links sealing {} alarms, {} status changes, {} call records, {} samples, {} allowlist policies, \
             {} remarks, {} assets and {} change-log entries",
            self.links,
            self.alarms,
            self.transitions,
            self.calls,
            self.samples,
            self.policies,
            self.remarks,
            self.assets,
            self.changes
        ) + &self
            .checkpoint
            .as_ref()
            .map(|(seq, _)| format!(", kept from link {} (older links cut by retention)", seq + 1))
            .unwrap_or_default()
    }
}

/// An anchored head at or before the last checkpoint: its link is cut, so
/// it can only be compared with a checkpoint of the same link.
fn check_cut_anchor(db: &mut dyn Db, anchor_seq: i64, anchor_hash: &str, report: &mut Verification) -> DbResult<()> {
    let cut: Option<String> = db.query_opt(
        "SELECT hash FROM chain_checkpoints WHERE seq = ?1",
        crate::db_params![anchor_seq],
        |row| get(row, 0),
    )?;
    match cut {
        Some(hash) if hash == anchor_hash => {}
        Some(hash) => report.problems.push(Problem {
            seq: Some(anchor_seq),
            kind: None,
            ref_id: None,
            message: format!("the anchored head {anchor_hash} is not the hash {hash} checkpointed for this link"),
        }),
        None => report.notes.push(format!(
            "the anchored head {anchor_seq} was cut by retention (the chain now starts after link {}); \
             anchor a newer head to check it",
            report.checkpoint.as_ref().map_or(0, |(seq, _)| *seq)
        )),
    }
    Ok(())
}

/// Check the whole chain and every sealed row; with `anchor` (seq, hash),
/// also that the chain still contains that head. Either store.
pub fn verify(db: &mut dyn Db, anchor: Option<(i64, &str)>) -> DbResult<Verification> {
    let mut report = Verification {
        checkpoint: super::seal::checkpoint(db)?,
        ..Verification::default()
    };
    let mut latest: HashMap<(LinkKind, i64), (i64, String)> = HashMap::new();
    // The kept chain follows the last link retention cut, or the genesis.
    let (mut expected_seq, mut prev) = match &report.checkpoint {
        Some((seq, hash)) => (seq + 1, hash.clone()),
        None => (1, GENESIS.to_string()),
    };
    if let Some((anchor_seq, anchor_hash)) = anchor
        && let Some((cut_seq, _)) = &report.checkpoint
        && anchor_seq <= *cut_seq
    {
        check_cut_anchor(db, anchor_seq, anchor_hash, &mut report)?;
    }
    let mut chain_broken = false;
    db.query_each(
        "SELECT seq, at, kind, ref_id, row_hash, prev_hash, hash FROM chain ORDER BY seq",
        &[],
        &mut |row| {
            let seq: i64 = get(row, 0)?;
            let at: String = get(row, 1)?;
            let kind_text: String = get(row, 2)?;
            let ref_id: i64 = get(row, 3)?;
            let row_hash: String = get(row, 4)?;
            let prev_hash: String = get(row, 5)?;
            let hash: String = get(row, 6)?;
            report.links += 1;
            let kind = LinkKind::parse(&kind_text);
            if !chain_broken {
                let problem = if seq != expected_seq {
                    Some(format!(
                        "expected link {expected_seq} here: links were deleted or inserted"
                    ))
                } else if prev_hash != prev {
                    Some("does not follow the link before it (links were removed, reordered or rewritten)".into())
                } else if link_hash(&prev_hash, seq, &kind_text, ref_id, &row_hash, &at) != hash {
                    Some("its hash does not match its contents (the link was edited)".into())
                } else {
                    None
                };
                if let Some(message) = problem {
                    report.problems.push(Problem {
                        seq: Some(seq),
                        kind,
                        ref_id: Some(ref_id),
                        message: format!("the chain is broken: {message}"),
                    });
                    // Past a break, link-level checks would only repeat it.
                    chain_broken = true;
                }
            }
            if let Some((anchor_seq, anchor_hash)) = anchor
                && anchor_seq == seq
                && anchor_hash != hash
            {
                report.problems.push(Problem {
                    seq: Some(seq),
                    kind,
                    ref_id: Some(ref_id),
                    message: format!("the anchored head {anchor_hash} is not this link's hash {hash}"),
                });
            }
            prev = hash;
            expected_seq = seq + 1;
            match kind {
                Some(kind) => {
                    latest.insert((kind, ref_id), (seq, row_hash));
                }
                None => report.problems.push(Problem {
                    seq: Some(seq),
                    kind: None,
                    ref_id: Some(ref_id),
                    message: format!("unknown link kind \"{kind_text}\""),
                }),
            }
            Ok(())
        },
    )?;
    report.head = super::seal::head(db)?;
    if let Some((anchor_seq, _)) = anchor
        && report.head.as_ref().is_none_or(|(seq, _)| *seq < anchor_seq)
    {
        report.problems.push(Problem {
            seq: Some(anchor_seq),
            kind: None,
            ref_id: None,
            message: "the anchored head is no longer in the chain (links were removed from its end)".into(),
        });
    }
    // Every row against the last link that sealed it.
    for kind in LinkKind::ALL {
        let (table, columns) = kind.sealed();
        let sql = format!("SELECT {} FROM {table} ORDER BY id", columns.join(", "));
        db.query_each(&sql, &[], &mut |row| {
            let id: i64 = get(row, 0)?;
            *report.count_of(kind) += 1;
            let current = super::seal::hash_row(row, columns.len())?;
            let noun = kind.noun();
            let problem = match latest.remove(&(kind, id)) {
                None => Some((
                    None,
                    format!("{noun} {id} is not in the chain (inserted behind trailwarden's back)"),
                )),
                Some((seq, sealed_hash)) if sealed_hash == REMOVED => Some((
                    Some(seq),
                    format!(
                        "{noun} {id} was removed through trailwarden at this link and is back (inserted behind its back)"
                    ),
                )),
                Some((seq, sealed_hash)) if sealed_hash != current => {
                    Some((Some(seq), format!("{noun} {id} was changed after this link sealed it")))
                }
                Some(_) => None,
            };
            if let Some((seq, message)) = problem {
                report.problems.push(Problem {
                    seq,
                    kind: Some(kind),
                    ref_id: Some(id),
                    message,
                });
            }
            Ok(())
        })?;
    }
    for ((kind, id), (seq, sealed_hash)) in latest {
        if sealed_hash == REMOVED {
            continue;
        }
        report.problems.push(Problem {
            seq: Some(seq),
            kind: Some(kind),
            ref_id: Some(id),
            message: format!("{} {id} was deleted (this link sealed it)", kind.noun()),
        });
    }
    report
        .problems
        .sort_by_key(|problem| (problem.seq.unwrap_or(i64::MAX), problem.ref_id.unwrap_or(0)));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_what_format_writes() {
        let mut digits = Digits::default();
        for value in [
            i64::MIN,
            -1_000_001,
            -10,
            -1,
            0,
            1,
            9,
            10,
            99,
            100,
            123_456_789,
            i64::MAX,
        ] {
            assert_eq!(digits.of(value), value.to_string().as_bytes());
        }
    }

    #[test]
    fn a_link_hash_is_the_hash_of_its_joined_parts() {
        let joined = format!("{GENESIS}|42|alarm|-7|{REMOVED}|2026-03-02T00:00:00.000Z");
        assert_eq!(
            link_hash(GENESIS, 42, "alarm", -7, REMOVED, "2026-03-02T00:00:00.000Z"),
            hex::encode(Sha256::digest(joined.as_bytes()))
        );
    }

    #[test]
    fn a_row_hash_tags_each_value_with_its_type_and_length() {
        let connection = Connection::open_in_memory().unwrap();
        let hash = SqliteDb(&connection)
            .query_opt("SELECT NULL, -12, 'héllo', x'0102', 1.5", &[], |row| {
                super::super::seal::hash_row(row, 5)
            })
            .unwrap()
            .unwrap();
        let mut expected = Sha256::new();
        expected.update(b"N;I-12;T6:h\xc3\xa9llo;B2:\x01\x02;R1.5;");
        assert_eq!(hash, hex::encode(expected.finalize()));
    }
}
