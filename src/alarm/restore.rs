//! `store restore`: installing a backup, verified before it replaces
//! anything.
//!
//! The backup is copied next to the store, migrated (a backup made by an
//! older build is brought up to date like any store) and its hash chain
//! verified; a backup that fails verification is refused and the store is
//! left as it was. The store must not be in use: the restore takes SQLite's
//! exclusive lock, which no other connection may hold (in WAL mode every
//! open connection, the daemon's included, keeps it from being taken). The
//! store as it was is kept beside it (`<store>.before-restore-<time>.db`),
//! then the backup's pages are written into it with SQLite's backup API,
//! under that lock, through the store's own journal.
//!
//! A PostgreSQL target is restored into an empty database only (create one,
//! restore, then point the daemons at it): the verified copy is written into
//! it in one transaction, and a database that already holds a store is
//! refused, so a shared store is never replaced under running daemons.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::chain::Verification;
use super::schema::MIGRATIONS;
use super::store::{Store, StoreOptions, sibling};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{path} is not a trailwarden store: {reason}")]
    NotAStore { path: PathBuf, reason: String },
    #[error(
        "{path} was written by a newer trailwarden (store version {version}; this build knows {known}); restore it with that build"
    )]
    Newer { path: PathBuf, version: i64, known: usize },
    #[error("{path} fails verification ({problems} problems; the first: {first}); nothing was restored")]
    Broken {
        path: PathBuf,
        problems: usize,
        first: String,
    },
    #[error("{path} is in use (is the daemon running?); stop everything that has it open, then restore")]
    InUse { path: PathBuf },
    #[error("{context}: {source}")]
    Sqlite { context: String, source: rusqlite::Error },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// The backup's verification, after migrating it.
    pub verification: Verification,
    /// The store version the backup was at.
    pub backup_version: i64,
    /// Where the replaced store was kept (none when there was no store).
    pub previous: Option<PathBuf>,
}

fn sqlite(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> RestoreError {
    let context = context.into();
    move |source| RestoreError::Sqlite { context, source }
}

fn copy_with_backup_api(from: &Connection, to: &mut Connection, context: &str) -> Result<(), RestoreError> {
    rusqlite::backup::Backup::new(from, to)
        .and_then(|backup| backup.run_to_completion(1024, Duration::from_millis(5), None))
        .map_err(sqlite(context))
}

/// Verify `backup` and install it as the store at `target`.
pub fn restore(backup: &Path, target: &Path, options: StoreOptions) -> Result<Restored, RestoreError> {
    let source = Connection::open_with_flags(
        backup,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(format!("opening the backup {}", backup.display())))?;
    let not_a_store = |reason: String| RestoreError::NotAStore {
        path: backup.to_path_buf(),
        reason,
    };
    let backup_version: i64 = source
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|error| not_a_store(error.to_string()))?;
    let has_chain = source
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('alarms', 'chain')",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map_err(|error| not_a_store(error.to_string()))?
        == 2;
    if !has_chain {
        return Err(not_a_store("it has no alarms and no hash chain".into()));
    }
    if backup_version > MIGRATIONS.len() as i64 {
        return Err(RestoreError::Newer {
            path: backup.to_path_buf(),
            version: backup_version,
            known: MIGRATIONS.len(),
        });
    }
    let postgres = crate::db::StoreLocation::from_path(target).is_postgres();
    // A working copy beside the store (for a PostgreSQL store, in a
    // temporary directory), migrated and verified.
    let scratch = if postgres {
        Some(tempfile::tempdir().map_err(|source| RestoreError::Io {
            context: "creating a temporary directory for the restore".into(),
            source,
        })?)
    } else {
        None
    };
    let staging = match &scratch {
        Some(dir) => dir.path().join("restoring.db"),
        None => sibling(target, ".restoring"),
    };
    remove_store_files(&staging)?;
    {
        let mut copy = Connection::open(&staging).map_err(sqlite(format!("creating {}", staging.display())))?;
        copy_with_backup_api(&source, &mut copy, "copying the backup")?;
    }
    drop(source);
    let verification = match Store::open(&staging, options.clone()).and_then(|store| store.verify_chain(None)) {
        Ok(verification) => verification,
        Err(error) => {
            remove_store_files(&staging)?;
            return Err(error.into());
        }
    };
    if !verification.ok() {
        remove_store_files(&staging)?;
        return Err(RestoreError::Broken {
            path: backup.to_path_buf(),
            problems: verification.problems.len(),
            first: verification.problems[0].to_string(),
        });
    }
    if postgres {
        // Into an empty database only: a shared store in use is not
        // replaced under its daemons (`copy` refuses a database with rows).
        let copied = super::copy::copy_store(&staging, target, options);
        remove_store_files(&staging)?;
        copied?;
        return Ok(Restored {
            verification,
            backup_version,
            previous: None,
        });
    }
    let previous = if target.exists() {
        Some(replace(&staging, target)?)
    } else {
        std::fs::rename(&staging, target).map_err(|source| RestoreError::Io {
            context: format!("moving the restored store to {}", target.display()),
            source,
        })?;
        None
    };
    remove_store_files(&staging)?;
    Ok(Restored {
        verification,
        backup_version,
        previous,
    })
}

/// Under the target's exclusive lock: keep it as it was, then write the
/// staged store's pages into it. Returns where the old store was kept.
fn replace(staging: &Path, target: &Path) -> Result<PathBuf, RestoreError> {
    let mut store = Connection::open(target).map_err(sqlite(format!("opening {}", target.display())))?;
    let in_use = |error: rusqlite::Error| match error {
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(
                failure.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            RestoreError::InUse {
                path: target.to_path_buf(),
            }
        }
        other => RestoreError::Sqlite {
            context: format!("locking {}", target.display()),
            source: other,
        },
    };
    store
        .busy_timeout(Duration::from_millis(500))
        .map_err(sqlite("setting the busy timeout"))?;
    store
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; SELECT count(*) FROM sqlite_schema; COMMIT;")
        .map_err(in_use)?;
    let kept = sibling(
        target,
        &format!(".before-restore-{}.db", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")),
    );
    {
        let mut copy = Connection::open(&kept).map_err(sqlite(format!("creating {}", kept.display())))?;
        copy_with_backup_api(&store, &mut copy, "keeping the store as it was")?;
    }
    let staged = Connection::open_with_flags(staging, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite(format!("opening {}", staging.display())))?;
    copy_with_backup_api(&staged, &mut store, "writing the backup into the store")?;
    Ok(kept)
}

/// A database file and its WAL and shared-memory files, if there.
fn remove_store_files(path: &Path) -> Result<(), RestoreError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = sibling(path, suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(RestoreError::Io {
                    context: format!("removing {}", file.display()),
                    source,
                });
            }
        }
    }
    Ok(())
}
