//! How fast Loki push bodies turn into log entries, without HTTP or the store: builds
//! 5,000-line push bodies from an NDJSON file, as JSON (as bench/logs_load.py sends them) and
//! as snappy-compressed protobuf (what promtail and Grafana Alloy send), then decodes each
//! set three times and prints lines/s of the best and median pass.
//!
//!   cargo run --release -p hubmon-ingest --example loki_decode -- /tmp/logbench/logs.ndjson

use std::time::Instant;

use hubmon_ingest::logs::{Limits, loki};
use hubmon_model::Timestamp;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: loki_decode FILE.ndjson")?;
    let text = std::fs::read_to_string(&path)?;
    let lines: Vec<&str> = text.lines().collect();
    let bodies: Vec<Vec<u8>> = lines
        .chunks(5000)
        .enumerate()
        .map(|(batch, chunk)| {
            let values: Vec<serde_json::Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, line)| {
                    serde_json::json!([(1_700_000_000_000_000_000_i64 + (batch * 5000 + i) as i64).to_string(), line])
                })
                .collect();
            serde_json::to_vec(&serde_json::json!({"streams": [{"stream": {"job": "bench"}, "values": values}]}))
        })
        .collect::<Result<_, _>>()?;
    let protobuf: Vec<Vec<u8>> = lines
        .chunks(5000)
        .enumerate()
        .map(|(batch, chunk)| {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, line)| loki::EntryAdapter {
                    timestamp: Some(loki::ProtoTimestamp {
                        seconds: 1_700_000_000,
                        nanos: i32::try_from(batch * 5000 + i).unwrap_or(0),
                    }),
                    line: line.to_string(),
                    structured_metadata: Vec::new(),
                })
                .collect();
            let request =
                loki::PushRequest { streams: vec![loki::StreamAdapter { labels: r#"{job="bench"}"#.into(), entries }] };
            snap::raw::Encoder::new().compress_vec(&prost::Message::encode_to_vec(&request))
        })
        .collect::<Result<_, _>>()?;
    let limits = Limits::default();
    report("decode_json", lines.len(), || {
        bodies.iter().map(|body| loki::decode_json(body, Timestamp::now(), &limits)).collect()
    })?;
    report("decode_protobuf", lines.len(), || {
        protobuf.iter().map(|body| loki::decode_protobuf(body, 64 << 20, Timestamp::now(), &limits)).collect()
    })?;
    Ok(())
}

/// Runs `decode` three times and prints its rates.
fn report(
    name: &str,
    lines: usize,
    decode: impl Fn() -> Result<Vec<hubmon_ingest::logs::Parsed>, loki::PushError>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut passes = Vec::new();
    let mut cpu_passes = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let cpu_start = cpu_seconds();
        let mut entries = 0;
        for parsed in decode()? {
            entries += parsed.entries.len();
            assert!(parsed.rejections.is_empty(), "{:?}", parsed.rejections.first());
        }
        passes.push(entries as f64 / start.elapsed().as_secs_f64());
        cpu_passes.push(entries as f64 / (cpu_seconds() - cpu_start));
    }
    passes.sort_by(f64::total_cmp);
    cpu_passes.sort_by(f64::total_cmp);
    println!(
        "{lines} lines: {name} {:.0} lines/s (median of 3), best {:.0}; per CPU second (steadier on a busy machine) {:.0}",
        passes[1], passes[2], cpu_passes[1]
    );
    Ok(())
}

/// CPU time of this thread so far (user + system, from /proc; clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
