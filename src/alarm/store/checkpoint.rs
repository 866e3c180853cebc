//! WAL checkpoints on their own thread, for the pipeline's writer.
//!
//! SQLite's default checkpoints run on the connection that commits: once the
//! write-ahead log passes 1 000 pages, the commit that crossed it copies them
//! into the database file before it returns. For the pipeline's store stage,
//! the one serial stage of a `--db` replay or of the daemon, that copy was a
//! third of its time (perf, 200 000 generated events).
//!
//! With `Store::checkpoint_in_background`, the writer's commits only nudge a
//! `tw-checkpoint` thread, which copies the log on its own connection while
//! the writer goes on (a passive checkpoint takes no lock the writer needs).
//! The log starts over only when a checkpoint has copied all of it before the
//! writer's next transaction, which a checkpoint running beside the writer
//! rarely manages; so once the log passes `INLINE_PAGES` the writer copies the
//! rest itself after its commit, as SQLite did, and that rest is only what the
//! background thread has not copied yet. A checkpoint that fails (a full or
//! read-only disk) is logged and tried again at the next nudge; the commits
//! it follows have happened and stay committed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::wal::CheckpointMode;

/// Log pages at which a commit nudges the background thread (SQLite's own
/// autocheckpoint threshold).
pub const NUDGE_PAGES: i32 = 1000;

/// Log pages at which the writer finishes the checkpoint itself, so that the
/// log starts over (16 MB with 4 KiB pages).
pub const INLINE_PAGES: i32 = 4000;

/// What the log's file is cut back to when the log starts over: about what
/// SQLite's own checkpoints let it reach (`NUDGE_PAGES` pages of 4 KiB).
const LOG_LIMIT_BYTES: i64 = 4 << 20;

/// The background checkpointer of one writer connection. Dropping it stops
/// the thread (after the checkpoint under way, if any).
pub struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    stop: Arc<AtomicBool>,
    /// Checkpoints the thread has run that copied something.
    runs: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Take over `writer`'s checkpoints: open a second connection to `path`
    /// and start the thread. SQLite's automatic checkpoints on `writer` stop
    /// (the hook replaces them).
    pub fn start(writer: &mut Connection, path: &Path) -> rusqlite::Result<Checkpointer> {
        let connection = Connection::open(path)?;
        // A passive checkpoint never waits; the timeout only covers opening.
        connection.busy_timeout(Duration::from_secs(5))?;
        // A connection opens the log on its first read; until then a
        // checkpoint finds no log and does nothing.
        connection.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        let (nudge, nudged) = sync_channel::<()>(1);
        // The log grows to INLINE_PAGES and more before it starts over; its
        // file is cut back to SQLite's usual size when it does, so that the
        // room it took is not kept (on a full disk, commits overwriting it
        // would go on while nothing else can be written).
        writer.pragma_update(None, "journal_size_limit", LOG_LIMIT_BYTES)?;
        install_hook(writer, nudge.clone())?;
        let location = path.display().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, runs) = (stop.clone(), runs.clone());
            std::thread::Builder::new()
                .name("tw-checkpoint".into())
                .spawn(move || run(&connection, &nudged, &stop, &runs, &location))
                .expect("spawning a thread")
        };
        Ok(Checkpointer {
            nudge: Some(nudge),
            stop,
            runs,
            thread: Some(thread),
        })
    }

    /// Checkpoints the background thread has run that copied pages.
    #[cfg(test)]
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}

/// Replace `writer`'s automatic checkpoints: a commit that leaves the log
/// past `NUDGE_PAGES` sends on `nudge`; one past `INLINE_PAGES` checkpoints
/// on the writer.
fn install_hook(writer: &mut Connection, nudge: SyncSender<()>) -> rusqlite::Result<()> {
    writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
        if pages >= INLINE_PAGES {
            // Errors are not returned: the commit has happened, and an
            // error here would make it look failed. The background
            // thread (or the next commit) tries again.
            if let Err(error) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                tracing::debug!(%error, pages, "the writer's own checkpoint did not run");
            }
        } else if pages >= NUDGE_PAGES {
            // Full: a nudge is already waiting; closed: the thread stopped.
            let _ = nudge.try_send(());
        }
        Ok(())
    }))
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // The writer's hook holds a sender too, so the channel may stay open:
        // the thread is told to stop by the flag, and woken.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(nudge) = self.nudge.take() {
            let _ = nudge.try_send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        tracing::debug!(
            runs = self.runs.load(Ordering::Relaxed),
            "the background checkpointer stopped"
        );
    }
}

fn run(connection: &Connection, nudged: &Receiver<()>, stop: &AtomicBool, runs: &AtomicU64, location: &str) {
    const LOG_EVERY: Duration = Duration::from_secs(60);
    let mut logged: Option<Instant> = None;
    while nudged.recv().is_ok() && !stop.load(Ordering::Relaxed) {
        match connection.wal_checkpoint_v2(Some(rusqlite::MAIN_DB), CheckpointMode::PASSIVE) {
            Ok((_, copied)) => {
                if copied > 0 {
                    runs.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => {
                let busy = matches!(&error, rusqlite::Error::SqliteFailure(code, _)
                if code.code == rusqlite::ErrorCode::DatabaseBusy);
                if !busy && logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                    tracing::warn!(store = %location, %error, "a background checkpoint of the store failed; it is tried again at the next commit");
                    logged = Some(Instant::now());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;

    fn writer(path: &Path) -> Connection {
        let connection = Connection::open(path).unwrap();
        connection.pragma_update(None, "journal_mode", "WAL").unwrap();
        connection.pragma_update(None, "synchronous", "NORMAL").unwrap();
        connection
            .execute_batch("CREATE TABLE pages (body BLOB NOT NULL)")
            .unwrap();
        connection
    }

    /// One transaction of about `count` pages (a 4 000-byte row fills one).
    fn write_pages(connection: &mut Connection, count: usize) {
        let transaction = connection.transaction().unwrap();
        for _ in 0..count {
            transaction
                .execute("INSERT INTO pages (body) VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        transaction.commit().unwrap();
    }

    /// A temporary directory, its store's path and a writer on it.
    fn store() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let connection = writer(&path);
        (dir, path, connection)
    }

    fn size(path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |metadata| metadata.len())
    }

    #[test]
    fn a_commit_past_the_nudge_is_copied_by_the_background_thread() {
        let (_dir, path, mut connection) = store();
        let checkpointer = Checkpointer::start(&mut connection, &path).unwrap();
        // Past NUDGE_PAGES, short of INLINE_PAGES: only the thread copies.
        write_pages(&mut connection, 1500);
        let deadline = Instant::now() + Duration::from_secs(20);
        while (checkpointer.runs() == 0 || size(&path) < 1500 * PAGE) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(checkpointer.runs() >= 1, "the background thread ran no checkpoint");
        assert!(
            size(&path) >= 1500 * PAGE,
            "the database file holds {} bytes",
            size(&path)
        );
        let rows: i64 = connection
            .query_row("SELECT count(*) FROM pages", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 1500);
    }

    #[test]
    fn a_short_log_is_left_to_grow() {
        let (_dir, path, mut connection) = store();
        let checkpointer = Checkpointer::start(&mut connection, &path).unwrap();
        write_pages(&mut connection, 200);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(checkpointer.runs(), 0);
        assert!(
            size(&path) < 200 * PAGE,
            "the database file holds {} bytes",
            size(&path)
        );
    }

    #[test]
    fn the_log_starts_over_once_it_passes_the_inline_bound() {
        let (dir, path, mut connection) = store();
        // The hook alone, its nudges unanswered: a background thread that
        // never catches up.
        let (nudge, _nudged) = sync_channel::<()>(1);
        install_hook(&mut connection, nudge).unwrap();
        let log = dir.path().join("store.db-wal");
        let mut largest = 0;
        for _ in 0..12 {
            write_pages(&mut connection, 1500);
            largest = largest.max(size(&log));
        }
        // 18 000 pages were written; the log never held more than the inline
        // bound and the transactions on either side of it.
        let bound = (INLINE_PAGES as u64 + 2 * 1600) * (PAGE + 24);
        assert!(largest <= bound, "the log reached {largest} bytes (bound {bound})");
        assert!(
            size(&path) >= 10 * 1500 * PAGE,
            "the database file holds {} bytes",
            size(&path)
        );
    }

    #[test]
    fn dropping_it_stops_the_thread_and_the_store_stays_whole() {
        let (_dir, path, mut connection) = store();
        let checkpointer = Checkpointer::start(&mut connection, &path).unwrap();
        write_pages(&mut connection, 1200);
        drop(connection);
        drop(checkpointer);
        let reader = Connection::open(&path).unwrap();
        let rows: i64 = reader
            .query_row("SELECT count(*) FROM pages", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 1200);
        let check: String = reader
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
}
