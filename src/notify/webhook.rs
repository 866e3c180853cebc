//! Webhooks: a JSON POST per delivery, in the generic format or as a Slack,
//! DingTalk, WeCom or Feishu / Lark message.
//!
//! Every request carries `X-Trailwarden-Delivery` (the id to deduplicate on)
//! and, with a secret, `X-Trailwarden-Signature: v1=<hex HMAC-SHA256 of
//! "<timestamp>.<body>">` with the timestamp in `X-Trailwarden-Timestamp`.
//! DingTalk and Feishu robots with a secret are also signed their own way
//! (`timestamp`/`sign` in the URL, or in the body). Chat robots answer 200
//! with an error code in the body; a non-zero code is a failure.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::config::{WebhookFormat, WebhookSettings, redact_url};
use super::outbox::Outcome;
use super::render::{Notice, markdown, title};

type HmacSha256 = Hmac<Sha256>;

pub const DELIVERY_HEADER: &str = "X-Trailwarden-Delivery";
pub const TIMESTAMP_HEADER: &str = "X-Trailwarden-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Trailwarden-Signature";

/// HMAC-SHA256 of the concatenated `parts` under `key`.
fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    format!(
        "v1={}",
        hex::encode(hmac(secret.as_bytes(), &[timestamp.as_bytes(), b".", body]))
    )
}

fn base64_hmac(key: &[u8], message: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac(key, &[message]))
}

/// The JSON body for a format.
pub fn body(format: WebhookFormat, notice: &Notice) -> Value {
    match format {
        WebhookFormat::Generic => serde_json::to_value(notice).unwrap_or(Value::Null),
        WebhookFormat::Slack => json!({
            "text": title(notice),
            "blocks": [
                { "type": "header", "text": { "type": "plain_text", "text": truncate(&title(notice), 150) } },
                { "type": "section", "text": { "type": "mrkdwn", "text": truncate(&markdown(notice, true), 3000) } },
                { "type": "context", "elements": [
                    { "type": "mrkdwn", "text": format!("trailwarden · topic {} · delivery {}", notice.topic, notice.delivery_id) }
                ] }
            ]
        }),
        WebhookFormat::DingTalk => json!({
            "msgtype": "markdown",
            "markdown": { "title": title(notice), "text": format!("### {}\n\n{}", title(notice), markdown(notice, false).replace('\n', "\n\n")) }
        }),
        WebhookFormat::WeCom => json!({
            "msgtype": "markdown",
            "markdown": { "content": truncate(&format!("### {}\n{}", title(notice), markdown(notice, false)), 4000) }
        }),
        WebhookFormat::Feishu => {
            let template = match notice.alarm.as_ref().map(|alarm| alarm.level.as_str()) {
                Some("high") => "red",
                Some("medium") => "orange",
                Some("low") => "blue",
                _ => "grey",
            };
            json!({
                "msg_type": "interactive",
                "card": {
                    "header": { "title": { "tag": "plain_text", "content": title(notice) }, "template": template },
                    "elements": [ { "tag": "markdown", "content": markdown(notice, false) } ]
                }
            })
        }
    }
}

fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut out: String = text.chars().take(limit.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Sends webhook deliveries (one client, connection reuse).
#[derive(Clone, Debug)]
pub struct WebhookSender {
    client: reqwest::Client,
}

impl WebhookSender {
    pub fn new() -> Result<WebhookSender, super::NotifyError> {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .user_agent(concat!("trailwarden/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| super::NotifyError::Setup(format!("webhook client: {error}")))?;
        Ok(WebhookSender { client })
    }

    /// POST the notice; a 2xx (with a zero error code for chat robots) is delivered.
    pub async fn send(&self, hook: &WebhookSettings, notice: &Notice) -> Outcome {
        let now = chrono::Utc::now();
        let seconds = now.timestamp();
        let mut payload = body(hook.format, notice);
        let mut url = hook.url.clone();
        if let Some(secret) = &hook.secret {
            match hook.format {
                // DingTalk: timestamp (ms) and sign = base64(HMAC(secret, "<ms>\n<secret>")) in the query.
                WebhookFormat::DingTalk => {
                    let millis = now.timestamp_millis();
                    let sign = base64_hmac(secret.as_bytes(), format!("{millis}\n{secret}").as_bytes());
                    let separator = if url.contains('?') { '&' } else { '?' };
                    url = format!("{url}{separator}timestamp={millis}&sign={}", percent_encode(&sign));
                }
                // Feishu: timestamp (s) and sign = base64(HMAC(key = "<s>\n<secret>", empty)) in the body.
                WebhookFormat::Feishu => {
                    let sign = base64_hmac(format!("{seconds}\n{secret}").as_bytes(), b"");
                    if let Some(object) = payload.as_object_mut() {
                        object.insert("timestamp".into(), Value::String(seconds.to_string()));
                        object.insert("sign".into(), Value::String(sign));
                    }
                }
                _ => {}
            }
        }
        let body = match serde_json::to_vec(&payload) {
            Ok(body) => body,
            Err(error) => {
                return Outcome::Failed {
                    error: format!("encoding the payload: {error}"),
                    status: None,
                    permanent: true,
                };
            }
        };
        let mut request = self
            .client
            .post(&url)
            .timeout(hook.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, &notice.delivery_id)
            .header(TIMESTAMP_HEADER, seconds.to_string());
        if let Some(secret) = &hook.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, seconds, &body));
        }
        for (name, value) in &hook.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(error) => {
                // reqwest errors quote the URL, which may hold a robot's token.
                let error = error.without_url();
                return Outcome::Failed {
                    error: format!("POST {}: {}", redact_url(&hook.url), super::describe_error(&error)),
                    status: None,
                    permanent: false,
                };
            }
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let code = status.as_u16();
            return Outcome::Failed {
                error: format!(
                    "POST {}: HTTP {code} {}",
                    redact_url(&hook.url),
                    truncate(text.trim(), 200)
                ),
                status: Some(code),
                permanent: status.is_client_error() && !matches!(code, 408 | 425 | 429),
            };
        }
        if let Some(error) = robot_error(hook.format, &text) {
            return Outcome::Failed {
                error: format!("POST {}: {error}", redact_url(&hook.url)),
                status: Some(status.as_u16()),
                permanent: false,
            };
        }
        Outcome::Delivered {
            status: Some(status.as_u16()),
        }
    }
}

/// Chat robots answer HTTP 200 with `{"errcode": N}` (DingTalk, WeCom) or
/// `{"code": N}` (Feishu); non-zero is a failure.
fn robot_error(format: WebhookFormat, text: &str) -> Option<String> {
    let key = match format {
        WebhookFormat::DingTalk | WebhookFormat::WeCom => "errcode",
        WebhookFormat::Feishu => "code",
        WebhookFormat::Generic | WebhookFormat::Slack => return None,
    };
    let value: Value = serde_json::from_str(text).ok()?;
    let code = value.get(key).or_else(|| value.get("StatusCode"))?.as_i64()?;
    if code == 0 {
        return None;
    }
    let message = value
        .get("errmsg")
        .or_else(|| value.get("msg"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Some(format!("the robot answered {key} {code} {message}").trim().to_string())
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_and_body() {
        // Computed independently: hmac.new(b"secret", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature("secret", 1_700_000_000, b"{}"),
            "v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn robots_report_their_error_codes() {
        assert_eq!(
            robot_error(WebhookFormat::DingTalk, r#"{"errcode":0,"errmsg":"ok"}"#),
            None
        );
        assert!(
            robot_error(
                WebhookFormat::WeCom,
                r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#
            )
            .is_some_and(|error| error.contains("93000"))
        );
        assert!(robot_error(WebhookFormat::Feishu, r#"{"code":19021,"msg":"sign match fail"}"#).is_some());
        assert_eq!(robot_error(WebhookFormat::Feishu, r#"{"StatusCode":0}"#), None);
        assert_eq!(robot_error(WebhookFormat::Slack, "ok"), None);
    }

    #[test]
    fn percent_encoding_of_base64() {
        assert_eq!(percent_encode("a+b/c="), "a%2Bb%2Fc%3D");
    }
}
