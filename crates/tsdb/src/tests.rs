use super::*;
use hubmon_model::MatchOp;

fn series(name: &str, instance: &str) -> Labels {
    Labels::from_static(&[("__name__", name), ("instance", instance), ("job", "api")])
}

fn batch(labels: &Labels, samples: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples { labels: labels.clone(), samples: samples.iter().map(|(t, v)| Sample::new(*t, *v)).collect() }
}

fn open(dir: &Path) -> Tsdb {
    Tsdb::open(dir, Config { wal_sync_interval: PromDuration::from_secs(0), ..Config::default() }).unwrap()
}

fn base() -> i64 {
    // Ten hours ago, on a block boundary, so cuts are predictable.
    let hour = 3_600_000;
    (now_ms() - 10 * hour).div_euclid(2 * hour) * 2 * hour
}

fn select_all(db: &Tsdb, matchers: &[Matcher]) -> Vec<Series> {
    db.select(matchers, i64::MIN, i64::MAX).unwrap()
}

#[test]
fn selects_by_matchers_and_time_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = base();
    let web1 = series("http_requests_total", "web-1");
    let web2 = series("http_requests_total", "web-2");
    let db1 = series("http_requests_total", "db-1");
    let report = db
        .append(vec![batch(&web1, &[(t, 1.0), (t + 10_000, 2.0)]), batch(&web2, &[(t, 5.0)]), batch(&db1, &[(t, 7.0)])])
        .unwrap();
    assert_eq!((report.accepted, report.rejected), (4, 0));

    let web = Matcher::new("instance", MatchOp::Regex, "web-.*").unwrap();
    let found = select_all(&db, &[Matcher::equal("job", "api"), web]);
    assert_eq!(found.iter().map(|s| s.labels.clone()).collect::<Vec<_>>(), vec![web1.clone(), web2]);
    assert_eq!(found[0].samples, vec![Sample::new(t, 1.0), Sample::new(t + 10_000, 2.0)]);

    let not_web = Matcher::new("instance", MatchOp::NotRegex, "web-.*").unwrap();
    assert_eq!(select_all(&db, &[not_web]).len(), 1);
    let window = db.select(&[Matcher::equal("instance", "web-1")], t + 1, t + 10_000).unwrap();
    assert_eq!(window[0].samples, vec![Sample::new(t + 10_000, 2.0)]);
    assert!(select_all(&db, &[Matcher::equal("job", "nope")]).is_empty());
    assert_eq!(db.label_values("instance", &[], i64::MIN, i64::MAX).unwrap(), ["db-1", "web-1", "web-2"]);
    assert_eq!(db.label_names(&[], i64::MIN, i64::MAX).unwrap(), ["__name__", "instance", "job"]);
}

#[test]
fn a_restart_replays_every_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let t = base();
    let labels = series("up", "a");
    {
        let db = open(dir.path());
        for i in 0..500 {
            db.append(vec![batch(&labels, &[(t + i * 1000, i as f64)])]).unwrap();
        }
    }
    let db = open(dir.path());
    let found = select_all(&db, &[Matcher::equal("__name__", "up")]);
    assert_eq!(found[0].samples.len(), 500);
    assert_eq!(found[0].samples[499], Sample::new(t + 499_000, 499.0));
    // New appends after the restart land after the replayed ones.
    db.append(vec![batch(&labels, &[(t + 500_000, 500.0)])]).unwrap();
    drop(db);
    assert_eq!(select_all(&open(dir.path()), &[])[0].samples.len(), 501);
}

#[test]
fn late_duplicate_and_out_of_range_samples_are_refused_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = base() + 3_600_000;
    let labels = series("temperature", "a");
    db.append(vec![batch(&labels, &[(t, 1.0)])]).unwrap();
    let now = now_ms();
    let report = db
        .append(vec![batch(
            &labels,
            &[
                (t - 60_000, 0.5),            // late, inside the 10 m window: kept
                (t - 3_600_000, 0.1),         // late beyond the window: refused
                (t, 1.0),                     // same value again: idempotent
                (t, 9.0),                     // another value for a stored timestamp: refused
                (now + 3_600_000, 2.0),       // an hour in the future: refused
                (now - 40 * 86_400_000, 3.0), // before retention: refused
                (t + 1000, 2.0),              // kept
            ],
        )])
        .unwrap();
    assert_eq!(report.rejected, 4, "{report:?}");
    assert_eq!(report.accepted, 3);
    let samples = &select_all(&db, &[])[0].samples;
    assert_eq!(samples, &vec![Sample::new(t - 60_000, 0.5), Sample::new(t, 1.0), Sample::new(t + 1000, 2.0)]);
    assert!(report.rejections.iter().any(|r| r.reason.contains("future")));
}

#[test]
fn limits_refuse_whole_series_and_keep_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { max_series: 2, max_labels_per_series: 4, max_label_length: 16, ..Config::default() };
    let db = Tsdb::open(dir.path(), config).unwrap();
    let t = base();
    let many = Labels::from_static(&[("__name__", "x"), ("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
    let long = Labels::from_static(&[("__name__", "x"), ("a", "this value is far too long")]);
    let report = db
        .append(vec![
            batch(&many, &[(t, 1.0)]),
            batch(&long, &[(t, 1.0)]),
            batch(&series("a", "1"), &[(t, 1.0)]),
            batch(&series("b", "1"), &[(t, 1.0)]),
            batch(&series("c", "1"), &[(t, 1.0), (t + 1, 2.0)]),
        ])
        .unwrap();
    assert_eq!((report.accepted, report.rejected), (2, 4), "{report:?}");
    let reasons: Vec<&str> = report.rejections.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons[0].contains("max_labels_per_series"));
    assert!(reasons[1].contains("max_label_length"));
    assert!(reasons[2].contains("max_series"));
}

#[test]
fn the_head_is_cut_into_blocks_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let t = base();
    let labels = series("counter", "a");
    let other = series("gauge", "b");
    let total = 5 * 360; // five hours at 10 s
    {
        let db = open(dir.path());
        for i in 0..total {
            db.append(vec![batch(&labels, &[(t + i * 10_000, i as f64)]), batch(&other, &[(t + i * 10_000, 1.0)])])
                .unwrap();
        }
        db.maintain_at(now_ms()).unwrap();
        let stats = db.stats();
        assert_eq!(stats.blocks, 1, "{stats:?}");
        assert_eq!(stats.block_samples + stats.head_samples, 2 * total as u64, "{stats:?}");
        let found = select_all(&db, &[Matcher::equal("__name__", "counter")]);
        assert_eq!(found[0].samples.len(), total as usize);
        assert!(found[0].samples.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
        // Samples in the persisted range are now refused, not silently doubled.
        let report = db.append(vec![batch(&labels, &[(t + 5_000, 9.0)])]).unwrap();
        assert_eq!(report.rejected, 1);
    }
    let db = open(dir.path());
    let found = select_all(&db, &[Matcher::equal("__name__", "counter")]);
    assert_eq!(found[0].samples.len(), total as usize, "after restart: block + replayed head");
    assert_eq!(found[0].samples.last().copied(), Some(Sample::new(t + (total - 1) * 10_000, (total - 1) as f64)));
    let block_dirs = std::fs::read_dir(dir.path().join("blocks")).unwrap().count();
    assert_eq!(block_dirs, 1);
}

#[test]
fn retention_deletes_old_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = base();
    let labels = series("x", "a");
    for i in 0..(4 * 360) {
        db.append(vec![batch(&labels, &[(t + i * 10_000, 1.0)])]).unwrap();
    }
    db.maintain_at(now_ms()).unwrap();
    assert_eq!(db.stats().blocks, 1);
    db.maintain_at(now_ms() + 16 * 86_400_000).unwrap();
    assert_eq!(db.stats().blocks, 0);
    assert_eq!(std::fs::read_dir(dir.path().join("blocks")).unwrap().count(), 0);
}

#[test]
fn steady_series_compress_well_in_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let t = base();
    let mut value = 0.0;
    for i in 0..(4 * 360) {
        let mut batch_ = Vec::new();
        for s in 0..50 {
            value += 1.0;
            batch_.push(batch(
                &series("requests_total", &format!("web-{s}")),
                &[(t + i * 10_000, (value as i64 / 50) as f64)],
            ));
        }
        db.append(batch_).unwrap();
    }
    db.maintain_at(now_ms()).unwrap();
    let stats = db.stats();
    let per_sample = stats.block_bytes as f64 / stats.block_samples as f64;
    assert!(per_sample < 0.6, "{per_sample:.3} bytes per sample: {stats:?}");
    println!("{per_sample:.3} bytes per sample in blocks; {stats:?}");
}

#[test]
fn adjacent_blocks_are_compacted_without_losing_a_sample() {
    let dir = tempfile::tempdir().unwrap();
    let hour = 3_600_000;
    let start = (now_ms() - 30 * hour).div_euclid(6 * hour) * 6 * hour;
    let labels = series("counter", "a");
    let other = series("gauge", "b");
    let total = 20 * 360; // twenty hours at 10 s
    let db = open(dir.path());
    for i in 0..total {
        let mut batch_ = vec![batch(&labels, &[(start + i * 10_000, i as f64)])];
        if i % 2 == 0 {
            batch_.push(batch(&other, &[(start + i * 10_000, 0.5)]));
        }
        db.append(batch_).unwrap();
        if i % 720 == 719 {
            db.maintain_at(now_ms()).unwrap();
        }
    }
    db.maintain_at(now_ms()).unwrap();
    let levels: Vec<u32> = db.blocks.read().iter().map(|b| b.meta.level).collect();
    assert!(levels.iter().any(|l| *l >= 2), "some blocks were compacted: {levels:?}");
    let stats = db.stats();
    assert_eq!(stats.block_samples + stats.head_samples, (total + total / 2) as u64, "{stats:?}");
    let found = select_all(&db, &[Matcher::equal("__name__", "counter")]);
    assert_eq!(found[0].samples.len(), total as usize);
    assert!(found[0].samples.windows(2).all(|w| w[1].timestamp - w[0].timestamp == 10_000));
    drop(db);
    let reopened = open(dir.path());
    assert_eq!(select_all(&reopened, &[Matcher::equal("__name__", "gauge")])[0].samples.len(), (total / 2) as usize);
    let blocks = reopened.blocks.read();
    for pair in blocks.windows(2) {
        assert!(pair[0].meta.max_time <= pair[1].meta.min_time, "blocks never overlap");
    }
}
