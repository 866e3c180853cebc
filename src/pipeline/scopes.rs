//! Engine state by placement scope.
//!
//! A daemon on a SQLite store is the only one writing it, and keeps one
//! engine state (scope `''`), loaded at start. Daemons sharing a PostgreSQL
//! store split a consumer group's partitions between them, and a partition's
//! state must go where the partition goes. So there, each assigned partition
//! has a state of its own:
//! - loaded from the store (with its events waiting in the reorder buffer)
//!   when the source says the partition was assigned: the claim made before
//!   waited for its earlier owner's last commit, so the rows are the ones
//!   that go with the stored offsets;
//! - written with every transaction under the partition's scope
//!   (`PartitionScope::name`), and fenced like its offsets;
//! - dropped once the revocation's flush barrier has committed its changes,
//!   together with its held events (persisted, for the next owner).
//!
//! Events that come from no partition (files, stdin) use the unscoped state.
//! Producers key by account, so an account's events and its state stay on
//! one partition; a key shared by accounts of different partitions is kept
//! apart per partition.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::memory_estimate;
use crate::alarm::store::{PendingRow, StateChanges, Store, StoreError, StoreOptions, WriteBatch};
use crate::event::model::AuditEvent;
use crate::event::normalize::{NormalizeContext, normalize};
use crate::event::origin::{Origin, Position};
use crate::reorder::{Held, ReorderBuffer};
use crate::rules::state::{EngineState, StateLimits};
use crate::source::PartitionScope;

/// How long loading an assigned partition's state waits for an unreachable
/// store before the engine gives up (and the daemon stops).
const LOAD_PATIENCE: Duration = Duration::from_secs(60);

/// One assigned partition's state.
struct Placed {
    scope: PartitionScope,
    name: Arc<str>,
    state: EngineState,
}

pub(super) struct ScopedStates {
    limits: StateLimits,
    unscoped: EngineState,
    unscoped_name: Arc<str>,
    /// Per-partition states, on a shared store (`None`: one state for all).
    partitions: Option<Vec<Placed>>,
    /// A connection of its own for loading partitions' state (the store
    /// stage's is busy writing).
    loader: Option<Store>,
}

impl ScopedStates {
    /// The states of `store`: per partition on PostgreSQL, one on SQLite;
    /// the unscoped state and its buffered events are loaded now.
    pub(super) fn open(
        store: &Store,
        limits: StateLimits,
        buffer: &mut ReorderBuffer,
        offset: chrono::FixedOffset,
    ) -> Result<ScopedStates, StoreError> {
        let shared = store.is_postgres();
        let mut unscoped = EngineState::new(limits.clone());
        // SQLite rows are all unscoped; a shared store's unscoped rows are ''.
        let only = shared.then_some("");
        store.load_state(&mut unscoped, only)?;
        let restored = restore_pending(store.load_pending(only)?, buffer, offset);
        if restored > 0 || unscoped.entries() > 0 {
            tracing::info!(
                state_entries = unscoped.entries(),
                buffered = restored,
                "engine state restored"
            );
        }
        Ok(ScopedStates {
            limits,
            unscoped,
            unscoped_name: Arc::from(""),
            partitions: shared.then(Vec::new),
            loader: None,
        })
    }

    /// The partition an event came from, when states are kept per partition.
    fn placed(&self, origin: &Origin) -> Option<usize> {
        let partitions = self.partitions.as_ref()?;
        let Position::Message { partition, .. } = origin.position else {
            return None;
        };
        partitions
            .iter()
            .position(|placed| placed.scope.partition == partition && *placed.scope.topic == *origin.source)
    }

    /// The state `event` reads and changes.
    pub(super) fn state_for(&mut self, event: &AuditEvent) -> &mut EngineState {
        match (self.placed(&event.origin), self.partitions.as_mut()) {
            (Some(index), Some(partitions)) => &mut partitions[index].state,
            _ => &mut self.unscoped,
        }
    }

    /// The scope an event's buffered row is written under.
    pub(super) fn scope_of(&self, origin: &Origin) -> Arc<str> {
        match (self.placed(origin), self.partitions.as_ref()) {
            (Some(index), Some(partitions)) => partitions[index].name.clone(),
            _ => self.unscoped_name.clone(),
        }
    }

    /// Every state's changes, and the partitions the batch must be fenced on
    /// (those whose state or buffered rows it changes).
    pub(super) fn take_changes(&mut self, write: &mut WriteBatch) {
        let unscoped = StateChanges::take(&mut self.unscoped, self.unscoped_name.clone());
        if !unscoped.is_empty() {
            write.state.push(unscoped);
        }
        let Some(partitions) = self.partitions.as_mut() else {
            return;
        };
        for placed in partitions.iter_mut() {
            let changes = StateChanges::take(&mut placed.state, placed.name.clone());
            let rows = write
                .pending_insert
                .iter()
                .map(|row| &row.scope)
                .chain(write.pending_delete.iter().map(|(scope, _)| scope))
                .any(|scope| *scope == placed.name);
            if !changes.is_empty() {
                write.state.push(changes);
            }
            if rows || write.state.last().is_some_and(|last| last.scope == placed.name) {
                write.fenced_scopes.push(placed.scope.clone());
            }
        }
    }

    fn all(&self) -> impl Iterator<Item = &EngineState> {
        std::iter::once(&self.unscoped).chain(self.partitions.iter().flatten().map(|placed| &placed.state))
    }

    pub(super) fn entries(&self) -> usize {
        self.all().map(EngineState::entries).sum()
    }

    pub(super) fn evictions(&self) -> u64 {
        self.all().map(EngineState::evictions).sum()
    }

    /// The newest event time any state has applied (kept across restarts).
    pub(super) fn high_water_ms(&self) -> i64 {
        self.all().map(|state| state.high_water_ms).max().unwrap_or(i64::MIN)
    }

    /// Partitions given to this daemon: load each one's state and buffered
    /// events from the store (a shared store only; one daemon's SQLite store
    /// loaded everything at start).
    pub(super) fn assign(
        &mut self,
        scopes: &[PartitionScope],
        store_path: &std::path::Path,
        buffer: &mut ReorderBuffer,
        offset: chrono::FixedOffset,
    ) -> Result<(), StoreError> {
        if self.partitions.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let mut entries = 0usize;
        let mut buffered = 0usize;
        for scope in scopes {
            if self.partitions.iter().flatten().any(|placed| placed.scope == *scope) {
                continue;
            }
            let name: Arc<str> = Arc::from(scope.name());
            let (state, rows) = self.load(&name, store_path)?;
            entries += state.entries();
            buffered += restore_pending(rows, buffer, offset);
            if let Some(partitions) = self.partitions.as_mut() {
                partitions.push(Placed {
                    scope: scope.clone(),
                    name,
                    state,
                });
            }
        }
        tracing::info!(
            partitions = scopes.len(),
            state_entries = entries,
            buffered,
            took_ms = started.elapsed().as_millis() as u64,
            "engine state of the assigned partitions loaded"
        );
        Ok(())
    }

    /// One scope's state and buffered rows, retrying while the store is unreachable.
    fn load(&mut self, name: &str, store_path: &std::path::Path) -> Result<(EngineState, Vec<PendingRow>), StoreError> {
        let deadline = Instant::now() + LOAD_PATIENCE;
        loop {
            let attempt = (|| {
                if self.loader.is_none() {
                    self.loader = Some(Store::open(store_path, StoreOptions::default())?);
                }
                let loader = self
                    .loader
                    .as_ref()
                    .ok_or(StoreError::Unsupported("a store to load state from"))?;
                let mut state = EngineState::new(self.limits.clone());
                loader.load_state(&mut state, Some(name))?;
                let rows = loader.load_pending(Some(name))?;
                Ok::<_, StoreError>((state, rows))
            })();
            match attempt {
                Err(error) if error.is_transient_database() && Instant::now() < deadline => {
                    tracing::warn!(%error, scope = name, "loading a partition's engine state; retrying");
                    self.loader = None;
                    std::thread::sleep(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    /// Partitions taken from this daemon: their changes are in the
    /// transaction just handed to the store (the revocation's barrier), so
    /// their state and held events are let go.
    pub(super) fn revoke(&mut self, scopes: &[PartitionScope], buffer: &mut ReorderBuffer) {
        let Some(partitions) = self.partitions.as_mut() else {
            return;
        };
        partitions.retain(|placed| !scopes.contains(&placed.scope));
        let held = buffer.remove_where(|held| {
            let Position::Message { partition, .. } = held.event.origin.position else {
                return false;
            };
            scopes
                .iter()
                .any(|scope| scope.partition == partition && *scope.topic == *held.event.origin.source)
        });
        tracing::info!(
            partitions = scopes.len(),
            held,
            "engine state of the revoked partitions let go"
        );
    }
}

/// Put buffered events persisted earlier back into the buffer; the number
/// of rows.
fn restore_pending(rows: Vec<PendingRow>, buffer: &mut ReorderBuffer, offset: chrono::FixedOffset) -> usize {
    let count = rows.len();
    for row in rows {
        let record = match serde_json::from_str::<serde_json::Value>(&row.raw) {
            Ok(serde_json::Value::Object(record)) => record,
            _ => {
                tracing::error!(seq = row.seq, origin = %row.origin, "a persisted buffered event is unreadable; dropped");
                continue;
            }
        };
        let Some(provider) = crate::event::model::Provider::parse(&row.provider) else {
            continue;
        };
        let time = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(row.time_ms).unwrap_or_default();
        let mut context = NormalizeContext::new(time);
        context.naive_time_offset = offset;
        let candidate = crate::event::decode::Candidate {
            provider,
            record,
            origin: Origin::from_display(&row.origin),
            envelope_time: None,
        };
        match normalize(candidate, &context) {
            Ok(mut event) => {
                event.time = time;
                event.time_source = crate::event::model::TimeSource::parse(&row.time_source).unwrap_or_default();
                let size = memory_estimate(row.raw.as_bytes(), None);
                buffer.push(event, size, Some(row.seq as u64));
            }
            Err(error) => {
                tracing::error!(seq = row.seq, %error, "a persisted buffered event no longer normalizes; dropped")
            }
        }
    }
    count
}

/// A held event's row, for the transaction that persists it.
pub(super) fn pending_row(held: &Held, scope: Arc<str>) -> PendingRow {
    PendingRow {
        seq: held.seq as i64,
        provider: held.event.provider.as_str().to_string(),
        time_ms: held.event.time.timestamp_millis(),
        time_source: held.event.time_source.as_str().to_string(),
        origin: held.event.origin.to_string(),
        raw: held.event.raw.to_json_string(),
        scope,
    }
}
