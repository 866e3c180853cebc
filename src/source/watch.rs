//! The daemon's file source: a first pass over the configured paths, then
//! watching directories for new or grown files (filesystem notifications,
//! with a periodic rescan as a fallback for missed ones).
//!
//! Each pass reads the files it found new or grown merged in event-time
//! order (`merge.rs`): a first pass over a backlog of region-first
//! deliveries gives the alarms a replay of them gives.
//!
//! Progress is persisted by the store as per-file checkpoints in the same
//! transaction as the alarms, so a restarted daemon skips finished files,
//! resumes a file it was reading mid-way, and reads only the new tail of a
//! JSON-lines file that grew. A gzip file that changes is read again whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, SystemTime};

use notify::Watcher;

use super::file::{StartAt, Stopped, file_identity, list_files};
use super::merge::{Finished, Input, MergeOptions, read_merged};
use super::{ChunkBatch, FileCheckpoint};

/// Wake-ups for the watch loop.
#[derive(Debug)]
pub enum WatchMessage {
    /// Something changed on disk.
    Changed,
    /// Stop at the next batch boundary.
    Shutdown,
}

/// Settings for the watch loop.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub paths: Vec<PathBuf>,
    pub watch: bool,
    pub poll_interval: Duration,
    pub settle: Duration,
    /// How each pass reads its files (with checkpoints).
    pub merge: MergeOptions,
}

/// Looks up the checkpoint the store holds for a file (read-only access).
pub type CheckpointLookup = Box<dyn Fn(&str) -> Option<FileCheckpoint> + Send>;

/// What to do with a file, given its checkpoint.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    Skip,
    /// Read from this position.
    Read(StartAt),
}

/// Decide how to read a file whose size / mtime / kind is known.
pub fn plan(checkpoint: Option<&FileCheckpoint>, size: u64, mtime_ms: i64, compressed: bool) -> Plan {
    let Some(checkpoint) = checkpoint else {
        return Plan::Read(StartAt::default());
    };
    let unchanged = checkpoint.size == size && checkpoint.mtime_ms == mtime_ms;
    let resume = StartAt {
        offset: checkpoint.offset,
        line: checkpoint.line,
        container: checkpoint.container,
    };
    if unchanged {
        return if checkpoint.completed {
            Plan::Skip
        } else {
            Plan::Read(resume)
        };
    }
    if !compressed && size > checkpoint.size {
        // A JSON-lines file that grew: read the new tail.
        return Plan::Read(resume);
    }
    tracing::warn!(path = %checkpoint.path, "file was replaced since it was read; reading it again from the start");
    Plan::Read(StartAt::default())
}

fn is_gzip(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut magic))
        .is_ok()
        && magic == [0x1f, 0x8b]
}

/// How long a pass without `watch` waits for files that are still changing.
const ONCE_SETTLE_WAIT: Duration = Duration::from_secs(30);

/// Run the source until shutdown (or, without `watch`, until a pass has read
/// every file, those still changing waited for up to `ONCE_SETTLE_WAIT`).
pub fn run_file_source(
    options: WatchOptions,
    sender: SyncSender<ChunkBatch>,
    checkpoints: CheckpointLookup,
    wake_sender: Sender<WatchMessage>,
    wake: Receiver<WatchMessage>,
    stop: Arc<AtomicBool>,
) {
    // Files sent to the pipeline during this run: path → progress.
    let mut progress: HashMap<String, FileCheckpoint> = HashMap::new();
    let _watcher = if options.watch {
        let sender = wake_sender.clone();
        let watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
            if result.is_ok() {
                let _ = sender.send(WatchMessage::Changed);
            }
        });
        match watcher {
            Ok(mut watcher) => {
                for path in &options.paths {
                    if let Err(error) = watcher.watch(path, notify::RecursiveMode::Recursive) {
                        tracing::warn!(path = %path.display(), %error, "cannot watch; relying on periodic rescans");
                    }
                }
                Some(watcher)
            }
            Err(error) => {
                tracing::warn!(%error, "filesystem notifications unavailable; relying on periodic rescans");
                None
            }
        }
    } else {
        None
    };
    let mut reclaimer = crate::memory::Reclaimer::default();
    // Without `watch` (`run --once`), files changed within `settle` are
    // waited for, this long at most, rather than left unread.
    let settle_deadline = std::time::Instant::now() + ONCE_SETTLE_WAIT;
    loop {
        let (pending, bytes) = scan(&options, &checkpoints, &mut progress, &sender, &stop);
        reclaimer.note(bytes);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if !options.watch {
            if !pending {
                return;
            }
            if std::time::Instant::now() >= settle_deadline {
                tracing::warn!(
                    settle = ?options.settle,
                    "files still being written were left unread (they changed within `source.files.settle` for {ONCE_SETTLE_WAIT:?})"
                );
                return;
            }
            std::thread::sleep(options.settle.clamp(Duration::from_millis(50), Duration::from_secs(1)));
            continue;
        }
        // The chunks of a big first pass are freed by the normalizer; give
        // their memory back while waiting (see `memory.rs`).
        reclaimer.idle();
        // Files that were still settling are looked at again soon.
        let wait = if pending {
            options.settle.min(options.poll_interval)
        } else {
            options.poll_interval
        };
        match wake.recv_timeout(wait) {
            Ok(WatchMessage::Shutdown) => return,
            Ok(WatchMessage::Changed) => {
                // Coalesce a burst of notifications into one rescan.
                std::thread::sleep(Duration::from_millis(100));
                while let Ok(message) = wake.try_recv() {
                    if matches!(message, WatchMessage::Shutdown) {
                        return;
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                reclaimer.idle();
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// One pass over every configured path: the files new or grown since they
/// were read, merged in event-time order. Returns whether a file was left
/// for later because it was still changing, and the bytes read.
pub(super) fn scan(
    options: &WatchOptions,
    checkpoints: &CheckpointLookup,
    progress: &mut HashMap<String, FileCheckpoint>,
    sender: &SyncSender<ChunkBatch>,
    stop: &Arc<AtomicBool>,
) -> (bool, u64) {
    let mut pending = false;
    let mut inputs: Vec<Input> = Vec::new();
    for root in &options.paths {
        let files = match list_files(root) {
            Ok(files) => files,
            Err(error) => {
                tracing::warn!(path = %root.display(), %error, "cannot list source path");
                continue;
            }
        };
        for path in files {
            if stop.load(Ordering::SeqCst) {
                return (pending, 0);
            }
            let key = path.display().to_string();
            let Ok((size, mtime_ms, modified)) = file_identity(&path) else {
                continue;
            };
            let age = SystemTime::now()
                .duration_since(SystemTime::from(modified))
                .unwrap_or_default();
            let known = progress.get(&key).cloned().or_else(|| checkpoints(&key));
            let plan = plan(known.as_ref(), size, mtime_ms, is_gzip(&path));
            let Plan::Read(start) = plan else { continue };
            if age < options.settle {
                pending = true;
                continue;
            }
            tracing::info!(path = %key, offset = start.offset, "reading");
            inputs.push(Input::File { path, start });
        }
    }
    if inputs.is_empty() {
        return (pending, 0);
    }
    let mut send = |batch: ChunkBatch| -> Result<(), Stopped> {
        if stop.load(Ordering::SeqCst) {
            return Err(Stopped);
        }
        sender.send(batch).map_err(|_| Stopped)
    };
    let mut bytes = 0u64;
    let mut on_finished = |finished: Finished| {
        let Some(Input::File { path, .. }) = inputs.get(finished.input) else {
            return;
        };
        match finished.result {
            Ok((summary, size, mtime_ms)) => {
                bytes += summary.bytes;
                let key = path.display().to_string();
                progress.insert(
                    key.clone(),
                    FileCheckpoint {
                        path: key,
                        size,
                        mtime_ms,
                        offset: summary.end.offset,
                        line: summary.end.line,
                        container: summary.end.container,
                        completed: true,
                    },
                );
            }
            Err(error) => tracing::warn!(%error, "cannot read source file"),
        }
    };
    // Stopped: shutdown; what was sent commits, the rest is read next time.
    let _ = read_merged(&inputs, &options.merge, &mut send, &mut on_finished);
    (pending, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(size: u64, mtime_ms: i64, completed: bool) -> FileCheckpoint {
        FileCheckpoint {
            path: "f".into(),
            size,
            mtime_ms,
            offset: 40,
            line: 3,
            container: None,
            completed,
        }
    }

    #[test]
    fn plans_follow_the_checkpoint() {
        assert_eq!(plan(None, 10, 1, false), Plan::Read(StartAt::default()));
        assert_eq!(plan(Some(&checkpoint(100, 1, true)), 100, 1, false), Plan::Skip);
        let resume = Plan::Read(StartAt {
            offset: 40,
            line: 3,
            container: None,
        });
        assert_eq!(plan(Some(&checkpoint(100, 1, false)), 100, 1, false), resume);
        assert_eq!(plan(Some(&checkpoint(100, 1, true)), 150, 2, false), resume);
        assert_eq!(
            plan(Some(&checkpoint(100, 1, true)), 150, 2, true),
            Plan::Read(StartAt::default())
        );
        assert_eq!(
            plan(Some(&checkpoint(100, 1, true)), 50, 2, false),
            Plan::Read(StartAt::default())
        );
    }
}
