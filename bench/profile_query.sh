#!/usr/bin/env bash
# Where hubmon's query time goes: loads the query benchmark's data (bench/query.sh) into a
# fresh, quiet hubmon, waits for its maintenance to cut blocks, then, per query (ids of
# bench/query_latency.py), records `perf` with DWARF call graphs while that query is sent over
# and over, and prints the flat top (self time) and the top by inclusive time.
#
#   bench/profile_query.sh [--queries rate_6h,histogram_6h] [--seconds 20] [--hosts 67] [--samples 1500] [--no-build]
#
# Needs perf (linux-perf). Output under $BENCH_WORK/profile-query (default
# /tmp/hubmon-bench/profile-query).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_WORK:-/tmp/hubmon-bench}/profile-query
QUERIES=rate_6h,histogram_6h
SECONDS_RECORDED=20
HOSTS=67
SAMPLES=1500
BUILD=1
while (($#)); do
  case $1 in
    --queries) QUERIES=$2; shift 2 ;;
    --seconds) SECONDS_RECORDED=$2; shift 2 ;;
    --hosts) HOSTS=$2; shift 2 ;;
    --samples) SAMPLES=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
require_tools perf
if ((BUILD)); then
  (cd "$ROOT" && cargo build --release --locked -p hubmon -p hubmon-bench) >&2
fi
rm -rf "$WORK"
mkdir -p "$WORK"
cp "$ROOT/target/release/hubmon" "$ROOT/target/release/bench-loadgen" "$WORK/"
cd "$WORK"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HUBMON_ADMIN_PASSWORD=bench-password-123 HUBMON_HOST_ENABLED=false HUBMON_HTTP_RECORD_INTERVAL=1000d \
  ./hubmon serve --listen "127.0.0.1:$port" --data-dir data >hubmon.log 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done
token=$(./hubmon token create --role editor --name profile --data-dir data)
end_ms=$(($(date +%s) / 60 * 60 * 1000))
./bench-loadgen run --series $((HOSTS * 100)) --samples "$SAMPLES" --interval-ms 60000 --catalogue query \
  --end-ms "$end_ms" --url "http://127.0.0.1:$port/api/v1/write" --token "$token" --json load.json >/dev/null
echo "loaded; waiting 75 s for maintenance to cut blocks" >&2
sleep 75
for query in ${QUERIES//,/ }; do
  # The driver sends the one query in rounds for as long as perf records (plus its warm-up).
  python3 "$ROOT/bench/query_latency.py" measure --end $((end_ms / 1000)) --system "hubmon=http://127.0.0.1:$port" \
    --token "hubmon=$token" --queries "$query" --warmup 2 --rounds 100000 --min-rounds 1 \
    --max-seconds "$((SECONDS_RECORDED + 5))" --json "latency-$query.json" &
  driver=$!
  sleep 3
  perf record -F 499 --call-graph dwarf,16384 -p "$pid" -o "perf-$query.data" -- sleep "$SECONDS_RECORDED" \
    >"perf-$query.log" 2>&1
  wait "$driver"
  echo "== $query: flat profile (self time), top 30"
  perf report -i "perf-$query.data" --no-children --stdio --sort symbol -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | awk '{$1 = $1}; 1' | sed 's/ - -$//' | head -30 || true
  echo "== $query: inclusive time (children), top 40"
  perf report -i "perf-$query.data" --children --stdio --sort symbol -g none 2>/dev/null |
    grep -v '^#' | grep -v '^$' | awk '{$1 = $1}; 1' | sed 's/ - -$//' | head -40 || true
done
