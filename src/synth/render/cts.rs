//! Huawei Cloud CTS traces: trace types and ratings, endpoints and resource
//! URLs, HTTP codes, the `user` block of users, roots and agencies, and the
//! policy denials CTS records as warnings.

use serde_json::{Map, Value, json};

use crate::event::model::Provider;

use crate::synth::call::{Call, Method, Who};
use crate::synth::organisation::{Account, Org};
use crate::synth::random::Rng;
use crate::synth::timeline::MINUTE_MS;

/// The CTS trace of `call`.
pub(super) fn render(org: &Org, rng: &mut Rng, call: &Call) -> Value {
    let holder = &org.accounts(Provider::Huawei)[call.account];
    let op = &call.op;
    let service_type = op.service.to_ascii_uppercase();
    let project = holder.project(&call.region).to_string();
    let global = op.service == "iam";
    let endpoint = if global {
        "iam.myhuaweicloud.com".to_string()
    } else {
        format!("{}.{}.myhuaweicloud.com", op.service, call.region)
    };
    let api_version = match op.service {
        "iam" => "3.0",
        "ecs" if op.action.contains("Server") && !op.action.starts_with("list") => "v2.1",
        "evs" => "v2",
        "rds" => "v3",
        "obs" => "",
        _ => "v1",
    };
    let resource_url = match (op.service, op.resource_id.is_empty()) {
        (_, true) => String::new(),
        ("iam", false) => format!("https://{endpoint}/v3/users/{}", op.resource_id),
        ("ecs", false) => format!("https://{endpoint}/v1/{project}/cloudservers/{}", op.resource_id),
        ("obs", false) => format!("https://{}.obs.{}.myhuaweicloud.com/", op.resource_id, call.region),
        (service, false) => format!("https://{endpoint}/v1/{project}/{service}/{}", op.resource_id),
    };
    let code = if call.denied {
        "403"
    } else if op.action == "login" || op.action == "logout" {
        "302"
    } else if op.read_only {
        "200"
    } else if op.action.starts_with("create") {
        "201"
    } else if op.action.starts_with("delete") {
        "204"
    } else if op.service == "ecs" && op.response.get("job_id").is_some() {
        "202"
    } else {
        "200"
    };
    let trace_type = match call.method {
        Method::Api => "ApiCall",
        Method::Console => "ConsoleAction",
        Method::System => "SystemAction",
    };
    let time_ms = call.time_ms;
    let request = json_text(&op.request);
    let mut response = json_text(&op.response);
    let mut message = None;
    if call.denied {
        let text = format!(
            "Policy doesn't allow {}:{} to be performed.",
            op.service,
            huawei_permission(&op.action)
        );
        response = json!({"error": {"code": format!("{}.0319", service_type), "message": text}}).to_string();
        message = Some(text);
    }
    let mut record = Map::new();
    record.insert("trace_id".into(), json!(rng.uuid()));
    record.insert("trace_name".into(), json!(op.action));
    record.insert(
        "trace_rating".into(),
        json!(if call.denied { "warning" } else { "normal" }),
    );
    record.insert("trace_type".into(), json!(trace_type));
    record.insert("event_type".into(), json!("system"));
    record.insert("service_type".into(), json!(service_type));
    record.insert("resource_type".into(), json!(op.resource_type));
    record.insert("resource_name".into(), json!(op.resource_name));
    record.insert("resource_id".into(), json!(op.resource_id));
    record.insert("api_version".into(), json!(api_version));
    record.insert("source_ip".into(), json!(call.ip));
    record.insert("domain_id".into(), json!(holder.id));
    record.insert("project_id".into(), json!(if global { "" } else { project.as_str() }));
    record.insert("tracker_name".into(), json!("system"));
    record.insert("time".into(), json!(time_ms));
    record.insert("record_time".into(), json!(time_ms + rng.range(150, 950)));
    record.insert("code".into(), json!(code));
    record.insert("request".into(), json!(request));
    record.insert("response".into(), json!(response));
    record.insert("request_id".into(), json!(rng.hex(32)));
    if call.method != Method::System {
        record.insert("content_length".into(), json!(request.len()));
        record.insert("total_time".into(), json!(rng.range(8, 900)));
    }
    if let Some(message) = message {
        record.insert("message".into(), json!(message));
    }
    if call.method != Method::System {
        record.insert("endpoint".into(), json!(endpoint));
        if !resource_url.is_empty() {
            record.insert("resource_url".into(), json!(resource_url));
        }
        record.insert("user_agent".into(), json!(call.agent));
    }
    record.insert("read_only".into(), json!(op.read_only));
    record.insert("enterprise_project_id".into(), json!("0"));
    if let Some(user) = huawei_user(rng, holder, call) {
        record.insert("user".into(), user);
    }
    if op.action.len() > 3 && call.method == Method::Api {
        let mut operation_id = op.action.clone();
        if let Some(first) = operation_id.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        record.insert("operation_id".into(), json!(operation_id));
    }
    for (key, value) in &op.extra {
        record.insert((*key).into(), value.clone());
    }
    Value::Object(record)
}

/// The `user` block of a trace (none for system traces).
fn huawei_user(rng: &mut Rng, holder: &Account, call: &Call) -> Option<Value> {
    let domain = json!({"name": holder.name, "id": holder.id});
    let mut user = match &call.who {
        Who::Service(_) => return None,
        Who::Root => json!({
            "id": holder.root_id,
            "name": holder.name,
            "user_name": holder.name,
            "domain": domain,
            "account_id": holder.id,
            "principal_urn": format!("iam::{}:user:{}", holder.id, holder.name),
            "principal_id": holder.root_id,
            "principal_is_root_user": "true",
            "type": "User",
        }),
        Who::User(person) => json!({
            "id": person.id,
            "name": person.name,
            "user_name": person.name,
            "domain": domain,
            "account_id": holder.id,
            "principal_urn": format!("iam::{}:user:{}", holder.id, person.name),
            "principal_id": person.id,
            "principal_is_root_user": "false",
            "type": "User",
        }),
        Who::Role { role, session } => json!({
            "id": role.id,
            "name": format!("{}/{}", role.name, session),
            "domain": domain,
            "account_id": holder.id,
            "principal_urn": format!("sts::{}:assumed-agency:{}/{}", holder.id, role.name, session),
            "principal_id": format!("{}:{}", role.id, session),
            "principal_is_root_user": "false",
            "type": "AssumedAgency",
            "session_context": {"attributes": {
                "created_at": (call.time_ms - rng.range(2, 50) * MINUTE_MS).to_string(),
                "mfa_authenticated": if call.mfa { "true" } else { "false" }
            }},
        }),
    };
    if let Some(key) = &call.key {
        user["access_key_id"] = json!(key);
    }
    if call.method == Method::Console {
        user["invoked_by"] = json!(["service.console"]);
        if matches!(call.who, Who::User(_) | Who::Root) {
            user["session_context"] = json!({"attributes": {
                "created_at": (call.time_ms - rng.range(2, 50) * MINUTE_MS).to_string(),
                "mfa_authenticated": if call.mfa { "true" } else { "false" }
            }});
        }
    }
    Some(user)
}

/// The IAM action a denied Huawei trace names (`createServer` → `cloudServers:create`).
fn huawei_permission(action: &str) -> String {
    let verb_end = action.find(|c: char| c.is_ascii_uppercase()).unwrap_or(action.len());
    let (verb, noun) = action.split_at(verb_end);
    let mut noun = noun.to_string();
    if let Some(first) = noun.get_mut(0..1) {
        first.make_ascii_lowercase();
    }
    format!("{noun}s:{verb}")
}

fn json_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
