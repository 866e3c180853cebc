//! Decode: bytes → JSON documents → records, with containers unwrapped.
//!
//! A *chunk* is what a source hands over: one line of a JSON-lines file, or a
//! whole multi-line document (a pretty-printed object, a JSON array, several
//! concatenated objects). The decoder reads every JSON value in the chunk;
//! after a syntax error it resynchronises at the next line that starts a
//! document (`{` or `[` in column 0), so a broken pretty-printed document is
//! one dead letter naming the first error's line and column, not one per
//! line of its indented body. It unwraps the
//! containers the clouds use: CloudTrail `{"Records": [...]}`, CTS ListTraces
//! `{"traces": [...]}`, Tencent LookUpEvents `{"Response": {"Events": [...]}}`
//! with the raw event double-encoded in `CloudAuditEvent`, AWS LookupEvents
//! (`CloudTrailEvent`), FunctionGraph `{"cts": {...}}`, EventBridge
//! (`detail`) and CloudEvents (`data`) envelopes, and plain arrays. A
//! LookUpEvents item whose `CloudAuditEvent` is empty or not valid JSON is
//! passed on whole, for the normalizer to read from its summary fields.
//!
//! Nothing here panics on input; every record that cannot be read becomes a
//! `DeadLetter` with its origin and the reason.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value};

use super::json::{Json, JsonObject};
use super::lenient::{Obj, time_of};
use super::model::Provider;
use super::origin::{Origin, Position};

/// How deep containers may nest before we give up on a document.
const MAX_CONTAINER_DEPTH: usize = 6;
/// How much of a bad record is kept in the dead-letter table.
pub const EXCERPT_BYTES: usize = 512;

/// A record found in a chunk, with its cloud already recognised.
#[derive(Debug)]
pub struct Candidate {
    pub provider: Provider,
    pub record: Map<String, Value>,
    pub origin: Origin,
    /// Time of the envelope the record came in, used when the record has none.
    pub envelope_time: Option<DateTime<Utc>>,
}

/// A record that could not be read, kept with where it came from and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    pub origin: Origin,
    pub reason: String,
    /// The start of the offending bytes, lossily decoded (binary shown as U+FFFD).
    pub excerpt: String,
}

impl DeadLetter {
    pub fn new(origin: Origin, reason: impl Into<String>, bytes: &[u8]) -> DeadLetter {
        DeadLetter {
            origin,
            reason: reason.into(),
            excerpt: excerpt(bytes),
        }
    }
}

/// The first `EXCERPT_BYTES` of `bytes`, as text.
pub fn excerpt(bytes: &[u8]) -> String {
    let end = bytes.len().min(EXCERPT_BYTES);
    let mut text = String::from_utf8_lossy(&bytes[..end]).into_owned();
    if bytes.len() > end {
        text.push('…');
    }
    text
}

/// Output of decoding one chunk.
#[derive(Debug, Default)]
pub struct Decoded {
    pub candidates: Vec<Candidate>,
    pub dead_letters: Vec<DeadLetter>,
    /// The tape path's buffers, reused from chunk to chunk (`tape.rs`).
    pub tape: super::tape::TapeScratch,
    /// Read every chunk with the tree path (tests compare the two paths).
    pub tree_only: bool,
}

/// Decode every JSON value in `bytes`. `origin` is the chunk's origin: for a
/// JSON-lines chunk its line; for a document its first line, which is advanced
/// to the line where each value starts.
pub fn decode_chunk(bytes: &[u8], origin: &Origin, out: &mut Decoded) {
    let mut offset = skip_blank(bytes, 0);
    // Line-based position tracking for documents that hold several values.
    let mut line = match origin.position {
        Position::Line(line) => line,
        _ => 1,
    };
    let mut line_counted_to = 0usize;
    while offset < bytes.len() {
        line += count_newlines(&bytes[line_counted_to..offset]);
        line_counted_to = offset;
        let value_origin = origin_at(origin, line, offset);
        let rest = &bytes[offset..];
        let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value)) => {
                let consumed = stream.byte_offset();
                expand(value, &value_origin, None, 0, out);
                offset = skip_blank(bytes, offset + consumed.max(1));
            }
            Some(Err(error)) => {
                let error_at = byte_offset_of(rest, error.line(), error.column());
                let resume = next_document_start(rest, error_at);
                let kind = if error.is_eof() {
                    "truncated JSON"
                } else {
                    "invalid JSON"
                };
                let reason = format!("{kind}{}: {}", located(&error, &value_origin), message_of(&error));
                out.dead_letters.push(DeadLetter::new(
                    value_origin,
                    reason,
                    &rest[..resume.max(1).min(rest.len())],
                ));
                offset = skip_blank(bytes, offset + resume.max(1));
            }
            None => break,
        }
    }
}

/// The origin of a value that starts `offset` bytes into a chunk, on `line`
/// (a chunk's own line plus the newlines before the value).
fn origin_at(origin: &Origin, line: u64, offset: usize) -> Origin {
    let mut value_origin = match origin.position {
        Position::Byte(base) => Origin::new(origin.source.clone(), Position::Byte(base + offset as u64)),
        Position::Message { .. } => origin.clone(),
        _ => Origin::new(origin.source.clone(), Position::Line(line)),
    };
    // A record of a container the reader split keeps its index.
    value_origin.index = origin.index;
    value_origin
}

/// Where a chunk's single value starts and its origin: the chunk without
/// leading blanks (and byte order mark) and trailing blanks.
pub(crate) fn single_value(bytes: &[u8], origin: &Origin) -> (usize, usize, Origin) {
    let start = skip_blank(bytes, 0);
    let end = bytes.len()
        - bytes[start..]
            .iter()
            .rev()
            .take_while(|byte| byte.is_ascii_whitespace())
            .count();
    let first_line = match origin.position {
        Position::Line(line) => line,
        _ => 1,
    };
    let line = first_line + count_newlines(&bytes[..start]);
    (start, end, origin_at(origin, line, start))
}

fn skip_blank(bytes: &[u8], mut offset: usize) -> usize {
    loop {
        match bytes.get(offset..) {
            Some([b' ' | b'\t' | b'\r' | b'\n', ..]) => offset += 1,
            Some([0xEF, 0xBB, 0xBF, ..]) => offset += 3, // UTF-8 byte order mark
            _ => return offset.min(bytes.len()),
        }
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|byte| **byte == b'\n').count() as u64
}

/// Byte offset of a 1-based line / column reported by serde_json.
fn byte_offset_of(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut current_line = 1;
    let mut line_start = 0;
    if line > 1 {
        for (index, byte) in bytes.iter().enumerate() {
            if *byte == b'\n' {
                current_line += 1;
                if current_line == line {
                    line_start = index + 1;
                    break;
                }
            }
        }
    }
    // Column 0 means "at the newline that ended the previous line".
    if column == 0 {
        return line_start.saturating_sub(1).min(bytes.len());
    }
    (line_start + column - 1).min(bytes.len())
}

/// Where reading resumes after a syntax error at `error_at`: the first line,
/// from the error's own line on, that starts a new document with `{` or `[`
/// in column 0 — a truncated JSON line followed by the next record — or the
/// end of the chunk. The indented lines of a broken pretty-printed document
/// are its body, not documents of their own. The chunk's first line is the
/// broken document itself, never a resumption point.
fn next_document_start(bytes: &[u8], error_at: usize) -> usize {
    let error_at = error_at.min(bytes.len());
    let mut line_start = bytes[..error_at]
        .iter()
        .rposition(|byte| *byte == b'\n')
        .map_or(0, |newline| newline + 1);
    loop {
        if line_start > 0 && matches!(bytes.get(line_start), Some(b'{' | b'[')) {
            return line_start;
        }
        match bytes
            .get(line_start..)
            .and_then(|rest| rest.iter().position(|byte| *byte == b'\n'))
        {
            Some(newline) => line_start += newline + 1,
            None => return bytes.len(),
        }
    }
}

/// " at line L column C" of the first error. Line-numbered origins (files)
/// get the line in the file; other origins the line inside the value.
fn located(error: &serde_json::Error, origin: &Origin) -> String {
    match origin.position {
        Position::Line(first) => {
            let line = first + (error.line() as u64).saturating_sub(1);
            format!(" at line {line} column {}", error.column())
        }
        _ => format!(" at line {} column {} of the value", error.line(), error.column()),
    }
}

/// serde_json's message without its own " at line L column C" suffix.
fn message_of(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_string(),
        None => text,
    }
}

/// Unwrap containers and envelopes until records remain.
fn expand(value: Value, origin: &Origin, envelope_time: Option<DateTime<Utc>>, depth: usize, out: &mut Decoded) {
    if depth > MAX_CONTAINER_DEPTH {
        out.dead_letters.push(DeadLetter::new(
            origin.clone(),
            format!("containers nested deeper than {MAX_CONTAINER_DEPTH} levels"),
            value.to_string().as_bytes(),
        ));
        return;
    }
    match value {
        Value::Array(items) if !items.is_empty() && items.iter().all(is_plain_scalar) => {
            // `[1, 2, 3]`: one unreadable document, not N unreadable records.
            let text = Value::Array(items).to_string();
            out.dead_letters.push(DeadLetter::new(
                origin.clone(),
                "a JSON array of scalars, not audit records",
                text.as_bytes(),
            ));
        }
        Value::Array(items) => {
            for (index, item) in items.into_iter().enumerate() {
                expand(item, &origin.with_index(index), envelope_time, depth + 1, out);
            }
        }
        Value::Object(map) => expand_object(map, origin, envelope_time, depth, out),
        Value::String(text) => {
            // A record double-encoded as a JSON string (some shippers do this).
            let trimmed = text.trim_start();
            match serde_json::from_str::<Value>(trimmed) {
                Ok(inner @ (Value::Object(_) | Value::Array(_))) if trimmed.starts_with(['{', '[']) => {
                    expand(inner, origin, envelope_time, depth + 1, out)
                }
                _ => out.dead_letters.push(DeadLetter::new(
                    origin.clone(),
                    "a JSON string, not an audit record",
                    text.as_bytes(),
                )),
            }
        }
        other => out.dead_letters.push(DeadLetter::new(
            origin.clone(),
            format!("a JSON {}, not an audit record", json_type_name(&other)),
            other.to_string().as_bytes(),
        )),
    }
}

/// Numbers, booleans, null and strings that do not hold JSON.
fn is_plain_scalar(value: &Value) -> bool {
    match value {
        Value::Object(_) | Value::Array(_) => false,
        Value::String(text) => !text.trim_start().starts_with(['{', '[']),
        _ => true,
    }
}

pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).expect("zero offset is valid")
}

fn expand_object(
    mut map: Map<String, Value>,
    origin: &Origin,
    envelope_time: Option<DateTime<Utc>>,
    depth: usize,
    out: &mut Decoded,
) {
    // CloudTrail S3 delivery file: {"Records": [...]}.
    if matches!(map.get("Records"), Some(Value::Array(_))) {
        if let Some(records) = map.remove("Records") {
            expand(records, origin, envelope_time, depth + 1, out);
        }
        return;
    }
    // CTS ListTraces response: {"traces": [...], "meta_data": {...}}.
    if matches!(map.get("traces"), Some(Value::Array(_))) {
        if let Some(traces) = map.remove("traces") {
            expand(traces, origin, envelope_time, depth + 1, out);
        }
        return;
    }
    // Tencent API 3.0 responses wrap everything in {"Response": {...}}.
    if map.len() == 1 && matches!(map.get("Response"), Some(Value::Object(_))) {
        if let Some(response) = map.remove("Response") {
            expand(response, origin, envelope_time, depth + 1, out);
        }
        return;
    }
    // Tencent LookUpEvents / AWS LookupEvents: {"Events": [{..., "CloudAuditEvent"|"CloudTrailEvent": "<json>"}]}.
    if let Some(Value::Array(events)) = map.get_mut("Events") {
        let events = std::mem::take(events);
        for (index, event) in events.into_iter().enumerate() {
            let event_origin = origin.with_index(index);
            expand_lookup_event(event, &event_origin, depth + 1, out);
        }
        return;
    }
    // FunctionGraph CTS trigger: {"cts": {...}}.
    if matches!(map.get("cts"), Some(Value::Object(_))) && !looks_like_record(JsonObject::Tree(&map)) {
        if let Some(trace) = map.remove("cts") {
            expand(trace, origin, envelope_time, depth + 1, out);
        }
        return;
    }
    // EventBridge (AWS): {"detail-type": ..., "detail": {...}, "time": "..."}.
    if map.contains_key("detail-type") && map.contains_key("detail") {
        let time = map.get("time").and_then(|time| time_of(time, utc())).or(envelope_time);
        if let Some(detail) = map.remove("detail") {
            expand(detail, origin, time, depth + 1, out);
        }
        return;
    }
    // CloudEvents 1.0 (Tencent EventBridge): {"specversion": "1.0", "data": ..., "time": ms}.
    if map.contains_key("specversion") && map.contains_key("data") {
        let time = map.get("time").and_then(|time| time_of(time, utc())).or(envelope_time);
        if let Some(data) = map.remove("data") {
            expand(data, origin, time, depth + 1, out);
        }
        return;
    }
    match detect_provider(JsonObject::Tree(&map)) {
        Some(provider) => out.candidates.push(Candidate {
            provider,
            record: map,
            origin: origin.clone(),
            envelope_time,
        }),
        None => {
            let text = Value::Object(map).to_string();
            out.dead_letters.push(DeadLetter::new(
                origin.clone(),
                "not a CTS trace, CloudAudit event or CloudTrail record (no recognisable fields)",
                text.as_bytes(),
            ));
        }
    }
}

/// One item of a LookUpEvents / LookupEvents response.
fn expand_lookup_event(event: Value, origin: &Origin, depth: usize, out: &mut Decoded) {
    let Value::Object(mut map) = event else {
        return expand(event, origin, None, depth, out);
    };
    if let Some(Value::String(inner)) = map.remove("CloudTrailEvent") {
        match serde_json::from_str::<Value>(&inner) {
            Ok(value) => expand(value, origin, None, depth + 1, out),
            Err(error) => out.dead_letters.push(DeadLetter::new(
                origin.clone(),
                format!("invalid JSON in CloudTrailEvent: {error}"),
                inner.as_bytes(),
            )),
        }
        return;
    }
    let inner = match map.get("CloudAuditEvent") {
        None => return expand(Value::Object(map), origin, None, depth + 1, out),
        Some(Value::Object(_)) => map.remove("CloudAuditEvent"),
        Some(Value::String(text)) if !text.trim().is_empty() => match serde_json::from_str::<Value>(text) {
            Ok(value) => Some(value),
            Err(error) => {
                // Tencent's own published example has an unescaped
                // `requestParameters` inside this string: keep the item and
                // its summary fields rather than losing the event.
                if has_summary(&map) {
                    return push_summary_item(map, origin, out);
                }
                let excerpt = text.clone();
                out.dead_letters.push(DeadLetter::new(
                    origin.clone(),
                    format!("invalid JSON in CloudAuditEvent: {error}; the item has no summary fields to fall back on"),
                    excerpt.as_bytes(),
                ));
                return;
            }
        },
        // Empty string or null: the item was listed without its raw event.
        Some(_) => {
            if has_summary(&map) {
                return push_summary_item(map, origin, out);
            }
            out.dead_letters.push(DeadLetter::new(
                origin.clone(),
                "CloudAuditEvent is empty and the item has no summary fields",
                Value::Object(map).to_string().as_bytes(),
            ));
            return;
        }
    };
    if let Some(value) = inner {
        expand(value, origin, None, depth + 1, out);
    }
}

/// A LookUpEvents item names its event in the summary (`EventName`).
fn has_summary(map: &Map<String, Value>) -> bool {
    map.get("EventName").and_then(super::lenient::text_of).is_some()
}

/// Hand a LookUpEvents item to the Tencent normalizer whole, `CloudAuditEvent`
/// included: it reads the summary and says in `degraded` why it had to.
fn push_summary_item(map: Map<String, Value>, origin: &Origin, out: &mut Decoded) {
    out.candidates.push(Candidate {
        provider: Provider::Tencent,
        record: map,
        origin: origin.clone(),
        envelope_time: None,
    });
}

/// True when the object itself is a record (so a `cts` key is just a field).
fn looks_like_record(map: JsonObject<'_>) -> bool {
    map.contains_key("trace_name") || map.contains_key("eventName")
}

/// True when an object is a container or envelope that `expand_object`
/// unwraps rather than a record (the same tests, in the same order).
pub(crate) fn is_container(map: JsonObject<'_>) -> bool {
    let is_array = |key| map.get(key).and_then(Json::as_array).is_some();
    let is_object = |key| map.get(key).and_then(Json::as_object).is_some();
    is_array("Records")
        || is_array("traces")
        || (map.len() == 1 && is_object("Response"))
        || is_array("Events")
        || (is_object("cts") && !looks_like_record(map))
        || (map.contains_key("detail-type") && map.contains_key("detail"))
        || (map.contains_key("specversion") && map.contains_key("data"))
}

/// Recognise the cloud of a record from its keys.
pub fn detect_provider(map: JsonObject<'_>) -> Option<Provider> {
    if map.contains_key("trace_name") || map.contains_key("trace_id") || map.contains_key("trace_type") {
        return Some(Provider::Huawei);
    }
    // Some pipelines lower-case every key; read those case-insensitively.
    let obj = Obj::with_case_insensitive(map, true);
    let event_source = obj.text("eventSource");
    let source = event_source.as_deref().unwrap_or("");
    if source.ends_with("amazonaws.com") || obj.contains_key("awsRegion") {
        return Some(Provider::Aws);
    }
    if source.contains("tencent") || obj.contains_key("eventRegion") || obj.contains_key("resourceType") {
        return Some(Provider::Tencent);
    }
    let identity = obj.obj("userIdentity");
    if identity.is_some_and(|identity| identity.contains_key("secretId")) {
        return Some(Provider::Tencent);
    }
    if identity.is_some_and(|identity| identity.contains_key("arn") || identity.contains_key("accessKeyId")) {
        return Some(Provider::Aws);
    }
    if obj.contains_key("eventVersion") && obj.contains_key("eventName") {
        return Some(Provider::Aws);
    }
    // Tencent LookUpEvents items without the raw event: PascalCase summary fields.
    if map.contains_key("EventName") && (map.contains_key("SecretId") || map.contains_key("EventRegion")) {
        return Some(Provider::Tencent);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn origin() -> Origin {
        Origin::new(Arc::from("test"), Position::Line(1))
    }

    fn decode(text: &str) -> Decoded {
        let mut out = Decoded::default();
        decode_chunk(text.as_bytes(), &origin(), &mut out);
        out
    }

    #[test]
    fn concatenated_documents_get_their_own_lines() {
        let out = decode("{\"trace_name\":\"a\"}\n\n{\n \"trace_name\": \"b\"\n}\n");
        assert_eq!(out.candidates.len(), 2);
        assert_eq!(out.candidates[0].origin.line(), Some(1));
        assert_eq!(out.candidates[1].origin.line(), Some(3));
    }

    #[test]
    fn a_syntax_error_resynchronises_at_the_next_line() {
        let out = decode("{\"trace_name\": \"a\", \"x\n{\"trace_name\":\"b\"}\n");
        assert_eq!(out.dead_letters.len(), 1, "{:?}", out.dead_letters);
        assert_eq!(out.candidates.len(), 1);
        assert_eq!(out.candidates[0].origin.line(), Some(2));
    }

    #[test]
    fn a_broken_pretty_printed_document_is_one_dead_letter_located_in_the_file() {
        // Line 4 of the chunk lacks a comma; the chunk starts at line 10 of its file.
        let text = "{\n  \"trace_name\": \"a\",\n  \"trace_rating\": \"normal\"\n  \"trace_type\": \"ApiCall\",\n  \"x\": [\n    1\n  ]\n}\n";
        let mut out = Decoded::default();
        let origin = Origin::new(Arc::from("file.json"), Position::Line(10));
        decode_chunk(text.as_bytes(), &origin, &mut out);
        assert!(out.candidates.is_empty());
        assert_eq!(out.dead_letters.len(), 1, "{:?}", out.dead_letters);
        assert_eq!(out.dead_letters[0].origin.line(), Some(10));
        assert_eq!(
            out.dead_letters[0].reason,
            "invalid JSON at line 13 column 3: expected `,` or `}`"
        );
        // The next document at column 0 is read again.
        let out = decode(&format!("{text}{{\"trace_name\":\"b\"}}\n"));
        assert_eq!((out.dead_letters.len(), out.candidates.len()), (1, 1));
        assert_eq!(out.candidates[0].origin.line(), Some(9));
    }

    #[test]
    fn a_truncated_line_followed_by_a_record_loses_only_itself() {
        let out = decode("{\"a\": {\"trace_name\": 1\n{\"trace_name\":\"b\"}\n");
        assert_eq!(out.dead_letters.len(), 1, "{:?}", out.dead_letters);
        assert_eq!(out.candidates.len(), 1);
        assert_eq!(out.candidates[0].origin.line(), Some(2));
    }

    #[test]
    fn lookup_items_without_a_readable_raw_event_go_on_with_their_summary() {
        let summary = r#""EventName":"RunInstances","EventRegion":"ap-shanghai","SecretId":"""#;
        for inner in [r#""""#, r#""{\"eventName\":""#, "null"] {
            let out = decode(&format!(
                r#"{{"Response":{{"Events":[{{{summary},"CloudAuditEvent":{inner}}}]}}}}"#
            ));
            assert_eq!(out.candidates.len(), 1, "{inner}: {:?}", out.dead_letters);
            assert_eq!(out.candidates[0].provider, Provider::Tencent);
            assert!(
                out.candidates[0].record.contains_key("CloudAuditEvent"),
                "kept for the reason"
            );
        }
        // The raw event as an object is the record itself.
        let out = decode(r#"{"Events":[{"CloudAuditEvent":{"eventName":"X","eventRegion":"ap-guangzhou"}}]}"#);
        assert_eq!(out.candidates.len(), 1);
        assert!(out.candidates[0].record.contains_key("eventName"));
        // Without a summary there is nothing to fall back on.
        let out = decode(r#"{"Events":[{"CloudAuditEvent":"{broken"},{"CloudAuditEvent":""}]}"#);
        assert!(out.candidates.is_empty());
        assert_eq!(out.dead_letters.len(), 2);
        assert!(out.dead_letters[0].reason.contains("no summary fields"));
    }

    #[test]
    fn containers_are_unwrapped_with_indexes() {
        let out = decode(
            r#"{"Records":[{"eventSource":"iam.amazonaws.com","eventName":"A"},{"eventSource":"s3.amazonaws.com","eventName":"B"}]}"#,
        );
        assert_eq!(out.candidates.len(), 2);
        assert_eq!(out.candidates[1].origin.to_string(), "test:1[1]");
        assert!(
            out.candidates
                .iter()
                .all(|candidate| candidate.provider == Provider::Aws)
        );
    }

    #[test]
    fn scalars_and_unknown_objects_are_dead_letters() {
        let out = decode("[1, \"hello\", {\"foo\": \"bar\"}]");
        assert!(out.candidates.is_empty());
        assert_eq!(out.dead_letters.len(), 3);
        assert!(out.dead_letters[2].reason.contains("not a CTS trace"));
        let out = decode("[1, 2, 3]");
        assert_eq!(out.dead_letters.len(), 1);
        assert!(out.dead_letters[0].reason.contains("array of scalars"));
    }

    #[test]
    fn envelopes_carry_their_time() {
        let out = decode(
            r#"{"specversion":"1.0","time":1767225600000,"data":{"eventName":"X","eventSource":"cvm.tencentcloudapi.com"}}"#,
        );
        assert_eq!(out.candidates.len(), 1);
        assert_eq!(out.candidates[0].provider, Provider::Tencent);
        assert_eq!(
            out.candidates[0].envelope_time.unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
    }
}
