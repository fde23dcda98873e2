//! The workload: a fleet of hosts, each exporting the same catalogue of 100 series (64 counters,
//! 26 gauges, 10 constants, node_exporter- and HTTP-server-like), sampled every `interval` for
//! `samples` steps ending just before `end_ms`. Values are generated from a seed, so every
//! system receives byte-identical requests.
//!
//! Requests are cut the way a Prometheus remote_write shard cuts them: one request holds a
//! *group* of consecutive series (`series_per_request`) and a *step* of a few consecutive
//! samples of each (`samples_per_series`). Requests are listed step-major, so the whole fleet
//! advances through time together, and each series' samples are in time order.
//!
//! The query benchmark (bench/query.sh) uses a variant of the catalogue, [`Catalogue::Query`]:
//! the same 100 series per host, but each host belongs to one of five jobs (so `sum by (job)`
//! has groups to sum), and the latency histogram has 10 buckets over 3 handlers instead of 6
//! over 5.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use hubmon_ingest::remote_write::{Label, ProtoSample, TimeSeries, WriteRequest, encode};

/// Series every host exports; the catalogue below has exactly this many entries.
pub const SERIES_PER_HOST: usize = 100;

/// What to generate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Spec {
    pub series: usize,
    pub samples_per_series: usize,
    pub interval_ms: i64,
    /// Every sample is before this instant (ms since the epoch).
    pub end_ms: i64,
    pub seed: u64,
    pub catalogue: Catalogue,
}

/// Which per-host catalogue of series to generate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Catalogue {
    /// The ingest benchmark's: jobs "api" and "node" on every host, a 6-bucket histogram.
    #[default]
    Fleet,
    /// The query benchmark's: every host in one of five jobs, a 10-bucket histogram.
    Query,
}

/// The jobs of [`Catalogue::Query`]; host N is in `QUERY_JOBS[N % 5]`.
pub const QUERY_JOBS: [&str; 5] = ["api", "web", "db", "cache", "worker"];

/// The two workloads, and a small one to check the tooling: (series, samples per series).
pub fn preset(name: &str) -> Option<(usize, usize)> {
    match name {
        "A" | "a" => Some((10_000, 8_640)),
        "B" | "b" => Some((100_000, 360)),
        "smoke" => Some((2_000, 1_440)),
        _ => None,
    }
}

impl Spec {
    pub fn total_samples(&self) -> u64 {
        self.series as u64 * self.samples_per_series as u64
    }

    /// The first scrape slot, aligned to the interval; each host adds its own offset within the
    /// interval, so the last sample is still before `end_ms`.
    pub fn start_ms(&self) -> i64 {
        let aligned_end = self.end_ms.div_euclid(self.interval_ms) * self.interval_ms;
        aligned_end - self.samples_per_series as i64 * self.interval_ms
    }
}

/// How samples are cut into requests.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Batching {
    pub series_per_request: usize,
    pub samples_per_series: usize,
}

/// One encoded remote_write request.
pub struct Request {
    /// snappy-compressed protobuf `WriteRequest`.
    pub body: Bytes,
    pub samples: u64,
    /// Which block of series it carries: a group's requests must be sent in step order.
    pub group: usize,
    pub step: usize,
}

/// The whole workload, encoded, in sending order (step-major, then group).
pub struct Encoded {
    pub requests: Vec<Request>,
    pub groups: usize,
    pub steps: usize,
    pub samples: u64,
    pub body_bytes: u64,
}

/// Generates and encodes the workload on `threads` threads (one group at a time each).
pub fn encode_all(spec: &Spec, batching: Batching, threads: usize) -> Encoded {
    let per_request = batching.series_per_request.max(1);
    let per_step = batching.samples_per_series.max(1);
    let groups = spec.series.div_ceil(per_request);
    let steps = spec.samples_per_series.div_ceil(per_step);
    let catalogue = catalogue(spec.catalogue);
    let next_group = AtomicUsize::new(0);
    let done: Mutex<Vec<Request>> = Mutex::new(Vec::with_capacity(groups * steps));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let group = next_group.fetch_add(1, Ordering::Relaxed);
                    if group >= groups {
                        break;
                    }
                    let first = group * per_request;
                    let last = (first + per_request).min(spec.series);
                    let requests = encode_group(spec, &catalogue, group, first..last, per_step, steps);
                    if let Ok(mut done) = done.lock() {
                        done.extend(requests);
                    }
                }
            });
        }
    });
    let mut requests = done.into_inner().unwrap_or_default();
    requests.sort_by_key(|r| (r.step, r.group));
    let samples = requests.iter().map(|r| r.samples).sum();
    let body_bytes = requests.iter().map(|r| r.body.len() as u64).sum();
    Encoded { requests, groups, steps, samples, body_bytes }
}

fn encode_group(
    spec: &Spec,
    catalogue: &[Template],
    group: usize,
    ids: std::ops::Range<usize>,
    per_step: usize,
    steps: usize,
) -> Vec<Request> {
    let mut series: Vec<(Vec<Label>, Generator, i64)> = ids
        .map(|id| {
            let host = id / SERIES_PER_HOST;
            let template = &catalogue[id % SERIES_PER_HOST];
            let mut host_rng = Rng::new(spec.seed ^ 0x05EE_D0F0_4057 ^ host as u64);
            let offset = (host_rng.next_u64() % spec.interval_ms.max(1) as u64) as i64;
            let labels = template.labels(host, spec.catalogue);
            let generator = Generator::new(template.kind, host, Rng::new(spec.seed ^ (id as u64).wrapping_mul(GOLDEN)));
            (labels, generator, spec.start_ms() + offset)
        })
        .collect();
    let mut out = Vec::with_capacity(steps);
    for step in 0..steps {
        let first = step * per_step;
        let last = (first + per_step).min(spec.samples_per_series);
        let mut request = WriteRequest { timeseries: Vec::with_capacity(series.len()) };
        for (labels, generator, first_ts) in &mut series {
            let samples = (first..last)
                .map(|j| ProtoSample { timestamp: *first_ts + j as i64 * spec.interval_ms, value: generator.next() })
                .collect();
            request.timeseries.push(TimeSeries { labels: labels.clone(), samples });
        }
        let samples = (request.timeseries.len() * (last - first)) as u64;
        out.push(Request { body: Bytes::from(encode(&request)), samples, group, step });
    }
    out
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64: small, fast, and good enough for synthetic metric values.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// Roughly standard normal (Irwin–Hall with four terms, rescaled to variance 1).
    fn normal(&mut self) -> f64 {
        (self.unit() + self.unit() + self.unit() + self.unit() - 2.0) * 3f64.sqrt()
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Monotonic integer counter: about `rate` per step with ±25 % jitter; below 1, the chance
    /// of a +1 (error counters that rarely move).
    Counter { rate: f64 },
    /// A percentage, full float precision, noisy around a per-series level (CPU usage).
    Percent,
    /// A float rounded to `decimals`, noisy around `level` (load average, temperature).
    Decimal { level: f64, noise: f64, decimals: i32 },
    /// Whole `unit`s (pages, blocks), drifting around `level` bytes.
    Bytes { level: f64, spread_units: f64, unit: f64 },
    /// A small non-negative integer (open fds, running processes).
    Count { level: f64, spread: f64 },
    /// Never changes (info metrics, capacities); `scale` varies it per host.
    Constant { value: f64, scale: bool },
}

struct Generator {
    kind: Kind,
    rng: Rng,
    value: f64,
    level: f64,
    rate: f64,
}

impl Generator {
    fn new(kind: Kind, host: usize, mut rng: Rng) -> Self {
        let (value, level, rate) = match kind {
            Kind::Counter { rate } => {
                let rate = rate * rng.uniform(0.5, 1.5);
                ((rate.max(0.01) * rng.uniform(1_000.0, 100_000.0)).round(), 0.0, rate)
            }
            Kind::Percent => {
                let level = rng.uniform(5.0, 60.0);
                (level, level, 0.0)
            }
            Kind::Decimal { level, .. } => {
                let level = level * rng.uniform(0.6, 1.4);
                (level, level, 0.0)
            }
            Kind::Bytes { level, unit, .. } => {
                let level = (level * rng.uniform(0.3, 0.9) / unit).round() * unit;
                (level, level, 0.0)
            }
            Kind::Count { level, .. } => {
                let level = level * rng.uniform(0.5, 1.5);
                (level.round(), level, 0.0)
            }
            Kind::Constant { value, scale } => {
                let factor = if scale { [1.0, 2.0, 4.0, 8.0][host % 4] } else { 1.0 };
                (value * factor, 0.0, 0.0)
            }
        };
        Generator { kind, rng, value, level, rate }
    }

    fn next(&mut self) -> f64 {
        let rng = &mut self.rng;
        self.value = match self.kind {
            Kind::Counter { .. } if self.rate < 1.0 => self.value + f64::from(u8::from(rng.unit() < self.rate)),
            Kind::Counter { .. } => self.value + (self.rate * rng.uniform(0.75, 1.25)).round(),
            Kind::Percent => (self.value + 0.3 * (self.level - self.value) + 3.0 * rng.normal()).clamp(0.0, 100.0),
            Kind::Decimal { noise, decimals, .. } => {
                let scale = 10f64.powi(decimals);
                let next = self.value + 0.2 * (self.level - self.value) + noise * rng.normal();
                (next.max(0.0) * scale).round() / scale
            }
            Kind::Bytes { spread_units, unit, .. } => {
                let drift = 0.05 * (self.level - self.value) / unit + spread_units * rng.normal();
                (self.value + drift.round() * unit).max(0.0)
            }
            Kind::Count { spread, .. } => {
                (self.value + 0.2 * (self.level - self.value) + spread * rng.normal()).round().max(0.0)
            }
            Kind::Constant { .. } => self.value,
        };
        self.value
    }
}

/// One entry of the per-host catalogue.
struct Template {
    name: String,
    job: &'static str,
    extra: Vec<(&'static str, String)>,
    kind: Kind,
}

impl Template {
    fn new(name: &str, job: &'static str, extra: &[(&'static str, &str)], kind: Kind) -> Self {
        Template { name: name.to_string(), job, extra: extra.iter().map(|(n, v)| (*n, v.to_string())).collect(), kind }
    }

    /// The series' labels for `host`, sorted by name as Prometheus sends them.
    fn labels(&self, host: usize, catalogue: Catalogue) -> Vec<Label> {
        const REGIONS: [&str; 4] = ["eu-west-1", "us-east-1", "us-west-2", "ap-south-1"];
        let port = if self.job == "api" { 8080 } else { 9100 };
        let job = match catalogue {
            Catalogue::Fleet => self.job,
            Catalogue::Query => QUERY_JOBS[host % QUERY_JOBS.len()],
        };
        let mut labels = vec![
            Label { name: "__name__".into(), value: self.name.clone() },
            Label { name: "env".into(), value: if host.is_multiple_of(10) { "staging" } else { "prod" }.into() },
            Label { name: "instance".into(), value: format!("host-{host:05}:{port}") },
            Label { name: "job".into(), value: job.into() },
            Label { name: "region".into(), value: REGIONS[host % REGIONS.len()].into() },
        ];
        labels.extend(self.extra.iter().map(|(name, value)| Label { name: (*name).into(), value: value.clone() }));
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        labels
    }
}

fn catalogue(catalogue: Catalogue) -> Vec<Template> {
    let mut t = Vec::with_capacity(SERIES_PER_HOST);
    // 64 counters.
    let handlers = ["/api/v1/query", "/api/v1/write", "/login", "/metrics", "/static"];
    // The latency histogram: on which handlers, and (le, share of the requests at or below it).
    let (histogram_handlers, buckets): (&[&str], &[(&str, f64)]) = match catalogue {
        Catalogue::Fleet => {
            (&handlers, &[("0.005", 0.2), ("0.025", 0.6), ("0.1", 0.85), ("0.5", 0.97), ("2.5", 0.995), ("+Inf", 1.0)])
        }
        Catalogue::Query => (
            &handlers[..3],
            &[
                ("0.005", 0.1),
                ("0.01", 0.25),
                ("0.025", 0.5),
                ("0.05", 0.7),
                ("0.1", 0.85),
                ("0.25", 0.93),
                ("0.5", 0.97),
                ("1", 0.99),
                ("2.5", 0.997),
                ("+Inf", 1.0),
            ],
        ),
    };
    let histogram = |t: &mut Vec<Template>, handler: &str| {
        for (le, share) in buckets {
            let extra = [("handler", handler), ("le", *le)];
            let kind = Kind::Counter { rate: 40.0 * share };
            t.push(Template::new("bench_http_request_duration_seconds_bucket", "api", &extra, kind));
        }
    };
    // The order fixes each series' id, and so its values: the fleet's is the ingest runs' order
    // (each handler's counters, then its buckets), the query catalogue's the query runs' order
    // (every counter, then every bucket).
    for handler in handlers {
        for (code, rate) in [("200", 40.0), ("404", 0.5), ("500", 0.05)] {
            let extra = [("code", code), ("handler", handler), ("method", "GET")];
            t.push(Template::new("bench_http_requests_total", "api", &extra, Kind::Counter { rate }));
        }
        if catalogue == Catalogue::Fleet {
            histogram(&mut t, handler);
        }
    }
    if catalogue == Catalogue::Query {
        for handler in histogram_handlers {
            histogram(&mut t, handler);
        }
    }
    for device in ["eth0", "eth1"] {
        for (name, rate) in [
            ("bench_node_network_receive_bytes_total", 1.5e6),
            ("bench_node_network_transmit_bytes_total", 4.0e5),
            ("bench_node_network_receive_packets_total", 1_200.0),
            ("bench_node_network_transmit_packets_total", 900.0),
        ] {
            t.push(Template::new(name, "node", &[("device", device)], Kind::Counter { rate }));
        }
    }
    for device in ["sda", "nvme0n1"] {
        for (name, rate) in [
            ("bench_node_disk_reads_completed_total", 30.0),
            ("bench_node_disk_writes_completed_total", 80.0),
            ("bench_node_disk_read_bytes_total", 1.2e6),
            ("bench_node_disk_written_bytes_total", 3.0e6),
        ] {
            t.push(Template::new(name, "node", &[("device", device)], Kind::Counter { rate }));
        }
    }
    for (name, rate) in [
        ("bench_node_context_switches_total", 25_000.0),
        ("bench_node_intr_total", 12_000.0),
        ("bench_node_forks_total", 15.0),
    ] {
        t.push(Template::new(name, "node", &[], Kind::Counter { rate }));
    }
    // 26 gauges.
    for cpu in 0..8 {
        t.push(Template::new("bench_node_cpu_usage_percent", "node", &[("cpu", &cpu.to_string())], Kind::Percent));
    }
    for (name, noise) in [("bench_node_load1", 0.3), ("bench_node_load5", 0.15), ("bench_node_load15", 0.08)] {
        t.push(Template::new(name, "node", &[], Kind::Decimal { level: 1.5, noise, decimals: 2 }));
    }
    for sensor in ["temp1", "temp2", "temp3", "temp4"] {
        let kind = Kind::Decimal { level: 45.0, noise: 0.5, decimals: 1 };
        t.push(Template::new("bench_node_hwmon_temp_celsius", "node", &[("sensor", sensor)], kind));
    }
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    for name in ["MemAvailable", "Cached", "Buffers", "Active"] {
        let kind = Kind::Bytes { level: 16.0 * GIB, spread_units: 200.0, unit: 4096.0 };
        t.push(Template::new(&format!("bench_node_memory_{name}_bytes"), "node", &[], kind));
    }
    let mounts = ["/", "/var", "/home", "/data"];
    for mountpoint in mounts {
        let kind = Kind::Bytes { level: 200.0 * GIB, spread_units: 20.0, unit: 4096.0 };
        t.push(Template::new("bench_node_filesystem_avail_bytes", "node", &[("mountpoint", mountpoint)], kind));
    }
    t.push(Template::new("bench_process_open_fds", "node", &[], Kind::Count { level: 120.0, spread: 3.0 }));
    t.push(Template::new("bench_node_procs_running", "node", &[], Kind::Count { level: 3.0, spread: 1.5 }));
    t.push(Template::new("bench_node_procs_blocked", "node", &[], Kind::Count { level: 0.2, spread: 0.5 }));
    // 10 constants.
    let constant = |value: f64, scale: bool| Kind::Constant { value, scale };
    t.push(Template::new("bench_up", "node", &[], constant(1.0, false)));
    t.push(Template::new("bench_node_memory_MemTotal_bytes", "node", &[], constant(16.0 * GIB, true)));
    for mountpoint in mounts {
        let kind = constant(500.0 * GIB, true);
        t.push(Template::new("bench_node_filesystem_size_bytes", "node", &[("mountpoint", mountpoint)], kind));
    }
    let uname = [("machine", "x86_64"), ("release", "6.1.0-18-amd64"), ("sysname", "Linux")];
    t.push(Template::new("bench_node_uname_info", "node", &uname, constant(1.0, false)));
    t.push(Template::new("bench_node_boot_time_seconds", "node", &[], constant(1_714_000_000.0, false)));
    t.push(Template::new(
        "bench_node_os_info",
        "node",
        &[("id", "debian"), ("version_id", "12")],
        constant(1.0, false),
    ));
    t.push(Template::new("bench_build_info", "api", &[("version", "1.4.2")], constant(1.0, false)));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(series: usize, samples: usize) -> Spec {
        Spec {
            series,
            samples_per_series: samples,
            interval_ms: 10_000,
            end_ms: 1_700_000_000_000,
            seed: 7,
            catalogue: Catalogue::Fleet,
        }
    }

    #[test]
    fn catalogue_has_one_entry_per_host_series_and_the_stated_mix() {
        for (kind, buckets) in [(Catalogue::Fleet, 6), (Catalogue::Query, 10)] {
            let catalogue = catalogue(kind);
            assert_eq!(catalogue.len(), SERIES_PER_HOST);
            let counters = catalogue.iter().filter(|t| matches!(t.kind, Kind::Counter { .. })).count();
            let constants = catalogue.iter().filter(|t| matches!(t.kind, Kind::Constant { .. })).count();
            assert_eq!((counters, constants), (64, 10));
            let per_handler = catalogue
                .iter()
                .filter(|t| t.name.ends_with("_bucket") && t.extra.contains(&("handler", "/login".to_string())))
                .count();
            assert_eq!(per_handler, buckets, "{kind:?}");
        }
    }

    #[test]
    fn every_series_of_a_host_has_distinct_labels() {
        for kind in [Catalogue::Fleet, Catalogue::Query] {
            let catalogue = catalogue(kind);
            let mut sets: Vec<Vec<(String, String)>> =
                catalogue.iter().map(|t| t.labels(3, kind).into_iter().map(|l| (l.name, l.value)).collect()).collect();
            sets.sort();
            sets.dedup();
            assert_eq!(sets.len(), SERIES_PER_HOST);
        }
    }

    #[test]
    fn the_order_of_each_catalogue_is_the_measured_one() {
        let names = |kind| catalogue(kind).iter().take(46).map(|t| t.name.clone()).collect::<Vec<_>>();
        let (counter, bucket) = ("bench_http_requests_total", "bench_http_request_duration_seconds_bucket");
        let fleet = names(Catalogue::Fleet);
        assert_eq!(
            (fleet[2].as_str(), fleet[3].as_str(), fleet[8].as_str(), fleet[9].as_str()),
            (counter, bucket, bucket, counter)
        );
        let query = names(Catalogue::Query);
        assert!(query[..15].iter().all(|n| n == counter) && query[15..45].iter().all(|n| n == bucket));
    }

    #[test]
    fn the_query_catalogue_puts_each_host_in_one_of_five_jobs() {
        let job = |host: usize| {
            catalogue(Catalogue::Query)
                .iter()
                .map(|t| t.labels(host, Catalogue::Query).into_iter().find(|l| l.name == "job").unwrap().value)
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(job(0).into_iter().collect::<Vec<_>>(), ["api"]);
        assert_eq!(job(7).into_iter().collect::<Vec<_>>(), ["db"]);
    }

    #[test]
    fn requests_cover_every_sample_once_in_step_order() {
        let spec = spec(250, 23);
        let encoded = encode_all(&spec, Batching { series_per_request: 100, samples_per_series: 5 }, 2);
        assert_eq!((encoded.groups, encoded.steps), (3, 5));
        assert_eq!(encoded.samples, 250 * 23);
        let order: Vec<(usize, usize)> = encoded.requests.iter().map(|r| (r.step, r.group)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        let decoded = hubmon_ingest::remote_write::decode(&encoded.requests[0].body, 1 << 24).unwrap();
        assert_eq!(decoded.series.len(), 100);
        let first = &decoded.series[0].samples;
        assert!(first.windows(2).all(|w| w[1].timestamp - w[0].timestamp == 10_000));
        assert!(first[0].timestamp >= spec.start_ms());
    }

    #[test]
    fn last_sample_is_before_the_end() {
        let spec = spec(200, 4);
        let encoded = encode_all(&spec, Batching { series_per_request: 200, samples_per_series: 4 }, 1);
        let decoded = hubmon_ingest::remote_write::decode(&encoded.requests[0].body, 1 << 24).unwrap();
        let newest = decoded.series.iter().flat_map(|s| s.samples.iter().map(|x| x.timestamp)).max().unwrap();
        assert!(newest < spec.end_ms);
    }

    #[test]
    fn counters_never_decrease() {
        let mut generator = Generator::new(Kind::Counter { rate: 0.3 }, 0, Rng::new(1));
        let mut previous = generator.value;
        for _ in 0..1_000 {
            let next = generator.next();
            assert!(next >= previous && next.fract() == 0.0);
            previous = next;
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let batching = Batching { series_per_request: 50, samples_per_series: 3 };
        let a = encode_all(&spec(100, 6), batching, 2);
        let b = encode_all(&spec(100, 6), batching, 1);
        assert!(a.requests.iter().zip(&b.requests).all(|(x, y)| x.body == y.body));
    }
}
