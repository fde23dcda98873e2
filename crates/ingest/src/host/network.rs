//! Network devices: the 16 counters of /proc/net/dev as
//! `node_network_{receive,transmit}_*_total{device}`, and `node_network_up{device}` from the
//! device's operstate in sysfs, with node_exporter's names.

use std::path::PathBuf;

use tracing::debug;

use super::proc_file::{ProcFile, read_into};
use super::{Batch, HostConfig, Pattern};

/// /proc/net/dev's columns after the device name, in order.
const COLUMNS: [&str; 16] = [
    "node_network_receive_bytes_total",
    "node_network_receive_packets_total",
    "node_network_receive_errs_total",
    "node_network_receive_drop_total",
    "node_network_receive_fifo_total",
    "node_network_receive_frame_total",
    "node_network_receive_compressed_total",
    "node_network_receive_multicast_total",
    "node_network_transmit_bytes_total",
    "node_network_transmit_packets_total",
    "node_network_transmit_errs_total",
    "node_network_transmit_drop_total",
    "node_network_transmit_fifo_total",
    "node_network_transmit_colls_total",
    "node_network_transmit_carrier_total",
    "node_network_transmit_compressed_total",
];

/// One /proc/net/dev line, `  eth0: 123 45 ...`: the device and its counters. The two header
/// lines have no number after the colon and give `None`.
pub(crate) fn parse_line(line: &str) -> Option<(&str, impl Iterator<Item = (&'static str, f64)> + '_)> {
    let (device, counters) = line.split_once(':')?;
    let mut fields = counters.split_ascii_whitespace().peekable();
    fields.peek()?.parse::<u64>().ok()?;
    let values = COLUMNS
        .iter()
        .zip(fields)
        .map_while(|(name, field)| field.parse::<u64>().ok().map(|value| (*name, value as f64)));
    Some((device.trim(), values))
}

pub(crate) struct NetworkCollector {
    file: ProcFile,
    exclude: Option<Pattern>,
    class_dir: PathBuf,
    operstate_path: PathBuf,
    operstate: String,
    operstate_failure_logged: bool,
    devices: Vec<String>,
}

impl NetworkCollector {
    pub(crate) fn new(config: &HostConfig) -> Self {
        Self {
            file: ProcFile::new(config.procfs.join("net/dev")),
            exclude: config.network_devices_exclude.clone(),
            class_dir: config.sysfs.join("class/net"),
            operstate_path: PathBuf::new(),
            operstate: String::new(),
            operstate_failure_logged: false,
            devices: Vec::new(),
        }
    }

    pub(crate) fn collect(&mut self, batch: &mut Batch) {
        let Some(text) = self.file.read() else { return };
        self.devices.clear();
        for (device, values) in text.lines().filter_map(parse_line) {
            if self.exclude.as_ref().is_some_and(|exclude| exclude.is_match(device)) {
                continue;
            }
            for (name, value) in values {
                batch.push(name, &[("device", device)], value);
            }
            self.devices.push(device.to_string());
        }
        for device in &self.devices {
            self.operstate_path.clone_from(&self.class_dir);
            self.operstate_path.push(device);
            self.operstate_path.push("operstate");
            match read_into(&self.operstate_path, &mut self.operstate) {
                // node_exporter: up is operstate "up"; "unknown" (lo, tun) and the rest are 0.
                Ok(()) => batch.push("node_network_up", &[("device", device)], up(&self.operstate)),
                Err(error) => {
                    if !self.operstate_failure_logged {
                        self.operstate_failure_logged = true;
                        debug!(path = %self.operstate_path.display(), %error, "network operstate unreadable, node_network_up skipped");
                    }
                }
            }
        }
    }
}

fn up(operstate: &str) -> f64 {
    if operstate.trim() == "up" { 1.0 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters_and_skips_headers() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
                    face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                    lo: 9939124    4528    0    0    0     0          0         0  9939124    4528    0    0    0     0       0          0\n  \
                    eth0: 111988301    5278    1    2    3     4          5         6   295604    2768    7    8    9    10      11         12\n";
        let lines: Vec<(&str, Vec<(&str, f64)>)> =
            text.lines().filter_map(parse_line).map(|(device, values)| (device, values.collect())).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].0, "lo");
        let (device, values) = &lines[1];
        assert_eq!(*device, "eth0");
        assert_eq!(values.len(), 16);
        assert_eq!(values[0], ("node_network_receive_bytes_total", 111_988_301.0));
        assert_eq!(values[7], ("node_network_receive_multicast_total", 6.0));
        assert_eq!(values[13], ("node_network_transmit_colls_total", 10.0));
        assert_eq!(values[15], ("node_network_transmit_compressed_total", 12.0));
    }

    #[test]
    fn a_device_name_glued_to_its_counters_still_parses() {
        // Kernels before 3.x wrote `eth0:123` with no space for large counters.
        let (device, values) = parse_line("eth0:123 4 0 0 0 0 0 0 5 6 0 0 0 0 0 0").unwrap();
        assert_eq!(device, "eth0");
        assert_eq!(values.count(), 16);
    }

    #[test]
    fn only_operstate_up_is_up() {
        assert_eq!(up("up\n"), 1.0);
        assert_eq!(up("unknown\n"), 0.0);
        assert_eq!(up("down\n"), 0.0);
    }
}
