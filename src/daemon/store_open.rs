//! Opening the daemon's store, waiting while its filesystem cannot be
//! written.
//!
//! A store on a filesystem that is read-only (a volume the kernel remounted
//! read-only after an error, or that came up read-only) or full cannot be
//! opened: SQLite cannot create its WAL and shared-memory files or finish a
//! migration. The daemon then says so, keeps systemd's start timeout at bay,
//! and retries with backoff until the filesystem takes writes again — the
//! same wait as a running daemon's store stall (`pipeline::retry`), at start
//! where nothing has been read yet. Every other failure to open (a missing
//! directory, a file that is not a store, a newer schema) fails the start at
//! once, as a misconfiguration should.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::alarm::store::{Store, StoreError, StoreOptions};

/// Why the directory holding `store` takes no writes, if that is the case:
/// a probe file is created and removed there. `None` for a PostgreSQL URL
/// (its server's outages are waited out by the pipeline's retries).
pub(crate) fn unwritable_filesystem(store: &Path) -> Option<&'static str> {
    if crate::db::location::is_postgres_url(&store.to_string_lossy()) {
        return None;
    }
    let dir = match store.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".trailwarden-write-probe-{}", std::process::id()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe);
    match result {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(error) => match error.kind() {
            std::io::ErrorKind::ReadOnlyFilesystem => Some("read-only"),
            std::io::ErrorKind::StorageFull => Some("full"),
            _ => None,
        },
    }
}

/// Open the store at `path`. With `wait`, a filesystem that is read-only or
/// full is waited out (retried every 0.2 s, backing off to 5 s; an error logged
/// every 30 s); without it that is `StoreError::Unwritable`, and any other
/// failure is returned as it is.
pub(super) fn open_waiting(path: &Path, options: &StoreOptions, wait: bool) -> Result<Store, StoreError> {
    const LOG_EVERY: Duration = Duration::from_secs(30);
    const LONGEST_WAIT: Duration = Duration::from_secs(5);
    let mut delay = Duration::from_millis(200);
    let mut since: Option<Instant> = None;
    let mut logged: Option<Instant> = None;
    loop {
        // Checked before opening too: SQLite opens a store whose WAL files
        // are still there on a read-only filesystem, and the first write, or
        // the console's token file beside it, would fail later.
        let reason = match unwritable_filesystem(path) {
            Some(reason) => reason,
            None => match Store::open(path, options.clone()) {
                Ok(store) => {
                    if let Some(since) = since {
                        tracing::warn!(
                            path = %path.display(),
                            waited_seconds = since.elapsed().as_secs_f64(),
                            "the store's filesystem is writable again; starting"
                        );
                    }
                    return Ok(store);
                }
                // The filesystem may have turned read-only or full since the probe.
                Err(error) => unwritable_filesystem(path).ok_or(error)?,
            },
        };
        if !wait {
            return Err(StoreError::Unwritable {
                path: path.to_path_buf(),
                reason,
            });
        }
        since.get_or_insert_with(Instant::now);
        if logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            tracing::error!(
                path = %path.display(),
                "the store's filesystem is {reason}: waiting for it to take writes before starting \
                 (nothing is read until then)"
            );
            super::systemd::still_starting(&format!("waiting: the store's filesystem is {reason}"), LOG_EVERY * 2);
            logged = Some(Instant::now());
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(LONGEST_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_directory_is_not_reported_and_the_probe_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store.db");
        assert_eq!(unwritable_filesystem(&store), None);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no probe left behind"
        );
    }

    #[test]
    fn a_missing_directory_is_a_misconfiguration_not_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the store's directory should be.
        std::fs::write(dir.path().join("file"), b"").unwrap();
        let store = dir.path().join("file/store.db");
        assert_eq!(unwritable_filesystem(&store), None);
        let options = StoreOptions::default();
        let started = Instant::now();
        let error = open_waiting(&store, &options, true).err().expect("no store");
        assert!(matches!(error, StoreError::Directory { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5), "it did not wait");
    }
}
