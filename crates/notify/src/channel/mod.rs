//! One file per channel kind. Each turns a rendered message into its product's API call and
//! says whether a failure is worth retrying ([`SendError::retryable`]): a timeout, a refused
//! connection, 429 or 5xx is; a rejected payload, a wrong token or a refused recipient is not.
//!
//! Error texts never include a webhook URL: it carries the channel's token.

pub mod dingtalk;
pub mod email;
pub mod feishu;
pub mod in_app;
pub mod slack;
pub mod telegram;
pub mod webhook;
pub mod wecom;

use std::sync::Arc;
use std::time::Duration;

use hubmon_state::StateStore;
use reqwest::{RequestBuilder, StatusCode};

use crate::message::AlertMessage;
use crate::settings::{ChannelSettings, KindSettings};
use crate::template::Rendered;

/// A delivery that worked: what the peer answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// HTTP status or SMTP reply code.
    pub status_code: Option<u16>,
    pub detail: String,
}

/// A delivery that did not work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Whether another attempt may succeed.
    pub retryable: bool,
    pub status_code: Option<u16>,
    /// What the peer asked us to wait (`Retry-After`, Telegram's `retry_after`, …).
    pub retry_after: Option<Duration>,
    pub message: String,
}

impl SendError {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self { retryable: false, status_code: None, retry_after: None, message: message.into() }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self { retryable: true, status_code: None, retry_after: None, message: message.into() }
    }

    fn with_status(mut self, status: u16) -> Self {
        self.status_code = Some(status);
        self
    }
}

/// Everything one send needs.
pub struct Delivery<'a> {
    pub channel_name: &'a str,
    /// The outbox row, when there is one (not for an inline test).
    pub notification_id: Option<i64>,
    pub message: &'a AlertMessage,
    pub rendered: &'a Rendered,
    pub external_url: Option<&'a str>,
}

/// The shared clients channels send through.
#[derive(Clone)]
pub struct Transports {
    pub http: reqwest::Client,
    pub store: Arc<dyn StateStore>,
    /// Tells open dashboards (in this process) which user's inbox just got an entry.
    pub inbox: tokio::sync::broadcast::Sender<i64>,
}

/// Sends `delivery` on the channel described by `settings`, within `settings.timeout`.
pub async fn send(
    transports: &Transports,
    settings: &ChannelSettings,
    delivery: &Delivery<'_>,
) -> Result<Receipt, SendError> {
    let timeout = settings.timeout;
    let sending = async {
        match &settings.kind {
            KindSettings::Email(s) => email::send(s, delivery, timeout).await,
            KindSettings::Slack(s) => slack::send(&transports.http, s, delivery, timeout).await,
            KindSettings::Dingtalk(s) => dingtalk::send(&transports.http, s, delivery, timeout).await,
            KindSettings::Feishu(s) => feishu::send(&transports.http, s, delivery, timeout).await,
            KindSettings::Wecom(s) => wecom::send(&transports.http, s, delivery, timeout).await,
            KindSettings::Telegram(s) => telegram::send(&transports.http, s, delivery, timeout).await,
            KindSettings::Webhook(s) => webhook::send(&transports.http, s, delivery, timeout).await,
            KindSettings::InApp(s) => in_app::send(transports, s, delivery).await,
        }
    };
    // The transports time out on their own; this bounds anything they do not cover (DNS, a
    // TLS handshake that trickles) so a lease never outlives its attempt.
    match tokio::time::timeout(timeout + Duration::from_secs(1), sending).await {
        Ok(result) => result,
        Err(_) => Err(SendError::transient(format!("timed out after {}s", timeout.as_secs_f64()))),
    }
}

/// What an HTTP endpoint answered with a 2xx status.
pub(crate) struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

/// Sends a request and classifies the outcome: 2xx is an answer to inspect further; 408, 425,
/// 429 and 5xx are retryable (with `Retry-After` when given); other statuses are permanent.
pub(crate) async fn http_send(request: RequestBuilder, timeout: Duration) -> Result<HttpAnswer, SendError> {
    let response = request.timeout(timeout).send().await.map_err(|error| {
        let error = error.without_url();
        if error.is_timeout() {
            SendError::transient(format!("timed out after {}s", timeout.as_secs_f64()))
        } else if error.is_connect() {
            SendError::transient(format!("cannot connect: {}", source_chain(&error)))
        } else if error.is_builder() {
            SendError::permanent(format!("cannot build the request: {}", source_chain(&error)))
        } else {
            SendError::transient(format!("request failed: {}", source_chain(&error)))
        }
    })?;
    let status = response.status();
    let retry_after =
        response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    let body = match response.text().await {
        Ok(text) => excerpt(&text),
        Err(error) => format!("(body unreadable: {})", error.without_url()),
    };
    if status.is_success() {
        return Ok(HttpAnswer { status: status.as_u16(), body });
    }
    let retryable = status.is_server_error()
        || matches!(status, StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS)
        || status.as_u16() == 425;
    let shown = if body.is_empty() { String::new() } else { format!(": {body}") };
    Err(SendError {
        retryable,
        status_code: Some(status.as_u16()),
        retry_after,
        message: format!("HTTP {}{shown}", status.as_u16()),
    })
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn parse_retry_after(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or(Duration::ZERO))
}

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = inner.source();
    }
    text
}

/// At most 500 characters of a peer's answer, for the attempt log.
pub(crate) fn excerpt(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= 500 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(500).collect::<String>())
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub(crate) fn truncate_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Checks the `{"errcode": 0}` / `{"code": 0}` answer the Chinese robot APIs give with HTTP 200.
/// `rate_limited` lists the codes that mean "too fast" (retry after a minute).
pub(crate) fn vendor_answer(
    answer: HttpAnswer,
    code_fields: &[&str],
    rate_limited: &[i64],
) -> Result<Receipt, SendError> {
    let parsed: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or(serde_json::Value::Null);
    let code = code_fields.iter().find_map(|field| parsed.get(*field).and_then(serde_json::Value::as_i64));
    match code {
        Some(0) => Ok(Receipt { status_code: Some(answer.status), detail: answer.body }),
        Some(code) if rate_limited.contains(&code) => Err(SendError {
            retryable: true,
            status_code: Some(answer.status),
            retry_after: Some(Duration::from_secs(60)),
            message: format!("rate limited by the service (code {code}): {}", answer.body),
        }),
        Some(code) => Err(SendError::permanent(format!("refused by the service (code {code}): {}", answer.body))
            .with_status(answer.status)),
        None => Err(SendError::permanent(format!("unexpected answer: {}", answer.body)).with_status(answer.status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_bytes("告警告警", 7), "告…");
        assert_eq!(truncate_bytes("abc", 7), "abc");
    }
}
