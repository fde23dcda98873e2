//! `bench-loadgen`: encodes the benchmark workload ahead of time, then sends it to a
//! remote_write URL and reports accepted samples per second (`run`), encodes only (`run
//! --dry-run`), or serves a null receiver that discards what it gets (`sink`).
//!
//! With `--server-pid`, it also reads the receiver's CPU time around the sending phase only
//! (not the encoding) and its peak RSS afterwards, from /proc.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hubmon_bench::sender::{self, Target};
use hubmon_bench::workload::{self, Batching, Catalogue, Spec};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(name = "bench-loadgen", about = "remote_write load generator for hubmon's ingest benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Encodes the workload, then sends it (or, with --dry-run, stops after encoding).
    Run(RunArgs),
    /// Accepts remote_write requests and discards them (answers 204).
    Sink {
        #[arg(long, default_value = "127.0.0.1:9999")]
        listen: String,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// remote_write endpoint, e.g. http://127.0.0.1:9090/api/v1/write.
    #[arg(long, required_unless_present = "dry_run")]
    url: Option<String>,
    /// Bearer token to send (hubmon needs an ingest token).
    #[arg(long, env = "BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A preset: A = 10,000 series × 8,640 samples; B = 100,000 series × 360 samples.
    #[arg(long, conflicts_with_all = ["series", "samples"])]
    workload: Option<String>,
    #[arg(long, default_value_t = 1_000)]
    series: usize,
    /// Samples per series.
    #[arg(long, default_value_t = 60)]
    samples: usize,
    #[arg(long, default_value_t = 10_000)]
    interval_ms: i64,
    /// Every sample is before this instant (ms since the epoch); default: now.
    #[arg(long)]
    end_ms: Option<i64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Which series every host exports: fleet (the ingest benchmark's) or query (five jobs,
    /// a 10-bucket histogram; the query benchmark's).
    #[arg(long, value_enum, default_value_t = Catalogue::Fleet)]
    catalogue: Catalogue,
    /// Requests in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long, default_value_t = 1_000)]
    series_per_request: usize,
    /// Consecutive samples of each series in one request.
    #[arg(long, default_value_t = 5)]
    samples_per_request: usize,
    /// Threads that encode (default: all CPUs).
    #[arg(long)]
    encode_threads: Option<usize>,
    /// Encode only and report the encoding rate.
    #[arg(long)]
    dry_run: bool,
    /// The receiver's process id, for its CPU seconds and peak RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Writes the report here as JSON (it is printed to stdout as well).
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Sink { listen } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime.block_on(async {
                let listener =
                    tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("bind {listen}"))?;
                eprintln!("bench-loadgen sink: listening on http://{}", listener.local_addr()?);
                hubmon_bench::sink::serve(listener).await?;
                anyhow::Ok(())
            })
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let (series, samples) = match &args.workload {
        Some(name) => workload::preset(name).with_context(|| format!("unknown workload {name:?}: use A or B"))?,
        None => (args.series, args.samples),
    };
    let end_ms = args.end_ms.unwrap_or_else(now_ms);
    let spec = Spec {
        series,
        samples_per_series: samples,
        interval_ms: args.interval_ms,
        end_ms,
        seed: args.seed,
        catalogue: args.catalogue,
    };
    let batching =
        Batching { series_per_request: args.series_per_request, samples_per_series: args.samples_per_request };
    let threads = args.encode_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));

    let cpu_before = hubmon_bench::process_cpu_time();
    let started = Instant::now();
    let encoded = workload::encode_all(&spec, batching, threads);
    let encode_wall = started.elapsed().as_secs_f64();
    let encode_cpu = hubmon_bench::process_cpu_time().saturating_sub(cpu_before).as_secs_f64();
    let encoding = json!({
        "wall_seconds": encode_wall,
        "cpu_seconds": encode_cpu,
        "threads": threads,
        "samples_per_second": encoded.samples as f64 / encode_wall.max(1e-9),
        "requests": encoded.requests.len(),
        "body_bytes": encoded.body_bytes,
        "body_bytes_per_sample": encoded.body_bytes as f64 / encoded.samples.max(1) as f64,
    });
    eprintln!(
        "encoded {} samples in {} requests ({:.1} MB) in {encode_wall:.1} s on {threads} threads",
        encoded.samples,
        encoded.requests.len(),
        encoded.body_bytes as f64 / 1e6
    );
    let mut report = json!({
        "workload": args.workload,
        "spec": spec,
        "start_ms": spec.start_ms(),
        "total_samples": spec.total_samples(),
        "batching": batching,
        "encoding": encoding,
    });

    if !args.dry_run {
        let url = args.url.context("--url is required unless --dry-run")?;
        let target = Target { url, bearer_token: args.token, concurrency: args.concurrency.max(1) };
        let cpu_before = args.server_pid.map(proc_cpu_seconds).transpose()?;
        let machine_before = machine_busy_seconds()?;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let outcome = runtime.block_on(sender::send(encoded, &target))?;
        let machine_busy = machine_busy_seconds()? - machine_before;
        let mut server = serde_json::Map::new();
        if let (Some(pid), Some(before)) = (args.server_pid, cpu_before) {
            let cpu = proc_cpu_seconds(pid)? - before;
            server.insert("pid".into(), pid.into());
            server.insert("cpu_seconds".into(), cpu.into());
            server.insert("cpu_cores_busy".into(), (cpu / outcome.wall_seconds.max(1e-9)).into());
            server.insert("vm_hwm_bytes".into(), proc_status_bytes(pid, "VmHWM")?.into());
            server.insert("vm_rss_bytes".into(), proc_status_bytes(pid, "VmRSS")?.into());
        }
        eprintln!(
            "sent: {} accepted, {} refused, {} retries in {:.1} s: {:.0} samples/s (p99 {:.0} ms){}",
            outcome.accepted_samples,
            outcome.refused_samples,
            outcome.retries,
            outcome.wall_seconds,
            outcome.samples_per_second,
            outcome.latency_ms_p99,
            outcome.errors.first().map(|e| format!("; first error: {e}")).unwrap_or_default()
        );
        report["concurrency"] = target.concurrency.into();
        report["url"] = target.url.into();
        report["send"] = serde_json::to_value(&outcome)?;
        report["server"] = server.into();
        // Everything the machine's CPUs did meanwhile: server + generator + anyone else's work.
        report["machine"] = json!({
            "busy_cpu_seconds": machine_busy,
            "busy_cores": machine_busy / outcome.wall_seconds.max(1e-9),
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        });
    }
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.json {
        std::fs::write(path, &text).with_context(|| format!("write {}", path.display()))?;
    }
    println!("{text}");
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// utime + stime of a process, all threads, in seconds.
fn proc_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).context("unexpected /proc/PID/stat");
    let (utime, stime) = (ticks(11)?, ticks(12)?);
    Ok((utime + stime) as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// CPU time the whole machine spent busy (all CPUs, everything but idle and iowait), from
/// /proc/stat, in seconds.
fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    let line = stat.lines().next().filter(|l| l.starts_with("cpu ")).context("unexpected /proc/stat")?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = ticks.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
    Ok(busy as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// A `kB` figure of /proc/PID/status, in bytes.
fn proc_status_bytes(pid: u32, key: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let line = status.lines().find(|l| l.starts_with(key)).with_context(|| format!("no {key} in {path}"))?;
    let kb: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).context("unexpected /proc/PID/status")?;
    Ok(kb * 1024)
}
