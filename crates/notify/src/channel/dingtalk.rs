//! DingTalk (钉钉) group robots: a markdown message, signed when the robot has "加签" on.
//!
//! Signing, as DingTalk documents it: `sign = urlencode(base64(HMAC-SHA256(key = secret,
//! message = timestamp + "\n" + secret)))` with the timestamp in milliseconds, both appended
//! to the webhook URL as `&timestamp=…&sign=…`. DingTalk rejects a timestamp over an hour off.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{Delivery, Receipt, SendError, http_send, truncate_bytes, vendor_answer};
use crate::settings::DingtalkSettings;

/// errcode 130101: "send too fast, exceed 20 times per minute".
const RATE_LIMITED: [i64; 1] = [130101];
const MAX_TEXT: usize = 18_000;

/// The `sign` parameter for `timestamp_ms` (before URL encoding).
pub fn sign(secret: &str, timestamp_ms: i64) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC-SHA256 takes keys of any length")
    };
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// The URL to post to: the webhook, signed when there is a secret.
pub fn signed_url(settings: &DingtalkSettings, timestamp_ms: i64) -> String {
    match &settings.secret {
        Some(secret) => {
            let sign: String = form_urlencoded::byte_serialize(sign(secret, timestamp_ms).as_bytes()).collect();
            let separator = if settings.webhook_url.contains('?') { '&' } else { '?' };
            format!("{}{separator}timestamp={timestamp_ms}&sign={sign}", settings.webhook_url)
        }
        None => settings.webhook_url.clone(),
    }
}

pub fn payload(settings: &DingtalkSettings, delivery: &Delivery<'_>) -> serde_json::Value {
    let rendered = delivery.rendered;
    let mut text = format!("### {}\n\n{}", rendered.title, rendered.body);
    // DingTalk only notifies the people whose numbers appear in the text.
    if !settings.at_mobiles.is_empty() {
        let mentions: Vec<String> = settings.at_mobiles.iter().map(|m| format!("@{m}")).collect();
        text = format!("{text}\n\n{}", mentions.join(" "));
    }
    json!({
        "msgtype": "markdown",
        "markdown": {"title": rendered.title, "text": truncate_bytes(&text, MAX_TEXT)},
        "at": {"atMobiles": settings.at_mobiles, "isAtAll": settings.at_all},
    })
}

pub async fn send(
    client: &reqwest::Client,
    settings: &DingtalkSettings,
    delivery: &Delivery<'_>,
    timeout: Duration,
) -> Result<Receipt, SendError> {
    let url = signed_url(settings, chrono::Utc::now().timestamp_millis());
    let answer = http_send(client.post(url).json(&payload(settings, delivery)), timeout).await?;
    vendor_answer(answer, &["errcode"], &RATE_LIMITED)
}
