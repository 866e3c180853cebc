//! Samples: the events an alarm keeps as evidence, bounded in size.
//!
//! An alarm keeps its first events (`store.samples_per_alarm`) as JSON, and
//! the CLI, the API and notifications serve them. One record can be huge (a
//! 50 MB policy document in `requestParameters`) and match several rules, so
//! every sample is capped at `store.max_sample_bytes`: all fields are kept,
//! long strings are cut with a marker saying how long they were, long arrays
//! keep their first items and a marker saying how many were dropped. Limits
//! tighten step by step until the sample fits; only a record with more fields
//! than fit at all loses fields, and a marker says how many.

use std::io;

use serde_json::{Map, Value};

use crate::event::model::AuditEvent;
use crate::event::{EventHead, event_json};
use crate::rules::OperationCatalog;

/// (longest string in bytes, most array items) tried in turn.
const STEPS: [(usize, usize); 5] = [(4096, 256), (1024, 64), (256, 16), (64, 4), (16, 2)];

/// The event as a sample: `event_json` with the raw record, at most `max_bytes` of JSON.
pub fn event_sample(event: &AuditEvent, catalog: &OperationCatalog, max_bytes: usize) -> String {
    // The usual case, in one pass, without a JSON tree and without copying
    // the record: the normalized fields (written to a plain buffer: they are
    // no bigger than the record, and serde's many small writes are cheaper
    // there), then `"raw"` spliced in before the closing brace; writing the
    // record stops as soon as it outgrows the cap.
    let mut out = Capped {
        text: Vec::with_capacity(4096.min(max_bytes)),
        max_bytes,
    };
    if serde_json::to_writer(&mut out.text, &EventHead::new(event, catalog)).is_ok()
        && out.text.len() <= max_bytes
        && out.text.pop() == Some(b'}')
    {
        let separator: &[u8] = if out.text == b"{" { br#""raw":"# } else { br#","raw":"# };
        // A record read as it is (nothing inside it to expand) is spliced in
        // as its own text: parsing and printing it again cost more than
        // everything else an alarm does.
        let fits = io::Write::write_all(&mut out, separator).is_ok()
            && match event.raw.verbatim() {
                Some(text) => io::Write::write_all(&mut out, text.trim().as_bytes()).is_ok(),
                None => serde_json::to_writer(&mut out, event.raw.value()).is_ok(),
            }
            && io::Write::write_all(&mut out, b"}").is_ok();
        // serde_json writes valid UTF-8.
        if fits && let Ok(text) = String::from_utf8(out.text) {
            return text;
        }
    }
    // Cut without cloning the big parts first: `truncated` copies only what it keeps.
    let head = event_json(event, catalog, false);
    for (strings, items) in STEPS {
        let sample = with_raw(
            truncated(&head, strings, items),
            truncated(event.raw.value(), strings, items),
        );
        let text = sample.to_string();
        if text.len() <= max_bytes {
            return text;
        }
    }
    let sample = with_raw(truncated(&head, 16, 2), truncated(event.raw.value(), 16, 2));
    fewer_fields(&sample, max_bytes)
}

/// Any JSON value, at most `max_bytes` of it (same rules as `event_sample`).
pub fn bounded_json(value: &Value, max_bytes: usize) -> String {
    if json_len(value) <= max_bytes {
        return value.to_string();
    }
    for (strings, items) in STEPS {
        let text = truncated(value, strings, items).to_string();
        if text.len() <= max_bytes {
            return text;
        }
    }
    fewer_fields(&truncated(value, 16, 2), max_bytes)
}

/// A writer that refuses to grow past `max_bytes`.
struct Capped {
    text: Vec<u8>,
    max_bytes: usize,
}

impl io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.text.len() + bytes.len() > self.max_bytes {
            return Err(io::Error::other("over the sample size cap"));
        }
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn with_raw(mut head: Value, raw: Value) -> Value {
    if let Value::Object(map) = &mut head {
        map.insert("raw".to_string(), raw);
    }
    head
}

/// The length of `value` as JSON, without building the text.
pub fn json_len(value: &Value) -> usize {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a `Value` to a sink that cannot fail cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// A copy of `value` with strings longer than `strings` bytes and arrays
/// longer than `items` cut, each cut marked.
fn truncated(value: &Value, strings: usize, items: usize) -> Value {
    match value {
        Value::String(text) if text.len() > strings => {
            let mut end = strings;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            Value::String(format!("{}…[truncated: {} bytes in all]", &text[..end], text.len()))
        }
        Value::Array(list) => {
            let mut kept: Vec<Value> = list
                .iter()
                .take(items)
                .map(|item| truncated(item, strings, items))
                .collect();
            if list.len() > items {
                kept.push(Value::String(format!(
                    "…[truncated: {} more items, {} in all]",
                    list.len() - items,
                    list.len()
                )));
            }
            Value::Array(kept)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), truncated(value, strings, items)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Last resort for a record with too many fields: keep fields in order
/// (nested objects cut to their names) while they fit, and say how many went.
fn fewer_fields(value: &Value, max_bytes: usize) -> String {
    let Value::Object(map) = value else {
        return Value::String(format!("…[truncated: {} bytes of JSON]", json_len(value))).to_string();
    };
    // Room for the marker field at the end.
    let budget = max_bytes.saturating_sub(64);
    let mut kept = Map::new();
    let mut used = 2;
    for (key, field) in map {
        let field = match field {
            Value::Object(inner) if json_len(field) > budget / 4 => {
                let cut = fewer_fields(&Value::Object(inner.clone()), budget / 4);
                serde_json::from_str(&cut).unwrap_or(Value::Null)
            }
            other => other.clone(),
        };
        let cost = key.len() + json_len(&field) + 4;
        if used + cost > budget {
            break;
        }
        used += cost;
        kept.insert(key.clone(), field);
    }
    let dropped = map.len() - kept.len();
    if dropped > 0 {
        kept.insert(
            "…".to_string(),
            Value::String(format!("[truncated: {dropped} more fields, {} in all]", map.len())),
        );
    }
    Value::Object(kept).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::model::AuditEvent;
    use serde_json::json;

    #[test]
    fn small_values_are_kept_exactly() {
        let value = json!({"a": "short", "b": [1, 2, 3], "c": {"d": null}});
        assert_eq!(bounded_json(&value, 1024), value.to_string());
    }

    #[test]
    fn a_huge_string_is_cut_with_a_marker_and_every_field_kept() {
        let value = json!({
            "eventName": "PutUserPolicy",
            "requestParameters": {"policyDocument": "x".repeat(50 << 20), "userName": "alice"},
            "resources": (0..10_000).map(|n| json!({"arn": format!("arn:aws:s3:::b{n}")})).collect::<Vec<_>>(),
        });
        let text = bounded_json(&value, 32 << 10);
        assert!(text.len() <= 32 << 10, "{} bytes", text.len());
        let sample: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(sample["eventName"], "PutUserPolicy");
        assert_eq!(sample["requestParameters"]["userName"], "alice");
        let document = sample["requestParameters"]["policyDocument"].as_str().unwrap();
        assert!(document.starts_with("xxxx"));
        assert!(document.ends_with("…[truncated: 52428800 bytes in all]"), "{document}");
        let resources = sample["resources"].as_array().unwrap();
        let marker = resources.last().unwrap().as_str().unwrap();
        assert!(marker.contains("more items, 10000 in all"), "{marker}");
    }

    #[test]
    fn too_many_fields_keep_what_fits_and_count_the_rest() {
        let map: Map<String, Value> = (0..20_000).map(|n| (format!("field{n:05}"), json!(n))).collect();
        let text = bounded_json(&Value::Object(map), 4096);
        assert!(text.len() <= 4096, "{} bytes", text.len());
        let sample: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(sample["field00000"], 0);
        assert!(sample["…"].as_str().unwrap().contains("in all"), "{text}");
    }

    #[test]
    fn cuts_respect_character_boundaries() {
        let value = json!({"name": "é".repeat(5000)});
        let text = bounded_json(&value, 1024);
        let sample: Value = serde_json::from_str(&text).unwrap();
        assert!(
            sample["name"]
                .as_str()
                .unwrap()
                .contains("…[truncated: 10000 bytes in all]")
        );
    }

    /// The normalized event of the single-record AWS fixture.
    fn fixture_event() -> AuditEvent {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/records/aws_single_record.json"
        ))
        .unwrap();
        let mut decoded = crate::event::decode::Decoded::default();
        let origin = crate::event::origin::Origin::new(std::sync::Arc::from("t"), Default::default());
        crate::event::decode::decode_chunk(text.as_bytes(), &origin, &mut decoded);
        crate::event::normalize::normalize(
            decoded.candidates.pop().unwrap(),
            &crate::event::normalize::NormalizeContext::new(chrono::Utc::now()),
        )
        .unwrap()
    }

    #[test]
    fn a_sample_is_the_event_json_with_its_raw_record() {
        let event = fixture_event();
        let catalog = OperationCatalog::default();
        let sample: Value = serde_json::from_str(&event_sample(&event, &catalog, 32 << 10)).unwrap();
        assert_eq!(sample, event_json(&event, &catalog, true));
        // Capped: still every field, the raw record cut to fit.
        let small = event_sample(&event, &catalog, 1200);
        assert!(small.len() <= 1200, "{} bytes", small.len());
        let small: Value = serde_json::from_str(&small).unwrap();
        assert_eq!(small["action"], "AttachUserPolicy");
        assert!(small["raw"].is_object());
    }

    /// Samples are written from the borrowed fields, not from a JSON tree:
    /// the text is the tree's, key for key in the same order, with and
    /// without the fields only some events have.
    #[test]
    fn the_sample_head_is_written_exactly_as_the_json_tree_prints() {
        let mut event = fixture_event();
        let catalog = OperationCatalog::default();
        let direct = |event: &AuditEvent| serde_json::to_string(&EventHead::new(event, &catalog)).unwrap();
        let tree = |event: &AuditEvent| event_json(event, &catalog, false).to_string();
        assert_eq!(direct(&event), tree(&event));
        event.degraded = Some("no event time".to_string());
        event.platform_source = event.source.clone();
        event.principal.arn = Some("arn:aws:iam::111122223333:user/ops".to_string());
        event.outcome.error_code = Some("AccessDenied".to_string());
        event.resource.names.push("ops".to_string());
        assert!(direct(&event).contains(r#""degraded":"no event time""#));
        assert_eq!(direct(&event), tree(&event));
    }

    /// Events read from their own bytes: a record with nothing to expand is
    /// spliced in as its text, one with JSON inside a string is expanded;
    /// either way the sample reads as the event with its expanded record.
    #[test]
    fn a_sample_of_a_record_read_from_its_bytes_holds_the_expanded_record() {
        let plain = r#"{"eventVersion":"1.08","eventID":"e-1","eventTime":"2026-03-02T10:00:00Z","eventSource":"iam.amazonaws.com","eventName":"AttachUserPolicy","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.9","userIdentity":{"type":"IAMUser","userName":"ops","accountId":"111122223333","accessKeyId":"AKIAEXAMPLEKEY123456"},"requestParameters":{"userName":"ops","policyArn":"arn:aws:iam::aws:policy/AdministratorAccess"},"recipientAccountId":"111122223333"}"#;
        let stringified = plain.replace(
            r#""requestParameters":{"userName":"ops","policyArn":"arn:aws:iam::aws:policy/AdministratorAccess"}"#,
            r#""requestParameters":"{\"userName\":\"ops\",\"policyArn\":\"arn:aws:iam::aws:policy/AdministratorAccess\"}""#,
        );
        let catalog = OperationCatalog::default();
        for (record, verbatim) in [(plain.to_string(), true), (stringified, false)] {
            let chunk = crate::source::Chunk {
                bytes: record.into_bytes(),
                origin: crate::event::origin::Origin::new(std::sync::Arc::from("t"), Default::default()),
                oversized: false,
                nodes: None,
                ingest_time: None,
            };
            let mut events = Vec::new();
            crate::source::normalize_chunk(
                &chunk,
                &crate::event::normalize::NormalizeContext::new(chrono::Utc::now()),
                &crate::event::window::TimeWindow::default().bounds(chrono::Utc::now()),
                &mut crate::event::decode::Decoded::default(),
                &mut |event| {
                    events.push(event);
                    true
                },
                &mut |_| {},
            );
            let event = events.pop().expect("one event");
            assert_eq!(event.raw.verbatim().is_some(), verbatim);
            let sample: Value = serde_json::from_str(&event_sample(&event, &catalog, 32 << 10)).unwrap();
            assert_eq!(sample, event_json(&event, &catalog, true));
            assert_eq!(
                sample["raw"]["requestParameters"]["policyArn"],
                "arn:aws:iam::aws:policy/AdministratorAccess"
            );
        }
    }
}
