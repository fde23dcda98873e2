#!/usr/bin/env python3
"""Splits a `perf script` dump of hubmon's ingest (DWARF call graphs) into where the time goes:
the remote_write decode (on the async runtime, in parallel) and the TSDB append (under the
head's write lock, one at a time), each broken down by the function it calls directly.

    python3 bench/perf_breakdown.py perf.script
"""
import collections
import re
import sys


def stacks(path):
    """Yields each sample's frames, leaf first."""
    frames = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if frames:
                    yield frames
                frames = []
            elif line[0] in "\t ":
                parts = line.strip().split(" ", 1)
                if len(parts) == 2:
                    frames.append(re.sub(r"\+0x[0-9a-f]+.*", "", parts[1]))
    if frames:
        yield frames


def main():
    samples = list(stacks(sys.argv[1]))
    total = len(samples)
    if not total:
        print("no samples")
        return 1
    roots = {
        "remote_write::decode (async runtime)": "remote_write::decode",
        "Tsdb::append (head write lock held)": "Appender>::append",
    }
    print(f"{total} samples")
    for title, needle in roots.items():
        callees = collections.Counter()
        hits = 0
        for frames in samples:
            idx = next((i for i, f in enumerate(frames) if needle in f), None)
            if idx is None:
                continue
            hits += 1
            callees[frames[idx - 1][:90] if idx > 0 else "(self)"] += 1
        print(f"{100 * hits / total:5.1f}%  {title}")
        for name, count in callees.most_common(10):
            print(f"        {100 * count / total:5.1f}%  {name}")
    other = sum(1 for s in samples if not any(n in f for n in roots.values() for f in s))
    print(f"{100 * other / total:5.1f}%  everything else (HTTP, auth, runtime, kernel)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
