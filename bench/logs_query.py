#!/usr/bin/env python3
"""Runs the four log queries REPS times against each system, plus grep/rg on the raw file,
and prints p50/p95 in milliseconds per system and query as JSON lines.

usage: logs_query.py DIR REPS HUBMON_URL TOKEN CLICKHOUSE_URL|- PG_URL|-
"""
import datetime as dt
import http.client
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

d, reps, hub, token, ch, pg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
meta = json.load(open(f"{d}/meta.json"))
start, end = dt.datetime.fromisoformat(meta["start"]), dt.datetime.fromisoformat(meta["end"])
end = end + dt.timedelta(seconds=1)
hour_ago = end - dt.timedelta(hours=1)
rid, needle = meta["request_id"], meta["needle"]
iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
plain = lambda t: t.strftime("%Y-%m-%d %H:%M:%S")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def emit(system, query, times, answer):
    print(json.dumps({"system": system, "query": query, "p50_ms": round(pct(times, 50), 2),
                      "p95_ms": round(pct(times, 95), 2), "reps": len(times), "answer": answer}), flush=True)


def http_get(base, path, headers):
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    times, body = [], b""
    for _ in range(reps):
        t = time.perf_counter()
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        times.append((time.perf_counter() - t) * 1000)
        if r.status != 200:
            raise SystemExit(f"{base}{path}: HTTP {r.status} {body[:300]!r}")
    return times, body


# hubmon
auth = {"Authorization": f"Bearer {token}"}
def hq(endpoint, **params):
    return f"/api/v1/logs/{endpoint}?" + urllib.parse.urlencode(params)
cases = {
    "a": hq("search", q="level:error category:database", **{"from": iso(hour_ago)}, to=iso(end), limit=100),
    "b": hq("search", q=f'"{needle}"', **{"from": iso(start)}, to=iso(end), limit=1000),
    "c": hq("search", q=f"request_id:{rid}", **{"from": iso(start)}, to=iso(end), limit=100),
    "d": hq("stats", **{"from": iso(start)}, to=iso(end), step="1m", top=1),
    # the substring again, as the databases and grep answer it: a count only, and a first page
    "b-count": hq("stats", q=f'"{needle}"', **{"from": iso(start)}, to=iso(end), step="1h", top=1),
    "b-page": hq("search", q=f'"{needle}"', **{"from": iso(start)}, to=iso(end), limit=100),
}
for name, path in cases.items():
    times, body = http_get(hub, path, auth)
    doc = json.loads(body)
    if name in ("d", "b-count"):
        answer = f"{len(doc.get('buckets', []))} buckets, total {doc.get('total')}"
    else:
        answer = f"{len(doc['hits'])} lines"
    emit("hubmon", name, times, answer)

# ClickHouse
if ch != "-":
    sql = {
        "a": f"SELECT * FROM logs WHERE level='error' AND category='database' AND timestamp >= '{plain(hour_ago)}' "
             f"AND timestamp < '{plain(end)}' ORDER BY ts_ms DESC LIMIT 100 FORMAT JSONEachRow",
        "b": f"SELECT count() FROM logs WHERE position(message, '{needle}') > 0",
        "c": f"SELECT * FROM logs WHERE request_id = '{rid}' FORMAT JSONEachRow",
        "d": "SELECT toStartOfMinute(timestamp) AS m, level, count() FROM logs GROUP BY m, level ORDER BY m FORMAT TSV",
    }
    for name, q in sql.items():
        times, body = http_get(ch, "/?" + urllib.parse.urlencode({"query": q}), {})
        emit("clickhouse", name, times, f"{len(body.splitlines())} rows" if name != "b" else body.decode().strip())

# PostgreSQL: one psql session, \timing, each query REPS times
if pg != "-":
    sql = {
        "a": f"SELECT * FROM logs WHERE level='error' AND category='database' AND ts >= '{iso(hour_ago)}' "
             f"AND ts < '{iso(end)}' ORDER BY ts DESC LIMIT 100",
        "b": f"SELECT count(*) FROM logs WHERE to_tsvector('simple', message) @@ phraseto_tsquery('simple', '{needle}')",
        "c": f"SELECT * FROM logs WHERE request_id = '{rid}'",
        "d": "SELECT date_trunc('minute', ts) AS m, level, count(*) FROM logs GROUP BY m, level ORDER BY m",
    }
    for name, q in sql.items():
        script = "\\timing on\n" + "".join(f"{q};\n" for _ in range(reps))
        out = subprocess.run(["nice", "-n", "19", "psql", "-X", "-At", pg], input=script, capture_output=True,
                             text=True, check=True).stdout
        times = [float(x) for x in re.findall(r"^Time: ([0-9.]+) ms", out, re.M)]
        rows = len([l for l in out.splitlines() if l and not l.startswith("Time:") and l != "Timing is on."]) // reps
        emit("postgres", name, times, f"{rows} rows" if name != "b" else out.splitlines()[1])

# the floor: grep -c and rg -c on the raw file (page-cached after the first run)
for tool in ("grep", "rg"):
    if not shutil.which(tool):
        print(json.dumps({"system": tool, "query": "b", "missing": True}))
        continue
    times, out = [], b""
    for _ in range(reps):
        t = time.perf_counter()
        out = subprocess.run([tool, "-c", "-F", needle, f"{d}/logs.ndjson"], capture_output=True).stdout
        times.append((time.perf_counter() - t) * 1000)
    emit(tool, "b", times, out.decode().strip())
