//! Running checks: one task per enabled check, each on its own interval with jitter; a
//! semaphore bounds how many run at once; every run is cut off at the check's timeout, so a
//! hung target costs one slot for at most that long and never delays the other checks.
//!
//! A run's result goes three ways: the check's in-memory state (for the health report), the
//! metrics store (through the `Appender`), and the state store (bounded history and status
//! changes). A failure to write one of them is logged and does not stop the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hubmon_model::{Appender, HealthStatus, Timestamp};
use hubmon_state::{CheckSource, NewCheckResult, NewStatusChange, StateStore, StoredCheck};
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::definition::Definition;
use crate::kinds::{Context, Probe};
use crate::metrics;
use crate::status::{Damping, Observation, StatusTracker, Transition};

/// The first run of a check waits a random part of this (or of its interval, if shorter), so
/// checks defined together do not all start in the same instant.
const FIRST_RUN_SPREAD: Duration = Duration::from_secs(2);
/// Each later wait is the interval plus or minus this share of it.
const JITTER: f64 = 0.05;

/// One check known to the scheduler.
pub struct Entry {
    pub id: i64,
    pub source: CheckSource,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// With its secrets open: lives only in memory.
    pub definition: Definition,
    probe: Probe,
    pub state: Mutex<EntryState>,
    /// One run of a check at a time (a scheduled run and a "run now" take turns).
    run_lock: tokio::sync::Mutex<()>,
    /// Stops this check's schedule (removal, update, shutdown).
    pub cancel: CancellationToken,
}

/// What the health report reads.
#[derive(Default, Clone)]
pub struct EntryState {
    pub tracker: StatusTracker,
    pub last: Option<LastRun>,
}

/// The newest run of a check.
#[derive(Debug, Clone)]
pub struct LastRun {
    pub at: Timestamp,
    pub observation: Observation,
    /// The reported status after this run.
    pub reported: HealthStatus,
}

impl Entry {
    pub fn new(stored: &StoredCheck, definition: Definition, context: &Context, parent: &CancellationToken) -> Self {
        let probe = Probe::build(&definition, context);
        Self::with_probe(stored, definition, probe, parent)
    }

    /// An entry whose definition could not be read (a secret that does not open): it is
    /// listed and reported, and every run says why it cannot run.
    pub fn broken(stored: &StoredCheck, definition: Definition, why: String, parent: &CancellationToken) -> Self {
        Self::with_probe(stored, definition, Probe::Broken(why), parent)
    }

    fn with_probe(stored: &StoredCheck, definition: Definition, probe: Probe, parent: &CancellationToken) -> Self {
        Self {
            id: stored.id,
            source: stored.source,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
            definition,
            probe,
            state: Mutex::new(EntryState::default()),
            run_lock: tokio::sync::Mutex::new(()),
            cancel: parent.child_token(),
        }
    }

    pub fn snapshot(&self) -> EntryState {
        self.state.lock().clone()
    }
}

/// What every run needs.
pub struct Runner {
    pub context: Context,
    pub store: Arc<dyn StateStore>,
    pub appender: Arc<dyn Appender>,
    pub permits: Semaphore,
    pub history_limit: u32,
}

impl Runner {
    /// Runs `entry` once, now, and records the result everywhere.
    pub async fn run_once(&self, entry: &Entry) -> LastRun {
        let _one_at_a_time = entry.run_lock.lock().await;
        let definition = &entry.definition;
        let timeout = definition.timeout.as_duration();
        let observation = {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = self.permits.acquire().await.ok();
            let started = Instant::now();
            match tokio::time::timeout(timeout, entry.probe.run(&self.context, timeout)).await {
                Ok(observation) => observation,
                Err(_) => Observation::unhealthy(format!("no answer within {} (timeout)", definition.timeout))
                    .with_latency(started.elapsed()),
            }
        };
        self.record(entry, observation).await
    }

    /// Applies the latency threshold and damping to `observation` and records it; only under
    /// `run_lock` (from [`Runner::run_once`]).
    async fn record(&self, entry: &Entry, mut observation: Observation) -> LastRun {
        let definition = &entry.definition;
        if let (Some(limit), Some(latency)) = (definition.degraded_latency, observation.latency)
            && latency > limit.as_duration()
        {
            observation.degrade(format!(
                "slow: {:.0} ms, over the {} threshold",
                latency.as_secs_f64() * 1000.0,
                limit
            ));
        }
        let damping = Damping {
            failures_before_unhealthy: definition.failures_before_unhealthy,
            successes_before_healthy: definition.successes_before_healthy,
        };
        let at = Timestamp::now();
        // Damping runs on a copy that is published only after the result is stored, so what
        // the health report shows is already in the history and the metrics. Runs of one
        // check never overlap (`run_lock`), so no other run updates the tracker meanwhile.
        let mut tracker = entry.state.lock().tracker.clone();
        let transition = tracker.observe(observation.status, damping, at);
        let reported = tracker.reported();
        if observation.status == HealthStatus::Unhealthy && reported != HealthStatus::Unhealthy {
            observation.message = format!(
                "{} (failure {} of {} before unhealthy)",
                observation.message,
                tracker.failures(),
                definition.failures_before_unhealthy
            );
        }
        let run = LastRun { at, observation, reported };
        self.write_metrics(metrics::result_series(
            &definition.name,
            definition.kind().as_str(),
            at,
            reported,
            &run.observation,
        ))
        .await;
        self.write_history(entry, &run, transition).await;
        let mut state = entry.state.lock();
        state.tracker = tracker;
        state.last = Some(run.clone());
        run
    }

    pub async fn write_metrics(&self, batch: Vec<hubmon_model::SeriesSamples>) {
        let appender = self.appender.clone();
        match tokio::task::spawn_blocking(move || appender.append(batch)).await {
            Ok(Ok(report)) if report.rejected > 0 => {
                tracing::warn!(rejected = report.rejected, example = ?report.rejections.first(), "check samples refused");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not store check metrics"),
            Err(error) => tracing::warn!(%error, "check metrics task failed"),
        }
    }

    async fn write_history(&self, entry: &Entry, run: &LastRun, transition: Option<Transition>) {
        let observation = &run.observation;
        let result = NewCheckResult {
            check_id: entry.id,
            at: run.at,
            status: run.reported.as_str().to_string(),
            observed: observation.status.as_str().to_string(),
            latency_us: observation.latency.map(|l| i64::try_from(l.as_micros()).unwrap_or(i64::MAX)),
            message: observation.message.clone(),
            details: serde_json::Value::Object(observation.details.clone()).to_string(),
        };
        if let Err(error) = self.store.record_check_result(result, self.history_limit).await {
            tracing::warn!(check = %entry.definition.name, %error, "could not store a check result");
        }
        if let Some(transition) = transition {
            self.write_transition(entry, transition, &observation.message).await;
        }
    }

    pub async fn write_transition(&self, entry: &Entry, transition: Transition, message: &str) {
        tracing::info!(
            check = %entry.definition.name,
            from = %transition.from,
            to = %transition.to,
            message,
            "check status changed"
        );
        let change = NewStatusChange {
            check_id: entry.id,
            at: transition.at,
            from_status: transition.from.as_str().to_string(),
            to_status: transition.to.as_str().to_string(),
            message: message.to_string(),
        };
        if let Err(error) = self.store.record_status_change(change).await {
            tracing::warn!(check = %entry.definition.name, %error, "could not store a check status change");
        }
    }
}

/// Runs `entry` on its interval until its token is cancelled.
pub async fn schedule(runner: Arc<Runner>, entry: Arc<Entry>) {
    let interval = entry.definition.interval.as_duration();
    let first = {
        let spread = FIRST_RUN_SPREAD.min(interval).as_secs_f64();
        Duration::from_secs_f64(rand::thread_rng().gen_range(0.0..=spread))
    };
    if !wait(&entry.cancel, first).await {
        return;
    }
    loop {
        tokio::select! {
            _ = entry.cancel.cancelled() => return,
            _ = runner.run_once(&entry) => {}
        }
        let factor = 1.0 + rand::thread_rng().gen_range(-JITTER..=JITTER);
        if !wait(&entry.cancel, interval.mul_f64(factor)).await {
            return;
        }
    }
}

/// Sleeps `duration`; false if cancelled first.
async fn wait(cancel: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(duration) => true,
    }
}
