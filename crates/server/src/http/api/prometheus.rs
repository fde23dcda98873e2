//! The Prometheus HTTP API's metadata endpoints (`series`, `labels`, `label/{name}/values`),
//! in Prometheus's own response and error formats, so Grafana and promtool can browse hubmon.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hubmon_model::{MatchOp, Matcher, Querier, Timestamp};
use serde::Serialize;

use crate::app::AppState;
use crate::http::extract::Path;

/// Prometheus's error shape: `{"status":"error","errorType","error"}`.
pub struct PromError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl PromError {
    fn bad_data(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, kind: "bad_data", message: message.into() }
    }

    fn internal(message: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, kind: "internal", message: message.into() }
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"status": "error", "errorType": self.kind, "error": self.message});
        (self.status, axum::Json(body)).into_response()
    }
}

#[derive(Serialize)]
struct Success<T> {
    status: &'static str,
    data: T,
}

fn success<T: Serialize>(data: T) -> Response {
    axum::Json(Success { status: "success", data }).into_response()
}

/// `match[]`, `start` and `end` from a query string (repeated keys, as Prometheus takes them).
struct SeriesParams {
    selectors: Vec<Vec<Matcher>>,
    start: i64,
    end: i64,
}

fn parse_params(query: Option<&str>) -> Result<SeriesParams, PromError> {
    let mut selectors = Vec::new();
    let (mut start, mut end) = (i64::MIN, i64::MAX);
    for (key, value) in form_pairs(query.unwrap_or("")) {
        match key.as_str() {
            "match[]" => selectors.push(parse_selector(&value)?),
            "start" => start = parse_time(&value, "start")?,
            "end" => end = parse_time(&value, "end")?,
            _ => {}
        }
    }
    if end < start {
        return Err(PromError::bad_data("end timestamp must not be before start time"));
    }
    Ok(SeriesParams { selectors, start, end })
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn parse_time(text: &str, name: &str) -> Result<i64, PromError> {
    text.parse::<Timestamp>().map(Timestamp::as_millis).map_err(|_| {
        PromError::bad_data(format!("invalid parameter \"{name}\": cannot parse {text:?} to a valid timestamp"))
    })
}

/// Parses a series selector such as `up{job="api"}` into matchers.
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>, PromError> {
    let expr = promql_parser::parser::parse(text)
        .map_err(|e| PromError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
    let promql_parser::parser::Expr::VectorSelector(selector) = expr else {
        return Err(PromError::bad_data(format!("invalid parameter \"match[]\": {text:?} is not a series selector")));
    };
    let mut matchers = Vec::new();
    if let Some(name) = &selector.name {
        matchers.push(Matcher::equal(hubmon_model::METRIC_NAME, name.clone()));
    }
    for matcher in &selector.matchers.matchers {
        use promql_parser::label::MatchOp as Op;
        let op = match &matcher.op {
            Op::Equal => MatchOp::Equal,
            Op::NotEqual => MatchOp::NotEqual,
            Op::Re(_) => MatchOp::Regex,
            Op::NotRe(_) => MatchOp::NotRegex,
        };
        matchers.push(
            Matcher::new(matcher.name.clone(), op, matcher.value.clone())
                .map_err(|e| PromError::bad_data(format!("invalid parameter \"match[]\": {e}")))?,
        );
    }
    if matchers.iter().all(Matcher::matches_empty) {
        return Err(PromError::bad_data(
            "invalid parameter \"match[]\": match[] must contain at least one non-empty matcher",
        ));
    }
    Ok(matchers)
}

/// Series matching the selectors: `GET /api/v1/series?match[]=…&start=…&end=…`.
#[utoipa::path(get, path = "/api/v1/series", tag = "prometheus", params(
    ("match[]" = Vec<String>, Query, description = "Series selectors; at least one"),
    ("start" = Option<String>, Query), ("end" = Option<String>, Query),
), responses((status = 200, description = "Prometheus format: {status, data: [label sets]}"), (status = 400)))]
pub async fn series(State(app): State<AppState>, uri: axum::http::Uri) -> Result<Response, PromError> {
    let params = parse_params(uri.query())?;
    if params.selectors.is_empty() {
        return Err(PromError::bad_data("no match[] parameter provided"));
    }
    let store = app.metrics.clone();
    let found = crate::blocking::cpu_bound(move || {
        let mut sets = std::collections::BTreeSet::new();
        for matchers in &params.selectors {
            for series in store.select(matchers, params.start, params.end)? {
                sets.insert(series.labels);
            }
        }
        Ok::<_, hubmon_model::StoreError>(sets)
    })
    .await
    .map_err(|e| PromError::internal(e.to_string()))?
    .map_err(|e| PromError::internal(e.to_string()))?;
    Ok(success(found.into_iter().collect::<Vec<_>>()))
}

/// Label names: `GET /api/v1/labels`.
#[utoipa::path(get, path = "/api/v1/labels", tag = "prometheus", params(
    ("match[]" = Option<Vec<String>>, Query), ("start" = Option<String>, Query), ("end" = Option<String>, Query),
), responses((status = 200, description = "Prometheus format: {status, data: [names]}"), (status = 400)))]
pub async fn labels(State(app): State<AppState>, uri: axum::http::Uri) -> Result<Response, PromError> {
    let params = parse_params(uri.query())?;
    let store = app.metrics.clone();
    let names = crate::blocking::cpu_bound(move || {
        if params.selectors.is_empty() {
            return store.label_names(&[], params.start, params.end);
        }
        let mut names = std::collections::BTreeSet::new();
        for matchers in &params.selectors {
            names.extend(store.label_names(matchers, params.start, params.end)?);
        }
        Ok(names.into_iter().collect())
    })
    .await
    .map_err(|e| PromError::internal(e.to_string()))?
    .map_err(|e| PromError::internal(e.to_string()))?;
    Ok(success(names))
}

/// Values of one label: `GET /api/v1/label/{name}/values`.
#[utoipa::path(get, path = "/api/v1/label/{name}/values", tag = "prometheus", params(
    ("name" = String, Path), ("match[]" = Option<Vec<String>>, Query), ("start" = Option<String>, Query), ("end" = Option<String>, Query),
), responses((status = 200, description = "Prometheus format: {status, data: [values]}"), (status = 400)))]
pub async fn label_values(
    State(app): State<AppState>,
    Path(name): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, PromError> {
    if !hubmon_model::is_valid_label_name(&name) && name != hubmon_model::METRIC_NAME {
        return Err(PromError::bad_data(format!("invalid label name: {name:?}")));
    }
    let params = parse_params(uri.query())?;
    let store = app.metrics.clone();
    let values = crate::blocking::cpu_bound(move || {
        if params.selectors.is_empty() {
            return store.label_values(&name, &[], params.start, params.end);
        }
        let mut values = std::collections::BTreeSet::new();
        for matchers in &params.selectors {
            values.extend(store.label_values(&name, matchers, params.start, params.end)?);
        }
        Ok(values.into_iter().collect())
    })
    .await
    .map_err(|e| PromError::internal(e.to_string()))?
    .map_err(|e| PromError::internal(e.to_string()))?;
    Ok(success(values))
}

/// Metric metadata from scraped targets: `GET /api/v1/metadata?metric=&limit=`.
#[utoipa::path(get, path = "/api/v1/metadata", tag = "prometheus", params(
    ("metric" = Option<String>, Query), ("limit" = Option<usize>, Query),
), responses((status = 200, description = "Prometheus format: {status, data: {metric: [{type, help, unit}]}}")))]
pub async fn metadata(State(app): State<AppState>, uri: axum::http::Uri) -> Result<Response, PromError> {
    let mut metric = None;
    let mut limit = usize::MAX;
    for (key, value) in form_pairs(uri.query().unwrap_or("")) {
        match key.as_str() {
            "metric" => metric = Some(value),
            "limit" => limit = value.parse().map_err(|_| PromError::bad_data(format!("invalid limit {value:?}")))?,
            _ => {}
        }
    }
    let store = app.metadata.read().map_err(|_| PromError::internal("metadata lock poisoned"))?;
    let data: std::collections::BTreeMap<&String, Vec<&hubmon_ingest::exposition::Metadata>> = store
        .iter()
        .filter(|(name, _)| metric.as_ref().is_none_or(|m| m == *name))
        .take(limit)
        .map(|(name, meta)| (name, vec![meta]))
        .collect();
    Ok(success(data))
}

/// Parameters of `/api/v1/query` and `/api/v1/query_range`, from the query string and, for
/// POST, a form-encoded body, as Prometheus accepts them.
fn query_params(uri: &axum::http::Uri, body: &[u8]) -> std::collections::HashMap<String, String> {
    let mut params: std::collections::HashMap<String, String> =
        form_pairs(uri.query().unwrap_or("")).into_iter().collect();
    params.extend(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    params
}

/// A duration parameter: float seconds (`15`, `0.5`) or Prometheus syntax (`15s`, `1m`).
fn parse_step(text: &str, name: &str) -> Result<i64, PromError> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    text.parse::<hubmon_model::PromDuration>()
        .map(|d| i64::try_from(d.as_duration().as_millis()).unwrap_or(i64::MAX))
        .map_err(|_| {
            PromError::bad_data(format!("invalid parameter \"{name}\": cannot parse {text:?} to a valid duration"))
        })
}

fn required<'p>(params: &'p std::collections::HashMap<String, String>, name: &str) -> Result<&'p str, PromError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PromError::bad_data(format!("invalid parameter \"{name}\": missing")))
}

/// Formats a sample value the way Prometheus does (a string; `NaN`, `+Inf`, `-Inf`).
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{value}")
    }
}

fn point(time_ms: i64, value: serde_json::Value) -> serde_json::Value {
    let seconds = serde_json::Number::from_f64(time_ms as f64 / 1000.0)
        .map_or(serde_json::Value::Null, serde_json::Value::Number);
    serde_json::json!([seconds, value])
}

/// Query results written straight into the response body: a range query's answer can hold
/// millions of points, and building a JSON tree of them first doubled the time to answer.
mod body {
    use hubmon_model::{Labels, Series};

    /// Seconds as Prometheus writes them: `1700000000`, `1700000000.5`, `1700000000.123`.
    pub fn time(out: &mut String, ms: i64) {
        let (seconds, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
        out.push_str(itoa::Buffer::new().format(seconds));
        if millis != 0 {
            let digits = [b'0' + (millis / 100) as u8, b'0' + (millis / 10 % 10) as u8, b'0' + (millis % 10) as u8];
            let kept = if millis % 100 == 0 {
                1
            } else if millis % 10 == 0 {
                2
            } else {
                3
            };
            out.push('.');
            out.extend(digits[..kept].iter().map(|&d| d as char));
        }
    }

    pub fn value(out: &mut String, v: f64) {
        out.push('"');
        if v.is_nan() {
            out.push_str("NaN");
        } else if v == f64::INFINITY {
            out.push_str("+Inf");
        } else if v == f64::NEG_INFINITY {
            out.push_str("-Inf");
        } else {
            decimal(out, v);
        }
        out.push('"');
    }

    /// Go's `strconv.FormatFloat(v, 'f', -1, 64)`, as Prometheus writes values: the shortest
    /// digits that read back as `v`, never an exponent. ryu finds the digits several times
    /// faster than `{v}` (a large share of a big range query's time); they are then laid out
    /// without its exponent.
    fn decimal(out: &mut String, v: f64) {
        let mut buffer = ryu::Buffer::new();
        let text = buffer.format_finite(v);
        let Some((mantissa, exponent)) = text.split_once('e') else {
            out.push_str(text.strip_suffix(".0").unwrap_or(text));
            return;
        };
        let (sign, mantissa) = match mantissa.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", mantissa),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let point = whole.len() as i64 + exponent.parse::<i64>().unwrap_or(0);
        let digit_count = (whole.len() + fraction.len()) as i64;
        out.push_str(sign);
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(whole);
            out.push_str(fraction);
        } else if point >= digit_count {
            out.push_str(whole);
            out.push_str(fraction);
            out.extend(std::iter::repeat_n('0', (point - digit_count) as usize));
        } else {
            let digits: String = [whole, fraction].concat();
            let (left, right) = digits.split_at(point as usize);
            out.push_str(left);
            out.push('.');
            out.push_str(right);
        }
    }

    fn string(out: &mut String, text: &str) {
        // serde_json's escaping, without a serializer per label.
        out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()));
    }

    pub fn labels(out: &mut String, labels: &Labels) {
        out.push('{');
        for (i, (name, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(out, name);
            out.push(':');
            string(out, value);
        }
        out.push('}');
    }

    /// `{"status":"success","data":{"resultType":"matrix","result":[…]}}`.
    pub fn matrix(series: &[Series]) -> String {
        let points: usize = series.iter().map(|s| s.samples.len()).sum();
        let mut out = String::with_capacity(64 + series.len() * 128 + points * 28);
        out.push_str(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
        for (i, s) in series.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"metric":"#);
            labels(&mut out, &s.labels);
            out.push_str(r#","values":["#);
            for (j, p) in s.samples.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                out.push('[');
                time(&mut out, p.timestamp);
                out.push(',');
                value(&mut out, p.value);
                out.push(']');
            }
            out.push_str("]}");
        }
        out.push_str("]}}");
        out
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn times_and_values_are_written_like_prometheus() {
            let mut out = String::new();
            for ms in [1_700_000_000_000, 1_700_000_000_500, 1_700_000_000_123, 1_700_000_000_020, -1500] {
                super::time(&mut out, ms);
                out.push(' ');
            }
            assert_eq!(out, "1700000000 1700000000.5 1700000000.123 1700000000.02 -2.5 ");
            let mut out = String::new();
            for v in [1.0, 0.1, f64::NAN, f64::NEG_INFINITY, 1e21] {
                super::value(&mut out, v);
            }
            assert_eq!(out, r#""1""0.1""NaN""-Inf""1000000000000000000000""#);
        }

        /// Rust's `{}` for f64 is the shortest round-trip digits without an exponent, the
        /// same contract as Go's 'f' -1: the fast path must read back as the same number,
        /// with as many digits laid out the same way. (Where two shortest forms are equally
        /// close, e.g. `…872.25` as `…872.2` or `…872.3`, the last digit may differ.)
        #[test]
        fn fast_values_agree_with_the_standard_formatting() {
            let mut state = 0x9e37_79b9_7f4a_7c15_u64;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let mut cases = vec![0.0, -0.0, 1.0, -1.0, 0.5, 1e-7, 1.5e-7, 123456789.0, 1e15, 1e16, 1e17, 1.25e22];
            cases.extend([f64::MIN_POSITIVE, f64::MAX, f64::MIN, 5e-324, 0.1 + 0.2, 1.0 / 3.0]);
            for _ in 0..200_000 {
                let bits = next();
                let v = f64::from_bits(bits);
                if v.is_finite() {
                    cases.push(v);
                }
                // Values of the sizes metrics have, with few and many digits.
                let scale = 10f64.powi((bits % 40) as i32 - 20);
                cases.push((bits >> 11) as f64 / (1u64 << 53) as f64 * scale);
                cases.push(((bits >> 40) % 100_000) as f64 * scale);
            }
            for v in cases {
                let mut fast = String::new();
                super::value(&mut fast, v);
                let fast = fast.trim_matches('"');
                let standard = format!("{v}");
                assert_eq!(fast.parse::<f64>().map(f64::to_bits), Ok(v.to_bits()), "{v:e} written as {fast}");
                assert_eq!(fast.len(), standard.len(), "{v:e}: {fast} against {standard}");
                assert_eq!(fast.find('.'), standard.find('.'), "{v:e}: {fast} against {standard}");
            }
        }
    }
}

fn json_response(text: String) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn engine_error(error: hubmon_promql::Error) -> PromError {
    let kind = error.error_type();
    let status = match kind {
        "bad_data" => StatusCode::BAD_REQUEST,
        "execution" => StatusCode::UNPROCESSABLE_ENTITY,
        "timeout" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    PromError { status, kind, message: error.to_string() }
}

/// Longest query text accepted, so a pathological string cannot tie up the parser.
const MAX_QUERY_BYTES: usize = 64 * 1024;

async fn run_instant(app: AppState, uri: axum::http::Uri, body: Bytes) -> Result<Response, PromError> {
    let params = query_params(&uri, &body);
    let query = required(&params, "query")?.to_string();
    if query.len() > MAX_QUERY_BYTES {
        return Err(PromError::bad_data(format!("query is longer than {MAX_QUERY_BYTES} bytes")));
    }
    let time = match params.get("time").filter(|t| !t.is_empty()) {
        Some(text) => parse_time(text, "time")?,
        None => Timestamp::now().as_millis(),
    };
    let engine = app.query_engine.clone();
    let value = crate::blocking::cpu_bound(move || engine.instant(&query, time))
        .await
        .map_err(|e| PromError::internal(e.to_string()))?
        .map_err(engine_error)?;
    let result = match &value {
        hubmon_promql::Value::Scalar(t, v) => point(*t, format_value(*v).into()),
        hubmon_promql::Value::String(t, s) => point(*t, s.clone().into()),
        hubmon_promql::Value::Vector(samples) => samples
            .iter()
            .map(|(labels, v)| serde_json::json!({"metric": labels, "value": point(time, format_value(*v).into())}))
            .collect(),
        hubmon_promql::Value::Matrix(series) => series
            .iter()
            .map(|s| {
                let values: Vec<_> =
                    s.samples.iter().map(|p| point(p.timestamp, format_value(p.value).into())).collect();
                serde_json::json!({"metric": s.labels, "values": values})
            })
            .collect(),
    };
    Ok(success(serde_json::json!({"resultType": value.result_type(), "result": result})))
}

async fn run_range(app: AppState, uri: axum::http::Uri, body: Bytes) -> Result<Response, PromError> {
    let params = query_params(&uri, &body);
    let query = required(&params, "query")?.to_string();
    if query.len() > MAX_QUERY_BYTES {
        return Err(PromError::bad_data(format!("query is longer than {MAX_QUERY_BYTES} bytes")));
    }
    let start = parse_time(required(&params, "start")?, "start")?;
    let end = parse_time(required(&params, "end")?, "end")?;
    let step = parse_step(required(&params, "step")?, "step")?;
    if end < start {
        return Err(PromError::bad_data("invalid parameter \"end\": end timestamp must not be before start time"));
    }
    if step <= 0 {
        return Err(PromError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    let engine = app.query_engine.clone();
    // Writing the answer is part of the work: a big matrix is megabytes of JSON.
    let body = crate::blocking::cpu_bound(move || engine.range(&query, start, end, step).map(|m| body::matrix(&m)))
        .await
        .map_err(|e| PromError::internal(e.to_string()))?
        .map_err(engine_error)?;
    Ok(json_response(body))
}

/// Evaluates an instant query: `query`, optional `time` (RFC 3339 or epoch seconds).
#[utoipa::path(get, path = "/api/v1/query", tag = "prometheus", params(("query" = String, Query), ("time" = Option<String>, Query)),
    responses((status = 200, description = "Prometheus format: {status, data: {resultType, result}}"), (status = 400), (status = 422), (status = 503)))]
pub async fn query_get(State(app): State<AppState>, uri: axum::http::Uri) -> Result<Response, PromError> {
    run_instant(app, uri, Bytes::new()).await
}

/// The same as GET, with the parameters form-encoded in the body.
#[utoipa::path(post, path = "/api/v1/query", tag = "prometheus", request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Prometheus format"), (status = 400), (status = 422), (status = 503)))]
pub async fn query_post(State(app): State<AppState>, uri: axum::http::Uri, body: Bytes) -> Result<Response, PromError> {
    run_instant(app, uri, body).await
}

/// Evaluates a range query: `query`, `start`, `end`, `step`.
#[utoipa::path(get, path = "/api/v1/query_range", tag = "prometheus", params(
    ("query" = String, Query), ("start" = String, Query), ("end" = String, Query), ("step" = String, Query)),
    responses((status = 200, description = "Prometheus format: {status, data: {resultType: matrix, result}}"), (status = 400), (status = 422), (status = 503)))]
pub async fn query_range_get(State(app): State<AppState>, uri: axum::http::Uri) -> Result<Response, PromError> {
    run_range(app, uri, Bytes::new()).await
}

/// The same as GET, with the parameters form-encoded in the body.
#[utoipa::path(post, path = "/api/v1/query_range", tag = "prometheus", request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Prometheus format"), (status = 400), (status = 422), (status = 503)))]
pub async fn query_range_post(
    State(app): State<AppState>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Result<Response, PromError> {
    run_range(app, uri, body).await
}

/// Build information, as Prometheus reports its own (Grafana reads it to detect features).
#[utoipa::path(get, path = "/api/v1/status/buildinfo", tag = "prometheus", responses((status = 200, description = "Prometheus format")))]
pub async fn buildinfo() -> Response {
    success(serde_json::json!({
        "version": "2.42.0",
        "revision": env!("CARGO_PKG_VERSION"),
        "branch": "hubmon",
        "buildUser": "hubmon",
        "buildDate": "",
        "goVersion": "none (hubmon is written in Rust)",
    }))
}

async fn run_format(uri: axum::http::Uri, body: Bytes) -> Result<Response, PromError> {
    let params = query_params(&uri, &body);
    let query = required(&params, "query")?;
    if query.len() > MAX_QUERY_BYTES {
        return Err(PromError::bad_data(format!("query is longer than {MAX_QUERY_BYTES} bytes")));
    }
    let expr = promql_parser::parser::parse(query).map_err(PromError::bad_data)?;
    Ok(success(expr.prettify()))
}

/// Formats a PromQL expression (`query`) the way Prometheus's prettifier lays it out.
#[utoipa::path(get, path = "/api/v1/format_query", tag = "prometheus", params(("query" = String, Query)),
    responses((status = 200, description = "Prometheus format: {status, data: formatted query}"), (status = 400)))]
pub async fn format_query_get(uri: axum::http::Uri) -> Result<Response, PromError> {
    run_format(uri, Bytes::new()).await
}

/// The same as GET, with the parameters form-encoded in the body.
#[utoipa::path(post, path = "/api/v1/format_query", tag = "prometheus", request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Prometheus format"), (status = 400)))]
pub async fn format_query_post(uri: axum::http::Uri, body: Bytes) -> Result<Response, PromError> {
    run_format(uri, body).await
}
