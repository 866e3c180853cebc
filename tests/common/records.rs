//! Records as the tests write and read them: JSON lines in and out, and the
//! fixed offset the fixtures' local times are in, and a record builder.

use std::path::Path;

use serde_json::{Value, json};

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

/// A Tencent CloudAudit `CreateAccessKey` record by `key` from `ip` at
/// `at` (epoch seconds): one match of `access-key-created`.
pub fn tencent_create_key(id: &str, at: i64, key: &str, ip: &str) -> Value {
    json!({
        "eventVersion": 2,
        "eventID": id,
        "requestID": format!("req-{id}"),
        "eventTime": at,
        "eventName": "CreateAccessKey",
        "eventSource": "cam.tencentcloudapi.com",
        "resourceType": "cam",
        "eventType": "ApiCall",
        "eventRegion": "ap-guangzhou",
        "actionType": "Write",
        "errorCode": 0,
        "errorMessage": "permission verify",
        "sourceIPAddress": ip,
        "userAgent": "SDK_GO_1.0.374",
        "requestParameters": json!({"TargetUin": 100023456789_i64}).to_string(),
        "userIdentity": {
            "type": "CAMUser",
            "principalId": "100023456789",
            "accountId": 100012345678_i64,
            "secretId": key,
            "userName": "ops-sync",
        },
    })
}
