//! Event time: the office day (Monday to Friday, 09:00–19:00
//! Asia/Shanghai) that ordinary activity follows, the [`Timeline`] that
//! spreads records over the span by it, and the clouds' own time formats.

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use chrono_tz::Asia::Shanghai;

// Times are epoch milliseconds (UTC) throughout the generator: cheap to
// compare and add, turned into dates only where a record shows one.
pub(super) const HOUR_MS: i64 = 3_600_000;
pub(super) const MINUTE_MS: i64 = 60_000;
pub(super) const DAY_MS: i64 = 24 * HOUR_MS;

/// Epoch milliseconds as a UTC time (the epoch itself if out of range).
pub(super) fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// (weekday, hour, minute) in Asia/Shanghai.
fn local(ms: i64) -> (Weekday, u32, u32) {
    let time = utc(ms).with_timezone(&Shanghai);
    (time.weekday(), time.hour(), time.minute())
}

/// Monday to Friday, 09:00–19:00 Asia/Shanghai.
pub(super) fn working_hours(ms: i64) -> bool {
    let (weekday, hour, _) = local(ms);
    !matches!(weekday, Weekday::Sat | Weekday::Sun) && (9..19).contains(&hour)
}

/// How busy an hour is, relative to a quiet night hour.
fn hour_weight(ms: i64) -> f64 {
    let (weekday, hour, _) = local(ms);
    let weekend = matches!(weekday, Weekday::Sat | Weekday::Sun);
    match (weekend, hour) {
        (false, 9..=18) => 8.0,
        (false, 7..=8 | 19..=21) => 3.0,
        (true, 9..=21) => 2.0,
        _ => 1.0,
    }
}

/// Spreads `events` slots over the span following `hour_weight`.
#[derive(Debug)]
pub(super) struct Timeline {
    start_ms: i64,
    pub(super) span_ms: i64,
    /// Weight of each hour of the span (the last one scaled if partial).
    weights: Vec<f64>,
    /// Cumulative weights, inclusive.
    cumulative: Vec<f64>,
}

impl Timeline {
    pub(super) fn new(start_ms: i64, span_ms: i64) -> Timeline {
        let span_ms = span_ms.max(0);
        let hours = ((span_ms + HOUR_MS - 1) / HOUR_MS).max(1) as usize;
        let mut weights = Vec::with_capacity(hours);
        let mut cumulative = Vec::with_capacity(hours);
        let mut total = 0.0;
        for hour in 0..hours {
            let begin = hour as i64 * HOUR_MS;
            let length = (span_ms - begin).clamp(0, HOUR_MS);
            let fraction = if span_ms == 0 {
                1.0
            } else {
                length as f64 / HOUR_MS as f64
            };
            let weight = hour_weight(start_ms + begin) * fraction;
            total += weight;
            weights.push(weight);
            cumulative.push(total);
        }
        Timeline {
            start_ms,
            span_ms,
            weights,
            cumulative,
        }
    }

    pub(super) fn end_ms(&self) -> i64 {
        self.start_ms + self.span_ms
    }

    /// The time at fraction `f` (0..1) of the activity.
    pub(super) fn at(&self, f: f64) -> i64 {
        if self.span_ms == 0 {
            return self.start_ms;
        }
        let total = *self.cumulative.last().unwrap_or(&0.0);
        let target = f.clamp(0.0, 1.0) * total;
        let hour = self
            .cumulative
            .partition_point(|cumulative| *cumulative <= target)
            .min(self.weights.len() - 1);
        let before = if hour == 0 { 0.0 } else { self.cumulative[hour - 1] };
        let weight = self.weights[hour];
        let within = if weight > 0.0 {
            ((target - before) / weight).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let begin = hour as i64 * HOUR_MS;
        let length = (self.span_ms - begin).clamp(0, HOUR_MS);
        (self.start_ms + begin + (within * length as f64) as i64).min(self.end_ms())
    }
}

/// The first instant at or after `ms` when Shanghai's clock shows `hour`:00.
pub(super) fn next_local_hour(ms: i64, hour: u32) -> i64 {
    let (_, now_hour, now_minute) = local(ms);
    let into_hour = ms.rem_euclid(MINUTE_MS) + i64::from(now_minute) * MINUTE_MS;
    let this_hour_start = ms - into_hour;
    let mut delta_hours = i64::from(hour) - i64::from(now_hour);
    if delta_hours < 0 || (delta_hours == 0 && into_hour > 0) {
        delta_hours += 24;
    }
    this_hour_start + delta_hours * HOUR_MS
}

pub(super) fn aws_time(ms: i64) -> String {
    utc(ms).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `Mar 3, 2026, 2:05:11 PM`, the way IAM responses show dates.
pub(super) fn aws_display_time(ms: i64) -> String {
    utc(ms).format("%b %-d, %Y, %-I:%M:%S %p").to_string()
}

/// `2026-03-03 14:05:11`, Shanghai wall-clock time, as Tencent session expiries show it.
pub(super) fn shanghai_text(ms: i64) -> String {
    utc(ms).with_timezone(&Shanghai).format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn next_local_hour_finds_two_am_shanghai() {
        // 2026-03-02T00:00Z is 08:00 in Shanghai; 02:00 next day is 18:00Z.
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap().timestamp_millis();
        let two = next_local_hour(start, 2);
        assert_eq!(utc(two), Utc.with_ymd_and_hms(2026, 3, 2, 18, 0, 0).unwrap());
        assert_eq!(next_local_hour(two, 2), two);
        assert_eq!(next_local_hour(two + 1, 2), two + DAY_MS);
    }

    #[test]
    fn timeline_is_monotone_and_inside_the_span() {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap().timestamp_millis();
        let timeline = Timeline::new(start, 7 * DAY_MS + 1234);
        let mut last = i64::MIN;
        for step in 0..=10_000 {
            let time = timeline.at(step as f64 / 10_000.0);
            assert!(time >= last);
            assert!(time >= start && time <= start + 7 * DAY_MS + 1234);
            last = time;
        }
    }
}
