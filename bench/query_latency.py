#!/usr/bin/env python3
"""Query-latency driver for bench/query.sh (issue 4, item 6).

`measure` sends the benchmark's range queries to every system (already loaded with the same
data), one request at a time, and records the client-side wall time of each HTTP request (from
sending it to having read the whole body, on a kept-alive connection, no compression). Every
system and query first gets --warmup requests; their answers are also compared across the
systems (series count, label sets, values at the same timestamps). The timed requests then go
in rounds: per round every system in turn (rotating which goes first) runs every query once, so
a change in the shared machine's background load hits every system alike.

`summarize` reads one or more such run files and prints the Markdown table of medians (of the
per-run p50 and p95) with the ratios hubmon/Prometheus and hubmon/VictoriaMetrics.

    bench/query_latency.py measure --end 1764400000 --system hubmon=http://127.0.0.1:1234 \
        --token hubmon=TOKEN --system prometheus=... --json out.json
    bench/query_latency.py summarize bench/results/query/runs/STAMP-*.json [--json summary.json]
"""
import argparse
import http.client
import json
import math
import os
import statistics
import sys
import time
import urllib.parse
from collections import defaultdict

# (id, what it is, PromQL, range in seconds, step in seconds). Metric names are those of
# bench/src/workload.rs's query catalogue (bench-loadgen --catalogue query): every host has 100
# series and belongs to one of five jobs; bench_http_requests_total has 15 counters per host, the
# histogram bench_http_request_duration_seconds 10 buckets x 3 handlers per host.
QUERIES = [
    ("raw_24h", "one raw series, 24 h", 'bench_node_load1{instance="host-00007:9100"}', 86_400, 60),
    ("rate_6h", "rate over every request counter, 6 h", "rate(bench_http_requests_total[5m])", 6 * 3600, 60),
    ("sum_by_job_1h", "sum by (job) of the rate of every request counter, 1 h",
     "sum by (job) (rate(bench_http_requests_total[5m]))", 3600, 60),
    ("histogram_6h", "histogram_quantile(0.95) over every histogram, 6 h",
     "histogram_quantile(0.95, sum by (le) (rate(bench_http_request_duration_seconds_bucket[5m])))", 6 * 3600, 60),
]

REFERENCE = "prometheus"
ORDER = ["hubmon", "prometheus", "victoriametrics"]


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Client:
    """One kept-alive HTTP connection to a system."""

    def __init__(self, name, base_url, token):
        self.name = name
        parsed = urllib.parse.urlsplit(base_url)
        self.host, self.port = parsed.hostname, parsed.port
        self.headers = {"Accept-Encoding": "identity"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.connection = None

    def get(self, path, params):
        """(seconds, status, body) of one GET; reconnects once if the server closed the connection."""
        url = path + "?" + urllib.parse.urlencode(params)
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=300)
                self.connection.connect()
            try:
                started = time.perf_counter()
                self.connection.request("GET", url, headers=self.headers)
                response = self.connection.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - started
            except (http.client.HTTPException, ConnectionError):
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                self.connection.close()
                self.connection = None
            return elapsed, response.status, body
        raise RuntimeError("unreachable")


def query_params(query, end):
    _, _, expr, span, step = query
    return {"query": expr, "start": str(end - span), "end": str(end), "step": str(step)}


def decode_matrix(body):
    """{labels (sorted tuple): {timestamp: value}} of a query_range answer."""
    answer = json.loads(body)
    if answer.get("status") != "success":
        raise RuntimeError(f"query failed: {body[:300]!r}")
    series = {}
    for item in answer["data"]["result"]:
        key = tuple(sorted(item["metric"].items()))
        series[key] = {float(t): float(v) for t, v in item["values"]}
    return series


def relative_difference(a, b):
    if math.isnan(a) and math.isnan(b):
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.inf
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


def compare(reference, other):
    """How `other` (a decoded matrix) agrees with `reference`."""
    common = set(reference) & set(other)
    differences = []
    missing_points = extra_points = 0
    for key in common:
        ref, oth = reference[key], other[key]
        missing_points += len(set(ref) - set(oth))
        extra_points += len(set(oth) - set(ref))
        differences.extend(relative_difference(ref[t], oth[t]) for t in set(ref) & set(oth))
    finite = [d for d in differences if math.isfinite(d)]
    return {
        "series": len(other),
        "reference_series": len(reference),
        "same_label_sets": set(reference) == set(other),
        "series_only_in_reference": len(set(reference) - set(other)),
        "series_only_here": len(set(other) - set(reference)),
        "points_compared": len(differences),
        "points_missing": missing_points,
        "points_extra": extra_points,
        "nan_mismatches": len(differences) - len(finite),
        "relative_difference_median": statistics.median(finite) if finite else None,
        "relative_difference_p99": percentile(finite, 0.99),
        "relative_difference_max": max(finite) if finite else None,
        "points_within_1e-9": sum(1 for d in differences if d <= 1e-9),
        "points_within_1pct": sum(1 for d in differences if d <= 0.01),
    }


def measure(args):
    tokens = dict(item.split("=", 1) for item in args.token)
    clients = []
    for item in args.system:
        name, url = item.split("=", 1)
        clients.append(Client(name, url, tokens.get(name)))
    names = [c.name for c in clients]
    queries = [q for q in QUERIES if not args.queries or q[0] in args.queries.split(",")]

    # Warm-up, and the answers compared across systems.
    answers = {}
    sizes = {}
    for client in clients:
        for query in queries:
            for _ in range(args.warmup):
                _, status, body = client.get("/api/v1/query_range", query_params(query, args.end))
                if status != 200:
                    sys.exit(f"{client.name} {query[0]}: HTTP {status}: {body[:300]!r}")
            answers[(client.name, query[0])] = decode_matrix(body)
            if not answers[(client.name, query[0])]:
                print(f"WARNING: {client.name} {query[0]}: no series (the raw series needs --hosts >= 8)",
                      file=sys.stderr)
            sizes[(client.name, query[0])] = len(body)
            print(f"warm-up {client.name} {query[0]}: {len(answers[(client.name, query[0])])} series, "
                  f"{len(body):,} bytes", file=sys.stderr)
    agreement = {}
    for query in queries:
        reference = answers.get((REFERENCE, query[0]))
        for name in names:
            if reference is not None and name != REFERENCE:
                agreement.setdefault(query[0], {})[name] = compare(reference, answers[(name, query[0])])

    # Timed rounds.
    times = defaultdict(list)
    started = time.monotonic()
    for round_number in range(args.rounds):
        shift = round_number % len(clients)
        for client in clients[shift:] + clients[:shift]:
            for query in queries:
                elapsed, status, body = client.get("/api/v1/query_range", query_params(query, args.end))
                if status != 200 or b'"success"' not in body[:64]:
                    sys.exit(f"{client.name} {query[0]}: HTTP {status}: {body[:300]!r}")
                times[(client.name, query[0])].append(elapsed * 1000)
        if args.max_seconds and time.monotonic() - started > args.max_seconds and round_number + 1 >= args.min_rounds:
            print(f"stopping after {round_number + 1} rounds (--max-seconds {args.max_seconds})", file=sys.stderr)
            break

    results = {}
    for query in queries:
        for name in names:
            samples = times[(name, query[0])]
            results.setdefault(query[0], {})[name] = {
                "p50_ms": percentile(samples, 0.5),
                "p95_ms": percentile(samples, 0.95),
                "min_ms": min(samples),
                "max_ms": max(samples),
                "mean_ms": statistics.fmean(samples),
                "requests": len(samples),
                "series": len(answers[(name, query[0])]),
                "response_bytes": sizes[(name, query[0])],
                "times_ms": [round(t, 3) for t in samples],
            }
    report = {
        "end": args.end,
        "warmup": args.warmup,
        "rounds": len(times[(names[0], queries[0][0])]),
        "queries": [{"id": q[0], "title": q[1], "query": q[2], "range_seconds": q[3], "step_seconds": q[4],
                     "start": args.end - q[3], "end": args.end} for q in queries],
        "systems": names,
        "results": results,
        "agreement": agreement,
        "measure_seconds": time.monotonic() - started,
        "loadavg_after": os.getloadavg(),
    }
    if args.meta:
        report.update(json.loads(args.meta))
    text = json.dumps(report, indent=1)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            out.write(text)
    for query in queries:
        line = "  ".join(f"{n} p50 {results[query[0]][n]['p50_ms']:.1f} p95 {results[query[0]][n]['p95_ms']:.1f}"
                         for n in names)
        print(f"{query[0]}: {line}", file=sys.stderr)


def fmt_ms(value):
    if value is None:
        return "–"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def fmt_g(value):
    return "–" if value is None else f"{value:.2g}"


def fmt_ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.2f}×"


def summarize(args):
    runs = []
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            runs.append(json.load(f))
    queries = runs[0]["queries"]
    systems = [s for s in ORDER if s in runs[0]["systems"]]
    summary = {"runs": [r.get("stamp") for r in runs], "queries": {}}
    out = []
    out.append(f"Medians over {len(runs)} run(s) of each run's p50 / p95 (ms, client-side wall time per request)\n")
    header = "| query | series | " + " | ".join(f"{s} p50 | {s} p95" for s in systems)
    header += " | hubmon/prometheus p50 | hubmon/prometheus p95 | hubmon/victoriametrics p50 | hubmon/victoriametrics p95 |"
    out.append(header)
    out.append("|" + "---|" * (header.count("|") - 1))
    for q in queries:
        med = {}
        for s in systems:
            med[s] = {k: statistics.median(r["results"][q["id"]][s][k] for r in runs) for k in ("p50_ms", "p95_ms")}
        series = runs[0]["results"][q["id"]][systems[0]]["series"]
        row = [f"{q['id']}: `{q['query']}`, {q['range_seconds'] // 3600} h, step {q['step_seconds']} s", f"{series:,}"]
        for s in systems:
            row += [fmt_ms(med[s]["p50_ms"]), fmt_ms(med[s]["p95_ms"])]
        hub = med.get("hubmon")
        for other in ("prometheus", "victoriametrics"):
            for k in ("p50_ms", "p95_ms"):
                row.append(fmt_ratio(hub and hub[k], med.get(other, {}).get(k)))
        out.append("| " + " | ".join(row) + " |")
        summary["queries"][q["id"]] = {"query": q, "median": med}
    out.append("")
    out.append("| target | " + " | ".join(q["id"] for q in queries) + " |")
    out.append("|---|" + "---|" * len(queries))
    cells = []
    per_run = []
    for q in queries:
        m = summary["queries"][q["id"]]["median"]
        ok = m["hubmon"]["p50_ms"] <= m["prometheus"]["p50_ms"]
        wins = sum(1 for r in runs if r["results"][q["id"]]["hubmon"]["p50_ms"] <= r["results"][q["id"]]["prometheus"]["p50_ms"])
        cells.append("yes" if ok else "**no**")
        per_run.append(f"{wins}/{len(runs)}")
        summary["queries"][q["id"]]["target_met"] = ok
        summary["queries"][q["id"]]["runs_met"] = wins
    out.append("| hubmon p50 ≤ Prometheus p50 (medians) | " + " | ".join(cells) + " |")
    out.append("| runs in which it held | " + " | ".join(per_run) + " |")
    out.append("")
    out.append("Agreement with Prometheus (first run's warm-up answers, compared point by point at the same "
               "timestamps)")
    out.append("")
    out.append("| query | " + " | ".join(s for s in systems if s != REFERENCE) + " |")
    out.append("|---|" + "---|" * (len(systems) - 1))
    for q in queries:
        row = [q["id"]]
        for s in systems:
            if s == REFERENCE:
                continue
            a = runs[0]["agreement"][q["id"]][s]
            compared = max(a["points_compared"], 1)
            row.append(f"{a['series']}/{a['reference_series']} series, labels {'same' if a['same_label_sets'] else 'DIFFER'}, "
                       f"{a['points_compared']:,} points (missing {a['points_missing']}, extra {a['points_extra']}, "
                       f"NaN mismatches {a['nan_mismatches']}); relative difference median "
                       f"{fmt_g(a['relative_difference_median'])}, max {fmt_g(a['relative_difference_max'])}; "
                       f"{a['points_within_1e-9'] / compared:.1%} within 1e-9, "
                       f"{a['points_within_1pct'] / compared:.1%} within 1 %")
        out.append("| " + " | ".join(row) + " |")
    print("\n".join(out))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--end", type=int, required=True, help="end of every query range (unix seconds)")
    m.add_argument("--system", action="append", required=True, help="NAME=BASE_URL")
    m.add_argument("--token", action="append", default=[], help="NAME=BEARER_TOKEN")
    m.add_argument("--warmup", type=int, default=3)
    m.add_argument("--rounds", type=int, default=30)
    m.add_argument("--min-rounds", type=int, default=10)
    m.add_argument("--max-seconds", type=float, default=0, help="stop after the round that passes this")
    m.add_argument("--queries", help="comma-separated ids (default: all)")
    m.add_argument("--meta", help="JSON object merged into the report")
    m.add_argument("--json")
    s = sub.add_parser("summarize")
    s.add_argument("files", nargs="+")
    s.add_argument("--json")
    args = parser.parse_args()
    measure(args) if args.command == "measure" else summarize(args)


if __name__ == "__main__":
    main()
