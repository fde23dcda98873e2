#!/usr/bin/env bash
# Log benchmark (issue 5, item 10): the same 1,000,000 JSON lines into hubmon (Loki push API:
# once as JSON bodies, once as protobuf+snappy bodies the way promtail and Alloy send them),
# ClickHouse (Debian's clickhouse-server, MergeTree, JSONEachRow over HTTP) and PostgreSQL
# (GIN full-text index on message, B-tree on request_id, COPY through psql), then p50/p95 of
# four queries in each, and grep -c / rg -c on the raw file as the floor.
#
#   bench/logs.sh [LINES] [REPS]      # defaults 1000000 20; needs target/release/hubmon
#
# Every process runs under nice -n 19 (the machine is shared). Raw JSON lines of the run go to
# bench/results/logs/<stamp>.jsonl. PG_URL defaults to the test PostgreSQL (crates/testkit).
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-1000000}
REPS=${2:-20}
WORK=${WORK:-/tmp/logbench}
PG_URL=${PG_URL:-postgres://hubmon:hubmon@127.0.0.1:5432/postgres}
HUB_PORT=19480
CH_HTTP=18123
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench/results/logs/$STAMP.jsonl
NICE="nice -n 19"
mkdir -p "$WORK" bench/results/logs
: > "$OUT"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
record() { tee -a "$OUT"; }
machine() { echo "{\"note\":\"$1\",\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"mem_avail_mb\":$(awk '/MemAvailable/{print int($2/1024)}' /proc/meminfo)}" | record; }

[ -x target/release/hubmon ] || $NICE cargo build --release -p hubmon
[ -x target/release/bench-loki-bodies ] || $NICE cargo build --release -p hubmon-bench --bin bench-loki-bodies
if [ ! -s "$WORK/logs.ndjson" ] || [ "$(wc -l < "$WORK/logs.ndjson")" != "$LINES" ]; then
  log "generating $LINES lines"
  $NICE python3 bench/logs_gen.py "$LINES" "$WORK" >&2
fi
if [ ! -d "$WORK/loki-protobuf" ] || [ "$WORK/loki-protobuf" -ot "$WORK/logs.ndjson" ]; then
  rm -rf "$WORK/loki-protobuf"
  $NICE target/release/bench-loki-bodies "$WORK/logs.ndjson" "$WORK/loki-protobuf" >&2
fi
machine "start; nproc=$(nproc)"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# --- hubmon ---------------------------------------------------------------------------------
# First the protobuf push into a fresh store (its rate and memory only), then the JSON push
# into another fresh store, which the disk figure and the queries use.
start_hubmon() {
  HUB_DIR=$1
  rm -rf "$HUB_DIR"
  HUBMON_HOST_ENABLED=false HUBMON_LOGS_HEAD_MAX_AGE=20s $NICE target/release/hubmon serve \
    --listen 127.0.0.1:$HUB_PORT --data-dir "$HUB_DIR" > "$WORK/hubmon.log" 2>&1 &
  HUB_PID=$!; PIDS+=("$HUB_PID")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HUB_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  INGEST_TOKEN=$(target/release/hubmon token create --role ingest --name bench --data-dir "$HUB_DIR" | tail -1)
}
start_hubmon "$WORK/hubmon-protobuf-data"
log "hubmon load (protobuf+snappy)"
$NICE python3 bench/logs_load.py hubmon-protobuf "http://127.0.0.1:$HUB_PORT" "$INGEST_TOKEN" "$WORK" "$HUB_PID" | record
kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null || true
rm -rf "$WORK/hubmon-protobuf-data"

start_hubmon "$WORK/hubmon-data"
READ_TOKEN=$(target/release/hubmon token create --role viewer --name bench-read --data-dir "$HUB_DIR" | tail -1)
log "hubmon load (JSON)"
$NICE python3 bench/logs_load.py hubmon "http://127.0.0.1:$HUB_PORT" "$INGEST_TOKEN" "$WORK" "$HUB_PID" | record
machine "after hubmon load"
sleep "${SETTLE_HUBMON:-45}"   # head_max_age 20s: the last lines leave memory for segments
echo "{\"system\":\"hubmon\",\"disk_bytes\":$(du -sb "$HUB_DIR/logs" | cut -f1),\"disk_what\":\"du -sb data_dir/logs after the head flushed\"}" | record

# --- ClickHouse ------------------------------------------------------------------------------
CH_DIR=$WORK/clickhouse
CH_URL=http://127.0.0.1:$CH_HTTP
if command -v clickhouse-server >/dev/null; then
  rm -rf "$CH_DIR"; mkdir -p "$CH_DIR"/{data,tmp,user_files,format_schemas,log}
  sed -e "s#/var/lib/clickhouse/#$CH_DIR/data/#g" \
      -e "s#$CH_DIR/data/tmp/#$CH_DIR/tmp/#; s#$CH_DIR/data/user_files/#$CH_DIR/user_files/#" \
      -e "s#/var/log/clickhouse-server/#$CH_DIR/log/#g" \
      -e "s#<http_port>8123#<http_port>$CH_HTTP#; s#<tcp_port>9000#<tcp_port>19000#" \
      -e "s#<interserver_http_port>9009#<interserver_http_port>19009#" \
      -e "s#<listen_host>::1</listen_host>##" \
      -e "s#<!-- <timezone>Europe/Moscow</timezone> -->#<timezone>UTC</timezone>#" \
      /etc/clickhouse-server/config.xml > "$CH_DIR/config.xml"
  cp /etc/clickhouse-server/users.xml "$CH_DIR/"
  chown -R clickhouse:clickhouse "$CH_DIR"
  (cd "$CH_DIR" && $NICE runuser -u clickhouse -- clickhouse-server --config-file="$CH_DIR/config.xml" \
     > "$CH_DIR/log/stdout" 2>&1) &
  for _ in $(seq 150); do curl -sf "$CH_URL/ping" >/dev/null 2>&1 && break; sleep 0.2; done
  CH_PID=$(pgrep -u clickhouse -f "clickhouse-server --config-file=$CH_DIR/config.xml" | head -1)
  PIDS+=("$CH_PID")
  curl -sf "$CH_URL/" --data-binary "SELECT version()" | sed 's/^/clickhouse version /' >&2
  curl -sf "$CH_URL/" --data-binary "CREATE TABLE logs (timestamp DateTime, ts_ms UInt64, level String,
    category String, service String, host String, request_id String, user_id String, method String,
    route String, status UInt16, duration_ms UInt32, message String)
    ENGINE = MergeTree PARTITION BY toYYYYMMDD(timestamp) ORDER BY (timestamp)"
  log "clickhouse load"
  $NICE python3 bench/logs_load.py clickhouse "$CH_URL" "$WORK" "$CH_PID" | record
  machine "after clickhouse load"
  sleep "${SETTLE_CH:-30}"   # let background merges settle
  CH_DISK=$(curl -sf "$CH_URL/" --data-binary "SELECT sum(bytes_on_disk) FROM system.parts WHERE table='logs' AND active")
  CH_PARTS=$(curl -sf "$CH_URL/" --data-binary "SELECT count() FROM system.parts WHERE table='logs' AND active")
  echo "{\"system\":\"clickhouse\",\"disk_bytes\":$CH_DISK,\"active_parts\":$CH_PARTS,\"disk_what\":\"sum(bytes_on_disk) of active parts, 30 s after the load\"}" | record
else
  CH_URL=-
  echo '{"system":"clickhouse","missing":"clickhouse-server is not installed"}' | record
fi

# --- PostgreSQL ------------------------------------------------------------------------------
DB=hubmon_logbench
psql -X -q "$PG_URL" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
PG_DB_URL=${PG_URL%/*}/$DB
psql -X -q "$PG_DB_URL" <<'SQL'
CREATE TABLE logs (ts timestamptz NOT NULL, level text, category text, service text, host text,
  request_id text, user_id text, method text, route text, status int, duration_ms int, message text);
CREATE INDEX logs_ts ON logs (ts);
CREATE INDEX logs_request_id ON logs (request_id);
CREATE INDEX logs_message_fts ON logs USING gin (to_tsvector('simple', message));
SQL
PG_PID=$(pgrep -o -f '/postgres -D')   # the postmaster; its backends are its children
log "postgres load"
$NICE python3 bench/logs_load.py postgres "$PG_DB_URL" "$WORK" "$PG_PID" | record
machine "after postgres load"
psql -X -q "$PG_DB_URL" -c "VACUUM ANALYZE logs"
echo "{\"system\":\"postgres\",\"disk_bytes\":$(psql -X -At "$PG_DB_URL" -c "SELECT pg_total_relation_size('logs')"),\"disk_what\":\"pg_total_relation_size (table + indexes + toast), after VACUUM ANALYZE\"}" | record
psql -X -At "$PG_DB_URL" -c "SELECT 'postgres version ' || version()" >&2

# --- queries -------------------------------------------------------------------------------
log "queries ($REPS repetitions each)"
machine "before queries"
$NICE python3 bench/logs_query.py "$WORK" "$REPS" "http://127.0.0.1:$HUB_PORT" "$READ_TOKEN" "$CH_URL" "$PG_DB_URL" | record
machine "after queries"
for p in "${PIDS[@]}"; do echo "{\"pid\":$p,\"vm_hwm_kb_end\":$(awk '/VmHWM/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)}" | record; done
log "raw results in $OUT"
