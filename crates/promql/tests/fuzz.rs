//! Fuzzing the engine with generated queries: PromQL-shaped token soup, mutations of valid
//! queries and raw bytes. Whatever comes in, the engine answers a value or an error; it never
//! panics, and queries that would load or produce too much stop at the limits.
//!
//! The seed and the number of cases are fixed so a failure reproduces; set
//! `HUBMON_FUZZ_CASES` (and `HUBMON_FUZZ_SEED`) to run longer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use hubmon_model::{Labels, Sample};
use hubmon_promql::testing::MemoryQuerier;
use hubmon_promql::{Engine, EngineOptions};

/// xorshift64*: enough randomness for generating inputs, reproducible from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TOKENS: &[&str] = &[
    "up",
    "x_total",
    "h_bucket",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    "=",
    "!=",
    "=~",
    "!~",
    "job",
    "\"a\"",
    "\"(\"",
    "\".*\"",
    "le",
    "5m",
    "1h",
    "0s",
    "1ms",
    "100y",
    ":",
    "offset",
    "-",
    "+",
    "*",
    "/",
    "%",
    "^",
    "==",
    "!=",
    ">",
    "<",
    ">=",
    "<=",
    "bool",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "by",
    "without",
    "sum",
    "avg",
    "count",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "stddev",
    "rate",
    "irate",
    "increase",
    "delta",
    "deriv",
    "predict_linear",
    "resets",
    "changes",
    "avg_over_time",
    "quantile_over_time",
    "absent",
    "absent_over_time",
    "histogram_quantile",
    "label_replace",
    "label_join",
    "clamp",
    "round",
    "sort",
    "sort_desc",
    "timestamp",
    "time",
    "vector",
    "scalar",
    "holt_winters",
    "@",
    "start()",
    "end()",
    "1",
    "0",
    "-1",
    "0.5",
    "1e308",
    "NaN",
    "Inf",
    "-Inf",
    "0x10",
    "\"\"",
    "'x'",
    "`y`",
    "#",
    " ",
    "\n",
    "\\",
    "\u{1F600}",
    "__name__",
    "ALERTS",
];

const VALID: &[&str] = &[
    "sum by (job) (rate(x_total[5m]))",
    "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
    "topk(2, x_total) > bool 1",
    "label_replace(up, \"dst\", \"$1\", \"job\", \"(.*)\")",
    "max_over_time(rate(x_total[1m])[10m:30s] offset 1m)",
    "up and on (job) x_total",
    "count_values(\"v\", up) * on() group_left scalar(x_total)",
    "quantile(0.5, up) @ 600",
];

fn store() -> MemoryQuerier {
    let mut q = MemoryQuerier::new();
    for job in ["a", "b", "c"] {
        q.add(
            Labels::from_static(&[("__name__", "up"), ("job", job)]),
            (0..=120).map(|i| Sample::new(i * 30_000, 1.0)),
        );
        q.add(
            Labels::from_static(&[("__name__", "x_total"), ("job", job)]),
            (0..=120).map(|i| Sample::new(i * 30_000, ((i * 7) % 50) as f64)),
        );
        for le in ["0.1", "1", "+Inf"] {
            q.add(
                Labels::from_static(&[("__name__", "h_bucket"), ("job", job), ("le", le)]),
                (0..=120).map(|i| Sample::new(i * 30_000, i as f64)),
            );
        }
    }
    q
}

fn generate(rng: &mut Rng) -> String {
    match rng.below(3) {
        // Token soup.
        0 => (0..1 + rng.below(24)).map(|_| rng.pick(TOKENS)).collect::<Vec<_>>().join(if rng.below(2) == 0 {
            " "
        } else {
            ""
        }),
        // A valid query with a few characters changed, deleted or inserted.
        1 => {
            let mut chars: Vec<char> = rng.pick(VALID).chars().collect();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(chars.len() + 1);
                match rng.below(3) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 => chars.insert(at, rng.pick(TOKENS).chars().next().unwrap_or('x')),
                    _ => chars.truncate(at),
                }
            }
            chars.into_iter().collect()
        }
        // Arbitrary bytes, lossily as text (the HTTP layer hands the engine UTF-8).
        _ => {
            let bytes: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }
}

#[test]
fn arbitrary_queries_never_panic_the_engine() {
    let cases: usize = std::env::var("HUBMON_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let seed: u64 = std::env::var("HUBMON_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5EED_CAFE);
    let options = EngineOptions { max_samples: 200_000, timeout: Duration::from_secs(2), ..EngineOptions::default() };
    let engine = Engine::new(Arc::new(store()), options);
    let mut rng = Rng(seed);
    let (mut ok, mut errors) = (0, 0);
    for case in 0..cases {
        let query = generate(&mut rng);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let instant = engine.instant(&query, 1_800_000).is_ok();
            let range = engine.range(&query, 0, 3_600_000, 60_000).is_ok();
            instant || range
        }));
        match outcome {
            Ok(true) => ok += 1,
            Ok(false) => errors += 1,
            Err(_) => panic!("case {case} (seed {seed}): the engine panicked on {query:?}"),
        }
    }
    eprintln!("{cases} generated queries: {ok} evaluated, {errors} refused with an error");
    // The generator must reach the evaluator, not only the parser, to be worth anything.
    assert!(ok > cases / 20, "only {ok} of {cases} queries evaluated: the generator is too wild");
}

#[test]
fn queries_that_would_exhaust_memory_stop_at_the_limits() {
    let options = EngineOptions { max_samples: 50_000, timeout: Duration::from_secs(5), ..EngineOptions::default() };
    let engine = Engine::new(Arc::new(store()), options);
    for query in [
        "x_total[100y:1ms]",
        "max_over_time(x_total[100y:1ms])",
        "sum(rate(x_total[1h:1ms]))",
        "count_over_time(up[10000d:1s])",
    ] {
        let started = std::time::Instant::now();
        let error = engine.instant(query, 3_600_000).expect_err(query);
        assert!(started.elapsed() < Duration::from_secs(5), "{query} took {:?}", started.elapsed());
        assert!(
            matches!(error.error_type(), "execution" | "timeout" | "bad_data"),
            "{query}: {error} ({})",
            error.error_type()
        );
    }
    let error = engine.range("up", 0, 86_400_000 * 365, 1000).expect_err("too many points");
    assert_eq!(error.error_type(), "bad_data", "{error}");
}
