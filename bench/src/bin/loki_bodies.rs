//! `bench-loki-bodies FILE.ndjson OUT_DIR [BATCH]`: turns the log benchmark's lines into Loki
//! push bodies as promtail and Grafana Alloy send them (protobuf `PushRequest`, snappy block
//! format), one file per batch of BATCH lines (default 5,000), so the load script can post
//! them without encoding anything while the clock runs.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use hubmon_ingest::logs::loki::{EntryAdapter, ProtoTimestamp, PushRequest, StreamAdapter};
use prost::Message;

#[derive(Parser, Debug)]
#[command(name = "bench-loki-bodies", about = "NDJSON lines into protobuf+snappy Loki push bodies")]
struct Cli {
    input: PathBuf,
    out: PathBuf,
    #[arg(default_value_t = 5000)]
    batch: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = std::fs::File::open(&cli.input).with_context(|| format!("cannot open {}", cli.input.display()))?;
    std::fs::create_dir_all(&cli.out).with_context(|| format!("cannot create {}", cli.out.display()))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let (mut entries, mut bodies, mut lines) = (Vec::with_capacity(cli.batch), 0usize, 0usize);
    let mut write = |entries: &mut Vec<EntryAdapter>| -> anyhow::Result<()> {
        let request = PushRequest {
            streams: vec![StreamAdapter { labels: r#"{job="bench"}"#.into(), entries: std::mem::take(entries) }],
        };
        let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec())?;
        let path = cli.out.join(format!("{bodies:06}.bin"));
        std::fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))?;
        bodies += 1;
        Ok(())
    };
    for line in std::io::BufReader::new(file).lines() {
        // Each line carries its own timestamp (the JSON line's field wins); the entry's
        // timestamp is the time it was read, as promtail stamps it.
        let line = line?;
        let nanos = now.subsec_nanos() as usize + lines;
        entries.push(EntryAdapter {
            timestamp: Some(ProtoTimestamp {
                seconds: i64::try_from(now.as_secs())? + i64::try_from(nanos / 1_000_000_000)?,
                nanos: i32::try_from(nanos % 1_000_000_000)?,
            }),
            line,
            structured_metadata: Vec::new(),
        });
        lines += 1;
        if entries.len() == cli.batch {
            write(&mut entries)?;
        }
    }
    if !entries.is_empty() {
        write(&mut entries)?;
    }
    println!("{lines} lines in {bodies} bodies");
    Ok(())
}
