#!/usr/bin/env bash
# Where hubmon's ingest CPU goes: sends a workload (default B) to a fresh hubmon and records
# `perf` with DWARF call graphs for --seconds in the middle of the run, then prints the flat
# top of the profile and bench/perf_breakdown.py's split of decode vs append.
#
#   bench/profile_hubmon.sh [--workload B] [--delay 15] [--seconds 10] [--no-build]
#
# Needs perf (linux-perf). Output under $BENCH_WORK/profile (default /tmp/hubmon-bench/profile).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_WORK:-/tmp/hubmon-bench}/profile
WORKLOAD=B
DELAY=15
SECONDS_RECORDED=10
BUILD=1
while (($#)); do
  case $1 in
    --workload) WORKLOAD=$2; shift 2 ;;
    --delay) DELAY=$2; shift 2 ;;
    --seconds) SECONDS_RECORDED=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
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
HUBMON_ADMIN_PASSWORD=bench-password-123 ./hubmon serve --listen "127.0.0.1:$port" --data-dir data >hubmon.log 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done
token=$(./hubmon token create --role ingest --name profile --data-dir data)
# perf starts after the generator's encoding (a few seconds) and DELAY seconds of sending.
(sleep "$DELAY" && perf record -F 199 --call-graph dwarf,16384 -p "$pid" -o perf.data -- sleep "$SECONDS_RECORDED") \
  >perf.log 2>&1 &
perf_job=$!
./bench-loadgen run --workload "$WORKLOAD" --url "http://127.0.0.1:$port/api/v1/write" --token "$token" \
  --server-pid "$pid" --json load.json >/dev/null
wait "$perf_job"
echo "== flat profile (self time), top 25"
perf report -i perf.data --no-children --stdio --sort symbol -g none 2>/dev/null |
  grep -v '^#' | grep -v '^$' | awk '{$1 = $1}; 1' | sed 's/ - -$//' | head -25
perf script -i perf.data 2>/dev/null >perf.script
echo "== decode vs append"
python3 "$ROOT/bench/perf_breakdown.py" perf.script
