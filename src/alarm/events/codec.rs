//! The event store's record layout and its term filter.
//!
//! A block is the events of one batch transaction, each encoded as:
//!
//! ```text
//! u32 length of the rest (LE)
//! i64 event time, Unix ms (LE)
//! u8 provider slot, u8 outcome, u8 call method, u8 principal kind
//! TEXTS.len() texts, each: varint length, UTF-8 bytes
//! varint count of resource names, then each name as a text
//! the record's JSON text (to the end of the entry)
//! ```
//!
//! and the block's bytes are compressed (zstd) by the store stage. A block
//! row also holds a Bloom filter of its events' searchable terms (key,
//! principal name / id / ARN, source IP, account, action, service, resource
//! names, request and event ids), folded to ASCII lower case, so a search
//! opens only blocks that may hold what it asks for.

use crate::event::model::{AuditEvent, CallMethod, OutcomeResult, PrincipalKind, Provider};

/// The searchable terms' fields (a term is hashed with its field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Key = 1,
    Principal = 2,
    Ip = 3,
    Account = 4,
    Action = 5,
    Service = 6,
    Resource = 7,
    Id = 8,
}

/// The texts of an entry, in order.
pub const TEXTS: [&str; 15] = [
    "event_id",
    "request_id",
    "account_id",
    "account_name",
    "principal_name",
    "principal_id",
    "principal_arn",
    "access_key_id",
    "source_ip",
    "user_agent",
    "service",
    "action",
    "region",
    "error_code",
    "resource_type",
];

/// One decoded entry, borrowing the block's bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<'a> {
    pub time_ms: i64,
    pub provider: Provider,
    pub outcome: OutcomeResult,
    pub call_method: CallMethod,
    pub principal_kind: PrincipalKind,
    /// In the order of `TEXTS`; empty when the event had none.
    pub texts: [&'a str; TEXTS.len()],
    pub resource_names: Vec<&'a str>,
    pub raw: &'a str,
}

impl<'a> Entry<'a> {
    pub fn text(&self, name: &str) -> &'a str {
        TEXTS
            .iter()
            .position(|candidate| *candidate == name)
            .map_or("", |index| self.texts[index])
    }
}

fn push_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn push_text(out: &mut Vec<u8>, text: &str) {
    push_varint(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// Append `event` to a block's bytes, and its terms' hashes to `terms`.
pub fn encode(event: &AuditEvent, out: &mut Vec<u8>, terms: &mut Vec<u64>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&event.time.timestamp_millis().to_le_bytes());
    out.push(event.provider.slot() as u8);
    out.push(match event.outcome.result {
        OutcomeResult::Success => 0,
        OutcomeResult::Failure => 1,
    });
    out.push(
        CallMethod::ALL
            .iter()
            .position(|method| *method == event.call_method)
            .unwrap_or(0) as u8,
    );
    out.push(
        PrincipalKind::ALL
            .iter()
            .position(|kind| *kind == event.principal.kind)
            .unwrap_or(0) as u8,
    );
    fn text(value: &Option<String>) -> &str {
        value.as_deref().unwrap_or("")
    }
    let texts: [&str; TEXTS.len()] = [
        &event.event_id,
        text(&event.request_id),
        text(&event.account_id),
        text(&event.account_name),
        text(&event.principal.name),
        text(&event.principal.id),
        text(&event.principal.arn),
        event.access_key_id().unwrap_or(""),
        event.source_ip_text().unwrap_or(""),
        text(&event.user_agent),
        &event.service,
        &event.action,
        text(&event.region),
        text(&event.outcome.error_code),
        text(&event.resource.resource_type),
    ];
    for value in texts {
        push_text(out, value);
    }
    push_varint(out, event.resource.names.len());
    for name in &event.resource.names {
        push_text(out, name);
    }
    match event.raw.text() {
        Some(raw) => out.extend_from_slice(raw.as_bytes()),
        None => out.extend_from_slice(event.raw.to_json_string().as_bytes()),
    }
    let length = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    let mut term = |field: Field, value: &str| {
        if !value.is_empty() {
            terms.push(term_hash(field, value));
        }
    };
    term(Field::Id, &event.event_id);
    term(Field::Id, text(&event.request_id));
    term(Field::Account, text(&event.account_id));
    term(Field::Principal, text(&event.principal.name));
    term(Field::Principal, text(&event.principal.id));
    term(Field::Principal, text(&event.principal.arn));
    term(Field::Key, event.access_key_id().unwrap_or(""));
    term(Field::Ip, event.source_ip_text().unwrap_or(""));
    term(Field::Service, &event.service);
    term(Field::Action, &event.action);
    for name in &event.resource.names {
        term(Field::Resource, name);
    }
}

/// A term's hash: FNV-1a over the field and the value folded to ASCII lower case.
pub fn term_hash(field: Field, value: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ (field as u64);
    hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    for byte in value.bytes() {
        hash ^= u64::from(byte.to_ascii_lowercase());
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // A final mix: FNV's low bits alone are weak for the filter's positions.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

/// Probes per term.
const PROBES: u64 = 5;

/// A Bloom filter over `terms` (about 10 bits per term, a power of two).
pub fn bloom(terms: &[u64]) -> Vec<u8> {
    let bits = (terms.len() * 10).max(512).next_power_of_two();
    let mut filter = vec![0u8; bits / 8];
    let mask = bits as u64 - 1;
    for hash in terms {
        for position in positions(*hash, mask) {
            filter[(position / 8) as usize] |= 1 << (position % 8);
        }
    }
    filter
}

fn positions(hash: u64, mask: u64) -> impl Iterator<Item = u64> {
    let first = hash & 0xffff_ffff;
    let step = (hash >> 32) | 1;
    (0..PROBES).map(move |probe| first.wrapping_add(probe.wrapping_mul(step)) & mask)
}

/// Whether the filter may hold the term (a filter of the wrong shape may hold anything).
pub fn may_hold(filter: &[u8], hash: u64) -> bool {
    let bits = filter.len() * 8;
    if bits == 0 || !bits.is_power_of_two() {
        return true;
    }
    let mask = bits as u64 - 1;
    positions(hash, mask).all(|position| filter[(position / 8) as usize] & (1 << (position % 8)) != 0)
}

/// Why a block's bytes could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("event block damaged at byte {at}: {what}")]
pub struct Damaged {
    pub at: usize,
    pub what: &'static str,
}

/// Read a block's entries, in the order they were written.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry<'_>>, Damaged> {
    let mut entries = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (entry, next) = decode_one(bytes, at)?;
        entries.push(entry);
        at = next;
    }
    Ok(entries)
}

fn decode_one(bytes: &[u8], start: usize) -> Result<(Entry<'_>, usize), Damaged> {
    let damaged = |at: usize, what: &'static str| Damaged { at, what };
    let length = bytes.get(start..start + 4).ok_or(damaged(start, "truncated length"))?;
    let length = u32::from_le_bytes(length.try_into().unwrap_or_default()) as usize;
    let end = start
        .checked_add(4 + length)
        .filter(|end| *end <= bytes.len())
        .ok_or(damaged(start, "entry runs past the block"))?;
    let mut reader = Reader {
        bytes: &bytes[..end],
        at: start + 4,
    };
    let time = reader.take(8)?;
    let time_ms = i64::from_le_bytes(time.try_into().unwrap_or_default());
    let flags = reader.take(4)?;
    let provider = *Provider::ALL
        .get(flags[0] as usize)
        .ok_or(damaged(reader.at, "unknown provider"))?;
    let outcome = if flags[1] == 1 {
        OutcomeResult::Failure
    } else {
        OutcomeResult::Success
    };
    let call_method = CallMethod::ALL.get(flags[2] as usize).copied().unwrap_or_default();
    let principal_kind = PrincipalKind::ALL.get(flags[3] as usize).copied().unwrap_or_default();
    let mut texts = [""; TEXTS.len()];
    for slot in texts.iter_mut() {
        *slot = reader.text()?;
    }
    let names = reader.varint()?;
    let mut resource_names = Vec::with_capacity(names.min(64));
    for _ in 0..names {
        resource_names.push(reader.text()?);
    }
    let raw = std::str::from_utf8(&bytes[reader.at..end]).map_err(|_| damaged(reader.at, "record is not UTF-8"))?;
    Ok((
        Entry {
            time_ms,
            provider,
            outcome,
            call_method,
            principal_kind,
            texts,
            resource_names,
            raw,
        },
        end,
    ))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], Damaged> {
        let slice = self
            .at
            .checked_add(count)
            .and_then(|end| self.bytes.get(self.at..end))
            .ok_or(Damaged {
                at: self.at,
                what: "entry ends early",
            })?;
        self.at += count;
        Ok(slice)
    }

    fn varint(&mut self) -> Result<usize, Damaged> {
        let mut value = 0usize;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= usize::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Damaged {
            at: self.at,
            what: "length too long",
        })
    }

    fn text(&mut self) -> Result<&'a str, Damaged> {
        let length = self.varint()?;
        let at = self.at;
        std::str::from_utf8(self.take(length)?).map_err(|_| Damaged {
            at,
            what: "text is not UTF-8",
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::decode::Decoded;
    use crate::event::normalize::NormalizeContext;
    use crate::event::origin::{Origin, Position};
    use crate::event::window::TimeWindow;
    use crate::source::{Chunk, normalize_chunk};

    /// Events of JSON records, normalized the way the pipeline does.
    pub(crate) fn events_of(records: impl Iterator<Item = String>) -> Vec<AuditEvent> {
        let context = NormalizeContext::new(chrono::Utc::now());
        let bounds = TimeWindow::default().bounds(chrono::Utc::now());
        let mut decoded = Decoded::default();
        let mut events = Vec::new();
        for (index, record) in records.enumerate() {
            let chunk = Chunk {
                bytes: record.into_bytes(),
                origin: Origin::new(std::sync::Arc::from("test"), Position::Line(index as u64 + 1)),
                oversized: false,
                nodes: None,
                ingest_time: None,
            };
            normalize_chunk(
                &chunk,
                &context,
                &bounds,
                &mut decoded,
                &mut |event| {
                    events.push(event);
                    true
                },
                &mut |letter| panic!("{letter:?}"),
            );
        }
        events
    }

    #[test]
    fn entries_read_back_as_written() {
        let events = events_of(
            crate::synth::generate(crate::synth::SynthOptions {
                events: 300,
                ..crate::synth::SynthOptions::default()
            })
            .map(|record| record.record.to_string()),
        );
        assert_eq!(events.len(), 300);
        let mut bytes = Vec::new();
        let mut terms = Vec::new();
        for event in &events {
            encode(event, &mut bytes, &mut terms);
        }
        let entries = decode(&bytes).unwrap();
        assert_eq!(entries.len(), events.len());
        for (entry, event) in entries.iter().zip(&events) {
            assert_eq!(entry.time_ms, event.time.timestamp_millis());
            assert_eq!(entry.provider, event.provider);
            assert_eq!(entry.outcome, event.outcome.result);
            assert_eq!(entry.call_method, event.call_method);
            assert_eq!(entry.principal_kind, event.principal.kind);
            assert_eq!(entry.text("event_id"), event.event_id);
            assert_eq!(entry.text("action"), event.action);
            assert_eq!(entry.text("access_key_id"), event.access_key_id().unwrap_or(""));
            assert_eq!(entry.text("source_ip"), event.source_ip_text().unwrap_or(""));
            assert_eq!(entry.resource_names, event.resource.names);
            assert_eq!(Some(entry.raw), event.raw.text());
        }
        let filter = bloom(&terms);
        for event in &events {
            assert!(may_hold(
                &filter,
                term_hash(Field::Action, &event.action.to_uppercase())
            ));
            if let Some(key) = event.access_key_id() {
                assert!(may_hold(&filter, term_hash(Field::Key, key)));
            }
        }
        let absent = (0..1000)
            .filter(|index| may_hold(&filter, term_hash(Field::Key, &format!("AKIANOTTHERE{index:08}"))))
            .count();
        assert!(absent < 50, "{absent} of 1000 absent keys looked present");
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let events = events_of(std::iter::once(
            r#"{"eventVersion":"1.08","eventTime":"2026-01-01T00:00:00Z","eventSource":"iam.amazonaws.com","eventName":"ListUsers","awsRegion":"us-east-1","sourceIPAddress":"1.2.3.4","recipientAccountId":"123456789012","userIdentity":{"type":"IAMUser","userName":"alice","accessKeyId":"AKIAIOSFODNN7EXAMPLE"},"eventID":"e-1"}"#
                .to_string(),
        ));
        let mut bytes = Vec::new();
        encode(&events[0], &mut bytes, &mut Vec::new());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err() || cut == 0);
        }
        let mut flipped = bytes.clone();
        flipped[0] = 0xff;
        assert!(decode(&flipped).is_err());
    }
}
