//! The reorder buffer: events are evaluated in event-time order, within an
//! allowed lateness.
//!
//! Audit logs arrive minutes late and unordered. Stateful rules (idle keys,
//! new users, bursts) only give the same answer on shuffled input if they see
//! events in time order, so the engine holds each event until the watermark —
//! the newest event time seen minus the allowed lateness — passes it, and
//! releases events sorted by (time, event id). Ties broken by event id make the
//! order independent of arrival order. In the daemon an event is also released
//! once it has waited `max_hold` of wall-clock time (so alarms are not held back
//! when the stream goes quiet); a replay uses event time only. Caps on the
//! number of held events and on their bytes (the records' JSON size, so a
//! burst of large records cannot hold gigabytes) bound memory: past either,
//! the oldest are released early (counted as forced).
//!
//! A source that merges many streams by time (a directory replay, see
//! `source::merge`) also says how far all of its streams have got — its
//! floor: no record it sends later is older than that, give or take the
//! lateness. The watermark never passes the floor, so events of one file are
//! held until the other files have caught up with them.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::event::model::AuditEvent;

/// Sort key: event time, event id, arrival number (unique).
type Key = (i64, String, u64);

/// An event held in the buffer.
pub struct Held {
    pub event: AuditEvent,
    /// Arrival number; also the row id when persisted.
    pub seq: u64,
    /// Size of the record as read (its share of the JSON it came in).
    pub bytes: u32,
    /// Already written to `pending_events`.
    pub persisted: bool,
}

/// Why an event left the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// The watermark passed it (the normal case).
    Watermark,
    /// It waited `max_hold` of wall-clock time.
    Held,
    /// The buffer was full.
    Full,
    /// End of input / shutdown.
    Flush,
}

pub struct ReorderBuffer {
    lateness_ms: i64,
    max_hold: Option<Duration>,
    max_events: usize,
    max_bytes: usize,
    /// Bytes of the held events.
    held_bytes: usize,
    /// The source's floor (see the module header); `i64::MAX` when it gives none.
    floor_ms: i64,
    entries: BTreeMap<Key, Held>,
    arrivals: VecDeque<(Instant, Key)>,
    /// Newest event time seen (future times beyond one hour of the wall clock are not trusted).
    pub max_time_ms: i64,
    /// Time of the last released event; an arrival older than it is late.
    pub last_released_ms: i64,
    next_seq: u64,
    pub late: u64,
    pub forced: u64,
}

impl ReorderBuffer {
    pub fn new(lateness: Duration, max_hold: Option<Duration>, max_events: usize, max_bytes: usize) -> ReorderBuffer {
        ReorderBuffer {
            lateness_ms: i64::try_from(lateness.as_millis()).unwrap_or(i64::MAX),
            max_hold,
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1),
            held_bytes: 0,
            floor_ms: i64::MAX,
            entries: BTreeMap::new(),
            arrivals: VecDeque::new(),
            max_time_ms: i64::MIN,
            last_released_ms: i64::MIN,
            next_seq: 0,
            late: 0,
            forced: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of the held events.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The source's floor: records it sends from now on are not older than
    /// this (give or take the lateness). `i64::MAX` lifts it.
    pub fn set_floor(&mut self, floor_ms: i64) {
        self.floor_ms = floor_ms;
    }

    /// Add an event of `bytes` bytes. `persisted_seq` restores one loaded from the store.
    pub fn push(&mut self, event: AuditEvent, bytes: usize, persisted_seq: Option<u64>) {
        let time = event.time.timestamp_millis();
        self.note_arrival(time);
        self.insert(event, time, bytes, persisted_seq);
    }

    fn insert(&mut self, event: AuditEvent, time: i64, bytes: usize, persisted_seq: Option<u64>) {
        let seq = self.take_seq(persisted_seq);
        let key = (time, event.event_id.clone(), seq);
        if self.max_hold.is_some() {
            self.arrivals.push_back((Instant::now(), key.clone()));
        }
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.held_bytes += bytes as usize;
        self.entries.insert(
            key,
            Held {
                event,
                seq,
                bytes,
                persisted: persisted_seq.is_some(),
            },
        );
    }

    /// Add an event, or hand it straight back when it may leave at once: the
    /// watermark has passed it and it is older than everything held, so
    /// `pop_ready` would release it next. Most events of a replay of old or
    /// unordered files, and every event with no lateness, take this way,
    /// which skips the ordered map (a key, an id copied, the event moved in
    /// and out).
    pub fn push_or_pass(&mut self, event: AuditEvent, bytes: usize) -> Option<Held> {
        let time = event.time.timestamp_millis();
        let older_than_held = self.entries.first_key_value().is_none_or(|(first, _)| time < first.0);
        self.note_arrival(time);
        if !(older_than_held && time <= self.watermark()) {
            self.insert(event, time, bytes, None);
            return None;
        }
        let seq = self.take_seq(None);
        self.last_released_ms = self.last_released_ms.max(time);
        Some(Held {
            event,
            seq,
            bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
            persisted: false,
        })
    }

    /// Count an arrival at event time `time`: the newest time, and whether it is late.
    fn note_arrival(&mut self, time: i64) {
        let trusted_limit = chrono::Utc::now().timestamp_millis() + 3_600_000;
        if time <= trusted_limit {
            self.max_time_ms = self.max_time_ms.max(time);
        }
        if time < self.last_released_ms {
            self.late += 1;
        }
    }

    /// The arrival number of the next event (`persisted` for one restored).
    fn take_seq(&mut self, persisted: Option<u64>) -> u64 {
        match persisted {
            Some(seq) => {
                self.next_seq = self.next_seq.max(seq + 1);
                seq
            }
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                seq
            }
        }
    }

    fn watermark(&self) -> i64 {
        self.max_time_ms.min(self.floor_ms).saturating_sub(self.lateness_ms)
    }

    /// The next event that may leave, if any.
    pub fn pop_ready(&mut self, now: Instant) -> Option<(Held, Release)> {
        let (first_key, _) = self.entries.first_key_value()?;
        let reason = if first_key.0 <= self.watermark() {
            Some(Release::Watermark)
        } else if self.entries.len() > self.max_events || self.held_bytes > self.max_bytes {
            self.forced += 1;
            Some(Release::Full)
        } else {
            self.held_too_long(now).then_some(Release::Held)
        };
        let reason = reason?;
        let (_, held) = self.entries.pop_first()?;
        self.held_bytes = self.held_bytes.saturating_sub(held.bytes as usize);
        self.last_released_ms = self.last_released_ms.max(held.event.time.timestamp_millis());
        Some((held, reason))
    }

    /// Whether the longest-waiting event still in the buffer has waited
    /// `max_hold`; if so everything up to its time may go.
    fn held_too_long(&mut self, now: Instant) -> bool {
        let Some(hold) = self.max_hold else { return false };
        while let Some((arrived, key)) = self.arrivals.front() {
            if !self.entries.contains_key(key) {
                self.arrivals.pop_front();
                continue;
            }
            if now.duration_since(*arrived) < hold {
                return false;
            }
            // Release in time order up to (and including) this event.
            let release_to = key.0;
            self.max_time_ms = self.max_time_ms.max(release_to.saturating_add(self.lateness_ms));
            return true;
        }
        false
    }

    /// Everything, in order (end of input, shutdown).
    pub fn drain_all(&mut self) -> Vec<Held> {
        self.arrivals.clear();
        self.held_bytes = 0;
        let entries = std::mem::take(&mut self.entries);
        let held: Vec<Held> = entries.into_values().collect();
        if let Some(last) = held.last() {
            self.last_released_ms = self.last_released_ms.max(last.event.time.timestamp_millis());
        }
        held
    }

    /// Take out the held events `leaving` picks (a revoked partition's, on a
    /// shared store; they stay persisted for the partition's next owner).
    pub fn remove_where(&mut self, mut leaving: impl FnMut(&Held) -> bool) -> usize {
        let before = self.entries.len();
        let mut freed = 0usize;
        self.entries.retain(|_, held| {
            let gone = leaving(held);
            if gone {
                freed += held.bytes as usize;
            }
            !gone
        });
        // `arrivals` forgets keys no longer held as it is read.
        self.held_bytes = self.held_bytes.saturating_sub(freed);
        before - self.entries.len()
    }

    /// Held events not yet persisted; marks them persisted.
    pub fn unpersisted(&mut self) -> impl Iterator<Item = &Held> {
        self.entries.values_mut().filter(|held| !held.persisted).map(|held| {
            held.persisted = true;
            &*held
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::model::*;
    use chrono::TimeZone;

    fn event(id: &str, seconds: i64) -> AuditEvent {
        AuditEvent {
            provider: Provider::Aws,
            event_id: id.to_string(),
            request_id: None,
            time: chrono::Utc.timestamp_opt(1_767_225_600 + seconds, 0).unwrap(),
            time_source: TimeSource::Event,
            account_id: None,
            account_name: None,
            principal: Principal::default(),
            access_key: None,
            source: None,
            platform_source: None,
            user_agent: None,
            service: "iam".into(),
            action: "A".into(),
            operations: vec![],
            region: None,
            call_method: CallMethod::Api,
            outcome: Outcome::default(),
            read_only: None,
            resource: Resource::default(),
            mfa: None,
            degraded: None,
            raw: Default::default(),
            origin: Default::default(),
        }
    }

    fn released(buffer: &mut ReorderBuffer) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((held, _)) = buffer.pop_ready(Instant::now()) {
            out.push(held.event.event_id);
        }
        out
    }

    #[test]
    fn events_leave_in_time_order_once_the_watermark_passes() {
        let mut buffer = ReorderBuffer::new(Duration::from_secs(60), None, 1000, usize::MAX);
        buffer.push(event("b", 30), 100, None);
        buffer.push(event("a", 10), 100, None);
        assert!(
            released(&mut buffer).is_empty(),
            "nothing is older than newest - 60 s yet"
        );
        buffer.push(event("c", 100), 100, None);
        assert_eq!(released(&mut buffer), ["a", "b"]);
        buffer.push(event("late", 20), 100, None);
        assert_eq!(buffer.late, 1);
        assert_eq!(released(&mut buffer), ["late"]);
        let rest: Vec<String> = buffer.drain_all().into_iter().map(|held| held.event.event_id).collect();
        assert_eq!(rest, ["c"]);
    }

    #[test]
    fn shuffled_arrivals_release_in_the_same_order() {
        let order = |ids: &[(&str, i64)]| {
            let mut buffer = ReorderBuffer::new(Duration::from_secs(300), None, 1000, usize::MAX);
            let mut out = Vec::new();
            for (id, seconds) in ids {
                buffer.push(event(id, *seconds), 100, None);
                out.extend(released(&mut buffer));
            }
            out.extend(buffer.drain_all().into_iter().map(|held| held.event.event_id));
            out
        };
        let sorted = [("a", 0), ("b", 60), ("c", 60), ("d", 200), ("e", 500), ("f", 900)];
        let shuffled = [("b", 60), ("d", 200), ("a", 0), ("c", 60), ("f", 900), ("e", 500)];
        assert_eq!(order(&sorted), order(&shuffled));
    }

    #[test]
    fn passing_straight_through_releases_what_push_and_pop_would() {
        // A stream with ties, late events and jumps, with and without lateness.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let stream: Vec<(String, i64)> = (0..2_000)
            .map(|index| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (format!("e{index}"), (index / 3) as i64 + (seed % 400) as i64 - 200)
            })
            .collect();
        for lateness in [0, 30, 120] {
            let run = |pass: bool| {
                let mut buffer = ReorderBuffer::new(Duration::from_secs(lateness), None, 50, usize::MAX);
                let mut out = Vec::new();
                for (id, seconds) in &stream {
                    if pass {
                        if let Some(held) = buffer.push_or_pass(event(id, *seconds), 100) {
                            out.push((held.event.event_id, held.seq));
                        }
                    } else {
                        buffer.push(event(id, *seconds), 100, None);
                    }
                    while let Some((held, _)) = buffer.pop_ready(Instant::now()) {
                        out.push((held.event.event_id, held.seq));
                    }
                }
                out.extend(
                    buffer
                        .drain_all()
                        .into_iter()
                        .map(|held| (held.event.event_id, held.seq)),
                );
                (out, buffer.late, buffer.forced, buffer.last_released_ms)
            };
            let (passed, slow) = (run(true), run(false));
            assert_eq!(passed.0.len(), stream.len());
            assert_eq!(passed, slow, "lateness {lateness}");
        }
    }

    #[test]
    fn a_full_buffer_releases_the_oldest() {
        let mut buffer = ReorderBuffer::new(Duration::from_secs(3600), None, 2, usize::MAX);
        for (id, seconds) in [("a", 1), ("b", 2), ("c", 3)] {
            buffer.push(event(id, seconds), 100, None);
        }
        assert_eq!(released(&mut buffer), ["a"]);
        assert_eq!(buffer.forced, 1);
    }

    #[test]
    fn max_hold_releases_when_the_stream_is_quiet() {
        let mut buffer = ReorderBuffer::new(
            Duration::from_secs(3600),
            Some(Duration::from_millis(0)),
            1000,
            usize::MAX,
        );
        buffer.push(event("b", 2), 100, None);
        buffer.push(event("a", 1), 100, None);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(released(&mut buffer), ["a", "b"]);
    }

    #[test]
    fn held_bytes_are_bounded_whatever_the_count() {
        // Records of one timestamp never pass the watermark; only the byte cap releases them.
        let mut buffer = ReorderBuffer::new(Duration::from_secs(300), None, 1_000_000, 10_000);
        let mut released_early = 0;
        for n in 0..100 {
            buffer.push(event(&format!("e{n:03}"), 0), 1_000, None);
            released_early += released(&mut buffer).len();
            assert!(buffer.held_bytes() <= 10_000, "{} bytes held", buffer.held_bytes());
        }
        assert_eq!(released_early, 90);
        assert_eq!(buffer.forced, 90);
        assert_eq!(buffer.late, 0, "same-time records released in order are not late");
        assert_eq!(buffer.len(), 10);
        buffer.drain_all();
        assert_eq!(buffer.held_bytes(), 0);
    }

    #[test]
    fn the_watermark_waits_for_the_sources_floor() {
        let order = |floors: bool| {
            let mut buffer = ReorderBuffer::new(Duration::from_secs(60), None, 1000, usize::MAX);
            let mut out = Vec::new();
            // One stream has reached 1000 s while another is still at 100 s.
            buffer.push(event("a", 500), 100, None);
            buffer.push(event("ahead", 1000), 100, None);
            if floors {
                buffer.set_floor(event("floor", 100).time.timestamp_millis());
            }
            out.extend(released(&mut buffer));
            buffer.push(event("behind", 150), 100, None);
            if floors {
                buffer.set_floor(event("floor", 1100).time.timestamp_millis());
            }
            out.extend(released(&mut buffer));
            out.extend(buffer.drain_all().into_iter().map(|held| held.event.event_id));
            (out, buffer.late)
        };
        assert_eq!(order(false), (vec!["a".into(), "behind".into(), "ahead".into()], 1));
        assert_eq!(order(true), (vec!["behind".into(), "a".into(), "ahead".into()], 0));
    }
}
