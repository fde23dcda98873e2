# shellcheck shell=bash
# Log clients for the log tests (crates/server/tests/logs.rs): rsyslog and logger from Debian,
# the PyPI package python-logging-loki (pushes Loki JSON) in a venv, and the npm packages
# winston + winston-loki (push Loki protobuf + snappy). Sourced by .ci/services.sh; idempotent.
#
# Exports, unless already set:
#   HUBMON_TEST_RSYSLOGD      path of rsyslogd
#   HUBMON_TEST_LOKI_PYTHON   a python that imports logging_loki
#   HUBMON_TEST_WINSTON_DIR   a directory whose node_modules has winston and winston-loki

_hubmon_logs_main() {
  local root dir apt_missing=()
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  dir="$root/target/log-clients"
  command -v rsyslogd >/dev/null 2>&1 || [[ -x /usr/sbin/rsyslogd ]] || apt_missing+=(rsyslog)
  command -v logger >/dev/null 2>&1 || apt_missing+=(bsdutils)
  command -v node >/dev/null 2>&1 || apt_missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || apt_missing+=(npm)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_missing+=(python3-venv)
  if ((${#apt_missing[@]})); then
    printf 'log-clients.sh: installing %s (apt-get)\n' "${apt_missing[*]}" >&2
    local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
    local sudo=()
    [[ ${EUID:-$(id -u)} -eq 0 ]] || sudo=(sudo -n)
    "${sudo[@]}" "${apt[@]}" update >/dev/null && "${sudo[@]}" "${apt[@]}" install -y --no-install-recommends "${apt_missing[@]}" >/dev/null || {
      printf 'log-clients.sh: ERROR: could not install %s; install them by hand\n' "${apt_missing[*]}" >&2
      return 1
    }
  fi
  mkdir -p "$dir"
  if ! "$dir/venv/bin/python" -c 'import logging_loki' >/dev/null 2>&1; then
    printf 'log-clients.sh: installing python-logging-loki into %s/venv\n' "$dir" >&2
    python3 -m venv "$dir/venv" && "$dir/venv/bin/pip" install -q 'python-logging-loki==0.3.1' || {
      printf 'log-clients.sh: ERROR: pip install python-logging-loki failed\n' >&2
      return 1
    }
  fi
  if ! (cd "$dir/node" 2>/dev/null && node -e "require('winston'); require('winston-loki'); require('snappy')") >/dev/null 2>&1; then
    printf 'log-clients.sh: installing winston and winston-loki into %s/node\n' "$dir" >&2
    mkdir -p "$dir/node"
    (cd "$dir/node" && { [[ -f package.json ]] || npm init -y >/dev/null; } &&
      npm install --no-audit --no-fund --silent 'winston@3.19.0' 'winston-loki@6.1.7' >/dev/null) || {
      printf 'log-clients.sh: ERROR: npm install winston winston-loki failed\n' >&2
      return 1
    }
  fi
  export HUBMON_TEST_RSYSLOGD="${HUBMON_TEST_RSYSLOGD:-$(command -v rsyslogd || echo /usr/sbin/rsyslogd)}"
  export HUBMON_TEST_LOKI_PYTHON="${HUBMON_TEST_LOKI_PYTHON:-$dir/venv/bin/python}"
  export HUBMON_TEST_WINSTON_DIR="${HUBMON_TEST_WINSTON_DIR:-$dir/node}"
  printf 'log-clients.sh: rsyslogd, logger, python-logging-loki and winston-loki ready\n' >&2
}

_hubmon_logs_status=0
_hubmon_logs_main || _hubmon_logs_status=$?
unset -f _hubmon_logs_main
(exit "$_hubmon_logs_status")
