//! Tencent CloudAudit records: CAM identities, console session context,
//! request parameters as JSON text, and the API versions of each product.

use serde_json::{Map, Value, json};

use crate::event::model::Provider;

use crate::synth::call::{Call, Method, Who};
use crate::synth::organisation::Org;
use crate::synth::random::Rng;
use crate::synth::timeline::{HOUR_MS, shanghai_text};

/// The CloudAudit record of `call`.
pub(super) fn render(org: &Org, rng: &mut Rng, call: &Call) -> Value {
    let holder = &org.accounts(Provider::Tencent)[call.account];
    let op = &call.op;
    let console = call.method == Method::Console;
    let seconds = call.time_ms.div_euclid(1000);
    let key = call.key.clone().unwrap_or_default();
    let mut identity = match &call.who {
        Who::User(user) => json!({
            "principalId": user.id,
            "accountId": holder.uin,
            "secretId": key,
            "type": "CAMUser",
            "userName": user.name,
        }),
        _ => json!({
            "principalId": holder.uin.to_string(),
            "accountId": holder.uin,
            "secretId": key,
            "type": "Root",
            "userName": "root",
        }),
    };
    if console {
        let uin: u64 = match &call.who {
            Who::User(user) => user.id.parse().unwrap_or(holder.uin),
            _ => holder.uin,
        };
        let session = json!({
            "expireTime": shanghai_text(call.time_ms + 2 * HOUR_MS),
            "hasPolicyFilter": 0,
            "extraInfo": "",
            "interfaceName": "",
            "ownerUin": holder.uin,
            "ua": rng.hex(32),
            "mfa": u8::from(call.mfa),
            "userIp": call.ip,
            "uin": uin,
            "token": rng.hex(46),
            "appId": holder.app_id,
            "policyFilter": "",
        });
        identity["sessionContext"] = json!(session.to_string());
    }
    let version = tencent_api_version(op.service);
    let mut parameters = match &op.request {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    if op.action != "ConsoleLogin" {
        parameters.insert("Action".into(), json!(op.action));
        parameters.insert("Version".into(), json!(version));
        parameters.insert("Region".into(), json!(call.region));
        parameters.insert("RequestClient".into(), json!(call.agent));
        parameters.insert("Timestamp".into(), json!(seconds));
        parameters.insert("Nonce".into(), json!(rng.range(10_000, 99_999)));
        if console {
            parameters.insert("RequestSource".into(), json!("MC"));
            parameters.insert("RequestOperator".into(), json!(holder.uin.to_string()));
            parameters.insert("SecretId".into(), json!(key));
            parameters.insert("Token".into(), json!(rng.hex(46)));
            parameters.insert("seqId".into(), json!(rng.uuid()));
        }
    }
    let event_type = match (op.action.as_str(), console) {
        ("ConsoleLogin", _) => "ConsoleLogin",
        (_, true) => "ConsoleCall",
        _ => "ApiCall",
    };
    let event_source = if console {
        format!("{}.{}.api.tencentyun.com", op.service, call.region)
    } else {
        format!("{}.tencentcloudapi.com", op.service)
    };
    let resource_type = if op.resource_type.is_empty() {
        op.service.to_string()
    } else {
        op.resource_type.clone()
    };
    let sensitive = matches!(op.service, "cam" | "tat") && !op.read_only;
    let mut record = Map::new();
    record.insert("userIdentity".into(), identity);
    record.insert("eventTime".into(), json!(seconds));
    record.insert("eventVersion".into(), json!(2));
    record.insert("eventSource".into(), json!(event_source));
    record.insert("eventName".into(), json!(op.action));
    record.insert("eventRegion".into(), json!(call.region));
    record.insert("eventType".into(), json!(event_type));
    record.insert("actionType".into(), json!(if op.read_only { "Read" } else { "Write" }));
    record.insert("sourceIPAddress".into(), json!(call.ip));
    record.insert("userAgent".into(), json!(call.agent));
    record.insert("requestParameters".into(), json!(Value::Object(parameters).to_string()));
    record.insert("resourceType".into(), json!(resource_type));
    record.insert("resourceName".into(), json!(op.resource_name));
    record.insert(
        "resources".into(),
        json!(if op.resource_name.is_empty() || op.action == "ConsoleLogin" {
            String::new()
        } else {
            json!([format!(
                "qcs::{}:{}:uin/{}:{}/{}",
                op.service,
                call.region,
                holder.uin,
                if op.service == "cvm" { "instance" } else { "resource" },
                op.resource_name
            )])
            .to_string()
        }),
    );
    if call.denied {
        let request_id = rng.uuid();
        let message = format!(
            "you are not authorized to perform operation ({}:{})\nresource (qcs::{}:{}:uin/{}:*) has no permission\n",
            op.service, op.action, op.service, call.region, holder.uin
        );
        record.insert("errorCode".into(), json!("AuthFailure.UnauthorizedOperation"));
        record.insert("errorMessage".into(), json!(message));
        record.insert("apiErrorCode".into(), json!("UnauthorizedOperation"));
        record.insert(
            "apiErrorMessage".into(),
            json!(format!(
                "[request id:{request_id}]you are not authorized to perform operation ({}:{})",
                op.service, op.action
            )),
        );
    } else {
        record.insert("errorCode".into(), json!(0));
        record.insert("errorMessage".into(), json!("permission verify"));
        record.insert("apiErrorCode".into(), json!(0));
        record.insert("apiErrorMessage".into(), json!(""));
    }
    record.insert("apiVersion".into(), json!(version));
    record.insert("httpMethod".into(), json!("POST"));
    record.insert("requestID".into(), json!(rng.uuid()));
    record.insert("eventID".into(), json!(rng.uuid()));
    record.insert("sensitiveAction".into(), json!(u8::from(sensitive)));
    record.insert("eventPlatform".into(), json!(0));
    for (key, value) in &op.extra {
        record.insert((*key).into(), value.clone());
    }
    Value::Object(record)
}

fn tencent_api_version(service: &str) -> &'static str {
    match service {
        "cvm" | "vpc" | "cbs" => "2017-03-12",
        "cdb" => "2017-03-20",
        "cam" => "2019-01-16",
        "sts" | "tag" => "2018-08-13",
        "clb" => "2018-03-17",
        "monitor" => "2018-07-24",
        "tat" => "2020-10-28",
        "cloudaudit" => "2019-03-19",
        "cos" => "2019-01-01",
        _ => "2.0",
    }
}
