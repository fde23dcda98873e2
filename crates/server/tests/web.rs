//! The embedded dashboard and its live endpoints, over HTTP against a real server: files with
//! their cache headers and precompressed variants, deep links, the API never shadowed, the
//! overview summary and its event stream (which must not hold up shutdown).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Backend, TestServer, body};
use reqwest::{Method, header};
use serde_json::Value;

fn entry_script(html: &str) -> String {
    let start = html.find("/assets/").unwrap();
    let end = start + html[start..].find('"').unwrap();
    let path = &html[start..end];
    assert!(path.ends_with(".js"), "the first asset in index.html should be the entry script: {path}");
    path.to_string()
}

#[tokio::test]
async fn dashboard_files_carry_cache_headers_and_precompressed_variants() {
    let server = TestServer::start(Backend::Sqlite).await;
    let index = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()[header::CACHE_CONTROL], "no-cache");
    assert!(index.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    let html = index.text().await.unwrap();
    assert!(html.contains(r#"<div id="root">"#), "{html}");
    let script = entry_script(&html);

    let plain = server.client.get(server.url(&script)).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
    assert!(plain.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript"));
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    let etag = plain.headers()[header::ETAG].clone();
    let plain_len = plain.bytes().await.unwrap().len();

    let gzip = server.client.get(server.url(&script)).header(header::ACCEPT_ENCODING, "gzip").send().await.unwrap();
    assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gzip.headers()[header::VARY], "accept-encoding");
    let gzipped = gzip.bytes().await.unwrap();
    assert_eq!(&gzipped[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(gzipped.len() * 2 < plain_len, "{} gzipped vs {plain_len}", gzipped.len());

    let brotli =
        server.client.get(server.url(&script)).header(header::ACCEPT_ENCODING, "gzip, br").send().await.unwrap();
    assert_eq!(brotli.headers()[header::CONTENT_ENCODING], "br");
    let refused =
        server.client.get(server.url(&script)).header(header::ACCEPT_ENCODING, "br;q=0, gzip").send().await.unwrap();
    assert_eq!(refused.headers()[header::CONTENT_ENCODING], "gzip");

    let again = server.client.get(server.url(&script)).header(header::IF_NONE_MATCH, etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    server.stop().await;
}

#[tokio::test]
async fn deep_links_get_the_app_and_missing_files_a_404() {
    let server = TestServer::start(Backend::Sqlite).await;
    for path in ["/system?range=6h", "/settings", "/logs/some/deep/link", "/api-traffic"] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.text().await.unwrap().contains(r#"<div id="root">"#), "{path}");
    }
    for path in ["/assets/missing.js", "/favicon.ico", "/robots.txt"] {
        let (status, value) = body(server.client.get(server.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 404, "{path}: {value}");
        assert_eq!(value["error"]["code"], "not_found", "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_dashboard_never_shadows_the_api() {
    let server = TestServer::start(Backend::Sqlite).await;
    for path in ["/api/v1/nothing", "/api", "/loki/api/v1/nothing", "/metrics/x"] {
        let (status, value) = body(server.client.get(server.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 404, "{path}: {value}");
        assert_eq!(value["error"]["code"], "not_found", "{path}");
    }
    let (status, _) = body(server.client.get(server.url("/metrics")).send().await.unwrap()).await;
    assert_eq!(status, 401, "/metrics keeps its authentication");
    let (status, value) = body(server.client.post(server.url("/system")).send().await.unwrap()).await;
    assert_eq!(status, 404, "only GET and HEAD reach the dashboard: {value}");
    server.stop().await;
}

#[tokio::test]
async fn summary_reports_the_host_the_api_and_every_module() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.host.enabled = true;
        config.host.interval = hubmon_model::PromDuration(Duration::from_secs(1));
    })
    .await;
    let token = server.admin_token().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let summary = loop {
        let (status, summary) =
            body(server.with_token(Method::GET, "/api/v1/monitoring/summary", &token).send().await.unwrap()).await;
        assert_eq!(status, 200, "{summary}");
        let host = &summary["host"];
        if host["state"] == "available" && host["cpu_percent"].is_number() && host["memory_percent"].is_number() {
            break summary;
        }
        assert!(tokio::time::Instant::now() < deadline, "no host figures after 20 s: {summary}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let host = &summary["host"];
    let memory = host["memory_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&memory), "{summary}");
    assert!(host["cpu_cores"].as_f64().unwrap() >= 1.0, "{summary}");
    assert_eq!(summary["api"]["state"], "available");
    assert_eq!(summary["health"]["state"], "available", "{summary}");
    assert!(["healthy", "degraded", "unhealthy", "unknown"].contains(&summary["health"]["status"].as_str().unwrap()));
    assert!(summary["alerts"]["critical"].is_u64(), "{summary}");
    assert!(summary["logs"]["errors_5m"].is_u64(), "{summary}");
    assert!(summary["notifications"]["failed_24h"].is_u64(), "{summary}");
    let (status, _) = body(server.request(Method::GET, "/api/v1/monitoring/summary").send().await.unwrap()).await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test]
async fn summary_counts_log_errors_of_the_last_five_minutes() {
    let server = TestServer::start(Backend::Sqlite).await;
    let ingest = server.token_for_role("ingest").await;
    let viewer = server.token_for_role("viewer").await;
    let now = hubmon_model::Timestamp::now().as_millis();
    let lines = serde_json::json!([
        {"level": "error", "message": "disk full", "timestamp": now - 1_000},
        {"level": "critical", "message": "db down", "timestamp": now - 2_000},
        {"level": "warning", "message": "slow", "timestamp": now - 3_000},
        {"level": "error", "message": "long ago", "timestamp": now - 600_000},
    ]);
    let response = server.with_token(Method::POST, "/api/v1/logs", &ingest).json(&lines).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    // The summary may be cached for one interval.
    tokio::time::sleep(hubmon::monitor::SUMMARY_INTERVAL).await;
    let (_, summary) =
        body(server.with_token(Method::GET, "/api/v1/monitoring/summary", &viewer).send().await.unwrap()).await;
    assert_eq!(summary["logs"]["errors_5m"], 2, "{summary}");
    server.stop().await;
}

#[tokio::test]
async fn the_stream_announces_an_alert_that_starts_firing() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.alerting.evaluation_interval = hubmon_model::PromDuration(Duration::from_secs(1));
    })
    .await;
    let token = server.admin_token().await;
    let mut response = server.with_token(Method::GET, "/api/v1/monitoring/stream", &token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let rule = serde_json::json!({"name": "StreamProbe", "expr": "vector(1)", "severity": "critical"});
    let (status, created) = body(
        server.with_token(Method::POST, "/api/v1/monitoring/alerts/rules", &token).json(&rule).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text.contains("event: alert") || !text.contains("StreamProbe") {
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await;
        let chunk = chunk.unwrap_or_else(|_| panic!("no alert event in 20 s; got:\n{text}")).unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let event = text.split("event: alert").nth(1).unwrap();
    let data = event.lines().find_map(|line| line.strip_prefix("data: ")).unwrap();
    let change: Value = serde_json::from_str(data).unwrap();
    assert_eq!(change["name"], "StreamProbe", "{change}");
    assert!(change["state"] == "firing" || change["state"] == "pending", "{change}");
    tokio::time::timeout(Duration::from_secs(10), server.stop()).await.unwrap();
    drop(response);
}

#[tokio::test]
async fn the_stream_announces_a_new_in_app_notification() {
    let server = TestServer::start(Backend::Sqlite).await;
    let token = server.admin_token().await;
    let channel = serde_json::json!({"name": "inbox", "kind": "in_app", "config": {}});
    let (status, created) =
        body(server.with_token(Method::POST, "/api/v1/channels", &token).json(&channel).send().await.unwrap()).await;
    assert_eq!(status, 201, "{created}");
    let mut response = server.with_token(Method::GET, "/api/v1/monitoring/stream", &token).send().await.unwrap();
    // Let the monitor read the history once, so the test message is a change.
    tokio::time::sleep(hubmon::monitor::SUMMARY_INTERVAL * 2).await;
    let path = format!("/api/v1/channels/{}/test", created["id"]);
    let (status, report) = body(server.with_token(Method::POST, &path, &token).send().await.unwrap()).await;
    assert_eq!(status, 200, "{report}");
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !text.contains("event: inbox") {
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await;
        let chunk = chunk.unwrap_or_else(|_| panic!("no inbox event in 15 s; got:\n{text}")).unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: notification"), "{text}");
    tokio::time::timeout(Duration::from_secs(10), server.stop()).await.unwrap();
    drop(response);
}

#[tokio::test]
async fn the_stream_pushes_summaries_and_ends_at_shutdown() {
    let server = TestServer::start(Backend::Sqlite).await;
    let token = server.admin_token().await;
    let mut response = server.with_token(Method::GET, "/api/v1/monitoring/stream", &token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
    let mut text = String::new();
    let mut summaries = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while summaries < 2 {
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        summaries = text.matches("event: summary").count();
    }
    let data = text.lines().find_map(|line| line.strip_prefix("data: ")).unwrap();
    let summary: Value = serde_json::from_str(data).unwrap();
    assert!(summary["generated_at"].is_string(), "{summary}");
    // An open stream must not keep the server from stopping.
    tokio::time::timeout(Duration::from_secs(10), server.stop()).await.unwrap();
    drop(response);
}
