//! The sealing stage between the engine and the store, when the event store
//! is on: it compresses each event block and builds its filter off both
//! their threads, and joins the blocks to their transaction.
//!
//! A block leaves the engine as soon as it is full (`BlockBuilder`'s outlet),
//! ahead of its transaction, so the engine's thread never holds more than
//! the block it fills, and the blocks in flight uncompressed are that one,
//! the channel's few and the one being compressed (before, up to three
//! transactions' blocks: building, queued, being compressed). A transaction
//! follows its blocks on the same channel, so it finds them all sealed.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::StoreJob;
use crate::alarm::events::{BlockOutlet, EventBlock, Sealer};

/// Blocks queued for the sealing stage (each up to `events.block_events`
/// events uncompressed, about 2.6 MB at the default 2 000).
const QUEUED_BLOCKS: usize = 2;

/// What the engine sends toward the store.
pub(super) enum Outbound {
    /// A full block of the transaction being built.
    Block(EventBlock),
    /// A transaction: the blocks sent before it since the last one are its.
    Job(Box<StoreJob>),
}

/// The engine's sending side: straight to the store stage, or through the
/// sealing stage (shared with the event store's outlet, so `close` ends
/// the channel however many clones the outlet holds).
pub(super) enum Outbox {
    Direct(SyncSender<StoreJob>),
    Sealing(Arc<Mutex<Option<SyncSender<Outbound>>>>),
}

impl Outbox {
    /// Send a transaction; `false` when the stage behind has stopped.
    pub(super) fn send(&self, job: StoreJob) -> bool {
        match self {
            Outbox::Direct(sender) => sender.send(job).is_ok(),
            Outbox::Sealing(shared) => send_shared(shared, Outbound::Job(Box::new(job))),
        }
    }

    /// The event store's outlet: full blocks go ahead to the sealing stage.
    pub(super) fn block_outlet(&self) -> Option<BlockOutlet> {
        match self {
            Outbox::Direct(_) => None,
            Outbox::Sealing(shared) => {
                let shared = shared.clone();
                // A block the stopped stage cannot take is dropped: its
                // transaction's send fails too, and the engine stops.
                Some(Box::new(move |block| {
                    send_shared(&shared, Outbound::Block(block));
                }))
            }
        }
    }

    /// No more sends: the stage behind finishes what it has and ends.
    pub(super) fn close(self) {
        if let Outbox::Sealing(shared) = self
            && let Ok(mut sender) = shared.lock()
        {
            sender.take();
        }
    }
}

fn send_shared(shared: &Mutex<Option<SyncSender<Outbound>>>, message: Outbound) -> bool {
    // Only the engine's thread sends, so the lock is never contended; it is
    // held while a full channel waits for the sealing stage.
    match shared.lock() {
        Ok(sender) => sender.as_ref().is_some_and(|sender| sender.send(message).is_ok()),
        Err(_) => false,
    }
}

/// Start the sealing stage in front of `store` (the store stage's channel).
pub(super) fn spawn(store: SyncSender<StoreJob>) -> (Outbox, JoinHandle<()>) {
    let (sender, receiver) = sync_channel::<Outbound>(QUEUED_BLOCKS);
    let thread = std::thread::Builder::new()
        .name("tw-seal".into())
        .spawn(move || seal_stage(receiver, store))
        .expect("spawning a thread");
    (Outbox::Sealing(Arc::new(Mutex::new(Some(sender)))), thread)
}

/// Compress each block as it comes and pass each transaction on with its
/// blocks, in order. A block it cannot compress goes on as it is: the store
/// stage's write compresses it again and reports the error in its own
/// retry path, so nothing is written without its events.
fn seal_stage(input: Receiver<Outbound>, store: SyncSender<StoreJob>) {
    let mut sealer = Sealer::default();
    let mut blocks: Vec<EventBlock> = Vec::new();
    for message in input {
        match message {
            Outbound::Block(block) => seal_into(&mut sealer, block, &mut blocks),
            Outbound::Job(mut job) => {
                // Blocks a transaction kept itself (none with the outlet on)
                // come after those sent ahead of it.
                for block in std::mem::take(&mut job.write.activity.events) {
                    seal_into(&mut sealer, block, &mut blocks);
                }
                debug_assert!(blocks.len() >= job.write.activity.events_ahead);
                job.write.activity.events = std::mem::take(&mut blocks);
                job.write.activity.events_ahead = 0;
                if store.send(*job).is_err() {
                    // The store stage stopped on an error it has logged.
                    return;
                }
            }
        }
    }
}

/// Seal `block` (or leave it for the store stage to compress) and keep it.
fn seal_into(sealer: &mut Sealer, mut block: EventBlock, blocks: &mut Vec<EventBlock>) {
    if let Err(error) = sealer.seal(&mut block) {
        tracing::warn!(%error, "cannot compress an event block here; the store stage will try");
    }
    blocks.push(block);
}
