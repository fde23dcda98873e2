//! `bench-tsdb-count DIR`: opens a stopped hubmon's metrics store (`DATA_DIR/metrics`) offline
//! through the `Querier` seam and counts the series and samples of every metric whose name
//! starts with the prefix (`bench_` by default), one metric name at a time to bound memory.
//! Prints JSON; exits 1 when `--expect-samples` is given and differs.
//!
//! Opening replays the write-ahead log and starts a new log segment, so measure the
//! directory's size before running this.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use hubmon_model::{Matcher, Querier};
use hubmon_tsdb::{Config, Tsdb};

#[derive(Parser, Debug)]
#[command(name = "bench-tsdb-count", about = "count samples in a stopped hubmon's metrics store")]
struct Cli {
    /// The metrics directory: hubmon's `--data-dir` followed by `/metrics`.
    dir: PathBuf,
    #[arg(long, default_value = "bench_")]
    prefix: String,
    #[arg(long)]
    expect_samples: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let started = Instant::now();
    let tsdb = Tsdb::open(&cli.dir, Config::default()).with_context(|| format!("open {}", cli.dir.display()))?;
    let open_seconds = started.elapsed().as_secs_f64();
    let stats = tsdb.stats();
    let (start, end) = (i64::MIN, i64::MAX);
    let names = tsdb.label_values("__name__", &[], start, end)?;
    let (mut series, mut samples, mut names_counted) = (0u64, 0u64, 0u64);
    let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
    for name in names.iter().filter(|n| n.starts_with(&cli.prefix)) {
        for found in tsdb.select(&[Matcher::equal("__name__", name.as_str())], start, end)? {
            series += 1;
            samples += found.samples.len() as u64;
            if let (Some(first), Some(last)) = (found.samples.first(), found.samples.last()) {
                min_time = min_time.min(first.timestamp);
                max_time = max_time.max(last.timestamp);
            }
        }
        names_counted += 1;
    }
    let report = serde_json::json!({
        "dir": cli.dir,
        "metric_names": names_counted,
        "series": series,
        "samples": samples,
        "min_time": min_time,
        "max_time": max_time,
        "open_seconds": open_seconds,
        "count_seconds": started.elapsed().as_secs_f64() - open_seconds,
        "stats": stats,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(expected) = cli.expect_samples
        && expected != samples
    {
        eprintln!("bench-tsdb-count: expected {expected} samples, found {samples}");
        std::process::exit(1);
    }
    Ok(())
}
