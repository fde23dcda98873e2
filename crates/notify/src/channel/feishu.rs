//! Feishu / Lark custom bots: an interactive card with a coloured header, signed when the bot
//! has signature verification on.
//!
//! Signing, as Feishu documents it: with `timestamp` in seconds, `sign = base64(HMAC-SHA256(key
//! = timestamp + "\n" + secret, message = empty))`, both sent in the JSON body.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use hubmon_model::{AlertStatus, Severity};
use serde_json::json;
use sha2::Sha256;

use super::{Delivery, Receipt, SendError, http_send, truncate_bytes, vendor_answer};
use crate::settings::FeishuSettings;

/// 11232 and 9499: the bot is sending too fast.
const RATE_LIMITED: [i64; 2] = [11232, 9499];
const MAX_CONTENT: usize = 20_000;

pub fn sign(secret: &str, timestamp_s: i64) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    let Ok(mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        unreachable!("HMAC-SHA256 takes keys of any length")
    };
    BASE64.encode(mac.finalize().into_bytes())
}

fn header_template(status: AlertStatus, severity: Severity) -> &'static str {
    match (status, severity) {
        (AlertStatus::Resolved, _) => "green",
        (_, Severity::Critical) => "red",
        (_, Severity::Warning) => "orange",
        (_, Severity::Info) => "blue",
    }
}

pub fn payload(settings: &FeishuSettings, delivery: &Delivery<'_>, timestamp_s: i64) -> serde_json::Value {
    let rendered = delivery.rendered;
    let mut body = json!({
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": true},
            "header": {
                "title": {"tag": "plain_text", "content": rendered.title},
                "template": header_template(rendered.status, rendered.severity),
            },
            "elements": [{"tag": "markdown", "content": truncate_bytes(&rendered.body, MAX_CONTENT)}],
        },
    });
    if let Some(secret) = &settings.secret {
        body["timestamp"] = json!(timestamp_s.to_string());
        body["sign"] = json!(sign(secret, timestamp_s));
    }
    body
}

pub async fn send(
    client: &reqwest::Client,
    settings: &FeishuSettings,
    delivery: &Delivery<'_>,
    timeout: Duration,
) -> Result<Receipt, SendError> {
    let body = payload(settings, delivery, chrono::Utc::now().timestamp());
    let answer = http_send(client.post(&settings.webhook_url).json(&body), timeout).await?;
    // Current bots answer {"code": 0}; older ones {"StatusCode": 0}.
    vendor_answer(answer, &["code", "StatusCode"], &RATE_LIMITED)
}
