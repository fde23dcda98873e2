//! The Loki-compatible API: the push endpoint that Loki clients ship to, and the read API
//! (query, query_range, labels, label values, series) that Grafana's Loki data source uses,
//! answered from hubmon's log store with a LogQL subset (`hubmon_logstore::logql`).

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hubmon_ingest::logs::loki;
use hubmon_logstore::logql::{self, LogqlError, LogqlQuery, Range};
use hubmon_model::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::http::api::logs::{parse_time, respond};
use crate::http::error::ApiError;
use crate::http::extract::{Json, Path, Query};

/// Most Loki push bodies inflate about 10×; this bounds what one request may cost in memory.
const MAX_DECOMPRESSED_FACTOR: usize = 32;

/// Loki push API: `application/x-protobuf` (snappy-compressed `logproto.PushRequest`) or
/// `application/json` (`{"streams":[{"stream":{…},"values":[["<ns>","line"]]}]}`, optionally
/// gzip-compressed is not supported: send it uncompressed). 204 when every line is stored;
/// otherwise 200 (some refused) or 422 (all refused) with the per-line reasons.
#[utoipa::path(post, path = "/loki/api/v1/push", tag = "loki", request_body(content = Object, description = "Loki PushRequest, protobuf+snappy or JSON"), responses(
    (status = 204, description = "Every line stored"),
    (status = 200, description = "Some lines refused (the rest stored)", body = crate::http::api::logs::LogIngestResult),
    (status = 400, description = "Undecodable body", body = crate::http::error::ErrorBody),
    (status = 415, description = "Unsupported content type or encoding", body = crate::http::error::ErrorBody),
    (status = 422, description = "Every line refused", body = crate::http::api::logs::LogIngestResult),
))]
pub async fn push(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
    let limits = app.config.logs.limits();
    let now = Timestamp::now();
    let parsed = if content_type.starts_with("application/json") {
        if !encoding.is_empty() && encoding != "identity" {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {encoding:?} is not supported for JSON pushes; send it uncompressed"),
            ));
        }
        crate::blocking::cpu_bound(move || {
            loki::decode_json(&body, now, &limits).map_err(|e| ApiError::bad_request(e.to_string()))
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??
    } else if content_type.is_empty() || content_type.starts_with("application/x-protobuf") {
        let limit = usize::try_from(app.config.http.max_body_bytes)
            .unwrap_or(usize::MAX)
            .saturating_mul(MAX_DECOMPRESSED_FACTOR);
        crate::blocking::cpu_bound(move || {
            loki::decode_protobuf(&body, limit, now, &limits).map_err(|e| match e {
                loki::PushError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
                other => ApiError::bad_request(other.to_string()),
            })
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Loki push needs application/x-protobuf or application/json, got {content_type:?}"),
        ));
    };
    let (status, result) = respond(&app, parsed).await?;
    if result.rejected == 0 {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok((status, Json(result)).into_response())
}

/// Parameters of the Loki query endpoints (`start`, `end`, `time`: unix ns, unix seconds or
/// RFC 3339; `step`: seconds or a duration such as `30s`).
#[derive(Deserialize, utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct LokiParams {
    /// LogQL: a log query (`{service="api"} |= "error"`) or a metric query
    /// (`sum by (level) (count_over_time({service="api"}[5m]))`).
    query: Option<String>,
    /// Lines returned by a log query (default 100, at most 5000).
    limit: Option<usize>,
    start: Option<String>,
    end: Option<String>,
    /// Instant queries: the evaluation time (default now).
    time: Option<String>,
    step: Option<String>,
    /// `backward` (newest first, the default) or `forward`.
    direction: Option<String>,
    /// Series API: a stream selector (repeatable as `match[]`).
    #[serde(rename = "match[]")]
    #[param(rename = "match[]")]
    matches: Option<String>,
}

/// Loki's error shape is a plain text body with the status; Grafana shows it as is.
fn loki_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

fn logql_error(error: LogqlError) -> Response {
    match error {
        LogqlError::Parse { .. } => loki_error(StatusCode::BAD_REQUEST, error.to_string()),
        LogqlError::Limit(_) => loki_error(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()),
        LogqlError::Store(_) => loki_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

fn ns(ms: i64) -> String {
    format!("{}", i128::from(ms) * 1_000_000)
}

fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{}", value as i64) } else { value.to_string() }
}

/// `start` and `end` of a range request: `end` defaults to now, `start` to an hour before
/// `end`, as in Loki.
fn span_params(params: &LokiParams, now: i64) -> Result<(i64, i64), String> {
    let end = time_param("end", params.end.as_deref())?.unwrap_or(now);
    let start = time_param("start", params.start.as_deref())?.unwrap_or(end - 3_600_000);
    Ok((start, end))
}

fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, String> {
    parse_time(name, value).map_err(|e| e.message)
}

fn step_param(value: Option<&str>, start: i64, end: i64) -> Result<i64, String> {
    let step = match value.filter(|v| !v.is_empty()) {
        Some(text) => match text.parse::<f64>() {
            Ok(seconds) if seconds > 0.0 => (seconds * 1000.0) as i64,
            Ok(_) => return Err("step must be positive".into()),
            Err(_) => {
                text.parse::<hubmon_model::PromDuration>().map_err(|e| format!("step: {e}"))?.as_duration().as_millis()
                    as i64
            }
        },
        // Loki's default: about 250 points over the range, at least 1 s.
        None => ((end - start) / 250).max(1000),
    };
    if step <= 0 || (end - start) / step > 11_000 {
        return Err("more than 11000 points per series; use a larger step".into());
    }
    Ok(step)
}

async fn evaluate(app: &AppState, params: LokiParams, instant: bool) -> Response {
    let Some(text) = params.query.as_deref().filter(|q| !q.trim().is_empty()) else {
        return loki_error(StatusCode::BAD_REQUEST, "query is required");
    };
    let query = match LogqlQuery::parse(text) {
        Ok(query) => query,
        Err(error) => return logql_error(error),
    };
    let now = Timestamp::now().as_millis();
    let range = if instant {
        let time = match time_param("time", params.time.as_deref()) {
            Ok(t) => t.unwrap_or(now),
            Err(message) => return loki_error(StatusCode::BAD_REQUEST, message),
        };
        // An instant log query looks back an hour, as Loki's does.
        let start = if query.is_metric() { time } else { time - 3_600_000 };
        (start, time, 1000)
    } else {
        let (start, end) = match span_params(&params, now) {
            Ok(span) => span,
            Err(message) => return loki_error(StatusCode::BAD_REQUEST, message),
        };
        if start > end {
            return loki_error(StatusCode::BAD_REQUEST, "start must not be after end");
        }
        let step = match step_param(params.step.as_deref(), start, end) {
            Ok(step) => step,
            Err(message) => return loki_error(StatusCode::BAD_REQUEST, message),
        };
        (start, end, step)
    };
    let range = Range {
        start: range.0,
        end: range.1,
        step: range.2,
        limit: params.limit.unwrap_or(100).clamp(1, 5000),
        backward: params.direction.as_deref() != Some("forward"),
    };
    let store = app.logs.store.clone();
    let result = tokio::task::spawn_blocking(move || match &query {
        LogqlQuery::Log(log) => logql::select_logs(&store, log, range).map(|streams| {
            let result: Vec<Value> = streams
                .into_iter()
                .map(|s| {
                    let values: Vec<Value> = s.entries.into_iter().map(|(ts, line)| json!([ns(ts), line])).collect();
                    json!({"stream": s.labels, "values": values})
                })
                .collect();
            json!({"resultType": "streams", "result": result, "stats": {}})
        }),
        LogqlQuery::Metric(metric) => logql::evaluate_metric(&store, metric, range).map(|series| {
            if instant {
                let result: Vec<Value> = series
                    .into_iter()
                    .filter_map(|s| {
                        let (t, v) = s.points.last().copied()?;
                        Some(json!({"metric": s.labels, "value": [seconds(t), number(v)]}))
                    })
                    .collect();
                json!({"resultType": "vector", "result": result, "stats": {}})
            } else {
                let result: Vec<Value> = series
                    .into_iter()
                    .map(|s| {
                        let values: Vec<Value> =
                            s.points.into_iter().map(|(t, v)| json!([seconds(t), number(v)])).collect();
                        json!({"metric": s.labels, "values": values})
                    })
                    .collect();
                json!({"resultType": "matrix", "result": result, "stats": {}})
            }
        }),
    })
    .await;
    match result {
        Ok(Ok(data)) => axum::Json(json!({"status": "success", "data": data})).into_response(),
        Ok(Err(error)) => logql_error(error),
        Err(error) => loki_error(StatusCode::INTERNAL_SERVER_ERROR, format!("query task failed: {error}")),
    }
}

/// Loki range query: log lines as `streams`, or a metric query as a `matrix`.
#[utoipa::path(get, path = "/loki/api/v1/query_range", tag = "loki", params(LokiParams), responses(
    (status = 200, description = "Loki's response: {status, data: {resultType: streams|matrix, result}}", body = Object),
    (status = 400, description = "The LogQL does not parse (plain-text message with the position)", body = String),
))]
pub async fn query_range(State(app): State<AppState>, Query(params): Query<LokiParams>) -> Response {
    evaluate(&app, params, false).await
}

/// Loki instant query: a metric query as a `vector` at `time`; a log query returns the
/// lines of the hour before `time`.
#[utoipa::path(get, path = "/loki/api/v1/query", tag = "loki", params(LokiParams), responses(
    (status = 200, description = "Loki's response: {status, data: {resultType: vector|streams, result}}", body = Object),
    (status = 400, description = "The LogQL does not parse", body = String),
))]
pub async fn query(State(app): State<AppState>, Query(params): Query<LokiParams>) -> Response {
    evaluate(&app, params, true).await
}

/// Label names: every field lines carry (level, category, service, host, module, and the
/// free-form fields).
#[utoipa::path(get, path = "/loki/api/v1/labels", tag = "loki", params(LokiParams), responses(
    (status = 200, description = "{status, data: [name, …]}", body = Object),
))]
pub async fn labels(State(app): State<AppState>) -> Response {
    let store = app.logs.store.clone();
    match tokio::task::spawn_blocking(move || store.field_names()).await {
        Ok(Ok(names)) => axum::Json(json!({"status": "success", "data": names})).into_response(),
        Ok(Err(error)) => loki_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        Err(error) => loki_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// Values of one label.
#[utoipa::path(get, path = "/loki/api/v1/label/{name}/values", tag = "loki", params(("name" = String, Path, description = "Label name"), LokiParams), responses(
    (status = 200, description = "{status, data: [value, …]}", body = Object),
))]
pub async fn label_values(State(app): State<AppState>, Path(name): Path<String>) -> Response {
    let store = app.logs.store.clone();
    match tokio::task::spawn_blocking(move || store.field_values(&name)).await {
        Ok(Ok(values)) => axum::Json(json!({"status": "success", "data": values})).into_response(),
        Ok(Err(error)) => loki_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        Err(error) => loki_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// Streams (label sets) matching a selector in the range: every one, however many lines it
/// has (read from segment columns where they hold the labels).
#[utoipa::path(get, path = "/loki/api/v1/series", tag = "loki", params(LokiParams), responses(
    (status = 200, description = "{status, data: [{label: value}, …]}", body = Object),
    (status = 400, description = "No or an invalid selector", body = String),
))]
pub async fn series(State(app): State<AppState>, Query(params): Query<LokiParams>) -> Response {
    let Some(selector) = params.matches.clone().or(params.query.clone()) else {
        return loki_error(StatusCode::BAD_REQUEST, "match[] is required, like match[]={service=\"api\"}");
    };
    match selected(&app, &selector, &params).await {
        Ok(selected) => {
            let data: Vec<Value> = selected.streams.into_iter().map(|labels| json!(labels)).collect();
            axum::Json(json!({"status": "success", "data": data})).into_response()
        }
        Err(response) => response,
    }
}

/// What a query would read, for Grafana's query-size estimate: Loki's `index/stats`.
/// hubmon has no chunks; each stream counts as one.
#[utoipa::path(get, path = "/loki/api/v1/index/stats", tag = "loki", params(LokiParams), responses(
    (status = 200, description = "{streams, chunks, entries, bytes}", body = Object),
    (status = 400, description = "No or an invalid selector", body = String),
))]
pub async fn index_stats(State(app): State<AppState>, Query(params): Query<LokiParams>) -> Response {
    let Some(selector) = params.query.clone().or(params.matches.clone()) else {
        return loki_error(StatusCode::BAD_REQUEST, "query is required, like query={service=\"api\"}");
    };
    match selected(&app, &selector, &params).await {
        Ok(selected) => axum::Json(json!({
            "streams": selected.streams.len(),
            "chunks": selected.streams.len(),
            "entries": selected.lines,
            "bytes": selected.bytes,
        }))
        .into_response(),
        Err(response) => response,
    }
}

/// The streams, lines and bytes a log query selects over the request's `start`..`end`.
async fn selected(app: &AppState, selector: &str, params: &LokiParams) -> Result<logql::Selected, Response> {
    let query = match LogqlQuery::parse(selector) {
        Ok(LogqlQuery::Log(query)) => query,
        Ok(LogqlQuery::Metric(_)) => return Err(loki_error(StatusCode::BAD_REQUEST, "expected a stream selector")),
        Err(error) => return Err(logql_error(error)),
    };
    let (start, end) =
        span_params(params, Timestamp::now().as_millis()).map_err(|m| loki_error(StatusCode::BAD_REQUEST, m))?;
    let store = app.logs.store.clone();
    match tokio::task::spawn_blocking(move || logql::selected(&store, &query, start, end)).await {
        Ok(Ok(selected)) => Ok(selected),
        Ok(Err(error)) => Err(logql_error(error)),
        Err(error) => Err(loki_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())),
    }
}

/// Parameters of the Loki tail endpoint.
#[derive(Deserialize, utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct TailParams {
    /// A LogQL log query (selector and pipeline).
    query: Option<String>,
    /// Lines sent first from before the connection (default 100, at most 5000).
    limit: Option<usize>,
    /// Where those first lines start (unix ns, seconds or RFC 3339; default an hour ago).
    start: Option<String>,
    /// Accepted for compatibility; lines are sent as they arrive.
    #[serde(rename = "delay_for")]
    #[param(rename = "delay_for")]
    _delay_for: Option<String>,
}

/// Loki's live tail over WebSocket (what Grafana's "Live" button opens): first the lines since
/// `start` (up to `limit`), then every new matching line as
/// `{"streams":[{"stream":{…},"values":[["<ns>","line"]]}]}`. A client that falls behind gets a
/// message with `dropped_entries` and the socket is closed, so ingest never waits for it.
#[utoipa::path(get, path = "/loki/api/v1/tail", tag = "loki", params(TailParams), responses(
    (status = 101, description = "Switching to a WebSocket of Loki tail messages"),
    (status = 400, description = "Not a WebSocket request, or the query is not a log query", body = String),
))]
pub async fn tail(State(app): State<AppState>, Query(params): Query<TailParams>, ws: WebSocketUpgrade) -> Response {
    let query = match params.query.as_deref().map(LogqlQuery::parse) {
        Some(Ok(LogqlQuery::Log(query))) => query,
        Some(Ok(LogqlQuery::Metric(_))) => return loki_error(StatusCode::BAD_REQUEST, "tail needs a log query"),
        Some(Err(error)) => return logql_error(error),
        None => return loki_error(StatusCode::BAD_REQUEST, "query is required"),
    };
    let now = Timestamp::now().as_millis();
    let start = match time_param("start", params.start.as_deref()) {
        Ok(t) => t.unwrap_or(now - 3_600_000),
        Err(message) => return loki_error(StatusCode::BAD_REQUEST, message),
    };
    let limit = params.limit.unwrap_or(100).clamp(1, 5000);
    ws.on_upgrade(move |socket| tail_socket(app, query, socket, start, limit))
}

fn tail_message(streams: Vec<logql::Stream>) -> Message {
    let streams: Vec<Value> = streams
        .into_iter()
        .map(|s| {
            let values: Vec<Value> = s.entries.into_iter().map(|(ts, line)| json!([ns(ts), line])).collect();
            json!({"stream": s.labels, "values": values})
        })
        .collect();
    Message::Text(json!({"streams": streams}).to_string().into())
}

async fn tail_socket(app: AppState, query: logql::LogQuery, mut socket: WebSocket, start: i64, limit: usize) {
    // Subscribe before reading the past, so no line falls between the two; ids tell repeats.
    let mut live = app.logs.subscribe();
    let stopping = app.logs.stopping.clone();
    let store = app.logs.store.clone();
    let history_query = query.clone();
    // Lines up to here come from the history read; newer ones from the broadcast.
    let seen_up_to = app.logs.last_id();
    let now = Timestamp::now().as_millis();
    let range = Range { start, end: now, step: 1000, limit, backward: false };
    let history = tokio::task::spawn_blocking(move || logql::select_logs(&store, &history_query, range)).await;
    if let Ok(Ok(streams)) = history
        && !streams.is_empty()
        && socket.send(tail_message(streams)).await.is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            _ = stopping.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            received = live.recv() => match received {
                Ok(line) if line.id > seen_up_to => {
                    if let Some((labels, text)) = query.process(&line.entry) {
                        let stream = logql::Stream { labels, entries: vec![(line.entry.timestamp.as_millis(), text)] };
                        if socket.send(tail_message(vec![stream])).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    let notice = json!({"streams": [], "dropped_entries": [{"labels": {}, "timestamp": ns(Timestamp::now().as_millis())}],
                        "error": format!("the client fell behind by {missed} lines and is disconnected; reconnect to resume")});
                    let _ = socket.send(Message::Text(notice.to_string().into())).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}
