use std::io::Write;
use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::{AttributeValue, Attributes, PutOptions};

use super::*;

const BUCKET: &str = "org-trails";
const ACCOUNT: &str = "493817265041";
const FINGERPRINT: &str = "7d2f3a0c5e1b49d8a6c4e2f0b8d6a4c2";

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/integrity")
}

fn keys() -> PublicKeys {
    use base64::Engine as _;
    let der = std::fs::read(fixtures().join("test-public-key.der")).unwrap();
    let value = base64::engine::general_purpose::STANDARD.encode(der);
    PublicKeys::from_json(&format!(
        r#"{{"PublicKeyList":[{{"Value":"{value}","ValidityStartTime":"2026-01-01T00:00:00Z","ValidityEndTime":"2027-01-01T00:00:00Z","Fingerprint":"{FINGERPRINT}"}}]}}"#
    ))
    .unwrap()
}

fn sign(message: &str) -> String {
    let pkcs8 = std::fs::read(fixtures().join("test-signing-key.pk8")).unwrap();
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
    let mut signature = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        message.as_bytes(),
        &mut signature,
    )
    .unwrap();
    hex::encode(signature)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// An object of the delivered trail: key, bytes as stored, `signature` metadata.
#[derive(Clone)]
struct Object {
    key: String,
    bytes: Vec<u8>,
    signature: Option<String>,
}

fn log_key(hour: u32, n: u32) -> String {
    format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2026/03/02/{ACCOUNT}_CloudTrail_us-east-1_20260302T{hour:02}{:02}Z_{n}q7Hc2kXbR9.json.gz",
        n * 10
    )
}

fn digest_key(hour: u32) -> String {
    format!(
        "AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/03/02/{ACCOUNT}_CloudTrail-Digest_us-east-1_org-trail_us-east-1_20260302T{:02}3000Z.json.gz",
        hour + 1
    )
}

fn log_content(hour: u32, n: u32) -> String {
    format!(
        r#"{{"Records":[{{"eventVersion":"1.11","eventTime":"2026-03-02T{hour:02}:{:02}:00Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1","sourceIPAddress":"3.91.44.120","userAgent":"aws-cli/2.15.30","eventID":"integrity-{hour}-{n}","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{ACCOUNT}","userIdentity":{{"type":"IAMUser","principalId":"AIDAXEK3Q7BZQ8WV3M1JD","arn":"arn:aws:iam::{ACCOUNT}:user/analyst-jwu","accountId":"{ACCOUNT}","accessKeyId":"AKIAXEK3Q7BZUF6TR2WQ","userName":"analyst-jwu"}}}}]}}"#,
        n * 10
    )
}

/// A trail of `hours` hours with `files` log files each and a signed digest
/// per hour, chained as CloudTrail chains them.
fn trail(hours: u32, files: u32) -> Vec<Object> {
    let mut objects = Vec::new();
    let mut previous: Option<(String, Vec<u8>, String)> = None;
    for hour in 0..hours {
        let mut logs = Vec::new();
        for n in 0..files {
            let content = log_content(hour, n);
            logs.push(json!({
                "s3Bucket": BUCKET,
                "s3Object": log_key(hour, n),
                "hashValue": hex::encode(Sha256::digest(content.as_bytes())),
                "hashAlgorithm": "SHA-256",
                "newestEventTime": format!("2026-03-02T{hour:02}:59:59Z"),
                "oldestEventTime": format!("2026-03-02T{hour:02}:00:00Z"),
            }));
            objects.push(Object {
                key: log_key(hour, n),
                bytes: gzip(content.as_bytes()),
                signature: None,
            });
        }
        let key = digest_key(hour);
        let end = format!("2026-03-02T{:02}:30:00Z", hour + 1);
        let mut digest = json!({
            "awsAccountId": ACCOUNT,
            "digestStartTime": format!("2026-03-02T{hour:02}:30:00Z"),
            "digestEndTime": end,
            "digestS3Bucket": BUCKET,
            "digestS3Object": key,
            "digestPublicKeyFingerprint": FINGERPRINT,
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": format!("2026-03-02T{hour:02}:59:59Z"),
            "oldestEventTime": format!("2026-03-02T{hour:02}:00:00Z"),
            "previousDigestS3Bucket": null,
            "previousDigestS3Object": null,
            "previousDigestHashValue": null,
            "previousDigestHashAlgorithm": null,
            "previousDigestSignature": null,
            "logFiles": logs,
        });
        if let Some((previous_key, previous_content, previous_signature)) = &previous {
            digest["previousDigestS3Bucket"] = json!(BUCKET);
            digest["previousDigestS3Object"] = json!(previous_key);
            digest["previousDigestHashValue"] = json!(hex::encode(Sha256::digest(previous_content)));
            digest["previousDigestHashAlgorithm"] = json!("SHA-256");
            digest["previousDigestSignature"] = json!(previous_signature);
        }
        let content = serde_json::to_vec(&digest).unwrap();
        let signed = format!(
            "{end}\n{BUCKET}/{key}\n{}\n{}",
            hex::encode(Sha256::digest(&content)),
            previous.as_ref().map_or("null", |(_, _, signature)| signature.as_str())
        );
        let signature = sign(&signed);
        objects.push(Object {
            key: key.clone(),
            bytes: gzip(&content),
            signature: Some(signature.clone()),
        });
        previous = Some((key, content, signature));
    }
    objects
}

async fn store_of(objects: &[Object]) -> Arc<InMemory> {
    let store = Arc::new(InMemory::new());
    for object in objects {
        let mut attributes = Attributes::new();
        if let Some(signature) = &object.signature {
            attributes.insert(
                Attribute::Metadata("signature".into()),
                AttributeValue::from(signature.clone()),
            );
            attributes.insert(
                Attribute::Metadata("signature-algorithm".into()),
                AttributeValue::from("SHA256withRSA"),
            );
        }
        store
            .put_opts(
                &ObjectPath::from(object.key.as_str()),
                object.bytes.clone().into(),
                PutOptions {
                    attributes,
                    ..PutOptions::default()
                },
            )
            .await
            .unwrap();
    }
    store
}

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn check(objects: &[Object], hour: u32, keys: Option<&PublicKeys>) -> Verification {
    run(async {
        let store = store_of(objects).await;
        verify(store.as_ref(), BUCKET, &digest_key(hour), Trail::CloudTrail, keys)
            .await
            .unwrap()
    })
}

fn kinds(verification: &Verification) -> Vec<(FindingKind, String)> {
    verification
        .findings
        .iter()
        .map(|finding| (finding.kind, finding.key.clone()))
        .collect()
}

#[test]
fn an_untouched_trail_verifies_with_its_signature_chain_and_hashes() {
    let objects = trail(3, 2);
    let keys = keys();
    for hour in 0..3 {
        let outcome = check(&objects, hour, Some(&keys));
        assert_eq!(kinds(&outcome), vec![], "hour {hour}");
        assert_eq!(outcome.signature, SignatureCheck::Valid);
        assert_eq!(outcome.logs_checked, 2);
        assert_eq!(outcome.account.as_deref(), Some(ACCOUNT));
        assert_eq!(outcome.region.as_deref(), Some("us-east-1"));
        assert_eq!(
            outcome.end_time.unwrap().to_rfc3339(),
            format!("2026-03-02T{:02}:30:00+00:00", hour + 1)
        );
    }
    // Without keys the hashes and the chain are still checked.
    let outcome = check(&objects, 2, None);
    assert_eq!(kinds(&outcome), vec![]);
    assert_eq!(
        outcome.signature,
        SignatureCheck::NotChecked("no public keys configured")
    );
}

#[test]
fn a_log_file_altered_or_deleted_is_found() {
    let mut objects = trail(2, 3);
    let altered = log_key(1, 0);
    let deleted = log_key(1, 2);
    for object in &mut objects {
        if object.key == altered {
            object.bytes = gzip(log_content(1, 0).replace("ListBuckets", "GetObject").as_bytes());
        }
    }
    objects.retain(|object| object.key != deleted);
    let outcome = check(&objects, 1, Some(&keys()));
    assert_eq!(
        kinds(&outcome),
        vec![
            (FindingKind::LogFileAltered, altered),
            (FindingKind::LogFileMissing, deleted)
        ]
    );
    assert_eq!(outcome.signature, SignatureCheck::Valid);
    assert_eq!(outcome.logs_checked, 2);
    // The same content stored uncompressed is the same log: hashes are of the content.
    let mut objects = trail(1, 1);
    objects[0].bytes = log_content(0, 0).into_bytes();
    assert_eq!(kinds(&check(&objects, 0, Some(&keys()))), vec![]);
}

#[test]
fn a_digest_deleted_or_altered_breaks_the_chain_of_the_next() {
    let mut objects = trail(3, 1);
    let first = digest_key(0);
    objects.retain(|object| object.key != first);
    assert_eq!(
        kinds(&check(&objects, 1, Some(&keys()))),
        vec![(FindingKind::DigestMissing, first)]
    );

    // The middle digest rewritten (a log file dropped from its list) and
    // re-signed with another key: its own check and the next one's both fail.
    let mut objects = trail(3, 1);
    let middle = digest_key(1);
    for object in &mut objects {
        if object.key == middle {
            let mut digest: Value = serde_json::from_slice(&inflate(&object.bytes).unwrap()).unwrap();
            digest["logFiles"] = json!([]);
            object.bytes = gzip(&serde_json::to_vec(&digest).unwrap());
        }
    }
    assert_eq!(
        kinds(&check(&objects, 1, Some(&keys()))),
        vec![(FindingKind::DigestSignatureInvalid, middle.clone())]
    );
    assert_eq!(
        kinds(&check(&objects, 2, Some(&keys()))),
        vec![(FindingKind::DigestAltered, middle)]
    );
}

#[test]
fn signatures_that_are_missing_wrong_or_of_an_unknown_key_are_findings() {
    let key = digest_key(0);
    let mut objects = trail(1, 1);
    let digest = objects.iter_mut().find(|object| object.key == key).unwrap();
    digest.signature = Some(sign("something else"));
    assert_eq!(
        kinds(&check(&objects, 0, Some(&keys()))),
        vec![(FindingKind::DigestSignatureInvalid, key.clone())]
    );
    let digest = objects.iter_mut().find(|object| object.key == key).unwrap();
    digest.signature = Some("not hex".into());
    assert_eq!(
        kinds(&check(&objects, 0, Some(&keys()))),
        vec![(FindingKind::DigestSignatureInvalid, key.clone())]
    );
    let digest = objects.iter_mut().find(|object| object.key == key).unwrap();
    digest.signature = None;
    let outcome = check(&objects, 0, Some(&keys()));
    assert_eq!(
        kinds(&outcome),
        vec![(FindingKind::DigestSignatureInvalid, key.clone())]
    );
    assert!(outcome.findings[0].detail.contains("no `signature` metadata"));
    let other = PublicKeys::from_json(&format!(r#"[{{"Fingerprint":"00ff","Value":"{}"}}]"#, "AAAA")).unwrap();
    assert_eq!(
        kinds(&check(&trail(1, 1), 0, Some(&other))),
        vec![(FindingKind::DigestKeyUnknown, key)]
    );
}

#[test]
fn a_digest_moved_or_unreadable_is_found() {
    let objects = trail(1, 1);
    let moved = objects
        .iter()
        .map(|object| Object {
            key: object.key.replace("2026/03/02", "2026/03/03"),
            ..object.clone()
        })
        .collect::<Vec<_>>();
    let key = digest_key(0).replace("2026/03/02", "2026/03/03");
    let outcome = run(async {
        let store = store_of(&moved).await;
        verify(store.as_ref(), BUCKET, &key, Trail::CloudTrail, Some(&keys()))
            .await
            .unwrap()
    });
    // Moved, and its signature (over where it was delivered) still verifies;
    // the logs it lists are not where it says either.
    assert_eq!(outcome.findings[0].kind, FindingKind::DigestMoved);
    assert!(outcome.findings[0].detail.contains(&digest_key(0)));

    let mut broken = trail(1, 1);
    let at = broken.iter().position(|object| object.key == digest_key(0)).unwrap();
    broken[at].bytes = b"\x1f\x8b\x08garbage".to_vec();
    let outcome = check(&broken, 0, Some(&keys()));
    assert_eq!(kinds(&outcome), vec![(FindingKind::DigestUnreadable, digest_key(0))]);
    broken[at].bytes = gzip(b"{\"awsAccountId\": \"1\"}");
    let outcome = check(&broken, 0, Some(&keys()));
    assert_eq!(outcome.findings[0].detail, "no `digestEndTime`");
}

#[test]
fn cts_digests_are_checked_by_hash_and_chain() {
    let log = "CloudTraces/cn-north-4/2026/3/2/system/ECS/cts_CloudTrace_cn-north-4_2026-03-02T01-00-00Z_4f1c2a9b8e7d6c5b.json.gz";
    let content = r#"[{"trace_id":"t1","trace_name":"createServer","trace_type":"ApiCall","service_type":"ECS","time":1772413200000,"user":{"name":"ops"}}]"#;
    let previous = "CloudTraces/cn-north-4/2026/3/2/system/Digest/ECS/cts_CloudTrace-Digest_cn-north-4_2026-03-02T00-20-56Z.json.gz";
    let previous_content = br#"{"project_id":"p1","digest_end_time":"2026-03-02T00:20:56Z","digest_bucket":"cts-traces","digest_object":"x"}"#;
    let key = "CloudTraces/cn-north-4/2026/3/2/system/Digest/ECS/cts_CloudTrace-Digest_cn-north-4_2026-03-02T01-20-56Z.json.gz";
    assert_eq!(digest_kind(key), Some(Trail::Cts));
    let digest = json!({
        "project_id": "0c8d9e7f6a5b4c3d2e1f0a9b8c7d6e5f",
        "digest_start_time": "2026-03-02T00:20:56Z",
        "digest_end_time": "2026-03-02T01:20:56Z",
        "digest_bucket": "cts-traces",
        "digest_object": key,
        "digest_signature_algorithm": "SHA256withRSA",
        "digest_end": false,
        "previous_digest_bucket": "cts-traces",
        "previous_digest_object": previous,
        "previous_digest_hash_value": hex::encode(Sha256::digest(previous_content)),
        "previous_digest_hash_algorithm": "SHA-256",
        "previous_digest_end": false,
        "log_files": [{"bucket": "cts-traces", "object": log, "log_hash_value": hex::encode(Sha256::digest(content.as_bytes())), "log_hash_algorithm": "SHA-256"}],
    });
    let objects = |log_bytes: &[u8]| {
        vec![
            Object {
                key: log.into(),
                bytes: gzip(log_bytes),
                signature: None,
            },
            Object {
                key: previous.into(),
                bytes: gzip(previous_content),
                signature: None,
            },
            Object {
                key: key.into(),
                bytes: gzip(&serde_json::to_vec(&digest).unwrap()),
                signature: Some("00".into()),
            },
        ]
    };
    let verified = |objects: Vec<Object>| {
        run(async {
            let store = store_of(&objects).await;
            verify(store.as_ref(), "cts-traces", key, Trail::Cts, Some(&keys()))
                .await
                .unwrap()
        })
    };
    let outcome = verified(objects(content.as_bytes()));
    assert_eq!(kinds(&outcome), vec![]);
    assert_eq!(
        outcome.signature,
        SignatureCheck::NotChecked("CTS signatures are not documented")
    );
    assert_eq!(outcome.region.as_deref(), Some("cn-north-4"));
    let outcome = verified(objects(content.replace("createServer", "deleteServer").as_bytes()));
    assert_eq!(kinds(&outcome), vec![(FindingKind::LogFileAltered, log.to_string())]);
    // Its records are CTS traces of the `trailwarden` service.
    let records = outcome.records();
    let lines: Vec<Value> = records
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["trace_name"], "DigestVerified");
    assert_eq!(lines[1]["trace_name"], "LogFileAltered");
    assert_eq!(lines[1]["service_type"], SERVICE);
    assert_eq!(lines[1]["resource_name"], log);
    assert_eq!(lines[1]["time"], 1772414456000i64);
}

#[test]
fn records_are_cloudtrail_events_with_stable_ids() {
    let mut objects = trail(1, 1);
    objects.retain(|object| object.key != log_key(0, 0));
    let outcome = check(&objects, 0, Some(&keys()));
    let records = outcome.records();
    assert_eq!(
        records,
        check(&objects, 0, Some(&keys())).records(),
        "the same check, the same records"
    );
    let lines: Vec<Value> = records
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["eventName"], "DigestVerified");
    assert_eq!(lines[0]["serviceEventDetails"]["signature"], "valid");
    assert_eq!(lines[0]["serviceEventDetails"]["findings"], 1);
    assert_eq!(lines[1]["eventName"], "LogFileMissing");
    assert_eq!(lines[1]["eventSource"], SERVICE);
    assert_eq!(lines[1]["eventTime"], "2026-03-02T01:30:00Z");
    assert_eq!(lines[1]["recipientAccountId"], ACCOUNT);
    assert_eq!(lines[1]["awsRegion"], "us-east-1");
    assert_eq!(lines[1]["requestParameters"]["key"], log_key(0, 0));
    assert_ne!(lines[0]["eventID"], lines[1]["eventID"]);
}

#[test]
fn digest_keys_public_keys_and_record_paths() {
    assert_eq!(digest_kind(&digest_key(0)), Some(Trail::CloudTrail));
    assert_eq!(digest_kind(&log_key(0, 0)), None);
    assert_eq!(digest_kind("AWSLogs/1/CloudTrail-Digest/us-east-1/2026/03/02/"), None);
    let path = records_path(Path::new("/spool"), BUCKET, &digest_key(0));
    assert!(crate::source::file::is_data_file(&path), "{}", path.display());
    assert!(path.starts_with("/spool/_integrity/org-trails/AWSLogs"));
    assert!(path.to_string_lossy().ends_with("_20260302T013000Z.jsonl"));
    assert_eq!(keys().len(), 1);
    for bad in [
        "",
        "[]",
        "{}",
        r#"[{"Fingerprint":"a"}]"#,
        r#"[{"Fingerprint":"a","Value":"%%"}]"#,
    ] {
        assert!(PublicKeys::from_json(bad).is_err(), "{bad}");
    }
    assert_eq!(
        region_of("AWSLogs/o-abc/1/CloudTrail-Digest/eu-west-1/2026/x"),
        Some("eu-west-1".into())
    );
}

/// The delivered trail the object-store end-to-end test uploads
/// (`tests/object_store.rs`): `cargo test --lib write_integrity_fixtures -- --ignored`
/// writes it again (the signatures change; the test only needs them valid).
#[test]
#[ignore]
fn write_integrity_fixtures() {
    let root = fixtures().join("bucket");
    let _ = std::fs::remove_dir_all(&root);
    for object in trail(3, 2) {
        let path = root.join(&object.key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &object.bytes).unwrap();
        if let Some(signature) = object.signature {
            std::fs::write(path.with_extension("gz.signature"), signature).unwrap();
        }
    }
}

#[test]
fn the_end_to_end_fixtures_verify() {
    let root = fixtures().join("bucket");
    let mut objects = Vec::new();
    for path in crate::source::file::walk_files(&root, &|_| true).unwrap() {
        if path.to_string_lossy().ends_with(".signature") {
            continue;
        }
        let key = path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        let signature = std::fs::read_to_string(path.with_extension("gz.signature")).ok();
        objects.push(Object {
            key,
            bytes: std::fs::read(&path).unwrap(),
            signature,
        });
    }
    assert_eq!(objects.len(), 9, "3 digests and 6 log files");
    for hour in 0..3 {
        let outcome = check(&objects, hour, Some(&keys()));
        assert_eq!(kinds(&outcome), vec![], "hour {hour}");
        assert_eq!(outcome.signature, SignatureCheck::Valid);
    }
}
