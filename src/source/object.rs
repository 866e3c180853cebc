//! Trails where the clouds deliver them: S3, OBS and COS buckets (all three
//! speak the S3 API), through the `object_store` crate.
//!
//! Objects are copied into a spool directory (`<spool>/<bucket>/<key>`, the
//! file's modification time set to the object's) and read from there by the
//! file source's machinery: gzip, every container shape, dead letters,
//! event-time merging, and per-file checkpoints committed in the same store
//! transaction as the alarms the records produced. An object whose checkpoint
//! says it was read whole (same size, same last-modified time) is never
//! downloaded again; a spooled copy is deleted once it has been read whole,
//! and one left by a crash is read on from its checkpoint. Each pass lists
//! every configured bucket and prefix, downloads at most `max_pass_bytes` of
//! new objects (a few at a time), reads them merged in event-time order, and
//! waits `poll_interval` for the next; an unreachable or refusing bucket is
//! logged and tried again at the next pass.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::integrity::{self, PublicKeys, Trail};
use super::watch::{CheckpointLookup, Plan, WatchMessage, WatchOptions, plan, scan};
use super::{ChunkBatch, FileCheckpoint};

/// One bucket (and prefix) to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketSettings {
    pub bucket: String,
    /// Only keys under this prefix (the delivery layout's root, e.g. `AWSLogs/`).
    pub prefix: String,
    /// The service endpoint (OBS, COS, an S3-compatible server); unset: AWS S3
    /// (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Credentials; unset: the environment and the standard credential chain.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// `https://bucket.endpoint/key` rather than `https://endpoint/bucket/key` (COS needs it).
    pub virtual_hosted_style: bool,
    /// Verify the trail's digest files (CloudTrail's, CTS's) as they arrive.
    pub verify_digests: bool,
}

/// `[source.object_store]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSourceSettings {
    pub buckets: Vec<BucketSettings>,
    /// CloudTrail's public keys, to check digest signatures with.
    pub public_keys: Option<Arc<PublicKeys>>,
    /// A Kafka topic of bucket notifications that starts a pass early.
    pub notifications: Option<super::notifications::NotificationSettings>,
    pub poll_interval: Duration,
    /// Where objects are copied before they are read.
    pub spool_dir: PathBuf,
    /// New objects downloaded per pass at most (bytes as stored).
    pub max_pass_bytes: u64,
    /// Downloads at a time.
    pub concurrency: usize,
}

/// A bucket's client.
pub struct Bucket {
    pub settings: BucketSettings,
    store: Arc<dyn ObjectStore>,
}

impl Bucket {
    /// A client for `settings`: explicit values first, then `AWS_*` from the environment.
    pub fn connect(settings: &BucketSettings) -> Result<Bucket, String> {
        crate::tls::install_crypto_provider();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&settings.bucket);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        } else if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        if let Some(region) = settings.region.clone().or_else(|| std::env::var("AWS_REGION").ok()) {
            builder = builder.with_region(region);
        }
        if let Some(key) = &settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &settings.session_token {
            builder = builder.with_token(token);
        }
        builder = builder.with_virtual_hosted_style_request(settings.virtual_hosted_style);
        let store = builder
            .build()
            .map_err(|error| format!("bucket {}: {error}", settings.bucket))?;
        Ok(Bucket {
            settings: settings.clone(),
            store: Arc::new(store),
        })
    }

    /// `s3://bucket/prefix` as shown in logs.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.settings.bucket, self.settings.prefix)
    }
}

/// An object listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub modified_ms: i64,
    /// A digest file (listed only for buckets that verify them), and whose.
    pub digest: Option<Trail>,
}

/// The objects to read under a bucket's prefix, sorted by key: trail files,
/// and digest files when the bucket verifies them (anything else left out).
pub async fn list(bucket: &Bucket) -> Result<Vec<Listed>, String> {
    use futures_util::TryStreamExt;
    let prefix = (!bucket.settings.prefix.is_empty()).then(|| ObjectPath::from(bucket.settings.prefix.as_str()));
    let metas: Vec<object_store::ObjectMeta> = bucket
        .store
        .list(prefix.as_ref())
        .try_collect()
        .await
        .map_err(|error| format!("listing {}: {error}", bucket.url()))?;
    let mut listed: Vec<Listed> = metas
        .into_iter()
        .filter_map(|meta| {
            let key = meta.location.to_string();
            let digest = if bucket.settings.verify_digests {
                integrity::digest_kind(&key)
            } else {
                None
            };
            (digest.is_some() || super::file::is_data_file(Path::new(&key))).then(|| Listed {
                key,
                size: meta.size,
                modified_ms: meta.last_modified.timestamp_millis(),
                digest,
            })
        })
        .collect();
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(listed)
}

/// Copy one object to `path` (through a temporary file), with the object's
/// modification time.
pub async fn download(bucket: &Bucket, object: &Listed, path: &Path) -> Result<u64, String> {
    let location = ObjectPath::from(object.key.as_str());
    let failed = |error: &dyn std::fmt::Display| format!("s3://{}/{}: {error}", bucket.settings.bucket, object.key);
    let bytes = bucket
        .store
        .get(&location)
        .await
        .map_err(|error| failed(&error))?
        .bytes()
        .await
        .map_err(|error| failed(&error))?;
    let path = path.to_path_buf();
    let modified = object.modified_ms;
    let length = bytes.len() as u64;
    tokio::task::spawn_blocking(move || write_spooled(&path, &bytes, modified))
        .await
        .map_err(|error| failed(&error))?
        .map_err(|error| failed(&error))?;
    Ok(length)
}

fn write_spooled(path: &Path, bytes: &[u8], modified_ms: i64) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = path.with_extension("part");
    std::fs::write(&partial, bytes)?;
    let modified = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(modified_ms).unwrap_or(0));
    std::fs::File::options()
        .write(true)
        .open(&partial)?
        .set_modified(modified)?;
    std::fs::rename(&partial, path)
}

/// Where an object is spooled: `<spool>/<bucket>/<key>` (a key's `..` or
/// absolute parts kept inside the spool).
pub fn spool_path(spool: &Path, bucket: &str, key: &str) -> PathBuf {
    let mut path = spool.join(sanitize(bucket));
    for part in key.split('/') {
        if !part.is_empty() {
            path.push(sanitize(part));
        }
    }
    path
}

fn sanitize(part: &str) -> String {
    match part {
        "." | ".." => "_".repeat(part.len()),
        _ => part.replace('\\', "_"),
    }
}

/// What one pass of downloads did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub listed: usize,
    pub downloaded: usize,
    /// Digest files verified (their records spooled).
    pub verified: usize,
    /// Findings of those verifications.
    pub findings: usize,
    pub bytes: u64,
    /// Objects left for the next pass (over the byte budget).
    pub deferred: usize,
    pub errors: Vec<String>,
}

/// One thing a pass does for an object.
enum Job {
    /// Copy a trail file into the spool.
    Download(Listed, PathBuf),
    /// Verify a digest file and spool the records of its outcome.
    Verify(Listed, Trail, PathBuf),
}

/// What a job brought in: bytes downloaded, findings.
type JobDone = Result<(u64, Option<usize>), String>;

/// Bring every object that needs reading into the spool: those with no
/// checkpoint, changed since theirs, or not read whole; and verify each
/// digest file that has not been (no checkpoint of its records).
pub async fn sync(
    buckets: &[Bucket],
    settings: &ObjectSourceSettings,
    known: &dyn Fn(&str) -> Option<FileCheckpoint>,
) -> SyncReport {
    let mut report = SyncReport::default();
    let mut wanted: Vec<(usize, Job)> = Vec::new();
    let mut budget = settings.max_pass_bytes;
    for (index, bucket) in buckets.iter().enumerate() {
        let listed = match list(bucket).await {
            Ok(listed) => listed,
            Err(error) => {
                report.errors.push(error);
                continue;
            }
        };
        report.listed += listed.len();
        for object in listed {
            let job = if let Some(trail) = object.digest {
                let path = integrity::records_path(&settings.spool_dir, &bucket.settings.bucket, &object.key);
                // Verified before (its records read, or spooled and not read yet).
                if known(&path.display().to_string()).is_some() || path.exists() {
                    continue;
                }
                Job::Verify(object, trail, path)
            } else {
                let path = spool_path(&settings.spool_dir, &bucket.settings.bucket, &object.key);
                let checkpoint = known(&path.display().to_string());
                if plan(checkpoint.as_ref(), object.size, object.modified_ms, true) == Plan::Skip {
                    continue;
                }
                // Already spooled (a crash between download and reading): read it on.
                if super::file::file_identity(&path)
                    .is_ok_and(|(size, mtime, _)| size == object.size && mtime == object.modified_ms)
                {
                    continue;
                }
                Job::Download(object, path)
            };
            let size = match &job {
                Job::Download(object, _) | Job::Verify(object, _, _) => object.size,
            };
            if size > budget && !wanted.is_empty() {
                report.deferred += 1;
                continue;
            }
            budget = budget.saturating_sub(size);
            wanted.push((index, job));
        }
    }
    let mut tasks: tokio::task::JoinSet<JobDone> = tokio::task::JoinSet::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
    let buckets: Vec<Arc<Bucket>> = buckets
        .iter()
        .map(|bucket| {
            Arc::new(Bucket {
                settings: bucket.settings.clone(),
                store: bucket.store.clone(),
            })
        })
        .collect();
    for (index, job) in wanted {
        let bucket = buckets[index].clone();
        let limit = limit.clone();
        let keys = settings.public_keys.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            match job {
                Job::Download(object, path) => download(&bucket, &object, &path).await.map(|bytes| (bytes, None)),
                Job::Verify(object, trail, path) => verify_digest(&bucket, &object, trail, keys.as_deref(), &path)
                    .await
                    .map(|(bytes, findings)| (bytes, Some(findings))),
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok((bytes, None))) => {
                report.downloaded += 1;
                report.bytes += bytes;
            }
            Ok(Ok((bytes, Some(findings)))) => {
                report.verified += 1;
                report.findings += findings;
                report.bytes += bytes;
            }
            Ok(Err(error)) => report.errors.push(error),
            Err(error) => report.errors.push(format!("a download stopped: {error}")),
        }
    }
    report
}

/// Verify one digest file and spool the records of the outcome (with the
/// digest's modification time): the bytes downloaded and the findings.
async fn verify_digest(
    bucket: &Bucket,
    object: &Listed,
    trail: Trail,
    keys: Option<&PublicKeys>,
    path: &Path,
) -> Result<(u64, usize), String> {
    let name = &bucket.settings.bucket;
    let outcome = integrity::verify(bucket.store.as_ref(), name, &object.key, trail, keys).await?;
    for finding in &outcome.findings {
        tracing::warn!(
            digest = %format!("s3://{name}/{}", object.key),
            object = %format!("s3://{}/{}", finding.bucket, finding.key),
            finding = finding.kind.name(),
            detail = %finding.detail,
            "trail file integrity"
        );
    }
    let records = outcome.records();
    let path = path.to_path_buf();
    let modified = object.modified_ms;
    tokio::task::spawn_blocking(move || write_spooled(&path, records.as_bytes(), modified))
        .await
        .map_err(|error| format!("s3://{name}/{}: {error}", object.key))?
        .map_err(|error| format!("s3://{name}/{}: spooling the verification: {error}", object.key))?;
    Ok((outcome.bytes, outcome.findings.len()))
}

/// The daemon's object-store source: until shutdown (or, with `once`, until
/// a pass finds nothing new to read).
pub fn run_object_source(
    settings: ObjectSourceSettings,
    merge: super::merge::MergeOptions,
    once: bool,
    sender: SyncSender<ChunkBatch>,
    checkpoints: CheckpointLookup,
    wake: Receiver<WatchMessage>,
    stop: Arc<AtomicBool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the object-store source");
            return;
        }
    };
    let buckets: Vec<Bucket> = settings
        .buckets
        .iter()
        .filter_map(|bucket| match Bucket::connect(bucket) {
            Ok(client) => Some(client),
            Err(error) => {
                tracing::error!(%error, "bucket not read");
                None
            }
        })
        .collect();
    let watch = WatchOptions {
        paths: vec![settings.spool_dir.clone()],
        watch: false,
        poll_interval: settings.poll_interval,
        settle: Duration::ZERO,
        merge,
    };
    let mut progress: HashMap<String, FileCheckpoint> = HashMap::new();
    loop {
        let report = runtime.block_on(sync(&buckets, &settings, &|key: &str| {
            progress.get(key).cloned().or_else(|| checkpoints(key))
        }));
        for error in &report.errors {
            tracing::warn!(%error, "object store: will try again at the next pass");
        }
        if report.downloaded > 0 || report.verified > 0 || report.deferred > 0 {
            tracing::info!(
                listed = report.listed,
                downloaded = report.downloaded,
                digests_verified = report.verified,
                findings = report.findings,
                bytes = report.bytes,
                deferred = report.deferred,
                "objects spooled"
            );
        }
        let _ = std::fs::create_dir_all(&settings.spool_dir);
        scan(&watch, &checkpoints, &mut progress, &sender, &stop);
        // Spooled copies read whole are not needed any more.
        for (path, checkpoint) in &progress {
            if checkpoint.completed {
                let _ = std::fs::remove_file(path);
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if once && report.downloaded == 0 && report.verified == 0 && report.deferred == 0 {
            return;
        }
        if once {
            continue;
        }
        match wake.recv_timeout(settings.poll_interval) {
            Ok(WatchMessage::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(WatchMessage::Changed) | Err(RecvTimeoutError::Timeout) => {}
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// The bucket and prefix of `s3://bucket/prefix`, to be read with the
/// environment's `AWS_*` settings.
pub fn bucket_of_url(url: &str) -> Result<BucketSettings, String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url}: not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url}: no bucket named (s3://BUCKET/PREFIX)"));
    }
    Ok(BucketSettings {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        endpoint: None,
        region: None,
        access_key_id: None,
        secret_access_key: None,
        session_token: None,
        virtual_hosted_style: false,
        verify_digests: false,
    })
}

/// `replay` of `s3://bucket/prefix`: the objects copied into `dir` (as
/// `dir/bucket/key`), with the environment's `AWS_*` settings; the directory
/// of the bucket's copies.
pub fn fetch_url(url: &str, dir: &Path) -> Result<PathBuf, String> {
    let settings = bucket_of_url(url)?;
    let bucket = settings.bucket.clone();
    let client = Bucket::connect(&settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    let source = ObjectSourceSettings {
        buckets: vec![settings],
        public_keys: None,
        notifications: None,
        poll_interval: Duration::ZERO,
        spool_dir: dir.to_path_buf(),
        max_pass_bytes: u64::MAX,
        concurrency: 4,
    };
    let report = runtime.block_on(sync(std::slice::from_ref(&client), &source, &|_| None));
    if let Some(error) = report.errors.first() {
        return Err(error.clone());
    }
    if report.listed == 0 {
        return Err(format!("{url}: no trail files under it"));
    }
    Ok(dir.join(sanitize(&bucket)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_paths_stay_inside_the_spool() {
        let spool = Path::new("/spool");
        assert_eq!(
            spool_path(
                spool,
                "trails",
                "AWSLogs/1234/CloudTrail/us-east-1/2026/03/02/a.json.gz"
            ),
            Path::new("/spool/trails/AWSLogs/1234/CloudTrail/us-east-1/2026/03/02/a.json.gz")
        );
        assert_eq!(
            spool_path(spool, "b", "../../etc/passwd"),
            Path::new("/spool/b/__/__/etc/passwd")
        );
        assert_eq!(spool_path(spool, "b", "/x//y"), Path::new("/spool/b/x/y"));
    }
}
