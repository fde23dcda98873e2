//! Measures the log store in-process (no HTTP) on the log benchmark's own corpus: append
//! rate (the calling thread's cost, with flushes running on another thread the way the
//! server's maintenance task runs them), flush rate, bytes on disk per line, and the
//! benchmark's queries. The figures in `docs/engine.md` come from:
//!
//! ```text
//! python3 bench/logs_gen.py 1000000 /tmp/logbench     # once: logs.ndjson + meta.json
//! cargo run --release -p hubmon-logstore --example measure -- /tmp/logbench /tmp/lsmeasure
//! ```
//!
//! The NDJSON lines are turned into `LogEntry`s the way the JSON push API maps them (model
//! fields by name, every other key into `fields`) before the clock starts.

#![allow(clippy::unwrap_used)] // a measurement tool: a failure should stop it loudly

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hubmon_logstore::{Expr, LogStore, Options, SearchRequest, StatsRequest, logql};
use hubmon_model::{Level, LogEntry, Timestamp, normalize_category};

const BATCH: usize = 5_000;

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn time<T>(runs: usize, mut f: impl FnMut(usize) -> T) -> (f64, f64) {
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs {
        let started = Instant::now();
        std::hint::black_box(f(i));
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    (percentile(&mut samples, 0.5), percentile(&mut samples, 0.95))
}

fn entry_of(line: &str) -> LogEntry {
    let serde_json::Value::Object(mut map) = serde_json::from_str(line).unwrap() else { panic!("not an object") };
    let text = |map: &mut serde_json::Map<String, serde_json::Value>, key: &str| match map.remove(key) {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    let timestamp: Timestamp = text(&mut map, "timestamp").unwrap().parse().unwrap();
    let level = text(&mut map, "level").and_then(|l| Level::parse(&l)).unwrap_or(Level::Info);
    let message = text(&mut map, "message").unwrap_or_default();
    let mut entry = LogEntry::new(timestamp, level, message);
    entry.category = normalize_category(&text(&mut map, "category").unwrap_or_default());
    entry.request_id = text(&mut map, "request_id");
    entry.user_id = text(&mut map, "user_id");
    entry.service = text(&mut map, "service");
    entry.host = text(&mut map, "host");
    entry.fields = map;
    entry
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let bench = std::path::PathBuf::from(args.get(1).cloned().unwrap_or_else(|| "/tmp/logbench".into()));
    let dir = std::path::PathBuf::from(args.get(2).cloned().unwrap_or_else(|| "/tmp/lsmeasure".into()));
    let ndjson = bench.join("logs.ndjson");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(bench.join("meta.json")).map_err(|e| {
        format!("{}: {e}; write it with `python3 bench/logs_gen.py 1000000 {}`", bench.display(), bench.display())
    })?)?;
    let needle = meta["needle"].as_str().unwrap_or("upstream reset by peer").to_string();
    let target_id = meta["request_id"].as_str().unwrap_or_default().to_string();

    let parsing = Instant::now();
    let mut raw_bytes = 0u64;
    let mut entries = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(&ndjson)?).lines() {
        let line = line?;
        raw_bytes += line.len() as u64 + 1;
        entries.push(entry_of(&line));
    }
    let count = entries.len();
    let start = entries.iter().map(|e| e.timestamp.as_millis()).min().unwrap_or(0);
    let end = entries.iter().map(|e| e.timestamp.as_millis()).max().unwrap_or(0) + 1;
    let mut lookup_ids: Vec<String> =
        entries.iter().step_by((count / 19).max(1)).filter_map(|e| e.request_id.clone()).take(19).collect();
    lookup_ids.push(target_id);
    println!(
        "lines: {count}, raw NDJSON: {:.1} MB ({:.0} B/line)",
        raw_bytes as f64 / 1e6,
        raw_bytes as f64 / count as f64
    );

    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(LogStore::open(
        &dir.join("store"),
        Options { retention: Duration::from_secs(10 * 365 * 86_400), ..Options::default() },
    )?);

    // The server flushes from its maintenance task, off the append path; so does this.
    let done = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let mut busy = Duration::ZERO;
            // MEASURE_NO_FLUSH=1 measures appends alone, the head growing to every line.
            let enabled = std::env::var_os("MEASURE_NO_FLUSH").is_none();
            while !done.load(Ordering::Relaxed) {
                if !enabled {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                if store.needs_flush() {
                    let started = Instant::now();
                    store.flush().unwrap();
                    busy += started.elapsed();
                } else {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            busy
        })
    };
    let mut batches: Vec<Vec<LogEntry>> = Vec::new();
    let mut lines = entries.into_iter().peekable();
    while lines.peek().is_some() {
        batches.push(lines.by_ref().take(BATCH).collect());
    }
    let started = Instant::now();
    let mut appending = Duration::ZERO;
    for batch in batches {
        let call = Instant::now();
        store.append(batch)?;
        appending += call.elapsed();
    }
    done.store(true, Ordering::Relaxed);
    eprintln!("appended at {:.1} s", parsing.elapsed().as_secs_f64());
    let mut flushing = flusher.join().unwrap();
    let last = Instant::now();
    let head_lines = store.store_stats().head_lines;
    store.flush()?;
    flushing += last.elapsed();
    store.sync()?;
    let elapsed = started.elapsed().as_secs_f64();
    let stats = store.store_stats();
    println!(
        "append alone ({BATCH}-line batches, flusher thread running): {:.2} s, {:.0} lines/s, {:.2} µs/line",
        appending.as_secs_f64(),
        count as f64 / appending.as_secs_f64(),
        appending.as_secs_f64() * 1e6 / count as f64
    );
    println!(
        "flush (other thread, plus the final {head_lines} lines): {:.2} s busy, {:.0} lines/s",
        flushing.as_secs_f64(),
        count as f64 / flushing.as_secs_f64()
    );
    println!("append + flush, wall: {elapsed:.2} s, {:.0} lines/s", count as f64 / elapsed);
    println!(
        "on disk: {} segments, {:.1} MB, {:.1} B/line",
        stats.segments,
        stats.segment_bytes as f64 / 1e6,
        stats.segment_bytes as f64 / count as f64
    );

    let search = |query: &str, from: i64, to: i64, limit: usize| {
        store.search(&SearchRequest { query: Expr::parse(query).unwrap(), from, to, limit, cursor: None }).unwrap()
    };
    let stats_of = |query: &str, step: i64| {
        store.stats(&StatsRequest { query: Expr::parse(query).unwrap(), from: start, to: end, step, top: 1 }).unwrap()
    };
    let phrase = format!("\"{needle}\"");
    let hour = (end - 3_600_000, end);
    let report = |name: &str, answer: String, (p50, p95): (f64, f64)| {
        println!("{name:<58} p50 {p50:>8.2} ms  p95 {p95:>8.2} ms  ({answer})");
    };
    let a = search("level:error category:database", hour.0, hour.1, 100).hits.len();
    report(
        "a  level:error category:database, 1 h, 100",
        format!("{a} lines"),
        time(21, |_| search("level:error category:database", hour.0, hour.1, 100)),
    );
    let b = search(&phrase, start, end, 1000).hits.len();
    report(
        &format!("b  {phrase}, all, limit 1000"),
        format!("{b} lines"),
        time(21, |_| search(&phrase, start, end, 1000)),
    );
    let b_count = stats_of(&phrase, 3_600_000).total;
    report(
        "b-count  stats of the phrase, step 1h",
        format!("total {b_count}"),
        time(21, |_| stats_of(&phrase, 3_600_000)),
    );
    report("b-page  the phrase, first 100", "100".into(), time(21, |_| search(&phrase, start, end, 100)));
    let c = search(&format!("request_id:{}", lookup_ids[0]), start, end, 100).hits.len();
    report(
        "c  request_id:<id> (20 different ids)",
        format!("{c} line"),
        time(lookup_ids.len(), |i| search(&format!("request_id:{}", lookup_ids[i]), start, end, 100)),
    );
    let d = stats_of("", 60_000);
    report(
        "d  counts by level per minute, everything",
        format!("{} buckets, total {}", d.buckets.len(), d.total),
        time(11, |_| stats_of("", 60_000)),
    );
    // A substring that is not a whole word: LogQL's line filter, newest 100.
    let partial = needle.get(1..needle.len().saturating_sub(1)).unwrap_or(&needle).to_string();
    let logql_query = format!("{{service=\"checkout\"}} |= \"{partial}\"");
    let parsed = match logql::LogqlQuery::parse(&logql_query)? {
        logql::LogqlQuery::Log(log) => log,
        logql::LogqlQuery::Metric(_) => unreachable!("a log query"),
    };
    let range = logql::Range { start, end, step: 60_000, limit: 100, backward: true };
    let found: usize = logql::select_logs(&store, &parsed, range).unwrap().iter().map(|s| s.entries.len()).sum();
    report(
        &format!("e  {logql_query}, 100 newest"),
        format!("{found} lines"),
        time(11, |_| logql::select_logs(&store, &parsed, range).unwrap()),
    );
    report(
        "f  stats of status:>=500 (not indexed), everything",
        String::new(),
        time(3, |_| stats_of("status:>=500", 60_000)),
    );
    drop(store);
    let reopen = Instant::now();
    let store = LogStore::open(&dir.join("store"), Options::default())?;
    println!("reopen: {:.2} s ({} segments)", reopen.elapsed().as_secs_f64(), store.store_stats().segments);
    Ok(())
}
