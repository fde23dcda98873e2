//! PromQL conformance against the real Prometheus 2.42 (Debian's `prometheus`, installed by
//! `.ci/services.sh`).
//!
//! The same synthetic series (counters with resets, gauges, a histogram, series that start and
//! stop, stale markers, NaN) are remote-written into hubmon and into Prometheus's remote-write
//! receiver, then every query of `conformance/queries.txt` is evaluated by both as instant
//! queries at three times and as a range query, and the answers are compared: the same
//! `resultType`, the same label sets, values within 1e-9 relative, the same order where
//! Prometheus defines one (`sort`, `sort_desc`), or, when Prometheus refuses, the same error
//! type. For `topk`/`bottomk` the chosen values are compared per step, since which of several
//! equal values Prometheus keeps depends on its storage's series order. The run prints `N passed, M failed` and writes every difference to
//! `target/conformance-report.txt`.
//!
//! Deliberate differences are listed, with their reason, in
//! `conformance/known-differences.txt`; they count as failed. The test fails on any other
//! difference, and on a listed one that no longer differs (so the list stays true).

#![allow(clippy::unwrap_used, clippy::zombie_processes)]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use hubmon_ingest::remote_write::{Label, ProtoSample, TimeSeries, WriteRequest, encode};
use serde_json::Value;

const SCRAPE_MS: i64 = 15_000;
const SPAN_MS: i64 = 2 * 3_600_000;
const MINUTE: i64 = 60_000;
/// Prometheus's staleness marker.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// xorshift64*: the data must be the same in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Generated {
    labels: Vec<(String, String)>,
    samples: Vec<(i64, f64)>,
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// Scrape times from `from` to `to` (offsets from t0, ms), with a per-series jitter of a few
/// milliseconds as real scrapes have, so extrapolation is exercised off the grid.
fn times(t0: i64, from: i64, to: i64, jitter: i64) -> impl Iterator<Item = i64> {
    (0..).map(move |i| from + i * SCRAPE_MS).take_while(move |&o| o <= to).map(move |o| t0 + o + jitter)
}

fn dataset(t0: i64) -> Vec<Generated> {
    let mut rng = Rng(0xC0FF_EE11);
    let mut out = Vec::new();
    let mut jitter = 0;
    let mut next_jitter = || {
        jitter = (jitter + 7) % 23;
        jitter
    };

    // Counters, some with resets.
    for instance in ["i1", "i2", "i3"] {
        for method in ["GET", "POST"] {
            for code in ["200", "500"] {
                let reset_every = 30 + rng.below(60) as usize;
                let mut value = 0.0;
                let samples = times(t0, 0, SPAN_MS, next_jitter())
                    .enumerate()
                    .map(|(i, t)| {
                        if code == "500" && i > 0 && i % reset_every == 0 {
                            value = rng.below(3) as f64;
                        } else {
                            value += rng.below(if code == "200" { 40 } else { 5 }) as f64;
                        }
                        (t, value)
                    })
                    .collect();
                out.push(Generated {
                    labels: labels(&[
                        ("__name__", "conf_http_requests_total"),
                        ("job", "api"),
                        ("instance", instance),
                        ("method", method),
                        ("code", code),
                    ]),
                    samples,
                });
            }
        }
    }

    // Gauges: slow waves with noise, some below zero.
    for (n, instance) in ["i1", "i2", "i3"].into_iter().enumerate() {
        for (m, zone) in ["a", "b"].into_iter().enumerate() {
            let base = 10.0 + 8.0 * n as f64 - 12.0 * m as f64;
            let samples = times(t0, 0, SPAN_MS, next_jitter())
                .enumerate()
                .map(|(i, t)| {
                    let wave = 9.0 * (i as f64 / 17.0).sin();
                    let noise = rng.below(1000) as f64 / 250.0;
                    (t, base + wave + noise)
                })
                .collect();
            out.push(Generated {
                labels: labels(&[
                    ("__name__", "conf_cpu_temp_celsius"),
                    ("job", "node"),
                    ("instance", instance),
                    ("zone", zone),
                ]),
                samples,
            });
        }
    }

    // A classic histogram per instance.
    let bounds = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
    for instance in ["i1", "i2"] {
        let mut buckets = vec![0.0; bounds.len()];
        let (mut sum, mut count) = (0.0, 0.0);
        let mut rows: Vec<Vec<(i64, f64)>> = vec![Vec::new(); bounds.len() + 2];
        for t in times(t0, 0, SPAN_MS, next_jitter()) {
            for _ in 0..rng.below(20) {
                let latency = (rng.below(3000) as f64 / 1000.0).powi(2) / 3.0;
                for (b, bound) in bounds.iter().enumerate() {
                    if *bound == "+Inf" || latency <= bound.parse::<f64>().unwrap() {
                        buckets[b] += 1.0;
                    }
                }
                sum += latency;
                count += 1.0;
            }
            for (b, value) in buckets.iter().enumerate() {
                rows[b].push((t, *value));
            }
            rows[bounds.len()].push((t, sum));
            rows[bounds.len() + 1].push((t, count));
        }
        for (b, samples) in rows.into_iter().enumerate() {
            let mut pairs = vec![("job", "api"), ("instance", instance)];
            let name = match b {
                b if b < bounds.len() => {
                    pairs.push(("le", bounds[b]));
                    "conf_req_duration_seconds_bucket"
                }
                b if b == bounds.len() => "conf_req_duration_seconds_sum",
                _ => "conf_req_duration_seconds_count",
            };
            pairs.push(("__name__", name));
            out.push(Generated { labels: labels(&pairs), samples });
        }
    }

    // A batch job that runs from 20 to 60 minutes and ends with a stale marker ...
    let mut samples: Vec<(i64, f64)> =
        times(t0, 20 * MINUTE, 60 * MINUTE, next_jitter()).map(|t| (t, ((t - t0) / 1000) as f64)).collect();
    let last = samples.last().unwrap().0;
    samples.push((last + SCRAPE_MS, f64::from_bits(STALE_NAN)));
    out.push(Generated {
        labels: labels(&[("__name__", "conf_batch_last_success"), ("job", "batch"), ("instance", "b1")]),
        samples,
    });
    // ... and one from 30 to 70 minutes that just stops.
    out.push(Generated {
        labels: labels(&[("__name__", "conf_batch_progress"), ("job", "batch"), ("instance", "b2")]),
        samples: times(t0, 30 * MINUTE, 70 * MINUTE, next_jitter())
            .enumerate()
            .map(|(i, t)| (t, (i % 100) as f64 / 100.0))
            .collect(),
    });
    // Present for ten minutes, absent (stale) for ten, and so on.
    let mut samples = Vec::new();
    let flappy_jitter = next_jitter();
    for block in (0..SPAN_MS / (10 * MINUTE)).step_by(2) {
        let from = block * 10 * MINUTE;
        samples.extend(times(t0, from, from + 10 * MINUTE - SCRAPE_MS, flappy_jitter).map(|t| (t, (block + 1) as f64)));
        samples.push((t0 + from + 10 * MINUTE + flappy_jitter, f64::from_bits(STALE_NAN)));
    }
    out.push(Generated { labels: labels(&[("__name__", "conf_flappy"), ("job", "flap")]), samples });
    // Info series, always 1.
    for (instance, version) in [("i1", "1.2.3"), ("i2", "1.3.0"), ("i3", "1.3.0")] {
        out.push(Generated {
            labels: labels(&[("__name__", "conf_info"), ("instance", instance), ("version", version)]),
            samples: times(t0, 0, SPAN_MS, next_jitter()).map(|t| (t, 1.0)).collect(),
        });
    }
    // A gauge that is NaN now and then (an ordinary NaN, not a stale marker).
    out.push(Generated {
        labels: labels(&[("__name__", "conf_nan_gauge"), ("job", "node"), ("instance", "i1")]),
        samples: times(t0, 0, SPAN_MS, next_jitter())
            .enumerate()
            .map(|(i, t)| (t, if i % 13 == 5 { f64::NAN } else { i as f64 / 4.0 }))
            .collect(),
    });
    out
}

/// Remote-writes the data set in time order, ten minutes of every series per request, as a
/// fleet of scrapers would: Prometheus's head only accepts samples near its newest one.
async fn write_all(client: &reqwest::Client, url: &str, token: Option<&str>, data: &[Generated], t0: i64) {
    let slice = 10 * MINUTE;
    let mut from = t0;
    while from <= t0 + SPAN_MS + MINUTE {
        let timeseries: Vec<TimeSeries> = data
            .iter()
            .map(|g| TimeSeries {
                labels: g.labels.iter().map(|(n, v)| Label { name: n.clone(), value: v.clone() }).collect(),
                samples: g
                    .samples
                    .iter()
                    .filter(|(t, _)| *t >= from && *t < from + slice)
                    .map(|&(timestamp, value)| ProtoSample { timestamp, value })
                    .collect(),
            })
            .filter(|ts| !ts.samples.is_empty())
            .collect();
        if !timeseries.is_empty() {
            let mut request = client
                .post(url)
                .header("content-type", "application/x-protobuf")
                .header("content-encoding", "snappy")
                .header("x-prometheus-remote-write-version", "0.1.0")
                .body(encode(&WriteRequest { timeseries }));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(status.is_success(), "remote write to {url} refused the slice at {from}: {status} {text}");
        }
        from += slice;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_prometheus(dir: &std::path::Path) -> (Peer, String) {
    let version =
        Command::new("prometheus").arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).to_string());
    assert!(
        version.as_deref().unwrap_or("").contains("2.42"),
        "expected Prometheus 2.42 (`source .ci/services.sh`, or apt-get install prometheus), found {version:?}"
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  evaluation_interval: 1m\n").unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot run prometheus; install it with `source .ci/services.sh`");
    let peer = Peer(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/-/ready")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus did not become ready at {base}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (peer, base)
}

/// What is asked (for the report), the form parameters, and whether it is a range query.
type Evaluation = (String, Vec<(&'static str, String)>, bool);

/// One answer, normalised for comparison.
#[derive(Debug)]
enum Answer {
    Error(String),
    Scalar(f64, f64),
    String(String),
    /// (labels, points), in the order given.
    Series(String, Vec<(String, Vec<(f64, f64)>)>),
}

fn parse_value(v: &Value) -> f64 {
    match v.as_str().unwrap() {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap(),
    }
}

fn point(p: &Value) -> (f64, f64) {
    (p[0].as_f64().unwrap(), parse_value(&p[1]))
}

fn normalise(body: &Value) -> Answer {
    if body["status"] != "success" {
        return Answer::Error(body["errorType"].as_str().unwrap_or("?").to_string());
    }
    let data = &body["data"];
    let result = &data["result"];
    let kind = data["resultType"].as_str().unwrap_or("?").to_string();
    match kind.as_str() {
        "scalar" => {
            let (t, v) = point(result);
            Answer::Scalar(t, v)
        }
        "string" => Answer::String(result[1].as_str().unwrap_or("").to_string()),
        _ => {
            let series = result
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let labels: BTreeMap<String, String> = serde_json::from_value(s["metric"].clone()).unwrap();
                    let labels = format!("{labels:?}");
                    let points = match s.get("values") {
                        Some(values) => values.as_array().unwrap().iter().map(point).collect(),
                        None => vec![point(&s["value"])],
                    };
                    (labels, points)
                })
                .collect();
            Answer::Series(kind, series)
        }
    }
}

fn same_number(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// `None` when the answers agree, else what differs.
fn compare(query: &str, hubmon: &Answer, prometheus: &Answer) -> Option<String> {
    match (hubmon, prometheus) {
        (Answer::Error(a), Answer::Error(b)) => {
            (a != b).then(|| format!("error types differ: hubmon {a}, Prometheus {b}"))
        }
        (Answer::Scalar(t1, v1), Answer::Scalar(t2, v2)) => {
            (t1 != t2 || !same_number(*v1, *v2)).then(|| format!("scalar: hubmon {v1}@{t1}, Prometheus {v2}@{t2}"))
        }
        (Answer::String(a), Answer::String(b)) => (a != b).then(|| format!("string: hubmon {a:?}, Prometheus {b:?}")),
        (Answer::Series(k1, s1), Answer::Series(k2, s2)) => {
            if k1 != k2 {
                return Some(format!("resultType: hubmon {k1}, Prometheus {k2}"));
            }
            if query.contains("topk") || query.contains("bottomk") {
                return compare_selected_values(&a_values(s1), &a_values(s2));
            }
            let ordered = query.trim_start().starts_with("sort");
            let (mut a, mut b) = (s1.clone(), s2.clone());
            if !ordered {
                a.sort_by(|x, y| x.0.cmp(&y.0));
                b.sort_by(|x, y| x.0.cmp(&y.0));
            }
            let names = |s: &[(String, Vec<(f64, f64)>)]| s.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
            if names(&a) != names(&b) {
                return Some(format!(
                    "series differ{}:\n    hubmon:     {:?}\n    Prometheus: {:?}",
                    if ordered { " (or their order)" } else { "" },
                    names(&a),
                    names(&b)
                ));
            }
            for ((labels, pa), (_, pb)) in a.iter().zip(&b) {
                let same = pa.len() == pb.len() && pa.iter().zip(pb).all(|(x, y)| x.0 == y.0 && same_number(x.1, y.1));
                if !same {
                    let first = pa.iter().zip(pb).find(|(x, y)| x.0 != y.0 || !same_number(x.1, y.1));
                    return Some(format!(
                        "{labels}: {} points vs {}; first difference {first:?} (hubmon, Prometheus)",
                        pa.len(),
                        pb.len()
                    ));
                }
            }
            None
        }
        (a, b) => {
            let short = |x: &Answer| {
                let text = format!("{x:?}");
                if text.len() > 300 { format!("{}…", &text[..text.floor_char_boundary(300)]) } else { text }
            };
            Some(format!("hubmon answered {}\n    Prometheus answered {}", short(a), short(b)))
        }
    }
}

/// The values at each timestamp, sorted: what `topk`/`bottomk` define.
fn a_values(series: &[(String, Vec<(f64, f64)>)]) -> BTreeMap<u64, Vec<f64>> {
    let mut out: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for (_, points) in series {
        for &(t, v) in points {
            out.entry((t * 1000.0) as u64).or_default().push(v);
        }
    }
    for values in out.values_mut() {
        values.sort_by(f64::total_cmp);
    }
    out
}

/// `topk`/`bottomk` choose among equal values by the order the store returns series in,
/// which Prometheus leaves undefined (its head returns creation order, its blocks label
/// order): compare the chosen values per timestamp, not which of several equals was chosen.
fn compare_selected_values(ours: &BTreeMap<u64, Vec<f64>>, theirs: &BTreeMap<u64, Vec<f64>>) -> Option<String> {
    if ours.keys().ne(theirs.keys()) {
        return Some(format!("timestamps differ: hubmon {} steps, Prometheus {}", ours.len(), theirs.len()));
    }
    for ((t, a), b) in ours.iter().zip(theirs.values()) {
        if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| !same_number(*x, *y)) {
            return Some(format!("values chosen at {t} differ: hubmon {a:?}, Prometheus {b:?}"));
        }
    }
    None
}

async fn ask(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    params: &[(&str, String)],
    range: bool,
) -> Value {
    let path = if range { "/api/v1/query_range" } else { "/api/v1/query" };
    let mut request = client.post(format!("{base}{path}")).form(params);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    response.json().await.unwrap()
}

fn known_differences() -> BTreeMap<String, String> {
    let text = include_str!("conformance/known-differences.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (query, reason) = l.split_once("\t#").unwrap_or((l, ""));
            (query.trim_end().to_string(), reason.trim().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_answers_match_prometheus_2_42() {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        // Nothing but the data set: no samples of hubmon's own at the current time.
        config.http.record_interval = hubmon_model::PromDuration::from_secs(86_400 * 1000);
    })
    .await;
    let ingest = server.token_for_role("ingest").await;
    let viewer = server.token_for_role("viewer").await;
    let dir = tempfile::tempdir().unwrap();
    let (_prometheus, prom) = start_prometheus(dir.path()).await;

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let t0 = (now / 3_600_000) * 3_600_000 - 3 * 3_600_000;
    let data = dataset(t0);
    let client = reqwest::Client::new();
    write_all(&client, &format!("{prom}/api/v1/write"), None, &data, t0).await;
    write_all(&client, &server.url("/api/v1/write"), Some(&ingest), &data, t0).await;

    let seconds = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    // Both must hold the whole data set, or every comparison below would be of nothing.
    let mut per_name: BTreeMap<&str, usize> = BTreeMap::new();
    for g in &data {
        let name = g.labels.iter().find(|(n, _)| n == "__name__").map(|(_, v)| v.as_str()).unwrap();
        *per_name.entry(name).or_default() += g.samples.iter().filter(|(_, v)| v.to_bits() != STALE_NAN).count();
    }
    for (metric, stored) in per_name {
        let count =
            [("query", format!("sum(count_over_time({metric}[4h]))")), ("time", seconds(t0 + SPAN_MS + MINUTE))];
        for (name, base, token) in
            [("Prometheus", prom.as_str(), None), ("hubmon", server.base.as_str(), Some(viewer.as_str()))]
        {
            let answer = ask(&client, base, token, &count, false).await;
            let held = &answer["data"]["result"][0]["value"][1];
            assert_eq!(held, &stored.to_string(), "{name} does not hold all of {metric}: {answer}");
        }
    }
    let instants = [t0 + 45 * MINUTE + 7_000, t0 + 62 * MINUTE, t0 + 72 * MINUTE + 500];
    let (range_start, range_end, step) = (t0 + 10 * MINUTE + 3_000, t0 + SPAN_MS, 60_000);

    let queries: Vec<&str> = include_str!("conformance/queries.txt").lines().filter(|l| !l.is_empty()).collect();
    assert!(queries.len() >= 300, "the list must hold at least 300 queries");
    let known = known_differences();
    let (mut passed, mut failed) = (0, 0);
    let mut unexpected = Vec::new();
    let mut report = String::new();
    let mut now_passing = Vec::new();
    for line in &queries {
        let (must_fail, query) = match line.strip_prefix('!') {
            Some(q) => (true, q),
            None => (false, *line),
        };
        let mut evaluations: Vec<Evaluation> = instants
            .iter()
            .map(|&t| {
                (
                    format!("instant @{}", seconds(t - t0)),
                    vec![("query", query.to_string()), ("time", seconds(t))],
                    false,
                )
            })
            .collect();
        evaluations.push((
            "range".into(),
            vec![
                ("query", query.to_string()),
                ("start", seconds(range_start)),
                ("end", seconds(range_end)),
                ("step", seconds(step)),
            ],
            true,
        ));
        let mut differences = Vec::new();
        for (what, params, range) in &evaluations {
            let theirs = normalise(&ask(&client, &prom, None, params, *range).await);
            let ours = normalise(&ask(&client, &server.base, Some(&viewer), params, *range).await);
            if must_fail {
                assert!(
                    matches!(theirs, Answer::Error(_)),
                    "queries.txt marks {query:?} as an error case, but Prometheus answered {what}: {theirs:?}"
                );
            }
            if let Some(difference) = compare(query, &ours, &theirs) {
                differences.push(format!("  {what}: {difference}"));
            }
        }
        if differences.is_empty() {
            passed += 1;
            if known.contains_key(query) {
                now_passing.push(query.to_string());
            }
        } else {
            failed += 1;
            report.push_str(&format!("{query}\n{}\n", differences.join("\n")));
            if !known.contains_key(query) {
                unexpected.push(format!("{query}\n{}", differences.join("\n")));
            }
        }
    }
    let summary = format!("{passed} passed, {failed} failed ({} known differences)", known.len());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let _ = std::fs::create_dir_all(&target);
    let path = target.join("conformance-report.txt");
    std::fs::write(&path, format!("PromQL conformance against Prometheus 2.42: {summary}\n\n{report}")).unwrap();
    println!("PromQL conformance against Prometheus 2.42: {summary}");
    eprintln!("PromQL conformance against Prometheus 2.42: {summary}");
    server.stop().await;
    assert!(
        unexpected.is_empty(),
        "{summary}; {} unexpected differences (full report in {}):\n{}",
        unexpected.len(),
        path.display(),
        unexpected.join("\n")
    );
    assert!(
        now_passing.is_empty(),
        "these queries are listed in known-differences.txt but now match Prometheus; remove them: {now_passing:?}"
    );
}
