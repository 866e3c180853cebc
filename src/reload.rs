//! Hot reload of the rule set.
//!
//! A dedicated thread waits for a trigger — a change in the rules directory
//! or an override file (filesystem notifications), or SIGHUP — then loads and
//! fully checks the new set off the hot path (every load problem, every
//! embedded test). Only a set with no problems is swapped in, atomically
//! (`ArcSwap`); otherwise the running set stays and the error is logged and
//! kept in `ReloadStatus` for the API. The engine takes the current set once
//! per transaction, so every event is evaluated exactly once, by one version.
//!
//! On a shared PostgreSQL store every member also follows the change log: when
//! another member records a rule set other than the one running here (it
//! reloaded after a file change, SIGHUP or the API), this member reloads its
//! own rule files too, so one request reaches the whole cluster. A member whose
//! files still give another version says so once per recorded set.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::Watcher;
use serde::Serialize;

use crate::config::Settings;
use crate::rules::SharedRules;
use crate::ruleset::check_rule_set;

/// What asked for a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    FileChange,
    Signal,
    /// `POST /api/v1/rules/reload`, by the token of this name.
    Api(String),
    /// On a shared PostgreSQL store: another member recorded a rule set
    /// (change `change` of the change log) other than the one running here.
    Cluster {
        change: i64,
    },
    Shutdown,
}

/// The state of the rule set, for logs and (later) the API.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReloadStatus {
    /// Version (hash) of the running set.
    pub version: String,
    pub rules: usize,
    /// Reload attempts since start (successful, unchanged or failed), each
    /// counted when it is over, the rule set recorded in the change log.
    pub attempts: u64,
    /// Successful reloads since start.
    pub reloads: u64,
    pub failures: u64,
    /// The last failed reload's problems, cleared by the next success.
    pub last_error: Option<String>,
    /// Wall-clock time of the last attempt (RFC 3339).
    pub last_attempt: Option<String>,
}

/// A running reloader.
pub struct Reloader {
    trigger: Sender<Trigger>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub status: Arc<Mutex<ReloadStatus>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Reloader {
    /// `store`: where reloads that change the rule set are recorded (the
    /// change log), if anywhere.
    pub fn start(settings: Settings, rules: SharedRules, store: Option<std::path::PathBuf>) -> Reloader {
        let (trigger, receiver) = std::sync::mpsc::channel();
        let current = rules.load();
        let status = Arc::new(Mutex::new(ReloadStatus {
            version: current.version.clone(),
            rules: current.rules.len(),
            ..ReloadStatus::default()
        }));
        let watcher = if settings.rules.watch {
            watch_paths(&settings, trigger.clone())
        } else {
            None
        };
        let thread = {
            let status = status.clone();
            std::thread::Builder::new()
                .name("tw-reload".into())
                .spawn(move || reload_loop(settings, rules, receiver, status, store))
                .ok()
        };
        Reloader {
            trigger,
            thread,
            status,
            _watcher: watcher,
        }
    }

    /// Ask for a reload (SIGHUP).
    pub fn request(&self) {
        let _ = self.trigger.send(Trigger::Signal);
    }

    /// A handle that asks for reloads from elsewhere (the HTTP API).
    pub fn requester(&self) -> ReloadRequester {
        ReloadRequester(self.trigger.clone())
    }

    pub fn stop(mut self) {
        let _ = self.trigger.send(Trigger::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Asks the reloader for a reload; cheap to clone.
#[derive(Clone, Debug)]
pub struct ReloadRequester(Sender<Trigger>);

impl ReloadRequester {
    /// Ask for a reload; false when the reloader has stopped.
    pub fn request(&self, trigger: Trigger) -> bool {
        self.0.send(trigger).is_ok()
    }
}

fn watch_paths(settings: &Settings, trigger: Sender<Trigger>) -> Option<notify::RecommendedWatcher> {
    let mut watcher = match notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        if let Ok(event) = result
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            let _ = trigger.send(Trigger::FileChange);
        }
    }) {
        Ok(watcher) => watcher,
        Err(error) => {
            tracing::warn!(%error, "cannot watch the rules; reload with SIGHUP");
            return None;
        }
    };
    let mut paths: Vec<PathBuf> = vec![settings.rules.dir.clone()];
    paths.extend(settings.rules.overrides.iter().cloned());
    paths.extend(settings.rules.sigma_dirs.iter().cloned());
    let mut watched = Vec::new();
    for path in paths {
        match watcher.watch(&path, notify::RecursiveMode::Recursive) {
            Ok(()) => watched.push(path.display().to_string()),
            Err(error) => tracing::warn!(path = %path.display(), %error, "cannot watch; reload with SIGHUP"),
        }
    }
    tracing::info!(paths = %watched.join(", "), "watching the rules for changes");
    Some(watcher)
}

fn reload_loop(
    settings: Settings,
    rules: SharedRules,
    receiver: Receiver<Trigger>,
    status: Arc<Mutex<ReloadStatus>>,
    store: Option<std::path::PathBuf>,
) {
    let mut cluster = store
        .as_ref()
        .filter(|path| crate::db::StoreLocation::from_path(path).is_postgres())
        .map(|path| ClusterRules::new(path.clone(), crate::options::store_options(&settings)));
    loop {
        let trigger = match &mut cluster {
            None => match receiver.recv() {
                Ok(trigger) => trigger,
                Err(_) => return,
            },
            Some(cluster) => match receiver.recv_timeout(CLUSTER_POLL) {
                Ok(trigger) => trigger,
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => match cluster.recorded_elsewhere(&rules.load().version) {
                    Some(change) => Trigger::Cluster { change },
                    None => continue,
                },
            },
        };
        if trigger == Trigger::Shutdown {
            return;
        }
        // Editors write files in several steps: wait for the burst to end.
        loop {
            match receiver.recv_timeout(Duration::from_millis(300)) {
                Ok(Trigger::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        let installed = reload_once(&settings, &rules, &status, &trigger);
        if let (Trigger::Cluster { change }, Some(cluster)) = (&trigger, &mut cluster) {
            cluster.reloaded(*change, &rules.load().version);
        }
        if installed && let Some(path) = &store {
            let cluster_name;
            let (name, via) = match &trigger {
                Trigger::FileChange => ("rules directory", "reload (file change)"),
                Trigger::Signal => ("SIGHUP", "reload (signal)"),
                Trigger::Api(token) => (token.as_str(), "api (POST /api/v1/rules/reload)"),
                Trigger::Cluster { change } => {
                    cluster_name = format!("change {change}");
                    (cluster_name.as_str(), "reload (another member's rule set)")
                }
                Trigger::Shutdown => ("shutdown", "reload"),
            };
            let actor = crate::alarm::changes::Actor {
                name: name.into(),
                via: via.into(),
            };
            crate::alarm::rule_changes::record_at(
                path,
                crate::options::store_options(&settings),
                &rules.load(),
                &actor,
            );
        }
        // Counted once the attempt is over, its change-log entry included:
        // the API answers a reload when this moves.
        if let Ok(mut status) = status.lock() {
            status.attempts += 1;
        }
    }
}

/// How often a member of a shared store looks for rule sets recorded by the others.
const CLUSTER_POLL: Duration = Duration::from_secs(2);

/// The rule sets other members of a shared PostgreSQL store record in the
/// change log, as this member's reloader follows them.
struct ClusterRules {
    path: PathBuf,
    options: crate::alarm::store::StoreOptions,
    /// Opened on the reloader's thread when first needed (the PostgreSQL
    /// client must not be made on the async runtime); dropped on an error and
    /// opened again at the next look.
    store: Option<crate::alarm::store::Store>,
    /// The last rule-set change looked at.
    seen: Option<i64>,
}

impl ClusterRules {
    fn new(path: PathBuf, options: crate::alarm::store::StoreOptions) -> ClusterRules {
        ClusterRules {
            path,
            options,
            store: None,
            seen: None,
        }
    }

    /// The newest rule-set change recorded since the last look, if it names a
    /// version other than `running`. The first look only notes where the log is.
    fn recorded_elsewhere(&mut self, running: &str) -> Option<i64> {
        if self.store.is_none() {
            match crate::alarm::store::Store::open(&self.path, self.options.clone()) {
                Ok(store) => self.store = Some(store),
                Err(error) => {
                    tracing::debug!(%error, "cannot read the shared change log for rule sets; trying again");
                    return None;
                }
            }
        }
        let store = self.store.as_ref()?;
        let last = match crate::alarm::rule_changes::last_recorded_version(store) {
            Ok(last) => last,
            Err(error) => {
                tracing::debug!(%error, "cannot read the shared change log for rule sets; trying again");
                self.store = None;
                return None;
            }
        };
        let (change, version) = last?;
        let first_look = self.seen.is_none();
        if self.seen == Some(change) {
            return None;
        }
        self.seen = Some(change);
        (!first_look && version != running).then_some(change)
    }

    /// After a reload for `change`: whether this member now runs its version.
    fn reloaded(&mut self, change: i64, running: &str) {
        let recorded = self
            .store
            .as_ref()
            .and_then(|store| crate::alarm::rule_changes::last_recorded_version(store).ok().flatten());
        if let Some((last, version)) = recorded
            && last == change
            && version != running
        {
            tracing::warn!(
                change,
                recorded = %version,
                running = %running,
                "another member runs a rule set this member's rule files do not give: give every member the same files"
            );
        }
    }
}

/// Load, check and (when clean and different) install a new rule set;
/// whether it installed one.
pub fn reload_once(
    settings: &Settings,
    rules: &SharedRules,
    status: &Arc<Mutex<ReloadStatus>>,
    trigger: &Trigger,
) -> bool {
    let attempt = crate::alarm::store::timestamp(chrono::Utc::now());
    // Refreshed address lists take effect with the reload, rules changed or not.
    crate::iplists::install(&settings.ip_lists);
    let result = check_rule_set(settings, None);
    let Ok(mut status) = status.lock() else { return false };
    status.last_attempt = Some(attempt);
    match result {
        Ok(new_set) => {
            status.last_error = None;
            if new_set.version == rules.load().version {
                tracing::info!(version = %new_set.version, ?trigger, "rules unchanged");
                return false;
            }
            status.version = new_set.version.clone();
            status.rules = new_set.rules.len();
            status.reloads += 1;
            tracing::info!(version = %new_set.version, rules = new_set.rules.len(), ?trigger, "rules reloaded");
            rules.store(Arc::new(new_set));
            true
        }
        Err(error) => {
            status.failures += 1;
            let text = error.to_string();
            tracing::error!(?trigger, "rule reload failed; the running rules stay in place:\n{text}");
            status.last_error = Some(text);
            false
        }
    }
}
