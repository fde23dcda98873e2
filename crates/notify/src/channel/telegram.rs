//! Telegram bots: `sendMessage` with HTML formatting to one chat.

use std::time::Duration;

use serde_json::json;

use super::{Delivery, Receipt, SendError, http_send};
use crate::settings::TelegramSettings;

/// Telegram refuses messages over 4,096 characters.
const MAX_TEXT_CHARS: usize = 4096;

pub fn payload(settings: &TelegramSettings, delivery: &Delivery<'_>) -> serde_json::Value {
    let body = &delivery.rendered.body;
    // Cutting HTML could leave a tag open, which Telegram rejects; fall back to the title.
    let text = if body.chars().count() <= MAX_TEXT_CHARS { body.clone() } else { delivery.rendered.title.clone() };
    json!({
        "chat_id": settings.chat_id,
        "text": text,
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    })
}

pub fn method_url(settings: &TelegramSettings) -> String {
    format!("{}/bot{}/sendMessage", settings.api_url.trim_end_matches('/'), settings.bot_token)
}

pub async fn send(
    client: &reqwest::Client,
    settings: &TelegramSettings,
    delivery: &Delivery<'_>,
    timeout: Duration,
) -> Result<Receipt, SendError> {
    let request = client.post(method_url(settings)).json(&payload(settings, delivery));
    match http_send(request, timeout).await {
        Ok(answer) => {
            let parsed: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
            if parsed.get("ok").and_then(serde_json::Value::as_bool) == Some(true) {
                let id = parsed.pointer("/result/message_id").and_then(serde_json::Value::as_i64);
                let detail = id.map_or_else(|| "ok".to_string(), |id| format!("ok, message_id {id}"));
                Ok(Receipt { status_code: Some(answer.status), detail })
            } else {
                Err(SendError::permanent(format!("unexpected answer: {}", answer.body)))
            }
        }
        Err(mut error) => {
            // A 429 names its wait in the body: {"parameters": {"retry_after": 35}}.
            if error.status_code == Some(429) && error.retry_after.is_none() {
                let seconds = error
                    .message
                    .split_once(": ")
                    .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(body).ok())
                    .and_then(|v| v.pointer("/parameters/retry_after").and_then(serde_json::Value::as_u64));
                error.retry_after = seconds.map(Duration::from_secs);
            }
            Err(error)
        }
    }
}
