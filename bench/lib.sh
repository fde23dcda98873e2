# Shared by the benchmark scripts (sourced, not run): logging, stopping the servers a script
# started when it ends however it ends, and checking for the tools it needs.
# shellcheck shell=bash

log() { echo "[$(date '+%H:%M:%S')] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# Servers the sourcing script started (append their pids); stopped when the script exits.
STARTED=()
stop_started() {
  local pid
  for pid in "${STARTED[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
}
trap stop_started EXIT

require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
  done
}
