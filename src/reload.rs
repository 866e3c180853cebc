//! Hot reload of the rule set.
//!
//! A dedicated thread waits for a trigger — a change in the rules directory
//! or an override file (filesystem notifications), or SIGHUP — then loads and
//! fully checks the new set off the hot path (every load problem, every
//! embedded test). Only a set with no problems is swapped in, atomically
//! (`ArcSwap`); otherwise the running set stays and the error is logged and
//! kept in `ReloadStatus` for the API. The engine takes the current set once
//! per transaction, so every event is evaluated exactly once, by one version.

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
    while let Ok(trigger) = receiver.recv() {
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
        if reload_once(&settings, &rules, &status, &trigger)
            && let Some(path) = &store
        {
            let (name, via) = match &trigger {
                Trigger::FileChange => ("rules directory", "reload (file change)"),
                Trigger::Signal => ("SIGHUP", "reload (signal)"),
                Trigger::Api(token) => (token.as_str(), "api (POST /api/v1/rules/reload)"),
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
