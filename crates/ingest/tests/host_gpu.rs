//! The GPU collector where there is no GPU (it must stay silent and absent) and, with
//! `HUBMON_TEST_EXPECT_GPU=1`, on a machine with NVIDIA GPUs (it must report DCGM's series
//! with sane values).
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hubmon_ingest::host::GpuCollector;

/// DCGM-exporter's names that every NVIDIA data-centre GPU supports, with the range a sane
/// value lies in.
const EXPECTED: &[(&str, f64, f64)] = &[
    ("DCGM_FI_DEV_GPU_UTIL", 0.0, 100.0),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", 0.0, 100.0),
    ("DCGM_FI_DEV_FB_USED", 0.0, 4.0 * 1024.0 * 1024.0),
    ("DCGM_FI_DEV_FB_FREE", 0.0, 4.0 * 1024.0 * 1024.0),
    ("DCGM_FI_DEV_GPU_TEMP", 1.0, 120.0),
    ("DCGM_FI_DEV_POWER_USAGE", 1.0, 2000.0),
];

fn expect_gpu() -> bool {
    std::env::var("HUBMON_TEST_EXPECT_GPU").is_ok_and(|value| value == "1")
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn gpu_collector_reports_dcgm_series_where_a_gpu_is_expected() {
    let start = Instant::now();
    let collector = GpuCollector::load();
    let load_time = start.elapsed();
    if !expect_gpu() {
        // Nothing to assert about GPUs here, only that neither loading nor collecting panics.
        if let Some(mut collector) = collector {
            let _ = collector.collect(now_ms());
        }
        return;
    }
    let mut collector = collector.expect("HUBMON_TEST_EXPECT_GPU=1 but GpuCollector::load() found no GPU");
    println!("NVML loaded in {load_time:?}, {} GPU(s)", collector.gpu_count());
    let timestamp = now_ms();
    let series = collector.collect(timestamp);
    for gpu in 0..collector.gpu_count() {
        let gpu = gpu.to_string();
        for (name, low, high) in EXPECTED {
            let one = series
                .iter()
                .find(|s| s.labels.metric_name() == Some(name) && s.labels.get("gpu") == Some(gpu.as_str()))
                .unwrap_or_else(|| panic!("{name} missing for gpu {gpu}"));
            assert!(one.labels.get("UUID").is_some_and(|uuid| uuid.starts_with("GPU-")), "{}", one.labels);
            assert!(one.labels.get("modelName").is_some_and(|model| !model.is_empty()), "{}", one.labels);
            assert_eq!(one.samples.len(), 1);
            assert_eq!(one.samples[0].timestamp, timestamp);
            let value = one.samples[0].value;
            assert!((*low..=*high).contains(&value), "{} = {value}, expected {low}..={high}", one.labels);
            println!("{} {value}", one.labels);
        }
        let value = |name: &str| {
            series
                .iter()
                .find(|s| s.labels.metric_name() == Some(name) && s.labels.get("gpu") == Some(gpu.as_str()))
                .unwrap()
                .samples[0]
                .value
        };
        assert!(value("DCGM_FI_DEV_FB_USED") + value("DCGM_FI_DEV_FB_FREE") > 1024.0, "less than 1 GiB of memory");
    }
}

/// Re-runs the test binary on just `gpu_probe_child`, so that anything NVML or the loader
/// writes straight to the process's stderr is seen.
#[test]
fn without_a_gpu_loading_is_quick_and_silent() {
    if expect_gpu() {
        return;
    }
    let start = Instant::now();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["gpu_probe_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("HUBMON_GPU_PROBE_CHILD", "1")
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed: {stdout}\n{stderr}");
    assert!(stdout.contains("gpu probe: "), "child did not run: {stdout}");
    if stdout.contains("gpu probe: none") {
        assert!(stderr.trim().is_empty(), "loading NVML wrote to stderr: {stderr}");
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    }
}

#[test]
fn gpu_probe_child() {
    if std::env::var_os("HUBMON_GPU_PROBE_CHILD").is_none() {
        return;
    }
    match GpuCollector::load() {
        Some(collector) => println!("gpu probe: {} GPU(s)", collector.gpu_count()),
        None => println!("gpu probe: none"),
    }
}
