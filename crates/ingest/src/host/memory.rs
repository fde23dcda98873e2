//! /proc/meminfo: every field as `node_memory_*`, named exactly as node_exporter names them,
//! and hubmon's `hubmon_memory_usage_percent` and `hubmon_swap_usage_percent`.
//!
//! node_exporter's naming, kept on purpose so its dashboards work: `Active(anon)` becomes
//! `Active_anon`; a field with a unit (always kB) is multiplied by 1024 and gets `_bytes`; a
//! field without one (`HugePages_Total`) is a count and keeps its bare name.

use super::proc_file::ProcFile;
use super::{Batch, HostConfig, percent};

/// One /proc/meminfo line.
#[derive(Debug, PartialEq)]
pub(crate) struct MeminfoField<'a> {
    /// The key as written, `Active(anon)`.
    pub key: &'a str,
    /// In bytes when the line had a unit, as written otherwise.
    pub value: f64,
    pub has_unit: bool,
}

/// Parses one line, `Key:   123 kB`; `None` for anything else.
pub(crate) fn parse_line(line: &str) -> Option<MeminfoField<'_>> {
    let (key, rest) = line.split_once(':')?;
    let mut parts = rest.split_ascii_whitespace();
    let number: u64 = parts.next()?.parse().ok()?;
    // The kernel only ever writes kB, meaning KiB; node_exporter presumes the same.
    let has_unit = parts.next().is_some();
    let value = if has_unit { number as f64 * 1024.0 } else { number as f64 };
    Some(MeminfoField { key: key.trim(), value, has_unit })
}

/// node_exporter's metric name for `field`, written into `name`.
pub(crate) fn metric_name(field: &MeminfoField<'_>, name: &mut String) {
    name.clear();
    name.push_str("node_memory_");
    // node_exporter rewrites `(x)` to `_x` with a regular expression; the same without one.
    for c in field.key.chars() {
        match c {
            '(' => name.push('_'),
            ')' => {}
            c => name.push(c),
        }
    }
    if field.has_unit {
        name.push_str("_bytes");
    }
}

/// The fields the usage gauges need, in bytes.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Usage {
    pub mem_total: Option<f64>,
    pub mem_available: Option<f64>,
    pub mem_free: Option<f64>,
    pub buffers: Option<f64>,
    pub cached: Option<f64>,
    pub swap_total: Option<f64>,
    pub swap_free: Option<f64>,
}

impl Usage {
    fn record(&mut self, field: &MeminfoField<'_>) {
        let slot = match field.key {
            "MemTotal" => &mut self.mem_total,
            "MemAvailable" => &mut self.mem_available,
            "MemFree" => &mut self.mem_free,
            "Buffers" => &mut self.buffers,
            "Cached" => &mut self.cached,
            "SwapTotal" => &mut self.swap_total,
            "SwapFree" => &mut self.swap_free,
            _ => return,
        };
        *slot = Some(field.value);
    }

    /// `(MemTotal - MemAvailable) / MemTotal`, in percent. Kernels before 3.14 have no
    /// MemAvailable; free + buffers + cache is what tools used before it.
    pub(crate) fn memory_percent(&self) -> Option<f64> {
        let total = self.mem_total?;
        let available = match self.mem_available {
            Some(available) => available,
            None => self.mem_free? + self.buffers.unwrap_or(0.0) + self.cached.unwrap_or(0.0),
        };
        percent(total - available, total)
    }

    /// `(SwapTotal - SwapFree) / SwapTotal`, in percent; 0 on a host without swap, so a
    /// threshold alert reads "fine" rather than "no data".
    pub(crate) fn swap_percent(&self) -> Option<f64> {
        let total = self.swap_total?;
        let free = self.swap_free?;
        Some(percent(total - free, total).unwrap_or(0.0))
    }
}

pub(crate) struct MemoryCollector {
    file: ProcFile,
    name: String,
}

impl MemoryCollector {
    pub(crate) fn new(config: &HostConfig) -> Self {
        Self { file: ProcFile::new(config.procfs.join("meminfo")), name: String::new() }
    }

    pub(crate) fn collect(&mut self, batch: &mut Batch) {
        let Some(text) = self.file.read() else { return };
        let mut usage = Usage::default();
        for field in text.lines().filter_map(parse_line) {
            metric_name(&field, &mut self.name);
            batch.push(&self.name, &[], field.value);
            usage.record(&field);
        }
        if let Some(value) = usage.memory_percent() {
            batch.push("hubmon_memory_usage_percent", &[], value);
        }
        if let Some(value) = usage.swap_percent() {
            batch.push("hubmon_swap_usage_percent", &[], value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(line: &str) -> String {
        let mut name = String::new();
        metric_name(&parse_line(line).unwrap(), &mut name);
        name
    }

    #[test]
    fn names_follow_node_exporter() {
        assert_eq!(name_of("MemTotal:       16384 kB"), "node_memory_MemTotal_bytes");
        assert_eq!(name_of("Active(anon):    1024 kB"), "node_memory_Active_anon_bytes");
        assert_eq!(name_of("Inactive(file):  1024 kB"), "node_memory_Inactive_file_bytes");
        assert_eq!(name_of("HugePages_Total:       0"), "node_memory_HugePages_Total");
        assert_eq!(name_of("Hugepagesize:       2048 kB"), "node_memory_Hugepagesize_bytes");
        assert_eq!(name_of("NFS_Unstable:          0 kB"), "node_memory_NFS_Unstable_bytes");
    }

    #[test]
    fn values_are_bytes_when_there_is_a_unit() {
        assert_eq!(parse_line("MemTotal:       16384 kB").unwrap().value, 16_777_216.0);
        assert_eq!(parse_line("HugePages_Free:   7").unwrap().value, 7.0);
        assert_eq!(parse_line("garbage"), None);
        assert_eq!(parse_line("Broken:   x kB"), None);
    }

    #[test]
    fn memory_percent_uses_available() {
        let usage = Usage { mem_total: Some(1000.0), mem_available: Some(250.0), ..Usage::default() };
        assert_eq!(usage.memory_percent(), Some(75.0));
    }

    #[test]
    fn memory_percent_without_available_uses_free_buffers_cached() {
        let usage = Usage {
            mem_total: Some(1000.0),
            mem_free: Some(100.0),
            buffers: Some(50.0),
            cached: Some(250.0),
            ..Usage::default()
        };
        assert_eq!(usage.memory_percent(), Some(60.0));
    }

    #[test]
    fn swap_percent_is_zero_without_swap() {
        let usage = Usage { swap_total: Some(0.0), swap_free: Some(0.0), ..Usage::default() };
        assert_eq!(usage.swap_percent(), Some(0.0));
        let usage = Usage { swap_total: Some(400.0), swap_free: Some(100.0), ..Usage::default() };
        assert_eq!(usage.swap_percent(), Some(75.0));
    }
}
