//! AWS CloudTrail records: `userIdentity` by principal type, console sign-in
//! events, TLS details, and the denial codes and messages AWS gives.

use serde_json::{Map, Value, json};

use crate::event::model::Provider;

use crate::synth::call::{Call, Method, Who};
use crate::synth::organisation::{Account, Org};
use crate::synth::random::Rng;
use crate::synth::timeline::{MINUTE_MS, aws_time};

/// The CloudTrail record of `call`.
pub(super) fn render(org: &Org, rng: &mut Rng, call: &Call) -> Value {
    let holder = &org.accounts(Provider::Aws)[call.account];
    let op = &call.op;
    let console = call.method == Method::Console;
    let session_created = aws_time(call.time_ms - rng.range(2, 50) * MINUTE_MS);
    let mfa = if call.mfa { "true" } else { "false" };
    let key = call.key.clone().unwrap_or_default();
    let identity = match &call.who {
        Who::Root => {
            let mut identity = json!({
                "type": "Root",
                "principalId": holder.id,
                "arn": format!("arn:aws:iam::{}:root", holder.id),
                "accountId": holder.id,
                "accessKeyId": key,
            });
            if console && !key.is_empty() {
                identity["sessionContext"] =
                    json!({"attributes": {"creationDate": session_created, "mfaAuthenticated": mfa}});
            }
            identity
        }
        Who::User(user) => {
            let mut identity = json!({
                "type": "IAMUser",
                "principalId": user.id,
                "arn": format!("arn:aws:iam::{}:user/{}", holder.id, user.name),
                "accountId": holder.id,
                "accessKeyId": key,
                "userName": user.name,
            });
            if console && !key.is_empty() {
                identity["sessionContext"] = json!({
                    "sessionIssuer": {},
                    "webIdFederationData": {},
                    "attributes": {"creationDate": session_created, "mfaAuthenticated": mfa}
                });
            }
            identity
        }
        Who::Role { role, session } => json!({
            "type": "AssumedRole",
            "principalId": format!("{}:{}", role.id, session),
            "arn": format!("arn:aws:sts::{}:assumed-role/{}/{}", holder.id, role.name, session),
            "accountId": holder.id,
            "accessKeyId": key,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role.id,
                    "arn": format!("arn:aws:iam::{}:role/{}", holder.id, role.name),
                    "accountId": holder.id,
                    "userName": role.name,
                },
                "webIdFederationData": {},
                "attributes": {"creationDate": session_created, "mfaAuthenticated": mfa}
            }
        }),
        Who::Service(service) => json!({"type": "AWSService", "invokedBy": service}),
    };
    let global = matches!(op.service, "iam" | "signin");
    let region = if global { "us-east-1" } else { call.region.as_str() };
    let host = match op.service {
        "iam" => "iam.amazonaws.com".to_string(),
        "signin" => "us-east-1.signin.aws.amazon.com".to_string(),
        "s3" => match &op.request {
            Value::Object(map) => map
                .get("Host")
                .and_then(Value::as_str)
                .unwrap_or("s3.amazonaws.com")
                .to_string(),
            _ => "s3.amazonaws.com".to_string(),
        },
        service => format!("{service}.{region}.amazonaws.com"),
    };
    let (event_type, source_ip, user_agent) = match &call.who {
        Who::Service(service) => (
            if service == "AWS Internal" {
                "AwsServiceEvent"
            } else {
                "AwsApiCall"
            },
            service.clone(),
            service.clone(),
        ),
        _ if op.action == "ConsoleLogin" => ("AwsConsoleSignIn", call.ip.clone(), call.agent.clone()),
        _ => ("AwsApiCall", call.ip.clone(), call.agent.clone()),
    };
    let mut record = Map::new();
    record.insert(
        "eventVersion".into(),
        json!(if op.action == "ConsoleLogin" { "1.09" } else { "1.11" }),
    );
    record.insert("userIdentity".into(), identity);
    record.insert("eventTime".into(), json!(aws_time(call.time_ms)));
    record.insert("eventSource".into(), json!(format!("{}.amazonaws.com", op.service)));
    record.insert("eventName".into(), json!(op.action));
    record.insert("awsRegion".into(), json!(region));
    record.insert("sourceIPAddress".into(), json!(source_ip));
    record.insert("userAgent".into(), json!(user_agent));
    let mut response = op.response.clone();
    if call.denied {
        let (code, message) = aws_denial(holder, call);
        record.insert("errorCode".into(), json!(code));
        record.insert("errorMessage".into(), json!(message));
        response = Value::Null;
    }
    if op.action == "ConsoleLogin" {
        record.insert("requestParameters".into(), Value::Null);
        record.insert("responseElements".into(), json!({"ConsoleLogin": "Success"}));
        let mut data = json!({
            "LoginTo": format!("https://console.aws.amazon.com/console/home?region={}", call.region),
            "MobileVersion": "No",
            "MFAUsed": if call.mfa { "Yes" } else { "No" },
        });
        if let (true, Who::User(user)) = (call.mfa, &call.who) {
            data["MFAIdentifier"] = json!(format!("arn:aws:iam::{}:mfa/{}", holder.id, user.name));
        }
        record.insert("additionalEventData".into(), data);
    } else {
        record.insert("requestParameters".into(), op.request.clone());
        record.insert("responseElements".into(), response);
    }
    record.insert("requestID".into(), json!(rng.uuid()));
    record.insert("eventID".into(), json!(rng.uuid()));
    record.insert("readOnly".into(), json!(op.read_only));
    record.insert("eventType".into(), json!(event_type));
    record.insert("managementEvent".into(), json!(true));
    record.insert("recipientAccountId".into(), json!(holder.id));
    record.insert("eventCategory".into(), json!("Management"));
    if !matches!(call.who, Who::Service(_)) {
        record.insert(
            "tlsDetails".into(),
            json!({"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": host}),
        );
    }
    if console && op.action != "ConsoleLogin" {
        record.insert("sessionCredentialFromConsole".into(), json!("true"));
    }
    for (key, value) in &op.extra {
        record.insert((*key).into(), value.clone());
    }
    Value::Object(record)
}

fn aws_denial(holder: &Account, call: &Call) -> (&'static str, String) {
    let principal = match &call.who {
        Who::User(user) => format!("arn:aws:iam::{}:user/{}", holder.id, user.name),
        Who::Role { role, session } => {
            format!("arn:aws:sts::{}:assumed-role/{}/{}", holder.id, role.name, session)
        }
        _ => format!("arn:aws:iam::{}:root", holder.id),
    };
    let permission = format!(
        "{}:{}",
        call.op.service,
        call.op.action.trim_end_matches(|c: char| c.is_ascii_digit())
    );
    match call.op.service {
        "ec2" => (
            "Client.UnauthorizedOperation",
            format!(
                "You are not authorized to perform this operation. User: {principal} is not authorized to perform: {permission} because no identity-based policy allows the {permission} action"
            ),
        ),
        "s3" => ("AccessDenied", "Access Denied".to_string()),
        _ => (
            "AccessDenied",
            format!(
                "User: {principal} is not authorized to perform: {permission} because no identity-based policy allows the {permission} action"
            ),
        ),
    }
}
