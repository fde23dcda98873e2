# shellcheck shell=bash
# Test services for hubmon: PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379 and MariaDB
# on 127.0.0.1:3306.
#
#   source .ci/services.sh      # developer shell: installs/starts what is missing, exports the URLs
#   bash .ci/services.sh        # same, without keeping the exports
#
# Idempotent: when both services already answer (and the `hubmon` role can log in) it only
# checks and exports. Installs missing Debian packages (postgresql, redis-server, curl, ...)
# with apt-get, which needs root (or password-less sudo); otherwise it says what to install.
#
# Exports, unless the caller already set them:
#   HUBMON_TEST_PG_URL=postgres://hubmon:hubmon@127.0.0.1:5432/postgres
#   HUBMON_TEST_REDIS_URL=redis://127.0.0.1:6379
#   HUBMON_TEST_MYSQL_URL=mysql://hubmon:hubmon@127.0.0.1:3306/hubmon
# A caller-set URL that differs from these defaults points at a server the caller runs: that
# service is then neither installed nor started here, only checked when a client is at hand.
#
# Written to behave the same whether or not the caller has `set -euo pipefail`; it never
# changes the caller's shell options and returns (when sourced) rather than exits.

_hubmon_svc_pg_default="postgres://hubmon:hubmon@127.0.0.1:5432/postgres"
_hubmon_svc_redis_default="redis://127.0.0.1:6379"
_hubmon_svc_mysql_default="mysql://hubmon:hubmon@127.0.0.1:3306/hubmon"

_hubmon_svc_log() { printf 'services.sh: %s\n' "$*" >&2; }
_hubmon_svc_err() { printf 'services.sh: ERROR: %s\n' "$*" >&2; }

# Run a command as root: directly when we are root, through password-less sudo otherwise.
_hubmon_svc_root() {
  if [[ ${EUID:-$(id -u)} -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    return 126
  fi
}

_hubmon_svc_can_root() {
  [[ ${EUID:-$(id -u)} -eq 0 ]] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

# Run a command as the postgres OS user (from / so it need not read our working directory).
_hubmon_svc_as_postgres() {
  if [[ ${EUID:-$(id -u)} -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && sudo -n -u postgres -- "$@")
  fi
}

# ---------------------------------------------------------------------------------------------
# Packages

_hubmon_svc_pg_server_installed() {
  command -v pg_ctlcluster >/dev/null 2>&1 && command -v pg_lsclusters >/dev/null 2>&1 &&
    command -v pg_createcluster >/dev/null 2>&1 &&
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# Prints the Debian packages still missing, one per line: "need PKG" for what a service we
# manage cannot do without, "want PKG" for what CI uses but a developer may lack (clients of a
# service that already answers, curl, python3 for tests/e2e/smoke.sh).
_hubmon_svc_missing_packages() {
  local manage_pg=$1 manage_redis=$2 manage_mysql=${3:-0} have_client=0 kind
  if [[ $manage_pg == 1 ]]; then
    if command -v psql >/dev/null 2>&1 && command -v pg_isready >/dev/null 2>&1; then
      have_client=1
    else
      echo "need postgresql-client"
    fi
    if ! _hubmon_svc_pg_server_installed; then
      kind=need
      [[ $have_client == 1 ]] && _hubmon_svc_pg_ready && kind=want
      echo "$kind postgresql"
    fi
  fi
  if [[ $manage_redis == 1 ]]; then
    kind=need
    _hubmon_svc_redis_ping && kind=want
    command -v redis-server >/dev/null 2>&1 || echo "$kind redis-server"
    command -v redis-cli >/dev/null 2>&1 || echo "want redis-tools"
  fi
  # MariaDB for the mysql health checks (issue 6).
  if [[ $manage_mysql == 1 ]]; then
    kind=need
    _hubmon_svc_mysql_ready && kind=want
    command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]] || echo "$kind mariadb-server"
    command -v mariadb >/dev/null 2>&1 || echo "need mariadb-client"
  fi
  # Real peers the metrics tests run against (started by the tests themselves).
  command -v prometheus >/dev/null 2>&1 || echo "need prometheus"
  command -v promtool >/dev/null 2>&1 || echo "need prometheus"
  [[ -x /usr/bin/prometheus-node-exporter ]] || echo "need prometheus-node-exporter"
  command -v curl >/dev/null 2>&1 || echo "want curl"
  # curl is installed without recommends, so make sure TLS to the outside still verifies.
  [[ -s /etc/ssl/certs/ca-certificates.crt ]] || echo "want ca-certificates"
  command -v python3 >/dev/null 2>&1 || echo "want python3"
  # The real SMTP server the email notification tests deliver to (crates/notify/tests, started
  # by the tests themselves with the system Python).
  /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || echo "need python3-aiosmtpd"
  # runuser comes with util-linux (essential, so practically always there).
  command -v runuser >/dev/null 2>&1 || echo "want util-linux"
  # The dashboard's browser tests (web/e2e) drive Debian's Chromium; the CJK font renders the
  # Chinese pages in their screenshots.
  [[ -x /usr/bin/chromium ]] || echo "need chromium"
  compgen -G '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.*' >/dev/null || echo "want fonts-noto-cjk"
  return 0
}

# _hubmon_svc_install "need PKG"|"want PKG"...: apt-get install them all when we can; without
# root that is an error only when something is needed.
_hubmon_svc_install() {
  local line needed=0
  local -a pkgs=()
  for line in "$@"; do
    pkgs+=("${line#* }")
    [[ $line == need\ * ]] && needed=1
  done
  [[ ${#pkgs[@]} -gt 0 ]] || return 0
  local hint="sudo apt-get update && sudo apt-get install -y --no-install-recommends ${pkgs[*]}"
  if ! command -v apt-get >/dev/null 2>&1 || ! _hubmon_svc_can_root; then
    local why="installing needs root"
    command -v apt-get >/dev/null 2>&1 || why="there is no apt-get here"
    if [[ $needed == 1 ]]; then
      _hubmon_svc_err "missing: ${pkgs[*]}; $why. Install them by hand (Debian names):"
      _hubmon_svc_err "  $hint"
      return 1
    fi
    _hubmon_svc_log "note: missing ${pkgs[*]} ($why; not needed to reach the services): $hint"
    return 0
  fi
  _hubmon_svc_log "installing: ${pkgs[*]} (apt-get)"
  local started=$SECONDS
  local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
  if ! _hubmon_svc_root "${apt[@]}" update >/dev/null; then
    _hubmon_svc_err "apt-get update failed"
    return 1
  fi
  if ! _hubmon_svc_root "${apt[@]}" install -y --no-install-recommends "${pkgs[@]}" >/dev/null; then
    _hubmon_svc_err "apt-get install ${pkgs[*]} failed"
    return 1
  fi
  _hubmon_svc_log "installed ${pkgs[*]} in $((SECONDS - started)) s"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

_hubmon_svc_pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 -t 2 >/dev/null 2>&1; }

# True when the hubmon role logs in over TCP with its password and may create databases.
_hubmon_svc_pg_role_ok() {
  local out
  out=$(PGPASSWORD=hubmon PGCONNECT_TIMEOUT=5 psql -X -q -t -A -h 127.0.0.1 -p 5432 -U hubmon -d postgres \
    -c 'select rolcreatedb and rolcanlogin from pg_roles where rolname = current_user' 2>/dev/null) || return 1
  [[ $out == t ]]
}

# Prints "version name" of the cluster configured on port 5432, or nothing.
_hubmon_svc_pg_cluster() {
  pg_lsclusters --no-header 2>/dev/null | awk '$3 == 5432 { print $1, $2; exit }'
}

_hubmon_svc_pg_start() {
  local cluster version name logfile
  cluster=$(_hubmon_svc_pg_cluster)
  if [[ -z $cluster ]]; then
    version=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null |
      awk -F/ '{ print $5 }' | sort -n | tail -n 1)
    if [[ -z $version ]]; then
      _hubmon_svc_err "PostgreSQL: no server binaries under /usr/lib/postgresql"
      return 1
    fi
    name=main
    if pg_lsclusters --no-header 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" { f = 1 } END { exit !f }'; then
      name=hubmon   # a "main" cluster exists on another port; leave it alone
    fi
    _hubmon_svc_log "PostgreSQL: creating cluster $version/$name on port 5432"
    if ! _hubmon_svc_root pg_createcluster -p 5432 "$version" "$name" >/dev/null; then
      _hubmon_svc_err "PostgreSQL: pg_createcluster -p 5432 $version $name failed"
      return 1
    fi
    cluster="$version $name"
  fi
  read -r version name <<<"$cluster"
  logfile=$(pg_lsclusters --no-header 2>/dev/null | awk -v v="$version" -v n="$name" '$1 == v && $2 == n { print $7 }')
  _hubmon_svc_log "PostgreSQL: starting cluster $version/$name"
  if ! _hubmon_svc_root pg_ctlcluster "$version" "$name" start; then
    _hubmon_svc_err "PostgreSQL: pg_ctlcluster $version $name start failed (its output is above; log: ${logfile:-?})"
    return 1
  fi
}

_hubmon_svc_pg_setup() {
  local deadline logfile
  if _hubmon_svc_pg_ready && _hubmon_svc_pg_role_ok; then
    _hubmon_svc_log "PostgreSQL: ready on 127.0.0.1:5432, role hubmon ok"
    return 0
  fi
  if ! _hubmon_svc_can_root; then
    local cluster
    cluster=$(_hubmon_svc_pg_cluster)
    if _hubmon_svc_pg_ready; then
      _hubmon_svc_err "PostgreSQL: up on 127.0.0.1:5432, but role hubmon cannot log in with password hubmon" \
        "or lacks CREATEDB, and there is no root to fix it. By hand:"
    else
      _hubmon_svc_err "PostgreSQL: not accepting connections on 127.0.0.1:5432, and there is no root to start it. By hand:"
      if [[ -n $cluster ]]; then
        _hubmon_svc_err "  sudo pg_ctlcluster ${cluster% *} ${cluster#* } start"
      else
        _hubmon_svc_err "  sudo pg_createcluster -p 5432 <version> main && sudo pg_ctlcluster <version> main start"
      fi
    fi
    _hubmon_svc_err "  sudo -u postgres psql -c \"CREATE ROLE hubmon LOGIN CREATEDB PASSWORD 'hubmon'\"" \
      " (or ALTER ROLE hubmon LOGIN CREATEDB PASSWORD 'hubmon' when it exists)"
    return 1
  fi
  if ! _hubmon_svc_pg_ready; then
    _hubmon_svc_pg_start || return 1
    deadline=$((SECONDS + 60))
    until _hubmon_svc_pg_ready; do
      if ((SECONDS >= deadline)); then
        _hubmon_svc_err "PostgreSQL: not accepting connections on 127.0.0.1:5432 after 60 s"
        logfile=$(pg_lsclusters --no-header 2>/dev/null | awk '$3 == 5432 { print $7; exit }')
        [[ -n $logfile && -r $logfile ]] && { _hubmon_svc_err "last lines of $logfile:"; tail -n 20 "$logfile" >&2; }
        return 1
      fi
      sleep 0.5
    done
  fi
  # Create the role when missing, then (re)set its attributes and password.
  _hubmon_svc_log "PostgreSQL: ensuring role hubmon (LOGIN CREATEDB, password hubmon)"
  if ! _hubmon_svc_as_postgres psql -X -q -v ON_ERROR_STOP=1 -p 5432 -d postgres >/dev/null <<'SQL'
SELECT 'CREATE ROLE hubmon' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'hubmon') \gexec
ALTER ROLE hubmon WITH LOGIN CREATEDB PASSWORD 'hubmon';
SQL
  then
    _hubmon_svc_err "PostgreSQL: could not create/alter role hubmon (psql as postgres failed)"
    return 1
  fi
  if ! _hubmon_svc_pg_role_ok; then
    _hubmon_svc_err "PostgreSQL: role hubmon cannot log in with its password over TCP on 127.0.0.1:5432" \
      "(check pg_hba.conf: host all all 127.0.0.1/32 scram-sha-256)"
    return 1
  fi
  _hubmon_svc_log "PostgreSQL: ready on 127.0.0.1:5432, role hubmon ok"
}

# ---------------------------------------------------------------------------------------------
# Redis

_hubmon_svc_redis_ping() {
  local reply
  if command -v redis-cli >/dev/null 2>&1; then
    reply=$(timeout 3 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) || return 1
  else
    # shellcheck disable=SC2016 # $line is expanded by the inner bash
    reply=$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/6379 && printf "PING\r\n" >&3 && IFS= read -r line <&3 && printf "%s" "$line"' 2>/dev/null) || return 1
    reply=${reply#+}
    reply=${reply%$'\r'}
  fi
  [[ $reply == PONG ]]
}

_hubmon_svc_redis_setup() {
  local deadline dir logfile
  if _hubmon_svc_redis_ping; then
    _hubmon_svc_log "Redis: ready on 127.0.0.1:6379"
    return 0
  fi
  local -a run=()
  if [[ ${EUID:-$(id -u)} -eq 0 ]] && id redis >/dev/null 2>&1 && [[ -d /var/lib/redis && -d /var/log/redis ]]; then
    run=(runuser -u redis --)
    dir=/var/lib/redis
    logfile=/var/log/redis/hubmon-ci.log
  else
    dir=${TMPDIR:-/tmp}/hubmon-redis-$(id -u)
    mkdir -p "$dir" || { _hubmon_svc_err "Redis: cannot create $dir"; return 1; }
    logfile=$dir/redis.log
  fi
  local log_lines=0
  [[ -r $logfile ]] && log_lines=$(wc -l <"$logfile")
  _hubmon_svc_log "Redis: starting redis-server on 127.0.0.1:6379 (log: $logfile)"
  if ! (cd / && "${run[@]}" redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no \
    --enable-debug-command local \
    --dir "$dir" --logfile "$logfile" --pidfile "$dir/hubmon-ci-redis.pid"); then
    _hubmon_svc_err "Redis: redis-server failed to start"
    [[ -r $logfile ]] && tail -n 20 "$logfile" >&2
    return 1
  fi
  deadline=$((SECONDS + 30))
  until _hubmon_svc_redis_ping; do
    if ((SECONDS >= deadline)); then
      _hubmon_svc_err "Redis: no PONG from 127.0.0.1:6379 after 30 s"
      [[ -r $logfile ]] && { _hubmon_svc_err "new lines in $logfile:"; tail -n +$((log_lines + 1)) "$logfile" | tail -n 20 >&2; }
      return 1
    fi
    sleep 0.2
  done
  _hubmon_svc_log "Redis: ready on 127.0.0.1:6379"
}

# ---------------------------------------------------------------------------------------------
# MariaDB (the mysql health checks): the Debian server bound to loopback, user hubmon/hubmon
# with its own database `hubmon`.

_hubmon_svc_mysql_ready() {
  command -v mariadb >/dev/null 2>&1 || return 1
  timeout 5 mariadb --protocol=tcp -h 127.0.0.1 -P 3306 -u hubmon -phubmon -N -e 'select 1' hubmon >/dev/null 2>&1
}

_hubmon_svc_mysql_setup() {
  local deadline logfile=/var/log/mysql/hubmon-ci.err
  if _hubmon_svc_mysql_ready; then
    _hubmon_svc_log "MariaDB: ready on 127.0.0.1:3306, user hubmon ok"
    return 0
  fi
  if ! _hubmon_svc_can_root; then
    _hubmon_svc_err "MariaDB: user hubmon cannot log in on 127.0.0.1:3306, and there is no root to start or fix it. By hand:"
    _hubmon_svc_err "  sudo service mariadb start"
    _hubmon_svc_err "  sudo mariadb -e \"CREATE USER IF NOT EXISTS 'hubmon'@'127.0.0.1' IDENTIFIED BY 'hubmon';" \
      "CREATE DATABASE IF NOT EXISTS hubmon; GRANT ALL ON hubmon.* TO 'hubmon'@'127.0.0.1'\""
    return 1
  fi
  if ! _hubmon_svc_root mariadb-admin --protocol=socket ping >/dev/null 2>&1; then
    _hubmon_svc_log "MariaDB: starting mariadbd on 127.0.0.1:3306 (log: $logfile)"
    _hubmon_svc_root mkdir -p /run/mysqld /var/log/mysql
    _hubmon_svc_root chown mysql:mysql /run/mysqld /var/log/mysql
    [[ -d /var/lib/mysql/mysql ]] || _hubmon_svc_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    # mysqld_safe keeps running as the server's supervisor; detach it from this shell.
    (cd / && _hubmon_svc_root setsid mysqld_safe --user=mysql --bind-address=127.0.0.1 --port=3306 \
      --log-error="$logfile") </dev/null >/dev/null 2>&1 &
    deadline=$((SECONDS + 60))
    until _hubmon_svc_root mariadb-admin --protocol=socket ping >/dev/null 2>&1; do
      if ((SECONDS >= deadline)); then
        _hubmon_svc_err "MariaDB: not answering after 60 s"
        [[ -r $logfile ]] && { _hubmon_svc_err "last lines of $logfile:"; tail -n 20 "$logfile" >&2; }
        return 1
      fi
      sleep 0.5
    done
  fi
  _hubmon_svc_log "MariaDB: ensuring user hubmon (password hubmon) and database hubmon"
  if ! _hubmon_svc_root mariadb --protocol=socket -e "
      CREATE DATABASE IF NOT EXISTS hubmon;
      CREATE USER IF NOT EXISTS 'hubmon'@'127.0.0.1' IDENTIFIED BY 'hubmon';
      ALTER USER 'hubmon'@'127.0.0.1' IDENTIFIED BY 'hubmon';
      GRANT ALL ON hubmon.* TO 'hubmon'@'127.0.0.1';
      GRANT PROCESS ON *.* TO 'hubmon'@'127.0.0.1';
      FLUSH PRIVILEGES;" >/dev/null; then
    _hubmon_svc_err "MariaDB: could not create user hubmon (mariadb as root failed)"
    return 1
  fi
  if ! _hubmon_svc_mysql_ready; then
    _hubmon_svc_err "MariaDB: user hubmon cannot log in over TCP on 127.0.0.1:3306"
    return 1
  fi
  _hubmon_svc_log "MariaDB: ready on 127.0.0.1:3306, user hubmon ok"
}

# ---------------------------------------------------------------------------------------------

_hubmon_svc_main() {
  local manage_pg=1 manage_redis=1 manage_mysql=1 started=$SECONDS
  export HUBMON_TEST_PG_URL="${HUBMON_TEST_PG_URL:-$_hubmon_svc_pg_default}"
  export HUBMON_TEST_REDIS_URL="${HUBMON_TEST_REDIS_URL:-$_hubmon_svc_redis_default}"
  export HUBMON_TEST_MYSQL_URL="${HUBMON_TEST_MYSQL_URL:-$_hubmon_svc_mysql_default}"
  [[ $HUBMON_TEST_PG_URL == "$_hubmon_svc_pg_default" ]] || manage_pg=0
  [[ $HUBMON_TEST_REDIS_URL == "$_hubmon_svc_redis_default" ]] || manage_redis=0
  [[ $HUBMON_TEST_MYSQL_URL == "$_hubmon_svc_mysql_default" ]] || manage_mysql=0

  local -a missing=()
  mapfile -t missing < <(_hubmon_svc_missing_packages "$manage_pg" "$manage_redis" "$manage_mysql")
  _hubmon_svc_install "${missing[@]}" || return 1

  if [[ $manage_pg == 1 ]]; then
    _hubmon_svc_pg_setup || return 1
  else
    _hubmon_svc_log "PostgreSQL: using the caller's HUBMON_TEST_PG_URL (not managed here)"
    if command -v psql >/dev/null 2>&1 && ! PGCONNECT_TIMEOUT=5 psql -X -q -t -A "$HUBMON_TEST_PG_URL" -c 'select 1' >/dev/null; then
      _hubmon_svc_err "PostgreSQL: cannot connect to the caller's HUBMON_TEST_PG_URL"
      return 1
    fi
  fi
  if [[ $manage_redis == 1 ]]; then
    _hubmon_svc_redis_setup || return 1
  else
    _hubmon_svc_log "Redis: using the caller's HUBMON_TEST_REDIS_URL (not managed here)"
    if command -v redis-cli >/dev/null 2>&1 && [[ $(timeout 5 redis-cli -u "$HUBMON_TEST_REDIS_URL" ping 2>/dev/null) != PONG ]]; then
      _hubmon_svc_err "Redis: no PONG from the caller's HUBMON_TEST_REDIS_URL"
      return 1
    fi
  fi
  if [[ $manage_mysql == 1 ]]; then
    _hubmon_svc_mysql_setup || return 1
  else
    _hubmon_svc_log "MariaDB: using the caller's HUBMON_TEST_MYSQL_URL (not managed here)"
  fi
  # Log clients for the log tests (issue 5): rsyslog, logger, python-logging-loki, winston-loki.
  # shellcheck source=.ci/log-clients.sh
  source "$(dirname "${BASH_SOURCE[0]}")/log-clients.sh" || return 1
  _hubmon_svc_log "services ready in $((SECONDS - started)) s"
}

# Run with errexit off inside (whatever the caller set), keep the status, clean up our names.
_hubmon_svc_status=0
_hubmon_svc_main "$@" || _hubmon_svc_status=$?
unset -f _hubmon_svc_log _hubmon_svc_err _hubmon_svc_root _hubmon_svc_can_root _hubmon_svc_as_postgres \
  _hubmon_svc_pg_server_installed _hubmon_svc_missing_packages _hubmon_svc_install _hubmon_svc_pg_ready \
  _hubmon_svc_pg_role_ok _hubmon_svc_pg_cluster _hubmon_svc_pg_start _hubmon_svc_pg_setup \
  _hubmon_svc_redis_ping _hubmon_svc_redis_setup _hubmon_svc_mysql_ready _hubmon_svc_mysql_setup _hubmon_svc_main
unset _hubmon_svc_pg_default _hubmon_svc_redis_default _hubmon_svc_mysql_default
# Sourced: return the status to the caller's shell. Run as a script: exit with it.
if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
  return "$_hubmon_svc_status"
fi
exit "$_hubmon_svc_status"
