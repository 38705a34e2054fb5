#!/usr/bin/env bash
# Idempotent machine bootstrap (Debian 12 bookworm, root, no systemd).
#   1. libstdc++6 with GLIBCXX_3.4.32 for TorchSharp (from trixie, pinned at priority 100)
#      (pulls libc6 2.41, gcc-14 runtime libs, dpkg 1.22 and base-files 13 from trixie:
#       afterwards /etc/os-release reports Debian 13; dotnet and git keep working)
#   2. RabbitMQ on loopback (guest/guest, management on 127.0.0.1:15672)
#   3. PostgreSQL 15 on 127.0.0.1:5432 (postgres/postgres)
# Every step checks before acting; a second run changes nothing and takes a few seconds.
#
# Usage: infra/bootstrap.sh [--no-services | --local-servers]
#   --no-services   only the libstdc++ step (embedded mode: no RabbitMQ, no PostgreSQL)
#   --local-servers libstdc++ and the RabbitMQ and PostgreSQL packages, none started: the AppHost's local mode
#                   starts servers of its own (AppHost/Local)
set -euo pipefail

WITH_SERVICES=1
PACKAGES_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --no-services) WITH_SERVICES=0 ;;
    --local-servers) WITH_SERVICES=0; PACKAGES_ONLY=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bootstrap: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: must run as root" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
START_TS=$(date +%s)
log() { printf '[bootstrap] %s\n' "$*"; }
die() { printf '[bootstrap] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers
APT_LOG=$(mktemp /tmp/bootstrap-apt.XXXXXX.log)
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_OURS=0
cleanup() {
  # remove the policy-rc.d only if this run created it
  if [ "$POLICY_RC_OURS" = 1 ]; then rm -f "$POLICY_RC"; fi
  rm -f "$APT_LOG"
}
trap cleanup EXIT

# Run apt-get quietly; show the tail of its output only when it fails.
apt_quiet() {
  if ! apt-get -qq -o Dpkg::Use-Pty=0 "$@" >>"$APT_LOG" 2>&1; then
    tail -n 40 "$APT_LOG" >&2
    die "apt-get $* failed"
  fi
}

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" = 0 ]; then
    apt_quiet update
    APT_UPDATED=1
  fi
}

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Keep maintainer scripts from starting services (no systemd here; they would fail or
# start with the packaged config). An existing policy-rc.d is left as it is.
block_service_start() {
  if [ ! -e "$POLICY_RC" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC"
    chmod 755 "$POLICY_RC"
    POLICY_RC_OURS=1
  fi
}

apt_install() {
  apt_update_once
  block_service_start
  apt_quiet install -y --no-install-recommends "$@"
}

# write_file PATH CONTENT: write only when the content differs; returns 0 if it wrote.
write_file() {
  local path=$1 content=$2
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    return 1
  fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$content" >"$path"
  return 0
}

# ---------------------------------------------------------------- 1. libstdc++
# (no early exit/grep -q in pipes: with pipefail the writer's SIGPIPE would fail the test)
libstdcxx_path() { ldconfig -p | awk '/libstdc\+\+.so.6 / && !f {print $NF; f=1}'; }
libstdcxx_ok() {
  local lib
  lib=$(libstdcxx_path)
  [ -n "$lib" ] && [ -e "$lib" ] || return 1
  # same test as `strings $lib | grep GLIBCXX_3.4.32`, without needing binutils
  grep -qaF 'GLIBCXX_3.4.32' "$lib"
}

step_libstdcxx() {
  if libstdcxx_ok; then
    log "libstdc++: ok (GLIBCXX_3.4.32 present)"
    return
  fi
  log "libstdc++: GLIBCXX_3.4.32 missing, installing libstdc++6 from trixie (pin 100)"
  local src=/etc/apt/sources.list.d/debian.sources uris="" signed=""
  [ -f "$src" ] || src=/dev/null   # no deb822 sources: fall back to the defaults below
  # URIs / Signed-By of the stanza that carries the plain bookworm suite
  uris=$(awk 'BEGIN{RS="";FS="\n"} /Suites:[^\n]*bookworm( |\n|$)/ {
           for (i=1;i<=NF;i++) if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/,"",$i); print $i; exit } }' "$src")
  signed=$(awk 'BEGIN{RS="";FS="\n"} /Suites:[^\n]*bookworm( |\n|$)/ {
           for (i=1;i<=NF;i++) if ($i ~ /^Signed-By:/) { sub(/^Signed-By:[ \t]*/,"",$i); print $i; exit } }' "$src")
  uris=${uris:-http://deb.debian.org/debian}
  signed=${signed:-/usr/share/keyrings/debian-archive-keyring.gpg}
  write_file /etc/apt/sources.list.d/trixie.sources "Types: deb
URIs: $uris
Suites: trixie
Components: main
Signed-By: $signed" || true
  write_file /etc/apt/preferences.d/trixie "Package: *
Pin: release n=trixie
Pin-Priority: 100" || true
  APT_UPDATED=0   # the new source needs its lists even if an update ran already
  apt_update_once
  block_service_start
  apt_quiet install -y -t trixie libstdc++6
  ldconfig
  libstdcxx_ok || die "libstdc++6 from trixie installed but GLIBCXX_3.4.32 still missing"
  log "libstdc++: upgraded to $(dpkg-query -W -f='${Version}' libstdc++6) (libc6 $(dpkg-query -W -f='${Version}' libc6))"
}

# ---------------------------------------------------------------- 2. RabbitMQ
RABBIT_CONF="listeners.tcp.default = 127.0.0.1:5672
management.tcp.ip = 127.0.0.1
management.tcp.port = 15672"
# inet_dist_use_interface keeps the Erlang distribution port (25672) on loopback too.
RABBIT_ENV="NODENAME=rabbit@localhost
ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS=\"-kernel inet_dist_use_interface {127,0,0,1}\""

rabbit_running() { timeout 30 rabbitmqctl -q status >/dev/null 2>&1; }

step_rabbitmq() {
  if pkg_installed rabbitmq-server; then
    log "rabbitmq: package present"
  else
    log "rabbitmq: installing rabbitmq-server"
    apt_install rabbitmq-server
  fi

  local changed=0
  write_file /etc/rabbitmq/rabbitmq.conf "$RABBIT_CONF" && changed=1
  write_file /etc/rabbitmq/rabbitmq-env.conf "$RABBIT_ENV" && changed=1
  [ "$changed" = 1 ] && log "rabbitmq: config written (loopback only)"

  local running=0
  rabbit_running && running=1

  if grep -qs 'rabbitmq_management' /etc/rabbitmq/enabled_plugins; then
    :
  elif [ "$running" = 1 ]; then
    rabbitmq-plugins -q enable rabbitmq_management >/dev/null
    log "rabbitmq: management plugin enabled"
  else
    rabbitmq-plugins -q enable --offline rabbitmq_management >/dev/null
    log "rabbitmq: management plugin enabled (offline)"
  fi

  if [ "$running" = 1 ] && [ "$changed" = 1 ]; then
    log "rabbitmq: restarting to apply config"
    timeout 60 rabbitmqctl -q stop >/dev/null 2>&1 || true
    running=0
  fi

  if [ "$running" = 1 ]; then
    log "rabbitmq: running"
  else
    log "rabbitmq: starting (rabbitmq-server -detached)"
    rabbitmq-server -detached >/dev/null 2>&1 || true
    # await_startup fails at once while the node is not yet registered with epmd,
    # so retry it until the node answers (90 s in all).
    local deadline=$(( $(date +%s) + 90 ))
    until timeout 60 rabbitmqctl -q await_startup --timeout 55 >/dev/null 2>&1; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        tail -n 30 /var/log/rabbitmq/*.log 2>/dev/null >&2 || true
        die "rabbitmq did not start within 90 s (see /var/log/rabbitmq/)"
      fi
      sleep 1
    done
    log "rabbitmq: started"
  fi
}

# ---------------------------------------------------------------- 3. PostgreSQL 15
PG_VER=15
PG_CLUSTER=main
PG_CONF_DIR=/etc/postgresql/$PG_VER/$PG_CLUSTER
PG_LOCAL_CONF="# written by infra/bootstrap.sh
listen_addresses = '127.0.0.1'"

pg_online() { pg_lsclusters -h "$PG_VER" "$PG_CLUSTER" 2>/dev/null | awk '$4=="online"{f=1} END{exit !f}'; }
pg_password_ok() {
  PGPASSWORD=postgres PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -p 5432 -U postgres -d postgres \
    -tAc 'select 1' >/dev/null 2>&1
}

step_postgres() {
  if pkg_installed "postgresql-$PG_VER"; then
    log "postgresql: package present"
  else
    log "postgresql: installing postgresql"
    apt_install postgresql
  fi

  if [ ! -f "$PG_CONF_DIR/postgresql.conf" ]; then
    log "postgresql: creating cluster $PG_VER/$PG_CLUSTER"
    pg_createcluster "$PG_VER" "$PG_CLUSTER" >/dev/null
  fi

  local port
  port=$(pg_lsclusters -h "$PG_VER" "$PG_CLUSTER" | awk '{print $3}')
  [ "$port" = 5432 ] || die "cluster $PG_VER/$PG_CLUSTER is on port $port, expected 5432"

  local changed=0
  if write_file "$PG_CONF_DIR/conf.d/bootstrap.conf" "$PG_LOCAL_CONF"; then
    chown postgres:postgres "$PG_CONF_DIR/conf.d/bootstrap.conf"
    changed=1
    log "postgresql: config written (listen 127.0.0.1)"
  fi

  if pg_online; then
    if [ "$changed" = 1 ]; then
      log "postgresql: restarting to apply config"
      pg_ctlcluster "$PG_VER" "$PG_CLUSTER" restart
    else
      log "postgresql: running"
    fi
  else
    log "postgresql: starting (pg_ctlcluster $PG_VER $PG_CLUSTER start)"
    pg_ctlcluster "$PG_VER" "$PG_CLUSTER" start
  fi

  local i
  for i in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
  pg_isready -q -h 127.0.0.1 -p 5432 || die "postgresql not accepting connections on 127.0.0.1:5432"

  if pg_password_ok; then
    log "postgresql: password auth ok"
  else
    (cd / && su postgres -c "psql -X -q -c \"ALTER USER postgres WITH PASSWORD 'postgres'\"") >/dev/null
    pg_password_ok || die "password login as postgres over 127.0.0.1 still fails (check pg_hba.conf)"
    log "postgresql: postgres password set"
  fi
}

# ---------------------------------------------------------------- main
step_libstdcxx
if [ "$WITH_SERVICES" = 1 ]; then
  step_rabbitmq
  step_postgres
elif [ "$PACKAGES_ONLY" = 1 ]; then
  pkg_installed rabbitmq-server || { log "rabbitmq: installing rabbitmq-server (not started)"; apt_install rabbitmq-server; }
  pkg_installed "postgresql-$PG_VER" || { log "postgresql: installing postgresql (not started)"; apt_install postgresql; }
  log "services: packages present, none started (--local-servers)"
else
  log "services: skipped (--no-services)"
fi

log "done in $(( $(date +%s) - START_TS )) s"
if [ "$WITH_SERVICES" = 1 ]; then
  echo "ConnectionStrings__messaging=amqp://guest:guest@127.0.0.1:5672/"
  echo "PostgreSQL base: Host=127.0.0.1;Port=5432;Username=postgres;Password=postgres"
fi
