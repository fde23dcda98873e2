//! PromQL over HTTP: the Prometheus query API on data written through remote_write, and the
//! real `promtool` (Prometheus 2.42, from Debian) querying hubmon.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Backend, TestServer, body};
use hubmon_ingest::remote_write::{Label, ProtoSample, TimeSeries, WriteRequest, encode};
use reqwest::Method;
use serde_json::{Value, json};

fn series(labels: &[(&str, &str)], samples: Vec<(i64, f64)>) -> TimeSeries {
    TimeSeries {
        labels: labels.iter().map(|(n, v)| Label { name: n.to_string(), value: v.to_string() }).collect(),
        samples: samples.into_iter().map(|(t, v)| ProtoSample { timestamp: t, value: v }).collect(),
    }
}

/// Two counters at 10 s for an hour ending at `end`: 1/s and 2/s.
async fn load(server: &TestServer, end: i64) {
    let ingest = server.token_for_role("ingest").await;
    let points = |rate: f64| (0..=360).map(|i| (end - 3_600_000 + i * 10_000, (i as f64) * 10.0 * rate)).collect();
    let request = WriteRequest {
        timeseries: vec![
            series(&[("__name__", "requests_total"), ("job", "api"), ("instance", "a")], points(1.0)),
            series(&[("__name__", "requests_total"), ("job", "api"), ("instance", "b")], points(2.0)),
        ],
    };
    let response = server
        .with_token(Method::POST, "/api/v1/write", &ingest)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(encode(&request))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn instant_and_range_queries_answer_in_prometheus_format() {
    let server = TestServer::start(Backend::Sqlite).await;
    let viewer = server.token_for_role("viewer").await;
    let end = now_s() * 1000;
    load(&server, end).await;
    let query = |path: String| {
        let request = server.with_token(Method::GET, &path, &viewer);
        async move { body(request.send().await.unwrap()).await }
    };
    let t = end / 1000;
    let (status, answer) = query(format!("/api/v1/query?query=sum(rate(requests_total[5m]))&time={t}")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["resultType"], "vector");
    let value: f64 = answer["data"]["result"][0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!((value - 3.0).abs() < 1e-9, "{answer}");
    assert_eq!(answer["data"]["result"][0]["value"][0], json!(t as f64));

    let (_, answer) = query(format!("/api/v1/query?query=requests_total{{instance=%22b%22}}&time={t}")).await;
    assert_eq!(
        answer["data"]["result"][0]["metric"],
        json!({"__name__": "requests_total", "instance": "b", "job": "api"})
    );
    assert_eq!(answer["data"]["result"][0]["value"][1], "7200");

    let (status, answer) =
        query(format!("/api/v1/query_range?query=rate(requests_total[1m])&start={}&end={t}&step=60s", t - 600)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["resultType"], "matrix");
    let result = answer["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    assert_eq!(result[0]["metric"], json!({"instance": "a", "job": "api"}));
    assert_eq!(result[0]["values"].as_array().unwrap().len(), 11);

    // POST with a form body, as Grafana sends it.
    let response = server
        .with_token(Method::POST, "/api/v1/query", &viewer)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("query=count(requests_total)&time={t}"))
        .send()
        .await
        .unwrap();
    let (_, answer) = body(response).await;
    assert_eq!(answer["data"]["result"][0]["value"][1], "2");

    // Errors in Prometheus's shape, with its error types.
    for (path, status, kind) in [
        ("/api/v1/query?query=sum(".to_string(), 400, "bad_data"),
        ("/api/v1/query?query=nosuchfunction(up)".to_string(), 400, "bad_data"),
        ("/api/v1/query".to_string(), 400, "bad_data"),
        (format!("/api/v1/query_range?query=up&start={t}&end={}&step=15s", t - 10), 400, "bad_data"),
        (format!("/api/v1/query_range?query=up&start={}&end={t}&step=0", t - 10), 400, "bad_data"),
        (format!("/api/v1/query_range?query=up&start=0&end={t}&step=1s"), 400, "bad_data"),
        ("/api/v1/query?query=up{job=~%22(%22}".to_string(), 400, "bad_data"),
    ] {
        let (got, answer): (u16, Value) = query(path.clone()).await;
        assert_eq!((got, answer["errorType"].as_str()), (status, Some(kind)), "{path}: {answer}");
        assert_eq!(answer["status"], "error");
    }
    // Nonsense never panics the server.
    for junk in ["%00", "))))", "sum by (", "{}", "a[", "1 +", "rate(x[-5m])", "x offset", "@", "\u{1F600}"] {
        let encoded: String = form_urlencoded::byte_serialize(junk.as_bytes()).collect();
        let (got, _) = query(format!("/api/v1/query?query={encoded}")).await;
        assert!(got == 400 || got == 200 || got == 422, "{junk}: {got}");
    }
    let (status, _) = query("/healthz".into()).await;
    assert_eq!(status, 200);
    server.stop().await;
}

// The server runs on this test's runtime while promtool blocks a thread: give it two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_queries_hubmon() {
    let server = TestServer::start(Backend::Sqlite).await;
    let viewer = server.token_for_role("viewer").await;
    let end = now_s() * 1000;
    load(&server, end).await;
    // promtool 2.42 has no bearer-token flag; it sends Basic auth from the URL.
    let url = server.base.replacen("http://", &format!("http://promtool:{viewer}@"), 1);
    let run = |args: Vec<String>| {
        let output = std::process::Command::new("promtool").args(args).output().unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}); install it with `source .ci/services.sh` (apt-get install prometheus)")
        });
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let (ok, out) = run(vec!["query".into(), "instant".into(), url.clone(), "sum(requests_total)".into()]);
    assert!(ok, "{out}");
    assert!(out.contains("=> 10800"), "{out}");
    let t = end / 1000;
    let (ok, out) = run(vec![
        "query".into(),
        "range".into(),
        format!("--start={}", t - 120),
        format!("--end={t}"),
        "--step=60s".into(),
        url,
        "requests_total{instance=\"a\"}".into(),
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("3600 @[") && out.contains("3480 @["), "{out}");
    server.stop().await;
}

#[tokio::test]
async fn format_query_lays_out_promql_like_prometheus() {
    let server = TestServer::start(Backend::Sqlite).await;
    let viewer = server.token_for_role("viewer").await;
    let (status, answer) = body(
        server
            .with_token(Method::GET, "/api/v1/format_query?query=sum%20by(job)(rate(x%5B5m%5D))", &viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!({"status": "success", "data": "sum by (job) (rate(x[5m]))"}));
    let response = server
        .with_token(Method::POST, "/api/v1/format_query", &viewer)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("query=sum(")
        .send()
        .await
        .unwrap();
    let (status, answer) = body(response).await;
    assert_eq!((status, answer["errorType"].as_str()), (400, Some("bad_data")), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_metrics_reports_hosts_and_api_now_and_over_time() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.host.enabled = true;
        config.host.interval = hubmon_model::PromDuration::from_secs(1);
        config.http.record_interval = hubmon_model::PromDuration::from_secs(1);
    })
    .await;
    let viewer = server.token_for_role("viewer").await;
    // Rates need two host samples and some recorded API traffic.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let answer = loop {
        let _ = server.with_token(Method::GET, "/api/v1/query?query=nosuch(", &viewer).send().await.unwrap();
        let (status, answer) =
            body(server.with_token(Method::GET, "/api/v1/monitoring/metrics", &viewer).send().await.unwrap()).await;
        assert_eq!(status, 200, "{answer}");
        let ready = answer["hosts"][0]["cpu"]["usage_percent"].is_number()
            && answer["api"].as_array().is_some_and(|a| a.iter().any(|s| s["requests"].as_f64() > Some(0.0)))
            && answer["hosts"][0]["network"].is_array();
        if ready {
            break answer;
        }
        assert!(std::time::Instant::now() < deadline, "host and API figures never appeared: {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let host = &answer["hosts"][0];
    let cpu = host["cpu"]["usage_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{answer}");
    assert!(host["cpu"]["cores"].as_f64().unwrap() >= 1.0);
    let memory = host["memory"]["usage_percent"].as_f64().unwrap();
    assert!(memory > 0.0 && memory < 100.0, "{answer}");
    assert!(host["memory"]["total_bytes"].as_f64().unwrap() > 1e8);
    let root = host["disks"].as_array().unwrap().iter().find(|d| d["mountpoint"] == "/").expect("the root mount");
    assert!(root["size_bytes"].as_f64().unwrap() > 0.0 && root["usage_percent"].is_number(), "{answer}");
    assert!(host["processes"]["count"].as_f64().unwrap() > 1.0);
    assert!(host["load"]["load1"].is_number());
    let api = answer["api"].as_array().unwrap().iter().find(|s| s["service"] == "hubmon").unwrap();
    for field in ["requests_per_second", "error_rate_percent", "avg_latency_ms", "p95_latency_ms"] {
        assert!(api[field].is_number(), "{field}: {answer}");
    }
    assert!(api["active_api_keys"].as_f64().unwrap() >= 1.0, "{answer}");

    let (status, history) = body(
        server.with_token(Method::GET, "/api/v1/monitoring/metrics?range=2m&step=10s", &viewer).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["step_seconds"], 10.0);
    let cpu = history["series"]["cpu.usage_percent"].as_array().unwrap();
    assert!(!cpu.is_empty() && cpu[0]["labels"]["instance"].is_string(), "{history}");
    assert!(!cpu[0]["values"].as_array().unwrap().is_empty());

    for (path, want) in [
        ("/api/v1/monitoring/metrics?range=1d&step=1s", 422),
        ("/api/v1/monitoring/metrics?range=banana", 400),
        ("/api/v1/monitoring/metrics?nosuch=1", 400),
    ] {
        let (status, answer) = body(server.with_token(Method::GET, path, &viewer).send().await.unwrap()).await;
        assert_eq!(status, want, "{path}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
    server.stop().await;
}
