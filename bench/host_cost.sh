#!/usr/bin/env bash
# What the host collector costs (issue 3, targets): one collection of all host metrics against
# one node_exporter scrape of the same host, and the idle server's CPU at the default 10 s
# collection interval.
#
#   bench/host_cost.sh [--rounds 3] [--scrapes 50] [--idle-seconds 60] [--no-build]
#
# - hubmon: `host_collect_cost` (crates/ingest/examples) times HostCollector::collect with the
#   process CPU clock, median of 200 collections after a warm-up; run --rounds times.
# - node_exporter (/usr/bin/prometheus-node-exporter, default collectors): CPU seconds of its
#   process (utime+stime) over --scrapes back-to-back scrapes of /metrics, divided by the
#   number of scrapes; once as Prometheus scrapes (gzip accepted) and once plain.
# - idle hubmon: a fresh `hubmon serve`, 30 s to settle, then CPU seconds over --idle-seconds,
#   as % of one core; --rounds windows.
# Writes bench/results/host-cost-STAMP.json and prints a summary with medians.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_WORK:-/tmp/hubmon-bench}/host
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results}
ROUNDS=3
SCRAPES=50
IDLE_SECONDS=60
BUILD=1
while (($#)); do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --scrapes) SCRAPES=$2; shift 2 ;;
    --idle-seconds) IDLE_SECONDS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

NODE_EXPORTER=${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}
[[ -x $NODE_EXPORTER ]] || die "$NODE_EXPORTER is missing (apt-get install prometheus-node-exporter)"
if ((BUILD)); then
  (cd "$ROOT" && cargo build --release --locked -p hubmon && cargo build --release --locked -p hubmon-ingest --example host_collect_cost) >&2
fi
rm -rf "$WORK"
mkdir -p "$WORK" "$RESULTS"
cp "$ROOT/target/release/hubmon" "$ROOT/target/release/examples/host_collect_cost" "$WORK/"
CLK_TCK=$(getconf CLK_TCK)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() {
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out waiting for $what"
    sleep 0.2
  done
}
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# 1. hubmon: one collection.
collect_cpu_us=()
collect_wall_us=()
for ((round = 1; round <= ROUNDS; round++)); do
  line=$("$WORK/host_collect_cost" 200)
  log "hubmon collector: $line"
  series=$(awk '{print $1}' <<<"$line")
  # "... wall 1.234ms, CPU 987.6µs ..." -> microseconds
  to_us() { awk '{v = $0; if (v ~ /ms$/) {sub(/ms$/, "", v); print v * 1000} else if (v ~ /µs$/) {sub(/µs$/, "", v); print v} else if (v ~ /ns$/) {sub(/ns$/, "", v); print v / 1000} else {sub(/s$/, "", v); print v * 1e6}}'; }
  # The line also ends in "(max wall …)": take the first match of each.
  collect_wall_us+=("$(grep -o 'wall [^,)]*' <<<"$line" | head -1 | awk '{print $2}' | to_us)")
  collect_cpu_us+=("$(grep -o 'CPU [^ ]*' <<<"$line" | head -1 | awk '{print $2}' | tr -d ')' | to_us)")
done

# 2. node_exporter: CPU per scrape.
port=$(free_port)
"$NODE_EXPORTER" --web.listen-address="127.0.0.1:$port" >"$WORK/node_exporter.log" 2>&1 &
ne_pid=$!
STARTED+=("$ne_pid")
wait_for node_exporter 30 curl -sf "http://127.0.0.1:$port/metrics"
ne_series=$(curl -s "http://127.0.0.1:$port/metrics" | grep -vc '^#')
ne_node_series=$(curl -s "http://127.0.0.1:$port/metrics" | grep -c '^node_')
scrape() { # Accept-Encoding header value or empty
  local i
  for ((i = 0; i < SCRAPES; i++)); do
    curl -s -o /dev/null -H "Accept-Encoding: $1" "http://127.0.0.1:$port/metrics"
  done
}
ne_gzip_cpu_us=()
ne_plain_cpu_us=()
for ((round = 1; round <= ROUNDS; round++)); do
  for encoding in gzip identity; do
    scrape "$encoding" # warm-up
    before=$(cpu_ticks "$ne_pid")
    scrape "$encoding"
    after=$(cpu_ticks "$ne_pid")
    per=$(awk -v d=$((after - before)) -v t="$CLK_TCK" -v n="$SCRAPES" 'BEGIN {printf "%.0f", d / t / n * 1e6}')
    log "node_exporter ($encoding): $((after - before)) ticks over $SCRAPES scrapes = $per µs per scrape"
    if [[ $encoding == gzip ]]; then ne_gzip_cpu_us+=("$per"); else ne_plain_cpu_us+=("$per"); fi
  done
done
kill -TERM "$ne_pid"
wait "$ne_pid" 2>/dev/null || true

# 3. idle hubmon at the default 10 s host collection.
port=$(free_port)
HUBMON_ADMIN_PASSWORD=bench-password-123 "$WORK/hubmon" serve --listen "127.0.0.1:$port" --data-dir "$WORK/data" \
  >"$WORK/hubmon.log" 2>&1 &
hm_pid=$!
STARTED+=("$hm_pid")
wait_for hubmon 60 curl -sf "http://127.0.0.1:$port/readyz"
sleep 30
idle_percent=()
for ((round = 1; round <= ROUNDS; round++)); do
  before=$(cpu_ticks "$hm_pid")
  sleep "$IDLE_SECONDS"
  after=$(cpu_ticks "$hm_pid")
  pct=$(awk -v d=$((after - before)) -v t="$CLK_TCK" -v s="$IDLE_SECONDS" 'BEGIN {printf "%.3f", d / t / s * 100}')
  log "idle hubmon: $((after - before)) ticks in $IDLE_SECONDS s = $pct % of a core"
  idle_percent+=("$pct")
done
hm_rss=$(awk '$1 == "VmRSS:" {print $2 * 1024}' "/proc/$hm_pid/status")
kill -TERM "$hm_pid"
wait "$hm_pid" 2>/dev/null || true

collect_cpu=$(echo "${collect_cpu_us[*]}" | median)
ne_gzip=$(echo "${ne_gzip_cpu_us[*]}" | median)
ne_plain=$(echo "${ne_plain_cpu_us[*]}" | median)
idle=$(echo "${idle_percent[*]}" | median)
json=$(jq -n --arg stamp "$STAMP" --argjson cores "$(nproc)" --argjson series "$series" \
  --argjson ne_series "$ne_series" --argjson ne_node_series "$ne_node_series" \
  --argjson scrapes "$SCRAPES" --argjson idle_seconds "$IDLE_SECONDS" --argjson hm_rss "$hm_rss" \
  --arg c "${collect_cpu_us[*]}" --arg w "${collect_wall_us[*]}" --arg g "${ne_gzip_cpu_us[*]}" \
  --arg p "${ne_plain_cpu_us[*]}" --arg i "${idle_percent[*]}" \
  --argjson mc "$collect_cpu" --argjson mg "$ne_gzip" --argjson mp "$ne_plain" --argjson mi "$idle" '
  def nums: split(" ") | map(select(. != "") | tonumber);
  {stamp: $stamp, nproc: $cores,
   hubmon_collection: {series: $series, cpu_us_runs: ($c | nums), wall_us_runs: ($w | nums), cpu_us_median: $mc},
   node_exporter_scrape: {series: $ne_series, node_series: $ne_node_series, scrapes_per_round: $scrapes,
     gzip_cpu_us_runs: ($g | nums), plain_cpu_us_runs: ($p | nums), gzip_cpu_us_median: $mg, plain_cpu_us_median: $mp},
   ratio_collection_to_scrape: {gzip: ($mc / $mg), plain: ($mc / $mp)},
   idle_hubmon: {interval: "10s (default)", window_seconds: $idle_seconds, percent_of_core_runs: ($i | nums),
     percent_of_core_median: $mi, rss_bytes: $hm_rss},
   targets: {collection_cheaper_than_scrape: ($mc < $mp and $mc < $mg), idle_below_1_percent: ($mi < 1)}}')
echo "$json" >"$RESULTS/host-cost-$STAMP.json"
echo "$json"
