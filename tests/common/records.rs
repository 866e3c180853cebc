//! Records as the tests write and read them: JSON lines in and out, and the
//! fixed offset the fixtures' local times are in.

use std::path::Path;

use serde_json::Value;

/// Write `records` as JSON lines, one record a line.
pub fn write_jsonl(path: &Path, records: &[Value]) {
    let text: String = records.iter().map(|record| record.to_string() + "\n").collect();
    std::fs::write(path, text).unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
}

/// Every line of `text` as JSON; the test fails naming a line that is not.
pub fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect()
}

/// UTC+8 (China Standard Time), the zone of records without one.
pub fn utc8() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).expect("a valid offset")
}

/// The dead letters of a store, as (origin, reason), oldest first.
pub fn store_dead_letters(db: &Path) -> Vec<(String, String)> {
    let connection = rusqlite::Connection::open(db).expect("opening the store");
    let mut statement = connection
        .prepare("SELECT origin, reason FROM dead_letters ORDER BY id")
        .expect("the dead-letter query");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("reading dead letters")
        .map(Result::unwrap)
        .collect()
}
