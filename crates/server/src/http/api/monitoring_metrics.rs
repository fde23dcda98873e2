//! `GET /api/v1/monitoring/metrics`, the product summary's endpoint: the hosts' and the API's
//! current figures as one readable document, or with `?range=1h&step=60s` the same figures as
//! time series for charts.
//!
//! Every figure is a PromQL expression over the metrics store, so this endpoint shows exactly
//! what a rule or a Grafana panel written with the same expression would, and hosts scraped
//! from node_exporter (`job="node"`) appear beside the built-in collector's.

use std::collections::BTreeMap;

use axum::extract::State;
use hubmon_model::{Labels, PromDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Json as JsonBody, Query};

/// One figure: where it goes in the document, and the expression that computes it. `key`
/// names the label that tells the figure's rows apart (a host, a mount, a device, a service).
struct Figure {
    section: &'static str,
    name: &'static str,
    key: &'static [&'static str],
    expr: &'static str,
}

/// Filesystems that are not disks: their usage means nothing to an operator.
macro_rules! real_fs {
    () => {
        r#"job="node",fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs|proc|sysfs|cgroup2?|nsfs|fuse.*""#
    };
}

const FIGURES: &[Figure] = &[
    Figure {
        section: "cpu",
        name: "usage_percent",
        key: &["instance"],
        expr: r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{job="node",mode="idle"}[1m])))"#,
    },
    Figure {
        section: "cpu",
        name: "cores",
        key: &["instance"],
        expr: r#"count by (instance) (node_cpu_seconds_total{job="node",mode="idle"})"#,
    },
    Figure {
        section: "memory",
        name: "total_bytes",
        key: &["instance"],
        expr: r#"max by (instance) (node_memory_MemTotal_bytes{job="node"})"#,
    },
    Figure {
        section: "memory",
        name: "available_bytes",
        key: &["instance"],
        expr: r#"max by (instance) (node_memory_MemAvailable_bytes{job="node"})"#,
    },
    Figure {
        section: "memory",
        name: "usage_percent",
        key: &["instance"],
        expr: r#"100 * (1 - max by (instance) (node_memory_MemAvailable_bytes{job="node"}) / max by (instance) (node_memory_MemTotal_bytes{job="node"}))"#,
    },
    Figure {
        section: "memory",
        name: "swap_used_bytes",
        key: &["instance"],
        expr: r#"max by (instance) (node_memory_SwapTotal_bytes{job="node"} - node_memory_SwapFree_bytes{job="node"})"#,
    },
    Figure {
        section: "disks",
        name: "size_bytes",
        key: &["instance", "mountpoint"],
        expr: concat!("max by (instance, mountpoint) (node_filesystem_size_bytes{", real_fs!(), "})"),
    },
    Figure {
        section: "disks",
        name: "avail_bytes",
        key: &["instance", "mountpoint"],
        expr: concat!("max by (instance, mountpoint) (node_filesystem_avail_bytes{", real_fs!(), "})"),
    },
    Figure {
        section: "disks",
        name: "usage_percent",
        key: &["instance", "mountpoint"],
        expr: concat!(
            "100 * (1 - max by (instance, mountpoint) (node_filesystem_avail_bytes{",
            real_fs!(),
            "}) / max by (instance, mountpoint) (node_filesystem_size_bytes{",
            real_fs!(),
            "} > 0))"
        ),
    },
    Figure {
        section: "network",
        name: "receive_bytes_per_second",
        key: &["instance", "device"],
        expr: r#"sum by (instance, device) (rate(node_network_receive_bytes_total{job="node",device!="lo"}[1m]))"#,
    },
    Figure {
        section: "network",
        name: "transmit_bytes_per_second",
        key: &["instance", "device"],
        expr: r#"sum by (instance, device) (rate(node_network_transmit_bytes_total{job="node",device!="lo"}[1m]))"#,
    },
    Figure {
        section: "processes",
        name: "count",
        key: &["instance"],
        expr: r#"max by (instance) (hubmon_processes{job="node"})"#,
    },
    Figure {
        section: "processes",
        name: "running",
        key: &["instance"],
        expr: r#"max by (instance) (node_procs_running{job="node"})"#,
    },
    Figure {
        section: "load",
        name: "load1",
        key: &["instance"],
        expr: r#"max by (instance) (node_load1{job="node"})"#,
    },
    Figure {
        section: "load",
        name: "load5",
        key: &["instance"],
        expr: r#"max by (instance) (node_load5{job="node"})"#,
    },
    Figure {
        section: "load",
        name: "load15",
        key: &["instance"],
        expr: r#"max by (instance) (node_load15{job="node"})"#,
    },
    Figure {
        section: "api",
        name: "requests",
        key: &["service"],
        expr: "sum by (service) (increase(http_requests_total[5m]))",
    },
    Figure {
        section: "api",
        name: "requests_per_second",
        key: &["service"],
        expr: "sum by (service) (rate(http_requests_total[5m]))",
    },
    Figure {
        section: "api",
        name: "error_rate_percent",
        key: &["service"],
        expr: r#"100 * (sum by (service) (rate(http_requests_total{status=~"5.."}[5m])) or sum by (service) (rate(http_requests_total[5m])) * 0) / sum by (service) (rate(http_requests_total[5m]))"#,
    },
    Figure {
        section: "api",
        name: "avg_latency_ms",
        key: &["service"],
        expr: "1000 * sum by (service) (rate(http_request_duration_seconds_sum[5m])) / sum by (service) (rate(http_request_duration_seconds_count[5m]))",
    },
    Figure {
        section: "api",
        name: "p95_latency_ms",
        key: &["service"],
        expr: "1000 * histogram_quantile(0.95, sum by (service, le) (rate(http_request_duration_seconds_bucket[5m])))",
    },
    Figure {
        section: "api",
        name: "active_api_keys",
        key: &["service"],
        expr: "sum by (service) (hubmon_api_active_keys)",
    },
];

/// The sections that describe a host; the others describe a service.
const HOST_SECTIONS: &[&str] = &["cpu", "memory", "disks", "network", "processes", "load"];

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsParams {
    /// Evaluation time for the current figures (RFC 3339 or epoch seconds); default now.
    #[param(value_type = Option<String>)]
    time: Option<Timestamp>,
    /// Return time series covering this much history, ending at `time` (e.g. `1h`).
    #[param(value_type = Option<String>)]
    range: Option<PromDuration>,
    /// Resolution of the series (default: `range` / 60, at least 15 s).
    #[param(value_type = Option<String>)]
    step: Option<PromDuration>,
    /// Only this host (the `instance` label).
    instance: Option<String>,
}

/// Most points one figure may have, like Prometheus's limit for a range query.
const MAX_POINTS: i64 = 11_000;

/// Current host and API figures (`?range=` for time series).
#[utoipa::path(get, path = "/api/v1/monitoring/metrics", tag = "monitoring", params(MetricsParams),
    responses((status = 200, description = "`{time, hosts: [{instance, cpu, memory, disks, network, processes, load}], api: [{service, …}]}`; with `range`: `{start, end, step, series: {\"cpu.usage_percent\": [{labels, values: [[t, v]]}]}}`"),
        (status = 400, description = "bad range, step or time"), (status = 422, description = "too many points")))]
pub async fn monitoring_metrics(
    State(app): State<AppState>,
    Query(params): Query<MetricsParams>,
) -> Result<JsonBody<Json>, ApiError> {
    let time = params.time.unwrap_or_else(Timestamp::now).as_millis();
    let instance = params.instance.clone();
    let engine = app.query_engine.clone();
    match params.range {
        None => {
            let document = tokio::task::spawn_blocking(move || current(&engine, time, instance.as_deref()))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            Ok(JsonBody(document))
        }
        Some(range) => {
            let range_ms = duration_ms(range);
            if range_ms <= 0 {
                return Err(ApiError::bad_request("range must be positive, such as 1h"));
            }
            let step_ms = params.step.map(duration_ms).unwrap_or_else(|| (range_ms / 60).max(15_000));
            if step_ms <= 0 {
                return Err(ApiError::bad_request("step must be positive, such as 60s"));
            }
            if range_ms / step_ms > MAX_POINTS {
                return Err(ApiError::unprocessable(format!(
                    "range / step would give {} points per series, more than {MAX_POINTS}; use a larger step",
                    range_ms / step_ms
                )));
            }
            let start = time - range_ms;
            let document =
                tokio::task::spawn_blocking(move || history(&engine, start, time, step_ms, instance.as_deref()))
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))??;
            Ok(JsonBody(document))
        }
    }
}

fn duration_ms(duration: PromDuration) -> i64 {
    i64::try_from(duration.as_duration().as_millis()).unwrap_or(i64::MAX)
}

fn query_error(figure: &Figure, error: hubmon_promql::Error) -> ApiError {
    match error.error_type() {
        "execution" | "timeout" => ApiError::unprocessable(format!("{}.{}: {error}", figure.section, figure.name)),
        _ => ApiError::internal(format!("{}.{}: {error}", figure.section, figure.name)),
    }
}

fn wanted(labels: &Labels, instance: Option<&str>, figure: &Figure) -> bool {
    match instance {
        Some(want) if figure.key.first() == Some(&"instance") => labels.get("instance") == Some(want),
        _ => true,
    }
}

/// A JSON number, or null where the value has none (a 0/0 error rate, say).
fn number(value: f64) -> Json {
    serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number)
}

/// Rows keyed by the figure's key labels, each a map of figure name → value.
type Rows = BTreeMap<Vec<String>, Map<String, Json>>;

fn current(engine: &hubmon_promql::Engine, time: i64, instance: Option<&str>) -> Result<Json, ApiError> {
    // section → key values → fields
    let mut sections: BTreeMap<&str, Rows> = BTreeMap::new();
    for figure in FIGURES {
        let value = engine.instant(figure.expr, time).map_err(|e| query_error(figure, e))?;
        let hubmon_promql::Value::Vector(samples) = value else { continue };
        for (labels, value) in samples.iter().filter(|(labels, _)| wanted(labels, instance, figure)) {
            let key: Vec<String> = figure.key.iter().map(|k| labels.get(k).unwrap_or_default().to_string()).collect();
            let row = sections.entry(figure.section).or_default().entry(key.clone()).or_default();
            for (name, value) in figure.key.iter().zip(&key) {
                row.insert((*name).to_string(), Json::String(value.clone()));
            }
            row.insert(figure.name.to_string(), number(*value));
        }
    }

    // Hosts: one object per instance, with cpu/memory/... inside and disks/network as lists.
    let mut hosts: BTreeMap<String, Map<String, Json>> = BTreeMap::new();
    for section in HOST_SECTIONS {
        for (key, mut row) in sections.remove(section).unwrap_or_default() {
            let host = hosts.entry(key[0].clone()).or_default();
            host.insert("instance".into(), Json::String(key[0].clone()));
            row.remove("instance");
            match *section {
                "disks" | "network" => {
                    let list = host.entry(*section).or_insert_with(|| Json::Array(Vec::new()));
                    if let Json::Array(items) = list {
                        items.push(Json::Object(row));
                    }
                }
                _ => {
                    host.insert((*section).to_string(), Json::Object(row));
                }
            }
        }
    }
    let api: Vec<Json> = sections.remove("api").unwrap_or_default().into_values().map(Json::Object).collect();
    Ok(serde_json::json!({
        "time": Timestamp::from_millis(time),
        "window": "5m",
        "hosts": hosts.into_values().map(Json::Object).collect::<Vec<_>>(),
        "api": api,
    }))
}

#[derive(Serialize)]
struct SeriesOut {
    labels: BTreeMap<String, String>,
    values: Vec<(f64, Json)>,
}

fn history(
    engine: &hubmon_promql::Engine,
    start: i64,
    end: i64,
    step: i64,
    instance: Option<&str>,
) -> Result<Json, ApiError> {
    let mut series = Map::new();
    for figure in FIGURES {
        let matrix = engine.range(figure.expr, start, end, step).map_err(|e| query_error(figure, e))?;
        let rows: Vec<SeriesOut> = matrix
            .iter()
            .filter(|s| wanted(&s.labels, instance, figure))
            .map(|s| SeriesOut {
                labels: figure
                    .key
                    .iter()
                    .map(|k| (k.to_string(), s.labels.get(k).unwrap_or_default().into()))
                    .collect(),
                values: s.samples.iter().map(|p| (p.timestamp as f64 / 1000.0, number(p.value))).collect(),
            })
            .collect();
        let rows = serde_json::to_value(rows).map_err(|e| ApiError::internal(e.to_string()))?;
        series.insert(format!("{}.{}", figure.section, figure.name), rows);
    }
    Ok(serde_json::json!({
        "start": Timestamp::from_millis(start),
        "end": Timestamp::from_millis(end),
        "step_seconds": step as f64 / 1000.0,
        "series": series,
    }))
}
