//! hubmon's own telemetry: its log output, and the metrics it exposes about itself on
//! `/metrics` (per-route request count, error count and latency, plus process figures).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::config::{LogConfig, LogFormat};

/// Starts hubmon's own logging. Safe to call more than once (later calls do nothing).
pub fn init_logging(config: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.level.0)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    method: String,
    route: String,
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    rule_group: String,
}

/// Rule evaluation figures, handed to the alerting service.
#[derive(Clone, Default)]
pub struct RuleMetrics {
    evaluations: Family<GroupLabels, Counter>,
    failures: Family<GroupLabels, Counter>,
    duration: Family<GroupLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl RuleMetrics {
    /// One evaluation of `group`: how many of its rules failed and how long it took.
    pub fn observe(&self, group: &str, failed_rules: u64, seconds: f64) {
        let labels = GroupLabels { rule_group: group.to_string() };
        self.evaluations.get_or_create(&labels).inc();
        self.failures.get_or_create(&labels).inc_by(failed_rules);
        self.duration.get_or_create(&labels).set(seconds);
    }
}

/// The metrics hubmon keeps about itself.
pub struct Telemetry {
    pub rules: RuleMetrics,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    audit_failures: Counter,
    started_at: f64,
}

/// Prometheus's default buckets: what Grafana panels and recording rules expect.
const LATENCY_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served, by route template and status", requests.clone());
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register("http_request_errors", "HTTP requests answered 4xx or 5xx, by class", errors.clone());
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer HTTP requests",
            prometheus_client::registry::Unit::Seconds,
            durations.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "hubmon_audit_write_failures",
            "Audit entries that could not be written",
            audit_failures.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION").to_string() }).set(1);
        registry.register("hubmon_build_info", "Always 1; labels describe the running build", build);
        let rules = RuleMetrics::default();
        registry.register("hubmon_rule_evaluations", "Rule group evaluations", rules.evaluations.clone());
        registry.register(
            "hubmon_rule_evaluation_failures",
            "Rule evaluations that failed (the rule's expression returned an error)",
            rules.failures.clone(),
        );
        registry.register(
            "hubmon_rule_group_last_duration_seconds",
            "How long the group's last evaluation took",
            rules.duration.clone(),
        );
        let started_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        Self { rules, registry, requests, errors, durations, audit_failures, started_at }
    }

    /// Counts one answered request. `route` is the template (`/api/v1/users/{id}`), never
    /// the raw path, so label values stay few.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels { method: method.to_string(), route: route.to_string(), status: status.to_string() };
        self.requests.get_or_create(&labels).inc();
        if status >= 400 {
            let class = if status >= 500 { "5xx" } else { "4xx" };
            let labels = ErrorLabels { method: method.to_string(), route: route.to_string(), class: class.to_string() };
            self.errors.get_or_create(&labels).inc();
        }
        let labels = RouteLabels { method: method.to_string(), route: route.to_string() };
        self.durations.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    pub fn audit_write_failed(&self) {
        self.audit_failures.inc();
    }

    /// The exposition text for `/metrics`.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut text, &self.registry).is_err() {
            text.clear();
        }
        process_metrics(&mut text, self.started_at);
        text.push_str("# EOF\n");
        text
    }
}

/// The standard `process_*` metrics, read from /proc where there is one.
fn process_metrics(out: &mut String, started_at: f64) {
    let _ = writeln!(out, "# HELP process_start_time_seconds Start time of the process since the Unix epoch.");
    let _ = writeln!(out, "# TYPE process_start_time_seconds gauge");
    let _ = writeln!(out, "process_start_time_seconds {started_at}");
    let page_size = 4096.0;
    let ticks_per_second = 100.0;
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        let fields: Vec<f64> = statm.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        if let [virtual_pages, resident_pages, ..] = fields[..] {
            let _ = writeln!(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.");
            let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
            let _ = writeln!(out, "process_resident_memory_bytes {}", resident_pages * page_size);
            let _ = writeln!(out, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.");
            let _ = writeln!(out, "# TYPE process_virtual_memory_bytes gauge");
            let _ = writeln!(out, "process_virtual_memory_bytes {}", virtual_pages * page_size);
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let cpu_ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
        let _ = writeln!(out, "# HELP process_cpu_seconds Total user and system CPU time spent in seconds.");
        let _ = writeln!(out, "# TYPE process_cpu_seconds counter");
        let _ = writeln!(out, "process_cpu_seconds_total {}", cpu_ticks / ticks_per_second);
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(out, "# HELP process_open_fds Number of open file descriptors.");
        let _ = writeln!(out, "# TYPE process_open_fds gauge");
        let _ = writeln!(out, "process_open_fds {}", entries.count());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_per_route_counts_errors_and_latency() {
        let telemetry = Telemetry::new();
        telemetry.observe_request("GET", "/api/v1/users/{id}", 200, Duration::from_millis(3));
        telemetry.observe_request("GET", "/api/v1/users/{id}", 404, Duration::from_millis(30));
        let text = telemetry.render();
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="/api/v1/users/{id}",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_request_errors_total{method="GET",route="/api/v1/users/{id}",class="4xx"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/v1/users/{id}"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("process_start_time_seconds"));
        assert!(text.ends_with("# EOF\n"));
    }
}
