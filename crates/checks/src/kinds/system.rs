//! `system`: this host's CPU, memory and disk usage against thresholds, from the same host
//! collector that writes `hubmon_*_usage_percent` (crates/ingest), so the check and the
//! charts agree.
//!
//! The probe keeps its own collector: CPU usage is the busy share since the previous run, so
//! it covers the check's interval. The first run primes the collector and measures over a
//! short pause instead of reporting the average since boot.

use std::sync::Arc;
use std::time::Duration;

use hubmon_ingest::host::{HostCollector, HostConfig};
use hubmon_model::{HealthStatus, SeriesSamples};
use parking_lot::Mutex;

use crate::definition::SystemTarget;
use crate::kinds::Failure;
use crate::status::Observation;

const PRIMING_PAUSE: Duration = Duration::from_millis(250);

pub struct SystemProbe {
    collector: Arc<Mutex<(HostCollector, bool)>>,
    thresholds: SystemTarget,
}

/// The figures one run reads.
#[derive(Debug, Default)]
struct Usage {
    cpu: Option<f64>,
    memory: Option<f64>,
    /// Every measured filesystem: mount point and percent used.
    disks: Vec<(String, f64)>,
}

impl SystemProbe {
    pub fn new(thresholds: &SystemTarget, host: &HostConfig) -> Self {
        let mut config = host.clone();
        config.gpu = false;
        Self { collector: Arc::new(Mutex::new((HostCollector::new(config), false))), thresholds: thresholds.clone() }
    }

    pub async fn run(&self) -> Result<Observation, Failure> {
        let collector = self.collector.clone();
        let usage = tokio::task::spawn_blocking(move || {
            let mut guard = collector.lock();
            let (collector, primed) = &mut *guard;
            if !*primed {
                collector.collect(hubmon_model::Timestamp::now().as_millis());
                std::thread::sleep(PRIMING_PAUSE);
                *primed = true;
            }
            read_usage(collector.collect(hubmon_model::Timestamp::now().as_millis()))
        })
        .await
        .map_err(|e| Failure::new(format!("the host collector failed: {e}")))?;
        Ok(judge(&usage, &self.thresholds))
    }
}

fn read_usage(batch: Vec<SeriesSamples>) -> Usage {
    let mut usage = Usage::default();
    for series in batch {
        let Some(value) = series.samples.last().map(|s| s.value).filter(|v| v.is_finite()) else { continue };
        match series.labels.metric_name() {
            Some("hubmon_cpu_usage_percent") => usage.cpu = Some(value),
            Some("hubmon_memory_usage_percent") => usage.memory = Some(value),
            Some("hubmon_disk_usage_percent") => {
                usage.disks.push((series.labels.get("mountpoint").unwrap_or("?").to_string(), value))
            }
            _ => {}
        }
    }
    usage
}

fn judge(usage: &Usage, limits: &SystemTarget) -> Observation {
    let fullest = usage.disks.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    let figures = [
        ("cpu", usage.cpu, limits.cpu_degraded, limits.cpu_unhealthy),
        ("memory", usage.memory, limits.memory_degraded, limits.memory_unhealthy),
        ("disk", fullest.map(|d| d.1), limits.disk_degraded, limits.disk_unhealthy),
    ];
    if figures.iter().all(|f| f.1.is_none()) {
        return Observation::unhealthy("no CPU, memory or disk figures could be read from procfs");
    }
    let describe = |what: &str, value: f64| match (what, fullest) {
        ("disk", Some((mount, _))) => format!("disk {value:.1} % ({mount})"),
        _ => format!("{what} {value:.1} %"),
    };
    let summary: Vec<String> =
        figures.iter().filter_map(|(what, value, ..)| value.map(|v| describe(what, v))).collect();
    let mut status = HealthStatus::Healthy;
    let mut reasons = Vec::new();
    for (what, value, degraded, unhealthy) in figures {
        let Some(value) = value else { continue };
        if value >= unhealthy {
            status = HealthStatus::Unhealthy;
            reasons.push(format!("{} at or above {unhealthy} %", describe(what, value)));
        } else if value >= degraded {
            if status == HealthStatus::Healthy {
                status = HealthStatus::Degraded;
            }
            reasons.push(format!("{} at or above {degraded} %", describe(what, value)));
        }
    }
    let message = if reasons.is_empty() { summary.join(", ") } else { reasons.join("; ") };
    let mut observation = Observation { status, ..Observation::healthy(message) };
    if let Some(cpu) = usage.cpu {
        observation = observation.detail("cpu_percent", round(cpu));
    }
    if let Some(memory) = usage.memory {
        observation = observation.detail("memory_percent", round(memory));
    }
    if let Some((mount, percent)) = fullest {
        observation = observation.detail("disk_percent", round(*percent)).detail("disk_mountpoint", mount.clone());
    }
    let disks: serde_json::Map<String, serde_json::Value> =
        usage.disks.iter().map(|(mount, percent)| (mount.clone(), round(*percent).into())).collect();
    observation.detail("disks", disks)
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(cpu: f64, memory: f64, disk: f64) -> Usage {
        Usage { cpu: Some(cpu), memory: Some(memory), disks: vec![("/".into(), 10.0), ("/data".into(), disk)] }
    }

    #[test]
    fn thresholds_give_healthy_degraded_and_unhealthy() {
        let limits = SystemTarget::default();
        let fine = judge(&usage(10.0, 50.0, 50.0), &limits);
        assert_eq!(fine.status, HealthStatus::Healthy);
        assert_eq!(fine.message, "cpu 10.0 %, memory 50.0 %, disk 50.0 % (/data)");
        let busy = judge(&usage(85.0, 50.0, 50.0), &limits);
        assert_eq!(busy.status, HealthStatus::Degraded);
        assert_eq!(busy.message, "cpu 85.0 % at or above 80 %");
        let full = judge(&usage(85.0, 50.0, 96.0), &limits);
        assert_eq!(full.status, HealthStatus::Unhealthy);
        assert!(full.message.contains("disk 96.0 % (/data) at or above 95 %"), "{}", full.message);
        assert_eq!(full.details["disk_mountpoint"], "/data");
        assert_eq!(judge(&Usage::default(), &limits).status, HealthStatus::Unhealthy);
    }

    #[tokio::test]
    async fn this_host_is_measured() {
        let probe = SystemProbe::new(&SystemTarget::default(), &HostConfig::default());
        let observation = probe.run().await.unwrap();
        let cpu = observation.details["cpu_percent"].as_f64().unwrap_or(-1.0);
        let memory = observation.details["memory_percent"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=100.0).contains(&cpu), "{observation:?}");
        assert!((0.0..=100.0).contains(&memory), "{observation:?}");
    }
}
