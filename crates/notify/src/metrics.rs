//! The notifier's own series, written into the metrics store like any other, so rules can
//! alert on notifications that fail (`increase(hubmon_notifications_attempts_total{outcome=
//! "failed"}[1h]) > 0`) and the dashboard can chart them.
//!
//! - `hubmon_notifications_attempts_total{outcome}`: attempts by this process since it started,
//!   `delivered`, `retry` or `failed` (counter).
//! - `hubmon_notifications_rate_limited_total`: sends held back by a channel's rate limit (counter).
//! - `hubmon_notifications_outbox{status}`: outbox rows by status, over all processes (gauge).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hubmon_model::{Appender, Labels, Sample, SeriesSamples, Timestamp};
use hubmon_state::DeliveryStatus;
use tokio_util::sync::CancellationToken;

use crate::Notifier;

impl Notifier {
    /// The notifier's series at `at` (ms).
    pub async fn metric_series(&self, at: i64) -> Vec<SeriesSamples> {
        let stats = &self.0.stats;
        let mut series = Vec::new();
        let mut push = |pairs: &[(&str, &str)], value: f64| {
            if let Ok(labels) = Labels::new_series(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))) {
                series.push(SeriesSamples { labels, samples: vec![Sample::new(at, value)] });
            }
        };
        for (outcome, counter) in
            [("delivered", &stats.delivered), ("retry", &stats.retried), ("failed", &stats.failed)]
        {
            let value = counter.load(Ordering::Relaxed) as f64;
            push(&[("__name__", "hubmon_notifications_attempts_total"), ("outcome", outcome)], value);
        }
        push(
            &[("__name__", "hubmon_notifications_rate_limited_total")],
            stats.rate_limited.load(Ordering::Relaxed) as f64,
        );
        match self.0.store.count_notifications().await {
            Ok(counts) => {
                for status in [
                    DeliveryStatus::Pending,
                    DeliveryStatus::Sending,
                    DeliveryStatus::Delivered,
                    DeliveryStatus::Failed,
                ] {
                    let n = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
                    push(&[("__name__", "hubmon_notifications_outbox"), ("status", status.as_str())], n as f64);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot count the outbox for its metrics"),
        }
        series
    }

    /// Writes [`Notifier::metric_series`] through `appender` every `every` until `shutdown`.
    pub async fn record_metrics(self, appender: Arc<dyn Appender>, every: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(every.max(Duration::from_secs(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The first tick is immediate; the first sample waits a whole interval, like a scrape.
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let batch = self.metric_series(Timestamp::now().as_millis()).await;
            let appender = appender.clone();
            match tokio::task::spawn_blocking(move || appender.append(batch)).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "cannot store the notifier's metrics"),
                Err(error) => tracing::warn!(%error, "the notifier's metrics task failed"),
            }
        }
    }
}
