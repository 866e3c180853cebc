//! The error of the application layer (the daemon's wiring, replays, the
//! query service, rule-set loading): every failure a command or an API call
//! can report, each naming where it came from.

use std::path::PathBuf;

use crate::alarm::allowlist::AllowlistError;
use crate::alarm::assets::AssetsError;
use crate::alarm::store::StoreError;
use crate::config::ConfigError;
use crate::rules::diag::Diagnostics;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("rules in {dir} did not load ({} problem{}):\n{diagnostics}", diagnostics.len(), if diagnostics.len() == 1 { "" } else { "s" })]
    Rules { dir: String, diagnostics: Diagnostics },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: no such file or directory")]
    MissingPath { path: PathBuf },
    #[error(
        "no alarm store at {} ({given}): nothing was created; check the path (`run`, `replay --db` and the commands that add data create a store)",
        path.display()
    )]
    NoStore {
        /// Absolute, so a mistyped relative path is obvious.
        path: PathBuf,
        /// Where the path came from: `--db` or `store.path` in a config.
        given: String,
    },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("alarm {0} not found")]
    AlarmNotFound(i64),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Kafka(#[from] crate::source::kafka::KafkaSourceError),
    #[error(transparent)]
    Allowlist(#[from] AllowlistError),
    #[error(transparent)]
    Assets(#[from] AssetsError),
    #[error("{0}")]
    Notify(String),
    #[error(transparent)]
    Actor(#[from] crate::alarm::changes::BadActor),
    #[error("{0}")]
    Forbidden(String),
    #[error("starting the HTTP API: {0}")]
    /// The API server could not start (its address in use, a bad token file …).
    Api(String),
    #[error("the store failed: {0}")]
    StoreFailed(StoreError),
    #[error("shutdown failed: {0}")]
    Shutdown(String),
}

impl From<rusqlite::Error> for AppError {
    fn from(error: rusqlite::Error) -> AppError {
        AppError::Store(StoreError::Query(error))
    }
}
