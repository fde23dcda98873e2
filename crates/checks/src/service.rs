//! [`Checks`]: the module's one entry point for the server. It owns the running checks and
//! their state store rows; handlers call one method each (list, create, update, delete, run
//! now, history, report).
//!
//! Checks from the config file (and the built-in defaults) are written to the store at every
//! start with source `config`, replacing what was there by name, and those no longer in the
//! config are removed, so the file stays the truth for them; the API may only read and run
//! them. Checks created through the API are the API's to change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hubmon_model::{Appender, HealthStatus, Timestamp};
use hubmon_state::{CheckSource, NewCheck, NewStatusChange, Secrets, StateStore, StoredCheck};
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::definition::{Definition, Kind};
use crate::kinds::Context;
use crate::scheduler::{Entry, LastRun, Runner, schedule};
use crate::settings::Settings;
use crate::uptime::{self, Point};
use crate::{Error, guard, metrics};

const DAY_MS: i64 = 86_400_000;
/// The message of the change to `unknown` recorded when checks stop.
const STOPPED: &str = "not checked (hubmon stopped)";
/// Days of daily uptime in a history (the status page's bars).
const DAILY_BARS: u32 = 90;

/// Everything [`Checks::start`] needs.
pub struct Setup {
    pub settings: Settings,
    /// The checks from the config file plus the built-in ones ([`crate::config_checks`]).
    pub config_checks: Vec<Definition>,
    pub store: Arc<dyn StateStore>,
    pub secrets: Secrets,
    pub appender: Arc<dyn Appender>,
    /// Where the system check reads the host (the server's `[host]` paths).
    pub host: hubmon_ingest::host::HostConfig,
}

/// The health checks of this instance.
pub struct Checks {
    runner: Arc<Runner>,
    entries: RwLock<BTreeMap<i64, Arc<Entry>>>,
    secrets: Secrets,
    settings: Settings,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Checks {
    /// Syncs the config checks into the store, loads every check and starts the enabled ones
    /// (unless `settings.enabled` is false). `shutdown` stops them; call [`Checks::stop`]
    /// after it to wait for them and mark their status unknown.
    pub async fn start(setup: Setup, shutdown: CancellationToken) -> Result<Arc<Self>, Error> {
        let Setup { settings, config_checks, store, secrets, appender, host } = setup;
        sync_config_checks(store.as_ref(), &secrets, &config_checks).await?;
        let context = Context { store: store.clone(), allow_link_local: settings.allow_link_local, host };
        let runner = Arc::new(Runner {
            context,
            store: store.clone(),
            appender,
            permits: Semaphore::new(usize::try_from(settings.max_concurrent.max(1)).unwrap_or(1)),
            history_limit: settings.history_limit,
        });
        let checks = Arc::new(Self {
            runner,
            entries: RwLock::new(BTreeMap::new()),
            secrets,
            settings,
            tasks: TaskTracker::new(),
            shutdown,
        });
        for stored in store.list_checks().await? {
            let entry = checks.entry_for(&stored);
            checks.install(entry);
        }
        let pruner = checks.clone();
        checks.tasks.spawn(async move { pruner.prune_changes().await });
        Ok(checks)
    }

    /// Waits for the running checks to stop (after the shutdown token was cancelled) and
    /// records each one's status as unknown from now, so uptime does not count the time
    /// hubmon is down.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let entries: Vec<Arc<Entry>> = self.entries.read().values().cloned().collect();
        let now = Timestamp::now();
        let changes: Vec<NewStatusChange> = entries
            .iter()
            .filter_map(|entry| {
                let transition = entry.state.lock().tracker.reset(now)?;
                Some(NewStatusChange {
                    check_id: entry.id,
                    at: transition.at,
                    from_status: transition.from.as_str().to_string(),
                    to_status: transition.to.as_str().to_string(),
                    message: STOPPED.to_string(),
                })
            })
            .collect();
        // One transaction: hundreds of single commits would hold up a SIGTERM for seconds.
        if let Err(error) = self.runner.store.record_status_changes(&changes).await {
            tracing::warn!(%error, "could not mark the checks' status unknown at stop");
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every check, by id.
    pub fn list(&self) -> Vec<CheckView> {
        self.entries.read().values().map(|entry| CheckView::of(entry)).collect()
    }

    pub fn get(&self, id: i64) -> Result<CheckView, Error> {
        Ok(CheckView::of(self.entry(id)?.as_ref()))
    }

    /// Adds a check defined through the API.
    pub async fn create(&self, definition: Definition) -> Result<CheckView, Error> {
        self.admit(&definition)?;
        let sealed = definition.sealed(&self.secrets);
        let stored = self
            .runner
            .store
            .create_check(NewCheck {
                name: definition.name.clone(),
                kind: definition.kind().as_str().to_string(),
                source: CheckSource::Api,
                definition: sealed.to_json().to_string(),
                at: Timestamp::now(),
            })
            .await?;
        let entry = Arc::new(Entry::new(&stored, definition, &self.runner.context, &self.shutdown));
        self.install(entry.clone());
        Ok(CheckView::of(&entry))
    }

    /// Replaces an API-defined check's definition. Secret fields sent back masked keep their
    /// stored value; the check's status carries over.
    pub async fn update(&self, id: i64, mut definition: Definition) -> Result<CheckView, Error> {
        let old = self.entry(id)?;
        if old.source == CheckSource::Config {
            return Err(Error::ReadOnly { name: old.definition.name.clone() });
        }
        definition.keep_masked_secrets(&old.definition);
        self.admit(&definition)?;
        let sealed = definition.sealed(&self.secrets);
        let stored = self
            .runner
            .store
            .update_check(
                id,
                NewCheck {
                    name: definition.name.clone(),
                    kind: definition.kind().as_str().to_string(),
                    source: CheckSource::Api,
                    definition: sealed.to_json().to_string(),
                    at: Timestamp::now(),
                },
            )
            .await?
            .ok_or(Error::NotFound(id))?;
        old.cancel.cancel();
        let renamed = old.definition.name != definition.name || old.definition.kind() != definition.kind();
        let entry = Arc::new(Entry::new(&stored, definition, &self.runner.context, &self.shutdown));
        if renamed {
            self.end_series(&old).await;
        } else {
            *entry.state.lock() = old.snapshot();
        }
        self.install(entry.clone());
        Ok(CheckView::of(&entry))
    }

    /// Removes an API-defined check with its history.
    pub async fn delete(&self, id: i64) -> Result<(), Error> {
        let entry = self.entry(id)?;
        if entry.source == CheckSource::Config {
            return Err(Error::ReadOnly { name: entry.definition.name.clone() });
        }
        if !self.runner.store.delete_check(id).await? {
            return Err(Error::NotFound(id));
        }
        entry.cancel.cancel();
        self.entries.write().remove(&id);
        self.end_series(&entry).await;
        Ok(())
    }

    /// Runs a check now (enabled or not) and returns its result, which counts like any other.
    pub async fn run_now(&self, id: i64) -> Result<RunView, Error> {
        let entry = self.entry(id)?;
        let run = self.runner.run_once(&entry).await;
        Ok(RunView { id, name: entry.definition.name.clone(), result: ResultView::of(&run) })
    }

    /// Uptime over 24 h, 7 d and 30 d, the status changes of the last 30 days with their
    /// durations, daily uptime for 90 days and the newest `limit` results.
    pub async fn history(&self, id: i64, limit: u32) -> Result<HistoryView, Error> {
        let entry = self.entry(id)?;
        let now = Timestamp::now();
        let changes =
            self.runner.store.status_changes(id, Timestamp(now.as_millis() - i64::from(DAILY_BARS) * DAY_MS)).await?;
        let timeline: Vec<Point> = changes
            .iter()
            .map(|c| Point { at: c.at, status: c.to_status.parse().unwrap_or(HealthStatus::Unknown) })
            .collect();
        let window = |days: i64| uptime::uptime_percent(&timeline, Timestamp(now.as_millis() - days * DAY_MS), now);
        let month_ago = Timestamp(now.as_millis() - 30 * DAY_MS);
        let change_views: Vec<ChangeView> = changes
            .iter()
            .enumerate()
            .filter(|(i, c)| c.at >= month_ago || changes.get(i + 1).is_none_or(|next| next.at >= month_ago))
            .map(|(i, change)| {
                let end = changes.get(i + 1).map(|next| next.at);
                ChangeView {
                    at: change.at,
                    from: change.from_status.parse().unwrap_or(HealthStatus::Unknown),
                    to: change.to_status.parse().unwrap_or(HealthStatus::Unknown),
                    message: change.message.clone(),
                    duration_seconds: (end.unwrap_or(now).as_millis() - change.at.as_millis()) as f64 / 1000.0,
                    ongoing: end.is_none(),
                }
            })
            .rev()
            .collect();
        let results = self.runner.store.check_results(id, limit.clamp(1, 1000)).await?;
        let results = results
            .into_iter()
            .map(|r| ResultView {
                at: r.at,
                status: r.status.parse().unwrap_or(HealthStatus::Unknown),
                observed: r.observed.parse().unwrap_or(HealthStatus::Unknown),
                latency_ms: r.latency_us.map(|us| us as f64 / 1000.0),
                message: r.message,
                details: serde_json::from_str(&r.details).unwrap_or_default(),
            })
            .collect();
        let state = entry.snapshot();
        Ok(HistoryView {
            id,
            name: entry.definition.name.clone(),
            kind: entry.definition.kind(),
            status: state.tracker.reported(),
            uptime: Uptime { last_24h: window(1), last_7d: window(7), last_30d: window(30) },
            daily_uptime: uptime::daily_uptime(&timeline, now, DAILY_BARS),
            changes: change_views,
            results,
        })
    }

    /// The public status page: name, status and daily uptime of every enabled check, and
    /// nothing else (no targets, messages or details), or `None` when it is off.
    pub async fn status_page(&self) -> Result<Option<StatusPage>, Error> {
        if !self.settings.status_page {
            return Ok(None);
        }
        let entries: Vec<Arc<Entry>> = self.entries.read().values().filter(|e| e.definition.enabled).cloned().collect();
        let now = Timestamp::now();
        let since = Timestamp(now.as_millis() - i64::from(DAILY_BARS) * DAY_MS);
        let mut components = Vec::with_capacity(entries.len());
        for entry in &entries {
            let changes = self.runner.store.status_changes(entry.id, since).await?;
            let timeline: Vec<Point> = changes
                .iter()
                .map(|c| Point { at: c.at, status: c.to_status.parse().unwrap_or(HealthStatus::Unknown) })
                .collect();
            components.push(PublicComponent {
                name: entry.definition.name.clone(),
                status: entry.snapshot().tracker.reported(),
                uptime_90d: uptime::uptime_percent(&timeline, since, now),
                daily_uptime: uptime::daily_uptime(&timeline, now, DAILY_BARS),
            });
        }
        let report = self.report();
        Ok(Some(StatusPage { status: report.status, generated_at: now, components }))
    }

    /// The health report: the overall status and every component.
    pub fn report(&self) -> HealthReport {
        let entries: Vec<Arc<Entry>> = self.entries.read().values().cloned().collect();
        let components: Vec<Component> =
            entries.iter().filter(|e| e.definition.enabled).map(|e| Component::of(e)).collect();
        HealthReport {
            status: overall(&components),
            generated_at: Timestamp::now(),
            counts: StatusCounts::of(&components),
            components,
        }
    }

    fn entry(&self, id: i64) -> Result<Arc<Entry>, Error> {
        self.entries.read().get(&id).cloned().ok_or(Error::NotFound(id))
    }

    /// Refuses what the address policy forbids, with a message for the API.
    fn admit(&self, definition: &Definition) -> Result<(), Error> {
        definition.validate().map_err(Error::Invalid)?;
        if let Some(host) = definition.target.host()
            && let Some(reason) = guard::refuse_literal(&host, self.settings.allow_link_local)
        {
            return Err(Error::Invalid(format!("check {:?}: {reason}", definition.name)));
        }
        Ok(())
    }

    fn entry_for(&self, stored: &StoredCheck) -> Arc<Entry> {
        match Definition::from_stored(&stored.definition, &self.secrets) {
            Ok(definition) => Arc::new(Entry::new(stored, definition, &self.runner.context, &self.shutdown)),
            Err(why) => {
                let why = format!("the stored definition of check {:?} cannot be used: {why}", stored.name);
                Arc::new(Entry::broken(stored, placeholder(stored), why, &self.shutdown))
            }
        }
    }

    /// Adds (or replaces) an entry and starts its schedule when checks run and it is enabled.
    fn install(&self, entry: Arc<Entry>) {
        self.entries.write().insert(entry.id, entry.clone());
        if self.settings.enabled && entry.definition.enabled {
            self.tasks.spawn(schedule(self.runner.clone(), entry));
        }
    }

    async fn end_series(&self, entry: &Entry) {
        let definition = &entry.definition;
        self.runner
            .write_metrics(metrics::end_series(&definition.name, definition.kind().as_str(), Timestamp::now()))
            .await;
    }

    /// Removes status changes older than the retention, now and then.
    async fn prune_changes(&self) {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let before = Timestamp::now().as_millis()
                - i64::try_from(self.settings.change_retention.as_duration().as_millis()).unwrap_or(i64::MAX / 2);
            match self.runner.store.prune_status_changes(Timestamp(before)).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "old check status changes removed"),
                Err(error) => tracing::warn!(%error, "could not remove old check status changes"),
            }
        }
    }
}

/// A definition standing in for one that cannot be parsed, so the check is still listed.
fn placeholder(stored: &StoredCheck) -> Definition {
    Definition::from_stored_sealed(&stored.definition).unwrap_or_else(|| {
        let target = crate::definition::Target::StateStore(crate::definition::StateStoreTarget::default());
        Definition::new(stored.name.clone(), target)
    })
}

/// Writes the config checks into the store (source `config`), replacing by name, and
/// removes config checks that are gone from the config.
async fn sync_config_checks(store: &dyn StateStore, secrets: &Secrets, checks: &[Definition]) -> Result<(), Error> {
    let now = Timestamp::now();
    let existing = store.list_checks().await?;
    for definition in checks {
        let row = NewCheck {
            name: definition.name.clone(),
            kind: definition.kind().as_str().to_string(),
            source: CheckSource::Config,
            definition: definition.sealed(secrets).to_json().to_string(),
            at: now,
        };
        match existing.iter().find(|stored| stored.name == definition.name) {
            Some(stored) => {
                if stored.source == CheckSource::Api {
                    tracing::warn!(check = %stored.name, "a check defined through the API is now defined by the config file");
                }
                store.update_check(stored.id, row).await?;
            }
            None => {
                store.create_check(row).await?;
            }
        }
    }
    for stored in existing {
        if stored.source == CheckSource::Config && !checks.iter().any(|d| d.name == stored.name) {
            store.delete_check(stored.id).await?;
        }
    }
    Ok(())
}

/// Unhealthy if a critical check is unhealthy; degraded if any check is degraded or a
/// non-critical one unhealthy; unknown while a critical check (or every check) has no result
/// yet; healthy otherwise.
pub fn overall(components: &[Component]) -> HealthStatus {
    let any = |f: &dyn Fn(&Component) -> bool| components.iter().any(f);
    if any(&|c| c.critical && c.status == HealthStatus::Unhealthy) {
        HealthStatus::Unhealthy
    } else if any(&|c| c.status == HealthStatus::Degraded || c.status == HealthStatus::Unhealthy) {
        HealthStatus::Degraded
    } else if components.is_empty()
        || any(&|c| c.critical && c.status == HealthStatus::Unknown)
        || components.iter().all(|c| c.status == HealthStatus::Unknown)
    {
        HealthStatus::Unknown
    } else {
        HealthStatus::Healthy
    }
}

/// A check as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    pub id: i64,
    pub name: String,
    pub kind: Kind,
    /// `config` (the config file or a built-in default: read-only here) or `api`.
    pub source: &'static str,
    pub critical: bool,
    pub enabled: bool,
    /// The definition in its flat JSON form, with passwords and header values masked.
    #[schema(value_type = Object)]
    pub definition: Value,
    /// The reported status (after flap damping).
    pub status: HealthStatus,
    /// When the reported status last changed (since hubmon started).
    pub status_since: Option<Timestamp>,
    pub last_result: Option<ResultView>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl CheckView {
    fn of(entry: &Entry) -> Self {
        let state = entry.snapshot();
        let definition = &entry.definition;
        Self {
            id: entry.id,
            name: definition.name.clone(),
            kind: definition.kind(),
            source: entry.source.as_str(),
            critical: definition.critical,
            enabled: definition.enabled,
            definition: definition.masked().to_json(),
            status: state.tracker.reported(),
            status_since: state.tracker.since(),
            last_result: state.last.as_ref().map(ResultView::of),
            created_at: entry.created_at,
            updated_at: entry.updated_at,
        }
    }
}

/// One run's result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResultView {
    pub at: Timestamp,
    /// The reported status after this run (flap damping applied).
    pub status: HealthStatus,
    /// What this run alone saw.
    pub observed: HealthStatus,
    pub latency_ms: Option<f64>,
    pub message: String,
    /// Kind-specific facts: `server_version`, `connections`, `status_code`,
    /// `cert_expiry_days`, `cpu_percent`, `used_memory_bytes`, … and for a failed HTTP
    /// check a short, sanitised `body_excerpt`.
    #[schema(value_type = Object)]
    pub details: Map<String, Value>,
}

impl ResultView {
    fn of(run: &LastRun) -> Self {
        Self {
            at: run.at,
            status: run.reported,
            observed: run.observation.status,
            latency_ms: run.observation.latency.map(|l| l.as_secs_f64() * 1000.0),
            message: run.observation.message.clone(),
            details: run.observation.details.clone(),
        }
    }
}

/// The answer of "run now".
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunView {
    pub id: i64,
    pub name: String,
    pub result: ResultView,
}

/// `GET /api/v1/checks/{id}/history`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryView {
    pub id: i64,
    pub name: String,
    pub kind: Kind,
    pub status: HealthStatus,
    pub uptime: Uptime,
    /// Percent up per day, oldest first, for the last 90 days (`null`: not checked that day).
    pub daily_uptime: Vec<Option<f64>>,
    /// Status changes of the last 30 days, newest first, each with how long it lasted.
    pub changes: Vec<ChangeView>,
    /// The newest results, newest first.
    pub results: Vec<ResultView>,
}

/// Percent of the time the check was up (healthy or degraded), over the time its status was
/// known; `null` when it was never known in the window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Uptime {
    #[serde(rename = "24h")]
    pub last_24h: Option<f64>,
    #[serde(rename = "7d")]
    pub last_7d: Option<f64>,
    #[serde(rename = "30d")]
    pub last_30d: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChangeView {
    pub at: Timestamp,
    pub from: HealthStatus,
    pub to: HealthStatus,
    pub message: String,
    /// How long the check stayed in `to` (until the next change, or until now).
    pub duration_seconds: f64,
    /// Whether this is the current status.
    pub ongoing: bool,
}

/// `GET /api/v1/monitoring/health`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    /// Unhealthy if a critical check is unhealthy; degraded if any check is degraded or a
    /// non-critical one unhealthy; unknown before the first results; otherwise healthy.
    pub status: HealthStatus,
    pub generated_at: Timestamp,
    pub counts: StatusCounts,
    /// Every enabled check.
    pub components: Vec<Component>,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct StatusCounts {
    pub healthy: u32,
    pub degraded: u32,
    pub unhealthy: u32,
    pub unknown: u32,
}

impl StatusCounts {
    fn of(components: &[Component]) -> Self {
        let mut counts = Self::default();
        for component in components {
            match component.status {
                HealthStatus::Healthy => counts.healthy += 1,
                HealthStatus::Degraded => counts.degraded += 1,
                HealthStatus::Unhealthy => counts.unhealthy += 1,
                HealthStatus::Unknown => counts.unknown += 1,
            }
        }
        counts
    }
}

/// The public status page's document: nothing in it says where a check points or why it failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusPage {
    pub status: HealthStatus,
    pub generated_at: Timestamp,
    pub components: Vec<PublicComponent>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublicComponent {
    pub name: String,
    pub status: HealthStatus,
    /// Percent up over 90 days (`null`: never checked).
    pub uptime_90d: Option<f64>,
    /// Percent up per day, oldest first, 90 days.
    pub daily_uptime: Vec<Option<f64>>,
}

/// One check in the health report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Component {
    pub id: i64,
    pub name: String,
    pub kind: Kind,
    pub critical: bool,
    pub status: HealthStatus,
    pub latency_ms: Option<f64>,
    pub message: Option<String>,
    /// When the last run finished.
    pub last_checked: Option<Timestamp>,
    /// When the status last changed.
    pub last_change: Option<Timestamp>,
    #[schema(value_type = Object)]
    pub details: Map<String, Value>,
}

impl Component {
    fn of(entry: &Entry) -> Self {
        let state = entry.snapshot();
        let last = state.last.as_ref();
        Self {
            id: entry.id,
            name: entry.definition.name.clone(),
            kind: entry.definition.kind(),
            critical: entry.definition.critical,
            status: state.tracker.reported(),
            latency_ms: last.and_then(|l| l.observation.latency).map(|l| l.as_secs_f64() * 1000.0),
            message: last.map(|l| l.observation.message.clone()),
            last_checked: last.map(|l| l.at),
            last_change: state.tracker.since(),
            details: last.map(|l| l.observation.details.clone()).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(status: HealthStatus, critical: bool) -> Component {
        Component {
            id: 1,
            name: "x".into(),
            kind: Kind::Tcp,
            critical,
            status,
            latency_ms: None,
            message: None,
            last_checked: None,
            last_change: None,
            details: Map::new(),
        }
    }

    #[test]
    fn overall_status_follows_criticality() {
        use HealthStatus::*;
        let overall_of =
            |list: &[(HealthStatus, bool)]| overall(&list.iter().map(|(s, c)| component(*s, *c)).collect::<Vec<_>>());
        assert_eq!(overall_of(&[]), Unknown);
        assert_eq!(overall_of(&[(Unknown, true), (Healthy, true)]), Unknown);
        assert_eq!(overall_of(&[(Unknown, false), (Healthy, true)]), Healthy);
        assert_eq!(overall_of(&[(Healthy, true), (Healthy, false)]), Healthy);
        assert_eq!(overall_of(&[(Healthy, true), (Degraded, true)]), Degraded);
        assert_eq!(overall_of(&[(Healthy, true), (Unhealthy, false)]), Degraded);
        assert_eq!(overall_of(&[(Unhealthy, true), (Degraded, false)]), Unhealthy);
        assert_eq!(overall_of(&[(Unknown, true), (Unhealthy, false)]), Degraded);
    }
}
