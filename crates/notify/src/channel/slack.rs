//! Slack incoming webhooks: a Block Kit message inside an attachment, whose bar shows the
//! severity colour; `text` is the fallback Slack shows in notifications.

use std::time::Duration;

use serde_json::json;

use super::{Delivery, Receipt, SendError, http_send, truncate_bytes};
use crate::settings::SlackSettings;
use crate::template::colour;

/// Slack refuses a section text over 3,000 characters.
const MAX_SECTION: usize = 3000;

pub fn payload(settings: &SlackSettings, delivery: &Delivery<'_>) -> serde_json::Value {
    let rendered = delivery.rendered;
    let mut body = json!({
        "text": rendered.title,
        "attachments": [{
            "color": colour(rendered.status, rendered.severity),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": truncate_bytes(&rendered.title, 150), "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "text": truncate_bytes(&rendered.body, MAX_SECTION)}},
            ],
        }],
    });
    if let Some(channel) = &settings.channel {
        body["channel"] = json!(channel);
    }
    if let Some(username) = &settings.username {
        body["username"] = json!(username);
    }
    body
}

pub async fn send(
    client: &reqwest::Client,
    settings: &SlackSettings,
    delivery: &Delivery<'_>,
    timeout: Duration,
) -> Result<Receipt, SendError> {
    let request = client.post(&settings.webhook_url).json(&payload(settings, delivery));
    let answer = http_send(request, timeout).await?;
    // Slack answers a plain "ok"; errors come with 4xx statuses, handled above.
    Ok(Receipt { status_code: Some(answer.status), detail: answer.body })
}
