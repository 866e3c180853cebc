//! Settings turned into the options of each component: the store, the
//! pipeline, and the file readers. The daemon and `replay` build theirs here,
//! so a replay runs the pipeline the daemon runs (minus the wall clock).

use crate::alarm::rollup::ActivityOptions;
use crate::alarm::store::StoreOptions;
use crate::config::Settings;
use crate::pipeline::PipelineOptions;
use crate::rules::state::StateLimits;
use crate::source::file::ReadOptions;
use crate::source::merge::{MergeOptions, STREAM_BATCH_RECORDS};

/// The store's options (samples, durability, the notification router).
pub fn store_options(settings: &Settings) -> StoreOptions {
    StoreOptions {
        samples_per_alarm: settings.store.samples_per_alarm,
        synchronous_full: settings.store.synchronous_full,
        durable: true,
        count_on_ignored: settings.store.count_on_ignored,
        notify: crate::notify::Router::observer(settings.notify.clone()),
    }
}

/// Pipeline settings; `daemon` adds the wall-clock bound on reordering.
pub fn pipeline_options(settings: &Settings, daemon: bool) -> PipelineOptions {
    let max_hold = settings.pipeline.max_hold;
    PipelineOptions {
        batch_events: settings.pipeline.batch_events,
        max_transaction_events: settings.pipeline.max_transaction_events,
        channel_batches: settings.pipeline.channel_batches,
        normalizers: settings.pipeline.normalizers,
        samples_per_alarm: settings.store.samples_per_alarm as usize,
        max_sample_bytes: settings.store.max_sample_bytes,
        naive_time_offset: settings.naive_time_offset,
        time_window: settings.time_window,
        store_retries: settings.pipeline.store_retries,
        allowed_lateness: settings.pipeline.allowed_lateness,
        max_hold: (daemon && !max_hold.is_zero()).then_some(max_hold),
        persist_pending: daemon,
        hand_over_at_close: false,
        fill_transactions: !daemon,
        max_buffered_events: settings.pipeline.max_buffered_events,
        max_buffered_bytes: settings.pipeline.max_buffered_bytes,
        state_limits: StateLimits {
            max_entries: settings.state.max_entries,
            key_ttl_ms: crate::time::millis(settings.state.key_ttl),
            principal_ttl_ms: crate::time::millis(settings.state.principal_ttl),
            first_seen_ttl_ms: crate::time::millis(settings.state.first_seen_ttl),
        },
        chain_log_interval: daemon.then_some(settings.store.chain_log_interval),
        activity: ActivityOptions {
            rollups: settings.activity.enabled,
            traces: settings.traces.enabled,
            trace_retention: settings.traces.retention,
            prune_every: settings.traces.prune_every,
            trace_tag: settings.traces.rule_tag.clone(),
            events: crate::alarm::events::EventStoreOptions {
                block_events: u32::try_from(settings.pipeline.batch_events).unwrap_or(u32::MAX),
                ..settings.events.clone()
            },
        },
        learn_only: settings.pipeline.learn_only,
        keep_operations: settings.notify.topics.iter().any(|topic| topic.on_operation),
    }
}

pub fn read_options(settings: &Settings) -> ReadOptions {
    ReadOptions {
        max_document_bytes: settings.files.max_document_bytes,
        batch_bytes: settings.pipeline.batch_bytes,
        ..ReadOptions::default()
    }
}

/// How file sources read many files: merged in event-time order.
pub fn merge_options(settings: &Settings, with_checkpoints: bool) -> MergeOptions {
    MergeOptions {
        read: read_options(settings),
        max_open_files: settings.files.max_open_files,
        naive_time_offset: settings.naive_time_offset,
        time_window: settings.time_window,
        with_checkpoints,
        batch_records: STREAM_BATCH_RECORDS,
    }
}
