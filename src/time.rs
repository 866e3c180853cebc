//! Time as trailwarden writes and reads it: the one text form of a moment
//! (fixed-width RFC 3339 UTC with milliseconds, so text order is time order),
//! milliseconds of a duration, and the one parser of time arguments shared by
//! the command line and the HTTP API.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// Event times are stored as fixed-width RFC 3339 UTC, so text order is time order.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A duration in whole milliseconds, saturating.
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
