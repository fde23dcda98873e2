#!/usr/bin/env bash
# hubmon's ingest benchmark (issue 3, item 6): the same remote_write workload, sent by
# bench-loadgen, to a null sink (the generator's ceiling), hubmon, Prometheus 2.42 and
# VictoriaMetrics 1.79, one system after another on fresh data directories.
#
#   bench/ingest.sh [--workloads "B A"] [--runs 3] [--systems "sink hubmon prometheus victoriametrics"]
#                   (another system: hubmon-quiet, hubmon without its own live series)
#                   [--concurrency 4] [--no-build]
#
# Per system and run: accepted samples/s (the generator's wall time), the server's CPU seconds
# during sending (utime+stime from /proc/PID/stat), peak RSS (VmHWM), bytes on disk per sample
# once flushed/compacted, and a read-back count of every sample. Raw figures go to
# bench/results/runs/*.json (one small file per system and run), then bench/summarize.py prints
# the table of medians and ratios and writes bench/results/summary-*.json.
#
# Big things (data directories, logs, binaries) stay under $BENCH_WORK (default
# /tmp/hubmon-bench), which is emptied per system and run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_WORK:-/tmp/hubmon-bench}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results}
WORKLOADS="B"
RUNS=1
SYSTEMS="sink hubmon prometheus victoriametrics"
CONCURRENCY=4
BUILD=1
# hubmon's maintenance (cutting blocks from the head, compaction) runs at start and then every 60 s.
HUBMON_SETTLE_S=${HUBMON_SETTLE_S:-70}

while (($#)); do
  case $1 in
    --workloads) WORKLOADS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --systems) SYSTEMS=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

require_tools jq curl python3 prometheus victoria-metrics

mkdir -p "$WORK/bin" "$RESULTS/runs"
if ((BUILD)); then
  log "building hubmon and the bench tools (release)"
  (cd "$ROOT" && cargo build --release --locked -p hubmon -p hubmon-bench) >&2
fi
# Copies, so that a rebuild in the checkout during the run cannot change what is measured.
for binary in hubmon bench-loadgen bench-tsdb-count; do
  cp "$ROOT/target/release/$binary" "$WORK/bin/$binary"
done
BIN=$WORK/bin
HUBMON_REV=$(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- crates || echo "+dirty")
PROM_VERSION=$(prometheus --version 2>&1 | head -1 | awk '{print $3}')
VM_VERSION=$(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo unknown)
CLK_TCK=$(getconf CLK_TCK)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
# One end time for the whole invocation: every system gets byte-identical requests. Aligned to
# the 10 s interval; the workload ends just before it.
END_MS=$(($(date +%s) / 10 * 10 * 1000))
QUERY_TIME=$((END_MS / 1000))

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out waiting for $what"
    sleep 0.2
  done
}

cpu_seconds() { # utime + stime of PID, in seconds
  local rest
  rest=$(sed 's/.*) //' "/proc/$1/stat")
  awk -v tck="$CLK_TCK" '{printf "%.2f", ($12 + $13) / tck}' <<<"$rest"
}

status_bytes() { # a kB field of /proc/PID/status, in bytes
  awk -v key="$2:" '$1 == key {print $2 * 1024}' "/proc/$1/status"
}

# stop PID: SIGTERM, then wait for it to exit; prints the seconds it took.
stop() {
  local pid=$1 start
  start=$(date +%s.%N)
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  wait "$pid" 2>/dev/null || true
  awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN {printf "%.2f", a - b}'
}

du_bytes() { # total bytes of the named paths that exist
  local total=0 path
  for path in "$@"; do
    if [[ -e $path ]]; then
      total=$((total + $(du -sb "$path" | cut -f1)))
    fi
  done
  echo "$total"
}

# sum_meta DIR FIELD: the sum of FIELD over DIR/*/meta.json (block metadata), 0 when none.
sum_meta() {
  find "$1" -mindepth 2 -maxdepth 2 -name meta.json -print0 | xargs -0 -r cat | jq -s "map($2) | add // 0"
}

# promql_scalar BASE_URL QUERY: the value of a one-element vector result (0 when empty).
promql_scalar() {
  local answer
  answer=$(curl -s --max-time 600 -G "$1/api/v1/query" --data-urlencode "query=$2" --data-urlencode "time=$QUERY_TIME")
  jq -e '.status == "success"' <<<"$answer" >/dev/null || die "query $2 failed: $answer"
  jq -r '.data.result[0].value[1] // "0" | tonumber | floor' <<<"$answer"
}

# readback_promql BASE_URL: {"samples": N, "series": N} through the PromQL API, one metric name
# at a time (count_over_time drops the name, so one query over all names would collide).
readback_promql() {
  local name samples=0 series=0 names
  names=$(curl -sf -G "$1/api/v1/label/__name__/values" | jq -r '.data[] | select(startswith("bench_"))')
  for name in $names; do
    samples=$((samples + $(promql_scalar "$1" "sum(count_over_time(${name}[2d]))")))
    series=$((series + $(promql_scalar "$1" "count(last_over_time(${name}[2d]))")))
  done
  jq -n --argjson samples "$samples" --argjson series "$series" --argjson names "$(wc -w <<<"$names")" \
    '{samples: $samples, series: $series, metric_names: $names,
      method: "PromQL: sum(count_over_time(NAME[2d])) summed over every bench_ metric name"}'
}

# loadgen OUT_JSON URL PID [extra args]: sends the workload; the server's CPU and VmHWM are
# read by the generator around the sending phase only.
loadgen() {
  local out=$1 url=$2 pid=$3
  shift 3
  "$BIN/bench-loadgen" run --workload "$WORKLOAD" --end-ms "$END_MS" --concurrency "$CONCURRENCY" \
    --url "$url" --server-pid "$pid" --json "$out" "$@" >/dev/null
}

# record SYSTEM VERSION LOAD_JSON EXTRA_JSON: one file per system and run under results/runs.
record() {
  local file="$RESULTS/runs/$STAMP-$WORKLOAD-$1-run$RUN.json"
  jq -n --arg system "$1" --arg version "$2" --arg workload "$WORKLOAD" --argjson run "$RUN" \
    --arg stamp "$STAMP" --arg host "$(hostname)" --argjson cores "$(nproc)" \
    --argjson concurrency "$CONCURRENCY" --slurpfile load "$3" --argjson extra "$4" '
    ($load[0]) as $l
    | {stamp: $stamp, system: $system, version: $version, workload: $workload, run: $run,
       host: $host, nproc: $cores, concurrency: $concurrency,
       series: $l.spec.series, total_samples: $l.total_samples,
       accepted_samples: $l.send.accepted_samples, refused_samples: $l.send.refused_samples,
       retries: $l.send.retries, wall_seconds: $l.send.wall_seconds,
       samples_per_second: $l.send.samples_per_second,
       latency_ms: {p50: $l.send.latency_ms_p50, p99: $l.send.latency_ms_p99, max: $l.send.latency_ms_max},
       generator_cpu_seconds: $l.send.generator_cpu_seconds,
       machine_busy_cores: $l.machine.busy_cores,
       others_busy_cores: ($l.machine.busy_cores - (($l.server.cpu_seconds + $l.send.generator_cpu_seconds) / $l.send.wall_seconds)),
       server_cpu_seconds: $l.server.cpu_seconds, peak_rss_bytes: $l.server.vm_hwm_bytes,
       rss_after_bytes: $l.server.vm_rss_bytes,
       peak_rss_bytes_per_series: ($l.server.vm_hwm_bytes / $l.spec.series),
       errors: $l.send.errors[0:3], batching: $l.batching, encoding: $l.encoding} + $extra' >"$file"
  log "$1: $(jq -c '{samples_per_second, server_cpu_seconds, peak_rss_bytes, bytes_per_sample: .disk.bytes_per_sample, readback: .readback.samples, refused_samples}' "$file")"
}

run_sink() {
  local port pid dir=$WORK/run/sink
  port=$(free_port)
  "$BIN/bench-loadgen" sink --listen "127.0.0.1:$port" >"$dir.log" 2>&1 &
  pid=$!
  STARTED+=("$pid")
  wait_for "the null sink" 10 curl -s -o /dev/null "http://127.0.0.1:$port/"
  loadgen "$dir.load.json" "http://127.0.0.1:$port/api/v1/write" "$pid"
  stop "$pid" >/dev/null
  record sink "bench-loadgen sink" "$dir.load.json" '{}'
}

# run_hubmon [NAME]: hubmon with its defaults. Its host collector and its own request metrics
# write samples at the current time while the workload's day (which ends when the run
# starts) is backfilled; hubmon-quiet turns both off (HUBMON_HOST_ENABLED=false, request
# metrics recorded every 1000 d), like the Prometheus here, which scrapes nothing.
run_hubmon() {
  local name=${1:-hubmon}
  local dir=$WORK/run/$name port pid token restart_s shutdown_s settle_start blocks_bytes wal_bytes block_samples
  local hwm_restart readback extra
  mkdir -p "$dir"
  port=$(free_port)
  export HUBMON_ADMIN_PASSWORD=bench-password-123
  start_hubmon() {
    "$BIN/hubmon" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >>"$dir.log" 2>&1 &
    pid=$!
    STARTED+=("$pid")
    wait_for "hubmon on port $port" 600 curl -sf "http://127.0.0.1:$port/readyz"
  }
  start_hubmon
  token=$("$BIN/hubmon" token create --role ingest --name bench --data-dir "$dir/data")
  loadgen "$dir.load.json" "http://127.0.0.1:$port/api/v1/write" "$pid" --token "$token"
  shutdown_s=$(stop "$pid")
  # Restart: the log is replayed; maintenance runs at start and every 60 s after.
  local t0
  t0=$(date +%s.%N)
  start_hubmon
  restart_s=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
  settle_start=$SECONDS
  sleep "$HUBMON_SETTLE_S"
  hwm_restart=$(status_bytes "$pid" VmHWM)
  stop "$pid" >/dev/null
  blocks_bytes=$(du_bytes "$dir/data/metrics/blocks")
  wal_bytes=$(du_bytes "$dir/data/metrics/wal")
  block_samples=$(sum_meta "$dir/data/metrics/blocks" .samples)
  readback=$("$BIN/bench-tsdb-count" "$dir/data/metrics" | jq '{samples, series, open_seconds, stats, method: "bench-tsdb-count (Tsdb::open + Querier::select per metric name)"}')
  extra=$(jq -n --argjson b "$blocks_bytes" --argjson w "$wal_bytes" --argjson bs "$block_samples" \
    --argjson total "$(jq .total_samples "$dir.load.json")" --argjson r "$readback" \
    --argjson shutdown "$shutdown_s" --argjson restart "$restart_s" --argjson settle $((SECONDS - settle_start)) \
    --argjson hwm_restart "$hwm_restart" --arg rev "$HUBMON_REV" '
    {disk: {total_bytes: ($b + $w), blocks_bytes: $b, wal_bytes: $w, block_samples: $bs,
            bytes_per_sample: (($b + $w) / $total),
            block_bytes_per_sample: (if $bs > 0 then $b / $bs else null end),
            measured: "du -sb metrics/blocks + metrics/wal after SIGTERM, restart and \($settle) s"},
     readback: $r, shutdown_seconds: $shutdown, restart_seconds: $restart,
     peak_rss_after_restart_bytes: $hwm_restart, revision: $rev}')
  record "$name" "$HUBMON_REV" "$dir.load.json" "$extra"
}

run_hubmon-quiet() {
  HUBMON_HOST_ENABLED=false HUBMON_HTTP_RECORD_INTERVAL=1000d run_hubmon hubmon-quiet
}

run_prometheus() {
  local dir=$WORK/run/prometheus port pid url settle_start head compactions previous="" stable=0
  local block_samples blocks_bytes total_bytes readback extra
  mkdir -p "$dir/data"
  port=$(free_port)
  url="http://127.0.0.1:$port"
  printf 'global:\n  scrape_interval: 1m\n' >"$dir/prometheus.yml"
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver >"$dir.log" 2>&1 &
  pid=$!
  STARTED+=("$pid")
  wait_for "Prometheus on port $port" 120 curl -sf "$url/-/ready"
  loadgen "$dir.load.json" "$url/api/v1/write" "$pid"
  # Head compaction: the head is cut into 2 h blocks while it spans more than 3 h; wait until it
  # no longer does and the compaction count is stable (blocks also merge into 6 h, 18 h ones).
  settle_start=$SECONDS
  while ((SECONDS - settle_start < 900)); do
    head=$(curl -sf "$url/metrics" | awk '/^prometheus_tsdb_head_max_time /{max=$2} /^prometheus_tsdb_head_min_time /{min=$2} END{printf "%d", max-min}')
    compactions=$(curl -sf "$url/metrics" | awk '/^prometheus_tsdb_compactions_total /{print $2}')
    if ((head <= 3 * 3600 * 1000)) && [[ $compactions == "$previous" ]]; then
      stable=$((stable + 1))
      ((stable >= 2)) && break
    else
      stable=0
    fi
    previous=$compactions
    sleep 10
  done
  local settle_s=$((SECONDS - settle_start)) settle_cpu
  settle_cpu=$(cpu_seconds "$pid")
  total_bytes=$(du_bytes "$dir/data")
  blocks_bytes=0
  for block in "$dir"/data/*/; do
    if [[ -f $block/meta.json ]]; then
      blocks_bytes=$((blocks_bytes + $(du -sb "$block" | cut -f1)))
    fi
  done
  block_samples=$(sum_meta "$dir/data" .stats.numSamples)
  # Restart, as for hubmon: the time to replay the WAL and the memory it takes; the read-back
  # then also proves that everything survived the restart.
  stop "$pid" >/dev/null
  local t0 restart_s hwm_restart
  t0=$(date +%s.%N)
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver >>"$dir.log" 2>&1 &
  pid=$!
  STARTED+=("$pid")
  wait_for "Prometheus restarting on port $port" 600 curl -sf "$url/-/ready"
  restart_s=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
  sleep 5
  hwm_restart=$(status_bytes "$pid" VmHWM)
  readback=$(readback_promql "$url")
  stop "$pid" >/dev/null
  extra=$(jq -n --argjson t "$total_bytes" --argjson b "$blocks_bytes" --argjson bs "$block_samples" \
    --argjson restart "$restart_s" --argjson hwm_restart "$hwm_restart" \
    --argjson total "$(jq .total_samples "$dir.load.json")" --argjson r "$readback" --argjson settle "$settle_s" \
    --argjson cpu_total "$settle_cpu" '
    {disk: {total_bytes: $t, blocks_bytes: $b, wal_bytes: ($t - $b), block_samples: $bs,
            bytes_per_sample: ($t / $total),
            block_bytes_per_sample: (if $bs > 0 then $b / $bs else null end),
            measured: "du -sb of the data dir (blocks + wal + chunks_head) after head compaction settled (\($settle) s)"},
     readback: $r, settle_seconds: $settle, cpu_seconds_at_end: $cpu_total,
     restart_seconds: $restart, peak_rss_after_restart_bytes: $hwm_restart}')
  record prometheus "$PROM_VERSION" "$dir.load.json" "$extra"
}

run_victoriametrics() {
  local dir=$WORK/run/victoriametrics port pid url settle_start state busy parts size previous="" stable=0
  local total_bytes readback extra
  mkdir -p "$dir"
  port=$(free_port)
  url="http://127.0.0.1:$port"
  victoria-metrics -storageDataPath="$dir/data" -httpListenAddr="127.0.0.1:$port" -retentionPeriod=1 \
    >"$dir.log" 2>&1 &
  pid=$!
  STARTED+=("$pid")
  wait_for "VictoriaMetrics on port $port" 120 curl -sf "$url/health"
  loadgen "$dir.load.json" "$url/api/v1/write" "$pid"
  settle_start=$SECONDS
  curl -sf "$url/internal/force_flush" >/dev/null
  curl -sf "$url/internal/force_merge" >/dev/null
  # force_merge works in the background: wait at least 20 s, then until nothing is pending or
  # merging and the part count and size have not changed for three polls in a row.
  sleep 20
  while ((SECONDS - settle_start < 900)); do
    state=$(curl -sf "$url/metrics" | awk '/^vm_active_merges/ || /^vm_pending_rows/ {busy += $2} /^vm_parts/ {parts += $2} END {printf "%d %d", busy, parts}')
    read -r busy parts <<<"$state"
    size=$(du_bytes "$dir/data")
    if ((busy == 0)) && [[ "$parts $size" == "$previous" ]]; then
      stable=$((stable + 1))
      ((stable >= 3)) && break
    else
      stable=0
    fi
    previous="$parts $size"
    sleep 5
  done
  local settle_s=$((SECONDS - settle_start))
  total_bytes=$(du_bytes "$dir/data")
  readback=$(readback_promql "$url")
  stop "$pid" >/dev/null
  extra=$(jq -n --argjson t "$total_bytes" --argjson total "$(jq .total_samples "$dir.load.json")" \
    --argjson r "$readback" --argjson settle "$settle_s" --argjson parts "$parts" '
    {disk: {total_bytes: $t, bytes_per_sample: ($t / $total), parts: $parts,
            measured: "du -sb of -storageDataPath after force_flush + force_merge settled (\($settle) s)"},
     readback: $r, settle_seconds: $settle}')
  record victoriametrics "$VM_VERSION" "$dir.load.json" "$extra"
}

log "stamp $STAMP, end $END_MS, workloads '$WORKLOADS' x $RUNS runs, systems '$SYSTEMS', concurrency $CONCURRENCY, $(nproc) cores"
for WORKLOAD in $WORKLOADS; do
  for ((RUN = 1; RUN <= RUNS; RUN++)); do
    for system in $SYSTEMS; do
      rm -rf "$WORK/run"
      mkdir -p "$WORK/run"
      log "workload $WORKLOAD run $RUN: $system"
      "run_$system"
      # Keep the logs of the last run of each system for inspection.
      mkdir -p "$WORK/logs"
      cp "$WORK/run/$system.log" "$WORK/logs/$STAMP-$WORKLOAD-$system-run$RUN.log" 2>/dev/null || true
    done
  done
done
rm -rf "$WORK/run"
python3 "$ROOT/bench/summarize.py" "$RESULTS"/runs/"$STAMP"-*.json --json "$RESULTS/summary-$STAMP.json"
