#!/usr/bin/env python3
"""Writes queries.txt, the committed list the conformance test runs against hubmon and
Prometheus 2.42. Run it again after changing the templates; the test reads only the list.

Each line is one query. Each runs as instant queries at several times and as a range
query; per evaluation both systems must agree on the result, or both refuse it with the same
error type. Lines starting with `!` must be refused by Prometheus at every evaluation (so the
list's error cases stay error cases). Metrics (see conformance.rs for how they are generated):
  c  = conf_http_requests_total{job="api",instance,method,code}   counters with resets
  g  = conf_cpu_temp_celsius{instance,zone}                       gauges, some negative
  h  = conf_req_duration_seconds_{bucket,sum,count}{job="api",instance}
  conf_batch_last_success (b1, ends with a stale marker), conf_batch_progress (b2, just stops),
  conf_flappy (gaps, stale markers at each gap), conf_info{instance,version} (always 1),
  conf_nan_gauge (a gauge that is NaN now and then).
"""
import itertools
import pathlib

C = "conf_http_requests_total"
G = "conf_cpu_temp_celsius"
H = "conf_req_duration_seconds"
queries = []
add = queries.append

# Selectors, matchers, offset, @.
for sel in [C, G, f'{C}{{code="500"}}', f'{C}{{code!="500"}}', f'{C}{{instance=~"i[12]"}}',
            f'{C}{{instance!~"i1|i2"}}', f'{{__name__=~"conf_batch.*"}}', f'{{__name__="{G}",zone="a"}}',
            "conf_batch_last_success", "conf_batch_progress", "conf_flappy", "conf_nan_gauge",
            f"{G} offset 10m", f"{C} offset 1h", f"{G} @ start()", f"{G} @ end()", f"{G} offset -5m",
            f'{H}_bucket{{le="+Inf"}}', f"{C}[5m]", f"{G}[1m] offset 30m", "nonexistent_metric"]:
    add(sel)

# Range functions over counters and gauges, several windows.
for fn, metric in [("rate", C), ("irate", C), ("increase", C), ("resets", C), ("changes", G),
                   ("delta", G), ("idelta", G), ("deriv", G), ("rate", f"{H}_count"),
                   ("increase", f"{H}_sum"), ("changes", "conf_flappy"), ("rate", "conf_batch_last_success")]:
    for window in ["1m", "5m", "17m", "1h"]:
        add(f"{fn}({metric}[{window}])")
add(f"predict_linear({G}[10m], 600)")
add(f"predict_linear({G}[1h], -300)")
add(f"predict_linear({C}[5m], 3600)")

for fn in ["avg", "min", "max", "sum", "count", "stddev", "stdvar", "last", "present"]:
    for window, metric in [("2m", G), ("10m", G), ("30m", "conf_flappy"), ("1h", C), ("5m", "conf_nan_gauge")]:
        add(f"{fn}_over_time({metric}[{window}])")
for q in ["0", "0.25", "0.5", "0.9", "1", "-1", "2"]:
    add(f"quantile_over_time({q}, {G}[10m])")
for sel in [f"{G}[5m]", "conf_batch_progress[10m]", "nonexistent_metric[5m]", 'conf_flappy{job="none"}[1h]']:
    add(f"absent_over_time({sel})")

# Aggregations with grouping.
for agg in ["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"]:
    for grouping in ["", " by (instance)", " by (code, method)", " without (instance)", " without (code, method, instance)", " by ()"]:
        add(f"{agg}{grouping} (rate({C}[5m]))")
    add(f"{agg} by (zone) ({G})")
for k in ["1", "2", "5"]:
    add(f"topk({k}, {G})")
    add(f"bottomk({k}, rate({C}[5m]))")
    add(f"topk by (instance) ({k}, rate({C}[5m]))")
for q in ["0", "0.5", "0.95", "1", "1.5", "-0.5"]:
    add(f"quantile({q}, {G})")
    add(f"quantile by (instance) ({q}, rate({C}[10m]))")
add(f'count_values("value", {C} > bool 0)')
add(f'count_values by (instance) ("bucket", round({G}))')
add(f'count_values("temp", {G})')

# Binary operators: arithmetic and comparisons, scalar and vector forms.
for op in ["+", "-", "*", "/", "%", "^"]:
    add(f"{G} {op} 2")
    add(f"3 {op} {G}")
    add(f"rate({C}[5m]) {op} on (instance, method, code) rate({C}[10m])")
    add(f"7 {op} 2")
for op in ["==", "!=", ">", "<", ">=", "<="]:
    add(f"{G} {op} 20")
    add(f"{G} {op} bool 20")
    add(f"1 {op} bool 2")
    add(f"{G} {op} on (instance, zone) {G} offset 5m")
add(f"-{G}")
add(f"{C} / ignoring (code) group_left sum without (code) ({C})")
add(f"sum without (code) ({C}) / ignoring (code) group_right {C}")
add(f"{C} * on (instance) group_left (version) conf_info")
add(f"conf_info * on (instance) group_right (version) {C}")
add(f"rate({C}[5m]) > on (instance, method, code) group_left rate({C}[10m])")
add(f"{G} and {G} > 20")
add(f"{G} or conf_info")
add(f"{G} unless {G} < 10")
add(f"{C} and on (instance) conf_info")
add(f"{C} unless ignoring (code) {C}{{code=\"500\"}}")
add(f"conf_batch_progress or conf_batch_last_success")
add(f"sum(rate({C}[5m])) / sum(rate({C}[5m]) offset 1h)")
add(f"{G} > 10 < 30")
add("(1 + 2) * 3 - 4 / 2 ^ 2")
add("2 ^ 3 ^ 2")
add(f"{G} % 3 == bool 0")

# Histograms.
for q in ["0.5", "0.9", "0.95", "0.99", "0", "1", "-1", "2"]:
    add(f"histogram_quantile({q}, rate({H}_bucket[5m]))")
add(f"histogram_quantile(0.95, sum by (le) (rate({H}_bucket[5m])))")
add(f"histogram_quantile(0.5, sum by (le, instance) (rate({H}_bucket[10m])))")
add(f"histogram_quantile(0.9, {H}_bucket)")
add(f"rate({H}_sum[5m]) / rate({H}_count[5m])")

# Math, time and label functions.
for fn in ["abs", "ceil", "floor", "round", "exp", "ln", "log2", "log10", "sqrt", "sgn", "timestamp"]:
    add(f"{fn}({G})")
    add(f"{fn}(rate({C}[5m]))")
add(f"round({G}, 5)")
add(f"round({G}, 0.1)")
add(f"clamp({G}, 10, 25)")
add(f"clamp({G}, 25, 10)")
add(f"clamp_min({G}, 15)")
add(f"clamp_max({G}, 15)")
add("time()")
add("vector(1)")
add("vector(time())")
add(f"scalar(sum({G}))")
add(f"scalar({G})")
add(f"{G} * scalar(conf_info{{instance=\"i1\"}})")
for fn in ["day_of_month", "day_of_week", "day_of_year", "hour", "minute", "month", "year", "days_in_month"]:
    add(f"{fn}()")
    add(f"{fn}(timestamp({G}))")
    add(f"{fn}(vector(1700000000))")
add(f'label_replace({G}, "host", "$1", "instance", "i(.*)")')
add(f'label_replace({G}, "zone", "", "zone", ".*")')
add(f'label_replace({G}, "x", "$1-$2", "instance", "(i)(.)")')
add(f'label_replace({G}, "instance", "nomatch", "instance", "zzz")')
add(f'label_join({G}, "both", "/", "instance", "zone")')
add(f'label_join({G}, "copy", "", "zone")')
add(f'label_join(rate({C}[5m]), "id", "-", "instance", "method", "code")')
add(f"sort({G})")
add(f"sort_desc({G})")
add(f"sort(rate({C}[5m]))")
add(f"sort_desc(sum by (instance) (rate({C}[5m])))")
add(f"absent({G})")
add("absent(nonexistent_metric)")
add('absent(nonexistent_metric{job="x", instance=~"y"})')
add(f'absent({G}{{zone="nope"}})')
add("sum(nonexistent_metric)")
add("count(nonexistent_metric)")

# Subqueries.
for q in [f"max_over_time(rate({C}[5m])[30m:1m])", f"avg_over_time({G}[10m:30s])",
          f"min_over_time(sum by (instance) (rate({C}[1m]))[15m:])", f"rate({C}[5m])[10m:2m]",
          f"sum_over_time({G}[1h:5m] offset 10m)", f"deriv(avg_over_time({G}[5m])[20m:1m])",
          f"max_over_time(deriv(rate({C}[5m])[10m:])[20m:2m])", f"count_over_time({G}[7m:7s])",
          f"last_over_time({G}[10m:1m] @ start())", f"quantile_over_time(0.5, {G}[30m:45s])"]:
    add(q)

# @ and offset with functions.
add(f"rate({C}[5m] @ end())")
add(f"rate({C}[5m] @ start())")
add(f"sum(rate({C}[5m] offset 30m))")
add(f"{G} - {G} offset 1m")
add(f"increase({C}[10m] offset -10m)")

# Series that start, stop and go stale.
for fn in ["count_over_time", "last_over_time", "present_over_time", "max_over_time"]:
    add(f"{fn}(conf_batch_last_success[10m])")
    add(f"{fn}(conf_batch_progress[10m])")
add("timestamp(conf_batch_progress)")
add("timestamp(conf_flappy)")
add("conf_flappy offset 3m")
add("count(conf_flappy)")

# Errors: both must refuse, with the same error type.
for bad in ["sum(", "rate(conf_cpu_temp_celsius)", "nosuchfunction(up)", f"{C}{{", "1 +", f"{C}[5m] + 1",
            f"rate({C}[5m:1m:1m])", f'{C}{{job=~"("}}', "topk(foo, up)", f"sum by (instance) ({C}[5m])",
            f"histogram_quantile({C}, {C})", f"label_replace({G}, \"1bad\", \"\", \"zone\", \"\")",
            f'label_replace({G}, "x", "y", "zone", "(")', f"{C} and 1", "1 and 1", f"{G} == bool",
            f"rate({G}[0s])", "{}", '{job=~".*"}', f"{C} offset", "@ 100", f"{C} @ foo",
            f"scalar({G}[5m])", f"sort({G}[5m])", f"abs({G}, 1)", "time(1)", f"{C}[5m][5m]",
            f"{C} / on (instance) {G}", f"{C} + on (code) group_left {C}"]:
    add("!" + bad)

out = pathlib.Path(__file__).with_name("queries.txt")
out.write_text("\n".join(queries) + "\n")
print(f"{len(queries)} queries written to {out}")
