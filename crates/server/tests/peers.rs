//! hubmon with the real peers of its ingest protocols: the real node_exporter is scraped, and
//! the real Prometheus 2.42 remote_writes into hubmon. Both are Debian packages that
//! `.ci/services.sh` installs; when missing, these tests fail saying so.

#![allow(clippy::unwrap_used, clippy::zombie_processes)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, TestServer, body};
use hubmon_ingest::scrape::ScrapeConfig;
use hubmon_model::PromDuration;
use reqwest::Method;
use serde_json::Value;

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(program: &str, args: &[String]) -> Peer {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); install it with `source .ci/services.sh` (apt-get install prometheus prometheus-node-exporter)"));
    Peer(child)
}

/// Polls `path` until `accept` is satisfied with its JSON, or fails after `limit`.
async fn wait_for(
    server: &TestServer,
    token: &str,
    path: &str,
    limit: Duration,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (status, value) = body(server.with_token(Method::GET, path, token).send().await.unwrap()).await;
        if status == 200 && accept(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting on {path}; last answer {status}: {value}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn the_real_node_exporter_is_scraped() {
    let port = free_port();
    let _exporter = spawn("/usr/bin/prometheus-node-exporter", &[format!("--web.listen-address=127.0.0.1:{port}")]);
    let target = format!("127.0.0.1:{port}");
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.scrape = vec![ScrapeConfig {
            job_name: "node".into(),
            targets: vec![target.clone()],
            scrape_interval: PromDuration::from_secs(1),
            scrape_timeout: PromDuration::from_secs(1),
            metrics_path: "/metrics".into(),
            scheme: "http".into(),
            labels: Default::default(),
            honor_labels: false,
            bearer_token: None,
        }];
    })
    .await;
    let viewer = server.token_for_role("viewer").await;
    let found = wait_for(&server, &viewer, "/api/v1/series?match[]=node_load1", Duration::from_secs(15), |v| {
        v["data"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(found["data"][0]["job"], "node");
    assert_eq!(found["data"][0]["instance"], target.as_str());
    let cpu = wait_for(
        &server,
        &viewer,
        "/api/v1/label/mode/values?match[]=node_cpu_seconds_total",
        Duration::from_secs(5),
        |v| v["data"].as_array().is_some_and(|a| a.len() >= 4),
    )
    .await;
    assert!(cpu["data"].as_array().unwrap().iter().any(|m| m == "idle"), "{cpu}");
    for synthetic in ["up", "scrape_duration_seconds", "scrape_samples_scraped"] {
        let path = format!("/api/v1/series?match[]={synthetic}{{job=\"node\"}}");
        wait_for(&server, &viewer, &path, Duration::from_secs(5), |v| {
            v["data"].as_array().is_some_and(|a| a.len() == 1)
        })
        .await;
    }
    let metadata = wait_for(&server, &viewer, "/api/v1/metadata?metric=node_load1", Duration::from_secs(5), |v| {
        v["data"]["node_load1"].is_array()
    })
    .await;
    assert_eq!(metadata["data"]["node_load1"][0]["type"], "gauge");
    server.stop().await;
}

#[tokio::test]
async fn the_real_prometheus_remote_writes_into_hubmon() {
    let server = TestServer::start(Backend::Sqlite).await;
    let ingest = server.token_for_role("ingest").await;
    let viewer = server.token_for_role("viewer").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n\
         remote_write:\n  - url: {base}/api/v1/write\n    authorization:\n      credentials: {ingest}\n    \
         queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n",
        base = server.base,
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let version =
        Command::new("prometheus").arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).to_string());
    assert!(version.as_deref().unwrap_or("").contains("2.42"), "expected Prometheus 2.42, found {version:?}");
    let _prometheus = spawn(
        "prometheus",
        &[
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
    );
    let found =
        wait_for(&server, &viewer, "/api/v1/series?match[]=up{job=\"prometheus\"}", Duration::from_secs(60), |v| {
            v["data"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(found["data"][0]["instance"], format!("127.0.0.1:{port}"));
    let names = wait_for(&server, &viewer, "/api/v1/label/__name__/values", Duration::from_secs(10), |v| {
        v["data"].as_array().is_some_and(|a| a.iter().any(|n| n == "prometheus_build_info"))
    })
    .await;
    assert!(names["data"].as_array().unwrap().len() > 100, "Prometheus exposes hundreds of series: {names}");
    server.stop().await;
}
