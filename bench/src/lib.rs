//! hubmon's ingest benchmark (issue 3, item 6): the same Prometheus remote_write workload sent
//! to hubmon, Prometheus 2.42 and VictoriaMetrics 1.79, one after another, by `bench/ingest.sh`.
//!
//! Layout:
//! - [`workload`]: the series catalogue and the values, generated deterministically from a seed
//!   and encoded ahead of time into remote_write request bodies, so that sending costs the
//!   generator almost nothing.
//! - [`sender`]: sends those bodies with bounded concurrency, keeping every series' samples in
//!   time order (a series' next request waits for its previous one, as a Prometheus shard does),
//!   and retries what a receiver asks to be retried.
//! - [`sink`]: a null remote_write receiver that reads and discards, to show the generator's
//!   ceiling.
//!
//! The binaries are `bench-loadgen` (run, sink, dry run) and `bench-tsdb-count` (opens a
//! stopped hubmon's metrics store offline and counts what it holds).

pub mod sender;
pub mod sink;
pub mod workload;

use std::time::Duration;

/// CPU time this process has used so far, all threads together.
pub fn process_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(u64::try_from(now.tv_sec).unwrap_or(0), u32::try_from(now.tv_nsec).unwrap_or(0))
}
