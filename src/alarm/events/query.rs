//! Searching the event store: by key, principal, address, account, action,
//! service, resource, ids, outcome, cloud and time, newest first, a page at
//! a time.
//!
//! Blocks are read newest first (by the order they were written, which is
//! event-time order within the allowed lateness), and each block's events
//! from its last to its first, so results come newest first. A cursor names
//! the next event to read (`block.entry`); a page ends after `limit` events
//! or after `max_blocks` blocks opened, whichever comes first, and carries the
//! cursor to go on from.

use std::net::IpAddr;

use crate::db::{Db, DbError, DbExt, Value, get};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::codec::{self, Entry, Field};
use crate::event::model::{OutcomeResult, Provider};

/// Where a page starts: the block id and the entry in it (read downwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub block: i64,
    pub entry: u32,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.block, self.entry)
    }
}

impl std::str::FromStr for Cursor {
    type Err = SearchError;

    fn from_str(text: &str) -> Result<Cursor, SearchError> {
        let bad = || SearchError::BadCursor(text.to_string());
        let (block, entry) = text.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            block: block.parse().map_err(|_| bad())?,
            entry: entry.parse().map_err(|_| bad())?,
        })
    }
}

/// An address or a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpMatch {
    /// An address, or any text (`AWS Internal`, a service host name), compared exactly.
    Exact(String),
    Network(ipnet::IpNet),
}

impl IpMatch {
    /// `10.1.2.3`, `10.1.2.0/24`, `2001:db8::/32` or a host name.
    pub fn parse(text: &str) -> IpMatch {
        match text.parse::<ipnet::IpNet>() {
            Ok(network) if text.contains('/') => IpMatch::Network(network),
            _ => IpMatch::Exact(text.trim().to_string()),
        }
    }

    fn matches(&self, address: &str) -> bool {
        match self {
            IpMatch::Exact(text) => text.eq_ignore_ascii_case(address),
            IpMatch::Network(network) => address
                .parse::<IpAddr>()
                .is_ok_and(|address| network.contains(&address)),
        }
    }
}

/// A search; text filters compare whole values, ignoring ASCII case.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub key: Option<String>,
    /// The principal's name, id or ARN.
    pub principal: Option<String>,
    pub ip: Option<IpMatch>,
    /// The account id or name.
    pub account: Option<String>,
    pub action: Option<String>,
    pub service: Option<String>,
    /// One of the event's resource names.
    pub resource: Option<String>,
    /// The event id or the request id.
    pub id: Option<String>,
    pub outcome: Option<OutcomeResult>,
    pub provider: Option<Provider>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: u32,
    pub cursor: Option<Cursor>,
    /// Blocks opened at most per page (0: the default, 1 000).
    pub max_blocks: u32,
}

/// The largest page.
pub const MAX_LIMIT: u32 = 1_000;
const DEFAULT_MAX_BLOCKS: u32 = 1_000;

/// An event as kept: its fields and its record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredEvent {
    pub time: String,
    #[serde(skip)]
    pub time_ms: i64,
    pub provider: &'static str,
    pub event_id: String,
    pub request_id: Option<String>,
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    pub principal_kind: &'static str,
    pub principal_name: Option<String>,
    pub principal_id: Option<String>,
    pub principal_arn: Option<String>,
    pub access_key_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub service: String,
    pub action: String,
    pub region: Option<String>,
    pub call_method: &'static str,
    pub outcome: &'static str,
    pub error_code: Option<String>,
    pub resource_type: Option<String>,
    pub resource_names: Vec<String>,
    /// The original record (the request body and response, as the cloud wrote them).
    pub raw: serde_json::Value,
    /// Where it is kept (`block.entry`), to link to it.
    pub position: String,
}

/// A page of results.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Where the next page starts; `None` when the search is complete.
    pub next: Option<String>,
    /// Blocks in the time range whose filters were read, and blocks opened.
    pub blocks_checked: u64,
    pub blocks_opened: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("bad cursor {0:?}: expected BLOCK.ENTRY as a page's `next` gives it")]
    BadCursor(String),
    #[error("reading the event store: {0}")]
    Store(#[from] DbError),
    #[error("event block {block}: {detail}")]
    Damaged { block: i64, detail: String },
}

impl EventFilter {
    /// The exact terms every matching event has (for the blocks' filters).
    fn terms(&self) -> Vec<u64> {
        let mut terms = Vec::new();
        let mut add = |field: Field, value: &Option<String>| {
            if let Some(value) = value.as_deref().filter(|value| !value.is_empty()) {
                terms.push(codec::term_hash(field, value));
            }
        };
        add(Field::Key, &self.key);
        add(Field::Principal, &self.principal);
        add(Field::Action, &self.action);
        add(Field::Service, &self.service);
        add(Field::Resource, &self.resource);
        add(Field::Id, &self.id);
        if let Some(IpMatch::Exact(address)) = &self.ip {
            terms.push(codec::term_hash(Field::Ip, address));
        }
        // An account may be named by id or name; only ids are terms.
        if let Some(account) = self
            .account
            .as_deref()
            .filter(|account| account.bytes().all(|b| b.is_ascii_digit()))
        {
            terms.push(codec::term_hash(Field::Account, account));
        }
        terms
    }

    fn matches(&self, entry: &Entry<'_>) -> bool {
        let same = |wanted: &Option<String>, value: &str| {
            wanted
                .as_deref()
                .is_none_or(|wanted| wanted.eq_ignore_ascii_case(value))
        };
        if self.since.is_some_and(|since| entry.time_ms < since.timestamp_millis())
            || self
                .until
                .is_some_and(|until| entry.time_ms >= until.timestamp_millis())
            || self.outcome.is_some_and(|outcome| outcome != entry.outcome)
            || self.provider.is_some_and(|provider| provider != entry.provider)
        {
            return false;
        }
        same(&self.key, entry.text("access_key_id"))
            && same(&self.action, entry.text("action"))
            && same(&self.service, entry.text("service"))
            && self.principal.as_deref().is_none_or(|wanted| {
                ["principal_name", "principal_id", "principal_arn"]
                    .iter()
                    .any(|field| wanted.eq_ignore_ascii_case(entry.text(field)))
            })
            && self.account.as_deref().is_none_or(|wanted| {
                wanted.eq_ignore_ascii_case(entry.text("account_id"))
                    || wanted.eq_ignore_ascii_case(entry.text("account_name"))
            })
            && self.id.as_deref().is_none_or(|wanted| {
                wanted.eq_ignore_ascii_case(entry.text("event_id"))
                    || wanted.eq_ignore_ascii_case(entry.text("request_id"))
            })
            && self.resource.as_deref().is_none_or(|wanted| {
                entry
                    .resource_names
                    .iter()
                    .any(|name| wanted.eq_ignore_ascii_case(name))
            })
            && self.ip.as_ref().is_none_or(|ip| ip.matches(entry.text("source_ip")))
    }
}

/// Blocks whose filters are read per query, newest first: a page that
/// fills from the newest blocks reads no further.
const BLOCKS_PER_QUERY: i64 = 64;

/// One page of the events matching `filter`, newest first, on either backend.
pub fn search(db: &mut dyn Db, filter: &EventFilter) -> Result<EventPage, SearchError> {
    let limit = filter.limit.clamp(1, MAX_LIMIT) as usize;
    let max_blocks = if filter.max_blocks == 0 {
        DEFAULT_MAX_BLOCKS
    } else {
        filter.max_blocks
    };
    let terms = filter.terms();
    let mut page = EventPage::default();
    let since = filter.since.map_or(i64::MIN, |since| since.timestamp_millis());
    let until = filter.until.map_or(i64::MAX, |until| until.timestamp_millis());
    let mut start_block = filter.cursor.map_or(i64::MAX, |cursor| cursor.block);
    loop {
        // (block, uncompressed size, whether its filter may hold every term)
        let blocks: Vec<(i64, i64, bool)> = db.query_all(
            "SELECT id, raw_bytes, bloom FROM event_blocks \
             WHERE max_time_ms >= ?1 AND min_time_ms < ?2 AND id <= ?3 ORDER BY id DESC LIMIT ?4",
            crate::db_params![since, until, start_block, BLOCKS_PER_QUERY],
            |row| {
                let bloom = match row.value(2)? {
                    Value::Blob(bloom) => bloom,
                    _ => &[],
                };
                Ok((
                    get(row, 0)?,
                    get(row, 1)?,
                    terms.iter().all(|term| codec::may_hold(bloom, *term)),
                ))
            },
        )?;
        let Some(&(oldest, _, _)) = blocks.last() else {
            break;
        };
        let complete = blocks.len() < BLOCKS_PER_QUERY as usize;
        for (block, raw_bytes, candidate) in blocks {
            page.blocks_checked += 1;
            if !candidate {
                continue;
            }
            if page.blocks_opened >= u64::from(max_blocks) {
                // Out of budget: the next page starts at this block's end.
                page.next = Some(Cursor { block, entry: u32::MAX }.to_string());
                return Ok(page);
            }
            page.blocks_opened += 1;
            if open_block(db, filter, block, raw_bytes, limit, &mut page)? {
                return Ok(page);
            }
        }
        if complete || oldest <= i64::MIN + 1 {
            break;
        }
        start_block = oldest - 1;
    }
    Ok(page)
}

/// Add the matching events of `block` to `page`, newest first; true when
/// the page is full (its `next` then says where the next one starts).
fn open_block(
    db: &mut dyn Db,
    filter: &EventFilter,
    block: i64,
    raw_bytes: i64,
    limit: usize,
    page: &mut EventPage,
) -> Result<bool, SearchError> {
    let Some(compressed) = db.query_opt(
        "SELECT data FROM event_block_data WHERE id = ?1",
        crate::db_params![block],
        |row| get::<Vec<u8>>(row, 0),
    )?
    else {
        return Ok(false);
    };
    let damaged = |detail: String| SearchError::Damaged { block, detail };
    let bytes = zstd::bulk::decompress(&compressed, usize::try_from(raw_bytes).unwrap_or(0))
        .map_err(|error| damaged(error.to_string()))?;
    let entries = codec::decode(&bytes).map_err(|error| damaged(error.to_string()))?;
    if entries.is_empty() {
        return Ok(false);
    }
    let first = match filter.cursor {
        Some(cursor) if cursor.block == block => (cursor.entry as usize).min(entries.len() - 1),
        _ => entries.len() - 1,
    };
    for index in (0..=first).rev() {
        let entry = &entries[index];
        if !filter.matches(entry) {
            continue;
        }
        if page.events.len() == limit {
            page.next = Some(
                Cursor {
                    block,
                    entry: index as u32,
                }
                .to_string(),
            );
            return Ok(true);
        }
        page.events.push(stored(entry, block, index));
    }
    Ok(false)
}

fn stored(entry: &Entry<'_>, block: i64, index: usize) -> StoredEvent {
    let optional = |name: &str| {
        Some(entry.text(name))
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    StoredEvent {
        time: crate::alarm::store::timestamp(DateTime::from_timestamp_millis(entry.time_ms).unwrap_or_default()),
        time_ms: entry.time_ms,
        provider: entry.provider.as_str(),
        event_id: entry.text("event_id").to_string(),
        request_id: optional("request_id"),
        account_id: optional("account_id"),
        account_name: optional("account_name"),
        principal_kind: entry.principal_kind.as_str(),
        principal_name: optional("principal_name"),
        principal_id: optional("principal_id"),
        principal_arn: optional("principal_arn"),
        access_key_id: optional("access_key_id"),
        source_ip: optional("source_ip"),
        user_agent: optional("user_agent"),
        service: entry.text("service").to_string(),
        action: entry.text("action").to_string(),
        region: optional("region"),
        call_method: entry.call_method.as_str(),
        outcome: entry.outcome.as_str(),
        error_code: optional("error_code"),
        resource_type: optional("resource_type"),
        resource_names: entry.resource_names.iter().map(|name| name.to_string()).collect(),
        raw: serde_json::from_str(entry.raw).unwrap_or_else(|_| serde_json::Value::String(entry.raw.to_string())),
        position: format!("{block}.{index}"),
    }
}
