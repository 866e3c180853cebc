//! `contains` tests: one case-insensitive Aho-Corasick automaton per list,
//! with a small per-thread memo of recent answers.
//!
//! Several rules that every event meets test the same field (the user agent
//! against lists of tools and scanners), and the values repeat: a fleet has
//! a few hundred user agents, not one per call. Scanning ~100 bytes with
//! the automaton costs several times what hashing and comparing them does,
//! so the last answer for each (list, text) is kept in a direct-mapped table
//! of the evaluating thread. Each list has an id of its own (never reused,
//! so a reloaded rule set cannot read a stale answer) and the memo stores
//! the text it answered for, so a hit is exact.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::AhoCorasick;

/// Slots of the per-thread memo (a power of two).
const SLOTS: usize = 1024;
/// Texts outside these lengths are scanned every time: short ones cost
/// less to scan than to hash, long ones are rarely repeated.
const MEMO_LENGTHS: std::ops::RangeInclusive<usize> = 16..=512;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The automaton of one `contains` list.
#[derive(Debug)]
pub struct ContainsSet {
    id: u64,
    automaton: AhoCorasick,
}

struct Slot {
    id: u64,
    text: String,
    found: bool,
}

thread_local! {
    static MEMO: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

impl ContainsSet {
    pub fn new(automaton: AhoCorasick) -> ContainsSet {
        ContainsSet {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            automaton,
        }
    }

    /// Whether `text` holds any of the list's texts, in any ASCII letter case.
    pub fn is_match(&self, text: &str) -> bool {
        if !MEMO_LENGTHS.contains(&text.len()) {
            return self.automaton.is_match(text);
        }
        let mut hasher = foldhash::fast::FixedState::with_seed(0x0074_7761_7264_656e).build_hasher();
        hasher.write_u64(self.id);
        hasher.write(text.as_bytes());
        let slot = (hasher.finish() as usize) & (SLOTS - 1);
        MEMO.with(|memo| {
            let Ok(mut memo) = memo.try_borrow_mut() else {
                return self.automaton.is_match(text);
            };
            if memo.is_empty() {
                memo.resize_with(SLOTS, || Slot {
                    id: 0,
                    text: String::new(),
                    found: false,
                });
            }
            let entry = &mut memo[slot];
            if entry.id == self.id && entry.text == text {
                return entry.found;
            }
            let found = self.automaton.is_match(text);
            entry.id = self.id;
            entry.text.clear();
            entry.text.push_str(text);
            entry.found = found;
            found
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::{AhoCorasickBuilder, MatchKind};

    fn set(texts: &[&str]) -> ContainsSet {
        ContainsSet::new(
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostFirst)
                .build(texts)
                .unwrap(),
        )
    }

    #[test]
    fn answers_are_the_automatons_whatever_the_memo_holds() {
        let kali = set(&["kali", "parrot"]);
        let scanner = set(&["nessus", "prowler"]);
        let agents = [
            "aws-cli/2.15.30 Python/3.11.8 Linux/6.6.9-amd64 exe/x86_64.kali.2024",
            "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.ubuntu.22",
            "Prowler/3.0 (compatible) botocore/1.34",
            "short",
        ];
        // Twice round, interleaving lists, so the second round reads the memo.
        for _ in 0..2 {
            for agent in agents {
                assert_eq!(kali.is_match(agent), kali.automaton.is_match(agent), "{agent}");
                assert_eq!(scanner.is_match(agent), scanner.automaton.is_match(agent), "{agent}");
            }
        }
        assert!(kali.is_match(agents[0]));
        assert!(!kali.is_match(agents[1]));
        assert!(scanner.is_match(agents[2]));
        // A list made later (a reloaded rule set) never reads another's answers.
        let reloaded = set(&["ubuntu"]);
        assert!(reloaded.is_match(agents[1]));
        assert!(!reloaded.is_match(agents[0]));
    }
}
