//! WeCom (企业微信) group robots: a markdown message; the `key` in the webhook URL is the secret.

use std::time::Duration;

use serde_json::json;

use super::{Delivery, Receipt, SendError, http_send, truncate_bytes, vendor_answer};
use crate::settings::WecomSettings;

/// errcode 45009: the robot's 20 messages a minute are used up.
const RATE_LIMITED: [i64; 1] = [45009];
/// WeCom refuses markdown content over 4,096 bytes.
const MAX_CONTENT: usize = 4096;

pub fn payload(delivery: &Delivery<'_>) -> serde_json::Value {
    let rendered = delivery.rendered;
    let content = format!("### {}\n{}", rendered.title, rendered.body);
    json!({"msgtype": "markdown", "markdown": {"content": truncate_bytes(&content, MAX_CONTENT)}})
}

pub async fn send(
    client: &reqwest::Client,
    settings: &WecomSettings,
    delivery: &Delivery<'_>,
    timeout: Duration,
) -> Result<Receipt, SendError> {
    let answer = http_send(client.post(&settings.webhook_url).json(&payload(delivery)), timeout).await?;
    vendor_answer(answer, &["errcode"], &RATE_LIMITED)
}
