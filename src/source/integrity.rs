//! Log file integrity where the trails are delivered: CloudTrail's digest
//! files (and CTS's) verified by the object-store source.
//!
//! Each hour CloudTrail delivers a digest file beside the logs: the SHA-256
//! of every log file it delivered in the hour, the hash and signature of the
//! previous digest, and (in the object's `signature` metadata) an RSA
//! signature over its own content. Checking one digest checks its link to the
//! previous one, so checking every digest as it arrives checks the chain.
//! What is checked for a digest:
//! - it is where it says it was delivered (bucket and key);
//! - its signature, with the public key its fingerprint names (CloudTrail,
//!   when keys are configured: the JSON of `aws cloudtrail list-public-keys`);
//! - the previous digest is there, with the hash (and signature) this one
//!   records for it;
//! - each log file it lists is there, and the SHA-256 of its uncompressed
//!   content is the one listed.
//!
//! CTS digest files (`…CloudTrace-Digest…`) carry the same chain and hashes
//! under snake_case names; their hashes and chain are checked, their
//! signature is not (Huawei does not document the string it signs).
//!
//! The outcome is written as audit records of the digest's own cloud
//! (`eventSource` / `service_type` `trailwarden`, the service rules match): one
//! `DigestVerified` record per digest and one record per finding
//! (`LogFileMissing`, `LogFileAltered`, `DigestMissing`, …). They go through
//! the pipeline like any trail file, so the `trail-file-integrity` rule turns
//! findings into alarms (with their workflow and notifications), the event
//! store keeps every verification, and the checkpoint of the records' file is
//! what marks a digest done, in the same transaction as its alarms.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The service name of the records written here.
pub const SERVICE: &str = "trailwarden";

/// Uncompressed bytes read from one object at most (a digest or a log file).
const MAX_OBJECT_BYTES: u64 = 4 << 30;

/// Whose digest format a digest file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trail {
    CloudTrail,
    Cts,
}

/// The trail a digest file's key belongs to; `None` when the key is not a digest file.
pub fn digest_kind(key: &str) -> Option<Trail> {
    let name = key.rsplit('/').next()?;
    if !(name.ends_with(".json.gz") || name.ends_with(".json")) {
        return None;
    }
    if name.contains("CloudTrail-Digest") {
        Some(Trail::CloudTrail)
    } else if name.contains("CloudTrace-Digest") {
        Some(Trail::Cts)
    } else {
        None
    }
}

/// CloudTrail's public keys by fingerprint (DER, PKCS #1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublicKeys {
    keys: BTreeMap<String, Vec<u8>>,
}

impl PublicKeys {
    /// Read the output of `aws cloudtrail list-public-keys` (`{"PublicKeyList":
    /// [{"Value": base64, "Fingerprint": hex, ...}]}`), or a bare list of those entries.
    pub fn from_json(text: &str) -> Result<PublicKeys, String> {
        let value: Value = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
        let list = match &value {
            Value::Array(list) => list,
            Value::Object(object) => object
                .get("PublicKeyList")
                .and_then(Value::as_array)
                .ok_or("no `PublicKeyList` (expected the output of `aws cloudtrail list-public-keys`)")?,
            _ => return Err("expected the output of `aws cloudtrail list-public-keys`".into()),
        };
        let mut keys = BTreeMap::new();
        for (index, entry) in list.iter().enumerate() {
            let field = |name: &str| {
                entry
                    .get(name)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("key {index} has no `{name}`"))
            };
            let fingerprint = field("Fingerprint")?.to_ascii_lowercase();
            use base64::Engine as _;
            let der = base64::engine::general_purpose::STANDARD
                .decode(field("Value")?.trim())
                .map_err(|error| format!("key {index} (`{fingerprint}`): `Value` is not base64: {error}"))?;
            keys.insert(fingerprint, der);
        }
        if keys.is_empty() {
            return Err("no keys in it".into());
        }
        Ok(PublicKeys { keys })
    }

    pub fn load(path: &Path) -> Result<PublicKeys, String> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
        PublicKeys::from_json(&text).map_err(|error| format!("{}: {error}", path.display()))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn get(&self, fingerprint: &str) -> Option<&[u8]> {
        self.keys.get(&fingerprint.to_ascii_lowercase()).map(Vec::as_slice)
    }
}

/// What a check found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingKind {
    /// A log file the digest lists is not in the bucket.
    LogFileMissing,
    /// A log file's content is not what the digest says was delivered.
    LogFileAltered,
    /// The previous digest the chain names is not in the bucket.
    DigestMissing,
    /// The previous digest's content (or signature) is not what this one recorded.
    DigestAltered,
    /// The digest's own signature does not verify (or is missing).
    DigestSignatureInvalid,
    /// The digest is not where it says it was delivered.
    DigestMoved,
    /// The digest cannot be read (not gzip, not JSON, fields missing).
    DigestUnreadable,
    /// No configured public key has the digest's fingerprint.
    DigestKeyUnknown,
}

impl FindingKind {
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::LogFileMissing => "LogFileMissing",
            FindingKind::LogFileAltered => "LogFileAltered",
            FindingKind::DigestMissing => "DigestMissing",
            FindingKind::DigestAltered => "DigestAltered",
            FindingKind::DigestSignatureInvalid => "DigestSignatureInvalid",
            FindingKind::DigestMoved => "DigestMoved",
            FindingKind::DigestUnreadable => "DigestUnreadable",
            FindingKind::DigestKeyUnknown => "DigestKeyUnknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    /// The object the finding is about.
    pub bucket: String,
    pub key: String,
    pub detail: String,
}

/// How the digest's signature was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    Invalid,
    NotChecked(&'static str),
}

/// The outcome of checking one digest file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub trail: Trail,
    pub bucket: String,
    pub key: String,
    pub account: Option<String>,
    pub region: Option<String>,
    /// The end of the period the digest covers (the records' event time).
    pub end_time: Option<DateTime<Utc>>,
    pub logs_checked: usize,
    pub signature: SignatureCheck,
    pub findings: Vec<Finding>,
    /// Bytes downloaded for the check (digests and log files, as stored).
    pub bytes: u64,
}

/// One log file a digest lists.
struct Listed {
    bucket: String,
    key: String,
    hash: Option<String>,
    algorithm: Option<String>,
}

/// The previous digest a digest names.
struct Link {
    bucket: String,
    key: String,
    hash: Option<String>,
    algorithm: Option<String>,
    signature: Option<String>,
}

/// A digest file's fields, in either cloud's naming.
struct DigestFile {
    account: Option<String>,
    end_time: String,
    bucket: String,
    key: String,
    fingerprint: Option<String>,
    previous: Option<Link>,
    /// `previousDigestSignature` as the string to sign has it (`null` for the first digest).
    previous_signature: String,
    logs: Vec<Listed>,
}

fn parse_digest(trail: Trail, content: &[u8]) -> Result<DigestFile, String> {
    let value: Value = serde_json::from_slice(content).map_err(|error| format!("not JSON: {error}"))?;
    let text = |object: &Value, name: &str| object.get(name).and_then(Value::as_str).map(str::to_string);
    let required = |name: &str| text(&value, name).ok_or_else(|| format!("no `{name}`"));
    let names = match trail {
        Trail::CloudTrail => [
            "awsAccountId",
            "digestEndTime",
            "digestS3Bucket",
            "digestS3Object",
            "previousDigestS3Bucket",
            "previousDigestS3Object",
            "previousDigestHashValue",
            "previousDigestHashAlgorithm",
            "previousDigestSignature",
            "logFiles",
            "s3Bucket",
            "s3Object",
            "hashValue",
            "hashAlgorithm",
        ],
        Trail::Cts => [
            "project_id",
            "digest_end_time",
            "digest_bucket",
            "digest_object",
            "previous_digest_bucket",
            "previous_digest_object",
            "previous_digest_hash_value",
            "previous_digest_hash_algorithm",
            "previous_digest_signature",
            "log_files",
            "bucket",
            "object",
            "log_hash_value",
            "log_hash_algorithm",
        ],
    };
    let previous = match (text(&value, names[4]), text(&value, names[5])) {
        (Some(bucket), Some(key)) => Some(Link {
            bucket,
            key,
            hash: text(&value, names[6]),
            algorithm: text(&value, names[7]),
            signature: text(&value, names[8]),
        }),
        _ => None,
    };
    let mut logs = Vec::new();
    if let Some(files) = value.get(names[9]) {
        let files = files
            .as_array()
            .ok_or_else(|| format!("`{}` is not a list", names[9]))?;
        for (index, file) in files.iter().enumerate() {
            logs.push(Listed {
                bucket: text(file, names[10])
                    .ok_or_else(|| format!("`{}[{index}]` has no `{}`", names[9], names[10]))?,
                key: text(file, names[11]).ok_or_else(|| format!("`{}[{index}]` has no `{}`", names[9], names[11]))?,
                hash: text(file, names[12]),
                algorithm: text(file, names[13]),
            });
        }
    }
    Ok(DigestFile {
        account: text(&value, names[0]),
        end_time: required(names[1])?,
        bucket: required(names[2])?,
        key: required(names[3])?,
        fingerprint: text(&value, "digestPublicKeyFingerprint"),
        previous_signature: text(&value, names[8]).unwrap_or_else(|| "null".to_string()),
        previous,
        logs,
    })
}

/// The region in a digest's key: CloudTrail's `…/CloudTrail-Digest/<region>/…`,
/// CTS's `CloudTraces/<region>/…`.
fn region_of(key: &str) -> Option<String> {
    let mut parts = key.split('/');
    while let Some(part) = parts.next() {
        if part == "CloudTrail-Digest" || part == "CloudTraces" {
            return parts.next().filter(|region| !region.is_empty()).map(str::to_string);
        }
    }
    None
}

fn is_sha256(algorithm: Option<&str>) -> bool {
    algorithm.is_none_or(|name| name.replace('-', "").eq_ignore_ascii_case("sha256"))
}

/// SHA-256 (hex) of an object's content, gunzipped when it is gzip.
fn content_hash(bytes: &[u8]) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 << 10];
    let mut reader: Box<dyn Read + '_> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(bytes).take(MAX_OBJECT_BYTES))
    } else {
        Box::new(bytes)
    };
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn inflate(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    let mut content = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_OBJECT_BYTES)
        .read_to_end(&mut content)?;
    Ok(content)
}

/// An object's bytes and its `signature` metadata; `None` when it is not there.
async fn fetch(store: &dyn ObjectStore, key: &str) -> Result<Option<(bytes::Bytes, Option<String>)>, String> {
    let result = match store.get(&ObjectPath::from(key)).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    let signature = result
        .attributes
        .get(&Attribute::Metadata("signature".into()))
        .map(|value| value.as_ref().to_string());
    let bytes = result.bytes().await.map_err(|error| error.to_string())?;
    Ok(Some((bytes, signature)))
}

/// The signed string of a CloudTrail digest.
fn string_to_sign(digest: &DigestFile, content: &[u8]) -> String {
    format!(
        "{}\n{}/{}\n{}\n{}",
        digest.end_time,
        digest.bucket,
        digest.key,
        hex::encode(Sha256::digest(content)),
        digest.previous_signature
    )
}

/// Check the digest at `key` of `bucket` (read through `store`). An `Err` is
/// a failure to talk to the store (try again later), never a finding.
pub async fn verify(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    trail: Trail,
    keys: Option<&PublicKeys>,
) -> Result<Verification, String> {
    let mut outcome = Verification {
        trail,
        bucket: bucket.to_string(),
        key: key.to_string(),
        account: None,
        region: region_of(key),
        end_time: None,
        logs_checked: 0,
        signature: SignatureCheck::NotChecked("no public keys configured"),
        findings: Vec::new(),
        bytes: 0,
    };
    let finding = |kind: FindingKind, bucket: &str, key: &str, detail: String| Finding {
        kind,
        bucket: bucket.to_string(),
        key: key.to_string(),
        detail,
    };
    let here = |error: String| format!("s3://{bucket}/{key}: {error}");
    let Some((bytes, signature)) = fetch(store, key).await.map_err(here)? else {
        // Listed a moment ago and gone now: deleted in between.
        outcome.findings.push(finding(
            FindingKind::DigestMissing,
            bucket,
            key,
            "listed, then gone".into(),
        ));
        return Ok(outcome);
    };
    outcome.bytes += bytes.len() as u64;
    let parsed = inflate(&bytes)
        .map_err(|error| format!("not gzip: {error}"))
        .and_then(|content| parse_digest(trail, &content).map(|digest| (content, digest)));
    let (content, digest) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            outcome
                .findings
                .push(finding(FindingKind::DigestUnreadable, bucket, key, error));
            return Ok(outcome);
        }
    };
    outcome.account = digest.account.clone();
    outcome.end_time = DateTime::parse_from_rfc3339(&digest.end_time)
        .ok()
        .map(|time| time.with_timezone(&Utc));
    if digest.bucket != bucket || digest.key != key {
        outcome.findings.push(finding(
            FindingKind::DigestMoved,
            bucket,
            key,
            format!("it says it was delivered to s3://{}/{}", digest.bucket, digest.key),
        ));
    }
    if trail == Trail::Cts {
        outcome.signature = SignatureCheck::NotChecked("CTS signatures are not documented");
    } else if let Some(keys) = keys {
        outcome.signature = SignatureCheck::Invalid;
        let fingerprint = digest.fingerprint.as_deref().unwrap_or("");
        match (keys.get(fingerprint), &signature) {
            (None, _) => outcome.findings.push(finding(
                FindingKind::DigestKeyUnknown,
                bucket,
                key,
                format!("no configured public key has the fingerprint `{fingerprint}`"),
            )),
            (Some(_), None) => outcome.findings.push(finding(
                FindingKind::DigestSignatureInvalid,
                bucket,
                key,
                "no `signature` metadata on the object".into(),
            )),
            (Some(der), Some(signature)) => {
                let valid = hex::decode(signature.trim()).is_ok_and(|signature| {
                    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, der)
                        .verify(string_to_sign(&digest, &content).as_bytes(), &signature)
                        .is_ok()
                });
                if valid {
                    outcome.signature = SignatureCheck::Valid;
                } else {
                    outcome.findings.push(finding(
                        FindingKind::DigestSignatureInvalid,
                        bucket,
                        key,
                        "the signature does not verify with the digest's public key".into(),
                    ));
                }
            }
        }
    }
    if let Some(previous) = &digest.previous {
        check_previous(store, bucket, previous, &mut outcome).await?;
    }
    for log in &digest.logs {
        if log.bucket != bucket {
            tracing::warn!(
                digest = %format!("s3://{bucket}/{key}"),
                log = %format!("s3://{}/{}", log.bucket, log.key),
                "a log file in another bucket is not checked"
            );
            continue;
        }
        let Some((bytes, _)) = fetch(store, &log.key).await.map_err(here)? else {
            outcome.findings.push(finding(
                FindingKind::LogFileMissing,
                &log.bucket,
                &log.key,
                format!("listed in the digest s3://{bucket}/{key}, not in the bucket"),
            ));
            continue;
        };
        outcome.bytes += bytes.len() as u64;
        outcome.logs_checked += 1;
        if !is_sha256(log.algorithm.as_deref()) {
            tracing::warn!(key = %log.key, algorithm = ?log.algorithm, "a log file hash algorithm that is not SHA-256 is not checked");
            continue;
        }
        let actual = content_hash(&bytes);
        let expected = log.hash.as_deref().unwrap_or("");
        match actual {
            Ok(actual) if actual.eq_ignore_ascii_case(expected) => {}
            Ok(actual) => outcome.findings.push(finding(
                FindingKind::LogFileAltered,
                &log.bucket,
                &log.key,
                format!("SHA-256 {actual}, the digest recorded {expected}"),
            )),
            Err(error) => outcome.findings.push(finding(
                FindingKind::LogFileAltered,
                &log.bucket,
                &log.key,
                format!("cannot be read as delivered ({error}); the digest recorded SHA-256 {expected}"),
            )),
        }
    }
    Ok(outcome)
}

/// The previous digest is there with the hash (and signature) recorded for it.
async fn check_previous(
    store: &dyn ObjectStore,
    bucket: &str,
    previous: &Link,
    outcome: &mut Verification,
) -> Result<(), String> {
    if previous.bucket != bucket {
        tracing::warn!(previous = %format!("s3://{}/{}", previous.bucket, previous.key), "a previous digest in another bucket is not checked");
        return Ok(());
    }
    let found = fetch(store, &previous.key)
        .await
        .map_err(|error| format!("s3://{bucket}/{}: {error}", previous.key))?;
    let Some((bytes, signature)) = found else {
        outcome.findings.push(Finding {
            kind: FindingKind::DigestMissing,
            bucket: previous.bucket.clone(),
            key: previous.key.clone(),
            detail: format!("the digest s3://{bucket}/{} names it as the previous one", outcome.key),
        });
        return Ok(());
    };
    outcome.bytes += bytes.len() as u64;
    let mut problems = Vec::new();
    if is_sha256(previous.algorithm.as_deref())
        && let Some(expected) = &previous.hash
    {
        match inflate(&bytes) {
            Ok(content) => {
                let actual = hex::encode(Sha256::digest(&content));
                if !actual.eq_ignore_ascii_case(expected) {
                    problems.push(format!("SHA-256 {actual}, the next digest recorded {expected}"));
                }
            }
            Err(error) => problems.push(format!("cannot be read ({error})")),
        }
    }
    if let (Some(recorded), Some(actual)) = (&previous.signature, &signature)
        && !recorded.trim().eq_ignore_ascii_case(actual.trim())
    {
        problems.push("its signature is not the one the next digest recorded".into());
    }
    if !problems.is_empty() {
        outcome.findings.push(Finding {
            kind: FindingKind::DigestAltered,
            bucket: previous.bucket.clone(),
            key: previous.key.clone(),
            detail: problems.join("; "),
        });
    }
    Ok(())
}

impl Verification {
    /// The outcome as audit records of the digest's cloud, one JSON per line:
    /// `DigestVerified`, then one record per finding.
    pub fn records(&self) -> String {
        let time = self.end_time.unwrap_or_else(Utc::now);
        let signature = match &self.signature {
            SignatureCheck::Valid => "valid".to_string(),
            SignatureCheck::Invalid => "invalid".to_string(),
            SignatureCheck::NotChecked(why) => format!("not checked: {why}"),
        };
        let digest = format!("s3://{}/{}", self.bucket, self.key);
        let summary = json!({
            "logFilesChecked": self.logs_checked,
            "findings": self.findings.len(),
            "signature": signature,
        });
        let mut lines = String::new();
        let mut push = |name: &str, bucket: &str, key: &str, detail: Value| {
            let id = hex::encode(&Sha256::digest(format!("{digest}\n{name}\n{bucket}/{key}").as_bytes())[..16]);
            let record = match self.trail {
                Trail::CloudTrail => json!({
                    "eventVersion": "1.11",
                    "eventTime": time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    "eventSource": SERVICE,
                    "eventName": name,
                    "awsRegion": self.region,
                    "sourceIPAddress": SERVICE,
                    "userAgent": "trailwarden",
                    "eventID": id,
                    "eventType": "AwsServiceEvent",
                    "readOnly": true,
                    "managementEvent": false,
                    "resources": [{"ARN": format!("arn:aws:s3:::{bucket}/{key}"), "type": "AWS::S3::Object"}],
                    "recipientAccountId": self.account,
                    "userIdentity": {"type": "AWSService", "invokedBy": SERVICE},
                    "requestParameters": {"bucketName": bucket, "key": key, "digest": digest},
                    "serviceEventDetails": detail,
                }),
                Trail::Cts => json!({
                    "trace_id": id,
                    "trace_name": name,
                    "trace_rating": "normal",
                    "trace_type": "SystemAction",
                    "service_type": SERVICE,
                    "resource_type": "traceFile",
                    "resource_name": key,
                    "time": time.timestamp_millis(),
                    "region_id": self.region,
                    "user": {"name": "trailwarden", "account_id": self.account},
                    "request": json!({"bucket": bucket, "object": key, "digest": digest}).to_string(),
                    "message": detail,
                    "read_only": true,
                }),
            };
            lines.push_str(&record.to_string());
            lines.push('\n');
        };
        push("DigestVerified", &self.bucket, &self.key, summary);
        for finding in &self.findings {
            push(
                finding.kind.name(),
                &finding.bucket,
                &finding.key,
                json!({"detail": finding.detail}),
            );
        }
        lines
    }
}

/// Where the records of a digest's check are spooled: under `_integrity/`
/// (no bucket can be named so), the digest's key with `Digest` made
/// `Integrity` (file names with `Digest` are not read) and `.jsonl`.
pub fn records_path(spool: &Path, bucket: &str, key: &str) -> std::path::PathBuf {
    let base = key
        .strip_suffix(".json.gz")
        .or_else(|| key.strip_suffix(".json"))
        .unwrap_or(key);
    let renamed = format!("{}.jsonl", base.replace("Digest", "Integrity"));
    super::object::spool_path(&spool.join("_integrity"), bucket, &renamed)
}

#[cfg(test)]
mod tests;
