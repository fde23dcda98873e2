#!/usr/bin/env python3
"""Summarises bench/results/runs/*.json (written by bench/ingest.sh): per workload and system,
the median of every figure over the runs given, the ratios hubmon/Prometheus and
hubmon/VictoriaMetrics, and whether issue 3's targets are met. Prints Markdown; --json FILE
also writes the summary as JSON.

    python3 bench/summarize.py bench/results/runs/20260101T000000Z-*.json [--json out.json]
"""
import argparse
import json
import statistics
import sys
from collections import defaultdict

SYSTEMS = ["sink", "hubmon", "hubmon-quiet", "prometheus", "victoriametrics"]
HUBMONS = ["hubmon", "hubmon-quiet"]

# (key, label, path into a run, format)
FIGURES = [
    ("samples_per_second", "ingest, samples/s", lambda r: r["samples_per_second"], "{:,.0f}"),
    ("wall_seconds", "generator wall time, s", lambda r: r["wall_seconds"], "{:.1f}"),
    ("server_cpu_seconds", "server CPU while sending, s", lambda r: r["server_cpu_seconds"], "{:.1f}"),
    ("cpu_us_per_sample", "server CPU per sample, µs",
     lambda r: 1e6 * r["server_cpu_seconds"] / max(r["accepted_samples"], 1), "{:.2f}"),
    ("peak_rss_mib", "peak RSS (VmHWM), MiB", lambda r: r["peak_rss_bytes"] / 2**20, "{:,.0f}"),
    ("rss_bytes_per_series", "peak RSS per active series, bytes", lambda r: r["peak_rss_bytes_per_series"], "{:,.0f}"),
    ("rss_restart_mib", "peak RSS after a restart (WAL replay), MiB",
     lambda r: r["peak_rss_after_restart_bytes"] / 2**20 if r.get("peak_rss_after_restart_bytes") else None, "{:,.0f}"),
    ("restart_seconds", "restart until ready, s", lambda r: r.get("restart_seconds"), "{:.1f}"),
    # Per stored (read-back) sample: a system that refused part of the workload is not credited
    # with the bytes it did not have to store.
    ("bytes_per_sample", "bytes on disk per stored sample (everything)",
     lambda r: r["disk"]["total_bytes"] / r["readback"]["samples"] if r.get("disk") and r.get("readback") else None,
     "{:.3f}"),
    ("block_bytes_per_sample", "bytes per sample in blocks only",
     lambda r: r.get("disk", {}).get("block_bytes_per_sample"), "{:.3f}"),
    ("disk_mib", "on disk, MiB", lambda r: r.get("disk", {}).get("total_bytes", 0) / 2**20, "{:,.1f}"),
    ("others_busy_cores", "other processes' CPU meanwhile, cores", lambda r: r.get("others_busy_cores"), "{:.2f}"),
    ("refused_samples", "refused samples", lambda r: r["refused_samples"], "{:,.0f}"),
    ("readback_samples", "read-back samples", lambda r: r.get("readback", {}).get("samples"), "{:,.0f}"),
]

NO_RATIO = {"others_busy_cores", "refused_samples"}

# (figure, comparison, system, bound, statement)
TARGETS = [
    ("samples_per_second", ">=", "prometheus", 1.5, "ingest ≥ 1.5 × Prometheus"),
    ("samples_per_second", ">=", "victoriametrics", 1.0, "ingest ≥ 1.0 × VictoriaMetrics"),
    ("bytes_per_sample", "<=", "prometheus", 0.5, "bytes/sample ≤ 0.5 × Prometheus"),
    ("bytes_per_sample", "<=", "victoriametrics", 1.0, "bytes/sample ≤ VictoriaMetrics"),
    ("rss_bytes_per_series", "<=", "prometheus", 1.0, "peak RSS per series ≤ Prometheus"),
]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--json")
    args = parser.parse_args()

    runs = defaultdict(list)
    for path in args.runs:
        with open(path) as f:
            run = json.load(f)
        runs[(run["workload"], run["system"])].append(run)

    summary = {}
    out = []
    for workload in sorted({w for w, _ in runs}, key=lambda w: {"A": 0, "B": 1}.get(w, 2)):
        systems = [s for s in SYSTEMS if (workload, s) in runs]
        first = runs[(workload, systems[0])][0]
        stats = {}
        for system in systems:
            group = runs[(workload, system)]
            stats[system] = {key: median([get(r) for r in group]) for key, _, get, _ in FIGURES}
            stats[system]["runs"] = len(group)
            stats[system]["readback_complete"] = all(
                r.get("readback", {}).get("samples") == r["total_samples"] for r in group) if system != "sink" else None
            stats[system]["version"] = group[0]["version"]
            stats[system]["samples_per_second_runs"] = [round(r["samples_per_second"]) for r in group]
        # ratios[(hubmon variant, peer)][figure]
        ratios = {}
        for mine in [h for h in HUBMONS if h in stats]:
            for other in [o for o in ("prometheus", "victoriametrics") if o in stats]:
                ratios[(mine, other)] = {
                    key: (stats[mine][key] / stats[other][key]
                          if stats[mine][key] is not None and stats[other][key] else None)
                    for key, _, _, _ in FIGURES
                }
        targets = []
        for mine in [h for h in HUBMONS if h in stats]:
            for key, op, other, bound, statement in TARGETS:
                ratio = ratios.get((mine, other), {}).get(key)
                met = None if ratio is None else (ratio >= bound if op == ">=" else ratio <= bound)
                targets.append({"system": mine, "target": statement, "ratio": ratio, "met": met})
        summary[workload] = {"series": first["series"], "total_samples": first["total_samples"],
                             "systems": stats,
                             "ratios": {f"{m}/{o}": r for (m, o), r in ratios.items()}, "targets": targets}

        counts = ", ".join("%s %d" % (s, stats[s]["runs"]) for s in systems)
        out.append(f"### Workload {workload}: {first['series']:,} series × "
                   f"{first['total_samples'] // first['series']:,} samples = {first['total_samples']:,} samples "
                   f"(medians; runs: {counts})\n")
        header = ["figure"] + systems + [f"{m}/{o}" for m, o in ratios]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for key, label, _, fmt in FIGURES:
            cells = [label]
            for system in systems:
                value = stats[system][key]
                cells.append("–" if value is None else fmt.format(value))
            for other in ratios:
                value = None if key in NO_RATIO else ratios[other][key]
                cells.append("–" if value is None else f"{value:.2f}×")
            out.append("| " + " | ".join(cells) + " |")
        complete = [f"{s}: {'yes' if stats[s]['readback_complete'] else 'NO'}" for s in systems if s != "sink"]
        for s in systems:
            refused = [r["refused_samples"] for r in runs[(workload, s)]]
            if any(refused):
                complete.append(f"{s} refused {', '.join(f'{x:,}' for x in refused)} samples in its runs")
        out.append(f"\nEvery sample read back, in every run: {', '.join(complete)}.\n")
        out.append("| system | target | ratio | met |")
        out.append("|---|---|---|---|")
        for t in targets:
            ratio = "–" if t["ratio"] is None else f"{t['ratio']:.2f}×"
            met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
            out.append(f"| {t['system']} | {t['target']} | {ratio} | {met} |")
        out.append("")
    print("\n".join(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
