//! Lenient readers for the fields of real audit records.
//!
//! The three clouds (and the pipelines in front of them) send numbers as
//! strings, strings as numbers, JSON inside strings, booleans as `"true"`,
//! epoch seconds or milliseconds or several date formats, IPv4 addresses with
//! leading zeros, and keys in another case than documented. Everything here
//! accepts all of those and never panics; a value it cannot read is `None`.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use super::json::{Json, JsonObject};
use super::model::{IpKind, SourceAddress};

/// A JSON object read with optional case-insensitive key fallback (some
/// pipelines lower-case every CloudTrail key: `eventname`, `useridentity` …).
#[derive(Clone, Copy)]
pub struct Obj<'a> {
    pub map: JsonObject<'a>,
    /// Look keys up case-insensitively when the exact spelling is absent.
    pub case_insensitive: bool,
}

impl<'a> Obj<'a> {
    pub fn new(map: impl Into<JsonObject<'a>>) -> Obj<'a> {
        Obj {
            map: map.into(),
            case_insensitive: false,
        }
    }

    pub fn with_case_insensitive(map: impl Into<JsonObject<'a>>, case_insensitive: bool) -> Obj<'a> {
        Obj {
            map: map.into(),
            case_insensitive,
        }
    }

    /// The value under `key`; `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<Json<'a>> {
        let found = match self.map.get(key) {
            Some(value) => Some(value),
            None if self.case_insensitive => self.map.get_ignore_case(key),
            None => None,
        };
        found.filter(|value| !value.is_null())
    }

    /// A nested object.
    pub fn obj(&self, key: &str) -> Option<Obj<'a>> {
        self.child(self.get(key)?)
    }

    /// The values under each of `keys`, as `get` reads them (`null` absent),
    /// the members walked once (`JsonObject::pick`).
    pub fn pick<const N: usize>(&self, keys: [&str; N]) -> [Option<Json<'a>>; N] {
        if self.case_insensitive {
            return keys.map(|key| self.get(key));
        }
        self.map.pick(keys).map(|found| found.filter(|value| !value.is_null()))
    }

    /// `value` as a nested object read as this one is.
    pub fn child(&self, value: Json<'a>) -> Option<Obj<'a>> {
        Some(Obj::with_case_insensitive(value.as_object()?, self.case_insensitive))
    }

    /// A scalar as text: strings trimmed, numbers and booleans printed;
    /// empty strings, objects and arrays are `None`.
    pub fn text(&self, key: &str) -> Option<Cow<'a, str>> {
        self.get(key).and_then(text_of)
    }

    /// Like `text`, owned.
    pub fn string(&self, key: &str) -> Option<String> {
        self.text(key).map(Cow::into_owned)
    }

    pub fn boolean(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(bool_of)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

impl<'a> From<&'a Map<String, Value>> for JsonObject<'a> {
    fn from(map: &'a Map<String, Value>) -> JsonObject<'a> {
        JsonObject::Tree(map)
    }
}

/// A scalar JSON value as text. Strings are trimmed; empty text is `None`.
pub fn text_of<'a>(value: impl Into<Json<'a>>) -> Option<Cow<'a, str>> {
    let value = value.into();
    if let Some(text) = value.as_str() {
        let trimmed = trim(text);
        return (!trimmed.is_empty()).then_some(Cow::Borrowed(trimmed));
    }
    if let Some(flag) = value.as_bool() {
        return Some(Cow::Borrowed(if flag { "true" } else { "false" }));
    }
    value.number_text().map(Cow::Owned)
}

/// `str::trim`, answered from the two end bytes for the usual text that
/// starts and ends with a printable ASCII character (no whitespace there).
fn trim(text: &str) -> &str {
    let printable = |byte: &u8| (b'!'..0x80).contains(byte);
    let bytes = text.as_bytes();
    if bytes.first().is_some_and(printable) && bytes.last().is_some_and(printable) {
        text
    } else {
        text.trim()
    }
}

/// A boolean from `true`, `"true"`, `"True"`, `1`, `"1"`, `"yes"` (and the negatives).
pub fn bool_of<'a>(value: impl Into<Json<'a>>) -> Option<bool> {
    let value = value.into();
    if let Some(flag) = value.as_bool() {
        return Some(flag);
    }
    if let Some(text) = value.as_str() {
        return bool_text(text);
    }
    value.as_f64().map(|n| n != 0.0)
}

/// A boolean from text: `true`, `"1"`, `"yes"`, `"y"` and the negatives, in any case.
pub fn bool_text(text: &str) -> Option<bool> {
    let text = text.trim();
    for (words, flag) in [(["true", "1", "yes", "y"], true), (["false", "0", "no", "n"], false)] {
        if words.iter().any(|word| word.eq_ignore_ascii_case(text)) {
            return Some(flag);
        }
    }
    None
}

/// An integer from a number or a numeric string.
pub fn i64_of<'a>(value: impl Into<Json<'a>>) -> Option<i64> {
    let value = value.into();
    if let Some(text) = value.as_str() {
        let text = text.trim();
        return text
            .parse::<i64>()
            .ok()
            .or_else(|| text.parse::<f64>().ok().filter(|n| n.is_finite()).map(|n| n as i64));
    }
    value
        .as_i64()
        .or_else(|| value.as_f64().filter(|n| n.is_finite()).map(|n| n as i64))
}

/// If `value` is a string holding a JSON object or array, replace it by the
/// parsed document. Anything else is left alone. Returns whether it changed.
pub fn expand_json_string(value: &mut Value) -> bool {
    let Value::String(text) = value else {
        return false;
    };
    let trimmed = text.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return false;
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(parsed @ (Value::Object(_) | Value::Array(_))) => {
            *value = parsed;
            true
        }
        _ => false,
    }
}

/// Expand JSON-inside-string fields of an object in place, for the named keys.
pub fn expand_json_fields(map: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        if let Some(value) = map.get_mut(*key) {
            expand_json_string(value);
        }
    }
}

/// Epoch numbers: which unit, judged by magnitude (seconds until the year
/// 5138, then milliseconds, then microseconds).
fn datetime_from_epoch(number: f64) -> Option<DateTime<Utc>> {
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let millis = if number < 1e11 {
        number * 1000.0
    } else if number < 1e14 {
        number
    } else if number < 1e17 {
        number / 1000.0
    } else {
        number / 1_000_000.0
    };
    DateTime::<Utc>::from_timestamp_millis(millis as i64)
}

/// A time from any of the shapes the clouds use:
/// - epoch seconds / milliseconds / microseconds, as a number or a numeric string;
/// - RFC 3339 / ISO 8601 (`2026-01-01T00:00:00Z`, with or without fraction or offset);
/// - `YYYY-MM-DD HH:MM:SS[.fraction]` without a zone, read in `naive_offset`;
/// - the old CTS form `2016/12/08 11:07:28 GMT+08:00`.
pub fn time_of<'a>(value: impl Into<Json<'a>>, naive_offset: FixedOffset) -> Option<DateTime<Utc>> {
    let value = value.into();
    if let Some(text) = value.as_str() {
        return parse_time_text(text.trim(), naive_offset);
    }
    if value.is_number() {
        return datetime_from_epoch(value.as_f64()?);
    }
    None
}

pub fn parse_time_text(text: &str, naive_offset: FixedOffset) -> Option<DateTime<Utc>> {
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|byte| byte.is_ascii_digit() || byte == b'.') {
        return datetime_from_epoch(text.parse::<f64>().ok()?);
    }
    if let Some(time) = parse_iso_fast(text, naive_offset) {
        return Some(time);
    }
    parse_time_general(text, naive_offset)
}

/// The shapes nearly every record's time has, read digit by digit:
/// `YYYY-MM-DD`, `T` or a space, `HH:MM:SS`, an optional fraction of one to
/// nine digits, then `Z`, `±HH:MM`, `±HHMM` or nothing (UTC after `T`, the
/// naive offset after a space). `None` for anything else, which
/// `parse_time_general` reads as before; where both read a text they agree
/// (a property test holds them to it). chrono's format parsers cost some
/// 3 000 instructions a record here.
fn parse_iso_fast(text: &str, naive_offset: FixedOffset) -> Option<DateTime<Utc>> {
    let bytes = text.as_bytes();
    if bytes.len() < 19 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        bytes.get(from..to)?.iter().try_fold(0u32, |value, byte| {
            byte.is_ascii_digit().then(|| value * 10 + u32::from(byte - b'0'))
        })
    };
    let separator = bytes[10];
    if separator != b'T' && separator != b' ' {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 7)?, number(8, 10)?)?;
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let mut at = 19;
    let mut nanos = 0;
    if bytes.get(at) == Some(&b'.') {
        let digits = bytes[at + 1..].iter().take_while(|byte| byte.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        nanos = number(at + 1, at + 1 + digits)? * 10u32.pow(9 - digits as u32);
        at += 1 + digits;
    }
    let zone = match &bytes[at..] {
        [] if separator == b'T' => FixedOffset::east_opt(0)?,
        [] => naive_offset,
        [b'Z'] => FixedOffset::east_opt(0)?,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] | [sign @ (b'+' | b'-'), _, _, _, _] => {
            let minutes_at = if bytes.len() - at == 6 { at + 4 } else { at + 3 };
            let (hours, minutes) = (number(at + 1, at + 3)?, number(minutes_at, minutes_at + 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = (hours * 3600 + minutes * 60) as i32;
            FixedOffset::east_opt(if *sign == b'-' { -seconds } else { seconds })?
        }
        _ => return None,
    };
    let time = chrono::NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    zone.from_local_datetime(&date.and_time(time))
        .single()
        .map(|time| time.with_timezone(&Utc))
}

/// Every other shape a time text comes in.
fn parse_time_general(text: &str, naive_offset: FixedOffset) -> Option<DateTime<Utc>> {
    if let Ok(parsed) = DateTime::parse_from_rfc3339(text) {
        return Some(parsed.with_timezone(&Utc));
    }
    // ISO with a space instead of `T`, or with an offset and no colon.
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(parsed) = DateTime::parse_from_str(text, format) {
            return Some(parsed.with_timezone(&Utc));
        }
    }
    // Old CTS: `2016/12/08 11:07:28 GMT+08:00`.
    if let Some((local, zone)) = text.split_once(" GMT") {
        let offset = parse_offset(zone)?;
        let naive = NaiveDateTime::parse_from_str(local, "%Y/%m/%d %H:%M:%S").ok()?;
        return offset
            .from_local_datetime(&naive)
            .single()
            .map(|time| time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y/%m/%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            let zone = if text.contains('T') {
                FixedOffset::east_opt(0)?
            } else {
                naive_offset
            };
            return zone
                .from_local_datetime(&naive)
                .single()
                .map(|time| time.with_timezone(&Utc));
        }
    }
    None
}

/// `+08:00`, `+0800`, `-5`, `` (UTC).
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let text = text.trim();
    if text.is_empty() {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => (1, text),
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((hours, minutes)) => (hours.parse::<i32>().ok()?, minutes.parse::<i32>().ok()?),
        None if rest.len() == 4 => (rest.get(..2)?.parse().ok()?, rest.get(2..)?.parse().ok()?),
        None => (rest.parse().ok()?, 0),
    };
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// Parse an IP best-effort: IPv6, IPv4, and IPv4 with leading zeros
/// (`075.050.255.067`, which `Ipv4Addr::from_str` rejects) read as decimal.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    // `[::1]` and `1.2.3.4:5678` forms.
    let unbracketed = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Some(ip);
    }
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse::<u8>().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

/// Classify an address: public, LAN-ish private, or neither.
pub fn ip_kind(ip: &IpAddr) -> IpKind {
    let private = match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link local fe80::/10
                || v6.to_ipv4_mapped().is_some_and(|v4| ip_kind(&IpAddr::V4(v4)) == IpKind::Private)
        }
    };
    if private { IpKind::Private } else { IpKind::Public }
}

/// The source address of a record: kept as given, parsed where it is an IP.
pub fn source_address(text: Option<Cow<'_, str>>) -> Option<SourceAddress> {
    let text = text?;
    let ip = parse_ip(&text);
    let kind = match &ip {
        Some(ip) => ip_kind(ip),
        None => IpKind::Hostname,
    };
    Some(SourceAddress {
        text: text.into_owned(),
        ip,
        kind,
        asset: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The end-byte shortcut trims exactly what `str::trim` does.
        #[test]
        fn trimming_answers_as_str_trim(text in "[ \t\n\u{a0}\u{2003}a-z!~\u{7f}é]{0,12}") {
            proptest::prop_assert_eq!(trim(&text), text.trim());
        }
    }
    use serde_json::json;

    fn utc8() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn epoch_units_are_judged_by_magnitude() {
        let seconds = time_of(&json!(1767225600), utc8()).unwrap();
        let millis = time_of(&json!(1767225600000_i64), utc8()).unwrap();
        let millis_text = time_of(&json!("1767225600000"), utc8()).unwrap();
        let float_seconds = time_of(&json!(1767225600.0), utc8()).unwrap();
        assert_eq!(seconds.to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(seconds, millis);
        assert_eq!(seconds, millis_text);
        assert_eq!(seconds, float_seconds);
    }

    #[test]
    fn date_strings_in_every_documented_shape() {
        let expected = "2016-12-08T03:07:28+00:00";
        for text in [
            "2016/12/08 11:07:28 GMT+08:00",
            "2016-12-08 11:07:28",
            "2016-12-08T03:07:28Z",
            "2016-12-08T11:07:28+08:00",
            "2016-12-08T03:07:28.000Z",
        ] {
            let parsed = parse_time_text(text, utc8()).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(parsed.to_rfc3339(), expected, "{text}");
        }
        // Panther's enrichment time is UTC with nanoseconds and no zone marker,
        // but it is read with the naive offset the caller chooses.
        let panther = parse_time_text("2016-12-08 03:07:28.000000000", FixedOffset::east_opt(0).unwrap());
        assert_eq!(panther.unwrap().to_rfc3339(), expected);
        assert!(parse_time_text("not-a-date", utc8()).is_none());
        // A four-byte offset that is not four characters must not split a character.
        assert!(parse_time_text("2016/12/08 11:07:28 GMT+€1", utc8()).is_none());
        assert!(parse_time_text("2016/12/08 11:07:28 GMT+0800", utc8()).is_some());
        assert!(time_of(&json!(-5), utc8()).is_none());
        assert!(time_of(&json!({"a": 1}), utc8()).is_none());
    }

    proptest::proptest! {
        /// Wherever the fast reader reads a time, the general one reads the same instant.
        #[test]
        fn the_fast_time_reader_agrees_with_the_general_one(
            year in 1900u32..2200,
            month in 0u32..14,
            day in 0u32..33,
            hour in 0u32..26,
            minute in 0u32..61,
            second in 0u32..62,
            separator in proptest::sample::select(vec!["T", " ", "t", "_"]),
            fraction in proptest::option::of("[0-9]{0,11}"),
            zone in proptest::sample::select(vec![
                "", "Z", "z", "+08:00", "-05:30", "+0800", "-0530", "+8", "+24:00", "+08:60", " ", "+08:0", "UTC",
            ]),
            naive in -12i32..14,
        ) {
            let fraction = fraction.map(|digits| format!(".{digits}")).unwrap_or_default();
            let text = format!("{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}{fraction}{zone}");
            let naive_offset = FixedOffset::east_opt(naive * 3600).unwrap();
            if let Some(fast) = parse_iso_fast(&text, naive_offset) {
                proptest::prop_assert_eq!(Some(fast), parse_time_general(&text, naive_offset), "{}", text);
            }
        }
    }

    #[test]
    fn the_fast_time_reader_reads_the_common_shapes() {
        let utc = FixedOffset::east_opt(0).unwrap();
        for text in [
            "2019-01-01T00:00:00Z",
            "2019-01-01 08:00:00.5+08:00",
            "2019-01-01 08:00:00+0800",
            "2019-01-01T00:00:00.123456789",
            "2019-01-01 00:00:00",
        ] {
            let fast = parse_iso_fast(text, utc).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(Some(fast), parse_time_general(text, utc), "{text}");
        }
    }

    #[test]
    fn ips_with_leading_zeros_and_non_ips() {
        assert_eq!(parse_ip("075.050.255.067"), Some("75.50.255.67".parse().unwrap()));
        assert_eq!(parse_ip("2001:db8::1"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(parse_ip("ec2.amazonaws.com"), None);
        assert_eq!(parse_ip("1.2.3"), None);
        assert_eq!(parse_ip("1.2.3.4.5"), None);
        assert_eq!(parse_ip("256.1.1.1"), None);
        let source = source_address(Some(Cow::Borrowed("AWS Internal"))).unwrap();
        assert_eq!(source.kind, IpKind::Hostname);
        let lan = source_address(Some(Cow::Borrowed("10.1.2.3"))).unwrap();
        assert_eq!(lan.kind, IpKind::Private);
        let public = source_address(Some(Cow::Borrowed("203.0.113.9"))).unwrap();
        assert_eq!(public.kind, IpKind::Public);
    }

    #[test]
    fn scalars_of_the_wrong_type_are_read() {
        assert_eq!(bool_of(&json!("true")), Some(true));
        assert_eq!(bool_of(&json!(0)), Some(false));
        assert_eq!(bool_of(&json!("maybe")), None);
        assert_eq!(i64_of(&json!("42")), Some(42));
        assert_eq!(i64_of(&json!(42.9)), Some(42));
        assert_eq!(text_of(&json!(100012345678_i64)).as_deref(), Some("100012345678"));
        assert_eq!(text_of(&json!("  ")), None);
    }

    #[test]
    fn json_inside_strings_is_expanded_only_when_it_is_json() {
        let mut value = json!("{\"Name\":\"crossfire\"}");
        assert!(expand_json_string(&mut value));
        assert_eq!(value, json!({"Name": "crossfire"}));
        let mut broken = json!("{not json");
        assert!(!expand_json_string(&mut broken));
        let mut plain = json!("hello");
        assert!(!expand_json_string(&mut plain));
    }
}
