//! /proc/diskstats: `node_disk_*{device}` per block device, with node_exporter's names and
//! units (sectors are always 512 bytes in this file, times are milliseconds).
//!
//! Partitions, RAM disks, loop and floppy devices are left out by the configured pattern
//! (node_exporter's default), so whole disks are not counted twice.

use super::proc_file::ProcFile;
use super::{Batch, HostConfig, Pattern};

/// The kernel counts diskstats sectors in 512-byte units whatever the device's sector size.
const SECTOR_BYTES: f64 = 512.0;
const MS: f64 = 0.001;

/// For each diskstats column after the device name, in order: node_exporter's metric name and
/// the factor to its unit. Older kernels stop after 11 columns (discards came in 4.18,
/// flushes in 5.5); what a line does not have is not reported.
const COLUMNS: [(&str, f64); 17] = [
    ("node_disk_reads_completed_total", 1.0),
    ("node_disk_reads_merged_total", 1.0),
    ("node_disk_read_bytes_total", SECTOR_BYTES),
    ("node_disk_read_time_seconds_total", MS),
    ("node_disk_writes_completed_total", 1.0),
    ("node_disk_writes_merged_total", 1.0),
    ("node_disk_written_bytes_total", SECTOR_BYTES),
    ("node_disk_write_time_seconds_total", MS),
    ("node_disk_io_now", 1.0),
    ("node_disk_io_time_seconds_total", MS),
    ("node_disk_io_time_weighted_seconds_total", MS),
    ("node_disk_discards_completed_total", 1.0),
    ("node_disk_discards_merged_total", 1.0),
    // Sectors, not bytes: node_exporter's name and unit.
    ("node_disk_discarded_sectors_total", 1.0),
    ("node_disk_discard_time_seconds_total", MS),
    ("node_disk_flush_requests_total", 1.0),
    ("node_disk_flush_requests_time_seconds_total", MS),
];

/// One diskstats line: the device name and its columns, already in metric units.
pub(crate) fn parse_line(line: &str) -> Option<(&str, impl Iterator<Item = (&'static str, f64)> + '_)> {
    let mut fields = line.split_ascii_whitespace();
    let _major = fields.next()?;
    let _minor = fields.next()?;
    let device = fields.next()?;
    let values = COLUMNS
        .iter()
        .zip(fields)
        .map_while(|((name, factor), field)| field.parse::<u64>().ok().map(|value| (*name, value as f64 * factor)));
    Some((device, values))
}

pub(crate) struct DiskCollector {
    file: ProcFile,
    exclude: Pattern,
}

impl DiskCollector {
    pub(crate) fn new(config: &HostConfig) -> Self {
        Self { file: ProcFile::new(config.procfs.join("diskstats")), exclude: config.disk_devices_exclude.clone() }
    }

    pub(crate) fn collect(&mut self, batch: &mut Batch) {
        let Some(text) = self.file.read() else { return };
        for (device, values) in text.lines().filter_map(parse_line) {
            if self.exclude.is_match(device) {
                continue;
            }
            for (name, value) in values {
                batch.push(name, &[("device", device)], value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_sectors_and_milliseconds() {
        let line = " 254       0 vda 195488 15409 13772866 339536 16006 42548 12909736 49675 0 23264 390605 9473 56 624288 1256 3258 137";
        let (device, values) = parse_line(line).unwrap();
        assert_eq!(device, "vda");
        let values: Vec<(&str, f64)> = values.collect();
        assert_eq!(values.len(), 17);
        assert_eq!(values[0], ("node_disk_reads_completed_total", 195_488.0));
        assert_eq!(values[2], ("node_disk_read_bytes_total", 13_772_866.0 * 512.0));
        assert_eq!(values[3], ("node_disk_read_time_seconds_total", 339.536));
        assert_eq!(values[8], ("node_disk_io_now", 0.0));
        assert_eq!(values[13], ("node_disk_discarded_sectors_total", 624_288.0));
        assert_eq!(values[16], ("node_disk_flush_requests_time_seconds_total", 0.137));
    }

    #[test]
    fn old_kernels_report_only_their_columns() {
        let (_, values) = parse_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 11").unwrap();
        assert_eq!(values.count(), 11);
    }
}
