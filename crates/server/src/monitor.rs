//! The dashboard's live view: the overview summary (health, alerts, host, API traffic, logs,
//! notifications, each "now") and the stream that pushes it to every open dashboard.
//!
//! One producer computes the summary every [`SUMMARY_INTERVAL`] while anyone is subscribed and
//! publishes it on a `watch` channel, so ten open dashboards cost one evaluation, not ten. The
//! summary's figures are PromQL over the metrics store (the same expressions the dashboard's
//! charts use). Parts whose module is not in this build, or is switched off, say so with a
//! reason instead of a zero that would read as "all fine".
//!
//! The same producer compares each round with the last and publishes what changed as events
//! (`alert`: an alert appeared, changed state or went away; `health`: a check changed status;
//! `notification` and `inbox`: a recent notification was added or changed state, which is when
//! an in-app message may have arrived), so open pages refresh at once rather than on their next
//! poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hubmon_model::{HealthStatus, Timestamp};
use serde::Serialize;
use tokio::sync::{broadcast, watch};
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

/// Overall health from the health checks (the health report's status and counts).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthNow {
    pub status: HealthStatus,
    pub healthy: u32,
    pub degraded: u32,
    pub unhealthy: u32,
    pub unknown: u32,
}

/// Firing alerts by severity, and how many more are pending (waiting for their `for`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AlertCounts {
    pub critical: u64,
    pub error: u64,
    pub warning: u64,
    pub info: u64,
    pub pending: u64,
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

/// Notifications that ended as dead letters in the last 24 hours (counted up to 1000).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotificationsNow {
    pub failed_24h: u64,
}

/// Log lines of level error or critical in the last five minutes.
const LOG_ERRORS: &str = "level:>=error";
const FAILED_COUNT_LIMIT: u32 = 1000;

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

fn health_now(app: &AppState) -> Section<HealthNow> {
    let report = app.checks.report();
    Section::Available(HealthNow {
        status: report.status,
        healthy: report.counts.healthy,
        degraded: report.counts.degraded,
        unhealthy: report.counts.unhealthy,
        unknown: report.counts.unknown,
    })
}

fn alerts_now(app: &AppState) -> Section<AlertCounts> {
    let mut counts = AlertCounts::default();
    for (alert, _) in app.alerting.active() {
        match (alert.state, alert.severity()) {
            (hubmon_rules::State::Firing, "critical") => counts.critical += 1,
            (hubmon_rules::State::Firing, "error") => counts.error += 1,
            (hubmon_rules::State::Firing, "warning") => counts.warning += 1,
            (hubmon_rules::State::Firing, _) => counts.info += 1,
            (hubmon_rules::State::Pending, _) => counts.pending += 1,
            _ => {}
        }
    }
    Section::Available(counts)
}

async fn logs_now(app: &AppState, now: i64) -> Section<LogsNow> {
    let store = app.logs.store.clone();
    let counted = tokio::task::spawn_blocking(move || {
        let query = hubmon_logstore::Expr::parse(LOG_ERRORS).map_err(|e| e.to_string())?;
        let window = 5 * 60_000;
        let request = hubmon_logstore::StatsRequest { query, from: now - window, to: now, step: window, top: 0 };
        store.stats(&request).map(|stats| stats.total).map_err(|e| e.to_string())
    })
    .await;
    match counted {
        Ok(Ok(errors_5m)) => Section::Available(LogsNow { errors_5m }),
        Ok(Err(error)) => Section::unavailable(format!("the log store could not count errors: {error}")),
        Err(error) => Section::unavailable(format!("the log count failed: {error}")),
    }
}

async fn notifications_now(app: &AppState, now: i64) -> Section<NotificationsNow> {
    let query = hubmon_state::NotificationQuery {
        channel_id: None,
        status: Some(hubmon_state::DeliveryStatus::Failed),
        since: Some(Timestamp(now - 86_400_000)),
        until: None,
        before_id: None,
        limit: FAILED_COUNT_LIMIT,
    };
    match app.notifier.history(&query).await {
        Ok(failed) => Section::Available(NotificationsNow { failed_24h: failed.len() as u64 }),
        Err(error) => Section::unavailable(format!("the notification history could not be read: {error}")),
    }
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
        health: health_now(app),
        alerts: alerts_now(app),
        host,
        api,
        logs: logs_now(app, at).await,
        notifications: notifications_now(app, at).await,
    }
}

/// Something that changed, for the stream: `kind` is the event name (`alert`, `health`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LiveEvent {
    #[serde(skip)]
    pub kind: &'static str,
    /// The alert fingerprint or the check id.
    pub id: String,
    pub name: String,
    /// The new state or status; `gone` for an alert no longer active.
    pub state: String,
}

/// Events a stream may fall behind by before it is told to reconnect.
const EVENT_BUFFER: usize = 256;

/// What the last round saw, to tell what changed.
#[derive(Default)]
struct Seen {
    alerts: HashMap<String, (String, &'static str)>,
    checks: HashMap<i64, (String, HealthStatus)>,
    primed: bool,
    /// Id and status of the newest notifications; `None` until first read.
    notifications: Option<Vec<(i64, &'static str)>>,
}

/// How many of the newest notifications are compared each round.
const RECENT_NOTIFICATIONS: u32 = 20;

/// Publishes the summary and change events to every open stream.
pub struct Monitor {
    latest: watch::Sender<Option<Arc<Summary>>>,
    events: broadcast::Sender<LiveEvent>,
    computed_at: parking_lot::Mutex<Option<Instant>>,
    seen: parking_lot::Mutex<Seen>,
    shutdown: CancellationToken,
}

impl Monitor {
    /// `shutdown` ends the open streams, so a graceful shutdown need not wait for them.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            latest: watch::Sender::new(None),
            events: broadcast::Sender::new(EVENT_BUFFER),
            computed_at: parking_lot::Mutex::new(None),
            seen: parking_lot::Mutex::new(Seen::default()),
            shutdown,
        }
    }

    /// A receiver of every new summary; the stream ends when hubmon shuts down.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Summary>>> {
        self.latest.subscribe()
    }

    /// A receiver of change events from now on.
    pub fn events(&self) -> broadcast::Receiver<LiveEvent> {
        self.events.subscribe()
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

    /// Publishes what changed in alerts and checks since the last call (nothing on the first).
    fn publish_changes(&self, app: &AppState) {
        let alerts: HashMap<String, (String, &'static str)> = app
            .alerting
            .active()
            .into_iter()
            .map(|(alert, _)| (alert.fingerprint.clone(), (alert.rule.clone(), alert.state.as_str())))
            .collect();
        let checks: HashMap<i64, (String, HealthStatus)> =
            app.checks.report().components.into_iter().map(|c| (c.id, (c.name, c.status))).collect();
        let mut seen = self.seen.lock();
        let mut changes = Vec::new();
        if seen.primed {
            for (id, (name, state)) in &alerts {
                if seen.alerts.get(id).is_none_or(|(_, before)| before != state) {
                    changes.push(LiveEvent {
                        kind: "alert",
                        id: id.clone(),
                        name: name.clone(),
                        state: state.to_string(),
                    });
                }
            }
            for (id, (name, _)) in seen.alerts.iter().filter(|(id, _)| !alerts.contains_key(*id)) {
                changes.push(LiveEvent { kind: "alert", id: id.clone(), name: name.clone(), state: "gone".into() });
            }
            for (id, (name, status)) in &checks {
                if seen.checks.get(id).is_none_or(|(_, before)| before != status) {
                    let state = status.as_str().to_string();
                    changes.push(LiveEvent { kind: "health", id: id.to_string(), name: name.clone(), state });
                }
            }
        }
        let notifications = seen.notifications.take();
        *seen = Seen { alerts, checks, primed: true, notifications };
        drop(seen);
        for change in changes {
            // No receiver is fine: nobody is watching.
            let _ = self.events.send(change);
        }
    }

    /// Publishes `notification` and `inbox` when the newest notifications changed since the
    /// last call. Reads one small page of history, so it runs only while someone is watching.
    async fn publish_notification_changes(&self, app: &AppState) {
        let query = hubmon_state::NotificationQuery {
            channel_id: None,
            status: None,
            since: None,
            until: None,
            before_id: None,
            limit: RECENT_NOTIFICATIONS,
        };
        let Ok(rows) = app.notifier.history(&query).await else {
            return;
        };
        let recent: Vec<(i64, &'static str)> = rows.iter().map(|n| (n.id, n.status.as_str())).collect();
        let changed = {
            let mut seen = self.seen.lock();
            let changed = seen.notifications.as_ref().is_some_and(|before| *before != recent);
            seen.notifications = Some(recent);
            changed
        };
        if let (true, Some(newest)) = (changed, rows.first()) {
            for kind in ["notification", "inbox"] {
                let state = newest.status.as_str().to_string();
                let _ =
                    self.events.send(LiveEvent { kind, id: newest.id.to_string(), name: newest.title.clone(), state });
            }
        }
    }

    async fn refresh(&self, app: &AppState) -> Arc<Summary> {
        let summary = Arc::new(summarize(app).await);
        *self.computed_at.lock() = Some(Instant::now());
        self.latest.send_replace(Some(summary.clone()));
        summary
    }
}

/// Recomputes the summary every interval while at least one stream is open, and publishes
/// the alert and health changes of the interval.
pub async fn run(app: AppState, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SUMMARY_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        // Changes are tracked every round, watched or not, so a stream that opens later
        // hears about the next change rather than taking the current state for one.
        app.monitor.publish_changes(&app);
        if app.monitor.latest.receiver_count() > 0 {
            app.monitor.refresh(&app).await;
            app.monitor.publish_notification_changes(&app).await;
        }
    }
}
