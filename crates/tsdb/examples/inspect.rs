//! Prints what a metrics store holds: `cargo run -p hubmon-tsdb --example inspect -- DIR [METRIC]`.
//! DIR is `<data_dir>/metrics` of a stopped server (opening replays and extends its log).

use hubmon_model::{Matcher, Querier};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: inspect DIR [METRIC]")?;
    let store = hubmon_tsdb::Tsdb::open(std::path::Path::new(&dir), hubmon_tsdb::Config::default())?;
    println!("{}", serde_json::to_string_pretty(&store.stats())?);
    if let Some(metric) = args.next() {
        let series = store.select(&[Matcher::equal("__name__", metric.clone())], i64::MIN, i64::MAX)?;
        let samples: usize = series.iter().map(|s| s.samples.len()).sum();
        println!("{metric}: {} series, {samples} samples", series.len());
    }
    Ok(())
}
