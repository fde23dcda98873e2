//! Alerting over HTTP: the product summary's alert endpoints, rules, acknowledgement and
//! silences, plus the Prometheus-compatible `/api/v1/rules` and `/api/v1/alerts` and the
//! Alertmanager-compatible `/api/v2/alerts`.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hubmon_model::Timestamp;
use hubmon_rules::{AlertRecord, AlertRuleSpec, Muted, State as AlertState};
use serde::{Deserialize, Serialize};

use crate::alerting::{AlertingError, ExternalAlert, RuleView, SilenceMatcher, SilenceView};
use crate::app::AppState;
use crate::auth::Principal;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Path, Query};
use crate::http::middleware::AuditNote;

impl From<AlertingError> for ApiError {
    fn from(error: AlertingError) -> Self {
        match error {
            AlertingError::Invalid(e) => ApiError::unprocessable(e.to_string()),
            AlertingError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            AlertingError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, message),
            AlertingError::Store(e) => e.into(),
        }
    }
}

/// An alert as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertView {
    fingerprint: String,
    rule: String,
    /// `pending`, `firing`, `resolved` or `inactive`.
    state: AlertState,
    severity: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    value: Option<f64>,
    /// When the condition started to hold.
    since: Timestamp,
    fired_at: Option<Timestamp>,
    resolved_at: Option<Timestamp>,
    /// `rule` or `external` (received on /api/v2/alerts).
    source: &'static str,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<Timestamp>,
    /// Why it is not notified now, if it is muted.
    muted: Option<Muted>,
    notifications: u32,
}

fn view(record: AlertRecord, muted: Option<Muted>) -> AlertView {
    AlertView {
        severity: record.severity().to_string(),
        fingerprint: record.fingerprint,
        rule: record.rule,
        state: record.state,
        labels: record.labels,
        annotations: record.annotations,
        value: record.value.is_finite().then_some(record.value),
        since: Timestamp(record.active_at),
        fired_at: record.fired_at.map(Timestamp),
        resolved_at: record.resolved_at.map(Timestamp),
        source: if record.source == "external" { "external" } else { "rule" },
        acknowledged_by: record.acked_by,
        acknowledged_at: record.acked_at.map(Timestamp),
        muted,
        notifications: record.notifications,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertsParams {
    /// `pending` or `firing` (active alerts only).
    state: Option<String>,
    /// `info`, `warning`, `error` or `critical`.
    severity: Option<String>,
    /// Start of the history window (RFC 3339 or epoch seconds); default 24 h ago.
    #[param(value_type = Option<String>)]
    since: Option<Timestamp>,
    #[param(value_type = Option<String>)]
    until: Option<Timestamp>,
    /// Most history entries (default 100, at most 1000).
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertsReport {
    active: Vec<AlertView>,
    /// Active alerts per severity.
    counts: BTreeMap<String, usize>,
    /// Alerts that started in the window, newest first (resolved ones included).
    history: Vec<AlertView>,
}

/// Active alerts (with state, severity, value, since, ack and silence) and the history.
#[utoipa::path(get, path = "/api/v1/monitoring/alerts", tag = "alerts", params(AlertsParams),
    responses((status = 200, body = AlertsReport), (status = 400, body = crate::http::error::ErrorBody)))]
pub async fn monitoring_alerts(
    State(app): State<AppState>,
    Query(params): Query<AlertsParams>,
) -> Result<Json<AlertsReport>, ApiError> {
    if let Some(state) = &params.state
        && !matches!(state.as_str(), "pending" | "firing")
    {
        return Err(ApiError::bad_request(format!("state {state:?} is not pending or firing")));
    }
    if let Some(severity) = &params.severity
        && !hubmon_rules::rule::SEVERITIES.contains(&severity.as_str())
    {
        return Err(ApiError::bad_request(format!("severity {severity:?} is not info, warning, error or critical")));
    }
    let keep = |r: &AlertRecord| {
        params.state.as_deref().is_none_or(|s| r.state.as_str() == s)
            && params.severity.as_deref().is_none_or(|s| r.severity() == s)
    };
    let mut counts = BTreeMap::new();
    let mut active = Vec::new();
    for (record, muted) in app.alerting.active() {
        if keep(&record) {
            *counts.entry(record.severity().to_string()).or_insert(0) += 1;
            active.push(view(record, muted));
        }
    }
    active.sort_by_key(|a| std::cmp::Reverse(a.since));
    let until = params.until.unwrap_or_else(Timestamp::now);
    let since = params.since.unwrap_or(Timestamp(until.as_millis() - 86_400_000));
    let limit = params.limit.unwrap_or(100).clamp(1, 1000);
    let history = app
        .alerting
        .history(since, until, limit)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .into_iter()
        .filter(|r| params.severity.as_deref().is_none_or(|s| r.severity() == s))
        .map(|r| view(r, None))
        .collect();
    Ok(Json(AlertsReport { active, counts, history }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedRule {
    #[serde(flatten)]
    rule: RuleView,
    /// What the rule's expression matches now: these would become alerts.
    would_fire: Vec<WouldFire>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WouldFire {
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Creates an alert rule (PromQL `expr`, or the simple form `metric`/`op`/`threshold`); the
/// expression is parsed and evaluated once, and the answer says what it would fire now.
#[utoipa::path(post, path = "/api/v1/monitoring/alerts/rules", tag = "alerts", request_body = AlertRuleSpec,
    responses((status = 201, body = CreatedRule), (status = 422, body = crate::http::error::ErrorBody)))]
pub async fn create_rule(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Json(spec): Json<AlertRuleSpec>,
) -> Result<(StatusCode, Json<CreatedRule>), ApiError> {
    let alerting = app.alerting.clone();
    let checked = spec.clone();
    let (_, matches) = tokio::task::spawn_blocking(move || alerting.dry_run(&checked))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let rule = app.alerting.create_rule(spec).await?;
    note.target(format!("rule:{}", rule.id));
    let would_fire = matches.into_iter().map(|(labels, value)| WouldFire { labels, value }).collect();
    Ok((StatusCode::CREATED, Json(CreatedRule { rule, would_fire })))
}

/// Rules created through the API (and the default rules), with their health.
#[utoipa::path(get, path = "/api/v1/alerts/rules", tag = "alerts", responses((status = 200, body = Vec<RuleView>)))]
pub async fn list_rules(State(app): State<AppState>) -> Json<Vec<RuleView>> {
    Json(app.alerting.rules())
}

/// The API and default rules as a Prometheus rule file (YAML), for promtool or a Prometheus.
#[utoipa::path(get, path = "/api/v1/alerts/rules/export", tag = "alerts",
    responses((status = 200, description = "Prometheus rule-file YAML", content_type = "application/yaml")))]
pub async fn export_rules(State(app): State<AppState>) -> Result<Response, ApiError> {
    let yaml = app.alerting.export_yaml().map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/yaml")], yaml).into_response())
}

#[utoipa::path(get, path = "/api/v1/rules/{id}", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 200, body = RuleView), (status = 404, body = crate::http::error::ErrorBody)))]
pub async fn get_rule(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Json<RuleView>, ApiError> {
    Ok(Json(app.alerting.rule(id)?))
}

/// Replaces a rule (default rules too: disable one with `"enabled": false`).
#[utoipa::path(put, path = "/api/v1/rules/{id}", tag = "alerts", params(("id" = i64, Path)), request_body = AlertRuleSpec,
    responses((status = 200, body = RuleView), (status = 404, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
pub async fn update_rule(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
    Json(spec): Json<AlertRuleSpec>,
) -> Result<Json<RuleView>, ApiError> {
    note.target(format!("rule:{id}"));
    let expr = spec.expression().map_err(|e| ApiError::unprocessable(e.to_string()))?;
    hubmon_rules::rule::validate_expr(&expr).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok(Json(app.alerting.update_rule(id, spec).await?))
}

#[utoipa::path(delete, path = "/api/v1/rules/{id}", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = crate::http::error::ErrorBody)))]
pub async fn delete_rule(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    note.target(format!("rule:{id}"));
    app.alerting.delete_rule(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Acknowledges a firing alert: its notification is not repeated until it resolves.
#[utoipa::path(post, path = "/api/v1/alerts/{fingerprint}/ack", tag = "alerts", params(("fingerprint" = String, Path)),
    responses((status = 200, body = AlertView), (status = 404, body = crate::http::error::ErrorBody)))]
pub async fn acknowledge(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(note): Extension<AuditNote>,
    Path(fingerprint): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    note.target(format!("alert:{fingerprint}"));
    let record = app.alerting.acknowledge(&fingerprint, &principal.actor()).await?;
    Ok(Json(view(record, None)))
}

#[utoipa::path(get, path = "/api/v1/silences", tag = "alerts", responses((status = 200, body = Vec<SilenceView>)))]
pub async fn list_silences(State(app): State<AppState>) -> Result<Json<Vec<SilenceView>>, ApiError> {
    Ok(Json(app.alerting.silences().await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilenceRequest {
    matchers: Vec<SilenceMatcher>,
    /// Default now.
    #[schema(value_type = Option<String>)]
    starts_at: Option<Timestamp>,
    /// Either `ends_at` or `duration` (such as `2h`).
    #[schema(value_type = Option<String>)]
    ends_at: Option<Timestamp>,
    #[schema(value_type = Option<String>)]
    duration: Option<hubmon_model::PromDuration>,
    #[serde(default)]
    comment: String,
}

/// Creates a silence: matching alerts are not notified between `starts_at` and `ends_at`.
#[utoipa::path(post, path = "/api/v1/silences", tag = "alerts", request_body = NewSilenceRequest,
    responses((status = 201, body = SilenceView), (status = 422, body = crate::http::error::ErrorBody)))]
pub async fn create_silence(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(note): Extension<AuditNote>,
    Json(request): Json<NewSilenceRequest>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
    let starts_at = request.starts_at.unwrap_or_else(Timestamp::now);
    let ends_at = match (request.ends_at, request.duration) {
        (Some(end), None) => end,
        (None, Some(d)) => {
            Timestamp(starts_at.as_millis() + i64::try_from(d.as_duration().as_millis()).unwrap_or(i64::MAX / 2))
        }
        _ => return Err(ApiError::unprocessable("ends_at: give either ends_at or duration")),
    };
    let silence =
        app.alerting.create_silence(request.matchers, starts_at, ends_at, &principal.actor(), request.comment).await?;
    note.target(format!("silence:{}", silence.id));
    Ok((StatusCode::CREATED, Json(silence)))
}

/// Expires a silence now (it stays in the list as `expired`).
#[utoipa::path(delete, path = "/api/v1/silences/{id}", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 200, body = SilenceView), (status = 404, body = crate::http::error::ErrorBody)))]
pub async fn expire_silence(
    State(app): State<AppState>,
    Extension(note): Extension<AuditNote>,
    Path(id): Path<i64>,
) -> Result<Json<SilenceView>, ApiError> {
    note.target(format!("silence:{id}"));
    Ok(Json(app.alerting.expire_silence(id).await?))
}

// ---- Prometheus- and Alertmanager-compatible ---------------------------------------------------

fn prom_success(data: serde_json::Value) -> Response {
    axum::Json(serde_json::json!({"status": "success", "data": data})).into_response()
}

fn rfc3339(ms: i64) -> String {
    Timestamp(ms).to_string()
}

fn prom_alert(record: &AlertRecord) -> serde_json::Value {
    serde_json::json!({
        "labels": record.labels,
        "annotations": record.annotations,
        "state": record.state.as_str(),
        "activeAt": rfc3339(record.active_at),
        "value": format!("{}", record.value),
    })
}

/// Rule groups with their rules, state and health, in Prometheus's format.
#[utoipa::path(get, path = "/api/v1/rules", tag = "prometheus", responses((status = 200, description = "Prometheus format")))]
pub async fn prometheus_rules(State(app): State<AppState>) -> Response {
    let active = app.alerting.active();
    let groups: Vec<serde_json::Value> = app
        .alerting
        .groups()
        .into_iter()
        .map(|(group, runtime)| {
            let health_of = |name: &str| runtime.health.get(name).cloned().unwrap_or_default();
            let mut rules: Vec<serde_json::Value> = group
                .alerting
                .iter()
                .map(|rule| {
                    let alerts: Vec<_> =
                        active.iter().filter(|(a, _)| a.rule == rule.name).map(|(a, _)| prom_alert(a)).collect();
                    let state = if alerts.iter().any(|a| a["state"] == "firing") {
                        "firing"
                    } else if alerts.is_empty() {
                        "inactive"
                    } else {
                        "pending"
                    };
                    let health = health_of(&rule.name);
                    serde_json::json!({
                        "type": "alerting", "name": rule.name, "query": rule.expr,
                        "duration": rule.hold.as_secs(), "keepFiringFor": rule.keep_firing_for.as_secs(),
                        "labels": rule.labels,
                        "annotations": rule.annotations.keys().map(|k| (k.clone(), String::new())).collect::<BTreeMap<_, _>>(),
                        "alerts": alerts, "state": state,
                        "health": if health.health.is_empty() { "unknown" } else { health.health },
                        "lastError": health.last_error.unwrap_or_default(),
                        "evaluationTime": health.evaluation_seconds,
                        "lastEvaluation": health.last_evaluation.map(rfc3339),
                    })
                })
                .collect();
            rules.extend(group.recording.iter().map(|rule| {
                let health = health_of(&rule.record);
                serde_json::json!({
                    "type": "recording", "name": rule.record, "query": rule.expr, "labels": rule.labels,
                    "health": if health.health.is_empty() { "unknown" } else { health.health },
                    "lastError": health.last_error.unwrap_or_default(),
                    "evaluationTime": health.evaluation_seconds,
                    "lastEvaluation": health.last_evaluation.map(rfc3339),
                })
            }));
            serde_json::json!({
                "name": group.name, "file": group.source, "interval": group.interval.as_secs_f64(),
                "rules": rules, "evaluationTime": runtime.evaluation_seconds,
                "lastEvaluation": runtime.last_evaluation.map(rfc3339),
            })
        })
        .collect();
    prom_success(serde_json::json!({"groups": groups}))
}

/// Active alerts in Prometheus's format.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "prometheus", responses((status = 200, description = "Prometheus format")))]
pub async fn prometheus_alerts(State(app): State<AppState>) -> Response {
    let alerts: Vec<_> = app.alerting.active().iter().map(|(a, _)| prom_alert(a)).collect();
    prom_success(serde_json::json!({"alerts": alerts}))
}

/// Receives alerts from an external Prometheus, as Alertmanager does: they are routed,
/// silenced and shown like hubmon's own.
#[utoipa::path(post, path = "/api/v2/alerts", tag = "alertmanager", request_body = Vec<ExternalAlert>,
    responses((status = 200), (status = 400, body = crate::http::error::ErrorBody)))]
pub async fn receive_alerts(
    State(app): State<AppState>,
    Json(alerts): Json<Vec<ExternalAlert>>,
) -> Result<StatusCode, ApiError> {
    for (i, alert) in alerts.iter().enumerate() {
        if alert.labels.get("alertname").is_none_or(String::is_empty) {
            return Err(ApiError::bad_request(format!("alert {i}: labels must include alertname")));
        }
    }
    app.alerting.receive(alerts).await.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(StatusCode::OK)
}

/// Active alerts in Alertmanager's v2 format.
#[utoipa::path(get, path = "/api/v2/alerts", tag = "alertmanager", responses((status = 200, description = "Alertmanager v2 format")))]
pub async fn alertmanager_alerts(State(app): State<AppState>) -> Response {
    let alerts: Vec<_> = app
        .alerting
        .active()
        .into_iter()
        .filter(|(a, _)| a.state == AlertState::Firing)
        .map(|(a, muted)| {
            let silenced: Vec<String> = match &muted {
                Some(Muted::Silence { id }) => vec![id.to_string()],
                _ => Vec::new(),
            };
            let inhibited: Vec<String> = match &muted {
                Some(Muted::Inhibition { source }) => vec![source.clone()],
                _ => Vec::new(),
            };
            serde_json::json!({
                "labels": a.labels, "annotations": a.annotations, "fingerprint": a.fingerprint,
                "startsAt": rfc3339(a.fired_at.unwrap_or(a.active_at)), "updatedAt": rfc3339(a.last_seen_at),
                "endsAt": rfc3339(a.last_seen_at + 4 * 60_000), "generatorURL": "",
                "receivers": [{"name": "hubmon"}],
                "status": {"state": if muted.is_some() { "suppressed" } else { "active" }, "silencedBy": silenced, "inhibitedBy": inhibited},
            })
        })
        .collect();
    axum::Json(alerts).into_response()
}
