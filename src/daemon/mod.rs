//! The daemon: a source (watched files or a Kafka consumer) feeding the
//! pipeline, rule reloads, scheduled backups and the notification worker, as
//! one running thing with a start and an ordered shutdown. `lifecycle.rs`
//! runs it under signals with the HTTP API beside it.

pub mod backfill;
pub mod housekeeping;
pub mod lifecycle;
mod store_open;
pub mod systemd;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;

use crate::alarm::store::{Store, StoreError};
use crate::config::Settings;
use crate::event::model::AuditEvent;
use crate::mask::mask_key_in_text;
use crate::pipeline::{MatchSink, Pipeline, PipelineHooks, PipelineReport, shared_rules};
use crate::rules::{Rule, RuleMatch, RuleSet};
use crate::source::FileCheckpoint;
use crate::source::watch::{WatchMessage, WatchOptions, run_file_source};

use crate::api::DaemonHandle;
use crate::error::AppError;
use crate::options::{merge_options, pipeline_options, store_options};
use crate::ruleset::check_rule_set;

/// A running daemon.
pub struct Daemon {
    pipeline: Pipeline,
    source: DaemonSource,
    reloader: crate::reload::Reloader,
    /// Scheduled backups and retention, on their own threads.
    housekeeping: Vec<housekeeping::Periodic>,
    /// The running rule set (the reloader swaps it), for the API's rule list.
    rules: crate::rules::SharedRules,
    /// The store the daemon writes, for the API's own connections.
    store_path: PathBuf,
}

/// The daemon's source: watched files or a Kafka consumer.
enum DaemonSource {
    Files {
        thread: std::thread::JoinHandle<()>,
        wake: std::sync::mpsc::Sender<WatchMessage>,
        stop: Arc<AtomicBool>,
    },
    Kafka(crate::source::kafka::KafkaSource),
}

/// Reads file checkpoints through a connection of its own (the pipeline's
/// store stage owns the store's): read-only SQLite, or PostgreSQL.
fn file_checkpoint_reader(store_path: &Path) -> Result<crate::source::watch::CheckpointLookup, AppError> {
    if let crate::db::StoreLocation::Postgres(url) = crate::db::StoreLocation::from_path(store_path) {
        let connection = crate::db::PgConnection::connect(&url).map_err(|source| StoreError::Connect {
            url: crate::db::postgres::redact(&url),
            source,
        })?;
        let connection = std::sync::Mutex::new(connection);
        return Ok(Box::new(move |path: &str| -> Option<FileCheckpoint> {
            let mut connection = connection.lock().ok()?;
            crate::alarm::store::file_checkpoint_in(&mut *connection, path)
                .ok()
                .flatten()
        }));
    }
    let reader = rusqlite::Connection::open_with_flags(
        store_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: store_path.to_path_buf(),
        source,
    })?;
    let reader = std::sync::Mutex::new(reader);
    Ok(Box::new(move |path: &str| -> Option<FileCheckpoint> {
        let connection = reader.lock().ok()?;
        crate::alarm::store::read_file_checkpoint(&connection, path)
            .ok()
            .flatten()
    }))
}

impl Daemon {
    /// Start the daemon. With `once`, the file source reads what is there
    /// and stops; the Kafka source stops when every partition is read to its end.
    pub fn start(settings: &Settings, db: Option<&Path>, once: bool) -> Result<Daemon, AppError> {
        let rules = check_rule_set(settings, None)?;
        tracing::info!(
            rules = rules.rules.len(),
            operations = rules.catalog.len(),
            version = %rules.version,
            dir = %settings.rules.dir.display(),
            "rules loaded"
        );
        let store_path = db.unwrap_or(&settings.store.path).to_path_buf();
        let mut store = store_open::open_waiting(&store_path, &store_options(settings), !once)?;
        tracing::info!(path = %store_path.display(), "alarm store open");
        let started = crate::alarm::changes::Actor {
            name: "daemon start".into(),
            via: "start".into(),
        };
        crate::alarm::rule_changes::record_logged(&mut store, &rules, &started);
        let rules = shared_rules(rules);
        let reloader = crate::reload::Reloader::start(settings.clone(), rules.clone(), Some(store_path.clone()));
        // On a shared store, series carry the host they come from.
        let instance = store
            .is_postgres()
            .then(crate::alarm::store::host_name)
            .filter(|name| !name.is_empty());
        let metrics = Arc::new(crate::metrics::Metrics::with_instance(instance));
        let housekeeping = if once {
            Vec::new()
        } else {
            housekeeping::start(settings, &store_path, &metrics)?
        };
        if settings.source == crate::config::SourceKind::Kafka {
            let mut daemon = Daemon::start_kafka(settings, &store_path, store, rules, reloader, metrics, once)?;
            daemon.housekeeping = housekeeping;
            return Ok(daemon);
        }
        let checkpoints = file_checkpoint_reader(&store_path)?;
        let hooks = PipelineHooks {
            metrics: Some(metrics),
            ..PipelineHooks::default()
        };
        let pipeline = Pipeline::start(
            rules.clone(),
            store,
            pipeline_options(settings, true),
            Box::new(LogSink),
            hooks,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (wake_sender, wake_receiver) = channel();
        let options = WatchOptions {
            paths: settings.files.paths.clone(),
            watch: settings.files.watch && !once,
            poll_interval: settings.files.poll_interval,
            settle: settings.files.settle,
            merge: merge_options(settings, true),
        };
        for path in &options.paths {
            if settings.source == crate::config::SourceKind::Files && !path.exists() {
                tracing::warn!(path = %path.display(), "source path does not exist (yet); it will be picked up when it appears");
            }
        }
        let source = {
            let sender = pipeline.sender();
            let stop = stop.clone();
            let wake_sender = wake_sender.clone();
            let spawned = if settings.source == crate::config::SourceKind::ObjectStore {
                let objects = settings.object_store.clone();
                for bucket in &objects.buckets {
                    tracing::info!(bucket = %bucket.bucket, prefix = %bucket.prefix, spool = %objects.spool_dir.display(), "reading an object-store bucket");
                }
                let merge = options.merge.clone();
                // Bucket notifications start a pass early; a one-pass run has no use for them.
                if let Some(notifications) = objects.notifications.as_ref().filter(|_| !once) {
                    let buckets = objects.buckets.iter().map(|bucket| bucket.bucket.clone()).collect();
                    crate::source::notifications::start(notifications, buckets, wake_sender.clone(), stop.clone())
                        .map_err(AppError::Usage)?;
                }
                std::thread::Builder::new().name("tw-objects".into()).spawn(move || {
                    crate::source::object::run_object_source(
                        objects,
                        merge,
                        once,
                        sender,
                        checkpoints,
                        wake_receiver,
                        stop,
                    )
                })
            } else {
                std::thread::Builder::new()
                    .name("tw-files".into())
                    .spawn(move || run_file_source(options, sender, checkpoints, wake_sender, wake_receiver, stop))
            };
            spawned.map_err(|source| AppError::Io {
                context: "starting the source".into(),
                source,
            })?
        };
        Ok(Daemon {
            pipeline,
            source: DaemonSource::Files {
                thread: source,
                wake: wake_sender,
                stop,
            },
            reloader,
            housekeeping,
            rules,
            store_path,
        })
    }

    fn start_kafka(
        settings: &Settings,
        store_path: &Path,
        store: Store,
        rules: crate::rules::SharedRules,
        reloader: crate::reload::Reloader,
        metrics: Arc<crate::metrics::Metrics>,
        once: bool,
    ) -> Result<Daemon, AppError> {
        use crate::source::kafka::{DeadLetterProducer, KafkaSource};
        let kafka = &settings.kafka;
        let on_dead_letters: Option<crate::pipeline::DeadLetterHook> = match &kafka.dead_letter_topic {
            Some(topic) => {
                let mut producer = DeadLetterProducer::new(kafka, topic, metrics.clone())?;
                Some(Box::new(move |chunk, letters, events| {
                    producer.copy(chunk, letters, events)
                }))
            }
            None => None,
        };
        let (committed_sender, committed_receiver) = channel();
        let hooks = PipelineHooks {
            metrics: Some(metrics.clone()),
            committed_offsets: Some(committed_sender),
            on_dead_letters,
        };
        // A shared (PostgreSQL) store: partitions are claimed on assignment,
        // and the offsets read through the claims' own connection.
        let claims = store.partition_claims();
        let mut options = pipeline_options(settings, true);
        // A daemon of a cluster that stops hands its partitions' held events
        // over (they are in the store) instead of releasing them early;
        // `--once` ends its input, so it releases them.
        options.hand_over_at_close = claims.is_some() && !once;
        let pipeline = Pipeline::start(rules.clone(), store, options, Box::new(LogSink), hooks);
        let reader = match claims {
            Some(mut claims) => {
                Ok(
                    Box::new(move |group: &str, assigned: &[(Arc<str>, i32)]| claims.claim_and_read(group, assigned))
                        as crate::source::kafka::StoredOffsets,
                )
            }
            None => crate::alarm::store::kafka_offset_reader(store_path).map(|mut reader| {
                Box::new(move |group: &str, _: &[(Arc<str>, i32)]| reader(group)) as crate::source::kafka::StoredOffsets
            }),
        };
        let stored_offsets = match reader {
            Ok(reader) => reader,
            Err(error) => {
                reloader.stop();
                pipeline.finish();
                return Err(error.into());
            }
        };
        let source = match KafkaSource::start(
            kafka,
            stored_offsets,
            pipeline.sender(),
            committed_receiver,
            metrics,
            once,
            settings.pipeline.batch_bytes,
        ) {
            Ok(source) => source,
            Err(error) => {
                reloader.stop();
                pipeline.finish();
                return Err(error.into());
            }
        };
        Ok(Daemon {
            pipeline,
            source: DaemonSource::Kafka(source),
            reloader,
            housekeeping: Vec::new(),
            rules,
            store_path: store_path.to_path_buf(),
        })
    }

    /// Start the notification worker on the current tokio runtime, when
    /// `[notify]` has topics.
    pub fn start_notifier(&self, settings: &Settings) -> Result<Option<crate::notify::worker::Notifier>, AppError> {
        if !settings.notify.active() {
            return Ok(None);
        }
        let subscriptions: usize = settings
            .notify
            .topics
            .iter()
            .map(|topic| topic.subscriptions.len())
            .sum();
        let notifier = crate::notify::worker::Notifier::start(
            settings.notify.clone(),
            self.store_path.clone(),
            store_options(settings),
            Some(self.rules.clone()),
            self.metrics(),
        )
        .map_err(|error| AppError::Notify(error.to_string()))?;
        tracing::info!(topics = settings.notify.topics.len(), subscriptions, "notifications on");
        Ok(Some(notifier))
    }

    /// A handle for the HTTP API.
    pub fn api_handle(&self) -> DaemonHandle {
        DaemonHandle {
            metrics: self.pipeline.metrics.clone(),
            rules: self.rules.clone(),
            reload_status: self.reloader.status.clone(),
            reload: self.reloader.requester(),
            engine_alive: self.pipeline.engine_alive(),
            store_path: self.store_path.clone(),
        }
    }

    pub fn stats(&self) -> crate::pipeline::StatsSnapshot {
        self.pipeline.stats.snapshot()
    }

    /// The daemon's metrics registry.
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.pipeline.metrics.clone()
    }

    /// Whether the source has finished (`once`, or the pipeline stopped).
    pub fn source_finished(&self) -> bool {
        match &self.source {
            DaemonSource::Files { thread, .. } => thread.is_finished(),
            DaemonSource::Kafka(source) => source.is_finished(),
        }
    }

    /// Reload the rules now (SIGHUP).
    pub fn reload(&self) {
        self.reloader.request();
    }

    /// The rule set's reload status.
    pub fn reload_status(&self) -> crate::reload::ReloadStatus {
        self.reloader
            .status
            .lock()
            .map(|status| status.clone())
            .unwrap_or_default()
    }

    /// Stop intake, drain and commit. Blocking: call from a blocking context.
    pub fn shutdown(self) -> PipelineReport {
        self.reloader.stop();
        for job in self.housekeeping {
            job.stop();
        }
        match self.source {
            DaemonSource::Files { thread, wake, stop } => {
                stop.store(true, Ordering::SeqCst);
                let _ = wake.send(WatchMessage::Shutdown);
                let _ = thread.join();
            }
            DaemonSource::Kafka(source) => source.stop(),
        }
        self.pipeline.finish()
    }
}

/// The daemon's sink: matches are logged at debug level (alarms are in the
/// store), with the access key masked in the output text.
struct LogSink;

impl MatchSink for LogSink {
    fn on_match(&mut self, rule: &Rule, rule_match: &RuleMatch, event: &AuditEvent, _: &RuleSet) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let output = match event.access_key_id() {
            Some(key) => mask_key_in_text(&rule_match.output, key),
            None => rule_match.output.clone(),
        };
        tracing::debug!(rule = %rule.id, level = %rule.level, event = %event.event_id, origin = %event.origin, "{output}");
    }
}
