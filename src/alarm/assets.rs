//! Remarks and assets: what the organisation knows about its keys and addresses.
//!
//! - **Remarks** (seeds/003: "no more than 20 characters") on access keys and
//!   on IP addresses, table `remarks`.
//! - **Assets**: the organisation's own IPs and CIDRs with a name (the "within
//!   the account" addresses of seeds/003), table `assets`, added one by one or
//!   imported from a file of `cidr,name` lines.
//! - Every remark and asset change records its actor and goes to the sealed
//!   change log (`changes.rs`); the functions that change them run in the
//!   caller's transaction (`Store::change`).
//! - **IP type** of a call record, computed when reading (remarks and assets
//!   change after the alarm was written): `within_account` (the address is in
//!   an asset), `lan` (private, loopback, link-local, CGNAT, unique-local),
//!   `platform` (the cloud's own internal network, as the normalizer marked
//!   it: Tencent's 9.0.0.0/8, 11.0.0.0/8, 30.0.0.0/8), `outside` (any other
//!   address), each with or without a remark; `none` when the call has no
//!   address (a service name such as `ec2.amazonaws.com`, or nothing).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use crate::db::{Db, DbError, DbExt, get};
use crate::db_params;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::Serialize;

use super::changes::{self, Actor, Subject};
use super::store::timestamp;
use crate::event::lenient::{ip_kind, parse_ip};
use crate::event::model::IpKind;

/// Longest remark, in characters (seeds/003).
pub const MAX_REMARK_CHARS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    #[error("remark {text:?} is {chars} characters long; at most {MAX_REMARK_CHARS} are allowed")]
    RemarkTooLong { text: String, chars: usize },
    #[error("remark must not be empty (use `remark remove` to delete one)")]
    EmptyRemark,
    #[error("remark {text:?}: control characters (line breaks, tabs) are not allowed")]
    RemarkControl { text: String },
    #[error("remark target {value:?}: {reason}")]
    BadTarget { value: String, reason: &'static str },
    #[error("no remark on {kind} {value:?}")]
    NoRemark { kind: &'static str, value: String },
    #[error("asset {cidr:?}: not an IP address or CIDR")]
    BadCidr { cidr: String },
    #[error("asset {cidr}: the name must not be empty")]
    EmptyName { cidr: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("remarks / assets tables: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("remarks and assets: {0}")]
    Db(#[from] DbError),
}

/// What a remark is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RemarkKind {
    Key,
    Ip,
}

impl RemarkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RemarkKind::Key => "key",
            RemarkKind::Ip => "ip",
        }
    }

    pub fn parse(text: &str) -> Option<RemarkKind> {
        match text {
            "key" => Some(RemarkKind::Key),
            "ip" => Some(RemarkKind::Ip),
            _ => None,
        }
    }
}

/// A stored remark (`value` is the full key or the normalized address).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Remark {
    pub kind: RemarkKind,
    pub value: String,
    pub remark: String,
    pub updated_at: String,
    /// Who set it (API token name or the command line's actor).
    pub updated_by: String,
}

/// One of the organisation's own address ranges.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Asset {
    pub cidr: String,
    pub name: String,
    pub updated_at: String,
    /// Who added or renamed it.
    pub updated_by: String,
}

/// Check a remark's text: trimmed, 1 to 20 characters, no control characters.
pub fn check_remark(text: &str) -> Result<String, AssetsError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AssetsError::EmptyRemark);
    }
    let chars = text.chars().count();
    if chars > MAX_REMARK_CHARS {
        return Err(AssetsError::RemarkTooLong {
            text: text.to_string(),
            chars,
        });
    }
    if text.chars().any(char::is_control) {
        return Err(AssetsError::RemarkControl { text: text.to_string() });
    }
    Ok(text.to_string())
}

/// The stored form of a remark target: the key as given, the address normalized.
fn target(kind: RemarkKind, value: &str) -> Result<String, AssetsError> {
    let value = value.trim();
    match kind {
        RemarkKind::Key if value.is_empty() => Err(AssetsError::BadTarget {
            value: value.to_string(),
            reason: "an empty access key",
        }),
        RemarkKind::Key => Ok(value.to_string()),
        RemarkKind::Ip => parse_ip(value)
            .map(|ip| ip.to_string())
            .ok_or_else(|| AssetsError::BadTarget {
                value: value.to_string(),
                reason: "not an IP address",
            }),
    }
}

/// Set (or replace) a remark, in the caller's transaction, with its change-log entry.
pub fn set_remark(
    db: &mut dyn Db,
    kind: RemarkKind,
    value: &str,
    text: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Remark, AssetsError> {
    let remark = check_remark(text)?;
    let value = target(kind, value)?;
    let updated_at = timestamp(now);
    let id: i64 = db
        .query_opt(
            "INSERT INTO remarks (kind, value, remark, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (kind, value) DO UPDATE SET remark = excluded.remark, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by RETURNING id",
            db_params![kind.as_str(), &value, &remark, &updated_at, &actor.name],
            |row| get(row, 0),
        )?
        .ok_or_else(|| DbError::Unsupported("a remark upsert returned no id".into()))?;
    let remark = Remark {
        kind,
        value,
        remark,
        updated_at,
        updated_by: actor.name.clone(),
    };
    changes::record(
        db,
        actor,
        Subject::Remark,
        id,
        "set",
        &remark_detail(&remark),
        &remark.updated_at,
    )?;
    Ok(remark)
}

/// A remark as the change log shows it (a key masked).
fn remark_detail(remark: &Remark) -> serde_json::Value {
    let value = match remark.kind {
        RemarkKind::Key => crate::mask::mask_access_key(&remark.value),
        RemarkKind::Ip => remark.value.clone(),
    };
    serde_json::json!({ "kind": remark.kind, "value": value, "remark": remark.remark })
}

/// Remove a remark, in the caller's transaction, with its change-log entry.
pub fn remove_remark(
    db: &mut dyn Db,
    kind: RemarkKind,
    value: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(), AssetsError> {
    let value = target(kind, value)?;
    let found: Option<(i64, String, String, String)> = db.query_opt(
        "SELECT id, remark, updated_at, updated_by FROM remarks WHERE kind = ?1 AND value = ?2",
        db_params![kind.as_str(), &value],
        |row| Ok((get(row, 0)?, get(row, 1)?, get(row, 2)?, get(row, 3)?)),
    )?;
    let Some((id, remark, updated_at, updated_by)) = found else {
        return Err(AssetsError::NoRemark {
            kind: kind.as_str(),
            value,
        });
    };
    db.execute("DELETE FROM remarks WHERE id = ?1", db_params![id])?;
    let removed = Remark {
        kind,
        value,
        remark,
        updated_at,
        updated_by,
    };
    changes::record(
        db,
        actor,
        Subject::Remark,
        id,
        "removed",
        &remark_detail(&removed),
        &timestamp(now),
    )?;
    Ok(())
}

pub fn list_remarks(db: &mut dyn Db) -> Result<Vec<Remark>, AssetsError> {
    Ok(db.query_all(
        "SELECT kind, value, remark, updated_at, updated_by FROM remarks ORDER BY kind, value",
        &[],
        |row| {
            let kind: String = get(row, 0)?;
            Ok(Remark {
                kind: RemarkKind::parse(&kind).unwrap_or(RemarkKind::Key),
                value: get(row, 1)?,
                remark: get(row, 2)?,
                updated_at: get(row, 3)?,
                updated_by: get(row, 4)?,
            })
        },
    )?)
}

fn parse_cidr(text: &str) -> Result<IpNet, AssetsError> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    parse_ip(text)
        .map(IpNet::from)
        .ok_or_else(|| AssetsError::BadCidr { cidr: text.to_string() })
}

/// Add (or rename) an asset range, in the caller's transaction, with its
/// change-log entry.
pub fn add_asset(
    db: &mut dyn Db,
    cidr: &str,
    name: &str,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Asset, AssetsError> {
    let net = parse_cidr(cidr)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(AssetsError::EmptyName { cidr: net.to_string() });
    }
    let asset = Asset {
        cidr: net.to_string(),
        name: name.to_string(),
        updated_at: timestamp(now),
        updated_by: actor.name.clone(),
    };
    let id: i64 = db
        .query_opt(
            "INSERT INTO assets (cidr, name, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (cidr) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by RETURNING id",
            db_params![&asset.cidr, &asset.name, &asset.updated_at, &asset.updated_by],
            |row| get(row, 0),
        )?
        .ok_or_else(|| DbError::Unsupported("an asset upsert returned no id".into()))?;
    changes::record(
        db,
        actor,
        Subject::Asset,
        id,
        "set",
        &serde_json::json!({ "cidr": asset.cidr, "name": asset.name }),
        &asset.updated_at,
    )?;
    Ok(asset)
}

pub fn list_assets(db: &mut dyn Db) -> Result<Vec<Asset>, AssetsError> {
    Ok(db.query_all(
        "SELECT cidr, name, updated_at, updated_by FROM assets ORDER BY cidr",
        &[],
        |row| {
            Ok(Asset {
                cidr: get(row, 0)?,
                name: get(row, 1)?,
                updated_at: get(row, 2)?,
                updated_by: get(row, 3)?,
            })
        },
    )?)
}

/// What an import did: assets written, and one `file:line: problem` per bad line.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ImportReport {
    pub imported: usize,
    pub problems: Vec<String>,
}

/// Import assets from a file: one `cidr,name` per line (an IP alone is a
/// /32 or /128); blank lines and lines starting with `#` are skipped; the
/// name is everything after the first comma. Bad lines are reported with
/// `file:line` and skipped; the good ones are written in the caller's
/// transaction (one change-log entry each).
pub fn import_assets(
    db: &mut dyn Db,
    path: &Path,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<ImportReport, AssetsError> {
    let text = std::fs::read(path).map_err(|source| AssetsError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let text = String::from_utf8_lossy(&text);
    let mut report = ImportReport::default();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let location = format!("{}:{}", path.display(), index + 1);
        let Some((cidr, name)) = line.split_once(',') else {
            report
                .problems
                .push(format!("{location}: expected `cidr,name`, found {line:?}"));
            continue;
        };
        match add_asset(db, cidr, name, actor, now) {
            Ok(_) => report.imported += 1,
            Err(AssetsError::Sql(error)) => return Err(AssetsError::Sql(error)),
            Err(AssetsError::Db(error)) => return Err(AssetsError::Db(error)),
            Err(error) => report.problems.push(format!("{location}: {error}")),
        }
    }
    Ok(report)
}

/// The IP type of a call record (seeds/003).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpType {
    WithinAccount,
    Lan,
    /// The cloud's own internal network (a platform relay, not the caller).
    Platform,
    Outside,
    /// No address: a service name, or nothing.
    None,
}

impl IpType {
    pub fn as_str(self) -> &'static str {
        match self {
            IpType::WithinAccount => "within_account",
            IpType::Lan => "lan",
            IpType::Platform => "platform",
            IpType::Outside => "outside",
            IpType::None => "none",
        }
    }

    /// The seed's wording: "within the account (with remark)" …
    pub fn label(self, with_remark: bool) -> String {
        let kind = match self {
            IpType::WithinAccount => "within the account",
            IpType::Lan => "LAN",
            IpType::Platform => "cloud platform",
            IpType::Outside => "outside the account",
            IpType::None => "no address",
        };
        format!("{kind} ({})", if with_remark { "with remark" } else { "no remark" })
    }
}

/// An address classified against assets and remarks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IpInfo {
    pub ip_type: IpType,
    pub ip_type_label: String,
    pub ip_remark: Option<String>,
    /// The name of the (most specific) asset holding the address.
    pub asset: Option<String>,
    /// Country, region, city and AS from `[geoip]` ("region unknown" without).
    pub region: crate::geoip::Region,
}

/// The asset networks alone, for the engine to mark events from the
/// organisation's own addresses (`source_ip.asset`).
#[derive(Clone, Debug, Default)]
pub struct AssetNetworks {
    networks: Vec<IpNet>,
}

impl AssetNetworks {
    pub fn load(db: &mut dyn Db) -> Result<AssetNetworks, AssetsError> {
        let mut networks: Vec<IpNet> = list_assets(db)?
            .iter()
            .filter_map(|asset| parse_cidr(&asset.cidr).ok())
            .collect();
        networks.sort();
        networks.dedup();
        Ok(AssetNetworks { networks })
    }

    pub fn len(&self) -> usize {
        self.networks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|network| network.contains(&ip))
    }

    /// Mark the event's source address when it is in an asset.
    pub fn mark(&self, event: &mut crate::event::model::AuditEvent) {
        if let Some(source) = event.source.as_mut() {
            source.asset = !self.networks.is_empty() && source.ip.is_some_and(|ip| self.contains(ip));
        }
    }
}

/// Assets and remarks loaded once to classify many addresses.
#[derive(Debug, Default)]
pub struct Directory {
    /// Most specific (longest prefix) first.
    assets: Vec<(IpNet, String)>,
    ip_remarks: HashMap<String, String>,
    key_remarks: HashMap<String, String>,
}

impl Directory {
    pub fn load(db: &mut dyn Db) -> Result<Directory, AssetsError> {
        let mut directory = Directory::default();
        for asset in list_assets(db)? {
            if let Ok(net) = parse_cidr(&asset.cidr) {
                directory.assets.push((net, asset.name));
            }
        }
        directory
            .assets
            .sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        for remark in list_remarks(db)? {
            match remark.kind {
                RemarkKind::Ip => directory.ip_remarks.insert(remark.value, remark.remark),
                RemarkKind::Key => directory.key_remarks.insert(remark.value, remark.remark),
            };
        }
        Ok(directory)
    }

    pub fn key_remark(&self, key: &str) -> Option<&str> {
        self.key_remarks.get(key).map(String::as_str)
    }

    /// Classify a call record's address with the kind the normalizer stored
    /// beside it (`alarm_calls.ip_kind`): an address in a cloud's platform
    /// range is only recognisable there, with the record's cloud known, so it
    /// is not reported as outside the account. An asset still wins.
    pub fn classify_recorded(&self, text: &str, ip_kind: &str) -> IpInfo {
        let mut info = self.classify(text);
        if IpKind::parse(ip_kind) == Some(IpKind::Platform) && matches!(info.ip_type, IpType::Outside | IpType::Lan) {
            info.ip_type = IpType::Platform;
            info.ip_type_label = IpType::Platform.label(info.ip_remark.is_some());
        }
        info
    }

    /// Classify an address as recorded (`source_ip` text of a call record).
    pub fn classify(&self, text: &str) -> IpInfo {
        let ip: Option<IpAddr> = parse_ip(text.trim());
        let remark = match ip {
            Some(ip) => self.ip_remarks.get(&ip.to_string()),
            None => self.ip_remarks.get(text.trim()),
        }
        .cloned();
        let asset = ip.and_then(|ip| {
            self.assets
                .iter()
                .find(|(net, _)| net.contains(&ip))
                .map(|(_, name)| name.clone())
        });
        let ip_type = match ip {
            None => IpType::None,
            Some(_) if asset.is_some() => IpType::WithinAccount,
            Some(ip) if ip_kind(&ip) == IpKind::Private => IpType::Lan,
            Some(_) => IpType::Outside,
        };
        IpInfo {
            ip_type,
            ip_type_label: ip_type.label(remark.is_some()),
            ip_remark: remark,
            region: crate::geoip::region_of(text),
            asset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::SqliteDb;
    use rusqlite::Connection;

    fn store() -> Connection {
        let mut connection = Connection::open_in_memory().unwrap();
        crate::alarm::schema::migrate(&mut connection).unwrap();
        connection
    }

    fn actor() -> Actor {
        Actor::cli(Some("tester")).unwrap()
    }

    #[test]
    fn remarks_are_at_most_20_characters() {
        assert!(check_remark("部门一的密钥部门一的密钥部门一的密钥部门").is_ok()); // 20 characters, 60 bytes
        let error = check_remark("123456789012345678901").unwrap_err().to_string();
        assert!(
            error.contains("21 characters") && error.contains("at most 20"),
            "{error}"
        );
        assert!(check_remark("  ").is_err());
        assert!(check_remark("a\nb").is_err());
    }

    #[test]
    fn ip_types_with_and_without_remarks() {
        let connection = store();
        let now = Utc::now();
        add_asset(
            &mut SqliteDb(&connection),
            "203.0.113.0/24",
            "office egress",
            &actor(),
            now,
        )
        .unwrap();
        add_asset(&mut SqliteDb(&connection), "203.0.113.7", "build server", &actor(), now).unwrap();
        set_remark(
            &mut SqliteDb(&connection),
            RemarkKind::Ip,
            "198.51.100.9",
            "partner",
            &actor(),
            now,
        )
        .unwrap();
        set_remark(
            &mut SqliteDb(&connection),
            RemarkKind::Ip,
            "10.1.1.1",
            "jump host",
            &actor(),
            now,
        )
        .unwrap();
        set_remark(
            &mut SqliteDb(&connection),
            RemarkKind::Key,
            "AKIDx",
            "Department 1 AK",
            &actor(),
            now,
        )
        .unwrap();
        assert!(
            set_remark(
                &mut SqliteDb(&connection),
                RemarkKind::Ip,
                "not-an-ip",
                "x",
                &actor(),
                now
            )
            .is_err()
        );
        let directory = Directory::load(&mut SqliteDb(&connection)).unwrap();
        let within = directory.classify("203.0.113.7");
        assert_eq!(within.ip_type, IpType::WithinAccount);
        assert_eq!(within.asset.as_deref(), Some("build server"));
        assert_eq!(within.ip_type_label, "within the account (no remark)");
        assert_eq!(
            directory.classify("203.0.113.8").asset.as_deref(),
            Some("office egress")
        );
        let partner = directory.classify("198.51.100.9");
        assert_eq!(partner.ip_type, IpType::Outside);
        assert_eq!(partner.ip_remark.as_deref(), Some("partner"));
        assert_eq!(partner.ip_type_label, "outside the account (with remark)");
        let lan = directory.classify("10.1.1.1");
        assert_eq!(
            (lan.ip_type, lan.ip_remark.as_deref()),
            (IpType::Lan, Some("jump host"))
        );
        assert_eq!(directory.classify("192.168.0.1").ip_type_label, "LAN (no remark)");
        assert_eq!(directory.classify("ec2.amazonaws.com").ip_type, IpType::None);
        assert_eq!(directory.classify("").ip_type, IpType::None);
        // Tencent's relay address: outside by its text, platform by the kind
        // the normalizer stored; other clouds' 9.x addresses stay outside.
        assert_eq!(directory.classify("9.83.55.32").ip_type, IpType::Outside);
        let relay = directory.classify_recorded("9.83.55.32", "platform");
        assert_eq!(
            (relay.ip_type, relay.ip_type_label.as_str()),
            (IpType::Platform, "cloud platform (no remark)")
        );
        assert_eq!(
            directory.classify_recorded("9.83.55.32", "public").ip_type,
            IpType::Outside
        );
        assert_eq!(
            directory.classify_recorded("203.0.113.7", "platform").ip_type,
            IpType::WithinAccount
        );
        assert_eq!(directory.key_remark("AKIDx"), Some("Department 1 AK"));
        remove_remark(
            &mut SqliteDb(&connection),
            RemarkKind::Key,
            "AKIDx",
            &actor(),
            Utc::now(),
        )
        .unwrap();
        assert!(
            remove_remark(
                &mut SqliteDb(&connection),
                RemarkKind::Key,
                "AKIDx",
                &actor(),
                Utc::now()
            )
            .is_err()
        );
    }

    #[test]
    fn import_reports_bad_lines_and_keeps_going() {
        let connection = store();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("assets.csv");
        std::fs::write(
            &path,
            "# our ranges\n10.0.0.0/8,datacenter\n\nnot-a-cidr,broken\n203.0.113.5,bastion, eu\nno comma here\n",
        )
        .unwrap();
        let report = import_assets(&mut SqliteDb(&connection), &path, &actor(), Utc::now()).unwrap();
        assert_eq!(report.imported, 2);
        assert_eq!(report.problems.len(), 2);
        assert!(report.problems[0].ends_with("assets.csv:4: asset \"not-a-cidr\": not an IP address or CIDR"));
        assert!(report.problems[1].contains("assets.csv:6:"), "{:?}", report.problems);
        let assets = list_assets(&mut SqliteDb(&connection)).unwrap();
        assert_eq!(assets[1].cidr, "203.0.113.5/32");
        assert_eq!(assets[1].name, "bastion, eu");
    }
}
