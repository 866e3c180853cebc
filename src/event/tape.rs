//! The common path from a record's bytes to an event, without a tree.
//!
//! Most chunks are one record: a JSON line, or one record of a container the
//! framer split. Such a record is parsed with simd-json into a tape (a flat
//! list of nodes whose strings borrow the parse buffer, reused from record
//! to record), its JSON-inside-string fields are parsed into the same tape in
//! place of their strings, and the normalizer reads it through the same view
//! it reads trees with (`json.rs`). The event keeps the record's text as its
//! `raw`, parsed only if something asks for it.
//!
//! Anything else takes the tree path (`decode.rs`), which has every rule for
//! odd input: several values in a chunk, containers and envelopes, syntax
//! errors (with their line and column), a record without an id (its
//! synthetic id hashes the tree), a LookUpEvents summary item.

use chrono::{DateTime, Utc};
use simd_json::{Buffers, Node, Tape};

use super::decode::{detect_provider, is_container, single_value};
use super::json::{Json, JsonObject, index_object, span};
use super::model::{AuditEvent, Raw};
use super::normalize::{NormalizeContext, NormalizeError, expander, json_string_fields, normalize_view};
use super::origin::Origin;
use super::raw_paths::{Pruned, RawPaths, raw_paths};

/// Buffers reused from record to record (one per normalizing thread).
#[derive(Default)]
pub struct TapeScratch {
    /// The record's bytes: simd-json unescapes strings in place.
    input: Vec<u8>,
    /// The bytes of each JSON-inside-string field, parsed in turn.
    nested_inputs: Vec<Vec<u8>>,
    buffers: Buffers,
    tape: Vec<Node<'static>>,
    nested: Vec<Node<'static>>,
    merged: Vec<Node<'static>>,
    /// The index of the record's top level (`JsonObject::Indexed`).
    index: Vec<(u64, u32)>,
}

impl std::fmt::Debug for TapeScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapeScratch").finish_non_exhaustive()
    }
}

/// What the tape path made of a chunk: one record, normalized (or refused
/// by its normalizer), with its origin; `None` when the chunk is not one for
/// this path and the tree path must read it.
pub type TapeOutcome = Option<(Origin, Result<AuditEvent, NormalizeError>)>;

/// The buffers one record's expansion works in, borrowed for its strings' lifetime.
struct Work<'s, 'a> {
    nested: &'s mut Tape<'a>,
    merged: &'s mut Vec<Node<'a>>,
    slots: std::slice::IterMut<'a, Vec<u8>>,
    buffers: &'s mut Buffers,
    index: &'s mut Vec<(u64, u32)>,
}

/// Most JSON-inside-string fields a record expands (top level and nested).
const MAX_NESTED: usize = 8;

/// Read a chunk holding one record.
pub fn read_record(
    bytes: &[u8],
    origin: &Origin,
    context: &NormalizeContext,
    envelope_time: Option<DateTime<Utc>>,
    scratch: &mut TapeScratch,
) -> TapeOutcome {
    read_record_from(bytes, false, origin, context, envelope_time, scratch)
}

/// Like `read_record`, for a chunk whose bytes the caller gives up: when
/// they are exactly the record, the event keeps them as its `raw` text
/// instead of a copy, and `owned` is left empty.
pub fn read_owned_record(
    owned: &mut Vec<u8>,
    origin: &Origin,
    context: &NormalizeContext,
    envelope_time: Option<DateTime<Utc>>,
    scratch: &mut TapeScratch,
) -> TapeOutcome {
    let mut outcome = read_record_from(owned, true, origin, context, envelope_time, scratch);
    if let Some((_, Ok(event))) = &mut outcome
        && event.raw.awaits_text()
    {
        // SAFETY: `read_record_from` leaves the text to be set only when
        // the record is all of `owned` and it checked that it is UTF-8.
        let text = unsafe { String::from_utf8_unchecked(std::mem::take(owned)) };
        event.raw.set_text(text.into_boxed_str());
    }
    outcome
}

/// `read_record`; with `leave_whole`, a record that is all of `bytes` gets
/// no text (the caller moves `bytes` in: `Raw::awaits_text`).
fn read_record_from(
    bytes: &[u8],
    leave_whole: bool,
    origin: &Origin,
    context: &NormalizeContext,
    envelope_time: Option<DateTime<Utc>>,
    scratch: &mut TapeScratch,
) -> TapeOutcome {
    let (start, end, value_origin) = single_value(bytes, origin);
    let record = &bytes[start..end];
    if record.first() != Some(&b'{') {
        return None;
    }
    let text = simdutf8::basic::from_utf8(record).ok()?;
    let mut input = std::mem::take(&mut scratch.input);
    let mut nested_inputs = std::mem::take(&mut scratch.nested_inputs);
    nested_inputs.resize_with(MAX_NESTED, Vec::new);
    input.clear();
    input.extend_from_slice(record);
    let mut tape = Tape(std::mem::take(&mut scratch.tape));
    let mut nested = Tape(std::mem::take(&mut scratch.nested));
    let mut merged: Vec<Node<'_>> = std::mem::take(&mut scratch.merged);
    merged.clear();
    let paths = raw_paths();
    let outcome = match simd_json::fill_tape(&mut input, &mut scratch.buffers, &mut tape) {
        Ok(()) => read_tape(
            paths,
            &tape.0,
            Work {
                nested: &mut nested,
                merged: &mut merged,
                slots: nested_inputs.iter_mut(),
                buffers: &mut scratch.buffers,
                index: &mut scratch.index,
            },
            context,
            envelope_time,
        ),
        Err(_) => None,
    };
    // Hand the buffers back, emptied of borrowed strings.
    scratch.tape = tape.reset().0;
    scratch.nested = nested.reset().0;
    scratch.merged = Tape(merged).reset().0;
    scratch.input = input;
    scratch.nested_inputs = nested_inputs;
    let read = outcome?;
    match read.result {
        Ok(mut event) => {
            // A record without JSON inside strings is its own expanded form.
            let expand = read.expands.then(|| expander(read.provider));
            event.raw = match leave_whole && start == 0 && end == bytes.len() {
                true => Raw::awaiting_text(expand),
                false => Raw::from_text(text.into(), expand),
            };
            if let Some(pruned) = read.pruned {
                event.raw.set_pruned(pruned);
            }
            event.origin = value_origin.clone();
            Some((value_origin, Ok(event)))
        }
        Err(error) => Some((value_origin, Err(error))),
    }
}

/// A record read from its tape.
struct TapeRead {
    provider: super::model::Provider,
    result: Result<AuditEvent, NormalizeError>,
    pruned: Option<Pruned>,
    /// Whether some field held JSON text the view expanded.
    expands: bool,
}

/// Recognise, expand and normalize a parsed record; `None` sends it to the tree path.
fn read_tape<'a>(
    raw_paths: &'static RawPaths,
    tape: &[Node<'a>],
    work: Work<'_, 'a>,
    context: &NormalizeContext,
    envelope_time: Option<DateTime<Utc>>,
) -> Option<TapeRead> {
    let Work {
        nested,
        merged,
        mut slots,
        buffers,
        index,
    } = work;
    Json::Tape(tape).as_object()?;
    index_object(tape, index);
    let root = JsonObject::Indexed { nodes: tape, index };
    if is_container(root) {
        return None;
    }
    let provider = detect_provider(root)?;
    let (fields, inner) = json_string_fields(provider);
    // Most records hold no JSON inside strings: they are read from the tape
    // as parsed, without copying and indexing it again.
    let expands = member_positions(tape, 0)
        .any(|(key, position)| fields.contains(&key) && holds_json_text(tape, position))
        || inner.is_some_and(|(outer, key)| {
            last_member(tape, 0, outer)
                .filter(|outer_at| matches!(tape.get(*outer_at), Some(Node::Object { .. })))
                .and_then(|outer_at| last_member(tape, outer_at, key))
                .is_some_and(|position| holds_json_text(tape, position))
        });
    if !expands {
        let result = normalize_view(provider, root, context, envelope_time)?;
        let pruned = copies(raw_paths, &result).then(|| Pruned::new(raw_paths, root));
        return Some(TapeRead {
            provider,
            result,
            pruned,
            expands: false,
        });
    }
    merged.extend_from_slice(tape);
    // Top-level fields, last position first so earlier positions hold.
    let mut positions = [0usize; MAX_NESTED];
    let mut found = 0;
    for (key, position) in member_positions(merged, 0) {
        if fields.contains(&key) {
            // A key given twice: the last one is the one read.
            if let Some(earlier) = positions[..found]
                .iter_mut()
                .find(|earlier| member_key(merged, **earlier) == Some(key))
            {
                *earlier = position;
            } else {
                *positions.get_mut(found)? = position;
                found += 1;
            }
        }
    }
    positions[..found].sort_unstable();
    for position in positions[..found].iter().rev() {
        expand_at(merged, *position, nested, slots.next()?, buffers)?;
    }
    if let Some((outer, key)) = inner
        && let Some(outer_at) = last_member(merged, 0, outer)
        && matches!(merged.get(outer_at), Some(Node::Object { .. }))
        && let Some(position) = last_member(merged, outer_at, key)
    {
        expand_at(merged, position, nested, slots.next()?, buffers)?;
    }
    index_object(merged, index);
    let record = JsonObject::Indexed { nodes: merged, index };
    let result = normalize_view(provider, record, context, envelope_time)?;
    let pruned = copies(raw_paths, &result).then(|| Pruned::new(raw_paths, record));
    Some(TapeRead {
        provider,
        result,
        pruned,
        expands: true,
    })
}

/// The members of the object at `at`: each key and where its value starts.
fn member_positions<'t, 'a>(nodes: &'t [Node<'a>], at: usize) -> impl Iterator<Item = (&'a str, usize)> + 't {
    let len = match nodes.get(at) {
        Some(Node::Object { len, .. }) => *len,
        _ => 0,
    };
    let mut index = at + 1;
    (0..len).map_while(move |_| {
        let Some(Node::String(key)) = nodes.get(index) else {
            return None;
        };
        let value = index + 1;
        index = value + span(nodes.get(value)?);
        Some((*key, value))
    })
}

/// The key of the member whose value starts at `value`.
fn member_key<'a>(nodes: &[Node<'a>], value: usize) -> Option<&'a str> {
    match nodes.get(value.checked_sub(1)?) {
        Some(Node::String(key)) => Some(key),
        _ => None,
    }
}

/// Where the value of the last member `key` of the object at `at` starts.
fn last_member(nodes: &[Node<'_>], at: usize, key: &str) -> Option<usize> {
    member_positions(nodes, at)
        .filter(|(candidate, _)| *candidate == key)
        .last()
        .map(|(_, position)| position)
}

/// Whether the event read gets a copy of what the rules' `raw.` paths reach.
fn copies(raw_paths: &RawPaths, result: &Result<AuditEvent, NormalizeError>) -> bool {
    result
        .as_ref()
        .is_ok_and(|event| raw_paths.copies_for(event.provider, &event.action))
}

/// Whether the node at `position` is a string that `expand_at` would parse.
fn holds_json_text(nodes: &[Node<'_>], position: usize) -> bool {
    matches!(nodes.get(position), Some(Node::String(text)) if text.trim_start().starts_with(['{', '[']))
}

/// If the value at `position` is a string holding a JSON object or array,
/// put the parsed document in its place (as the tree path's
/// `expand_json_string` does). `None` when there is no buffer left for it.
fn expand_at<'a>(
    merged: &mut Vec<Node<'a>>,
    position: usize,
    nested: &mut Tape<'a>,
    slot: &'a mut Vec<u8>,
    buffers: &mut Buffers,
) -> Option<()> {
    let text: &'a str = match merged.get(position) {
        Some(Node::String(text)) if holds_json_text(merged, position) => text,
        _ => return Some(()),
    };
    let trimmed = text.trim_start();
    slot.clear();
    slot.extend_from_slice(trimmed.as_bytes());
    nested.0.clear();
    if simd_json::fill_tape(slot, buffers, nested).is_err() {
        return Some(());
    }
    let added = nested.0.len().checked_sub(1)?;
    // Every container holding the position grows by the nodes added.
    for (index, node) in merged[..position].iter_mut().enumerate() {
        let end = index + span(node);
        if end > position
            && let Node::Object { count, .. } | Node::Array { count, .. } = node
        {
            *count += added;
        }
    }
    merged.splice(position..=position, nested.0.iter().copied());
    Some(())
}
