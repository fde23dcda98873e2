#!/usr/bin/env python3
"""Sends the generated lines to one system with a few concurrent clients and reports throughput,
the server's peak RSS and the CPU time it spent. Request bodies are built before the clock starts.

usage: logs_load.py hubmon URL TOKEN DIR PID
       logs_load.py hubmon-protobuf URL TOKEN DIR PID   (bodies from bench-loki-bodies)
       logs_load.py clickhouse URL DIR PID
       logs_load.py postgres PG_URL DIR PID_OF_POSTMASTER
"""
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import http.client

BATCH = 5000
CLIENTS = 4


def hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def cpu_seconds(pid, with_children):
    """CPU time (user + system) the server has used so far: its threads, and for PostgreSQL also
    its live children (WAL writer, checkpointer, backends) and the children it has reaped."""
    tick = os.sysconf("SC_CLK_TCK")

    def own(p, reaped):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0
        # fields[11..14] are utime, stime, cutime, cstime (stat fields 14-17)
        return int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)

    total = own(pid, with_children)
    if with_children:
        total += sum(own(c, False) for c in children(pid))
    return total / tick


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class Peak(threading.Thread):
    """Polls VmHWM of the server (and, for PostgreSQL, of its backends: the largest one)."""

    def __init__(self, pid, with_children):
        super().__init__(daemon=True)
        self.pid, self.with_children, self.peak, self.stop = pid, with_children, 0, False

    def run(self):
        while not self.stop:
            pids = [self.pid] + (children(self.pid) if self.with_children else [])
            self.peak = max([self.peak] + [hwm_kb(p) for p in pids])
            time.sleep(0.5)


def post_all(url, bodies, headers):
    u = urllib.parse.urlsplit(url)
    path = u.path + (("?" + u.query) if u.query else "")
    local = threading.local()
    statuses = {}

    def send(body):
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        local.conn.request("POST", path, body=body, headers=headers)
        r = local.conn.getresponse()
        text = r.read()
        if r.status >= 300:
            raise SystemExit(f"HTTP {r.status}: {text[:300]!r}")
        return r.status

    with cf.ThreadPoolExecutor(CLIENTS) as pool:
        for s in pool.map(send, bodies):
            statuses[s] = statuses.get(s, 0) + 1
    return statuses


def main():
    system = sys.argv[1]
    if system == "hubmon":
        url, token, d, pid = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
        lines = open(f"{d}/logs.ndjson", "rb").read().split(b"\n")[:-1]
        raw = sum(len(l) + 1 for l in lines)
        t0 = int(time.time() * 1e9)
        bodies = []
        for i in range(0, len(lines), BATCH):
            values = [[str(t0 + i + j), l.decode()] for j, l in enumerate(lines[i:i + BATCH])]
            bodies.append(json.dumps({"streams": [{"stream": {"job": "bench"}, "values": values}]}).encode())
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        target, with_children = f"{url}/loki/api/v1/push", False
    elif system == "hubmon-protobuf":
        url, token, d, pid = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
        raw = os.path.getsize(f"{d}/logs.ndjson")
        with open(f"{d}/logs.ndjson", "rb") as f:
            lines = [None] * sum(1 for _ in f)
        names = sorted(os.listdir(f"{d}/loki-protobuf"))
        bodies = [open(f"{d}/loki-protobuf/{n}", "rb").read() for n in names]
        # as promtail sends it: the snappy block format is part of the protocol, not an encoding
        headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {token}"}
        target, with_children = f"{url}/loki/api/v1/push", False
    elif system == "clickhouse":
        url, d, pid = sys.argv[2], sys.argv[3], int(sys.argv[4])
        raw = os.path.getsize(f"{d}/logs.ndjson")
        lines = open(f"{d}/logs.ch.json", "rb").read().split(b"\n")[:-1]
        bodies = [b"\n".join(lines[i:i + BATCH]) + b"\n" for i in range(0, len(lines), BATCH)]
        q = urllib.parse.quote("INSERT INTO logs FORMAT JSONEachRow")
        headers = {"Content-Type": "application/x-ndjson"}
        target, with_children = f"{url}/?query={q}", False
    elif system == "postgres":
        pg_url, d, pid = sys.argv[2], sys.argv[3], int(sys.argv[4])
        raw = os.path.getsize(f"{d}/logs.ndjson")
        lines = open(f"{d}/logs.pg.tsv", "rb").read().split(b"\n")[:-1]
        bodies = [b"\n".join(lines[i:i + BATCH]) + b"\n" for i in range(0, len(lines), BATCH)]
        peak = Peak(pid, True)
        peak.start()
        cpu = cpu_seconds(pid, True)
        start = time.time()

        def copy(chunk):
            # one psql per client, COPY ... FROM STDIN per batch of 5,000 lines
            p = subprocess.Popen(["nice", "-n", "19", "psql", "-q", "-v", "ON_ERROR_STOP=1", pg_url],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
            for body in chunk:
                p.stdin.write(b"COPY logs (ts, level, category, service, host, request_id, user_id, method, "
                              b"route, status, duration_ms, message) FROM STDIN;\n" + body + b"\\.\n")
            p.stdin.close()
            if p.wait() != 0:
                raise SystemExit("psql COPY failed")
            return len(chunk)

        chunks = [bodies[i::CLIENTS] for i in range(CLIENTS)]
        with cf.ThreadPoolExecutor(CLIENTS) as pool:
            sent = sum(pool.map(copy, chunks))
        elapsed = time.time() - start
        time.sleep(1)
        cpu = cpu_seconds(pid, True) - cpu
        peak.stop = True
        report(system, len(lines), raw, elapsed, peak.peak, cpu, {"copy_batches": sent})
        return
    else:
        raise SystemExit("unknown system")
    peak = Peak(pid, with_children)
    peak.start()
    cpu = cpu_seconds(pid, with_children)
    start = time.time()
    statuses = post_all(target, bodies, headers)
    elapsed = time.time() - start
    time.sleep(1)
    cpu = cpu_seconds(pid, with_children) - cpu
    peak.stop = True
    report(system, len(lines), raw, elapsed, peak.peak, cpu, statuses)


def report(system, n, raw, elapsed, peak_kb, cpu, statuses):
    # The server's CPU from the first request to a second after the last reply, per line: what
    # the load cost it, however busy the shared machine was.
    print(json.dumps({"system": system, "lines": n, "raw_ndjson_bytes": raw, "seconds": round(elapsed, 2),
                      "lines_per_s": round(n / elapsed), "mb_per_s": round(raw / elapsed / 1e6, 1),
                      "peak_rss_mb": round(peak_kb / 1024), "cpu_seconds": round(cpu, 2),
                      "cpu_us_per_line": round(cpu * 1e6 / n, 2), "responses": statuses}))


main()
