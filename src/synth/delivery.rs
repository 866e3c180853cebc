//! The delivery-layout writer behind `generate --dir`: records go into the
//! three clouds' own bucket layouts (CloudTrail `{"Records":[..]}` files per
//! account, region and hour; CloudAudit JSON lines per five minutes; CTS
//! arrays per region, service and hour), gzipped except one plain file of
//! each of CloudAudit and CTS, so that one directory exercises every input
//! shape the file source reads. See [`super::write_example_dir`].

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::Timelike;
use chrono_tz::Asia::Shanghai;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::event::model::Provider;

use super::SynthRecord;
use super::random::{B62, Rng};
use super::timeline::{HOUR_MS, MINUTE_MS, utc};

/// Writes records into the three clouds' delivery layouts, one time bucket at a time.
pub(super) struct ExampleDir {
    root: PathBuf,
    /// The random parts of file names; its own stream, so that writing a
    /// directory leaves the records themselves as `--out` writes them.
    rng: Rng,
    /// Per cloud, the time bucket being collected (in units of that cloud's
    /// span) and its records; a record of a later bucket flushes them.
    aws_hour: Option<i64>,
    /// Keyed by (account, region): one CloudTrail file each.
    aws: BTreeMap<(String, String), Vec<Value>>,
    tencent_bucket: Option<i64>,
    tencent: Vec<Value>,
    /// The first file of CloudAudit and of CTS is written plain, so that the
    /// directory holds uncompressed files too.
    tencent_plain_done: bool,
    huawei_hour: Option<i64>,
    /// Keyed by (region, service): one CTS file each.
    huawei: BTreeMap<(String, String), Vec<Value>>,
    huawei_plain_done: bool,
    /// Bytes on disk and files written so far, for the summary.
    pub(super) bytes: u64,
    pub(super) files: usize,
    /// How much time one delivery file covers, per cloud (real deliveries:
    /// an hour for CloudTrail and CTS, five minutes for CloudAudit).
    aws_span_ms: i64,
    tencent_span_ms: i64,
    huawei_span_ms: i64,
}

impl ExampleDir {
    pub(super) fn new(root: &Path, seed: u64, file_span_ms: Option<i64>) -> ExampleDir {
        ExampleDir {
            aws_span_ms: file_span_ms.unwrap_or(HOUR_MS),
            tencent_span_ms: file_span_ms.unwrap_or(5 * MINUTE_MS),
            huawei_span_ms: file_span_ms.unwrap_or(HOUR_MS),
            root: root.to_path_buf(),
            rng: Rng::new(seed ^ 0xD1_5EC7),
            aws_hour: None,
            aws: BTreeMap::new(),
            tencent_bucket: None,
            tencent: Vec::new(),
            tencent_plain_done: false,
            huawei_hour: None,
            huawei: BTreeMap::new(),
            huawei_plain_done: false,
            bytes: 0,
            files: 0,
        }
    }

    pub(super) fn push(&mut self, record: SynthRecord) -> io::Result<()> {
        let ms = record.time.timestamp_millis();
        match record.provider {
            Provider::Aws => {
                let hour = ms.div_euclid(self.aws_span_ms);
                if self.aws_hour != Some(hour) {
                    self.flush_aws()?;
                    self.aws_hour = Some(hour);
                }
                let account = text_at(&record.record, &["recipientAccountId"]);
                let region = text_at(&record.record, &["awsRegion"]);
                self.aws.entry((account, region)).or_default().push(record.record);
            }
            Provider::Tencent => {
                let bucket = ms.div_euclid(self.tencent_span_ms);
                if self.tencent_bucket != Some(bucket) {
                    self.flush_tencent()?;
                    self.tencent_bucket = Some(bucket);
                }
                self.tencent.push(record.record);
            }
            Provider::Huawei => {
                let hour = ms.div_euclid(self.huawei_span_ms);
                if self.huawei_hour != Some(hour) {
                    self.flush_huawei()?;
                    self.huawei_hour = Some(hour);
                }
                let region = huawei_region(&record.record);
                let service = text_at(&record.record, &["service_type"]);
                self.huawei.entry((region, service)).or_default().push(record.record);
            }
        }
        Ok(())
    }

    pub(super) fn finish(&mut self) -> io::Result<()> {
        self.flush_aws()?;
        self.flush_tencent()?;
        self.flush_huawei()
    }

    fn write_file(&mut self, path: &Path, body: &[u8], gzip: bool) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::File::create(path)?;
        let mut file = io::BufWriter::new(file);
        if gzip {
            let mut encoder = GzEncoder::new(&mut file, Compression::fast());
            encoder.write_all(body)?;
            encoder.finish()?;
        } else {
            file.write_all(body)?;
        }
        file.flush()?;
        self.bytes += file.get_ref().metadata()?.len();
        self.files += 1;
        Ok(())
    }

    fn flush_aws(&mut self) -> io::Result<()> {
        let Some(hour) = self.aws_hour else {
            return Ok(());
        };
        let groups = std::mem::take(&mut self.aws);
        for ((account, region), records) in groups {
            let stamp = utc(hour * self.aws_span_ms + self.aws_span_ms - 5 * MINUTE_MS).format("%Y%m%dT%H%MZ");
            let name = format!(
                "{account}_CloudTrail_{region}_{stamp}_{}.json.gz",
                self.rng.chars(B62, 16)
            );
            let body = serde_json::to_vec(&json!({"Records": records}))?;
            let path = self.root.join("aws").join("CloudTrail").join(name);
            self.write_file(&path, &body, true)?;
        }
        Ok(())
    }

    fn flush_tencent(&mut self) -> io::Result<()> {
        let Some(bucket) = self.tencent_bucket else {
            return Ok(());
        };
        if self.tencent.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.tencent);
        let start = bucket * self.tencent_span_ms;
        let local_time = utc(start).with_timezone(&Shanghai);
        let directory = local_time.format("%Y%m%d%H").to_string();
        let index = local_time.minute() / 5;
        let mut body = Vec::new();
        for record in &records {
            serde_json::to_writer(&mut body, record)?;
            body.push(b'\n');
        }
        let plain = !self.tencent_plain_done;
        self.tencent_plain_done = true;
        let name = if plain {
            format!("cloudaudit_{index}.jsonl")
        } else {
            format!("cloudaudit_{index}.json.gz")
        };
        let path = self.root.join("tencent").join(directory).join(name);
        self.write_file(&path, &body, !plain)
    }

    fn flush_huawei(&mut self) -> io::Result<()> {
        let Some(hour) = self.huawei_hour else {
            return Ok(());
        };
        let groups = std::mem::take(&mut self.huawei);
        for ((region, service), records) in groups {
            let delivered = utc(hour * self.huawei_span_ms + self.huawei_span_ms - 30_000);
            let plain = !self.huawei_plain_done;
            self.huawei_plain_done = true;
            let name = format!(
                "cts_CloudTrace_{region}_{}_{}.{}",
                delivered.format("%Y-%m-%dT%H-%M-%SZ"),
                self.rng.hex(16),
                if plain { "json" } else { "json.gz" }
            );
            let path = self
                .root
                .join("huawei")
                .join("CloudTraces")
                .join(&region)
                .join(delivered.format("%Y").to_string())
                .join(delivered.format("%m").to_string())
                .join(delivered.format("%d").to_string())
                .join("system")
                .join(&service)
                .join(name);
            let body = serde_json::to_vec_pretty(&Value::Array(records))?;
            self.write_file(&path, &body, !plain)?;
        }
        Ok(())
    }
}

/// The text at `path` in a record, or `unknown`, so a file name part is never empty.
fn text_at(record: &Value, path: &[&str]) -> String {
    let mut value = record;
    for key in path {
        match value.get(key) {
            Some(next) => value = next,
            None => return "unknown".to_string(),
        }
    }
    value.as_str().unwrap_or("unknown").to_string()
}

/// A Huawei trace's region, from its endpoint (`ecs.cn-north-4.myhuaweicloud.com`);
/// global services (IAM) and system traces file under the home region.
fn huawei_region(record: &Value) -> String {
    let endpoint = text_at(record, &["endpoint"]);
    endpoint
        .split('.')
        .find(|label| label.matches('-').count() >= 2 && label.ends_with(|c: char| c.is_ascii_digit()))
        .unwrap_or("cn-north-4")
        .to_string()
}
