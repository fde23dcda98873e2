//! Alerting end to end: the rules API and its validation, silences, acknowledgement, the
//! Prometheus and Alertmanager surfaces, and, with the real binary, a threshold crossed by a
//! pushed metric reaching a local webhook receiver, then a restart mid-firing that sends
//! nothing twice.

#![allow(clippy::unwrap_used, clippy::zombie_processes)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::HUBMON;
use common::{Backend, TestServer, body};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn rules_api_validates_dry_runs_and_manages_rules_and_silences() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.alerting.evaluation_interval = hubmon_model::PromDuration::from_secs(1);
    })
    .await;
    let editor = server.token_for_role("editor").await;
    let viewer = server.token_for_role("viewer").await;
    let ingest = server.token_for_role("ingest").await;
    let call = |method: Method, path: &str, token: &str, json: Option<Value>| {
        let mut request = server.with_token(method, path, token);
        if let Some(json) = json {
            request = request.json(&json);
        }
        async move { body(request.send().await.unwrap()).await }
    };

    // A fresh install has the default rules.
    let (status, rules) = call(Method::GET, "/api/v1/alerts/rules", &viewer, None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = rules.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    for name in [
        "high_cpu_usage",
        "high_memory_usage",
        "disk_space_low",
        "api_error_rate",
        "slow_response_time",
        "database_connection_fail",
        "redis_connection_fail",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }

    // Bad rules: 422 naming the field, nothing saved.
    for (rule, field) in [
        (json!({"name": "x", "expr": "sum("}), "expr"),
        (json!({"name": "x", "expr": "up == 0", "severity": "loud"}), "severity"),
        (json!({"name": "x", "expr": "up == 0", "annotations": {"summary": "{{ $labels.job"}}), "annotations.summary"),
        (json!({"name": "high_cpu_usage", "expr": "up == 0"}), "name"),
    ] {
        let (status, answer) = call(Method::POST, "/api/v1/monitoring/alerts/rules", &editor, Some(rule.clone())).await;
        assert_eq!(status, 422, "{rule}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().starts_with(field), "{rule}: {answer}");
    }
    let (status, answer) = call(
        Method::POST,
        "/api/v1/monitoring/alerts/rules",
        &editor,
        Some(json!({"name": "x", "expr": "up", "for": "5 minutes"})),
    )
    .await;
    assert!(status == 400 || status == 422, "{answer}");
    let (_, after) = call(Method::GET, "/api/v1/alerts/rules", &viewer, None).await;
    assert_eq!(after.as_array().unwrap().len(), rules.as_array().unwrap().len(), "nothing was saved");
    let (status, _) =
        call(Method::POST, "/api/v1/monitoring/alerts/rules", &viewer, Some(json!({"name": "x", "expr": "up"}))).await;
    assert_eq!(status, 403, "viewers cannot create rules");

    // The simple form, shown back compiled, with a dry run of what it would fire.
    let push = json!([{"name": "room_temperature", "labels": {"room": "a"}, "value": 31.5},
                      {"name": "room_temperature", "labels": {"room": "b"}, "value": 12}]);
    let (status, _) = call(Method::POST, "/api/v1/monitoring/metrics", &ingest, Some(push)).await;
    assert_eq!(status, 200);
    let (status, created) = call(
        Method::POST,
        "/api/v1/monitoring/alerts/rules",
        &editor,
        Some(json!({"name": "warm_room", "metric": "room_temperature", "op": ">", "threshold": 30, "for": "1m",
                    "severity": "critical", "annotations": {"summary": "room {{ $labels.room }} at {{ $value }}"}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["compiled_expr"], "room_temperature > 30");
    assert_eq!(created["would_fire"].as_array().unwrap().len(), 1, "{created}");
    assert_eq!(created["would_fire"][0]["labels"]["room"], "a");
    let id = created["id"].as_i64().unwrap();

    // It goes pending, and shows up in every view.
    let deadline = Instant::now() + Duration::from_secs(20);
    let active = loop {
        let (_, report) = call(Method::GET, "/api/v1/monitoring/alerts?state=pending", &viewer, None).await;
        if let Some(alert) = report["active"].as_array().unwrap().iter().find(|a| a["rule"] == "warm_room") {
            break alert.clone();
        }
        assert!(Instant::now() < deadline, "warm_room never went pending: {report}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(active["severity"], "critical");
    assert_eq!(active["annotations"]["summary"], "room a at 31.5");
    let (_, prom) = call(Method::GET, "/api/v1/alerts", &viewer, None).await;
    assert!(
        prom["data"]["alerts"].as_array().unwrap().iter().any(|a| a["labels"]["alertname"] == "warm_room"),
        "{prom}"
    );
    let (_, groups) = call(Method::GET, "/api/v1/rules", &viewer, None).await;
    let rule = groups["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "warm_room")
        .unwrap()
        .clone();
    assert_eq!((rule["state"].as_str(), rule["health"].as_str()), (Some("pending"), Some("ok")), "{rule}");
    let (_, telemetry) = call(Method::GET, "/metrics", &viewer, None).await;
    let telemetry = telemetry.as_str().unwrap_or_default().to_string();
    assert!(telemetry.contains(r#"hubmon_rule_evaluation_failures_total{rule_group="hubmon"} 0"#), "{telemetry}");
    assert!(telemetry.contains(r#"hubmon_rule_evaluations_total{rule_group="hubmon"}"#), "{telemetry}");
    let (_, series) =
        call(Method::GET, "/api/v1/query?query=ALERTS%7Balertname%3D%22warm_room%22%7D", &viewer, None).await;
    assert_eq!(series["data"]["result"][0]["metric"]["alertstate"], "pending", "{series}");

    // Update: disabling closes its alerts; delete removes it.
    let mut spec = created.clone();
    for field in ["id", "source", "compiled_expr", "health", "created_at", "updated_at", "would_fire"] {
        spec.as_object_mut().unwrap().remove(field);
    }
    spec["enabled"] = json!(false);
    let (status, updated) = call(Method::PUT, &format!("/api/v1/rules/{id}"), &editor, Some(spec)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["enabled"], false);
    let (status, _) = call(Method::DELETE, &format!("/api/v1/rules/{id}"), &editor, None).await;
    assert_eq!(status, 204);
    let (status, _) = call(Method::GET, &format!("/api/v1/rules/{id}"), &viewer, None).await;
    assert_eq!(status, 404);

    // Silences.
    let (status, silence) = call(
        Method::POST,
        "/api/v1/silences",
        &editor,
        Some(json!({"matchers": [{"name": "alertname", "op": "=~", "value": "warm.*"}], "duration": "2h", "comment": "maintenance"})),
    )
    .await;
    assert_eq!(status, 201, "{silence}");
    assert_eq!(silence["state"], "active");
    let (status, bad) = call(
        Method::POST,
        "/api/v1/silences",
        &editor,
        Some(json!({"matchers": [{"name": "a", "op": "=~", "value": "("}], "duration": "1h"})),
    )
    .await;
    assert_eq!(status, 422, "{bad}");
    let (status, expired) = call(Method::DELETE, &format!("/api/v1/silences/{}", silence["id"]), &editor, None).await;
    assert_eq!((status, expired["state"].as_str()), (200, Some("expired")), "{expired}");

    // Alertmanager's API: an external Prometheus's alert is shown like hubmon's own.
    let (status, _) = call(
        Method::POST,
        "/api/v2/alerts",
        &ingest,
        Some(json!([{"labels": {"alertname": "ExternalDown", "severity": "critical", "instance": "x"},
                     "annotations": {"summary": "x is down"}}])),
    )
    .await;
    assert_eq!(status, 200);
    let (_, am) = call(Method::GET, "/api/v2/alerts", &viewer, None).await;
    let external = am.as_array().unwrap().iter().find(|a| a["labels"]["alertname"] == "ExternalDown").unwrap().clone();
    let (_, report) = call(Method::GET, "/api/v1/monitoring/alerts?severity=critical", &viewer, None).await;
    assert!(
        report["active"].as_array().unwrap().iter().any(|a| a["rule"] == "ExternalDown" && a["source"] == "external")
    );
    let (status, acked) =
        call(Method::POST, &format!("/api/v1/alerts/{}/ack", external["fingerprint"].as_str().unwrap()), &editor, None)
            .await;
    assert_eq!(status, 200, "{acked}");
    assert!(acked["acknowledged_by"].as_str().unwrap().starts_with("token:editor token#"), "{acked}");
    let (status, _) = call(Method::POST, "/api/v1/alerts/nosuch/ack", &editor, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(Method::POST, "/api/v2/alerts", &ingest, Some(json!([{"labels": {"severity": "x"}}]))).await;
    assert_eq!(status, 400);
    server.stop().await;
}

// ---- the real binary -------------------------------------------------------------------------

/// A local webhook receiver: every POST body, with when it arrived.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<(Instant, Value)>>>,
}

async fn receiver() -> Receiver {
    let bodies: Arc<Mutex<Vec<(Instant, Value)>>> = Arc::default();
    let store = bodies.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                store.lock().unwrap().push((Instant::now(), value));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, bodies }
}

fn start(data: &str, config: &str) -> (Child, String) {
    common::process::serve(data, &["--config", config], &[])
}

fn token(data: &str, config: &str, role: &str) -> String {
    common::process::create_token(data, &["--config", config], role)
}

/// Pushes `value` for the gauge every 300 ms until the returned handle is dropped (aborted).
fn keep_pushing(address: String, token: String, value: f64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        loop {
            let _ = client
                .post(format!("{address}/api/v1/monitoring/metrics"))
                .bearer_auth(&token)
                .json(&json!([{"name": "e2e_queue_depth", "labels": {"queue": "orders"}, "value": value}]))
                .send()
                .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

fn messages(receiver: &Receiver) -> Vec<(Instant, String, Vec<String>)> {
    receiver
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|(at, body)| {
            let statuses = body["alerts"].as_array().map_or(Vec::new(), |a| {
                a.iter()
                    .map(|x| {
                        format!(
                            "{}:{}",
                            x["labels"]["alertname"].as_str().unwrap_or(""),
                            x["status"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            });
            (*at, body["status"].as_str().unwrap_or("").to_string(), statuses)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossed_threshold_reaches_the_webhook_once_across_a_restart_then_resolves() {
    let receiver = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap().to_string();
    let config = dir.path().join("hubmon.toml");
    std::fs::write(
        &config,
        "[alerting]\nevaluation_interval = \"1s\"\ngroup_wait = \"1s\"\ngroup_interval = \"1s\"\ndefault_rules = false\n\
         [notify]\npoll_interval = \"100ms\"\n[host]\nenabled = false\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let (mut server, address) = start(&data, &config);
    let admin = token(&data, &config, "admin");
    let ingest = token(&data, &config, "ingest");
    let client = reqwest::Client::new();

    let channel: Value = client
        .post(format!("{address}/api/v1/channels"))
        .bearer_auth(&admin)
        .json(&json!({"name": "ops-hook", "kind": "webhook", "config": {"webhook_url": receiver.url}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let channel_id = channel["id"].as_i64().unwrap_or_else(|| panic!("channel not created: {channel}"));
    let rule = client
        .post(format!("{address}/api/v1/monitoring/alerts/rules"))
        .bearer_auth(&admin)
        .json(&json!({"name": "QueueBacklog", "expr": "e2e_queue_depth > 100", "severity": "critical",
                      "channels": [channel_id], "annotations": {"summary": "{{ $labels.queue }} has {{ $value }} waiting"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(rule.status(), 201, "{}", rule.text().await.unwrap());

    // Over the threshold: the message arrives within interval + group_wait + 2 s (+ delivery).
    let crossed = Instant::now();
    let pusher = keep_pushing(address.clone(), ingest.clone(), 250.0);
    let deadline = crossed + Duration::from_secs(1 + 1 + 2 + 1);
    while messages(&receiver).is_empty() {
        assert!(Instant::now() < deadline, "no notification {:?} after the threshold was crossed", crossed.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = messages(&receiver);
    assert_eq!(first[0].1, "firing");
    assert_eq!(first[0].2, vec!["QueueBacklog:firing"]);
    let body = receiver.bodies.lock().unwrap()[0].1.clone();
    assert_eq!(body["version"], "4", "Alertmanager's webhook payload: {body}");
    assert_eq!(body["alerts"][0]["annotations"]["summary"], "orders has 250 waiting");

    // kill -9 mid-firing, restart on the same data: nothing is sent again.
    pusher.abort();
    server.kill().unwrap();
    server.wait().unwrap();
    let (mut server, address) = start(&data, &config);
    let pusher = keep_pushing(address.clone(), ingest.clone(), 250.0);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(messages(&receiver).len(), 1, "a restart must not re-send a firing alert: {:?}", messages(&receiver));
    let alerts: Value = client
        .get(format!("{address}/api/v1/monitoring/alerts?state=firing"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alerts["active"][0]["rule"], "QueueBacklog", "{alerts}");
    assert_eq!(alerts["active"][0]["notifications"], 1);

    // Back under the threshold: one recovery message.
    pusher.abort();
    let _pusher = keep_pushing(address.clone(), ingest.clone(), 3.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while messages(&receiver).len() < 2 {
        assert!(Instant::now() < deadline, "no recovery message: {:?}", messages(&receiver));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(messages(&receiver)[1].2, vec!["QueueBacklog:resolved"]);
    server.kill().unwrap();
    server.wait().unwrap();
}

/// `hubmon rules check` gives the same verdict as the real `promtool check rules` (Prometheus
/// 2.42, from Debian) on good and bad rule files.
#[test]
fn rules_check_agrees_with_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "good.yml",
            "groups:\n- name: node\n  interval: 30s\n  rules:\n  - alert: HostDown\n    expr: up == 0\n    for: 2m\n    labels: {severity: critical}\n    annotations: {summary: '{{ $labels.instance }} is down'}\n  - record: job:up:sum\n    expr: sum by (job) (up)\n",
            true,
        ),
        ("bad-expr.yml", "groups:\n- name: node\n  rules:\n  - alert: HostDown\n    expr: up ==\n", false),
        (
            "bad-for.yml",
            "groups:\n- name: node\n  rules:\n  - alert: HostDown\n    expr: up == 0\n    for: soon\n",
            false,
        ),
        ("both.yml", "groups:\n- name: node\n  rules:\n  - alert: A\n    record: b\n    expr: up\n", false),
        ("duplicate-group.yml", "groups:\n- name: a\n  rules: []\n- name: a\n  rules: []\n", false),
        ("bad-record.yml", "groups:\n- name: a\n  rules:\n  - record: 'not a name'\n    expr: up\n", false),
    ];
    for (name, text, valid) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let ours = Command::new(HUBMON).args(["rules", "check"]).arg(&path).output().unwrap();
        let theirs = Command::new("promtool")
            .args(["check", "rules"])
            .arg(&path)
            .output()
            .expect("promtool is missing: `source .ci/services.sh` (apt-get install prometheus)");
        assert_eq!(ours.status.success(), valid, "hubmon on {name}: {}", String::from_utf8_lossy(&ours.stdout));
        assert_eq!(theirs.status.success(), valid, "promtool on {name}: {}", String::from_utf8_lossy(&theirs.stderr));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for_alert(server: &TestServer, token: &str, rule: &str, state: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (_, report) =
            body(server.with_token(Method::GET, "/api/v1/monitoring/alerts", token).send().await.unwrap()).await;
        if let Some(alert) =
            report["active"].as_array().and_then(|a| a.iter().find(|a| a["rule"] == rule && a["state"] == state))
        {
            return alert.clone();
        }
        assert!(Instant::now() < deadline, "{rule} never became {state}: {report}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The default rules against real failures: a Redis that stops fires redis_connection_fail,
/// a database nobody listens for fires database_connection_fail. (`for` is shortened through
/// the API, as an operator may, so the test does not wait a minute.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_rules_fire_when_redis_stops_and_the_database_is_unreachable() {
    let port = free_port();
    let redis = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is missing: `source .ci/services.sh` (apt-get install redis-server)");
    let mut redis = Killed(redis);
    let dead_port = free_port();
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.alerting.evaluation_interval = hubmon_model::PromDuration::from_secs(1);
        config.check.interval = hubmon_model::PromDuration::from_secs(1);
        config.check.redis_url = format!("redis://127.0.0.1:{port}");
        config.check.postgres_url = format!("postgres://hubmon@127.0.0.1:{dead_port}/nothing");
    })
    .await;
    let editor = server.token_for_role("editor").await;
    let (_, rules) = body(server.with_token(Method::GET, "/api/v1/alerts/rules", &editor).send().await.unwrap()).await;
    for name in ["redis_connection_fail", "database_connection_fail"] {
        let rule = rules.as_array().unwrap().iter().find(|r| r["name"] == name).unwrap();
        let mut spec = rule.clone();
        for field in ["id", "source", "compiled_expr", "health", "created_at", "updated_at"] {
            spec.as_object_mut().unwrap().remove(field);
        }
        spec["for"] = json!("2s");
        let path = format!("/api/v1/rules/{}", rule["id"]);
        let (status, answer) =
            body(server.with_token(Method::PUT, &path, &editor).json(&spec).send().await.unwrap()).await;
        assert_eq!(status, 200, "{answer}");
    }

    let database =
        wait_for_alert(&server, &editor, "database_connection_fail", "firing", Duration::from_secs(40)).await;
    assert_eq!(database["severity"], "critical");
    // Redis answers: no alert. Then it stops.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, report) =
        body(server.with_token(Method::GET, "/api/v1/monitoring/alerts", &editor).send().await.unwrap()).await;
    assert!(!report["active"].as_array().unwrap().iter().any(|a| a["rule"] == "redis_connection_fail"), "{report}");
    redis.0.kill().unwrap();
    redis.0.wait().unwrap();
    let alert = wait_for_alert(&server, &editor, "redis_connection_fail", "firing", Duration::from_secs(40)).await;
    assert!(alert["annotations"]["summary"].as_str().unwrap().contains("Redis check"), "{alert}");
    server.stop().await;
}

/// The real Prometheus 2.42 sends its alerts to hubmon as to an Alertmanager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_prometheus_sends_its_alerts_to_hubmon() {
    let server = TestServer::start(Backend::Sqlite).await;
    let ingest = server.token_for_role("ingest").await;
    let viewer = server.token_for_role("viewer").await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: peer\n  interval: 1s\n  rules:\n  - alert: PeerAlwaysFiring\n    expr: vector(1)\n    labels: {severity: warning, team: peer}\n    annotations: {summary: sent by Prometheus}\n",
    )
    .unwrap();
    let address = server.base.trim_start_matches("http://").to_string();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: ['{}']\nalerting:\n  alertmanagers:\n  - api_version: v2\n    \
             authorization:\n      credentials: {ingest}\n    static_configs:\n    - targets: ['{address}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--rules.alert.resend-delay=1s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is missing: `source .ci/services.sh` (apt-get install prometheus)"),
    );
    let alert = wait_for_alert(&server, &viewer, "PeerAlwaysFiring", "firing", Duration::from_secs(60)).await;
    assert_eq!(alert["source"], "external");
    assert_eq!(alert["labels"]["team"], "peer");
    assert_eq!(alert["annotations"]["summary"], "sent by Prometheus");
    let (_, am) = body(server.with_token(Method::GET, "/api/v2/alerts", &viewer).send().await.unwrap()).await;
    assert!(am.as_array().unwrap().iter().any(|a| a["labels"]["alertname"] == "PeerAlwaysFiring"), "{am}");
    server.stop().await;
}

/// Rule files: loaded at start, recording rules write their series, and an edit to the file is
/// picked up without a restart (an invalid edit keeps the previous rules).
#[tokio::test]
async fn rule_files_load_record_and_reload_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, "groups:\n- name: files\n  interval: 1s\n  rules:\n  - record: job:room_temperature:max\n    expr: max by (job) (room_temperature)\n").unwrap();
    let path = file.to_str().unwrap().to_string();
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        config.alerting.rule_files = vec![path.clone()];
        config.alerting.default_rules = false;
    })
    .await;
    let ingest = server.token_for_role("ingest").await;
    let viewer = server.token_for_role("viewer").await;
    let push = json!([{"name": "room_temperature", "labels": {"job": "rooms", "room": "a"}, "value": 21},
                      {"name": "room_temperature", "labels": {"job": "rooms", "room": "b"}, "value": 25}]);
    let (status, _) =
        body(server.with_token(Method::POST, "/api/v1/monitoring/metrics", &ingest).json(&push).send().await.unwrap())
            .await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, answer) = body(
            server
                .with_token(Method::GET, "/api/v1/query?query=job:room_temperature:max", &viewer)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if answer["data"]["result"][0]["value"][1] == "25" {
            assert_eq!(
                answer["data"]["result"][0]["metric"],
                json!({"__name__": "job:room_temperature:max", "job": "rooms"})
            );
            break;
        }
        assert!(Instant::now() < deadline, "the recording rule never wrote: {answer}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rule_names = |groups: &Value| -> Vec<String> {
        groups["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()))
            .collect()
    };
    // An invalid edit is refused; a valid one replaces the rules.
    std::fs::write(&file, "groups:\n- name: files\n  rules:\n  - alert: Broken\n    expr: up ==\n").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, groups) = body(server.with_token(Method::GET, "/api/v1/rules", &viewer).send().await.unwrap()).await;
    assert!(rule_names(&groups).contains(&"job:room_temperature:max".to_string()), "{groups}");
    std::fs::write(&file, "groups:\n- name: files\n  rules:\n  - alert: RoomHot\n    expr: room_temperature > 24\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, groups) = body(server.with_token(Method::GET, "/api/v1/rules", &viewer).send().await.unwrap()).await;
        if rule_names(&groups) == vec!["RoomHot".to_string()] {
            break;
        }
        assert!(Instant::now() < deadline, "the edited file was not reloaded: {groups}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for_alert(&server, &viewer, "RoomHot", "firing", Duration::from_secs(30)).await;
    server.stop().await;
}

/// `hubmon rules test` gives the same verdicts as the real `promtool test rules` on the same
/// files: passing tests, a wrong expectation, `for` timing, templates, recording rules that
/// feed alerts, PromQL expectations.
#[test]
fn rules_test_agrees_with_promtool() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n- name: node\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n  \
         - alert: InstanceDown\n    expr: up == 0\n    for: 5m\n    labels: {severity: critical}\n    \
         annotations: {summary: '{{ $labels.instance }} of {{ $labels.job }} down'}\n  \
         - alert: JobDown\n    expr: job:up:sum == 0\n    for: 2m\n    labels: {severity: error}\n",
    )
    .unwrap();
    let header = "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n- interval: 1m\n  input_series:\n  \
                  - series: 'up{job=\"api\", instance=\"a\"}'\n    values: '1 1 0x10'\n  \
                  - series: 'up{job=\"api\", instance=\"b\"}'\n    values: '1+0x3 0x10'\n";
    let cases = [
        (
            "fires.yml",
            "  alert_rule_test:\n  - eval_time: 7m\n    alertname: InstanceDown\n    exp_alerts:\n    - exp_labels: {severity: critical, job: api, instance: a}\n      exp_annotations: {summary: a of api down}\n",
            true,
        ),
        (
            "not-yet.yml",
            "  alert_rule_test:\n  - eval_time: 6m\n    alertname: InstanceDown\n    exp_alerts: []\n",
            true,
        ),
        (
            "too-early.yml",
            "  alert_rule_test:\n  - eval_time: 6m\n    alertname: InstanceDown\n    exp_alerts:\n    - exp_labels: {severity: critical, job: api, instance: a}\n      exp_annotations: {summary: a of api down}\n",
            false,
        ),
        (
            "wrong-label.yml",
            "  alert_rule_test:\n  - eval_time: 8m\n    alertname: InstanceDown\n    exp_alerts:\n    - exp_labels: {severity: page, job: api, instance: a}\n      exp_annotations: {summary: a of api down}\n",
            false,
        ),
        (
            "recorded.yml",
            "  alert_rule_test:\n  - eval_time: 7m\n    alertname: JobDown\n    exp_alerts:\n    - exp_labels: {severity: error, job: api}\n  promql_expr_test:\n  - expr: job:up:sum\n    eval_time: 1m\n    exp_samples:\n    - labels: 'job:up:sum{job=\"api\"}'\n      value: 2\n",
            true,
        ),
        (
            "bad-expr-result.yml",
            "  promql_expr_test:\n  - expr: sum(up)\n    eval_time: 0m\n    exp_samples:\n    - labels: '{}'\n      value: 3\n",
            false,
        ),
    ];
    for (name, tests, pass) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{header}{tests}")).unwrap();
        let ours = Command::new(HUBMON).args(["rules", "test"]).arg(&path).output().unwrap();
        let theirs = Command::new("promtool")
            .args(["test", "rules"])
            .arg(&path)
            .current_dir(dir.path())
            .output()
            .expect("promtool is missing: `source .ci/services.sh` (apt-get install prometheus)");
        assert_eq!(theirs.status.success(), pass, "promtool on {name}: {}", String::from_utf8_lossy(&theirs.stdout));
        assert_eq!(
            ours.status.success(),
            pass,
            "hubmon rules test on {name} disagrees with promtool: {}",
            String::from_utf8_lossy(&ours.stdout)
        );
    }
}

/// API rules export as a Prometheus rule file that the real promtool accepts.
#[tokio::test]
async fn api_rules_export_as_a_rule_file_promtool_accepts() {
    let server = TestServer::start(Backend::Sqlite).await;
    let editor = server.token_for_role("editor").await;
    let rule = json!({"name": "disk_nearly_full", "metric": "node_filesystem_avail_bytes", "op": "<", "threshold": 1e9,
                      "for": "10m", "keep_firing_for": "5m", "severity": "warning", "cooldown": "1h",
                      "annotations": {"summary": "{{ $labels.mountpoint }} nearly full"}});
    let (status, _) = body(
        server.with_token(Method::POST, "/api/v1/monitoring/alerts/rules", &editor).json(&rule).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    let response = server.with_token(Method::GET, "/api/v1/alerts/rules/export", &editor).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/yaml");
    let yaml = response.text().await.unwrap();
    assert!(yaml.contains("alert: disk_nearly_full") && yaml.contains("alert: high_cpu_usage"), "{yaml}");
    assert!(yaml.contains("node_filesystem_avail_bytes < 1000000000"), "{yaml}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exported.yml");
    std::fs::write(&path, &yaml).unwrap();
    let checked = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool is missing: `source .ci/services.sh` (apt-get install prometheus)");
    assert!(
        checked.status.success(),
        "promtool refused the export:\n{yaml}\n{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    server.stop().await;
}
