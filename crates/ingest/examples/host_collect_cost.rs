//! What one host collection costs on this machine: the median wall time and CPU time of
//! `HostCollector::collect` over many runs, after a warm-up.
//! `cargo run -p hubmon-ingest --example host_collect_cost [-- RUNS]`

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hubmon_ingest::host::{HostCollector, HostConfig};
use rustix::time::{ClockId, clock_gettime};

fn cpu_time() -> Duration {
    let now = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|runs| runs.parse().ok()).unwrap_or(50).max(1);
    let mut collector = HostCollector::new(HostConfig::default());
    let now_ms = || SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |now| now.as_millis() as i64);
    let series = collector.collect(now_ms()).len();
    let (mut walls, mut cpus) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        let (wall, cpu) = (Instant::now(), cpu_time());
        std::hint::black_box(collector.collect(now_ms()));
        // Process CPU time includes the statvfs thread's.
        cpus.push(cpu_time().saturating_sub(cpu));
        walls.push(wall.elapsed());
    }
    println!(
        "{series} series; median of {runs} collections: wall {:?}, CPU {:?} (max wall {:?})",
        median(walls.clone()),
        median(cpus),
        walls.iter().max().copied().unwrap_or_default()
    );
}
