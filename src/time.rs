//! Time as trailwarden writes and reads it: the one text form of a moment
//! (fixed-width RFC 3339 UTC with milliseconds, so text order is time order),
//! milliseconds of a duration, and the one parser of time arguments shared by
//! the command line and the HTTP API.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// Event times are stored as fixed-width RFC 3339 UTC, so text order is time order.
pub fn timestamp(time: DateTime<Utc>) -> String {
    let mut text = String::with_capacity(24);
    push_timestamp(&mut text, time);
    text
}

/// Append `timestamp(time)` to `out`. Written digit by digit (chrono's
/// formatter costs more than a rule's evaluation, and every stored row and
/// printed match has one); years outside 0–9999 and leap seconds, which
/// need chrono's forms, are left to it.
pub fn push_timestamp(out: &mut String, time: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let year = time.year();
    let nanos = time.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.push_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true));
        return;
    }
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for slot in text[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, time.month());
    put(8, 2, time.day());
    put(11, 2, time.hour());
    put(14, 2, time.minute());
    put(17, 2, time.second());
    put(20, 3, nanos / 1_000_000);
    // Digits and ASCII punctuation only: always UTF-8.
    if let Ok(text) = std::str::from_utf8(&text) {
        out.push_str(text);
    }
}

/// A duration in whole milliseconds, saturating.
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod timestamp_tests {
    use super::*;
    use proptest::prelude::*;

    fn chrono_form(time: DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    proptest! {
        #[test]
        fn timestamp_is_chronos_rfc3339_with_millis(millis in -70_000_000_000_000i64..300_000_000_000_000i64, nanos in 0u32..1_000_000) {
            let time = DateTime::<Utc>::from_timestamp_millis(millis).unwrap() + chrono::Duration::nanoseconds(i64::from(nanos));
            prop_assert_eq!(timestamp(time), chrono_form(time));
        }
    }

    #[test]
    fn timestamp_keeps_chronos_form_at_the_edges() {
        for time in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::UNIX_EPOCH,
            DateTime::parse_from_rfc3339("2016-12-31T23:59:60.500Z")
                .unwrap()
                .to_utc(),
            DateTime::parse_from_rfc3339("9999-12-31T23:59:59.999Z")
                .unwrap()
                .to_utc(),
            DateTime::parse_from_rfc3339("0000-01-01T00:00:00.000Z")
                .unwrap()
                .to_utc(),
        ] {
            assert_eq!(timestamp(time), chrono_form(time), "{time:?}");
        }
        assert_eq!(timestamp(DateTime::<Utc>::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
