//! Host metrics: what node_exporter would report about this machine, read from procfs and
//! sysfs, plus hubmon's convenience gauges (`hubmon_*_usage_percent`), and NVIDIA GPUs through
//! NVML ([`GpuCollector`]).
//!
//! Layout: one file per area, each owning its sources and the state it keeps between
//! collections (`cpu` the previous CPU times for the usage gauges, `filesystem` the mounts
//! whose statvfs hangs, on a helper thread), `config` the configuration section, `gpu` the
//! NVML collector. [`HostCollector`] only sequences the areas and owns no metric itself.
//!
//! Invariants:
//! - Every `node_*` series has node_exporter's name, label names and unit, so its dashboards
//!   and queries work unchanged; the `host` integration test checks this against the real
//!   node_exporter. hubmon's own additions are named `hubmon_*`.
//! - A collection never fails: a source that is missing or unreadable (no /proc/diskstats in a
//!   container) gives no series and one debug log line per collector, and the rest goes on.
//! - A collection is cheap enough to run every second: each file is read once into a buffer
//!   that is kept, and patterns are compiled when the configuration is parsed.
//! - It reads; it never writes anything under procfs, sysfs or rootfs.

mod config;
mod cpu;
mod disk;
mod filesystem;
mod gpu;
mod memory;
mod network;
mod proc_file;
mod system;

use hubmon_model::{Labels, METRIC_NAME, Sample, SeriesSamples};
use tracing::debug;

pub use config::{HostConfig, Pattern};
pub use gpu::GpuCollector;

/// Collects host metrics from procfs and sysfs. Keeps state between calls (previous CPU
/// times, read buffers), so keep one and call [`HostCollector::collect`] on every tick.
pub struct HostCollector {
    cpu: cpu::CpuCollector,
    memory: memory::MemoryCollector,
    filesystem: filesystem::FilesystemCollector,
    disk: disk::DiskCollector,
    network: network::NetworkCollector,
    system: system::SystemCollector,
}

impl HostCollector {
    /// Builds the collector; reads nothing yet. Paths that do not exist are not an error: their
    /// series are simply absent. The first collection starts one helper thread,
    /// `hubmon-statvfs`, so that a hung network filesystem cannot block collections.
    pub fn new(config: HostConfig) -> Self {
        Self {
            cpu: cpu::CpuCollector::new(&config),
            memory: memory::MemoryCollector::new(&config),
            filesystem: filesystem::FilesystemCollector::new(&config),
            disk: disk::DiskCollector::new(&config),
            network: network::NetworkCollector::new(&config),
            system: system::SystemCollector::new(&config),
        }
    }

    /// Reads every source once and returns one sample per series, all at `timestamp_ms`.
    ///
    /// `timestamp_ms` is also the value of `node_time_seconds` (as seconds), so pass the wall
    /// clock's now. The usage-percent gauges cover the time since the previous call; the
    /// first call reports averages since boot.
    pub fn collect(&mut self, timestamp_ms: i64) -> Vec<SeriesSamples> {
        let mut batch = Batch::new(timestamp_ms);
        self.cpu.collect(&mut batch);
        self.memory.collect(&mut batch);
        self.filesystem.collect(&mut batch);
        self.disk.collect(&mut batch);
        self.network.collect(&mut batch);
        self.system.collect(&mut batch);
        batch.series
    }
}

/// The series of one collection, all at the same timestamp.
pub(crate) struct Batch {
    timestamp: i64,
    series: Vec<SeriesSamples>,
}

impl Batch {
    fn new(timestamp: i64) -> Self {
        // About 250 series on a small VM; sized so most hosts never reallocate.
        Self { timestamp, series: Vec::with_capacity(512) }
    }

    /// Adds one series. Names and label names are ours and valid; a name built from a file's
    /// contents (a /proc/meminfo key) that is not a valid metric name is skipped, not reported.
    fn push(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut pairs = Vec::with_capacity(labels.len() + 1);
        pairs.push((METRIC_NAME.to_string(), name.to_string()));
        pairs.extend(labels.iter().map(|(label, value)| (label.to_string(), value.to_string())));
        match Labels::new_series(pairs) {
            Ok(labels) => self.series.push(SeriesSamples { labels, samples: vec![Sample::new(self.timestamp, value)] }),
            Err(error) => debug!(metric = name, %error, "host series skipped: invalid name or labels"),
        }
    }

    /// The time of this collection in seconds since the epoch.
    fn timestamp_seconds(&self) -> f64 {
        self.timestamp as f64 / 1000.0
    }
}

/// `part / whole` as a percentage, clamped to 0..=100; `None` when `whole` is not positive.
fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| (part / whole * 100.0).clamp(0.0, 100.0))
}
