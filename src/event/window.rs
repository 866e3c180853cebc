//! The window of believable event times, checked once after normalization.
//!
//! Every normalizer turns whatever number or text a record carries into a
//! time, so `eventTime: 9223372036854775807` becomes 2262-04-11 and `123`
//! becomes 1970-01-01. Such an event would sit at the top of every sort, push
//! the reorder buffer's watermark and stateful rules' clocks (an "idle key"
//! idle for 236 years), and make the alarm list lie. Rules run on event time,
//! so an impossible time is a record we cannot evaluate: it becomes a dead
//! letter saying which bound it broke. The check lives here, on the one path
//! every record takes after normalization (`pipeline::normalize_chunk`), not
//! in each cloud's normalizer.

use chrono::{DateTime, SecondsFormat, Utc};

use super::model::{AuditEvent, TimeSource};

/// The configured bounds (`normalize.earliest_event_time`, `normalize.max_future_skew`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    /// Nothing is older than this: the clouds' audit logs did not exist before.
    pub earliest: DateTime<Utc>,
    /// How far ahead of this machine's clock a record may be.
    pub max_future_skew: std::time::Duration,
}

impl Default for TimeWindow {
    fn default() -> TimeWindow {
        TimeWindow {
            earliest: DateTime::<Utc>::from_timestamp(DEFAULT_EARLIEST_SECONDS, 0).unwrap_or_default(),
            max_future_skew: std::time::Duration::from_secs(3600),
        }
    }
}

/// 2006-01-01T00:00:00Z: before Amazon S3 (March 2006), the first of the
/// three clouds' services; CloudTrail (2013), CloudAudit and CTS came later.
pub const DEFAULT_EARLIEST_SECONDS: i64 = 1_136_073_600;

impl TimeWindow {
    /// The bounds as of `now` (computed once per batch, not per event).
    pub fn bounds(&self, now: DateTime<Utc>) -> TimeBounds {
        let skew_ms = i64::try_from(self.max_future_skew.as_millis()).unwrap_or(i64::MAX);
        TimeBounds {
            window: *self,
            now,
            earliest_ms: self.earliest.timestamp_millis(),
            latest_ms: now.timestamp_millis().saturating_add(skew_ms),
        }
    }
}

/// A `TimeWindow` fixed at one wall-clock instant.
#[derive(Clone, Copy, Debug)]
pub struct TimeBounds {
    window: TimeWindow,
    now: DateTime<Utc>,
    earliest_ms: i64,
    latest_ms: i64,
}

impl TimeBounds {
    /// Bounds that accept every time (tests, and tools that only print).
    pub fn unbounded() -> TimeBounds {
        TimeBounds {
            window: TimeWindow::default(),
            now: Utc::now(),
            earliest_ms: i64::MIN,
            latest_ms: i64::MAX,
        }
    }

    /// `None` when the event's time is believable, else why it is not.
    pub fn reject(&self, event: &AuditEvent) -> Option<String> {
        self.reject_time(event.time, event.time_source)
    }

    /// `reject` for a time taken from `source`.
    pub fn reject_time(&self, time: DateTime<Utc>, source: TimeSource) -> Option<String> {
        let time_ms = time.timestamp_millis();
        if time_ms >= self.earliest_ms && time_ms <= self.latest_ms {
            return None;
        }
        let time = time.to_rfc3339_opts(SecondsFormat::Millis, true);
        let from = from_where(source);
        if time_ms < self.earliest_ms {
            return Some(format!(
                "impossible event time {time} ({from}): before {}, earlier than any cloud audit log \
                 (`normalize.earliest_event_time`)",
                self.window.earliest.to_rfc3339_opts(SecondsFormat::Secs, true)
            ));
        }
        Some(format!(
            "impossible event time {time} ({from}): more than {} ahead of this machine's clock ({}) \
             (`normalize.max_future_skew`; if the records are right, this clock is wrong)",
            humantime::format_duration(self.window.max_future_skew),
            self.now.to_rfc3339_opts(SecondsFormat::Secs, true)
        ))
    }
}

fn from_where(source: TimeSource) -> &'static str {
    match source {
        TimeSource::Event => "the record's event-time field",
        TimeSource::RecordTime => "the record's record_time",
        TimeSource::Timestamp => "the record's @timestamp",
        TimeSource::EnrichmentTime => "the record's p_event_time",
        TimeSource::Envelope => "the time of the envelope it came in",
        TimeSource::Ingest => "the record has no time: the source's delivery time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn check(bounds: &TimeBounds, time: DateTime<Utc>) -> Option<String> {
        bounds.reject_time(time, TimeSource::Event)
    }

    #[test]
    fn times_outside_the_window_are_refused_with_the_bound_they_broke() {
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
        let bounds = TimeWindow::default().bounds(now);
        assert_eq!(check(&bounds, now), None);
        assert_eq!(check(&bounds, now + chrono::Duration::minutes(59)), None);
        assert_eq!(check(&bounds, Utc.with_ymd_and_hms(2006, 1, 1, 0, 0, 0).unwrap()), None);
        let far = check(&bounds, DateTime::<Utc>::from_timestamp_nanos(i64::MAX)).unwrap();
        assert!(far.contains("ahead of this machine's clock"), "{far}");
        assert!(far.contains("max_future_skew"), "{far}");
        let old = check(&bounds, Utc.timestamp_opt(123, 0).unwrap()).unwrap();
        assert!(
            old.starts_with("impossible event time 1970-01-01T00:02:03.000Z"),
            "{old}"
        );
        assert!(old.contains("before 2006-01-01T00:00:00Z"), "{old}");
        assert!(check(&bounds, now + chrono::Duration::minutes(61)).is_some());
    }
}
