//! The delivery worker: a task on the daemon's runtime that, every
//! `notify.poll_interval`, admits queued messages (rate limits, digests),
//! sends what is due — subscriptions in parallel, each subscription's
//! deliveries in order — and records the results. Store work runs on the
//! blocking pool; on PostgreSQL, daemons sharing the store claim what they
//! send (`outbox::due`), so each delivery goes out once cluster-wide. A transient failure reschedules the delivery with backoff
//! and defers the rest of that subscription's queue for this round; a
//! stopping daemon drains what is due for at most `notify.drain_timeout`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use super::NotifyError;
use super::config::{NotifySettings, Subscription, Target};
use super::email::Mailer;
use super::outbox::{self, Due, Outcome};
use super::render::{Notice, Templates, load_notice};
use super::webhook::WebhookSender;
use crate::alarm::assets::Directory;
use crate::alarm::store::{Store, StoreError, StoreOptions};
use crate::metrics::{DeliveryLabels, Metrics};
use crate::rules::SharedRules;

/// A due delivery with its notice (or why it could not be built).
type Prepared = (Due, Result<Notice, String>);

/// Deliveries taken per round.
const ROUND_LIMIT: u32 = 200;

/// The senders for every channel, shared by the worker and `notify test`.
pub struct Channels {
    pub templates: Templates,
    pub mailer: Option<Mailer>,
    pub webhooks: WebhookSender,
}

impl Channels {
    /// Build the channels and check the templates.
    pub fn new(settings: &NotifySettings) -> Result<Channels, NotifyError> {
        let mailer = match &settings.smtp {
            Some(smtp) => Some(Mailer::new(smtp)?),
            None => None,
        };
        Ok(Channels {
            templates: Templates::load(settings)?,
            mailer,
            webhooks: WebhookSender::new()?,
        })
    }

    /// Send a notice to one subscription.
    pub async fn send(&self, settings: &NotifySettings, subscription: &Subscription, notice: &Notice) -> Outcome {
        match &subscription.target {
            Target::Email { to } => {
                let Some(mailer) = &self.mailer else {
                    return Outcome::Failed {
                        error: "email subscription but no [notify.smtp]".into(),
                        status: None,
                        permanent: true,
                    };
                };
                match self.templates.render(notice, settings) {
                    Ok(email) => mailer.send(to, &email, &notice.delivery_id).await,
                    Err(error) => Outcome::Failed {
                        error: error.to_string(),
                        status: None,
                        permanent: true,
                    },
                }
            }
            Target::Webhook(hook) => self.webhooks.send(hook, notice).await,
        }
    }
}

struct Context {
    settings: Arc<NotifySettings>,
    /// The worker's own store connection, opened on the blocking pool at
    /// the first round (a PostgreSQL client must not be made on the runtime).
    store: Mutex<Option<Store>>,
    store_path: PathBuf,
    store_options: StoreOptions,
    rules: Option<SharedRules>,
    channels: Channels,
    metrics: Arc<Metrics>,
}

/// The running worker.
pub struct Notifier {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Notifier {
    /// Start the worker on the current tokio runtime.
    pub fn start(
        settings: Arc<NotifySettings>,
        store_path: PathBuf,
        store_options: StoreOptions,
        rules: Option<SharedRules>,
        metrics: Arc<Metrics>,
    ) -> Result<Notifier, NotifyError> {
        let channels = Channels::new(&settings)?;
        let context = Arc::new(Context {
            settings,
            store: Mutex::new(None),
            store_path,
            store_options,
            rules,
            channels,
            metrics,
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(context, stopped));
        Ok(Notifier { stop, task })
    }

    /// Stop: send what is due (for at most `notify.drain_timeout`), then end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(context: Arc<Context>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let poll = context.settings.poll_interval;
    let mut failing = false;
    loop {
        match round(&context, false).await {
            Ok(_) => failing = false,
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "notification round failed; retrying every poll interval");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stopped.changed() => break,
        }
    }
    let drain = async {
        loop {
            match round(&context, true).await {
                Ok(0) => break,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(%error, "notification drain failed");
                    break;
                }
            }
        }
    };
    if tokio::time::timeout(context.settings.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            timeout = ?context.settings.drain_timeout,
            "notifications still being sent at shutdown; pending ones are sent after the restart"
        );
    }
}

/// One round: admit, send what is due, record. Returns the attempts made.
async fn round(context: &Arc<Context>, flush: bool) -> Result<usize, NotifyError> {
    let prepared = {
        let context = context.clone();
        tokio::task::spawn_blocking(move || prepare(&context, flush))
            .await
            .map_err(|error| NotifyError::Setup(format!("notification worker: {error}")))??
    };
    if prepared.is_empty() {
        return Ok(0);
    }
    // Subscriptions in parallel; each subscription's deliveries in order.
    let mut groups: Vec<((String, String), Vec<Prepared>)> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for (due, notice) in prepared {
        let key = (due.topic.clone(), due.subscription.clone());
        let slot = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push((due, notice));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for ((topic, subscription), items) in groups {
        let context = context.clone();
        tasks.spawn(async move { send_group(&context, &topic, &subscription, items).await });
    }
    let mut results: Vec<(Due, Outcome)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(group) => results.extend(group),
            Err(error) => tracing::error!(%error, "a notification task failed"),
        }
    }
    let attempts = results
        .iter()
        .filter(|(_, outcome)| !matches!(outcome, Outcome::Deferred { .. }))
        .count();
    let recorder = context.clone();
    tokio::task::spawn_blocking(move || record(&recorder, results))
        .await
        .map_err(|error| NotifyError::Setup(format!("notification worker: {error}")))??;
    Ok(attempts)
}

/// Admit and digest, then load the due deliveries with their notices.
fn prepare(context: &Context, flush: bool) -> Result<Vec<Prepared>, NotifyError> {
    with_store(context, |store| prepare_in(context, store, flush))
}

/// Run `job` on the worker's store connection, opening it first if needed.
fn with_store<T>(context: &Context, job: impl FnOnce(&mut Store) -> Result<T, NotifyError>) -> Result<T, NotifyError> {
    let mut slot = context
        .store
        .lock()
        .map_err(|_| NotifyError::Setup("the notification store lock is poisoned".into()))?;
    let store = match slot.as_mut() {
        Some(store) => store,
        None => slot.insert(
            Store::open(&context.store_path, context.store_options.clone())
                .map_err(|error| NotifyError::Setup(error.to_string()))?,
        ),
    };
    job(store)
}

fn prepare_in(context: &Context, store: &mut Store, flush: bool) -> Result<Vec<Prepared>, NotifyError> {
    let admission = if store.with_db(outbox::admission_due)? {
        store.transact(Some(outbox::OUTBOX_LOCK), |db| {
            outbox::admit(db, &context.settings, flush).map_err(StoreError::from)
        })?
    } else {
        outbox::Admission::default()
    };
    context.metrics.notify.folded.inc_by(admission.folded);
    context.metrics.notify.digests.inc_by(admission.digests);
    if admission.folded > 0 || admission.digests > 0 {
        tracing::info!(
            admitted = admission.admitted,
            folded = admission.folded,
            digests = admission.digests,
            "notifications over a topic's rate limit are folded into digests"
        );
    }
    // On PostgreSQL, daemons share the outbox: what is due is claimed, under
    // the outbox lock, so each delivery goes out from one daemon.
    let lease_ms = i64::try_from(context.settings.claim_lease.as_millis()).unwrap_or(i64::MAX / 2);
    let due = if store.is_postgres() {
        store.transact(Some(outbox::OUTBOX_LOCK), |db| {
            outbox::due(db, ROUND_LIMIT, lease_ms).map_err(StoreError::from)
        })?
    } else {
        store.with_db(|db| outbox::due(db, ROUND_LIMIT, lease_ms))?
    };
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let rules = context.rules.as_ref().map(|rules| rules.load_full());
    let directory = store.read(|db| Directory::load(db).map_err(|error| NotifyError::Setup(error.to_string())))?;
    // A message goes to every subscription of its topic: build its notice once.
    let mut notices: HashMap<i64, Result<Notice, String>> = HashMap::new();
    Ok(due
        .into_iter()
        .map(|due| {
            let notice = notices
                .entry(due.message_id)
                .or_insert_with(|| {
                    load_notice(store, &directory, &due, &context.settings, rules.as_deref())
                        .map_err(|error| error.to_string())
                })
                .clone()
                .map(|mut notice| {
                    notice.delivery_id = due.delivery_id.clone();
                    notice
                });
            (due, notice)
        })
        .collect())
}

async fn send_group(context: &Context, topic: &str, subscription: &str, items: Vec<Prepared>) -> Vec<(Due, Outcome)> {
    let settings = &context.settings;
    let target = settings.topic(topic).and_then(|topic| {
        topic
            .subscriptions
            .iter()
            .find(|candidate| candidate.name == subscription)
    });
    let mut results = Vec::with_capacity(items.len());
    let mut deferred_until: Option<i64> = None;
    for (due, notice) in items {
        if let Some(until_ms) = deferred_until {
            results.push((due, Outcome::Deferred { until_ms }));
            continue;
        }
        let outcome = match (target, notice) {
            (None, _) => Outcome::Failed {
                error: format!("subscription \"{subscription}\" of topic \"{topic}\" is no longer configured"),
                status: None,
                permanent: true,
            },
            (Some(_), Err(error)) => Outcome::Failed {
                error: format!("cannot build the notification: {error}"),
                status: None,
                permanent: true,
            },
            (Some(target), Ok(notice)) => context.channels.send(settings, target, &notice).await,
        };
        let channel = target.map(Subscription::channel).unwrap_or("webhook");
        let result = match &outcome {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Failed { permanent: true, .. } => "failed",
            Outcome::Failed { .. } => "retry",
            Outcome::Deferred { .. } => "deferred",
        };
        context
            .metrics
            .notify
            .attempts
            .get_or_create(&DeliveryLabels {
                channel: channel.into(),
                result: result.into(),
            })
            .inc();
        if let Outcome::Failed {
            error,
            permanent: false,
            ..
        } = &outcome
        {
            let delay = outbox::backoff_ms(settings, due.attempts + 1, &due.delivery_id);
            deferred_until = Some(Utc::now().timestamp_millis() + delay);
            tracing::warn!(
                topic,
                subscription,
                delivery = %due.delivery_id,
                attempt = due.attempts + 1,
                retry_in = ?Duration::from_millis(delay.max(0) as u64),
                "notification not delivered: {error}"
            );
        } else if let Outcome::Failed { error, .. } = &outcome {
            tracing::error!(topic, subscription, delivery = %due.delivery_id, "notification failed for good: {error}");
        } else {
            tracing::debug!(topic, subscription, delivery = %due.delivery_id, "notification delivered");
        }
        results.push((due, outcome));
    }
    results
}

fn record(context: &Context, results: Vec<(Due, Outcome)>) -> Result<(), NotifyError> {
    with_store(context, |store| record_in(context, store, &results))
}

fn record_in(context: &Context, store: &mut Store, results: &[(Due, Outcome)]) -> Result<(), NotifyError> {
    store.transact(None, |db| {
        outbox::record(db, &context.settings, results).map_err(StoreError::from)
    })?;
    let counts = store.with_db(outbox::counts)?;
    let count = |status: &str| {
        counts
            .iter()
            .find(|(name, _)| name == status)
            .map(|(_, count)| *count)
            .unwrap_or(0)
    };
    context.metrics.notify.pending.set(count("pending"));
    context.metrics.notify.failed.set(count("failed"));
    Ok(())
}

/// `trailwarden notify test TOPIC`: send a sample alarm through every
/// subscription of the topic, directly (not through the outbox).
pub async fn send_test(settings: &NotifySettings, topic: &str) -> Result<Vec<(String, Outcome)>, NotifyError> {
    let topic = settings.topic(topic).ok_or_else(|| {
        let names: Vec<&str> = settings.topics.iter().map(|topic| topic.name.as_str()).collect();
        NotifyError::Setup(format!(
            "there is no topic \"{topic}\" (configured: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))
    })?;
    let channels = Channels::new(settings)?;
    let mut results = Vec::new();
    for subscription in &topic.subscriptions {
        let delivery_id = format!("tw-test-{}", Utc::now().timestamp_nanos_opt().unwrap_or_default());
        let notice = super::samples::sample_notice(settings, &topic.name, delivery_id);
        let outcome = channels.send(settings, subscription, &notice).await;
        results.push((subscription.name.clone(), outcome));
    }
    Ok(results)
}
