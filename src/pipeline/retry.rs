//! The store stage's write: retried, and waiting out a full or locked disk.

use std::time::{Duration, Instant};

use crate::alarm::store::{Store, StoreError, WriteBatch};
use crate::metrics::Metrics;

/// Store failures that pass once the machine is fixed (space freed, the
/// filesystem writable again, another process's lock released): intake
/// waits for them instead of stopping.
fn is_resource_failure(error: &StoreError) -> bool {
    // PostgreSQL restarting, unreachable or out of space: the same wait.
    if error.is_transient_database() {
        return true;
    }
    let (StoreError::Write(error) | StoreError::Query(error)) = error else {
        return false;
    };
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _) if matches!(
            failure.code,
            rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::CannotOpen
        )
    )
}

/// Write one transaction. A resource failure (disk full, read-only, locked)
/// pauses intake — nothing after the last commit is checkpointed or
/// acknowledged — and the same transaction is retried until it commits, with
/// `store_stalled` at 1 and an error logged every 30 s; other failures are
/// retried `retries` times, then stop the pipeline.
pub(super) fn write_with_retry(
    store: &mut Store,
    write: &WriteBatch,
    retries: u32,
    metrics: &Metrics,
) -> Result<crate::alarm::store::WriteOutcome, StoreError> {
    const LOG_EVERY: Duration = Duration::from_secs(30);
    const LONGEST_WAIT: Duration = Duration::from_secs(5);
    let mut attempt = 0;
    let mut stalled: Option<(Instant, u32)> = None;
    let mut logged: Option<Instant> = None;
    loop {
        match store.write(write) {
            Ok(outcome) => {
                if let Some((since, _)) = stalled {
                    metrics.store_stalled.set(0);
                    tracing::warn!(
                        paused_seconds = since.elapsed().as_secs_f64(),
                        "the store is writable again; intake resumes"
                    );
                }
                return Ok(outcome);
            }
            Err(error @ StoreError::Fenced(_)) => {
                // Another instance owns a partition this batch consumed: a
                // retry cannot pass, and stopping lets this instance rejoin
                // the group with what it owns now.
                metrics.store_write_failures.inc();
                tracing::error!(%error, "the batch is fenced off (a rebalance gave its partitions to another instance); stopping without committing it");
                return Err(error);
            }
            Err(error) if is_resource_failure(&error) => {
                metrics.store_write_failures.inc();
                let (since, tries) = stalled.get_or_insert_with(|| {
                    metrics.store_stalled.set(1);
                    (Instant::now(), 0)
                });
                *tries += 1;
                if logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                    logged = Some(Instant::now());
                    tracing::error!(
                        %error,
                        paused_seconds = since.elapsed().as_secs_f64(),
                        tries = *tries,
                        "the store cannot be written (disk full, read-only, locked by another process, or its server \
                         unreachable?); \
                         intake is paused, nothing after the last commit is checkpointed, and the same \
                         transaction is retried until it commits"
                    );
                }
                // A failed commit can leave its transaction open.
                if let Ok(connection) = store.sqlite("rolling back")
                    && !connection.is_autocommit()
                {
                    let _ = connection.execute_batch("ROLLBACK");
                }
                let wait = Duration::from_millis(100 * 2u64.pow((*tries).min(6))).min(LONGEST_WAIT);
                std::thread::sleep(wait);
            }
            Err(error) if attempt < retries => {
                metrics.store_write_failures.inc();
                attempt += 1;
                let wait = Duration::from_millis(200 * 2u64.pow(attempt.min(6)));
                tracing::error!(%error, attempt, ?wait, "store write failed; retrying the same batch");
                std::thread::sleep(wait);
            }
            Err(error) => {
                metrics.store_write_failures.inc();
                tracing::error!(%error, "store write failed for good; stopping the pipeline (nothing past the last commit is marked done)");
                return Err(error);
            }
        }
    }
}
