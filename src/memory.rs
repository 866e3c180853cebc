//! Giving memory back to the operating system after a burst.
//!
//! The binary allocates with mimalloc (see `main.rs`). mimalloc keeps freed
//! pages in the heap of the thread that allocated them, and returns them to
//! the OS only as that thread goes on allocating; a stage that processed a
//! burst of large records and then went quiet kept hundreds of megabytes
//! resident (measured: a daemon that had read 20 000 records of 14 KB stayed
//! at 470 MB once idle). So each pipeline thread, once it has handled at
//! least `BURST_BYTES`, asks mimalloc to return what its heap no longer uses
//! whenever it is idle (at most once a second, for a while after its last
//! work, since the next stage frees its records later). Threads that stay
//! busy never pay for it.

// mimalloc's C library is linked through the `mimalloc` crate; its Rust
// declarations of `mi_collect` sit behind a feature that pulls in another
// crate, so the one function needed is declared here.
extern crate mimalloc as _;

use std::time::{Duration, Instant};

unsafe extern "C" {
    /// mimalloc: free unused memory of the calling thread's heap; with
    /// `force`, also return it to the OS and collect abandoned pages.
    fn mi_collect(force: bool);
    /// mimalloc: set an option (`mi_option_t`, `long` value).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_t`.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// How long mimalloc keeps freed pages before returning them to the OS. Its
/// default, 10 ms, returns the pages a batch's events leave between two
/// batches only to fault them in again for the next: replay CPU was 12 %
/// higher with it (mixed 400 000-record corpus, medians of 3: 9.9 against
/// 8.7 CPU-seconds). 500 ms kept up to half a second of the pipeline's freed
/// memory resident, 30 MB of a 2 M-event `replay --db`'s peak; 100 ms, with
/// the arena's delay at the same (below), took that peak from 260–280 to
/// 248–252 MB for at most 4 % more CPU (medians of 5 alternating runs on the
/// 500 000-record CloudTrail corpus: 5.59 against 5.82 CPU-seconds, within
/// the VM's noise). Idle threads still return everything (`Reclaimer`).
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// `mi_option_arena_purge_mult` in mimalloc's `mi_option_t`.
const MI_OPTION_ARENA_PURGE_MULT: std::ffi::c_int = 24;

/// Memory freed back to mimalloc's arena (whole pages of a thread's heap)
/// waits this many purge delays before it is returned; mimalloc's default,
/// 10, kept it 5 s with a 500 ms delay.
const ARENA_PURGE_MULT: std::ffi::c_long = 1;

/// `mi_option_allow_thp` in mimalloc's `mi_option_t`.
const MI_OPTION_ALLOW_THP: std::ffi::c_int = 43;

/// Set the allocator's options, unless the environment sets them
/// (`MIMALLOC_PURGE_DELAY`, `MIMALLOC_ARENA_PURGE_MULT`, `MIMALLOC_ALLOW_THP`). Call once at start,
/// before the pipeline allocates.
///
/// Transparent huge pages are turned off for the process: the pipeline's
/// memory comes and goes in batches, and each first touch of a fresh 2 MiB
/// page clears and keeps all of it. Measured on the 500 000-record CloudTrail
/// replay (10 alternating runs each way): peak RSS 200 → 167 MB, kernel time
/// 0.94 → 0.60 s, user time about as much higher (the TLB), CPU and wall the
/// same within the machine's noise; on 2 M events with a million distinct
/// keys and addresses (`replay --db`), 436 → 396 MB.
pub fn configure_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set takes two integers and may be called at any time.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
    if std::env::var_os("MIMALLOC_ARENA_PURGE_MULT").is_none() {
        // SAFETY: as above.
        unsafe { mi_option_set(MI_OPTION_ARENA_PURGE_MULT, ARENA_PURGE_MULT) };
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: as above. mimalloc then stops asking for huge pages
        // (`madvise`) for the memory it maps from now on.
        unsafe { mi_option_set(MI_OPTION_ALLOW_THP, 0) };
        // Where the system gives huge pages without being asked (`always`),
        // this process asks not to get them, as mimalloc does when the
        // environment sets the option before it starts.
        #[cfg(target_os = "linux")]
        // SAFETY: prctl with PR_SET_THP_DISABLE takes integers only.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// Work (bytes of records) that makes a burst worth collecting after.
pub const BURST_BYTES: u64 = 32 << 20;

/// How often an idle thread collects after a burst: the records it
/// allocated are freed later by the next stage (or wait in the reorder
/// buffer up to `pipeline.max_hold`), so one collection is not enough.
pub const COLLECT_EVERY: Duration = Duration::from_secs(1);

/// How long after its last work an idle thread keeps collecting.
pub const COLLECT_FOR: Duration = Duration::from_secs(90);

/// Tracks one thread's work, to decide when its idle moments should return memory.
#[derive(Debug, Default)]
pub struct Reclaimer {
    since_collect: u64,
    /// Set by a burst, cleared `COLLECT_FOR` after the last work.
    collecting: bool,
    last_work: Option<Instant>,
    last_collect: Option<Instant>,
}

impl Reclaimer {
    /// Note `bytes` of records handled.
    pub fn note(&mut self, bytes: u64) {
        self.since_collect = self.since_collect.saturating_add(bytes);
        self.last_work = Some(Instant::now());
        if self.since_collect >= BURST_BYTES {
            self.collecting = true;
        }
    }

    /// The thread has no work right now (call it on every idle wake-up):
    /// after a burst, return its unused memory, at most every
    /// `COLLECT_EVERY`, for `COLLECT_FOR` after the last work. Returns
    /// whether it collected.
    pub fn idle(&mut self) -> bool {
        self.idle_at(Instant::now())
    }

    fn idle_at(&mut self, now: Instant) -> bool {
        if !self.collecting {
            return false;
        }
        if self
            .last_work
            .is_some_and(|last| now.saturating_duration_since(last) > COLLECT_FOR)
        {
            self.collecting = false;
            return false;
        }
        if self
            .last_collect
            .is_some_and(|last| now.saturating_duration_since(last) < COLLECT_EVERY)
        {
            return false;
        }
        self.since_collect = 0;
        self.last_collect = Some(now);
        // SAFETY: mi_collect takes no pointers and may be called from any
        // thread at any time; it works on the calling thread's heap.
        unsafe { mi_collect(true) };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_burst_is_followed_by_collections_for_a_while() {
        let start = Instant::now();
        let mut reclaimer = Reclaimer::default();
        reclaimer.note(1 << 20);
        assert!(!reclaimer.idle_at(start), "a trickle does not pay for a collection");
        reclaimer.note(BURST_BYTES);
        let after = reclaimer.last_work.unwrap();
        assert!(reclaimer.idle_at(after));
        assert!(
            !reclaimer.idle_at(after + COLLECT_EVERY / 2),
            "at most every COLLECT_EVERY"
        );
        assert!(reclaimer.idle_at(after + COLLECT_EVERY * 2));
        assert!(reclaimer.idle_at(after + COLLECT_FOR - COLLECT_EVERY));
        assert!(!reclaimer.idle_at(after + COLLECT_FOR + COLLECT_EVERY * 3));
        assert!(!reclaimer.idle_at(after + COLLECT_FOR * 2), "until the next burst");
    }
}
