//! Property tests: no input makes the decoders, normalizers or rule engine
//! panic. Three kinds of input: arbitrary bytes, arbitrary JSON built from the
//! field names the normalizers read, and the real fixture records with
//! fields replaced by values of random types.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::record;
use proptest::prelude::*;
use serde_json::{Map, Value};
use trailwarden::event::decode::{Decoded, decode_chunk};
use trailwarden::event::normalize::{NormalizeContext, normalize};
use trailwarden::event::origin::{Origin, Position};
use trailwarden::rules::{EvalScratch, RuleOptions, RuleSet, load_rules};
use trailwarden::source::framer::Framer;

fn rules() -> &'static RuleSet {
    static RULES: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
    RULES.get_or_init(|| load_rules(Path::new("rules"), &RuleOptions::default()).expect("rule pack loads"))
}

/// Frame, decode, normalize and evaluate; count what came out.
fn process(bytes: &[u8]) -> (usize, usize) {
    let mut framer = Framer::new(1 << 20);
    let mut frames = Vec::new();
    framer.feed(bytes, &mut frames);
    framer.finish(&mut frames);
    let context = NormalizeContext::new(chrono::Utc::now());
    let mut decoded = Decoded::default();
    let mut scratch = EvalScratch::default();
    let mut matches = Vec::new();
    let (mut events, mut dead) = (0, 0);
    for frame in frames {
        let origin = Origin::new(Arc::from("fuzz"), Position::Line(frame.line));
        decode_chunk(&frame.bytes, &origin, &mut decoded);
        dead += decoded.dead_letters.len();
        decoded.dead_letters.clear();
        for candidate in decoded.candidates.drain(..) {
            match normalize(candidate, &context) {
                Ok(mut event) => {
                    events += 1;
                    rules().evaluate(&mut event, &mut scratch, &mut matches);
                    matches.clear();
                }
                Err(_) => dead += 1,
            }
        }
    }
    (events, dead)
}

const KEYS: &[&str] = &[
    "eventVersion",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "userIdentity",
    "type",
    "principalId",
    "arn",
    "accountId",
    "accessKeyId",
    "userName",
    "sessionContext",
    "attributes",
    "mfaAuthenticated",
    "errorCode",
    "errorMessage",
    "requestParameters",
    "responseElements",
    "readOnly",
    "resources",
    "ARN",
    "eventType",
    "eventID",
    "Records",
    "traces",
    "trace_id",
    "trace_name",
    "trace_rating",
    "trace_type",
    "service_type",
    "resource_type",
    "resource_name",
    "source_ip",
    "time",
    "record_time",
    "code",
    "request",
    "response",
    "user",
    "domain",
    "principal_urn",
    "principal_is_root_user",
    "access_key_id",
    "invoked_by",
    "eventRegion",
    "resourceType",
    "secretId",
    "actionType",
    "Response",
    "Events",
    "CloudAuditEvent",
    "CloudTrailEvent",
    "cts",
    "detail",
    "detail-type",
    "specversion",
    "data",
    "@timestamp",
    "p_event_time",
    "apiErrorCode",
    "PolicyId",
    "policyArn",
    "ConsoleLogin",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|n| serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9 .:/{}\\[\\]\"-]{0,24}".prop_map(Value::String),
        prop_oneof![
            Just("1767225600000"),
            Just("2026-03-01 10:15:00"),
            Just("2026-01-01T00:00:00Z"),
            Just("075.050.255.067"),
            Just("{\"Name\":\"x\"}"),
            Just("[\"*\"]"),
            Just("AKIAABCDEFGHIJKLMNOP"),
            Just("iam.amazonaws.com"),
            Just("cam.tencentcloudapi.com"),
        ]
        .prop_map(|text| Value::String(text.to_string())),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(key, value)| (key.to_string(), value))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn fixture_records() -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    for name in [
        "aws_single_record.json",
        "tencent_api_add_user.json",
        "cts_api_create_server.json",
        "tencent_console_root.json",
    ] {
        let text = std::fs::read_to_string(record(name)).unwrap();
        if let Ok(Value::Object(map)) = serde_json::from_str(&text) {
            out.push(map);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        process(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        let text = value.to_string();
        process(text.as_bytes());
        // Also as a line among good lines and inside the containers.
        let wrapped = format!("{{\"Records\":[{text}]}}\n{{\"traces\":[{text}]}}\n{{\"Response\":{{\"Events\":[{{\"CloudAuditEvent\":{}}}]}}}}\n",
            Value::String(text.clone()));
        process(wrapped.as_bytes());
    }

    #[test]
    fn real_records_with_fields_of_the_wrong_type_never_panic(
        which in 0usize..4,
        replacements in prop::collection::vec((prop::sample::select(KEYS), json_value()), 1..6),
    ) {
        let records = fixture_records();
        let mut record = records[which % records.len()].clone();
        for (key, value) in replacements {
            // Replace at the top level and inside nested identity objects.
            record.insert(key.to_string(), value.clone());
            for nested in ["userIdentity", "user"] {
                if let Some(Value::Object(inner)) = record.get_mut(nested) {
                    inner.insert(key.to_string(), value.clone());
                }
            }
        }
        let text = Value::Object(record).to_string();
        process(text.as_bytes());
    }

    #[test]
    fn block_boundaries_never_change_the_frames(
        pieces in prop::collection::vec(prop_oneof![
            Just(b"{\"a\": \"x\\\"}\"}\n".to_vec()),
            Just(b"[\n {\"b\": [1, {\"c\": \"}\"}]}\n]\n".to_vec()),
            Just(b"junk line\n".to_vec()),
            Just(b"{\"open\": \"unterminated\n".to_vec()),
            Just(b"{\"deep\": {\"x\": 1\n".to_vec()),
            Just(b"\"top-level string\"\n".to_vec()),
            prop::collection::vec(any::<u8>(), 0..40),
        ], 1..20),
        block in 1usize..64,
    ) {
        let input: Vec<u8> = pieces.concat();
        let frames_of = |block: usize| {
            let mut framer = Framer::new(1 << 20);
            let mut frames = Vec::new();
            for chunk in input.chunks(block) {
                framer.feed(chunk, &mut frames);
            }
            framer.finish(&mut frames);
            frames
        };
        prop_assert_eq!(frames_of(input.len().max(1)), frames_of(block));
    }

    #[test]
    fn truncating_a_good_file_anywhere_keeps_the_records_before_the_cut(cut in 0usize..4000) {
        let text = std::fs::read(record("tencent_variants.jsonl")).unwrap();
        let cut = cut.min(text.len());
        let complete_lines = text[..cut].iter().filter(|byte| **byte == b'\n').count();
        let (events, _) = process(&text[..cut]);
        prop_assert!(events >= complete_lines, "{events} events from {complete_lines} complete lines");
    }
}
