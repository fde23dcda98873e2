//! Measures the log store in-process (no HTTP): append rate, bytes on disk per line, and
//! search / statistics latencies, on generated access-log-like lines. The figures in
//! `docs/engine.md` come from:
//!
//! ```text
//! cargo run --release -p hubmon-logstore --example measure -- 1000000 /tmp/measure
//! ```
//!
//! It also writes the same lines as NDJSON to `<dir>/raw.ndjson` for the `grep -c` floor.

#![allow(clippy::unwrap_used)] // a measurement tool: a failure should stop it loudly

use std::io::Write;
use std::time::Instant;

use hubmon_logstore::{Expr, LogStore, Options, SearchRequest, StatsRequest};
use hubmon_model::{Level, LogEntry, Timestamp};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let count: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = std::path::PathBuf::from(args.get(2).cloned().unwrap_or_else(|| "/tmp/hubmon-logstore-measure".into()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let store = LogStore::open(
        &dir.join("store"),
        Options { retention: std::time::Duration::from_secs(10 * 365 * 86_400), ..Options::default() },
    )?;
    let mut raw = std::io::BufWriter::new(std::fs::File::create(dir.join("raw.ndjson"))?);

    let services = ["checkout", "search", "auth", "billing", "inventory"];
    let routes = ["/api/v1/items", "/api/v1/cart", "/api/v1/login", "/api/v1/pay", "/api/v1/search"];
    let categories = ["api", "database", "auth", "system"];
    let mut random = Lcg(7);
    let start = Timestamp::now().as_millis() - 3_600_000 * 6;
    // Six hours of lines, evenly spread.
    let spacing = (3_600_000.0 * 6.0 / count as f64).max(0.001);
    let mut rare_ids = Vec::new();
    let started = Instant::now();
    let mut raw_bytes = 0u64;
    let mut batch = Vec::with_capacity(1000);
    for i in 0..count {
        let level = match random.next(100) {
            0..=1 => Level::Error,
            2..=6 => Level::Warning,
            7..=20 => Level::Debug,
            _ => Level::Info,
        };
        let status = [200, 200, 200, 201, 204, 301, 400, 404, 500, 503][random.next(10) as usize];
        let duration = random.next(3000);
        let route = routes[random.next(5) as usize];
        let mut message = format!("GET {route} {status} in {duration}ms");
        if random.next(1000) == 0 {
            message.push_str(" upstream reset by peer");
            rare_ids.push(i);
        }
        let mut entry = LogEntry::new(Timestamp(start + (i as f64 * spacing) as i64), level, message);
        entry.category = categories[random.next(4) as usize].to_string();
        entry.service = Some(services[random.next(5) as usize].to_string());
        entry.host = Some(format!("web-{}", random.next(8)));
        entry.request_id = Some(format!("{:016x}", random.next(u64::MAX >> 1) ^ i));
        entry.user_id = Some(format!("u{}", random.next(5000)));
        entry.fields.insert("status".into(), status.into());
        entry.fields.insert("duration_ms".into(), duration.into());
        entry.fields.insert("route".into(), route.into());
        let line = serde_json::to_string(&entry)?;
        raw_bytes += line.len() as u64 + 1;
        writeln!(raw, "{line}")?;
        batch.push(entry);
        if batch.len() == 1000 {
            store.append(std::mem::take(&mut batch))?;
            if store.needs_flush() {
                store.flush()?;
            }
        }
    }
    store.append(batch)?;
    store.flush()?;
    store.sync()?;
    raw.flush()?;
    let elapsed = started.elapsed().as_secs_f64();
    let stats = store.store_stats();
    println!(
        "lines: {count}, raw NDJSON: {:.1} MB ({:.0} B/line)",
        raw_bytes as f64 / 1e6,
        raw_bytes as f64 / count as f64
    );
    println!(
        "append + flush: {:.1} s, {:.0} lines/s, {:.1} MB/s of NDJSON",
        elapsed,
        count as f64 / elapsed,
        raw_bytes as f64 / 1e6 / elapsed
    );
    println!(
        "on disk: {} segments, {:.1} MB, {:.1} B/line",
        stats.segments,
        stats.segment_bytes as f64 / 1e6,
        stats.segment_bytes as f64 / count as f64
    );

    let end = start + 3_600_000 * 6 + 1;
    let search = |query: &str, from: i64, to: i64| {
        store.search(&SearchRequest {
            query: Expr::parse(query).unwrap_or(Expr::All),
            from,
            to,
            limit: 100,
            cursor: None,
        })
    };
    let one_hour = (end - 3_600_000, end);
    let (p50, p95) = time(20, |_| search("level:error category:database", one_hour.0, one_hour.1));
    println!("field selector (level:error category:database, 1 h, 100 newest): p50 {p50:.2} ms, p95 {p95:.2} ms");
    let hits = search("\"upstream reset\"", start, end)?.hits.len();
    let (p50, p95) = time(20, |_| search("\"upstream reset\"", start, end));
    println!("phrase matching 0.1 % ({} lines, first page {hits}): p50 {p50:.2} ms, p95 {p95:.2} ms", rare_ids.len());
    let count_all = |query: &str| {
        let mut total = 0;
        let mut cursor = None;
        loop {
            let page = store
                .search(&SearchRequest {
                    query: Expr::parse(query).unwrap_or(Expr::All),
                    from: start,
                    to: end,
                    limit: 1000,
                    cursor,
                })
                .unwrap();
            total += page.hits.len();
            match page.next_cursor.as_deref().and_then(hubmon_logstore::Cursor::parse) {
                Some(next) => cursor = Some(next),
                None => return total,
            }
        }
    };
    let (p50, p95) = time(5, |_| count_all("\"upstream reset\""));
    println!("all lines of that phrase (paged): p50 {p50:.2} ms, p95 {p95:.2} ms");
    let sample_ids: Vec<String> = (0..20)
        .map(|i| {
            let row = store
                .search(&SearchRequest {
                    query: Expr::All,
                    from: start + i * 1_000_000,
                    to: end,
                    limit: 1,
                    cursor: None,
                })
                .unwrap();
            row.hits[0].entry.request_id.clone().unwrap_or_default()
        })
        .collect();
    let (p50, p95) = time(20, |i| search(&format!("request_id:{}", sample_ids[i]), start, end));
    println!("request_id lookup: p50 {p50:.2} ms, p95 {p95:.2} ms");
    let (p50, p95) =
        time(5, |_| store.stats(&StatsRequest { query: Expr::All, from: start, to: end, step: 60_000, top: 10 }));
    println!("counts by level per minute over everything: p50 {p50:.2} ms, p95 {p95:.2} ms");
    let (p50, p95) = time(5, |_| {
        store.stats(&StatsRequest {
            query: Expr::parse("status:>=500").unwrap_or(Expr::All),
            from: start,
            to: end,
            step: 60_000,
            top: 10,
        })
    });
    println!("stats of a scanned filter (status:>=500) over everything: p50 {p50:.2} ms, p95 {p95:.2} ms");
    drop(store);
    let reopen = Instant::now();
    let store = LogStore::open(&dir.join("store"), Options::default())?;
    println!("reopen: {:.2} s ({} segments)", reopen.elapsed().as_secs_f64(), store.store_stats().segments);
    Ok(())
}
