#!/usr/bin/env bash
# hubmon's query-latency benchmark (issue 4, item 6): the same data, written by bench-loadgen
# over remote_write, in hubmon, Prometheus 2.42 (Debian's `prometheus`, remote-write receiver)
# and VictoriaMetrics 1.79 (Debian's `victoria-metrics`), then p50/p95 of four range queries
# (bench/query_latency.py has the list), all at a 60 s step: one raw series over 24 h; rate
# over the 1,005 request counters (15 per host, 67 hosts) for 6 h; sum by (job) of that rate,
# for 1 h; histogram_quantile(0.95, sum by (le) (rate)) over the 2,010 bucket series (10 buckets,
# 3 handlers per host) for 6 h.
#
#   bench/query.sh [--runs 3] [--hosts 67] [--samples 1500] [--rounds 30] [--warmup 3]
#                  [--max-seconds 240] [--no-build]
#
# --hosts must be at least 8 (the raw series is host-00007's). Per run: fresh data directories; the three servers are started side by side, loaded one
# after the other (--hosts x 100 series of bench-loadgen's query catalogue, each host in one
# of five jobs; --samples per series at a 60 s interval, ending just before the run's start,
# in time order), left to settle (Prometheus's head compaction,
# VictoriaMetrics's force_flush + force_merge, hubmon's maintenance cutting blocks), then
# queried one request at a time (bench/query_latency.py: warm-up, answers compared across the
# systems, then timed rounds). hubmon runs quiet (no host collector, no request metrics) so
# that only the workload is in it, like the other two, which scrape nothing. VictoriaMetrics
# runs with -search.disableCache so that every request is evaluated, as in the other two.
# Raw figures: bench/results/query/runs/STAMP-runN.json; the table: query_latency.py summarize.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_WORK:-/tmp/hubmon-bench}/query
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results}/query
RUNS=1
HOSTS=67
SAMPLES=1500
INTERVAL_MS=60000
ROUNDS=30
WARMUP=3
MAX_SECONDS=240
BUILD=1
# hubmon's maintenance (cutting blocks from the head) runs at start and then every 60 s.
HUBMON_SETTLE_S=${HUBMON_SETTLE_S:-75}

while (($#)); do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --hosts) HOSTS=$2; shift 2 ;;
    --samples) SAMPLES=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --max-seconds) MAX_SECONDS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
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
for binary in hubmon bench-loadgen; do
  cp "$ROOT/target/release/$binary" "$WORK/bin/$binary"
done
BIN=$WORK/bin
HUBMON_REV=$(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- crates || echo "+dirty")
PROM_VERSION=$(prometheus --version 2>&1 | head -1 | awk '{print $3}')
VM_VERSION=$(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo unknown)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # wait_for DESCRIPTION SECONDS COMMAND...
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out waiting for $what"
    sleep 0.2
  done
}

stop() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  wait "$pid" 2>/dev/null || true
}

rss_bytes() { awk '$1 == "VmRSS:" {print $2 * 1024}' "/proc/$1/status"; }

# load NAME URL [--token T]: sends the data set; fails if any sample was refused.
load() {
  local name=$1 url=$2 out=$DIR/$1.load.json
  shift 2
  "$BIN/bench-loadgen" run --series $((HOSTS * 100)) --samples "$SAMPLES" --interval-ms "$INTERVAL_MS" \
    --catalogue query --end-ms "$END_MS" --url "$url" --json "$out" "$@" >/dev/null
  local refused
  refused=$(jq .send.refused_samples "$out")
  log "$name: $(jq -c '{accepted: .send.accepted_samples, refused: .send.refused_samples, seconds: .send.wall_seconds}' "$out")"
  ((refused == 0)) || die "$name refused $refused samples: $(jq -c '.send.errors' "$out")"
}

settle_prometheus() { # the head is cut into 2 h blocks while it spans more than 3 h
  local url=$1 start=$SECONDS head compactions previous="" stable=0
  while ((SECONDS - start < 900)); do
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
  log "prometheus settled in $((SECONDS - start)) s: $(find "$DIR/prometheus/data" -name meta.json | wc -l) blocks"
}

settle_victoriametrics() { # force_merge works in the background
  local url=$1 start=$SECONDS busy parts state previous="" stable=0
  curl -sf "$url/internal/force_flush" >/dev/null
  curl -sf "$url/internal/force_merge" >/dev/null
  sleep 10
  while ((SECONDS - start < 900)); do
    state=$(curl -sf "$url/metrics" | awk '/^vm_active_merges/ || /^vm_pending_rows/ {busy += $2} /^vm_parts/ {parts += $2} END {printf "%d %d", busy, parts}')
    read -r busy parts <<<"$state"
    if ((busy == 0)) && [[ $parts == "$previous" ]]; then
      stable=$((stable + 1))
      ((stable >= 3)) && break
    else
      stable=0
    fi
    previous=$parts
    sleep 5
  done
  log "victoriametrics settled in $((SECONDS - start)) s: $parts parts"
}

settle_hubmon() { # maintenance runs every 60 s: wait past one, then until the blocks stop changing
  local dir=$1 start=$SECONDS previous="" now
  sleep "$HUBMON_SETTLE_S"
  while ((SECONDS - start < 600)); do
    now=$(find "$dir" -maxdepth 1 -mindepth 1 | sort | tr '\n' ' ')
    [[ $now == "$previous" ]] && break
    previous=$now
    sleep 20
  done
  log "hubmon settled in $((SECONDS - start)) s: $(find "$dir" -maxdepth 1 -mindepth 1 | wc -l) blocks"
}

log "stamp $STAMP, $RUNS run(s), $HOSTS hosts x 100 series x $SAMPLES samples every $((INTERVAL_MS / 1000)) s, $(nproc) cores"
for ((RUN = 1; RUN <= RUNS; RUN++)); do
  DIR=$WORK/run
  rm -rf "$DIR"
  mkdir -p "$DIR/hubmon" "$DIR/prometheus/data" "$DIR/victoriametrics"
  # Every sample is before END_MS (aligned to the step, so the query ranges are too); each
  # query range ends there.
  END_MS=$(($(date +%s) / 60 * 60 * 1000))
  END_S=$((END_MS / 1000))

  hub_port=$(free_port)
  HUBMON_ADMIN_PASSWORD=bench-password-123 HUBMON_HOST_ENABLED=false HUBMON_HTTP_RECORD_INTERVAL=1000d \
    "$BIN/hubmon" serve --listen "127.0.0.1:$hub_port" --data-dir "$DIR/hubmon/data" >"$DIR/hubmon.log" 2>&1 &
  hub_pid=$!
  STARTED+=("$hub_pid")
  prom_port=$(free_port)
  printf 'global:\n  scrape_interval: 1m\n' >"$DIR/prometheus/prometheus.yml"
  prometheus --config.file="$DIR/prometheus/prometheus.yml" --storage.tsdb.path="$DIR/prometheus/data" \
    --web.listen-address="127.0.0.1:$prom_port" --web.enable-remote-write-receiver >"$DIR/prometheus.log" 2>&1 &
  prom_pid=$!
  STARTED+=("$prom_pid")
  vm_port=$(free_port)
  victoria-metrics -storageDataPath="$DIR/victoriametrics/data" -httpListenAddr="127.0.0.1:$vm_port" \
    -retentionPeriod=1 -search.disableCache >"$DIR/victoriametrics.log" 2>&1 &
  vm_pid=$!
  STARTED+=("$vm_pid")
  wait_for "hubmon on port $hub_port" 600 curl -sf "http://127.0.0.1:$hub_port/readyz"
  wait_for "Prometheus on port $prom_port" 120 curl -sf "http://127.0.0.1:$prom_port/-/ready"
  wait_for "VictoriaMetrics on port $vm_port" 120 curl -sf "http://127.0.0.1:$vm_port/health"
  # One token for writing and reading (editor may do both).
  token=$("$BIN/hubmon" token create --role editor --name bench-query --data-dir "$DIR/hubmon/data")

  log "run $RUN: loading (end $END_MS)"
  load hubmon "http://127.0.0.1:$hub_port/api/v1/write" --token "$token" --server-pid "$hub_pid"
  load prometheus "http://127.0.0.1:$prom_port/api/v1/write" --server-pid "$prom_pid"
  load victoriametrics "http://127.0.0.1:$vm_port/api/v1/write" --server-pid "$vm_pid"
  # Settle one after another, so that none of them compacts while another is measured.
  settle_victoriametrics "http://127.0.0.1:$vm_port"
  settle_prometheus "http://127.0.0.1:$prom_port"
  settle_hubmon "$DIR/hubmon/data/metrics/blocks"

  meta=$(jq -n --arg stamp "$STAMP" --argjson run "$RUN" --arg rev "$HUBMON_REV" --arg prom "$PROM_VERSION" \
    --arg vm "$VM_VERSION" --argjson hosts "$HOSTS" --argjson samples "$SAMPLES" --argjson interval "$INTERVAL_MS" \
    --arg host "$(hostname)" --argjson cores "$(nproc)" --arg loadavg "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --argjson rss "{\"hubmon\": $(rss_bytes "$hub_pid"), \"prometheus\": $(rss_bytes "$prom_pid"), \"victoriametrics\": $(rss_bytes "$vm_pid")}" \
    '{stamp: $stamp, run: $run, host: $host, nproc: $cores, loadavg_before: $loadavg,
      versions: {hubmon: $rev, prometheus: $prom, victoriametrics: $vm},
      data: {hosts: $hosts, series: ($hosts * 100), samples_per_series: $samples, interval_ms: $interval,
             total_samples: ($hosts * 100 * $samples)},
      rss_before_bytes: $rss}')
  log "run $RUN: measuring"
  python3 "$ROOT/bench/query_latency.py" measure --end "$END_S" \
    --system "hubmon=http://127.0.0.1:$hub_port" --token "hubmon=$token" \
    --system "prometheus=http://127.0.0.1:$prom_port" --system "victoriametrics=http://127.0.0.1:$vm_port" \
    --warmup "$WARMUP" --rounds "$ROUNDS" --max-seconds "$MAX_SECONDS" --meta "$meta" \
    --json "$RESULTS/runs/$STAMP-run$RUN.json"
  for pid in "$hub_pid" "$prom_pid" "$vm_pid"; do stop "$pid"; done
  mkdir -p "$WORK/logs"
  for name in hubmon prometheus victoriametrics; do
    cp "$DIR/$name.log" "$WORK/logs/$STAMP-$name-run$RUN.log" 2>/dev/null || true
  done
done
rm -rf "$WORK/run"
python3 "$ROOT/bench/query_latency.py" summarize "$RESULTS"/runs/"$STAMP"-run*.json --json "$RESULTS/summary-$STAMP.json"
