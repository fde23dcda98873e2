//! /proc/stat: CPU times per core (`node_cpu_seconds_total`, `node_cpu_guest_seconds_total`),
//! the kernel's counters (`node_intr_total`, `node_context_switches_total`,
//! `node_forks_total`, `node_boot_time_seconds`, `node_procs_running`, `node_procs_blocked`)
//! and hubmon's CPU usage gauges.
//!
//! Owns the CPU times of the previous collection, from which the usage gauges are computed:
//! - `hubmon_cpu_usage_percent`: the whole machine, busy time over all time since the
//!   previous collection (since boot on the first).
//! - `hubmon_cpu_core_usage_percent{cpu}`: the same per core. A separate name, not a `cpu`
//!   label on the first, so `hubmon_cpu_usage_percent > 80` never fires on one busy core.
//!
//! "Busy" is everything but idle and iowait (a core waiting for I/O is free to run other
//! work), with steal counted as busy (the core was not ours to use) and guest time left out of
//! the total because the kernel already counts it in user and nice. This is how psutil and top
//! compute usage; node_exporter dashboards that compute `1 - rate(idle)` count iowait as busy
//! and read slightly higher on I/O-bound hosts.

use std::path::Path;

use super::proc_file::ProcFile;
use super::{Batch, HostConfig, percent};

/// The modes of `node_cpu_seconds_total`, in /proc/stat's column order.
const MODES: [&str; 8] = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];

/// Time one CPU (or all of them) spent in each mode, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    /// user, nice, system, idle, iowait, irq, softirq, steal: as [`MODES`].
    pub modes: [u64; 8],
    pub guest: u64,
    pub guest_nice: u64,
}

impl CpuTimes {
    /// Parses the numbers after `cpu` / `cpuN`. Kernels before 2.6.33 have fewer columns;
    /// the missing ones read as zero.
    fn parse(columns: &str) -> Self {
        let mut values = [0u64; 10];
        for (slot, column) in values.iter_mut().zip(columns.split_ascii_whitespace()) {
            *slot = column.parse().unwrap_or(0);
        }
        let [user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice] = values;
        Self { modes: [user, nice, system, idle, iowait, irq, softirq, steal], guest, guest_nice }
    }

    /// All ticks, and the busy ones among them (see the module header for what counts).
    fn total_and_busy(&self) -> (u64, u64) {
        let total: u64 = self.modes.iter().sum();
        let [_, _, _, idle, iowait, ..] = self.modes;
        (total, total.saturating_sub(idle + iowait))
    }
}

/// What one read of /proc/stat holds.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Stat {
    /// The `cpu` line: all CPUs together.
    pub total: Option<CpuTimes>,
    /// The `cpuN` lines, as (N, times).
    pub cpus: Vec<(String, CpuTimes)>,
    pub interrupts: Option<u64>,
    pub context_switches: Option<u64>,
    pub boot_time: Option<u64>,
    pub forks: Option<u64>,
    pub procs_running: Option<u64>,
    pub procs_blocked: Option<u64>,
}

impl Stat {
    /// Parses /proc/stat into `self`, reusing its allocations.
    pub(crate) fn parse_into(&mut self, text: &str) {
        self.total = None;
        self.cpus.clear();
        self.interrupts = None;
        self.context_switches = None;
        self.boot_time = None;
        self.forks = None;
        self.procs_running = None;
        self.procs_blocked = None;
        for line in text.lines() {
            let Some((key, rest)) = line.split_once(' ') else { continue };
            // Only the first number matters; `intr` has one column per interrupt after it.
            let first = || rest.split_ascii_whitespace().next().and_then(|value| value.parse().ok());
            match key {
                "cpu" => self.total = Some(CpuTimes::parse(rest)),
                "intr" => self.interrupts = first(),
                "ctxt" => self.context_switches = first(),
                "btime" => self.boot_time = first(),
                "processes" => self.forks = first(),
                "procs_running" => self.procs_running = first(),
                "procs_blocked" => self.procs_blocked = first(),
                _ => {
                    if let Some(index) = key.strip_prefix("cpu") {
                        self.cpus.push((index.to_string(), CpuTimes::parse(rest)));
                    }
                }
            }
        }
    }
}

/// Usage over the time between two readings of one CPU's times.
#[derive(Debug, Default)]
pub(crate) struct UsageTracker {
    previous: Option<CpuTimes>,
    last_percent: Option<f64>,
}

impl UsageTracker {
    /// The busy share since the previous reading, in percent. The first reading, and one
    /// after the counters went backwards (a CPU taken offline and back), give the share since
    /// boot; a reading within the same clock tick as the previous one repeats the last value.
    pub(crate) fn update(&mut self, now: CpuTimes) -> Option<f64> {
        let (total, busy) = now.total_and_busy();
        if let Some(previous) = self.previous {
            let (previous_total, previous_busy) = previous.total_and_busy();
            let idle_now = total - busy;
            let idle_before = previous_total - previous_busy;
            if total == previous_total && busy == previous_busy {
                return self.last_percent;
            }
            if total > previous_total && busy >= previous_busy && idle_now >= idle_before {
                self.previous = Some(now);
                self.last_percent = percent((busy - previous_busy) as f64, (total - previous_total) as f64);
                return self.last_percent;
            }
        }
        self.previous = Some(now);
        self.last_percent = percent(busy as f64, total as f64);
        self.last_percent
    }
}

pub(crate) struct CpuCollector {
    file: ProcFile,
    stat: Stat,
    /// Seconds per clock tick.
    tick: f64,
    total_usage: UsageTracker,
    /// Per core, in /proc/stat's order; looked up by name because cores can go offline.
    core_usage: Vec<(String, UsageTracker)>,
}

impl CpuCollector {
    pub(crate) fn new(config: &HostConfig) -> Self {
        Self::with_ticks_per_second(&config.procfs, ticks_per_second())
    }

    fn with_ticks_per_second(procfs: &Path, ticks_per_second: u64) -> Self {
        Self {
            file: ProcFile::new(procfs.join("stat")),
            stat: Stat::default(),
            tick: 1.0 / ticks_per_second.max(1) as f64,
            total_usage: UsageTracker::default(),
            core_usage: Vec::new(),
        }
    }

    pub(crate) fn collect(&mut self, batch: &mut Batch) {
        let Some(text) = self.file.read() else { return };
        self.stat.parse_into(text);
        let stat = &self.stat;
        for (cpu, times) in &stat.cpus {
            for (mode, ticks) in MODES.iter().zip(times.modes) {
                batch.push("node_cpu_seconds_total", &[("cpu", cpu), ("mode", mode)], ticks as f64 * self.tick);
            }
            let guest = [("user", times.guest), ("nice", times.guest_nice)];
            for (mode, ticks) in guest {
                batch.push("node_cpu_guest_seconds_total", &[("cpu", cpu), ("mode", mode)], ticks as f64 * self.tick);
            }
        }
        let counters = [
            ("node_intr_total", stat.interrupts),
            ("node_context_switches_total", stat.context_switches),
            ("node_forks_total", stat.forks),
            ("node_boot_time_seconds", stat.boot_time),
            ("node_procs_running", stat.procs_running),
            ("node_procs_blocked", stat.procs_blocked),
        ];
        for (name, value) in counters {
            if let Some(value) = value {
                batch.push(name, &[], value as f64);
            }
        }

        if let Some(percent) = stat.total.and_then(|total| self.total_usage.update(total)) {
            batch.push("hubmon_cpu_usage_percent", &[], percent);
        }
        // Keep trackers only for the cores present now, in their order.
        let mut trackers = std::mem::take(&mut self.core_usage);
        for (index, (cpu, times)) in stat.cpus.iter().enumerate() {
            // Cores almost always come in the same order, so look at the same place first.
            let mut tracker = match trackers.get_mut(index) {
                Some((name, tracker)) if name == cpu => std::mem::take(tracker),
                _ => trackers
                    .iter_mut()
                    .find(|(name, _)| name == cpu)
                    .map(|(_, t)| std::mem::take(t))
                    .unwrap_or_default(),
            };
            if let Some(percent) = tracker.update(*times) {
                batch.push("hubmon_cpu_core_usage_percent", &[("cpu", cpu)], percent);
            }
            self.core_usage.push((cpu.clone(), tracker));
        }
    }
}

/// The kernel's USER_HZ, the unit of /proc/stat's times, as `sysconf(_SC_CLK_TCK)` reports
/// it (from the auxiliary vector, no syscall). It is 100 on every Linux architecture hubmon
/// runs on, and node_exporter hard-codes 100; asking costs nothing and stays right if a kernel
/// ever differs.
fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(user: u64, system: u64, idle: u64, iowait: u64, steal: u64) -> CpuTimes {
        CpuTimes { modes: [user, 0, system, idle, iowait, 0, 0, steal], guest: 0, guest_nice: 0 }
    }

    #[test]
    fn parses_cpu_lines_and_counters() {
        let text = "cpu  10 1 5 100 3 2 1 4 7 6\n\
                    cpu0 6 1 3 50 2 1 1 2 7 6\n\
                    cpu1 4 0 2 50 1 1 0 2 0 0\n\
                    intr 12345 0 9 0\n\
                    ctxt 999\n\
                    btime 1700000000\n\
                    processes 4242\n\
                    procs_running 3\n\
                    procs_blocked 1\n\
                    softirq 5 1 1\n";
        let mut stat = Stat::default();
        stat.parse_into(text);
        assert_eq!(stat.total, Some(CpuTimes { modes: [10, 1, 5, 100, 3, 2, 1, 4], guest: 7, guest_nice: 6 }));
        assert_eq!(stat.cpus.len(), 2);
        assert_eq!(stat.cpus[1].0, "1");
        assert_eq!(stat.cpus[1].1.modes, [4, 0, 2, 50, 1, 1, 0, 2]);
        assert_eq!(stat.interrupts, Some(12345));
        assert_eq!(stat.context_switches, Some(999));
        assert_eq!(stat.boot_time, Some(1_700_000_000));
        assert_eq!(stat.forks, Some(4242));
        assert_eq!(stat.procs_running, Some(3));
        assert_eq!(stat.procs_blocked, Some(1));
        // A second parse replaces, not appends.
        stat.parse_into(text);
        assert_eq!(stat.cpus.len(), 2);
    }

    #[test]
    fn old_kernels_with_fewer_columns_read_as_zero() {
        assert_eq!(CpuTimes::parse("1 2 3 4"), CpuTimes { modes: [1, 2, 3, 4, 0, 0, 0, 0], guest: 0, guest_nice: 0 });
    }

    #[test]
    fn first_reading_reports_since_boot() {
        let mut tracker = UsageTracker::default();
        // busy = user + system + steal = 20 + 10 + 10 = 40 of 40 + idle 50 + iowait 10 = 100.
        assert_eq!(tracker.update(times(20, 10, 50, 10, 10)), Some(40.0));
    }

    #[test]
    fn later_readings_report_the_delta() {
        let mut tracker = UsageTracker::default();
        tracker.update(times(20, 10, 50, 10, 10));
        // +30 user, +10 system, +55 idle, +5 iowait: 40 busy of 100.
        assert_eq!(tracker.update(times(50, 20, 105, 15, 10)), Some(40.0));
        // All idle since: 0 %.
        assert_eq!(tracker.update(times(50, 20, 205, 15, 10)), Some(0.0));
        // All busy since: 100 %.
        assert_eq!(tracker.update(times(100, 70, 205, 15, 10)), Some(100.0));
    }

    #[test]
    fn iowait_is_idle_and_steal_is_busy() {
        let mut tracker = UsageTracker::default();
        tracker.update(times(0, 0, 0, 0, 0));
        assert_eq!(tracker.update(times(0, 0, 0, 100, 0)), Some(0.0));
        assert_eq!(tracker.update(times(0, 0, 0, 100, 25)), Some(100.0));
        assert_eq!(tracker.update(times(0, 0, 75, 100, 50)), Some(25.0));
    }

    #[test]
    fn guest_time_is_not_counted_twice() {
        let mut tracker = UsageTracker::default();
        let mut reading = times(50, 0, 50, 0, 0);
        reading.guest = 50; // already inside user's 50
        assert_eq!(tracker.update(reading), Some(50.0));
    }

    #[test]
    fn no_elapsed_tick_repeats_the_last_value() {
        let mut tracker = UsageTracker::default();
        tracker.update(times(10, 0, 90, 0, 0));
        assert_eq!(tracker.update(times(30, 0, 170, 0, 0)), Some(20.0));
        assert_eq!(tracker.update(times(30, 0, 170, 0, 0)), Some(20.0));
    }

    #[test]
    fn counters_going_backwards_restart_from_since_boot() {
        let mut tracker = UsageTracker::default();
        tracker.update(times(500, 0, 500, 0, 0));
        assert_eq!(tracker.update(times(30, 0, 70, 0, 0)), Some(30.0));
    }

    #[test]
    fn nothing_counted_yet_gives_no_value() {
        assert_eq!(UsageTracker::default().update(CpuTimes::default()), None);
    }

    #[test]
    fn seconds_use_the_tick_length() {
        let dir = std::env::temp_dir().join(format!("hubmon-cpu-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stat"), "cpu 250 0 0 750\ncpu0 250 0 0 750\n").unwrap();
        let mut collector = CpuCollector::with_ticks_per_second(&dir, 250);
        let mut batch = Batch::new(0);
        collector.collect(&mut batch);
        std::fs::remove_dir_all(&dir).unwrap();
        let user = batch
            .series
            .iter()
            .find(|s| s.labels.get("mode") == Some("user") && s.labels.metric_name() == Some("node_cpu_seconds_total"))
            .unwrap();
        assert_eq!(user.samples[0].value, 1.0);
        let usage = batch.series.iter().find(|s| s.labels.metric_name() == Some("hubmon_cpu_usage_percent")).unwrap();
        assert_eq!(usage.samples[0].value, 25.0);
    }
}
