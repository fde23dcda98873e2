//! The outbox dispatcher: claims due rows under a lease, sends each on its channel
//! concurrently (a slow channel delays nobody else), and records every attempt with the row's
//! next state: delivered, pending again after a backoff, or failed (dead letter).
//!
//! Crash safety comes from the store, not from memory: a row is claimed before its attempt and
//! recorded after it, in separate transactions. If the process dies between the two, the lease
//! runs out and another dispatcher (or this one, restarted) claims the row again: a row never
//! sent is sent once; a row sent but not recorded is sent a second time (the one in-flight
//! duplicate the design allows; webhooks carry `X-Hubmon-Notification-Id` to drop it).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hubmon_model::Timestamp;
use hubmon_state::{AttemptOutcome, Claim, DeliveryStatus, NewAttempt, Notification};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channel::{self, Delivery, SendError};
use crate::message::AlertMessage;
use crate::notifier::{Notifier, SendReport};
use crate::settings::ChannelSettings;
use crate::{Error, Result};

impl Notifier {
    /// Runs the dispatcher until `shutdown`, then waits for the attempts in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        let concurrency = self.0.config.concurrency.max(1) as usize;
        let permits = Arc::new(Semaphore::new(concurrency));
        let attempts = TaskTracker::new();
        let poll = self.0.config.poll_interval.as_duration().max(Duration::from_millis(10));
        tracing::info!(owner = %self.0.owner, concurrency, "notification dispatcher started");
        loop {
            let free = permits.available_permits();
            let mut full_batch = false;
            if free > 0 {
                match self.claim(free, None).await {
                    Ok(rows) => {
                        full_batch = rows.len() == free;
                        for row in rows {
                            let Ok(permit) = permits.clone().acquire_owned().await else { break };
                            let notifier = self.clone();
                            attempts.spawn(async move {
                                notifier.attempt(row).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot claim notifications"),
                }
            }
            if full_batch {
                // More may be due; look again as soon as a permit frees.
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = permits.acquire() => continue,
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.0.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
        attempts.close();
        attempts.wait().await;
        tracing::info!("notification dispatcher stopped");
    }

    async fn claim(&self, limit: usize, only_id: Option<i64>) -> Result<Vec<Notification>> {
        let now = Timestamp::now();
        let claim = Claim {
            now,
            owner: self.0.owner.clone(),
            lease_until: now.plus(self.0.config.lease.as_duration()),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
            only_id,
        };
        Ok(self.0.store.claim_notifications(&claim).await?)
    }

    /// Sends a row this process just enqueued and reports the attempt. If the dispatcher took
    /// the row first, waits for its attempt instead.
    pub(crate) async fn deliver_now(&self, id: i64) -> Result<SendReport> {
        if let Some(row) = self.claim(1, Some(id)).await?.pop()
            && let Some(report) = self.attempt(row).await
        {
            return Ok(report);
        }
        let deadline = Instant::now() + self.0.config.lease.as_duration();
        loop {
            let (row, attempts) = self.notification(id).await?;
            if let Some(last) = attempts.last().filter(|_| row.status != DeliveryStatus::Sending) {
                return Ok(SendReport {
                    notification_id: Some(id),
                    delivered: last.outcome == AttemptOutcome::Delivered,
                    outcome: last.outcome,
                    status_code: last.status_code.and_then(|c| u16::try_from(c).ok()),
                    detail: last.detail.clone(),
                    duration_ms: last.duration_ms,
                    title: row.title,
                });
            }
            if Instant::now() > deadline {
                return Err(Error::NotRetryable(id));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One attempt on a claimed row; `None` when the row went back unattempted (rate limit).
    pub(crate) async fn attempt(&self, row: Notification) -> Option<SendReport> {
        let started = Timestamp::now();
        let clock = Instant::now();
        let prepared = self.prepare_attempt(&row).await;
        let (name, settings, message) = match prepared {
            Ok(Some(prepared)) => prepared,
            Ok(None) => return None,
            Err(problem) => {
                let error = SendError::permanent(problem);
                return Some(self.finish(&row, started, clock, Err(error), row.title.clone()).await);
            }
        };
        if let Err(wait) = self.0.limiter.try_acquire(row.channel_id, settings.rate_per_minute, Instant::now()) {
            self.0.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(channel = %name, wait_ms = wait.as_millis() as u64, "channel at its rate limit; queued");
            let due = Timestamp::now().plus(wait);
            if let Err(error) = self.0.store.release_notification(row.id, &self.0.owner, due).await {
                tracing::warn!(%error, notification = row.id, "cannot hand a rate-limited notification back");
            }
            return None;
        }
        let capped = self.capped(settings);
        let context = self.render_context();
        let rendered = match capped.templates.render(&message, &context) {
            Ok(rendered) => rendered,
            Err(problem) => {
                let error = SendError::permanent(problem);
                return Some(self.finish(&row, started, clock, Err(error), row.title.clone()).await);
            }
        };
        let delivery = Delivery {
            channel_name: &name,
            notification_id: Some(row.id),
            message: &message,
            rendered: &rendered,
            external_url: context.external_url.as_deref(),
        };
        let result = channel::send(&self.0.transports, &capped, &delivery).await;
        Some(self.finish(&row, started, clock, result, rendered.title.clone()).await)
    }

    /// The channel name, settings and message of a row, or why it cannot be sent.
    async fn prepare_attempt(
        &self,
        row: &Notification,
    ) -> Result<Option<(String, ChannelSettings, AlertMessage)>, String> {
        let channel = match self.0.store.channel(row.channel_id).await {
            Ok(Some(channel)) => channel,
            // Deleted meanwhile: its rows went with it.
            Ok(None) => return Ok(None),
            Err(error) => {
                // The store is unreachable: leave the row to its lease and try later.
                tracing::warn!(%error, notification = row.id, "cannot load the channel of a notification");
                return Ok(None);
            }
        };
        let settings = self.settings_of(&channel).map_err(|e| format!("channel settings: {e}"))?;
        let message: AlertMessage =
            serde_json::from_str(&row.message).map_err(|e| format!("stored message is unreadable: {e}"))?;
        Ok(Some((channel.name, settings, message)))
    }

    /// Keeps an attempt inside the lease, so a slow peer cannot outlive it.
    fn capped(&self, mut settings: ChannelSettings) -> ChannelSettings {
        let cap = (self.0.config.lease.as_duration() / 2).max(Duration::from_secs(1));
        settings.timeout = settings.timeout.min(cap);
        settings
    }

    async fn finish(
        &self,
        row: &Notification,
        started: Timestamp,
        clock: Instant,
        result: Result<channel::Receipt, SendError>,
        title: String,
    ) -> SendReport {
        let attempt = u32::try_from(row.attempts + 1).unwrap_or(u32::MAX);
        let (outcome, status_code, detail, next_attempt_at) = match result {
            Ok(receipt) => (AttemptOutcome::Delivered, receipt.status_code, receipt.detail, None),
            Err(error) if error.retryable && i64::from(attempt) < row.max_attempts => {
                let wait = self.retry_delay(attempt, error.retry_after);
                (AttemptOutcome::Retry, error.status_code, error.message, Some(Timestamp::now().plus(wait)))
            }
            Err(error) => (AttemptOutcome::Failed, error.status_code, error.message, None),
        };
        let duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        match outcome {
            AttemptOutcome::Delivered => tracing::info!(notification = row.id, attempt, "notification delivered"),
            AttemptOutcome::Retry => {
                tracing::warn!(notification = row.id, attempt, error = %detail, "notification failed, will retry")
            }
            AttemptOutcome::Failed => {
                tracing::warn!(notification = row.id, attempt, error = %detail, "notification failed for good")
            }
        }
        self.count(outcome);
        let record = NewAttempt {
            notification_id: row.id,
            owner: self.0.owner.clone(),
            started_at: started,
            duration_ms,
            outcome,
            status_code: status_code.map(i64::from),
            detail: detail.clone(),
            next_attempt_at,
            at: Timestamp::now(),
        };
        match self.0.store.record_attempt(record).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(notification = row.id, "lease lost before the attempt was recorded"),
            // The row stays leased; when the lease runs out it is attempted again.
            Err(error) => tracing::error!(%error, notification = row.id, "cannot record a notification attempt"),
        }
        SendReport {
            notification_id: Some(row.id),
            delivered: outcome == AttemptOutcome::Delivered,
            outcome,
            status_code,
            detail,
            duration_ms,
            title,
        }
    }

    /// One send outside the outbox (an inline test): nothing recorded, no retries.
    pub(crate) async fn send_once(
        &self,
        name: &str,
        notification_id: Option<i64>,
        settings: &ChannelSettings,
        message: &AlertMessage,
    ) -> SendReport {
        let clock = Instant::now();
        let capped = self.capped(settings.clone());
        let context = self.render_context();
        let (title, result) = match capped.templates.render(message, &context) {
            Ok(rendered) => {
                let delivery = Delivery {
                    channel_name: name,
                    notification_id,
                    message,
                    rendered: &rendered,
                    external_url: context.external_url.as_deref(),
                };
                (rendered.title.clone(), channel::send(&self.0.transports, &capped, &delivery).await)
            }
            Err(problem) => (message.name(), Err(SendError::permanent(problem))),
        };
        let duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        match result {
            Ok(receipt) => SendReport {
                notification_id,
                delivered: true,
                outcome: AttemptOutcome::Delivered,
                status_code: receipt.status_code,
                detail: receipt.detail,
                duration_ms,
                title,
            },
            Err(error) => SendReport {
                notification_id,
                delivered: false,
                outcome: AttemptOutcome::Failed,
                status_code: error.status_code,
                detail: error.message,
                duration_ms,
                title,
            },
        }
    }
}
