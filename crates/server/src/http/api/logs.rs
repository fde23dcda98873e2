//! Logs: ingest (`POST /api/v1/logs`), search, statistics and live tail. Parsing is
//! `hubmon_ingest::logs`, storage and query `hubmon_logstore`; these handlers only translate.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use hubmon_ingest::logs::{LineError, Parsed, batch};
use hubmon_logstore::{Cursor, Expr, SearchRequest, SearchResult, Stats, StatsRequest, highlights};
use hubmon_model::Timestamp;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Query};

/// What a log ingest call stored and refused.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LogIngestResult {
    pub accepted: usize,
    pub rejected: usize,
    /// Up to 100 refused lines: `index` (array position, or 0-based line of NDJSON / Loki
    /// entry counted over all streams) and `reason`.
    #[schema(value_type = Vec<Object>)]
    pub rejections: Vec<LineError>,
}

const MAX_REPORTED_REJECTIONS: usize = 100;

/// Stores parsed lines and renders the result: 200 when anything was stored or nothing was
/// refused, 422 when every line was refused, 503 when the store cannot write.
pub async fn respond(app: &AppState, parsed: Parsed) -> Result<(StatusCode, LogIngestResult), ApiError> {
    let rejected = parsed.rejections.len();
    let accepted = crate::logs::store(app, parsed.entries)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let mut rejections = parsed.rejections;
    rejections.truncate(MAX_REPORTED_REJECTIONS);
    let status = if accepted == 0 && rejected > 0 { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((status, LogIngestResult { accepted, rejected, rejections }))
}

/// Sends log lines: one JSON object, an array of objects, `{"logs": [...]}`, or NDJSON
/// (`Content-Type: application/x-ndjson`). Field names loggers use (`msg`, `lvl`,
/// `@timestamp`, `requestId`, …) map onto the model; other fields are kept and searchable.
/// A bad line is refused with its index and reason; the good lines of the batch are kept.
#[utoipa::path(post, path = "/api/v1/logs", tag = "logs", request_body(content = Object, description = "A log line object, an array of them, or NDJSON"), responses(
    (status = 200, description = "What was stored and refused", body = LogIngestResult),
    (status = 400, description = "The body is not JSON or NDJSON at all", body = crate::http::error::ErrorBody),
    (status = 422, description = "Every line was refused", body = LogIngestResult),
    (status = 503, description = "The log store cannot write; retry", body = crate::http::error::ErrorBody),
))]
pub async fn ingest(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ndjson = content_type.contains("ndjson") || content_type.contains("jsonlines");
    let limits = app.config.logs.limits();
    let parsed = crate::blocking::cpu_bound(move || {
        batch::parse(&body, ndjson, Timestamp::now(), &limits).map_err(|e| ApiError::bad_request(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let (status, result) = respond(&app, parsed).await?;
    Ok((status, Json(result)).into_response())
}

/// Search parameters shared by search, statistics and tail.
#[derive(Deserialize, utoipa::IntoParams, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The query: words, "phrases", `field:value`, `field:(a OR b)`, `-field:value`,
    /// `status:>=500`, `level:>=warning`, `a OR b`. Empty: every line.
    q: Option<String>,
    /// Same as `q`.
    query: Option<String>,
    /// Start (inclusive): RFC 3339, epoch s/ms/ns, or `now-1h`. Default: the beginning
    /// (stats: 24 h ago).
    from: Option<String>,
    /// End (exclusive). Default: no end (stats: now).
    to: Option<String>,
    /// Shortcut filters, ANDed with the query; comma-separated values mean any of them.
    level: Option<String>,
    category: Option<String>,
    service: Option<String>,
    host: Option<String>,
    module: Option<String>,
    request_id: Option<String>,
    user_id: Option<String>,
    /// Lines per page, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Statistics: bucket width (`1m`, `1h`, or seconds). Default: about 60 buckets.
    step: Option<String>,
    /// Statistics: how many top messages (default 10, at most 100).
    top: Option<u32>,
}

impl SearchParams {
    /// The query with the shortcut filters folded in; a parse error is a 400 with its position.
    fn expr(&self) -> Result<Expr, ApiError> {
        let text = self.q.as_deref().or(self.query.as_deref()).unwrap_or("");
        let mut expr = Expr::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let shortcuts = [
            ("level", &self.level),
            ("category", &self.category),
            ("service", &self.service),
            ("host", &self.host),
            ("module", &self.module),
            ("request_id", &self.request_id),
            ("user_id", &self.user_id),
        ];
        let mut parts = vec![];
        for (field, value) in shortcuts {
            let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) else { continue };
            let quoted: Vec<String> = value
                .split(',')
                .map(|v| format!("\"{}\"", v.trim().replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            let filter = Expr::parse(&format!("{field}:({})", quoted.join(" OR ")))
                .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))?;
            parts.push(filter);
        }
        if !parts.is_empty() {
            if expr != Expr::All {
                parts.insert(0, expr);
            }
            expr = if parts.len() == 1 { parts.remove(0) } else { Expr::And(parts) };
        }
        Ok(expr)
    }
}

/// A time from a query parameter: RFC 3339, epoch seconds / ms / ns, `now` or `now-15m`.
pub fn parse_time(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
    if let Some(rest) = value.strip_prefix("now") {
        let now = Timestamp::now().as_millis();
        let Some(ago) = rest.strip_prefix('-') else {
            return if rest.is_empty() {
                Ok(Some(now))
            } else {
                Err(ApiError::bad_request(format!("{name}: write now or now-<duration>, like now-15m")))
            };
        };
        let ago: hubmon_model::PromDuration = ago.parse().map_err(|e| ApiError::bad_request(format!("{name}: {e}")))?;
        return Ok(Some(now - i64::try_from(ago.as_duration().as_millis()).unwrap_or(i64::MAX / 2)));
    }
    hubmon_ingest::logs::structured::parse_timestamp_text(value, Timestamp::now())
        .map(|t| Some(t.as_millis()))
        .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
}

/// Search results with how long the search took.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SearchPage {
    #[serde(flatten)]
    pub result: SearchResult,
    pub took_ms: u64,
}

async fn run_search(app: &AppState, params: SearchParams) -> Result<Json<SearchPage>, ApiError> {
    let cursor = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(text) => Some(
            Cursor::parse(text)
                .ok_or_else(|| ApiError::bad_request(format!("cursor {text:?} is not one this API returned")))?,
        ),
        None => None,
    };
    let request = SearchRequest {
        query: params.expr()?,
        from: parse_time("from", params.from.as_deref())?.unwrap_or(i64::MIN),
        to: parse_time("to", params.to.as_deref())?.unwrap_or(i64::MAX),
        limit: params.limit.unwrap_or(100).clamp(1, 1000) as usize,
        cursor,
    };
    let logs = app.logs.store.clone();
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || logs.search(&request))
        .await
        .map_err(|e| ApiError::internal(format!("search task failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("search failed: {e}")))?;
    Ok(Json(SearchPage { result, took_ms: started.elapsed().as_millis() as u64 }))
}

/// Searches logs, newest first, with a cursor for the next page and the matched words of
/// each message as `highlights` (`[start, end)` character offsets).
#[utoipa::path(get, path = "/api/v1/logs/search", tag = "logs", params(SearchParams), responses(
    (status = 200, description = "A page of matching lines", body = SearchPage),
    (status = 400, description = "The query does not parse (the message gives the position) or a parameter is invalid", body = crate::http::error::ErrorBody),
))]
pub async fn search(
    State(app): State<AppState>,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchPage>, ApiError> {
    run_search(&app, params).await
}

/// The product's log search endpoint; the same as `/api/v1/logs/search`.
#[utoipa::path(get, path = "/api/v1/monitoring/logs", tag = "logs", params(SearchParams), responses(
    (status = 200, description = "A page of matching lines", body = SearchPage),
    (status = 400, description = "The query does not parse or a parameter is invalid", body = crate::http::error::ErrorBody),
))]
pub async fn monitoring_logs(
    State(app): State<AppState>,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchPage>, ApiError> {
    run_search(&app, params).await
}

/// Counts by level and category per time bucket, the error rate per bucket, and the most
/// frequent messages (numbers and ids folded into `<*>`), over `[from, to)` for lines
/// matching the query.
#[utoipa::path(get, path = "/api/v1/logs/stats", tag = "logs", params(SearchParams), responses(
    (status = 200, description = "Statistics", body = Stats),
    (status = 400, description = "The query or a parameter is invalid", body = crate::http::error::ErrorBody),
))]
pub async fn stats(State(app): State<AppState>, Query(params): Query<SearchParams>) -> Result<Json<Stats>, ApiError> {
    let now = Timestamp::now().as_millis();
    let to = parse_time("to", params.to.as_deref())?.unwrap_or(now);
    let from = parse_time("from", params.from.as_deref())?.unwrap_or(to - 86_400_000);
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    let step = match params.step.as_deref() {
        Some(text) => parse_step(text)?,
        None => nice_step((to - from) / 60),
    };
    if (to - from) / step > 10_000 {
        return Err(ApiError::bad_request("more than 10000 buckets; use a larger step"));
    }
    let request =
        StatsRequest { query: params.expr()?, from, to, step, top: params.top.unwrap_or(10).min(100) as usize };
    let logs = app.logs.store.clone();
    let stats = tokio::task::spawn_blocking(move || logs.stats(&request))
        .await
        .map_err(|e| ApiError::internal(format!("stats task failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("stats failed: {e}")))?;
    Ok(Json(stats))
}

fn parse_step(text: &str) -> Result<i64, ApiError> {
    let ms = if let Ok(seconds) = text.parse::<f64>() {
        (seconds * 1000.0) as i64
    } else {
        text.parse::<hubmon_model::PromDuration>()
            .map_err(|e| ApiError::bad_request(format!("step: {e}")))?
            .as_duration()
            .as_millis() as i64
    };
    if ms < 1000 {
        return Err(ApiError::bad_request("step must be at least 1s"));
    }
    Ok(ms)
}

/// Rounds a bucket width up to one a chart reads well (1s, 5s, 1m, 5m, 1h, 1d, …).
fn nice_step(ms: i64) -> i64 {
    const STEPS: [i64; 14] = [
        1_000,
        5_000,
        10_000,
        30_000,
        60_000,
        300_000,
        600_000,
        1_800_000,
        3_600_000,
        10_800_000,
        21_600_000,
        43_200_000,
        86_400_000,
        604_800_000,
    ];
    STEPS.into_iter().find(|s| *s >= ms).unwrap_or(604_800_000)
}

/// Live tail as server-sent events: a `log` event (the same object as a search hit) for
/// every new line matching the query. A client that cannot keep up gets a `dropped` event
/// and the stream ends, so a slow reader never slows ingest; reconnect to resume.
#[utoipa::path(get, path = "/api/v1/logs/tail", tag = "logs", params(SearchParams), responses(
    (status = 200, description = "An event stream (text/event-stream) of `log` events, and `dropped` if the client fell behind", content_type = "text/event-stream", body = String),
    (status = 400, description = "The query is invalid", body = crate::http::error::ErrorBody),
))]
pub async fn tail(
    State(app): State<AppState>,
    Query(params): Query<SearchParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let expr = Arc::new(params.expr()?);
    let receiver = app.logs.subscribe();
    let shutdown = app.logs.stopping.clone();
    let terms = Arc::new(expr.highlight_terms());
    let events = stream::unfold(Some((receiver, shutdown)), move |state| {
        let expr = expr.clone();
        let terms = terms.clone();
        async move {
            let (mut receiver, shutdown) = state?;
            loop {
                let received = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    received = receiver.recv() => received,
                };
                match received {
                    Ok(line) if expr.matches(&line.entry) => {
                        let hit = hubmon_logstore::Hit {
                            id: line.id,
                            highlights: highlights(&line.entry.message, &terms),
                            entry: line.entry.clone(),
                        };
                        let event = Event::default().event("log").json_data(&hit).unwrap_or_else(|_| Event::default());
                        return Some((Ok(event), Some((receiver, shutdown))));
                    }
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        let notice = serde_json::json!({
                            "reason": "the client fell behind; reconnect to resume",
                            "missed": missed,
                        });
                        let event = Event::default().event("dropped").data(notice.to_string());
                        return Some((Ok(event), None));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
