//! The alerting service: owns the rules (API rules in the state store, rule files from the
//! config), the open alerts, the evaluation schedule and the hand-over to the notifier.
//!
//! Evaluation and the notification decisions are `hubmon_rules`' (pure, on explicit times);
//! this module adds what a running server needs around them: one task that evaluates every
//! group when its aligned time comes, persists every alert that changed before anything is
//! sent, enqueues the messages that are due into the notifier's outbox and only then records
//! them as sent. A restart restores the open alerts, so a firing alert is not sent again and a
//! pending one keeps its start.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use hubmon_model::{Appender, Matcher, Timestamp};
use hubmon_notify::{AlertMessage, MessageKind, Notifier};
use hubmon_promql::Engine;
use hubmon_rules::group::{GroupRuntime, evaluate};
use hubmon_rules::{
    AlertRecord, AlertRule, AlertRuleSpec, Alerts, Dispatcher, Inhibition, Muter, Policy, RuleError, RuleGroup,
    RuleSettings, Silence, State,
};
use hubmon_state::{AlertWrite, NewRule, NewSilence, StateStore, StoredRule, StoredSilence};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::alerting::{AlertingConfig, parse_matchers};

/// A series a rule's expression returns: the alert's labels and the value.
pub type Match = (BTreeMap<String, String>, f64);

/// The group that holds the rules created through the API and the default rules.
pub const API_GROUP: &str = "hubmon";

/// A rule created through the API, as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleView {
    pub id: i64,
    /// `api` or `default`.
    pub source: String,
    #[serde(flatten)]
    pub spec: AlertRuleSpec,
    /// The expression evaluated (the simple form compiled).
    pub compiled_expr: String,
    pub health: hubmon_rules::RuleHealth,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A silence as the API takes and shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SilenceMatcher {
    pub name: String,
    /// `=`, `!=`, `=~` or `!~`.
    #[serde(default = "equal_op")]
    pub op: String,
    pub value: String,
}

fn equal_op() -> String {
    "=".into()
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SilenceView {
    pub id: i64,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    /// `pending`, `active` or `expired`.
    pub state: &'static str,
}

/// Why an API request about alerting was refused.
#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    #[error(transparent)]
    Invalid(#[from] RuleError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] hubmon_state::Error),
}

struct ApiRule {
    stored: StoredRule,
    spec: AlertRuleSpec,
    rule: AlertRule,
}

struct Runtime {
    alerts: Alerts,
    dispatcher: Dispatcher,
    api_rules: Vec<ApiRule>,
    file_groups: Vec<RuleGroup>,
    groups: HashMap<String, GroupRuntime>,
    next_evaluation: HashMap<String, i64>,
    muter: Muter,
    /// Alerts closed outside an evaluation (rule file reloads), persisted by the next cycle.
    closed_elsewhere: Vec<AlertRecord>,
}

struct Inner {
    config: AlertingConfig,
    store: Arc<dyn StateStore>,
    engine: Arc<Engine>,
    appender: Arc<dyn Appender>,
    notifier: Notifier,
    external_url: String,
    rule_metrics: crate::telemetry::RuleMetrics,
    routes: Vec<(Vec<Matcher>, Vec<String>)>,
    runtime: Mutex<Runtime>,
}

#[derive(Clone)]
pub struct Alerting(Arc<Inner>);

fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn to_matchers(list: &[SilenceMatcher]) -> Result<Vec<Matcher>, RuleError> {
    list.iter()
        .map(|m| {
            let op = match m.op.as_str() {
                "=" => hubmon_model::MatchOp::Equal,
                "!=" => hubmon_model::MatchOp::NotEqual,
                "=~" => hubmon_model::MatchOp::Regex,
                "!~" => hubmon_model::MatchOp::NotRegex,
                other => return Err(RuleError::new("matchers", format!("op {other:?} is not one of =, !=, =~, !~"))),
            };
            Matcher::new(&m.name, op, &m.value).map_err(|e| RuleError::new("matchers", e.to_string()))
        })
        .collect()
}

impl Alerting {
    /// Loads API rules (creating the defaults on a fresh install), rule files, silences and
    /// the open alerts.
    pub async fn start(
        config: AlertingConfig,
        store: Arc<dyn StateStore>,
        engine: Arc<Engine>,
        appender: Arc<dyn Appender>,
        notifier: Notifier,
        external_url: String,
        rule_metrics: crate::telemetry::RuleMetrics,
    ) -> anyhow::Result<Self> {
        let mut stored = store.list_rules().await.context("cannot read the alert rules")?;
        let fresh = stored.is_empty()
            && store
                .alert_history(Timestamp(0), Timestamp(i64::MAX), 1)
                .await
                .context("cannot read alerts")?
                .is_empty();
        if fresh && config.default_rules {
            for spec in hubmon_rules::default_rules() {
                let definition = serde_json::to_string(&spec).context("default rule")?;
                let new =
                    NewRule { name: spec.name.clone(), source: "default".into(), definition, at: Timestamp::now() };
                stored.push(store.create_rule(new).await.context("cannot create the default rules")?);
            }
            tracing::info!(rules = stored.len(), "created the default alert rules");
        }
        let mut api_rules = Vec::new();
        for row in stored {
            let spec: AlertRuleSpec = serde_json::from_str(&row.definition)
                .with_context(|| format!("stored rule {} is unreadable", row.name))?;
            match spec.validate() {
                Ok(rule) => api_rules.push(ApiRule { stored: row, spec, rule }),
                Err(e) => tracing::error!(rule = %row.name, error = %e, "stored rule is invalid; skipped"),
            }
        }
        let file_groups = load_rule_files(&config)?;
        let routes = config
            .routes
            .iter()
            .map(|r| {
                Ok((parse_matchers("alerting.routes", &r.matchers).map_err(anyhow::Error::msg)?, r.channels.clone()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let inhibitions = config
            .inhibit
            .iter()
            .map(|r| {
                Ok(Inhibition {
                    source: parse_matchers("source_matchers", &r.source_matchers).map_err(anyhow::Error::msg)?,
                    target: parse_matchers("target_matchers", &r.target_matchers).map_err(anyhow::Error::msg)?,
                    equal: r.equal.clone(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut records = Vec::new();
        for row in store.open_alerts().await.context("cannot read the open alerts")? {
            match serde_json::from_str::<AlertRecord>(&row.body) {
                Ok(mut record) => {
                    record.id = Some(row.id);
                    records.push(record);
                }
                Err(e) => tracing::error!(alert = %row.fingerprint, error = %e, "stored alert is unreadable; skipped"),
            }
        }
        // Alerts of rules that no longer exist (a rule file edited while hubmon was down)
        // would never be evaluated again: close them now.
        let known: std::collections::HashSet<&str> = api_rules
            .iter()
            .map(|r: &ApiRule| r.rule.name.as_str())
            .chain(file_groups.iter().flat_map(|g| g.alerting.iter().map(|r| r.name.as_str())))
            .collect();
        let (records, orphans): (Vec<AlertRecord>, Vec<AlertRecord>) =
            records.into_iter().partition(|r| r.source == "external" || known.contains(r.rule.as_str()));
        let orphans: Vec<AlertRecord> = orphans
            .into_iter()
            .map(|mut r| {
                r.state = if r.state == State::Firing { State::Resolved } else { State::Inactive };
                r.resolved_at = Some(now_ms());
                r
            })
            .collect();
        let restored = records.len();
        let policy = Policy {
            group_wait: ms(config.group_wait.as_duration()),
            group_interval: ms(config.group_interval.as_duration()),
            group_by: config.group_by.clone(),
        };
        let runtime = Runtime {
            alerts: Alerts::restore(records),
            dispatcher: Dispatcher::new(policy),
            api_rules,
            file_groups,
            groups: HashMap::new(),
            next_evaluation: HashMap::new(),
            muter: Muter { silences: Vec::new(), inhibitions },
            closed_elsewhere: orphans,
        };
        let alerting = Alerting(Arc::new(Inner {
            config,
            store,
            engine,
            appender,
            notifier,
            external_url,
            rule_metrics,
            routes,
            runtime: Mutex::new(runtime),
        }));
        alerting.reload_silences().await?;
        tracing::info!(open_alerts = restored, "alerting started");
        Ok(alerting)
    }

    fn runtime(&self) -> MutexGuard<'_, Runtime> {
        // A panic while holding the lock leaves consistent data (every mutation is a whole
        // assignment), so keep going rather than poisoning every later request.
        self.0.runtime.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn reload_silences(&self) -> anyhow::Result<()> {
        let rows = self.0.store.list_silences(Timestamp::now()).await.context("cannot read silences")?;
        let silences = rows
            .iter()
            .filter_map(|row| {
                let list: Vec<SilenceMatcher> = serde_json::from_str(&row.matchers).ok()?;
                Some(Silence {
                    id: row.id,
                    matchers: to_matchers(&list).ok()?,
                    starts_at: row.starts_at.as_millis(),
                    ends_at: row.ends_at.as_millis(),
                })
            })
            .collect();
        self.runtime().muter.silences = silences;
        Ok(())
    }

    /// Evaluates the groups that are due, persists, and notifies; every second until shutdown.
    /// Rule files are reloaded on SIGHUP and when they change on disk.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut hangup = hangup_signal();
        let mut seen = rule_file_stamps(&self.0.config.rule_files);
        loop {
            let reload = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let now = rule_file_stamps(&self.0.config.rule_files);
                    let changed = now != seen;
                    seen = now;
                    changed
                }
                _ = recv_hangup(&mut hangup) => true,
            };
            if reload {
                self.reload_rule_files();
            }
            if let Err(e) = self.tick(now_ms()).await {
                tracing::warn!(error = %e, "alerting cycle failed; retrying next second");
            }
        }
    }

    /// Re-reads the rule files; an invalid file keeps the rules that were loaded before.
    pub fn reload_rule_files(&self) {
        match load_rule_files(&self.0.config) {
            Ok(groups) => {
                let mut runtime = self.runtime();
                let names: std::collections::HashSet<String> =
                    groups.iter().flat_map(|g| g.alerting.iter().map(|r| r.name.clone())).collect();
                let gone: Vec<String> = runtime
                    .file_groups
                    .iter()
                    .flat_map(|g| g.alerting.iter().map(|r| r.name.clone()))
                    .filter(|name| !names.contains(name))
                    .collect();
                let now = now_ms();
                let mut closed = Vec::new();
                for name in gone {
                    closed.extend(runtime.alerts.drop_rule(&name, now));
                }
                runtime.dispatcher.closed(&closed);
                runtime.closed_elsewhere.extend(closed);
                tracing::info!(groups = groups.len(), "rule files reloaded");
                runtime.file_groups = groups;
            }
            Err(e) => tracing::error!(error = %format!("{e:#}"), "rule files not reloaded; the previous rules stay"),
        }
    }

    /// One cycle at `now`: evaluate due groups, persist changes, send what is due.
    pub async fn tick(&self, now: i64) -> anyhow::Result<()> {
        let this = self.clone();
        let closed = tokio::task::spawn_blocking(move || this.evaluate_due(now)).await.context("evaluation task")?;
        self.persist(&closed, now).await?;
        self.notify(now).await
    }

    fn evaluate_due(&self, now: i64) -> Vec<AlertRecord> {
        let mut runtime = self.runtime();
        let runtime = &mut *runtime;
        let api_group = RuleGroup {
            name: API_GROUP.into(),
            source: "api".into(),
            interval: self.0.config.evaluation_interval.as_duration(),
            alerting: runtime.api_rules.iter().map(|r| r.rule.clone()).collect(),
            recording: Vec::new(),
        };
        let mut closed = std::mem::take(&mut runtime.closed_elsewhere);
        let mut samples = Vec::new();
        for group in std::iter::once(&api_group).chain(runtime.file_groups.iter()) {
            let interval = ms(group.interval).max(1000);
            let due = runtime.next_evaluation.get(&group.name).copied().unwrap_or(i64::MIN);
            if now < due {
                continue;
            }
            // Aligned to the interval, as Prometheus aligns its groups.
            let at = now - now.rem_euclid(interval);
            runtime.next_evaluation.insert(group.name.clone(), at + interval);
            let state = runtime.groups.entry(group.name.clone()).or_default();
            let outcome = evaluate(&self.0.engine, group, &mut runtime.alerts, state, at);
            self.0.rule_metrics.observe(&group.name, outcome.failures, state.evaluation_seconds);
            samples.extend(outcome.samples);
            closed.extend(outcome.closed);
        }
        let expired = runtime.alerts.expire_external(now, ms(self.0.config.resolve_timeout.as_duration()));
        closed.extend(expired);
        runtime.dispatcher.closed(&closed);
        drop(api_group);
        if !samples.is_empty()
            && let Err(e) = self.0.appender.append(samples)
        {
            tracing::warn!(error = %e, "cannot write ALERTS and rule samples");
        }
        closed
    }

    /// Saves every changed open alert and every closed one (before anything is sent about them).
    async fn persist(&self, closed: &[AlertRecord], now: i64) -> anyhow::Result<()> {
        let changed = self.runtime().alerts.take_changed();
        for record in changed.iter().chain(closed) {
            let id = self.save(record, now).await?;
            if record.id.is_none() {
                self.runtime().alerts.set_id(&record.fingerprint, id);
            }
        }
        Ok(())
    }

    async fn save(&self, record: &AlertRecord, now: i64) -> anyhow::Result<i64> {
        let body = serde_json::to_string(record).context("alert record")?;
        let write = AlertWrite {
            id: record.id,
            fingerprint: record.fingerprint.clone(),
            rule: record.rule.clone(),
            state: record.state.as_str().into(),
            body,
            active_at: Timestamp(record.active_at),
            resolved_at: record.resolved_at.map(Timestamp),
            at: Timestamp(now),
        };
        self.0.store.save_alert(write).await.context("cannot save an alert")
    }

    fn settings(&self) -> impl Fn(&str) -> RuleSettings + use<> {
        let runtime = self.runtime();
        let mut known: HashMap<String, RuleSettings> = HashMap::new();
        for rule in
            runtime.api_rules.iter().map(|r| &r.rule).chain(runtime.file_groups.iter().flat_map(|g| &g.alerting))
        {
            known.insert(
                rule.name.clone(),
                RuleSettings {
                    cooldown: ms(rule.cooldown),
                    notify_on_resolve: rule.notify_on_resolve,
                    channels: rule.channels.clone(),
                },
            );
        }
        let fallback = RuleSettings {
            cooldown: ms(hubmon_rules::rule::DEFAULT_COOLDOWN),
            notify_on_resolve: true,
            channels: Vec::new(),
        };
        move |name: &str| known.get(name).cloned().unwrap_or_else(|| fallback.clone())
    }

    async fn notify(&self, now: i64) -> anyhow::Result<()> {
        let channels = self.0.notifier.list_channels().await.context("cannot list channels")?;
        let by_name: HashMap<String, i64> = channels.iter().map(|c| (c.name.clone(), c.id)).collect();
        let routes: Vec<(Vec<Matcher>, Vec<i64>)> = self
            .0
            .routes
            .iter()
            .map(|(matchers, names)| (matchers.clone(), names.iter().filter_map(|n| by_name.get(n).copied()).collect()))
            .collect();
        let route = move |alert: &AlertRecord| -> Vec<i64> {
            routes
                .iter()
                .filter(|(m, _)| hubmon_rules::dispatch::matches_all(m, &alert.labels))
                .flat_map(|(_, ids)| ids.clone())
                .collect()
        };
        let settings = self.settings();
        let due = {
            let mut runtime = self.runtime();
            let runtime = &mut *runtime;
            runtime.dispatcher.due(&runtime.alerts, &runtime.muter, &settings, &route, now)
        };
        for message in due {
            let generator = (!self.0.external_url.is_empty()).then(|| format!("{}/alerts", self.0.external_url));
            let mut outgoing = AlertMessage::new(
                MessageKind::Alert,
                message.group_key.clone(),
                message.alerts.iter().map(|a| a.to_alert(generator.clone())).collect(),
            );
            outgoing.group_labels = message.group_labels.clone();
            self.0
                .notifier
                .enqueue(&message.channels, &outgoing, &message.dedup_key)
                .await
                .with_context(|| format!("cannot enqueue the notification for {}", message.group_key))?;
            let finished = {
                let mut runtime = self.runtime();
                let runtime = &mut *runtime;
                runtime.dispatcher.sent(&message, &mut runtime.alerts, now)
            };
            self.persist(&finished, now).await?;
        }
        Ok(())
    }

    // ---- what the API asks ------------------------------------------------------------------

    /// Open alerts, with whether each is muted now.
    pub fn active(&self) -> Vec<(AlertRecord, Option<hubmon_rules::Muted>)> {
        let runtime = self.runtime();
        let now = now_ms();
        let firing: Vec<&AlertRecord> = runtime.alerts.open().filter(|a| a.state == State::Firing).collect();
        runtime.alerts.open().map(|a| (a.clone(), runtime.muter.muted(a, &firing, now))).collect()
    }

    pub async fn history(&self, since: Timestamp, until: Timestamp, limit: u32) -> anyhow::Result<Vec<AlertRecord>> {
        let rows = self.0.store.alert_history(since, until, limit).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let mut record: AlertRecord = serde_json::from_str(&row.body).ok()?;
                record.id = Some(row.id);
                Some(record)
            })
            .collect())
    }

    /// Acknowledges a firing alert: no more repeats until it resolves.
    pub async fn acknowledge(&self, fingerprint: &str, by: &str) -> Result<AlertRecord, AlertingError> {
        let record = {
            let mut runtime = self.runtime();
            let record = runtime
                .alerts
                .get_mut(fingerprint)
                .ok_or_else(|| AlertingError::NotFound(format!("open alert {fingerprint}")))?;
            record.acked_by = Some(by.to_string());
            record.acked_at = Some(now_ms());
            let record = record.clone();
            runtime.alerts.take_changed();
            record
        };
        self.save(&record, now_ms()).await.map_err(|e| AlertingError::Conflict(e.to_string()))?;
        Ok(record)
    }

    pub fn rules(&self) -> Vec<RuleView> {
        let runtime = self.runtime();
        let health = runtime.groups.get(API_GROUP);
        runtime
            .api_rules
            .iter()
            .map(|r| RuleView {
                id: r.stored.id,
                source: r.stored.source.clone(),
                spec: r.spec.clone(),
                compiled_expr: r.rule.expr.clone(),
                health: health.and_then(|g| g.health.get(&r.rule.name)).cloned().unwrap_or_else(unknown_health),
                created_at: r.stored.created_at,
                updated_at: r.stored.updated_at,
            })
            .collect()
    }

    /// The enabled API and default rules as a Prometheus rule file (the hubmon-only settings,
    /// cooldown, channels and notify_on_resolve, have no place there and are left out).
    pub fn export_yaml(&self) -> anyhow::Result<String> {
        #[derive(Serialize)]
        struct File {
            groups: Vec<Group>,
        }
        #[derive(Serialize)]
        struct Group {
            name: String,
            interval: String,
            rules: Vec<Rule>,
        }
        #[derive(Serialize)]
        struct Rule {
            alert: String,
            expr: String,
            #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
            hold: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            keep_firing_for: Option<String>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            labels: BTreeMap<String, String>,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            annotations: BTreeMap<String, String>,
        }
        let runtime = self.runtime();
        let rules = runtime
            .api_rules
            .iter()
            .filter(|r| r.spec.enabled)
            .map(|r| Rule {
                alert: r.rule.name.clone(),
                expr: r.rule.expr.clone(),
                hold: r.spec.for_.map(|d| d.to_string()),
                keep_firing_for: r.spec.keep_firing_for.map(|d| d.to_string()),
                labels: r.rule.labels.clone(),
                annotations: r.spec.annotations.clone(),
            })
            .collect();
        let file = File {
            groups: vec![Group {
                name: API_GROUP.into(),
                interval: self.0.config.evaluation_interval.to_string(),
                rules,
            }],
        };
        let yaml = serde_yaml_ng::to_string(&file).context("cannot write the rules as YAML")?;
        Ok(format!("# hubmon's API and default rules (enabled ones), as a Prometheus rule file.\n{yaml}"))
    }

    pub fn rule(&self, id: i64) -> Result<RuleView, AlertingError> {
        self.rules().into_iter().find(|r| r.id == id).ok_or_else(|| AlertingError::NotFound(format!("rule {id}")))
    }

    /// Every group with its rules' health, as Prometheus's `/api/v1/rules` shows them.
    pub fn groups(&self) -> Vec<(RuleGroup, GroupRuntimeView)> {
        let runtime = self.runtime();
        let api = RuleGroup {
            name: API_GROUP.into(),
            source: "api".into(),
            interval: self.0.config.evaluation_interval.as_duration(),
            alerting: runtime.api_rules.iter().map(|r| r.rule.clone()).collect(),
            recording: Vec::new(),
        };
        std::iter::once(api)
            .chain(runtime.file_groups.iter().cloned())
            .map(|g| {
                let state = runtime.groups.get(&g.name);
                let view = GroupRuntimeView {
                    health: state.map(|s| s.health.clone()).unwrap_or_default(),
                    last_evaluation: state.and_then(|s| s.last_evaluation),
                    evaluation_seconds: state.map_or(0.0, |s| s.evaluation_seconds),
                };
                (g, view)
            })
            .collect()
    }

    /// Validates a rule and evaluates its expression now: what it would fire.
    pub fn dry_run(&self, spec: &AlertRuleSpec) -> Result<(AlertRule, Vec<Match>), RuleError> {
        let rule = spec.validate()?;
        let value = self.0.engine.instant(&rule.expr, now_ms()).map_err(|e| RuleError::new("expr", e.to_string()))?;
        let hubmon_promql::Value::Vector(samples) = value else {
            return Err(RuleError::new("expr", "must return an instant vector"));
        };
        let matches = samples
            .into_iter()
            .map(|(labels, v)| {
                let mut map: BTreeMap<String, String> =
                    labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                map.remove("__name__");
                map.extend(rule.labels.clone());
                map.insert("alertname".into(), rule.name.clone());
                (map, v)
            })
            .collect();
        Ok((rule, matches))
    }

    pub async fn create_rule(&self, spec: AlertRuleSpec) -> Result<RuleView, AlertingError> {
        let rule = spec.validate()?;
        self.check_unique(&spec.name, None)?;
        let definition = serde_json::to_string(&spec).map_err(|e| RuleError::new("rule", e.to_string()))?;
        let stored = self
            .0
            .store
            .create_rule(NewRule { name: spec.name.clone(), source: "api".into(), definition, at: Timestamp::now() })
            .await
            .map_err(|e| match e {
                hubmon_state::Error::Conflict { .. } => {
                    AlertingError::Conflict(format!("a rule named {:?} exists", spec.name))
                }
                other => AlertingError::Store(other),
            })?;
        let id = stored.id;
        self.runtime().api_rules.push(ApiRule { stored, spec, rule });
        self.rule(id)
    }

    pub async fn update_rule(&self, id: i64, spec: AlertRuleSpec) -> Result<RuleView, AlertingError> {
        let rule = spec.validate()?;
        self.check_unique(&spec.name, Some(id))?;
        let source = {
            let runtime = self.runtime();
            let existing = runtime.api_rules.iter().find(|r| r.stored.id == id);
            existing.map(|r| r.stored.source.clone()).ok_or_else(|| AlertingError::NotFound(format!("rule {id}")))?
        };
        let definition = serde_json::to_string(&spec).map_err(|e| RuleError::new("rule", e.to_string()))?;
        let stored = self
            .0
            .store
            .update_rule(id, NewRule { name: spec.name.clone(), source, definition, at: Timestamp::now() })
            .await?
            .ok_or_else(|| AlertingError::NotFound(format!("rule {id}")))?;
        let closed = {
            let mut runtime = self.runtime();
            let mut closed = Vec::new();
            if let Some(slot) = runtime.api_rules.iter_mut().find(|r| r.stored.id == id) {
                let old_name = std::mem::replace(slot, ApiRule { stored, spec, rule }).rule.name;
                if old_name != slot.rule.name {
                    closed = runtime.alerts.drop_rule(&old_name, now_ms());
                }
            }
            runtime.dispatcher.closed(&closed);
            closed
        };
        self.persist(&closed, now_ms()).await.map_err(|e| AlertingError::Conflict(e.to_string()))?;
        self.rule(id)
    }

    pub async fn delete_rule(&self, id: i64) -> Result<(), AlertingError> {
        if !self.0.store.delete_rule(id).await? {
            return Err(AlertingError::NotFound(format!("rule {id}")));
        }
        let closed = {
            let mut runtime = self.runtime();
            let Some(at) = runtime.api_rules.iter().position(|r| r.stored.id == id) else { return Ok(()) };
            let removed = runtime.api_rules.remove(at);
            let closed = runtime.alerts.drop_rule(&removed.rule.name, now_ms());
            runtime.dispatcher.closed(&closed);
            closed
        };
        self.persist(&closed, now_ms()).await.map_err(|e| AlertingError::Conflict(e.to_string()))
    }

    fn check_unique(&self, name: &str, except: Option<i64>) -> Result<(), AlertingError> {
        let runtime = self.runtime();
        let taken = runtime.api_rules.iter().any(|r| r.rule.name == name && Some(r.stored.id) != except)
            || runtime.file_groups.iter().flat_map(|g| &g.alerting).any(|r| r.name == name);
        if taken {
            return Err(AlertingError::Invalid(RuleError::new(
                "name",
                format!("a rule named {name:?} already exists"),
            )));
        }
        Ok(())
    }

    pub async fn silences(&self) -> Result<Vec<SilenceView>, AlertingError> {
        let rows = self.0.store.list_silences(Timestamp(0)).await?;
        Ok(rows.iter().filter_map(silence_view).collect())
    }

    pub async fn create_silence(
        &self,
        matchers: Vec<SilenceMatcher>,
        starts_at: Timestamp,
        ends_at: Timestamp,
        created_by: &str,
        comment: String,
    ) -> Result<SilenceView, AlertingError> {
        if matchers.is_empty() {
            return Err(RuleError::new("matchers", "give at least one matcher").into());
        }
        to_matchers(&matchers)?;
        if ends_at <= starts_at {
            return Err(RuleError::new("ends_at", "must be after starts_at").into());
        }
        let json = serde_json::to_string(&matchers).map_err(|e| RuleError::new("matchers", e.to_string()))?;
        let row = self
            .0
            .store
            .create_silence(NewSilence {
                matchers: json,
                starts_at,
                ends_at,
                created_by: created_by.to_string(),
                comment,
                at: Timestamp::now(),
            })
            .await?;
        self.reload_silences().await.map_err(|e| AlertingError::Conflict(e.to_string()))?;
        silence_view(&row).ok_or_else(|| AlertingError::Conflict("stored silence unreadable".into()))
    }

    /// Ends a silence now.
    pub async fn expire_silence(&self, id: i64) -> Result<SilenceView, AlertingError> {
        let row = self.0.store.silence(id).await?.ok_or_else(|| AlertingError::NotFound(format!("silence {id}")))?;
        let now = Timestamp::now();
        let update = NewSilence {
            matchers: row.matchers.clone(),
            starts_at: row.starts_at.min(now),
            ends_at: now,
            created_by: row.created_by.clone(),
            comment: row.comment.clone(),
            at: now,
        };
        let row = self
            .0
            .store
            .update_silence(id, update)
            .await?
            .ok_or_else(|| AlertingError::NotFound(format!("silence {id}")))?;
        self.reload_silences().await.map_err(|e| AlertingError::Conflict(e.to_string()))?;
        silence_view(&row).ok_or_else(|| AlertingError::Conflict("stored silence unreadable".into()))
    }

    /// Alerts from an external Prometheus (`POST /api/v2/alerts`).
    pub async fn receive(&self, alerts: Vec<ExternalAlert>) -> anyhow::Result<usize> {
        let now = now_ms();
        let closed: Vec<AlertRecord> = {
            let mut runtime = self.runtime();
            let mut closed = Vec::new();
            for alert in &alerts {
                let starts = alert.starts_at.map_or(now, |t| t.as_millis());
                let ends = alert.ends_at.map(|t| t.as_millis());
                if let Some(record) =
                    runtime.alerts.receive_external(alert.labels.clone(), alert.annotations.clone(), starts, ends, now)
                {
                    closed.push(record);
                }
            }
            runtime.dispatcher.closed(&closed);
            closed
        };
        self.persist(&closed, now).await?;
        Ok(alerts.len())
    }
}

/// An alert as Alertmanager's `POST /api/v2/alerts` takes it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAlert {
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub starts_at: Option<Timestamp>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub ends_at: Option<Timestamp>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
}

/// Rule health per rule name and the group's last evaluation.
#[derive(Debug, Clone, Default)]
pub struct GroupRuntimeView {
    pub health: BTreeMap<String, hubmon_rules::RuleHealth>,
    pub last_evaluation: Option<i64>,
    pub evaluation_seconds: f64,
}

fn unknown_health() -> hubmon_rules::RuleHealth {
    hubmon_rules::RuleHealth { health: "unknown", ..Default::default() }
}

fn silence_view(row: &StoredSilence) -> Option<SilenceView> {
    let matchers: Vec<SilenceMatcher> = serde_json::from_str(&row.matchers).ok()?;
    let now = Timestamp::now();
    let state = if now < row.starts_at {
        "pending"
    } else if now < row.ends_at {
        "active"
    } else {
        "expired"
    };
    Some(SilenceView {
        id: row.id,
        matchers,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        created_by: row.created_by.clone(),
        comment: row.comment.clone(),
        state,
    })
}

/// Modification times of the rule files, to notice edits.
fn rule_file_stamps(paths: &[String]) -> Vec<Option<std::time::SystemTime>> {
    paths.iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
}

#[cfg(unix)]
fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangup_signal() -> Option<()> {
    None
}

#[cfg(unix)]
async fn recv_hangup(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv_hangup(_: &mut Option<()>) {
    std::future::pending().await
}

fn load_rule_files(config: &AlertingConfig) -> anyhow::Result<Vec<RuleGroup>> {
    let mut groups = Vec::new();
    for path in &config.rule_files {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read rule file {path}"))?;
        let parsed = hubmon_rules::parse_rule_file(&text, path, config.evaluation_interval.as_duration())
            .map_err(|e| anyhow::anyhow!("rule file {e}"))?;
        groups.extend(parsed);
    }
    Ok(groups)
}
