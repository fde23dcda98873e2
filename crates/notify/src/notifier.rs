//! [`Notifier`]: the notification service's public face.
//!
//! Producers call [`Notifier::enqueue`]; the HTTP API manages channels, sends tests, reads the
//! history and the inbox through the other methods; the server runs [`Notifier::run`] (the
//! outbox dispatcher, `outbox.rs`) as a background task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hubmon_model::{PromDuration, Timestamp};
use hubmon_state::{
    Attempt, AttemptOutcome, Channel, InboxMessage, NewChannel, NewNotification, Notification, NotificationQuery,
    Secrets, StateStore,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::channel::Transports;
use crate::message::AlertMessage;
use crate::ratelimit::RateLimiter;
use crate::settings::{self, ChannelKind, ChannelSettings, DEFAULT_MAX_ATTEMPTS};
use crate::template::RenderContext;
use crate::{Error, Result};

/// The `[notify]` section: how the outbox dispatcher works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Run the dispatcher in this process (replicas on one PostgreSQL share the work).
    pub enabled: bool,
    /// How often to look for due notifications when nothing wakes the dispatcher sooner.
    pub poll_interval: PromDuration,
    /// Deliveries in flight at once, over all channels.
    pub concurrency: u32,
    /// Wait before the first retry; doubles per attempt, with jitter.
    pub retry_initial: PromDuration,
    /// Longest wait between attempts.
    pub retry_max: PromDuration,
    /// How long a claimed notification stays with this process; after a crash it is sent again
    /// once the lease runs out. Channel timeouts are capped at half of it.
    pub lease: PromDuration,
    /// The dashboard's address, linked from messages (empty: no link).
    pub external_url: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: PromDuration::from_secs(1),
            concurrency: 16,
            retry_initial: PromDuration::from_secs(10),
            retry_max: PromDuration::from_secs(600),
            lease: PromDuration::from_secs(120),
            external_url: String::new(),
        }
    }
}

impl Config {
    /// Checks what the types alone cannot; errors name the option.
    pub fn validate(&self) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err("notify.concurrency must be at least 1".into());
        }
        if self.poll_interval.as_duration() < Duration::from_millis(10) {
            return Err("notify.poll_interval must be at least 10ms".into());
        }
        if self.lease.as_duration() < Duration::from_secs(2) {
            return Err("notify.lease must be at least 2s".into());
        }
        if self.retry_initial.as_duration().is_zero() || self.retry_max.as_duration() < self.retry_initial.as_duration()
        {
            return Err("notify.retry_initial must be more than 0s and at most notify.retry_max".into());
        }
        let url = self.external_url.trim();
        if !url.is_empty() && !reqwest::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(format!("notify.external_url {url:?} must be an http:// or https:// URL, or empty"));
        }
        Ok(())
    }
}

/// A channel as `POST`/`PUT /api/v1/channels` take it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    pub name: String,
    /// `email`, `slack`, `dingtalk`, `feishu`, `wecom`, `telegram`, `webhook` or `in_app`.
    pub kind: String,
    /// Kind-specific settings, plus `timeout`, `max_attempts`, `rate_limit_per_minute`,
    /// `language` (`en`/`zh`), `title_template`, `body_template`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Value,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// A channel as the API shows it: secrets masked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChannelView {
    pub id: i64,
    pub name: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub config: Value,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The result of one send attempt, as a test send returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SendReport {
    /// The outbox row, when the send went through the outbox.
    pub notification_id: Option<i64>,
    pub delivered: bool,
    pub outcome: AttemptOutcome,
    /// HTTP status or SMTP reply code.
    pub status_code: Option<u16>,
    /// The peer's answer or the error.
    pub detail: String,
    pub duration_ms: i64,
    pub title: String,
}

/// One outbox row written by [`Notifier::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    pub channel_id: i64,
    pub notification_id: i64,
    /// False when the (channel, dedup key) pair was already in the outbox.
    pub new: bool,
}

/// Counters for `hubmon_notifications_*` metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    pub rate_limited: AtomicU64,
}

/// The notification service. Cheap to clone.
#[derive(Clone)]
pub struct Notifier(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub store: Arc<dyn StateStore>,
    pub secrets: Secrets,
    pub config: Config,
    pub transports: Transports,
    pub limiter: RateLimiter,
    pub wake: tokio::sync::Notify,
    /// This process's name on the leases it takes.
    pub owner: String,
    pub stats: Stats,
}

impl Notifier {
    pub fn new(store: Arc<dyn StateStore>, secrets: Secrets, config: Config) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("hubmon/", env!("CARGO_PKG_VERSION")))
            // Webhook URLs are configured by admins; a redirect elsewhere is not followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Corrupt(format!("cannot build the HTTP client: {e}")))?;
        let owner = format!("{}-{}-{:08x}", hostname(), std::process::id(), rand::random::<u32>());
        Ok(Self(Arc::new(Inner {
            transports: Transports { http, store: store.clone(), inbox: tokio::sync::broadcast::channel(256).0 },
            store,
            secrets,
            config,
            limiter: RateLimiter::default(),
            wake: tokio::sync::Notify::new(),
            owner,
            stats: Stats::default(),
        })))
    }

    pub fn stats(&self) -> &Stats {
        &self.0.stats
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub(crate) fn render_context(&self) -> RenderContext {
        let url = self.0.config.external_url.trim();
        RenderContext { external_url: (!url.is_empty()).then(|| url.to_string()) }
    }

    // ---- producers ------------------------------------------------------------------------

    /// Writes one outbox row per enabled channel and returns; the dispatcher delivers.
    ///
    /// `dedup_key` identifies the event (e.g. `"<group key>:<fingerprints>:firing:<starts_at>"`):
    /// enqueuing the same key for a channel again is a no-op, so a producer that retries after
    /// a crash or a timeout never causes a second message. Disabled channels are skipped.
    pub async fn enqueue(&self, channel_ids: &[i64], message: &AlertMessage, dedup_key: &str) -> Result<Vec<Enqueued>> {
        self.enqueue_with(channel_ids, message, dedup_key, None).await
    }

    async fn enqueue_with(
        &self,
        channel_ids: &[i64],
        message: &AlertMessage,
        dedup_key: &str,
        max_attempts: Option<u32>,
    ) -> Result<Vec<Enqueued>> {
        if dedup_key.is_empty() || dedup_key.len() > 500 {
            return Err(Error::invalid("dedup_key", "must be 1 to 500 bytes"));
        }
        let body = serde_json::to_string(message).map_err(|e| Error::Corrupt(format!("message: {e}")))?;
        let mut written = Vec::with_capacity(channel_ids.len());
        for &channel_id in channel_ids {
            let channel = self.0.store.channel(channel_id).await?.ok_or(Error::NoSuchChannel(channel_id))?;
            if !channel.enabled {
                tracing::debug!(channel = %channel.name, "channel disabled; notification not enqueued");
                continue;
            }
            // A channel whose settings no longer load still gets the row: its attempt records why.
            let settings = self.settings_of(&channel).ok();
            let title = settings
                .as_ref()
                .and_then(|s| s.templates.render(message, &self.render_context()).ok())
                .map_or_else(|| message.name(), |r| r.title);
            let attempts = max_attempts.or(settings.as_ref().map(|s| s.max_attempts)).unwrap_or(DEFAULT_MAX_ATTEMPTS);
            let (row, new) = self
                .0
                .store
                .enqueue_notification(NewNotification {
                    channel_id,
                    dedup_key: dedup_key.to_string(),
                    kind: message.kind.as_str().to_string(),
                    title,
                    severity: message.title_severity().as_str().to_string(),
                    message: body.clone(),
                    max_attempts: i64::from(attempts),
                    at: Timestamp::now(),
                })
                .await?;
            written.push(Enqueued { channel_id, notification_id: row.id, new });
        }
        if written.iter().any(|e| e.new) {
            self.0.wake.notify_one();
        }
        Ok(written)
    }

    // ---- channels -------------------------------------------------------------------------

    pub async fn list_channels(&self) -> Result<Vec<ChannelView>> {
        Ok(self.0.store.list_channels().await?.iter().map(|c| self.view(c)).collect())
    }

    pub async fn channel(&self, id: i64) -> Result<ChannelView> {
        let channel = self.0.store.channel(id).await?.ok_or(Error::NoSuchChannel(id))?;
        Ok(self.view(&channel))
    }

    pub async fn create_channel(&self, input: ChannelInput) -> Result<ChannelView> {
        let new = self.prepare(input, None)?;
        let channel = self.0.store.create_channel(new).await?;
        Ok(self.view(&channel))
    }

    /// Replaces a channel. Secret fields left out, or sent back as the masked value the API
    /// showed, keep their stored value.
    pub async fn update_channel(&self, id: i64, input: ChannelInput) -> Result<ChannelView> {
        let current = self.0.store.channel(id).await?.ok_or(Error::NoSuchChannel(id))?;
        let new = self.prepare(input, Some(&current))?;
        let channel = self.0.store.update_channel(id, new).await?.ok_or(Error::NoSuchChannel(id))?;
        self.0.wake.notify_one();
        Ok(self.view(&channel))
    }

    pub async fn delete_channel(&self, id: i64) -> Result<()> {
        if self.0.store.delete_channel(id).await? { Ok(()) } else { Err(Error::NoSuchChannel(id)) }
    }

    fn prepare(&self, mut input: ChannelInput, current: Option<&Channel>) -> Result<NewChannel> {
        let name = input.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::invalid("name", "must be 1 to 100 characters without control characters"));
        }
        let kind: ChannelKind = input.kind.parse()?;
        if let Some(current) = current.filter(|c| c.kind == kind.as_str()) {
            let stored = self.stored_config(current)?;
            let opened = settings::open(kind, &stored, &self.0.secrets)?;
            settings::keep_secrets(kind, &mut input.config, &opened);
        }
        ChannelSettings::parse(kind, &input.config)?;
        let sealed = settings::seal(kind, &input.config, &self.0.secrets)?;
        Ok(NewChannel {
            name,
            kind: kind.as_str().to_string(),
            config: sealed.to_string(),
            enabled: input.enabled,
            at: Timestamp::now(),
        })
    }

    fn stored_config(&self, channel: &Channel) -> Result<Value> {
        serde_json::from_str(&channel.config)
            .map_err(|e| Error::Corrupt(format!("channel {}: config is not JSON: {e}", channel.id)))
    }

    fn view(&self, channel: &Channel) -> ChannelView {
        let config = match (channel.kind.parse::<ChannelKind>(), self.stored_config(channel)) {
            (Ok(kind), Ok(stored)) => match settings::open(kind, &stored, &self.0.secrets) {
                Ok(opened) => settings::masked(kind, &opened),
                // Sealed with another key: show the sealed values masked, never fail the list.
                Err(_) => settings::masked(kind, &stored),
            },
            _ => Value::Null,
        };
        ChannelView {
            id: channel.id,
            name: channel.name.clone(),
            kind: channel.kind.clone(),
            config,
            enabled: channel.enabled,
            created_at: channel.created_at,
            updated_at: channel.updated_at,
        }
    }

    /// A stored channel's settings, secrets opened.
    pub(crate) fn settings_of(&self, channel: &Channel) -> Result<ChannelSettings> {
        let kind: ChannelKind = channel.kind.parse()?;
        let opened = settings::open(kind, &self.stored_config(channel)?, &self.0.secrets)?;
        ChannelSettings::parse(kind, &opened)
    }

    // ---- sending by hand ------------------------------------------------------------------

    /// Sends a test message through the outbox to a stored channel now and reports the attempt
    /// (one attempt, no retries: a test answers at once).
    pub async fn test_channel(&self, id: i64) -> Result<SendReport> {
        let channel = self.0.store.channel(id).await?.ok_or(Error::NoSuchChannel(id))?;
        if !channel.enabled {
            return Err(Error::ChannelDisabled(channel.name));
        }
        let language = self.settings_of(&channel).map(|s| s.templates.language()).unwrap_or_default();
        let message = AlertMessage::test_in(&channel.name, language);
        let dedup_key = format!("test:{:016x}", rand::random::<u64>());
        let written = self.enqueue_with(&[id], &message, &dedup_key, Some(1)).await?;
        let notification_id = written.first().map(|e| e.notification_id).ok_or(Error::ChannelDisabled(channel.name))?;
        self.deliver_now(notification_id).await
    }

    /// Sends a test message on a channel that is not stored (validated first); nothing is kept.
    pub async fn test_inline(&self, input: ChannelInput) -> Result<SendReport> {
        let kind: ChannelKind = input.kind.parse()?;
        let settings = ChannelSettings::parse(kind, &input.config)?;
        let message = AlertMessage::test_in(&input.name, settings.templates.language());
        Ok(self.send_once(&input.name, None, &settings, &message).await)
    }

    /// Makes a dead-lettered notification pending again, with the channel's attempts anew.
    pub async fn retry(&self, id: i64) -> Result<Notification> {
        let row = self.0.store.notification(id).await?.ok_or(Error::NoSuchNotification(id))?;
        let attempts = match self.0.store.channel(row.channel_id).await? {
            Some(channel) => self.settings_of(&channel).map_or(DEFAULT_MAX_ATTEMPTS, |s| s.max_attempts),
            None => DEFAULT_MAX_ATTEMPTS,
        };
        let row = self
            .0
            .store
            .retry_notification(id, i64::from(attempts), Timestamp::now())
            .await?
            .ok_or(Error::NotRetryable(id))?;
        self.0.wake.notify_one();
        Ok(row)
    }

    // ---- history and inbox ----------------------------------------------------------------

    pub async fn history(&self, query: &NotificationQuery) -> Result<Vec<Notification>> {
        Ok(self.0.store.list_notifications(query).await?)
    }

    pub async fn notification(&self, id: i64) -> Result<(Notification, Vec<Attempt>)> {
        let row = self.0.store.notification(id).await?.ok_or(Error::NoSuchNotification(id))?;
        let attempts = self.0.store.list_attempts(id).await?;
        Ok((row, attempts))
    }

    pub async fn inbox(
        &self,
        user_id: i64,
        unread_only: bool,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboxMessage>> {
        Ok(self.0.store.list_inbox(user_id, unread_only, before_id, limit).await?)
    }

    pub async fn unread_count(&self, user_id: i64) -> Result<i64> {
        Ok(self.0.store.unread_inbox_count(user_id).await?)
    }

    /// Marks one inbox entry (or all, with `None`) read; returns how many changed.
    pub async fn mark_read(&self, user_id: i64, id: Option<i64>) -> Result<u64> {
        Ok(self.0.store.mark_inbox_read(user_id, id, Timestamp::now()).await?)
    }

    /// Ids of users whose inbox got an entry from this process, as it happens.
    pub fn subscribe_inbox(&self) -> tokio::sync::broadcast::Receiver<i64> {
        self.0.transports.inbox.subscribe()
    }

    /// Wakes the dispatcher (after an enqueue in another process, for example).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    pub(crate) fn retry_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        backoff(
            self.0.config.retry_initial.as_duration(),
            self.0.config.retry_max.as_duration(),
            attempt,
            retry_after,
            rand::random::<f64>(),
        )
    }

    pub(crate) fn count(&self, outcome: AttemptOutcome) {
        let counter = match outcome {
            AttemptOutcome::Delivered => &self.0.stats.delivered,
            AttemptOutcome::Retry => &self.0.stats.retried,
            AttemptOutcome::Failed => &self.0.stats.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The wait before attempt `attempt + 1`: `initial × 2^(attempt-1)` capped at `max`, scaled
/// into its upper half by `jitter` (0..1) so retries of many rows spread out; never shorter
/// than what the peer asked for (capped at an hour).
pub(crate) fn backoff(
    initial: Duration,
    max: Duration,
    attempt: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let full = initial.saturating_mul(1u32 << exponent).min(max);
    let jittered = full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    match retry_after {
        Some(asked) => jittered.max(asked.min(Duration::from_secs(3600))),
        None => jittered,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "hubmon".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_jitters_and_honours_retry_after() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(10), s(600), 1, None, 1.0), s(10));
        assert_eq!(backoff(s(10), s(600), 2, None, 1.0), s(20));
        assert_eq!(backoff(s(10), s(600), 3, None, 0.0), s(20));
        assert_eq!(backoff(s(10), s(600), 20, None, 1.0), s(600));
        assert_eq!(backoff(s(10), s(600), 1, Some(s(120)), 1.0), s(120));
        assert_eq!(backoff(s(10), s(600), 1, Some(s(99_999)), 1.0), s(3600));
    }
}
