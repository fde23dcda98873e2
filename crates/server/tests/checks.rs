//! Health checks through the server: the health report, CRUD (editors only), run now,
//! history, config checks, zero-config defaults from HUBMON_CHECK_* and the metrics they
//! write, on both state backends.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Backend, TestServer, body};
use hubmon::config::Overrides;
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(checks_are_defined_run_reported_and_kept_over_http);

async fn get(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    body(server.with_token(Method::GET, path, token).send().await.unwrap()).await
}

async fn send(server: &TestServer, token: &str, method: Method, path: &str, payload: Value) -> (u16, Value) {
    body(server.with_token(method, path, token).json(&payload).send().await.unwrap()).await
}

/// Polls the health report until `accept` holds (10 s at most); returns the last report.
async fn report_until(server: &TestServer, token: &str, accept: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, report) = get(server, token, "/api/v1/monitoring/health").await;
        assert_eq!(status, 200, "{report}");
        if accept(&report) || Instant::now() > deadline {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn component<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["components"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or(&Value::Null)
}

async fn checks_are_defined_run_reported_and_kept_over_http(backend: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port_address = listener.local_addr().unwrap().to_string();
    let configured = hubmon_checks::Definition::from_json(
        json!({"name": "gateway-port", "kind": "tcp", "address": port_address, "interval": "1s"}),
    )
    .unwrap();
    let server = TestServer::start_with(backend, |config| {
        config.check.state_store = true;
        config.checks = vec![configured];
    })
    .await;
    let viewer = server.token_for_role("viewer").await;
    let editor = server.token_for_role("editor").await;
    let admin = server.admin_token().await;

    // The report: the built-in state store check and the configured one, healthy.
    let report = report_until(&server, &viewer, |r| r["status"] == "healthy").await;
    assert_eq!(report["status"], "healthy", "{report}");
    let own = component(&report, "state_store");
    assert_eq!(own["kind"], "state_store");
    let expected_backend = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(own["details"]["backend"], expected_backend, "{own}");
    assert!(own["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(own["last_checked"].is_string() && own["last_change"].is_string());
    assert_eq!(component(&report, "gateway-port")["status"], "healthy");
    assert_eq!(report["counts"]["healthy"], 2);

    // Editors define checks; viewers may not.
    let pg_url = hubmon_testkit::pg_url();
    let definition = json!({"name": "platform-db", "kind": "postgres", "url": pg_url, "interval": "1m"});
    let (status, _) = send(&server, &viewer, Method::POST, "/api/v1/checks", definition.clone()).await;
    assert_eq!(status, 403);
    let (status, created) = send(&server, &editor, Method::POST, "/api/v1/checks", definition.clone()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["source"], "api");
    let shown = created["definition"]["url"].as_str().unwrap();
    assert!(shown.contains(":***@") && !shown.contains(":hubmon@"), "the password is masked: {shown}");
    let (status, duplicate) = send(&server, &editor, Method::POST, "/api/v1/checks", definition).await;
    assert_eq!(status, 409, "{duplicate}");

    // Bad definitions are refused with the field named.
    let (status, error) =
        send(&server, &editor, Method::POST, "/api/v1/checks", json!({"name": "x", "kind": "tcp", "adress": "h:1"}))
            .await;
    assert_eq!(status, 422);
    assert!(error["error"]["message"].as_str().unwrap().contains("adress"), "{error}");
    let (status, error) = send(
        &server,
        &editor,
        Method::POST,
        "/api/v1/checks",
        json!({"name": "m", "kind": "http", "url": "http://169.254.169.254/"}),
    )
    .await;
    assert_eq!(status, 422);
    assert!(error["error"]["message"].as_str().unwrap().contains("link-local"), "{error}");
    let (status, _) = send(&server, &editor, Method::POST, "/api/v1/checks", json!(["not", "an", "object"])).await;
    assert_eq!(status, 422);

    // Run now, edit with the masked URL sent back, run again: the password was kept.
    let (status, ran) = send(&server, &editor, Method::POST, &format!("/api/v1/checks/{id}/run"), json!({})).await;
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["result"]["status"], "healthy", "{ran}");
    assert!(ran["result"]["details"]["server_version"].is_string());
    let mut edited = created["definition"].clone();
    edited["interval"] = json!("2m");
    edited["critical"] = json!(false);
    let (status, updated) = send(&server, &editor, Method::PUT, &format!("/api/v1/checks/{id}"), edited).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["definition"]["interval"], "2m");
    assert_eq!(updated["status"], "healthy", "the status carries over an edit");
    let (_, ran) = send(&server, &editor, Method::POST, &format!("/api/v1/checks/{id}/run"), json!({})).await;
    assert_eq!(ran["result"]["observed"], "healthy", "{ran}");

    // Config checks are read-only here, but can be run.
    let (_, list) = get(&server, &viewer, "/api/v1/checks").await;
    let config_id =
        list.as_array().unwrap().iter().find(|c| c["name"] == "gateway-port").unwrap()["id"].as_i64().unwrap();
    let (status, error) =
        send(&server, &editor, Method::DELETE, &format!("/api/v1/checks/{config_id}"), json!({})).await;
    assert_eq!(status, 409);
    assert!(error["error"]["message"].as_str().unwrap().contains("config file"), "{error}");

    // History: uptime windows, changes with durations, results.
    let (status, history) = get(&server, &viewer, &format!("/api/v1/checks/{id}/history?limit=5")).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["uptime"]["24h"], 100.0, "{history}");
    assert!(history["uptime"].get("7d").is_some() && history["uptime"].get("30d").is_some());
    assert_eq!(history["changes"][0]["to"], "healthy");
    assert_eq!(history["changes"][0]["ongoing"], true);
    assert!(history["changes"][0]["duration_seconds"].as_f64().unwrap() >= 0.0);
    // Two runs by hand, and perhaps the first scheduled one (within 2 s of creation).
    let results = history["results"].as_array().unwrap().len();
    assert!((2..=3).contains(&results), "{history}");
    assert_eq!(history["daily_uptime"].as_array().unwrap().len(), 90);
    let (status, _) = get(&server, &viewer, &format!("/api/v1/checks/{id}/history?limit=x")).await;
    assert_eq!(status, 400);

    // The results are ordinary series in the metrics store.
    let (status, query) = get(&server, &viewer, "/api/v1/query?query=hubmon_check_up").await;
    assert_eq!(status, 200, "{query}");
    let up: Vec<_> = query["data"]["result"].as_array().unwrap().iter().map(|r| r["metric"]["check"].clone()).collect();
    assert!(up.contains(&json!("platform-db")) && up.contains(&json!("state_store")), "{query}");
    let (_, status_series) =
        get(&server, &viewer, "/api/v1/query?query=hubmon_check_status{check=%22platform-db%22,status=%22healthy%22}")
            .await;
    assert_eq!(status_series["data"]["result"][0]["value"][1], "1", "{status_series}");

    // The audit log has the change without the password.
    let (_, audit) = get(&server, &admin, "/api/v1/audit").await;
    let text = audit.to_string();
    assert!(text.contains("create_check") && text.contains(&format!("check:{id}")), "{text}");
    assert!(!text.contains("hubmon:hubmon@"), "no password in the audit log");

    // Delete: gone, and 404 after.
    let (status, _) = send(&server, &editor, Method::DELETE, &format!("/api/v1/checks/{id}"), json!({})).await;
    assert_eq!(status, 204);
    let (status, error) = get(&server, &viewer, &format!("/api/v1/checks/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], "not_found");

    // The configured port goes away: the report turns unhealthy (critical by default).
    drop(listener);
    let report = report_until(&server, &viewer, |r| r["status"] == "unhealthy").await;
    assert_eq!(report["status"], "unhealthy", "{report}");
    assert!(component(&report, "gateway-port")["message"].as_str().unwrap().contains("cannot connect"));
    server.stop().await;
}

#[tokio::test]
async fn zero_config_adds_the_platform_database_and_cache_from_environment_variables() {
    let env = BTreeMap::from([
        ("HUBMON_CHECK_POSTGRES_URL".to_string(), hubmon_testkit::pg_url()),
        ("HUBMON_CHECK_REDIS_URL".to_string(), hubmon_testkit::redis_url()),
        ("HUBMON_CHECK_MYSQL_URL".to_string(), hubmon_testkit::mysql_url().await),
    ]);
    let loaded = hubmon::config::load(None, &env, &Overrides::default()).unwrap();
    assert!(loaded.check.system && loaded.check.state_store, "system and state store are checked by default");
    let server = TestServer::start_with(Backend::Sqlite, |config| config.check = loaded.check.clone()).await;
    let viewer = server.token_for_role("viewer").await;
    let report = report_until(&server, &viewer, |r| {
        ["postgres", "redis", "mysql", "state_store", "system"]
            .iter()
            .all(|name| component(r, name)["status"] != "unknown")
    })
    .await;
    for name in ["postgres", "redis", "mysql", "state_store"] {
        assert_eq!(component(&report, name)["status"], "healthy", "{name}: {report}");
    }
    let system = component(&report, "system");
    assert!(system["details"]["memory_percent"].as_f64().is_some(), "{system}");
    assert_eq!(component(&report, "redis")["details"]["role"], "master");
    server.stop().await;

    let wrong = hubmon::config::load(
        None,
        &BTreeMap::from([("HUBMON_CHECK_POSTGRES_URL".to_string(), "mysql://x".to_string())]),
        &Overrides::default(),
    );
    let message = wrong.unwrap_err().to_string();
    assert!(message.contains("check.postgres_url") && message.contains("postgres://"), "{message}");
}

#[tokio::test]
async fn a_restart_keeps_api_checks_and_their_history() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let server = TestServer::start_with(Backend::Sqlite, |config| config.data_dir = data_dir.clone()).await;
    let editor = server.token_for_role("editor").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Disabled, so only the run by hand happens (run now works on disabled checks too).
    let definition =
        json!({"name": "port", "kind": "tcp", "address": listener.local_addr().unwrap().to_string(), "enabled": false});
    let (_, created) = send(&server, &editor, Method::POST, "/api/v1/checks", definition).await;
    let id = created["id"].as_i64().unwrap();
    send(&server, &editor, Method::POST, &format!("/api/v1/checks/{id}/run"), json!({})).await;
    server.stop().await;

    let server = TestServer::start_with(Backend::Sqlite, |config| config.data_dir = data_dir.clone()).await;
    let editor = server.token_for_role("editor").await;
    let (status, history) = get(&server, &editor, &format!("/api/v1/checks/{id}/history")).await;
    assert_eq!(status, 200, "{history}");
    let transitions: Vec<_> = history["changes"].as_array().unwrap().iter().map(|c| c["to"].clone()).collect();
    assert_eq!(transitions, [json!("unknown"), json!("healthy")], "stopping marked it unknown: {history}");
    assert_eq!(history["results"].as_array().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn the_public_status_page_is_off_by_default_and_leaks_nothing_internal() {
    let server = TestServer::start(Backend::Sqlite).await;
    let (status, error) = body(reqwest::get(server.url("/status.json")).await.unwrap()).await;
    assert_eq!(status, 404, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("check.status_page"), "{error}");
    server.stop().await;

    let port = super_secret_port();
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.check.status_page = true;
        config.checks = vec![
            hubmon_checks::Definition::from_json(
                json!({"name": "payments <api>", "kind": "tcp", "address": format!("127.0.0.1:{port}"), "interval": "1s"}),
            )
            .unwrap(),
        ];
    })
    .await;
    let viewer = server.token_for_role("viewer").await;
    report_until(&server, &viewer, |r| r["status"] == "unhealthy").await;
    // The status change is written to the store just after the report shows it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (status, page) = loop {
        let (status, page) = body(reqwest::get(server.url("/status.json")).await.unwrap()).await;
        if !page["components"][0]["uptime_90d"].is_null() || Instant::now() > deadline {
            break (status, page);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["status"], "unhealthy");
    let component = &page["components"][0];
    assert_eq!(component["name"], "payments <api>");
    assert_eq!(component["status"], "unhealthy");
    assert_eq!(component["uptime_90d"], 0.0);
    assert_eq!(component["daily_uptime"].as_array().unwrap().len(), 90);
    let text = page.to_string();
    assert!(!text.contains("127.0.0.1") && !text.contains(&port.to_string()) && !text.contains("refused"), "{text}");

    let response = reqwest::get(server.url("/status")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains("payments &lt;api&gt;") && html.contains("<svg") && !html.contains("<script"), "{html}");
    assert!(!html.contains("127.0.0.1") && !html.contains("refused"), "{html}");
    server.stop().await;
}

/// A loopback port where nothing listens.
fn super_secret_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
