//! Metric ingest over HTTP: remote_write and JSON push in, Prometheus metadata API out, with
//! the bad inputs the issue lists. Runs on SQLite (the state backend does not matter here).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Backend, TestServer, body};
use hubmon_ingest::remote_write::{Label, ProtoSample, TimeSeries, WriteRequest, encode};
use reqwest::Method;
use serde_json::{Value, json};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels.iter().map(|(n, v)| Label { name: n.to_string(), value: v.to_string() }).collect(),
        samples: samples.iter().map(|(t, v)| ProtoSample { timestamp: *t, value: *v }).collect(),
    }
}

async fn write(server: &TestServer, token: &str, body: Vec<u8>, content_type: &str) -> (u16, Value) {
    let response = server
        .with_token(Method::POST, "/api/v1/write", token)
        .header("content-type", content_type)
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body)
        .send()
        .await
        .unwrap();
    body_of(response).await
}

async fn body_of(response: reqwest::Response) -> (u16, Value) {
    body(response).await
}

async fn get(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    body(server.with_token(Method::GET, path, token).send().await.unwrap()).await
}

#[tokio::test]
async fn remote_write_stores_series_readable_through_the_prometheus_api() {
    let server = TestServer::start(Backend::Sqlite).await;
    let ingest = server.token_for_role("ingest").await;
    let viewer = server.token_for_role("viewer").await;
    let t = now_ms();
    let request = WriteRequest {
        timeseries: vec![
            series(
                &[("__name__", "http_requests_total"), ("job", "api"), ("instance", "web-1")],
                &[(t - 20_000, 1.0), (t - 10_000, 2.0)],
            ),
            series(&[("__name__", "http_requests_total"), ("job", "api"), ("instance", "web-2")], &[(t - 10_000, 5.0)]),
            series(&[("__name__", "up"), ("job", "db")], &[(t, 1.0)]),
        ],
    };
    let (status, error) = write(&server, &ingest, encode(&request), "application/x-protobuf").await;
    assert_eq!(status, 204, "{error}");

    let (status, found) =
        get(&server, &viewer, "/api/v1/series?match[]=http_requests_total{instance=~\"web-.*\"}").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["status"], "success");
    assert_eq!(found["data"].as_array().unwrap().len(), 2);
    assert_eq!(found["data"][0], json!({"__name__": "http_requests_total", "instance": "web-1", "job": "api"}));
    let (_, jobs) = get(&server, &viewer, "/api/v1/label/job/values").await;
    assert_eq!(jobs["data"], json!(["api", "db"]));
    let (_, names) = get(&server, &viewer, "/api/v1/labels").await;
    assert_eq!(names["data"], json!(["__name__", "instance", "job"]));

    // The ingest role writes but cannot read.
    let (status, _) = get(&server, &ingest, "/api/v1/series?match[]=up").await;
    assert_eq!(status, 403);
    // Prometheus-format errors on the Prometheus API.
    let (status, error) = get(&server, &viewer, "/api/v1/series?match[]=up{").await;
    assert_eq!((status, error["status"].as_str(), error["errorType"].as_str()), (400, Some("error"), Some("bad_data")));
    let (status, _) = get(&server, &viewer, "/api/v1/series").await;
    assert_eq!(status, 400);
    let (status, _) = get(&server, &viewer, "/api/v1/series?match[]={job=~\".*\"}").await;
    assert_eq!(status, 400, "a selector matching everything is refused like Prometheus does");
    server.stop().await;
}

#[tokio::test]
async fn bad_remote_write_bodies_are_clear_4xx_and_lose_nothing() {
    let server = TestServer::start_with(Backend::Sqlite, |config| config.http.max_body_bytes = 1 << 20).await;
    let ingest = server.token_for_role("ingest").await;
    let viewer = server.token_for_role("viewer").await;
    let t = now_ms();
    let good = WriteRequest { timeseries: vec![series(&[("__name__", "kept")], &[(t, 1.0)])] };
    assert_eq!(write(&server, &ingest, encode(&good), "application/x-protobuf").await.0, 204);

    let body = encode(&good);
    let cases: Vec<(u16, (u16, Value))> = vec![
        (415, write(&server, &ingest, body.clone(), "application/json").await),
        (400, write(&server, &ingest, b"definitely not snappy".to_vec(), "application/x-protobuf").await),
        (400, write(&server, &ingest, body[..body.len() - 4].to_vec(), "application/x-protobuf").await),
        (
            400,
            write(
                &server,
                &ingest,
                snap::raw::Encoder::new().compress_vec(&[0xff; 100]).unwrap(),
                "application/x-protobuf",
            )
            .await,
        ),
        (413, write(&server, &ingest, vec![0u8; 2 << 20], "application/x-protobuf").await),
        (
            413,
            write(
                &server,
                &ingest,
                snap::raw::Encoder::new().compress_vec(&vec![0u8; 20 << 20]).unwrap(),
                "application/x-protobuf",
            )
            .await,
        ),
    ];
    for (expected, (status, error)) in cases {
        assert_eq!(status, expected, "{error}");
        assert!(!error["error"]["message"].as_str().unwrap_or_default().is_empty(), "{error}");
    }

    // One bad series among good ones: the good ones are stored, the answer names the bad one.
    let mixed = WriteRequest {
        timeseries: vec![
            series(&[("__name__", "mixed_ok")], &[(t, 1.0)]),
            series(&[("__name__", "mixed"), ("bad-label", "x")], &[(t, 1.0)]),
            series(&[("job", "no name")], &[(t, 1.0)]),
            series(&[("__name__", "mixed_dup"), ("a", "1"), ("a", "2")], &[(t, 1.0)]),
            series(&[("__name__", "mixed_future")], &[(t + 86_400_000, 1.0)]),
            series(&[("__name__", "mixed_ancient")], &[(t - 400 * 86_400_000, 1.0)]),
        ],
    };
    let (status, error) = write(&server, &ingest, encode(&mixed), "application/x-protobuf").await;
    assert_eq!(status, 400);
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("stored 1 samples, refused 5"), "{message}");
    let (_, found) = get(&server, &viewer, "/api/v1/label/__name__/values").await;
    assert_eq!(found["data"], json!(["kept", "mixed_ok"]), "nothing accepted before was lost, nothing bad was stored");
    server.stop().await;
}

#[tokio::test]
async fn json_push_stores_good_metrics_and_names_bad_ones() {
    let server = TestServer::start(Backend::Sqlite).await;
    let ingest = server.token_for_role("ingest").await;
    let viewer = server.token_for_role("viewer").await;
    let push = |payload: Value| {
        let request = server.with_token(Method::POST, "/api/v1/monitoring/metrics", &ingest).json(&payload);
        async move { body(request.send().await.unwrap()).await }
    };
    let (status, result) =
        push(json!({"name": "backup_duration_seconds", "labels": {"db": "main"}, "value": 12.5})).await;
    assert_eq!((status, result["accepted"].as_u64()), (200, Some(1)), "{result}");
    let (status, result) = push(json!([
        {"name": "queue_depth", "value": 3},
        {"name": "bad name", "value": 1},
        {"name": "x", "labels": {"__name__": "y"}, "value": 1},
        {"name": "far_future", "value": 1, "timestamp": 4_000_000_000u64},
    ]))
    .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!((result["accepted"].as_u64(), result["rejected"].as_u64()), (Some(1), Some(3)), "{result}");
    assert_eq!(result["rejections"][0]["index"], 1);
    let (status, result) = push(json!({"name": "only_bad", "labels": {"1x": "y"}, "value": 1})).await;
    assert_eq!(status, 422, "{result}");
    let (status, error) = push(json!({"name": "a", "value": "NaN"})).await;
    assert_eq!(status, 422, "{error}");
    let (_, names) = get(&server, &viewer, "/api/v1/label/__name__/values").await;
    assert_eq!(names["data"], json!(["backup_duration_seconds", "queue_depth"]));
    server.stop().await;
}

#[tokio::test]
async fn host_metrics_are_collected_into_the_store_by_default() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.host.enabled = true;
        config.host.interval = hubmon_model::PromDuration::from_secs(1);
    })
    .await;
    let viewer = server.token_for_role("viewer").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut names = Value::Null;
    while std::time::Instant::now() < deadline {
        names = get(&server, &viewer, "/api/v1/label/__name__/values").await.1;
        if names["data"].as_array().is_some_and(|n| n.iter().any(|v| v == "hubmon_memory_usage_percent")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for expected in [
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_load1",
        "hubmon_cpu_usage_percent",
        "hubmon_disk_usage_percent",
    ] {
        assert!(names["data"].as_array().unwrap().iter().any(|v| v == expected), "{expected} missing: {names}");
    }
    let (_, jobs) = get(&server, &viewer, "/api/v1/label/job/values?match[]=node_load1").await;
    assert_eq!(jobs["data"], json!(["node"]));
    server.stop().await;
}

#[tokio::test]
async fn hubmons_own_requests_become_api_metrics_in_its_store() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.http.record_interval = hubmon_model::PromDuration::from_secs(1);
    })
    .await;
    let viewer = server.token_for_role("viewer").await;
    for _ in 0..3 {
        get(&server, &viewer, "/api/v1/users/1").await; // 403: counted with its status
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, found) = get(
            &server,
            &viewer,
            "/api/v1/series?match[]=http_requests_total{service=\"hubmon\",route=\"/api/v1/users/{id}\"}",
        )
        .await;
        if found["data"].as_array().is_some_and(|a| !a.is_empty()) {
            assert_eq!(found["data"][0]["status"], "403");
            assert_eq!(found["data"][0]["method"], "GET");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no http_requests_total for hubmon's own route: {found}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, buckets) = get(
        &server,
        &viewer,
        "/api/v1/label/le/values?match[]=http_request_duration_seconds_bucket{service=\"hubmon\"}",
    )
    .await;
    assert!(buckets["data"].as_array().unwrap().iter().any(|v| v == "+Inf"), "{buckets}");
    let (_, keys) = get(&server, &viewer, "/api/v1/series?match[]=hubmon_api_active_keys{service=\"hubmon\"}").await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 1, "{keys}");
    server.stop().await;
}
