//! Generic webhooks: Alertmanager's webhook JSON (version 4), so receivers written for
//! Alertmanager work unchanged, with custom headers and an optional signature.
//!
//! Signature: `X-Hubmon-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>`.
//! A receiver recomputes it over the raw body and rejects old timestamps to stop replays.

use std::time::Duration;

use hmac::{Hmac, Mac};
use hubmon_model::{Alert, Timestamp};
use serde_json::json;
use sha2::Sha256;

use super::{Delivery, Receipt, SendError, http_send};
use crate::settings::WebhookSettings;

pub const SIGNATURE_HEADER: &str = "X-Hubmon-Signature";

/// Alertmanager writes the zero time for an alert that has not ended.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The signature header value for `body` sent at `timestamp_s`.
pub fn signature(secret: &str, timestamp_s: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC-SHA256 takes keys of any length")
    };
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp_s},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn alert_json(alert: &Alert) -> serde_json::Value {
    json!({
        "status": alert.status.as_str(),
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": alert.starts_at.to_rfc3339(),
        "endsAt": alert.ends_at.map_or_else(|| ZERO_TIME.to_string(), Timestamp::to_rfc3339),
        "generatorURL": alert.generator_url.clone().unwrap_or_default(),
        "fingerprint": alert.fingerprint,
    })
}

pub fn payload(settings: &WebhookSettings, delivery: &Delivery<'_>) -> serde_json::Value {
    let message = delivery.message;
    let limit = if settings.max_alerts == 0 { usize::MAX } else { settings.max_alerts };
    let alerts: Vec<serde_json::Value> = message.alerts.iter().take(limit).map(alert_json).collect();
    json!({
        "version": "4",
        "groupKey": message.group_key,
        "truncatedAlerts": message.alerts.len().saturating_sub(alerts.len()),
        "status": message.status().as_str(),
        "receiver": delivery.channel_name,
        "groupLabels": message.group_labels,
        "commonLabels": message.common_labels(),
        "commonAnnotations": message.common_annotations(),
        "externalURL": delivery.external_url.unwrap_or_default(),
        "alerts": alerts,
    })
}

pub async fn send(
    client: &reqwest::Client,
    settings: &WebhookSettings,
    delivery: &Delivery<'_>,
    timeout: Duration,
) -> Result<Receipt, SendError> {
    let body = serde_json::to_vec(&payload(settings, delivery))
        .map_err(|e| SendError::permanent(format!("cannot encode the payload: {e}")))?;
    let mut request = client.post(&settings.webhook_url).header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in &settings.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(secret) = &settings.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, chrono::Utc::now().timestamp(), &body));
    }
    if let Some(id) = delivery.notification_id {
        // Lets a receiver drop the duplicate a crash between send and record can cause.
        request = request.header("X-Hubmon-Notification-Id", id.to_string());
    }
    let answer = http_send(request.body(body), timeout).await?;
    Ok(Receipt { status_code: Some(answer.status), detail: answer.body })
}
