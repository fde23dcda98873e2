#!/usr/bin/env python3
"""Writes N realistic JSON log lines (NDJSON) spread over the 6 hours before now, oldest first.

0.1 % of the lines carry the phrase "upstream reset by peer" (the substring query); the
request id of line N/2 is printed as the lookup target. Also writes the same rows as
ClickHouse JSONEachRow and PostgreSQL TSV (their timestamp columns need a plain format), so no
system pays for conversion while it is timed.

usage: logs_gen.py N OUT_DIR
"""
import datetime as dt
import json
import random
import sys

n = int(sys.argv[1])
out = sys.argv[2]
rng = random.Random(5)
now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
start = now - dt.timedelta(hours=6)
span_ms = 6 * 3600 * 1000

levels = ["debug"] * 10 + ["info"] * 70 + ["warning"] * 12 + ["error"] * 7 + ["critical"]
categories = ["api", "database", "auth", "cache", "queue", "payment", "scheduler", "email"]
services = ["checkout", "accounts", "search", "billing", "gateway", "worker"]
hosts = [f"web-{i:02d}" for i in range(12)]
routes = ["/v1/orders", "/v1/orders/{id}", "/v1/users/{id}", "/v1/login", "/v1/search", "/v1/cart", "/health"]
methods = ["GET"] * 6 + ["POST"] * 3 + ["DELETE"]
templates = {
    "api": ["{m} {r} completed in {d}ms", "{m} {r} returned {s}", "request from client {ip} to {r}"],
    "database": ["query on table {t} took {d}ms", "connection pool exhausted, {n} waiting",
                 "deadlock detected on table {t}, retrying", "slow query: select from {t} ({d}ms)"],
    "auth": ["user {u} logged in", "invalid password for user {u}", "token refreshed for {u}"],
    "cache": ["cache miss for key session:{n}", "evicted {n} keys from cache", "cache hit ratio {p}%"],
    "queue": ["job {n} enqueued on {q}", "job {n} failed after {a} attempts", "queue {q} depth is {n}"],
    "payment": ["payment {n} authorised for {c} cents", "payment gateway timeout after {d}ms",
                "refund {n} issued"],
    "scheduler": ["cron task {q} started", "cron task {q} finished in {d}ms"],
    "email": ["mail to user {u} queued", "smtp server answered 451 for user {u}"],
}
tables = ["orders", "users", "sessions", "payments", "inventory"]
queues = ["mail", "billing", "reindex", "thumbnails"]

ts_list = sorted(rng.randrange(span_ms) for _ in range(n))
needle_every = 1000
target = None
with open(f"{out}/logs.ndjson", "w") as nd, open(f"{out}/logs.ch.json", "w") as ch, \
        open(f"{out}/logs.pg.tsv", "w") as pg:
    for i, offset in enumerate(ts_list):
        t = start + dt.timedelta(milliseconds=offset)
        level = rng.choice(levels)
        category = rng.choice(categories)
        status = 200
        if level in ("error", "critical"):
            status = rng.choice([500, 502, 503, 504])
        elif level == "warning":
            status = rng.choice([400, 401, 404, 429])
        d = int(rng.lognormvariate(3.5, 1.0))
        msg = rng.choice(templates[category]).format(
            m=rng.choice(methods), r=rng.choice(routes), d=d, s=status, t=rng.choice(tables),
            n=rng.randrange(1, 100000), u=f"u{rng.randrange(50000)}", p=rng.randrange(40, 100),
            q=rng.choice(queues), a=rng.randrange(1, 6), c=rng.randrange(100, 100000),
            ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}")
        if i % needle_every == 500:
            msg = f"proxy error: upstream reset by peer while reading response ({d}ms)"
        request_id = f"req-{rng.getrandbits(64):016x}"
        if i == n // 2:
            target = request_id
        row = {
            "timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",
            "level": level, "category": category, "service": rng.choice(services),
            "host": rng.choice(hosts), "request_id": request_id, "user_id": f"u{rng.randrange(50000)}",
            "method": rng.choice(methods), "route": rng.choice(routes), "status": status,
            "duration_ms": d, "message": msg,
        }
        nd.write(json.dumps(row, separators=(",", ":")) + "\n")
        ts_ms = int(t.timestamp() * 1000)
        ch_row = dict(row)
        ch_row["timestamp"] = t.strftime("%Y-%m-%d %H:%M:%S")
        ch_row["ts_ms"] = ts_ms
        ch.write(json.dumps(ch_row, separators=(",", ":")) + "\n")
        pg_fields = [t.isoformat(timespec="milliseconds")] + [str(row[k]) for k in (
            "level", "category", "service", "host", "request_id", "user_id", "method", "route", "status",
            "duration_ms", "message")]
        pg.write("\t".join(f.replace("\\", "\\\\").replace("\t", " ") for f in pg_fields) + "\n")
with open(f"{out}/meta.json", "w") as f:
    json.dump({"lines": n, "start": start.isoformat(), "end": now.isoformat(), "request_id": target,
               "needle": "upstream reset by peer"}, f)
print(json.dumps({"lines": n, "request_id": target, "start": start.isoformat(), "end": now.isoformat()}))
