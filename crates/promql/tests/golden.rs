//! Golden tests in Prometheus's promqltest style: every `testdata/*.test` script loads series
//! into a [`MemoryQuerier`] and checks query results.
//!
//! Script format (a subset of promqltest):
//! ```text
//! load 5m                                  # samples at 0, 5m, 10m, …
//!   metric{l="v"} 0+10x10 _ stale 1 2x3     # a+bxn: n+1 values; _ missing; stale marker
//! clear                                    # forget every series
//! eval instant at 50m <expr>               # then expected lines: `series value` or `value`
//! eval_ordered instant at 50m <expr>       # same, order checked
//! eval_fail instant at 50m <expr>          # optional next line: `error_type bad_data`
//! eval range from 0 to 10m step 5m <expr>  # expected lines: `series v1 v2 _ v4`
//! ```
//! Values are compared within 1e-9 relative; NaN equals NaN.

use std::sync::Arc;

use hubmon_model::{Labels, Sample, stale_marker};
use hubmon_promql::testing::MemoryQuerier;
use hubmon_promql::{Engine, EngineOptions, Value};

#[derive(Debug)]
enum Expect {
    Scalar(f64),
    Series(Labels, Vec<Option<f64>>),
}

#[derive(Debug)]
enum Kind {
    Instant { at: i64, ordered: bool },
    Range { start: i64, end: i64, step: i64 },
    Fail { at: i64, error_type: Option<String> },
}

fn parse_duration_ms(text: &str) -> Result<i64, String> {
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n * 1000);
    }
    let mut total = 0i64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("bad duration {text:?}"));
        }
        let n: i64 = rest[..digits].parse().map_err(|_| format!("bad duration {text:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            u => return Err(format!("bad duration unit {u:?} in {text:?}")),
        };
        total += n * unit;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

fn parse_number(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "Inf" | "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text.parse().map_err(|_| format!("bad number {text:?}")),
    }
}

/// One value token: `1`, `_`, `stale`, `a+bxn`, `a-bxn`, `axn`, `_xn`.
fn expand_token(token: &str, out: &mut Vec<Option<f64>>) -> Result<(), String> {
    match token {
        "_" => {
            out.push(None);
            return Ok(());
        }
        "stale" => {
            out.push(Some(stale_marker()));
            return Ok(());
        }
        _ => {}
    }
    let Some((head, times)) = token.rsplit_once('x') else {
        out.push(Some(parse_number(token)?));
        return Ok(());
    };
    let times: usize = times.parse().map_err(|_| format!("bad repetition in {token:?}"))?;
    if head == "_" {
        out.extend(std::iter::repeat_n(None, times));
        return Ok(());
    }
    let split = head.char_indices().skip(1).find(|&(i, c)| (c == '+' || c == '-') && !head[..i].ends_with('e'));
    let (start, delta) = match split {
        Some((i, _)) => (parse_number(&head[..i])?, parse_number(&head[i..])?),
        None => (parse_number(head)?, 0.0),
    };
    for k in 0..=times {
        out.push(Some(start + delta * k as f64));
    }
    Ok(())
}

/// `name{a="b", c="d"}` or `{a="b"}` or `name`, then the rest of the line.
fn parse_series(line: &str) -> Result<(Labels, &str), String> {
    let line = line.trim();
    let brace = line.find('{');
    let space = line.find(char::is_whitespace).unwrap_or(line.len());
    let mut pairs = Vec::new();
    let rest;
    match brace {
        Some(b) if b < space => {
            if b > 0 {
                pairs.push(("__name__".to_string(), line[..b].to_string()));
            }
            let mut chars = line[b + 1..].char_indices().peekable();
            let mut end = None;
            let body = &line[b + 1..];
            let mut name_start = 0;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = Some(b + 1 + i + 1);
                        break;
                    }
                    '=' => {
                        let name = body[name_start..i].trim().trim_start_matches(',').trim().to_string();
                        let (_, quote) = chars.next().ok_or("unterminated label")?;
                        if quote != '"' {
                            return Err(format!("expected '\"' in {line:?}"));
                        }
                        let mut value = String::new();
                        loop {
                            let (_, c) = chars.next().ok_or("unterminated label value")?;
                            match c {
                                '\\' => value.push(chars.next().ok_or("bad escape")?.1),
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        pairs.push((name, value));
                        name_start = chars.peek().map(|(i, _)| *i).unwrap_or(body.len());
                    }
                    _ => {}
                }
            }
            rest = &line[end.ok_or_else(|| format!("missing '}}' in {line:?}"))?..];
        }
        _ => {
            pairs.push(("__name__".to_string(), line[..space].to_string()));
            rest = &line[space..];
        }
    }
    Ok((Labels::new(pairs).map_err(|e| e.to_string())?, rest))
}

fn parse_expect(line: &str) -> Result<Expect, String> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    if let (1, false, Ok(v)) = (tokens.len(), line.contains('{'), parse_number(tokens.first().copied().unwrap_or(""))) {
        return Ok(Expect::Scalar(v));
    }
    let (labels, rest) = parse_series(line)?;
    let mut values = Vec::new();
    for token in rest.split_whitespace() {
        expand_token(token, &mut values)?;
    }
    Ok(Expect::Series(labels, values))
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

struct Case {
    location: String,
    query: String,
    kind: Kind,
    expect: Vec<Expect>,
}

fn check(engine: &Engine, case: &Case) -> Result<(), String> {
    match &case.kind {
        Kind::Fail { at, error_type } => match engine.instant(&case.query, *at) {
            Ok(v) => Err(format!("expected an error, got {v:?}")),
            Err(e) => match error_type {
                Some(t) if t != e.error_type() => Err(format!("expected error type {t}, got {} ({e})", e.error_type())),
                _ => Ok(()),
            },
        },
        Kind::Instant { at, ordered } => {
            let value = engine.instant(&case.query, *at).map_err(|e| format!("error: {e}"))?;
            match value {
                Value::Scalar(_, v) => match case.expect.as_slice() {
                    [Expect::Scalar(want)] if close(*want, v) => Ok(()),
                    _ => Err(format!("got scalar {v}, want {:?}", case.expect)),
                },
                Value::Vector(got) => {
                    let got_desc = || format!("got {got:?}, want {:?}", case.expect);
                    if got.len() != case.expect.len() {
                        return Err(got_desc());
                    }
                    for (i, want) in case.expect.iter().enumerate() {
                        let Expect::Series(labels, values) = want else { return Err(got_desc()) };
                        let [Some(value)] = values.as_slice() else { return Err(format!("bad expectation {want:?}")) };
                        let found = if *ordered {
                            got.get(i).filter(|g| &g.0 == labels)
                        } else {
                            got.iter().find(|g| &g.0 == labels)
                        };
                        match found {
                            Some((_, v)) if close(*value, *v) => {}
                            _ => return Err(got_desc()),
                        }
                    }
                    Ok(())
                }
                Value::Matrix(got) => compare_series(&got, &case.expect, None),
                Value::String(_, s) => Err(format!("got string {s:?}")),
            }
        }
        Kind::Range { start, end, step } => {
            let got = engine.range(&case.query, *start, *end, *step).map_err(|e| format!("error: {e}"))?;
            compare_series(&got, &case.expect, Some((*start, *step)))
        }
    }
}

/// With `steps`, expected values are per step (`_` = no point); without, raw values in order.
fn compare_series(got: &[hubmon_model::Series], expect: &[Expect], steps: Option<(i64, i64)>) -> Result<(), String> {
    let desc = || format!("got {got:?}, want {expect:?}");
    if got.len() != expect.len() {
        return Err(desc());
    }
    for want in expect {
        let Expect::Series(labels, values) = want else { return Err(desc()) };
        let series = got.iter().find(|s| &s.labels == labels).ok_or_else(desc)?;
        let wanted: Vec<(Option<i64>, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (steps.map(|(s, st)| s + i as i64 * st), v)))
            .collect();
        if wanted.len() != series.samples.len() {
            return Err(desc());
        }
        for ((t, v), Sample { timestamp, value }) in wanted.iter().zip(&series.samples) {
            if t.is_some_and(|t| t != *timestamp) || !close(*v, *value) {
                return Err(desc());
            }
        }
    }
    Ok(())
}

fn run_file(path: &std::path::Path, passed: &mut usize, failures: &mut Vec<String>) {
    let text = std::fs::read_to_string(path).expect("read test file");
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let mut store = MemoryQuerier::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let body = |i: &mut usize| -> Vec<(usize, &str)> {
        let mut out = Vec::new();
        while *i < lines.len() && lines[*i].starts_with(char::is_whitespace) && !lines[*i].trim().is_empty() {
            out.push((*i + 1, lines[*i].trim()));
            *i += 1;
        }
        out
    };
    while i < lines.len() {
        let line = lines[i].trim();
        let line_no = i + 1;
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let location = format!("{name}:{line_no}");
        if line == "clear" {
            store.clear();
        } else if let Some(step) = line.strip_prefix("load ") {
            let step = parse_duration_ms(step.trim()).unwrap_or_else(|e| panic!("{location}: {e}"));
            for (n, series_line) in body(&mut i) {
                let Ok(Expect::Series(labels, values)) = parse_expect(series_line) else {
                    panic!("{name}:{n}: bad series line");
                };
                let samples = values.iter().enumerate().filter_map(|(k, v)| v.map(|v| Sample::new(k as i64 * step, v)));
                store.add(labels, samples.collect::<Vec<_>>());
            }
        } else {
            let (kind, query) = parse_eval(line).unwrap_or_else(|e| panic!("{location}: {e}"));
            let mut kind = kind;
            let mut expect = Vec::new();
            for (n, l) in body(&mut i) {
                if let (Kind::Fail { error_type, .. }, Some(t)) = (&mut kind, l.strip_prefix("error_type ")) {
                    *error_type = Some(t.trim().to_string());
                    continue;
                }
                expect.push(parse_expect(l).unwrap_or_else(|e| panic!("{name}:{n}: {e}")));
            }
            let case = Case { location, query, kind, expect };
            let engine = Engine::new(Arc::new(store.clone()), EngineOptions::default());
            match check(&engine, &case) {
                Ok(()) => *passed += 1,
                Err(e) => failures.push(format!("{} `{}`: {e}", case.location, case.query)),
            }
        }
    }
}

fn parse_eval(line: &str) -> Result<(Kind, String), String> {
    let (command, rest) = line.split_once(' ').ok_or("bad command")?;
    let words = |s: &str, n: usize| -> Vec<String> { s.splitn(n, ' ').map(str::to_string).collect() };
    match command {
        "eval" | "eval_ordered" | "eval_fail" => {
            if let Some(rest) = rest.strip_prefix("instant at ") {
                let w = words(rest, 2);
                let at = parse_duration_ms(&w[0])?;
                let query = w.get(1).cloned().ok_or("missing query")?;
                let kind = match command {
                    "eval_fail" => Kind::Fail { at, error_type: None },
                    _ => Kind::Instant { at, ordered: command == "eval_ordered" },
                };
                Ok((kind, query))
            } else if let Some(rest) = rest.strip_prefix("range from ") {
                // range from <start> to <end> step <step> <query>
                let w = words(rest, 6);
                if w.len() < 6 || w[1] != "to" || w[3] != "step" {
                    return Err(format!("bad range eval {line:?}"));
                }
                let kind = Kind::Range {
                    start: parse_duration_ms(&w[0])?,
                    end: parse_duration_ms(&w[2])?,
                    step: parse_duration_ms(&w[4])?,
                };
                Ok((kind, w[5].clone()))
            } else {
                Err(format!("bad eval {line:?}"))
            }
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

#[test]
fn golden_scripts_match_prometheus_semantics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("testdata dir").filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "test"));
    files.sort();
    let (mut passed, mut failures) = (0, Vec::new());
    for file in &files {
        run_file(file, &mut passed, &mut failures);
    }
    println!("golden: {passed} passed, {} failed", failures.len());
    assert!(failures.is_empty(), "{} golden cases failed:\n{}", failures.len(), failures.join("\n"));
    assert!(passed > 0, "no golden cases ran");
}
