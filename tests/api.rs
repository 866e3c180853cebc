//! End-to-end tests of the HTTP API: the real binary (`run`) over a store
//! filled from the bundled examples, on a free port, driven by a minimal
//! HTTP/1.1 client. Every endpoint: its content, 401 without or with a wrong
//! token, 403 for too low a role, 400 naming the bad parameter or field,
//! 404, 409, 413, 415, and no full access key in any response.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const VIEWER: &str = "tw_test_viewer_token_0123456789abcdef0123456789";
const OPERATOR: &str = "tw_test_operator_token_0123456789abcdef01234567";
const ADMIN: &str = "tw_test_admin_token_0123456789abcdef0123456789a";

/// Longest wait for one answer.
const ANSWER_PATIENCE: Duration = Duration::from_secs(60);

impl Reply {
    /// Assert an error answer: the status, the JSON shape, and the words the message must hold.
    fn error(&self, status: u16, words: &[&str]) -> &Reply {
        assert_eq!(self.status, status, "{}", self.body);
        let body = self.json();
        assert_eq!(body["error"]["status"], status, "{}", self.body);
        assert!(body["error"]["code"].is_string(), "{}", self.body);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        for word in words {
            assert!(message.contains(word), "{word:?} not in {message:?}");
        }
        self
    }
}

/// A running daemon with its API. (The daemon is declared first: it is
/// stopped before its directory goes.)
struct Server {
    daemon: Daemon,
    sandbox: Sandbox,
    http: Http,
}

/// The three tokens' entries (viewer, operator, admin).
fn tokens() -> String {
    let hash = |token: &str| hex::encode(trailwarden::api::auth::hash_token(token));
    format!(
        "\n[[api.tokens]]\nname = \"vera\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\n\
         [[api.tokens]]\nname = \"otto\"\nrole = \"operator\"\nsha256 = \"{}\"\n\n\
         [[api.tokens]]\nname = \"ada\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        hash(VIEWER),
        hash(OPERATOR),
        hash(ADMIN),
    )
}

impl Server {
    fn start() -> Server {
        Server::start_with("")
    }

    fn start_with(extra: &str) -> Server {
        Server::start_configured(extra, |config| config)
    }

    /// `configure` changes the standard configuration before `extra` is appended.
    fn start_configured(extra: &str, configure: impl FnOnce(Config) -> Config) -> Server {
        let sandbox = Sandbox::new();
        let watch = sandbox.path("watch");
        std::fs::create_dir_all(&watch).unwrap();
        sandbox.write_config(
            &configure(
                Config::standard(&sandbox.store)
                    .files(&[&watch])
                    .set("source.files", "poll_interval", "100ms")
                    .set("source.files", "settle", "0s")
                    .unset("rules", "watch")
                    .set("pipeline", "max_hold", "100ms")
                    .set("api", "body_limit", 4096),
            )
            .append(&tokens())
            .append(extra),
        );
        // The examples go into the store first, so every test sees them all.
        let replay = sandbox
            .command(&["replay", "--format", "json", "--db", sandbox.store_arg(), "examples"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
        let daemon = sandbox.start(&["run"], Log::Collect);
        let printed = daemon.read_lines_until(Duration::from_secs(60), |line| line.starts_with("console: http://"));
        let address = printed
            .lines()
            .find_map(|line| line.strip_prefix("console: http://"))
            .map(|url| url.trim_end_matches('/').to_string())
            .unwrap_or_else(|| panic!("no console URL printed: {}", daemon.stderr()));
        let server = Server {
            daemon,
            sandbox,
            http: Http::new(address, ANSWER_PATIENCE),
        };
        wait_until("the API to be ready", Duration::from_secs(30), || {
            server.get("/readyz", None).status == 200
        });
        server
    }

    fn store(&self) -> PathBuf {
        self.sandbox.store.clone()
    }

    fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<(&str, &[u8])>) -> Reply {
        self.http
            .request(method, path, token, body)
            .unwrap_or_else(|error| panic!("{method} {path}: {error:#}"))
    }

    fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request("GET", path, token, None)
    }

    fn send(&self, method: &str, path: &str, token: &str, body: &Value) -> Reply {
        let bytes = body.to_string().into_bytes();
        self.request(method, path, Some(token), Some(("application/json", &bytes)))
    }

    fn ok(&self, path: &str) -> Value {
        let reply = self.get(path, Some(VIEWER));
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        reply.json()
    }
}

/// Every authenticated endpoint, as (method, path, body).
fn endpoints() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/metrics", None),
        ("GET", "/api/v1/openapi.json", None),
        ("GET", "/api/v1/me", None),
        ("GET", "/api/v1/alarms", None),
        ("GET", "/api/v1/alarms/1", None),
        (
            "POST",
            "/api/v1/alarms/1/status",
            Some(json!({"status": "processed", "reason": "x"})),
        ),
        ("GET", "/api/v1/allowlist", None),
        ("POST", "/api/v1/allowlist", Some(json!({"rule": "x", "reason": "y"}))),
        ("GET", "/api/v1/allowlist/report", None),
        ("PATCH", "/api/v1/allowlist/1", Some(json!({"expires": "never"}))),
        ("DELETE", "/api/v1/allowlist/1", None),
        ("GET", "/api/v1/changes", None),
        ("GET", "/api/v1/remarks", None),
        (
            "PUT",
            "/api/v1/remarks",
            Some(json!({"kind": "ip", "value": "192.0.2.1", "remark": "x"})),
        ),
        ("DELETE", "/api/v1/remarks?kind=ip&value=192.0.2.1", None),
        ("GET", "/api/v1/assets", None),
        (
            "POST",
            "/api/v1/assets",
            Some(json!({"cidr": "192.0.2.0/24", "name": "x"})),
        ),
        ("GET", "/api/v1/rules", None),
        ("POST", "/api/v1/rules/reload", None),
        ("GET", "/api/v1/activity", None),
        ("GET", "/api/v1/traces", None),
        ("GET", "/api/v1/events", None),
        ("GET", "/api/v1/dead-letters", None),
        ("GET", "/api/v1/notifications/deliveries", None),
        ("POST", "/api/v1/notifications/deliveries/1/resend", None),
    ]
}

fn call(server: &Server, method: &str, path: &str, token: Option<&str>, body: &Option<Value>) -> Reply {
    match body {
        Some(body) => {
            let bytes = body.to_string().into_bytes();
            server.request(method, path, token, Some(("application/json", &bytes)))
        }
        None => server.request(method, path, token, None),
    }
}

#[test]
fn health_is_open_and_everything_else_needs_a_token_and_a_role() {
    let server = Server::start();
    assert_eq!(server.get("/healthz", None).json(), json!({"status": "ok"}));
    let ready = server.get("/readyz", None);
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["ready"], true);
    for (method, path, body) in endpoints() {
        let reply = call(&server, method, path, None, &body);
        reply.error(401, &["authorization", "missing"]);
        assert!(reply.header("www-authenticate").is_some(), "{method} {path}");
        call(&server, method, path, Some("tw_not_a_configured_token"), &body).error(401, &["unknown token"]);
    }
    // Every answer, refused or not, is kept out of caches and not sniffed.
    for (path, token) in [
        ("/api/v1/alarms", Some(VIEWER)),
        ("/api/v1/alarms", None),
        ("/healthz", None),
    ] {
        let reply = server.get(path, token);
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"), "{path}");
    }
    // The console's files keep their own caching (revalidated by ETag).
    assert_eq!(server.get("/", None).header("cache-control"), Some("no-cache"));
    // Unknown API paths do not answer anonymously either.
    server.get("/api/v1/nothing-here", None).error(401, &["authorization"]);
    server.get("/api/v1/nothing-here", Some(VIEWER)).error(404, &["path"]);
    server
        .request("DELETE", "/api/v1/alarms", Some(VIEWER), None)
        .error(405, &["method"]);
    for (token, name, role) in [
        (VIEWER, "vera", "viewer"),
        (OPERATOR, "otto", "operator"),
        (ADMIN, "ada", "admin"),
    ] {
        let me = server.get("/api/v1/me", Some(token));
        assert_eq!(
            me.json(),
            json!({"name": name, "role": role, "timezone": "Asia/Shanghai"})
        );
    }
    // A viewer reads everything and changes nothing; an operator does not reload rules.
    for (method, path, body) in endpoints() {
        let reply = call(&server, method, path, Some(VIEWER), &body);
        if method == "GET" {
            assert_eq!(reply.status, 200, "{method} {path}: {}", reply.body);
        } else {
            reply.error(403, &["role", "vera", "viewer"]);
        }
    }
    server
        .request("POST", "/api/v1/rules/reload", Some(OPERATOR), None)
        .error(403, &["otto", "admin"]);
    let reload = server.request("POST", "/api/v1/rules/reload", Some(ADMIN), None);
    assert_eq!(reload.status, 200, "{}", reload.body);
    assert!(reload.json()["attempts"].as_u64().unwrap() >= 1, "{}", reload.body);
    assert_eq!(reload.json()["rules"], 53);
    // Tokens never reach the log.
    let log = server.daemon.stderr();
    for token in [VIEWER, OPERATOR, ADMIN] {
        assert!(!log.contains(token), "{log}");
    }
}

#[test]
fn alarms_filter_sort_and_paginate() {
    let server = Server::start();
    let all = server.ok("/api/v1/alarms?limit=500");
    let total = all["total"].as_u64().unwrap();
    let items = all["items"].as_array().unwrap();
    assert!(total > 100, "{total}");
    assert_eq!(items.len() as u64, total);
    assert_eq!((all["offset"].as_u64(), all["limit"].as_u64()), (Some(0), Some(500)));
    // Default page, and the time order (most recent first).
    let page = server.ok("/api/v1/alarms");
    assert_eq!(page["limit"], 50);
    assert_eq!(page["items"].as_array().unwrap().len(), 50);
    assert_eq!(page["total"], total);
    let last_seen: Vec<&str> = items.iter().map(|item| item["last_seen"].as_str().unwrap()).collect();
    assert!(last_seen.windows(2).all(|pair| pair[0] >= pair[1]));
    // Pages are disjoint slices of the same order.
    let first = server.ok("/api/v1/alarms?limit=7&offset=0");
    let second = server.ok("/api/v1/alarms?limit=7&offset=7");
    let ids = |page: &Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_i64().unwrap())
            .collect()
    };
    let all_ids = ids(&all);
    assert_eq!(ids(&first), all_ids[..7]);
    assert_eq!(ids(&second), all_ids[7..14]);
    let past_end = server.ok(&format!("/api/v1/alarms?offset={total}"));
    assert!(past_end["items"].as_array().unwrap().is_empty());
    // Level means this level and above; total is the filter's count.
    let high = server.ok("/api/v1/alarms?level=high&limit=500");
    let high_items = high["items"].as_array().unwrap();
    assert!(!high_items.is_empty() && high_items.iter().all(|item| item["level"] == "high"));
    assert_eq!(high["total"].as_u64().unwrap() as usize, high_items.len());
    let medium = server.ok("/api/v1/alarms?level=MEDIUM&limit=500");
    assert!(
        medium["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["level"] == "high" || item["level"] == "medium")
    );
    assert!(medium["total"].as_u64() > high["total"].as_u64());
    // Sorts and orders.
    let by_count = server.ok("/api/v1/alarms?sort=count&limit=500");
    let counts: Vec<u64> = by_count["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["count"].as_u64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|pair| pair[0] >= pair[1]) && counts[0] > 1,
        "{counts:?}"
    );
    let ascending = server.ok("/api/v1/alarms?sort=count&order=asc&limit=1");
    assert_eq!(ascending["items"][0]["count"].as_u64(), counts.last().copied());
    let by_level = server.ok("/api/v1/alarms?sort=level&limit=1");
    assert_eq!(by_level["items"][0]["level"], "high");
    let oldest = server.ok("/api/v1/alarms?order=asc&limit=1");
    assert_eq!(oldest["items"][0]["id"], items.last().unwrap()["id"]);
    // Rule, account, status, key (masked form), free text, time range.
    let sample = &items[0];
    let rule = sample["rule"].as_str().unwrap();
    let by_rule = server.ok(&format!("/api/v1/alarms?rule={rule}&limit=500"));
    assert!(
        by_rule["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["rule"] == rule)
    );
    let with_account = items.iter().find(|item| item["account_id"].is_string()).unwrap();
    let account = with_account["account_id"].as_str().unwrap();
    let by_account = server.ok(&format!("/api/v1/alarms?account={account}&limit=500"));
    assert!(by_account["total"].as_u64().unwrap() >= 1);
    assert!(
        by_account["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|item| item["account_id"] == account)
    );
    let with_key = items.iter().find(|item| item["access_key_id"].is_string()).unwrap();
    let masked = with_key["access_key_id"].as_str().unwrap();
    let by_key = server.ok(&format!("/api/v1/alarms?key={masked}&limit=500"));
    assert!(
        by_key["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item["id"] == with_key["id"])
    );
    assert_eq!(server.ok("/api/v1/alarms?status=processed")["total"], 0);
    assert_eq!(server.ok("/api/v1/alarms?status=unprocessed")["total"], total);
    let title = sample["title"].as_str().unwrap();
    let word = title.split(' ').max_by_key(|word| word.len()).unwrap().to_lowercase();
    let by_text = server.ok(&format!("/api/v1/alarms?q={word}&limit=500"));
    assert!(
        by_text["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item["id"] == sample["id"])
    );
    assert!(by_text["total"].as_u64() < Some(total));
    assert_eq!(server.ok("/api/v1/alarms?q=no-such-thing-anywhere")["total"], 0);
    assert_eq!(server.ok("/api/v1/alarms?since=2026-03-04T00:00:00Z")["total"], 0);
    assert_eq!(server.ok("/api/v1/alarms?until=2026-03-01")["total"], 0);
    assert_eq!(
        server.ok("/api/v1/alarms?since=2026-03-01&until=2026-03-05")["total"],
        total
    );
    // Bad parameters are named.
    for (query, words) in [
        ("level=hgih", &["level", "hgih", "expected info, low, medium, high"][..]),
        ("status=done", &["status", "done"]),
        ("sort=name", &["sort", "name"]),
        ("order=up", &["order", "up"]),
        ("limit=501", &["limit", "501"]),
        ("limit=0", &["limit"]),
        ("offset=-1", &["offset"]),
        ("since=last+tuesday", &["since", "not a time"]),
        ("until=soon", &["until"]),
        ("colour=red", &["colour", "unknown parameter"]),
        ("level=high&level=low", &["level", "more than once"]),
    ] {
        server
            .get(&format!("/api/v1/alarms?{query}"), Some(VIEWER))
            .error(400, words);
    }
}

#[test]
fn alarm_details_and_the_triage_workflow() {
    let server = Server::start();
    let all = server.ok("/api/v1/alarms?limit=500");
    let items = all["items"].as_array().unwrap();
    // An alarm with calls from more than one call record.
    let mut chosen = None;
    for item in items {
        let detail = server.ok(&format!("/api/v1/alarms/{}", item["id"]));
        if detail["calls"].as_array().unwrap().len() > 1 {
            chosen = Some(detail);
            break;
        }
    }
    let detail = chosen.expect("an alarm with several call records");
    let id = detail["id"].as_i64().unwrap();
    for field in [
        "rule",
        "level",
        "title",
        "status",
        "group_key",
        "first_seen",
        "last_seen",
        "count",
    ] {
        assert!(!detail[field].is_null(), "{field}: {detail}");
    }
    assert_eq!(
        detail["rule"]["id"].as_str(),
        items.iter().find(|item| item["id"] == id).unwrap()["rule"].as_str()
    );
    assert!(detail["rule"]["title"].is_string() && detail["rule"]["description"].is_string());
    assert!(detail["rule"]["tags"].is_array() && detail["rule"]["enabled"].is_boolean());
    assert!(!detail["samples"].as_array().unwrap().is_empty());
    assert_eq!(detail["history"], json!([]));
    let calls = detail["calls"].as_array().unwrap();
    assert!(
        calls
            .iter()
            .all(|call| call["ip_type"].is_string() && call["ip_type_label"].is_string())
    );
    // Call records grouped per source IP add up.
    let groups = detail["ip_groups"].as_array().unwrap();
    let ips: BTreeSet<&str> = calls.iter().map(|call| call["source_ip"].as_str().unwrap()).collect();
    assert_eq!(groups.len(), ips.len());
    let sum =
        |values: &[Value], field: &str| -> u64 { values.iter().map(|value| value[field].as_u64().unwrap()).sum() };
    assert_eq!(sum(groups, "success_count"), sum(calls, "success_count"));
    assert_eq!(sum(groups, "failure_count"), sum(calls, "failure_count"));
    for group in groups {
        assert!(group["ip_type"].is_string() && group["ip_label"].is_string());
        assert!(
            group["calls"]
                .as_array()
                .unwrap()
                .iter()
                .all(|call| call["source_ip"] == group["source_ip"])
        );
    }
    server
        .get("/api/v1/alarms/999999", Some(VIEWER))
        .error(404, &["999999"]);
    server
        .get("/api/v1/alarms/abc", Some(VIEWER))
        .error(400, &["id", "abc"]);
    server.get("/api/v1/alarms/1?x=1", Some(VIEWER)).error(400, &["x"]);
    // Status changes: bad bodies named, then the change with its actor.
    let path = format!("/api/v1/alarms/{id}/status");
    server
        .send("POST", &path, OPERATOR, &json!({"status": "procesed", "reason": "x"}))
        .error(400, &["status", "procesed"]);
    server
        .send("POST", &path, OPERATOR, &json!({"status": "processed"}))
        .error(400, &["reason", "required"]);
    server
        .send(
            "POST",
            &path,
            OPERATOR,
            &json!({"status": "processed", "reason": "   "}),
        )
        .error(400, &["reason"]);
    server
        .send("POST", &path, OPERATOR, &json!({"status": 3, "reason": "x"}))
        .error(400, &["status", "string"]);
    server
        .send(
            "POST",
            &path,
            OPERATOR,
            &json!({"status": "processed", "reason": "x", "by": "me"}),
        )
        .error(400, &["by", "unknown field"]);
    server
        .send("POST", &path, OPERATOR, &json!(["processed"]))
        .error(400, &["body", "object"]);
    server
        .request(
            "POST",
            &path,
            Some(OPERATOR),
            Some(("application/json", b"{\"status\": ")),
        )
        .error(400, &["body", "malformed JSON"]);
    server
        .request("POST", &path, Some(OPERATOR), Some(("text/plain", b"processed")))
        .error(415, &["content-type", "application/json"]);
    server
        .request("POST", &path, Some(OPERATOR), None)
        .error(415, &["content-type"]);
    let big = json!({"status": "processed", "reason": "x".repeat(5000)}).to_string();
    server
        .request(
            "POST",
            &path,
            Some(OPERATOR),
            Some(("application/json", big.as_bytes())),
        )
        .error(413, &["body", "limit"]);
    server
        .send(
            "POST",
            "/api/v1/alarms/999999/status",
            OPERATOR,
            &json!({"status": "processed", "reason": "x"}),
        )
        .error(404, &["999999"]);
    let changed = server.send(
        "POST",
        &path,
        OPERATOR,
        &json!({"status": "processed", "reason": "checked with the owner"}),
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    let changed = changed.json();
    assert_eq!(changed["status"], "processed");
    assert_eq!(changed["id"], id);
    let history = changed["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["actor"], "otto");
    assert_eq!(history[0]["from_status"], "unprocessed");
    assert_eq!(history[0]["to_status"], "processed");
    assert_eq!(history[0]["reason"], "checked with the owner");
    assert_eq!(
        server.ok(&format!("/api/v1/alarms/{id}"))["history"],
        changed["history"]
    );
    assert_eq!(server.ok("/api/v1/alarms?status=processed")["total"], 1);
    server
        .send(
            "POST",
            &path,
            OPERATOR,
            &json!({"status": "processed", "reason": "again"}),
        )
        .error(409, &["already processed"]);
    // A reopen that would make a second open alarm for the same rule and key is refused.
    let connection = rusqlite::Connection::open(server.store()).unwrap();
    connection
        .execute(
            "INSERT INTO alarms (rule_id, rule_hash, level, title, status, group_key, provider, account_identity, \
             principal_kind, first_seen, last_seen, count, last_output, created_at, updated_at) \
             SELECT rule_id, rule_hash, level, title, 'unprocessed', group_key, provider, account_identity, \
             principal_kind, first_seen, last_seen, 1, last_output, created_at, updated_at FROM alarms WHERE id = ?1",
            [id],
        )
        .unwrap();
    let newer = connection.last_insert_rowid();
    let reopen = server.send(
        "POST",
        &path,
        ADMIN,
        &json!({"status": "unprocessed", "reason": "reopen"}),
    );
    reopen.error(409, &[&format!("alarm {newer}"), &id.to_string()]);
    // Once the newer one is ignored, the reopen goes through (by the admin).
    let ignored = server.send(
        "POST",
        &format!("/api/v1/alarms/{newer}/status"),
        OPERATOR,
        &json!({"status": "ignored", "reason": "duplicate"}),
    );
    assert_eq!(ignored.status, 200, "{}", ignored.body);
    let reopened = server.send(
        "POST",
        &path,
        ADMIN,
        &json!({"status": "unprocessed", "reason": "reopen"}),
    );
    assert_eq!(reopened.status, 200, "{}", reopened.body);
    assert_eq!(reopened.json()["history"][1]["actor"], "ada");
}

#[test]
fn allowlist_remarks_and_assets() {
    let server = Server::start();
    let items = server.ok("/api/v1/alarms?limit=500")["items"]
        .as_array()
        .unwrap()
        .clone();
    let alarm = items
        .iter()
        .find(|item| item["access_key_id"].is_string())
        .unwrap()
        .clone();
    let id = alarm["id"].as_i64().unwrap();
    let masked = alarm["access_key_id"].as_str().unwrap().to_string();
    // A policy prefilled from an alarm: its rule and key (masked on the way out).
    let created = server.send(
        "POST",
        "/api/v1/allowlist",
        OPERATOR,
        &json!({"from_alarm": id, "reason": "known automation", "expires": "30d"}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let policy = created.json();
    assert_eq!(policy["rule_id"], alarm["rule"]);
    assert_eq!(policy["access_key"], masked.as_str());
    assert_eq!(policy["created_by"], "otto");
    assert_eq!(policy["via"], "api");
    assert_eq!(policy["state"], "active");
    assert!(policy["expires_at"].is_string());
    // Explicit fields, with the key given in its masked form.
    let explicit = server.send(
        "POST",
        "/api/v1/allowlist",
        OPERATOR,
        &json!({"key": masked, "ip": "10.0.0.0/8", "api": "cam.*", "call_method": "API", "rule": "x", "reason": "lab"}),
    );
    assert_eq!(explicit.status, 201, "{}", explicit.body);
    let explicit = explicit.json();
    assert_eq!(
        (
            &explicit["source_ip"],
            &explicit["call_method"],
            &explicit["created_by"],
            &explicit["access_key"]
        ),
        (&json!("10.0.0.0/8"), &json!("api"), &json!("otto"), &json!(masked))
    );
    let list = server.ok("/api/v1/allowlist");
    assert_eq!(list.as_array().unwrap().len(), 2);
    // The expiry changes, is recorded with the token's name, and the chain still verifies.
    let policy_id = explicit["id"].as_i64().unwrap();
    let changed = server.send(
        "PATCH",
        &format!("/api/v1/allowlist/{policy_id}"),
        OPERATOR,
        &json!({"expires": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.json()["expires_at"], "2099-01-01T00:00:00.000Z");
    let never = server.send(
        "PATCH",
        &format!("/api/v1/allowlist/{policy_id}"),
        OPERATOR,
        &json!({"expires": null}),
    );
    assert_eq!(never.json()["expires_at"], Value::Null, "{}", never.body);
    let change = &server.ok("/api/v1/changes?subject=policy")[0];
    assert_eq!(
        (&change["action"], &change["actor"], &change["subject_id"]),
        (&json!("changed"), &json!("otto"), &json!(policy_id))
    );
    server
        .send(
            "PATCH",
            &format!("/api/v1/allowlist/{policy_id}"),
            OPERATOR,
            &json!({"expires": "whenever"}),
        )
        .error(400, &["whenever"]);
    server
        .send("PATCH", &format!("/api/v1/allowlist/{policy_id}"), OPERATOR, &json!({}))
        .error(400, &["expires", "required"]);
    server
        .send("PATCH", "/api/v1/allowlist/99999", OPERATOR, &json!({"expires": "1d"}))
        .error(404, &["99999"]);
    let verified = server.sandbox.ok(&["store", "verify"]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let report = server.ok("/api/v1/allowlist/report");
    assert_eq!(report["never_hit"].as_array().unwrap().len(), 2);
    assert_eq!(report["expired"], json!([]));
    for (body, words) in [
        (json!({"ip": "10.0.0", "reason": "x"}), &["ip", "10.0.0"][..]),
        (json!({"reason": "x"}), &["at least one of key, ip"]),
        (json!({"rule": "x"}), &["reason", "required"]),
        (
            json!({"rule": "x", "reason": "y", "call_method": "phone"}),
            &["call_method", "phone"],
        ),
        (json!({"rule": "x", "reason": "y", "api": "a[b"}), &["api"]),
        (
            json!({"rule": "x", "reason": "y", "expires": "whenever"}),
            &["expires", "whenever"],
        ),
        (
            json!({"rule": "x", "reason": "y", "colour": "red"}),
            &["colour", "unknown field"],
        ),
        (
            json!({"rule": "x", "reason": "y", "from_alarm": "7"}),
            &["from_alarm", "integer"],
        ),
        (
            json!({"key": "AKIDzz****zzzzzzzzzzz", "reason": "y"}),
            &["key", "matches no access key"],
        ),
        (json!({"rule": "", "reason": "y"}), &["rule", "empty"]),
    ] {
        server
            .send("POST", "/api/v1/allowlist", OPERATOR, &body)
            .error(400, words);
    }
    server
        .send(
            "POST",
            "/api/v1/allowlist",
            OPERATOR,
            &json!({"from_alarm": 999999, "reason": "y"}),
        )
        .error(404, &["from_alarm", "999999"]);
    let policy_id = policy["id"].as_i64().unwrap();
    let removed = server.request(
        "DELETE",
        &format!("/api/v1/allowlist/{policy_id}"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(removed.status, 204, "{}", removed.body);
    server
        .request(
            "DELETE",
            &format!("/api/v1/allowlist/{policy_id}"),
            Some(OPERATOR),
            None,
        )
        .error(404, &[&policy_id.to_string()]);
    server
        .request("DELETE", "/api/v1/allowlist/x", Some(OPERATOR), None)
        .error(400, &["id"]);
    assert_eq!(server.ok("/api/v1/allowlist").as_array().unwrap().len(), 1);
    // Remarks: on a key given masked (as the console shows it) and on an IP.
    let set = server.send(
        "PUT",
        "/api/v1/remarks",
        OPERATOR,
        &json!({"kind": "key", "value": masked, "remark": "deploy robot"}),
    );
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.json()["value"], masked.as_str());
    let ip = alarm_ip(&server, id);
    let set = server.send(
        "PUT",
        "/api/v1/remarks",
        OPERATOR,
        &json!({"kind": "ip", "value": ip, "remark": "vpn exit"}),
    );
    assert_eq!(set.status, 200, "{}", set.body);
    let remarks = server.ok("/api/v1/remarks");
    assert_eq!(remarks.as_array().unwrap().len(), 2);
    assert!(
        remarks
            .as_array()
            .unwrap()
            .iter()
            .any(|remark| remark["value"] == masked.as_str())
    );
    let detail = server.ok(&format!("/api/v1/alarms/{id}"));
    assert_eq!(detail["access_key_remark"], "deploy robot");
    assert!(
        server.ok("/api/v1/alarms?limit=500")["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item["access_key_remark"] == "deploy robot")
    );
    for (body, status, words) in [
        (
            json!({"kind": "ip", "value": ip, "remark": "x".repeat(21)}),
            400,
            &["remark", "21"][..],
        ),
        (
            json!({"kind": "ip", "value": ip, "remark": ""}),
            400,
            &["remark", "empty"],
        ),
        (
            json!({"kind": "mac", "value": ip, "remark": "x"}),
            400,
            &["kind", "mac"],
        ),
        (
            json!({"kind": "ip", "value": "not-an-ip", "remark": "x"}),
            400,
            &["value", "not an IP"],
        ),
        (json!({"kind": "ip", "remark": "x"}), 400, &["value", "required"]),
    ] {
        server
            .send("PUT", "/api/v1/remarks", OPERATOR, &body)
            .error(status, words);
    }
    let removed = server.request(
        "DELETE",
        &format!("/api/v1/remarks?kind=key&value={masked}"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(removed.status, 204, "{}", removed.body);
    let removed = server.request(
        "DELETE",
        &format!("/api/v1/remarks?kind=ip&value={ip}"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(removed.status, 204, "{}", removed.body);
    server
        .request(
            "DELETE",
            "/api/v1/remarks?kind=ip&value=192.0.2.200",
            Some(OPERATOR),
            None,
        )
        .error(404, &["value", "192.0.2.200"]);
    server
        .request("DELETE", "/api/v1/remarks?kind=ip", Some(OPERATOR), None)
        .error(400, &["value", "required"]);
    assert_eq!(server.ok("/api/v1/remarks"), json!([]));
    // Assets make the alarm's address "within the account".
    let added = server.send(
        "POST",
        "/api/v1/assets",
        OPERATOR,
        &json!({"cidr": ip, "name": "office"}),
    );
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.json()["name"], "office");
    assert_eq!(server.ok("/api/v1/assets").as_array().unwrap().len(), 1);
    let detail = server.ok(&format!("/api/v1/alarms/{id}"));
    let group = detail["ip_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["source_ip"] == ip.as_str())
        .unwrap()
        .clone();
    assert_eq!(group["ip_type"], "within_account");
    assert_eq!(group["asset"], "office");
    for (body, words) in [
        (
            json!({"cidr": "192.0.2.0/33", "name": "lab"}),
            &["cidr", "192.0.2.0/33"][..],
        ),
        (json!({"cidr": "192.0.2.0/24", "name": " "}), &["name"]),
        (json!({"cidr": "192.0.2.0/24"}), &["name", "required"]),
    ] {
        server.send("POST", "/api/v1/assets", OPERATOR, &body).error(400, words);
    }
}

/// An address the alarm's calls came from.
fn alarm_ip(server: &Server, id: i64) -> String {
    let detail = server.ok(&format!("/api/v1/alarms/{id}"));
    detail["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|call| call["source_ip"].as_str())
        .find(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        .unwrap_or("203.0.113.9")
        .to_string()
}

#[test]
fn rules_reports_metrics_and_the_openapi_document() {
    let server = Server::start();
    // A broken record quoting a key, picked up by the running daemon as a dead letter.
    std::fs::write(
        server.sandbox.dir().join("broken.tmp"),
        "{\"eventName\": \"CreateAccessKey\", \"accessKeyId\": \"AKIAQWERTYUIOPASDFGH\", \n",
    )
    .unwrap();
    std::fs::rename(
        server.sandbox.dir().join("broken.tmp"),
        server.sandbox.dir().join("watch").join("broken.jsonl"),
    )
    .unwrap();
    let rules = server.ok("/api/v1/rules");
    let list = rules["rules"].as_array().unwrap();
    assert_eq!(list.len(), 53);
    for rule in list {
        for field in ["id", "title", "level", "enabled", "tags", "description", "advice"] {
            assert!(rule.get(field).is_some(), "{field}: {rule}");
        }
        assert!(
            rule["tests"]["passed"].is_u64() && rule["tests"]["failed"] == 0,
            "{rule}"
        );
    }
    assert!(
        list.iter()
            .map(|rule| rule["tests"]["passed"].as_u64().unwrap())
            .sum::<u64>()
            > 30
    );
    assert_eq!(rules["reload"]["rules"], 53);
    assert!(rules["reload"]["version"].is_string());
    server.get("/api/v1/rules?x=1", Some(VIEWER)).error(400, &["x"]);
    // Activity: the god view over the examples.
    let activity = server.ok("/api/v1/activity?top=3");
    assert_eq!(activity["events"], 2400);
    assert_eq!(activity["busiest_principals"].as_array().unwrap().len(), 3);
    assert!(activity["busiest_source_ips"].is_array() && activity["failure_rates"].is_array());
    assert!(activity["new_key_ips_total"].as_u64().unwrap() > 0);
    let ranged = server.ok("/api/v1/activity?since=2026-03-03&until=2026-03-04");
    assert!(ranged["events"].as_u64().unwrap() < 2400 && ranged["events"].as_u64().unwrap() > 0);
    server.get("/api/v1/activity?top=0", Some(VIEWER)).error(400, &["top"]);
    server
        .get("/api/v1/activity?since=x", Some(VIEWER))
        .error(400, &["since"]);
    // Traces, with filters.
    let traces = server.ok("/api/v1/traces?limit=1000");
    let traces = traces.as_array().unwrap();
    assert!(!traces.is_empty());
    assert!(traces.iter().all(|trace| trace["raw"].is_object()));
    let failures = server.ok("/api/v1/traces?status=failure&limit=1000");
    assert!(
        failures
            .as_array()
            .unwrap()
            .iter()
            .all(|trace| trace["status"] == "failure")
    );
    let one = server.ok("/api/v1/traces?limit=1");
    assert_eq!(one.as_array().unwrap().len(), 1);
    let service = traces[0]["service"].as_str().unwrap();
    let by_service = server.ok(&format!("/api/v1/traces?service={service}&limit=1000"));
    assert!(
        by_service
            .as_array()
            .unwrap()
            .iter()
            .all(|trace| trace["service"] == service)
    );
    server
        .get("/api/v1/traces?status=maybe", Some(VIEWER))
        .error(400, &["status", "maybe"]);
    server
        .get("/api/v1/traces?limit=5000", Some(VIEWER))
        .error(400, &["limit"]);
    server
        .get("/api/v1/traces?until=later", Some(VIEWER))
        .error(400, &["until"]);
    // Dead letters: the broken record, its key masked.
    let deadline = Instant::now() + Duration::from_secs(30);
    let letters = loop {
        let letters = server.ok("/api/v1/dead-letters");
        if !letters.as_array().unwrap().is_empty() || Instant::now() > deadline {
            break letters;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = letters.to_string();
    assert!(text.contains("broken.jsonl"), "{text}");
    assert!(!text.contains("AKIAQWERTYUIOPASDFGH"), "{text}");
    server
        .get("/api/v1/dead-letters?limit=x", Some(VIEWER))
        .error(400, &["limit"]);
    // Metrics: pipeline, store and API counters.
    let metrics = server.get("/metrics", Some(VIEWER));
    assert!(metrics.header("content-type").unwrap().starts_with("text/plain"));
    for name in [
        "trailwarden_records_total",
        "trailwarden_malformed_total 1",
        "trailwarden_batches_total",
    ] {
        assert!(metrics.body.contains(name), "{name}: {}", metrics.body);
    }
    assert!(
        metrics
            .body
            .contains("trailwarden_api_requests_total{method=\"GET\",route=\"/api/v1/rules\",status=\"200\"} 1"),
        "{}",
        metrics.body
    );
    // The OpenAPI document names every route and method.
    let spec = server.ok("/api/v1/openapi.json");
    assert_eq!(spec["openapi"], "3.1.0");
    for (method, path, _) in endpoints() {
        let path = path.split('?').next().unwrap().replace("/1", "/{id}");
        let operation = &spec["paths"][&path][method.to_lowercase()];
        assert!(operation.is_object(), "{method} {path} is not in the OpenAPI document");
        assert!(operation["responses"].is_object(), "{method} {path}");
    }
    for path in ["/healthz", "/readyz"] {
        assert!(spec["paths"][path]["get"].is_object(), "{path}");
    }
}

/// Full access keys of the examples, from the store.
fn full_keys(store: &Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(store).unwrap();
    let mut keys = BTreeSet::new();
    for sql in [
        "SELECT DISTINCT access_key_id FROM alarms WHERE access_key_id IS NOT NULL",
        "SELECT DISTINCT access_key_id FROM key_traces WHERE access_key_id IS NOT NULL",
        "SELECT DISTINCT access_key_id FROM activity_key_ips",
    ] {
        let mut statement = connection.prepare(sql).unwrap();
        let rows = statement.query_map([], |row| row.get::<_, String>(0)).unwrap();
        keys.extend(rows.map(Result::unwrap).filter(|key| key.len() >= 16));
    }
    keys.into_iter().collect()
}

#[test]
fn no_response_carries_a_full_access_key() {
    let server = Server::start();
    let keys = full_keys(&server.store());
    assert!(keys.len() > 10, "{keys:?}");
    let items = server.ok("/api/v1/alarms?limit=500")["items"]
        .as_array()
        .unwrap()
        .clone();
    // Operators act on keys: an allowlist policy and a remark on a key.
    let with_key = items.iter().find(|item| item["access_key_id"].is_string()).unwrap();
    let created = server.send(
        "POST",
        "/api/v1/allowlist",
        OPERATOR,
        &json!({"from_alarm": with_key["id"], "reason": "x"}),
    );
    assert_eq!(created.status, 201);
    let remark = server.send(
        "PUT",
        "/api/v1/remarks",
        OPERATOR,
        &json!({"kind": "key", "value": keys[0], "remark": "k"}),
    );
    assert_eq!(remark.status, 200, "{}", remark.body);
    let mut bodies = vec![created.body, remark.body];
    for path in [
        "/api/v1/alarms?limit=500",
        "/api/v1/allowlist",
        "/api/v1/allowlist/report",
        "/api/v1/remarks",
        "/api/v1/activity?top=1000",
        "/api/v1/traces?limit=1000",
        "/api/v1/events?limit=1000",
        "/api/v1/dead-letters?limit=1000",
        "/api/v1/rules",
        "/metrics",
    ] {
        bodies.push(server.get(path, Some(VIEWER)).body);
    }
    for item in &items {
        bodies.push(server.get(&format!("/api/v1/alarms/{}", item["id"]), Some(VIEWER)).body);
    }
    // Searching the event store by a full key answers with it masked.
    for key in keys.iter().take(5) {
        let found = server.get(&format!("/api/v1/events?key={key}"), Some(VIEWER));
        assert!(!found.json()["events"].as_array().unwrap().is_empty(), "{key}");
        bodies.push(found.body);
    }
    // Errors quoting what was sent do not echo a key either.
    bodies.push(
        server
            .request(
                "DELETE",
                &format!("/api/v1/remarks?kind=key&value={}", keys[1]),
                Some(OPERATOR),
                None,
            )
            .body,
    );
    for body in &bodies {
        for key in &keys {
            assert!(!body.contains(key.as_str()), "full key {key} in a response: {body}");
        }
    }
    let log = server.daemon.stderr();
    for key in &keys {
        assert!(!log.contains(key.as_str()), "full key {key} in the log");
    }
    // Nor a bearer token the callers sent (valid or not).
    server.get("/api/v1/me", Some("tw_not_a_configured_token_0123456789"));
    let log = server.daemon.stderr();
    for token in [VIEWER, OPERATOR, ADMIN, "tw_not_a_configured_token_0123456789"] {
        assert!(!log.contains(token), "a token in the log");
    }
}

#[test]
fn token_commands_and_bad_api_settings() {
    let output = Trailwarden::new()
        .command(&["api", "new-token", "--name", "ci-bot", "--role", "operator"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let token = text
        .split_whitespace()
        .find(|word| word.starts_with("tw_"))
        .unwrap()
        .to_string();
    assert!(
        text.contains("[[api.tokens]]") && text.contains("name = \"ci-bot\"") && text.contains("role = \"operator\"")
    );
    let mut hasher = Trailwarden::new()
        .command(&["api", "hash-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    hasher
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{token}\n").as_bytes())
        .unwrap();
    let hashed = hasher.wait_with_output().unwrap();
    let hash = String::from_utf8_lossy(&hashed.stdout).trim().to_string();
    assert_eq!(hash.len(), 64);
    assert!(text.contains(&format!("sha256 = \"{hash}\"")), "{text}");
    let rejected = Trailwarden::new()
        .command(&["api", "new-token", "--name", "x", "--role", "root"])
        .output()
        .unwrap();
    assert!(!rejected.status.success());
    // Bad settings name their key.
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[api]\nbind = \"localhost:80:80\"\n", "api.bind"),
        (
            "[[api.tokens]]\nname = \"a\"\nrole = \"owner\"\nsha256 = \"00\"\n",
            "api.tokens[0].role",
        ),
        (
            "[[api.tokens]]\nname = \"a\"\nrole = \"admin\"\nsha256 = \"abc\"\n",
            "api.tokens[0].sha256",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let output = Trailwarden::new()
            .command(&["--config", path.to_str().unwrap(), "run", "--once"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(key), "{text}: {stderr}");
    }
}

#[test]
fn without_tokens_run_makes_a_private_admin_token_file() {
    // No tokens configured; the store in a directory of its own, where the
    // token file goes.
    let sandbox = Sandbox::named("data/store.db", "config.toml");
    let watch = sandbox.path("watch");
    std::fs::create_dir_all(&watch).unwrap();
    sandbox.write_config(
        &Config::new()
            .files(&[&watch])
            .set("store", "path", &sandbox.store)
            .set("rules", "dir", rules_dir())
            .set("log", "level", "warn")
            .set("api", "bind", "127.0.0.1:0"),
    );
    let daemon = sandbox.start(&["run"], Log::Collect);
    // What it prints up to the line naming the token file.
    let lines = daemon.read_lines_until(Duration::from_secs(60), |line| line.contains("console-token"));
    let address = lines
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("console: http://"))
        .map(|url| url.trim_end_matches('/').to_string());
    let token_path = sandbox.dir().join("data").join("console-token");
    assert!(lines.contains(&token_path.display().to_string()), "{lines}");
    let token = std::fs::read_to_string(&token_path).unwrap().trim().to_string();
    assert!(!lines.contains(&token), "{lines}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let server = Server {
        daemon,
        sandbox,
        http: Http::new(address.expect("a console URL"), ANSWER_PATIENCE),
    };
    assert_eq!(
        server.get("/api/v1/me", Some(&token)).json(),
        json!({"name": "console", "role": "admin", "timezone": "Asia/Shanghai"})
    );
}

#[test]
fn notification_deliveries_are_listed_and_failed_ones_resent() {
    // A topic that wants status changes, sent to a port nobody listens on, given up at once.
    let server = Server::start_with(
        "\n[notify]\npoll_interval = \"100ms\"\nbackoff_initial = \"10ms\"\nmax_age = \"1ms\"\n\n\
         [[notify.topics]]\nname = \"triage\"\nmin_level = \"info\"\non = [\"status\"]\n\n\
         [[notify.topics.subscriptions]]\nname = \"down\"\nwebhook = \"http://127.0.0.1:9/hook?token=robot-secret\"\n",
    );
    assert_eq!(server.ok("/api/v1/notifications/deliveries"), json!([]));
    let alarm = server.ok("/api/v1/alarms?limit=1")["items"][0]["id"].as_i64().unwrap();
    let changed = server.send(
        "POST",
        &format!("/api/v1/alarms/{alarm}/status"),
        OPERATOR,
        &json!({"status": "processed", "reason": "handled"}),
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    // The status change queued a delivery in its transaction; the worker tries it and gives up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let rows = server.ok("/api/v1/notifications/deliveries?status=failed");
        if !rows.as_array().unwrap().is_empty() {
            break rows;
        }
        assert!(Instant::now() < deadline, "the delivery never failed");
        std::thread::sleep(Duration::from_millis(100));
    };
    let row = &failed[0];
    assert_eq!(row["kind"], "status");
    assert_eq!(row["alarm_id"], alarm);
    assert_eq!(row["topic"], "triage");
    assert_eq!(row["subscription"], "down");
    assert_eq!(row["channel"], "webhook");
    assert_eq!(row["attempts"], 1);
    let error = row["last_error"].as_str().unwrap();
    assert!(
        error.contains("POST http://127.0.0.1:9/hook?…") && error.contains("gave up"),
        "{error}"
    );
    assert!(
        !failed.to_string().contains("robot-secret"),
        "the robot token is not shown"
    );
    let id = row["id"].as_i64().unwrap();
    let by_alarm = server.ok(&format!("/api/v1/notifications/deliveries?alarm={alarm}"));
    assert_eq!(by_alarm.as_array().unwrap().len(), 1);
    assert_eq!(
        server.ok("/api/v1/notifications/deliveries?status=delivered"),
        json!([])
    );
    // Bad input and roles.
    server
        .get("/api/v1/notifications/deliveries?status=lost", Some(VIEWER))
        .error(400, &["status", "lost"]);
    server
        .get("/api/v1/notifications/deliveries?alarm=x", Some(VIEWER))
        .error(400, &["alarm"]);
    server
        .get("/api/v1/notifications/deliveries?color=red", Some(VIEWER))
        .error(400, &["color"]);
    let path = format!("/api/v1/notifications/deliveries/{id}/resend");
    server
        .request("POST", &path, Some(VIEWER), None)
        .error(403, &["vera", "viewer"]);
    server
        .request(
            "POST",
            "/api/v1/notifications/deliveries/999999/resend",
            Some(OPERATOR),
            None,
        )
        .error(404, &["999999"]);
    server
        .request(
            "POST",
            "/api/v1/notifications/deliveries/abc/resend",
            Some(OPERATOR),
            None,
        )
        .error(400, &["id"]);
    // Resend: pending again, same delivery id; resending it twice is a conflict until it fails again.
    let resent = server.request("POST", &path, Some(OPERATOR), None);
    assert_eq!(resent.status, 200, "{}", resent.body);
    let resent = resent.json();
    assert_eq!(resent["delivery_id"], row["delivery_id"]);
    assert!(
        ["pending", "failed"].contains(&resent["status"].as_str().unwrap()),
        "{resent}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = server.ok(&format!("/api/v1/notifications/deliveries?alarm={alarm}"));
        if rows[0]["status"] == "failed" && rows[0]["last_attempt_at"] != row["last_attempt_at"] {
            assert_eq!(rows[0]["delivery_id"], row["delivery_id"]);
            break;
        }
        assert!(Instant::now() < deadline, "the resent delivery was not tried again");
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = server.get("/metrics", Some(VIEWER)).body;
    assert!(
        metrics.contains("trailwarden_notify_attempts_total{channel=\"webhook\",result=\"retry\"}")
            || metrics.contains("trailwarden_notify_attempts_total{channel=\"webhook\",result=\"failed\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("trailwarden_notify_failed 1"), "{metrics}");
}

#[test]
fn allowlist_policies_record_their_token_and_broad_ones_need_a_recorded_admin_override() {
    let server = Server::start();
    // The creator is the token, never a name the caller sends.
    server
        .send(
            "POST",
            "/api/v1/allowlist",
            OPERATOR,
            &json!({"api": "cam.List*", "reason": "inventory", "owner": "someone-else"}),
        )
        .error(400, &["owner", "otto"]);
    // Policies that match everything, or whole address spaces, are refused...
    for body in [
        json!({"api": "*", "reason": "r"}),
        json!({"operation": "*", "reason": "r"}),
        json!({"ip": "0.0.0.0/0", "reason": "r"}),
        json!({"ip": "::/0", "rule": "root-key-high-risk-api", "reason": "r"}),
        json!({"rule": "root-key-high-risk-api", "call_method": "api", "reason": "r"}),
    ] {
        server
            .send("POST", "/api/v1/allowlist", OPERATOR, &body)
            .error(400, &["broad", "allow_broad"]);
    }
    // ... an operator cannot override, an admin can, and the override is recorded.
    let broad = json!({"ip": "0.0.0.0/0", "reason": "pen test week", "allow_broad": true, "expires": "7d"});
    server
        .send("POST", "/api/v1/allowlist", OPERATOR, &broad)
        .error(403, &["allow_broad", "admin"]);
    server
        .send(
            "POST",
            "/api/v1/allowlist",
            ADMIN,
            &json!({"api": "cam.*", "reason": "r", "allow_broad": "yes"}),
        )
        .error(400, &["allow_broad", "true or false"]);
    let created = server.send("POST", "/api/v1/allowlist", ADMIN, &broad);
    assert_eq!(created.status, 201, "{}", created.body);
    let policy = created.json();
    assert_eq!(
        (policy["created_by"].as_str(), policy["via"].as_str()),
        (Some("ada"), Some("api"))
    );
    assert_eq!(policy["approved_by"], "ada");
    assert!(
        policy["broad"]
            .as_str()
            .is_some_and(|why| why.contains("whole address space")),
        "{policy}"
    );
    let narrow = server.send(
        "POST",
        "/api/v1/allowlist",
        OPERATOR,
        &json!({"api": "cam.List*", "reason": "inventory"}),
    );
    assert_eq!(narrow.status, 201, "{}", narrow.body);
    let narrow_id = narrow.json()["id"].as_i64().unwrap();
    assert_eq!(narrow.json()["broad"], Value::Null);
    let removed = server.request(
        "DELETE",
        &format!("/api/v1/allowlist/{narrow_id}"),
        Some(OPERATOR),
        None,
    );
    assert_eq!(removed.status, 204, "{}", removed.body);
    let remark = server.send(
        "PUT",
        "/api/v1/remarks",
        OPERATOR,
        &json!({"kind": "ip", "value": "203.0.113.9", "remark": "vpn"}),
    );
    assert_eq!(remark.status, 200, "{}", remark.body);
    assert_eq!(remark.json()["updated_by"], "otto");
    // The change log names the token behind every change, most recent first.
    let changes = server.ok("/api/v1/changes");
    let rows: Vec<(String, String, String)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|change| {
            (
                change["actor"].as_str().unwrap().to_string(),
                change["subject"].as_str().unwrap().to_string(),
                change["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("otto", "remark", "set"),
        ("otto", "policy", "removed"),
        ("otto", "policy", "added"),
        ("ada", "policy", "added"),
        // The rule set the daemon started with (`alarm::rule_changes`).
        ("daemon start", "rules", "loaded"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(rows, expected);
    assert_eq!(
        server
            .ok("/api/v1/changes?subject=policy&actor=ada")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    server
        .get("/api/v1/changes?subject=alarm", Some(VIEWER))
        .error(400, &["subject"]);
    // The store's chain covers the policies and the log.
    let verify = Trailwarden::new()
        .command(&["store", "verify", "--db", server.store().to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(
        said.starts_with("chain ok") && said.contains("1 allowlist policies"),
        "{said}"
    );
    // /metrics shows the policies by breadth.
    let metrics = server.get("/metrics", Some(VIEWER)).body;
    assert!(
        metrics.contains("trailwarden_allowlist_policies{state=\"active\",broad=\"true\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trailwarden_allowlisted_high_matches_total"),
        "{metrics}"
    );
}

/// A reload through the API that changes the rule set is in the sealed change
/// log under the admin token's name (the file watcher is off here).
#[test]
fn an_api_reload_that_changes_the_rules_is_recorded_with_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = dir.path().join("overrides.yaml");
    std::fs::write(&overrides, "rules: []\n").unwrap();
    let server = Server::start_configured("", |config| {
        config
            .set("rules", "watch", false)
            .set("rules", "overrides", &[overrides.as_path()][..])
    });
    std::fs::write(&overrides, "rules:\n  - rule: denied-call\n    enabled: false\n").unwrap();
    let reload = server.request("POST", "/api/v1/rules/reload", Some(ADMIN), None);
    assert_eq!(reload.status, 200, "{}", reload.body);
    let changes = server.ok("/api/v1/changes?subject=rules");
    let latest = &changes.as_array().unwrap()[0];
    assert_eq!(latest["actor"], "ada", "{changes}");
    assert_eq!(latest["action"], "changed");
    assert_eq!(latest["detail"]["changed"], json!(["denied-call"]));
}

/// `GET /api/v1/events`: the examples' events, by key and alarm, page by
/// page; mistakes are 400s and 404s that name the parameter.
#[test]
fn the_event_store_answers_by_key_alarm_and_cursor() {
    let server = Server::start();
    let normalized: Vec<Value> = server.sandbox.jsonl(&["normalize", "examples"]);
    // Page by page, in pages of 1000 and of 97: the same events in the same order.
    let pages = |limit: usize| {
        let mut positions = Vec::new();
        let mut path = format!("/api/v1/events?limit={limit}");
        loop {
            let page = server.ok(&path);
            let events = page["events"].as_array().unwrap();
            assert!(events.len() <= limit);
            positions.extend(events.iter().map(|event| event["position"].clone()));
            match page["next"].as_str() {
                Some(next) => path = format!("/api/v1/events?limit={limit}&cursor={next}"),
                None => return positions,
            }
        }
    };
    let positions = pages(1000);
    assert_eq!(positions.len(), normalized.len());
    assert_eq!(pages(97), positions);
    // By key: exactly the events normalize gives that key.
    let key = normalized
        .iter()
        .find_map(|event| event["access_key"]["id"].as_str())
        .unwrap();
    let wanted = normalized
        .iter()
        .filter(|event| event["access_key"]["id"] == key)
        .count();
    let found = server.ok(&format!("/api/v1/events?key={key}&limit=1000"));
    assert_eq!(found["events"].as_array().unwrap().len(), wanted);
    // An alarm's events carry its key and fall in its time span.
    let alarms = server.ok("/api/v1/alarms?limit=500")["items"]
        .as_array()
        .unwrap()
        .clone();
    let alarm = alarms.iter().find(|alarm| alarm["access_key_id"].is_string()).unwrap();
    let detail = server.ok(&format!("/api/v1/alarms/{}", alarm["id"]));
    let found = server.ok(&format!("/api/v1/events?alarm={}&limit=1000", alarm["id"]));
    let events = found["events"].as_array().unwrap();
    assert!(!events.is_empty(), "{detail}");
    for event in events {
        assert_eq!(event["access_key_id"], alarm["access_key_id"]);
        assert!(event["time"].as_str() >= detail["first_seen"].as_str());
        assert!(event["time"].as_str() <= detail["last_seen"].as_str());
    }
    server
        .get("/api/v1/events?cursor=12", Some(VIEWER))
        .error(400, &["cursor"]);
    server
        .get("/api/v1/events?outcome=maybe", Some(VIEWER))
        .error(400, &["outcome"]);
    server
        .get("/api/v1/events?user=alice", Some(VIEWER))
        .error(400, &["user"]);
    server
        .get("/api/v1/events?alarm=987654", Some(VIEWER))
        .error(404, &["987654"]);
    server
        .get("/api/v1/events?limit=5000", Some(VIEWER))
        .error(400, &["limit"]);
}

/// Every (method, route) `api_routes()` declares, read from its source: the
/// list the role tests above walk must hold each of them, so a new route
/// without a line in `endpoints()` (and so without its token and role
/// checks) fails here.
fn declared_routes() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(repo().join("src/api/mod.rs")).unwrap();
    let start = source
        .find("pub fn api_routes()")
        .expect("api_routes in src/api/mod.rs");
    let body = &source[start..];
    let body = &body[..body.find("\n}\n").expect("the end of api_routes")];
    let mut routes = BTreeSet::new();
    for segment in body.split(".route(").skip(1) {
        let path = segment.split('"').nth(1).expect("a route's path").to_string();
        for method in ["get", "post", "put", "patch", "delete"] {
            let needle = format!("{method}(");
            let declared = segment.match_indices(&needle).any(|(at, _)| {
                !segment[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if declared {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn every_declared_route_is_in_the_role_tests() {
    let declared = declared_routes();
    assert!(declared.len() >= 25, "{declared:?}");
    let tested: BTreeSet<(String, String)> = endpoints()
        .into_iter()
        .map(|(method, path, _)| {
            let path = path.split('?').next().unwrap().replace("/1", "/{id}");
            (method.to_string(), path)
        })
        .collect();
    let untested: Vec<_> = declared.difference(&tested).collect();
    assert!(
        untested.is_empty(),
        "routes with no line in endpoints() (their token and role checks are not tested): {untested:?}"
    );
    let gone: Vec<_> = tested.difference(&declared).collect();
    assert!(
        gone.is_empty(),
        "endpoints() lines for routes api_routes() does not declare: {gone:?}"
    );
}

#[test]
fn an_address_that_keeps_failing_authentication_is_locked_out_for_the_minute() {
    let server = Server::start_configured("", |config| config.set("api", "max_auth_failures", 3));
    for token in [None, Some("tw_guess_1"), Some("tw_guess_2")] {
        server.get("/api/v1/alarms", token).error(401, &["authorization"]);
    }
    // The third failure locks the address: even a valid token is refused now,
    // so a guess learns nothing from the answer.
    let refused = server.get("/api/v1/alarms", Some(VIEWER));
    refused.error(429, &["too many failed attempts"]);
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Health checks are not behind authentication and keep answering.
    assert_eq!(server.get("/healthz", None).status, 200);
    // The log is read as it comes: wait for the line rather than race it.
    wait_until("the lockout in the log", Duration::from_secs(30), || {
        server.daemon.stderr().contains("too many failed authentications")
    });
    let metrics_locked = server.get("/metrics", Some(ADMIN));
    assert_eq!(metrics_locked.status, 429);
}

/// Metric names in a dashboard or alert file, as exported (`_total`,
/// `_bucket`, `_sum` and `_count` are the exposition's suffixes).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = text[at..].find("trailwarden_") {
        let start = at + found;
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase() || bytes[end].is_ascii_digit() || bytes[end] == b'_')
        {
            end += 1;
        }
        let name = &text[start..end];
        let base = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.insert(base.to_string());
        at = end;
    }
    names
}

#[test]
fn the_dashboard_and_the_alert_rules_name_only_metrics_the_daemon_exports() {
    let server = Server::start();
    let exported: BTreeSet<String> = server
        .get("/metrics", Some(VIEWER))
        .body
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(exported.len() > 30, "{exported:?}");
    // Per-partition lag exists once a Kafka source has partitions
    // (tests/kafka_mock.rs checks it there); this daemon reads files.
    let mut exported = exported;
    exported.insert("trailwarden_kafka_partition_lag".into());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "packaging/grafana/trailwarden.json",
        "packaging/prometheus/trailwarden-alerts.yml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        if file.ends_with(".json") {
            serde_json::from_str::<Value>(&text).unwrap_or_else(|error| panic!("{file}: {error}"));
        } else {
            let rules: Value = serde_saphyr::from_str(&text).unwrap_or_else(|error| panic!("{file}: {error}"));
            let alerts = rules["groups"][0]["rules"].as_array().expect("groups[0].rules");
            assert!(
                alerts
                    .iter()
                    .all(|alert| alert["alert"].is_string() && alert["expr"].is_string())
            );
        }
        let named = metric_names(&text);
        assert!(named.len() >= 8, "{file}: {named:?}");
        let missing: Vec<&String> = named.iter().filter(|name| !exported.contains(*name)).collect();
        assert!(
            missing.is_empty(),
            "{file} names metrics /metrics does not have: {missing:?}"
        );
    }
}
