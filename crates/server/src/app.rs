//! Wiring: builds every module from the configuration, serves HTTP, runs background tasks,
//! and shuts down in order. `main` and the tests both start hubmon through [`start`].
//!
//! Shutdown runs the data flow backwards: stop accepting HTTP, let in-flight requests finish,
//! stop background tasks, then close the stores.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hubmon_state::{SqlStore, StateStore};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::http::RouteTable;
use crate::telemetry::Telemetry;

/// What request handlers and background tasks share. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

pub struct Services {
    pub config: Config,
    pub store: Arc<dyn StateStore>,
    pub auth: Auth,
    pub telemetry: Telemetry,
    /// The metrics store, through which every sample is written and read.
    pub metrics: Arc<hubmon_tsdb::Tsdb>,
    /// PromQL over the metrics store.
    pub query_engine: Arc<hubmon_promql::Engine>,
    /// hubmon's own API traffic, written into the metrics store as `service="hubmon"`.
    pub requests: Arc<hubmon_ingest::requests::RequestRecorder>,
    /// `# TYPE`/`# HELP` of scraped metric families, for `/api/v1/metadata`.
    pub metadata: hubmon_ingest::scrape::MetadataStore,
    pub routes: RouteTable,
    pub openapi_json: String,
    /// The log store: ingest, search, statistics, tail.
    pub logs: crate::logs::LogService,
    /// The dashboard's live summary and its stream.
    pub monitor: crate::monitor::Monitor,
    /// Seals and opens secrets at rest (channel passwords, tokens in webhook URLs, …).
    pub secrets: hubmon_state::Secrets,
    /// Notification channels, the outbox and its dispatcher, the in-app inbox.
    pub notifier: hubmon_notify::Notifier,
    /// Alert rules, open alerts, silences; evaluates and hands notifications to the notifier.
    pub alerting: crate::alerting::Alerting,
    /// The health checks: scheduled runs, history, the health report.
    pub checks: Arc<hubmon_checks::Checks>,
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// A running server.
pub struct Server {
    /// Where it listens (resolved, so port 0 becomes the real port).
    pub addr: SocketAddr,
    /// The password of the `admin` user if this start created it; show it once.
    pub admin_password: Option<String>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Asks the server to stop; [`Server::wait`] returns once it has.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task failed")?
    }
}

/// Opens the data dir and state store, creates the first admin if there is none, binds the
/// listener and starts serving. Every failure here is a one-line error for the operator.
pub async fn start(config: Config, admin_password: Option<String>) -> anyhow::Result<Server> {
    let data_dir = DataDir::open(&config.data_dir)?;
    let location = config.state_location();
    let store: Arc<dyn StateStore> =
        Arc::new(SqlStore::open(&location, config.state.connect_timeout.as_duration()).await?);
    let auth = Auth::new(store.clone(), config.auth.session_ttl, config.auth.login_attempts_per_minute);
    let admin_password = auth.bootstrap_admin(admin_password).await.context("cannot create the admin user")?;

    let metrics_dir = data_dir.path().join("metrics");
    let metrics_config = config.metrics.clone();
    let metrics = tokio::task::spawn_blocking(move || hubmon_tsdb::Tsdb::open(&metrics_dir, metrics_config))
        .await
        .context("metrics store task failed")?
        .context("cannot open the metrics store")?;
    let metrics = Arc::new(metrics);
    let logs = crate::logs::open(data_dir.path(), &config.logs).await?;
    let secrets = hubmon_state::Secrets::load(std::env::var("HUBMON_SECRET_KEY").ok().as_deref(), data_dir.path())
        .context("cannot load the secret key")?;
    let notifier = hubmon_notify::Notifier::new(store.clone(), secrets.clone(), config.notify.clone())
        .context("cannot start the notifier")?;

    let listener =
        TcpListener::bind(&config.listen.0).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr().context("cannot read the listening address")?;

    let (routes, openapi, route_table) = crate::http::api_routes();
    let openapi_json = openapi.to_json().context("cannot render the OpenAPI document")?;
    let query_engine = Arc::new(hubmon_promql::Engine::new(metrics.clone(), config.query.engine_options()));
    let telemetry = Telemetry::new();
    let alerting = crate::alerting::Alerting::start(
        config.alerting.clone(),
        store.clone(),
        query_engine.clone(),
        metrics.clone(),
        notifier.clone(),
        config.notify.external_url.trim().trim_end_matches('/').to_string(),
        telemetry.rules.clone(),
    )
    .await
    .context("cannot start alerting")?;
    let shutdown = CancellationToken::new();
    let checks = hubmon_checks::Checks::start(
        hubmon_checks::Setup {
            config_checks: hubmon_checks::config_checks(&config.check, &config.checks).map_err(anyhow::Error::msg)?,
            settings: config.check.clone(),
            store: store.clone(),
            secrets: secrets.clone(),
            appender: metrics.clone(),
            host: config.host.clone(),
        },
        shutdown.child_token(),
    )
    .await
    .context("cannot start the health checks")?;
    let state = AppState(Arc::new(Services {
        config,
        store,
        auth,
        telemetry,
        query_engine,
        metrics,
        metadata: Default::default(),
        requests: Default::default(),
        routes: route_table,
        openapi_json,
        logs,
        monitor: crate::monitor::Monitor::new(shutdown.clone()),
        secrets,
        notifier,
        alerting,
        checks,
    }));
    tracing::info!(%addr, data_dir = %data_dir.path().display(), state_store = %location.display(), "hubmon listening");

    let task = tokio::spawn(serve(state, routes, listener, data_dir, shutdown.clone()));
    Ok(Server { addr, admin_password, shutdown, task })
}

async fn serve(
    state: AppState,
    routes: axum::Router<AppState>,
    listener: TcpListener,
    data_dir: DataDir,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tasks = TaskTracker::new();
    tasks.spawn(purge_sessions(state.clone(), shutdown.clone()));
    tasks.spawn(maintain_metrics(state.clone(), shutdown.clone()));
    tasks.spawn(sync_metrics_log(state.clone(), shutdown.clone()));
    spawn_scrapers(&state, &tasks, &shutdown);
    tasks.spawn(record_own_requests(state.clone(), shutdown.clone()));
    if let Err(error) = crate::logs::spawn(&state, &tasks, &shutdown).await {
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        state.store.close().await;
        return Err(error);
    }
    tasks.spawn(crate::monitor::run(state.clone(), shutdown.clone()));
    if state.config.notify.enabled {
        tasks.spawn(state.notifier.clone().run(shutdown.clone()));
    }
    tasks.spawn(state.notifier.clone().record_metrics(
        state.metrics.clone(),
        state.config.http.record_interval.as_duration(),
        shutdown.clone(),
    ));
    tasks.spawn(state.alerting.clone().run(shutdown.clone()));
    if state.config.host.enabled {
        tasks.spawn(collect_host(state.clone(), shutdown.clone()));
    }

    let app = crate::http::router(state.clone(), routes);
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;

    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    state.checks.stop().await;
    let metrics = state.metrics.clone();
    if let Ok(Err(error)) = tokio::task::spawn_blocking(move || metrics.sync()).await {
        tracing::error!(%error, "could not flush the metrics write-ahead log");
    }
    let logs = state.logs.store.clone();
    if let Ok(Err(error)) = tokio::task::spawn_blocking(move || logs.sync()).await {
        tracing::error!(%error, "could not flush the log write-ahead log");
    }
    state.store.close().await;
    drop(data_dir);
    tracing::info!("hubmon stopped");
    served.context("HTTP server failed")
}

/// Collects host (and GPU) metrics every `host.interval` into the metrics store.
async fn collect_host(state: AppState, shutdown: CancellationToken) {
    use hubmon_ingest::host::{GpuCollector, HostCollector};
    let config = state.config.host.clone();
    let gpu = if config.gpu { tokio::task::spawn_blocking(GpuCollector::load).await.ok().flatten() } else { None };
    if let Some(gpu) = &gpu {
        tracing::info!(gpus = gpu.gpu_count(), "collecting NVIDIA GPU metrics");
    }
    let collectors = Arc::new(parking_lot::Mutex::new((HostCollector::new(config.clone()), gpu)));
    // The labels Prometheus would add scraping node_exporter on this host, so the same
    // queries and dashboards select hubmon's host series.
    let hostname =
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let instance = if hostname.is_empty() { "localhost".to_string() } else { hostname };
    let mut every = tokio::time::interval(config.interval.as_duration());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let collectors = collectors.clone();
        let metrics = state.metrics.clone();
        let instance = instance.clone();
        let collected = tokio::task::spawn_blocking(move || {
            let now = hubmon_model::Timestamp::now().as_millis();
            let mut guard = collectors.lock();
            let (host, gpu) = &mut *guard;
            let mut batch = host.collect(now);
            if let Some(gpu) = gpu {
                batch.extend(gpu.collect(now));
            }
            for series in &mut batch {
                series.labels = series.labels.with("job", "node").with("instance", &instance);
            }
            hubmon_model::Appender::append(metrics.as_ref(), batch)
        })
        .await;
        match collected {
            Ok(Ok(report)) if report.rejected > 0 => {
                tracing::warn!(rejected = report.rejected, example = ?report.rejections.first(), "host samples refused");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not store host metrics"),
            Err(error) => tracing::warn!(%error, "host collection task failed"),
        }
    }
}

/// Writes hubmon's own request metrics into its metrics store (self-monitoring).
async fn record_own_requests(state: AppState, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(state.config.http.record_interval.as_duration());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = every.tick() => false,
        };
        let snapshot = state.requests.snapshot(hubmon_model::Timestamp::now().as_millis());
        let metrics = state.metrics.clone();
        if !snapshot.is_empty()
            && let Ok(Err(error)) =
                tokio::task::spawn_blocking(move || hubmon_model::Appender::append(metrics.as_ref(), snapshot)).await
        {
            tracing::warn!(%error, "could not store hubmon's own request metrics");
        }
        if stopping {
            return;
        }
    }
}

/// One task per scrape target, all writing into the metrics store.
fn spawn_scrapers(state: &AppState, tasks: &TaskTracker, shutdown: &CancellationToken) {
    let client = reqwest::Client::builder().user_agent(concat!("hubmon/", env!("CARGO_PKG_VERSION"))).build();
    let client = match client {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the scrape HTTP client; scraping is off");
            return;
        }
    };
    let appender: Arc<dyn hubmon_model::Appender> = state.metrics.clone();
    for job in &state.config.scrape {
        let job = Arc::new(job.clone());
        for target in &job.targets {
            tasks.spawn(hubmon_ingest::scrape::run_target(
                job.clone(),
                target.clone(),
                client.clone(),
                appender.clone(),
                state.metadata.clone(),
                shutdown.clone(),
            ));
        }
    }
}

/// Flushes the metrics write-ahead log to disk every `metrics.wal_sync_interval`, so an idle
/// store does not keep unsynced writes (appends sync on their own when the interval passed).
async fn sync_metrics_log(state: AppState, shutdown: CancellationToken) {
    let interval = state.config.metrics.wal_sync_interval.as_duration();
    if interval.is_zero() {
        return; // every append syncs
    }
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let metrics = state.metrics.clone();
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || metrics.sync()).await {
            tracing::error!(%error, "could not sync the metrics write-ahead log");
        }
    }
}

/// Cuts blocks from the metrics head and applies retention, off the async runtime.
async fn maintain_metrics(state: AppState, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(hubmon_tsdb::MAINTENANCE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let metrics = state.metrics.clone();
        match tokio::task::spawn_blocking(move || metrics.maintain()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "metrics store maintenance failed"),
            Err(error) => tracing::error!(%error, "metrics store maintenance task failed"),
        }
    }
}

/// Removes expired browser sessions now and then, so the table does not grow forever.
async fn purge_sessions(state: AppState, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match state.auth.purge_expired_sessions().await {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "expired sessions removed"),
            Err(error) => tracing::warn!(%error, "could not remove expired sessions"),
        }
    }
}
