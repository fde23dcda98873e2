//! Logs end to end through the HTTP API: ingest paths and per-line rejections, search against
//! `grep` on a generated corpus, statistics, live tail, the Loki push API (also from real
//! Loki client libraries), syslog from the real `logger` and `rsyslogd`, access-log lines as
//! request metrics, and `kill -9` durability.
//!
//! The client libraries and rsyslog are installed by `.ci/log-clients.sh` (sourced by
//! `.ci/services.sh`), which exports `HUBMON_TEST_LOKI_PYTHON`, `HUBMON_TEST_WINSTON_DIR` and
//! `HUBMON_TEST_RSYSLOGD`; a test that needs one fails saying how to get it.

#![allow(clippy::unwrap_used, clippy::zombie_processes)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Backend, TestServer, body};
use reqwest::Method;
use serde_json::{Value, json};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn server() -> (TestServer, String) {
    let server = TestServer::start(Backend::Sqlite).await;
    let token = server.admin_token().await;
    (server, token)
}

async fn post_logs(server: &TestServer, token: &str, content_type: &str, payload: String) -> (u16, Value) {
    post(server, token, "/api/v1/logs", content_type, payload).await
}

/// A Loki JSON push: `{"streams": [...]}`.
async fn loki_push_json(server: &TestServer, token: &str, push: &Value) -> (u16, Value) {
    post(server, token, "/loki/api/v1/push", "application/json", push.to_string()).await
}

async fn post(server: &TestServer, token: &str, path: &str, content_type: &str, payload: String) -> (u16, Value) {
    body(
        server
            .with_token(Method::POST, path, token)
            .header("content-type", content_type)
            .body(payload)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get(server: &TestServer, token: &str, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    body(server.with_token(Method::GET, path, token).query(params).send().await.unwrap()).await
}

/// Every hit of a search, following cursors, as the values at JSON pointer `key`.
async fn search_all(server: &TestServer, token: &str, query: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) =
            get(server, token, "/api/v1/logs/search", &[("q", query), ("limit", "250"), ("cursor", cursor.as_str())])
                .await;
        assert_eq!(status, 200, "{query}: {page}");
        for hit in page["hits"].as_array().unwrap() {
            out.push(hit.pointer(key).cloned().unwrap_or(Value::Null));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return out,
        }
    }
}

/// Polls `check` until it returns `Some`, for at most `seconds`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(seconds: u64, mut check: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "condition not met within {seconds} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn bad_lines_are_refused_by_index_and_good_ones_are_searchable_at_once() {
    let (server, token) = server().await;
    let mut payload = String::new();
    let now = now_ms();
    payload.push_str(&format!(
        r#"{{"timestamp":{},"level":"WARN","msg":"disk almost full","host":"db1","category":"DB"}}"#,
        now - 60_000
    ));
    payload.push('\n');
    payload.push_str("{oops\n");
    payload.push_str(&format!(
        r#"{{"ts":"{}","lvl":"err","message":"Payment declined","request_id":"r-77","status":502}}"#,
        (now - 59_000) * 1_000_000
    ));
    payload.push('\n');
    payload.push_str(r#"{"level":"info"}"#);
    payload.push('\n');
    payload.push_str(&format!("{{\"message\":\"{}\"}}\n", "x".repeat(300 * 1024)));
    payload.push_str(r#"{"message":"no time given"}"#);
    payload.push('\n');
    // Older than the retention (7 days): it would be deleted at once, so it is refused.
    payload.push_str(r#"{"message":"from 2024","timestamp":"2024-05-01T12:00:00Z"}"#);
    let (status, result) = post_logs(&server, &token, "application/x-ndjson", payload).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["accepted"], 3);
    assert_eq!(result["rejected"], 4);
    let indexes: Vec<u64> =
        result["rejections"].as_array().unwrap().iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, [1, 3, 4, 6]);
    assert!(result["rejections"][3]["reason"].as_str().unwrap().contains("retention"), "{result}");
    assert!(result["rejections"][2]["reason"].as_str().unwrap().contains("limit"), "{result}");

    // Searchable in the same instant the ingest was acknowledged.
    let (_, page) = get(&server, &token, "/api/v1/logs/search", &[("q", "level:error declined")]).await;
    let hits = page["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{page}");
    assert_eq!(hits[0]["request_id"], "r-77");
    assert_eq!(hits[0]["fields"]["status"], 502, "free-form fields keep their type");
    assert_eq!(hits[0]["highlights"], json!([[8, 16]]));
    let (_, page) = get(&server, &token, "/api/v1/monitoring/logs", &[("category", "database"), ("host", "DB1")]).await;
    assert_eq!(page["hits"][0]["message"], "disk almost full");
    assert_eq!(page["hits"][0]["level"], "warning");

    // An array where every element is bad is a 422; a body that is not JSON at all a 400.
    let (status, result) = post_logs(&server, &token, "application/json", r#"[{"level":"x"}, 5]"#.into()).await;
    assert_eq!((status, result["accepted"].as_u64()), (422, Some(0)));
    let (status, error) = post_logs(&server, &token, "application/json", "[1,".into()).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("not valid JSON"));
    server.stop().await;
}

#[tokio::test]
async fn queries_that_do_not_parse_are_400_with_the_position() {
    let (server, token) = server().await;
    for (query, position) in [("status:>=abc", "7"), ("\"open", "0"), ("level:(a OR", "6")] {
        let (status, error) = get(&server, &token, "/api/v1/logs/search", &[("q", query)]).await;
        assert_eq!(status, 400, "{query}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("position {position}")), "{query}: {message}");
    }
    let (status, _) = get(&server, &token, "/api/v1/logs/search", &[("cursor", "nonsense")]).await;
    assert_eq!(status, 400);
    let (status, _) = get(&server, &token, "/api/v1/logs/search", &[("from", "yesterday")]).await;
    assert_eq!(status, 400);
    let (status, _) = get(&server, &token, "/api/v1/logs/search", &[("from", "now-15m"), ("to", "now")]).await;
    assert_eq!(status, 200);
    let (status, _) = get(&server, &token, "/api/v1/logs/search", &[("from", "now+5m")]).await;
    assert_eq!(status, 400);
    server.stop().await;
}

/// A small deterministic generator, so the corpus is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next(items.len() as u64) as usize]
    }
}

struct Line {
    seq: u64,
    message: String,
    level: &'static str,
    category: &'static str,
    service: &'static str,
    request_id: String,
    status: u64,
    duration_ms: u64,
}

fn corpus(count: u64) -> Vec<Line> {
    const WORDS: [&str; 24] = [
        "timeout",
        "Timeout",
        "TIMEOUTS",
        "connection",
        "refused",
        "Connection",
        "GET",
        "post",
        "user",
        "login",
        "failed",
        "disk",
        "full",
        "cache",
        "miss",
        "retry",
        "upstream",
        "payment",
        "declined",
        "ok",
        "slow-query",
        "db.pool",
        "x_y",
        "naïve",
    ];
    const SEPARATORS: [&str; 5] = [" ", " ", ", ", ": ", "."];
    let mut random = Lcg(42);
    (0..count)
        .map(|seq| {
            let words = 3 + random.next(8);
            let mut message = String::new();
            for i in 0..words {
                if i > 0 {
                    message.push_str(random.pick(&SEPARATORS));
                }
                message.push_str(random.pick(&WORDS));
            }
            Line {
                seq,
                message,
                level: ["debug", "info", "info", "warning", "error", "critical"][random.next(6) as usize],
                category: ["api", "database", "auth", "system"][random.next(4) as usize],
                service: ["api", "worker", "billing"][random.next(3) as usize],
                request_id: format!("req-{:08x}", random.next(u64::from(u32::MAX))),
                status: [200, 201, 301, 404, 500, 502, 503][random.next(7) as usize],
                duration_ms: random.next(5000),
            }
        })
        .collect()
}

/// Line numbers (= seq) of `grep -n -i -w -F TERM` over the messages, the ground truth.
fn grep(file: &std::path::Path, term: &str) -> BTreeSet<u64> {
    let output = Command::new("grep")
        .args(["-n", "-i", "-w", "-F", "-e", term])
        .arg(file)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("grep must be installed");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(':').next().unwrap().parse::<u64>().unwrap() - 1)
        .collect()
}

#[tokio::test]
async fn search_results_equal_grep_and_field_filters_on_a_generated_corpus() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_path_buf();
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.data_dir = data_dir.clone();
        c.logs.head_max_lines = 1500;
    })
    .await;
    let token = server.admin_token().await;
    let lines = corpus(4000);
    // Recent, or retention (7 days by default) would delete the segments as soon as written.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let base = now - 5_000_000;
    for chunk in lines.chunks(500) {
        let payload: String = chunk
            .iter()
            .map(|l| {
                json!({"timestamp": base + l.seq * 1000, "message": l.message, "level": l.level, "category": l.category,
                    "service": l.service, "request_id": l.request_id, "status": l.status,
                    "duration_ms": l.duration_ms, "seq": l.seq})
                .to_string()
                    + "\n"
            })
            .collect();
        let (status, result) = post_logs(&server, &token, "application/x-ndjson", payload).await;
        assert_eq!((status, result["rejected"].as_u64()), (200, Some(0)), "{result}");
    }
    let file = data.path().join("messages.txt");
    std::fs::write(&file, lines.iter().map(|l| format!("{}\n", l.message)).collect::<String>()).unwrap();

    type Filter = fn(&Line) -> bool;
    let cases: [(&str, Option<&str>, Filter); 11] = [
        ("timeout", Some("timeout"), |_| true),
        ("\"connection refused\"", Some("connection refused"), |_| true),
        ("slow-query", Some("slow-query"), |_| true),
        ("db.pool", Some("db.pool"), |_| true),
        ("NAÏVE", Some("naïve"), |_| true),
        ("payment declined", Some("payment"), |l| {
            l.message.to_lowercase().split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == "declined")
        }),
        ("level:error category:database", None, |l| l.level == "error" && l.category == "database"),
        ("status:>=500 -level:info", None, |l| l.status >= 500 && l.level != "info"),
        ("duration_ms:>2000 service:(api OR worker)", None, |l| l.duration_ms > 2000 && l.service != "billing"),
        ("timeout level:>=error", Some("timeout"), |l| matches!(l.level, "error" | "critical")),
        ("retry OR x_y", None, |_| false),
    ];
    let retry = grep(&file, "retry");
    let x_y = grep(&file, "x_y");
    let check = |phase: &'static str| {
        let server = &server;
        let token = &token;
        let cases = &cases;
        let (file, lines, retry, x_y) = (&file, &lines, &retry, &x_y);
        async move {
            for (query, term, filter) in cases {
                let mut expected: Vec<u64> = match term {
                    Some(term) => grep(file, term).into_iter().filter(|seq| filter(&lines[*seq as usize])).collect(),
                    None if *query == "retry OR x_y" => retry.union(x_y).copied().collect(),
                    None => lines.iter().filter(|l| filter(l)).map(|l| l.seq).collect(),
                };
                expected.reverse(); // newest first
                let got: Vec<u64> =
                    search_all(server, token, query, "/fields/seq").await.iter().map(|v| v.as_u64().unwrap()).collect();
                assert!(!expected.is_empty(), "{query}: the corpus should have matches");
                assert_eq!(got, expected, "{phase}: {query}");
            }
            let one = &lines[1234];
            let got = search_all(server, token, &format!("request_id:{}", one.request_id), "/fields/seq").await;
            assert_eq!(got, [json!(1234)], "{phase}");
        }
    };
    check("in memory").await;
    // The maintenance task flushes the head (over head_max_lines) into hourly segments.
    let segments = data.path().join("logs").join("segments");
    eventually(20, || {
        let segments = segments.clone();
        async move {
            let count = std::fs::read_dir(&segments)
                .ok()?
                .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg")))
                .count();
            (count > 0).then_some(())
        }
    })
    .await;
    check("in segments").await;
    server.stop().await;
}

#[tokio::test]
async fn stats_count_levels_and_categories_per_bucket_with_top_messages() {
    let (server, token) = server().await;
    let base = now_ms() - 7_200_000;
    let mut payload = String::new();
    for i in 0..120i64 {
        let level = if i % 4 == 0 { "error" } else { "info" };
        let category = if i % 3 == 0 { "auth" } else { "api" };
        payload.push_str(
            &json!({"timestamp": base + i * 30_000, "level": level, "category": category,
            "message": format!("user {} logged in after {} ms", i % 7, i * 3)})
            .to_string(),
        );
        payload.push('\n');
    }
    let (status, _) = post_logs(&server, &token, "application/x-ndjson", payload).await;
    assert_eq!(status, 200);
    let from = base.to_string();
    let to = (base + 3_600_000).to_string();
    let (status, stats) =
        get(&server, &token, "/api/v1/logs/stats", &[("from", &from), ("to", &to), ("step", "10m")]).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["total"], 120);
    assert_eq!(stats["levels"]["error"], 30);
    assert_eq!(stats["categories"]["auth"], 40);
    let buckets = stats["buckets"].as_array().unwrap();
    assert_eq!(buckets[0]["total"], 20, "20 lines per 10 minutes");
    assert_eq!(buckets[0]["error_rate"], 0.25);
    assert_eq!(stats["top_messages"][0]["template"], "user <*> logged in after <*> ms");
    assert_eq!(stats["top_messages"][0]["count"], 120);
    let (_, filtered) =
        get(&server, &token, "/api/v1/logs/stats", &[("from", &from), ("to", &to), ("q", "level:error")]).await;
    assert_eq!(filtered["total"], 30);
    server.stop().await;
}

#[tokio::test]
async fn live_tail_streams_matching_lines_as_server_sent_events() {
    let (server, token) = server().await;
    let mut response = server
        .with_token(Method::GET, "/api/v1/logs/tail", &token)
        .query(&[("q", "level:error")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let payload = "{\"message\":\"quiet\"}\n{\"message\":\"loud failure\",\"level\":\"error\"}\n".to_string();
    assert_eq!(post_logs(&server, &token, "application/x-ndjson", payload).await.0, 200);
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains("loud failure") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), response.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    assert!(text.contains("event: log") && text.contains("loud failure"), "{text}");
    assert!(!text.contains("quiet"), "the filter applies: {text}");
    drop(response);
    server.stop().await;
}

#[tokio::test]
async fn loki_push_json_and_protobuf_with_snappy() {
    let (server, token) = server().await;
    let ns = |ms: i64| (ms * 1_000_000).to_string();
    let json_push = json!({"streams": [{"stream": {"service_name": "shop", "level": "warn"},
        "values": [[ns(now_ms() - 2), "cart is slow"], [ns(now_ms() - 1), "{\"msg\":\"structured\",\"request_id\":\"lk-1\",\"level\":\"error\"}"], ["bad", "x"]]}]});
    let (status, result) = loki_push_json(&server, &token, &json_push).await;
    assert_eq!((status, result["accepted"].as_u64(), result["rejected"].as_u64()), (200, Some(2), Some(1)), "{result}");

    // Protobuf, encoded by hand: PushRequest{streams:[{labels, entries:[{timestamp, line}]}]}.
    fn field(tag: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![((tag << 3) | 2) as u8];
        let mut len = bytes.len();
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(bytes);
        out
    }
    let mut timestamp = vec![0x08]; // field 1 (seconds), varint
    let mut seconds = (now_ms() / 1000) as u64;
    while seconds >= 0x80 {
        timestamp.push((seconds as u8) | 0x80);
        seconds >>= 7;
    }
    timestamp.push(seconds as u8);
    let entry = [field(1, &timestamp), field(2, b"from protobuf")].concat();
    let stream = [field(1, br#"{job="pb", level="info"}"#), field(2, &entry)].concat();
    let request = field(1, &stream);
    let compressed = snap::raw::Encoder::new().compress_vec(&request).unwrap();
    let response = server
        .with_token(Method::POST, "/loki/api/v1/push", &token)
        .header("content-type", "application/x-protobuf")
        .body(compressed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (_, page) = get(&server, &token, "/api/v1/logs/search", &[("q", "service:pb")]).await;
    assert_eq!(page["hits"][0]["message"], "from protobuf", "{page}");
    let (_, page) = get(&server, &token, "/api/v1/logs/search", &[("q", "request_id:lk-1")]).await;
    assert_eq!(page["hits"][0]["level"], "error");
    assert_eq!(page["hits"][0]["service"], "shop");
    server.stop().await;
}

/// promtail labels every stream `{job="…", filename="…"}` and Grafana users select by them:
/// the labels stay fields of their own even when the line names its own service.
#[tokio::test]
async fn promtail_job_and_filename_labels_select_their_lines() {
    let (server, token) = server().await;
    let ns = |ms: i64| (ms * 1_000_000).to_string();
    let push = json!({"streams": [{"stream": {"job": "varlogs", "filename": "/var/log/syslog"},
        "values": [[ns(now_ms() - 2), "plain line"], [ns(now_ms() - 1), "{\"service\":\"billing\",\"message\":\"json line\"}"]]}]});
    assert_eq!(loki_push_json(&server, &token, &push).await.0, 204);
    for selector in [r#"{job="varlogs"}"#, r#"{filename="/var/log/syslog"}"#] {
        let (status, data) = get(&server, &token, "/loki/api/v1/query_range", &[("query", selector)]).await;
        let mut lines: Vec<String> = data["data"]["result"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
            .map(|v| v[1].as_str().unwrap_or_default().to_string())
            .collect();
        lines.sort();
        assert_eq!(
            (status, lines),
            (200, vec!["json line".to_string(), "plain line".to_string()]),
            "{selector}: {data}"
        );
    }
    let (_, page) = get(&server, &token, "/api/v1/logs/search", &[("q", "service:varlogs")]).await;
    assert_eq!(page["hits"].as_array().map(Vec::len), Some(1), "job names the service when the line does not: {page}");
    let (_, labels) = get(&server, &token, "/loki/api/v1/labels", &[]).await;
    for name in ["job", "filename"] {
        assert!(labels["data"].as_array().unwrap().iter().any(|l| l == name), "{name} in {labels}");
    }
    server.stop().await;
}

#[tokio::test]
async fn access_log_lines_become_request_metrics() {
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.http.record_interval = "1s".parse().unwrap();
    })
    .await;
    let token = server.admin_token().await;
    let mut payload = String::new();
    for i in 0..10 {
        payload.push_str(
            &json!({"category": "api", "service": "shop", "method": "GET", "route": "/v1/items",
            "status": if i < 7 { 200 } else { 500 }, "duration_ms": 120, "api_key": format!("key{}", i % 3),
            "message": "GET /v1/items"})
            .to_string(),
        );
        payload.push('\n');
    }
    assert_eq!(post_logs(&server, &token, "application/x-ndjson", payload).await.0, 200);
    let total = eventually(15, || {
        let server = &server;
        let token = &token;
        async move {
            let (_, result) =
                get(server, token, "/api/v1/query", &[("query", "sum(http_requests_total{service=\"shop\"})")]).await;
            let value = result["data"]["result"][0]["value"][1].as_str()?.to_string();
            Some(value)
        }
    })
    .await;
    assert_eq!(total, "10");
    let (_, errors) =
        get(&server, &token, "/api/v1/query", &[("query", "http_requests_total{service=\"shop\",status=\"500\"}")])
            .await;
    assert_eq!(errors["data"]["result"][0]["value"][1], "3");
    let (_, keys) =
        get(&server, &token, "/api/v1/query", &[("query", "hubmon_api_active_keys{service=\"shop\"}")]).await;
    assert_eq!(keys["data"]["result"][0]["value"][1], "3");
    server.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn syslog_from_the_real_logger_over_udp_and_tcp_in_both_formats() {
    let (udp, tcp) = (free_port(), free_port());
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.logs.syslog_udp = format!("127.0.0.1:{udp}");
        c.logs.syslog_tcp = format!("127.0.0.1:{tcp}");
    })
    .await;
    let token = server.admin_token().await;
    let logger = |args: &[&str]| {
        let status = Command::new("logger")
            .args(["--server", "127.0.0.1"])
            .args(args)
            .status()
            .expect("`logger` (util-linux, Debian package bsdutils) must be installed");
        assert!(status.success(), "logger {args:?}");
    };
    let (udp, tcp) = (udp.to_string(), tcp.to_string());
    logger(&[
        "--port",
        &udp,
        "--udp",
        "--rfc5424",
        "-t",
        "shop",
        "-p",
        "auth.err",
        "--sd-id",
        "meta@1",
        "--sd-param",
        "order=\"42\"",
        "udp five four two four",
    ]);
    logger(&["--port", &udp, "--udp", "--rfc3164", "-t", "cron", "-p", "daemon.warning", "udp three one six four"]);
    logger(&[
        "--port",
        &tcp,
        "--tcp",
        "--octet-count",
        "--rfc5424",
        "-t",
        "api",
        "-p",
        "local0.info",
        "tcp octet counted",
    ]);
    logger(&["--port", &tcp, "--tcp", "--rfc3164", "-t", "api", "-p", "local0.crit", "tcp newline framed"]);
    for (query, level, service) in [
        ("\"udp five four two four\"", "error", "shop"),
        ("\"udp three one six four\"", "warning", "cron"),
        ("\"tcp octet counted\"", "info", "api"),
        ("\"tcp newline framed\"", "critical", "api"),
    ] {
        let hit = eventually(10, || {
            let server = &server;
            let token = &token;
            async move {
                let (_, page) = get(server, token, "/api/v1/logs/search", &[("q", query)]).await;
                page["hits"].as_array().and_then(|h| h.first().cloned())
            }
        })
        .await;
        assert_eq!((hit["level"].as_str(), hit["service"].as_str()), (Some(level), Some(service)), "{hit}");
    }
    let (_, page) = get(&server, &token, "/api/v1/logs/search", &[("q", "category:auth meta@1.order:42")]).await;
    assert_eq!(page["hits"].as_array().unwrap().len(), 1, "{page}");
    server.stop().await;
}

fn tool(variable: &str, what: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: {what}. Run `source .ci/services.sh` (it installs the log clients) and retry")
    })
}

#[tokio::test]
async fn rsyslog_forwards_into_hubmon_over_tcp() {
    let rsyslogd = tool("HUBMON_TEST_RSYSLOGD", "the path of rsyslogd (Debian package rsyslog)");
    let tcp = free_port();
    let server = TestServer::start_with(Backend::Sqlite, |c| c.logs.syslog_tcp = format!("127.0.0.1:{tcp}")).await;
    let token = server.admin_token().await;
    let dir = tempfile::tempdir().unwrap();
    let input = free_port();
    let config = format!(
        "global(workDirectory=\"{work}\")\n\
         module(load=\"imudp\")\n\
         input(type=\"imudp\" address=\"127.0.0.1\" port=\"{input}\")\n\
         action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{tcp}\" protocol=\"tcp\" \
                TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\")\n",
        work = dir.path().display()
    );
    let config_path = dir.path().join("rsyslog.conf");
    std::fs::write(&config_path, config).unwrap();
    let mut rsyslog = Command::new(&rsyslogd)
        .args(["-n", "-f"])
        .arg(&config_path)
        .arg("-i")
        .arg(dir.path().join("rsyslog.pid"))
        .spawn()
        .unwrap();
    let found = eventually(30, || {
        let server = &server;
        let token = &token;
        let input = input.to_string();
        async move {
            // rsyslog needs a moment to open its input; resend until a line arrives.
            let _ = Command::new("logger")
                .args([
                    "--server",
                    "127.0.0.1",
                    "--port",
                    &input,
                    "--udp",
                    "-t",
                    "relay",
                    "-p",
                    "user.err",
                    "via rsyslog relay",
                ])
                .status();
            let (_, page) = get(server, token, "/api/v1/logs/search", &[("q", "\"via rsyslog relay\"")]).await;
            page["hits"].as_array().and_then(|h| h.first().cloned())
        }
    })
    .await;
    rsyslog.kill().unwrap();
    rsyslog.wait().unwrap();
    assert_eq!(found["level"], "error", "{found}");
    assert_eq!(found["service"], "relay", "{found}");
    server.stop().await;
}

#[tokio::test]
async fn python_logging_loki_pushes_into_hubmon() {
    let python = tool("HUBMON_TEST_LOKI_PYTHON", "a python with the PyPI package python-logging-loki");
    let (server, token) = server().await;
    let script = r#"
import logging, sys, logging_loki
url, token = sys.argv[1], sys.argv[2]
handler = logging_loki.LokiHandler(url=url, tags={"service": "pyapp"}, version="1", auth=("hubmon", token))
logger = logging.getLogger("py")
logger.addHandler(handler)
logger.error("python says hello", extra={"tags": {"request_id": "py-1"}})
logger.warning("second python line")
"#;
    // tokio's Command: a blocking wait would stall the server running on this same runtime.
    let output = tokio::process::Command::new(&python)
        .args(["-c", script, &server.url("/loki/api/v1/push"), &token])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (_, page) = get(&server, &token, "/api/v1/logs/search", &[("q", "service:pyapp")]).await;
    let hits = page["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 2, "{page}");
    assert_eq!(hits[1]["message"], "python says hello");
    assert_eq!(hits[1]["level"], "error");
    assert_eq!(hits[1]["request_id"], "py-1");
    assert_eq!(hits[0]["level"], "warning");
    server.stop().await;
}

#[tokio::test]
async fn winston_loki_pushes_protobuf_into_hubmon() {
    let dir =
        tool("HUBMON_TEST_WINSTON_DIR", "a directory whose node_modules has the npm packages winston and winston-loki");
    let (server, token) = server().await;
    let script = r#"
const { createLogger } = require('winston');
const LokiTransport = require('winston-loki');
const [url, token] = process.argv.slice(1);
// winston-loki falls back to JSON when snappy cannot load; this test is about its protobuf.
require('snappy');
const transport = new LokiTransport({ host: url, labels: { service: 'nodeapp' }, json: false, batching: false,
  basicAuth: 'hubmon:' + token, onConnectionError: (e) => { console.error(e); process.exitCode = 1; } });
const logger = createLogger({ transports: [transport] });
logger.error('node says hello', { labels: { request_id: 'js-1' } });
logger.info('second node line');
setTimeout(() => {}, 1500);
"#;
    let output = tokio::process::Command::new("node")
        .current_dir(&dir)
        .args(["-e", script, &server.base, &token])
        .output()
        .await
        .expect("node (Debian package nodejs) must be installed");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let hits = eventually(10, || {
        let server = &server;
        let token = &token;
        async move {
            let (_, page) = get(server, token, "/api/v1/logs/search", &[("q", "service:nodeapp")]).await;
            let hits = page["hits"].as_array()?.clone();
            (hits.len() == 2).then_some(hits)
        }
    })
    .await;
    let error = hits
        .iter()
        .find(|h| h["message"].as_str().unwrap().starts_with("node says hello")) // winston-loki appends the meta as JSON
        .unwrap();
    assert_eq!(error["level"], "error", "{error}");
    assert_eq!(error["request_id"], "js-1", "{error}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_line_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let start = || common::process::serve(&data, &[], &[("HUBMON_LOGS_HEAD_MAX_LINES", "3000")]);
    let (mut server, address) = start();
    let token = common::process::create_token(&data, &[], "ingest");
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
    });
    let client = reqwest::Client::new();
    let mut acknowledged = 0u64;
    let mut batch = 0u64;
    loop {
        let payload: String = (0..100)
            .map(|i| {
                json!({"message": format!("crash line {batch} {i}"), "batch": batch, "kind": "crash"}).to_string()
                    + "\n"
            })
            .collect();
        let sent = client
            .post(format!("{address}/api/v1/logs"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(payload)
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == 200 => {
                let result: Value = response.json().await.unwrap_or_default();
                acknowledged += result["accepted"].as_u64().unwrap_or(0);
            }
            Ok(response) => panic!("unexpected answer {}", response.status()),
            Err(_) => break,
        }
        batch += 1;
    }
    killer.await.unwrap();
    assert!(acknowledged > 3000, "too little ingest before the kill to mean anything: {acknowledged}");

    // Read the store's files directly, as the restarted server would.
    let store = hubmon_logstore::LogStore::open(&dir.path().join("logs"), hubmon_logstore::Options::default()).unwrap();
    let query = hubmon_logstore::Expr::parse("kind:crash").unwrap();
    let stored = store.scan(&query, i64::MIN, i64::MAX, usize::MAX).unwrap().len() as u64;
    drop(store);
    assert!(stored >= acknowledged, "lost acknowledged lines: stored {stored}, acknowledged {acknowledged}");
    assert!(stored <= acknowledged + 100, "more than the one in-flight batch extra: {stored} vs {acknowledged}");

    // And the restarted server answers searches over them.
    let (mut again, address) = start();
    let admin_token = common::process::create_token(&data, &[], "viewer");
    let stats: Value = client
        .get(format!("{address}/api/v1/logs/stats"))
        .bearer_auth(&admin_token)
        .query(&[("q", "kind:crash"), ("from", "0")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    again.kill().unwrap();
    again.wait().unwrap();
    assert_eq!(stats["total"].as_u64(), Some(stored), "{stats}");
    println!("acknowledged {acknowledged} lines, {stored} stored after kill -9");
}

/// What Grafana's Loki data source sends: label browsing, a log panel, a metric panel.
#[tokio::test]
async fn grafana_style_loki_queries() {
    let (server, token) = server().await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let base = now - 600_000;
    let mut payload = String::new();
    for i in 0..60i64 {
        payload.push_str(
            &json!({"timestamp": base + i * 10_000, "service": if i % 2 == 0 { "Checkout" } else { "search" },
                "level": if i % 5 == 0 { "error" } else { "info" }, "status": 200 + (i % 3) * 150,
                "message": format!("handled request {i} in {}ms", i * 10)})
            .to_string(),
        );
        payload.push('\n');
    }
    assert_eq!(post_logs(&server, &token, "application/x-ndjson", payload).await.0, 200);
    let loki = |path: &'static str, params: Vec<(&'static str, String)>| {
        let server = &server;
        let token = &token;
        async move {
            let response = server.with_token(Method::GET, path, token).query(&params).send().await.unwrap();
            body(response).await
        }
    };
    let (start, end) = ((base - 1000) * 1_000_000, now * 1_000_000);

    let (status, labels) = loki("/loki/api/v1/labels", vec![]).await;
    assert_eq!(status, 200);
    assert!(labels["data"].as_array().unwrap().contains(&json!("service")), "{labels}");
    let (_, values) = loki("/loki/api/v1/label/service/values", vec![]).await;
    assert_eq!(values["data"], json!(["Checkout", "search"]), "stream label values keep their case");

    let (status, logs) = loki(
        "/loki/api/v1/query_range",
        vec![
            ("query", r#"{service="Checkout"} |= "request" | logfmt | status >= 300"#.into()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("limit", "1000".into()),
            ("direction", "backward".into()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{logs}");
    assert_eq!(logs["data"]["resultType"], "streams");
    let total: usize =
        logs["data"]["result"].as_array().unwrap().iter().map(|s| s["values"].as_array().unwrap().len()).sum();
    // Checkout lines are the even i; status >= 300 is i % 3 != 0: 20 of the 30.
    assert_eq!(total, 20, "{logs}");
    let first = &logs["data"]["result"][0];
    assert_eq!(first["stream"]["service"], "Checkout");
    assert!(first["values"][0][0].as_str().unwrap().len() >= 19, "timestamps in ns");

    let (status, metric) = loki(
        "/loki/api/v1/query_range",
        vec![
            // Grafana's Logs Drilldown and Loki's own docs end pipelines with this.
            (
                "query",
                r#"sum by (level) (count_over_time({service=~"Checkout|search"} | drop __error__, __error_details__ [10m]))"#
                    .into(),
            ),
            ("start", (now / 1000).to_string()),
            ("end", (now / 1000).to_string()),
            ("step", "60".into()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{metric}");
    assert_eq!(metric["data"]["resultType"], "matrix");
    let result = metric["data"]["result"].as_array().unwrap();
    let error = result.iter().find(|s| s["metric"]["level"] == "error").unwrap();
    assert_eq!(error["values"][0][1], "12", "{metric}");

    let (status, instant) = loki(
        "/loki/api/v1/query",
        vec![("query", r#"sum(rate({service="search"} |= "handled" [10m]))"#.into()), ("time", now.to_string())],
    )
    .await;
    assert_eq!(status, 200, "{instant}");
    assert_eq!(instant["data"]["resultType"], "vector");
    assert_eq!(instant["data"]["result"][0]["value"][1], "0.05", "30 lines in 600 s");

    let (status, series) =
        loki("/loki/api/v1/series", vec![("match[]", r#"{service="search"}"#.into()), ("start", start.to_string())])
            .await;
    assert_eq!(status, 200, "{series}");
    assert_eq!(series["data"].as_array().unwrap().len(), 2, "one stream per level: {series}");

    // Grafana's query-size estimate.
    let range = vec![("query", r#"{service="search"}"#.into()), ("start", start.to_string()), ("end", end.to_string())];
    let (status, stats) = loki("/loki/api/v1/index/stats", range).await;
    assert_eq!(status, 200, "{stats}");
    let bytes: usize =
        (0..60).filter(|i| i % 2 == 1).map(|i| format!("handled request {i} in {}ms", i * 10).len()).sum();
    assert_eq!(stats, json!({"streams": 2, "chunks": 2, "entries": 30, "bytes": bytes}));
    let (status, _) = loki("/loki/api/v1/index/stats", vec![("query", "count_over_time({a=\"b\"}[1m])".into())]).await;
    assert_eq!(status, 400, "a metric query is not a selector");

    let (status, error) = loki("/loki/api/v1/query_range", vec![("query", r#"{service="x""#.into())]).await;
    assert_eq!(status, 400);
    assert!(error.to_string().contains("position"), "{error}");
    server.stop().await;
}

/// Grafana's "Live" tail: Loki's WebSocket tail API, driven by Node's own WebSocket client.
#[tokio::test]
async fn loki_tail_over_websocket_sends_history_then_live_lines() {
    use tokio::io::AsyncBufReadExt;
    let (server, token) = server().await;
    let before = "{\"message\":\"before the tail\",\"service\":\"tailed\"}\n".to_string();
    assert_eq!(post_logs(&server, &token, "application/x-ndjson", before).await.0, 200);
    let url = format!(
        "{}/loki/api/v1/tail?query={}&limit=10",
        server.base.replace("http://", "ws://"),
        "%7Bservice%3D%22tailed%22%7D%20%7C%3D%20%22tail%22"
    );
    let script = r#"
const [url, token] = process.argv.slice(1);
const socket = new WebSocket(url, { headers: { Authorization: 'Bearer ' + token } });
socket.onopen = () => console.log('open');
socket.onmessage = (event) => { console.log(event.data); };
socket.onerror = (event) => { console.log('error ' + (event.message || '')); process.exit(1); };
setTimeout(() => process.exit(0), 15000);
"#;
    let mut child = tokio::process::Command::new("node")
        .args(["--experimental-websocket", "--no-warnings", "-e", script, &url, &token])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node (Debian package nodejs, version 20 or later) must be installed");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next =
        async || tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap().unwrap().unwrap();
    let mut first = next().await;
    if first == "open" {
        first = next().await;
    }
    let history: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(history["streams"][0]["values"][0][1], "before the tail", "{history}");
    let live = "{\"message\":\"no match\",\"service\":\"tailed\"}\n{\"message\":\"live tail line\",\"service\":\"tailed\",\"level\":\"error\"}\n";
    assert_eq!(post_logs(&server, &token, "application/x-ndjson", live.to_string()).await.0, 200);
    let message: Value = serde_json::from_str(&next().await).unwrap();
    assert_eq!(message["streams"][0]["values"][0][1], "live tail line", "{message}");
    assert_eq!(message["streams"][0]["stream"]["level"], "error");
    child.kill().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn cli_imports_ndjson_and_plain_text_and_exports_ndjson() {
    const HUBMON: &str = env!("CARGO_BIN_EXE_hubmon");
    let (server, token) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.log");
    let mut text = String::new();
    for i in 0..2500 {
        if i % 2 == 0 {
            text.push_str(&format!("{{\"message\":\"imported json {i}\",\"level\":\"warn\",\"service\":\"cli\"}}\n"));
        } else {
            text.push_str(&format!("plain imported line {i}\n"));
        }
    }
    text.push_str("{broken json\n");
    std::fs::write(&input, text).unwrap();
    let output = tokio::process::Command::new(HUBMON)
        .args(["logs", "import"])
        .arg(&input)
        .args(["--url", &server.base, "--token", &token])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("imported 2500 lines, 1 refused") && stderr.contains("100%"), "{stderr}");

    let exported = dir.path().join("export.ndjson");
    let output = tokio::process::Command::new(HUBMON)
        .args(["logs", "export", "--query", "service:cli level:warning", "--output"])
        .arg(&exported)
        .env("HUBMON_TOKEN", &token)
        .args(["--url", &server.base])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<Value> =
        std::fs::read_to_string(&exported).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1250);
    assert_eq!(lines[0]["service"], "cli");
    assert!(lines[0]["message"].as_str().unwrap().starts_with("imported json"));
    server.stop().await;
}
