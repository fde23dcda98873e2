//! Prints what the GPU collector collects: `cargo run -p hubmon-ingest --example gpu_probe`.
//! Exits 0 after printing every series, or 2 when NVML or a GPU is not there.

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hubmon_ingest::host::GpuCollector;

fn main() -> ExitCode {
    let start = Instant::now();
    let Some(mut collector) = GpuCollector::load() else {
        println!(
            "no NVIDIA GPU: NVML (libnvidia-ml.so.1) not loadable, driver not loaded, or no device ({:?})",
            start.elapsed()
        );
        return ExitCode::from(2);
    };
    println!("NVML loaded in {:?}: {} GPU(s)", start.elapsed(), collector.gpu_count());
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |now| now.as_millis() as i64);
    let start = Instant::now();
    let series = collector.collect(timestamp);
    let took = start.elapsed();
    for one in &series {
        for sample in &one.samples {
            println!("{} {}", one.labels, sample.value);
        }
    }
    println!("{} series collected in {took:?}", series.len());
    ExitCode::SUCCESS
}
