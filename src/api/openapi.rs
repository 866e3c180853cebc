//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, written by
//! hand: every route with its parameters, body, role and responses, and the
//! schemas of what they return. `tests/api.rs` checks that every route the
//! router serves is in here.

use axum::Json;
use serde_json::{Value, json};

use super::auth::Viewer;

/// `GET /api/v1/openapi.json`.
pub async fn document(Viewer(_): Viewer) -> Json<Value> {
    Json(spec())
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn array_of(name: &str) -> Value {
    json!({"type": "array", "items": schema_ref(name)})
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn time_param(name: &str, description: &str) -> Value {
    query(
        name,
        &format!("{description}: RFC 3339 (2026-03-02T10:00:00Z), a date (2026-03-02) or a duration ago (24h, 7d)"),
        string(),
    )
}

fn id_param(what: &str) -> Value {
    json!({"name": "id", "in": "path", "required": true, "description": format!("The {what}'s id"),
           "schema": {"type": "integer", "minimum": 1}})
}

fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn error(description: &str) -> Value {
    ok(description, schema_ref("Error"))
}

/// An operation: summary, the role it needs, parameters, body, and its
/// success responses; the error responses every authenticated route has
/// are added here.
fn operation(summary: &str, role: &str, parameters: Vec<Value>, body: Option<Value>, success: Value) -> Value {
    let mut responses = success;
    if let Value::Object(map) = &mut responses {
        map.insert(
            "400".into(),
            error("A parameter or body field is wrong (the message names it)"),
        );
        map.insert("401".into(), error("No token, or an unknown one"));
        if role != "viewer" {
            map.insert("403".into(), error(&format!("The token's role is below {role}")));
        }
    }
    let mut operation = json!({
        "summary": summary,
        "description": format!("Role: {role}."),
        "x-role": role,
        "parameters": parameters,
        "responses": responses,
    });
    if let (Some(body), Value::Object(map)) = (body, &mut operation) {
        map.insert("requestBody".into(), json_body(body));
        if let Some(Value::Object(responses)) = map.get_mut("responses") {
            responses.insert("413".into(), error("The body is larger than `api.body_limit`"));
            responses.insert("415".into(), error("The content type is not application/json"));
        }
    }
    operation
}

fn with(mut operation: Value, code: &str, response: Value) -> Value {
    if let Some(Value::Object(responses)) = operation.get_mut("responses") {
        responses.insert(code.into(), response);
    }
    operation
}

pub fn spec() -> Value {
    let alarm_list_params = vec![
        query(
            "status",
            "unprocessed, processed or ignored",
            json!({"type": "string", "enum": ["unprocessed", "processed", "ignored"]}),
        ),
        query(
            "level",
            "This level and above",
            json!({"type": "string", "enum": ["info", "low", "medium", "high"]}),
        ),
        query("rule", "Rule id", string()),
        query("account", "Account id or name", string()),
        query(
            "key",
            "Access key: the full key or its masked form as shown (AKIDz8****LPx3gnPhESA)",
            string(),
        ),
        time_param("since", "Alarms active at or after this time (last seen)"),
        time_param("until", "Alarms that started before this time (first seen)"),
        query(
            "q",
            "Free text, case-insensitive, in rule id, title, account and principal",
            string(),
        ),
        query(
            "sort",
            "time (last seen), level, or count; ties by last seen",
            json!({"type": "string", "enum": ["time", "level", "count"], "default": "time"}),
        ),
        query(
            "order",
            "desc (default) or asc",
            json!({"type": "string", "enum": ["desc", "asc"], "default": "desc"}),
        ),
        query(
            "limit",
            "Page size",
            json!({"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
        ),
        query(
            "offset",
            "Alarms skipped",
            json!({"type": "integer", "minimum": 0, "default": 0}),
        ),
    ];
    let trace_params = vec![
        query(
            "call_method",
            "console, api, system, other, or the cloud's trace type (ConsoleAction, ApiCall, AwsConsoleAction …)",
            string(),
        ),
        query("service", "ecs, cvm, iam, cam, ec2 …", string()),
        query("resource_type", "Resource type", string()),
        query("operator", "Operator name or principal id", string()),
        query(
            "status",
            "success or failure",
            json!({"type": "string", "enum": ["success", "failure"]}),
        ),
        time_param("since", "From (inclusive)"),
        time_param("until", "To (exclusive)"),
        query(
            "limit",
            "Most traces",
            json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        ),
    ];
    let event_params = vec![
        query("key", "Access key id", string()),
        query("principal", "Principal name, id or ARN", string()),
        query("ip", "Source address, or a network (10.1.2.0/24)", string()),
        query("account", "Account id or name", string()),
        query("action", "API / event name", string()),
        query("service", "ec2, cvm, ecs, iam, cam …", string()),
        query("resource", "One of the event's resource names (whole)", string()),
        query("id", "Event id or request id", string()),
        query(
            "outcome",
            "success or failure",
            json!({"type": "string", "enum": ["success", "failure"]}),
        ),
        query(
            "cloud",
            "huawei, tencent or aws",
            json!({"type": "string", "enum": ["huawei", "tencent", "aws"]}),
        ),
        query(
            "alarm",
            "An alarm's events: its key (else principal), cloud and account, from its first to its last event",
            json!({"type": "integer", "minimum": 1}),
        ),
        time_param("since", "From (inclusive)"),
        time_param("until", "To (exclusive)"),
        query(
            "limit",
            "Events per page",
            json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}),
        ),
        query("cursor", "A page's `next`, to go on from", string()),
    ];
    let paths = json!({
        "/healthz": {"get": {
            "summary": "Liveness: the process answers", "security": [], "x-role": "none",
            "responses": {"200": ok("Alive", json!({"type": "object", "properties": {"status": {"const": "ok"}}}))}
        }},
        "/readyz": {"get": {
            "summary": "Readiness: the pipeline runs, the daemon is not stopping, the store answers",
            "security": [], "x-role": "none",
            "responses": {
                "200": ok("Ready", schema_ref("Ready")),
                "503": ok("Not ready", schema_ref("Ready"))
            }
        }},
        "/metrics": {"get": operation(
            "Prometheus metrics: ingestion, pipeline, rules, store, Kafka and API requests",
            "viewer", vec![], None,
            json!({"200": {"description": "Prometheus text exposition format",
                           "content": {"text/plain": {"schema": string()}}}}),
        )},
        "/api/v1/openapi.json": {"get": operation(
            "This document", "viewer", vec![], None, json!({"200": ok("OpenAPI 3.1", json!({"type": "object"}))}),
        )},
        "/api/v1/me": {"get": operation(
            "The caller's token name and role, and the zone the console shows times in", "viewer", vec![], None, json!({"200": ok("The caller", schema_ref("Me"))}),
        )},
        "/api/v1/alarms": {"get": operation(
            "Alarms: filtered, sorted, paginated (access keys masked)", "viewer", alarm_list_params, None,
            json!({"200": ok("A page of alarms and the filter's total", schema_ref("AlarmPage"))}),
        )},
        "/api/v1/alarms/{id}": {"get": with(operation(
            "One alarm: call records (also grouped per source IP), masked samples, status history, its rule",
            "viewer", vec![id_param("alarm")], None,
            json!({"200": ok("The alarm", schema_ref("AlarmDetail"))}),
        ), "404", error("No such alarm"))},
        "/api/v1/alarms/{id}/status": {"post": with(with(operation(
            "Change an alarm's status; the actor is the token's name",
            "operator", vec![id_param("alarm")], Some(schema_ref("StatusChange")),
            json!({"200": ok("The alarm after the change", schema_ref("AlarmDetail"))}),
        ), "404", error("No such alarm")), "409", error(
            "The alarm already has that status, or reopening it would make a second open alarm for its rule and \
             key (the message names that alarm)"
        ))},
        "/api/v1/allowlist": {
            "get": operation("Allowlist policies with hit counts (keys masked)", "viewer", vec![], None,
                json!({"200": ok("Policies, oldest first", array_of("Policy"))})),
            "post": with(with(operation(
                "Add a policy (fields given match; absent ones match anything), or prefill it from an alarm. \
                 The token's name is recorded as its creator. A broad policy (one matching every API or operation, \
                 a whole address space, or nothing narrower than a rule or call method) is refused unless an admin \
                 sends `allow_broad: true`; the override is recorded and notified",
                "operator", vec![], Some(schema_ref("PolicyInput")),
                json!({"201": ok("The policy (with `warning` when it is already expired)", schema_ref("Policy"))}),
            ), "404", error("`from_alarm` names no alarm")), "409", error("A masked `key` matches several keys"))
        },
        "/api/v1/changes": {"get": operation(
            "The change log: who added or removed a policy, set or removed a remark, added an asset (most recent first)",
            "viewer",
            vec![
                query("subject", "policy, remark, asset or rules", json!({"type": "string", "enum": ["policy", "remark", "asset", "rules"]})),
                query("id", "The subject's id", json!({"type": "integer", "minimum": 1})),
                query("actor", "Changes by this actor (token name or CLI actor)", string()),
                query("limit", "At most this many (1-1000, default 100)", json!({"type": "integer", "minimum": 1, "maximum": 1000})),
            ],
            None,
            json!({"200": ok("Changes", array_of("Change"))}),
        )},
        "/api/v1/allowlist/report": {"get": operation(
            "Policies never hit, and expired policies", "viewer", vec![], None,
            json!({"200": ok("The report", schema_ref("AllowlistReport"))}),
        )},
        "/api/v1/allowlist/{id}": {
            "delete": with(operation(
                "Remove a policy", "operator", vec![id_param("policy")], None,
                json!({"204": {"description": "Removed"}}),
            ), "404", error("No such policy")),
            "patch": with(operation(
                "Change when a policy stops matching (recorded in the change log with the token's name, sealed, notified)",
                "operator", vec![id_param("policy")], Some(schema_ref("ExpiryInput")),
                json!({"200": ok("The policy (with `warning` when the new expiry has passed)", schema_ref("Policy"))}),
            ), "404", error("No such policy"))
        },
        "/api/v1/remarks": {
            "get": operation("Remarks on access keys (masked) and IPs", "viewer", vec![], None,
                json!({"200": ok("Remarks", array_of("Remark"))})),
            "put": with(operation(
                "Set or replace a remark (at most 20 characters)", "operator", vec![], Some(schema_ref("RemarkInput")),
                json!({"200": ok("The remark", schema_ref("Remark"))}),
            ), "409", error("A masked key matches several keys")),
            "delete": with(operation(
                "Remove a remark", "operator",
                vec![
                    query("kind", "key or ip (required)", json!({"type": "string", "enum": ["key", "ip"]})),
                    query("value", "The key (full or masked as shown) or the IP (required)", string()),
                ],
                None, json!({"204": {"description": "Removed"}}),
            ), "404", error("No such remark"))
        },
        "/api/v1/assets": {
            "get": operation("The organisation's own IPs and CIDRs", "viewer", vec![], None,
                json!({"200": ok("Assets", array_of("Asset"))})),
            "post": operation("Add (or rename) an asset", "operator", vec![], Some(schema_ref("AssetInput")),
                json!({"201": ok("The asset", schema_ref("Asset"))}))
        },
        "/api/v1/rules": {"get": operation(
            "The running rule set, each rule's embedded test results, and the last reload", "viewer", vec![], None,
            json!({"200": ok("Rules", schema_ref("RuleList"))}),
        )},
        "/api/v1/rules/reload": {"post": with(with(operation(
            "Reload the rules (as SIGHUP does) and wait for the attempt; a set with any problem is not installed",
            "admin", vec![], None,
            json!({"200": ok("The attempt finished: the reload status", schema_ref("ReloadStatus"))}),
        ), "202", ok("Still running after 20 s: the status so far", schema_ref("ReloadStatus"))),
            "503", error("The reloader has stopped"))},
        "/api/v1/activity": {"get": operation(
            "The god view over a time range (hourly rollups of every event)", "viewer",
            vec![
                time_param("since", "From (inclusive; counts from the start of its hour)"),
                time_param("until", "To (exclusive)"),
                query("top", "Rows per list", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 10})),
            ],
            None, json!({"200": ok("The report (keys masked)", schema_ref("ActivityReport"))}),
        )},
        "/api/v1/traces": {"get": operation(
            "Key-operation traces, most recent first, with their raw records (keys masked)", "viewer", trace_params, None,
            json!({"200": ok("Traces", array_of("Trace"))}),
        )},
        "/api/v1/events": {"get": operation(
            "The event store: every event kept for events.retention, newest first, a page at a time (keys masked); \
             text filters compare whole values, ignoring case",
            "viewer", event_params, None,
            json!({"200": ok("A page", schema_ref("EventPage"))}),
        )},
        "/api/v1/dead-letters": {"get": operation(
            "Records that could not be read, oldest first (recognisable keys masked)", "viewer",
            vec![query("limit", "Most rows", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}))],
            None, json!({"200": ok("Dead letters", array_of("DeadLetter"))}),
        )},
        "/api/v1/notifications/deliveries": {"get": operation(
            "Notification deliveries (one per alarm event and subscription, digests included), newest first",
            "viewer",
            vec![
                query("status", "Only this status", json!({"type": "string", "enum": ["pending", "delivered", "failed", "folded"]})),
                query("topic", "Only this topic", string()),
                query("alarm", "Only this alarm's deliveries", json!({"type": "integer", "minimum": 1})),
                query("limit", "Most rows", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100})),
            ],
            None, json!({"200": ok("Deliveries", array_of("Delivery"))}),
        )},
        "/api/v1/notifications/deliveries/{id}/resend": {"post": with(with(operation(
            "Queue a failed delivery again, with the same delivery id (the daemon sends it within notify.poll_interval)",
            "operator", vec![id_param("delivery")], None,
            json!({"200": ok("The delivery, pending again", schema_ref("Delivery"))}),
        ), "404", error("No such delivery")), "409", error("The delivery is not failed (the message says what it is)"))},
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "trailwarden operator API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Alarms, triage, allowlists, remarks, assets, rules and reports of a trailwarden daemon. \
                Every route but /healthz and /readyz needs `Authorization: Bearer <token>`; roles are viewer \
                (every GET) < operator (changes) < admin (rule reloads). Errors are \
                `{\"error\": {\"status\", \"code\", \"message\"}}` and the message names the wrong parameter or field. \
                Access keys are always masked.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
    })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

fn nullable(kind: &str) -> Value {
    json!({"type": [kind, "null"]})
}

fn schemas() -> Value {
    let alarm_properties = json!({
        "id": {"type": "integer"},
        "rule": string(), "rule_hash": string(),
        "level": {"type": "string", "enum": ["info", "low", "medium", "high"]},
        "title": string(),
        "status": {"type": "string", "enum": ["unprocessed", "processed", "ignored"]},
        "group_key": {"type": "string", "description": "The aggregation key (access keys masked)"},
        "provider": {"type": "string", "enum": ["huawei", "tencent", "aws"]},
        "account_id": nullable("string"), "account_name": nullable("string"),
        "account_identity": {"type": "string", "enum": ["root", "sub_account", "unknown"]},
        "principal_kind": string(), "principal_id": nullable("string"),
        "principal_name": nullable("string"), "principal_arn": nullable("string"),
        "access_key_id": {"type": ["string", "null"], "description": "Masked"},
        "access_key_temporary": nullable("boolean"),
        "access_key_remark": nullable("string"),
        "first_seen": string(), "last_seen": string(),
        "count": {"type": "integer"},
        "output": {"type": "string", "description": "The rule's output for the last match (keys masked)"},
        "created_at": string(), "updated_at": string(),
    });
    let call_properties = json!({
        "source_ip": string(), "ip_kind": string(), "call_method": string(), "service": string(), "action": string(),
        "success_count": {"type": "integer"}, "failure_count": {"type": "integer"},
        "first_call": string(), "last_call": string(),
        "ip_type": {"type": "string", "enum": ["within_account", "lan", "platform", "outside", "none"]},
        "ip_type_label": string(), "ip_remark": nullable("string"), "asset": nullable("string"),
        "region": {
            "type": "object",
            "description": "From the `[geoip]` databases; `label` is \"region unknown\" without one",
            "properties": {
                "country_code": nullable("string"), "country": nullable("string"), "subdivision": nullable("string"),
                "city": nullable("string"), "asn": {"type": ["integer", "null"]}, "as_org": nullable("string"),
                "label": string()
            }
        },
    });
    let mut detail_properties = alarm_properties.clone();
    if let Value::Object(map) = &mut detail_properties {
        map.insert("calls".into(), array_of("Call"));
        map.insert("ip_groups".into(), array_of("IpGroup"));
        map.insert(
            "key_association".into(),
            json!({"type": "object", "description": "The alarm's access key across the store: `other_alarms` (id, rule, level, status, count, last_seen), `source_ips` it was first used from (source_ip, account_id, first_seen), `accounts`"}),
        );
        map.insert(
            "permissions".into(),
            json!({"type": "object", "description": "What the principal called in the last `window_days`: `used` (service, action, calls), `denied` (service, action, error_code, calls), `least_privilege_policy` (AWS IAM or Tencent CAM JSON, null for Huawei), `note`"}),
        );
        map.insert(
            "samples".into(),
            json!({"type": "array", "items": {"type": "object"}, "description": "Normalized events with their raw records (keys masked)"}),
        );
        map.insert("history".into(), array_of("Transition"));
        map.insert(
            "rule".into(),
            json!({"oneOf": [schema_ref("RuleSummary"), {"type": "null"}],
            "description": "The rule in the running set (null when it is gone); note `rule` is the id in lists"}),
        );
    }
    let mut first = json!({
        "Error": object(&["error"], json!({"error": object(&["status", "code", "message"], json!({
            "status": {"type": "integer"},
            "code": {"type": "string", "examples": ["bad_request", "unauthorized", "forbidden", "not_found",
                "conflict", "payload_too_large", "unsupported_media_type", "method_not_allowed", "internal"]},
            "message": {"type": "string", "description": "What is wrong, naming the parameter or field"}
        }))})),
        "Ready": object(&["ready"], json!({
            "ready": {"type": "boolean"}, "pipeline": {"type": "string", "enum": ["running", "stopped"]},
            "stopping": {"type": "boolean"}, "store": {"type": "string", "enum": ["ok", "failing"]}
        })),
        "Me": object(&["name", "role", "timezone"], json!({"timezone": {"type": "string", "description": "IANA zone (`api.timezone`, default `rules.timezone`)"}, "name": string(),
            "role": {"type": "string", "enum": ["viewer", "operator", "admin"]}})),
        "Alarm": object(&["id", "rule", "level", "status"], alarm_properties),
        "AlarmPage": object(&["total", "offset", "limit", "items"], json!({
            "total": {"type": "integer", "description": "Alarms matching the filter"},
            "offset": {"type": "integer"}, "limit": {"type": "integer"}, "items": array_of("Alarm")
        })),
        "Call": object(&["source_ip", "service", "action"], call_properties),
        "IpGroup": object(&["source_ip", "calls"], json!({
            "source_ip": string(),
            "ip_type": {"type": "string", "enum": ["within_account", "lan", "platform", "outside", "none"]},
            "ip_label": string(), "ip_remark": nullable("string"), "asset": nullable("string"),
            "success_count": {"type": "integer"}, "failure_count": {"type": "integer"},
            "first_call": string(), "last_call": string(), "calls": array_of("Call")
        })),
        "Transition": object(&["from_status", "to_status", "actor", "reason", "at"], json!({
            "id": {"type": "integer"}, "alarm_id": {"type": "integer"}, "from_status": string(), "to_status": string(),
            "actor": {"type": "string", "description": "The token's name"}, "reason": string(), "at": string()
        })),
        "AlarmDetail": object(&["id", "calls", "ip_groups", "samples", "history"], detail_properties),
        "StatusChange": object(&["status", "reason"], json!({
            "status": {"type": "string", "enum": ["unprocessed", "processed", "ignored"]},
            "reason": {"type": "string", "minLength": 1, "maxLength": 2000}
        })),
        "RuleSummary": object(&["id", "title", "level"], json!({
            "id": string(), "title": string(), "description": string(),
            "advice": {"type": ["string", "null"], "description": "What to do about an alarm of this rule (its `remediation`)"},
            "rationale": {"type": ["string", "null"], "description": "Why it matters"},
            "false_positives": nullable("string"),
            "level": {"type": "string", "enum": ["info", "low", "medium", "high"]},
            "tags": {"type": "array", "items": string()}, "mitre": {"type": "array", "items": string()},
            "references": {"type": "array", "items": string()},
            "sigma": {
                "type": ["object", "null"],
                "description": "Set for a rule loaded from a Sigma file (`rules.sigma_dirs`)",
                "properties": {"status": nullable("string"), "logsource": string(), "author": nullable("string")}
            },
            "enabled": {"type": "boolean"}, "hash": string()
        })),
        "Rule": {"allOf": [schema_ref("RuleSummary"), object(&["tests"], json!({
            "clouds": {"type": "array", "items": string()}, "file": string(),
            "escalate": {
                "type": "array",
                "description": "The rule's `escalate:` marks: an alarm reaching `count` matches takes `level`",
                "items": object(&["count", "level"], json!({"count": {"type": "integer"}, "level": string()}))
            },
            "tests": object(&["passed", "failed"], json!({"passed": {"type": "integer"}, "failed": {"type": "integer"}}))
        }))]},
    });
    let more = json!({
        "ReloadStatus": object(&["version", "rules"], json!({
            "version": {"type": "string", "description": "Version (hash) of the running set"},
            "rules": {"type": "integer"}, "attempts": {"type": "integer"},
            "reloads": {"type": "integer", "description": "Successful reloads since start"},
            "failures": {"type": "integer"},
            "last_error": {"type": ["string", "null"], "description": "The last failed reload's problems"},
            "last_attempt": nullable("string")
        })),
        "RuleList": object(&["rules", "reload"], json!({
            "version": string(), "rules": array_of("Rule"), "reload": schema_ref("ReloadStatus"),
            "tests_error": {"type": ["string", "null"], "description": "Why the embedded tests could not run"}
        })),
        "Policy": object(&["id", "created_by", "via", "reason", "state"], json!({
            "id": {"type": "integer"}, "access_key": {"type": ["string", "null"], "description": "Masked"},
            "source_ip": nullable("string"), "api": nullable("string"), "operation": nullable("string"),
            "call_method": nullable("string"), "error_code": nullable("string"), "rule_id": nullable("string"),
            "created_by": {"type": "string", "description": "The token's name, or the command line's actor"},
            "via": {"type": "string", "description": "api, or cli (unix user NAME)"},
            "reason": string(), "created_at": string(), "expires_at": nullable("string"),
            "broad": {"type": ["string", "null"], "description": "Why the policy is broad, when an admin allowed it"},
            "approved_by": {"type": ["string", "null"], "description": "The admin who allowed a broad policy"},
            "hit_count": {"type": "integer"}, "last_hit": nullable("string"),
            "high_hits": {"type": "integer", "description": "Suppressed matches of high-level rules"},
            "last_high_hit": nullable("string"),
            "state": {"type": "string", "enum": ["active", "expired", "unsealed"],
                "description": "unsealed: changed behind trailwarden's back (see store verify); not applied"},
            "warning": string()
        })),
        "PolicyInput": object(&["reason"], json!({
            "key": {"type": "string", "description": "Access key, full or masked as shown"},
            "ip": {"type": "string", "description": "IP or CIDR"},
            "api": {"type": "string", "description": "Glob over service.action, case-insensitive (cam.*)"},
            "operation": {"type": "string", "description": "Glob over operation ids (iam.access_key.*)"},
            "call_method": {"type": "string", "enum": ["console", "api", "system", "other"]},
            "error_code": string(), "rule": {"type": "string", "description": "Rule id"},
            "reason": string(),
            "allow_broad": {"type": "boolean", "description": "Store a broad policy anyway (admin tokens only; recorded)"},
            "expires": {"type": "string", "description": "RFC 3339, YYYY-MM-DD[ HH:MM:SS] (UTC) or a duration from now (30d)"},
            "from_alarm": {"type": "integer", "description": "Prefill rule, key and (when single) IP from this alarm"}
        })),
        "AllowlistReport": object(&["never_hit", "expired"], json!({
            "never_hit": array_of("Policy"), "expired": array_of("Policy")
        })),
        "Remark": object(&["kind", "value", "remark"], json!({
            "kind": {"type": "string", "enum": ["key", "ip"]},
            "value": {"type": "string", "description": "The IP, or the key masked"},
            "remark": string(), "updated_at": string(), "updated_by": string()
        })),
        "ExpiryInput": object(&["expires"], json!({
            "expires": {"type": ["string", "null"], "description": "RFC 3339, YYYY-MM-DD[ HH:MM:SS] (UTC), a duration from now (\"30d\"), or \"never\" / null"}
        })),
        "RemarkInput": object(&["kind", "value", "remark"], json!({
            "kind": {"type": "string", "enum": ["key", "ip"]},
            "value": {"type": "string", "description": "The IP, or the key (full or masked as shown)"},
            "remark": {"type": "string", "minLength": 1, "maxLength": 20}
        })),
        "Asset": object(&["cidr", "name"], json!({
            "cidr": string(), "name": string(), "updated_at": string(), "updated_by": string()
        })),
        "Change": object(&["id", "at", "actor", "via", "subject", "subject_id", "action", "detail"], json!({
            "id": {"type": "integer"}, "at": string(), "actor": string(), "via": string(),
            "subject": {"type": "string", "enum": ["policy", "remark", "asset", "rules"]},
            "subject_id": {"type": "integer"},
            "action": {"type": "string", "enum": ["added", "removed", "set"]},
            "detail": {"type": "object", "description": "What changed (access keys masked)"}
        })),
        "AssetInput": object(&["cidr", "name"], json!({
            "cidr": {"type": "string", "description": "An IP or CIDR"}, "name": string()
        })),
        "ActivityReport": object(&["events", "failures"], json!({
            "since": nullable("string"), "until": nullable("string"),
            "events": {"type": "integer"}, "failures": {"type": "integer"},
            "hourly": {"type": "array", "description": "Hours of the range with events, oldest first (the console's chart)",
                "items": object(&["hour", "events", "failures"], json!({
                "hour": string(), "events": {"type": "integer"}, "failures": {"type": "integer"}}))},
            "busiest_principals": {"type": "array", "items": object(&[], json!({
                "provider": string(), "account_id": string(), "principal": string(),
                "events": {"type": "integer"}, "failures": {"type": "integer"}}))},
            "busiest_source_ips": {"type": "array", "items": object(&[], json!({
                "source_ip": string(), "events": {"type": "integer"}, "failures": {"type": "integer"},
                "principals": {"type": "integer"}, "region": string()}))},
            "busiest_apis": {"type": "array", "items": object(&[], json!({
                "provider": string(), "service": string(), "action": string(), "events": {"type": "integer"},
                "failures": {"type": "integer"}, "principals": {"type": "integer"}}))},
            "failure_rates": {"type": "array", "items": object(&[], json!({
                "provider": string(), "account_id": string(), "events": {"type": "integer"},
                "failures": {"type": "integer"}, "failure_rate": {"type": "number"}}))},
            "new_key_ips": {"type": "array", "items": object(&[], json!({
                "first_seen": string(), "access_key_id": {"type": "string", "description": "Masked"},
                "source_ip": string(), "provider": string(), "account_id": string(), "principal": string()}))},
            "new_key_ips_total": {"type": "integer"}
        })),
        "Trace": object(&["id", "time", "provider", "action"], json!({
            "id": {"type": "integer"}, "provider": string(), "event_id": string(), "time": string(),
            "account_id": nullable("string"), "operator": string(), "principal_id": nullable("string"),
            "principal_kind": string(), "access_key_id": {"type": ["string", "null"], "description": "Masked"},
            "call_method": string(), "trace_type": nullable("string"), "service": string(),
            "resource_type": nullable("string"), "resource_names": {"type": "array", "items": string()},
            "action": string(), "operations": {"type": "array", "items": string()},
            "status": {"type": "string", "enum": ["success", "failure"]}, "error_code": nullable("string"),
            "source_ip": nullable("string"), "raw": {"type": "object", "description": "The record (keys masked)"}
        })),
        "EventPage": object(&["events", "next", "blocks_checked", "blocks_opened"], json!({
            "events": {"type": "array", "items": schema_ref("StoredEvent")},
            "next": {"type": ["string", "null"], "description": "The cursor of the next page; null when the search is complete"},
            "blocks_checked": {"type": "integer", "description": "Blocks in the time range whose filters were read"},
            "blocks_opened": {"type": "integer", "description": "Blocks decompressed and read"}
        })),
        "StoredEvent": object(&["time", "provider", "event_id", "service", "action", "outcome", "raw", "position"], json!({
            "time": string(), "provider": string(), "event_id": string(), "request_id": nullable("string"),
            "account_id": nullable("string"), "account_name": nullable("string"), "principal_kind": string(),
            "principal_name": nullable("string"), "principal_id": nullable("string"), "principal_arn": nullable("string"),
            "access_key_id": {"type": ["string", "null"], "description": "Masked"}, "source_ip": nullable("string"),
            "user_agent": nullable("string"), "service": string(), "action": string(), "region": nullable("string"),
            "call_method": string(), "outcome": {"type": "string", "enum": ["success", "failure"]},
            "error_code": nullable("string"), "resource_type": nullable("string"),
            "resource_names": {"type": "array", "items": string()},
            "raw": {"description": "The record as the cloud wrote it: request parameters and response (keys masked)"},
            "position": {"type": "string", "description": "Where it is kept (block.entry)"}
        })),
        "Delivery": object(&["id", "delivery_id", "topic", "subscription", "channel", "kind", "status", "attempts"], json!({
            "id": {"type": "integer"}, "delivery_id": {"type": "string", "description": "The id receivers deduplicate on (X-Trailwarden-Delivery)"},
            "topic": string(), "subscription": string(), "channel": {"type": "string", "enum": ["email", "webhook"]},
            "kind": {"type": "string", "enum": ["opened", "escalated", "status", "digest"]},
            "alarm_id": nullable("integer"),
            "status": {"type": "string", "enum": ["pending", "delivered", "failed", "folded"]},
            "attempts": {"type": "integer"}, "created_at": string(), "last_attempt_at": nullable("string"),
            "delivered_at": nullable("string"), "next_attempt_at": nullable("string"),
            "last_status": nullable("integer"), "last_error": nullable("string"),
            "digest_message": nullable("integer")
        })),
        "DeadLetter": object(&["id", "origin", "reason"], json!({
            "id": {"type": "integer"}, "received_at": string(), "origin": string(),
            "line": nullable("integer"), "byte_offset": nullable("integer"), "record_index": nullable("integer"),
            "topic": nullable("string"), "partition": nullable("integer"), "kafka_offset": nullable("integer"),
            "reason": string(), "excerpt": string()
        })),
    });
    if let (Value::Object(map), Value::Object(more)) = (&mut first, more) {
        map.extend(more);
    }
    first
}
