//! Store-level tests: durability, flush and recovery, search against a scan, retention.

use std::time::Duration;

use hubmon_model::{Level, LogEntry, Timestamp};

use super::*;

const HOUR: i64 = 3_600_000;

fn line(ts: i64, level: Level, message: &str) -> LogEntry {
    LogEntry::new(Timestamp(ts), level, message)
}

fn everything(store: &LogStore, query: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .search(&SearchRequest {
                query: Expr::parse(query).unwrap(),
                from: i64::MIN,
                to: i64::MAX,
                limit: 7,
                cursor,
            })
            .unwrap();
        ids.extend(page.hits.iter().map(|h| h.id));
        match page.next_cursor {
            Some(next) => cursor = Cursor::parse(&next),
            None => return ids,
        }
    }
}

fn sample(store: &LogStore) {
    let base = 1_700_000_000_000;
    let mut batch = Vec::new();
    for i in 0..300i64 {
        let level = [Level::Info, Level::Warning, Level::Error][(i % 3) as usize];
        let mut entry = line(base + (i % 50) * 600_000 + i, level, &format!("request {i} took {}ms", i * 7));
        entry.request_id = Some(format!("req-{i}"));
        entry.category = if i % 4 == 0 { "database".into() } else { "api".into() };
        entry.fields.insert("status".into(), serde_json::json!(200 + (i % 5) * 100));
        if i % 10 == 0 {
            entry.message.push_str(" connection refused");
        }
        batch.push(entry);
    }
    store.append(batch).unwrap();
}

fn expected(store: &LogStore, query: &str) -> Vec<u64> {
    let expr = Expr::parse(query).unwrap();
    let mut all = store.scan(&Expr::All, i64::MIN, i64::MAX, usize::MAX).unwrap();
    all.retain(|s| expr.matches(&s.entry));
    all.sort_by_key(|s| std::cmp::Reverse((s.entry.timestamp, s.id)));
    all.into_iter().map(|s| s.id).collect()
}

const QUERIES: [&str; 9] = [
    "",
    "level:error",
    "\"connection refused\"",
    "category:db -level:info",
    "status:>=500",
    "request_id:req-42",
    "took (refused OR level:warning)",
    "status:(200 OR 600) level:>=warning",
    "req-42",
];

#[test]
fn search_pages_newest_first_in_head_and_segments_alike() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    sample(&store);
    let mut in_head = Vec::new();
    for query in QUERIES {
        let got = everything(&store, query);
        assert_eq!(got, expected(&store, query), "{query}");
        in_head.push(got);
    }
    assert_eq!(in_head[0].len(), 300);
    assert_eq!(in_head[5].len(), 1);
    store.flush().unwrap();
    assert!(store.store_stats().segments > 1, "one segment per hour");
    for (query, before) in QUERIES.iter().zip(&in_head) {
        assert_eq!(&everything(&store, query), before, "{query} after flush");
    }
    // Half in segments, half in the head.
    sample(&store);
    for query in QUERIES {
        assert_eq!(everything(&store, query), expected(&store, query), "{query} mixed");
    }
}

#[test]
fn acknowledged_lines_survive_reopen_and_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path(), Options::default()).unwrap();
        sample(&store);
        store.flush().unwrap();
        store.append(vec![line(1_700_000_000_000, Level::Error, "after the flush")]).unwrap();
    }
    // A crash mid-write leaves half a record behind.
    let wal_dir = dir.path().join("wal");
    let newest = fs::read_dir(&wal_dir).unwrap().map(|e| e.unwrap().path()).max().unwrap();
    let mut bytes = fs::read(&newest).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2]);
    fs::write(&newest, bytes).unwrap();

    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    assert_eq!(everything(&store, "").len(), 301);
    assert_eq!(everything(&store, "flush").len(), 1);
    let ids = store.append(vec![line(1_700_000_000_001, Level::Info, "next")]).unwrap();
    assert_eq!(ids, vec![302], "ids continue after recovery");
}

#[test]
fn a_flush_that_died_half_way_is_replayed_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::open(dir.path(), Options::default()).unwrap();
        sample(&store);
        store.flush().unwrap();
    }
    // Pretend the WAL deletion and some segment renames never happened: bring back a WAL
    // with the same lines and remove one segment of the group.
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    let all = store.scan(&Expr::All, i64::MIN, i64::MAX, usize::MAX).unwrap();
    drop(store);
    let segments: Vec<_> = fs::read_dir(dir.path().join("segments")).unwrap().map(|e| e.unwrap().path()).collect();
    let first = segments.iter().min().unwrap();
    let origin = Segment::open(first).unwrap().origin().clone();
    fs::remove_file(first).unwrap();
    let mut wal_bytes = Vec::new();
    for stored in &all {
        let payload = serde_json::to_vec(stored.as_ref()).unwrap();
        wal_bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        wal_bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        wal_bytes.extend_from_slice(&payload);
    }
    fs::write(dir.path().join("wal").join(format!("{:016}.wal", origin.wal_to)), wal_bytes).unwrap();

    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.store_stats().segments, 0, "the incomplete group is dropped");
    assert_eq!(everything(&store, "").len(), 300, "and its lines come back from the WAL, once");
}

#[test]
fn retention_drops_old_and_oversized_segments() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { retention: Duration::from_secs(3600), ..Options::default() };
    let store = LogStore::open(dir.path(), options).unwrap();
    let now = 1_700_000_000_000;
    store.append(vec![line(now - 5 * HOUR, Level::Info, "old"), line(now - 60_000, Level::Info, "new")]).unwrap();
    store.flush().unwrap();
    store.maintain(Timestamp(now)).unwrap();
    assert_eq!(everything(&store, ""), vec![2]);

    let tiny = Options { max_bytes: 1, ..Options::default() };
    drop(store);
    let store = LogStore::open(dir.path(), tiny).unwrap();
    store.maintain(Timestamp(now)).unwrap();
    assert!(everything(&store, "").is_empty());
    assert_eq!(fs::read_dir(dir.path().join("segments")).unwrap().count(), 0);
}

#[test]
fn stats_count_levels_categories_and_templates_per_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    sample(&store);
    let request = |query: &str| StatsRequest {
        query: Expr::parse(query).unwrap(),
        from: 1_700_000_000_000,
        to: 1_700_000_000_000 + 50 * 600_000,
        step: HOUR,
        top: 3,
    };
    let check = |store: &LogStore| {
        let stats = store.stats(&request("")).unwrap();
        assert_eq!(stats.total, 300);
        assert_eq!(stats.levels["error"], 100);
        assert_eq!(stats.categories["database"], 75);
        assert_eq!(stats.buckets.iter().map(|b| b.total).sum::<u64>(), 300);
        assert_eq!(stats.top_messages[0].template, "request <*> took <*>");
        assert_eq!(stats.top_messages[0].count, 270);
        let errors = store.stats(&request("status:>=500")).unwrap();
        assert_eq!(errors.total, 120, "a scanned filter");
        let refused = store.stats(&request("\"connection refused\" -level:info")).unwrap();
        assert_eq!(refused.total, 20);
    };
    check(&store);
    store.flush().unwrap();
    check(&store);
}

#[test]
fn tail_sees_every_appended_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    let mut tail = store.subscribe();
    store.append(vec![line(1, Level::Info, "a"), line(2, Level::Info, "b")]).unwrap();
    assert_eq!(tail.try_recv().unwrap().entry.message, "a");
    assert_eq!(tail.try_recv().unwrap().entry.message, "b");
}

#[test]
fn field_names_and_values_come_from_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    sample(&store);
    store.flush().unwrap();
    let names = store.field_names().unwrap();
    assert!(names.contains(&"status".to_string()) && names.contains(&"level".to_string()), "{names:?}");
    assert_eq!(store.field_values("level").unwrap(), ["error", "info", "warning"]);
}

#[test]
fn many_keys_across_term_blocks_are_found_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    let batch: Vec<LogEntry> = (0..2000i64)
        .map(|i| {
            let mut e =
                line(1_700_000_000_000 + i * 1000, Level::Info, if i % 3 == 0 { "a timeout here" } else { "fine" });
            e.request_id = Some(format!("req-{i:08x}"));
            e
        })
        .collect();
    store.append(batch).unwrap();
    let before = everything(&store, "timeout");
    store.flush().unwrap();
    assert_eq!(everything(&store, "timeout"), before);
    assert_eq!(before.len(), 667);
    assert_eq!(everything(&store, "request_id:req-000007d0").len(), 0);
    assert_eq!(everything(&store, "request_id:req-000007cf").len(), 1);
}

#[test]
fn a_flush_carries_the_head_index_over_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    sample(&store);
    let head = store.head.read();
    let all: Vec<Arc<StoredEntry>> = (0..head.len() as u32).map(|r| head.entry(r).unwrap()).collect();
    let mut rows: Vec<u32> =
        (0..all.len() as u32).filter(|r| all[*r as usize].entry.timestamp.as_millis() % 2 == 0).collect();
    rows.sort_by_key(|r| (all[*r as usize].entry.timestamp, all[*r as usize].id));
    let entries: Vec<Arc<StoredEntry>> = rows.iter().map(|r| all[*r as usize].clone()).collect();
    let carried = head.segment_index(&rows);
    let mut postings: std::collections::BTreeMap<u64, Vec<u32>> = Default::default();
    let mut built = partition::ColumnsBuilder::default();
    for (row, stored) in entries.iter().enumerate() {
        for key in partition::index_keys(&stored.entry) {
            if !key.starts_with('v') {
                postings.entry(codec::hash64(key.as_bytes())).or_default().push(row as u32);
            }
        }
        built.push(stored);
    }
    let built = built.columns;
    assert_eq!(
        carried.postings.iter().map(|(key, rows)| (key, rows.to_vec())).collect::<Vec<_>>(),
        postings.into_iter().collect::<Vec<_>>()
    );
    let resolve = |c: &partition::Columns| -> Vec<(u64, i64, u8, String, String, u32)> {
        (0..c.ids.len())
            .map(|i| {
                (
                    c.ids[i],
                    c.timestamps[i],
                    c.levels[i],
                    c.category_names[c.categories[i] as usize].clone(),
                    c.template_texts[c.templates[i] as usize].clone(),
                    c.message_bytes[i],
                )
            })
            .collect()
    };
    assert_eq!(resolve(&carried.columns), resolve(&built));
}

/// Listings come from the head's rows before a flush and from the segments' key lists after
/// it; both must name the same fields and values (request ids are over the listing limit).
#[test]
fn field_listings_are_the_same_before_and_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    sample(&store);
    let mut wide = line(1_700_000_000_000, Level::Debug, "many ids");
    wide.service = Some("Shop".into());
    wide.fields.insert("nothing".into(), serde_json::Value::Null);
    let mut kinds = line(1_700_000_000_001, Level::Info, "every kind of value");
    kinds.line = Some(42);
    for (name, value) in [
        ("flag", serde_json::json!(true)),
        ("ratio", serde_json::json!(0.5)),
        ("obj", serde_json::json!({"a": [1, "x"]})),
        ("Mixed", serde_json::json!("AbC")),
        ("status", serde_json::json!("700")),
    ] {
        kinds.fields.insert(name.into(), value);
    }
    store.append(vec![wide, kinds]).unwrap();
    let listings = |store: &LogStore| {
        let names = store.field_names().unwrap();
        let values: Vec<Vec<String>> = names.iter().map(|n| store.field_values(n).unwrap()).collect();
        (names, values)
    };
    let before = listings(&store);
    let expected_names =
        ["Mixed", "category", "flag", "level", "line", "obj", "ratio", "request_id", "service", "status"];
    assert_eq!(before.0, expected_names);
    let values_of = |name: &str| &before.1[expected_names.iter().position(|n| *n == name).unwrap()];
    assert_eq!(values_of("level"), &["debug", "error", "info", "warning"]);
    assert_eq!(values_of("service"), &["Shop"]);
    assert_eq!(values_of("status"), &["200", "300", "400", "500", "600", "700"]);
    assert_eq!(values_of("Mixed"), &["abc"], "field values are listed as indexed: lower-cased");
    assert_eq!(values_of("line"), &["42"]);
    assert_eq!(values_of("obj"), &[r#"{"a":[1,"x"]}"#]);
    assert_eq!(values_of("flag"), &["true"]);
    assert_eq!(values_of("ratio"), &["0.5"]);
    assert_eq!(values_of("request_id").len(), 300);
    store.flush().unwrap();
    assert_eq!(listings(&store), before);
}

/// A long scan (a LogQL metric query over days) reads segments without the head's lock, so
/// appends go on meanwhile.
#[test]
fn appends_do_not_wait_for_a_scan_of_the_segments() {
    use std::sync::mpsc;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(LogStore::open(dir.path(), Options::default()).unwrap());
    sample(&store);
    store.flush().unwrap();
    let (reached, on_a_segment) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let scanner = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut first = true;
            store
                .scan_each(&Expr::All, i64::MIN, i64::MAX, |_| {
                    if std::mem::take(&mut first) {
                        reached.send(()).unwrap();
                        released.recv().unwrap();
                    }
                    true
                })
                .unwrap();
        })
    };
    on_a_segment.recv_timeout(Duration::from_secs(10)).unwrap();
    let (done, appended) = mpsc::channel();
    let appender = {
        let store = store.clone();
        std::thread::spawn(move || {
            store.append(vec![line(1_700_000_000_000, Level::Info, "while scanning")]).unwrap();
            done.send(()).unwrap();
        })
    };
    let in_time = appended.recv_timeout(Duration::from_secs(5)).is_ok();
    release.send(()).unwrap();
    scanner.join().unwrap();
    appender.join().unwrap();
    assert!(in_time, "the append waited for the scan to finish");
}

/// Searches and statistics read the segments with the head's lock released (they read the
/// head first, alone), so a long one does not hold back appends; and they still see every line.
#[test]
fn searches_read_the_segments_without_the_head_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    sample(&store);
    store.flush().unwrap();
    store.append(vec![line(1_700_000_000_000, Level::Info, "still in the head")]).unwrap();
    let mut groups = Vec::new();
    store
        .head_then_rest(|parts| {
            let head_free = store.head.try_write().is_some();
            groups.push((parts.iter().map(|p| p.rows()).sum::<usize>(), head_free));
            Ok(())
        })
        .unwrap();
    let segment_rows = store.store_stats().lines_in_segments as usize;
    assert_eq!(groups, vec![(1, false), (segment_rows, true)]);
    let request = SearchRequest { query: Expr::All, from: i64::MIN, to: i64::MAX, limit: 10_000, cursor: None };
    assert_eq!(store.search(&request).unwrap().hits.len(), segment_rows + 1);
    let (from, to) = (1_699_990_000_000, 1_700_090_000_000);
    let stats = StatsRequest { query: Expr::All, from, to, step: 3_600_000, top: 5 };
    assert_eq!(store.stats(&stats).unwrap().total as usize, segment_rows + 1);
}

/// Random and mutated query strings never panic the parsers (they may only be refused).
#[test]
fn query_parsers_never_panic_on_garbage() {
    let seeds = [
        "level:error \"a b\" -service:(x OR y) status:>=500 (a OR b)",
        r#"sum by (level) (count_over_time({a="b", c=~"d.*"} |= "x" | json | s >= 5 | line_format "{{.a}}" [5m]))"#,
        r#"topk(3, rate({a!="b"} !~ "x" | logfmt [1h]))"#,
    ];
    let alphabet: Vec<char> = "(){}[]\"`\\:=!~|-<>,. aORNTby0123456789é".chars().collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..5000 {
        let mut chars: Vec<char> = seeds[round % seeds.len()].chars().collect();
        for _ in 0..(next() % 6) {
            let at = (next() as usize) % (chars.len() + 1);
            match next() % 3 {
                0 if at < chars.len() => chars[at] = alphabet[(next() as usize) % alphabet.len()],
                1 => chars.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                _ if at < chars.len() => {
                    chars.remove(at);
                }
                _ => {}
            }
        }
        let text: String = chars.into_iter().collect();
        if let Ok(expr) = Expr::parse(&text) {
            // Lower-casing changes lengths here (İ, ẞ); matching and highlighting must cope.
            let entry = line(0, Level::Error, "İstanbul ẞ ÉCOLE a b timeout: x=1 [é]");
            let _ = expr.matches(&entry);
            let _ = highlights(&entry.message, &expr.highlight_terms());
        }
        let _ = logql::LogqlQuery::parse(&text);
    }
}

/// Every line of `store` as JSON, oldest first, to compare two stores line for line.
fn dump(store: &LogStore) -> Vec<String> {
    let all = store.scan(&Expr::All, i64::MIN, i64::MAX, usize::MAX).unwrap();
    all.iter().map(|s| serde_json::to_string(s.as_ref()).unwrap()).collect()
}

#[test]
fn format_1_segments_written_before_the_upgrade_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    sample(&store);
    let before: Vec<Vec<u64>> = QUERIES.iter().map(|q| expected(&store, q)).collect();
    let lines = dump(&store);
    let entries: Vec<Arc<StoredEntry>> = {
        let mut all = store.scan(&Expr::All, i64::MIN, i64::MAX, usize::MAX).unwrap();
        all.sort_by_key(|s| (s.entry.timestamp, s.id));
        all
    };
    drop(store);
    fs::remove_dir_all(dir.path().join("wal")).unwrap();
    let origin = Origin { wal_from: 1, wal_to: 1, part: 0, parts: 1 };
    Segment::write_v1(&dir.path().join("segments"), 0, origin, &entries).unwrap();

    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.store_stats().segments, 1);
    assert!(matches!(*store.parts.read().segments[0], Segment::V1(_)));
    assert_eq!(dump(&store), lines);
    for (query, want) in QUERIES.iter().zip(&before) {
        assert_eq!(&everything(&store, query), want, "{query}");
    }
    // New lines go to a format 2 segment next to it; both answer together.
    store.append(vec![line(1, Level::Error, "connection refused late")]).unwrap();
    store.flush().unwrap();
    assert!(matches!(*store.parts.read().segments[1], Segment::V2(_)));
    assert_eq!(everything(&store, "\"connection refused\"").len(), 31);
    assert_eq!(store.field_values("level").unwrap(), ["error", "info", "warning"]);
}

#[test]
fn a_segment_round_trips_every_kind_of_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    let mut batch = Vec::new();
    for i in 0..500i64 {
        let mut e = line(1_700_000_000_000 + i * 37, Level::ALL[(i % 5) as usize], &format!("naïve line {i} ÉCOLE"));
        e.category = ["api", "database"][(i % 2) as usize].into();
        e.module = (i % 3 == 0).then(|| "db::pool".into());
        e.function = (i % 5 == 0).then(|| format!("f{i}"));
        e.line = (i % 7 == 0).then_some(i as u32 * 1000);
        e.request_id = Some(format!("req-{i:016x}"));
        e.user_id = (i % 2 == 0).then(|| format!("u{}", i % 13));
        e.service = Some("checkout".into());
        e.host = (i % 4 != 0).then(|| format!("web-{}", i % 4));
        e.fields.insert("status".into(), serde_json::json!(200 + i % 3));
        e.fields.insert("ratio".into(), serde_json::json!(i as f64 / 7.0));
        e.fields.insert("big".into(), serde_json::json!(u64::MAX - i as u64));
        e.fields.insert("neg".into(), serde_json::json!(-i));
        if i % 11 == 0 {
            e.fields.insert("nested".into(), serde_json::json!({"a": [i, null, "x"]}));
            e.fields.insert("flag".into(), serde_json::json!(i % 2 == 0));
            e.fields.insert("none".into(), serde_json::Value::Null);
        }
        batch.push(e);
    }
    store.append(batch).unwrap();
    let before = dump(&store);
    let queries = ["request_id:req-00000000000001f3", "module:db::pool status:201", "école", "flag:true", "none:*"];
    let answers: Vec<Vec<u64>> = queries.iter().map(|q| everything(&store, q)).collect();
    store.flush().unwrap();
    assert_eq!(dump(&store), before);
    for (query, want) in queries.iter().zip(&answers) {
        assert_eq!(&everything(&store, query), want, "{query}");
        assert_eq!(&expected(&store, query), want, "{query}");
    }
    assert_eq!(answers[0].len(), 1);
    assert_eq!(store.field_values("host").unwrap(), ["web-1", "web-2", "web-3"]);
    // More distinct request ids than a segment lists: they are read from the rows.
    assert_eq!(store.field_values("request_id").unwrap().len(), 500);
    drop(store);
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    assert_eq!(dump(&store), before);
}

#[test]
fn a_damaged_segment_is_refused_with_its_name_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    sample(&store);
    store.flush().unwrap();
    drop(store);
    let segments: Vec<_> = fs::read_dir(dir.path().join("segments")).unwrap().map(|e| e.unwrap().path()).collect();
    let path = segments.iter().min().unwrap().clone();
    let good = fs::read(&path).unwrap();
    // Truncations anywhere: the trailer or footer no longer checks out.
    for len in [0, 7, 20, good.len() / 2, good.len() - 1] {
        fs::write(&path, &good[..len]).unwrap();
        let error = Segment::open(&path).err().expect("a truncated segment must not open");
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
    }
    // Flipped bytes in the row and term data (not covered by the footer checksum): opening
    // may succeed, but reading gives errors or lines, never a panic.
    for at in (8..good.len() - 40).step_by(97) {
        let mut bad = good.clone();
        bad[at] ^= 0x5A;
        fs::write(&path, &bad).unwrap();
        if let Ok(segment) = Segment::open(&path) {
            for row in 0..segment.rows() as u32 {
                let _ = segment.entry(row);
            }
            for query in QUERIES {
                let _ = search::candidates(&Expr::parse(query).unwrap(), &segment);
            }
        }
    }
    fs::write(&path, b"not a segment at all, just text").unwrap();
    let error = Segment::open(&path).err().unwrap().to_string();
    assert!(error.contains("formats 1 and 2") && error.contains(&path.display().to_string()), "{error}");
    // The store opens without the damaged file's lines and says so in its log.
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    assert!(store.store_stats().lines_in_segments < 300);
}

#[test]
fn keys_that_share_a_32_bit_hash_are_verified_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    // Find two request ids whose keys meet in 32 bits (a birthday search over 2^17 ids).
    let mut seen = std::collections::HashMap::new();
    let mut pair = None;
    for i in 0u64.. {
        let id = format!("r{i}");
        let hash = codec::hash32(codec::hash64(text::field_key("request_id", &id).as_bytes()));
        if let Some(other) = seen.insert(hash, id.clone()) {
            pair = Some((other, id));
            break;
        }
    }
    let (a, b) = pair.unwrap();
    let mut batch = Vec::new();
    for (i, id) in [&a, &b].into_iter().enumerate() {
        let mut e = line(1_700_000_000_000 + i as i64, Level::Info, "x");
        e.request_id = Some(id.clone());
        batch.push(e);
    }
    store.append(batch).unwrap();
    store.flush().unwrap();
    assert_eq!(everything(&store, &format!("request_id:{a}")).len(), 1);
    let stats = |q: &str| {
        store
            .stats(&StatsRequest {
                query: Expr::parse(q).unwrap(),
                from: 0,
                to: i64::MAX / 2,
                step: i64::MAX / 4,
                top: 0,
            })
            .unwrap()
            .total
    };
    assert_eq!(stats(&format!("request_id:{a}")), 1, "the shared hash's other row is not counted");
    assert_eq!(stats(&format!("request_id:{b}")), 1);
}

#[test]
fn statistics_answered_from_columns_equal_those_of_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    sample(&store);
    let queries = [
        "status:>=500",
        "status:(200 OR 600)",
        "level:>=warning",
        "level:error category:database",
        "category:API",
        "-status:<=300",
        "status:* -level:info",
        // Words and phrases alone: decided from the message, not the whole line.
        "\"connection refused\"",
        "took -refused",
        "(refused OR \"request 4\") took",
    ];
    let totals = |store: &LogStore| -> Vec<u64> {
        queries
            .iter()
            .map(|q| {
                let request = StatsRequest {
                    query: Expr::parse(q).unwrap(),
                    from: 1_699_990_000_000,
                    to: 1_700_100_000_000,
                    step: HOUR,
                    top: 3,
                };
                store.stats(&request).unwrap().total
            })
            .collect()
    };
    let in_head = totals(&store);
    let scanned: Vec<u64> = queries.iter().map(|q| expected(&store, q).len() as u64).collect();
    assert_eq!(in_head, scanned);
    assert!(in_head.iter().all(|n| *n > 0 && *n < 300), "{in_head:?}");
    store.flush().unwrap();
    assert_eq!(totals(&store), scanned);
}

#[test]
fn appends_flush_the_head_themselves_when_the_flusher_falls_behind() {
    let dir = tempfile::tempdir().unwrap();
    // Nobody calls maintain or flush here, as when the flusher cannot keep up.
    let options = Options { head_max_lines: 10, head_max_age: Duration::from_secs(3600), ..Options::default() };
    let store = LogStore::open(dir.path(), options).unwrap();
    let mut biggest_head = 0;
    for batch in 0..20 {
        let lines = (0..5).map(|i| line(1_700_000_000_000 + batch * 5 + i, Level::Info, "backpressure line")).collect();
        store.append(lines).unwrap();
        biggest_head = biggest_head.max(store.store_stats().head_lines);
    }
    assert!(biggest_head <= 4 * 10 + 5, "the head held {biggest_head} lines");
    assert!(store.store_stats().lines_in_segments >= 40, "{:?}", store.store_stats());
    assert_eq!(everything(&store, "backpressure").len(), 100, "every acknowledged line is searchable");
}

/// Fields that few rows have go into each row's other-fields record, not into value columns
/// as long as the segment: one line with 10,000 fields among 20,000 would otherwise have made
/// 10,000 columns of 20,000 codes each. Everything still reads back and is searched alike.
#[test]
fn rare_fields_get_no_columns_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    let base = 1_700_000_000_000;
    let mut lines = Vec::new();
    for i in 0..20_000i64 {
        let mut entry = line(base + i, Level::Info, &format!("request {i} done"));
        entry.fields.insert("status".into(), serde_json::json!(200 + i % 5));
        if i % 1000 == 0 {
            entry.fields.insert("sometimes".into(), serde_json::json!(format!("v{i}")));
        }
        lines.push(entry);
    }
    let mut wide = line(base + 20_000, Level::Warning, "a wide line");
    for f in 0..10_000 {
        wide.fields.insert(format!("f{f:05}"), serde_json::json!(f));
    }
    lines.push(wide);
    store.append(lines).unwrap();
    let queries = ["f09999:9999", "f00000:*", "sometimes:v5000", "sometimes:*", "status:>=204", "-status:200 wide"];
    let before: Vec<Vec<u64>> = queries.iter().map(|q| everything(&store, q)).collect();
    let lines_before = dump(&store);
    store.flush().unwrap();

    let parts = store.parts.read();
    let Segment::V2(segment) = &*parts.segments[0] else { panic!("not a format 2 segment") };
    assert_eq!(segment.value_column_names(), [codec::OPTIONAL_FIELDS.as_slice(), &["status"]].concat());
    drop(parts);
    assert_eq!(dump(&store), lines_before);
    for (query, want) in queries.iter().zip(&before) {
        assert_eq!(&everything(&store, query), want, "{query}");
        assert_eq!(&expected(&store, query), want, "{query}");
    }
    assert_eq!(before[0].len(), 1);
    assert_eq!(before[2].len(), 1);
    assert_eq!(before[3].len(), 20);
    let names = store.field_names().unwrap();
    assert!(names.iter().any(|n| n == "f09999") && names.iter().any(|n| n == "sometimes"), "{names:?}");
    assert_eq!(store.field_values("sometimes").unwrap().len(), 20);
}

/// `msg:` means the message or a free-form `msg` field; both the head and a segment (where
/// the field is a dictionary-coded column) answer it alike.
#[test]
fn an_alias_finds_the_message_and_a_field_of_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), Options::default()).unwrap();
    let base = 1_700_000_000_000;
    let lines: Vec<LogEntry> = (0..200i64)
        .map(|i| {
            let mut entry = line(base + i, Level::Info, &format!("main text {i}"));
            entry.fields.insert("msg".into(), serde_json::json!(if i % 2 == 0 { "even" } else { "odd" }));
            entry
        })
        .collect();
    store.append(lines).unwrap();
    let queries = ["msg:even", "msg:\"main text 7\"", "-msg:odd", "msg:even msg:main"];
    let before: Vec<Vec<u64>> = queries.iter().map(|q| everything(&store, q)).collect();
    store.flush().unwrap();
    for (query, want) in queries.iter().zip(&before) {
        assert_eq!(&everything(&store, query), want, "{query}");
        assert_eq!(&expected(&store, query), want, "{query}");
    }
    assert_eq!(before.iter().map(Vec::len).collect::<Vec<_>>(), [100, 1, 100, 100]);
}
