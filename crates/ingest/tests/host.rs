//! The host collector against a fixture /proc and /sys tree with exact expected values, and
//! against the real node_exporter on this machine: same names, same label names, same stable
//! values.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hubmon_ingest::exposition::{self, Format};
use hubmon_ingest::host::{HostCollector, HostConfig, Pattern};
use hubmon_model::SeriesSamples;

const TIMESTAMP_MS: i64 = 1_700_000_123_456;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host")
}

fn fixture_config() -> HostConfig {
    HostConfig {
        procfs: fixtures().join("proc"),
        sysfs: fixtures().join("sys"),
        rootfs: fixtures().join("rootfs"),
        ..HostConfig::default()
    }
}

/// `name{a="b", ...}` → value, with every sample checked to be at the collection's timestamp.
fn by_series(series: &[SeriesSamples], timestamp_ms: i64) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for one in series {
        assert_eq!(one.samples.len(), 1, "{}", one.labels);
        assert_eq!(one.samples[0].timestamp, timestamp_ms, "{}", one.labels);
        let previous = out.insert(one.labels.to_string(), one.samples[0].value);
        assert!(previous.is_none(), "series {} reported twice", one.labels);
    }
    out
}

fn names(series: &[SeriesSamples]) -> BTreeSet<String> {
    series.iter().map(|one| one.labels.metric_name().unwrap().to_string()).collect()
}

#[track_caller]
fn assert_value(values: &BTreeMap<String, f64>, series: &str, expected: f64) {
    match values.get(series) {
        Some(value) => assert_eq!(*value, expected, "{series}"),
        None => panic!("{series} missing; have:\n{}", values.keys().cloned().collect::<Vec<_>>().join("\n")),
    }
}

#[test]
fn fixture_tree_gives_node_exporter_series_with_exact_values() {
    let mut collector = HostCollector::new(fixture_config());
    let values = by_series(&collector.collect(TIMESTAMP_MS), TIMESTAMP_MS);

    // /proc/stat, at USER_HZ = 100.
    assert_value(&values, r#"node_cpu_seconds_total{cpu="0", mode="user"}"#, 10.0);
    assert_value(&values, r#"node_cpu_seconds_total{cpu="0", mode="nice"}"#, 0.5);
    assert_value(&values, r#"node_cpu_seconds_total{cpu="0", mode="system"}"#, 5.0);
    assert_value(&values, r#"node_cpu_seconds_total{cpu="0", mode="idle"}"#, 80.0);
    assert_value(&values, r#"node_cpu_seconds_total{cpu="0", mode="iowait"}"#, 2.5);
    assert_value(&values, r#"node_cpu_seconds_total{cpu="0", mode="irq"}"#, 0.25);
    assert_value(&values, r#"node_cpu_seconds_total{cpu="0", mode="softirq"}"#, 0.75);
    assert_value(&values, r#"node_cpu_seconds_total{cpu="1", mode="steal"}"#, 1.0);
    assert_value(&values, r#"node_cpu_guest_seconds_total{cpu="0", mode="user"}"#, 3.0);
    assert_value(&values, r#"node_cpu_guest_seconds_total{cpu="1", mode="nice"}"#, 0.0);
    assert_eq!(values.keys().filter(|k| k.starts_with("node_cpu_seconds_total{")).count(), 16);
    assert_value(&values, "node_intr_total{}", 1_289_095.0);
    assert_value(&values, "node_context_switches_total{}", 1_610_088.0);
    assert_value(&values, "node_forks_total{}", 44_887.0);
    assert_value(&values, "node_boot_time_seconds{}", 1_700_000_000.0);
    assert_value(&values, "node_procs_running{}", 7.0);
    assert_value(&values, "node_procs_blocked{}", 2.0);
    // First collection: since boot. 3500 busy ticks of 20000 (idle 16000 + iowait 500 idle).
    assert_value(&values, "hubmon_cpu_usage_percent{}", 17.5);
    assert_value(&values, r#"hubmon_cpu_core_usage_percent{cpu="0"}"#, 17.5);
    assert_value(&values, r#"hubmon_cpu_core_usage_percent{cpu="1"}"#, 17.5);

    // /proc/meminfo: every field, node_exporter's names.
    assert_value(&values, "node_memory_MemTotal_bytes{}", 8_000_000.0 * 1024.0);
    assert_value(&values, "node_memory_MemAvailable_bytes{}", 2_000_000.0 * 1024.0);
    assert_value(&values, "node_memory_Active_anon_bytes{}", 1_200_000.0 * 1024.0);
    assert_value(&values, "node_memory_Inactive_file_bytes{}", 1_200_000.0 * 1024.0);
    assert_value(&values, "node_memory_VmallocTotal_bytes{}", 34_359_738_367.0 * 1024.0);
    assert_value(&values, "node_memory_HugePages_Total{}", 4.0);
    assert_value(&values, "node_memory_HugePages_Rsvd{}", 1.0);
    assert_value(&values, "node_memory_Hugepagesize_bytes{}", 2048.0 * 1024.0);
    assert_eq!(values.keys().filter(|k| k.starts_with("node_memory_")).count(), 51);
    assert_value(&values, "hubmon_memory_usage_percent{}", 75.0);
    assert_value(&values, "hubmon_swap_usage_percent{}", 25.0);

    // Filesystems: pseudo filesystems, /dev, /sys, docker layers and the duplicate line are
    // left out; the mount whose directory is missing is a device error.
    let mount_points: BTreeSet<&str> = values
        .keys()
        .filter(|k| k.starts_with("node_filesystem_device_error{"))
        .map(|k| k.split("mountpoint=\"").nth(1).unwrap().trim_end_matches("\"}"))
        .collect();
    assert_eq!(mount_points, BTreeSet::from(["/", "/home", "/mnt/backup disk"]));
    let root = r#"device="/dev/sda2", fstype="ext4", mountpoint="/""#;
    let home = r#"device="/dev/sda3", fstype="ext4", mountpoint="/home""#;
    let backup = r#"device="server:/export", fstype="nfs4", mountpoint="/mnt/backup disk""#;
    assert_value(&values, &format!("node_filesystem_device_error{{{root}}}"), 0.0);
    assert_value(&values, &format!("node_filesystem_readonly{{{root}}}"), 0.0);
    assert_value(&values, &format!("node_filesystem_readonly{{{home}}}"), 1.0);
    assert_value(&values, &format!("node_filesystem_device_error{{{backup}}}"), 1.0);
    for family in ["readonly", "size_bytes"] {
        assert!(!values.contains_key(&format!("node_filesystem_{family}{{{backup}}}")), "{family}");
    }
    // Measured under rootfs: the fixture's directories live on a real filesystem.
    for family in ["size_bytes", "free_bytes", "avail_bytes", "files", "files_free"] {
        let value = values[&format!("node_filesystem_{family}{{{root}}}")];
        assert!(value >= 0.0, "{family}");
    }
    assert!(values[&format!("node_filesystem_size_bytes{{{home}}}")] > 0.0);
    let used = values[&format!("hubmon_disk_usage_percent{{{root}}}")];
    assert!((0.0..=100.0).contains(&used));

    // /proc/diskstats: partitions, loop and RAM disks left out.
    let disks: BTreeSet<&str> = values
        .keys()
        .filter(|k| k.starts_with("node_disk_reads_completed_total{"))
        .map(|k| k.split('"').nth(1).unwrap())
        .collect();
    assert_eq!(disks, BTreeSet::from(["dm-0", "nvme0n1", "sda"]));
    assert_value(&values, r#"node_disk_reads_completed_total{device="sda"}"#, 195_488.0);
    assert_value(&values, r#"node_disk_reads_merged_total{device="sda"}"#, 15_409.0);
    assert_value(&values, r#"node_disk_read_bytes_total{device="sda"}"#, 13_772_866.0 * 512.0);
    assert_value(&values, r#"node_disk_read_time_seconds_total{device="sda"}"#, 339_536.0 * 0.001);
    assert_value(&values, r#"node_disk_writes_completed_total{device="sda"}"#, 16_006.0);
    assert_value(&values, r#"node_disk_written_bytes_total{device="sda"}"#, 12_909_736.0 * 512.0);
    assert_value(&values, r#"node_disk_write_time_seconds_total{device="sda"}"#, 49_675.0 * 0.001);
    assert_value(&values, r#"node_disk_io_now{device="sda"}"#, 3.0);
    assert_value(&values, r#"node_disk_io_time_seconds_total{device="sda"}"#, 23_264.0 * 0.001);
    assert_value(&values, r#"node_disk_io_time_weighted_seconds_total{device="sda"}"#, 390_605.0 * 0.001);
    assert_value(&values, r#"node_disk_discarded_sectors_total{device="sda"}"#, 624_288.0);
    assert_value(&values, r#"node_disk_flush_requests_total{device="sda"}"#, 3258.0);
    // dm-0's line is an old kernel's: 11 columns, so no discard or flush series.
    assert_value(&values, r#"node_disk_io_time_weighted_seconds_total{device="dm-0"}"#, 0.12);
    assert!(!values.contains_key(r#"node_disk_discards_completed_total{device="dm-0"}"#));

    // /proc/net/dev, lo included as node_exporter does; operstate from sysfs.
    assert_value(&values, r#"node_network_receive_bytes_total{device="eth0"}"#, 111_988_301.0);
    assert_value(&values, r#"node_network_receive_packets_total{device="eth0"}"#, 5278.0);
    assert_value(&values, r#"node_network_receive_errs_total{device="eth0"}"#, 1.0);
    assert_value(&values, r#"node_network_receive_drop_total{device="eth0"}"#, 2.0);
    assert_value(&values, r#"node_network_transmit_bytes_total{device="eth0"}"#, 295_604.0);
    assert_value(&values, r#"node_network_transmit_packets_total{device="eth0"}"#, 2768.0);
    assert_value(&values, r#"node_network_transmit_errs_total{device="eth0"}"#, 7.0);
    assert_value(&values, r#"node_network_transmit_drop_total{device="eth0"}"#, 8.0);
    assert_value(&values, r#"node_network_transmit_compressed_total{device="eth0"}"#, 12.0);
    assert_value(&values, r#"node_network_receive_bytes_total{device="lo"}"#, 9_939_124.0);
    assert_value(&values, r#"node_network_up{device="eth0"}"#, 1.0);
    assert_value(&values, r#"node_network_up{device="lo"}"#, 0.0);
    assert_value(&values, r#"node_network_up{device="wlan0"}"#, 0.0);

    // The rest.
    assert_value(&values, "node_load1{}", 3.73);
    assert_value(&values, "node_load5{}", 2.64);
    assert_value(&values, "node_load15{}", 1.42);
    assert_value(&values, "node_filefd_allocated{}", 1128.0);
    assert_value(&values, "node_filefd_maximum{}", 2_466_165.0);
    assert_value(&values, "node_time_seconds{}", 1_700_000_123.456);
    assert_value(&values, "hubmon_uptime_seconds{}", 16_204.98);
    // The fixture has two process directories, 1 and 4242.
    assert_value(&values, "hubmon_processes{}", 2.0);
    assert!(values.keys().any(|k| k.starts_with("node_uname_info{")));
}

#[test]
fn collector_can_move_to_a_collection_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<HostCollector>();
}

#[test]
fn excluded_network_devices_are_left_out() {
    let config =
        HostConfig { network_devices_exclude: Some(Pattern::new("^(lo|wlan.*)$").unwrap()), ..fixture_config() };
    let values = by_series(&HostCollector::new(config).collect(TIMESTAMP_MS), TIMESTAMP_MS);
    let devices: BTreeSet<&str> =
        values.keys().filter(|k| k.starts_with("node_network_")).map(|k| k.split('"').nth(1).unwrap()).collect();
    assert_eq!(devices, BTreeSet::from(["eth0"]));
}

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("hubmon-host-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn missing_sources_give_no_series_and_no_error() {
    let empty = TempDir::new("empty");
    let config = HostConfig {
        procfs: empty.0.join("proc"),
        sysfs: empty.0.join("sys"),
        rootfs: empty.0.clone(),
        ..HostConfig::default()
    };
    let mut collector = HostCollector::new(config);
    for _ in 0..2 {
        let series = collector.collect(TIMESTAMP_MS);
        // Only what needs no file: the clock and uname.
        assert_eq!(names(&series), BTreeSet::from(["node_time_seconds".to_string(), "node_uname_info".to_string()]));
    }
}

#[test]
fn cpu_usage_covers_the_time_between_collections() {
    let dir = TempDir::new("cpu-delta");
    let write_stat = |user: u64, idle: u64, iowait: u64| {
        let text = format!("cpu  {user} 0 0 {idle} {iowait} 0 0 0 0 0\ncpu0 {user} 0 0 {idle} {iowait} 0 0 0 0 0\n");
        std::fs::write(dir.0.join("stat"), text).unwrap();
    };
    let config = HostConfig { procfs: dir.0.clone(), ..HostConfig::default() };
    let mut collector = HostCollector::new(config);
    let usage = |collector: &mut HostCollector| {
        let values = by_series(&collector.collect(TIMESTAMP_MS), TIMESTAMP_MS);
        (values["hubmon_cpu_usage_percent{}"], values[r#"hubmon_cpu_core_usage_percent{cpu="0"}"#])
    };

    write_stat(1000, 9000, 0);
    assert_eq!(usage(&mut collector), (10.0, 10.0));
    // +600 user, +300 idle, +100 iowait: 60 % busy, iowait counted as idle.
    write_stat(1600, 9300, 100);
    assert_eq!(usage(&mut collector), (60.0, 60.0));
    // Idle only.
    write_stat(1600, 9800, 100);
    assert_eq!(usage(&mut collector), (0.0, 0.0));
    // No tick elapsed: the last value again rather than a jump to the since-boot average.
    assert_eq!(usage(&mut collector), (0.0, 0.0));
}

// ---- node_exporter comparison ----

/// node_exporter's families that hubmon deliberately does not report, from the collectors
/// the comparison enables, with the reason.
const OMITTED: &[(&str, &str)] = &[
    ("node_cpu_core_throttles_total", "thermal throttle counters from sysfs, bare metal only"),
    ("node_cpu_package_throttles_total", "thermal throttle counters from sysfs, bare metal only"),
    ("node_cpu_isolated", "only with isolcpus"),
    ("node_disk_info", "labels come from the udev database, which differs per host and is often absent"),
    ("node_disk_ata_write_cache", "from the udev database"),
    ("node_disk_ata_write_cache_enabled", "from the udev database"),
    ("node_disk_ata_rotation_rate_rpm", "from the udev database"),
    ("node_disk_device_mapper_info", "from the udev database"),
    ("node_disk_filesystem_info", "from the udev database"),
    ("node_filesystem_mount_info", "newer node_exporter only; the mount table is already in the labels"),
    ("node_network_receive_nohandler_total", "from netlink only, not in /proc/net/dev"),
    ("node_time_zone_offset_seconds", "the server's time zone, not the host's health"),
    ("node_time_clocksource_available_info", "rarely used; one sysfs read per clock source"),
    ("node_time_clocksource_current_info", "rarely used"),
];

/// netclass families other than node_network_up: one sysfs file per attribute and device
/// on every collection, for values that hardly ever change.
const OMITTED_NETCLASS: &[&str] = &[
    "node_network_address_assign_type",
    "node_network_carrier",
    "node_network_carrier_changes_total",
    "node_network_carrier_down_changes_total",
    "node_network_carrier_up_changes_total",
    "node_network_device_id",
    "node_network_dormant",
    "node_network_flags",
    "node_network_iface_id",
    "node_network_iface_link",
    "node_network_iface_link_mode",
    "node_network_info",
    "node_network_mtu_bytes",
    "node_network_name_assign_type",
    "node_network_net_dev_group",
    "node_network_protocol_type",
    "node_network_speed_bytes",
    "node_network_transmit_queue_length",
];

/// node_exporter's families that hubmon must report.
const CORE: &[&str] = &[
    "node_cpu_seconds_total",
    "node_load1",
    "node_load5",
    "node_load15",
    "node_memory_MemTotal_bytes",
    "node_memory_MemFree_bytes",
    "node_memory_MemAvailable_bytes",
    "node_memory_Buffers_bytes",
    "node_memory_Cached_bytes",
    "node_memory_SwapTotal_bytes",
    "node_memory_SwapFree_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_free_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_files",
    "node_filesystem_files_free",
    "node_filesystem_readonly",
    "node_filesystem_device_error",
    "node_disk_reads_completed_total",
    "node_disk_writes_completed_total",
    "node_disk_read_bytes_total",
    "node_disk_written_bytes_total",
    "node_disk_read_time_seconds_total",
    "node_disk_write_time_seconds_total",
    "node_disk_io_time_seconds_total",
    "node_disk_io_now",
    "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
    "node_network_receive_packets_total",
    "node_network_transmit_packets_total",
    "node_network_receive_errs_total",
    "node_network_transmit_errs_total",
    "node_network_receive_drop_total",
    "node_network_transmit_drop_total",
    "node_network_up",
    "node_procs_running",
    "node_procs_blocked",
    "node_forks_total",
    "node_context_switches_total",
    "node_intr_total",
    "node_boot_time_seconds",
    "node_time_seconds",
    "node_filefd_allocated",
    "node_filefd_maximum",
    "node_uname_info",
];

/// The collectors whose families the comparison covers; the others are off.
const COLLECTORS: &[&str] =
    &["cpu", "meminfo", "filesystem", "diskstats", "netdev", "netclass", "stat", "loadavg", "filefd", "time", "uname"];

fn find_node_exporter() -> PathBuf {
    let mut tried = Vec::new();
    if let Some(path) = std::env::var_os("HUBMON_TEST_NODE_EXPORTER") {
        return PathBuf::from(path);
    }
    let mut candidates = vec![PathBuf::from("/usr/bin/prometheus-node-exporter")];
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            candidates.push(dir.join("node_exporter"));
            candidates.push(dir.join("prometheus-node-exporter"));
        }
    }
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
        tried.push(candidate.display().to_string());
    }
    panic!(
        "node_exporter not found (looked for {}): install it with \
         `apt-get install -y --no-install-recommends prometheus-node-exporter`, \
         or set HUBMON_TEST_NODE_EXPORTER to its path",
        tried.join(", ")
    );
}

/// Kills node_exporter when the test ends, passed or not.
struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("node_exporter answered {head:?}")));
    }
    Ok(body.to_string())
}

/// One sample of node_exporter's answer.
#[derive(Debug)]
struct Scraped {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// node_exporter's answer, through hubmon's own scrape parser.
fn parse_exposition(text: &str) -> Vec<Scraped> {
    let parsed = exposition::parse(text, Format::PrometheusText).unwrap();
    parsed
        .samples
        .into_iter()
        .map(|sample| {
            let mut labels: BTreeMap<String, String> = sample.labels.into_iter().collect();
            let name = labels.remove("__name__").unwrap();
            Scraped { name, labels, value: sample.value }
        })
        .collect()
}

fn scrape_node_exporter(config: &HostConfig, extra_args: &[&str]) -> Vec<Scraped> {
    let binary = find_node_exporter();
    let port = free_port();
    let mut command = Command::new(&binary);
    command
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.disable-defaults")
        .args(COLLECTORS.iter().map(|c| format!("--collector.{c}")))
        .arg(format!("--path.procfs={}", config.procfs.display()))
        .arg(format!("--path.sysfs={}", config.sysfs.display()))
        .arg(format!("--path.rootfs={}", config.rootfs.display()))
        // hubmon's defaults are upstream node_exporter's; distributions patch theirs (Debian
        // leaves out /run and lo), so pass them explicitly to compare like with like.
        .arg(format!("--collector.filesystem.mount-points-exclude={}", config.mount_points_exclude.as_str()))
        .arg(format!("--collector.filesystem.fs-types-exclude={}", config.fs_types_exclude.as_str()))
        .arg(format!("--collector.diskstats.device-exclude={}", config.disk_devices_exclude.as_str()))
        .arg("--collector.netdev.device-exclude=")
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _exporter =
        Exporter(command.spawn().unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display())));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http_get(port, "/metrics") {
            Ok(body) => return parse_exposition(&body),
            Err(error) => {
                assert!(Instant::now() < deadline, "node_exporter ({}) did not answer: {error}", binary.display());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

type Families = BTreeMap<String, Vec<BTreeMap<String, String>>>;

fn families_of_scrape(scraped: &[Scraped]) -> (Families, BTreeMap<String, f64>) {
    let mut families = Families::new();
    let mut values = BTreeMap::new();
    for sample in scraped.iter().filter(|s| {
        s.name.starts_with("node_") && !s.name.starts_with("node_scrape_") && !s.name.starts_with("node_exporter_")
    }) {
        families.entry(sample.name.clone()).or_default().push(sample.labels.clone());
        values.insert(series_key(&sample.name, &sample.labels), sample.value);
    }
    (families, values)
}

fn families_of_hubmon(series: &[SeriesSamples]) -> (Families, BTreeMap<String, f64>) {
    let mut families = Families::new();
    let mut values = BTreeMap::new();
    for one in series {
        let name = one.labels.metric_name().unwrap().to_string();
        let labels: BTreeMap<String, String> =
            one.labels.iter().filter(|(n, _)| *n != "__name__").map(|(n, v)| (n.to_string(), v.to_string())).collect();
        values.insert(series_key(&name, &labels), one.samples[0].value);
        families.entry(name).or_default().push(labels);
    }
    (families, values)
}

fn series_key(name: &str, labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{name}{{{}}}", pairs.join(","))
}

fn label_names(family: &[BTreeMap<String, String>]) -> BTreeSet<BTreeSet<String>> {
    family.iter().map(|labels| labels.keys().cloned().collect()).collect()
}

fn label_values<'a>(family: Option<&'a Vec<BTreeMap<String, String>>>, label: &str) -> BTreeSet<&'a str> {
    family.into_iter().flatten().filter_map(|labels| labels.get(label).map(String::as_str)).collect()
}

#[test]
fn matches_the_real_node_exporter() {
    let config = HostConfig::default();
    let scraped = scrape_node_exporter(&config, &[]);
    let series = HostCollector::new(config)
        .collect(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64);
    let (theirs, their_values) = families_of_scrape(&scraped);
    let (ours, our_values) = families_of_hubmon(&series);
    let mut problems = Vec::new();

    // Every node_* family hubmon reports, node_exporter reports too, with the same label names.
    for (name, family) in ours.iter().filter(|(name, _)| name.starts_with("node_")) {
        match theirs.get(name) {
            None => problems.push(format!("{name}: node_exporter does not report it")),
            Some(their_family) if label_names(family) != label_names(their_family) => problems.push(format!(
                "{name}: label names {:?}, node_exporter's {:?}",
                label_names(family),
                label_names(their_family)
            )),
            Some(_) => {}
        }
    }
    // Every family node_exporter reports from these collectors, hubmon reports too, or it is a
    // listed omission.
    for name in theirs.keys() {
        let omitted = OMITTED.iter().any(|(omitted, _)| omitted == name) || OMITTED_NETCLASS.contains(&name.as_str());
        if !ours.contains_key(name) && !omitted {
            problems
                .push(format!("{name}: node_exporter reports it, hubmon does not (report it, or list it in OMITTED)"));
        }
    }
    for name in CORE {
        if !ours.contains_key(*name) {
            problems.push(format!("{name}: a core family, missing from hubmon"));
        }
    }

    // The same things are measured: mounts, disks, network devices, CPUs.
    for (family, label) in [
        ("node_filesystem_device_error", "mountpoint"),
        ("node_disk_reads_completed_total", "device"),
        ("node_network_receive_bytes_total", "device"),
        ("node_cpu_seconds_total", "cpu"),
    ] {
        let (mine, node) = (label_values(ours.get(family), label), label_values(theirs.get(family), label));
        if mine != node {
            problems.push(format!("{family} {label}s: hubmon {mine:?}, node_exporter {node:?}"));
        }
    }

    // Values that do not move between the scrape and the collection.
    let mut stable: Vec<&String> = our_values
        .keys()
        .filter(|key| {
            key.starts_with("node_memory_MemTotal_bytes{")
                || key.starts_with("node_memory_SwapTotal_bytes{")
                || key.starts_with("node_memory_HugePages_Total{")
                || key.starts_with("node_filesystem_size_bytes{")
                || key.starts_with("node_filesystem_files{")
                || key.starts_with("node_filesystem_readonly{")
                || key.starts_with("node_filesystem_device_error{")
                || key.starts_with("node_boot_time_seconds{")
                || key.starts_with("node_filefd_maximum{")
                || key.starts_with("node_uname_info{")
        })
        .collect();
    stable.sort();
    assert!(stable.len() >= 8, "too few stable series to compare: {stable:?}");
    for key in stable {
        match their_values.get(key) {
            Some(theirs) if theirs == &our_values[key] => {}
            theirs => problems.push(format!("{key}: hubmon {}, node_exporter {theirs:?}", our_values[key])),
        }
    }

    assert!(problems.is_empty(), "hubmon differs from node_exporter:\n{}", problems.join("\n"));
    let matched: Vec<&String> = ours.keys().filter(|name| theirs.contains_key(*name)).collect();
    println!("{} node_exporter families matched: {matched:?}", matched.len());
}

#[test]
fn matches_node_exporter_value_for_value_on_the_fixture_tree() {
    let config = fixture_config();
    // node_exporter reads /proc/net/dev only without netlink, which ignores --path.procfs.
    let scraped = scrape_node_exporter(&config, &["--no-collector.netdev.netlink"]);
    let series = HostCollector::new(config).collect(TIMESTAMP_MS);
    let (theirs, their_values) = families_of_scrape(&scraped);
    let (ours, our_values) = families_of_hubmon(&series);
    // Not from the fixture: the clock and the real kernel.
    let from_fixture = |key: &&String| !key.starts_with("node_time_seconds{") && !key.starts_with("node_uname_info{");
    let mut problems = Vec::new();
    for key in our_values.keys().filter(from_fixture).filter(|key| key.starts_with("node_")) {
        let family = &key[..key.find('{').unwrap()];
        if !theirs.contains_key(family) {
            // node_exporter's collector for it failed on the sparse fixture (netclass wants
            // every sysfs attribute); the real-host comparison covers the name.
            continue;
        }
        // Free space comes from statfs(2) of the real disk behind the fixture's mounts, which
        // other processes write to between the two reads: equal within 256 MiB.
        let live = key.starts_with("node_filesystem_avail_bytes{")
            || key.starts_with("node_filesystem_free_bytes{")
            || key.starts_with("node_filesystem_files_free{");
        match their_values.get(key) {
            Some(theirs) if *theirs == our_values[key] => {}
            Some(theirs) if live && (theirs - our_values[key]).abs() <= 256.0 * 1024.0 * 1024.0 => {}
            theirs => problems.push(format!("{key}: hubmon {}, node_exporter {theirs:?}", our_values[key])),
        }
    }
    for key in their_values.keys().filter(from_fixture) {
        let family = &key[..key.find('{').unwrap()];
        if ours.contains_key(family) && !our_values.contains_key(key) {
            problems.push(format!("{key}: node_exporter reports it, hubmon does not"));
        }
    }
    let compared = our_values.keys().filter(from_fixture).filter(|key| their_values.contains_key(*key)).count();
    assert!(compared > 150, "only {compared} series compared");
    assert!(problems.is_empty(), "hubmon differs from node_exporter on the fixture tree:\n{}", problems.join("\n"));
    println!("{compared} series equal to node_exporter's on the fixture tree");
}
