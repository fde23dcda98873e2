//! The dashboard's live view: the overview summary (health, alerts, host, API traffic, logs,
//! notifications, each "now") and the stream that pushes it to every open dashboard.
//!
//! One producer computes the summary every [`SUMMARY_INTERVAL`] while anyone is subscribed and
//! publishes it on a `watch` channel, so ten open dashboards cost one evaluation, not ten. The
//! summary's figures are PromQL over the metrics store (the same expressions the dashboard's
//! charts use). Parts whose module is not in this build, or is switched off, say so with a
//! reason instead of a zero that would read as "all fine".

use std::sync::Arc;
use std::time::{Duration, Instant};

use hubmon_model::Timestamp;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;

/// How often the summary is recomputed for the stream: the dashboard's "live" resolution.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(2);

/// A part of the summary whose module may be absent or off.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Section<T> {
    Available(T),
    Unavailable { reason: String },
}

impl<T> Section<T> {
    fn unavailable(reason: impl Into<String>) -> Self {
        Section::Unavailable { reason: reason.into() }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub generated_at: Timestamp,
    pub health: Section<HealthNow>,
    pub alerts: Section<AlertCounts>,
    pub host: Section<HostNow>,
    pub api: Section<ApiNow>,
    pub logs: Section<LogsNow>,
    pub notifications: Section<NotificationsNow>,
}

/// Overall health from the health checks: `up`, `degraded` (some down), `down` (all down) or
/// `unknown` (no checks).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthNow {
    pub status: &'static str,
    pub up: u64,
    pub down: u64,
    pub total: u64,
}

/// Firing alerts by severity.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertCounts {
    pub critical: u64,
    pub warning: u64,
    pub info: u64,
}

/// This host now; `None` where the collector has no sample yet (the first interval).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostNow {
    pub cpu_percent: Option<f64>,
    pub memory_percent: Option<f64>,
    /// The fullest real filesystem.
    pub disk_percent: Option<f64>,
    pub load1: Option<f64>,
    pub cpu_cores: Option<f64>,
}

/// API traffic over every service hubmon records requests for.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiNow {
    pub requests_per_second: Option<f64>,
    /// Share of 5xx responses over 5 minutes, 0 to 1.
    pub error_rate: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub active_keys: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogsNow {
    pub errors_5m: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotificationsNow {
    pub failed_24h: u64,
    pub unread: u64,
}

/// Real filesystems only: tmpfs and friends would make "fullest disk" meaningless.
const REAL_FS: &str = r#"job="node",fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs|proc|sysfs|cgroup2?|nsfs|fuse.*""#;

fn host_queries() -> [String; 5] {
    [
        r#"100 * (1 - avg(rate(node_cpu_seconds_total{job="node",mode="idle"}[1m])))"#.to_string(),
        r#"100 * (1 - max(node_memory_MemAvailable_bytes{job="node"}) / max(node_memory_MemTotal_bytes{job="node"}))"#
            .to_string(),
        format!(
            "max(100 * (1 - node_filesystem_avail_bytes{{{REAL_FS}}} / node_filesystem_size_bytes{{{REAL_FS}}} > 0))"
        ),
        r#"max(node_load1{job="node"})"#.to_string(),
        r#"count(node_cpu_seconds_total{job="node",mode="idle"})"#.to_string(),
    ]
}

const API_QUERIES: [&str; 4] = [
    "sum(rate(http_requests_total[1m]))",
    r#"sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))"#,
    "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "sum(hubmon_api_active_keys)",
];

/// The single value of an instant query, or `None` when it has no (finite) value now.
fn scalar(engine: &hubmon_promql::Engine, query: &str, now: i64) -> Option<f64> {
    let value = match engine.instant(query, now) {
        Ok(value) => value,
        Err(error) => {
            tracing::debug!(%error, query, "summary figure could not be computed");
            return None;
        }
    };
    let number = match value {
        hubmon_promql::Value::Scalar(_, v) => v,
        hubmon_promql::Value::Vector(samples) => samples.first()?.1,
        _ => return None,
    };
    number.is_finite().then_some(number)
}

/// Computes the summary now. Metric figures run on the blocking pool (PromQL is synchronous).
pub async fn summarize(app: &AppState) -> Summary {
    let engine = app.query_engine.clone();
    let host_enabled = app.config.host.enabled;
    let now = Timestamp::now();
    let at = now.as_millis();
    let figures = tokio::task::spawn_blocking(move || {
        let host = host_queries().map(|q| scalar(&engine, &q, at));
        let api = API_QUERIES.map(|q| scalar(&engine, q, at));
        (host, api)
    })
    .await;
    let (host, api) = match figures {
        Ok(figures) => (Some(figures.0), Some(figures.1)),
        Err(error) => {
            tracing::warn!(%error, "summary computation failed");
            (None, None)
        }
    };
    let host = match host {
        _ if !host_enabled => Section::unavailable("the host collector is off (host.enabled = false)"),
        None => Section::unavailable("the metrics query failed; see the server log"),
        Some([cpu_percent, memory_percent, disk_percent, load1, cpu_cores]) => {
            Section::Available(HostNow { cpu_percent, memory_percent, disk_percent, load1, cpu_cores })
        }
    };
    let api = match api {
        None => Section::unavailable("the metrics query failed; see the server log"),
        Some([requests_per_second, error_rate, p95_seconds, active_keys]) => Section::Available(ApiNow {
            requests_per_second,
            error_rate: error_rate.or(requests_per_second.map(|_| 0.0)),
            p95_seconds,
            active_keys,
        }),
    };
    Summary {
        generated_at: now,
        health: Section::unavailable("health checks are not part of this build yet"),
        alerts: Section::unavailable("alerting rules are not part of this build yet"),
        host,
        api,
        logs: Section::unavailable("the log store is not part of this build yet"),
        notifications: Section::unavailable("notifications are not part of this build yet"),
    }
}

/// Publishes the summary to every open stream.
pub struct Monitor {
    latest: watch::Sender<Option<Arc<Summary>>>,
    computed_at: parking_lot::Mutex<Option<Instant>>,
    shutdown: CancellationToken,
}

impl Monitor {
    /// `shutdown` ends the open streams, so a graceful shutdown need not wait for them.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self { latest: watch::Sender::new(None), computed_at: parking_lot::Mutex::new(None), shutdown }
    }

    /// A receiver of every new summary; the stream ends when hubmon shuts down.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Summary>>> {
        self.latest.subscribe()
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The summary from the last interval if it is fresh, otherwise a new one.
    pub async fn current(&self, app: &AppState) -> Arc<Summary> {
        let fresh = self.computed_at.lock().is_some_and(|at| at.elapsed() < SUMMARY_INTERVAL);
        if fresh && let Some(summary) = self.latest.borrow().clone() {
            return summary;
        }
        self.refresh(app).await
    }

    async fn refresh(&self, app: &AppState) -> Arc<Summary> {
        let summary = Arc::new(summarize(app).await);
        *self.computed_at.lock() = Some(Instant::now());
        self.latest.send_replace(Some(summary.clone()));
        summary
    }
}

/// Recomputes the summary every interval while at least one stream is open.
pub async fn run(app: AppState, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SUMMARY_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if app.monitor.latest.receiver_count() > 0 {
            app.monitor.refresh(&app).await;
        }
    }
}
