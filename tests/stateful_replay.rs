//! Stateful detection gives the same alarms whether a weeks-long sequence is
//! replayed in one run, split across two runs with a restart between (state
//! persisted in the store), or shuffled within the allowed lateness.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_trailwarden");
const DAY: i64 = 86_400;
/// 2026-03-02T00:00:00Z, a Monday.
const START: i64 = 1_772_409_600;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Who did what, when: the parts shared by the records of both clouds.
struct Call<'a> {
    id: &'a str,
    at: i64,
    action: &'a str,
    service: &'a str,
    key: &'a str,
    user: &'a str,
}

fn tencent(call: Call<'_>, error: Option<&str>, params: Value) -> Value {
    let Call {
        id,
        at,
        action,
        service,
        key,
        user,
    } = call;
    json!({
        "eventVersion": 2,
        "eventID": id,
        "requestID": format!("req-{id}"),
        "eventTime": at,
        "eventName": action,
        "eventSource": format!("{service}.tencentcloudapi.com"),
        "resourceType": service,
        "eventType": "ApiCall",
        "eventRegion": "ap-guangzhou",
        "actionType": if action.starts_with("Describe") || action.starts_with("List") { "Read" } else { "Write" },
        "errorCode": error.map_or(json!(0), |code| json!(code)),
        "errorMessage": error.map_or("permission verify".to_string(), |code| format!("{code}: not authorized")),
        "sourceIPAddress": "45.76.218.92",
        "userAgent": "SDK_GO_1.0.374",
        "requestParameters": params.to_string(),
        "userIdentity": {
            "type": "CAMUser",
            "principalId": format!("1000{}", user.len() * 1111),
            "accountId": 100012345678_i64,
            "secretId": key,
            "userName": user,
        },
    })
}

fn huawei(call: Call<'_>, rating: &str, code: &str, request: Value) -> Value {
    let Call {
        id,
        at,
        action,
        service,
        key,
        user,
    } = call;
    json!({
        "trace_id": id,
        "trace_name": action,
        "trace_rating": rating,
        "trace_type": "ApiCall",
        "service_type": service,
        "resource_type": "resource",
        "time": at * 1000,
        "code": code,
        "source_ip": "116.228.71.34",
        "request": request.to_string(),
        "user": {
            "id": format!("id-{user}"),
            "name": user,
            "domain": {"id": "6d4e2f1a8b9c40d7a5e3f21c0b9d8e7f", "name": "corp"},
            "access_key_id": key,
            "principal_urn": format!("iam::6d4e2f1a8b9c40d7a5e3f21c0b9d8e7f:user:{user}"),
            "principal_is_root_user": "false",
        },
    })
}

/// The sequence, in time order, every timestamp distinct.
fn sequence() -> Vec<(i64, Value)> {
    let mut events: Vec<(i64, Value)> = Vec::new();
    let mut push = |at: i64, record: Value| events.push((at, record));
    // Background: three keys read every working day for five weeks.
    for day in 0..35 {
        for (slot, (key, user)) in [
            ("AKIDdaily1000000000000000000000000001", "report"),
            ("AKIDdaily2000000000000000000000000002", "sync"),
        ]
        .into_iter()
        .enumerate()
        {
            let at = START + day * DAY + 3 * 3600 + slot as i64 * 60 + 7;
            push(
                at,
                tencent(
                    Call {
                        id: &format!("bg-t-{day}-{slot}"),
                        at,
                        action: "DescribeInstances",
                        service: "cvm",
                        key,
                        user,
                    },
                    None,
                    json!({}),
                ),
            );
        }
        let at = START + day * DAY + 4 * 3600 + 11;
        push(
            at,
            huawei(
                Call {
                    id: &format!("bg-h-{day}"),
                    at,
                    action: "startServer",
                    service: "ECS",
                    key: "HPUADAILY00000000001",
                    user: "ops",
                },
                "normal",
                "200",
                json!({}),
            ),
        );
    }
    // Week 1: a user created, then its key lists access keys two hours later.
    let created = START + 2 * DAY + 2 * 3600 + 13;
    push(
        created,
        tencent(
            Call {
                id: "nu-1",
                at: created,
                action: "AddUser",
                service: "cam",
                key: "AKIDadmin0000000000000000000000000001",
                user: "admin",
            },
            None,
            json!({"Name": "mallory"}),
        ),
    );
    push(
        created + 7200,
        tencent(
            Call {
                id: "nu-2",
                at: created + 7200,
                action: "ListAccessKeys",
                service: "cam",
                key: "AKIDmallory00000000000000000000000001",
                user: "mallory",
            },
            None,
            json!({}),
        ),
    );
    // Huawei: a user created, then it creates an access key three hours later.
    let created = START + 3 * DAY + 5 * 3600 + 17;
    push(
        created,
        huawei(
            Call {
                id: "nu-h-1",
                at: created,
                action: "createUser",
                service: "IAM",
                key: "HPUAADMIN00000000001",
                user: "admin",
            },
            "normal",
            "201",
            json!({"user": {"name": "eve"}}),
        ),
    );
    push(
        created + 10800,
        huawei(
            Call {
                id: "nu-h-2",
                at: created + 10800,
                action: "createCredential",
                service: "IAM",
                key: "HPUAEVE0000000000001",
                user: "eve",
            },
            "normal",
            "201",
            json!({}),
        ),
    );
    // A key used on day 1, silent for 45 days, then used again.
    let first = START + DAY + 6 * 3600 + 19;
    push(
        first,
        tencent(
            Call {
                id: "idle-1",
                at: first,
                action: "DescribeInstances",
                service: "cvm",
                key: "AKIDforgotten000000000000000000000001",
                user: "old-bot",
            },
            None,
            json!({}),
        ),
    );
    let again = first + 45 * DAY + 23;
    push(
        again,
        tencent(
            Call {
                id: "idle-2",
                at: again,
                action: "DescribeInstances",
                service: "cvm",
                key: "AKIDforgotten000000000000000000000001",
                user: "old-bot",
            },
            None,
            json!({}),
        ),
    );
    let first = START + 2 * DAY + 6 * 3600 + 29;
    push(
        first,
        huawei(
            Call {
                id: "idle-h-1",
                at: first,
                action: "stopServer",
                service: "ECS",
                key: "HPUAFORGOTTEN0000001",
                user: "old-ops",
            },
            "normal",
            "200",
            json!({}),
        ),
    );
    let again = first + 42 * DAY + 31;
    push(
        again,
        huawei(
            Call {
                id: "idle-h-2",
                at: again,
                action: "startServer",
                service: "ECS",
                key: "HPUAFORGOTTEN0000001",
                user: "old-ops",
            },
            "normal",
            "200",
            json!({}),
        ),
    );
    // Bursts of denied calls: 12 on Tencent within three minutes, 10 on Huawei within two.
    let burst = START + 9 * DAY + 10 * 3600 + 37;
    for n in 0..12 {
        let at = burst + n * 15;
        push(
            at,
            tencent(
                Call {
                    id: &format!("deny-t-{n:02}"),
                    at,
                    action: "DescribeDBInstances",
                    service: "cdb",
                    key: "AKIDprobe00000000000000000000000000001",
                    user: "probe",
                },
                Some("AuthFailure.UnauthorizedOperation"),
                json!({}),
            ),
        );
    }
    let burst = START + 16 * DAY + 11 * 3600 + 41;
    for n in 0..10 {
        let at = burst + n * 11;
        push(
            at,
            huawei(
                Call {
                    id: &format!("deny-h-{n:02}"),
                    at,
                    action: "deleteServer",
                    service: "ECS",
                    key: "HPUAPROBE00000000001",
                    user: "probe",
                },
                "warning",
                "403",
                json!({}),
            ),
        );
    }
    // Off-hours deletes (Asia/Shanghai): 02:30 and 23:15 local.
    let night = START + 20 * DAY + 18 * 3600 + 30 * 60 + 43;
    push(
        night,
        tencent(
            Call {
                id: "night-t",
                at: night,
                action: "TerminateInstances",
                service: "cvm",
                key: "AKIDdaily2000000000000000000000000002",
                user: "sync",
            },
            None,
            json!({"InstanceIds": ["ins-1"]}),
        ),
    );
    let night = START + 27 * DAY + 15 * 3600 + 15 * 60 + 47;
    push(
        night,
        huawei(
            Call {
                id: "night-h",
                at: night,
                action: "deleteServer",
                service: "ECS",
                key: "HPUADAILY00000000001",
                user: "ops",
            },
            "normal",
            "200",
            json!({}),
        ),
    );
    events.sort_by_key(|(at, _)| *at);
    events
}

fn write_lines(path: &Path, events: &[(i64, Value)]) {
    let text: String = events.iter().map(|(_, record)| record.to_string() + "\n").collect();
    std::fs::write(path, text).unwrap();
}

/// Replay `files` in one invocation each into `db`; return the printed matches.
fn replay(db: &Path, runs: &[&[&Path]]) -> Vec<(String, String)> {
    let mut matches = Vec::new();
    for files in runs {
        let output = Command::new(BIN)
            .current_dir(repo())
            .args(["replay", "--format", "jsonl", "--db"])
            .arg(db)
            .args(files.iter().copied())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let value: Value = serde_json::from_str(line).unwrap();
            matches.push((
                value["rule"].as_str().unwrap().to_string(),
                value["event_id"].as_str().unwrap().to_string(),
            ));
        }
    }
    matches.sort();
    matches
}

/// Alarms without their wall-clock columns, keyed by rule and group.
fn alarms(db: &Path) -> BTreeMap<(String, String), (i64, String, String, String)> {
    let connection = rusqlite::Connection::open(db).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT a.rule_id, a.group_key, a.count, a.first_seen, a.last_seen, \
             (SELECT group_concat(event_id, ',') FROM (SELECT event_id FROM alarm_samples s WHERE s.alarm_id = a.id ORDER BY seq)) \
             FROM alarms a",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((
                (row.get(0)?, row.get(1)?),
                (
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get::<_, Option<String>>(5)?.unwrap_or_default(),
                ),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn the_same_alarms_in_one_run_across_a_restart_and_shuffled() {
    let dir = tempfile::tempdir().unwrap();
    let events = sequence();
    let all = dir.path().join("all.jsonl");
    write_lines(&all, &events);
    let (first_half, second_half) = events.split_at(events.len() / 2);
    let part1 = dir.path().join("part1.jsonl");
    let part2 = dir.path().join("part2.jsonl");
    write_lines(&part1, first_half);
    write_lines(&part2, second_half);
    // Shuffle inside 2-minute slices (the allowed lateness is 5 minutes) with a fixed permutation.
    let mut shuffled = events.clone();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut start = 0;
    while start < shuffled.len() {
        let slot = shuffled[start].0 / 120;
        let end = start + shuffled[start..].iter().take_while(|(at, _)| at / 120 == slot).count();
        for index in (start + 1..end).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let other = start + (state as usize) % (index - start + 1);
            shuffled.swap(index, other);
        }
        start = end;
    }
    assert_ne!(
        shuffled.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        events.iter().map(|(at, _)| *at).collect::<Vec<_>>()
    );
    let shuffled_path = dir.path().join("shuffled.jsonl");
    write_lines(&shuffled_path, &shuffled);

    let one = dir.path().join("one.db");
    let split = dir.path().join("split.db");
    let mixed = dir.path().join("mixed.db");
    let matches_one = replay(&one, &[&[&all]]);
    let matches_split = replay(&split, &[&[&part1], &[&part2]]);
    let matches_mixed = replay(&mixed, &[&[&shuffled_path]]);

    for (rule, event) in [
        ("new-user-high-risk-api", "nu-2"),
        ("new-user-high-risk-api", "nu-h-2"),
        ("idle-key-reused", "idle-2"),
        ("idle-key-reused", "idle-h-2"),
        ("denied-call-burst", "deny-t-09"),
        ("denied-call-burst", "deny-h-09"),
        ("off-hours-sensitive-operation", "night-t"),
        ("off-hours-sensitive-operation", "night-h"),
    ] {
        assert!(
            matches_one.contains(&(rule.to_string(), event.to_string())),
            "{rule} should match {event}; matches: {matches_one:?}"
        );
    }
    // Only the long-idle keys are idle; daily keys and first sightings are not.
    let idle: Vec<&String> = matches_one
        .iter()
        .filter(|(rule, _)| rule == "idle-key-reused")
        .map(|(_, event)| event)
        .collect();
    assert_eq!(idle, ["idle-2", "idle-h-2"]);
    // Bursts: the 10th, 11th and 12th Tencent denial, the 10th Huawei one.
    let bursts: Vec<&String> = matches_one
        .iter()
        .filter(|(rule, _)| rule == "denied-call-burst")
        .map(|(_, event)| event)
        .collect();
    assert_eq!(bursts, ["deny-h-09", "deny-t-09", "deny-t-10", "deny-t-11"]);

    assert_eq!(matches_one, matches_split, "split across a restart");
    assert_eq!(matches_one, matches_mixed, "shuffled within the allowed lateness");
    let alarms_one = alarms(&one);
    assert!(!alarms_one.is_empty());
    assert_eq!(alarms_one, alarms(&split), "alarms across a restart");
    assert_eq!(alarms_one, alarms(&mixed), "alarms when shuffled");
}

/// Write `events` as a delivery tree laid out region first, as the clouds do
/// (`<region>/<Y>/<M>/<D>/…`): one file per provider, day and region, the
/// region alternating by day so that path order is not time order (every
/// odd day sorts before every even one). Files come in the clouds' shapes:
/// Huawei as a JSON array, Tencent as gzip JSON lines, a few as
/// CloudTrail-style `{"Records": [...]}` documents.
fn write_region_first(root: &Path, events: &[(i64, Value)]) -> usize {
    use std::io::Write;
    let mut files: BTreeMap<PathBuf, Vec<&Value>> = BTreeMap::new();
    for (at, record) in events {
        let day = at.div_euclid(DAY);
        let date = chrono::DateTime::from_timestamp(*at, 0).unwrap();
        let region = if day % 2 == 1 { "ap-northeast-1" } else { "us-east-1" };
        let provider = if record.get("trace_name").is_some() {
            "huawei"
        } else {
            "tencent"
        };
        let name = match (provider, day % 3) {
            ("huawei", _) => format!("cts_{}.json", date.format("%Y-%m-%dT%H-%M-%SZ")),
            (_, 0) => format!("records_{}.json", date.format("%Y%m%dT%H%MZ")),
            _ => format!("cloudaudit_{}.jsonl.gz", date.format("%Y%m%d")),
        };
        let dir = root
            .join(region)
            .join(date.format("%Y/%m/%d").to_string())
            .join(provider);
        // One file per provider, region and day: the name of its first record.
        let path = files
            .keys()
            .find(|existing| existing.parent() == Some(dir.as_path()))
            .cloned()
            .unwrap_or_else(|| dir.join(name));
        files.entry(path).or_default().push(record);
    }
    for (path, records) in &files {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let body = if name.starts_with("cts_") {
            serde_json::to_vec_pretty(records).unwrap()
        } else if name.starts_with("records_") {
            serde_json::to_vec(&json!({ "Records": records })).unwrap()
        } else {
            let lines: String = records.iter().map(|record| record.to_string() + "\n").collect();
            let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gzip.write_all(lines.as_bytes()).unwrap();
            gzip.finish().unwrap()
        };
        std::fs::write(path, body).unwrap();
    }
    files.len()
}

#[test]
fn a_region_first_delivery_tree_replays_in_event_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let events = sequence();
    let all = dir.path().join("all.jsonl");
    write_lines(&all, &events);
    let tree = dir.path().join("deliveries");
    let files = write_region_first(&tree, &events);
    assert!(files > 40, "{files} files");
    // The layout does what it is meant to: path order is not time order.
    let mut listed: Vec<PathBuf> = Vec::new();
    let mut stack = vec![tree.clone()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                listed.push(path);
            }
        }
    }
    listed.sort();
    assert!(listed[0].to_string_lossy().contains("ap-northeast-1/2026/03/03"));

    let reference = replay(&dir.path().join("one.db"), &[&[&all]]);
    let db = dir.path().join("tree.db");
    let output = Command::new(BIN)
        .current_dir(repo())
        .args(["replay", "--format", "jsonl", "--db"])
        .arg(&db)
        .arg(&tree)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(
        summary.contains(", 0 late,"),
        "nothing is late in a complete replay: {summary}"
    );
    let mut from_tree: Vec<(String, String)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            (
                value["rule"].as_str().unwrap().to_string(),
                value["event_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    from_tree.sort();
    assert!(from_tree.contains(&("idle-key-reused".to_string(), "idle-2".to_string())));
    assert_eq!(from_tree, reference, "the tree gives the matches of the sorted file");
    assert_eq!(alarms(&db), alarms(&dir.path().join("one.db")), "and the same alarms");

    // The daemon's first pass over the same tree (`run --once`) gives them too.
    let daemon_db = dir.path().join("daemon.db");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[source.files]\npaths = [{:?}]\nsettle = \"0s\"\n[store]\npath = {:?}\nsynchronous = \"normal\"\n\
             [rules]\ndir = {:?}\n[api]\nenabled = false\n[log]\nlevel = \"warn\"\n",
            tree.display().to_string(),
            daemon_db.display().to_string(),
            repo().join("rules").display().to_string()
        ),
    )
    .unwrap();
    let output = Command::new(BIN)
        .current_dir(repo())
        .arg("--config")
        .arg(&config)
        .args(["run", "--once"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(alarms(&daemon_db), alarms(&dir.path().join("one.db")), "run --once");
}
